//! The audit log on SQLite or PostgreSQL.
//!
//! An append is one transaction that first takes the write lock on the single `audit_log_head`
//! row (PostgreSQL: a row lock; SQLite: the database write lock), so appenders in every process
//! line up, sequence numbers come out gap-free, and each batch's checkpoint signs exactly the tree
//! it committed. The tree's right edge (≤ 64 hashes) is known inside that transaction (read, or
//! remembered from this writer's previous commit when the head's append counter proves nobody
//! else wrote since), the new leaves are pushed through [`Frontier`], and each leaf row stores the
//! node hashes it completed. A batch of many events costs one commit (one fsync) and four
//! statements: the head (lock, claim, check), the leaves, the envelope heads, the checkpoint.
//! That is the group commit. On SQLite, a writer that made the last commit it knows of sends
//! those statements in two round trips to the connection's thread, having computed everything
//! else beforehand (`append_predicted`); the head row still checks the prediction before
//! anything commits.

use std::collections::HashMap;

use sigillum_audit::merkle::{range_nodes, Frontier, LeafRange, NodeId};
use sigillum_core::ports::{AuditStore, CheckpointSigner, LogKeyRecord, NewLeaf, StoredCheckpoint, StoredLeaf};
use sigillum_core::{EnvelopeId, RepoError};
use sqlx::any::AnyRow;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Column, Connection, Row};

use crate::sql::{db, hash_column, Backend, SqlRepository};

/// Most rows in one multi-row INSERT (8 parameters each; far below both databases' limits).
const INSERT_CHUNK: usize = 256;

/// Rows for the next multi-row INSERT when `left` remain: a multiple of eight (or, for the last
/// few, the exact rest), so a batch takes at most two statements of at most 39 shapes in all,
/// each prepared once on the writer's connection and then cached (a new shape per batch size
/// would be parsed and planned again at every commit).
fn chunk_rows(left: usize) -> usize {
    match left {
        0..8 => left,
        8..INSERT_CHUNK => left - left % 8,
        _ => INSERT_CHUNK,
    }
}

fn corrupt(what: &str) -> RepoError {
    RepoError::Unavailable(format!("audit log storage is inconsistent: {what}"))
}

fn to_i64(v: u64) -> Result<i64, RepoError> {
    i64::try_from(v).map_err(|_| corrupt("sequence number out of range"))
}

fn leaf_row(r: &AnyRow) -> Result<StoredLeaf, RepoError> {
    let env: Option<String> = r.try_get("envelope_id").map_err(db)?;
    Ok(StoredLeaf {
        seq: r.try_get::<i64, _>("seq").map_err(db)? as u64,
        envelope_id: env.as_deref().and_then(EnvelopeId::parse),
        prev_in_envelope: r.try_get::<Option<i64>, _>("prev_in_envelope").map_err(db)?.map(|p| p as u64),
        leaf_hash: hash_column(r, "leaf_hash")?,
        parents: r.try_get("parents").map_err(db)?,
        event: r.try_get("event").map_err(db)?,
        disclosure: r.try_get("disclosure").map_err(db)?,
        created_unix_ms: r.try_get("created_ms").map_err(db)?,
    })
}

fn checkpoint_row(r: &AnyRow) -> Result<StoredCheckpoint, RepoError> {
    Ok(StoredCheckpoint {
        size: r.try_get::<i64, _>("size").map_err(db)? as u64,
        root: hash_column(r, "root")?,
        note: r.try_get("note").map_err(db)?,
        created_unix_ms: r.try_get("created_ms").map_err(db)?,
    })
}

/// The leaf whose arrival completed node `id`: the last leaf of its subtree.
fn completing_seq(id: &NodeId) -> Option<u64> {
    id.index.checked_add(1)?.checked_mul(1u64.checked_shl(u32::from(id.level))?)?.checked_sub(1)
}

/// `n` parameter placeholders, numbered from `first`: `$1, $2, …` on PostgreSQL, plain `?` on
/// SQLite (numbered names make SQLite's parameter lookup quadratic in long multi-row INSERTs).
fn placeholders(backend: Backend, first: usize, n: usize) -> String {
    match backend {
        Backend::Postgres => (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", "),
        Backend::Sqlite => vec!["?"; n].join(", "),
    }
}

