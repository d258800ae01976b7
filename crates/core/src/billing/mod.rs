//! Billing for operators who run Sigillum as a service: plans and quotas, subscriptions through
//! Stripe's and PayPal's hosted pages, and their verified webhooks.
//!
//! The promise is PCI-DSS SAQ A scope: card and account data are entered only on the providers'
//! pages; Sigillum stores the providers' identifiers (customer, subscription, event ids), the
//! plan, the status and the current period, nothing else. With no provider configured billing is
//! off and nothing is limited (the self-hosting default).
//!
//! Webhooks are trusted only after verification (Stripe's signature, PayPal's verification API),
//! and even then only as a hint: the subscription is fetched from the provider and its current
//! state applied, so duplicates, replays and events arriving out of order all end in the
//! provider's state. Each event id is processed once.

pub mod plans;
pub mod provider;
pub mod stripe_signature;

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;
use sigillum_audit::{ActorKind, Detail, EventKind};

pub use plans::{Catalogue, Period, Plan, PlanError, Provider};
pub use provider::{
    HostedPage, PayPalApi, PayPalTransmission, ProviderError, ProviderSubscription, StripeApi, StripeCheckout,
};

use crate::accounts::Principal;
use crate::audit_log::{Actor, AuditLog, ClientInfo, NewEvent};
use crate::ids::OrgId;
use crate::ports::{
    AccountStore, BillingAccount, BillingStore, Clock, NewJob, QuotaError, QuotaExceeded, RepoError, Role, SendQuota,
    UsageClaim,
};
use crate::workflow::ChangeEvent;

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("billing is not enabled on this server")]
    Disabled,
    #[error("{0} is not configured on this server")]
    ProviderOff(&'static str),
    #[error("only the organisation's owner may manage billing")]
    OwnerOnly,
    #[error("{0}")]
    Invalid(String),
    #[error("no such plan")]
    UnknownPlan,
    #[error("the organisation has no subscription at this provider")]
    NoSubscription,
    #[error("the plan allows {0} accounts")]
    SeatsExceeded(u32),
    #[error("webhook signature: {0}")]
    Signature(String),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("internal: {0}")]
    Internal(String),
}

/// The audit log failing is this server's fault, whatever the reason.
impl From<crate::audit_log::AuditError> for BillingError {
    fn from(e: crate::audit_log::AuditError) -> Self {
        Self::Internal(format!("audit: {e}"))
    }
}

/// Stripe's webhook endpoint secret beside its API client.
pub struct StripeSetup {
    pub api: Arc<dyn StripeApi>,
    pub webhook_secret: SecretString,
}

/// What billing runs on.
pub struct BillingPorts {
    pub store: Arc<dyn BillingStore>,
    pub accounts: Arc<dyn AccountStore>,
    pub audit: AuditLog,
    pub clock: Arc<dyn Clock>,
    pub stripe: Option<StripeSetup>,
    pub paypal: Option<Arc<dyn PayPalApi>>,
}

struct Inner {
    ports: BillingPorts,
    catalogue: Catalogue,
    /// `https://…` without a trailing slash: return pages after checkout.
    public_url: String,
}

#[derive(Clone)]
pub struct Billing {
    inner: Arc<Inner>,
}

/// `GET /api/v1/billing/plans`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PlansView {
    pub enabled: bool,
    pub providers: Vec<Provider>,
    pub plans: Vec<Plan>,
}

/// `GET /api/v1/billing`: the caller's organisation.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct BillingStatus {
    pub enabled: bool,
    /// The plan in force now (the free plan unless a subscription grants another).
    pub plan: Plan,
    pub provider: Option<Provider>,
    /// The provider's status word, `none` without a subscription.
    pub status: String,
    pub subscription_id: Option<String>,
    pub period: Period,
    pub envelopes_used: u32,
    pub envelopes_limit: Option<u32>,
    pub seats_used: u32,
    pub seats_limit: Option<u32>,
    /// Stripe is retrying a failed payment (`past_due`): the plan still runs.
    pub payment_problem: bool,
}

/// What became of a webhook delivery (always answered 200 once verified).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookOutcome {
    Applied,
    /// The event id was processed before: nothing changed.
    Duplicate,
    /// Not an event type billing acts on, or about a subscription that is no longer the
    /// organisation's; recorded as processed.
    Ignored,
}

