#![no_main]
//! Arbitrary bytes as an arena file: `Arena::from_fd` must return an error or a valid
//! arena, never panic or touch memory out of bounds; and whatever it accepts must be safe
//! to look objects up in.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shmproc::fuzz::open_arena_bytes(data);
});
