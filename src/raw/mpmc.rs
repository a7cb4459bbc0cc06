//! The algorithm: a bounded MPMC ring with Vyukov stamps, its sleep / wake protocol, and
//! the recovery of claims held by processes that died.
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
//! | `p + 1 + mark`   | published *empty* (a dropped put loan, or the claim of a producer that died): consumers skip it |
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
//! one can only come from a corrupted ring, and is reported as [`MpmcError::Corrupt`]; so
//! is a claim that keeps finding a stamp of an impossible lap (a bounded number of
//! retries, far beyond any real race: then the blocking calls look again between naps, so
//! a timed call still returns at its deadline, and an untimed one reports `Corrupt` once
//! the impossible state has lasted ~0.5 s).
//!
//! # Who holds a claim: intents
//!
//! A claim must name its holder, so that survivors can tell a slow holder from a dead
//! one; and it must cost no more than a store, because a second locked instruction per
//! claim (a CAS of the stamp to "claimed by X") was measured at twice the time of an
//! uncontended put + get (11.2 -> 22.2 ns). So the holder is named *before* the claim:
//! each thread that uses a ring owns an entry of the ring's table of [`Claimer`]s (found
//! through a per-thread cache by the handle), and before the CAS of `head` / `tail` that
//! would claim position `p` it stores an *intent* `(side, p)` in its entry, with a plain
//! store to a line of its own. The CAS is a release operation, and every later CAS of
//! that index continues its release sequence, so a party that reads the index past `p`
//! (Acquire) also sees the intent of the thread that claimed `p`. A thread's intent stays
//! until its next claim attempt overwrites it (its put / get claims are sequential; a loan
//! records its claim in a word of its own, [`INTENTS`] per entry), and a claim attempt
//! that gives up clears it.
//!
//! | entry word  | written by                    | meaning                                        |
//! |-------------|-------------------------------|------------------------------------------------|
//! | `owner`     | the thread that takes the entry (CAS) | its process: pid and start time        |
//! | `thread`    | that thread                   | its thread id                                  |
//! | `intents[k]`| that thread                   | `(side, p)` of its claim attempt or claim; 0: none |
//! | `put`, `took`, `done`, `voided` | that thread; recoverers, once it is dead | a `JoinableQueue`'s task journal (see "Tasks") |
//!
//! # A party that dies
//!
//! A process killed between claiming position `p` and publishing / releasing it leaves
//! the slot in a state that nobody else ends: consumers stop at `p` (or, one lap later,
//! producers do). A party that waits there looks, on the [`Liveness::recheck`] schedule
//! (1 ms, doubling to 100 ms; at the same pace for a `try_*` call that keeps finding the
//! slot stuck), at the entries whose intent is `(side, p)`: the holder is one of them
//! (a thread whose claim attempt lost the race may be another, until it tries again).
//! If every one belongs to a dead process ([`Liveness::is_dead`]: pid gone, a zombie, or
//! reused), the holder is dead, and one CAS of the stamp from the stuck value ends the
//! claim in its place, so exactly one survivor does it:
//!
//! | stuck claim                 | seen by                         | recovery                                    | lost |
//! |-----------------------------|---------------------------------|---------------------------------------------|------|
//! | a producer's (stamp `p`)    | consumers at `p`, producers a lap later | publish it skipped (`p + 1 + mark`)  | nothing: the message was never sent |
//! | a consumer's (stamp `p + 1`)| producers a lap later, consumers a lap later | release it (`p + one_lap`)       | its message, counted in [`MpmcRing::lost`] |
//!
//! So at most the messages inside a dead process are lost, the one it was taking counted;
//! a death is noticed within about 100 ms by a party that waits on it. The limits: the
//! table has a fixed number of entries (the handle's choice: 64 for the queues), and a
//! thread that finds none free (more threads than entries use the ring at once, each
//! entry of a dead or finished thread being taken over once nothing of it is pending),
//! or a loan beyond the [`INTENTS`]` - 1` a thread may hold at once, claims unrecorded:
//! such a claim is never recovered (the ring stops at it if its holder dies, as before
//! this mechanism). A pid reused by a new process before anyone looked is told apart by
//! its start time.
//!
//! # Sleeping and waking
//!
//! | word          | bumped by                                   | waited on by        |
//! |---------------|---------------------------------------------|---------------------|
//! | `not_empty`   | a publish whose claim saw `get_waiters`; a recovery | consumers (`pop_*`) |
//! | `not_full`    | a release whose claim saw `put_waiters`; a recovery | producers (`push_*`)|
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
//! claim will see its registration, and sleeps until woken (waking on the liveness
//! schedule too: the claimer may die before its publish). One that sees the claim
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
//! `loom-tests/tests/queue.rs` model-checks this, and the recovery of a claimer that stops
//! for ever in the middle of its claim. Loom has no clock, so there a nap ends when
//! another thread reports progress (a publish or release), see [`futex::nap`].
//!
//! `close` sets the mark bit in `tail` and wakes every sleeper on both words.
//!
//! # Tasks (`JoinableQueue`)
//!
//! A task is counted when it is *in* the queue: by the producer, after it wrote the
//! message and just before it publishes it ([`MpmcRing::count_put`]), never while it
//! waits for room. The counts live in the producer's and the consumer's entries, each a
//! single-writer word that says how many and, in the same word, the position of the last
//! one (`put`, `took`), so that whoever recovers a dead party's claim knows whether that
//! party had counted it: a producer that counted and died before publishing has its task
//! voided (`voided`), a consumer that died holding a message it had not counted has it
//! counted for it. [`MpmcRing::tasks`] sums the entries (twice, until two sums agree:
//! every word only grows, so equal sums are a snapshot): unfinished tasks are `put -
//! voided - done`; those a dead process took and never marked done are *abandoned*, and
//! [`MpmcRing::join`] reports them ([`JoinStop::Abandoned`]) once nothing else is left to
//! wait for, rather than waiting for ever. The shared count `unfinished` (in the ring
//! block) is the fast path's hint: `task_done` decrements it and wakes the joiners at 0;
//! a death can leave it too high, never too low, and joiners then look at the sums on the
//! liveness schedule.

use crate::raw::Side;
use crate::sync::futex::{self, WaitResult};
use crate::sync::liveness::{split_ident, Liveness};
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

/// Intent words per [`Claimer`]: the first for the thread's puts and gets, the others for
/// the loans it holds at once.
pub const INTENTS: usize = 3;

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
    /// The ring's table of [`Claimer`]s: where a survivor looks for the holder of a stuck
    /// claim. Empty (the default): claims are not recorded, and never recovered.
    #[inline]
    fn claimers(&self) -> &[Claimer] {
        &[]
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

/// Why a claim stopped short, as the blocking path (and recovery) needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Pop at `head`: nothing published at this position yet (empty, or its producer is
    /// writing).
    NeedPublish(u64),
    /// Push at `tail`: the slot still holds the previous lap's message (full, or its
    /// consumer is reading it).
    NeedRelease(u64),
    /// Push at `tail`: the previous lap's producer claimed the slot and has not published.
    LapProducer(u64),
    /// Pop at `head`: the previous lap's consumer claimed the slot and has not released.
    LapConsumer(u64),
    /// A stamp of an impossible lap, seen again and again: look again later (after a
    /// nap, so that a deadline is honoured); corrupt if it lasts.
    Busy,
    Closed,
    Corrupt,
}

