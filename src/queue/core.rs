//! The part every queue handle shares: the ring in the arena, the slots after it, and the
//! process-local, validated geometry used to reach them.
//!
//! The slot layout (and the block word of a byte queue's message too long for its slot)
//! is in [`raw::slots`](crate::raw::slots): arithmetic the arena's finalizer shares.
//!
//! The slot array starts right after the [`MpmcRing`], at [`SLOTS_OFFSET`]; after it, on
//! a 64-byte boundary, comes the table of [`CLAIMERS`] entries in which each thread that
//! uses the queue records the claims it makes ([`Claimer`]: how the survivors of a process
//! that died with a claim find and end it, see [`raw::mpmc`](crate::raw::mpmc)). The
//! geometry (capacity, stride, payload size) is decided when the queue is made, recorded
//! in the arena's directory entry (`param`), and re-derived and checked against the
//! block's size when another process opens the queue: after that, every slot and entry
//! address this process computes is inside the block, whatever a peer writes into the
//! arena.
//!
//! # A thread's entry
//!
//! A claim records its holder with one store into the holder's entry (the claim's
//! *intent*). Each thread finds its entry in a ring's table once (a search of the table,
//! taking a free entry or one whose owner died) and keeps it in a small per-thread cache
//! (eight lines, by the table's address), so a put or a get finds it with a few loads of
//! its own thread's memory. The cache is dropped in the child of a `fork` (its threads
//! are new) and whenever a queue handle is made (a table may have been unmapped, and
//! another mapped at its address). A thread that finds no entry (every one held by a live
//! thread) claims unrecorded: its claims are not recovered if its process dies.

use crate::arena::ObjectKind;
use crate::error::{Error, Result};
use crate::object::{Fresh, Inspect, Obj, Object, Word};
use crate::raw::mpmc::{
    self as ring, initial_stamp, Claim, Claimer, MpmcError, MpmcRing, Recovery, Slots,
};
use crate::raw::Side;
use crate::sync::liveness::Procfs;
use crate::sync::{AtomicU64, Ordering};
use crate::SpinPolicy;
use std::borrow::Cow;
use std::time::Instant;

pub(crate) use crate::raw::slots::{typed_layout, SlotGeometry, CLAIMERS, SLOTS_OFFSET};
use crate::raw::slots::{BLOCK_WORD, BYTES_HEADER, TABLE_BYTES};

/// The shared ring plus this process's view of its slots.
#[derive(Clone)]
pub(crate) struct Core {
    raw: Obj<Ring>,
    geo: SlotGeometry,
    /// `Slots::mark_bit`, computed once.
    mark_bit: u64,
    /// Where the table of claimers starts in the block (`SlotGeometry::table_offset`).
    table: usize,
    /// This view's number (shared by its clones): the key of the per-thread cache of
    /// entries (module docs, "A thread's entry").
    id: u64,
    pub spin: SpinPolicy,
}

impl Slots for Core {
    #[inline]
    fn capacity(&self) -> u64 {
        self.geo.cap
    }

    #[inline]
    fn mark_bit(&self) -> u64 {
        self.mark_bit
    }

    #[inline]
    fn stamp(&self, index: u64) -> &AtomicU64 {
        // SAFETY: `slot_ptr` gives an in-bounds, 8-aligned address (see there); the stamp
        // is only ever accessed atomically, and lives as long as `self.raw`.
        unsafe { &*self.slot_ptr(index).cast::<AtomicU64>() }
    }

    #[inline]
    fn claimers(&self) -> &[Claimer] {
        self.table()
    }
}

/// A geometry in the directory's word: a kind's `encode` and `decode` say how (a typed
/// queue records its capacity, a byte queue also its message size).
impl Word for SlotGeometry {
    fn to_word(&self) -> u64 {
        self.cap
    }
    /// `None`: the element type is needed; every kind decodes its own word.
    fn from_word(_: u64) -> Option<SlotGeometry> {
        None
    }
}

/// The ring as the core sees it: what every queue kind's object is, once opened (each
/// kind recasts its own object into this one; see [`queue_object!`]).
pub(crate) enum Ring {}

impl Object for Ring {
    type State = MpmcRing;
    type Params = SlotGeometry;
    const KIND: ObjectKind = ObjectKind::Queue;

    fn type_name() -> Cow<'static, str> {
        "queue ring".into()
    }

    fn decode(_: u64, _: &MpmcRing) -> Result<SlotGeometry> {
        // Never opened as itself: every kind opens as its own type, then recasts.
        Err(Error::Corrupt(
            "a queue ring is opened through its kind".into(),
        ))
    }
}

