//! Multi-process tests of RLock, Condition and Barrier (real `fork`, watchdog per test).

mod common;

use common::fork;
use shmproc::barrier::{Barrier, BarrierError};
use shmproc::condition::{Condition, ConditionError};
use shmproc::lock::{Lock, TryAcquireError};
use shmproc::rlock::{NotOwner, RLock};
use shmproc::Arena;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn main() {
    common::run(&[
        (
            "rlock_depth_three_across_fork",
            rlock_depth_three_across_fork,
        ),
        ("rlock_threads_of_one_process", rlock_threads_of_one_process),
        (
            "rlock_owner_died_is_recovered",
            rlock_owner_died_is_recovered,
        ),
        (
            "condition_notify_two_wakes_exactly_two",
            condition_notify_two_wakes_exactly_two,
        ),
        (
            "condition_timeout_leaves_no_stale_wakeup",
            condition_timeout_leaves_no_stale_wakeup,
        ),
        ("condition_requires_the_lock", condition_requires_the_lock),
        (
            "condition_rlock_depth_restored",
            condition_rlock_depth_restored,
        ),
        (
            "condition_bounded_buffer_checksum",
            condition_bounded_buffer_checksum,
        ),
        (
            "barrier_five_processes_lockstep",
            barrier_five_processes_lockstep,
        ),
        (
            "barrier_abort_and_reset_while_waiting",
            barrier_abort_and_reset_while_waiting,
        ),
        (
            "barrier_timeout_breaks_late_arrivals",
            barrier_timeout_breaks_late_arrivals,
        ),
        (
            "barrier_action_panic_breaks_it",
            barrier_action_panic_breaks_it,
        ),
        (
            "barrier_timeout_during_the_action_does_not_break_it",
            barrier_timeout_during_the_action_does_not_break_it,
        ),
    ]);
}

/// Polls `cond()` (a state that no primitive can be awaited for, e.g. "n parties are
/// asleep") until it holds, for at most 20 s.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "never happened: {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn arena() -> Arena {
    Arena::anonymous(1 << 20).unwrap()
}

// ---------------------------------------------------------------------------------------
// RLock

fn rlock_depth_three_across_fork() {
    let a = arena();
    let lock = RLock::new_in(&a).unwrap();
    let flags = common::shared_counters(2);
    for _ in 0..3 {
        lock.acquire_forever();
    }
    assert_eq!(lock.depth(), 3);
    let child = fork(|| {
        // The child is another process: it does not own the parent's lock.
        assert!(!lock.is_owned());
        assert!(lock.is_locked());
        assert!(matches!(
            lock.try_acquire(),
            Err(TryAcquireError::WouldBlock)
        ));
        assert_eq!(lock.release(), Err(NotOwner));
        assert!(matches!(
            lock.acquire_timeout(Duration::from_millis(20)),
            Err(TryAcquireError::WouldBlock)
        ));
        flags[0].store(1, Ordering::SeqCst);
        let g = lock.acquire().expect("the parent is alive");
        flags[1].store(1, Ordering::SeqCst);
        let g2 = lock.acquire().unwrap();
        assert_eq!(lock.depth(), 2);
        drop(g2);
        drop(g);
        assert!(!lock.is_locked());
    });
    eventually("the child tried", || flags[0].load(Ordering::SeqCst) == 1);
    assert_eq!(lock.release(), Ok(2));
    assert_eq!(lock.release(), Ok(1));
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        flags[1].load(Ordering::SeqCst),
        0,
        "taken while held at depth 1"
    );
    assert_eq!(lock.release(), Ok(0));
    child.join();
    assert_eq!(flags[1].load(Ordering::SeqCst), 1);
    assert_eq!(lock.release(), Err(NotOwner));
}

