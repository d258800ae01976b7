//! Billing records on SQLite or PostgreSQL: the providers' identifiers and subscription state,
//! processed provider events, and envelopes counted per usage period.

use sigillum_core::ports::{BillingAccount, BillingStore, NewJob};
use sigillum_core::{OrgId, RepoError};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::sql::{db, id_column, SqlRepository};

const COLUMNS: &str =
    "org_id, provider, customer_id, subscription_id, plan_id, status, period_start_ms, period_end_ms, updated_ms";

fn account_row(r: &AnyRow) -> Result<BillingAccount, RepoError> {
    Ok(BillingAccount {
        org_id: id_column(r, "org_id", OrgId::parse)?,
        provider: r.try_get("provider").map_err(db)?,
        customer_id: r.try_get("customer_id").map_err(db)?,
        subscription_id: r.try_get("subscription_id").map_err(db)?,
        plan_id: r.try_get("plan_id").map_err(db)?,
        status: r.try_get("status").map_err(db)?,
        period_start_unix_ms: r.try_get("period_start_ms").map_err(db)?,
        period_end_unix_ms: r.try_get("period_end_ms").map_err(db)?,
        updated_unix_ms: r.try_get("updated_ms").map_err(db)?,
    })
}

fn upsert_sql() -> String {
    format!(
        "INSERT INTO billing_accounts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (org_id) DO UPDATE SET provider = excluded.provider, customer_id = excluded.customer_id, \
         subscription_id = excluded.subscription_id, plan_id = excluded.plan_id, status = excluded.status, \
         period_start_ms = excluded.period_start_ms, period_end_ms = excluded.period_end_ms, \
         updated_ms = excluded.updated_ms"
    )
}

fn bind_account<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    a: &BillingAccount,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(a.org_id.to_string())
        .bind(a.provider.clone())
        .bind(a.customer_id.clone())
        .bind(a.subscription_id.clone())
        .bind(a.plan_id.clone())
        .bind(a.status.clone())
        .bind(a.period_start_unix_ms)
        .bind(a.period_end_unix_ms)
        .bind(a.updated_unix_ms)
}

#[async_trait::async_trait]
impl BillingStore for SqlRepository {
    async fn billing_account(&self, org: OrgId) -> Result<Option<BillingAccount>, RepoError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM billing_accounts WHERE org_id = $1"))
            .bind(org.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(account_row).transpose()
    }

    async fn billing_account_by_customer(
        &self,
        provider: &str,
        customer: &str,
    ) -> Result<Option<BillingAccount>, RepoError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM billing_accounts WHERE provider = $1 AND customer_id = $2 LIMIT 1"
        ))
        .bind(provider)
        .bind(customer)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref().map(account_row).transpose()
    }

    async fn put_billing_account(&self, a: &BillingAccount) -> Result<(), RepoError> {
        let sql = upsert_sql();
        bind_account(sqlx::query(&sql), a).execute(&self.pool).await.map_err(db)?;
        Ok(())
    }

    async fn billing_event_seen(&self, provider: &str, event_id: &str) -> Result<bool, RepoError> {
        let row = sqlx::query("SELECT 1 AS seen FROM billing_events WHERE provider = $1 AND event_id = $2")
            .bind(provider)
            .bind(event_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        Ok(row.is_some())
    }

    async fn apply_billing_event(
        &self,
        account: Option<&BillingAccount>,
        provider: &str,
        event_id: &str,
        kind: &str,
        now_unix_ms: i64,
        jobs: &[NewJob],
    ) -> Result<bool, RepoError> {
        let mut tx = self.begin_write().await?;
        let fresh = sqlx::query(
            "INSERT INTO billing_events (provider, event_id, kind, received_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (provider, event_id) DO NOTHING",
        )
        .bind(provider)
        .bind(event_id)
        .bind(kind)
        .bind(now_unix_ms)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if fresh.rows_affected() != 1 {
            return Ok(false);
        }
        if let Some(a) = account {
            let sql = upsert_sql();
            bind_account(sqlx::query(&sql), a).execute(&mut *tx).await.map_err(db)?;
        }
        crate::signing::insert_jobs(&mut tx, jobs, now_unix_ms).await?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn claim_usage(&self, org: OrgId, period_start_unix_ms: i64, limit: Option<u32>) -> Result<bool, RepoError> {
        // One statement: the row is made at 1, or raised by one while under the limit; a
        // concurrent claim on another node waits for the row lock and sees the new count.
        let limit = limit.map(i64::from).unwrap_or(i64::MAX);
        if limit < 1 {
            return Ok(false);
        }
        let r = sqlx::query(
            "INSERT INTO billing_usage (org_id, period_start_ms, envelopes) VALUES ($1, $2, 1) \
             ON CONFLICT (org_id, period_start_ms) DO UPDATE SET envelopes = billing_usage.envelopes + 1 \
             WHERE billing_usage.envelopes < $3",
        )
        .bind(org.to_string())
        .bind(period_start_unix_ms)
        .bind(limit)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(r.rows_affected() == 1)
    }

    async fn release_usage(&self, org: OrgId, period_start_unix_ms: i64) -> Result<(), RepoError> {
        sqlx::query(
            "UPDATE billing_usage SET envelopes = envelopes - 1 \
             WHERE org_id = $1 AND period_start_ms = $2 AND envelopes > 0",
        )
        .bind(org.to_string())
        .bind(period_start_unix_ms)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn usage(&self, org: OrgId, period_start_unix_ms: i64) -> Result<u32, RepoError> {
        let row = sqlx::query("SELECT envelopes FROM billing_usage WHERE org_id = $1 AND period_start_ms = $2")
            .bind(org.to_string())
            .bind(period_start_unix_ms)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        match row {
            Some(r) => Ok(u32::try_from(r.try_get::<i64, _>("envelopes").map_err(db)?).unwrap_or(u32::MAX)),
            None => Ok(0),
        }
    }
}
