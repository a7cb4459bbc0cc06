//! `RLock`: a re-entrant, robust lock shared between processes (Python's
//! `multiprocessing.RLock`).
//!
//! # State
//!
//! [`RawRLock`] is a [`RawLock`] (the pid word, so a dead holder is recovered exactly as
//! for [`Lock`](crate::lock::Lock)) plus two words that only the holder writes:
//!
//! | field   | meaning                                                                |
//! |---------|------------------------------------------------------------------------|
//! | `lock`  | the [`RawLock`] word: `0` free, `pid` or `pid \| WAITERS` held by `pid` |
//! | `owner` | `pid << 32 \| tid` of the holding thread, `0` while free               |
//! | `depth` | how many times the holder has acquired it (`0` while free)             |
//!
//! A thread owns the lock when the lock word names its process **and** `owner` names
//! its (process, thread) pair. The first test rules out every other process; the second
//! rules out the other threads of ours. `owner` is cleared before the lock word is, so a
//! thread never mistakes a value it wrote itself for a current one (read-write coherence:
//! it cannot read a value older than its own last write). The thread id is the kernel's
//! (`gettid`), cached per thread and re-read after `fork`.
//!
//! Acquiring again while owning only increments `depth`; releasing decrements it and
//! unlocks at zero. A release by any other thread, or of a free lock, is [`NotOwner`].
//!
//! # A holder that dies
//!
//! When the holding *process* dies, a waiter takes the lock over as for `Lock` and is
//! told so with [`OwnerDied`]; it becomes owner at depth 1. A holding *thread* that exits
//! while its process lives on is not detected (neither does Python): the lock stays held.

use crate::arena::{fingerprint, Arena, ObjectKind, Shm};
use crate::error::Result;
use crate::lock::{Acquired, OwnerDied, RawLock, TimedOut, TryAcquireError};
use crate::owner::{current_pid, Liveness, Procfs};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::SpinPolicy;
use std::fmt;
use std::time::{Duration, Instant};

/// The shared state of an [`RLock`]; see the [module docs](self) for the fields.
///
/// All zero bytes is a free lock. Public so that `loom-tests/` can model-check it; the
/// thread id is a parameter of every method (the model gives each thread its own).
#[repr(C)]
pub struct RawRLock {
    lock: RawLock,
    owner: AtomicU64,
    depth: AtomicU32,
    _pad: u32,
}

#[cfg(not(shmproc_loom))]
static_assertions::assert_eq_size!(RawRLock, [u64; 4]);
#[cfg(not(shmproc_loom))]
static_assertions::const_assert_eq!(core::mem::offset_of!(RawRLock, owner), 16);
#[cfg(not(shmproc_loom))]
static_assertions::const_assert_eq!(core::mem::offset_of!(RawRLock, depth), 24);

impl Default for RawRLock {
    fn default() -> Self {
        Self::new()
    }
}

#[inline]
fn key(who: &impl Liveness, tid: u32) -> u64 {
    (u64::from(who.me()) << 32) | u64::from(tid)
}

impl RawRLock {
    /// A free lock.
    pub fn new() -> Self {
        RawRLock {
            lock: RawLock::new(),
            owner: AtomicU64::new(0),
            depth: AtomicU32::new(0),
            _pad: 0,
        }
    }

    /// True when thread `tid` of process `who` holds the lock.
    #[inline]
    pub fn is_owned_by(&self, who: &impl Liveness, tid: u32) -> bool {
        // Relaxed (both loads): if the word names our pid, a thread of ours wrote it and
        // the `owner` store that follows (program order in that thread); if that thread is
        // us, coherence shows us our own latest write; if it is another thread, `owner`
        // holds its key, or 0 (cleared by the previous holder before its unlock), or a
        // value we wrote ourselves before our own clearing store, which we cannot read
        // again. Either way we never see our key unless we own the lock.
        self.lock.holder() == Some(who.me()) && self.owner.load(Ordering::Relaxed) == key(who, tid)
    }

    /// The recursion depth (a snapshot; `0` when free).
    pub fn depth(&self) -> u32 {
        // Relaxed: a diagnostic snapshot.
        self.depth.load(Ordering::Relaxed)
    }

    /// True while some thread of some process holds the lock.
    pub fn is_locked(&self) -> bool {
        self.lock.is_locked()
    }

