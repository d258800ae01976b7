//! The in-process web application firewall (DESIGN §2): libmodsecurity 3 with the OWASP Core
//! Rule Set 3.3.4, both from Debian (`apt-get install libmodsecurity-dev modsecurity-crs`).
//!
//! [`Waf::load`] parses the rules once; the loaded [`Waf`] is cheap to clone and is shared by all
//! requests and threads. [`Waf::inspect`] runs one request through the request phases (1 and 2)
//! and says whether the CRS would refuse it ([`Verdict`]); [`WafLayer`] puts that in front of an
//! axum router. Only `ffi` contains `unsafe`: this module is under the crate's `deny`, which `ffi`
//! lifts for itself, and every other submodule forbids it.
//!
//! Modes: `Block` refuses requests whose CRS anomaly score reaches the threshold (403); `Detect`
//! evaluates the same rules with `SecRuleEngine DetectionOnly` and only reports the rules that
//! matched; `Off` loads nothing and calls nothing.

mod body;
mod config;
mod ffi;
mod layer;
mod messages;
mod multipart;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

pub use layer::{WafEvent, WafHook, WafLayer, WafService, DEFAULT_BODY_CAP};

/// Where Debian's `modsecurity-crs` puts the Core Rule Set.
pub const DEBIAN_CRS_DIR: &str = "/usr/share/modsecurity-crs";
/// Debian's editable CRS setup file (used only when configured as [`WafConfig::crs_setup`]).
pub const DEBIAN_CRS_SETUP: &str = "/etc/modsecurity/crs/crs-setup.conf";

#[derive(Debug, thiserror::Error)]
pub enum WafError {
    #[error("invalid WAF configuration: {0}")]
    Config(String),
    #[error("the OWASP Core Rule Set was not found at {}; install it with `sudo apt-get install libmodsecurity-dev modsecurity-crs`", .0.display())]
    CrsMissing(PathBuf),
    #[error("libmodsecurity rejected the rules: {0}")]
    Rules(String),
    #[error("libmodsecurity could not be initialised")]
    Init,
    #[error("libmodsecurity failed in {0}")]
    Engine(&'static str),
    #[error("the request's {0} contains a NUL byte")]
    Input(&'static str),
}

/// What the WAF does with what it finds (`SIGILLUM_WAF`: `block` · `detect` · `off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WafMode {
    #[default]
    Block,
    Detect,
    Off,
}

impl WafMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Detect => "detect",
            Self::Off => "off",
        }
    }
}

impl fmt::Display for WafMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a WAF mode (block, detect or off)")]
pub struct BadWafMode(String);

impl FromStr for WafMode {
    type Err = BadWafMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "block" => Ok(Self::Block),
            "detect" => Ok(Self::Detect),
            "off" => Ok(Self::Off),
            _ => Err(BadWafMode(s.to_owned())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WafConfig {
    pub mode: WafMode,
    /// CRS paranoia level, 1 to 4 (1: few false positives; each level adds stricter rules).
    pub paranoia: u8,
    /// The CRS installation; its `rules/*.conf` are loaded ([`DEBIAN_CRS_DIR`] by default).
    pub crs_dir: PathBuf,
    /// A CRS setup file to include; `None` uses ours, the equivalent of Debian's defaults.
    pub crs_setup: Option<PathBuf>,
    /// More SecLang directives, loaded after the setup and before the exclusions and rules
    /// (site tuning; the CRS regression harness sets its `tx.*` variables here). Empty by default.
    pub extra_directives: String,
}

impl Default for WafConfig {
    fn default() -> Self {
        Self {
            mode: WafMode::Block,
            paranoia: 1,
            crs_dir: PathBuf::from(DEBIAN_CRS_DIR),
            crs_setup: None,
            extra_directives: String::new(),
        }
    }
}

/// One request as received. Header values are bytes (they need not be UTF-8).
#[derive(Debug, Clone, Copy)]
pub struct WafRequest<'a> {
    pub client_ip: IpAddr,
    pub client_port: u16,
    pub server_port: u16,
    pub method: &'a str,
    /// Path and query as received (`/api/v1/envelopes?q=%27`), not decoded.
    pub uri: &'a str,
    /// `"1.0"`, `"1.1"` or `"2.0"`.
    pub http_version: &'a str,
    pub headers: &'a [(&'a str, &'a [u8])],
    /// `Some` for textual bodies (JSON, urlencoded forms, `text/*`); `None` for binary bodies
    /// (PDF, octet-stream, multipart uploads), which are not fed to the body rules.
    pub body: Option<&'a [u8]>,
}

/// What the WAF concluded about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The request is refused (only ever in [`WafMode::Block`]).
    pub disruptive: bool,
    /// The status the engine asks for when `disruptive` (403 for CRS refusals, 400 for a body it
    /// could not parse; [`WafLayer`] answers 403 either way), 200 otherwise.
    pub status: u16,
    /// Every rule that matched, in the order they matched, without repeats (`942100`, `949110`).
    pub rule_ids: Vec<u32>,
    /// The rules' `msg` texts, one per id (empty where the rule has none).
    pub messages: Vec<String>,
}

