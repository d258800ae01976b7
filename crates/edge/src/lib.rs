//! The edge tier (DESIGN §2): what stands between the network and the application. TLS
//! configuration (rustls, TLS 1.2+, a self-signed certificate made on first start) and baseline
//! security headers, and which client address to believe behind proxies; request ids and
//! timeouts are wired in `sigillum-web`. The WAF, rate limits
//! and CSRF protection join here.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock))]

pub mod client_ip;
pub mod headers;
pub mod tls;

pub use client_ip::TrustedProxies;
pub use headers::security_headers;
pub use tls::{TlsError, TlsMaterial};