impl Stop {
    fn must_wait(self) -> bool {
        matches!(
            self,
            Stop::NeedPublish(_)
                | Stop::NeedRelease(_)
                | Stop::LapProducer(_)
                | Stop::LapConsumer(_)
                | Stop::Busy
        )
    }

    fn for_push(self) -> MpmcError {
        match self {
            Stop::NeedRelease(_) | Stop::LapProducer(_) => MpmcError::Full,
            Stop::Closed => MpmcError::Closed,
            Stop::NeedPublish(_) | Stop::LapConsumer(_) | Stop::Busy | Stop::Corrupt => {
                MpmcError::Corrupt
            }
        }
    }

    fn for_pop(self) -> MpmcError {
        match self {
            Stop::NeedPublish(_) | Stop::LapConsumer(_) => MpmcError::Empty,
            Stop::Closed => MpmcError::Closed,
            Stop::NeedRelease(_) | Stop::LapProducer(_) | Stop::Busy | Stop::Corrupt => {
                MpmcError::Corrupt
            }
        }
    }
}

/// What [`MpmcRing::recover_stuck`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// A dead party's claim was in the way, and this call ended it: look again.
    Recovered,
    /// A claim is in the way, and a live party may hold it: wait.
    Alive,
    /// A claim is in the way, but nobody recorded it (its holder had no entry): it is
    /// never recovered.
    Unknown,
    /// No claim is in the way (or another party just ended it).
    Nothing,
}

/// Aligns its content to its own 128-byte line (two x86 cache lines: the adjacent-line
/// prefetcher pulls pairs). Not crossbeam's `CachePadded`: its alignment differs by
/// target (32 to 256 bytes), and this struct is a layout in shared memory that every
/// process, and every build that opens the arena, must agree on (`LAYOUT_HASH`).
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

/// JoinableQueue's task counter, and the counts of recoveries.
#[repr(C)]
struct Join {
    /// Tasks put and not yet marked done: the fast path's hint (module docs, "Tasks").
    unfinished: AtomicU64,
    /// Bumped (then woken) when `unfinished` reaches 0 and a joiner may sleep.
    done_seq: EventCount,
    /// Joiners registered to sleep on `done_seq`.
    join_waiters: AtomicU32,
    /// Messages taken by consumers that died before releasing their slots.
    lost: AtomicU64,
    /// Claims of dead producers published skipped.
    skipped: AtomicU64,
    /// The task journal of the threads that found no entry in the table: counts only
    /// (never attributed to a process, so never reported as abandoned).
    spare_put: AtomicU64,
    /// See `spare_put`.
    spare_took: AtomicU64,
    /// See `spare_put`.
    spare_done: AtomicU64,
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
    const_assert_eq!(core::mem::size_of::<Join>(), 56);
    const_assert_eq!(core::mem::size_of::<Claimer>(), 64);
    const_assert_eq!(core::mem::align_of::<Claimer>(), 64);
}

impl Default for MpmcRing {
    fn default() -> Self {
        Self::new()
    }
}

// ---------------------------------------------------------------------------------------
// The claimers' table.

/// One thread's entry in a ring's table: who it is, the claims it is making, and (for a
/// `JoinableQueue`) its task journal. See the module docs ("Who holds a claim").
///
/// 64 bytes, on a cache line of its own: a thread stores its intent on every claim, and
/// the line stays in its core. All zero bytes is a free entry.
#[repr(C, align(64))]
pub struct Claimer {
    /// The owning process's identity (`liveness::ident`: pid and start time); 0: free.
    owner: AtomicU64,
    /// The owning thread's id.
    thread: AtomicU32,
    /// The intent words lent to loans (bit `k`: word `k`); see [`take_loan`](Self::take_loan).
    loans: AtomicU32,
    /// `(side, position)` of each claim the thread is attempting or holds (`intent_of`);
    /// 0: none.
    intents: [AtomicU64; INTENTS],
    /// Tasks put into a `JoinableQueue`: count (high half) and the tag of the last one's
    /// position (low half).
    put: AtomicU64,
    /// Tasks taken from a `JoinableQueue`: count and tag, as `put`.
    took: AtomicU64,
    /// `task_done` calls.
    done: AtomicU32,
    /// Puts counted by a thread that died before publishing them.
    voided: AtomicU32,
}

// SAFETY: `#[repr(C)]`, aligned to 64; atomic words only. Whatever a peer writes into an
// entry can make a recovery wrong or never happen (the entry is evidence about a claim),
// never make this process touch memory: positions are compared, never used as indices.
unsafe impl crate::raw::SharedState for Claimer {}

impl Default for Claimer {
    fn default() -> Self {
        Self::new()
    }
}

/// A claim made and not ended, as [`MpmcRing::held_claims`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldClaim {
    /// A producer's claim (a slot being written) or a consumer's (a message being read).
    pub side: Side,
    /// The claimed position.
    pub pos: u64,
    /// The identity of the process whose entry records it (pid and start time).
    pub owner: u64,
}

/// The intent word of a claim of `side` at position `pos`: never 0. Public for the
/// models, which plant the intent of a thread that died before its CAS.
#[inline(always)]
pub fn intent_of(side: Side, pos: u64) -> u64 {
    (pos << 2) | (u64::from(side == Side::Consumer) << 1) | 1
}

/// The tag of position `pos` in a journal word (never 0: a word that was never written
/// names no position).
#[inline(always)]
fn tag_of(pos: u64) -> u64 {
    u64::from(pos as u32 | 0x8000_0000)
}

/// A journal word (`put` / `took`) after one more, at position `pos`.
#[inline(always)]
fn bump(word: u64, pos: u64) -> u64 {
    ((word >> 32).wrapping_add(1) << 32) | tag_of(pos)
}

impl Claimer {
    /// A free entry.
    pub fn new() -> Claimer {
        Claimer {
            owner: AtomicU64::new(0),
            thread: AtomicU32::new(0),
            loans: AtomicU32::new(0),
            intents: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
            put: AtomicU64::new(0),
            took: AtomicU64::new(0),
            done: AtomicU32::new(0),
            voided: AtomicU32::new(0),
        }
    }

    /// Intent word `k` (`k < INTENTS`): the one a claim of this thread records itself in.
    #[inline(always)]
    pub fn intent(&self, k: usize) -> &AtomicU64 {
        &self.intents[k % INTENTS]
    }

    /// Lends a loan an intent word of its own (`1..INTENTS`), until
    /// [`give_loan`](Self::give_loan); `None` when all are lent.
    pub fn take_loan(&self) -> Option<usize> {
        // Relaxed: a bitmap of this entry's words, kept by its owner's loans (which may
        // end on another thread: an RMW); the words themselves are ordered by the claims.
        let mut cur = self.loans.load(Ordering::Relaxed);
        loop {
            let k = (1..INTENTS).find(|k| cur & (1 << k) == 0)?;
            match self.loans.compare_exchange_weak(
                cur,
                cur | (1 << k),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(k),
                Err(v) => cur = v,
            }
        }
    }

