//! Operation errors of the queues: the value comes back on failure.

use crate::raw::mpmc::MpmcError;
pub use crate::raw::mpmc::TaskDoneError;
use std::fmt;

/// Why a `put` did not enqueue its value. The value comes back in every variant.
///
/// Which variants an operation can return is listed in its `# Errors` section:
/// `put` never returns `Full` or `Timeout`, `try_put` never `Timeout`, `put_timeout`
/// never `Full`.
pub enum PutError<T> {
    /// `try_put`: the queue is full.
    Full(T),
    /// `put_timeout`: the queue stayed full until the timeout.
    Timeout(T),
    /// The queue was closed.
    Disconnected(T),
    /// The queue's shared state is corrupt (a peer wrote garbage into the arena).
    Corrupt(T),
}

impl<T> PutError<T> {
    /// The value that was not enqueued.
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(v)
            | PutError::Timeout(v)
            | PutError::Disconnected(v)
            | PutError::Corrupt(v) => v,
        }
    }

    /// True for [`PutError::Disconnected`].
    pub fn is_disconnected(&self) -> bool {
        matches!(self, PutError::Disconnected(_))
    }

    pub(crate) fn from_ring(e: MpmcError, v: T) -> PutError<T> {
        match e {
            MpmcError::Full => PutError::Full(v),
            MpmcError::Closed => PutError::Disconnected(v),
            MpmcError::Empty | MpmcError::Corrupt => PutError::Corrupt(v),
        }
    }

    pub(crate) fn timeout_from_ring(e: MpmcError, v: T) -> PutError<T> {
        match e {
            MpmcError::Full => PutError::Timeout(v),
            e => PutError::from_ring(e, v),
        }
    }

    /// The same error with another payload.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> PutError<U> {
        match self {
            PutError::Full(v) => PutError::Full(f(v)),
            PutError::Timeout(v) => PutError::Timeout(f(v)),
            PutError::Disconnected(v) => PutError::Disconnected(f(v)),
            PutError::Corrupt(v) => PutError::Corrupt(f(v)),
        }
    }
}

impl<T> PartialEq for PutError<T>
where
    T: PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (PutError::Full(a), PutError::Full(b))
            | (PutError::Timeout(a), PutError::Timeout(b))
            | (PutError::Disconnected(a), PutError::Disconnected(b))
            | (PutError::Corrupt(a), PutError::Corrupt(b)) => a == b,
            _ => false,
        }
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("Full(..)"),
            PutError::Timeout(_) => f.write_str("Timeout(..)"),
            PutError::Disconnected(_) => f.write_str("Disconnected(..)"),
            PutError::Corrupt(_) => f.write_str("Corrupt(..)"),
        }
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PutError::Full(_) => "the queue is full: get some items, or use put() to wait",
            PutError::Timeout(_) => {
                "the queue stayed full until the timeout: wait longer, or let the consumers \
                 catch up (more of them, or a larger queue)"
            }
            PutError::Disconnected(_) => "the queue was closed: nothing more can be put",
            PutError::Corrupt(_) => {
                "the queue's shared state is corrupt (written by a buggy or hostile process): \
                 a process wrote into the queue's memory outside shmproc; stop using this \
                 queue and make a new one"
            }
        })
    }
}

impl<T> std::error::Error for PutError<T> {}

/// Why a `get` returned no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetError {
    /// `try_get`: the queue is empty.
    Empty,
    /// `get_timeout`: the queue stayed empty until the timeout.
    Timeout,
    /// The queue was closed and everything put before the close was taken.
    Disconnected,
    /// The queue's shared state is corrupt (a peer wrote garbage into the arena). A
    /// message whose length was impossible was dropped.
    Corrupt,
    /// `get_value` (feature `serde`): the message was taken but could not be decoded as
    /// the requested type.
    Decode(String),
}

impl GetError {
    pub(crate) fn from_ring(e: MpmcError) -> GetError {
        match e {
            MpmcError::Empty => GetError::Empty,
            MpmcError::Closed => GetError::Disconnected,
            MpmcError::Full | MpmcError::Corrupt => GetError::Corrupt,
        }
    }

    pub(crate) fn timeout_from_ring(e: MpmcError) -> GetError {
        match e {
            MpmcError::Empty => GetError::Timeout,
            e => GetError::from_ring(e),
        }
    }

