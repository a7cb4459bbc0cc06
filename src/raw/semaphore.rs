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
//! A permit held by a process that dies is lost for good, as in Python: the robust mode
//! below is the answer.
//!
//! # The robust mode: permits owned by processes
//!
//! A robust semaphore of `n` permits is `n` [`Permit`] words after the state (its
//! `limit` is `n`): each is 0 (free) or the identity of the process that holds it (pid
//! and start time, `liveness::ident`). Taking a permit is one CAS of a free word to the
//! taker's identity, so a permit is never held without a name: there is no window in
//! which a process that dies holds an unrecorded permit. Giving it back is a CAS from the
//! holder's identity to 0 (so only the process that holds a permit releases it: Python's
//! release-from-anywhere is the default mode's). `value` is then no count but an event
//! count: a release bumps it (and wakes) when `waiters` says someone may sleep, with the
//! same Dekker pair as above (the waiter registers, fences, looks at the words; the
//! releaser frees its word, fences, reads `waiters`).
//!
//! A waiter also looks, on the [`Liveness::recheck`] schedule (1 ms, doubling to 100
//! ms), for a permit whose holder is dead ([`Liveness::is_dead`]: gone, a zombie, or a
//! reused pid), and takes it over with a CAS from the dead identity to its own: exactly
//! one survivor gets each dead holder's permit, within about 100 ms of the death, and
//! nothing else is lost. [`RawSemaphore::robust_recovered`] counts them. A `try_acquire`
//! looks for dead holders too, if the caller asks (the handle does, now and then). The
//! limit: `n` words are scanned by a take (from a place that depends on the caller's
//! pid), so a robust semaphore has at most [`ROBUST_MAX`] permits.

use crate::sync::futex::{self, WaitResult};
use crate::sync::liveness::{split_ident, Liveness};
use crate::sync::spin::{Round, SpinPolicy};
use crate::sync::{fence, time, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

/// The largest value a semaphore can hold (`i32::MAX`, as for a POSIX `sem_t`).
pub const VALUE_MAX: u32 = i32::MAX as u32;

/// The most permits a robust semaphore may have (module docs).
pub const ROBUST_MAX: u32 = 4096;

/// One permit of a robust semaphore: 0 (free), or the identity of the process that
/// holds it (module docs, "The robust mode"). All zero bytes is a free permit.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Permit {
    owner: AtomicU64,
}

// SAFETY: `#[repr(C)]`, one atomic word; any value is a free permit or a holder's identity
// (one that names nobody is judged dead and taken over).
unsafe impl crate::raw::SharedState for Permit {}

impl Permit {
    /// A free permit.
    pub fn new() -> Permit {
        Permit {
            owner: AtomicU64::new(0),
        }
    }

    /// The pid of the holder, if held (a snapshot).
    pub fn holder(&self) -> Option<u32> {
        // Relaxed: a snapshot for diagnostics.
        match self.owner.load(Ordering::Relaxed) {
            0 => None,
            id => Some(split_ident(id).0),
        }
    }
}

/// How a robust acquisition got its permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// The permit's index (to give it back with [`RawSemaphore::robust_release`]).
    pub index: usize,
    /// The permit was taken over from a holder that died.
    pub recovered: bool,
}

