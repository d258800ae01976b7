//! A pass over the raw bytes before lopdf sees them. lopdf decodes every object stream while it
//! loads a file (each bounded, but not their sum) and parses each object recursively, so what
//! a file may cost must be known before it is handed over: how many objects it declares, how
//! deeply it nests arrays and dictionaries, and what its object and cross-reference streams
//! expand to (decoded here with the same bounded decoders, counted, then dropped).
//!
//! The scan is a lexer, not a parser: it tracks nesting within each object (resetting at `obj`
//! and `endobj`, so one damaged object cannot poison the rest), skips strings, comments and
//! stream data, and remembers each stream's dictionary for its `/Type`, `/Filter`, `/Length`
//! and `/N`. It also notes names that only active content uses (`/JavaScript`, `/Launch`, …)
//! anywhere in the file, so that a file which hides them where the object model does not reach
//! (unreferenced objects, objects lopdf cannot parse but another reader might) is rewritten
//! from what was understood instead of stored as uploaded.

use lopdf::{Dictionary, Object, Stream};

use super::guard::decode_bounded;
use crate::inspect::{Limits, PdfError};

/// What the raw bytes declare.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Bytes the object and cross-reference streams expand to.
    pub decompressed: usize,
    /// Whether a name only active content uses appears anywhere.
    pub markers: bool,
}

/// Names that only active content (or the embedded files it may run) uses.
const MARKERS: [&[u8]; 11] = [
    b"JavaScript",
    b"Launch",
    b"EmbeddedFile",
    b"EmbeddedFiles",
    b"XFA",
    b"RichMedia",
    b"RichMediaExecute",
    b"SubmitForm",
    b"ImportData",
    b"GoToR",
    b"GoToE",
];

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    Open,
    Close,
    DictOpen,
    DictClose,
    /// A name, `#xx` escapes decoded.
    Name(Vec<u8>),
    /// A number or a keyword.
    Word(&'a [u8]),
    /// A literal or hexadecimal string (skipped).
    Str,
}

fn is_space(b: u8) -> bool {
    matches!(b, 0 | b'\t' | b'\n' | 0x0c | b'\r' | b' ')
}