/// The organisation's plan in force and its usage period.
struct Standing {
    account: Option<BillingAccount>,
    plan: Plan,
    period: Period,
    provider: Option<Provider>,
}

fn owner_only(p: &Principal) -> Result<(), BillingError> {
    if p.role == Role::Owner {
        Ok(())
    } else {
        Err(BillingError::OwnerOnly)
    }
}

fn provider_actor(provider: Provider) -> Actor {
    Actor { kind: ActorKind::System, id: Some(provider.as_str().to_owned()), name: None, email: None }
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k)).and_then(Value::as_str)
}

/// Whether a subscription the provider reports should replace what the organisation has: a
/// different subscription that grants nothing never overrides one that runs (a late event about
/// an old, cancelled subscription must not cancel the new one).
pub fn should_apply(current: Option<&BillingAccount>, provider: Provider, sub: &ProviderSubscription) -> bool {
    let Some(cur) = current else { return true };
    let same = cur.provider.as_deref() == Some(provider.as_str()) && cur.subscription_id.as_deref() == Some(&sub.id);
    same || running(cur).is_none() || plans::status_grants_plan(provider, &sub.status)
}

/// The provider of the account's subscription when that subscription grants its plan now.
fn running(a: &BillingAccount) -> Option<Provider> {
    let provider = Provider::parse(a.provider.as_deref()?)?;
    a.subscription_id.as_ref()?;
    plans::status_grants_plan(provider, &a.status).then_some(provider)
}

impl Billing {
    pub fn new(ports: BillingPorts, catalogue: Catalogue, public_url: &str) -> Self {
        let public_url = public_url.trim_end_matches('/').to_owned();
        Self { inner: Arc::new(Inner { ports, catalogue, public_url }) }
    }

    /// Billing is on when at least one provider is configured.
    pub fn enabled(&self) -> bool {
        self.inner.ports.stripe.is_some() || self.inner.ports.paypal.is_some()
    }

    fn providers(&self) -> Vec<Provider> {
        let mut v = Vec::new();
        if self.inner.ports.stripe.is_some() {
            v.push(Provider::Stripe);
        }
        if self.inner.ports.paypal.is_some() {
            v.push(Provider::PayPal);
        }
        v
    }

    fn now(&self) -> i64 {
        self.inner.ports.clock.now_unix_ms()
    }

    /// Where owners upgrade (the billing page of the workspace).
    pub fn upgrade_url(&self) -> String {
        format!("{}/app/billing", self.inner.public_url)
    }

    pub fn plans(&self) -> PlansView {
        PlansView { enabled: self.enabled(), providers: self.providers(), plans: self.inner.catalogue.plans().to_vec() }
    }

    async fn standing(&self, org: OrgId) -> Result<Standing, RepoError> {
        let account = self.inner.ports.store.billing_account(org).await?;
        let now = self.now();
        let cat = &self.inner.catalogue;
        let in_force = account.as_ref().and_then(|a| Some((running(a)?, a, cat.get(&a.plan_id)?)));
        let (plan, sub_period, provider) = match in_force {
            Some((provider, a, plan)) => {
                let period = a
                    .period_start_unix_ms
                    .zip(a.period_end_unix_ms)
                    .map(|(s, e)| Period { start_unix_ms: s, end_unix_ms: e });
                (plan.clone(), period, Some(provider))
            }
            None => (
                cat.free().clone(),
                None,
                account.as_ref().and_then(|a| a.provider.as_deref()).and_then(Provider::parse),
            ),
        };
        Ok(Standing { account, plan, period: plans::usage_period(sub_period, now), provider })
    }

    pub async fn status(&self, p: &Principal) -> Result<BillingStatus, BillingError> {
        let s = self.standing(p.org_id).await?;
        let used = self.inner.ports.store.usage(p.org_id, s.period.start_unix_ms).await?;
        let seats = self.inner.ports.accounts.users(p.org_id).await?.len() as u32;
        let status = s.account.as_ref().map(|a| a.status.clone()).unwrap_or_else(|| "none".into());
        let enabled = self.enabled();
        Ok(BillingStatus {
            enabled,
            payment_problem: s.provider == Some(Provider::Stripe) && status == "past_due",
            envelopes_limit: if enabled { s.plan.envelopes_per_month } else { None },
            seats_limit: if enabled { s.plan.seats } else { None },
            plan: s.plan,
            provider: s.provider,
            status,
            subscription_id: s.account.and_then(|a| a.subscription_id),
            period: s.period,
            envelopes_used: used,
            seats_used: seats,
        })
    }

