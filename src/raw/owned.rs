//! Blocks that objects own: named by words of shared memory, so that no block is ever
//! allocated that no word names, whoever dies when.
//!
//! An object that holds more than its state block (a dict's index and entries, a list's
//! chunks, a large message) keeps each extra block's offset in a word of shared memory:
//! its state, or a block it already owns. Three rules make that crash-proof, written once
//! here for every object (and for the arena's own tables):
//!
//! 1. **Allocate into a word.** [`Blocks::alloc_into`] stores the new block's offset into
//!    the word inside the same journaled heap operation
//!    ([`RawHeap::alloc_into`](super::heap::RawHeap::alloc_into)): a process killed at
//!    any point leaves either no block, or the block and the word naming it.
//! 2. **Free from a word.** [`Blocks::free_from`] frees the block a word names and clears
//!    the word in one heap operation.
//! 3. **Name what is in flight.** Between allocation and being linked into the object
//!    (written into the slot, the index, the chain), a block is named by an
//!    [`InFlight`]'s `adding` word; between being unlinked and freed, by its `dropping`
//!    word. A writer that dies leaves the object's lock to the next writer
//!    ([`Acquired::OwnerDied`](super::lock::Acquired::OwnerDied)), which calls
//!    [`InFlight::settle`]: what is named there and not reachable from the object is
//!    freed. The object's finalizer settles too, then frees what is reachable.
//!
//! The algorithms see the blocks through the [`Blocks`] trait (the arena implements it;
//! the loom models and unit tests use a heap over a private buffer), so they stay free of
//! arenas and names.

use crate::error::Result;
use crate::sync::{AtomicU64, Ordering};

/// Where an object's extra blocks come from: the arena, or a test's heap.
pub trait Blocks {
    /// Allocates a block of `size` bytes aligned to `align` (zeroed if `zeroed`) and
    /// stores its offset into `word` (a word of the same shared memory) in the same heap
    /// operation.
    ///
    /// # Errors
    /// [`Error::OutOfSpace`](crate::Error::OutOfSpace) when it cannot be had;
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) when `word` is not in the
    /// shared memory; [`Error::Corrupt`](crate::Error::Corrupt) for a damaged heap.
    fn alloc_into(&self, word: &AtomicU64, size: u64, align: u64, zeroed: bool) -> Result<u64>;

    /// Frees the block `word` names and sets `word` to 0, in one heap operation. A word of
    /// 0 is left alone.
    ///
    /// # Errors
    /// [`Error::Corrupt`](crate::Error::Corrupt) when `word` names no allocated block (a
    /// peer wrote it) or the heap is damaged; the word is left as it was.
    fn free_from(&self, word: &AtomicU64) -> Result<()>;

    /// `count` words at `offset`, checked to lie in the shared memory: how an object
    /// reaches the blocks it owns (whose offsets a peer may have scribbled on).
    ///
    /// # Errors
    /// [`Error::Corrupt`](crate::Error::Corrupt) when they do not.
    fn words(&self, offset: u64, count: u64) -> Result<&[AtomicU64]>;

    /// Usable bytes of the allocated block at `offset`.
    ///
    /// # Errors
    /// [`Error::Corrupt`](crate::Error::Corrupt) when `offset` is no allocated block.
    fn block_len(&self, offset: u64) -> Result<u64>;
}

/// Two words of an object's state naming the blocks a writer has in flight (rule 3 of
/// the [module docs](self)). All zero when no writer is inside; written only under the
/// object's own lock.
#[repr(C)]
#[derive(Debug, Default)]
pub struct InFlight {
    /// A block allocated and not yet linked into the object, 0 when none.
    adding: AtomicU64,
    /// A block unlinked from the object and not yet freed, 0 when none.
    dropping: AtomicU64,
}

// SAFETY: `#[repr(C)]`, two atomics; any bytes are a value (offsets read from it are
// checked by the heap before use).
unsafe impl super::SharedState for InFlight {}

impl InFlight {
    /// A new zeroed block of `size` bytes, named by `adding` until [`linked`](Self::linked).
    ///
    /// # Errors
    /// As [`Blocks::alloc_into`].
    pub fn alloc(&self, blocks: &impl Blocks, size: u64, align: u64) -> Result<u64> {
        blocks.alloc_into(&self.adding, size, align, true)
    }

    /// The `adding` word (for an allocator that needs its address, as the arena's own
    /// tables do under the metadata lock).
    pub fn adding_word(&self) -> &AtomicU64 {
        &self.adding
    }

    /// As [`alloc`](Self::alloc), with the bytes left as they were (the caller writes
    /// every byte it will read).
    ///
    /// # Errors
    /// As [`Blocks::alloc_into`].
    pub fn alloc_uninit(&self, blocks: &impl Blocks, size: u64, align: u64) -> Result<u64> {
        blocks.alloc_into(&self.adding, size, align, false)
    }

