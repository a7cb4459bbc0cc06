//! Model checks of `shmproc::raw::barrier::RawBarrier`'s generation protocol: distinct
//! indices, the action once per pass before anyone is released, breaking by timeout and
//! abort, reset while a party waits, and a party that dies inside (counted, recorded or not).
#![cfg(shmproc_loom)]

use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;
use shmproc::raw::barrier::{Arrival, BarrierError, RawBarrier};
use shmproc::raw::sync::liveness::{Liveness, Scripted};
use shmproc::SpinPolicy;
use shmproc_testkit::loom::model;
use std::time::{Duration, Instant};

const SPIN: SpinPolicy = SpinPolicy::NEVER;

fn soon() -> Option<Instant> {
    Some(Instant::now() + Duration::from_secs(3600))
}

/// A barrier of `parties` with its arrival records.
struct B {
    raw: RawBarrier,
    arrivals: Vec<Arrival>,
}

impl B {
    fn new(parties: u32) -> Arc<B> {
        Arc::new(B {
            raw: RawBarrier::new(parties),
            arrivals: (0..2 * parties).map(|_| Arrival::new()).collect(),
        })
    }

    /// Waits as process `pid` (whose waits never look at the others: nobody dies here, so
    /// a lost wake-up shows up as a deadlock).
    fn wait(
        &self,
        pid: u32,
        action: impl FnOnce(),
        deadline: Option<Instant>,
    ) -> Result<u32, BarrierError> {
        self.raw.wait(
            &self.arrivals,
            &Scripted::alive(pid),
            action,
            deadline,
            SPIN,
        )
    }

    fn reset(&self) {
        self.raw.reset(&self.arrivals, &Scripted::alive(99));
    }
}

/// `parties` threads (the main thread is one) pass `passes` times, with at most `bound`
/// preemptions. The action counts passes; every party, once released, must see the count
/// of its pass (so the action ran once, before the release), and the indices of a pass
/// are distinct.
fn lockstep(parties: u32, passes: u32, bound: usize) {
    model(bound, move || {
        let b = B::new(parties);
        let actions = Arc::new(AtomicU32::new(0));
        let seen = Arc::new(AtomicU32::new(0)); // bit per (pass, index)
        let party = move |pid: u32, b: Arc<B>, actions: Arc<AtomicU32>, seen: Arc<AtomicU32>| {
            for pass in 0..passes {
                let i = b
                    .wait(
                        pid,
                        // Relaxed: the barrier's release publishes it.
                        || {
                            actions.fetch_add(1, Ordering::Relaxed);
                        },
                        None,
                    )
                    .unwrap();
                assert!(i < parties);
                // Relaxed: the barrier's Release/Acquire orders the action's write.
                assert_eq!(actions.load(Ordering::Relaxed), pass + 1, "released early");
                let bit = 1 << (pass * parties + i);
                // Relaxed: only a set of bits; duplicates show as a bit already set.
                assert_eq!(
                    seen.fetch_or(bit, Ordering::Relaxed) & bit,
                    0,
                    "index twice"
                );
            }
        };
        let threads: Vec<_> = (1..parties)
            .map(|pid| {
                let (b, a, s) = (b.clone(), actions.clone(), seen.clone());
                thread::spawn(move || party(pid + 1, b, a, s))
            })
            .collect();
        party(1, b.clone(), actions.clone(), seen.clone());
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(actions.load(Ordering::Relaxed), passes);
        assert_eq!(seen.load(Ordering::Relaxed), (1 << (passes * parties)) - 1);
        assert!(!b.raw.is_broken());
        assert_eq!(b.raw.n_waiting(), 0);
    });
}

#[test]
fn two_parties_two_passes() {
    lockstep(2, 2, 3);
}

/// At most 2 preemptions: 0.1-0.7 s, where 3 took 10 s. Planted bugs caught at 2 as at 3
/// (re-checked 2026-12-07): a Relaxed generation CAS in `release` and a Relaxed load in
/// `await_release` (released early), a release that does not wake the sleepers
/// (deadlock).
#[test]
fn three_parties_one_pass() {
    lockstep(3, 1, 2);
}

/// One party may time out, the other waits without a deadline: either both pass, or
/// both fail (the timed-out one with `Timeout`, the other with `Broken`), and the barrier
/// stays broken until reset.
#[test]
fn a_timeout_breaks_it_for_everyone() {
    loom::model(|| {
        let b = B::new(2);
        let b2 = b.clone();
        let t = thread::spawn(move || b2.wait(2, || {}, soon()));
        let mine = b.wait(1, || {}, None);
        let theirs = t.join().unwrap();
        match (mine, theirs) {
            (Ok(a), Ok(c)) => assert_eq!(a + c, 1),
            (Err(BarrierError::Broken), Err(BarrierError::Timeout)) => {
                assert!(b.raw.is_broken());
                assert_eq!(b.wait(1, || {}, None), Err(BarrierError::Broken));
                b.reset();
                assert!(!b.raw.is_broken());
            }
            other => panic!("unexpected outcome {other:?}"),
        }
    });
}

/// `abort` while a party waits (or before it arrives): it fails with `Broken`.
#[test]
fn abort_breaks_a_waiting_party() {
    loom::model(|| {
        let b = B::new(2);
        let b2 = b.clone();
        let t = thread::spawn(move || b2.wait(2, || {}, None));
        b.raw.abort();
        assert_eq!(t.join().unwrap(), Err(BarrierError::Broken));
        assert!(b.raw.is_broken());
    });
}

