//! Who holds what: the process table, each process's holdings, the objects' reference
//! counts, the sweep of dead processes, `fork`, and the repair after a process died in
//! the middle of any of these.
//!
//! # The tables (all in heap blocks, changed only under the metadata lock)
//!
//! | table | entry | meaning |
//! |-------|-------|---------|
//! | process table (`Meta::procs`) | [`ProcSlot`] | a process that holds objects: its identity (pid and start time), its holdings table |
//! | holdings (`ProcSlot::held`) | [`Held`] | an object the process holds, and how many of its handles were opened on it |
//! | directory (`Meta::dir`, see `directory`) | `DirEntry` | a name and the object it names |
//!
//! An object's `refs` counts the processes whose holdings list it, plus one if it is
//! named. Opening an object adds it to the holdings of the opener (or counts one more
//! open); a [`Holding`] (the process-local reference every handle shares, cloned with the
//! handle) releases it when the last clone in the process is dropped; the object is freed
//! when `refs` reaches zero.
//!
//! # Death
//!
//! A process that dies holds objects until someone **sweeps** it: its slot names a pid
//! that is gone (or reused: the start time tells), so its holdings are released as if it
//! had dropped its handles. Sweeps run when a process joins a child, when the heap is
//! full to the limit, and on [`Arena::sweep`].
//!
//! A process that dies *inside* one of these operations holds the metadata lock; the next
//! locker repairs. Every operation is ordered so that a prefix of its writes can only
//! *over*-count (a count is raised before the entry that justifies it is written, and an
//! entry is removed before its count is lowered): a crash never frees what someone holds.
//! The repair then recounts every object from the tables (the truth) and frees what
//! nobody holds, so nothing leaks either; the block being created when the creator died
//! (`Meta::creating`) is freed unless it was already registered.
//!
//! # fork
//!
//! A child holds what its parent held: a `pthread_atfork` *prepare* handler registers, in
//! every arena the parent holds objects in, a **pending** slot that copies the parent's
//! holdings (raising each object's count) before the fork; the *child* handler adopts it
//! (writes its pid, one store: async-signal-safe) before `fork` returns in the child. So
//! nothing the child uses can be freed by the parent in between. A pending slot that no
//! child adopted (the fork failed, or the child was killed before its first instruction)
//! is swept once its parent is gone.

use super::layout::*;
use super::{Arena, Inner, ObjectKind};
use crate::error::{Error, Result};
use crate::raw::lock::{Acquired, RobustLock};
use crate::sync::liveness::{self, Liveness, Procfs, IDENT_PID_SHIFT, IDENT_START_MASK};
use crate::sync::plain;
use crate::sync::spin::SpinPolicy;
use crate::sync::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

// -----------------------------------------------------------------------------------------
// The metadata lock.

/// The metadata lock, held; released when dropped.
pub(crate) struct MetaGuard<'a> {
    arena: &'a Arena,
}

impl<'a> MetaGuard<'a> {
    /// Takes the lock; repairs first if its previous holder died.
    pub(crate) fn lock(arena: &'a Arena) -> Result<MetaGuard<'a>> {
        let lock = &arena.header().meta.lock;
        let started = std::time::Instant::now();
        match lock.lock(&Procfs, arena.deadline(), SpinPolicy::default()) {
            Ok(Acquired::Normal) => Ok(MetaGuard { arena }),
            Ok(Acquired::OwnerDied) => {
                let g = MetaGuard { arena };
                repair(&g)?;
                Ok(g)
            }
            Err(_) => Err(Error::Busy {
                holder: lock.holder().unwrap_or(0),
                waited: started.elapsed(),
            }),
        }
    }
}

impl Drop for MetaGuard<'_> {
    fn drop(&mut self) {
        self.arena.header().meta.lock.unlock();
    }
}

// -----------------------------------------------------------------------------------------
// Checked access to the tables and headers.

/// A table block's head and its entries, bounds-checked against the mapping.
pub(super) struct Table<'a, E> {
    pub(super) head: &'a TableHead,
    pub(super) entries: &'a [E],
}