impl Verdict {
    /// Nothing matched, nothing refused.
    pub fn pass() -> Self {
        Self { disruptive: false, status: 200, rule_ids: Vec::new(), messages: Vec::new() }
    }

    /// Whether any rule matched (in any mode).
    pub fn matched(&self) -> bool {
        !self.rule_ids.is_empty()
    }
}

/// A loaded rule set. Clones share it.
#[derive(Clone)]
pub struct Waf {
    mode: WafMode,
    engine: Option<Arc<ffi::Engine>>,
}

impl fmt::Debug for Waf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waf").field("mode", &self.mode).field("loaded", &self.engine.is_some()).finish()
    }
}

impl Waf {
    /// Loads our base configuration, the CRS setup, our exclusions and the CRS rules. Takes about
    /// 0.2 s; do it once at start-up. In mode `Off` nothing is loaded.
    pub fn load(cfg: &WafConfig) -> Result<Self, WafError> {
        if cfg.mode == WafMode::Off {
            return Ok(Self { mode: WafMode::Off, engine: None });
        }
        let text = config::compose(cfg)?;
        let engine = ffi::Engine::load(&text)?;
        Ok(Self { mode: cfg.mode, engine: Some(Arc::new(engine)) })
    }

    pub fn mode(&self) -> WafMode {
        self.mode
    }

    /// Evaluates one request. CPU-bound: about 1 ms for a GET with browser headers; a JSON body
    /// costs with the length of its longest values (a 50 KB string value ~30 ms, unless an
    /// exclusion takes it out as for drawn signatures, then ~2 ms), so in async code call it
    /// from a blocking thread when there is a body ([`WafLayer`] runs header-only inspections
    /// inline, like a TLS handshake). In mode `Off` it returns [`Verdict::pass`] without calling
    /// libmodsecurity.
    pub fn inspect(&self, req: &WafRequest<'_>) -> Result<Verdict, WafError> {
        let Some(engine) = &self.engine else { return Ok(Verdict::pass()) };
        let outcome = engine.evaluate(req)?;
        let mut verdict = Verdict::pass();
        let mut record = |m: messages::Match| {
            if !verdict.rule_ids.contains(&m.id) {
                verdict.rule_ids.push(m.id);
                verdict.messages.push(m.msg.unwrap_or_default());
            }
        };
        for m in outcome.log.into_matches() {
            record(m);
        }
        if let Some(intervention) = outcome.intervention {
            // The disruptive rule is reported in the intervention, not through the log callback.
            if let Some(m) = intervention.log.as_deref().and_then(messages::parse_line) {
                record(m);
            }
            if self.mode == WafMode::Block {
                verdict.disruptive = true;
                verdict.status =
                    u16::try_from(intervention.status).ok().filter(|s| (400..600).contains(s)).unwrap_or(403);
            }
        }
        Ok(verdict)
    }
}

/// For the fuzz target `multipart_scan`: walks every part of `body` the way the layer does and
/// checks that each step moves forward inside the buffer.
#[doc(hidden)]
pub fn fuzz_multipart_scan(body: &[u8], boundary: &str) {
    if boundary.is_empty() {
        return;
    }
    let mut from = 0;
    loop {
        match multipart::next_part(body, boundary, from) {
            multipart::Scan::Part { start, end } => {
                assert!(start >= from && start < end && end <= body.len(), "part {start}..{end} from {from}");
                let _ = multipart::form_with_empty_file(body, end, boundary);
                from = end;
            }
            multipart::Scan::Closed(end) => {
                assert!(end <= body.len());
                return;
            }
            multipart::Scan::NeedMore | multipart::Scan::Malformed => return,
        }
    }
}
