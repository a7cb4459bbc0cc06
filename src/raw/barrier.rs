//! `Barrier`: Python's `multiprocessing.Barrier`, on one futex word.
//!
//! # The word
//!
//! | bits   | name        | meaning                                                   |
//! |--------|-------------|-----------------------------------------------------------|
//! | 0..13  | `count`     | parties inside `wait` in this generation                  |
//! | 13     | `BROKEN`    | the barrier is broken (timeout, abort, a failed action)   |
//! | 14     | `RESETTING` | `reset` was called while parties were inside: draining     |
//! | 15     | `SLEEPERS`  | a party may sleep in `futex_wait` on the word              |
//! | 16..32 | `gen`       | the generation (pass) number, wrapping                    |
//!
//! * **Arrive**: a CAS `count += 1`; the old `count` is the party's index (the first to
//!   arrive gets 0). A party arriving while the generation is full (the last arrival is
//!   running the action) or draining after a `reset` waits for the word to change, then
//!   arrives in the next generation. A party arriving at a broken barrier fails at once.
//! * **The last arrival** (`count` reaches `parties`) runs the action, then with one CAS
//!   starts the next generation (`gen + 1`, `count = 0`) and wakes the sleepers. So the
//!   action runs exactly once per pass, before anyone is released.
//! * **A waiter** of generation `g` is released when `gen != g`. The generation changes
//!   only by the release of `g` (which needs this waiter's arrival) or by a completed
//!   reset (which needs this waiter to have left), so it changes at most once while a
//!   waiter is inside: no ABA on the 16-bit number.
//! * **Breaking**: a waiter whose timeout passes sets `BROKEN` and leaves (`count -= 1`)
//!   with one CAS; every waiter that sees `BROKEN` leaves too, and later arrivals fail,
//!   until `reset`. While a generation is full its action is running: it is completed,
//!   not broken (a timed-out waiter then waits for the release, as in Python, where the
//!   action runs under the condition's lock). An `abort` during the action breaks the
//!   *next* generation.
//! * **Reset**: with nobody inside, starts a fresh generation at once. Otherwise it sets
//!   `BROKEN | RESETTING`: the waiters inside fail and leave, and the last to leave starts
//!   the fresh generation; arrivals meanwhile wait for it (Python's "resetting" state).
//!   An arrival whose deadline passes while it waits to enter (a full or draining
//!   generation) returns `Timeout` without breaking anything: it never joined.
//!
//! A party killed while it waits stays counted: the others never complete the pass, and
//! time out (breaking the barrier) if they wait with a timeout, as in Python.
//!
//! Arrival CASes are Release (publishing each party's prior writes) and the last
//! arrival's CAS is Acquire: the chain of read-modify-writes is one release sequence, so
//! the last arrival sees every party's writes; its Release CAS of the new generation pairs
//! with the Acquire loads of the waiters, which therefore see everything written before
//! the barrier by every party, and everything the action wrote.

use crate::sync::futex::{self, WaitResult};
use crate::sync::spin::SpinPolicy;
use crate::sync::{time, AtomicU32, Ordering};
use std::fmt;
use std::time::Instant;

const COUNT: u32 = (1 << 13) - 1;
const BROKEN: u32 = 1 << 13;
const RESETTING: u32 = 1 << 14;
const SLEEPERS: u32 = 1 << 15;
const GEN_ONE: u32 = 1 << 16;

/// The largest number of parties a barrier can have.
pub const MAX_PARTIES: u32 = COUNT;

#[inline]
fn gen_of(w: u32) -> u32 {
    w >> 16
}

/// Why a barrier wait failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarrierError {
    /// The barrier is broken (another party timed out, `abort` or `reset` was called, or
    /// an action panicked): Python's `BrokenBarrierError`. Call [`Barrier::reset`](crate::Barrier::reset) to use
    /// it again.
    Broken,
    /// This party's timeout passed: it broke the barrier for every party.
    Timeout,
}

impl fmt::Display for BarrierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BarrierError::Broken => f.write_str(
                "the barrier is broken (a party timed out, it was aborted or reset, or an action failed); reset it to use it again",
            ),
            BarrierError::Timeout => f.write_str(
                "timed out waiting for the other parties; the barrier is now broken for all of them",
            ),
        }
    }
}

impl std::error::Error for BarrierError {}

/// The shared state of a [`Barrier`](crate::Barrier): the word of the [module docs](self) and the number
/// of parties (fixed at creation). All zero bytes with `parties` set is a fresh barrier.
#[repr(C)]
pub struct RawBarrier {
    word: AtomicU32,
    parties: AtomicU32,
}

// SAFETY: `#[repr(C)]`, aligned to at most 128; atomic words only; every bit pattern decodes to a count, flags and a generation, and a count above `parties` is treated as broken.
unsafe impl crate::raw::SharedState for RawBarrier {}

