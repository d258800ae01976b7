//! Spawns the real `sigillum serve` process on a random loopback port with a fresh data dir.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};

pub struct Server {
    pub child: Child,
    pub addr: String,
    pub data_dir: PathBuf,
    pub fingerprint: String,
    stdout: mpsc::Receiver<String>,
    pub stdout_seen: Vec<String>,
    pub stderr_path: PathBuf,
}

/// Environment for a server on the embedded defaults in `data_dir`, on a random port.
pub fn embedded_env(data_dir: &Path) -> Vec<(String, String)> {
    vec![("SIGILLUM_DATA_DIR".into(), data_dir.display().to_string()), ("SIGILLUM_LISTEN".into(), "127.0.0.1:0".into())]
}

impl Server {
    /// Starts `sigillum serve` with exactly `env` (plus PATH/HOME and SoftHSM's config) and waits
    /// until it announces its address.
    pub fn start(env: &[(String, String)], args: &[&str]) -> Self {
        let data_dir = env
            .iter()
            .find(|(k, _)| k == "SIGILLUM_DATA_DIR")
            .map(|(_, v)| PathBuf::from(v))
            .unwrap_or_else(|| PathBuf::from("./sigillum-data"));
        std::fs::create_dir_all(data_dir.parent().unwrap_or(Path::new("."))).unwrap();
        let stderr_path = data_dir.with_extension(format!("stderr-{}.log", uuid::Uuid::new_v4().simple()));
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut cmd = Command::new(crate::sigillum_bin());
        cmd.arg("serve").args(args).env_clear();
        for keep in
            ["PATH", "HOME", "SOFTHSM2_CONF", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"]
        {
            if let Ok(v) = std::env::var(keep) {
                cmd.env(keep, v);
            }
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd.stdout(Stdio::piped()).stderr(stderr).spawn().expect("spawn sigillum");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut s = Server {
            child,
            addr: String::new(),
            data_dir,
            fingerprint: String::new(),
            stdout: rx,
            stdout_seen: vec![],
            stderr_path,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while s.addr.is_empty() || s.fingerprint.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match s.stdout.recv_timeout(left) {
                Ok(line) => {
                    if let Some(a) = line.split("listening on https://").nth(1) {
                        s.addr = a.trim().to_owned();
                    }
                    if let Some(f) = line.split("fingerprint ").nth(1) {
                        s.fingerprint = f.trim().to_owned();
                    }
                    s.stdout_seen.push(line);
                }
                Err(_) => panic!("server did not start: {}", s.stderr()),
            }
        }
        s
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{}{}", self.addr, path)
    }

    /// The generated certificate, for a client that trusts exactly it.
    pub fn cert_pem(&self) -> Vec<u8> {
        std::fs::read(self.data_dir.join("tls/cert.pem")).unwrap()
    }

    /// SHA-256 fingerprint of the certificate on disk, formatted as the server prints it.
    pub fn cert_fingerprint_on_disk(&self) -> String {
        let der = CertificateDer::from_pem_slice(&self.cert_pem()).unwrap();
        Sha256::digest(der.as_ref()).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
    }

    /// An HTTPS client that trusts only this server's certificate.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&self.cert_pem()).unwrap())
            .tls_built_in_root_certs(false)
            .build()
            .unwrap()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (bounded) for the exit; returns the status and all stdout.
    pub fn terminate(mut self) -> (ExitStatus, String, String) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(40);
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < deadline, "server ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        while let Ok(l) = self.stdout.recv_timeout(Duration::from_millis(500)) {
            self.stdout_seen.push(l);
        }
        let out = self.stdout_seen.join("\n");
        let err = self.stderr();
        (status, out, err)
    }

    /// SIGKILL, as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows what the server logged: the log file lives in the test's temporary
        // directory and is gone once the test ends, so a CI failure would otherwise say only "500".
        if std::thread::panicking() {
            let log = self.stderr();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(SERVER_LOG_TAIL)..].join("\n");
            eprintln!("--- last {} lines the server at {} logged ---\n{tail}\n---", SERVER_LOG_TAIL, self.addr);
        }
    }
}

/// How much of a server's log a failing test prints.
const SERVER_LOG_TAIL: usize = 80;
