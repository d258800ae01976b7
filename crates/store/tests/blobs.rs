//! One blob-store suite, run against the filesystem adapter and a real S3-compatible server.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use sigillum_core::{BlobError, BlobStore};
use sigillum_store::open_blob_store;

async fn read_all(store: &Arc<dyn BlobStore>, key: &str) -> Result<Vec<u8>, BlobError> {
    let mut s = store.get(key).await?;
    let mut out = Vec::new();
    while let Some(b) = s.next().await {
        out.extend_from_slice(&b?);
    }
    Ok(out)
}

async fn suite(store: Arc<dyn BlobStore>) {
    store.health().await.unwrap();
    // A blob larger than one multipart part, written in uneven pieces.
    let data: Vec<u8> = (0..6 * 1024 * 1024 + 12345).map(|i| (i % 253) as u8).collect();
    let mut w = store.begin("env/abc/original/v1").await.unwrap();
    for piece in data.chunks(300_001) {
        w.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    // Not visible before commit.
    assert_eq!(store.size("env/abc/original/v1").await.unwrap(), None);
    assert!(matches!(store.get("env/abc/original/v1").await, Err(BlobError::NotFound)));
    assert_eq!(w.commit().await.unwrap(), data.len() as u64);
    assert_eq!(store.size("env/abc/original/v1").await.unwrap(), Some(data.len() as u64));
    assert_eq!(read_all(&store, "env/abc/original/v1").await.unwrap(), data);
    assert_eq!(store.get_range("env/abc/original/v1", 1000..1100).await.unwrap(), &data[1000..1100]);

    // An aborted write leaves nothing.
    let mut w = store.begin("env/abc/final/v1").await.unwrap();
    w.write(Bytes::from_static(b"half")).await.unwrap();
    w.abort().await.unwrap();
    assert_eq!(store.size("env/abc/final/v1").await.unwrap(), None);

    // Overwrite replaces atomically.
    let mut w = store.begin("env/abc/original/v1").await.unwrap();
    w.write(Bytes::from_static(b"second")).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(read_all(&store, "env/abc/original/v1").await.unwrap(), b"second");

    let mut w = store.begin("env/xyz/original/v1").await.unwrap();
    w.write(Bytes::from_static(b"x")).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(store.list("env/abc/").await.unwrap(), vec!["env/abc/original/v1".to_string()]);
    assert_eq!(store.list("env/").await.unwrap().len(), 2);

    store.delete("env/abc/original/v1").await.unwrap();
    store.delete("env/abc/original/v1").await.unwrap(); // idempotent
    assert!(matches!(store.get("env/abc/original/v1").await, Err(BlobError::NotFound)));

    for bad in ["../etc/passwd", "/abs", "env//x", "env/.hidden", "Env/x", "env/x\0", ""] {
        assert!(matches!(store.begin(bad).await, Err(BlobError::InvalidKey)), "{bad:?} accepted");
    }
}

#[tokio::test]
async fn fs_blob_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_blob_store(&format!("file://{}", dir.path().display())).unwrap();
    assert_eq!(store.backend(), "fs");
    suite(store).await;
}

#[tokio::test]
async fn s3_blob_suite() {
    let store = open_blob_store(&sigillum_testkit::s3_blob_url()).unwrap();
    assert_eq!(store.backend(), "s3");
    suite(store).await;
}

#[tokio::test]
async fn fs_store_clears_unfinished_writes_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let store = open_blob_store(&url).unwrap();
    let mut w = store.begin("env/a/original/v1").await.unwrap();
    w.write(Bytes::from_static(b"partial")).await.unwrap();
    std::mem::forget(w); // as if the process died mid-write
    drop(store);
    assert_eq!(std::fs::read_dir(dir.path().join(".tmp")).unwrap().count(), 1);
    let store = open_blob_store(&url).unwrap();
    assert_eq!(std::fs::read_dir(dir.path().join(".tmp")).unwrap().count(), 0);
    assert!(store.list("").await.unwrap().is_empty());
}

#[test]
fn bad_blob_urls_are_clear_errors() {
    assert!(open_blob_store("ftp://x").is_err());
    assert!(open_blob_store("s3://bucket?colour=blue").is_err());
}
