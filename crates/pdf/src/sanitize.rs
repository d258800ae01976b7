//! The hostile-PDF sanitiser every upload goes through (DESIGN §6): a document that is signed must
//! show every reader the same static content, so what can run, reach out, change what is shown
//! or carry other files is taken out before anyone sees or signs it, and the sender is told what
//! was taken.
//!
//! The file is first loaded within [`Limits`] ([`guard`]): a decompression bomb, absurd nesting,
//! a flood of objects or a circular page tree is refused before it can cost memory or time, and an
//! encrypted or broken file is refused as before. Then, on lopdf's object model:
//!
//! - the catalog's `/OpenAction` when it is an action that goes (an opening view, a destination
//!   or plain navigation, stays), `/Collection` (portfolio) and XFA (`/AcroForm /XFA`,
//!   `/NeedsRendering`), and the `/JavaScript` and `/EmbeddedFiles` name trees, are removed;
//! - everywhere: additional actions (`/AA` on the catalog, pages, annotations and form fields),
//!   associated files (`/AF`) and embedded file streams (`/EF` of file specifications);
//! - every action that runs, reaches outside the document or changes what is shown (JavaScript,
//!   Launch, SubmitForm, ImportData, ResetForm, GoToR, GoToE, Hide, SetOCGState, multimedia and
//!   RichMediaExecute, unknown kinds; URI only with [`Policy::remove_uri`]), wherever an action
//!   is referenced (`/A`, `/Next` chains, outlines…); harmless navigation (GoTo, Named, Thread,
//!   Trans) stays;
//! - RichMedia, 3D, Screen, Movie, Sound and FileAttachment annotations.
//!
//! Objects nothing refers to any more are dropped, and the result is written anew and inspected
//! again. When nothing was found the upload's own bytes are kept, so its hash is the one the
//! sender computed — unless names of active content appear in the raw file where the object
//! model did not reach them; then it is written anew from what was understood.

pub(crate) mod guard;
mod prescan;

use std::collections::{BTreeMap, HashSet};

use lopdf::{Dictionary, Document, Object, ObjectId};
use serde::{Deserialize, Serialize};

use crate::inspect::{describe, inspect, Limits, PdfError, PdfInfo};

/// What kind of active content was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovedKind {
    /// JavaScript actions (document-level scripts included).
    Javascript,
    /// The catalog's `/OpenAction`, when it is an action that goes (counted by its kind too).
    OpenAction,
    /// `/AA` dictionaries (on the catalog, pages, annotations, form fields).
    AdditionalActions,
    Launch,
    SubmitForm,
    ImportData,
    ResetForm,
    /// `GoToR`: opens another file.
    GoToRemote,
    /// `GoToE`: opens an embedded file.
    GoToEmbedded,
    /// `URI` actions (only with [`Policy::remove_uri`]).
    Uri,
    /// `Hide` actions (show or hide annotations).
    Hide,
    /// `SetOCGState` actions (show or hide layers).
    SetOcgState,
    /// Sound, Movie, Rendition and GoTo3DView actions; Screen, Movie and Sound annotations.
    Multimedia,
    /// RichMedia and 3D annotations, RichMediaExecute actions.
    RichMedia,
    /// Actions of an unknown kind.
    OtherAction,
    /// Entries of the `/EmbeddedFiles` name tree and embedded file streams elsewhere.
    EmbeddedFiles,
    /// FileAttachment annotations.
    FileAttachment,
    /// `/AF` associated files.
    AssociatedFiles,
    /// A portfolio (`/Collection`).
    Collection,
    /// An XFA form.
    Xfa,
    /// Objects nothing referred to, dropped because active content hid among them.
    UnreachableObjects,
    /// Not removed: digital signatures (and document timestamps) already in the upload. The
    /// final document is a new file (the values drawn into the pages, then sealed), so they will
    /// not verify in it; the sender is told before sending.
    InvalidatedSignatures,
}

/// One kind of content removed, and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub kind: RemovedKind,
    pub count: u32,
}

/// Choices beyond the always-removed content.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Remove links to web addresses too (kept by default: they only open on a click, in the
    /// reader's browser, after the reader asks).
    pub remove_uri: bool,
}

