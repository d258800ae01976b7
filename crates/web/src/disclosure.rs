//! Vulnerability disclosure: `/.well-known/security.txt` (RFC 9116) with the operator's contact,
//! expiry, policy, languages and canonical URL from the configuration, and the project's
//! disclosure policy (`SECURITY.md`) at `/security-policy`, which the default `Policy:` points to.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::AppState;

/// The project's disclosure policy, served as the default `Policy:`.
const SECURITY_MD: &str = include_str!("../../../SECURITY.md");

/// The fields of security.txt (RFC 9116 §2.5).
#[derive(Debug, Clone)]
pub struct SecurityTxt {
    /// `mailto:` or `https:` URIs, most preferred first (at least one).
    pub contacts: Vec<String>,
    /// RFC 3339 date-time after which the file must not be trusted.
    pub expires: String,
    pub policy: String,
    /// Comma-separated language tags.
    pub preferred_languages: String,
    pub canonical: String,
}

impl SecurityTxt {
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.contacts {
            out.push_str(&format!("Contact: {c}\n"));
        }
        out.push_str(&format!("Expires: {}\n", self.expires));
        out.push_str(&format!("Policy: {}\n", self.policy));
        out.push_str(&format!("Preferred-Languages: {}\n", self.preferred_languages));
        out.push_str(&format!("Canonical: {}\n", self.canonical));
        out
    }
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/.well-known/security.txt", get(security_txt)).route("/security-policy", get(policy))
}

#[utoipa::path(get, path = "/.well-known/security.txt", tag = "operations", responses((status = 200, description = "RFC 9116 security.txt", content_type = "text/plain")))]
async fn security_txt(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=86400")],
        st.edge.security_txt.render(),
    )
}

#[utoipa::path(get, path = "/security-policy", tag = "operations", responses((status = 200, description = "how to report a vulnerability, and what we promise in return (SECURITY.md)", content_type = "text/markdown")))]
async fn policy() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/markdown; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=86400")],
        SECURITY_MD,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_field_once_per_line() {
        let t = SecurityTxt {
            contacts: vec!["mailto:security@example.com".into(), "https://example.com/report".into()],
            expires: "2027-12-01T00:00:00Z".into(),
            policy: "https://example.com/security-policy".into(),
            preferred_languages: "en, de".into(),
            canonical: "https://example.com/.well-known/security.txt".into(),
        };
        assert_eq!(
            t.render(),
            "Contact: mailto:security@example.com\nContact: https://example.com/report\nExpires: 2027-12-01T00:00:00Z\n\
             Policy: https://example.com/security-policy\nPreferred-Languages: en, de\n\
             Canonical: https://example.com/.well-known/security.txt\n"
        );
        assert!(SECURITY_MD.contains("vulnerab"));
    }
}
