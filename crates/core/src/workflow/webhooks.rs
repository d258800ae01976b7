//! Webhooks: per-organisation subscriptions, deliveries signed
//! `Sigillum-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, sent from
//! the job queue with exponential backoff, and a delivery log. The secret is shown once and
//! stored wrapped by the key manager.

use serde::{Deserialize, Serialize};
use sigillum_audit::{Detail, EventKind};
use sigillum_crypto::{Dek, KekRef, WrappedDek};

use super::sending::job;
use super::{fresh_job_id, internal, JobKind, Workflow};
use crate::accounts::Principal;
use crate::audit_log::{ClientInfo, NewEvent};
use crate::envelopes::EnvelopeError;
use crate::ids::OrgId;
use crate::ports::{DeliveryRecord, NewJob, WebhookRecord};

/// Event types a subscription may name (`*` is all of them).
pub const WEBHOOK_EVENTS: [&str; 6] = [
    "envelope.sent",
    "envelope.completed",
    "envelope.declined",
    "envelope.voided",
    "envelope.expired",
    "recipient.signed",
];
/// Whether webhook `w` is active and subscribed to `event`.
fn subscribes(w: &WebhookRecord, event: &str) -> bool {
    w.disabled_unix_ms.is_none() && w.events.split(',').any(|e| e == "*" || e == event)
}

/// What an event job carries.
#[derive(Deserialize)]
pub(super) struct EventJob {
    org_id: OrgId,
    event: String,
    data: serde_json::Value,
    created_ms: i64,
}

