#![no_main]
//! Placeholder: filled by the owner of the pipe.
libfuzzer_sys::fuzz_target!(|_data: &[u8]| {});
