//! The internal PKI's public face (DESIGN §7): the root certificate relying parties trust
//! (`/pki/ca.pem`), the root's current CRL (`/pki/crl`, named in every certificate it issued),
//! and the built-in RFC 3161 timestamp authority (`POST /tsa`, RFC 3161 §3.4 over HTTP). Anyone
//! may call them; none carries personal data. Also the clients for an external TSA
//! (`SIGILLUM_TSA_URL`) and for the CRLs of outside certificates (an imported seal chain, an
//! external TSA's certificate), which the sealer embeds for long-term validation.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use sigillum_core::pki::{PkiServiceError, TimestampAuthority};
use sigillum_core::seal::RevocationSource;

use crate::error::ApiError;
use crate::AppState;

/// A timestamp request is a hash and a few fields; 4 KiB is generous.
const MAX_TSA_REQUEST: usize = 4096;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/pki/ca.pem", get(ca))
        .route("/pki/crl", get(crl))
        .route("/tsa", post(tsa).layer(DefaultBodyLimit::max(MAX_TSA_REQUEST)))
}

fn unavailable(e: PkiServiceError) -> ApiError {
    tracing::error!(error = %e, "internal PKI unavailable");
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "pki_unavailable", "the certificate authority is unavailable")
}

#[utoipa::path(get, path = "/pki/ca.pem", tag = "pki", responses((status = 200, description = "the internal root CA certificate (PEM): the trust anchor for sealed documents", content_type = "application/x-pem-file", body = String)))]
async fn ca(State(st): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    let certs = st.pki.certificates().await.map_err(unavailable)?;
    Ok((
        [(header::CONTENT_TYPE, "application/x-pem-file"), (header::CACHE_CONTROL, "public, max-age=3600")],
        certs.root.pem(),
    ))
}

#[utoipa::path(get, path = "/pki/crl", tag = "pki", responses((status = 200, description = "the root's current CRL (DER, valid 7 days)", content_type = "application/pkix-crl", body = Vec<u8>)))]
async fn crl(State(st): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    let der = st.pki.crl().await.map_err(unavailable)?;
    Ok(([(header::CONTENT_TYPE, "application/pkix-crl"), (header::CACHE_CONTROL, "public, max-age=3600")], der))
}

#[utoipa::path(post, path = "/tsa", tag = "pki", request_body(content = Vec<u8>, content_type = "application/timestamp-query", description = "DER TimeStampReq (SHA-256 imprint)"), responses((status = 200, description = "DER TimeStampResp: granted with a token, or a rejection status", content_type = "application/timestamp-reply", body = Vec<u8>), (status = 415, description = "not application/timestamp-query", body = crate::openapi::ErrorBody)))]
async fn tsa(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Result<impl IntoResponse, ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.eq_ignore_ascii_case("application/timestamp-query") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send a DER TimeStampReq as application/timestamp-query",
        ));
    }
    let reply = st.pki.respond(&body).await.map_err(unavailable)?;
    Ok(([(header::CONTENT_TYPE, "application/timestamp-reply")], reply))
}

/// An external RFC 3161 authority reached over HTTP(S).
pub struct HttpTimestampAuthority {
    url: String,
    client: reqwest::Client,
}

impl HttpTimestampAuthority {
    pub fn new(url: &str) -> Result<Self, PkiServiceError> {
        let parsed = url::Url::parse(url).map_err(|e| PkiServiceError::Config(format!("SIGILLUM_TSA_URL: {e}")))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(PkiServiceError::Config("SIGILLUM_TSA_URL must be an http(s) URL".into()));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| PkiServiceError::Config(format!("TSA client: {e}")))?;
        Ok(Self { url: url.to_owned(), client })
    }
}

#[async_trait::async_trait]
impl TimestampAuthority for HttpTimestampAuthority {
    async fn timestamp(&self, request_der: &[u8]) -> Result<Vec<u8>, PkiServiceError> {
        let resp = self
            .client
            .post(&self.url)
            .header(header::CONTENT_TYPE, "application/timestamp-query")
            .body(request_der.to_vec())
            .send()
            .await
            .map_err(|e| PkiServiceError::TsaUnavailable(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(PkiServiceError::TsaUnavailable(format!("HTTP {}", resp.status())));
        }
        let body = resp.bytes().await.map_err(|e| PkiServiceError::TsaUnavailable(e.without_url().to_string()))?;
        if body.len() > 64 * 1024 {
            return Err(PkiServiceError::TsaUnavailable("response too large".into()));
        }
        Ok(body.to_vec())
    }
}

/// The largest CRL fetched: large public CAs publish CRLs of a few MiB.
const MAX_CRL_BYTES: usize = 16 * 1024 * 1024;

/// Fetches CRLs and asks OCSP responders over HTTP(S), at the URLs named in certificates. Those
/// URLs come from certificates the operator configured (imported chain, external TSA), not from
/// users; the sealer checks every answer's signature against the certificate's issuer.
pub struct HttpRevocationSource {
    client: reqwest::Client,
}

impl HttpRevocationSource {
    pub fn new() -> Result<Self, PkiServiceError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| PkiServiceError::Config(format!("CRL client: {e}")))?;
        Ok(Self { client })
    }
}

/// The largest OCSP response read (one certificate's status and the responder's chain).
const MAX_OCSP_BYTES: usize = 1024 * 1024;

/// The body of a successful response, refused once it grows past `limit` bytes.
async fn limited_body(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let too_large = || format!("the response is larger than {} KiB", limit / 1024);
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.without_url().to_string())? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[async_trait::async_trait]
impl RevocationSource for HttpRevocationSource {
    async fn fetch_crl(&self, url: &str) -> Result<Vec<u8>, String> {
        let resp = self.client.get(url).send().await.map_err(|e| e.without_url().to_string())?;
        limited_body(resp, MAX_CRL_BYTES).await
    }

    async fn ask_ocsp(&self, url: &str, request_der: &[u8]) -> Result<Vec<u8>, String> {
        let resp = self
            .client
            .post(url)
            .header(header::CONTENT_TYPE, "application/ocsp-request")
            .header(header::ACCEPT, "application/ocsp-response")
            .body(request_der.to_vec())
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        limited_body(resp, MAX_OCSP_BYTES).await
    }
}
