//! The device an event came from, parsed from the User-Agent header (woothee's rule set).
//!
//! The parsed summary (browser, OS, device class) is coarse and non-personal, so it goes into the
//! leaf in clear; the raw user agent is personal and is only committed to.

use serde::{Deserialize, Serialize};

/// Longest user agent handed to the parser; longer headers are cut first.
const MAX_PARSED_LEN: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Desktop,
    Mobile,
    Tablet,
    Bot,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    // Fields in alphabetical order (canonical JSON, see `Event::canonical_bytes`).
    /// Browser name and major version, e.g. `Chrome 120`.
    pub browser: String,
    pub kind: DeviceKind,
    /// Operating system and version, e.g. `Windows 10`, `iPhone 17.1`.
    pub os: String,
}

fn known(s: &str) -> Option<&str> {
    (!s.is_empty() && s != "UNKNOWN").then_some(s)
}

impl Device {
    /// Parses a User-Agent header. Unknown agents give `Other` with `unknown` names.
    pub fn from_user_agent(user_agent: &str) -> Self {
        let mut end = user_agent.len().min(MAX_PARSED_LEN);
        while !user_agent.is_char_boundary(end) {
            end -= 1;
        }
        let ua = &user_agent[..end];
        let Some(r) = woothee::parser::Parser::new().parse(ua) else {
            return Self { browser: "unknown".into(), os: "unknown".into(), kind: DeviceKind::Other };
        };
        let major = r.version.split('.').next().unwrap_or_default();
        let browser = match (known(r.name), known(major)) {
            (Some(n), Some(v)) => format!("{n} {v}"),
            (Some(n), None) => n.to_owned(),
            _ => "unknown".to_owned(),
        };
        let os = match (known(r.os), known(&r.os_version)) {
            // "Windows 10" already names its version ("NT 10.0" would only confuse).
            (Some(o), Some(v))
                if !o.contains(|c: char| c.is_ascii_digit()) && v.starts_with(|c: char| c.is_ascii_digit()) =>
            {
                format!("{o} {v}")
            }
            (Some(o), _) => o.to_owned(),
            _ => "unknown".to_owned(),
        };
        // woothee files tablets under "smartphone"; the OS name or a missing "Mobile" token
        // on Android tells them apart.
        let tablet = r.os == "iPad" || (r.os == "Android" && !ua.contains("Mobile"));
        let kind = match r.category {
            "pc" => DeviceKind::Desktop,
            "smartphone" | "mobilephone" if tablet => DeviceKind::Tablet,
            "smartphone" | "mobilephone" => DeviceKind::Mobile,
            "crawler" => DeviceKind::Bot,
            _ => DeviceKind::Other,
        };
        Self { browser, os, kind }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_agents_parse_to_browser_os_and_kind() {
        let cases = [
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
                "Chrome 120",
                "Windows 10",
                DeviceKind::Desktop,
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
                "Safari 17",
                "iPhone 17.1",
                DeviceKind::Mobile,
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
                "Safari 16",
                "iPad 16.6",
                DeviceKind::Tablet,
            ),
            (
                "Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36",
                "Chrome 119",
                "Android 13",
                DeviceKind::Tablet,
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
                "Firefox 121",
                "Linux",
                DeviceKind::Desktop,
            ),
            ("Googlebot/2.1 (+http://www.google.com/bot.html)", "misc crawler", "unknown", DeviceKind::Bot),
        ];
        for (ua, browser, os, kind) in cases {
            let d = Device::from_user_agent(ua);
            assert_eq!((d.browser.as_str(), d.os.as_str(), d.kind), (browser, os, kind), "{ua}");
        }
    }

    #[test]
    fn hostile_agents_do_not_hurt() {
        for ua in ["", "\u{0}\u{ffff}", &"A".repeat(100_000), &"é".repeat(5000)] {
            let d = Device::from_user_agent(ua);
            assert!(d.browser.len() < 100 && d.os.len() < 100);
        }
    }
}
