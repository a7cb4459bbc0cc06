//! The shared-memory heap: variable-size blocks allocated and freed **by offset**, safe
//! against a process killed at any instruction, and against hostile bytes.
//!
//! Every process maps an arena at its own address, so nothing here is a pointer: a block
//! is named by its offset from the start of the mapping ([`Region`]), and every word of
//! metadata (free-list links, list heads, sizes) is an offset or a size. [`RawHeap`] is the
//! heap's state (a robust lock, the free-list index, the bounds, statistics); it lives in
//! shared memory (the arena embeds it in its header), and all-zero bytes are a valid,
//! uninitialised heap that [`RawHeap::init`] sets up. The blocks live in `[start, end)` of
//! the region; [`RawHeap::grow`] appends space at the end.
//!
//! Neither `rlsf` (TLSF with pointers in its free lists) nor `offset-allocator` (offsets,
//! but its metadata in process-local `Vec`s) can live in shared memory, hence this module.
//!
//! # Example
//! ```
//! use shmproc::raw::sync::liveness::Procfs;
//! use shmproc::raw::heap::{RawHeap, Region};
//!
//! // A region: here a Vec (16-aligned through u128); in an arena, the whole mapping.
//! let mut mem = vec![0u128; 4096];
//! // SAFETY: `mem` is 64 KiB, mapped, and outlives `region`; only the heap touches it.
//! let region = unsafe { Region::new(mem.as_mut_ptr().cast(), 65536) }?;
//! let heap = Box::new(RawHeap::new()); // in an arena: zeroed bytes of the header
//! heap.init(&region, 4096, 65536)?;
//!
//! let a = heap.alloc_zeroed(&region, 1000, 128, &Procfs, None)?; // an offset, not a pointer
//! assert_eq!(a % 128, 0);
//! assert!(heap.usable_size(&region, a)? >= 1000);
//! heap.free(&region, a, &Procfs, None)?;
//! assert!(heap.free(&region, a, &Procfs, None).is_err()); // a double free is an error value
//! let stats = heap.check(&region, &Procfs, None)?; // validates everything
//! assert_eq!(stats.allocated_blocks, 0);
//! # Ok::<(), shmproc::raw::heap::HeapError>(())
//! ```
//!
//! # Blocks
//!
//! The heap is tiled by blocks; each starts with a 16-byte header, and offsets and sizes
//! are multiples of [`GRANULE`] (16). A block's usable bytes (its payload) start right
//! after the header, so a payload offset is `block + 16`.
//!
//! | bytes of a block | allocated block                 | free block                         | parked in a [`Cache`] |
//! |------------------|---------------------------------|------------------------------------|-----------------------|
//! | 0..8             | tag: size, state, check         | tag                                | tag                   |
//! | 8..16            | size of the previous block if it is free, else 0 | same          | same                  |
//! | 16..24           | payload                         | next block in its free list (offset, 0 = none) | owner: pid and start time |
//! | 24..32           | payload                         | previous block in its free list    | payload               |
//! | 32..size         | payload                         | anything (not kept zero)           | payload               |
//!
//! The **tag** is one word, written with one store: bits 0..2 the state (1 free,
//! 2 allocated, 3 allocated and parked in a cache; 0 is never a valid tag, so zeroed
//! memory holds none), bits 2..39 the size
//! in 16-byte units, bits 39..64 a 25-bit **check** hashed from the block's offset and
//! size (not its state, so a state change is a 2-bit store; state 3 marks a block parked
//! in a process's [`Cache`]). A tag is believed only if its check matches: an offset that is not a block
//! start (a random number, a pointer into a payload, a block of another heap) is refused
//! with odds of 2^-25 per guess, and `free` also checks the neighbours it merges with.
//! The smallest block is [`MIN_BLOCK`] (32 bytes: header and two links), so the smallest
//! request costs 32 bytes and a 64-byte one 80.
//!
//! # `RawHeap`
//!
//! | offset | field             | meaning                                             |
//! |--------|-------------------|-----------------------------------------------------|
//! | 0      | `lock`            | [`RawLock`]: holder's pid, waiter bit, holder's start time |
//! | 16     | `size` ... `recoveries` | statistics, readable without the lock ([`RawHeap::stats`]) |
//! | 64     | `magic`           | set last by `init`; 0 = uninitialised               |
//! | 72     | `start`, `end`    | the heap's bounds within the region                 |
//! | 88     | `end_prev`        | size of the last block if it is free, else 0 (the "previous size" of the end) |
//! | 96     | `fresh`           | every byte of `[fresh, end)` is zero (see *Zeroed memory*) |
//! | 104    | `intent`          | the operation in progress: block offset \| kind, 0 = none |
//! | 112    | `fl_bitmap`       | bit `f`: some list of first level `f` is non-empty  |
//! | 120    | `link`            | the caller's word an `alloc_into` / `free_from` in progress writes, 0 = none |
//! | 128    | `sl_bitmap[34]`   | bit `s` of word `f`: list `(f, s)` is non-empty     |
//! | 400    | `heads[34][16]`   | first block of each free list (offset, 0 = none)    |
//!
//! 4752 bytes in all. Everything after the statistics is read and written only under the
//! lock.
//!
//! # TLSF indexing
//!
//! Free blocks sit in segregated lists, two-level segregated fit (Masmano et al., TLSF):
//! the first level is the power of two of the size, the second splits each power of two
//! into 16 equal ranges. Sizes below 256 bytes get exact lists (first level 0, second level
//! `size / 16`); a size `s >= 256` with `m = floor(log2 s)` goes to list
//! `(m - 7, (s >> (m - 4)) & 15)`. Blocks up to 2^40 bytes need 34 first levels.
//!
//! `alloc` first tries the head of the request's own list (a block of the very size just
//! freed is reused rather than a larger one cut), then rounds the request up to the next
//! list boundary, so that every block of the first non-empty list at or above it fits:
//! two bitmap look-ups and no search, O(1). If
//! that finds nothing, it scans the lists between the request's own and the rounded one
//! for a block that fits exactly (so a request fails only when no free block can hold it).
//! Alignment above 16 searches for `size + align + 16` and splits the leading gap off as a
//! free block. Lists are LIFO; a block that leaves more than `MIN_BLOCK` spare bytes is
//! split and the rest goes back on a list; `free` merges with free neighbours at once, so
//! no two free blocks are adjacent.
//!
//! # Zeroed memory
//!
//! [`RawHeap::alloc`] returns a block whose bytes are unspecified; [`RawHeap::alloc_zeroed`]
//! returns zeroed bytes, for the object layer's state blocks. Zeroing happens on alloc, and
//! only of the bytes asked for, after the lock is released: zeroing on free would make every
//! free pay for bytes nobody may ever read back zeroed (a 1 GiB message), and would make
//! crash consistency harder (a torn merge leaves a stale header inside a free block, which
//! would then have to be found and cleared). Measured (`benches/heap.rs`, alloc + free
//! pairs): `alloc_zeroed` is 1.02x `alloc` for 64 bytes and 1.4-1.5x for 4 KiB, i.e. the
//! `memset` of the bytes asked for and nothing else.
//!
//! Memory never written is not touched either: `fresh` marks the lowest offset above which
//! every byte is zero (new space from `init` and `grow` is zero, as a file extended by
//! `ftruncate` is). Every write of the heap's own metadata, and every block handed out,
//! raises it first; `alloc_zeroed` clears only the part of a block below it. So a large
//! zeroed block carved from space never used costs no page faults at all.
//!
//! # Crash consistency
//!
//! A process killed inside `alloc`, `free` or `grow` dies holding the heap lock; the next
//! locker is told [`Acquired::OwnerDied`] and repairs the heap before doing its own
//! operation (`recover`). The argument rests on three rules:
//!
//! 1. **The chain of tags is the truth.** Walking from `start` by each tag's size must land
//!    exactly on `end`. Everything else (free lists, bitmaps, the "previous size" words,
//!    `end_prev`, the statistics) is derived from the chain, and the repair rebuilds it
//!    from a walk.
//! 2. **Every prefix of an operation's writes leaves a walkable chain.** Each operation
//!    changes the chain with exactly one tag store (its commit); the new headers it needs
//!    are written before, inside space the chain does not yet visit:
//!    - `alloc` of `A` from free block `F` writes the remainder's header (at the end of
//!      `A`, inside `F`), then `A`'s header if a leading gap is split off, then commits by
//!      rewriting `F`'s tag (now the gap's, or `A`'s). Before the commit the chain still
//!      reads `F`; after it, gap, `A`, remainder.
//!    - `free` of `A` commits by marking `A` free (two or three adjacent free blocks are a
//!      walkable chain), then merges with one more tag store on the lowest of them.
//!    - `grow` with a free last block stretches that block's tag past `end`, then moves
//!      `end` (the commit); without one it writes a free header at the old end (outside
//!      the heap) and then moves `end`. The repair cuts a tag that overshoots `end`.
//! 3. **The intent names the block.** Before its first write an operation stores
//!    `intent = block | kind` (one word; cleared after its last write). The repair makes
//!    the named block free if it is allocated: an interrupted `alloc` is rolled back (its
//!    caller never got the offset), an interrupted `free` is completed (its caller asked
//!    for it). It also clears the named block's header if it was left inside a free block
//!    (a gap split that did not commit), so no stale allocated-looking tag survives.
//!    (Headers a merge absorbs keep a free tag, so a stale offset that lands on one is
//!    refused as a double free.)
//!
//! The repair then walks: it coalesces adjacent free blocks, rewrites every derived word,
//! relinks every free block and recounts the statistics, then clears `intent`. It is
//! idempotent, so a process killed while repairing leaves work the next locker simply
//! redoes. When the lock's holder died with no intent recorded (before its first write or
//! after its last), the heap is consistent and no walk is needed. Any operation that finds
//! `intent` set when it takes the lock normally (a repair that ran out of time, an
//! operation that met corruption half-way) repairs first too.
//!
//! Proved by tests that stop an operation after its k-th shared write, for every k (a
//! test hook counts the writes and drops every later one, the lock's release included):
//! `crash_at_every_write` kills `alloc` (with leading and trailing splits, exact fit,
//! from the tail), `free` (merging on both sides, with the tail, alone), `grow` (free or
//! allocated last block) and a repair itself, then recovers and checks the heap, that
//! every block allocated before is allocated and intact, and that nothing else is
//! allocated; the loom models in `loom-tests/tests/heap.rs` do the same with a survivor
//! running concurrently, under every interleaving.
//!
//! ## What a dead process loses
//!
//! - Killed inside `alloc`, `free` or `grow` with its intent recorded: nothing. The block
//!   being allocated is freed again, the block being freed is freed; an interrupted `grow`
//!   either landed or did not (the arena calls it again; growing to the current end does
//!   nothing).
//! - Killed after its last shared write but the lock's release, or at any time after
//!   `alloc` returned: the block it allocated stays allocated. The heap cannot tell a
//!   block whose owner died from one whose offset was already handed to another process;
//!   giving such blocks back is the job of the layer that shares them (reference counts,
//!   the directory).
//! - Blocks parked in its [`Cache`]: allocated until [`RawHeap::reclaim_dead`] runs, which
//!   frees every parked block whose owner is dead.
//! - Killed inside a `Cache` call (which takes no lock): at most the block being parked or
//!   taken stays allocated (the owner word is written before the `CACHED` tag, so a
//!   parked block always names its owner).
//!
//! [`HeapStats::recoveries`] counts the repairs run.
//!
//! # Hostile bytes
//!
//! A peer may scribble anything on `RawHeap` and on the blocks. Every offset and size read
//! from shared memory is checked against the region and the heap's bounds before it is
//! used; all shared words are accessed as atomics (one load each, never re-read after the
//! check); free lists are unlinked only when their neighbours point back (glibc's safe
//! unlinking); list scans detect cycles (Brent's algorithm) and every walk is bounded by
//! the heap's size in blocks and checks the deadline. A corrupt heap gives
//! [`HeapError::Corrupt`], never a panic, an out-of-bounds access or a wait past the
//! deadline (fuzzed: `fuzz/fuzz_targets/heap.rs`). A double free is
//! [`HeapError::DoubleFree`]; a free of an offset that is not an allocated block (stale,
//! forged, in the middle of a block) is [`HeapError::NotAllocated`]. What a peer *can* do
//! is make the heap hand out bytes another block also uses, by forging valid-looking
//! tags: it owns the memory, and the heap cannot stop it.
//!
//! # Performance, and the per-process cache
//!
//! Measured in one process against the system allocator (glibc `malloc` / `free`), alloc
//! plus free of the same size in a loop (`benches/heap.rs`; instruction counts from
//! callgrind, setup subtracted; times from one interleaved `cargo bench` run on a shared
//! 2-vCPU machine):
//!
//! | per alloc + free | RawHeap       | RawHeap + [`Cache`] | glibc        |
//! |------------------|---------------|---------------------|--------------|
//! | 64 B             | 1059 instr, 13x | 166 instr, 1.28x  | 151 instr    |
//! | 4 KiB            | 1082 instr, 5.7x | 174 instr, 0.64x | 303 instr    |
//! | 1 MiB            | 1082 instr, 8.4x | (not cached)     | 320 instr    |
//!
//! The heap's own path cannot come within 2x of glibc's thread cache: the robust lock
//! alone is two atomic read-modify-writes per call (four per pair, ~80 cycles, more than
//! glibc's whole 64-byte pair), and every word it reads is checked. So small blocks go
//! through a [`Cache`]: a process-local list per size class that parks freed blocks
//! (still allocated in the heap, tagged with their owner) and hands them out again with
//! a few loads and stores and no lock. Large blocks are not cached: a per-process cache
//! helps only a process that frees what it allocates, while a large block is typically a
//! message freed by its receiver, whose cost is dominated by copying it.

