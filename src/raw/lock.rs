//! [`RawLock`]: the robust futex mutex, and [`RobustLock`], the trait every robust lock
//! algorithm implements (lock_api's split: the handles' `acquire` / `try_acquire` /
//! `acquire_timeout` and their [`OwnerDied`](crate::OwnerDied) reports are written once
//! over it, in `crate::lock`).
//!
//! # The lock word
//!
//! | `word`              | meaning                                         |
//! |---------------------|-------------------------------------------------|
//! | `0`                 | unlocked                                        |
//! | `pid`               | locked by process `pid`, nobody sleeping        |
//! | `pid \| WAITERS`    | locked by `pid`, a waiter may sleep in futex    |
//! | `... \| USER_FLAG`  | as without it; the flag belongs to the lock's user |
//!
//! This is the classic three-state futex mutex (unlocked / locked / locked with waiters),
//! with the holder's pid in place of the `1`. Unlocking swaps in `0` and calls
//! `futex_wake` only when the `WAITERS` bit was set, so the uncontended path is one CAS to
//! lock and one swap to unlock, with no system call.
//!
//! [`USER_FLAG`] is not the lock's: a user may set and clear it
//! ([`set_user_flag`](RawLock::set_user_flag), [`take_user_flag`](RawLock::take_user_flag))
//! and learns whether it was set from the swap that unlocks
//! ([`unlock_word`](RawLock::unlock_word) returns the old word). The lock carries it
//! unchanged through every transition (taken, taken over, released) and ignores it: a
//! free word with the flag is free. A user can so fold a handshake of its own into the
//! lock's RMWs (the pipe's sleep handshake, in [`spsc`](crate::raw::spsc), is the one
//! user today).
//!
//! # A holder that dies
//!
//! A waiter that has slept for a while (1 ms at first, doubling to 100 ms) asks whether
//! the recorded holder is still alive (see [`crate::sync::liveness`]: `/proc/<pid>` gone, a
//! zombie, or a reused pid). If it is dead, the waiter takes the lock over with a CAS from
//! the dead holder's word to its own, so exactly one waiter wins, and it is told so:
//! [`Acquired::OwnerDied`] says so, so it can repair what the lock protects. A dead holder
//! is therefore noticed within about 100 ms by a blocked waiter, at once by
//! [`try_lock_or_recover`](RobustLock::try_lock_or_recover).
//!
//! Like Python's `multiprocessing.Lock`, the lock is not bound to its holder:
//! [`unlock`](RawLock::unlock) releases it for whoever holds it.

use crate::sync::futex::{self, WaitResult};
use crate::sync::liveness::{Liveness, IDENT_PID_SHIFT, IDENT_START_MASK, PID_MASK};
use crate::sync::spin::{Round, SpinPolicy};
use crate::sync::wait::Recheck;
use crate::sync::{time, AtomicU32, AtomicU64, Ordering};
use std::fmt;
use std::time::Instant;

/// Bit 31 of the lock word: a waiter may be asleep in `futex_wait`.
pub const WAITERS: u32 = 1 << 31;

/// Bit 30 of the lock word: the user's flag (module docs). Above every pid (`PID_MASK`),
/// below `WAITERS`.
pub const USER_FLAG: u32 = 1 << 30;

static_assertions::const_assert_eq!(USER_FLAG & (PID_MASK | WAITERS), 0);

/// A lock in shared memory whose holders are processes (and, for a re-entrant lock, their
/// threads), robust against a holder's death: the algorithm half of lock_api's split.
///
/// The handles write `acquire` / `try_acquire` / `acquire_timeout` and their
/// [`OwnerDied`](crate::OwnerDied) reports once over this trait; "try, else the slow path"
/// is written once here ([`lock`](Self::lock)). `who` says who the caller is (its pid,
/// thread and how it judges a holder dead): [`Procfs`](crate::raw::sync::liveness::Procfs)
/// for real processes, a scripted one in models.
pub trait RobustLock {
    /// One attempt without recovery: the uncontended fast path (one CAS).
    fn fast_lock(&self, who: &impl Liveness) -> bool;

