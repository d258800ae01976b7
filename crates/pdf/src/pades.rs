//! PAdES (ETSI EN 319 142-1) signatures as incremental updates: the signed document's bytes stay
//! a prefix of the sealed file, so anything a signer saw is provably unchanged.
//!
//! Three kinds of update are written here, each appended after the previous file:
//! - a signature ([`prepare_signature`]): a `/Sig` dictionary with `/SubFilter
//!   /ETSI.CAdES.detached`, an invisible signature field on page 1 in the AcroForm, and a
//!   zero-filled `/Contents` placeholder; [`Prepared::digest`] is SHA-256 of the `/ByteRange`
//!   (everything but the placeholder) and [`Prepared::finish`] writes the CMS into the hole;
//! - a document security store ([`add_dss`]): certificates and CRLs for long-term validation (B-LT);
//! - a document timestamp ([`prepare_document_timestamp`]): `/Type /DocTimeStamp`, `/SubFilter
//!   /ETSI.RFC3161`, whose `/Contents` is an RFC 3161 token over the byte range (B-LTA).
//!
//! The update's cross-reference section has the form of the file's last one (a classic table or
//! a cross-reference stream), so readers that dislike hybrid files read it too.

use std::io::Write;

use lopdf::{dictionary, Dictionary, Document, Object, ObjectId, Stream, StringFormat};

use crate::inspect::PdfError;

/// Why a seal could not be written.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SealError {
    #[error(transparent)]
    Pdf(#[from] PdfError),
    #[error("the signature needs {needed} bytes but {capacity} were reserved")]
    SignatureTooLarge { needed: usize, capacity: usize },
}

/// What the signature dictionary records besides the signature.
#[derive(Debug, Clone)]
pub struct SignatureParams {
    /// Field name, unique in the document (e.g. `Sigillum Seal`).
    pub field_name: String,
    /// Signer's name shown by viewers (`/Name`).
    pub name: String,
    pub reason: String,
    pub location: Option<String>,
    /// Claimed signing time (`/M`), Unix seconds.
    pub signing_time_unix: i64,
    /// Bytes reserved for the DER CMS (the hex placeholder is twice this).
    pub capacity: usize,
}

/// A document with a signature placeholder, waiting for its CMS.
#[derive(Debug, Clone)]
pub struct Prepared {
    bytes: Vec<u8>,
    /// Offsets of `<` and one past `>` of the `/Contents` hex string.
    hole: (usize, usize),
}

impl Prepared {
    /// `/ByteRange` of this signature.
    pub fn byte_range(&self) -> [usize; 4] {
        [0, self.hole.0, self.hole.1, self.bytes.len() - self.hole.1]
    }

    /// SHA-256 over the byte range: what the CMS message-digest (or the timestamp imprint) covers.
    pub fn digest(&self) -> [u8; 32] {
        byte_range_digest(&self.bytes, self.byte_range())
    }

    /// Writes `cms_der` into the placeholder and returns the signed file.
    pub fn finish(mut self, cms_der: &[u8]) -> Result<Vec<u8>, SealError> {
        let capacity = (self.hole.1 - self.hole.0 - 2) / 2;
        if cms_der.len() > capacity {
            return Err(SealError::SignatureTooLarge { needed: cms_der.len(), capacity });
        }
        let hexed = hex::encode_upper(cms_der);
        self.bytes[self.hole.0 + 1..self.hole.0 + 1 + hexed.len()].copy_from_slice(hexed.as_bytes());
        Ok(self.bytes)
    }
}

/// SHA-256 over the two parts of a `/ByteRange` (without copying the file). `None`-safe: a range
/// outside the file digests what exists of it; verification checks the range itself.
pub fn byte_range_digest(file: &[u8], r: [usize; 4]) -> [u8; 32] {
    use sha2::Digest;
    let part = |start: usize, len: usize| file.get(start..start.saturating_add(len)).unwrap_or(&[]);
    let mut h = sha2::Sha256::new();
    h.update(part(r[0], r[1]));
    h.update(part(r[2], r[3]));
    h.finalize().into()
}

fn load(pdf: &[u8]) -> Result<Document, PdfError> {
    let doc = std::panic::catch_unwind(|| Document::load_mem(pdf))
        .map_err(|_| PdfError::Malformed)?
        .map_err(|_| PdfError::Malformed)?;
    if doc.is_encrypted() {
        return Err(PdfError::Encrypted);
    }
    Ok(doc)
}

