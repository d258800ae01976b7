//! The metadata repository on SQLite or PostgreSQL, through sqlx's `Any` driver so each query is
//! written once. Each backend has its own migrations folder (types differ); `$n` placeholders work
//! on both. SQLite runs in WAL mode with `synchronous=FULL`, so a commit survives power loss.

use sigillum_core::ports::{BlobRecord, EnvelopeKey, KeyUse, NewJob, Organisation};
use sigillum_core::{EnvelopeId, OrgId, RepoError, Repository};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

use crate::inline::Columns;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The advisory lock id of [`SqlRepository::startup_lock`] ("sigillum" in ASCII, truncated).
const STARTUP_LOCK: i64 = 0x7369_6769_6c6c;

/// See [`SqlRepository::startup_lock`].
pub struct StartupGuard(#[allow(dead_code)] Option<sqlx::pool::PoolConnection<sqlx::Any>>);

#[derive(Clone)]
pub struct SqlRepository {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    /// What this process's audit writer knew after its last commit (see `audit.rs`).
    pub(crate) audit_writer: crate::audit::WriterCache,
    /// The PostgreSQL URL, for the listening connection (`notify.rs`).
    pub(crate) url: Option<std::sync::Arc<secrecy::SecretString>>,
    /// Inline connections for the hot reads, on a SQLite file (`inline.rs`).
    pub(crate) inline: Option<std::sync::Arc<crate::inline::InlineReads>>,
    /// When this process last removed old done jobs (`signing.rs`).
    pub(crate) last_job_prune: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// When this process last looked for leases of nodes that died (`liveness.rs`).
    pub(crate) last_orphan_sweep: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

/// Whether a chore last run at `last` (ms) is due again at `now`, at most once an `every`;
/// claims the run (only one caller of the process gets `true`). A clock that went back (tests
/// move theirs) counts as due.
pub(crate) fn claim_periodic(last: &std::sync::atomic::AtomicI64, now: i64, every: i64) -> bool {
    use std::sync::atomic::Ordering;
    let before = last.load(Ordering::Relaxed);
    let due = before > now || now - before >= every;
    due && last.compare_exchange(before, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
}

pub(crate) fn db(e: sqlx::Error) -> RepoError {
    match e {
        sqlx::Error::RowNotFound => RepoError::NotFound,
        sqlx::Error::Database(d) if d.is_unique_violation() => RepoError::Conflict("already exists".into()),
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            RepoError::Conflict("referenced row missing".into())
        }
        sqlx::Error::Database(d) => RepoError::Unavailable(format!("database error {}", d.code().unwrap_or_default())),
        e => RepoError::Unavailable(format!("database: {}", kind(&e))),
    }
}

fn kind(e: &sqlx::Error) -> &'static str {
    match e {
        sqlx::Error::PoolTimedOut => "pool timed out",
        sqlx::Error::PoolClosed => "pool closed",
        sqlx::Error::Io(_) => "i/o",
        sqlx::Error::Tls(_) => "tls",
        sqlx::Error::Protocol(_) => "protocol",
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => "decode",
        sqlx::Error::Migrate(_) => "migration",
        _ => "error",
    }
}

/// A stored value that cannot be what it claims to be.
pub(crate) fn corrupt(what: &str) -> RepoError {
    RepoError::Unavailable(format!("corrupt {what} in database"))
}

/// An id column, parsed by `parse` (`OrgId::parse`, …).
pub(crate) fn id_column<T>(
    r: &(impl Columns + ?Sized),
    column: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, RepoError> {
    parse(&r.col::<String>(column)?).ok_or_else(|| corrupt(column))
}

/// A 32-byte hash column.
pub(crate) fn hash_column(r: &(impl Columns + ?Sized), column: &str) -> Result<[u8; 32], RepoError> {
    r.col::<Vec<u8>>(column)?.try_into().map_err(|_| corrupt(column))
}

fn parse_uuid<T>(s: &str, f: impl Fn(&str) -> Option<T>) -> Result<T, RepoError> {
    f(s).ok_or_else(|| RepoError::Unavailable("corrupt id in database".into()))
}

fn org_row(r: &AnyRow) -> Result<Organisation, RepoError> {
    Ok(Organisation {
        id: parse_uuid(&r.try_get::<String, _>("id").map_err(db)?, OrgId::parse)?,
        name: r.try_get("name").map_err(db)?,
        created_unix_ms: r.try_get("created_ms").map_err(db)?,
    })
}

pub(crate) const KEY_OF_ENVELOPE: &str = "SELECT * FROM envelope_keys WHERE envelope_id = $1";

pub(crate) fn key_row(r: &(impl Columns + ?Sized)) -> Result<EnvelopeKey, RepoError> {
    let dek_id: Vec<u8> = r.col("dek_id")?;
    Ok(EnvelopeKey {
        envelope_id: parse_uuid(&r.col::<String>("envelope_id")?, EnvelopeId::parse)?,
        org_id: parse_uuid(&r.col::<String>("org_id")?, OrgId::parse)?,
        dek_id: dek_id.try_into().map_err(|_| RepoError::Unavailable("corrupt dek id".into()))?,
        kek_key_id: r.col("kek_key_id")?,
        kek_version: r.col::<i64>("kek_version")? as u32,
        wrapped: r.col("wrapped")?,
        created_unix_ms: r.col("created_ms")?,
    })
}

fn blob_row(r: &AnyRow) -> Result<BlobRecord, RepoError> {
    Ok(BlobRecord {
        key: r.try_get("key").map_err(db)?,
        envelope_id: parse_uuid(&r.try_get::<String, _>("envelope_id").map_err(db)?, EnvelopeId::parse)?,
        kind: r.try_get("kind").map_err(db)?,
        version: r.try_get::<i64, _>("version").map_err(db)? as u32,
        plaintext_len: r.try_get::<i64, _>("plaintext_len").map_err(db)? as u64,
        stored_len: r.try_get::<i64, _>("stored_len").map_err(db)? as u64,
        sha256: r.try_get("sha256").map_err(db)?,
        created_unix_ms: r.try_get("created_ms").map_err(db)?,
    })
}

fn use_row(r: &AnyRow) -> Result<KeyUse, RepoError> {
    let env: Option<String> = r.try_get("envelope_id").map_err(db)?;
    Ok(KeyUse {
        kek_key_id: r.try_get("kek_key_id").map_err(db)?,
        kek_version: r.try_get::<i64, _>("kek_version").map_err(db)? as u32,
        purpose: r.try_get("purpose").map_err(db)?,
        envelope_id: env.as_deref().and_then(EnvelopeId::parse),
        node: r.try_get("node").map_err(db)?,
        at_unix_ms: r.try_get("at_ms").map_err(db)?,
    })
}

const INSERT_KEY_USE: &str =
    "INSERT INTO key_uses (kek_key_id, kek_version, purpose, envelope_id, node, at_ms) VALUES ($1, $2, $3, $4, $5, $6)";

fn bind_use<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    u: &'q KeyUse,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(&u.kek_key_id)
        .bind(u.kek_version as i64)
        .bind(&u.purpose)
        .bind(u.envelope_id.map(|e| e.to_string()))
        .bind(&u.node)
        .bind(u.at_unix_ms)
}

impl SqlRepository {
    /// Connects to `sqlite://…` or `postgres://…` and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, RepoError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("sqlite:") {
            let u = if url.contains('?') { url.to_owned() } else { format!("{url}?mode=rwc") };
            (Backend::Sqlite, u)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(RepoError::Unavailable("SIGILLUM_DATABASE_URL must be sqlite:// or postgres://".into()));
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .acquire_timeout(std::time::Duration::from_secs(10))
            // A pooled SQLite connection is a file handle in this process, with nothing that can
            // go stale; pinging it before each use cost a round trip to its thread per query.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        // Statement journals (multi-row inserts) stay in memory, not temp files.
                        conn.execute("PRAGMA temp_store = MEMORY").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(db)?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await.map_err(|e| RepoError::Unavailable(format!("migration failed: {e}")))?;
        let inline = match backend {
            Backend::Sqlite if !url.contains(":memory:") && !url.contains("mode=memory") => {
                let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&url).map_err(db)?;
                crate::inline::InlineReads::new(options.get_filename().to_path_buf()).map(std::sync::Arc::new)
            }
            _ => None,
        };
        let listen_url = (backend == Backend::Postgres).then(|| std::sync::Arc::new(secrecy::SecretString::from(url)));
        Ok(Self {
            pool,
            backend,
            audit_writer: Default::default(),
            url: listen_url,
            inline,
            last_job_prune: Default::default(),
            last_orphan_sweep: Default::default(),
        })
    }

    /// Holds the deployment-wide start-up lock until the guard is dropped. Nodes that start at the
    /// same moment on one PostgreSQL database take turns creating what exists once (the log key,
    /// the internal CA, the system KEKs), so none creates a second one. A PostgreSQL session-level
    /// advisory lock on a connection of its own, closed with the guard (which releases it even if
    /// the process dies). SQLite belongs to one node: no lock.
    pub async fn startup_lock(&self) -> Result<StartupGuard, RepoError> {
        if self.backend != Backend::Postgres {
            return Ok(StartupGuard(None));
        }
        let mut conn = self.pool.acquire().await.map_err(db)?;
        conn.close_on_drop();
        sqlx::query("SELECT pg_advisory_lock($1)").bind(STARTUP_LOCK).execute(&mut *conn).await.map_err(db)?;
        Ok(StartupGuard(Some(conn)))
    }

    /// The connection pool, for tools (benchmarks) that need plain SQL beside the repository.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn kind(&self) -> Backend {
        self.backend
    }

    /// Starts a transaction that will write. On SQLite it takes the database's write lock first
    /// (`BEGIN IMMEDIATE`, waiting up to the busy timeout like any single write). A plain
    /// (deferred) transaction that reads and then writes fails at once with SQLITE_BUSY whenever
    /// another connection committed in between: SQLite cannot upgrade a stale read snapshot, and
    /// its busy handler is not asked to wait. PostgreSQL takes row locks as it goes: a plain BEGIN.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, RepoError> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db),
            Backend::Postgres => self.pool.begin().await.map_err(db),
        }
    }

    /// Runs the backend's own consistency check (SQLite `PRAGMA integrity_check`; PostgreSQL
    /// keeps its own invariants, so a trivial query there).
    pub async fn integrity_check(&self) -> Result<(), RepoError> {
        match self.backend {
            Backend::Sqlite => {
                let r = sqlx::query("PRAGMA integrity_check").fetch_one(&self.pool).await.map_err(db)?;
                let verdict: String = r.try_get(0).map_err(db)?;
                if verdict == "ok" {
                    Ok(())
                } else {
                    Err(RepoError::Unavailable("database integrity check failed".into()))
                }
            }
            Backend::Postgres => self.health().await,
        }
    }

    /// Closes the pool. The audit writer's kept connection goes first: the pool waits for every
    /// connection to come back, and that one would not. A connection something else still holds
    /// is given 10 s; then the pool is left to close as those connections drop (logged), rather
    /// than a shutdown or a backup hanging on it.
    pub async fn close(&self) {
        drop(self.audit_writer.release());
        if tokio::time::timeout(std::time::Duration::from_secs(10), self.pool.close()).await.is_err() {
            tracing::warn!("closing the database pool: a connection is still in use after 10 s");
        }
    }
}

