//! The `Client` extractor: who is on the other end of a request, for the audit log. The address is
//! the socket's peer unless that peer is a trusted proxy (see `sigillum_edge::client_ip`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use http::request::Parts;
use sigillum_core::ClientInfo;

use crate::AppState;

/// Longest User-Agent kept.
const MAX_USER_AGENT: usize = 512;

pub struct Client(pub ClientInfo);

impl FromRequestParts<Arc<AppState>> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let ip = peer.map(|p| crate::edge::client_ip(state, &parts.headers, Some(p)));
        let user_agent = parts.headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|ua| {
            let mut end = ua.len().min(MAX_USER_AGENT);
            while !ua.is_char_boundary(end) {
                end -= 1;
            }
            ua[..end].to_owned()
        });
        Ok(Self(ClientInfo { ip, user_agent }))
    }
}
