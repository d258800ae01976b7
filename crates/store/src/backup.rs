//! Logical snapshots of the metadata database, for `sigillum backup create|restore`.
//!
//! A dump reads every table inside one read-only transaction (PostgreSQL: `REPEATABLE READ`;
//! SQLite: one read transaction on the WAL), so it is a consistent cut even while nodes keep
//! writing. Values keep their kind (integer, real, text, bytes, null), so a dump loads into
//! either backend. A load goes into a freshly migrated database of the same schema version, in
//! one transaction: all or nothing. Blobs are not in here: they are ciphertext already, and the
//! caller keeps a manifest of them beside the dump.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sigillum_core::RepoError;
use sqlx::any::AnyRow;
use sqlx::{Executor, Row, ValueRef};

use crate::sql::{db, Backend, SqlRepository};

/// One stored value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    /// Standard base64.
    Bytes(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableDump {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// Every table of the database at one moment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatabaseDump {
    /// `sqlite` or `postgres`: where it came from.
    pub backend: String,
    /// The newest schema migration applied.
    pub schema_version: i64,
    pub tables: Vec<TableDump>,
}

impl DatabaseDump {
    pub fn rows(&self) -> usize {
        self.tables.iter().map(|t| t.rows.len()).sum()
    }

    pub fn table(&self, name: &str) -> Option<&TableDump> {
        self.tables.iter().find(|t| t.name == name)
    }
}

/// The migrations table: part of the schema, not of the data.
const MIGRATIONS: &str = "_sqlx_migrations";
/// Tables a migration fills (a fresh database has these rows already; a load replaces them).
const SEEDED: [&str; 1] = ["audit_log_head"];

/// Why a dump could not be taken or loaded.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("{0}")]
    Invalid(String),
}

fn invalid(what: String) -> BackupError {
    BackupError::Invalid(what)
}

/// Only plain identifiers are ever put into SQL text (they come from the catalogue, and a dump's
/// names must match the target's catalogue anyway).
fn ident(name: &str) -> Result<String, BackupError> {
    if !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Ok(format!("\"{name}\""))
    } else {
        Err(invalid(format!("unexpected identifier {name:?}")))
    }
}

fn cell(row: &AnyRow, i: usize) -> Result<Cell, BackupError> {
    use sqlx::any::AnyTypeInfoKind as K;
    let raw = row.try_get_raw(i).map_err(db)?;
    if raw.is_null() {
        return Ok(Cell::Null);
    }
    let kind = raw.type_info().kind();
    Ok(match kind {
        K::Null => Cell::Null,
        K::Bool => Cell::Int(i64::from(row.try_get::<bool, _>(i).map_err(db)?)),
        K::SmallInt => Cell::Int(i64::from(row.try_get::<i16, _>(i).map_err(db)?)),
        K::Integer => Cell::Int(i64::from(row.try_get::<i32, _>(i).map_err(db)?)),
        K::BigInt => Cell::Int(row.try_get::<i64, _>(i).map_err(db)?),
        K::Real => Cell::Real(f64::from(row.try_get::<f32, _>(i).map_err(db)?)),
        K::Double => Cell::Real(row.try_get::<f64, _>(i).map_err(db)?),
        K::Text => Cell::Text(row.try_get::<String, _>(i).map_err(db)?),
        K::Blob => Cell::Bytes(B64.encode(row.try_get::<Vec<u8>, _>(i).map_err(db)?)),
    })
}

