//! The HTTP tier: axum routes, the JSON error shape and the TLS accept loop. Handlers stay thin:
//! they parse, call an application service from `sigillum-core`, and map the result once.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock))]

pub mod auth;
pub mod billing;
pub mod client;
pub mod disclosure;
pub mod edge;
pub mod envelopes;
pub mod error;
pub mod export;
pub mod health;
pub mod json;
pub mod log;
pub mod metrics;
pub mod openapi;
pub mod pki;
pub mod previews;
pub mod server;
pub mod signing;
pub mod ui;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use sigillum_core::{Accounts, AuditLog, Envelopes, Vault, Workflow};
use sigillum_edge::TrustedProxies;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

/// Everything a handler may reach.
pub struct AppState {
    pub vault: Vault,
    pub audit: AuditLog,
    pub accounts: Accounts,
    pub envelopes: Envelopes,
    pub workflow: Workflow,
    /// The internal CA and built-in timestamp authority.
    pub pki: Arc<sigillum_core::pki::Pki>,
    pub trusted_proxies: TrustedProxies,
    /// Header policy, rate limits, own origin, security.txt.
    pub edge: edge::EdgeSettings,
    pub version: &'static str,
    /// The jurisdiction and where each store and service is, as `/readyz` reports it.
    pub residency: serde_json::Value,
    /// Prometheus metrics and their scrape token.
    pub metrics: Arc<metrics::Metrics>,
    /// Plans, quotas and the payment providers (off unless one is configured).
    pub billing: sigillum_core::billing::Billing,
}

/// The whole HTTP application, edge layers included (outermost last, see `edge.rs`).
pub fn router(state: Arc<AppState>) -> Router {
    use axum::middleware::from_fn_with_state;
    let app = Router::new()
        .merge(health::routes())
        .merge(metrics::routes())
        .merge(disclosure::routes())
        .merge(log::routes())
        .merge(auth::routes())
        .merge(export::routes())
        .merge(envelopes::routes(state.envelopes.limits().max_bytes))
        .merge(signing::routes())
        .merge(webhooks::routes())
        .merge(billing::routes())
        .merge(pki::routes())
        .merge(previews::routes())
        .merge(openapi::routes())
        .merge(ui::routes())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        // Routes that take more (uploads, signatures, timestamp requests) set their own limit.
        .layer(axum::extract::DefaultBodyLimit::max(edge::JSON_BODY_MAX))
        .layer(from_fn_with_state(state.clone(), edge::cross_site));
    let app = match state.edge.waf.clone() {
        Some(waf) => app.layer(waf.body_cap_by_route(Arc::new(edge::inspected_body_cap))),
        None => app,
    };
    app.layer(RequestBodyTimeoutLayer::new(edge::BODY_IDLE_TIMEOUT))
        .layer(from_fn_with_state(state.clone(), edge::rate_limit))
        .layer(from_fn_with_state(state.clone(), edge::security_headers))
        // Outside the rate limits and the WAF, so their refusals are counted too (each route's
        // layers run after routing, so the route template is known).
        .layer(from_fn_with_state(state.clone(), metrics::record))
        .layer(
            tower::ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|req: &http::Request<_>| {
                            let id = req
                                .headers()
                                .get("x-request-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-")
                                .to_owned();
                            tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
                        })
                        .on_response(tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(axum::middleware::from_fn(in_request_scope)),
        )
        .with_state(state)
}

/// Runs the rest of the request inside its id's scope, so the jobs it enqueues carry the id and
/// are logged under it by whichever node runs them (`sigillum_core::request_context`).
async fn in_request_scope(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    match req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned) {
        Some(id) => sigillum_core::request_context::scope(id, next.run(req)).await,
        None => next.run(req).await,
    }
}
