//! Plans, quotas and usage periods: the pure rules of billing.
//!
//! Plans come from the operator's configuration. Exactly one plan has no price at any provider:
//! the free plan every organisation is on until a subscription grants another one. A plan's
//! limits are `None` when unlimited.

use serde::{Deserialize, Serialize};

/// One plan, as configured (`SIGILLUM_BILLING_PLANS`, a JSON list of these).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Stable identifier (`free`, `team`, …): `[a-z0-9_-]{1,32}`.
    pub id: String,
    pub name: String,
    /// Envelopes an organisation may send per period; absent: unlimited.
    #[serde(default)]
    pub envelopes_per_month: Option<u32>,
    /// Accounts an organisation may have; absent: unlimited.
    #[serde(default)]
    pub seats: Option<u32>,
    /// Stripe Price id (`price_…`) of the subscription.
    #[serde(default)]
    pub stripe_price: Option<String>,
    /// PayPal billing plan id (`P-…`).
    #[serde(default)]
    pub paypal_plan: Option<String>,
    /// What the plan costs, as shown to senders (e.g. `CHF 29 / month`); the provider's hosted
    /// page states the binding price.
    #[serde(default)]
    pub price_label: Option<String>,
}

impl Plan {
    pub fn is_free(&self) -> bool {
        self.stripe_price.is_none() && self.paypal_plan.is_none()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("billing plans: {0}")]
    Invalid(String),
}

/// The configured plans, checked: unique ids and prices, exactly one free plan.
#[derive(Clone, Debug)]
pub struct Catalogue {
    plans: Vec<Plan>,
    free: usize,
}

impl Catalogue {
    /// Parses `SIGILLUM_BILLING_PLANS` (a JSON list of [`Plan`]s).
    pub fn from_json(text: &str) -> Result<Self, PlanError> {
        let plans: Vec<Plan> = serde_json::from_str(text).map_err(|e| PlanError::Invalid(e.to_string()))?;
        Self::new(plans)
    }

    pub fn new(plans: Vec<Plan>) -> Result<Self, PlanError> {
        let bad = |m: String| Err(PlanError::Invalid(m));
        let mut seen = std::collections::HashSet::new();
        for p in &plans {
            let id_ok = (1..=32).contains(&p.id.len())
                && p.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
            if !id_ok {
                return bad(format!("plan id {:?} must be 1 to 32 of a-z, 0-9, - and _", p.id));
            }
            if p.name.trim().is_empty() || p.name.chars().count() > 64 {
                return bad(format!("plan {} needs a name of 1 to 64 characters", p.id));
            }
            for price in [&p.stripe_price, &p.paypal_plan].into_iter().flatten() {
                if price.is_empty() || !seen.insert(format!("price:{price}")) {
                    return bad(format!("plan {}: price id {price:?} is empty or used twice", p.id));
                }
            }
            if !seen.insert(format!("plan:{}", p.id)) {
                return bad(format!("plan id {} appears twice", p.id));
            }
        }
        match plans.iter().filter(|p| p.is_free()).count() {
            1 => Ok(Self { free: plans.iter().position(Plan::is_free).unwrap_or(0), plans }),
            n => {
                bad(format!("exactly one plan must have no stripe_price and no paypal_plan (the free plan); found {n}"))
            }
        }
    }

    /// The catalogue when the operator configured none: a free plan of 5 envelopes a month.
    pub fn default_free() -> Self {
        Self {
            plans: vec![Plan {
                id: "free".into(),
                name: "Free".into(),
                envelopes_per_month: Some(5),
                seats: Some(1),
                stripe_price: None,
                paypal_plan: None,
                price_label: None,
            }],
            free: 0,
        }
    }

    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }

    pub fn free(&self) -> &Plan {
        &self.plans[self.free]
    }

    pub fn get(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.id == id)
    }

    /// The plan a provider's price (Stripe) or plan id (PayPal) belongs to.
    pub fn by_price(&self, provider: Provider, price: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| match provider {
            Provider::Stripe => p.stripe_price.as_deref() == Some(price),
            Provider::PayPal => p.paypal_plan.as_deref() == Some(price),
        })
    }
}

/// The payment providers Sigillum hands card and account data to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Stripe,
    #[serde(rename = "paypal")]
    PayPal,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stripe => "stripe",
            Self::PayPal => "paypal",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "stripe" => Some(Self::Stripe),
            "paypal" => Some(Self::PayPal),
            _ => None,
        }
    }
}

/// Whether a provider's subscription status grants its plan. Stripe keeps `past_due`
/// subscriptions running while it retries the payment (the sender is warned); PayPal's `ACTIVE`
/// is its only paying state.
pub fn status_grants_plan(provider: Provider, status: &str) -> bool {
    match provider {
        Provider::Stripe => matches!(status, "active" | "trialing" | "past_due"),
        Provider::PayPal => status.eq_ignore_ascii_case("active"),
    }
}

