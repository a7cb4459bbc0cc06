//! [`Semaphore`] and [`BoundedSemaphore`]: Python's counting semaphores, in shared memory.
//!
//! `acquire` takes a permit (blocking while there is none), `release` gives one back,
//! from any process: a permit is not bound to the process that took it, so a permit held
//! by a process that dies is lost, as in Python. Neither side makes a system call while
//! nobody has to sleep.
//!
//! **Robust mode** ([`Semaphore::robust`]): each permit is owned by the process that
//! took it (its pid and start time are recorded in the permit with the CAS that takes
//! it), only that process releases it, and a permit whose holder dies is taken over by a
//! waiting survivor (a waiter looks at the holders 1 ms after it starts waiting, then
//! every 2, 4, ... up to 100 ms; a `try_acquire` that keeps failing looks now and then):
//! nothing is lost with a dead process but the work it did under its permits. It costs a
//! CAS per permit word tried (the words are tried from a place that depends on the pid),
//! and Python's release from another process is refused ([`TooManyReleases`]).
//!
//! The algorithm and why no wake-up is lost: [`raw::semaphore`](crate::raw::semaphore).

use crate::arena::{Arena, ObjectKind};
use crate::error::{Error, Result};
use crate::object::{self, Fresh, Handle, Inspect, Obj, Object, Word};
use crate::raw::semaphore::{Permit, RawSemaphore};
pub use crate::raw::semaphore::{ROBUST_MAX, VALUE_MAX};
use crate::sync::liveness::Procfs;
use crate::sync::plain::{AtomicU32 as PlainU32, Ordering as PlainOrdering};
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
    /// The robust mode: the permits, and the index of the one this guard holds.
    robust: Option<(&'a [Permit], usize)>,
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
        let (raw, robust) = (self.raw, self.robust);
        core::mem::forget(self);
        give_back(raw, robust)
    }
}

/// Gives a guard's permit back.
fn give_back(
    raw: &RawSemaphore,
    robust: Option<(&[Permit], usize)>,
) -> core::result::Result<(), TooManyReleases> {
    match robust {
        None => raw.release().map_err(|limit| TooManyReleases { limit }),
        // The permit is no longer ours only if a survivor judged this process dead (it
        // cannot be) or a peer scribbled on it.
        Some((permits, i)) => {
            raw.robust_release(permits, i, &Procfs)
                .map_err(|_| TooManyReleases {
                    limit: permits.len() as u32,
                })
        }
    }
}

impl Drop for SemaphoreGuard<'_> {
    /// Gives the permit back. If the semaphore is already at its limit (others released
    /// permits they never acquired), the error is ignored: use
    /// [`release`](SemaphoreGuard::release) to see it.
    fn drop(&mut self) {
        let _ = give_back(self.raw, self.robust);
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
    /// The robust mode: the number of permit words after the state (0: the default mode).
    robust: u32,
    /// The robust mode: failed `try_acquire`s of this handle, to look for dead holders
    /// now and then (a process-local count).
    failures: PlainU32,
}

impl<O: Object<State = RawSemaphore>> Clone for Permits<O> {
    fn clone(&self) -> Self {
        Permits {
            raw: self.raw.clone(),
            spin: self.spin,
            robust: self.robust,
            failures: PlainU32::new(0),
        }
    }
}

/// A failing robust `try_acquire` looks for dead holders once in this many (it reads a
/// procfs file per held permit).
const LOOK_EVERY: u32 = 64;

impl<O: Object<State = RawSemaphore>> Permits<O> {
    fn new(raw: Obj<O>, robust: u32) -> Self {
        Permits {
            raw,
            spin: SpinPolicy::default(),
            robust,
            failures: PlainU32::new(0),
        }
    }

    /// The permit words of the robust mode (empty in the default mode).
    fn words(&self) -> &[Permit] {
        let block = self.raw.block();
        let n = self.robust as usize;
        let start = core::mem::size_of::<RawSemaphore>();
        if n == 0 || start + n * core::mem::size_of::<Permit>() > block.len() {
            // (The second: unreachable, the size was checked on create / open.)
            return &[];
        }
        // SAFETY: `start..start + n * 8` lies inside the block (checked above), 8-aligned
        // (the block is aligned to a cache line, the state is 16 bytes); permit words
        // are atomics (any bytes are a value), zeroed at creation, and live as long as
        // `self.raw`.
        unsafe { core::slice::from_raw_parts(block.base().add(start).cast::<Permit>(), n) }
    }

