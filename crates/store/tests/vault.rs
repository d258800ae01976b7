//! The vault (encryption at rest) over real adapters, in two full stacks:
//! SQLite + filesystem + local keyring, and PostgreSQL + S3 + SoftHSM2.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use sigillum_core::vault::blob_key;
use sigillum_core::{BlobStore, EnvelopeId, VaultError};
use sigillum_crypto::field::FieldContext;
use sigillum_crypto::{BlobKind, WrappedDek};

mod common;
use common::{local_stack, local_stack_with_envelope, server_stack, Stack};

fn body(data: &[u8], piece: usize) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send {
    let pieces: Vec<_> = data.chunks(piece).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    futures::stream::iter(pieces)
}

async fn raw(store: &Arc<dyn BlobStore>, key: &str) -> Vec<u8> {
    let mut s = store.get(key).await.unwrap();
    let mut out = Vec::new();
    while let Some(b) = s.next().await {
        out.extend_from_slice(&b.unwrap());
    }
    out
}

async fn put_raw(store: &Arc<dyn BlobStore>, key: &str, data: Vec<u8>) {
    let mut w = store.begin(key).await.unwrap();
    w.write(Bytes::from(data)).await.unwrap();
    w.commit().await.unwrap();
}

async fn suite(s: Stack) {
    let v = &s.vault;
    let org = v.create_organisation("Acme AG").await.unwrap();
    let env = EnvelopeId::new();
    v.create_envelope_key(org.id, env).await.unwrap();
    let doc: Vec<u8> = (0..1_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    let rec = v.put_blob(env, "original", 1, body(&doc, 70_000)).await.unwrap();
    assert_eq!(rec.plaintext_len, doc.len() as u64);
    assert_eq!(rec.sha256, hex::encode(Sha256::digest(&doc)));
    assert_eq!(v.read_blob(env, "original", 1).await.unwrap(), doc);
    let mut streamed = Vec::new();
    let mut s = v.open_blob(env, "original", 1).await.unwrap();
    while let Some(piece) = s.next().await {
        streamed.extend_from_slice(&piece.unwrap());
    }
    assert_eq!(streamed, doc, "streamed read");

    // Stored bytes are ciphertext: no 64-byte window of the plaintext appears in them.
    let stored = raw(v.blob_store(), &rec.key).await;
    assert!(!stored.windows(64).any(|w| w == &doc[1000..1064]));

    // Field values.
    let cell = FieldContext { table: "field_values", column: "value", row_id: "f1" };
    let sealed = v.seal_field(env, &cell, b"Jane Q. Public").await.unwrap();
    assert_eq!(v.open_field(env, &cell, &sealed).await.unwrap(), b"Jane Q. Public");

    // Every KEK use left a record: the wrap, and the one unwrap whose DEK every later operation
    // on this envelope reused from the cache.
    let uses = v.repository().list_key_uses(Some(env)).await.unwrap();
    let purposes: Vec<_> = uses.iter().map(|u| u.purpose.as_str()).collect();
    assert_eq!(purposes, ["wrap", "seal_blob"]);
    assert!(uses.iter().all(|u| u.node == "test-node" && u.kek_key_id == org.id.kek_id()));

    // Tampering with the stored blob is detected on read.
    let mut tampered = stored.clone();
    tampered[stored.len() / 2] ^= 0x40;
    put_raw(v.blob_store(), &rec.key, tampered).await;
    assert!(v.read_blob(env, "original", 1).await.is_err());
    let mut s = v.open_blob(env, "original", 1).await.unwrap();
    let mut failed = false;
    while let Some(piece) = s.next().await {
        failed |= piece.is_err();
    }
    assert!(failed, "streamed read of a tampered blob must end in an error");
    put_raw(v.blob_store(), &rec.key, stored.clone()).await;
    assert_eq!(v.read_blob(env, "original", 1).await.unwrap(), doc);

    // A blob swapped in from another envelope does not open.
    let env2 = EnvelopeId::new();
    v.create_envelope_key(org.id, env2).await.unwrap();
    let rec2 = v.put_blob(env2, "original", 1, body(b"second envelope", 5)).await.unwrap();
    let stored2 = raw(v.blob_store(), &rec2.key).await;
    put_raw(v.blob_store(), &rec2.key, stored.clone()).await;
    assert!(v.read_blob(env2, "original", 1).await.is_err());
    put_raw(v.blob_store(), &rec2.key, stored2).await;
    assert_eq!(v.read_blob(env2, "original", 1).await.unwrap(), b"second envelope");

    // Rotation + rewrap: DEKs move to the new KEK version; blob bytes are untouched.
    let v2 = v.key_manager().rotate_kek(&org.id.kek_id()).await.unwrap();
    let report = v.rewrap_all().await.unwrap();
    assert_eq!((report.rewrapped, report.already_current), (2, 0));
    let k = v.repository().get_envelope_key(env).await.unwrap();
    assert_eq!(k.kek_version, v2.version);
    assert_eq!(raw(v.blob_store(), &rec.key).await, stored);
    assert_eq!(v.read_blob(env, "original", 1).await.unwrap(), doc);
    assert_eq!(v.rewrap_all().await.unwrap().rewrapped, 0);

    // Crypto-shredding one envelope.
    v.shred_envelope(env2).await.unwrap();
    assert!(matches!(v.read_blob(env2, "original", 1).await, Err(VaultError::NotFound)));
    assert_eq!(v.blob_store().size(&rec2.key).await.unwrap(), None);

    // Crypto-shredding the organisation: a "backup" of the wrapped DEK and the ciphertext taken
    // before is useless afterwards, because the KEK no longer exists anywhere.
    let backup_key = v.repository().get_envelope_key(env).await.unwrap();
    let backup_blob = raw(v.blob_store(), &rec.key).await;
    v.shred_organisation(org.id).await.unwrap();
    let wrapped = WrappedDek {
        kek: sigillum_crypto::KekRef { key_id: backup_key.kek_key_id.clone(), version: backup_key.kek_version },
        wrapped: backup_key.wrapped.clone(),
    };
    assert!(v.key_manager().unwrap_dek(&wrapped).await.is_err());
    assert!(matches!(v.read_blob(env, "original", 1).await, Err(VaultError::NotFound)));
    assert!(!backup_blob.is_empty());
    assert_eq!(BlobKind::new("original").unwrap().as_str(), "original");
    assert!(rec.key.starts_with(&format!("env/{}/original/v1-", env.0.simple())));
    assert_ne!(blob_key(env, &BlobKind::new("original").unwrap(), 1).unwrap(), rec.key, "every write has its own key");
}

#[tokio::test]
async fn vault_on_sqlite_fs_local_keyring() {
    suite(local_stack().await).await;
}

#[tokio::test]
async fn vault_on_postgres_s3_softhsm() {
    suite(server_stack().await).await;
}

#[tokio::test]
async fn a_second_write_of_the_same_version_never_replaces_the_first() {
    let (s, env) = local_stack_with_envelope().await;
    let v = &s.vault;
    v.put_blob(env, "original", 1, body(b"first", 5)).await.unwrap();
    let again = v.put_blob(env, "original", 1, body(b"second", 5)).await;
    assert!(matches!(again, Err(VaultError::Repo(sigillum_core::RepoError::Conflict(_)))), "{again:?}");
    assert_eq!(v.read_blob(env, "original", 1).await.unwrap(), b"first");
    assert_eq!(v.blob_store().list("").await.unwrap().len(), 1, "the losing write's ciphertext is removed");
}

#[tokio::test]
async fn failed_upload_leaves_no_blob_and_no_record() {
    let (s, env) = local_stack_with_envelope().await;
    let v = &s.vault;
    let pieces: Vec<Result<Bytes, std::io::Error>> =
        vec![Ok(Bytes::from(vec![1u8; 600_000])), Err(std::io::Error::other("client went away"))];
    let r = v.put_blob(env, "original", 1, futures::stream::iter(pieces)).await;
    assert!(matches!(r, Err(VaultError::Input(_))));
    assert!(v.repository().list_blobs(env).await.unwrap().is_empty());
    assert!(v.blob_store().list("").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_replaced_blob_is_read_whole_and_its_old_ciphertext_is_gone() {
    let (s, env) = local_stack_with_envelope().await;
    let v = &s.vault;
    let first = v.put_blob(env, "original", 1, body(b"as uploaded, with a script", 7)).await.unwrap();
    let second = v.replace_blob(env, "original", 1, b"sanitised".to_vec()).await.unwrap();
    assert_ne!(first.key, second.key);
    assert_eq!(second.sha256, hex::encode(Sha256::digest(b"sanitised")));
    assert_eq!(v.read_blob(env, "original", 1).await.unwrap(), b"sanitised");
    assert_eq!(v.repository().get_blob(env, "original", 1).await.unwrap(), second);
    assert_eq!(v.blob_store().list("").await.unwrap(), vec![second.key.clone()], "the upload's ciphertext is removed");
    // There is nothing to replace for a version never written.
    let none = v.replace_blob(env, "original", 2, b"x".to_vec()).await;
    assert!(matches!(none, Err(VaultError::NotFound)), "{none:?}");
    assert_eq!(v.blob_store().list("").await.unwrap().len(), 1, "and no ciphertext is left behind");
}
