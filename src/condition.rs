//! [`Condition`]: Python's `multiprocessing.Condition`, over its own [`RLock`] or a
//! given [`Lock`] / [`RLock`].
//!
//! `wait` releases the lock, sleeps until notified (or until its timeout), and retakes the
//! lock; `notify(n)` wakes `n` waiters that were waiting when it was called, never one that
//! came later (no stolen wake-up), and `notify` with nobody waiting stores nothing. A
//! process killed while it waits takes no notification away from the living (Python's
//! does): a notification the bookkeeping grants to a dead waiter while live ones wait
//! reaches one of them within about 150 ms (raw::condvar, "A waiter that dies").
//!
//! The algorithm (two generations of waiters): [`raw::condvar`](crate::raw::condvar).

use crate::arena::{Arena, ObjectKind};
use crate::error::{Error, Result};
use crate::lock::{self, Acquired, Lock, OwnerDied, TimedOut, TryAcquireError};
use crate::object::{Inspect, Obj, Object, Word};
use crate::raw::condvar::{CondLock, LockRef, RLockRef, RawCondvar, Waited};
use crate::raw::lock::{RawLock, RobustLock};
use crate::raw::rlock::RawRLock;
use crate::rlock::{NotOwner, RLock};
use crate::sync::liveness::{Liveness, Procfs};
use crate::sync::time;
use crate::SpinPolicy;
use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, Instant};

/// The state block of a [`Condition`]: the condition variable and, for a condition with
/// its own lock, that lock.
#[repr(C)]
pub struct RawCondition {
    cv: RawCondvar,
    own_lock: RawRLock,
}

// SAFETY: `#[repr(C)]`, aligned to at most 128; a `RawCondvar` and a `RawRLock`, both
// `SharedState` themselves.
unsafe impl crate::raw::SharedState for RawCondition {}

#[cfg(not(shmproc_loom))]
static_assertions::assert_eq_size!(RawCondition, [u64; 8]);

/// Which lock a [`Condition`] works with.
#[derive(Clone)]
enum Which {
    Own,
    Lock(Lock),
    RLock(RLock),
}

/// `param` of the directory entry: which lock the condition was created with.
const PARAM_OWN: u64 = 0;
const PARAM_EXTERNAL: u64 = 1;

/// The parameter of a condition: whether it works with its own lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OwnLock(bool);

impl Word for OwnLock {
    fn to_word(&self) -> u64 {
        if self.0 {
            PARAM_OWN
        } else {
            PARAM_EXTERNAL
        }
    }

    fn from_word(word: u64) -> Option<OwnLock> {
        match word {
            PARAM_OWN => Some(OwnLock(true)),
            PARAM_EXTERNAL => Some(OwnLock(false)),
            _ => None,
        }
    }
}

impl Object for Condition {
    type State = RawCondition;
    type Params = OwnLock;
    const KIND: ObjectKind = ObjectKind::Condition;

    fn type_name() -> Cow<'static, str> {
        "Condition".into()
    }

    fn inspect(c: &RawCondition, own: &OwnLock, out: &mut Inspect) {
        out.field("n_waiting", c.cv.n_waiting());
        if own.0 {
            out.field("holder", c.own_lock.holder());
        }
    }
}

