//! Sending and signing state, the job queue and webhooks on SQLite or PostgreSQL. Each method
//! is one transaction; state changes are conditional on the state they start from, so two
//! nodes (or two requests) racing on the same envelope cannot both win.

use sigillum_core::lifecycle::EnvelopeStatus;
use sigillum_core::ports::{
    DeliveryRecord, EnvelopeChange, EnvelopeRecord, FieldValueRecord, Job, JobStore, NewJob, PendingJob,
    RecipientOutcome, RoutedOn, SigningStore, SigningTokenRecord, WebhookRecord, WebhookStore,
};
use sigillum_core::{EnvelopeId, OrgId, RepoError};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::envelopes::envelope_row;
use crate::inline::Columns;
use crate::recipients::{recipient_row, uuid, RECIPIENTS_OF_ENVELOPE};
use crate::sql::{db, hash_column, id_column, Backend, SqlRepository};

fn conflict(what: &str) -> RepoError {
    RepoError::Conflict(what.to_owned())
}

/// Moves a recipient from `created` to `sent` inside a transaction; false if it had moved already.
async fn activate(conn: &mut AnyConnection, envelope: EnvelopeId, id: uuid::Uuid) -> Result<bool, RepoError> {
    let r =
        sqlx::query("UPDATE recipients SET status = 'sent' WHERE id = $1 AND envelope_id = $2 AND status = 'created'")
            .bind(id.to_string())
            .bind(envelope.to_string())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    Ok(r.rows_affected() == 1)
}

/// Moves the envelope's routing on inside the caller's transaction, which has written the
/// envelope's row (sent it, or stored a signature under its lock): outcomes of one envelope are
/// serialised by that row on both databases, so the recipients read here include every outcome
/// committed before. Writes what the core's rule decides ([`sigillum_core::workflow::route_on`]):
/// the next recipients moved to `sent` with their invitations, or the finalisation queued.
async fn route_on(conn: &mut AnyConnection, envelope: EnvelopeId, now: i64) -> Result<(), RepoError> {
    let rows =
        sqlx::query(RECIPIENTS_OF_ENVELOPE).bind(envelope.to_string()).fetch_all(&mut *conn).await.map_err(db)?;
    let recipients = rows.iter().map(recipient_row).collect::<Result<Vec<_>, _>>()?;
    write_routing(conn, envelope, &sigillum_core::workflow::route_on(envelope, &recipients, now), now).await
}

/// Writes a routing decision inside the caller's transaction: each recipient still `created`
/// moves to `sent` and gets its invitation; the other jobs are queued.
async fn write_routing(
    conn: &mut AnyConnection,
    envelope: EnvelopeId,
    routed: &RoutedOn,
    now: i64,
) -> Result<(), RepoError> {
    let mut due = routed.jobs.clone();
    for (id, invite) in &routed.activate {
        if activate(conn, envelope, *id).await? {
            due.push(invite.clone());
        }
    }
    insert_jobs(conn, &due, now).await
}

