//! The signing workflow after the draft: sending, the signer ceremony, completion, and the
//! background jobs (invitations, reminders, expiry, the final document, notifications, webhook
//! deliveries) that run from the job queue in the database, so they survive restarts and may run
//! on any node.
//!
//! Every state change asks the envelope state machine ([`crate::lifecycle`]) and the routing rule
//! ([`crate::routing`]) first, and is stored in one transaction together with the jobs that must
//! follow it, so a crash never leaves an envelope without its next step. Among those jobs are
//! the change's audit event (prepared before the transaction, appended by this node right after
//! it, and by the job only if this node stopped first) and its webhook event.

mod completion;
mod cpu;
mod jobs;
mod mail;
mod previews;
mod sending;
mod shares;
mod signing;
mod webhooks;

use std::collections::HashMap;
use std::sync::Arc;

use sigillum_audit::ActorKind;
use sigillum_crypto::field::FieldContext;

use crate::audit_log::{Actor, AuditLog, NewEvent};
use crate::envelopes::{recipient_ctx, EnvelopeError, Envelopes};
use crate::ids::EnvelopeId;
use crate::ports::{
    AccountStore, Clock, EnvelopeRecord, EnvelopeStore, JobStore, Mailer, NewJob, RecipientRecord, RecipientStore,
    SigningStore, WebhookSender, WebhookStore,
};
use crate::vault::Vault;

pub use jobs::{route_on, JobKind, Worker, DEFAULT_JOB_LANES};
pub use mail::MAIL_LANGUAGES;
pub use sending::SendRequest;
pub use signing::{CompleteRequest, SignatureInput, SignerView};
pub use webhooks::KEK as WEBHOOK_KEK;
pub use webhooks::{NewWebhook, WebhookCreated, WebhookView, WEBHOOK_EVENTS};

/// The adapters the workflow runs on.
pub struct WorkflowPorts {
    pub envelopes: Arc<dyn EnvelopeStore>,
    pub parties: Arc<dyn RecipientStore>,
    pub signing: Arc<dyn SigningStore>,
    pub jobs: Arc<dyn JobStore>,
    pub webhooks: Arc<dyn WebhookStore>,
    pub accounts: Arc<dyn AccountStore>,
    pub mailer: Arc<dyn Mailer>,
    pub hooks: Arc<dyn WebhookSender>,
    /// Seals finished documents (PAdES B-LTA with the internal PKI or an imported one).
    pub sealer: Arc<crate::seal::Sealer>,
    /// The plan's envelope allowance, asked before each send (billing); `None`: no limits.
    pub quota: Option<Arc<dyn crate::ports::SendQuota>>,
}

/// Settings of the workflow.
#[derive(Clone, Debug)]
pub struct WorkflowConfig {
    /// Base of signing links, e.g. `https://sign.example.com`.
    pub public_url: String,
    /// This node's name (job leases).
    pub node: String,
    /// Allow `http://` webhook endpoints (tests on loopback; never in production).
    pub allow_insecure_webhooks: bool,
    /// ISO 3166-1 alpha-2 country in which the deployment keeps its data (printed on every
    /// certificate of completion).
    pub jurisdiction: String,
}

struct Inner {
    ports: WorkflowPorts,
    envelopes: Envelopes,
    vault: Vault,
    audit: AuditLog,
    clock: Arc<dyn Clock>,
    config: WorkflowConfig,
    /// Wakes the local worker when a job was enqueued.
    wake: tokio::sync::Notify,
    /// Bounds the CPU-heavy parts of jobs to one per core.
    cpu: cpu::CpuGate,
}

#[derive(Clone)]
pub struct Workflow {
    inner: Arc<Inner>,
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// A recipient's name and email, opened.
#[derive(Clone, Debug)]
struct Person {
    name: String,
    email: String,
}

fn envelope_ctx<'a>(id: &'a str, column: &'a str) -> FieldContext<'a> {
    FieldContext { table: "envelopes", column, row_id: id }
}

fn internal(e: impl std::fmt::Display) -> EnvelopeError {
    EnvelopeError::Internal(e.to_string())
}

fn conflict(code: &'static str, message: &'static str) -> EnvelopeError {
    EnvelopeError::Conflict(crate::lifecycle::Conflict { code, message })
}

/// How long the job that appends a change's audit event waits: the node that made the change
/// appends the event itself right after it, and that append marks the job done, so the job runs
/// only when that node stopped in between.
const AUDIT_FALLBACK_MS: i64 = 60_000;

/// The audit event of a change, prepared before the change's transaction; its append settles the
/// fallback job stored with the change. The audit outbox of every change that must not be stored
/// without its event: envelope set-up and states, consent, first views, signing links, webhooks,
/// accounts, billing.
pub(crate) struct ChangeEvent(crate::audit_log::PreparedEvent);

impl ChangeEvent {
    /// Prepares `e`, and the job to store in the change's own transaction: it appends the event
    /// should this node stop before [`Self::append`] does.
    pub(crate) async fn prepare(
        audit: &AuditLog,
        e: NewEvent,
        now: i64,
    ) -> Result<(Self, NewJob), crate::audit_log::AuditError> {
        let event = audit.prepare(e).await?;
        let job_id = format!("audit:{}", hex::encode(event.leaf_hash()));
        let payload = serde_json::json!({ "event": event.to_json() });
        let job = sending::job(job_id.clone(), JobKind::Audit, payload, now + AUDIT_FALLBACK_MS);
        Ok((Self(event.settling(job_id)), job))
    }