/// The condition's lock, whichever it is, as one robust lock (so the acquisition code
/// of every lock handle serves this one too).
enum AnyLock<'a> {
    Re(&'a RawRLock),
    Plain(&'a RawLock),
}

impl RobustLock for AnyLock<'_> {
    #[inline]
    fn fast_lock(&self, who: &impl Liveness) -> bool {
        match self {
            AnyLock::Re(l) => l.fast_lock(who),
            AnyLock::Plain(l) => l.fast_lock(who),
        }
    }

    fn try_lock_or_recover(&self, who: &impl Liveness) -> Option<Acquired> {
        match self {
            AnyLock::Re(l) => l.try_lock_or_recover(who),
            AnyLock::Plain(l) => l.try_lock_or_recover(who),
        }
    }

    fn lock_slow(
        &self,
        who: &impl Liveness,
        deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> core::result::Result<Acquired, TimedOut> {
        match self {
            AnyLock::Re(l) => l.lock_slow(who, deadline, spin),
            AnyLock::Plain(l) => l.lock_slow(who, deadline, spin),
        }
    }

    fn unlock_held(&self, who: &impl Liveness) -> core::result::Result<u32, NotOwner> {
        match self {
            AnyLock::Re(l) => l.unlock_held(who),
            // A `Lock` may be released by any process, as Python allows.
            AnyLock::Plain(l) => match l.unlock() & crate::sync::liveness::PID_MASK {
                0 => Err(NotOwner),
                _ => Ok(0),
            },
        }
    }

    fn is_locked(&self) -> bool {
        match self {
            AnyLock::Re(l) => l.is_locked(),
            AnyLock::Plain(l) => l.is_locked(),
        }
    }

    fn holder(&self) -> Option<u32> {
        match self {
            AnyLock::Re(l) => l.holder(),
            AnyLock::Plain(l) => l.holder(),
        }
    }
}

/// A condition variable shared between processes: Python's `multiprocessing.Condition`.
///
/// It works with a lock: its own [`RLock`] ([`Condition::new`]) or a given
/// [`Lock`] / [`RLock`]. [`wait`](Self::wait),
/// [`notify`](Self::notify) and friends must be called with that lock held (else they
/// return [`ConditionError::NotOwner`]); `wait` releases it (fully, however deep an RLock
/// is held), sleeps, and takes it back at the same depth. See the [module docs](self) for
/// the algorithm: `notify(n)` wakes at most `n` of the waiters present when it is called,
/// and a waiter that times out leaves no wake-up behind.
///
/// With a `Lock`, "held" means held by the calling *process* (a `Lock` does not record
/// threads); with an RLock, by the calling thread.
///
/// # Example
/// ```
/// use shmproc::condition::Condition;
/// use std::time::Duration;
/// let cond = Condition::new()?;
/// let _held = cond.acquire().unwrap();
/// assert_eq!(cond.notify(1), Ok(0)); // nobody waits: nothing happens
/// assert_eq!(cond.wait_timeout(Duration::from_millis(5)), Ok(false));
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Condition {
    raw: Obj<Condition>,
    which: Which,
    spin: SpinPolicy,
}

impl crate::object::Shared for Condition {
    type Of = Condition;
    fn shared(&self) -> &Obj<Condition> {
        &self.raw
    }
    fn rebuild(raw: Obj<Condition>) -> Result<Condition> {
        if !raw.params().0 {
            return Err(external_lock());
        }
        Ok(Condition {
            raw,
            which: Which::Own,
            spin: SpinPolicy::default(),
        })
    }

    fn can_travel(&self) -> Result<()> {
        match self.which {
            Which::Own => Ok(()),
            _ => Err(external_lock()),
        }
    }
}

/// Only a condition with its own lock travels alone: the other one's lock would have to
/// travel with it.
fn external_lock() -> Error {
    Error::InvalidArgument(
        "a Condition made over an external lock cannot travel: send one made with its own \
         lock (Condition::new), or send the lock and make the condition in the receiver"
            .into(),
    )
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.raw.debug(f, &[])
    }
}

/// Why a [`Condition`] operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionError {
    /// The caller does not hold the condition's lock; nothing was done.
    NotOwner,
    /// While waiting, the lock was retaken from a process that died holding it: the
    /// caller holds the lock, and the data it protects may need repair.
    OwnerDied {
        /// Whether the waiter had been notified.
        notified: bool,
    },
}

impl fmt::Display for ConditionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConditionError::NotOwner => {
                f.write_str("the condition's lock is not held by the caller: acquire it first")
            }
            ConditionError::OwnerDied { .. } => f.write_str(
                "the condition's lock was retaken from a process that died holding it; \
                 the caller holds it now and should check the protected data",
            ),
        }
    }
}

impl std::error::Error for ConditionError {}

impl From<NotOwner> for ConditionError {
    fn from(_: NotOwner) -> Self {
        ConditionError::NotOwner
    }
}

/// Holds a [`Condition`]'s lock (one level of it, for an RLock) until dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ConditionGuard<'a> {
    cond: &'a Condition,
    _not_send: core::marker::PhantomData<*const ()>,
}

impl fmt::Debug for ConditionGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConditionGuard").finish_non_exhaustive()
    }
}

impl Drop for ConditionGuard<'_> {
    fn drop(&mut self) {
        let _ = self.cond.release();
    }
}

impl<'a> ConditionGuard<'a> {
    fn new(cond: &'a Condition) -> Self {
        ConditionGuard {
            cond,
            _not_send: core::marker::PhantomData,
        }
    }

