//! `Barrier`: Python's `multiprocessing.Barrier`, on one futex word and a record of the
//! parties inside.
//!
//! # The word
//!
//! | bits   | name        | meaning                                                   |
//! |--------|-------------|-----------------------------------------------------------|
//! | 0..12  | `count`     | parties that arrived in this generation                   |
//! | 12     | `PASSED`    | the previous generation ended by a release (all counted)  |
//! | 13     | `BROKEN`    | the barrier is broken (timeout, abort, a failed action, a party that died) |
//! | 14     | `RESETTING` | `reset` was called while parties were inside: draining     |
//! | 15     | `SLEEPERS`  | a party may sleep in `futex_wait` on the word              |
//! | 16..32 | `gen`       | the generation (pass) number, wrapping                    |
//!
//! # The arrivals
//!
//! After the word come `parties` [`Arrival`] records: the party that arrived `c`-th in
//! generation `g` writes its identity (start time) into record `c`, then with one CAS
//! tags it `(g, ARRIVED, pid)`; it tags it `(g, GONE)` when it leaves a broken generation.
//! A record of another generation is stale. A party that records late finds its pass
//! already released (or a party of the next pass in its record): it then leaves the
//! record alone. The records are how the others tell, on the liveness schedule, that a
//! party inside has died.
//!
//! * **Arrive**: a CAS `count += 1`; the old `count` is the party's index `c` (the first
//!   to arrive gets 0). Then it records itself: its identity, then a CAS of the tag from
//!   what it read to `(g, ARRIVED)`. A party arriving while the generation is full (the
//!   last arrival is running the action) or draining after a `reset` waits for the word
//!   to change, then arrives in the next generation. A party arriving at a broken barrier
//!   fails at once.
//! * **The last arrival** (`count` reaches `parties`) runs the action, then with one CAS
//!   starts the next generation (`gen + 1`, `count = 0`) and wakes the sleepers. So the
//!   action runs exactly once per pass, before anyone is released.
//! * **A waiter** of generation `g` is released when `gen != g`. The generation changes
//!   only by the release of `g` (which needs this waiter's arrival) or by a completed
//!   reset (which needs this waiter to have left, or to be dead), so it changes at most
//!   once while a waiter is inside: no ABA on the 16-bit number.
//! * **Breaking**: a waiter whose timeout passes sets `BROKEN` and leaves (tags its
//!   record `GONE`); every waiter that sees `BROKEN` leaves too, and later arrivals fail,
//!   until `reset`. The count is never lowered: who is still inside is what the records
//!   say. While a generation is full its action is running: it is completed, not broken
//!   (a timed-out waiter then waits for the release, as in Python, where the action runs
//!   under the condition's lock), unless the action's runner itself is gone (its record
//!   `GONE`: its action panicked, or it died). An `abort` during the action breaks the
//!   *next* generation.
//! * **Reset**: once every party inside has left (each record of the generation `GONE`,
//!   or naming a dead process), starts a fresh generation. Otherwise it sets `BROKEN |
//!   RESETTING`: the parties inside fail and leave, and the last to leave (or a waiter
//!   that finds only dead ones left) starts the fresh generation; arrivals meanwhile wait
//!   for it (Python's "resetting" state). An arrival whose deadline passes while it waits
//!   to enter (a full or draining generation) returns `Timeout` without breaking
//!   anything: it never joined.
//!
//! # A party that dies
//!
//! Every party that waits (to be released, or to enter) also looks at the records of the
//! generation on the [`Liveness::recheck`] schedule (1 ms, doubling to 100 ms): a party
//! inside that is dead ([`Liveness::is_dead`]) breaks the generation, as a timeout does
//! (so `wait()` without a timeout ends with [`BarrierError::Broken`] within about 100 ms
//! of the death, instead of waiting for ever); a dead party is counted as gone by the
//! drain of a reset; a dead runner of the action is as one whose action panicked. A party
//! counted but not recorded (it died between its two steps of arriving, or is slow
//! there) is judged after [`GRACE`]: its record is tagged `(g, VOID)` with a CAS, and it
//! counts as dead; if it was alive after all, its own tag CAS fails, and it returns
//! `Broken` with everyone else. Nothing is lost but the pass.
//!
//! A party killed while it sleeps in a pass that the others then complete (it was
//! counted) is released with them, dead. So the records come in two halves, one for even
//! generations and one for odd ones, and a record stays `ARRIVED` after its release:
//! the waiters of the next pass also look at the previous pass's records, and a dead
//! party there (or one still unrecorded after [`GRACE`], when that pass ended by a
//! release, `PASSED`) breaks the pass it will never arrive in. A party that leaves for
//! good after a pass (even by a normal exit) while the others wait for it in the next one
//! breaks that one too: a barrier is for a fixed set of parties. A party that dies
//! before it ever arrived cannot be told from a late one (parties are a count, as in
//! Python): the others wait for it, or until their timeout.
//!
//! How quickly: a waiter looks 1 ms after it starts waiting, then every 2, 4, ... up to
//! 100 ms, reading `/proc/<pid>/stat` of each party inside (about 10 reads a second per
//! waiter); a death between a party's count and its record takes [`GRACE`] more.
//!
//! Arrival CASes are Release (publishing each party's prior writes) and the last
//! arrival's CAS is Acquire: the chain of read-modify-writes is one release sequence, so
//! the last arrival sees every party's writes; its Release CAS of the new generation pairs
//! with the Acquire loads of the waiters, which therefore see everything written before
//! the barrier by every party, and everything the action wrote.

