//! Billing on SQLite and PostgreSQL with a clock the test moves: the plan's envelope quota per
//! period (refused at the limit, open again when the period turns over, never exceeded by
//! concurrent sends from several nodes), a subscription's own period, replayed and
//! out-of-order provider events, and the way back to the free plan.
//!
//! The provider here is an in-memory stand-in of the `StripeApi` port that answers what a
//! subscription is now; the HTTP clients against a loopback Stripe and PayPal are tested
//! end to end in `crates/cli/tests/billing.rs`.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::ManualClock;
use secrecy::SecretString;
use sigillum_core::audit_log::Actor;
use sigillum_core::billing::{
    stripe_signature, Billing, BillingPorts, Catalogue, HostedPage, Period, ProviderError, ProviderSubscription,
    StripeApi, StripeCheckout, StripeSetup, WebhookOutcome,
};
use sigillum_core::ports::{BillingStore, QuotaError, SendQuota};
use sigillum_core::{AuditLog, ClientInfo, OrgId};
use sigillum_store::SqlRepository;

const SECRET: &str = "whsec_store_test";
const DAY: i64 = 86_400_000;
/// 2026-11-30T12:00:00Z.
const NOV_30_NOON: i64 = 1_796_040_000_000;

#[derive(Default)]
struct Subscriptions(Mutex<HashMap<String, ProviderSubscription>>);

#[async_trait::async_trait]
impl StripeApi for Subscriptions {
    async fn create_customer(&self, _: OrgId, _: &str, _: &str, _: &str) -> Result<String, ProviderError> {
        Err(ProviderError::Unavailable("not used here".into()))
    }
    async fn create_checkout_session(&self, _: &StripeCheckout<'_>) -> Result<HostedPage, ProviderError> {
        Err(ProviderError::Unavailable("not used here".into()))
    }
    async fn create_portal_session(&self, _: &str, _: &str, _: &str) -> Result<HostedPage, ProviderError> {
        Err(ProviderError::Unavailable("not used here".into()))
    }
    async fn subscription(&self, id: &str) -> Result<ProviderSubscription, ProviderError> {
        self.0.lock().unwrap().get(id).cloned().ok_or(ProviderError::NotFound)
    }
}

fn catalogue() -> Catalogue {
    Catalogue::from_json(
        r#"[{"id":"free","name":"Free","envelopes_per_month":2,"seats":1},
            {"id":"team","name":"Team","envelopes_per_month":3,"stripe_price":"price_team"}]"#,
    )
    .unwrap()
}

struct Setup {
    billing: Billing,
    repo: Arc<SqlRepository>,
    clock: Arc<ManualClock>,
    provider: Arc<Subscriptions>,
    org: OrgId,
}

async fn setup(s: &common::Stack) -> Setup {
    let clock = Arc::new(ManualClock::at(NOV_30_NOON));
    let audit = AuditLog::open(s.repo.clone(), s.vault.clone(), clock.clone(), "billing.test/log").await.unwrap();
    let provider = Arc::new(Subscriptions::default());
    let billing = Billing::new(
        BillingPorts {
            store: s.repo.clone(),
            accounts: s.repo.clone(),
            audit,
            clock: clock.clone(),
            stripe: Some(StripeSetup { api: provider.clone(), webhook_secret: SecretString::from(SECRET) }),
            paypal: None,
        },
        catalogue(),
        "https://sign.example.org/",
    );
    let org = s.vault.create_organisation("Acme").await.unwrap().id;
    Setup { billing, repo: s.repo.clone(), clock, provider, org }
}

impl Setup {
    async fn send(&self) -> Result<(), QuotaError> {
        self.billing.claim(self.org, &Actor::system(), &ClientInfo::default()).await.map(|_| ())
    }

    fn subscribe(&self, id: &str, status: &str, period: Period) {
        let sub = ProviderSubscription {
            id: id.into(),
            status: status.into(),
            price: Some("price_team".into()),
            org: Some(self.org),
            customer: Some("cus_1".into()),
            period: Some(period),
        };
        self.provider.0.lock().unwrap().insert(id.into(), sub);
    }

