//! `sigillum serve`: open the application, load or generate the TLS certificate, listen, and
//! shut down gracefully on SIGTERM or Ctrl-C.

use std::sync::Arc;

use anyhow::Context;
use sigillum_edge::waf::WafLayer;
use sigillum_edge::{HeaderPolicy, RateLimiter, TlsMaterial};
use sigillum_web::disclosure::SecurityTxt;
use sigillum_web::edge::EdgeSettings;
use sigillum_web::server::{serve, serve_redirect, ConnLimits};
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

/// Looks at the certificate files every few seconds and serves a renewed pair from the next
/// handshake on (hot reload); files that cannot be used are reported and the current pair stays.
/// How often a running server checks whether its generated certificate is due for renewal.
const RENEWAL_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Renews the generated self-signed certificate when it nears its end (the reloader then serves
/// the new one). Only for the generated one: configured files belong to whoever issues them.
async fn renew_self_signed(tls_dir: std::path::PathBuf, extra_names: Vec<String>) {
    let mut tick = tokio::time::interval(RENEWAL_CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (dir, names) = (tls_dir.clone(), extra_names.clone());
        match tokio::task::spawn_blocking(move || TlsMaterial::renew_self_signed_if_due(&dir, &names)).await {
            Ok(Ok(true)) => tracing::info!("self-signed TLS certificate renewed"),
            Ok(Ok(false)) => {}
            Ok(Err(error)) => tracing::error!(%error, "renewing the self-signed TLS certificate failed"),
            Err(error) => tracing::error!(%error, "self-signed TLS certificate renewal check failed"),
        }
    }
}

async fn watch_certificate(reloader: Arc<sigillum_edge::CertReloader>) {
    let mut tick = tokio::time::interval(sigillum_edge::CertReloader::INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let r = reloader.clone();
        match tokio::task::spawn_blocking(move || r.reload_if_changed()).await {
            Ok(Ok(Some(fingerprint))) => {
                tracing::info!(%fingerprint, "TLS certificate reloaded");
                println!("TLS certificate reloaded, SHA-256 fingerprint {fingerprint}");
            }
            Ok(Ok(None)) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "the TLS certificate files changed but cannot be used; the current pair stays")
            }
            Err(error) => tracing::error!(%error, "TLS certificate check failed"),
        }
    }
}

/// Runs the server until `shutdown` completes; `ready` is told where it listens once it does.
pub async fn run_until(
    cfg: Config,
    ready: impl FnOnce(Ready),
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tracing::info!(config = %cfg.redacted(), "starting");
    let metrics = Arc::new(sigillum_web::metrics::Metrics::new(cfg.metrics_token.clone()));
    let app = App::open_observed(&cfg, &Metered(metrics.clone())).await?;
    let extra_names: Vec<String> = cfg.public_url.host_str().map(|h| vec![h.to_owned()]).unwrap_or_default();
    let tls = TlsMaterial::load_or_generate(
        cfg.tls_cert.as_deref(),
        cfg.tls_key.as_deref(),
        &cfg.data_dir.join("tls"),
        &extra_names,
    )
    .context("loading the TLS certificate")?;
    let (server_config, reloader) = tls.server_config()?;
    let watch_certificate = tokio::spawn(watch_certificate(reloader));
    let renewal =
        tls.self_signed.then(|| tokio::spawn(renew_self_signed(cfg.data_dir.join("tls"), extra_names.clone())));
    let listener =
        tokio::net::TcpListener::bind(cfg.listen).await.with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let plain = match cfg.http_redirect_listen {
        Some(at) => {
            let plain = tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("cannot listen on {at} (HTTP redirect)"))?;
            let local = plain.local_addr()?;
            println!("Plain HTTP on http://{local} redirects to {}", cfg.public_url.origin().ascii_serialization());
            Some(plain)
        }
        None => None,
    };
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
        edge: edge_settings(&cfg, &app.audit, &metrics)?,
        version: env!("CARGO_PKG_VERSION"),
        residency: cfg.residency.report(),
        metrics,
        billing: app.billing.clone(),
    });
    state.edge.start_purging();
    // Before this node leases any job: what its node id leased before this process is released,
    // and the other nodes can tell from now on whether it lives (`sigillum_store::liveness`).
    let liveness = app.repo.liveness(&cfg.node_id).await.context("taking this node's liveness lock")?;
    let keep_alive = tokio::spawn(keep_liveness(app.repo.clone(), liveness));
    // The job runner of this node: invitations, reminders, expiry, final documents, webhooks.
    let (stop_jobs, jobs_stop) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(
        sigillum_core::workflow::Worker::new(app.workflow.clone()).with_lanes(cfg.job_lanes).run(jobs_stop),
    );
    let notifications = tokio::spawn(listen(app.repo.clone(), app.workflow.clone(), app.audit.clone()));
    let limits = ConnLimits {
        max_connections: cfg.max_connections,
        max_per_ip: cfg.max_connections_per_ip,
        ..ConnLimits::default()
    };
    // The optional plain-HTTP listener only redirects; it stops with the HTTPS one.
    let (stop_redirect, redirect_stop) = tokio::sync::watch::channel(false);
    let redirect = match plain {
        Some(plain) => {
            let mut stop = redirect_stop;
            let until = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            Some(tokio::spawn(serve_redirect(plain, cfg.public_url.origin().ascii_serialization(), limits, until)))
        }
        None => None,
    };
    serve(listener, server_config, sigillum_web::router(state), limits, shutdown).await;
    watch_certificate.abort();
    if let Some(r) = renewal {
        r.abort();
    }
    let _ = stop_redirect.send(true);
    if let Some(redirect) = redirect {
        let _ = redirect.await;
    }
    notifications.abort();
    let _ = stop_jobs.send(true);
    if tokio::time::timeout(std::time::Duration::from_secs(30), worker).await.is_err() {
        tracing::warn!("the job runner did not stop within 30 s; its leased job will be retried");
    }
    keep_alive.abort();
    app.repo.close().await;
    tracing::info!("shutdown complete");
    println!("Sigillum stopped");
    Ok(())
}