    /// True for [`GetError::Disconnected`].
    pub fn is_disconnected(&self) -> bool {
        matches!(self, GetError::Disconnected)
    }
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::Empty => {
                f.write_str("the queue is empty: put something, or use get() to wait")
            }
            GetError::Timeout => f.write_str(
                "the queue stayed empty until the timeout: wait longer, or check that a \
                 producer is putting",
            ),
            GetError::Disconnected => {
                f.write_str("the queue was closed and every item put before the close was taken")
            }
            GetError::Corrupt => f.write_str(
                "the queue's shared state is corrupt (written by a buggy or hostile process): \
                 stop using this queue and make a new one",
            ),
            GetError::Decode(why) => write!(
                f,
                "the message could not be decoded as the requested type: {why} (do the \
                 sender and the receiver use the same type?); the message was taken"
            ),
        }
    }
}

impl std::error::Error for GetError {}

/// Why a byte message (or a serialized value) was not enqueued. The caller keeps its
/// bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BytePutError {
    /// A write loan's [`commit`](super::ByteWriteLoan::commit) of more bytes than the
    /// slot holds. Nothing was sent.
    TooLarge {
        /// Bytes committed.
        len: usize,
        /// The slot's size.
        max: usize,
    },
    /// No heap block could be had for a message longer than a slot (the arena is at its
    /// limit). Nothing was sent.
    NoSpace(String),
    /// `try_put_bytes`: the queue is full.
    Full,
    /// `put_bytes_timeout`: the queue stayed full until the timeout.
    Timeout,
    /// The queue was closed.
    Disconnected,
    /// The queue's shared state is corrupt.
    Corrupt,
    /// `put_value` (feature `serde`): the value could not be encoded (other than by being
    /// too large). Nothing was sent.
    Encode(String),
}

impl BytePutError {
    pub(crate) fn from_put<T>(e: PutError<T>) -> BytePutError {
        match e {
            PutError::Full(_) => BytePutError::Full,
            PutError::Timeout(_) => BytePutError::Timeout,
            PutError::Disconnected(_) => BytePutError::Disconnected,
            PutError::Corrupt(_) => BytePutError::Corrupt,
        }
    }
}

impl fmt::Display for BytePutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BytePutError::TooLarge { len, max } => write!(
                f,
                "a write loan committed {len} bytes, more than its slot's {max}: \
                 use put_bytes for a message longer than a slot"
            ),
            BytePutError::NoSpace(why) => write!(
                f,
                "no room in the arena for the message: {why} (a larger Arena::builder().limit(), \
                 or fewer messages in flight)"
            ),
            BytePutError::Full => {
                f.write_str("the queue is full: get some messages, or use put_bytes() to wait")
            }
            BytePutError::Timeout => f.write_str(
                "the queue stayed full until the timeout: wait longer, or let the consumers \
                 catch up (more of them, or a larger queue)",
            ),
            BytePutError::Disconnected => {
                f.write_str("the queue was closed: nothing more can be put")
            }
            BytePutError::Corrupt => f.write_str(
                "the queue's shared state is corrupt (written by a buggy or hostile process): \
                 stop using this queue and make a new one",
            ),
            BytePutError::Encode(why) => write!(f, "the value could not be encoded: {why}"),
        }
    }
}

impl std::error::Error for BytePutError {}

/// Why [`JoinableQueue::join`](super::JoinableQueue::join) or
/// [`join_timeout`](super::JoinableQueue::join_timeout) returned before every task was
/// marked done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoinError {
    /// `join_timeout`: some tasks were still unfinished at the timeout.
    Timeout {
        /// Tasks unfinished at the timeout (a snapshot).
        unfinished: u64,
    },
    /// Every task still unfinished was taken by a process that died before marking it
    /// done: nobody will mark them done, so there is nothing left to wait for.
    Abandoned {
        /// The abandoned tasks.
        tasks: u64,
    },
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Timeout { unfinished } => write!(
                f,
                "{unfinished} task(s) were still unfinished at the timeout"
            ),
            JoinError::Abandoned { tasks } => write!(
                f,
                "{tasks} task(s) were taken by processes that died before marking them done: \
                 they will never be done"
            ),
        }
    }
}

impl std::error::Error for JoinError {}
