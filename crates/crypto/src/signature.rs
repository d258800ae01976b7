//! Verifying the signatures of certificates, CRLs, OCSP responses and CMS signers that come from
//! outside Sigillum: an imported seal chain issued by the operator's CA, an external timestamp
//! authority's token, their revocation data. Sigillum itself signs only with ECDSA P-256 (see
//! [`crate::ecdsa`]); the CAs and TSAs of the world also use P-384, P-521, RSA and Ed25519.
//!
//! Callers name the X.509 signature algorithm by its OID and hand over the signer's DER
//! SubjectPublicKeyInfo; the key's type and curve come from the SPKI and must agree with the
//! algorithm. Everything is verified by aws-lc-rs. RSA keys must have at least 2048 bits; SHA-1,
//! RSASSA-PSS and the other legacy or rare combinations are refused (they verify as `false`).

use aws_lc_rs::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};
use der::asn1::{AnyRef, BitStringRef, ObjectIdentifier};
use der::{Decode, Sequence};

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_WITH_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// The hash a signature is made over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

/// A signature scheme, as X.509 and CMS name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// ECDSA, the signature a DER `ECDSA-Sig-Value`; the curve comes from the key.
    Ecdsa(Hash),
    /// RSASSA-PKCS1-v1_5.
    RsaPkcs1(Hash),
    Ed25519,
}

impl Scheme {
    /// The scheme of an X.509 `AlgorithmIdentifier` OID (`ecdsa-with-SHA256`,
    /// `sha256WithRSAEncryption`, `id-Ed25519`, ...).
    pub fn from_signature_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Some(match *oid {
            ECDSA_WITH_SHA256 => Scheme::Ecdsa(Hash::Sha256),
            ECDSA_WITH_SHA384 => Scheme::Ecdsa(Hash::Sha384),
            ECDSA_WITH_SHA512 => Scheme::Ecdsa(Hash::Sha512),
            SHA256_WITH_RSA => Scheme::RsaPkcs1(Hash::Sha256),
            SHA384_WITH_RSA => Scheme::RsaPkcs1(Hash::Sha384),
            SHA512_WITH_RSA => Scheme::RsaPkcs1(Hash::Sha512),
            ED25519 => Scheme::Ed25519,
            _ => return None,
        })
    }

    /// The scheme of a CMS `SignerInfo`, which may name only the key type (`rsaEncryption`) as
    /// its signature algorithm and the hash separately as its digest algorithm (RFC 5754 §3.2).
    pub fn from_cms(signature_oid: &ObjectIdentifier, digest_oid: &ObjectIdentifier) -> Option<Self> {
        if *signature_oid == RSA_ENCRYPTION {
            return hash_of(digest_oid).map(Scheme::RsaPkcs1);
        }
        Self::from_signature_oid(signature_oid)
    }
}

/// The hash named by a digest-algorithm OID (SHA-256, SHA-384, SHA-512).
pub fn hash_of(digest_oid: &ObjectIdentifier) -> Option<Hash> {
    Some(match *digest_oid {
        SHA256 => Hash::Sha256,
        SHA384 => Hash::Sha384,
        SHA512 => Hash::Sha512,
        _ => return None,
    })
}

impl Hash {
    /// The hash of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let algorithm = match self {
            Hash::Sha256 => &aws_lc_rs::digest::SHA256,
            Hash::Sha384 => &aws_lc_rs::digest::SHA384,
            Hash::Sha512 => &aws_lc_rs::digest::SHA512,
        };
        aws_lc_rs::digest::digest(algorithm, data).as_ref().to_vec()
    }
}

/// SHA-1 of `data`, only to recognise a certificate that an ESS signing-certificate (v1, RFC
/// 2634) names by its SHA-1 hash, as many timestamp authorities still do; never for a signature.
pub fn sha1_identifier(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data).as_ref().to_vec()
}

#[derive(Sequence)]
struct AlgorithmIdentifier<'a> {
    oid: ObjectIdentifier,
    parameters: Option<AnyRef<'a>>,
}