    /// Gives loan word `k` back (its claim has ended).
    pub fn give_loan(&self, k: usize) {
        // Relaxed: see `take_loan`.
        self.loans
            .fetch_and(!(1u32 << (k % INTENTS)), Ordering::Relaxed);
    }

    /// Takes this entry, if it is free, for `who`'s calling thread (what
    /// [`MpmcRing::enter`] does with the first free entry it finds); false if it is not
    /// free.
    pub fn take_for(&self, who: &impl Liveness) -> bool {
        self.take(0, who)
    }

    /// True if this entry belongs to `who`'s calling thread.
    #[inline]
    pub fn is_mine(&self, who: &impl Liveness) -> bool {
        // Relaxed: only this thread writes these words while it owns the entry; another
        // owner's values are not ours whatever their age.
        self.owner.load(Ordering::Relaxed) == who.my_ident()
            && self.thread.load(Ordering::Relaxed) == who.my_thread()
    }

    /// The owner's pid and start time, or `None` while the entry is free.
    fn owner(&self) -> Option<(u32, u64)> {
        // Acquire: pairs with the AcqRel CAS in `take`, so the intents read after it are
        // the new owner's (cleared) or later.
        match self.owner.load(Ordering::Acquire) {
            0 => None,
            id => Some(split_ident(id)),
        }
    }

    /// Takes the entry for `who`'s thread, from its owner word `seen` (0: free; or the
    /// identity of a dead process or finished thread whose claims are all resolved);
    /// clears its intents. False if another thread took it first.
    fn take(&self, seen: u64, who: &impl Liveness) -> bool {
        // AcqRel: Acquire pairs with the previous owner's take (its words are older than
        // ours); Release publishes our identity before our intents.
        if self
            .owner
            .compare_exchange(seen, who.my_ident(), Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        for w in &self.intents {
            // Relaxed: ours now; a recoverer that still reads an old intent sees a live
            // owner and waits, and the old intents were all resolved (`resolved`).
            w.store(0, Ordering::Relaxed);
        }
        // Relaxed: the previous owner's loans are over (resolved).
        self.loans.store(0, Ordering::Relaxed);
        // Relaxed: read only by `is_mine` of this thread, and by entry searches that then
        // CAS `owner`.
        self.thread.store(who.my_thread(), Ordering::Relaxed);
        true
    }

    /// One more task put, at `pos` (the owning thread only).
    #[inline]
    fn count_put(&self, pos: u64) {
        // Relaxed load: our own word. Release store: pairs with the Acquire loads of
        // `tasks` and of a recoverer (which reads it after the Acquire of the stamp our
        // publish has not made: the recoverer's CAS of that stamp comes after our store).
        let w = self.put.load(Ordering::Relaxed);
        self.put.store(bump(w, pos), Ordering::Release);
    }

    /// One more task taken, at `pos` (the owning thread only).
    #[inline]
    fn count_took(&self, pos: u64) {
        // As in `count_put`.
        let w = self.took.load(Ordering::Relaxed);
        self.took.store(bump(w, pos), Ordering::Release);
    }

    /// One more `task_done` (the owning thread only).
    #[inline]
    fn count_done(&self) {
        // As in `count_put`.
        let d = self.done.load(Ordering::Relaxed);
        self.done.store(d.wrapping_add(1), Ordering::Release);
    }

    /// The journal words, for a snapshot: `(put, took, done, voided)`.
    fn journal(&self) -> [u64; 4] {
        // Acquire: pairs with the Release stores above; the snapshot compares two reads.
        [
            self.put.load(Ordering::Acquire),
            self.took.load(Ordering::Acquire),
            u64::from(self.done.load(Ordering::Acquire)),
            u64::from(self.voided.load(Ordering::Acquire)),
        ]
    }
}

// ---------------------------------------------------------------------------------------
// Geometry.

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
///
/// A party killed while registered stays counted: the claims that see it wake once for
/// nothing, until a signal is taken in its place by a party that leaves (one system call
/// per such claim, no lost wake-up).
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

/// Counts the retries of one claim that found a stamp of an impossible lap. A retry
/// happens when another party moved the index or when we read an older stamp than the
/// latest; both resolve in a few rounds. A stamp that fits the slot but belongs to an
/// impossible lap (a corrupted ring) would make the claim retry for ever: every
/// [`BUSY`](Self::BUSY) rounds the claim returns [`Stop::Busy`] (a blocking claim naps,
/// so its deadline is honoured), and after [`LIMIT`](Self::LIMIT) rounds (far beyond any
/// real race) it is reported as corruption. The model checker has no such bound: it must
/// see every retry resolve.
#[derive(Default)]
struct Stuck(u32);

/// What one more retry of [`Stuck`] means (under loom, always `Again`).
#[cfg_attr(shmproc_loom, allow(dead_code))]
enum Tick {
    Again,
    Busy,
    Corrupt,
}

impl Stuck {
    #[cfg(not(shmproc_loom))]
    const BUSY: u32 = 64;
    #[cfg(not(shmproc_loom))]
    const LIMIT: u32 = 1 << 12;

    #[inline]
    fn tick(&mut self) -> Tick {
        #[cfg(not(shmproc_loom))]
        {
            self.0 += 1;
            if self.0 >= Self::LIMIT {
                Tick::Corrupt
            } else if self.0 % Self::BUSY == 0 {
                Tick::Busy
            } else {
                Tick::Again
            }
        }
        #[cfg(shmproc_loom)]
        {
            let _ = self.0;
            Tick::Again
        }
    }
}

/// How many naps in a row a blocking claim may find the same impossible lap before it
/// calls the ring corrupt (the naps grow from 50 µs to 10 ms: ~0.5 s in all).
const BUSY_NAPS: u32 = 64;

/// The snapshot of a `JoinableQueue`'s tasks ([`MpmcRing::tasks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tasks {
    /// Tasks put and not marked done.
    pub unfinished: u64,
    /// Tasks in the queue (put, not taken yet).
    pub queued: u64,
    /// Tasks taken by processes that died without marking them done (part of
    /// `unfinished`).
    pub abandoned: u64,
    /// Tasks taken by live processes (or by threads without an entry) and not marked
    /// done; negative when live processes marked done tasks that others took.
    pub held: i64,
}

