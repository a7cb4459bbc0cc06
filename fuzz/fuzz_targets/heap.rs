#![no_main]
//! Hostile heap state and blocks, then a script of alloc / free / grow / check / recover
//! operations, some killed part-way: errors, never a panic or an out-of-bounds access;
//! and while nothing hostile happened, a heap that checks and blocks that stay intact.
//! The corpus in `fuzz/corpus/heap/` is replayed on stable by
//! `shmproc::raw::heap::tests::fuzz_corpus_replays`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shmproc::raw::heap::fuzz::run(data);
});
