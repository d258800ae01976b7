//! Page previews: each page rasterised to PNG with `hayro` (pure Rust, no PDF engine in C on the
//! server) at two widths — a large one for the editor and the signer view, a thumbnail for page
//! lists. The document has already passed ingest (limits, sanitiser); rendering still runs under
//! `catch_unwind` and a pixel budget, so a page that defeats the renderer is reported, never a
//! crash or an unbounded allocation.

use hayro::hayro_interpret::InterpreterSettings;
use hayro::hayro_syntax::Pdf;
use hayro::vello_cpu::color::palette::css::WHITE;
use hayro::{render, PixmapSettings, RenderCache, RenderSettings};

/// The two preview widths, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PreviewSize {
    /// Editor and signer view (about 1.6× a US-Letter page at 72 dpi).
    Large,
    /// Page lists.
    Thumbnail,
}

impl PreviewSize {
    pub const ALL: [PreviewSize; 2] = [PreviewSize::Large, PreviewSize::Thumbnail];

    pub fn width(self) -> f32 {
        match self {
            Self::Large => 1000.0,
            Self::Thumbnail => 200.0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Large => "large",
            Self::Thumbnail => "thumbnail",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "large" => Some(Self::Large),
            "thumbnail" | "small" => Some(Self::Thumbnail),
            _ => None,
        }
    }
}

/// Largest preview, in pixels (a very tall page is scaled down to fit).
const MAX_PIXELS: f32 = 8_000_000.0;
/// Longest preview side the renderer's u16 surfaces allow, with margin.
const MAX_SIDE: f32 = 16_000.0;

/// Largest image (in pixels) the renderer is asked to decode; a JPEG or JBIG2 that claims more
/// is an image bomb (the sanitiser does not decode images).
pub const MAX_IMAGE_PIXELS: u64 = 64_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreviewError {
    #[error("the PDF cannot be rendered")]
    Unreadable,
    #[error("the PDF holds an image of more than {MAX_IMAGE_PIXELS} pixels")]
    ImageTooLarge,
    #[error("page {0} cannot be rendered")]
    Page(usize),
}

/// The scale that makes a page of `w`×`h` points `size` pixels wide, within the pixel budget.
fn scale_for(w: f32, h: f32, size: PreviewSize) -> f32 {
    if !(w.is_finite() && h.is_finite()) || w < 1.0 || h < 1.0 {
        return 1.0;
    }
    let mut s = size.width() / w;
    if w * h * s * s > MAX_PIXELS {
        s = (MAX_PIXELS / (w * h)).sqrt();
    }
    s.min(MAX_SIDE / w).min(MAX_SIDE / h).max(0.01)
}

/// One page's previews: `(size, png)` for each size.
pub type PagePreviews = Vec<(PreviewSize, Vec<u8>)>;

/// Refuses documents with images whose declared size exceeds [`MAX_IMAGE_PIXELS`].
fn check_images(pdf: &[u8]) -> Result<(), PreviewError> {
    let doc = std::panic::catch_unwind(|| lopdf::Document::load_mem(pdf))
        .map_err(|_| PreviewError::Unreadable)?
        .map_err(|_| PreviewError::Unreadable)?;
    for obj in doc.objects.values() {
        let Ok(stream) = obj.as_stream() else { continue };
        let d = &stream.dict;
        if d.get(b"Subtype").and_then(|s| s.as_name()).ok() != Some(b"Image".as_slice()) {
            continue;
        }
        let dim = |k: &[u8]| d.get(k).and_then(|v| v.as_i64()).unwrap_or(0).max(0) as u64;
        if dim(b"Width").saturating_mul(dim(b"Height")) > MAX_IMAGE_PIXELS {
            return Err(PreviewError::ImageTooLarge);
        }
    }
    Ok(())
}

