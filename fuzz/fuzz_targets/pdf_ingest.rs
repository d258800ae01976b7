//! Every upload goes through the sanitiser: no input may panic it or make it allocate without
//! bound. Limits are smaller than the server's so the fuzzer explores more files per second.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigillum_pdf::{sanitize, Limits, Policy};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_bytes: 1 << 20,
        max_pages: 50,
        max_objects: 5_000,
        max_depth: 32,
        max_stream_bytes: 4 << 20,
        max_decompressed_bytes: 16 << 20,
    };
    if let Ok(clean) = sanitize(data, &limits, &Policy::default()) {
        // Whatever the sanitiser lets through is a PDF the rest of the pipeline can read.
        assert!(sigillum_pdf::inspect(&clean.bytes, &limits).is_ok(), "sanitised output is not readable");
    }
});
