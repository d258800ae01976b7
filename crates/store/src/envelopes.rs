//! Envelope records on SQLite or PostgreSQL. Every query is scoped by organisation.

use sigillum_core::lifecycle::EnvelopeStatus;
use sigillum_core::ports::{EnvelopeRecord, EnvelopeStore};
use sigillum_core::{EnvelopeId, OrgId, RepoError, UserId};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::sql::{corrupt, db, id_column, SqlRepository};

pub(crate) fn envelope_row(r: &AnyRow) -> Result<EnvelopeRecord, RepoError> {
    Ok(EnvelopeRecord {
        id: id_column(r, "id", EnvelopeId::parse)?,
        org_id: id_column(r, "org_id", OrgId::parse)?,
        created_by: id_column(r, "created_by", UserId::parse)?,
        title_sealed: r.try_get("title_sealed").map_err(db)?,
        status: EnvelopeStatus::parse(&r.try_get::<String, _>("status").map_err(db)?)
            .ok_or_else(|| corrupt("status"))?,
        document_sha256: r.try_get("document_sha256").map_err(db)?,
        document_bytes: r.try_get::<i64, _>("document_bytes").map_err(db)? as u64,
        pages: r.try_get("pages").map_err(db)?,
        created_unix_ms: r.try_get("created_ms").map_err(db)?,
        updated_unix_ms: r.try_get("updated_ms").map_err(db)?,
        message_sealed: r.try_get("message_sealed").map_err(db)?,
        sent_unix_ms: r.try_get("sent_ms").map_err(db)?,
        expires_unix_ms: r.try_get("expires_ms").map_err(db)?,
        remind_every_days: r.try_get::<Option<i64>, _>("remind_every_days").map_err(db)?.map(|d| d as u32),
        finished_unix_ms: r.try_get("finished_ms").map_err(db)?,
        final_sha256: r.try_get("final_sha256").map_err(db)?,
        reason_sealed: r.try_get("reason_sealed").map_err(db)?,
        uploaded_sha256: r.try_get("uploaded_sha256").map_err(db)?,
        sanitised_removed: r.try_get("sanitised_removed").map_err(db)?,
        previews_failed: r.try_get("previews_failed").map_err(db)?,
    })
}

#[async_trait::async_trait]
impl EnvelopeStore for SqlRepository {
    async fn insert_envelope(&self, e: &EnvelopeRecord) -> Result<(), RepoError> {
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
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn envelope(&self, org: OrgId, id: EnvelopeId) -> Result<Option<EnvelopeRecord>, RepoError> {
        let r = sqlx::query("SELECT * FROM envelopes WHERE id = $1 AND org_id = $2")
            .bind(id.to_string())
            .bind(org.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        r.as_ref().map(envelope_row).transpose()
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
