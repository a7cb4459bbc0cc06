//! The part every queue handle shares: the ring in the arena, the slots after it, and the
//! process-local, validated geometry used to reach them.
//!
//! # A slot
//!
//! | offset          | size     | field                                                  |
//! |-----------------|----------|--------------------------------------------------------|
//! | 0               | 8        | stamp (`AtomicU64`, see [`ring`](super::ring))         |
//! | 8               | 4        | byte queues only: the message's length (the meta word) |
//! | 12              | 4        | byte queues only: padding                              |
//! | `payload_off`   | payload  | the message                                            |
//!
//! `payload_off` is the header (8 bytes for a typed queue, 16 for a byte queue) rounded
//! up to the message's alignment, and the stride rounds the slot up to a multiple of 8 and
//! of that alignment: a `Queue<u64>` slot is 16 bytes, four to a cache line. A slot
//! published without a message (a dropped put loan) is marked in its stamp, not here.
//!
//! The slot array starts right after the [`MpmcRing`], at [`SLOTS_OFFSET`]. The geometry
//! (capacity, stride, payload size) is decided when the queue is made, recorded in the
//! arena's directory entry (`param`), and re-derived and checked against the block's size
//! when another process opens the queue: after that, every slot address this process
//! computes is inside the block, whatever a peer writes into the arena.

use crate::arena::ObjectKind;
use crate::error::{Error, Result};
use crate::object::{Fresh, Inspect, Obj, Object, Word};
use crate::raw::mpmc::{
    self as ring, initial_stamp, Claim, MpmcError, MpmcRing, Slots, MAX_CAPACITY,
};
use crate::sync::AtomicU64;
use crate::SpinPolicy;
use std::borrow::Cow;
use std::time::Instant;

/// Where the slot array starts in the block.
pub(crate) const SLOTS_OFFSET: usize = core::mem::size_of::<MpmcRing>();

/// Bytes of a typed queue's slot header (the stamp).
const TYPED_HEADER: usize = 8;
/// Bytes of a byte queue's slot header (stamp, length, padding).
const BYTES_HEADER: usize = 16;

/// The largest alignment a message type may have.
const MAX_ALIGN: usize = 128;

/// `(payload_off, stride)` of a slot with a `header`-byte header and a `payload`-byte
/// message aligned to `align` (a power of two), or `None` if it overflows.
const fn slot_layout(header: usize, payload: usize, align: usize) -> Option<(usize, usize)> {
    let payload_off = if header > align { header } else { align };
    let unit = if align > 8 { align } else { 8 };
    match payload_off.checked_add(payload) {
        Some(n) => match n.checked_next_multiple_of(unit) {
            Some(stride) => Some((payload_off, stride)),
            None => None,
        },
        None => None,
    }
}

/// `(payload_off, stride)` of a typed queue of `T`, as [`SlotGeometry::new`] computes them, or
/// `(0, 0)` for a `T` too large for any queue (whose geometry, and so whose queue, can
/// never be made).
pub(crate) const fn typed_layout<T>() -> (usize, usize) {
    match slot_layout(
        TYPED_HEADER,
        core::mem::size_of::<T>(),
        core::mem::align_of::<T>(),
    ) {
        Some(l) => l,
        None => (0, 0),
    }
}

/// Process-local, validated geometry of the slot array.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SlotGeometry {
    pub cap: u64,
    pub stride: usize,
    pub payload_off: usize,
    pub payload: usize,
}

