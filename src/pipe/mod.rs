//! `Pipe` and `Connection`: Python's `multiprocessing.Pipe`, on SPSC byte rings in the
//! arena.
//!
//! [`Pipe::new`] returns two [`Connection`]s. Each direction is a [`ByteRing`](crate::raw::spsc::ByteRing) (rtrb style:
//! free-running indices, a cached copy of the peer's index, one cache line per side)
//! carrying messages as chunks with an in-band header that the reader polls: messages are
//! never merged or split, an empty message is a message, and a message larger than the
//! ring streams through it in chunks and is reassembled (a 16 MiB message through a 64 KiB
//! ring). A message of up to `capacity - 16` bytes fits an empty ring whole (a sender
//! needs no reader for it). See [`ring`] for the protocol.
//!
//! # EOF and broken pipe, across processes
//!
//! Each end owns a *liveness token*: the write side of an OS pipe whose read side the
//! peer holds (see `token.rs`). `fork` duplicates it, `close`/drop releases it, and the
//! kernel closes it when a process dies, even by `SIGKILL`; the read side reports
//! `POLLHUP` once no process holds the end. So:
//!
//! - when the last holder of an end closes it, it sees its own token hang up, sets the
//!   shared "closed" flags, and wakes the peer at once;
//! - when the last holder dies, a blocked peer notices on its next periodic check (it
//!   sleeps at most 1 ms, doubling to 100 ms, between checks), and so does any `poll`.
//!
//! Then [`recv_bytes`](Connection::recv_bytes) drains every whole message left and
//! returns [`RecvError::Eof`]; a message its writer died in the middle of is never
//! delivered. [`send_bytes`](Connection::send_bytes) returns [`SendError::BrokenPipe`]
//! (a send into a ring with room left is not checked against a *dead* reader: like a
//! kernel pipe buffer, up to one ring of data may be accepted, and the next send that
//! would block reports it).
//!
//! **Like Python, a process must drop (or [`close`](Connection::close)) the end it does
//! not use**: a reader that still holds a copy of the writing end never sees EOF, because
//! that end is still open.
//!
//! # Forked copies of one end
//!
//! `fork` duplicates a `Connection`. Each side of each ring (sending, receiving) is
//! guarded by a robust [`RawLock`](crate::raw::lock::RawLock) in shared memory, so copies of one end used at once
//! from several processes (or threads) take turns, message by message: memory safety and
//! frame boundaries hold. If a process dies holding the lock while *between* messages, the
//! next user simply carries on; if it died *in the middle* of a message, the ring is
//! marked broken and both ends report [`SendError::Broken`] / [`RecvError::Broken`].
//! (A reader part-way through that message learns it from the
//! dead holder of the writing side: see below.)
//!
//! # Timeouts
//!
//! Every timed receive and poll ([`recv_bytes_timeout`](Connection::recv_bytes_timeout),
//! [`recv_timeout`](Connection::recv_timeout), [`poll_timeout`](Connection::poll_timeout))
//! returns within its timeout (plus the futex's resolution), whatever the state of the
//! pipe: the wait for another copy of the end to finish its receive counts too. A timed
//! receive consumes a message only once it is whole in the ring, so one that times out
//! consumes nothing ([`RecvError::Timeout`]); the exception is a message too long to ever
//! be whole in the ring (it streams through): if the timeout passes part-way through it,
//! the part read is dropped and the rest skipped by the next receive
//! ([`RecvError::TimeoutMidMessage`]; give such pipes a larger capacity, or receive
//! without a timeout). Sends have no timeout (like Python's).
//!
//! # A writer that dies part-way through a message
//!
//! The writer of a message holds its end's producer side (a [`RawLock`](crate::raw::lock::RawLock)
//! recording its pid and start time) until the message's last chunk is in the ring. A
//! receiver waiting for the rest of a message it has begun checks that holder on its
//! liveness schedule (1 ms, doubling to 100 ms): if it is dead
//! ([`Liveness::is_dead`](crate::raw::sync::liveness::Liveness::is_dead)), the message can
//! never end, and the receiver reports [`RecvError::Broken`] (another copy of the writing
//! end lives on, so the pipe is not at its end) or [`RecvError::Eof`] (none does), without
//! waiting for another writer to find the same. Nothing of the partial message is ever
//! delivered.
//!
//! # Memory
//!
//! A pipe takes `capacity` bytes per direction (64 KiB by default) plus 1280 bytes of
//! state from its arena's heap, freed with its last end in every process (ends that
//! died with their process included).
//!
//! # Performance
//!
//! `cargo bench --bench pipe` on the 2-vCPU machine (quiet), 2026-11-23 (after the
//! one-chunk fast path and [`SpinPolicy::HAND_OFF`](crate::SpinPolicy::HAND_OFF)):
//! per-rep ratio subject / baseline, median (p10 - p90); below 1 the pipe is faster.
//!
//! | measurement (shmproc pipe vs baseline)        | median | p10 - p90   | pipe         |
//! |-----------------------------------------------|--------|-------------|--------------|
//! | round trip, 8 B, vs atomic floor              | 2.73   | 2.50 - 2.93 | 182 ns       |
//! | round trip, 8 B, vs OS pipe                   | 0.09   | 0.00 - 0.11 | 2.8 us       |
//! | round trip, 8 B, vs Unix socketpair           | 0.00   | 0.00 - 0.09 | 220 ns       |
//! | 64 B messages, time per msg, vs OS pipe       | 0.13   | 0.11 - 0.20 | 56 ns        |
//! | 4 KiB messages, vs OS pipe                    | 0.61   | 0.34 - 0.66 | 509 ns       |
//! | 1 MiB messages, 64 KiB ring, vs OS pipe       | 0.14   | 0.05 - 0.19 | 171 us       |
//! | 1 MiB messages, 64 KiB ring, vs `memcpy`      | 5.71   | 5.47 - 6.16 | 129 us       |
//! | 1 MiB messages, 4 MiB ring, vs `memcpy`       | 1.07   | 1.03 - 1.18 | 25 us        |
//!
//! (The OS-pipe pair's 2.8 us: its echo child sleeps through each baseline rep and is
//! often woken onto the parent's CPU, where every hand-off waits for a yield.)
//!
//! The `memcpy` baseline copies the message once, within one core's cache. Through a ring
//! larger than a core's L2 (1 MiB here) the two copies stream through the shared L3 and
//! overlap (each side publishes / consumes in pieces of a quarter ring): about 40 GB/s.
//! Through the default 64 KiB ring every line crosses between the two cores' L2s, which
//! caps it near 8 GB/s whatever the piece size (measured with a stripped-down ring too):
//! give a pipe that carries large messages a large capacity. The small-message round
//! trip is about 1.7x the floor (the README has the runs): a message of one chunk takes a
//! straight-line path on both sides (an 8-byte send + receive: 175 instructions), each
//! side's lock shares a line with that side's indices, the release of a side is also its
//! half of the sleep handshake, so a message costs two locked instructions (the side's
//! lock and unlock) and no fence, and the producer readies the next cache line after
//! each publish so that no header waits behind a store to a line the consumer holds.
use crate::raw::spsc as ring;
#[cfg(not(shmproc_loom))]
mod oneway;
mod token;
#[cfg(not(shmproc_loom))]
pub(crate) use token::release_holds_except;

