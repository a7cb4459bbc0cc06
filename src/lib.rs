//! Python's `multiprocessing`, for Rust, on shared memory: processes that share one
//! mmap'd arena and hand data to each other through lock-free rings and futex words. No
//! kernel round trip on the fast path, no serialisation of plain data, no feeder threads;
//! every lock and ring survives a process that dies holding it. Linux only (5.3 or later).
//!
//! ```toml
//! [dependencies]
//! shmproc = "0.1"
//! ```
//!
//! ```
//! use shmproc::{Process, Queue};
//!
//! shmproc::init(); // the first line of `main` (see "Starting processes" below)
//! let squares = Queue::<u64>::new(16)?; // a lock-free ring in shared memory
//! let tx = squares.clone(); // a handle: the same ring, for the child
//! let mut child = Process::new(move || (1..=10).for_each(|i| tx.put(i * i).unwrap()));
//! child.start()?; // fork: the child runs the closure
//! let sum: u64 = (0..10).map(|_| squares.get().unwrap()).sum();
//! assert_eq!(child.join()?, 0); // its exit code
//! assert_eq!(sum, 385);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What is in it
//!
//! Python's nouns, with Rust's types and errors:
//!
//! | Python | shmproc | what it is here |
//! |---|---|---|
//! | `Process` | [`Process`], [`Run`] (struct-style), [`current_process`] | `fork`; `join` with timeout (pidfd + poll); `terminate`, `kill`; exit codes (`-N` for signal N, 1 on panic); daemons that die with their parent; children joined / daemons terminated at exit |
//! | `set_start_method`, `get_context` (`fork`, `spawn`, `forkserver`) | [`StartMethod`], [`set_start_method`], [`get_context`], [`init`], [`Process::function`] | `shmproc::init()` first in `main`; `Spawn` runs the binary again, `ForkServer` forks from a server made at `init`; the default forks while single-threaded and takes the forkserver once threads exist; targets are functions with serde arguments, which may hold an [`Arena`] or a [`Connection`] end |
//! | `connection.Listener`, `connection.Client` | [`Listener`], [`Client`] | a Unix socket (path or abstract name), HMAC-SHA256 challenge-response both ways, then a shared-memory [`Connection`]; handles travel over it ([`Connection::send_handle`]) |
//! | `Lock` | [`Lock`] | a futex word holding the holder's pid: no syscall uncontended; robust: a dead holder's lock is taken over with [`OwnerDied`] |
//! | `RLock`, `Condition`, `Barrier` | [`RLock`], [`Condition`], [`Barrier`] | futex words; recursive per (process, thread); no stale wake-ups; action once per pass |
//! | `Semaphore`, `BoundedSemaphore`, `Event` | [`Semaphore`], [`BoundedSemaphore`], [`Event`] | futex words; wake only when a waiter is registered |
//! | `Queue`, `SimpleQueue`, `JoinableQueue` | [`Queue`], [`SimpleQueue`], [`JoinableQueue`], [`ByteQueue`], [`ObjQueue`] | a bounded lock-free MPMC ring (Vyukov stamps) of plain data, byte messages of any size or serde values of any size; queue-wide `close`; in-place loans; a claim of a killed process ended by the survivors |
//! | `Pipe` / `Connection` | [`Pipe`], [`Connection`], [`Sender`], [`Receiver`] | two SPSC byte rings; messages of any size streamed through; EOF and broken pipe across processes, SIGKILL included; typed ends of a one-way pipe |
//! | `Value`, `Array` | [`Value`], [`Array`] | plain data in the arena, with a robust lock or raw; lock-free `fetch_add` & co. for integers |
//! | `Manager().dict()` | [`SharedDict`], [`TypedDict`], [`SerdeDict`] | a hash map of any size in shared memory, no server process: byte strings, plain data or serde values, keys and values of any size; readers never block (seqlock), not even while it grows; `update_with` read-modify-writes atomically; a writer killed mid-operation leaves each key as it was or as it would have become |
//! | `Manager().list()`, `ShareableList` | [`SharedList`], [`ByteList`], [`SerdeList`] | a list of any length in shared memory, no server process: plain data in place, byte strings and serde values of any size; Python's indices and slices; readers never block (seqlock); a writer killed mid-operation is undone or finished by the next |
//! | `shared_memory.SharedMemory` | [`SharedMemory`], [`cleanup_orphans`] | named `/dev/shm` segments; segments of dead creators can be swept |
//!
//! Every object lives in an [`Arena`]: one shared mapping with a validated header and a
//! directory of named objects. `new()` puts an object in the process's anonymous global
//! arena, which every forked child inherits; `new_in(&arena, ..)` in an arena of your
//! own; `create(&arena, name, ..)` / `open(&arena, name)` by name, for processes that
//! are not related by `fork` ([`Arena::create`] / [`Arena::open`] in `/dev/shm`).
//! Handles are `Clone + Send + Sync`: clone one into a child's closure and it is the same
//! object there.
//!
//! # Starting processes
//!
//! Call [`init`] as the first line of `main`. While the program has one thread, the
//! default start method forks, and a child's closure may capture anything. Once it has
//! threads (a logger, a tokio runtime), forking is unsafe, and the default takes the
//! forkserver that `init` started: the target must then travel, as with Python's `spawn`
//! and `forkserver`: [`Process::function`] (a function and its serde arguments, which may
//! hold an [`Arena`] or a [`Connection`] end) or a closure that captures nothing.
//! [`process`] says what each start method accepts, and how a child runs and exits.
//!
//! # Errors
//!
//! Errors are values, never panics: bad input (a capacity of 0, a message larger than a
//! slot, a name of the wrong type) is an [`Error`] or the operation's own error enum,
//! and an operation that could not deliver hands back what it was given
//! ([`PutError::Full`] holds the value). Every message says what happened and what to do.
//! A lock whose holder died is taken over and says so ([`OwnerDied`]).
//!
//! # Features
//!
//! - `serde` (on by default): arbitrary Rust values through serde + postcard: the
//!   arguments of [`Process::function`], [`ByteQueue::put_value`] / `get_value`,
//!   [`Connection::send_obj`] / `recv_obj`, [`SerdeDict`], [`SerdeList`]. Without
//!   it, fork, the transport, [`Listener`] / [`Client`] and
//!   [`Connection::send_handle`] still work, and `Spawn` / `ForkServer` run targets that
//!   capture nothing. Each item that needs it says so.
//!
//! # Where to go next
//!
//! - The tour: `cargo run --release --example tour` in a clone of the repository runs
//!   every primitive across real processes, and prints what happened. `examples/` has one
//!   program per scene of Python's tutorials (`queue_kitchen`, `lock_owner_died`,
//!   `start_spawn`, `listener_client`, ...).
//! - [`process`]: start methods, exit codes, daemons, the exit hook, threads and fork.
//! - [`queue`], [`pipe`], [`shared`]: how each carries data, and what a crashed peer costs.
//! - [`SpinPolicy`]: how long a blocking call spins before it sleeps, per handle.
//! - [`inspect`]: what an arena holds while its processes run, object by object, with
//!   each one's holders and live state ([`Arena::snapshot`]). The `shmproc` command-line
//!   tool (the repository's `cli/`) shows the same from outside: `shmproc ls`,
//!   `shmproc inspect <arena>`, and `shmproc clean` for what crashed programs left.
//! - [`raw`]: the algorithms, their state tables and ordering arguments (unstable API).
//! - Performance: the README's table (every figure a ratio to a baseline measured in the
//!   same run) and `BENCHMARKS.md` (how the figures got there).
#![cfg_attr(docsrs, feature(doc_cfg))]
// `shmproc_loom` (the model-checking build) and `fuzzing` are not features a user picks:
// docs.rs does not label items with them.
#![cfg_attr(docsrs, doc(auto_cfg(hide(shmproc_loom, fuzzing))))]
// Without `serde`, the docs still name its items (`Process::function`, ...): those links
// cannot resolve then. The default and docs.rs builds have the feature and check them all.
#![cfg_attr(not(feature = "serde"), allow(rustdoc::broken_intra_doc_links))]
// Under loom only the algorithms (`raw`) run, in models; the layers above are compiled
// but much of them is unused there (the process layer, travel).
#![cfg_attr(shmproc_loom, allow(dead_code, unused_imports))]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

