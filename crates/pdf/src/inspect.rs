//! What an uploaded PDF is: parsed with lopdf, refused when it is not a PDF, encrypted, broken,
//! empty or beyond the limits, and otherwise described by its pages' displayed sizes (PDF points,
//! after `/Rotate`), which field placement is validated against.
//!
//! The limits are checked before and while the file is parsed (see [`crate::sanitize`]), so a
//! hostile file costs bounded memory and time: it is refused, never expanded.

use lopdf::{Dictionary, Document, Object, ObjectId};
use serde::{Deserialize, Serialize};

use crate::sanitize::guard;

/// What an upload may cost to read. Every bound is checked before the work it bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Size of the file.
    pub max_bytes: usize,
    /// Pages in the page tree.
    pub max_pages: usize,
    /// Indirect objects, counted in the file and inside its object streams.
    pub max_objects: usize,
    /// Nesting of arrays and dictionaries inside one object.
    pub max_depth: usize,
    /// What one compressed stream may expand to.
    pub max_stream_bytes: usize,
    /// What all compressed streams together may expand to.
    pub max_decompressed_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 25 * 1024 * 1024,
            max_pages: 500,
            max_objects: 200_000,
            max_depth: 64,
            max_stream_bytes: 64 * 1024 * 1024,
            max_decompressed_bytes: 256 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PdfError {
    #[error("the file is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the file is not a PDF")]
    NotPdf,
    #[error("encrypted PDFs are not accepted; remove the password first")]
    Encrypted,
    #[error("the PDF is damaged and cannot be read")]
    Malformed,
    #[error("the PDF has no pages")]
    NoPages,
    #[error("the PDF has more than {0} pages")]
    TooManyPages(usize),
    #[error("page {0} has no valid size")]
    BadPageSize(usize),
    #[error("the PDF has more than {0} objects")]
    TooManyObjects(usize),
    #[error("the PDF nests arrays or dictionaries more than {0} levels deep")]
    TooDeep(usize),
    #[error("a compressed stream in the PDF expands beyond {0} bytes (a decompression bomb); it is refused")]
    DecompressionBomb(usize),
    #[error("the PDF's page tree is circular or lists a page twice")]
    PageTreeLoop,
}

/// A page's displayed size in PDF points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PageSize {
    pub width: f32,
    pub height: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PdfInfo {
    /// Header version, e.g. `1.7`.
    pub version: String,
    pub pages: Vec<PageSize>,
}

/// Largest page side PDF allows (ISO 32000: 14 400 units of user space).
const MAX_SIDE: f32 = 14_400.0;
/// Deepest page-tree inheritance followed.
const MAX_DEPTH: usize = 32;

pub(crate) fn number(o: &Object) -> Option<f32> {
    match o {
        Object::Integer(i) => Some(*i as f32),
        Object::Real(r) => Some(*r),
        _ => None,
    }
}

/// An inheritable page attribute: on the page, or on the nearest ancestor that has it.
pub(crate) fn inherited<'a>(doc: &'a Document, page: &'a Dictionary, key: &[u8]) -> Option<&'a Object> {
    let mut dict = page;
    for _ in 0..MAX_DEPTH {
        if let Ok(v) = dict.get(key) {
            return match v {
                Object::Reference(id) => doc.get_object(*id).ok(),
                v => Some(v),
            };
        }
        let parent = dict.get(b"Parent").and_then(Object::as_reference).ok()?;
        dict = doc.get_dictionary(parent).ok()?;
    }
    None
}

fn page_size(doc: &Document, page: &Dictionary) -> Option<PageSize> {
    let bx = inherited(doc, page, b"MediaBox")?.as_array().ok()?;
    let v: Vec<f32> = bx.iter().map(number).collect::<Option<_>>()?;
    let [x1, y1, x2, y2] = v.as_slice() else { return None };
    let (w, h) = ((x2 - x1).abs(), (y2 - y1).abs());
    if !(w.is_finite() && h.is_finite() && w >= 1.0 && h >= 1.0 && w <= MAX_SIDE && h <= MAX_SIDE) {
        return None;
    }
    let rotate = inherited(doc, page, b"Rotate").and_then(|r| r.as_i64().ok()).unwrap_or(0).rem_euclid(360);
    Some(if rotate == 90 || rotate == 270 {
        PageSize { width: h, height: w }
    } else {
        PageSize { width: w, height: h }
    })
}