#[cfg(any(test, fuzzing))]
pub mod fuzz;
#[cfg(all(test, not(shmproc_loom)))]
mod tests;

#[cfg(not(shmproc_loom))]
mod handle;
#[cfg(not(shmproc_loom))]
pub use handle::*;
#[cfg(not(shmproc_loom))]
pub(crate) use oneway::{receiver_from, sender_from};
#[cfg(not(shmproc_loom))]
pub use oneway::{PlainRecv, PlainSend, Receiver, Sender};

use std::fmt;

/// Why a send failed. The bytes stay with the caller (they were passed by reference).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// This `Connection` was closed with [`close`](Connection::close).
    Closed,
    /// This end is read-only (`Pipe::new(false)`'s first end).
    WrongDirection,
    /// Every copy of the peer end is closed or its processes died.
    BrokenPipe,
    /// The stream was abandoned mid-message by a process that died (or panicked) while
    /// sending or receiving on a copy of an end: no further message can be framed.
    Broken,
    /// Shared memory holds impossible ring state: another process overwrote it.
    Corrupt(&'static str),
    /// The message is longer than the frame protocol allows (2^48 bytes).
    TooLarge(u64),
    /// The value could not be serialized (`serde` feature).
    Serialize(String),
}

/// Why a receive failed.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecvError {
    /// This `Connection` was closed with [`close`](Connection::close).
    Closed,
    /// This end is write-only (`Pipe::new(false)`'s second end).
    WrongDirection,
    /// Every copy of the peer end is closed (or its processes died) and every whole
    /// message has been received.
    Eof,
    /// No message began before the timeout. Nothing was consumed.
    Timeout,
    /// The next message is `len` bytes, more than the `max` allowed; it is left in the
    /// pipe (read it with [`recv_bytes`](Connection::recv_bytes)).
    TooLong {
        /// Length of the message.
        len: u64,
        /// The limit given.
        max: u64,
    },
    /// The buffer given to [`recv_bytes_into`](Connection::recv_bytes_into) is too small:
    /// here is the whole message, so nothing is lost.
    BufferTooShort(Vec<u8>),
    /// A typed [`recv`](Connection::recv) got a message of another size: here it is.
    WrongSize(Vec<u8>),
    /// See [`SendError::Broken`].
    Broken,
    /// See [`SendError::Corrupt`].
    Corrupt(&'static str),
    /// The message could not be deserialized (`serde` feature); the message was consumed.
    Deserialize(String),
    /// A timed receive's timeout passed part-way through a message of `len` bytes that is
    /// too long to be whole in the pipe's ring (so it was being streamed): the part read
    /// is dropped, and the rest of the message is skipped by the next receive. (A message
    /// that fits the ring is consumed only once whole: its receive times out with
    /// [`Timeout`](Self::Timeout), consuming nothing.)
    TimeoutMidMessage {
        /// Length of the message dropped.
        len: u64,
    },
}

