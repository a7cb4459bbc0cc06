//! Model checks of `raw::heap`: allocators in several processes get disjoint blocks and
//! leave a heap that passes `check`; a process killed holding the heap lock part-way
//! through an operation (after its k-th shared write, for every k) is recovered by a
//! survivor, exactly once, with every earlier block intact.
//!
//! Run: `RUSTFLAGS="--cfg shmproc_loom -D warnings" CARGO_TARGET_DIR=target/loom cargo test
//! -p loom-tests --release --test heap`
#![cfg(shmproc_loom)]

use loom::sync::Arc;
use loom::thread;
use shmproc::raw::heap::{CrashAfter, HeapError, RawHeap, Region};
use shmproc::raw::sync::liveness::{Liveness, Scripted};

/// Bytes of the region; the heap covers `[START, LEN)`: room for a handful of blocks.
const LEN: u64 = 1024;
const START: u64 = 64;

/// The region's memory (plain, not modelled: the heap's words in it are written only
/// under the lock, whose orderings loom checks through the heap's `UnsafeCell`).
struct Mem {
    _buf: Vec<u128>,
    region: Region,
    heap: RawHeap,
}

fn mem() -> Arc<Mem> {
    let mut buf = vec![0u128; LEN as usize / 16];
    // SAFETY: the buffer lives in `Mem` with the region.
    let region = unsafe { Region::new(buf.as_mut_ptr().cast(), LEN) }.unwrap();
    let heap = RawHeap::new();
    heap.init(&region, START, LEN).unwrap();
    Arc::new(Mem {
        _buf: buf,
        region,
        heap,
    })
}

impl Mem {
    /// Bytes of the region: shared memory, seen through a shared handle.
    #[allow(clippy::mut_from_ref)]
    fn bytes(&self, p: u64, len: u64) -> &mut [u8] {
        assert!(p + len <= LEN);
        // SAFETY: in bounds; each block is written by the one thread it was given to.
        unsafe { std::slice::from_raw_parts_mut(self.region.base().add(p as usize), len as usize) }
    }

    /// Allocates, marks the block with `mark`, lets others run, checks the mark, frees.
    fn use_block(&self, who: &Scripted, size: u64, mark: u8) {
        let p = self.heap.alloc(&self.region, size, 16, who, None).unwrap();
        self.bytes(p, size).fill(mark);
        thread::yield_now();
        assert!(
            self.bytes(p, size).iter().all(|&b| b == mark),
            "block {p} was handed out twice"
        );
        self.heap.free(&self.region, p, who, None).unwrap();
    }
}

/// Processes `1..=n` sharing one view of who died; waiters check on the holder now and
/// then (a killed holder never wakes anyone).
fn procs(n: u32) -> Vec<Scripted> {
    Scripted::team(n, false)
        .iter()
        .map(Scripted::watching)
        .collect()
}

/// Runs `f` under loom with at most `bound` preemptions; returns the interleavings run.
fn model(bound: usize, f: impl Fn() + Sync + Send + 'static) -> u64 {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = runs.clone();
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(b.preemption_bound.map_or(bound, |p| p.min(bound)));
    b.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f()
    });
    let n = runs.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("{n} interleavings");
    n
}

/// Two processes allocate, mark, check and free at once (the first block's split leaves
/// the second a remainder); the heap ends as it began. Loom reports any access to the
/// heap's state that the lock does not order, and a lost wake-up as a deadlock.
#[test]
fn two_allocators_get_disjoint_blocks() {
    model(3, || {
        let m = mem();
        let ps = procs(2);
        let t = {
            let (m, p) = (m.clone(), ps[1].clone());
            thread::spawn(move || m.use_block(&p, 100, 0xBB))
        };
        m.use_block(&ps[0], 200, 0xAA);
        t.join().unwrap();
        let s = m.heap.check(&m.region, &ps[0], None).unwrap();
        assert_eq!((s.allocated_blocks, s.free_blocks), (0, 1));
    });
}

