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
//! Scripts DejaVu Sans has no glyphs for (Chinese, Japanese, Korean, Thai, Indic, …) are drawn
//! in *fallback faces*: font files the operator's system provides (Debian's `fonts-noto-cjk` is
//! found on its own; `SIGILLUM_PDF_FONTS` names others), registered once at start with
//! [`use_fallback_faces`]. Each character is drawn in the first face that has it, each face
//! embedded as its own subset (TrueType as `CIDFontType2`, CFF/OpenType as `CIDFontType0` with
//! `/FontFile3 /OpenType`). A character no face has prints as `?`.
//!
//! Text holding right-to-left characters (Hebrew, Arabic, …) is put in visual order by the
//! Unicode bidirectional algorithm (`unicode-bidi`), and each right-to-left run is shaped with
//! OpenType rules (`rustybuzz`: Arabic joining forms, lam-alef ligatures) in the face that draws
//! it; the shaped advances are kept with `TJ` adjustments, and `/ToUnicode` maps each glyph back to
//! the characters of its cluster. Left-to-right text is drawn character by character (no kerning).
//! Not covered: vertical mark offsets (Arabic vowel marks sit where their advance puts them).

use std::collections::BTreeMap;
use std::sync::OnceLock;

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

/// A font program that draws what DejaVu Sans cannot (face `index` of a collection).
#[derive(Debug, Clone, Copy)]
pub struct FallbackFace {
    pub program: &'static [u8],
    pub index: u32,
}

static FALLBACKS: OnceLock<Vec<FallbackFace>> = OnceLock::new();

/// Registers the fallback faces of this process, in the order they are tried (first call wins).
/// Each must parse as a TrueType or OpenType face; returns how many were taken.
pub fn use_fallback_faces(faces: Vec<FallbackFace>) -> Result<usize, PdfError> {
    for f in &faces {
        ttf_parser::Face::parse(f.program, f.index).map_err(|_| PdfError::Malformed)?;
    }
    let n = faces.len();
    let _ = FALLBACKS.set(faces);
    Ok(FALLBACKS.get().map_or(n, Vec::len))
}

/// The fallback faces registered for this process (none until [`use_fallback_faces`]).
pub fn fallback_faces() -> &'static [FallbackFace] {
    FALLBACKS.get().map(Vec::as_slice).unwrap_or(&[])
}

/// One face as one document uses it: the glyphs drawn so far and the text each stands for.
struct FaceUse {
    /// The parsed face with its shaping tables (derefs to `ttf_parser::Face`).
    face: rustybuzz::Face<'static>,
    program: &'static [u8],
    index: u32,
    name: String,
    /// The page-resource name the content streams use for it.
    resource: String,
    /// The font dictionary's object number, taken when the font is created so pages can name
    /// it at once; the dictionary is written by [`TextFont::finish`].
    id: ObjectId,
    glyphs: GlyphRemapper,
    /// New glyph id → the text it was drawn for (for `/ToUnicode`).
    text: BTreeMap<u16, String>,
}

/// One glyph placed by [`TextFont::layout`], in drawing (visual) order.
struct Placed {
    face: usize,
    glyph: u16,
    /// The characters it stands for (empty for the second glyph of a cluster).
    text: String,
    /// Its advance in font units: the face's own, or the shaper's.
    advance: i32,
}

/// Whether `s` needs the bidirectional algorithm (holds a right-to-left character).
fn has_rtl(s: &str) -> bool {
    use unicode_bidi::BidiClass::{AL, R};
    s.chars().any(|c| matches!(unicode_bidi::bidi_class(c), R | AL))
}

/// Whether `s` reads right to left as a paragraph (its first strong character is Hebrew,
/// Arabic, …): such values are aligned to the right of their field.
pub(crate) fn is_right_to_left(s: &str) -> bool {
    has_rtl(s) && unicode_bidi::BidiInfo::new(s, None).paragraphs.first().is_some_and(|p| p.level.is_rtl())
}

impl FaceUse {
    fn new(
        doc: &mut Document,
        program: &'static [u8],
        index: u32,
        name: String,
        resource: String,
    ) -> Result<Self, PdfError> {
        let face = rustybuzz::Face::from_slice(program, index).ok_or(PdfError::Malformed)?;
        let id = doc.new_object_id();
        Ok(Self { face, program, index, name, resource, id, glyphs: GlyphRemapper::new(), text: BTreeMap::new() })
    }

    fn used(&self) -> bool {
        !self.text.is_empty()
    }

    /// In 1/1000 text-space units, as `/W` and the descriptor want them.
    fn thousandths(&self, font_units: f64) -> i64 {
        (font_units * 1000.0 / f64::from(self.face.units_per_em())).round() as i64
    }