    /// Starts a subscription to `plan_id` at `provider`: returns the hosted page to redirect to.
    pub async fn checkout(
        &self,
        p: &Principal,
        plan_id: &str,
        provider: Provider,
        client: &ClientInfo,
    ) -> Result<HostedPage, BillingError> {
        owner_only(p)?;
        if !self.enabled() {
            return Err(BillingError::Disabled);
        }
        let plan = self.inner.catalogue.get(plan_id).ok_or(BillingError::UnknownPlan)?;
        let success = format!("{}?checkout=success", self.upgrade_url());
        let cancel = format!("{}?checkout=cancelled", self.upgrade_url());
        let request_id = uuid::Uuid::new_v4().to_string();
        let page = match provider {
            Provider::Stripe => {
                let stripe = self.inner.ports.stripe.as_ref().ok_or(BillingError::ProviderOff("Stripe"))?;
                let price = plan.stripe_price.as_deref().ok_or_else(|| {
                    BillingError::Invalid(format!("plan {} cannot be bought through Stripe", plan.id))
                })?;
                let customer = self.stripe_customer(p, stripe.api.as_ref()).await?;
                stripe
                    .api
                    .create_checkout_session(&StripeCheckout {
                        customer: &customer,
                        price,
                        org: p.org_id,
                        success_url: &success,
                        cancel_url: &cancel,
                        idempotency_key: &request_id,
                    })
                    .await?
            }
            Provider::PayPal => {
                let paypal = self.inner.ports.paypal.as_ref().ok_or(BillingError::ProviderOff("PayPal"))?;
                let plan_ref = plan.paypal_plan.as_deref().ok_or_else(|| {
                    BillingError::Invalid(format!("plan {} cannot be bought through PayPal", plan.id))
                })?;
                paypal.create_subscription(plan_ref, p.org_id, &success, &cancel, &request_id).await?
            }
        };
        self.inner
            .ports
            .audit
            .record(
                NewEvent::new(EventKind::BillingCheckoutStarted, None, p.actor(), client.clone())
                    .detail("org_id", Detail::Text(p.org_id.to_string()))
                    .detail("provider", Detail::Text(provider.as_str().into()))
                    .detail("plan", Detail::Text(plan.id.clone()))
                    .detail("reference", Detail::Text(page.id.clone())),
            )
            .await?;
        Ok(page)
    }

    /// The organisation's Stripe customer, made on its first checkout.
    async fn stripe_customer(&self, p: &Principal, api: &dyn StripeApi) -> Result<String, BillingError> {
        let store = &self.inner.ports.store;
        let account = store.billing_account(p.org_id).await?;
        if let Some(c) =
            account.as_ref().filter(|a| a.provider.as_deref() == Some("stripe")).and_then(|a| a.customer_id.clone())
        {
            return Ok(c);
        }
        let customer = api.create_customer(p.org_id, &p.email, &p.name, &format!("customer-{}", p.org_id)).await?;
        let fresh = BillingAccount {
            org_id: p.org_id,
            provider: Some("stripe".into()),
            customer_id: Some(customer.clone()),
            subscription_id: None,
            plan_id: self.inner.catalogue.free().id.clone(),
            status: "none".into(),
            period_start_unix_ms: None,
            period_end_unix_ms: None,
            updated_unix_ms: self.now(),
        };
        // A running subscription elsewhere (PayPal) stays the organisation's record until a
        // Stripe one replaces it through its webhook.
        if account.as_ref().is_none_or(|a| running(a).is_none()) {
            store.put_billing_account(&fresh).await?;
        }
        Ok(customer)
    }

    /// Stripe's Billing Portal, where the customer changes or cancels the subscription and
    /// manages payment methods.
    pub async fn portal(&self, p: &Principal) -> Result<HostedPage, BillingError> {
        owner_only(p)?;
        let stripe = self.inner.ports.stripe.as_ref().ok_or(BillingError::ProviderOff("Stripe"))?;
        let account = self.inner.ports.store.billing_account(p.org_id).await?;
        let customer = account
            .filter(|a| a.provider.as_deref() == Some("stripe"))
            .and_then(|a| a.customer_id)
            .ok_or(BillingError::NoSubscription)?;
        let key = uuid::Uuid::new_v4().to_string();
        Ok(stripe.api.create_portal_session(&customer, &self.upgrade_url(), &key).await?)
    }

