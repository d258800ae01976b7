//! The face of every text Sigillum draws into a PDF (field values, the certificate of
//! completion): DejaVu Sans and DejaVu Sans Bold (2.37, Debian `fonts-dejavu-core`, Bitstream
//! Vera licence with DejaVu's changes in the public domain, in `fonts/DejaVu-COPYRIGHT.txt`).
//! They cover Latin with every European accent, Greek, Cyrillic, Armenian and Georgian, so a
//! name such as "Łukasz Żółć" or "Дмитрий" prints as written, where the standard PDF fonts
//! stop at Latin-1.
//!
//! Each document embeds a subset holding only the glyphs it draws (a few KB rather than
//! 700 KB), as a composite font (ISO 32000-1 §9.7: `/Type0`, `Identity-H`, a `CIDFontType2`
//! with `/CIDToGIDMap /Identity`) with a `/ToUnicode` map, so the text can be searched, copied
//! and read back by tools. Glyphs are renumbered in the order they are first drawn, so content
//! can be written before the subset is made.
//!
//! Not covered: scripts DejaVu Sans has no glyphs for (Chinese, Japanese, Korean, Indic, …)
//! print as `?`; right-to-left and joining scripts (Arabic, Hebrew) are drawn glyph by glyph,
//! without shaping or bidirectional reordering.

use std::collections::BTreeMap;

use lopdf::{dictionary, Document, Object, ObjectId, Stream};
use subsetter::GlyphRemapper;

use crate::flatten::deflate;
use crate::inspect::PdfError;

/// The DejaVu Sans font program.
pub const DEJAVU_SANS: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
/// The DejaVu Sans Bold font program.
pub const DEJAVU_SANS_BOLD: &[u8] = include_bytes!("../fonts/DejaVuSans-Bold.ttf");

/// Regular or bold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Weight {
    Regular,
    Bold,
}

/// One face as one document uses it: the glyphs drawn so far and the text each stands for.
pub(crate) struct TextFont {
    face: ttf_parser::Face<'static>,
    program: &'static [u8],
    name: &'static str,
    /// The font dictionary's object number, taken when the font is created so pages can name
    /// it at once; the dictionary is written by [`TextFont::finish`].
    id: ObjectId,
    glyphs: GlyphRemapper,
    /// New glyph id → the text it was drawn for (for `/ToUnicode`).
    text: BTreeMap<u16, char>,
}

impl TextFont {
    /// Reserves the font's object in `doc`.
    pub(crate) fn new(doc: &mut Document, weight: Weight) -> Result<Self, PdfError> {
        let (program, name) = match weight {
            Weight::Regular => (DEJAVU_SANS, "DejaVuSans"),
            Weight::Bold => (DEJAVU_SANS_BOLD, "DejaVuSans-Bold"),
        };
        let face = ttf_parser::Face::parse(program, 0).map_err(|_| PdfError::Malformed)?;
        let id = doc.new_object_id();
        Ok(Self { face, program, name, id, glyphs: GlyphRemapper::new(), text: BTreeMap::new() })
    }

    /// The font dictionary, for a page's `/Resources /Font`.
    pub(crate) fn id(&self) -> ObjectId {
        self.id
    }

    /// The glyph drawn for `c`: its own, or `?` when the face has none (control characters
    /// print as spaces).
    fn glyph(&self, c: char) -> (ttf_parser::GlyphId, char) {
        let c = if c.is_control() { ' ' } else { c };
        match self.face.glyph_index(c) {
            Some(g) => (g, c),
            None => (self.face.glyph_index('?').unwrap_or(ttf_parser::GlyphId(0)), '?'),
        }
    }

