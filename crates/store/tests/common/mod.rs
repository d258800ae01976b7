//! Shared stacks for the store's integration tests: the embedded one (SQLite + filesystem + local
//! keyring) and the production one (PostgreSQL + S3 + SoftHSM2).
#![allow(dead_code)]

use std::sync::Arc;

use sigillum_core::ports::SystemClock;
use sigillum_core::{EnvelopeId, Vault};
use sigillum_store::{open_blob_store, SqlRepository};

pub struct Stack {
    pub vault: Vault,
    pub repo: Arc<SqlRepository>,
    /// Where the SQLite database lives (embedded stack only).
    pub db_url: String,
    pub dir: tempfile::TempDir,
}

pub async fn local_stack() -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let repo = Arc::new(SqlRepository::connect(&db_url).await.unwrap());
    let blobs = open_blob_store(&format!("file://{}/blobs", dir.path().display())).unwrap();
    let keys = sigillum_kms::open(&format!("local:{}/keyring", dir.path().display()), None, None).unwrap();
    let vault = Vault::new(repo.clone(), blobs, keys, Arc::new(SystemClock), "test-node".into());
    Stack { vault, repo, db_url, dir }
}

/// The local stack with one organisation and one envelope key.
pub async fn local_stack_with_envelope() -> (Stack, EnvelopeId) {
    let s = local_stack().await;
    let env = s.new_envelope().await;
    (s, env)
}

pub async fn server_stack() -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let db_url = sigillum_testkit::postgres_database().await;
    let repo = Arc::new(SqlRepository::connect(&db_url).await.unwrap());
    let blobs = open_blob_store(&sigillum_testkit::s3_blob_url()).unwrap();
    let hsm = sigillum_testkit::softhsm();
    let keys = sigillum_kms::open(&hsm.kms_spec(), None, Some(&hsm.pin)).unwrap();
    let vault = Vault::new(repo.clone(), blobs, keys, Arc::new(SystemClock), "test-node".into());
    Stack { vault, repo, db_url, dir }
}

impl Stack {
    /// A new organisation with one envelope key.
    pub async fn new_envelope(&self) -> EnvelopeId {
        let org = self.vault.create_organisation("Acme").await.unwrap();
        let env = EnvelopeId::new();
        self.vault.create_envelope_key(org.id, env).await.unwrap();
        env
    }
}

/// Another "process" on the same databases and key manager as `s` (its own pools and caches).
pub async fn same_stores_as(s: &Stack) -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let repo = Arc::new(SqlRepository::connect(&s.db_url).await.unwrap());
    let vault = Vault::new(
        repo.clone(),
        s.vault.blob_store().clone(),
        s.vault.key_manager().clone(),
        Arc::new(SystemClock),
        "other-node".into(),
    );
    Stack { vault, repo, db_url: s.db_url.clone(), dir }
}

/// A clock the test moves.
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn at(unix_ms: i64) -> Self {
        Self(std::sync::atomic::AtomicI64::new(unix_ms))
    }
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl sigillum_core::ports::Clock for ManualClock {
    fn now_unix_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}
