//! Accounts, sessions, API keys and login-failure counters on SQLite or PostgreSQL.

use sigillum_core::ports::{
    AccountStore, ApiKeyRecord, NewJob, Role, SessionRecord, TotpRecord, UserIdentity, UserRecord,
};
use sigillum_core::{ApiKeyId, OrgId, RepoError, UserId};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::inline::Columns;
use crate::sql::{corrupt, db, hash_column, id_column, SqlRepository};

fn user_row(r: &AnyRow) -> Result<UserRecord, RepoError> {
    Ok(UserRecord {
        id: id_column(r, "id", UserId::parse)?,
        org_id: id_column(r, "org_id", OrgId::parse)?,
        email: r.try_get("email").map_err(db)?,
        name: r.try_get("name").map_err(db)?,
        password_hash: r.try_get("password_hash").map_err(db)?,
        role: Role::parse(&r.try_get::<String, _>("role").map_err(db)?).ok_or_else(|| corrupt("role"))?,
        created_unix_ms: r.try_get("created_ms").map_err(db)?,
    })
}

/// The user columns joined to a credential row, under `u_` names (they would clash otherwise).
const USER_IDENTITY_COLUMNS: &str =
    "u.id AS u_id, u.org_id AS u_org_id, u.email AS u_email, u.name AS u_name, u.role AS u_role";

fn identity_row(r: &(impl Columns + ?Sized)) -> Result<UserIdentity, RepoError> {
    Ok(UserIdentity {
        id: id_column(r, "u_id", UserId::parse)?,
        org_id: id_column(r, "u_org_id", OrgId::parse)?,
        email: r.col("u_email")?,
        name: r.col("u_name")?,
        role: Role::parse(&r.col::<String>("u_role")?).ok_or_else(|| corrupt("role"))?,
    })
}

fn session_row(r: &(impl Columns + ?Sized)) -> Result<SessionRecord, RepoError> {
    Ok(SessionRecord {
        token_hash: hash_column(r, "token_hash")?,
        user_id: id_column(r, "user_id", UserId::parse)?,
        csrf_hash: hash_column(r, "csrf_hash")?,
        created_unix_ms: r.col("created_ms")?,
        last_seen_unix_ms: r.col("last_seen_ms")?,
        expires_unix_ms: r.col("expires_ms")?,
    })
}

fn key_row(r: &(impl Columns + ?Sized)) -> Result<ApiKeyRecord, RepoError> {
    Ok(ApiKeyRecord {
        id: id_column(r, "id", ApiKeyId::parse)?,
        org_id: id_column(r, "org_id", OrgId::parse)?,
        user_id: id_column(r, "user_id", UserId::parse)?,
        name: r.col("name")?,
        prefix: r.col("prefix")?,
        key_hash: hash_column(r, "key_hash")?,
        created_unix_ms: r.col("created_ms")?,
        last_used_unix_ms: r.col("last_used_ms")?,
        revoked_unix_ms: r.col("revoked_ms")?,
    })
}

