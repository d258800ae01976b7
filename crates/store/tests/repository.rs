//! One repository suite, run against SQLite and PostgreSQL.

use sigillum_core::ports::{BlobRecord, EnvelopeKey, KeyUse, Organisation};
use sigillum_core::{EnvelopeId, OrgId, RepoError, Repository};
use sigillum_store::SqlRepository;

fn key_use(purpose: &str, env: Option<EnvelopeId>) -> KeyUse {
    KeyUse {
        kek_key_id: "org:x".into(),
        kek_version: 1,
        purpose: purpose.into(),
        envelope_id: env,
        node: "n1".into(),
        at_unix_ms: 7,
    }
}

/// A wrapped key of `env` under version 1 of its organisation's KEK.
fn key_v1(env: EnvelopeId, org: OrgId, wrapped: Vec<u8>) -> EnvelopeKey {
    EnvelopeKey {
        envelope_id: env,
        org_id: org,
        dek_id: [9; 16],
        kek_key_id: org.kek_id(),
        kek_version: 1,
        wrapped,
        created_unix_ms: 5,
    }
}

async fn suite(repo: &SqlRepository) {
    repo.health().await.unwrap();
    let org = Organisation { id: OrgId::new(), name: "Acme AG".into(), created_unix_ms: 1_700_000_000_000 };
    repo.insert_organisation(&org).await.unwrap();
    assert_eq!(repo.get_organisation(org.id).await.unwrap(), org);
    assert!(matches!(repo.insert_organisation(&org).await, Err(RepoError::Conflict(_))));
    assert!(matches!(repo.get_organisation(OrgId::new()).await, Err(RepoError::NotFound)));

    let env = EnvelopeId::new();
    let key = key_v1(env, org.id, vec![1, 2, 3, 0, 255]);
    repo.insert_envelope_key(&key, &key_use("wrap", Some(env))).await.unwrap();
    assert_eq!(repo.get_envelope_key(env).await.unwrap(), key);
    assert_eq!(repo.list_envelope_keys(Some(org.id)).await.unwrap(), vec![key.clone()]);
    assert_eq!(repo.list_envelope_keys(Some(OrgId::new())).await.unwrap(), vec![]);

    // The insert is atomic with its key-use record: a failing insert leaves no use behind.
    let uses_before = repo.list_key_uses(None).await.unwrap().len();
    assert!(repo.insert_envelope_key(&key, &key_use("wrap", Some(env))).await.is_err());
    assert_eq!(repo.list_key_uses(None).await.unwrap().len(), uses_before);
    // A key for an organisation that does not exist is refused.
    let orphan = EnvelopeKey { envelope_id: EnvelopeId::new(), org_id: OrgId::new(), ..key.clone() };
    assert!(matches!(repo.insert_envelope_key(&orphan, &key_use("wrap", None)).await, Err(RepoError::Conflict(_))));

    // Rewrap is a compare-and-swap on the KEK version.
    repo.replace_wrapped_dek(env, 1, 2, &[4, 5, 6]).await.unwrap();
    assert!(matches!(repo.replace_wrapped_dek(env, 1, 3, &[7]).await, Err(RepoError::Conflict(_))));
    let k2 = repo.get_envelope_key(env).await.unwrap();
    assert_eq!((k2.kek_version, k2.wrapped.as_slice()), (2, &[4u8, 5, 6][..]));

    let blob = BlobRecord {
        key: format!("env/{}/original/v1", env.0.simple()),
        envelope_id: env,
        kind: "original".into(),
        version: 1,
        plaintext_len: 10_000_000_000,
        stored_len: 10_000_610_394,
        sha256: "ab".repeat(32),
        created_unix_ms: 6,
    };
    repo.insert_blob(&blob).await.unwrap();
    assert_eq!(repo.get_blob(env, "original", 1).await.unwrap(), blob);
    assert!(matches!(repo.get_blob(env, "original", 2).await, Err(RepoError::NotFound)));
    assert!(matches!(repo.insert_blob(&blob).await, Err(RepoError::Conflict(_))));
    assert_eq!(repo.list_blobs(env).await.unwrap(), vec![blob.clone()]);
    // Replacing points the record at new content and returns the old one.
    let replaced =
        BlobRecord { key: format!("{}-b", blob.key), sha256: "cd".repeat(32), plaintext_len: 3, ..blob.clone() };
    assert_eq!(repo.replace_blob(&replaced).await.unwrap(), blob);
    assert_eq!(repo.get_blob(env, "original", 1).await.unwrap(), replaced);
    assert!(matches!(
        repo.replace_blob(&BlobRecord { version: 9, ..replaced.clone() }).await,
        Err(RepoError::NotFound)
    ));

    repo.record_key_use(&key_use("open_blob", Some(env))).await.unwrap();
    let uses = repo.list_key_uses(Some(env)).await.unwrap();
    assert_eq!(uses.iter().map(|u| u.purpose.as_str()).collect::<Vec<_>>(), ["wrap", "open_blob"]);

    // Shredding one envelope removes its wrapped key and blob records, nothing else.
    let other = EnvelopeId::new();
    repo.insert_envelope_key(&EnvelopeKey { envelope_id: other, ..key.clone() }, &key_use("wrap", Some(other)))
        .await
        .unwrap();
    repo.delete_envelope_key(env).await.unwrap();
    assert!(matches!(repo.get_envelope_key(env).await, Err(RepoError::NotFound)));
    assert!(repo.list_blobs(env).await.unwrap().is_empty());
    assert!(repo.get_envelope_key(other).await.is_ok());
    repo.delete_envelope_key(other).await.unwrap();
    repo.delete_organisation(org.id).await.unwrap();
    assert!(repo.list_organisations().await.unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_repository_suite() {
    let dir = tempfile::tempdir().unwrap();
    let repo = SqlRepository::connect(&format!("sqlite://{}/t.db", dir.path().display())).await.unwrap();
    assert_eq!(repo.backend(), "sqlite");
    suite(&repo).await;
}

/// On a SQLite file the reads on every request's path are made inline, not through the pool
/// (see `inline.rs`): they are answered while every pooled connection is taken, and each one
/// sees the last commit.
#[tokio::test]
async fn sqlite_hot_reads_do_not_wait_for_the_pool_and_see_each_commit() {
    let dir = tempfile::tempdir().unwrap();
    let repo = SqlRepository::connect(&format!("sqlite://{}/t.db", dir.path().display())).await.unwrap();
    let org = Organisation { id: OrgId::new(), name: "Inline AG".into(), created_unix_ms: 1 };
    repo.insert_organisation(&org).await.unwrap();
    let env = EnvelopeId::new();
    let key = key_v1(env, org.id, vec![8; 40]);
    repo.insert_envelope_key(&key, &key_use("wrap", Some(env))).await.unwrap();

    let quick = std::time::Duration::from_secs(2);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(repo.pool().acquire().await.unwrap());
    }
    // The pool is exhausted: a pooled query would wait for its 10 s acquire timeout.
    assert!(tokio::time::timeout(quick, repo.get_organisation(org.id)).await.is_err(), "the pool is taken");
    assert_eq!(tokio::time::timeout(quick, repo.get_envelope_key(env)).await.unwrap().unwrap(), key);
    let unknown = tokio::time::timeout(quick, repo.get_envelope_key(EnvelopeId::new())).await.unwrap();
    assert!(matches!(unknown, Err(RepoError::NotFound)));
    drop(held);

    // A commit through the pool is seen by the next inline read.
    repo.replace_wrapped_dek(env, 1, 2, &[9; 40]).await.unwrap();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(repo.pool().acquire().await.unwrap());
    }
    let rewrapped = tokio::time::timeout(quick, repo.get_envelope_key(env)).await.unwrap().unwrap();
    assert_eq!((rewrapped.kek_version, rewrapped.wrapped), (2, vec![9; 40]));
}

