//! `Semaphore` and `BoundedSemaphore`: counting semaphores in shared memory.
//!
//! Python's `multiprocessing.Semaphore(n)` / `BoundedSemaphore(n)`: a count of permits;
//! `acquire` takes one (blocking while there is none), `release` gives one back (from any
//! process: a permit is not bound to the process that took it).
//!
//! # The state
//!
//! | field     | meaning                                                             |
//! |-----------|---------------------------------------------------------------------|
//! | `value`   | permits available now, `0..=limit`; the futex word waiters sleep on |
//! | `waiters` | acquirers that announced they may sleep on `value`                  |
//! | `limit`   | highest `value` a release may reach: `i32::MAX`, or the bound      |
//!
//! `acquire` takes a permit with one CAS `v -> v - 1` when `v > 0`; `release` adds one with
//! one CAS `v -> v + 1` (refused at `limit`) and calls `futex_wake` only when `waiters` is
//! non-zero. So neither side makes a system call while nobody has to sleep.
//!
//! # Why no wake-up is lost
//!
//! A sleeper and a releaser form the classic Dekker pair, on two words:
//!
//! | acquirer (slow path)                         | releaser                                  |
//! |----------------------------------------------|-------------------------------------------|
//! | 1. `waiters += 1` (announce)                 | a. CAS `value: v -> v + 1` (AcqRel)       |
//! | 2. `v = value.fetch_add(0)` (AcqRel): `> 0`? take it | b. read `waiters`: `> 0`? `futex_wake(1)` |
//! | 3. `futex_wait(value, 0)`                    |                                           |
//!
//! Step 2 is a read-modify-write rather than a load, so steps 2 and a are ordered in
//! `value`'s modification order. If 2 comes first, a reads from it and, both being AcqRel,
//! step 1 happens-before step b: the releaser sees the announcement and wakes. If a comes
//! first, step 2 reads the permit and the acquirer does not sleep. (A pair of `SeqCst`
//! load/stores would also do, but loom treats `SeqCst` accesses as `AcqRel` and could not
//! check it; on x86 the RMW costs the same as the CAS the slow path makes anyway.)
//! Step 3 sleeps only while `value` is still `0`, checked by the kernel under the same
//! lock that `futex_wake` takes, so a release between 2 and 3 makes the wait return at
//! once. One wake is sent per permit released while someone waits, and a woken acquirer
//! always re-reads `value` before anything else (and takes one last look when its deadline
//! has passed), so a wake is never swallowed while a permit sits unused. The `loom-tests`
//! model `semaphore` checks this with several acquirers (some with timeouts) and releasers.
//!
//! # Fairness and crashes
//!
//! Permits are not handed out in FIFO order: a running process may take a released permit
//! before a woken sleeper gets to it (which is what makes the uncontended path cheap).
//! A process killed while it sleeps in `acquire` leaves `waiters` one too high for good; the
//! only effect is that every later `release` makes one (useless) `futex_wake` call, and
//! that blocked acquirers skip their spin phase (they believe others already sleep).

use crate::sync::futex::{self, WaitResult};
use crate::sync::spin::{Round, SpinPolicy};
use crate::sync::{time, AtomicU32, Ordering};
use std::time::Instant;

/// The largest value a semaphore can hold (`i32::MAX`, as for a POSIX `sem_t`).
pub const VALUE_MAX: u32 = i32::MAX as u32;

/// The shared state of a semaphore (see the [module docs](self)).
///
/// All zero bytes are a semaphore of value 0 and limit 0, which refuses every release: make
/// one with [`RawSemaphore::new`].
#[repr(C)]
pub struct RawSemaphore {
    /// Permits available; the futex word.
    value: AtomicU32,
    /// Acquirers that may sleep in `futex_wait` on `value`.
    waiters: AtomicU32,
    /// The highest value `release` may reach. Written once, before the object is shared.
    limit: AtomicU32,
    _pad: u32,
}

// SAFETY: `#[repr(C)]`, aligned to at most 128; atomic words only; a value above the limit or a wrong waiter count makes calls fail or wake spuriously, never touch memory.
unsafe impl crate::raw::SharedState for RawSemaphore {}

#[cfg(not(shmproc_loom))]
mod layout {
    use super::RawSemaphore;
    static_assertions::assert_eq_size!(RawSemaphore, [u32; 4]);
    static_assertions::const_assert_eq!(core::mem::offset_of!(RawSemaphore, value), 0);
    static_assertions::const_assert_eq!(core::mem::offset_of!(RawSemaphore, waiters), 4);
    static_assertions::const_assert_eq!(core::mem::offset_of!(RawSemaphore, limit), 8);
}

impl RawSemaphore {
    /// A semaphore holding `value` permits that `release` may raise up to `limit`.
    ///
    /// Both are clamped to [`VALUE_MAX`], and `value` to `limit`; the handles check their
    /// arguments before they get here.
    pub fn new(value: u32, limit: u32) -> RawSemaphore {
        let limit = limit.min(VALUE_MAX);
        RawSemaphore {
            value: AtomicU32::new(value.min(limit)),
            waiters: AtomicU32::new(0),
            limit: AtomicU32::new(limit),
            _pad: 0,
        }
    }

