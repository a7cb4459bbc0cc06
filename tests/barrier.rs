//! Multi-process tests of Barrier (real `fork`, watchdog per test).

use shmproc::barrier::{Barrier, BarrierError};
use shmproc::Arena;
use shmproc_testkit::{eventually, fork, shared_counters};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

shmproc_testkit::main!(
    barrier_five_processes_lockstep,
    barrier_abort_and_reset_while_waiting,
    barrier_timeout_breaks_late_arrivals,
    barrier_action_panic_breaks_it,
    barrier_timeout_during_the_action_does_not_break_it,
    barrier_a_killed_party_breaks_it,
);

fn arena() -> Arena {
    Arena::anonymous(1 << 20).unwrap()
}

/// 5 processes pass a barrier 1000 times in lockstep: after pass `k` every process has
/// finished pass `k` and none has started pass `k + 2`; the action ran exactly once per
/// pass, before the release; the indices of every pass are `0..5`.
fn barrier_five_processes_lockstep() {
    const P: usize = 5;
    const PASSES: usize = 1000;
    let a = arena();
    // [actions, progress[P], masks[PASSES]]
    let w = shared_counters(1 + P + PASSES);
    let barrier = Barrier::new_in(&a, P as u32).unwrap().with_action(move || {
        w[0].fetch_add(1, Ordering::Relaxed);
    });
    let party = move |me: usize| {
        let barrier = barrier.clone();
        for k in 0..PASSES {
            w[1 + me].store(k as u64 + 1, Ordering::Relaxed);
            let i = barrier.wait().unwrap();
            assert!(i < P as u32);
            assert_eq!(
                w[0].load(Ordering::Relaxed),
                k as u64 + 1,
                "action count at pass {k}"
            );
            for q in 0..P {
                let pq = w[1 + q].load(Ordering::Relaxed);
                assert!(
                    pq == k as u64 + 1 || pq == k as u64 + 2,
                    "pass {k}: process {q} is at {pq}"
                );
            }
            let bit = 1u64 << i;
            let old = w[1 + P + k].fetch_or(bit, Ordering::Relaxed);
            assert_eq!(old & bit, 0, "index {i} twice in pass {k}");
        }
    };
    let children: Vec<_> = (1..P).map(|me| fork(|| party(me))).collect();
    party(0);
    for c in children {
        c.join();
    }
    assert_eq!(w[0].load(Ordering::Relaxed), PASSES as u64);
    for k in 0..PASSES {
        assert_eq!(
            w[1 + P + k].load(Ordering::Relaxed),
            (1 << P) - 1,
            "pass {k}"
        );
    }
}

fn barrier_abort_and_reset_while_waiting() {
    let a = arena();
    let b = Barrier::new_in(&a, 3).unwrap();
    let gate = Barrier::new_in(&a, 3).unwrap();
    let passed = shared_counters(1);
    let child = || {
        fork(|| {
            // Round 1: aborted while waiting. Round 2: reset while waiting.
            for _ in 0..2 {
                assert_eq!(b.wait(), Err(BarrierError::Broken));
                gate.wait().unwrap();
            }
            // Round 3: the fresh barrier passes.
            b.wait().unwrap();
            passed[0].fetch_add(1, Ordering::SeqCst);
        })
    };
    let children = [child(), child()];
    eventually("two waiting", || b.n_waiting() == 2);
    b.abort();
    assert!(b.broken());
    b.reset();
    gate.wait().unwrap();
    eventually("two waiting again", || b.n_waiting() == 2);
    assert!(!b.broken());
    b.reset();
    gate.wait().unwrap();
    let i = b.wait().unwrap();
    assert!(i < 3);
    for c in children {
        c.join();
    }
    assert_eq!(passed[0].load(Ordering::SeqCst), 2);
    assert!(!b.broken());
}

fn barrier_timeout_breaks_late_arrivals() {
    let a = arena();
    let b = Barrier::new_in(&a, 3)
        .unwrap()
        .with_timeout(Duration::from_secs(30));
    let early = fork(|| assert_eq!(b.wait(), Err(BarrierError::Broken)));
    eventually("one waiting", || b.n_waiting() == 1);
    let t = Instant::now();
    assert_eq!(
        b.wait_timeout(Duration::from_millis(50)),
        Err(BarrierError::Timeout)
    );
    assert!(
        t.elapsed() >= Duration::from_millis(50),
        "returned before its timeout"
    );
    early.join();
    // A late arrival fails at once, until reset.
    fork(|| assert_eq!(b.wait(), Err(BarrierError::Broken))).join();
    assert!(b.broken());
    b.reset();
    assert!(!b.broken());
    assert_eq!(b.n_waiting(), 0);
}

fn barrier_action_panic_breaks_it() {
    let a = arena();
    let b = Barrier::new_in(&a, 2).unwrap();
    let waiter = fork(|| assert_eq!(b.wait(), Err(BarrierError::Broken)));
    eventually("one waiting", || b.n_waiting() == 1);
    let failing = b.clone().with_action(|| panic!("action failed"));
    // The panic is deliberate: keep it out of the output.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| failing.wait()));
    std::panic::set_hook(hook);
    assert!(r.is_err(), "the panic resumes in the last arrival");
    waiter.join();
    assert!(b.broken());
    b.reset();
    let other = fork(|| {
        b.wait().unwrap();
    });
    b.wait().unwrap();
    other.join();
}

/// A party whose timeout passes while the last arrival runs the action: the pass is
/// complete (everyone arrived), so it succeeds, as in Python.
fn barrier_timeout_during_the_action_does_not_break_it() {
    let a = arena();
    let b = Barrier::new_in(&a, 2).unwrap();
    let waiter = fork(|| {
        let t = Instant::now();
        assert!(b.wait_timeout(Duration::from_millis(30)).is_ok());
        assert!(
            t.elapsed() >= Duration::from_millis(100),
            "released before the action ended"
        );
    });
    eventually("one waiting", || b.n_waiting() == 1);
    let slow = b
        .clone()
        .with_action(|| std::thread::sleep(Duration::from_millis(150)));
    assert!(slow.wait().is_ok());
    waiter.join();
    assert!(!b.broken());
}

/// Issue 25: a party SIGKILLed while it waits breaks the barrier for the others, whose
/// `wait()` without a timeout returns `Broken` (it used to wait for ever); `reset` then
/// gives a fresh barrier (the dead party counts as gone).
fn barrier_a_killed_party_breaks_it() {
    let a = arena();
    let b = Barrier::new_in(&a, 3).unwrap();
    let w = shared_counters(1);
    let victim = {
        let b = b.clone();
        fork(move || {
            let _ = b.wait();
            std::process::exit(7);
        })
    };
    eventually("the victim waits", || b.n_waiting() == 1);
    let other = {
        let b = b.clone();
        fork(move || {
            if b.wait() == Err(BarrierError::Broken) {
                w[0].fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    eventually("both wait", || b.n_waiting() == 2);
    let t = Instant::now();
    victim.kill();
    // The survivor ends (its watchdog: the test's) with `Broken`.
    assert_eq!(other.wait(), 0);
    println!("the survivor saw the death after {:?}", t.elapsed());
    assert_eq!(w[0].load(Ordering::SeqCst), 1);
    assert!(b.broken());
    b.reset();
    assert!(!b.broken(), "the dead party counts as gone");
    assert_eq!(
        b.wait_timeout(Duration::from_millis(10)),
        Err(BarrierError::Timeout)
    );
}
