//! Model checks of `RawLock`: mutual exclusion, the waiter bit (no lost wake-up), timeouts,
//! and the owner-died takeover.
#![cfg(shmproc_loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;
use shmproc::raw::lock::RobustLock;
use shmproc::raw::lock::{Acquired, RawLock};
use shmproc::raw::sync::liveness::Scripted;
use shmproc::SpinPolicy;

/// Processes `1..=n` sharing one view of who died (see `Scripted`).
fn procs(n: u32, watch: bool) -> Vec<Scripted> {
    Scripted::team(n, watch)
}

struct Shared {
    lock: RawLock,
    data: UnsafeCell<u32>,
}

// SAFETY: `data` is only touched while `lock` is held; loom checks exactly that.
unsafe impl Sync for Shared {}

fn bump(s: &Shared) {
    // SAFETY: called with the lock held, so this thread is the only user; loom reports a
    // data race here if the lock's orderings do not order the critical sections.
    s.data.with_mut(|p| unsafe { *p += 1 });
}

/// Three processes increment under the lock. Waiters sleep with no deadline, so a lost
/// wake-up (a sleeper nobody wakes) is reported by loom as a deadlock, and a missing
/// Acquire/Release pair as a data race on `data`.
#[test]
fn mutual_exclusion_and_no_lost_wakeup() {
    loom::model(|| {
        let s = Arc::new(Shared {
            lock: RawLock::new(),
            data: UnsafeCell::new(0),
        });
        let ps = procs(3, false);
        let handles: Vec<_> = ps[1..]
            .iter()
            .cloned()
            .map(|p| {
                let s = s.clone();
                thread::spawn(move || {
                    assert_eq!(
                        s.lock.lock(&p, None, SpinPolicy::default()),
                        Ok(Acquired::Normal)
                    );
                    bump(&s);
                    s.lock.unlock();
                })
            })
            .collect();
        assert_eq!(
            s.lock.lock(&ps[0], None, SpinPolicy::default()),
            Ok(Acquired::Normal)
        );
        bump(&s);
        s.lock.unlock();
        for h in handles {
            h.join().unwrap();
        }
        // SAFETY: the other threads have finished (joined above): nothing else
        // touches `data` now.
        assert_eq!(s.data.with(|p| unsafe { *p }), 3);
        assert!(!s.lock.is_locked());
    });
}

/// A waiter with a deadline either gets the lock or gives up; either way nothing is left
/// locked, and the other waiter is not starved of its wake-up.
#[test]
fn timeouts_leave_no_trace() {
    loom::model(|| {
        let s = Arc::new(Shared {
            lock: RawLock::new(),
            data: UnsafeCell::new(0),
        });
        let ps = procs(3, false);
        let deadline = Some(std::time::Instant::now());
        let (p1, p2) = (ps[1].clone(), ps[2].clone());
        let s1 = s.clone();
        let t1 = thread::spawn(move || {
            if s1.lock.lock(&p1, deadline, SpinPolicy::default()).is_ok() {
                bump(&s1);
                s1.lock.unlock();
                1
            } else {
                0
            }
        });
        let s2 = s.clone();
        let t2 = thread::spawn(move || {
            s2.lock.lock(&p2, None, SpinPolicy::default()).unwrap();
            bump(&s2);
            s2.lock.unlock();
        });
        s.lock.lock(&ps[0], None, SpinPolicy::default()).unwrap();
        bump(&s);
        s.lock.unlock();
        let got = t1.join().unwrap();
        t2.join().unwrap();
        // SAFETY: the other threads have finished (joined above): nothing else
        // touches `data` now.
        assert_eq!(s.data.with(|p| unsafe { *p }), 2 + got);
        assert!(!s.lock.is_locked());
    });
}

/// Process 1 dies holding the lock; processes 2 and 3 both wait. Exactly one of them is
/// told `OwnerDied`, the other then gets it normally, and both critical sections run.
#[test]
fn owner_died_is_taken_over_exactly_once() {
    loom::model(|| {
        let s = Arc::new(Shared {
            lock: RawLock::new(),
            data: UnsafeCell::new(0),
        });
        let ps = procs(3, true);
        assert_eq!(
            s.lock.lock(&ps[0], None, SpinPolicy::default()),
            Ok(Acquired::Normal)
        );
        // Process 1 "dies": it never unlocks.
        ps[0].kill(1);
        let died = Arc::new(AtomicU32::new(0));
        let waiters: Vec<_> = ps[1..]
            .iter()
            .cloned()
            .map(|p| {
                let (s, died) = (s.clone(), died.clone());
                thread::spawn(move || {
                    let how = s.lock.lock(&p, None, SpinPolicy::default()).unwrap();
                    if how == Acquired::OwnerDied {
                        died.fetch_add(1, Ordering::SeqCst);
                    }
                    bump(&s);
                    s.lock.unlock();
                })
            })
            .collect();
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(died.load(Ordering::SeqCst), 1);
        // SAFETY: the other threads have finished (joined above): nothing else
        // touches `data` now.
        assert_eq!(s.data.with(|p| unsafe { *p }), 2);
        assert!(!s.lock.is_locked());
    });
}

/// A live holder is never robbed: a waiter that checks on it finds it alive.
#[test]
fn live_holder_is_not_taken_over() {
    loom::model(|| {
        let s = Arc::new(Shared {
            lock: RawLock::new(),
            data: UnsafeCell::new(0),
        });
        let ps = procs(2, true);
        let p1 = ps[1].clone();
        let s1 = s.clone();
        let t = thread::spawn(move || {
            let how = s1.lock.lock(&p1, None, SpinPolicy::default()).unwrap();
            assert_eq!(how, Acquired::Normal);
            bump(&s1);
            s1.lock.unlock();
        });
        s.lock.lock(&ps[0], None, SpinPolicy::default()).unwrap();
        bump(&s);
        s.lock.unlock();
        t.join().unwrap();
        // SAFETY: the other threads have finished (joined above): nothing else
        // touches `data` now.
        assert_eq!(s.data.with(|p| unsafe { *p }), 2);
    });
}

/// Regression (found by the contended benchmark): between a holder's CAS and its recording
/// of its identity, the recorded identity is the previous holder's. A checker that read it
/// then took the start-time mismatch for pid reuse and robbed a live holder. Process 1 and
/// process 2 take turns; process 3 checks at every possible moment.
#[test]
fn stale_identity_is_no_evidence_of_death() {
    loom::model(|| {
        let s = Arc::new(Shared {
            lock: RawLock::new(),
            data: UnsafeCell::new(0),
        });
        let ps = procs(3, false);
        let p2 = ps[1].clone();
        let s2 = s.clone();
        s.lock.lock(&ps[0], None, SpinPolicy::default()).unwrap();
        s.lock.unlock();
        let t = thread::spawn(move || {
            s2.lock.lock(&p2, None, SpinPolicy::default()).unwrap();
            s2.lock.unlock();
        });
        if let Some(how) = s.lock.try_lock_or_recover(&ps[2]) {
            assert_eq!(how, Acquired::Normal, "a live holder was robbed");
            s.lock.unlock();
        }
        t.join().unwrap();
    });
}
