//! Model checks of the queue ring (`shmproc::raw::mpmc`): claims, publish / release,
//! close, the sleep / wake handshake and the JoinableQueue task counter.
//!
//! Run with:
//! `RUSTFLAGS="--cfg shmproc_loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p loom-tests --release --test queue`
#![cfg(shmproc_loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;
use shmproc::raw::mpmc::{initial_stamp, Claim, MpmcError, MpmcRing, Slots};
use shmproc::SpinPolicy;
use shmproc_testkit::loom::model;
use std::time::Instant;

/// A ring with its slots: stamps and a `u64` payload per slot, in loom cells so that the
/// model checks that a payload access never races with another.
struct Q {
    ring: MpmcRing,
    stamps: Vec<AtomicU64>,
    data: Vec<UnsafeCell<u64>>,
}

impl Slots for Q {
    fn capacity(&self) -> u64 {
        self.stamps.len() as u64
    }
    fn stamp(&self, index: u64) -> &AtomicU64 {
        &self.stamps[index as usize]
    }
}

const NEVER: SpinPolicy = SpinPolicy::NEVER;

impl Q {
    fn new(cap: u64) -> Arc<Q> {
        Arc::new(Q {
            ring: MpmcRing::new(),
            stamps: (0..cap).map(|i| AtomicU64::new(initial_stamp(i))).collect(),
            data: (0..cap).map(|_| UnsafeCell::new(0)).collect(),
        })
    }

    fn write(&self, c: Claim, v: u64) {
        // SAFETY: the claim makes this thread the slot's only user (checked by loom).
        self.data[c.index as usize].with_mut(|p| unsafe { *p = v });
        self.ring.publish(self, c);
    }

    fn read(&self, c: Claim) -> u64 {
        // SAFETY: as in `write`.
        let v = self.data[c.index as usize].with(|p| unsafe { *p });
        self.ring.release(self, c);
        v
    }

    /// Blocking put; false if closed.
    fn put(&self, v: u64) -> bool {
        match self.ring.push_claim(self, None, NEVER) {
            Ok(c) => {
                self.write(c, v);
                true
            }
            Err(MpmcError::Closed) => false,
            Err(e) => panic!("put: {e:?}"),
        }
    }

    /// Blocking put of nothing (a dropped put loan): the slot is published skipped.
    fn put_skip(&self) {
        let c = self.ring.push_claim(self, None, NEVER).expect("put_skip");
        self.ring.publish_skip(self, c);
    }

    /// Blocking get, passing over skipped slots; None if closed and drained.
    fn get(&self) -> Option<u64> {
        loop {
            match self.ring.pop_claim(self, None, NEVER) {
                Ok(c) if c.is_skip() => self.ring.release(self, c),
                Ok(c) => return Some(self.read(c)),
                Err(MpmcError::Closed) => return None,
                Err(e) => panic!("get: {e:?}"),
            }
        }
    }

    fn try_get(&self) -> Result<u64, MpmcError> {
        self.ring.try_pop_claim(self).map(|c| {
            assert!(!c.is_skip(), "no model publishes skipped slots here");
            self.read(c)
        })
    }
}

// Preemption bounds (`shmproc_testkit::loom::model`, at most the bound given, fewer if
// `LOOM_MAX_PREEMPTIONS` says fewer): 3 for the models of two threads; 2 for those with
// three threads that all block, so the file stays well under a minute (both planted bugs
// of their time, a missing fence in `publish` and a Relaxed publish, were caught at it);
// 1 for the model with four threads (with 2 it runs for tens of minutes).

/// One producer, one consumer, capacity 2, three messages: wrap-around, both sides sleep
/// (full and empty), FIFO, no loss, no lost wake-up (loom reports a deadlock otherwise).
#[test]
fn spsc_blocking_wraps_in_order() {
    model(3, || {
        let q = Q::new(2);
        let p = {
            let q = q.clone();
            thread::spawn(move || {
                for v in 1..=3 {
                    assert!(q.put(v));
                }
            })
        };
        for v in 1..=3 {
            assert_eq!(q.get(), Some(v));
        }
        p.join().unwrap();
        assert_eq!(q.try_get(), Err(MpmcError::Empty));
    });
}

/// Dropped put loans publish their slots skipped (the mark in the stamp): across the wrap
/// of a 2-slot ring the consumer passes over both and gets the two messages in order;
/// the producer, a lap ahead, treats a skipped, unconsumed slot as full, never as corrupt.
#[test]
fn skipped_slots_are_passed_over() {
    model(3, || {
        let q = Q::new(2);
        let p = {
            let q = q.clone();
            thread::spawn(move || {
                q.put_skip();
                assert!(q.put(1));
                q.put_skip();
                assert!(q.put(2));
            })
        };
        assert_eq!(q.get(), Some(1));
        assert_eq!(q.get(), Some(2));
        p.join().unwrap();
        assert_eq!(q.try_get(), Err(MpmcError::Empty));
    });
}

/// Two producers and a blocking consumer, capacity 1 (every put wraps); the last producer
/// to finish closes: every message exactly once, and the consumer sees `Closed` only after
/// all of them.
#[test]
fn mpsc_close_drains_every_message() {
    model(2, || {
        let q = Q::new(1);
        let done = Arc::new(AtomicU64::new(0));
        let producers: Vec<_> = (1..=2u64)
            .map(|p| {
                let (q, done) = (q.clone(), done.clone());
                thread::spawn(move || {
                    assert!(q.put(p));
                    if done.fetch_add(1, Ordering::AcqRel) == 1 {
                        q.ring.close(&*q);
                    }
                })
            })
            .collect();
        let mut got = Vec::new();
        while let Some(v) = q.get() {
            got.push(v);
        }
        got.sort();
        assert_eq!(got, vec![1, 2]);
        for p in producers {
            p.join().unwrap();
        }
    });
}