    /// Cancels a PayPal subscription (PayPal has no customer portal). The change lands when
    /// PayPal's webhook confirms it.
    pub async fn cancel(&self, p: &Principal, client: &ClientInfo) -> Result<(), BillingError> {
        owner_only(p)?;
        let paypal = self.inner.ports.paypal.as_ref().ok_or(BillingError::ProviderOff("PayPal"))?;
        let account = self.inner.ports.store.billing_account(p.org_id).await?;
        let sub = account
            .filter(|a| a.provider.as_deref() == Some("paypal"))
            .and_then(|a| a.subscription_id)
            .ok_or(BillingError::NoSubscription)?;
        paypal
            .cancel_subscription(&sub, "Cancelled by the organisation's owner", &uuid::Uuid::new_v4().to_string())
            .await?;
        self.inner
            .ports
            .audit
            .record(
                NewEvent::new(EventKind::BillingSubscriptionChanged, None, p.actor(), client.clone())
                    .detail("org_id", Detail::Text(p.org_id.to_string()))
                    .detail("provider", Detail::Text("paypal".into()))
                    .detail("subscription", Detail::Text(sub))
                    .detail("change", Detail::Text("cancel_requested".into())),
            )
            .await?;
        Ok(())
    }

    /// A Stripe webhook delivery: `signature` is the `Stripe-Signature` header, `body` the raw
    /// bytes exactly as received.
    pub async fn stripe_webhook(&self, signature: Option<&str>, body: &[u8]) -> Result<WebhookOutcome, BillingError> {
        let stripe = self.inner.ports.stripe.as_ref().ok_or(BillingError::ProviderOff("Stripe"))?;
        stripe_signature::verify(signature, body, stripe.webhook_secret.expose_secret().as_bytes(), self.now() / 1000)
            .map_err(|e| BillingError::Signature(e.to_string()))?;
        let event: Value =
            serde_json::from_slice(body).map_err(|_| BillingError::Invalid("the event is not JSON".into()))?;
        let id = text(&event, &["id"]).ok_or_else(|| BillingError::Invalid("the event has no id".into()))?;
        let kind = text(&event, &["type"]).ok_or_else(|| BillingError::Invalid("the event has no type".into()))?;
        if self.inner.ports.store.billing_event_seen("stripe", id).await? {
            return Ok(WebhookOutcome::Duplicate);
        }
        let object = event.pointer("/data/object").cloned().unwrap_or(Value::Null);
        let sub_id = match kind {
            "checkout.session.completed" => text(&object, &["subscription"]),
            "customer.subscription.created" | "customer.subscription.updated" | "customer.subscription.deleted" => {
                text(&object, &["id"])
            }
            "invoice.paid" | "invoice.payment_failed" => text(&object, &["subscription"])
                .or_else(|| text(&object, &["parent", "subscription_details", "subscription"])),
            _ => None,
        };
        let Some(sub_id) = sub_id else { return self.ignore(Provider::Stripe, id, kind).await };
        let sub = stripe.api.subscription(sub_id).await?;
        let org = match sub.org {
            Some(org) => Some(org),
            None => match sub.customer.as_deref() {
                Some(c) => self.inner.ports.store.billing_account_by_customer("stripe", c).await?.map(|a| a.org_id),
                None => None,
            },
        }
        .or_else(|| text(&object, &["client_reference_id"]).and_then(OrgId::parse));
        let Some(org) = org else { return self.ignore(Provider::Stripe, id, kind).await };
        self.apply(org, Provider::Stripe, &sub, id, kind).await
    }

