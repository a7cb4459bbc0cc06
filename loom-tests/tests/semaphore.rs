//! Model checks of `RawSemaphore` (the Dekker pair between acquirers and releasers).
//!
//! The modelled futex has no spurious wake-ups, so a lost wake-up shows up as a deadlock
//! (loom reports every thread blocked). Timed acquisitions may time out at any point.
//!
//! Run: `RUSTFLAGS="--cfg shmproc_loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p loom-tests
//! --release --test semaphore`.
#![cfg(shmproc_loom)]

use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;
use shmproc::raw::semaphore::{RawSemaphore, VALUE_MAX};
use shmproc::SpinPolicy;
use std::time::Instant;

/// A deadline the model may treat as passed at any moment.
fn soon() -> Option<Instant> {
    Some(Instant::now())
}

/// Two blocked acquirers, two releases: both acquirers must get through (no lost wake-up),
/// and no permit is created or destroyed.
#[test]
fn two_sleepers_two_releases() {
    loom::model(|| {
        let sem = Arc::new(RawSemaphore::new(0, VALUE_MAX));
        let acquirers: Vec<_> = (0..2)
            .map(|_| {
                let sem = sem.clone();
                thread::spawn(move || assert!(sem.acquire(None, SpinPolicy::NEVER)))
            })
            .collect();
        sem.release().unwrap();
        sem.release().unwrap();
        for t in acquirers {
            t.join().unwrap();
        }
        assert_eq!(sem.value(), 0);
    });
}

/// A releaser on its own thread, racing an acquirer that first spins (the default policy
/// spins one round under loom) and then sleeps.
#[test]
fn release_from_another_thread() {
    loom::model(|| {
        let sem = Arc::new(RawSemaphore::new(0, VALUE_MAX));
        let s2 = sem.clone();
        let releaser = thread::spawn(move || s2.release().unwrap());
        assert!(sem.acquire(None, SpinPolicy::default()));
        releaser.join().unwrap();
        assert_eq!(sem.value(), 0);
        assert_eq!(sem.waiters(), 0);
    });
}

/// A semaphore of 1 is a mutex: never two inside at once, and the permit comes back.
#[test]
fn one_permit_excludes() {
    loom::model(|| {
        let sem = Arc::new(RawSemaphore::new(1, 1));
        let inside = Arc::new(AtomicU32::new(0));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (sem, inside) = (sem.clone(), inside.clone());
                thread::spawn(move || {
                    assert!(sem.acquire(None, SpinPolicy::NEVER));
                    assert_eq!(inside.fetch_add(1, Ordering::Relaxed), 0, "two inside");
                    inside.fetch_sub(1, Ordering::Relaxed);
                    sem.release().unwrap();
                })
            })
            .collect();
        for t in workers {
            t.join().unwrap();
        }
        assert_eq!(sem.value(), 1);
        // The bound holds: a third release is refused.
        assert_eq!(sem.release(), Err(1));
    });
}

/// A timed acquirer and a blocking one, and one release: whichever way the timeout falls,
/// the permit is not lost (a timed-out acquirer never swallows the wake meant for the
/// other), and permits are conserved.
#[test]
fn timeout_does_not_swallow_wake() {
    loom::model(|| {
        let sem = Arc::new(RawSemaphore::new(0, VALUE_MAX));
        let s1 = sem.clone();
        let timed = thread::spawn(move || s1.acquire(soon(), SpinPolicy::NEVER));
        let s2 = sem.clone();
        let blocking = thread::spawn(move || assert!(s2.acquire(None, SpinPolicy::NEVER)));
        sem.release().unwrap();
        let timed_got_it = timed.join().unwrap();
        if timed_got_it {
            // The blocking acquirer still needs one.
            sem.release().unwrap();
        }
        blocking.join().unwrap();
        assert_eq!(sem.value(), 0);
        assert_eq!(sem.waiters(), 0);
    });
}

/// Releases from two threads, while the main thread takes both permits, the second with
/// a deadline that may pass: it may only fail if the permit is still there afterwards.
#[test]
fn two_releasers_timed_acquirer() {
    loom::model(|| {
        let sem = Arc::new(RawSemaphore::new(0, 2));
        let releasers: Vec<_> = (0..2)
            .map(|_| {
                let sem = sem.clone();
                thread::spawn(move || sem.release().unwrap())
            })
            .collect();
        assert!(sem.acquire(None, SpinPolicy::NEVER));
        let second = sem.acquire(soon(), SpinPolicy::NEVER);
        for t in releasers {
            t.join().unwrap();
        }
        let left = sem.value();
        assert_eq!(
            left,
            if second { 0 } else { 1 },
            "a permit was lost or made up"
        );
    });
}

/// Two releases race on a bounded semaphore with one free slot: exactly one succeeds, and
/// a concurrent acquirer never sees more than the bound.
#[test]
fn bounded_release_race() {
    loom::model(|| {
        let sem = Arc::new(RawSemaphore::new(1, 2));
        assert!(sem.try_acquire());
        assert!(!sem.try_acquire());
        let s1 = sem.clone();
        let r1 = thread::spawn(move || s1.release().is_ok());
        let s2 = sem.clone();
        let r2 = thread::spawn(move || s2.release().is_ok());
        let ok = [r1.join().unwrap(), r2.join().unwrap()];
        // Value was 0 with limit 2: both fit.
        assert_eq!(ok, [true, true]);
        let s3 = sem.clone();
        let r3 = thread::spawn(move || s3.release());
        assert!(sem.acquire(None, SpinPolicy::NEVER));
        let third = r3.join().unwrap();
        // The third release fits only if our acquire came first.
        assert_eq!(sem.value(), if third.is_ok() { 2 } else { 1 });
        if let Err(limit) = third {
            assert_eq!(limit, 2);
        }
    });
}
