//! [`Lock`]: Python's `multiprocessing.Lock`, robust against a holder that dies.
//!
//! A futex word in the arena that records the holder's pid: one CAS to lock and one swap
//! to unlock, no system call while nobody waits. When the holder dies holding it, the
//! next acquirer takes it over and is told so with [`OwnerDied`] (which carries the
//! guard), so it can repair what the lock protects; a blocked waiter notices the death
//! within about 100 ms, `try_acquire` at once. Any process may
//! [`release`](Lock::release) the lock, as in Python.
//!
//! The algorithm, its state table and its model checks: [`raw::lock`](crate::raw::lock).

use crate::arena::{Arena, ObjectKind};
use crate::error::Result;
use crate::object::{self, Handle, Inspect, Obj, Object};
pub use crate::raw::lock::{Acquired, TimedOut};
use crate::raw::lock::{RawLock, RobustLock};
use crate::sync::liveness::Procfs;
use crate::sync::time;
use crate::SpinPolicy;
use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// Acquiring any robust lock: written once for every handle that holds one.

/// Blocks until `lock` is held, spinning as `spin` says first; `guard` makes the guard.
/// What every handle's `acquire` is.
#[inline]
pub(crate) fn acquire<L: RobustLock, G>(
    lock: &L,
    spin: SpinPolicy,
    guard: impl FnOnce() -> G,
) -> core::result::Result<G, OwnerDied<G>> {
    loop {
        match lock.lock(&Procfs, None, spin) {
            Ok(Acquired::Normal) => return Ok(guard()),
            Ok(Acquired::OwnerDied) => return Err(OwnerDied::new(guard())),
            // Cannot happen without a deadline; were it to, the lock is not held and no
            // guard may be made: block again.
            Err(TimedOut) => continue,
        }
    }
}

/// One attempt at `lock`, taking it over from a dead holder. What every handle's
/// `try_acquire` is.
#[inline]
pub(crate) fn try_acquire<L: RobustLock, G>(
    lock: &L,
    guard: impl FnOnce() -> G,
) -> core::result::Result<G, TryAcquireError<G>> {
    outcome(lock.try_lock_or_recover(&Procfs).ok_or(TimedOut), guard)
}

/// Blocks until `lock` is held or `timeout` has passed. What every handle's
/// `acquire_timeout` is.
pub(crate) fn acquire_timeout<L: RobustLock, G>(
    lock: &L,
    spin: SpinPolicy,
    timeout: Duration,
    guard: impl FnOnce() -> G,
) -> core::result::Result<G, TryAcquireError<G>> {
    outcome(
        lock.lock(&Procfs, time::deadline_after(timeout), spin),
        guard,
    )
}

/// Acquires and forgets the guard (Python's bare `acquire()`); whether the previous
/// holder had died.
pub(crate) fn acquire_forever<L: RobustLock>(lock: &L, spin: SpinPolicy) -> Acquired {
    match acquire(lock, spin, || ()) {
        Ok(()) => Acquired::Normal,
        Err(_) => Acquired::OwnerDied,
    }
}

/// How an attempt ended, as the public error types say it.
#[inline]
fn outcome<G>(
    got: core::result::Result<Acquired, TimedOut>,
    guard: impl FnOnce() -> G,
) -> core::result::Result<G, TryAcquireError<G>> {
    match got {
        Ok(Acquired::Normal) => Ok(guard()),
        Ok(Acquired::OwnerDied) => Err(TryAcquireError::OwnerDied(OwnerDied::new(guard()))),
        Err(TimedOut) => Err(TryAcquireError::WouldBlock),
    }
}

// ---------------------------------------------------------------------------------------
// The handle.

/// A lock shared between processes: Python's `multiprocessing.Lock`, robust against a
/// holder that dies.
///
/// The state is 16 bytes in an [`Arena`]; the handle is `Clone + Send + Sync` and keeps
/// working in every process `fork`ed after it was made. See the [module docs](self) for
/// the algorithm and how a dead holder is detected.
///
/// # Example
/// ```
/// use shmproc::Lock;
/// let lock = Lock::new()?;
/// {
///     let _guard = lock.acquire().expect("no previous holder died");
///     assert!(lock.is_locked());
/// } // released here
/// assert!(!lock.is_locked());
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Lock {
    raw: Obj<Lock>,
    spin: SpinPolicy,
}

