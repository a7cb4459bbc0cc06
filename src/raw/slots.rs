//! The layout of a queue's block: the ring, the slot array after it, the table of
//! claimers after that. Pure arithmetic over numbers that were checked, shared by the
//! queue handles (which reach slots through it) and the arena's finalizer (which frees
//! the blocks a byte queue's slots name when the queue is freed).
//!
//! # A slot
//!
//! | offset          | size     | field                                                  |
//! |-----------------|----------|--------------------------------------------------------|
//! | 0               | 8        | stamp (`AtomicU64`, see [`mpmc`](super::mpmc))         |
//! | 8               | 4        | byte queues only: the message's length, or [`INDIRECT`]|
//! | 12              | 4        | byte queues only: padding                              |
//! | 16              | 8        | byte queues only: the block word (below)               |
//! | `payload_off`   | payload  | the message                                            |
//!
//! `payload_off` is the header (8 bytes for a typed queue, 24 for a byte queue) rounded
//! up to the message's alignment, and the stride rounds the slot up to a multiple of 8 and
//! of that alignment: a `Queue<u64>` slot is 16 bytes, four to a cache line.
//!
//! # Messages longer than the slot
//!
//! A byte queue's message that does not fit its slot goes to a heap block of its own
//! (`[length: u64][bytes]`), and the slot's length word says [`INDIRECT`]. The block word
//! names that block from the moment it is allocated (the heap stores the offset into the
//! word in the same journaled operation, `raw::owned::Blocks::alloc_into`) until it is
//! freed (`free_from` zeroes it in the same operation), and it is only touched by the
//! holder of the slot's claim. So a block is never held only in a process's memory:
//!
//! | who dies                                   | the block                                     |
//! |--------------------------------------------|-----------------------------------------------|
//! | a producer after allocating, before publishing | its claim is published skipped by a survivor; the consumer that passes the skipped slot frees it |
//! | a consumer holding the message             | its claim is released by a survivor (the message is lost, counted); the next producer of the slot frees the block before it writes |
//! | nobody, the queue is freed                 | the finalizer ([`finalize_bytes`]) frees every block a slot names |
//!
//! A producer killed *inside* its allocation (holding the heap's lock) may have it
//! finished by the heap's repair, which stores the offset into the slot's word at the
//! next heap operation of anyone: possibly after the survivors passed the slot. So a
//! producer that allocates for a slot first frees what the word names *under the heap's
//! lock* (`free_from`, which runs the repair first), never on a look at the word alone;
//! a producer that writes in place looks at the word (a block found there is freed), and
//! the finalizer catches one that arrives after that.

use crate::error::{Error, Result};
use crate::raw::mpmc::{Claimer, MpmcRing, MAX_CAPACITY};
use crate::raw::owned::Blocks;
use crate::sync::{AtomicU64, Ordering};

/// The fewest inline bytes a byte queue's slot has.
pub(crate) const MIN_INLINE: usize = 8;
/// The most inline bytes a byte queue's slot may have: 256 MiB.
pub(crate) const MAX_INLINE: usize = 1 << 28;

/// Where the slot array starts in the block.
pub(crate) const SLOTS_OFFSET: usize = core::mem::size_of::<MpmcRing>();

/// Entries in a queue's table of claimers: how many threads (of all processes) can use
/// one queue at once with their claims recorded (module docs).
pub(crate) const CLAIMERS: usize = 64;

/// Bytes of the table of claimers.
pub(crate) const TABLE_BYTES: usize = CLAIMERS * core::mem::size_of::<Claimer>();

/// Bytes of a typed queue's slot header (the stamp).
const TYPED_HEADER: usize = 8;
/// Bytes of a byte queue's slot header (stamp, length, padding, block word).
pub(crate) const BYTES_HEADER: usize = 24;

/// Where a byte queue's slot keeps its block word: the offset of the heap block that
/// holds a message too long for the slot, 0 when the slot holds none (module docs).
pub(crate) const BLOCK_WORD: usize = 16;