impl SlotGeometry {
    /// The geometry for `cap` slots of `payload` bytes aligned to `align`, typed
    /// (`with_length: false`) or with a length word per slot (byte queues).
    pub(crate) fn new(
        cap: u64,
        payload: usize,
        align: usize,
        with_length: bool,
    ) -> Result<SlotGeometry> {
        if cap == 0 {
            return Err(Error::InvalidArgument(
                "queue capacity must be at least 1".into(),
            ));
        }
        if cap > MAX_CAPACITY {
            return Err(Error::InvalidArgument(format!(
                "queue capacity {cap} is larger than the maximum, {MAX_CAPACITY}"
            )));
        }
        if !align.is_power_of_two() || align > MAX_ALIGN {
            return Err(Error::InvalidArgument(format!(
                "message alignment {align} is larger than {MAX_ALIGN}"
            )));
        }
        let header = if with_length {
            BYTES_HEADER
        } else {
            TYPED_HEADER
        };
        let (payload_off, stride) = slot_layout(header, payload, align).ok_or_else(|| {
            Error::InvalidArgument(format!("message of {payload} bytes is too large"))
        })?;
        let g = SlotGeometry {
            cap,
            stride,
            payload_off,
            payload,
        };
        g.block_size()?;
        Ok(g)
    }

    /// Bytes of the whole block: ring plus slots.
    pub(crate) fn block_size(&self) -> Result<usize> {
        usize::try_from(self.cap)
            .ok()
            .and_then(|c| c.checked_mul(self.stride))
            .and_then(|n| n.checked_add(SLOTS_OFFSET))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "a queue of {} slots of {} bytes does not fit in memory",
                    self.cap, self.stride
                ))
            })
    }
}

/// The shared ring plus this process's view of its slots.
#[derive(Clone)]
pub(crate) struct Core {
    raw: Obj<Ring>,
    geo: SlotGeometry,
    /// `Slots::mark_bit`, computed once.
    mark_bit: u64,
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
}

impl Core {
    /// This process's view of a ring block with geometry `geo`.
    pub(crate) fn new(raw: Obj<Ring>) -> Core {
        let geo = *raw.params();
        Core {
            raw,
            mark_bit: ring::mark_bit(geo.cap),
            geo,
            spin: SpinPolicy::default(),
        }
    }

    /// The ring, seen as the object of kind `O` (for that kind's `Debug`).
    pub(crate) fn obj_as<O: Object<State = MpmcRing, Params = SlotGeometry>>(&self) -> Obj<O> {
        self.raw.clone().recast()
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

    /// The payload of a claimed slot (`geo.payload` bytes, aligned as asked at creation).
    #[inline]
    pub(crate) fn payload_ptr(&self, c: &Claim) -> *mut u8 {
        // SAFETY: payload_off + payload <= stride, so the payload is inside the slot.
        unsafe { self.slot_ptr(c.index).add(self.geo.payload_off) }
    }

    #[inline]
    pub(crate) fn push_claim(&self, wait: Wait) -> Result<Claim, MpmcError> {
        match wait {
            Wait::Never => self.ring().try_push_claim(self),
            Wait::Until(d) => self.ring().push_claim(self, d, self.spin),
        }
    }

    #[inline]
    pub(crate) fn pop_claim(&self, wait: Wait) -> Result<Claim, MpmcError> {
        match wait {
            Wait::Never => self.ring().try_pop_claim(self),
            Wait::Until(d) => self.ring().pop_claim(self, d, self.spin),
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
    /// path from the index to the stamp, in every claim).
    ///
    /// # Safety
    /// [`fixed_layout_matches(layout)`](Self::fixed_layout_matches) is true.
    #[inline(always)]
    pub(crate) unsafe fn fixed(&self, layout: (usize, usize)) -> Fixed<'_> {
        debug_assert!(self.fixed_layout_matches(layout));
        Fixed {
            ring: self.ring(),
            slots: self.slots_base(),
            cap: self.geo.cap,
            mark_bit: self.mark_bit,
            payload_off: layout.0,
            stride: layout.1,
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

    /// Pops the next message that is not a skipped loan.
    #[inline]
    pub(crate) fn pop_message(&self, wait: Wait) -> Result<Claim, MpmcError> {
        loop {
            let c = self.pop_claim(wait)?;
            if c.is_skip() {
                self.release(c);
                continue;
            }
            return Ok(c);
        }
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
}
