#![no_main]
//! Hostile ring indices and frame headers: errors, never out-of-bounds access.
//! The corpus in `fuzz/corpus/pipe_ring/` is replayed on stable by
//! `shmproc::pipe::tests::fuzz_corpus_replays`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shmproc::pipe::fuzz::ring(data);
});