    /// Appends the event of a change now stored; the append marks its fallback job done.
    pub(crate) async fn append(self, audit: &AuditLog) -> Result<(), crate::audit_log::AuditError> {
        audit.append(self.0).await.map(|_| ())
    }
}

/// A random job id for jobs that may legitimately repeat (e.g. one webhook `event` per change).
fn fresh_job_id(kind: &str) -> String {
    format!("{kind}:{}", uuid::Uuid::new_v4().simple())
}

impl Workflow {
    pub fn new(
        ports: WorkflowPorts,
        envelopes: Envelopes,
        vault: Vault,
        audit: AuditLog,
        clock: Arc<dyn Clock>,
        config: WorkflowConfig,
    ) -> Self {
        let config = WorkflowConfig { public_url: config.public_url.trim_end_matches('/').to_owned(), ..config };
        Self {
            inner: Arc::new(Inner {
                ports,
                envelopes,
                vault,
                audit,
                clock,
                config,
                wake: tokio::sync::Notify::new(),
                cpu: cpu::CpuGate::per_core(),
            }),
        }
    }

    fn now(&self) -> i64 {
        self.inner.clock.now_unix_ms()
    }

    /// What a state change reports, to store in the change's own transaction: the fallback job
    /// of its audit event (which appends the event should this node stop before
    /// [`Self::record_change`]) and, when a webhook of the organisation subscribes to `webhook`'s
    /// event, the job that delivers it. Returns the prepared event to append after the commit.
    async fn change_reports(
        &self,
        audit: NewEvent,
        webhook: Option<(crate::OrgId, &str, serde_json::Value)>,
        now: i64,
    ) -> Result<(ChangeEvent, Vec<NewJob>), EnvelopeError> {
        let (event, job) = ChangeEvent::prepare(&self.inner.audit, audit, now).await?;
        let mut jobs = vec![job];
        if let Some((org, name, data)) = webhook {
            jobs.extend(self.event_jobs(org, name, data, now).await?);
        }
        Ok((event, jobs))
    }

    /// Appends the event of a change now stored; the append marks its fallback job done.
    async fn record_change(&self, c: ChangeEvent) -> Result<(), EnvelopeError> {
        Ok(c.append(&self.inner.audit).await?)
    }

    async fn enqueue(&self, jobs: &[NewJob]) -> Result<(), EnvelopeError> {
        self.inner.ports.jobs.enqueue(jobs, self.now()).await?;
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Opens a sealed text column of `envelope`.
    async fn open_text(
        &self,
        envelope: EnvelopeId,
        ctx: &FieldContext<'_>,
        sealed: &[u8],
    ) -> Result<String, EnvelopeError> {
        let bytes = self.inner.vault.open_field(envelope, ctx, sealed).await?;
        String::from_utf8(bytes).map_err(|_| internal("sealed text is not UTF-8"))
    }

    async fn seal_text(
        &self,
        envelope: EnvelopeId,
        ctx: &FieldContext<'_>,
        text: &str,
    ) -> Result<Vec<u8>, EnvelopeError> {
        Ok(self.inner.vault.seal_field(envelope, ctx, text.as_bytes()).await?)
    }

    async fn title(&self, env: &EnvelopeRecord) -> Result<String, EnvelopeError> {
        let id = env.id.to_string();
        self.open_text(env.id, &envelope_ctx(&id, "title"), &env.title_sealed).await
    }

    /// Names and emails of recipients, opened with one unwrap of the envelope key.
    async fn people(
        &self,
        envelope: EnvelopeId,
        recipients: &[RecipientRecord],
    ) -> Result<HashMap<uuid::Uuid, Person>, EnvelopeError> {
        let ids: Vec<String> = recipients.iter().map(|r| r.id.to_string()).collect();
        let mut items = Vec::new();
        for (r, id) in recipients.iter().zip(&ids) {
            items.push((recipient_ctx(id, "name"), r.name_sealed.as_slice()));
            items.push((recipient_ctx(id, "email"), r.email_sealed.as_slice()));
        }
        let opened = self.inner.vault.open_fields(envelope, &items).await?;
        let mut out = HashMap::new();
        for (r, pair) in recipients.iter().zip(opened.chunks(2)) {
            let text = |v: &Result<Vec<u8>, crate::vault::VaultError>| -> Result<String, EnvelopeError> {
                match v {
                    Ok(b) => String::from_utf8(b.clone()).map_err(|_| internal("not UTF-8")),
                    Err(e) => Err(internal(e)),
                }
            };
            let [name, email] = pair else { return Err(internal("recipient fields")) };
            out.insert(r.id, Person { name: text(name)?, email: text(email)? });
        }
        Ok(out)
    }

    /// The envelope's sender (its creator), for mail.
    async fn sender_name(&self, env: &EnvelopeRecord) -> String {
        match self.inner.ports.accounts.user(env.created_by).await {
            Ok(u) => u.name,
            Err(_) => "Sigillum".to_owned(),
        }
    }

    fn recipient_actor(r: &RecipientRecord, person: &Person) -> Actor {
        Actor {
            kind: ActorKind::Recipient,
            id: Some(r.id.to_string()),
            name: Some(person.name.clone()),
            email: Some(person.email.clone()),
        }
    }

    pub fn envelopes(&self) -> &Envelopes {
        &self.inner.envelopes
    }

    pub fn public_url(&self) -> &str {
        &self.inner.config.public_url
    }
}