pub mod arena;
pub mod barrier;
pub mod condition;
#[cfg(not(shmproc_loom))]
pub mod connection;
mod error;
pub mod event;
#[doc(hidden)]
pub mod fuzz;
#[cfg(not(shmproc_loom))]
pub mod inspect;
pub mod lock;
mod object;
pub mod pipe;
pub mod process;
pub mod queue;
pub mod raw;
pub mod rlock;
pub mod semaphore;
pub mod shared;
use raw::sync;

/// The README's examples, run as doctests: the README is the repository's front page
/// (what a clone runs, the layout, the benchmarks), the text above is the crate's.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use arena::{Arena, ArenaStats};
pub use barrier::{Barrier, BarrierError};
pub use condition::{Condition, ConditionError, ConditionGuard};
#[cfg(not(shmproc_loom))]
pub use connection::{Address, Client, ConnectionError, Listener};
pub use error::{Error, Result};
pub use event::Event;
pub use lock::{Acquired, Lock, LockGuard, NotLocked, OwnerDied, TimedOut, TryAcquireError};
#[cfg(not(shmproc_loom))]
pub use pipe::{
    Connection, Pipe, Receiver, RecvError as PipeRecvError, SendError as PipeSendError, Sender,
};
pub use process::{
    active_children, cpu_count, current_process, get_context, init, parent_process,
    set_start_method, Builder as ProcessBuilder, Context, Process, ProcessError, ProcessHandle,
    ProcessInfo, Run, RunResult, StartMethod,
};
#[cfg(feature = "serde")]
pub use queue::ObjQueue;
pub use queue::{
    BytePutError, ByteQueue, GetError, JoinError, JoinableQueue, PutError, Queue, SimpleQueue,
    TaskDoneError,
};
pub use rlock::{NotOwner, RLock, RLockGuard};
pub use semaphore::{BoundedSemaphore, PermitError, Semaphore, SemaphoreGuard, TooManyReleases};
pub use shared::{
    cleanup_orphans, Array, ByteList, DictError, ListError, SharedDict, SharedList, SharedMemory,
    TypedDict, Value,
};
#[cfg(feature = "serde")]
pub use shared::{SerdeDict, SerdeList};
pub use sync::spin::SpinPolicy;

#[cfg(test)]
mod front_page {
    /// The rows of the Python-to-shmproc table in `text`, intra-doc link brackets removed.
    fn api_rows(text: &str) -> Vec<String> {
        text.lines()
            .map(|l| l.strip_prefix("//! ").unwrap_or(l))
            .filter(|l| l.starts_with("| `"))
            .map(|l| l.replace(['[', ']'], ""))
            .collect()
    }

    /// The README keeps its own copy of the front page's map of the API (GitHub shows no
    /// intra-doc links): the two must list the same rows.
    #[test]
    fn readme_lists_the_api_of_the_front_page() {
        let readme = api_rows(include_str!("../README.md"));
        let front = api_rows(include_str!("lib.rs"));
        assert!(front.len() >= 10, "the front page's table went missing");
        let readme: Vec<_> = readme.into_iter().take(front.len()).collect();
        assert_eq!(
            readme, front,
            "README.md and src/lib.rs disagree on the API map"
        );
    }
}