impl Arena {
    /// The table of `E`s at `offset` (a heap block), checked: its capacity is a power of
    /// two and it fits the block and the mapping.
    pub(super) fn table<E>(&self, offset: u64) -> Result<Table<'_, E>> {
        let bad = |why: &str| Error::Corrupt(format!("table at {offset:#x}: {why}"));
        let usable = self
            .block_len(offset)
            .map_err(|_| bad("not an allocated block"))?;
        if offset % 16 != 0 || usable < 16 {
            return Err(bad("misplaced"));
        }
        // SAFETY: an allocated block of `usable >= 16` bytes at a 16-aligned offset inside
        // the accessible mapping (the heap checked it); `TableHead` is two atomics.
        let head = unsafe { &*self.ptr(offset).cast::<TableHead>() };
        // Relaxed: read under the metadata lock, which orders every write to tables.
        let cap = head.cap.load(Ordering::Relaxed);
        let size = core::mem::size_of::<E>() as u64;
        if !cap.is_power_of_two() || cap.checked_mul(size).is_none_or(|b| b + 16 > usable) {
            return Err(bad("capacity does not fit its block"));
        }
        // SAFETY: `cap` entries of `E` (atomics only) fit after the head inside the block,
        // 16-aligned (E's alignment is at most 8).
        let entries =
            unsafe { core::slice::from_raw_parts(self.ptr(offset + 16).cast::<E>(), cap as usize) };
        Ok(Table { head, entries })
    }

    /// A new, zeroed table of `cap` entries of `E`, in flight (`Meta::tables`) until
    /// [`set_table`](Self::set_table) publishes it.
    pub(super) fn new_table<E>(&self, g: &MetaGuard<'_>, cap: u64) -> Result<u64> {
        let bytes = 16 + cap * core::mem::size_of::<E>() as u64;
        let dest = self.offset_of(self.header().meta.tables.adding_word())?;
        let off = self.alloc_at(bytes, 16, true, Some(dest), Some(g))?;
        let t = self.table_head(off);
        // Relaxed: under the metadata lock.
        t.cap.store(cap, Ordering::Relaxed);
        Ok(off)
    }

    /// Makes `dest` (the metadata's or a process slot's table word) name `new` (0, or
    /// the table [`new_table`](Self::new_table) just made) and frees the table it named
    /// (see `owned`: a process killed anywhere in between leaves no table the repair
    /// cannot find).
    pub(super) fn set_table(&self, _g: &MetaGuard<'_>, dest: &AtomicU64, new: u64) {
        let meta = &self.header().meta;
        let size = |off: u64| match off {
            0 => 0,
            off => self.block_len(off).unwrap_or(0) + crate::raw::heap::HEADER,
        };
        // Relaxed (all): under the metadata lock.
        let (added, dropped) = (size(new), size(dest.load(Ordering::Relaxed)));
        let replaced = if new == 0 {
            // Dropped, not replaced: name it, unlink it, free it.
            let old = dest.load(Ordering::Relaxed);
            meta.tables.drop_begin(old);
            dest.store(0, Ordering::Relaxed);
            meta.tables.drop_end(self)
        } else {
            meta.tables.replace(self, dest, new)
        };
        let o = &meta.overhead;
        let dropped = if replaced.is_ok() { dropped } else { 0 };
        o.store(
            o.load(Ordering::Relaxed)
                .saturating_add(added)
                .saturating_sub(dropped),
            Ordering::Relaxed,
        );
    }

    fn table_head(&self, off: u64) -> &TableHead {
        // SAFETY: `off` is a block just allocated with room for the head.
        unsafe { &*self.ptr(off).cast::<TableHead>() }
    }

    /// Frees the block the metadata word `w` names, clearing `w` in the same heap
    /// operation; a block that is not allocated (a scribble) is forgotten.
    fn free_named(&self, w: &AtomicU64) {
        if crate::raw::owned::Blocks::free_from(self, w).is_err() {
            // Relaxed: under the metadata lock.
            w.store(0, Ordering::Relaxed);
        }
    }

    /// The object header at `obj`, checked to lie in the mapping.
    pub(super) fn obj_header(&self, obj: u64) -> Result<&ObjHeader> {
        if obj % CACHE_LINE != 0 || obj < HEADER_SIZE || obj + OBJ_HEADER > self.accessible() {
            return Err(Error::Corrupt(format!("no object can start at {obj:#x}")));
        }
        // SAFETY: `obj..obj + OBJ_HEADER` lies in the accessible mapping and is aligned;
        // `ObjHeader`'s shared fields are atomics, plain ones are read volatile.
        Ok(unsafe { &*self.ptr(obj).cast::<ObjHeader>() })
    }
}

/// A private copy of an object's header, validated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ObjCopy {
    pub kind: u32,
    pub type_fp: u64,
    pub param: u64,
    pub size: u64,
    pub generation: u64,
}

/// The header of the live object at `obj`, checked: its magic, and that its block holds
/// the header and the state it says.
pub(crate) fn header_copy(arena: &Arena, obj: u64) -> Result<ObjCopy> {
    let h = arena.obj_header(obj)?;
    // Acquire: pairs with the Release store of the magic in `create`: the fields below
    // are the creator's.
    if h.magic.load(Ordering::Acquire) != obj_magic(obj) {
        return Err(Error::NoObjectAt { offset: obj });
    }
    let p: *const ObjHeader = h;
    // SAFETY: plain integer fields of a mapped header, read volatile into a copy.
    let c = unsafe {
        ObjCopy {
            kind: (&raw const (*p).kind).read_volatile(),
            type_fp: (&raw const (*p).type_fp).read_volatile(),
            param: (&raw const (*p).param).read_volatile(),
            size: (&raw const (*p).size).read_volatile(),
            generation: (&raw const (*p).generation).read_volatile(),
        }
    };
    let usable = arena
        .block_len(obj)
        .map_err(|_| Error::Corrupt(format!("object at {obj:#x} is not an allocated block")))?;
    if c.size.checked_add(OBJ_HEADER).is_none_or(|n| n > usable) {
        return Err(Error::Corrupt(format!(
            "object at {obj:#x} says {} bytes, its block holds {usable}",
            c.size
        )));
    }
    Ok(c)
}

// -----------------------------------------------------------------------------------------
// Handles' references.

/// This process's reference to an object: what every handle holds (cloned with it, as an
/// `Arc`). Dropping the last clone in the process releases the object.
#[derive(Debug)]
pub(crate) struct Holding {
    arena: Arena,
    obj: u64,
    generation: u64,
}

impl Holding {
    pub(crate) fn arena(&self) -> &Arena {
        &self.arena
    }

    /// The object's offset (its header).
    pub(crate) fn offset(&self) -> u64 {
        self.obj
    }