fn is_delimiter(b: u8) -> bool {
    matches!(b, b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

struct Lexer<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn at(&self, i: usize) -> Option<u8> {
        self.buf.get(i).copied()
    }

    fn next_token(&mut self) -> Option<Tok<'a>> {
        loop {
            let c = self.at(self.pos)?;
            match c {
                c if is_space(c) => self.pos += 1,
                b'%' => {
                    while let Some(b) = self.at(self.pos) {
                        if b == b'\r' || b == b'\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                b'(' => {
                    let mut depth = 0usize;
                    while let Some(b) = self.at(self.pos) {
                        self.pos += 1;
                        match b {
                            b'\\' => self.pos += 1,
                            b'(' => depth += 1,
                            b')' => {
                                depth = depth.saturating_sub(1);
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    return Some(Tok::Str);
                }
                b'<' if self.at(self.pos + 1) == Some(b'<') => {
                    self.pos += 2;
                    return Some(Tok::DictOpen);
                }
                b'<' => {
                    while let Some(b) = self.at(self.pos) {
                        self.pos += 1;
                        if b == b'>' {
                            break;
                        }
                    }
                    return Some(Tok::Str);
                }
                b'>' if self.at(self.pos + 1) == Some(b'>') => {
                    self.pos += 2;
                    return Some(Tok::DictClose);
                }
                b'[' => {
                    self.pos += 1;
                    return Some(Tok::Open);
                }
                b']' => {
                    self.pos += 1;
                    return Some(Tok::Close);
                }
                b'/' => {
                    self.pos += 1;
                    let mut name = Vec::new();
                    while let Some(b) = self.at(self.pos) {
                        if is_space(b) || is_delimiter(b) {
                            break;
                        }
                        match (b, self.at(self.pos + 1).and_then(hex), self.at(self.pos + 2).and_then(hex)) {
                            (b'#', Some(h), Some(l)) => {
                                name.push(h << 4 | l);
                                self.pos += 3;
                            }
                            _ => {
                                name.push(b);
                                self.pos += 1;
                            }
                        }
                    }
                    return Some(Tok::Name(name));
                }
                c if is_delimiter(c) => self.pos += 1,
                _ => {
                    let start = self.pos;
                    while let Some(b) = self.at(self.pos) {
                        if is_space(b) || is_delimiter(b) {
                            break;
                        }
                        self.pos += 1;
                    }
                    return Some(Tok::Word(&self.buf[start..self.pos]));
                }
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

fn int(tok: Option<&Tok<'_>>) -> Option<i64> {
    match tok {
        Some(Tok::Word(w)) => std::str::from_utf8(w).ok()?.parse().ok(),
        _ => None,
    }
}

/// What a stream dictionary says about its data, read from its top-level entries.
#[derive(Debug, Default)]
struct StreamDict {
    kind: Option<Vec<u8>>,
    filters: Vec<Vec<u8>>,
    /// A direct `/Length` (an indirect one is not resolved here).
    length: Option<usize>,
    objects: Option<usize>,
}

impl StreamDict {
    fn read(toks: &[Tok<'_>]) -> Self {
        let mut d = Self::default();
        let mut depth = 0usize;
        for (i, tok) in toks.iter().enumerate() {
            match tok {
                Tok::Open | Tok::DictOpen => depth += 1,
                Tok::Close | Tok::DictClose => depth = depth.saturating_sub(1),
                Tok::Name(key) if depth == 0 => match key.as_slice() {
                    b"Type" => {
                        if let Some(Tok::Name(v)) = toks.get(i + 1) {
                            d.kind = Some(v.clone());
                        }
                    }
                    b"Filter" => match toks.get(i + 1) {
                        Some(Tok::Name(v)) => d.filters = vec![v.clone()],
                        Some(Tok::Open) => {
                            d.filters = toks[i + 2..]
                                .iter()
                                .take_while(|t| matches!(t, Tok::Name(_)))
                                .filter_map(|t| match t {
                                    Tok::Name(v) => Some(v.clone()),
                                    _ => None,
                                })
                                .collect();
                        }
                        _ => {}
                    },
                    b"Length" => {
                        let indirect = int(toks.get(i + 2)).is_some() && toks.get(i + 3) == Some(&Tok::Word(b"R"));
                        if !indirect {
                            d.length = int(toks.get(i + 1)).and_then(|l| usize::try_from(l).ok());
                        }
                    }
                    b"N" => d.objects = int(toks.get(i + 1)).and_then(|n| usize::try_from(n).ok()),
                    _ => {}
                },
                _ => {}
            }
        }
        d
    }
}

struct Scanner<'l> {
    limits: &'l Limits,
    objects: usize,
    scan: Scan,
}

impl Scanner<'_> {
    fn count_objects(&mut self, n: usize) -> Result<(), PdfError> {
        self.objects = self.objects.saturating_add(n);
        if self.objects > self.limits.max_objects {
            return Err(PdfError::TooManyObjects(self.limits.max_objects));
        }
        Ok(())
    }

    /// Lexes `buf`: the file itself (`raw`), or the decoded content of an object stream.
    fn run(&mut self, buf: &[u8], raw: bool) -> Result<(), PdfError> {
        let mut lx = Lexer { buf, pos: 0 };
        let mut depth = 0usize;
        // Tokens of the top-level dictionary being read, and of the one just closed (a stream's
        // dictionary when `stream` follows it).
        let mut open: Option<Vec<Tok<'_>>> = None;
        let mut closed: Option<Vec<Tok<'_>>> = None;
        while let Some(tok) = lx.next_token() {
            match &tok {
                Tok::Open | Tok::DictOpen => {
                    depth += 1;
                    if depth > self.limits.max_depth {
                        return Err(PdfError::TooDeep(self.limits.max_depth));
                    }
                    closed = None;
                    if depth == 1 && tok == Tok::DictOpen {
                        open = Some(Vec::new());
                        continue;
                    }
                }
                Tok::Close | Tok::DictClose => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        closed = if tok == Tok::DictClose { open.take() } else { None };
                        open = None;
                        continue;
                    }
                }
                Tok::Name(n) if MARKERS.contains(&n.as_slice()) => self.scan.markers = true,
                Tok::Word(b"obj") => {
                    self.count_objects(1)?;
                    (depth, open, closed) = (0, None, None);
                    continue;
                }
                Tok::Word(b"endobj" | b"endstream" | b"trailer" | b"xref" | b"startxref") => {
                    (depth, open, closed) = (0, None, None);
                    continue;
                }
                Tok::Word(b"stream") if raw => {
                    let dict = StreamDict::read(closed.as_deref().unwrap_or_default());
                    lx.pos = self.stream(buf, lx.pos, &dict)?;
                    (depth, open, closed) = (0, None, None);
                    continue;
                }
                _ => {}
            }
            match open.as_mut() {
                Some(toks) => toks.push(tok),
                None if depth == 0 => closed = None,
                None => {}
            }
        }
        Ok(())
    }

    /// Handles the data of a stream whose keyword ends at `at`; returns where lexing resumes.
    fn stream(&mut self, buf: &[u8], at: usize, dict: &StreamDict) -> Result<usize, PdfError> {
        let start = match (buf.get(at), buf.get(at + 1)) {
            (Some(b'\r'), Some(b'\n')) => at + 2,
            (Some(b'\n' | b'\r'), _) => at + 1,
            _ => at,
        };
        let declared = dict.length.and_then(|len| {
            let end = start.checked_add(len)?;
            let rest = buf.get(end..)?;
            let skip = rest.iter().take_while(|b| is_space(**b)).count();
            rest[skip..].starts_with(b"endstream").then_some((end, end + skip + 9))
        });
        let (end, resume) = match declared {
            Some(found) => found,
            None => match find(buf, b"endstream", start) {
                Some(p) => (p, p + 9),
                None => (buf.len(), buf.len()),
            },
        };
        let kind = dict.kind.as_deref();
        if matches!(kind, Some(b"ObjStm" | b"XRef")) && !dict.filters.is_empty() {
            let data = buf.get(start..end.max(start)).unwrap_or_default();
            let filters = dict.filters.iter().map(|f| Object::Name(f.clone())).collect::<Vec<_>>();
            let stream = Stream::new(Dictionary::from_iter([("Filter", Object::Array(filters))]), data.to_vec());
            // Only a bomb is refused here; a stream that does not decode is lopdf's to judge.
            if let Some(content) = decode_bounded(&stream, None, self.limits, &mut self.scan.decompressed)? {
                if kind == Some(b"ObjStm") {
                    self.count_objects(dict.objects.unwrap_or(0))?;
                    self.run(&content, false)?;
                }
            }
        } else if kind == Some(b"ObjStm") {
            self.count_objects(dict.objects.unwrap_or(0))?;
            let data = buf.get(start..end.max(start)).unwrap_or_default();
            self.run(data, false)?;
        }
        Ok(resume)
    }
}

/// Scans the raw file (from its `%PDF-` header on).
pub(crate) fn scan(bytes: &[u8], limits: &Limits) -> Result<Scan, PdfError> {
    let mut s = Scanner { limits, objects: 0, scan: Scan::default() };
    s.run(bytes, true)?;
    Ok(s.scan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(s: &[u8]) -> Vec<Tok<'_>> {
        let mut lx = Lexer { buf: s, pos: 0 };
        std::iter::from_fn(|| lx.next_token()).collect()
    }

    #[test]
    fn lexes_names_strings_and_comments() {
        let toks = lex(b"<< /J#61vaScript (a \\) [ ( ] ) ) <4142> % [[[\n /N 3 >> [");
        assert_eq!(
            toks,
            vec![
                Tok::DictOpen,
                Tok::Name(b"JavaScript".to_vec()),
                Tok::Str,
                Tok::Str,
                Tok::Name(b"N".to_vec()),
                Tok::Word(b"3"),
                Tok::DictClose,
                Tok::Open
            ]
        );
    }

    #[test]
    fn depth_resets_per_object_and_markers_are_seen_through_escapes() {
        let limits = Limits { max_depth: 3, ..Limits::default() };
        let ok = b"1 0 obj [[[ endobj 2 0 obj [[[1]]] endobj 3 0 obj << /S /Launch >> endobj";
        let s = scan(ok, &limits).unwrap();
        assert!(s.markers);
        assert_eq!(scan(b"1 0 obj [[[[ ]]]] endobj", &limits).unwrap_err(), PdfError::TooDeep(3));
        assert!(!scan(b"1 0 obj << /Font << /F1 2 0 R >> >> endobj", &limits).unwrap().markers);
    }

    #[test]
    fn stream_data_is_skipped_by_its_length() {
        let limits = Limits { max_depth: 2, ..Limits::default() };
        let body = b"[[[[[[ endstream";
        let file =
            [format!("1 0 obj << /Length {} >> stream\n", body.len()).as_bytes(), body, b"\nendstream endobj"].concat();
        scan(&file, &limits).unwrap();
    }
}