/// What every queue kind declares alike: its block is the ring and the slots of
/// `geometry`, whose stamps start as `initial_stamp(i)`; `inspect` shows the queue's
/// depth. The kind gives its `KIND`, name, fingerprint and how its parameter word encodes
/// the geometry.
macro_rules! queue_object {
    (
        impl<$($gen:ident: $bound:path),*> for $ty:ty, $kind:expr, $name:expr, $fp:expr,
        encode($ge:ident) $encode:block,
        decode($param:ident) $decode:block
    ) => {
        impl<$($gen: $bound),*> crate::object::Object for $ty {
            type State = crate::raw::mpmc::MpmcRing;
            type Params = crate::queue::core::SlotGeometry;
            const KIND: crate::arena::ObjectKind = $kind;

            fn type_name() -> std::borrow::Cow<'static, str> {
                $name
            }

            fn fingerprint() -> u64 {
                $fp
            }

            fn size(g: &crate::queue::core::SlotGeometry) -> crate::error::Result<usize> {
                g.block_size()
            }

            fn encode($ge: &crate::queue::core::SlotGeometry) -> u64 $encode

            fn decode(
                $param: u64,
                _: &crate::raw::mpmc::MpmcRing,
            ) -> crate::error::Result<crate::queue::core::SlotGeometry> $decode

            fn init(
                g: &crate::queue::core::SlotGeometry,
                fresh: crate::object::Fresh<'_, crate::raw::mpmc::MpmcRing>,
            ) {
                crate::queue::core::init_slots(g, fresh)
            }

            fn inspect(
                ring: &crate::raw::mpmc::MpmcRing,
                g: &crate::queue::core::SlotGeometry,
                out: &mut crate::object::Inspect,
            ) {
                crate::queue::core::inspect(ring, g, out)
            }
        }
    };
}
pub(crate) use queue_object;

/// What every queue handle reports of its queue, under Python's names and Rust's,
/// written once: `queue_state!(core)` in a handle's `impl`, the path after `self.` naming
/// its [`Core`] (`q.core` for a handle over another).
macro_rules! queue_state {
    ($($core:ident).+) => {
        /// True once the queue was closed (by any process).
        pub fn is_closed(&self) -> bool {
            self.$($core).+.is_closed()
        }

        /// Messages in the queue: approximate while others put or get, exact when quiet.
        pub fn qsize(&self) -> usize {
            self.$($core).+.len()
        }

        /// True when [`qsize`](Self::qsize) is 0 (approximate under concurrency).
        pub fn empty(&self) -> bool {
            self.qsize() == 0
        }

        /// True when [`qsize`](Self::qsize) is the capacity (approximate under
        /// concurrency).
        pub fn full(&self) -> bool {
            self.qsize() == self.capacity()
        }

        /// [`qsize`](Self::qsize), by the name Rust's collections use.
        ///
        /// ```
        /// let q = shmproc::queue::Queue::<u8>::new(2)?;
        /// q.put(1).unwrap();
        /// assert_eq!((q.len(), q.is_empty(), q.is_full()), (1, false, false));
        /// # Ok::<(), shmproc::Error>(())
        /// ```
        pub fn len(&self) -> usize {
            self.qsize()
        }

        /// [`empty`](Self::empty), by the name Rust's collections use.
        pub fn is_empty(&self) -> bool {
            self.empty()
        }

        /// [`full`](Self::full), by the name Rust's collections use.
        pub fn is_full(&self) -> bool {
            self.full()
        }

        /// The number of slots (Python's `maxsize`).
        pub fn capacity(&self) -> usize {
            self.$($core).+.geo().cap as usize
        }

        /// Messages lost with consumers that died while they held them (taken, not yet
        /// released), since the queue was made. Nothing else is ever lost: a producer
        /// that dies mid-put never sent its message, and the survivors skip its slot (see
        /// [`raw::mpmc`](crate::raw::mpmc), "A party that dies").
        ///
        /// ```
        /// let q = shmproc::queue::Queue::<u8>::new(2)?;
        /// assert_eq!((q.lost(), q.recovered()), (0, 0));
        /// # Ok::<(), shmproc::Error>(())
        /// ```
        pub fn lost(&self) -> u64 {
            self.$($core).+.ring().lost()
        }

        /// Claims of dead processes that survivors ended, since the queue was made: puts
        /// published skipped (nothing lost) plus the [`lost`](Self::lost) gets. Counts a
        /// peer can write: the sum saturates.
        pub fn recovered(&self) -> u64 {
            let ring = self.$($core).+.ring();
            ring.skipped().saturating_add(ring.lost())
        }
    };
}
pub(crate) use queue_state;

/// The claims made and not ended that the table of the ring at `ring` records
/// ([`MpmcRing::held_claims`]), when `len` bytes of its block are readable from `ring` on
/// (the whole block in a live mapping; what a snapshot copied); unknown when the slots or
/// the table lie beyond `len` (`None`). For inspection: who holds what, judged alive or not
/// by the caller.
pub(crate) fn held_claims(
    ring: &MpmcRing,
    len: usize,
    g: &SlotGeometry,
) -> Option<Vec<ring::HeldClaim>> {
    let table = g.table_offset().ok()?;
    if table.checked_add(TABLE_BYTES).is_none_or(|end| end > len) || g.stride < 8 {
        return None;
    }
    let view = BlockSlots {
        base: (ring as *const MpmcRing).cast::<u8>(),
        g,
        table,
        _ring: core::marker::PhantomData,
    };
    Some(ring.held_claims(&view))
}

