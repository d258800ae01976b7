//! Baseline security headers on every response. Strict by default for a JSON API; the UI issue
//! refines the content security policy for its pages.

use http::header::{HeaderName, HeaderValue};
use tower_http::set_header::SetResponseHeaderLayer;

/// Layers that set the security headers (only where a handler did not set its own).
pub fn security_headers() -> Vec<SetResponseHeaderLayer<HeaderValue>> {
    let pairs: [(&str, &str); 7] = [
        ("strict-transport-security", "max-age=63072000; includeSubDomains"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("content-security-policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cache-control", "no-store"),
    ];
    pairs
        .into_iter()
        .map(|(n, v)| SetResponseHeaderLayer::if_not_present(HeaderName::from_static(n), HeaderValue::from_static(v)))
        .collect()
}
