//! Page previews (DESIGN §7): `GET /api/v1/envelopes/{id}/pages/{n}.png` for the sender's
//! organisation and `GET /api/v1/signing/{token}/pages/{n}.png` for a signer, `?size=large`
//! (default, 1000 px wide) or `?size=thumbnail` (200 px). Until the background job has rendered
//! them the answer is 503 `preview_pending` with `Retry-After`; for a document the renderer refuses
//! (an image over the pixel budget, say), 422 `preview_failed` with the reason.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sigillum_pdf::preview::PreviewSize;

use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/envelopes/{id}/pages/{page}", get(envelope_page))
        .route("/api/v1/signing/{token}/pages/{page}", get(signer_page))
}

/// `3.png` → 3.
fn page_number(file: &str) -> Result<u32, ApiError> {
    file.strip_suffix(".png")
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| *n >= 1)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "pages are /pages/{n}.png, n from 1"))
}

fn size(q: &HashMap<String, String>) -> Result<PreviewSize, ApiError> {
    match q.get("size") {
        None => Ok(PreviewSize::Large),
        Some(s) => PreviewSize::parse(s).ok_or_else(|| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_size", "size is large or thumbnail")
        }),
    }
}

fn png(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "no-store")], bytes).into_response()
}

#[utoipa::path(get, path = "/api/v1/envelopes/{id}/pages/{page}", operation_id = "envelope_page_preview", tag = "envelopes", security(("api_key" = []), ("session" = [])), params(("id" = String, Path, description = "envelope id"), ("page" = String, Path, description = "`{n}.png`, n from 1"), ("size" = Option<String>, Query, description = "large (default) or thumbnail")), responses((status = 200, description = "PNG preview of the page as sent for signing", content_type = "image/png", body = Vec<u8>), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "no such envelope or page", body = crate::openapi::ErrorBody), (status = 422, description = "previews cannot be made for this document (preview_failed)", body = crate::openapi::ErrorBody), (status = 503, description = "previews still rendering; retry", body = crate::openapi::ErrorBody)))]
async fn envelope_page(
    State(st): State<Arc<AppState>>,
    Authenticated(p): Authenticated,
    Path((id, page)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let id = crate::envelopes::envelope_id(&id)?;
    let (page, size) = (page_number(&page)?, size(&q)?);
    Ok(png(st.workflow.page_preview(&p, id, page, size).await?))
}

#[utoipa::path(get, path = "/api/v1/signing/{token}/pages/{page}", operation_id = "signer_page_preview", tag = "signing", params(("token" = String, Path, description = "the signing token"), ("page" = String, Path, description = "`{n}.png`, n from 1"), ("size" = Option<String>, Query, description = "large (default) or thumbnail"), ("X-Access-Code" = Option<String>, Header, description = "the access code, when the sender set one")), responses((status = 200, description = "PNG preview of the page", content_type = "image/png", body = Vec<u8>), (status = 403, description = "access code missing or wrong", body = crate::openapi::ErrorBody), (status = 404, description = "unknown token or page", body = crate::openapi::ErrorBody), (status = 410, description = "link expired or envelope ended", body = crate::openapi::ErrorBody), (status = 422, description = "previews cannot be made for this document (preview_failed)", body = crate::openapi::ErrorBody), (status = 503, description = "previews still rendering; retry", body = crate::openapi::ErrorBody)))]
async fn signer_page(
    State(st): State<Arc<AppState>>,
    Path((token, page)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (page, size) = (page_number(&page)?, size(&q)?);
    let code = crate::signing::access_code(&headers);
    Ok(png(st.workflow.signer_page_preview(&token, code, page, size).await?))
}
