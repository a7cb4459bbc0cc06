//! One round of the segment-creation fault test, shared by `tests/lifecycle.rs` (its
//! assertions) and `tests/faults.rs` (its row of the table): a process creates
//! `SharedMemory` segments and named arenas in a loop and is SIGKILLed at a random
//! moment; whatever it left in /dev/shm must be whole (creation is atomic: every visible
//! file opens), and `cleanup_orphans` (both) must remove all of it while the live
//! process's segment and arena stay.

use shmproc::shared::SharedMemory;
use shmproc::{Arena, Lock};
use shmproc_testkit::fork;
use std::sync::atomic::{AtomicU64, Ordering};

/// What one kill left.
#[derive(Debug, Default)]
pub struct Left {
    /// Files of the dead creator found (whole or not).
    pub files: usize,
    /// Those that did not open whole.
    pub half_made: Vec<String>,
    /// Those `cleanup_orphans` did not remove.
    pub not_removed: Vec<String>,
    /// Whether the live process's segment and arena (names with `-live-`) are still there.
    pub live_kept: bool,
}

/// Kills the `k`-th creator (of those counted in `started`) after `spin` rounds of a
/// spin loop; names start with `prefix`; the caller made `{prefix}-live-*`.
pub fn kill_a_creator(prefix: &str, k: u64, spin: u64, started: &AtomicU64) -> Left {
    let child = {
        let prefix = prefix.to_string();
        fork(move || {
            started.fetch_add(1, Ordering::SeqCst);
            for i in 0.. {
                let seg = SharedMemory::create(Some(&format!("{prefix}-s{k}-{i}")), 8192).unwrap();
                seg.write(0, b"made").unwrap();
                let arena = Arena::create(&format!("{prefix}-a{k}-{i}"), 1 << 20).unwrap();
                drop(Lock::create(&arena, "lock").unwrap());
                if i % 2 == 0 {
                    seg.unlink().unwrap();
                    arena.unlink().unwrap();
                }
            }
        })
    };
    while started.load(Ordering::SeqCst) <= k {
        std::thread::yield_now();
    }
    for _ in 0..spin {
        std::hint::spin_loop();
    }
    assert_eq!(child.kill(), -libc::SIGKILL);
    let mut left = Left::default();
    for name in shm_files(prefix) {
        if name.contains("-live-") {
            continue;
        }
        left.files += 1;
        let whole = if name.contains(&format!("{prefix}-s")) {
            SharedMemory::open(&name).is_ok()
        } else {
            // The arena is whole; its lock, if the creator got that far, opens.
            Arena::open(&name).is_ok_and(|a| {
                let names = a.objects();
                names.len() <= 1 && (names.is_empty() || Lock::open(&a, "lock").is_ok())
            })
        };
        if !whole {
            left.half_made.push(name);
        }
    }
    shmproc::cleanup_orphans().unwrap();
    Arena::cleanup_orphans().unwrap();
    let after = shm_files(prefix);
    left.live_kept = after.iter().filter(|n| n.contains("-live-")).count() == 2;
    left.not_removed = after
        .into_iter()
        .filter(|n| !n.contains("-live-"))
        .collect();
    left
}

/// The names in /dev/shm that start with `prefix`.
pub fn shm_files(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.starts_with(prefix))
        .collect()
}
