//! The request path must turn any header and body bytes into an outcome or
//! a request-level error code: never a panic. Input format: see
//! `trackgate::fuzzing::decode_request`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let out = trackgate::fuzzing::decode_request(data);
    // A refused request has no event outcomes.
    if out.error.is_some() {
        assert_eq!(out.accepted + out.rejected + out.dropped, 0);
    }
});
