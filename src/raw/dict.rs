//! The open-addressing table of [`SharedDict`](crate::SharedDict)(crate::SharedDict) and its seqlock.
//! A fixed-capacity hash table in one arena block: byte-string keys and values of bounded
//! size (set at creation), a [typed layer](crate::TypedDict) for plain data, and a serde layer
//! (`SerdeDict`, feature `serde`, postcard encoding).
//!
//! # Concurrency: one writer at a time, readers never block each other
//!
//! Writers take the dict's robust [`RawLock`]. Readers take no lock: the table is guarded
//! by a **sequence lock**. A writer makes `seq` odd before it changes the table and even
//! again after; a reader notes `seq`, copies what it needs with relaxed atomic loads,
//! and keeps the copy only if `seq` was even and has not changed. A reader thus writes
//! nothing to shared memory: any number of readers in any number of processes proceed in
//! parallel, and a writer is never slowed by readers.
//!
//! Why a seqlock rather than per-bucket locks: lookups in a hash table are short and
//! read-mostly; per-bucket reader-writer locks would make every `get` write a shared
//! cache line (the classic reader-count ping-pong), which is what the seqlock avoids. The
//! cost is that a reader retries while a write is in progress; a reader that keeps
//! failing (a writer preempted mid-write, or a writer that died) falls back to taking the
//! lock, so no reader spins for ever. The `update_with` closure runs with the lock held
//! but *before* the sequence turns odd, so even a slow read-modify-write does not stall
//! readers.
//!
//! The seqlock protocol (Boehm, "Can seqlocks get along with programming language memory
//! models?", 2012), in [`DictTable`]:
//!
//! | step   | writer (lock held)                   | reader                                  |
//! |--------|--------------------------------------|-----------------------------------------|
//! | 1      | `seq.store(s + 1, Relaxed)`          | `s1 = seq.load(Acquire)`; odd: retry    |
//! | 2      | `fence(Release)`                     | copy words with `load(Relaxed)`         |
//! | 3      | table words: `store(Relaxed)`        | `fence(Acquire)`                        |
//! | 4      | `seq.store(s + 2, Release)`          | `s2 = seq.load(Relaxed)`; keep if `s1 == s2` |
//!
//! Every byte of the table is an `AtomicU64`, so a torn copy is never undefined
//! behaviour, only a wrong answer that the sequence check throws away. Nothing read under
//! a possibly-torn copy is trusted: slot indices are masked, lengths are clamped to the
//! table's limits before they size a copy, and every probe loop is bounded by the number
//! of slots.
//!
//! # The table
//!
//! Open addressing with linear probing over `slots` (a power of two, twice the capacity
//! rounded up). A slot is `stride` words:
//!
//! | word            | contents                                                        |
//! |-----------------|-----------------------------------------------------------------|
//! | 0: `meta`       | bits 0-1 state (0 empty, 1 full, 2 deleted), 2-31 key length, 32-63 value length |
//! | 1: `hash`       | the key's 64-bit hash                                           |
//! | 2..2+kw         | key bytes, little-endian, zero-padded                           |
//! | 2+kw..          | value bytes                                                     |
//!
//! A removed entry leaves a "deleted" marker so later probes continue past it; a marker
//! followed by an empty slot becomes empty itself (and so do the markers before it), so
//! markers do not pile up at the end of probe runs. An insert reuses the first marker on
//! its probe path.
//!
//! # A writer that dies
//!
//! Every change that adds or removes an entry is published by a single store of the
//! slot's `meta` word, written last: a writer killed mid-insert leaves at most an unused
//! slot. The next process to take the lock learns of the death from the lock
//! ([`OwnerDied`](crate::OwnerDied)), recounts the entries, and makes `seq` even again,
//! so readers resume. The one thing that is not atomic is overwriting the value of an
//! existing key: a writer killed in the middle of that leaves that one value torn.

use crate::error::{Error, Result};
use crate::raw::lock::{Acquired, RawLock, RobustLock};
use crate::sync::liveness::Liveness;
use crate::sync::spin::{Round, SpinPolicy};
use crate::sync::{fence, AtomicU32, AtomicU64, Ordering};
use std::fmt;

