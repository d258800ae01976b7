//! The job runner and the jobs: each node runs a [`Worker`] that leases due jobs from the
//! database, so work survives restarts and is shared by several nodes. Every job is idempotent:
//! it re-reads the state it acts on, so a job run twice (a lease that ran out) does no harm.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sigillum_audit::{Detail, EventKind};

use super::sending::{job, moved};
use super::shares::{LaneShares, Place};
use super::signing::{date, local_date};
use super::{internal, Workflow};
use crate::audit_log::{Actor, ClientInfo, NewEvent, PreparedEvent};
use crate::envelopes::EnvelopeError;
use crate::envelopes::FINAL;
use crate::ids::EnvelopeId;
use crate::lifecycle::EnvelopeStatus;
use crate::ports::{EnvelopeChange, Job, RecipientRecord, RoutedOn};
use crate::routing::{self, Step};

/// The kinds of job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Moves an envelope on: invite the next step, or finalise. Sending and signing now do this
    /// in their own transaction ([`route_on`]); the kind stays for the jobs that earlier
    /// versions queued with every send and signature.
    Advance,
    /// Invitation or reminder mail to one recipient.
    Invite,
    /// Produces the final document and completes the envelope.
    Finalize,
    /// Completed / declined / voided mail to one recipient.
    Notify,
    /// Expires an envelope still in progress at its expiry time.
    Expire,
    /// Appends the audit event of a change whose node stopped before appending it.
    Audit,
    /// Fans one event (a signature, a completion…) out to the organisation's webhooks.
    Event,
    /// Delivers one webhook event.
    Webhook,
    /// Renders the page previews of a new envelope.
    Previews,
    /// Erases the envelopes whose organisation's retention has run out (hourly, one node).
    Retention,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Advance => "advance",
            Self::Invite => "invite",
            Self::Finalize => "finalize",
            Self::Notify => "notify",
            Self::Expire => "expire",
            Self::Audit => "audit",
            Self::Event => "event",
            Self::Webhook => "webhook",
            Self::Previews => "previews",
            Self::Retention => "retention",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        [
            Self::Advance,
            Self::Invite,
            Self::Finalize,
            Self::Notify,
            Self::Expire,
            Self::Audit,
            Self::Event,
            Self::Webhook,
            Self::Previews,
            Self::Retention,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
    pub fn max_attempts(self) -> u32 {
        match self {
            Self::Webhook => 8,
            Self::Invite | Self::Notify => 10,
            // A document the renderer cannot draw fails the same way every time.
            Self::Previews => 3,
            _ => 20,
        }
    }
}

/// How long a node holds a job before another may take it over, unless it renews the lease.
/// Short, so the jobs of a node that stalled are taken over within seconds. (On PostgreSQL the
/// jobs of a node that died are taken over sooner still: its liveness lock goes with its
/// connection, see `sigillum_store::liveness`.)
const LEASE_MS: i64 = 20 * 1000;
/// How often a node renews the leases of the jobs it is running (well inside [`LEASE_MS`], so a
/// slow job, such as a large document's previews, is never taken over while its node lives).
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How often an idle worker looks for jobs enqueued by other nodes or due by time: one lane is
/// woken each time, and it wakes the next only when it found a job.
const POLL: Duration = Duration::from_millis(500);
/// How long the link in the completion mail works.
const COMPLETED_LINK_MS: i64 = 30 * super::DAY_MS;
/// Final documents larger than this are linked, not attached.
const MAX_ATTACHMENT: usize = 10 * 1024 * 1024;

/// Delay before attempt `attempt + 1`: 5 s doubling, at most an hour.
pub fn backoff_ms(attempt: u32) -> i64 {
    (5_000_i64 << attempt.saturating_sub(1).min(10)).min(60 * 60 * 1000)
}

#[derive(Deserialize)]
struct EnvelopeJob {
    envelope_id: EnvelopeId,
}

#[derive(Deserialize)]
struct RecipientJob {
    envelope_id: EnvelopeId,
    recipient_id: uuid::Uuid,
    #[serde(default)]
    reminder: u32,
}

#[derive(Deserialize)]
struct NotifyJob {
    envelope_id: EnvelopeId,
    recipient_id: uuid::Uuid,
    what: String,
}

#[derive(Deserialize)]
struct AuditJob {
    event: serde_json::Value,
}

