//! `sigillum verify` reads files from anyone: signatures, CMS, certificates, CRLs, timestamps and
//! the attached audit trail are all parsed from the input. No input may panic it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sigillum_pdf::verify::verify(data, &[], 1_800_000_000);
    let _ = sigillum_pdf::verify::check_trail(data);
});
