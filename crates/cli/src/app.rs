//! Wiring: from a [`Config`] to a running [`Vault`] and [`AuditLog`] over the configured adapters. First start
//! creates the data directory (0700), the SQLite database with its migrations, the blob
//! directory and the local keyring.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;
use sigillum_core::billing::{Billing, BillingPorts, PayPalApi, StripeSetup};
use sigillum_core::pki::{Pki, TimestampAuthority};
use sigillum_core::ports::SystemClock;
use sigillum_core::seal::Sealer;
use sigillum_core::{Accounts, AuditLog, Envelopes, Vault, Workflow, WorkflowConfig, WorkflowPorts};
use sigillum_store::{open_blob_store, SqlRepository};

use crate::config::Config;

pub struct App {
    pub vault: Vault,
    pub repo: SqlRepository,
    pub audit: AuditLog,
    pub accounts: Accounts,
    pub envelopes: Envelopes,
    pub workflow: Workflow,
    pub pki: Arc<Pki>,
    pub billing: Billing,
}

/// The KEKs of the deployment itself (not of an organisation), made once at the first start.
const SYSTEM_KEKS: [&str; 4] = [
    sigillum_core::audit_log::LOG_KEK_ID,
    sigillum_core::two_factor::KEK,
    sigillum_core::workflow::WEBHOOK_KEK,
    crate::backup::BACKUP_KEK,
];

/// Wraps adapters as the application is wired (the server meters them); identity by default.
pub trait Observe: Send + Sync {
    fn keys(&self, keys: Arc<dyn sigillum_crypto::KeyManager>) -> Arc<dyn sigillum_crypto::KeyManager> {
        keys
    }
    fn jobs(&self, jobs: Arc<dyn sigillum_core::ports::JobStore>) -> Arc<dyn sigillum_core::ports::JobStore> {
        jobs
    }
}

/// Adapters as they are.
pub struct Unobserved;
impl Observe for Unobserved {}

impl App {
    pub async fn open(cfg: &Config) -> anyhow::Result<Self> {
        Self::open_observed(cfg, &Unobserved).await
    }

    /// As [`App::open`], with the key manager and the job queue passed through `observe` first
    /// (the server wraps them so their operations show in the metrics).
    pub async fn open_observed(cfg: &Config, observe: &dyn Observe) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("cannot create data directory {}", cfg.data_dir.display()))?;
        std::fs::set_permissions(&cfg.data_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", cfg.data_dir.display()))?;
        let repo = SqlRepository::connect(cfg.database_url.expose_secret()).await.context("opening the database")?;
        let blobs = open_blob_store(&cfg.blob_url).context("opening the blob store")?;
        let keys = observe.keys(
            sigillum_kms::open(&cfg.kms, cfg.master_key.as_ref(), cfg.pkcs11_pin.as_ref())
                .context("opening the key manager")?,
        );
        // Nodes starting together take turns creating what exists once: the system KEKs (made
        // here, before anything uses them, so no two nodes ever make a first version each), the
        // log key and the internal CA below.
        let startup = repo.startup_lock().await.context("taking the start-up lock")?;
        for kek in SYSTEM_KEKS {
            keys.ensure_kek(kek).await.with_context(|| format!("creating the {kek} key"))?;
        }
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
        )
        .with_policy(sigillum_pdf::Policy { remove_uri: cfg.pdf_remove_links });
        load_pdf_fonts(cfg.pdf_fonts.as_deref())?;
        let smtp = cfg.smtp_url.as_ref().map(|s| s.expose_secret().to_owned());
        let mailer = sigillum_mail::LettreMailer::new(&cfg.mail_from, smtp.as_deref(), cfg.data_dir.join("outbox"))
            .context("configuring mail (SIGILLUM_SMTP_URL, SIGILLUM_MAIL_FROM)")?;
        tracing::info!(mail = %mailer.describe(), "mail transport");
        let mut pki = Pki::new(
            vault.key_manager().clone(),
            Arc::new(repo.clone()),
            Arc::new(SystemClock),
            cfg.public_url.as_str(),
        );
        if let Some(path) = &cfg.seal_cert_chain {
            let pem =
                std::fs::read(path).with_context(|| format!("reading SIGILLUM_SEAL_CERT_CHAIN {}", path.display()))?;
            let chain = sigillum_pdf::pki::parse_certificates(&pem)
                .with_context(|| format!("SIGILLUM_SEAL_CERT_CHAIN {} holds no certificate", path.display()))?;
            pki = pki.with_imported_seal_chain(chain);
        }
        let pki = Arc::new(pki);
        // The certificates are issued (or loaded) now, so a key-manager problem stops the start.
        pki.certificates().await.context("issuing or loading the internal PKI certificates")?;
        drop(startup);
        let tsa: Arc<dyn TimestampAuthority> = match &cfg.tsa_url {
            Some(url) => Arc::new(sigillum_web::pki::HttpTimestampAuthority::new(url).context("SIGILLUM_TSA_URL")?),
            None => pki.clone(),
        };
        let crls = sigillum_web::pki::HttpRevocationSource::new().context("CRL client")?;
        let sealer = Arc::new(Sealer::new(pki.clone(), tsa).with_revocation_source(Arc::new(crls)));
        let shared = Arc::new(repo.clone());
        let billing = billing(cfg, &repo, &audit)?;
        let workflow = Workflow::new(
            WorkflowPorts {
                envelopes: shared.clone(),
                parties: shared.clone(),
                signing: shared.clone(),
                jobs: observe.jobs(shared.clone()),
                webhooks: shared.clone(),
                accounts: shared,
                mailer: Arc::new(mailer),
                hooks: Arc::new(sigillum_web::webhooks::HttpWebhookSender { allow_private: cfg.webhook_allow_private }),
                sealer,
                quota: Some(Arc::new(billing.clone())),
            },
            envelopes.clone(),
            vault.clone(),
            audit.clone(),
            Arc::new(SystemClock),
            WorkflowConfig {
                public_url: cfg.public_url.as_str().to_owned(),
                node: cfg.node_id.clone(),
                allow_insecure_webhooks: cfg.webhook_allow_private,
                jurisdiction: cfg.jurisdiction.clone(),
            },
        );
        Ok(Self { vault, repo, audit, accounts, envelopes, workflow, pki, billing })
    }
}