impl fmt::Debug for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed => f.write_str("Closed"),
            SendError::WrongDirection => f.write_str("WrongDirection"),
            SendError::BrokenPipe => f.write_str("BrokenPipe"),
            SendError::Broken => f.write_str("Broken"),
            SendError::Corrupt(w) => write!(f, "Corrupt({w:?})"),
            SendError::TooLarge(n) => write!(f, "TooLarge({n})"),
            SendError::Serialize(e) => write!(f, "Serialize({e:?})"),
        }
    }
}

/// What a send or a receive on a broken pipe says ([`SendError::Broken`],
/// [`RecvError::Broken`]).
const BROKEN: &str = "the pipe is broken: a process died in the middle of a message while \
                      another copy of its end lives on: the message in flight is lost; close \
                      this end and make a new Pipe";

/// What a send or a receive on a corrupt pipe says ([`SendError::Corrupt`],
/// [`RecvError::Corrupt`]).
fn corrupt(f: &mut fmt::Formatter<'_>, what: &str) -> fmt::Result {
    write!(
        f,
        "the pipe's shared state is corrupt: {what} (a process wrote into the pipe's memory \
         outside shmproc): close this end and make a new Pipe"
    )
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed => f.write_str(
                "send on a connection this process closed: a closed end cannot be used again",
            ),
            SendError::WrongDirection => {
                f.write_str("send on the read-only end of a one-way pipe (Pipe::new(false).0)")
            }
            SendError::BrokenPipe => f.write_str(
                "broken pipe: every copy of the receiving end is closed or its process died",
            ),
            SendError::Broken => f.write_str(BROKEN),
            SendError::Corrupt(w) => corrupt(f, w),
            SendError::TooLarge(n) => {
                write!(
                    f,
                    "message of {n} bytes is longer than the 2^48-byte limit: send it in pieces"
                )
            }
            SendError::Serialize(e) => write!(
                f,
                "the value could not be serialized: {e} (do both ends use the same type?)"
            ),
        }
    }
}

