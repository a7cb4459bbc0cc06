//! Stable replay of the `arena_open` fuzz target: every file of `fuzz/corpus/arena_open/`,
//! plus a deterministic sweep of corruptions of a valid arena image (every header and heap
//! state byte, and bytes all over the heap, set to 0x00 / 0xff / bit-flipped), through
//! the very function the fuzzer runs. Nothing may panic; the process must not fault.
//!
//! `SHMPROC_WRITE_CORPUS=1 cargo test --test fuzz_arena` rewrites the seed corpus.

use shmproc::fuzz::open_arena_bytes as fuzz_open_bytes;
use shmproc::shared::RawBlock;
use shmproc::{Arena, Lock};
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/arena_open")
}

/// Named objects in the valid image: enough that the directory grew twice (16 entries,
/// then 32, then 64).
const NAMES: usize = 30;

/// The bytes of a valid named arena with objects in it (a grown directory, a held lock,
/// an anonymous one), read back from /dev/shm.
fn valid_image() -> Vec<u8> {
    let name = format!("shmproc-fuzz-seed-{}", std::process::id());
    let arena = Arena::create(&name, shmproc::arena::MIN_SIZE as usize).unwrap();
    Lock::create(&arena, "lock").unwrap();
    RawBlock::create(&arena, "raw", 300).unwrap();
    for i in 0..NAMES - 2 {
        std::mem::forget(Lock::create(&arena, &format!("lock-{i:02}")).unwrap());
    }
    Lock::new_in(&arena).unwrap().acquire_forever();
    let bytes = std::fs::read(format!("/dev/shm/{name}")).unwrap();
    arena.unlink().unwrap();
    bytes
}

#[test]
fn replay_corpus() {
    let dir = corpus_dir();
    if std::env::var_os("SHMPROC_WRITE_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        let img = valid_image();
        let seeds: Vec<(&str, Vec<u8>)> = vec![
            ("valid", img.clone()),
            ("empty", vec![]),
            ("short", img[..100].to_vec()),
            ("header-only", img[..4096].to_vec()),
            ("no-data", img[..img.len() - 4096].to_vec()),
            ("zeros", vec![0; img.len()]),
            ("ones", vec![0xff; img.len()]),
        ];
        for (n, b) in seeds {
            std::fs::write(dir.join(n), b).unwrap();
        }
    }
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/arena_open exists") {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        fuzz_open_bytes(&bytes);
        n += 1;
    }
    assert!(n >= 5, "the seed corpus is missing ({n} files)");
}

#[test]
fn valid_image_opens_and_finds_its_objects() {
    let img = valid_image();
    // Through the fuzz body (must not panic) and through the public API.
    fuzz_open_bytes(&img);
    let fd = rustix::fs::memfd_create("t", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::io::write(&fd, &img).unwrap();
    let a = Arena::from_fd(fd).unwrap();
    let mut names: Vec<_> = a.objects().into_iter().map(|(n, _)| n).collect();
    names.sort();
    let mut want: Vec<String> = (0..NAMES - 2).map(|i| format!("lock-{i:02}")).collect();
    want.extend(["lock".to_string(), "raw".to_string()]);
    want.sort();
    assert_eq!(names, want);
}

#[test]
fn corruption_sweep_never_panics() {
    let img = valid_image();
    // The header and the metadata, the heap's state, then a byte in every 32 of the heap
    // (block tags, the tables, the objects' headers).
    let spots = (0..160)
        .chain(1024..1024 + 512)
        .chain((8192..img.len()).step_by(32));
    let mut opened = 0usize;
    let mut total = 0usize;
    for i in spots {
        for v in [0x00, 0xff, img[i] ^ 0x01, img[i] ^ 0x80, img[i] ^ 0x40] {
            if v == img[i] {
                continue;
            }
            let mut b = img.clone();
            b[i] = v;
            fuzz_open_bytes(&b);
            total += 1;
            let fd = rustix::fs::memfd_create("t", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
            rustix::io::write(&fd, &b).unwrap();
            if Arena::from_fd(fd).is_ok() {
                opened += 1;
            }
        }
    }
    // Some corruptions are harmless (a name byte, a lock word, padding) and open fine;
    // most of the header is checked and must be refused.
    assert!(total > 1000);
    assert!(opened < total, "no corruption was detected at all");
}
