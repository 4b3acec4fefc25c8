//! Fuzz target: see `volley::fuzz::frame_decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| volley::fuzz::frame_decode(data));
