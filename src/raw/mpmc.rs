//! The algorithm: a bounded MPMC ring with Vyukov stamps, and its sleep / wake protocol.
//!
//! This is crossbeam's `ArrayQueue` reshaped for shared memory: the state is a
//! `#[repr(C)]` block of fixed-width atomics ([`MpmcRing`]), the slots live in memory the
//! ring does not own (reached through the [`Slots`] trait, so that a loom model can supply
//! its own), and an operation is split into a *claim* and a *publish* / *release*, which
//! is what lets a handle write or read a message in place (the zero-copy loans).
//!
//! # Indices and stamps
//!
//! With `cap` slots, `mark_bit = (cap + 1).next_power_of_two()` and `one_lap = 2 *
//! mark_bit`. `head` and `tail` are `{ lap, mark, index }` packed in a `u64`:
//!
//! | bits                         | field  | meaning                                   |
//! |------------------------------|--------|-------------------------------------------|
//! | `0 .. log2(mark_bit)`        | index  | the slot, `< cap`                         |
//! | `log2(mark_bit)`             | mark   | `tail` only: the queue is closed          |
//! | above                        | lap    | how many times the ring has wrapped       |
//!
//! Each slot has a stamp (a `u64` of the same shape, never marked). For the slot at `index`
//! and a position `p = { lap, index }`:
//!
//! | stamp            | state of the slot                                          |
//! |------------------|------------------------------------------------------------|
//! | `p`              | free: a producer whose `tail == p` may claim it            |
//! | `p + 1`          | full: a consumer whose `head == p` may claim it            |
//! | `p + one_lap`    | released by the consumer of `p`: free for the next lap     |
//! | `p + 1 + mark`   | published *empty* (a dropped put loan): consumers skip it  |
//!
//! Seen from a producer at `tail == p`, a stamp `p - one_lap` (the previous lap's
//! producer has not published yet) or `p + 1 - one_lap` (the previous lap's message is
//! not consumed yet) both mean "full for now"; seen from a consumer at `head == p`, a
//! stamp `p` (not published yet) or `p + 1 - one_lap` (the previous lap's consumer has
//! not released yet) both mean "empty for now". A blocking claim sleeps on them and is
//! woken by the publish / release that ends them. In these comparisons the stamp of a
//! skipped slot counts as published: only the consumer that claims it looks at its mark.
//!
//! A put loan dropped without a commit must still publish its slot (the ring cannot go
//! back), but with nothing in it: it stores `p + 1` with the mark bit set
//! ([`MpmcRing::publish_skip`]), and the consumer that claims it gets a [`Claim`] that
//! [`is_skip`](Claim::is_skip), releases it and moves on. The mark cannot carry into the
//! lap: `p + 1`'s index field is at most `cap < mark_bit`. Keeping the skip in the stamp
//! lets a slot be just the stamp and the message (16 bytes for a `u64`), where a separate
//! flag word would make it 24 and cost a third more cache lines per message.
//!
//! A producer claims by CAS-ing `tail` forward, writes the slot, then *publishes* by
//! storing `p + 1` (Release). A consumer claims by CAS-ing `head` forward, reads the slot,
//! then *releases* it by storing `p + one_lap` (Release). Between claim and publish /
//! release the slot belongs to one party: that window is a loan. Every claim first makes
//! one attempt at the common case, inlined into its caller (`push_fast` / `pop_fast`: the
//! slot is ready, is not the last of its lap, and the CAS wins); anything else goes to the
//! full loop (`push_step` / `pop_step`), which retries, backs off and tells the cases
//! apart.
//!
//! Every index read from shared memory is checked (`index < cap`) before it reaches
//! [`Slots::stamp`]. A stamp whose index field is neither the slot's index nor the next
//! one can only come from a corrupted ring, and is reported as
//! [`MpmcError::Corrupt`]; so is a claim that keeps retrying for millions of rounds.
//!
//! # Sleeping and waking
//!
//! | word          | bumped by                                   | waited on by        |
//! |---------------|---------------------------------------------|---------------------|
//! | `not_empty`   | a publish whose claim saw `get_waiters`     | consumers (`pop_*`) |
//! | `not_full`    | a release whose claim saw `put_waiters`     | producers (`push_*`)|
//! | `done_seq`    | the last `task_done`                        | `join`              |
//!
//! The wake-up is decided at *claim* time, not at publish time. A side that must wait
//! spins for a while ([`SpinPolicy`]), then: reads the futex word, registers in the waiter
//! count, issues a SeqCst fence and looks again. A claimer reads the other side's waiter
//! count right after its claim's SeqCst CAS (`registered`); if a party is waiting, the
//! publish / release that ends the claim signals one (unless all were signalled since:
//! see `Waiters`), bumps the word and calls `futex_wake`. Fence and CAS are
//! in one total order, so a waiter that sees the claim it needs is *not yet made* (the
//! `tail` still at its `head`, or the `head` still a lap behind its `tail`) knows that
//! claim will see its registration, and sleeps until woken. One that sees the claim
//! already made cannot know whether the claimer looked before it registered: it *naps*
//! (a futex wait of 50 µs, doubling to 10 ms) and looks again, because a claim normally
//! ends within nanoseconds, but a loan, or a process the scheduler paused, can hold it
//! longer. So the uncontended path makes no system call, and no wake-up is lost.
//!
//! Why not the plain Dekker handshake (a fence after every publish / release, then a look
//! at the waiter count)? That fence was the one cost a lock-free queue without sleepers
//! (crossbeam's `ArrayQueue`) does not pay: it stalls until the stamp's store owns its
//! cache line, and made 2 producers and 2 consumers ~2x slower than crossbeam. A claim
//! already has a locked instruction (the CAS) to order its look by; on x86-64 the look is
//! a plain load. Moving the fence to the waiter with
//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` (an asymmetric fence) was measured and
//! rejected: it IPIs the peer's CPU, ~10 µs per sleep on these KVM guests.
//!
//! `loom-tests/tests/queue.rs` model-checks this. Loom has no clock, so there a nap ends
//! when another thread reports progress (a publish or release), see [`futex::nap`].
//!
//! `close` sets the mark bit in `tail` and wakes every sleeper on both words.

