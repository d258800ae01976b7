//! Test helpers shared by every crate's integration tests (never linked into the product).
//!
//! Real services, no mocks: a SoftHSM2 token, a fresh database on the PostgreSQL server that the
//! test set-up (`scripts/test.sh`) started on loopback, and a prefix on its S3-compatible server.
//! A helper whose service is missing panics with the command that provides it, so a backend can
//! never be skipped silently.

pub mod api;
pub mod cluster;
pub mod flow;
pub mod hooks;
pub mod payments;
pub mod pdf;
pub mod server;
pub mod smtp;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use secrecy::SecretString;

/// RFC 6238 (SHA-1, 6 digits, 30 s) computed by Python's standard library, independently of the
/// TOTP crate the server uses.
pub fn totp_code(secret_b32: &str, unix_s: i64) -> String {
    let script = "import base64,hmac,hashlib,struct,sys\n\
        k=base64.b32decode(sys.argv[1]+'='*(-len(sys.argv[1])%8))\n\
        h=hmac.new(k,struct.pack('>Q',int(sys.argv[2])//30),hashlib.sha1).digest()\n\
        o=h[-1]&15\n\
        print('%06d'%((struct.unpack('>I',h[o:o+4])[0]&0x7fffffff)%1000000))";
    let out =
        std::process::Command::new("python3").args(["-c", script, secret_b32, &unix_s.to_string()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The UTC calendar date `(year, month, day)` of a unix time, by Howard Hinnant's civil-from-days
/// algorithm: independent of the date code under test.
pub fn civil_date(unix_s: i64) -> (i64, i64, i64) {
    let days = unix_s.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A SoftHSM2 token initialised for this test process.
pub struct SoftHsm {
    pub module: PathBuf,
    pub token: String,
    pub pin: SecretString,
    _dir: tempfile::TempDir,
}

impl SoftHsm {
    /// The `SIGILLUM_KMS` value for this token.
    pub fn kms_spec(&self) -> String {
        format!("pkcs11:module={};token={}", self.module.display(), self.token)
    }

    /// Initialises one more token, labelled `label`, in this process's token directory (with the
    /// same PINs), the way an operator would with `softhsm2-util` while the module is loaded.
    pub fn add_token(&self, label: &str) {
        init_token(&self._dir.path().join("softhsm2.conf"), label);
    }
}

fn init_token(conf: &std::path::Path, label: &str) {
    let out = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", "8642"])
        .env("SOFTHSM2_CONF", conf)
        .output()
        .expect("softhsm2-util not found: run scripts/test.sh");
    assert!(out.status.success(), "softhsm2-util: {}", String::from_utf8_lossy(&out.stderr));
}

/// Path of the SoftHSM2 PKCS#11 module.
/// The test token's user PIN: long and distinctive, so a test that greps output for it does not
/// trip over a port number or a timestamp that happens to contain four digits.
const PIN: &str = "pin-7531-q9zx-sigillum";

pub fn softhsm_module() -> PathBuf {
    let candidates = ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("SoftHSM2 is not installed: run scripts/test.sh (it installs softhsm2)"))
}

/// One token per process (a PKCS#11 module is initialised once per process, and SoftHSM2 reads
/// `SOFTHSM2_CONF` at that moment).
pub fn softhsm() -> &'static SoftHsm {
    static TOKEN: OnceLock<SoftHsm> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display()),
        )
        .unwrap();
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let token = format!("sigillum-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        init_token(&conf, &token);
        SoftHsm { module: softhsm_module(), token, pin: SecretString::from(PIN), _dir: dir }
    })
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through scripts/test.sh, which starts PostgreSQL and an S3 server on loopback")
    })
}

/// A fresh, empty PostgreSQL database on the test server; returns its URL.
pub async fn postgres_database() -> String {
    use sqlx::Connection;
    let admin = required_env("SIGILLUM_TEST_DATABASE_URL");
    let name = format!("sgl_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to test PostgreSQL");
    sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str()).await.expect("create database");
    conn.close().await.ok();
    match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("SIGILLUM_TEST_DATABASE_URL must end in /dbname"),
    }
}

/// A `SIGILLUM_BLOB_URL` for a fresh prefix in the test S3 bucket.
pub fn s3_blob_url() -> String {
    let endpoint = required_env("SIGILLUM_TEST_S3_ENDPOINT");
    let bucket = std::env::var("SIGILLUM_TEST_S3_BUCKET").unwrap_or_else(|_| "sigillum-test".into());
    format!("s3://{bucket}/t-{}?endpoint={endpoint}&region=eu-central-2", uuid::Uuid::new_v4().simple())
}

/// The `sigillum` binary built for these tests.
pub fn sigillum_bin() -> PathBuf {
    if let Ok(p) = std::env::var("CARGO_BIN_EXE_sigillum") {
        return PathBuf::from(p);
    }
    let mut p = std::env::current_exe().unwrap();
    p.pop();
    if p.ends_with("deps") {
        p.pop();
    }
    p.join("sigillum")
}