#[derive(Deserialize)]
struct WebhookJob {
    delivery_id: uuid::Uuid,
}

fn payload<T: serde::de::DeserializeOwned>(job: &Job) -> Result<T, EnvelopeError> {
    serde_json::from_str(&job.payload).map_err(|e| internal(format!("job {} payload: {e}", job.id)))
}

/// A place in a lane share, held while its job runs; given back, it wakes a lane (after it is
/// back, so the lane woken finds the room).
struct HeldPlace<'a>(Option<Place>, &'a tokio::sync::Notify);

impl Drop for HeldPlace<'_> {
    fn drop(&mut self) {
        drop(self.0.take());
        self.1.notify_one();
    }
}

/// The background worker of one node: `lanes` loops, each running one job at a time, so a slow
/// job (a large document's previews, a webhook endpoint that takes its time) does not hold up
/// the mail and the final documents of everyone else.
pub struct Worker {
    workflow: Workflow,
    lanes: usize,
}

/// Job loops per node by default. Jobs mostly wait (on the database, the object store, the mail
/// relay, a webhook endpoint): with 8 lanes, one PostgreSQL node of the scale-out benchmark had
/// every lane waiting while jobs queued, 99 % of them up to 1 s; with 32, 99 % were taken within
/// 50 ms. Their CPU-heavy parts take a core each through the CPU gate, so more lanes do not mean
/// more renders at once.
pub const DEFAULT_JOB_LANES: usize = 32;

/// The routing rule ([`routing::next_step`]) turned into writes. Pure, so the store can apply it
/// inside the transaction that sends an envelope or stores a signature
/// ([`crate::ports::RecipientOutcome::route_on`]); `advance` jobs (queued by earlier versions)
/// apply it afterwards.
pub fn route_on(envelope: EnvelopeId, recipients: &[RecipientRecord], now: i64) -> RoutedOn {
    match routing::next_step(recipients) {
        Step::Activate(ids) => RoutedOn {
            activate: ids
                .into_iter()
                .map(|rid| {
                    let payload = serde_json::json!({ "envelope_id": envelope, "recipient_id": rid });
                    (rid, job(format!("invite:{rid}"), JobKind::Invite, payload, now))
                })
                .collect(),
            jobs: vec![],
        },
        Step::AllSigned => RoutedOn {
            activate: vec![],
            jobs: vec![job(
                format!("finalize:{envelope}"),
                JobKind::Finalize,
                serde_json::json!({ "envelope_id": envelope }),
                now,
            )],
        },
        Step::Waiting => RoutedOn::default(),
    }
}

impl Worker {
    pub fn new(workflow: Workflow) -> Self {
        Self { workflow, lanes: DEFAULT_JOB_LANES }
    }

    /// With `lanes` concurrent job loops (at least one).
    pub fn with_lanes(mut self, lanes: usize) -> Self {
        self.lanes = lanes.max(1);
        self
    }

    /// Runs until `stop` fires (each lane finishes the job it is running).
    pub async fn run(self, stop: tokio::sync::watch::Receiver<bool>) {
        let shares = Arc::new(LaneShares::for_lanes(self.lanes));
        let lanes = (0..self.lanes).map(|_| Self::lane(self.workflow.clone(), shares.clone(), stop.clone()));
        tokio::join!(
            futures::future::join_all(lanes),
            Self::ticker(self.workflow.clone(), stop.clone()),
            Self::hourly(self.workflow.clone(), stop.clone())
        );
    }