/// The edge settings from the configuration.
fn edge_settings(
    cfg: &Config,
    audit: &sigillum_core::AuditLog,
    metrics: &Arc<sigillum_web::metrics::Metrics>,
) -> anyhow::Result<EdgeSettings> {
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    let expires = match &cfg.security_txt_expires {
        Some(e) => e.clone(),
        None => {
            // A year from start, to the second (RFC 9116 asks for less than a year ahead).
            let t = time::OffsetDateTime::now_utc() + time::Duration::days(365) - time::Duration::seconds(1);
            t.replace_nanosecond(0).unwrap_or(t).format(rfc3339).context("formatting the security.txt expiry")?
        }
    };
    let canonical = cfg.public_url.join("/.well-known/security.txt").context("public URL")?.to_string();
    Ok(EdgeSettings {
        headers: HeaderPolicy::new(&cfg.frame_ancestors)?,
        rate_limits: Arc::new(RateLimiter::new(cfg.rate_limits)),
        own_origin: sigillum_edge::cross_site::origin_of(&cfg.public_url),
        waf: waf_layer(cfg, audit, metrics)?,
        security_txt: SecurityTxt {
            contacts: cfg.security_contacts.clone(),
            expires,
            policy: cfg.security_policy.clone(),
            preferred_languages: cfg.security_languages.clone(),
            canonical,
        },
    })
}

