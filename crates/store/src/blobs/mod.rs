//! Blob store adapters. Both make a blob visible only when it is complete and durable.

pub mod fs;
pub mod s3;

use std::sync::Arc;

use sigillum_core::{BlobError, BlobStore};

/// Opens the blob store named by a `SIGILLUM_BLOB_URL` (`file://…` or `s3://bucket[/prefix]?…`).
pub fn open_blob_store(url: &str) -> Result<Arc<dyn BlobStore>, BlobError> {
    if let Some(path) = url.strip_prefix("file://") {
        Ok(Arc::new(fs::FsBlobStore::open(std::path::Path::new(path))?))
    } else if url.starts_with("s3://") {
        Ok(Arc::new(s3::S3BlobStore::open(url)?))
    } else {
        Err(BlobError::Unavailable("SIGILLUM_BLOB_URL must start with file:// or s3://".into()))
    }
}
