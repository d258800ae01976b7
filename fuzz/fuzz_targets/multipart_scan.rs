//! The WAF reads upload forms from anyone, up to the file part (crates/edge/src/waf/multipart.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks a boundary length; the boundary is taken from the input itself, so
    // the fuzzer can make the body contain it.
    let Some((&n, rest)) = data.split_first() else { return };
    let n = usize::from(n % 16) + 1;
    if rest.len() < n {
        return;
    }
    let (boundary, body) = rest.split_at(n);
    if let Ok(boundary) = std::str::from_utf8(boundary) {
        sigillum_edge::waf::fuzz_multipart_scan(body, boundary);
    }
});