/// The slots and table of a ring's block, read through a pointer to its start (for
/// [`held_claims`]): `table + TABLE_BYTES` bytes readable, checked by the one maker.
struct BlockSlots<'a> {
    base: *const u8,
    g: &'a SlotGeometry,
    table: usize,
    _ring: core::marker::PhantomData<&'a MpmcRing>,
}

impl Slots for BlockSlots<'_> {
    fn capacity(&self) -> u64 {
        self.g.cap
    }

    fn stamp(&self, index: u64) -> &AtomicU64 {
        // SAFETY: the `cap` slots of `stride` bytes from `SLOTS_OFFSET` lie before `table`
        // (`table_offset`), inside the readable bytes `held_claims` checked; a slot starts
        // with its stamp, 8-aligned (the block is cache-line aligned, `SLOTS_OFFSET` and
        // the stride are multiples of 8); any bits are an `AtomicU64`, and it lives as
        // long as the ring `'a` borrows.
        unsafe {
            let slots = self.base.add(SLOTS_OFFSET).cast_mut();
            &*slot_in(slots, self.g.cap, self.g.stride, index).cast::<AtomicU64>()
        }
    }

    fn claimers(&self) -> &[Claimer] {
        // SAFETY: `table .. table + TABLE_BYTES` lies inside the readable bytes (checked by
        // `held_claims`), 64-aligned (`table_offset`) as `Claimer` needs; entries are
        // atomics only (`SharedState`: any bytes are a value), living as long as `'a`.
        unsafe {
            core::slice::from_raw_parts(self.base.add(self.table).cast::<Claimer>(), CLAIMERS)
        }
    }
}

/// Writes every slot's initial stamp (zeroed memory is an empty ring otherwise).
pub(crate) fn init_slots(g: &SlotGeometry, mut fresh: Fresh<'_, MpmcRing>) {
    let slots = fresh.tail(SLOTS_OFFSET);
    for i in 0..g.cap {
        let at = i as usize * g.stride;
        // In bounds: the block is SLOTS_OFFSET + cap * stride bytes (`block_size`), and a
        // stride is at least 8.
        slots[at..at + 8].copy_from_slice(&initial_stamp(i).to_ne_bytes());
    }
}

/// The live state every queue kind shows.
pub(crate) fn inspect(ring: &MpmcRing, g: &SlotGeometry, out: &mut Inspect) {
    out.field("capacity", g.cap);
    out.field("qsize", ring.len_in(g.cap));
    out.field("closed", ring.is_closed_in(g.cap));
    let (getters, putters) = ring.sleepers();
    out.field("get_waiters", getters);
    out.field("put_waiters", putters);
    out.field("lost", ring.lost());
    out.field("skipped", ring.skipped());
}

impl Core {
    /// This process's view of a ring block with geometry `geo` (which the object layer
    /// checked against the block's size: `block_size` bytes).
    pub(crate) fn new(raw: Obj<Ring>) -> Core {
        let geo = *raw.params();
        Core {
            raw,
            mark_bit: ring::mark_bit(geo.cap),
            table: geo.table_offset().unwrap_or(usize::MAX),
            id: mine::new_id(),
            geo,
            spin: SpinPolicy::default(),
        }
    }

    /// The table of claimers.
    #[inline]
    fn table(&self) -> &[Claimer] {
        let block = self.raw.block();
        if self.table.saturating_add(TABLE_BYTES) > block.len() {
            // Unreachable: the block holds `block_size` bytes (checked at create / open).
            return &[];
        }
        // SAFETY: `table..table + TABLE_BYTES` is inside the block (checked above), whose
        // base is aligned to a cache line and `table` to 64 (`table_offset`), so the
        // entries are aligned; they are atomics only (any bytes are a value), zeroed at
        // creation, and live as long as `self.raw`.
        unsafe {
            core::slice::from_raw_parts(block.base().add(self.table).cast::<Claimer>(), CLAIMERS)
        }
    }

    /// This thread's entry in the table, if it has one (module docs, "A thread's entry").
    #[inline]
    pub(crate) fn mine(&self) -> Option<&Claimer> {
        let entry = match mine::lookup(self.id) {
            Some(line) => line.entry,
            None => self.enter().entry,
        };
        // SAFETY: the cache keeps, under this view's number, only entries of this view's
        // table (`enter`), which live as long as `self.raw`; it is dropped in the child of
        // a fork, whose threads are new.
        (entry != 0).then(|| unsafe { &*(entry as *const Claimer) })
    }

    /// [`mine`](Self::mine) when the cache does not know: search the table.
    #[inline(never)]
    fn enter(&self) -> mine::Line {
        let t = self.table();
        let e = self.ring().enter(self, &Procfs).and_then(|i| t.get(i));
        mine::remember(self.id, e)
    }

