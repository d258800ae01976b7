//! Message catalogues of the browser UI and of the emails: English, German, French and Italian
//! (Switzerland's languages), one JSON file per language in `crates/web/i18n/`. No user-facing
//! string lives outside them; a unit test proves the four catalogues have the same keys and the
//! same placeholders, so a missing translation fails the build's tests, not a user.
//!
//! The language of a request: an explicit `?lang=` (the switcher, remembered in a cookie), else
//! that cookie, else the browser's `Accept-Language`, else English.

use std::sync::LazyLock;

use axum::http::{header, HeaderMap};
use serde_json::Value;

/// The languages, in the switcher's order.
pub const LANGUAGES: [&str; 4] = ["en", "de", "fr", "it"];
/// Cookie remembering the switcher's choice (readable by no other site: `__Host-`, Strict).
pub const LANG_COOKIE: &str = "__Host-sigillum_lang";

const SOURCES: [(&str, &str); 4] = [
    ("en", include_str!("../../i18n/en.json")),
    ("de", include_str!("../../i18n/de.json")),
    ("fr", include_str!("../../i18n/fr.json")),
    ("it", include_str!("../../i18n/it.json")),
];

/// The parsed catalogues (`None` only if a file is not JSON, which the tests rule out).
static CATALOGUES: LazyLock<Option<Vec<(&'static str, Value)>>> = LazyLock::new(|| {
    SOURCES.iter().map(|(lang, src)| serde_json::from_str::<Value>(src).ok().map(|v| (*lang, v))).collect()
});

/// The catalogue of `lang` (a member of [`LANGUAGES`]; anything else gets English).
pub fn catalogue(lang: &str) -> Option<&'static Value> {
    let all = CATALOGUES.as_ref()?;
    all.iter().find(|(l, _)| *l == lang).or_else(|| all.first()).map(|(_, v)| v)
}

/// One message by dotted key (`"sign.title"`), with `{placeholders}` filled in; the key itself
/// when missing (never happens for keys the tests know).
pub fn text(lang: &str, key: &str, args: &[(&str, &str)]) -> String {
    let found = catalogue(lang).and_then(|c| key.split('.').try_fold(c, |v, k| v.get(k))).and_then(Value::as_str);
    let mut out = found.unwrap_or(key).to_owned();
    for (name, value) in args {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

/// A supported language for a tag such as `de-CH` or `FR`.
pub fn supported(tag: &str) -> Option<&'static str> {
    let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
    LANGUAGES.into_iter().find(|l| *l == primary)
}

/// The language of a request (see the module docs).
pub fn negotiate(explicit: Option<&str>, headers: &HeaderMap) -> &'static str {
    if let Some(l) = explicit.and_then(supported) {
        return l;
    }
    if let Some(l) = cookie(headers).and_then(supported) {
        return l;
    }
    headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).and_then(from_accept_language).unwrap_or("en")
}

fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (name, value) = c.trim().split_once('=')?;
        (name == LANG_COOKIE).then_some(value)
    })
}

/// The best supported language of an `Accept-Language` value (highest `q`, then order).
fn from_accept_language(value: &str) -> Option<&'static str> {
    let mut best: Option<(f32, &'static str)> = None;
    for item in value.split(',') {
        let mut parts = item.split(';');
        let Some(lang) = parts.next().and_then(supported) else { continue };
        let q =
            parts.find_map(|p| p.trim().strip_prefix("q=")).and_then(|q| q.trim().parse::<f32>().ok()).unwrap_or(1.0);
        if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, lang));
        }
    }
    best.map(|(_, l)| l)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Every string of a catalogue by dotted key (array items as `key.0`, `key.1`, …).
    pub(crate) fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    flatten(&key, v, out);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    flatten(&format!("{prefix}.{i}"), v, out);
                }
            }
            Value::String(s) => {
                out.insert(prefix.to_owned(), s.clone());
            }
            other => panic!("{prefix}: {other} is not a string"),
        }
    }

    fn placeholders(s: &str) -> Vec<String> {
        let mut out: Vec<String> =
            s.split('{').skip(1).filter_map(|p| p.split_once('}').map(|(name, _)| name.to_owned())).collect();
        out.sort();
        out
    }

    #[test]
    fn every_language_has_every_message_with_the_same_placeholders() {
        let mut english = BTreeMap::new();
        flatten("", catalogue("en").unwrap(), &mut english);
        assert!(english.len() > 200, "{} messages", english.len());
        for lang in LANGUAGES {
            let mut other = BTreeMap::new();
            flatten("", catalogue(lang).unwrap(), &mut other);
            let missing: Vec<_> = english.keys().filter(|k| !other.contains_key(*k)).collect();
            let extra: Vec<_> = other.keys().filter(|k| !english.contains_key(*k)).collect();
            assert!(missing.is_empty() && extra.is_empty(), "{lang}: missing {missing:?}, extra {extra:?}");
            for (k, en) in &english {
                assert_eq!(placeholders(en), placeholders(&other[k]), "{lang} {k}");
                assert!(!other[k].trim().is_empty(), "{lang} {k} is empty");
            }
        }
    }

    #[test]
    fn languages_are_negotiated_switcher_then_cookie_then_browser() {
        let mut h = HeaderMap::new();
        assert_eq!(negotiate(None, &h), "en");
        h.insert(header::ACCEPT_LANGUAGE, "es-ES, fr-CH;q=0.8, de;q=0.9".parse().unwrap());
        assert_eq!(negotiate(None, &h), "de");
        h.insert(header::ACCEPT_LANGUAGE, "it-CH".parse().unwrap());
        assert_eq!(negotiate(None, &h), "it");
        h.insert(header::COOKIE, format!("a=b; {LANG_COOKIE}=fr").parse().unwrap());
        assert_eq!(negotiate(None, &h), "fr");
        assert_eq!(negotiate(Some("DE"), &h), "de");
        assert_eq!(negotiate(Some("xx"), &h), "fr");
        h.insert(header::ACCEPT_LANGUAGE, "fr;q=0, *".parse().unwrap());
        h.remove(header::COOKIE);
        assert_eq!(negotiate(None, &h), "en");
    }

    #[test]
    fn text_fills_placeholders_and_falls_back_to_english() {
        assert_eq!(text("en", "common.signed_in_as", &[("name", "Ada")]), "Signed in as Ada");
        assert_eq!(text("zz", "status.signed", &[]), "Signed");
        assert_eq!(text("de", "no.such.key", &[]), "no.such.key");
    }
}