/// Reads the hashes of complete nodes; nodes whose completing leaf does not exist are absent.
async fn read_nodes(
    backend: Backend,
    conn: &mut AnyConnection,
    ids: &[NodeId],
) -> Result<HashMap<NodeId, [u8; 32]>, RepoError> {
    let mut seqs: Vec<i64> = ids.iter().filter_map(completing_seq).filter_map(|s| i64::try_from(s).ok()).collect();
    seqs.sort_unstable();
    seqs.dedup();
    let mut rows: HashMap<u64, ([u8; 32], Vec<u8>)> = HashMap::new();
    for chunk in seqs.chunks(500) {
        let sql = format!(
            "SELECT seq, leaf_hash, parents FROM audit_leaves WHERE seq IN ({})",
            placeholders(backend, 1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for s in chunk {
            q = q.bind(*s);
        }
        for r in q.fetch_all(&mut *conn).await.map_err(db)? {
            let seq = r.try_get::<i64, _>("seq").map_err(db)? as u64;
            rows.insert(seq, (hash_column(&r, "leaf_hash")?, r.try_get("parents").map_err(db)?));
        }
    }
    let mut out = HashMap::new();
    for id in ids {
        let Some((leaf, parents)) = completing_seq(id).and_then(|s| rows.get(&s)) else { continue };
        let hash = if id.level == 0 {
            *leaf
        } else {
            let at = (usize::from(id.level) - 1) * 32;
            let slice = parents.get(at..at + 32).ok_or_else(|| corrupt("node hash missing from its leaf row"))?;
            slice.try_into().map_err(|_| corrupt("node hash"))?
        };
        out.insert(*id, hash);
    }
    Ok(out)
}

/// The right edge of the tree of `size` leaves, from the stored node hashes.
async fn read_frontier(backend: Backend, conn: &mut AnyConnection, size: u64) -> Result<Frontier, RepoError> {
    let edge_ids = range_nodes(LeafRange { start: 0, end: size });
    let edge_nodes = read_nodes(backend, conn, &edge_ids).await?;
    let edge = edge_ids.iter().map(|id| edge_nodes.get(id).copied()).collect::<Option<Vec<_>>>();
    edge.and_then(|e| Frontier::from_edge(size, e)).ok_or_else(|| corrupt("right edge of the tree"))
}

/// The newest sequence number of each of `envs` (distinct envelope ids) that has events.
async fn read_envelope_heads(
    backend: Backend,
    conn: &mut AnyConnection,
    envs: &[String],
) -> Result<HashMap<String, i64>, RepoError> {
    let mut heads = HashMap::new();
    for chunk in envs.chunks(500) {
        let sql = format!(
            "SELECT envelope_id, last_seq FROM audit_envelope_heads WHERE envelope_id IN ({})",
            placeholders(backend, 1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = q.bind(e.as_str());
        }
        for r in q.fetch_all(&mut *conn).await.map_err(db)? {
            heads.insert(r.try_get("envelope_id").map_err(db)?, r.try_get("last_seq").map_err(db)?);
        }
    }
    Ok(heads)
}

/// Moves each envelope's head to its newest event; `updates` maps envelope → (last seq, new events).
async fn write_envelope_heads(
    backend: Backend,
    conn: &mut AnyConnection,
    updates: HashMap<String, (i64, i64)>,
) -> Result<(), RepoError> {
    let updates: Vec<_> = updates.into_iter().collect();
    for chunk in updates.chunks(500) {
        let values = (0..chunk.len()).map(|i| format!("({})", placeholders(backend, i * 3 + 1, 3))).collect::<Vec<_>>();
        let sql = format!(
            "INSERT INTO audit_envelope_heads (envelope_id, last_seq, events) VALUES {} ON CONFLICT (envelope_id) \
             DO UPDATE SET last_seq = excluded.last_seq, events = audit_envelope_heads.events + excluded.events",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for (env, (last, count)) in chunk {
            q = q.bind(env.as_str()).bind(*last).bind(*count);
        }
        q.execute(&mut *conn).await.map_err(db)?;
    }
    Ok(())
}

/// Most envelope heads the writer remembers between commits (a cache: misses are read).
const HEADS_CACHED_MAX: usize = 65_536;

/// What this process's audit writer knew right after its last commit: the log head's append
/// counter, the tree's right edge and the newest event of the envelopes it wrote to. The next
/// append trusts it only if, under the log lock, the counter has moved by exactly its own bump and
/// the size matches: then nobody (another node on the same PostgreSQL, another repository in this
/// process, an operator) has appended in between, and the edge and heads need not be read again.
/// Anything else falls back to reading them, so the cache can make an append faster, never wrong.
///
/// The writer also keeps its database connection between commits: taking one from the pool and
/// giving it back costs round trips through the runtime that, under load, measured as long as the
/// commit itself.
#[derive(Clone, Default)]
pub(crate) struct WriterCache {
    slot: std::sync::Arc<std::sync::Mutex<WriterSlot>>,
    /// The largest log size this process heard of from the log's notifications (PostgreSQL):
    /// larger than the remembered tree's, another node appended since this writer last did.
    newest_size: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Optimistic tries that lost the race to another writer (written nothing, tried again).
    lost_tries: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Default)]
pub(crate) struct WriterSlot {
    state: Option<WriterState>,
    conn: Option<PoolConnection<Any>>,
}

#[derive(Clone)]
struct WriterState {
    appends: i64,
    frontier: Frontier,
    heads: HashMap<String, i64>,
}

impl WriterCache {
    /// Empties the cache (its connection and remembered state), for closing the pool.
    pub(crate) fn release(&self) -> WriterSlot {
        self.take()
    }

    /// Where the listening connection records the newest log size it heard of.
    pub(crate) fn newest_size(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.newest_size.clone()
    }

    fn heard(&self) -> u64 {
        self.newest_size.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn lost_tries(&self) -> u64 {
        self.lost_tries.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn take(&self) -> WriterSlot {
        self.slot.lock().map(|mut s| std::mem::take(&mut *s)).unwrap_or_default()
    }

    fn put(&self, slot: WriterSlot) {
        if let Ok(mut s) = self.slot.lock() {
            *s = slot;
        }
    }
}

impl SqlRepository {
    /// How many of this process's audit appends were laid out against a log another node had
    /// already grown, and so wrote nothing and were tried again (PostgreSQL; a diagnostic).
    pub fn audit_append_tries_lost(&self) -> u64 {
        self.audit_writer.lost_tries()
    }

    /// Signs (or finds) a checkpoint of the current tree without appending.
    async fn checkpoint_only(
        &self,
        sign: CheckpointSigner<'_>,
        now_unix_ms: i64,
    ) -> Result<(u64, StoredCheckpoint), RepoError> {
        // The append counter moves, so whatever the writer remembered is stale.
        drop(self.audit_writer.take().state);
        let mut tx = self.begin_write().await?;
        let size = sqlx::query("UPDATE audit_log_head SET appends = appends + 1 WHERE id = 1 RETURNING size")
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?
            .try_get::<i64, _>("size")
            .map_err(db)? as u64;
        // Another node may have signed this size already.
        let existing = sqlx::query("SELECT * FROM audit_checkpoints WHERE size = $1")
            .bind(to_i64(size)?)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let checkpoint = match existing {
            Some(r) => checkpoint_row(&r)?,
            None => {
                let frontier = read_frontier(self.backend, &mut tx, size).await?;
                insert_checkpoint(&mut tx, frontier.size(), frontier.root(), sign, now_unix_ms).await?
            }
        };
        tx.commit().await.map_err(db)?;
        Ok((size, checkpoint))
    }
}

/// The signed checkpoint of a tree of `size` leaves with this root.
fn sign_checkpoint(
    size: u64,
    root: [u8; 32],
    sign: CheckpointSigner<'_>,
    now_unix_ms: i64,
) -> Result<StoredCheckpoint, RepoError> {
    let note = sign(size, &root).ok_or_else(|| RepoError::Unavailable("checkpoint signing failed".into()))?;
    Ok(StoredCheckpoint { size, root, note, created_unix_ms: now_unix_ms })
}

async fn insert_checkpoint(
    conn: &mut AnyConnection,
    size: u64,
    root: [u8; 32],
    sign: CheckpointSigner<'_>,
    now_unix_ms: i64,
) -> Result<StoredCheckpoint, RepoError> {
    let checkpoint = sign_checkpoint(size, root, sign, now_unix_ms)?;
    sqlx::query("INSERT INTO audit_checkpoints (size, root, note, created_ms) VALUES ($1, $2, $3, $4)")
        .bind(to_i64(size)?)
        .bind(root.to_vec())
        .bind(&checkpoint.note)
        .bind(now_unix_ms)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    crate::notify::within(conn, crate::notify::AUDIT, &size.to_string()).await?;
    Ok(checkpoint)
}

/// One batch of new leaves with each one's envelope key, computed once.
struct Batch {
    leaves: Vec<NewLeaf>,
    envelopes: Vec<Option<String>>,
    count: i64,
    /// The jobs the batch's leaves settle, as a JSON array of ids.
    settles: String,
}

impl Batch {
    fn new(leaves: Vec<NewLeaf>) -> Result<Self, RepoError> {
        let envelopes = leaves.iter().map(|l| l.envelope_id.map(|e| e.to_string())).collect();
        let count = to_i64(leaves.len() as u64)?;
        let settles: Vec<&str> = leaves.iter().filter_map(|l| l.settles_job.as_deref()).collect();
        let settles = serde_json::Value::from(settles).to_string();
        Ok(Self { leaves, envelopes, count, settles })
    }

    /// Pushes the leaves through `frontier`: the node hashes each one completes (levels 1..,
    /// concatenated, as stored in `parents`) and the tree after the batch.
    fn lay_out(&self, mut frontier: Frontier) -> (Vec<Vec<u8>>, Frontier) {
        let parents = self
            .leaves
            .iter()
            .map(|leaf| frontier.push(leaf.leaf_hash).iter().skip(1).flat_map(|(_, h)| h.iter().copied()).collect())
            .collect();
        (parents, frontier)
    }

    /// Per envelope in the batch: (sequence number of its newest new event, number of new events).
    fn envelope_counts(&self, first: i64) -> HashMap<String, (i64, i64)> {
        let mut counts: HashMap<String, (i64, i64)> = HashMap::new();
        for (seq, env) in (first..).zip(&self.envelopes) {
            if let Some(env) = env {
                let entry = counts.entry(env.clone()).or_insert((seq, 0));
                *entry = (seq, entry.1 + 1);
            }
        }
        counts
    }

    /// Each leaf's predecessor in its envelope's chain; moves `heads` to the batch's newest events.
    fn chain(&self, heads: &mut HashMap<String, i64>, first: i64) -> Vec<Option<i64>> {
        (first..)
            .zip(&self.envelopes)
            .map(|(seq, env)| env.as_ref().and_then(|e| heads.insert(e.clone(), seq)))
            .collect()
    }

    /// Envelopes of the batch whose newest event `heads` does not know.
    fn unknown_envelopes(&self, heads: &HashMap<String, i64>) -> Vec<String> {
        let mut envs: Vec<String> =
            self.envelopes.iter().flatten().filter(|e| !heads.contains_key(*e)).cloned().collect();
        envs.sort_unstable();
        envs.dedup();
        envs
    }
}

/// Inserts the batch's leaf rows (numbered from `first`) in chunks of cached shapes; with
/// `then_commit` the last statement also commits the transaction (SQLite only).
#[allow(clippy::too_many_arguments)]
async fn insert_leaf_rows(
    backend: Backend,
    conn: &mut AnyConnection,
    batch: Batch,
    first: i64,
    prevs: Vec<Option<i64>>,
    parents: Vec<Vec<u8>>,
    now_unix_ms: i64,
    then_commit: bool,
) -> Result<(), RepoError> {
    let mut left = batch.leaves.len();
    let mut rows = (first..).zip(batch.envelopes).zip(prevs).zip(batch.leaves).zip(parents);
    while left > 0 {
        let take = chunk_rows(left);
        left -= take;
        let values = (0..take).map(|i| format!("({})", placeholders(backend, i * 8 + 1, 8))).collect::<Vec<_>>();
        let sql = format!(
            "INSERT INTO audit_leaves (seq, envelope_id, prev_in_envelope, leaf_hash, parents, event, disclosure, \
             created_ms) VALUES {}{}",
            values.join(", "),
            if then_commit && left == 0 { "; COMMIT" } else { "" }
        );
        let mut q = sqlx::query(&sql);
        for ((((seq, env), prev), leaf), parents) in rows.by_ref().take(take) {
            q = q
                .bind(seq)
                .bind(env)
                .bind(prev)
                .bind(leaf.leaf_hash.to_vec())
                .bind(parents)
                .bind(leaf.event)
                .bind(leaf.disclosure)
                .bind(now_unix_ms);
        }
        q.execute(&mut *conn).await.map_err(db)?;
    }
    Ok(())
}

/// An append that reads what it needs under the log lock: SQLite's general path (the first
/// commit of a writer, or after someone else appended), and PostgreSQL's fallback.
async fn append_checked(
    backend: Backend,
    conn: &mut AnyConnection,
    remembered: Option<WriterState>,
    batch: Batch,
    sign: CheckpointSigner<'_>,
    now_unix_ms: i64,
) -> Result<(u64, StoredCheckpoint, WriterState), RepoError> {
    let mut tx = conn.begin().await.map_err(db)?;
    // Take the log's write lock before reading anything, claim the sequence numbers and learn
    // (from the append counter) whether anybody appended since this writer last did.
    let head = sqlx::query(
        "UPDATE audit_log_head SET appends = appends + 1, size = size + $1 WHERE id = 1 RETURNING appends, size",
    )
    .bind(batch.count)
    .fetch_one(&mut *tx)
    .await
    .map_err(db)?;
    let appends: i64 = head.try_get("appends").map_err(db)?;
    let first =
        head.try_get::<i64, _>("size").map_err(db)?.checked_sub(batch.count).ok_or_else(|| corrupt("log size"))?;
    let size = u64::try_from(first).map_err(|_| corrupt("log size"))?;

    let (frontier, mut heads) = match remembered {
        Some(s) if s.appends.checked_add(1) == Some(appends) && s.frontier.size() == size => (s.frontier, s.heads),
        _ => {
            let frontier = read_frontier(backend, &mut tx, size).await?;
            (frontier, HashMap::new())
        }
    };
    let unknown = batch.unknown_envelopes(&heads);
    if !unknown.is_empty() {
        heads.extend(read_envelope_heads(backend, &mut tx, &unknown).await?);
    }
    let (parents, frontier) = batch.lay_out(frontier);
    let counts = batch.envelope_counts(first);
    let prevs = batch.chain(&mut heads, first);
    if batch.settles != "[]" {
        let settle = match backend {
            Backend::Postgres => SETTLE_JOBS_POSTGRES,
            Backend::Sqlite => SETTLE_JOBS_SQLITE,
        };
        sqlx::query(settle).bind(now_unix_ms).bind(&batch.settles).execute(&mut *tx).await.map_err(db)?;
    }
    insert_leaf_rows(backend, &mut tx, batch, first, prevs, parents, now_unix_ms, false).await?;
    write_envelope_heads(backend, &mut tx, counts).await?;
    let checkpoint = insert_checkpoint(&mut tx, frontier.size(), frontier.root(), sign, now_unix_ms).await?;
    tx.commit().await.map_err(db)?;
    Ok((size, checkpoint, WriterState { appends, frontier, heads }))
}

/// Marks done the jobs (a JSON array of ids) that the appended events settle.
const SETTLE_JOBS_SQLITE: &str =
    "UPDATE jobs SET done_ms = $1, locked_until_ms = NULL WHERE id IN (SELECT value FROM json_each($2))";
const SETTLE_JOBS_POSTGRES: &str =
    "UPDATE jobs SET done_ms = $1, locked_until_ms = NULL WHERE id IN (SELECT jsonb_array_elements_text($2::jsonb))";

/// The head claim, the envelope heads, the checkpoint and the settled jobs of a predicted
/// append, in one round trip (SQLite: several statements, positional parameters across them).
const PREDICTED_PROLOGUE: &str = "BEGIN IMMEDIATE; \
     UPDATE audit_log_head SET appends = appends + 1, size = size + ? WHERE id = 1 RETURNING appends, size; \
     SELECT envelope_id, last_seq FROM audit_envelope_heads WHERE envelope_id IN (SELECT value FROM json_each(?)); \
     INSERT INTO audit_envelope_heads (envelope_id, last_seq, events) \
     SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?) WHERE true ON CONFLICT (envelope_id) \
     DO UPDATE SET last_seq = excluded.last_seq, events = audit_envelope_heads.events + excluded.events; \
     INSERT INTO audit_checkpoints (size, root, note, created_ms) VALUES (?, ?, ?, ?); \
     UPDATE jobs SET done_ms = ?, locked_until_ms = NULL WHERE id IN (SELECT value FROM json_each(?))";

/// SQLite's fast path when this writer made the last commit it knows of: everything that does
/// not depend on the database is computed from the remembered state first (leaf rows, envelope
/// heads, the signed checkpoint), so a commit costs two round trips to SQLite's connection
/// thread instead of seven; under load each round trip waits for a CPU. The prediction is
/// checked against the head row, under the write lock, before anything commits: if somebody
/// else appended (or anything in the prologue fails), the transaction is rolled back and the
/// batch goes down the checked path.
async fn append_predicted(
    conn: &mut AnyConnection,
    state: WriterState,
    batch: Batch,
    sign: CheckpointSigner<'_>,
    now_unix_ms: i64,
) -> Result<Predicted, RepoError> {
    let WriterState { appends, frontier, mut heads } = state;
    let size = frontier.size();
    let first = to_i64(size)?;
    let (parents, after) = batch.lay_out(frontier);
    let counts = batch.envelope_counts(first);
    let unknown = batch.unknown_envelopes(&heads);
    let checkpoint = sign_checkpoint(after.size(), after.root(), sign, now_unix_ms)?;
    let json = |v: serde_json::Value| v.to_string();
    let new_heads = json(counts.iter().map(|(env, (last, n))| serde_json::json!([env, last, n])).collect());
    let rows = sqlx::query(PREDICTED_PROLOGUE)
        .bind(batch.count)
        .bind(json(unknown.into()))
        .bind(new_heads)
        .bind(to_i64(checkpoint.size)?)
        .bind(checkpoint.root.to_vec())
        .bind(&checkpoint.note)
        .bind(now_unix_ms)
        .bind(now_unix_ms)
        .bind(&batch.settles)
        .fetch_all(&mut *conn)
        .await;
    let claimed = rows.as_ref().ok().and_then(|rows| {
        let head = rows.iter().find(|r| r.columns().first().is_some_and(|c| c.name() == "appends"))?;
        let (a, s) = (head.try_get::<i64, _>("appends").ok()?, head.try_get::<i64, _>("size").ok()?);
        (appends.checked_add(1) == Some(a) && first.checked_add(batch.count) == Some(s)).then_some(a)
    });
    let (Some(appends), Ok(rows)) = (claimed, rows) else {
        // Rolling back what no transaction holds is an error we can ignore.
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        return Ok(Predicted::Stale(batch));
    };
    for r in rows.iter().filter(|r| r.columns().first().is_some_and(|c| c.name() == "envelope_id")) {
        heads.insert(r.try_get("envelope_id").map_err(db)?, r.try_get("last_seq").map_err(db)?);
    }
    let prevs = batch.chain(&mut heads, first);
    if let Err(e) = insert_leaf_rows(Backend::Sqlite, conn, batch, first, prevs, parents, now_unix_ms, true).await {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        return Err(e);
    }
    Ok(Predicted::Appended((size, checkpoint, WriterState { appends, frontier: after, heads })))
}

/// PostgreSQL's append: one statement, which writes the batch only if the log's size is still
/// the one the batch was laid out against (the tree's edge and the envelopes' newest events
/// change only with the size), and writes nothing otherwise (it returns no row); see
/// [`append_optimistic`]. `$1` leaves, `$2` expected size, `$3` time, `$4` leaf rows, `$5`
/// envelope heads, `$6`–`$8` the checkpoint, `$9` settled jobs (JSON arrays as text), `$10` the
/// notification channel (told the log's new size).
const APPEND_IF_UNCHANGED: &str = "WITH head AS ( \
         UPDATE audit_log_head SET appends = appends + 1, size = size + $1 \
         WHERE id = 1 AND size = $2 RETURNING appends), \
     leaves AS ( \
         INSERT INTO audit_leaves (seq, envelope_id, prev_in_envelope, leaf_hash, parents, event, disclosure, \
         created_ms) \
         SELECT (l ->> 0)::bigint, l ->> 1, (l ->> 2)::bigint, decode(l ->> 3, 'hex'), decode(l ->> 4, 'hex'), \
         decode(l ->> 5, 'hex'), decode(l ->> 6, 'hex'), $3 \
         FROM jsonb_array_elements($4::jsonb) AS l WHERE EXISTS (SELECT 1 FROM head)), \
     heads AS ( \
         INSERT INTO audit_envelope_heads (envelope_id, last_seq, events) \
         SELECT h ->> 0, (h ->> 1)::bigint, (h ->> 2)::bigint FROM jsonb_array_elements($5::jsonb) AS h \
         WHERE EXISTS (SELECT 1 FROM head) \
         ON CONFLICT (envelope_id) DO UPDATE SET last_seq = excluded.last_seq, \
         events = audit_envelope_heads.events + excluded.events), \
     checkpoint AS ( \
         INSERT INTO audit_checkpoints (size, root, note, created_ms) SELECT $6, $7, $8, $3 \
         WHERE EXISTS (SELECT 1 FROM head)), \
     settled AS ( \
         UPDATE jobs SET done_ms = $3, locked_until_ms = NULL \
         WHERE id IN (SELECT jsonb_array_elements_text($9::jsonb)) AND EXISTS (SELECT 1 FROM head)) \
     SELECT appends FROM head CROSS JOIN LATERAL (SELECT pg_notify($10, ($2 + $1)::text)) AS notified";

/// Optimistic tries of [`append_optimistic`] before it takes the lock first instead.
const OPTIMISTIC_TRIES: usize = 20;

/// Most leaves [`catch_up`] reads; a writer further behind reads the tree's edge instead.
const CATCH_UP_MAX: i64 = 4096;

/// PostgreSQL's path, for several nodes appending at once: the batch is laid out and its
/// checkpoint signed against what this writer knows of the log (the tree's right edge, the
/// envelopes' newest events), without any lock; then one statement writes it all if the log has
/// not grown meanwhile. The log head is locked only while that statement runs. Taking the lock
/// first and then reading and writing in several round trips (`append_checked`) made the nodes
/// wait for each other's round trips: with three nodes on a loaded machine that wait was most
/// of an append. A try that loses the race writes nothing; the writer then reads only the leaves
/// appended since and tries again, and after [`OPTIMISTIC_TRIES`] takes the lock first.
///
/// A writer that has heard of a larger log (`heard`, from the other nodes' notifications) reads
/// the leaves appended since before its first try: a try laid out against a size already gone
/// is bound to lose, and costs the writer the layout, the signature and a statement, and the
/// database the statement. With three nodes taking requests in turn, most remembered states
/// were behind (about half of all tries lost before).
async fn append_optimistic(
    conn: &mut AnyConnection,
    remembered: Option<WriterState>,
    cache: &WriterCache,
    batch: Batch,
    sign: CheckpointSigner<'_>,
    now_unix_ms: i64,
) -> Result<(u64, StoredCheckpoint, WriterState), RepoError> {
    let mut state = match remembered {
        Some(state) if cache.heard() > state.frontier.size() => catch_up(conn, state).await?,
        Some(state) => state,
        None => read_writer_state(conn).await?,
    };
    for _ in 0..OPTIMISTIC_TRIES {
        let unknown = batch.unknown_envelopes(&state.heads);
        if !unknown.is_empty() {
            state.heads.extend(read_envelope_heads(Backend::Postgres, conn, &unknown).await?);
        }
        let size = state.frontier.size();
        let first = to_i64(size)?;
        let (parents, after) = batch.lay_out(state.frontier.clone());
        let counts = batch.envelope_counts(first);
        let mut heads = state.heads.clone();
        let prevs = batch.chain(&mut heads, first);
        let checkpoint = sign_checkpoint(after.size(), after.root(), sign, now_unix_ms)?;
        let rows: Vec<serde_json::Value> = (first..)
            .zip(&batch.envelopes)
            .zip(&prevs)
            .zip(&batch.leaves)
            .zip(&parents)
            .map(|((((seq, env), prev), leaf), parents)| {
                serde_json::json!([
                    seq,
                    env,
                    prev,
                    hex::encode(leaf.leaf_hash),
                    hex::encode(parents),
                    hex::encode(&leaf.event),
                    leaf.disclosure.as_ref().map(hex::encode),
                ])
            })
            .collect();
        let new_heads: Vec<serde_json::Value> =
            counts.iter().map(|(env, (last, n))| serde_json::json!([env, last, n])).collect();
        let written = sqlx::query(APPEND_IF_UNCHANGED)
            .bind(batch.count)
            .bind(first)
            .bind(now_unix_ms)
            .bind(serde_json::Value::from(rows).to_string())
            .bind(serde_json::Value::from(new_heads).to_string())
            .bind(to_i64(checkpoint.size)?)
            .bind(checkpoint.root.to_vec())
            .bind(&checkpoint.note)
            .bind(&batch.settles)
            .bind(crate::notify::AUDIT)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
        if let Some(row) = written {
            let appends = row.try_get::<i64, _>("appends").map_err(db)?;
            return Ok((size, checkpoint, WriterState { appends, frontier: after, heads }));
        }
        cache.lost_tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        state = catch_up(conn, state).await?;
    }
    append_checked(Backend::Postgres, conn, None, batch, sign, now_unix_ms).await
}

/// The log head and the tree's right edge as committed now (no lock: an append checks them).
async fn read_writer_state(conn: &mut AnyConnection) -> Result<WriterState, RepoError> {
    let head =
        sqlx::query("SELECT appends, size FROM audit_log_head WHERE id = 1").fetch_one(&mut *conn).await.map_err(db)?;
    let appends: i64 = head.try_get("appends").map_err(db)?;
    let size = u64::try_from(head.try_get::<i64, _>("size").map_err(db)?).map_err(|_| corrupt("log size"))?;
    let frontier = read_frontier(Backend::Postgres, conn, size).await?;
    Ok(WriterState { appends, frontier, heads: HashMap::new() })
}

/// Brings a writer's state up to the log as committed now: the leaves appended since extend
/// the tree's edge and move their envelopes' newest events. Leaves commit together with the
/// size, so those after the writer's size are consecutive; anything else (or a writer far
/// behind) reads the edge afresh.
async fn catch_up(conn: &mut AnyConnection, mut state: WriterState) -> Result<WriterState, RepoError> {
    let from = to_i64(state.frontier.size())?;
    let rows =
        sqlx::query("SELECT seq, envelope_id, leaf_hash FROM audit_leaves WHERE seq >= $1 ORDER BY seq LIMIT $2")
            .bind(from)
            .bind(CATCH_UP_MAX)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
    if rows.is_empty() || rows.len() as i64 >= CATCH_UP_MAX {
        return read_writer_state(conn).await;
    }
    for (seq, r) in (from..).zip(&rows) {
        if r.try_get::<i64, _>("seq").map_err(db)? != seq {
            return read_writer_state(conn).await;
        }
        state.frontier.push(hash_column(r, "leaf_hash")?);
        if let Some(env) = r.try_get::<Option<String>, _>("envelope_id").map_err(db)? {
            state.heads.insert(env, seq);
        }
    }
    Ok(state)
}

/// What a predicted append came to.
enum Predicted {
    Appended((u64, StoredCheckpoint, WriterState)),
    /// The remembered state was stale (or the prologue failed); nothing was written.
    Stale(Batch),
}

#[async_trait::async_trait]
impl AuditStore for SqlRepository {
    async fn append_leaves(
        &self,
        leaves: Vec<NewLeaf>,
        sign: CheckpointSigner<'_>,
        now_unix_ms: i64,
    ) -> Result<(u64, StoredCheckpoint), RepoError> {
        if leaves.is_empty() {
            return self.checkpoint_only(sign, now_unix_ms).await;
        }
        let WriterSlot { state: remembered, conn } = self.audit_writer.take();
        let mut conn = match conn {
            Some(c) => c,
            None => {
                let mut c = self.pool.acquire().await.map_err(db)?;
                // The writer's connection may be dropped inside a transaction it opened itself
                // (see `append_predicted`); closing it then rolls that back.
                c.close_on_drop();
                c
            }
        };
        let batch = Batch::new(leaves)?;
        let outcome = match remembered {
            Some(state) if self.backend == Backend::Sqlite => {
                match append_predicted(&mut conn, state, batch, sign, now_unix_ms).await? {
                    Predicted::Appended(done) => done,
                    Predicted::Stale(batch) => {
                        append_checked(self.backend, &mut conn, None, batch, sign, now_unix_ms).await?
                    }
                }
            }
            remembered if self.backend == Backend::Postgres => {
                append_optimistic(&mut conn, remembered, &self.audit_writer, batch, sign, now_unix_ms).await?
            }
            remembered => append_checked(self.backend, &mut conn, remembered, batch, sign, now_unix_ms).await?,
        };
        let (first, checkpoint, mut state) = outcome;
        if state.heads.len() > HEADS_CACHED_MAX {
            state.heads.clear();
        }
        self.audit_writer.put(WriterSlot { state: Some(state), conn: Some(conn) });
        Ok((first, checkpoint))
    }

    async fn tree_size(&self) -> Result<u64, RepoError> {
        let r = sqlx::query("SELECT size FROM audit_log_head WHERE id = 1").fetch_one(&self.pool).await.map_err(db)?;
        Ok(r.try_get::<i64, _>("size").map_err(db)? as u64)
    }

    async fn tree_nodes(&self, ids: &[NodeId]) -> Result<HashMap<NodeId, [u8; 32]>, RepoError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        read_nodes(self.backend, &mut conn, ids).await
    }

    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, RepoError> {
        let r = sqlx::query("SELECT * FROM audit_checkpoints ORDER BY size DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        r.as_ref().map(checkpoint_row).transpose()
    }

    async fn checkpoint_at(&self, size: u64) -> Result<Option<StoredCheckpoint>, RepoError> {
        let r = sqlx::query("SELECT * FROM audit_checkpoints WHERE size = $1")
            .bind(to_i64(size)?)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        r.as_ref().map(checkpoint_row).transpose()
    }

    async fn checkpoints_from(&self, from: u64, limit: u32) -> Result<Vec<StoredCheckpoint>, RepoError> {
        let rows = sqlx::query("SELECT * FROM audit_checkpoints WHERE size >= $1 ORDER BY size LIMIT $2")
            .bind(to_i64(from)?)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(checkpoint_row).collect()
    }

    async fn leaves_from(&self, from: u64, limit: u32) -> Result<Vec<StoredLeaf>, RepoError> {
        let rows = sqlx::query("SELECT * FROM audit_leaves WHERE seq >= $1 ORDER BY seq LIMIT $2")
            .bind(to_i64(from)?)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(leaf_row).collect()
    }

    async fn envelope_leaves(&self, envelope: EnvelopeId, from: u64) -> Result<Vec<StoredLeaf>, RepoError> {
        // Walk the envelope's chain from its newest event back to `from`, in one statement.
        let rows = sqlx::query(
            "WITH RECURSIVE chain(seq) AS ( \
                 SELECT last_seq FROM audit_envelope_heads WHERE envelope_id = $1 \
                 UNION ALL \
                 SELECT l.prev_in_envelope FROM audit_leaves l JOIN chain c ON l.seq = c.seq \
                 WHERE l.prev_in_envelope IS NOT NULL AND l.prev_in_envelope >= $2) \
             SELECT l.* FROM audit_leaves l JOIN chain c ON l.seq = c.seq WHERE l.seq >= $2 ORDER BY l.seq",
        )
        .bind(envelope.to_string())
        .bind(to_i64(from)?)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(leaf_row).collect()
    }

    async fn log_key(&self) -> Result<Option<LogKeyRecord>, RepoError> {
        let r = sqlx::query("SELECT * FROM audit_log_key WHERE id = 1").fetch_optional(&self.pool).await.map_err(db)?;
        r.map(|r| {
            Ok(LogKeyRecord {
                origin: r.try_get("origin").map_err(db)?,
                verifier_key: r.try_get("verifier_key").map_err(db)?,
                kek_key_id: r.try_get("kek_key_id").map_err(db)?,
                kek_version: r.try_get::<i64, _>("kek_version").map_err(db)? as u32,
                wrapped_seed: r.try_get("wrapped_seed").map_err(db)?,
                created_unix_ms: r.try_get("created_ms").map_err(db)?,
            })
        })
        .transpose()
    }

    async fn insert_log_key(&self, k: &LogKeyRecord) -> Result<(), RepoError> {
        sqlx::query(
            "INSERT INTO audit_log_key (id, origin, verifier_key, kek_key_id, kek_version, wrapped_seed, created_ms) \
             VALUES (1, $1, $2, $3, $4, $5, $6)",
        )
        .bind(&k.origin)
        .bind(&k.verifier_key)
        .bind(&k.kek_key_id)
        .bind(i64::from(k.kek_version))
        .bind(k.wrapped_seed.clone())
        .bind(k.created_unix_ms)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_lives_in_the_row_of_its_last_leaf() {
        assert_eq!(completing_seq(&NodeId { level: 0, index: 5 }), Some(5));
        assert_eq!(completing_seq(&NodeId { level: 1, index: 0 }), Some(1));
        assert_eq!(completing_seq(&NodeId { level: 3, index: 2 }), Some(23));
        assert_eq!(completing_seq(&NodeId { level: 63, index: 5 }), None);
        assert_eq!(placeholders(Backend::Postgres, 3, 3), "$3, $4, $5");
        assert_eq!(placeholders(Backend::Sqlite, 3, 3), "?, ?, ?");
        let shapes = |mut n: usize| {
            let mut out = Vec::new();
            while n > 0 {
                out.push(chunk_rows(n));
                n -= chunk_rows(n);
            }
            out
        };
        assert_eq!(shapes(240), [240]);
        assert_eq!(shapes(150), [144, 6]);
        assert_eq!(shapes(600), [256, 256, 88]);
        assert_eq!(shapes(1), [1]);
    }
}