use crate::raw::lock::{Acquired, RawLock, RobustLock};
use crate::sync::liveness::Liveness;
use crate::sync::plain::{AtomicU64 as Word, Ordering};
use crate::sync::spin::SpinPolicy;
use crate::sync::UnsafeCell;
use std::fmt;
use std::time::Instant;

#[cfg(any(test, fuzzing))]
pub mod fuzz;
#[cfg(all(test, not(shmproc_loom)))]
mod tests;

/// Offsets and sizes of blocks are multiples of this.
pub const GRANULE: u64 = 16;
/// Bytes of a block's header (tag and previous size); a payload is at `block + HEADER`.
pub const HEADER: u64 = 16;
/// The smallest block: a header and two free-list links.
pub const MIN_BLOCK: u64 = 32;
/// The largest heap, `end - start` (1 TiB, the arena's maximum).
pub const MAX_HEAP: u64 = 1 << 40;
/// The largest alignment `alloc` accepts (2 MiB, a huge page). Alignment is of the
/// *offset*; the arena's mapping is page-aligned, so up to 4096 the address is aligned the
/// same way in every process.
pub const MAX_ALIGN: u64 = 1 << 21;
/// The largest request: a block of it fills a [`MAX_HEAP`] heap.
pub const MAX_REQUEST: u64 = MAX_HEAP - HEADER;

const SL_BITS: u32 = 4;
const SL_COUNT: usize = 1 << SL_BITS;
const SL_MASK: u64 = (1 << SL_COUNT) - 1;
/// Sizes below this have exact lists (first level 0).
const SMALL: u64 = GRANULE << SL_BITS;
/// First levels: 0 for small sizes, 1..=33 for 2^8..=2^40.
const FL_COUNT: usize = 34;
const FL_MASK: u64 = (1 << FL_COUNT) - 1;

const MAGIC: u64 = u64::from_le_bytes(*b"SHMHEAP\x01");

/// Tag states. 0 is never valid.
const FREE: u64 = 1;
const USED: u64 = 2;
/// Allocated, and parked in a process's [`Cache`]; its owner's identity is in the first
/// payload word.
const CACHED: u64 = 3;
const STATE_BITS: u32 = 2;
const UNIT_BITS: u32 = 37;
const CHECK_SHIFT: u32 = STATE_BITS + UNIT_BITS;
const LOW_MASK: u64 = (1 << CHECK_SHIFT) - 1;

/// Intent kinds (the low bits of `intent`; the rest is a block offset).
const ALLOC: u64 = 1;
const FREEING: u64 = 2;
const GROW: u64 = 3;
const REPAIR: u64 = 4;
const KIND_MASK: u64 = GRANULE - 1;

/// Deadlines are looked at every this many steps of a walk.
const DEADLINE_EVERY: u64 = 1024;

static_assertions::const_assert!(MAX_HEAP >> 4 < 1 << UNIT_BITS);
static_assertions::const_assert!((MAX_HEAP.ilog2() - 7) as usize == FL_COUNT - 1);

// ---------------------------------------------------------------------------------------
// Errors.

/// Where and what a corruption is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corruption {
    /// What was found wrong.
    pub what: &'static str,
    /// The offset (or value) it was found at.
    pub at: u64,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at {:#x})", self.what, self.at)
    }
}

/// Why a heap operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeapError {
    /// No free block can hold the request now; `available` is the usable size of the
    /// largest free block (with alignment 16, a request of at most that many bytes fits).
    /// Grow the heap and retry.
    OutOfSpace {
        /// Bytes asked for.
        requested: u64,
        /// Usable bytes of the largest free block.
        available: u64,
    },
    /// A request that no heap can hold (over [`MAX_REQUEST`] bytes).
    TooLarge {
        /// Bytes asked for.
        requested: u64,
    },
    /// A bad argument: an alignment that is not a power of two up to [`MAX_ALIGN`], bounds
    /// that are not 16-aligned or do not fit the region, a `grow` that shrinks.
    InvalidArgument(&'static str),
    /// `offset` is a block the heap has already freed.
    DoubleFree {
        /// The offset passed.
        offset: u64,
    },
    /// `offset` is not the start of an allocated block (stale, forged, or not from this
    /// heap).
    NotAllocated {
        /// The offset passed.
        offset: u64,
    },
    /// The heap has not been initialised (its bytes are zero).
    Uninitialised,
    /// The heap's shared state is inconsistent: scribbled on by a peer, or not a heap.
    Corrupt(Corruption),
    /// The deadline passed first (waiting for the lock, or during a long walk).
    TimedOut,
}

impl fmt::Display for HeapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeapError::OutOfSpace {
                requested,
                available,
            } => write!(
                f,
                "heap full: {requested} bytes requested, the largest free block holds {available}; grow the heap"
            ),
            HeapError::TooLarge { requested } => write!(
                f,
                "{requested} bytes is more than any heap can hold (at most {MAX_REQUEST}): \
                 split the data, or give it a mapping of its own"
            ),
            HeapError::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
            HeapError::DoubleFree { offset } => {
                write!(
                    f,
                    "double free: the block at {offset:#x} is already free: free each block once"
                )
            }
            HeapError::NotAllocated { offset } => {
                write!(
                    f,
                    "{offset:#x} is not an allocated block of this heap: free only what alloc \
                     returned, once"
                )
            }
            HeapError::Uninitialised => {
                f.write_str("the heap is not initialised: call RawHeap::init first")
            }
            HeapError::Corrupt(c) => write!(
                f,
                "the heap is corrupt: {c}; a process wrote into it outside shmproc: \
                 RawHeap::recover rebuilds the free lists if the chain of blocks is intact"
            ),
            HeapError::TimedOut => f.write_str(
                "the deadline passed before the heap's lock was taken or the walk was done: \
                 retry (an interrupted repair is resumed by the next caller)",
            ),
        }
    }
}

impl std::error::Error for HeapError {}

#[cold]
fn corrupt(what: &'static str, at: u64) -> HeapError {
    HeapError::Corrupt(Corruption { what, at })
}

// ---------------------------------------------------------------------------------------
// The region.

/// A process's view of the mapping the heap's blocks live in: its base address and
/// length. Offsets are relative to `base`; every access is checked against `len`.
#[derive(Debug, Clone, Copy)]
pub struct Region {
    base: *mut u8,
    len: u64,
}

// SAFETY: a Region is an address range the creator promised stays mapped; every access
// through it is an atomic word access or a write to a block the caller owns.
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

impl Region {
    /// A view of `len` bytes at `base`.
    ///
    /// # Safety
    /// `len` bytes from `base` must be mapped, readable and writable, for as long as this
    /// `Region` (or a copy) is used; they may be shared with other processes, but must not
    /// be accessed through Rust references that assume they do not change.
    ///
    /// # Errors
    /// [`HeapError::InvalidArgument`] if `base` is null or not 16-aligned.
    pub unsafe fn new(base: *mut u8, len: u64) -> Result<Region, HeapError> {
        if base.is_null() || base as usize % GRANULE as usize != 0 {
            return Err(HeapError::InvalidArgument(
                "a region's base must be non-null and 16-aligned",
            ));
        }
        if len > isize::MAX as u64 {
            return Err(HeapError::InvalidArgument(
                "a region longer than isize::MAX",
            ));
        }
        Ok(Region { base, len })
    }

    /// The base address.
    pub fn base(&self) -> *mut u8 {
        self.base
    }

    /// Bytes in the region.
    pub fn size(&self) -> u64 {
        self.len
    }

    /// The 8-byte word at `off`, if it lies inside the region and is 8-aligned.
    #[inline]
    fn word(&self, off: u64) -> Option<&Word> {
        if off % 8 != 0 || off.checked_add(8)? > self.len {
            return None;
        }
        // SAFETY: in bounds (checked above), 8-aligned (base is 16-aligned), mapped for
        // the life of the region (`new`'s contract); `Word` is valid for any bits.
        Some(unsafe { &*self.base.add(off as usize).cast::<Word>() })
    }

    /// Zeroes `[off, off + len)`, which the caller owns.
    fn zero(&self, off: u64, len: u64) {
        if len == 0 || off.checked_add(len).is_none_or(|e| e > self.len) {
            return;
        }
        // SAFETY: in bounds (checked above); the bytes are a block just allocated to the
        // caller, so no other party of a correct program touches them.
        unsafe { std::ptr::write_bytes(self.base.add(off as usize), 0, len as usize) };
    }
}

// ---------------------------------------------------------------------------------------
// Tags and classes.

/// The 25-bit check of a block at `off` of `units` 16-byte units (splitmix64's
/// finaliser). The state is not hashed: changing it is a 2-bit store.
#[inline]
fn check_of(off: u64, units: u64) -> u64 {
    let mut x = off ^ units.rotate_left(29) ^ 0x5348_4d48_4541_5021;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)) >> CHECK_SHIFT
}

/// The tag of a block at `off` of `size` bytes in `state`.
#[inline]
fn seal(off: u64, size: u64, state: u64) -> u64 {
    let units = size >> 4;
    (units << STATE_BITS) | state | (check_of(off, units) << CHECK_SHIFT)
}

/// `tag` with its state replaced.
#[inline]
fn restate(tag: u64, state: u64) -> u64 {
    (tag & !((1 << STATE_BITS) - 1)) | state
}

/// The size a tag records (not checked).
#[inline]
fn tag_size(tag: u64) -> u64 {
    ((tag & LOW_MASK) >> STATE_BITS) << 4
}

/// Size and state of the tag `tag` read at `off`, if it is a valid tag for that offset.
#[inline]
fn unseal(off: u64, tag: u64) -> Option<(u64, u64)> {
    let units = (tag & LOW_MASK) >> STATE_BITS;
    let state = tag & ((1 << STATE_BITS) - 1);
    if state == 0 || tag >> CHECK_SHIFT != check_of(off, units) {
        return None;
    }
    Some((units << 4, state))
}

