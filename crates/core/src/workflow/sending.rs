//! The sender's side after the draft: send, void, and embedded signing links.

use serde::Deserialize;
use sigillum_audit::{Detail, EventKind};

use super::{conflict, envelope_ctx, internal, Workflow, DAY_MS};
use crate::accounts::Principal;
use crate::audit_log::{ClientInfo, NewEvent};
use crate::envelopes::{EnvelopeDetail, EnvelopeError};
use crate::ids::EnvelopeId;
use crate::lifecycle::{self, Action, EnvelopeStatus};
use crate::ports::{EnvelopeChange, NewJob, RepoError, SendOptions, SigningTokenRecord};
use crate::routing;

/// `POST /api/v1/envelopes/{id}/send`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    pub message: Option<String>,
    /// 1 to 365; 30 when absent.
    pub expires_in_days: Option<u32>,
    /// 1 to 30; no reminders when absent.
    pub remind_every_days: Option<u32>,
}

/// How long an embedded signing link lives.
const EMBEDDED_LINK_MS: i64 = 60 * 60 * 1000;

pub(super) fn job(id: String, kind: super::JobKind, mut payload: serde_json::Value, run_at: i64) -> NewJob {
    // The request (or the job) that enqueues this one: the running node logs it under that id.
    if let (Some(request_id), Some(fields)) = (crate::request_context::current(), payload.as_object_mut()) {
        fields.insert("request_id".into(), serde_json::Value::String(request_id));
    }
    NewJob {
        id,
        kind: kind.as_str().to_owned(),
        payload: payload.to_string(),
        run_at_unix_ms: run_at,
        max_attempts: kind.max_attempts(),
    }
}

/// A `Conflict` from the store means another request changed the envelope first.
pub(super) fn moved(e: RepoError) -> EnvelopeError {
    match e {
        RepoError::Conflict(_) => conflict("envelope_changed", "the envelope changed meanwhile; reload it"),
        e => e.into(),
    }
}

impl Workflow {
    /// Sends a draft: checks it is complete, stores the send options, schedules expiry and
    /// invites the first routing step.
    pub async fn send(
        &self,
        p: &Principal,
        id: EnvelopeId,
        req: SendRequest,
        client: &ClientInfo,
    ) -> Result<EnvelopeDetail, EnvelopeError> {
        let env = self.inner.envelopes.authorize(p, id).await?;
        lifecycle::next(env.status, Action::Send).map_err(EnvelopeError::Conflict)?;
        let message = req.message.as_deref().map(str::trim).filter(|m| !m.is_empty());
        if message.is_some_and(|m| m.chars().count() > 2000) {
            return Err(EnvelopeError::Invalid("message must be at most 2000 characters".into()));
        }
        let days = req.expires_in_days.unwrap_or(30);
        if !(1..=365).contains(&days) {
            return Err(EnvelopeError::Invalid("expires_in_days must be from 1 to 365".into()));
        }
        if req.remind_every_days.is_some_and(|d| !(1..=30).contains(&d)) {
            return Err(EnvelopeError::Invalid("remind_every_days must be from 1 to 30".into()));
        }
        let recipients = self.inner.ports.parties.recipients(id).await?;
        if !recipients.iter().any(routing::acts) {
            return Err(EnvelopeError::Invalid("add at least one signer or approver before sending".into()));
        }
        let fields = self.inner.ports.parties.fields(id).await?;
        for r in recipients.iter().filter(|r| r.role == "signer") {
            if !fields.iter().any(|f| f.recipient_id == r.id && matches!(f.kind.as_str(), "signature" | "initials")) {
                return Err(EnvelopeError::Invalid(format!(
                    "signer {} has no signature or initials field; place one before sending",
                    r.id
                )));
            }
        }
        let now = self.now();
        let expires = now + i64::from(days) * DAY_MS;
        let id_text = id.to_string();
        let message_sealed = match message {
            Some(m) => Some(self.seal_text(id, &envelope_ctx(&id_text, "message"), m).await?),
            None => None,
        };
        let envelope = serde_json::json!({ "envelope_id": id });
        let (logged, reports) = self
            .change_reports(
                NewEvent::new(EventKind::EnvelopeSent, Some(id), p.actor(), client.clone())
                    .document(env.document_sha256.clone())
                    .detail("expires_unix_ms", Detail::Int(expires))
                    .detail("recipients", Detail::Int(recipients.len() as i64)),
                Some((env.org_id, "envelope.sent", serde_json::json!({ "envelope_id": id, "status": "sent" }))),
                now,
            )
            .await?;
        let change = EnvelopeChange {
            envelope_id: id,
            from: EnvelopeStatus::Draft,
            to: EnvelopeStatus::Sent,
            now_unix_ms: now,
            send: Some(SendOptions {
                message_sealed,
                expires_unix_ms: expires,
                remind_every_days: req.remind_every_days,
            }),
            reason_sealed: None,
            final_sha256: None,
            jobs: [vec![job(format!("expire:{id}"), super::JobKind::Expire, envelope, expires)], reports].concat(),
            // The first step is invited in the same transaction.
            route_on: true,
        };
        let claim = match &self.inner.ports.quota {
            Some(q) => q.claim(env.org_id, &p.actor(), client).await.map_err(|e| match e {
                crate::ports::QuotaError::Exceeded(x) => EnvelopeError::QuotaExceeded(x),
                crate::ports::QuotaError::Repo(r) => r.into(),
            })?,
            None => None,
        };
        if let Err(e) = self.inner.ports.signing.change_envelope(&change).await {
            if let (Some(q), Some(c)) = (&self.inner.ports.quota, claim) {
                q.release(c).await;
            }
            return Err(moved(e));
        }
        self.inner.wake.notify_one();
        self.record_change(logged).await?;
        self.inner.envelopes.detail(p, id).await
    }