    /// Takes a permit if one is available; never blocks.
    #[inline]
    pub fn try_acquire(&self) -> bool {
        // Relaxed: a first guess; the CAS below re-checks it.
        let mut v = self.value.load(Ordering::Relaxed);
        while v > 0 {
            // Acquire: pairs with the AcqRel (hence Release) CAS in `release`, so what the
            // releasing process wrote before giving the permit back is visible to us.
            match self
                .value
                .compare_exchange_weak(v, v - 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => v = now,
            }
        }
        false
    }

    /// Takes a permit, blocking (spinning as `spin` says, then sleeping) while there is none,
    /// until `deadline` (`None`: forever). True if a permit was taken.
    #[inline]
    pub fn acquire(&self, deadline: Option<Instant>, spin: SpinPolicy) -> bool {
        self.try_acquire() || self.acquire_slow(deadline, spin)
    }

    /// The blocking part of [`acquire`](Self::acquire).
    #[cold]
    pub fn acquire_slow(&self, deadline: Option<Instant>, spin: SpinPolicy) -> bool {
        // Spin while a release may be near: not worth it once others already sleep.
        let got = spin.attempts(|| {
            if self.try_acquire() {
                Round::Done(())
            // Relaxed: only a hint to stop spinning.
            } else if self.waiters.load(Ordering::Relaxed) != 0 {
                Round::Sleep
            } else {
                Round::Again
            }
        });
        if got.is_some() {
            return true;
        }

        // SYNC POINT (step 1): announce before the re-check in step 2. Relaxed: ordered
        // before step 2 by program order, and step 2 is a Release RMW that publishes it to
        // the releaser's Acquire CAS (step a); see the module docs.
        self.waiters.fetch_add(1, Ordering::Relaxed);
        let taken = loop {
            // SYNC POINT (step 2): a read-modify-write (adding 0), not a load, so that it
            // sits in `value`'s modification order with the releaser's CAS (step a). AcqRel
            // pairs both ways with that CAS: if ours comes first, the releaser's step b
            // sees our step 1; if theirs comes first, we read the permit.
            let v = self.value.fetch_add(0, Ordering::AcqRel);
            if v > 0 {
                // Acquire: pairs with the CAS in `release`, as in `try_acquire`.
                if self
                    .value
                    .compare_exchange(v, v - 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    break true;
                }
                continue;
            }
            // Step 3: sleeps only while `value` is still 0 (checked by the kernel).
            if futex::wait(&self.value, 0, deadline) == WaitResult::TimedOut
                && time::expired(deadline)
            {
                // One last look: a permit released just now is ours rather than left for
                // a wake that went to nobody.
                break self.try_acquire();
            }
        };
        // Relaxed: the count only decides whether a release calls futex_wake; a late
        // decrement costs at most one useless wake.
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        taken
    }

    /// Gives a permit back and wakes one sleeper, if any.
    ///
    /// # Errors
    /// `Err(limit)` when the value is already at its limit (nothing changes).
    #[inline]
    pub fn release(&self) -> core::result::Result<(), u32> {
        // Relaxed: fixed before the object was shared; a hostile peer changing it can only
        // make releases fail or succeed wrongly, never touch memory.
        let limit = self.limit.load(Ordering::Relaxed);
        // Relaxed: a first guess; the CAS re-checks it.
        let mut v = self.value.load(Ordering::Relaxed);
        loop {
            if v >= limit {
                return Err(limit);
            }
            // SYNC POINT (step a): AcqRel. Release: pairs with the Acquire CAS of whoever
            // takes this permit (and with step 2 of a waiter that reads it). Acquire: pairs
            // with the Release RMW of step 2 in `acquire_slow`, when that came first in
            // `value`'s modification order, so that step b then sees the waiter's step 1.
            match self
                .value
                .compare_exchange_weak(v, v + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => v = now,
            }
        }
        // SYNC POINT (step b). Relaxed is enough: when a waiter's step 2 preceded our CAS,
        // its step 1 happens-before this load (through the AcqRel pair above), and
        // coherence forbids reading a count older than that increment.
        if self.waiters.load(Ordering::Relaxed) != 0 {
            futex::wake_one(&self.value);
        }
        Ok(())
    }

    /// Permits available now (a snapshot).
    #[inline]
    pub fn value(&self) -> u32 {
        // Relaxed: a snapshot for the caller; orders nothing.
        self.value.load(Ordering::Relaxed)
    }

    /// The highest value a release may reach.
    #[inline]
    pub fn limit(&self) -> u32 {
        // Relaxed: written before the object was shared.
        self.limit.load(Ordering::Relaxed)
    }

    /// Acquirers that may be sleeping now (a snapshot, for diagnostics).
    #[inline]
    pub fn waiters(&self) -> u32 {
        // Relaxed: a snapshot for diagnostics.
        self.waiters.load(Ordering::Relaxed)
    }
}
