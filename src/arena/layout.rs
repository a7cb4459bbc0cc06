//! The arena's layout: the header, the object header, the directory and the process
//! table. All offsets, no pointers.
//!
//! ```text
//! 0          HEADER_SIZE (8 KiB)                              size       limit
//! +----------+------------------------------------------------+----------+
//! | Header   | the heap: every object, the directory, the      | (grows)  |
//! | + heap   | process table, messages ... as heap blocks      |          |
//! | state    |                                                 |          |
//! +----------+------------------------------------------------+----------+
//! ```
//!
//! Every process maps `limit` bytes; the file is `size` bytes and only grows (see
//! [`Arena`](super::Arena)'s growth). An object is a heap block that starts with an
//! [`ObjHeader`] (128 bytes), followed by its state block.
//!
//! Everything read from here is treated as untrusted: every offset and size is checked
//! against the mapping before use.

use crate::raw::extent::Extent;
use crate::raw::heap::RawHeap;
use crate::raw::lock::RawLock;
use crate::raw::owned::InFlight;
use crate::sync::{AtomicU32, AtomicU64};

/// "SHMPROC" + format byte, little-endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMPROC\x02");
/// Bumped on any change of the layout or of any shared state block.
pub const VERSION: u32 = 7;
/// Alignment of every object (and of its state block).
pub const CACHE_LINE: u64 = 128;
/// Bytes reserved for the header and the heap's state; the heap starts here.
pub const HEADER_SIZE: u64 = 8192;
/// Bytes of an object's header (before its state block).
pub const OBJ_HEADER: u64 = 128;
/// Longest object name, in bytes.
pub const MAX_NAME: usize = 80;
/// Smallest arena: the header and a few pages of heap.
pub const MIN_SIZE: u64 = HEADER_SIZE + 4 * 4096;
/// Largest arena (1 TiB): keeps every offset computation far from overflow.
pub const MAX_SIZE: u64 = 1 << 40;
/// What an arena may grow to by default: 64 GiB of address space (pages cost nothing
/// until they are touched), or its initial size if that is larger.
pub const DEFAULT_LIMIT: u64 = 64 << 30;