    /// Voids an envelope in progress: nobody can sign any more, and those already invited are told.
    pub async fn void(
        &self,
        p: &Principal,
        id: EnvelopeId,
        reason: &str,
        client: &ClientInfo,
    ) -> Result<(), EnvelopeError> {
        let env = self.inner.envelopes.authorize(p, id).await?;
        lifecycle::next(env.status, Action::Void).map_err(EnvelopeError::Conflict)?;
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 1000 {
            return Err(EnvelopeError::Invalid("reason must be 1 to 1000 characters".into()));
        }
        let id_text = id.to_string();
        let reason_sealed = self.seal_text(id, &envelope_ctx(&id_text, "reason"), reason).await?;
        let now = self.now();
        let recipients = self.inner.ports.parties.recipients(id).await?;
        let mut jobs = self.notify_jobs(id, &recipients, "voided", now, |r| r.status != "created");
        let (logged, reports) = self
            .change_reports(
                NewEvent::new(EventKind::EnvelopeVoided, Some(id), p.actor(), client.clone())
                    .document(env.document_sha256)
                    .note(reason),
                Some((env.org_id, "envelope.voided", serde_json::json!({ "envelope_id": id, "status": "voided" }))),
                now,
            )
            .await?;
        jobs.extend(reports);
        let change = EnvelopeChange {
            envelope_id: id,
            from: EnvelopeStatus::Sent,
            to: EnvelopeStatus::Voided,
            now_unix_ms: now,
            send: None,
            reason_sealed: Some(reason_sealed),
            final_sha256: None,
            jobs,
            route_on: false,
        };
        self.inner.ports.signing.change_envelope(&change).await.map_err(moved)?;
        self.inner.wake.notify_one();
        self.record_change(logged).await
    }

    /// Notification jobs (`notify:<envelope>:<recipient>:<what>`) for the recipients `who` selects.
    pub(super) fn notify_jobs(
        &self,
        id: EnvelopeId,
        recipients: &[crate::ports::RecipientRecord],
        what: &str,
        now: i64,
        who: impl Fn(&crate::ports::RecipientRecord) -> bool,
    ) -> Vec<NewJob> {
        recipients
            .iter()
            .filter(|r| who(r))
            .map(|r| {
                job(
                    format!("notify:{id}:{}:{what}", r.id),
                    super::JobKind::Notify,
                    serde_json::json!({ "envelope_id": id, "recipient_id": r.id, "what": what }),
                    now,
                )
            })
            .collect()
    }

    /// A new signing token for `recipient`, stored with `jobs`; returns the link.
    pub(super) async fn issue_token(
        &self,
        envelope: EnvelopeId,
        recipient: uuid::Uuid,
        purpose: &str,
        expires_unix_ms: i64,
        jobs: &[NewJob],
    ) -> Result<String, EnvelopeError> {
        let token = crate::accounts::random_token().map_err(internal)?;
        self.inner
            .ports
            .signing
            .insert_signing_token(
                &SigningTokenRecord {
                    token_hash: crate::accounts::sha256(token.as_bytes()),
                    recipient_id: recipient,
                    envelope_id: envelope,
                    purpose: purpose.to_owned(),
                    created_unix_ms: self.now(),
                    expires_unix_ms,
                },
                jobs,
            )
            .await?;
        Ok(format!("{}/s/{token}", self.inner.config.public_url))
    }

    /// An embedded signing link for a recipient whose turn it is (for senders who host the
    /// ceremony in their own application). Lives one hour.
    pub async fn signing_link(
        &self,
        p: &Principal,
        id: EnvelopeId,
        recipient: uuid::Uuid,
        client: &ClientInfo,
    ) -> Result<String, EnvelopeError> {
        let env = self.inner.envelopes.authorize(p, id).await?;
        if env.status != EnvelopeStatus::Sent {
            return Err(conflict("envelope_not_in_progress", "signing links exist only while the envelope is sent"));
        }
        let mut recipients = self.inner.ports.parties.recipients(id).await?;
        if matches!(routing::next_step(&recipients), routing::Step::Activate(due) if due.contains(&recipient)) {
            // Due but not yet invited: the previous step's last signature was stored by an earlier
            // version, whose node stopped before moving the routing on (its advance job waits for
            // the lease; signatures now move it on in their own transaction). Moving it on here
            // is what that job would do, and is idempotent.
            self.advance(id).await?;
            recipients = self.inner.ports.parties.recipients(id).await?;
        }
        let r = recipients.iter().find(|r| r.id == recipient).ok_or(EnvelopeError::NotFound)?;
        if !routing::is_turn(&recipients, r) {
            return Err(conflict("not_your_turn", "this recipient cannot act now (not their turn, or finished)"));
        }
        let now = self.now();
        let expires = env.expires_unix_ms.unwrap_or(now + EMBEDDED_LINK_MS).min(now + EMBEDDED_LINK_MS);
        let created = NewEvent::new(EventKind::SigningLinkCreated, Some(id), p.actor(), client.clone())
            .document(env.document_sha256)
            .detail("recipient_id", Detail::Text(recipient.to_string()))
            .detail("expires_unix_ms", Detail::Int(expires));
        // A working link and its audit event must not part: the event's fallback job is stored
        // with the token (see `change_reports`).
        let (logged, reports) = self.change_reports(created, None, now).await?;
        let url = self.issue_token(id, recipient, "embedded", expires, &reports).await?;
        self.record_change(logged).await?;
        Ok(url)
    }
}