    /// The block [`alloc`](Self::alloc) gave is linked into the object now.
    pub fn linked(&self) {
        // Relaxed: under the object's lock, which orders it for the next holder.
        self.adding.store(0, Ordering::Relaxed);
    }

    /// Names `off` as dropping, before the caller unlinks it.
    pub fn drop_begin(&self, off: u64) {
        // Relaxed: under the object's lock.
        self.dropping.store(off, Ordering::Relaxed);
    }

    /// Frees the block [`drop_begin`](Self::drop_begin) named (now unlinked).
    ///
    /// # Errors
    /// As [`Blocks::free_from`].
    pub fn drop_end(&self, blocks: &impl Blocks) -> Result<()> {
        blocks.free_from(&self.dropping)
    }

    /// Makes `dest` name the block [`alloc`](Self::alloc) just gave, `new`, and frees the
    /// block it named before (if any): a table replaced by a larger one.
    ///
    /// # Errors
    /// As [`Blocks::free_from`] (the new block is linked either way).
    pub fn replace(&self, blocks: &impl Blocks, dest: &AtomicU64, new: u64) -> Result<()> {
        // Relaxed (all): under the object's lock. `dest` is read by lock-free readers
        // through their own protocol (a seqlock), which its caller runs around this.
        let old = dest.load(Ordering::Relaxed);
        if old != 0 {
            self.drop_begin(old);
        }
        dest.store(new, Ordering::Relaxed);
        self.linked();
        if old != 0 {
            self.drop_end(blocks)?;
        }
        Ok(())
    }

    /// After a writer died inside the object's lock (or before the object is finalized):
    /// frees the blocks in flight that `reachable` says the object does not reach, and
    /// forgets the others.
    pub fn settle(&self, blocks: &impl Blocks, reachable: impl Fn(u64) -> bool) {
        for w in [&self.adding, &self.dropping] {
            // Relaxed: under the object's lock (or the metadata lock, in a finalizer).
            let off = w.load(Ordering::Relaxed);
            if off == 0 {
                continue;
            }
            if reachable(off) || blocks.free_from(w).is_err() {
                w.store(0, Ordering::Relaxed);
            }
        }
    }

    /// The blocks in flight (for a finalizer that must not free them twice).
    pub fn blocks(&self) -> [u64; 2] {
        // Relaxed: under the object's lock or the metadata lock.
        [
            self.adding.load(Ordering::Relaxed),
            self.dropping.load(Ordering::Relaxed),
        ]
    }
}

/// [`Blocks`] over a heap in a private buffer: for unit tests, loom models and fuzzing of
/// the algorithms that own blocks (the arena is the real one).
#[doc(hidden)]
pub struct HeapBlocks {
    _mem: Vec<u128>,
    region: super::heap::Region,
    heap: Box<super::heap::RawHeap>,
}

impl HeapBlocks {
    /// A heap over `len` bytes (a multiple of 16, at least 8 KiB); the first 4 KiB are
    /// left out of the heap, for the caller's own words ([`word`](Self::word)).
    pub fn new(len: u64) -> HeapBlocks {
        // 128 bytes more, so that the region can start 128-aligned (objects' alignment).
        let mut mem = vec![0u128; (len / 16) as usize + 8];
        let base = mem.as_mut_ptr().cast::<u8>();
        let base = base.wrapping_add(base.align_offset(128));
        // SAFETY: `base..base + len` lies in `mem` (at most 112 bytes skipped of the 128
        // extra), 128-aligned, owned by the result with the region, and never moved (a
        // Vec's buffer stays put while it is not resized).
        let region = unsafe { super::heap::Region::new(base, len) }
            .unwrap_or_else(|e| panic!("HeapBlocks::new({len}): {e}"));
        let heap = Box::new(super::heap::RawHeap::new());
        heap.init(&region, 4096, len)
            .unwrap_or_else(|e| panic!("HeapBlocks::new({len}): {e}"));
        HeapBlocks {
            _mem: mem,
            region,
            heap,
        }
    }

    /// The word at `offset` (below 4096 for the caller's own use; anywhere for a test
    /// that inspects blocks).
    pub fn word(&self, offset: u64) -> &AtomicU64 {
        &self.words(offset, 1).expect("a word in the buffer")[0]
    }