/// The list of a free block of `size` bytes (`size <= MAX_HEAP`).
#[inline]
fn class(size: u64) -> (usize, usize) {
    if size < SMALL {
        (0, (size >> 4) as usize)
    } else {
        let m = 63 - size.leading_zeros();
        (
            (m - 7) as usize,
            ((size >> (m - SL_BITS)) as usize) & (SL_COUNT - 1),
        )
    }
}

/// The first list whose every block holds `size` bytes, if there is one.
#[inline]
fn class_up(size: u64) -> Option<(usize, usize)> {
    let s = if size < SMALL {
        size
    } else {
        size + (1u64 << (63 - size.leading_zeros() - SL_BITS)) - 1
    };
    let (fl, sl) = class(s);
    (fl < FL_COUNT).then_some((fl, sl))
}

/// The block size for a request of `size` usable bytes.
#[inline]
fn block_size(size: u64) -> Result<u64, HeapError> {
    if size > MAX_REQUEST {
        return Err(HeapError::TooLarge { requested: size });
    }
    Ok(((size + HEADER + GRANULE - 1) & !(GRANULE - 1)).max(MIN_BLOCK))
}

/// The leading gap before an `align`-aligned payload in a block at `b`: 0 or at least
/// `MIN_BLOCK` (a gap is split off as a free block).
#[inline]
/// A caller's word for `alloc_into` / `free_from`: 8-aligned, inside the region.
fn check_link(region: &Region, dest: u64) -> Result<(), HeapError> {
    if dest == 0 || dest % 8 != 0 || region.word(dest).is_none() {
        return Err(HeapError::InvalidArgument(
            "the word to record the offset in must be a non-zero, aligned offset in the region",
        ));
    }
    Ok(())
}

fn gap(b: u64, align: u64) -> u64 {
    if align <= GRANULE {
        return 0;
    }
    let p = (b + HEADER + align - 1) & !(align - 1);
    let g = p - HEADER - b;
    if g != 0 && g < MIN_BLOCK {
        g + align
    } else {
        g
    }
}

// ---------------------------------------------------------------------------------------
// The shared state.

/// The part of the heap's state read and written only under the lock.
#[repr(C)]
struct State {
    magic: Word,
    start: Word,
    end: Word,
    end_prev: Word,
    fresh: Word,
    intent: Word,
    fl_bitmap: Word,
    link: Word,
    sl_bitmap: [Word; FL_COUNT],
    heads: [[Word; SL_COUNT]; FL_COUNT],
}

/// The heap's shared state: lock, statistics, bounds and free-list index (layout in the
/// [module docs](self)). All-zero bytes are an uninitialised heap.
///
/// The words are `core` atomics accessed with `Relaxed` ordering: the lock orders them
/// (its Acquire CAS in `RawLock::lock` pairs with the Release swap in `RawLock::unlock`);
/// they are atomics so that a peer scribbling on them concurrently is not a data race, and
/// so that each is read exactly once before it is checked and used. Under loom the
/// lock-protected part sits in a model `UnsafeCell`, so the model reports any access
/// that the lock does not order.
#[repr(C)]
pub struct RawHeap {
    lock: RawLock,
    /// Statistics: written under the lock, read without it.
    size: Word,
    used: Word,
    blocks: Word,
    free_blocks: Word,
    recoveries: Word,
    _reserved: Word,
    state: UnsafeCell<State>,
}

// SAFETY: `state` is only reached inside `with` / `with_mut` while the heap lock is held
// (`RawHeap::run`), or before the heap is shared (`init`); everything else is atomics.
unsafe impl Sync for RawHeap {}

#[cfg(not(shmproc_loom))]
static_assertions::assert_impl_all!(RawHeap: Send, Sync);
#[cfg(not(shmproc_loom))]
static_assertions::assert_impl_all!(Region: Send, Sync, Copy);

#[cfg(not(shmproc_loom))]
mod layout_checks {
    use super::*;
    use core::mem::{offset_of, size_of};
    static_assertions::const_assert_eq!(offset_of!(RawHeap, size), 16);
    static_assertions::const_assert_eq!(offset_of!(RawHeap, state), 64);
    static_assertions::const_assert_eq!(offset_of!(State, end_prev), 24);
    static_assertions::const_assert_eq!(offset_of!(State, sl_bitmap), 64);
    static_assertions::const_assert_eq!(offset_of!(State, heads), 336);
    static_assertions::const_assert_eq!(size_of::<RawHeap>(), 4752);
}

/// Figures about a heap. From [`RawHeap::stats`] a snapshot of words updated separately
/// (each is right, their sum may be momentarily off); from [`RawHeap::check`], exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeapStats {
    /// `end - start`.
    pub size: u64,
    /// Bytes in allocated blocks, headers included.
    pub used_bytes: u64,
    /// Bytes in free blocks, headers included (`size - used_bytes`).
    pub free_bytes: u64,
    /// Allocated blocks.
    pub allocated_blocks: u64,
    /// Free blocks.
    pub free_blocks: u64,
    /// Size of the largest free block (exact from `check`; 0 from `stats`).
    pub largest_free: u64,
    /// Repairs run after a holder of the heap lock died (or left work unfinished).
    pub recoveries: u64,
}

/// What [`RawHeap::recover`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// The lock's previous holder had died.
    pub owner_died: bool,
    /// The operation that was interrupted, if one was.
    pub interrupted: Option<Interrupted>,
    /// The block the interrupted operation had left allocated and the repair freed (its
    /// offset and size), if any.
    pub released: Option<(u64, u64)>,
    /// Pairs of adjacent free blocks merged.
    pub merged: u64,
    /// Cached blocks of dead processes freed ([`RawHeap::reclaim_dead`]).
    pub reclaimed: u64,
    /// The heap after the repair.
    pub stats: HeapStats,
}

/// An operation a process did not finish (from `intent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupted {
    /// `alloc` of the block at this offset (its header); rolled back.
    Alloc(u64),
    /// `free` of the block at this offset (its header); completed.
    Free(u64),
    /// `grow` from this end.
    Grow(u64),
    /// A repair.
    Repair,
    /// An intent word no operation writes (a scribble).
    Unknown(u64),
}

// ---------------------------------------------------------------------------------------
// The write hook (crash injection).

#[cfg(any(test, fuzzing, shmproc_loom))]
pub use super::crash::CrashAfter;
use super::crash::{Hook, Live};

// ---------------------------------------------------------------------------------------
// The public operations.

