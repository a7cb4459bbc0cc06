//! Model check of `raw::extent`: a process that learns an offset from a peer (published
//! with Release, as the metadata lock or a ring's stamp does) after the peer grew the file
//! for it may touch that offset: its view, refreshed through the published size, covers
//! it. The file's length is a sequentially consistent word (the kernel orders `ftruncate`
//! and `fstat` on one file).
//!
//! Run: `RUSTFLAGS="--cfg shmproc_loom -D warnings" CARGO_TARGET_DIR=target/loom cargo test
//! -p loom-tests --release --test extent`
#![cfg(shmproc_loom)]

use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;
use shmproc::raw::extent::{Extent, Seen};

const LIMIT: u64 = 1 << 20;

struct Shared {
    /// The file's length (what `fstat` reads, what `ftruncate` sets).
    file: AtomicU64,
    extent: Extent,
    /// An offset handed from the grower to the reader (0 = none yet).
    handoff: AtomicU64,
}

/// Grows the file from 4 KiB to 8 KiB, then 12 KiB, handing over an offset in the new
/// space each time; the reader (a process mapped at 4 KiB) must
/// see every offset it receives as accessible, and any size it sees published as backed
/// by the file.
#[test]
fn an_offset_received_after_a_growth_is_accessible() {
    loom::model(|| {
        let s = Arc::new(Shared {
            file: AtomicU64::new(4096),
            extent: Extent::new(4096),
            handoff: AtomicU64::new(0),
        });
        let seen = Arc::new(Seen::new(4096));
        let grower = {
            let s = s.clone();
            thread::spawn(move || {
                for size in [8192u64, 12288] {
                    s.file.store(size, Ordering::SeqCst); // ftruncate
                    s.extent.publish(size);
                    // Release: as the metadata lock's unlock publishes an object.
                    s.handoff.store(size - 64, Ordering::Release);
                }
            })
        };
        let readers: Vec<_> = (0..1)
            .map(|_| {
                let (s, seen) = (s.clone(), seen.clone());
                thread::spawn(move || {
                    // Acquire: as the metadata lock's lock, or a ring's stamp load.
                    let off = s.handoff.load(Ordering::Acquire);
                    if off != 0 {
                        let len = seen.get(&s.extent, || s.file.load(Ordering::SeqCst), LIMIT);
                        assert!(off + 64 <= len, "offset {off} past the view {len}");
                    }
                    // With no hand-off at all: a size seen published is backed by the
                    // file (the extent's own Release / Acquire pair).
                    let said = s.extent.said();
                    let len = seen.get(&s.extent, || s.file.load(Ordering::SeqCst), LIMIT);
                    assert!(len >= said, "published {said}, the file had {len}");
                })
            })
            .collect();
        grower.join().unwrap();
        for r in readers {
            r.join().unwrap();
        }
    });
}
