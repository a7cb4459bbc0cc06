#![doc = include_str!("../README.md")]
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

pub use arena::Arena;
pub use barrier::{Barrier, BarrierError};
pub use condition::{Condition, ConditionError, ConditionGuard};
#[cfg(not(shmproc_loom))]
pub use connection::{Address, Client, ConnectionError, Listener};
pub use error::{Error, Result};
pub use event::Event;
pub use lock::{Acquired, Lock, LockGuard, NotLocked, OwnerDied, TimedOut, TryAcquireError};
#[cfg(not(shmproc_loom))]
pub use pipe::{Connection, Pipe, RecvError as PipeRecvError, SendError as PipeSendError};
pub use process::{
    active_children, cpu_count, current_process, get_context, init, parent_process,
    set_start_method, Builder as ProcessBuilder, Context, Process, ProcessError, ProcessHandle,
    ProcessInfo, Run, RunResult, StartMethod,
};
pub use queue::{
    BytePutError, ByteQueue, GetError, JoinError, JoinableQueue, PutError, Queue, SimpleQueue,
    TaskDoneError,
};
pub use rlock::{NotOwner, RLock, RLockGuard};
pub use semaphore::{BoundedSemaphore, PermitError, Semaphore, SemaphoreGuard, TooManyReleases};
#[cfg(feature = "serde")]
pub use shared::SerdeDict;
pub use shared::{cleanup_orphans, Array, DictError, SharedDict, SharedMemory, TypedDict, Value};
pub use sync::spin::SpinPolicy;
