//! The Ed25519 verification used for checkpoints against Project Wycheproof's vectors.

use sigillum_audit::checkpoint::ed25519_verify;

#[test]
fn wycheproof_ed25519() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ed25519_test.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut checked = 0;
    for group in v["testGroups"].as_array().unwrap() {
        let pk = hex::decode(group["publicKey"]["pk"].as_str().unwrap()).unwrap();
        let Ok(pk) = <[u8; 32]>::try_from(pk) else { continue };
        for t in group["tests"].as_array().unwrap() {
            let msg = hex::decode(t["msg"].as_str().unwrap()).unwrap();
            let sig = hex::decode(t["sig"].as_str().unwrap()).unwrap();
            let ok = ed25519_verify(&pk, &msg, &sig);
            match t["result"].as_str().unwrap() {
                "valid" => assert!(ok, "tcId {} should verify", t["tcId"]),
                "invalid" => assert!(!ok, "tcId {} should fail ({})", t["tcId"], t["comment"]),
                _ => {}
            }
            checked += 1;
        }
    }
    assert!(checked >= 140, "{checked}");
}
