//! Cross-node wake-ups on PostgreSQL (LISTEN/NOTIFY): a transaction that enqueues jobs or
//! appends to the audit log notifies a channel, delivered to every node when it commits. A node
//! listening wakes its job lanes, or has its live audit streams look at once, instead of on the
//! next poll (which stays, as the fallback when the listening connection is down). SQLite has
//! one node: nothing to tell.

use secrecy::ExposeSecret;
use sigillum_core::RepoError;
use sqlx::postgres::PgListener;
use sqlx::AnyConnection;

use crate::sql::{db, Backend, SqlRepository};

/// Jobs were enqueued.
pub const JOBS: &str = "sigillum_jobs";
/// Events were appended to the audit log.
pub const AUDIT: &str = "sigillum_audit";

/// Notifies `channel` from inside the caller's transaction (delivered at its commit), with
/// `payload` (on [`AUDIT`]: the log's size after the append, or empty).
pub(crate) async fn within(conn: &mut AnyConnection, channel: &'static str, payload: &str) -> Result<(), RepoError> {
    if conn.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT pg_notify($1, $2)").bind(channel).bind(payload).execute(&mut *conn).await.map_err(db)?;
    }
    Ok(())
}

/// What another node (or this one) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    Jobs,
    Audit,
}

/// A listening connection. It also tells this process's audit writer the newest log size it
/// heard of, so a writer that another node overtook catches up before it tries to append
/// instead of after losing the race (see `audit.rs`).
pub struct Notifications {
    listener: PgListener,
    newest_log_size: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Notifications {
    /// The next notice. The connection is re-established by sqlx when it drops; notices sent
    /// meanwhile are lost, which the callers' polling covers.
    pub async fn next(&mut self) -> Result<Notice, RepoError> {
        loop {
            let n = self.listener.recv().await.map_err(db)?;
            match n.channel() {
                JOBS => return Ok(Notice::Jobs),
                AUDIT => {
                    if let Ok(size) = n.payload().parse::<u64>() {
                        self.newest_log_size.fetch_max(size, std::sync::atomic::Ordering::Relaxed);
                    }
                    return Ok(Notice::Audit);
                }
                _ => {}
            }
        }
    }
}

impl SqlRepository {
    /// Listens to the job and audit channels (PostgreSQL); `None` on SQLite.
    pub async fn listen(&self) -> Result<Option<Notifications>, RepoError> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let Some(url) = &self.url else { return Ok(None) };
        let mut l = PgListener::connect(url.expose_secret()).await.map_err(db)?;
        l.listen_all([JOBS, AUDIT]).await.map_err(db)?;
        Ok(Some(Notifications { listener: l, newest_log_size: self.audit_writer.newest_size() }))
    }
}