/// A hash of every layout constant: two builds that disagree on any of them refuse to
/// share an arena even if someone forgot to bump [`VERSION`].
pub const LAYOUT_HASH: u64 = {
    let parts = [
        VERSION as u64,
        CACHE_LINE,
        HEADER_SIZE,
        OBJ_HEADER,
        MAX_NAME as u64,
        core::mem::size_of::<Header>() as u64,
        core::mem::size_of::<ObjHeader>() as u64,
        core::mem::size_of::<DirEntry>() as u64,
        core::mem::size_of::<ProcSlot>() as u64,
    ];
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut i = 0;
    while i < parts.len() {
        h = (h ^ parts[i]).wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
};

/// The arena header, at offset 0.
#[repr(C)]
pub struct Header {
    /// [`MAGIC`], stored last by the creator (Release) so an opener that sees it (Acquire)
    /// sees a complete header.
    pub magic: AtomicU64,
    /// [`VERSION`].
    pub version: u32,
    /// Reserved, zero.
    pub flags: u32,
    /// [`LAYOUT_HASH`].
    pub layout_hash: u64,
    /// Bytes every process maps: the most the arena may grow to.
    pub limit: u64,
    /// Bytes of the file now (grows; never shrinks).
    pub size: Extent,
    /// The creator's identity (pid and start time, see `sync::liveness::ident`).
    pub creator: u64,
    /// A random number naming this arena (tells two arenas apart when handles travel).
    pub id: u64,
    /// A random key for the hashes of names and dict keys (hostile keys cannot aim at one
    /// chain).
    pub seed: u64,
    /// The metadata: the directory, the process table and the reference counts.
    pub meta: Meta,
    _pad: [u8; 1024 - 64 - core::mem::size_of::<Meta>()],
    /// The heap's state (its lock, free lists, bounds, statistics).
    pub heap: RawHeap,
}

/// The arena's metadata, changed only under [`lock`](Self::lock).
#[repr(C)]
pub struct Meta {
    /// Serialises the directory, the process table and every reference count. Robust: a
    /// process that dies holding it leaves at most a leak, which the next holder repairs
    /// (see `holders`).
    pub lock: RawLock,
    /// Offset of the directory table (a heap block), 0 while there is none.
    pub dir: AtomicU64,
    /// Offset of the process table (a heap block), 0 while there is none.
    pub procs: AtomicU64,
    /// The next object generation (each object gets its own; a stale handle is told apart).
    pub next_gen: AtomicU64,
    /// The object block being created (so a repair frees it if its creator died before
    /// it was referenced), 0 when none. Written by the heap's `alloc_into`: no block is
    /// ever allocated without a word naming it.
    pub creating: AtomicU64,
    /// The object block being freed (its finalizer runs, then the heap's `free_from`
    /// frees it and clears this word), 0 when none: a repair finishes the job.
    pub dying: AtomicU64,
    /// The table being made or dropped (see `owned`).
    pub tables: InFlight,
    /// Objects alive (statistics).
    pub objects: AtomicU64,
    /// Processes found dead and swept (statistics).
    pub swept: AtomicU64,
    /// Repairs after a holder of the lock died.
    pub repairs: AtomicU64,
    /// Bytes of heap blocks that hold the arena's own tables (not counted as `used`).
    pub overhead: AtomicU64,
}

/// `ObjHeader::magic` of a live object (mixed with its offset, see `obj_magic`).
pub const OBJ_LIVE: u64 = u64::from_le_bytes(*b"shmOBJ\x01\x00");
/// `ObjHeader::magic` of an object being freed.
pub const OBJ_DEAD: u64 = u64::from_le_bytes(*b"shmDEAD\x00");

/// The magic of a live object at `offset`: a header copied elsewhere, or a message that
/// happens to hold one, does not pass for an object.
pub const fn obj_magic(offset: u64) -> u64 {
    OBJ_LIVE ^ offset.rotate_left(17)
}

/// `ObjHeader::flags`: the object has a name in the directory (which holds a reference).
pub const NAMED: u32 = 1;

/// The header of every object, in the first [`OBJ_HEADER`] bytes of its block.
#[repr(C)]
pub struct ObjHeader {
    /// [`obj_magic`] of the object's offset while it lives; [`OBJ_DEAD`] while it is freed.
    pub magic: AtomicU64,
    /// An [`ObjectKind`](super::ObjectKind) value.
    pub kind: u32,
    /// [`NAMED`].
    pub flags: AtomicU32,
    /// Fingerprint of the element type (see `fingerprint`), or 0.
    pub type_fp: u64,
    /// Kind-specific parameter word (capacity, element count, ...).
    pub param: u64,
    /// Bytes of the state block and what trails it (after this header).
    pub size: u64,
    /// The object's generation (unique in the arena).
    pub generation: u64,
    /// References: processes that hold a handle (each once), plus one for a name.
    pub refs: AtomicU64,
    _reserved: [u64; 9],
}

/// One entry of the directory table: a name and the object it names.
#[repr(C)]
pub struct DirEntry {
    /// [`DIR_EMPTY`], [`DIR_GONE`] (a removed entry: probing goes on), or the name's hash
    /// with bit 63 set.
    pub hash: AtomicU64,
    /// Offset of the object.
    pub obj: AtomicU64,
    /// Bytes of `name` in use.
    pub name_len: AtomicU32,
    _pad: u32,
    /// UTF-8 name, not NUL-terminated.
    pub name: [AtomicU64; MAX_NAME / 8],
    _reserved: [u64; 3],
}

/// `DirEntry::hash` of a free entry.
pub const DIR_EMPTY: u64 = 0;
/// `DirEntry::hash` of a removed entry.
pub const DIR_GONE: u64 = 1;
/// Bit set in the hash of every used entry.
pub const DIR_USED: u64 = 1 << 63;

/// The header of a table block (the directory, the process table, a holdings table):
/// its capacity and how many entries are in use.
#[repr(C)]
pub struct TableHead {
    /// Entries the table has room for (a power of two).
    pub cap: AtomicU64,
    /// Entries in use.
    pub len: AtomicU64,
}

/// One process's entry in the process table.
#[repr(C)]
pub struct ProcSlot {
    /// The process's identity (see `sync::liveness::ident`), 0 when free; with
    /// [`PENDING`] set, a slot prepared by a parent for a child about to be forked.
    pub ident: AtomicU64,
    /// The identity of the process that prepared a pending slot (its parent).
    pub parent: AtomicU64,
    /// Offset of the process's holdings table (a heap block of [`Held`]), 0 when none.
    pub held: AtomicU64,
    _reserved: u64,
}

/// `ProcSlot::ident` bit of a pending slot (its child has not adopted it yet).
pub const PENDING: u64 = 1 << 63;

/// One entry of a holdings table: an object the process holds, and how many handles of
/// its own refer to it (opens, not clones: a clone shares its handle's reference).
#[repr(C)]
pub struct Held {
    /// Offset of the object; [`DIR_EMPTY`] when free, [`DIR_GONE`] when removed.
    pub obj: AtomicU64,
    /// Handles of this process on the object.
    pub count: AtomicU64,
}

#[cfg(not(shmproc_loom))]
mod layout_checks {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};
    static_assertions::const_assert_eq!(offset_of!(Header, magic), 0);
    static_assertions::const_assert_eq!(offset_of!(Header, layout_hash), 16);
    static_assertions::const_assert_eq!(offset_of!(Header, meta), 64);
    static_assertions::const_assert_eq!(offset_of!(Header, heap), 1024);
    static_assertions::const_assert!(size_of::<Header>() as u64 <= HEADER_SIZE);
    static_assertions::const_assert!(align_of::<Header>() <= 128);
    static_assertions::const_assert_eq!(size_of::<ObjHeader>() as u64, OBJ_HEADER);
    static_assertions::const_assert_eq!(size_of::<DirEntry>(), 128);
    static_assertions::const_assert_eq!(size_of::<ProcSlot>(), 32);
    static_assertions::const_assert_eq!(size_of::<Held>(), 16);
    static_assertions::const_assert_eq!(size_of::<TableHead>(), 16);
    static_assertions::const_assert_eq!(HEADER_SIZE % CACHE_LINE, 0);
}