/// The document to store, and what was done to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sanitized {
    /// The sanitised document (the upload itself when `changed` is false).
    pub bytes: Vec<u8>,
    pub info: PdfInfo,
    /// What was removed, by kind, in the order of [`RemovedKind`].
    pub removed: Vec<Removed>,
    /// Whether `bytes` differ from the upload.
    pub changed: bool,
}

/// Loads `bytes` within `limits`, removes active content and returns the document to keep.
pub fn sanitize(bytes: &[u8], limits: &Limits, policy: &Policy) -> Result<Sanitized, PdfError> {
    let guard::Loaded { mut doc, version, pages, markers } = guard::load(bytes, limits)?;
    let info = describe(&doc, &pages, version)?;
    let signatures = existing_signatures(&doc);
    // Object and cross-reference streams are containers lopdf already unpacked, not content.
    let containers: HashSet<ObjectId> = doc
        .objects
        .iter()
        .filter(|(_, o)| matches!(o, Object::Stream(s) if matches!(name(&s.dict, b"Type"), Some(b"ObjStm" | b"XRef"))))
        .map(|(id, _)| *id)
        .collect();
    let unreachable = doc.prune_objects().iter().filter(|id| !containers.contains(id)).count();
    let mut cleaner = Cleaner { policy: *policy, max_depth: limits.max_depth, ..Cleaner::default() };
    cleaner.catalog(&mut doc);
    cleaner.everywhere(&mut doc);
    doc.prune_objects();
    let mut removed: Vec<Removed> =
        cleaner.tally.into_iter().filter(|(_, n)| *n > 0).map(|(kind, count)| Removed { kind, count }).collect();
    let notice = (signatures > 0).then_some(Removed { kind: RemovedKind::InvalidatedSignatures, count: signatures });
    if removed.is_empty() && !markers {
        return Ok(Sanitized { bytes: bytes.to_vec(), info, removed: notice.into_iter().collect(), changed: false });
    }
    if removed.is_empty() && unreachable > 0 {
        removed.push(Removed { kind: RemovedKind::UnreachableObjects, count: saturate(unreachable) });
    }
    let mut out = Vec::with_capacity(bytes.len());
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| doc.save_to(&mut out)))
        .map_err(|_| PdfError::Malformed)?
        .map_err(|_| PdfError::Malformed)?;
    // Written by us, so only what we wrote is checked: the size limit was the upload's.
    let relaxed = Limits { max_bytes: limits.max_bytes.max(out.len()), ..*limits };
    let again = inspect(&out, &relaxed).map_err(|_| PdfError::Malformed)?;
    if again.pages != info.pages {
        return Err(PdfError::Malformed);
    }
    removed.extend(notice);
    Ok(Sanitized { bytes: out, info: again, removed, changed: true })
}

/// Signature dictionaries of the document: `/Type /Sig` or `/DocTimeStamp`, or any dictionary
/// with the `/ByteRange` and `/Contents` a signature value has.
fn existing_signatures(doc: &lopdf::Document) -> u32 {
    let is_signature = |d: &Dictionary| {
        matches!(name(d, b"Type"), Some(b"Sig" | b"DocTimeStamp")) || (d.has(b"ByteRange") && d.has(b"Contents"))
    };
    let n = doc
        .objects
        .values()
        .filter(|o| match o {
            Object::Dictionary(d) => is_signature(d),
            Object::Stream(s) => is_signature(&s.dict),
            _ => false,
        })
        .count();
    saturate(n)
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn name<'a>(d: &'a Dictionary, key: &[u8]) -> Option<&'a [u8]> {
    d.get(key).and_then(Object::as_name).ok()
}

/// Action types ISO 32000-2 §12.6.4 defines.
const ACTIONS: [&[u8]; 20] = [
    b"GoTo",
    b"GoToR",
    b"GoToE",
    b"GoToDp",
    b"Launch",
    b"Thread",
    b"URI",
    b"Sound",
    b"Movie",
    b"Hide",
    b"Named",
    b"SubmitForm",
    b"ResetForm",
    b"ImportData",
    b"JavaScript",
    b"SetOCGState",
    b"Rendition",
    b"Trans",
    b"GoTo3DView",
    b"RichMediaExecute",
];

