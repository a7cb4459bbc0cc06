//! The list behind [`SharedList`](crate::shared::SharedList),
//! [`ByteList`](crate::shared::ByteList) and `SerdeList`: a growable array of elements in
//! blocks the list owns ([`raw::owned`](super::owned)), one writer at a time under a
//! robust lock, readers lock-free under a sequence lock, and a journal that lets the next
//! writer finish or undo the work of a writer that was killed.
//!
//! # Example
//! ```
//! use shmproc::raw::list::{ListCore, ListGeometry, RawList};
//! use shmproc::raw::owned::HeapBlocks;
//! use shmproc::raw::sync::liveness::Procfs;
//!
//! // A handle's blocks come from its arena; here from a private heap, with the list's
//! // state in the first 4 KiB of its buffer.
//! let blocks = HeapBlocks::new(1 << 16);
//! let raw: &RawList = blocks.state(128);
//! raw.init(ListGeometry::bytes(24)?);
//! let list = ListCore::new(raw, &blocks, Procfs)?;
//! list.push(b"short")?; // in its slot
//! list.push(&[7; 100])?; // in a block of its own
//! list.insert(0, b"first")?;
//! let mut out = Vec::new();
//! list.get(-1, &mut out)?;
//! assert_eq!(out, [7; 100]);
//! assert_eq!(list.slice(&(..2))?, [b"first".to_vec(), b"short".to_vec()]);
//! raw.finalize(&blocks); // frees every block the list owns
//! assert_eq!(blocks.allocated(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Where the elements live
//!
//! The list's state ([`RawList`]) holds a directory of [`MAX_CHUNKS`] words, each the
//! offset of a **chunk** (a heap block) or 0. Chunk `k` holds `2^(first_shift + k)` slots,
//! so each chunk is twice the one before, and the list's capacity doubles as it grows
//! without ever moving an element (no copy on growth, unlike a `Vec`); element `i` is in
//! chunk `k = log2((i >> first_shift) + 1)` at slot `i - ((2^k - 1) << first_shift)`: a
//! leading-zero count and a subtraction. Chunks are allocated in order, so the directory
//! is a prefix of non-zero words.
//!
//! A slot is `slot_words` words ([`ListGeometry`]). Two kinds of list:
//!
//! | kind   | slot                                                                  |
//! |--------|-----------------------------------------------------------------------|
//! | fixed  | the element's bytes (a plain-data `T`), little-endian words, zero-padded |
//! | bytes  | word 0 `meta`: the length (bits 0-47) and bit 63 `OUT`; then either the bytes inline (up to `elem` bytes), or, with `OUT`, the offset of a block of their own in word 1 |
//!
//! So a byte element of any size costs one heap block beyond the inline limit (24 bytes
//! for a `ByteList`), and nothing else; a plain-data element is never boxed.
//!
//! # Concurrency: writers lock, readers do not
//!
//! Writers take the list's robust [`RawLock`]. Readers (`get`, `slice`, `index`, `len`)
//! take no lock: every change a reader could see is made between two stores of `seq`, odd
//! while the change is made, and a reader keeps what it read only if `seq` was even and
//! unchanged around its read: the protocol of [`raw::dict`](super::dict) (Boehm 2012),
//! with the same table:
//!
//! | step | writer (lock held)            | reader                                        |
//! |------|-------------------------------|-----------------------------------------------|
//! | 1    | `seq.store(s + 1, Relaxed)`   | `s1 = seq.load(Acquire)`; odd: retry          |
//! | 2    | `fence(Release)`              | loads of `len`, directory, slots, blocks: `Relaxed` |
//! | 3    | stores: `Relaxed`             | `fence(Acquire)`                              |
//! | 4    | `seq.store(s + 2, Release)`   | `s2 = seq.load(Relaxed)`; keep if `s1 == s2`  |
//!
//! A reader that keeps failing (a long write, a writer preempted or killed) falls back to
//! the lock after its spin budget, so no reader spins for ever.
//!
//! Why not let readers take the lock too: measured in `benches/list.rs` (interleaved
//! with its baseline, two runs on 2 busy vCPUs), a lock-free `get` of a `u64` costs
//! 0.38-0.39x a `get` that takes the lock (6.2 against 15.9 ns in one thread), and
//! 0.30-0.37x beside a thread that appends all the while (25-31 against 83-85 ns): readers
//! write no shared line, so they do not slow each other or the writer. (Against a
//! `Mutex<Vec<u64>>` indexed under its lock: 0.61-0.63x alone, 0.42-0.45x beside the
//! appender.) Readers that take the lock would be simpler in one respect only: a
//! lock-free reader may read a block that a writer has just freed. That is harmless here:
//! the arena never unmaps memory, every offset is bounds-checked ([`Blocks::words`]),
//! every length is checked against its block before it sizes a copy, nothing read is
//! trusted until the sequence check passes, and a writer frees a block only after the
//! `seq` store that invalidates every read that could have started before (every writer
//! store to the list's blocks, including the heap's own when it frees one, comes after the
//! writer's Release fence of step 2). A reader that copies a large element checks `seq`
//! before it allocates for the copy, so a torn length never sizes an allocation.
//!
//! # A writer that dies
//!
//! Every change is made so that a process killed at any instruction leaves the list
//! consistent, or consistent after the repair that the next lock holder runs when the lock
//! says [`Acquired::OwnerDied`] (the finalizer runs it too):
//!
//! * **Blocks** follow [`raw::owned`](super::owned): a chunk is allocated straight into its
//!   directory word; an element's own block is named by the [`InFlight`] `adding` word
//!   until a slot below `len` names it, and by `dropping` from before it is unlinked until
//!   it is freed. The repair settles them: what no slot below `len` names is freed.
//! * **Append** writes the slot past the end, then publishes it with one store of `len`.
//!   **Pop** copies the last element, names its block as dropping, stores `len - 1`,
//!   then frees the block.
//! * **Insert, remove, set** move slots, which takes many stores; they are journaled in
//!   two words (`journal`: the operation and its progress in one word, so that a step and
//!   its record are one store; `jlen`: a length):
//!
//! | journal        | what the writer does                                    | repair                                   |
//! |----------------|---------------------------------------------------------|------------------------------------------|
//! | `INSERT(k)`, `jlen = L` | shifts slots `i..L` up by one, from the top; `k` is the lowest slot written so far; then writes the new element at `i` and stores `len = L + 1` | undo, unless `len` is already `L + 1`: the slots hold the old list with slot `k - 1` doubled (or torn), so the undo is `REMOVE(k - 1)` with `jlen = L` |
//! | `REMOVE(p)`, `jlen = N` | shifts slots down by one from `i`; `p` is the next slot to write; then stores `len = N` | finish: shift from `p` to `N`, store `len = N` (each step is idempotent: slot `p + 1` is untouched until step `p` is done) |
//! | `SET(i)`       | the new element was written past the end (slot `len`), is now copied into slot `i` | finish: copy slot `len` into slot `i` again |
//! | `CLEAR`, `jlen = n` | stored `len = 0`; frees the blocks of the elements that were in slots `0..n`, each through its slot word | finish: free what is left (freeing clears the word, so nothing is freed twice) |
//!
//! So a killed writer never leaves a torn element, a doubled one, or a lost one: its
//! operation happened entirely or not at all (`extend` appends element by element: a
//! prefix of what it appends), and nothing it allocated leaks.
//!
//! # Hostile bytes
//!
//! A peer may scribble on the state and the blocks. Every offset goes through
//! [`Blocks::words`] (bounds-checked against the arena), every length is checked against
//! the geometry or the block's real size, every loop is bounded by the list's real
//! capacity, and the geometry is validated on open: the worst outcome is an error value
//! ([`ListError::Corrupt`]) or a wrong element, never an access outside the arena, a panic,
//! or a hang.

use crate::error::Error;
use crate::raw::lock::{Acquired, RawLock, RobustLock};
use crate::raw::owned::{Blocks, InFlight};
use crate::sync::liveness::Liveness;
use crate::sync::spin::{Round, SpinPolicy};
use crate::sync::{fence, AtomicU64, Ordering};
use bytemuck::Pod;
use std::fmt;
use std::ops::{Bound, RangeBounds};