use crate::raw::Side;
use crate::sync::futex::{self, WaitResult};
use crate::sync::spin::{Backoff, Round, SpinPolicy};
use crate::sync::wait::{EventCount, Recheck};
use crate::sync::{fence, time, AtomicU32, AtomicU64, Ordering};
use std::fmt;
use std::time::Instant;

/// A producer that found the ring full waits, while it spins, until this many slots
/// (at most a quarter of the ring) are free, rather than taking each slot the moment it
/// frees: a put that follows the consumer slot by slot moves a cache line per message.
const SLACK: u64 = 32;

/// The largest capacity a ring may have.
pub const MAX_CAPACITY: u64 = 1 << 31;

/// Where the slots' stamps live. The ring never touches a slot's payload; the handle does,
/// between a claim and its publish / release.
pub trait Slots {
    /// Number of slots (`1 ..= MAX_CAPACITY`). Must not change for the life of the ring.
    fn capacity(&self) -> u64;
    /// The stamp of slot `index`. The ring only calls this with `index < capacity()`.
    fn stamp(&self, index: u64) -> &AtomicU64;
    /// `(capacity() + 1).next_power_of_two()`, the mark bit of `tail`. Every claim needs
    /// it: an implementation may cache it, and must return exactly this.
    #[inline]
    fn mark_bit(&self) -> u64 {
        mark_bit(self.capacity())
    }
}

/// The initial stamp of slot `index` (lap 0, free).
#[inline]
pub const fn initial_stamp(index: u64) -> u64 {
    index
}

/// A slot claimed by [`MpmcRing::try_push_claim`] / [`MpmcRing::try_pop_claim`], to be
/// handed back to [`MpmcRing::publish`] / [`MpmcRing::release`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a claimed slot blocks the ring until it is published or released"]
pub struct Claim {
    /// The slot, `< capacity`.
    pub index: u64,
    /// The stamp to store when the claim ends.
    stamp: u64,
    /// Pop claims only: the slot was published empty (a dropped put loan).
    skip: bool,
    /// A party of the other side was registered to sleep when this claim was made: the
    /// publish / release that ends it wakes one.
    wake: bool,
}

impl Claim {
    /// True for a pop claim on a slot published empty by [`MpmcRing::publish_skip`]: there
    /// is no message in it; release it and pop again.
    #[inline]
    pub fn is_skip(&self) -> bool {
        self.skip
    }
}

/// Why a ring operation did not claim a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpmcError {
    /// Push: no free slot (or the next one is still being read). Blocking: the deadline
    /// passed.
    Full,
    /// Pop: no published message (or the next one is still being written). Blocking: the
    /// deadline passed.
    Empty,
    /// The ring is closed (push), or closed and drained (pop).
    Closed,
    /// An index or a stamp in shared memory is impossible: the ring was corrupted.
    Corrupt,
}

/// Why a claim stopped short, as the blocking path needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Pop: nothing published at position `head` yet (empty, or its producer is writing).
    NeedPublish(u64),
    /// Push: the slot for position `tail` still holds the previous lap's message (full, or
    /// its consumer is reading it).
    NeedRelease(u64),
    /// Our slot is held by the previous lap's producer (push) or consumer (pop), which
    /// has claimed it and not finished: wait for its publish or release.
    Lap,
    Closed,
    Corrupt,
}

impl Stop {
    fn must_wait(self) -> bool {
        matches!(
            self,
            Stop::NeedPublish(_) | Stop::NeedRelease(_) | Stop::Lap
        )
    }

    fn for_push(self) -> MpmcError {
        match self {
            Stop::NeedRelease(_) | Stop::Lap => MpmcError::Full,
            Stop::Closed => MpmcError::Closed,
            Stop::NeedPublish(_) | Stop::Corrupt => MpmcError::Corrupt,
        }
    }

    fn for_pop(self) -> MpmcError {
        match self {
            Stop::NeedPublish(_) | Stop::Lap => MpmcError::Empty,
            Stop::Closed => MpmcError::Closed,
            Stop::NeedRelease(_) | Stop::Corrupt => MpmcError::Corrupt,
        }
    }
}

/// Aligns its content to its own 128-byte line (two x86 cache lines: the adjacent-line
/// prefetcher pulls pairs).
#[repr(C, align(128))]
struct Padded<T>(T);

/// The futex words and waiter counts of the sleep / wake protocol.
#[repr(C)]
struct Wake {
    /// Bumped (then woken) when a message was published and a consumer may sleep.
    not_empty: EventCount,
    /// Consumers registered to sleep on `not_empty` (a [waiter count](Waiters)).
    get_waiters: AtomicU32,
    /// Bumped (then woken) when a slot was released and a producer may sleep.
    not_full: EventCount,
    /// Producers registered to sleep on `not_full` (a [waiter count](Waiters)).
    put_waiters: AtomicU32,
    /// 1 once `close` has marked the tail. A copy of the mark on a line that no hot path
    /// writes, so that a consumer spinning on an empty ring does not pull the producers'
    /// `tail` line into its cache on every look.
    closed: AtomicU32,
    /// Unused (layout version 2 kept a third futex word and count here, for parties
    /// waiting on the previous lap's claim: they nap now); keeps the layout's size.
    _reserved: [u32; 3],
}

/// JoinableQueue's task counter.
#[repr(C)]
struct Join {
    /// Items put and not yet marked done.
    unfinished: AtomicU64,
    /// Bumped (then woken) when `unfinished` reaches 0 and a joiner may sleep.
    done_seq: EventCount,
    /// Joiners registered to sleep on `done_seq`.
    join_waiters: AtomicU32,
}

/// The shared state of a ring: head, tail, the sleep / wake words and the task counter.
/// All zero is an empty, open ring (the slots' stamps must be set to
/// [`initial_stamp`]). See the [module docs](self) for the protocol.
#[repr(C)]
pub struct MpmcRing {
    head: Padded<AtomicU64>,
    tail: Padded<AtomicU64>,
    wake: Padded<Wake>,
    join: Padded<Join>,
}

