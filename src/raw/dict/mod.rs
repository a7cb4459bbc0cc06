//! The hash table of [`SharedDict`](crate::SharedDict), [`TypedDict`](crate::TypedDict)
//! and `SerdeDict`: any number of entries (it grows), keys and values of any size (each
//! entry in a heap block of its own), lock-free readers (a seqlock), one writer at a time
//! (a robust lock), and nothing lost or leaked whatever process dies when.
//!
//! # The pieces
//!
//! A dict is a state block ([`RawDict`], fixed size, in the arena's directory like every
//! object) that names, by offset, an **index** block, which names one **entry** block per
//! key. Every block is allocated and freed through [`Blocks`] (the arena; a private heap
//! in tests and models), and every block is named by a word of shared memory from the
//! instant it is allocated to the instant it is freed (see [`owned`](crate::raw::owned)).
//!
//! ```text
//!   RawDict { seq, index ─┐, shift, seed, len, tombs, in-flight, retired, cursor }
//!                         ▼
//!   index: 2^shift slots of [meta, link]   (meta: 0 empty, 1 tombstone, live: hash|2)
//!                                  │
//!                                  ▼
//!   entry: [key_len, value_len, key words.., value words..]   (immutable once linked)
//! ```
//!
//! The **index** is open addressing with linear probing. A slot is two words:
//!
//! | word   | contents                                                              |
//! |--------|-----------------------------------------------------------------------|
//! | `meta` | `0` empty; `1` tombstone (a removed entry: probes go on past it); `hash & !3 \| 2` live |
//! | `link` | the offset of the entry block while live; `0` otherwise (see *crashes*) |
//!
//! A live meta holds 62 bits of the key's hash, so a probe reads an entry only when its
//! hash matches (a false match once in 2^62 probes); its home slot is `(meta >> 2) &
//! (slots - 1)`, so growing never reads an entry, and neither does any probe that
//! misses. The index grows to twice its slots when an insert would take it past 3/4
//! full (live entries and tombstones); a rebuild forced by tombstones is sized for the
//! live entries (half full at most), so it may shrink, and never below what the entries
//! need. A removal whose next slot is empty leaves an empty slot rather than a tombstone
//! (and clears the tombstones before it), so probe runs do not fill with them.
//!
//! An **entry** is written whole before it is linked and never changed while linked: a
//! new value for a key is a new entry block, swapped into the slot's `link` with one
//! store (copy on write). So a value is never torn, not even by a writer killed in the
//! middle of writing it.
//!
//! Keys are hashed with SipHash-1-3 keyed by the arena's random seed (recorded in the
//! state when the dict is made): a peer that does not know the seed cannot pick keys
//! that pile into one probe run. SipHash is specified bit for bit, so every process
//! that maps the arena, whatever its build, finds every key where another put it.
//!
//! # Concurrency: one writer at a time, readers never block each other
//!
//! Writers take the dict's robust [`RawLock`]. Readers take no lock: what they read is
//! guarded by a **sequence lock**. A writer makes `seq` odd before it changes anything a
//! reader can reach (the index word, a slot, the counts) and even again after; a reader
//! notes `seq`, reads with relaxed atomic loads, and keeps what it read only if `seq` was
//! even and has not changed. A reader thus writes nothing to shared memory: any number of
//! readers in any number of processes proceed in parallel, and a writer is never slowed
//! by readers.
//!
//! Only the publishing stores sit inside the odd window: an entry is written before it
//! (it is not reachable yet), and so is a whole new index when the dict grows: the writer
//! builds it beside the old one, which readers go on using undisturbed, then publishes it
//! with one store of the index word in a window of five stores. A rehash of a million
//! entries stalls no reader; only other writers wait for it. A reader that keeps failing
//! (a writer preempted in its window, or one that died there) falls back to taking the
//! lock, so no reader spins for ever. The `update_with` closure runs with the lock held
//! but outside the window, so a slow read-modify-write does not stall readers either.
//!
//! The seqlock protocol (Boehm, "Can seqlocks get along with programming language memory
//! models?", 2012):
//!
//! | step   | writer (lock held)                       | reader                                  |
//! |--------|------------------------------------------|-----------------------------------------|
//! | 0      | new entry / new index: `store(Relaxed)`  |                                         |
//! | 1      | `seq.store(s + 1, Relaxed)`              | `s1 = seq.load(Acquire)`; odd: retry    |
//! | 2      | `fence(Release)`                         | index, slots, entry: `load(Relaxed)`    |
//! | 3      | index word, slots, counts: `store(Relaxed)` | `fence(Acquire)`                     |
//! | 4      | `seq.store(s + 2, Release)`              | `s2 = seq.load(Relaxed)`; keep if `s1 == s2` |
//! | 5      | free what was unlinked                   |                                         |
//!
//! **Nothing read under a possibly-torn copy is trusted.** The index offset and its size,
//! each entry's offset and each length are read in a window that a writer may be
//! changing, so each goes through [`Blocks::words`] (bounds-checked against the mapping)
//! before a single word behind it is read; every probe is bounded by the slot count; a
//! copy that fails a check is retried like one that fails the sequence check. A reader
//! may so read a block that a writer has just freed (and someone reused): every such read
//! is an atomic load of mapped memory whose value the sequence check then throws away.
//! That is the seqlock's one assumption about memory it does not own: that a load
//! racing another process's store returns some value (what the hardware does, and what
//! every reader of memory shared with untrusted peers already assumes).
//!
//! A read that still fails a check when it runs with the lock held (no writer can be
//! changing anything then) met damage: it returns [`DictError::Corrupt`] rather than
//! "absent" for a key that may be there. A writer that meets an entry failing its checks
//! on the key's path says so too (`remove`, `pop_any`, `update_with`, `setdefault`) and
//! leaves the entry where it is; `insert` puts the key in a free slot instead, and
//! `clear` reports the blocks it had to forget.
//!
//! # Crashes: a writer killed at any point leaks nothing and tears nothing
//!
//! Every block is named by a word from allocation to free ([`owned`](crate::raw::owned)):
//!
//! | block                | named by, in turn                                                     |
//! |----------------------|-----------------------------------------------------------------------|
//! | new entry, new key   | the free slot's `link` ([`Blocks::alloc_into`]), then the slot turns live |
//! | new entry, new value | `in_flight.adding`, then the slot's `link` (the old one moves to `in_flight.dropping` first, and is freed from there) |
//! | removed entry        | the slot's `link` until [`Blocks::free_from`] frees it and zeroes the word |
//! | new index            | `in_flight.adding`, then `index` (the old index moves to `in_flight.dropping`) |
//! | cleared index        | `retired` (with every entry still named by its `link`s) until each `link` and then the index are freed |
//!
//! So a block that is named only by a slot that is not live, or only by an in-flight
//! word and by no live slot, is garbage. The next process to take the lock learns of
//! the death from it ([`Acquired::OwnerDied`]), or sees `seq` odd, a word in flight or a
//! retired index, and **repairs** under the lock: it finishes freeing a retired index,
//! walks the index once (freeing what non-live slots name, counting live entries and
//! tombstones), settles the in-flight words against it, and makes `seq` even. Every
//! change that a reader or the next writer can see is published by one store (a slot's
//! meta, a slot's link, the index word), so a killed writer leaves each key either as it
//! was or as it would have become, never torn. The one thing the repair recounts is the
//! counts (`len`, `tombs`); it costs one pass over the index (about 2 ms per million
//! slots) and runs only after a death.
//!
//! When the dict's last reference goes, the arena calls [`finalize`] (without the lock,
//! under its metadata lock): it settles the same way and frees every block. It is
//! idempotent (each free zeroes the word that named the block), so a process killed
//! inside it leaves the rest to the next run.

use crate::error::Error;
use crate::raw::lock::{Acquired, RawLock, RobustLock};
use crate::raw::owned::{Blocks, InFlight};
use crate::sync::liveness::Liveness;
use crate::sync::spin::{Round, SpinPolicy};
use crate::sync::{fence, AtomicU64, Ordering};
use std::fmt;

