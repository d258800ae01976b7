//! The script faces for typed signatures, from Debian's font packages, each under the SIL Open
//! Font License 1.1 (licences in `fonts/`), embedded unmodified in every document that uses
//! them, so a signature looks the same in every viewer:
//! - Dancing Script (Pablo Impallari, `fonts-dancingscript`), the default;
//! - Kaushan Script (Pablo Impallari, `fonts-kaushanscript`), a brush script.
//!
//! Both are CFF-flavoured OpenType fonts, embedded as simple fonts (ISO 32000-1 §9.9: `/Type1`
//! with `/FontFile3 /Subtype /OpenType`) with WinAnsi encoding, like the standard fonts used for
//! the other text; widths come from the font's own metrics.

use lopdf::{dictionary, Document, Object, ObjectId, Stream};

use crate::inspect::PdfError;

/// The Dancing Script font program.
pub const DANCING_SCRIPT: &[u8] = include_bytes!("../fonts/DancingScript-Regular.otf");
/// The Kaushan Script font program.
pub const KAUSHAN_SCRIPT: &[u8] = include_bytes!("../fonts/KaushanScript-Regular.otf");

/// A script face a signer can type a signature in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ScriptFace {
    #[default]
    DancingScript,
    KaushanScript,
}

impl ScriptFace {
    /// Every face, the default first.
    pub const ALL: [ScriptFace; 2] = [ScriptFace::DancingScript, ScriptFace::KaushanScript];

    /// The name used in the API and stored with the signature (`dancing-script`).
    pub fn id(self) -> &'static str {
        match self {
            Self::DancingScript => "dancing-script",
            Self::KaushanScript => "kaushan-script",
        }
    }

    /// The face named `id` ([`ScriptFace::id`]).
    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.id() == id)
    }

    /// The font program (OpenType, CFF outlines).
    pub fn program(self) -> &'static [u8] {
        match self {
            Self::DancingScript => DANCING_SCRIPT,
            Self::KaushanScript => KAUSHAN_SCRIPT,
        }
    }

    /// The PostScript-style name the PDF gives the font.
    fn pdf_name(self) -> &'static str {
        match self {
            Self::DancingScript => "DancingScript",
            Self::KaushanScript => "KaushanScript",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::DancingScript => 0,
            Self::KaushanScript => 1,
        }
    }

    /// A resource name for this face with `prefix` (`SgScript0`).
    pub(crate) fn resource(self, prefix: &str) -> String {
        format!("{prefix}{}", self.index())
    }
}

/// Windows-1252 code points 0x80–0x9F (the rest of WinAnsi is Latin-1).
const WIN_ANSI_80: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}', '\u{90}', '‘', '’',
    '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
];

fn win_ansi_char(code: u8) -> char {
    match code {
        0x80..=0x9f => WIN_ANSI_80[usize::from(code - 0x80)],
        c => char::from(c),
    }
}

/// Adds the font `script` (program, descriptor, widths) to `doc` and returns the font
/// dictionary's id.
pub fn add_to(doc: &mut Document, script: ScriptFace) -> Result<ObjectId, PdfError> {
    let program_bytes = script.program();
    let face = ttf_parser::Face::parse(program_bytes, 0).map_err(|_| PdfError::Malformed)?;
    let upem = f64::from(face.units_per_em().max(1));
    let scale = |v: f64| (v * 1000.0 / upem).round() as i64;
    let widths: Vec<Object> = (32u8..=255)
        .map(|code| {
            let w = face
                .glyph_index(win_ansi_char(code))
                .and_then(|g| face.glyph_hor_advance(g))
                .map(|a| scale(f64::from(a)))
                .unwrap_or(0);
            Object::Integer(w)
        })
        .collect();
    let bbox = face.global_bounding_box();
    let program = doc.add_object(Stream::new(dictionary! { "Subtype" => "OpenType" }, program_bytes.to_vec()));
    let descriptor = doc.add_object(dictionary! {
        "Type" => "FontDescriptor",
        "FontName" => script.pdf_name(),
        // Nonsymbolic (32) + Script (8).
        "Flags" => 40,
        "FontBBox" => vec![
            scale(f64::from(bbox.x_min)).into(), scale(f64::from(bbox.y_min)).into(),
            scale(f64::from(bbox.x_max)).into(), scale(f64::from(bbox.y_max)).into(),
        ],
        "ItalicAngle" => 0,
        "Ascent" => scale(f64::from(face.ascender())),
        "Descent" => scale(f64::from(face.descender())),
        "CapHeight" => scale(f64::from(face.capital_height().unwrap_or(face.ascender()))),
        "StemV" => 80,
        "FontFile3" => program,
    });
    Ok(doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => script.pdf_name(),
        "FirstChar" => 32,
        "LastChar" => 255,
        "Widths" => widths,
        "Encoding" => "WinAnsiEncoding",
        "FontDescriptor" => descriptor,
    }))
}

/// The script faces of one document, each added the first time something needs it, so a
/// document whose fields and certificate pages both use a face holds it once.
#[derive(Default)]
pub(crate) struct ScriptFont([Option<ObjectId>; ScriptFace::ALL.len()]);

impl ScriptFont {
    pub(crate) fn id(&mut self, doc: &mut Document, face: ScriptFace) -> Result<ObjectId, PdfError> {
        let slot = self.0.get_mut(face.index()).ok_or(PdfError::Malformed)?;
        match slot {
            Some(id) => Ok(*id),
            None => {
                let id = add_to(doc, face)?;
                *slot = Some(id);
                Ok(id)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_face_parses_and_has_latin_1_glyphs() {
        for script in ScriptFace::ALL {
            let face = ttf_parser::Face::parse(script.program(), 0).unwrap();
            for c in "Ada Lovelace Zürich Ørsted François Šťastný".chars().filter(|c| u32::from(*c) < 0x100) {
                assert!(face.glyph_index(c).is_some(), "{script:?}: no glyph for {c:?}");
            }
            let mut doc = Document::with_version("1.7");
            let id = add_to(&mut doc, script).unwrap();
            let font = doc.get_dictionary(id).unwrap();
            assert_eq!(font.get(b"BaseFont").unwrap().as_name().unwrap(), script.pdf_name().as_bytes());
            let widths = font.get(b"Widths").unwrap().as_array().unwrap();
            assert_eq!(widths.len(), 224);
            // 'A' (code 65) has a real advance.
            assert!(widths[65 - 32].as_i64().unwrap() > 200, "{script:?}");
        }
    }

    #[test]
    fn faces_are_named_by_their_ids_and_kept_once_per_document() {
        for script in ScriptFace::ALL {
            assert_eq!(ScriptFace::from_id(script.id()), Some(script));
        }
        assert_eq!(ScriptFace::from_id("comic-sans"), None);
        assert_eq!(ScriptFace::default(), ScriptFace::ALL[0]);
        let mut doc = Document::with_version("1.7");
        let mut fonts = ScriptFont::default();
        let a = fonts.id(&mut doc, ScriptFace::DancingScript).unwrap();
        let b = fonts.id(&mut doc, ScriptFace::KaushanScript).unwrap();
        assert_ne!(a, b);
        assert_eq!(fonts.id(&mut doc, ScriptFace::DancingScript).unwrap(), a);
        assert_eq!(fonts.id(&mut doc, ScriptFace::KaushanScript).unwrap(), b);
    }
}