/// Renders every page at every size: `result[page_index]` holds that page's previews.
pub fn render_pages(pdf: &[u8]) -> Result<Vec<PagePreviews>, PreviewError> {
    check_images(pdf)?;
    let data = pdf.to_vec();
    std::panic::catch_unwind(move || {
        let doc = Pdf::new(data).map_err(|_| PreviewError::Unreadable)?;
        let cache = RenderCache::new();
        let interpreter = InterpreterSettings::default();
        let settings = RenderSettings::default();
        let mut out = Vec::new();
        for (i, page) in doc.pages().iter().enumerate() {
            let (w, h) = page.render_dimensions();
            let mut sizes = Vec::new();
            for size in PreviewSize::ALL {
                let s = scale_for(w, h, size);
                let pixmap = render(
                    page,
                    &cache,
                    &interpreter,
                    &settings,
                    &PixmapSettings { x_scale: s, y_scale: s, bg_color: WHITE },
                );
                sizes.push((size, pixmap.into_png().map_err(|_| PreviewError::Page(i + 1))?));
            }
            out.push(sizes);
        }
        Ok(out)
    })
    .map_err(|_| PreviewError::Unreadable)?
}

/// Decoded preview pixels (RGBA), for tests that look at what a page shows.
#[cfg(test)]
fn decode_rgba(png_bytes: &[u8]) -> Option<(u32, u32, Vec<u8>)> {
    let img = crate::flatten::decode_png(png_bytes).ok()?;
    let rgba = img.rgb.chunks_exact(3).zip(&img.alpha).flat_map(|(c, a)| [c[0], c[1], c[2], *a]).collect();
    Some((img.width, img.height, rgba))
}

