//! The SecLang text the engine loads, composed from [`WafConfig`] in this order:
//!
//! 1. `waf/sigillum-base.conf` — engine settings and the body-parsing rules 200000-200007;
//! 2. the CRS setup: `waf/sigillum-crs-setup.conf`, or `Include` of the configured file;
//! 3. generated: `SecRuleEngine` from the mode and `tx.paranoia_level` (after the setup, so the
//!    configured level wins over one set there), then `WafConfig::extra_directives`;
//! 4. `waf/sigillum-exclusions.conf` — the reviewed exclusions for our own traffic (phase-1 `ctl:`
//!    rules, so they must come before the CRS rules);
//! 5. `Include <crs_dir>/rules/*.conf` — the CRS itself (libmodsecurity sorts the glob).
//!
//! Our three files are compiled into the binary, so a deployment needs only the Debian packages.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::path::Path;

use super::{WafConfig, WafError, WafMode};

const BASE: &str = include_str!("../../waf/sigillum-base.conf");
const CRS_SETUP: &str = include_str!("../../waf/sigillum-crs-setup.conf");
const EXCLUSIONS: &str = include_str!("../../waf/sigillum-exclusions.conf");

/// Rule id of the generated paranoia-level action (ids 10000-10099: generated and base rules).
const PARANOIA_RULE_ID: u32 = 10001;

pub(super) fn compose(cfg: &WafConfig) -> Result<String, WafError> {
    if !(1..=4).contains(&cfg.paranoia) {
        return Err(WafError::Config(format!("the paranoia level must be 1 to 4, not {}", cfg.paranoia)));
    }
    let engine = match cfg.mode {
        WafMode::Block => "On",
        WafMode::Detect => "DetectionOnly",
        WafMode::Off => return Err(WafError::Config("no rules are loaded in mode off".into())),
    };
    let rules_dir = cfg.crs_dir.join("rules");
    if !has_conf_files(&rules_dir) {
        return Err(WafError::CrsMissing(rules_dir));
    }
    let rules_glob = rules_dir.join("*.conf");
    let rules = include_path(&rules_glob)?;

    let mut text = String::with_capacity(BASE.len() + CRS_SETUP.len() + EXCLUSIONS.len() + 1024);
    text.push_str(BASE);
    text.push('\n');
    match &cfg.crs_setup {
        None => text.push_str(CRS_SETUP),
        Some(path) => {
            if !path.is_file() {
                return Err(WafError::CrsMissing(path.clone()));
            }
            let _ = writeln!(text, "Include {}", include_path(path)?);
        }
    }
    let _ = writeln!(text, "\n# generated from WafConfig\nSecRuleEngine {engine}");
    let _ = writeln!(
        text,
        "SecAction \"id:{PARANOIA_RULE_ID},phase:1,pass,nolog,t:none,setvar:tx.paranoia_level={}\"",
        cfg.paranoia
    );
    if !cfg.extra_directives.is_empty() {
        text.push_str(&cfg.extra_directives);
        text.push('\n');
    }
    text.push_str(EXCLUSIONS);
    let _ = writeln!(text, "\nInclude {rules}");
    Ok(text)
}

fn has_conf_files(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(Result::ok).any(|e| e.path().extension().is_some_and(|x| x == "conf")))
        .unwrap_or(false)
}

/// A path as libmodsecurity's `Include` takes it: unquoted (a quoted glob is not expanded), so
/// it must not contain whitespace, quotes or backslashes.
fn include_path(path: &Path) -> Result<&str, WafError> {
    let text = path.to_str().ok_or_else(|| WafError::Config(format!("{} is not UTF-8", path.display())))?;
    if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\')) {
        return Err(WafError::Config(format!(
            "{text:?} cannot be included: paths may not contain whitespace, quotes or backslashes"
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn crs_dir() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        std::fs::write(dir.path().join("rules/REQUEST-901-INITIALIZATION.conf"), "").unwrap();
        let path = dir.path().to_path_buf();
        (dir, path)
    }

    #[test]
    fn order_is_base_setup_generated_exclusions_rules() {
        let (_guard, dir) = crs_dir();
        let cfg =
            WafConfig { crs_dir: dir.clone(), paranoia: 3, extra_directives: "# extra".into(), ..WafConfig::default() };
        let text = compose(&cfg).unwrap();
        let at = |needle: &str| text.find(needle).unwrap_or_else(|| panic!("{needle} missing"));
        assert!(at("id:200001") < at("tx.crs_setup_version=334"));
        assert!(at("tx.crs_setup_version=334") < at("SecRuleEngine On"));
        assert!(at("SecRuleEngine On") < at("setvar:tx.paranoia_level=3"));
        assert!(at("setvar:tx.paranoia_level=3") < at("# extra"));
        assert!(at("# extra") < at("id:10110"));
        assert!(at("id:10110") < at(&format!("Include {}/rules/*.conf", dir.display())));
    }

    #[test]
    fn detect_mode_is_detection_only() {
        let (_guard, dir) = crs_dir();
        let text = compose(&WafConfig { crs_dir: dir, mode: WafMode::Detect, ..WafConfig::default() }).unwrap();
        assert!(text.contains("SecRuleEngine DetectionOnly"));
        assert!(!text.contains("SecRuleEngine On"));
    }

    #[test]
    fn a_configured_setup_file_is_included_instead_of_ours() {
        let (guard, dir) = crs_dir();
        let setup = guard.path().join("crs-setup.conf");
        std::fs::write(&setup, "").unwrap();
        let text =
            compose(&WafConfig { crs_dir: dir, crs_setup: Some(setup.clone()), ..WafConfig::default() }).unwrap();
        assert!(text.contains(&format!("Include {}", setup.display())));
        assert!(!text.contains("tx.crs_setup_version=334"));
    }

    #[test]
    fn bad_settings_are_refused() {
        let (_guard, dir) = crs_dir();
        for paranoia in [0, 5] {
            assert!(matches!(
                compose(&WafConfig { crs_dir: dir.clone(), paranoia, ..WafConfig::default() }),
                Err(WafError::Config(_))
            ));
        }
        assert!(matches!(
            compose(&WafConfig { crs_dir: "/nonexistent".into(), ..WafConfig::default() }),
            Err(WafError::CrsMissing(_))
        ));
        let spaced = tempfile::Builder::new().prefix("with space").tempdir().unwrap();
        std::fs::create_dir(spaced.path().join("rules")).unwrap();
        std::fs::write(spaced.path().join("rules/x.conf"), "").unwrap();
        assert!(matches!(
            compose(&WafConfig { crs_dir: spaced.path().to_path_buf(), ..WafConfig::default() }),
            Err(WafError::Config(_))
        ));
    }
}