    /// One attempt that also takes over the lock of a dead holder; `None` when it is held.
    fn try_lock_or_recover(&self, who: &impl Liveness) -> Option<Acquired>;

    /// Blocks until held or until `deadline`, spinning as `spin` says before it sleeps:
    /// what [`lock`](Self::lock) runs after a failed fast attempt.
    ///
    /// # Errors
    /// [`TimedOut`] when `deadline` passed first.
    fn lock_slow(
        &self,
        who: &impl Liveness,
        deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> Result<Acquired, TimedOut>;

    /// Blocks until held or until `deadline`: the fast attempt, else the slow path.
    ///
    /// # Errors
    /// [`TimedOut`] when `deadline` passed first.
    #[inline]
    fn lock(
        &self,
        who: &impl Liveness,
        deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> Result<Acquired, TimedOut> {
        if self.fast_lock(who) {
            return Ok(Acquired::Normal);
        }
        self.lock_slow(who, deadline, spin)
    }

    /// Releases what `who` holds (one level of a re-entrant lock); returns the levels it
    /// still holds.
    ///
    /// # Errors
    /// [`NotOwner`] when `who` does not hold the lock.
    fn unlock_held(&self, who: &impl Liveness) -> Result<u32, NotOwner>;

    /// True while some process holds the lock (a snapshot).
    fn is_locked(&self) -> bool;

    /// The pid of the holding process, if held (a snapshot).
    fn holder(&self) -> Option<u32>;
}

/// A release (or a condition's `wait` / `notify`) by a caller that does not hold the lock,
/// or of a free lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotOwner;

impl fmt::Display for NotOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the lock is not held by the caller (this process and thread): acquire it first, \
             and release it from the thread that acquired it",
        )
    }
}

impl std::error::Error for NotOwner {}

/// A raw lock operation with a deadline reached it first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the deadline passed before the lock was acquired: retry, or wait longer")
    }
}

impl std::error::Error for TimedOut {}

/// How a blocking acquisition ended, at the level of the raw algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// The lock was free or was released to us.
    Normal,
    /// The previous holder died holding it; we hold it now.
    OwnerDied,
}

/// The lock's shared state: the word described in the module docs, and the holder's
/// identity (pid and start time, to tell a live holder from a reused pid).
#[repr(C)]
pub struct RawLock {
    word: AtomicU32,
    _pad: u32,
    owner_start: AtomicU64,
}

// SAFETY: `#[repr(C)]`, aligned to at most 128; the lock word and the holder's identity are atomics; any value of either is handled (a word naming a dead or unknown pid is recovered or waited on, an identity that does not match the word's pid is ignored).
unsafe impl crate::raw::SharedState for RawLock {}

#[cfg(not(shmproc_loom))]
static_assertions::assert_eq_size!(RawLock, [u64; 2]);

impl Default for RawLock {
    fn default() -> Self {
        Self::new()
    }
}

impl RawLock {
    /// An unlocked lock (all zero bytes, so zeroed arena memory is an unlocked lock).
    pub fn new() -> Self {
        RawLock {
            word: AtomicU32::new(0),
            _pad: 0,
            owner_start: AtomicU64::new(0),
        }
    }

    /// One attempt (one CAS from `0`); true if the caller now holds the lock. A free word
    /// that carries [`USER_FLAG`] fails it too: [`lock`](RobustLock::lock) and
    /// [`try_lock_or_recover`](RobustLock::try_lock_or_recover) take such a word.
    #[inline]
    pub fn try_lock(&self, who: &impl Liveness) -> bool {
        self.try_lock_from(0, who)
    }

