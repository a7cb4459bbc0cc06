//! `Condition`: a condition variable shared between processes (Python's
//! `multiprocessing.Condition`), over its own [`RLock`](crate::RLock) or a given
//! [`Lock`](crate::Lock) / [`RLock`](crate::RLock).
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
//! timeout (or [`Condition::wait_for`](crate::Condition::wait_for) with one) bounds the damage.

use crate::raw::lock::{Acquired, RawLock, RobustLock};
use crate::raw::rlock::{NotOwner, RawRLock};
use crate::sync::futex::WaitResult;
use crate::sync::liveness::Liveness;
use crate::sync::spin::{Round, SpinPolicy};
use crate::sync::wait::EventCount;
use crate::sync::{time, AtomicU32, Ordering};
use std::time::Instant;

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
        // Never times out without a deadline.
        self.lock
            .lock(self.who, None, self.spin)
            .unwrap_or(Acquired::Normal)
    }
}

/// A [`RawRLock`] as a [`CondLock`]: held means "held by the calling thread"
/// (`who.my_thread()`).
pub struct RLockRef<'a, L: Liveness> {
    /// The lock.
    pub lock: &'a RawRLock,
    /// Who the caller is (its process and thread).
    pub who: &'a L,
    /// How long to spin when retaking it.
    pub spin: SpinPolicy,
}

impl<L: Liveness> CondLock for RLockRef<'_, L> {
    fn is_held(&self) -> bool {
        self.lock.is_owned_by(self.who)
    }

    fn unlock_all(&self) -> core::result::Result<u32, NotOwner> {
        self.lock.unlock_all(self.who)
    }

    fn is_locked_hint(&self) -> bool {
        self.lock.is_locked()
    }

    fn relock(&self, depth: u32) -> Acquired {
        self.lock.relock(self.who, depth, self.spin)
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
    seq: [EventCount; 2],
    g1: AtomicU32,
    g1_waiting: AtomicU32,
    g1_signals: AtomicU32,
    g2_waiting: AtomicU32,
    _pad: [u32; 2],
}

// SAFETY: `#[repr(C)]`, aligned to at most 128; atomic counters only, touched under the condition's lock; wrong counts make notifications go astray, never touch memory.
unsafe impl crate::raw::SharedState for RawCondvar {}

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
            seq: [EventCount::new(), EventCount::new()],
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
        // Read under the lock; a grant to our generation bumps it under the lock too, so
        // if it differs when we sleep, the futex returns at once.
        let mut seen = word.key();
        let token = lock.unlock_all()?;
        let mut owner_died = false;
        loop {
            let timed_out = Self::sleep(word, seen, deadline, spin);
            // The notifier still holds the lock (it notifies with it held): let it go
            // before contending, so that the hand-off does not also cost a lock wake-up.
            spin.attempts(|| {
                if lock.is_locked_hint() {
                    Round::<()>::Again
                } else {
                    Round::Sleep
                }
            });
            owner_died |= lock.relock(token) == Acquired::OwnerDied;
            if let Some(notified) = self.leave(g, timed_out) {
                return Ok(Waited {
                    notified,
                    owner_died,
                });
            }
            // Spurious wake-up, or a grant that another member took: wait again (the
            // count read under the lock, as above).
            seen = word.key();
            lock.unlock_all()?;
        }
    }

    /// Sleeps (the lock released) until `word` moves past `seen`; true when `deadline`
    /// passed first.
    fn sleep(word: &EventCount, seen: u32, deadline: Option<Instant>, spin: SpinPolicy) -> bool {
        let moved = spin.attempts(|| {
            // A hint; the decision is taken under the lock.
            if word.key() != seen {
                Round::Done(())
            } else {
                Round::Again
            }
        });
        if moved.is_some() {
            return false;
        }
        loop {
            if word.key() != seen {
                return false;
            }
            if word.wait(seen, deadline) == WaitResult::TimedOut && time::expired(deadline) {
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
                // The waiters decide under the lock; the futex only needs the value to
                // differ from the one they sleep on (compared in the kernel).
                word.notify(a);
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