/// Loads the Core Rule Set once for the whole process; every blocked (or, in detect mode, flagged)
/// request becomes a `waf.blocked` audit event with the rules that matched.
fn waf_layer(
    cfg: &Config,
    audit: &sigillum_core::AuditLog,
    metrics: &Arc<sigillum_web::metrics::Metrics>,
) -> anyhow::Result<Option<WafLayer>> {
    use sigillum_audit::{Detail, EventKind};
    use sigillum_core::{Actor, ClientInfo, NewEvent};
    let mode = match cfg.waf {
        crate::config::WafMode::Off => return Ok(None),
        crate::config::WafMode::Block => sigillum_edge::waf::WafMode::Block,
        crate::config::WafMode::Detect => sigillum_edge::waf::WafMode::Detect,
    };
    let waf_config = sigillum_edge::waf::WafConfig {
        mode,
        paranoia: cfg.waf_paranoia,
        crs_dir: cfg.waf_crs_dir.clone(),
        ..sigillum_edge::waf::WafConfig::default()
    };
    let started = std::time::Instant::now();
    let waf = sigillum_edge::waf::Waf::load(&waf_config).context("loading the web application firewall")?;
    tracing::info!(mode = %mode, paranoia = cfg.waf_paranoia, ms = started.elapsed().as_millis() as u64, "WAF rules loaded");
    let (audit, metrics) = (audit.clone(), metrics.clone());
    let hook: sigillum_edge::waf::WafHook = Arc::new(move |e: sigillum_edge::waf::WafEvent| {
        if e.blocked {
            metrics.count_waf_blocked();
        }
        let rules = e.rule_ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        tracing::warn!(client = %e.client_ip, method = %e.method, path = %e.path, rules, blocked = e.blocked, request_id = e.request_id.as_deref().unwrap_or("-"), "WAF match");
        let actor = Actor { kind: sigillum_audit::ActorKind::Anonymous, id: None, name: None, email: None };
        let mut event =
            NewEvent::new(EventKind::WafBlocked, None, actor, ClientInfo { ip: Some(e.client_ip), user_agent: None })
                .detail("method", Detail::Text(e.method))
                .detail("path", Detail::Text(e.path))
                .detail("rule_ids", Detail::Text(rules))
                .detail("mode", Detail::Text(e.mode.as_str().to_owned()))
                .detail("blocked", Detail::Bool(e.blocked));
        if let Some(id) = e.request_id {
            event = event.detail("request_id", Detail::Text(id));
        }
        let audit = audit.clone();
        // The refusal does not wait for the log: a flood of attacks must not queue behind it.
        tokio::spawn(async move {
            if let Err(err) = audit.record(event).await {
                tracing::error!(error = %err, "waf.blocked event not recorded");
            }
        });
    });
    Ok(Some(WafLayer::new(waf).on_event(hook).trusted_proxies(cfg.trusted_proxies.clone())))
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
        Self::start_with(data_dir, &[]).await
    }

    /// Starts the server with its data in `data_dir` and the settings `extra` (environment
    /// names and values) on top.
    pub async fn start_with(data_dir: &std::path::Path, extra: &[(&str, &str)]) -> anyhow::Result<Self> {
        let dd = data_dir.display().to_string();
        let extra: Vec<(String, String)> = extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let cfg = Config::from_sources(None, &move |k| {
            if let Some((_, v)) = extra.iter().find(|(name, _)| name == k) {
                return Some(v.clone());
            }
            match k {
                "SIGILLUM_DATA_DIR" => Some(dd.clone()),
                "SIGILLUM_LISTEN" => Some("127.0.0.1:0".into()),
                // One loopback client is the whole load here: request rate limits would measure
                // themselves, not the server.
                "SIGILLUM_RATE_LIMIT_IP" | "SIGILLUM_RATE_LIMIT_CREDENTIAL" | "SIGILLUM_RATE_LIMIT_SIGNER" => {
                    Some("off".into())
                }
                _ => None,
            }
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

    /// Signs up `email`, logs in and returns a new API key of the account (for benchmarks).
    pub async fn api_key(&self, email: &str) -> anyhow::Result<String> {
        let (http, base) = (&self.http, &self.base);
        let pw = "bench password, long enough";
        let signup = serde_json::json!({"email": email, "password": pw, "name": "Bench"});
        http.post(format!("{base}/api/v1/auth/signup")).json(&signup).send().await?.error_for_status()?;
        let login = http
            .post(format!("{base}/api/v1/auth/login"))
            .json(&serde_json::json!({"email": email, "password": pw}))
            .send()
            .await?
            .error_for_status()?;
        let cookie = login.headers().get("set-cookie").and_then(|v| v.to_str().ok()).context("cookie")?.to_owned();
        let csrf = login.json::<serde_json::Value>().await?["csrf_token"].as_str().context("csrf")?.to_owned();
        let key: serde_json::Value = http
            .post(format!("{base}/api/v1/api-keys"))
            .header("cookie", cookie.split(';').next().unwrap_or_default())
            .header("x-csrf-token", csrf)
            .json(&serde_json::json!({"name": "bench"}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(key["key"].as_str().context("key")?.to_owned())
    }

    /// Stops the server gracefully and returns how it ended.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await?
    }
}

/// One 612×792 page, written by hand.
pub fn one_page_pdf() -> Vec<u8> {
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 /MediaBox [0 0 612 792] >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /Contents 4 0 R >>".to_owned(),
        "<< /Length 8 >>\nstream\nBT ET\n\nendstream".to_owned(),
    ];
    let mut out = b"%PDF-1.7\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(format!("trailer\n<< /Size 5 /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n").as_bytes());
    out
}

/// The server's metrics wrap the key manager and the job queue.
struct Metered(Arc<sigillum_web::metrics::Metrics>);

impl crate::app::Observe for Metered {
    fn keys(&self, keys: Arc<dyn sigillum_crypto::KeyManager>) -> Arc<dyn sigillum_crypto::KeyManager> {
        self.0.meter_keys(keys)
    }
    fn jobs(&self, jobs: Arc<dyn sigillum_core::ports::JobStore>) -> Arc<dyn sigillum_core::ports::JobStore> {
        self.0.meter_jobs(jobs)
    }
}

/// Keeps this node's liveness lock, re-taking it when its connection was lost.
async fn keep_liveness(repo: sigillum_store::SqlRepository, mut liveness: sigillum_store::liveness::Liveness) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        if let Err(e) = liveness.keep(&repo).await {
            tracing::warn!(error = %e, "cannot renew this node's liveness lock; other nodes may take over its jobs");
        }
    }
}

/// Wakes this node's job lanes and live audit streams when another node enqueues jobs or appends
/// events (PostgreSQL LISTEN/NOTIFY); the polling of both remains the fallback. Reconnects after a
/// failure, with a pause.
async fn listen(
    repo: sigillum_store::SqlRepository,
    workflow: sigillum_core::Workflow,
    audit: sigillum_core::AuditLog,
) {
    use sigillum_store::notify::Notice;
    loop {
        match repo.listen().await {
            Ok(None) => return,
            Ok(Some(mut n)) => loop {
                match n.next().await {
                    Ok(Notice::Jobs) => workflow.wake(),
                    Ok(Notice::Audit) => audit.refresh(),
                    Err(e) => {
                        tracing::warn!(error = %e, "database notifications interrupted; polling meanwhile");
                        break;
                    }
                }
            },
            Err(e) => tracing::warn!(error = %e, "cannot listen for database notifications; polling instead"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
}