impl std::error::Error for SendError {}

impl fmt::Debug for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Closed => f.write_str("Closed"),
            RecvError::WrongDirection => f.write_str("WrongDirection"),
            RecvError::Eof => f.write_str("Eof"),
            RecvError::Timeout => f.write_str("Timeout"),
            RecvError::TooLong { len, max } => write!(f, "TooLong {{ len: {len}, max: {max} }}"),
            RecvError::BufferTooShort(v) => write!(f, "BufferTooShort(<{} bytes>)", v.len()),
            RecvError::WrongSize(v) => write!(f, "WrongSize(<{} bytes>)", v.len()),
            RecvError::Broken => f.write_str("Broken"),
            RecvError::Corrupt(w) => write!(f, "Corrupt({w:?})"),
            RecvError::Deserialize(e) => write!(f, "Deserialize({e:?})"),
            RecvError::TimeoutMidMessage { len } => {
                write!(f, "TimeoutMidMessage {{ len: {len} }}")
            }
        }
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Closed => f.write_str(
                "receive on a connection this process closed: a closed end cannot be used again",
            ),
            RecvError::WrongDirection => f.write_str(
                "receive on the write-only end of a one-way pipe (Pipe::new(false).1)",
            ),
            RecvError::Eof => f.write_str(
                "end of file: every copy of the sending end is closed or its process died (did this process drop its own copy of that end?)",
            ),
            RecvError::Timeout => f.write_str("no message arrived before the timeout"),
            RecvError::TooLong { len, max } => write!(
                f,
                "message of {len} bytes is longer than the maximum of {max}; it is still in the pipe"
            ),
            RecvError::BufferTooShort(v) => write!(
                f,
                "buffer too short for a message of {} bytes (the message is in the error)",
                v.len()
            ),
            RecvError::WrongSize(v) => write!(
                f,
                "message of {} bytes does not have the size of the requested type (the message is in the error)",
                v.len()
            ),
            RecvError::Broken => f.write_str(BROKEN),
            RecvError::Corrupt(w) => corrupt(f, w),
            RecvError::Deserialize(e) => write!(
                f,
                "the message could not be deserialized: {e} (do both ends use the same type?)"
            ),
            RecvError::TimeoutMidMessage { len } => write!(
                f,
                "the timeout passed part-way through a message of {len} bytes, too long for the pipe's ring: it was dropped"
            ),
        }
    }
}

impl std::error::Error for RecvError {}

impl RecvError {
    /// The message carried by [`BufferTooShort`](Self::BufferTooShort) or
    /// [`WrongSize`](Self::WrongSize).
    pub fn into_message(self) -> Option<Vec<u8>> {
        match self {
            RecvError::BufferTooShort(v) | RecvError::WrongSize(v) => Some(v),
            _ => None,
        }
    }
}

impl From<ring::ByteRingError> for SendError {
    fn from(e: ring::ByteRingError) -> Self {
        use ring::ByteRingError as R;
        match e {
            R::BrokenPipe | R::Eof => SendError::BrokenPipe,
            R::Broken | R::Timeout | R::TooLong { .. } | R::TimeoutMidMessage(_) => {
                SendError::Broken
            }
            R::Corrupt(w) => SendError::Corrupt(w),
        }
    }
}

impl From<ring::ByteRingError> for RecvError {
    fn from(e: ring::ByteRingError) -> Self {
        use ring::ByteRingError as R;
        match e {
            R::Eof | R::BrokenPipe => RecvError::Eof,
            R::Timeout => RecvError::Timeout,
            R::Broken => RecvError::Broken,
            R::Corrupt(w) => RecvError::Corrupt(w),
            R::TooLong { len, max } => RecvError::TooLong { len, max },
            R::TimeoutMidMessage(len) => RecvError::TimeoutMidMessage { len },
        }
    }
}
