//! The payment providers as the core sees them: the few calls Sigillum makes to Stripe's and
//! PayPal's APIs. Adapters (`sigillum-web::billing`) speak HTTP; nothing here sees card data,
//! because cards are only ever entered on the providers' hosted pages.

use super::plans::Period;
use crate::ids::OrgId;

/// A page on the provider's site the sender is redirected to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct HostedPage {
    /// The provider's id of what the page is for (checkout session, subscription, portal session).
    pub id: String,
    pub url: String,
}

/// A subscription as the provider reports it now (fetched, never taken from a webhook body
/// alone, so events that arrive late or out of order still end in the provider's current state).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderSubscription {
    pub id: String,
    /// The provider's status word (`active`, `canceled`, `ACTIVE`, `CANCELLED`, …).
    pub status: String,
    /// Stripe Price id or PayPal plan id.
    pub price: Option<String>,
    /// The organisation we named when creating it (Stripe metadata, PayPal `custom_id`).
    pub org: Option<OrgId>,
    pub customer: Option<String>,
    pub period: Option<Period>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    #[error("the payment provider cannot be reached: {0}")]
    Unavailable(String),
    #[error("the payment provider refused the request: {0}")]
    Refused(String),
    #[error("the payment provider does not know it")]
    NotFound,
}

/// A Stripe Checkout Session for a subscription.
#[derive(Clone, Debug)]
pub struct StripeCheckout<'a> {
    pub customer: &'a str,
    pub price: &'a str,
    pub org: OrgId,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
    pub idempotency_key: &'a str,
}

#[async_trait::async_trait]
pub trait StripeApi: Send + Sync {
    async fn create_customer(
        &self,
        org: OrgId,
        email: &str,
        name: &str,
        idempotency_key: &str,
    ) -> Result<String, ProviderError>;
    async fn create_checkout_session(&self, c: &StripeCheckout<'_>) -> Result<HostedPage, ProviderError>;
    async fn create_portal_session(
        &self,
        customer: &str,
        return_url: &str,
        idempotency_key: &str,
    ) -> Result<HostedPage, ProviderError>;
    async fn subscription(&self, id: &str) -> Result<ProviderSubscription, ProviderError>;
}

/// The `PAYPAL-*` headers of a webhook delivery, passed to PayPal's verification API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PayPalTransmission {
    pub id: String,
    pub time: String,
    pub cert_url: String,
    pub auth_algo: String,
    pub sig: String,
}

/// A PayPal subscription awaiting the buyer's approval: its id and the approve link.
#[async_trait::async_trait]
pub trait PayPalApi: Send + Sync {
    async fn create_subscription(
        &self,
        plan_id: &str,
        org: OrgId,
        return_url: &str,
        cancel_url: &str,
        request_id: &str,
    ) -> Result<HostedPage, ProviderError>;
    async fn subscription(&self, id: &str) -> Result<ProviderSubscription, ProviderError>;
    async fn cancel_subscription(&self, id: &str, reason: &str, request_id: &str) -> Result<(), ProviderError>;
    /// PayPal's verify-webhook-signature API for this endpoint's webhook id: true when PayPal
    /// answers `SUCCESS`. `event` is the delivery's raw JSON body, passed on byte for byte
    /// (PayPal's check covers the body as it was sent).
    async fn verify_webhook(&self, t: &PayPalTransmission, event: &[u8]) -> Result<bool, ProviderError>;
}