/// Transactions that read and then write (replacing a blob reads the old record first), run at
/// once from many tasks, all succeed: on SQLite each waits for the write lock instead of failing
/// with "database is locked" when another committed between its read and its write.
async fn concurrent_read_then_write_transactions(repo: std::sync::Arc<SqlRepository>) {
    let org = Organisation { id: OrgId::new(), name: "Busy AG".into(), created_unix_ms: 1 };
    repo.insert_organisation(&org).await.unwrap();
    let mut tasks = Vec::new();
    for task in 0..12 {
        let repo = repo.clone();
        let env = EnvelopeId::new();
        repo.insert_envelope_key(&key_v1(env, org.id, vec![task; 40]), &key_use("wrap", Some(env))).await.unwrap();
        let first = BlobRecord {
            key: format!("env/{}/original/v1", env.0.simple()),
            envelope_id: env,
            kind: "original".into(),
            version: 1,
            plaintext_len: 1,
            stored_len: 1,
            sha256: "00".repeat(32),
            created_unix_ms: 1,
        };
        repo.insert_blob(&first).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for round in 1..=20u64 {
                let next = BlobRecord { key: format!("{}-{round}", first.key), plaintext_len: round, ..first.clone() };
                if let Err(e) = repo.replace_blob(&next).await {
                    failures.push(format!("round {round}: {e}"));
                }
            }
            (env, failures)
        }));
    }
    for t in tasks {
        let (env, failures) = t.await.unwrap();
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(repo.get_blob(env, "original", 1).await.unwrap().plaintext_len, 20);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_read_then_write_transactions_wait_for_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let repo = SqlRepository::connect(&format!("sqlite://{}/t.db", dir.path().display())).await.unwrap();
    concurrent_read_then_write_transactions(std::sync::Arc::new(repo)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_read_then_write_transactions_wait_for_each_other() {
    let repo = SqlRepository::connect(&sigillum_testkit::postgres_database().await).await.unwrap();
    concurrent_read_then_write_transactions(std::sync::Arc::new(repo)).await;
}

#[tokio::test]
async fn postgres_repository_suite() {
    let url = sigillum_testkit::postgres_database().await;
    let repo = SqlRepository::connect(&url).await.unwrap();
    assert_eq!(repo.backend(), "postgres");
    suite(&repo).await;
}

#[tokio::test]
async fn migrations_are_idempotent_and_data_survives_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let org = Organisation { id: OrgId::new(), name: "Keep".into(), created_unix_ms: 1 };
    {
        let repo = SqlRepository::connect(&url).await.unwrap();
        repo.insert_organisation(&org).await.unwrap();
        repo.close().await;
    }
    let repo = SqlRepository::connect(&url).await.unwrap();
    assert_eq!(repo.get_organisation(org.id).await.unwrap(), org);

    let pg = sigillum_testkit::postgres_database().await;
    SqlRepository::connect(&pg).await.unwrap().close().await;
    let repo = SqlRepository::connect(&pg).await.unwrap();
    repo.insert_organisation(&org).await.unwrap();
    assert_eq!(repo.get_organisation(org.id).await.unwrap(), org);
}

#[tokio::test]
async fn bad_database_urls_are_clear_errors() {
    assert!(matches!(SqlRepository::connect("mysql://x").await, Err(RepoError::Unavailable(_))));
    let r = SqlRepository::connect("postgres://postgres@127.0.0.1:1/none").await;
    assert!(matches!(r, Err(RepoError::Unavailable(_))));
}
