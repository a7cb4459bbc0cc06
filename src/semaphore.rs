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

use crate::arena::{fingerprint, Arena, EntryCopy, ObjectKind, Shm};
use crate::error::{Error, Result};
use crate::sync::futex::{self, WaitResult};
use crate::sync::{time, AtomicU32, Ordering};
use crate::SpinPolicy;
use std::fmt;
use std::time::{Duration, Instant};

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
        for round in 0..spin.rounds {
            if self.try_acquire() {
                return true;
            }
            // Relaxed: only a hint to stop spinning.
            if self.waiters.load(Ordering::Relaxed) != 0 {
                break;
            }
            spin.pause(round);
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

// ---------------------------------------------------------------------------------------
// Errors.

/// Why [`Semaphore::try_acquire`] or [`Semaphore::acquire_timeout`] (or the
/// [`BoundedSemaphore`] ones) gave no permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermitError {
    /// `try_acquire`: no permit was available.
    WouldBlock,
    /// `acquire_timeout`: no permit became available before the timeout.
    Timeout,
}

impl fmt::Display for PermitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PermitError::WouldBlock => {
                f.write_str("no permit available: the semaphore's value is 0")
            }
            PermitError::Timeout => {
                f.write_str("timed out waiting for a permit: nobody released the semaphore")
            }
        }
    }
}

impl std::error::Error for PermitError {}

/// A release would raise the semaphore above its limit: a [`BoundedSemaphore`] released
/// more often than it was acquired (Python's `ValueError`), or a [`Semaphore`] at
/// [`VALUE_MAX`]. Nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyReleases {
    /// The limit: a bounded semaphore's initial value, or [`VALUE_MAX`].
    pub limit: u32,
}

impl fmt::Display for TooManyReleases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "semaphore released too many times: its value is already at its limit of {} \
             (release only permits that were acquired)",
            self.limit
        )
    }
}

impl std::error::Error for TooManyReleases {}

// ---------------------------------------------------------------------------------------
// The guard.

/// One permit of a [`Semaphore`] or [`BoundedSemaphore`], given back when dropped.
///
/// [`forget`](Self::forget) keeps the permit instead, for Python-style code that releases it
/// later (perhaps from another process) with `release()`.
#[must_use = "the permit is given back as soon as the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    raw: &'a RawSemaphore,
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard").finish_non_exhaustive()
    }
}

impl SemaphoreGuard<'_> {
    /// Keeps the permit: it is not given back on drop. Give it back later with the
    /// handle's `release()`, from this or any other process.
    ///
    /// ```
    /// let sem = shmproc::semaphore::Semaphore::new(1)?;
    /// sem.acquire().forget();
    /// assert_eq!(sem.value(), 0);
    /// sem.release()?;
    /// assert_eq!(sem.value(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn forget(self) {
        core::mem::forget(self);
    }

    /// Gives the permit back now, reporting what `drop` would ignore.
    ///
    /// # Errors
    /// [`TooManyReleases`] when the semaphore is already at its limit: someone released
    /// permits that were never acquired. The value is left at the limit.
    pub fn release(self) -> core::result::Result<(), TooManyReleases> {
        let raw = self.raw;
        core::mem::forget(self);
        raw.release().map_err(|limit| TooManyReleases { limit })
    }
}

impl Drop for SemaphoreGuard<'_> {
    /// Gives the permit back. If the semaphore is already at its limit (others released
    /// permits they never acquired), the error is ignored: use
    /// [`release`](SemaphoreGuard::release) to see it.
    fn drop(&mut self) {
        let _ = self.raw.release();
    }
}

// ---------------------------------------------------------------------------------------
// The handles.

const SEMAPHORE_DESC: &str = "Semaphore";
const BOUNDED_DESC: &str = "BoundedSemaphore";

/// What the directory entry's `param` says: 0 for a `Semaphore`, the bound (>= 1) for a
/// `BoundedSemaphore`.
const PARAM_UNBOUNDED: u64 = 0;

fn check_value(value: u32) -> Result<()> {
    if value > VALUE_MAX {
        return Err(Error::InvalidArgument(format!(
            "semaphore value {value} is above the maximum {VALUE_MAX} (i32::MAX)"
        )));
    }
    Ok(())
}

