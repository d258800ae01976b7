//! The mails Sigillum sends, as plain text and escaped HTML. Mail never carries a document's
//! content except the final PDF attached to the completion mail.

use super::Person;
use crate::ports::{Mail, MailAttachment};

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

fn html(paragraphs: &[String], button: Option<(&str, &str)>) -> String {
    let mut body = String::from(
        "<!doctype html><html><body style=\"font-family:system-ui,sans-serif;max-width:36em;margin:auto;color:#1b1b1b\">",
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
    body.push_str("<p style=\"color:#666;font-size:.85em\">Sent by Sigillum. Do not forward this message: its link is personal.</p></body></html>");
    body
}

#[allow(clippy::too_many_arguments)]
pub(super) fn invitation(
    to: &Person,
    sender: &str,
    title: &str,
    message: Option<&str>,
    link: &str,
    expires: &str,
    reminder: u32,
    access_code: bool,
) -> Mail {
    let subject = if reminder == 0 {
        one_line(&format!("{sender} sent you \"{title}\" to sign"))
    } else {
        one_line(&format!("Reminder: \"{title}\" is waiting for your signature"))
    };
    let mut paras = vec![format!("Hello {},", to.name), format!("{sender} asks you to review and sign \"{title}\".")];
    if let Some(m) = message {
        paras.push(format!("Message from {sender}:\n{m}"));
    }
    if access_code {
        paras.push(format!("{sender} will give you the access code separately; you need it to open the document."));
    }
    paras.push(format!("The link is personal and works until {expires} (UTC)."));
    let text = format!("{}\n\nReview and sign: {link}\n", paras.join("\n\n"));
    Mail {
        to_name: one_line(&to.name),
        to_email: to.email.clone(),
        subject,
        html: html(&paras, Some(("Review and sign", link))),
        text,
        attachments: vec![],
    }
}

pub(super) fn completed(to: &Person, title: &str, link: &str, sha256: &str, pdf: Option<Vec<u8>>) -> Mail {
    let mut paras = vec![
        format!("Hello {},", to.name),
        format!(
            "Everyone has signed \"{title}\". The final document is {}.",
            if pdf.is_some() { "attached" } else { "at the link below" }
        ),
        format!("Its SHA-256 is {sha256}."),
    ];
    paras.push("You can download it again with the link below.".into());
    let text = format!("{}\n\nDownload: {link}\n", paras.join("\n\n"));
    let name: String =
        title.chars().map(|c| if c.is_ascii_alphanumeric() || " -_.".contains(c) { c } else { '_' }).collect();
    Mail {
        to_name: one_line(&to.name),
        to_email: to.email.clone(),
        subject: one_line(&format!("Completed: \"{title}\"")),
        html: html(&paras, Some(("Download the signed document", link))),
        text,
        attachments: pdf
            .map(|bytes| MailAttachment {
                filename: format!("{}.pdf", name.trim()),
                content_type: "application/pdf".into(),
                bytes,
            })
            .into_iter()
            .collect(),
    }
}

pub(super) fn ended(to: &Person, title: &str, sender: &str, how: &str, reason: Option<&str>) -> Mail {
    let mut paras = vec![format!("Hello {},", to.name)];
    paras.push(match how {
        "declined" => format!("\"{title}\" from {sender} was declined and will not be completed."),
        _ => format!("{sender} voided \"{title}\"; it can no longer be signed."),
    });
    if let Some(r) = reason {
        paras.push(format!("Reason given: {r}"));
    }
    Mail {
        to_name: one_line(&to.name),
        to_email: to.email.clone(),
        subject: one_line(&format!("{}: \"{title}\"", if how == "declined" { "Declined" } else { "Voided" })),
        text: format!("{}\n", paras.join("\n\n")),
        html: html(&paras, None),
        attachments: vec![],
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
}
