//! `GET /api/v1/organisation/export`: everything an organisation has with us, as one tar archive
//! its owner can keep and check without us (data portability). Per envelope: its detail
//! (`envelope.json`: title, status, recipients, fields), its whole audit trail with inclusion
//! proofs and the signed checkpoint (`audit-trail.json`, the wire shape of `…/events`), the
//! original document and, once completed, the sealed final document (`sigillum verify` checks it
//! offline). At the top: `organisation.json` (with the log's verifier key, to check the trails)
//! and a README.
//!
//! The archive is streamed one envelope at a time (memory holds one envelope's documents), and
//! the export is an audit event (`organisation.exported`). A failure half-way ends the stream
//! without the archive's end marker, so a truncated archive never passes for a whole one.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;
use sigillum_core::{EnvelopeId, Principal};

use crate::auth::Authenticated;
use crate::client::Client;
use crate::error::ApiError;
use crate::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/v1/organisation/export", get(export))
}

const ROOT: &str = "sigillum-export";

const README: &str = "Sigillum export\n\n\
organisation.json        the organisation, when this was exported, and the audit log's verifier key\n\
envelopes/<id>/envelope.json     title, status, recipients and fields\n\
envelopes/<id>/audit-trail.json  every event of the envelope with its inclusion proof and the signed\n\
                                 checkpoint it is proven against (verify with the key in organisation.json)\n\
envelopes/<id>/original.pdf      the document as uploaded (after removal of active content)\n\
envelopes/<id>/final.pdf         the sealed final document, for completed envelopes\n\
                                 (check it offline: sigillum verify final.pdf --trust ca.pem)\n";

/// One archive member: a ustar header, the data, zero padding to the 512-byte block.
fn entry(out: &mut Vec<u8>, path: &str, data: &[u8], mtime_unix_s: u64) -> Result<(), ApiError> {
    let mut h = tar::Header::new_ustar();
    h.set_path(format!("{ROOT}/{path}")).map_err(|_| ApiError::internal())?;
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(mtime_unix_s);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    Ok(())
}

fn json_bytes(v: &impl serde::Serialize) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec_pretty(v).map_err(|_| ApiError::internal())
}

/// The members of one envelope.
async fn envelope_entries(st: &AppState, p: &Principal, id: EnvelopeId, now_s: u64) -> Result<Bytes, ApiError> {
    let e = st.envelopes.export_envelope(p, id).await?;
    let dir = format!("envelopes/{id}");
    let mut out = Vec::with_capacity(e.original.len() + e.final_document.as_ref().map_or(0, Vec::len) + 64 * 1024);
    entry(&mut out, &format!("{dir}/envelope.json"), &json_bytes(&e.detail)?, now_s)?;
    entry(&mut out, &format!("{dir}/audit-trail.json"), &json_bytes(&e.trail)?, now_s)?;
    entry(&mut out, &format!("{dir}/original.pdf"), &e.original, now_s)?;
    if let Some(f) = &e.final_document {
        entry(&mut out, &format!("{dir}/final.pdf"), f, now_s)?;
    }
    Ok(Bytes::from(out))
}

#[utoipa::path(get, path = "/api/v1/organisation/export", tag = "accounts", security(("api_key" = []), ("session" = [])),
    responses((status = 200, description = "a tar archive: organisation.json, and per envelope its detail, audit trail with proofs, original and final documents", content_type = "application/x-tar"),
        (status = 401, description = "not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "not the owner", body = crate::openapi::ErrorBody)))]
async fn export(
    State(st): State<Arc<AppState>>,
    Client(client): Client,
    Authenticated(p): Authenticated,
) -> Result<Response, ApiError> {
    let ids = st.envelopes.export_ids(&p, &client).await?;
    let org = st.accounts.organisation(&p).await?;
    let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut head = Vec::new();
    entry(&mut head, "README.txt", README.as_bytes(), now_s)?;
    let about = json!({
        "organisation": org,
        "exported_unix_ms": now_s * 1000,
        "envelopes": ids.len(),
        "log_verifier_key": st.audit.verifier_key(),
    });
    entry(&mut head, "organisation.json", &json_bytes(&about)?, now_s)?;
    let filename = format!("attachment; filename=\"sigillum-export-{}.tar\"", org.id);
    // Members in order: the head, one chunk per envelope, then the end marker (two zero blocks).
    let chunks = futures::stream::unfold(Some((0usize, Some(Bytes::from(head)))), move |state| {
        let (st, p, ids) = (st.clone(), p.clone(), ids.clone());
        async move {
            let (next, head) = state?;
            if let Some(h) = head {
                return Some((Ok::<_, std::io::Error>(h), Some((next, None))));
            }
            match ids.get(next) {
                Some(id) => match envelope_entries(&st, &p, *id, now_s).await {
                    Ok(b) => Some((Ok(b), Some((next + 1, None)))),
                    Err(_) => {
                        tracing::warn!(envelope = %id, "export stopped: an envelope could not be read");
                        Some((Err(std::io::Error::other("export failed")), None))
                    }
                },
                None if next == ids.len() => Some((Ok(Bytes::from(vec![0u8; 1024])), Some((next + 1, None)))),
                None => None,
            }
        }
    });
    let mut resp = Body::from_stream(chunks).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&filename) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