#[cfg(any(test, fuzzing))]
pub mod fuzz;
#[cfg(all(test, not(shmproc_loom)))]
mod tests;

/// The smallest index, as a power of two of its slots (2 slots under loom, so that one
/// insert makes a model grow; 8 in the real build).
pub const MIN_SHIFT: u32 = if cfg!(shmproc_loom) { 1 } else { 3 };
/// The largest index: 2^36 slots, 1 TiB of index (the arena's own limit is lower).
pub const MAX_SHIFT: u32 = 36;

/// Slot meta: never used.
const EMPTY: u64 = 0;
/// Slot meta: an entry was removed here; probes go on past it.
const TOMB: u64 = 1;
/// Slot meta: the low two bits of a live slot.
const LIVE: u64 = 2;
/// Words of an entry's header (key length, value length).
const ENTRY_HEADER: u64 = 2;
/// Alignment of an index block (a cache line).
const INDEX_ALIGN: u64 = 64;
/// Alignment of an entry block (the heap's granule).
const ENTRY_ALIGN: u64 = 16;
/// The largest block the dict asks for (the heap's own limit is 1 TiB).
const MAX_BLOCK: u64 = 1 << 40;

/// The dict's shared state: the object's state block in the arena.
///
/// | offset | field       | meaning                                                   |
/// |--------|-------------|-----------------------------------------------------------|
/// | 0      | `lock`      | the writers' robust lock                                  |
/// | 16     | `seq`       | the sequence word: odd while a writer publishes           |
/// | 24     | `index`     | the index: its block's offset (64-aligned) \| `shift` (its `2^shift` slots) in the low 6 bits; 0 when the dict has none (never filled, or cleared). One word, so a reader never pairs one index with another's size |
/// | 32     | `seed`      | the hash key (the arena's seed, written once at creation) |
/// | 40     | `len`       | live entries                                              |
/// | 48     | `tombs`     | tombstones in the index                                   |
/// | 56     | `cursor`    | where `popitem` looks first                               |
/// | 64     | `in_flight` | blocks between allocation and link, or unlink and free ([`InFlight`]) |
/// | 80     | `retired`   | the offset of an index taken out by `clear`, whose entries are being freed |
/// | 88     | `retired_shift` | its size (written before `retired`)                   |
///
/// All zero bytes are an empty, unlocked dict (with seed 0: the handle writes the
/// arena's seed before the dict is published). Every field a reader loads is in the
/// first cache line.
#[repr(C)]
pub struct RawDict {
    lock: RawLock,
    seq: AtomicU64,
    index: AtomicU64,
    seed: AtomicU64,
    len: AtomicU64,
    tombs: AtomicU64,
    cursor: AtomicU64,
    in_flight: InFlight,
    retired: AtomicU64,
    retired_shift: AtomicU64,
}

// SAFETY: `#[repr(C)]`, aligned to 8; atomics only (the lock and `InFlight` are atomics
// too); any bytes are a value: every offset and size read from it is checked through
// `Blocks` before use, and every count is only a count.
unsafe impl crate::raw::SharedState for RawDict {}

#[cfg(not(shmproc_loom))]
mod layout_checks {
    use super::*;
    use core::mem::{offset_of, size_of};
    static_assertions::const_assert_eq!(offset_of!(RawDict, seq), 16);
    static_assertions::const_assert_eq!(offset_of!(RawDict, index), 24);
    static_assertions::const_assert_eq!(offset_of!(RawDict, cursor), 56);
    static_assertions::const_assert_eq!(offset_of!(RawDict, in_flight), 64);
    static_assertions::const_assert_eq!(size_of::<RawDict>(), 96);
}

impl Default for RawDict {
    fn default() -> Self {
        RawDict::new(0)
    }
}

impl RawDict {
    /// An empty dict whose keys are hashed with `seed`.
    pub fn new(seed: u64) -> RawDict {
        RawDict {
            lock: RawLock::new(),
            seq: AtomicU64::new(0),
            index: AtomicU64::new(0),
            seed: AtomicU64::new(seed),
            len: AtomicU64::new(0),
            tombs: AtomicU64::new(0),
            cursor: AtomicU64::new(0),
            in_flight: InFlight::default(),
            retired: AtomicU64::new(0),
            retired_shift: AtomicU64::new(0),
        }
    }

    /// Sets the hash key of a dict that nobody else can see yet (a state in zeroed
    /// memory, in tests and models).
    pub fn set_seed(&self, seed: u64) {
        // Relaxed: before the dict is shared (the sharing orders it).
        self.seed.store(seed, Ordering::Relaxed);
    }

    /// Live entries (a snapshot).
    pub fn len(&self) -> u64 {
        // Relaxed: a snapshot.
        self.len.load(Ordering::Relaxed)
    }

    /// True when the dict holds no entry (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pid of the process that holds the writer lock (a snapshot, for inspection).
    pub fn writer(&self) -> Option<u32> {
        self.lock.holder()
    }

    /// Slots of the index (0 when there is none), and tombstones in it (a snapshot, for
    /// inspection).
    pub fn slots_and_tombs(&self) -> (u64, u64) {
        // Relaxed (both): a snapshot.
        let (off, shift) = unpack(self.index.load(Ordering::Relaxed));
        let slots = if off == 0 || shift > u64::from(MAX_SHIFT) {
            0
        } else {
            1u64 << shift
        };
        (slots, self.tombs.load(Ordering::Relaxed))
    }
}

/// A key and its value, as the byte dict's `items` and `popitem` give them.
pub type Item = (Vec<u8>, Vec<u8>);

/// Why an operation on a dict failed. Nothing was changed, unless the method says
/// otherwise (`clear`, which empties the dict all the same; the typed and serde
/// `popitem`, which remove the entry that does not decode).
///
/// Reads return errors too: a read that meets damage (an offset or a length that fails
/// its check even with the writer lock held) is [`DictError::Corrupt`], never a made-up
/// "absent".
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DictError {
    /// The arena could not give the memory for the entry (or for the larger index that
    /// the entry needs).
    OutOfSpace {
        /// Bytes asked for.
        requested: u64,
        /// Bytes the arena had left.
        available: u64,
    },
    /// The dict's memory does not hold together: a peer wrote over it.
    Corrupt(String),
    /// A key or value could not be encoded or decoded (serde layer), or a stored value
    /// has the wrong size for the typed layer.
    Codec(String),
}

impl fmt::Display for DictError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DictError::OutOfSpace {
                requested,
                available,
            } => write!(
                f,
                "the arena has no room for {requested} more bytes of dict ({available} \
                 available): remove entries, or make the arena with a larger limit \
                 (Arena::builder().limit(..))"
            ),
            DictError::Corrupt(why) => write!(
                f,
                "the dict's shared memory is damaged ({why}): another process wrote over \
                 it; clear() or make a new dict"
            ),
            DictError::Codec(why) => write!(
                f,
                "a key or value could not be encoded or decoded: {why} (do all processes \
                 use the dict with the same key and value types?)"
            ),
        }
    }
}

impl std::error::Error for DictError {}

impl From<Error> for DictError {
    fn from(e: Error) -> DictError {
        match e {
            Error::OutOfSpace {
                requested,
                available,
            } => DictError::OutOfSpace {
                requested,
                available,
            },
            e => DictError::Corrupt(e.to_string()),
        }
    }
}

/// The 64-bit hash of `key` under the dict's `seed`: SipHash-1-3 with the key
/// `(seed, f(seed))`. The same in every process and every build.
#[inline]
pub fn hash(seed: u64, key: &[u8]) -> u64 {
    siphasher::sip::SipHasher13::new_with_keys(seed, seed.rotate_left(32) ^ 0x6469_6374_7368_6d70)
        .hash(key)
}

