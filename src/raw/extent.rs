//! The published size of a shared file that grows: how a process learns that it may
//! touch more of its mapping.
//!
//! A growing arena maps its whole limit up front, but only the part backed by the file
//! may be touched (past it, a page fault is a `SIGBUS`). The grower, under the arena's
//! metadata lock, extends the file (`ftruncate`), gives the new space to the heap, and
//! then [publishes](Extent::publish) the new size (Release). A process that needs more
//! than it has seen reads the published size (Acquire, [`Seen::get`]) and, when it is
//! larger, asks the kernel for the file's length (`fstat`), which is at least that size:
//! the file was extended before the publication. The published size itself is never
//! trusted (a peer may write anything): a process touches at most the file's length,
//! which the kernel vouches for, and at most its mapping.
//!
//! Why that is enough: anything a process learns from a peer through shared memory (an
//! object's offset, a message's block) was allocated after the growth that made room
//! for it and reached this process through a Release / Acquire pair (the metadata lock,
//! a ring's stamp). So the Acquire load of the size, made after learning it, sees a size
//! that covers it. The loom model `loom-tests/tests/extent.rs` checks exactly that, with
//! the file's length as a sequentially consistent word (system calls on one file are
//! ordered by the kernel).

use crate::sync::{AtomicU64, Ordering};

/// The size a growing file was published at (a word of the shared header).
#[repr(transparent)]
#[derive(Debug)]
pub struct Extent {
    size: AtomicU64,
}

impl Extent {
    /// An extent of `size` bytes.
    pub fn new(size: u64) -> Extent {
        Extent {
            size: AtomicU64::new(size),
        }
    }

    /// Sets the size before the file is shared (its creator, before it publishes the
    /// whole header).
    pub fn init(&self, size: u64) {
        // Relaxed: published with the rest of the header by the creator's Release store
        // of the header's magic number.
        self.size.store(size, Ordering::Relaxed);
    }

    /// Publishes `size`, after the file was extended to it and the space made usable.
    pub fn publish(&self, size: u64) {
        // Release: pairs with the Acquire load in `said`: a process that sees this size
        // finds the file extended (and, through the heap's lock, the space in the heap).
        self.size.store(size, Ordering::Release);
    }

    /// The size published last (a peer's word: an upper bound to check, not a fact).
    pub fn said(&self) -> u64 {
        // Acquire: pairs with the Release store in `publish`.
        self.size.load(Ordering::Acquire)
    }
}

/// What one process knows it may touch of an [`Extent`]'s file: the largest file length
/// it read from the kernel, shared by its threads.
#[derive(Debug, Default)]
pub struct Seen {
    seen: AtomicU64,
}

impl Seen {
    /// A view that has seen `len` bytes (the length the process mapped the file at).
    pub fn new(len: u64) -> Seen {
        Seen {
            seen: AtomicU64::new(len),
        }
    }

    /// Bytes this process may touch: what it has seen, or, when the extent says the file
    /// grew past that, the file's length now (`file_len`, an `fstat`), capped at `limit`
    /// (the mapping).
    #[inline]
    pub fn get(&self, extent: &Extent, file_len: impl FnOnce() -> u64, limit: u64) -> u64 {
        // Relaxed: a process-local cache of a kernel fact; `refresh` only raises it.
        let seen = self.seen.load(Ordering::Relaxed);
        if extent.said() <= seen {
            return seen;
        }
        self.refresh(file_len, limit)
    }

    /// Reads the file's length (`file_len`) and raises the view to it (capped at
    /// `limit`); returns the view.
    #[cold]
    pub fn refresh(&self, file_len: impl FnOnce() -> u64, limit: u64) -> u64 {
        let len = file_len().min(limit);
        // Relaxed: see `get`; a larger value is never replaced by a smaller one.
        self.seen.fetch_max(len, Ordering::Relaxed);
        self.seen.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, not(shmproc_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_view_follows_the_file_not_the_word() {
        let e = Extent::new(4096);
        let s = Seen::new(4096);
        assert_eq!(s.get(&e, || unreachable!("no growth said"), 1 << 20), 4096);
        e.publish(8192);
        assert_eq!(s.get(&e, || 8192, 1 << 20), 8192);
        // A peer that lies: the file decides, and the mapping caps it.
        e.publish(1 << 40);
        assert_eq!(s.get(&e, || 12288, 1 << 20), 12288);
        assert_eq!(s.get(&e, || 1 << 30, 1 << 20), 1 << 20);
        // Never shrinks.
        assert_eq!(s.refresh(|| 4096, 1 << 20), 1 << 20);
    }
}