    fn guard(&self, index: Option<usize>) -> SemaphoreGuard<'_> {
        SemaphoreGuard {
            raw: &self.raw,
            robust: index.map(|i| (self.words(), i)),
        }
    }

    #[inline]
    fn acquire(&self) -> SemaphoreGuard<'_> {
        if self.robust == 0 {
            self.raw.acquire(None, self.spin);
            return self.guard(None);
        }
        loop {
            // Without a deadline it ends with a permit.
            if let Some(t) = self
                .raw
                .robust_acquire(self.words(), &Procfs, None, self.spin)
            {
                return self.guard(Some(t.index));
            }
        }
    }

    #[inline]
    fn try_acquire(&self) -> core::result::Result<SemaphoreGuard<'_>, PermitError> {
        if self.robust == 0 {
            return if self.raw.try_acquire() {
                Ok(self.guard(None))
            } else {
                Err(PermitError::WouldBlock)
            };
        }
        let words = self.words();
        if let Some(i) = self.raw.robust_try_acquire(words, &Procfs) {
            return Ok(self.guard(Some(i)));
        }
        // Relaxed: a process-local count.
        if self.failures.fetch_add(1, PlainOrdering::Relaxed) % LOOK_EVERY == LOOK_EVERY - 1 {
            if let Some(i) = self.raw.robust_recover(words, &Procfs) {
                return Ok(self.guard(Some(i)));
            }
        }
        Err(PermitError::WouldBlock)
    }

    fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> core::result::Result<SemaphoreGuard<'_>, PermitError> {
        let deadline = time::deadline_after(timeout);
        if self.robust == 0 {
            return if self.raw.acquire(deadline, self.spin) {
                Ok(self.guard(None))
            } else {
                Err(PermitError::Timeout)
            };
        }
        match self
            .raw
            .robust_acquire(self.words(), &Procfs, deadline, self.spin)
        {
            Some(t) => Ok(self.guard(Some(t.index))),
            None => Err(PermitError::Timeout),
        }
    }

    #[inline]
    fn release(&self) -> core::result::Result<(), TooManyReleases> {
        if self.robust == 0 {
            return self
                .raw
                .release()
                .map_err(|limit| TooManyReleases { limit });
        }
        self.raw
            .robust_release_any(self.words(), &Procfs)
            .map_err(|_| TooManyReleases { limit: self.robust })
    }

    fn value(&self) -> u32 {
        if self.robust == 0 {
            self.raw.value()
        } else {
            self.raw.robust_value(self.words())
        }
    }
}

/// The parameters of a [`Semaphore`]: its initial value (a robust one's number of
/// permits) and whether it is robust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SemParams {
    value: u32,
    robust: bool,
}

impl Word for SemParams {
    fn to_word(&self) -> u64 {
        u64::from(self.value) | (u64::from(self.robust) << 32)
    }

    fn from_word(word: u64) -> Option<SemParams> {
        match word >> 32 {
            r @ (0 | 1) => Some(SemParams {
                value: word as u32,
                robust: r == 1,
            }),
            _ => None,
        }
    }
}

impl Object for Semaphore {
    type State = RawSemaphore;
    type Params = SemParams;
    const KIND: ObjectKind = ObjectKind::Semaphore;

