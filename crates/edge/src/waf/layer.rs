//! [`WafLayer`]: the WAF in front of an axum router.
//!
//! Place it after connection caps, timeouts and rate limits (so that only admitted requests
//! cost an inspection, and body reads stay under the idle timeout) and before the handlers. Per
//! request it reads a textual body up to the cap (see `body.rs` for which bodies are read), runs
//! [`Waf::inspect`] on a blocking thread (it costs up to milliseconds of CPU), gives the body back and
//! either forwards the request or, for a refusal in `Block` mode, answers 403 with our JSON error.
//! Blocked requests (and, in `Detect` mode, requests that matched any rule) are reported to the
//! caller's hook, for the `waf.blocked` audit event.
#![forbid(unsafe_code)]

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{header, HeaderMap, Request, StatusCode, Version};
use http_body_util::BodyExt;
use tower::{Layer, Service};

use super::body::{is_textual, Replay};
use super::multipart;
use super::{Verdict, Waf, WafMode, WafRequest};
use crate::TrustedProxies;

/// Largest textual body read for inspection, by default (1 MiB).
pub const DEFAULT_BODY_CAP: usize = 1 << 20;

/// Largest request line and headers (bytes) inspected inline on the worker; larger ones go to
/// the blocking pool like bodies. A browser's request is 0.5–2 KiB; the bench's a few hundred.
const INLINE_HEADER_BYTES: usize = 8 * 1024;

/// The largest textual body to read for a request, from its method and path.
pub type BodyCapFn = Arc<dyn Fn(&http::Method, &str) -> usize + Send + Sync>;

/// Called for every blocked request (and every matched one in `Detect` mode).
pub type WafHook = Arc<dyn Fn(WafEvent) + Send + Sync>;

/// What the hook learns about a request the WAF blocked or, in `Detect` mode, flagged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WafEvent {
    pub client_ip: IpAddr,
    pub method: String,
    /// The request path without its query. Segments of 40 or more URL-safe characters (bearer
    /// secrets such as signing-link tokens) are replaced by `{token}`.
    pub path: String,
    pub rule_ids: Vec<u32>,
    pub mode: WafMode,
    /// Whether the request was refused (only in `Block` mode).
    pub blocked: bool,
    /// The `x-request-id` header, when it is a plausible id.
    pub request_id: Option<String>,
}

/// The tower layer; see the module documentation.
#[derive(Clone)]
pub struct WafLayer {
    shared: Arc<Shared>,
}

#[derive(Clone)]
struct Shared {
    waf: Waf,
    hook: Option<WafHook>,
    body_cap: BodyCapFn,
    proxies: TrustedProxies,
}

impl WafLayer {
    pub fn new(waf: Waf) -> Self {
        Self {
            shared: Arc::new(Shared {
                waf,
                hook: None,
                body_cap: Arc::new(|_, _| DEFAULT_BODY_CAP),
                proxies: TrustedProxies::default(),
            }),
        }
    }

    /// Sets the hook told about blocked (and, in `Detect` mode, matched) requests.
    pub fn on_event(mut self, hook: WafHook) -> Self {
        Arc::make_mut(&mut self.shared).hook = Some(hook);
        self
    }

    /// Largest textual body read for inspection. A larger one is refused with 413 in `Block`
    /// mode (unread, it could hide anything) and forwarded with only its headers inspected in
    /// `Detect` mode.
    pub fn body_cap(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.shared).body_cap = Arc::new(move |_, _| bytes);
        self
    }

    /// Like [`WafLayer::body_cap`], decided per request: give each route its own body limit, so
    /// no request costs more inspection than its handler would accept (the CRS spends about
    /// 0.7 s of CPU on a MiB of JSON).
    pub fn body_cap_by_route(mut self, cap: BodyCapFn) -> Self {
        Arc::make_mut(&mut self.shared).body_cap = cap;
        self
    }

    /// Proxies whose `X-Forwarded-For` names the client (as for rate limits).
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        Arc::make_mut(&mut self.shared).proxies = proxies;
        self
    }
}

impl<S> Layer<S> for WafLayer {
    type Service = WafService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WafService { inner, shared: self.shared.clone() }
    }
}

#[derive(Clone)]
pub struct WafService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<Request<Body>> for WafService<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // The clone that was polled ready is the one that serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move {
            match screen(&shared, req).await {
                Screened::Forward(req) => inner.call(req).await,
                Screened::Answer(response) => Ok(response),
            }
        })
    }
}

enum Screened {
    Forward(Request<Body>),
    Answer(Response),
}