/// Whether `d` is an action, and if so whether it goes (`Some(Some(kind))`) or stays.
fn classify_action(d: &Dictionary, policy: &Policy) -> Option<Option<RemovedKind>> {
    let s = name(d, b"S");
    let is_action = name(d, b"Type") == Some(b"Action") || s.is_some_and(|s| ACTIONS.contains(&s));
    if !is_action {
        return None;
    }
    use RemovedKind as K;
    Some(match s.unwrap_or_default() {
        b"GoTo" | b"GoToDp" | b"Thread" | b"Named" | b"Trans" => None,
        b"URI" if !policy.remove_uri => None,
        b"URI" => Some(K::Uri),
        b"JavaScript" => Some(K::Javascript),
        b"Launch" => Some(K::Launch),
        b"SubmitForm" => Some(K::SubmitForm),
        b"ImportData" => Some(K::ImportData),
        b"ResetForm" => Some(K::ResetForm),
        b"GoToR" => Some(K::GoToRemote),
        b"GoToE" => Some(K::GoToEmbedded),
        b"Hide" => Some(K::Hide),
        b"SetOCGState" => Some(K::SetOcgState),
        b"Sound" | b"Movie" | b"Rendition" | b"GoTo3DView" => Some(K::Multimedia),
        b"RichMediaExecute" => Some(K::RichMedia),
        _ => Some(K::OtherAction),
    })
}

/// Annotations that are removed, by subtype.
fn classify_annotation(d: &Dictionary) -> Option<RemovedKind> {
    match name(d, b"Subtype")? {
        b"RichMedia" | b"3D" => Some(RemovedKind::RichMedia),
        b"Screen" | b"Movie" | b"Sound" => Some(RemovedKind::Multimedia),
        b"FileAttachment" => Some(RemovedKind::FileAttachment),
        _ => None,
    }
}

/// Most steps taken along an action's `/Next` chain or through a name tree.
const MAX_STEPS: usize = 100_000;

#[derive(Default)]
struct Cleaner {
    policy: Policy,
    max_depth: usize,
    tally: BTreeMap<RemovedKind, u32>,
    /// Indirect actions and annotations already counted (one object referenced twice is one).
    counted: HashSet<ObjectId>,
    /// Objects that are the `/Annots` array of a page.
    annots_arrays: HashSet<ObjectId>,
    /// The object being cleaned.
    current: Option<ObjectId>,
}

impl Cleaner {
    fn add(&mut self, kind: RemovedKind, n: usize) {
        let e = self.tally.entry(kind).or_default();
        *e = e.saturating_add(saturate(n));
    }

    /// Counts the actions of a removed value: an action with its `/Next` chain, an array of
    /// them, or an additional-actions dictionary (`aa`).
    fn count_actions(&mut self, doc: &Document, start: &Object, aa: bool) {
        let mut work: Vec<&Object> = match (start, aa) {
            (Object::Dictionary(d), true) => d.iter().map(|(_, v)| v).collect(),
            (Object::Reference(id), true) => match doc.get_dictionary(*id) {
                Ok(d) => d.iter().map(|(_, v)| v).collect(),
                Err(_) => vec![],
            },
            _ => vec![start],
        };
        let mut steps = 0;
        while let Some(o) = work.pop() {
            steps += 1;
            if steps > MAX_STEPS {
                break;
            }
            let d = match o {
                Object::Reference(id) => {
                    if !self.counted.insert(*id) {
                        continue;
                    }
                    match doc.get_dictionary(*id) {
                        Ok(d) => d,
                        Err(_) => continue,
                    }
                }
                Object::Dictionary(d) => d,
                Object::Array(a) => {
                    work.extend(a.iter());
                    continue;
                }
                _ => continue,
            };
            if let Some(Some(kind)) = classify_action(d, &self.policy) {
                self.add(kind, 1);
            }
            if let Ok(next) = d.get(b"Next") {
                work.push(next);
            }
        }
    }

