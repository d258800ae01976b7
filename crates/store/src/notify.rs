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

/// Notifies `channel` from inside the caller's transaction (delivered at its commit).
pub(crate) async fn within(conn: &mut AnyConnection, channel: &'static str) -> Result<(), RepoError> {
    if conn.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT pg_notify($1, '')").bind(channel).execute(&mut *conn).await.map_err(db)?;
    }
    Ok(())
}

/// What another node (or this one) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    Jobs,
    Audit,
}

/// A listening connection.
pub struct Notifications(PgListener);

impl Notifications {
    /// The next notice. The connection is re-established by sqlx when it drops; notices sent
    /// meanwhile are lost, which the callers' polling covers.
    pub async fn next(&mut self) -> Result<Notice, RepoError> {
        loop {
            let n = self.0.recv().await.map_err(db)?;
            match n.channel() {
                JOBS => return Ok(Notice::Jobs),
                AUDIT => return Ok(Notice::Audit),
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
        Ok(Some(Notifications(l)))
    }
}