/// Chunks in the directory: enough for 2^40 slots, more than any arena holds.
pub const MAX_CHUNKS: usize = 40;
/// The largest element of a list of byte strings: the heap's largest block.
pub const MAX_ELEMENT: u64 = 1 << 40;
/// The largest plain-data element (a `T` of a [`SharedList`](crate::shared::SharedList)).
pub const MAX_FIXED: u32 = 1 << 30;
/// The most bytes a byte list may keep inline in a slot.
pub const MAX_INLINE: u32 = 4096;
/// The first chunk's bytes (at least one slot): small lists stay small.
const FIRST_CHUNK_BYTES: u64 = 256;
/// Chunks are aligned to this.
const CHUNK_ALIGN: u64 = 16;

/// Bits of a byte element's meta word: its length ...
const LEN_MASK: u64 = (1 << 48) - 1;
/// ... and whether its bytes are in a block of their own (word 1 is its offset).
const OUT: u64 = 1 << 63;

/// The journal's operations (bits 56-63 of `journal`; bits 0-55 are the progress).
const J_NONE: u64 = 0;
const J_INSERT: u64 = 1;
const J_REMOVE: u64 = 2;
const J_SET: u64 = 3;
const J_CLEAR: u64 = 4;
const J_SHIFT: u32 = 56;
const J_ARG: u64 = (1 << J_SHIFT) - 1;

#[inline]
fn journal(op: u64, arg: u64) -> u64 {
    op << J_SHIFT | (arg & J_ARG)
}

/// The shape of a list's elements and slots, fixed at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListGeometry {
    /// Fixed lists: the bytes of every element. Byte lists: the most bytes kept inline.
    pub elem: u32,
    /// Elements are byte strings of any length (else each is exactly `elem` bytes).
    pub bytes: bool,
    /// log2 of the first chunk's slots.
    pub first_shift: u8,
}

impl ListGeometry {
    /// A list of plain-data elements of `size` bytes each.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `size` is above [`MAX_FIXED`].
    pub fn fixed(size: usize) -> crate::Result<ListGeometry> {
        if size > MAX_FIXED as usize {
            return Err(Error::InvalidArgument(format!(
                "an element of {size} bytes is above the {MAX_FIXED} bytes a list of plain \
                 data holds in place: use a ByteList (elements of any size, each in a block \
                 of its own)"
            )));
        }
        Ok(Self::with(size as u32, false))
    }

    /// A list of byte strings of any length, keeping up to `inline` bytes in the slot
    /// (rounded up to whole words, at least 8).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `inline` is above [`MAX_INLINE`].
    pub fn bytes(inline: usize) -> crate::Result<ListGeometry> {
        if inline > MAX_INLINE as usize {
            return Err(Error::InvalidArgument(format!(
                "{inline} inline bytes is above the limit of {MAX_INLINE}: longer elements \
                 go to blocks of their own anyway"
            )));
        }
        Ok(Self::with((inline.max(8) as u32).next_multiple_of(8), true))
    }

    fn with(elem: u32, bytes: bool) -> ListGeometry {
        let mut g = ListGeometry {
            elem,
            bytes,
            first_shift: 0,
        };
        g.first_shift = g.natural_shift();
        g
    }

    /// The first chunk's log2 slots for this slot size: about [`FIRST_CHUNK_BYTES`].
    fn natural_shift(&self) -> u8 {
        let per = (FIRST_CHUNK_BYTES / self.slot_bytes()).max(1);
        (63 - per.leading_zeros()) as u8
    }

    /// Words per slot.
    pub fn slot_words(&self) -> u64 {
        let data = u64::from(self.elem).div_ceil(8).max(1);
        data + u64::from(self.bytes)
    }

    fn slot_bytes(&self) -> u64 {
        self.slot_words() * 8
    }

    /// The geometry as one word (the directory's parameter, and the state's copy).
    pub fn to_word(&self) -> u64 {
        u64::from(self.elem) | u64::from(self.bytes) << 32 | u64::from(self.first_shift) << 40
    }

    /// The geometry a (peer-written) word describes, if it is one that
    /// [`fixed`](Self::fixed) or [`bytes`](Self::bytes) makes.
    ///
    /// # Errors
    /// [`Error::Corrupt`] otherwise.
    pub fn from_word(w: u64) -> crate::Result<ListGeometry> {
        let g = ListGeometry {
            elem: w as u32,
            bytes: (w >> 32) & 0xff == 1,
            first_shift: (w >> 40) as u8,
        };
        let ok = w >> 48 == 0
            && (w >> 32) & 0xff <= 1
            && if g.bytes {
                g.elem >= 8 && g.elem <= MAX_INLINE && g.elem % 8 == 0
            } else {
                g.elem <= MAX_FIXED
            }
            && g.first_shift == g.natural_shift();
        if ok {
            Ok(g)
        } else {
            Err(Error::Corrupt(format!(
                "list geometry word {w:#x} is not one that a list is made with"
            )))
        }
    }

    /// Slots of chunk `k`.
    #[inline]
    fn chunk_slots(&self, k: usize) -> u64 {
        1 << (u32::from(self.first_shift) + k as u32)
    }

    /// Index of the first slot of chunk `k`.
    #[inline]
    fn chunk_start(&self, k: usize) -> u64 {
        ((1u64 << k) - 1) << self.first_shift
    }

    /// The chunk and slot of element `i`, if the directory can hold it.
    #[inline]
    fn locate(&self, i: u64) -> Option<(usize, u64)> {
        let q = (i >> self.first_shift).checked_add(1)?;
        let k = (63 - q.leading_zeros()) as usize;
        (k < MAX_CHUNKS).then(|| (k, i - self.chunk_start(k)))
    }

    /// The most elements a list of this geometry can index.
    pub fn max_len(&self) -> u64 {
        self.chunk_start(MAX_CHUNKS)
    }
}

/// The list's shared state. Chunks and element blocks live in blocks it owns.
///
/// | offset | field      | meaning                                                      |
/// |--------|------------|--------------------------------------------------------------|
/// | 0      | `lock`     | [`RawLock`]: serialises writers; robust                      |
/// | 16     | `seq`      | the sequence word: odd while a writer changes what readers see |
/// | 24     | `len`      | elements                                                     |
/// | 32     | `journal`  | the journaled operation in progress and its progress (module docs) |
/// | 40     | `jlen`     | its length                                                   |
/// | 48     | `flight`   | [`InFlight`]: an element block being added or dropped        |
/// | 64     | `geometry` | [`ListGeometry::to_word`], written once before publication  |
/// | 72     | `repairs`  | how many times a writer repaired after a dead one (a statistic) |
/// | 80     | `chunks`   | [`MAX_CHUNKS`] chunk offsets, a prefix of non-zero words     |
#[repr(C)]
pub struct RawList {
    lock: RawLock,
    seq: AtomicU64,
    len: AtomicU64,
    journal: AtomicU64,
    jlen: AtomicU64,
    flight: InFlight,
    geometry: AtomicU64,
    repairs: AtomicU64,
    chunks: [AtomicU64; MAX_CHUNKS],
}

// SAFETY: `#[repr(C)]`, aligned to 8; atomics only (the lock and `InFlight` are atomics
// too); any bytes are a value: the geometry is validated before use, and every offset and
// length read from it is checked (module docs, "Hostile bytes").
unsafe impl crate::raw::SharedState for RawList {}

#[cfg(not(shmproc_loom))]
mod layout_checks {
    use super::*;
    use core::mem::{offset_of, size_of};
    static_assertions::const_assert_eq!(offset_of!(RawList, seq), 16);
    static_assertions::const_assert_eq!(offset_of!(RawList, flight), 48);
    static_assertions::const_assert_eq!(offset_of!(RawList, geometry), 64);
    static_assertions::const_assert_eq!(offset_of!(RawList, chunks), 80);
    static_assertions::const_assert_eq!(size_of::<RawList>(), 80 + 8 * MAX_CHUNKS);
}

