//! Configuration (DESIGN §8): built-in embedded defaults, then a TOML file (`--config`), then
//! `SIGILLUM_*` environment variables, each overriding the one before. TOML keys are the variable
//! names without the `SIGILLUM_` prefix, lower-case (`data_dir`, `database_url`, …). Secrets are
//! held in `SecretString`, and [`Config::redacted`] is the only view that is ever logged.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use secrecy::SecretString;
use serde_json::{json, Value};

/// Every configuration key. Environment names are `SIGILLUM_` + the key in upper case.
pub const KEYS: &[&str] = &[
    "data_dir",
    "listen",
    "http_redirect_listen",
    "tls_cert",
    "tls_key",
    "public_url",
    "database_url",
    "blob_url",
    "kms",
    "master_key",
    "pkcs11_pin",
    "smtp_url",
    "tsa_url",
    "seal_cert_chain",
    "jurisdiction",
    "database_location",
    "blob_location",
    "kms_location",
    "smtp_location",
    "tsa_location",
    "waf",
    "waf_paranoia",
    "waf_crs_dir",
    "stripe_secret_key",
    "stripe_webhook_secret",
    "stripe_api_base",
    "paypal_client_id",
    "paypal_client_secret",
    "paypal_webhook_id",
    "paypal_api_base",
    "billing_plans",
    "node_id",
    "log_format",
    "trusted_proxies",
    "log_origin",
    "max_upload_mb",
    "mail_from",
    "webhook_allow_private",
    "pdf_remove_links",
    "pdf_fonts",
    "metrics_token",
    "frame_ancestors",
    "rate_limit_ip",
    "rate_limit_auth",
    "rate_limit_credential",
    "rate_limit_signer",
    "max_connections",
    "max_connections_per_ip",
    "job_lanes",
    "security_contact",
    "security_policy",
    "security_txt_expires",
    "security_languages",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WafMode {
    Block,
    Detect,
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// The resolved configuration.
#[derive(Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub public_url: url::Url,
    pub database_url: SecretString,
    pub blob_url: String,
    pub kms: String,
    pub master_key: Option<SecretString>,
    pub pkcs11_pin: Option<SecretString>,
    pub smtp_url: Option<SecretString>,
    pub tsa_url: Option<String>,
    pub jurisdiction: String,
    /// Where each store and service is (checked against the jurisdiction at load).
    pub residency: crate::residency::Residency,
    pub waf: WafMode,
    /// CRS paranoia level 1–4 and where the rule set lives.
    pub waf_paranoia: u8,
    pub waf_crs_dir: PathBuf,
    pub stripe_secret_key: Option<SecretString>,
    pub stripe_webhook_secret: Option<SecretString>,
    pub stripe_api_base: Option<String>,
    pub paypal_client_id: Option<String>,
    pub paypal_client_secret: Option<SecretString>,
    pub paypal_webhook_id: Option<String>,
    pub paypal_api_base: Option<String>,
    /// The plans (`SIGILLUM_BILLING_PLANS`, a JSON list); a free plan alone when unset.
    pub billing_plans: sigillum_core::billing::Catalogue,
    pub node_id: String,
    pub log_format: LogFormat,
    /// Proxies whose `X-Forwarded-For` is believed (comma-separated addresses or CIDRs).
    pub trusted_proxies: sigillum_edge::TrustedProxies,
    /// Name of the audit log (first line of every checkpoint and the key name); fixed at first start.
    pub log_origin: String,
    /// Largest document accepted for upload.
    pub max_upload_bytes: usize,
    /// Sender of every mail, e.g. `Sigillum <no-reply@sign.example.com>`.
    pub mail_from: String,
    /// Let webhooks reach private and loopback addresses over plain HTTP (tests only).
    pub webhook_allow_private: bool,
    /// Whether uploads lose their links to the web (`URI` actions) along with active content.
    pub pdf_remove_links: bool,
    /// Font files (TrueType/OpenType, `path` or `path#face-index` for a collection) that draw
    /// the characters DejaVu Sans has not, tried in order; `None`: the Debian Noto CJK files
    /// that exist on this system.
    pub pdf_fonts: Option<Vec<String>>,
    /// Bearer token of the Prometheus scraper for `/metrics`; unset: no metrics route.
    pub metrics_token: Option<SecretString>,
    /// PEM file with an imported seal certificate (first) and its chain, issued by the operator's
    /// CA for the key manager's seal key (`sigillum keys seal-csr`); unset: the internal CA's.
    pub seal_cert_chain: Option<PathBuf>,
    /// Sites that may frame the embedded-signing page (`https://…` origins).
    pub frame_ancestors: Vec<String>,
    /// Rate-limit buckets (`N/s|min|h` or `off` each).
    pub rate_limits: sigillum_edge::RateConfig,
    /// Where the optional plain-HTTP listener runs; it only redirects to `public_url`.
    pub http_redirect_listen: Option<SocketAddr>,
    /// Open connections at once, in all and from one client address.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Background jobs this node runs at once.
    pub job_lanes: usize,
    /// security.txt (RFC 9116): contacts, expiry (RFC 3339; unset: a year after start), policy
    /// URL, languages.
    pub security_contacts: Vec<String>,
    pub security_txt_expires: Option<String>,
    pub security_policy: String,
    pub security_languages: String,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Config({})", self.redacted())
    }
}