    /// The condition whose lock this guard holds.
    pub fn condition(&self) -> &'a Condition {
        self.cond
    }
}

impl Condition {
    /// A condition with its own [`RLock`], in the [global arena](Arena::global).
    ///
    /// # Errors
    /// When the global arena cannot be made, or is full.
    pub fn new() -> Result<Condition> {
        Self::new_in(&Arena::global()?)
    }

    /// A condition with its own [`RLock`], in `arena`.
    ///
    /// # Errors
    /// [`Error::OutOfSpace`] /
    /// [`Error::OutOfSpace`] when the arena is full to its limit.
    pub fn new_in(arena: &Arena) -> Result<Condition> {
        Self::make(arena, None, Which::Own)
    }

    /// A condition over `lock`, in `arena` (the lock may live in another arena).
    ///
    /// # Errors
    /// As [`new_in`](Self::new_in).
    ///
    /// ```
    /// use shmproc::{condition::Condition, lock::Lock, Arena};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// let lock = Lock::new_in(&arena)?;
    /// let cond = Condition::with_lock(&arena, &lock)?;
    /// assert_eq!(cond.notify_all(), Err(shmproc::condition::ConditionError::NotOwner));
    /// let _g = lock.acquire().unwrap();
    /// assert_eq!(cond.notify_all(), Ok(0));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn with_lock(arena: &Arena, lock: &Lock) -> Result<Condition> {
        Self::make(arena, None, Which::Lock(lock.clone()))
    }

    /// A condition over the re-entrant `lock`.
    ///
    /// # Errors
    /// As [`new_in`](Self::new_in).
    pub fn with_rlock(arena: &Arena, lock: &RLock) -> Result<Condition> {
        Self::make(arena, None, Which::RLock(lock.clone()))
    }

    /// A condition with its own RLock, named `name` in `arena`, for [`open`](Self::open).
    ///
    /// # Errors
    /// [`Error::AlreadyExists`], a bad name, or a full arena.
    pub fn create(arena: &Arena, name: &str) -> Result<Condition> {
        Self::make(arena, Some(name), Which::Own)
    }

    /// A condition over `lock`, named `name` in `arena`, for
    /// [`open_with_lock`](Self::open_with_lock).
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub fn create_with_lock(arena: &Arena, name: &str, lock: &Lock) -> Result<Condition> {
        Self::make(arena, Some(name), Which::Lock(lock.clone()))
    }

    /// A condition over `lock`, named `name` in `arena`, for
    /// [`open_with_rlock`](Self::open_with_rlock).
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub fn create_with_rlock(arena: &Arena, name: &str, lock: &RLock) -> Result<Condition> {
        Self::make(arena, Some(name), Which::RLock(lock.clone()))
    }

    /// The condition named `name` in `arena`, made with its own lock by
    /// [`create`](Self::create).
    ///
    /// # Errors
    /// [`Error::NotFound`];
    /// [`Error::WrongType`] when `name` is not a condition;
    /// [`Error::InvalidArgument`] when it was made over an
    /// external lock (open it with `open_with_lock` / `open_with_rlock`).
    ///
    /// ```
    /// # use shmproc::{Arena, condition::Condition};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// let a = Condition::create(&arena, "ready")?;
    /// let b = Condition::open(&arena, "ready")?;
    /// let _g = a.acquire().unwrap();
    /// assert_eq!(b.notify(1), Ok(0)); // b shares a's lock
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn open(arena: &Arena, name: &str) -> Result<Condition> {
        Self::attach(arena, name, Which::Own)
    }

    /// The condition named `name` in `arena`, made over `lock` by
    /// [`create_with_lock`](Self::create_with_lock). Give the same lock (e.g. from
    /// [`Lock::open`]).
    ///
    /// # Errors
    /// As [`open`](Self::open), when `name` was made with its own lock.
    pub fn open_with_lock(arena: &Arena, name: &str, lock: &Lock) -> Result<Condition> {
        Self::attach(arena, name, Which::Lock(lock.clone()))
    }

    /// The condition named `name` in `arena`, made over `lock` by
    /// [`create_with_rlock`](Self::create_with_rlock).
    ///
    /// # Errors
    /// As [`open_with_lock`](Self::open_with_lock).
    pub fn open_with_rlock(arena: &Arena, name: &str, lock: &RLock) -> Result<Condition> {
        Self::attach(arena, name, Which::RLock(lock.clone()))
    }

    fn attach(arena: &Arena, name: &str, which: Which) -> Result<Condition> {
        let raw = Obj::<Condition>::open(arena, name)?;
        let own = raw.params().0;
        if own != matches!(which, Which::Own) {
            return Err(Error::InvalidArgument(format!(
                "condition {name:?} was made {}; open it with {}",
                if own {
                    "with its own lock"
                } else {
                    "over an external lock"
                },
                if own {
                    "Condition::open"
                } else {
                    "Condition::open_with_lock or open_with_rlock"
                }
            )));
        }
        Ok(Condition {
            raw,
            which,
            spin: SpinPolicy::default(),
        })
    }

    fn make(arena: &Arena, name: Option<&str>, which: Which) -> Result<Condition> {
        let own = OwnLock(matches!(which, Which::Own));
        Ok(Condition {
            // Zeroed memory is an idle condition and a free RLock: no `init`.
            raw: Obj::create(arena, name, own)?,
            which,
            spin: SpinPolicy::default(),
        })
    }

    /// Sets how long this handle spins before sleeping, in `wait` and when retaking the
    /// lock (see [`SpinPolicy`]).
    pub fn set_spin(&mut self, spin: SpinPolicy) {
        self.spin = spin;
    }

    /// Runs `f` with this condition's lock as a [`CondLock`].
    fn with_cond_lock<R>(&self, f: impl FnOnce(&dyn CondLockDyn) -> R) -> R {
        match &self.which {
            Which::Own => f(&RLockRef {
                lock: &self.raw.own_lock,
                who: &Procfs,
                spin: self.spin,
            }),
            Which::RLock(l) => f(&RLockRef {
                lock: l.raw(),
                who: &Procfs,
                spin: self.spin,
            }),
            Which::Lock(l) => f(&LockRef {
                lock: l.raw(),
                who: &Procfs,
                spin: self.spin,
            }),
        }
    }

    /// The condition's lock.
    #[inline]
    fn lock(&self) -> AnyLock<'_> {
        match &self.which {
            Which::Own => AnyLock::Re(&self.raw.own_lock),
            Which::RLock(l) => AnyLock::Re(l.raw()),
            Which::Lock(l) => AnyLock::Plain(l.raw()),
        }
    }

    /// Takes the condition's lock (one level, for an RLock); blocks.
    ///
    /// # Errors
    /// [`OwnerDied`] (holding the guard) when the previous holder died holding the lock.
    pub fn acquire(
        &self,
    ) -> core::result::Result<ConditionGuard<'_>, OwnerDied<ConditionGuard<'_>>> {
        lock::acquire(&self.lock(), self.spin, || ConditionGuard::new(self))
    }

    /// Takes the condition's lock if that does not block.
    ///
    /// # Errors
    /// [`TryAcquireError::WouldBlock`] when held elsewhere; [`TryAcquireError::OwnerDied`]
    /// when taken over from a dead holder.
    pub fn try_acquire(
        &self,
    ) -> core::result::Result<ConditionGuard<'_>, TryAcquireError<ConditionGuard<'_>>> {
        lock::try_acquire(&self.lock(), || ConditionGuard::new(self))
    }

    /// Takes the condition's lock, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`TryAcquireError::WouldBlock`] at the timeout; [`TryAcquireError::OwnerDied`] as
    /// for [`acquire`](Self::acquire).
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> core::result::Result<ConditionGuard<'_>, TryAcquireError<ConditionGuard<'_>>> {
        lock::acquire_timeout(&self.lock(), self.spin, timeout, || {
            ConditionGuard::new(self)
        })
    }

    /// Releases one level of the condition's lock taken without a guard (Python's
    /// `release()`).
    ///
    /// # Errors
    /// [`ConditionError::NotOwner`] when the caller does not hold it.
    pub fn release(&self) -> core::result::Result<(), ConditionError> {
        self.lock().unlock_held(&Procfs)?;
        Ok(())
    }

    /// Acquires the lock without a guard (Python's `acquire()`); pair with
    /// [`release`](Self::release). Returns whether the previous holder had died.
    pub fn acquire_forever(&self) -> Acquired {
        lock::acquire_forever(&self.lock(), self.spin)
    }

    fn wait_raw(&self, deadline: Option<Instant>) -> core::result::Result<bool, ConditionError> {
        let w = self.with_cond_lock(|l| l.wait_dyn(&self.raw.cv, deadline, self.spin))?;
        if w.owner_died {
            Err(ConditionError::OwnerDied {
                notified: w.notified,
            })
        } else {
            Ok(w.notified)
        }
    }

    /// Releases the lock, sleeps until notified, and retakes the lock (at the depth it
    /// was held).
    ///
    /// # Errors
    /// [`ConditionError::NotOwner`] when the caller does not hold the lock (nothing
    /// happens); [`ConditionError::OwnerDied`] when the lock was retaken from a dead
    /// holder (the caller holds it).
    pub fn wait(&self) -> core::result::Result<(), ConditionError> {
        self.wait_raw(None).map(drop)
    }

    /// As [`wait`](Self::wait), for at most `timeout`; returns whether it was notified
    /// (`false`: the timeout passed). The lock is held again either way.
    ///
    /// The timeout bounds the wait for a notification. Retaking the lock afterwards
    /// waits as [`acquire`](Self::acquire) does, as in Python: while another live
    /// process holds the lock (or a peer wrote a live pid into its word), this call
    /// returns only once the lock is free, however long after `timeout` that is (a
    /// holder that dies is detected and the lock recovered). Giving up the lock on a
    /// timeout would break the contract that the caller holds it on return.
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn wait_timeout(&self, timeout: Duration) -> core::result::Result<bool, ConditionError> {
        self.wait_raw(time::deadline_after(timeout))
    }

    /// Waits until `predicate()` is true, or until `timeout` (if any) has passed; returns
    /// the last value of `predicate()` (Python's `wait_for`). `predicate` runs with the
    /// lock held.
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    ///
    /// ```
    /// # use shmproc::condition::Condition;
    /// # use std::time::Duration;
    /// let cond = Condition::new()?;
    /// let _g = cond.acquire().unwrap();
    /// let mut polls = 0;
    /// let ok = cond.wait_for(|| { polls += 1; polls == 1 }, Some(Duration::from_secs(1)));
    /// assert_eq!(ok, Ok(true)); // already true: no wait
    /// assert_eq!(cond.wait_for(|| false, Some(Duration::from_millis(5))), Ok(false));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn wait_for(
        &self,
        mut predicate: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> core::result::Result<bool, ConditionError> {
        let deadline = timeout.and_then(time::deadline_after);
        loop {
            if predicate() {
                return Ok(true);
            }
            if !self.with_cond_lock(|l| l.held()) {
                return Err(ConditionError::NotOwner);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            self.wait_raw(deadline)?;
        }
    }

    /// Wakes at most `n` of the processes and threads waiting now; returns how many.
    /// With nobody waiting it does nothing (and writes nothing).
    ///
    /// # Errors
    /// [`ConditionError::NotOwner`] when the caller does not hold the lock.
    pub fn notify(&self, n: u32) -> core::result::Result<u32, ConditionError> {
        Ok(self.with_cond_lock(|l| l.notify_dyn(&self.raw.cv, n))?)
    }

    /// Wakes every process and thread waiting now; returns how many.
    ///
    /// # Errors
    /// [`ConditionError::NotOwner`] when the caller does not hold the lock.
    pub fn notify_all(&self) -> core::result::Result<u32, ConditionError> {
        self.notify(u32::MAX)
    }

    /// Waiters not yet notified (a snapshot; exact while the lock is held).
    pub fn n_waiting(&self) -> u32 {
        self.raw.cv.n_waiting()
    }

    /// True when the caller holds the condition's lock.
    pub fn is_owned(&self) -> bool {
        self.with_cond_lock(|l| l.held())
    }
}

/// Object-safe view of a [`CondLock`], so the handle can pick its lock at run time.
trait CondLockDyn {
    fn held(&self) -> bool;
    fn wait_dyn(
        &self,
        cv: &RawCondvar,
        deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> core::result::Result<Waited, NotOwner>;
    fn notify_dyn(&self, cv: &RawCondvar, n: u32) -> core::result::Result<u32, NotOwner>;
}

impl<T: CondLock> CondLockDyn for T {
    fn held(&self) -> bool {
        self.is_held()
    }
    fn wait_dyn(
        &self,
        cv: &RawCondvar,
        deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> core::result::Result<Waited, NotOwner> {
        cv.wait(self, deadline, spin)
    }
    fn notify_dyn(&self, cv: &RawCondvar, n: u32) -> core::result::Result<u32, NotOwner> {
        cv.notify(self, n)
    }
}