#[derive(Sequence)]
struct SubjectPublicKeyInfo<'a> {
    algorithm: AlgorithmIdentifier<'a>,
    subject_public_key: BitStringRef<'a>,
}

/// Checks `signature` over `message` by the key in `spki_der` with `scheme`. `false` for a wrong
/// signature, a key that does not fit the scheme, a key too weak, or anything malformed.
pub fn verify(scheme: Scheme, spki_der: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok(spki) = SubjectPublicKeyInfo::from_der(spki_der) else { return false };
    let Some(key) = spki.subject_public_key.as_bytes() else { return false };
    let curve = || spki.algorithm.parameters.and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    let algorithm: &'static dyn VerificationAlgorithm = match (scheme, spki.algorithm.oid) {
        (Scheme::Ecdsa(hash), EC_PUBLIC_KEY) => match (curve(), hash) {
            (Some(P256), Hash::Sha256) => &sig::ECDSA_P256_SHA256_ASN1,
            (Some(P256), Hash::Sha384) => &sig::ECDSA_P256_SHA384_ASN1,
            (Some(P256), Hash::Sha512) => &sig::ECDSA_P256_SHA512_ASN1,
            (Some(P384), Hash::Sha256) => &sig::ECDSA_P384_SHA256_ASN1,
            (Some(P384), Hash::Sha384) => &sig::ECDSA_P384_SHA384_ASN1,
            (Some(P384), Hash::Sha512) => &sig::ECDSA_P384_SHA512_ASN1,
            (Some(P521), Hash::Sha256) => &sig::ECDSA_P521_SHA256_ASN1,
            (Some(P521), Hash::Sha384) => &sig::ECDSA_P521_SHA384_ASN1,
            (Some(P521), Hash::Sha512) => &sig::ECDSA_P521_SHA512_ASN1,
            _ => return false,
        },
        (Scheme::RsaPkcs1(hash), RSA_ENCRYPTION) => match hash {
            Hash::Sha256 => &sig::RSA_PKCS1_2048_8192_SHA256,
            Hash::Sha384 => &sig::RSA_PKCS1_2048_8192_SHA384,
            Hash::Sha512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        },
        (Scheme::Ed25519, ED25519) => &sig::ED25519,
        _ => return false,
    };
    UnparsedPublicKey::new(algorithm, key).verify(message, signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p256_signatures_verify_and_the_scheme_must_fit_the_key() {
        let key = crate::ecdsa::generate_p256().unwrap();
        let spki = crate::ecdsa::p256_public_spki(&key.0).unwrap();
        let s = crate::ecdsa::p256_sign(&key.0, b"message").unwrap();
        assert!(verify(Scheme::Ecdsa(Hash::Sha256), &spki, b"message", &s));
        assert!(!verify(Scheme::Ecdsa(Hash::Sha256), &spki, b"massage", &s));
        assert!(!verify(Scheme::Ecdsa(Hash::Sha384), &spki, b"message", &s));
        assert!(!verify(Scheme::RsaPkcs1(Hash::Sha256), &spki, b"message", &s));
        assert!(!verify(Scheme::Ed25519, &spki, b"message", &s));
        assert!(!verify(Scheme::Ecdsa(Hash::Sha256), &spki[..spki.len() - 1], b"message", &s));
    }

    #[test]
    fn oids_name_schemes() {
        assert_eq!(Scheme::from_signature_oid(&ECDSA_WITH_SHA384), Some(Scheme::Ecdsa(Hash::Sha384)));
        assert_eq!(Scheme::from_cms(&RSA_ENCRYPTION, &SHA512), Some(Scheme::RsaPkcs1(Hash::Sha512)));
        assert_eq!(Scheme::from_cms(&SHA256_WITH_RSA, &SHA512), Some(Scheme::RsaPkcs1(Hash::Sha256)));
        // SHA-1 with RSA, and RSASSA-PSS: not accepted.
        assert_eq!(Scheme::from_signature_oid(&ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5")), None);
        assert_eq!(Scheme::from_signature_oid(&ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10")), None);
    }
}
