//! "No plaintext of a stored document can be found anywhere under the data dir."

mod common;

use sigillum_core::EnvelopeId;
use sigillum_crypto::field::FieldContext;

#[tokio::test]
async fn no_plaintext_anywhere_under_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let marker = format!("SIGILLUM-PLAINTEXT-MARKER-{}", uuid::Uuid::new_v4().simple());
    let app = common::open(&data, &[]).await;
    let v = &app.vault;
    let org = v.create_organisation("Marker Org").await.unwrap();
    // A small document, and a large one with the marker at chunk boundaries and in between.
    let mut docs = vec![format!("%PDF-1.7\n{marker}\n%%EOF").into_bytes()];
    let mut big = vec![b' '; 3 * 16384 + 777];
    for at in [0, 16384 - 10, 16384 * 2 - 5, 40_000] {
        big[at..at + marker.len()].copy_from_slice(marker.as_bytes());
    }
    docs.push(big);
    let mut envelopes = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let env = EnvelopeId::new();
        v.create_envelope_key(org.id, env).await.unwrap();
        v.put_blob(env, "original", i as u32 + 1, common::body(d.clone())).await.unwrap();
        assert_eq!(v.read_blob(env, "original", i as u32 + 1).await.unwrap(), *d);
        let cell = FieldContext { table: "field_values", column: "value", row_id: "r" };
        let sealed = v.seal_field(env, &cell, marker.as_bytes()).await.unwrap();
        assert!(!sealed.windows(marker.len()).any(|w| w == marker.as_bytes()));
        envelopes.push(env);
    }
    // Scan while the database is open (its WAL holds the newest pages) and again after closing.
    scan(&data, &marker);
    app.repo.close().await;
    scan(&data, &marker);

    // And everything still opens after a restart.
    let app = common::open(&data, &[]).await;
    assert_eq!(app.vault.read_blob(envelopes[0], "original", 1).await.unwrap(), docs[0]);
}

fn scan(data: &std::path::Path, marker: &str) {
    let files = common::files_under(data);
    assert!(files.iter().any(|f| f.to_string_lossy().contains("blobs/env/")), "blobs were written");
    let needle = marker.as_bytes();
    let needle_half = &needle[..20];
    let mut scanned = 0;
    for f in files {
        // SQLite removes its -wal/-shm files when the last connection closes.
        let Ok(bytes) = std::fs::read(&f) else { continue };
        scanned += 1;
        assert!(!bytes.windows(needle.len()).any(|w| w == needle), "plaintext marker found in {}", f.display());
        assert!(!bytes.windows(needle_half.len()).any(|w| w == needle_half), "marker prefix in {}", f.display());
    }
    assert!(scanned >= 5, "too few files scanned: {scanned}");
}