    /// The state at `offset` of the buffer (below 4096, 128-aligned or as `T` needs).
    pub fn state<T: super::SharedState>(&self, offset: u64) -> &T {
        let size = core::mem::size_of::<T>() as u64;
        assert!(
            core::mem::align_of::<T>() <= 128
                && offset % core::mem::align_of::<T>() as u64 == 0
                && offset + size <= 4096,
            "a state at {offset:#x} of {size} bytes does not fit the caller's 4 KiB"
        );
        // SAFETY: in the buffer's first 4 KiB (checked), aligned for `T` (checked; the
        // region is 128-aligned and `T`'s alignment, at most 128, divides the offset); `SharedState`
        // promises any bytes are a `T` and that sharing it is sound.
        unsafe { &*self.region.base().add(offset as usize).cast::<T>() }
    }

    /// Blocks allocated now.
    pub fn allocated(&self) -> u64 {
        self.heap.stats().allocated_blocks
    }

    fn offset_of(&self, word: &AtomicU64) -> Result<u64> {
        let at = (word as *const AtomicU64 as usize).wrapping_sub(self.region.base() as usize);
        if at % 8 != 0 || at as u64 + 8 > self.region.size() {
            return Err(crate::Error::InvalidArgument(format!(
                "a word at {at:#x} is not in the buffer"
            )));
        }
        Ok(at as u64)
    }
}

impl std::fmt::Debug for HeapBlocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeapBlocks")
            .field("len", &self.region.size())
            .field("allocated", &self.allocated())
            .finish()
    }
}

fn heap_error(e: super::heap::HeapError) -> crate::Error {
    match e {
        super::heap::HeapError::OutOfSpace {
            requested,
            available,
        } => crate::Error::OutOfSpace {
            requested,
            available,
        },
        e => crate::Error::Corrupt(e.to_string()),
    }
}

impl Blocks for HeapBlocks {
    fn alloc_into(&self, word: &AtomicU64, size: u64, align: u64, zeroed: bool) -> Result<u64> {
        let me = crate::sync::liveness::Procfs;
        self.heap
            .alloc_into(
                &self.region,
                size,
                align,
                zeroed,
                self.offset_of(word)?,
                &me,
                None,
            )
            .map_err(heap_error)
    }

    fn free_from(&self, word: &AtomicU64) -> Result<()> {
        let me = crate::sync::liveness::Procfs;
        self.heap
            .free_from(&self.region, self.offset_of(word)?, &me, None)
            .map(|_| ())
            .map_err(heap_error)
    }

    fn words(&self, offset: u64, count: u64) -> Result<&[AtomicU64]> {
        let end = count.checked_mul(8).and_then(|n| offset.checked_add(n));
        if offset % 8 != 0 || end.is_none_or(|e| e > self.region.size()) {
            return Err(crate::Error::Corrupt(format!(
                "a block of {count} words at {offset:#x} is not in the buffer"
            )));
        }
        // SAFETY: in bounds of the buffer (checked above), 8-aligned; atomics only.
        Ok(unsafe {
            core::slice::from_raw_parts(
                self.region.base().add(offset as usize).cast(),
                count as usize,
            )
        })
    }

    fn block_len(&self, offset: u64) -> Result<u64> {
        self.heap
            .usable_size(&self.region, offset)
            .map_err(heap_error)
    }
}

#[cfg(all(test, not(shmproc_loom)))]
mod tests {
    use super::*;

    #[test]
    fn in_flight_blocks_are_freed_unless_reachable() {
        let b = HeapBlocks::new(1 << 16);
        let f: &InFlight = b.state(16);
        let dest = b.word(8);
        // Allocated and linked: replace frees the old one.
        let t1 = f.alloc(&b, 100, 16).unwrap();
        f.replace(&b, dest, t1).unwrap();
        assert_eq!(f.blocks(), [0, 0]);
        let t2 = f.alloc(&b, 200, 16).unwrap();
        f.replace(&b, dest, t2).unwrap();
        assert_eq!(b.allocated(), 1, "the first table was freed");
        // A writer dies after allocating: settle frees what is not linked.
        let lost = f.alloc(&b, 300, 16).unwrap();
        assert_eq!(f.blocks(), [lost, 0]);
        // Relaxed: a unit test, one thread.
        f.settle(&b, |off| off == dest.load(Ordering::Relaxed));
        assert_eq!(b.allocated(), 1);
        assert_eq!(f.blocks(), [0, 0]);
        // A writer dies after linking, before `linked`: settle keeps it.
        let t3 = f.alloc(&b, 300, 16).unwrap();
        f.drop_begin(t2);
        // Relaxed (both): a unit test, one thread.
        dest.store(t3, Ordering::Relaxed);
        f.settle(&b, |off| off == dest.load(Ordering::Relaxed));
        assert_eq!(b.allocated(), 1, "t3 kept, t2 (unlinked) freed");
        assert!(b.block_len(t3).unwrap() >= 300);
        // Bad words are errors.
        let outside = AtomicU64::new(0);
        assert!(b.alloc_into(&outside, 8, 8, false).is_err());
        assert!(b.words(1 << 16, 1).is_err());
    }
}