    /// The pid of the holding process, if held.
    pub fn holder(&self) -> Option<u32> {
        self.lock.holder()
    }

    #[inline]
    fn enter_again(&self) {
        // Relaxed: only the owner thread writes `depth` while it holds the lock.
        // Saturating: 2^32 - 1 levels is far past any real recursion; a peer that scribbled
        // a huge depth makes us hold the lock longer, never panic.
        let d = self.depth.load(Ordering::Relaxed).saturating_add(1);
        self.depth.store(d, Ordering::Relaxed);
    }

    #[inline]
    fn become_owner(&self, who: &impl Liveness, tid: u32, depth: u32) {
        // Relaxed: the lock's Acquire CAS (just done) orders these stores after the
        // previous holder's; the next holder reads them only after our Release unlock.
        self.owner.store(key(who, tid), Ordering::Relaxed);
        self.depth.store(depth, Ordering::Relaxed);
    }

    /// One attempt: acquires again if owned, takes a free lock, or recovers one whose
    /// holder died. `None`: held by someone else. The depth saturates at `u32::MAX`.
    pub fn try_lock(&self, who: &impl Liveness, tid: u32) -> Option<Acquired> {
        if self.is_owned_by(who, tid) {
            self.enter_again();
            return Some(Acquired::Normal);
        }
        let got = self.lock.try_lock_or_recover(who)?;
        self.become_owner(who, tid, 1);
        Some(got)
    }

    /// Blocks until owned or until `deadline`.
    ///
    /// # Errors
    /// [`TimedOut`] when `deadline` passed first.
    pub fn lock(
        &self,
        who: &impl Liveness,
        tid: u32,
        deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> core::result::Result<Acquired, TimedOut> {
        if self.is_owned_by(who, tid) {
            self.enter_again();
            return Ok(Acquired::Normal);
        }
        self.lock_at_depth(who, tid, 1, deadline, spin)
    }

    /// Blocks until the (not owned) lock is held, then records `depth`.
    fn lock_at_depth(
        &self,
        who: &impl Liveness,
        tid: u32,
        depth: u32,
        deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> core::result::Result<Acquired, TimedOut> {
        let got = if self.lock.try_lock(who) {
            Acquired::Normal
        } else {
            self.lock.lock_slow(who, deadline, spin)?
        };
        self.become_owner(who, tid, depth);
        Ok(got)
    }

    /// Releases one level; returns the depth left (`0`: the lock is now free).
    ///
    /// # Errors
    /// [`NotOwner`] when thread `tid` of `who` does not hold the lock.
    pub fn unlock(&self, who: &impl Liveness, tid: u32) -> core::result::Result<u32, NotOwner> {
        if !self.is_owned_by(who, tid) {
            return Err(NotOwner);
        }
        // Relaxed: we own it, so only we write `depth`.
        let d = self.depth.load(Ordering::Relaxed);
        if d > 1 {
            self.depth.store(d - 1, Ordering::Relaxed);
            return Ok(d - 1);
        }
        self.unlock_fully();
        Ok(0)
    }

    /// Releases every level at once; returns the depth that was held (for
    /// [`relock`](Self::relock), as a condition variable does).
    ///
    /// # Errors
    /// [`NotOwner`] when thread `tid` of `who` does not hold the lock.
    pub fn unlock_all(&self, who: &impl Liveness, tid: u32) -> core::result::Result<u32, NotOwner> {
        if !self.is_owned_by(who, tid) {
            return Err(NotOwner);
        }
        // Relaxed: we own it. A corrupt 0 is treated as 1, so the lock comes back usable.
        let d = self.depth.load(Ordering::Relaxed).max(1);
        self.unlock_fully();
        Ok(d)
    }

    /// Blocks until the lock is held again, at `depth` (a value from
    /// [`unlock_all`](Self::unlock_all)).
    pub fn relock(&self, who: &impl Liveness, tid: u32, depth: u32, spin: SpinPolicy) -> Acquired {
        self.lock_at_depth(who, tid, depth.max(1), None, spin)
            .unwrap_or(Acquired::Normal)
    }

    fn unlock_fully(&self) {
        // Relaxed: cleared before the Release swap in `RawLock::unlock`, which publishes
        // it to the next holder; see `is_owned_by` for why our own threads never read the
        // stale key.
        self.owner.store(0, Ordering::Relaxed);
        self.depth.store(0, Ordering::Relaxed);
        self.lock.unlock();
    }
}

// ---------------------------------------------------------------------------------------
// Thread identity.

/// This thread's id for RLock ownership: the kernel tid, cached per thread and re-read
/// when the cached pid is not the current one (i.e. after `fork`).
pub(crate) fn current_tid() -> u32 {
    use std::cell::Cell;
    thread_local! {
        static CACHE: Cell<(u32, u32)> = const { Cell::new((0, 0)) };
    }
    let pid = current_pid();
    CACHE.with(|c| {
        let (cached_pid, tid) = c.get();
        if cached_pid == pid {
            return tid;
        }
        let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
        c.set((pid, tid));
        tid
    })
}

// ---------------------------------------------------------------------------------------
// The handle.

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
    raw: Shm<RawRLock>,
    spin: SpinPolicy,
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("holder", &self.raw.holder())
            .field("depth", &self.raw.depth())
            .finish()
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
        let _ = self.lock.raw.unlock(&Procfs, current_tid());
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

/// [`RLock::release`] (or a condition's `wait`/`notify`) was called by a thread that does
/// not hold the lock, or on a free lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotOwner;

impl fmt::Display for NotOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the lock is not held by the calling thread: acquire it first")
    }
}

