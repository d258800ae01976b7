//! S3 blob store (any S3-compatible service) through `object_store`. Blobs are written with a
//! multipart upload, which S3 makes visible atomically at completion; memory stays bounded by
//! the part size times the parts in flight. Credentials come from the standard `AWS_*`
//! environment variables; the URL gives bucket, optional key prefix, `endpoint` and `region`.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, WriteMultipart};
use sigillum_core::ports::valid_blob_key;
use sigillum_core::{BlobError, BlobStore, BlobStream, BlobWriter};

const PART_SIZE: usize = 5 * 1024 * 1024;
const PARTS_IN_FLIGHT: usize = 2;

pub struct S3BlobStore {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    bucket: String,
}

fn os(e: object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => BlobError::NotFound,
        e => BlobError::Unavailable(format!("s3: {}", short(&e))),
    }
}

/// Error text without request details (URLs may carry signed parameters).
fn short(e: &object_store::Error) -> &'static str {
    match e {
        object_store::Error::Generic { .. } => "request failed",
        object_store::Error::Precondition { .. } => "precondition failed",
        object_store::Error::AlreadyExists { .. } => "already exists",
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => "access denied",
        _ => "error",
    }
}

impl S3BlobStore {
    /// Parses `s3://bucket[/prefix]?endpoint=…&region=…`.
    pub fn open(url: &str) -> Result<Self, BlobError> {
        let bad = |m: &str| BlobError::Unavailable(format!("SIGILLUM_BLOB_URL: {m}"));
        let parsed = url::Url::parse(url).map_err(|_| bad("not a URL"))?;
        let bucket = parsed.host_str().ok_or_else(|| bad("missing bucket"))?.to_owned();
        let prefix = parsed.path().trim_matches('/').to_owned();
        if !prefix.is_empty() && !valid_blob_key(&prefix) {
            return Err(bad("invalid key prefix"));
        }
        let mut b = AmazonS3Builder::from_env().with_bucket_name(&bucket);
        for (k, v) in parsed.query_pairs() {
            match k.as_ref() {
                "endpoint" => {
                    b = b.with_allow_http(v.starts_with("http://")).with_endpoint(v.to_string());
                }
                "region" => b = b.with_region(v.to_string()),
                other => return Err(bad(&format!("unknown parameter {other}"))),
            }
        }
        let store = b.build().map_err(|_| bad("invalid S3 configuration"))?;
        Ok(Self { store: Arc::new(store), prefix, bucket })
    }

    fn path(&self, key: &str) -> Result<ObjPath, BlobError> {
        if !valid_blob_key(key) {
            return Err(BlobError::InvalidKey);
        }
        Ok(if self.prefix.is_empty() { ObjPath::from(key) } else { ObjPath::from(format!("{}/{key}", self.prefix)) })
    }

    /// Bucket name, for status output.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

struct S3Writer {
    upload: Option<WriteMultipart>,
    written: u64,
}

#[async_trait::async_trait]
impl BlobWriter for S3Writer {
    async fn write(&mut self, data: Bytes) -> Result<(), BlobError> {
        let up = self.upload.as_mut().ok_or_else(|| BlobError::Unavailable("writer closed".into()))?;
        up.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(os)?;
        self.written += data.len() as u64;
        up.put(data);
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, BlobError> {
        let up = self.upload.take().ok_or_else(|| BlobError::Unavailable("writer closed".into()))?;
        up.finish().await.map_err(os)?;
        Ok(self.written)
    }

    async fn abort(mut self: Box<Self>) -> Result<(), BlobError> {
        match self.upload.take() {
            Some(up) => up.abort().await.map_err(os),
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl BlobStore for S3BlobStore {
    fn backend(&self) -> &'static str {
        "s3"
    }

    async fn begin(&self, key: &str) -> Result<Box<dyn BlobWriter>, BlobError> {
        let path = self.path(key)?;
        let upload = self.store.put_multipart(&path).await.map_err(os)?;
        Ok(Box::new(S3Writer { upload: Some(WriteMultipart::new_with_chunk_size(upload, PART_SIZE)), written: 0 }))
    }

    async fn get(&self, key: &str) -> Result<BlobStream, BlobError> {
        let r = self.store.get(&self.path(key)?).await.map_err(os)?;
        Ok(r.into_stream().map_err(os).boxed())
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, BlobError> {
        self.store.get_range(&self.path(key)?, range).await.map_err(os)
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, BlobError> {
        match self.store.head(&self.path(key)?).await {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(os(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match self.store.delete(&self.path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(os(e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        let base = if self.prefix.is_empty() { None } else { Some(ObjPath::from(self.prefix.as_str())) };
        let metas: Vec<_> = self.store.list(base.as_ref()).try_collect().await.map_err(os)?;
        let strip = if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) };
        let mut out: Vec<String> = metas
            .into_iter()
            .filter_map(|m| m.location.as_ref().strip_prefix(&strip).map(str::to_owned))
            .filter(|k| k.starts_with(prefix))
            .collect();
        out.sort();
        Ok(out)
    }

    async fn health(&self) -> Result<(), BlobError> {
        // Listing proves reachability, credentials and the bucket's existence.
        let base = if self.prefix.is_empty() { None } else { Some(ObjPath::from(self.prefix.as_str())) };
        let mut s = self.store.list(base.as_ref());
        match s.next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(os(e)),
        }
    }
}
