//! Cross-node wake-ups on PostgreSQL (LISTEN/NOTIFY): once a transaction that enqueued jobs or
//! appended to the audit log has committed, the channel is notified and every node listening
//! wakes its job lanes, or has its live audit streams look at once, instead of on the next poll
//! (which stays, as the fallback when a notice is lost). SQLite has one node: nothing to tell.
//!
//! **Why not NOTIFY inside the transaction.** A transaction that notifies takes one lock for the
//! whole PostgreSQL cluster at its commit and holds it until the commit is flushed to disk, so
//! that notices queue in commit order. Every transaction that enqueues a job or appends to the
//! audit log notified, so all of them committed one at a time, each waiting for the previous
//! one's fsync: with three nodes, the more nodes wrote at once, the longer each waited. Now the
//! transactions only mark what they changed ([`Announcer::announce`], after their commit), and
//! one task per repository sends the notices on a connection of its own, in transactions of
//! nothing but the NOTIFY with `synchronous_commit = off`: the lock is held for microseconds,
//! and announcements made while a notice is on its way go out together in the next one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use sigillum_core::RepoError;
use sqlx::postgres::{PgConnection, PgListener};
use sqlx::Connection as _;

use crate::sql::{db, Backend, SqlRepository};

/// Jobs were enqueued.
pub const JOBS: &str = "sigillum_jobs";
/// Events were appended to the audit log.
pub const AUDIT: &str = "sigillum_audit";

/// The channels, in the order of [`Announcer`]'s flags.
const CHANNELS: [&str; 2] = [JOBS, AUDIT];

/// What a committed transaction changed, for the other nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Jobs = 0,
    Audit = 1,
}

struct Pending {
    changed: [AtomicBool; 2],
    closed: AtomicBool,
}

/// Sends the notices of one repository (PostgreSQL only), outside the transactions that made
/// the changes; see the module documentation. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Announcer {
    pending: Arc<Pending>,
    wake: tokio::sync::mpsc::Sender<()>,
}

impl Announcer {
    /// Starts the sending task; it connects on the first announcement and ends when every clone
    /// of the announcer is gone or [`Announcer::close`] was called.
    pub(crate) fn start(url: Arc<SecretString>) -> Self {
        let pending = Arc::new(Pending { changed: Default::default(), closed: AtomicBool::new(false) });
        let (wake, woken) = tokio::sync::mpsc::channel(1);
        tokio::spawn(send_notices(pending.clone(), woken, url));
        Self { pending, wake }
    }

    /// Tells the other nodes, soon, that `change` was committed. Call it after the commit: a
    /// node woken earlier would look before the change is visible and then wait for its poll.
    pub(crate) fn announce(&self, change: Change) {
        self.pending.changed[change as usize].store(true, Ordering::Release);
        // Full: a wake-up is already waiting, and the task reads every flag when it takes it.
        let _ = self.wake.try_send(());
    }

    /// Stops the task and closes its connection (announcements are dropped from now on).
    pub(crate) fn close(&self) {
        self.pending.closed.store(true, Ordering::Release);
        let _ = self.wake.try_send(());
    }
}

/// The announcer's task: for each wake-up, one NOTIFY per changed channel in one statement.
/// A notice that cannot be sent is dropped (the nodes' polling covers it); the connection is
/// opened again for the next one.
async fn send_notices(pending: Arc<Pending>, mut woken: tokio::sync::mpsc::Receiver<()>, url: Arc<SecretString>) {
    let mut conn: Option<PgConnection> = None;
    while woken.recv().await.is_some() {
        if pending.closed.load(Ordering::Acquire) {
            break;
        }
        let changed: Vec<&str> = CHANNELS
            .iter()
            .zip(&pending.changed)
            .filter(|(_, flag)| flag.swap(false, Ordering::AcqRel))
            .map(|(channel, _)| *channel)
            .collect();
        if changed.is_empty() {
            continue;
        }
        if conn.is_none() {
            conn = match notice_connection(&url).await {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot notify the other nodes (they will poll)");
                    None
                }
            };
        }
        let Some(c) = conn.as_mut() else { continue };
        let sql = match changed.len() {
            1 => "SELECT pg_notify($1, '')",
            _ => "SELECT pg_notify($1, ''), pg_notify($2, '')",
        };
        let sent = changed.iter().fold(sqlx::query(sql), |q, channel| q.bind(*channel)).execute(&mut *c).await;
        if let Err(e) = sent {
            tracing::warn!(error = %db(e), "cannot notify the other nodes (they will poll)");
            conn = None;
        }
    }
    if let Some(c) = conn {
        let _ = c.close().await;
    }
}

/// A connection whose transactions (each notice is one) do not wait for their commit to reach
/// the disk: a notice needs no durability, and the cluster-wide notify lock is held until the
/// commit returns.
async fn notice_connection(url: &SecretString) -> Result<PgConnection, RepoError> {
    let mut conn = PgConnection::connect(url.expose_secret()).await.map_err(db)?;
    sqlx::query("SET synchronous_commit = off").execute(&mut conn).await.map_err(db)?;
    Ok(conn)
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
