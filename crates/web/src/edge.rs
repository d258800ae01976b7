//! The edge tier in the request path (DESIGN §2), outermost first: request id and trace, security
//! headers (set on every response, refusals included), rate limits (before anything costly), the
//! request-body idle timeout, the WAF, then the cross-site check, then the handlers. Connection caps and
//! header/handshake timeouts act earlier, in the accept loop (`server.rs`). The rules themselves
//! live in `sigillum-edge`; this module only applies them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sigillum_edge::{HeaderPolicy, RateLimiter};

use crate::error::ApiError;
use crate::AppState;

/// Longest pause allowed between two pieces of a request body (slow-body attacks).
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request body of every route that does not set its own (JSON bodies of a few fields).
pub const JSON_BODY_MAX: usize = 64 * 1024;
/// How much of a textual request body the WAF reads and inspects: the route's own body limit
/// (the signature step takes base64 images; everything else small JSON), so a body its handler
/// would refuse anyway costs no inspection beyond that limit.
pub fn inspected_body_cap(method: &http::Method, path: &str) -> usize {
    let segments: Vec<&str> = path.split('/').collect();
    match segments.as_slice() {
        ["", "api", "v1", "signing", _, "complete"] if method == http::Method::POST => {
            crate::signing::MAX_COMPLETE_BODY
        }
        ["", "webhooks", _] if method == http::Method::POST => crate::billing::MAX_WEBHOOK_BODY,
        _ => JSON_BODY_MAX,
    }
}

/// How often idle rate-limit keys are forgotten.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// The edge settings of a deployment.
pub struct EdgeSettings {
    pub headers: HeaderPolicy,
    pub rate_limits: Arc<RateLimiter>,
    /// `scheme://host[:port]` of the public URL: the only origin allowed to change anything.
    pub own_origin: String,
    pub security_txt: crate::disclosure::SecurityTxt,
    /// The OWASP CRS web application firewall (`None` when `SIGILLUM_WAF=off`).
    pub waf: Option<sigillum_edge::waf::WafLayer>,
}

impl EdgeSettings {
    /// Starts forgetting idle rate-limit keys in the background (needs a Tokio runtime).
    pub fn start_purging(&self) {
        let limits = Arc::downgrade(&self.rate_limits);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PURGE_EVERY);
            loop {
                tick.tick().await;
                let Some(l) = limits.upgrade() else { return };
                l.purge();
            }
        });
    }
}

/// The client address of a request (socket peer, or the forwarded client behind a trusted proxy).
pub fn client_ip(state: &AppState, headers: &HeaderMap, peer: Option<IpAddr>) -> IpAddr {
    let forwarded = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
    peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| state.trusted_proxies.client_ip(p, forwarded))
}

/// The credential a request presents, if any: the `Authorization` value or the session cookie.
fn credential(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(a) = headers.get(http::header::AUTHORIZATION) {
        return Some(a.as_bytes());
    }
    crate::auth::session_cookie(headers).map(str::as_bytes)
}

pub async fn security_headers(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let mut response = next.run(req).await;
    st.edge.headers.apply(&path, response.headers_mut());
    response
}

pub async fn rate_limit(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let ip = client_ip(&st, req.headers(), peer);
    let key = sigillum_edge::rate_limit::RequestKey {
        client_ip: ip,
        path: req.uri().path(),
        credential: credential(req.headers()),
    };
    match st.edge.rate_limits.check(&key) {
        Ok(()) => next.run(req).await,
        Err(limited) => {
            tracing::info!(%ip, bucket = limited.bucket, "rate limited");
            st.metrics.count_rate_limited(limited.bucket);
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; retry later")
                .retry_after(limited.retry_after_secs())
                .into_response()
        }
    }
}

pub async fn cross_site(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    match sigillum_edge::cross_site::check(req.method(), req.headers(), &st.edge.own_origin) {
        Ok(()) => next.run(req).await,
        Err(refused) => ApiError::new(StatusCode::FORBIDDEN, refused.code(), refused.message()).into_response(),
    }
}