impl RawList {
    /// An empty list of geometry `g` (zeroed memory with the geometry word stored is the
    /// same: what the handles write).
    pub fn new(g: ListGeometry) -> RawList {
        RawList {
            lock: RawLock::new(),
            seq: AtomicU64::new(0),
            len: AtomicU64::new(0),
            journal: AtomicU64::new(0),
            jlen: AtomicU64::new(0),
            flight: InFlight::default(),
            geometry: AtomicU64::new(g.to_word()),
            repairs: AtomicU64::new(0),
            chunks: core::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Makes zeroed memory (a state in shared memory no other process sees yet) an empty
    /// list of geometry `g`: what [`new`](Self::new) gives, in place.
    pub fn init(&self, g: ListGeometry) {
        // Relaxed: before the list is shared; publishing it orders this store.
        self.geometry.store(g.to_word(), Ordering::Relaxed);
    }

    /// The geometry word (not yet validated).
    pub fn geometry_word(&self) -> u64 {
        // Relaxed: written once before the list was published; the directory's
        // Release/Acquire on the entry (or the model's thread spawn) orders it.
        self.geometry.load(Ordering::Relaxed)
    }

    /// Elements (a snapshot).
    pub fn len(&self) -> u64 {
        // Relaxed: a snapshot; one store changes it.
        self.len.load(Ordering::Relaxed)
    }

    /// True when the list holds no element (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many times a process found the list's lock held by a dead writer and repaired
    /// the list (a statistic).
    pub fn repairs(&self) -> u64 {
        // Relaxed: a statistic.
        self.repairs.load(Ordering::Relaxed)
    }

    /// The pid of the writer holding the lock, if any (a snapshot, for inspection).
    pub fn holder(&self) -> Option<u32> {
        self.lock.holder()
    }

    /// Chunks allocated (a snapshot, for inspection).
    pub fn chunk_count(&self) -> usize {
        // Relaxed: a snapshot.
        self.chunks
            .iter()
            .filter(|c| c.load(Ordering::Relaxed) != 0)
            .count()
    }

    /// The finalizer: frees every block the list owns, without its lock (its last
    /// reference is gone, so no live process uses it). Finishes a journaled operation of a
    /// writer that died first, so that no block is named twice. Idempotent: each block is
    /// freed through the word that names it, which is cleared in the same heap operation,
    /// so a rerun (after the finalizing process died inside it) frees only what is left.
    pub fn finalize(&self, blocks: &impl Blocks) {
        let g = ListGeometry::from_word(self.geometry_word());
        if let Ok(g) = g {
            let core = ListCore::with_geometry(
                self,
                blocks,
                g,
                crate::sync::liveness::Procfs,
                SpinPolicy::NEVER,
            );
            core.finish_journal();
            core.settle();
            if g.bytes {
                let mut cur = Cursor::default();
                for i in 0..core.bounded_len() {
                    match core.slot_in(&mut cur, i) {
                        // Relaxed: no other process holds the list any more.
                        Ok(s) if s[0].load(Ordering::Relaxed) & OUT != 0 => {
                            let _ = blocks.free_from(&s[1]);
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            }
        }
        // Whatever the geometry says: the chunks are in the directory.
        for c in self.chunks.iter().rev() {
            let _ = blocks.free_from(c);
        }
    }
}

/// Why an operation on a list failed. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ListError {
    /// The index is not that of an element: `index` (as given: negative counts from the
    /// end) in a list of `len` elements.
    IndexOutOfRange {
        /// The index given.
        index: i64,
        /// The list's length.
        len: u64,
    },
    /// `pop` from an empty list.
    Empty,
    /// `remove` / `index` of a value the list does not hold.
    NotFound,
    /// An element of `len` bytes where the list holds elements of `expected` bytes (a raw
    /// list used with the wrong type), or above [`MAX_ELEMENT`].
    WrongSize {
        /// The element's size.
        len: u64,
        /// The size the list takes.
        expected: u64,
    },
    /// The arena has no room for the element or the list's next chunk.
    OutOfSpace {
        /// Bytes requested.
        requested: u64,
        /// Bytes still free.
        available: u64,
    },
    /// An element could not be encoded or decoded (serde lists).
    Codec(String),
    /// The list's memory does not hold together (a peer wrote into it): what is damaged.
    Corrupt(String),
    /// Test hook: the operation stopped where a killed process would have.
    #[cfg(any(test, fuzzing, shmproc_loom))]
    #[doc(hidden)]
    Crashed,
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListError::IndexOutOfRange { index, len } => write!(
                f,
                "list index {index} out of range for a list of {len} elements (negative \
                 indices count from the end: -1 is the last): check the index against len()"
            ),
            ListError::Empty => f.write_str("pop from an empty list: check is_empty() first"),
            ListError::NotFound => {
                f.write_str("the value is not in the list: check contains() first")
            }
            ListError::WrongSize { len, expected } => write!(
                f,
                "an element of {len} bytes where the list takes {expected}: open the list \
                 with the element type it was made with"
            ),
            ListError::OutOfSpace {
                requested,
                available,
            } => write!(
                f,
                "the arena is full: {requested} bytes requested, {available} free: make the \
                 arena larger (its limit), or pop or clear elements"
            ),
            ListError::Codec(why) => write!(
                f,
                "an element could not be encoded or decoded: {why} (do all processes use the \
                 list with the same element type?)"
            ),
            ListError::Corrupt(what) => write!(
                f,
                "the list is corrupt: {what}. Nothing outside the arena was touched; a \
                 process wrote into the list's memory outside shmproc: make the list again"
            ),
            #[cfg(any(test, fuzzing, shmproc_loom))]
            ListError::Crashed => f.write_str("(test) the operation was cut short"),
        }
    }
}

impl std::error::Error for ListError {}

impl From<Error> for ListError {
    fn from(e: Error) -> ListError {
        match e {
            Error::OutOfSpace {
                requested,
                available,
            } => ListError::OutOfSpace {
                requested,
                available,
            },
            e => ListError::Corrupt(e.to_string()),
        }
    }
}

fn corrupt(what: impl Into<String>) -> ListError {
    ListError::Corrupt(what.into())
}

/// Element `index` (negative: from the end) of a list of `len`.
#[inline]
fn resolve(index: i64, len: u64) -> Result<u64, ListError> {
    let i = if index < 0 {
        i128::from(len) + i128::from(index)
    } else {
        i128::from(index)
    };
    if i < 0 || i >= i128::from(len) {
        Err(ListError::IndexOutOfRange { index, len })
    } else {
        Ok(i as u64)
    }
}

/// Where Python's `insert(index, x)` puts `x` in a list of `len`: clamped, never an error.
#[inline]
pub fn insert_position(index: i64, len: u64) -> u64 {
    if index < 0 {
        (i128::from(len) + i128::from(index)).max(0) as u64
    } else {
        (index as u64).min(len)
    }
}

/// The elements `[start, end)` that Python's `list[a:b]` takes of a list of `len`:
/// negative bounds count from the end, bounds past either end are clamped.
pub fn span(range: &impl RangeBounds<i64>, len: u64) -> (u64, u64) {
    let norm = |b: i64| -> i128 {
        let b = i128::from(b);
        if b < 0 {
            i128::from(len) + b
        } else {
            b
        }
    };
    let clamp = |b: i128| b.clamp(0, i128::from(len)) as u64;
    let start = match range.start_bound() {
        Bound::Unbounded => 0,
        Bound::Included(&a) => clamp(norm(a)),
        Bound::Excluded(&a) => clamp(norm(a) + 1),
    };
    let end = match range.end_bound() {
        Bound::Unbounded => len,
        Bound::Excluded(&b) => clamp(norm(b)),
        Bound::Included(&b) => clamp(norm(b) + 1),
    };
    (start, end.max(start))
}

/// Test hook: stops a writer before its `k`-th shared store, as a kill would (unit
/// tests and loom models of the repair).
#[cfg(any(test, fuzzing, shmproc_loom))]
pub use super::crash::CrashAfter;
#[cfg(any(test, fuzzing, shmproc_loom))]
use super::crash::Hook;

/// Whether a seqlock read is still valid, for a reader about to do something costly
/// (allocate for a large element) on what it read.
struct Snap<'r> {
    seq: &'r AtomicU64,
    /// The even `seq` the read started from; `None` under the lock.
    s1: Option<u64>,
}

impl Snap<'_> {
    #[inline]
    fn holds(&self) -> bool {
        match self.s1 {
            None => true,
            Some(s1) => {
                // Acquire fence: pairs with the Release fence in `begin_write`, as in
                // `read`: a reader that saw any store of a later write sees its odd seq.
                fence(Ordering::Acquire);
                // Relaxed: ordered by the fence.
                self.seq.load(Ordering::Relaxed) == s1
            }
        }
    }
}

/// The algorithm: a [`RawList`], the blocks it owns, and its validated geometry.
///
/// Public so that `loom-tests/` can model-check it; the handles wrap it.
pub struct ListCore<'a, B: Blocks, L: Liveness> {
    raw: &'a RawList,
    blocks: &'a B,
    g: ListGeometry,
    /// `g.slot_words()`, cached: it sizes every slot access.
    sw: u64,
    who: L,
    spin: SpinPolicy,
    #[cfg(any(test, fuzzing, shmproc_loom))]
    crash: Option<&'a CrashAfter>,
}