    /// The object's generation.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// The object's state block.
    pub(crate) fn state_ptr(&self) -> *mut u8 {
        self.arena.ptr(self.obj + OBJ_HEADER)
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        // A release that cannot run (a wedged or corrupt arena) leaks the object: the
        // sweep of this process, once it is gone, releases it.
        let _ = release(&self.arena, self.obj, self.generation);
    }
}

/// Makes an object: allocates its block, runs `init` on its zeroed state, writes its
/// header, registers this process as its holder, and names it.
pub(crate) fn create(
    arena: &Arena,
    name: Option<&str>,
    kind: ObjectKind,
    type_fp: u64,
    size: u64,
    param: u64,
    init: impl FnOnce(*mut u8, usize),
) -> Result<Arc<Holding>> {
    let g = MetaGuard::lock(arena)?;
    if let Some(name) = name {
        if super::directory::find_locked(arena, &g, name)?.is_some() {
            return Err(Error::AlreadyExists(name.to_string()));
        }
    }
    let slot = my_slot(arena, &g)?;
    let meta = &arena.header().meta;
    // Named by `creating` from the start (the heap writes it).
    let obj = arena.alloc_at(
        OBJ_HEADER + size,
        CACHE_LINE,
        true,
        Some(arena.offset_of(&meta.creating)?),
        Some(&g),
    )?;
    init(arena.ptr(obj + OBJ_HEADER), size as usize);
    // Relaxed: under the metadata lock (held here or by the caller), which orders it.
    let generation = meta.next_gen.fetch_add(1, Ordering::Relaxed);
    let h = arena.obj_header(obj)?;
    let p: *const ObjHeader = h;
    let p = p.cast_mut();
    // SAFETY: the header of a block we just allocated, zeroed, not yet visible (no magic).
    unsafe {
        (&raw mut (*p).kind).write_volatile(kind as u32);
        (&raw mut (*p).type_fp).write_volatile(type_fp);
        (&raw mut (*p).param).write_volatile(param);
        (&raw mut (*p).size).write_volatile(size);
        (&raw mut (*p).generation).write_volatile(generation);
    }
    // Counted before the holdings entry that justifies it (module docs).
    h.refs.store(1, Ordering::Relaxed);
    // Release: pairs with the Acquire load in `header_copy`: an opener that sees the
    // magic sees the header and the state `init` wrote.
    h.magic.store(obj_magic(obj), Ordering::Release);
    meta.objects.fetch_add(1, Ordering::Relaxed);
    held_add(arena, &g, slot, obj)?;
    // Relaxed (all of `meta`'s words): under the metadata lock.
    meta.creating.store(0, Ordering::Relaxed);
    if let Some(name) = name {
        h.refs.fetch_add(1, Ordering::Relaxed);
        h.flags.fetch_or(NAMED, Ordering::Relaxed);
        if let Err(e) = super::directory::insert(arena, &g, name, obj) {
            h.flags.fetch_and(!NAMED, Ordering::Relaxed);
            h.refs.fetch_sub(1, Ordering::Relaxed);
            let _ = release_locked(arena, &g, obj, generation);
            return Err(e);
        }
    }
    Ok(Arc::new(Holding {
        arena: arena.clone(),
        obj,
        generation,
    }))
}

/// Registers this process as a holder of the live object at `obj`.
pub(crate) fn open(arena: &Arena, obj: u64) -> Result<(Arc<Holding>, ObjCopy)> {
    let g = MetaGuard::lock(arena)?;
    let h = header_copy(arena, obj)?;
    let slot = my_slot(arena, &g)?;
    let hdr = arena.obj_header(obj)?;
    // Counted before the entry (module docs); undone if the entry existed.
    hdr.refs.fetch_add(1, Ordering::Relaxed);
    if !held_add(arena, &g, slot, obj)? {
        // Relaxed: under the metadata lock (held here or by the caller), which orders it.
        hdr.refs.fetch_sub(1, Ordering::Relaxed);
    }
    Ok((
        Arc::new(Holding {
            arena: arena.clone(),
            obj,
            generation: h.generation,
        }),
        h,
    ))
}

fn release(arena: &Arena, obj: u64, generation: u64) -> Result<()> {
    let g = MetaGuard::lock(arena)?;
    release_locked(arena, &g, obj, generation)
}

/// One handle's release of `obj` by this process; frees it when nobody holds it.
fn release_locked(arena: &Arena, g: &MetaGuard<'_>, obj: u64, generation: u64) -> Result<()> {
    let Some(slot) = current_slot(arena) else {
        return Ok(()); // never registered here (a child whose fork was not prepared)
    };
    if header_copy(arena, obj).map(|h| h.generation).ok() != Some(generation) {
        return Ok(()); // a stale handle: not ours to release
    }
    if held_remove(arena, g, slot, obj)? == Some(true) {
        drop_ref(arena, g, obj)?;
    }
    Ok(())
}

/// Lowers the count of `obj` by one (after the entry that justified it is gone); frees it
/// at zero.
/// Drops the reference the name of `obj` held (after its directory entry is gone).
pub(super) fn unname(arena: &Arena, g: &MetaGuard<'_>, obj: u64) -> Result<()> {
    let h = arena.obj_header(obj)?;
    // Relaxed: under the metadata lock.
    h.flags.fetch_and(!NAMED, Ordering::Relaxed);
    drop_ref(arena, g, obj)
}

