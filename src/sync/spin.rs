//! How long a blocking call spins before it sleeps in the kernel.

use crate::sync::{spin_hint, yield_now};

/// How long a blocking call spins (with `PAUSE`, then yielding) before it sleeps in
/// `futex_wait`.
///
/// On the machines this crate is measured on, waking a sleeping process on another vCPU
/// costs ~20 µs while a spinning one notices a hand-off in ~50-200 ns (see the README's
/// benchmark table). Spinning for about as long as a wake-up costs is the classic
/// "two-competitive" choice, and is the default. Every handle that blocks can be given its
/// own policy (e.g. `Lock::set_spin`).
///
/// Round `i` spins `2^min(i, 4)` `PAUSE`s (at most ~0.4 µs); from round
/// [`first_yield`](Self::first_yield) on (the third, by default) it also yields the CPU. A
/// yield costs ~0.5 µs when nothing else wants the CPU, and hands it over when something
/// does: on a machine with fewer cores than busy processes, the party a spinner waits for
/// is often runnable on the spinner's own CPU, and every PAUSE spent before the first
/// yield is time taken from it. (The first version spun 127 PAUSEs, ~3 µs, before its
/// first yield: four queue processes on two cores ran ~1.5x slower.)
///
/// Two processes that hand messages back and forth on two cores want the opposite: a side
/// that yields before the reply arrives sees it only when the yield returns, the peer's
/// next wait then outlasts its spin, so it yields too, and the pair locks into ~1 µs round
/// trips instead of ~0.2 µs. A [`Connection`](crate::pipe::Connection) therefore spins
/// longer before its first yield ([`SpinPolicy::HAND_OFF`]).
///
/// Why this is not crossbeam-utils' `Backoff::snooze` (crossbeam's [`Backoff`](crossbeam_utils::Backoff)
/// is used where a race was lost: see `Backoff` in this module): `snooze` has one fixed
/// schedule, 2^step PAUSEs up to 64, so 127 PAUSEs (~3 µs) before its first yield, then
/// yields until its step passes 10. That is the schedule of the first version above, which
/// made four queue processes on two cores ~1.5x slower; here the number of rounds and the
/// first yield are a policy of each handle (`NEVER`, `HAND_OFF`, the default), a round
/// spins at most 16 PAUSEs, and under loom every PAUSE must be a loom yield point.
///
/// ```
/// use shmproc::SpinPolicy;
/// assert_eq!(SpinPolicy::NEVER.rounds, 0);
/// assert!(SpinPolicy::default().rounds > 0);
/// let quiet = SpinPolicy::rounds(8).with_first_yield(0); // yield from the first round
/// assert_eq!(quiet.first_yield, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpinPolicy {
    /// Spin rounds before sleeping; 0 sleeps at once.
    pub rounds: u32,
    /// The first round that ends with a yield of the CPU (rounds before it only spin).
    pub first_yield: u32,
}

impl SpinPolicy {
    /// Sleep at once: lowest CPU use, highest latency.
    pub const NEVER: SpinPolicy = SpinPolicy::rounds(0);

    /// The default rounds, but the first yield after 31 PAUSEs (~0.8 µs: longer than a
    /// yield that finds nothing else to run plus a hand-off) instead of 7: for two
    /// processes that answer each other (a pipe), where an early yield only adds latency.
    /// The price: when both share one CPU, each hand-off spins ~0.6 µs longer before it
    /// lets the peer run (an 8-byte pipe round trip on one CPU: ~4.7 µs instead of ~3.5).
    /// The default of [`Connection`](crate::pipe::Connection).
    pub const HAND_OFF: SpinPolicy = SpinPolicy::DEFAULT.with_first_yield(4);

    /// The default policy (see [`Default`]).
    const DEFAULT: SpinPolicy = if cfg!(shmproc_loom) {
        SpinPolicy::rounds(1)
    } else {
        SpinPolicy::rounds(24)
    };

    /// `rounds` spin rounds before sleeping (yielding from the third).
    pub const fn rounds(rounds: u32) -> SpinPolicy {
        SpinPolicy {
            rounds,
            first_yield: FIRST_YIELD,
        }
    }

    /// This policy, with its first yield at the end of round `round`.
    pub const fn with_first_yield(self, round: u32) -> SpinPolicy {
        SpinPolicy {
            first_yield: round,
            ..self
        }
    }

    /// Spins as this policy says and calls `look` after every PAUSE; returns the first
    /// `Some` it gives, or `None` once the rounds are spent (time to sleep). For waits
    /// whose look only reads shared lines (the rings): a look that finds nothing costs no
    /// traffic, and a hand-off is seen within one PAUSE (~25 ns on the machines measured)
    /// rather than within a round's `2^round` PAUSEs. A wait whose attempt writes (a CAS on
    /// a lock word) spins with [`pause`](Self::pause) instead.
    #[inline]
    pub(crate) fn spin<R>(&self, mut look: impl FnMut() -> Option<R>) -> Option<R> {
        for round in 0..self.rounds {
            for _ in 0..self.looks(round) {
                spin_hint();
                if let Some(r) = look() {
                    return Some(r);
                }
            }
            self.end_round(round);
        }
        None
    }