    /// The leaf values of a name tree (with `/Kids` followed once each).
    fn name_tree_values<'a>(doc: &'a Document, root: &'a Object) -> Vec<&'a Object> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut work = vec![root];
        let mut steps = 0;
        while let Some(o) = work.pop() {
            steps += 1;
            if steps > MAX_STEPS {
                break;
            }
            let d = match o {
                Object::Reference(id) if seen.insert(*id) => doc.get_dictionary(*id).ok(),
                Object::Dictionary(d) => Some(d),
                _ => None,
            };
            let Some(d) = d else { continue };
            if let Ok(names) = d.get_deref(b"Names", doc).and_then(Object::as_array) {
                out.extend(names.iter().skip(1).step_by(2));
            }
            if let Ok(kids) = d.get_deref(b"Kids", doc).and_then(Object::as_array) {
                work.extend(kids.iter());
            }
        }
        out
    }

    /// Catalog-level active content: `/OpenAction`, `/Collection`, XFA and the `/JavaScript`
    /// and `/EmbeddedFiles` name trees.
    fn catalog(&mut self, doc: &mut Document) {
        let Ok(root) = doc.trailer.get(b"Root").and_then(Object::as_reference) else { return };
        edit(doc, root, None, |cat, doc| {
            // An opening view (a destination, or plain navigation) stays: most documents made by
            // TeX or office suites have one, and it changes nothing shown. Its `/Next` chain is
            // cleaned with every other action.
            if cat.get(b"OpenAction").is_ok_and(|open| self.is_dropped_action(doc, open)) {
                if let Some(open) = cat.remove(b"OpenAction") {
                    self.add(RemovedKind::OpenAction, 1);
                    self.count_actions(doc, &open, false);
                }
            }
            if cat.remove(b"Collection").is_some() {
                self.add(RemovedKind::Collection, 1);
            }
            cat.remove(b"NeedsRendering");
        });
        edit(doc, root, Some(b"Names"), |names, doc| {
            if let Some(js) = names.remove(b"JavaScript") {
                let values = Self::name_tree_values(doc, &js);
                let before = self.tally.get(&RemovedKind::Javascript).copied().unwrap_or(0);
                for v in values {
                    self.count_actions(doc, v, false);
                }
                // A script tree removed counts as at least one script.
                if self.tally.get(&RemovedKind::Javascript).copied().unwrap_or(0) == before {
                    self.add(RemovedKind::Javascript, 1);
                }
            }
            if let Some(files) = names.remove(b"EmbeddedFiles") {
                let values = Self::name_tree_values(doc, &files);
                let n = values.len();
                self.counted.extend(values.iter().filter_map(|v| v.as_reference().ok()));
                self.add(RemovedKind::EmbeddedFiles, n.max(1));
            }
        });
        edit(doc, root, Some(b"AcroForm"), |form, _| {
            if form.remove(b"XFA").is_some() {
                self.add(RemovedKind::Xfa, 1);
            }
        });
    }

    /// Every object still reachable: additional actions, associated and embedded files,
    /// dangerous actions wherever referenced, and removed annotation kinds. Objects are visited
    /// from the trailer after they are cleaned, so nothing already removed is visited (or counted)
    /// again; each is taken out of the document while it is cleaned, so the rest can be read to
    /// classify what it refers to.
    fn everywhere(&mut self, doc: &mut Document) {
        for o in doc.objects.values() {
            if let Object::Dictionary(d) = o {
                if let Ok(Object::Reference(id)) = d.get(b"Annots") {
                    self.annots_arrays.insert(*id);
                }
            }
        }
        let mut seen = HashSet::new();
        let mut work = Vec::new();
        references(&Object::Dictionary(doc.trailer.clone()), &mut work);
        while let Some(id) = work.pop() {
            if !seen.insert(id) {
                continue;
            }
            let Some(mut o) = doc.objects.remove(&id) else { continue };
            if self.annots_arrays.contains(&id) {
                if let Object::Array(a) = &mut o {
                    self.filter_annots(doc, a);
                }
            }
            self.current = Some(id);
            self.clean(doc, &mut o, 0);
            references(&o, &mut work);
            doc.objects.insert(id, o);
        }
        self.current = None;
    }

    /// Whether `v` is (or refers to) an action that goes.
    fn is_dropped_action(&self, doc: &Document, v: &Object) -> bool {
        let d = match v {
            Object::Dictionary(d) => d,
            Object::Reference(id) => match doc.get_dictionary(*id) {
                Ok(d) => d,
                Err(_) => return false,
            },
            _ => return false,
        };
        matches!(classify_action(d, &self.policy), Some(Some(_)))
    }

    /// Whether `v` is an action that goes; if so it is counted (with its chain).
    fn drops_action(&mut self, doc: &Document, v: &Object) -> bool {
        let drop = self.is_dropped_action(doc, v);
        if drop {
            self.count_actions(doc, v, false);
        }
        drop
    }

    fn filter_annots(&mut self, doc: &Document, annots: &mut Vec<Object>) {
        annots.retain(|a| {
            let (d, id) = match a {
                Object::Dictionary(d) => (d, None),
                Object::Reference(id) => match doc.get_dictionary(*id) {
                    Ok(d) => (d, Some(*id)),
                    Err(_) => return true,
                },
                _ => return true,
            };
            let Some(kind) = classify_annotation(d) else { return true };
            if id.is_none_or(|id| self.counted.insert(id)) {
                self.add(kind, 1);
            }
            false
        });
    }

    /// Cleans one value; nesting was bounded when the document was loaded, and `depth` keeps
    /// this recursion within that bound whatever happens.
    fn clean(&mut self, doc: &Document, o: &mut Object, depth: usize) {
        if depth > self.max_depth {
            return;
        }
        match o {
            Object::Array(items) => {
                for item in items.iter_mut() {
                    if self.drops_action(doc, item) {
                        *item = Object::Null;
                    } else {
                        self.clean(doc, item, depth + 1);
                    }
                }
            }
            Object::Dictionary(d) => self.clean_dict(doc, d, depth),
            Object::Stream(s) => self.clean_dict(doc, &mut s.dict, depth),
            _ => {}
        }
    }

    fn clean_dict(&mut self, doc: &Document, d: &mut Dictionary, depth: usize) {
        if let Some(aa) = d.remove(b"AA") {
            self.add(RemovedKind::AdditionalActions, 1);
            self.count_actions(doc, &aa, true);
        }
        if d.remove(b"AF").is_some() {
            self.add(RemovedKind::AssociatedFiles, 1);
        }
        // A file specification already counted in the `/EmbeddedFiles` tree is not counted again.
        if d.remove(b"EF").is_some() && !(depth == 0 && self.current.is_some_and(|id| self.counted.contains(&id))) {
            self.add(RemovedKind::EmbeddedFiles, 1);
        }
        let keys: Vec<Vec<u8>> = d.iter().map(|(k, _)| k.clone()).collect();
        for key in keys {
            let Ok(v) = d.get_mut(&key) else { continue };
            match (key.as_slice(), &mut *v) {
                (b"Annots", Object::Array(a)) => self.filter_annots(doc, a),
                (b"Next", Object::Array(a)) => a.retain(|x| !self.drops_action(doc, x)),
                _ => {}
            }
            if self.drops_action(doc, v) {
                d.remove(&key);
            } else {
                self.clean(doc, v, depth + 1);
            }
        }
    }
}

