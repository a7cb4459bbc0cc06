//! `Condition`: a condition variable shared between processes (Python's
//! `multiprocessing.Condition`), over its own [`RLock`] or a given
//! [`Lock`] / [`RLock`].
//!
//! # The algorithm: two generations of waiters
//!
//! Every field of [`RawCondvar`] except the futex words is read and written only while
//! the condition's lock is held, so the bookkeeping is plain counting; the only lock-free
//! part is a waiter sleeping on a futex word after it released the lock.
//!
//! Waiters belong to one of two *generations*:
//!
//! | field        | meaning                                                             |
//! |--------------|---------------------------------------------------------------------|
//! | `g1`         | number of the older generation, G1; the newer one, G2, is `g1 + 1`   |
//! | `g1_waiting` | members of G1 not yet notified                                      |
//! | `g1_signals` | notifications granted to G1 and not yet taken by a member           |
//! | `g2_waiting` | members of G2 (never notified: notifications go to G1 first)        |
//! | `seq[p]`     | futex word of the generations of parity `p`; bumped by each grant    |
//!
//! * `wait` joins G1 if G1 has no untaken notification and G2 is empty, otherwise G2,
//!   remembers the generation number `g`, releases the lock (fully, for an RLock) and
//!   sleeps on `seq[g & 1]`. A newcomer therefore never joins a generation that holds
//!   notifications granted before it arrived: **it cannot steal a wake-up**.
//! * `notify(n)` grants `min(n, g1_waiting)` notifications to G1 (moving them from
//!   `g1_waiting` to `g1_signals`), bumps `seq[g1 & 1]` and wakes that many sleepers. If
//!   some of `n` are left and G2 has members, every member of G1 is now notified: G1 is
//!   retired (`g1 += 1`, so its members see `g < g1` and know they were notified), G2
//!   becomes G1, and the rest is granted to it. With nobody waiting, `notify` returns
//!   at once and **stores nothing**.
//! * A woken waiter retakes the lock and looks: `g < g1` means notified; in G1 it takes
//!   one of `g1_signals` if there is one; otherwise it sleeps again.
//! * A waiter whose timeout passed retakes the lock and looks the same way. If it is
//!   not notified it leaves its generation's `waiting` count, so **no notification is
//!   ever granted to it later** (no stale wake-up); if a notification was granted to
//!   its generation meanwhile, it takes it and reports that it was notified, so
//!   `notify(n)` still accounts for exactly its grants.
//!
//! Within G1 notifications are anonymous: any member may take any one, which is sound
//! because every member of G1 was waiting when each of G1's notifications was granted.
//! Only members of G1 sleep on `seq[g1 & 1]` (a retired generation is retired only when
//! all its members are notified, and each notification has an awake member to take it),
//! so `wake_n(seq[g1 & 1], a)` reaches exactly the generation it is meant for.
//!
//! Generation numbers are 32-bit and compared with wrapping arithmetic; a waiter can be
//! confused only if 2^31 generations retire while it has not yet run.
//!
//! # A waiter that dies
//!
//! A process killed while it waits stays counted (waiters have no identity the others
//! could check), so a later `notify(1)` may be granted to it and wake nobody; `notify_all`
//! still wakes every live waiter. Python's `Condition` has the same limit. Waiting with a
//! timeout (or [`Condition::wait_for`] with one) bounds the damage.

use crate::arena::{fingerprint, Arena, ObjectKind, Shm};
use crate::error::Result;
use crate::lock::{Acquired, Lock, OwnerDied, RawLock, TimedOut, TryAcquireError};
use crate::owner::{Liveness, Procfs};
use crate::rlock::{current_tid, NotOwner, RLock, RawRLock};
use crate::sync::futex::{self, WaitResult};
use crate::sync::{time, AtomicU32, Ordering};
use crate::SpinPolicy;
use std::fmt;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// The lock a condition works with.