/// Billing over the configured providers (none: billing off, no limits).
fn billing(cfg: &Config, repo: &SqlRepository, audit: &AuditLog) -> anyhow::Result<Billing> {
    use sigillum_web::billing::{paypal, stripe};
    let stripe = match (&cfg.stripe_secret_key, &cfg.stripe_webhook_secret) {
        (Some(key), Some(webhook_secret)) => {
            let base = cfg.stripe_api_base.as_deref().unwrap_or(stripe::DEFAULT_BASE);
            let api = stripe::StripeHttp::new(base, key.clone())
                .map_err(|e| anyhow::anyhow!("SIGILLUM_STRIPE_API_BASE: {e}"))?;
            Some(StripeSetup { api: Arc::new(api), webhook_secret: webhook_secret.clone() })
        }
        _ => None,
    };
    let paypal = match (&cfg.paypal_client_id, &cfg.paypal_client_secret, &cfg.paypal_webhook_id) {
        (Some(id), Some(secret), Some(webhook)) => {
            let base = cfg.paypal_api_base.as_deref().unwrap_or(paypal::DEFAULT_BASE);
            let api = paypal::PayPalHttp::new(base, id.clone(), secret.clone(), webhook.clone())
                .map_err(|e| anyhow::anyhow!("SIGILLUM_PAYPAL_API_BASE: {e}"))?;
            Some(Arc::new(api) as Arc<dyn PayPalApi>)
        }
        _ => None,
    };
    let shared = Arc::new(repo.clone());
    Ok(Billing::new(
        BillingPorts {
            store: shared.clone(),
            accounts: shared,
            audit: audit.clone(),
            clock: Arc::new(SystemClock),
            stripe,
            paypal,
        },
        cfg.billing_plans.clone(),
        cfg.public_url.as_str(),
    ))
}

/// Where Debian's `fonts-noto-cjk` puts Noto Sans CJK (Chinese, Japanese, Korean): the fallback
/// faces used when `SIGILLUM_PDF_FONTS` is not set and the files exist.
const DEFAULT_PDF_FONTS: &[&str] = &["/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"];

/// Registers the fallback faces for text DejaVu Sans cannot draw (see `sigillum_pdf::text_font`).
/// A configured file that cannot be read or parsed stops the start; a missing default is skipped,
/// and characters no face has then print as `?` (logged once here).
fn load_pdf_fonts(configured: Option<&[String]>) -> anyhow::Result<()> {
    let (entries, explicit): (Vec<String>, bool) = match configured {
        Some(list) => (list.to_vec(), true),
        None => (DEFAULT_PDF_FONTS.iter().map(|s| (*s).to_owned()).collect(), false),
    };
    let mut faces = Vec::new();
    let mut loaded = Vec::new();
    for entry in &entries {
        let (path, index) = match entry.rsplit_once('#') {
            Some((p, i)) => {
                (p, i.parse::<u32>().with_context(|| format!("SIGILLUM_PDF_FONTS: bad face index in {entry}"))?)
            }
            None => (entry.as_str(), 0),
        };
        let program = match std::fs::read(path) {
            Ok(p) => p,
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("SIGILLUM_PDF_FONTS: reading {path}")),
        };
        // Kept for the life of the process: every document draws from it.
        let program: &'static [u8] = Box::leak(program.into_boxed_slice());
        faces.push(sigillum_pdf::FallbackFace { program, index });
        loaded.push(entry.as_str());
    }
    let n = faces.len();
    sigillum_pdf::use_fallback_faces(faces).map_err(|_| {
        anyhow::anyhow!("SIGILLUM_PDF_FONTS: {entries:?} holds a file that is not a TrueType/OpenType font")
    })?;
    if n == 0 {
        tracing::warn!("no fallback font for Chinese, Japanese or Korean text: such characters print as '?' on PDF pages (install fonts-noto-cjk or set SIGILLUM_PDF_FONTS)");
    } else {
        tracing::info!(fonts = ?loaded, "fallback fonts for PDF text");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_fonts_that_cannot_be_used_stop_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.ttf").display().to_string();
        let err = load_pdf_fonts(Some(&[missing])).unwrap_err();
        assert!(format!("{err:#}").contains("reading"), "{err:#}");
        let not_a_font = dir.path().join("notes.txt");
        std::fs::write(&not_a_font, "not a font").unwrap();
        let err = load_pdf_fonts(Some(&[not_a_font.display().to_string()])).unwrap_err();
        assert!(format!("{err:#}").contains("not a TrueType/OpenType font"), "{err:#}");
        let err = load_pdf_fonts(Some(&[format!("{}#x", not_a_font.display())])).unwrap_err();
        assert!(format!("{err:#}").contains("bad face index"), "{err:#}");
    }
}
