//! Envelope records on SQLite or PostgreSQL. Every query is scoped by organisation.

use sigillum_core::lifecycle::EnvelopeStatus;
use sigillum_core::ports::{EnvelopeParts, EnvelopeRecord, EnvelopeStore, NewJob};
use sigillum_core::{EnvelopeId, OrgId, RepoError, UserId};
use sqlx::Row;

use crate::inline::Columns;
use crate::sql::{corrupt, db, id_column, SqlRepository};

const ENVELOPE_OF_ORG: &str = "SELECT * FROM envelopes WHERE id = $1 AND org_id = $2";

pub(crate) fn envelope_row(r: &(impl Columns + ?Sized)) -> Result<EnvelopeRecord, RepoError> {
    Ok(EnvelopeRecord {
        id: id_column(r, "id", EnvelopeId::parse)?,
        org_id: id_column(r, "org_id", OrgId::parse)?,
        created_by: id_column(r, "created_by", UserId::parse)?,
        title_sealed: r.col("title_sealed")?,
        status: EnvelopeStatus::parse(&r.col::<String>("status")?).ok_or_else(|| corrupt("status"))?,
        document_sha256: r.col("document_sha256")?,
        document_bytes: r.col::<i64>("document_bytes")? as u64,
        pages: r.col("pages")?,
        created_unix_ms: r.col("created_ms")?,
        updated_unix_ms: r.col("updated_ms")?,
        message_sealed: r.col("message_sealed")?,
        sent_unix_ms: r.col("sent_ms")?,
        expires_unix_ms: r.col("expires_ms")?,
        remind_every_days: r.col::<Option<i64>>("remind_every_days")?.map(|d| d as u32),
        finished_unix_ms: r.col("finished_ms")?,
        final_sha256: r.col("final_sha256")?,
        reason_sealed: r.col("reason_sealed")?,
        uploaded_sha256: r.col("uploaded_sha256")?,
        sanitised_removed: r.col("sanitised_removed")?,
        previews_failed: r.col("previews_failed")?,
    })
}

#[async_trait::async_trait]
impl EnvelopeStore for SqlRepository {
    async fn insert_envelope(&self, e: &EnvelopeRecord, jobs: &[NewJob]) -> Result<(), RepoError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO envelopes (id, org_id, created_by, title_sealed, status, document_sha256, document_bytes, \
             pages, created_ms, updated_ms, uploaded_sha256, sanitised_removed) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(e.id.to_string())
        .bind(e.org_id.to_string())
        .bind(e.created_by.to_string())
        .bind(e.title_sealed.clone())
        .bind(e.status.as_str())
        .bind(&e.document_sha256)
        .bind(e.document_bytes as i64)
        .bind(&e.pages)
        .bind(e.created_unix_ms)
        .bind(e.updated_unix_ms)
        .bind(e.uploaded_sha256.clone())
        .bind(e.sanitised_removed.clone())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        crate::signing::insert_jobs(&mut tx, jobs, e.created_unix_ms).await?;
        tx.commit().await.map_err(db)
    }

    async fn envelope(&self, org: OrgId, id: EnvelopeId) -> Result<Option<EnvelopeRecord>, RepoError> {
        let (ids, orgs) = (id.to_string(), org.to_string());
        if let Some(found) =
            self.read_inline(|c| crate::inline::optional(c, ENVELOPE_OF_ORG, [&ids, &orgs], |r| envelope_row(r)))
        {
            return Ok(found);
        }
        let r = sqlx::query(ENVELOPE_OF_ORG)
            .bind(id.to_string())
            .bind(org.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        r.as_ref().map(envelope_row).transpose()
    }

    async fn envelope_with_parties(&self, org: OrgId, id: EnvelopeId) -> Result<Option<EnvelopeParts>, RepoError> {
        use crate::inline::{all, optional};
        use crate::recipients::{field_row, recipient_row, FIELDS_OF_ENVELOPE, RECIPIENTS_OF_ENVELOPE};
        use crate::sql::{key_row, KEY_OF_ENVELOPE};
        let (ids, orgs) = (id.to_string(), org.to_string());
        // One read transaction for the four reads: one snapshot, and the WAL's locks are taken
        // and released once instead of four times (inline on SQLite; PostgreSQL reads one by one).
        let parts = self.read_inline(|c| {
            let snapshot = c.unchecked_transaction().map_err(|_| RepoError::Unavailable("database: begin".into()))?;
            let Some(envelope) = optional(&snapshot, ENVELOPE_OF_ORG, [&ids, &orgs], |r| envelope_row(r))? else {
                return Ok(None);
            };
            let recipients = all(&snapshot, RECIPIENTS_OF_ENVELOPE, [&ids], |r| recipient_row(r))?;
            let fields = all(&snapshot, FIELDS_OF_ENVELOPE, [&ids], |r| field_row(r))?;
            let key = optional(&snapshot, KEY_OF_ENVELOPE, [&ids], |r| key_row(r))?;
            Ok(key.map(|key| EnvelopeParts { envelope, recipients, fields, key }))
        });
        Ok(parts.flatten())
    }

    async fn envelopes(&self, org: OrgId, limit: u32) -> Result<Vec<EnvelopeRecord>, RepoError> {
        let rows = sqlx::query("SELECT * FROM envelopes WHERE org_id = $1 ORDER BY created_ms DESC, id DESC LIMIT $2")
            .bind(org.to_string())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(envelope_row).collect()
    }

    async fn delete_envelope(&self, org: OrgId, id: EnvelopeId) -> Result<(), RepoError> {
        sqlx::query("DELETE FROM envelopes WHERE id = $1 AND org_id = $2")
            .bind(id.to_string())
            .bind(org.to_string())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn past_retention(&self, now: i64, limit: u32) -> Result<Vec<(OrgId, EnvelopeId, String)>, RepoError> {
        let rows = sqlx::query(
            "SELECT e.id, e.org_id, e.document_sha256 FROM envelopes e JOIN organisations o ON o.id = e.org_id \
             WHERE o.retention_days IS NOT NULL AND e.finished_ms IS NOT NULL \
               AND e.finished_ms + o.retention_days * 86400000 <= $1 \
             ORDER BY e.finished_ms LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok((
                    id_column(r, "org_id", OrgId::parse)?,
                    id_column(r, "id", EnvelopeId::parse)?,
                    r.try_get("document_sha256").map_err(db)?,
                ))
            })
            .collect()
    }
}