fn make_raw(
    arena: &Arena,
    name: Option<&str>,
    value: u32,
    limit: u32,
    param: u64,
) -> Result<Shm<RawSemaphore>> {
    arena.create_object::<RawSemaphore>(
        name,
        ObjectKind::Semaphore,
        fingerprint::<RawSemaphore>(),
        core::mem::size_of::<RawSemaphore>(),
        param,
        |block| {
            // SAFETY: `block` points to at least size_of::<RawSemaphore>() zeroed bytes,
            // aligned to 128 (>= align_of::<RawSemaphore>()), not yet published, so no other
            // process or thread can see them while we write.
            unsafe {
                block
                    .cast::<RawSemaphore>()
                    .as_ptr()
                    .write(RawSemaphore::new(value, limit))
            }
        },
    )
}

fn open_raw(arena: &Arena, name: &str, bounded: bool) -> Result<Shm<RawSemaphore>> {
    let desc = if bounded {
        BOUNDED_DESC
    } else {
        SEMAPHORE_DESC
    };
    let (raw, entry): (Shm<RawSemaphore>, EntryCopy) = arena.open_object::<RawSemaphore>(
        name,
        ObjectKind::Semaphore,
        fingerprint::<RawSemaphore>(),
        desc,
    )?;
    let is_bounded = entry.param != PARAM_UNBOUNDED;
    if is_bounded != bounded {
        return Err(Error::WrongType {
            name: name.to_string(),
            expected: desc.to_string(),
            found: if is_bounded {
                BOUNDED_DESC
            } else {
                SEMAPHORE_DESC
            }
            .to_string(),
        });
    }
    Ok(raw)
}

/// A counting semaphore shared between processes: Python's `multiprocessing.Semaphore`.
///
/// The state is 16 bytes in an [`Arena`]; the handle is `Clone + Send + Sync` and keeps
/// working in every process `fork`ed after it was made. [`acquire`](Self::acquire) returns
/// a [`SemaphoreGuard`] that gives the permit back when dropped; for Python's explicit
/// `acquire()` / `release()` pairs, [`forget`](SemaphoreGuard::forget) the guard (or call
/// [`acquire_forever`](Self::acquire_forever)) and [`release`](Self::release) later, from
/// any process. See the [module docs](self) for the algorithm.
///
/// # Example
/// ```
/// use shmproc::semaphore::Semaphore;
/// let sem = Semaphore::new(2)?;
/// let a = sem.acquire();
/// let b = sem.acquire();
/// assert!(sem.try_acquire().is_err()); // a third would block
/// drop(a);
/// assert_eq!(sem.value(), 1);
/// # drop(b);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Semaphore {
    raw: Shm<RawSemaphore>,
    spin: SpinPolicy,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.raw.value())
            .finish()
    }
}

