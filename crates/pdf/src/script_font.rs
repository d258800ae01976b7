//! The script face for typed signatures: Dancing Script (Pablo Impallari, SIL Open Font License
//! 1.1, from Debian's `fonts-dancingscript` package; licence in `fonts/`), embedded unmodified in
//! every document that uses it, so the signature looks the same in every viewer.
//!
//! It is a CFF-flavoured OpenType font, embedded as a simple font (ISO 32000-1 §9.9: `/Type1`
//! with `/FontFile3 /Subtype /OpenType`) with WinAnsi encoding, like the standard fonts used for
//! the other text; widths come from the font's own metrics.

use lopdf::{dictionary, Document, Object, ObjectId, Stream};

use crate::inspect::PdfError;

/// The font program.
pub const DANCING_SCRIPT: &[u8] = include_bytes!("../fonts/DancingScript-Regular.otf");
const NAME: &str = "DancingScript";

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

/// Adds the font (program, descriptor, widths) to `doc` and returns the font dictionary's id.
pub fn add_to(doc: &mut Document) -> Result<ObjectId, PdfError> {
    let face = ttf_parser::Face::parse(DANCING_SCRIPT, 0).map_err(|_| PdfError::Malformed)?;
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
    let program = doc.add_object(Stream::new(dictionary! { "Subtype" => "OpenType" }, DANCING_SCRIPT.to_vec()));
    let descriptor = doc.add_object(dictionary! {
        "Type" => "FontDescriptor",
        "FontName" => NAME,
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
        "BaseFont" => NAME,
        "FirstChar" => 32,
        "LastChar" => 255,
        "Widths" => widths,
        "Encoding" => "WinAnsiEncoding",
        "FontDescriptor" => descriptor,
    }))
}

/// The script face of one document, added the first time something needs it, so a document
/// whose fields and certificate pages both use it holds it once.
#[derive(Default)]
pub(crate) struct ScriptFont(Option<ObjectId>);

impl ScriptFont {
    pub(crate) fn id(&mut self, doc: &mut Document) -> Result<ObjectId, PdfError> {
        match self.0 {
            Some(id) => Ok(id),
            None => {
                let id = add_to(doc)?;
                self.0 = Some(id);
                Ok(id)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_font_parses_and_has_latin_1_glyphs() {
        let face = ttf_parser::Face::parse(DANCING_SCRIPT, 0).unwrap();
        for c in "Ada Lovelace Zürich Ørsted".chars() {
            assert!(face.glyph_index(c).is_some(), "no glyph for {c:?}");
        }
        let mut doc = Document::with_version("1.7");
        let id = add_to(&mut doc).unwrap();
        let font = doc.get_dictionary(id).unwrap();
        let widths = font.get(b"Widths").unwrap().as_array().unwrap();
        assert_eq!(widths.len(), 224);
        // 'A' (code 65) has a real advance.
        assert!(widths[65 - 32].as_i64().unwrap() > 200);
    }
}
