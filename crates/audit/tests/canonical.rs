//! The fast canonical encoding equals RFC 8785 as computed by a general JCS implementation, for
//! arbitrary events: any Unicode (controls, quotes, non-BMP, U+2028) in every string, any detail
//! keys, integers up to the limits.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sigillum_audit::event::{Actor, Commitment};
use sigillum_audit::{ActorKind, Detail, Device, DeviceKind, Event};

fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[ -~]{0,12}", Just("\u{2028}\"\\/\u{7f}\u{0}\u{1f}😀é".to_string())]
}

fn detail() -> impl Strategy<Value = Detail> {
    prop_oneof![
        any::<bool>().prop_map(Detail::Bool),
        any::<i64>().prop_map(Detail::Int),
        (-(1i64 << 53)..=(1i64 << 53)).prop_map(Detail::Int),
        text().prop_map(Detail::Text),
    ]
}

fn commitment() -> impl Strategy<Value = Option<Commitment>> {
    proptest::option::of(any::<[u8; 32]>().prop_map(Commitment))
}

prop_compose! {
    fn event()(
        kind in text(), time in text(), env in proptest::option::of(text()), id in proptest::option::of(text()),
        doc in proptest::option::of(text()), name in commitment(), email in commitment(), ip in commitment(),
        ua in commitment(), note in commitment(),
        device in proptest::option::of((text(), text())),
        details in proptest::collection::btree_map(prop_oneof![text(), "[a-z_]{1,8}"], detail(), 0..5),
    ) -> Event {
        Event {
            actor: Actor { email, id, kind: ActorKind::Recipient, name },
            details: details.into_iter().collect::<BTreeMap<_, _>>(),
            device: device.map(|(browser, os)| Device { browser, kind: DeviceKind::Tablet, os }),
            document_sha256: doc,
            envelope_id: env,
            ip,
            kind,
            note,
            time,
            user_agent: ua,
            v: 1,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn fast_canonical_bytes_are_rfc_8785(e in event()) {
        let unsafe_int = e.details.values().any(|d| matches!(d, Detail::Int(i) if i.unsigned_abs() > 1 << 53));
        match e.canonical_bytes() {
            Ok(bytes) => {
                prop_assert!(!unsafe_int);
                prop_assert_eq!(&bytes, &e.general_canonical_bytes().unwrap());
                prop_assert_eq!(Event::from_canonical(&bytes).unwrap(), e);
            }
            Err(_) => prop_assert!(unsafe_int, "only integers beyond ±2^53 are refused"),
        }
    }
}
