//! The HTTPS accept loop: connection caps (in all and per client address, checked before the TLS
//! handshake so a flood costs an accept and a close), rustls handshakes (with a deadline), hyper
//! connections (HTTP/1.1 and HTTP/2) with a header-read timeout against slow clients, the
//! client's socket address attached to every request, and graceful shutdown: stop accepting, let
//! in-flight requests finish.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Timeouts at the connection level.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    pub tls_handshake: Duration,
    pub header_read: Duration,
    pub drain: Duration,
    /// Open connections at once, in all.
    pub max_connections: usize,
    /// Open connections at once from one socket address (a proxy counts as one client: raise
    /// this behind a load balancer).
    pub max_per_ip: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            tls_handshake: Duration::from_secs(10),
            header_read: Duration::from_secs(10),
            drain: Duration::from_secs(20),
            max_connections: 4096,
            max_per_ip: 256,
        }
    }
}

/// Open connections, in all and per peer address.
#[derive(Default)]
struct OpenConnections {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Counts one open connection until dropped.
struct ConnectionSlot {
    open: Arc<Mutex<OpenConnections>>,
    ip: IpAddr,
}

impl ConnectionSlot {
    /// Takes a slot for `ip`, or `None` when a cap is reached.
    fn take(open: &Arc<Mutex<OpenConnections>>, ip: IpAddr, limits: &ConnLimits) -> Option<Self> {
        let mut o = open.lock().ok()?;
        let mine = o.per_ip.get(&ip).copied().unwrap_or(0);
        if o.total >= limits.max_connections || mine >= limits.max_per_ip {
            return None;
        }
        o.total += 1;
        o.per_ip.insert(ip, mine + 1);
        Some(Self { open: open.clone(), ip })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Ok(mut o) = self.open.lock() {
            o.total = o.total.saturating_sub(1);
            if let Some(n) = o.per_ip.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    o.per_ip.remove(&self.ip);
                }
            }
        }
    }
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<tokio_rustls::rustls::ServerConfig>,
    router: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    accept_loop(listener, Some(TlsAcceptor::from(tls)), router, limits, shutdown).await;
}

/// The optional plain-HTTP listener: every request, whatever its method, path or `Host`, gets
/// `308 Permanent Redirect` to the same path and query on `public_origin` (the configured
/// public URL, never the client's `Host`, so it cannot be made to point elsewhere). Nothing else
/// is served without TLS. The same connection caps and timeouts apply.
pub async fn serve_redirect(
    listener: TcpListener,
    public_origin: String,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    let origin: Arc<str> = public_origin.trim_end_matches('/').into();
    let router = Router::new().fallback(move |uri: http::Uri| {
        let origin = origin.clone();
        async move {
            let target = format!("{origin}{}", uri.path_and_query().map_or("/", |pq| pq.as_str()));
            match http::HeaderValue::from_str(&target) {
                Ok(location) => (
                    http::StatusCode::PERMANENT_REDIRECT,
                    [
                        (http::header::LOCATION, location),
                        (http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store")),
                    ],
                )
                    .into_response(),
                Err(_) => http::StatusCode::BAD_REQUEST.into_response(),
            }
        }
    });
    accept_loop(listener, None, router, limits, shutdown).await;
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    router: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let open = Arc::new(Mutex::new(OpenConnections::default()));
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = ConnectionSlot::take(&open, peer.ip(), &limits) else {
            tracing::debug!(%peer, "connection refused: connection cap reached");
            drop(tcp);
            continue;
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = router.map_request(move |mut req: http::Request<_>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                req
            });
            let svc = TowerToHyperService::new(svc);
            let Some(acceptor) = acceptor else {
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), svc);
                if let Err(e) = watcher.watch(conn.into_owned()).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            };
            let tls = match tokio::time::timeout(limits.tls_handshake, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: no new connections, draining in-flight requests");
    if tokio::time::timeout(limits.drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("drain deadline passed; closing remaining connections");
    }
}
