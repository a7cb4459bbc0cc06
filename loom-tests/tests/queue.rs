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
use shmproc::raw::mpmc::{initial_stamp, intent_of, Claim, Claimer, MpmcError, MpmcRing, Slots};
use shmproc::raw::sync::liveness::{Liveness, Scripted};
use shmproc::raw::Side;
use shmproc::SpinPolicy;
use shmproc_testkit::loom::model;
use std::time::Instant;

/// A ring with its slots: stamps and a `u64` payload per slot, in loom cells so that the
/// model checks that a payload access never races with another; and its claimers' table.
struct Q {
    ring: MpmcRing,
    stamps: Vec<AtomicU64>,
    data: Vec<UnsafeCell<u64>>,
    table: Vec<Claimer>,
}

impl Slots for Q {
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

impl Q {
    /// A ring of `cap` slots whose table has an entry for each of `pids`, taken for it
    /// (entry `pid % pids.len()`: give pids that fall on distinct entries).
    fn new(cap: u64, pids: &[u32]) -> Arc<Q> {
        let q = Q {
            ring: MpmcRing::new(),
            stamps: (0..cap).map(|i| AtomicU64::new(initial_stamp(i))).collect(),
            data: (0..cap).map(|_| UnsafeCell::new(0)).collect(),
            table: (0..pids.len()).map(|_| Claimer::new()).collect(),
        };
        for &pid in pids {
            let who = Scripted::alive(pid);
            let e = &q.table[pid as usize % pids.len()];
            assert!(e.take_for(&who), "entry of process {pid}");
        }
        Arc::new(q)
    }

    /// The caller's entry. Process `pid`'s is entry `pid % threads` of the table, taken
    /// for it by [`Q::new`] (the models would otherwise spend their interleavings on the
    /// search of the table, which `enter_takes_a_dead_processes_entry` checks alone).
    fn me(&self, who: &Scripted) -> &Claimer {
        &self.table[who.me() as usize % self.table.len()]
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
    fn put(&self, who: &Scripted, v: u64) -> bool {
        let me = self.me(who).intent(0);
        match self.ring.push_claim(self, me, who, None, NEVER) {
            Ok(c) => {
                self.write(c, v);
                true
            }
            Err(MpmcError::Closed) => false,
            Err(e) => panic!("put: {e:?}"),
        }
    }

    /// Blocking put of nothing (a dropped put loan): the slot is published skipped.
    fn put_skip(&self, who: &Scripted) {
        let me = self.me(who).intent(0);
        let c = self
            .ring
            .push_claim(self, me, who, None, NEVER)
            .expect("put_skip");
        self.ring.publish_skip(self, c);
    }

    /// Blocking get, passing over skipped slots; None if closed and drained.
    fn get(&self, who: &Scripted) -> Option<u64> {
        let me = self.me(who).intent(0);
        loop {
            match self.ring.pop_claim(self, me, who, None, NEVER) {
                Ok(c) if c.is_skip() => self.ring.release(self, c),
                Ok(c) => return Some(self.read(c)),
                Err(MpmcError::Closed) => return None,
                Err(e) => panic!("get: {e:?}"),
            }
        }
    }

    fn try_get(&self, who: &Scripted) -> Result<u64, MpmcError> {
        let me = self.me(who).intent(0);
        self.ring.try_pop_claim(self, me).map(|c| {
            assert!(!c.is_skip(), "no model publishes skipped slots here");
            self.read(c)
        })
    }
}

/// Process `pid` in a world where nobody dies and waiters never poll (so a lost wake-up
/// shows up as a deadlock).
fn p(pid: u32) -> Scripted {
    Scripted::alive(pid)
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
        let q = Q::new(2, &[1, 2]);
        let t = {
            let q = q.clone();
            thread::spawn(move || {
                for v in 1..=3 {
                    assert!(q.put(&p(2), v));
                }
            })
        };
        for v in 1..=3 {
            assert_eq!(q.get(&p(1)), Some(v));
        }
        t.join().unwrap();
        assert_eq!(q.try_get(&p(1)), Err(MpmcError::Empty));
    });
}

