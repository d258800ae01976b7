//! The mail adapter behind [`sigillum_core::ports::Mailer`]: messages are built with lettre
//! (multipart text + HTML, attachments) and either sent over SMTP (`smtp://` plain, for a relay
//! on loopback; `smtp://…?tls=required` STARTTLS; `smtps://` implicit TLS) or, without
//! `SIGILLUM_SMTP_URL`, written as `.eml` files to the outbox directory, atomically and readable
//! only by the service.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock))]

use std::path::PathBuf;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sigillum_core::ports::{Mail, MailError, Mailer};

/// Builds the MIME message.
pub fn build(from: &Mailbox, mail: &Mail) -> Result<Message, MailError> {
    let to: Mailbox = format!("{} <{}>", mail.to_name.replace(['<', '>', '"'], ""), mail.to_email)
        .parse()
        .or_else(|_| mail.to_email.parse())
        .map_err(|e| MailError::Invalid(format!("recipient address: {e}")))?;
    let alternative = MultiPart::alternative()
        .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(mail.text.clone()))
        .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(mail.html.clone()));
    let body = if mail.attachments.is_empty() {
        alternative
    } else {
        let mut mixed = MultiPart::mixed().multipart(alternative);
        for a in &mail.attachments {
            let ct = ContentType::parse(&a.content_type).map_err(|e| MailError::Invalid(e.to_string()))?;
            mixed = mixed.singlepart(Attachment::new(a.filename.clone()).body(a.bytes.clone(), ct));
        }
        mixed
    };
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .multipart(body)
        .map_err(|e| MailError::Invalid(e.to_string()))
}

/// Where mail goes.
pub enum MailTransport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

pub struct LettreMailer {
    from: Mailbox,
    transport: MailTransport,
}

impl LettreMailer {
    /// `smtp_url` as in `SIGILLUM_SMTP_URL`; without it, mail goes to `outbox`.
    pub fn new(from: &str, smtp_url: Option<&str>, outbox: PathBuf) -> Result<Self, MailError> {
        let from: Mailbox = from.parse().map_err(|e| MailError::Invalid(format!("sender address: {e}")))?;
        let transport = match smtp_url {
            Some(url) => MailTransport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| MailError::Invalid(format!("SMTP URL: {e}")))?
                    .timeout(Some(std::time::Duration::from_secs(30)))
                    .build(),
            ),
            None => MailTransport::Outbox(outbox),
        };
        Ok(Self { from, transport })
    }

    pub fn describe(&self) -> String {
        match &self.transport {
            MailTransport::Smtp(_) => "smtp".into(),
            MailTransport::Outbox(dir) => format!("outbox {}", dir.display()),
        }
    }
}

async fn write_outbox(dir: &std::path::Path, bytes: Vec<u8>) -> Result<(), MailError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| MailError::Transport(format!("outbox: {}", e.kind()));
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    let name = format!("{}.eml", uuid::Uuid::now_v7().simple());
    let tmp = dir.join(format!(".{name}.tmp"));
    let dest = dir.join(name);
    let tmp2 = tmp.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp2)?;
        f.write_all(&bytes)?;
        f.sync_all()
    })
    .await
    .map_err(|e| MailError::Transport(e.to_string()))?
    .map_err(io)?;
    tokio::fs::rename(&tmp, &dest).await.map_err(io)?;
    Ok(())
}

#[async_trait::async_trait]
impl Mailer for LettreMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let message = build(&self.from, mail)?;
        match &self.transport {
            MailTransport::Smtp(t) => {
                t.send(message).await.map_err(|e| MailError::Transport(e.to_string()))?;
            }
            MailTransport::Outbox(dir) => write_outbox(dir, message.formatted()).await?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigillum_core::ports::MailAttachment;

    fn mail() -> Mail {
        Mail {
            to_name: "Ada \"The\" Lovelace".into(),
            to_email: "ada@example.com".into(),
            subject: "Please sign \"Deal\"".into(),
            text: "Sign: https://x/s/abc".into(),
            html: "<p>Sign</p>".into(),
            attachments: vec![MailAttachment {
                filename: "Deal.pdf".into(),
                content_type: "application/pdf".into(),
                bytes: b"%PDF-1.7 test".to_vec(),
            }],
        }
    }

    #[tokio::test]
    async fn outbox_files_are_complete_messages() {
        let dir = tempfile::tempdir().unwrap();
        let m = LettreMailer::new("Sigillum <no-reply@localhost>", None, dir.path().join("outbox")).unwrap();
        m.send(&mail()).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path().join("outbox")).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(files.len(), 1);
        assert!(files[0].extension().is_some_and(|e| e == "eml"));
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(text.contains("To: \"Ada The Lovelace\" <ada@example.com>"), "{text}");
        assert!(text.contains("multipart/mixed") && text.contains("filename=\"Deal.pdf\""));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn bad_addresses_are_errors() {
        let mut m = mail();
        m.to_email = "not an address".into();
        assert!(build(&"a@b.c".parse().unwrap(), &m).is_err());
        assert!(LettreMailer::new("nobody", None, PathBuf::from("/tmp")).is_err());
        assert!(LettreMailer::new("a@b.c", Some("ftp://x"), PathBuf::from("/tmp")).is_err());
    }
}