    /// One attempt from the unlocked word `free` (`0`, or `USER_FLAG`, which is kept).
    #[inline]
    fn try_lock_from(&self, free: u32, who: &impl Liveness) -> bool {
        // Acquire: pairs with the Release swap in `unlock`, so the previous holder's writes
        // to the protected data are visible to us.
        let ok = self
            .word
            .compare_exchange(free, who.me() | free, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        if ok {
            self.record_start(who);
        }
        ok
    }

    #[inline]
    fn record_start(&self, who: &impl Liveness) {
        // Relaxed: read only by `recover`, which tolerates a stale value: the word names
        // its pid, and a value that names another pid than the holder's is ignored.
        self.owner_start.store(who.my_ident(), Ordering::Relaxed);
    }

    /// Like [`try_lock`](Self::try_lock), but takes over a lock whose holder is dead.
    fn try_or_recover(&self, who: &impl Liveness) -> Option<Acquired> {
        if self.try_lock(who) {
            return Some(Acquired::Normal);
        }
        // Relaxed: the CAS in `try_lock_from` / `recover` re-checks the value.
        let v = self.word.load(Ordering::Relaxed);
        if v & !USER_FLAG == 0 {
            // Free (perhaps just now), perhaps with USER_FLAG set.
            return self.try_lock_from(v, who).then_some(Acquired::Normal);
        }
        if self.recover(v, who) {
            return Some(Acquired::OwnerDied);
        }
        None
    }

    /// The start time recorded for `holder` (0, no verdict on pid reuse, when the record
    /// is another holder's).
    fn recorded_start(&self, holder: u32) -> u64 {
        // Relaxed: see `record_start`. The holder writes its identity just *after* its CAS,
        // so we may read the previous holder's: then its pid differs, and the start time
        // is no evidence either way (0 = no verdict on pid reuse).
        let recorded = self.owner_start.load(Ordering::Relaxed);
        if recorded >> IDENT_PID_SHIFT == u64::from(holder) {
            recorded & IDENT_START_MASK
        } else {
            0
        }
    }

    /// True when the lock is held, and its holder is dead (a snapshot: for a party that
    /// waits on what the holder was doing, e.g. a pipe's reader on a message its writer
    /// began).
    pub fn holder_died(&self, who: &impl Liveness) -> bool {
        // Relaxed: a snapshot; the caller acts on it with its own synchronisation.
        let holder = self.word.load(Ordering::Relaxed) & PID_MASK;
        holder != 0 && who.is_dead(holder, self.recorded_start(holder))
    }

    /// If the holder recorded in `seen` is dead, takes the lock over; true on success.
    fn recover(&self, seen: u32, who: &impl Liveness) -> bool {
        let holder = seen & PID_MASK;
        let start = self.recorded_start(holder);
        if holder == 0 || !who.is_dead(holder, start) {
            return false;
        }
        // Acquire: pairs with the Release swap in `unlock` of whoever held the lock before
        // the dead holder (the dead holder itself published nothing). Keep the WAITERS bit
        // (other waiters may still sleep) and USER_FLAG (the next unlock must report it).
        let ok = self
            .word
            .compare_exchange(
                seen,
                who.me() | (seen & (WAITERS | USER_FLAG)),
                Ordering::Acquire,
                // Failure: nothing was taken over, nothing to order.
                Ordering::Relaxed,
            )
            .is_ok();
        if ok {
            self.record_start(who);
        }
        ok
    }

    /// The slow path of [`RobustLock::lock`].
    #[cold]
    fn slow(
        &self,
        who: &impl Liveness,
        deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> Result<Acquired, TimedOut> {
        // Spin while the lock is held without sleepers: a short critical section ends
        // sooner than a futex round trip.
        let got = spin.attempts(|| {
            // Relaxed: only a hint; the CAS in `try_lock_from` synchronises.
            let v = self.word.load(Ordering::Relaxed);
            if v & !USER_FLAG == 0 && self.try_lock_from(v, who) {
                Round::Done(())
            } else if v & WAITERS != 0 {
                Round::Sleep
            } else {
                Round::Again
            }
        });
        if got.is_some() {
            return Ok(Acquired::Normal);
        }

        let mut recheck = who.recheck().unwrap_or(Recheck::LIVENESS);
        loop {
            // Relaxed: every transition below is a CAS that re-checks the value.
            let v = self.word.load(Ordering::Relaxed);
            if v & !USER_FLAG == 0 {
                // Take it with WAITERS set: we cannot know whether others sleep, so the
                // unlock must wake (mutex_3's "lock with state 2"). USER_FLAG stays.
                // Acquire: pairs with the Release swap in `unlock`.
                if self
                    .word
                    .compare_exchange(
                        v,
                        who.me() | WAITERS | v,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    self.record_start(who);
                    return Ok(Acquired::Normal);
                }
                continue;
            }
            // Announce ourselves before sleeping, or the unlock would not wake us.
            // Relaxed: the futex compares the word under the kernel's bucket lock, which
            // orders this CAS against the unlocker's swap and wake.
            if v & WAITERS == 0
                && self
                    .word
                    .compare_exchange(v, v | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            // Sleep until woken, until the deadline, or until the holder's liveness is due
            // for a check, whichever is first.
            let wake_at = if who.watches_holder(v & PID_MASK) {
                recheck.wake_at(deadline)
            } else {
                deadline
            };
            if futex::wait(&self.word, v | WAITERS, wake_at) == WaitResult::TimedOut {
                if self.recover(v | WAITERS, who) {
                    return Ok(Acquired::OwnerDied);
                }
                if time::expired(deadline) {
                    return Err(TimedOut);
                }
                recheck.backoff();
            }
        }
    }

    /// Releases the lock; returns the word it held (no pid in it: it was not locked; the
    /// [`USER_FLAG`]: the user's flag, cleared now).
    #[inline]
    pub fn unlock(&self) -> u32 {
        let old = self.unlock_word();
        if old & WAITERS != 0 {
            self.wake_waiter();
        }
        old
    }

    /// The first half of [`unlock`](Self::unlock): swaps in `0` and returns the old word.
    /// The caller must call [`wake_waiter`](Self::wake_waiter) if it has `WAITERS`; it
    /// can then test for `WAITERS` and [`USER_FLAG`] at once.
    #[inline(always)]
    pub fn unlock_word(&self) -> u32 {
        // Release: pairs with the Acquire CAS in `try_lock` / `lock_slow` / `recover` of
        // the next holder, publishing our writes to the protected data. Acquire: pairs with
        // the SeqCst fetch_or in `set_user_flag`, for a user whose handshake reads the flag
        // from this swap (the pipe: the announcer's read of the word it sleeps on happens
        // before the unlocker's bump; see `spsc`, SYNC POINT "sleep handshake").
        self.word.swap(0, Ordering::AcqRel)
    }

    /// The second half of [`unlock`](Self::unlock), when the old word had `WAITERS`.
    #[cold]
    pub fn wake_waiter(&self) {
        futex::wake_one(&self.word);
    }

    /// Sets [`USER_FLAG`] (module docs): the next [`unlock`](Self::unlock),
    /// [`unlock_word`](Self::unlock_word) or [`take_user_flag`](Self::take_user_flag)
    /// reports it. Free or held, the lock is unchanged.
    ///
    /// A read-modify-write of the lock word, SeqCst, so a user can build a Dekker
    /// handshake on it without a fence: two RMWs of one word are always ordered, and the
    /// later one reads from the earlier (or from a later RMW: a release sequence).
    #[inline]
    pub fn set_user_flag(&self) {
        // SeqCst (Release + Acquire, as a handshake needs): pairs with the AcqRel swap in
        // `unlock_word` and the fetch_and in `take_user_flag`.
        self.word.fetch_or(USER_FLAG, Ordering::SeqCst);
    }

    /// Clears [`USER_FLAG`]; true if it was set. Free or held, the lock is unchanged.
    #[inline]
    pub fn take_user_flag(&self) -> bool {
        // AcqRel: pairs with the SeqCst fetch_or in `set_user_flag` (see there).
        self.word.fetch_and(!USER_FLAG, Ordering::AcqRel) & USER_FLAG != 0
    }

    /// True while some process holds the lock.
    pub fn is_locked(&self) -> bool {
        // Relaxed: a snapshot for callers; it orders nothing.
        self.word.load(Ordering::Relaxed) & PID_MASK != 0
    }

    /// The pid recorded as holder, if locked.
    pub fn holder(&self) -> Option<u32> {
        // Relaxed: a snapshot for diagnostics.
        match self.word.load(Ordering::Relaxed) & PID_MASK {
            0 => None,
            pid => Some(pid),
        }
    }
}

impl RobustLock for RawLock {
    #[inline(always)]
    fn fast_lock(&self, who: &impl Liveness) -> bool {
        self.try_lock(who)
    }

    #[inline]
    fn try_lock_or_recover(&self, who: &impl Liveness) -> Option<Acquired> {
        self.try_or_recover(who)
    }

    #[inline]
    fn lock_slow(
        &self,
        who: &impl Liveness,
        deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> Result<Acquired, TimedOut> {
        self.slow(who, deadline, spin)
    }

    /// Releases the lock if `who`'s process holds it (a `Lock` is not bound to a
    /// thread); `Ok(0)`.
    fn unlock_held(&self, who: &impl Liveness) -> Result<u32, NotOwner> {
        if self.holder() != Some(who.me()) {
            return Err(NotOwner);
        }
        self.unlock();
        Ok(0)
    }

    fn is_locked(&self) -> bool {
        RawLock::is_locked(self)
    }

    fn holder(&self) -> Option<u32> {
        RawLock::holder(self)
    }
}

#[cfg(all(test, not(shmproc_loom)))]
mod tests {
    use super::*;

    use crate::sync::liveness::Scripted;

    /// Process `pid`, for whom process `dead` is dead.
    fn p(pid: u32, dead: u32) -> Scripted {
        let p = Scripted::alive(pid).watching();
        if dead != 0 {
            p.kill(dead);
        }
        p
    }

    /// `USER_FLAG` in a free word: still unlocked, the one-CAS attempt declines, the blocking
    /// one takes it and keeps the bit, and the unlock reports it once.
    #[test]
    fn user_flag_is_carried_to_the_unlock() {
        let l = RawLock::new();
        l.set_user_flag();
        assert!(!l.is_locked());
        assert_eq!(l.holder(), None);
        assert!(!l.try_lock(&p(7, 0)));
        assert_eq!(l.try_lock_or_recover(&p(7, 0)), Some(Acquired::Normal));
        assert_eq!(l.unlock(), 7 | USER_FLAG);
        l.set_user_flag();
        assert_eq!(
            l.lock(&p(7, 0), None, SpinPolicy::default()),
            Ok(Acquired::Normal)
        );
        assert!(l.is_locked());
        assert_eq!(l.holder(), Some(7));
        assert_eq!(l.unlock(), 7 | USER_FLAG);
        assert!(l.try_lock(&p(7, 0)));
        assert!(!l.take_user_flag());
        l.set_user_flag();
        assert!(l.take_user_flag());
        assert_eq!(l.unlock(), 7);
    }

    /// Taking the lock over from a dead holder keeps `USER_FLAG` for the new holder's unlock.
    #[test]
    fn takeover_keeps_the_user_flag() {
        let l = RawLock::new();
        assert!(l.try_lock(&p(5, 0)));
        l.set_user_flag();
        assert_eq!(l.try_lock_or_recover(&p(6, 5)), Some(Acquired::OwnerDied));
        assert_eq!(l.holder(), Some(6));
        assert_eq!(l.unlock(), 6 | USER_FLAG);
    }
}