/// The meta word of a live slot for a key of hash `h`.
#[inline]
fn live_meta(h: u64) -> u64 {
    (h & !3) | LIVE
}

#[inline]
fn is_live(meta: u64) -> bool {
    meta & 3 == LIVE
}

/// The home slot of a live meta word.
#[inline]
fn home(meta: u64, mask: usize) -> usize {
    (meta >> 2) as usize & mask
}

/// The most entries plus tombstones an index of `2^shift` slots holds: 3/4 of it, and
/// always one slot less than all (so every probe meets an empty slot).
fn max_load(shift: u32) -> u64 {
    let slots = 1u64 << shift;
    slots - (slots / 4).max(1)
}

/// The smallest index that holds `n` entries.
fn shift_for(n: u64) -> Option<u32> {
    (MIN_SHIFT..=MAX_SHIFT).find(|&s| n <= max_load(s))
}

/// The index word: the index block's offset and its `shift`.
#[inline]
fn unpack(index: u64) -> (u64, u64) {
    (index & !(INDEX_ALIGN - 1), index & (INDEX_ALIGN - 1))
}

/// Up to 8 bytes as a little-endian word, zero-padded.
#[inline]
fn pack(bytes: &[u8]) -> u64 {
    match <[u8; 8]>::try_from(bytes) {
        // The common case, without a variable-length copy.
        Ok(full) => u64::from_le_bytes(full),
        Err(_) => {
            let mut b = [0u8; 8];
            let n = bytes.len().min(8);
            b[..n].copy_from_slice(&bytes[..n]);
            u64::from_le_bytes(b)
        }
    }
}

/// Words that `len` bytes take.
#[inline]
fn words_for(len: u64) -> u64 {
    len.div_ceil(8)
}

/// Bytes of the entry block for a key and a value of these lengths, if it can be had.
fn entry_bytes(key: usize, value: usize) -> Result<u64, DictError> {
    let words = words_for(key as u64)
        .checked_add(words_for(value as u64))
        .and_then(|w| w.checked_add(ENTRY_HEADER))
        .and_then(|w| w.checked_mul(8))
        .filter(|b| *b <= MAX_BLOCK);
    words.ok_or(DictError::OutOfSpace {
        requested: (key as u64).saturating_add(value as u64),
        available: 0,
    })
}

/// A read that did not hold together (a torn copy, or an offset that failed its check):
/// the seqlock reader retries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Torn;

impl From<Error> for Torn {
    fn from(_: Error) -> Torn {
        Torn
    }
}

/// A read that did not hold together even with the writer lock held: no writer can be
/// changing the dict then, so an offset or a length failed its check because a peer
/// wrote over the dict (or a bug did).
#[cold]
fn torn_under_lock(what: &str) -> DictError {
    DictError::Corrupt(format!(
        "{what}: an offset or a length in its index or an entry lies outside the arena's \
         memory (read with the writer lock held)"
    ))
}

// ---------------------------------------------------------------------------------------
// Crash hooks.

#[cfg(any(test, fuzzing, shmproc_loom))]
pub use super::crash::CrashAfter;
pub use super::crash::{Hook, Live};

/// The error a writer stopped by its hook returns (never in the real build).
#[cold]
fn killed() -> DictError {
    DictError::Corrupt("the writer was stopped by a test hook".into())
}

// ---------------------------------------------------------------------------------------
// The index.

/// An index block: `2^shift` slots of two words, at offset `off`.
#[derive(Clone, Copy)]
struct View<'b> {
    off: u64,
    shift: u32,
    words: &'b [AtomicU64],
}

impl<'b> View<'b> {
    /// The index at `off` with `2^shift` slots, if its words lie in the memory.
    fn at<B: Blocks>(blocks: &'b B, off: u64, shift: u64) -> Result<View<'b>, Torn> {
        if !(u64::from(MIN_SHIFT)..=u64::from(MAX_SHIFT)).contains(&shift) {
            return Err(Torn);
        }
        let words = blocks.words(off, 2u64 << shift)?;
        Ok(View {
            off,
            shift: shift as u32,
            words,
        })
    }

    #[inline]
    fn slots(&self) -> usize {
        1 << self.shift
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots() - 1
    }

    /// The meta word of slot `i` (`i` is masked by every caller: in bounds).
    #[inline]
    fn meta(&self, i: usize) -> &'b AtomicU64 {
        &self.words[2 * (i & self.mask())]
    }

    /// The link word of slot `i`.
    #[inline]
    fn link(&self, i: usize) -> &'b AtomicU64 {
        &self.words[2 * (i & self.mask()) + 1]
    }
}

/// Where a probe under the lock found the key, or where it would go.
struct Probe {
    /// The slot holding the key, and its entry's offset.
    found: Option<(usize, u64)>,
    /// The first tombstone or empty slot on the key's path.
    free: Option<usize>,
    /// The offset of the first entry on the key's path whose slot has the key's hash but
    /// whose words fail their checks (a scribble): the key may be there, damaged.
    damaged: Option<u64>,
}

impl Probe {
    /// The key's slot and entry; `None` when it is absent; an error when it is not
    /// found but a damaged entry with its hash lies on its path (it may be the key's:
    /// "absent" would be a guess).
    fn found_or_damaged(&self) -> Result<Option<(usize, u64)>, DictError> {
        match (self.found, self.damaged) {
            (Some(f), _) => Ok(Some(f)),
            (None, None) => Ok(None),
            (None, Some(off)) => Err(damaged_entry(off)),
        }
    }
}

/// The error for an entry whose words fail their checks (lock held).
#[cold]
fn damaged_entry(off: u64) -> DictError {
    DictError::Corrupt(format!(
        "the entry at offset {off} does not hold together (its lengths or its block lie \
         outside the arena's memory)"
    ))
}

/// A key found by a reader: its entry's offset, and its value's length (as read; still
/// to be checked).
struct Found {
    off: u64,
    key_len: u64,
    value_len: u64,
}

// ---------------------------------------------------------------------------------------
// The table.

/// The algorithm over a [`RawDict`] and the [`Blocks`] it owns.
///
/// Public so that `loom-tests/` and the fuzzer can drive it; the
/// [`SharedDict`](crate::SharedDict) handle wraps it (over the arena).
pub struct DictTable<'a, B: Blocks, L: Liveness, H: Hook = Live> {
    raw: &'a RawDict,
    blocks: &'a B,
    who: L,
    spin: SpinPolicy,
    hook: H,
}

/// Holds the writer lock; releases it when dropped (also on a panic in a closure), unless
/// the hook says the writer died.
struct WriteGuard<'t, 'a, B: Blocks, L: Liveness, H: Hook> {
    t: &'t DictTable<'a, B, L, H>,
}

impl<B: Blocks, L: Liveness, H: Hook> Drop for WriteGuard<'_, '_, B, L, H> {
    fn drop(&mut self) {
        if self.t.hook.alive() {
            self.t.raw.lock.unlock();
        }
    }
}

impl<'a, B: Blocks, L: Liveness> DictTable<'a, B, L, Live> {
    /// The dict `raw`, whose blocks come from `blocks`, used by `who`.
    #[inline]
    pub fn new(raw: &'a RawDict, blocks: &'a B, who: L, spin: SpinPolicy) -> Self {
        DictTable {
            raw,
            blocks,
            who,
            spin,
            hook: Live,
        }
    }
}

#[cfg(any(test, fuzzing, shmproc_loom))]
impl<'a, 'h, B: Blocks, L: Liveness> DictTable<'a, B, L, &'h CrashAfter> {
    /// As [`new`](DictTable::new), with every shared write of a writer going through
    /// `hook` (which may stop it part-way, as a kill would).
    pub fn with_hook(
        raw: &'a RawDict,
        blocks: &'a B,
        who: L,
        spin: SpinPolicy,
        hook: &'h CrashAfter,
    ) -> Self {
        DictTable {
            raw,
            blocks,
            who,
            spin,
            hook,
        }
    }
}

