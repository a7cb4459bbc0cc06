//! Model checks of `shmproc::raw::rlock::RawRLock`: ownership by (process, thread), depth, and
//! mutual exclusion between threads of one process and of another.
#![cfg(shmproc_loom)]

use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;
use shmproc::raw::lock::Acquired;
use shmproc::raw::lock::RobustLock;
use shmproc::raw::rlock::{NotOwner, RawRLock};
use shmproc::raw::sync::liveness::Scripted;
use shmproc::SpinPolicy;
use shmproc_testkit::loom::model;

/// Thread `tid` of process `pid`, in a world where nobody dies.
fn p(pid: u32, tid: u32) -> Scripted {
    Scripted::alive(pid).thread(tid)
}

/// Enters the critical section: no one else may be inside.
fn critical(inside: &AtomicU32) {
    // Relaxed: the lock orders the sections; a racing second entrant shows as a non-zero
    // value here in some execution.
    assert_eq!(inside.swap(1, Ordering::Relaxed), 0, "two owners at once");
    inside.store(0, Ordering::Relaxed);
}

/// Thread 1 of process 1 takes the lock twice; thread 2 of the same process and thread 1
/// of process 2 try once each. Exactly the owner thread enters, and only the owner may
/// release.
///
/// At most 2 preemptions: 0.4-1 s, where 3 took 13-19 s. A planted ownership test by pid
/// alone (a sibling thread enters) is caught at 2 as at 3 (re-checked 2026-12-07); a key
/// left set after the last unlock is caught by `a_sibling_thread_never_looks_like_the_owner`
/// (this model misses it at 2 and at 3).
#[test]
fn owner_is_a_thread_of_a_process() {
    model(2, || {
        let lock = Arc::new(RawRLock::new());
        let inside = Arc::new(AtomicU32::new(0));
        let mut threads = Vec::new();
        for (pid, tid) in [(1, 12), (2, 21)] {
            let (lock, inside) = (lock.clone(), inside.clone());
            threads.push(thread::spawn(move || {
                let who = p(pid, tid);
                if lock.try_lock_or_recover(&who).is_some() {
                    assert!(lock.is_owned_by(&who));
                    critical(&inside);
                    assert_eq!(lock.unlock_held(&who), Ok(0));
                } else {
                    assert!(!lock.is_owned_by(&who));
                    assert_eq!(lock.unlock_held(&who), Err(NotOwner));
                }
            }));
        }
        let who = p(1, 11);
        if lock.try_lock_or_recover(&who).is_some() {
            assert_eq!(lock.try_lock_or_recover(&who), Some(Acquired::Normal));
            assert_eq!(lock.depth(), 2);
            critical(&inside);
            assert_eq!(lock.unlock_held(&who), Ok(1));
            critical(&inside);
            assert_eq!(lock.unlock_held(&who), Ok(0));
        }
        for t in threads {
            t.join().unwrap();
        }
        assert!(!lock.is_locked());
        assert_eq!(lock.depth(), 0);
    });
}

/// A thread of the holder's own process releases it, then a sibling takes it: the first
/// thread must not believe it still owns it (the stale `owner` key).
#[test]
fn a_sibling_thread_never_looks_like_the_owner() {
    loom::model(|| {
        let lock = Arc::new(RawRLock::new());
        let who = p(1, 11);
        lock.lock(&who, None, SpinPolicy::NEVER).unwrap();
        lock.unlock_held(&who).unwrap();
        let l2 = lock.clone();
        let sibling = thread::spawn(move || {
            let who = p(1, 12);
            if l2.try_lock_or_recover(&who).is_some() {
                l2.unlock_held(&who).unwrap();
            }
        });
        let l3 = lock.clone();
        let first = thread::spawn(move || {
            // Whatever the sibling is doing, thread 11 holds nothing.
            let who = p(1, 11);
            assert!(!l3.is_owned_by(&who));
            assert_eq!(l3.unlock_held(&who), Err(NotOwner));
        });
        first.join().unwrap();
        sibling.join().unwrap();
    });
}

/// The holding process dies at depth 3; another takes the lock over, at depth 1.
#[test]
fn a_dead_holder_is_recovered() {
    loom::model(|| {
        let lock = Arc::new(RawRLock::new());
        let dead = p(7, 70);
        for _ in 0..3 {
            lock.try_lock_or_recover(&dead).unwrap();
        }
        let l2 = lock.clone();
        let t = thread::spawn(move || {
            let me = Scripted::survivor(2).thread(20);
            let got = l2.try_lock_or_recover(&me);
            assert_eq!(got, Some(Acquired::OwnerDied));
            assert_eq!(l2.depth(), 1);
            assert_eq!(l2.unlock_held(&me), Ok(0));
        });
        t.join().unwrap();
        assert!(!lock.is_locked());
    });
}
