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

// ---------------------------------------------------------------------------------------
// The robust mode: permits owned by processes, taken over from dead holders.

use loom::cell::UnsafeCell;
use shmproc::raw::semaphore::Permit;
use shmproc::raw::sync::liveness::Scripted;
use shmproc_testkit::loom::model;

/// Processes 1..=n that watch each other (their waiters look at the holders).
fn team(n: u32) -> Vec<Scripted> {
    Scripted::team(n, true)
        .into_iter()
        .map(|s| s.watching())
        .collect()
}

/// A robust semaphore of one permit (a lock), the permit words beside it, and data that
/// only a permit's holder touches (loom reports two holders at once as a race).
struct Robust {
    sem: RawSemaphore,
    permits: Vec<Permit>,
    data: UnsafeCell<u32>,
}

// SAFETY: `data` is touched only by the holder of the one permit; loom checks exactly that.
unsafe impl Sync for Robust {}

impl Robust {
    fn new(n: u32) -> Arc<Robust> {
        Arc::new(Robust {
            sem: RawSemaphore::new_robust(n),
            permits: (0..n).map(|_| Permit::new()).collect(),
            data: UnsafeCell::new(0),
        })
    }

    /// Takes the permit (blocking), bumps the data, gives the permit back; whether it was
    /// taken over from a dead holder.
    fn visit(&self, who: &Scripted) -> bool {
        let t = self
            .sem
            .robust_acquire(&self.permits, who, None, SpinPolicy::NEVER)
            .expect("no deadline");
        // SAFETY: the permit makes this thread the only user (checked by loom).
        self.data.with_mut(|p| unsafe { *p += 1 });
        self.sem
            .robust_release(&self.permits, t.index, who)
            .unwrap();
        t.recovered
    }
}

/// Process 1 takes the one permit and dies holding it; processes 2 and 3 wait. Exactly one
/// of them takes the permit over; the other gets it after that one gives it back; never
/// both at once.
///
/// Planted bug (caught, 2026-12-07): taking the permit over with a store instead of a CAS
/// lets both waiters take it at once (loom reports the race on the data).
#[test]
fn robust_permit_of_a_dead_holder_is_taken_over_once() {
    model(2, || {
        let r = Robust::new(1);
        let ps = team(3);
        assert_eq!(r.sem.robust_try_acquire(&r.permits, &ps[0]), Some(0));
        // Process 1 stops for ever holding the permit.
        ps[0].kill(1);
        let other = {
            let (r, me) = (r.clone(), ps[2].clone());
            thread::spawn(move || r.visit(&me))
        };
        let a = r.visit(&ps[1]);
        let b = other.join().unwrap();
        assert_eq!(u32::from(a) + u32::from(b), 1, "taken over exactly once");
        assert_eq!(r.sem.robust_recovered(), 1);
        // SAFETY: every visitor has returned (joined above): nothing else touches `data`.
        assert_eq!(r.data.with(|p| unsafe { *p }), 2);
        assert_eq!(r.sem.robust_value(&r.permits), 1);
    });
}

/// A live holder is never robbed: process 2 waits while process 1 holds the permit and
/// looks at it (process 1 is alive), and gets it only when process 1 gives it back.
///
/// Planted bug (caught, 2026-12-07): a take-over that does not ask whether the holder is
/// dead robs process 1 (loom reports the race on the data).
#[test]
fn robust_live_holder_is_never_robbed() {
    model(3, || {
        let r = Robust::new(1);
        let ps = team(2);
        let holder = {
            let (r, me) = (r.clone(), ps[0].clone());
            thread::spawn(move || r.visit(&me))
        };
        let recovered = r.visit(&ps[1]);
        assert!(!holder.join().unwrap());
        assert!(!recovered);
        assert_eq!(r.sem.robust_recovered(), 0);
        // SAFETY: every visitor has returned (joined above): nothing else touches `data`.
        assert_eq!(r.data.with(|p| unsafe { *p }), 2);
    });
}

/// Releases wake sleepers in the robust mode too: two waiters, two permits held by the
/// main process and given back; both waiters get through (no lost wake-up; waiters that
/// do not watch the holders sleep without a deadline).
#[test]
fn robust_releases_wake_sleepers() {
    model(2, || {
        let r = Robust::new(2);
        let main = Scripted::alive(1);
        let a = r.sem.robust_try_acquire(&r.permits, &main).unwrap();
        let b = r.sem.robust_try_acquire(&r.permits, &main).unwrap();
        let waiters: Vec<_> = (2..=3)
            .map(|pid| {
                let r = r.clone();
                thread::spawn(move || {
                    let me = Scripted::alive(pid);
                    let t = r
                        .sem
                        .robust_acquire(&r.permits, &me, None, SpinPolicy::NEVER)
                        .unwrap();
                    r.sem.robust_release(&r.permits, t.index, &me).unwrap();
                })
            })
            .collect();
        r.sem.robust_release(&r.permits, a, &main).unwrap();
        r.sem.robust_release(&r.permits, b, &main).unwrap();
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(r.sem.robust_value(&r.permits), 2);
    });
}