/// The lock a [`RawCondvar`] releases while waiting and retakes afterwards.
pub trait CondLock {
    /// True when the caller holds the lock.
    fn is_held(&self) -> bool;
    /// Releases the lock fully; returns what [`relock`](Self::relock) needs to restore it.
    ///
    /// # Errors
    /// [`NotOwner`] when the caller does not hold the lock.
    fn unlock_all(&self) -> core::result::Result<u32, NotOwner>;
    /// Retakes the lock (blocking), restoring what `unlock_all` returned.
    fn relock(&self, token: u32) -> Acquired;
    /// A hint: true while someone holds the lock. A woken waiter spins on it before
    /// [`relock`](Self::relock), since its notifier usually releases the lock a moment
    /// later (the default says "free": no spinning).
    fn is_locked_hint(&self) -> bool {
        false
    }
}

/// A [`RawLock`] as a [`CondLock`]: held means "held by the caller's process" (a `Lock`
/// does not record threads).
pub struct LockRef<'a, L: Liveness> {
    /// The lock.
    pub lock: &'a RawLock,
    /// Who the caller is.
    pub who: &'a L,
    /// How long to spin when retaking it.
    pub spin: SpinPolicy,
}

impl<L: Liveness> CondLock for LockRef<'_, L> {
    fn is_held(&self) -> bool {
        self.lock.holder() == Some(self.who.me())
    }

    fn unlock_all(&self) -> core::result::Result<u32, NotOwner> {
        if !self.is_held() {
            return Err(NotOwner);
        }
        self.lock.unlock();
        Ok(1)
    }

    fn is_locked_hint(&self) -> bool {
        self.lock.is_locked()
    }

    fn relock(&self, _token: u32) -> Acquired {
        if self.lock.try_lock(self.who) {
            return Acquired::Normal;
        }
        self.lock
            .lock_slow(self.who, None, self.spin)
            .unwrap_or(Acquired::Normal)
    }
}

/// A [`RawRLock`] as a [`CondLock`]: held means "held by thread `tid` of the caller".
pub struct RLockRef<'a, L: Liveness> {
    /// The lock.
    pub lock: &'a RawRLock,
    /// Who the caller is.
    pub who: &'a L,
    /// The calling thread.
    pub tid: u32,
    /// How long to spin when retaking it.
    pub spin: SpinPolicy,
}

impl<L: Liveness> CondLock for RLockRef<'_, L> {
    fn is_held(&self) -> bool {
        self.lock.is_owned_by(self.who, self.tid)
    }

    fn unlock_all(&self) -> core::result::Result<u32, NotOwner> {
        self.lock.unlock_all(self.who, self.tid)
    }

    fn is_locked_hint(&self) -> bool {
        self.lock.is_locked()
    }

    fn relock(&self, depth: u32) -> Acquired {
        self.lock.relock(self.who, self.tid, depth, self.spin)
    }
}

// ---------------------------------------------------------------------------------------
// The algorithm.

/// How a [`RawCondvar::wait`] ended. The lock is held again in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waited {
    /// True when a `notify` chose this waiter; false when the deadline passed first.
    pub notified: bool,
    /// True when the lock was retaken from a holder that died.
    pub owner_died: bool,
}

/// The shared state of a condition variable; see the [module docs](self).
///
/// All zero bytes is a condition nobody waits on.
#[repr(C)]
pub struct RawCondvar {
    seq: [AtomicU32; 2],
    g1: AtomicU32,
    g1_waiting: AtomicU32,
    g1_signals: AtomicU32,
    g2_waiting: AtomicU32,
    _pad: [u32; 2],
}

#[cfg(not(shmproc_loom))]
static_assertions::assert_eq_size!(RawCondvar, [u64; 4]);
#[cfg(not(shmproc_loom))]
static_assertions::const_assert_eq!(core::mem::offset_of!(RawCondvar, g1), 8);
#[cfg(not(shmproc_loom))]
static_assertions::const_assert_eq!(core::mem::offset_of!(RawCondvar, g2_waiting), 20);

impl Default for RawCondvar {
    fn default() -> Self {
        Self::new()
    }
}

