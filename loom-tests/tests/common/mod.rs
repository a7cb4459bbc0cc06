//! What the loom models share: a heap of loom words (`LoomBlocks`), the `Blocks` of the
//! algorithms that own blocks (lists, dicts, byte queues), in models. First fit, so a
//! freed block is handed out again at once; its first words poisoned as the real heap's
//! free-list links overwrite them: a reader that raced a free reads garbage, and must
//! throw that read away.
#![allow(dead_code)]

use loom::sync::atomic::{AtomicU64, Ordering};
use shmproc::raw::owned::Blocks;
use shmproc::Error;

/// The offset of the heap's first word (so that 0 is no block).
pub const BASE: u64 = 4096;

/// What a freed block's first two words are overwritten with.
pub const POISON: u64 = 0xdead_dead_dead_dead;

/// A heap of `mem.len()` loom words.
pub struct LoomBlocks {
    mem: Vec<AtomicU64>,
    /// Per word: the length in words of the block that starts there, 0 if none: the
    /// heap's tags, loom atomics as the real ones are atomics of the shared memory (a
    /// reader that checks a block's length reads it under the list's protocol).
    tags: Vec<AtomicU64>,
    /// Per word: whether it is taken (the allocator's own bookkeeping, which no reader
    /// sees).
    taken: loom::sync::Mutex<Vec<bool>>,
}

impl LoomBlocks {
    pub fn new(words: usize) -> LoomBlocks {
        LoomBlocks {
            mem: (0..words).map(|_| AtomicU64::new(0)).collect(),
            tags: (0..words).map(|_| AtomicU64::new(0)).collect(),
            taken: loom::sync::Mutex::new(vec![false; words]),
        }
    }

    pub fn allocated(&self) -> usize {
        // Relaxed: after the model's threads are joined.
        self.tags
            .iter()
            .filter(|t| t.load(Ordering::Relaxed) != 0)
            .count()
    }

    fn index(&self, offset: u64) -> Option<usize> {
        let i = offset.checked_sub(BASE)? / 8;
        (offset % 8 == 0 && i < self.mem.len() as u64).then_some(i as usize)
    }
}

impl Blocks for LoomBlocks {
    fn alloc_into(
        &self,
        word: &AtomicU64,
        size: u64,
        align: u64,
        zeroed: bool,
    ) -> shmproc::Result<u64> {
        let n = size.div_ceil(8).max(1) as usize;
        // The whole operation under the allocator's lock (a loom mutex: it orders one
        // allocator's tags and words for the next, as the real heap's lock does).
        let mut taken = self.taken.lock().unwrap();
        // First fit, aligned to `align` (at least 16 bytes: an even word; `BASE` is
        // aligned to any alignment a model asks for).
        let step = (align / 8).max(2) as usize;
        let at = (0..self.mem.len().saturating_sub(n))
            .step_by(step)
            .find(|&i| taken[i..i + n].iter().all(|&b| !b))
            .ok_or(Error::OutOfSpace {
                requested: size,
                available: 0,
            })?;
        taken[at..at + n].iter_mut().for_each(|b| *b = true);
        // Relaxed: under the lock, as the real heap's tag store (a reader of the list or
        // a queue's consumer orders it through that structure's protocol).
        self.tags[at].store(n as u64, Ordering::Relaxed);
        if zeroed {
            for w in &self.mem[at..at + n] {
                w.store(0, Ordering::Relaxed);
            }
        }
        let off = BASE + at as u64 * 8;
        // Relaxed: the real heap stores it under its own lock; the structure's protocol
        // orders it for its readers and writers.
        word.store(off, Ordering::Relaxed);
        Ok(off)
    }

    fn free_from(&self, word: &AtomicU64) -> shmproc::Result<()> {
        let mut taken = self.taken.lock().unwrap();
        // Relaxed (all): under the allocator's lock, as in `alloc_into`.
        let off = word.load(Ordering::Relaxed);
        if off == 0 {
            return Ok(());
        }
        let at = self
            .index(off)
            .filter(|&i| self.tags[i].load(Ordering::Relaxed) != 0)
            .ok_or_else(|| Error::Corrupt(format!("free of {off:#x}")))?;
        let n = self.tags[at].swap(0, Ordering::Relaxed) as usize;
        taken[at..at + n].iter_mut().for_each(|b| *b = false);
        // A freed block is written at once, as the real heap writes its free-list links
        // into its first 16 bytes: a reader still reading it sees the poison (and must
        // throw that read away).
        for w in &self.mem[at..at + n.min(2)] {
            w.store(POISON, Ordering::Relaxed);
        }
        word.store(0, Ordering::Relaxed);
        Ok(())
    }

    fn words(&self, offset: u64, count: u64) -> shmproc::Result<&[AtomicU64]> {
        let at = offset.wrapping_sub(BASE) / 8;
        match at.checked_add(count) {
            Some(end) if offset >= BASE && offset % 8 == 0 && end <= self.mem.len() as u64 => {
                Ok(&self.mem[at as usize..end as usize])
            }
            _ => Err(Error::Corrupt(format!("{count} words at {offset:#x}"))),
        }
    }

    fn block_len(&self, offset: u64) -> shmproc::Result<u64> {
        self.index(offset)
            // Relaxed: as the real heap reads a tag (the caller validates what it read).
            .map(|i| self.tags[i].load(Ordering::Relaxed) * 8)
            .filter(|&n| n != 0)
            .ok_or_else(|| Error::Corrupt(format!("no block at {offset:#x}")))
    }
}