    fn advance(&self, glyph: ttf_parser::GlyphId) -> i32 {
        i32::from(self.face.glyph_hor_advance(glyph).unwrap_or(0))
    }

    /// Whether this face has a glyph for every (printable) character of `s`.
    fn covers(&self, s: &str) -> bool {
        s.chars().all(|c| c.is_control() || self.face.glyph_index(c).is_some())
    }

    /// `run` shaped in this face, in visual order, as (glyph, cluster text, advance).
    fn shape(&self, run: &str, rtl: bool) -> Vec<(u16, String, i32)> {
        let mut buffer = rustybuzz::UnicodeBuffer::new();
        buffer.push_str(run);
        buffer.set_direction(if rtl { rustybuzz::Direction::RightToLeft } else { rustybuzz::Direction::LeftToRight });
        let shaped = rustybuzz::shape(&self.face, &[], buffer);
        let mut starts: Vec<usize> = shaped.glyph_infos().iter().map(|g| g.cluster as usize).collect();
        starts.sort_unstable();
        starts.dedup();
        let mut seen = std::collections::HashSet::new();
        shaped
            .glyph_infos()
            .iter()
            .zip(shaped.glyph_positions())
            .map(|(info, pos)| {
                let start = info.cluster as usize;
                let end = starts.iter().find(|&&b| b > start).copied().unwrap_or(run.len());
                // The cluster's text goes with its first glyph only.
                let text =
                    if seen.insert(start) { run.get(start..end).unwrap_or_default().to_owned() } else { String::new() };
                (u16::try_from(info.glyph_id).unwrap_or(0), text, pos.x_advance)
            })
            .collect()
    }

    /// Writes the subset font program and its dictionaries into `doc`.
    fn finish(self, doc: &mut Document) -> Result<(), PdfError> {
        let subset = subsetter::subset(self.program, self.index, &self.glyphs).map_err(|_| PdfError::Malformed)?;
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
        // CFF outlines (OpenType) embed as a CIDFontType0 whose CIDs are the subset's glyph ids
        // (the subsetter makes them so); TrueType outlines as a CIDFontType2.
        let cff = self.face.tables().cff.is_some();
        let (program, file_key, cid_subtype) = if cff {
            let program = doc.add_object(Stream::new(
                dictionary! { "Subtype" => "OpenType", "Filter" => "FlateDecode" },
                deflate(&subset)?,
            ));
            (program, "FontFile3", "CIDFontType0")
        } else {
            let program = doc.add_object(Stream::new(
                dictionary! { "Length1" => subset.len() as i64, "Filter" => "FlateDecode" },
                deflate(&subset)?,
            ));
            (program, "FontFile2", "CIDFontType2")
        };
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
            file_key => program,
        });
        let mut cid_font = dictionary! {
            "Type" => "Font",
            "Subtype" => cid_subtype,
            "BaseFont" => Object::Name(base.clone().into_bytes()),
            "CIDSystemInfo" => dictionary! {
                "Registry" => Object::string_literal("Adobe"),
                "Ordering" => Object::string_literal("Identity"),
                "Supplement" => 0,
            },
            "FontDescriptor" => descriptor,
            "W" => vec![Object::Integer(0), Object::Array(widths)],
        };
        if !cff {
            cid_font.set("CIDToGIDMap", "Identity");
        }
        let cid_font = doc.add_object(cid_font);
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

/// The text font of one document: DejaVu Sans (regular or bold), then the fallback faces.
pub(crate) struct TextFont {
    /// `faces[0]` is DejaVu Sans; it is always embedded (the `?` of missing characters is its).
    faces: Vec<FaceUse>,
}

impl TextFont {
    /// Reserves the font's objects in `doc`; `resource` names it in page resources (fallback
    /// faces get `resource` with a number appended). Uses the process's fallback faces.
    pub(crate) fn new(doc: &mut Document, weight: Weight, resource: &str) -> Result<Self, PdfError> {
        Self::with_fallbacks(doc, weight, resource, fallback_faces())
    }

    pub(crate) fn with_fallbacks(
        doc: &mut Document,
        weight: Weight,
        resource: &str,
        fallbacks: &[FallbackFace],
    ) -> Result<Self, PdfError> {
        let (program, name) = match weight {
            Weight::Regular => (DEJAVU_SANS, "DejaVuSans"),
            Weight::Bold => (DEJAVU_SANS_BOLD, "DejaVuSans-Bold"),
        };
        let mut faces = vec![FaceUse::new(doc, program, 0, name.to_owned(), resource.to_owned())?];
        for (i, f) in fallbacks.iter().enumerate() {
            let face = ttf_parser::Face::parse(f.program, f.index).map_err(|_| PdfError::Malformed)?;
            let name = postscript_name(&face).unwrap_or_else(|| format!("Fallback{i}"));
            faces.push(FaceUse::new(doc, f.program, f.index, name, format!("{resource}{}", i + 1))?);
        }
        Ok(Self { faces })
    }

