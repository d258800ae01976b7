//! Filesystem blob store. A write goes to `.tmp/<random>`, is fsynced, then renamed to its final
//! path and the directory is fsynced: a crash at any moment leaves either no blob or the whole
//! blob, never a half-written one under its key. Leftover temporary files are removed at open.

use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::StreamExt;
use sigillum_core::ports::valid_blob_key;
use sigillum_core::{BlobError, BlobStore, BlobStream, BlobWriter};
use tokio::fs;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

const TMP: &str = ".tmp";

pub struct FsBlobStore {
    root: PathBuf,
}

fn io(e: std::io::Error) -> BlobError {
    if e.kind() == std::io::ErrorKind::NotFound {
        BlobError::NotFound
    } else {
        BlobError::Unavailable(format!("filesystem: {}", e.kind()))
    }
}

fn sync_dir_blocking(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl FsBlobStore {
    /// Opens (creating) the store at `root` and removes unfinished writes.
    pub fn open(root: &Path) -> Result<Self, BlobError> {
        let tmp = root.join(TMP);
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io)?;
        }
        std::fs::create_dir_all(&tmp).map_err(io)?;
        Ok(Self { root: root.to_path_buf() })
    }

    fn path(&self, key: &str) -> Result<PathBuf, BlobError> {
        if !valid_blob_key(key) {
            return Err(BlobError::InvalidKey);
        }
        Ok(self.root.join(key))
    }
}

struct FsWriter {
    file: Option<fs::File>,
    tmp: PathBuf,
    dest: PathBuf,
    root: PathBuf,
    written: u64,
}

#[async_trait::async_trait]
impl BlobWriter for FsWriter {
    async fn write(&mut self, data: Bytes) -> Result<(), BlobError> {
        let f = self.file.as_mut().ok_or_else(|| BlobError::Unavailable("writer closed".into()))?;
        f.write_all(&data).await.map_err(io)?;
        self.written += data.len() as u64;
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, BlobError> {
        let mut f = self.file.take().ok_or_else(|| BlobError::Unavailable("writer closed".into()))?;
        f.flush().await.map_err(io)?;
        f.sync_all().await.map_err(io)?;
        drop(f);
        let parent = self.dest.parent().map(Path::to_path_buf).unwrap_or_else(|| self.root.clone());
        // Create missing directories, fsyncing each new one's parent so the path survives a crash.
        let mut missing = Vec::new();
        let mut p = parent.clone();
        while !p.exists() && p.starts_with(&self.root) {
            missing.push(p.clone());
            if !p.pop() {
                break;
            }
        }
        fs::create_dir_all(&parent).await.map_err(io)?;
        let (tmp, dest, root) = (self.tmp.clone(), self.dest.clone(), self.root.clone());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            for dir in missing.iter().rev() {
                sync_dir_blocking(dir.parent().unwrap_or(&root))?;
            }
            std::fs::rename(&tmp, &dest)?;
            sync_dir_blocking(&parent)
        })
        .await
        .map_err(|_| BlobError::Unavailable("commit task failed".into()))?
        .map_err(io)?;
        Ok(self.written)
    }

    async fn abort(mut self: Box<Self>) -> Result<(), BlobError> {
        self.file.take();
        match fs::remove_file(&self.tmp).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(e)),
        }
    }
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            // Dropped without commit or abort: remove the partial temporary file.
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[async_trait::async_trait]
impl BlobStore for FsBlobStore {
    fn backend(&self) -> &'static str {
        "fs"
    }

    async fn begin(&self, key: &str) -> Result<Box<dyn BlobWriter>, BlobError> {
        let dest = self.path(key)?;
        let tmp = self.root.join(TMP).join(uuid::Uuid::new_v4().simple().to_string());
        let file = fs::OpenOptions::new().write(true).create_new(true).open(&tmp).await.map_err(io)?;
        Ok(Box::new(FsWriter { file: Some(file), tmp, dest, root: self.root.clone(), written: 0 }))
    }

    async fn get(&self, key: &str) -> Result<BlobStream, BlobError> {
        let file = fs::File::open(self.path(key)?).await.map_err(io)?;
        let stream = futures::stream::unfold(Some(file), |state| async move {
            let mut file = state?;
            let mut buf = vec![0u8; 64 * 1024];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), Some(file)))
                }
                Err(e) => Some((Err(io(e)), None)),
            }
        });
        Ok(stream.boxed())
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, BlobError> {
        let mut file = fs::File::open(self.path(key)?).await.map_err(io)?;
        let len = range.end.checked_sub(range.start).ok_or(BlobError::InvalidKey)?;
        file.seek(std::io::SeekFrom::Start(range.start)).await.map_err(io)?;
        let mut buf = Vec::with_capacity(len as usize);
        file.take(len).read_to_end(&mut buf).await.map_err(io)?;
        if buf.len() as u64 != len {
            return Err(BlobError::Unavailable("range beyond end of blob".into()));
        }
        Ok(Bytes::from(buf))
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, BlobError> {
        match fs::metadata(self.path(key)?).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let path = self.path(key)?;
        match fs::remove_file(&path).await {
            Ok(()) => {
                if let Some(parent) = path.parent() {
                    let _ = tokio::task::spawn_blocking({
                        let parent = parent.to_path_buf();
                        move || sync_dir_blocking(&parent)
                    })
                    .await;
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(&dir).map_err(io)? {
                    let entry = entry.map_err(io)?;
                    let path = entry.path();
                    let rel = path.strip_prefix(&root).map_err(|_| BlobError::InvalidKey)?;
                    let rel = rel.to_string_lossy().to_string();
                    if rel.starts_with('.') {
                        continue;
                    }
                    if entry.file_type().map_err(io)?.is_dir() {
                        stack.push(path);
                    } else if rel.starts_with(&prefix) {
                        out.push(rel);
                    }
                }
            }
            out.sort();
            Ok(out)
        })
        .await
        .map_err(|_| BlobError::Unavailable("list task failed".into()))?
    }

    async fn health(&self) -> Result<(), BlobError> {
        let probe = self.root.join(TMP).join(format!("health-{}", uuid::Uuid::new_v4().simple()));
        fs::write(&probe, b"ok").await.map_err(io)?;
        fs::remove_file(&probe).await.map_err(io)
    }
}