fn drop_ref(arena: &Arena, g: &MetaGuard<'_>, obj: u64) -> Result<()> {
    let h = arena.obj_header(obj)?;
    // Relaxed: under the metadata lock.
    let left = h.refs.load(Ordering::Relaxed).saturating_sub(1);
    h.refs.store(left, Ordering::Relaxed);
    if left == 0 {
        free_object(arena, g, obj)?;
    }
    Ok(())
}

fn free_object(arena: &Arena, g: &MetaGuard<'_>, obj: u64) -> Result<()> {
    header_copy(arena, obj)?;
    let meta = &arena.header().meta;
    let h = arena.obj_header(obj)?;
    // Relaxed (all): under the metadata lock; the block is nobody's. Named as dying
    // before it stops being an object, so a repair finishes what a crash interrupts.
    meta.dying.store(obj, Ordering::Relaxed);
    h.magic.store(OBJ_DEAD, Ordering::Relaxed);
    meta.objects.fetch_sub(1, Ordering::Relaxed);
    finish_dying(arena, g);
    Ok(())
}

/// Runs the finalizer on the object `Meta::dying` names and frees its block (clearing
/// the word in the same heap operation). A header that no longer holds together (a
/// scribble) is freed without the finalizer.
fn finish_dying(arena: &Arena, _g: &MetaGuard<'_>) {
    let meta = &arena.header().meta;
    // Relaxed: under the metadata lock.
    let obj = meta.dying.load(Ordering::Relaxed);
    if obj == 0 {
        return;
    }
    if let (Ok(h), Ok(usable)) = (arena.obj_header(obj), arena.block_len(obj)) {
        let p: *const ObjHeader = h;
        // SAFETY: plain integer fields of a mapped header, read volatile.
        let (kind, size, param) = unsafe {
            (
                (&raw const (*p).kind).read_volatile(),
                (&raw const (*p).size).read_volatile(),
                (&raw const (*p).param).read_volatile(),
            )
        };
        if size.checked_add(OBJ_HEADER).is_some_and(|n| n <= usable) {
            super::owned::finalize(arena, kind, arena.ptr(obj + OBJ_HEADER), size, param);
        }
    }
    arena.free_named(&meta.dying);
}

// -----------------------------------------------------------------------------------------
// The process table.

/// This process's slot index in `arena`, if it has one.
fn current_slot(arena: &Arena) -> Option<usize> {
    // Relaxed: process-local.
    let s = arena.inner.slot.load(plain::Ordering::Relaxed);
    let pid = (s >> 32) as u32;
    (s != 0 && pid == liveness::current_pid()).then(|| (s & 0xffff_ffff) as usize - 1)
}

/// This process's slot in `arena`, claimed now if it has none.
fn my_slot(arena: &Arena, g: &MetaGuard<'_>) -> Result<usize> {
    let me = liveness::current_ident();
    if let Some(i) = current_slot(arena) {
        // Relaxed: under the metadata lock (held here or by the caller), which orders it.
        let procs = arena.table::<ProcSlot>(arena.header().meta.procs.load(Ordering::Relaxed))?;
        if let Some(s) = procs.entries.get(i) {
            // Relaxed: under the metadata lock.
            let ident = s.ident.load(Ordering::Relaxed);
            if ident == me {
                return Ok(i);
            }
            // A child that adopted its slot in the fork handler did not know its start
            // time: complete its identity now.
            if ident >> IDENT_PID_SHIFT == me >> IDENT_PID_SHIFT && ident & IDENT_START_MASK == 0 {
                s.ident.store(me, Ordering::Relaxed);
                return Ok(i);
            }
        }
    }
    let i = claim_slot(arena, g, me, 0)?;
    arena.inner.slot.store(
        (u64::from(liveness::current_pid()) << 32) | (i as u64 + 1),
        plain::Ordering::Relaxed,
    );
    Ok(i)
}