    /// The page resources for the faces drawn so far (DejaVu Sans always): name and font object.
    pub(crate) fn resources(&self) -> Vec<(String, ObjectId)> {
        self.faces
            .iter()
            .enumerate()
            .filter(|(i, f)| *i == 0 || f.used())
            .map(|(_, f)| (f.resource.clone(), f.id))
            .collect()
    }

    /// The face and glyph drawn for `c`: the first face that has it, or DejaVu's `?` (control
    /// characters print as spaces).
    fn glyph(&self, c: char) -> (usize, ttf_parser::GlyphId, char) {
        let c = if c.is_control() { ' ' } else { c };
        for (i, f) in self.faces.iter().enumerate() {
            if let Some(g) = f.face.glyph_index(c) {
                return (i, g, c);
            }
        }
        (0, self.faces[0].face.glyph_index('?').unwrap_or(ttf_parser::GlyphId(0)), '?')
    }

    /// The glyphs that draw `s`, in visual order. Without right-to-left characters each
    /// character is drawn in the first face that has it; otherwise the bidirectional algorithm
    /// orders the runs and each run a single face covers is shaped.
    fn layout(&self, s: &str) -> Vec<Placed> {
        let by_char = |out: &mut Vec<Placed>, chars: &mut dyn Iterator<Item = char>| {
            for c in chars {
                let (face, glyph, drawn) = self.glyph(c);
                out.push(Placed {
                    face,
                    glyph: glyph.0,
                    text: drawn.to_string(),
                    advance: self.faces[face].advance(glyph),
                });
            }
        };
        let mut out = Vec::with_capacity(s.len());
        if !has_rtl(s) {
            by_char(&mut out, &mut s.chars());
            return out;
        }
        let bidi = unicode_bidi::BidiInfo::new(s, None);
        for para in &bidi.paragraphs {
            let (levels, runs) = bidi.visual_runs(para, para.range.clone());
            for run in runs {
                let rtl = levels.get(run.start).is_some_and(|l| l.is_rtl());
                let text = &s[run.clone()];
                match self.faces.iter().position(|f| f.covers(text)) {
                    Some(face) => {
                        for (glyph, cluster, advance) in self.faces[face].shape(text, rtl) {
                            let printable = cluster.chars().map(|c| if c.is_control() { ' ' } else { c });
                            // A right-to-left ligature (lam-alef) maps to its characters in visual
                            // order: readers reverse right-to-left text as a whole when they
                            // extract it (poppler does), which puts them back in logical order.
                            let text = if rtl { printable.rev().collect() } else { printable.collect() };
                            out.push(Placed { face, glyph, text, advance });
                        }
                    }
                    // No one face draws the whole run: character by character, in visual order.
                    None if rtl => by_char(&mut out, &mut text.chars().rev()),
                    None => by_char(&mut out, &mut text.chars()),
                }
            }
        }
        out
    }

    /// Text-showing operators for `s` at `size`: `/Font size Tf <glyph ids> Tj`, a run per face
    /// (inside `BT … ET`; each run moves the pen on). Where the shaper's advance differs from the
    /// glyph's own, the run is a `TJ` whose adjustments keep it. The glyphs join their faces'
    /// subsets.
    pub(crate) fn show(&mut self, s: &str, size: f64) -> Vec<u8> {
        // Face runs: the face and its (glyph code, adjustment) items.
        let mut runs: Vec<(usize, Vec<(u16, i64)>)> = Vec::new();
        for p in self.layout(s) {
            let face = &mut self.faces[p.face];
            let new = face.glyphs.remap(p.glyph);
            if !p.text.is_empty() {
                face.text.entry(new).or_insert(p.text);
            }
            let own = face.advance(ttf_parser::GlyphId(p.glyph));
            let adjust = face.thousandths(f64::from(own)) - face.thousandths(f64::from(p.advance));
            match runs.last_mut() {
                Some((f, items)) if *f == p.face => items.push((new, adjust)),
                _ => runs.push((p.face, vec![(new, adjust)])),
            }
        }
        let mut out = Vec::with_capacity(16 + 5 * s.len());
        for (i, (face, items)) in runs.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(
                format!("/{} {} Tf ", self.faces[*face].resource, crate::flatten::num(size)).as_bytes(),
            );
            let adjusted = items.iter().any(|(_, a)| *a != 0);
            out.extend_from_slice(if adjusted { b"[<" } else { b"<" });
            for (code, adjust) in items {
                out.extend_from_slice(format!("{code:04X}").as_bytes());
                if *adjust != 0 {
                    out.extend_from_slice(format!("> {adjust} <").as_bytes());
                }
            }
            out.extend_from_slice(if adjusted { b">] TJ" } else { b"> Tj" });
        }
        out
    }

    /// The advance width of `s` in points at `size`.
    pub(crate) fn width(&self, s: &str, size: f64) -> f64 {
        self.layout(s)
            .iter()
            .map(|p| {
                let face = &self.faces[p.face];
                f64::from(p.advance) / f64::from(face.face.units_per_em())
            })
            .sum::<f64>()
            * size
    }

    /// Writes the subsets of the faces drawn (DejaVu Sans always) and their dictionaries.
    pub(crate) fn finish(self, doc: &mut Document) -> Result<(), PdfError> {
        for (i, face) in self.faces.into_iter().enumerate() {
            if i == 0 || face.used() {
                face.finish(doc)?;
            }
        }
        Ok(())
    }
}

