//! [`Semaphore`] and [`BoundedSemaphore`]: Python's counting semaphores, in shared memory.
//!
//! `acquire` takes a permit (blocking while there is none), `release` gives one back,
//! from any process: a permit is not bound to the process that took it, so a permit held
//! by a process that dies is lost, as in Python. Neither side makes a system call while
//! nobody has to sleep.
//!
//! The algorithm and why no wake-up is lost: [`raw::semaphore`](crate::raw::semaphore).

use crate::arena::{Arena, ObjectKind};
use crate::error::{Error, Result};
use crate::object::{self, Fresh, Handle, Inspect, Obj, Object};
use crate::raw::semaphore::RawSemaphore;
pub use crate::raw::semaphore::VALUE_MAX;
use crate::sync::time;
use crate::SpinPolicy;
use std::borrow::Cow;
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

fn check_value(value: u32) -> Result<()> {
    if value > VALUE_MAX {
        return Err(Error::InvalidArgument(format!(
            "semaphore value {value} is above the maximum {VALUE_MAX} (i32::MAX)"
        )));
    }
    Ok(())
}

/// What both handles are: the permits of a [`RawSemaphore`] object of kind `O`, and how
/// long this handle spins. Every method of both is written once here.
struct Permits<O: Object<State = RawSemaphore>> {
    raw: Obj<O>,
    spin: SpinPolicy,
}

impl<O: Object<State = RawSemaphore>> Clone for Permits<O> {
    fn clone(&self) -> Self {
        Permits {
            raw: self.raw.clone(),
            spin: self.spin,
        }
    }
}

impl<O: Object<State = RawSemaphore>> Permits<O> {
    fn new(raw: Obj<O>) -> Self {
        Permits {
            raw,
            spin: SpinPolicy::default(),
        }
    }

    #[inline]
    fn acquire(&self) -> SemaphoreGuard<'_> {
        self.raw.acquire(None, self.spin);
        SemaphoreGuard { raw: &self.raw }
    }

    #[inline]
    fn try_acquire(&self) -> core::result::Result<SemaphoreGuard<'_>, PermitError> {
        if self.raw.try_acquire() {
            Ok(SemaphoreGuard { raw: &self.raw })
        } else {
            Err(PermitError::WouldBlock)
        }
    }

    fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> core::result::Result<SemaphoreGuard<'_>, PermitError> {
        if self.raw.acquire(time::deadline_after(timeout), self.spin) {
            Ok(SemaphoreGuard { raw: &self.raw })
        } else {
            Err(PermitError::Timeout)
        }
    }

    #[inline]
    fn release(&self) -> core::result::Result<(), TooManyReleases> {
        self.raw
            .release()
            .map_err(|limit| TooManyReleases { limit })
    }
}

impl Object for Semaphore {
    type State = RawSemaphore;
    type Params = u32;
    const KIND: ObjectKind = ObjectKind::Semaphore;

    fn type_name() -> Cow<'static, str> {
        "Semaphore".into()
    }

    fn init(value: &u32, mut fresh: Fresh<'_, RawSemaphore>) {
        fresh.write(RawSemaphore::new(*value, VALUE_MAX));
    }

    fn inspect(sem: &RawSemaphore, _: &u32, out: &mut Inspect) {
        out.field("value", sem.value());
        out.field("waiters", sem.waiters());
    }
}

impl Handle for Semaphore {
    fn from_obj(raw: Obj<Semaphore>) -> Result<Semaphore> {
        Ok(Semaphore {
            p: Permits::new(raw),
        })
    }

    fn obj(&self) -> &Obj<Semaphore> {
        &self.p.raw
    }
}

impl Object for BoundedSemaphore {
    type State = RawSemaphore;
    type Params = u32;
    const KIND: ObjectKind = ObjectKind::BoundedSemaphore;

    fn type_name() -> Cow<'static, str> {
        "BoundedSemaphore".into()
    }

    fn check(&bound: &u32, sem: &RawSemaphore) -> Result<()> {
        if bound == 0 || bound > VALUE_MAX || bound != sem.limit() {
            return Err(Error::Corrupt(format!(
                "bound {bound} does not match its state's {}",
                sem.limit()
            )));
        }
        Ok(())
    }

    fn init(value: &u32, mut fresh: Fresh<'_, RawSemaphore>) {
        fresh.write(RawSemaphore::new(*value, *value));
    }

    fn inspect(sem: &RawSemaphore, _: &u32, out: &mut Inspect) {
        out.field("value", sem.value());
        out.field("bound", sem.limit());
        out.field("waiters", sem.waiters());
    }
}

impl Handle for BoundedSemaphore {
    fn from_obj(raw: Obj<BoundedSemaphore>) -> Result<BoundedSemaphore> {
        Ok(BoundedSemaphore {
            p: Permits::new(raw),
        })
    }