/// Two producers and two consumers (the main thread is a producer) on a 1-slot ring: each
/// consumer blocks for one message, each producer puts one (the second waits for the
/// first to be taken). Both messages arrive exactly once and no sleeper is left asleep:
/// the claim-time wake-up (`registered`) and the naps of waiters that registered after
/// the claim they wait for, with several parties on each side.
///
/// At most 1 preemption. The main thread is the second producer, after the other three
/// started: until 2026-12 it was the second consumer, with the two producers started
/// first, which took 65 s alone (137 s on a busy machine, where this shape took 28 s).
/// Planted bugs, each caught by this shape (re-checked 2026-12-07): no fence before the
/// claimer's look under loom (`registered`), a waiter that sleeps instead of napping, no
/// fence in the waiter (`wait_for`), a Relaxed publish.
#[test]
fn mpmc_two_by_two() {
    model(1, || {
        let q = Q::new(1);
        let producer = {
            let q = q.clone();
            thread::spawn(move || assert!(q.put(2)))
        };
        let consumers = consumers(&q, 2);
        assert!(q.put(1));
        producer.join().unwrap();
        assert_eq!(joined(consumers), vec![Some(1), Some(2)]);
        assert_eq!(q.try_get(), Err(MpmcError::Empty));
    });
}

/// `n` threads, each blocking for one message of `q`.
fn consumers(q: &Arc<Q>, n: usize) -> Vec<thread::JoinHandle<Option<u64>>> {
    (0..n)
        .map(|_| {
            let q = q.clone();
            thread::spawn(move || q.get())
        })
        .collect()
}

/// What the `consumers` got, sorted.
fn joined(consumers: Vec<thread::JoinHandle<Option<u64>>>) -> Vec<Option<u64>> {
    let mut got: Vec<_> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
    got.sort();
    got
}

/// Two consumers sleep on an empty ring; one message, then close: exactly one consumer
/// gets the message, the other is woken by the close (no lost wake-up, no duplicate).
#[test]
fn spmc_one_message_then_close_wakes_both() {
    model(2, || {
        let q = Q::new(1);
        let consumers = consumers(&q, 2);
        assert!(q.put(1));
        q.ring.close(&*q);
        let got = joined(consumers);
        assert_eq!(got, vec![None, Some(1)]);
    });
}

/// Two consumers sleep on an empty ring; two messages: each consumer gets one. A signal
/// is not addressed (`Waiters`): the first publish may signal while both sleep, the
/// second finds a consumer that took the first signal's place, or none left waiting; no
/// interleaving leaves a consumer asleep with a message in the ring.
#[test]
fn two_sleeping_consumers_two_messages() {
    model(2, || {
        let q = Q::new(2);
        let consumers = consumers(&q, 2);
        assert!(q.put(1));
        assert!(q.put(2));
        let got = joined(consumers);
        assert_eq!(got, vec![Some(1), Some(2)]);
    });
}

/// A producer sleeping on a full ring is woken by `close` and gets `Closed`; the message
/// already in the ring is still delivered.
#[test]
fn close_wakes_blocked_producer() {
    model(3, || {
        let q = Q::new(1);
        assert!(q.put(1));
        let p = {
            let q = q.clone();
            thread::spawn(move || q.put(2))
        };
        q.ring.close(&*q);
        assert!(!p.join().unwrap());
        assert_eq!(q.get(), Some(1));
        assert_eq!(q.get(), None);
    });
}

/// A timed get either takes the message or times out; a timed-out get loses nothing.
#[test]
fn timed_get_loses_nothing() {
    model(3, || {
        let q = Q::new(2);
        let p = {
            let q = q.clone();
            thread::spawn(move || assert!(q.put(7)))
        };
        let first = match q.ring.pop_claim(&*q, Some(Instant::now()), NEVER) {
            Ok(c) => Some(q.read(c)),
            Err(MpmcError::Empty) => None,
            Err(e) => panic!("{e:?}"),
        };
        p.join().unwrap();
        match first {
            Some(v) => assert_eq!(v, 7),
            None => assert_eq!(q.try_get(), Ok(7)),
        }
        assert_eq!(q.try_get(), Err(MpmcError::Empty));
    });
}

/// JoinableQueue: `join` returns only after the worker's `task_done`, and sees the work
/// the worker did before it.
#[test]
fn join_waits_for_task_done() {
    model(3, || {
        let q = Q::new(2);
        let work = Arc::new(UnsafeCell::new(0u64));
        let w = {
            let (q, work) = (q.clone(), work.clone());
            thread::spawn(move || {
                let v = q.get().unwrap();
                // SAFETY: only this thread writes, before task_done; main reads after join.
                work.with_mut(|p| unsafe { *p = v * 2 });
                q.ring.task_done().unwrap();
            })
        };
        q.ring.task_add();
        assert!(q.put(21));
        assert!(q.ring.join(None, NEVER));
        // SAFETY: join happens after the worker's write (Release in task_done).
        assert_eq!(work.with(|p| unsafe { *p }), 42);
        assert!(q.ring.task_done().is_err());
        w.join().unwrap();
    });
}