    /// Spins as this policy says, calling `attempt` once per round (an attempt may write:
    /// a CAS on a lock word): [`Round::Done`] returns its value, [`Round::Sleep`] ends the
    /// spin early (others already sleep, so the caller will too), [`Round::Again`] pauses
    /// for the round. `None`: the rounds are spent or stopped, time to sleep. The one loop
    /// of every wait that spins on attempts; [`spin`](Self::spin) is the one for looks
    /// that only read.
    #[inline]
    pub(crate) fn attempts<R>(&self, mut attempt: impl FnMut() -> Round<R>) -> Option<R> {
        for round in 0..self.rounds {
            match attempt() {
                Round::Done(r) => return Some(r),
                Round::Sleep => return None,
                Round::Again => self.pause(round),
            }
        }
        None
    }

    /// One round of waiting: round `round` of `self.rounds`: [`looks`](Self::looks)
    /// PAUSEs, then [`end_round`](Self::end_round).
    #[inline]
    pub(crate) fn pause(&self, round: u32) {
        for _ in 0..self.looks(round) {
            spin_hint();
        }
        self.end_round(round);
    }

    /// PAUSEs in round `round`: `2^min(round, 4)` (one under loom, where a PAUSE is a
    /// yield point). A caller that wants to look after every PAUSE (the pipe) spins these
    /// itself, then calls [`end_round`](Self::end_round).
    #[inline]
    pub(crate) fn looks(&self, round: u32) -> u32 {
        pauses(round.min(MAX_SHIFT))
    }

    /// Ends round `round`: from round `first_yield` on, yields the CPU, so a spinner
    /// never starves the process it waits for on a machine with few cores. (Under loom:
    /// nothing more; each PAUSE already yielded.)
    #[inline]
    pub(crate) fn end_round(&self, round: u32) {
        if !cfg!(shmproc_loom) && round >= self.first_yield {
            yield_now();
        }
    }
}

/// What one round of [`SpinPolicy::attempts`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Round<R> {
    /// Done: stop spinning with this value.
    Done(R),
    /// Not yet: pause for this round, then try again.
    Again,
    /// Stop spinning and sleep (others already sleep on the word: so will we).
    Sleep,
}

/// Round `i` spins `2^min(i, MAX_SHIFT)` PAUSEs.
const MAX_SHIFT: u32 = 4;

/// The first round that ends with a yield, by default.
const FIRST_YIELD: u32 = 2;

/// `2^shift` PAUSEs, or one under loom, where a PAUSE is a yield point and one is enough
/// to let the other threads on.
#[inline]
fn pauses(shift: u32) -> u32 {
    if cfg!(shmproc_loom) {
        1
    } else {
        1 << shift
    }
}

/// The wait of an operation that lost a race (a failed CAS, or a look that shows another
/// party got there first): `2^step` PAUSEs, `step` growing to 6, then look again. Never
/// yields: the winner is running, and will be done within nanoseconds. Without it two
/// parties on two cores retry in lockstep and the line bounces on every attempt (two
/// producers filling a queue: ~35 ns per message, ~5 with it).
///
/// This is crossbeam-utils' [`Backoff`](crossbeam_utils::Backoff), used through its
/// `spin` only (whose schedule is the one above). Under loom it is ours, with the same
/// API: crossbeam's PAUSE is `core::hint::spin_loop`, which loom does not see (crossbeam
/// switches to loom under its own cfg, `crossbeam_loom`, not `shmproc_loom`), so a model
/// whose thread backs off would spin without ever letting the others run; ours makes
/// each call one loom yield point.
#[cfg(not(shmproc_loom))]
#[derive(Debug, Default)]
pub(crate) struct Backoff(crossbeam_utils::Backoff);

#[cfg(not(shmproc_loom))]
impl Backoff {
    /// Spins this step's PAUSEs; the next call spins twice as many (up to 64).
    #[inline]
    pub(crate) fn spin(&mut self) {
        self.0.spin();
    }
}

/// Under loom: see the real build's `Backoff`.
#[cfg(shmproc_loom)]
#[derive(Debug, Default)]
pub(crate) struct Backoff;

#[cfg(shmproc_loom)]
impl Backoff {
    /// One loom yield point.
    #[inline]
    pub(crate) fn spin(&mut self) {
        spin_hint();
    }
}

impl Default for SpinPolicy {
    /// About as long as one cross-core futex wake-up (~15-25 µs): 24 rounds, ~330 PAUSEs
    /// and 22 yields.
    fn default() -> Self {
        SpinPolicy::DEFAULT
    }
}