impl Object for Lock {
    type State = RawLock;
    type Params = ();
    const KIND: ObjectKind = ObjectKind::Lock;

    fn type_name() -> Cow<'static, str> {
        "Lock".into()
    }

    fn inspect(lock: &RawLock, _: &(), out: &mut Inspect) {
        out.field("holder", lock.holder());
    }
}

impl Handle for Lock {
    fn from_obj(raw: Obj<Lock>) -> Result<Lock> {
        Ok(Lock {
            raw,
            spin: SpinPolicy::default(),
        })
    }

    fn obj(&self) -> &Obj<Lock> {
        &self.raw
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.raw.debug(f, &[])
    }
}

/// Holds a [`Lock`] (or the lock of a shared value) until dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        self.lock.raw.unlock();
    }
}

impl<'a> LockGuard<'a> {
    /// The lock this guard holds.
    pub fn lock(&self) -> &'a Lock {
        self.lock
    }
}

/// The lock was acquired, but its previous holder died while holding it: the data it
/// protects may be half-updated. Holds the guard: repair the data, then carry on.
///
/// ```
/// # use shmproc::{Lock, OwnerDied, LockGuard};
/// # let lock = Lock::new()?;
/// let guard: LockGuard<'_> = lock.acquire().unwrap_or_else(|died| {
///     // repair the protected data here
///     died.into_guard()
/// });
/// # drop(guard);
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct OwnerDied<G> {
    guard: G,
}

impl<G> OwnerDied<G> {
    pub(crate) fn new(guard: G) -> Self {
        OwnerDied { guard }
    }

    /// The guard: the caller holds the lock.
    pub fn into_guard(self) -> G {
        self.guard
    }

    /// The guard, by reference.
    pub fn guard(&self) -> &G {
        &self.guard
    }
}

impl<G> fmt::Debug for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OwnerDied(..)")
    }
}

impl<G> fmt::Display for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "lock acquired, but its previous holder died while holding it: what the lock \
             guards may be half-updated; check or repair it, then carry on with the guard \
             (into_guard())",
        )
    }
}

impl<G> std::error::Error for OwnerDied<G> {}

/// Why [`Lock::try_acquire`] or [`Lock::acquire_timeout`] did not return a plain guard.
pub enum TryAcquireError<G> {
    /// The lock is held (`try_acquire`), or was still held at the deadline
    /// (`acquire_timeout`).
    WouldBlock,
    /// Acquired, from a holder that died: see [`OwnerDied`].
    OwnerDied(OwnerDied<G>),
}

impl<G> fmt::Debug for TryAcquireError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryAcquireError::WouldBlock => f.write_str("WouldBlock"),
            TryAcquireError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
        }
    }
}

impl<G> fmt::Display for TryAcquireError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryAcquireError::WouldBlock => f.write_str(
                "the lock is held by another holder (or still was at the timeout): try again, \
                 or wait for it with acquire()",
            ),
            TryAcquireError::OwnerDied(d) => fmt::Display::fmt(d, f),
        }
    }
}

impl<G> std::error::Error for TryAcquireError<G> {}

impl<G> TryAcquireError<G> {
    /// The guard, if the lock was acquired (from a dead holder).
    pub fn into_guard(self) -> Option<G> {
        match self {
            TryAcquireError::WouldBlock => None,
            TryAcquireError::OwnerDied(d) => Some(d.into_guard()),
        }
    }
}

/// [`Lock::release`] was called on a lock that is not held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotLocked;

impl fmt::Display for NotLocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "release() of a lock that is not held: release once per acquire (a guard \
             releases by itself when dropped; do not also call release())",
        )
    }
}

impl std::error::Error for NotLocked {}

impl Lock {
    /// A new, unlocked lock in the [global arena](Arena::global).
    ///
    /// # Errors
    /// When the global arena cannot be made, or is full.
    pub fn new() -> Result<Lock> {
        Self::new_in(&Arena::global()?)
    }

    /// A new, unlocked lock in `arena`.
    ///
    /// # Errors
    /// [`Error::OutOfSpace`](crate::Error::OutOfSpace) /
    /// [`Error::OutOfSpace`](crate::Error::OutOfSpace) when the arena is full to its limit.
    pub fn new_in(arena: &Arena) -> Result<Lock> {
        object::make(arena, None, ())
    }