fn rlock_threads_of_one_process() {
    let lock = RLock::new_in(&arena()).unwrap();
    let g = lock.acquire().unwrap();
    let l2 = lock.clone();
    std::thread::spawn(move || {
        assert!(!l2.is_owned());
        assert_eq!(l2.release(), Err(NotOwner));
        assert!(matches!(l2.try_acquire(), Err(TryAcquireError::WouldBlock)));
    })
    .join()
    .unwrap();
    drop(g);
    // Mutual exclusion between 4 threads, each re-entering: the counter is exact.
    let counter = common::shared_counters(1);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let l = lock.clone();
            std::thread::spawn(move || {
                for _ in 0..2000 {
                    let _a = l.acquire().unwrap();
                    let _b = l.acquire().unwrap();
                    let v = counter[0].load(Ordering::Relaxed);
                    counter[0].store(v + 1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(counter[0].load(Ordering::Relaxed), 8000);
}

fn rlock_owner_died_is_recovered() {
    let lock = RLock::new_in(&arena()).unwrap();
    let child = fork(|| {
        lock.acquire_forever();
        lock.acquire_forever();
        // Exit holding it at depth 2.
    });
    child.join();
    let t = Instant::now();
    match lock.acquire() {
        Err(died) => {
            assert_eq!(lock.depth(), 1);
            drop(died.into_guard());
        }
        Ok(_) => panic!("the death of the holder was not reported"),
    }
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(!lock.is_locked());
    assert!(lock.try_acquire().is_ok());
}

// ---------------------------------------------------------------------------------------
// Condition

/// 3 processes and 3 threads wait on one condition; `notify(2)` wakes exactly two, and
/// `notify_all` the other four.
fn condition_notify_two_wakes_exactly_two() {
    let a = arena();
    let cond = Condition::new_in(&a).unwrap();
    let woken = common::shared_counters(1);
    let waiter = {
        let cond = cond.clone();
        move || {
            let _g = cond.acquire().unwrap();
            cond.wait().unwrap();
            assert!(cond.is_owned());
            woken[0].fetch_add(1, Ordering::SeqCst);
        }
    };
    let children: Vec<_> = (0..3).map(|_| fork(waiter.clone())).collect();
    let threads: Vec<_> = (0..3).map(|_| std::thread::spawn(waiter.clone())).collect();
    eventually("six waiters", || {
        let _g = cond.acquire().unwrap();
        cond.n_waiting() == 6
    });
    {
        let _g = cond.acquire().unwrap();
        assert_eq!(cond.notify(2), Ok(2));
        assert_eq!(cond.n_waiting(), 4);
    }
    eventually("two woken", || woken[0].load(Ordering::SeqCst) == 2);
    // Give a third (wrongly) woken waiter ample time to show up.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        woken[0].load(Ordering::SeqCst),
        2,
        "notify(2) woke more than two"
    );
    {
        let _g = cond.acquire().unwrap();
        assert_eq!(cond.n_waiting(), 4);
        assert_eq!(cond.notify_all(), Ok(4));
        assert_eq!(cond.notify_all(), Ok(0));
    }
    for c in children {
        c.join();
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(woken[0].load(Ordering::SeqCst), 6);
}

/// A waiter that timed out must not take the next notification: it goes to the waiter
/// that is still there.
fn condition_timeout_leaves_no_stale_wakeup() {
    let a = arena();
    let lock = Lock::new_in(&a).unwrap();
    let cond = Condition::with_lock(&a, &lock).unwrap();
    let flags = common::shared_counters(2);
    {
        let _g = lock.acquire().unwrap();
        assert_eq!(cond.notify(1), Ok(0), "nobody waits");
    }
    let timed = fork(|| {
        let _g = lock.acquire().unwrap();
        let t = Instant::now();
        assert_eq!(cond.wait_timeout(Duration::from_millis(50)), Ok(false));
        assert!(t.elapsed() >= Duration::from_millis(45));
        assert!(lock.is_locked(), "the lock is held again after a timeout");
    });
    timed.join();
    let patient = fork(|| {
        let _g = lock.acquire().unwrap();
        flags[0].store(1, Ordering::SeqCst);
        assert_eq!(cond.wait_timeout(Duration::from_secs(30)), Ok(true));
        flags[1].store(1, Ordering::SeqCst);
    });
    eventually("the patient waiter waits", || {
        let _g = lock.acquire().unwrap();
        cond.n_waiting() == 1
    });
    {
        let _g = lock.acquire().unwrap();
        assert_eq!(cond.notify(1), Ok(1));
    }
    patient.join();
    assert_eq!(flags[1].load(Ordering::SeqCst), 1);
    let _g = lock.acquire().unwrap();
    assert_eq!(cond.n_waiting(), 0);
}

fn condition_requires_the_lock() {
    let a = arena();
    let cond = Condition::new_in(&a).unwrap();
    assert_eq!(cond.wait(), Err(ConditionError::NotOwner));
    assert_eq!(
        cond.wait_timeout(Duration::ZERO),
        Err(ConditionError::NotOwner)
    );
    assert_eq!(cond.notify(1), Err(ConditionError::NotOwner));
    assert_eq!(cond.notify_all(), Err(ConditionError::NotOwner));
    assert_eq!(cond.wait_for(|| false, None), Err(ConditionError::NotOwner));
    assert_eq!(cond.release(), Err(ConditionError::NotOwner));
    // Held by another process: still not ours.
    let g = cond.acquire().unwrap();
    fork(|| {
        assert_eq!(cond.notify(1), Err(ConditionError::NotOwner));
        assert_eq!(cond.wait(), Err(ConditionError::NotOwner));
    })
    .join();
    drop(g);
    // Named: a second handle shares the lock.
    let named = Condition::create(&a, "c").unwrap();
    let other = Condition::open(&a, "c").unwrap();
    let _g = named.acquire().unwrap();
    assert!(other.is_owned());
    assert!(Condition::open_with_lock(&a, "c", &Lock::new_in(&a).unwrap()).is_err());
}

/// `wait` on a condition whose RLock is held at depth 3 releases it fully (so a notifier
/// in another process gets it) and restores depth 3.
fn condition_rlock_depth_restored() {
    let a = arena();
    let rlock = RLock::new_in(&a).unwrap();
    let cond = Condition::with_rlock(&a, &rlock).unwrap();
    let flag = common::shared_counters(1);
    for _ in 0..3 {
        rlock.acquire_forever();
    }
    let notifier = fork(|| {
        let _g = rlock.acquire().unwrap();
        flag[0].store(1, Ordering::SeqCst);
        assert_eq!(cond.notify(1), Ok(1));
    });
    while flag[0].load(Ordering::SeqCst) == 0 {
        cond.wait().unwrap();
    }
    assert!(rlock.is_owned());
    assert_eq!(rlock.depth(), 3);
    for left in (0..3).rev() {
        assert_eq!(rlock.release(), Ok(left));
    }
    notifier.join();
}

/// The condition-based bounded buffer: 2 producer and 2 consumer processes, capacity 4,
/// 2000 items; every item arrives exactly once (count and checksum).
fn condition_bounded_buffer_checksum() {
    const CAP: u64 = 4;
    const PER: u64 = 1000;
    let a = arena();
    let lock = Lock::new_in(&a).unwrap();
    let not_full = Condition::with_lock(&a, &lock).unwrap();
    let not_empty = Condition::with_lock(&a, &lock).unwrap();
    // [head, tail, sum, count, slots...]; all under `lock`.
    let w = common::shared_counters(4 + CAP as usize);
    let producers: Vec<_> = (0..2u64)
        .map(|p| {
            fork(|| {
                for i in 0..PER {
                    let item = p * PER + i + 1;
                    let _g = lock.acquire().unwrap();
                    let full =
                        || w[1].load(Ordering::Relaxed) - w[0].load(Ordering::Relaxed) == CAP;
                    assert_eq!(not_full.wait_for(|| !full(), None), Ok(true));
                    let t = w[1].load(Ordering::Relaxed);
                    w[4 + (t % CAP) as usize].store(item, Ordering::Relaxed);
                    w[1].store(t + 1, Ordering::Relaxed);
                    not_empty.notify(1).unwrap();
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            fork(|| loop {
                let _g = lock.acquire().unwrap();
                let ready = || {
                    w[1].load(Ordering::Relaxed) > w[0].load(Ordering::Relaxed)
                        || w[3].load(Ordering::Relaxed) == 2 * PER
                };
                not_empty.wait_for(ready, None).unwrap();
                if w[3].load(Ordering::Relaxed) == 2 * PER {
                    not_empty.notify_all().unwrap();
                    return;
                }
                let h = w[0].load(Ordering::Relaxed);
                let item = w[4 + (h % CAP) as usize].load(Ordering::Relaxed);
                w[0].store(h + 1, Ordering::Relaxed);
                w[2].fetch_add(item, Ordering::Relaxed);
                w[3].fetch_add(1, Ordering::Relaxed);
                not_full.notify(1).unwrap();
                if w[3].load(Ordering::Relaxed) == 2 * PER {
                    not_empty.notify_all().unwrap();
                    return;
                }
            })
        })
        .collect();
    for c in producers.into_iter().chain(consumers) {
        c.join();
    }
    let n = 2 * PER;
    assert_eq!(w[3].load(Ordering::Relaxed), n);
    assert_eq!(w[2].load(Ordering::Relaxed), n * (n + 1) / 2);
}

// ---------------------------------------------------------------------------------------
// Barrier

/// 5 processes pass a barrier 1000 times in lockstep: after pass `k` every process has
/// finished pass `k` and none has started pass `k + 2`; the action ran exactly once per
/// pass, before the release; the indices of every pass are `0..5`.
fn barrier_five_processes_lockstep() {
    const P: usize = 5;
    const PASSES: usize = 1000;
    let a = arena();
    // [actions, progress[P], masks[PASSES]]
    let w = common::shared_counters(1 + P + PASSES);
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
    let passed = common::shared_counters(1);
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
    assert!(t.elapsed() >= Duration::from_millis(45));
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
