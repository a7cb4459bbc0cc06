//! The arena's side of owned blocks (`raw::owned`): it implements [`Blocks`], and it runs
//! each kind's finalizer before an object's block is freed.

use super::holders::MetaGuard;
use super::{Arena, ObjectKind};
use crate::error::{Error, Result};
use crate::raw::heap::HeapError;
use crate::raw::owned::Blocks;
use crate::sync::liveness::Procfs;
use crate::sync::AtomicU64;

impl Blocks for Arena {
    fn alloc_into(&self, word: &AtomicU64, size: u64, align: u64, zeroed: bool) -> Result<u64> {
        let dest = self.offset_of(word)?;
        self.alloc_at(size, align, zeroed, Some(dest), None)
    }

    fn free_from(&self, word: &AtomicU64) -> Result<()> {
        let dest = self.offset_of(word)?;
        self.header()
            .heap
            .free_from(&self.region(), dest, &Procfs, self.deadline())
            .map(|_| ())
            .map_err(super::heap_error)
    }

    fn words(&self, offset: u64, count: u64) -> Result<&[AtomicU64]> {
        let end = count.checked_mul(8).and_then(|n| offset.checked_add(n));
        if offset % 8 != 0 || offset == 0 || end.is_none_or(|e| e > self.accessible()) {
            return Err(Error::Corrupt(format!(
                "a block of {count} words at {offset:#x} is not in the arena"
            )));
        }
        // SAFETY: `[offset, offset + 8 * count)` lies in the accessible part of the mapping
        // (checked above), which stays mapped while `self` lives; 8-aligned (the mapping
        // is page-aligned); `AtomicU64` is valid for any bits and shared access.
        Ok(unsafe { core::slice::from_raw_parts(self.ptr(offset).cast(), count as usize) })
    }

    fn block_len(&self, offset: u64) -> Result<u64> {
        Arena::block_len(self, offset)
    }
}

/// Runs the finalizer of an object of `kind` whose state block (of `size` bytes) is at
/// `state`, made with the parameter word `param`: frees the blocks it owns. Idempotent
/// (see `raw::owned`); called with the metadata lock held, before the object's block is
/// freed.
pub(super) fn finalize(arena: &Arena, kind: u32, state: *mut u8, size: u64, param: u64) {
    match ObjectKind::from_u32(kind) {
        Some(ObjectKind::SharedList)
            if size >= core::mem::size_of::<crate::raw::list::RawList>() as u64 =>
        {
            // SAFETY: `state` is the object's state block of `size` bytes (checked against
            // its heap block by the caller), aligned for any state (objects are
            // cache-line aligned); `RawList` is a `SharedState`, valid for any bytes.
            let list = unsafe { &*state.cast::<crate::raw::list::RawList>() };
            list.finalize(arena);
        }
        // A byte queue's slots name the blocks of messages too long for them.
        Some(ObjectKind::ByteQueue | ObjectKind::ObjQueue) => {
            crate::raw::slots::finalize_bytes(arena, state, size, param);
        }
        // Kinds that own blocks are listed here as they gain them.
        Some(ObjectKind::SharedDict)
            if size >= core::mem::size_of::<crate::raw::dict::RawDict>() as u64 =>
        {
            // SAFETY: `state` is the state block of a live object of this kind, `size`
            // bytes (checked to hold a `RawDict`), CACHE_LINE-aligned, mapped while
            // `arena` lives; `RawDict` is a `SharedState` (valid for any bytes).
            let raw = unsafe { &*state.cast::<crate::raw::dict::RawDict>() };
            crate::raw::dict::finalize(raw, arena);
        }
        _ => {}
    }
}

impl Arena {
    /// The offset in the mapping of a word of shared memory, checked to lie in it.
    pub(crate) fn offset_of(&self, word: &AtomicU64) -> Result<u64> {
        let at = (word as *const AtomicU64 as usize).wrapping_sub(self.ptr(0) as usize) as u64;
        if at % 8 != 0 || at.checked_add(8).is_none_or(|e| e > self.accessible()) {
            return Err(Error::InvalidArgument(format!(
                "a word at {at:#x} is not in the arena's mapping"
            )));
        }
        Ok(at)
    }

    /// The one allocation path: into `dest` (a word's offset) or not, growing the arena
    /// when the heap is full (with the metadata lock `g` if the caller holds it).
    pub(super) fn alloc_at(
        &self,
        size: u64,
        align: u64,
        zeroed: bool,
        dest: Option<u64>,
        g: Option<&MetaGuard<'_>>,
    ) -> Result<u64> {
        for _ in 0..8 {
            let region = self.region();
            let heap = &self.header().heap;
            let deadline = self.deadline();
            let r = match (dest, zeroed) {
                (Some(d), _) => heap.alloc_into(&region, size, align, zeroed, d, &Procfs, deadline),
                (None, true) => heap.alloc_zeroed(&region, size, align, &Procfs, deadline),
                (None, false) => heap.alloc(&region, size, align, &Procfs, deadline),
            };
            match r {
                Ok(off) => return Ok(off),
                Err(HeapError::OutOfSpace { .. }) => {
                    let seen = self.header().size.said();
                    let need = size.saturating_add(align);
                    let grown = match g {
                        Some(_) => self.grow_locked(seen, need),
                        None => self.grow(seen, need),
                    };
                    if let Err(e) = grown {
                        // Full to the limit: processes that died may hold memory.
                        if g.is_some() || self.sweep()? == 0 {
                            return Err(e);
                        }
                    }
                }
                Err(HeapError::TooLarge { requested }) => {
                    return Err(Error::OutOfSpace {
                        requested,
                        available: self.available() as u64,
                    })
                }
                Err(e) => return Err(super::heap_error(e)),
            }
        }
        Err(Error::OutOfSpace {
            requested: size,
            available: self.available() as u64,
        })
    }
}