    /// A new, unlocked lock named `name` in `arena`, for [`Lock::open`] to find.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists), a bad name, or a full arena.
    pub fn create(arena: &Arena, name: &str) -> Result<Lock> {
        object::make(arena, Some(name), ())
    }

    /// The lock named `name` in `arena`.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), or
    /// [`Error::WrongType`](crate::Error::WrongType) when `name` is not a lock.
    ///
    /// ```
    /// # use shmproc::{Arena, Lock};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// let a = Lock::create(&arena, "db")?;
    /// let b = Lock::open(&arena, "db")?;
    /// let _g = a.acquire().unwrap();
    /// assert!(b.is_locked());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn open(arena: &Arena, name: &str) -> Result<Lock> {
        object::find(arena, name)
    }

    /// Sets how long this handle spins before sleeping (see [`SpinPolicy`]).
    pub fn set_spin(&mut self, spin: SpinPolicy) {
        self.spin = spin;
    }

    /// Blocks until the lock is held.
    ///
    /// # Errors
    /// [`OwnerDied`] (holding the guard) when the previous holder died holding the lock.
    #[inline]
    pub fn acquire(&self) -> core::result::Result<LockGuard<'_>, OwnerDied<LockGuard<'_>>> {
        acquire(&*self.raw, self.spin, || LockGuard { lock: self })
    }

    /// Takes the lock if it is free (or its holder is dead); never blocks.
    ///
    /// # Errors
    /// [`TryAcquireError::WouldBlock`] when held; [`TryAcquireError::OwnerDied`] when
    /// taken over from a dead holder.
    #[inline]
    pub fn try_acquire(
        &self,
    ) -> core::result::Result<LockGuard<'_>, TryAcquireError<LockGuard<'_>>> {
        try_acquire(&*self.raw, || LockGuard { lock: self })
    }

    /// Blocks until the lock is held or `timeout` has passed.
    ///
    /// # Errors
    /// [`TryAcquireError::WouldBlock`] at the timeout; [`TryAcquireError::OwnerDied`] as
    /// for [`acquire`](Self::acquire).
    ///
    /// ```
    /// # use shmproc::{Lock, TryAcquireError};
    /// # use std::time::Duration;
    /// let lock = Lock::new()?;
    /// let g = lock.acquire().unwrap();
    /// assert!(matches!(lock.acquire_timeout(Duration::from_millis(10)), Err(TryAcquireError::WouldBlock)));
    /// # drop(g);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> core::result::Result<LockGuard<'_>, TryAcquireError<LockGuard<'_>>> {
        acquire_timeout(&*self.raw, self.spin, timeout, || LockGuard { lock: self })
    }

    /// Acquires and forgets the guard: the lock stays held until [`release`](Self::release)
    /// is called, from this or any other process (Python's `acquire()` / `release()` pair).
    ///
    /// Returns whether the previous holder had died (`Acquired::OwnerDied`).
    pub fn acquire_forever(&self) -> Acquired {
        acquire_forever(&*self.raw, self.spin)
    }

    /// Releases the lock, whoever holds it (Python allows a release from another process).
    ///
    /// # Errors
    /// [`NotLocked`] when the lock is not held.
    ///
    /// ```
    /// # use shmproc::{Lock, NotLocked};
    /// let lock = Lock::new()?;
    /// lock.acquire_forever();
    /// assert_eq!(lock.release(), Ok(()));
    /// assert_eq!(lock.release(), Err(NotLocked));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn release(&self) -> Result<(), NotLocked> {
        // Relaxed: a best-effort early answer; `unlock` swaps and reports the truth.
        if !self.raw.is_locked() {
            return Err(NotLocked);
        }
        match self.raw.unlock() & crate::sync::liveness::PID_MASK {
            0 => Err(NotLocked),
            _ => Ok(()),
        }
    }

    /// True while some process holds the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// The pid of the process holding the lock, if any (a snapshot).
    pub fn holder(&self) -> Option<u32> {
        self.raw.holder()
    }

    /// The raw state, for primitives built on this lock (`Condition`).
    #[allow(dead_code)]
    pub(crate) fn raw(&self) -> &RawLock {
        &self.raw
    }
}

#[cfg(not(shmproc_loom))]
static_assertions::assert_impl_all!(Lock: Clone, Send, Sync);
#[cfg(not(shmproc_loom))]
static_assertions::assert_impl_all!(crate::Arena: Clone, Send, Sync);