// Every counter below is accessed with Relaxed loads and stores: it is only touched with
// the condition's lock held, and the lock's Acquire (lock) / Release (unlock) order all
// those accesses. They are atomics, not `UnsafeCell`s, so that a peer that breaks the
// protocol (or scribbles on the arena) can make counts wrong but never cause a data race.
impl RawCondvar {
    /// A condition nobody waits on.
    pub fn new() -> Self {
        RawCondvar {
            seq: [AtomicU32::new(0), AtomicU32::new(0)],
            g1: AtomicU32::new(0),
            g1_waiting: AtomicU32::new(0),
            g1_signals: AtomicU32::new(0),
            g2_waiting: AtomicU32::new(0),
            _pad: [0; 2],
        }
    }

    #[inline]
    fn get(a: &AtomicU32) -> u32 {
        // Relaxed: under the lock, see above.
        a.load(Ordering::Relaxed)
    }

    #[inline]
    fn set(a: &AtomicU32, v: u32) {
        // Relaxed: under the lock, see above.
        a.store(v, Ordering::Relaxed)
    }

    /// Waiters not yet notified (a snapshot; exact while the lock is held).
    pub fn n_waiting(&self) -> u32 {
        Self::get(&self.g1_waiting).saturating_add(Self::get(&self.g2_waiting))
    }

    /// Notifications granted and not yet taken by their waiters (a snapshot).
    pub fn n_pending(&self) -> u32 {
        Self::get(&self.g1_signals)
    }

