//! Reading libmodsecurity's log lines: which rule matched and its `msg`.
//!
//! A line looks like `ModSecurity: Warning. Matched "Operator `Rx' … (Value: `…' ) [file "…"]
//! [line "46"] [id "942100"] [rev ""] [msg "SQL Injection Attack …"] [data "…"] …`. Request data
//! appears in the `Matched` prefix (a bounded excerpt of the value) and in `[data]`/`[uri]`,
//! so a client could write a fake `[id "…"]` there. The id taken is the first one directly after a
//! `[line "<digits>"]` field; one whose request matched a rule could still add a made-up id to the
//! report, but never change the verdict, which comes from the engine's intervention.
#![forbid(unsafe_code)]

/// Most log lines kept per request (CRS logs a few dozen for the worst requests).
const MAX_LINES: usize = 256;
/// Longest `msg` text kept, in characters.
const MAX_MSG_CHARS: usize = 200;

/// One matched rule as reported by the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Match {
    pub(super) id: u32,
    pub(super) msg: Option<String>,
}

/// The per-request buffer the log callback writes into.
#[derive(Debug, Default)]
pub(super) struct LogSink {
    matches: Vec<Match>,
}

impl LogSink {
    pub(super) fn push(&mut self, line: &str) {
        if self.matches.len() >= MAX_LINES {
            return;
        }
        if let Some(m) = parse_line(line) {
            self.matches.push(m);
        }
    }

    pub(super) fn into_matches(self) -> Vec<Match> {
        self.matches
    }
}

/// The rule id and message of one log line, if it names a rule.
pub(super) fn parse_line(line: &str) -> Option<Match> {
    let (id, rest) = find_id(line)?;
    let msg = field(rest, "[msg \"").map(|m| m.chars().take(MAX_MSG_CHARS).collect());
    Some(Match { id, msg })
}

/// Finds `[line "<digits>"] [id "<digits>"]` and returns the id and the text after it.
fn find_id(line: &str) -> Option<(u32, &str)> {
    let mut from = 0;
    while let Some(pos) = line[from..].find("[line \"") {
        let start = from + pos + "[line \"".len();
        from = start;
        let after_line = &line[start..];
        let digits = after_line.bytes().take_while(u8::is_ascii_digit).count();
        let Some(tail) = after_line[digits..].strip_prefix("\"] [id \"") else { continue };
        if digits == 0 {
            continue;
        }
        let id_len = tail.bytes().take_while(u8::is_ascii_digit).count();
        let Some(rest) = tail[id_len..].strip_prefix("\"]") else { continue };
        if let Ok(id) = tail[..id_len].parse::<u32>() {
            return Some((id, rest));
        }
    }
    None
}

/// The value of a `[name "value"]` field in `text` (the first one).
fn field<'t>(text: &'t str, opener: &str) -> Option<&'t str> {
    let start = text.find(opener)? + opener.len();
    let len = text[start..].find("\"]")?;
    Some(&text[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"ModSecurity: Warning. detected SQLi using libinjection. [file "/usr/share/modsecurity-crs/rules/REQUEST-942-APPLICATION-ATTACK-SQLI.conf"] [line "46"] [id "942100"] [rev ""] [msg "SQL Injection Attack Detected via libinjection"] [data "Matched Data: s&sos found within ARGS:q: 1' OR '1'='1"] [severity "2"] [ver "OWASP_CRS/3.3.4"] [hostname "127.0.0.1"] [uri "/api"] [unique_id "1"] [ref "v24,12"]"#;

    #[test]
    fn reads_id_and_msg() {
        let m = parse_line(LINE).unwrap();
        assert_eq!(m.id, 942100);
        assert_eq!(m.msg.as_deref(), Some("SQL Injection Attack Detected via libinjection"));
    }

    #[test]
    fn a_bare_id_in_request_data_is_not_taken() {
        let line = LINE.replace("detected SQLi", r#"Matched (Value: `[id "1"] [line "x"] [id "2"]' )"#);
        assert_eq!(parse_line(&line).unwrap().id, 942100);
    }

    #[test]
    fn lines_without_a_rule_are_ignored() {
        assert_eq!(parse_line("ModSecurity: something else"), None);
        assert_eq!(parse_line(r#"[line "1"] [id ""]"#), None);
    }

    #[test]
    fn the_buffer_is_bounded() {
        let mut sink = LogSink::default();
        for _ in 0..(MAX_LINES + 10) {
            sink.push(LINE);
        }
        assert_eq!(sink.into_matches().len(), MAX_LINES);
    }
}
