//! The signer ceremony routes, reached with the signing token from the invitation (or an
//! embedded link). The token in the path is the credential: no cookie is involved, so these
//! routes need no CSRF token. An access code, when the sender set one, travels in
//! `X-Access-Code`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sigillum_core::workflow::CompleteRequest;

use crate::client::Client;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::AppState;

/// Signature PNGs arrive base64-encoded in JSON: room for a 512 KiB image and the values.
pub(crate) const MAX_COMPLETE_BODY: usize = 1024 * 1024;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/signing/{token}", get(view))
        .route("/api/v1/signing/{token}/document", get(document))
        .route("/api/v1/signing/{token}/consent", post(consent))
        .route(
            "/api/v1/signing/{token}/complete",
            post(complete).layer(axum::extract::DefaultBodyLimit::max(MAX_COMPLETE_BODY)),
        )
        .route("/api/v1/signing/{token}/decline", post(decline))
}

pub(crate) fn access_code(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-access-code").and_then(|v| v.to_str().ok())
}

#[utoipa::path(get, path = "/api/v1/signing/{token}", operation_id = "signer_view", tag = "signing", params(("token" = String, Path, description = "the signing token from the invitation or embedded link"), ("X-Access-Code" = Option<String>, Header, description = "the access code, when the sender set one")), responses((status = 200, description = "envelope, this recipient and their fields", body = sigillum_core::workflow::SignerView), (status = 403, description = "access code missing or wrong", body = crate::openapi::ErrorBody), (status = 404, description = "unknown token", body = crate::openapi::ErrorBody), (status = 410, description = "link expired or envelope ended", body = crate::openapi::ErrorBody), (status = 429, description = "too many access-code attempts", body = crate::openapi::ErrorBody)))]
async fn view(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let v = st.workflow.signer_view(&token, access_code(&headers), &client).await?;
    Ok(Json(serde_json::to_value(v).map_err(|_| ApiError::internal())?))
}

#[utoipa::path(get, path = "/api/v1/signing/{token}/document", operation_id = "signer_document", tag = "signing", params(("token" = String, Path, description = "the signing token from the invitation or embedded link"), ("X-Access-Code" = Option<String>, Header, description = "the access code, when the sender set one")), responses((status = 200, description = "the document (final once completed)", content_type = "application/pdf", body = Vec<u8>), (status = 403, description = "access code missing or wrong", body = crate::openapi::ErrorBody), (status = 404, description = "unknown token", body = crate::openapi::ErrorBody), (status = 410, description = "link expired or envelope ended", body = crate::openapi::ErrorBody), (status = 429, description = "too many access-code attempts", body = crate::openapi::ErrorBody)))]
async fn document(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (title, bytes) = st.workflow.signer_document(&token, access_code(&headers), &client).await?;
    Ok(crate::envelopes::pdf_response(&title, bytes))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Consent {
    accepted: bool,
}

#[utoipa::path(post, path = "/api/v1/signing/{token}/consent", operation_id = "signer_consent", tag = "signing", params(("token" = String, Path, description = "the signing token from the invitation or embedded link"), ("X-Access-Code" = Option<String>, Header, description = "the access code, when the sender set one")), request_body = Consent, responses((status = 200, description = "ESIGN consent recorded", body = Object), (status = 409, description = "not your turn or finished", body = crate::openapi::ErrorBody), (status = 422, description = "accepted must be true", body = crate::openapi::ErrorBody), (status = 403, description = "access code missing or wrong", body = crate::openapi::ErrorBody), (status = 404, description = "unknown token", body = crate::openapi::ErrorBody), (status = 410, description = "link expired or envelope ended", body = crate::openapi::ErrorBody), (status = 429, description = "too many access-code attempts", body = crate::openapi::ErrorBody)))]
async fn consent(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Path(token): Path<String>,
    headers: HeaderMap,
    ApiJson(b): ApiJson<Consent>,
) -> Result<Json<Value>, ApiError> {
    st.workflow.consent(&token, access_code(&headers), b.accepted, &client).await?;
    Ok(Json(json!({ "consented": true })))
}

#[utoipa::path(post, path = "/api/v1/signing/{token}/complete", operation_id = "signer_complete", tag = "signing", params(("token" = String, Path, description = "the signing token from the invitation or embedded link"), ("X-Access-Code" = Option<String>, Header, description = "the access code, when the sender set one")), request_body = sigillum_core::workflow::CompleteRequest, responses((status = 200, description = "signed", body = Object), (status = 409, description = "consent missing, not your turn, or finished", body = crate::openapi::ErrorBody), (status = 422, description = "invalid values or signature", body = crate::openapi::ErrorBody), (status = 403, description = "access code missing or wrong", body = crate::openapi::ErrorBody), (status = 404, description = "unknown token", body = crate::openapi::ErrorBody), (status = 410, description = "link expired or envelope ended", body = crate::openapi::ErrorBody), (status = 429, description = "too many access-code attempts", body = crate::openapi::ErrorBody)))]
async fn complete(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Path(token): Path<String>,
    headers: HeaderMap,
    ApiJson(b): ApiJson<CompleteRequest>,
) -> Result<Json<Value>, ApiError> {
    st.workflow.complete(&token, access_code(&headers), b, &client).await?;
    Ok(Json(json!({ "status": "signed" })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Decline {
    reason: String,
}

#[utoipa::path(post, path = "/api/v1/signing/{token}/decline", operation_id = "signer_decline", tag = "signing", params(("token" = String, Path, description = "the signing token from the invitation or embedded link"), ("X-Access-Code" = Option<String>, Header, description = "the access code, when the sender set one")), request_body = Decline, responses((status = 200, description = "declined; the envelope ends", body = Object), (status = 409, description = "not your turn or finished", body = crate::openapi::ErrorBody), (status = 403, description = "access code missing or wrong", body = crate::openapi::ErrorBody), (status = 404, description = "unknown token", body = crate::openapi::ErrorBody), (status = 410, description = "link expired or envelope ended", body = crate::openapi::ErrorBody), (status = 429, description = "too many access-code attempts", body = crate::openapi::ErrorBody)))]
async fn decline(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Path(token): Path<String>,
    headers: HeaderMap,
    ApiJson(b): ApiJson<Decline>,
) -> Result<Response, ApiError> {
    st.workflow.decline(&token, access_code(&headers), &b.reason, &client).await?;
    Ok((StatusCode::OK, Json(json!({ "status": "declined" }))).into_response())
}