use crate::sync::futex::{self, WaitResult};
use crate::sync::liveness::{split_ident, Liveness, PID_MASK};
use crate::sync::spin::SpinPolicy;
use crate::sync::wait::Recheck;
use crate::sync::{time, AtomicU32, AtomicU64, Ordering};
use std::fmt;
use std::time::{Duration, Instant};

const COUNT: u32 = (1 << 12) - 1;
const PASSED: u32 = 1 << 12;
const BROKEN: u32 = 1 << 13;
const RESETTING: u32 = 1 << 14;
const SLEEPERS: u32 = 1 << 15;
const GEN_ONE: u32 = 1 << 16;

/// The largest number of parties a barrier can have.
pub const MAX_PARTIES: u32 = COUNT;

/// How long a party counted in the word may stay unrecorded before the others judge it
/// dead (module docs): it records itself a few instructions after it is counted, so only
/// a party preempted (or stopped) for this long in between is misjudged; generous, as a
/// death in that window is rare and costs only this delay.
pub const GRACE: Duration = Duration::from_millis(500);

#[inline]
fn gen_of(w: u32) -> u32 {
    w >> 16
}

/// Tag states of an [`Arrival`].
const ARRIVED: u32 = 1;
const GONE: u32 = 2;
const VOID: u32 = 3;
/// The "pid" of a record voided by [`RawBarrier::reset`] (0: by a look).
const BY_RESET: u32 = 1;

/// The tag of a record of generation `g` in `state`, made by process `pid`:
/// `gen << 32 | state << 30 | pid`. One word, so a party writes its generation and its pid
/// with one CAS (a slow party of an older generation cannot mix its pid into a newer
/// record: its CAS fails).
#[inline]
fn tag(g: u32, state: u32, pid: u32) -> u64 {
    (u64::from(g & 0xFFFF) << 32) | (u64::from(state & 3) << 30) | u64::from(pid & PID_MASK)
}

/// The generation of a tag.
#[inline]
fn tag_gen(t: u64) -> u32 {
    (t >> 32) as u32 & 0xFFFF
}

/// The state of a tag (0: no record).
#[inline]
fn tag_state(t: u64) -> u32 {
    (t >> 30) as u32 & 3
}

/// True when tag `t` is of generation `g` in `state`.
#[inline]
fn is(t: u64, g: u32, state: u32) -> bool {
    tag_gen(t) == g && tag_state(t) == state
}

/// The same record in `state`.
#[inline]
fn with_state(t: u64, state: u32) -> u64 {
    (t & !(3 << 30)) | (u64::from(state & 3) << 30)
}

