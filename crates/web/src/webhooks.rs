//! Webhook subscription routes and the outbound HTTP adapter that delivers them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use sigillum_core::ports::WebhookSender;
use sigillum_core::workflow::NewWebhook;
use sigillum_core::EnvelopeError;

use crate::auth::Authenticated;
use crate::client::Client;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/webhooks", post(create).get(list))
        .route("/api/v1/webhooks/{id}", delete(disable))
        .route("/api/v1/webhooks/{id}/deliveries", get(deliveries))
}

fn webhook_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| ApiError::from(EnvelopeError::NotFound))
}

#[utoipa::path(post, path = "/api/v1/webhooks", operation_id = "create_webhook", tag = "webhooks", security(("api_key" = []), ("session" = [])), request_body = sigillum_core::workflow::NewWebhook, responses((status = 201, description = "subscription with its signing secret (shown once)", body = sigillum_core::workflow::WebhookCreated), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "not found (or another organisation's)", body = crate::openapi::ErrorBody), (status = 403, description = "missing CSRF token (cookie sessions)", body = crate::openapi::ErrorBody), (status = 409, description = "not allowed in the envelope's status", body = crate::openapi::ErrorBody), (status = 422, description = "invalid input", body = crate::openapi::ErrorBody)))]
async fn create(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Authenticated(p): Authenticated,
    ApiJson(b): ApiJson<NewWebhook>,
) -> Result<Response, ApiError> {
    let created = st.workflow.create_webhook(&p, b, &client).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(get, path = "/api/v1/webhooks", operation_id = "list_webhooks", tag = "webhooks", security(("api_key" = []), ("session" = [])), responses((status = 200, description = "`{webhooks: [...]}`", body = Object), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "not found (or another organisation's)", body = crate::openapi::ErrorBody)))]
async fn list(State(st): State<Arc<AppState>>, Authenticated(p): Authenticated) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "webhooks": st.workflow.webhooks(&p).await? })))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", operation_id = "disable_webhook", tag = "webhooks", security(("api_key" = []), ("session" = [])), params(("id" = String, Path, description = "webhook id")), responses((status = 204, description = "disabled"), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "not found (or another organisation's)", body = crate::openapi::ErrorBody), (status = 403, description = "missing CSRF token (cookie sessions)", body = crate::openapi::ErrorBody), (status = 409, description = "not allowed in the envelope's status", body = crate::openapi::ErrorBody), (status = 422, description = "invalid input", body = crate::openapi::ErrorBody)))]
async fn disable(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.workflow.disable_webhook(&p, webhook_id(&id)?, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", operation_id = "webhook_deliveries", tag = "webhooks", security(("api_key" = []), ("session" = [])), params(("id" = String, Path, description = "webhook id")), responses((status = 200, description = "`{deliveries: [...]}`, newest first", body = Object), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "not found (or another organisation's)", body = crate::openapi::ErrorBody)))]
async fn deliveries(
    State(st): State<Arc<AppState>>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "deliveries": st.workflow.webhook_deliveries(&p, webhook_id(&id)?).await? })))
}

/// Whether an address is on the public internet (not loopback, private, link-local, metadata,
/// shared, documentation, multicast or unspecified): webhooks must not reach into our network.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x64 && s[1] == 0xff9b))
        }
    }
}

/// Posts deliveries with reqwest: the host is resolved once, every address checked (unless
/// private targets are allowed for tests), and the connection pinned to the checked address so
/// DNS cannot swap it afterwards. No redirects; 10 s timeout.
pub struct HttpWebhookSender {
    pub allow_private: bool,
}

#[async_trait::async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn post(&self, url: &str, headers: &[(String, String)], body: &[u8]) -> Result<u16, String> {
        let u = url::Url::parse(url).map_err(|_| "invalid url".to_owned())?;
        let host = u.host_str().ok_or("url without host")?.to_owned();
        let port = u.port_or_known_default().ok_or("url without port")?;
        let lookup = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((lookup.as_str(), port))
            .await
            .map_err(|_| format!("cannot resolve {host}"))?
            .collect();
        let addr = *addrs.first().ok_or_else(|| format!("{host} has no address"))?;
        if !self.allow_private && addrs.iter().any(|a| !is_public(a.ip())) {
            return Err(format!("{host} resolves to a non-public address; refused"));
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .resolve(&lookup, addr)
            .user_agent("Sigillum-Webhooks/1")
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        let mut req = client.post(u).body(body.to_vec());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                "timed out".to_owned()
            } else {
                "connection failed".to_owned()
            }
        })?;
        Ok(resp.status().as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::is_public;

    /// The real sender refuses an internal target before connecting (unless told otherwise).
    #[tokio::test]
    async fn the_sender_refuses_internal_targets() {
        use sigillum_core::ports::WebhookSender;
        let strict = super::HttpWebhookSender { allow_private: false };
        for url in ["http://127.0.0.1:9/x", "https://localhost/x", "http://[::1]:9/x", "http://169.254.169.254/latest"]
        {
            let e = strict.post(url, &[], b"{}").await.unwrap_err();
            assert!(e.contains("non-public"), "{url}: {e}");
        }
        let lenient = super::HttpWebhookSender { allow_private: true };
        let e = lenient.post("http://127.0.0.1:9/x", &[], b"{}").await.unwrap_err();
        assert_eq!(e, "connection failed", "allowed, then refused by the closed port");
    }

    #[test]
    fn internal_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
