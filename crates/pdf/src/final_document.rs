//! The final document of a completed envelope, assembled from one parse of the original: the
//! signers' values drawn onto its pages ([`crate::flatten`]), then the certificate of completion
//! appended and the audit trail attached ([`crate::certificate`]). Parsing once saves a full
//! parse of the document, and a script face, when both the fields and the certificate pages
//! need it, is embedded once (60-90 KB) instead of twice.
//!
//! The certificate states the SHA-256 of the flattened document (the content the signers
//! signed), so that state is written out once to be hashed, between the two steps.

use lopdf::Document;
use sha2::{Digest, Sha256};

use crate::certificate::CompletionCertificate;
use crate::flatten::Mark;
use crate::inspect::PdfError;
use crate::script_font::ScriptFont;

/// A document whose values are drawn, waiting for its certificate pages.
pub struct FlattenedDocument {
    doc: Document,
    script_font: ScriptFont,
    signed_content_sha256: [u8; 32],
}

impl FlattenedDocument {
    /// Parses `pdf` and draws `marks` onto its pages.
    pub fn new(pdf: &[u8], marks: &[Mark]) -> Result<Self, PdfError> {
        let mut doc = crate::flatten::load(pdf)?;
        let mut script_font = ScriptFont::default();
        crate::flatten::draw_marks(&mut doc, marks, &mut script_font)?;
        let signed_content_sha256 = Sha256::digest(crate::flatten::save(&mut doc)?).into();
        Ok(Self { doc, script_font, signed_content_sha256 })
    }

    /// SHA-256 of the flattened document as [`crate::flatten::flatten`] writes it.
    pub fn signed_content_sha256(&self) -> [u8; 32] {
        self.signed_content_sha256
    }

    /// Appends the certificate pages, attaches `trail_json` and writes the document out.
    pub fn with_certificate(mut self, cert: &CompletionCertificate, trail_json: &[u8]) -> Result<Vec<u8>, PdfError> {
        crate::certificate::append_pages(&mut self.doc, cert, trail_json, &mut self.script_font)?;
        crate::flatten::save(&mut self.doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flatten::MarkContent;

    /// Font programs of the script face in `pdf`.
    fn script_programs(pdf: &[u8]) -> usize {
        let doc = Document::load_mem(pdf).unwrap();
        doc.objects
            .values()
            .filter_map(|o| o.as_stream().ok())
            .filter(|s| s.content == crate::script_font::KAUSHAN_SCRIPT)
            .count()
    }

    #[test]
    fn one_parse_gives_the_two_step_result_with_the_script_face_once() {
        let original = crate::inspect::tests::sample(&[(612, 792, 0), (595, 842, 90)]);
        let marks = vec![Mark {
            page: 2,
            x: 10.0,
            y: 70.0,
            width: 100.0,
            height: 50.0,
            content: MarkContent::Script("Ada".into(), crate::script_font::ScriptFace::KaushanScript),
        }];
        let cert = crate::certificate::tests::cert(30);
        let trail = br#"{"events":[]}"#;

        let flattened = crate::flatten::flatten(&original, &marks).unwrap();
        let two_steps = crate::certificate::append_certificate(&flattened, &cert, trail).unwrap();
        let pending = FlattenedDocument::new(&original, &marks).unwrap();
        assert_eq!(pending.signed_content_sha256(), <[u8; 32]>::from(Sha256::digest(&flattened)));
        let one_pass = pending.with_certificate(&cert, trail).unwrap();

        assert_eq!(script_programs(&two_steps), 2);
        assert_eq!(script_programs(&one_pass), 1, "fields and certificate share the face");
        assert!(one_pass.len() + 60_000 < two_steps.len(), "{} vs {} bytes", one_pass.len(), two_steps.len());
        let (a, b) = (Document::load_mem(&one_pass).unwrap(), Document::load_mem(&two_steps).unwrap());
        assert_eq!(a.get_pages().len(), b.get_pages().len());
        for ((_, pa), (_, pb)) in a.get_pages().iter().zip(b.get_pages().iter()) {
            assert_eq!(a.get_page_content(*pa), b.get_page_content(*pb));
        }
        assert_eq!(crate::certificate::attached_trail(&a).unwrap(), trail);
        crate::inspect::inspect(&one_pass, &crate::inspect::Limits::default()).unwrap();
    }
}
