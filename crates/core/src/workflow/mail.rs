//! The mails Sigillum sends, as plain text and escaped HTML, in the recipient's language
//! (English, German, French or Italian; the texts are in `i18n/mail.json`). Mail never carries a
//! document's content except the final PDF attached to the completion mail.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use super::Person;
use crate::ports::{Mail, MailAttachment};

/// The languages mail is written in; the first is the fallback.
pub const MAIL_LANGUAGES: [&str; 4] = ["en", "de", "fr", "it"];

type Catalogue = BTreeMap<String, BTreeMap<String, String>>;

static CATALOGUE: LazyLock<Catalogue> =
    LazyLock::new(|| serde_json::from_str(include_str!("../../i18n/mail.json")).unwrap_or_default());

/// The message `key` in `lang` (English when the language or the key is missing) with its
/// `{placeholders}` filled in.
fn text(lang: &str, key: &str, args: &[(&str, &str)]) -> String {
    let pick = |l: &str| CATALOGUE.get(l).and_then(|m| m.get(key));
    let mut out = pick(lang).or_else(|| pick("en")).cloned().unwrap_or_else(|| key.to_owned());
    for (name, value) in args {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Header-safe text: no line breaks (a subject must not inject headers).
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn html(lang: &str, paragraphs: &[String], button: Option<(&str, &str)>) -> String {
    let mut body = format!(
        "<!doctype html><html lang=\"{}\"><body style=\"font-family:system-ui,sans-serif;max-width:36em;margin:auto;color:#1b1b1b\">",
        esc(lang)
    );
    for p in paragraphs {
        body.push_str(&format!("<p>{}</p>", esc(p).replace('\n', "<br>")));
    }
    if let Some((label, url)) = button {
        body.push_str(&format!(
            "<p><a href=\"{}\" style=\"display:inline-block;padding:.7em 1.4em;background:#1d4ed8;color:#fff;text-decoration:none;border-radius:4px\">{}</a></p>",
            esc(url),
            esc(label)
        ));
    }
    body.push_str(&format!(
        "<p style=\"color:#666;font-size:.85em\">{}</p></body></html>",
        esc(&text(lang, "footer", &[]))
    ));
    body
}

#[allow(clippy::too_many_arguments)]
pub(super) fn invitation(
    to: &Person,
    lang: &str,
    sender: &str,
    title: &str,
    message: Option<&str>,
    link: &str,
    expires: &str,
    reminder: u32,
    access_code: bool,
) -> Mail {
    let subject = if reminder == 0 {
        one_line(&text(lang, "invite_subject", &[("sender", sender), ("title", title)]))
    } else {
        one_line(&text(lang, "reminder_subject", &[("title", title)]))
    };
    let mut paras = vec![
        text(lang, "hello", &[("name", &to.name)]),
        text(lang, "invite_asks", &[("sender", sender), ("title", title)]),
    ];
    if let Some(m) = message {
        paras.push(format!("{}\n{m}", text(lang, "message_from", &[("sender", sender)])));
    }
    if access_code {
        paras.push(text(lang, "access_code", &[("sender", sender)]));
    }
    paras.push(text(lang, "link_until", &[("expires", expires)]));
    let button = text(lang, "review_button", &[]);
    Mail {
        to_name: one_line(&to.name),
        to_email: to.email.clone(),
        subject,
        html: html(lang, &paras, Some((&button, link))),
        text: format!("{}\n\n{button}: {link}\n", paras.join("\n\n")),
        attachments: vec![],
        idempotency_key: None,
    }
}

pub(super) fn completed(to: &Person, lang: &str, title: &str, link: &str, sha256: &str, pdf: Option<Vec<u8>>) -> Mail {
    let everyone = if pdf.is_some() { "completed_attached" } else { "completed_linked" };
    let paras = vec![
        text(lang, "hello", &[("name", &to.name)]),
        text(lang, everyone, &[("title", title)]),
        text(lang, "sha256", &[("sha256", sha256)]),
        text(lang, "download_again", &[]),
    ];
    let button = text(lang, "download_button", &[]);
    let name: String =
        title.chars().map(|c| if c.is_ascii_alphanumeric() || " -_.".contains(c) { c } else { '_' }).collect();
    Mail {
        to_name: one_line(&to.name),
        to_email: to.email.clone(),
        subject: one_line(&text(lang, "completed_subject", &[("title", title)])),
        html: html(lang, &paras, Some((&button, link))),
        text: format!("{}\n\n{button}: {link}\n", paras.join("\n\n")),
        attachments: pdf
            .map(|bytes| MailAttachment {
                filename: format!("{}.pdf", name.trim()),
                content_type: "application/pdf".into(),
                bytes,
            })
            .into_iter()
            .collect(),
        idempotency_key: None,
    }
}

pub(super) fn ended(to: &Person, lang: &str, title: &str, sender: &str, how: &str, reason: Option<&str>) -> Mail {
    let (subject, body) =
        if how == "declined" { ("declined_subject", "declined_body") } else { ("voided_subject", "voided_body") };
    let mut paras =
        vec![text(lang, "hello", &[("name", &to.name)]), text(lang, body, &[("title", title), ("sender", sender)])];
    if let Some(r) = reason {
        paras.push(text(lang, "reason", &[("reason", r)]));
    }
    Mail {
        to_name: one_line(&to.name),
        to_email: to.email.clone(),
        subject: one_line(&text(lang, subject, &[("title", title)])),
        text: format!("{}\n", paras.join("\n\n")),
        html: html(lang, &paras, None),
        attachments: vec![],
        idempotency_key: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped_and_subjects_are_one_line() {
        let to = Person { name: "<b>Eve</b>".into(), email: "eve@example.com".into() };
        let m = invitation(
            &to,
            "en",
            "Bob",
            "Deal\r\nBcc: x@evil",
            Some("<script>"),
            "https://s/x?a=1&b=2",
            "2026-12-01",
            0,
            true,
        );
        assert!(!m.subject.contains('\n') && !m.subject.contains('\r'));
        assert!(m.html.contains("&lt;b&gt;Eve&lt;/b&gt;") && m.html.contains("&lt;script&gt;"));
        assert!(m.html.contains("https://s/x?a=1&amp;b=2"));
        assert!(m.text.contains("https://s/x?a=1&b=2"));
        assert!(m.text.contains("access code"));
    }

    /// Every language has every message with the same placeholders, and every mail in every
    /// language comes out with all of them filled in.
    #[test]
    fn every_mail_in_every_language() {
        let placeholders = |s: &str| -> Vec<String> {
            let mut v: Vec<String> =
                s.split('{').skip(1).filter_map(|p| p.split_once('}')).map(|(n, _)| n.to_owned()).collect();
            v.sort();
            v
        };
        let en = &CATALOGUE["en"];
        assert_eq!(CATALOGUE.keys().map(String::as_str).collect::<Vec<_>>(), {
            let mut l = MAIL_LANGUAGES.to_vec();
            l.sort();
            l
        });
        for lang in MAIL_LANGUAGES {
            let c = &CATALOGUE[lang];
            assert_eq!(c.keys().collect::<Vec<_>>(), en.keys().collect::<Vec<_>>(), "{lang}");
            for (k, v) in c {
                assert_eq!(placeholders(v), placeholders(&en[k]), "{lang}.{k}");
            }
            let to = Person { name: "Ada".into(), email: "ada@example.com".into() };
            let mails = [
                invitation(&to, lang, "Bob", "Lease", Some("hi"), "https://s/x", "2026-12-01", 0, true),
                invitation(&to, lang, "Bob", "Lease", None, "https://s/x", "2026-12-01", 2, false),
                completed(&to, lang, "Lease", "https://s/x", "ab12", Some(vec![1])),
                completed(&to, lang, "Lease", "https://s/x", "ab12", None),
                ended(&to, lang, "Lease", "Bob", "declined", Some("no")),
                ended(&to, lang, "Lease", "Bob", "voided", None),
            ];
            for m in &mails {
                for part in [&m.subject, &m.text, &m.html] {
                    assert!(!part.contains('{') && !part.contains('}'), "{lang}: {part}");
                }
                assert!(m.subject.contains("Lease") && m.text.contains("Ada"), "{lang}: {}", m.subject);
            }
        }
        let de = invitation(
            &Person { name: "Ada".into(), email: "a@x".into() },
            "de",
            "Bob",
            "Miete",
            None,
            "l",
            "e",
            0,
            false,
        );
        assert!(de.subject.contains("unterzeichnen") && de.html.contains("lang=\"de\""), "{}", de.subject);
        assert_eq!(text("xx", "review_button", &[]), "Review and sign", "unknown languages fall back to English");
    }
}
