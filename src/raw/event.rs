//! `Event`: a flag in shared memory that processes can wait for.
//!
//! Python's `multiprocessing.Event`: [`set`](crate::Event::set) raises the flag and wakes every
//! process waiting for it, [`clear`](crate::Event::clear) lowers it, [`wait`](crate::Event::wait) blocks
//! until it is raised.
//!
//! # The event word
//!
//! | bits   | name      | meaning                                                     |
//! |--------|-----------|-------------------------------------------------------------|
//! | 0      | `SET`     | the flag                                                    |
//! | 1      | `WAITERS` | the flag is clear and a waiter may sleep in `futex_wait`    |
//! | 2..=31 | epoch     | how many times the flag went from clear to set (wrapping)   |
//!
//! | transition | by      | word before            | word after                    | then            |
//! |------------|---------|------------------------|-------------------------------|-----------------|
//! | set        | `set`   | `e` or `e\|WAITERS`    | `(e+1)\|SET`                  | wake all if it had `WAITERS` |
//! | set again  | `set`   | `e\|SET`               | unchanged                     |                 |
//! | clear      | `clear` | `e\|SET`               | `e`                           |                 |
//! | announce   | `wait`  | `e`                    | `e\|WAITERS`                  | `futex_wait(e\|WAITERS)` |
//!
//! This is the three-state event of the design notes (clear / set / clear with waiters),
//! with an epoch added: a waiter remembers the epoch it started in and returns as soon as
//! the epoch moves, even if the flag was cleared again before it ran. So a `set` that is
//! immediately followed by a `clear` still releases every process that was waiting (as
//! Python's `threading.Event` does), instead of sending them back to sleep.
//!
//! `set` on an event nobody waits for is one CAS and no system call; `wait` on a set event
//! is one load.
//!
//! # Why no wake-up is lost
//!
//! A waiter sleeps only on the exact word `e|WAITERS` that it saw or wrote itself, and the
//! kernel checks that value under the lock `futex_wake` takes. Every `set` that follows the
//! announcement changes the word (the epoch moves) and sees `WAITERS`, so it wakes; every
//! `set` before it changed the word, so the sleep does not happen. All changes to the word
//! are read-modify-writes, so they are totally ordered. The `loom-tests` model `event`
//! checks set / clear / wait / wait with timeout.
//!
//! The epoch has 30 bits: a waiter that is descheduled for exactly 2^30 set/clear cycles
//! between two looks could miss them. Nothing else can go wrong with a wrapped epoch.

use crate::sync::futex;
use crate::sync::spin::SpinPolicy;
use crate::sync::wait::{block_on, Sleep, Waitable};
use crate::sync::{AtomicU32, Ordering};
use std::time::Instant;

/// Bit 0 of the event word: the flag is set.
pub const SET: u32 = 1;
/// Bit 1 of the event word: the flag is clear and a waiter may sleep in `futex_wait`.
pub const WAITERS: u32 = 1 << 1;
/// One step of the epoch (bits 2..=31).
pub const EPOCH_ONE: u32 = 1 << 2;
const EPOCH_MASK: u32 = !(SET | WAITERS);

/// The shared state of an event: the word described in the [module docs](self).
///
/// All zero bytes are a clear event.
#[repr(C)]
pub struct RawEvent {
    word: AtomicU32,
    _pad: u32,
}

// SAFETY: `#[repr(C)]`, aligned to at most 128; one atomic word; every value is a state (set / clear / waiters / epoch).
unsafe impl crate::raw::SharedState for RawEvent {}

#[cfg(not(shmproc_loom))]
mod layout {
    use super::RawEvent;
    static_assertions::assert_eq_size!(RawEvent, [u32; 2]);
    static_assertions::const_assert_eq!(core::mem::offset_of!(RawEvent, word), 0);
}

impl Default for RawEvent {
    fn default() -> Self {
        Self::new()
    }
}

impl RawEvent {
    /// A clear event.
    pub fn new() -> RawEvent {
        RawEvent {
            word: AtomicU32::new(0),
            _pad: 0,
        }
    }

