//! Storage adapters for the core's ports: the metadata repository on SQLite (embedded default)
//! or PostgreSQL (several nodes), the audit log beside it, and the blob store on a local directory
//! or S3.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock))]

mod accounts;
mod audit;
pub mod backup;
mod billing;
pub mod blobs;
mod envelopes;
mod inline;
pub mod liveness;
pub mod notify;
mod pki;
mod recipients;
mod signing;
pub mod sql;

pub use blobs::open_blob_store;
pub use sql::SqlRepository;
