//! Envelope routes: upload, list, detail, download, delete, and the envelope's audit trail as
//! JSON (with inclusion proofs), CSV, and a live Server-Sent Events stream.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use sigillum_core::audit_log::TrailEvent;
use sigillum_core::envelopes::{NewField, NewRecipient};
use sigillum_core::workflow::SendRequest;
use sigillum_core::{EnvelopeError, EnvelopeId, Principal};
use sigillum_pdf::PdfError;

use crate::auth::Authenticated;
use crate::client::Client;
use crate::error::ApiError;
use crate::json::{ApiJson, OptionalJson};
use crate::AppState;

/// Multipart overhead allowed on top of the document size limit.
const MULTIPART_SLACK: usize = 64 * 1024;

pub fn routes(max_upload: usize) -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/envelopes", get(list).post(create).layer(DefaultBodyLimit::max(max_upload + MULTIPART_SLACK)))
        .route("/api/v1/envelopes/{id}", get(detail).delete(remove))
        .route("/api/v1/envelopes/{id}/recipients", post(add_recipient))
        .route("/api/v1/envelopes/{id}/fields", post(add_field))
        .route("/api/v1/envelopes/{id}/send", post(send))
        .route("/api/v1/envelopes/{id}/void", post(void))
        .route("/api/v1/envelopes/{id}/recipients/{rid}/signing-link", post(signing_link))
        .route("/api/v1/envelopes/{id}/document", get(document))
        .route("/api/v1/envelopes/{id}/events", get(events))
        .route("/api/v1/envelopes/{id}/events/stream", get(stream))
}

impl From<EnvelopeError> for ApiError {
    fn from(e: EnvelopeError) -> Self {
        let unprocessable = |code, m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, m);
        match e {
            EnvelopeError::NotFound => ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource"),
            EnvelopeError::Invalid(m) => unprocessable("invalid_input", m),
            EnvelopeError::TooLarge(max) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "document_too_large",
                format!("the document is larger than {max} bytes"),
            ),
            EnvelopeError::Pdf(p) => {
                let code = match p {
                    PdfError::TooLarge(_) => "document_too_large",
                    PdfError::NotPdf => "not_a_pdf",
                    PdfError::Encrypted => "encrypted_pdf",
                    PdfError::Malformed => "damaged_pdf",
                    PdfError::NoPages => "pdf_without_pages",
                    PdfError::TooManyPages(_) => "too_many_pages",
                    PdfError::BadPageSize(_) => "bad_page_size",
                    PdfError::TooManyObjects(_) => "too_many_objects",
                    PdfError::TooDeep(_) => "pdf_too_deep",
                    PdfError::DecompressionBomb(_) => "decompression_bomb",
                    PdfError::PageTreeLoop => "page_tree_loop",
                };
                // A file over the size limit is refused as too large; anything else about the PDF
                // (damaged, encrypted, a decompression bomb, a circular page tree…) is unprocessable.
                let status = match p {
                    PdfError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                    _ => StatusCode::UNPROCESSABLE_ENTITY,
                };
                ApiError::new(status, code, p.to_string())
            }
            EnvelopeError::Conflict(c) => ApiError::new(StatusCode::CONFLICT, c.code, c.message),
            EnvelopeError::Gone("erased") => ApiError::new(
                StatusCode::GONE,
                "erased",
                "this document was erased: the key that could decrypt it no longer exists",
            ),
            EnvelopeError::Gone(code) => {
                ApiError::new(StatusCode::GONE, code, "this signing link no longer works; ask the sender for a new one")
            }
            EnvelopeError::AccessCode(code) => ApiError::new(
                StatusCode::FORBIDDEN,
                code,
                "enter the access code the sender gave you (header X-Access-Code)",
            ),
            EnvelopeError::Forbidden => {
                ApiError::new(StatusCode::FORBIDDEN, "owner_only", "only the organisation's owner may do this")
            }
            EnvelopeError::PreviewFailed(reason) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "preview_failed",
                format!("page previews cannot be made for this document ({reason}); its PDF can still be downloaded"),
            ),
            EnvelopeError::PreviewPending => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "preview_pending",
                "the page previews are still being rendered; try again shortly",
            )
            .retry_after(2),
            EnvelopeError::Throttled(s) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", "too many attempts; try again later")
                    .retry_after(s)
            }
            EnvelopeError::QuotaExceeded(q) => ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                "quota_exceeded",
                format!(
                    "the {} plan allows {} envelopes in this period; the organisation's owner can upgrade at {}",
                    q.plan, q.limit, q.upgrade_url
                ),
            )
            .link("upgrade_url", q.upgrade_url),
            EnvelopeError::Internal(m) => {
                tracing::error!(error = %m, "envelope operation failed");
                ApiError::internal()
            }
        }
    }
}