#[async_trait::async_trait]
impl AccountStore for SqlRepository {
    async fn insert_user(&self, u: &UserRecord, jobs: &[NewJob]) -> Result<(), RepoError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO users (id, org_id, email, name, password_hash, role, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(u.id.to_string())
        .bind(u.org_id.to_string())
        .bind(&u.email)
        .bind(&u.name)
        .bind(&u.password_hash)
        .bind(u.role.as_str())
        .bind(u.created_unix_ms)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        crate::signing::insert_jobs(&mut tx, jobs, u.created_unix_ms).await?;
        tx.commit().await.map_err(db)
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>, RepoError> {
        let r = sqlx::query("SELECT * FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        r.as_ref().map(user_row).transpose()
    }

    async fn user(&self, id: UserId) -> Result<UserRecord, RepoError> {
        let r = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        user_row(&r)
    }

    async fn users(&self, org: OrgId) -> Result<Vec<UserRecord>, RepoError> {
        let rows = sqlx::query("SELECT * FROM users WHERE org_id = $1 ORDER BY created_ms, id")
            .bind(org.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(user_row).collect()
    }

    async fn delete_user(&self, org: OrgId, id: UserId, now_unix_ms: i64, jobs: &[NewJob]) -> Result<(), RepoError> {
        let mut tx = self.begin_write().await?;
        // Explicitly, not only by cascade: SQLite enforces foreign keys only when asked to.
        for table in ["sessions", "api_keys", "user_totp", "recovery_codes"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        let r = sqlx::query("DELETE FROM users WHERE id = $1 AND org_id = $2")
            .bind(id.to_string())
            .bind(org.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if r.rows_affected() != 1 {
            return Err(RepoError::NotFound);
        }
        crate::signing::insert_jobs(&mut tx, jobs, now_unix_ms).await?;
        tx.commit().await.map_err(db)
    }

    async fn insert_session(&self, s: &SessionRecord, jobs: &[NewJob]) -> Result<(), RepoError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf_hash, created_ms, last_seen_ms, expires_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(s.token_hash.to_vec())
        .bind(s.user_id.to_string())
        .bind(s.csrf_hash.to_vec())
        .bind(s.created_unix_ms)
        .bind(s.last_seen_unix_ms)
        .bind(s.expires_unix_ms)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        crate::signing::insert_jobs(&mut tx, jobs, s.created_unix_ms).await?;
        tx.commit().await.map_err(db)
    }

    async fn session_with_user(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<(SessionRecord, UserIdentity)>, RepoError> {
        let sql = format!("SELECT s.*, {USER_IDENTITY_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1");
        if let Some(found) = self.read_inline(|c| {
            crate::inline::optional(c, &sql, [token_hash.as_slice()], |r| Ok((session_row(r)?, identity_row(r)?)))
        }) {
            return Ok(found);
        }
        let r = sqlx::query(&sql).bind(token_hash.to_vec()).fetch_optional(&self.pool).await.map_err(db)?;
        r.as_ref().map(|r| Ok((session_row(r)?, identity_row(r)?))).transpose()
    }

    async fn touch_session(&self, token_hash: &[u8; 32], now: i64) -> Result<(), RepoError> {
        sqlx::query("UPDATE sessions SET last_seen_ms = $1 WHERE token_hash = $2")
            .bind(now)
            .bind(token_hash.to_vec())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn delete_session(&self, token_hash: &[u8; 32], now_unix_ms: i64, jobs: &[NewJob]) -> Result<(), RepoError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash.to_vec())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        crate::signing::insert_jobs(&mut tx, jobs, now_unix_ms).await?;
        tx.commit().await.map_err(db)
    }

    async fn insert_api_key(&self, k: &ApiKeyRecord, jobs: &[NewJob]) -> Result<(), RepoError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, org_id, user_id, name, prefix, key_hash, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(k.id.to_string())
        .bind(k.org_id.to_string())
        .bind(k.user_id.to_string())
        .bind(&k.name)
        .bind(&k.prefix)
        .bind(k.key_hash.to_vec())
        .bind(k.created_unix_ms)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        crate::signing::insert_jobs(&mut tx, jobs, k.created_unix_ms).await?;
        tx.commit().await.map_err(db)
    }

    async fn api_key_with_user(&self, key_hash: &[u8; 32]) -> Result<Option<(ApiKeyRecord, UserIdentity)>, RepoError> {
        let sql = format!("SELECT k.*, {USER_IDENTITY_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = $1");
        if let Some(found) = self.read_inline(|c| {
            crate::inline::optional(c, &sql, [key_hash.as_slice()], |r| Ok((key_row(r)?, identity_row(r)?)))
        }) {
            return Ok(found);
        }
        let r = sqlx::query(&sql).bind(key_hash.to_vec()).fetch_optional(&self.pool).await.map_err(db)?;
        r.as_ref().map(|r| Ok((key_row(r)?, identity_row(r)?))).transpose()
    }

    async fn api_keys(&self, org: OrgId) -> Result<Vec<ApiKeyRecord>, RepoError> {
        let rows = sqlx::query("SELECT * FROM api_keys WHERE org_id = $1 ORDER BY created_ms, id")
            .bind(org.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(key_row).collect()
    }

    async fn revoke_api_key(&self, org: OrgId, id: ApiKeyId, now: i64, jobs: &[NewJob]) -> Result<(), RepoError> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("UPDATE api_keys SET revoked_ms = COALESCE(revoked_ms, $1) WHERE id = $2 AND org_id = $3")
            .bind(now)
            .bind(id.to_string())
            .bind(org.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if r.rows_affected() != 1 {
            return Err(RepoError::NotFound);
        }
        crate::signing::insert_jobs(&mut tx, jobs, now).await?;
        tx.commit().await.map_err(db)
    }

    async fn touch_api_key(&self, id: ApiKeyId, now: i64) -> Result<(), RepoError> {
        sqlx::query("UPDATE api_keys SET last_used_ms = $1 WHERE id = $2")
            .bind(now)
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn login_failures(&self, scope: &str, now: i64, window_ms: i64) -> Result<u32, RepoError> {
        let r = sqlx::query("SELECT window_start_ms, failures FROM login_failures WHERE scope = $1")
            .bind(scope)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        let Some(r) = r else { return Ok(0) };
        let start: i64 = r.try_get("window_start_ms").map_err(db)?;
        let failures: i64 = r.try_get("failures").map_err(db)?;
        Ok(if now - start >= window_ms { 0 } else { failures.clamp(0, i64::from(u32::MAX)) as u32 })
    }

    async fn record_login_failure(&self, scope: &str, now: i64, window_ms: i64) -> Result<(), RepoError> {
        // One statement, so concurrent failures on several nodes all count.
        sqlx::query(
            "INSERT INTO login_failures (scope, window_start_ms, failures) VALUES ($1, $2, 1) \
             ON CONFLICT (scope) DO UPDATE SET \
               failures = CASE WHEN $2 - login_failures.window_start_ms >= $3 THEN 1 ELSE login_failures.failures + 1 END, \
               window_start_ms = CASE WHEN $2 - login_failures.window_start_ms >= $3 THEN $2 ELSE login_failures.window_start_ms END",
        )
        .bind(scope)
        .bind(now)
        .bind(window_ms)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn clear_login_failures(&self, scope: &str) -> Result<(), RepoError> {
        sqlx::query("DELETE FROM login_failures WHERE scope = $1").bind(scope).execute(&self.pool).await.map_err(db)?;
        Ok(())
    }

    async fn put_pending_totp(&self, t: &TotpRecord) -> Result<(), RepoError> {
        // Replaces a pending secret, never an enabled one.
        let r = sqlx::query(
            "INSERT INTO user_totp (user_id, kek_key_id, kek_version, secret_wrapped, created_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id) DO UPDATE SET kek_key_id = excluded.kek_key_id, \
             kek_version = excluded.kek_version, secret_wrapped = excluded.secret_wrapped, \
             created_ms = excluded.created_ms, last_step = NULL WHERE user_totp.enabled_ms IS NULL",
        )
        .bind(t.user_id.to_string())
        .bind(&t.kek_key_id)
        .bind(i64::from(t.kek_version))
        .bind(t.secret_wrapped.clone())
        .bind(t.created_unix_ms)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        if r.rows_affected() == 0 {
            return Err(RepoError::Conflict("totp enabled".into()));
        }
        Ok(())
    }

    async fn totp(&self, user: UserId) -> Result<Option<TotpRecord>, RepoError> {
        let r = sqlx::query("SELECT * FROM user_totp WHERE user_id = $1")
            .bind(user.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        r.map(|r| {
            Ok(TotpRecord {
                user_id: id_column(&r, "user_id", UserId::parse)?,
                kek_key_id: r.try_get("kek_key_id").map_err(db)?,
                kek_version: r.try_get::<i64, _>("kek_version").map_err(db)? as u32,
                secret_wrapped: r.try_get("secret_wrapped").map_err(db)?,
                enabled_unix_ms: r.try_get("enabled_ms").map_err(db)?,
                last_step: r.try_get("last_step").map_err(db)?,
                created_unix_ms: r.try_get("created_ms").map_err(db)?,
            })
        })
        .transpose()
    }

    async fn enable_totp(
        &self,
        user: UserId,
        now: i64,
        recovery_hashes: &[[u8; 32]],
        jobs: &[NewJob],
    ) -> Result<(), RepoError> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("UPDATE user_totp SET enabled_ms = $1 WHERE user_id = $2 AND enabled_ms IS NULL")
            .bind(now)
            .bind(user.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if r.rows_affected() != 1 {
            return Err(RepoError::Conflict("no pending totp".into()));
        }
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        for h in recovery_hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user.to_string())
                .bind(h.to_vec())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        crate::signing::insert_jobs(&mut tx, jobs, now).await?;
        tx.commit().await.map_err(db)
    }

    async fn use_totp_step(&self, user: UserId, step: i64) -> Result<bool, RepoError> {
        let r = sqlx::query(
            "UPDATE user_totp SET last_step = $1 WHERE user_id = $2 AND (last_step IS NULL OR last_step < $1)",
        )
        .bind(step)
        .bind(user.to_string())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(r.rows_affected() == 1)
    }

    async fn use_recovery_code(
        &self,
        user: UserId,
        hash: &[u8; 32],
        now: i64,
        jobs: &[NewJob],
    ) -> Result<bool, RepoError> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "UPDATE recovery_codes SET used_ms = $1 WHERE user_id = $2 AND code_hash = $3 AND used_ms IS NULL",
        )
        .bind(now)
        .bind(user.to_string())
        .bind(hash.to_vec())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        crate::signing::insert_jobs(&mut tx, jobs, now).await?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn unused_recovery_codes(&self, user: UserId) -> Result<u32, RepoError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM recovery_codes WHERE user_id = $1 AND used_ms IS NULL")
            .bind(user.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(db)?
            .try_get("n")
            .map_err(db)?;
        Ok(n as u32)
    }
}