/// Largest key a dict can be made for, in bytes.
pub const MAX_KEY: usize = 4096;
/// Largest value a dict can be made for, in bytes (1 MiB).
pub const MAX_VALUE: usize = 1 << 20;
/// Largest capacity (entries).
pub const MAX_CAPACITY: usize = 1 << 24;
/// Offset of the table in the block: the header sits before it.
pub const TABLE_OFFSET: usize = 64;

const EMPTY: u64 = 0;
const FULL: u64 = 1;
const DELETED: u64 = 2;
const STATE_MASK: u64 = 3;

/// The dict's shared header. The table of `AtomicU64` words follows at
/// [`TABLE_OFFSET`].
///
/// The geometry fields are written once, before the dict is published in the arena
/// directory, and are validated by every process that opens it ([`DictGeometry::validate`]).
#[repr(C)]
pub struct RawDict {
    /// Serialises writers; robust against a writer that dies.
    lock: RawLock,
    /// The sequence word: odd while a writer changes the table.
    seq: AtomicU64,
    /// Live entries (written under the lock; read as a snapshot).
    len: AtomicU64,
    capacity: AtomicU32,
    slots: AtomicU32,
    max_key: AtomicU32,
    max_value: AtomicU32,
}

// SAFETY: `#[repr(C)]`, aligned to at most 128; atomics only; its geometry is validated (`DictGeometry::validate`) before any table index is computed from it.
unsafe impl crate::raw::SharedState for RawDict {}

#[cfg(not(shmproc_loom))]
mod layout_checks {
    use super::*;
    use core::mem::{offset_of, size_of};
    static_assertions::const_assert!(size_of::<RawDict>() <= TABLE_OFFSET);
    static_assertions::const_assert_eq!(offset_of!(RawDict, seq), 16);
    static_assertions::const_assert_eq!(offset_of!(RawDict, len), 24);
    static_assertions::const_assert_eq!(offset_of!(RawDict, capacity), 32);
    static_assertions::const_assert_eq!(offset_of!(RawDict, max_value), 44);
}

/// The shape of a table: how many entries, slots and bytes per key and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DictGeometry {
    /// Most live entries.
    pub capacity: u32,
    /// Slots (a power of two, at least `capacity + 1`).
    pub slots: u32,
    /// Longest key, in bytes.
    pub max_key: u32,
    /// Longest value, in bytes.
    pub max_value: u32,
}

impl DictGeometry {
    /// The geometry for `capacity` entries of keys up to `max_key` and values up to
    /// `max_value` bytes.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a capacity of 0 or above [`MAX_CAPACITY`], a
    /// `max_key` of 0 or above [`MAX_KEY`], or a `max_value` above [`MAX_VALUE`].
    pub fn new(capacity: usize, max_key: usize, max_value: usize) -> Result<DictGeometry> {
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(Error::InvalidArgument(format!(
                "dict capacity {capacity} is outside 1..={MAX_CAPACITY}: give the number of \
                 entries it must hold"
            )));
        }
        if max_key == 0 || max_key > MAX_KEY {
            return Err(Error::InvalidArgument(format!(
                "maximum key size {max_key} is outside 1..={MAX_KEY} bytes: give the length \
                 of the longest key (hash longer keys down to one that fits)"
            )));
        }
        if max_value > MAX_VALUE {
            return Err(Error::InvalidArgument(format!(
                "maximum value size {max_value} is above {MAX_VALUE} bytes: keep larger \
                 values elsewhere (a SharedMemory segment, an Array) and store where they are"
            )));
        }
        let slots = (capacity * 2).next_power_of_two().max(2);
        let g = DictGeometry {
            capacity: capacity as u32,
            slots: slots as u32,
            max_key: max_key as u32,
            max_value: max_value as u32,
        };
        g.validate()?;
        Ok(g)
    }

    /// Checks a geometry read from shared memory.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when it is not one that [`DictGeometry::new`] makes.
    pub fn validate(&self) -> Result<()> {
        let ok = self.capacity >= 1
            && self.capacity as usize <= MAX_CAPACITY
            && self.slots.is_power_of_two()
            && self.slots > self.capacity
            && self.slots as usize <= 2 * MAX_CAPACITY
            && self.max_key >= 1
            && self.max_key as usize <= MAX_KEY
            && self.max_value as usize <= MAX_VALUE;
        if ok {
            Ok(())
        } else {
            Err(Error::Corrupt(format!(
                "dict geometry {self:?} is not one that a dict is made with"
            )))
        }
    }

    /// Words of a slot's key area.
    pub fn key_words(&self) -> usize {
        (self.max_key as usize).div_ceil(8)
    }

    fn value_words(&self) -> usize {
        (self.max_value as usize).div_ceil(8)
    }

    /// Words per slot.
    pub fn stride(&self) -> usize {
        2 + self.key_words() + self.value_words()
    }

    /// Words of the whole table.
    pub fn table_words(&self) -> usize {
        self.slots as usize * self.stride()
    }

    /// Bytes of the whole block (header and table).
    pub fn block_bytes(&self) -> usize {
        TABLE_OFFSET + self.table_words() * 8
    }
}

