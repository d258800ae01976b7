//! Loading an untrusted PDF within [`Limits`]: the raw pre-scan first (object count, nesting,
//! object-stream expansion), then lopdf with its own per-stream bound, then the checks that need
//! the object model (object count, nesting of every object, what every other compressed stream
//! expands to, and a page tree that is a tree). Whatever fails is a [`PdfError`], never a panic,
//! a hang or an allocation the limits did not allow.

use std::borrow::Cow;
use std::collections::HashSet;

use lopdf::xref::XrefRecovery;
use lopdf::{DecompressError, Dictionary, Document, LoadOptions, Object, ObjectId, Stream};

use super::prescan;
use crate::inspect::{Limits, PdfError};

/// A document that passed every limit.
pub(crate) struct Loaded {
    pub doc: Document,
    /// Header version, e.g. `1.7`.
    pub version: String,
    /// Page objects in page-tree order (as `Document::get_pages` numbers them).
    pub pages: Vec<ObjectId>,
    /// Names only active content uses appear somewhere in the raw file.
    pub markers: bool,
}

/// Filters lopdf decodes (and their abbreviations), so their output can be measured.
fn decodable(name: &[u8]) -> Option<&'static str> {
    Some(match name {
        b"FlateDecode" | b"Fl" => "FlateDecode",
        b"LZWDecode" | b"LZW" => "LZWDecode",
        b"ASCII85Decode" | b"A85" => "ASCII85Decode",
        b"ASCIIHexDecode" | b"AHx" => "ASCIIHexDecode",
        b"RunLengthDecode" | b"RL" => "RunLengthDecode",
        b"BrotliDecode" => "BrotliDecode",
        _ => return None,
    })
}

/// Decodes the part of `stream`'s filter chain lopdf can decode, within the per-stream bound and
/// what is left of the total (`used` grows by the output). `Ok(None)`: nothing to decode, or the
/// data does not decode (a damaged stream, not a bomb). `filter` overrides the stream's own
/// `/Filter` (an indirect one, resolved by the caller).
pub(crate) fn decode_bounded(
    stream: &Stream,
    filter: Option<&Object>,
    limits: &Limits,
    used: &mut usize,
) -> Result<Option<Vec<u8>>, PdfError> {
    let names: Vec<&[u8]> = match filter.or_else(|| stream.dict.get(b"Filter").ok()) {
        Some(Object::Name(n)) => vec![n.as_slice()],
        Some(Object::Array(a)) => a.iter().filter_map(|o| o.as_name().ok()).collect(),
        _ => return Ok(None),
    };
    let chain: Vec<&'static str> = names.iter().map_while(|n| decodable(n)).collect();
    if chain.is_empty() {
        return Ok(None);
    }
    let exact =
        filter.is_none() && chain.len() == names.len() && chain.iter().zip(&names).all(|(a, b)| a.as_bytes() == *b);
    let stream: Cow<'_, Stream> = if exact {
        Cow::Borrowed(stream)
    } else {
        let filters = chain.iter().map(|f| Object::Name(f.as_bytes().to_vec())).collect::<Vec<_>>();
        Cow::Owned(Stream::new(Dictionary::from_iter([("Filter", Object::Array(filters))]), stream.content.clone()))
    };
    let remaining = limits.max_decompressed_bytes.saturating_sub(*used);
    let (cap, reported) = if limits.max_stream_bytes <= remaining {
        (limits.max_stream_bytes, limits.max_stream_bytes)
    } else {
        (remaining, limits.max_decompressed_bytes)
    };
    match stream.decompressed_content_with_limit(cap) {
        Ok(out) => {
            *used = used.saturating_add(out.len());
            Ok(Some(out))
        }
        Err(lopdf::Error::Decompress(DecompressError::MemoryLimitExceeded { .. })) => {
            Err(PdfError::DecompressionBomb(reported))
        }
        Err(_) => Ok(None),
    }
}

fn is_bomb(e: &lopdf::Error) -> bool {
    matches!(e, lopdf::Error::Decompress(DecompressError::MemoryLimitExceeded { .. }))
}