impl Semaphore {
    /// A new semaphore holding `value` permits, in the [global arena](Arena::global).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `value` is above [`VALUE_MAX`]; the global arena
    /// cannot be made or is full.
    ///
    /// ```
    /// use shmproc::semaphore::{Semaphore, VALUE_MAX};
    /// assert_eq!(Semaphore::new(3)?.value(), 3);
    /// assert!(Semaphore::new(VALUE_MAX + 1).is_err());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn new(value: u32) -> Result<Semaphore> {
        check_value(value)?;
        Self::new_in(&Arena::global()?, value)
    }

    /// A new semaphore holding `value` permits, in `arena`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `value` is above [`VALUE_MAX`];
    /// [`Error::OutOfSpace`] / [`Error::DirectoryFull`] when the arena is full.
    pub fn new_in(arena: &Arena, value: u32) -> Result<Semaphore> {
        Self::make(arena, None, value)
    }

    /// A new semaphore named `name` in `arena`, for [`Semaphore::open`] to find.
    ///
    /// # Errors
    /// As [`new_in`](Self::new_in), and [`Error::AlreadyExists`] or
    /// [`Error::InvalidName`].
    pub fn create(arena: &Arena, name: &str, value: u32) -> Result<Semaphore> {
        Self::make(arena, Some(name), value)
    }

    /// The semaphore named `name` in `arena`.
    ///
    /// # Errors
    /// [`Error::NotFound`], or [`Error::WrongType`] when `name` is not a `Semaphore` (a
    /// [`BoundedSemaphore`] is another type).
    ///
    /// ```
    /// use shmproc::{semaphore::Semaphore, Arena};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// let a = Semaphore::create(&arena, "slots", 4)?;
    /// let b = Semaphore::open(&arena, "slots")?;
    /// let _permit = a.acquire();
    /// assert_eq!(b.value(), 3);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn open(arena: &Arena, name: &str) -> Result<Semaphore> {
        Ok(Semaphore {
            raw: open_raw(arena, name, false)?,
            spin: SpinPolicy::default(),
        })
    }

    fn make(arena: &Arena, name: Option<&str>, value: u32) -> Result<Semaphore> {
        check_value(value)?;
        Ok(Semaphore {
            raw: make_raw(arena, name, value, VALUE_MAX, PARAM_UNBOUNDED)?,
            spin: SpinPolicy::default(),
        })
    }

    /// Sets how long this handle spins before sleeping (see [`SpinPolicy`]).
    pub fn set_spin(&mut self, spin: SpinPolicy) {
        self.spin = spin;
    }

    /// Takes a permit, blocking while there is none.
    #[inline]
    pub fn acquire(&self) -> SemaphoreGuard<'_> {
        self.raw.acquire(None, self.spin);
        SemaphoreGuard { raw: &self.raw }
    }

    /// Takes a permit if one is available; never blocks.
    ///
    /// # Errors
    /// [`PermitError::WouldBlock`] when the value is 0.
    ///
    /// ```
    /// use shmproc::semaphore::{PermitError, Semaphore};
    /// let sem = Semaphore::new(0)?;
    /// assert_eq!(sem.try_acquire().unwrap_err(), PermitError::WouldBlock);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> core::result::Result<SemaphoreGuard<'_>, PermitError> {
        if self.raw.try_acquire() {
            Ok(SemaphoreGuard { raw: &self.raw })
        } else {
            Err(PermitError::WouldBlock)
        }
    }

    /// Takes a permit, blocking at most `timeout` while there is none.
    ///
    /// # Errors
    /// [`PermitError::Timeout`] when no permit came in time.
    ///
    /// ```
    /// use shmproc::semaphore::{PermitError, Semaphore};
    /// use std::time::Duration;
    /// let sem = Semaphore::new(0)?;
    /// let err = sem.acquire_timeout(Duration::from_millis(10)).unwrap_err();
    /// assert_eq!(err, PermitError::Timeout);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> core::result::Result<SemaphoreGuard<'_>, PermitError> {
        if self.raw.acquire(time::deadline_after(timeout), self.spin) {
            Ok(SemaphoreGuard { raw: &self.raw })
        } else {
            Err(PermitError::Timeout)
        }
    }

    /// Takes a permit and keeps it (no guard): Python's `acquire()`. Give it back with
    /// [`release`](Self::release).
    pub fn acquire_forever(&self) {
        self.acquire().forget();
    }

    /// Gives a permit back (Python's `release()`), from any process, and wakes one process
    /// waiting in `acquire`, if any.
    ///
    /// # Errors
    /// [`TooManyReleases`] when the value is already [`VALUE_MAX`].
    ///
    /// ```
    /// let sem = shmproc::semaphore::Semaphore::new(0)?;
    /// sem.release()?; // a Semaphore may be released above its initial value
    /// assert_eq!(sem.value(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn release(&self) -> core::result::Result<(), TooManyReleases> {
        self.raw
            .release()
            .map_err(|limit| TooManyReleases { limit })
    }

    /// Permits available now (a snapshot): Python's `get_value()`.
    pub fn value(&self) -> u32 {
        self.raw.value()
    }

    /// The shared state, for model checks and diagnostics.
    pub fn raw(&self) -> &RawSemaphore {
        &self.raw
    }
}

/// A semaphore that refuses to be released above its initial value: Python's
/// `multiprocessing.BoundedSemaphore`.
///
/// Everything is as for [`Semaphore`], except that [`release`](Self::release) returns
/// [`TooManyReleases`] when the value is already at the bound (the initial value), which
/// catches a permit released twice.
///
/// # Example
/// ```
/// use shmproc::semaphore::{BoundedSemaphore, TooManyReleases};
/// let sem = BoundedSemaphore::new(1)?;
/// sem.acquire_forever();
/// assert_eq!(sem.release(), Ok(()));
/// assert_eq!(sem.release(), Err(TooManyReleases { limit: 1 }));
/// assert_eq!(sem.value(), 1);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    inner: Semaphore,
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("value", &self.inner.raw.value())
            .field("bound", &self.inner.raw.limit())
            .finish()
    }
}