    /// A PayPal webhook delivery, verified through PayPal's verify-webhook-signature API.
    pub async fn paypal_webhook(&self, t: &PayPalTransmission, body: &[u8]) -> Result<WebhookOutcome, BillingError> {
        let paypal = self.inner.ports.paypal.as_ref().ok_or(BillingError::ProviderOff("PayPal"))?;
        if [&t.id, &t.time, &t.cert_url, &t.auth_algo, &t.sig].iter().any(|v| v.is_empty()) {
            return Err(BillingError::Signature("PAYPAL-TRANSMISSION-* headers are missing".into()));
        }
        let event: Value =
            serde_json::from_slice(body).map_err(|_| BillingError::Invalid("the event is not JSON".into()))?;
        if !paypal.verify_webhook(t, body).await? {
            return Err(BillingError::Signature("PayPal did not verify the delivery".into()));
        }
        let id = text(&event, &["id"]).ok_or_else(|| BillingError::Invalid("the event has no id".into()))?;
        let kind =
            text(&event, &["event_type"]).ok_or_else(|| BillingError::Invalid("the event has no type".into()))?;
        if self.inner.ports.store.billing_event_seen("paypal", id).await? {
            return Ok(WebhookOutcome::Duplicate);
        }
        let sub_id = match kind {
            "BILLING.SUBSCRIPTION.ACTIVATED"
            | "BILLING.SUBSCRIPTION.UPDATED"
            | "BILLING.SUBSCRIPTION.CANCELLED"
            | "BILLING.SUBSCRIPTION.SUSPENDED"
            | "BILLING.SUBSCRIPTION.EXPIRED" => text(&event, &["resource", "id"]),
            "PAYMENT.SALE.COMPLETED" => text(&event, &["resource", "billing_agreement_id"]),
            _ => None,
        };
        let Some(sub_id) = sub_id else { return self.ignore(Provider::PayPal, id, kind).await };
        let sub = paypal.subscription(sub_id).await?;
        let Some(org) = sub.org else { return self.ignore(Provider::PayPal, id, kind).await };
        self.apply(org, Provider::PayPal, &sub, id, kind).await
    }

    async fn ignore(&self, provider: Provider, id: &str, kind: &str) -> Result<WebhookOutcome, BillingError> {
        let fresh =
            self.inner.ports.store.apply_billing_event(None, provider.as_str(), id, kind, self.now(), &[]).await?;
        Ok(if fresh { WebhookOutcome::Ignored } else { WebhookOutcome::Duplicate })
    }

    /// Applies the provider's current subscription to `org` and marks the event processed.
    async fn apply(
        &self,
        org: OrgId,
        provider: Provider,
        sub: &ProviderSubscription,
        event_id: &str,
        kind: &str,
    ) -> Result<WebhookOutcome, BillingError> {
        let store = &self.inner.ports.store;
        let current = store.billing_account(org).await?;
        if !should_apply(current.as_ref(), provider, sub) {
            return self.ignore(provider, event_id, kind).await;
        }
        let cat = &self.inner.catalogue;
        let plan = sub.price.as_deref().and_then(|p| cat.by_price(provider, p)).unwrap_or(cat.free());
        let next = BillingAccount {
            org_id: org,
            provider: Some(provider.as_str().into()),
            customer_id: sub.customer.clone().or_else(|| {
                current
                    .as_ref()
                    .filter(|c| c.provider.as_deref() == Some(provider.as_str()))
                    .and_then(|c| c.customer_id.clone())
            }),
            subscription_id: Some(sub.id.clone()),
            plan_id: plan.id.clone(),
            status: sub.status.clone(),
            period_start_unix_ms: sub.period.map(|p| p.start_unix_ms),
            period_end_unix_ms: sub.period.map(|p| p.end_unix_ms),
            updated_unix_ms: self.now(),
        };
        let changed = current.as_ref().is_none_or(|c| {
            (&c.provider, &c.subscription_id, &c.plan_id, &c.status, c.period_start_unix_ms, c.period_end_unix_ms)
                != (
                    &next.provider,
                    &next.subscription_id,
                    &next.plan_id,
                    &next.status,
                    next.period_start_unix_ms,
                    next.period_end_unix_ms,
                )
        });
        // A provider retries an event until it is answered, but a retry of one stored here is a
        // duplicate: the change and its audit event are stored together (see `ChangeEvent`).
        let (logged, jobs) = match changed {
            true => {
                let (event, job) = self.subscription_changed(org, provider, kind, sub, plan).await?;
                (Some(event), vec![job])
            }
            false => (None, vec![]),
        };
        if !store.apply_billing_event(Some(&next), provider.as_str(), event_id, kind, self.now(), &jobs).await? {
            return Ok(WebhookOutcome::Duplicate);
        }
        if let Some(event) = logged {
            event.append(&self.inner.ports.audit).await?;
        }
        Ok(WebhookOutcome::Applied)
    }

