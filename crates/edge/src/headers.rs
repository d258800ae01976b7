//! Security headers on every response, errors and refusals included. One policy for the whole
//! server: HSTS, a strict Content-Security-Policy (`default-src 'self'`, no plugins, no framing),
//! no MIME sniffing, no referrer, no powerful browser features, isolated browsing context and
//! resources, and `Cache-Control: no-store` unless a handler chose otherwise (responses carry
//! documents and personal data).
//!
//! The one exception is the embedded-signing page (`/s/{token}`): an integrator shows it in an
//! iframe of their own site, so its `frame-ancestors` lists the configured origins (and it drops
//! `X-Frame-Options`, which cannot name several origins and would override nothing in modern
//! browsers). Without configured origins it cannot be framed either.

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

const HSTS: &str = "max-age=63072000; includeSubDomains";
const PERMISSIONS: &str = "accelerometer=(), autoplay=(), camera=(), display-capture=(), geolocation=(), \
     gyroscope=(), magnetometer=(), microphone=(), midi=(), payment=(), publickey-credentials-get=(self), \
     screen-wake-lock=(), serial=(), usb=(), xr-spatial-tracking=()";
const CSP_BASE: &str = "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; \
     form-action 'self'";

/// Path prefix of the page that may be framed by configured origins.
pub const EMBEDDED_SIGNING_PREFIX: &str = "/s/";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not an https origin such as https://app.example.com")]
pub struct BadOrigin(String);

/// The header policy of a deployment.
#[derive(Debug, Clone)]
pub struct HeaderPolicy {
    default_csp: HeaderValue,
    embedded_csp: HeaderValue,
}

impl Default for HeaderPolicy {
    fn default() -> Self {
        Self::new(&[]).unwrap_or_else(|_| unreachable_policy())
    }
}

/// The policy without embedding origins; building it from constants cannot fail.
fn unreachable_policy() -> HeaderPolicy {
    let v = HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'");
    HeaderPolicy { default_csp: v.clone(), embedded_csp: v }
}

impl HeaderPolicy {
    /// `embed_origins`: the sites allowed to frame the embedded-signing page (`https://…`, no path).
    pub fn new(embed_origins: &[String]) -> Result<Self, BadOrigin> {
        let mut ancestors = Vec::new();
        for o in embed_origins {
            let url = url::Url::parse(o.trim()).map_err(|_| BadOrigin(o.clone()))?;
            let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
            if url.scheme() != "https" || url.host().is_none() || !bare || !url.username().is_empty() {
                return Err(BadOrigin(o.clone()));
            }
            ancestors.push(url.origin().ascii_serialization());
        }
        let ancestors = if ancestors.is_empty() { "'none'".to_owned() } else { ancestors.join(" ") };
        let value = |s: String| HeaderValue::from_str(&s).map_err(|_| BadOrigin(embed_origins.join(" ")));
        Ok(Self {
            default_csp: value(format!("{CSP_BASE}; frame-ancestors 'none'"))?,
            embedded_csp: value(format!("{CSP_BASE}; frame-ancestors {ancestors}"))?,
        })
    }

    /// Sets the headers on a response to a request for `path`. Handlers may have set their own
    /// `Cache-Control` (public, immutable assets) or a stricter CSP; those are kept.
    pub fn apply(&self, path: &str, headers: &mut HeaderMap) {
        let embedded = path.starts_with(EMBEDDED_SIGNING_PREFIX);
        let set = |h: &mut HeaderMap, name: &'static str, value: HeaderValue| {
            h.insert(HeaderName::from_static(name), value);
        };
        set(headers, "strict-transport-security", HeaderValue::from_static(HSTS));
        set(headers, "x-content-type-options", HeaderValue::from_static("nosniff"));
        set(headers, "referrer-policy", HeaderValue::from_static("no-referrer"));
        set(headers, "permissions-policy", HeaderValue::from_static(PERMISSIONS));
        set(headers, "cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
        set(headers, "cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
        set(headers, "x-permitted-cross-domain-policies", HeaderValue::from_static("none"));
        if embedded {
            headers.remove("x-frame-options");
            set(headers, "content-security-policy", self.embedded_csp.clone());
        } else {
            set(headers, "x-frame-options", HeaderValue::from_static("DENY"));
            if !headers.contains_key("content-security-policy") {
                set(headers, "content-security-policy", self.default_csp.clone());
            }
        }
        if !headers.contains_key(http::header::CACHE_CONTROL) {
            set(headers, "cache-control", HeaderValue::from_static("no-store"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(policy: &HeaderPolicy, path: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        policy.apply(path, &mut h);
        h
    }

    #[test]
    fn every_response_gets_the_full_set() {
        let h = applied(&HeaderPolicy::default(), "/api/v1/envelopes");
        for name in [
            "strict-transport-security",
            "x-content-type-options",
            "referrer-policy",
            "permissions-policy",
            "cross-origin-opener-policy",
            "cross-origin-resource-policy",
            "x-frame-options",
            "content-security-policy",
            "cache-control",
        ] {
            assert!(h.contains_key(name), "{name}");
        }
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["referrer-policy"], "no-referrer");
    }

    #[test]
    fn only_the_embedded_signing_page_may_be_framed_by_configured_origins() {
        let p = HeaderPolicy::new(&["https://crm.example.com".into(), "https://app.example.org".into()]).unwrap();
        let embedded = applied(&p, "/s/tok");
        let csp = embedded["content-security-policy"].to_str().unwrap();
        assert!(csp.ends_with("frame-ancestors https://crm.example.com https://app.example.org"), "{csp}");
        assert!(!embedded.contains_key("x-frame-options"));
        let api = applied(&p, "/api/v1/signing/tok");
        assert!(api["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
        assert_eq!(api["x-frame-options"], "DENY");
        let unconfigured = applied(&HeaderPolicy::default(), "/s/tok");
        assert!(unconfigured["content-security-policy"].to_str().unwrap().ends_with("frame-ancestors 'none'"));
    }

    #[test]
    fn handler_cache_control_is_kept() {
        let mut h = HeaderMap::new();
        h.insert("cache-control", HeaderValue::from_static("public, max-age=3600"));
        HeaderPolicy::default().apply("/pki/ca.pem", &mut h);
        assert_eq!(h["cache-control"], "public, max-age=3600");
    }

    #[test]
    fn embedding_origins_are_validated() {
        for bad in [
            "http://crm.example.com",
            "https://crm.example.com/path",
            "crm.example.com",
            "https://a.example; script-src *",
        ] {
            assert!(HeaderPolicy::new(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
