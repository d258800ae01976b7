//! Minimal, valid PDFs written by hand (with a correct cross-reference table), for tests that
//! upload documents without depending on the code under test to make them.

/// A PDF with `pages` US-Letter pages, each showing its number.
pub fn pdf(pages: usize) -> Vec<u8> {
    let mut objects: Vec<Vec<u8>> = Vec::new();
    let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", 3 + 2 * i)).collect();
    objects.push(b"<< /Type /Catalog /Pages 2 0 R >>".to_vec());
    objects.push(
        format!("<< /Type /Pages /Kids [{}] /Count {} /MediaBox [0 0 612 792] >>", kids.join(" "), pages).into_bytes(),
    );
    for i in 0..pages {
        objects.push(format!("<< /Type /Page /Parent 2 0 R /Contents {} 0 R >>", 4 + 2 * i).into_bytes());
        let text = format!("BT /F1 24 Tf 72 720 Td (Page {}) Tj ET", i + 1);
        objects.push(format!("<< /Length {} >>\nstream\n{}\nendstream", text.len(), text).into_bytes());
    }
    assemble(&objects, "")
}

/// Appends an incremental update to `base` (a file ending in a classic cross-reference table,
/// as [`pdf`] writes): a new document information dictionary, so the result has two revisions.
pub fn with_incremental_update(base: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(base);
    let size: usize = text
        .rsplit("/Size ")
        .next()
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .expect("trailer /Size");
    let prev: usize = text
        .rsplit("startxref\n")
        .next()
        .and_then(|s| s.lines().next())
        .and_then(|n| n.parse().ok())
        .expect("startxref");
    let mut out = base.to_vec();
    let off = out.len();
    out.extend_from_slice(
        format!("{size} 0 obj\n<< /Title (Revised) /Producer (sigillum-testkit) >>\nendobj\n").as_bytes(),
    );
    let xref = out.len();
    out.extend_from_slice(format!("xref\n{size} 1\n{off:010} 00000 n \n").as_bytes());
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R /Info {size} 0 R /Prev {prev} >>\nstartxref\n{xref}\n%%EOF\n",
            size + 1
        )
        .as_bytes(),
    );
    out
}

/// A one-page PDF with an interactive form: a text field and a checkbox (AcroForm).
pub fn pdf_with_form() -> Vec<u8> {
    let objects: Vec<Vec<u8>> = [
        "<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [4 0 R 5 0 R] /DA (/Helv 0 Tf 0 g) >> >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 /MediaBox [0 0 612 792] >>",
        "<< /Type /Page /Parent 2 0 R /Annots [4 0 R 5 0 R] >>",
        "<< /Type /Annot /Subtype /Widget /FT /Tx /T (company) /V (ACME) /Rect [72 700 300 720] /P 3 0 R >>",
        "<< /Type /Annot /Subtype /Widget /FT /Btn /T (agree) /V /Off /AS /Off /Rect [72 660 90 678] /P 3 0 R >>",
    ]
    .iter()
    .map(|o| o.as_bytes().to_vec())
    .collect();
    assemble(&objects, "")
}

/// A PDF made of `objects` (object *n* is `objects[n - 1]`, the catalog is object 1), with a correct
/// cross-reference table and `trailer` added to the trailer dictionary.
pub fn assemble(objects: &[Vec<u8>], trailer: &str) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(o);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R {trailer} >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1)
            .as_bytes(),
    );
    out
}

/// Hostile PDFs, written by hand like [`pdf`] (lopdf's writer would itself recurse into a
/// 10 000-deep array, and the code under test should not make its own inputs). Each is a valid
/// one-page document (objects 1 to 4: catalog, page tree, page, content) carrying one attack;
/// the attack's own objects are numbered from 5.
pub mod hostile {
    use std::io::Write;

    use super::assemble;

    /// Object bodies of a one-page document with `catalog` and `page` added to those
    /// dictionaries, followed by `extra`.
    pub fn objects(catalog: &str, page: &str, extra: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let text = "BT /F1 24 Tf 72 720 Td (Please sign) Tj ET";
        let mut objects = vec![
            format!("<< /Type /Catalog /Pages 2 0 R {catalog} >>").into_bytes(),
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 /MediaBox [0 0 612 792] >>".to_vec(),
            format!("<< /Type /Page /Parent 2 0 R /Contents 4 0 R {page} >>").into_bytes(),
            stream(&format!("/Length {}", text.len()), text.as_bytes()),
        ];
        objects.extend(extra);
        objects
    }

