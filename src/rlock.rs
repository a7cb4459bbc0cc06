//! [`RLock`]: Python's `multiprocessing.RLock`, a re-entrant robust lock.
//!
//! Owned by one thread of one process at a time; the owner may acquire it again and must
//! release it as many times. When the holding *process* dies, the next acquirer takes it
//! over and is told so with [`OwnerDied`]; a holding *thread* that exits
//! while its process lives on is not detected (nor is it in Python).
//!
//! The algorithm: [`raw::rlock`](crate::raw::rlock).

use crate::arena::{Arena, ObjectKind};
use crate::error::Result;
use crate::lock::{self, Acquired, OwnerDied, TryAcquireError};
use crate::object::{self, Handle, Inspect, Obj, Object};
use crate::raw::lock::RobustLock;
pub use crate::raw::rlock::NotOwner;
use crate::raw::rlock::RawRLock;
use crate::sync::liveness::Procfs;
use crate::SpinPolicy;
use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// A re-entrant lock shared between processes: Python's `multiprocessing.RLock`.
///
/// Owned by one thread of one process at a time; the owner may acquire it again and must
/// release it as many times. Robust like [`Lock`](crate::lock::Lock): when the holding
/// process dies, the next acquirer is told so with [`OwnerDied`].
///
/// # Example
/// ```
/// use shmproc::rlock::RLock;
/// let lock = RLock::new()?;
/// let outer = lock.acquire().unwrap();
/// let inner = lock.acquire().unwrap(); // the owner may acquire again
/// assert_eq!(lock.depth(), 2);
/// drop(inner);
/// drop(outer);
/// assert!(!lock.is_locked());
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct RLock {
    raw: Obj<RLock>,
    spin: SpinPolicy,
}

impl Object for RLock {
    type State = RawRLock;
    type Params = ();
    const KIND: ObjectKind = ObjectKind::RLock;

    fn type_name() -> Cow<'static, str> {
        "RLock".into()
    }

    fn inspect(lock: &RawRLock, _: &(), out: &mut Inspect) {
        out.field("holder", lock.holder());
        out.field("depth", lock.depth());
    }
}

impl Handle for RLock {
    fn from_obj(raw: Obj<RLock>) -> Result<RLock> {
        Ok(RLock {
            raw,
            spin: SpinPolicy::default(),
        })
    }

    fn obj(&self) -> &Obj<RLock> {
        &self.raw
    }
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.raw.debug(f, &[])
    }
}

/// Holds one level of an [`RLock`] until dropped.
#[must_use = "the level is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    // Not Send: the level belongs to this thread.
    _not_send: core::marker::PhantomData<*const ()>,
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLockGuard").finish_non_exhaustive()
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        // The guard proves ownership, unless the owner released levels by hand with
        // `release`: then there is nothing left to release and the error is moot.
        let _ = self.lock.raw.unlock_held(&Procfs);
    }
}

impl<'a> RLockGuard<'a> {
    fn new(lock: &'a RLock) -> Self {
        RLockGuard {
            lock,
            _not_send: core::marker::PhantomData,
        }
    }

    /// The lock this guard holds a level of.
    pub fn lock(&self) -> &'a RLock {
        self.lock
    }
}

impl RLock {
    /// A new, free RLock in the [global arena](Arena::global).
    ///
    /// # Errors
    /// When the global arena cannot be made, or is full.
    pub fn new() -> Result<RLock> {
        Self::new_in(&Arena::global()?)
    }

    /// A new, free RLock in `arena`.
    ///
    /// # Errors
    /// [`Error::OutOfSpace`](crate::Error::OutOfSpace) /
    /// [`Error::OutOfSpace`](crate::Error::OutOfSpace) when the arena is full to its limit.
    pub fn new_in(arena: &Arena) -> Result<RLock> {
        object::make(arena, None, ())
    }

    /// A new, free RLock named `name` in `arena`, for [`RLock::open`] to find.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists), a bad name, or a full arena.
    pub fn create(arena: &Arena, name: &str) -> Result<RLock> {
        object::make(arena, Some(name), ())
    }

