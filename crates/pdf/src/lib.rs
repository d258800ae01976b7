//! Sigillum's PDF pipeline, as pure functions over bytes: [`inspect`], which every upload goes
//! through before it becomes an envelope (is it a PDF we can work with, how many pages, how large
//! is each), and [`flatten`], which draws the signers' values into the final document. The
//! hostile-PDF sanitiser, previews, certificate pages, PAdES sealing and verification join here
//! with the PDF issue.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock))]

pub mod certificate;
pub mod cms;
pub mod final_document;
pub mod flatten;
pub mod inspect;
pub mod pades;
pub mod pki;
pub mod preview;
pub mod revocation;
pub mod sanitize;
pub mod script_font;
pub(crate) mod text_font;
pub mod tsp;
pub mod verify;

pub use flatten::{decode_png, flatten, Image, ImageError, Mark, MarkContent};
pub use inspect::{inspect, Limits, PageSize, PdfError, PdfInfo};
pub use sanitize::{sanitize, Policy, Removed, RemovedKind, Sanitized};
pub use script_font::ScriptFace;
pub use text_font::{fallback_faces, use_fallback_faces, FallbackFace};
