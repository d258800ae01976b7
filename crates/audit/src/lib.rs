//! Sigillum's audit log, as pure functions: the event model and its canonical encoding, the RFC
//! 9162 Merkle tree with proof generation, an independent RFC 9162 proof verifier, and signed
//! checkpoints (C2SP tlog-checkpoint in a C2SP signed note, Ed25519). No I/O: storage, clocks and
//! randomness are the caller's.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock))]

pub mod checkpoint;
pub mod device;
pub mod event;
pub mod merkle;
pub mod verify;

pub use checkpoint::{verify_checkpoint, CheckpointError, LogSigner, TreeHead};
pub use device::{Device, DeviceKind};
pub use event::{
    ActorKind, CommittedEvent, Detail, Disclosed, Disclosure, Event, EventDraft, EventError, EventKind, Personal,
};
pub use merkle::{leaf_hash, node_hash, Frontier, Hash, LeafRange, NodeId};
pub use verify::{verify_consistency, verify_inclusion, ProofError};
