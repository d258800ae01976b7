//! `POST /tsa` takes DER from anyone.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if sigillum_pdf::tsp::parse_request(data).is_err() {
        let _ = sigillum_pdf::tsp::rejection(&sigillum_pdf::tsp::TspError::BadRequest);
    }
    let _ = sigillum_pdf::tsp::token_from_response(data);
});