#[cfg(not(shmproc_loom))]
static_assertions::assert_eq_size!(RawBarrier, u64);

impl RawBarrier {
    /// A fresh barrier for `parties` parties (`1..=MAX_PARTIES`).
    pub fn new(parties: u32) -> Self {
        RawBarrier {
            word: AtomicU32::new(0),
            parties: AtomicU32::new(parties),
        }
    }

    /// The number of parties, checked: a corrupted value reads as `None`.
    pub fn parties(&self) -> Option<u32> {
        // Relaxed: written once before the barrier was published.
        let p = self.parties.load(Ordering::Relaxed);
        (1..=MAX_PARTIES).contains(&p).then_some(p)
    }

    /// True while broken (including while a reset drains).
    pub fn is_broken(&self) -> bool {
        // Relaxed: a snapshot.
        self.word.load(Ordering::Relaxed) & BROKEN != 0
    }

    /// Parties waiting in the current generation (a snapshot).
    pub fn n_waiting(&self) -> u32 {
        // Relaxed: a snapshot.
        let w = self.word.load(Ordering::Relaxed);
        let parties = self.parties().unwrap_or(0);
        // While full, the last arrival is running the action and is not "waiting".
        (w & COUNT).min(parties.saturating_sub(1))
    }

    /// Waits for all parties; returns this party's index. The party that arrives last
    /// runs `action` before anyone is released.
    ///
    /// # Errors
    /// [`BarrierError::Broken`], or [`BarrierError::Timeout`] when `deadline` passed
    /// (which breaks the barrier for everyone).
    ///
    /// # Panics
    /// When `action` panics: the barrier is broken first, then the panic resumes.
    pub fn wait(
        &self,
        action: impl FnOnce(),
        deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> core::result::Result<u32, BarrierError> {
        let parties = self.parties().ok_or(BarrierError::Broken)?;
        let (g, index) = self.arrive(parties, deadline, spin)?;
        if index + 1 == parties {
            self.release(g, action);
            return Ok(index);
        }
        self.await_release(g, parties, deadline, spin)
            .map(|()| index)
    }

    /// Arrives in the current generation; returns it and this party's index.
    fn arrive(
        &self,
        parties: u32,
        deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> core::result::Result<(u32, u32), BarrierError> {
        let mut round = 0;
        loop {
            // Relaxed: the CAS below carries the ordering; waiting paths re-load.
            let w = self.word.load(Ordering::Relaxed);
            let count = w & COUNT;
            if w & RESETTING == 0 && w & BROKEN != 0 {
                return Err(BarrierError::Broken);
            }
            if w & RESETTING != 0 || count >= parties {
                // Full (the action runs) or draining: wait for the next generation.
                if self.sleep_on(w, &mut round, deadline, spin) {
                    return Err(BarrierError::Timeout);
                }
                continue;
            }
            // AcqRel: Release publishes our writes before the barrier to the last
            // arrival (whose Acquire CAS continues this release sequence); Acquire is
            // what the last arrival needs, and harmless for the others.
            if self
                .word
                .compare_exchange_weak(w, w + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return Ok((gen_of(w), count));
            }
        }
    }

    /// The last arrival: run the action, then start the next generation.
    fn release(&self, g: u32, action: impl FnOnce()) {
        struct BreakOnPanic<'a>(&'a RawBarrier, u32);
        impl Drop for BreakOnPanic<'_> {
            fn drop(&mut self) {
                // The action panicked: the pass cannot complete. Break the generation;
                // the waiters leave (count -= 1 each), and so do we.
                self.0.break_after_panic(self.1);
            }
        }
        let guard = BreakOnPanic(self, g);
        action();
        core::mem::forget(guard);
        // Relaxed: the CAS re-checks.
        let mut w = self.word.load(Ordering::Relaxed);
        loop {
            let next = (w & !(COUNT | SLEEPERS | BROKEN | RESETTING)).wrapping_add(GEN_ONE);
            // A reset during the action is complete now (nobody is left inside); an
            // abort during the action breaks the next generation.
            let next = if w & RESETTING != 0 {
                next
            } else {
                next | (w & BROKEN)
            };
            // Release: pairs with the Acquire loads in `await_release`: the waiters see
            // every party's writes (gathered by our Acquire arrival) and the action's.
            match self
                .word
                .compare_exchange_weak(w, next, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => {
                    if w & SLEEPERS != 0 {
                        futex::wake_all(&self.word);
                    }
                    return;
                }
                Err(now) => w = now,
            }
        }
    }

