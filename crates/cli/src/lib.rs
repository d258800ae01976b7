//! The `sigillum` binary's library half: configuration, wiring of adapters into the application,
//! and the commands. `main.rs` only parses arguments and calls in here, so tests can drive the
//! same wiring the server uses.
#![forbid(unsafe_code)]
#![recursion_limit = "256"]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock))]

pub mod app;
pub mod backup;
pub mod config;
pub mod keys;
pub mod log;
pub mod residency;
pub mod serve;
pub mod verify;