/// Claims a free slot for `ident` (with `parent`), growing the table if it is full.
fn claim_slot(arena: &Arena, g: &MetaGuard<'_>, ident: u64, parent: u64) -> Result<usize> {
    let meta = &arena.header().meta;
    // Relaxed (every access below): under the metadata lock.
    let mut off = meta.procs.load(Ordering::Relaxed);
    if off == 0 {
        off = arena.new_table::<ProcSlot>(g, 16)?;
        arena.set_table(g, &meta.procs, off);
    }
    loop {
        let t = arena.table::<ProcSlot>(off)?;
        if let Some((i, s)) = t
            .entries
            .iter()
            .enumerate()
            .find(|(_, s)| s.ident.load(Ordering::Relaxed) == 0)
        {
            s.parent.store(parent, Ordering::Relaxed);
            s.held.store(0, Ordering::Relaxed);
            s.ident.store(ident, Ordering::Relaxed);
            return Ok(i);
        }
        // Full: grow to twice the size (copying every slot), then look again.
        let cap = t.entries.len() as u64;
        let new = arena.new_table::<ProcSlot>(g, cap * 2)?;
        let n = arena.table::<ProcSlot>(new)?;
        for (a, b) in t.entries.iter().zip(n.entries) {
            b.parent
                .store(a.parent.load(Ordering::Relaxed), Ordering::Relaxed);
            // Relaxed: under the metadata lock (held here or by the caller), which orders it.
            b.held
                .store(a.held.load(Ordering::Relaxed), Ordering::Relaxed);
            // Relaxed: under the metadata lock (held here or by the caller), which orders it.
            b.ident
                .store(a.ident.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        arena.set_table(g, &meta.procs, new);
        off = new;
    }
}

/// The slot `i` of the process table.
fn slot(arena: &Arena, i: usize) -> Result<&ProcSlot> {
    // Relaxed: under the metadata lock (held here or by the caller), which orders it.
    let t = arena.table::<ProcSlot>(arena.header().meta.procs.load(Ordering::Relaxed))?;
    t.entries
        .get(i)
        .ok_or_else(|| Error::Corrupt(format!("process slot {i} is past the table")))
}

// -----------------------------------------------------------------------------------------
// Holdings (an open-addressed set of object offsets, with a count each).

fn hash(obj: u64) -> u64 {
    (obj >> 7).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Finds `obj` in the table: `Ok(i)` found, `Err(Some(i))` a free place for it,
/// `Err(None)` no room.
fn find_held(t: &Table<'_, Held>, obj: u64) -> std::result::Result<usize, Option<usize>> {
    let mask = t.entries.len() - 1;
    let mut free = None;
    for n in 0..t.entries.len() {
        let i = (hash(obj) as usize).wrapping_add(n) & mask;
        // Relaxed: under the metadata lock.
        match t.entries[i].obj.load(Ordering::Relaxed) {
            x if x == obj => return Ok(i),
            DIR_EMPTY => return Err(free.or(Some(i))),
            DIR_GONE => free = free.or(Some(i)),
            _ => {}
        }
    }
    Err(free)
}

/// Adds one open of `obj` to slot `s`'s holdings; true if the object is new to them.
fn held_add(arena: &Arena, g: &MetaGuard<'_>, s: usize, obj: u64) -> Result<bool> {
    let sl = slot(arena, s)?;
    // Relaxed (every access below): under the metadata lock.
    let mut off = sl.held.load(Ordering::Relaxed);
    if off == 0 {
        off = arena.new_table::<Held>(g, 8)?;
        arena.set_table(g, &sl.held, off);
    }
    let t = arena.table::<Held>(off)?;
    match find_held(&t, obj) {
        Ok(i) => {
            let c = &t.entries[i].count;
            c.store(
                c.load(Ordering::Relaxed).saturating_add(1),
                Ordering::Relaxed,
            );
            Ok(false)
        }
        // A length a peer wrote can be anything: checked arithmetic (a table "too full"
        // is rebuilt from its entries below, which recounts it).
        Err(Some(i))
            if t.head
                .len
                .load(Ordering::Relaxed)
                .checked_add(1)
                .and_then(|n| n.checked_mul(2))
                .is_some_and(|n| n <= t.entries.len() as u64) =>
        {
            t.entries[i].count.store(1, Ordering::Relaxed);
            t.entries[i].obj.store(obj, Ordering::Relaxed);
            t.head.len.fetch_add(1, Ordering::Relaxed);
            Ok(true)
        }
        Err(_) => {
            // Too full: a table twice as large, with every live entry (the dead ones
            // dropped), then add.
            let new = arena.new_table::<Held>(g, t.entries.len() as u64 * 2)?;
            let n = arena.table::<Held>(new)?;
            let mut len = 0;
            for e in t.entries {
                // Relaxed: under the metadata lock (held here or by the caller), which orders it.
                let o = e.obj.load(Ordering::Relaxed);
                if o > DIR_GONE {
                    if let Err(Some(j)) = find_held(&n, o) {
                        // Relaxed: under the metadata lock (held here or by the caller), which orders it.
                        n.entries[j]
                            .count
                            .store(e.count.load(Ordering::Relaxed), Ordering::Relaxed);
                        // Relaxed: under the metadata lock (held here or by the caller), which orders it.
                        n.entries[j].obj.store(o, Ordering::Relaxed);
                        len += 1;
                    }
                }
            }
            // Relaxed: under the metadata lock (held here or by the caller), which orders it.
            n.head.len.store(len, Ordering::Relaxed);
            arena.set_table(g, &sl.held, new);
            held_add(arena, g, s, obj)
        }
    }
}

/// Removes one open of `obj` from slot `s`'s holdings: `Some(true)` when that was the
/// last (the entry is gone), `Some(false)` when opens remain, `None` when not held.
fn held_remove(arena: &Arena, _g: &MetaGuard<'_>, s: usize, obj: u64) -> Result<Option<bool>> {
    let sl = slot(arena, s)?;
    // Relaxed (every access below): under the metadata lock.
    let off = sl.held.load(Ordering::Relaxed);
    if off == 0 {
        return Ok(None);
    }
    let t = arena.table::<Held>(off)?;
    let Ok(i) = find_held(&t, obj) else {
        return Ok(None);
    };
    let e = &t.entries[i];
    let c = e.count.load(Ordering::Relaxed);
    if c > 1 {
        e.count.store(c - 1, Ordering::Relaxed);
        return Ok(Some(false));
    }
    e.obj.store(DIR_GONE, Ordering::Relaxed);
    e.count.store(0, Ordering::Relaxed);
    t.head.len.store(
        t.head.len.load(Ordering::Relaxed).saturating_sub(1),
        Ordering::Relaxed,
    );
    Ok(Some(true))
}

/// The objects in the holdings table at `off` (with their counts).
pub(super) fn held_list(arena: &Arena, off: u64) -> Result<Vec<(u64, u64)>> {
    if off == 0 {
        return Ok(Vec::new());
    }
    let t = arena.table::<Held>(off)?;
    Ok(t.entries
        .iter()
        // Relaxed: under the metadata lock.
        .map(|e| {
            (
                e.obj.load(Ordering::Relaxed),
                e.count.load(Ordering::Relaxed),
            )
        })
        .filter(|&(o, _)| o > DIR_GONE)
        .collect())
}

// -----------------------------------------------------------------------------------------
// The sweep.

/// Whether the process of slot identity `ident` (with `parent`) is gone.
pub(super) fn gone(ident: u64, parent: u64) -> bool {
    let dead = |id: u64| {
        let pid = (id >> IDENT_PID_SHIFT) as u32;
        pid != 0 && Procfs.is_dead(pid, id & IDENT_START_MASK)
    };
    if ident & PENDING != 0 {
        // Never adopted: its child never ran; it is the parent's until the parent goes.
        dead(parent)
    } else {
        dead(ident)
    }
}

/// Releases the holdings of every dead process (of `only`, if given); returns how many.
pub(crate) fn sweep(arena: &Arena, only: Option<u32>) -> Result<usize> {
    let g = MetaGuard::lock(arena)?;
    // Relaxed: under the metadata lock (held here or by the caller), which orders it.
    let procs = arena.header().meta.procs.load(Ordering::Relaxed);
    if procs == 0 {
        return Ok(0);
    }
    let t = arena.table::<ProcSlot>(procs)?;
    let me = liveness::current_pid();
    let mut swept = 0;
    for i in 0..t.entries.len() {
        let s = &t.entries[i];
        // Relaxed: under the metadata lock.
        let ident = s.ident.load(Ordering::Relaxed);
        let pid = ((ident & !PENDING) >> IDENT_PID_SHIFT) as u32;
        if ident == 0 || pid == me || only.is_some_and(|p| p != pid) {
            continue;
        }
        if !gone(ident, s.parent.load(Ordering::Relaxed)) {
            continue;
        }
        reclaim_slot(arena, &g, i)?;
        swept += 1;
    }
    if swept > 0 {
        arena
            .header()
            .meta
            .swept
            .fetch_add(swept as u64, Ordering::Relaxed);
        // Blocks the dead parked in their heap caches.
        let _ = arena
            .header()
            .heap
            .reclaim_dead(&arena.region(), &Procfs, arena.deadline());
    }
    Ok(swept)
}

/// Releases everything slot `i` holds and frees the slot.
fn reclaim_slot(arena: &Arena, g: &MetaGuard<'_>, i: usize) -> Result<()> {
    let s = slot(arena, i)?;
    // Relaxed: under the metadata lock.
    let off = s.held.load(Ordering::Relaxed);
    for (obj, _) in held_list(arena, off)? {
        // Entry first, count after (module docs): a crash here leaks, never frees early.
        if held_remove_all(arena, off, obj)? {
            // An object a peer scribbled away is skipped, not fatal to the sweep.
            let _ = drop_ref(arena, g, obj);
        }
    }
    arena.set_table(g, &s.held, 0);
    s.parent.store(0, Ordering::Relaxed);
    s.ident.store(0, Ordering::Relaxed);
    Ok(())
}

/// Removes `obj` from the holdings table at `off` whatever its count; true if it was
/// there.
fn held_remove_all(arena: &Arena, off: u64, obj: u64) -> Result<bool> {
    let t = arena.table::<Held>(off)?;
    match find_held(&t, obj) {
        Ok(i) => {
            // Relaxed: under the metadata lock.
            t.entries[i].obj.store(DIR_GONE, Ordering::Relaxed);
            t.entries[i].count.store(0, Ordering::Relaxed);
            Ok(true)
        }
        Err(_) => Ok(false),
    }
}

// -----------------------------------------------------------------------------------------
// The repair.

/// After a process died holding the metadata lock: finishes or undoes what it was doing
/// (the table it was making or dropping, the object it was creating or freeing), then
/// recounts every object from the tables and frees what nobody holds. Idempotent: a
/// process killed while repairing leaves the same work to the next locker.
fn repair(g: &MetaGuard<'_>) -> Result<()> {
    let arena = g.arena;
    let meta = &arena.header().meta;
    // Relaxed (all of `meta`'s words and the tables): under the metadata lock.
    meta.repairs.fetch_add(1, Ordering::Relaxed);
    // Who holds what, and which tables are in use, from the tables.
    let mut counts: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
    let mut tables = vec![
        meta.dir.load(Ordering::Relaxed),
        meta.procs.load(Ordering::Relaxed),
    ];
    let procs = tables[1];
    if procs != 0 {
        let t = arena.table::<ProcSlot>(procs)?;
        for s in t.entries {
            if s.ident.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let held = s.held.load(Ordering::Relaxed);
            tables.push(held);
            // Recount the table's length too (a crash may have left it off by one).
            if let Ok(list) = held_list(arena, held) {
                if let Ok(t) = arena.table::<Held>(held) {
                    t.head.len.store(list.len() as u64, Ordering::Relaxed);
                }
                for (obj, _) in list {
                    *counts.entry(obj).or_default() += 1;
                }
            }
        }
    }
    tables.retain(|&t| t != 0);
    // A table made and not published, or dropped and not yet freed.
    meta.tables.settle(arena, |off| tables.contains(&off));
    // The tables' bytes, recounted.
    let overhead: u64 = tables
        .iter()
        .map(|&t| arena.block_len(t).unwrap_or(0) + crate::raw::heap::HEADER)
        .sum();
    // Relaxed: under the metadata lock (held here or by the caller), which orders it.
    meta.overhead.store(overhead, Ordering::Relaxed);
    // An object being freed: its finalizer again, then its block.
    finish_dying(arena, g);
    for (_, obj) in super::directory::list_locked(arena, g).unwrap_or_default() {
        *counts.entry(obj).or_default() += 1;
    }
    // An object being created: one that got its magic is counted below like any other
    // (freed if its creator died before holding it); one that did not is freed here.
    let creating = meta.creating.load(Ordering::Relaxed);
    if creating != 0 {
        // Relaxed: under the metadata lock (held here or by the caller), which orders it.
        let live = arena
            .obj_header(creating)
            .is_ok_and(|h| h.magic.load(Ordering::Relaxed) == obj_magic(creating));
        if live {
            // Relaxed: under the metadata lock (held here or by the caller), which orders it.
            meta.creating.store(0, Ordering::Relaxed);
        } else {
            arena.free_named(&meta.creating);
        }
    }
    // Every live object, from the heap.
    let blocks = arena
        .header()
        .heap
        .used_blocks(&arena.region(), &Procfs, arena.deadline())
        .map_err(super::heap_error)?;
    let mut objects = 0;
    for (off, _) in blocks {
        let Ok(h) = arena.obj_header(off) else {
            continue;
        };
        // Relaxed: under the metadata lock (held here or by the caller), which orders it.
        if h.magic.load(Ordering::Relaxed) == obj_magic(off) {
            objects += 1;
            let n = counts.get(&off).copied().unwrap_or(0);
            // Relaxed: under the metadata lock (held here or by the caller), which orders it.
            h.refs.store(n, Ordering::Relaxed);
            if n == 0 {
                let _ = free_object(arena, g, off);
                objects -= 1;
            }
        }
    }
    // Relaxed: under the metadata lock (held here or by the caller), which orders it.
    meta.objects.store(objects, Ordering::Relaxed);
    Ok(())
}

// -----------------------------------------------------------------------------------------
// fork.

/// The arenas of this process (for the fork handlers), behind a spin lock that the
/// prepare handler holds across the fork.
struct Registry {
    busy: plain::AtomicBool,
    list: std::cell::UnsafeCell<Vec<Weak<Inner>>>,
}

// SAFETY: `list` is only touched while `busy` is held (`with`, the fork handlers).
unsafe impl Sync for Registry {}

static REGISTRY: Registry = Registry {
    busy: plain::AtomicBool::new(false),
    list: std::cell::UnsafeCell::new(Vec::new()),
};

impl Registry {
    /// A yield loop, not `SpinPolicy` and a futex: the lock is this process's, between
    /// its own threads, and held for a push onto the list or across one `fork` call by
    /// the prepare handler (which returns holding it, so no guard or `Mutex` can span
    /// it); a waiter yields to the holder, which is running.
    fn acquire(&self) {
        // Acquire: pairs with the Release store in `release`, so the list is the last
        // holder's.
        while self
            .busy
            .compare_exchange_weak(
                false,
                true,
                plain::Ordering::Acquire,
                plain::Ordering::Relaxed,
            )
            .is_err()
        {
            std::thread::yield_now();
        }
    }

    fn release(&self) {
        // Release: pairs with the Acquire CAS in `acquire`.
        self.busy.store(false, plain::Ordering::Release);
    }

    /// The list, while `busy` is held by the caller.
    ///
    /// # Safety
    /// The caller holds `busy`, and nothing else borrows the list.
    #[allow(clippy::mut_from_ref)]
    unsafe fn list(&self) -> &mut Vec<Weak<Inner>> {
        // SAFETY: exclusive by the caller's contract.
        unsafe { &mut *self.list.get() }
    }
}

/// Adds `arena` to the registry the fork handlers walk (and installs them, once).
pub(crate) fn register_arena(arena: &Arena) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: the handlers are `extern "C" fn()`; `prepare` runs in the parent before
        // the fork (any call is allowed there), `parent` and `child` only store to atomics
        // and walk a list that `prepare` locked, as fork handlers must.
        let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
        debug_assert_eq!(rc, 0, "pthread_atfork failed");
    });
    REGISTRY.acquire();
    // SAFETY: we hold the registry.
    let list = unsafe { REGISTRY.list() };
    list.retain(|w| w.strong_count() > 0);
    list.push(Arc::downgrade(&arena.inner));
    REGISTRY.release();
}

