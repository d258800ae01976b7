//! The edge tier (DESIGN §2): what stands between the network and the application. TLS
//! configuration (rustls, TLS 1.2+, a self-signed certificate made on first start), which client
//! address to believe behind proxies, rate limits, the browser half of CSRF protection (Fetch
//! Metadata and Origin) and the security header policy. These are the rules; `sigillum-web` wires
//! them into the request path in the order of DESIGN §2 (connection caps and timeouts, rate
//! limits, WAF, headers and CSRF, then handlers).
#![deny(unsafe_code)] // forbidden everywhere but the fenced FFI module, src/waf/ffi.rs
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock))]

pub mod client_ip;
pub mod cross_site;
pub mod headers;
pub mod rate_limit;
pub mod tls;
pub mod waf;

pub use client_ip::TrustedProxies;
pub use headers::HeaderPolicy;
pub use rate_limit::{RateConfig, RateLimiter};
pub use tls::{CertReloader, TlsError, TlsMaterial};