/// The id of the delivery of event job `job_id` to `webhook`: the same on every run of the job.
fn delivery_id(job_id: &str, webhook: uuid::Uuid) -> uuid::Uuid {
    let digest = crate::accounts::sha256(format!("{job_id}\n{webhook}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Uuid::new_v8(bytes)
}

/// The KEK that wraps webhook signing secrets.
pub const KEK: &str = "system:webhooks";
const MAX_WEBHOOKS: usize = 20;

/// `POST /api/v1/webhooks`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    pub url: String,
    /// Defaults to every event.
    pub events: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookView {
    pub id: uuid::Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub active: bool,
    pub created_unix_ms: i64,
}

/// The created subscription with its secret (shown once).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    pub webhook: WebhookView,
    pub secret: String,
}

impl From<&WebhookRecord> for WebhookView {
    fn from(w: &WebhookRecord) -> Self {
        Self {
            id: w.id,
            url: w.url.clone(),
            events: w.events.split(',').map(str::to_owned).collect(),
            active: w.disabled_unix_ms.is_none(),
            created_unix_ms: w.created_unix_ms,
        }
    }
}

/// The signature header value for `body` sent at `t` (unix seconds): Stripe's scheme, so
/// receivers can use any Stripe-compatible verifier (and ours, `billing::stripe_signature`).
pub fn signature_header(secret: &[u8], t: i64, body: &[u8]) -> String {
    crate::billing::stripe_signature::sign(secret, t, body)
}

/// Webhooks are organisation settings: owners manage them.
fn owner_only(p: &Principal) -> Result<(), EnvelopeError> {
    if p.role == crate::ports::Role::Owner {
        Ok(())
    } else {
        Err(EnvelopeError::Forbidden)
    }
}

fn check_url(raw: &str, allow_insecure: bool) -> Result<String, EnvelopeError> {
    let bad = |m: &str| EnvelopeError::Invalid(m.to_owned());
    let u = url::Url::parse(raw.trim()).map_err(|_| bad("url is not a valid URL"))?;
    match u.scheme() {
        "https" => {}
        "http" if allow_insecure => {}
        _ => return Err(bad("url must be https://")),
    }
    if u.host_str().is_none_or(str::is_empty) || !u.username().is_empty() || u.password().is_some() {
        return Err(bad("url needs a host and no credentials"));
    }
    if u.as_str().len() > 2000 {
        return Err(bad("url is too long"));
    }
    Ok(u.to_string())
}

impl Workflow {
    pub async fn create_webhook(
        &self,
        p: &Principal,
        input: NewWebhook,
        client: &ClientInfo,
    ) -> Result<WebhookCreated, EnvelopeError> {
        owner_only(p)?;
        let url = check_url(&input.url, self.inner.config.allow_insecure_webhooks)?;
        let events = input.events.unwrap_or_else(|| vec!["*".into()]);
        if events.is_empty() || events.iter().any(|e| e != "*" && !WEBHOOK_EVENTS.contains(&e.as_str())) {
            return Err(EnvelopeError::Invalid(format!("events are \"*\" or some of {}", WEBHOOK_EVENTS.join(", "))));
        }
        let store = &self.inner.ports.webhooks;
        if store.webhooks(p.org_id).await?.iter().filter(|w| w.disabled_unix_ms.is_none()).count() >= MAX_WEBHOOKS {
            return Err(EnvelopeError::Invalid(format!("an organisation has at most {MAX_WEBHOOKS} webhooks")));
        }
        let secret = Dek::generate().map_err(internal)?;
        let wrapped = self.inner.vault.wrap_system_secret(KEK, &secret).await?;
        let record = WebhookRecord {
            id: uuid::Uuid::now_v7(),
            org_id: p.org_id,
            url,
            events: events.join(","),
            kek_key_id: wrapped.kek.key_id.clone(),
            kek_version: wrapped.kek.version,
            secret_wrapped: wrapped.wrapped.clone(),
            created_unix_ms: self.now(),
            disabled_unix_ms: None,
        };
        let created = NewEvent::new(EventKind::WebhookCreated, None, p.actor(), client.clone())
            .detail("webhook_id", Detail::Text(record.id.to_string()))
            .detail("events", Detail::Text(record.events.clone()));
        let (logged, reports) = self.change_reports(created, None, record.created_unix_ms).await?;
        store.insert_webhook(&record, &reports).await?;
        self.record_change(logged).await?;
        Ok(WebhookCreated {
            webhook: WebhookView::from(&record),
            secret: format!("whsec_{}", hex::encode(secret.expose_secret())),
        })
    }

    pub async fn webhooks(&self, p: &Principal) -> Result<Vec<WebhookView>, EnvelopeError> {
        Ok(self.inner.ports.webhooks.webhooks(p.org_id).await?.iter().map(WebhookView::from).collect())
    }

    pub async fn disable_webhook(
        &self,
        p: &Principal,
        id: uuid::Uuid,
        client: &ClientInfo,
    ) -> Result<(), EnvelopeError> {
        owner_only(p)?;
        let disabled = NewEvent::new(EventKind::WebhookDisabled, None, p.actor(), client.clone())
            .detail("webhook_id", Detail::Text(id.to_string()));
        let now = self.now();
        let (logged, reports) = self.change_reports(disabled, None, now).await?;
        self.inner.ports.webhooks.disable_webhook(p.org_id, id, now, &reports).await?;
        self.record_change(logged).await
    }

    /// The delivery log of one of the caller's webhooks, newest first.
    pub async fn webhook_deliveries(
        &self,
        p: &Principal,
        id: uuid::Uuid,
    ) -> Result<Vec<DeliveryRecord>, EnvelopeError> {
        let w = self.inner.ports.webhooks.webhook(id).await?.filter(|w| w.org_id == p.org_id);
        let w = w.ok_or(EnvelopeError::NotFound)?;
        Ok(self.inner.ports.webhooks.deliveries(w.id, 200).await?)
    }

    /// The job that reports `event` to `org`'s webhooks, to store in the same transaction as the
    /// change it reports, so a change is never stored without its event, even when the node stops
    /// right after it. None when no webhook of `org` subscribes to the event (most organisations
    /// have none; a webhook created while the change commits may miss it).
    pub(super) async fn event_jobs(
        &self,
        org: OrgId,
        event: &str,
        data: serde_json::Value,
        now: i64,
    ) -> Result<Vec<NewJob>, EnvelopeError> {
        let hooks = self.inner.ports.webhooks.webhooks(org).await?;
        if !hooks.iter().any(|w| subscribes(w, event)) {
            return Ok(Vec::new());
        }
        let payload = serde_json::json!({ "org_id": org, "event": event, "data": data, "created_ms": now });
        Ok(vec![job(fresh_job_id("event"), JobKind::Event, payload, now)])
    }

    /// Fans one reported change out to the organisation's webhooks: one delivery, and one job
    /// to send it, per webhook subscribed to the event. A delivery's id derives from the event
    /// job's id and the webhook, so an event job run twice (a node stopped after queuing) queues
    /// nothing twice.
    pub(super) async fn fan_out(&self, job_id: &str, e: EventJob) -> Result<(), EnvelopeError> {
        let hooks = self.inner.ports.webhooks.webhooks(e.org_id).await?;
        let mut deliveries = Vec::new();
        let mut jobs = Vec::new();
        for w in hooks.iter().filter(|w| subscribes(w, &e.event)) {
            let id = delivery_id(job_id, w.id);
            let payload =
                serde_json::json!({ "id": id, "type": e.event, "created": e.created_ms / 1000, "data": e.data });
            deliveries.push(DeliveryRecord {
                id,
                webhook_id: w.id,
                event: e.event.clone(),
                payload: payload.to_string(),
                status: "pending".into(),
                attempts: 0,
                response_status: None,
                last_error: None,
                created_unix_ms: e.created_ms,
                delivered_unix_ms: None,
            });
            jobs.push(job(
                format!("webhook:{id}"),
                JobKind::Webhook,
                serde_json::json!({ "delivery_id": id }),
                e.created_ms,
            ));
        }
        if deliveries.is_empty() {
            return Ok(());
        }
        self.inner.ports.webhooks.insert_deliveries(&deliveries, &jobs).await?;
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Sends one delivery; an error makes the job retry with backoff (`last` marks the final try).
    pub(super) async fn deliver(&self, id: uuid::Uuid, last: bool) -> Result<(), EnvelopeError> {
        let store = &self.inner.ports.webhooks;
        let Some(mut d) = store.delivery(id).await? else { return Ok(()) };
        if d.status != "pending" {
            return Ok(());
        }
        let Some(w) = store.webhook(d.webhook_id).await? else { return Ok(()) };
        d.attempts += 1;
        if w.disabled_unix_ms.is_some() {
            d.status = "failed".into();
            d.last_error = Some("webhook disabled".into());
            store.update_delivery(&d).await?;
            return Ok(());
        }
        let wrapped = WrappedDek {
            kek: KekRef { key_id: w.kek_key_id.clone(), version: w.kek_version },
            wrapped: w.secret_wrapped.clone(),
        };
        let secret = self.inner.vault.unwrap_system_secret(&wrapped).await?;
        let t = self.now() / 1000;
        let headers = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("sigillum-signature".to_owned(), signature_header(secret.expose_secret(), t, d.payload.as_bytes())),
            ("sigillum-event".to_owned(), d.event.clone()),
            ("sigillum-delivery".to_owned(), d.id.to_string()),
        ];
        let result = self.inner.ports.hooks.post(&w.url, &headers, d.payload.as_bytes()).await;
        let error = match result {
            Ok(status) if (200..300).contains(&status) => {
                d.status = "delivered".into();
                d.response_status = Some(status);
                d.last_error = None;
                d.delivered_unix_ms = Some(self.now());
                None
            }
            Ok(status) => {
                d.response_status = Some(status);
                Some(format!("endpoint answered {status}"))
            }
            Err(e) => Some(e),
        };
        if let Some(e) = &error {
            d.last_error = Some(e.clone());
            if last {
                d.status = "failed".into();
            }
        }
        store.update_delivery(&d).await?;
        match error {
            Some(e) => Err(internal(e)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_over_t_dot_body() {
        let h = signature_header(b"Jefe", 1_700_000_000, b"{}");
        let expected = sigillum_crypto::hmac_sha256(b"Jefe", b"1700000000.{}");
        assert_eq!(h, format!("t=1700000000,v1={}", hex::encode(expected)));
    }

    #[test]
    fn urls_must_be_https_without_credentials() {
        assert!(check_url("https://hooks.example.com/x", false).is_ok());
        assert!(check_url("http://hooks.example.com/x", false).is_err());
        assert!(check_url("http://127.0.0.1:9/x", true).is_ok());
        assert!(check_url("https://user:pw@example.com/", false).is_err());
        assert!(check_url("ftp://example.com/", true).is_err());
        assert!(check_url("not a url", true).is_err());
    }
}