/// Fraction of pixels in the rectangle (preview pixels) that are not near-white.
#[cfg(test)]
fn ink_ratio(png_bytes: &[u8], x: u32, y: u32, w: u32, h: u32) -> Option<f64> {
    let (pw, ph, rgba) = decode_rgba(png_bytes)?;
    let (x2, y2) = ((x + w).min(pw), (y + h).min(ph));
    let mut inked = 0u64;
    let mut total = 0u64;
    for yy in y..y2 {
        for xx in x..x2 {
            let i = ((yy * pw + xx) * 4) as usize;
            let dark = rgba[i..i + 3].iter().any(|c| *c < 200);
            inked += u64::from(dark);
            total += 1;
        }
    }
    (total > 0).then(|| inked as f64 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flatten::{flatten, Mark, MarkContent};
    use crate::script_font::ScriptFace;

    #[test]
    fn renders_both_sizes_and_flattened_values_show_in_their_boxes() {
        let base = crate::inspect::tests::sample(&[(612, 792, 0), (792, 612, 0)]);
        let marks = vec![
            Mark {
                page: 1,
                x: 72.0,
                y: 100.0,
                width: 200.0,
                height: 40.0,
                content: MarkContent::Script("Ada Lovelace".into(), ScriptFace::DancingScript),
            },
            Mark { page: 1, x: 72.0, y: 200.0, width: 20.0, height: 20.0, content: MarkContent::Check(true) },
            Mark {
                page: 1,
                x: 72.0,
                y: 300.0,
                width: 200.0,
                height: 40.0,
                content: MarkContent::Script("Ada Lovelace".into(), ScriptFace::KaushanScript),
            },
        ];
        let flat = flatten(&base, &marks).unwrap();
        let pages = render_pages(&flat).unwrap();
        assert_eq!(pages.len(), 2);
        let (size, large) = &pages[0][0];
        assert_eq!(*size, PreviewSize::Large);
        let (w, h, _) = decode_rgba(large).unwrap();
        assert_eq!(w, 1000);
        assert_eq!(h, (792.0f32 * 1000.0 / 612.0) as u32);
        let (tw, _, _) = decode_rgba(&pages[0][1].1).unwrap();
        assert_eq!(tw, 200);
        // Pixels in the mark boxes are inked; an empty area of the page is not.
        let px = 1000.0 / 612.0;
        let at = |v: f64| (v * px) as u32;
        let sig = ink_ratio(large, at(72.0), at(100.0), at(200.0), at(40.0)).unwrap();
        assert!(sig > 0.01, "signature box is blank: {sig}");
        let brush = ink_ratio(large, at(72.0), at(300.0), at(200.0), at(40.0)).unwrap();
        assert!(brush > 0.01, "Kaushan Script signature box is blank: {brush}");
        let check = ink_ratio(large, at(72.0), at(200.0), at(20.0), at(20.0)).unwrap();
        assert!(check > 0.01, "checkbox is blank: {check}");
        let empty = ink_ratio(large, at(300.0), at(500.0), at(200.0), at(100.0)).unwrap();
        assert!(empty < 0.001, "empty area is inked: {empty}");
    }

    #[test]
    fn chinese_japanese_and_korean_values_are_drawn_in_the_fallback_face() {
        crate::text_font::tests::with_cjk_fallback();
        let base = crate::inspect::tests::sample(&[(612, 792, 0)]);
        let mark = |y: f64, t: &str| Mark {
            page: 1,
            x: 72.0,
            y,
            width: 200.0,
            height: 40.0,
            content: MarkContent::Text(t.into()),
        };
        let marks = vec![mark(100.0, "王小明"), mark(200.0, "???"), mark(300.0, "김민준 やまだ")];
        let flat = flatten(&base, &marks).unwrap();
        let pages = render_pages(&flat).unwrap();
        let large = &pages[0][0].1;
        let px = 1000.0 / 612.0;
        let at = |v: f64| (v * px) as u32;
        let ink = |y: f64| ink_ratio(large, at(72.0), at(y), at(200.0), at(40.0)).unwrap();
        let (han, question_marks, hangul_kana) = (ink(100.0), ink(200.0), ink(300.0));
        // Three ideographs carry far more strokes than three question marks would.
        assert!(han > 2.0 * question_marks, "ideographs {han} vs question marks {question_marks}");
        assert!(hangul_kana > 2.0 * question_marks, "Hangul and Kana {hangul_kana}");
        let doc = lopdf::Document::load_mem(&flat).unwrap();
        let read = doc.extract_text(&[1]).unwrap();
        assert!(read.contains("王小明") && read.contains("김민준 やまだ"), "{read}");
    }

    #[test]
    fn right_to_left_values_end_at_the_right_of_their_field() {
        let base = crate::inspect::tests::sample(&[(612, 792, 0)]);
        let mark = |y: f64, t: &str| Mark {
            page: 1,
            x: 72.0,
            y,
            width: 400.0,
            height: 30.0,
            content: MarkContent::Text(t.into()),
        };
        let flat = flatten(&base, &[mark(100.0, "سلام"), mark(200.0, "Ada")]).unwrap();
        let pages = render_pages(&flat).unwrap();
        let large = &pages[0][0].1;
        let px = 1000.0 / 612.0;
        let at = |v: f64| (v * px) as u32;
        let half = |x: f64, y: f64| ink_ratio(large, at(x), at(y), at(200.0), at(30.0)).unwrap();
        assert!(half(72.0, 100.0) < 0.001 && half(272.0, 100.0) > 0.01, "Arabic ends on the right");
        assert!(half(72.0, 200.0) > 0.01 && half(272.0, 200.0) < 0.001, "Latin starts on the left");
    }

    #[test]
    fn image_bombs_are_refused_before_rendering() {
        let mut doc = lopdf::Document::load_mem(&crate::inspect::tests::sample(&[(612, 792, 0)])).unwrap();
        doc.add_object(lopdf::Stream::new(
            lopdf::dictionary! { "Type" => "XObject", "Subtype" => "Image", "Width" => 100_000, "Height" => 100_000,
            "ColorSpace" => "DeviceGray", "BitsPerComponent" => 8, "Filter" => "DCTDecode" },
            vec![0xff, 0xd8, 0xff],
        ));
        let mut bytes = Vec::new();
        doc.save_to(&mut bytes).unwrap();
        assert_eq!(render_pages(&bytes), Err(PreviewError::ImageTooLarge));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        if let Ok(pages) = render_pages(b"%PDF-1.7 garbage") {
            assert!(pages.is_empty());
        }
        let s = scale_for(14_400.0, 14_400.0, PreviewSize::Large);
        assert!(s * 14_400.0 <= MAX_SIDE && 14_400.0 * 14_400.0 * s * s <= MAX_PIXELS * 1.001);
    }
}