/// The length word's value of a message in a block of its own: the real length is the
/// block's first 8 bytes.
pub(crate) const INDIRECT: u32 = u32::MAX;

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
    /// A byte queue's slots (length and block words in the header).
    pub bytes: bool,
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
                "a queue needs a capacity of at least 1 (Python's maxsize=0, unbounded, has \
                 no equivalent here: give the most items it may hold)"
                    .into(),
            ));
        }
        if cap > MAX_CAPACITY {
            return Err(Error::InvalidArgument(format!(
                "queue capacity {cap} is larger than the maximum, {MAX_CAPACITY}: give a \
                 smaller capacity"
            )));
        }
        if !align.is_power_of_two() || align > MAX_ALIGN {
            return Err(Error::InvalidArgument(format!(
                "a queue carries types aligned to at most {MAX_ALIGN} bytes, this one needs \
                 {align}: wrap the data in a type of smaller alignment, or send it as bytes \
                 (ByteQueue)"
            )));
        }
        let header = if with_length {
            BYTES_HEADER
        } else {
            TYPED_HEADER
        };
        let (payload_off, stride) = slot_layout(header, payload, align).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "a message of {payload} bytes does not fit in a queue slot: use an ObjQueue \
                 or a ByteQueue (messages of any size)"
            ))
        })?;
        let g = SlotGeometry {
            cap,
            stride,
            payload_off,
            payload,
            bytes: with_length,
        };
        g.block_size()?;
        Ok(g)
    }

    /// The parameter word of a byte queue of this geometry: the capacity, and the slot's
    /// inline bytes above it.
    pub(crate) fn bytes_param(&self) -> u64 {
        self.cap | ((self.payload as u64) << 32)
    }

    /// The geometry of a byte queue whose parameter word is `param`
    /// ([`bytes_param`](Self::bytes_param)), checked as [`new`](Self::new) checks.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when no byte queue has this word.
    pub(crate) fn from_bytes_param(param: u64) -> Result<SlotGeometry> {
        let (cap, inline) = (param & 0xffff_ffff, param >> 32);
        if inline < MIN_INLINE as u64 || inline > MAX_INLINE as u64 {
            return Err(Error::Corrupt(format!(
                "a byte queue's slot of {inline} bytes (it has {MIN_INLINE} ..= {MAX_INLINE})"
            )));
        }
        SlotGeometry::new(cap, inline as usize, 8, true)
            .map_err(|e| Error::Corrupt(format!("impossible byte queue geometry: {e}")))
    }

    /// Where the table of claimers starts in the block: after the slots, on a 64-byte
    /// boundary.
    pub(crate) fn table_offset(&self) -> Result<usize> {
        usize::try_from(self.cap)
            .ok()
            .and_then(|c| c.checked_mul(self.stride))
            .and_then(|n| n.checked_add(SLOTS_OFFSET))
            .and_then(|n| n.checked_next_multiple_of(core::mem::align_of::<Claimer>()))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "a queue of {} slots of {} bytes does not fit in memory: use fewer \
                     slots or smaller messages",
                    self.cap, self.stride
                ))
            })
    }

    /// Bytes of the whole block: ring, slots and the table of claimers.
    pub(crate) fn block_size(&self) -> Result<usize> {
        self.table_offset()?
            .checked_add(TABLE_BYTES)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "a queue of {} slots of {} bytes does not fit in memory: use fewer \
                     slots or smaller messages",
                    self.cap, self.stride
                ))
            })
    }
}

/// Frees the blocks of the byte queue whose state block (ring, slots, table; `size`
/// bytes) is at `state`, with the parameter word `param`: the arena's finalizer for byte
/// queues. Idempotent (a word freed is zeroed in the same heap operation); called when the
/// queue has no holder left, so no claim is in progress. A word a peer scribbled on is
/// refused by the heap and left.
pub(crate) fn finalize_bytes(blocks: &impl Blocks, state: *mut u8, size: u64, param: u64) {
    let Ok(g) = SlotGeometry::from_bytes_param(param) else {
        return;
    };
    if g.block_size().map_or(true, |n| n as u64 > size) {
        return;
    }
    for i in 0..g.cap as usize {
        let at = SLOTS_OFFSET + i * g.stride + BLOCK_WORD;
        // SAFETY: slot `i` lies inside the `size`-byte block at `state` (`block_size`, just
        // checked, covers every slot); `at` is 8-aligned (the block is cache-line
        // aligned, `SLOTS_OFFSET` and the stride are multiples of 8); an `AtomicU64` is
        // valid for any bits and the block stays mapped for the call.
        let word = unsafe { &*state.add(at).cast::<AtomicU64>() };
        // Relaxed: the queue has no holder left (the caller holds the metadata lock under
        // which its last reference went); the heap operation orders the free itself.
        if word.load(Ordering::Relaxed) != 0 {
            let _ = blocks.free_from(word);
        }
    }
}
