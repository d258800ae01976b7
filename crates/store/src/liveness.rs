//! Which nodes are alive, as PostgreSQL sees them, so the jobs of a node that died are taken
//! over at once instead of when their leases run out.
//!
//! A job's lease (20 s, renewed every 5 s) is what lets another node take over a job whose node
//! stopped; alone, it makes every job a killed node held wait out its lease (the scale-out proof
//! measured 20 s from a signature to its envelope's completion when the finalisation was leased
//! by the killed node). So each node also holds, for its whole life, a session-level advisory
//! lock named after its node id on a connection of its own. PostgreSQL releases it the moment
//! that connection ends, which a killed process's connection does at once. A node with nothing
//! to do looks (at most once a [`SWEEP_EVERY_MS`]) for leases held under node ids whose lock
//! nobody holds, and releases them.
//!
//! Taking a job over early is safe for the same reason taking it over late is: every job
//! re-reads the state it acts on, and its effects (mail, webhooks) carry idempotency keys. A
//! node that only lost its lock's connection (the database restarted) renews it; its leases may
//! be taken over meanwhile, as after a long stall.
//!
//! A node that starts holds no job yet: it first releases whatever its node id still leases
//! from before (a restart after a crash), on both databases. SQLite has one node, and no
//! liveness to tell.

use sigillum_core::RepoError;
use sqlx::pool::PoolConnection;
use sqlx::Any;

use crate::sql::{db, Backend, SqlRepository};

/// The first key of the liveness locks (`pg_advisory_lock(int, int)`: the second is the node
/// id's `hashtext`); PostgreSQL lists such a lock with `objsubid` 2, apart from bigint keys.
const LIVENESS_CLASS: i32 = 0x7367_6c6e;
/// How often one process looks for leases of nodes that died.
const SWEEP_EVERY_MS: i64 = 1_000;

/// Releases unexpired leases held under node ids whose liveness lock nobody holds in this
/// database. `$1` now, `$2` this node's id, `$3` [`LIVENESS_CLASS`].
const RELEASE_ORPHANED: &str = "UPDATE jobs SET locked_until_ms = NULL \
     WHERE done_ms IS NULL AND locked_until_ms >= $1 AND locked_by <> $2 \
     AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted \
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND l.classid = $3::int::oid AND l.objid = hashtext(jobs.locked_by)::oid AND l.objsubid = 2)";

/// This node's liveness lock, held while the value lives (PostgreSQL; nothing on SQLite).
pub struct Liveness {
    conn: Option<PoolConnection<Any>>,
    node: String,
}

impl Liveness {
    /// Checks that the lock's connection is still up; re-takes the lock on a new connection if
    /// it is not (the database restarted), or if an earlier try failed. An error: the database
    /// is unreachable; the next call tries again. (SQLite: nothing to keep.)
    pub async fn keep(&mut self, repo: &SqlRepository) -> Result<(), RepoError> {
        if let Some(conn) = self.conn.as_mut() {
            if sqlx::query("SELECT 1").execute(&mut **conn).await.is_ok() {
                return Ok(());
            }
        }
        self.conn = None;
        self.conn = repo.liveness_lock(&self.node).await?;
        Ok(())
    }
}

impl SqlRepository {
    /// Takes this node's liveness lock, first releasing whatever leases its node id still holds
    /// from before this process (see the module docs). On SQLite only the latter.
    pub async fn liveness(&self, node: &str) -> Result<Liveness, RepoError> {
        sqlx::query("UPDATE jobs SET locked_until_ms = NULL WHERE locked_by = $1 AND done_ms IS NULL")
            .bind(node)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(Liveness { conn: self.liveness_lock(node).await?, node: node.to_owned() })
    }

    async fn liveness_lock(&self, node: &str) -> Result<Option<PoolConnection<Any>>, RepoError> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut conn = self.pool.acquire().await.map_err(db)?;
        conn.close_on_drop();
        // Another live process with the same node id holds it: that id is alive either way.
        sqlx::query("SELECT pg_try_advisory_lock($1, hashtext($2))")
            .bind(LIVENESS_CLASS)
            .bind(node)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        Ok(Some(conn))
    }

    /// Releases the leases of nodes that died (PostgreSQL), at most once a [`SWEEP_EVERY_MS`]
    /// per process by the wall clock (`now`, the leases' clock, may be a test's); how many it
    /// released.
    pub(crate) async fn release_orphaned_leases(&self, node: &str, now: i64) -> Result<u64, RepoError> {
        if self.backend != Backend::Postgres {
            return Ok(0);
        }
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        if !crate::sql::claim_periodic(&self.last_orphan_sweep, wall, SWEEP_EVERY_MS) {
            return Ok(0);
        }
        let done = sqlx::query(RELEASE_ORPHANED)
            .bind(now)
            .bind(node)
            .bind(LIVENESS_CLASS)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }
}
