//! Model checks of the list (`shmproc::raw::list`): its seqlock read path against every
//! kind of writer (a reader sees an element whole, before or after, never a mix, even
//! when the writer frees the block it reads and the heap hands it out again), and the
//! lock + repair + settle path after a writer killed part-way through.
//!
//! Run: `RUSTFLAGS="--cfg shmproc_loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p loom-tests
//! --release --test list`.
//!
//! The blocks come from [`LoomBlocks`], a heap of loom atomics (the arena's heap is not
//! modelled: its words are plain atomics, and it has its own models in `heap.rs`). It
//! adds no synchronisation of its own (its bookkeeping sits in a std mutex that loom
//! does not see), and it hands a freed block out again at once (first fit), so a reader
//! that reads a block after the writer freed it reads what the next owner wrote: the
//! seqlock must throw that away.
#![cfg(shmproc_loom)]

use loom::sync::Arc;
use loom::thread;
use shmproc::raw::list::{CrashAfter, ListCore, ListError, ListGeometry, RawList};
use shmproc::raw::sync::liveness::{Liveness, Scripted};
use shmproc::SpinPolicy;

/// Runs `f` under loom with at most `bound` preemptions (fewer if `LOOM_MAX_PREEMPTIONS`
/// asks for fewer); returns how many interleavings it explored.
///
/// Each model runs its writer on the model's main thread and its reader on a spawned
/// one: with the reader on the main thread after the spawn, loom 0.7 explored a single
/// interleaving of these models (its DPOR missed the races of the main thread's reads
/// with a writer that only starts once the main thread blocks in `join`), and passed a
/// reader with its sequence check removed.
fn model(bound: usize, f: impl Fn() + Sync + Send + 'static) -> u64 {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = runs.clone();
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(b.preemption_bound.unwrap_or(3).min(bound));
    // The heap's lock (a loom mutex, `common::LoomBlocks`) adds branches to a reader
    // that spins until it falls back to the list's lock.
    b.max_branches = 10_000;
    b.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f()
    });
    let n = runs.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("{n} interleavings");
    n
}

mod common;
use common::LoomBlocks;

struct List {
    raw: RawList,
    blocks: LoomBlocks,
}

fn list(g: ListGeometry) -> Arc<List> {
    Arc::new(List {
        raw: RawList::new(g),
        blocks: LoomBlocks::new(96),
    })
}

impl List {
    fn core(&self, who: Scripted) -> ListCore<'_, LoomBlocks, Scripted> {
        let mut c = ListCore::new(&self.raw, &self.blocks, who).unwrap();
        // One optimistic read, then the lock: the model explores both paths.
        c.set_spin(SpinPolicy::rounds(1));
        c
    }
}

/// Two words per element, equal in a whole one: a torn copy has two different words.
fn pair(n: u64) -> [u64; 2] {
    [n, n]
}

fn pair_bytes(n: u64) -> Vec<u8> {
    big(n)
}

fn whole(v: [u64; 2]) -> u64 {
    assert_eq!(v[0], v[1], "torn element {v:?}");
    v[0]
}

/// A byte element of 16 bytes (a block of its own in a list with 8 bytes inline), both
/// halves equal.
fn big(n: u64) -> Vec<u8> {
    [n.to_le_bytes(), n.to_le_bytes()].concat()
}

fn whole_big(b: &[u8]) -> u64 {
    assert_eq!(b.len(), 16, "element of {} bytes", b.len());
    let (x, y) = b.split_at(8);
    assert_eq!(x, y, "torn element {b:?}");
    u64::from_le_bytes(x.try_into().unwrap())
}

/// `set` of a two-word element (staged past the end, copied in under the journal)
/// against a reader: the reader sees the old element or the new one.
#[test]
fn reader_sees_a_set_whole() {
    explores(model(3, || {
        let l = list(ListGeometry::fixed(16).unwrap());
        let c = l.core(Scripted::alive(1));
        c.push(&pair_bytes(1)).unwrap();
        let r = {
            let l = l.clone();
            thread::spawn(move || {
                let n = whole(l.core(Scripted::alive(3)).get_pod::<[u64; 2]>(-1).unwrap());
                assert!(n == 1 || n == 2, "element {n}");
            })
        };
        c.set(0, &pair_bytes(2)).unwrap();
        r.join().unwrap();
        assert_eq!(c.get_pod::<[u64; 2]>(0), Ok(pair(2)));
    }));
}

/// A model of a reader and a writer must explore their races.
fn explores(n: u64) {
    assert!(n > 10, "the model explored {n} interleavings only");
}

