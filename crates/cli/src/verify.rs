//! `sigillum verify FILE.pdf [--json] [--trust CA.pem]`: checks a sealed document offline and
//! says in plain words what was checked. Needs no server, database or configuration.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sigillum_pdf::pki::{parse_certificates, CertInfo};
use sigillum_pdf::verify::{self, ChainReport, Report, SignatureKind, SignatureReport};

/// Verifies `file`; returns the report, or an error when the inputs cannot be read.
pub fn verify_file(file: &Path, trust: &[PathBuf]) -> anyhow::Result<Report> {
    let meta = std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?;
    if meta.len() > verify::MAX_FILE as u64 {
        anyhow::bail!("{} is larger than {} bytes", file.display(), verify::MAX_FILE);
    }
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut anchors: Vec<CertInfo> = Vec::new();
    for t in trust {
        let data = std::fs::read(t).with_context(|| format!("cannot read trust anchors {}", t.display()))?;
        anchors.extend(parse_certificates(&data).with_context(|| format!("{} holds no certificate", t.display()))?);
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    Ok(verify::verify(&bytes, &anchors, now)?)
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}

fn time(unix: u64) -> String {
    sigillum_pdf::pades::pdf_date(unix as i64).trim_start_matches("D:").to_owned() + " (UTC, YYYYMMDDHHmmSS)"
}

fn chain_text(out: &mut String, c: &ChainReport, indent: &str) {
    let _ = writeln!(out, "{indent}certificate chain: {}", c.path.join(" <- issued by "));
    let _ = writeln!(out, "{indent}chain ends in a trusted root: {}", yes(c.trusted));
    let _ = writeln!(
        out,
        "{indent}revocation: {}",
        if c.revoked {
            "REVOKED"
        } else if c.revocation_checked {
            "checked against the CRLs in the file: not revoked"
        } else {
            "no CRL in the file for every certificate (not checked)"
        }
    );
    for p in &c.problems {
        let _ = writeln!(out, "{indent}problem: {p}");
    }
}

fn signature_text(out: &mut String, i: usize, s: &SignatureReport) {
    let kind = match s.kind {
        SignatureKind::Signature => "signature",
        SignatureKind::DocumentTimestamp => "document timestamp",
    };
    let _ = writeln!(out, "{}. {kind} {:?} ({})", i + 1, s.field, s.sub_filter);
    if let Some(signer) = &s.signer {
        let _ = writeln!(out, "   signed by: {signer}");
    }
    let _ = writeln!(
        out,
        "   byte range {:?} covers the file except the signature: {}",
        s.byte_range,
        yes(s.byte_range_ok)
    );
    let _ = writeln!(out, "   covered bytes unchanged (SHA-256 matches): {}", yes(s.digest_ok));
    let _ = writeln!(out, "   cryptographic signature verifies: {}", yes(s.signature_ok));
    if s.kind == SignatureKind::Signature {
        let _ = writeln!(
            out,
            "   signing certificate bound by ESS signing-certificate-v2: {}",
            yes(s.signing_certificate_ok)
        );
    }
    if let Some(c) = &s.chain {
        chain_text(out, c, "   ");
    }
    if let Some(t) = &s.timestamp {
        let _ = writeln!(out, "   timestamp: {} — token intact: {}", time(t.time_unix), yes(t.intact));
        chain_text(out, &t.chain, "     timestamp ");
    }
    let _ = writeln!(out, "   reaches the end of the file: {}", yes(s.covers_whole_file));
    for p in &s.problems {
        let _ = writeln!(out, "   problem: {p}");
    }
}

/// The human-readable report.
pub fn render(file: &Path, r: &Report, trusted_roots: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: {}", file.display(), if r.valid { "VALID" } else { "NOT VALID" });
    if trusted_roots == 0 {
        let _ = writeln!(out, "no trust anchors given (--trust CA.pem): no chain can be trusted");
    }
    let _ = writeln!(out, "PAdES level reached: {}", r.level.map(|l| l.name()).unwrap_or("none"));
    let _ = writeln!(
        out,
        "long-term validation data in the file: {} certificates, {} CRLs, {} OCSP responses",
        r.dss_certificates, r.dss_crls, r.dss_ocsp_responses
    );
    for (i, s) in r.signatures.iter().enumerate() {
        signature_text(&mut out, i, s);
    }
    match &r.audit_trail {
        Some(t) => {
            let _ = writeln!(
                out,
                "attached audit trail: envelope {}, {} events, log {} (tree size {})",
                t.envelope_id, t.events, t.log_origin, t.tree_size
            );
            let _ = writeln!(out, "   checkpoint signed by the log key: {}", yes(t.checkpoint_ok));
            let _ = writeln!(out, "   every event hashes to its leaf: {}", yes(t.leaves_ok));
            let _ = writeln!(out, "   every event proven in the log (inclusion proofs): {}", yes(t.proofs_ok));
            let _ = writeln!(out, "   personal details open their commitments: {}", yes(t.disclosures_ok));
            let _ = writeln!(out, "   upload event commits to the original document hash: {}", yes(t.original_matches));
            for p in &t.problems {
                let _ = writeln!(out, "   problem: {p}");
            }
        }
        None => {
            let _ = writeln!(out, "no audit trail attached");
        }
    }
    if r.unsigned_trailing_bytes == 0 {
        let _ = writeln!(out, "no byte was added or changed after the last signature");
    }
    for p in &r.problems {
        let _ = writeln!(out, "problem: {p}");
    }
    out
}
