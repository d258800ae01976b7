//! CMS SignedData and timestamp tokens arrive inside documents and TSA responses.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = sigillum_pdf::cms::ParsedSignedData::parse(data) {
        let _ = p.check(&[0u8; 32]);
        let _ = p.econtent();
    }
    let _ = sigillum_pdf::tsp::check_token(data, &[0u8; 32]);
    let _ = sigillum_pdf::pki::parse_certificates(data);
});