/// A writer pops the last element (freeing its block) and pushes another (which gets the
/// same block back, with new bytes); a reader of the last element sees one of the
/// elements whole, never the reused block's bytes mixed in.
#[test]
fn reader_of_a_freed_and_reused_block_sees_an_element_whole() {
    explores(model(3, || {
        let l = list(ListGeometry::bytes(8).unwrap());
        let c = l.core(Scripted::alive(1));
        c.push(&big(1)).unwrap();
        c.push(&big(2)).unwrap();
        let r = {
            let l = l.clone();
            thread::spawn(move || {
                let mut out = Vec::new();
                l.core(Scripted::alive(3)).get(-1, &mut out).unwrap();
                let n = whole_big(&out);
                assert!(n == 1 || n == 2 || n == 3, "element {n}");
            })
        };
        let mut out = Vec::new();
        c.pop_at(-1, &mut out).unwrap();
        assert_eq!(whole_big(&out), 2);
        c.push(&big(3)).unwrap();
        r.join().unwrap();
        let all = c.slice(&(..)).unwrap();
        assert_eq!(all.iter().map(|b| whole_big(b)).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(l.blocks.allocated(), 3, "a chunk and two element blocks");
    }));
}

/// An insert at the front shifts the elements up under the journal; a reader of a slice
/// sees the list before or after it, never an element doubled or lost.
#[test]
fn reader_sees_an_insert_whole() {
    explores(model(3, || {
        let l = list(ListGeometry::fixed(8).unwrap());
        let c = l.core(Scripted::alive(1));
        for n in [1u64, 2] {
            c.push(&n.to_le_bytes()).unwrap();
        }
        let r = {
            let l = l.clone();
            thread::spawn(move || {
                let seen = l.core(Scripted::alive(3)).slice_pod::<u64>(&(..)).unwrap();
                assert!(seen == [1, 2] || seen == [0, 1, 2], "{seen:?}");
            })
        };
        c.insert(0, &0u64.to_le_bytes()).unwrap();
        r.join().unwrap();
    }));
}

/// A writer is killed (stops for good, holding the lock) before its k-th store of an
/// insert, a pop or a set of byte elements with blocks of their own; a reader meanwhile
/// reads (falling back to the lock, taking it over and repairing when it must). Then the
/// list is as before or after the operation, with exactly the blocks it needs.
#[test]
fn killed_writer_is_repaired_by_the_next_locker() {
    #[derive(Clone, Copy, Debug)]
    enum Op {
        Insert,
        Pop,
        Set,
    }
    let mut total = 0;
    for op in [Op::Insert, Op::Pop, Op::Set] {
        // Some of the operation's stores (0 = before its first); the unit tests stop the
        // writer before each of them, in one thread.
        for k in [0u64, 2, 4, 7, 10, 13] {
            total += model(1, move || {
                let l = list(ListGeometry::bytes(8).unwrap());
                // Waiters look at the holder now and then, as real processes do.
                let team: Vec<_> = Scripted::team(2, false)
                    .iter()
                    .map(Scripted::watching)
                    .collect();
                let c = l.core(Scripted::alive(9));
                c.push(&big(1)).unwrap();
                c.push(&big(2)).unwrap();
                let before = vec![1, 2];
                let after = match op {
                    Op::Insert => vec![3, 1, 2],
                    Op::Pop => vec![1],
                    Op::Set => vec![3, 2],
                };
                let r = {
                    let (l, p) = (l.clone(), team[1].clone());
                    let (b, a) = (before[0], after[0]);
                    thread::spawn(move || {
                        let mut out = Vec::new();
                        l.core(p).get(0, &mut out).unwrap();
                        let n = whole_big(&out);
                        assert!(n == b || n == a, "{op:?} k={k}: {n}");
                    })
                };
                let hook = CrashAfter::new(k);
                let doomed = l.core(team[0].clone()).with_crash(&hook);
                let res = match op {
                    Op::Insert => doomed.insert(0, &big(3)),
                    Op::Pop => doomed.pop_at(-1, &mut Vec::new()),
                    Op::Set => doomed.set(0, &big(3)),
                };
                if hook.crashed() {
                    assert_eq!(res, Err(ListError::Crashed));
                    team[0].kill(team[0].me());
                } else {
                    res.unwrap();
                }
                r.join().unwrap();
                let survivor = l.core(team[1].clone());
                let audit = survivor.audit().unwrap();
                let now: Vec<u64> = survivor
                    .slice(&(..))
                    .unwrap()
                    .iter()
                    .map(|b| whole_big(b))
                    .collect();
                assert!(now == before || now == after, "{op:?} k={k}: {now:?}");
                assert_eq!(
                    l.blocks.allocated() as u64,
                    audit.chunks + audit.element_blocks,
                    "{op:?} k={k}: a block leaked or lost"
                );
                assert_eq!(audit.element_blocks, now.len() as u64);
                l.raw.finalize(&l.blocks);
                assert_eq!(l.blocks.allocated(), 0, "{op:?} k={k}: finalizer");
            });
        }
    }
    eprintln!("{total} interleavings in all");
    explores(total);
}
