//! Fuzz target: see `volley::fuzz::roundtrip`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| volley::fuzz::roundtrip(data));
