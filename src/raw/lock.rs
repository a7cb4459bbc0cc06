//! `Lock`: a robust futex mutex in shared memory.
//!
//! # The lock word
//!
//! | `word`              | meaning                                         |
//! |---------------------|-------------------------------------------------|
//! | `0`                 | unlocked                                        |
//! | `pid`               | locked by process `pid`, nobody sleeping        |
//! | `pid \| WAITERS`    | locked by `pid`, a waiter may sleep in futex    |
//! | `... \| PEER`       | as without it; someone outside the lock asked to be told of the next unlock |
//!
//! This is the classic three-state futex mutex (unlocked / locked / locked with waiters),
//! with the holder's pid in place of the `1`. Unlocking swaps in `0` and calls
//! `futex_wake` only when the `WAITERS` bit was set, so the uncontended path is one CAS to
//! lock and one swap to unlock, with no system call.
//!
//! The `PEER` bit belongs to the lock's user, not to the lock: a pipe's ring side that is
//! about to sleep sets it in the lock of the *other* side ([`RawLock::announce_peer`]),
//! and that side's unlock, whose swap returns the old word, wakes it (see
//! `pipe::ring`). The lock only carries the bit: it is kept when the lock is taken or
//! taken over, and an unlocked word with it set is still unlocked. `Lock` and the other
//! primitives never set it.
//!
//! # A holder that dies
//!
//! A waiter that has slept for a while (1 ms at first, doubling to 100 ms) asks whether
//! the recorded holder is still alive (see [`crate::sync::liveness`]: `/proc/<pid>` gone, a
//! zombie, or a reused pid). If it is dead, the waiter takes the lock over with a CAS from
//! the dead holder's word to its own, so exactly one waiter wins, and it is told so:
//! [`OwnerDied`] carries its guard, so it can repair what the lock protects. A dead holder
//! is therefore noticed within about 100 ms by a blocked waiter, at once by `try_acquire`.
//!
//! Like Python's `multiprocessing.Lock`, the lock is not bound to its holder: any process
//! may [`release`](Lock::release) it.

use crate::sync::futex::{self, WaitResult};
use crate::sync::liveness::{Liveness, IDENT_PID_SHIFT, IDENT_START_MASK, PID_MASK};
use crate::sync::spin::SpinPolicy;
use crate::sync::{time, AtomicU32, AtomicU64, Ordering};
use std::fmt;
use std::time::{Duration, Instant};

/// Bit 31 of the lock word: a waiter may be asleep in `futex_wait`.
pub(crate) const WAITERS: u32 = 1 << 31;

/// Bit 30 of the lock word: the user's "tell me of the next unlock" flag (module docs).
/// Above every pid (`PID_MASK`), below `WAITERS`.
pub(crate) const PEER: u32 = 1 << 30;

static_assertions::const_assert_eq!(PEER & (PID_MASK | WAITERS), 0);

