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
//! A process killed while it waits stays counted (waiters have no identity in the
//! state). Within G1 that costs nothing: notifications are anonymous, and a live member
//! takes any one. What a dead member can strand is a notification granted to G1 when
//! every untaken member of G1 is dead while live waiters sit in G2: `notify(1)` then
//! woke nobody (the loss Python's `Condition` has too). So a waiter of G2 that sleeps
//! also wakes on the liveness schedule ([`Recheck::LIVENESS`]: 1 ms, doubling to 100 ms)
//! and looks, without the lock, whether G1 holds untaken notifications; if the same G1
//! still holds some after [`STRANDED`] (50 ms), it retakes the lock and *rescues* them:
//! it retires G1 (each member still alive is then notified, as when `notify` retires a
//! generation) and grants the untaken notifications to G2, taking one itself. So a
//! notification granted to the dead reaches a live waiter within about 150 ms.
//!
//! What it costs: a sleeping waiter wakes ~10 times a second to read two words (no lock,
//! no system call but the futex's); a live member of G1 stalled for 50 ms before taking
//! its notification may see the rest of G1 notified with it (a spurious wake-up, which
//! every condition wait must tolerate). Lost: nothing a live waiter could take; a
//! notification taken by a waiter that then died is the dead one's.

use crate::raw::lock::{Acquired, RawLock, RobustLock};
use crate::raw::rlock::{NotOwner, RawRLock};
use crate::sync::futex::{self, WaitResult};
use crate::sync::liveness::Liveness;
use crate::sync::spin::{Round, SpinPolicy};
use crate::sync::wait::{EventCount, Recheck};
use crate::sync::{time, AtomicU32, Ordering};
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
    /// How often a sleeping waiter looks for notifications stranded on dead waiters
    /// (module docs, "A waiter that dies"); `None` (the default): never, for a lock
    /// whose users never die (a model). [`LockRef`] and [`RLockRef`] ask their
    /// [`Liveness`].
    fn recheck(&self) -> Option<Recheck> {
        None
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

    fn recheck(&self) -> Option<Recheck> {
        self.who.recheck()
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

    fn recheck(&self) -> Option<Recheck> {
        self.who.recheck()
    }

    fn relock(&self, depth: u32) -> Acquired {
        self.lock.relock(self.who, depth, self.spin)
    }
}

// ---------------------------------------------------------------------------------------
// The algorithm.

/// How long notifications granted to G1 may stay untaken, seen by a waiter of G2, before
/// it judges them stranded on dead waiters (module docs, "A waiter that dies"). A live
/// member takes its notification a wake-up after the grant.
pub const STRANDED: Duration = Duration::from_millis(50);

/// A sleeping waiter's watch for stranded notifications.
struct Stranded {
    /// When to look (the liveness schedule); `None`: never.
    schedule: Option<Recheck>,
    /// G1's number and when we first saw it hold untaken notifications.
    seen: Option<(u32, Instant)>,
    /// Set when a rescue is due: the G1 to retire.
    rescue: Option<u32>,
    /// The model's clock at the last look ([`futex::nap`]), first read with the lock
    /// held (a notifier that reports progress after our unlock then ends our first nap).
    since: u64,
}

impl Stranded {
    fn new(schedule: Option<Recheck>) -> Stranded {
        Stranded {
            schedule,
            seen: None,
            rescue: None,
            // (Only when it will look: under loom every read is a step to explore.)
            since: if schedule.is_some() { futex::tick() } else { 0 },
        }
    }

    /// A look without the lock (hints; the rescue decides under the lock): true when a
    /// rescue is due.
    fn look(&mut self, cv: &RawCondvar, g: u32) -> bool {
        if let Some(r) = &mut self.schedule {
            r.backoff();
        }
        let g1 = RawCondvar::get(&cv.g1);
        if g != g1.wrapping_add(1) || RawCondvar::get(&cv.g1_signals) == 0 {
            self.seen = None;
            return false;
        }
        match self.seen {
            Some((seen_g1, since)) if seen_g1 == g1 => {
                if time::expired(since.checked_add(STRANDED)) {
                    self.seen = None;
                    self.rescue = Some(g1);
                    return true;
                }
                false
            }
            _ => {
                self.seen = Some((g1, Instant::now()));
                // (Under loom any time may have passed: judge at once.)
                if cfg!(shmproc_loom) {
                    self.seen = None;
                    self.rescue = Some(g1);
                    return true;
                }
                false
            }
        }
    }
}

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
        // (Its model clock read before we let the lock go: see `Stranded::since`.)
        let mut stranded = Stranded::new(lock.recheck());
        let g = self.join();
        let word = &self.seq[(g & 1) as usize];
        // Read under the lock; a grant to our generation bumps it under the lock too, so
        // if it differs when we sleep, the futex returns at once.
        let mut seen = word.key();
        let token = lock.unlock_all()?;
        let mut owner_died = false;
        loop {
            let timed_out = self.sleep(word, seen, g, deadline, spin, &mut stranded);
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
            if stranded
                .rescue
                .take()
                .is_some_and(|g1| g1 == Self::get(&self.g1))
            {
                self.rescue(g);
            }
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

    /// Joins a generation (module docs: never one holding older grants); returns its
    /// number. With the lock held.
    fn join(&self) -> u32 {
        let g1 = Self::get(&self.g1);
        if Self::get(&self.g1_signals) == 0 && Self::get(&self.g2_waiting) == 0 {
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
        }
    }

    /// For the models of a waiter that dies: joins a generation as [`wait`](Self::wait)
    /// does and releases the lock, then returns without sleeping; the caller stops for
    /// ever, as a process killed asleep would.
    ///
    /// # Errors
    /// [`NotOwner`] when the caller does not hold `lock`.
    #[doc(hidden)]
    pub fn wait_and_stop(&self, lock: &impl CondLock) -> core::result::Result<(), NotOwner> {
        if !lock.is_held() {
            return Err(NotOwner);
        }
        self.join();
        lock.unlock_all().map(drop)
    }

    /// Sleeps (the lock released) until `word` moves past `seen`, or until notifications
    /// look stranded on G1 while we wait in G2 (`stranded.rescue` set); true when
    /// `deadline` passed first.
    fn sleep(
        &self,
        word: &EventCount,
        seen: u32,
        g: u32,
        deadline: Option<Instant>,
        spin: SpinPolicy,
        stranded: &mut Stranded,
    ) -> bool {
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
            let r = match &stranded.schedule {
                // Until woken, or until the next look (a nap: under loom it ends when
                // another thread reports progress, e.g. time passing, since the last look).
                Some(r) => futex::nap(word.word(), seen, stranded.since, deadline, r.interval()),
                None => word.wait(seen, deadline),
            };
            if r == WaitResult::TimedOut {
                if time::expired(deadline) {
                    return true;
                }
                stranded.since = futex::tick();
                if stranded.look(self, g) {
                    return false;
                }
            }
        }
    }

    /// With the lock held, by a waiter of G2 (`g`) that found notifications granted to G1
    /// and not taken for [`STRANDED`] (module docs, "A waiter that dies"): retires G1 (its
    /// members, if any lives, are notified) and grants its untaken notifications to G2.
    fn rescue(&self, g: u32) {
        let g1 = Self::get(&self.g1);
        let s = Self::get(&self.g1_signals);
        if g != g1.wrapping_add(1) || s == 0 {
            return; // Taken meanwhile, or retired already.
        }
        let old = &self.seq[(g1 & 1) as usize];
        Self::set(&self.g1, g1.wrapping_add(1));
        let w2 = Self::get(&self.g2_waiting);
        let a = s.min(w2);
        Self::set(&self.g1_waiting, w2 - a);
        Self::set(&self.g1_signals, a);
        Self::set(&self.g2_waiting, 0);
        // The retired members (notified now), then the grants of the new G1.
        old.notify_all();
        if a > 0 {
            self.seq[(g & 1) as usize].notify(a);
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
