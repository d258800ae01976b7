//! `sigillum serve`: open the application, load or generate the TLS certificate, listen, and
//! shut down gracefully on SIGTERM or Ctrl-C.

use std::sync::Arc;

use anyhow::Context;
use sigillum_edge::TlsMaterial;
use sigillum_web::server::{serve, ConnLimits};
use sigillum_web::AppState;

use crate::app::App;
use crate::config::Config;

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    run_until(cfg, |_| {}, shutdown_signal()).await
}

/// Where a started server listens, and the certificate it presents.
pub struct Ready {
    pub addr: std::net::SocketAddr,
    pub cert_pem: Vec<u8>,
}

/// Runs the server until `shutdown` completes; `ready` is told where it listens once it does.
pub async fn run_until(
    cfg: Config,
    ready: impl FnOnce(Ready),
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tracing::info!(config = %cfg.redacted(), "starting");
    let app = App::open(&cfg).await?;
    let extra_names: Vec<String> = cfg.public_url.host_str().map(|h| vec![h.to_owned()]).unwrap_or_default();
    let tls = TlsMaterial::load_or_generate(
        cfg.tls_cert.as_deref(),
        cfg.tls_key.as_deref(),
        &cfg.data_dir.join("tls"),
        &extra_names,
    )
    .context("loading the TLS certificate")?;
    let server_config = tls.server_config()?;
    let listener =
        tokio::net::TcpListener::bind(cfg.listen).await.with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let fingerprint = tls.fingerprint();
    println!("Sigillum {} listening on https://{addr}", env!("CARGO_PKG_VERSION"));
    println!(
        "TLS certificate {} ({})",
        tls.cert_path.display(),
        if tls.self_signed { "self-signed, generated on first start" } else { "configured" }
    );
    println!("TLS certificate SHA-256 fingerprint {fingerprint}");
    tracing::info!(%addr, fingerprint, self_signed = tls.self_signed, "listening");
    ready(Ready { addr, cert_pem: std::fs::read(&tls.cert_path).context("reading the TLS certificate")? });

    let state = Arc::new(AppState {
        vault: app.vault.clone(),
        audit: app.audit.clone(),
        accounts: app.accounts.clone(),
        envelopes: app.envelopes.clone(),
        workflow: app.workflow.clone(),
        pki: app.pki.clone(),
        trusted_proxies: cfg.trusted_proxies.clone(),
        version: env!("CARGO_PKG_VERSION"),
    });
    // The job runner of this node: invitations, reminders, expiry, final documents, webhooks.
    let (stop_jobs, jobs_stop) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(sigillum_core::workflow::Worker::new(app.workflow.clone()).run(jobs_stop));
    serve(listener, server_config, sigillum_web::router(state), ConnLimits::default(), shutdown).await;
    let _ = stop_jobs.send(true);
    if tokio::time::timeout(std::time::Duration::from_secs(30), worker).await.is_err() {
        tracing::warn!("the job runner did not stop within 30 s; its leased job will be retried");
    }
    app.repo.close().await;
    tracing::info!("shutdown complete");
    println!("Sigillum stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = term => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received"),
    }
}

/// A server with the embedded defaults in this process, on a random loopback port, and an HTTPS
/// client that trusts its certificate: what the benchmarks measure against.
pub struct LocalServer {
    pub ready: Ready,
    /// Trusts only this server's certificate; `localhost` resolves to it.
    pub http: reqwest::Client,
    /// `https://localhost:<port>`.
    pub base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl LocalServer {
    /// Starts the server with its data in `data_dir`.
    pub async fn start(data_dir: &std::path::Path) -> anyhow::Result<Self> {
        let dd = data_dir.display().to_string();
        let cfg = Config::from_sources(None, &move |k| match k {
            "SIGILLUM_DATA_DIR" => Some(dd.clone()),
            "SIGILLUM_LISTEN" => Some("127.0.0.1:0".into()),
            _ => None,
        })?;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run_until(
            cfg,
            move |r| {
                let _ = ready_tx.send(r);
            },
            async move {
                let _ = stop_rx.await;
            },
        ));
        let ready = ready_rx.await.context("the server did not start")?;
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ready.cert_pem)?)
            .tls_built_in_root_certs(false)
            .resolve("localhost", ready.addr)
            .build()?;
        let base = format!("https://localhost:{}", ready.addr.port());
        Ok(Self { ready, http, base, stop, task })
    }

    /// Stops the server gracefully and returns how it ended.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await?
    }
}