extern "C" fn prepare() {
    REGISTRY.acquire();
    // SAFETY: we hold the registry (until `parent` or `child` releases it).
    let list = unsafe { REGISTRY.list() };
    for w in list.iter() {
        let Some(inner) = w.upgrade() else { continue };
        let arena = Arena { inner };
        // Relaxed: process-local.
        arena.inner.pending.store(0, plain::Ordering::Relaxed);
        if current_slot(&arena).is_none() {
            continue; // this process holds nothing there
        }
        // A failure leaves the child unregistered: its handles work, but the parent's
        // drops may free what it uses. Nothing better can be done inside `fork`.
        if let Ok(i) = prepare_child(&arena) {
            arena
                .inner
                .pending
                .store(i as u64 + 1, plain::Ordering::Relaxed);
        }
    }
}

/// A pending slot holding what this process holds, for the child about to be forked.
fn prepare_child(arena: &Arena) -> Result<usize> {
    let g = MetaGuard::lock(arena)?;
    let mine = my_slot(arena, &g)?;
    // Relaxed: under the metadata lock (held here or by the caller), which orders it.
    let held = slot(arena, mine)?.held.load(Ordering::Relaxed);
    let list = held_list(arena, held)?;
    let me = liveness::current_ident();
    let i = claim_slot(arena, &g, PENDING | me, me)?;
    for (obj, count) in list {
        // Count first, entry after (module docs).
        let Ok(h) = arena.obj_header(obj) else {
            continue;
        };
        // Relaxed: under the metadata lock (held here or by the caller), which orders it.
        h.refs.fetch_add(1, Ordering::Relaxed);
        if !held_add(arena, &g, i, obj)? {
            // Relaxed: under the metadata lock (held here or by the caller), which orders it.
            h.refs.fetch_sub(1, Ordering::Relaxed);
        }
        // Relaxed: under the metadata lock (held here or by the caller), which orders it.
        if let Ok(t) = arena.table::<Held>(slot(arena, i)?.held.load(Ordering::Relaxed)) {
            if let Ok(j) = find_held(&t, obj) {
                // Relaxed: under the metadata lock (held here or by the caller), which orders it.
                t.entries[j].count.store(count, Ordering::Relaxed);
            }
        }
    }
    Ok(i)
}