/// A raw lock operation with a deadline reached it first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the deadline passed first")
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
    /// that carries `PEER` fails it too: [`lock`](Self::lock) and
    /// [`try_lock_or_recover`](Self::try_lock_or_recover) take such a word.
    #[inline]
    pub fn try_lock(&self, who: &impl Liveness) -> bool {
        self.try_lock_from(0, who)
    }

    /// One attempt from the unlocked word `free` (`0`, or `PEER`, which is kept).
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
    pub fn try_lock_or_recover(&self, who: &impl Liveness) -> Option<Acquired> {
        if self.try_lock(who) {
            return Some(Acquired::Normal);
        }
        // Relaxed: the CAS in `try_lock_from` / `recover` re-checks the value.
        let v = self.word.load(Ordering::Relaxed);
        if v & !PEER == 0 {
            // Free (perhaps just now), perhaps with PEER set.
            return self.try_lock_from(v, who).then_some(Acquired::Normal);
        }
        if self.recover(v, who) {
            return Some(Acquired::OwnerDied);
        }
        None
    }

    /// If the holder recorded in `seen` is dead, takes the lock over; true on success.
    fn recover(&self, seen: u32, who: &impl Liveness) -> bool {
        let holder = seen & PID_MASK;
        // Relaxed: see `record_start`. The holder writes its identity just *after* its CAS,
        // so we may read the previous holder's: then its pid differs, and the start time
        // is no evidence either way (0 = no verdict on pid reuse).
        let recorded = self.owner_start.load(Ordering::Relaxed);
        let start = if recorded >> IDENT_PID_SHIFT == u64::from(holder) {
            recorded & IDENT_START_MASK
        } else {
            0
        };
        if holder == 0 || !who.is_dead(holder, start) {
            return false;
        }
        // Acquire: pairs with the Release swap in `unlock` of whoever held the lock before
        // the dead holder (the dead holder itself published nothing). Keep the WAITERS bit
        // (other waiters may still sleep) and PEER (the next unlock must report it).
        let ok = self
            .word
            .compare_exchange(
                seen,
                who.me() | (seen & (WAITERS | PEER)),
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

    /// Blocks until the lock is held, or until `deadline`.
    ///
    /// # Errors
    /// [`TimedOut`] when `deadline` passed first.
    #[inline]
    pub fn lock(
        &self,
        who: &impl Liveness,
        deadline: Option<Instant>,
    ) -> Result<Acquired, TimedOut> {
        if self.try_lock(who) {
            return Ok(Acquired::Normal);
        }
        self.lock_slow(who, deadline, SpinPolicy::default())
    }

    /// Blocks as [`lock`](Self::lock), spinning as `spin` says before sleeping.
    ///
    /// # Errors
    /// [`TimedOut`] when `deadline` passed first.
    #[cold]
    pub fn lock_slow(
        &self,
        who: &impl Liveness,
        deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> Result<Acquired, TimedOut> {
        // Spin while the lock is held without sleepers: a short critical section ends
        // sooner than a futex round trip.
        for round in 0..spin.rounds {
            // Relaxed: only a hint; the CAS in `try_lock_from` synchronises.
            let v = self.word.load(Ordering::Relaxed);
            if v & !PEER == 0 && self.try_lock_from(v, who) {
                return Ok(Acquired::Normal);
            }
            if v & WAITERS != 0 {
                break;
            }
            spin.pause(round);
        }

        let mut check_every = Duration::from_millis(1);
        loop {
            // Relaxed: every transition below is a CAS that re-checks the value.
            let v = self.word.load(Ordering::Relaxed);
            if v & !PEER == 0 {
                // Take it with WAITERS set: we cannot know whether others sleep, so the
                // unlock must wake (mutex_3's "lock with state 2"). PEER stays.
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
                time::earlier(deadline, check_every)
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
                check_every = (check_every * 2).min(Duration::from_millis(100));
            }
        }
    }

    /// Releases the lock; returns the word it held (no pid in it: it was not locked; the
    /// `PEER` bit: someone asked to be told, and it is cleared now).
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
    /// can then test for `WAITERS` and its own `PEER` at once.
    #[inline(always)]
    pub(crate) fn unlock_word(&self) -> u32 {
        // Release: pairs with the Acquire CAS in `try_lock` / `lock_slow` / `recover` of
        // the next holder, publishing our writes to the protected data. Acquire: pairs with
        // the SeqCst fetch_or in `announce_peer`, for a caller that wakes on PEER: the
        // announcer's read of the word it sleeps on happens before that caller's bump.
        self.word.swap(0, Ordering::AcqRel)
    }

    /// The second half of [`unlock`](Self::unlock), when the old word had `WAITERS`.
    #[cold]
    pub(crate) fn wake_waiter(&self) {
        futex::wake_one(&self.word);
    }

    /// Sets `PEER` (module docs): the next [`unlock`](Self::unlock) or
    /// [`take_peer`](Self::take_peer) reports it. Free or held, the lock is unchanged.
    ///
    /// A sleeper's half of a Dekker handshake without a fence: the waker publishes, then
    /// unlocks (or calls `take_peer`), an RMW of this word; the sleeper announces, an RMW of
    /// the same word, then re-checks. The two RMWs are ordered: if the announcement comes
    /// first, the waker's RMW sees `PEER`; if the waker's comes first, the announcement
    /// reads from it (or from a later RMW: a release sequence) and so sees the publish.
    #[inline]
    pub fn announce_peer(&self) {
        // SeqCst (Release + Acquire, as the handshake above needs): pairs with the AcqRel
        // swap in `unlock` and fetch_and in `take_peer`.
        self.word.fetch_or(PEER, Ordering::SeqCst);
    }

    /// Clears `PEER`; true if it was set. For a holder that publishes while it keeps the
    /// lock (a long message, chunk by chunk), and for an announcer that will not sleep
    /// after all.
    #[inline]
    pub fn take_peer(&self) -> bool {
        // AcqRel: pairs with the SeqCst fetch_or in `announce_peer` (see there).
        self.word.fetch_and(!PEER, Ordering::AcqRel) & PEER != 0
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

#[cfg(all(test, not(shmproc_loom)))]
mod tests {
    use super::*;

    /// A scripted process with pid `.0`, for whom the process with pid `.1` is dead.
    struct P(u32, u32);

    impl Liveness for P {
        fn me(&self) -> u32 {
            self.0
        }
        fn my_start(&self) -> u64 {
            1
        }
        fn is_dead(&self, pid: u32, _start: u64) -> bool {
            pid == self.1
        }
    }

    /// `PEER` in a free word: still unlocked, the one-CAS attempt declines, the blocking
    /// one takes it and keeps the bit, and the unlock reports it once.
    #[test]
    fn peer_bit_is_carried_to_the_unlock() {
        let l = RawLock::new();
        l.announce_peer();
        assert!(!l.is_locked());
        assert_eq!(l.holder(), None);
        assert!(!l.try_lock(&P(7, 0)));
        assert_eq!(l.try_lock_or_recover(&P(7, 0)), Some(Acquired::Normal));
        assert_eq!(l.unlock(), 7 | PEER);
        l.announce_peer();
        assert_eq!(l.lock(&P(7, 0), None), Ok(Acquired::Normal));
        assert!(l.is_locked());
        assert_eq!(l.holder(), Some(7));
        assert_eq!(l.unlock(), 7 | PEER);
        assert!(l.try_lock(&P(7, 0)));
        assert!(!l.take_peer());
        l.announce_peer();
        assert!(l.take_peer());
        assert_eq!(l.unlock(), 7);
    }

    /// Taking the lock over from a dead holder keeps `PEER` for the new holder's unlock.
    #[test]
    fn takeover_keeps_the_peer_bit() {
        let l = RawLock::new();
        assert!(l.try_lock(&P(5, 0)));
        l.announce_peer();
        assert_eq!(l.try_lock_or_recover(&P(6, 5)), Some(Acquired::OwnerDied));
        assert_eq!(l.holder(), Some(6));
        assert_eq!(l.unlock(), 6 | PEER);
    }
}
