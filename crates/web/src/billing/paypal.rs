//! PayPal's REST API for subscriptions: an OAuth2 client-credentials token (cached until shortly
//! before it expires), subscriptions created for the buyer's approval on PayPal's site, read and
//! cancelled, and webhook deliveries verified by PayPal's verify-webhook-signature API. Every POST
//! carries a `PayPal-Request-Id`, PayPal's idempotency key.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use sigillum_core::billing::{HostedPage, PayPalApi, PayPalTransmission, Period, ProviderError, ProviderSubscription};
use sigillum_core::OrgId;
use tokio::sync::Mutex;

use super::http::{provider_client, send_with_retry};

pub const DEFAULT_BASE: &str = "https://api-m.paypal.com";

pub struct PayPalHttp {
    base: String,
    client_id: String,
    secret: SecretString,
    webhook_id: String,
    client: reqwest::Client,
    token: Mutex<Option<(SecretString, Instant)>>,
}

impl PayPalHttp {
    pub fn new(base: &str, client_id: String, secret: SecretString, webhook_id: String) -> Result<Self, String> {
        let base = super::http::check_base(base)?;
        Ok(Self {
            base,
            client_id,
            secret,
            webhook_id,
            client: provider_client(Duration::from_secs(20))?,
            token: Mutex::new(None),
        })
    }

    async fn access_token(&self) -> Result<SecretString, ProviderError> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref() {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let url = format!("{}/v1/oauth2/token", self.base);
        let v = send_with_retry(|| {
            self.client
                .post(&url)
                .basic_auth(&self.client_id, Some(self.secret.expose_secret()))
                .form(&[("grant_type", "client_credentials")])
        })
        .await?;
        let token = v["access_token"].as_str().ok_or_else(|| ProviderError::Refused("no access token".into()))?;
        // Renewed a minute early, so a token never expires in flight.
        let lifetime = v["expires_in"].as_u64().unwrap_or(300).saturating_sub(60);
        let token = SecretString::from(token.to_owned());
        *cached = Some((token.clone(), Instant::now() + Duration::from_secs(lifetime)));
        Ok(token)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
        request_id: Option<&str>,
    ) -> Result<Value, ProviderError> {
        let token = self.access_token().await?;
        let url = format!("{}{path}", self.base);
        send_with_retry(|| {
            let mut r = self.client.request(method.clone(), &url).bearer_auth(token.expose_secret());
            if let Some(id) = request_id {
                r = r.header("PayPal-Request-Id", id);
            }
            if let Some(b) = &body {
                r = r.header(reqwest::header::CONTENT_TYPE, "application/json").body(b.clone());
            }
            r
        })
        .await
    }
}

fn check_id(id: &str) -> Result<(), ProviderError> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(ProviderError::Refused("not a PayPal id".into()));
    }
    Ok(())
}