/// Parses `bytes` within `limits`.
pub(crate) fn load(bytes: &[u8], limits: &Limits) -> Result<Loaded, PdfError> {
    if bytes.len() > limits.max_bytes {
        return Err(PdfError::TooLarge(limits.max_bytes));
    }
    // The header may be preceded by a little junk (ISO 32000-1 §7.5.2 tolerance in readers).
    let head = &bytes[..bytes.len().min(1024)];
    let at = head.windows(5).position(|w| w == b"%PDF-").ok_or(PdfError::NotPdf)?;
    let version: String =
        head[at + 5..].iter().take_while(|b| b.is_ascii_digit() || **b == b'.').map(|b| *b as char).collect();
    let scan = prescan::scan(&bytes[at..], limits)?;
    let options = LoadOptions { max_decompressed_size: Some(limits.max_stream_bytes), ..LoadOptions::default() };
    // lopdf is not hardened against every hostile file: a panic inside it is a refused upload,
    // never a crashed server.
    let doc = std::panic::catch_unwind(|| Document::load_mem_with_options(bytes, options))
        .map_err(|_| PdfError::Malformed)?
        .map_err(|e| match e {
            lopdf::Error::Decryption(_) | lopdf::Error::InvalidPassword => PdfError::Encrypted,
            e if is_bomb(&e) => PdfError::DecompressionBomb(limits.max_stream_bytes),
            _ => PdfError::Malformed,
        })?;
    if doc.is_encrypted() || doc.was_encrypted() || doc.trailer.has(b"Encrypt") {
        return Err(PdfError::Encrypted);
    }
    // A table rebuilt by scanning may take objects from an older revision: readers would not
    // agree on what the document shows, which a signature must never leave open.
    if doc.xref_recovery == Some(XrefRecovery::Reconstructed) {
        return Err(PdfError::Malformed);
    }
    if doc.objects.len() > limits.max_objects {
        return Err(PdfError::TooManyObjects(limits.max_objects));
    }
    check_depth(&doc, limits.max_depth)?;
    check_streams(&doc, limits, scan.decompressed)?;
    let pages = page_tree(&doc, limits)?;
    Ok(Loaded { doc, version, pages, markers: scan.markers })
}

/// Every object (and the trailer) nests at most `max` arrays and dictionaries deep; walked with
/// an explicit stack.
fn check_depth(doc: &Document, max: usize) -> Result<(), PdfError> {
    let trailer = Object::Dictionary(doc.trailer.clone());
    let mut stack: Vec<(&Object, usize)> = Vec::new();
    for root in doc.objects.values().chain(std::iter::once(&trailer)) {
        stack.push((root, 0));
        while let Some((o, depth)) = stack.pop() {
            let children: Box<dyn Iterator<Item = &Object>> = match o {
                Object::Array(a) => Box::new(a.iter()),
                Object::Dictionary(d) => Box::new(d.iter().map(|(_, v)| v)),
                Object::Stream(s) => Box::new(s.dict.iter().map(|(_, v)| v)),
                _ => continue,
            };
            if depth + 1 > max {
                return Err(PdfError::TooDeep(max));
            }
            stack.extend(children.map(|c| (c, depth + 1)));
        }
    }
    Ok(())
}

/// What every compressed stream expands to, within the limits (object and cross-reference
/// streams were measured by the pre-scan: `used`).
fn check_streams(doc: &Document, limits: &Limits, mut used: usize) -> Result<(), PdfError> {
    for o in doc.objects.values() {
        let Object::Stream(s) = o else { continue };
        if matches!(s.dict.get(b"Type").and_then(Object::as_name), Ok(b"ObjStm" | b"XRef")) {
            continue;
        }
        let filter = match s.dict.get(b"Filter") {
            Ok(Object::Reference(id)) => doc.get_object(*id).ok(),
            _ => None,
        };
        decode_bounded(s, filter, limits, &mut used)?;
    }
    Ok(())
}

/// The page tree's kid array of a `/Pages` node (`/Kids` may be indirect).
fn kids(doc: &Document, node: ObjectId) -> &[Object] {
    doc.get_dictionary(node)
        .and_then(|d| d.get_deref(b"Kids", doc))
        .and_then(Object::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The pages in order, walked as `Document::get_pages` walks them, but refusing a tree that
/// reaches a node twice (lopdf would stop after a bound and count pages twice), one deeper than
/// the nesting limit, or one with more pages than allowed, as soon as it shows.
fn page_tree(doc: &Document, limits: &Limits) -> Result<Vec<ObjectId>, PdfError> {
    let root =
        doc.catalog().and_then(|c| c.get(b"Pages")).and_then(Object::as_reference).map_err(|_| PdfError::NoPages)?;
    let mut seen = HashSet::from([root]);
    let mut pages = Vec::new();
    let mut stack: Vec<(&[Object], usize)> = vec![(kids(doc, root), 0)];
    while let Some(top) = stack.last_mut() {
        let list: &[Object] = top.0;
        let Some(kid) = list.get(top.1) else {
            stack.pop();
            continue;
        };
        top.1 += 1;
        let Ok(id) = kid.as_reference() else { continue };
        match doc.get_dictionary(id).and_then(Dictionary::get_type) {
            Ok(b"Pages") => {
                if !seen.insert(id) {
                    return Err(PdfError::PageTreeLoop);
                }
                if stack.len() >= limits.max_depth {
                    return Err(PdfError::TooDeep(limits.max_depth));
                }
                stack.push((kids(doc, id), 0));
            }
            // lopdf keeps an unreadable kid as a (blank) page; describing it then fails.
            Ok(b"Page") | Err(_) => {
                if !seen.insert(id) {
                    return Err(PdfError::PageTreeLoop);
                }
                pages.push(id);
                if pages.len() > limits.max_pages {
                    return Err(PdfError::TooManyPages(limits.max_pages));
                }
            }
            Ok(_) => {}
        }
    }
    if pages.is_empty() {
        return Err(PdfError::NoPages);
    }
    Ok(pages)
}
