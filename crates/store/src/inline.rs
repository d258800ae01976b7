//! Hot reads on SQLite, made inline.
//!
//! sqlx runs each SQLite connection on a thread of its own and hands every query to it over a
//! channel; for a read that SQLite answers in microseconds the two thread wake-ups cost ten
//! times the query (issue 7's benchmark: an authenticated `GET /api/v1/envelopes/{id}` made five
//! such reads). The reads on every request's path (the credential, the envelope, its recipients,
//! fields and key) are therefore made here, on the calling thread, through read-only rusqlite
//! connections to the same file. In WAL mode a reader never waits for the writer and each
//! statement sees the last commit, so nothing changes for consistency. A read that fails here
//! (the file busy beyond a few milliseconds, anything unexpected) is made again through the pool.
//!
//! PostgreSQL has no such path: its queries cross the network whatever the driver.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use sigillum_core::RepoError;
use sqlx::any::AnyRow;
use sqlx::Row as _;

use crate::sql::{db, SqlRepository};

/// A value a column can be read as, on both drivers.
pub(crate) trait ColumnValue:
    for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + rusqlite::types::FromSql
{
}
impl<T> ColumnValue for T where T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + rusqlite::types::FromSql
{}

/// A result row of either driver, read by column name; the row functions (`envelope_row`, …)
/// are written once against it.
pub(crate) trait Columns {
    fn col<T: ColumnValue>(&self, name: &str) -> Result<T, RepoError>;
}

impl Columns for AnyRow {
    fn col<T: ColumnValue>(&self, name: &str) -> Result<T, RepoError> {
        self.try_get(name).map_err(db)
    }
}

impl Columns for rusqlite::Row<'_> {
    fn col<T: ColumnValue>(&self, name: &str) -> Result<T, RepoError> {
        self.get(name).map_err(|e| RepoError::Unavailable(format!("database: column {name}: {}", inline_kind(&e))))
    }
}

fn inline_kind(e: &rusqlite::Error) -> &'static str {
    match e {
        rusqlite::Error::InvalidColumnType(..) => "unexpected type",
        rusqlite::Error::InvalidColumnName(_) => "no such column",
        rusqlite::Error::SqliteFailure(..) => "sqlite failure",
        _ => "error",
    }
}

/// How long an inline read waits for a locked file before it hands over to the pool.
const BUSY_WAIT: Duration = Duration::from_millis(20);
/// Idle connections kept for reuse (more are opened under load and closed after).
const IDLE_KEPT: usize = 8;

/// Read-only connections to the SQLite file of the pool.
pub(crate) struct InlineReads {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
}

impl InlineReads {
    /// For the SQLite database at `path`; `None` for an in-memory database (another connection
    /// would see another, empty database).
    pub(crate) fn new(path: PathBuf) -> Option<Self> {
        let name = path.to_string_lossy();
        if name.is_empty() || name == ":memory:" || name.starts_with("file::memory:") {
            return None;
        }
        Some(Self { path, idle: Mutex::new(Vec::new()) })
    }

    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        use rusqlite::OpenFlags;
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_WAIT)?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(conn)
    }

    fn run<T>(&self, read: impl FnOnce(&rusqlite::Connection) -> Result<T, RepoError>) -> Option<T> {
        let reused = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match reused {
            Some(c) => c,
            None => self.open().ok()?,
        };
        let out = read(&conn).ok();
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < IDLE_KEPT {
                idle.push(conn);
            }
        }
        out
    }
}

/// Runs `sql` with `params` and reads every row with `row`.
pub(crate) fn all<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
    row: impl Fn(&rusqlite::Row<'_>) -> Result<T, RepoError>,
) -> Result<Vec<T>, RepoError> {
    let failed = |e: rusqlite::Error| RepoError::Unavailable(format!("database: {}", inline_kind(&e)));
    let mut stmt = conn.prepare_cached(sql).map_err(failed)?;
    let mut rows = stmt.query(params).map_err(failed)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(failed)? {
        out.push(row(r)?);
    }
    Ok(out)
}

/// As [`all`], for at most one row.
pub(crate) fn optional<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
    row: impl Fn(&rusqlite::Row<'_>) -> Result<T, RepoError>,
) -> Result<Option<T>, RepoError> {
    Ok(all(conn, sql, params, row)?.into_iter().next())
}

impl SqlRepository {
    /// Runs `read` inline when this repository is on a SQLite file; `None` otherwise or when the
    /// read failed, and the caller then makes it through the pool.
    pub(crate) fn read_inline<T>(&self, read: impl FnOnce(&rusqlite::Connection) -> Result<T, RepoError>) -> Option<T> {
        self.inline.as_ref()?.run(read)
    }
}