/// Why a barrier wait failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarrierError {
    /// The barrier is broken (another party timed out or died, `abort` or `reset` was
    /// called, or an action panicked): Python's `BrokenBarrierError`. Call
    /// [`Barrier::reset`](crate::Barrier::reset) to use it again.
    Broken,
    /// This party's timeout passed: it broke the barrier for every party.
    Timeout,
}

impl fmt::Display for BarrierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BarrierError::Broken => f.write_str(
                "the barrier is broken (a party timed out or died, it was aborted or reset, or an action failed); reset it to use it again",
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
/// The [`Arrival`] records follow it.
#[repr(C)]
pub struct RawBarrier {
    word: AtomicU32,
    parties: AtomicU32,
}

// SAFETY: `#[repr(C)]`, aligned to at most 128; atomic words only; every bit pattern decodes to a count, flags and a generation, and a count above `parties` is treated as broken.
unsafe impl crate::raw::SharedState for RawBarrier {}

#[cfg(not(shmproc_loom))]
static_assertions::assert_eq_size!(RawBarrier, u64);
#[cfg(not(shmproc_loom))]
static_assertions::assert_eq_size!(Arrival, [u64; 2]);

/// The record of one arrival (module docs, "The arrivals"). All zero bytes is a record
/// of no generation.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Arrival {
    /// [`tag`]: generation, state and pid.
    tag: AtomicU64,
    /// The identity of the party (`liveness::ident`): its start time counts only when its
    /// pid is the tag's (it is written just before the tag, and a slow party of another
    /// generation may write it too).
    who: AtomicU64,
}

// SAFETY: `#[repr(C)]`, atomic words only; any value is a record (a tag of another
// generation is stale, an identity that names nobody is dead).
unsafe impl crate::raw::SharedState for Arrival {}

impl Arrival {
    /// A record of no generation.
    pub fn new() -> Arrival {
        Arrival {
            tag: AtomicU64::new(0),
            who: AtomicU64::new(0),
        }
    }
}