    /// A waiter of generation `g`: until released (Ok) or broken.
    fn await_release(
        &self,
        g: u32,
        parties: u32,
        mut deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> core::result::Result<(), BarrierError> {
        let mut round = 0;
        loop {
            // Acquire: pairs with the Release CAS in `release`.
            let w = self.word.load(Ordering::Acquire);
            if gen_of(w) != g {
                return Ok(());
            }
            let full = w & COUNT >= parties;
            if w & BROKEN != 0 && !full {
                self.leave(g);
                return Err(BarrierError::Broken);
            }
            if self.sleep_on(w, &mut round, deadline, spin) {
                if full {
                    // The action is running: the pass completes; wait for it.
                    deadline = None;
                    continue;
                }
                if self.break_on_timeout(g, parties) {
                    return Err(BarrierError::Timeout);
                }
                // The word moved (released, broken or another arrival): look again.
            }
        }
    }

    /// Spins, then sleeps while the word is `w`; true when `deadline` passed.
    fn sleep_on(
        &self,
        w: u32,
        round: &mut u32,
        deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> bool {
        if *round < spin.rounds {
            spin.pause(*round);
            *round += 1;
            return false;
        }
        // Announce a sleeper, or `release` and the breaking transitions would not wake us.
        // Relaxed: the futex compares the word in the kernel, under the bucket lock that
        // the waker's wake takes too; the caller re-loads with Acquire.
        if w & SLEEPERS == 0
            && self
                .word
                .compare_exchange(w, w | SLEEPERS, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        futex::wait(&self.word, w | SLEEPERS, deadline) == WaitResult::TimedOut
            && time::expired(deadline)
    }

    /// A party of generation `g` whose deadline passed: breaks the generation and leaves
    /// it, in one CAS, unless it was released, is already broken (the caller then leaves
    /// as a broken party), or is full (its action runs: the pass completes). True if this
    /// call broke it.
    fn break_on_timeout(&self, g: u32, parties: u32) -> bool {
        self.update(|w| {
            (gen_of(w) == g && w & BROKEN == 0 && w & COUNT < parties)
                .then(|| self.after_leaving((w | BROKEN) & !SLEEPERS))
        })
    }

    /// The last arrival of generation `g`, whose action panicked: breaks the generation
    /// and leaves it (so the waiters, seeing it broken and no longer full, leave too).
    fn break_after_panic(&self, g: u32) {
        self.update(|w| (gen_of(w) == g).then(|| self.after_leaving((w | BROKEN) & !SLEEPERS)));
    }

    /// Moves the word to `step(w)` in a CAS loop (each try through `transition`, which
    /// wakes the sleepers), until it succeeds or `step` says `None` (nothing to do).
    /// True if the word was moved.
    fn update(&self, mut step: impl FnMut(u32) -> Option<u32>) -> bool {
        // Relaxed: the CAS in `transition` re-checks.
        let mut w = self.word.load(Ordering::Relaxed);
        loop {
            let Some(next) = step(w) else {
                return false;
            };
            if self.transition(w, next) {
                return true;
            }
            // Relaxed: as above.
            w = self.word.load(Ordering::Relaxed);
        }
    }

    /// One CAS of the word from `w` to `next`, waking the sleepers if `w` had any.
    fn transition(&self, w: u32, next: u32) -> bool {
        // AcqRel: as for every other transition of the word (see the module docs).
        let ok = self
            .word
            .compare_exchange(w, next, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        if ok && w & SLEEPERS != 0 {
            futex::wake_all(&self.word);
        }
        ok
    }

    /// The word after one party leaves a broken generation: `count - 1`, and if that was
    /// the last one during a reset, the fresh next generation.
    fn after_leaving(&self, w: u32) -> u32 {
        let count = (w & COUNT).saturating_sub(1);
        if count == 0 && w & RESETTING != 0 {
            (w & !(COUNT | BROKEN | RESETTING | SLEEPERS)).wrapping_add(GEN_ONE)
        } else {
            (w & !COUNT) | count
        }
    }

    /// A waiter of generation `g` leaves the broken barrier.
    fn leave(&self, g: u32) {
        self.update(|w| (gen_of(w) == g).then(|| self.after_leaving(w) & !SLEEPERS));
    }

    /// Breaks the barrier: every party inside and every later arrival fails, until
    /// [`reset`](Self::reset). A generation whose action is running completes first.
    pub fn abort(&self) {
        self.update(|w| (w & BROKEN == 0).then_some((w | BROKEN) & !SLEEPERS));
    }

    /// Returns the barrier to its initial state. Parties waiting now fail with
    /// [`BarrierError::Broken`]; parties arriving before they have all left wait, then
    /// use the fresh barrier.
    pub fn reset(&self) {
        self.update(|w| {
            if w & COUNT == 0 {
                Some((w & !(BROKEN | RESETTING | SLEEPERS)).wrapping_add(GEN_ONE))
            } else if w & RESETTING != 0 {
                None
            } else {
                Some((w | BROKEN | RESETTING) & !SLEEPERS)
            }
        });
    }
}
