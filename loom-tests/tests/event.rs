//! Model checks of `RawEvent` (the epoch-stamped event word).
//!
//! The modelled futex has no spurious wake-ups, so a lost wake-up shows up as a deadlock.
//!
//! Run: `RUSTFLAGS="--cfg shmproc_loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p loom-tests
//! --release --test event`.
#![cfg(shmproc_loom)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use shmproc::raw::event::{RawEvent, WAITERS};
use shmproc::SpinPolicy;
use std::time::Instant;

/// Data published before `set`, read after `wait`: the model checks the happens-before
/// (loom flags a racy access to an `UnsafeCell`).
struct Shared {
    ev: RawEvent,
    data: UnsafeCell<u32>,
}

// SAFETY: `data` is written only before `set` and read only after `wait` returned true;
// loom's UnsafeCell checks exactly that the accesses are ordered.
unsafe impl Sync for Shared {}

/// `set` wakes every waiter, and what was written before it is visible after `wait`.
#[test]
fn set_wakes_two_waiters() {
    loom::model(|| {
        let s = Arc::new(Shared {
            ev: RawEvent::new(),
            data: UnsafeCell::new(0),
        });
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                thread::spawn(move || {
                    assert!(s.ev.wait(None, SpinPolicy::NEVER));
                    // SAFETY: written before `set`, which our `wait` synchronised with.
                    assert_eq!(s.data.with(|p| unsafe { *p }), 42);
                })
            })
            .collect();
        // SAFETY: no waiter reads before `set`.
        s.data.with_mut(|p| unsafe { *p = 42 });
        s.ev.set();
        for t in waiters {
            t.join().unwrap();
        }
        assert!(s.ev.is_set());
    });
}

/// A pulse (`set` then `clear` at once) still releases a waiter that was waiting (has
/// announced itself) when the `set` came.
#[test]
fn pulse_releases_waiter() {
    loom::model(|| {
        let ev = Arc::new(RawEvent::new());
        let e2 = ev.clone();
        let waiter = thread::spawn(move || assert!(e2.wait(None, SpinPolicy::default())));
        while ev.word() & WAITERS == 0 {
            thread::yield_now();
        }
        ev.set();
        ev.clear();
        waiter.join().unwrap();
        assert!(!ev.is_set());
    });
}

/// `clear` on another thread racing `set` and a waiter: a `set` after the `clear` still
/// wakes the waiter (a waiter that began after set + clear legitimately sleeps until then).
#[test]
fn clear_and_set_race() {
    loom::model(|| {
        let ev = Arc::new(RawEvent::new());
        let e2 = ev.clone();
        let waiter = thread::spawn(move || assert!(e2.wait(None, SpinPolicy::NEVER)));
        let e3 = ev.clone();
        let clearer = thread::spawn(move || e3.clear());
        ev.set();
        clearer.join().unwrap();
        ev.set();
        waiter.join().unwrap();
    });
}

/// A timed waiter and a blocking one: the timed one may give up (false only while the
/// flag was not yet set), the blocking one must always be woken.
#[test]
fn timed_and_blocking_waiters() {
    loom::model(|| {
        let ev = Arc::new(RawEvent::new());
        let e1 = ev.clone();
        let timed = thread::spawn(move || e1.wait(Some(Instant::now()), SpinPolicy::NEVER));
        let e2 = ev.clone();
        let blocking = thread::spawn(move || assert!(e2.wait(None, SpinPolicy::NEVER)));
        ev.set();
        let _ = timed.join().unwrap();
        blocking.join().unwrap();
        // After set, a timed wait always succeeds.
        assert!(ev.wait(Some(Instant::now()), SpinPolicy::NEVER));
    });
}
