//! The algorithms (layer 7 of the design): every shared-memory protocol of shmproc,
//! written once against the [`sync`] shim, with no system call but the shim's futex.
//!
//! **Unstable.** This module is public so that the loom models in `loom-tests/` and the
//! fuzz targets can drive the algorithms directly, and for readers who want the state
//! tables and the ordering arguments. It is not part of the semver surface: the handles
//! ([`Lock`](crate::Lock), [`Queue`](crate::Queue), ...) are the API.
//!
//! | module        | algorithm                                                        | used by |
//! |---------------|------------------------------------------------------------------|---------|
//! | [`lock`]      | the robust futex mutex ([`RawLock`](lock::RawLock)) and the [`RobustLock`](lock::RobustLock) trait | `Lock`, `Value`, `Array`, the arena, the pipe sides |
//! | [`rlock`]     | the re-entrant robust lock                                        | `RLock`, `Condition` |
//! | [`condvar`]   | the two-generation condition variable                            | `Condition` |
//! | [`semaphore`] | the counting semaphore word                                      | `Semaphore`, `BoundedSemaphore` |
//! | [`event`]     | the event word with its epoch                                    | `Event` |
//! | [`barrier`]   | the barrier word                                                 | `Barrier` |
//! | [`mpmc`]      | the bounded MPMC ring of slots (Vyukov stamps)                   | the queue family |
//! | [`spsc`]      | the SPSC byte ring with its frame and wake protocol              | `Pipe` / `Connection` |
//! | [`dict`]      | the growing hash table (entries in owned blocks) with its seqlock | `SharedDict`, `TypedDict`, `SerdeDict` |
//! | [`extent`]    | the published size of a growing file, and a process's view of it  | the arena |
//! | [`list`]      | the growable array in owned chunks: seqlock readers, a journal for a killed writer | `SharedList`, `ByteList`, `SerdeList` |
//! | [`heap`]      | the TLSF heap of variable-size blocks, by offset, crash-safe     | the arena |
//! | [`owned`]     | blocks an object owns, named by shared words ([`Blocks`](owned::Blocks), [`InFlight`](owned::InFlight)) | the arena's tables, objects that grow |
//!
//! The loom models of each live in `loom-tests/tests/<module>.rs`.

/// A state block that lives in shared memory: what the arena may hand out as `&Self` to
/// every thread of every process that maps it.
///
/// # Safety
/// An implementor promises:
/// * `#[repr(C)]`, with an alignment of at most 128 bytes (the arena's object alignment);
/// * every field another thread or process may write is an atomic, or a cell whose
///   accesses the algorithm orders, so sharing `&Self` is sound (`Sync`);
/// * any bytes at all are a value of the type (a peer may have written them): the
///   algorithm validates whatever it reads from the block before it trusts it.
pub unsafe trait SharedState: Sync {}

/// The state of an object that is raw bytes (`RawBlock`): the arena hands out its
/// address, never a reference to its contents.
#[repr(C)]
#[derive(Debug)]
pub struct Opaque {
    _private: [u8; 0],
}

// SAFETY: no fields, so nothing to share or validate; `RawBlock` only hands out the
// address.
unsafe impl SharedState for Opaque {}

/// A side of a ring: the one that puts messages in, or the one that takes them out. The
/// one name for it in both rings and their handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Puts messages in (`put`, `send`).
    Producer,
    /// Takes messages out (`get`, `recv`).
    Consumer,
}

/// A [`Side`] known at compile time, for the hot paths that are compiled once per side
/// (`Held<'_, Producer>`): the type names the side, and [`SIDE`](Self::SIDE) gives it.
pub trait KnownSide {
    /// The side.
    const SIDE: Side;
}

/// The producer side, as a type.
#[derive(Debug)]
pub enum Producer {}

/// The consumer side, as a type.
#[derive(Debug)]
pub enum Consumer {}

impl KnownSide for Producer {
    const SIDE: Side = Side::Producer;
}

impl KnownSide for Consumer {
    const SIDE: Side = Side::Consumer;
}

pub mod barrier;
pub mod condvar;
pub mod crash;
pub mod dict;
pub mod event;
pub mod extent;
pub mod heap;
pub mod list;
pub mod lock;
pub mod mpmc;
pub mod owned;
pub mod rlock;
pub mod semaphore;
pub(crate) mod slots;
pub mod spsc;

// The shim lives in `src/sync/` (layer 8, below this one); it is published here, with
// the algorithms, as part of the unstable surface.
#[path = "../sync/mod.rs"]
pub mod sync;
