//! Sigillum's PDF pipeline, as pure functions over bytes. Today: [`inspect`], which every upload
//! goes through before it becomes an envelope (is it a PDF we can work with, how many pages, how
//! large is each). The hostile-PDF sanitiser, previews, flattening, certificate pages, PAdES
//! sealing and verification join here with the PDF issue; `inspect` is the seam they extend.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock))]

pub mod inspect;

pub use inspect::{inspect, Limits, PageSize, PdfError, PdfInfo};
