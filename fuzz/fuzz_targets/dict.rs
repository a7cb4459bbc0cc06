#![no_main]
//! A dict over a private heap, then a script of inserts (values of any size), removes,
//! gets, read-modify-writes, popitems, clears, reserves, writers stopped after their k-th
//! write (a survivor repairs) and scribbles on the index, the entries and the state:
//! errors or misses, never a panic or an out-of-bounds access; and while nothing hostile
//! happened, a dict that matches a HashMap model with no block leaked.
//! The corpus in `fuzz/corpus/dict/` is replayed on stable by
//! `shmproc::raw::dict::tests::fuzz_corpus_replays`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shmproc::raw::dict::fuzz::run(data);
});