/// `reset` while a party may be waiting: that party fails with `Broken` (if it had
/// arrived) and then passes with the resetter in the fresh barrier.
#[test]
fn reset_while_a_party_waits() {
    model(3, || {
        let b = B::new(2);
        let b2 = b.clone();
        let t = thread::spawn(move || {
            let mut broken = 0;
            loop {
                match b2.wait(2, || {}, None) {
                    Ok(i) => return (i, broken),
                    Err(BarrierError::Broken) => broken += 1,
                    Err(e) => panic!("{e:?}"),
                }
            }
        });
        b.reset();
        let mine = b.wait(1, || {}, None).unwrap();
        let (theirs, broken) = t.join().unwrap();
        assert!(broken <= 1);
        assert_eq!(mine + theirs, 1);
        assert!(!b.raw.is_broken());
    });
}

// ---------------------------------------------------------------------------------------
// A party that dies (`raw::barrier`, "A party that dies").
//
// A process "dies" by stopping for ever inside the barrier (`arrive_and_stop`: counted,
// recorded or not, never leaving) and being marked dead in the team's view
// (`Scripted::kill`). The survivors wait without a timeout and poll the records
// (`Scripted::watching`): their naps end when the model's clock moves (the death).

/// Processes 1..=n that watch each other.
fn team(n: u32) -> Vec<Scripted> {
    Scripted::team(n, true)
        .into_iter()
        .map(|s| s.watching())
        .collect()
}

/// `parties` parties; the last process arrives (recording itself if `recorded`, else
/// stopping between its count and its record) and dies; the others wait without a
/// timeout. Every survivor returns: all released (the dead one arrived before the pass
/// filled, and was not its last arrival), or all `Broken`; then `reset` gives a fresh
/// barrier (the dead party counts as left) without anyone's help.
fn a_party_dies(parties: u32, recorded: bool, bound: usize) {
    model(bound, move || {
        let b = B::new(parties);
        let ps = team(parties);
        let dying = {
            let (b, me) = (b.clone(), ps[parties as usize - 1].clone());
            thread::spawn(move || {
                let r = b.raw.arrive_and_stop(&b.arrivals, &me, recorded);
                // Stops for ever here.
                me.kill(me.me());
                r
            })
        };
        let others: Vec<_> = (1..parties as usize - 1)
            .map(|i| {
                let (b, me) = (b.clone(), ps[i].clone());
                thread::spawn(move || b.raw.wait(&b.arrivals, &me, || {}, None, SPIN))
            })
            .collect();
        let mut got = vec![b.raw.wait(&b.arrivals, &ps[0], || {}, None, SPIN)];
        got.extend(others.into_iter().map(|t| t.join().unwrap()));
        // (The dying party may be judged before it records itself, when it stops after
        // that: it then fails as every survivor does.)
        let entered = dying.join().unwrap();
        if got.iter().all(|r| r.is_ok()) {
            let (_, dead_index) = entered.expect("the pass was released: it entered");
            let mut all: Vec<u32> = got.iter().map(|r| r.unwrap()).collect();
            all.push(dead_index);
            all.sort();
            assert_eq!(all, (0..parties).collect::<Vec<_>>());
            assert!(dead_index + 1 < parties, "the dead runner released nobody");
            assert!(!b.raw.is_broken(), "a death seen late broke the next pass");
            if parties == 2 {
                // The dead one's pass completed without it leaving: the next pass knows
                // from its record that it will not come.
                assert_eq!(
                    b.raw.wait(&b.arrivals, &ps[0], || {}, None, SPIN),
                    Err(BarrierError::Broken),
                    "the next pass waits for the dead"
                );
            }
        } else {
            assert!(matches!(entered, Ok(_) | Err(BarrierError::Broken)));
            assert!(
                got.iter().all(|r| *r == Err(BarrierError::Broken)),
                "survivors disagree: {got:?}"
            );
            assert!(b.raw.is_broken());
            b.raw.reset(&b.arrivals, &ps[0]);
            assert!(!b.raw.is_broken(), "the reset waits for the dead");
            assert_eq!(b.raw.n_waiting(), 0);
        }
    });
}

/// Two parties: the dead one is the waiter (the survivor's pass releases it, and the
/// survivor's next wait gets `Broken`) or the last arrival (the runner of the action: the
/// survivor gets `Broken`).
///
/// Planted bug (caught, 2026-12-07, 0.3 s): `look` not asking `is_dead` (loom: deadlock,
/// the survivor waits for ever).
#[test]
fn a_recorded_party_dies_of_two() {
    a_party_dies(2, true, 3);
}

/// As above, the dead party stopping between its count and its record (judged after
/// `GRACE`, which the model lets pass at any look).
#[test]
fn an_unrecorded_party_dies_of_two() {
    a_party_dies(2, false, 3);
}

/// Three parties, two survivors waiting: they agree (both released or both broken).
///
/// Planted bugs (caught, 2026-12-07, ~20 s): `look` not asking `is_dead` (deadlock);
/// `reset` whose drain does not count the dead as left ("the reset waits for the dead").
#[test]
fn a_recorded_party_dies_of_three() {
    a_party_dies(3, true, 2);
}

/// As above, dying unrecorded.
#[test]
fn an_unrecorded_party_dies_of_three() {
    a_party_dies(3, false, 2);
}