    /// A signed Stripe event about subscription `id`, as Stripe would deliver it now.
    fn event(&self, event_id: &str, kind: &str, id: &str) -> (String, Vec<u8>) {
        let body = serde_json::json!({"id": event_id, "object": "event", "type": kind,
            "data": {"object": {"id": id, "object": "subscription"}}})
        .to_string()
        .into_bytes();
        let now_s = self.clock.now() / 1000;
        (stripe_signature::sign(SECRET.as_bytes(), now_s, &body), body)
    }

    async fn deliver(&self, event_id: &str, kind: &str, id: &str) -> WebhookOutcome {
        let (sig, body) = self.event(event_id, kind, id);
        self.billing.stripe_webhook(Some(&sig), &body).await.unwrap()
    }
}

trait Now {
    fn now(&self) -> i64;
}
impl Now for ManualClock {
    fn now(&self) -> i64 {
        sigillum_core::ports::Clock::now_unix_ms(self)
    }
}

fn refused(r: Result<(), QuotaError>) -> (String, u32, i64) {
    match r {
        Err(QuotaError::Exceeded(q)) => {
            assert_eq!(q.upgrade_url, "https://sign.example.org/app/billing");
            (q.plan, q.limit, q.period_end_unix_ms)
        }
        other => panic!("expected a quota refusal, got {other:?}"),
    }
}

async fn quota_follows_the_period(s: &common::Stack) {
    let t = setup(s).await;
    // Free plan, calendar month: two sends in November, the third refused until December.
    t.send().await.unwrap();
    t.send().await.unwrap();
    let (plan, limit, end) = refused(t.send().await);
    assert_eq!((plan.as_str(), limit), ("free", 2));
    assert_eq!(end, NOV_30_NOON + DAY / 2, "November ends at midnight UTC");
    t.clock.advance(DAY / 2 - 1);
    refused(t.send().await);
    t.clock.advance(1);
    t.send().await.unwrap();
    assert_eq!(t.repo.usage(t.org, NOV_30_NOON + DAY / 2).await.unwrap(), 1);

    // A refused or released claim leaves the count as it was.
    t.send().await.unwrap();
    refused(t.send().await);
    let claim = SendQuota::claim(&t.billing, t.org, &Actor::system(), &ClientInfo::default()).await;
    assert!(matches!(claim, Err(QuotaError::Exceeded(_))));
    t.clock.advance(31 * DAY);
    let claim = SendQuota::claim(&t.billing, t.org, &Actor::system(), &ClientInfo::default()).await.unwrap().unwrap();
    t.billing.release(claim).await;
    assert_eq!(t.repo.usage(t.org, claim.period_start_unix_ms).await.unwrap(), 0);
}