    /// [`enter`](Self::enter), for the word only (in a register, on the fast path).
    /// Cold: the cache's hit is the fall-through of every claim.
    #[cold]
    #[inline(never)]
    fn enter_word(&self) -> usize {
        self.enter().word
    }

    /// The intent word this thread's put / get claims record themselves in (`k` = 0:
    /// word 0 of its entry), or a loan's (`k` > 0); a word of no entry when the thread has
    /// none.
    #[inline(always)]
    pub(crate) fn intent(&self, k: usize) -> &AtomicU64 {
        if k == 0 {
            let word = match mine::lookup_word(self.id) {
                Some(w) => w.get(),
                None => self.enter_word(),
            };
            // SAFETY: `word` is word 0 of an entry of this view's table, or the static
            // word of no entry (`mine::remember`); see `mine`.
            return unsafe { &*(word as *const AtomicU64) };
        }
        match self.mine() {
            Some(e) => e.intent(k),
            None => mine::unrecorded(),
        }
    }

    /// A free loan word of this thread's entry (1 ..), lent until the [`Loan`] is
    /// dropped; word 0 of no entry when the thread has no entry or has lent every loan
    /// word already (the loan's claim then goes unrecorded).
    pub(crate) fn loan_word(&self) -> Loan {
        match self.mine() {
            Some(e) => match e.take_loan() {
                Some(k) => Loan {
                    k,
                    entry: e as *const Claimer as usize,
                },
                None => Loan { k: 0, entry: 0 },
            },
            None => Loan { k: 0, entry: 0 },
        }
    }

    /// The intent word of `loan`.
    pub(crate) fn loan_intent(&self, loan: &Loan) -> &AtomicU64 {
        match self.mine() {
            Some(e) if loan.k != 0 && e as *const Claimer as usize == loan.entry => {
                e.intent(loan.k)
            }
            _ => mine::unrecorded(),
        }
    }

    /// The reference this core holds, seen as the object of kind `O` (how a queue
    /// handle travels, `object::Shared`, and shows itself, `Debug`).
    pub(crate) fn obj_ref<O: Object<State = MpmcRing, Params = SlotGeometry>>(&self) -> &Obj<O> {
        self.raw.recast_ref()
    }

    /// Start of the block, for tests that scribble on the shared state.
    #[cfg(test)]
    pub(crate) fn base_for_tests(&self) -> *mut u8 {
        self.raw.block().base()
    }

    #[inline]
    pub(crate) fn ring(&self) -> &MpmcRing {
        &self.raw
    }

    #[inline]
    pub(crate) fn geo(&self) -> &SlotGeometry {
        &self.geo
    }

    /// Start of slot `index`.
    #[inline]
    fn slot_ptr(&self, index: u64) -> *mut u8 {
        // SAFETY: the slots of this block, with its own geometry.
        unsafe { slot_in(self.slots_base(), self.geo.cap, self.geo.stride, index) }
    }

    /// Start of slot 0.
    #[inline(always)]
    fn slots_base(&self) -> *mut u8 {
        // SAFETY: the block holds SLOTS_OFFSET + cap * stride bytes (checked at create /
        // open), so SLOTS_OFFSET is inside it or one past its end.
        unsafe { self.raw.block().base().add(SLOTS_OFFSET) }
    }

    /// The length word of a claimed slot of a byte queue.
    #[inline]
    fn meta_ptr(&self, c: &Claim) -> *mut u32 {
        debug_assert!(
            self.geo.payload_off >= BYTES_HEADER,
            "a typed slot has no length"
        );
        // SAFETY: offset 8 of an in-bounds slot whose header has BYTES_HEADER bytes (byte
        // queues only, the callers of `publish_len` / `len_of`).
        unsafe { self.slot_ptr(c.index).add(8).cast() }
    }

    /// The block word of a claimed slot of a byte queue (`raw::slots`: the offset of the
    /// block holding a message too long for the slot, 0 when none).
    #[inline]
    pub(crate) fn block_word(&self, c: &Claim) -> &AtomicU64 {
        debug_assert!(self.geo.bytes, "a typed slot has no block word");
        // SAFETY: offset BLOCK_WORD of an in-bounds slot whose header has BYTES_HEADER
        // bytes (byte queues only), 8-aligned (slots are, and BLOCK_WORD is 16); an
        // `AtomicU64` is valid for any bits; it lives as long as `self.raw`.
        unsafe { &*self.slot_ptr(c.index).add(BLOCK_WORD).cast::<AtomicU64>() }
    }

    /// The arena the queue lives in (its heap holds the messages too long for a slot).
    #[inline]
    pub(crate) fn arena(&self) -> &crate::Arena {
        self.raw.block().arena()
    }

    /// Before a producer writes a claimed slot of a byte queue: frees a block the slot
    /// still names (a message lost with a consumer that died holding it, or one whose
    /// consumer could not free it by its deadline), waiting for the heap's lock no
    /// longer than `wait` allows. Left named if that fails: the slot's next producer
    /// tries again (see [`free_stale`](Self::free_stale)).
    #[inline]
    pub(crate) fn clear_stale(&self, c: &Claim, wait: Wait) {
        // Relaxed: we hold the claim; its Acquire stamp load pairs with the Release
        // store that freed the slot for this lap, after the word was last written.
        if self.block_word(c).load(Ordering::Relaxed) != 0 {
            let _ = self.free_stale(c, wait);
        }
    }

