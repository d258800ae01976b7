//! ECDSA P-256 with SHA-256, the one signature algorithm of Sigillum's internal PKI (document
//! seal, timestamp authority, CA). Everything here delegates to aws-lc-rs; this module only fixes
//! the algorithm and converts between the encodings that key managers and CMS use.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING,
};
use der::asn1::UintRef;
use der::{Decode, Encode, Sequence};
use zeroize::Zeroizing;

use crate::CryptoError;

/// A P-256 private key as PKCS#8 DER (kept in zeroizing memory).
pub struct P256Pkcs8(pub Zeroizing<Vec<u8>>);

/// Generates a P-256 key pair; returns its PKCS#8 DER.
pub fn generate_p256() -> Result<P256Pkcs8, CryptoError> {
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
        .map_err(|_| CryptoError::Internal("ecdsa keygen"))?;
    Ok(P256Pkcs8(Zeroizing::new(doc.as_ref().to_vec())))
}

fn key_pair(pkcs8: &[u8]) -> Result<EcdsaKeyPair, CryptoError> {
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8).map_err(|_| CryptoError::Invalid("p256 key"))
}

/// DER SubjectPublicKeyInfo of the key in `pkcs8`.
pub fn p256_public_spki(pkcs8: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let kp = key_pair(pkcs8)?;
    let der = kp.public_key().as_der().map_err(|_| CryptoError::Internal("spki"))?;
    Ok(der.as_ref().to_vec())
}

/// Signs `message` (hashed with SHA-256 inside) and returns a DER `ECDSA-Sig-Value`.
pub fn p256_sign(pkcs8: &[u8], message: &[u8]) -> Result<Vec<u8>, CryptoError> {
    P256Signer::from_pkcs8(pkcs8)?.sign(message)
}

/// A parsed P-256 private key, for a key manager that signs with the same key many times (the
/// local keyring keeps one per signing key id instead of opening the PKCS#8 for every signature).
/// aws-lc-rs clears the private scalar when it is dropped.
pub struct P256Signer(EcdsaKeyPair);

impl P256Signer {
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, CryptoError> {
        key_pair(pkcs8).map(Self)
    }

    /// Signs `message` (hashed with SHA-256 inside) and returns a DER `ECDSA-Sig-Value`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let sig = self.0.sign(&SystemRandom::new(), message).map_err(|_| CryptoError::Internal("ecdsa sign"))?;
        Ok(sig.as_ref().to_vec())
    }
}

/// Verifies a DER ECDSA P-256/SHA-256 signature against an uncompressed public point or a
/// SubjectPublicKeyInfo.
pub fn p256_verify(public_key: &[u8], message: &[u8], signature_der: &[u8]) -> bool {
    let point = match public_key.strip_prefix(&crate::P256_SPKI_PREFIX[..]) {
        Some(p) => p,
        None => public_key,
    };
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point).verify(message, signature_der).is_ok()
}

#[derive(Sequence)]
struct EcdsaSigValue<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// Converts the fixed `r || s` form PKCS#11 returns (64 bytes for P-256) to DER.
pub fn fixed_to_der(rs: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if rs.len() != 64 {
        return Err(CryptoError::Invalid("ecdsa signature length"));
    }
    let (r, s) = rs.split_at(32);
    let v = EcdsaSigValue {
        r: UintRef::new(r).map_err(|_| CryptoError::Invalid("ecdsa r"))?,
        s: UintRef::new(s).map_err(|_| CryptoError::Invalid("ecdsa s"))?,
    };
    v.to_der().map_err(|_| CryptoError::Internal("ecdsa der"))
}

/// Checks that `der` is one well-formed `ECDSA-Sig-Value` (used by tests and verification).
pub fn is_der_signature(der: &[u8]) -> bool {
    EcdsaSigValue::from_der(der).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_encodings() {
        let key = generate_p256().unwrap();
        let spki = p256_public_spki(&key.0).unwrap();
        assert!(spki.starts_with(&crate::P256_SPKI_PREFIX));
        assert_eq!(spki.len(), 26 + 65);
        let sig = p256_sign(&key.0, b"message").unwrap();
        assert!(is_der_signature(&sig));
        assert!(p256_verify(&spki, b"message", &sig));
        assert!(p256_verify(&spki[26..], b"message", &sig));
        assert!(!p256_verify(&spki, b"messagf", &sig));
    }

    #[test]
    fn fixed_form_converts() {
        let mut rs = [0u8; 64];
        rs[0] = 0x80; // high bit: DER needs a leading zero
        rs[63] = 1;
        let der = fixed_to_der(&rs).unwrap();
        assert_eq!(&der[..5], &[0x30, 0x26, 0x02, 0x21, 0x00]);
        assert!(is_der_signature(&der));
        assert!(fixed_to_der(&rs[..63]).is_err());
    }
}