    /// Raises the flag; wakes every waiter if any announced itself. Returns how many
    /// sleepers the kernel woke (0 without a system call when nobody waited).
    #[inline]
    pub fn set(&self) -> usize {
        // Relaxed: a first guess; the CAS re-checks it.
        let mut v = self.word.load(Ordering::Relaxed);
        loop {
            let new = if v & SET != 0 {
                v
            } else {
                (v & EPOCH_MASK).wrapping_add(EPOCH_ONE) | SET
            };
            // Release: pairs with the Acquire loads in `is_set` and `wait`, so what this
            // process wrote before `set` is visible to a waiter that returns. Written even
            // when the flag was already set (`new == v`), so every `set` publishes.
            match self
                .word
                .compare_exchange_weak(v, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => v = now,
            }
        }
        if v & WAITERS != 0 {
            futex::wake_all(&self.word)
        } else {
            0
        }
    }

    /// Lowers the flag. Waiters that have not yet seen the `set` before it still return
    /// (the epoch moved).
    #[inline]
    pub fn clear(&self) {
        // Relaxed: clearing publishes nothing; the read-modify-write keeps it ordered
        // against `set` and the waiters' announcements, which are RMWs on the same word.
        self.word.fetch_and(!SET, Ordering::Relaxed);
    }

    /// True while the flag is set.
    #[inline]
    pub fn is_set(&self) -> bool {
        // Acquire: pairs with the Release CAS in `set`.
        self.word.load(Ordering::Acquire) & SET != 0
    }

    /// Blocks until the flag is set (or was set since this call began), or until
    /// `deadline`. True if it was set; false at the deadline.
    #[inline]
    pub fn wait(&self, deadline: Option<Instant>, spin: SpinPolicy) -> bool {
        // Acquire: pairs with the Release CAS in `set`.
        let v = self.word.load(Ordering::Acquire);
        if v & SET != 0 {
            return true;
        }
        self.wait_slow(v & EPOCH_MASK, deadline, spin)
    }

    /// The blocking part of [`wait`](Self::wait): `epoch` is the epoch seen at the start.
    #[cold]
    pub fn wait_slow(&self, epoch: u32, deadline: Option<Instant>, spin: SpinPolicy) -> bool {
        block_on(&self.waiter(epoch), deadline, spin).is_some()
    }

    /// A wait for the event to fire after epoch `epoch` (the epoch of a word read before):
    /// the event's half of the wait engine, which [`wait`](Self::wait) drives.
    pub fn waiter(&self, epoch: u32) -> EventWait<'_> {
        EventWait { ev: self, epoch }
    }

    /// The raw word (a snapshot, for diagnostics and tests).
    pub fn word(&self) -> u32 {
        // Relaxed: a snapshot.
        self.word.load(Ordering::Relaxed)
    }
}

/// A wait for a [`RawEvent`] to fire (set, or set and cleared again) after an epoch: a
/// [`Waitable`].
#[derive(Clone, Copy)]
pub struct EventWait<'a> {
    ev: &'a RawEvent,
    epoch: u32,
}

impl EventWait<'_> {
    #[inline]
    fn fired(&self, v: u32) -> bool {
        v & SET != 0 || v & EPOCH_MASK != self.epoch
    }
}

impl Waitable for EventWait<'_> {
    /// Always `()`: the event fired.
    type Output = ();

    #[inline]
    fn attempt(&self) -> Option<()> {
        // Acquire: pairs with the Release CAS in `set`, so what the setter wrote before
        // `set` is visible once we see it fired.
        self.fired(self.ev.word.load(Ordering::Acquire))
            .then_some(())
    }

    /// Sets `WAITERS` (`set` wakes only then) and sleeps on the word with it.
    fn register(&self) -> Sleep<'_> {
        let word = &self.ev.word;
        loop {
            // Acquire: as in `attempt`.
            let v = word.load(Ordering::Acquire);
            if self.fired(v) {
                // The driver's re-check will see it; this key is never slept on.
                return Sleep { word, key: v };
            }
            // Relaxed: the announcement is a read-modify-write on the word, so it is
            // ordered against every `set` (also an RMW); the futex re-checks the word
            // under the kernel's lock, which `futex_wake` takes too.
            if v & WAITERS != 0
                || word
                    .compare_exchange(v, v | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                return Sleep {
                    word,
                    key: v | WAITERS,
                };
            }
        }
    }

    /// Nothing: `WAITERS` stays until the next `set` (a spurious wake-up at most).
    fn unregister(&self) {}

    fn sleepers(&self) -> bool {
        // Relaxed: a hint to stop spinning.
        self.ev.word.load(Ordering::Relaxed) & WAITERS != 0
    }
}
