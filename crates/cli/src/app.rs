//! Wiring: from a [`Config`] to a running [`Vault`] and [`AuditLog`] over the configured adapters. First start
//! creates the data directory (0700), the SQLite database with its migrations, the blob
//! directory and the local keyring.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;
use sigillum_core::ports::SystemClock;
use sigillum_core::{Accounts, AuditLog, Envelopes, Vault};
use sigillum_store::{open_blob_store, SqlRepository};

use crate::config::Config;

pub struct App {
    pub vault: Vault,
    pub repo: SqlRepository,
    pub audit: AuditLog,
    pub accounts: Accounts,
    pub envelopes: Envelopes,
}

impl App {
    pub async fn open(cfg: &Config) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("cannot create data directory {}", cfg.data_dir.display()))?;
        std::fs::set_permissions(&cfg.data_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", cfg.data_dir.display()))?;
        let repo = SqlRepository::connect(cfg.database_url.expose_secret()).await.context("opening the database")?;
        let blobs = open_blob_store(&cfg.blob_url).context("opening the blob store")?;
        let keys = sigillum_kms::open(&cfg.kms, cfg.master_key.as_ref(), cfg.pkcs11_pin.as_ref())
            .context("opening the key manager")?;
        let vault = Vault::new(Arc::new(repo.clone()), blobs, keys, Arc::new(SystemClock), cfg.node_id.clone());
        let audit = AuditLog::open(Arc::new(repo.clone()), vault.clone(), Arc::new(SystemClock), &cfg.log_origin)
            .await
            .context("opening the audit log")?;
        let accounts = Accounts::new(Arc::new(repo.clone()), vault.clone(), audit.clone(), Arc::new(SystemClock));
        let limits = sigillum_pdf::Limits { max_bytes: cfg.max_upload_bytes, ..sigillum_pdf::Limits::default() };
        let envelopes = Envelopes::new(
            Arc::new(repo.clone()),
            Arc::new(repo.clone()),
            vault.clone(),
            audit.clone(),
            Arc::new(SystemClock),
            limits,
        );
        Ok(Self { vault, repo, audit, accounts, envelopes })
    }
}