// SAFETY: `#[repr(C)]`, aligned to at most 128; atomic words only; every index and stamp read from them is checked against the caller's validated capacity before it reaches a slot.
unsafe impl crate::raw::SharedState for MpmcRing {}

#[cfg(not(shmproc_loom))]
mod layout_checks {
    use super::*;
    use static_assertions::const_assert_eq;
    const_assert_eq!(core::mem::size_of::<MpmcRing>(), 512);
    const_assert_eq!(core::mem::offset_of!(MpmcRing, head), 0);
    const_assert_eq!(core::mem::offset_of!(MpmcRing, tail), 128);
    const_assert_eq!(core::mem::offset_of!(MpmcRing, wake), 256);
    const_assert_eq!(core::mem::offset_of!(MpmcRing, join), 384);
    const_assert_eq!(core::mem::size_of::<Wake>(), 32);
    const_assert_eq!(core::mem::size_of::<Join>(), 16);
}

impl Default for MpmcRing {
    fn default() -> Self {
        Self::new()
    }
}

/// The mark bit of `tail` for a ring of `cap` slots: `(cap + 1).next_power_of_two()`.
#[inline]
pub(crate) const fn mark_bit(cap: u64) -> u64 {
    (cap + 1).next_power_of_two()
}

/// `(mark_bit, one_lap)` of the ring over `s`.
#[inline]
fn geometry(s: &impl Slots) -> (u64, u64) {
    let mark_bit = s.mark_bit();
    (mark_bit, mark_bit * 2)
}

/// The position after `pos` (whose slot is `index`): the next slot of the same lap, or
/// slot 0 of the next lap.
#[inline(always)]
fn next_position(pos: u64, index: u64, cap: u64, one_lap: u64) -> u64 {
    if index + 1 < cap {
        pos.wrapping_add(1)
    } else {
        (pos & !(one_lap - 1)).wrapping_add(one_lap)
    }
}

/// True if `stamp` (its mark cleared) could be a stamp of the slot at `index`: its index
/// field is `index` (free, released) or `index + 1` (published).
#[inline]
fn stamp_fits(stamp: u64, index: u64, mark_bit: u64) -> bool {
    let ix = stamp & (mark_bit - 1);
    ix == index || ix == index + 1
}

/// Slots between `head` and `tail` (crossbeam's `len` arithmetic), at most `cap`. The
/// mark in `tail` is ignored.
#[inline]
fn occupancy(head: u64, tail: u64, cap: u64, mark_bit: u64) -> u64 {
    let tail = tail & !mark_bit;
    let (hix, tix) = (head & (mark_bit - 1), tail & (mark_bit - 1));
    let n = if hix < tix {
        tix - hix
    } else if hix > tix {
        cap.saturating_sub(hix) + tix
    } else if tail == head {
        0
    } else {
        cap
    };
    n.min(cap)
}

/// Right after a claim's SeqCst CAS on `head` / `tail`: is a party of the other side
/// registered to sleep on `waiters`? Then the publish / release that ends the claim wakes
/// one.
///
/// SYNC POINT (claim / sleeping waiter): pairs with the fence in `MpmcRing::wait_for`,
/// issued between a waiter's registration and its look at the index we just moved
/// (`MpmcRing::claim_is_ahead`). Either the waiter's look sees our claim (and it naps), or
/// this load sees its registration. In the C++20 model a SeqCst load right after the
/// SeqCst CAS is enough: the waiter's look read an older index than our CAS, so its fence
/// precedes the CAS in the single total order ([atomics.order] p4.3), the CAS precedes
/// this load, and a load that missed the registration would have to precede the fence
/// (p4.2). On x86-64 that load is a plain `mov` after the locked CAS, where a fence would
/// cost a second locked instruction per claim. Loom models SeqCst loads as Acquire
/// (tokio-rs/loom#180), so under loom the same edge is spelled as a SeqCst fence and a
/// Relaxed load, which the fence rules (p4.4) make equivalent.
///
/// Only waiters not yet signalled count: one that another party has signalled is awake or
/// about to be, and looks again before it sleeps (see [`Waiters`]).
#[inline]
fn registered(waiters: &AtomicU32) -> bool {
    #[cfg(not(shmproc_loom))]
    {
        Waiters::waiting(waiters.load(Ordering::SeqCst)) != 0
    }
    #[cfg(shmproc_loom)]
    {
        fence(Ordering::SeqCst);
        // Relaxed: ordered by the fence above.
        Waiters::waiting(waiters.load(Ordering::Relaxed)) != 0
    }
}

/// The waiter count of one side (`get_waiters`, `put_waiters`): one `u32` with the
/// parties registered to sleep and not yet signalled (`waiting`, low half) and the
/// signals handed out and not yet taken (`signalled`, high half).
///
/// | step                                   | waiting | signalled |
/// |----------------------------------------|---------|-----------|
/// | a party registers ([`register`](Self::register)) | +1 |        |
/// | a waker signals one ([`signal`](Self::signal))   | -1 | +1     |
/// | a party stops waiting ([`leave`](Self::leave))   | -1 if no signal is out | -1 if one is |
///
/// A waker that ends a claim made while a party was waiting signals one before it calls
/// `futex_wake`, and calls it only if there was one left to signal. So while a woken
/// party is on its way out of the kernel (tens of µs on these machines), the claims that
/// follow see nobody waiting and make no system call. (Before, each of them woke again:
/// with parties that sleep at once, 2 producers and 2 consumers made ~45,000 `futex_wake`
/// calls per million messages, ~260 per sleep.)
///
/// Signals are not addressed: `futex_wake` wakes whichever party the kernel picks, and a
/// party that leaves for another reason (it timed out, napped, or found the value already
/// bumped) takes a signal if one is out, in place of the woken party's. The sum of the
/// two halves is the number of parties between `register` and `leave`, so a party that
/// leaves always has one of the two to take, and a party still asleep is either counted
/// in `waiting` (the next claim wakes it) or covered by a signal whose `futex_wake` is
/// still to come or has already picked it. A party counted by a signal read its futex
/// word before it registered, so the signal's bump makes its `futex_wait` return at once
/// if it was not yet in the kernel. `loom-tests/tests/queue.rs` checks this with two
/// sleeping consumers (`two_sleeping_consumers_two_messages`); a waker that skips its wake
/// while a signal is out deadlocks that model.
struct Waiters;