/// The face's PostScript name (name id 6), for `/BaseFont`.
fn postscript_name(face: &ttf_parser::Face<'_>) -> Option<String> {
    face.names()
        .into_iter()
        .filter(|n| n.name_id == ttf_parser::name_id::POST_SCRIPT_NAME)
        .find_map(|n| n.to_string())
        .map(|n| n.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect())
}

/// The `/ToUnicode` CMap (two-byte glyph codes to UTF-16BE; a ligature maps to all its
/// characters).
fn to_unicode(text: &BTreeMap<u16, String>) -> String {
    let mut out = String::from(
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
         /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
         /CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n\
         1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
    );
    let entries: Vec<(&u16, &String)> = text.iter().filter(|(g, t)| **g != 0 && !t.is_empty()).collect();
    // At most 100 entries per block (ISO 32000-1 §9.10.3, via the CMap specification).
    for block in entries.chunks(100) {
        out.push_str(&format!("{} beginbfchar\n", block.len()));
        for (glyph, text) in block {
            let utf16: String = text.encode_utf16().map(|u| format!("{u:04X}")).collect();
            out.push_str(&format!("<{glyph:04X}> <{utf16}>\n"));
        }
        out.push_str("endbfchar\n");
    }
    out.push_str("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Debian's Noto Sans CJK (`fonts-noto-cjk`, installed by scripts/deps.sh): CFF outlines in a
    /// collection.
    pub(crate) fn noto_cjk() -> FallbackFace {
        let path = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc";
        let program =
            std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e} (scripts/deps.sh installs fonts-noto-cjk)"));
        FallbackFace { program: Box::leak(program.into_boxed_slice()), index: 0 }
    }

    /// Registers Noto Sans CJK as this test process's fallback face.
    pub(crate) fn with_cjk_fallback() {
        if fallback_faces().is_empty() {
            use_fallback_faces(vec![noto_cjk()]).unwrap();
        }
    }

    #[test]
    fn both_faces_cover_european_scripts() {
        for weight in [Weight::Regular, Weight::Bold] {
            let mut doc = Document::with_version("1.7");
            let font = TextFont::with_fallbacks(&mut doc, weight, "F", &[]).unwrap();
            for c in "AzÀÿŁżőĞşĐ€ΑωДжЩԱՖაჰ“”–…".chars() {
                assert_eq!(font.glyph(c).2, c, "{c} has a glyph");
            }
            // No CJK in DejaVu Sans, and no fallback: it prints as a question mark.
            assert_eq!(font.glyph('漢').2, '?');
            assert_eq!(font.glyph('\n').2, ' ');
        }
    }

    #[test]
    fn glyphs_are_numbered_in_drawing_order_and_mapped_back_to_text() {
        let mut doc = Document::with_version("1.7");
        let mut font = TextFont::with_fallbacks(&mut doc, Weight::Regular, "F", &[]).unwrap();
        assert_eq!(font.show("Жaa", 9.0), b"/F 9 Tf <000100020002> Tj");
        assert_eq!(font.show("aЖ?", 9.0), b"/F 9 Tf <000200010003> Tj");
        let cmap = to_unicode(&font.faces[0].text);
        assert!(cmap.contains("<0001> <0416>") && cmap.contains("<0002> <0061>") && cmap.contains("<0003> <003F>"));
        assert!(font.width("Ж", 10.0) > font.width("i", 10.0));
        assert!((font.width("aa", 12.0) - 2.0 * font.width("a", 12.0)).abs() < 1e-9);
        let emoji: BTreeMap<u16, String> = [(5, "😀".to_owned()), (6, "ffi".to_owned())].into();
        assert!(to_unicode(&emoji).contains("<0005> <D83DDE00>"), "beyond the BMP: a surrogate pair");
        assert!(to_unicode(&emoji).contains("<0006> <006600660069>"), "a ligature maps to its characters");
        assert_eq!(font.resources().len(), 1);
    }

    #[test]
    fn the_subset_is_small_and_complete() {
        let mut doc = Document::with_version("1.7");
        let mut font = TextFont::with_fallbacks(&mut doc, Weight::Bold, "F", &[]).unwrap();
        let id = font.resources()[0].1;
        font.show("Łukasz Żółć — Дмитрий", 10.0);
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

    #[test]
    fn characters_dejavu_lacks_come_from_the_fallback_face_in_runs() {
        let mut doc = Document::with_version("1.7");
        let mut font = TextFont::with_fallbacks(&mut doc, Weight::Regular, "F", &[noto_cjk()]).unwrap();
        assert_eq!(font.glyph('漢').0, 1);
        assert_eq!(font.glyph('한').0, 1, "Hangul");
        assert_eq!(font.glyph('か').0, 1, "Kana");
        assert_eq!(font.glyph('a').0, 0, "Latin stays DejaVu");
        assert_eq!(font.glyph('\u{10FFFD}').2, '?', "no face has it");
        let ops = String::from_utf8(font.show("Li 王小明 Li", 11.0)).unwrap();
        assert_eq!(ops, "/F 11 Tf <000100020003> Tj /F1 11 Tf <000100020003> Tj /F 11 Tf <000300010002> Tj");
        assert!(font.width("王", 10.0) > 9.0, "a full-width ideograph");
        let resources = font.resources();
        assert_eq!(resources.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["F", "F1"]);
        let fallback = resources[1].1;
        font.finish(&mut doc).unwrap();
        let type0 = doc.get_dictionary(fallback).unwrap();
        let cid = doc
            .get_dictionary(type0.get(b"DescendantFonts").unwrap().as_array().unwrap()[0].as_reference().unwrap())
            .unwrap();
        assert_eq!(cid.get(b"Subtype").unwrap().as_name().unwrap(), b"CIDFontType0");
        let descriptor = doc.get_dictionary(cid.get(b"FontDescriptor").unwrap().as_reference().unwrap()).unwrap();
        let program =
            doc.get_object(descriptor.get(b"FontFile3").unwrap().as_reference().unwrap()).unwrap().as_stream().unwrap();
        assert!(program.content.len() < 40_000, "a subset of three ideographs: {} bytes", program.content.len());
        assert!(std::str::from_utf8(type0.get(b"BaseFont").unwrap().as_name().unwrap())
            .unwrap()
            .contains("NotoSansCJK"));
    }

    #[test]
    fn right_to_left_text_is_reordered_and_shaped() {
        let mut doc = Document::with_version("1.7");
        let font = TextFont::with_fallbacks(&mut doc, Weight::Regular, "F", &[]).unwrap();
        // Hebrew: visual order is the reverse of logical order; no joining.
        let placed = font.layout("שלום");
        let texts: Vec<&str> = placed.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(texts, ["ם", "ו", "ל", "ש"]);
        // A Latin name with a Hebrew one: the Latin run stays left to right, first.
        let texts: Vec<String> = font.layout("Ada שלום").into_iter().map(|p| p.text).collect();
        assert_eq!(texts.concat(), "Ada םולש");
        // Arabic: the letters of "سلام" join, so they are drawn in contextual forms (not the
        // isolated glyphs the characters map to), and lam-alef forms a ligature.
        let word = "سلام";
        let placed = font.layout(word);
        let isolated: Vec<u16> = word.chars().map(|c| font.faces[0].face.glyph_index(c).unwrap().0).collect();
        assert!(placed.len() < word.chars().count(), "lam-alef is one glyph: {}", placed.len());
        assert!(placed.iter().any(|p| !isolated.contains(&p.glyph)), "joining forms are used");
        let visual: String = placed.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(visual.chars().rev().collect::<String>(), word, "every character maps back from its glyph");
        assert!(font.width(word, 10.0) > 0.0);
        assert!(is_right_to_left("سلام Ada") && is_right_to_left("דוד"));
        assert!(!is_right_to_left("Ada سلام") && !is_right_to_left("Ada") && !is_right_to_left("42"));
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