    /// Frees the block a claimed slot of a byte queue still names: a message that was
    /// lost with a consumer that died, allocated by a producer that died before it
    /// published (`raw::slots`), or read by a consumer (`ByteQueue::done`). A word a peer
    /// scribbled on is refused by the heap and left (reported as `Corrupt`).
    ///
    /// The wait for the heap's lock ends by `wait`'s deadline ([`Wait::bound`]); a free
    /// that fails for that leaves the block named by the slot's word, which is safe: the
    /// word is read as a block only under a length of `INDIRECT`, which only a producer
    /// that allocated into the word (after freeing what it named: `put_indirect`) writes;
    /// and every producer that claims the slot later frees what the word still names
    /// before it writes (`clear_stale` on the in-slot paths, `put_indirect`'s
    /// `free_from`), as does a consumer passing it skipped (`pop_message_with`), and the
    /// queue's finalizer frees whatever the slots name when the queue goes
    /// (`raw::slots::finalize_bytes`). So the block is only freed later, never lost.
    #[cold]
    pub(crate) fn free_stale(&self, c: &Claim, wait: Wait) -> Result<(), MpmcError> {
        use crate::raw::owned::Blocks;
        let arena = self.raw.block().arena();
        wait.bound(|| arena.free_from(self.block_word(c)))
            .map_err(|_| MpmcError::Corrupt)
    }

    /// The payload of a claimed slot (`geo.payload` bytes, aligned as asked at creation).
    #[inline]
    pub(crate) fn payload_ptr(&self, c: &Claim) -> *mut u8 {
        // SAFETY: payload_off + payload <= stride, so the payload is inside the slot.
        unsafe { self.slot_ptr(c.index).add(self.geo.payload_off) }
    }

    /// Claims a slot to write, as `wait` says; the claim records itself in the intent
    /// word `me` ([`intent`](Self::intent), [`loan_intent`](Self::loan_intent)).
    #[inline]
    pub(crate) fn push_claim_with(&self, me: &AtomicU64, wait: Wait) -> Result<Claim, MpmcError> {
        match wait {
            Wait::Never => self
                .ring()
                .try_push_claim(self, me)
                .inspect_err(|_| self.try_failed(Side::Producer)),
            Wait::Until(d) => self.ring().push_claim(self, me, &Procfs, d, self.spin),
        }
    }

    /// Claims a message to read, as `wait` says; `me` as in
    /// [`push_claim_with`](Self::push_claim_with).
    #[inline]
    pub(crate) fn pop_claim_with(&self, me: &AtomicU64, wait: Wait) -> Result<Claim, MpmcError> {
        match wait {
            Wait::Never => self
                .ring()
                .try_pop_claim(self, me)
                .inspect_err(|_| self.try_failed(Side::Consumer)),
            Wait::Until(d) => self.ring().pop_claim(self, me, &Procfs, d, self.spin),
        }
    }

    /// [`push_claim_with`](Self::push_claim_with) this thread's put / get word.
    #[inline]
    pub(crate) fn push_claim(&self, wait: Wait) -> Result<Claim, MpmcError> {
        self.push_claim_with(self.intent(0), wait)
    }

    /// After a `try_*` claim of `side` failed: a claim in the way whose holder may have
    /// died is looked at (and ended, if it did) on the liveness schedule of this thread's
    /// memo, so that a caller that only polls recovers too. Costs a counter per failure;
    /// the look itself (which reads the other side's index) comes once in
    /// [`memo::EVERY`] failures on the same queue, then on the liveness schedule.
    #[cold]
    pub(crate) fn try_failed(&self, side: Side) {
        let key = self.raw.block().base() as usize ^ usize::from(side == Side::Consumer);
        if memo::due(key) {
            let r = self.ring().recover_stuck(self, side, &Procfs);
            memo::looked(key, r == Recovery::Recovered);
        }
    }

    /// True if `layout` (`(payload_off, stride)`) is this queue's slot layout: the check
    /// a typed handle makes once, when it is made, before it calls [`fixed`](Self::fixed).
    pub(crate) fn fixed_layout_matches(&self, layout: (usize, usize)) -> bool {
        layout == (self.geo.payload_off, self.geo.stride)
    }

