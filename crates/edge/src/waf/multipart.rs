//! What of a `multipart/form-data` upload the WAF reads: the form, not the file.
//!
//! The upload route (`POST /api/v1/envelopes`) takes text parts, then a part named `file` whose
//! content (the PDF, up to the document limit) streams to the handler, which stops reading
//! there. So the WAF reads the body up to the end of the `file` part's headers — every byte the
//! application interprets as text: the other parts, the part headers, the client's filename —
//! and inspects that prefix closed with the final delimiter, i.e. the same form with an empty
//! file. CRS then sees ARGS, FILES and FILES_NAMES as for any form, and its strict multipart
//! checks apply. The PDF itself is never buffered here.
//!
//! Part boundaries are found here (delimiters and the blank line after the headers); a part's
//! name is read by `multer`, the parser the application uses, so the two cannot disagree on
//! which part is the file. Bare line feeds in delimiter lines or headers — where parsers are
//! known to differ — make the body malformed.
#![forbid(unsafe_code)]

use std::convert::Infallible;

use bytes::{BufMut, Bytes, BytesMut};

/// The name of the part whose content streams to the upload handler.
pub(super) const FILE_PART: &str = "file";

/// The boundary of a `multipart/form-data` body, from its `Content-Type`.
pub(super) fn boundary(content_type: Option<&[u8]>) -> Option<String> {
    let text = std::str::from_utf8(content_type?).ok()?;
    let essence = text.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    multer::parse_boundary(text).ok()
}

/// The next part of a body, scanning from `from` (0, or the end of the previous part's headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scan {
    /// More bytes are needed to tell.
    NeedMore,
    /// Not a multipart body the application would accept the same way.
    Malformed,
    /// The closing delimiter ends at this offset: the body has no further parts.
    Closed(usize),
    /// A part's delimiter line starts at `start`; its headers end (after the blank line) at `end`.
    Part { start: usize, end: usize },
}

/// The scan runs again over the buffer as each piece of a form arrives, so it must be fast.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// Finds the next part at or after `from`. The first delimiter may follow a preamble; later
/// ones start a line (they are preceded by CRLF, which belongs to the delimiter).
pub(super) fn next_part(buf: &[u8], boundary: &str, from: usize) -> Scan {
    let dash = [b"--", boundary.as_bytes()].concat();
    let (start, after) = if from == 0 {
        match find(buf, &dash) {
            Some(at) => (at, at + dash.len()),
            None => return Scan::NeedMore,
        }
    } else {
        let crlf_dash = [b"\r\n", dash.as_slice()].concat();
        match buf.get(from..).and_then(|rest| find(rest, &crlf_dash)) {
            Some(at) => (from + at + 2, from + at + crlf_dash.len()),
            None => return Scan::NeedMore,
        }
    };
    let Some(tail) = buf.get(after..after + 2) else { return Scan::NeedMore };
    if tail == b"--" {
        return Scan::Closed(after + 2);
    }
    if tail != b"\r\n" {
        return Scan::Malformed;
    }
    // The delimiter line's CRLF is the first half of the blank line when there are no headers.
    let Some(blank) = buf.get(after..).and_then(|rest| find(rest, b"\r\n\r\n")) else {
        return if buf[after..].windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r') {
            Scan::Malformed
        } else {
            Scan::NeedMore
        };
    };
    let end = after + blank + 4;
    let head = &buf[after..end];
    let bare_lf = head.first() == Some(&b'\n') || head.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r');
    if bare_lf {
        return Scan::Malformed;
    }
    Scan::Part { start, end }
}

/// The name of the part whose delimiter line and headers are `head`, as `multer` reads it.
pub(super) async fn part_name(head: &[u8], boundary: &str) -> Result<Option<String>, ()> {
    let mut one = BytesMut::with_capacity(head.len() + boundary.len() + 8);
    one.put_slice(head);
    one.put_slice(b"\r\n--");
    one.put_slice(boundary.as_bytes());
    one.put_slice(b"--\r\n");
    let stream = futures_util::stream::once(async move { Ok::<Bytes, Infallible>(one.freeze()) });
    let mut form = multer::Multipart::new(stream, boundary);
    match form.next_field().await {
        Ok(Some(field)) => Ok(field.name().map(str::to_owned)),
        _ => Err(()),
    }
}

