//! The directory of named objects: an open-addressed table of `DirEntry`s in a heap
//! block, keyed by a hash of the name under the arena's random seed, grown to twice its
//! size when it is three quarters full. Read and written under the metadata lock (opens
//! by name are rare next to the operations on what they open).
//!
//! A name holds a reference to its object (so a named object outlives its handles, as a
//! file outlives its descriptors); [`unlink`] drops it. Growing builds the new table in
//! full before one store publishes it, so a process that dies meanwhile leaves the old
//! table in place.

use super::holders::MetaGuard;
use super::layout::*;
use super::Arena;
use crate::error::{Error, Result};
use crate::sync::Ordering;

fn name_hash(arena: &Arena, name: &str) -> u64 {
    super::fnv(arena.seed() ^ 0xcbf2_9ce4_8422_2325, name.as_bytes()) | DIR_USED
}

/// The name stored in `e` (validated: length and UTF-8), if it is used.
pub(super) fn entry_name(e: &DirEntry) -> Option<String> {
    // Relaxed (every load here): under the metadata lock.
    let len = e.name_len.load(Ordering::Relaxed) as usize;
    if len == 0 || len > MAX_NAME {
        return None;
    }
    let mut bytes = Vec::with_capacity(MAX_NAME);
    for w in &e.name {
        bytes.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
    }
    bytes.truncate(len);
    String::from_utf8(bytes).ok()
}

fn write_entry(e: &DirEntry, hash: u64, name: &str, obj: u64) {
    let mut buf = [0u8; MAX_NAME];
    buf[..name.len()].copy_from_slice(name.as_bytes());
    // Relaxed (every store here): under the metadata lock; the hash is stored last so a
    // repair never meets a used entry with half a name.
    for (w, chunk) in e.name.iter().zip(buf.chunks_exact(8)) {
        w.store(
            u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])),
            Ordering::Relaxed,
        );
    }
    e.name_len.store(name.len() as u32, Ordering::Relaxed);
    e.obj.store(obj, Ordering::Relaxed);
    e.hash.store(hash, Ordering::Relaxed);
}

/// The entry named `name`: `Ok(i)`, or `Err(Some(i))` where it would go, `Err(None)` when
/// the table has no room.
fn probe(entries: &[DirEntry], hash: u64, name: &str) -> std::result::Result<usize, Option<usize>> {
    let mask = entries.len() - 1;
    let mut free = None;
    for n in 0..entries.len() {
        let i = (hash as usize).wrapping_add(n) & mask;
        let e = &entries[i];
        // Relaxed: under the metadata lock.
        match e.hash.load(Ordering::Relaxed) {
            DIR_EMPTY => return Err(free.or(Some(i))),
            DIR_GONE => free = free.or(Some(i)),
            h if h == hash && entry_name(e).as_deref() == Some(name) => return Ok(i),
            _ => {}
        }
    }
    Err(free)
}

/// The object named `name`.
pub(crate) fn find(arena: &Arena, name: &str) -> Result<Option<u64>> {
    let g = MetaGuard::lock(arena)?;
    find_locked(arena, &g, name)
}

/// [`find`], with the metadata lock held.
pub(crate) fn find_locked(arena: &Arena, _g: &MetaGuard<'_>, name: &str) -> Result<Option<u64>> {
    // Relaxed: under the metadata lock.
    let off = arena.header().meta.dir.load(Ordering::Relaxed);
    if off == 0 {
        return Ok(None);
    }
    let t = arena.table::<DirEntry>(off)?;
    Ok(probe(t.entries, name_hash(arena, name), name)
        .ok()
        // Relaxed: under the metadata lock.
        .map(|i| t.entries[i].obj.load(Ordering::Relaxed)))
}

/// Names `obj` `name` (the caller has counted the name's reference).
pub(crate) fn insert(arena: &Arena, g: &MetaGuard<'_>, name: &str, obj: u64) -> Result<()> {
    let meta = &arena.header().meta;
    // Relaxed (every access below): under the metadata lock.
    let mut off = meta.dir.load(Ordering::Relaxed);
    if off == 0 {
        off = arena.new_table::<DirEntry>(g, 16)?;
        arena.set_table(g, &meta.dir, off);
    }
    let hash = name_hash(arena, name);
    let t = arena.table::<DirEntry>(off)?;
    let len = t.head.len.load(Ordering::Relaxed);
    match probe(t.entries, hash, name) {
        Ok(_) => Err(Error::AlreadyExists(name.to_string())),
        Err(Some(i)) if (len + 1) * 4 <= t.entries.len() as u64 * 3 => {
            write_entry(&t.entries[i], hash, name, obj);
            t.head.len.store(len + 1, Ordering::Relaxed);
            Ok(())
        }
        Err(_) => {
            // Three quarters full: a table twice as large with every live entry, published
            // by one store, then insert again.
            let new = arena.new_table::<DirEntry>(g, t.entries.len() as u64 * 2)?;
            let n = arena.table::<DirEntry>(new)?;
            let mut count = 0;
            for e in t.entries {
                let h = e.hash.load(Ordering::Relaxed);
                if h & DIR_USED == 0 {
                    continue;
                }
                if let Some(name) = entry_name(e) {
                    if let Err(Some(j)) = probe(n.entries, h, &name) {
                        // Relaxed: under the metadata lock, which orders it.
                        write_entry(&n.entries[j], h, &name, e.obj.load(Ordering::Relaxed));
                        count += 1;
                    }
                }
            }
            // Relaxed: under the metadata lock, which orders it.
            n.head.len.store(count, Ordering::Relaxed);
            arena.set_table(g, &meta.dir, new);
            insert(arena, g, name, obj)
        }
    }
}

/// Removes the name `name`, then drops the reference it held (freeing the object if
/// nobody else holds it).
pub(crate) fn unlink(arena: &Arena, name: &str) -> Result<()> {
    let g = MetaGuard::lock(arena)?;
    // Relaxed (every access below): under the metadata lock.
    let off = arena.header().meta.dir.load(Ordering::Relaxed);
    let not_found = || Error::NotFound(name.to_string());
    if off == 0 {
        return Err(not_found());
    }
    let t = arena.table::<DirEntry>(off)?;
    let i = probe(t.entries, name_hash(arena, name), name).map_err(|_| not_found())?;
    let e = &t.entries[i];
    let obj = e.obj.load(Ordering::Relaxed);
    // The entry first, the count after (see `holders`): a crash leaks, never frees early.
    e.hash.store(DIR_GONE, Ordering::Relaxed);
    t.head.len.store(
        t.head.len.load(Ordering::Relaxed).saturating_sub(1),
        Ordering::Relaxed,
    );
    super::holders::unname(arena, &g, obj)
}

/// Every name and the object it names.
pub(crate) fn list(arena: &Arena) -> Result<Vec<(String, u64)>> {
    let g = MetaGuard::lock(arena)?;
    list_locked(arena, &g)
}

/// [`list`], with the metadata lock held.
pub(crate) fn list_locked(arena: &Arena, _g: &MetaGuard<'_>) -> Result<Vec<(String, u64)>> {
    // Relaxed: under the metadata lock.
    let off = arena.header().meta.dir.load(Ordering::Relaxed);
    if off == 0 {
        return Ok(Vec::new());
    }
    let t = arena.table::<DirEntry>(off)?;
    Ok(t.entries
        .iter()
        .filter(|e| e.hash.load(Ordering::Relaxed) & DIR_USED != 0)
        .filter_map(|e| Some((entry_name(e)?, e.obj.load(Ordering::Relaxed))))
        .collect())
}