async fn screen(shared: &Shared, req: Request<Body>) -> Screened {
    let mode = shared.waf.mode();
    if mode == WafMode::Off {
        return Screened::Forward(req);
    }
    let (parts, body) = req.into_parts();
    let request_id = request_id(&parts.headers);
    let body_cap = (shared.body_cap)(&parts.method, parts.uri.path());

    let (fed, body) = if is_textual(parts.headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes())) {
        match read_capped(body, body_cap, declared_length(&parts.headers)).await {
            Read::Whole { data, trailers } => (Some(data.clone()), Replay::whole(data, trailers)),
            Read::TooLarge { prefix, rest } => {
                if mode == WafMode::Block {
                    tracing::info!(cap = body_cap, "waf: request body over the inspection cap refused");
                    return Screened::Answer(refusal(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        with_id("the request body is too large", request_id.as_deref()),
                    ));
                }
                tracing::warn!(cap = body_cap, "waf: request body over the inspection cap not inspected");
                (None, Replay::prefix_then(prefix, rest))
            }
            // The handler would fail on the same body; let it answer as it always does.
            Read::Failed { prefix, error } => {
                return Screened::Forward(Request::from_parts(parts, Replay::prefix_then_error(prefix, error)));
            }
        }
    } else if let Some(boundary) = multipart::boundary(parts.headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes())) {
        match read_form(body, &boundary, body_cap).await {
            FormRead::Form { fed, read, rest } => (Some(fed), Replay::prefix_then(read, rest)),
            FormRead::Malformed => {
                return Screened::Answer(refusal(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    with_id("the request body is not valid multipart/form-data", request_id.as_deref()),
                ))
            }
            FormRead::TooLarge { read, rest } => {
                if mode == WafMode::Block {
                    tracing::info!(cap = body_cap, "waf: multipart form before the file over the inspection cap");
                    return Screened::Answer(refusal(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        with_id("the form fields before the file are too large", request_id.as_deref()),
                    ));
                }
                (None, Replay::prefix_then(read, rest))
            }
            FormRead::Failed { read, error } => {
                return Screened::Forward(Request::from_parts(parts, Replay::prefix_then_error(read, error)));
            }
        }
    } else {
        (None, body)
    };

    let (client_ip, client_port) = client(shared, &parts);
    let waf = shared.waf.clone();
    let header_bytes: usize = parts.uri.path_and_query().map_or(0, |p| p.as_str().len())
        + parts.headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum::<usize>();
    let inline = fed.is_none() && header_bytes <= INLINE_HEADER_BYTES;
    let run = move || {
        let verdict = inspect(&waf, &parts, client_ip, client_port, fed.as_deref());
        (parts, verdict)
    };
    // A request whose body the rules do not see (none, or binary) and whose headers are of an
    // ordinary size costs well under a millisecond of CPU (about 0.65 ms for CRS 3.3.4 at
    // paranoia 1), about what a TLS handshake costs on the same worker: it runs inline. Handing it to the blocking pool woke a second
    // thread for every request and added about 1 ms to a timestamp request (bench-seal B-T 3.3
    // ms, 9.8x pyHanko on one CI host; inline 2.6-2.9 ms) and 20 % to the layer's own cost
    // (bench-edge e/d 1.20-1.27, inline 1.09-1.10). A textual body, or headers far larger than a
    // browser sends, can cost tens of milliseconds, so that inspection goes to the blocking pool
    // and never stalls the worker's other tasks.
    // (`block_in_place` was tried too: on a worker it hands the core to another thread for
    // every request, which was worse than either.)
    let inspected = if inline { Ok(run()) } else { tokio::task::spawn_blocking(run).await };
    let (parts, verdict) = match inspected {
        Ok((parts, Ok(verdict))) => (parts, verdict),
        Ok((parts, Err(error))) => {
            tracing::error!(%error, "waf: request could not be inspected");
            if mode == WafMode::Block {
                return Screened::Answer(inspection_failed(request_id.as_deref()));
            }
            return Screened::Forward(Request::from_parts(parts, body));
        }
        Err(error) => {
            tracing::error!(%error, "waf: inspection task failed");
            return Screened::Answer(inspection_failed(request_id.as_deref()));
        }
    };

    let blocked = verdict.disruptive && mode == WafMode::Block;
    if blocked || (mode == WafMode::Detect && verdict.matched()) {
        report(shared, &parts, &verdict, client_ip, blocked, request_id.clone());
    }
    if blocked && verdict.status == 400 {
        // Our own body rules (200002, 200007): the body could not be parsed, which is bad input
        // rather than an attack, and gets the answer the application would give.
        return Screened::Answer(refusal(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            with_id("the request body could not be parsed", request_id.as_deref()),
        ));
    }
    if blocked {
        return Screened::Answer(refusal(
            StatusCode::FORBIDDEN,
            "waf_blocked",
            with_id("request blocked by the web application firewall", request_id.as_deref()),
        ));
    }
    Screened::Forward(Request::from_parts(parts, body))
}