    fn type_name() -> Cow<'static, str> {
        "Semaphore".into()
    }

    fn size(p: &SemParams) -> Result<usize> {
        let state = core::mem::size_of::<RawSemaphore>();
        if !p.robust {
            return Ok(state);
        }
        if !(1..=ROBUST_MAX).contains(&p.value) {
            return Err(Error::InvalidArgument(format!(
                "a robust semaphore has 1 to {ROBUST_MAX} permits, not {}",
                p.value
            )));
        }
        Ok(state + p.value as usize * core::mem::size_of::<Permit>())
    }

    fn check(p: &SemParams, sem: &RawSemaphore) -> Result<()> {
        if p.robust && sem.limit() != p.value {
            return Err(Error::Corrupt(format!(
                "robust semaphore of {} permits records {}",
                p.value,
                sem.limit()
            )));
        }
        Ok(())
    }

    fn init(p: &SemParams, mut fresh: Fresh<'_, RawSemaphore>) {
        fresh.write(if p.robust {
            RawSemaphore::new_robust(p.value)
        } else {
            RawSemaphore::new(p.value, VALUE_MAX)
        });
    }

    fn inspect(sem: &RawSemaphore, p: &SemParams, out: &mut Inspect) {
        if p.robust {
            out.field("permits", p.value);
            out.field("recovered", sem.robust_recovered());
        } else {
            out.field("value", sem.value());
        }
        out.field("waiters", sem.waiters());
    }
}

impl Handle for Semaphore {
    fn from_obj(raw: Obj<Semaphore>) -> Result<Semaphore> {
        let p = *raw.params();
        Ok(Semaphore {
            p: Permits::new(raw, if p.robust { p.value } else { 0 }),
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
            p: Permits::new(raw, 0),
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
        object::make(
            arena,
            None,
            SemParams {
                value,
                robust: false,
            },
        )
    }

    /// A new semaphore named `name` in `arena`, for [`Semaphore::open`] to find.
    ///
    /// # Errors
    /// As [`new_in`](Self::new_in), and [`Error::AlreadyExists`] or
    /// [`Error::InvalidName`].
    pub fn create(arena: &Arena, name: &str, value: u32) -> Result<Semaphore> {
        check_value(value)?;
        object::make(
            arena,
            Some(name),
            SemParams {
                value,
                robust: false,
            },
        )
    }

    /// A new robust semaphore of `permits` permits in the [global arena](Arena::global):
    /// each permit belongs to the process that took it, only that process releases it,
    /// and a permit whose holder dies is taken over by a waiting survivor (module docs).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `1 <= permits <= ROBUST_MAX`; the global arena
    /// cannot be made or is full.
    ///
    /// ```
    /// use shmproc::semaphore::Semaphore;
    /// let sem = Semaphore::robust(2)?;
    /// let a = sem.acquire();
    /// assert_eq!(sem.value(), 1);
    /// drop(a);
    /// assert!(sem.release().is_err()); // this process holds no permit now
    /// assert!(Semaphore::robust(0).is_err());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn robust(permits: u32) -> Result<Semaphore> {
        Self::robust_in(&Arena::global()?, permits)
    }

    /// A new robust semaphore of `permits` permits in `arena` (see
    /// [`robust`](Self::robust)).
    ///
    /// # Errors
    /// As [`robust`](Self::robust); [`Error::OutOfSpace`] when the arena is full.
    pub fn robust_in(arena: &Arena, permits: u32) -> Result<Semaphore> {
        object::make(
            arena,
            None,
            SemParams {
                value: permits,
                robust: true,
            },
        )
    }

    /// A new robust semaphore named `name` in `arena` (see [`robust`](Self::robust));
    /// [`open`](Self::open) finds it.
    ///
    /// # Errors
    /// As [`robust_in`](Self::robust_in), and [`Error::AlreadyExists`] or
    /// [`Error::InvalidName`].
    pub fn create_robust(arena: &Arena, name: &str, permits: u32) -> Result<Semaphore> {
        object::make(
            arena,
            Some(name),
            SemParams {
                value: permits,
                robust: true,
            },
        )
    }

    /// True for a robust semaphore ([`robust`](Self::robust)).
    pub fn is_robust(&self) -> bool {
        self.p.robust != 0
    }

    /// Permits of a robust semaphore taken over from holders that died (0 in the default
    /// mode, whose permits die with their holders).
    pub fn recovered(&self) -> u32 {
        if self.is_robust() {
            self.p.raw.robust_recovered()
        } else {
            0
        }
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
    /// waiting in `acquire`, if any. A robust semaphore takes back only a permit the
    /// calling process holds.
    ///
    /// # Errors
    /// [`TooManyReleases`] when the value is already [`VALUE_MAX`]; for a robust
    /// semaphore, when the calling process holds no permit (its `limit` is the number of
    /// permits).
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
        self.p.value()
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
