//! Recipients and fields on SQLite or PostgreSQL.

use sigillum_core::ports::{FieldRecord, RecipientRecord, RecipientStore};
use sigillum_core::{EnvelopeId, RepoError};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::sql::{db, id_column, SqlRepository};

pub(crate) fn uuid(r: &AnyRow, col: &str) -> Result<uuid::Uuid, RepoError> {
    id_column(r, col, |s| uuid::Uuid::parse_str(s).ok())
}

fn recipient_row(r: &AnyRow) -> Result<RecipientRecord, RepoError> {
    Ok(RecipientRecord {
        id: uuid(r, "id")?,
        envelope_id: EnvelopeId(uuid(r, "envelope_id")?),
        name_sealed: r.try_get("name_sealed").map_err(db)?,
        email_sealed: r.try_get("email_sealed").map_err(db)?,
        role: r.try_get("role").map_err(db)?,
        routing_order: r.try_get::<i64, _>("routing_order").map_err(db)? as u32,
        status: r.try_get("status").map_err(db)?,
        created_unix_ms: r.try_get("created_ms").map_err(db)?,
        access_code_hash: r.try_get("access_code_hash").map_err(db)?,
        consented_unix_ms: r.try_get("consented_ms").map_err(db)?,
        finished_unix_ms: r.try_get("finished_ms").map_err(db)?,
        signature_kind: r.try_get("signature_kind").map_err(db)?,
        signature_sealed: r.try_get("signature_sealed").map_err(db)?,
        signature_font: r.try_get("signature_font").map_err(db)?,
        language: r.try_get("language").map_err(db)?,
    })
}

fn field_row(r: &AnyRow) -> Result<FieldRecord, RepoError> {
    Ok(FieldRecord {
        id: uuid(r, "id")?,
        envelope_id: EnvelopeId(uuid(r, "envelope_id")?),
        recipient_id: uuid(r, "recipient_id")?,
        kind: r.try_get("kind").map_err(db)?,
        page: r.try_get::<i64, _>("page").map_err(db)? as u32,
        x: r.try_get("x").map_err(db)?,
        y: r.try_get("y").map_err(db)?,
        width: r.try_get("width").map_err(db)?,
        height: r.try_get("height").map_err(db)?,
        required: r.try_get::<i64, _>("required").map_err(db)? != 0,
        created_unix_ms: r.try_get("created_ms").map_err(db)?,
    })
}

#[async_trait::async_trait]
impl RecipientStore for SqlRepository {
    async fn insert_recipient(&self, r: &RecipientRecord) -> Result<(), RepoError> {
        sqlx::query(
            "INSERT INTO recipients (id, envelope_id, name_sealed, email_sealed, role, routing_order, status, created_ms, \
             access_code_hash, language) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(r.id.to_string())
        .bind(r.envelope_id.to_string())
        .bind(r.name_sealed.clone())
        .bind(r.email_sealed.clone())
        .bind(&r.role)
        .bind(i64::from(r.routing_order))
        .bind(&r.status)
        .bind(r.created_unix_ms)
        .bind(r.access_code_hash.clone())
        .bind(&r.language)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn recipients(&self, envelope: EnvelopeId) -> Result<Vec<RecipientRecord>, RepoError> {
        let rows =
            sqlx::query("SELECT * FROM recipients WHERE envelope_id = $1 ORDER BY routing_order, created_ms, id")
                .bind(envelope.to_string())
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        rows.iter().map(recipient_row).collect()
    }

    async fn insert_field(&self, f: &FieldRecord) -> Result<(), RepoError> {
        sqlx::query(
            "INSERT INTO fields (id, envelope_id, recipient_id, kind, page, x, y, width, height, required, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(f.id.to_string())
        .bind(f.envelope_id.to_string())
        .bind(f.recipient_id.to_string())
        .bind(&f.kind)
        .bind(i64::from(f.page))
        .bind(f.x)
        .bind(f.y)
        .bind(f.width)
        .bind(f.height)
        .bind(i64::from(f.required))
        .bind(f.created_unix_ms)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn fields(&self, envelope: EnvelopeId) -> Result<Vec<FieldRecord>, RepoError> {
        let rows = sqlx::query("SELECT * FROM fields WHERE envelope_id = $1 ORDER BY page, created_ms, id")
            .bind(envelope.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(field_row).collect()
    }
}