fn inspect(
    waf: &Waf,
    parts: &Parts,
    client_ip: IpAddr,
    client_port: u16,
    body: Option<&[u8]>,
) -> Result<Verdict, super::WafError> {
    let mut headers: Vec<(&str, &[u8])> = parts.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
    // HTTP/2 carries the host in :authority, which hyper puts into the URI; CRS expects `Host`.
    if !parts.headers.contains_key(header::HOST) {
        if let Some(authority) = parts.uri.authority() {
            headers.push(("host", authority.as_str().as_bytes()));
        }
    }
    let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let server_port = parts
        .uri
        .port_u16()
        .or_else(|| host.and_then(|h| h.rsplit_once(':')).and_then(|(_, p)| p.parse().ok()))
        .unwrap_or(443);
    let request = WafRequest {
        client_ip,
        client_port,
        server_port,
        method: parts.method.as_str(),
        uri: parts.uri.path_and_query().map_or("/", |pq| pq.as_str()),
        http_version: version(parts.version),
        headers: &headers,
        body,
    };
    waf.inspect(&request)
}

fn version(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2.0",
        Version::HTTP_3 => "3.0",
        _ => "1.1",
    }
}

fn client(shared: &Shared, parts: &Parts) -> (IpAddr, u16) {
    let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
        return (IpAddr::from([0, 0, 0, 0]), 0);
    };
    let forwarded = parts.headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
    (shared.proxies.client_ip(peer.ip(), forwarded), peer.port())
}

fn report(
    shared: &Shared,
    parts: &Parts,
    verdict: &Verdict,
    client_ip: IpAddr,
    blocked: bool,
    request_id: Option<String>,
) {
    let path = redact_path(parts.uri.path());
    tracing::info!(%client_ip, method = %parts.method, %path, rule_ids = ?verdict.rule_ids, blocked, "waf matched");
    if let Some(hook) = &shared.hook {
        hook(WafEvent {
            client_ip,
            method: parts.method.as_str().to_owned(),
            path,
            rule_ids: verdict.rule_ids.clone(),
            mode: shared.waf.mode(),
            blocked,
            request_id,
        });
    }
}

enum Read {
    Whole { data: Bytes, trailers: Option<HeaderMap> },
    TooLarge { prefix: Bytes, rest: Body },
    Failed { prefix: Bytes, error: axum::Error },
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Reads a body up to `cap` bytes, keeping what was read in every outcome.
async fn read_capped(mut body: Body, cap: usize, declared: Option<u64>) -> Read {
    if declared.is_some_and(|n| n > cap as u64) {
        return Read::TooLarge { prefix: Bytes::new(), rest: body };
    }
    let mut data = BytesMut::new();
    loop {
        match body.frame().await {
            None => return Read::Whole { data: data.freeze(), trailers: None },
            Some(Err(error)) => return Read::Failed { prefix: data.freeze(), error },
            Some(Ok(frame)) => match frame.into_data() {
                Ok(chunk) => {
                    data.extend_from_slice(&chunk);
                    if data.len() > cap {
                        return Read::TooLarge { prefix: data.freeze(), rest: body };
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        return Read::Whole { data: data.freeze(), trailers: Some(trailers) };
                    }
                }
            },
        }
    }
}

enum FormRead {
    /// `fed` is what the WAF inspects; `read` is every byte read so far, `rest` the remainder.
    Form {
        fed: Bytes,
        read: Bytes,
        rest: Body,
    },
    Malformed,
    TooLarge {
        read: Bytes,
        rest: Body,
    },
    Failed {
        read: Bytes,
        error: axum::Error,
    },
}

/// Reads a multipart body up to the end of the file part's headers (see `multipart.rs`), or to
/// its end when it has no file part, keeping what was read in every outcome.
async fn read_form(mut body: Body, boundary: &str, cap: usize) -> FormRead {
    let mut buf = BytesMut::new();
    let mut from = 0;
    let mut ended = false;
    loop {
        match multipart::next_part(&buf, boundary, from) {
            multipart::Scan::Malformed => return FormRead::Malformed,
            multipart::Scan::Part { end, .. } | multipart::Scan::Closed(end) if end > cap => {
                return FormRead::TooLarge { read: buf.freeze(), rest: body }
            }
            multipart::Scan::Part { start, end } => match multipart::part_name(&buf[start..end], boundary).await {
                Err(()) => return FormRead::Malformed,
                Ok(Some(name)) if name == multipart::FILE_PART => {
                    let fed = multipart::form_with_empty_file(&buf, end, boundary);
                    return FormRead::Form { fed, read: buf.freeze(), rest: body };
                }
                Ok(_) => {
                    from = end;
                    continue;
                }
            },
            multipart::Scan::Closed(end) => {
                let fed = Bytes::copy_from_slice(&buf[..end]);
                return FormRead::Form { fed, read: buf.freeze(), rest: body };
            }
            multipart::Scan::NeedMore if ended => {
                // No file part and no closing delimiter: the engine judges the truncated form.
                let read = buf.freeze();
                return FormRead::Form { fed: read.clone(), read, rest: Body::empty() };
            }
            multipart::Scan::NeedMore if buf.len() > cap => {
                return FormRead::TooLarge { read: buf.freeze(), rest: body }
            }
            multipart::Scan::NeedMore => {}
        }
        match body.frame().await {
            None => ended = true,
            Some(Err(error)) => return FormRead::Failed { read: buf.freeze(), error },
            Some(Ok(frame)) => {
                // Trailers after a form are dropped: `Multipart` never looks at them.
                if let Ok(chunk) = frame.into_data() {
                    buf.extend_from_slice(&chunk);
                }
            }
        }
    }
}

/// The `x-request-id` header if it looks like an id (it is echoed to the client).
fn request_id(headers: &HeaderMap) -> Option<String> {
    let id = headers.get("x-request-id")?.to_str().ok()?;
    (!id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())).then(|| id.to_owned())
}