    fn obj(&self) -> &Obj<BoundedSemaphore> {
        &self.p.raw
    }
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
    p: Permits<Semaphore>,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.p.raw.debug(f, &[])
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
    /// [`Error::OutOfSpace`] when the arena is full to its limit.
    pub fn new_in(arena: &Arena, value: u32) -> Result<Semaphore> {
        check_value(value)?;
        object::make(arena, None, value)
    }

    /// A new semaphore named `name` in `arena`, for [`Semaphore::open`] to find.
    ///
    /// # Errors
    /// As [`new_in`](Self::new_in), and [`Error::AlreadyExists`] or
    /// [`Error::InvalidName`].
    pub fn create(arena: &Arena, name: &str, value: u32) -> Result<Semaphore> {
        check_value(value)?;
        object::make(arena, Some(name), value)
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
        object::find(arena, name)
    }

    /// Sets how long this handle spins before sleeping (see [`SpinPolicy`]).
    pub fn set_spin(&mut self, spin: SpinPolicy) {
        self.p.spin = spin;
    }

    /// Takes a permit, blocking while there is none.
    #[inline]
    pub fn acquire(&self) -> SemaphoreGuard<'_> {
        self.p.acquire()
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
        self.p.try_acquire()
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
        self.p.acquire_timeout(timeout)
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
        self.p.release()
    }

    /// Permits available now (a snapshot): Python's `get_value()`.
    pub fn value(&self) -> u32 {
        self.p.raw.value()
    }

    /// The shared state, for model checks and diagnostics.
    pub fn raw(&self) -> &RawSemaphore {
        &self.p.raw
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
    p: Permits<BoundedSemaphore>,
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.p.raw.debug(f, &[])
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
    /// As [`new`](Self::new), and [`Error::OutOfSpace`] when the
    /// arena is full.
    pub fn new_in(arena: &Arena, value: u32) -> Result<BoundedSemaphore> {
        Self::check(value)?;
        object::make(arena, None, value)
    }

    /// A new bounded semaphore named `name` in `arena`, for [`BoundedSemaphore::open`].
    ///
    /// # Errors
    /// As [`new_in`](Self::new_in), and [`Error::AlreadyExists`] or
    /// [`Error::InvalidName`].
    pub fn create(arena: &Arena, name: &str, value: u32) -> Result<BoundedSemaphore> {
        Self::check(value)?;
        object::make(arena, Some(name), value)
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
        object::find(arena, name)
    }

    fn check(value: u32) -> Result<()> {
        if value == 0 {
            return Err(Error::InvalidArgument(
                "a BoundedSemaphore needs a value of at least 1 (its bound)".into(),
            ));
        }
        check_value(value)
    }

    /// Sets how long this handle spins before sleeping (see [`SpinPolicy`]).
    pub fn set_spin(&mut self, spin: SpinPolicy) {
        self.p.spin = spin;
    }

    /// Takes a permit, blocking while there is none.
    #[inline]
    pub fn acquire(&self) -> SemaphoreGuard<'_> {
        self.p.acquire()
    }

    /// Takes a permit if one is available; never blocks.
    ///
    /// # Errors
    /// [`PermitError::WouldBlock`] when the value is 0.
    #[inline]
    pub fn try_acquire(&self) -> core::result::Result<SemaphoreGuard<'_>, PermitError> {
        self.p.try_acquire()
    }

    /// Takes a permit, blocking at most `timeout` while there is none.
    ///
    /// # Errors
    /// [`PermitError::Timeout`] when no permit came in time.
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> core::result::Result<SemaphoreGuard<'_>, PermitError> {
        self.p.acquire_timeout(timeout)
    }

    /// Takes a permit and keeps it (no guard): Python's `acquire()`. Give it back with
    /// [`release`](Self::release).
    pub fn acquire_forever(&self) {
        self.p.acquire().forget();
    }

    /// Gives a permit back, from any process, and wakes one waiting process, if any.
    ///
    /// # Errors
    /// [`TooManyReleases`] when the value is already at the bound: a release without a
    /// matching acquire (Python raises `ValueError`). The value is unchanged.
    #[inline]
    pub fn release(&self) -> core::result::Result<(), TooManyReleases> {
        self.p.release()
    }

    /// Permits available now (a snapshot): Python's `get_value()`.
    pub fn value(&self) -> u32 {
        self.p.raw.value()
    }

    /// The bound: the initial value, which `release` never exceeds.
    pub fn bound(&self) -> u32 {
        self.p.raw.limit()
    }

    /// The shared state, for model checks and diagnostics.
    pub fn raw(&self) -> &RawSemaphore {
        &self.p.raw
    }
}