/// The pages' displayed sizes, in page-tree order.
pub(crate) fn describe(doc: &Document, pages: &[ObjectId], version: String) -> Result<PdfInfo, PdfError> {
    let mut sizes = Vec::with_capacity(pages.len());
    for (n, id) in pages.iter().enumerate() {
        let page = doc.get_dictionary(*id).map_err(|_| PdfError::Malformed)?;
        sizes.push(page_size(doc, page).ok_or(PdfError::BadPageSize(n + 1))?);
    }
    Ok(PdfInfo { version, pages: sizes })
}

/// Describes `bytes` as a PDF, or says why it cannot be used.
pub fn inspect(bytes: &[u8], limits: &Limits) -> Result<PdfInfo, PdfError> {
    let loaded = guard::load(bytes, limits)?;
    describe(&loaded.doc, &loaded.pages, loaded.version)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use lopdf::{dictionary, Stream};

    /// A PDF with pages of the given (width, height, rotate); the MediaBox of the first page is
    /// inherited from the page tree.
    pub fn sample(pages: &[(i64, i64, i64)]) -> Vec<u8> {
        let mut doc = Document::with_version("1.7");
        let pages_id = doc.new_object_id();
        let mut kids = Vec::new();
        for (i, (w, h, rot)) in pages.iter().enumerate() {
            let content = doc.add_object(Stream::new(dictionary! {}, b"BT ET".to_vec()));
            let mut page =
                dictionary! { "Type" => "Page", "Parent" => pages_id, "Contents" => content, "Rotate" => *rot };
            if i > 0 {
                page.set("MediaBox", vec![0.into(), 0.into(), (*w).into(), (*h).into()]);
            }
            kids.push(doc.add_object(page).into());
        }
        let (w0, h0, _) = pages.first().copied().unwrap_or((612, 792, 0));
        let tree = dictionary! {
            "Type" => "Pages", "Kids" => kids, "Count" => pages.len() as i64,
            "MediaBox" => vec![0.into(), 0.into(), w0.into(), h0.into()],
        };
        doc.objects.insert(pages_id, Object::Dictionary(tree));
        let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        doc.trailer.set("Root", catalog);
        let mut out = Vec::new();
        doc.save_to(&mut out).unwrap();
        out
    }

    #[test]
    fn pages_and_displayed_sizes() {
        let info = inspect(&sample(&[(612, 792, 0), (842, 595, 0), (612, 792, 90)]), &Limits::default()).unwrap();
        assert_eq!(info.version, "1.7");
        let sizes: Vec<(f32, f32)> = info.pages.iter().map(|p| (p.width, p.height)).collect();
        assert_eq!(sizes, vec![(612.0, 792.0), (842.0, 595.0), (792.0, 612.0)]);
    }

    #[test]
    fn refusals_are_specific() {
        let limits = Limits { max_bytes: 100_000, max_pages: 2, ..Limits::default() };
        assert_eq!(inspect(b"hello world", &limits), Err(PdfError::NotPdf));
        assert_eq!(inspect(b"%PDF-1.7\n garbage garbage", &limits), Err(PdfError::Malformed));
        assert_eq!(inspect(&vec![b' '; 100_001], &limits), Err(PdfError::TooLarge(100_000)));
        assert_eq!(inspect(&sample(&[(612, 792, 0); 3]), &limits), Err(PdfError::TooManyPages(2)));
        assert_eq!(inspect(&sample(&[]), &limits), Err(PdfError::NoPages));
        assert_eq!(inspect(&sample(&[(612, 792, 0), (0, 0, 0)]), &limits), Err(PdfError::BadPageSize(2)));
    }

    #[test]
    fn truncated_and_bit_flipped_files_never_panic() {
        let good = sample(&[(612, 792, 0), (300, 300, 270)]);
        for cut in (0..good.len()).step_by(7) {
            let _ = inspect(&good[..cut], &Limits::default());
        }
        for i in (0..good.len()).step_by(3) {
            let mut bad = good.clone();
            bad[i] ^= 0x5a;
            let _ = inspect(&bad, &Limits::default());
        }
    }
}
