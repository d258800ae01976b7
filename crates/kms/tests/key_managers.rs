//! One behavioural suite, run against every key-manager adapter: the local sealed keyring and a
//! real PKCS#11 token (SoftHSM2).

use std::sync::Arc;

use secrecy::SecretString;
use sigillum_crypto::{Dek, KeyManager, KeyManagerError};
use sigillum_kms::pkcs11::Pkcs11KeyManager;

async fn suite(km: Arc<dyn KeyManager>, tag: &str) {
    let org = format!("org:{tag}-{}", uuid_like());
    assert_eq!(km.current_kek(&org).await.unwrap(), None);
    let v1 = km.ensure_kek(&org).await.unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(km.ensure_kek(&org).await.unwrap(), v1, "ensure is idempotent");

    // Wrap/unwrap round trip; a modified wrapped key is refused.
    let dek = Dek::generate().unwrap();
    let w1 = km.wrap_dek(&v1, &dek).await.unwrap();
    assert_ne!(w1.wrapped.as_slice(), dek.expose_secret().as_slice());
    assert_eq!(w1.wrapped.len(), 40, "RFC 5649 wrap of 32 bytes");
    assert_eq!(km.unwrap_dek(&w1).await.unwrap().expose_secret(), dek.expose_secret());
    let mut bad = w1.clone();
    bad.wrapped[3] ^= 1;
    assert!(matches!(km.unwrap_dek(&bad).await, Err(KeyManagerError::Unwrap)));

    // Rotation: new version current, old one still unwraps.
    let v2 = km.rotate_kek(&org).await.unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(km.current_kek(&org).await.unwrap(), Some(v2.clone()));
    let w2 = km.wrap_dek(&v2, &dek).await.unwrap();
    assert_ne!(w1.wrapped, w2.wrapped);
    assert_eq!(km.unwrap_dek(&w1).await.unwrap().expose_secret(), dek.expose_secret());
    // A wrapped key presented as another version does not unwrap.
    let mislabelled = sigillum_crypto::WrappedDek { kek: v2.clone(), wrapped: w1.wrapped.clone() };
    assert!(km.unwrap_dek(&mislabelled).await.is_err());

    let listed: Vec<_> = km.list().await.unwrap().into_iter().filter(|k| k.key_id == org).collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().any(|k| k.version == 2 && k.current));
    assert!(listed.iter().any(|k| k.version == 1 && !k.current));

    // Another organisation's KEK does not open this one's DEKs.
    let other = km.ensure_kek(&format!("{org}-other")).await.unwrap();
    let foreign = sigillum_crypto::WrappedDek { kek: other, wrapped: w2.wrapped.clone() };
    assert!(km.unwrap_dek(&foreign).await.is_err());

    // Crypto-shredding: after destroy, nothing wrapped under any version unwraps.
    km.destroy_kek(&org).await.unwrap();
    assert!(km.unwrap_dek(&w1).await.is_err());
    assert!(km.unwrap_dek(&w2).await.is_err());
    assert_eq!(km.current_kek(&org).await.unwrap(), None);
    km.health().await.unwrap();

    // Signing keys: generated once, sign inside the key manager, verify with the public key.
    let sk = format!("pki:{tag}-{}", uuid_like());
    assert!(matches!(km.sign(&sk, b"x").await, Err(KeyManagerError::NotFound(_))));
    let info = km.ensure_signing_key(&sk).await.unwrap();
    assert_eq!(km.ensure_signing_key(&sk).await.unwrap(), info, "ensure is idempotent");
    assert!(info.spki_der.starts_with(&sigillum_crypto::P256_SPKI_PREFIX));
    let sig = km.sign(&sk, b"to be signed").await.unwrap();
    assert!(sigillum_crypto::ecdsa::p256_verify(&info.spki_der, b"to be signed", &sig));
    assert!(!sigillum_crypto::ecdsa::p256_verify(&info.spki_der, b"to be signed!", &sig));
    let other = km.ensure_signing_key(&format!("{sk}-other")).await.unwrap();
    assert_ne!(other.spki_der, info.spki_der);
    // Later signatures (the local keyring keeps the opened key) are fresh and by the same key.
    let again = km.sign(&sk, b"to be signed").await.unwrap();
    assert_ne!(again, sig, "ECDSA signatures are randomised");
    assert!(sigillum_crypto::ecdsa::p256_verify(&info.spki_der, b"to be signed", &again));
    let by_other = km.sign(&format!("{sk}-other"), b"m").await.unwrap();
    assert!(sigillum_crypto::ecdsa::p256_verify(&other.spki_der, b"m", &by_other));
    assert!(!sigillum_crypto::ecdsa::p256_verify(&info.spki_der, b"m", &by_other));
}

fn uuid_like() -> String {
    hex::encode(sigillum_crypto::random_array::<8>().unwrap())
}