    /// Wakes one lane every [`POLL`] (a lane that is busy takes the wake-up when it is done), so
    /// an idle node makes one claim per poll rather than one per lane.
    async fn ticker(workflow: Workflow, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => workflow.inner.wake.notify_one(),
                _ = stop.changed() => return,
            }
        }
    }

    /// Every node asks for the hour's retention sweep; the job id names the hour, so one node
    /// runs it.
    async fn hourly(workflow: Workflow, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if let Err(e) = workflow.schedule_retention().await {
                tracing::warn!(error = %e, "could not schedule the retention sweep");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                _ = stop.changed() => return,
            }
        }
    }

    async fn lane(workflow: Workflow, shares: Arc<LaneShares>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let worked = workflow.run_next(Some(&shares)).await;
            if !worked {
                tokio::select! {
                    _ = workflow.inner.wake.notified() => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
}

impl Workflow {
    /// Runs the next due job, if any; true if there was one.
    pub async fn run_one(&self) -> bool {
        self.run_next(None).await
    }

    /// Runs the next due job of a kind whose lane share (if any) has room; true if there was one.
    async fn run_next(&self, shares: Option<&LaneShares>) -> bool {
        let store = &self.inner.ports.jobs;
        let now = self.now();
        let reserved = shares.map(LaneShares::reserve);
        let excluded = reserved.as_ref().map(|r| r.excluded.as_slice()).unwrap_or_default();
        let job = match store.claim_except(&self.inner.config.node, now, LEASE_MS, excluded).await {
            Ok(Some(job)) => job,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(error = %e, "job queue unavailable");
                return false;
            }
        };
        // The job keeps its share's place until it ends (then a lane looks for the jobs of that
        // share that waited for room); the other places go back first, so the lane woken next
        // finds them free.
        let place = reserved.and_then(|r| r.keep_for(JobKind::parse(&job.kind)));
        let _held = place.map(|p| HeldPlace(Some(p), &self.inner.wake));
        // Jobs come in groups (a completion enqueues mail for everyone and webhooks): while one
        // lane takes one, wake another for the next, until one finds none.
        self.inner.wake.notify_one();
        // Logged, and carried into the jobs this one enqueues, under the id of the request that
        // started the chain (on whichever node took it).
        let request_id = serde_json::from_str::<serde_json::Value>(&job.payload)
            .ok()
            .and_then(|p| p.get("request_id").and_then(serde_json::Value::as_str).map(str::to_owned));
        let span = tracing::info_span!(
            "job",
            job = %job.id,
            kind = %job.kind,
            request_id = %request_id.as_deref().unwrap_or("-")
        );
        let work = async {
            let started = std::time::Instant::now();
            let result = match request_id {
                Some(id) => crate::request_context::scope(id, self.run_job(&job)).await,
                None => self.run_job(&job).await,
            };
            let done = match result {
                Ok(()) => {
                    tracing::info!(attempt = job.attempts, ms = started.elapsed().as_millis() as u64, "job done");
                    store.finish(&job.id, self.now()).await
                }
                Err(e) => {
                    let retry = (job.attempts < job.max_attempts).then(|| self.now() + backoff_ms(job.attempts));
                    tracing::warn!(attempt = job.attempts, error = %e, gives_up = retry.is_none(), "job failed");
                    store.fail(&job.id, &e.to_string(), retry, self.now()).await
                }
            };
            if let Err(e) = done {
                tracing::warn!(error = %e, "could not record the job's result");
            }
        };
        let heartbeat = async {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                match store.extend(&job.id, &self.inner.config.node, self.now() + LEASE_MS).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(job = %job.id, "lost the job's lease; another node may run it too");
                        return std::future::pending::<()>().await;
                    }
                    // A database hiccup: try again at the next beat, the lease has time left.
                    Err(e) => tracing::warn!(job = %job.id, error = %e, "could not renew the job's lease"),
                }
            }
        };
        tokio::select! {
            () = tracing::Instrument::instrument(work, span) => {}
            () = heartbeat => {}
        }
        true
    }

    /// Jobs were enqueued elsewhere (another node, per a database notification): a lane looks now.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Enqueues this hour's retention sweep (a no-op when a node did already).
    pub async fn schedule_retention(&self) -> Result<(), EnvelopeError> {
        let now = self.now();
        let hour = now / (60 * 60 * 1000);
        self.enqueue(&[job(format!("retention:{hour}"), JobKind::Retention, serde_json::json!({}), now)]).await
    }

    /// Erases every envelope whose organisation's retention has run out: the `envelope.deleted`
    /// event first (reason `retention`), then its key and blobs, then its rows. The audit log
    /// keeps the envelope's leaves (hashes), so it stays verifiable. Returns how many went.
    pub async fn apply_retention(&self) -> Result<usize, EnvelopeError> {
        let mut erased = 0;
        loop {
            let batch = self.inner.ports.envelopes.past_retention(self.now(), 100).await?;
            if batch.is_empty() {
                return Ok(erased);
            }
            for (org, id, sha256) in batch {
                self.inner
                    .audit
                    .record(
                        NewEvent::new(EventKind::EnvelopeDeleted, Some(id), Actor::system(), ClientInfo::default())
                            .document(sha256)
                            .detail("reason", Detail::Text("retention".into())),
                    )
                    .await?;
                self.inner.vault.shred_envelope(id).await?;
                self.inner.ports.envelopes.delete_envelope(org, id).await?;
                erased += 1;
            }
            tracing::info!(erased, "retention: envelopes erased");
        }
    }

    /// The job queue as monitoring sees it: jobs not done yet, and how many milliseconds the most
    /// overdue job waiting for a node is late (0 when none is). A job a node is running does not
    /// count: its time is work, not lag; a job whose node died counts again once its lease ran out.
    pub async fn job_queue(&self) -> Result<(usize, i64), EnvelopeError> {
        let pending = self.inner.ports.jobs.pending_jobs().await?;
        let now = self.now();
        let lag = pending
            .iter()
            .filter(|j| j.leased_until_unix_ms.is_none_or(|until| until < now))
            .map(|j| now - j.run_at_unix_ms)
            .max()
            .unwrap_or(0)
            .max(0);
        Ok((pending.len(), lag))
    }

    /// Runs every job due now (tests and the benchmark drive the queue with this).
    pub async fn drain(&self) {
        while self.run_one().await {}
    }

    async fn run_job(&self, job: &Job) -> Result<(), EnvelopeError> {
        let kind = JobKind::parse(&job.kind).ok_or_else(|| internal(format!("unknown job kind {}", job.kind)))?;
        match kind {
            JobKind::Advance => self.advance(payload::<EnvelopeJob>(job)?.envelope_id).await,
            JobKind::Invite => {
                let p: RecipientJob = payload(job)?;
                self.invite(p.envelope_id, p.recipient_id, p.reminder).await
            }
            JobKind::Finalize => self.finalize(payload::<EnvelopeJob>(job)?.envelope_id).await,
            JobKind::Notify => {
                let p: NotifyJob = payload(job)?;
                self.notify(p.envelope_id, p.recipient_id, &p.what).await
            }
            JobKind::Expire => self.expire(payload::<EnvelopeJob>(job)?.envelope_id).await,
            JobKind::Audit => {
                let p: AuditJob = payload(job)?;
                let event = PreparedEvent::from_json(&p.event)
                    .ok_or_else(|| internal(format!("job {}: not a prepared event", job.id)))?
                    // Its append marks this job done in the same commit: a node stopping right
                    // after it cannot leave the job to append the event again (events of no
                    // envelope have no trail to look in).
                    .settling(job.id.clone());
                let appended = self.inner.audit.append_once(event).await?;
                if appended {
                    tracing::warn!(job = %job.id, "appended the audit event of a change whose node stopped first");
                }
                Ok(())
            }
            JobKind::Event => self.fan_out(&job.id, payload(job)?).await,
            JobKind::Webhook => {
                self.deliver(payload::<WebhookJob>(job)?.delivery_id, job.attempts >= job.max_attempts).await
            }
            JobKind::Previews => self.render_previews(payload::<EnvelopeJob>(job)?.envelope_id).await,
            JobKind::Retention => self.apply_retention().await.map(|_| ()),
        }
    }

    /// Invites the next routing step, or queues the final document once everyone has signed.
    pub(super) async fn advance(&self, id: EnvelopeId) -> Result<(), EnvelopeError> {
        let Some(env) = self.inner.ports.signing.envelope_by_id(id).await? else { return Ok(()) };
        if env.status != EnvelopeStatus::Sent {
            return Ok(());
        }
        let recipients = self.inner.ports.parties.recipients(id).await?;
        let now = self.now();
        let routed = route_on(id, &recipients, now);
        if routed != RoutedOn::default() {
            self.inner.ports.signing.apply_routing(id, &routed, now).await?;
            self.inner.wake.notify_one();
        }
        Ok(())
    }

    /// Sends an invitation (`reminder == 0`) or the n-th reminder, with a fresh signing link,
    /// and schedules the next reminder.
    async fn invite(&self, id: EnvelopeId, rid: uuid::Uuid, reminder: u32) -> Result<(), EnvelopeError> {
        let Some(env) = self.inner.ports.signing.envelope_by_id(id).await? else { return Ok(()) };
        if env.status != EnvelopeStatus::Sent {
            return Ok(());
        }
        let recipients = self.inner.ports.parties.recipients(id).await?;
        let Some(r) = recipients.iter().find(|r| r.id == rid) else { return Ok(()) };
        if !routing::is_turn(&recipients, r) {
            return Ok(());
        }
        let person =
            self.people(id, std::slice::from_ref(r)).await?.remove(&rid).ok_or_else(|| internal("recipient"))?;
        let now = self.now();
        let expires = env.expires_unix_ms.unwrap_or(now);
        let link = self.issue_token(id, rid, "email", expires, &[]).await?;
        let title = self.title(&env).await?;
        let sid = env.id.to_string();
        let message = match &env.message_sealed {
            Some(m) => Some(self.open_text(id, &super::envelope_ctx(&sid, "message"), m).await?),
            None => None,
        };
        let mut mail = super::mail::invitation(
            &person,
            &r.language,
            &self.sender_name(&env).await,
            &title,
            message.as_deref(),
            &link,
            &date(expires),
            reminder,
            r.access_code_hash.is_some(),
        );
        mail.idempotency_key = Some(format!("invite:{rid}:r{reminder}"));
        self.inner.ports.mailer.send(&mail).await.map_err(internal)?;
        let kind = if reminder == 0 { EventKind::EmailSent } else { EventKind::ReminderSent };
        self.inner
            .audit
            .record(
                NewEvent::new(kind, Some(id), Actor::system(), ClientInfo::default())
                    .document(env.document_sha256.clone())
                    .detail("mail", Detail::Text(if reminder == 0 { "invitation" } else { "reminder" }.into()))
                    .detail("recipient_id", Detail::Text(rid.to_string()))
                    .note(format!("to {}", person.email)),
            )
            .await?;
        if let Some(days) = env.remind_every_days {
            let at = now + i64::from(days) * super::DAY_MS;
            if at < expires {
                self.enqueue(&[job(
                    format!("invite:{rid}:r{}", reminder + 1),
                    JobKind::Invite,
                    serde_json::json!({ "envelope_id": id, "recipient_id": rid, "reminder": reminder + 1 }),
                    at,
                )])
                .await?;
            }
        }
        Ok(())
    }

    /// Draws every value into the document, stores it sealed as the final version, completes
    /// the envelope and sends everyone the result.
    async fn finalize(&self, id: EnvelopeId) -> Result<(), EnvelopeError> {
        let Some(env) = self.inner.ports.signing.envelope_by_id(id).await? else { return Ok(()) };
        if env.status != EnvelopeStatus::Sent {
            return Ok(());
        }
        let recipients = self.inner.ports.parties.recipients(id).await?;
        if routing::next_step(&recipients) != Step::AllSigned {
            return Ok(());
        }
        // A run that stored the final document and then stopped left it behind: use it.
        let final_sha = match self.inner.vault.repository().get_blob(id, FINAL, 1).await {
            Ok(b) => b.sha256,
            Err(crate::ports::RepoError::NotFound) => {
                let sealed = self.final_document(&env, &recipients).await?;
                let body = futures::stream::iter([Ok::<_, std::convert::Infallible>(bytes::Bytes::from(sealed))]);
                self.inner.vault.put_blob(id, FINAL, 1, body).await?.sha256
            }
            Err(e) => return Err(e.into()),
        };
        let now = self.now();
        let mut jobs = self.notify_jobs(id, &recipients, "completed", now, |_| true);
        let data = serde_json::json!({ "envelope_id": id, "status": "completed", "final_sha256": final_sha });
        let (logged, reports) = self
            .change_reports(
                NewEvent::new(EventKind::EnvelopeCompleted, Some(id), Actor::system(), ClientInfo::default())
                    .document(final_sha.clone())
                    .detail("original_sha256", Detail::Text(env.document_sha256.clone())),
                Some((env.org_id, "envelope.completed", data)),
                now,
            )
            .await?;
        jobs.extend(reports);
        let change = EnvelopeChange {
            envelope_id: id,
            from: EnvelopeStatus::Sent,
            to: EnvelopeStatus::Completed,
            now_unix_ms: now,
            send: None,
            reason_sealed: None,
            final_sha256: Some(final_sha.clone()),
            jobs,
            route_on: false,
        };
        match self.inner.ports.signing.change_envelope(&change).await.map_err(moved) {
            Ok(()) => {}
            // Voided or expired meanwhile: nothing to complete.
            Err(EnvelopeError::Conflict(_)) => return Ok(()),
            Err(e) => return Err(e),
        }
        self.inner.wake.notify_one();
        self.record_change(logged).await
    }

    /// What goes into each field of the final document, and each recipient's signature.
    pub(super) async fn marks(
        &self,
        env: &crate::ports::EnvelopeRecord,
        recipients: &[crate::ports::RecipientRecord],
        locales: &HashMap<uuid::Uuid, String>,
    ) -> Result<(Vec<sigillum_pdf::Mark>, HashMap<uuid::Uuid, sigillum_pdf::MarkContent>), EnvelopeError> {
        use sigillum_pdf::MarkContent;
        let id = env.id;
        let people = self.people(id, recipients).await?;
        let fields = self.inner.ports.parties.fields(id).await?;
        let mut values = std::collections::HashMap::new();
        for v in self.inner.ports.signing.field_values(id).await? {
            let fid = v.field_id.to_string();
            let ctx = sigillum_crypto::field::FieldContext { table: "field_values", column: "value", row_id: &fid };
            let raw = self.inner.vault.open_field(id, &ctx, &v.value_sealed).await?;
            values.insert(v.field_id, serde_json::from_slice::<serde_json::Value>(&raw).map_err(internal)?);
        }
        let mut signatures = HashMap::new();
        for r in recipients {
            if let (Some(kind), Some(sealed)) = (&r.signature_kind, &r.signature_sealed) {
                let rid = r.id.to_string();
                let raw = self.inner.vault.open_field(id, &super::recipient_ctx(&rid, "signature"), sealed).await?;
                let content = if kind == "drawn" {
                    MarkContent::Image(sigillum_pdf::decode_png(&raw).map_err(internal)?)
                } else {
                    // Typed before the choice of faces existed: Dancing Script, as it was drawn.
                    let face =
                        r.signature_font.as_deref().and_then(sigillum_pdf::ScriptFace::from_id).unwrap_or_default();
                    MarkContent::Script(String::from_utf8(raw).map_err(internal)?, face)
                };
                signatures.insert(r.id, content);
            }
        }
        let mut marks = Vec::new();
        for f in &fields {
            let r = recipients.iter().find(|r| r.id == f.recipient_id);
            let person = people.get(&f.recipient_id);
            let content = match f.kind.as_str() {
                "signature" => signatures.get(&f.recipient_id).cloned(),
                "initials" => match (signatures.get(&f.recipient_id), person) {
                    (Some(MarkContent::Image(img)), _) => Some(MarkContent::Image(img.clone())),
                    // Typed initials take the face of the typed signature.
                    (Some(MarkContent::Script(_, face)), Some(p)) => {
                        Some(MarkContent::Script(initials(&p.name), *face))
                    }
                    (_, Some(p)) => Some(MarkContent::Script(initials(&p.name), Default::default())),
                    _ => None,
                },
                "name" => person.map(|p| MarkContent::Text(p.name.clone())),
                "email" => person.map(|p| MarkContent::Text(p.email.clone())),
                "date_signed" => r
                    .and_then(|r| r.finished_unix_ms)
                    .map(|t| MarkContent::Text(local_date(t, locales.get(&f.recipient_id).map(String::as_str)))),
                "text" => values.get(&f.id).and_then(|v| v.as_str()).map(|t| MarkContent::Text(t.to_owned())),
                "checkbox" => values.get(&f.id).and_then(|v| v.as_bool()).map(MarkContent::Check),
                _ => None,
            };
            if let Some(content) = content {
                marks.push(sigillum_pdf::Mark {
                    page: f.page,
                    x: f.x,
                    y: f.y,
                    width: f.width,
                    height: f.height,
                    content,
                });
            }
        }
        Ok((marks, signatures))
    }

    /// Completed, declined or voided mail to one recipient.
    async fn notify(&self, id: EnvelopeId, rid: uuid::Uuid, what: &str) -> Result<(), EnvelopeError> {
        let Some(env) = self.inner.ports.signing.envelope_by_id(id).await? else { return Ok(()) };
        let recipients = self.inner.ports.parties.recipients(id).await?;
        let Some(r) = recipients.iter().find(|r| r.id == rid) else { return Ok(()) };
        let person =
            self.people(id, std::slice::from_ref(r)).await?.remove(&rid).ok_or_else(|| internal("recipient"))?;
        let title = self.title(&env).await?;
        let sid = id.to_string();
        let reason = match &env.reason_sealed {
            Some(s) => Some(self.open_text(id, &super::envelope_ctx(&sid, "reason"), s).await?),
            None => None,
        };
        let sender = self.sender_name(&env).await;
        let mut mail = match (what, env.status) {
            ("completed", EnvelopeStatus::Completed) => {
                let sha = env.final_sha256.clone().unwrap_or_default();
                let doc = self.inner.vault.read_blob(id, FINAL, 1).await?;
                // The link lets the recipient fetch the final document again for 30 days.
                let link = self.issue_token(id, rid, "email", self.now() + COMPLETED_LINK_MS, &[]).await?;
                super::mail::completed(
                    &person,
                    &r.language,
                    &title,
                    &link,
                    &sha,
                    (doc.len() <= MAX_ATTACHMENT).then_some(doc),
                )
            }
            ("declined", EnvelopeStatus::Declined) => {
                super::mail::ended(&person, &r.language, &title, &sender, "declined", reason.as_deref())
            }
            ("voided", EnvelopeStatus::Voided) => {
                super::mail::ended(&person, &r.language, &title, &sender, "voided", reason.as_deref())
            }
            _ => return Ok(()),
        };
        mail.idempotency_key = Some(format!("notify:{id}:{rid}:{what}"));
        self.inner.ports.mailer.send(&mail).await.map_err(internal)?;
        self.inner
            .audit
            .record(
                NewEvent::new(EventKind::EmailSent, Some(id), Actor::system(), ClientInfo::default())
                    .document(env.final_sha256.clone().unwrap_or(env.document_sha256.clone()))
                    .detail("mail", Detail::Text(what.into()))
                    .detail("recipient_id", Detail::Text(rid.to_string()))
                    .note(format!("to {}", person.email)),
            )
            .await?;
        Ok(())
    }

    /// Expires an envelope still in progress at its expiry time.
    async fn expire(&self, id: EnvelopeId) -> Result<(), EnvelopeError> {
        let Some(env) = self.inner.ports.signing.envelope_by_id(id).await? else { return Ok(()) };
        if env.status != EnvelopeStatus::Sent || env.expires_unix_ms.is_some_and(|t| t > self.now()) {
            return Ok(());
        }
        let now = self.now();
        let data = serde_json::json!({ "envelope_id": id, "status": "expired" });
        let (logged, reports) = self
            .change_reports(
                NewEvent::new(EventKind::EnvelopeExpired, Some(id), Actor::system(), ClientInfo::default())
                    .document(env.document_sha256.clone()),
                Some((env.org_id, "envelope.expired", data)),
                now,
            )
            .await?;
        let change = EnvelopeChange {
            envelope_id: id,
            from: EnvelopeStatus::Sent,
            to: EnvelopeStatus::Expired,
            now_unix_ms: now,
            send: None,
            reason_sealed: None,
            final_sha256: None,
            jobs: reports,
            route_on: false,
        };
        match self.inner.ports.signing.change_envelope(&change).await.map_err(moved) {
            Ok(()) => {}
            Err(EnvelopeError::Conflict(_)) => return Ok(()),
            Err(e) => return Err(e),
        }
        self.record_change(logged).await
    }
}

/// Initials of a name: the first letter of each word, at most four.
fn initials(name: &str) -> String {
    name.split_whitespace().filter_map(|w| w.chars().next()).flat_map(char::to_uppercase).take(4).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_ms(1), 5_000);
        assert_eq!(backoff_ms(2), 10_000);
        assert_eq!(backoff_ms(5), 80_000);
        assert_eq!(backoff_ms(40), 60 * 60 * 1000);
    }

    #[test]
    fn initials_of_names() {
        assert_eq!(initials("ada king lovelace"), "AKL");
        assert_eq!(initials("  Émile   zola "), "ÉZ");
    }

    #[test]
    fn job_kinds_round_trip() {
        for k in [
            JobKind::Advance,
            JobKind::Invite,
            JobKind::Finalize,
            JobKind::Notify,
            JobKind::Expire,
            JobKind::Audit,
            JobKind::Event,
            JobKind::Webhook,
            JobKind::Previews,
            JobKind::Retention,
        ] {
            assert_eq!(JobKind::parse(k.as_str()), Some(k));
        }
    }
}