pub(crate) fn envelope_id(raw: &str) -> Result<EnvelopeId, ApiError> {
    EnvelopeId::parse(raw).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource"))
}

#[utoipa::path(post, path = "/api/v1/envelopes", operation_id = "create_envelope", tag = "envelopes", security(("api_key" = []), ("session" = [])), request_body(content = Object, content_type = "multipart/form-data", description = "parts `title` (text) then `file` (the PDF)"), responses((status = 201, description = "draft envelope", body = sigillum_core::envelopes::EnvelopeView), (status = 413, description = "document too large", body = crate::openapi::ErrorBody), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "not found (or another organisation's)", body = crate::openapi::ErrorBody), (status = 403, description = "missing CSRF token (cookie sessions)", body = crate::openapi::ErrorBody), (status = 409, description = "not allowed in the envelope's status", body = crate::openapi::ErrorBody), (status = 422, description = "invalid input, or not a PDF that can be used: `not_a_pdf`, `encrypted_pdf`, `damaged_pdf`, `too_many_pages`, `too_many_objects`, `pdf_too_deep`, `decompression_bomb`, `page_tree_loop`…", body = crate::openapi::ErrorBody)))]
async fn create(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Authenticated(p): Authenticated,
    mut form: Multipart,
) -> Result<Response, ApiError> {
    let bad = |m: &str| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", m);
    // The body limit may strike while any part is read (the reader runs ahead of the parts).
    let multipart_error = |e: axum::extract::multipart::MultipartError, what: &str| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::from(EnvelopeError::TooLarge(st.envelopes.limits().max_bytes as u64))
        } else {
            bad(what)
        }
    };
    let mut title: Option<String> = None;
    loop {
        let field =
            form.next_field().await.map_err(|e| multipart_error(e, "the body is not valid multipart/form-data"))?;
        let Some(field) = field else {
            return Err(bad("a `file` part with the PDF is required"));
        };
        match field.name() {
            Some("title") => {
                let text = field.text().await.map_err(|e| multipart_error(e, "the title could not be read"))?;
                title = Some(text);
            }
            Some("file") => {
                let fallback = field.file_name().map(|n| n.trim_end_matches(".pdf").to_owned());
                let title = title.or(fallback).unwrap_or_else(|| "Untitled".to_owned());
                // The body limit can also strike inside the file part; say so, not "malformed".
                let over_limit = Arc::new(AtomicBool::new(false));
                let flag = over_limit.clone();
                let body = field.map(move |piece| {
                    piece.inspect_err(|e| {
                        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                            flag.store(true, Ordering::SeqCst);
                        }
                    })
                });
                return match st.envelopes.create(&p, &title, body, &client).await {
                    Ok(view) => {
                        // Previews render in the background; a failure to queue them only costs previews.
                        if let Err(e) = st.workflow.schedule_previews(view.id).await {
                            tracing::warn!(envelope = %view.id, error = %e, "could not queue page previews");
                        }
                        Ok((StatusCode::CREATED, Json(view)).into_response())
                    }
                    Err(_) if over_limit.load(Ordering::SeqCst) => {
                        Err(EnvelopeError::TooLarge(st.envelopes.limits().max_bytes as u64).into())
                    }
                    Err(e) => Err(e.into()),
                };
            }
            _ => return Err(bad("unknown form part; send `title`, then `file`")),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/envelopes", operation_id = "list_envelopes", tag = "envelopes", security(("api_key" = []), ("session" = [])), responses((status = 200, description = "`{envelopes: [...]}`, newest first", body = Object), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "not found (or another organisation's)", body = crate::openapi::ErrorBody)))]
async fn list(State(st): State<Arc<AppState>>, Authenticated(p): Authenticated) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "envelopes": st.envelopes.list(&p).await? })))
}

