//! Stripe's REST API (form-encoded requests, JSON answers) for the calls billing makes. Every
//! POST carries an `Idempotency-Key`, so a retried request never creates a second object.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sigillum_core::billing::{HostedPage, Period, ProviderError, ProviderSubscription, StripeApi, StripeCheckout};
use sigillum_core::OrgId;

use super::http::{provider_client, send_with_retry};

/// The API version our requests are written for (its shapes are the ones parsed here).
const STRIPE_VERSION: &str = "2024-06-20";
pub const DEFAULT_BASE: &str = "https://api.stripe.com";

pub struct StripeHttp {
    base: String,
    secret_key: SecretString,
    client: reqwest::Client,
}

impl StripeHttp {
    pub fn new(base: &str, secret_key: SecretString) -> Result<Self, String> {
        let base = super::http::check_base(base)?;
        Ok(Self { base, secret_key, client: provider_client(Duration::from_secs(20))? })
    }

    async fn post(&self, path: &str, form: &[(&str, &str)], idempotency_key: &str) -> Result<Value, ProviderError> {
        let url = format!("{}{path}", self.base);
        send_with_retry(|| {
            self.client
                .post(&url)
                .bearer_auth(self.secret_key.expose_secret())
                .header("Stripe-Version", STRIPE_VERSION)
                .header("Idempotency-Key", idempotency_key)
                .form(form)
        })
        .await
    }

    async fn get(&self, path: &str) -> Result<Value, ProviderError> {
        let url = format!("{}{path}", self.base);
        send_with_retry(|| {
            self.client.get(&url).bearer_auth(self.secret_key.expose_secret()).header("Stripe-Version", STRIPE_VERSION)
        })
        .await
    }
}

fn page(v: &Value) -> Result<HostedPage, ProviderError> {
    match (v["id"].as_str(), v["url"].as_str()) {
        (Some(id), Some(url)) if url.starts_with("https://") || url.starts_with("http://") => {
            Ok(HostedPage { id: id.to_owned(), url: url.to_owned() })
        }
        _ => Err(ProviderError::Refused("Stripe's answer has no id and url".into())),
    }
}

/// Stripe timestamps are unix seconds.
fn period(start: &Value, end: &Value) -> Option<Period> {
    Some(Period { start_unix_ms: start.as_i64()? * 1000, end_unix_ms: end.as_i64()? * 1000 })
}

/// A Subscription object (api version 2024-06-20; later versions moved the period onto the
/// items, which is read too).
pub fn parse_subscription(v: &Value) -> Result<ProviderSubscription, ProviderError> {
    let id = v["id"].as_str().ok_or_else(|| ProviderError::Refused("subscription without id".into()))?;
    let status = v["status"].as_str().ok_or_else(|| ProviderError::Refused("subscription without status".into()))?;
    let item = &v["items"]["data"][0];
    Ok(ProviderSubscription {
        id: id.to_owned(),
        status: status.to_owned(),
        price: item["price"]["id"].as_str().map(str::to_owned),
        org: v["metadata"]["org_id"].as_str().and_then(OrgId::parse),
        customer: v["customer"].as_str().map(str::to_owned),
        period: period(&v["current_period_start"], &v["current_period_end"])
            .or_else(|| period(&item["current_period_start"], &item["current_period_end"])),
    })
}

#[async_trait::async_trait]
impl StripeApi for StripeHttp {
    async fn create_customer(
        &self,
        org: OrgId,
        email: &str,
        name: &str,
        idempotency_key: &str,
    ) -> Result<String, ProviderError> {
        let org = org.to_string();
        let v = self
            .post("/v1/customers", &[("email", email), ("name", name), ("metadata[org_id]", &org)], idempotency_key)
            .await?;
        v["id"].as_str().map(str::to_owned).ok_or_else(|| ProviderError::Refused("customer without id".into()))
    }

    async fn create_checkout_session(&self, c: &StripeCheckout<'_>) -> Result<HostedPage, ProviderError> {
        let org = c.org.to_string();
        let form = [
            ("mode", "subscription"),
            ("customer", c.customer),
            ("line_items[0][price]", c.price),
            ("line_items[0][quantity]", "1"),
            ("success_url", c.success_url),
            ("cancel_url", c.cancel_url),
            ("client_reference_id", &org),
            ("metadata[org_id]", &org),
            ("subscription_data[metadata][org_id]", &org),
        ];
        page(&self.post("/v1/checkout/sessions", &form, c.idempotency_key).await?)
    }

    async fn create_portal_session(
        &self,
        customer: &str,
        return_url: &str,
        idempotency_key: &str,
    ) -> Result<HostedPage, ProviderError> {
        let form = [("customer", customer), ("return_url", return_url)];
        page(&self.post("/v1/billing_portal/sessions", &form, idempotency_key).await?)
    }

    async fn subscription(&self, id: &str) -> Result<ProviderSubscription, ProviderError> {
        if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') || id.is_empty() || id.len() > 255 {
            return Err(ProviderError::Refused("not a subscription id".into()));
        }
        parse_subscription(&self.get(&format!("/v1/subscriptions/{id}")).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_shapes_of_old_and_new_api_versions() {
        let org = OrgId::new();
        let old = serde_json::json!({"id":"sub_1","object":"subscription","status":"active","customer":"cus_1",
            "metadata":{"org_id": org.to_string()},"current_period_start":1000,"current_period_end":2000,
            "items":{"data":[{"price":{"id":"price_team"}}]}});
        let s = parse_subscription(&old).unwrap();
        assert_eq!(s.org, Some(org));
        assert_eq!(s.price.as_deref(), Some("price_team"));
        assert_eq!(s.period, Some(Period { start_unix_ms: 1_000_000, end_unix_ms: 2_000_000 }));
        let new = serde_json::json!({"id":"sub_1","status":"canceled","customer":"cus_1","metadata":{},
            "items":{"data":[{"price":{"id":"price_team"},"current_period_start":5,"current_period_end":6}]}});
        let s = parse_subscription(&new).unwrap();
        assert_eq!((s.org, s.status.as_str()), (None, "canceled"));
        assert_eq!(s.period, Some(Period { start_unix_ms: 5000, end_unix_ms: 6000 }));
        assert!(parse_subscription(&serde_json::json!({"status":"active"})).is_err());
    }
}