/// The words of the chunk a loop over slots is in ([`ListCore::slot_in`]).
#[derive(Default)]
struct Cursor<'a> {
    /// The chunk's first and last-plus-one element; empty: no chunk yet.
    first: u64,
    end: u64,
    words: &'a [AtomicU64],
}

/// Holds the writer lock; releases it when dropped.
struct Guard<'c, 'a, B: Blocks, L: Liveness> {
    c: &'c ListCore<'a, B, L>,
}

impl<B: Blocks, L: Liveness> Drop for Guard<'_, '_, B, L> {
    fn drop(&mut self) {
        // A writer stopped by the test hook is "dead": it releases nothing.
        if !self.c.crashed() {
            self.c.raw.lock.unlock();
        }
    }
}

/// An element to be written: its bytes, and its own block when it has one.
#[derive(Clone, Copy)]
struct Prepared<'e> {
    bytes: &'e [u8],
    out: Option<u64>,
}

impl<'a, B: Blocks, L: Liveness> ListCore<'a, B, L> {
    /// The list over `raw` with geometry `g`, which the caller validated (the handle's
    /// fast path).
    pub fn with_geometry(
        raw: &'a RawList,
        blocks: &'a B,
        g: ListGeometry,
        who: L,
        spin: SpinPolicy,
    ) -> Self {
        ListCore {
            raw,
            blocks,
            g,
            sw: g.slot_words(),
            who,
            spin,
            #[cfg(any(test, fuzzing, shmproc_loom))]
            crash: None,
        }
    }

    /// The list over `raw`, after validating its geometry.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the geometry word is not one a list is made with.
    pub fn new(raw: &'a RawList, blocks: &'a B, who: L) -> crate::Result<Self> {
        let g = ListGeometry::from_word(raw.geometry_word())?;
        Ok(Self::with_geometry(
            raw,
            blocks,
            g,
            who,
            SpinPolicy::default(),
        ))
    }

    /// Sets the reader's optimistic attempts (and the writer's spin) before the lock.
    pub fn set_spin(&mut self, spin: SpinPolicy) {
        self.spin = spin;
    }

    /// Test hook: stop writers as [`CrashAfter`] says.
    #[cfg(any(test, fuzzing, shmproc_loom))]
    pub fn with_crash(mut self, crash: &'a CrashAfter) -> Self {
        self.crash = Some(crash);
        self
    }

    /// The geometry.
    pub fn geometry(&self) -> ListGeometry {
        self.g
    }

    /// One shared store about to happen: under the test hook, maybe the last.
    #[inline(always)]
    fn step(&self) -> Result<(), ListError> {
        #[cfg(any(test, fuzzing, shmproc_loom))]
        if let Some(c) = self.crash {
            if !c.allow() {
                return Err(ListError::Crashed);
            }
        }
        Ok(())
    }

    #[inline(always)]
    fn crashed(&self) -> bool {
        #[cfg(any(test, fuzzing, shmproc_loom))]
        if let Some(c) = self.crash {
            return !c.alive();
        }
        false
    }

    // ---- slots ---------------------------------------------------------------------------

