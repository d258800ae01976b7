//! Cross-site request forgery, the browser half. The session cookie is `SameSite=Strict` and every
//! unsafe cookie request needs the session's `X-CSRF-Token` (checked by the web tier); on top of
//! that, an unsafe request that a browser marks as coming from another site is refused before it
//! reaches any handler: `Sec-Fetch-Site` other than `same-origin` or `none` (Fetch Metadata), or an
//! `Origin` that is not ours (including the opaque `null`). Requests without either header are
//! not from a current browser (API clients, webhooks) and are left to the credential checks.

use http::{HeaderMap, Method};

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrossSite {
    /// `Sec-Fetch-Site` says another site (or a sibling subdomain) sent it.
    FetchSite,
    /// `Origin` names another origin.
    Origin,
}

impl CrossSite {
    pub fn code(self) -> &'static str {
        match self {
            Self::FetchSite => "cross_site_request",
            Self::Origin => "cross_origin_request",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::FetchSite => "cross-site requests may not change anything",
            Self::Origin => "requests from another origin may not change anything",
        }
    }
}

/// Safe methods change nothing, so they are never refused here.
fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Checks an unsafe request against our own origin (`scheme://host[:port]`, as in
/// `SIGILLUM_PUBLIC_URL`).
pub fn check(method: &Method, headers: &HeaderMap, own_origin: &str) -> Result<(), CrossSite> {
    if is_safe(method) {
        return Ok(());
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return Err(CrossSite::FetchSite);
        }
    }
    for origin in headers.get_all(http::header::ORIGIN) {
        let same = origin.to_str().is_ok_and(|o| o.trim_end_matches('/').eq_ignore_ascii_case(own_origin));
        if !same {
            return Err(CrossSite::Origin);
        }
    }
    Ok(())
}

/// `scheme://host[:port]` of a URL, the form browsers send in `Origin`.
pub fn origin_of(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "https://sign.example.com";

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_cross_site_form_post_is_refused() {
        let h = headers(&[("sec-fetch-site", "cross-site"), ("origin", "https://evil.example")]);
        assert_eq!(check(&Method::POST, &h, OURS), Err(CrossSite::FetchSite));
        let sibling = headers(&[("sec-fetch-site", "same-site")]);
        assert_eq!(check(&Method::DELETE, &sibling, OURS), Err(CrossSite::FetchSite));
    }

    #[test]
    fn a_foreign_or_opaque_origin_is_refused_without_fetch_metadata() {
        for o in ["https://evil.example", "null", "https://sign.example.com.evil.example", "http://sign.example.com"] {
            let mut h = HeaderMap::new();
            h.insert("origin", http::HeaderValue::from_str(o).unwrap());
            assert_eq!(check(&Method::POST, &h, OURS), Err(CrossSite::Origin), "{o}");
        }
    }

    #[test]
    fn same_origin_requests_and_non_browser_clients_pass() {
        let ui = headers(&[("sec-fetch-site", "same-origin"), ("origin", "https://sign.example.com")]);
        assert_eq!(check(&Method::POST, &ui, OURS), Ok(()));
        let typed_url = headers(&[("sec-fetch-site", "none")]);
        assert_eq!(check(&Method::POST, &typed_url, OURS), Ok(()));
        assert_eq!(check(&Method::POST, &HeaderMap::new(), OURS), Ok(()));
    }

    #[test]
    fn safe_methods_are_never_refused() {
        let h = headers(&[("sec-fetch-site", "cross-site"), ("origin", "https://evil.example")]);
        assert_eq!(check(&Method::GET, &h, OURS), Ok(()));
        assert_eq!(check(&Method::HEAD, &h, OURS), Ok(()));
    }

    #[test]
    fn origins_are_serialised_like_browsers_do() {
        assert_eq!(origin_of(&url::Url::parse("https://localhost:8443/x").unwrap()), "https://localhost:8443");
        assert_eq!(origin_of(&url::Url::parse("https://Sign.Example.com:443/").unwrap()), OURS);
    }
}