extern "C" fn parent() {
    REGISTRY.release();
}

extern "C" fn child() {
    // Async-signal-safe: atomic loads and stores, `getpid`, no allocation (the list is
    // walked, not changed; a `Weak` is only upgraded, and the `Arc` dropped).
    let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
    // SAFETY: `prepare` holds the registry for us.
    let list = unsafe { REGISTRY.list() };
    for w in list.iter() {
        let Some(inner) = w.upgrade() else { continue };
        // Relaxed: process-local.
        let pending = inner.pending.swap(0, plain::Ordering::Relaxed);
        inner.slot.store(
            if pending == 0 {
                0
            } else {
                (u64::from(pid) << 32) | pending
            },
            plain::Ordering::Relaxed,
        );
        if pending == 0 {
            continue;
        }
        let arena = Arena { inner };
        // The slot was made for us under the metadata lock, which the parent released
        // before forking; its index is in bounds of the table it was made in. Our pid,
        // start time unknown (0: filled in at our first operation).
        if let Ok(s) = slot(&arena, pending as usize - 1) {
            // Relaxed: a single store; the parent's `prepare_child` wrote the slot before
            // the fork, so it is ours to change, and readers take the metadata lock.
            s.ident.store(liveness::ident(pid, 0), Ordering::Relaxed);
        }
    }
    REGISTRY.release();
}