#[tokio::test]
async fn local_keyring_suite() {
    let dir = tempfile::tempdir().unwrap();
    let km = sigillum_kms::open(&format!("local:{}", dir.path().join("keyring").display()), None, None).unwrap();
    assert_eq!(km.backend(), "local");
    suite(km, "local").await;
}

#[tokio::test]
async fn local_keyring_persists_is_sealed_and_needs_its_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring");
    let spec = format!("local:{}", path.display());
    let km = sigillum_kms::open(&spec, None, None).unwrap();
    let kek = km.ensure_kek("org:persist").await.unwrap();
    let dek = Dek::generate().unwrap();
    let w = km.wrap_dek(&kek, &dek).await.unwrap();
    drop(km);

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path.join("master.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let km = sigillum_kms::open(&spec, None, None).unwrap();
    assert_eq!(km.unwrap_dek(&w).await.unwrap().expose_secret(), dek.expose_secret());

    // Two handles on one keyring (two nodes): a signing key made by one, after the other has
    // signed with its own, signs in both, and both sign with the same key.
    let second = sigillum_kms::open(&spec, None, None).unwrap();
    let first_key = km.ensure_signing_key("pki:first").await.unwrap();
    km.sign("pki:first", b"warm").await.unwrap();
    let made_later = second.ensure_signing_key("pki:later").await.unwrap();
    let sig = km.sign("pki:later", b"m").await.unwrap();
    assert!(sigillum_crypto::ecdsa::p256_verify(&made_later.spki_der, b"m", &sig));
    let sig = second.sign("pki:first", b"m").await.unwrap();
    assert!(sigillum_crypto::ecdsa::p256_verify(&first_key.spki_der, b"m", &sig));

    // The keyring file never holds a KEK in the clear: no 32-byte window of it unwraps the DEK.
    let file = std::fs::read(path.join("keys.json")).unwrap();
    for win in file.windows(32) {
        assert!(sigillum_crypto::keys::kwp_unwrap(win, &w.wrapped).is_err());
    }
    // A different master key cannot open the keyring.
    let wrong = SecretString::from("11".repeat(32));
    assert!(sigillum_kms::open(&spec, Some(&wrong), None).is_err());
    // An explicit master key (SIGILLUM_MASTER_KEY) works for a fresh keyring.
    let dir2 = tempfile::tempdir().unwrap();
    let km2 = sigillum_kms::open(&format!("local:{}", dir2.path().display()), Some(&wrong), None).unwrap();
    km2.ensure_kek("org:x").await.unwrap();
    assert!(!dir2.path().join("master.key").exists());
}

#[tokio::test]
async fn local_keyring_concurrent_rotations_never_lose_a_version() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("local:{}", dir.path().display());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let km = sigillum_kms::open(&spec, None, None).unwrap();
        tasks.push(tokio::spawn(async move { km.rotate_kek("org:race").await.unwrap().version }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap());
    }
    versions.sort();
    assert_eq!(versions, (1..=8).collect::<Vec<_>>());
}

#[tokio::test]
async fn pkcs11_softhsm_suite() {
    let hsm = sigillum_testkit::softhsm();
    let km = sigillum_kms::open(&hsm.kms_spec(), None, Some(&hsm.pin)).unwrap();
    assert_eq!(km.backend(), "pkcs11");
    suite(km, "hsm").await;
}

#[tokio::test]
async fn pkcs11_kek_value_cannot_be_read_out_of_the_token() {
    let hsm = sigillum_testkit::softhsm();
    let cfg = sigillum_kms::pkcs11::Pkcs11Config::parse(hsm.kms_spec().strip_prefix("pkcs11:").unwrap()).unwrap();
    let km = Pkcs11KeyManager::open(&cfg, &hsm.pin).unwrap();
    let kek = km.ensure_kek("org:sealed").await.unwrap();
    let p = km.probe(&kek).await.unwrap();
    assert!(p.sensitive, "{p:?}");
    assert!(!p.extractable, "{p:?}");
    assert!(p.never_extractable, "{p:?}");
    assert!(!p.value_readable, "CKA_VALUE of the KEK was readable: {p:?}");
    assert!(!p.wrappable_out, "the KEK could be wrapped out of the token: {p:?}");
}

#[tokio::test]
async fn pkcs11_unknown_token_and_missing_pin_are_config_errors() {
    let hsm = sigillum_testkit::softhsm();
    let unknown = format!("pkcs11:module={};token=nope", hsm.module.display());
    assert!(matches!(sigillum_kms::open(&unknown, None, Some(&hsm.pin)), Err(KeyManagerError::Config(_))));
    assert!(matches!(sigillum_kms::open(&hsm.kms_spec(), None, None), Err(KeyManagerError::Config(_))));
    assert!(matches!(sigillum_kms::open("vault:x", None, None), Err(KeyManagerError::Config(_))));
}
