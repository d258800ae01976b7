//! The certificate of completion: pages appended to the signed document that say who signed,
//! when, from where and on what, followed by every audit event, with page numbers; and the audit
//! trail itself (events, inclusion proofs, signed checkpoint) attached as a PDF associated file
//! (`/AF`, ISO 32000-2 §14.13, also listed in `/EmbeddedFiles` for older readers), so the document
//! carries its own evidence and `sigillum verify` can check it offline.
//!
//! Text is DejaVu Sans (`text_font`), so names and titles in Latin, Greek, Cyrillic and other
//! scripts it covers print as written; Chinese, Japanese, Korean and other scripts come from the
//! fallback faces the system provides (`text_font`). A character no face has prints as `?` on the
//! pages while the attached JSON keeps it exactly. Lines wrap at the measured width.

use crate::script_font::{ScriptFace, ScriptFont};
use lopdf::{dictionary, Dictionary, Document, Object, Stream, StringFormat};

use crate::flatten::{deflate, num, pdf_string, script_can_draw, Image, MarkContent};
use crate::inspect::PdfError;
use crate::text_font::{TextFont, Weight};

/// Name of the attached audit trail.
pub const TRAIL_FILE_NAME: &str = "sigillum-audit-trail.json";

#[derive(Debug, Clone, PartialEq)]
pub struct CertRecipient {
    pub name: String,
    pub email: String,
    pub role: String,
    pub status: String,
    pub ip: Option<String>,
    pub device: Option<String>,
    pub consented_at: Option<String>,
    pub finished_at: Option<String>,
    /// A drawn signature image or the typed text.
    pub signature: Option<MarkContent>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CertEvent {
    pub time: String,
    pub kind: String,
    pub actor: String,
    pub ip: Option<String>,
    pub device: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CompletionCertificate {
    pub envelope_id: String,
    pub title: String,
    pub sender: String,
    /// SHA-256 of the document as it was sent for signing.
    pub original_sha256: String,
    /// SHA-256 of the document with the signers' values drawn in, before these pages.
    pub signed_content_sha256: String,
    pub completed_at: String,
    pub log_origin: String,
    pub log_tree_size: u64,
    /// ISO 3166-1 alpha-2 country in which the deployment keeps the envelope's data.
    pub jurisdiction: String,
    pub recipients: Vec<CertRecipient>,
    pub events: Vec<CertEvent>,
}

const PAGE_W: f64 = 595.0;
const PAGE_H: f64 = 842.0;
const MARGIN: f64 = 50.0;
const BOTTOM: f64 = 60.0;

/// One page's drawing operators and the images it uses.
#[derive(Default)]
struct PageOps {
    ops: Vec<u8>,
    images: Vec<(String, Image)>,
}

/// Lays out text top-down, starting a new page when the current one is full.
struct Layout {
    pages: Vec<PageOps>,
    y: f64,
    regular: TextFont,
    bold: TextFont,
}

impl Layout {
    fn new(regular: TextFont, bold: TextFont) -> Self {
        Self { pages: vec![PageOps::default()], y: PAGE_H - MARGIN, regular, bold }
    }

    fn face(&self, bold: bool) -> &TextFont {
        if bold {
            &self.bold
        } else {
            &self.regular
        }
    }

    fn page(&mut self) -> &mut PageOps {
        if self.pages.is_empty() {
            self.pages.push(PageOps::default());
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    fn need(&mut self, height: f64) {
        if self.y - height < BOTTOM {
            self.pages.push(PageOps::default());
            self.y = PAGE_H - MARGIN;
        }
    }

    fn text_at(&mut self, x: f64, size: f64, bold: bool, text: &str) {
        let shown = if bold { self.bold.show(text, size) } else { self.regular.show(text, size) };
        let y = self.y;
        let op = format!("BT 0 g {} {} Td ", num(x), num(y));
        let page = self.page();
        page.ops.extend_from_slice(op.as_bytes());
        page.ops.extend_from_slice(&shown);
        page.ops.extend_from_slice(b" ET\n");
    }

    /// A line of text, wrapped to the page width.
    fn line(&mut self, size: f64, bold: bool, text: &str) {
        let face = self.face(bold);
        let lines = wrap(text, |s| face.width(s, size) <= PAGE_W - 2.0 * MARGIN);
        for chunk in lines {
            self.need(size * 1.4);
            self.y -= size * 1.4;
            self.text_at(MARGIN, size, bold, &chunk);
        }
    }

    fn label(&mut self, label: &str, value: &str) {
        let face = &self.regular;
        let lines = wrap(value, |s| face.width(s, 9.0) <= PAGE_W - 2.0 * MARGIN - 140.0);
        let mut first = true;
        for chunk in lines {
            self.need(9.0 * 1.45);
            self.y -= 9.0 * 1.45;
            if first {
                self.text_at(MARGIN, 9.0, true, label);
                first = false;
            }
            self.text_at(MARGIN + 140.0, 9.0, false, &chunk);
        }
    }

    fn gap(&mut self, h: f64) {
        self.y -= h;
    }

    fn rule(&mut self) {
        self.need(8.0);
        self.y -= 6.0;
        let op =
            format!("0.6 G 0.5 w {} {} m {} {} l S\n", num(MARGIN), num(self.y), num(PAGE_W - MARGIN), num(self.y));
        self.page().ops.extend_from_slice(op.as_bytes());
    }

    fn signature(&mut self, content: &MarkContent, n: usize) {
        let (w, h) = (180.0, 45.0);
        self.need(h + 6.0);
        self.y -= h + 4.0;
        let (x, y) = (MARGIN + 140.0, self.y);
        let frame = format!("0.8 G 0.5 w {} {} {} {} re S\n", num(x), num(y), num(w), num(h));
        self.page().ops.extend_from_slice(frame.as_bytes());
        match content {
            MarkContent::Image(img) => {
                let scale = ((w - 4.0) / f64::from(img.width)).min((h - 4.0) / f64::from(img.height));
                let (dw, dh) = (f64::from(img.width) * scale, f64::from(img.height) * scale);
                let name = format!("SgSig{n}");
                let op = format!(
                    "q {} 0 0 {} {} {} cm /{name} Do Q\n",
                    num(dw),
                    num(dh),
                    num(x + (w - dw) / 2.0),
                    num(y + (h - dh) / 2.0)
                );
                let page = self.page();
                page.ops.extend_from_slice(op.as_bytes());
                page.images.push((name, img.clone()));
            }
            MarkContent::Script(t, _) | MarkContent::Text(t) => {
                let face = match content {
                    MarkContent::Script(_, face) => *face,
                    _ => ScriptFace::default(),
                };
                // A typed name the script faces cannot draw (beyond WinAnsi) is shown in the text face.
                let (size, shown) = if script_can_draw(t) {
                    let size = (w / (0.5 * t.chars().count().max(1) as f64)).clamp(8.0, 22.0);
                    let mut shown = format!("/{} {} Tf ", face.resource("SgCertI"), num(size)).into_bytes();
                    shown.extend_from_slice(&pdf_string(t));
                    shown.extend_from_slice(b" Tj");
                    (size, shown)
                } else {
                    let size = ((w - 12.0) / self.regular.width(t, 1.0).max(0.1)).clamp(8.0, 22.0);
                    (size, self.regular.show(t, size))
                };
                let op = format!("BT 0 g {} {} Td ", num(x + 6.0), num(y + h / 2.0 - size / 3.0));
                let page = self.page();
                page.ops.extend_from_slice(op.as_bytes());
                page.ops.extend_from_slice(&shown);
                page.ops.extend_from_slice(b" ET\n");
            }
            MarkContent::Check(_) => {}
        }
    }
}

/// Splits `text` into lines that `fits`, at spaces where possible (a word too long for a line
/// is cut; a line holds at least one character).
fn wrap(text: &str, fits: impl Fn(&str) -> bool) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in text.split(' ') {
        let mut word = word.to_owned();
        while !fits(&word) && word.chars().count() > 1 {
            if !current.is_empty() {
                lines.push(std::mem::take(&mut current));
            }
            let chars: Vec<char> = word.chars().collect();
            let mut n = 1;
            while n < chars.len() && fits(&chars[..=n].iter().collect::<String>()) {
                n += 1;
            }
            lines.push(chars[..n].iter().collect());
            word = chars[n..].iter().collect();
        }
        let joined = if current.is_empty() { word.clone() } else { format!("{current} {word}") };
        if !fits(&joined) && !current.is_empty() {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(&word);
    }
    if !current.is_empty() || lines.is_empty() {
        lines.push(current);
    }
    lines
}

fn lay_out(c: &CompletionCertificate, regular: TextFont, bold: TextFont) -> Layout {
    let mut l = Layout::new(regular, bold);
    l.line(20.0, true, "Certificate of Completion");
    l.gap(4.0);
    l.line(9.0, false, "Issued by Sigillum when the last recipient finished. The audit trail with its proofs is attached to this PDF as");
    l.line(
        9.0,
        false,
        &format!("{TRAIL_FILE_NAME}; check it and the seal with: sigillum verify FILE.pdf --trust CA.pem"),
    );
    l.rule();
    l.label("Document", &c.title);
    l.label("Envelope", &c.envelope_id);
    l.label("Sent by", &c.sender);
    l.label("Completed", &c.completed_at);
    l.label("Original SHA-256", &c.original_sha256);
    l.label("Signed content SHA-256", &c.signed_content_sha256);
    l.label("Audit log", &format!("{} (tree size {})", c.log_origin, c.log_tree_size));
    l.label("Data kept in", &format!("{} (every store and service of this deployment)", c.jurisdiction));
    l.gap(6.0);
    l.line(13.0, true, "Recipients");
    for (i, r) in c.recipients.iter().enumerate() {
        l.rule();
        l.label("Name", &r.name);
        l.label("Email", &r.email);
        l.label("Role / status", &format!("{} / {}", r.role, r.status));
        l.label("IP address", r.ip.as_deref().unwrap_or("-"));
        l.label("Device", r.device.as_deref().unwrap_or("-"));
        l.label("Consent to e-sign", r.consented_at.as_deref().unwrap_or("-"));
        l.label(if r.status == "declined" { "Declined" } else { "Signed" }, r.finished_at.as_deref().unwrap_or("-"));
        if let Some(sig) = &r.signature {
            l.need(68.0);
            l.gap(13.0);
            l.text_at(MARGIN, 9.0, true, "Signature");
            l.signature(sig, i);
        }
    }
    l.gap(8.0);
    l.line(13.0, true, "Audit events");
    l.rule();
    for e in &c.events {
        let mut text = format!("{}  {}  {}", e.time, e.kind, e.actor);
        if let Some(ip) = &e.ip {
            text.push_str(&format!("  IP {ip}"));
        }
        if let Some(d) = &e.device {
            text.push_str(&format!("  {d}"));
        }
        l.line(8.0, false, &text);
    }
    l
}

/// Appends the certificate pages to `pdf` and attaches `trail_json` as an associated file.
pub fn append_certificate(pdf: &[u8], cert: &CompletionCertificate, trail_json: &[u8]) -> Result<Vec<u8>, PdfError> {
    let mut doc = crate::flatten::load(pdf)?;
    append_pages(&mut doc, cert, trail_json, &mut ScriptFont::default())?;
    crate::flatten::save(&mut doc)
}

/// Appends the certificate pages to `doc` and attaches `trail_json` as an associated file.
pub(crate) fn append_pages(
    doc: &mut Document,
    cert: &CompletionCertificate,
    trail_json: &[u8],
    script_font: &mut ScriptFont,
) -> Result<(), PdfError> {
    let bad = |_| PdfError::Malformed;
    let catalog_id = doc.trailer.get(b"Root").and_then(Object::as_reference).map_err(bad)?;
    let pages_id =
        doc.get_dictionary(catalog_id).and_then(|c| c.get(b"Pages")).and_then(Object::as_reference).map_err(bad)?;
    let (regular, bold) =
        (TextFont::new(doc, Weight::Regular, "SgCert")?, TextFont::new(doc, Weight::Bold, "SgCertB")?);
    let mut fonts = Dictionary::new();
    for r in &cert.recipients {
        let face = match &r.signature {
            Some(MarkContent::Script(_, face)) => *face,
            Some(MarkContent::Text(_)) => ScriptFace::default(),
            _ => continue,
        };
        let name = face.resource("SgCertI");
        if !fonts.has(name.as_bytes()) {
            fonts.set(name, script_font.id(doc, face)?);
        }
    }
    let Layout { pages: mut laid, mut regular, bold, .. } = lay_out(cert, regular, bold);
    let total = laid.len();
    for (i, page) in laid.iter_mut().enumerate() {
        let footer = format!("BT 0.4 g {} {} Td ", num(MARGIN), num(BOTTOM - 30.0));
        page.ops.extend_from_slice(footer.as_bytes());
        page.ops.extend_from_slice(&regular.show(
            &format!(
                "Sigillum certificate of completion - envelope {} - page {} of {}",
                cert.envelope_id,
                i + 1,
                total
            ),
            8.0,
        ));
        page.ops.extend_from_slice(b" ET\n");
    }
    // Every face drawn on any certificate page (fallback faces only when a name needed one).
    for (name, id) in regular.resources().into_iter().chain(bold.resources()) {
        fonts.set(name, id);
    }
    let mut new_pages = Vec::new();
    for page in laid {
        let ops = page.ops;
        let mut xobjects = Dictionary::new();
        for (name, img) in &page.images {
            let smask = doc.add_object(Stream::new(
                dictionary! {
                    "Type" => "XObject", "Subtype" => "Image", "Width" => img.width, "Height" => img.height,
                    "ColorSpace" => "DeviceGray", "BitsPerComponent" => 8, "Filter" => "FlateDecode",
                },
                deflate(&img.alpha)?,
            ));
            let xo = doc.add_object(Stream::new(
                dictionary! {
                    "Type" => "XObject", "Subtype" => "Image", "Width" => img.width, "Height" => img.height,
                    "ColorSpace" => "DeviceRGB", "BitsPerComponent" => 8, "Filter" => "FlateDecode", "SMask" => smask,
                },
                deflate(&img.rgb)?,
            ));
            xobjects.set(name.as_bytes(), xo);
        }
        let content = doc.add_object(Stream::new(dictionary! { "Filter" => "FlateDecode" }, deflate(&ops)?));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "MediaBox" => vec![0.into(), 0.into(), Object::Real(PAGE_W as f32), Object::Real(PAGE_H as f32)],
            "Contents" => content,
            "Resources" => dictionary! {
                "Font" => fonts.clone(),
                "XObject" => xobjects,
            },
        });
        new_pages.push(page_id);
    }
    // Appended to the root of the page tree, after every existing page.
    {
        let pages = doc.get_object_mut(pages_id).and_then(Object::as_dict_mut).map_err(bad)?;
        let mut kids = pages.get(b"Kids").and_then(Object::as_array).map_err(bad)?.clone();
        let count = pages.get(b"Count").and_then(Object::as_i64).map_err(bad)?;
        kids.extend(new_pages.iter().map(|id| Object::Reference(*id)));
        pages.set("Kids", kids);
        pages.set("Count", count + new_pages.len() as i64);
    }
    regular.finish(doc)?;
    bold.finish(doc)?;
    attach(doc, catalog_id, trail_json)?;
    Ok(())
}

fn attach(doc: &mut Document, catalog_id: lopdf::ObjectId, data: &[u8]) -> Result<(), PdfError> {
    let bad = |_| PdfError::Malformed;
    let embedded = doc.add_object(Stream::new(
        dictionary! {
            "Type" => "EmbeddedFile",
            "Subtype" => Object::Name(b"application/json".to_vec()),
            "Filter" => "FlateDecode",
            "Params" => dictionary! { "Size" => data.len() as i64 },
        },
        deflate(data)?,
    ));
    let name = Object::String(TRAIL_FILE_NAME.as_bytes().to_vec(), StringFormat::Literal);
    let filespec = doc.add_object(dictionary! {
        "Type" => "Filespec",
        "F" => name.clone(),
        "UF" => name.clone(),
        "Desc" => Object::String(b"Sigillum audit trail: events, RFC 9162 inclusion proofs, signed checkpoint".to_vec(), StringFormat::Literal),
        "AFRelationship" => "Supplement",
        "EF" => dictionary! { "F" => embedded },
    });
    let catalog = doc.get_object_mut(catalog_id).and_then(Object::as_dict_mut).map_err(bad)?;
    let mut af = match catalog.get(b"AF") {
        Ok(Object::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    af.push(filespec.into());
    catalog.set("AF", af);
    // A fresh /EmbeddedFiles tree with this one file (uploads carry none: the sanitiser removes
    // embedded files at ingest).
    let mut names = match catalog.get(b"Names") {
        Ok(Object::Dictionary(d)) => d.clone(),
        _ => Dictionary::new(),
    };
    names.set("EmbeddedFiles", dictionary! { "Names" => vec![name, filespec.into()] });
    catalog.set("Names", names);
    Ok(())
}

/// The attached audit trail of `pdf`, if it carries one.
pub fn attached_trail(doc: &Document) -> Option<Vec<u8>> {
    let catalog = doc.catalog().ok()?;
    let af = match catalog.get(b"AF").ok()? {
        Object::Reference(id) => doc.get_object(*id).ok()?.as_array().ok()?,
        o => o.as_array().ok()?,
    };
    for spec in af {
        let spec = match spec {
            Object::Reference(id) => doc.get_dictionary(*id).ok()?,
            o => o.as_dict().ok()?,
        };
        let name = spec.get(b"UF").or_else(|_| spec.get(b"F")).ok()?.as_str().ok()?;
        if name != TRAIL_FILE_NAME.as_bytes() {
            continue;
        }
        let ef = spec.get(b"EF").ok()?.as_dict().ok()?;
        let stream = doc.get_object(ef.get(b"F").ok()?.as_reference().ok()?).ok()?.as_stream().ok()?;
        return stream.get_plain_content().ok();
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn cert(events: usize) -> CompletionCertificate {
        CompletionCertificate {
            envelope_id: "0193-envelope".into(),
            title: "Supply agreement Zürich".into(),
            sender: "Sam Sender <sam@example.org>".into(),
            original_sha256: "ab".repeat(32),
            signed_content_sha256: "cd".repeat(32),
            completed_at: "2026-11-29T10:00:00Z".into(),
            log_origin: "sigillum.example/log".into(),
            log_tree_size: 42,
            jurisdiction: "CH".into(),
            recipients: vec![CertRecipient {
                name: "Ada Lovelace".into(),
                email: "ada@example.com".into(),
                role: "signer".into(),
                status: "signed".into(),
                ip: Some("203.0.113.7".into()),
                device: Some("Firefox 120 on Linux (desktop)".into()),
                consented_at: Some("2026-11-29T09:58:00Z".into()),
                finished_at: Some("2026-11-29T09:59:00Z".into()),
                signature: Some(MarkContent::Script("Ada Lovelace".into(), ScriptFace::KaushanScript)),
            }],
            events: (0..events)
                .map(|i| CertEvent {
                    time: format!("2026-11-29T09:{:02}:00Z", i % 60),
                    kind: "document.viewed".into(),
                    actor: "Ada Lovelace <ada@example.com>".into(),
                    ip: Some("203.0.113.7".into()),
                    device: None,
                })
                .collect(),
        }
    }

    #[test]
    fn pages_are_appended_paginated_and_the_trail_attached() {
        let base = crate::inspect::tests::sample(&[(612, 792, 0)]);
        let out = append_certificate(&base, &cert(200), br#"{"events":[]}"#).unwrap();
        let doc = Document::load_mem(&out).unwrap();
        let pages = doc.get_pages().len();
        assert!(pages >= 4, "200 events need several pages, got {pages}");
        assert_eq!(attached_trail(&doc).unwrap(), br#"{"events":[]}"#);
        let text = doc.extract_text(&[pages as u32]).unwrap();
        assert!(text.contains(&format!("page {} of {}", pages - 1, pages - 1)), "{text}");
        let first = doc.extract_text(&[2]).unwrap();
        assert!(first.contains("Data kept in") && first.contains("CH (every store"), "{first}");
    }

    #[test]
    fn names_beyond_latin_1_print_as_written() {
        let base = crate::inspect::tests::sample(&[(612, 792, 0)]);
        let mut c = cert(3);
        c.title = "Договор поставки — Ελληνικά".into();
        c.recipients[0].name = "Łukasz Żółć".into();
        c.recipients[0].signature = Some(MarkContent::Script("Łukasz Żółć".into(), ScriptFace::DancingScript));
        c.recipients.push(CertRecipient {
            name: "Дмитрий Иванов".into(),
            signature: Some(MarkContent::Text("Дмитрий".into())),
            ..c.recipients[0].clone()
        });
        let out = append_certificate(&base, &c, b"{}").unwrap();
        let doc = Document::load_mem(&out).unwrap();
        let text = doc.extract_text(&[2]).unwrap();
        for expected in ["Договор поставки — Ελληνικά", "Łukasz Żółć", "Дмитрий Иванов"]
        {
            assert!(text.contains(expected), "{expected} in {text}");
        }
        assert!(!text.contains('?'), "nothing replaced: {text}");
        // Poppler, an independent reader, reads the same text.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cert.pdf");
        std::fs::write(&path, &out).unwrap();
        let o = std::process::Command::new("pdftotext")
            .args(["-f", "2", "-l", "2"])
            .arg(&path)
            .arg("-")
            .output()
            .expect("pdftotext (poppler-utils): run scripts/test.sh");
        let read = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success() && read.contains("Łukasz Żółć") && read.contains("Дмитрий Иванов"), "{read}");
    }

    /// The certificate of `cert(3)` with `title`, a first recipient `first` who typed their
    /// name, and a second `second` whose signature is the text `second_signature`; returns the
    /// text poppler reads on the certificate page, and the file's path (kept in `dir`).
    fn certificate_read_by_poppler(
        dir: &std::path::Path,
        title: &str,
        first: &str,
        second: &str,
        second_signature: &str,
    ) -> (String, std::path::PathBuf) {
        let base = crate::inspect::tests::sample(&[(612, 792, 0)]);
        let mut c = cert(3);
        c.title = title.into();
        c.recipients[0].name = first.into();
        c.recipients[0].signature = Some(MarkContent::Script(first.into(), ScriptFace::DancingScript));
        c.recipients.push(CertRecipient {
            name: second.into(),
            signature: Some(MarkContent::Text(second_signature.into())),
            ..c.recipients[0].clone()
        });
        let out = append_certificate(&base, &c, b"{}").unwrap();
        let path = dir.join("cert.pdf");
        std::fs::write(&path, &out).unwrap();
        if let Ok(keep) = std::env::var("SIGILLUM_TEST_KEEP") {
            std::fs::write(std::path::Path::new(&keep).join(format!("certificate-{first}.pdf")), &out).unwrap();
        }
        let o =
            std::process::Command::new("pdftotext").args(["-f", "2", "-l", "2"]).arg(&path).arg("-").output().unwrap();
        (String::from_utf8_lossy(&o.stdout).into_owned(), path)
    }

    #[test]
    fn chinese_japanese_and_korean_names_print_with_the_fallback_face() {
        crate::text_font::tests::with_cjk_fallback();
        let dir = tempfile::tempdir().unwrap();
        let (read, path) =
            certificate_read_by_poppler(dir.path(), "供货合同 — Liefervertrag", "王小明", "山田 花子 / 김민준", "山田");
        // Poppler reads the names back, and lists the fallback face as embedded.
        for expected in ["供货合同 — Liefervertrag", "王小明", "山田 花子 / 김민준"] {
            assert!(read.contains(expected), "{expected} in {read}");
        }
        assert!(!read.contains('?'), "nothing replaced: {read}");
        let o = std::process::Command::new("pdffonts").arg(&path).output().unwrap();
        let fonts = String::from_utf8_lossy(&o.stdout);
        assert!(
            fonts.lines().any(|l| l.contains("NotoSansCJK") && l.contains("CID Type 0") && l.contains("yes")),
            "{fonts}"
        );
    }

    #[test]
    fn hebrew_and_arabic_names_are_reordered_and_shaped() {
        let dir = tempfile::tempdir().unwrap();
        let (read, _) =
            certificate_read_by_poppler(dir.path(), "اتفاقية توريد — Liefervertrag", "דוד לוי", "سلام الخطيب", "سلام");
        // Poppler reads the names back in logical order (it wraps right-to-left runs in
        // directional marks, dropped here).
        let read: String =
            read.chars().filter(|c| !matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}')).collect();
        for expected in ["اتفاقية توريد", "Liefervertrag", "דוד לוי", "سلام الخطيب", "سلام"]
        {
            assert!(read.contains(expected), "{expected} in {read}");
        }
        assert!(!read.contains('?'), "nothing replaced: {read}");
    }

    #[test]
    fn wraps_long_words_and_lines() {
        let nine = |s: &str| s.chars().count() <= 9;
        assert_eq!(wrap("aaaa bbbb cc", nine), vec!["aaaa bbbb", "cc"]);
        assert_eq!(wrap(&"x".repeat(25), |s: &str| s.chars().count() <= 10).len(), 3);
        assert_eq!(wrap("", nine), vec![""]);
        assert_eq!(wrap("ab", |_: &str| false), vec!["a", "b"], "at least one character a line");
    }
}
