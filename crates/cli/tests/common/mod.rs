//! Helpers shared by this crate's integration tests: the app wiring on a given configuration.

#![allow(dead_code)]

use std::path::Path;

use bytes::Bytes;
use sigillum::app::App;
use sigillum::config::Config;

/// The configuration `sigillum serve` would use with these environment variables.
pub fn config(data_dir: &Path, extra: &[(&str, &str)]) -> Config {
    let dd = data_dir.display().to_string();
    let mut env: Vec<(String, String)> = vec![("SIGILLUM_DATA_DIR".into(), dd)];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::from_sources(None, &move |k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())).unwrap()
}

pub async fn open(data_dir: &Path, extra: &[(&str, &str)]) -> App {
    App::open(&config(data_dir, extra)).await.unwrap()
}

pub fn body(data: Vec<u8>) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send {
    let pieces: Vec<_> = data.chunks(64 * 1024).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    futures::stream::iter(pieces)
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}
