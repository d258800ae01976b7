//! What both payment-provider clients share: a client that only speaks TLS to the provider
//! (plain HTTP only to a loopback test server), and one retry on a failure that a retry can fix,
//! with the same idempotency key.

use std::time::Duration;

use serde_json::Value;
use sigillum_core::billing::ProviderError;

/// Checks a provider base URL: `https://…`, or `http://` to a loopback address (test servers).
pub fn check_base(base: &str) -> Result<String, String> {
    let url = url::Url::parse(base).map_err(|_| format!("{base:?} is not a URL"))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return Err(format!("{base:?} must use https (plain http only on loopback)"));
    }
    Ok(base.trim_end_matches('/').to_owned())
}

pub fn provider_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Sigillum/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// Sends the request `make` builds, once more after a connection failure, a 429 or a 5xx.
/// Answers: 2xx → the JSON body (`null` when empty), 404 → `NotFound`, other 4xx → `Refused`
/// with the provider's message, failures → `Unavailable`.
pub async fn send_with_retry(make: impl Fn() -> reqwest::RequestBuilder) -> Result<Value, ProviderError> {
    let mut last = ProviderError::Unavailable("no attempt".into());
    for attempt in 0..2 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let response = match make().send().await {
            Ok(r) => r,
            Err(e) => {
                last = ProviderError::Unavailable(if e.is_timeout() {
                    "timed out".into()
                } else {
                    "connection failed".into()
                });
                continue;
            }
        };
        let status = response.status();
        let body = response.bytes().await.map_err(|_| ProviderError::Unavailable("answer cut short".into()))?;
        if status.is_success() {
            if body.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&body).map_err(|_| ProviderError::Refused("answer is not JSON".into()));
        }
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(ProviderError::NotFound);
        }
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .or_else(|| v.pointer("/message"))
                    .or_else(|| v.pointer("/error_description"))
                    .and_then(Value::as_str)
                    .map(|m| m.chars().take(200).collect::<String>())
            })
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
        last = if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            ProviderError::Unavailable(message)
        } else {
            return Err(ProviderError::Refused(message));
        };
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    #[test]
    fn provider_bases_use_tls_except_on_loopback() {
        assert_eq!(super::check_base("https://api.stripe.com/").unwrap(), "https://api.stripe.com");
        assert!(super::check_base("http://127.0.0.1:9000").is_ok());
        assert!(super::check_base("http://localhost:9000").is_ok());
        assert!(super::check_base("http://api.stripe.com").is_err());
        assert!(super::check_base("ftp://127.0.0.1").is_err());
        assert!(super::check_base("stripe").is_err());
    }
}
