//! Fuzz target: see `volley::fuzz::connection`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| volley::fuzz::connection(data));