    /// A view of the slots whose layout is `layout`, a constant of the caller's type:
    /// every slot address is then a shift and an add, where [`Core`]'s own [`Slots`]
    /// multiplies by the stride it loads from the geometry (an `imul`, three cycles on the
    /// path from the index to the stamp, in every claim). It carries this thread's
    /// intent word, found once per operation.
    ///
    /// # Safety
    /// [`fixed_layout_matches(layout)`](Self::fixed_layout_matches) is true.
    #[inline(always)]
    pub(crate) unsafe fn fixed(&self, layout: (usize, usize)) -> Fixed<'_> {
        // SAFETY: the caller's contract.
        unsafe { self.fixed_with(layout, self.intent(0)) }
    }

    /// [`fixed`](Self::fixed) with the intent word `me` the caller already found (a slow
    /// path, after the fast path's lookup: the lookup is most of what recording claims
    /// costs a claim).
    ///
    /// # Safety
    /// As [`fixed`](Self::fixed).
    #[inline(always)]
    pub(crate) unsafe fn fixed_with<'a>(
        &'a self,
        layout: (usize, usize),
        me: &'a AtomicU64,
    ) -> Fixed<'a> {
        debug_assert!(self.fixed_layout_matches(layout));
        Fixed {
            ring: self.ring(),
            slots: self.slots_base(),
            cap: self.geo.cap,
            mark_bit: self.mark_bit,
            payload_off: layout.0,
            stride: layout.1,
            me,
        }
    }

    /// Publishes a claimed slot whose payload was written.
    #[inline]
    pub(crate) fn publish(&self, c: Claim) {
        self.ring().publish(self, c);
    }

    /// Publishes a claimed slot of a byte queue whose payload was written, with its length.
    #[inline]
    pub(crate) fn publish_len(&self, c: Claim, len: u32) {
        // SAFETY: we hold the claim: nobody else reads or writes this slot until the
        // publish below; meta_ptr is in bounds and 4-aligned.
        unsafe { self.meta_ptr(&c).write(len) };
        self.ring().publish(self, c);
    }

    /// Publishes a claimed slot without a message (a dropped put loan): consumers skip it.
    #[inline]
    pub(crate) fn publish_skip(&self, c: Claim) {
        self.ring().publish_skip(self, c);
    }

    /// The length word of a claimed (published) slot of a byte queue.
    #[inline]
    pub(crate) fn len_of(&self, c: &Claim) -> u32 {
        // SAFETY: we hold the claim, acquired with the stamp's Acquire load that pairs
        // with the producer's Release publish: the length was written before and nobody
        // writes it now.
        unsafe { self.meta_ptr(c).read() }
    }

    #[inline]
    pub(crate) fn release(&self, c: Claim) {
        self.ring().release(self, c);
    }

    /// Pops the next message that is not a skipped loan; `me` as in
    /// [`push_claim_with`](Self::push_claim_with).
    #[inline]
    pub(crate) fn pop_message_with(&self, me: &AtomicU64, wait: Wait) -> Result<Claim, MpmcError> {
        loop {
            let c = self.pop_claim_with(me, wait)?;
            if c.is_skip() {
                // Relaxed: we hold the claim; its Acquire stamp load pairs with the
                // Release publish of the skip, after the dead producer's allocation.
                if self.geo.bytes && self.block_word(&c).load(Ordering::Relaxed) != 0 {
                    let _ = self.free_stale(&c, wait);
                }
                self.release(c);
                continue;
            }
            return Ok(c);
        }
    }

    /// [`pop_message_with`](Self::pop_message_with) this thread's put / get word.
    #[inline]
    pub(crate) fn pop_message(&self, wait: Wait) -> Result<Claim, MpmcError> {
        self.pop_message_with(self.intent(0), wait)
    }

    pub(crate) fn len(&self) -> usize {
        self.ring().len(self) as usize
    }

    pub(crate) fn close(&self) -> bool {
        self.ring().close(self)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.ring().is_closed(self)
    }
}

/// Start of slot `index` of the `cap` slots of `stride` bytes from `slots`.
///
/// # Safety
/// `slots` is the start of slot 0 of a block that holds `cap` slots of `stride` bytes.
#[inline(always)]
unsafe fn slot_in(slots: *mut u8, cap: u64, stride: usize, index: u64) -> *mut u8 {
    // Checked again here (the ring already masks and checks): a bad index must never
    // become an address.
    assert!(index < cap, "slot index out of range");
    // SAFETY: index < cap, and the block holds `cap` slots of `stride` bytes from `slots`
    // (the caller's contract), so the slot is inside it.
    unsafe { slots.add(index as usize * stride) }
}

/// [`Core`]'s slots with a layout the compiler knows (made by [`Core::fixed`], whose
/// contract is that the layout is the geometry's).
///
/// The view holds its own copies of the slots' address, the capacity and the mark bit,
/// where `Core`'s [`Slots`] reads them through `&Core`: a view is a local value, so they
/// stay in registers across a claim's SeqCst CAS, which the compiler must otherwise treat
/// as a write to any memory the handle could be reached through. A put or get then
/// checks the slot index it claimed against the same `cap` it checked before the CAS, and
/// the compiler drops the second check (what it saved: see `Queue::put_with`).
pub(crate) struct Fixed<'a> {
    ring: &'a MpmcRing,
    /// Start of slot 0 (`SLOTS_OFFSET` into the block).
    slots: *mut u8,
    cap: u64,
    mark_bit: u64,
    payload_off: usize,
    stride: usize,
    /// This thread's intent word ([`Core::intent`]).
    me: &'a AtomicU64,
}

