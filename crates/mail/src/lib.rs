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
        .message_id(mail.idempotency_key.as_deref().map(|key| message_id(from, key)))
        .multipart(body)
        .map_err(|e| MailError::Invalid(e.to_string()))
}

/// The Message-ID of the message sent under `key`: the same for every attempt and every node,
/// and revealing nothing of the key (it names envelopes and recipients).
pub fn message_id(from: &Mailbox, key: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("sigillum-mail/v1\n{key}").as_bytes());
    format!("<{}@{}>", hex::encode(&digest[..20]), from.email.domain())
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

async fn write_outbox(dir: &std::path::Path, stem: &str, bytes: Vec<u8>) -> Result<(), MailError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| MailError::Transport(format!("outbox: {}", e.kind()));
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    let name = format!("{stem}.eml");
    // Unique per attempt, so two attempts at one key never write the same temporary file.
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
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
            MailTransport::Outbox(dir) => {
                // A message sent again under its key replaces its own file instead of adding one.
                let name = match &mail.idempotency_key {
                    Some(key) => message_id(&self.from, key)
                        .trim_matches(['<', '>'])
                        .split('@')
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                    None => uuid::Uuid::now_v7().simple().to_string(),
                };
                write_outbox(dir, &name, message.formatted()).await?
            }
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
            idempotency_key: None,
        }
    }

    #[tokio::test]
    async fn a_message_sent_again_under_its_key_keeps_its_message_id() {
        let dir = tempfile::tempdir().unwrap();
        let m = LettreMailer::new("Sigillum <no-reply@sign.example.org>", None, dir.path().join("outbox")).unwrap();
        let mut once = mail();
        once.idempotency_key = Some("notify:e1:r1:completed".into());
        m.send(&once).await.unwrap();
        m.send(&once).await.unwrap();
        let mut other = mail();
        other.idempotency_key = Some("notify:e1:r2:completed".into());
        m.send(&other).await.unwrap();
        m.send(&mail()).await.unwrap();
        let texts: Vec<String> = std::fs::read_dir(dir.path().join("outbox"))
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        assert_eq!(texts.len(), 3, "the repeated message replaced its own file");
        let id = message_id(&"no-reply@sign.example.org".parse().unwrap(), "notify:e1:r1:completed");
        assert!(id.ends_with("@sign.example.org>") && !id.contains("e1"), "{id}");
        assert_eq!(texts.iter().filter(|t| t.contains(&format!("Message-ID: {id}"))).count(), 1);
        assert_eq!(texts.iter().filter(|t| t.contains("Message-ID: <")).count(), 3, "every message has one");
        assert_ne!(id, message_id(&"no-reply@sign.example.org".parse().unwrap(), "notify:e1:r2:completed"));
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