impl Default for RawHeap {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RawHeap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawHeap")
            .field("holder", &self.lock.holder())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl RawHeap {
    /// An uninitialised heap (all zero, as in fresh shared memory).
    pub fn new() -> RawHeap {
        RawHeap {
            lock: RawLock::new(),
            size: Word::new(0),
            used: Word::new(0),
            blocks: Word::new(0),
            free_blocks: Word::new(0),
            recoveries: Word::new(0),
            _reserved: Word::new(0),
            state: UnsafeCell::new(State {
                magic: Word::new(0),
                start: Word::new(0),
                end: Word::new(0),
                end_prev: Word::new(0),
                fresh: Word::new(0),
                intent: Word::new(0),
                fl_bitmap: Word::new(0),
                link: Word::new(0),
                sl_bitmap: [const { Word::new(0) }; FL_COUNT],
                heads: [const { [const { Word::new(0) }; SL_COUNT] }; FL_COUNT],
            }),
        }
    }

    /// Sets the heap up over `[start, end)` of `region`: one free block. Those bytes must
    /// be zero (as in a new file or mapping) for [`alloc_zeroed`](Self::alloc_zeroed) to
    /// keep its promise without clearing them.
    ///
    /// Not synchronised: call it before any other process can reach the heap (the arena
    /// does, before it publishes its header).
    ///
    /// # Errors
    /// [`HeapError::InvalidArgument`] when the heap is already initialised, or the bounds
    /// are not 16-aligned, `start` is 0, `end - start` is under [`MIN_BLOCK`] or over
    /// [`MAX_HEAP`], or `end` lies past the region.
    pub fn init(&self, region: &Region, start: u64, end: u64) -> Result<(), HeapError> {
        if start % GRANULE != 0 || end % GRANULE != 0 || start == 0 {
            return Err(HeapError::InvalidArgument(
                "heap bounds must be 16-aligned and start above 0",
            ));
        }
        if end < start + MIN_BLOCK || end - start > MAX_HEAP || end > region.len {
            return Err(HeapError::InvalidArgument(
                "heap bounds must hold a block, at most MAX_HEAP bytes, inside the region",
            ));
        }
        self.state.with_mut(|p| {
            // SAFETY: `p` points to our `State`, made only of atomics: a shared reference
            // is sound even if another party writes to it.
            let st = unsafe { &*p };
            // Relaxed: `init` runs before the heap is shared; a peer's magic is checked, not trusted.
            if st.magic.load(Ordering::Relaxed) == MAGIC {
                return Err(HeapError::InvalidArgument(
                    "the heap is already initialised",
                ));
            }
            let mut op = Op {
                heap: self,
                st,
                r: region,
                hook: &Live,
                deadline: None,
                start,
                end,
                fresh: start,
            };
            for w in [&st.intent, &st.link, &st.fl_bitmap, &st.end_prev] {
                op.sput(w, 0);
            }
            for (bits, heads) in st.sl_bitmap.iter().zip(&st.heads) {
                op.sput(bits, 0);
                for h in heads {
                    op.sput(h, 0);
                }
            }
            op.sput(&st.start, start);
            op.sput(&st.end, end);
            op.sput(&st.fresh, start);
            op.set_tag(start, end - start, FREE)?;
            op.put(start + 8, 0)?;
            op.set_prev(end, end - start)?;
            op.insert(start, end - start)?;
            for (w, v) in [
                (&self.size, end - start),
                (&self.used, 0),
                (&self.blocks, 0),
                (&self.free_blocks, 1),
                (&self.recoveries, 0),
            ] {
                op.sput(w, v);
            }
            // Relaxed: whoever shares the heap publishes it afterwards (the arena's Release
            // store of its own magic, which pairs with the opener's Acquire load).
            st.magic.store(MAGIC, Ordering::Relaxed);
            Ok(())
        })
    }

    /// Allocates a block of at least `size` bytes whose offset is a multiple of `align`
    /// (a power of two up to [`MAX_ALIGN`]; below 16 means 16); returns the offset of its
    /// first usable byte. Its bytes are unspecified (see
    /// [`alloc_zeroed`](Self::alloc_zeroed)). `size` 0 gets a minimal block.
    ///
    /// # Errors
    /// [`HeapError::OutOfSpace`] when no free block can hold it (grow and retry);
    /// [`HeapError::TooLarge`], [`HeapError::InvalidArgument`] for a bad request;
    /// [`HeapError::TimedOut`]; [`HeapError::Corrupt`]; [`HeapError::Uninitialised`].
    pub fn alloc(
        &self,
        region: &Region,
        size: u64,
        align: u64,
        who: &impl Liveness,
        deadline: Option<Instant>,
    ) -> Result<u64, HeapError> {
        self.alloc_with(region, size, align, false, 0, who, deadline, &Live)
    }

    /// As [`alloc`](Self::alloc), with every byte of the block zero. The bytes are
    /// cleared after the lock is released, and only those that may have been written
    /// before (see the module docs on `fresh`).
    ///
    /// # Errors
    /// As [`alloc`](Self::alloc).
    pub fn alloc_zeroed(
        &self,
        region: &Region,
        size: u64,
        align: u64,
        who: &impl Liveness,
        deadline: Option<Instant>,
    ) -> Result<u64, HeapError> {
        self.alloc_with(region, size, align, true, 0, who, deadline, &Live)
    }

    /// Frees the block whose first usable byte is at `offset` (as `alloc` returned it),
    /// merging it with free neighbours.
    ///
    /// # Errors
    /// [`HeapError::DoubleFree`], [`HeapError::NotAllocated`] for an offset that is not an
    /// allocated block; [`HeapError::TimedOut`]; [`HeapError::Corrupt`].
    pub fn free(
        &self,
        region: &Region,
        offset: u64,
        who: &impl Liveness,
        deadline: Option<Instant>,
    ) -> Result<(), HeapError> {
        self.run(region, who, deadline, &Live, true, |op, _| {
            op.free(offset, USED, 0)
        })
    }

    /// As [`alloc`](Self::alloc) (or [`alloc_zeroed`](Self::alloc_zeroed) with `zero`),
    /// and stores the block's offset into the word at region offset `dest` inside the same
    /// locked operation: a process killed at any point leaves either no block and `dest`
    /// as it was before (0 if it was 0), or the block allocated and its offset in `dest`.
    /// Nothing is lost: a layer that keeps its blocks' offsets in shared words (the
    /// arena's metadata, an object's state) never has an allocated block that no word
    /// names. (With `zero`, the bytes are cleared after the lock is released, so a block
    /// found through `dest` after its allocator died may hold old bytes.)
    ///
    /// `dest` must be an 8-aligned word of the region outside the heap's own bookkeeping
    /// (typically before `start`, or inside an allocated block).
    ///
    /// # Errors
    /// As [`alloc`](Self::alloc); [`HeapError::InvalidArgument`] for a `dest` that is not
    /// an aligned word of the region.
    #[allow(clippy::too_many_arguments)]
    pub fn alloc_into(
        &self,
        region: &Region,
        size: u64,
        align: u64,
        zero: bool,
        dest: u64,
        who: &impl Liveness,
        deadline: Option<Instant>,
    ) -> Result<u64, HeapError> {
        check_link(region, dest)?;
        self.alloc_with(region, size, align, zero, dest, who, deadline, &Live)
    }

    /// Frees the block whose offset the word at region offset `dest` holds and sets that
    /// word to 0, in one locked operation: a process killed at any point leaves either
    /// both done or neither (the next locker completes it). Returns the offset freed, or
    /// `None` when `dest` held 0.
    ///
    /// # Errors
    /// As [`free`](Self::free) for the offset `dest` holds (then `dest` is left as it
    /// was); [`HeapError::InvalidArgument`] for a `dest` that is not an aligned word of
    /// the region.
    pub fn free_from(
        &self,
        region: &Region,
        dest: u64,
        who: &impl Liveness,
        deadline: Option<Instant>,
    ) -> Result<Option<u64>, HeapError> {
        self.free_from_with(region, dest, who, deadline, &Live)
    }

    fn free_from_with<H: Hook>(
        &self,
        region: &Region,
        dest: u64,
        who: &impl Liveness,
        deadline: Option<Instant>,
        hook: &H,
    ) -> Result<Option<u64>, HeapError> {
        check_link(region, dest)?;
        self.run(region, who, deadline, hook, true, |op, _| {
            let p = op.get(dest)?;
            if p == 0 {
                return Ok(None);
            }
            op.free(p, USED, dest).map(|()| Some(p))
        })
    }

    /// Usable bytes of the allocated block at `offset` (at least what was asked for).
    /// Takes no lock: the block belongs to the caller. Checks the block's tag (not the
    /// heap's bounds, which only the lock holder may read).
    ///
    /// # Errors
    /// [`HeapError::NotAllocated`], [`HeapError::DoubleFree`] as for `free`.
    pub fn usable_size(&self, region: &Region, offset: u64) -> Result<u64, HeapError> {
        let b = offset.wrapping_sub(HEADER);
        if offset % GRANULE != 0 || offset < HEADER {
            return Err(HeapError::NotAllocated { offset });
        }
        // Relaxed: the block is the caller's; its tag changes only when it frees it.
        let tag = region.word(b).map(|w| w.load(Ordering::Relaxed));
        match tag.and_then(|t| unseal(b, t)) {
            Some((size, USED)) if b.checked_add(size).is_some_and(|e| e <= region.len) => {
                Ok(size - HEADER)
            }
            Some((_, FREE | CACHED)) => Err(HeapError::DoubleFree { offset }),
            _ => Err(HeapError::NotAllocated { offset }),
        }
    }

    /// Appends `[end, new_end)` to the heap as free space, merged with a free last block.
    /// Those bytes must be mapped (inside `region`) and zero, as a file just extended is.
    /// A `new_end` equal to the current end does nothing, so an interrupted growth can
    /// simply be retried.
    ///
    /// # Errors
    /// [`HeapError::InvalidArgument`] when `new_end` is below the end, less than
    /// [`MIN_BLOCK`] above it, not 16-aligned, past the region or past [`MAX_HEAP`];
    /// [`HeapError::TimedOut`]; [`HeapError::Corrupt`].
    pub fn grow(
        &self,
        region: &Region,
        new_end: u64,
        who: &impl Liveness,
        deadline: Option<Instant>,
    ) -> Result<(), HeapError> {
        self.run(region, who, deadline, &Live, true, |op, _| op.grow(new_end))
    }

    /// Walks the whole heap under the lock and validates everything: the chain of tags,
    /// the previous-size words, no two adjacent free blocks, every free block in the
    /// right list exactly once, the bitmaps, the statistics, the zero mark. Returns exact
    /// figures. O(blocks): for tests, fuzzing and inspection.
    ///
    /// # Errors
    /// [`HeapError::Corrupt`] naming the first inconsistency; [`HeapError::TimedOut`].
    pub fn check(
        &self,
        region: &Region,
        who: &impl Liveness,
        deadline: Option<Instant>,
    ) -> Result<HeapStats, HeapError> {
        self.run(region, who, deadline, &Live, true, |op, _| op.check())
    }

    /// Every allocated block (not free, not parked in a cache): its payload offset and
    /// usable size, in address order. A walk under the lock, O(blocks): for repairs and
    /// inspection, never on a hot path.
    ///
    /// # Errors
    /// [`HeapError::Corrupt`] when the chain of tags is broken; [`HeapError::TimedOut`].
    pub fn used_blocks(
        &self,
        region: &Region,
        who: &impl Liveness,
        deadline: Option<Instant>,
    ) -> Result<Vec<(u64, u64)>, HeapError> {
        self.run(region, who, deadline, &Live, true, |op, _| op.used_blocks())
    }

    /// Takes the lock (from a dead holder if need be) and repairs the heap with a full
    /// walk, whether or not anything was interrupted: resolves an interrupted operation,
    /// merges adjacent free blocks, rebuilds the free lists, bitmaps and statistics.
    /// Operations do this by themselves when they find the lock's holder dead; this is
    /// for tools, and for a heap whose free lists a peer scribbled on.
    ///
    /// # Errors
    /// [`HeapError::Corrupt`] when the chain of tags itself is broken (nothing to rebuild
    /// from); [`HeapError::TimedOut`] (the repair is resumed by the next locker).
    pub fn recover(
        &self,
        region: &Region,
        who: &impl Liveness,
        deadline: Option<Instant>,
    ) -> Result<Recovery, HeapError> {
        self.run(region, who, deadline, &Live, false, |op, how| {
            op.repair(how == Acquired::OwnerDied)
        })
    }

    /// Frees the blocks parked in the [`Cache`]s of dead processes: a repair walk (see
    /// [`recover`](Self::recover)) that also frees every cached block whose owner `who`
    /// finds dead. Returns what it did; `reclaimed` counts those blocks. O(blocks): run it
    /// when a process is known to have died (the arena's registry of attached processes
    /// tells), not on every operation.
    ///
    /// # Errors
    /// As [`recover`](Self::recover).
    pub fn reclaim_dead(
        &self,
        region: &Region,
        who: &impl Liveness,
        deadline: Option<Instant>,
    ) -> Result<Recovery, HeapError> {
        // Owners asked about once each (a procfs read per owner, not per block).
        let mut seen: Vec<(u64, bool)> = Vec::new();
        let me = who.my_ident();
        let mut dead = |ident: u64| {
            if ident == me {
                return false;
            }
            if let Some(&(_, d)) = seen.iter().find(|(i, _)| *i == ident) {
                return d;
            }
            let pid = (ident >> crate::sync::liveness::IDENT_PID_SHIFT) as u32;
            let start = ident & crate::sync::liveness::IDENT_START_MASK;
            let d =
                pid != 0 && pid & !crate::sync::liveness::PID_MASK == 0 && who.is_dead(pid, start);
            if seen.len() < 4096 {
                seen.push((ident, d));
            }
            d
        };
        self.run(region, who, deadline, &Live, false, |op, how| {
            op.walk_repair(how == Acquired::OwnerDied, &mut dead)
        })
    }

    /// Frees blocks parked in a cache (state `CACHED`) under one lock; stops at the first
    /// error.
    fn free_cached(
        &self,
        region: &Region,
        blocks: &[u64],
        who: &impl Liveness,
        deadline: Option<Instant>,
    ) -> Result<(), HeapError> {
        self.run(region, who, deadline, &Live, true, |op, _| {
            blocks
                .iter()
                .try_for_each(|&b| op.free(b + HEADER, CACHED, 0))
        })
    }

    /// The statistics, read without the lock (see [`HeapStats`]).
    pub fn stats(&self) -> HeapStats {
        // Relaxed: a snapshot for inspection; each word is written under the lock.
        let ld = |w: &Word| w.load(Ordering::Relaxed);
        let (size, used) = (ld(&self.size), ld(&self.used));
        HeapStats {
            size,
            used_bytes: used,
            free_bytes: size.saturating_sub(used),
            allocated_blocks: ld(&self.blocks),
            free_blocks: ld(&self.free_blocks),
            largest_free: 0,
            recoveries: ld(&self.recoveries),
        }
    }

    /// The pid holding the heap lock, if any (a snapshot).
    pub fn holder(&self) -> Option<u32> {
        self.lock.holder()
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn alloc_with<H: Hook>(
        &self,
        region: &Region,
        size: u64,
        align: u64,
        zero: bool,
        link: u64,
        who: &impl Liveness,
        deadline: Option<Instant>,
        hook: &H,
    ) -> Result<u64, HeapError> {
        if !align.is_power_of_two() || align > MAX_ALIGN {
            return Err(HeapError::InvalidArgument(
                "alignment must be a power of two up to MAX_ALIGN",
            ));
        }
        let n = block_size(size)?;
        let (p, dirty_end) = self.run(region, who, deadline, hook, true, |op, _| {
            op.alloc(size, n, align.max(GRANULE), link)
        })?;
        if zero && hook.alive() {
            region.zero(p, dirty_end.saturating_sub(p));
        }
        Ok(p)
    }

    /// Takes the lock, repairs if the holder died or left an intent (when `repair`), runs
    /// `f`, releases the lock.
    #[inline]
    fn run<H: Hook, T>(
        &self,
        region: &Region,
        who: &impl Liveness,
        deadline: Option<Instant>,
        hook: &H,
        repair: bool,
        f: impl FnOnce(&mut Op<'_, H>, Acquired) -> Result<T, HeapError>,
    ) -> Result<T, HeapError> {
        let how = self
            .lock
            .lock(who, deadline, SpinPolicy::default())
            .map_err(|_| HeapError::TimedOut)?;
        let out = self.state.with_mut(|p| {
            // SAFETY: `p` points to our `State`, made only of atomics: a shared reference
            // is sound even if another party writes to it.
            let st = unsafe { &*p };
            let mut op = Op::enter(self, st, region, hook, deadline)?;
            if repair {
                // Relaxed: under the lock (see `RawHeap`).
                if st.intent.load(Ordering::Relaxed) != 0 {
                    op.repair(how == Acquired::OwnerDied)?;
                } else if how == Acquired::OwnerDied {
                    // The holder died before its first write or after its last: the heap
                    // is consistent (module docs, *Crash consistency*).
                    op.bump(&self.recoveries, 1);
                }
            }
            f(&mut op, how)
        });
        if hook.allow() {
            self.lock.unlock();
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// The per-process cache.

/// The largest block a [`Cache`] keeps (8 KiB; requests up to 8176 bytes).
pub const CACHE_MAX_BLOCK: u64 = 8192;
/// Bytes of blocks a [`Cache`] keeps at most; past this it gives half a list back.
pub const CACHE_BYTES: u64 = 256 << 10;
/// Blocks per list of a [`Cache`].
const CACHE_DEPTH: usize = 16;
/// One list per TLSF class up to `CACHE_MAX_BLOCK`.
const CACHE_BINS: usize = (CACHE_MAX_BLOCK.ilog2() as usize - 7) * SL_COUNT + 1;

/// A list of parked blocks: each one's offset and the exact tag it was parked with (so
/// taking it out is checked by one comparison).
#[derive(Clone, Copy)]
struct Bin {
    len: usize,
    blocks: [(u64, u64); CACHE_DEPTH],
}

/// A process's cache of small blocks of one heap: `free` parks a block here instead of
/// giving it back, `alloc` takes one from here, both without the heap's lock (a few
/// loads and stores; see `benches/heap.rs` for what this buys).
///
/// A parked block stays allocated in the heap: its tag says `CACHED` and its first word
/// holds its owner's identity (pid and start time). So a process that dies with blocks in
/// its cache leaks nothing for good: [`RawHeap::reclaim_dead`] frees them. A process that
/// exits normally gives them back with [`drain`](Self::drain) (dropping a `Cache` does
/// not: it has no heap to talk to).
///
/// The cache is process-local memory, one per thread or behind the caller's own lock
/// (`&mut self`). A `fork` copies it into the child; the child's first call notices that
/// it is another process (its identity differs from the owner's) and forgets the copied
/// blocks, which stay the parent's.
///
/// Checks: a block freed into the cache must carry a valid allocated tag (so double frees
/// and forged offsets are refused, as by [`RawHeap::free`]); the heap's bounds are not
/// checked here (they need the lock), only the region's. A block taken out must still be
/// `CACHED`; one that a peer scribbled on is dropped from the cache, not handed out.
///
/// ```
/// # use shmproc::raw::sync::liveness::Procfs;
/// # use shmproc::raw::heap::{Cache, RawHeap, Region};
/// # let mut mem = vec![0u128; 4096];
/// # let region = unsafe { Region::new(mem.as_mut_ptr().cast(), 65536) }?;
/// # let heap = RawHeap::new();
/// # heap.init(&region, 4096, 65536)?;
/// let mut cache = Cache::new();
/// let a = cache.alloc(&heap, &region, 64, 16, &Procfs, None)?; // from the heap
/// cache.free(&heap, &region, a, &Procfs, None)?; // parked in the cache
/// assert_eq!(cache.alloc(&heap, &region, 64, 16, &Procfs, None)?, a); // no lock taken
/// assert_eq!(heap.stats().allocated_blocks, 1);
/// cache.free(&heap, &region, a, &Procfs, None)?;
/// cache.drain(&heap, &region, &Procfs, None)?; // back to the heap
/// assert_eq!(heap.stats().allocated_blocks, 0);
/// # Ok::<(), shmproc::raw::heap::HeapError>(())
/// ```
pub struct Cache {
    owner: u64,
    bytes: u64,
    bins: Box<[Bin; CACHE_BINS]>,
}

impl Default for Cache {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("owner", &self.owner)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Cache {
        Cache {
            owner: 0,
            bytes: 0,
            bins: Box::new(
                [Bin {
                    len: 0,
                    blocks: [(0, 0); CACHE_DEPTH],
                }; CACHE_BINS],
            ),
        }
    }

    /// Bytes of blocks parked here.
    pub fn cached_bytes(&self) -> u64 {
        self.bytes
    }

    /// The cache as `who` may use it: after a `fork` the blocks listed are the parent's.
    #[inline]
    fn adopt(&mut self, who: &impl Liveness) -> u64 {
        let me = who.my_ident();
        if self.owner != me {
            self.forget();
            self.owner = me;
        }
        me
    }

    fn forget(&mut self) {
        for bin in self.bins.iter_mut() {
            bin.len = 0;
        }
        self.bytes = 0;
    }

    /// As [`RawHeap::alloc`], from the cache when it holds a block that fits (`align` up
    /// to 16 and blocks up to [`CACHE_MAX_BLOCK`]), else from the heap.
    ///
    /// # Errors
    /// As [`RawHeap::alloc`].
    #[inline]
    pub fn alloc(
        &mut self,
        heap: &RawHeap,
        region: &Region,
        size: u64,
        align: u64,
        who: &impl Liveness,
        deadline: Option<Instant>,
    ) -> Result<u64, HeapError> {
        match self.take_fit(region, size, align, who) {
            Some(p) => Ok(p),
            None => heap.alloc(region, size, align, who, deadline),
        }
    }

    /// As [`alloc`](Self::alloc), with the block's first `size` bytes zero: a block from
    /// the cache is cleared here, one from the heap comes from
    /// [`RawHeap::alloc_zeroed`].
    ///
    /// # Errors
    /// As [`RawHeap::alloc`].
    #[inline]
    pub fn alloc_zeroed(
        &mut self,
        heap: &RawHeap,
        region: &Region,
        size: u64,
        align: u64,
        who: &impl Liveness,
        deadline: Option<Instant>,
    ) -> Result<u64, HeapError> {
        match self.take_fit(region, size, align, who) {
            Some(p) => {
                region.zero(p, size);
                Ok(p)
            }
            None => heap.alloc_zeroed(region, size, align, who, deadline),
        }
    }

    /// A parked block that holds `size` bytes at alignment `align`, if there is one.
    #[inline]
    fn take_fit(
        &mut self,
        region: &Region,
        size: u64,
        align: u64,
        who: &impl Liveness,
    ) -> Option<u64> {
        self.adopt(who);
        if align > GRANULE || size > CACHE_MAX_BLOCK - HEADER {
            return None;
        }
        let n = block_size(size).ok()?;
        let (fl, sl) = class(n);
        if let Some(p) = self.take(region, fl * SL_COUNT + sl, n) {
            return Some(p);
        }
        let (fl, sl) = class_up(n)?;
        let i = fl * SL_COUNT + sl;
        if i < CACHE_BINS {
            return self.take(region, i, n);
        }
        None
    }

    /// Takes the last block of list `i` if it holds `n` bytes.
    #[inline]
    fn take(&mut self, region: &Region, i: usize, n: u64) -> Option<u64> {
        let bin = &mut self.bins[i];
        let (b, tag) = *bin.blocks.get(bin.len.checked_sub(1)?)?;
        let size = tag_size(tag);
        if size < n {
            // Too small for this request (a list holds a range of sizes).
            return None;
        }
        bin.len -= 1;
        let w = region.word(b);
        // Relaxed: the block is ours (allocated, parked by this process); nobody else
        // writes its tag.
        let Some(w) = w.filter(|w| w.load(Ordering::Relaxed) == tag) else {
            // Not as we left it (scribbled on): forget it, do not hand it out.
            self.bytes = self.bytes.saturating_sub(size);
            return None;
        };
        self.bytes -= size;
        // Relaxed: as above.
        w.store(restate(tag, USED), Ordering::Relaxed);
        Some(b + HEADER)
    }

    /// As [`RawHeap::free`]: parks a block of up to [`CACHE_MAX_BLOCK`] bytes here (giving
    /// half a list back to the heap, under one lock, when the list or the byte budget is
    /// full), frees a larger one in the heap.
    ///
    /// # Errors
    /// As [`RawHeap::free`]; a block already parked here (or in another cache) is
    /// [`HeapError::DoubleFree`].
    #[inline]
    pub fn free(
        &mut self,
        heap: &RawHeap,
        region: &Region,
        offset: u64,
        who: &impl Liveness,
        deadline: Option<Instant>,
    ) -> Result<(), HeapError> {
        let me = self.adopt(who);
        let b = offset.wrapping_sub(HEADER);
        let (Some(w), Some(owner)) = (region.word(b), region.word(offset)) else {
            return Err(HeapError::NotAllocated { offset });
        };
        if offset % GRANULE != 0 {
            return Err(HeapError::NotAllocated { offset });
        }
        // Relaxed: the block is the caller's until it is parked.
        let tag = w.load(Ordering::Relaxed);
        let size = match unseal(b, tag) {
            Some((size, USED)) if b.checked_add(size).is_some_and(|e| e <= region.len) => size,
            Some((_, FREE | CACHED)) => return Err(HeapError::DoubleFree { offset }),
            _ => return Err(HeapError::NotAllocated { offset }),
        };
        if size > CACHE_MAX_BLOCK {
            return heap.free(region, offset, who, deadline);
        }
        let (fl, sl) = class(size);
        let i = fl * SL_COUNT + sl;
        if self.bins[i].len == CACHE_DEPTH || self.bytes + size > CACHE_BYTES {
            self.give_back(heap, region, i, size, who, deadline)?;
        }
        // Owner first, then the tag: a process killed between the two leaves an
        // allocated block (the one it was freeing), never a cached one without an owner.
        // Relaxed: read only by a repair walk under the heap lock, after this process is
        // known dead (and so after these stores, which its death orders before).
        owner.store(me, Ordering::Relaxed);
        let parked = restate(tag, CACHED);
        w.store(parked, Ordering::Relaxed);
        let bin = &mut self.bins[i];
        bin.blocks[bin.len] = (b, parked);
        bin.len += 1;
        self.bytes += size;
        Ok(())
    }

    /// Makes room for a block of `size` bytes in list `i`: gives half of that list back
    /// if it is full, then halves the fullest lists until the byte budget has room; all
    /// under one lock.
    #[cold]
    fn give_back(
        &mut self,
        heap: &RawHeap,
        region: &Region,
        i: usize,
        size: u64,
        who: &impl Liveness,
        deadline: Option<Instant>,
    ) -> Result<(), HeapError> {
        let mut out = Vec::new();
        // Moves the upper half of a list to `out`; returns the bytes moved.
        let mut halve = |bin: &mut Bin| {
            let keep = bin.len / 2;
            let mut moved = 0;
            for &(b, tag) in &bin.blocks[keep..bin.len] {
                out.push(b);
                moved += tag_size(tag);
            }
            bin.len = keep;
            moved
        };
        if self.bins[i].len == CACHE_DEPTH {
            self.bytes = self.bytes.saturating_sub(halve(&mut self.bins[i]));
        }
        while self.bytes + size > CACHE_BYTES && self.bytes > 0 {
            let j = (0..CACHE_BINS)
                .max_by_key(|&j| self.bins[j].len)
                .unwrap_or(i);
            if self.bins[j].len == 0 {
                self.bytes = 0;
                break;
            }
            self.bytes = self.bytes.saturating_sub(halve(&mut self.bins[j]));
        }
        heap.free_cached(region, &out, who, deadline)
    }

    /// Gives every parked block back to the heap, under one lock.
    ///
    /// # Errors
    /// As [`RawHeap::free`]; the cache is empty afterwards either way.
    pub fn drain(
        &mut self,
        heap: &RawHeap,
        region: &Region,
        who: &impl Liveness,
        deadline: Option<Instant>,
    ) -> Result<(), HeapError> {
        self.adopt(who);
        let out: Vec<u64> = self
            .bins
            .iter()
            .flat_map(|bin| bin.blocks[..bin.len].iter().map(|&(b, _)| b))
            .collect();
        self.forget();
        if out.is_empty() {
            return Ok(());
        }
        heap.free_cached(region, &out, who, deadline)
    }
}

/// Test entry points with a crash hook (tests, loom models, the fuzzer).
#[cfg(any(test, fuzzing, shmproc_loom))]
#[doc(hidden)]
impl RawHeap {
    /// [`alloc`](Self::alloc) (or `alloc_zeroed`), each shared write through `hook`.
    #[allow(clippy::too_many_arguments)]
    pub fn alloc_hooked(
        &self,
        region: &Region,
        size: u64,
        align: u64,
        zero: bool,
        who: &impl Liveness,
        deadline: Option<Instant>,
        hook: &CrashAfter,
    ) -> Result<u64, HeapError> {
        self.alloc_with(region, size, align, zero, 0, who, deadline, hook)
    }

    /// [`alloc_into`](Self::alloc_into), each shared write through `hook`.
    #[allow(clippy::too_many_arguments)]
    pub fn alloc_into_hooked(
        &self,
        region: &Region,
        size: u64,
        align: u64,
        dest: u64,
        who: &impl Liveness,
        deadline: Option<Instant>,
        hook: &CrashAfter,
    ) -> Result<u64, HeapError> {
        check_link(region, dest)?;
        self.alloc_with(region, size, align, false, dest, who, deadline, hook)
    }

    /// [`free_from`](Self::free_from), each shared write through `hook`.
    pub fn free_from_hooked(
        &self,
        region: &Region,
        dest: u64,
        who: &impl Liveness,
        deadline: Option<Instant>,
        hook: &CrashAfter,
    ) -> Result<Option<u64>, HeapError> {
        self.free_from_with(region, dest, who, deadline, hook)
    }

    /// [`free`](Self::free), each shared write through `hook`.
    pub fn free_hooked(
        &self,
        region: &Region,
        offset: u64,
        who: &impl Liveness,
        deadline: Option<Instant>,
        hook: &CrashAfter,
    ) -> Result<(), HeapError> {
        self.run(region, who, deadline, hook, true, |op, _| {
            op.free(offset, USED, 0)
        })
    }

    /// [`grow`](Self::grow), each shared write through `hook`.
    pub fn grow_hooked(
        &self,
        region: &Region,
        new_end: u64,
        who: &impl Liveness,
        deadline: Option<Instant>,
        hook: &CrashAfter,
    ) -> Result<(), HeapError> {
        self.run(region, who, deadline, hook, true, |op, _| op.grow(new_end))
    }

    /// [`recover`](Self::recover), each shared write through `hook`.
    pub fn recover_hooked(
        &self,
        region: &Region,
        who: &impl Liveness,
        deadline: Option<Instant>,
        hook: &CrashAfter,
    ) -> Result<Recovery, HeapError> {
        self.run(region, who, deadline, hook, false, |op, how| {
            op.repair(how == Acquired::OwnerDied)
        })
    }

    /// Overwrites the shared state word `index` (0 = the lock word's 8 bytes, counting in
    /// words over the whole `RawHeap`) as a hostile peer could.
    #[cfg(not(shmproc_loom))]
    pub fn scribble(&self, index: usize, value: u64) {
        let words = core::mem::size_of::<RawHeap>() / 8;
        let base = (self as *const RawHeap).cast::<Word>();
        // SAFETY: in bounds (index % words); outside loom, RawHeap is `repr(C)` and made
        // only of 8-byte-aligned atomics (the lock's 4-byte word and padding overlaid by
        // one 8-byte store).
        let w = unsafe { &*base.add(index % words) };
        // Relaxed: a test hook; the fuzzer runs one thread.
        w.store(value, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------
// One operation under the lock.

struct Op<'a, H> {
    heap: &'a RawHeap,
    st: &'a State,
    r: &'a Region,
    hook: &'a H,
    deadline: Option<Instant>,
    /// The bounds and zero mark as read (and checked) on entry, kept up to date.
    start: u64,
    end: u64,
    fresh: u64,
}

/// A prepared unlink: the block's list and its neighbours, checked.
#[derive(Clone, Copy)]
struct Unlink {
    fl: usize,
    sl: usize,
    next: u64,
    prev: u64,
}

/// Brent's cycle detector over a sequence of offsets.
struct Brent {
    mark: u64,
    power: u64,
    lam: u64,
}

impl Brent {
    fn new(first: u64) -> Brent {
        Brent {
            mark: first,
            power: 1,
            lam: 0,
        }
    }

    /// Feeds the next element; true if the sequence has come round to an earlier one.
    fn cycles(&mut self, x: u64) -> bool {
        if x == self.mark {
            return true;
        }
        self.lam += 1;
        if self.lam == self.power {
            self.mark = x;
            self.power *= 2;
            self.lam = 0;
        }
        false
    }
}

impl<'a, H: Hook> Op<'a, H> {
    /// Reads and checks the heap's header.
    #[inline]
    fn enter(
        heap: &'a RawHeap,
        st: &'a State,
        r: &'a Region,
        hook: &'a H,
        deadline: Option<Instant>,
    ) -> Result<Self, HeapError> {
        // Relaxed: under the lock (see `RawHeap`).
        if st.magic.load(Ordering::Relaxed) != MAGIC {
            return Err(HeapError::Uninitialised);
        }
        let (start, end) = (
            st.start.load(Ordering::Relaxed),
            st.end.load(Ordering::Relaxed),
        );
        if start % GRANULE != 0
            || end % GRANULE != 0
            || start == 0
            || end < start.saturating_add(MIN_BLOCK)
            || end - start > MAX_HEAP
            || end > r.len
        {
            return Err(corrupt("heap bounds out of range", start));
        }
        Ok(Op {
            heap,
            st,
            r,
            hook,
            deadline,
            start,
            end,
            fresh: st.fresh.load(Ordering::Relaxed),
        })
    }

    // --- word access -------------------------------------------------------------------

    #[inline]
    fn get(&self, off: u64) -> Result<u64, HeapError> {
        match self.r.word(off) {
            // Relaxed: under the lock (see `RawHeap`).
            Some(w) => Ok(w.load(Ordering::Relaxed)),
            None => Err(corrupt("offset outside the region", off)),
        }
    }

    /// Writes a word of the region, raising `fresh` first if the word lies above it.
    #[inline]
    fn put(&mut self, off: u64, v: u64) -> Result<(), HeapError> {
        let Some(w) = self.r.word(off) else {
            return Err(corrupt("offset outside the region", off));
        };
        if off + 8 > self.fresh {
            // A whole header and its links at once: one raise per new block.
            self.raise(off + MIN_BLOCK);
        }
        if self.hook.allow() {
            // Relaxed: under the lock (see `RawHeap`).
            w.store(v, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Writes a word of the heap's state (or its statistics).
    #[inline]
    fn sput(&self, w: &Word, v: u64) {
        if self.hook.allow() {
            // Relaxed: under the lock (see `RawHeap`); statistics are read without it as
            // a snapshot.
            w.store(v, Ordering::Relaxed);
        }
    }

    #[inline]
    fn sget(&self, w: &Word) -> u64 {
        // Relaxed: under the lock (see `RawHeap`).
        w.load(Ordering::Relaxed)
    }

    /// Adds `delta` (wrapping) to a statistic.
    #[inline]
    fn bump(&self, w: &Word, delta: u64) {
        self.sput(w, self.sget(w).wrapping_add(delta));
    }

    #[inline]
    fn raise(&mut self, to: u64) {
        if to > self.fresh {
            self.fresh = to;
            let st = self.st;
            self.sput(&st.fresh, to);
        }
    }

    fn set_intent(&self, v: u64) {
        let st = self.st;
        self.sput(&st.intent, v);
    }

    /// Records the caller's word an operation writes (before its intent, so a repair that
    /// sees the intent sees the word); a stale one is cleared, so a repair never touches
    /// a word the interrupted operation did not name.
    #[inline]
    fn set_link(&self, link: u64) {
        let st = self.st;
        if self.sget(&st.link) != link {
            self.sput(&st.link, link);
        }
    }

    fn expired(&self, steps: u64) -> bool {
        steps % DEADLINE_EVERY == 0 && crate::sync::time::expired(self.deadline)
    }

    // --- blocks ------------------------------------------------------------------------

    /// Size and state of the block at `b`, checked: a valid tag, inside the heap.
    #[inline]
    fn block(&self, b: u64) -> Result<(u64, u64), HeapError> {
        if b % GRANULE != 0 || b < self.start || b >= self.end {
            return Err(corrupt("block offset outside the heap", b));
        }
        let Some((size, state)) = unseal(b, self.get(b)?) else {
            return Err(corrupt("bad block tag", b));
        };
        if size < MIN_BLOCK || size > self.end - b {
            return Err(corrupt("block size out of range", b));
        }
        Ok((size, state))
    }

    #[inline]
    fn set_tag(&mut self, b: u64, size: u64, state: u64) -> Result<(), HeapError> {
        self.put(b, seal(b, size, state))
    }

    /// Records `v` as the previous-size word of the block at `next` (or of the end).
    #[inline]
    fn set_prev(&mut self, next: u64, v: u64) -> Result<(), HeapError> {
        if next == self.end {
            let st = self.st;
            self.sput(&st.end_prev, v);
            Ok(())
        } else {
            self.put(next + 8, v)
        }
    }

    // --- free lists --------------------------------------------------------------------

    /// A free-list link read from shared memory, checked: 0 or a block offset in the heap.
    #[inline]
    fn link(&self, x: u64) -> Result<u64, HeapError> {
        if x != 0 && (x % GRANULE != 0 || x < self.start || x > self.end.saturating_sub(MIN_BLOCK))
        {
            return Err(corrupt("free-list link outside the heap", x));
        }
        Ok(x)
    }

    #[inline]
    fn head(&self, fl: usize, sl: usize) -> Result<u64, HeapError> {
        self.link(self.sget(&self.st.heads[fl][sl]))
    }

    /// Reads and checks what unlinking the free block `b` of `size` bytes will write.
    #[inline]
    fn prep_unlink(&self, b: u64, size: u64) -> Result<Unlink, HeapError> {
        let (fl, sl) = class(size);
        let next = self.link(self.get(b + 16)?)?;
        let prev = self.link(self.get(b + 24)?)?;
        if next != 0 && self.get(next + 24)? != b {
            return Err(corrupt("free list: the next block does not point back", b));
        }
        if prev != 0 {
            if self.get(prev + 16)? != b {
                return Err(corrupt(
                    "free list: the previous block does not point on",
                    b,
                ));
            }
        } else if self.head(fl, sl)? != b {
            return Err(corrupt("free block not at the head of its list", b));
        }
        Ok(Unlink { fl, sl, next, prev })
    }

    #[inline]
    fn apply_unlink(&mut self, u: Unlink) -> Result<(), HeapError> {
        if u.next != 0 {
            self.put(u.next + 24, u.prev)?;
        }
        if u.prev != 0 {
            self.put(u.prev + 16, u.next)?;
        } else {
            let st = self.st;
            self.sput(&st.heads[u.fl][u.sl], u.next);
            if u.next == 0 {
                let m = self.sget(&st.sl_bitmap[u.fl]) & !(1 << u.sl);
                self.sput(&st.sl_bitmap[u.fl], m);
                if m & SL_MASK == 0 {
                    self.sput(&st.fl_bitmap, self.sget(&st.fl_bitmap) & !(1 << u.fl));
                }
            }
        }
        Ok(())
    }

    /// Moves the free block whose unlink `u` prepared to offset `nb` with `size` bytes:
    /// if it stays in the same list, `nb` takes its place there (nothing to write when
    /// the offset is the same); else it is unlinked and `nb` pushed on its new list.
    #[inline]
    fn relist(&mut self, u: Unlink, old: u64, nb: u64, size: u64) -> Result<(), HeapError> {
        if class(size) != (u.fl, u.sl) {
            self.apply_unlink(u)?;
            return self.insert(nb, size);
        }
        if nb != old {
            self.put(nb + 16, u.next)?;
            self.put(nb + 24, u.prev)?;
            if u.next != 0 {
                self.put(u.next + 24, nb)?;
            }
            if u.prev != 0 {
                self.put(u.prev + 16, nb)?;
            } else {
                let st = self.st;
                self.sput(&st.heads[u.fl][u.sl], nb);
            }
        }
        Ok(())
    }

    fn unlink(&mut self, b: u64, size: u64) -> Result<(), HeapError> {
        let u = self.prep_unlink(b, size)?;
        self.apply_unlink(u)
    }

    /// Pushes the free block `b` of `size` bytes on its list.
    #[inline]
    fn insert(&mut self, b: u64, size: u64) -> Result<(), HeapError> {
        let (fl, sl) = class(size);
        let h = self.head(fl, sl)?;
        if h != 0 && self.get(h + 24)? != 0 {
            return Err(corrupt("free list: the head has a predecessor", h));
        }
        self.put(b + 16, h)?;
        self.put(b + 24, 0)?;
        if h != 0 {
            self.put(h + 24, b)?;
        }
        let st = self.st;
        self.sput(&st.heads[fl][sl], b);
        let m = self.sget(&st.sl_bitmap[fl]);
        if m & (1 << sl) == 0 {
            self.sput(&st.sl_bitmap[fl], m | 1 << sl);
        }
        let f = self.sget(&st.fl_bitmap);
        if f & (1 << fl) == 0 {
            self.sput(&st.fl_bitmap, f | 1 << fl);
        }
        Ok(())
    }

    /// The first non-empty list at or after `(fl, sl)`.
    #[inline]
    fn first_list(&self, fl: usize, sl: usize) -> Option<(usize, usize)> {
        let m = self.sget(&self.st.sl_bitmap[fl]) & SL_MASK & (!0u64 << sl);
        if m != 0 {
            return Some((fl, m.trailing_zeros() as usize));
        }
        let mut f = self.sget(&self.st.fl_bitmap) & FL_MASK & (!0u64 << (fl + 1));
        while f != 0 {
            let fl = f.trailing_zeros() as usize;
            let m = self.sget(&self.st.sl_bitmap[fl]) & SL_MASK;
            if m != 0 {
                return Some((fl, m.trailing_zeros() as usize));
            }
            f &= f - 1;
        }
        None
    }

    /// Calls `f` on each block of list `(fl, sl)` until it returns `Some`; bounded (cycle
    /// detection, deadline).
    fn scan<T>(
        &self,
        fl: usize,
        sl: usize,
        steps: &mut u64,
        mut f: impl FnMut(u64, u64) -> Option<T>,
    ) -> Result<Option<T>, HeapError> {
        let mut x = self.head(fl, sl)?;
        let mut brent = Brent::new(x);
        while x != 0 {
            *steps += 1;
            if self.expired(*steps) {
                return Err(HeapError::TimedOut);
            }
            let (size, state) = self.block(x)?;
            if state != FREE || class(size) != (fl, sl) {
                return Err(corrupt("free list holds a block that does not belong", x));
            }
            if let Some(t) = f(x, size) {
                return Ok(Some(t));
            }
            x = self.link(self.get(x + 16)?)?;
            if brent.cycles(x) {
                return Err(corrupt("free list is cyclic", x));
            }
        }
        Ok(None)
    }

    /// A free block that holds `n` bytes at alignment `align`: `(offset, size)`.
    #[inline]
    fn find(&self, n: u64, align: u64) -> Result<Option<(u64, u64)>, HeapError> {
        let need = if align <= GRANULE {
            n
        } else {
            n + align + GRANULE
        };
        let up = class_up(need);
        if need >= SMALL {
            // The head of the request's own list, if it fits: a block of exactly the size
            // that was freed is reused instead of cutting a larger one (rounding up skips
            // this list).
            let (fl, sl) = class(need);
            if self.sget(&self.st.sl_bitmap[fl]) & (1 << sl) != 0 {
                let b = self.head(fl, sl)?;
                if b != 0 {
                    if let (size, FREE) = self.block(b)? {
                        if size >= need {
                            return Ok(Some((b, size)));
                        }
                    }
                }
            }
        }
        if let Some((fl, sl)) = up.and_then(|(fl, sl)| self.first_list(fl, sl)) {
            let b = self.head(fl, sl)?;
            if b == 0 {
                return Err(corrupt(
                    "bitmap marks an empty free list",
                    (fl * SL_COUNT + sl) as u64,
                ));
            }
            let (size, state) = self.block(b)?;
            if state != FREE || size < need {
                return Err(corrupt("free list holds a block that does not belong", b));
            }
            return Ok(Some((b, size)));
        }
        self.find_exact(n, align, up)
    }

    /// The slow path of `find`: scans the lists below the rounded-up one.
    #[cold]
    fn find_exact(
        &self,
        n: u64,
        align: u64,
        up: Option<(usize, usize)>,
    ) -> Result<Option<(u64, u64)>, HeapError> {
        let (mut fl, mut sl) = class(n.min(MAX_HEAP));
        let limit = up.map_or(FL_COUNT * SL_COUNT, |(f, s)| f * SL_COUNT + s);
        let mut steps = 0;
        while let Some((f, s)) = self.first_list(fl, sl) {
            if f * SL_COUNT + s >= limit {
                break;
            }
            let fit = self.scan(f, s, &mut steps, |b, size| {
                (gap(b, align) + n <= size).then_some((b, size))
            })?;
            if fit.is_some() {
                return Ok(fit);
            }
            (fl, sl) = if s + 1 < SL_COUNT {
                (f, s + 1)
            } else {
                (f + 1, 0)
            };
            if fl >= FL_COUNT {
                break;
            }
        }
        Ok(None)
    }

    /// The size of the largest free block (scans the highest non-empty list).
    #[cold]
    fn largest_free(&self) -> Result<u64, HeapError> {
        let f = self.sget(&self.st.fl_bitmap) & FL_MASK;
        let mut best = 0;
        if f != 0 {
            let fl = 63 - f.leading_zeros() as usize;
            let m = self.sget(&self.st.sl_bitmap[fl]) & SL_MASK;
            if m != 0 {
                let sl = 63 - m.leading_zeros() as usize;
                let mut steps = 0;
                self.scan(fl, sl, &mut steps, |_, size| {
                    best = best.max(size);
                    None::<()>
                })?;
            }
        }
        Ok(best)
    }

    // --- operations --------------------------------------------------------------------

    /// Allocates a block of `n` bytes (a block size) at payload alignment `align`; returns
    /// the payload offset and the end of the part that may hold old bytes.
    #[inline]
    /// With `link` non-zero, also stores the payload offset into that region word (see
    /// `RawHeap::alloc_into`).
    fn alloc(
        &mut self,
        requested: u64,
        n: u64,
        align: u64,
        link: u64,
    ) -> Result<(u64, u64), HeapError> {
        let Some((b, s)) = self.find(n, align)? else {
            return Err(HeapError::OutOfSpace {
                requested,
                available: self.largest_free()?.saturating_sub(HEADER),
            });
        };
        let g = gap(b, align);
        if g + n > s {
            return Err(corrupt("free block smaller than its list", b));
        }
        let a = b + g;
        let (n, t) = match s - g - n {
            t if t < MIN_BLOCK => (n + t, 0),
            t => (n, t),
        };
        let x = b + s;
        let ul = self.prep_unlink(b, s)?;
        let f0 = self.fresh;

        // Writes. Before the commit the chain reads F = [b, b + s) as before.
        self.set_link(link);
        self.set_intent(a | ALLOC);
        self.raise(if t > 0 { a + n + MIN_BLOCK } else { a + n });
        if t > 0 {
            self.set_tag(a + n, t, FREE)?;
            self.put(a + n + 8, 0)?;
        }
        self.set_prev(x, t)?;
        if g > 0 {
            self.set_tag(a, n, USED)?;
            self.put(a + 8, g)?;
            // Commit: F becomes the gap; the chain now reads gap, A, remainder.
            self.set_tag(b, g, FREE)?;
        } else {
            // Commit: F becomes A (its previous-size word stays 0).
            self.set_tag(b, n, USED)?;
        }
        // The lists: the gap keeps F's place if it stays in F's list, or else the
        // remainder takes it.
        match (g > 0, t > 0) {
            (true, _) => {
                self.relist(ul, b, b, g)?;
                if t > 0 {
                    self.insert(a + n, t)?;
                }
            }
            (false, true) => self.relist(ul, b, a + n, t)?,
            (false, false) => self.apply_unlink(ul)?,
        }
        let heap = self.heap;
        self.bump(&heap.used, n);
        self.bump(&heap.blocks, 1);
        self.bump(
            &heap.free_blocks,
            (u64::from(g > 0) + u64::from(t > 0)).wrapping_sub(1),
        );
        if link != 0 {
            self.put(link, a + HEADER)?;
        }
        self.set_intent(0);
        Ok((a + HEADER, (a + n).min(f0.max(a + HEADER))))
    }

    /// Frees the block at payload offset `p`, which must be in state `want` (USED, or
    /// CACHED for a cache's own blocks). With `link` non-zero, also sets that region word
    /// (which holds `p`) to 0 (see `RawHeap::free_from`).
    fn free(&mut self, p: u64, want: u64, link: u64) -> Result<(), HeapError> {
        if p % GRANULE != 0 || p < self.start + HEADER || p >= self.end {
            return Err(HeapError::NotAllocated { offset: p });
        }
        let a = p - HEADER;
        let n = match unseal(a, self.get(a)?) {
            Some((n, s)) if s == want => n,
            Some((_, FREE | CACHED)) => return Err(HeapError::DoubleFree { offset: p }),
            _ => return Err(HeapError::NotAllocated { offset: p }),
        };
        if n < MIN_BLOCK || n > self.end - a {
            return Err(corrupt("block size out of range", a));
        }
        // The neighbours it merges with, checked before anything is written.
        let ps = self.get(a + 8)?;
        let pu = if ps != 0 {
            if ps % GRANULE != 0 || ps > a - self.start {
                return Err(corrupt("previous-size word out of range", a));
            }
            if self.block(a - ps)? != (ps, FREE) {
                return Err(corrupt("previous-size word names no free block", a));
            }
            Some(self.prep_unlink(a - ps, ps)?)
        } else {
            None
        };
        let lo = a - ps;
        let x = a + n;
        let (nn, nu) = if x < self.end {
            match self.block(x)? {
                (nn, FREE) => (nn, Some(self.prep_unlink(x, nn)?)),
                _ => (0, None),
            }
        } else {
            (0, None)
        };

        // Writes. The commit (A's tag) comes first: adjacent free blocks are a valid chain.
        self.set_link(link);
        self.set_intent(a | FREEING);
        self.set_tag(a, n, FREE)?;
        let m = ps + n + nn;
        if m != n {
            self.set_tag(lo, m, FREE)?;
        }
        self.set_prev(lo + m, m)?;
        // The lists: the merged block keeps the previous block's place, or takes the next
        // one's, when it stays in that list.
        match (pu, nu) {
            (Some(pu), None) => self.relist(pu, lo, lo, m)?,
            (Some(pu), Some(_)) => {
                self.relist(pu, lo, lo, m)?;
                // That may have moved the next block's neighbours: prepare again.
                self.unlink(x, nn)?;
            }
            (None, Some(nu)) => self.relist(nu, x, a, m)?,
            (None, None) => self.insert(a, m)?,
        }
        let heap = self.heap;
        self.bump(&heap.used, n.wrapping_neg());
        self.bump(&heap.blocks, 1u64.wrapping_neg());
        self.bump(
            &heap.free_blocks,
            1u64.wrapping_sub(u64::from(ps != 0) + u64::from(nn != 0)),
        );
        if link != 0 {
            self.put(link, 0)?;
        }
        self.set_intent(0);
        Ok(())
    }

    fn grow(&mut self, new_end: u64) -> Result<(), HeapError> {
        let old = self.end;
        if new_end == old {
            return Ok(());
        }
        if new_end % GRANULE != 0
            || new_end < old.saturating_add(MIN_BLOCK)
            || new_end - self.start > MAX_HEAP
            || new_end > self.r.len
        {
            return Err(HeapError::InvalidArgument(
                "grow: new end below end + MIN_BLOCK, unaligned, past the region or MAX_HEAP",
            ));
        }
        let lf = self.sget(&self.st.end_prev);
        if lf != 0 {
            if lf % GRANULE != 0 || lf > old - self.start || self.block(old - lf)? != (lf, FREE) {
                return Err(corrupt("end's previous-size word names no free block", lf));
            }
            self.prep_unlink(old - lf, lf)?;
        }
        let d = new_end - old;
        let st = self.st;

        self.set_intent(old | GROW);
        let (b, size) = if lf != 0 {
            // Stretch the free last block past the end (the repair cuts it back if the
            // commit below does not happen).
            let l = old - lf;
            self.unlink(l, lf)?;
            self.set_tag(l, lf + d, FREE)?;
            (l, lf + d)
        } else {
            // A free block beyond the end: outside the chain until the commit.
            self.set_tag(old, d, FREE)?;
            self.put(old + 8, 0)?;
            (old, d)
        };
        // Commit.
        self.sput(&st.end, new_end);
        self.end = new_end;
        self.sput(&st.end_prev, size);
        self.insert(b, size)?;
        let heap = self.heap;
        self.bump(&heap.size, d);
        self.bump(&heap.free_blocks, u64::from(lf == 0));
        self.set_intent(0);
        Ok(())
    }

    /// The repair walk (module docs, *Crash consistency*). With `forced` false and no
    /// intent recorded, only counts the recovery: the heap is consistent.
    fn repair(&mut self, owner_died: bool) -> Result<Recovery, HeapError> {
        self.walk_repair(owner_died, &mut |_| false)
    }

    /// The repair walk; also frees every cached block whose owner `dead` says is dead.
    fn walk_repair(
        &mut self,
        owner_died: bool,
        dead: &mut dyn FnMut(u64) -> bool,
    ) -> Result<Recovery, HeapError> {
        let st = self.st;
        let heap = self.heap;
        let intent = self.sget(&st.intent);
        let (kind, target) = (intent & KIND_MASK, intent & !KIND_MASK);
        let interrupted = match kind {
            _ if intent == 0 => None,
            ALLOC => Some(Interrupted::Alloc(target)),
            FREEING => Some(Interrupted::Free(target)),
            GROW => Some(Interrupted::Grow(target)),
            REPAIR if target == 0 => Some(Interrupted::Repair),
            _ => Some(Interrupted::Unknown(intent)),
        };
        self.bump(&heap.recoveries, 1);
        if intent == 0 {
            // Resume the walk if this repair is cut short.
            self.set_intent(REPAIR);
        }
        // The block an interrupted alloc or free names is to be freed if allocated.
        let target = match kind {
            ALLOC | FREEING if intent != 0 => target,
            _ => u64::MAX,
        };
        // And the caller's word it names, if any, no longer holds it: an interrupted
        // `alloc_into` is rolled back, an interrupted `free_from` completed.
        let link = self.sget(&st.link);
        if link != 0 {
            if target != u64::MAX
                && self.r.word(link).is_some()
                && self.get(link)? == target + HEADER
            {
                self.put(link, 0)?;
            }
            self.sput(&st.link, 0);
        }

        // Empty every list; the walk refills them.
        if self.sget(&st.fl_bitmap) != 0 {
            self.sput(&st.fl_bitmap, 0);
        }
        for (bits, heads) in st.sl_bitmap.iter().zip(&st.heads) {
            if self.sget(bits) != 0 {
                self.sput(bits, 0);
            }
            for h in heads {
                if self.sget(h) != 0 {
                    self.sput(h, 0);
                }
            }
        }

        let (start, end) = (self.start, self.end);
        let mut released = None;
        let mut merged = 0;
        let mut reclaimed = 0;
        let mut s = HeapStats {
            size: end - start,
            ..HeapStats::default()
        };
        // The free run being built: (offset, size).
        let mut run: Option<(u64, u64)> = None;
        let mut b = start;
        let mut steps = 0;
        while b < end {
            steps += 1;
            if self.expired(steps) {
                return Err(HeapError::TimedOut);
            }
            let Some((mut size, mut state)) = unseal(b, self.get(b)?) else {
                return Err(corrupt("bad block tag", b));
            };
            if size < MIN_BLOCK {
                return Err(corrupt("block size out of range", b));
            }
            if size > end - b {
                // A growth that stretched the last free block and did not commit.
                if state == FREE && kind == GROW && end - b >= MIN_BLOCK {
                    size = end - b;
                    self.set_tag(b, size, FREE)?;
                } else {
                    return Err(corrupt("block size out of range", b));
                }
            }
            if b == target && state != FREE {
                self.set_tag(b, size, FREE)?;
                state = FREE;
                released = Some((b + HEADER, size));
            } else if state == CACHED && dead(self.get(b + HEADER)?) {
                self.set_tag(b, size, FREE)?;
                state = FREE;
                reclaimed += 1;
            } else if state == FREE && target > b && target < b + size {
                // A header the interrupted operation left inside a free block.
                if self.get(target)? != 0 {
                    self.put(target, 0)?;
                }
            }
            if state == FREE {
                run = match run {
                    Some((r, rs)) => {
                        self.set_tag(r, rs + size, FREE)?;
                        merged += 1;
                        Some((r, rs + size))
                    }
                    None => {
                        if self.get(b + 8)? != 0 {
                            self.put(b + 8, 0)?;
                        }
                        Some((b, size))
                    }
                };
            } else {
                let ps = run.map_or(0, |(_, rs)| rs);
                if let Some((r, rs)) = run.take() {
                    self.insert(r, rs)?;
                    s.free_blocks += 1;
                    s.free_bytes += rs;
                    s.largest_free = s.largest_free.max(rs);
                }
                if self.get(b + 8)? != ps {
                    self.put(b + 8, ps)?;
                }
                s.allocated_blocks += 1;
                s.used_bytes += size;
            }
            b += size;
        }
        let ps = run.map_or(0, |(_, rs)| rs);
        if let Some((r, rs)) = run {
            self.insert(r, rs)?;
            s.free_blocks += 1;
            s.free_bytes += rs;
            s.largest_free = s.largest_free.max(rs);
        }
        self.sput(&st.end_prev, ps);
        for (w, v) in [
            (&heap.size, s.size),
            (&heap.used, s.used_bytes),
            (&heap.blocks, s.allocated_blocks),
            (&heap.free_blocks, s.free_blocks),
        ] {
            self.sput(w, v);
        }
        s.recoveries = self.sget(&heap.recoveries);
        self.set_intent(0);
        Ok(Recovery {
            owner_died,
            interrupted,
            released,
            merged,
            reclaimed,
            stats: s,
        })
    }

    /// The full validation walk (see [`RawHeap::check`]). Writes nothing.
    fn used_blocks(&self) -> Result<Vec<(u64, u64)>, HeapError> {
        let mut out = Vec::new();
        let mut b = self.start;
        let mut steps = 0;
        while b < self.end {
            steps += 1;
            if self.expired(steps) {
                return Err(HeapError::TimedOut);
            }
            let (size, state) = self.block(b)?;
            if state == USED {
                out.push((b + HEADER, size - HEADER));
            }
            b += size;
        }
        Ok(out)
    }

    fn check(&self) -> Result<HeapStats, HeapError> {
        let st = self.st;
        let heap = self.heap;
        if self.sget(&st.intent) != 0 {
            return Err(corrupt(
                "an operation's intent is still recorded",
                self.sget(&st.intent),
            ));
        }
        let (start, end) = (self.start, self.end);
        let mut s = HeapStats {
            size: end - start,
            ..HeapStats::default()
        };
        let mut frees: Vec<u64> = Vec::new();
        let mut prev_free = 0;
        let mut b = start;
        let mut steps = 0;
        while b < end {
            steps += 1;
            if self.expired(steps) {
                return Err(HeapError::TimedOut);
            }
            let (size, state) = self.block(b)?;
            if self.get(b + 8)? != prev_free {
                return Err(corrupt("previous-size word disagrees with the chain", b));
            }
            if state == FREE {
                if prev_free != 0 {
                    return Err(corrupt("two adjacent free blocks", b));
                }
                // Tag and previous size (and the links, if set) lie below the zero mark.
                let links = self.get(b + 16)? | self.get(b + 24)?;
                let written = if links != 0 { MIN_BLOCK } else { 8 };
                if b + written > self.fresh {
                    return Err(corrupt("free block header above the zero mark", b));
                }
                frees.push(b);
                s.free_blocks += 1;
                s.free_bytes += size;
                s.largest_free = s.largest_free.max(size);
                prev_free = size;
            } else {
                if b + size > self.fresh {
                    return Err(corrupt("allocated block above the zero mark", b));
                }
                s.allocated_blocks += 1;
                s.used_bytes += size;
                prev_free = 0;
            }
            b += size;
        }
        if self.sget(&st.end_prev) != prev_free {
            return Err(corrupt(
                "end's previous-size word disagrees with the chain",
                end,
            ));
        }

        // Every free block in its own list exactly once; bitmaps agree with the lists.
        let fl_bits = self.sget(&st.fl_bitmap);
        if fl_bits & !FL_MASK != 0 {
            return Err(corrupt(
                "first-level bitmap has bits past the last level",
                fl_bits,
            ));
        }
        let mut listed = 0u64;
        for fl in 0..FL_COUNT {
            let bits = self.sget(&st.sl_bitmap[fl]);
            if bits & !SL_MASK != 0 || (bits != 0) != (fl_bits & (1 << fl) != 0) {
                return Err(corrupt("bitmaps disagree", fl as u64));
            }
            for sl in 0..SL_COUNT {
                let mut x = self.head(fl, sl)?;
                if (x != 0) != (bits & (1 << sl) != 0) {
                    return Err(corrupt(
                        "bitmap disagrees with its list",
                        (fl * SL_COUNT + sl) as u64,
                    ));
                }
                let mut back = 0;
                while x != 0 {
                    listed += 1;
                    steps += 1;
                    if listed > s.free_blocks {
                        return Err(corrupt("free lists hold more blocks than the heap", x));
                    }
                    if self.expired(steps) {
                        return Err(HeapError::TimedOut);
                    }
                    if frees.binary_search(&x).is_err() {
                        return Err(corrupt("free list holds a block that is not free", x));
                    }
                    let (size, _) = self.block(x)?;
                    if class(size) != (fl, sl) {
                        return Err(corrupt("free block in the wrong list", x));
                    }
                    if self.get(x + 24)? != back {
                        return Err(corrupt("free list's back link is wrong", x));
                    }
                    back = x;
                    x = self.link(self.get(x + 16)?)?;
                }
            }
        }
        if listed != s.free_blocks {
            return Err(corrupt("a free block is in no list", listed));
        }
        let stats = heap.stats();
        if (
            stats.size,
            stats.used_bytes,
            stats.allocated_blocks,
            stats.free_blocks,
        ) != (s.size, s.used_bytes, s.allocated_blocks, s.free_blocks)
        {
            return Err(corrupt(
                "statistics disagree with the heap",
                stats.used_bytes,
            ));
        }
        s.recoveries = stats.recoveries;
        Ok(s)
    }
}