    /// A one-page document (see [`objects`]).
    pub fn document(catalog: &str, page: &str, extra: Vec<Vec<u8>>) -> Vec<u8> {
        assemble(&objects(catalog, page, extra), "")
    }

    /// A stream object body: `dict` entries (without `/Length`, which is added) and data.
    pub fn stream(dict: &str, data: &[u8]) -> Vec<u8> {
        let dict = if dict.contains("/Length") { dict.to_owned() } else { format!("{dict} /Length {}", data.len()) };
        let mut out = format!("<< {dict} >>\nstream\n").into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\nendstream");
        out
    }

    /// zlib-compressed `n` zero bytes (about a thousandth of `n`).
    pub fn zeros_deflated(n: usize) -> Vec<u8> {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        let chunk = vec![0u8; 1 << 20];
        let mut left = n;
        while left > 0 {
            let k = left.min(chunk.len());
            z.write_all(&chunk[..k]).expect("deflate");
            left -= k;
        }
        z.finish().expect("deflate")
    }

    /// An `/OpenAction` script and a document-level script (`/Names /JavaScript`).
    pub fn javascript_open_action() -> Vec<u8> {
        document(
            "/OpenAction 5 0 R /Names << /JavaScript 6 0 R >>",
            "",
            vec![
                b"<< /Type /Action /S /JavaScript /JS (app.alert\\(1\\)) >>".to_vec(),
                b"<< /Names [(init) 7 0 R] >>".to_vec(),
                b"<< /S /JavaScript /JS (this.print\\(\\)) >>".to_vec(),
            ],
        )
    }

    /// Additional actions: a script when the page opens and when it closes, a Launch when the
    /// document closes.
    pub fn page_additional_actions() -> Vec<u8> {
        document(
            "/AA << /WC 6 0 R >>",
            "/AA << /O 5 0 R /C << /S /JavaScript /JS (app.alert\\(2\\)) >> >>",
            vec![b"<< /S /JavaScript /JS (app.alert\\(1\\)) >>".to_vec(), b"<< /S /Launch /F (cmd.exe) >>".to_vec()],
        )
    }

    /// A link whose action launches a program, then runs a script (`/Next`).
    pub fn launch_annotation() -> Vec<u8> {
        document(
            "",
            "/Annots [5 0 R]",
            vec![
                b"<< /Type /Annot /Subtype /Link /Rect [72 72 200 100] /A << /S /Launch /F (calc.exe) /Next 6 0 R >> >>"
                    .to_vec(),
                b"<< /S /JavaScript /JS (app.alert\\(3\\)) >>".to_vec(),
            ],
        )
    }

    /// An embedded executable, in the `/EmbeddedFiles` name tree and in a FileAttachment
    /// annotation.
    pub fn embedded_file() -> Vec<u8> {
        document(
            "/Names << /EmbeddedFiles 5 0 R >>",
            "/Annots [8 0 R]",
            vec![
                b"<< /Names [(payload.exe) 6 0 R] >>".to_vec(),
                b"<< /Type /Filespec /F (payload.exe) /UF (payload.exe) /EF << /F 7 0 R >> >>".to_vec(),
                stream("/Type /EmbeddedFile /Subtype /application#2Foctet-stream", b"MZ\x90\x00 not really a program"),
                b"<< /Type /Annot /Subtype /FileAttachment /Rect [72 600 90 618] /FS 6 0 R >>".to_vec(),
            ],
        )
    }

    /// An XFA form (which carries its own scripts).
    pub fn xfa_form() -> Vec<u8> {
        let xdp = concat!(
            "<xdp:xdp xmlns:xdp=\"http://ns.adobe.com/xdp/\">",
            "<template><script>app.alert(4)</script></template></xdp:xdp>"
        )
        .as_bytes();
        document(
            "/AcroForm 5 0 R /NeedsRendering true",
            "",
            vec![b"<< /Fields [] /XFA 6 0 R >>".to_vec(), stream("", xdp)],
        )
    }

