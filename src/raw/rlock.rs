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
//! told so with [`OwnerDied`](crate::OwnerDied); it becomes owner at depth 1. A holding *thread* that exits
//! while its process lives on is not detected (neither does Python): the lock stays held.

pub use crate::raw::lock::NotOwner;
use crate::raw::lock::{Acquired, RawLock, RobustLock, TimedOut};
use crate::sync::liveness::Liveness;
use crate::sync::spin::SpinPolicy;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

/// The shared state of an [`RLock`](crate::RLock); see the [module docs](self) for the fields.
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

// SAFETY: `#[repr(C)]`, aligned to at most 128; a `RawLock` plus the owner key and depth, atomics only the holder writes; a scribbled key makes ownership checks fail, a scribbled depth saturates.
unsafe impl crate::raw::SharedState for RawRLock {}

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

/// The owner key of the calling thread: its pid above bit 32, its thread id below.
#[inline]
fn key(who: &impl Liveness) -> u64 {
    (u64::from(who.me()) << 32) | u64::from(who.my_thread())
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

    /// True when the calling thread of process `who` holds the lock.
    #[inline]
    pub fn is_owned_by(&self, who: &impl Liveness) -> bool {
        // Relaxed (both loads): if the word names our pid, a thread of ours wrote it and
        // the `owner` store that follows (program order in that thread); if that thread is
        // us, coherence shows us our own latest write; if it is another thread, `owner`
        // holds its key, or 0 (cleared by the previous holder before its unlock), or a
        // value we wrote ourselves before our own clearing store, which we cannot read
        // again. Either way we never see our key unless we own the lock.
        self.lock.holder() == Some(who.me()) && self.owner.load(Ordering::Relaxed) == key(who)
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
    fn become_owner(&self, who: &impl Liveness, depth: u32) {
        // Relaxed: the lock's Acquire CAS (just done) orders these stores after the
        // previous holder's; the next holder reads them only after our Release unlock.
        self.owner.store(key(who), Ordering::Relaxed);
        self.depth.store(depth, Ordering::Relaxed);
    }

    /// Releases every level at once; returns the depth that was held (for
    /// [`relock`](Self::relock), as a condition variable does).
    ///
    /// # Errors
    /// [`NotOwner`] when the calling thread of `who` does not hold the lock.
    pub fn unlock_all(&self, who: &impl Liveness) -> core::result::Result<u32, NotOwner> {
        if !self.is_owned_by(who) {
            return Err(NotOwner);
        }
        // Relaxed: we own it. A corrupt 0 is treated as 1, so the lock comes back usable.
        let d = self.depth.load(Ordering::Relaxed).max(1);
        self.unlock_fully();
        Ok(d)
    }

    /// Blocks until the lock is held again, at `depth` (a value from
    /// [`unlock_all`](Self::unlock_all)).
    pub fn relock(&self, who: &impl Liveness, depth: u32, spin: SpinPolicy) -> Acquired {
        // Never times out without a deadline.
        let got = self.lock.lock(who, None, spin).unwrap_or(Acquired::Normal);
        self.become_owner(who, depth.max(1));
        got
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

/// Owned by a thread: `who.my_thread()` of `who.me()`. Acquiring again while owning only
/// increments the depth (saturating at `u32::MAX`); [`unlock_held`](RobustLock::unlock_held)
/// releases one level.
impl RobustLock for RawRLock {
    #[inline]
    fn fast_lock(&self, who: &impl Liveness) -> bool {
        if self.is_owned_by(who) {
            self.enter_again();
            return true;
        }
        if self.lock.try_lock(who) {
            self.become_owner(who, 1);
            return true;
        }
        false
    }

    fn try_lock_or_recover(&self, who: &impl Liveness) -> Option<Acquired> {
        if self.is_owned_by(who) {
            self.enter_again();
            return Some(Acquired::Normal);
        }
        let got = self.lock.try_lock_or_recover(who)?;
        self.become_owner(who, 1);
        Some(got)
    }

    fn lock_slow(
        &self,
        who: &impl Liveness,
        deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> core::result::Result<Acquired, TimedOut> {
        // Not owned by the caller (`fast_lock` would have entered again), so the inner
        // lock is held by another thread or process: wait for it.
        let got = self.lock.lock_slow(who, deadline, spin)?;
        self.become_owner(who, 1);
        Ok(got)
    }

    /// Releases one level; returns the depth left (`0`: the lock is now free).
    fn unlock_held(&self, who: &impl Liveness) -> core::result::Result<u32, NotOwner> {
        if !self.is_owned_by(who) {
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

    fn is_locked(&self) -> bool {
        RawRLock::is_locked(self)
    }

    fn holder(&self) -> Option<u32> {
        RawRLock::holder(self)
    }
}