/// The arenas this process has, alive (a snapshot of the registry).
fn arenas() -> Vec<Arena> {
    REGISTRY.acquire();
    // SAFETY: we hold the registry.
    let list = unsafe { REGISTRY.list() };
    let out = list
        .iter()
        .filter_map(|w| {
            Some(Arena {
                inner: w.upgrade()?,
            })
        })
        .collect();
    REGISTRY.release();
    out
}

/// Sweeps process `pid` (just reaped by its parent) in every arena of this process.
pub(crate) fn sweep_everywhere(pid: u32) {
    for arena in arenas() {
        let _ = sweep(&arena, Some(pid));
    }
}

/// After a `fork` made by this process returned child `pid`: gives the slots prepared for
/// the child its exact identity (pid and start time), which its own fork handler could
/// not read. A child killed before this runs is still swept (by pid).
pub(crate) fn child_started(pid: u32) {
    let Some(start) = liveness::proc_stat(pid).map(|s| s.start_time) else {
        return;
    };
    for arena in arenas() {
        // Relaxed: process-local; `prepare` set it before this fork.
        let pending = arena.inner.pending.swap(0, plain::Ordering::Relaxed);
        if pending == 0 {
            continue;
        }
        let Ok(_g) = MetaGuard::lock(&arena) else {
            continue;
        };
        if let Ok(s) = slot(&arena, pending as usize - 1) {
            // Relaxed: under the metadata lock. Only if the slot is still the child's:
            // adopted (pid, no start time yet) or still pending.
            let ident = s.ident.load(Ordering::Relaxed);
            let adopted = ident == liveness::ident(pid, 0);
            if adopted || ident & PENDING != 0 {
                s.ident
                    .store(liveness::ident(pid, start), Ordering::Relaxed);
            }
        }
    }
}

/// Whether some process that holds objects in `arena` (a slot in its table) is alive.
pub(crate) fn any_live_holder(arena: &Arena) -> Result<bool> {
    let _g = MetaGuard::lock(arena)?;
    // Relaxed: under the metadata lock.
    let procs = arena.header().meta.procs.load(Ordering::Relaxed);
    if procs == 0 {
        return Ok(false);
    }
    let t = arena.table::<ProcSlot>(procs)?;
    // A live process that holds nothing (it opened objects and dropped them) does not
    // keep the arena.
    Ok(t.entries.iter().any(|s| {
        let ident = s.ident.load(Ordering::Relaxed);
        ident != 0
            && !gone(ident, s.parent.load(Ordering::Relaxed))
            && held_list(arena, s.held.load(Ordering::Relaxed)).is_ok_and(|l| !l.is_empty())
    }))
}