/// Enqueues jobs inside a transaction; an existing id is left alone.
pub(crate) async fn insert_jobs(conn: &mut AnyConnection, jobs: &[NewJob], now: i64) -> Result<(), RepoError> {
    for j in jobs {
        sqlx::query(
            "INSERT INTO jobs (id, kind, payload, run_at_ms, max_attempts, created_ms) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&j.id)
        .bind(&j.kind)
        .bind(&j.payload)
        .bind(j.run_at_unix_ms)
        .bind(i64::from(j.max_attempts))
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }
    // Other nodes claim only due jobs, so only a due one is worth waking them for: most changes
    // also enqueue jobs due later (the audit event's fallback a minute on, reminders, expiry),
    // which every node's poll finds when their time comes. Waking every node for those cost
    // each of them an empty claim per change.
    if jobs.iter().any(|j| j.run_at_unix_ms <= now) {
        crate::notify::within(conn, crate::notify::JOBS, "").await?;
    }
    Ok(())
}

fn is_final(s: EnvelopeStatus) -> bool {
    matches!(s, EnvelopeStatus::Completed | EnvelopeStatus::Declined | EnvelopeStatus::Voided | EnvelopeStatus::Expired)
}

fn value_row(r: &AnyRow) -> Result<FieldValueRecord, RepoError> {
    Ok(FieldValueRecord {
        field_id: uuid(r, "field_id")?,
        envelope_id: id_column(r, "envelope_id", EnvelopeId::parse)?,
        recipient_id: uuid(r, "recipient_id")?,
        value_sealed: r.try_get("value_sealed").map_err(db)?,
        created_unix_ms: r.try_get("created_ms").map_err(db)?,
    })
}

#[async_trait::async_trait]
impl SigningStore for SqlRepository {
    async fn change_envelope(&self, c: &EnvelopeChange) -> Result<(), RepoError> {
        let mut tx = self.begin_write().await?;
        let send = c.send.as_ref();
        let done = sqlx::query(
            "UPDATE envelopes SET status = $1, updated_ms = $2, sent_ms = COALESCE($3, sent_ms), \
             message_sealed = COALESCE($4, message_sealed), expires_ms = COALESCE($5, expires_ms), \
             remind_every_days = COALESCE($6, remind_every_days), finished_ms = COALESCE($7, finished_ms), \
             final_sha256 = COALESCE($8, final_sha256), reason_sealed = COALESCE($9, reason_sealed) \
             WHERE id = $10 AND status = $11",
        )
        .bind(c.to.as_str())
        .bind(c.now_unix_ms)
        .bind(send.map(|_| c.now_unix_ms))
        .bind(send.and_then(|s| s.message_sealed.clone()))
        .bind(send.map(|s| s.expires_unix_ms))
        .bind(send.and_then(|s| s.remind_every_days).map(i64::from))
        .bind(is_final(c.to).then_some(c.now_unix_ms))
        .bind(c.final_sha256.clone())
        .bind(c.reason_sealed.clone())
        .bind(c.envelope_id.to_string())
        .bind(c.from.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if done.rows_affected() != 1 {
            return Err(conflict("envelope status changed"));
        }
        insert_jobs(&mut tx, &c.jobs, c.now_unix_ms).await?;
        if c.route_on {
            route_on(&mut tx, c.envelope_id, c.now_unix_ms).await?;
        }
        tx.commit().await.map_err(db)
    }

    async fn apply_routing(&self, envelope: EnvelopeId, routed: &RoutedOn, now_unix_ms: i64) -> Result<(), RepoError> {
        let mut tx = self.begin_write().await?;
        write_routing(&mut tx, envelope, routed, now_unix_ms).await?;
        tx.commit().await.map_err(db)
    }

    async fn mark_delivered(
        &self,
        recipient: uuid::Uuid,
        now_unix_ms: i64,
        jobs: &[NewJob],
    ) -> Result<bool, RepoError> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("UPDATE recipients SET status = 'delivered' WHERE id = $1 AND status = 'sent'")
            .bind(recipient.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let changed = r.rows_affected() == 1;
        if changed {
            insert_jobs(&mut tx, jobs, now_unix_ms).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(changed)
    }

    async fn record_consent(&self, recipient: uuid::Uuid, now_unix_ms: i64, jobs: &[NewJob]) -> Result<(), RepoError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE recipients SET consented_ms = COALESCE(consented_ms, $1) WHERE id = $2")
            .bind(now_unix_ms)
            .bind(recipient.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        insert_jobs(&mut tx, jobs, now_unix_ms).await?;
        tx.commit().await.map_err(db)
    }

    async fn record_outcome(&self, o: &RecipientOutcome) -> Result<(), RepoError> {
        let mut tx = self.begin_write().await?;
        // Locks the envelope row first (a write), so outcomes of one envelope run one at a time
        // on PostgreSQL and SQLite alike, and each sees the ones committed before it.
        let env = sqlx::query("UPDATE envelopes SET updated_ms = $1 WHERE id = $2 AND status = 'sent'")
            .bind(o.now_unix_ms)
            .bind(o.envelope_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if env.rows_affected() != 1 {
            return Err(conflict("envelope not in progress"));
        }
        let r = sqlx::query(
            "UPDATE recipients SET status = $1, finished_ms = $2, signature_kind = $3, signature_sealed = $4, \
             signature_font = $7 WHERE id = $5 AND envelope_id = $6 AND status IN ('sent', 'delivered')",
        )
        .bind(o.status)
        .bind(o.now_unix_ms)
        .bind(o.signature_kind.clone())
        .bind(o.signature_sealed.clone())
        .bind(o.recipient_id.to_string())
        .bind(o.envelope_id.to_string())
        .bind(o.signature_font.clone())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if r.rows_affected() != 1 {
            return Err(conflict("recipient finished"));
        }
        for v in &o.values {
            sqlx::query(
                "INSERT INTO field_values (field_id, envelope_id, recipient_id, value_sealed, created_ms) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(v.field_id.to_string())
            .bind(v.envelope_id.to_string())
            .bind(v.recipient_id.to_string())
            .bind(v.value_sealed.clone())
            .bind(v.created_unix_ms)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        if o.status == "declined" {
            sqlx::query("UPDATE envelopes SET status = 'declined', finished_ms = $1, reason_sealed = $2 WHERE id = $3")
                .bind(o.now_unix_ms)
                .bind(o.decline_reason_sealed.clone())
                .bind(o.envelope_id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        insert_jobs(&mut tx, &o.jobs, o.now_unix_ms).await?;
        if o.route_on {
            route_on(&mut tx, o.envelope_id, o.now_unix_ms).await?;
        }
        tx.commit().await.map_err(db)
    }

    async fn field_values(&self, envelope: EnvelopeId) -> Result<Vec<FieldValueRecord>, RepoError> {
        let rows = sqlx::query("SELECT * FROM field_values WHERE envelope_id = $1")
            .bind(envelope.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(value_row).collect()
    }

    async fn envelope_by_id(&self, id: EnvelopeId) -> Result<Option<EnvelopeRecord>, RepoError> {
        let r = sqlx::query("SELECT * FROM envelopes WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        r.as_ref().map(envelope_row).transpose()
    }

    async fn mark_previews_failed(&self, id: EnvelopeId, reason: &str) -> Result<(), RepoError> {
        let reason: String = reason.chars().take(500).collect();
        sqlx::query("UPDATE envelopes SET previews_failed = $1 WHERE id = $2")
            .bind(reason)
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn insert_signing_token(&self, t: &SigningTokenRecord, jobs: &[NewJob]) -> Result<(), RepoError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO signing_tokens (token_hash, recipient_id, envelope_id, purpose, created_ms, expires_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(t.token_hash.to_vec())
        .bind(t.recipient_id.to_string())
        .bind(t.envelope_id.to_string())
        .bind(&t.purpose)
        .bind(t.created_unix_ms)
        .bind(t.expires_unix_ms)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        insert_jobs(&mut tx, jobs, t.created_unix_ms).await?;
        tx.commit().await.map_err(db)
    }

    async fn signing_token(&self, token_hash: &[u8; 32]) -> Result<Option<SigningTokenRecord>, RepoError> {
        let r = sqlx::query("SELECT * FROM signing_tokens WHERE token_hash = $1")
            .bind(token_hash.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        r.map(|r| {
            Ok(SigningTokenRecord {
                token_hash: hash_column(&r, "token_hash")?,
                recipient_id: uuid(&r, "recipient_id")?,
                envelope_id: id_column(&r, "envelope_id", EnvelopeId::parse)?,
                purpose: r.try_get("purpose").map_err(db)?,
                created_unix_ms: r.try_get("created_ms").map_err(db)?,
                expires_unix_ms: r.try_get("expires_ms").map_err(db)?,
            })
        })
        .transpose()
    }
}

/// Done jobs are kept this long for inspection, then removed.
const KEEP_DONE_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// How often a node removes old done jobs (on a claim that finds nothing to do).
const PRUNE_EVERY_MS: i64 = 60 * 1000;

/// The condition of a job that may be claimed at `$n`.
macro_rules! claimable {
    ($n:literal) => {
        concat!(
            "done_ms IS NULL AND run_at_ms <= $",
            $n,
            " AND (locked_until_ms IS NULL OR locked_until_ms < $",
            $n,
            ")"
        )
    };
}

/// The condition of a job whose kind is not in the list `$n` (`,kind,kind,`; `,,` for none).
macro_rules! not_excluded {
    (sqlite, $n:literal) => {
        concat!(" AND instr($", $n, ", ',' || kind || ',') = 0")
    };
    (postgres, $n:literal) => {
        concat!(" AND strpos($", $n, ", ',' || kind || ',') = 0")
    };
}

/// Claims the next due job of a kind not excluded; `$lock` locks the chosen row. The outer
/// condition is checked again on the row itself, so when two claims pick the same job, the
/// second update matches nothing.
macro_rules! claim_job {
    ($backend:ident, $lock:literal) => {
        concat!(
            "UPDATE jobs SET locked_by = $1, locked_until_ms = $2, attempts = attempts + 1 \
             WHERE id = (SELECT id FROM jobs WHERE ",
            claimable!(3),
            not_excluded!($backend, 4),
            " ORDER BY run_at_ms LIMIT 1",
            $lock,
            ") AND ",
            claimable!(3),
            " RETURNING id, kind, payload, attempts, max_attempts, run_at_ms"
        )
    };
}
/// SQLite has one writer at a time: nothing to skip.
const CLAIM_SQLITE: &str = claim_job!(sqlite, "");
/// On PostgreSQL, nodes claim at the same time: a job another node's claim has locked is
/// skipped, not waited for, so racing claims take different jobs instead of queueing behind one
/// row lock and coming back empty while others are due.
const CLAIM_POSTGRES: &str = claim_job!(postgres, " FOR UPDATE SKIP LOCKED");

/// The excluded kinds as the claims match them.
fn kind_list(excluded: &[&str]) -> String {
    format!(",{},", excluded.join(","))
}

impl SqlRepository {
    /// Removes jobs done more than [`KEEP_DONE_MS`] ago, at most once a [`PRUNE_EVERY_MS`] per
    /// process (an idle node's lanes poll every half second).
    async fn prune_done_jobs(&self, now: i64) -> Result<(), RepoError> {
        if !crate::sql::claim_periodic(&self.last_job_prune, now, PRUNE_EVERY_MS) {
            return Ok(());
        }
        sqlx::query("DELETE FROM jobs WHERE done_ms IS NOT NULL AND done_ms < $1")
            .bind(now - KEEP_DONE_MS)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl JobStore for SqlRepository {
    async fn enqueue(&self, jobs: &[NewJob], now: i64) -> Result<(), RepoError> {
        let mut tx = self.begin_write().await?;
        insert_jobs(&mut tx, jobs, now).await?;
        tx.commit().await.map_err(db)
    }

    async fn claim_except(
        &self,
        node: &str,
        now: i64,
        lease_ms: i64,
        excluded: &[&str],
    ) -> Result<Option<Job>, RepoError> {
        let kinds = kind_list(excluded);
        // An idle node polls: on SQLite, a read first (inline, no write lock) finds whether
        // anything is due before the claiming update takes the database's one writer lock.
        let nothing_due = self.read_inline(|c| {
            crate::inline::optional(
                c,
                concat!("SELECT 1 AS due FROM jobs WHERE ", claimable!(1), not_excluded!(sqlite, 2), " LIMIT 1"),
                rusqlite::params![now, kinds],
                |r| r.col::<i64>("due"),
            )
        });
        if nothing_due == Some(None) {
            return self.prune_done_jobs(now).await.map(|()| None);
        }
        let sql = match self.backend {
            Backend::Postgres => CLAIM_POSTGRES,
            Backend::Sqlite => CLAIM_SQLITE,
        };
        let claim =
            || sqlx::query(sql).bind(node).bind(now + lease_ms).bind(now).bind(&kinds).fetch_optional(&self.pool);
        let mut row = claim().await.map_err(db)?;
        // Nothing free: the jobs of a node that died may be (see `liveness.rs`).
        if row.is_none() && self.release_orphaned_leases(node, now).await? > 0 {
            row = claim().await.map_err(db)?;
        }
        match row {
            Some(r) => Ok(Some(Job {
                id: r.try_get("id").map_err(db)?,
                kind: r.try_get("kind").map_err(db)?,
                payload: r.try_get("payload").map_err(db)?,
                attempts: r.try_get::<i64, _>("attempts").map_err(db)? as u32,
                max_attempts: r.try_get::<i64, _>("max_attempts").map_err(db)? as u32,
                run_at_unix_ms: r.try_get("run_at_ms").map_err(db)?,
            })),
            None => self.prune_done_jobs(now).await.map(|()| None),
        }
    }

    async fn extend(&self, id: &str, node: &str, until: i64) -> Result<bool, RepoError> {
        let done = sqlx::query(
            "UPDATE jobs SET locked_until_ms = $1 WHERE id = $2 AND locked_by = $3 AND done_ms IS NULL \
               AND locked_until_ms IS NOT NULL",
        )
        .bind(until)
        .bind(id)
        .bind(node)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn finish(&self, id: &str, now: i64) -> Result<(), RepoError> {
        sqlx::query("UPDATE jobs SET done_ms = $1, locked_until_ms = NULL, last_error = NULL WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn fail(&self, id: &str, error: &str, retry_at: Option<i64>, now: i64) -> Result<(), RepoError> {
        let error: String = error.chars().take(500).collect();
        match retry_at {
            Some(at) => {
                sqlx::query("UPDATE jobs SET run_at_ms = $1, locked_until_ms = NULL, last_error = $2 WHERE id = $3")
                    .bind(at)
                    .bind(error)
                    .bind(id)
            }
            None => sqlx::query(
                "UPDATE jobs SET done_ms = $1, failed = 1, locked_until_ms = NULL, last_error = $2 WHERE id = $3",
            )
            .bind(now)
            .bind(error)
            .bind(id),
        }
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn pending_jobs(&self) -> Result<Vec<PendingJob>, RepoError> {
        let rows =
            sqlx::query("SELECT id, run_at_ms, locked_until_ms FROM jobs WHERE done_ms IS NULL ORDER BY run_at_ms, id")
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok(PendingJob {
                    id: r.try_get("id").map_err(db)?,
                    run_at_unix_ms: r.try_get("run_at_ms").map_err(db)?,
                    leased_until_unix_ms: r.try_get("locked_until_ms").map_err(db)?,
                })
            })
            .collect()
    }
}

fn webhook_row(r: &AnyRow) -> Result<WebhookRecord, RepoError> {
    Ok(WebhookRecord {
        id: uuid(r, "id")?,
        org_id: id_column(r, "org_id", OrgId::parse)?,
        url: r.try_get("url").map_err(db)?,
        events: r.try_get("events").map_err(db)?,
        kek_key_id: r.try_get("kek_key_id").map_err(db)?,
        kek_version: r.try_get::<i64, _>("kek_version").map_err(db)? as u32,
        secret_wrapped: r.try_get("secret_wrapped").map_err(db)?,
        created_unix_ms: r.try_get("created_ms").map_err(db)?,
        disabled_unix_ms: r.try_get("disabled_ms").map_err(db)?,
    })
}

fn delivery_row(r: &AnyRow) -> Result<DeliveryRecord, RepoError> {
    Ok(DeliveryRecord {
        id: uuid(r, "id")?,
        webhook_id: uuid(r, "webhook_id")?,
        event: r.try_get("event").map_err(db)?,
        payload: r.try_get("payload").map_err(db)?,
        status: r.try_get("status").map_err(db)?,
        attempts: r.try_get::<i64, _>("attempts").map_err(db)? as u32,
        response_status: r.try_get::<Option<i64>, _>("response_status").map_err(db)?.map(|s| s as u16),
        last_error: r.try_get("last_error").map_err(db)?,
        created_unix_ms: r.try_get("created_ms").map_err(db)?,
        delivered_unix_ms: r.try_get("delivered_ms").map_err(db)?,
    })
}

#[async_trait::async_trait]
impl WebhookStore for SqlRepository {
    async fn insert_webhook(&self, w: &WebhookRecord, jobs: &[NewJob]) -> Result<(), RepoError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO webhooks (id, org_id, url, events, kek_key_id, kek_version, secret_wrapped, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(w.id.to_string())
        .bind(w.org_id.to_string())
        .bind(&w.url)
        .bind(&w.events)
        .bind(&w.kek_key_id)
        .bind(i64::from(w.kek_version))
        .bind(w.secret_wrapped.clone())
        .bind(w.created_unix_ms)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        insert_jobs(&mut tx, jobs, w.created_unix_ms).await?;
        tx.commit().await.map_err(db)
    }

    async fn webhooks(&self, org: OrgId) -> Result<Vec<WebhookRecord>, RepoError> {
        let rows = sqlx::query("SELECT * FROM webhooks WHERE org_id = $1 ORDER BY created_ms")
            .bind(org.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(webhook_row).collect()
    }

    async fn webhook(&self, id: uuid::Uuid) -> Result<Option<WebhookRecord>, RepoError> {
        let r = sqlx::query("SELECT * FROM webhooks WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        r.as_ref().map(webhook_row).transpose()
    }

    async fn disable_webhook(&self, org: OrgId, id: uuid::Uuid, now: i64, jobs: &[NewJob]) -> Result<(), RepoError> {
        let mut tx = self.begin_write().await?;
        let r =
            sqlx::query("UPDATE webhooks SET disabled_ms = COALESCE(disabled_ms, $1) WHERE id = $2 AND org_id = $3")
                .bind(now)
                .bind(id.to_string())
                .bind(org.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        if r.rows_affected() == 0 {
            return Err(RepoError::NotFound);
        }
        insert_jobs(&mut tx, jobs, now).await?;
        tx.commit().await.map_err(db)
    }

    async fn insert_deliveries(&self, ds: &[DeliveryRecord], jobs: &[NewJob]) -> Result<(), RepoError> {
        let mut tx = self.begin_write().await?;
        for d in ds {
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, webhook_id, event, payload, status, attempts, created_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
            )
            .bind(d.id.to_string())
            .bind(d.webhook_id.to_string())
            .bind(&d.event)
            .bind(&d.payload)
            .bind(&d.status)
            .bind(i64::from(d.attempts))
            .bind(d.created_unix_ms)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        let now = ds.first().map(|d| d.created_unix_ms).unwrap_or(0);
        insert_jobs(&mut tx, jobs, now).await?;
        tx.commit().await.map_err(db)
    }

    async fn delivery(&self, id: uuid::Uuid) -> Result<Option<DeliveryRecord>, RepoError> {
        let r = sqlx::query("SELECT * FROM webhook_deliveries WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        r.as_ref().map(delivery_row).transpose()
    }

    async fn update_delivery(&self, d: &DeliveryRecord) -> Result<(), RepoError> {
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = $2, response_status = $3, last_error = $4, \
             delivered_ms = $5 WHERE id = $6",
        )
        .bind(&d.status)
        .bind(i64::from(d.attempts))
        .bind(d.response_status.map(i64::from))
        .bind(d.last_error.clone())
        .bind(d.delivered_unix_ms)
        .bind(d.id.to_string())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn deliveries(&self, webhook: uuid::Uuid, limit: u32) -> Result<Vec<DeliveryRecord>, RepoError> {
        let rows = sqlx::query(
            "SELECT * FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY created_ms DESC, id DESC LIMIT $2",
        )
        .bind(webhook.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(delivery_row).collect()
    }
}
