//! Sigillum's domain core: identifiers, the ports the application depends on, and the use cases
//! built on them. Pure: no network, clock, filesystem or database here; adapters implement the
//! ports (`sigillum-store`, `sigillum-kms`) and the web tier calls the services.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock))]

pub mod accounts;
pub mod audit_log;
pub mod billing;
pub mod envelopes;
pub mod ids;
pub mod lifecycle;
pub mod pki;
pub mod ports;
pub mod request_context;
pub mod routing;
pub mod seal;
pub mod two_factor;
pub mod vault;
pub mod workflow;

pub use accounts::{AccountError, Accounts, AuthMethod, Principal};
pub use audit_log::{Actor, AuditError, AuditLog, ClientInfo, NewEvent, Recorded, Trail, TrailEvent};
pub use envelopes::{EnvelopeError, EnvelopeView, Envelopes};
pub use ids::{ApiKeyId, EnvelopeId, OrgId, UserId};
pub use ports::{BlobError, BlobStore, BlobStream, BlobWriter, Clock, RepoError, Repository};
pub use vault::{RewrapReport, Vault, VaultError};
pub use workflow::{Workflow, WorkflowConfig, WorkflowPorts};
