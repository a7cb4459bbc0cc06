//! Fuzz entry points, public so that the fuzz crate (`fuzz/`) and the stable replay tests
//! (`tests/fuzz_*.rs`) run the very same code. Above every layer: it may call anything.
//! Not API.

use crate::arena::Arena;

/// The body of the `arena_open` fuzz target: write `data` to a `memfd`, attach to it, and
/// if that succeeds look up every object it lists and a few it does not. It must never
/// panic; errors are the expected outcome.
pub fn open_arena_bytes(data: &[u8]) {
    // A hostile lock word may name a live process: wait briefly, then fail.
    crate::arena::until(
        crate::sync::time::deadline_after(std::time::Duration::from_millis(5)),
        || open_bytes(data),
    );
}

fn open_bytes(data: &[u8]) {
    use rustix::fs::{memfd_create, MemfdFlags};
    let Ok(fd) = memfd_create("fuzz", MemfdFlags::CLOEXEC) else {
        return;
    };
    let mut off = 0;
    while off < data.len() {
        match rustix::io::write(&fd, &data[off..]) {
            Ok(n) if n > 0 => off += n,
            _ => return,
        }
    }
    let Ok(arena) = Arena::from_fd(fd) else {
        return;
    };
    let _ = (arena.size(), arena.used(), arena.available());
    for (name, _kind) in arena.objects() {
        let _ = crate::Lock::open(&arena, &name).map(|l| (l.is_locked(), l.holder()));
        let _ = crate::shared::RawBlock::open(&arena, &name).map(|b| b.len());
    }
    let _ = crate::Lock::open(&arena, "lock");
    // Writes through whatever the tables say: make, name, unlink, sweep.
    let _ = arena.stats();
    let _ = crate::Lock::create(&arena, "fuzz-new");
    let _ = crate::shared::RawBlock::new_in(&arena, 100).map(|b| b.len());
    let _ = arena.unlink_object("lock");
    let _ = arena.sweep();
    let _ = arena.debug_blocks();
}

/// The fuzz bodies' reader of their input bytes (`raw::heap::fuzz`, `raw::dict::fuzz`,
/// `pipe::fuzz`): little-endian words taken from the front, zeros once the input is spent
/// (every input is a whole program).
#[cfg(any(test, fuzzing))]
pub(crate) struct Input<'a>(pub(crate) &'a [u8]);

#[cfg(any(test, fuzzing))]
impl Input<'_> {
    pub(crate) fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub(crate) fn u64(&mut self) -> u64 {
        u64::from_le_bytes(core::array::from_fn(|_| self.u8()))
    }
}