/// The form as the WAF inspects it: `buf` up to the end of the file part's headers, closed.
pub(super) fn form_with_empty_file(buf: &[u8], headers_end: usize, boundary: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(headers_end + boundary.len() + 8);
    out.put_slice(&buf[..headers_end]);
    out.put_slice(b"\r\n--");
    out.put_slice(boundary.as_bytes());
    out.put_slice(b"--\r\n");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "XyZ";

    #[test]
    fn boundaries_come_from_form_data_types_only() {
        assert_eq!(boundary(Some(b"multipart/form-data; boundary=XyZ")).as_deref(), Some("XyZ"));
        assert_eq!(boundary(Some(b"Multipart/Form-Data; boundary=\"a b\"")).as_deref(), Some("a b"));
        assert_eq!(boundary(Some(b"multipart/mixed; boundary=XyZ")), None);
        assert_eq!(boundary(Some(b"multipart/form-data")), None);
        assert_eq!(boundary(None), None);
    }

    #[test]
    fn parts_are_found_one_after_another() {
        let body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nHi\r\n--XyZ\r\n\
Content-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\n\r\n%PDF-1.7\r\n--XyZ--\r\n";
        let Scan::Part { start, end } = next_part(body, B, 0) else { panic!() };
        assert_eq!(&body[start..start + 5], b"--XyZ");
        assert!(body[..end].ends_with(b"\"title\"\r\n\r\n"));
        let Scan::Part { start: s2, end: e2 } = next_part(body, B, end) else { panic!() };
        assert_eq!(&body[s2..s2 + 5], b"--XyZ");
        assert!(body[..e2].ends_with(b"filename=\"a.pdf\"\r\n\r\n"));
        assert!(matches!(next_part(body, B, e2), Scan::Closed(n) if n == body.len() - 2));
    }

    #[test]
    fn partial_bodies_ask_for_more_and_bare_line_feeds_are_malformed() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n";
        for cut in 0..body.len() - 1 {
            assert_eq!(next_part(&body[..cut], B, 0), Scan::NeedMore, "cut at {cut}");
        }
        assert!(matches!(next_part(body, B, 0), Scan::Part { .. }));
        assert_eq!(next_part(b"--XyZ\nContent-Disposition: form-data; name=\"x\"\n\n", B, 0), Scan::Malformed);
        assert_eq!(next_part(b"--XyZ\r\nContent-Disposition: x\n\r\n\r\n", B, 0), Scan::Malformed);
        assert_eq!(next_part(b"--XyZ  \r\n\r\n", B, 0), Scan::Malformed);
        // A part without headers.
        assert_eq!(next_part(b"--XyZ\r\n\r\nbody", B, 0), Scan::Part { start: 0, end: 9 });
    }

    #[tokio::test]
    async fn names_are_read_as_the_application_reads_them() {
        let head = b"--XyZ\r\nContent-Disposition: form-data; name=\"title\"; filename=\"x\"\r\n\r\n";
        assert_eq!(part_name(head, B).await, Ok(Some("title".to_owned())));
        let head = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"name=\\\"title\\\"\"\r\n\r\n";
        assert_eq!(part_name(head, B).await, Ok(Some("file".to_owned())));
        assert_eq!(part_name(b"--XyZ\r\n\r\n", B).await, Ok(None));
    }

    #[test]
    fn the_inspected_form_has_an_empty_file() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\n\r\n%PDF-1.7 ...";
        let Scan::Part { end, .. } = next_part(body, B, 0) else { panic!() };
        let form = form_with_empty_file(body, end, B);
        assert!(form.ends_with(b"filename=\"a.pdf\"\r\n\r\n\r\n--XyZ--\r\n"));
    }
}