/// A robust release by a process that holds no permit (or not this one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotHolder;

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
    /// The highest value `release` may reach (the robust mode: the number of permits).
    /// Written once, before the object is shared.
    limit: AtomicU32,
    /// The robust mode: permits taken over from dead holders (padding in the default
    /// mode).
    recovered: AtomicU32,
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
            recovered: AtomicU32::new(0),
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

    // -----------------------------------------------------------------------------------
    // The robust mode (module docs).

    /// A robust semaphore of `permits` permits (its permit words are zeroed memory: all
    /// free), clamped to [`ROBUST_MAX`].
    pub fn new_robust(permits: u32) -> RawSemaphore {
        RawSemaphore {
            value: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            limit: AtomicU32::new(permits.min(ROBUST_MAX)),
            recovered: AtomicU32::new(0),
        }
    }

    /// Takes a free permit of `permits` for `who`'s process, without waiting: one CAS
    /// per free word tried, from a place that depends on the caller (so that processes
    /// do not all contend for the first word).
    pub fn robust_try_acquire(&self, permits: &[Permit], who: &impl Liveness) -> Option<usize> {
        let n = permits.len();
        if n == 0 {
            return None;
        }
        let me = who.my_ident();
        let first = who.me() as usize % n;
        (0..n).map(|k| (first + k) % n).find(|&i| {
            let w = &permits[i].owner;
            // Relaxed: a guess; the CAS decides. Acquire on success: pairs with the
            // Release CAS of the release that freed it (what its holder did under it
            // happens before us).
            w.load(Ordering::Relaxed) == 0
                && w.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
        })
    }

    /// Takes over a permit whose holder is dead, if there is one (module docs): exactly
    /// one caller gets each. Reads a procfs file per held permit: call it on a schedule.
    pub fn robust_recover(&self, permits: &[Permit], who: &impl Liveness) -> Option<usize> {
        let me = who.my_ident();
        for (i, p) in permits.iter().enumerate() {
            // Relaxed: the CAS below re-checks the value.
            let id = p.owner.load(Ordering::Relaxed);
            if id == 0 || id == me {
                continue;
            }
            let (pid, start) = split_ident(id);
            // AcqRel: Acquire pairs with the Release of the holder's own take (nothing it
            // published under the permit is lost to us); the CAS makes exactly one
            // survivor take it over.
            if who.is_dead(pid, start)
                && p.owner
                    .compare_exchange(id, me, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                // Relaxed: a counter for diagnostics.
                self.recovered.fetch_add(1, Ordering::Relaxed);
                return Some(i);
            }
        }
        None
    }

    /// Permits taken over from dead holders since the semaphore was made.
    pub fn robust_recovered(&self) -> u32 {
        // Relaxed: a snapshot.
        self.recovered.load(Ordering::Relaxed)
    }

    /// Takes a permit for `who`'s process, waiting (spinning as `spin` says, then
    /// sleeping) while there is none, until `deadline`; looks for dead holders on `who`'s
    /// liveness schedule. `None` at the deadline.
    pub fn robust_acquire(
        &self,
        permits: &[Permit],
        who: &impl Liveness,
        deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> Option<Taken> {
        let taken = |index| {
            Some(Taken {
                index,
                recovered: false,
            })
        };
        if let Some(i) = self.robust_try_acquire(permits, who) {
            return taken(i);
        }
        let got = spin.attempts(|| match self.robust_try_acquire(permits, who) {
            Some(i) => Round::Done(i),
            // Relaxed: only a hint to stop spinning.
            None if self.waiters.load(Ordering::Relaxed) != 0 => Round::Sleep,
            None => Round::Again,
        });
        if let Some(i) = got {
            return taken(i);
        }
        let mut look = who.recheck();
        let mut next_look = look.and_then(|r| time::deadline_after(r.interval()));
        loop {
            // The model's clock, before the looks that may decide to nap.
            let since = futex::tick();
            // SeqCst: the event count's key, read before the registration (SYNC POINT
            // "robust release": a release after the look below bumps it).
            let key = self.value.load(Ordering::SeqCst);
            // Relaxed: ordered before the look by the fence.
            self.waiters.fetch_add(1, Ordering::Relaxed);
            // SYNC POINT "robust release" (the waiter's half): pairs with the fence in
            // `robust_release`: either we see the freed word or it sees our registration.
            fence(Ordering::SeqCst);
            let mut got = self.robust_try_acquire(permits, who).map(|index| Taken {
                index,
                recovered: false,
            });
            if got.is_none() && look.is_some() && time::expired(next_look) {
                got = self.robust_recover(permits, who).map(|index| Taken {
                    index,
                    recovered: true,
                });
                if let Some(r) = &mut look {
                    r.backoff();
                    next_look = time::deadline_after(r.interval());
                }
            }
            if got.is_some() {
                // Relaxed: a count.
                self.waiters.fetch_sub(1, Ordering::Relaxed);
                return got;
            }
            let res = match next_look {
                // Sleep until released, or until the next look at the holders (a nap:
                // under loom it ends when another thread makes progress, e.g. dies).
                Some(at) => futex::nap(
                    &self.value,
                    key,
                    since,
                    deadline,
                    at.saturating_duration_since(Instant::now()),
                ),
                None => futex::wait(&self.value, key, deadline),
            };
            // Relaxed: a count.
            self.waiters.fetch_sub(1, Ordering::Relaxed);
            if res == WaitResult::TimedOut && time::expired(deadline) {
                // One last look: a permit freed just now is ours.
                return self.robust_try_acquire(permits, who).map(|index| Taken {
                    index,
                    recovered: false,
                });
            }
        }
    }

    /// Gives permit `index` back, if `who`'s process holds it, and wakes a waiter.
    ///
    /// # Errors
    /// [`NotHolder`] when it does not (nothing changes).
    pub fn robust_release(
        &self,
        permits: &[Permit],
        index: usize,
        who: &impl Liveness,
    ) -> Result<(), NotHolder> {
        let p = permits.get(index).ok_or(NotHolder)?;
        // Release: pairs with the Acquire CAS of the next taker. Relaxed on failure:
        // nothing changed.
        p.owner
            .compare_exchange(who.my_ident(), 0, Ordering::Release, Ordering::Relaxed)
            .map_err(|_| NotHolder)?;
        futex::progress();
        // SYNC POINT "robust release" (the releaser's half): pairs with the fence in
        // `robust_acquire`.
        fence(Ordering::SeqCst);
        // Relaxed: ordered by the fence above.
        if self.waiters.load(Ordering::Relaxed) != 0 {
            // SeqCst: the event count's bump (see `robust_acquire`).
            self.value.fetch_add(1, Ordering::SeqCst);
            futex::wake_one(&self.value);
        }
        Ok(())
    }

    /// Gives back one permit that `who`'s process holds (Python's bare `release()` in the
    /// robust mode).
    ///
    /// # Errors
    /// [`NotHolder`] when it holds none.
    pub fn robust_release_any(
        &self,
        permits: &[Permit],
        who: &impl Liveness,
    ) -> Result<(), NotHolder> {
        let me = who.my_ident();
        // Relaxed: a search; `robust_release` CASes.
        let i = permits
            .iter()
            .position(|p| p.owner.load(Ordering::Relaxed) == me)
            .ok_or(NotHolder)?;
        self.robust_release(permits, i, who)
    }

    /// Free permits of a robust semaphore (a snapshot).
    pub fn robust_value(&self, permits: &[Permit]) -> u32 {
        // Relaxed: a snapshot.
        permits
            .iter()
            .filter(|p| p.owner.load(Ordering::Relaxed) == 0)
            .count() as u32
    }
}