    /// `s` as a PDF hex string of glyph ids, for `Tj`; the glyphs join the subset.
    pub(crate) fn show(&mut self, s: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + 4 * s.len());
        out.push(b'<');
        for c in s.chars() {
            let (glyph, drawn) = self.glyph(c);
            let new = self.glyphs.remap(glyph.0);
            self.text.entry(new).or_insert(drawn);
            out.extend_from_slice(format!("{new:04X}").as_bytes());
        }
        out.push(b'>');
        out
    }

    /// The advance width of `s` in points at `size`.
    pub(crate) fn width(&self, s: &str, size: f64) -> f64 {
        let units: u32 = s.chars().map(|c| u32::from(self.face.glyph_hor_advance(self.glyph(c).0).unwrap_or(0))).sum();
        f64::from(units) * size / f64::from(self.face.units_per_em())
    }

    /// In 1/1000 text-space units, as `/W` and the descriptor want them.
    fn thousandths(&self, font_units: f64) -> i64 {
        (font_units * 1000.0 / f64::from(self.face.units_per_em())).round() as i64
    }

    /// Writes the subset font program and its dictionaries into `doc`.
    pub(crate) fn finish(self, doc: &mut Document) -> Result<(), PdfError> {
        let subset = subsetter::subset(self.program, 0, &self.glyphs).map_err(|_| PdfError::Malformed)?;
        let original: Vec<u16> = self.glyphs.remapped_gids().collect();
        // The subset's tag: six capitals derived from the glyphs it holds (ISO 32000-1 §9.6.4).
        let tag: String = {
            let mut h: u32 = 2_166_136_261;
            for g in &original {
                h = (h ^ u32::from(*g)).wrapping_mul(16_777_619);
            }
            (0..6).map(|i| char::from(b'A' + ((h >> (i * 5)) % 26) as u8)).collect()
        };
        let base = format!("{tag}+{}", self.name);
        let widths: Vec<Object> = original
            .iter()
            .map(|g| {
                Object::Integer(
                    self.thousandths(f64::from(self.face.glyph_hor_advance(ttf_parser::GlyphId(*g)).unwrap_or(0))),
                )
            })
            .collect();
        let bbox = self.face.global_bounding_box();
        let program = doc.add_object(Stream::new(
            dictionary! { "Length1" => subset.len() as i64, "Filter" => "FlateDecode" },
            deflate(&subset)?,
        ));
        let descriptor = doc.add_object(dictionary! {
            "Type" => "FontDescriptor",
            "FontName" => Object::Name(base.clone().into_bytes()),
            "Flags" => 32,
            "FontBBox" => vec![
                self.thousandths(f64::from(bbox.x_min)).into(),
                self.thousandths(f64::from(bbox.y_min)).into(),
                self.thousandths(f64::from(bbox.x_max)).into(),
                self.thousandths(f64::from(bbox.y_max)).into(),
            ],
            "ItalicAngle" => 0,
            "Ascent" => self.thousandths(f64::from(self.face.ascender())),
            "Descent" => self.thousandths(f64::from(self.face.descender())),
            "CapHeight" => self.thousandths(f64::from(self.face.capital_height().unwrap_or(self.face.ascender()))),
            "StemV" => 80,
            "FontFile2" => program,
        });
        let cid_font = doc.add_object(dictionary! {
            "Type" => "Font",
            "Subtype" => "CIDFontType2",
            "BaseFont" => Object::Name(base.clone().into_bytes()),
            "CIDSystemInfo" => dictionary! {
                "Registry" => Object::string_literal("Adobe"),
                "Ordering" => Object::string_literal("Identity"),
                "Supplement" => 0,
            },
            "FontDescriptor" => descriptor,
            "W" => vec![Object::Integer(0), Object::Array(widths)],
            "CIDToGIDMap" => "Identity",
        });
        let to_unicode = doc.add_object(Stream::new(
            dictionary! { "Filter" => "FlateDecode" },
            deflate(to_unicode(&self.text).as_bytes())?,
        ));
        doc.objects.insert(
            self.id,
            Object::Dictionary(dictionary! {
                "Type" => "Font",
                "Subtype" => "Type0",
                "BaseFont" => Object::Name(base.into_bytes()),
                "Encoding" => "Identity-H",
                "DescendantFonts" => vec![Object::Reference(cid_font)],
                "ToUnicode" => to_unicode,
            }),
        );
        Ok(())
    }
}