/// A usage period `[start, end)` in unix milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Period {
    pub start_unix_ms: i64,
    pub end_unix_ms: i64,
}

/// The calendar month (UTC) around `now`: the period of organisations without a subscription.
pub fn calendar_month(now_unix_ms: i64) -> Period {
    use time::{Date, Month, OffsetDateTime, Time};
    let now = OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_unix_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let first = Date::from_calendar_date(now.year(), now.month(), 1).unwrap_or(now.date());
    let (y, m) = if now.month() == Month::December {
        (now.year() + 1, Month::January)
    } else {
        (now.year(), now.month().next())
    };
    let next = Date::from_calendar_date(y, m, 1).unwrap_or(first);
    let ms = |d: Date| (d.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    Period { start_unix_ms: ms(first), end_unix_ms: ms(next) }
}

/// The period usage is counted in: the subscription's current period while it runs and `now`
/// falls inside it, the calendar month otherwise (a lapsed period must not freeze the counter).
pub fn usage_period(subscription_period: Option<Period>, now_unix_ms: i64) -> Period {
    match subscription_period {
        Some(p) if p.start_unix_ms <= now_unix_ms && now_unix_ms < p.end_unix_ms => p,
        _ => calendar_month(now_unix_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(id: &str, stripe: Option<&str>, paypal: Option<&str>) -> Plan {
        Plan {
            id: id.into(),
            name: id.to_uppercase(),
            envelopes_per_month: Some(3),
            seats: None,
            stripe_price: stripe.map(Into::into),
            paypal_plan: paypal.map(Into::into),
            price_label: None,
        }
    }

    #[test]
    fn catalogue_needs_exactly_one_free_plan_and_unique_ids_and_prices() {
        assert!(Catalogue::new(vec![plan("free", None, None), plan("team", Some("price_1"), Some("P-1"))]).is_ok());
        assert!(Catalogue::new(vec![plan("team", Some("price_1"), None)]).is_err(), "no free plan");
        assert!(Catalogue::new(vec![plan("a", None, None), plan("b", None, None)]).is_err(), "two free plans");
        assert!(Catalogue::new(vec![plan("free", None, None), plan("free", Some("price_1"), None)]).is_err());
        assert!(Catalogue::new(vec![plan("free", None, None), plan("a", Some("p"), None), plan("b", Some("p"), None)])
            .is_err());
        assert!(Catalogue::new(vec![plan("free", None, None), plan("Team!", Some("p"), None)]).is_err());
        let c = Catalogue::from_json(
            r#"[{"id":"free","name":"Free","envelopes_per_month":5},
                {"id":"team","name":"Team","envelopes_per_month":500,"seats":10,"stripe_price":"price_team","paypal_plan":"P-TEAM"}]"#,
        )
        .unwrap();
        assert_eq!(c.free().id, "free");
        assert_eq!(c.by_price(Provider::Stripe, "price_team").unwrap().id, "team");
        assert_eq!(c.by_price(Provider::PayPal, "P-TEAM").unwrap().id, "team");
        assert!(c.by_price(Provider::PayPal, "price_team").is_none());
        assert!(Catalogue::from_json(r#"[{"id":"free","name":"Free","card_number":"4242"}]"#).is_err());
    }

    #[test]
    fn calendar_month_bounds() {
        // 2026-12-04T19:00:00Z
        let p = calendar_month(1_796_410_800_000);
        assert_eq!(p.start_unix_ms, 1_796_083_200_000); // 2026-12-01
        assert_eq!(p.end_unix_ms, 1_798_761_600_000); // 2027-01-01
        assert_eq!(calendar_month(p.end_unix_ms).start_unix_ms, p.end_unix_ms);
        assert_eq!(calendar_month(p.end_unix_ms - 1), p);
    }

    #[test]
    fn usage_period_follows_a_running_subscription_only() {
        let sub = Period { start_unix_ms: 1_000, end_unix_ms: 2_000 };
        assert_eq!(usage_period(Some(sub), 1_500), sub);
        assert_eq!(usage_period(Some(sub), 2_000), calendar_month(2_000));
        assert_eq!(usage_period(None, 1_500), calendar_month(1_500));
    }

    #[test]
    fn statuses_that_grant_a_plan() {
        for s in ["active", "trialing", "past_due"] {
            assert!(status_grants_plan(Provider::Stripe, s));
        }
        for s in ["canceled", "unpaid", "incomplete", "incomplete_expired", "paused"] {
            assert!(!status_grants_plan(Provider::Stripe, s));
        }
        assert!(status_grants_plan(Provider::PayPal, "ACTIVE"));
        for s in ["APPROVAL_PENDING", "APPROVED", "SUSPENDED", "CANCELLED", "EXPIRED"] {
            assert!(!status_grants_plan(Provider::PayPal, s));
        }
    }
}