/// Why [`MpmcRing::join`] returned without every task done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinStop {
    /// The deadline passed.
    Timeout,
    /// Every task left unfinished was taken by a process that died: they will never be
    /// marked done. The count of them.
    Abandoned(u64),
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
                lost: AtomicU64::new(0),
                skipped: AtomicU64::new(0),
                spare_put: AtomicU64::new(0),
                spare_took: AtomicU64::new(0),
                spare_done: AtomicU64::new(0),
            }),
        }
    }

    // -----------------------------------------------------------------------------------
    // Entries.

    /// The entry of `who`'s calling thread in the table of `s`: the one it already owns,
    /// else a free one, else one of a dead process (or a finished thread) with nothing
    /// pending, taken over. `None` when every entry belongs to a live thread (or holds a
    /// claim that is not resolved yet): the caller's claims then go unrecorded.
    ///
    /// A search of the table (one line per entry): the handle caches the answer per
    /// thread.
    pub fn enter(&self, s: &impl Slots, who: &impl Liveness) -> Option<usize> {
        let table = s.claimers();
        if let Some(i) = table.iter().position(|e| e.is_mine(who)) {
            return Some(i);
        }
        for (i, e) in table.iter().enumerate() {
            // Relaxed: the CAS in `take` decides.
            if e.owner.load(Ordering::Relaxed) == 0 && e.take(0, who) {
                return Some(i);
            }
        }
        for (i, e) in table.iter().enumerate() {
            // Acquire: as in `owner`; the CAS in `take` decides.
            let seen = e.owner.load(Ordering::Acquire);
            if seen == 0 {
                continue;
            }
            let (pid, start) = split_ident(seen);
            // Relaxed: a hint; a wrong thread id only makes us skip or take an entry
            // whose owner is then checked dead or finished.
            let tid = e.thread.load(Ordering::Relaxed);
            let gone = who.is_dead(pid, start) || who.thread_gone(pid, tid);
            if gone && self.resolved(s, e) && e.take(seen, who) {
                return Some(i);
            }
        }
        None
    }

    /// True if no intent of entry `e` can be the only record of a claim still held: each
    /// names a position whose slot has moved on (or that nobody has claimed).
    fn resolved(&self, s: &impl Slots, e: &Claimer) -> bool {
        e.intents.iter().all(|w| {
            // Acquire: pairs with the stamp and index updates that resolve it (read below).
            let v = w.load(Ordering::Acquire);
            v == 0 || self.outstanding(s, v).is_none()
        })
    }

    /// If the intent `v` names a claim that is made and not ended, its position, side and
    /// the stamp its slot holds.
    fn outstanding(&self, s: &impl Slots, v: u64) -> Option<(u64, Side, u64)> {
        let (mark_bit, _) = geometry(s);
        let pos = v >> 2;
        let side = if v & 2 != 0 {
            Side::Consumer
        } else {
            Side::Producer
        };
        let index = pos & (mark_bit - 1);
        if index >= s.capacity() {
            return None;
        }
        // Acquire: pairs with the Release publish / release that ends the claim.
        let stamp = s.stamp(index).load(Ordering::Acquire);
        let (held, index_word) = match side {
            Side::Producer => (stamp == pos, &self.tail.0),
            Side::Consumer => (stamp & !mark_bit == pos.wrapping_add(1), &self.head.0),
        };
        // Acquire: see `recover` (the claimer's intent is ordered before its index CAS).
        (held && index_word.load(Ordering::Acquire) & !mark_bit != pos)
            .then_some((pos, side, stamp))
    }

    // -----------------------------------------------------------------------------------
    // Claims, without waiting.

    /// Claims the next free slot for writing, without waiting; `me` is the intent word of
    /// the caller's entry (module docs), or any word of its own if it has none.
    ///
    /// # Errors
    /// [`MpmcError::Full`] (also while the consumer of the previous lap still reads the
    /// slot), [`MpmcError::Closed`], [`MpmcError::Corrupt`].
    #[inline(always)]
    pub fn try_push_claim(&self, s: &impl Slots, me: &AtomicU64) -> Result<Claim, MpmcError> {
        match self.push_fast(s, me) {
            Some(c) => Ok(c),
            None => self.try_push_claim_slow(s, me),
        }
    }

    #[inline(never)]
    fn try_push_claim_slow(&self, s: &impl Slots, me: &AtomicU64) -> Result<Claim, MpmcError> {
        let mut stuck = Stuck::default();
        loop {
            match self.push_step(s, me, &mut stuck) {
                Err(Stop::Busy) => continue,
                r => return r.map_err(Stop::for_push),
            }
        }
    }

    /// The common case of a push claim, one attempt: the tail is open and in range, its
    /// slot is free for this lap, and the CAS wins. `None` for anything else (full, a
    /// lost race, closed, corrupt), with nothing done: the caller then takes the full
    /// path (`push_step`), which decides. Inlined into every put, where the full path is
    /// not: the full loop, with its backoff and corruption checks, saved and restored six
    /// registers per call (see `Queue::put_with` for what that cost).
    #[inline(always)]
    pub fn push_fast(&self, s: &impl Slots, me: &AtomicU64) -> Option<Claim> {
        self.claim_fast(s, Side::Producer, me)
    }

    // Always inlined, here and in `pop_step`: out of line, the `Result<Claim, Stop>` went
    // back through memory, and the caller read it in pieces wider than the callee's
    // stores (a store-forwarding stall). The blocking `get` (whose caller is bigger, with
    // its wait path) was not inlined and paid it: 10.8 ns per uncontended `u64` get
    // against `try_get`'s 5.2, which made a consumer the bottleneck of every throughput
    // run (the blocking MPMC pair measured ~2.4x crossbeam; now it tracks the
    // try-and-yield loop, 1.2-1.8x over eight runs).
    #[inline(always)]
    fn push_step(&self, s: &impl Slots, me: &AtomicU64, stuck: &mut Stuck) -> Result<Claim, Stop> {
        let cap = s.capacity();
        let (mark_bit, one_lap) = geometry(s);
        // Relaxed: only a guess; the CAS below (and the stamp's Acquire) decide.
        let mut tail = self.tail.0.load(Ordering::Relaxed);
        let mut backoff = Backoff::default();
        let mut intent = false;
        let stop = loop {
            if tail & mark_bit != 0 {
                break Stop::Closed;
            }
            let index = tail & (mark_bit - 1);
            if index >= cap {
                break Stop::Corrupt;
            }
            let new_tail = next_position(tail, index, cap, one_lap);
            // SYNC POINT "slot released" (the producer's half). Acquire: pairs with the
            // Release store in `release` of the consumer of the previous lap, so its reads
            // of the slot are done before we write it.
            let stamp = s.stamp(index).load(Ordering::Acquire);
            // A skipped slot is a published one here (module docs).
            let unmarked = stamp & !mark_bit;
            if stamp == tail {
                // SYNC POINT "intent" (the claimer's half): our intent, before the CAS
                // that publishes it. Relaxed: the SeqCst CAS below is a release operation
                // that orders it for whoever reads `tail` at or past it with Acquire
                // (`recover`, `outstanding`).
                me.store(intent_of(Side::Producer, tail), Ordering::Relaxed);
                intent = true;
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
                break Stop::NeedRelease(tail);
            }
            if stamp.wrapping_add(one_lap) == tail {
                // The producer of the previous lap claimed this slot and has not published
                // it yet (a put loan, or a producer paused mid-put): after it publishes, a
                // consumer must release it before we can write. That producer claimed long
                // ago, so it may not know of us: we nap (`wait_for`).
                break Stop::LapProducer(tail);
            }
            // Our tail or our stamp is stale (another producer moved on, or we read an
            // older stamp than the latest): look again, unless the stamp is impossible.
            if !stamp_fits(unmarked, index, mark_bit) {
                break Stop::Corrupt;
            }
            match stuck.tick() {
                Tick::Again => {}
                Tick::Busy => break Stop::Busy,
                Tick::Corrupt => break Stop::Corrupt,
            }
            backoff.spin();
            // Relaxed: as above.
            tail = self.tail.0.load(Ordering::Relaxed);
        };
        // No claim: an intent left by a lost CAS must not name us a candidate holder of
        // a claim that is another thread's (a waiter would keep it for as long as it
        // waits). Relaxed: a recoverer that still sees it waits a little longer, nothing
        // more. (`claim_fast` clears its own.)
        if intent {
            me.store(0, Ordering::Relaxed);
        }
        Err(stop)
    }

    /// Claims the oldest published message for reading, without waiting; `me` as in
    /// [`try_push_claim`](Self::try_push_claim).
    ///
    /// # Errors
    /// [`MpmcError::Empty`] (also while its producer still writes the next slot),
    /// [`MpmcError::Closed`] when closed and drained, [`MpmcError::Corrupt`].
    #[inline(always)]
    pub fn try_pop_claim(&self, s: &impl Slots, me: &AtomicU64) -> Result<Claim, MpmcError> {
        match self.pop_fast(s, me) {
            Some(c) => Ok(c),
            None => self.try_pop_claim_slow(s, me),
        }
    }

    #[inline(never)]
    fn try_pop_claim_slow(&self, s: &impl Slots, me: &AtomicU64) -> Result<Claim, MpmcError> {
        let mut stuck = Stuck::default();
        loop {
            match self.pop_step(s, me, &mut stuck) {
                Err(Stop::Busy) => continue,
                r => return r.map_err(Stop::for_pop),
            }
        }
    }

    /// The common case of a pop claim, one attempt: the slot at `head` holds a message
    /// of this lap (not a skipped loan) and the CAS wins. `None` for anything else, with
    /// nothing done (see `push_fast`).
    #[inline(always)]
    pub fn pop_fast(&self, s: &impl Slots, me: &AtomicU64) -> Option<Claim> {
        self.claim_fast(s, Side::Consumer, me)
    }

    /// `push_fast` / `pop_fast`: one side's index, the stamp its slot must hold (`pos`:
    /// free; `pos + 1`: published, exactly, so a skipped slot takes the full path) and the
    /// stamp that ends the claim (`pos + 1`: published; `pos + one_lap`: released). Only
    /// claims that stay within the lap (`pos + 1` is the next position).
    #[inline(always)]
    fn claim_fast(&self, s: &impl Slots, side: Side, me: &AtomicU64) -> Option<Claim> {
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
        // SYNC POINT "intent": as in `push_step`.
        me.store(intent_of(side, pos), Ordering::Relaxed);
        // SeqCst: as in `push_step` / `pop_step`. Relaxed on failure: the value read is
        // not used (the full path starts over).
        if at
            .compare_exchange_weak(
                pos,
                pos.wrapping_add(1),
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .is_err()
        {
            // A lost race: the intent names no claim of ours (see `push_step`).
            me.store(0, Ordering::Relaxed);
            return None;
        }
        Some(Claim {
            index,
            stamp: pos.wrapping_add(done),
            skip: false,
            wake: registered(other_waiters),
        })
    }

    // Always inlined: see `push_step`.
    #[inline(always)]
    fn pop_step(&self, s: &impl Slots, me: &AtomicU64, stuck: &mut Stuck) -> Result<Claim, Stop> {
        let cap = s.capacity();
        let (mark_bit, one_lap) = geometry(s);
        // Relaxed: only a guess; the CAS below (and the stamp's Acquire) decide.
        let mut head = self.head.0.load(Ordering::Relaxed);
        let mut backoff = Backoff::default();
        let mut intent = false;
        let stop = loop {
            let index = head & (mark_bit - 1);
            if index >= cap || head & mark_bit != 0 {
                break Stop::Corrupt;
            }
            // SYNC POINT "slot published" (the consumer's half). Acquire: pairs with the
            // Release store in `publish`: the message written before it is visible to us.
            let stamp = s.stamp(index).load(Ordering::Acquire);
            // A skipped slot is a published one here (module docs).
            let unmarked = stamp & !mark_bit;
            if unmarked == head.wrapping_add(1) {
                let new_head = next_position(head, index, cap, one_lap);
                // SYNC POINT "intent": as in `push_step`.
                me.store(intent_of(Side::Consumer, head), Ordering::Relaxed);
                intent = true;
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
                        break Stop::Closed;
                    }
                }
                break Stop::NeedPublish(head);
            }
            if unmarked.wrapping_add(one_lap) == head.wrapping_add(1) {
                // The previous lap's message is still being read by its consumer (a get
                // loan, or a consumer paused mid-get): after it releases the slot, a
                // producer must publish into it. That consumer claimed long ago, so it may
                // not know of us: we nap (`wait_for`).
                break Stop::LapConsumer(head);
            }
            // Stale head or stale stamp: look again, unless the stamp is impossible.
            if !stamp_fits(unmarked, index, mark_bit) {
                break Stop::Corrupt;
            }
            match stuck.tick() {
                Tick::Again => {}
                Tick::Busy => break Stop::Busy,
                Tick::Corrupt => break Stop::Corrupt,
            }
            backoff.spin();
            // Relaxed: as above.
            head = self.head.0.load(Ordering::Relaxed);
        };
        // See `push_step`.
        if intent {
            me.store(0, Ordering::Relaxed);
        }
        Err(stop)
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
        // Acquire stamp loads in `push_step` and `claim_fast`: our reads of the slot are
        // done before the next producer's writes.
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
    // Recovery.

    /// One look at what stops `side` now, without claiming: a claim of another party in
    /// the way (or nothing to say).
    fn look(&self, s: &impl Slots, side: Side) -> Option<Stop> {
        let cap = s.capacity();
        let (mark_bit, one_lap) = geometry(s);
        let at = match side {
            Side::Producer => &self.tail.0,
            Side::Consumer => &self.head.0,
        };
        // Relaxed: a guess; `recover` re-reads everything it acts on.
        let pos = at.load(Ordering::Relaxed);
        let index = pos & (mark_bit - 1);
        if index >= cap || (side == Side::Consumer && pos & mark_bit != 0) {
            return None;
        }
        let pos = pos & !mark_bit;
        // Acquire: as in the steps.
        let stamp = s.stamp(index).load(Ordering::Acquire);
        let unmarked = stamp & !mark_bit;
        match side {
            Side::Producer if unmarked.wrapping_add(one_lap) == pos.wrapping_add(1) => {
                Some(Stop::NeedRelease(pos))
            }
            Side::Producer if stamp.wrapping_add(one_lap) == pos => Some(Stop::LapProducer(pos)),
            Side::Consumer if stamp == pos => Some(Stop::NeedPublish(pos)),
            Side::Consumer if unmarked.wrapping_add(one_lap) == pos.wrapping_add(1) => {
                Some(Stop::LapConsumer(pos))
            }
            _ => None,
        }
    }

    /// For a `try_*` call of `side` that could not claim: if a claim of a dead party is
    /// what stops it, ends that claim (module docs, "A party that dies"). The blocking
    /// calls do this by themselves while they wait; a caller that only polls should call
    /// this now and then (the queue handles do, on the liveness schedule, when they keep
    /// finding the same slot stuck).
    pub fn recover_stuck(&self, s: &impl Slots, side: Side, who: &impl Liveness) -> Recovery {
        match self.look(s, side) {
            Some(stop) => self.recover(s, stop, who),
            None => Recovery::Nothing,
        }
    }

    /// The position a party stopped by `why` waits on, if a claim may hold it: `(pos, side
    /// of the claim)`.
    fn claim_in_the_way(why: Stop, one_lap: u64) -> Option<(u64, Side)> {
        match why {
            Stop::NeedPublish(h) => Some((h, Side::Producer)),
            Stop::LapProducer(t) => Some((t.wrapping_sub(one_lap), Side::Producer)),
            Stop::LapConsumer(h) => Some((h.wrapping_sub(one_lap), Side::Consumer)),
            Stop::NeedRelease(t) => Some((t.wrapping_sub(one_lap), Side::Consumer)),
            _ => None,
        }
    }

    /// If the claim that stops a party (`why`) is held by a dead process, ends it.
    fn recover(&self, s: &impl Slots, why: Stop, who: &impl Liveness) -> Recovery {
        let (mark_bit, one_lap) = geometry(s);
        let Some((pos, side)) = Self::claim_in_the_way(why, one_lap) else {
            return Recovery::Nothing;
        };
        // The slot's stamp and the claim's index, read in this order: a stamp that still
        // shows the claim, and an index past its position, make a claim that is made and
        // not ended.
        let Some((pos, side, stamp)) = self.outstanding(s, intent_of(side, pos)) else {
            return Recovery::Nothing;
        };
        // SYNC POINT "intent" (the recoverer's half): `outstanding` read the index with
        // Acquire at or past the claimer's CAS (a release operation, whose release
        // sequence every later CAS of the index continues), so the claimer's intent is
        // visible to the loads below.
        let target = intent_of(side, pos);
        let mut dead: Option<&Claimer> = None;
        let mut winner: Option<&Claimer> = None;
        for e in s.claimers() {
            for w in &e.intents {
                // Acquire: pairs with the owner's Relaxed store through the index CAS, as
                // above; a later value (an intent that moved on) only makes us wait.
                if w.load(Ordering::Acquire) != target {
                    continue;
                }
                match e.owner() {
                    Some((pid, start)) if who.is_dead(pid, start) => {
                        dead = Some(e);
                        // Relaxed loads: the owner is dead, so the words are final but
                        // for recoverers, who change them with RMWs.
                        let counted = match side {
                            Side::Producer => e.put.load(Ordering::Acquire),
                            Side::Consumer => e.took.load(Ordering::Acquire),
                        };
                        if counted & 0xffff_ffff == tag_of(pos) {
                            winner = Some(e);
                        }
                    }
                    // A live candidate (or an entry changing hands): it may hold the claim.
                    _ => return Recovery::Alive,
                }
            }
        }
        let Some(dead) = dead else {
            return Recovery::Unknown;
        };
        // Every thread that recorded this claim is dead: its holder is. End the claim in
        // its place: publish it skipped (a producer's) or release it (a consumer's).
        let index = pos & (mark_bit - 1);
        let new = match side {
            Side::Producer => pos.wrapping_add(1) | mark_bit,
            Side::Consumer => pos.wrapping_add(one_lap),
        };
        // AcqRel: Release, as the publish / release it stands for (pairs with the Acquire
        // stamp loads of the next claimers); Acquire pairs with the stores that made the
        // stamp (the holder's predecessor's). The CAS makes exactly one survivor do it.
        if s.stamp(index)
            .compare_exchange(stamp, new, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return Recovery::Nothing;
        }
        futex::progress();
        let j = &self.join.0;
        match side {
            Side::Producer => {
                // Relaxed: counters for diagnostics.
                j.skipped.fetch_add(1, Ordering::Relaxed);
                if let Some(w) = winner {
                    // It had counted its task: void it (module docs, "Tasks"). Relaxed:
                    // read by `tasks` through its double read.
                    w.voided.fetch_add(1, Ordering::Release);
                    self.unfinished_down();
                }
            }
            Side::Consumer => {
                if stamp & mark_bit == 0 {
                    // Relaxed: a counter.
                    j.lost.fetch_add(1, Ordering::Relaxed);
                    if winner.is_none() {
                        // It died before counting the task it took: count it for it, so
                        // that `join` reports it abandoned. Release: see `count_took`.
                        let _ = dead
                            .took
                            .fetch_update(Ordering::Release, Ordering::Relaxed, |w| {
                                Some(bump(w, pos))
                            });
                    }
                }
            }
        }
        // Wake the other side's sleepers, as the publish / release would have (we do not
        // know whether the claim saw them). SYNC POINT: pairs with the fence in
        // `wait_for`, as `close` does.
        fence(Ordering::SeqCst);
        let w = &self.wake.0;
        let (waiters, word) = match side {
            Side::Producer => (&w.get_waiters, &w.not_empty),
            Side::Consumer => (&w.put_waiters, &w.not_full),
        };
        // Relaxed: ordered by the fence above.
        if waiters.load(Ordering::Relaxed) != 0 {
            word.notify_all();
        }
        Recovery::Recovered
    }

    /// Messages lost with consumers that died holding them (a count since the ring was
    /// made).
    pub fn lost(&self) -> u64 {
        // Relaxed: a snapshot.
        self.join.0.lost.load(Ordering::Relaxed)
    }

    /// Claims of dead producers published skipped (a count since the ring was made).
    pub fn skipped(&self) -> u64 {
        // Relaxed: a snapshot.
        self.join.0.skipped.load(Ordering::Relaxed)
    }

    /// The claims made and not ended that the table records, each with the identity of
    /// the process whose entry records it (`liveness::ident`: pid and start time); for
    /// inspection, which judges the holders' liveness. Reads only: a claim ending
    /// meanwhile may be listed. The table's words are evidence a peer may scribble on:
    /// a listed claim names a position whose slot's stamp says it is held, nothing more.
    pub fn held_claims(&self, s: &impl Slots) -> Vec<HeldClaim> {
        let mut held = Vec::new();
        for entry in s.claimers() {
            // Relaxed: a diagnostic snapshot; `outstanding` reads the stamp and index with
            // Acquire, which is what decides.
            let owner = entry.owner.load(Ordering::Relaxed);
            if owner == 0 {
                continue;
            }
            for word in &entry.intents {
                // Relaxed: as `owner`.
                let v = word.load(Ordering::Relaxed);
                if v == 0 {
                    continue;
                }
                if let Some((pos, side, _)) = self.outstanding(s, v) {
                    held.push(HeldClaim { side, pos, owner });
                }
            }
        }
        held
    }

    // -----------------------------------------------------------------------------------
    // Blocking claims.

    /// Claims a free slot, waiting while the ring is full: spin as `spin` says, then sleep,
    /// until `deadline` (`None`: forever). `me` as in
    /// [`try_push_claim`](Self::try_push_claim); `who` judges whether the holder of a
    /// claim in the way died (module docs).
    ///
    /// # Errors
    /// [`MpmcError::Full`] at the deadline, [`MpmcError::Closed`], [`MpmcError::Corrupt`].
    #[inline]
    pub fn push_claim(
        &self,
        s: &impl Slots,
        me: &AtomicU64,
        who: &impl Liveness,
        deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> Result<Claim, MpmcError> {
        if let Some(c) = self.push_fast(s, me) {
            return Ok(c);
        }
        let mut stuck = Stuck::default();
        match self.push_step(s, me, &mut stuck) {
            Ok(c) => Ok(c),
            Err(e) if e.must_wait() => {
                let cap = s.capacity();
                let slack = (cap / 4).clamp(1, SLACK);
                self.wait_for(
                    Side::Producer,
                    s,
                    e,
                    |stuck| self.push_step(s, me, stuck),
                    || self.free_guess(s) >= slack,
                    who,
                    deadline,
                    spin,
                )
                .map_err(Stop::for_push)
            }
            Err(e) => Err(e.for_push()),
        }
    }

    /// Claims the oldest message, waiting while the ring is empty: spin as `spin` says,
    /// then sleep, until `deadline` (`None`: forever). `me` and `who` as in
    /// [`push_claim`](Self::push_claim).
    ///
    /// # Errors
    /// [`MpmcError::Empty`] at the deadline, [`MpmcError::Closed`] when closed and
    /// drained, [`MpmcError::Corrupt`].
    #[inline]
    pub fn pop_claim(
        &self,
        s: &impl Slots,
        me: &AtomicU64,
        who: &impl Liveness,
        deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> Result<Claim, MpmcError> {
        if let Some(c) = self.pop_fast(s, me) {
            return Ok(c);
        }
        let mut stuck = Stuck::default();
        match self.pop_step(s, me, &mut stuck) {
            Ok(c) => Ok(c),
            Err(e) if e.must_wait() => self
                .wait_for(
                    Side::Consumer,
                    s,
                    e,
                    |stuck| self.pop_step(s, me, stuck),
                    || true,
                    who,
                    deadline,
                    spin,
                )
                .map_err(Stop::for_pop),
            Err(e) => Err(e.for_pop()),
        }
    }

    /// The slow path of both blocking claims: `attempt` stops with a [`Stop`] that says
    /// where it waits (`first`: what the caller's attempt found); `side` names the futex
    /// word and the waiter count to sleep on.
    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn wait_for(
        &self,
        side: Side,
        s: &impl Slots,
        first: Stop,
        mut attempt: impl FnMut(&mut Stuck) -> Result<Claim, Stop>,
        mut worth_it: impl FnMut() -> bool,
        who: &impl Liveness,
        deadline: Option<Instant>,
        spin: SpinPolicy,
    ) -> Result<Claim, Stop> {
        let mut stuck = Stuck::default();
        // A look reads only shared lines until something changes (`SpinPolicy::spin`).
        let mut why = first;
        let spun = spin.spin(|| {
            if !worth_it() {
                return None;
            }
            match attempt(&mut stuck) {
                Err(e) if e.must_wait() => {
                    why = e;
                    None
                }
                r => Some(r),
            }
        });
        if let Some(r) = spun {
            return r;
        }
        let geo = geometry(s);
        let w = &self.wake.0;
        let (word, waiters) = match side {
            Side::Consumer => (&w.not_empty, &w.get_waiters),
            Side::Producer => (&w.not_full, &w.put_waiters),
        };
        // A waiter whose party had already claimed when it registered naps (and so may
        // never be woken): on the claim schedule, 50 µs doubling to 10 ms.
        let mut nap = Recheck::CLAIM;
        // When to look at the holder of a claim in the way (and wake from a sleep that
        // no claim's holder may end: it may have died): the liveness schedule, or never
        // (a model without deaths, where a lost wake-up must show up as a deadlock).
        let mut look = who.recheck();
        let mut next_look = look.and_then(|r| time::deadline_after(r.interval()));
        let mut busy = 0u32;
        loop {
            // The model's clock, before the looks that may decide to nap (`futex::nap`):
            // the attempt after registering, and the look at a holder's liveness.
            let since = futex::tick();
            // Read before the re-check below (SYNC POINT "event count"), so a bump after
            // the re-check changes the word and the wait will not sleep on a stale value.
            let seq = word.key();
            let registered = Waiters::register(waiters);
            // SYNC POINT (waiter / claim): pairs with `registered`, right after the claim
            // CAS of the other side, and with the fence in `close`.
            fence(Ordering::SeqCst);
            why = match attempt(&mut stuck) {
                Err(e) if e.must_wait() => e,
                r => {
                    if registered {
                        Waiters::leave(waiters);
                    }
                    return r;
                }
            };
            // Is a dead party's claim what stops us? (On the liveness schedule; under loom
            // at every look, so that a model never naps on a claim it could end.)
            if look.is_some() && time::expired(next_look) {
                let recovered = self.recover(s, why, who) == Recovery::Recovered;
                if let Some(r) = &mut look {
                    if recovered {
                        *r = who.recheck().unwrap_or(*r);
                    } else {
                        r.backoff();
                    }
                    next_look = time::deadline_after(r.interval());
                }
                if recovered {
                    // Whatever we waited on may be ours now: look again at once.
                    if registered {
                        Waiters::leave(waiters);
                    }
                    nap = Recheck::CLAIM;
                    continue;
                }
            }
            if why == Stop::Busy {
                busy += 1;
                if busy >= BUSY_NAPS {
                    if registered {
                        Waiters::leave(waiters);
                    }
                    return Err(Stop::Corrupt);
                }
            } else {
                busy = 0;
            }
            // Sleep until woken if the claim that ends our wait is still to come: it
            // comes after our fence and sees our registration (but its claimer may die
            // before its publish: with a liveness schedule, the sleep is a nap until the
            // next look). If it was made already, it may have looked before we
            // registered: nap, and look again. (So does a party that found no room to
            // register.)
            let ahead = registered && self.claim_is_ahead(why, geo);
            let until_look = next_look.map(|at| at.saturating_duration_since(Instant::now()));
            let res = match (ahead, until_look) {
                (true, None) => word.wait(seq, deadline),
                (true, Some(look_in)) => futex::nap(word.word(), seq, since, deadline, look_in),
                (false, _) => {
                    // A nap: the claimer normally finishes within nanoseconds, but a loan,
                    // or a process the scheduler paused, can hold its claim for longer.
                    let interval = until_look.map_or(nap.interval(), |l| l.min(nap.interval()));
                    let res = futex::nap(word.word(), seq, since, deadline, interval);
                    nap.backoff();
                    res
                }
            };
            if registered {
                Waiters::leave(waiters);
            }
            match attempt(&mut stuck) {
                // (The loop looks again, registered, before anything else.)
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

    /// Counts the task of push claim `c`, whose message is written, just before it is
    /// published (module docs, "Tasks"): in `mine`, the caller's entry, or in the shared
    /// spare counts if it has none.
    #[inline]
    pub fn count_put(&self, mine: Option<&Claimer>, c: &Claim) {
        let j = &self.join.0;
        // The hint first: a death between the two leaves it too high, never too low.
        // Relaxed: the publish that follows (Release) orders it for the consumer, whose
        // `task_done` comes after its Acquire of the message.
        j.unfinished.fetch_add(1, Ordering::Relaxed);
        match mine {
            Some(e) => e.count_put(c.stamp.wrapping_sub(1)),
            // Relaxed: as above.
            None => drop(j.spare_put.fetch_add(1, Ordering::Relaxed)),
        }
    }

    /// Counts the task of pop claim `c` (a message, not a skipped slot) as taken by the
    /// caller, after it read the message and before it releases the slot.
    #[inline]
    pub fn count_took(&self, s: &impl Slots, mine: Option<&Claimer>, c: &Claim) {
        let (_, one_lap) = geometry(s);
        match mine {
            Some(e) => e.count_took(c.stamp.wrapping_sub(one_lap)),
            // Relaxed: a count, read by `tasks` through its double read.
            None => drop(self.join.0.spare_took.fetch_add(1, Ordering::Relaxed)),
        }
    }

    /// The hint one lower (a voided task), never below zero; wakes joiners at zero.
    fn unfinished_down(&self) {
        let j = &self.join.0;
        // Release: as in `task_done`.
        if let Ok(1) = j
            .unfinished
            .fetch_update(Ordering::Release, Ordering::Relaxed, |n| n.checked_sub(1))
        {
            self.wake_joiners();
        }
    }

    /// Marks one task done (in `mine`, the caller's entry, or the spare counts). Wakes
    /// joiners when the count reaches zero.
    ///
    /// # Errors
    /// [`TaskDoneError`] when no task is unfinished (more `task_done`s than items); nothing
    /// is counted then.
    pub fn task_done(&self, mine: Option<&Claimer>) -> Result<(), TaskDoneError> {
        let j = &self.join.0;
        // Relaxed: the CAS re-checks.
        let mut cur = j.unfinished.load(Ordering::Relaxed);
        loop {
            if cur == 0 {
                return Err(TaskDoneError);
            }
            // Release: pairs with the Acquire loads in `join`: work done before
            // `task_done` is visible to the process that `join` returns in.
            match j.unfinished.compare_exchange_weak(
                cur,
                cur - 1,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(v) => cur = v,
            }
        }
        match mine {
            Some(e) => e.count_done(),
            // Release: as above, for the snapshot's reads.
            None => drop(j.spare_done.fetch_add(1, Ordering::Release)),
        }
        if cur == 1 {
            self.wake_joiners();
        }
        Ok(())
    }

    /// Wakes the joiners (the count reached zero, or a recovery changed it).
    fn wake_joiners(&self) {
        let j = &self.join.0;
        // SYNC POINT (last task_done / sleeping joiner): pairs with the fence in `join`.
        fence(Ordering::SeqCst);
        // Relaxed: ordered by the fence above.
        if j.join_waiters.load(Ordering::Relaxed) != 0 {
            j.done_seq.notify_all();
        }
    }

    /// Unfinished tasks, as the fast path counts them (a snapshot; too high after a
    /// death, see the module docs): [`tasks`](Self::tasks) gives the exact counts.
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

    /// The journal words of every entry, and the spare counts, in one read.
    fn journal(&self, s: &impl Slots, into: &mut Vec<u64>) {
        into.clear();
        for e in s.claimers() {
            into.extend_from_slice(&e.journal());
        }
        let j = &self.join.0;
        // Acquire: pairs with the Release updates of the spare counts.
        into.push(j.spare_put.load(Ordering::Acquire));
        into.push(j.spare_took.load(Ordering::Acquire));
        into.push(j.spare_done.load(Ordering::Acquire));
    }

    /// The exact task counts (module docs, "Tasks"): the entries are read until two reads
    /// agree (every word only grows), so the counts held at one moment. `None` when they
    /// kept changing (tasks are moving: there is no need to decide now).
    pub fn tasks(&self, s: &impl Slots, who: &impl Liveness) -> Option<Tasks> {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        self.journal(s, &mut a);
        let mut agreed = false;
        for _ in 0..8 {
            self.journal(s, &mut b);
            if a == b {
                agreed = true;
                break;
            }
            core::mem::swap(&mut a, &mut b);
        }
        if !agreed {
            return None;
        }
        // Counts wrap at 2^32 per entry; the sums are taken in the same ring of numbers.
        let (mut put, mut took, mut done, mut voided) = (0u32, 0u32, 0u32, 0u32);
        let (mut abandoned, mut held) = (0i64, 0i64);
        for (e, w) in s.claimers().iter().zip(a.chunks_exact(4)) {
            let (p, t, d, v) = (
                (w[0] >> 32) as u32,
                (w[1] >> 32) as u32,
                w[2] as u32,
                w[3] as u32,
            );
            put = put.wrapping_add(p);
            took = took.wrapping_add(t);
            done = done.wrapping_add(d);
            voided = voided.wrapping_add(v);
            let mine = i64::from(t.wrapping_sub(d) as i32);
            match e.owner() {
                Some((pid, start)) if who.is_dead(pid, start) => abandoned += mine.max(0),
                _ => held += mine,
            }
        }
        let spare = &a[a.len() - 3..];
        put = put.wrapping_add(spare[0] as u32);
        took = took.wrapping_add(spare[1] as u32);
        done = done.wrapping_add(spare[2] as u32);
        held += i64::from((spare[1] as u32).wrapping_sub(spare[2] as u32) as i32);
        let unfinished = i64::from(put.wrapping_sub(voided).wrapping_sub(done) as i32).max(0);
        let queued = i64::from(put.wrapping_sub(voided).wrapping_sub(took) as i32).max(0);
        Some(Tasks {
            unfinished: unfinished as u64,
            queued: queued as u64,
            abandoned: (abandoned.min(unfinished)) as u64,
            held,
        })
    }

    /// Waits until every task is done (`Ok`), until `deadline`, or until every task left
    /// was abandoned by a process that died ([`JoinStop::Abandoned`]: nothing left to wait
    /// for). `who` judges the deaths.
    ///
    /// # Errors
    /// [`JoinStop::Timeout`], [`JoinStop::Abandoned`].
    pub fn join(
        &self,
        s: &impl Slots,
        deadline: Option<Instant>,
        spin: SpinPolicy,
        who: &impl Liveness,
    ) -> Result<(), JoinStop> {
        let j = &self.join.0;
        // Acquire: pairs with the Release CAS in `task_done`.
        let quiet = || j.unfinished.load(Ordering::Acquire) == 0;
        spin.attempts(|| {
            if quiet() {
                Round::Done(())
            } else {
                Round::Again
            }
        });
        let mut look = who.recheck();
        // For the counts to catch up with a hint at zero (a `task_done` between its two
        // counts, or counts still moving).
        let mut nap = Recheck::CLAIM;
        loop {
            // Decided on the counts themselves: the hint may be too high after a death.
            if let Some(t) = self.tasks(s, who) {
                if t.unfinished == 0 {
                    return Ok(());
                }
                if t.queued == 0 && t.held <= 0 && t.abandoned > 0 {
                    return Err(JoinStop::Abandoned(t.unfinished));
                }
            }
            // Read before the registration and re-check (SYNC POINT "event count").
            let seq = j.done_seq.key();
            // Relaxed: ordered by the fence below.
            j.join_waiters.fetch_add(1, Ordering::Relaxed);
            // SYNC POINT: pairs with the fence in `wake_joiners`.
            fence(Ordering::SeqCst);
            let wake_at = if quiet() {
                let at = nap.wake_at(deadline);
                nap.backoff();
                at
            } else {
                match &look {
                    Some(r) => r.wake_at(deadline),
                    None => deadline,
                }
            };
            let w = j.done_seq.wait(seq, wake_at);
            // Relaxed: a count.
            j.join_waiters.fetch_sub(1, Ordering::Relaxed);
            if w == WaitResult::TimedOut {
                if time::expired(deadline) {
                    return match self.tasks(s, who) {
                        Some(t) if t.unfinished == 0 => Ok(()),
                        _ => Err(JoinStop::Timeout),
                    };
                }
                if let Some(r) = &mut look {
                    r.backoff();
                }
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