/// The `/ToUnicode` CMap (two-byte glyph codes to UTF-16BE).
fn to_unicode(text: &BTreeMap<u16, char>) -> String {
    let mut out = String::from(
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
         /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
         /CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n\
         1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
    );
    let entries: Vec<(&u16, &char)> = text.iter().filter(|(g, _)| **g != 0).collect();
    // At most 100 entries per block (ISO 32000-1 §9.10.3, via the CMap specification).
    for block in entries.chunks(100) {
        out.push_str(&format!("{} beginbfchar\n", block.len()));
        for (glyph, c) in block {
            let mut units = [0u16; 2];
            let utf16: String = c.encode_utf16(&mut units).iter().map(|u| format!("{u:04X}")).collect();
            out.push_str(&format!("<{glyph:04X}> <{utf16}>\n"));
        }
        out.push_str("endbfchar\n");
    }
    out.push_str("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_faces_cover_european_scripts() {
        for weight in [Weight::Regular, Weight::Bold] {
            let mut doc = Document::with_version("1.7");
            let font = TextFont::new(&mut doc, weight).unwrap();
            for c in "AzÀÿŁżőĞşĐ€ΑωДжЩԱՖაჰ“”–…".chars() {
                assert_eq!(font.glyph(c).1, c, "{c} has a glyph");
            }
            // No CJK in DejaVu Sans: it prints as a question mark.
            assert_eq!(font.glyph('漢').1, '?');
            assert_eq!(font.glyph('\n').1, ' ');
        }
    }

    #[test]
    fn glyphs_are_numbered_in_drawing_order_and_mapped_back_to_text() {
        let mut doc = Document::with_version("1.7");
        let mut font = TextFont::new(&mut doc, Weight::Regular).unwrap();
        assert_eq!(font.show("Жaa"), b"<000100020002>");
        assert_eq!(font.show("aЖ?"), b"<000200010003>");
        let cmap = to_unicode(&font.text);
        assert!(cmap.contains("<0001> <0416>") && cmap.contains("<0002> <0061>") && cmap.contains("<0003> <003F>"));
        assert!(font.width("Ж", 10.0) > font.width("i", 10.0));
        assert!((font.width("aa", 12.0) - 2.0 * font.width("a", 12.0)).abs() < 1e-9);
        let emoji: BTreeMap<u16, char> = [(5, '😀')].into();
        assert!(to_unicode(&emoji).contains("<0005> <D83DDE00>"), "beyond the BMP: a surrogate pair");
    }

    #[test]
    fn the_subset_is_small_and_complete() {
        let mut doc = Document::with_version("1.7");
        let mut font = TextFont::new(&mut doc, Weight::Bold).unwrap();
        let id = font.id();
        font.show("Łukasz Żółć — Дмитрий");
        font.finish(&mut doc).unwrap();
        let type0 = doc.get_dictionary(id).unwrap();
        assert_eq!(type0.get(b"Encoding").unwrap().as_name().unwrap(), b"Identity-H");
        let cid = doc
            .get_dictionary(type0.get(b"DescendantFonts").unwrap().as_array().unwrap()[0].as_reference().unwrap())
            .unwrap();
        let descriptor = doc.get_dictionary(cid.get(b"FontDescriptor").unwrap().as_reference().unwrap()).unwrap();
        let program =
            doc.get_object(descriptor.get(b"FontFile2").unwrap().as_reference().unwrap()).unwrap().as_stream().unwrap();
        let subset_len = program.dict.get(b"Length1").unwrap().as_i64().unwrap();
        assert!(subset_len < 40_000, "subset of {subset_len} bytes");
        // The subset parses, and holds an outline for every glyph drawn (composites included).
        let bytes = subsetter::subset(DEJAVU_SANS_BOLD, 0, &font_glyphs("Łukasz Żółć — Дмитрий")).unwrap();
        let face = ttf_parser::Face::parse(&bytes, 0).unwrap();
        assert!(face.number_of_glyphs() >= 18);
    }

    fn font_glyphs(s: &str) -> GlyphRemapper {
        let face = ttf_parser::Face::parse(DEJAVU_SANS_BOLD, 0).unwrap();
        let mut r = GlyphRemapper::new();
        for c in s.chars() {
            r.remap(face.glyph_index(c).unwrap().0);
        }
        r
    }
}