impl BoundedSemaphore {
    /// A new bounded semaphore holding `value` permits (also its bound), in the
    /// [global arena](Arena::global).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `value` is 0 (such a semaphore could never be
    /// acquired nor released) or above [`VALUE_MAX`]; the global arena cannot be made or is
    /// full.
    ///
    /// ```
    /// use shmproc::semaphore::BoundedSemaphore;
    /// assert!(BoundedSemaphore::new(0).is_err());
    /// assert_eq!(BoundedSemaphore::new(2)?.bound(), 2);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn new(value: u32) -> Result<BoundedSemaphore> {
        Self::check(value)?;
        Self::new_in(&Arena::global()?, value)
    }

    /// A new bounded semaphore holding `value` permits, in `arena`.
    ///
    /// # Errors
    /// As [`new`](Self::new), and [`Error::OutOfSpace`] / [`Error::DirectoryFull`] when the
    /// arena is full.
    pub fn new_in(arena: &Arena, value: u32) -> Result<BoundedSemaphore> {
        Self::make(arena, None, value)
    }

    /// A new bounded semaphore named `name` in `arena`, for [`BoundedSemaphore::open`].
    ///
    /// # Errors
    /// As [`new_in`](Self::new_in), and [`Error::AlreadyExists`] or
    /// [`Error::InvalidName`].
    pub fn create(arena: &Arena, name: &str, value: u32) -> Result<BoundedSemaphore> {
        Self::make(arena, Some(name), value)
    }

    /// The bounded semaphore named `name` in `arena`.
    ///
    /// # Errors
    /// [`Error::NotFound`], or [`Error::WrongType`] when `name` is not a
    /// `BoundedSemaphore` (a plain [`Semaphore`] is another type).
    ///
    /// ```
    /// use shmproc::{semaphore::{BoundedSemaphore, Semaphore}, Arena, Error};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// BoundedSemaphore::create(&arena, "pool", 3)?;
    /// assert_eq!(BoundedSemaphore::open(&arena, "pool")?.bound(), 3);
    /// assert!(matches!(Semaphore::open(&arena, "pool"), Err(Error::WrongType { .. })));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn open(arena: &Arena, name: &str) -> Result<BoundedSemaphore> {
        Ok(BoundedSemaphore {
            inner: Semaphore {
                raw: open_raw(arena, name, true)?,
                spin: SpinPolicy::default(),
            },
        })
    }

    fn check(value: u32) -> Result<()> {
        if value == 0 {
            return Err(Error::InvalidArgument(
                "a BoundedSemaphore needs a value of at least 1 (its bound)".into(),
            ));
        }
        check_value(value)
    }

    fn make(arena: &Arena, name: Option<&str>, value: u32) -> Result<BoundedSemaphore> {
        Self::check(value)?;
        Ok(BoundedSemaphore {
            inner: Semaphore {
                raw: make_raw(arena, name, value, value, u64::from(value))?,
                spin: SpinPolicy::default(),
            },
        })
    }

    /// Sets how long this handle spins before sleeping (see [`SpinPolicy`]).
    pub fn set_spin(&mut self, spin: SpinPolicy) {
        self.inner.set_spin(spin);
    }

    /// Takes a permit, blocking while there is none.
    #[inline]
    pub fn acquire(&self) -> SemaphoreGuard<'_> {
        self.inner.acquire()
    }

    /// Takes a permit if one is available; never blocks.
    ///
    /// # Errors
    /// [`PermitError::WouldBlock`] when the value is 0.
    #[inline]
    pub fn try_acquire(&self) -> core::result::Result<SemaphoreGuard<'_>, PermitError> {
        self.inner.try_acquire()
    }

    /// Takes a permit, blocking at most `timeout` while there is none.
    ///
    /// # Errors
    /// [`PermitError::Timeout`] when no permit came in time.
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> core::result::Result<SemaphoreGuard<'_>, PermitError> {
        self.inner.acquire_timeout(timeout)
    }

    /// Takes a permit and keeps it (no guard): Python's `acquire()`. Give it back with
    /// [`release`](Self::release).
    pub fn acquire_forever(&self) {
        self.inner.acquire_forever();
    }

    /// Gives a permit back, from any process, and wakes one waiting process, if any.
    ///
    /// # Errors
    /// [`TooManyReleases`] when the value is already at the bound: a release without a
    /// matching acquire (Python raises `ValueError`). The value is unchanged.
    #[inline]
    pub fn release(&self) -> core::result::Result<(), TooManyReleases> {
        self.inner.release()
    }

    /// Permits available now (a snapshot): Python's `get_value()`.
    pub fn value(&self) -> u32 {
        self.inner.value()
    }

    /// The bound: the initial value, which `release` never exceeds.
    pub fn bound(&self) -> u32 {
        self.inner.raw.limit()
    }

    /// The shared state, for model checks and diagnostics.
    pub fn raw(&self) -> &RawSemaphore {
        &self.inner.raw
    }
}
