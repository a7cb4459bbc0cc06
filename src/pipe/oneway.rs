//! One-way pipes with typed ends ([`Pipe::channel`]), and the bounds of `send` / `recv`
//! that explain themselves when a type does not fit.

use super::{Connection, Pipe, RecvError, SendError, DEFAULT_CAPACITY};
use crate::arena::Arena;
use crate::error::Result;
use std::fmt;
use std::time::Duration;

/// A value [`Connection::send`] copies as its bytes: every `bytemuck::NoUninit` type
/// (numbers, arrays and `#[repr(C)]` structs of them). Implemented for all of them; it
/// exists so that sending text or a heap type says what to use instead:
///
/// ```compile_fail
/// let (tx, _rx) = shmproc::pipe::Pipe::channel().unwrap();
/// // error: `String` is not plain data: `send` copies a value's bytes
/// //  note: for text or a byte buffer, use `send_bytes(s.as_bytes())`; for any serde
/// //        value (String, Vec, structs), use `send_obj(&value)`
/// tx.send(&String::from("hi"));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not plain data: `send` copies a value's bytes",
    label = "not plain data (bytemuck::NoUninit)",
    note = "for text or a byte buffer, use `send_bytes(s.as_bytes())`; for any serde value \
            (String, Vec, structs), use `send_obj(&value)`"
)]
pub trait PlainSend: bytemuck::NoUninit {}
impl<T: bytemuck::NoUninit> PlainSend for T {}

/// A value [`Connection::recv`] rebuilds from bytes: every `bytemuck::AnyBitPattern`
/// type. Implemented for all of them; it exists so that receiving text or a heap type
/// says what to use instead.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be rebuilt from bytes: `recv` reads plain data only",
    label = "not plain data (bytemuck::AnyBitPattern)",
    note = "for text or a byte buffer, use `recv_bytes()` (then `String::from_utf8`); for \
            any serde value, use `recv_obj::<T>()`"
)]
pub trait PlainRecv: bytemuck::AnyBitPattern {}
impl<T: bytemuck::AnyBitPattern> PlainRecv for T {}

impl Pipe {
    /// A one-way pipe in the [global arena](Arena::global), as typed ends: what the
    /// [`Sender`] sends the [`Receiver`] receives, and a send on the receiving end does
    /// not compile. In the order of `std::sync::mpsc::channel` (Python's
    /// `Pipe(duplex=False)` returns the reader first).
    ///
    /// # Errors
    /// As [`Pipe::new`].
    ///
    /// ```
    /// use shmproc::pipe::Pipe;
    /// let (tx, rx) = Pipe::channel()?;
    /// tx.send(&42u64)?;
    /// tx.send_bytes(b"text goes as bytes")?;
    /// assert_eq!(rx.recv::<u64>()?, 42);
    /// assert_eq!(rx.recv_bytes()?, b"text goes as bytes");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// ```compile_fail
    /// let (tx, rx) = shmproc::pipe::Pipe::channel().unwrap();
    /// rx.send(&1u8); // a Receiver has no send
    /// ```
    pub fn channel() -> Result<(Sender, Receiver)> {
        Self::channel_in(&Arena::global()?, DEFAULT_CAPACITY)
    }

    /// [`channel`](Self::channel) in `arena`, with `capacity` bytes in flight (a power of
    /// two from 32 to 2^30; messages of any size stream through).
    ///
    /// # Errors
    /// As [`Pipe::new_in`].
    pub fn channel_in(arena: &Arena, capacity: usize) -> Result<(Sender, Receiver)> {
        let (rx, tx) = Pipe::new_in(arena, false, capacity)?;
        Ok((Sender { conn: tx }, Receiver { conn: rx }))
    }
}

/// The sending end of a one-way pipe ([`Pipe::channel`]). Travels to other processes as
/// a [`Connection`] does (in a `Process::function`'s arguments, or over
/// [`Connection::send_handle`]).
pub struct Sender {
    conn: Connection,
}

/// The receiving end of a one-way pipe ([`Pipe::channel`]). Travels as a
/// [`Connection`] does.
pub struct Receiver {
    conn: Connection,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.conn.debug_as("Sender", f)
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.conn.debug_as("Receiver", f)
    }
}

impl Sender {
    /// Sends `bytes` as one message (see [`Connection::send_bytes`]).
    ///
    /// # Errors
    /// As [`Connection::send_bytes`].
    pub fn send_bytes(&self, bytes: &[u8]) -> std::result::Result<(), SendError> {
        self.conn.send_bytes(bytes)
    }

    /// Sends a plain-data value as its bytes (see [`Connection::send`]).
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub fn send<T: PlainSend>(&self, value: &T) -> std::result::Result<(), SendError> {
        self.conn.send(value)
    }

