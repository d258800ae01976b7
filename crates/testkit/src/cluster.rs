//! A Sigillum cluster on loopback, as production runs it: N stateless `sigillum serve` nodes on one
//! PostgreSQL database, one S3 bucket prefix and one PKCS#11 token (SoftHSM2), mail to one SMTP
//! relay, behind haproxy (round-robin per request, health-checked on `/healthz`, TLS on both
//! sides). Nodes can be killed with SIGKILL and started again on the same port and data
//! directory, as an operator's supervisor would.
//!
//! Used by the `scale-out` binary (issue 9's proof and benchmark).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;

use crate::server::Server;

/// A free TCP port on loopback (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// `n` distinct free ports: all are held at once while they are chosen (one at a time, the
/// system may hand out a port it just took back, and two nodes then race for it).
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> =
        (0..n).filter_map(|_| std::net::TcpListener::bind("127.0.0.1:0").ok()).collect();
    held.iter().filter_map(|l| l.local_addr().ok()).map(|a| a.port()).collect()
}

/// What every node shares.
pub struct Shared {
    pub database_url: String,
    pub blob_url: String,
    pub smtp_url: String,
    /// The address clients and signing links use (haproxy, or the single node).
    pub public_url: String,
}

/// The environment of node `index` (its own data directory and port; everything else shared).
pub fn node_env(shared: &Shared, data_dir: &Path, port: u16) -> Vec<(String, String)> {
    let hsm = crate::softhsm();
    let pairs = [
        ("SIGILLUM_DATA_DIR", data_dir.display().to_string()),
        ("SIGILLUM_LISTEN", format!("127.0.0.1:{port}")),
        ("SIGILLUM_PUBLIC_URL", shared.public_url.clone()),
        ("SIGILLUM_DATABASE_URL", shared.database_url.clone()),
        ("SIGILLUM_BLOB_URL", shared.blob_url.clone()),
        ("SIGILLUM_KMS", hsm.kms_spec()),
        ("SIGILLUM_PKCS11_PIN", hsm.pin.expose_secret().to_owned()),
        ("SIGILLUM_SMTP_URL", shared.smtp_url.clone()),
        // Every endpoint is on this machine, which the run declares to be in Switzerland.
        ("SIGILLUM_JURISDICTION", "CH".into()),
        ("SIGILLUM_DATABASE_LOCATION", "CH".into()),
        ("SIGILLUM_BLOB_LOCATION", "CH".into()),
        ("SIGILLUM_KMS_LOCATION", "CH".into()),
        ("SIGILLUM_SMTP_LOCATION", "CH".into()),
        ("SIGILLUM_TRUSTED_PROXIES", "127.0.0.1".into()),
        ("SIGILLUM_WEBHOOK_ALLOW_PRIVATE", "true".into()),
        // Every client of the run comes through one address with one key: the per-IP and
        // per-credential buckets would measure themselves, not the cluster.
        ("SIGILLUM_RATE_LIMIT_IP", "off".into()),
        ("SIGILLUM_RATE_LIMIT_CREDENTIAL", "off".into()),
        ("SIGILLUM_RATE_LIMIT_SIGNER", "off".into()),
        ("SIGILLUM_LOG_FORMAT", "json".into()),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// One node: its environment (to start it again) and the process while it runs.
pub struct Node {
    pub name: String,
    pub port: u16,
    pub env: Vec<(String, String)>,
    pub server: Option<Server>,
}

impl Node {
    pub fn start(&mut self) {
        self.server = Some(Server::start(&self.env, &[]));
    }

    /// SIGKILL, as a crash or an OOM kill would.
    pub fn kill(&mut self) {
        if let Some(s) = self.server.take() {
            s.kill();
        }
    }
}

/// haproxy in front of the nodes.
pub struct Balancer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Balancer {
    /// Starts haproxy on `port`, round-robin over `backends` (ports of HTTPS nodes).
    pub fn start(port: u16, backends: &[(String, u16)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let pem = dir.path().join("haproxy.pem");
        self_signed_pem(&pem);
        let servers: String = backends.iter().map(|(name, p)| format!("  server {name} 127.0.0.1:{p}\n")).collect();
        let cfg = format!(
            "global\n  maxconn 4096\n  log stderr format raw local0 err\n\
             defaults\n  mode http\n  log global\n  timeout connect 2s\n  timeout client 120s\n  timeout server 120s\n\
             \x20 timeout http-request 10s\n  option redispatch\n  retries 3\n  retry-on conn-failure\n\
             frontend sigillum\n  bind 127.0.0.1:{port} ssl crt {pem} alpn h2,http/1.1\n  option forwardfor\n\
             \x20 default_backend nodes\n\
             backend nodes\n  balance roundrobin\n  option httpchk GET /healthz\n  http-check expect status 200\n\
             \x20 default-server check inter 500ms fall 2 rise 2 ssl verify none alpn http/1.1\n{servers}",
            pem = pem.display()
        );
        let cfg_path = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg_path, cfg).expect("write haproxy.cfg");
        let check = Command::new("haproxy").arg("-c").arg("-q").arg("-f").arg(&cfg_path).output();
        match check {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!("haproxy rejects its configuration: {}", String::from_utf8_lossy(&o.stderr)),
            Err(_) => panic!("haproxy is not installed: run scripts/deps.sh (it installs haproxy)"),
        }
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&cfg_path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn haproxy");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "haproxy did not start on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port, _dir: dir }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A throwaway certificate and key for haproxy's listener (clients of the run skip verification
/// of this one certificate only; the nodes' own TLS is what the product ships).
fn self_signed_pem(path: &PathBuf) {
    let key = path.with_extension("key");
    let crt = path.with_extension("crt");
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    let mut pem = std::fs::read(&crt).expect("cert");
    pem.extend(std::fs::read(&key).expect("key"));
    std::fs::write(path, pem).expect("haproxy.pem");
}
