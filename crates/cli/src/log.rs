//! `sigillum log verify|checkpoint`: the audit log from the command line. Both read only the
//! database (no key manager), so an auditor can run them against a copy.

use std::path::PathBuf;

use anyhow::Context;
use secrecy::ExposeSecret;
use sigillum_core::audit_log::{verify_log, LogReport};
use sigillum_core::ports::AuditStore;
use sigillum_store::SqlRepository;

use crate::config::Config;

async fn open_store(cfg: &Config) -> anyhow::Result<SqlRepository> {
    SqlRepository::connect(cfg.database_url.expose_secret()).await.context("opening the database")
}

/// The latest signed checkpoint (note text).
pub async fn checkpoint(cfg: &Config) -> anyhow::Result<String> {
    let store = open_store(cfg).await?;
    let cp = store.latest_checkpoint().await?.context("no checkpoint has been published yet")?;
    Ok(cp.note)
}

/// Verifies the whole stored log. `key` overrides the verifier key stored in the database (an
/// auditor passes the key they obtained independently); `checkpoints` are note files a party kept.
pub async fn verify(cfg: &Config, key: Option<String>, checkpoints: &[PathBuf]) -> anyhow::Result<LogReport> {
    let store = open_store(cfg).await?;
    let key = match key {
        Some(k) => k.trim().to_owned(),
        None => store.log_key().await?.context("the log has no key yet (never started)")?.verifier_key,
    };
    let mut external = Vec::new();
    for path in checkpoints {
        external.push(std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?);
    }
    Ok(verify_log(&store, &key, &external).await?)
}