impl<'a, B: Blocks, L: Liveness, H: Hook> DictTable<'a, B, L, H> {
    // ---- shared helpers ----------------------------------------------------------------

    /// The hash of `key` in this dict.
    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        // Relaxed: written once before the dict was published (the directory's
        // Release/Acquire, or a fork, ordered it).
        hash(self.raw.seed.load(Ordering::Relaxed), key)
    }

    /// The index as the state names it, if its words lie in the memory. Readers call it
    /// inside a seqlock read (the pair may be torn: the words check bounds it, the
    /// sequence check throws it away); writers under the lock.
    #[inline]
    fn index_view(&self) -> Result<Option<View<'a>>, Torn> {
        // Relaxed: inside a seqlock read (validated by `read`) or under the lock.
        let word = self.raw.index.load(Ordering::Relaxed);
        if word == 0 {
            return Ok(None);
        }
        let (off, shift) = unpack(word);
        View::at(self.blocks, off, shift).map(Some)
    }

    /// The checked entry header at `off` (key length, value length) with `key_words`
    /// words of key after it, if they lie in the memory.
    #[inline]
    fn entry_words(&self, off: u64, key_words: u64) -> Result<&'a [AtomicU64], Torn> {
        Ok(self.blocks.words(off, ENTRY_HEADER + key_words)?)
    }

    /// Whether the entry at `off` holds `key`; if so its value's length. Safe on torn
    /// data: every word it reads was bounds-checked first, and it only compares.
    #[inline]
    fn key_at(&self, off: u64, key: &[u8]) -> Result<Option<u64>, Torn> {
        let kw = words_for(key.len() as u64);
        let words = match self.entry_words(off, kw) {
            Ok(w) => w,
            // The key may be shorter than ours, at the very end of the memory: look at
            // the header alone before calling the read torn.
            Err(Torn) => {
                let head = self.entry_words(off, 0)?;
                // Relaxed: as below.
                if head[0].load(Ordering::Relaxed) != key.len() as u64 {
                    return Ok(None);
                }
                return Err(Torn);
            }
        };
        // Relaxed (all): inside a seqlock read (validated) or under the lock.
        if words[0].load(Ordering::Relaxed) != key.len() as u64 {
            return Ok(None);
        }
        let same = key
            .chunks(8)
            .zip(&words[ENTRY_HEADER as usize..])
            .all(|(c, w)| w.load(Ordering::Relaxed) == pack(c));
        Ok(same.then(|| words[1].load(Ordering::Relaxed)))
    }

    /// Copies `len` bytes from `words` into `out` (replacing its contents).
    #[inline]
    fn copy_bytes(words: &[AtomicU64], len: usize, out: &mut Vec<u8>) {
        out.clear();
        out.resize(len, 0);
        let mut chunks = out.chunks_exact_mut(8);
        for (chunk, word) in (&mut chunks).zip(words) {
            // Relaxed: inside a seqlock read (validated by the caller) or under the lock.
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
        }
        let tail = chunks.into_remainder();
        if let (false, Some(word)) = (tail.is_empty(), words.get(len / 8)) {
            // Relaxed: as above.
            let bytes = word.load(Ordering::Relaxed).to_le_bytes();
            tail.copy_from_slice(&bytes[..tail.len()]);
        }
    }

    /// Copies the value of the entry at `found` into `out`, after checking that its
    /// words lie in the memory.
    #[inline]
    fn copy_value(&self, found: &Found, out: &mut Vec<u8>) -> Result<(), Torn> {
        let first = ENTRY_HEADER + words_for(found.key_len);
        let at = found.off.checked_add(first * 8).ok_or(Torn)?;
        let len = usize::try_from(found.value_len).map_err(|_| Torn)?;
        let words = self.blocks.words(at, words_for(found.value_len))?;
        Self::copy_bytes(words, len, out);
        Ok(())
    }

    /// Copies the key and value of the entry at `off`: for iteration, where lengths are
    /// not known beforehand, so both are bounded by the entry's block as the heap
    /// records it (a torn copy cannot make a huge buffer).
    fn copy_entry(&self, off: u64, key: &mut Vec<u8>, value: &mut Vec<u8>) -> Result<(), Torn> {
        let head = self.entry_words(off, 0)?;
        // Relaxed (both): inside a seqlock read (validated) or under the lock.
        let (klen, vlen) = (
            head[0].load(Ordering::Relaxed),
            head[1].load(Ordering::Relaxed),
        );
        let need = words_for(klen)
            .checked_add(words_for(vlen))
            .and_then(|w| w.checked_add(ENTRY_HEADER))
            .and_then(|w| w.checked_mul(8))
            .ok_or(Torn)?;
        if self.blocks.block_len(off)? < need {
            return Err(Torn);
        }
        let kw = self.entry_words(off, words_for(klen))?;
        Self::copy_bytes(&kw[ENTRY_HEADER as usize..], klen as usize, key);
        self.copy_value(
            &Found {
                off,
                key_len: klen,
                value_len: vlen,
            },
            value,
        )
    }

    // ---- reader side -------------------------------------------------------------------

    /// Runs `f` as a seqlock read until it holds together; after the spin budget runs
    /// out, once more with the writer lock held. `f` may run several times and must
    /// tolerate torn data (it only copies and compares, with every offset checked).
    #[inline]
    fn read<R>(&self, mut f: impl FnMut() -> Result<R, Torn>) -> Result<R, Torn> {
        // At least two optimistic attempts, whatever the policy: a reader that meets one
        // write in progress usually succeeds at the next.
        let attempts = SpinPolicy {
            rounds: self.spin.rounds.max(1) + 1,
            ..self.spin
        };
        let read = attempts.attempts(|| {
            // Acquire: pairs with the Release store in `end_write`: a reader that starts
            // from that value sees every store its writer made before it.
            let s1 = self.raw.seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                let r = f();
                // Acquire fence: pairs with the Release fence in `begin_write` (the
                // module's protocol table): if `f` saw any store of a later write, the
                // load below sees that write's odd `seq` (or later).
                fence(Ordering::Acquire);
                // Relaxed: ordered by the fence above.
                if self.raw.seq.load(Ordering::Relaxed) == s1 {
                    if let Ok(r) = r {
                        return Round::Done(r);
                    }
                }
            }
            Round::Again
        });
        match read {
            Some(r) => Ok(r),
            None => self.read_locked(f),
        }
    }

    #[cold]
    fn read_locked<R>(&self, mut f: impl FnMut() -> Result<R, Torn>) -> Result<R, Torn> {
        let _g = self.lock();
        f()
    }

    /// Finds `key` (meta `want`) in `view`: inside a seqlock read or under the lock.
    #[inline]
    fn find(&self, view: &View<'a>, key: &[u8], want: u64) -> Result<Option<Found>, Torn> {
        let mut i = home(want, view.mask());
        for _ in 0..view.slots() {
            // Relaxed (both): inside `read` (validated) or under the lock.
            let m = view.meta(i).load(Ordering::Relaxed);
            if m == EMPTY {
                return Ok(None);
            }
            if m == want {
                let off = view.link(i).load(Ordering::Relaxed);
                if let Some(value_len) = self.key_at(off, key)? {
                    return Ok(Some(Found {
                        off,
                        key_len: key.len() as u64,
                        value_len,
                    }));
                }
            }
            i = i.wrapping_add(1);
        }
        Ok(None)
    }

    /// Copies the value of `key` into `out` (reusing its allocation); false when absent.
    ///
    /// # Errors
    /// [`DictError::Corrupt`] when the read does not hold together even with the writer
    /// lock held (a peer wrote over the index or the key's entry); `out` then holds no
    /// value of the key.
    #[inline]
    pub fn get(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool, DictError> {
        let want = live_meta(self.hash(key));
        self.read(|| {
            let Some(view) = self.index_view()? else {
                return Ok(false);
            };
            match self.find(&view, key, want)? {
                Some(found) => self.copy_value(&found, out).map(|()| true),
                None => Ok(false),
            }
        })
        .map_err(|Torn| torn_under_lock("get"))
    }

    /// True when `key` is present.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn contains(&self, key: &[u8]) -> Result<bool, DictError> {
        let want = live_meta(self.hash(key));
        self.read(|| match self.index_view()? {
            Some(view) => Ok(self.find(&view, key, want)?.is_some()),
            None => Ok(false),
        })
        .map_err(|Torn| torn_under_lock("contains"))
    }

    /// Live entries (a snapshot).
    pub fn len(&self) -> usize {
        self.raw.len() as usize
    }

    /// True when the dict has no entries (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries the index holds before it grows (0 before the first insert).
    pub fn capacity(&self) -> usize {
        match self.raw.slots_and_tombs().0 {
            0 => 0,
            slots => max_load(slots.trailing_zeros()) as usize,
        }
    }

    /// A consistent copy of every entry (one seqlock read of the whole dict; with a busy
    /// writer, once with the lock held).
    ///
    /// # Errors
    /// [`DictError::Corrupt`] when an entry or the index does not hold together even
    /// with the writer lock held (a peer wrote over it).
    pub fn items(&self) -> Result<Vec<Item>, DictError> {
        self.read(|| {
            let Some(view) = self.index_view()? else {
                return Ok(Vec::new());
            };
            let mut all = Vec::with_capacity(self.len().min(view.slots()));
            for i in 0..view.slots() {
                // Relaxed (both): inside `read` (validated) or under the lock.
                if !is_live(view.meta(i).load(Ordering::Relaxed)) {
                    continue;
                }
                let off = view.link(i).load(Ordering::Relaxed);
                let (mut k, mut v) = (Vec::new(), Vec::new());
                self.copy_entry(off, &mut k, &mut v)?;
                all.push((k, v));
            }
            Ok(all)
        })
        .map_err(|Torn| torn_under_lock("items"))
    }

    // ---- writer side -------------------------------------------------------------------

    /// Takes the writer lock; repairs what a dead writer left first.
    fn lock(&self) -> WriteGuard<'_, 'a, B, L, H> {
        // Never times out without a deadline.
        let how = self
            .raw
            .lock
            .lock(&self.who, None, self.spin)
            .unwrap_or(Acquired::Normal);
        let guard = WriteGuard { t: self };
        if how == Acquired::OwnerDied || self.needs_repair() {
            // A repair stopped by the hook leaves the rest to the next holder; the
            // operation that follows stops at its first write.
            let _ = self.repair();
        }
        guard
    }

    /// Whether a writer left something unfinished (it died, or a peer scribbled).
    #[inline]
    fn needs_repair(&self) -> bool {
        // Relaxed (all): only lock holders write these, and the lock's Acquire ordered us
        // after the previous holder's last store.
        self.raw.seq.load(Ordering::Relaxed) & 1 == 1
            || self.raw.retired.load(Ordering::Relaxed) != 0
            || self.raw.in_flight.blocks() != [0, 0]
    }

    /// Asks the hook for the next write.
    #[inline(always)]
    fn step(&self) -> Result<(), DictError> {
        if self.hook.allow() {
            Ok(())
        } else {
            Err(killed())
        }
    }

    /// One shared write of the writer (lock held).
    #[inline(always)]
    fn put(&self, word: &AtomicU64, value: u64) -> Result<(), DictError> {
        self.step()?;
        // Relaxed: lock held. Stores a reader can see sit between `begin_write` and
        // `end_write`, whose fence and Release store order them for readers; the lock's
        // Release / Acquire orders every store for the next writer.
        word.store(value, Ordering::Relaxed);
        Ok(())
    }

    /// Reads a word the writer owns (lock held).
    #[inline(always)]
    fn get_word(word: &AtomicU64) -> u64 {
        // Relaxed: lock held; only lock holders write the dict's words, and the lock's
        // Acquire ordered us after the previous holder's stores.
        word.load(Ordering::Relaxed)
    }

    /// Step 1-2 of the writer: `seq` odd, then a Release fence. Returns the odd value.
    #[inline]
    fn begin_write(&self) -> Result<u64, DictError> {
        let s = Self::get_word(&self.raw.seq) | 1;
        self.step()?;
        // Relaxed store, then the Release fence: pairs with the reader's Acquire fence in
        // `read`. A reader whose relaxed loads see any store made after this fence also
        // sees this odd `seq` (or later) in its second load, and retries.
        self.raw.seq.store(s, Ordering::Relaxed);
        fence(Ordering::Release);
        Ok(s)
    }

    /// Step 4 of the writer: `seq` even again.
    #[inline]
    fn end_write(&self, odd: u64) -> Result<(), DictError> {
        self.step()?;
        // Release: pairs with the reader's Acquire load of `seq` in `read`: a reader that
        // starts from this value sees every store made before it.
        self.raw.seq.store(odd.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// The index, checked against its block (lock held).
    fn writer_view(&self) -> Result<Option<View<'a>>, DictError> {
        let corrupt = || {
            let (off, shift) = unpack(Self::get_word(&self.raw.index));
            DictError::Corrupt(format!(
                "its index (offset {off}, 2^{shift} slots) is not a block of the arena"
            ))
        };
        match self.index_view() {
            Ok(None) => Ok(None),
            Ok(Some(v)) => match self.blocks.block_len(v.off) {
                Ok(n) if n >= 16u64 << v.shift => Ok(Some(v)),
                _ => Err(corrupt()),
            },
            Err(Torn) => Err(corrupt()),
        }
    }

    /// Probes for `key` (lock held, so nothing is torn; offsets are still checked).
    fn probe(&self, view: &View<'a>, key: &[u8], want: u64) -> Probe {
        let mut free = None;
        let mut damaged = None;
        let mut i = home(want, view.mask());
        for _ in 0..view.slots() {
            let m = Self::get_word(view.meta(i));
            if m == EMPTY {
                return Probe {
                    found: None,
                    free: free.or(Some(i & view.mask())),
                    damaged,
                };
            }
            if m == TOMB {
                free = free.or(Some(i & view.mask()));
            } else if m == want {
                let off = Self::get_word(view.link(i));
                // An entry that fails its checks (a scribble) is passed over, and noted:
                // a reader of the key reports it (`found_or_damaged`); an insert puts
                // the key in a free slot.
                match self.key_at(off, key) {
                    Ok(Some(_)) => {
                        return Probe {
                            found: Some((i & view.mask(), off)),
                            free,
                            damaged,
                        }
                    }
                    Ok(None) => {}
                    Err(Torn) => damaged = damaged.or(Some(off)),
                }
            }
            i = i.wrapping_add(1);
        }
        Probe {
            found: None,
            free,
            damaged,
        }
    }

    /// Writes the entry for `key` -> `value` into the (unpublished) block at `off`.
    fn write_entry(&self, off: u64, key: &[u8], value: &[u8]) -> Result<(), DictError> {
        let kw = words_for(key.len() as u64);
        let words = self
            .blocks
            .words(off, ENTRY_HEADER + kw + words_for(value.len() as u64))?;
        // The whole block is one step for the hook: nothing reaches it yet.
        self.step()?;
        let (head, rest) = words.split_at(ENTRY_HEADER as usize);
        let (kwords, vwords) = rest.split_at(kw as usize);
        // Relaxed (all): the block is not reachable yet; `begin_write`'s fence and
        // `end_write`'s Release store publish it with the slot that links it.
        head[0].store(key.len() as u64, Ordering::Relaxed);
        head[1].store(value.len() as u64, Ordering::Relaxed);
        for (w, c) in kwords.iter().zip(key.chunks(8)) {
            w.store(pack(c), Ordering::Relaxed);
        }
        let mut full = value.chunks_exact(8);
        for (w, c) in vwords.iter().zip(&mut full) {
            w.store(pack(c), Ordering::Relaxed);
        }
        if !full.remainder().is_empty() {
            if let Some(w) = vwords.last() {
                w.store(pack(full.remainder()), Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Whether one more entry in slot `free` (an empty one, or a tombstone) keeps the
    /// index within its load.
    fn fits_one(&self, view: &View<'a>, free: usize) -> bool {
        if Self::get_word(view.meta(free)) == TOMB {
            return true;
        }
        let used = Self::get_word(&self.raw.len).saturating_add(Self::get_word(&self.raw.tombs));
        used < max_load(view.shift)
    }

    /// Inserts or replaces, lock held. Returns whether a value was replaced.
    fn insert_locked(&self, key: &[u8], value: &[u8], want: u64) -> Result<bool, DictError> {
        let size = entry_bytes(key.len(), value.len())?;
        if let Some(view) = self.writer_view()? {
            let p = self.probe(&view, key, want);
            if let Some((slot, old)) = p.found {
                self.replace_entry(&view, slot, old, key, value, size)?;
                return Ok(true);
            }
            if let Some(slot) = p.free.filter(|&s| self.fits_one(&view, s)) {
                self.add_entry(&view, slot, key, value, want, size)?;
                return Ok(false);
            }
        }
        self.make_room(1)?;
        let view = self
            .writer_view()?
            .ok_or_else(|| DictError::Corrupt("no index after growing it".into()))?;
        let slot = self
            .probe(&view, key, want)
            .free
            .ok_or_else(|| DictError::Corrupt("no free slot after growing".into()))?;
        self.add_entry(&view, slot, key, value, want, size)?;
        Ok(false)
    }

    /// A new key into the free slot `slot`.
    fn add_entry(
        &self,
        view: &View<'a>,
        slot: usize,
        key: &[u8],
        value: &[u8],
        want: u64,
        size: u64,
    ) -> Result<(), DictError> {
        let link = view.link(slot);
        if Self::get_word(link) != 0 {
            // A slot that is not live names no block, but for a scribble (a dead
            // writer's leftover is freed by the repair): free it, or forget it.
            self.step()?;
            if self.blocks.free_from(link).is_err() {
                self.put(link, 0)?;
            }
        }
        let was_tomb = Self::get_word(view.meta(slot)) == TOMB;
        // Named by the slot's link from the start: a writer killed from here until the
        // slot turns live leaves a block that only a non-live slot names, which the
        // repair frees.
        self.step()?;
        let off = self
            .blocks
            .alloc_into(link, size, ENTRY_ALIGN, false)
            .map_err(DictError::from)?;
        self.write_entry(off, key, value)?;
        let len = Self::get_word(&self.raw.len);
        let tombs = Self::get_word(&self.raw.tombs);
        let s = self.begin_write()?;
        self.put(view.meta(slot), want)?;
        self.put(&self.raw.len, len.saturating_add(1))?;
        if was_tomb {
            self.put(&self.raw.tombs, tombs.saturating_sub(1))?;
        }
        self.end_write(s)
    }

    /// A new value for the key in `slot` (entry `old`): a new entry, swapped in.
    fn replace_entry(
        &self,
        view: &View<'a>,
        slot: usize,
        old: u64,
        key: &[u8],
        value: &[u8],
        size: u64,
    ) -> Result<(), DictError> {
        let f = &self.raw.in_flight;
        self.step()?;
        let new = f.alloc_uninit(self.blocks, size, ENTRY_ALIGN)?;
        self.write_entry(new, key, value)?;
        self.step()?;
        f.drop_begin(old);
        let s = self.begin_write()?;
        self.put(view.link(slot), new)?;
        self.end_write(s)?;
        self.step()?;
        f.linked();
        self.finish_drop()
    }

    /// Frees the block `in_flight.dropping` names (unlinked now); a block the heap does
    /// not know (a scribble) is forgotten.
    fn finish_drop(&self) -> Result<(), DictError> {
        self.step()?;
        if self.raw.in_flight.drop_end(self.blocks).is_err() {
            // `settle` forgets what it cannot free.
            self.step()?;
            self.raw.in_flight.settle(self.blocks, |_| true);
        }
        Ok(())
    }

    /// Removes the live entry in `slot` of `view`, lock held: unlinks it (one store of
    /// its meta, in the seqlock window), then frees it.
    fn remove_slot(&self, view: &View<'a>, slot: usize) -> Result<(), DictError> {
        let len = Self::get_word(&self.raw.len);
        let mut tombs = Self::get_word(&self.raw.tombs);
        let next_empty = Self::get_word(view.meta(slot.wrapping_add(1))) == EMPTY;
        let s = self.begin_write()?;
        if next_empty {
            // Nothing probes past an empty slot: this one, and the tombstones before it,
            // can be empty too.
            self.put(view.meta(slot), EMPTY)?;
            let mut i = slot;
            for _ in 1..view.slots() {
                i = i.wrapping_sub(1) & view.mask();
                if Self::get_word(view.meta(i)) != TOMB {
                    break;
                }
                self.put(view.meta(i), EMPTY)?;
                tombs = tombs.saturating_sub(1);
            }
        } else {
            self.put(view.meta(slot), TOMB)?;
            tombs = tombs.saturating_add(1);
        }
        self.put(&self.raw.tombs, tombs)?;
        self.put(&self.raw.len, len.saturating_sub(1))?;
        self.end_write(s)?;
        // The entry is unlinked: only this slot's link names it until the free, which
        // zeroes the link in the same heap operation.
        self.step()?;
        if self.blocks.free_from(view.link(slot)).is_err() {
            self.put(view.link(slot), 0)?;
        }
        Ok(())
    }

    /// Makes the index hold `extra` more entries: a new index of the right size, built
    /// beside the old one and published with one store (readers go on with the old one
    /// meanwhile).
    fn make_room(&self, extra: u64) -> Result<(), DictError> {
        let len = Self::get_word(&self.raw.len);
        let need = len.saturating_add(extra);
        // Half full at most after a rebuild, so that growth (or tombstones) forces the
        // next one only after as many inserts again: amortised O(1). Growth from a full
        // index (3/4 of `2^s` slots) so doubles it.
        let shift = (MIN_SHIFT..=MAX_SHIFT)
            .find(|&s| need.saturating_mul(2) <= 1u64 << s)
            .or_else(|| shift_for(need))
            .ok_or(DictError::OutOfSpace {
                requested: need.saturating_mul(16),
                available: 0,
            })?;
        self.resize(shift)
    }

    /// Makes the index `2^shift` slots (lock held).
    fn resize(&self, shift: u32) -> Result<(), DictError> {
        let f = &self.raw.in_flight;
        let old = self.writer_view()?;
        self.step()?;
        let new = f.alloc(self.blocks, 16u64 << shift, INDEX_ALIGN)?;
        let view = match View::at(self.blocks, new, u64::from(shift)) {
            Ok(v) => v,
            Err(Torn) => {
                return Err(DictError::Corrupt(format!(
                    "a new index at {new} is not in the memory"
                )))
            }
        };
        // The copy into the unpublished index is one step for the hook.
        self.step()?;
        let mut moved = 0u64;
        if let Some(old) = &old {
            for i in 0..old.slots() {
                let m = Self::get_word(old.meta(i));
                if !is_live(m) {
                    continue;
                }
                let link = Self::get_word(old.link(i));
                let mut j = home(m, view.mask());
                let mut placed = false;
                for _ in 0..view.slots() {
                    if Self::get_word(view.meta(j)) == EMPTY {
                        // Relaxed (both): the new index is not reachable yet; the
                        // publication below orders it for readers.
                        view.meta(j).store(m, Ordering::Relaxed);
                        view.link(j).store(link, Ordering::Relaxed);
                        placed = true;
                        break;
                    }
                    j = j.wrapping_add(1);
                }
                if !placed || moved >= max_load(shift) {
                    // More live slots than the count said: a scribble. Leave the dict
                    // as it is (the new index goes back).
                    self.step()?;
                    f.settle(self.blocks, |_| false);
                    return Err(DictError::Corrupt(
                        "more live entries than its count".into(),
                    ));
                }
                moved += 1;
            }
            self.step()?;
            f.drop_begin(old.off);
        }
        let s = self.begin_write()?;
        self.put(&self.raw.index, new | u64::from(shift))?;
        self.put(&self.raw.tombs, 0)?;
        self.put(&self.raw.len, moved)?;
        self.end_write(s)?;
        self.step()?;
        f.linked();
        if old.is_some() {
            self.finish_drop()?;
        }
        Ok(())
    }

    /// Inserts `key` -> `value`; returns true when it replaced a value.
    ///
    /// # Errors
    /// [`DictError::OutOfSpace`] when the arena cannot hold the entry (or the larger
    /// index it needs); [`DictError::Corrupt`] when a peer wrote over the dict.
    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<bool, DictError> {
        let want = live_meta(self.hash(key));
        let _g = self.lock();
        self.insert_locked(key, value, want)
    }

    /// Removes `key`; returns its value into `out` and true if it was there.
    ///
    /// # Errors
    /// [`DictError::Corrupt`] when the index, or the key's entry, does not hold together
    /// (a peer wrote over it): the entry is left where it is (its value cannot be
    /// handed back; [`clear`](Self::clear) mends the dict, and so does an
    /// [`insert`](Self::insert) over the key when only the value was damaged).
    pub fn remove(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool, DictError> {
        let want = live_meta(self.hash(key));
        let _g = self.lock();
        let Some(view) = self.writer_view()? else {
            return Ok(false);
        };
        let Some((slot, off)) = self.probe(&view, key, want).found_or_damaged()? else {
            return Ok(false);
        };
        self.copy_entry(off, &mut Vec::new(), out)
            .map_err(|Torn| damaged_entry(off))?;
        self.remove_slot(&view, slot)?;
        Ok(true)
    }

    /// Removes some entry and returns it (Python's `popitem`; which one is not defined:
    /// the dict keeps no order). `None` when empty.
    ///
    /// # Errors
    /// [`DictError::Corrupt`] when the index, or the entry it would pop, does not hold
    /// together (a peer wrote over it): nothing is removed.
    pub fn pop_any(&self) -> Result<Option<Item>, DictError> {
        let _g = self.lock();
        let Some(view) = self.writer_view()? else {
            return Ok(None);
        };
        let start = Self::get_word(&self.raw.cursor) as usize;
        let Some(slot) = (0..view.slots())
            .map(|n| start.wrapping_add(n) & view.mask())
            .find(|&i| is_live(Self::get_word(view.meta(i))))
        else {
            return Ok(None);
        };
        let (mut k, mut v) = (Vec::new(), Vec::new());
        let off = Self::get_word(view.link(slot));
        self.copy_entry(off, &mut k, &mut v)
            .map_err(|Torn| damaged_entry(off))?;
        self.remove_slot(&view, slot)?;
        self.put(&self.raw.cursor, slot as u64)?;
        Ok(Some((k, v)))
    }

    /// Removes every entry. The index goes at once (one store); the entries are freed
    /// after, the lock still held, while readers already see an empty dict.
    ///
    /// # Errors
    /// [`DictError::Corrupt`] when a block the dict names is not one the heap can free
    /// (a peer wrote over it, or over the heap; the dict is empty all the same, and what
    /// could not be freed is forgotten).
    pub fn clear(&self) -> Result<(), DictError> {
        let _g = self.lock();
        self.clear_locked()
    }

    fn clear_locked(&self) -> Result<(), DictError> {
        let (off, shift) = unpack(Self::get_word(&self.raw.index));
        if off != 0 {
            self.put(&self.raw.retired_shift, shift)?;
            self.put(&self.raw.retired, off)?;
        }
        // Also with no index: the counts start again from a known state.
        let s = self.begin_write()?;
        self.put(&self.raw.index, 0)?;
        self.put(&self.raw.len, 0)?;
        self.put(&self.raw.tombs, 0)?;
        self.end_write(s)?;
        match drain_retired(self.raw, self.blocks, &self.hook)? {
            0 => Ok(()),
            lost => Err(DictError::Corrupt(format!(
                "{lost} of the blocks its index named were not blocks the arena's heap \
                 could free (the dict is empty; they were forgotten)"
            ))),
        }
    }

    /// Makes room for `additional` more entries without growing on the way (Python has
    /// none; `HashMap::reserve`).
    ///
    /// # Errors
    /// [`DictError::OutOfSpace`]; [`DictError::Corrupt`].
    pub fn reserve(&self, additional: usize) -> Result<(), DictError> {
        let _g = self.lock();
        let view = self.writer_view()?;
        let len = Self::get_word(&self.raw.len);
        let used = len.saturating_add(Self::get_word(&self.raw.tombs));
        let need = used.saturating_add(additional as u64);
        if view.is_some_and(|v| need <= max_load(v.shift)) {
            return Ok(());
        }
        let shift =
            shift_for(len.saturating_add(additional as u64)).ok_or(DictError::OutOfSpace {
                requested: (additional as u64).saturating_mul(16),
                available: 0,
            })?;
        self.resize(shift.max(view.map_or(0, |v| v.shift)))
    }

    /// Inserts every pair under one hold of the lock (Python's `d.update(other)`).
    ///
    /// # Errors
    /// As [`insert`](Self::insert); the pairs before the one that failed stay inserted.
    pub fn update<'k>(
        &self,
        pairs: impl IntoIterator<Item = (&'k [u8], &'k [u8])>,
    ) -> Result<(), DictError> {
        let _g = self.lock();
        for (k, v) in pairs {
            self.insert_locked(k, v, live_meta(self.hash(k)))?;
        }
        Ok(())
    }

    /// Atomic read-modify-write of one entry: `f` gets the current value (or `None`) and
    /// returns the new one (or `None` to remove the entry). Returns the previous value.
    /// `f` runs once, with the writer lock held but without stalling readers.
    ///
    /// # Errors
    /// As [`insert`](Self::insert), for the value `f` returned; the entry is then
    /// unchanged.
    pub fn update_with(
        &self,
        key: &[u8],
        f: impl FnOnce(Option<&[u8]>) -> Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>, DictError> {
        let want = live_meta(self.hash(key));
        let _g = self.lock();
        let view = self.writer_view()?;
        let found = match view {
            Some(v) => self
                .probe(&v, key, want)
                .found_or_damaged()?
                .map(|f| (v, f)),
            None => None,
        };
        let old = match found {
            Some((_, (_, off))) => {
                let mut v = Vec::new();
                self.copy_entry(off, &mut Vec::new(), &mut v)
                    .map_err(|Torn| damaged_entry(off))?;
                Some(v)
            }
            None => None,
        };
        match (f(old.as_deref()), found) {
            (Some(new), _) => {
                self.insert_locked(key, &new, want)?;
            }
            (None, Some((view, (slot, _)))) => self.remove_slot(&view, slot)?,
            (None, None) => {}
        }
        Ok(old)
    }

    /// The value of `key`, inserting `default` first if the key is absent (Python's
    /// `setdefault`). Returns the value and whether it was inserted.
    ///
    /// # Errors
    /// As [`insert`](Self::insert).
    pub fn setdefault(
        &self,
        key: &[u8],
        default: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool, DictError> {
        let want = live_meta(self.hash(key));
        let _g = self.lock();
        if let Some(view) = self.writer_view()? {
            if let Some((_, off)) = self.probe(&view, key, want).found_or_damaged()? {
                self.copy_entry(off, &mut Vec::new(), out)
                    .map_err(|Torn| damaged_entry(off))?;
                return Ok(false);
            }
        }
        self.insert_locked(key, default, want)?;
        out.clear();
        out.extend_from_slice(default);
        Ok(true)
    }

    // ---- repair ------------------------------------------------------------------------

    /// After a writer died (or a peer scribbled), lock held: finish a clear, free what
    /// only non-live slots name, settle the in-flight words, recount, and make `seq` even
    /// so readers resume.
    #[cold]
    fn repair(&self) -> Result<(), DictError> {
        let seq = Self::get_word(&self.raw.seq);
        let s = if seq & 1 == 1 {
            seq
        } else {
            self.begin_write()?
        };
        let retired = Self::get_word(&self.raw.retired);
        if retired != 0 && retired == unpack(Self::get_word(&self.raw.index)).0 {
            // A clear that died before publishing: the index is still the dict's.
            self.put(&self.raw.retired, 0)?;
            self.put(&self.raw.retired_shift, 0)?;
        }
        drain_retired(self.raw, self.blocks, &self.hook)?;
        let view = match self.writer_view() {
            Ok(v) => v,
            Err(_) => {
                // An index that is no block of ours: forget it (and what it named).
                self.put(&self.raw.index, 0)?;
                None
            }
        };
        let counts = match &view {
            Some(v) => sweep_index(v, self.raw, self.blocks, &self.hook, false)?,
            None => Counts::default(),
        };
        self.put(&self.raw.len, counts.live)?;
        self.put(&self.raw.tombs, counts.tombs)?;
        self.step()?;
        let index = view.map_or(0, |v| v.off);
        self.raw
            .in_flight
            .settle(self.blocks, |off| off == index || counts.reaches(off));
        self.end_write(s)
    }
}

/// What a sweep of the index found.
#[derive(Default)]
struct Counts {
    live: u64,
    tombs: u64,
    /// Whether a live slot links each of the in-flight blocks.
    linked: [Option<u64>; 2],
}

impl Counts {
    fn reaches(&self, off: u64) -> bool {
        self.linked.contains(&Some(off))
    }
}

/// One pass over the index (lock held, or in the finalizer): frees what slots that are
/// not live name (or, with `all`, what every slot names), turns unknown meta words into
/// tombstones, and counts.
fn sweep_index<B: Blocks, H: Hook>(
    view: &View<'_>,
    raw: &RawDict,
    blocks: &B,
    hook: &H,
    all: bool,
) -> Result<Counts, DictError> {
    let step = || if hook.allow() { Ok(()) } else { Err(killed()) };
    let in_flight = raw.in_flight.blocks();
    let mut c = Counts::default();
    for i in 0..view.slots() {
        // Relaxed (all): under the lock, or in the finalizer (nobody else holds the dict).
        let m = view.meta(i).load(Ordering::Relaxed);
        let link = view.link(i).load(Ordering::Relaxed);
        if is_live(m) && link != 0 {
            c.live += 1;
            for (k, &f) in in_flight.iter().enumerate() {
                if f != 0 && f == link {
                    c.linked[k] = Some(f);
                }
            }
            if !all {
                continue;
            }
        } else if m != EMPTY && m != TOMB {
            // Live without an entry, or no meta a writer writes: a scribble.
            step()?;
            view.meta(i).store(TOMB, Ordering::Relaxed);
        }
        if view.meta(i).load(Ordering::Relaxed) == TOMB {
            c.tombs += 1;
        }
        if link != 0 {
            step()?;
            if blocks.free_from(view.link(i)).is_err() {
                // Not a block (a scribble): forget it.
                view.link(i).store(0, Ordering::Relaxed);
            }
        }
    }
    Ok(c)
}

/// Frees the index `retired` names and every entry its slots still link (an interrupted
/// or just-published `clear`). Each free zeroes its link, so a run stopped part-way is
/// finished by the next. Returns how many words named something that is no block the
/// heap could free (a scribble), which were forgotten instead.
fn drain_retired<B: Blocks, H: Hook>(
    raw: &RawDict,
    blocks: &B,
    hook: &H,
) -> Result<u64, DictError> {
    let step = || if hook.allow() { Ok(()) } else { Err(killed()) };
    // Relaxed (all): under the lock, or in the finalizer.
    let off = raw.retired.load(Ordering::Relaxed);
    if off == 0 {
        return Ok(0);
    }
    let mut lost = 0;
    let shift = raw.retired_shift.load(Ordering::Relaxed);
    let checked = View::at(blocks, off, shift)
        .ok()
        .filter(|v| blocks.block_len(v.off).is_ok_and(|n| n >= 16u64 << v.shift));
    if let Some(view) = checked {
        for i in 0..view.slots() {
            if view.link(i).load(Ordering::Relaxed) != 0 {
                step()?;
                if blocks.free_from(view.link(i)).is_err() {
                    view.link(i).store(0, Ordering::Relaxed);
                    lost += 1;
                }
            }
        }
    }
    step()?;
    if checked.is_none() || blocks.free_from(&raw.retired).is_err() {
        // Not a block we can free (a scribble): forget it.
        raw.retired.store(0, Ordering::Relaxed);
        lost += 1;
    }
    step()?;
    raw.retired_shift.store(0, Ordering::Relaxed);
    Ok(lost)
}

/// Frees every block the dict `raw` owns: the arena calls it when the dict's last
/// reference goes (without the dict's lock: no one else can reach the dict; a writer that
/// died inside it may have left it held). Idempotent: a run killed part-way is finished
/// by the next.
pub fn finalize(raw: &RawDict, blocks: &impl Blocks) {
    let _ = finalize_with(raw, blocks, &Live);
}

/// [`finalize`], each shared write through `hook`.
#[doc(hidden)]
pub fn finalize_with<B: Blocks, H: Hook>(
    raw: &RawDict,
    blocks: &B,
    hook: &H,
) -> Result<(), DictError> {
    let step = || if hook.allow() { Ok(()) } else { Err(killed()) };
    // Relaxed (all): the finalizer runs alone (under the arena's metadata lock, with no
    // reference left); the last holder's stores were ordered by its release of the
    // object (an RMW on the reference count) or by its death and the sweep.
    let (index, shift) = unpack(raw.index.load(Ordering::Relaxed));
    if raw.retired.load(Ordering::Relaxed) == index && index != 0 {
        step()?;
        raw.retired.store(0, Ordering::Relaxed);
    }
    drain_retired(raw, blocks, hook)?;
    let view = View::at(blocks, index, shift)
        .ok()
        .filter(|v| index != 0 && blocks.block_len(v.off).is_ok_and(|n| n >= 16u64 << v.shift));
    // The in-flight blocks first: one that a slot links is freed with the slots below.
    let mut linked = Counts::default();
    if let Some(v) = &view {
        let in_flight = raw.in_flight.blocks();
        for i in 0..v.slots() {
            let (m, link) = (
                v.meta(i).load(Ordering::Relaxed),
                v.link(i).load(Ordering::Relaxed),
            );
            for (k, &f) in in_flight.iter().enumerate() {
                if is_live(m) && f != 0 && f == link {
                    linked.linked[k] = Some(f);
                }
            }
        }
    }
    step()?;
    raw.in_flight
        .settle(blocks, |off| off == index || linked.reaches(off));
    if let Some(v) = &view {
        sweep_index(v, raw, blocks, hook, true)?;
    }
    if index != 0 {
        // The index word is no bare offset: the block is freed from `dropping`.
        step()?;
        raw.in_flight.drop_begin(index);
        step()?;
        // Relaxed: the finalizer's, when nobody holds the dict.
        raw.index.store(0, Ordering::Relaxed);
        step()?;
        if raw.in_flight.drop_end(blocks).is_err() {
            raw.in_flight.settle(blocks, |_| true);
        }
    } else if raw.index.load(Ordering::Relaxed) != 0 {
        // A word with an offset of 0: a scribble. (Relaxed, this load and store: the
        // finalizer's, when nobody holds the dict.)
        raw.index.store(0, Ordering::Relaxed);
    }
    step()?;
    // Relaxed (both): the finalizer's, when nobody holds the dict.
    raw.len.store(0, Ordering::Relaxed);
    raw.tombs.store(0, Ordering::Relaxed);
    Ok(())
}
