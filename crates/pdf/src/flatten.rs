//! Flattening: the signers' values drawn into the page content, so the final document shows
//! them to every reader without forms or scripts. Each mark is placed in the page's displayed
//! coordinates (points, origin top-left, after `/Rotate`), as fields are placed by senders.
//!
//! Text uses DejaVu Sans (`text_font`: Latin, Greek, Cyrillic and more, subset into the
//! document), typed signatures the embedded script face the signer chose (`script_font`, WinAnsi
//! encoding); a typed signature with characters outside WinAnsi is drawn in DejaVu Sans instead,
//! so it prints as typed.
//! Signature images are decoded from PNG here, which also validates them.

use flate2::write::ZlibEncoder;
use flate2::Compression;
use lopdf::{dictionary, Dictionary, Document, Object, ObjectId, Stream};
use std::io::Write;

use crate::inspect::{inherited, number, PdfError};
use crate::script_font::{ScriptFace, ScriptFont};
use crate::text_font::{TextFont, Weight};

/// Whether the script faces (WinAnsi) can draw `text` as written.
pub(crate) fn script_can_draw(text: &str) -> bool {
    text.chars().all(|c| matches!(c, ' '..='~' | '\u{a0}'..='\u{ff}'))
}

/// What goes into one field's rectangle.
#[derive(Debug, Clone, PartialEq)]
pub enum MarkContent {
    /// Plain text (DejaVu Sans), shrunk to fit.
    Text(String),
    /// A typed signature in a script face, shrunk to fit.
    Script(String, ScriptFace),
    /// A tick, or nothing when unchecked.
    Check(bool),
    /// A decoded image, drawn keeping its aspect ratio.
    Image(Image),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// 1-based.
    pub page: u32,
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    pub content: MarkContent,
}

/// An 8-bit RGB image with its alpha channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
    pub alpha: Vec<u8>,
}

/// Largest signature image side accepted, in pixels.
pub const MAX_IMAGE_SIDE: u32 = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("the signature image is not a valid PNG")]
    NotPng,
    #[error("the signature image must be 1 to {MAX_IMAGE_SIDE} pixels on each side")]
    BadSize,
}

/// Decodes and checks a PNG (any bit depth and colour type) into 8-bit RGB + alpha.
pub fn decode_png(bytes: &[u8]) -> Result<Image, ImageError> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|_| ImageError::NotPng)?;
    let (w, h) = (reader.info().width, reader.info().height);
    if w == 0 || h == 0 || w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE {
        return Err(ImageError::BadSize);
    }
    let size = reader.output_buffer_size().ok_or(ImageError::BadSize)?;
    let mut buf = vec![0; size];
    let frame = reader.next_frame(&mut buf).map_err(|_| ImageError::NotPng)?;
    let data = &buf[..frame.buffer_size()];
    let pixels = (w as usize) * (h as usize);
    let (mut rgb, mut alpha) = (Vec::with_capacity(pixels * 3), Vec::with_capacity(pixels));
    let channels = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err(ImageError::NotPng),
    };
    if frame.bit_depth != png::BitDepth::Eight || data.len() < pixels * channels {
        return Err(ImageError::NotPng);
    }
    for px in data.chunks_exact(channels).take(pixels) {
        match px {
            [g] => rgb.extend_from_slice(&[*g, *g, *g]),
            [g, a] => {
                rgb.extend_from_slice(&[*g, *g, *g]);
                alpha.push(*a);
            }
            [r, g, b] => rgb.extend_from_slice(&[*r, *g, *b]),
            [r, g, b, a] => {
                rgb.extend_from_slice(&[*r, *g, *b]);
                alpha.push(*a);
            }
            _ => return Err(ImageError::NotPng),
        }
    }
    if alpha.is_empty() {
        alpha = vec![255; pixels];
    }
    Ok(Image { width: w, height: h, rgb, alpha })
}

pub(crate) fn deflate(data: &[u8]) -> Result<Vec<u8>, PdfError> {
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    z.write_all(data).map_err(|_| PdfError::Malformed)?;
    z.finish().map_err(|_| PdfError::Malformed)
}

