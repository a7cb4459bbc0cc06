//! Model checks of a byte queue's messages longer than a slot (`shmproc::raw::slots`):
//! each slot has a block word naming the heap block of its message, written and read
//! only by the holder of the slot's claim; a block a dead party leaves is freed by the
//! next party to hold the slot, never twice, never while someone reads it.
//!
//! The handles' logic (`queue::bytes`) is replayed here over the ring of
//! `shmproc::raw::mpmc` and a heap of loom words (`common::LoomBlocks`), as
//! `tests/queue.rs` replays the queue's.
//!
//! Run with:
//! `RUSTFLAGS="--cfg shmproc_loom" cargo test -p loom-tests --release --test queue_blocks`
#![cfg(shmproc_loom)]

mod common;

use common::LoomBlocks;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;
use shmproc::raw::mpmc::{initial_stamp, Claim, Claimer, MpmcError, MpmcRing, Slots};
use shmproc::raw::owned::Blocks;
use shmproc::raw::sync::liveness::{Liveness, Scripted};
use shmproc::SpinPolicy;
use shmproc_testkit::loom::model;

/// A ring whose slots hold only a block word (every message here is "longer than the
/// slot"), over a heap of loom words.
struct Bq {
    ring: MpmcRing,
    stamps: Vec<AtomicU64>,
    words: Vec<AtomicU64>,
    table: Vec<Claimer>,
    heap: LoomBlocks,
}

impl Slots for Bq {
    fn capacity(&self) -> u64 {
        self.stamps.len() as u64
    }
    fn stamp(&self, index: u64) -> &AtomicU64 {
        &self.stamps[index as usize]
    }
    fn claimers(&self) -> &[Claimer] {
        &self.table
    }
}

const NEVER: SpinPolicy = SpinPolicy::NEVER;

impl Bq {
    fn new(cap: u64, team: &[Scripted]) -> Arc<Bq> {
        let q = Bq {
            ring: MpmcRing::new(),
            stamps: (0..cap).map(|i| AtomicU64::new(initial_stamp(i))).collect(),
            words: (0..cap).map(|_| AtomicU64::new(0)).collect(),
            table: (0..team.len()).map(|_| Claimer::new()).collect(),
            heap: LoomBlocks::new(32),
        };
        for who in team {
            assert!(q.me(who).take_for(who));
        }
        Arc::new(q)
    }

    fn me(&self, who: &Scripted) -> &Claimer {
        &self.table[who.me() as usize % self.table.len()]
    }

    fn word(&self, c: &Claim) -> &AtomicU64 {
        &self.words[c.index as usize]
    }

    /// A producer's put up to its publish: claims, frees what the slot's word still
    /// names (`free_from`, as `ByteQueue::put_indirect`), allocates the message's block
    /// into the word and writes the message.
    fn put_unpublished(&self, who: &Scripted, v: u64) -> Claim {
        let me = self.me(who).intent(0);
        let c = self
            .ring
            .push_claim(self, me, who, None, NEVER)
            .expect("put");
        self.heap.free_from(self.word(&c)).unwrap();
        let off = self.heap.alloc_into(self.word(&c), 16, 8, false).unwrap();
        // Relaxed: the claim orders it (the publish's Release, the consumer's Acquire).
        self.heap.words(off, 1).unwrap()[0].store(v, Ordering::Relaxed);
        c
    }

    fn put(&self, who: &Scripted, v: u64) {
        let c = self.put_unpublished(who, v);
        self.ring.publish(self, c);
    }

