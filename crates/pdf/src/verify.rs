//! Verifying a sealed PDF without trusting the software that sealed it: every signature's byte
//! range, digest and CMS signature, the signer's chain to the caller's trust anchors (with the
//! CRLs the file carries), the signature and document timestamps, and the PAdES level reached.
//!
//! Each check is reported separately so the CLI can say in plain words what held and what did
//! not; [`Report::valid`] is true only when everything held and the last signature covers the
//! whole file (nothing was appended after sealing).

use const_oid::db::rfc5280::ID_KP_TIME_STAMPING;
use der::Decode;
use lopdf::{Document, Object};
use serde::Serialize;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages};

use crate::cms::{ParsedSignedData, ID_AA_SIGNATURE_TIME_STAMP_TOKEN};
use crate::pades::byte_range_digest;
use crate::pki::CertInfo;
use crate::tsp;

/// Why verification could not even start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("the file is not a readable PDF")]
    NotPdf,
    #[error("the PDF has no signatures")]
    Unsigned,
}

/// Deepest certificate chain followed.
const MAX_CHAIN: usize = 8;
/// Largest file verified (a sealed document is far smaller).
pub const MAX_FILE: usize = 256 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureKind {
    Signature,
    DocumentTimestamp,
}

/// What was found about one certificate chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Subjects from the end entity up to the trust anchor (or as far as the chain went).
    pub path: Vec<String>,
    /// The chain ends in one of the given trust anchors, every signature in it verifies and every
    /// certificate was valid at the time checked.
    pub trusted: bool,
    /// A CRL in the file, signed by the issuer, was found for every non-root certificate and
    /// lists none of them.
    pub revocation_checked: bool,
    pub revoked: bool,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimestampReport {
    pub time_unix: u64,
    /// Imprint matches and the token's own signature verifies.
    pub intact: bool,
    pub chain: ChainReport,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureReport {
    pub field: String,
    pub kind: SignatureKind,
    pub sub_filter: String,
    pub byte_range: Vec<u64>,
    /// The range starts at 0 and skips exactly the `/Contents` hex string.
    pub byte_range_ok: bool,
    /// The range reaches the end of the file (nothing appended after this signature).
    pub covers_whole_file: bool,
    /// SHA-256 of the covered bytes equals the signed digest (or the timestamp imprint).
    pub digest_ok: bool,
    /// The CMS signature over the signed attributes verifies with the signer certificate.
    pub signature_ok: bool,
    /// ESS signing-certificate-v2 binds the signer certificate (CAdES / PAdES requirement).
    pub signing_certificate_ok: bool,
    pub signer: Option<String>,
    pub chain: Option<ChainReport>,
    /// The signature timestamp (B-T), or for a document timestamp, the timestamp itself.
    pub timestamp: Option<TimestampReport>,
    pub problems: Vec<String>,
}

impl SignatureReport {
    pub fn intact(&self) -> bool {
        self.byte_range_ok && self.digest_ok && self.signature_ok && self.signing_certificate_ok
    }

    pub fn trusted(&self) -> bool {
        self.chain.as_ref().is_some_and(|c| c.trusted && !c.revoked)
            && self.timestamp.as_ref().is_none_or(|t| t.intact && t.chain.trusted && !t.chain.revoked)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum PadesLevel {
    #[serde(rename = "B-B")]
    BB,
    #[serde(rename = "B-T")]
    BT,
    #[serde(rename = "B-LT")]
    BLt,
    #[serde(rename = "B-LTA")]
    BLta,
}

impl PadesLevel {
    pub fn name(self) -> &'static str {
        match self {
            Self::BB => "PAdES B-B",
            Self::BT => "PAdES B-T",
            Self::BLt => "PAdES B-LT",
            Self::BLta => "PAdES B-LTA",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub valid: bool,
    pub level: Option<PadesLevel>,
    pub signatures: Vec<SignatureReport>,
    /// Bytes after the end of the last signed revision.
    pub unsigned_trailing_bytes: u64,
    pub dss_certificates: usize,
    pub dss_crls: usize,
    pub dss_ocsp_responses: usize,
    /// The attached audit trail, when the document carries one (every Sigillum final document).
    pub audit_trail: Option<TrailReport>,
    pub problems: Vec<String>,
}

/// What checking the attached audit trail found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrailReport {
    pub envelope_id: String,
    pub log_origin: String,
    pub tree_size: u64,
    pub events: usize,
    /// The checkpoint's Ed25519 signature verifies with the log key the trail names.
    pub checkpoint_ok: bool,
    /// Every event's canonical bytes hash to its leaf hash.
    pub leaves_ok: bool,
    /// Every leaf is in the checkpointed tree (RFC 9162 inclusion proofs).
    pub proofs_ok: bool,
    /// Every disclosed personal value opens its commitment.
    pub disclosures_ok: bool,
    /// The `document.uploaded` event commits to the original SHA-256 the trail states.
    pub original_matches: bool,
    pub problems: Vec<String>,
}

impl TrailReport {
    pub fn ok(&self) -> bool {
        self.checkpoint_ok && self.leaves_ok && self.proofs_ok && self.disclosures_ok && self.original_matches
    }
}

#[derive(serde::Deserialize)]
struct AttachedTrail {
    format: String,
    envelope_id: String,
    original_sha256: String,
    log_origin: String,
    log_key: String,
    checkpoint: String,
    tree_size: u64,
    events: Vec<AttachedEvent>,
}

#[derive(serde::Deserialize)]
struct AttachedEvent {
    seq: u64,
    event: serde_json::Value,
    disclosed: Option<sigillum_audit::Disclosure>,
    leaf_hash: String,
    inclusion_proof: Vec<String>,
}

/// Checks an attached audit trail (`sigillum-audit-trail.json`).
pub fn check_trail(json: &[u8]) -> TrailReport {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut r = TrailReport {
        envelope_id: String::new(),
        log_origin: String::new(),
        tree_size: 0,
        events: 0,
        checkpoint_ok: false,
        leaves_ok: false,
        proofs_ok: false,
        disclosures_ok: false,
        original_matches: false,
        problems: vec![],
    };
    let t: AttachedTrail = match serde_json::from_slice(json) {
        Ok(t) => t,
        Err(e) => {
            r.problems.push(format!("the attached audit trail is not readable: {e}"));
            return r;
        }
    };
    if t.format != "sigillum-audit-trail/v1" {
        r.problems.push(format!("unknown audit trail format {:?}", t.format));
        return r;
    }
    r.envelope_id = t.envelope_id.clone();
    r.log_origin = t.log_origin.clone();
    r.tree_size = t.tree_size;
    r.events = t.events.len();
    let head = match sigillum_audit::verify_checkpoint(&t.checkpoint, &t.log_key) {
        Ok(h) if h.size == t.tree_size && h.origin == t.log_origin => {
            r.checkpoint_ok = true;
            Some(h)
        }
        Ok(_) => {
            r.problems.push("the checkpoint does not match the stated log and size".into());
            None
        }
        Err(e) => {
            r.problems.push(format!("the checkpoint signature does not verify: {e}"));
            None
        }
    };
    let (mut leaves_ok, mut proofs_ok, mut disclosures_ok) = (!t.events.is_empty(), head.is_some(), true);
    for e in &t.events {
        let leaf = b64.decode(&e.leaf_hash).unwrap_or_default();
        let event: Result<sigillum_audit::Event, _> = serde_json::from_value(e.event.clone());
        let Ok(event) = event else {
            leaves_ok = false;
            r.problems.push(format!("event {} is not a Sigillum audit event", e.seq));
            continue;
        };
        match event.canonical_bytes() {
            Ok(bytes) if sigillum_audit::leaf_hash(&bytes).as_slice() == leaf.as_slice() => {}
            _ => {
                leaves_ok = false;
                r.problems.push(format!("event {} does not hash to its leaf", e.seq));
            }
        }
        if let Some(d) = &e.disclosed {
            if event.check_disclosure(d).is_err() {
                disclosures_ok = false;
                r.problems.push(format!("a personal value of event {} does not open its commitment", e.seq));
            }
        }
        if let Some(h) = &head {
            let proof: Vec<Vec<u8>> = e.inclusion_proof.iter().map(|p| b64.decode(p).unwrap_or_default()).collect();
            if sigillum_audit::verify_inclusion(e.seq, h.size, &leaf, &proof, &h.root).is_err() {
                proofs_ok = false;
                r.problems.push(format!("event {} is not proven to be in the log", e.seq));
            }
        }
        if e.event.get("envelope_id").and_then(|v| v.as_str()) != Some(t.envelope_id.as_str()) {
            leaves_ok = false;
            r.problems.push(format!("event {} belongs to another envelope", e.seq));
        }
    }
    r.leaves_ok = leaves_ok;
    r.proofs_ok = proofs_ok;
    r.disclosures_ok = disclosures_ok;
    r.original_matches = t.events.iter().any(|e| {
        e.event.get("kind").and_then(|k| k.as_str()) == Some("document.uploaded")
            && e.event.get("document_sha256").and_then(|d| d.as_str()) == Some(t.original_sha256.as_str())
    });
    if !r.original_matches {
        r.problems.push("no document.uploaded event commits to the stated original SHA-256".into());
    }
    r
}

struct RawSignature {
    field: String,
    kind: SignatureKind,
    sub_filter: String,
    byte_range: Vec<i64>,
    contents: Vec<u8>,
}

fn name_of(o: &Object) -> String {
    match o {
        Object::Name(n) => String::from_utf8_lossy(n).into_owned(),
        Object::String(s, _) => String::from_utf8_lossy(s).into_owned(),
        _ => String::new(),
    }
}

fn deref<'a>(doc: &'a Document, o: &'a Object) -> Option<&'a Object> {
    match o {
        Object::Reference(id) => doc.get_object(*id).ok(),
        o => Some(o),
    }
}

fn signatures(doc: &Document) -> Vec<RawSignature> {
    let mut out = Vec::new();
    let Ok(catalog) = doc.catalog() else { return out };
    let Some(form) = catalog.get(b"AcroForm").ok().and_then(|f| deref(doc, f)).and_then(|f| f.as_dict().ok()) else {
        return out;
    };
    let Some(fields) = form.get(b"Fields").ok().and_then(|f| deref(doc, f)).and_then(|f| f.as_array().ok()) else {
        return out;
    };
    // Fields may nest (/Kids); walk them breadth-first with a bound.
    let mut queue: Vec<&Object> = fields.iter().collect();
    let mut seen = 0;
    while let Some(f) = queue.pop() {
        seen += 1;
        if seen > 10_000 {
            break;
        }
        let Some(field) = deref(doc, f).and_then(|f| f.as_dict().ok()) else { continue };
        if let Some(kids) = field.get(b"Kids").ok().and_then(|k| deref(doc, k)).and_then(|k| k.as_array().ok()) {
            queue.extend(kids.iter());
        }
        if field.get(b"FT").map(name_of).ok().as_deref() != Some("Sig") {
            continue;
        }
        let Some(v) = field.get(b"V").ok().and_then(|v| deref(doc, v)).and_then(|v| v.as_dict().ok()) else {
            continue;
        };
        let kind = match v.get(b"Type").map(name_of).ok().as_deref() {
            Some("DocTimeStamp") => SignatureKind::DocumentTimestamp,
            _ => SignatureKind::Signature,
        };
        let byte_range = v
            .get(b"ByteRange")
            .ok()
            .and_then(|b| deref(doc, b))
            .and_then(|b| b.as_array().ok())
            .map(|a| a.iter().filter_map(|x| x.as_i64().ok()).collect())
            .unwrap_or_default();
        let contents = match v.get(b"Contents").ok().and_then(|c| deref(doc, c)) {
            Some(Object::String(s, _)) => s.clone(),
            _ => Vec::new(),
        };
        out.push(RawSignature {
            field: field.get(b"T").map(name_of).unwrap_or_default(),
            kind,
            sub_filter: v.get(b"SubFilter").map(name_of).unwrap_or_default(),
            byte_range,
            contents,
        });
    }
    // Oldest first: by where their signed range ends.
    out.sort_by_key(|s| s.byte_range.get(2).copied().unwrap_or(0) + s.byte_range.get(3).copied().unwrap_or(0));
    out
}

/// The DER object at the start of `padded` (the `/Contents` hole is zero-padded).
fn der_prefix(padded: &[u8]) -> &[u8] {
    use der::Reader;
    let len = der::SliceReader::new(padded)
        .ok()
        .and_then(|mut r| {
            let h = der::Header::decode(&mut r).ok()?;
            let header_len = usize::try_from(u32::from(r.position())).ok()?;
            header_len.checked_add(usize::try_from(u32::from(h.length)).ok()?)
        })
        .unwrap_or(padded.len());
    &padded[..len.min(padded.len())]
}

/// The revocation data a file carries in its DSS: CRLs and OCSP responses (DER).
#[derive(Default)]
struct Revocation {
    crls: Vec<CertificateList>,
    ocsps: Vec<Vec<u8>>,
}

impl Revocation {
    fn is_empty(&self) -> bool {
        self.crls.is_empty() && self.ocsps.is_empty()
    }
}

fn dss(doc: &Document) -> (Vec<CertInfo>, Revocation) {
    let mut certs = Vec::new();
    let mut crls = Revocation::default();
    let Ok(catalog) = doc.catalog() else { return (certs, crls) };
    let Some(dss) = catalog.get(b"DSS").ok().and_then(|d| deref(doc, d)).and_then(|d| d.as_dict().ok()) else {
        return (certs, crls);
    };
    let streams = |key: &[u8]| -> Vec<Vec<u8>> {
        dss.get(key)
            .ok()
            .and_then(|a| deref(doc, a))
            .and_then(|a| a.as_array().ok())
            .map(|a| {
                a.iter()
                    .filter_map(|o| deref(doc, o))
                    .filter_map(|o| o.as_stream().ok())
                    .filter_map(|s| s.get_plain_content().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    for der_bytes in streams(b"Certs") {
        if let Ok(c) = CertInfo::parse(&der_bytes) {
            certs.push(c);
        }
    }
    for der_bytes in streams(b"CRLs") {
        if let Ok(c) = CertificateList::from_der(&der_bytes) {
            crls.crls.push(c);
        }
    }
    crls.ocsps = streams(b"OCSPs");
    (certs, crls)
}

/// Is `cert` valid at `t` (Unix seconds)?
fn valid_at(cert: &CertInfo, t: u64) -> bool {
    let v = &cert.cert.tbs_certificate.validity;
    v.not_before.to_unix_duration().as_secs() <= t && t <= v.not_after.to_unix_duration().as_secs()
}

fn is_ca(cert: &CertInfo) -> bool {
    matches!(cert.cert.tbs_certificate.get::<BasicConstraints>(), Ok(Some((_, bc))) if bc.ca)
}

fn subject(cert: &CertInfo) -> String {
    cert.subject().to_string()
}

/// Whether the file's CRLs and OCSP responses show `cert` (issued by `issuer`) unrevoked at `t`:
/// `Some(false)` revoked, `None` no CRL or OCSP response of that issuer verifies.
fn crl_status(cert: &CertInfo, issuer: &CertInfo, crls: &Revocation, t: u64) -> Option<bool> {
    let mut found = None;
    for der in &crls.ocsps {
        if let Ok(status) = crate::revocation::ocsp_status(der, cert, issuer) {
            if status.revoked_since.is_some_and(|since| since <= t) {
                return Some(false);
            }
            found = Some(true);
        }
    }
    // Only CRLs of this issuer, signed by it, count.
    for crl in &crls.crls {
        let Ok(listed) = crate::revocation::revoked_since(crl, cert, issuer) else { continue };
        if listed.is_some_and(|since| since <= t) {
            return Some(false);
        }
        found = Some(true);
    }
    found
}

/// Builds and checks the chain from `leaf` to one of `anchors` at time `t`.
fn chain(leaf: &CertInfo, pool: &[CertInfo], anchors: &[CertInfo], crls: &Revocation, t: u64) -> ChainReport {
    let mut path = vec![subject(leaf)];
    let mut problems = Vec::new();
    let mut current = leaf.clone();
    let mut trusted = false;
    let mut revocation_checked = true;
    let mut revoked = false;
    if !valid_at(leaf, t) {
        problems.push(format!("{} was not valid at the time checked", subject(leaf)));
    }
    for _ in 0..MAX_CHAIN {
        if let Some(anchor) =
            anchors.iter().find(|a| a.subject() == &current.cert.tbs_certificate.issuer && current.signed_by(a))
        {
            if current.der != anchor.der {
                match crl_status(&current, anchor, crls, t) {
                    Some(true) => {}
                    Some(false) => revoked = true,
                    None => revocation_checked = false,
                }
                path.push(subject(anchor));
            }
            if !valid_at(anchor, t) {
                problems.push(format!("trust anchor {} was not valid at the time checked", subject(anchor)));
            }
            trusted = true;
            break;
        }
        let Some(issuer) = pool.iter().find(|c| {
            c.der != current.der && c.subject() == &current.cert.tbs_certificate.issuer && current.signed_by(c)
        }) else {
            problems.push(format!("no trusted issuer found for {}", subject(&current)));
            break;
        };
        if !is_ca(issuer) {
            problems.push(format!("{} is not a CA", subject(issuer)));
            break;
        }
        if !valid_at(issuer, t) {
            problems.push(format!("{} was not valid at the time checked", subject(issuer)));
        }
        match crl_status(&current, issuer, crls, t) {
            Some(true) => {}
            Some(false) => revoked = true,
            None => revocation_checked = false,
        }
        path.push(subject(issuer));
        current = issuer.clone();
    }
    if revoked {
        problems.push("a certificate in the chain is revoked".into());
    }
    ChainReport { path, trusted: trusted && problems.is_empty(), revocation_checked, revoked, problems }
}

fn key_usage_ok(cert: &CertInfo, kind: SignatureKind) -> bool {
    match kind {
        SignatureKind::Signature => match cert.cert.tbs_certificate.get::<KeyUsage>() {
            Ok(Some((_, ku))) => ku.0.contains(KeyUsages::DigitalSignature) || ku.0.contains(KeyUsages::NonRepudiation),
            Ok(None) => true,
            Err(_) => false,
        },
        SignatureKind::DocumentTimestamp => tsa_usage_ok(cert),
    }
}

fn tsa_usage_ok(cert: &CertInfo) -> bool {
    matches!(cert.cert.tbs_certificate.get::<ExtendedKeyUsage>(), Ok(Some((_, eku))) if eku.0 == vec![ID_KP_TIME_STAMPING])
}

fn timestamp_report(
    token: &[u8],
    imprint: &[u8; 32],
    pool: &[CertInfo],
    anchors: &[CertInfo],
    crls: &Revocation,
) -> Result<TimestampReport, String> {
    let check = tsp::check_token(token, imprint).map_err(|e| e.to_string())?;
    let t = check.gen_time_unix;
    let mut all = pool.to_vec();
    all.extend(check.certificates.iter().cloned());
    let chain = match &check.tsa_certificate {
        Some(tsa) => {
            let mut c = chain(tsa, &all, anchors, crls, t);
            if !tsa_usage_ok(tsa) {
                c.trusted = false;
                c.problems.push("the timestamp certificate is not for time stamping (EKU)".into());
            }
            c
        }
        None => ChainReport {
            path: vec![],
            trusted: false,
            revocation_checked: false,
            revoked: false,
            problems: vec!["the timestamp names no certificate it carries".into()],
        },
    };
    Ok(TimestampReport { time_unix: t, intact: check.ok(), chain })
}

/// Verifies every signature of `file` against `anchors` at `now_unix` (signature times come from
/// their timestamps when present).
pub fn verify(file: &[u8], anchors: &[CertInfo], now_unix: u64) -> Result<Report, VerifyError> {
    if file.len() > MAX_FILE || !file.windows(5).take(1024).any(|w| w == b"%PDF-") {
        return Err(VerifyError::NotPdf);
    }
    let doc = std::panic::catch_unwind(|| Document::load_mem(file))
        .map_err(|_| VerifyError::NotPdf)?
        .map_err(|_| VerifyError::NotPdf)?;
    let raw = signatures(&doc);
    if raw.is_empty() {
        return Err(VerifyError::Unsigned);
    }
    let (dss_certs, crls) = dss(&doc);
    let mut reports = Vec::new();
    for s in &raw {
        reports.push(verify_one(file, s, &dss_certs, anchors, &crls, now_unix));
    }
    let last_end = raw
        .iter()
        .filter_map(|s| usize::try_from(*s.byte_range.get(2)? + *s.byte_range.get(3)?).ok())
        .max()
        .unwrap_or(0);
    let unsigned_trailing_bytes = file.len().saturating_sub(last_end) as u64;
    let mut problems = Vec::new();
    if unsigned_trailing_bytes > 0 {
        problems.push(format!("{unsigned_trailing_bytes} bytes were added after the last signature"));
    }
    let level = level(&raw, &reports, &dss_certs, &crls);
    let audit_trail = crate::certificate::attached_trail(&doc).map(|json| check_trail(&json));
    let valid = problems.is_empty()
        && reports.iter().all(|r| r.intact() && r.trusted() && r.problems.is_empty())
        && audit_trail.as_ref().is_none_or(TrailReport::ok);
    Ok(Report {
        valid,
        level,
        signatures: reports,
        unsigned_trailing_bytes,
        dss_certificates: dss_certs.len(),
        dss_crls: crls.crls.len(),
        dss_ocsp_responses: crls.ocsps.len(),
        audit_trail,
        problems,
    })
}

fn verify_one(
    file: &[u8],
    s: &RawSignature,
    dss_certs: &[CertInfo],
    anchors: &[CertInfo],
    crls: &Revocation,
    now_unix: u64,
) -> SignatureReport {
    let mut problems = Vec::new();
    let br: Vec<u64> = s.byte_range.iter().map(|v| (*v).max(0) as u64).collect();
    let range: Option<[usize; 4]> = match br.as_slice() {
        [a, b, c, d] => Some([*a as usize, *b as usize, *c as usize, *d as usize]),
        _ => None,
    };
    let byte_range_ok = range.is_some_and(|r| {
        r[0] == 0
            && r[1] < r[2]
            && r[2].checked_add(r[3]).is_some_and(|end| end <= file.len())
            && file.get(r[1]) == Some(&b'<')
            && file.get(r[2] - 1) == Some(&b'>')
            && file[r[1] + 1..r[2] - 1].iter().all(|b| b.is_ascii_hexdigit() || b.is_ascii_whitespace())
            && (r[2] - r[1] - 2) / 2 >= s.contents.len()
    });
    if !byte_range_ok {
        problems.push("the byte range does not cover the file except the signature itself".into());
    }
    let covers_whole_file = range.is_some_and(|r| r[2] + r[3] == file.len());
    let digest = range.map(|r| byte_range_digest(file, r)).unwrap_or([0; 32]);
    let cms_der = der_prefix(&s.contents);
    let mut report = SignatureReport {
        field: s.field.clone(),
        kind: s.kind,
        sub_filter: s.sub_filter.clone(),
        byte_range: br,
        byte_range_ok,
        covers_whole_file,
        digest_ok: false,
        signature_ok: false,
        signing_certificate_ok: false,
        signer: None,
        chain: None,
        timestamp: None,
        problems: vec![],
    };
    match s.kind {
        SignatureKind::Signature => {
            if s.sub_filter != "ETSI.CAdES.detached" {
                problems.push(format!("unsupported /SubFilter {}", s.sub_filter));
            }
            let parsed = match ParsedSignedData::parse(cms_der) {
                Ok(p) => p,
                Err(e) => {
                    problems.push(format!("the signature is not readable CMS: {e}"));
                    report.problems = problems;
                    return report;
                }
            };
            let check = parsed.check(&digest);
            report.digest_ok = check.digest_ok;
            report.signature_ok = check.signature_ok;
            report.signing_certificate_ok = check.signing_certificate_ok;
            let mut pool = dss_certs.to_vec();
            pool.extend(parsed.certificates.iter().cloned());
            // The signature's time: its timestamp's, else now.
            let mut t = now_unix;
            if let Some(token) = parsed.unsigned_attr(ID_AA_SIGNATURE_TIME_STAMP_TOKEN) {
                let imprint = sigillum_crypto::sha256(parsed.signer.signature.as_bytes());
                match timestamp_report(&token, &imprint, &pool, anchors, crls) {
                    Ok(ts) => {
                        t = ts.time_unix;
                        report.timestamp = Some(ts);
                    }
                    Err(e) => problems.push(format!("the signature timestamp is unreadable: {e}")),
                }
            }
            if let Some(cert) = parsed.signer_certificate() {
                report.signer = Some(subject(cert));
                if !key_usage_ok(cert, s.kind) {
                    problems.push("the signer certificate is not for signing (key usage)".into());
                }
                report.chain = Some(chain(cert, &pool, anchors, crls, t));
            } else {
                problems.push("the signer certificate is missing".into());
            }
        }
        SignatureKind::DocumentTimestamp => {
            if s.sub_filter != "ETSI.RFC3161" {
                problems.push(format!("unsupported /SubFilter {}", s.sub_filter));
            }
            match timestamp_report(cms_der, &digest, dss_certs, anchors, crls) {
                Ok(ts) => {
                    report.digest_ok = tsp::check_token(cms_der, &digest).map(|c| c.imprint_ok).unwrap_or(false);
                    report.signature_ok = ts.intact;
                    report.signing_certificate_ok = ts.intact;
                    report.chain = Some(ts.chain.clone());
                    report.signer = ts.chain.path.first().cloned();
                    report.timestamp = Some(ts);
                }
                Err(e) => problems.push(format!("the document timestamp is unreadable: {e}")),
            }
        }
    }
    report.problems = problems;
    report
}

/// The PAdES level the file reaches: B-B for an intact CAdES signature, B-T with a valid
/// signature timestamp, B-LT when the DSS holds the chain's certificates and CRLs, B-LTA when a
/// valid document timestamp covers that DSS.
fn level(
    raw: &[RawSignature],
    reports: &[SignatureReport],
    dss_certs: &[CertInfo],
    crls: &Revocation,
) -> Option<PadesLevel> {
    let (first_idx, first) =
        reports.iter().enumerate().find(|(_, r)| r.kind == SignatureKind::Signature && r.intact())?;
    let mut level = PadesLevel::BB;
    if first.timestamp.as_ref().is_some_and(|t| t.intact) {
        level = PadesLevel::BT;
    } else {
        return Some(level);
    }
    let chain_in_dss = first.chain.as_ref().is_some_and(|c| c.trusted && c.revocation_checked)
        && !dss_certs.is_empty()
        && !crls.is_empty();
    if !chain_in_dss {
        return Some(level);
    }
    level = PadesLevel::BLt;
    let sig_end =
        raw[first_idx].byte_range.get(2).copied().unwrap_or(0) + raw[first_idx].byte_range.get(3).copied().unwrap_or(0);
    let lta = raw.iter().zip(reports).any(|(s, r)| {
        s.kind == SignatureKind::DocumentTimestamp
            && r.intact()
            && r.trusted()
            && s.byte_range.get(2).copied().unwrap_or(0) > sig_end
    });
    if lta {
        level = PadesLevel::BLta;
    }
    Some(level)
}