/// Reads the TOML file and the environment into one map of raw values.
fn gather(file: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<BTreeMap<String, String>> {
    let mut raw = BTreeMap::new();
    if let Some(path) = file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        let table: toml::Table = text.parse().with_context(|| format!("{} is not valid TOML", path.display()))?;
        for (k, v) in table {
            let k = k.to_ascii_lowercase();
            if !KEYS.contains(&k.as_str()) {
                bail!("unknown configuration key {k:?} in {}", path.display());
            }
            let s = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                _ => bail!("configuration key {k} must be a string"),
            };
            raw.insert(k, s);
        }
    }
    for k in KEYS {
        if let Some(v) = env(&format!("SIGILLUM_{}", k.to_ascii_uppercase())) {
            raw.insert((*k).to_owned(), v);
        }
    }
    Ok(raw)
}

impl Config {
    /// Loads from the process environment and an optional TOML file.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        Self::from_sources(file, &|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// Loads from a file and an environment lookup (tests pass their own).
    pub fn from_sources(file: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let raw = gather(file, env)?;
        let get = |k: &str| raw.get(k).cloned();
        let secret = |k: &str| get(k).map(SecretString::from);
        let data_dir = PathBuf::from(get("data_dir").unwrap_or_else(|| "./sigillum-data".into()));
        let dd = data_dir.display().to_string();
        let listen: SocketAddr = get("listen")
            .unwrap_or_else(|| "127.0.0.1:8443".into())
            .parse()
            .context("SIGILLUM_LISTEN must be host:port, e.g. 127.0.0.1:8443")?;
        let public_url = url::Url::parse(&get("public_url").unwrap_or_else(|| "https://localhost:8443".into()))
            .context("SIGILLUM_PUBLIC_URL must be an absolute URL")?;
        if public_url.scheme() != "https" {
            bail!("SIGILLUM_PUBLIC_URL must use https");
        }
        let waf = match get("waf").as_deref().unwrap_or("block") {
            "block" => WafMode::Block,
            "detect" => WafMode::Detect,
            "off" => WafMode::Off,
            other => bail!("SIGILLUM_WAF must be block, detect or off, not {other:?}"),
        };
        let waf_paranoia: u8 = get("waf_paranoia")
            .unwrap_or_else(|| "1".into())
            .trim()
            .parse()
            .ok()
            .filter(|p| (1..=4).contains(p))
            .context("SIGILLUM_WAF_PARANOIA must be 1, 2, 3 or 4")?;
        let waf_crs_dir =
            PathBuf::from(get("waf_crs_dir").unwrap_or_else(|| sigillum_edge::waf::DEBIAN_CRS_DIR.to_owned()));
        let jurisdiction = get("jurisdiction").unwrap_or_else(|| "CH".into());
        if !crate::residency::is_country_code(&jurisdiction) {
            bail!("SIGILLUM_JURISDICTION must be an ISO 3166-1 alpha-2 code such as CH");
        }
        let (tls_cert, tls_key) = (get("tls_cert").map(PathBuf::from), get("tls_key").map(PathBuf::from));
        if tls_cert.is_some() != tls_key.is_some() {
            bail!("SIGILLUM_TLS_CERT and SIGILLUM_TLS_KEY must be set together");
        }
        let log_format = match get("log_format").as_deref().unwrap_or("json") {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => bail!("SIGILLUM_LOG_FORMAT must be json or text, not {other:?}"),
        };
        // The host and port tell apart nodes that share a machine (their leases and liveness
        // locks go by this id, see `sigillum_store::liveness`).
        let node_id = get("node_id").unwrap_or_else(|| {
            let host =
                std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "node".into());
            match listen.port() {
                // A port the system picks says nothing until it is bound; the process does.
                0 => format!("{host}:pid{}", std::process::id()),
                port => format!("{host}:{port}"),
            }
        });
        let trusted_proxies = sigillum_edge::TrustedProxies::parse(&get("trusted_proxies").unwrap_or_default())
            .context("SIGILLUM_TRUSTED_PROXIES must list IP addresses or CIDR networks, comma-separated")?;
        let log_origin = get("log_origin").unwrap_or_else(|| {
            let host = public_url.host_str().unwrap_or("localhost");
            match public_url.port() {
                Some(p) => format!("{host}:{p}/log"),
                None => format!("{host}/log"),
            }
        });
        if log_origin.is_empty() || log_origin.contains(|c: char| c.is_whitespace() || c == '+') {
            bail!("SIGILLUM_LOG_ORIGIN must be non-empty without spaces or '+'");
        }
        let max_upload_mb: usize = get("max_upload_mb")
            .unwrap_or_else(|| "25".into())
            .parse()
            .ok()
            .filter(|mb| (1..=1024).contains(mb))
            .context("SIGILLUM_MAX_UPLOAD_MB must be a whole number of MiB from 1 to 1024")?;
        let mail_from = get("mail_from")
            .unwrap_or_else(|| format!("Sigillum <no-reply@{}>", public_url.host_str().unwrap_or("localhost")));
        let database_url = get("database_url").unwrap_or_else(|| format!("sqlite://{dd}/sigillum.db"));
        let blob_url = get("blob_url").unwrap_or_else(|| format!("file://{dd}/blobs"));
        let kms = get("kms").unwrap_or_else(|| format!("local:{dd}/keyring"));
        // Embedded ones are on this node; a PKCS#11 module may front a network HSM, so it is
        // external like the database server, the object store, an SMTP relay and a TSA.
        let residency = crate::residency::Residency::new(
            &jurisdiction,
            &[
                ("database", "database_location", !database_url.starts_with("sqlite:"), get("database_location")),
                ("blob_store", "blob_location", !blob_url.starts_with("file:"), get("blob_location")),
                ("key_manager", "kms_location", !kms.starts_with("local:"), get("kms_location")),
                ("mail", "smtp_location", get("smtp_url").is_some(), get("smtp_location")),
                ("tsa", "tsa_location", get("tsa_url").is_some(), get("tsa_location")),
            ],
        );
        residency.check().map_err(anyhow::Error::msg)?;
        let pdf_remove_links = match get("pdf_remove_links").as_deref() {
            None | Some("false" | "0" | "") => false,
            Some("true" | "1") => true,
            Some(other) => bail!("SIGILLUM_PDF_REMOVE_LINKS must be true or false, not {other:?}"),
        };
        let webhook_allow_private = match get("webhook_allow_private").as_deref() {
            None | Some("false" | "0" | "") => false,
            Some("true" | "1") => true,
            Some(other) => bail!("SIGILLUM_WEBHOOK_ALLOW_PRIVATE must be true or false, not {other:?}"),
        };
        let list = |k: &str| -> Vec<String> {
            get(k)
                .unwrap_or_default()
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let frame_ancestors = list("frame_ancestors");
        let pdf_fonts = get("pdf_fonts").map(|_| list("pdf_fonts"));
        sigillum_edge::HeaderPolicy::new(&frame_ancestors)
            .context("SIGILLUM_FRAME_ANCESTORS must list https origins such as https://crm.example.com")?;
        let defaults = sigillum_edge::RateConfig::default();
        let rate = |k: &str, default: Option<sigillum_edge::rate_limit::Rate>| match get(k) {
            None => Ok(default),
            Some(v) => sigillum_edge::rate_limit::parse_rate(&v)
                .with_context(|| format!("SIGILLUM_{} must be a rate such as 600/min, or off", k.to_ascii_uppercase())),
        };
        let rate_limits = sigillum_edge::RateConfig {
            per_ip: rate("rate_limit_ip", defaults.per_ip)?,
            auth_per_ip: rate("rate_limit_auth", defaults.auth_per_ip)?,
            per_credential: rate("rate_limit_credential", defaults.per_credential)?,
            per_signer_token: rate("rate_limit_signer", defaults.per_signer_token)?,
        };
        let count = |k: &str, default: usize| -> anyhow::Result<usize> {
            match get(k) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .with_context(|| format!("SIGILLUM_{} must be a whole number above 0", k.to_ascii_uppercase())),
            }
        };
        let max_connections = count("max_connections", 4096)?;
        let max_connections_per_ip = count("max_connections_per_ip", 256)?;
        let job_lanes = count("job_lanes", sigillum_core::workflow::DEFAULT_JOB_LANES)?;
        let http_redirect_listen = get("http_redirect_listen")
            .map(|v| v.parse::<SocketAddr>())
            .transpose()
            .context("SIGILLUM_HTTP_REDIRECT_LISTEN must be host:port, e.g. 0.0.0.0:80")?;
        let host = public_url.host_str().unwrap_or("localhost").to_owned();
        let mut security_contacts = list("security_contact");
        if security_contacts.is_empty() {
            security_contacts.push(format!("mailto:security@{host}"));
        }
        if let Some(bad) = security_contacts.iter().find(|c| !(c.starts_with("mailto:") || c.starts_with("https://"))) {
            bail!("SIGILLUM_SECURITY_CONTACT must list mailto: or https: URIs, not {bad:?}");
        }
        let security_txt_expires = get("security_txt_expires");
        if let Some(e) = &security_txt_expires {
            time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339)
                .context("SIGILLUM_SECURITY_TXT_EXPIRES must be an RFC 3339 date-time such as 2027-12-31T23:59:59Z")?;
        }
        let security_policy = get("security_policy")
            .unwrap_or_else(|| public_url.join("/security-policy").map(|u| u.to_string()).unwrap_or_default());
        let security_languages = get("security_languages").unwrap_or_else(|| "en".into());
        let stripe_set = [get("stripe_secret_key"), get("stripe_webhook_secret")].map(|v| v.is_some());
        if stripe_set[0] != stripe_set[1] {
            bail!("SIGILLUM_STRIPE_SECRET_KEY and SIGILLUM_STRIPE_WEBHOOK_SECRET must be set together");
        }
        let paypal_set =
            [get("paypal_client_id"), get("paypal_client_secret"), get("paypal_webhook_id")].map(|v| v.is_some());
        if paypal_set.iter().any(|s| *s) && !paypal_set.iter().all(|s| *s) {
            bail!("SIGILLUM_PAYPAL_CLIENT_ID, SIGILLUM_PAYPAL_CLIENT_SECRET and SIGILLUM_PAYPAL_WEBHOOK_ID must be set together");
        }
        let billing_plans = match get("billing_plans") {
            Some(json) => sigillum_core::billing::Catalogue::from_json(&json)
                .map_err(|e| anyhow::anyhow!("SIGILLUM_BILLING_PLANS: {e}"))?,
            None if stripe_set[0] || paypal_set[0] => {
                bail!("SIGILLUM_BILLING_PLANS must list the plans when a payment provider is configured")
            }
            None => sigillum_core::billing::Catalogue::default_free(),
        };
        Ok(Self {
            billing_plans,
            frame_ancestors,
            rate_limits,
            http_redirect_listen,
            max_connections,
            max_connections_per_ip,
            job_lanes,
            security_contacts,
            security_txt_expires,
            security_policy,
            security_languages,
            mail_from,
            webhook_allow_private,
            pdf_remove_links,
            pdf_fonts,
            metrics_token: secret("metrics_token"),
            seal_cert_chain: get("seal_cert_chain").map(PathBuf::from),
            max_upload_bytes: max_upload_mb * 1024 * 1024,
            trusted_proxies,
            log_origin,
            listen,
            tls_cert,
            tls_key,
            public_url,
            database_url: SecretString::from(database_url),
            blob_url,
            kms,
            residency,
            master_key: secret("master_key"),
            pkcs11_pin: secret("pkcs11_pin"),
            smtp_url: secret("smtp_url"),
            tsa_url: get("tsa_url"),
            jurisdiction,
            waf,
            waf_paranoia,
            waf_crs_dir,
            stripe_secret_key: secret("stripe_secret_key"),
            stripe_webhook_secret: secret("stripe_webhook_secret"),
            stripe_api_base: get("stripe_api_base"),
            paypal_client_id: get("paypal_client_id"),
            paypal_client_secret: secret("paypal_client_secret"),
            paypal_webhook_id: get("paypal_webhook_id"),
            paypal_api_base: get("paypal_api_base"),
            node_id,
            log_format,
            data_dir,
        })
    }

    /// The effective configuration as JSON, every secret replaced by `"<redacted>"` (set) or
    /// null (unset); the database URL keeps scheme, host and path but loses credentials.
    pub fn redacted(&self) -> Value {
        let hidden = |s: &Option<SecretString>| if s.is_some() { json!("<redacted>") } else { Value::Null };
        json!({
            "data_dir": self.data_dir,
            "listen": self.listen.to_string(),
            "tls_cert": self.tls_cert,
            "tls_key": self.tls_key,
            "public_url": self.public_url.as_str(),
            "database_url": redact_url(secrecy::ExposeSecret::expose_secret(&self.database_url)),
            "blob_url": self.blob_url,
            "kms": self.kms,
            "master_key": hidden(&self.master_key),
            "pkcs11_pin": hidden(&self.pkcs11_pin),
            "smtp_url": hidden(&self.smtp_url),
            "metrics_token": hidden(&self.metrics_token),
            "tsa_url": self.tsa_url,
            "seal_cert_chain": self.seal_cert_chain,
            "jurisdiction": self.jurisdiction,
            "residency": self.residency.report(),
            "waf": self.waf,
            "waf_paranoia": self.waf_paranoia,
            "waf_crs_dir": self.waf_crs_dir,
            "stripe_secret_key": hidden(&self.stripe_secret_key),
            "stripe_webhook_secret": hidden(&self.stripe_webhook_secret),
            "stripe_api_base": self.stripe_api_base,
            "paypal_client_id": self.paypal_client_id,
            "paypal_client_secret": hidden(&self.paypal_client_secret),
            "paypal_webhook_id": self.paypal_webhook_id,
            "paypal_api_base": self.paypal_api_base,
            "billing_plans": self.billing_plans.plans().iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            "node_id": self.node_id,
            "log_format": match self.log_format { LogFormat::Json => "json", LogFormat::Text => "text" },
            "trusted_proxies": format!("{:?}", self.trusted_proxies),
            "log_origin": self.log_origin,
            "max_upload_bytes": self.max_upload_bytes,
            "frame_ancestors": self.frame_ancestors,
            "rate_limits": format!("{:?}", self.rate_limits),
            "http_redirect_listen": self.http_redirect_listen,
            "max_connections": self.max_connections,
            "max_connections_per_ip": self.max_connections_per_ip,
            "job_lanes": self.job_lanes,
            "security_contact": self.security_contacts,
            "security_txt_expires": self.security_txt_expires,
            "security_policy": self.security_policy,
            "security_languages": self.security_languages,
        })
    }
}