fn with_id(message: &str, request_id: Option<&str>) -> String {
    match request_id {
        Some(id) => format!("{message} (request id {id})"),
        None => message.to_owned(),
    }
}

fn inspection_failed(request_id: Option<&str>) -> Response {
    refusal(StatusCode::INTERNAL_SERVER_ERROR, "waf_error", with_id("the request could not be inspected", request_id))
}

/// Our JSON error shape (DESIGN §7): `{"error":{"code":…,"message":…}}`.
fn refusal(status: StatusCode, code: &str, message: String) -> Response {
    (status, axum::Json(serde_json::json!({ "error": { "code": code, "message": message } }))).into_response()
}

/// Replaces path segments that look like bearer secrets (40+ URL-safe characters) by `{token}`.
fn redact_path(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            let secret = segment.len() >= 40
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'%' | b'='));
            if secret {
                "{token}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_segments_are_redacted() {
        let token = "Qm9vbGVhbi1zZWNyZXQtdG9rZW4tZm9yLXNpZ25pbmctMTIz";
        assert_eq!(redact_path(&format!("/api/v1/signing/{token}/complete")), "/api/v1/signing/{token}/complete");
        let id = "0190b3c2-7a1e-7c3e-9f0a-1b2c3d4e5f60";
        assert_eq!(redact_path(&format!("/api/v1/envelopes/{id}")), format!("/api/v1/envelopes/{id}"));
        assert_eq!(redact_path("/"), "/");
    }

    #[test]
    fn request_ids_are_echoed_only_when_plausible() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", "0190b3c2-7a1e".parse().unwrap());
        assert_eq!(request_id(&h).as_deref(), Some("0190b3c2-7a1e"));
        h.insert("x-request-id", "has space".parse().unwrap());
        assert_eq!(request_id(&h), None);
        h.insert("x-request-id", "x".repeat(129).parse().unwrap());
        assert_eq!(request_id(&h), None);
    }

    #[tokio::test]
    async fn reads_stop_at_the_cap_and_keep_the_rest() {
        match read_capped(Body::from("0123456789"), 4, None).await {
            Read::TooLarge { prefix, rest } => {
                let rest = rest.collect().await.unwrap().to_bytes();
                assert_eq!([prefix.as_ref(), rest.as_ref()].concat(), b"0123456789");
            }
            _ => panic!("expected TooLarge"),
        }
        assert!(matches!(read_capped(Body::from("x"), 4, Some(5)).await, Read::TooLarge { .. }));
        match read_capped(Body::from("0123"), 4, Some(4)).await {
            Read::Whole { data, trailers: None } => assert_eq!(data.as_ref(), b"0123"),
            _ => panic!("expected Whole"),
        }
    }
}
