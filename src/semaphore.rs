//! [`Semaphore`] and [`BoundedSemaphore`]: Python's counting semaphores, in shared memory.
//!
//! `acquire` takes a permit (blocking while there is none), `release` gives one back,
//! from any process: a permit is not bound to the process that took it, so a permit held
//! by a process that dies is lost, as in Python. Neither side makes a system call while
//! nobody has to sleep.
//!
//! The algorithm and why no wake-up is lost: [`raw::semaphore`](crate::raw::semaphore).

use crate::arena::{fingerprint, Arena, EntryCopy, ObjectKind, Shm};
use crate::error::{Error, Result};
use crate::raw::semaphore::RawSemaphore;
pub use crate::raw::semaphore::VALUE_MAX;
use crate::sync::time;
use crate::SpinPolicy;
use std::fmt;
use std::time::Duration;
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