impl RawDict {
    /// Entries in the table (a snapshot, for inspection).
    pub fn len(&self) -> u64 {
        // Relaxed: a snapshot.
        self.len.load(Ordering::Relaxed)
    }

    /// True when the table holds no entry (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An empty dict's header with geometry `g` (for loom models; arena dicts are made
    /// in zeroed memory by the handle).
    pub fn new(g: DictGeometry) -> RawDict {
        RawDict {
            lock: RawLock::new(),
            seq: AtomicU64::new(0),
            len: AtomicU64::new(0),
            capacity: AtomicU32::new(g.capacity),
            slots: AtomicU32::new(g.slots),
            max_key: AtomicU32::new(g.max_key),
            max_value: AtomicU32::new(g.max_value),
        }
    }

    /// The geometry recorded in the header (not yet validated).
    pub fn geometry(&self) -> DictGeometry {
        // Relaxed: written once before the dict was published; the directory's
        // Release/Acquire on the entry state (or the model's thread spawn) orders it.
        DictGeometry {
            capacity: self.capacity.load(Ordering::Relaxed),
            slots: self.slots.load(Ordering::Relaxed),
            max_key: self.max_key.load(Ordering::Relaxed),
            max_value: self.max_value.load(Ordering::Relaxed),
        }
    }
}

/// Why an operation on a dict failed. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DictError {
    /// The dict holds `capacity` entries and the key is new.
    Full {
        /// The dict's capacity.
        capacity: usize,
    },
    /// The key is longer than the dict allows.
    KeyTooLong {
        /// The key's length.
        len: usize,
        /// The dict's limit.
        max: usize,
    },
    /// The value is longer than the dict allows.
    ValueTooLong {
        /// The value's length.
        len: usize,
        /// The dict's limit.
        max: usize,
    },
    /// A key or value could not be encoded or decoded (serde layer), or a stored value
    /// has the wrong size for the typed layer.
    Codec(String),
}