/// Dropped put loans publish their slots skipped (the mark in the stamp): across the wrap
/// of a 2-slot ring the consumer passes over both and gets the two messages in order;
/// the producer, a lap ahead, treats a skipped, unconsumed slot as full, never as corrupt.
#[test]
fn skipped_slots_are_passed_over() {
    model(3, || {
        let q = Q::new(2, &[1, 2]);
        let t = {
            let q = q.clone();
            thread::spawn(move || {
                let me = p(2);
                q.put_skip(&me);
                assert!(q.put(&me, 1));
                q.put_skip(&me);
                assert!(q.put(&me, 2));
            })
        };
        assert_eq!(q.get(&p(1)), Some(1));
        assert_eq!(q.get(&p(1)), Some(2));
        t.join().unwrap();
        assert_eq!(q.try_get(&p(1)), Err(MpmcError::Empty));
    });
}

/// Two producers and a blocking consumer, capacity 1 (every put wraps); the last producer
/// to finish closes: every message exactly once, and the consumer sees `Closed` only after
/// all of them.
#[test]
fn mpsc_close_drains_every_message() {
    model(2, || {
        let q = Q::new(1, &[1, 2, 3]);
        let done = Arc::new(AtomicU64::new(0));
        let producers: Vec<_> = (1..=2u64)
            .map(|v| {
                let (q, done) = (q.clone(), done.clone());
                thread::spawn(move || {
                    assert!(q.put(&p(v as u32 + 1), v));
                    if done.fetch_add(1, Ordering::AcqRel) == 1 {
                        q.ring.close(&*q);
                    }
                })
            })
            .collect();
        let mut got = Vec::new();
        while let Some(v) = q.get(&p(1)) {
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
        let q = Q::new(1, &[1, 2, 11, 12]);
        let producer = {
            let q = q.clone();
            thread::spawn(move || assert!(q.put(&p(2), 2)))
        };
        let consumers = consumers(&q, 2);
        assert!(q.put(&p(1), 1));
        producer.join().unwrap();
        assert_eq!(joined(consumers), vec![Some(1), Some(2)]);
        assert_eq!(q.try_get(&p(1)), Err(MpmcError::Empty));
    });
}

/// `n` threads (processes 11, 12, ...), each blocking for one message of `q`.
fn consumers(q: &Arc<Q>, n: usize) -> Vec<thread::JoinHandle<Option<u64>>> {
    (0..n)
        .map(|i| {
            let q = q.clone();
            thread::spawn(move || q.get(&p(11 + i as u32)))
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
        let q = Q::new(1, &[1, 11, 12]);
        let consumers = consumers(&q, 2);
        assert!(q.put(&p(1), 1));
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
        let q = Q::new(2, &[1, 11, 12]);
        let consumers = consumers(&q, 2);
        assert!(q.put(&p(1), 1));
        assert!(q.put(&p(1), 2));
        let got = joined(consumers);
        assert_eq!(got, vec![Some(1), Some(2)]);
    });
}

/// A producer sleeping on a full ring is woken by `close` and gets `Closed`; the message
/// already in the ring is still delivered.
#[test]
fn close_wakes_blocked_producer() {
    model(3, || {
        let q = Q::new(1, &[1, 2]);
        assert!(q.put(&p(1), 1));
        let t = {
            let q = q.clone();
            thread::spawn(move || q.put(&p(2), 2))
        };
        q.ring.close(&*q);
        assert!(!t.join().unwrap());
        assert_eq!(q.get(&p(1)), Some(1));
        assert_eq!(q.get(&p(1)), None);
    });
}

/// A timed get either takes the message or times out; a timed-out get loses nothing.
#[test]
fn timed_get_loses_nothing() {
    model(3, || {
        let q = Q::new(2, &[1, 2]);
        let t = {
            let q = q.clone();
            thread::spawn(move || assert!(q.put(&p(2), 7)))
        };
        let me = p(1);
        let word = q.me(&me).intent(0);
        let first = match q
            .ring
            .pop_claim(&*q, word, &me, Some(Instant::now()), NEVER)
        {
            Ok(c) => Some(q.read(c)),
            Err(MpmcError::Empty) => None,
            Err(e) => panic!("{e:?}"),
        };
        t.join().unwrap();
        match first {
            Some(v) => assert_eq!(v, 7),
            None => assert_eq!(q.try_get(&me), Ok(7)),
        }
        assert_eq!(q.try_get(&me), Err(MpmcError::Empty));
    });
}

/// JoinableQueue: `join` returns only after the worker's `task_done`, and sees the work
/// the worker did before it (the task counted in the producer's entry, taken and done in
/// the worker's).
#[test]
fn join_waits_for_task_done() {
    model(3, || {
        let q = Q::new(2, &[1, 2]);
        let work = Arc::new(UnsafeCell::new(0u64));
        let w = {
            let (q, work) = (q.clone(), work.clone());
            thread::spawn(move || {
                let me = p(2);
                let word = q.me(&me).intent(0);
                let c = loop {
                    match q.ring.pop_claim(&*q, word, &me, None, NEVER) {
                        Ok(c) if !c.is_skip() => break c,
                        Ok(c) => q.ring.release(&*q, c),
                        Err(e) => panic!("{e:?}"),
                    }
                };
                q.ring.count_took(&*q, Some(q.me(&me)), &c);
                let v = q.read(c);
                // SAFETY: only this thread writes, before task_done; main reads after join.
                work.with_mut(|p| unsafe { *p = v * 2 });
                q.ring.task_done(Some(q.me(&me))).unwrap();
            })
        };
        let me = p(1);
        let word = q.me(&me).intent(0);
        let c = q.ring.push_claim(&*q, word, &me, None, NEVER).unwrap();
        q.ring.count_put(Some(q.me(&me)), &c);
        q.write(c, 21);
        assert_eq!(q.ring.join(&*q, None, NEVER, &me), Ok(()));
        // SAFETY: join happens after the worker's write (Release in task_done).
        assert_eq!(work.with(|p| unsafe { *p }), 42);
        assert!(q.ring.task_done(Some(q.me(&me))).is_err());
        w.join().unwrap();
    });
}

// ---------------------------------------------------------------------------------------
// A party that dies: the recovery of its claims (`raw::mpmc`, "A party that dies").
//
// A process "dies" in these models by stopping for ever in the middle of a claim (its
// thread ends without publishing or releasing) and being marked dead in the team's view
// (`Scripted::kill`), which the others observe at any point after. Their waiters poll
// (`Scripted::watching`): their waits have deadlines that the model may let pass at any
// moment.

/// Processes 1..=n that watch each other (their waiters look at the holders of claims).
fn team(n: u32) -> Vec<Scripted> {
    Scripted::team(n, true)
        .into_iter()
        .map(|s| s.watching())
        .collect()
}

/// Process 1 claims a slot and dies before publishing it; process 3 puts 7 and closes;
/// processes 2 and 4 take what there is. The dead claim is published skipped by exactly
/// one of them (whichever gets there: the other finds it done), 7 arrives exactly once,
/// and both consumers end (the close after the skip).
///
/// Planted bug (caught at preemption bound 2, 2026-12-07; 4 s): the recovery ending the
/// claim with a store instead of a CAS lets both consumers recover it (`skipped() == 2`).
#[test]
fn a_dead_producers_claim_is_skipped_exactly_once() {
    model(2, || {
        let q = Q::new(2, &[1, 2, 3, 4]);
        let ps = team(4);
        let dying = {
            let (q, me) = (q.clone(), ps[0].clone());
            thread::spawn(move || {
                let word = q.me(&me).intent(0);
                let claimed = q.ring.push_claim(&*q, word, &me, None, NEVER).is_ok();
                // Stops for ever here: never publishes.
                me.kill(1);
                claimed
            })
        };
        let consumer = {
            let (q, me) = (q.clone(), ps[3].clone());
            thread::spawn(move || q.get(&me))
        };
        assert!(q.put(&ps[2], 7));
        q.ring.close(&*q);
        let a = q.get(&ps[1]);
        let b = consumer.join().unwrap();
        let claimed = dying.join().unwrap();
        let mut got = vec![a, b];
        got.sort();
        assert_eq!(got, vec![None, Some(7)]);
        assert_eq!(q.ring.skipped(), u64::from(claimed));
        assert_eq!(q.ring.lost(), 0);
    });
}

/// Process 1 takes the one message of a 1-slot ring and dies before releasing the slot;
/// process 3 puts again (so it needs the slot), and process 2 gets that. The slot is
/// released for the dead consumer, its message counted lost, and the new message
/// delivered.
///
/// Planted bug (caught, 2026-12-07): a recovery that does not ask whether the holder is
/// dead releases the slot while process 1 still reads it; process 3 writes it, and the
/// model goes wrong (loom reported a deadlock).
#[test]
fn a_dead_consumers_claim_is_released_and_counted() {
    model(2, || {
        let q = Q::new(1, &[1, 2, 3]);
        let ps = team(3);
        assert!(q.put(&ps[2], 5));
        let took = Arc::new(AtomicU64::new(0));
        let dying = {
            let (q, me, took) = (q.clone(), ps[0].clone(), took.clone());
            thread::spawn(move || {
                let word = q.me(&me).intent(0);
                let c = q.ring.pop_claim(&*q, word, &me, None, NEVER).unwrap();
                took.store(1, Ordering::SeqCst);
                // Reads the message (a survivor that ended the claim early would write
                // the slot under it: a race loom reports), then stops for ever: never
                // releases.
                // SAFETY: the claim makes this thread the slot's only user (checked).
                let v = q.data[c.index as usize].with(|p| unsafe { *p });
                assert_eq!(v, 5);
                me.kill(1);
            })
        };
        // The message is process 1's before process 2 asks for one.
        while took.load(Ordering::SeqCst) == 0 {
            thread::yield_now();
        }
        let producer = {
            let (q, me) = (q.clone(), ps[2].clone());
            thread::spawn(move || assert!(q.put(&me, 6)))
        };
        assert_eq!(q.get(&ps[1]), Some(6));
        producer.join().unwrap();
        dying.join().unwrap();
        assert_eq!(q.ring.lost(), 1);
    });
}

/// A live claimer is never robbed, even when a dead process recorded the same claim (it
/// tried for the same position and died right after losing the race): process 2 claims
/// position 0 and publishes 9 only after a yield; process 1 recorded an intent for
/// position 0 and died; the consumer (process 3), polling the holders, waits for process
/// 2 and gets 9.
///
/// Planted bug (caught, 2026-12-07): a recovery that acts on the first dead candidate
/// (rather than when every candidate is dead) skips process 2's slot; its publish then
/// lands on a released slot and the consumer waits for ever (loom: deadlock).
#[test]
fn a_live_claimer_is_never_robbed() {
    model(2, || {
        let q = Q::new(1, &[1, 2, 3]);
        let ps = team(3);
        // Process 1: an intent for position 0, then death (before its CAS).
        q.me(&ps[0])
            .intent(0)
            .store(intent_of(Side::Producer, 0), Ordering::Relaxed);
        ps[0].kill(1);
        // (Process 2, the claimer, has entry 2: a search of the table meets process 1's
        // dead entry first.)
        let slow = {
            let (q, me) = (q.clone(), ps[1].clone());
            thread::spawn(move || {
                let word = q.me(&me).intent(0);
                let c = q.ring.push_claim(&*q, word, &me, None, NEVER).unwrap();
                thread::yield_now();
                q.write(c, 9);
            })
        };
        assert_eq!(q.get(&ps[2]), Some(9));
        slow.join().unwrap();
        assert_eq!(q.ring.skipped(), 0);
    });
}