    /// A consumer's claim of the next message, its block read; a skipped slot (a dead
    /// producer's) has its block freed and is passed (as `Core::pop_message_with`).
    fn take(&self, who: &Scripted) -> Option<(Claim, u64)> {
        let me = self.me(who).intent(0);
        loop {
            match self.ring.pop_claim(self, me, who, None, NEVER) {
                Ok(c) if c.is_skip() => {
                    // Relaxed: the claim's Acquire orders the dead producer's writes.
                    if self.word(&c).load(Ordering::Relaxed) != 0 {
                        self.heap.free_from(self.word(&c)).unwrap();
                    }
                    self.ring.release(self, c);
                }
                Ok(c) => {
                    // Relaxed: ordered by the claim (see `put_unpublished`).
                    let off = self.word(&c).load(Ordering::Relaxed);
                    assert!(self.heap.block_len(off).unwrap() >= 8, "a freed block read");
                    let v = self.heap.words(off, 1).unwrap()[0].load(Ordering::Relaxed);
                    return Some((c, v));
                }
                Err(MpmcError::Closed) => return None,
                Err(e) => panic!("get: {e:?}"),
            }
        }
    }

    fn get(&self, who: &Scripted) -> Option<u64> {
        let (c, v) = self.take(who)?;
        self.heap.free_from(self.word(&c)).unwrap();
        self.ring.release(self, c);
        Some(v)
    }
}

/// Processes 1..=n that watch each other.
fn team(n: u32) -> Vec<Scripted> {
    Scripted::team(n, true)
        .into_iter()
        .map(|s| s.watching())
        .collect()
}

/// Process 1 allocates its message's block for its slot and dies before publishing;
/// process 2 puts 7 and closes; process 3 takes what there is. The consumer that passes
/// the skipped slot frees the dead producer's block; 7 arrives; no block is left.
///
/// Planted bug (caught, 2026-12-07): a consumer that releases a skipped slot without
/// freeing its word leaves one block allocated.
#[test]
fn a_dead_producers_block_is_freed_by_the_consumer_that_passes_it() {
    model(2, || {
        let ps = team(3);
        let q = Bq::new(2, &ps);
        let dying = {
            let (q, me) = (q.clone(), ps[0].clone());
            thread::spawn(move || {
                let _claim = q.put_unpublished(&me, 5);
                me.kill(1); // stops for ever: never publishes
            })
        };
        let consumer = {
            let (q, me) = (q.clone(), ps[2].clone());
            thread::spawn(move || (q.get(&me), q.get(&me)))
        };
        dying.join().unwrap();
        q.put(&ps[1], 7);
        q.ring.close(&*q);
        let got = consumer.join().unwrap();
        assert_eq!(got, (Some(7), None));
        assert_eq!(q.ring.skipped(), 1);
        assert_eq!(q.heap.allocated(), 0, "a block outlived its message");
    });
}

/// Process 1 takes the one message of a 1-slot ring (its block read) and dies before
/// freeing it or releasing the slot; process 2 puts again, which needs the slot: the
/// claim is ended for the dead consumer (its message lost, counted) by process 2 or by
/// process 3 (which waits for a message), and process 2 frees the block the slot still
/// names before it allocates its own. Process 3 gets the new message; no block is left.
///
/// Planted bug (caught, 2026-12-07): a producer that allocates over the word without
/// freeing what it names leaves the lost message's block allocated.
#[test]
fn a_dead_consumers_block_is_freed_by_the_next_producer() {
    model(2, || {
        let ps = team(3);
        let q = Bq::new(1, &ps);
        q.put(&ps[1], 5);
        let dying = {
            let (q, me) = (q.clone(), ps[0].clone());
            thread::spawn(move || {
                let (_claim, v) = q.take(&me).unwrap();
                me.kill(1); // holds the message for ever
                v
            })
        };
        assert_eq!(dying.join().unwrap(), 5);
        let consumer = {
            let (q, me) = (q.clone(), ps[2].clone());
            thread::spawn(move || q.get(&me))
        };
        q.put(&ps[1], 6);
        assert_eq!(consumer.join().unwrap(), Some(6));
        assert_eq!(q.ring.lost(), 1);
        assert_eq!(q.heap.allocated(), 0, "a block outlived its message");
    });
}