/// Offset of the last cross-reference section (`startxref`).
fn last_startxref(pdf: &[u8]) -> Result<usize, PdfError> {
    let tail_from = pdf.len().saturating_sub(2048);
    let tail = &pdf[tail_from..];
    let at = tail.windows(9).rposition(|w| w == b"startxref").ok_or(PdfError::Malformed)?;
    let digits: String = tail[at + 9..]
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take_while(|b| b.is_ascii_digit())
        .map(|b| *b as char)
        .collect();
    let offset: usize = digits.parse().map_err(|_| PdfError::Malformed)?;
    if offset >= pdf.len() {
        return Err(PdfError::Malformed);
    }
    Ok(offset)
}

/// An incremental update being written after `base`.
struct Update<'a> {
    base: &'a [u8],
    doc: Document,
    next_id: u32,
    objects: Vec<(ObjectId, Object)>,
}

impl<'a> Update<'a> {
    fn new(base: &'a [u8]) -> Result<Self, PdfError> {
        let doc = load(base)?;
        let size = doc.trailer.get(b"Size").and_then(Object::as_i64).unwrap_or(0).max(0) as u32;
        let next_id = size.max(doc.max_id + 1);
        Ok(Self { base, doc, next_id, objects: Vec::new() })
    }

    fn add(&mut self, object: Object) -> ObjectId {
        let id = (self.next_id, 0);
        self.next_id += 1;
        self.objects.push((id, object));
        id
    }

    fn replace(&mut self, id: ObjectId, object: Object) {
        self.objects.retain(|(i, _)| *i != id);
        self.objects.push((id, object));
    }

    fn catalog_id(&self) -> Result<ObjectId, PdfError> {
        self.doc.trailer.get(b"Root").and_then(Object::as_reference).map_err(|_| PdfError::Malformed)
    }

    fn catalog(&self) -> Result<Dictionary, PdfError> {
        let id = self.catalog_id()?;
        if let Some((_, Object::Dictionary(d))) = self.objects.iter().find(|(i, _)| *i == id) {
            return Ok(d.clone());
        }
        self.doc.get_dictionary(id).cloned().map_err(|_| PdfError::Malformed)
    }

    fn resolve(&self, o: &Object) -> Result<Object, PdfError> {
        match o {
            Object::Reference(id) => self.doc.get_object(*id).cloned().map_err(|_| PdfError::Malformed),
            o => Ok(o.clone()),
        }
    }

    /// Serialises the update (objects, cross-reference section, trailer) after the base file.
    fn write(self) -> Result<Vec<u8>, PdfError> {
        let prev = last_startxref(self.base)?;
        let xref_is_stream = !self.base[prev..].starts_with(b"xref");
        let mut out = self.base.to_vec();
        if !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        let mut offsets: Vec<(u32, usize)> = Vec::new();
        for (id, obj) in &self.objects {
            offsets.push((id.0, out.len()));
            writeln!(out, "{} {} obj", id.0, id.1).map_err(|_| PdfError::Malformed)?;
            lopdf::Writer::write_object(&mut out, obj).map_err(|_| PdfError::Malformed)?;
            out.extend_from_slice(b"\nendobj\n");
        }
        let mut trailer = Dictionary::new();
        for key in [&b"Root"[..], b"Info", b"ID"] {
            if let Ok(v) = self.doc.trailer.get(key) {
                trailer.set(key, v.clone());
            }
        }
        trailer.set("Prev", prev as i64);
        if xref_is_stream {
            let xref_id = self.next_id;
            let xref_offset = out.len();
            offsets.push((xref_id, xref_offset));
            offsets.sort();
            let mut index = Vec::new();
            let mut data = Vec::new();
            for (n, off) in &offsets {
                index.push(Object::Integer(i64::from(*n)));
                index.push(Object::Integer(1));
                data.push(1u8);
                data.extend_from_slice(&(*off as u32).to_be_bytes());
                data.extend_from_slice(&0u16.to_be_bytes());
            }
            trailer.set("Type", "XRef");
            trailer.set("Size", i64::from(xref_id) + 1);
            trailer.set("W", vec![1.into(), 4.into(), 2.into()]);
            trailer.set("Index", index);
            let stream = Stream::new(trailer, data);
            writeln!(out, "{xref_id} 0 obj").map_err(|_| PdfError::Malformed)?;
            lopdf::Writer::write_object(&mut out, &Object::Stream(stream)).map_err(|_| PdfError::Malformed)?;
            write!(out, "\nendobj\nstartxref\n{xref_offset}\n%%EOF\n").map_err(|_| PdfError::Malformed)?;
        } else {
            offsets.sort();
            let xref_offset = out.len();
            out.extend_from_slice(b"xref\n");
            for (n, off) in &offsets {
                write!(out, "{n} 1\n{off:010} 00000 n \n").map_err(|_| PdfError::Malformed)?;
            }
            trailer.set("Size", i64::from(self.next_id));
            out.extend_from_slice(b"trailer\n");
            lopdf::Writer::write_object(&mut out, &Object::Dictionary(trailer)).map_err(|_| PdfError::Malformed)?;
            write!(out, "\nstartxref\n{xref_offset}\n%%EOF\n").map_err(|_| PdfError::Malformed)?;
        }
        Ok(out)
    }
}