    /// A RichMedia (Flash) annotation and a Screen annotation with a rendition action.
    pub fn rich_media_annotation() -> Vec<u8> {
        document(
            "",
            "/Annots [5 0 R 6 0 R]",
            vec![
                concat!(
                    "<< /Type /Annot /Subtype /RichMedia /Rect [72 400 300 600] ",
                    "/RichMediaContent << /Assets << /Names [(a.swf) 7 0 R] >> >> >>"
                )
                .into(),
                concat!(
                    "<< /Type /Annot /Subtype /Screen /Rect [72 100 300 300] ",
                    "/A << /S /Rendition /OP 0 /JS (app.alert\\(5\\)) >> >>"
                )
                .into(),
                b"<< /Type /Filespec /F (a.swf) /EF << /F 8 0 R >> >>".to_vec(),
                stream("/Type /EmbeddedFile", b"FWS not really flash"),
            ],
        )
    }

    /// A link to a web address.
    pub fn uri_link() -> Vec<u8> {
        document(
            "",
            "/Annots [5 0 R]",
            vec![
                b"<< /Type /Annot /Subtype /Link /Rect [72 72 200 100] /A << /S /URI /URI (https://example.org/) >> >>"
                    .to_vec(),
            ],
        )
    }

    /// A form XObject on the page whose few compressed bytes expand to `expanded` bytes.
    pub fn flate_bomb(expanded: usize) -> Vec<u8> {
        document(
            "",
            "/Resources << /XObject << /X 5 0 R >> >>",
            vec![stream(
                "/Type /XObject /Subtype /Form /BBox [0 0 1 1] /Filter /FlateDecode",
                &zeros_deflated(expanded),
            )],
        )
    }

    /// `count` object streams, each expanding to about `each` bytes (one object, then padding).
    pub fn object_stream_bombs(count: usize, each: usize) -> Vec<u8> {
        let extra = (0..count)
            .map(|i| {
                let mut content = format!("{} 0 ", 100 + i).into_bytes();
                let first = content.len();
                content.extend_from_slice(b"null");
                content.resize(each.max(content.len()), b' ');
                let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                z.write_all(&content).expect("deflate");
                stream(
                    &format!("/Type /ObjStm /N 1 /First {first} /Filter /FlateDecode"),
                    &z.finish().expect("deflate"),
                )
            })
            .collect();
        document("", "", extra)
    }

    /// An array nested `depth` levels deep, referenced from the catalog.
    pub fn deep_nesting(depth: usize) -> Vec<u8> {
        let mut deep = vec![b'['; depth];
        deep.extend(std::iter::repeat_n(b']', depth));
        document("/Deep 5 0 R", "", vec![deep])
    }

    /// `n` extra (unreferenced) objects.
    pub fn many_objects(n: usize) -> Vec<u8> {
        document("", "", (0..n).map(|_| b"null".to_vec()).collect())
    }

    /// A page tree whose second kid is a `/Pages` node listing the root again.
    pub fn kids_loop() -> Vec<u8> {
        let mut objects = objects("", "", vec![b"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R] /Count 1 >>".to_vec()]);
        objects[1] = b"<< /Type /Pages /Kids [3 0 R 5 0 R] /Count 2 /MediaBox [0 0 612 792] >>".to_vec();
        assemble(&objects, "")
    }

    /// A clean document cut off before its cross-reference table (every object intact).
    pub fn without_xref() -> Vec<u8> {
        let whole = super::pdf(2);
        let at = whole.windows(5).rposition(|w| w == b"xref\n").expect("xref");
        whole[..at].to_vec()
    }

    /// A clean document cut in the middle of its objects.
    pub fn truncated() -> Vec<u8> {
        let whole = super::pdf(3);
        whole[..whole.len() / 2].to_vec()
    }

    /// A document whose trailer names the standard security handler (RC4, 40 bits) with a user
    /// password that is not empty.
    pub fn encrypted() -> Vec<u8> {
        let o = "<".to_owned() + &"4b".repeat(32) + ">";
        let u = "<".to_owned() + &"5c".repeat(32) + ">";
        assemble(
            &objects(
                "",
                "",
                vec![format!("<< /Filter /Standard /V 1 /R 2 /Length 40 /P -44 /O {o} /U {u} >>").into_bytes()],
            ),
            "/Encrypt 5 0 R /ID [<0123456789abcdef0123456789abcdef> <0123456789abcdef0123456789abcdef>]",
        )
    }
}
