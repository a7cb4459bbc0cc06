//! Multi-process tests of Condition (real `fork`, watchdog per test).

use shmproc::condition::{Condition, ConditionError};
use shmproc::lock::Lock;
use shmproc::rlock::RLock;
use shmproc::Arena;
use shmproc_testkit::{eventually, fork, shared_counters};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

shmproc_testkit::main!(
    condition_notify_two_wakes_exactly_two,
    condition_timeout_leaves_no_stale_wakeup,
    condition_requires_the_lock,
    condition_rlock_depth_restored,
    condition_bounded_buffer_checksum,
    condition_a_dead_waiter_takes_no_notification,
);

fn arena() -> Arena {
    Arena::anonymous(1 << 20).unwrap()
}

/// 3 processes and 3 threads wait on one condition; `notify(2)` wakes exactly two, and
/// `notify_all` the other four.
fn condition_notify_two_wakes_exactly_two() {
    let a = arena();
    let cond = Condition::new_in(&a).unwrap();
    let woken = shared_counters(1);
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
    let flags = shared_counters(2);
    {
        let _g = lock.acquire().unwrap();
        assert_eq!(cond.notify(1), Ok(0), "nobody waits");
    }
    let timed = fork(|| {
        let _g = lock.acquire().unwrap();
        let t = Instant::now();
        assert_eq!(cond.wait_timeout(Duration::from_millis(50)), Ok(false));
        assert!(
            t.elapsed() >= Duration::from_millis(50),
            "returned before its timeout"
        );
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
    let flag = shared_counters(1);
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
    let w = shared_counters(4 + CAP as usize);
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

/// Issue 25: a notification granted to a dead waiter reaches a live one. Process D waits
/// and is killed; A waits (both in the older generation); we notify one (for A) and wait
/// ourselves while it is untaken (so we join the newer generation); once A has taken it,
/// N notifies one more, which the bookkeeping grants to the older generation: to D, dead.
/// We must still be notified (by the rescue of stranded notifications: within ~150 ms),
/// where we used to time out.
fn condition_a_dead_waiter_takes_no_notification() {
    let a = Arena::anonymous(1 << 20).unwrap();
    let c = Condition::new_in(&a).unwrap();
    let w = shared_counters(2); // [A received, N granted]
    let d = {
        let c = c.clone();
        fork(move || {
            c.acquire_forever();
            let _ = c.wait();
            std::process::exit(3);
        })
    };
    eventually("D waits", || c.n_waiting() == 1);
    let a_proc = {
        let c = c.clone();
        fork(move || {
            c.acquire_forever();
            if c.wait().is_ok() {
                w[0].fetch_add(1, Ordering::SeqCst);
            }
            let _ = c.release();
        })
    };
    eventually("A waits", || c.n_waiting() == 2);
    assert!(d.kill() != 0);
    c.acquire_forever();
    assert_eq!(c.notify(1), Ok(1)); // for D or A: A, the only one alive, takes it
    let n = {
        let c = c.clone();
        fork(move || {
            eventually("A was notified", || w[0].load(Ordering::SeqCst) == 1);
            c.acquire_forever();
            let granted = c.notify(1).unwrap();
            w[1].store(u64::from(granted), Ordering::SeqCst);
            let _ = c.release();
        })
    };
    let t = Instant::now();
    let notified = c.wait_timeout(Duration::from_secs(5)).unwrap();
    let took = t.elapsed();
    let _ = c.release();
    assert_eq!(n.wait(), 0);
    assert_eq!(a_proc.wait(), 0);
    println!(
        "notified {notified} after {took:?} (N's notify granted {})",
        w[1].load(Ordering::SeqCst)
    );
    assert_eq!(
        w[1].load(Ordering::SeqCst),
        1,
        "N's notification was granted"
    );
    assert!(notified, "the notification stayed with the dead waiter");
}
