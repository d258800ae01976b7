//! Key-manager adapters behind the [`KeyManager`] port of `sigillum-crypto`:
//!
//! - `local:DIR` — a sealed keyring file; KEKs sealed under a master key from
//!   `SIGILLUM_MASTER_KEY` or a generated 0600 key file. The embedded default.
//! - `pkcs11:module=…;token=…` — KEKs generated inside a PKCS#11 token (an HSM; SoftHSM2 in
//!   tests) as non-extractable, sensitive AES keys; DEK wrap and unwrap run inside the token.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock))]

pub mod local;
pub mod pkcs11;

use std::path::Path;
use std::sync::Arc;

use secrecy::SecretString;
pub use sigillum_crypto::{KekInfo, KeyManager, KeyManagerError};

/// Opens the key manager named by a `SIGILLUM_KMS` value.
pub fn open(
    spec: &str,
    master_key: Option<&SecretString>,
    pkcs11_pin: Option<&SecretString>,
) -> Result<Arc<dyn KeyManager>, KeyManagerError> {
    if let Some(dir) = spec.strip_prefix("local:") {
        Ok(Arc::new(local::LocalKeyring::open(Path::new(dir), master_key)?))
    } else if let Some(params) = spec.strip_prefix("pkcs11:") {
        let cfg = pkcs11::Pkcs11Config::parse(params)?;
        let pin =
            pkcs11_pin.ok_or_else(|| KeyManagerError::Config("SIGILLUM_PKCS11_PIN is required for pkcs11".into()))?;
        Ok(Arc::new(pkcs11::Pkcs11KeyManager::open(&cfg, pin)?))
    } else {
        Err(KeyManagerError::Config("SIGILLUM_KMS must start with local: or pkcs11:".into()))
    }
}

fn now_unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