impl Fixed<'_> {
    /// Start of slot `index` (`Core::slot_ptr`).
    #[inline(always)]
    fn slot_ptr(&self, index: u64) -> *mut u8 {
        // SAFETY: the core's slots and capacity, and its stride (the contract of
        // `Core::fixed`).
        unsafe { slot_in(self.slots, self.cap, self.stride, index) }
    }

    /// The payload of a claimed slot (`Core::payload_ptr`).
    #[inline(always)]
    pub(crate) fn payload_ptr(&self, c: &Claim) -> *mut u8 {
        // SAFETY: `payload_off` is the geometry's (the contract of `Core::fixed`), and
        // payload_off + payload <= stride, so the payload is inside the slot.
        unsafe { self.slot_ptr(c.index).add(self.payload_off) }
    }

    #[inline(always)]
    pub(crate) fn ring(&self) -> &MpmcRing {
        self.ring
    }

    /// This thread's intent word.
    #[inline(always)]
    pub(crate) fn me(&self) -> &AtomicU64 {
        self.me
    }
}

impl Slots for Fixed<'_> {
    #[inline(always)]
    fn capacity(&self) -> u64 {
        self.cap
    }

    #[inline(always)]
    fn mark_bit(&self) -> u64 {
        self.mark_bit
    }

    #[inline(always)]
    fn stamp(&self, index: u64) -> &AtomicU64 {
        // SAFETY: as in `Core::stamp`: an in-bounds, 8-aligned address, the stamp only
        // accessed atomically, living as long as the core's block.
        unsafe { &*self.slot_ptr(index).cast::<AtomicU64>() }
    }
}

/// How long a claim may wait.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    /// Not at all (`try_*`).
    Never,
    /// Until the deadline (`None`: forever).
    Until(Option<Instant>),
}

impl Wait {
    pub(crate) fn timeout(t: std::time::Duration) -> Wait {
        Wait::Until(crate::sync::time::deadline_after(t))
    }

    /// Runs `f` (the heap operations of the call: a long message's allocation, the free
    /// of a block a slot names) so that its waits for the arena's locks end by this
    /// wait's deadline (`arena::until`): a timed put or get never waits past its timeout
    /// for a heap lock that a live process holds (or that a peer wrote a live pid into),
    /// and a `try_*` call waits for it at most [`TRY_PATIENCE`] (see [`heap`](Self::heap)).
    /// `Until(None)` keeps the arena's patience.
    #[cold]
    pub(crate) fn bound<R>(self, f: impl FnOnce() -> R) -> R {
        match self.heap() {
            Wait::Until(d @ Some(_)) => crate::arena::until(d, f),
            _ => f(),
        }
    }

    /// The wait for the heap's lock of a call that waits as `self` says: a `try_*` call
    /// (`Never`), which must not block, waits for a heap lock held by another process at
    /// most [`TRY_PATIENCE`] (a heap operation takes microseconds: a lock held longer is
    /// held by a process that stopped, or written by a peer); a timed call until its
    /// deadline. Computed once for the heap operations of one call, so that they share
    /// one deadline.
    pub(crate) fn heap(self) -> Wait {
        match self {
            Wait::Never => Wait::timeout(TRY_PATIENCE),
            w => w,
        }
    }

    /// True when this wait has a deadline and it passed.
    pub(crate) fn expired(self) -> bool {
        matches!(self, Wait::Until(d @ Some(_)) if crate::sync::time::expired(d))
    }
}

/// How long a `try_*` call of a byte queue waits for the heap's lock, held by another
/// process, to allocate or free a long message's block ([`Wait::heap`]).
pub(crate) const TRY_PATIENCE: std::time::Duration = std::time::Duration::from_millis(10);

/// A loan's intent word: its index in the thread's entry, given back when dropped.
pub(crate) struct Loan {
    /// The word (0: none; the loan's claim goes unrecorded).
    pub(crate) k: usize,
    /// The entry's address (it lives as long as the queue handle the loan borrows).
    entry: usize,
}

impl Drop for Loan {
    fn drop(&mut self) {
        if self.k != 0 && self.entry != 0 {
            // SAFETY: `entry` is the address of an entry of the table of the queue whose
            // handle the loan borrows (`Core::loan_word`), so it is mapped.
            unsafe { &*(self.entry as *const Claimer) }.give_loan(self.k);
        }
    }
}

/// The per-thread cache of entries (module docs, "A thread's entry").
mod mine {
    use crate::raw::mpmc::Claimer;
    use crate::sync::plain::{AtomicU64 as PlainU64, Ordering};
    use crate::sync::AtomicU64;
    use std::cell::Cell;
    use std::num::NonZeroUsize;