#[utoipa::path(get, path = "/api/v1/envelopes/{id}", tag = "envelopes", security(("api_key" = []), ("session" = [])), params(("id" = String, Path, description = "envelope id")), responses((status = 200, description = "envelope with recipients and fields", body = sigillum_core::envelopes::EnvelopeDetail), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "not found (or another organisation's)", body = crate::openapi::ErrorBody)))]
async fn detail(
    State(st): State<Arc<AppState>>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(serde_json::to_value(st.envelopes.detail(&p, envelope_id(&id)?).await?).map_err(|_| ApiError::internal())?))
}

#[utoipa::path(post, path = "/api/v1/envelopes/{id}/recipients", tag = "envelopes", security(("api_key" = []), ("session" = [])), params(("id" = String, Path, description = "envelope id")), request_body = sigillum_core::envelopes::NewRecipient, responses((status = 201, description = "recipient", body = sigillum_core::envelopes::RecipientView), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "not found (or another organisation's)", body = crate::openapi::ErrorBody), (status = 403, description = "missing CSRF token (cookie sessions)", body = crate::openapi::ErrorBody), (status = 409, description = "not allowed in the envelope's status", body = crate::openapi::ErrorBody), (status = 422, description = "invalid input", body = crate::openapi::ErrorBody)))]
async fn add_recipient(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<NewRecipient>,
) -> Result<Response, ApiError> {
    let view = st.envelopes.add_recipient(&p, envelope_id(&id)?, input, &client).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[utoipa::path(post, path = "/api/v1/envelopes/{id}/fields", tag = "envelopes", security(("api_key" = []), ("session" = [])), params(("id" = String, Path, description = "envelope id")), request_body = sigillum_core::envelopes::NewField, responses((status = 201, description = "field (page 1-based, PDF points, origin top-left)", body = sigillum_core::envelopes::FieldView), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "not found (or another organisation's)", body = crate::openapi::ErrorBody), (status = 403, description = "missing CSRF token (cookie sessions)", body = crate::openapi::ErrorBody), (status = 409, description = "not allowed in the envelope's status", body = crate::openapi::ErrorBody), (status = 422, description = "invalid input", body = crate::openapi::ErrorBody)))]
async fn add_field(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<NewField>,
) -> Result<Response, ApiError> {
    let view = st.envelopes.add_field(&p, envelope_id(&id)?, input, &client).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[utoipa::path(delete, path = "/api/v1/envelopes/{id}", tag = "envelopes", security(("api_key" = []), ("session" = [])), params(("id" = String, Path, description = "envelope id")), responses((status = 204, description = "crypto-shredded"), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "not found (or another organisation's)", body = crate::openapi::ErrorBody), (status = 403, description = "missing CSRF token (cookie sessions)", body = crate::openapi::ErrorBody), (status = 409, description = "not allowed in the envelope's status", body = crate::openapi::ErrorBody), (status = 422, description = "invalid input", body = crate::openapi::ErrorBody)))]
async fn remove(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.envelopes.delete(&p, envelope_id(&id)?, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct DocumentQuery {
    version: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/envelopes/{id}/document", operation_id = "envelope_document", tag = "envelopes", security(("api_key" = []), ("session" = [])), params(("id" = String, Path, description = "envelope id"), ("version" = Option<String>, Query, description = "`original` (default) or `final`")), responses((status = 200, description = "the PDF", content_type = "application/pdf", body = Vec<u8>), (status = 409, description = "no final document yet", body = crate::openapi::ErrorBody), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "not found (or another organisation's)", body = crate::openapi::ErrorBody)))]
async fn document(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
    Query(q): Query<DocumentQuery>,
) -> Result<Response, ApiError> {
    let id = envelope_id(&id)?;
    let version = q.version.as_deref().unwrap_or("original");
    if !matches!(version, "original" | "final") {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", "version is original or final"));
    }
    let (view, bytes) = st.envelopes.download(&p, id, version, &client).await?;
    Ok(pdf_response(&view.title, bytes))
}

/// A PDF download named after the envelope's title (reduced to safe characters).
pub(crate) fn pdf_response(title: &str, bytes: Vec<u8>) -> Response {
    let name: String =
        title.chars().map(|c| if c.is_ascii_alphanumeric() || " -_.".contains(c) { c } else { '_' }).collect();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}.pdf\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment; filename=\"document.pdf\""));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/pdf")),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        bytes,
    )
        .into_response()
}