impl Waiters {
    /// One party registered and not signalled.
    const WAITING: u32 = 1;
    /// One signal out.
    const SIGNALLED: u32 = 1 << 16;
    /// The largest value of either half.
    const HALF: u32 = 0xffff;

    #[inline]
    fn waiting(w: u32) -> u32 {
        w & Self::HALF
    }

    #[inline]
    fn signalled(w: u32) -> u32 {
        w >> 16
    }

    /// Registers a party about to sleep. False if 65,535 are already waiting: the party
    /// then naps without registering (it wakes by itself and looks again).
    fn register(count: &AtomicU32) -> bool {
        // Relaxed: a count; the caller's SeqCst fence orders it before its look (SYNC
        // POINT with `registered`).
        count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                // `then`, not `then_some`: the sum must not be computed when it could
                // overflow (a peer may have written the word).
                (Self::waiting(w) < Self::HALF).then(|| w + Self::WAITING)
            })
            .is_ok()
    }

    /// Signals one waiting party; true if there was one (then the caller wakes one).
    fn signal(count: &AtomicU32) -> bool {
        // Relaxed: a count; the wake-up itself is ordered by the bump of the futex word.
        let r = count.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
            // With no room to count the signal, wake without it (the woken party then
            // leaves by its own registration).
            // `then`, not `then_some`: with nobody waiting, `w - WAITING` must not be
            // computed (it underflows).
            (Self::waiting(w) != 0 && Self::signalled(w) < Self::HALF)
                .then(|| w - Self::WAITING + Self::SIGNALLED)
        });
        match r {
            Ok(_) => true,
            Err(w) => Self::waiting(w) != 0,
        }
    }

    /// A registered party stops waiting: it takes a signal if one is out, else its own
    /// registration. (Neither: only a peer that wrote the word can cause that; nothing
    /// is taken.)
    fn leave(count: &AtomicU32) {
        // Relaxed: a count (see `signal`).
        let _ = count.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
            if Self::signalled(w) != 0 {
                Some(w - Self::SIGNALLED)
            } else {
                w.checked_sub(Self::WAITING)
            }
        });
    }
}

/// Counts the retries of one claim. A retry happens when another party moved the index
/// or when we read a stamp older than the latest; both resolve in a few rounds. A stamp
/// that fits the slot but belongs to an impossible lap (a corrupted ring) would make the
/// claim retry forever: after `LIMIT` rounds (far beyond any real race) it is reported as
/// corruption. The model checker has no such bound: it must see every retry resolve.
#[derive(Default)]
struct Stuck(u32);

impl Stuck {
    #[cfg(not(shmproc_loom))]
    const LIMIT: u32 = 1 << 22;

    #[inline]
    fn tick(&mut self) -> bool {
        #[cfg(not(shmproc_loom))]
        {
            self.0 += 1;
            self.0 >= Self::LIMIT
        }
        #[cfg(shmproc_loom)]
        {
            let _ = self.0;
            false
        }
    }
}

impl MpmcRing {
    /// An empty, open ring (all zero).
    pub fn new() -> Self {
        MpmcRing {
            head: Padded(AtomicU64::new(0)),
            tail: Padded(AtomicU64::new(0)),
            wake: Padded(Wake {
                not_empty: EventCount::new(),
                get_waiters: AtomicU32::new(0),
                not_full: EventCount::new(),
                put_waiters: AtomicU32::new(0),
                closed: AtomicU32::new(0),
                _reserved: [0; 3],
            }),
            join: Padded(Join {
                unfinished: AtomicU64::new(0),
                done_seq: EventCount::new(),
                join_waiters: AtomicU32::new(0),
            }),
        }
    }

    // -----------------------------------------------------------------------------------
    // Claims, without waiting.

    /// Claims the next free slot for writing, without waiting.
    ///
    /// # Errors
    /// [`MpmcError::Full`] (also while the consumer of the previous lap still reads the
    /// slot), [`MpmcError::Closed`], [`MpmcError::Corrupt`].
    #[inline(always)]
    pub fn try_push_claim(&self, s: &impl Slots) -> Result<Claim, MpmcError> {
        match self.push_fast(s) {
            Some(c) => Ok(c),
            None => self.try_push_claim_slow(s),
        }
    }

    #[inline(never)]
    fn try_push_claim_slow(&self, s: &impl Slots) -> Result<Claim, MpmcError> {
        self.push_step(s).map_err(Stop::for_push)
    }

    /// The common case of a push claim, one attempt: the tail is open and in range, its
    /// slot is free for this lap, and the CAS wins. `None` for anything else (full, a
    /// lost race, closed, corrupt), with nothing done: the caller then takes the full
    /// path (`push_step`), which decides. Inlined into every put, where the full path is
    /// not: the full loop, with its backoff and corruption checks, saved and restored six
    /// registers per call (see `Queue::put_with` for what that cost).
    #[inline(always)]
    pub fn push_fast(&self, s: &impl Slots) -> Option<Claim> {
        self.claim_fast(s, Side::Producer)
    }