    /// Sends a message of `len` bytes written in place by `fill` (see
    /// [`Connection::send_with`]).
    ///
    /// # Errors
    /// As [`Connection::send_with`].
    pub fn send_with(
        &self,
        len: usize,
        fill: impl FnMut(usize, &mut [u8]),
    ) -> std::result::Result<(), SendError> {
        self.conn.send_with(len, fill)
    }

    /// Sends any serde value (see [`Connection::send_obj`]). Needs the `serde` feature
    /// (on by default).
    ///
    /// # Errors
    /// As [`Connection::send_obj`].
    #[cfg(feature = "serde")]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub fn send_obj<T: serde::Serialize + ?Sized>(
        &self,
        value: &T,
    ) -> std::result::Result<(), SendError> {
        self.conn.send_obj(value)
    }

    /// Closes this end (the receiver sees EOF once every copy is closed).
    pub fn close(&mut self) {
        self.conn.close();
    }

    /// True once [`close`](Self::close)d.
    pub fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }

    /// The bytes in flight the pipe holds.
    pub fn capacity(&self) -> usize {
        self.conn.capacity()
    }

    /// The end as an untyped [`Connection`] (which can only send).
    pub fn into_connection(self) -> Connection {
        self.conn
    }
}

impl Receiver {
    /// Receives one message (see [`Connection::recv_bytes`]).
    ///
    /// # Errors
    /// As [`Connection::recv_bytes`].
    pub fn recv_bytes(&self) -> std::result::Result<Vec<u8>, RecvError> {
        self.conn.recv_bytes()
    }

    /// Receives one message, waiting at most `timeout` for it to begin (see
    /// [`Connection::recv_bytes_timeout`]).
    ///
    /// # Errors
    /// As [`Connection::recv_bytes_timeout`].
    pub fn recv_bytes_timeout(&self, timeout: Duration) -> std::result::Result<Vec<u8>, RecvError> {
        self.conn.recv_bytes_timeout(timeout)
    }

    /// Receives one message into `buf` (see [`Connection::recv_bytes_into`]).
    ///
    /// # Errors
    /// As [`Connection::recv_bytes_into`].
    pub fn recv_bytes_into(&self, buf: &mut [u8]) -> std::result::Result<usize, RecvError> {
        self.conn.recv_bytes_into(buf)
    }

    /// Receives a plain-data value (see [`Connection::recv`]).
    ///
    /// # Errors
    /// As [`Connection::recv`].
    pub fn recv<T: PlainRecv>(&self) -> std::result::Result<T, RecvError> {
        self.conn.recv()
    }

    /// [`recv`](Self::recv), waiting at most `timeout` for the message to begin.
    ///
    /// # Errors
    /// As [`Connection::recv_timeout`].
    pub fn recv_timeout<T: PlainRecv>(
        &self,
        timeout: Duration,
    ) -> std::result::Result<T, RecvError> {
        self.conn.recv_timeout(timeout)
    }

    /// Receives a serde value (see [`Connection::recv_obj`]). Needs the `serde` feature
    /// (on by default).
    ///
    /// # Errors
    /// As [`Connection::recv_obj`].
    #[cfg(feature = "serde")]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub fn recv_obj<T: serde::de::DeserializeOwned>(&self) -> std::result::Result<T, RecvError> {
        self.conn.recv_obj()
    }

    /// True if a message is ready (see [`Connection::poll`]).
    ///
    /// # Errors
    /// As [`Connection::poll`].
    pub fn poll(&self) -> std::result::Result<bool, RecvError> {
        self.conn.poll()
    }

    /// Waits at most `timeout` for a message (see [`Connection::poll_timeout`]).
    ///
    /// # Errors
    /// As [`Connection::poll_timeout`].
    pub fn poll_timeout(&self, timeout: Duration) -> std::result::Result<bool, RecvError> {
        self.conn.poll_timeout(timeout)
    }

    /// Closes this end.
    pub fn close(&mut self) {
        self.conn.close();
    }

    /// True once [`close`](Self::close)d.
    pub fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }

    /// The end as an untyped [`Connection`] (which can only receive).
    pub fn into_connection(self) -> Connection {
        self.conn
    }
}

impl std::io::Write for Sender {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::Write::write(&mut self.conn, buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::Write::flush(&mut self.conn)
    }
}

impl std::io::Read for Receiver {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        std::io::Read::read(&mut self.conn, buf)
    }
}

/// The end's direction checked on arrival: a `Sender` is a connection that can only
/// send, a `Receiver` one that can only receive.
pub(crate) fn sender_from(conn: Connection) -> Option<Sender> {
    (conn.writable() && !conn.readable()).then_some(Sender { conn })
}

/// See [`sender_from`].
pub(crate) fn receiver_from(conn: Connection) -> Option<Receiver> {
    (conn.readable() && !conn.writable()).then_some(Receiver { conn })
}

impl Sender {
    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl Receiver {
    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }
}
