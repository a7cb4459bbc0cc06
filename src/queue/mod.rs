//! Queues between processes: Python's `Queue`, `SimpleQueue` and `JoinableQueue`, on a
//! bounded lock-free MPMC ring in the arena.
//!
//! | type                 | Python                               | messages                      |
//! |----------------------|--------------------------------------|-------------------------------|
//! | [`Queue<T>`]         | `multiprocessing.Queue(maxsize)`     | plain data, `T: bytemuck::Pod` |
//! | [`SimpleQueue<T>`]   | `multiprocessing.SimpleQueue()`      | plain data                    |
//! | [`JoinableQueue<T>`] | `multiprocessing.JoinableQueue()`    | plain data, with `task_done` / `join` |
//! | [`ByteQueue`]        | (a `Queue` of `bytes`)               | byte messages of any length; serde values (feature `serde`) |
//! | `ObjQueue<T>`        | `multiprocessing.Queue()` of objects | any serde value, any size (feature `serde`) |
//!
//! There is no feeder thread, no pipe and no pickling: a `put` claims a slot of the ring
//! with one CAS, copies the value in and publishes it with one store; a `get` does the
//! mirror image. A side that must wait (queue full / empty) spins briefly, then sleeps on
//! a futex word; the other side calls `futex_wake` only when it sees a registered sleeper,
//! so an uncontended `put` or `get` makes no system call. The algorithm, with its state
//! tables and the sleep / wake handshake, is documented in [`raw::mpmc`](crate::raw::mpmc) ([`MpmcRing`](crate::raw::mpmc::MpmcRing)), and is
//! model-checked with loom in `loom-tests/tests/queue.rs`.
//!
//! **Close** is queue-wide (unlike Python's per-process `close`): after
//! [`Queue::close`], every process's puts fail with [`PutError::Disconnected`] (the value
//! comes back), and gets drain what was put before, then fail with
//! [`GetError::Disconnected`]. This replaces the "one `None` sentinel per consumer" idiom.
//!
//! **Zero-copy**: [`Queue::put_loan`] / [`ByteQueue::write_loan`] lend a slot to write
//! in place, published on `commit`; [`Queue::get_loan`] / [`ByteQueue::read_loan`] lend a
//! message in place, released on drop.
//!
//! **Failure model**: a message lives in exactly one slot and is taken exactly once. A
//! process that dies *between* claiming a slot and publishing or releasing it (a few
//! instructions for `put` / `get`, the whole loan for the loan API) leaves that slot
//! claimed; the survivors that wait at it find the claim's holder dead (within ~100 ms)
//! and end the claim in its place: a dead producer's slot is skipped (its message was
//! never sent), a dead consumer's released (its message is lost, and counted in
//! [`Queue::lost`]). Everything else arrives exactly once ([`raw::mpmc`](crate::raw::mpmc),
//! "A party that dies"). A peer that scribbles on the ring's shared state can make
//! calls fail (`Corrupt`) or wait, never make this process read or write out of bounds:
//! every index read from shared memory is checked, and the slot geometry is validated when
//! a queue is opened.
//!
//! ```
//! use shmproc::{queue::Queue, Process};
//! let q = Queue::<u64>::new(16)?;
//! let mut producer = Process::new({
//!     let q = q.clone();
//!     move || {
//!         for i in 0..100 {
//!             q.put(i).unwrap();
//!         }
//!         q.close(); // instead of one `None` per consumer
//!     }
//! });
//! producer.start()?;
//! let mut sum = 0;
//! while let Ok(v) = q.get() {
//!     sum += v;
//! }
//! assert_eq!(sum, 4950);
//! assert_eq!(producer.join()?, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bytes;
mod core;
mod error;
#[cfg(feature = "serde")]
mod obj;
mod typed;

#[cfg(all(test, not(shmproc_loom)))]
mod tests;

pub use bytes::{ByteQueue, ByteReadLoan, ByteWriteLoan, MAX_SLOT, MIN_SLOT};
pub use error::{BytePutError, GetError, JoinError, PutError, TaskDoneError};
#[cfg(feature = "serde")]
pub use obj::{ObjQueue, OBJ_SLOT};
pub use typed::{GetLoan, JoinableQueue, PutLoan, Queue, SimpleQueue};

/// For `inspect`: the claims a queue's table records.
#[cfg_attr(shmproc_loom, allow(unused_imports))]
pub(crate) use self::core::held_claims;