/// WinAnsi bytes for `s` inside a PDF literal string, escaped.
pub(crate) fn pdf_string(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    out.push(b'(');
    for c in s.chars() {
        let b = match c {
            '\n' | '\r' | '\t' => b' ',
            c if (' '..='~').contains(&c) => c as u8,
            c if ('\u{a0}'..='\u{ff}').contains(&c) => c as u32 as u8,
            _ => b'?',
        };
        if matches!(b, b'(' | b')' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b')');
    out
}

/// Font size that fits text `em_width` wide at 1 pt into the box.
fn fit(em_width: f64, width: f64, height: f64, max: f64) -> f64 {
    (height * 0.7).min((width - 2.0).max(1.0) / em_width.max(0.1)).clamp(2.0, max)
}

/// The width at 1 pt of `text` in a script face (about 0.55 em per glyph).
fn script_em_width(text: &str) -> f64 {
    0.55 * text.chars().count().max(1) as f64
}

/// The displayed-space → user-space matrix of a page with MediaBox `(x1, y1, w, h)` and `rotate`,
/// and the displayed height.
fn display_matrix(x1: f64, y1: f64, w: f64, h: f64, rotate: i64) -> ([f64; 6], f64) {
    match rotate {
        90 => ([0.0, 1.0, -1.0, 0.0, x1 + w, y1], w),
        180 => ([-1.0, 0.0, 0.0, -1.0, x1 + w, y1 + h], h),
        270 => ([0.0, -1.0, 1.0, 0.0, x1, y1 + h], w),
        _ => ([1.0, 0.0, 0.0, 1.0, x1, y1], h),
    }
}

pub(crate) fn num(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.into()
    }
}

/// Adds `name → id` to the page's `/Resources /<category>` dictionary.
fn add_resource(doc: &mut Document, page: ObjectId, category: &[u8], name: &str, id: ObjectId) -> Result<(), PdfError> {
    let bad = |_| PdfError::Malformed;
    let resources = doc.get_or_create_resources(page).map_err(bad)?;
    // Resources may be a reference to a shared dictionary: resolve it first.
    let res_id = match resources {
        Object::Reference(r) => Some(*r),
        _ => None,
    };
    let dict: &mut Dictionary = match res_id {
        Some(r) => doc.get_object_mut(r).and_then(Object::as_dict_mut).map_err(bad)?,
        None => doc.get_or_create_resources(page).and_then(Object::as_dict_mut).map_err(bad)?,
    };
    let sub_ref = match dict.get(category) {
        Ok(Object::Reference(r)) => Some(*r),
        Ok(Object::Dictionary(_)) => None,
        _ => {
            dict.set(category, Dictionary::new());
            None
        }
    };
    let sub = match sub_ref {
        Some(r) => doc.get_object_mut(r).and_then(Object::as_dict_mut).map_err(bad)?,
        None => {
            let dict: &mut Dictionary = match res_id {
                Some(r) => doc.get_object_mut(r).and_then(Object::as_dict_mut).map_err(bad)?,
                None => doc.get_or_create_resources(page).and_then(Object::as_dict_mut).map_err(bad)?,
            };
            dict.get_mut(category).and_then(Object::as_dict_mut).map_err(bad)?
        }
    };
    sub.set(name, id);
    Ok(())
}

/// Draws `marks` into `pdf` and returns the new document (a full rewrite; the seal of the PDF
/// issue adds its signature as an incremental update on top of this).
pub fn flatten(pdf: &[u8], marks: &[Mark]) -> Result<Vec<u8>, PdfError> {
    let mut doc = load(pdf)?;
    draw_marks(&mut doc, marks, &mut ScriptFont::default())?;
    save(&mut doc)
}

/// Parses `pdf` (a parser panic on hostile input is an error like any other).
pub(crate) fn load(pdf: &[u8]) -> Result<Document, PdfError> {
    std::panic::catch_unwind(|| Document::load_mem(pdf))
        .map_err(|_| PdfError::Malformed)?
        .map_err(|_| PdfError::Malformed)
}