    /// The RLock named `name` in `arena`.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), or
    /// [`Error::WrongType`](crate::Error::WrongType) when `name` is not an RLock.
    ///
    /// ```
    /// # use shmproc::{Arena, rlock::RLock};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// let a = RLock::create(&arena, "tree")?;
    /// let b = RLock::open(&arena, "tree")?;
    /// let _g = a.acquire().unwrap();
    /// assert!(b.is_owned()); // same thread, same lock
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn open(arena: &Arena, name: &str) -> Result<RLock> {
        object::find(arena, name)
    }

    /// Sets how long this handle spins before sleeping (see [`SpinPolicy`]).
    pub fn set_spin(&mut self, spin: SpinPolicy) {
        self.spin = spin;
    }

    /// Blocks until the calling thread holds the lock (at once if it already does).
    ///
    /// # Errors
    /// [`OwnerDied`] (holding the guard) when the previous holder process died holding it.
    pub fn acquire(&self) -> core::result::Result<RLockGuard<'_>, OwnerDied<RLockGuard<'_>>> {
        lock::acquire(&*self.raw, self.spin, || RLockGuard::new(self))
    }

    /// Acquires if free, owned by the caller, or held by a dead process; never blocks.
    ///
    /// # Errors
    /// [`TryAcquireError::WouldBlock`] when another thread holds it;
    /// [`TryAcquireError::OwnerDied`] when taken over from a dead holder.
    ///
    /// ```
    /// # use shmproc::{rlock::RLock, lock::TryAcquireError};
    /// let lock = RLock::new()?;
    /// let g = lock.acquire().unwrap();
    /// assert!(lock.try_acquire().is_ok()); // re-entrant
    /// let other = std::thread::spawn({
    ///     let lock = lock.clone();
    ///     move || matches!(lock.try_acquire(), Err(TryAcquireError::WouldBlock))
    /// });
    /// assert!(other.join().unwrap());
    /// # drop(g);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn try_acquire(
        &self,
    ) -> core::result::Result<RLockGuard<'_>, TryAcquireError<RLockGuard<'_>>> {
        lock::try_acquire(&*self.raw, || RLockGuard::new(self))
    }

    /// Blocks until the calling thread holds the lock or `timeout` has passed.
    ///
    /// # Errors
    /// [`TryAcquireError::WouldBlock`] at the timeout; [`TryAcquireError::OwnerDied`] as
    /// for [`acquire`](Self::acquire).
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> core::result::Result<RLockGuard<'_>, TryAcquireError<RLockGuard<'_>>> {
        lock::acquire_timeout(&*self.raw, self.spin, timeout, || RLockGuard::new(self))
    }

    /// Acquires one level without a guard (Python's `acquire()`): pair it with
    /// [`release`](Self::release) on the same thread. Returns whether the previous holder
    /// had died.
    pub fn acquire_forever(&self) -> Acquired {
        lock::acquire_forever(&*self.raw, self.spin)
    }

    /// Releases one level (Python's `release()`); returns the depth left.
    ///
    /// # Errors
    /// [`NotOwner`] when the calling thread does not hold the lock (another thread or
    /// process holds it, or nobody does).
    ///
    /// ```
    /// # use shmproc::rlock::{RLock, NotOwner};
    /// let lock = RLock::new()?;
    /// lock.acquire_forever();
    /// lock.acquire_forever();
    /// assert_eq!(lock.release(), Ok(1));
    /// assert_eq!(lock.release(), Ok(0));
    /// assert_eq!(lock.release(), Err(NotOwner));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn release(&self) -> core::result::Result<u32, NotOwner> {
        self.raw.unlock_held(&Procfs)
    }

    /// True when the calling thread holds the lock.
    pub fn is_owned(&self) -> bool {
        self.raw.is_owned_by(&Procfs)
    }

    /// True while any thread of any process holds the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// The pid of the holding process, if any (a snapshot).
    pub fn holder(&self) -> Option<u32> {
        self.raw.holder()
    }

    /// The holder's recursion depth (a snapshot; `0` when free).
    pub fn depth(&self) -> u32 {
        self.raw.depth()
    }

    /// The raw state, for primitives built on this lock.
    pub(crate) fn raw(&self) -> &RawRLock {
        &self.raw
    }
}