    /// Releases `lock`, sleeps until notified or until `deadline`, retakes `lock`.
    ///
    /// # Errors
    /// [`NotOwner`] (and nothing happens) when the caller does not hold `lock`.
    pub fn wait(
        &self,
        lock: &impl CondLock,
        deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> core::result::Result<Waited, NotOwner> {
        if !lock.is_held() {
            return Err(NotOwner);
        }
        // Join a generation (see the module docs: never one holding older grants).
        let g1 = Self::get(&self.g1);
        let g = if Self::get(&self.g1_signals) == 0 && Self::get(&self.g2_waiting) == 0 {
            Self::set(
                &self.g1_waiting,
                Self::get(&self.g1_waiting).wrapping_add(1),
            );
            g1
        } else {
            Self::set(
                &self.g2_waiting,
                Self::get(&self.g2_waiting).wrapping_add(1),
            );
            g1.wrapping_add(1)
        };
        let word = &self.seq[(g & 1) as usize];
        // Relaxed: read under the lock; a grant to our generation bumps it under the lock
        // too, so if it differs when we sleep, the futex returns at once.
        let mut seen = word.load(Ordering::Relaxed);
        let token = lock.unlock_all()?;
        let mut owner_died = false;
        loop {
            let timed_out = Self::sleep(word, seen, deadline, spin);
            // The notifier still holds the lock (it notifies with it held): let it go
            // before contending, so that the hand-off does not also cost a lock wake-up.
            for round in 0..spin.rounds {
                if !lock.is_locked_hint() {
                    break;
                }
                spin.pause(round);
            }
            owner_died |= lock.relock(token) == Acquired::OwnerDied;
            if let Some(notified) = self.leave(g, timed_out) {
                return Ok(Waited {
                    notified,
                    owner_died,
                });
            }
            // Spurious wake-up, or a grant that another member took: wait again.
            // Relaxed: under the lock, as above.
            seen = word.load(Ordering::Relaxed);
            lock.unlock_all()?;
        }
    }

    /// Sleeps (the lock released) until `word` moves past `seen`; true when `deadline`
    /// passed first.
    fn sleep(word: &AtomicU32, seen: u32, deadline: Option<Instant>, spin: SpinPolicy) -> bool {
        for round in 0..spin.rounds {
            // Relaxed: a hint; the decision is taken under the lock.
            if word.load(Ordering::Relaxed) != seen {
                return false;
            }
            spin.pause(round);
        }
        loop {
            // Relaxed: as above.
            if word.load(Ordering::Relaxed) != seen {
                return false;
            }
            if futex::wait(word, seen, deadline) == WaitResult::TimedOut && time::expired(deadline)
            {
                return true;
            }
        }
    }

    /// With the lock held again: `Some(notified)` if the waiter of generation `g` is done,
    /// `None` if it must wait again.
    fn leave(&self, g: u32, timed_out: bool) -> Option<bool> {
        let g1 = Self::get(&self.g1);
        match g1.wrapping_sub(g) as i32 {
            // A retired generation: every member was notified.
            d if d > 0 => Some(true),
            0 => {
                let s = Self::get(&self.g1_signals);
                if s > 0 {
                    Self::set(&self.g1_signals, s - 1);
                    Some(true)
                } else if timed_out {
                    Self::set(
                        &self.g1_waiting,
                        Self::get(&self.g1_waiting).saturating_sub(1),
                    );
                    Some(false)
                } else {
                    None
                }
            }
            -1 => {
                if timed_out {
                    Self::set(
                        &self.g2_waiting,
                        Self::get(&self.g2_waiting).saturating_sub(1),
                    );
                    Some(false)
                } else {
                    None
                }
            }
            // Not a generation this condition can have: the state was corrupted by a
            // peer. Give up waiting rather than wait for something that cannot come.
            _ => Some(false),
        }
    }

    /// Notifies at most `n` of the current waiters; returns how many were notified.
    ///
    /// # Errors
    /// [`NotOwner`] when the caller does not hold `lock`.
    pub fn notify(&self, lock: &impl CondLock, n: u32) -> core::result::Result<u32, NotOwner> {
        if !lock.is_held() {
            return Err(NotOwner);
        }
        let mut w1 = Self::get(&self.g1_waiting);
        let mut w2 = Self::get(&self.g2_waiting);
        if w1 == 0 && w2 == 0 {
            return Ok(0);
        }
        let mut left = n;
        let mut granted = 0u32;
        loop {
            let a = left.min(w1);
            if a > 0 {
                let g1 = Self::get(&self.g1);
                Self::set(&self.g1_waiting, w1 - a);
                Self::set(
                    &self.g1_signals,
                    Self::get(&self.g1_signals).saturating_add(a),
                );
                let word = &self.seq[(g1 & 1) as usize];
                // Relaxed: the waiters decide under the lock; the futex only needs the
                // value to differ from the one they sleep on (compared in the kernel).
                word.fetch_add(1, Ordering::Relaxed);
                futex::wake_n(word, a);
                left -= a;
                granted += a;
            }
            if left == 0 || w2 == 0 {
                return Ok(granted);
            }
            // Every member of G1 is notified: retire it; G2 becomes G1.
            Self::set(&self.g1, Self::get(&self.g1).wrapping_add(1));
            Self::set(&self.g1_signals, 0);
            Self::set(&self.g1_waiting, w2);
            Self::set(&self.g2_waiting, 0);
            w1 = w2;
            w2 = 0;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The handle.

/// The state block of a [`Condition`]: the condition variable and, for a condition with
/// its own lock, that lock.
#[repr(C)]
pub struct RawCondition {
    cv: RawCondvar,
    own_lock: RawRLock,
}

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
    raw: Shm<RawCondition>,
    which: Which,
    spin: SpinPolicy,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("n_waiting", &self.raw.cv.n_waiting())
            .finish_non_exhaustive()
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

const KIND_DESC: &str = "Condition";

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
    /// [`Error::OutOfSpace`](crate::Error::OutOfSpace) /
    /// [`Error::DirectoryFull`](crate::Error::DirectoryFull) when the arena is full.
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
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists), a bad name, or a full arena.
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
    /// [`Error::NotFound`](crate::Error::NotFound);
    /// [`Error::WrongType`](crate::Error::WrongType) when `name` is not a condition;
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) when it was made over an
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
        let (raw, entry) = arena.open_object::<RawCondition>(
            name,
            ObjectKind::Condition,
            fingerprint::<RawCondition>(),
            KIND_DESC,
        )?;
        let want = if matches!(which, Which::Own) {
            PARAM_OWN
        } else {
            PARAM_EXTERNAL
        };
        if entry.param != want {
            return Err(crate::Error::InvalidArgument(format!(
                "condition {name:?} was made {}; open it with {}",
                if entry.param == PARAM_OWN {
                    "with its own lock"
                } else {
                    "over an external lock"
                },
                if entry.param == PARAM_OWN {
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
        let param = if matches!(which, Which::Own) {
            PARAM_OWN
        } else {
            PARAM_EXTERNAL
        };
        let raw = arena.create_object::<RawCondition>(
            name,
            ObjectKind::Condition,
            fingerprint::<RawCondition>(),
            core::mem::size_of::<RawCondition>(),
            param,
            // Zeroed memory is an idle condition and a free RLock.
            |_| {},
        )?;
        Ok(Condition {
            raw,
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
                tid: current_tid(),
                spin: self.spin,
            }),
            Which::RLock(l) => f(&RLockRef {
                lock: l.raw(),
                who: &Procfs,
                tid: current_tid(),
                spin: self.spin,
            }),
            Which::Lock(l) => f(&LockRef {
                lock: l.raw(),
                who: &Procfs,
                spin: self.spin,
            }),
        }
    }

    /// Takes the condition's lock (one level, for an RLock); blocks.
    ///
    /// # Errors
    /// [`OwnerDied`] (holding the guard) when the previous holder died holding the lock.
    pub fn acquire(
        &self,
    ) -> core::result::Result<ConditionGuard<'_>, OwnerDied<ConditionGuard<'_>>> {
        match self.lock_raw(None) {
            Ok(Acquired::OwnerDied) => Err(OwnerDied::new(ConditionGuard::new(self))),
            _ => Ok(ConditionGuard::new(self)),
        }
    }

    /// Takes the condition's lock if that does not block.
    ///
    /// # Errors
    /// [`TryAcquireError::WouldBlock`] when held elsewhere; [`TryAcquireError::OwnerDied`]
    /// when taken over from a dead holder.
    pub fn try_acquire(
        &self,
    ) -> core::result::Result<ConditionGuard<'_>, TryAcquireError<ConditionGuard<'_>>> {
        let got = match &self.which {
            Which::Own => self.raw.own_lock.try_lock(&Procfs, current_tid()),
            Which::RLock(l) => l.raw().try_lock(&Procfs, current_tid()),
            Which::Lock(l) => l.raw().try_lock_or_recover(&Procfs),
        };
        match got {
            Some(Acquired::Normal) => Ok(ConditionGuard::new(self)),
            Some(Acquired::OwnerDied) => Err(TryAcquireError::OwnerDied(OwnerDied::new(
                ConditionGuard::new(self),
            ))),
            None => Err(TryAcquireError::WouldBlock),
        }
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
        match self.lock_raw(time::deadline_after(timeout)) {
            Ok(Acquired::Normal) => Ok(ConditionGuard::new(self)),
            Ok(Acquired::OwnerDied) => Err(TryAcquireError::OwnerDied(OwnerDied::new(
                ConditionGuard::new(self),
            ))),
            Err(TimedOut) => Err(TryAcquireError::WouldBlock),
        }
    }

    fn lock_raw(&self, deadline: Option<Instant>) -> core::result::Result<Acquired, TimedOut> {
        match &self.which {
            Which::Own => self
                .raw
                .own_lock
                .lock(&Procfs, current_tid(), deadline, self.spin),
            Which::RLock(l) => l.raw().lock(&Procfs, current_tid(), deadline, self.spin),
            Which::Lock(l) => {
                if l.raw().try_lock(&Procfs) {
                    Ok(Acquired::Normal)
                } else {
                    l.raw().lock_slow(&Procfs, deadline, self.spin)
                }
            }
        }
    }

    /// Releases one level of the condition's lock taken without a guard (Python's
    /// `release()`).
    ///
    /// # Errors
    /// [`ConditionError::NotOwner`] when the caller does not hold it.
    pub fn release(&self) -> core::result::Result<(), ConditionError> {
        match &self.which {
            Which::Own => self.raw.own_lock.unlock(&Procfs, current_tid()).map(drop)?,
            Which::RLock(l) => l.raw().unlock(&Procfs, current_tid()).map(drop)?,
            Which::Lock(l) => l.release().map_err(|_| ConditionError::NotOwner)?,
        }
        Ok(())
    }

    /// Acquires the lock without a guard (Python's `acquire()`); pair with
    /// [`release`](Self::release). Returns whether the previous holder had died.
    pub fn acquire_forever(&self) -> Acquired {
        self.lock_raw(None).unwrap_or(Acquired::Normal)
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