/// What a look at the records found ([`RawBarrier::look`]).
#[derive(Debug, Default)]
struct Look {
    /// The generation the entries are of.
    generation: u32,
    /// Indices seen unrecorded in it, and since when (for [`GRACE`]).
    unrecorded: Vec<(u32, Instant)>,
}

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

    /// Parties waiting in the current generation (a snapshot; 0 while broken).
    pub fn n_waiting(&self) -> u32 {
        // Relaxed: a snapshot.
        let w = self.word.load(Ordering::Relaxed);
        if w & BROKEN != 0 {
            return 0;
        }
        let parties = self.parties().unwrap_or(0);
        // While full, the last arrival is running the action and is not "waiting".
        (w & COUNT).min(parties.saturating_sub(1))
    }

    /// Waits for all parties; returns this party's index. The party that arrives last
    /// runs `action` before anyone is released. `arrivals` are the barrier's records (two
    /// per party: fewer, and deaths are not seen); `who` is the caller.
    ///
    /// # Errors
    /// [`BarrierError::Broken`], or [`BarrierError::Timeout`] when `deadline` passed
    /// (which breaks the barrier for everyone).
    ///
    /// # Panics
    /// When `action` panics: the barrier is broken first, then the panic resumes.
    pub fn wait(
        &self,
        arrivals: &[Arrival],
        who: &impl Liveness,
        action: impl FnOnce(),
        deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> core::result::Result<u32, BarrierError> {
        let parties = self.parties().ok_or(BarrierError::Broken)?;
        let (g, index) = self.arrive(arrivals, who, parties, deadline, spin, true)?;
        if index + 1 == parties {
            self.release(arrivals, g, index, action);
            return Ok(index);
        }
        self.await_release(arrivals, who, g, index, parties, deadline, spin)
            .map(|()| index)
    }

    /// For the models of a party that dies inside the barrier: arrives as
    /// [`wait`](Self::wait) does (recording the arrival only if `record`), and returns its
    /// generation and index without waiting or running an action. The caller then stops
    /// for ever, as a process killed there would.
    #[doc(hidden)]
    pub fn arrive_and_stop(
        &self,
        arrivals: &[Arrival],
        who: &impl Liveness,
        record: bool,
    ) -> core::result::Result<(u32, u32), BarrierError> {
        let parties = self.parties().ok_or(BarrierError::Broken)?;
        self.arrive(arrivals, who, parties, None, SpinPolicy::NEVER, record)
    }

    /// Arrives in the current generation and records the arrival (unless `!record`: the
    /// models' death between the two steps); returns the generation and this party's
    /// index.
    fn arrive(
        &self,
        arrivals: &[Arrival],
        who: &impl Liveness,
        parties: u32,
        deadline: Option<Instant>,
        spin: SpinPolicy,
        record: bool,
    ) -> core::result::Result<(u32, u32), BarrierError> {
        let mut round = 0;
        let mut looks = Looks::new(who);
        loop {
            // Relaxed: the CAS below carries the ordering; waiting paths re-load.
            let w = self.word.load(Ordering::Relaxed);
            let count = w & COUNT;
            if w & RESETTING == 0 && w & BROKEN != 0 {
                return Err(BarrierError::Broken);
            }
            if w & RESETTING != 0 || self.full(arrivals, w, parties) {
                // Full (the action runs) or draining: wait for the next generation (looking
                // at the parties inside first when it is time: one may be dead).
                if looks.due() {
                    self.look(arrivals, who, gen_of(w), parties, &mut looks.look);
                }
                if self.sleep_on(w, &mut round, deadline, spin, &mut looks) {
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
                let g = gen_of(w);
                if record && !self.record(arrivals, who, g, count) {
                    // Judged dead before we recorded ourselves (we were too slow): the
                    // generation is broken, and we are counted gone.
                    return Err(BarrierError::Broken);
                }
                return Ok((g, count));
            }
        }
    }

    /// Records the arrival of `who` as the `c`-th of generation `g`: false if it was
    /// voided first (module docs, "A party that dies").
    fn record(&self, arrivals: &[Arrival], who: &impl Liveness, g: u32, c: u32) -> bool {
        let Some(a) = half(arrivals, g).get(c as usize) else {
            return true; // No record for this index: deaths there go unseen.
        };
        let mine = tag(g, ARRIVED, who.me());
        // Acquire: pairs with the Release CAS of a voider (and of other recorders).
        let mut old = a.tag.load(Ordering::Acquire);
        loop {
            if is(old, g, VOID) && old as u32 & PID_MASK == BY_RESET {
                // A reset started over without us: we fail as the waiting parties do.
                return false;
            }
            if is(old, g, VOID) {
                // Judged dead. Unless our pass was released meanwhile (the voider looked
                // just before the last arrival): then we are released with the others.
                // (Or a reset finished, counting us gone: we then report a release where
                // the others got `Broken`; a party stalled for `GRACE` at this very
                // point while a reset that came before ours runs.)
                // Acquire: as in `await_release`.
                return gen_of(self.word.load(Ordering::Acquire)) != g;
            }
            if tag_gen(old) == g && tag_state(old) != 0 {
                return true; // Not a state we write: corrupted; no record.
            }
            // Acquire: as in `await_release`.
            if gen_of(self.word.load(Ordering::Acquire)).wrapping_sub(g) & 0xFFFF >= 2 {
                // Our pass and the next are over (they needed no record of ours); a party
                // of the pass after may own the record now. (While only our pass is over,
                // we record: the next pass looks at it to tell whether we died.)
                return true;
            }
            // Relaxed: published by the Release CAS of the tag below (a party of another
            // generation may overwrite it: `look` trusts it only under the tag's pid).
            a.who.store(who.my_ident(), Ordering::Relaxed);
            // Release: pairs with the Acquire load of the tag in `look`, which then reads
            // our identity. Fails if a voider or a party of the next pass was first.
            match a
                .tag
                .compare_exchange(old, mine, Ordering::Release, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => old = now,
            }
        }
    }

    /// The pid and start time of the party of record `a`, whose tag is `t`.
    fn party(a: &Arrival, t: u64) -> (u32, u64) {
        let pid = t as u32 & PID_MASK;
        // Relaxed: ordered after the tag's Acquire; trusted only under the tag's pid.
        let (p, start) = split_ident(a.who.load(Ordering::Relaxed));
        (pid, if p == pid { start } else { 0 })
    }

    /// True while generation `w` is full: its action runs, unless its runner is gone
    /// (its action panicked, or it was found dead).
    fn full(&self, arrivals: &[Arrival], w: u32, parties: u32) -> bool {
        if w & COUNT < parties {
            return false;
        }
        let runner = half(arrivals, gen_of(w))
            .get(parties as usize - 1)
            .map_or(0, |a| {
                // Acquire: pairs with the Release CAS that tagged it.
                a.tag.load(Ordering::Acquire)
            });
        let g = gen_of(w);
        !is(runner, g, GONE) && !is(runner, g, VOID)
    }

    /// The last arrival: run the action, then start the next generation.
    fn release(&self, arrivals: &[Arrival], g: u32, index: u32, action: impl FnOnce()) {
        struct BreakOnPanic<'a>(&'a RawBarrier, &'a [Arrival], u32, u32);
        impl Drop for BreakOnPanic<'_> {
            fn drop(&mut self) {
                // The action panicked: the pass cannot complete. Break the generation and
                // leave it (the runner gone, it is no longer full: the waiters leave).
                self.0.leave(self.1, self.2, self.3, true);
            }
        }
        let guard = BreakOnPanic(self, arrivals, g, index);
        action();
        core::mem::forget(guard);
        // Relaxed: the CAS re-checks.
        let mut w = self.word.load(Ordering::Relaxed);
        loop {
            if gen_of(w) != g {
                // Ended for us (only a peer writing the word can do that).
                return;
            }
            // (Every party of this pass was counted: the next one may judge the records.)
            let next =
                (w & !(COUNT | SLEEPERS | BROKEN | RESETTING)).wrapping_add(GEN_ONE) | PASSED;
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

    /// A waiter of generation `g` (index `c`): until released (Ok) or broken.
    #[allow(clippy::too_many_arguments)]
    fn await_release(
        &self,
        arrivals: &[Arrival],
        who: &impl Liveness,
        g: u32,
        c: u32,
        parties: u32,
        mut deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> core::result::Result<(), BarrierError> {
        let mut round = 0;
        let mut looks = Looks::new(who);
        loop {
            // Acquire: pairs with the Release CAS in `release`.
            let w = self.word.load(Ordering::Acquire);
            if gen_of(w) != g {
                // Released. (Our record stays `ARRIVED` until the pass after next: a
                // party of the next pass that finds us dead knows we will not come.)
                return Ok(());
            }
            let full = self.full(arrivals, w, parties);
            if w & BROKEN != 0 && !full {
                self.leave(arrivals, g, c, false);
                return Err(BarrierError::Broken);
            }
            if looks.due() {
                // (Before the sleep: a death before we began to wait ends no nap.)
                self.look(arrivals, who, g, parties, &mut looks.look);
            }
            if self.sleep_on(w, &mut round, deadline, spin, &mut looks) {
                if full {
                    // The action is running: the pass completes; wait for it.
                    deadline = None;
                    continue;
                }
                if self.break_on_timeout(arrivals, g, c, parties) {
                    return Err(BarrierError::Timeout);
                }
                // The word moved (released, broken or another arrival): look again.
            }
        }
    }

    /// Spins, then sleeps while the word is `w` (waking on `looks`' schedule too); true
    /// when `deadline` passed.
    fn sleep_on(
        &self,
        w: u32,
        round: &mut u32,
        deadline: Option<Instant>,
        spin: SpinPolicy,
        looks: &mut Looks,
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
        let r = match looks.next_in() {
            // Until woken, or until the next look at the parties (a nap: under loom it
            // ends when another thread made progress, e.g. died, since the last look).
            Some(look_in) => futex::nap(&self.word, w | SLEEPERS, looks.since, deadline, look_in),
            None => futex::wait(&self.word, w | SLEEPERS, deadline),
        };
        r == WaitResult::TimedOut && time::expired(deadline)
    }

    /// A party of generation `g` whose deadline passed: breaks the generation and leaves
    /// it, unless it was released, is already broken (the caller then leaves as a broken
    /// party), or is full (its action runs: the pass completes). True if this call broke
    /// it.
    fn break_on_timeout(&self, arrivals: &[Arrival], g: u32, c: u32, parties: u32) -> bool {
        let broke = self.update(|w| {
            (gen_of(w) == g && w & BROKEN == 0 && !self.full(arrivals, w, parties))
                .then_some((w | BROKEN) & !SLEEPERS)
        });
        if broke {
            self.leave(arrivals, g, c, false);
        }
        broke
    }

    /// A party (index `c`) leaves the broken generation `g`: tags its record `GONE` (the
    /// runner of a failed action breaks the generation first, `runner`), then finishes a
    /// reset if it was the last inside.
    fn leave(&self, arrivals: &[Arrival], g: u32, c: u32, runner: bool) {
        Self::gone(arrivals, g, c);
        if runner {
            self.update(|w| {
                (gen_of(w) == g && w & BROKEN == 0).then_some((w | BROKEN) & !SLEEPERS)
            });
            // Wake the waiters: the generation is no longer full.
            futex::wake_all(&self.word);
        }
        self.finish_reset(arrivals, g, None::<&NoLiveness>);
    }

    /// Tags the record of the `c`-th party of generation `g` gone (it left: broken, or
    /// released), if it says the party is inside.
    fn gone(arrivals: &[Arrival], g: u32, c: u32) {
        if let Some(a) = half(arrivals, g).get(c as usize) {
            // Acquire: pairs with the Release CAS of `record`.
            let t = a.tag.load(Ordering::Acquire);
            if is(t, g, ARRIVED) {
                // Release: pairs with the Acquire loads of the tag (`full`, `drained`,
                // `look`).
                let _ = a.tag.compare_exchange(
                    t,
                    with_state(t, GONE),
                    Ordering::Release,
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// If generation `g` is draining after a reset and nobody is left inside (every
    /// record of it gone, or, when `who` is given, naming a dead process), starts the
    /// fresh generation.
    fn finish_reset(&self, arrivals: &[Arrival], g: u32, who: Option<&impl Liveness>) {
        self.update(|w| {
            (gen_of(w) == g && w & RESETTING != 0 && self.drained(arrivals, w, who))
                .then(|| fresh(w))
        });
    }

    /// True when nobody is inside generation `w`: each of its `count` records is gone (or
    /// voided, or, with `who`, names a dead process). An unrecorded one is inside.
    fn drained(&self, arrivals: &[Arrival], w: u32, who: Option<&impl Liveness>) -> bool {
        let g = gen_of(w);
        let count = (w & COUNT) as usize;
        half(arrivals, g).iter().take(count).all(|a| {
            // Acquire: pairs with the Release CAS that tagged it.
            let t = a.tag.load(Ordering::Acquire);
            is(t, g, GONE)
                || is(t, g, VOID)
                || (is(t, g, ARRIVED)
                    && who.is_some_and(|who| {
                        let (pid, start) = Self::party(a, t);
                        // Counted gone: tagged so (Release: as in `gone`), so that the
                        // next generation does not take it for one that died passing.
                        who.is_dead(pid, start) && {
                            // (A failed CAS: someone else tagged it gone first.)
                            let _ = a.tag.compare_exchange(
                                t,
                                with_state(t, GONE),
                                Ordering::Release,
                                Ordering::Relaxed,
                            );
                            true
                        }
                    }))
        })
    }

    /// A waiter's look at the parties of generation `g` (module docs, "A party that
    /// dies"): a dead one inside breaks the generation (a dead runner is gone, as one
    /// whose action panicked); one counted and unrecorded for longer than [`GRACE`] is
    /// voided and counts as dead; a reset whose drain only dead parties hold up is
    /// finished.
    fn look(
        &self,
        arrivals: &[Arrival],
        who: &impl Liveness,
        g: u32,
        parties: u32,
        look: &mut Look,
    ) {
        // Acquire: as in `await_release`.
        let w = self.word.load(Ordering::Acquire);
        if gen_of(w) != g {
            return;
        }
        if look.generation != g {
            look.generation = g;
            look.unrecorded.clear();
        }
        let count = w & COUNT;
        let full = count >= parties;
        let mut dead = false;
        let mut runner_dead = false;
        for (c, a) in half(arrivals, g).iter().enumerate().take(count as usize) {
            let c = c as u32;
            if full && c != parties - 1 {
                // A full generation passes whoever else died in it: only its runner
                // matters (voiding another would fail a party the pass releases).
                continue;
            }
            // Acquire: pairs with the Release CAS of `record`.
            let t = a.tag.load(Ordering::Acquire);
            let gone = if is(t, g, ARRIVED) {
                let (pid, start) = Self::party(a, t);
                who.is_dead(pid, start)
            } else if is(t, g, GONE) || is(t, g, VOID) {
                false
            } else {
                // Counted, not recorded: a party between its two steps of arriving.
                // (Under loom any amount of time may have passed: the first sighting
                // may already judge it, so the model covers a live party misjudged.)
                let since = match look.unrecorded.iter().find(|(i, _)| *i == c) {
                    Some(&(_, at)) => at,
                    None => {
                        let now = Instant::now();
                        look.unrecorded.push((c, now));
                        now
                    }
                };
                // Release: pairs with the Acquire load in `record`. Exactly one voider;
                // the party itself cannot record after it.
                time::expired(since.checked_add(GRACE))
                    && a.tag
                        .compare_exchange(t, tag(g, VOID, 0), Ordering::Release, Ordering::Relaxed)
                        .is_ok()
            };
            if gone {
                dead = true;
                if full && c == parties - 1 {
                    runner_dead = true;
                    // Release: as in `leave`.
                    if is(t, g, ARRIVED) {
                        let _ = a.tag.compare_exchange(
                            t,
                            with_state(t, GONE),
                            Ordering::Release,
                            Ordering::Relaxed,
                        );
                    }
                }
            }
        }
        if !full {
            // A party of the previous pass that is dead (killed asleep in it, its pass
            // completed by the others, or killed since): it will never arrive in this one.
            // After a release (`PASSED`) every record of it was counted: one still
            // unrecorded is judged as in this pass (after `GRACE`).
            let prev = g.wrapping_sub(1) & 0xFFFF;
            for (c, a) in half(arrivals, prev).iter().enumerate() {
                // Acquire: pairs with the Release CAS of `record`.
                let t = a.tag.load(Ordering::Acquire);
                if is(t, prev, ARRIVED) {
                    let (pid, start) = Self::party(a, t);
                    dead |= who.is_dead(pid, start);
                } else if w & PASSED != 0 && !is(t, prev, GONE) && !is(t, prev, VOID) {
                    let key = parties + c as u32;
                    let since = match look.unrecorded.iter().find(|(i, _)| *i == key) {
                        Some(&(_, at)) => at,
                        None => {
                            let now = Instant::now();
                            look.unrecorded.push((key, now));
                            now
                        }
                    };
                    // Release: pairs with the Acquire load in `record` (which then
                    // reports the release it was part of).
                    dead |= time::expired(since.checked_add(GRACE))
                        && a.tag
                            .compare_exchange(
                                t,
                                tag(prev, VOID, 0),
                                Ordering::Release,
                                Ordering::Relaxed,
                            )
                            .is_ok();
                }
            }
        }
        // A dead party outside a full generation (whose pass completes without it) breaks
        // the generation; so does a dead runner of the action.
        if dead && (!full || runner_dead) {
            // Not if the pass filled meanwhile (its runner alive): it completes, and a
            // break now would fail the next pass instead.
            self.update(|w| {
                (gen_of(w) == g && w & BROKEN == 0 && !self.full(arrivals, w, parties))
                    .then_some((w | BROKEN) & !SLEEPERS)
            });
            if runner_dead {
                futex::wake_all(&self.word);
            }
        }
        self.finish_reset(arrivals, g, Some(who));
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

    /// Breaks the barrier: every party inside and every later arrival fails, until
    /// [`reset`](Self::reset). A generation whose action is running completes first.
    pub fn abort(&self) {
        self.update(|w| (w & BROKEN == 0).then_some((w | BROKEN) & !SLEEPERS));
    }

    /// Returns the barrier to its initial state. Parties waiting now fail with
    /// [`BarrierError::Broken`]; parties arriving before they have all left wait, then
    /// use the fresh barrier. Parties inside that died count as left (judged by `who`).
    pub fn reset(&self, arrivals: &[Arrival], who: &impl Liveness) {
        // Parties counted and not yet recorded (dead there, or about to record) are voided:
        // they fail as the waiting parties do, and the drain does not wait for them.
        // Acquire: as in `await_release`.
        let w = self.word.load(Ordering::Acquire);
        let g = gen_of(w);
        for a in half(arrivals, g).iter().take((w & COUNT) as usize) {
            // Acquire: pairs with the Release CAS of `record`.
            let t = a.tag.load(Ordering::Acquire);
            if tag_gen(t) != g || tag_state(t) == 0 {
                // Release: pairs with the Acquire loads of `record` and `drained`.
                let _ = a.tag.compare_exchange(
                    t,
                    tag(g, VOID, BY_RESET),
                    Ordering::Release,
                    Ordering::Relaxed,
                );
            }
        }
        self.update(|w| {
            if self.drained(arrivals, w, Some(who)) {
                Some(fresh(w))
            } else if w & RESETTING != 0 {
                None
            } else {
                Some((w | BROKEN | RESETTING) & !SLEEPERS)
            }
        });
    }
}

/// The records of generation `g`: the first half of `arrivals` for even generations, the
/// second for odd ones (so the records of the previous pass survive the current one).
#[inline]
fn half(arrivals: &[Arrival], g: u32) -> &[Arrival] {
    let n = arrivals.len() / 2;
    let start = (g & 1) as usize * n;
    arrivals.get(start..start + n).unwrap_or(&[])
}

/// The word of the fresh generation after `w`.
#[inline]
fn fresh(w: u32) -> u32 {
    (w & !(COUNT | BROKEN | RESETTING | SLEEPERS | PASSED)).wrapping_add(GEN_ONE)
}

/// The liveness schedule of one waiting party: when it looks at the others next, and the
/// model's clock for its naps.
struct Looks {
    schedule: Option<Recheck>,
    next: Option<Instant>,
    since: u64,
    look: Look,
}

impl Looks {
    fn new(who: &impl Liveness) -> Looks {
        let schedule = who.recheck();
        Looks {
            next: schedule.and_then(|r| time::deadline_after(r.interval())),
            schedule,
            since: futex::tick(),
            look: Look::default(),
        }
    }

    /// How long until the next look (`None`: never).
    fn next_in(&self) -> Option<Duration> {
        self.next
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// True when a look is due (and schedules the next, and starts the model's clock of
    /// the nap after it).
    fn due(&mut self) -> bool {
        if self.schedule.is_none() || !time::expired(self.next) {
            return false;
        }
        self.since = futex::tick();
        if let Some(r) = &mut self.schedule {
            r.backoff();
            self.next = time::deadline_after(r.interval());
        }
        true
    }
}

/// A [`Liveness`] for `finish_reset` calls that judge nobody (only `GONE` records count).
struct NoLiveness;

impl Liveness for NoLiveness {
    fn me(&self) -> u32 {
        0
    }
    fn my_start(&self) -> u64 {
        0
    }
    fn my_thread(&self) -> u32 {
        0
    }
    fn is_dead(&self, _: u32, _: u64) -> bool {
        false
    }
}