fn rfc3339_ms(v: &Value) -> Option<i64> {
    let t = time::OffsetDateTime::parse(v.as_str()?, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// A subscription resource (`GET /v1/billing/subscriptions/{id}`). Its current period runs from
/// the last payment (or the start) to the next billing time.
pub fn parse_subscription(v: &Value) -> Result<ProviderSubscription, ProviderError> {
    let id = v["id"].as_str().ok_or_else(|| ProviderError::Refused("subscription without id".into()))?;
    let status = v["status"].as_str().ok_or_else(|| ProviderError::Refused("subscription without status".into()))?;
    let start = rfc3339_ms(&v["billing_info"]["last_payment"]["time"]).or_else(|| rfc3339_ms(&v["start_time"]));
    let end = rfc3339_ms(&v["billing_info"]["next_billing_time"]);
    Ok(ProviderSubscription {
        id: id.to_owned(),
        status: status.to_owned(),
        price: v["plan_id"].as_str().map(str::to_owned),
        org: v["custom_id"].as_str().and_then(OrgId::parse),
        customer: None,
        period: start.zip(end).filter(|(s, e)| s < e).map(|(s, e)| Period { start_unix_ms: s, end_unix_ms: e }),
    })
}

#[async_trait::async_trait]
impl PayPalApi for PayPalHttp {
    async fn create_subscription(
        &self,
        plan_id: &str,
        org: OrgId,
        return_url: &str,
        cancel_url: &str,
        request_id: &str,
    ) -> Result<HostedPage, ProviderError> {
        let body = json!({
            "plan_id": plan_id,
            "custom_id": org.to_string(),
            "application_context": {
                "brand_name": "Sigillum",
                "shipping_preference": "NO_SHIPPING",
                "user_action": "SUBSCRIBE_NOW",
                "return_url": return_url,
                "cancel_url": cancel_url,
            }
        });
        let v = self
            .call(reqwest::Method::POST, "/v1/billing/subscriptions", Some(body.to_string()), Some(request_id))
            .await?;
        let id = v["id"].as_str().ok_or_else(|| ProviderError::Refused("subscription without id".into()))?;
        let approve = v["links"]
            .as_array()
            .and_then(|links| links.iter().find(|l| l["rel"] == "approve"))
            .and_then(|l| l["href"].as_str())
            .ok_or_else(|| ProviderError::Refused("no approve link".into()))?;
        Ok(HostedPage { id: id.to_owned(), url: approve.to_owned() })
    }

    async fn subscription(&self, id: &str) -> Result<ProviderSubscription, ProviderError> {
        check_id(id)?;
        parse_subscription(
            &self.call(reqwest::Method::GET, &format!("/v1/billing/subscriptions/{id}"), None, None).await?,
        )
    }

    async fn cancel_subscription(&self, id: &str, reason: &str, request_id: &str) -> Result<(), ProviderError> {
        check_id(id)?;
        let body = json!({ "reason": reason }).to_string();
        self.call(
            reqwest::Method::POST,
            &format!("/v1/billing/subscriptions/{id}/cancel"),
            Some(body),
            Some(request_id),
        )
        .await?;
        Ok(())
    }

    async fn verify_webhook(&self, t: &PayPalTransmission, event: &[u8]) -> Result<bool, ProviderError> {
        let event = std::str::from_utf8(event).map_err(|_| ProviderError::Refused("event is not UTF-8".into()))?;
        // The event goes in byte for byte (re-serialising could reorder its keys); the caller
        // has checked it is JSON.
        let fields = json!({
            "auth_algo": t.auth_algo,
            "cert_url": t.cert_url,
            "transmission_id": t.id,
            "transmission_sig": t.sig,
            "transmission_time": t.time,
            "webhook_id": self.webhook_id,
        })
        .to_string();
        let body = format!("{},\"webhook_event\":{event}}}", fields.trim_end_matches('}'));
        let v =
            self.call(reqwest::Method::POST, "/v1/notifications/verify-webhook-signature", Some(body), None).await?;
        Ok(v["verification_status"] == "SUCCESS")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_period_runs_from_last_payment_to_next_billing() {
        let org = OrgId::new();
        let v = json!({"id":"I-ABC","status":"ACTIVE","plan_id":"P-TEAM","custom_id":org.to_string(),
            "start_time":"2026-12-01T10:00:00Z",
            "billing_info":{"next_billing_time":"2027-01-04T10:00:00Z","last_payment":{"time":"2026-12-04T10:00:00Z"}}});
        let s = parse_subscription(&v).unwrap();
        assert_eq!(s.org, Some(org));
        assert_eq!(s.price.as_deref(), Some("P-TEAM"));
        let p = s.period.unwrap();
        assert_eq!(p.end_unix_ms - p.start_unix_ms, 31 * 24 * 3600 * 1000);
        let cancelled = json!({"id":"I-ABC","status":"CANCELLED","plan_id":"P-TEAM"});
        assert_eq!(parse_subscription(&cancelled).unwrap().period, None);
    }
}