/// Writes `doc` out in full.
pub(crate) fn save(doc: &mut Document) -> Result<Vec<u8>, PdfError> {
    let mut out = Vec::new();
    doc.save_to(&mut out).map_err(|_| PdfError::Malformed)?;
    Ok(out)
}

/// Draws `marks` onto the pages of `doc`.
pub(crate) fn draw_marks(doc: &mut Document, marks: &[Mark], script_font: &mut ScriptFont) -> Result<(), PdfError> {
    let pages = doc.get_pages();
    let mut sans = TextFont::new(doc, Weight::Regular, "SgSans")?;
    // A script face (60-90 KB) goes in only when a typed signature needs it.
    let mut scripts: Vec<(ScriptFace, ObjectId)> = Vec::new();
    for mark in marks {
        if let MarkContent::Script(t, face) = &mark.content {
            let face = *face;
            if !script_can_draw(t) {
                continue;
            }
            if !scripts.iter().any(|(f, _)| *f == face) {
                scripts.push((face, script_font.id(doc, face)?));
            }
        }
    }
    let zapf = doc.add_object(dictionary! { "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "ZapfDingbats" });
    for (number_1, page_id) in &pages {
        let on_page: Vec<&Mark> = marks.iter().filter(|m| m.page == *number_1).collect();
        if on_page.is_empty() {
            continue;
        }
        let (x1, y1, w, h, rotate) = {
            let page = doc.get_dictionary(*page_id).map_err(|_| PdfError::Malformed)?;
            let bx = inherited(doc, page, b"MediaBox").and_then(|b| b.as_array().ok()).ok_or(PdfError::Malformed)?;
            let v: Vec<f32> = bx.iter().map(number).collect::<Option<_>>().ok_or(PdfError::Malformed)?;
            let [a, b, c, d] = v.as_slice() else { return Err(PdfError::Malformed) };
            let rotate = inherited(doc, page, b"Rotate").and_then(|r| r.as_i64().ok()).unwrap_or(0).rem_euclid(360);
            (f64::from(a.min(*c)), f64::from(b.min(*d)), f64::from((c - a).abs()), f64::from((d - b).abs()), rotate)
        };
        let (m, displayed_h) = display_matrix(x1, y1, w, h, rotate);
        let mut ops = format!("q {} cm\n", m.iter().map(|v| num(*v)).collect::<Vec<_>>().join(" ")).into_bytes();
        add_resource(doc, *page_id, b"Font", "SgZapf", zapf)?;
        for (face, id) in &scripts {
            if on_page
                .iter()
                .any(|m| matches!(&m.content, MarkContent::Script(t, f) if f == face && script_can_draw(t)))
            {
                add_resource(doc, *page_id, b"Font", &face.resource("SgScript"), *id)?;
            }
        }
        for (i, mark) in on_page.iter().enumerate() {
            let bottom = displayed_h - mark.y - mark.height;
            match &mark.content {
                MarkContent::Text(t) | MarkContent::Script(t, _) => {
                    let (size, shown) = match &mark.content {
                        MarkContent::Script(_, face) if script_can_draw(t) => {
                            let size = fit(script_em_width(t), mark.width, mark.height, 36.0);
                            let mut shown = format!("/{} {} Tf ", face.resource("SgScript"), num(size)).into_bytes();
                            shown.extend_from_slice(&pdf_string(t));
                            shown.extend_from_slice(b" Tj");
                            (size, shown)
                        }
                        MarkContent::Script(..) => {
                            let size = fit(sans.width(t, 1.0), mark.width, mark.height, 36.0);
                            (size, sans.show(t, size))
                        }
                        _ => {
                            let size = fit(sans.width(t, 1.0), mark.width, mark.height, 14.0);
                            (size, sans.show(t, size))
                        }
                    };
                    let baseline = bottom + (mark.height - size) / 2.0 + size * 0.22;
                    // Right-to-left values (Hebrew, Arabic; never drawn in a script face, which
                    // has Latin only) end at the field's right edge.
                    let x = if crate::text_font::is_right_to_left(t) {
                        mark.x + mark.width - 1.0 - sans.width(t, size)
                    } else {
                        mark.x + 1.0
                    };
                    ops.extend_from_slice(format!("BT 0 g {} {} Td ", num(x), num(baseline)).as_bytes());
                    ops.extend_from_slice(&shown);
                    ops.extend_from_slice(b" ET\n");
                }
                MarkContent::Check(true) => {
                    let size = (mark.height.min(mark.width) * 0.9).max(2.0);
                    ops.extend_from_slice(
                        format!(
                            "BT /SgZapf {} Tf 0 g {} {} Td (4) Tj ET\n",
                            num(size),
                            num(mark.x + (mark.width - size * 0.84) / 2.0),
                            num(bottom + (mark.height - size) / 2.0 + size * 0.15)
                        )
                        .as_bytes(),
                    );
                }
                MarkContent::Check(false) => {}
                MarkContent::Image(img) => {
                    let smask = doc.add_object(Stream::new(
                        dictionary! {
                            "Type" => "XObject", "Subtype" => "Image", "Width" => img.width, "Height" => img.height,
                            "ColorSpace" => "DeviceGray", "BitsPerComponent" => 8, "Filter" => "FlateDecode",
                        },
                        deflate(&img.alpha)?,
                    ));
                    let xobject = doc.add_object(Stream::new(
                        dictionary! {
                            "Type" => "XObject", "Subtype" => "Image", "Width" => img.width, "Height" => img.height,
                            "ColorSpace" => "DeviceRGB", "BitsPerComponent" => 8, "Filter" => "FlateDecode",
                            "SMask" => smask,
                        },
                        deflate(&img.rgb)?,
                    ));
                    let name = format!("SgIm{i}");
                    add_resource(doc, *page_id, b"XObject", &name, xobject)?;
                    let scale = (mark.width / f64::from(img.width)).min(mark.height / f64::from(img.height));
                    let (dw, dh) = (f64::from(img.width) * scale, f64::from(img.height) * scale);
                    let (dx, dy) = (mark.x + (mark.width - dw) / 2.0, bottom + (mark.height - dh) / 2.0);
                    ops.extend_from_slice(
                        format!("q {} 0 0 {} {} {} cm /{name} Do Q\n", num(dw), num(dh), num(dx), num(dy)).as_bytes(),
                    );
                }
            }
        }
        ops.extend_from_slice(b"Q\n");
        // The text faces this page's marks drew with (so far: a fallback face once it was needed).
        for (name, id) in sans.resources() {
            add_resource(doc, *page_id, b"Font", &name, id)?;
        }
        // The page's own content is wrapped in q … Q so no state it leaves behind moves our marks.
        let existing: Vec<Object> = {
            let page = doc.get_dictionary(*page_id).map_err(|_| PdfError::Malformed)?;
            match page.get(b"Contents") {
                Ok(Object::Reference(id)) => match doc.get_object(*id) {
                    Ok(Object::Array(arr)) => arr.clone(),
                    _ => vec![Object::Reference(*id)],
                },
                Ok(Object::Array(arr)) => arr.clone(),
                _ => vec![],
            }
        };
        let open = doc.add_object(Stream::new(Dictionary::new(), b"q\n".to_vec()));
        let close = doc.add_object(Stream::new(Dictionary::new(), b"\nQ\n".to_vec()));
        let ours = doc.add_object(Stream::new(dictionary! { "Filter" => "FlateDecode" }, deflate(&ops)?));
        let mut contents = vec![Object::Reference(open)];
        contents.extend(existing);
        contents.push(Object::Reference(close));
        contents.push(Object::Reference(ours));
        doc.get_object_mut(*page_id)
            .and_then(Object::as_dict_mut)
            .map_err(|_| PdfError::Malformed)?
            .set("Contents", contents);
    }
    sans.finish(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::tests::sample;
    use crate::{inspect, Limits};

    fn png(w: u32, h: u32, color: png::ColorType) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, w, h);
            enc.set_color(color);
            enc.set_depth(png::BitDepth::Eight);
            let mut wr = enc.write_header().unwrap();
            let ch = match color {
                png::ColorType::Rgba => 4,
                png::ColorType::Rgb => 3,
                png::ColorType::GrayscaleAlpha => 2,
                _ => 1,
            };
            wr.write_image_data(&vec![128; (w * h) as usize * ch]).unwrap();
        }
        out
    }

    #[test]
    fn png_decoding_normalises_and_refuses() {
        let img = decode_png(&png(3, 2, png::ColorType::Rgba)).unwrap();
        assert_eq!((img.width, img.height, img.rgb.len(), img.alpha.len()), (3, 2, 18, 6));
        let gray = decode_png(&png(2, 2, png::ColorType::Grayscale)).unwrap();
        assert_eq!((gray.rgb.len(), gray.alpha), (12, vec![255; 4]));
        assert_eq!(decode_png(b"not a png"), Err(ImageError::NotPng));
        let mut cut = png(10, 10, png::ColorType::Rgb);
        cut.truncate(cut.len() / 2);
        assert!(decode_png(&cut).is_err());
    }

    #[test]
    fn flattened_pages_carry_the_marks_and_stay_valid() {
        let pdf = sample(&[(612, 792, 0), (612, 792, 90)]);
        let img = decode_png(&png(40, 20, png::ColorType::Rgba)).unwrap();
        let marks = vec![
            Mark {
                page: 1,
                x: 50.0,
                y: 50.0,
                width: 200.0,
                height: 40.0,
                content: MarkContent::Text("Ada (Lovelace) \\ é ∑".into()),
            },
            Mark { page: 1, x: 50.0, y: 100.0, width: 20.0, height: 20.0, content: MarkContent::Check(true) },
            Mark {
                page: 1,
                x: 50.0,
                y: 150.0,
                width: 200.0,
                height: 40.0,
                content: MarkContent::Script("A. L.".into(), ScriptFace::DancingScript),
            },
            Mark { page: 2, x: 10.0, y: 10.0, width: 100.0, height: 50.0, content: MarkContent::Image(img) },
            Mark {
                page: 2,
                x: 10.0,
                y: 70.0,
                width: 100.0,
                height: 50.0,
                content: MarkContent::Script("Ada".into(), ScriptFace::KaushanScript),
            },
            Mark {
                page: 2,
                x: 10.0,
                y: 130.0,
                width: 150.0,
                height: 40.0,
                content: MarkContent::Script("Дмитрий Ż".into(), ScriptFace::DancingScript),
            },
        ];
        let out = flatten(&pdf, &marks).unwrap();
        let info = inspect(&out, &Limits::default()).unwrap();
        assert_eq!(info.pages.len(), 2);
        let doc = Document::load_mem(&out).unwrap();
        let pages = doc.get_pages();
        let text = String::from_utf8_lossy(&doc.get_page_content(pages[&1])).into_owned();
        assert!(text.contains("/SgSans ") && text.contains("/SgZapf") && text.contains("/SgScript0 "), "{text}");
        // Text is drawn in glyphs of the embedded subset and reads back as written, beyond Latin-1.
        let read = doc.extract_text(&[1]).unwrap();
        assert!(read.contains("Ada (Lovelace) \\ é ∑"), "{read}");
        // A typed signature the script faces cannot draw is drawn in the text face.
        let read = doc.extract_text(&[2]).unwrap();
        assert!(read.contains("Дмитрий Ż"), "{read}");
        let page2 = String::from_utf8_lossy(&doc.get_page_content(pages[&2])).into_owned();
        assert!(page2.contains("0 1 -1 0 612 0 cm"), "rotated page maps displayed space: {page2}");
        assert!(page2.contains("/SgIm0 Do") && page2.contains("/SgScript1 ") && !page2.contains("/SgScript0"));
        // Each face the signers chose is embedded once.
        for face in ScriptFace::ALL {
            let programs = doc
                .objects
                .values()
                .filter_map(|o| o.as_stream().ok())
                .filter(|st| st.content == face.program())
                .count();
            assert_eq!(programs, 1, "{face:?}");
        }
    }

    #[test]
    fn damaged_input_is_an_error() {
        assert_eq!(flatten(b"%PDF-1.7 nothing", &[]), Err(PdfError::Malformed));
    }
}