/// `postgres://user:pw@host/db` → `postgres://host/db`.
fn redact_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut p) if p.has_host() => {
            let _ = p.set_username("");
            let _ = p.set_password(None);
            p.to_string()
        }
        Ok(p) => p.scheme().to_owned() + ":<path>",
        Err(_) => "<redacted>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn embedded_defaults_match_design() {
        let c = Config::from_sources(None, &|_| None).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("./sigillum-data"));
        assert_eq!(c.listen.to_string(), "127.0.0.1:8443");
        assert_eq!(c.public_url.as_str(), "https://localhost:8443/");
        assert_eq!(c.database_url.expose_secret(), "sqlite://./sigillum-data/sigillum.db");
        assert_eq!(c.blob_url, "file://./sigillum-data/blobs");
        assert_eq!(c.kms, "local:./sigillum-data/keyring");
        assert_eq!(c.jurisdiction, "CH");
        assert_eq!(c.waf, WafMode::Block);
        assert!(c.smtp_url.is_none() && c.tsa_url.is_none() && c.stripe_secret_key.is_none());
        assert!(c.trusted_proxies.is_empty());
        assert_eq!(c.log_origin, "localhost:8443/log");
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.toml");
        std::fs::write(&f, "data_dir = \"/srv/s\"\nlisten = \"0.0.0.0:9443\"\nwaf = \"detect\"\n").unwrap();
        let c = Config::from_sources(Some(&f), &env_of(&[("SIGILLUM_LISTEN", "127.0.0.1:7000")])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(c.data_dir, PathBuf::from("/srv/s"));
        assert_eq!(c.waf, WafMode::Detect);
        assert_eq!(c.blob_url, "file:///srv/s/blobs");
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let bad: &[&[(&str, &str)]] = &[
            &[("SIGILLUM_WAF", "maybe")],
            &[("SIGILLUM_LISTEN", "nowhere")],
            &[("SIGILLUM_JURISDICTION", "Switzerland")],
            &[("SIGILLUM_PUBLIC_URL", "http://x")],
            &[("SIGILLUM_TLS_CERT", "/c.pem")],
            &[("SIGILLUM_TRUSTED_PROXIES", "10.0.0.0/8, lb.internal")],
            &[("SIGILLUM_LOG_ORIGIN", "my log")],
            &[("SIGILLUM_STRIPE_SECRET_KEY", "sk_test_1")],
            &[("SIGILLUM_PAYPAL_CLIENT_ID", "id"), ("SIGILLUM_PAYPAL_CLIENT_SECRET", "s")],
            &[("SIGILLUM_STRIPE_SECRET_KEY", "sk_test_1"), ("SIGILLUM_STRIPE_WEBHOOK_SECRET", "whsec_1")],
            &[("SIGILLUM_BILLING_PLANS", r#"[{"id":"team","name":"Team","stripe_price":"price_1"}]"#)],
            &[("SIGILLUM_BILLING_PLANS", "free")],
        ];
        for pairs in bad {
            let pairs: &'static [(&'static str, &'static str)] = Box::leak(pairs.to_vec().into_boxed_slice());
            assert!(Config::from_sources(None, &env_of(pairs)).is_err(), "{pairs:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.toml");
        std::fs::write(&f, "colour = \"blue\"\n").unwrap();
        assert!(Config::from_sources(Some(&f), &|_| None).is_err());
    }

    #[test]
    fn redacted_view_hides_every_secret() {
        let c = Config::from_sources(
            None,
            &env_of(&[
                ("SIGILLUM_MASTER_KEY", "aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11"),
                ("SIGILLUM_DATABASE_URL", "postgres://sig:hunter2@db.internal:5432/sigillum"),
                ("SIGILLUM_STRIPE_SECRET_KEY", "sk_live_abcdef"),
                ("SIGILLUM_STRIPE_WEBHOOK_SECRET", "whsec_zyxwvu"),
                ("SIGILLUM_PAYPAL_CLIENT_ID", "pp-client"),
                ("SIGILLUM_PAYPAL_CLIENT_SECRET", "pp-secret-qwerty"),
                ("SIGILLUM_PAYPAL_WEBHOOK_ID", "WH-1"),
                (
                    "SIGILLUM_BILLING_PLANS",
                    r#"[{"id":"free","name":"Free"},{"id":"team","name":"Team","stripe_price":"price_1"}]"#,
                ),
                ("SIGILLUM_SMTP_URL", "smtps://mail:pw123@smtp.example"),
            ]),
        )
        .unwrap();
        let shown = format!("{} {:?}", c.redacted(), c);
        for secret in ["aa11aa11", "hunter2", "sk_live_abcdef", "whsec_zyxwvu", "pp-secret-qwerty", "pw123"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(shown.contains("db.internal"));
    }
}