    /// The words of slot `i`, if its chunk exists and lies in the shared memory.
    #[inline]
    fn slot(&self, i: u64) -> Result<&'a [AtomicU64], ListError> {
        let (k, j) = self
            .g
            .locate(i)
            .ok_or_else(|| corrupt(format!("index {i} is past any list")))?;
        // Relaxed: under the lock (ordered by it), or in a seqlock read (validated after).
        let c = self.raw.chunks[k].load(Ordering::Relaxed);
        if c == 0 {
            return Err(corrupt(format!("chunk {k} of element {i} is missing")));
        }
        self.slot_of(c, j)
    }

    /// The words of slot `j` of the chunk at `c`.
    #[inline]
    fn slot_of(&self, c: u64, j: u64) -> Result<&'a [AtomicU64], ListError> {
        let off = j
            .checked_mul(self.sw * 8)
            .and_then(|b| b.checked_add(c))
            .ok_or_else(|| corrupt(format!("chunk at {c:#x}")))?;
        Ok(self.blocks.words(off, self.sw)?)
    }

    /// The words of slot `i`, through `cur`, which keeps the words of the last chunk it
    /// looked up: a loop over many slots looks up and bounds-checks each chunk once.
    #[inline]
    fn slot_in(&self, cur: &mut Cursor<'a>, i: u64) -> Result<&'a [AtomicU64], ListError> {
        if i < cur.first || i >= cur.end {
            let (k, _) = self
                .g
                .locate(i)
                .ok_or_else(|| corrupt(format!("index {i} is past any list")))?;
            // Relaxed: as in `slot`.
            let c = self.raw.chunks[k].load(Ordering::Relaxed);
            if c == 0 {
                return Err(corrupt(format!("chunk {k} of element {i} is missing")));
            }
            let slots = self.g.chunk_slots(k);
            *cur = Cursor {
                first: self.g.chunk_start(k),
                end: self.g.chunk_start(k) + slots,
                words: self.blocks.words(c, slots.saturating_mul(self.sw))?,
            };
        }
        let at = ((i - cur.first) * self.sw) as usize;
        Ok(&cur.words[at..at + self.sw as usize])
    }

    /// Copies slot `from` into slot `to`, a word at a time (lock held).
    fn copy_slot(&self, from: u64, to: u64) -> Result<(), ListError> {
        self.copy_words(self.slot(from)?, self.slot(to)?)
    }

    /// Copies the words of one slot into another (lock held).
    #[inline]
    fn copy_words(&self, src: &[AtomicU64], dst: &[AtomicU64]) -> Result<(), ListError> {
        for (s, d) in src.iter().zip(dst) {
            self.step()?;
            // Relaxed (both): lock held; readers are kept off by `seq` (the caller is
            // between begin_write and end_write).
            d.store(s.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        Ok(())
    }

    /// The length and own block (if any) of the element in `slot`, checked.
    #[inline]
    fn elem_meta(&self, slot: &[AtomicU64]) -> Result<(u64, Option<u64>), ListError> {
        if !self.g.bytes {
            return Ok((u64::from(self.g.elem), None));
        }
        // Relaxed: lock held, or a seqlock read (validated by the caller).
        let m = slot[0].load(Ordering::Relaxed);
        let n = m & LEN_MASK;
        if m & OUT != 0 {
            let off = slot[1].load(Ordering::Relaxed);
            if n > MAX_ELEMENT || off == 0 {
                return Err(corrupt(format!("element meta {m:#x} at {off:#x}")));
            }
            Ok((n, Some(off)))
        } else if n > u64::from(self.g.elem) || m & !(OUT | LEN_MASK) != 0 {
            Err(corrupt(format!("inline element meta {m:#x}")))
        } else {
            Ok((n, None))
        }
    }

    /// The words that hold the bytes of an element (`n` bytes, own block `out`).
    #[inline]
    fn elem_words(
        &self,
        slot: &'a [AtomicU64],
        n: u64,
        out: Option<u64>,
    ) -> Result<&'a [AtomicU64], ListError> {
        match out {
            None => {
                let data = &slot[usize::from(self.g.bytes)..];
                Ok(&data[..(n.div_ceil(8) as usize).min(data.len())])
            }
            Some(off) => {
                if self.blocks.block_len(off)? < n {
                    return Err(corrupt(format!(
                        "an element of {n} bytes in a smaller block at {off:#x}"
                    )));
                }
                Ok(self.blocks.words(off, n.div_ceil(8))?)
            }
        }
    }

    /// Appends the bytes of the element in `slot` to `out` (lock held, or a seqlock read
    /// that `snap` validates before a large copy).
    fn read_elem(
        &self,
        slot: &'a [AtomicU64],
        snap: &Snap<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), ListError> {
        let (n, block) = self.elem_meta(slot)?;
        if block.is_some() && !snap.holds() {
            // Torn: the caller's check fails too, and retries.
            return Err(corrupt("torn read"));
        }
        let words = self.elem_words(slot, n, block)?;
        let start = out.len();
        out.resize(start + n as usize, 0);
        load_bytes(words, &mut out[start..]);
        Ok(())
    }

    /// True when the element in `slot` is `value` (lock held, or a validated read).
    fn elem_eq(&self, slot: &'a [AtomicU64], value: &[u8]) -> Result<bool, ListError> {
        let (n, block) = self.elem_meta(slot)?;
        if n != value.len() as u64 {
            return Ok(false);
        }
        let words = self.elem_words(slot, n, block)?;
        Ok(value
            .chunks(8)
            .zip(words)
            // Relaxed: as in `elem_meta`.
            .all(|(c, w)| pack(c) == w.load(Ordering::Relaxed)))
    }

    /// Checks an element's size, and writes a large byte element into a block of its
    /// own, named by `adding` until it is linked.
    fn prepare<'e>(&self, bytes: &'e [u8]) -> Result<Prepared<'e>, ListError> {
        let n = bytes.len() as u64;
        if !self.g.bytes {
            if n != u64::from(self.g.elem) {
                return Err(ListError::WrongSize {
                    len: n,
                    expected: u64::from(self.g.elem),
                });
            }
            return Ok(Prepared { bytes, out: None });
        }
        if n > MAX_ELEMENT {
            return Err(ListError::WrongSize {
                len: n,
                expected: MAX_ELEMENT,
            });
        }
        if n <= u64::from(self.g.elem) {
            return Ok(Prepared { bytes, out: None });
        }
        self.step()?;
        let off = self
            .raw
            .flight
            .alloc_uninit(self.blocks, n.next_multiple_of(8), 8)?;
        let words = self.blocks.words(off, n.div_ceil(8))?;
        self.step()?;
        store_bytes(words, bytes);
        Ok(Prepared {
            bytes,
            out: Some(off),
        })
    }

    /// Writes a prepared element into slot `i` (lock held).
    fn store_slot(&self, i: u64, e: Prepared<'_>) -> Result<(), ListError> {
        self.store_words(self.slot(i)?, e)
    }

    /// Writes a prepared element into a slot's words (lock held).
    #[inline]
    fn store_words(&self, slot: &[AtomicU64], e: Prepared<'_>) -> Result<(), ListError> {
        if !self.g.bytes {
            for (w, c) in slot.iter().zip(e.bytes.chunks(8)) {
                self.step()?;
                // Relaxed: lock held; published by the caller's `len` store or inside a
                // write section.
                w.store(pack(c), Ordering::Relaxed);
            }
            return Ok(());
        }
        let n = e.bytes.len() as u64;
        match e.out {
            Some(off) => {
                self.step()?;
                // Relaxed (both): as above.
                slot[1].store(off, Ordering::Relaxed);
                self.step()?;
                slot[0].store(n | OUT, Ordering::Relaxed);
            }
            None => {
                for (w, c) in slot[1..].iter().zip(e.bytes.chunks(8)) {
                    self.step()?;
                    // Relaxed: as above.
                    w.store(pack(c), Ordering::Relaxed);
                }
                self.step()?;
                // Relaxed: as above.
                slot[0].store(n, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Makes sure slots `0..n` exist: allocates missing chunks into their directory words.
    fn ensure_capacity(&self, n: u64) -> Result<(), ListError> {
        if n == 0 {
            return Ok(());
        }
        let (top, _) = self.g.locate(n - 1).ok_or(ListError::OutOfSpace {
            requested: n,
            available: 0,
        })?;
        // Relaxed: lock held. Chunks are a prefix: the top one there means all are.
        if self.raw.chunks[top].load(Ordering::Relaxed) != 0 {
            return Ok(());
        }
        for k in 0..=top {
            let word = &self.raw.chunks[k];
            // Relaxed: lock held.
            if word.load(Ordering::Relaxed) == 0 {
                let bytes = self.g.chunk_slots(k).checked_mul(self.sw * 8).ok_or(
                    ListError::OutOfSpace {
                        requested: u64::MAX,
                        available: 0,
                    },
                )?;
                self.step()?;
                self.blocks.alloc_into(word, bytes, CHUNK_ALIGN, false)?;
            }
        }
        Ok(())
    }

    /// After the list shrank to `n` elements at a chunk boundary: frees the chunks above
    /// the one spare chunk kept (so that a push and a pop at a boundary do not allocate
    /// and free a chunk each).
    fn trim(&self, n: u64) -> Result<(), ListError> {
        let Some((k, j)) = self.g.locate(n) else {
            return Ok(());
        };
        if j != 0 {
            return Ok(());
        }
        // Chunk k is empty now: keep it, free those above, from the top (a prefix stays).
        for c in self.raw.chunks[k + 1..].iter().rev() {
            // Relaxed: lock held.
            if c.load(Ordering::Relaxed) != 0 {
                self.step()?;
                self.blocks.free_from(c)?;
            }
        }
        Ok(())
    }

    // ---- the writer's lock and the sequence ----------------------------------------------

    fn lock(&self) -> Guard<'_, 'a, B, L> {
        // Never times out without a deadline.
        let how = self
            .raw
            .lock
            .lock(&self.who, None, self.spin)
            .unwrap_or(Acquired::Normal);
        let guard = Guard { c: self };
        // Relaxed (all): only lock holders write these, and the lock's Acquire ordered us
        // after the previous holder's last store.
        let dirty = self.raw.seq.load(Ordering::Relaxed) & 1 == 1
            || self.raw.journal.load(Ordering::Relaxed) != J_NONE
            || self.raw.flight.blocks() != [0, 0];
        if how == Acquired::OwnerDied || dirty {
            if how == Acquired::OwnerDied {
                // Relaxed: a statistic, written under the lock.
                let r = self.raw.repairs.load(Ordering::Relaxed);
                self.raw.repairs.store(r.wrapping_add(1), Ordering::Relaxed);
            }
            self.repair();
        }
        guard
    }

    /// After a writer died (or left the state half-done): finish its journaled operation,
    /// free what it had in flight, and make `seq` even so readers resume.
    #[cold]
    fn repair(&self) {
        let s = self.begin_write();
        self.finish_journal();
        self.settle();
        self.end_write(s);
    }

    /// Frees the blocks in flight that no element below `len` names.
    fn settle(&self) {
        self.raw
            .flight
            .settle(self.blocks, |off| self.reachable(off));
    }

    /// True when an element below `len` has its bytes in block `off` (lock held, or in the
    /// finalizer).
    fn reachable(&self, off: u64) -> bool {
        if !self.g.bytes {
            return false;
        }
        let n = self.bounded_len();
        let mut cur = Cursor::default();
        (0..n).any(|i| {
            self.slot_in(&mut cur, i).is_ok_and(|s| {
                // Relaxed: lock held.
                s[0].load(Ordering::Relaxed) & OUT != 0 && s[1].load(Ordering::Relaxed) == off
            })
        })
    }

    /// Finishes (or undoes) the journaled operation of a writer that died (module docs).
    fn finish_journal(&self) {
        // Relaxed (all): lock held, or in the finalizer.
        let j = self.raw.journal.load(Ordering::Relaxed);
        let (op, arg) = (j >> J_SHIFT, j & J_ARG);
        let jlen = self.raw.jlen.load(Ordering::Relaxed);
        match op {
            J_INSERT if self.raw.len.load(Ordering::Relaxed) == jlen.wrapping_add(1) => {}
            J_INSERT => {
                // Undo: the old list is there with slot arg - 1 doubled (or torn).
                let p = arg.saturating_sub(1);
                self.raw
                    .journal
                    .store(journal(J_REMOVE, p), Ordering::Relaxed);
                let _ = self.finish_remove(p, jlen);
            }
            J_REMOVE => {
                let _ = self.finish_remove(arg, jlen);
            }
            J_SET => {
                // Relaxed: as above.
                let n = self.raw.len.load(Ordering::Relaxed);
                if arg < n {
                    let _ = self.copy_slot(n, arg);
                }
            }
            J_CLEAR => {
                // Relaxed: as above.
                self.raw.len.store(0, Ordering::Relaxed);
                let _ = self.free_cleared(jlen.min(self.capacity()));
            }
            _ => {}
        }
        // Relaxed: as above; the operation is finished or undone.
        self.raw.journal.store(J_NONE, Ordering::Relaxed);
    }

    /// Frees the own blocks of the elements that were in slots `0..n` before a clear,
    /// from the top, each through its slot word (cleared in the same heap operation, so a
    /// rerun frees only what is left).
    fn free_cleared(&self, n: u64) -> Result<(), ListError> {
        let mut cur = Cursor::default();
        for i in (0..n).rev() {
            let Ok(slot) = self.slot_in(&mut cur, i) else {
                continue;
            };
            // Relaxed: lock held (or finalizer).
            if slot[0].load(Ordering::Relaxed) & OUT != 0 && slot[1].load(Ordering::Relaxed) != 0 {
                self.step()?;
                let _ = self.blocks.free_from(&slot[1]);
            }
        }
        Ok(())
    }

    /// Shifts slots down by one from `p` until `n`, then stores `len = n`: the rest of a
    /// journaled remove. Bounded by the list's real chunks (a slot that does not exist
    /// ends it with an error).
    fn finish_remove(&self, p: u64, n: u64) -> Result<(), ListError> {
        // `n + 1` slots are moved over: bounded by the real chunks (a live writer checked
        // it with `scan_len`; a dead one's journal is checked here, once).
        if n >= self.capacity() {
            return Err(corrupt(format!("journal length {n}")));
        }
        let (mut src, mut dst) = (Cursor::default(), Cursor::default());
        for j in p..n {
            self.copy_words(self.slot_in(&mut src, j + 1)?, self.slot_in(&mut dst, j)?)?;
            self.step()?;
            // Relaxed: lock held (or finalizer); inside a write section.
            self.raw
                .journal
                .store(journal(J_REMOVE, j + 1), Ordering::Relaxed);
        }
        self.step()?;
        // Relaxed: as above.
        self.raw.len.store(n, Ordering::Relaxed);
        Ok(())
    }

    /// Step 1-2 of the writer: `seq` odd, then a Release fence. Returns the odd value.
    #[inline]
    fn begin_write(&self) -> u64 {
        // Relaxed: only lock holders write `seq`.
        let s = self.raw.seq.load(Ordering::Relaxed) | 1;
        // Relaxed store, then the Release fence: pairs with the reader's Acquire fence in
        // `read` (and `Snap::holds`): a reader whose relaxed loads see any store made
        // after this fence also sees this odd `seq` (or later) in its second load.
        self.raw.seq.store(s, Ordering::Relaxed);
        fence(Ordering::Release);
        s
    }

    /// Step 4 of the writer: `seq` even again.
    #[inline]
    fn end_write(&self, odd: u64) {
        // Release: pairs with the reader's Acquire load of `seq` in `read`: a reader that
        // starts from this value sees every store made before it.
        self.raw.seq.store(odd.wrapping_add(1), Ordering::Release);
    }

    /// `len`, as the lock holder reads it, checked against the chunks that hold it (one
    /// load: the chunk of the last element exists).
    fn held_len(&self) -> Result<u64, ListError> {
        // Relaxed: lock held.
        let n = self.raw.len.load(Ordering::Relaxed);
        if n == 0 {
            return Ok(0);
        }
        match self.g.locate(n - 1) {
            // Relaxed: lock held.
            Some((k, _)) if self.raw.chunks[k].load(Ordering::Relaxed) != 0 => Ok(n),
            _ => Err(corrupt(format!("length {n} is past the list's chunks"))),
        }
    }

    /// `n` elements (a length read from the state) if the chunk of the last one is a real
    /// block of its size: then `n` slots take at most twice that block's bytes, so a loop
    /// over them is bounded by memory that exists (a peer's scribbled `len` or chunk
    /// offset cannot make one run for ever). For the operations that loop over elements.
    fn scan_len(&self, n: u64) -> Result<u64, ListError> {
        if n == 0 {
            return Ok(0);
        }
        let (k, _) = self
            .g
            .locate(n - 1)
            .ok_or_else(|| corrupt(format!("length {n}")))?;
        // Relaxed: lock held, or in a seqlock read (validated by the caller).
        let c = self.raw.chunks[k].load(Ordering::Relaxed);
        let need = self.g.chunk_slots(k).saturating_mul(self.sw * 8);
        if c == 0 || self.blocks.block_len(c)? < need {
            return Err(corrupt(format!("length {n} is past the list's chunks")));
        }
        Ok(n)
    }

    /// Slots in the chunks that are real blocks of their size, from the first: the most
    /// elements the list can hold now (the repair's and the finalizer's bound).
    fn capacity(&self) -> u64 {
        let k = (0..MAX_CHUNKS)
            .take_while(|&k| {
                // Relaxed: lock held, or no other process left.
                let c = self.raw.chunks[k].load(Ordering::Relaxed);
                let need = self.g.chunk_slots(k).saturating_mul(self.sw * 8);
                c != 0 && self.blocks.block_len(c).is_ok_and(|l| l >= need)
            })
            .count();
        self.g.chunk_start(k)
    }

    /// `len`, or the list's capacity when a peer made it larger: the bound of the repair's
    /// and the finalizer's loops (lock held, or no other process left).
    fn bounded_len(&self) -> u64 {
        // Relaxed: lock held.
        self.raw.len.load(Ordering::Relaxed).min(self.capacity())
    }

    // ---- writers ------------------------------------------------------------------------

    /// Appends `elem` (lock held).
    #[inline]
    fn push_locked(&self, elem: &[u8]) -> Result<(), ListError> {
        // Relaxed (all): lock held.
        let n = self.raw.len.load(Ordering::Relaxed);
        let (k, j) = self.g.locate(n).ok_or(ListError::OutOfSpace {
            requested: n,
            available: 0,
        })?;
        let mut c = self.raw.chunks[k].load(Ordering::Relaxed);
        if c == 0 {
            // A chunk is missing only at a boundary, after a chunk that exists (else
            // `len` was scribbled on: refuse rather than allocate for it). Capacity first:
            // a chunk that stays unused is a spare, an element block would have to be
            // settled.
            if j != 0 || (k > 0 && self.raw.chunks[k - 1].load(Ordering::Relaxed) == 0) {
                return Err(corrupt(format!("length {n} is past the list's chunks")));
            }
            self.ensure_capacity(n + 1)?;
            c = self.raw.chunks[k].load(Ordering::Relaxed);
        }
        let e = self.prepare(elem)?;
        self.store_words(self.slot_of(c, j)?, e)?;
        self.step()?;
        let s = self.begin_write();
        self.step()?;
        // Relaxed: inside the write section; the commit of the append.
        self.raw.len.store(n + 1, Ordering::Relaxed);
        self.step()?;
        self.end_write(s);
        if e.out.is_some() {
            self.step()?;
            self.raw.flight.linked();
        }
        Ok(())
    }

    /// Appends `elem`.
    ///
    /// # Errors
    /// [`ListError::WrongSize`] for an element a fixed list does not take;
    /// [`ListError::OutOfSpace`]; [`ListError::Corrupt`].
    pub fn push(&self, elem: &[u8]) -> Result<(), ListError> {
        let _g = self.lock();
        self.push_locked(elem)
    }

    /// Appends every element under one hold of the lock; returns how many were appended
    /// (all, unless an error stopped it: those before it stay).
    ///
    /// # Errors
    /// As [`push`](Self::push), for the first element that could not be appended.
    pub fn extend<E: AsRef<[u8]>>(
        &self,
        elems: impl IntoIterator<Item = E>,
    ) -> Result<usize, ListError> {
        self.extend_by(elems, |e| e.as_ref())
    }

    /// As [`extend`](Self::extend), with `bytes` giving each item's bytes (a plain-data
    /// value's, without a copy).
    ///
    /// # Errors
    /// As [`push`](Self::push), for the first element that could not be appended.
    pub fn extend_by<X>(
        &self,
        items: impl IntoIterator<Item = X>,
        bytes: impl Fn(&X) -> &[u8],
    ) -> Result<usize, ListError> {
        let _g = self.lock();
        let mut done = 0;
        for x in items {
            self.push_locked(bytes(&x))?;
            done += 1;
        }
        Ok(done)
    }

    /// Removes the element at `index` (lock held), appending its bytes to `out`.
    fn remove_locked(&self, index: i64, out: &mut Vec<u8>) -> Result<(), ListError> {
        let n = self.held_len()?;
        if n == 0 {
            return Err(ListError::Empty);
        }
        let i = resolve(index, n)?;
        if i + 1 < n {
            self.scan_len(n)?;
        }
        let slot = self.slot(i)?;
        self.read_elem(slot, &Snap::locked(&self.raw.seq), out)?;
        let (_, block) = self.elem_meta(slot)?;
        if let Some(off) = block {
            self.step()?;
            self.raw.flight.drop_begin(off);
        }
        self.step()?;
        let s = self.begin_write();
        if i + 1 < n {
            self.step()?;
            // Relaxed (both): lock held; `jlen` before the journal names the operation.
            self.raw.jlen.store(n - 1, Ordering::Relaxed);
            self.step()?;
            self.raw
                .journal
                .store(journal(J_REMOVE, i), Ordering::Relaxed);
            self.finish_remove(i, n - 1)?;
            self.step()?;
            // Relaxed: lock held.
            self.raw.journal.store(J_NONE, Ordering::Relaxed);
        } else {
            self.step()?;
            // Relaxed: inside the write section; the commit of the pop.
            self.raw.len.store(n - 1, Ordering::Relaxed);
        }
        self.step()?;
        self.end_write(s);
        if block.is_some() {
            self.step()?;
            // A block that is not one (a peer's scribble) stays named by `dropping`; the
            // next writer's settle forgets it.
            let _ = self.raw.flight.drop_end(self.blocks);
        }
        self.trim(n - 1)
    }

    /// Removes the element at `index` (negative: from the end) into `out` (cleared
    /// first): Python's `pop(index)`.
    ///
    /// # Errors
    /// [`ListError::Empty`]; [`ListError::IndexOutOfRange`]; [`ListError::Corrupt`].
    pub fn pop_at(&self, index: i64, out: &mut Vec<u8>) -> Result<(), ListError> {
        let _g = self.lock();
        out.clear();
        self.remove_locked(index, out)
    }

    /// Inserts `elem` before `index` (Python's `insert`: negative counts from the end, out
    /// of range clamps, so it never fails on the index).
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn insert(&self, index: i64, elem: &[u8]) -> Result<(), ListError> {
        let _g = self.lock();
        let n = self.held_len()?;
        let i = insert_position(index, n);
        if i == n {
            return self.push_locked(elem);
        }
        self.scan_len(n)?;
        self.ensure_capacity(n + 1)?;
        let e = self.prepare(elem)?;
        self.step()?;
        let s = self.begin_write();
        self.step()?;
        // Relaxed (all): lock held, inside the write section; `jlen` first.
        self.raw.jlen.store(n, Ordering::Relaxed);
        self.step()?;
        self.raw
            .journal
            .store(journal(J_INSERT, n + 1), Ordering::Relaxed);
        let (mut src, mut dst) = (Cursor::default(), Cursor::default());
        for j in (i + 1..=n).rev() {
            self.copy_words(self.slot_in(&mut src, j - 1)?, self.slot_in(&mut dst, j)?)?;
            self.step()?;
            // Relaxed: as above; the step and its record (the slot written lowest).
            self.raw
                .journal
                .store(journal(J_INSERT, j), Ordering::Relaxed);
        }
        self.store_slot(i, e)?;
        self.step()?;
        // The commit of the insert.
        self.raw.len.store(n + 1, Ordering::Relaxed);
        self.step()?;
        self.raw.journal.store(J_NONE, Ordering::Relaxed);
        self.step()?;
        self.end_write(s);
        if e.out.is_some() {
            self.step()?;
            self.raw.flight.linked();
        }
        Ok(())
    }

    /// Replaces the element at `index` (negative: from the end).
    ///
    /// # Errors
    /// [`ListError::IndexOutOfRange`]; as [`push`](Self::push).
    pub fn set(&self, index: i64, elem: &[u8]) -> Result<(), ListError> {
        let _g = self.lock();
        let n = self.held_len()?;
        let i = resolve(index, n)?;
        if !self.g.bytes && self.sw == 1 {
            let e = self.prepare(elem)?;
            // One word: a single store is atomic, no staging needed.
            self.step()?;
            let s = self.begin_write();
            self.store_slot(i, e)?;
            self.step()?;
            self.end_write(s);
            return Ok(());
        }
        // Stage the new element past the end, then copy it in under the journal.
        self.ensure_capacity(n + 1)?;
        let e = self.prepare(elem)?;
        self.store_slot(n, e)?;
        let (_, old) = self.elem_meta(self.slot(i)?)?;
        if let Some(off) = old {
            self.step()?;
            self.raw.flight.drop_begin(off);
        }
        self.step()?;
        let s = self.begin_write();
        self.step()?;
        // Relaxed (both): lock held, inside the write section.
        self.raw.journal.store(journal(J_SET, i), Ordering::Relaxed);
        self.copy_slot(n, i)?;
        self.step()?;
        self.raw.journal.store(J_NONE, Ordering::Relaxed);
        self.step()?;
        self.end_write(s);
        if e.out.is_some() {
            self.step()?;
            self.raw.flight.linked();
        }
        if old.is_some() {
            self.step()?;
            let _ = self.raw.flight.drop_end(self.blocks);
        }
        Ok(())
    }

    /// Removes the first element equal to `value` (Python's `remove`); returns its index.
    ///
    /// # Errors
    /// [`ListError::NotFound`]; [`ListError::Corrupt`].
    pub fn remove(&self, value: &[u8]) -> Result<u64, ListError> {
        let _g = self.lock();
        let n = self.scan_len(self.held_len()?)?;
        let mut cur = Cursor::default();
        for i in 0..n {
            if self.elem_eq(self.slot_in(&mut cur, i)?, value)? {
                self.remove_locked(i as i64, &mut Vec::new())?;
                return Ok(i);
            }
        }
        Err(ListError::NotFound)
    }

    /// Removes every element and frees every block.
    ///
    /// # Errors
    /// [`ListError::Corrupt`] (what could be freed is).
    pub fn clear(&self) -> Result<(), ListError> {
        let _g = self.lock();
        let n = if self.g.bytes { self.bounded_len() } else { 0 };
        self.step()?;
        let s = self.begin_write();
        if n > 0 {
            // The journal names the slots `0..n` as owned once `len` no longer covers
            // them: their blocks are freed through their slot words, by us or the repair.
            self.step()?;
            // Relaxed (all): lock held, inside the write section; `jlen` first.
            self.raw.jlen.store(n, Ordering::Relaxed);
            self.step()?;
            self.raw
                .journal
                .store(journal(J_CLEAR, 0), Ordering::Relaxed);
        }
        self.step()?;
        // The commit of the clear.
        self.raw.len.store(0, Ordering::Relaxed);
        if n > 0 {
            self.free_cleared(n)?;
            self.step()?;
            self.raw.journal.store(J_NONE, Ordering::Relaxed);
        }
        self.step()?;
        self.end_write(s);
        for c in self.raw.chunks.iter().rev() {
            // Relaxed: lock held.
            if c.load(Ordering::Relaxed) != 0 {
                self.step()?;
                self.blocks.free_from(c)?;
            }
        }
        Ok(())
    }

    // ---- readers ------------------------------------------------------------------------

    /// Runs `f` as a seqlock read until it sees a consistent list; after the spin budget,
    /// once more with the writer lock held. `f` may run several times and must tolerate
    /// torn data (it only copies and compares, with bounds).
    #[inline]
    fn read<R>(
        &self,
        mut f: impl FnMut(&Snap<'_>) -> Result<R, ListError>,
    ) -> Result<R, ListError> {
        let read = self.spin.attempts(|| {
            // Acquire: pairs with the Release store in `end_write`.
            let s1 = self.raw.seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                let snap = Snap {
                    seq: &self.raw.seq,
                    s1: Some(s1),
                };
                let r = f(&snap);
                // Acquire fence: pairs with the Release fence in `begin_write` (the
                // module's protocol table): if `f` saw any store of a later write, the
                // load below sees that write's odd `seq`.
                fence(Ordering::Acquire);
                // Relaxed: ordered by the fence above.
                if self.raw.seq.load(Ordering::Relaxed) == s1 {
                    return Round::Done(r);
                }
            }
            Round::Again
        });
        match read {
            Some(r) => r,
            None => self.read_locked(f),
        }
    }

    #[cold]
    fn read_locked<R>(
        &self,
        mut f: impl FnMut(&Snap<'_>) -> Result<R, ListError>,
    ) -> Result<R, ListError> {
        let _g = self.lock();
        f(&Snap::locked(&self.raw.seq))
    }

    /// The element at `index` (negative: from the end), appended to `out` (cleared first).
    ///
    /// # Errors
    /// [`ListError::IndexOutOfRange`]; [`ListError::Corrupt`].
    pub fn get(&self, index: i64, out: &mut Vec<u8>) -> Result<(), ListError> {
        self.read(|snap| {
            out.clear();
            // Relaxed: inside `read` (validated).
            let n = self.raw.len.load(Ordering::Relaxed);
            let slot = self.slot(resolve(index, n)?)?;
            self.read_elem(slot, snap, out)
        })
    }

    /// The element at `index` of a fixed list of `T`s, read straight into a `T`.
    ///
    /// # Errors
    /// [`ListError::WrongSize`] when `T` is not the list's element size;
    /// [`ListError::IndexOutOfRange`]; [`ListError::Corrupt`].
    #[inline]
    pub fn get_pod<T: Pod>(&self, index: i64) -> Result<T, ListError> {
        self.check_pod::<T>()?;
        self.read(|_| {
            // Relaxed: inside `read` (validated).
            let n = self.raw.len.load(Ordering::Relaxed);
            let slot = self.slot(resolve(index, n)?)?;
            Ok(load_pod(slot))
        })
    }

    /// Replaces the element at `index` of a fixed list of `T`s.
    ///
    /// # Errors
    /// As [`set`](Self::set).
    pub fn set_pod<T: Pod>(&self, index: i64, value: &T) -> Result<(), ListError> {
        self.set(index, bytemuck::bytes_of(value))
    }

    fn check_pod<T: Pod>(&self) -> Result<(), ListError> {
        let size = core::mem::size_of::<T>() as u64;
        if self.g.bytes || size != u64::from(self.g.elem) {
            return Err(ListError::WrongSize {
                len: size,
                expected: u64::from(self.g.elem),
            });
        }
        Ok(())
    }

    /// The elements `range` (Python's `list[a:b]`: clamped, negative from the end) of a
    /// fixed list of `T`s, as one consistent copy.
    ///
    /// # Errors
    /// [`ListError::WrongSize`]; [`ListError::Corrupt`].
    pub fn slice_pod<T: Pod>(&self, range: &impl RangeBounds<i64>) -> Result<Vec<T>, ListError> {
        self.check_pod::<T>()?;
        let mut v = Vec::new();
        self.read(|_| {
            v.clear();
            // Relaxed: inside `read` (validated).
            let (a, b) = span(range, self.scan_len(self.raw.len.load(Ordering::Relaxed))?);
            let mut cur = Cursor::default();
            for i in a..b {
                v.push(load_pod(self.slot_in(&mut cur, i)?));
            }
            Ok(())
        })?;
        Ok(v)
    }

    /// The elements `range` (as [`slice_pod`](Self::slice_pod)) of any list, each as its
    /// bytes, as one consistent copy.
    ///
    /// # Errors
    /// [`ListError::Corrupt`].
    pub fn slice(&self, range: &impl RangeBounds<i64>) -> Result<Vec<Vec<u8>>, ListError> {
        let mut all = Vec::new();
        self.read(|snap| {
            all.clear();
            // Relaxed: inside `read` (validated).
            let (a, b) = span(range, self.scan_len(self.raw.len.load(Ordering::Relaxed))?);
            let mut cur = Cursor::default();
            for i in a..b {
                let mut e = Vec::new();
                self.read_elem(self.slot_in(&mut cur, i)?, snap, &mut e)?;
                all.push(e);
            }
            Ok(())
        })?;
        Ok(all)
    }

    /// The index of the first element equal to `value` (Python's `index`), in one
    /// consistent read.
    ///
    /// # Errors
    /// [`ListError::NotFound`]; [`ListError::Corrupt`].
    pub fn index(&self, value: &[u8]) -> Result<u64, ListError> {
        self.read(|_| {
            // Relaxed: inside `read` (validated).
            let n = self.scan_len(self.raw.len.load(Ordering::Relaxed))?;
            let mut cur = Cursor::default();
            for i in 0..n {
                if self.elem_eq(self.slot_in(&mut cur, i)?, value)? {
                    return Ok(i);
                }
            }
            Err(ListError::NotFound)
        })
    }

    /// How many elements equal `value` (Python's `count`), in one consistent read.
    ///
    /// # Errors
    /// [`ListError::Corrupt`].
    pub fn count(&self, value: &[u8]) -> Result<u64, ListError> {
        self.read(|_| {
            // Relaxed: inside `read` (validated).
            let n = self.scan_len(self.raw.len.load(Ordering::Relaxed))?;
            let mut found = 0;
            let mut cur = Cursor::default();
            for i in 0..n {
                found += u64::from(self.elem_eq(self.slot_in(&mut cur, i)?, value)?);
            }
            Ok(found)
        })
    }

    /// Elements (a snapshot).
    #[inline]
    pub fn len(&self) -> u64 {
        // Relaxed: a snapshot (one store changes it); clamped, as a peer may scribble.
        self.raw.len.load(Ordering::Relaxed).min(self.g.max_len())
    }

    /// True when the list is empty (a snapshot).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Test and model hook: takes the lock (repairing what a dead writer left), checks
    /// every element, and returns the blocks the list owns: its chunks and its elements'
    /// own blocks.
    ///
    /// # Errors
    /// [`ListError::Corrupt`] for an element that does not hold together.
    #[doc(hidden)]
    pub fn audit(&self) -> Result<ListAudit, ListError> {
        let _g = self.lock();
        let n = self.scan_len(self.held_len()?)?;
        let mut a = ListAudit {
            len: n,
            chunks: self.raw.chunk_count() as u64,
            element_blocks: 0,
        };
        let mut buf = Vec::new();
        let mut cur = Cursor::default();
        for i in 0..n {
            let slot = self.slot_in(&mut cur, i)?;
            buf.clear();
            self.read_elem(slot, &Snap::locked(&self.raw.seq), &mut buf)?;
            a.element_blocks += u64::from(self.elem_meta(slot)?.1.is_some());
        }
        Ok(a)
    }

    /// Test and model hook: the element at `index` under the lock (what a reader falls
    /// back to), for comparing the two read paths.
    #[doc(hidden)]
    pub fn get_locked(&self, index: i64, out: &mut Vec<u8>) -> Result<(), ListError> {
        self.read_locked(|snap| {
            out.clear();
            // Relaxed: lock held.
            let n = self.raw.len.load(Ordering::Relaxed);
            let slot = self.slot(resolve(index, n)?)?;
            self.read_elem(slot, snap, out)
        })
    }

    /// [`get_pod`](Self::get_pod) under the lock (for the bench's comparison).
    #[doc(hidden)]
    pub fn get_pod_locked<T: Pod>(&self, index: i64) -> Result<T, ListError> {
        self.check_pod::<T>()?;
        self.read_locked(|_| {
            // Relaxed: lock held.
            let n = self.raw.len.load(Ordering::Relaxed);
            Ok(load_pod(self.slot(resolve(index, n)?)?))
        })
    }
}

/// What [`ListCore::audit`] found (a test hook).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListAudit {
    /// Elements.
    pub len: u64,
    /// Chunks allocated.
    pub chunks: u64,
    /// Elements with a block of their own.
    pub element_blocks: u64,
}

impl<'r> Snap<'r> {
    fn locked(seq: &'r AtomicU64) -> Snap<'r> {
        Snap { seq, s1: None }
    }
}

/// Up to 8 bytes as a little-endian word, zero-padded.
#[inline]
fn pack(bytes: &[u8]) -> u64 {
    match <[u8; 8]>::try_from(bytes) {
        Ok(full) => u64::from_le_bytes(full),
        Err(_) => {
            let mut b = [0u8; 8];
            let n = bytes.len().min(8);
            b[..n].copy_from_slice(&bytes[..n]);
            u64::from_le_bytes(b)
        }
    }
}

/// Stores `bytes` into `words` (at least `bytes.len() / 8` rounded up of them).
fn store_bytes(words: &[AtomicU64], bytes: &[u8]) {
    for (w, c) in words.iter().zip(bytes.chunks(8)) {
        // Relaxed: the block is not reachable yet; published by the caller's `len` store
        // or journaled copy, inside a write section.
        w.store(pack(c), Ordering::Relaxed);
    }
}

/// Copies `out.len()` bytes out of `words` (which hold at least that many).
#[inline]
fn load_bytes(words: &[AtomicU64], out: &mut [u8]) {
    let whole = out.len() / 8;
    let mut chunks = out.chunks_exact_mut(8);
    for (c, w) in (&mut chunks).zip(words) {
        // Relaxed: lock held or a seqlock read (validated by the caller).
        c.copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
    }
    let tail = chunks.into_remainder();
    if let (false, Some(w)) = (tail.is_empty(), words.get(whole)) {
        // Relaxed: as above.
        let b = w.load(Ordering::Relaxed).to_le_bytes();
        tail.copy_from_slice(&b[..tail.len()]);
    }
}

/// A plain-data element read out of its slot (which holds `size_of::<T>()` bytes).
#[inline]
fn load_pod<T: Pod>(slot: &[AtomicU64]) -> T {
    let mut v = T::zeroed();
    load_bytes(slot, bytemuck::bytes_of_mut(&mut v));
    v
}

#[cfg(all(test, not(shmproc_loom)))]
mod tests;