/// `D:YYYYMMDDHHmmSSZ` for `/M`.
pub fn pdf_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("D:{y:04}{m:02}{d:02}{:02}{:02}{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

const BYTE_RANGE_PLACEHOLDER: &[u8] = b"[0 1000000000 1000000000 1000000000]";

/// Adds a signature field whose value is `sig`, on page 1, and returns the prepared file.
fn prepare(pdf: &[u8], sig: Dictionary, field_name: &str) -> Result<Prepared, PdfError> {
    let mut up = Update::new(pdf)?;
    let pages = up.doc.get_pages();
    let (_, &page_id) = pages.iter().next().ok_or(PdfError::NoPages)?;
    let sig_id = up.add(Object::Dictionary(sig));
    let widget_id = up.add(Object::Dictionary(dictionary! {
        "Type" => "Annot",
        "Subtype" => "Widget",
        "FT" => "Sig",
        "T" => Object::String(field_name.as_bytes().to_vec(), StringFormat::Literal),
        "V" => sig_id,
        "Rect" => vec![0.into(), 0.into(), 0.into(), 0.into()],
        "F" => 132,
        "P" => page_id,
    }));
    // The page lists the widget among its annotations.
    let mut page = up.doc.get_dictionary(page_id).map_err(|_| PdfError::Malformed)?.clone();
    match page.get(b"Annots").ok().cloned() {
        Some(Object::Reference(arr_id)) => {
            let mut arr = up.resolve(&Object::Reference(arr_id))?.as_array().map_err(|_| PdfError::Malformed)?.clone();
            arr.push(widget_id.into());
            up.replace(arr_id, Object::Array(arr));
        }
        Some(Object::Array(mut arr)) => {
            arr.push(widget_id.into());
            page.set("Annots", arr);
            up.replace(page_id, Object::Dictionary(page));
        }
        _ => {
            page.set("Annots", vec![widget_id.into()]);
            up.replace(page_id, Object::Dictionary(page));
        }
    }
    // The AcroForm lists the field and says the document holds signatures (append-only).
    let catalog_id = up.catalog_id()?;
    let mut catalog = up.catalog()?;
    let (form_id, mut form) = match catalog.get(b"AcroForm").ok().cloned() {
        Some(Object::Reference(id)) => {
            (Some(id), up.resolve(&Object::Reference(id))?.as_dict().map_err(|_| PdfError::Malformed)?.clone())
        }
        Some(Object::Dictionary(d)) => (None, d),
        _ => (None, Dictionary::new()),
    };
    let mut fields = match form.get(b"Fields").ok().cloned() {
        Some(o) => up.resolve(&o)?.as_array().map_err(|_| PdfError::Malformed)?.clone(),
        None => Vec::new(),
    };
    fields.push(widget_id.into());
    form.set("Fields", fields);
    form.set("SigFlags", 3);
    match form_id {
        Some(id) => up.replace(id, Object::Dictionary(form)),
        None => {
            catalog.set("AcroForm", form);
            up.replace(catalog_id, Object::Dictionary(catalog));
        }
    }
    let mut out = up.write()?;
    locate_placeholders(&mut out, sig_id.0)
}

/// Finds the `/ByteRange` and `/Contents` placeholders of object `sig_obj` and fills the range.
fn locate_placeholders(out: &mut [u8], sig_obj: u32) -> Result<Prepared, PdfError> {
    let header = format!("\n{sig_obj} 0 obj\n");
    let obj_at = find_last(out, header.as_bytes()).ok_or(PdfError::Malformed)?;
    let br_at = find_from(out, BYTE_RANGE_PLACEHOLDER, obj_at).ok_or(PdfError::Malformed)?;
    let contents_key = find_from(out, b"/Contents", obj_at).ok_or(PdfError::Malformed)?;
    let open = find_from(out, b"<", contents_key).ok_or(PdfError::Malformed)?;
    let close = find_from(out, b">", open).ok_or(PdfError::Malformed)? + 1;
    let range = format!("[0 {} {} {}]", open, close, out.len() - close);
    if range.len() > BYTE_RANGE_PLACEHOLDER.len() {
        return Err(PdfError::Malformed);
    }
    let padded = format!("{range:<width$}", width = BYTE_RANGE_PLACEHOLDER.len());
    out[br_at..br_at + padded.len()].copy_from_slice(padded.as_bytes());
    Ok(Prepared { bytes: out.to_vec(), hole: (open, close) })
}

fn find_from(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

fn find_last(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

fn placeholder_contents(capacity: usize) -> Object {
    Object::String(vec![0u8; capacity], StringFormat::Hexadecimal)
}

fn byte_range_placeholder() -> Object {
    // Ten-digit numbers reserve the width; `locate_placeholders` overwrites them in place,
    // padding with spaces.
    Object::Array(vec![
        Object::Integer(0),
        Object::Integer(1_000_000_000),
        Object::Integer(1_000_000_000),
        Object::Integer(1_000_000_000),
    ])
}

/// A PAdES signature placeholder (CMS to come from [`crate::cms`]).
pub fn prepare_signature(pdf: &[u8], p: &SignatureParams) -> Result<Prepared, PdfError> {
    let mut sig = dictionary! {
        "Type" => "Sig",
        "Filter" => "Adobe.PPKLite",
        "SubFilter" => "ETSI.CAdES.detached",
        "ByteRange" => byte_range_placeholder(),
        "M" => Object::String(pdf_date(p.signing_time_unix).into_bytes(), StringFormat::Literal),
        "Name" => Object::String(p.name.as_bytes().to_vec(), StringFormat::Literal),
        "Reason" => Object::String(p.reason.as_bytes().to_vec(), StringFormat::Literal),
    };
    if let Some(loc) = &p.location {
        sig.set("Location", Object::String(loc.as_bytes().to_vec(), StringFormat::Literal));
    }
    sig.set("Contents", placeholder_contents(p.capacity));
    prepare(pdf, sig, &p.field_name)
}

/// A document-timestamp placeholder (an RFC 3161 token over the byte range goes in).
pub fn prepare_document_timestamp(pdf: &[u8], field_name: &str, capacity: usize) -> Result<Prepared, PdfError> {
    let mut sig = dictionary! {
        "Type" => "DocTimeStamp",
        "Filter" => "Adobe.PPKLite",
        "SubFilter" => "ETSI.RFC3161",
        "ByteRange" => byte_range_placeholder(),
    };
    sig.set("Contents", placeholder_contents(capacity));
    prepare(pdf, sig, field_name)
}

/// Appends a document security store (ISO 32000-2 §12.8.4.3) with `certs`, `crls` and OCSP
/// responses `ocsps` (DER), kept with whatever an earlier DSS held.
pub fn add_dss(pdf: &[u8], certs: &[Vec<u8>], crls: &[Vec<u8>], ocsps: &[Vec<u8>]) -> Result<Vec<u8>, PdfError> {
    let mut up = Update::new(pdf)?;
    let catalog_id = up.catalog_id()?;
    let mut catalog = up.catalog()?;
    let mut dss = match catalog.get(b"DSS").ok().cloned() {
        Some(o) => up.resolve(&o)?.as_dict().map_err(|_| PdfError::Malformed)?.clone(),
        None => Dictionary::new(),
    };
    for (key, items) in [(&b"Certs"[..], certs), (b"CRLs", crls), (b"OCSPs", ocsps)] {
        if items.is_empty() && key == b"OCSPs" && !dss.has(key) {
            continue;
        }
        let mut arr = match dss.get(key).ok().cloned() {
            Some(o) => up.resolve(&o)?.as_array().map_err(|_| PdfError::Malformed)?.clone(),
            None => Vec::new(),
        };
        for der in items {
            let id = up.add(Object::Stream(Stream::new(Dictionary::new(), der.clone())));
            arr.push(id.into());
        }
        dss.set(key, arr);
    }
    let dss_id = up.add(Object::Dictionary(dss));
    catalog.set("DSS", dss_id);
    up.replace(catalog_id, Object::Dictionary(catalog));
    up.write()
}