#[utoipa::path(post, path = "/api/v1/envelopes/{id}/send", tag = "envelopes", security(("api_key" = []), ("session" = [])), params(("id" = String, Path, description = "envelope id")), request_body(content = Option<sigillum_core::workflow::SendRequest>, description = "optional"), responses((status = 402, description = "the plan's envelopes for this period are used up (`quota_exceeded`, with `upgrade_url`)", body = crate::openapi::ErrorBody), (status = 200, description = "sent; the first routing step is invited", body = sigillum_core::envelopes::EnvelopeDetail), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "not found (or another organisation's)", body = crate::openapi::ErrorBody), (status = 403, description = "missing CSRF token (cookie sessions)", body = crate::openapi::ErrorBody), (status = 409, description = "not allowed in the envelope's status", body = crate::openapi::ErrorBody), (status = 422, description = "invalid input", body = crate::openapi::ErrorBody)))]
async fn send(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
    OptionalJson(req): OptionalJson<SendRequest>,
) -> Result<Json<Value>, ApiError> {
    let detail = st.workflow.send(&p, envelope_id(&id)?, req, &client).await?;
    Ok(Json(serde_json::to_value(detail).map_err(|_| ApiError::internal())?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VoidRequest {
    reason: String,
}

#[utoipa::path(post, path = "/api/v1/envelopes/{id}/void", tag = "envelopes", security(("api_key" = []), ("session" = [])), params(("id" = String, Path, description = "envelope id")), request_body = VoidRequest, responses((status = 200, description = "voided", body = sigillum_core::envelopes::EnvelopeDetail), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "not found (or another organisation's)", body = crate::openapi::ErrorBody), (status = 403, description = "missing CSRF token (cookie sessions)", body = crate::openapi::ErrorBody), (status = 409, description = "not allowed in the envelope's status", body = crate::openapi::ErrorBody), (status = 422, description = "invalid input", body = crate::openapi::ErrorBody)))]
async fn void(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<VoidRequest>,
) -> Result<Json<Value>, ApiError> {
    let id = envelope_id(&id)?;
    st.workflow.void(&p, id, &b.reason, &client).await?;
    Ok(Json(serde_json::to_value(st.envelopes.detail(&p, id).await?).map_err(|_| ApiError::internal())?))
}

#[utoipa::path(post, path = "/api/v1/envelopes/{id}/recipients/{rid}/signing-link", tag = "envelopes", security(("api_key" = []), ("session" = [])), params(("id" = String, Path, description = "envelope id"), ("rid" = String, Path, description = "recipient id")), responses((status = 201, description = "`{url}`: an embedded signing link, valid one hour", body = Object), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "not found (or another organisation's)", body = crate::openapi::ErrorBody), (status = 403, description = "missing CSRF token (cookie sessions)", body = crate::openapi::ErrorBody), (status = 409, description = "not allowed in the envelope's status", body = crate::openapi::ErrorBody), (status = 422, description = "invalid input", body = crate::openapi::ErrorBody)))]
async fn signing_link(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Authenticated(p): Authenticated,
    Path((id, rid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let rid = uuid::Uuid::parse_str(&rid).map_err(|_| ApiError::from(EnvelopeError::NotFound))?;
    let url = st.workflow.signing_link(&p, envelope_id(&id)?, rid, &client).await?;
    Ok((StatusCode::CREATED, Json(json!({ "url": url }))).into_response())
}

#[derive(Deserialize)]
struct EventsQuery {
    format: Option<String>,
    from: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/envelopes/{id}/events", tag = "audit", security(("api_key" = []), ("session" = [])), params(("id" = String, Path, description = "envelope id"), ("format" = Option<String>, Query, description = "`json` (default) or `csv`"), ("from" = Option<u64>, Query, description = "first log index")), responses((status = 200, description = "the audit trail with inclusion proofs", body = sigillum_core::Trail), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "not found (or another organisation's)", body = crate::openapi::ErrorBody)))]
async fn events(
    State(st): State<Arc<AppState>>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    let trail = st.envelopes.trail(&p, envelope_id(&id)?, q.from.unwrap_or(0)).await?;
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(trail).into_response()),
        "csv" => Ok((
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8")),
                (header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"audit-trail.csv\"")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            csv(&trail.events),
        )
            .into_response()),
        _ => Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", "format is json or csv")),
    }
}

/// One CSV cell: quoted when needed, and never starting with a character a spreadsheet would
/// run as a formula (OWASP CSV injection).
fn cell(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{v}") } else { v.to_owned() };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

fn csv(events: &[TrailEvent]) -> String {
    let mut out = String::from(
        "seq,time,kind,actor_kind,actor_id,actor_name,actor_email,ip,user_agent,device,document_sha256,details,leaf_hash\r\n",
    );
    for e in events {
        let ev = &e.event;
        let text = |v: &Value| v.as_str().map(str::to_owned).unwrap_or_default();
        let disclosed = |path: &str| e.disclosed.as_ref().and_then(|d| d.0.get(path)).map(|d| d.value.clone());
        let device = ev
            .get("device")
            .map(|d| format!("{} · {} · {}", text(&d["browser"]), text(&d["os"]), text(&d["kind"])))
            .unwrap_or_default();
        let details = ev.get("details").map(|d| d.to_string()).unwrap_or_default();
        let row = [
            e.seq.to_string(),
            text(&ev["time"]),
            text(&ev["kind"]),
            text(&ev["actor"]["kind"]),
            text(&ev["actor"]["id"]),
            disclosed("actor.name").unwrap_or_default(),
            disclosed("actor.email").unwrap_or_default(),
            disclosed("ip").unwrap_or_default(),
            disclosed("user_agent").unwrap_or_default(),
            device,
            text(&ev["document_sha256"]),
            details,
            e.leaf_hash.clone(),
        ];
        out.push_str(&row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out
}

/// State of one live stream.
struct Live {
    st: Arc<AppState>,
    principal: Principal,
    id: EnvelopeId,
    next: u64,
    pending: VecDeque<Event>,
    sizes: tokio::sync::watch::Receiver<u64>,
}

impl Live {
    /// The next SSE message: queued events first, then new ones as the log grows. Ends when the
    /// envelope is gone or the log stops.
    async fn next_event(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some((Ok(e), self));
            }
            self.sizes.borrow_and_update();
            let trail = self.st.envelopes.trail(&self.principal, self.id, self.next).await.ok()?;
            for e in trail.events {
                self.next = e.seq + 1;
                let data = json!({ "tree_size": trail.tree_size, "checkpoint": trail.checkpoint, "event": e });
                let msg = Event::default().event("audit").id(e.seq.to_string()).json_data(data).ok()?;
                self.pending.push_back(msg);
            }
            if self.pending.is_empty() {
                self.sizes.changed().await.ok()?;
            }
        }
    }
}

#[utoipa::path(get, path = "/api/v1/envelopes/{id}/events/stream", tag = "audit", security(("api_key" = []), ("session" = [])), params(("id" = String, Path, description = "envelope id"), ("Last-Event-ID" = Option<String>, Header, description = "resume after this event")), responses((status = 200, description = "Server-Sent Events, one `audit` event per log entry", content_type = "text/event-stream", body = String), (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "not found (or another organisation's)", body = crate::openapi::ErrorBody)))]
async fn stream(
    State(st): State<Arc<AppState>>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
    headers: axum::http::HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = envelope_id(&id)?;
    st.envelopes.authorize(&p, id).await?;
    // A reconnecting EventSource resumes after the last event it saw.
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let next = resume.map(|s| s + 1).or(q.from).unwrap_or(0);
    let live = Live { sizes: st.envelopes.audit().subscribe(), st, principal: p, id, next, pending: VecDeque::new() };
    let events = futures::stream::unfold(live, Live::next_event);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("+1"), "'+1");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
    }
}