impl fmt::Display for DictError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DictError::Full { capacity } => write!(
                f,
                "dict is full ({capacity} entries): remove entries or create a larger dict"
            ),
            DictError::KeyTooLong { len, max } => write!(
                f,
                "key of {len} bytes is longer than this dict's limit of {max} bytes: make \
                 the dict with a larger max_key, or use shorter keys"
            ),
            DictError::ValueTooLong { len, max } => write!(
                f,
                "value of {len} bytes is longer than this dict's limit of {max} bytes: make \
                 the dict with a larger max_value, or store smaller values"
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

/// The 64-bit hash of a key: fixed (no per-process seed), so every process probes alike.
fn hash(key: &[u8]) -> u64 {
    let mut h = 0x9e37_79b9_7f4a_7c15u64 ^ key.len() as u64;
    for chunk in key.chunks(8) {
        h = (h ^ pack(chunk)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 29;
    }
    // fmix64 of MurmurHash3.
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
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

#[inline]
fn meta(state: u64, key_len: usize, value_len: usize) -> u64 {
    state | (key_len as u64) << 2 | (value_len as u64) << 32
}

#[inline]
fn meta_key_len(m: u64) -> usize {
    ((m >> 2) & 0x3fff_ffff) as usize
}

#[inline]
fn meta_value_len(m: u64) -> usize {
    (m >> 32) as usize
}

/// The algorithm: a [`RawDict`] header, its table of words, and the validated geometry.
///
/// Public so that `loom-tests/` can model-check it; the [`SharedDict`](crate::SharedDict) handle wraps it.
pub struct DictTable<'a, L: Liveness> {
    raw: &'a RawDict,
    words: &'a [AtomicU64],
    g: DictGeometry,
    /// `g.stride()` and `g.key_words()`, cached: they index every word access.
    stride: usize,
    kw: usize,
    who: L,
    spin: SpinPolicy,
}

/// Holds the writer lock; releases it when dropped (also on a panic in a closure).
struct WriteGuard<'t, 'a, L: Liveness> {
    t: &'t DictTable<'a, L>,
}

impl<L: Liveness> Drop for WriteGuard<'_, '_, L> {
    fn drop(&mut self) {
        self.t.raw.lock.unlock();
    }
}

/// Where a key is, or where it would go.
struct Probe {
    found: Option<usize>,
    free: Option<usize>,
}

impl<'a, L: Liveness> DictTable<'a, L> {
    /// The table over `raw` and `words` with geometry `g`, which the caller validated
    /// against `words` when it opened the block (the handle's fast path: no re-check).
    pub(crate) fn with_geometry(
        raw: &'a RawDict,
        words: &'a [AtomicU64],
        g: DictGeometry,
        who: L,
        spin: SpinPolicy,
    ) -> Self {
        debug_assert!(g.table_words() <= words.len());
        DictTable {
            raw,
            words,
            g,
            stride: g.stride(),
            kw: g.key_words(),
            who,
            spin,
        }
    }

    /// The table over `raw` and `words`, after validating `raw`'s geometry against
    /// `words`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the geometry is invalid or needs more words than given.
    pub fn new(raw: &'a RawDict, words: &'a [AtomicU64], who: L) -> Result<Self> {
        let g = raw.geometry();
        g.validate()?;
        if g.table_words() > words.len() {
            return Err(Error::Corrupt(format!(
                "dict geometry {g:?} needs {} words, the block has {}",
                g.table_words(),
                words.len()
            )));
        }
        Ok(DictTable {
            raw,
            words,
            g,
            stride: g.stride(),
            kw: g.key_words(),
            who,
            spin: SpinPolicy::default(),
        })
    }

    /// Sets how many optimistic read attempts (and writer-lock spins) to make before a
    /// reader falls back to the lock.
    pub fn set_spin(&mut self, spin: SpinPolicy) {
        self.spin = spin;
    }

    /// The geometry.
    pub fn geometry(&self) -> DictGeometry {
        self.g
    }

    #[inline]
    fn word(&self, slot: usize, w: usize) -> &AtomicU64 {
        // Both are local values: slot < slots (masked), w < stride; the table holds
        // slots * stride words (checked in `new`), so indexing cannot fail.
        &self.words[slot * self.stride + w]
    }

    // ---- writer side -------------------------------------------------------------------

    fn lock(&self) -> WriteGuard<'_, 'a, L> {
        // Never times out without a deadline.
        let how = self
            .raw
            .lock
            .lock(&self.who, None, self.spin)
            .unwrap_or(Acquired::Normal);
        let guard = WriteGuard { t: self };
        // Relaxed: only lock holders write `seq`, and the lock's Acquire ordered us after
        // the previous holder's last store.
        let seq = self.raw.seq.load(Ordering::Relaxed);
        if how == Acquired::OwnerDied || seq & 1 == 1 {
            self.repair(seq);
        }
        guard
    }

    /// After a writer died: recount, and make `seq` even so readers resume.
    #[cold]
    fn repair(&self, seq: u64) {
        let s = if seq & 1 == 1 {
            seq
        } else {
            self.begin_write()
        };
        let mut live = 0;
        for slot in 0..self.g.slots as usize {
            // Relaxed: we hold the lock; nobody else writes the table.
            if self.word(slot, 0).load(Ordering::Relaxed) & STATE_MASK == FULL {
                live += 1;
            }
        }
        self.raw.len.store(live, Ordering::Relaxed);
        self.end_write(s);
    }

    /// Step 1-2 of the writer: `seq` odd, then a Release fence. Returns the odd value.
    #[inline]
    fn begin_write(&self) -> u64 {
        // Relaxed: see `lock`.
        let s = self.raw.seq.load(Ordering::Relaxed) | 1;
        // Relaxed store, then the Release fence: pairs with the reader's Acquire fence in
        // `read`. A reader whose relaxed loads see any table store made after this fence
        // also sees this odd `seq` (or later) in its second load, and retries.
        self.raw.seq.store(s, Ordering::Relaxed);
        fence(Ordering::Release);
        s
    }

    /// Step 4 of the writer: `seq` even again.
    #[inline]
    fn end_write(&self, odd: u64) {
        // Release: pairs with the reader's Acquire load of `seq` in `read`: a reader that
        // starts from this value sees every table store made before it.
        self.raw.seq.store(odd.wrapping_add(1), Ordering::Release);
    }

    /// Probes for `key` (lock held, so no torn reads).
    fn probe(&self, key: &[u8], h: u64) -> Probe {
        let mask = self.g.slots as usize - 1;
        let mut free = None;
        for n in 0..self.g.slots as usize {
            let slot = (h as usize).wrapping_add(n) & mask;
            // Relaxed: lock held; see `lock`.
            let m = self.word(slot, 0).load(Ordering::Relaxed);
            match m & STATE_MASK {
                FULL => {
                    if self.key_matches(slot, m, key, h) {
                        return Probe {
                            found: Some(slot),
                            free,
                        };
                    }
                }
                EMPTY => {
                    return Probe {
                        found: None,
                        free: free.or(Some(slot)),
                    }
                }
                _ => {
                    free = free.or(Some(slot));
                }
            }
        }
        Probe { found: None, free }
    }

    /// True when slot holds `key` (meta `m` already loaded). Safe on torn data: only
    /// compares.
    #[inline]
    fn key_matches(&self, slot: usize, m: u64, key: &[u8], h: u64) -> bool {
        // Relaxed: under the lock, or inside a seqlock read that validates afterwards.
        if meta_key_len(m) != key.len() || self.word(slot, 1).load(Ordering::Relaxed) != h {
            return false;
        }
        key.chunks(8)
            .enumerate()
            .all(|(w, c)| self.word(slot, 2 + w).load(Ordering::Relaxed) == pack(c))
    }

    fn check_sizes(&self, key: &[u8], value_len: usize) -> Result<(), DictError> {
        if key.len() > self.g.max_key as usize {
            return Err(DictError::KeyTooLong {
                len: key.len(),
                max: self.g.max_key as usize,
            });
        }
        if value_len > self.g.max_value as usize {
            return Err(DictError::ValueTooLong {
                len: value_len,
                max: self.g.max_value as usize,
            });
        }
        Ok(())
    }

    fn write_value(&self, slot: usize, value: &[u8]) {
        let kw = self.kw;
        for (w, c) in value.chunks(8).enumerate() {
            // Relaxed: inside begin_write / end_write (see the module's protocol table).
            self.word(slot, 2 + kw + w)
                .store(pack(c), Ordering::Relaxed);
        }
    }

    /// Inserts or replaces, lock held. Returns whether a value was replaced.
    fn insert_locked(&self, key: &[u8], value: &[u8]) -> Result<bool, DictError> {
        let h = hash(key);
        let p = self.probe(key, h);
        if let Some(slot) = p.found {
            let s = self.begin_write();
            self.write_value(slot, value);
            // Relaxed: inside begin_write / end_write.
            self.word(slot, 0)
                .store(meta(FULL, key.len(), value.len()), Ordering::Relaxed);
            self.end_write(s);
            return Ok(true);
        }
        // Relaxed: lock held.
        let len = self.raw.len.load(Ordering::Relaxed);
        let slot = match p.free {
            Some(slot) if len < u64::from(self.g.capacity) => slot,
            _ => {
                return Err(DictError::Full {
                    capacity: self.g.capacity as usize,
                })
            }
        };
        let s = self.begin_write();
        // Relaxed (all): inside begin_write / end_write. `meta` is stored last, so a
        // writer that dies here leaves the slot unused.
        self.word(slot, 1).store(h, Ordering::Relaxed);
        for (w, c) in key.chunks(8).enumerate() {
            self.word(slot, 2 + w).store(pack(c), Ordering::Relaxed);
        }
        self.write_value(slot, value);
        self.word(slot, 0)
            .store(meta(FULL, key.len(), value.len()), Ordering::Relaxed);
        self.raw.len.store(len + 1, Ordering::Relaxed);
        self.end_write(s);
        Ok(false)
    }

    /// Removes the entry in `slot`, lock held.
    fn remove_slot(&self, slot: usize) {
        let mask = self.g.slots as usize - 1;
        let s = self.begin_write();
        // Relaxed (all): inside begin_write / end_write.
        let next = self.word((slot + 1) & mask, 0).load(Ordering::Relaxed);
        if next & STATE_MASK == EMPTY {
            // Nothing probes past an empty slot: this one, and the deleted markers
            // before it, can be empty too.
            let mut i = slot;
            self.word(i, 0).store(EMPTY, Ordering::Relaxed);
            for _ in 1..self.g.slots {
                i = i.wrapping_sub(1) & mask;
                if self.word(i, 0).load(Ordering::Relaxed) & STATE_MASK != DELETED {
                    break;
                }
                self.word(i, 0).store(EMPTY, Ordering::Relaxed);
            }
        } else {
            self.word(slot, 0).store(DELETED, Ordering::Relaxed);
        }
        let len = self.raw.len.load(Ordering::Relaxed);
        self.raw.len.store(len.saturating_sub(1), Ordering::Relaxed);
        self.end_write(s);
    }

    /// Copies the value in `slot` (lock held, or inside a validated read).
    fn copy_value(&self, slot: usize, m: u64, out: &mut Vec<u8>) {
        // Clamp: a torn or hostile meta word cannot size the copy beyond the slot.
        let len = meta_value_len(m).min(self.g.max_value as usize);
        self.copy_words(slot, 2 + self.kw, len, out);
    }

    fn copy_key(&self, slot: usize, m: u64, out: &mut Vec<u8>) {
        let len = meta_key_len(m).min(self.g.max_key as usize);
        self.copy_words(slot, 2, len, out);
    }

    /// Copies `len` bytes from the words of `slot` starting at word `first`; `len` is
    /// already clamped to the field's size.
    #[inline]
    fn copy_words(&self, slot: usize, first: usize, len: usize, out: &mut Vec<u8>) {
        out.clear();
        out.resize(len, 0);
        let base = slot * self.stride + first;
        let words = &self.words[base..base + len.div_ceil(8)];
        let mut chunks = out.chunks_exact_mut(8);
        for (chunk, word) in (&mut chunks).zip(words) {
            // Relaxed: lock held or a seqlock read (validated by the caller).
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
        }
        let tail = chunks.into_remainder();
        if let (false, Some(word)) = (tail.is_empty(), words.last()) {
            // Relaxed: as above.
            let bytes = word.load(Ordering::Relaxed).to_le_bytes();
            tail.copy_from_slice(&bytes[..tail.len()]);
        }
    }

    /// Inserts `key` -> `value`; returns true when it replaced a value.
    ///
    /// # Errors
    /// [`DictError::KeyTooLong`], [`DictError::ValueTooLong`], [`DictError::Full`].
    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<bool, DictError> {
        self.check_sizes(key, value.len())?;
        let _g = self.lock();
        self.insert_locked(key, value)
    }

    /// Removes `key`; returns its value into `out` and true if it was there.
    pub fn remove(&self, key: &[u8], out: &mut Vec<u8>) -> bool {
        if key.len() > self.g.max_key as usize {
            return false;
        }
        let _g = self.lock();
        let h = hash(key);
        match self.probe(key, h).found {
            Some(slot) => {
                // Relaxed: lock held.
                let m = self.word(slot, 0).load(Ordering::Relaxed);
                self.copy_value(slot, m, out);
                self.remove_slot(slot);
                true
            }
            None => false,
        }
    }

    /// Removes every entry.
    pub fn clear(&self) {
        let _g = self.lock();
        let s = self.begin_write();
        for slot in 0..self.g.slots as usize {
            // Relaxed: inside begin_write / end_write.
            self.word(slot, 0).store(EMPTY, Ordering::Relaxed);
        }
        self.raw.len.store(0, Ordering::Relaxed);
        self.end_write(s);
    }

    /// Inserts every pair under one hold of the lock. Sizes are all checked first; on
    /// [`DictError::Full`] the pairs before the one that did not fit stay inserted.
    ///
    /// # Errors
    /// As [`insert`](Self::insert).
    pub fn update<'k>(
        &self,
        pairs: impl IntoIterator<Item = (&'k [u8], &'k [u8])> + Clone,
    ) -> Result<(), DictError> {
        for (k, v) in pairs.clone() {
            self.check_sizes(k, v.len())?;
        }
        let _g = self.lock();
        for (k, v) in pairs {
            self.insert_locked(k, v)?;
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
        self.check_sizes(key, 0)?;
        let _g = self.lock();
        let h = hash(key);
        let p = self.probe(key, h);
        let old = p.found.map(|slot| {
            let mut v = Vec::new();
            // Relaxed: lock held.
            self.copy_value(slot, self.word(slot, 0).load(Ordering::Relaxed), &mut v);
            v
        });
        match (f(old.as_deref()), p.found) {
            (Some(new), _) => {
                self.check_sizes(key, new.len())?;
                self.insert_locked(key, &new)?;
            }
            (None, Some(slot)) => self.remove_slot(slot),
            (None, None) => {}
        }
        Ok(old)
    }

    // ---- reader side -------------------------------------------------------------------

    /// Runs `f` as a seqlock read until it sees a consistent table; after the spin budget
    /// runs out, once more with the writer lock held. `f` may run several times and must
    /// tolerate torn data (it only copies and compares, with bounds).
    #[inline]
    pub fn read<R>(&self, mut f: impl FnMut() -> R) -> R {
        // At least two optimistic attempts, whatever the policy: a reader that meets one
        // write in progress usually succeeds at the next.
        let attempts = SpinPolicy {
            rounds: self.spin.rounds.max(1) + 1,
            ..self.spin
        };
        let read = attempts.attempts(|| {
            // Acquire: pairs with the Release store in `end_write`.
            let s1 = self.raw.seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                let r = f();
                // Acquire fence: pairs with the Release fence in `begin_write` (see the
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
    fn read_locked<R>(&self, mut f: impl FnMut() -> R) -> R {
        let _g = self.lock();
        f()
    }

    /// Finds `key` in a (possibly torn) table; returns its slot and meta word.
    fn find(&self, key: &[u8], h: u64) -> Option<(usize, u64)> {
        let mask = self.g.slots as usize - 1;
        for n in 0..self.g.slots as usize {
            let slot = (h as usize).wrapping_add(n) & mask;
            // Relaxed: inside `read` (validated) or under the lock.
            let m = self.word(slot, 0).load(Ordering::Relaxed);
            match m & STATE_MASK {
                FULL if self.key_matches(slot, m, key, h) => return Some((slot, m)),
                EMPTY => return None,
                _ => {}
            }
        }
        None
    }

    /// Copies the value of `key` into `out`; false when absent.
    pub fn get(&self, key: &[u8], out: &mut Vec<u8>) -> bool {
        if key.len() > self.g.max_key as usize {
            return false;
        }
        let h = hash(key);
        self.read(|| match self.find(key, h) {
            Some((slot, m)) => {
                self.copy_value(slot, m, out);
                true
            }
            None => false,
        })
    }

    /// True when `key` is present.
    pub fn contains(&self, key: &[u8]) -> bool {
        if key.len() > self.g.max_key as usize {
            return false;
        }
        let h = hash(key);
        self.read(|| self.find(key, h).is_some())
    }

    /// The number of entries (a snapshot).
    pub fn len(&self) -> usize {
        // Relaxed: a statistic; clamped, as a peer may have scribbled on it.
        (self.raw.len.load(Ordering::Relaxed) as usize).min(self.g.capacity as usize)
    }

    /// True when the dict has no entries (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A consistent copy of every entry (one seqlock read of the whole table).
    pub fn snapshot(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.read(|| {
            let mut all = Vec::new();
            for slot in 0..self.g.slots as usize {
                // Relaxed: inside `read`.
                let m = self.word(slot, 0).load(Ordering::Relaxed);
                if m & STATE_MASK == FULL && all.len() < self.g.capacity as usize {
                    let (mut k, mut v) = (Vec::new(), Vec::new());
                    self.copy_key(slot, m, &mut k);
                    self.copy_value(slot, m, &mut v);
                    all.push((k, v));
                }
            }
            all
        })
    }
}
