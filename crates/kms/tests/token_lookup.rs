//! Finding the PKCS#11 token by its label, when the module was initialised before the token
//! could be read (its own process: SoftHSM2 is initialised once per process).
//!
//! SoftHSM2 reads its token directory at `C_Initialize`. A node that initialises while another
//! node rewrites the token file can miss the token; opening it must then look again with the
//! module initialised anew, and still fail clearly for a label that does not exist, without
//! finalising the module under another key manager of the same process.

use sigillum_crypto::{KeyManager, KeyManagerError};
use sigillum_kms::pkcs11::{Pkcs11Config, Pkcs11KeyManager};

#[tokio::test(flavor = "multi_thread")]
async fn a_token_missed_at_initialisation_is_found_by_looking_again() {
    let hsm = sigillum_testkit::softhsm();
    let config = |token: &str| Pkcs11Config { module: hsm.module.clone(), token: token.to_owned() };

    // The module is initialised here, while the second token does not exist yet.
    let first = Pkcs11KeyManager::open(&config(&hsm.token), &hsm.pin).unwrap();
    first.ensure_kek("org:first").await.unwrap();
    drop(first);

    let label = format!("late-{}", std::process::id());
    hsm.add_token(&label);
    let late = Pkcs11KeyManager::open(&config(&label), &hsm.pin).expect("the token created after initialisation");
    let kek = late.ensure_kek("org:late").await.unwrap();
    assert_eq!(kek.version, 1);
    // Both tokens are usable from the re-initialised module.
    let first = Pkcs11KeyManager::open(&config(&hsm.token), &hsm.pin).unwrap();
    assert_eq!(first.current_kek("org:first").await.unwrap().map(|k| k.version), Some(1));
    assert_eq!(first.current_kek("org:late").await.unwrap(), None, "keys stay in their own token");

    let started = std::time::Instant::now();
    match Pkcs11KeyManager::open(&config("no-such-token"), &hsm.pin) {
        Err(KeyManagerError::Config(m)) => assert!(m.contains("no PKCS#11 token labelled"), "{m}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a token that does not exist was opened"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "the lookup gives up");

    // Looking for a missing token must not finalise the module under key managers in use.
    let kek = first.ensure_kek("org:after-lookup").await.expect("the first token still works");
    let dek = sigillum_crypto::Dek::generate().unwrap();
    let wrapped = first.wrap_dek(&kek, &dek).await.unwrap();
    assert_eq!(first.unwrap_dek(&wrapped).await.unwrap().expose_secret(), dek.expose_secret());
    assert_eq!(late.current_kek("org:late").await.unwrap().map(|k| k.version), Some(1), "so does the late one");
}