impl std::error::Error for NotOwner {}

const KIND_DESC: &str = "RLock";

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
    /// [`Error::DirectoryFull`](crate::Error::DirectoryFull) when the arena is full.
    pub fn new_in(arena: &Arena) -> Result<RLock> {
        Self::make(arena, None)
    }

    /// A new, free RLock named `name` in `arena`, for [`RLock::open`] to find.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists), a bad name, or a full arena.
    pub fn create(arena: &Arena, name: &str) -> Result<RLock> {
        Self::make(arena, Some(name))
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
        let (raw, _) = arena.open_object::<RawRLock>(
            name,
            ObjectKind::RLock,
            fingerprint::<RawRLock>(),
            KIND_DESC,
        )?;
        Ok(RLock {
            raw,
            spin: SpinPolicy::default(),
        })
    }

    fn make(arena: &Arena, name: Option<&str>) -> Result<RLock> {
        let raw = arena.create_object::<RawRLock>(
            name,
            ObjectKind::RLock,
            fingerprint::<RawRLock>(),
            core::mem::size_of::<RawRLock>(),
            0,
            // Zeroed memory is a free RawRLock.
            |_| {},
        )?;
        Ok(RLock {
            raw,
            spin: SpinPolicy::default(),
        })
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
        match self.raw.lock(&Procfs, current_tid(), None, self.spin) {
            Ok(Acquired::OwnerDied) => Err(OwnerDied::new(RLockGuard::new(self))),
            _ => Ok(RLockGuard::new(self)),
        }
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
        match self.raw.try_lock(&Procfs, current_tid()) {
            Some(Acquired::Normal) => Ok(RLockGuard::new(self)),
            Some(Acquired::OwnerDied) => Err(TryAcquireError::OwnerDied(OwnerDied::new(
                RLockGuard::new(self),
            ))),
            None => Err(TryAcquireError::WouldBlock),
        }
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
        let deadline = crate::sync::time::deadline_after(timeout);
        match self.raw.lock(&Procfs, current_tid(), deadline, self.spin) {
            Ok(Acquired::Normal) => Ok(RLockGuard::new(self)),
            Ok(Acquired::OwnerDied) => Err(TryAcquireError::OwnerDied(OwnerDied::new(
                RLockGuard::new(self),
            ))),
            Err(TimedOut) => Err(TryAcquireError::WouldBlock),
        }
    }

    /// Acquires one level without a guard (Python's `acquire()`): pair it with
    /// [`release`](Self::release) on the same thread. Returns whether the previous holder
    /// had died.
    pub fn acquire_forever(&self) -> Acquired {
        self.raw
            .lock(&Procfs, current_tid(), None, self.spin)
            .unwrap_or(Acquired::Normal)
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
        self.raw.unlock(&Procfs, current_tid())
    }

    /// True when the calling thread holds the lock.
    pub fn is_owned(&self) -> bool {
        self.raw.is_owned_by(&Procfs, current_tid())
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