    /// The intent word of threads without an entry: written, never read.
    #[cfg(not(shmproc_loom))]
    pub(super) fn unrecorded() -> &'static AtomicU64 {
        static UNRECORDED: AtomicU64 = AtomicU64::new(0);
        &UNRECORDED
    }

    /// Under loom (whose atomics cannot be statics) the handles are not used: the models
    /// drive `raw::mpmc` with tables of their own.
    #[cfg(shmproc_loom)]
    pub(super) fn unrecorded() -> &'static AtomicU64 {
        unreachable!("the queue handles are not used under loom")
    }

    /// The next view number ([`new_id`]).
    static NEXT: PlainU64 = PlainU64::new(1);

    /// A number for a new view of a table (its clones share it): never 0, never given
    /// twice in a process. A view made after a table was unmapped and another mapped at
    /// its address gets a number of its own, so the cache never mistakes one for the
    /// other.
    pub(super) fn new_id() -> u64 {
        // Relaxed: a unique number; it orders nothing.
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    const LINES: usize = 8;

    /// One line: the view's number, the address of its entry's put / get intent word (or
    /// of [`unrecorded`]'s), and of the entry (0: the thread has none in that table).
    #[derive(Clone, Copy)]
    pub(crate) struct Line {
        id: u64,
        pub(crate) word: usize,
        pub(crate) entry: usize,
    }

    thread_local! {
        static CACHE: [Cell<Line>; LINES] = const {
            [const { Cell::new(Line { id: 0, word: 0, entry: 0 }) }; LINES]
        };
    }

    /// The cached line for view `id`, if there is one.
    #[inline]
    pub(super) fn lookup(id: u64) -> Option<Line> {
        CACHE
            .try_with(|c| {
                let l = c[id as usize % LINES].get();
                (l.id == id).then_some(l)
            })
            .ok()
            .flatten()
    }

    /// The cached put / get intent word for view `id`, if cached.
    #[inline(always)]
    pub(super) fn lookup_word(id: u64) -> Option<NonZeroUsize> {
        CACHE
            .try_with(|c| {
                let l = &c[id as usize % LINES];
                // One `Cell::get` of the whole line would copy it through the stack.
                // SAFETY: a thread-local cell, only ever accessed by this thread, and no
                // reference to its contents outlives this read.
                let l = unsafe { &*l.as_ptr() };
                // SAFETY: a line with a view's number (never 0) was filled by `remember`,
                // whose word is the address of a word (never 0).
                (l.id == id).then(|| unsafe { NonZeroUsize::new_unchecked(l.word) })
            })
            .ok()
            .flatten()
    }

    /// Remembers `entry` (or none) for view `id`; returns the line.
    pub(super) fn remember(id: u64, entry: Option<&Claimer>) -> Line {
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            crate::sync::liveness::after_fork(forget);
        });
        let line = Line {
            id,
            word: match entry {
                Some(e) => e.intent(0) as *const AtomicU64 as usize,
                None => unrecorded() as *const AtomicU64 as usize,
            },
            entry: entry.map_or(0, |e| e as *const Claimer as usize),
        };
        let _ = CACHE.try_with(|c| c[id as usize % LINES].set(line));
        line
    }

    /// In the child of a fork (its only thread, the one that forked): the cached entries
    /// are the parent thread's.
    fn forget() {
        let _ = CACHE.try_with(|c| {
            for l in c {
                l.set(Line {
                    id: 0,
                    word: 0,
                    entry: 0,
                });
            }
        });
    }
}

/// The throttle of the recovery a failed `try_*` call makes ([`Core::try_failed`]).
mod memo {
    use crate::sync::wait::Recheck;
    use std::cell::Cell;
    use std::time::Instant;

    /// Failures on the same queue before the first look.
    pub(super) const EVERY: u32 = 1024;

    #[derive(Clone, Copy)]
    struct Memo {
        key: usize,
        failures: u32,
        next: Option<Instant>,
        schedule: Recheck,
    }

    thread_local! {
        static MEMO: Cell<Memo> = const {
            Cell::new(Memo { key: 0, failures: 0, next: None, schedule: Recheck::LIVENESS })
        };
    }

    /// Counts a failure on queue `key`; true when it is time to look.
    pub(super) fn due(key: usize) -> bool {
        MEMO.try_with(|m| {
            let mut v = m.get();
            if v.key != key {
                v = Memo {
                    key,
                    failures: 0,
                    next: None,
                    schedule: Recheck::LIVENESS,
                };
            }
            v.failures = v.failures.wrapping_add(1);
            let due = match v.next {
                None => v.failures % EVERY == 0,
                Some(at) => v.failures % 16 == 0 && Instant::now() >= at,
            };
            m.set(v);
            due
        })
        .unwrap_or(false)
    }

    /// After a look: the next on the liveness schedule (from its start after a recovery).
    pub(super) fn looked(key: usize, recovered: bool) {
        let _ = MEMO.try_with(|m| {
            let mut v = m.get();
            if v.key == key {
                if recovered {
                    v.schedule = Recheck::LIVENESS;
                } else {
                    v.schedule.backoff();
                }
                v.next = v.schedule.wake_at(None);
                m.set(v);
            }
        });
    }
}
