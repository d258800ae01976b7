//! A real SMTP server on loopback for mail tests: aiosmtpd (Python) storing every message in a
//! Maildir, and helpers to wait for a message and read links and attachments out of it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SmtpCapture {
    child: Child,
    pub port: u16,
    pub maildir: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpCapture {
    /// Starts `python3 -m aiosmtpd` (installed by `scripts/deps.sh`) and waits until it accepts.
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Starts the capture server on `port` (e.g. one a server was told about before).
    pub fn start_on(port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("mail");
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd (pip install aiosmtpd; scripts/deps.sh does)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port, maildir, _dir: dir }
    }

    /// `SIGILLUM_SMTP_URL` for this server.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, raw.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) {
                for e in entries.flatten() {
                    if let Ok(text) = std::fs::read_to_string(e.path()) {
                        out.push(text);
                    }
                }
            }
        }
        out
    }

    /// Waits (up to 30 s) for a message to `to` whose subject contains `subject`.
    pub async fn wait_for(&self, to: &str, subject: &str) -> Mail {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(m) = self.find(to, subject) {
                return m;
            }
            assert!(Instant::now() < deadline, "no mail to {to} about {subject:?}; got {:#?}", self.summary());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn find(&self, to: &str, subject: &str) -> Option<Mail> {
        self.messages().into_iter().map(Mail::parse).find(|m| m.to.contains(to) && m.subject.contains(subject))
    }

    pub fn summary(&self) -> Vec<String> {
        self.messages().into_iter().map(Mail::parse).map(|m| format!("{} | {}", m.to, m.subject)).collect()
    }
}

/// A loopback port nothing listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Drop for SmtpCapture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A received message, decoded just enough for tests.
#[derive(Debug, Clone)]
pub struct Mail {
    pub raw: String,
    pub to: String,
    pub subject: String,
    /// The decoded text of every text part.
    pub text: String,
}

impl Mail {
    pub fn parse(raw: String) -> Self {
        // A header's value with its folded continuation lines, encoded words decoded.
        let header = |name: &str| {
            let prefix = format!("{}:", name.to_ascii_lowercase());
            let mut lines =
                raw.lines().take_while(|l| !l.is_empty()).skip_while(|l| !l.to_ascii_lowercase().starts_with(&prefix));
            let Some(first) = lines.next() else { return String::new() };
            let mut value = first[prefix.len()..].trim().to_owned();
            for more in lines.take_while(|l| l.starts_with(' ') || l.starts_with('\t')) {
                value.push(' ');
                value.push_str(more.trim());
            }
            decode_encoded_words(&value)
        };
        let (to, subject) = (header("To"), header("Subject"));
        let text = decode_quoted_printable(&raw);
        Self { raw, to, subject, text }
    }

    /// The first signing link (`…/s/<token>`) in the message.
    pub fn signing_token(&self) -> Option<String> {
        let at = self.text.find("/s/")?;
        let token: String =
            self.text[at + 3..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
        (!token.is_empty()).then_some(token)
    }

    /// Whether the message has an attachment named `filename` of type `content_type`.
    pub fn has_attachment(&self, content_type: &str, filename: &str) -> bool {
        self.raw.contains(&format!("Content-Type: {content_type}"))
            && self.raw.contains(&format!("filename=\"{filename}\""))
    }
}

/// Decodes RFC 2047 encoded words (`=?utf-8?B?…?=`, `=?utf-8?Q?…?=`) in a header value; the
/// white space between two adjacent encoded words goes (RFC 2047 §6.2).
pub fn decode_encoded_words(value: &str) -> String {
    use base64::Engine;
    let mut out = String::new();
    let mut rest = value;
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, word) = rest.split_at(start);
        let parts: Vec<&str> = word[2..].splitn(4, '?').collect();
        let (Some(encoding), Some(text), Some(tail)) = (parts.get(1), parts.get(2), parts.get(3)) else { break };
        let Some(tail) = tail.strip_prefix('=') else { break };
        if !(after_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        let bytes = match encoding.to_ascii_uppercase().as_str() {
            "B" => base64::engine::general_purpose::STANDARD.decode(text).unwrap_or_default(),
            _ => decode_quoted_printable(&text.replace('_', " ")).into_bytes(),
        };
        out.push_str(&String::from_utf8_lossy(&bytes));
        rest = tail;
        after_word = true;
    }
    out.push_str(rest);
    out
}

/// Undoes quoted-printable soft line breaks and `=XX` escapes (enough to read links).
pub fn decode_quoted_printable(s: &str) -> String {
    let s = s.replace("=\r\n", "").replace("=\n", "");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A PNG of `w`×`h` pixels with a diagonal stroke (a drawn signature).
pub fn signature_png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().unwrap();
        let mut px = vec![0u8; (w * h * 4) as usize];
        for x in 0..w {
            let y = x * h / w;
            let i = ((y * w + x) * 4) as usize;
            px[i..i + 4].copy_from_slice(&[10, 20, 120, 255]);
        }
        wr.write_image_data(&px).unwrap();
    }
    out
}
