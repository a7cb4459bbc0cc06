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

use crate::arena::{fingerprint, Arena, ObjectKind, Shm};
use crate::error::Result;
use crate::raw::lock::RawLock;
pub use crate::raw::lock::{Acquired, TimedOut};
use crate::sync::liveness::{Procfs, PID_MASK};
use crate::SpinPolicy;
use std::fmt;
use std::time::{Duration, Instant};
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
    raw: Shm<RawLock>,
    spin: SpinPolicy,
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("holder", &self.raw.holder())
            .finish()
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
        f.write_str("lock acquired, but its previous holder died while holding it")
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
            TryAcquireError::WouldBlock => f.write_str("the lock is held by someone else"),
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
        f.write_str("release of an unlocked lock")
    }
}

impl std::error::Error for NotLocked {}

const KIND_DESC: &str = "Lock";

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
    /// [`Error::DirectoryFull`](crate::Error::DirectoryFull) when the arena is full.
    pub fn new_in(arena: &Arena) -> Result<Lock> {
        Self::make(arena, None)
    }

    /// A new, unlocked lock named `name` in `arena`, for [`Lock::open`] to find.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists), a bad name, or a full arena.
    pub fn create(arena: &Arena, name: &str) -> Result<Lock> {
        Self::make(arena, Some(name))
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
        let (raw, _) = arena.open_object::<RawLock>(
            name,
            ObjectKind::Lock,
            fingerprint::<RawLock>(),
            KIND_DESC,
        )?;
        Ok(Lock {
            raw,
            spin: SpinPolicy::default(),
        })
    }

    fn make(arena: &Arena, name: Option<&str>) -> Result<Lock> {
        let raw = arena.create_object::<RawLock>(
            name,
            ObjectKind::Lock,
            fingerprint::<RawLock>(),
            core::mem::size_of::<RawLock>(),
            0,
            // Zeroed memory is an unlocked RawLock: nothing to write.
            |_| {},
        )?;
        Ok(Lock {
            raw,
            spin: SpinPolicy::default(),
        })
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
    pub fn acquire(&self) -> Result<LockGuard<'_>, OwnerDied<LockGuard<'_>>> {
        match self.acquire_raw(None) {
            Ok(Acquired::Normal) => Ok(LockGuard { lock: self }),
            Ok(Acquired::OwnerDied) => Err(OwnerDied::new(LockGuard { lock: self })),
            Err(TimedOut) => unreachable!("no deadline, no timeout"),
        }
    }

    /// Takes the lock if it is free (or its holder is dead); never blocks.
    ///
    /// # Errors
    /// [`TryAcquireError::WouldBlock`] when held; [`TryAcquireError::OwnerDied`] when
    /// taken over from a dead holder.
    #[inline]
    pub fn try_acquire(&self) -> Result<LockGuard<'_>, TryAcquireError<LockGuard<'_>>> {
        match self.raw.try_lock_or_recover(&Procfs) {
            Some(Acquired::Normal) => Ok(LockGuard { lock: self }),
            Some(Acquired::OwnerDied) => {
                Err(TryAcquireError::OwnerDied(OwnerDied::new(LockGuard {
                    lock: self,
                })))
            }
            None => Err(TryAcquireError::WouldBlock),
        }
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
    ) -> Result<LockGuard<'_>, TryAcquireError<LockGuard<'_>>> {
        match self.acquire_raw(crate::sync::time::deadline_after(timeout)) {
            Ok(Acquired::Normal) => Ok(LockGuard { lock: self }),
            Ok(Acquired::OwnerDied) => Err(TryAcquireError::OwnerDied(OwnerDied::new(LockGuard {
                lock: self,
            }))),
            Err(TimedOut) => Err(TryAcquireError::WouldBlock),
        }
    }

    #[inline]
    fn acquire_raw(&self, deadline: Option<Instant>) -> Result<Acquired, TimedOut> {
        if self.raw.try_lock(&Procfs) {
            return Ok(Acquired::Normal);
        }
        self.raw.lock_slow(&Procfs, deadline, self.spin)
    }

    /// Acquires and forgets the guard: the lock stays held until [`release`](Self::release)
    /// is called, from this or any other process (Python's `acquire()` / `release()` pair).
    ///
    /// Returns whether the previous holder had died (`Acquired::OwnerDied`).
    pub fn acquire_forever(&self) -> Acquired {
        self.acquire_raw(None).unwrap_or(Acquired::Normal)
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
        match self.raw.unlock() & PID_MASK {
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