    // Always inlined, here and in `pop_step`: out of line, the `Result<Claim, Stop>` went
    // back through memory, and the caller read it in pieces wider than the callee's
    // stores (a store-forwarding stall). The blocking `get` (whose caller is bigger, with
    // its wait path) was not inlined and paid it: 10.8 ns per uncontended `u64` get
    // against `try_get`'s 5.2, which made a consumer the bottleneck of every throughput
    // run (the blocking MPMC pair measured ~2.4x crossbeam; now it tracks the
    // try-and-yield loop, 1.2-1.8x over eight runs).
    #[inline(always)]
    fn push_step(&self, s: &impl Slots) -> Result<Claim, Stop> {
        let cap = s.capacity();
        let (mark_bit, one_lap) = geometry(s);
        // Relaxed: only a guess; the CAS below (and the stamp's Acquire) decide.
        let mut tail = self.tail.0.load(Ordering::Relaxed);
        let mut stuck = Stuck::default();
        let mut backoff = Backoff::default();
        loop {
            if tail & mark_bit != 0 {
                return Err(Stop::Closed);
            }
            let index = tail & (mark_bit - 1);
            if index >= cap {
                return Err(Stop::Corrupt);
            }
            let new_tail = next_position(tail, index, cap, one_lap);
            // SYNC POINT "slot released" (the producer's half). Acquire: pairs with the
            // Release store in `release` of the consumer of the previous lap, so its reads
            // of the slot are done before we write it.
            let stamp = s.stamp(index).load(Ordering::Acquire);
            // A skipped slot is a published one here (module docs).
            let unmarked = stamp & !mark_bit;
            if stamp == tail {
                // SeqCst: the tail is part of the total order that `len` and `close`
                // rely on. Relaxed on failure: the value read is only the next guess (the
                // stamp's Acquire load orders the retry).
                match self.tail.0.compare_exchange_weak(
                    tail,
                    new_tail,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        return Ok(Claim {
                            index,
                            stamp: tail.wrapping_add(1),
                            skip: false,
                            wake: registered(&self.wake.0.get_waiters),
                        })
                    }
                    Err(t) => {
                        tail = t;
                        backoff.spin();
                        continue;
                    }
                }
            }
            if unmarked.wrapping_add(one_lap) == tail.wrapping_add(1) {
                // The slot still holds the previous lap's message: full, unless the head
                // has moved on and a consumer is reading it right now. Either way there
                // is nothing to claim yet (a stale `tail` cannot lead here: no producer
                // can claim past a slot that still holds the previous lap's message).
                return Err(Stop::NeedRelease(tail));
            }
            if stamp.wrapping_add(one_lap) == tail {
                // The producer of the previous lap claimed this slot and has not published
                // it yet (a put loan, or a producer paused mid-put): after it publishes, a
                // consumer must release it before we can write. That producer claimed long
                // ago, so it may not know of us: we nap (`wait_for`).
                return Err(Stop::Lap);
            }
            // Our tail or our stamp is stale (another producer moved on, or we read an
            // older stamp than the latest): look again, unless the stamp is impossible.
            if !stamp_fits(unmarked, index, mark_bit) || stuck.tick() {
                return Err(Stop::Corrupt);
            }
            backoff.spin();
            // Relaxed: as above.
            tail = self.tail.0.load(Ordering::Relaxed);
        }
    }

    /// Claims the oldest published message for reading, without waiting.
    ///
    /// # Errors
    /// [`MpmcError::Empty`] (also while its producer still writes the next slot),
    /// [`MpmcError::Closed`] when closed and drained, [`MpmcError::Corrupt`].
    #[inline(always)]
    pub fn try_pop_claim(&self, s: &impl Slots) -> Result<Claim, MpmcError> {
        match self.pop_fast(s) {
            Some(c) => Ok(c),
            None => self.try_pop_claim_slow(s),
        }
    }

    #[inline(never)]
    fn try_pop_claim_slow(&self, s: &impl Slots) -> Result<Claim, MpmcError> {
        self.pop_step(s).map_err(Stop::for_pop)
    }

    /// The common case of a pop claim, one attempt: the slot at `head` holds a message
    /// of this lap (not a skipped loan) and the CAS wins. `None` for anything else, with
    /// nothing done (see `push_fast`).
    #[inline(always)]
    pub fn pop_fast(&self, s: &impl Slots) -> Option<Claim> {
        self.claim_fast(s, Side::Consumer)
    }

    /// `push_fast` / `pop_fast`: one side's index, the stamp its slot must hold (`pos`:
    /// free; `pos + 1`: published, exactly, so a skipped slot takes the full path) and the
    /// stamp that ends the claim (`pos + 1`: published; `pos + one_lap`: released). Only
    /// claims that stay within the lap (`pos + 1` is the next position).
    #[inline(always)]
    fn claim_fast(&self, s: &impl Slots, side: Side) -> Option<Claim> {
        let cap = s.capacity();
        let (_, one_lap) = geometry(s);
        let (at, ready, done, other_waiters) = match side {
            Side::Producer => (&self.tail.0, 0, 1, &self.wake.0.get_waiters),
            Side::Consumer => (&self.head.0, 1, one_lap, &self.wake.0.put_waiters),
        };
        // Relaxed: only a guess; the CAS below (and the stamp's Acquire) decide.
        let pos = at.load(Ordering::Relaxed);
        // The index with the mark bit: one comparison turns away a closed tail (a marked
        // index is at least `mark_bit > cap`), an index out of range, and the last slot of
        // a lap, whose next position is the next lap's first (the full path takes it, once
        // per lap; a ring of one slot always). Every other claim moves to `pos + 1`, where
        // `next_position` chose between the two with a conditional move in every claim.
        // `saturating_sub` rather than `cap - 1`: from it the compiler knows `index <
        // cap`, and drops the slot accessor's own bounds check.
        let index = pos & (one_lap - 1);
        if index >= cap.saturating_sub(1) {
            return None;
        }
        // SYNC POINT "slot released" (push) or "slot published" (pop): the Acquire half,
        // as in `push_step` / `pop_step`.
        if s.stamp(index).load(Ordering::Acquire) != pos.wrapping_add(ready) {
            return None;
        }
        // SeqCst: as in `push_step` / `pop_step`. Relaxed on failure: the value read is
        // not used (the full path starts over).
        at.compare_exchange_weak(
            pos,
            pos.wrapping_add(1),
            Ordering::SeqCst,
            Ordering::Relaxed,
        )
        .ok()?;
        Some(Claim {
            index,
            stamp: pos.wrapping_add(done),
            skip: false,
            wake: registered(other_waiters),
        })
    }

    // Always inlined: see `push_step`.
    #[inline(always)]
    fn pop_step(&self, s: &impl Slots) -> Result<Claim, Stop> {
        let cap = s.capacity();
        let (mark_bit, one_lap) = geometry(s);
        // Relaxed: only a guess; the CAS below (and the stamp's Acquire) decide.
        let mut head = self.head.0.load(Ordering::Relaxed);
        let mut stuck = Stuck::default();
        let mut backoff = Backoff::default();
        loop {
            let index = head & (mark_bit - 1);
            if index >= cap || head & mark_bit != 0 {
                return Err(Stop::Corrupt);
            }
            // SYNC POINT "slot published" (the consumer's half). Acquire: pairs with the
            // Release store in `publish`: the message written before it is visible to us.
            let stamp = s.stamp(index).load(Ordering::Acquire);
            // A skipped slot is a published one here (module docs).
            let unmarked = stamp & !mark_bit;
            if unmarked == head.wrapping_add(1) {
                let new_head = next_position(head, index, cap, one_lap);
                // SeqCst: see `push_step`. Relaxed on failure: as there.
                match self.head.0.compare_exchange_weak(
                    head,
                    new_head,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        return Ok(Claim {
                            index,
                            stamp: head.wrapping_add(one_lap),
                            skip: stamp != unmarked,
                            wake: registered(&self.wake.0.put_waiters),
                        })
                    }
                    Err(h) => {
                        head = h;
                        backoff.spin();
                        continue;
                    }
                }
            }
            if stamp == head {
                // Nothing published here yet: empty, or a producer holds a claim on this
                // slot. Closed and drained? Only worth asking once `closed` is set.
                // SYNC POINT "closed flag". Acquire: pairs with the Release store of
                // `closed` in `close`, which follows the tail's mark: seeing the flag, we
                // see the mark.
                if self.wake.0.closed.load(Ordering::Acquire) != 0 {
                    // Relaxed: ordered after the flag by the Acquire above.
                    let tail = self.tail.0.load(Ordering::Relaxed);
                    if tail & !mark_bit == head {
                        return Err(Stop::Closed);
                    }
                }
                return Err(Stop::NeedPublish(head));
            }
            if unmarked.wrapping_add(one_lap) == head.wrapping_add(1) {
                // The previous lap's message is still being read by its consumer (a get
                // loan, or a consumer paused mid-get): after it releases the slot, a
                // producer must publish into it. That consumer claimed long ago, so it may
                // not know of us: we nap (`wait_for`).
                return Err(Stop::Lap);
            }
            // Stale head or stale stamp: look again, unless the stamp is impossible.
            if !stamp_fits(unmarked, index, mark_bit) || stuck.tick() {
                return Err(Stop::Corrupt);
            }
            backoff.spin();
            // Relaxed: as above.
            head = self.head.0.load(Ordering::Relaxed);
        }
    }

    /// Ends a push claim: the message written in the slot becomes visible to consumers.
    /// Wakes a sleeping consumer if the claim saw one registered (no system call
    /// otherwise).
    #[inline]
    pub fn publish(&self, s: &impl Slots, claim: Claim) {
        // SYNC POINT "slot published" (the producer's half). Release: pairs with the
        // Acquire stamp loads in `pop_step` and `claim_fast`: our writes to the slot happen
        // before the consumer's reads.
        s.stamp(claim.index).store(claim.stamp, Ordering::Release);
        futex::progress();
        // The claim saw a registered consumer (`registered`, SYNC POINT with `wait_for`):
        // wake one, unless every waiting consumer was signalled since (`Waiters`).
        if claim.wake {
            self.signal_and_wake(&self.wake.0.get_waiters, &self.wake.0.not_empty);
        }
    }

    /// Ends a push claim without a message: the slot is published *skipped*, and the
    /// consumer that claims it releases it and pops again (a dropped put loan).
    #[inline]
    pub fn publish_skip(&self, s: &impl Slots, claim: Claim) {
        let mark_bit = s.mark_bit();
        self.publish(
            s,
            Claim {
                stamp: claim.stamp | mark_bit,
                ..claim
            },
        );
    }

    /// Ends a pop claim: the slot is free for the next lap. Wakes a sleeping producer if
    /// the claim saw one registered (no system call otherwise).
    #[inline]
    pub fn release(&self, s: &impl Slots, claim: Claim) {
        // SYNC POINT "slot released" (the consumer's half). Release: pairs with the
        // Acquire stamp loads in `push_step` and `claim_fast`: our reads of the slot happen
        // before the next producer's writes.
        s.stamp(claim.index).store(claim.stamp, Ordering::Release);
        futex::progress();
        // The claim saw a registered producer (see `publish`).
        if claim.wake {
            self.signal_and_wake(&self.wake.0.put_waiters, &self.wake.0.not_full);
        }
    }

    /// The end of a claim that saw a party of the other side registered on `waiters`:
    /// signals one and wakes it on `word`, unless every waiting party was signalled since
    /// ([`Waiters`]). Out of line: a publish / release without sleepers stays a store and
    /// a test.
    #[cold]
    fn signal_and_wake(&self, waiters: &AtomicU32, word: &EventCount) {
        if Waiters::signal(waiters) {
            word.notify_one();
        }
    }

    // -----------------------------------------------------------------------------------
    // Blocking claims.

    /// Claims a free slot, waiting while the ring is full: spin as `spin` says, then sleep,
    /// until `deadline` (`None`: forever).
    ///
    /// # Errors
    /// [`MpmcError::Full`] at the deadline, [`MpmcError::Closed`], [`MpmcError::Corrupt`].
    #[inline]
    pub fn push_claim(
        &self,
        s: &impl Slots,
        deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> Result<Claim, MpmcError> {
        if let Some(c) = self.push_fast(s) {
            return Ok(c);
        }
        match self.push_step(s) {
            Ok(c) => Ok(c),
            Err(e) if e.must_wait() => {
                let cap = s.capacity();
                let slack = (cap / 4).clamp(1, SLACK);
                self.wait_for(
                    Side::Producer,
                    geometry(s),
                    || self.push_step(s),
                    || self.free_guess(s) >= slack,
                    deadline,
                    spin,
                )
                .map_err(Stop::for_push)
            }
            Err(e) => Err(e.for_push()),
        }
    }

    /// Claims the oldest message, waiting while the ring is empty: spin as `spin` says,
    /// then sleep, until `deadline` (`None`: forever).
    ///
    /// # Errors
    /// [`MpmcError::Empty`] at the deadline, [`MpmcError::Closed`] when closed and
    /// drained, [`MpmcError::Corrupt`].
    #[inline]
    pub fn pop_claim(
        &self,
        s: &impl Slots,
        deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> Result<Claim, MpmcError> {
        if let Some(c) = self.pop_fast(s) {
            return Ok(c);
        }
        match self.pop_step(s) {
            Ok(c) => Ok(c),
            Err(e) if e.must_wait() => self
                .wait_for(
                    Side::Consumer,
                    geometry(s),
                    || self.pop_step(s),
                    || true,
                    deadline,
                    spin,
                )
                .map_err(Stop::for_pop),
            Err(e) => Err(e.for_pop()),
        }
    }

    /// The slow path of both blocking claims: `attempt` stops with a [`Stop`] that says
    /// where it waits; `side` names the futex word and the waiter count to sleep on.
    #[cold]
    fn wait_for(
        &self,
        side: Side,
        geo: (u64, u64),
        mut attempt: impl FnMut() -> Result<Claim, Stop>,
        mut worth_it: impl FnMut() -> bool,
        deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> Result<Claim, Stop> {
        // A look reads only shared lines until something changes (`SpinPolicy::spin`).
        let spun = spin.spin(|| {
            if !worth_it() {
                return None;
            }
            match attempt() {
                Err(e) if e.must_wait() => None,
                r => Some(r),
            }
        });
        if let Some(r) = spun {
            return r;
        }
        let w = &self.wake.0;
        let (word, waiters) = match side {
            Side::Consumer => (&w.not_empty, &w.get_waiters),
            Side::Producer => (&w.not_full, &w.put_waiters),
        };
        // A waiter whose party had already claimed when it registered naps (and so may
        // never be woken): on the claim schedule, 50 µs doubling to 10 ms.
        let mut nap = Recheck::CLAIM;
        loop {
            // The model's clock, before the look that may decide to nap (`futex::nap`).
            let since = futex::tick();
            // Read before the re-check below (SYNC POINT "event count"), so a bump after
            // the re-check changes the word and the wait will not sleep on a stale value.
            let seq = word.key();
            let registered = Waiters::register(waiters);
            // SYNC POINT (waiter / claim): pairs with `registered`, right after the claim
            // CAS of the other side, and with the fence in `close`.
            fence(Ordering::SeqCst);
            let why = match attempt() {
                Err(e) if e.must_wait() => e,
                r => {
                    if registered {
                        Waiters::leave(waiters);
                    }
                    return r;
                }
            };
            // Sleep until woken if the claim that ends our wait is still to come: it
            // comes after our fence and sees our registration. If it was made already, it
            // may have looked before we registered: nap, and look again. (So does a party
            // that found no room to register.)
            let res = if registered && self.claim_is_ahead(why, geo) {
                word.wait(seq, deadline)
            } else {
                // A nap: the claimer normally finishes within nanoseconds, but a loan, or
                // a process the scheduler paused, can hold its claim for longer.
                let res = futex::nap(word.word(), seq, since, deadline, nap.interval());
                nap.backoff();
                res
            };
            if registered {
                Waiters::leave(waiters);
            }
            match attempt() {
                Err(e) if e.must_wait() => {
                    if res == WaitResult::TimedOut && time::expired(deadline) {
                        return Err(e);
                    }
                }
                r => return r,
            }
        }
    }

    /// After a waiter's registration and fence: true if the claim that ends its wait is
    /// still to come, so that it will see the registration (a producer has not claimed
    /// position `head`; no consumer has claimed the message in the slot `tail` needs).
    #[inline]
    fn claim_is_ahead(&self, why: Stop, (mark_bit, one_lap): (u64, u64)) -> bool {
        match why {
            Stop::NeedPublish(head) => {
                // Relaxed: ordered after our registration by the caller's fence (SYNC
                // POINT with `registered` after the tail CAS in `push_step`). Reading an
                // older tail than the latest is harmless: a claim we did not see comes
                // after our fence in the total order, and sees our registration.
                self.tail.0.load(Ordering::Relaxed) & !mark_bit == head
            }
            Stop::NeedRelease(tail) => {
                // Relaxed: as above, with the head CAS in `pop_step`.
                self.head.0.load(Ordering::Relaxed) == tail.wrapping_sub(one_lap)
            }
            // The previous lap's party holds the slot: it claimed long ago.
            _ => false,
        }
    }

    // -----------------------------------------------------------------------------------
    // Close and size.

    /// Closes the ring: pushes fail from now on, pops drain what is left. Wakes every
    /// sleeper. Returns false if it was already closed.
    pub fn close(&self, s: &impl Slots) -> bool {
        let mark_bit = s.mark_bit();
        // SeqCst: in the same total order as the tail CASes in `push_step` and
        // `claim_fast`: a push either claimed before the mark (and will publish) or sees
        // it.
        let old = self.tail.0.fetch_or(mark_bit, Ordering::SeqCst);
        // SYNC POINT "closed flag". Release: pairs with the Acquire load of `closed` in
        // `pop_step` (see `Wake::closed`).
        self.wake.0.closed.store(1, Ordering::Release);
        // SYNC POINT: pairs with the fence in `wait_for`, as for `publish`.
        fence(Ordering::SeqCst);
        // Relaxed: ordered by the fence above.
        if self.wake.0.get_waiters.load(Ordering::Relaxed) != 0 {
            self.wake.0.not_empty.notify_all();
        }
        // Relaxed: ordered by the fence above.
        if self.wake.0.put_waiters.load(Ordering::Relaxed) != 0 {
            self.wake.0.not_full.notify_all();
        }
        old & mark_bit == 0
    }

    /// Free slots, from two Relaxed loads: a guess, for the spin phase only.
    #[inline]
    fn free_guess(&self, s: &impl Slots) -> u64 {
        let (cap, mark_bit) = (s.capacity(), s.mark_bit());
        // Relaxed: a guess; claims decide.
        let tail = self.tail.0.load(Ordering::Relaxed);
        // Relaxed: as above.
        let head = self.head.0.load(Ordering::Relaxed);
        cap - occupancy(head, tail, cap, mark_bit)
    }

    /// True once [`close`](Self::close) was called.
    #[inline]
    pub fn is_closed(&self, s: &impl Slots) -> bool {
        self.closed_at(s.mark_bit())
    }

    /// [`is_closed`](Self::is_closed) of a ring of `cap` slots (for inspection, which has
    /// the capacity but no slots).
    pub fn is_closed_in(&self, cap: u64) -> bool {
        self.closed_at(mark_bit(cap))
    }

    #[inline]
    fn closed_at(&self, mark_bit: u64) -> bool {
        // SeqCst: a snapshot in the same total order as `close`.
        self.tail.0.load(Ordering::SeqCst) & mark_bit != 0
    }

    /// Messages in the ring, claimed-but-unpublished and claimed-but-unreleased slots
    /// included: exact when no operation is under way, a snapshot otherwise. Never more
    /// than the capacity.
    #[inline]
    pub fn len(&self, s: &impl Slots) -> u64 {
        self.len_in(s.capacity())
    }

    /// [`len`](Self::len) of a ring of `cap` slots.
    pub fn len_in(&self, cap: u64) -> u64 {
        let mark_bit = mark_bit(cap);
        loop {
            // SeqCst: a consistent snapshot of both ends (crossbeam's `len`).
            let tail = self.tail.0.load(Ordering::SeqCst);
            let head = self.head.0.load(Ordering::SeqCst);
            if self.tail.0.load(Ordering::SeqCst) != tail {
                crate::sync::spin_hint();
                continue;
            }
            return occupancy(head, tail, cap, mark_bit);
        }
    }

    // -----------------------------------------------------------------------------------
    // Tasks (JoinableQueue).

    /// Counts one more unfinished task (before the item is pushed).
    #[inline]
    pub fn task_add(&self) {
        // Relaxed: the push that follows publishes the item with Release, and a consumer's
        // `task_done` happens after its Acquire of that item, so it sees this increment.
        self.join.0.unfinished.fetch_add(1, Ordering::Relaxed);
    }

    /// Marks one task done. Wakes joiners when the count reaches zero.
    ///
    /// # Errors
    /// [`TaskDoneError`] when no task is unfinished (more `task_done`s than items).
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        // Relaxed: the CAS re-checks.
        let mut cur = self.join.0.unfinished.load(Ordering::Relaxed);
        loop {
            if cur == 0 {
                return Err(TaskDoneError);
            }
            // Release: pairs with the Acquire loads in `join`: work done before
            // `task_done` is visible to the process that `join` returns in.
            match self.join.0.unfinished.compare_exchange_weak(
                cur,
                cur - 1,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(v) => cur = v,
            }
        }
        if cur == 1 {
            // SYNC POINT (last task_done / sleeping joiner): pairs with the fence in
            // `join`.
            fence(Ordering::SeqCst);
            // Relaxed: ordered by the fence above.
            if self.join.0.join_waiters.load(Ordering::Relaxed) != 0 {
                self.join.0.done_seq.notify_all();
            }
        }
        Ok(())
    }

    /// Unfinished tasks (a snapshot).
    pub fn unfinished(&self) -> u64 {
        // Relaxed: a snapshot.
        self.join.0.unfinished.load(Ordering::Relaxed)
    }

    /// Parties between registering to sleep and leaving (asleep in `futex_wait`, or on
    /// their way in or out), as `(consumers, producers)`: a snapshot, for inspection.
    pub fn sleepers(&self) -> (u32, u32) {
        let n = |w: &AtomicU32| {
            // Relaxed: a diagnostic snapshot; it orders nothing.
            let w = w.load(Ordering::Relaxed);
            Waiters::waiting(w) + Waiters::signalled(w)
        };
        (n(&self.wake.0.get_waiters), n(&self.wake.0.put_waiters))
    }

    /// Waits until every task is done, or until `deadline`. Returns false if it timed out.
    pub fn join(&self, deadline: Option<Instant>, spin: SpinPolicy) -> bool {
        let j = &self.join.0;
        // Acquire: pairs with the Release CAS in `task_done`.
        if j.unfinished.load(Ordering::Acquire) == 0 {
            return true;
        }
        let done = spin.attempts(|| {
            // Acquire: as above.
            if j.unfinished.load(Ordering::Acquire) == 0 {
                Round::Done(())
            } else {
                Round::Again
            }
        });
        if done.is_some() {
            return true;
        }
        loop {
            // Read before the registration and re-check (SYNC POINT "event count").
            let seq = j.done_seq.key();
            // Relaxed: ordered by the fence below.
            j.join_waiters.fetch_add(1, Ordering::Relaxed);
            // SYNC POINT: pairs with the fence in `task_done`.
            fence(Ordering::SeqCst);
            // Acquire: pairs with the Release CAS in `task_done`.
            if j.unfinished.load(Ordering::Acquire) == 0 {
                // Relaxed: a count.
                j.join_waiters.fetch_sub(1, Ordering::Relaxed);
                return true;
            }
            let w = j.done_seq.wait(seq, deadline);
            // Relaxed: a count.
            j.join_waiters.fetch_sub(1, Ordering::Relaxed);
            if w == WaitResult::TimedOut && time::expired(deadline) {
                // Acquire: as above.
                return j.unfinished.load(Ordering::Acquire) == 0;
            }
        }
    }
}

/// [`JoinableQueue::task_done`](crate::JoinableQueue::task_done) was called more times
/// than items were put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskDoneError;

impl fmt::Display for TaskDoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task_done() called more times than there were items put in the queue")
    }
}

impl std::error::Error for TaskDoneError {}