impl SqlRepository {
    async fn tables(&self, conn: &mut sqlx::AnyConnection) -> Result<Vec<String>, BackupError> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            }
            Backend::Postgres => {
                "SELECT tablename::text AS name FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
            }
        };
        let rows = sqlx::query(sql).fetch_all(&mut *conn).await.map_err(db)?;
        let mut names = Vec::new();
        for r in &rows {
            let name: String = r.try_get("name").map_err(db)?;
            if name != MIGRATIONS {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// The columns of `table`, in order, each with its SQL type (PostgreSQL) or `""` (SQLite,
    /// whose columns take any value).
    async fn columns(&self, conn: &mut sqlx::AnyConnection, table: &str) -> Result<Vec<(String, String)>, BackupError> {
        let rows = match self.backend {
            Backend::Sqlite => sqlx::query("SELECT name, '' AS ty FROM pragma_table_info($1) ORDER BY cid"),
            Backend::Postgres => sqlx::query(
                "SELECT column_name::text AS name, data_type::text AS ty FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            ),
        }
        .bind(table)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        let mut out = Vec::new();
        for r in &rows {
            out.push((r.try_get("name").map_err(db)?, r.try_get("ty").map_err(db)?));
        }
        Ok(out)
    }

    async fn schema_version(&self, conn: &mut sqlx::AnyConnection) -> Result<i64, BackupError> {
        let r =
            sqlx::query("SELECT MAX(version) AS v FROM _sqlx_migrations").fetch_one(&mut *conn).await.map_err(db)?;
        Ok(r.try_get::<Option<i64>, _>("v").map_err(db)?.unwrap_or(0))
    }

    /// A consistent dump of every table.
    pub async fn dump(&self) -> Result<DatabaseDump, BackupError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        if self.backend == Backend::Postgres {
            tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").await.map_err(db)?;
        }
        let schema_version = self.schema_version(&mut tx).await?;
        let mut tables = Vec::new();
        for name in self.tables(&mut tx).await? {
            let columns: Vec<String> = self.columns(&mut tx, &name).await?.into_iter().map(|(c, _)| c).collect();
            let list = columns.iter().map(|c| ident(c)).collect::<Result<Vec<_>, _>>()?.join(", ");
            let rows =
                sqlx::query(&format!("SELECT {list} FROM {}", ident(&name)?)).fetch_all(&mut *tx).await.map_err(db)?;
            let rows =
                rows.iter().map(|r| (0..columns.len()).map(|i| cell(r, i)).collect()).collect::<Result<_, _>>()?;
            tables.push(TableDump { name, columns, rows });
        }
        tx.commit().await.map_err(db)?;
        let backend = match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        Ok(DatabaseDump { backend: backend.into(), schema_version, tables })
    }

    /// Parent tables before the tables that reference them (PostgreSQL checks each reference at
    /// once; SQLite's checks are deferred to the commit instead).
    async fn load_order(&self, conn: &mut sqlx::AnyConnection, tables: &[String]) -> Result<Vec<String>, BackupError> {
        if self.backend == Backend::Sqlite {
            return Ok(tables.to_vec());
        }
        let rows = sqlx::query(
            "SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent FROM pg_constraint \
             WHERE contype = 'f' AND connamespace = current_schema()::regnamespace",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        let mut edges: Vec<(String, String)> = Vec::new();
        for r in &rows {
            let (child, parent): (String, String) = (r.try_get("child").map_err(db)?, r.try_get("parent").map_err(db)?);
            let bare = |s: String| s.trim_matches('"').rsplit('.').next().unwrap_or_default().to_owned();
            let (child, parent) = (bare(child), bare(parent));
            if child != parent {
                edges.push((child, parent));
            }
        }
        let mut order: Vec<String> = Vec::new();
        let mut left: Vec<String> = tables.to_vec();
        while !left.is_empty() {
            let ready: Vec<String> = left
                .iter()
                .filter(|t| edges.iter().all(|(c, p)| c != *t || order.contains(p) || !left.contains(p)))
                .cloned()
                .collect();
            if ready.is_empty() {
                return Err(invalid("the tables reference each other in a cycle".into()));
            }
            left.retain(|t| !ready.contains(t));
            order.extend(ready);
        }
        Ok(order)
    }

    /// Loads `dump` into this database, which must hold no data yet (freshly migrated), in one
    /// transaction. The dump must be of this schema version.
    pub async fn load(&self, dump: &DatabaseDump) -> Result<(), BackupError> {
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Sqlite {
            tx.execute("PRAGMA defer_foreign_keys = ON").await.map_err(db)?;
        }
        let version = self.schema_version(&mut tx).await?;
        if dump.schema_version != version {
            return Err(invalid(format!(
                "the backup is of schema version {}, this database of {version}: restore with the release that made it",
                dump.schema_version
            )));
        }
        let tables = self.tables(&mut tx).await?;
        for t in &tables {
            if SEEDED.contains(&t.as_str()) {
                continue;
            }
            let r = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {}", ident(t)?))
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            if r.try_get::<i64, _>("n").map_err(db)? > 0 {
                return Err(invalid(format!("the database is not empty (table {t} has rows): restore into a new one")));
            }
        }
        for t in SEEDED.iter().filter(|t| tables.iter().any(|x| x == *t)) {
            tx.execute(format!("DELETE FROM {}", ident(t)?).as_str()).await.map_err(db)?;
        }
        for d in &dump.tables {
            if !tables.contains(&d.name) {
                return Err(invalid(format!("the backup has a table {:?} this schema does not", d.name)));
            }
        }
        for name in self.load_order(&mut tx, &tables).await? {
            let Some(d) = dump.table(&name) else { continue };
            let target = self.columns(&mut tx, &name).await?;
            // Each column's type in the target (PostgreSQL), for typed nulls.
            let mut casts = Vec::new();
            for c in &d.columns {
                let ty = target
                    .iter()
                    .find(|(n, _)| n == c)
                    .map(|(_, ty)| ty.clone())
                    .ok_or_else(|| invalid(format!("the backup has a column {name}.{c} this schema does not")))?;
                casts.push(ty);
            }
            let cols = d.columns.iter().map(|c| ident(c)).collect::<Result<Vec<_>, _>>()?.join(", ");
            let params = (1..=casts.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let sql = format!("INSERT INTO {} ({cols}) VALUES ({params})", ident(&name)?);
            for row in &d.rows {
                if row.len() != d.columns.len() {
                    return Err(invalid(format!(
                        "a row of {name} has {} values for {} columns",
                        row.len(),
                        d.columns.len()
                    )));
                }
                let mut q = sqlx::query(&sql);
                for (v, ty) in row.iter().zip(&casts) {
                    q = match v {
                        // A null of the column's own type (PostgreSQL checks parameter types).
                        Cell::Null => match ty.as_str() {
                            "bigint" | "integer" | "smallint" => q.bind(None::<i64>),
                            "bytea" => q.bind(None::<Vec<u8>>),
                            "double precision" | "real" => q.bind(None::<f64>),
                            _ => q.bind(None::<String>),
                        },
                        Cell::Int(i) => q.bind(*i),
                        Cell::Real(f) => q.bind(*f),
                        Cell::Text(s) => q.bind(s.clone()),
                        Cell::Bytes(b) => {
                            q.bind(B64.decode(b).map_err(|_| invalid(format!("bad bytes in table {name}")))?)
                        }
                    };
                }
                q.execute(&mut *tx)
                    .await
                    .map_err(|e| invalid(format!("a row of table {name} does not load: {}", db(e))))?;
            }
        }
        if self.backend == Backend::Postgres {
            // Serial columns continue after the loaded rows.
            let serials = sqlx::query(
                "SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND column_default LIKE 'nextval(%'",
            )
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            for s in serials {
                let (t, c): (String, String) = (s.try_get("t").map_err(db)?, s.try_get("c").map_err(db)?);
                let sql = format!(
                    "SELECT setval(pg_get_serial_sequence('{t}', '{c}'), COALESCE((SELECT MAX({}) FROM {}), 0) + 1, false)",
                    ident(&c)?,
                    ident(&t)?
                );
                tx.execute(sql.as_str()).await.map_err(db)?;
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }
}