/// Pushes the objects `o` refers to onto `out` (walked with an explicit stack).
fn references(o: &Object, out: &mut Vec<ObjectId>) {
    let mut stack = vec![o];
    while let Some(o) = stack.pop() {
        match o {
            Object::Reference(id) => out.push(*id),
            Object::Array(a) => stack.extend(a.iter()),
            Object::Dictionary(d) => stack.extend(d.iter().map(|(_, v)| v)),
            Object::Stream(s) => stack.extend(s.dict.iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

/// Runs `f` on the catalog `root` (`key` = None) or on the dictionary under the catalog's `key`
/// (direct or indirect), with the rest of the document readable.
fn edit(doc: &mut Document, root: ObjectId, key: Option<&[u8]>, f: impl FnOnce(&mut Dictionary, &Document)) {
    let target = match key {
        None => root,
        Some(key) => match doc.get_dictionary(root).and_then(|c| c.get(key)) {
            Ok(Object::Reference(id)) => *id,
            Ok(Object::Dictionary(_)) => root,
            _ => return,
        },
    };
    let Some(mut o) = doc.objects.remove(&target) else { return };
    let dict = match (key, target == root) {
        (Some(key), true) => o.as_dict_mut().and_then(|c| c.get_mut(key)).and_then(Object::as_dict_mut),
        _ => o.as_dict_mut(),
    };
    if let Ok(d) = dict {
        f(d, doc);
    }
    doc.objects.insert(target, o);
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigillum_testkit::pdf::{hostile, pdf};

    const MIB: usize = 1024 * 1024;

    fn run(bytes: &[u8]) -> Sanitized {
        sanitize(bytes, &Limits::default(), &Policy::default()).unwrap()
    }

    fn removed(s: &Sanitized) -> Vec<(RemovedKind, u32)> {
        s.removed.iter().map(|r| (r.kind, r.count)).collect()
    }

    fn contains(hay: &[u8], needle: &str) -> bool {
        hay.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    /// The sanitised document is a valid PDF of the same pages that no longer carries `gone`.
    fn rewritten_without(s: &Sanitized, gone: &[&str]) {
        assert!(s.changed);
        assert_eq!(inspect(&s.bytes, &Limits::default()).unwrap(), s.info);
        for g in gone {
            assert!(!contains(&s.bytes, g), "{g} is still in the sanitised document");
        }
        assert!(!run(&s.bytes).changed, "sanitising is idempotent");
    }

    #[test]
    fn a_clean_document_is_kept_byte_for_byte() {
        let clean = pdf(2);
        let s = run(&clean);
        assert_eq!((s.changed, s.removed.len(), s.info.pages.len()), (false, 0, 2));
        assert_eq!(s.bytes, clean);
        assert_eq!(s.info, inspect(&clean, &Limits::default()).unwrap());
    }

    #[test]
    fn signatures_already_in_the_upload_are_reported_not_removed() {
        let sig = b"<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached \
                    /ByteRange [0 10 20 30] /Contents <3082> >>"
            .to_vec();
        let field = b"<< /FT /Sig /T (Signature1) /V 5 0 R >>".to_vec();
        let signed = hostile::document("/AcroForm << /Fields [6 0 R] >>", "", vec![sig, field]);
        let s = run(&signed);
        assert_eq!(removed(&s), vec![(RemovedKind::InvalidatedSignatures, 1)]);
        assert!(!s.changed, "nothing was removed: the upload is kept as it is");
        assert_eq!(s.bytes, signed);
        // With active content beside it, both are reported.
        let mixed = hostile::document(
            "/AcroForm << /Fields [6 0 R] >> /OpenAction << /S /JavaScript /JS (app.alert(1)) >>",
            "",
            vec![
                b"<< /Type /DocTimeStamp /ByteRange [0 1 2 3] /Contents <00> >>".to_vec(),
                b"<< /FT /Sig /T (T) /V 5 0 R >>".to_vec(),
            ],
        );
        let s = run(&mixed);
        assert!(s.changed);
        assert_eq!(removed(&s).last(), Some(&(RemovedKind::InvalidatedSignatures, 1)), "{:?}", removed(&s));
        assert!(removed(&s).iter().any(|(k, _)| *k == RemovedKind::Javascript));
        assert_eq!(serde_json::to_value(RemovedKind::InvalidatedSignatures).unwrap(), "invalidated_signatures");
        // Our own clean documents carry none.
        assert!(run(&pdf(1)).removed.is_empty());
    }

    #[test]
    fn scripts_run_on_open_are_removed() {
        let s = run(&hostile::javascript_open_action());
        use RemovedKind::*;
        assert_eq!(removed(&s), [(Javascript, 2), (OpenAction, 1)]);
        rewritten_without(&s, &["/JavaScript", "/JS", "/OpenAction"]);
        assert_eq!(s.info.pages.len(), 1);
    }

    #[test]
    fn an_opening_view_stays_and_only_its_script_chain_goes() {
        let view = hostile::document("/OpenAction [3 0 R /Fit]", "", vec![]);
        assert_eq!(run(&view).bytes, view);
        let chained = hostile::document(
            "/OpenAction << /S /GoTo /D [3 0 R /Fit] /Next 5 0 R >>",
            "",
            vec![b"<< /S /JavaScript /JS (app.alert\\(7\\)) >>".to_vec()],
        );
        let s = run(&chained);
        assert_eq!(removed(&s), [(RemovedKind::Javascript, 1)]);
        rewritten_without(&s, &["/JavaScript"]);
        assert!(contains(&s.bytes, "/OpenAction"));
    }

    #[test]
    fn additional_actions_go_wherever_they_are() {
        let s = run(&hostile::page_additional_actions());
        use RemovedKind::*;
        assert_eq!(removed(&s), [(Javascript, 2), (AdditionalActions, 2), (Launch, 1)]);
        rewritten_without(&s, &["/AA", "/JavaScript", "/Launch", "cmd.exe"]);
    }

    #[test]
    fn a_launching_link_keeps_its_rectangle_but_loses_its_action_chain() {
        let s = run(&hostile::launch_annotation());
        use RemovedKind::*;
        assert_eq!(removed(&s), [(Javascript, 1), (Launch, 1)]);
        rewritten_without(&s, &["/Launch", "calc.exe", "/JavaScript"]);
        let doc = Document::load_mem(&s.bytes).unwrap();
        let page = doc.get_dictionary(doc.get_pages()[&1]).unwrap();
        let annots = page.get(b"Annots").unwrap().as_array().unwrap();
        assert_eq!(annots.len(), 1);
        let link = doc.get_dictionary(annots[0].as_reference().unwrap()).unwrap();
        assert_eq!(link.get(b"Subtype").unwrap().as_name().unwrap(), b"Link");
        assert!(!link.has(b"A"));
    }

    #[test]
    fn embedded_files_and_attachments_are_removed_once_each() {
        let s = run(&hostile::embedded_file());
        use RemovedKind::*;
        assert_eq!(removed(&s), [(EmbeddedFiles, 1), (FileAttachment, 1)]);
        rewritten_without(&s, &["/EmbeddedFile", "/FileAttachment", "payload.exe", "MZ"]);
    }

    #[test]
    fn xfa_is_removed() {
        let s = run(&hostile::xfa_form());
        assert_eq!(removed(&s), [(RemovedKind::Xfa, 1)]);
        rewritten_without(&s, &["/XFA", "/NeedsRendering", "xdp:xdp"]);
    }

    #[test]
    fn rich_media_and_screen_annotations_are_removed() {
        let s = run(&hostile::rich_media_annotation());
        use RemovedKind::*;
        assert_eq!(removed(&s), [(Multimedia, 1), (RichMedia, 1)]);
        rewritten_without(&s, &["/RichMedia", "/Screen", "/Rendition", "/EmbeddedFile", "FWS"]);
    }

    #[test]
    fn links_to_the_web_stay_unless_the_policy_removes_them() {
        let link = hostile::uri_link();
        let kept = run(&link);
        assert_eq!((kept.changed, kept.removed.len()), (false, 0));
        assert_eq!(kept.bytes, link);
        let s = sanitize(&link, &Limits::default(), &Policy { remove_uri: true }).unwrap();
        assert_eq!(removed(&s), [(RemovedKind::Uri, 1)]);
        assert!(!contains(&s.bytes, "example.org"));
    }

    #[test]
    fn active_content_nothing_refers_to_is_dropped_too() {
        // An orphaned script object: inert in readers, but never stored.
        let orphan = hostile::document("", "", vec![b"<< /S /JavaScript /JS (app.alert\\(6\\)) >>".to_vec()]);
        let s = run(&orphan);
        assert_eq!(removed(&s), [(RemovedKind::UnreachableObjects, 1)]);
        rewritten_without(&s, &["/JavaScript"]);
    }

    #[test]
    fn decompression_bombs_are_refused_not_expanded() {
        let small = Limits { max_stream_bytes: MIB, max_decompressed_bytes: 4 * MIB, ..Limits::default() };
        let none = Policy::default();
        // A content stream: measured after loading.
        assert_eq!(sanitize(&hostile::flate_bomb(3 * MIB), &small, &none), Err(PdfError::DecompressionBomb(MIB)));
        // An object stream: measured before lopdf would expand it.
        assert_eq!(
            sanitize(&hostile::object_stream_bombs(1, 2 * MIB), &small, &none),
            Err(PdfError::DecompressionBomb(MIB))
        );
        // Many streams, each within its bound, beyond the total.
        assert_eq!(
            sanitize(&hostile::object_stream_bombs(6, MIB - 4096), &small, &none),
            Err(PdfError::DecompressionBomb(4 * MIB))
        );
        assert_eq!(inspect(&hostile::flate_bomb(3 * MIB), &small), Err(PdfError::DecompressionBomb(MIB)));
        // Within the limits the same shapes are fine.
        assert!(!sanitize(&hostile::flate_bomb(MIB / 2), &small, &none).unwrap().changed);
        // The default bound: 64 MiB for one stream.
        assert_eq!(
            sanitize(&hostile::flate_bomb(65 * MIB), &Limits::default(), &none),
            Err(PdfError::DecompressionBomb(64 * MIB))
        );
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        assert_eq!(
            sanitize(&hostile::deep_nesting(10_000), &Limits::default(), &Policy::default()),
            Err(PdfError::TooDeep(64))
        );
        assert_eq!(inspect(&hostile::deep_nesting(65), &Limits::default()), Err(PdfError::TooDeep(64)));
        assert!(inspect(&hostile::deep_nesting(60), &Limits::default()).is_ok());
    }

    #[test]
    fn object_floods_are_refused() {
        let limits = Limits { max_objects: 500, ..Limits::default() };
        assert_eq!(
            sanitize(&hostile::many_objects(600), &limits, &Policy::default()),
            Err(PdfError::TooManyObjects(500))
        );
        assert_eq!(
            sanitize(&hostile::many_objects(200_000), &Limits::default(), &Policy::default()),
            Err(PdfError::TooManyObjects(200_000))
        );
        // Objects declared inside object streams count too.
        let limits = Limits { max_objects: 6, ..Limits::default() };
        assert_eq!(
            sanitize(&hostile::object_stream_bombs(3, 100), &limits, &Policy::default()),
            Err(PdfError::TooManyObjects(6))
        );
    }

    #[test]
    fn broken_encrypted_and_circular_files_are_refused() {
        let run = |b: &[u8]| sanitize(b, &Limits::default(), &Policy::default()).map(|s| s.changed);
        assert_eq!(run(&hostile::without_xref()), Err(PdfError::Malformed));
        assert_eq!(run(&hostile::truncated()), Err(PdfError::Malformed));
        assert_eq!(run(&hostile::kids_loop()), Err(PdfError::PageTreeLoop));
        assert_eq!(inspect(&hostile::kids_loop(), &Limits::default()), Err(PdfError::PageTreeLoop));
        assert_eq!(run(&hostile::encrypted()), Err(PdfError::Encrypted));
        assert_eq!(run(b"not a pdf"), Err(PdfError::NotPdf));
    }

    #[test]
    fn damaged_hostile_files_never_panic() {
        for good in [hostile::javascript_open_action(), hostile::embedded_file(), hostile::object_stream_bombs(2, 1000)]
        {
            for cut in (0..good.len()).step_by(11) {
                let _ = sanitize(&good[..cut], &Limits::default(), &Policy::default());
            }
            for i in (0..good.len()).step_by(5) {
                let mut bad = good.clone();
                bad[i] ^= 0x5a;
                let _ = sanitize(&bad, &Limits::default(), &Policy::default());
            }
        }
    }

    #[test]
    fn the_removed_list_reads_as_snake_case_json() {
        let r = vec![
            Removed { kind: RemovedKind::GoToRemote, count: 2 },
            Removed { kind: RemovedKind::SetOcgState, count: 1 },
        ];
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, r#"[{"kind":"go_to_remote","count":2},{"kind":"set_ocg_state","count":1}]"#);
        assert_eq!(serde_json::from_str::<Vec<Removed>>(&json).unwrap(), r);
    }
}