/// Three processes, one of which holds a block across the others' work.
#[test]
fn three_allocators_get_disjoint_blocks() {
    model(3, || {
        let m = mem();
        let ps = procs(3);
        let held = m.heap.alloc(&m.region, 64, 16, &ps[0], None).unwrap();
        m.bytes(held, 64).fill(0x11);
        let ts: Vec<_> = [(1, 0x22u8), (2, 0x33)]
            .into_iter()
            .map(|(i, mark)| {
                let (m, p) = (m.clone(), ps[i].clone());
                thread::spawn(move || m.use_block(&p, 80, mark))
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        assert!(m.bytes(held, 64).iter().all(|&b| b == 0x11));
        m.heap.free(&m.region, held, &ps[0], None).unwrap();
        let s = m.heap.check(&m.region, &ps[0], None).unwrap();
        assert_eq!((s.allocated_blocks, s.free_blocks), (0, 1));
    });
}

/// Which operation the doomed process runs.
#[derive(Clone, Copy, Debug)]
enum Doomed {
    Alloc,
    Free,
}

/// Process 2 runs an operation and is killed after its k-th shared write (for every k),
/// holding the lock; process 1 allocates and frees meanwhile; process 3 checks at the end.
/// Exactly one survivor repairs; the block allocated before is intact; nothing else is
/// allocated unless the operation had finished all but its release.
fn killed_mid_operation(op: Doomed) {
    let mut k = 0;
    loop {
        // Whether some interleaving of this k killed the process (else k is past the end).
        let any = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = any.clone();
        model(3, move || {
            let m = mem();
            let ps = procs(3);
            let kept = m.heap.alloc(&m.region, 48, 16, &ps[2], None).unwrap();
            m.bytes(kept, 48).fill(0x5A);
            // The free's victim; for the alloc, a block the others split around.
            let victim = m.heap.alloc(&m.region, 96, 16, &ps[2], None).unwrap();
            let doomed = {
                let (m, p) = (m.clone(), ps[1].clone());
                thread::spawn(move || {
                    let h = CrashAfter::new(k);
                    let r = match op {
                        Doomed::Alloc => m
                            .heap
                            .alloc_hooked(&m.region, 64, 16, false, &p, None, &h)
                            .map(drop),
                        Doomed::Free => m.heap.free_hooked(&m.region, victim, &p, None, &h),
                    };
                    if h.crashed() {
                        // Killed: the kernel reports it gone (procfs) to whoever asks.
                        p.kill(p.me());
                    } else {
                        r.unwrap();
                    }
                    (h.crashed(), h.dropped() == 1)
                })
            };
            m.use_block(&ps[0], 100, 0xC3);
            let (crashed, only_release_lost) = doomed.join().unwrap();
            seen.fetch_or(crashed, std::sync::atomic::Ordering::SeqCst);
            let s = m.heap.check(&m.region, &ps[2], None).unwrap();
            assert_eq!(
                s.recoveries,
                u64::from(crashed),
                "k={k}: one repair per death"
            );
            assert!(m.bytes(kept, 48).iter().all(|&b| b == 0x5A), "k={k}");
            // kept; the victim unless freed; the doomed alloc's block if it finished
            // (killed after every write but the lock's release).
            let finished = !crashed || only_release_lost;
            let want = match op {
                Doomed::Alloc => 2 + u64::from(finished),
                // The free's first write is its intent: from then on it is completed.
                Doomed::Free => 1 + u64::from(crashed && k == 0),
            };
            assert_eq!(s.allocated_blocks, want, "k={k} crashed={crashed}");
            assert!(m.heap.holder().is_none(), "k={k}");
            m.heap.free(&m.region, kept, &ps[2], None).unwrap();
            assert!(matches!(
                m.heap.free(&m.region, kept, &ps[2], None),
                Err(HeapError::DoubleFree { .. })
            ));
        });
        if !any.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        k += 1;
    }
    assert!(k >= 8, "{op:?}: only {k} writes");
}

#[test]
fn killed_in_alloc_is_recovered() {
    killed_mid_operation(Doomed::Alloc);
}

#[test]
fn killed_in_free_is_recovered() {
    killed_mid_operation(Doomed::Free);
}
