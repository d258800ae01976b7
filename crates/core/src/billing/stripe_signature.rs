//! Verifying Stripe's webhook signatures exactly as Stripe specifies them
//! (docs.stripe.com/webhooks#verify-manually): the `Stripe-Signature` header carries a timestamp
//! `t=` and one or more `v1=` signatures, each the hex HMAC-SHA256 of `"{t}.{raw body}"` under the
//! endpoint's secret (several while a secret is being rolled). Other schemes (`v0=`) are ignored.
//! A signature matches in constant time; the timestamp must lie within the tolerance of now, so a
//! captured delivery cannot be replayed later.

/// Stripe's own libraries default to five minutes.
pub const TOLERANCE_S: i64 = 300;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    #[error("the Stripe-Signature header has no v1 signature")]
    NoV1,
    #[error("the signature's timestamp is outside the tolerance")]
    Expired,
    #[error("no v1 signature matches the body")]
    Mismatch,
}

/// Checks `header` for `body` received at `now_unix_s`.
pub fn verify(header: Option<&str>, body: &[u8], secret: &[u8], now_unix_s: i64) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for item in header.split(',') {
        let (k, v) = item.trim().split_once('=').ok_or(SignatureError::Malformed)?;
        match k {
            "t" => {
                if timestamp.is_some() || v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(SignatureError::Malformed);
                }
                timestamp = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?);
            }
            "v1" => v1.push(v),
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if v1.is_empty() {
        return Err(SignatureError::NoV1);
    }
    if (now_unix_s - t).abs() > TOLERANCE_S {
        return Err(SignatureError::Expired);
    }
    let expected = mac(secret, t, body);
    // Every candidate is compared (no early exit on the first match's position).
    let mut matched = false;
    for candidate in v1 {
        if let Ok(bytes) = hex::decode(candidate) {
            matched |= sigillum_crypto::constant_time_eq(&bytes, &expected);
        }
    }
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// HMAC-SHA256 of `"{t}.{body}"`.
fn mac(secret: &[u8], t: i64, body: &[u8]) -> [u8; 32] {
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    sigillum_crypto::hmac_sha256(secret, &signed)
}

/// The header Stripe would send for `body` at `t`; Sigillum's own outgoing webhooks are signed
/// with it too (`Sigillum-Signature`).
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex::encode(mac(secret, t, body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid"}"#;
    const NOW: i64 = 1_796_410_800;

    /// Computed independently with Python's `hmac.new(secret, b"1796410800." + body, sha256)`.
    #[test]
    fn matches_an_independently_computed_signature() {
        let header = "t=1796410800,v1=da76e8c7f4510adb7a6b70c53c5a8ab380b28bcbf967aaa205794dd9282240a9";
        assert_eq!(verify(Some(header), BODY, SECRET, NOW), Ok(()));
        assert_eq!(sign(SECRET, NOW, BODY), header);
    }

    #[test]
    fn wrong_secret_tampered_body_and_missing_header_fail() {
        let header = sign(SECRET, NOW, BODY);
        assert_eq!(verify(Some(&header), BODY, b"whsec_other", NOW), Err(SignatureError::Mismatch));
        assert_eq!(
            verify(Some(&header), br#"{"id":"evt_1","type":"invoice.paid "}"#, SECRET, NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify(None, BODY, SECRET, NOW), Err(SignatureError::Missing));
        assert_eq!(verify(Some(""), BODY, SECRET, NOW), Err(SignatureError::Malformed));
        assert_eq!(verify(Some("v1=abcd"), BODY, SECRET, NOW), Err(SignatureError::Malformed));
        assert_eq!(verify(Some(&format!("t={NOW}")), BODY, SECRET, NOW), Err(SignatureError::NoV1));
        assert_eq!(verify(Some("t=-5,v1=00"), BODY, SECRET, NOW), Err(SignatureError::Malformed));
        assert_eq!(verify(Some(&format!("t={NOW},t={NOW},v1=00")), BODY, SECRET, NOW), Err(SignatureError::Malformed));
    }

    #[test]
    fn timestamps_outside_five_minutes_fail() {
        let old = sign(SECRET, NOW - 301, BODY);
        assert_eq!(verify(Some(&old), BODY, SECRET, NOW), Err(SignatureError::Expired));
        let edge = sign(SECRET, NOW - 300, BODY);
        assert_eq!(verify(Some(&edge), BODY, SECRET, NOW), Ok(()));
        let future = sign(SECRET, NOW + 301, BODY);
        assert_eq!(verify(Some(&future), BODY, SECRET, NOW), Err(SignatureError::Expired));
        // The timestamp is signed: moving it forward breaks the signature.
        let moved = old.replace(&format!("t={}", NOW - 301), &format!("t={NOW}"));
        assert_eq!(verify(Some(&moved), BODY, SECRET, NOW), Err(SignatureError::Mismatch));
    }

    #[test]
    fn any_of_several_v1_values_may_match_and_v0_is_ignored() {
        let good = sign(SECRET, NOW, BODY);
        let sig = good.split("v1=").nth(1).unwrap();
        let rolled = format!("t={NOW},v1={},v1={sig},v0={sig}", "0".repeat(64));
        assert_eq!(verify(Some(&rolled), BODY, SECRET, NOW), Ok(()));
        let only_v0 = format!("t={NOW},v0={sig}");
        assert_eq!(verify(Some(&only_v0), BODY, SECRET, NOW), Err(SignatureError::NoV1));
        let not_hex = format!("t={NOW},v1=zz{}", &sig[2..]);
        assert_eq!(verify(Some(&not_hex), BODY, SECRET, NOW), Err(SignatureError::Mismatch));
    }

    proptest::proptest! {
        /// Any header and body: an answer, never a panic (the header is outside input).
        #[test]
        fn arbitrary_headers_never_panic(header in ".{0,200}", body in proptest::collection::vec(0u8.., 0..64)) {
            let _ = verify(Some(&header), &body, SECRET, NOW);
        }

        /// Stripe's own header for any body verifies; any changed byte of the body does not.
        #[test]
        fn signed_bodies_verify_and_changed_ones_do_not(
            body in proptest::collection::vec(0u8.., 1..256),
            at in 0usize..256,
            flip in 1u8..,
        ) {
            let header = sign(SECRET, NOW, &body);
            proptest::prop_assert_eq!(verify(Some(&header), &body, SECRET, NOW), Ok(()));
            let mut changed = body.clone();
            let i = at % changed.len();
            changed[i] ^= flip;
            proptest::prop_assert_eq!(verify(Some(&header), &changed, SECRET, NOW), Err(SignatureError::Mismatch));
        }
    }
}
