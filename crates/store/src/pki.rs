//! The internal PKI's certificates on SQLite or PostgreSQL.

use sigillum_core::ports::PkiStore;
use sigillum_core::RepoError;
use sqlx::Row;

use crate::sql::{db, SqlRepository};

#[async_trait::async_trait]
impl PkiStore for SqlRepository {
    async fn pki_certificate(&self, name: &str) -> Result<Option<Vec<u8>>, RepoError> {
        let row = sqlx::query("SELECT der FROM pki_certificates WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|r| r.try_get::<Vec<u8>, _>("der").map_err(db)).transpose()
    }

    async fn insert_pki_certificate(&self, name: &str, der: &[u8], now_unix_ms: i64) -> Result<(), RepoError> {
        sqlx::query("INSERT INTO pki_certificates (name, der, created_unix_ms) VALUES ($1, $2, $3)")
            .bind(name)
            .bind(der.to_vec())
            .bind(now_unix_ms)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}