    /// The `billing.subscription_changed` event of a provider's change, prepared with its
    /// fallback job.
    async fn subscription_changed(
        &self,
        org: OrgId,
        provider: Provider,
        kind: &str,
        sub: &ProviderSubscription,
        plan: &Plan,
    ) -> Result<(ChangeEvent, NewJob), BillingError> {
        let mut e =
            NewEvent::new(EventKind::BillingSubscriptionChanged, None, provider_actor(provider), ClientInfo::default())
                .detail("org_id", Detail::Text(org.to_string()))
                .detail("provider", Detail::Text(provider.as_str().into()))
                .detail("event", Detail::Text(kind.into()))
                .detail("subscription", Detail::Text(sub.id.clone()))
                .detail("plan", Detail::Text(plan.id.clone()))
                .detail("status", Detail::Text(sub.status.clone()));
        if let Some(p) = sub.period {
            e = e.detail("period_end_unix_ms", Detail::Int(p.end_unix_ms));
        }
        Ok(ChangeEvent::prepare(&self.inner.ports.audit, e, self.now()).await?)
    }

    /// Refuses a new account beyond the plan's seats (billing on only).
    pub async fn check_seat(&self, org: OrgId) -> Result<(), BillingError> {
        if !self.enabled() {
            return Ok(());
        }
        let s = self.standing(org).await?;
        let used = self.inner.ports.accounts.users(org).await?.len();
        match s.plan.seats {
            Some(limit) if used >= limit as usize => Err(BillingError::SeatsExceeded(limit)),
            _ => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl SendQuota for Billing {
    async fn claim(&self, org: OrgId, actor: &Actor, client: &ClientInfo) -> Result<Option<UsageClaim>, QuotaError> {
        if !self.enabled() {
            return Ok(None);
        }
        let s = self.standing(org).await?;
        let start = s.period.start_unix_ms;
        if self.inner.ports.store.claim_usage(org, start, s.plan.envelopes_per_month).await? {
            return Ok(Some(UsageClaim { org, period_start_unix_ms: start }));
        }
        let limit = s.plan.envelopes_per_month.unwrap_or(0);
        let refused = NewEvent::new(EventKind::BillingQuotaExceeded, None, actor.clone(), client.clone())
            .detail("org_id", Detail::Text(org.to_string()))
            .detail("plan", Detail::Text(s.plan.id.clone()))
            .detail("limit", Detail::Int(i64::from(limit)));
        if let Err(e) = self.inner.ports.audit.record(refused).await {
            tracing::warn!(error = %e, "recording a quota refusal failed");
        }
        Err(QuotaError::Exceeded(QuotaExceeded {
            plan: s.plan.id,
            limit,
            period_end_unix_ms: s.period.end_unix_ms,
            upgrade_url: self.upgrade_url(),
        }))
    }

    async fn release(&self, claim: UsageClaim) {
        if let Err(e) = self.inner.ports.store.release_usage(claim.org, claim.period_start_unix_ms).await {
            tracing::warn!(error = %e, "giving back an unused envelope claim failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(provider: &str, sub: &str, status: &str) -> BillingAccount {
        BillingAccount {
            org_id: OrgId::new(),
            provider: Some(provider.into()),
            customer_id: None,
            subscription_id: Some(sub.into()),
            plan_id: "team".into(),
            status: status.into(),
            period_start_unix_ms: None,
            period_end_unix_ms: None,
            updated_unix_ms: 0,
        }
    }

    fn sub(id: &str, status: &str) -> ProviderSubscription {
        ProviderSubscription {
            id: id.into(),
            status: status.into(),
            price: None,
            org: None,
            customer: None,
            period: None,
        }
    }

    #[test]
    fn a_stale_subscription_never_replaces_a_running_one() {
        let running = account("stripe", "sub_new", "active");
        assert!(!should_apply(Some(&running), Provider::Stripe, &sub("sub_old", "canceled")));
        assert!(!should_apply(Some(&running), Provider::PayPal, &sub("I-OLD", "CANCELLED")));
        assert!(should_apply(Some(&running), Provider::Stripe, &sub("sub_new", "canceled")), "its own cancellation");
        assert!(should_apply(Some(&running), Provider::PayPal, &sub("I-NEW", "ACTIVE")), "a new running one");
        let ended = account("stripe", "sub_old", "canceled");
        assert!(should_apply(Some(&ended), Provider::Stripe, &sub("sub_new", "incomplete")));
        assert!(should_apply(None, Provider::Stripe, &sub("sub_new", "canceled")));
    }
}
