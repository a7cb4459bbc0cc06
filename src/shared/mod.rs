//! Shared state: [`Value`], [`Array`], [`SharedDict`] (with [`TypedDict`] and, with the
//! `serde` feature, `SerdeDict`), [`SharedList`] (with [`ByteList`] and `SerdeList`) and
//! named [`SharedMemory`] segments.
//!
//! What Python's `multiprocessing` offers for sharing data itself rather than messages:
//!
//! | Python                                  | here                                        |
//! |-----------------------------------------|---------------------------------------------|
//! | `Value('i', 0)` / `RawValue`            | [`Value::new`] / [`Value::raw`]             |
//! | `v.get_lock()`                          | [`Value::get_lock`] (a guard giving `&mut T`) |
//! | `Array('d', 10)` / `RawArray`           | [`Array::new`] / [`Array::raw_in`]          |
//! | `Manager().dict()`                      | [`SharedDict`], [`TypedDict`], `SerdeDict` (no server process, any size) |
//! | `Manager().list()`, `ShareableList`     | [`SharedList`], [`ByteList`], `SerdeList` (no server process, any length) |
//! | `shared_memory.SharedMemory`            | [`SharedMemory`] + [`cleanup_orphans`]      |
//! | (raw bytes in the arena, by name)       | [`RawBlock`]                                |
//!
//! `Value`, `Array`, `SharedDict` and the lists live in an [`Arena`](crate::Arena) (the global one by
//! default): make them before forking, and the children share them. `SharedMemory` is a
//! segment of its own in `/dev/shm`, for processes that share nothing else.

mod block;
pub mod dict;
pub mod list;
pub mod segment;
pub mod value;

pub use block::RawBlock;
#[cfg(feature = "serde")]
pub use dict::SerdeDict;
pub use dict::{DictError, SharedDict, TypedDict};
#[cfg(feature = "serde")]
pub use list::SerdeList;
pub use list::{ByteList, ListError, ListIndex, SharedList};
pub use segment::{cleanup_orphans, OutOfBounds, SegmentHeader, SharedMemory};
pub use value::{Array, AtomicInt, LockResult, OutOfRange, SharedGuard, TryLockResult, Value};
