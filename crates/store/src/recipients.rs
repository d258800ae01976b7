//! Recipients and fields on SQLite or PostgreSQL.

use sigillum_core::ports::{FieldRecord, NewJob, RecipientRecord, RecipientStore};
use sigillum_core::{EnvelopeId, RepoError};

use crate::inline::Columns;
use crate::sql::{db, id_column, SqlRepository};

pub(crate) fn uuid(r: &(impl Columns + ?Sized), col: &str) -> Result<uuid::Uuid, RepoError> {
    id_column(r, col, |s| uuid::Uuid::parse_str(s).ok())
}

pub(crate) const RECIPIENTS_OF_ENVELOPE: &str =
    "SELECT * FROM recipients WHERE envelope_id = $1 ORDER BY routing_order, created_ms, id";
pub(crate) const FIELDS_OF_ENVELOPE: &str = "SELECT * FROM fields WHERE envelope_id = $1 ORDER BY page, created_ms, id";

pub(crate) fn recipient_row(r: &(impl Columns + ?Sized)) -> Result<RecipientRecord, RepoError> {
    Ok(RecipientRecord {
        id: uuid(r, "id")?,
        envelope_id: EnvelopeId(uuid(r, "envelope_id")?),
        name_sealed: r.col("name_sealed")?,
        email_sealed: r.col("email_sealed")?,
        role: r.col("role")?,
        routing_order: r.col::<i64>("routing_order")? as u32,
        status: r.col("status")?,
        created_unix_ms: r.col("created_ms")?,
        access_code_hash: r.col("access_code_hash")?,
        consented_unix_ms: r.col("consented_ms")?,
        finished_unix_ms: r.col("finished_ms")?,
        signature_kind: r.col("signature_kind")?,
        signature_sealed: r.col("signature_sealed")?,
        signature_font: r.col("signature_font")?,
        language: r.col("language")?,
    })
}

pub(crate) fn field_row(r: &(impl Columns + ?Sized)) -> Result<FieldRecord, RepoError> {
    Ok(FieldRecord {
        id: uuid(r, "id")?,
        envelope_id: EnvelopeId(uuid(r, "envelope_id")?),
        recipient_id: uuid(r, "recipient_id")?,
        kind: r.col("kind")?,
        page: r.col::<i64>("page")? as u32,
        x: r.col("x")?,
        y: r.col("y")?,
        width: r.col("width")?,
        height: r.col("height")?,
        required: r.col::<i64>("required")? != 0,
        created_unix_ms: r.col("created_ms")?,
    })
}

#[async_trait::async_trait]
impl RecipientStore for SqlRepository {
    async fn insert_recipient(&self, r: &RecipientRecord, jobs: &[NewJob]) -> Result<(), RepoError> {
        let mut tx = self.begin_write().await?;
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
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        crate::signing::insert_jobs(&mut tx, jobs, r.created_unix_ms).await?;
        tx.commit().await.map_err(db)
    }

    async fn recipients(&self, envelope: EnvelopeId) -> Result<Vec<RecipientRecord>, RepoError> {
        const SQL: &str = RECIPIENTS_OF_ENVELOPE;
        let id = envelope.to_string();
        if let Some(found) = self.read_inline(|c| crate::inline::all(c, SQL, [&id], |r| recipient_row(r))) {
            return Ok(found);
        }
        let rows = sqlx::query(SQL).bind(envelope.to_string()).fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(recipient_row).collect()
    }

    async fn insert_field(&self, f: &FieldRecord, jobs: &[NewJob]) -> Result<(), RepoError> {
        let mut tx = self.begin_write().await?;
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
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        crate::signing::insert_jobs(&mut tx, jobs, f.created_unix_ms).await?;
        tx.commit().await.map_err(db)
    }

    async fn fields(&self, envelope: EnvelopeId) -> Result<Vec<FieldRecord>, RepoError> {
        const SQL: &str = FIELDS_OF_ENVELOPE;
        let id = envelope.to_string();
        if let Some(found) = self.read_inline(|c| crate::inline::all(c, SQL, [&id], |r| field_row(r))) {
            return Ok(found);
        }
        let rows = sqlx::query(SQL).bind(envelope.to_string()).fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(field_row).collect()
    }
}