async fn subscriptions_replays_and_out_of_order_events(s: &common::Stack) {
    let t = setup(s).await;
    t.send().await.unwrap();
    t.send().await.unwrap();
    refused(t.send().await);

    // Subscribed: the subscription's own period and the team plan's quota.
    let now = t.clock.now();
    let period = Period { start_unix_ms: now - 1000, end_unix_ms: now + 30 * DAY };
    t.subscribe("sub_A", "active", period);
    assert_eq!(t.deliver("evt_1", "customer.subscription.created", "sub_A").await, WebhookOutcome::Applied);
    let status = t.repo.billing_account(t.org).await.unwrap().unwrap();
    assert_eq!((status.plan_id.as_str(), status.status.as_str()), ("team", "active"));
    for _ in 0..3 {
        t.send().await.unwrap();
    }
    let (plan, limit, end) = refused(t.send().await);
    assert_eq!((plan.as_str(), limit, end), ("team", 3, period.end_unix_ms));

    // The change's audit event was stored with it as a fallback job (for a node stopping before
    // the append, as a retried delivery is a duplicate), and the append settled that job.
    let audit_jobs = || async {
        let done: Vec<(String, Option<i64>)> = sqlx::query_as("SELECT id, done_ms FROM jobs WHERE id LIKE 'audit:%'")
            .fetch_all(t.repo.pool())
            .await
            .unwrap();
        done
    };
    let jobs = audit_jobs().await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert!(jobs[0].1.is_some(), "settled by the append");

    // The same event again (a replay, or Stripe delivering twice) changes nothing.
    assert_eq!(t.deliver("evt_1", "customer.subscription.created", "sub_A").await, WebhookOutcome::Duplicate);
    assert_eq!(audit_jobs().await.len(), 1);

    // Cancelled at Stripe; its `deleted` event arrives before an older `updated` one. Both
    // end in the state Stripe reports now: cancelled, back on the free plan.
    t.subscribe("sub_A", "canceled", period);
    assert_eq!(t.deliver("evt_3", "customer.subscription.deleted", "sub_A").await, WebhookOutcome::Applied);
    assert_eq!(t.deliver("evt_2", "customer.subscription.updated", "sub_A").await, WebhookOutcome::Applied);
    let status = t.repo.billing_account(t.org).await.unwrap().unwrap();
    assert_eq!(status.status, "canceled");
    // Free again: November's two sends count against the free plan's two.
    let (plan, _, _) = refused(t.send().await);
    assert_eq!(plan, "free");

    // A new subscription runs; a late event about the old, cancelled one does not end it.
    t.subscribe("sub_B", "active", period);
    assert_eq!(t.deliver("evt_4", "customer.updated", "sub_B").await, WebhookOutcome::Ignored);
    assert_eq!(t.deliver("evt_5", "customer.subscription.created", "sub_B").await, WebhookOutcome::Applied);
    assert_eq!(t.deliver("evt_6", "customer.subscription.updated", "sub_A").await, WebhookOutcome::Ignored);
    let status = t.repo.billing_account(t.org).await.unwrap().unwrap();
    assert_eq!((status.subscription_id.as_deref(), status.status.as_str()), (Some("sub_B"), "active"));

    // A past-due subscription keeps its plan while Stripe retries the payment.
    t.subscribe("sub_B", "past_due", period);
    assert_eq!(t.deliver("evt_7", "invoice.upcoming", "sub_B").await, WebhookOutcome::Ignored);
    assert_eq!(t.deliver("evt_8", "customer.subscription.updated", "sub_B").await, WebhookOutcome::Applied);
    let status = t.repo.billing_account(t.org).await.unwrap().unwrap();
    assert_eq!((status.plan_id.as_str(), status.status.as_str()), ("team", "past_due"));

    // Bad signatures change nothing.
    let (sig, body) = t.event("evt_9", "customer.subscription.deleted", "sub_B");
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    assert!(t.billing.stripe_webhook(Some(&sig), &tampered).await.is_err());
    assert!(t.billing.stripe_webhook(None, &body).await.is_err());
    assert!(!t.repo.billing_event_seen("stripe", "evt_9").await.unwrap());
}

/// Sends from several nodes at once never exceed the quota.
async fn concurrent_claims_stay_within_the_limit(nodes: Vec<Arc<SqlRepository>>) {
    let org = {
        let repo = &nodes[0];
        // An organisation row for the foreign key.
        let id = OrgId::new();
        sigillum_core::Repository::insert_organisation(
            repo.as_ref(),
            &sigillum_core::ports::Organisation { id, name: "Race".into(), created_unix_ms: 0 },
        )
        .await
        .unwrap();
        id
    };
    let mut tasks = Vec::new();
    for i in 0..24 {
        let repo = nodes[i % nodes.len()].clone();
        tasks.push(tokio::spawn(async move { repo.claim_usage(org, 1_000, Some(5)).await.unwrap() }));
    }
    let mut granted = 0;
    for t in tasks {
        granted += usize::from(t.await.unwrap());
    }
    assert_eq!(granted, 5);
    assert_eq!(nodes[0].usage(org, 1_000).await.unwrap(), 5);
    assert!(!nodes[0].claim_usage(org, 1_000, Some(0)).await.unwrap());
    assert!(nodes[0].claim_usage(org, 2_000, None).await.unwrap(), "no limit");
}

#[tokio::test]
async fn sqlite_billing() {
    let s = common::local_stack().await;
    quota_follows_the_period(&s).await;
    subscriptions_replays_and_out_of_order_events(&common::local_stack().await).await;
    concurrent_claims_stay_within_the_limit(vec![s.repo.clone()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_billing() {
    let s = common::server_stack().await;
    quota_follows_the_period(&s).await;
    subscriptions_replays_and_out_of_order_events(&common::server_stack().await).await;
    let other = common::same_stores_as(&s).await;
    concurrent_claims_stay_within_the_limit(vec![s.repo.clone(), other.repo.clone()]).await;
}