#[async_trait::async_trait]
impl Repository for SqlRepository {
    fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    async fn health(&self) -> Result<(), RepoError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(db)
    }

    async fn insert_organisation(&self, org: &Organisation) -> Result<(), RepoError> {
        sqlx::query("INSERT INTO organisations (id, name, created_ms) VALUES ($1, $2, $3)")
            .bind(org.id.to_string())
            .bind(&org.name)
            .bind(org.created_unix_ms)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn get_organisation(&self, id: OrgId) -> Result<Organisation, RepoError> {
        let r = sqlx::query("SELECT id, name, created_ms FROM organisations WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        org_row(&r)
    }

    async fn list_organisations(&self) -> Result<Vec<Organisation>, RepoError> {
        let rows = sqlx::query("SELECT id, name, created_ms FROM organisations ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(org_row).collect()
    }

    async fn delete_organisation(&self, id: OrgId) -> Result<(), RepoError> {
        sqlx::query("DELETE FROM organisations WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn retention_days(&self, id: OrgId) -> Result<Option<u32>, RepoError> {
        let r = sqlx::query("SELECT retention_days FROM organisations WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        let days: Option<i64> = r.try_get("retention_days").map_err(db)?;
        days.map(|d| u32::try_from(d).map_err(|_| corrupt("retention_days"))).transpose()
    }

    async fn set_retention_days(
        &self,
        id: OrgId,
        days: Option<u32>,
        now_unix_ms: i64,
        jobs: &[NewJob],
    ) -> Result<(), RepoError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE organisations SET retention_days = $1 WHERE id = $2")
            .bind(days.map(i64::from))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(RepoError::NotFound);
        }
        crate::signing::insert_jobs(&mut tx, jobs, now_unix_ms).await?;
        tx.commit().await.map_err(db)
    }

    async fn insert_envelope_key(&self, k: &EnvelopeKey, wrap_use: &KeyUse) -> Result<(), RepoError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO envelope_keys (envelope_id, org_id, dek_id, kek_key_id, kek_version, wrapped, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(k.envelope_id.to_string())
        .bind(k.org_id.to_string())
        .bind(k.dek_id.to_vec())
        .bind(&k.kek_key_id)
        .bind(k.kek_version as i64)
        .bind(k.wrapped.clone())
        .bind(k.created_unix_ms)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        bind_use(sqlx::query(INSERT_KEY_USE), wrap_use).execute(&mut *tx).await.map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn get_envelope_key(&self, envelope: EnvelopeId) -> Result<EnvelopeKey, RepoError> {
        let id = envelope.to_string();
        if let Some(found) = self.read_inline(|c| crate::inline::optional(c, KEY_OF_ENVELOPE, [&id], |r| key_row(r))) {
            return found.ok_or(RepoError::NotFound);
        }
        let r = sqlx::query(KEY_OF_ENVELOPE).bind(envelope.to_string()).fetch_one(&self.pool).await.map_err(db)?;
        key_row(&r)
    }

    async fn list_envelope_keys(&self, org: Option<OrgId>) -> Result<Vec<EnvelopeKey>, RepoError> {
        let rows = match org {
            Some(o) => {
                sqlx::query("SELECT * FROM envelope_keys WHERE org_id = $1 ORDER BY envelope_id")
                    .bind(o.to_string())
                    .fetch_all(&self.pool)
                    .await
            }
            None => sqlx::query("SELECT * FROM envelope_keys ORDER BY envelope_id").fetch_all(&self.pool).await,
        }
        .map_err(db)?;
        rows.iter().map(key_row).collect()
    }

    async fn replace_wrapped_dek(
        &self,
        envelope: EnvelopeId,
        expected_version: u32,
        new_version: u32,
        wrapped: &[u8],
    ) -> Result<(), RepoError> {
        let r = sqlx::query(
            "UPDATE envelope_keys SET wrapped = $1, kek_version = $2 WHERE envelope_id = $3 AND kek_version = $4",
        )
        .bind(wrapped.to_vec())
        .bind(new_version as i64)
        .bind(envelope.to_string())
        .bind(expected_version as i64)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        if r.rows_affected() == 1 {
            Ok(())
        } else {
            Err(RepoError::Conflict("envelope key changed concurrently".into()))
        }
    }

    async fn delete_envelope_key(&self, envelope: EnvelopeId) -> Result<(), RepoError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM blobs WHERE envelope_id = $1")
            .bind(envelope.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("DELETE FROM envelope_keys WHERE envelope_id = $1")
            .bind(envelope.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn insert_blob(&self, b: &BlobRecord) -> Result<(), RepoError> {
        sqlx::query(
            "INSERT INTO blobs (key, envelope_id, kind, version, plaintext_len, stored_len, sha256, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&b.key)
        .bind(b.envelope_id.to_string())
        .bind(&b.kind)
        .bind(b.version as i64)
        .bind(b.plaintext_len as i64)
        .bind(b.stored_len as i64)
        .bind(&b.sha256)
        .bind(b.created_unix_ms)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn replace_blob(&self, b: &BlobRecord) -> Result<BlobRecord, RepoError> {
        let mut tx = self.begin_write().await?;
        let old = sqlx::query("SELECT * FROM blobs WHERE envelope_id = $1 AND kind = $2 AND version = $3")
            .bind(b.envelope_id.to_string())
            .bind(&b.kind)
            .bind(b.version as i64)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let old = blob_row(&old)?;
        sqlx::query(
            "UPDATE blobs SET key = $1, plaintext_len = $2, stored_len = $3, sha256 = $4, created_ms = $5 \
             WHERE key = $6",
        )
        .bind(&b.key)
        .bind(b.plaintext_len as i64)
        .bind(b.stored_len as i64)
        .bind(&b.sha256)
        .bind(b.created_unix_ms)
        .bind(&old.key)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(old)
    }

    async fn get_blob(&self, envelope: EnvelopeId, kind: &str, version: u32) -> Result<BlobRecord, RepoError> {
        let r = sqlx::query("SELECT * FROM blobs WHERE envelope_id = $1 AND kind = $2 AND version = $3")
            .bind(envelope.to_string())
            .bind(kind)
            .bind(version as i64)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        blob_row(&r)
    }

    async fn list_blobs(&self, envelope: EnvelopeId) -> Result<Vec<BlobRecord>, RepoError> {
        let rows = sqlx::query("SELECT * FROM blobs WHERE envelope_id = $1 ORDER BY kind, version")
            .bind(envelope.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(blob_row).collect()
    }

    async fn record_key_use(&self, u: &KeyUse) -> Result<(), RepoError> {
        bind_use(sqlx::query(INSERT_KEY_USE), u).execute(&self.pool).await.map_err(db)?;
        Ok(())
    }

    async fn list_key_uses(&self, envelope: Option<EnvelopeId>) -> Result<Vec<KeyUse>, RepoError> {
        let rows = match envelope {
            Some(e) => {
                sqlx::query("SELECT * FROM key_uses WHERE envelope_id = $1 ORDER BY id")
                    .bind(e.to_string())
                    .fetch_all(&self.pool)
                    .await
            }
            None => sqlx::query("SELECT * FROM key_uses ORDER BY id").fetch_all(&self.pool).await,
        }
        .map_err(db)?;
        rows.iter().map(use_row).collect()
    }
}
