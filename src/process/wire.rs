//! Messages with file descriptors over a Unix `SOCK_SEQPACKET` socket, each read and
//! write bounded by a deadline: the transport under spawn, the forkserver, handles that
//! travel and `Listener` / `Client`.
//!
//! A message is a 16-byte header (magic, kind, descriptor count, body length), the body,
//! and up to [`MAX_FDS`] descriptors (`SCM_RIGHTS`, attached to the first packet). A body
//! longer than one packet continues in the packets after it. Packets keep their
//! boundaries (`SOCK_SEQPACKET`), so a message of one packet sent by one thread is never
//! interleaved with another's: sockets shared between threads or processes (the
//! forkserver's control socket, a connection's handle socket) carry single-packet
//! messages only ([`send_packet`], [`recv_packet`]).
//!
//! Everything read is checked: a wrong magic number, a packet cut short, descriptors that
//! the header does not announce, a body longer than the caller allows are
//! [`WireError::Garbage`]; descriptors that arrive with a bad message are closed. Received
//! descriptors are close-on-exec (`MSG_CMSG_CLOEXEC`). Nothing blocks past its deadline
//! ([`WireError::Timeout`]), and a peer that closes its end is [`WireError::Eof`].

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::io::Errno;
use rustix::net::{
    recvmsg, sendmsg, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags,
    ReturnFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use std::fmt;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

/// The largest packet sent or accepted (header included).
pub(crate) const PACKET: usize = 32 << 10;
/// The most descriptors one message carries.
pub(crate) const MAX_FDS: usize = 64;
/// Bytes of the header at the start of each message.
const HEADER: usize = 16;
const MAGIC: u32 = u32::from_le_bytes(*b"SHMW");
/// Ancillary space for [`MAX_FDS`] descriptors.
const CMSG_SPACE: usize = rustix::cmsg_space!(ScmRights(MAX_FDS));

/// Why a message could not be sent or received.
#[derive(Debug)]
pub(crate) enum WireError {
    /// The peer closed its end (or died) before the message was complete.
    Eof,
    /// The deadline passed.
    Timeout,
    /// What arrived is not a message of this protocol (the text says what was wrong).
    Garbage(String),
    /// A system call failed.
    Os(&'static str, std::io::Error),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Eof => f.write_str("the peer closed the socket (or exited)"),
            WireError::Timeout => f.write_str("the peer did not answer before the deadline"),
            WireError::Garbage(what) => {
                write!(f, "the peer does not speak shmproc's protocol: {what}")
            }
            WireError::Os(op, e) => write!(f, "{op} failed: {e}{}", crate::error::os_hint(e)),
        }
    }
}

/// A message received: its kind, its body and the descriptors that came with it.
#[derive(Debug)]
pub(crate) struct Msg {
    pub(crate) kind: u8,
    pub(crate) body: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
}

/// A connected pair of close-on-exec `SOCK_SEQPACKET` Unix sockets.
pub(crate) fn pair() -> Result<(OwnedFd, OwnedFd), WireError> {
    rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| WireError::Os("socketpair", e.into()))
}

/// A deadline `timeout` from now (`None`: too far to represent, i.e. never).
pub(crate) fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Waits until `fd` is ready for `flags` or `deadline` passes (`Err(Timeout)`). A hang-up
/// or error counts as ready: the next call reports it.
pub(crate) fn wait(
    fd: BorrowedFd<'_>,
    flags: PollFlags,
    deadline: Option<Instant>,
) -> Result<(), WireError> {
    loop {
        let ts = match deadline {
            None => None,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    // One last look without waiting.
                    Some(Timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    })
                } else {
                    Some(Timespec {
                        tv_sec: left.as_secs().min(i64::MAX as u64) as i64,
                        tv_nsec: left.subsec_nanos() as _,
                    })
                }
            }
        };
        let mut fds = [PollFd::from_borrowed_fd(fd, flags)];
        match poll(&mut fds, ts.as_ref()) {
            Ok(n) if n > 0 => return Ok(()),
            Ok(_) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(WireError::Timeout);
                }
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(WireError::Os("poll", e.into())),
        }
    }
}

fn header(kind: u8, nfds: usize, body_len: usize) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..4].copy_from_slice(&MAGIC.to_le_bytes());
    h[4] = kind;
    h[6..8].copy_from_slice(&(nfds as u16).to_le_bytes());
    h[8..16].copy_from_slice(&(body_len as u64).to_le_bytes());
    h
}

/// Sends one packet of `parts` (concatenated) with `fds`, waiting for room until
/// `deadline`.
fn send_raw(
    sock: BorrowedFd<'_>,
    parts: &[&[u8]],
    fds: &[BorrowedFd<'_>],
    deadline: Option<Instant>,
) -> Result<(), WireError> {
    let iov: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let mut space = [MaybeUninit::<u8>::uninit(); CMSG_SPACE];
    loop {
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(WireError::Garbage(format!(
                "{} descriptors do not fit one message",
                fds.len()
            )));
        }
        match sendmsg(
            sock,
            &iov,
            &mut control,
            SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
        ) {
            Ok(_) => return Ok(()),
            Err(Errno::AGAIN) => wait(sock, PollFlags::OUT, deadline)?,
            Err(Errno::INTR) => {}
            Err(Errno::PIPE | Errno::CONNRESET | Errno::NOTCONN) => return Err(WireError::Eof),
            Err(e) => return Err(WireError::Os("sendmsg", e.into())),
        }
    }
}

/// Receives one packet into `buf`, with its descriptors, waiting until `deadline`.
/// `Ok((0, _))` is end of file.
fn recv_raw(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    deadline: Option<Instant>,
) -> Result<(usize, Vec<OwnedFd>), WireError> {
    let mut space = [MaybeUninit::<u8>::uninit(); CMSG_SPACE];
    loop {
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(buf)];
        match recvmsg(
            sock,
            &mut iov,
            &mut control,
            RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(r) => {
                // Take the descriptors first, so that they are closed whatever goes wrong.
                let mut fds = Vec::new();
                for m in control.drain() {
                    if let RecvAncillaryMessage::ScmRights(it) = m {
                        fds.extend(it);
                    }
                }
                if r.flags.contains(ReturnFlags::TRUNC) {
                    return Err(WireError::Garbage(format!(
                        "a packet longer than {} bytes",
                        buf.len()
                    )));
                }
                if r.flags.contains(ReturnFlags::CTRUNC) {
                    return Err(WireError::Garbage(format!(
                        "more than {MAX_FDS} descriptors in one message"
                    )));
                }
                return Ok((r.bytes, fds));
            }
            Err(Errno::AGAIN) => wait(sock, PollFlags::IN, deadline)?,
            Err(Errno::INTR) => {}
            Err(Errno::CONNRESET) => return Ok((0, Vec::new())),
            Err(e) => return Err(WireError::Os("recvmsg", e.into())),
        }
    }
}

/// Sends a message of one packet (`body` of at most `PACKET - 16` bytes).
pub(crate) fn send_packet(
    sock: BorrowedFd<'_>,
    kind: u8,
    body: &[u8],
    fds: &[BorrowedFd<'_>],
    deadline: Option<Instant>,
) -> Result<(), WireError> {
    if body.len() > PACKET - HEADER {
        return Err(WireError::Garbage(format!(
            "a message of {} bytes is longer than one packet",
            body.len()
        )));
    }
    let h = header(kind, fds.len(), body.len());
    send_raw(sock, &[&h, body], fds, deadline)
}

/// Sends a message of any length: the first packet carries the header, the descriptors
/// and the start of the body; the rest follows in further packets. Only for sockets that
/// no other thread or process sends on at the same time.
pub(crate) fn send(
    sock: BorrowedFd<'_>,
    kind: u8,
    body: &[u8],
    fds: &[BorrowedFd<'_>],
    deadline: Option<Instant>,
) -> Result<(), WireError> {
    let first = body.len().min(PACKET - HEADER);
    let h = header(kind, fds.len(), body.len());
    send_raw(sock, &[&h, &body[..first]], fds, deadline)?;
    for chunk in body[first..].chunks(PACKET) {
        send_raw(sock, &[chunk], &[], deadline)?;
    }
    Ok(())
}

/// Parses a first packet: kind, announced descriptors, body length.
fn parse_header(p: &[u8], fds: usize, max_body: usize) -> Result<(u8, usize), WireError> {
    if p.len() < HEADER {
        return Err(WireError::Garbage(format!(
            "a packet of {} bytes, shorter than a header",
            p.len()
        )));
    }
    let magic = u32::from_le_bytes(p[..4].try_into().expect("4 bytes"));
    if magic != MAGIC {
        return Err(WireError::Garbage(format!(
            "bad magic number {magic:#010x}"
        )));
    }
    let nfds = u16::from_le_bytes(p[6..8].try_into().expect("2 bytes")) as usize;
    if nfds != fds {
        return Err(WireError::Garbage(format!(
            "{fds} descriptors arrived, {nfds} announced"
        )));
    }
    let len = u64::from_le_bytes(p[8..16].try_into().expect("8 bytes"));
    if len > max_body as u64 {
        return Err(WireError::Garbage(format!(
            "a message of {len} bytes, more than the {max_body} allowed here"
        )));
    }
    Ok((p[4], len as usize))
}

/// Runs `f` with this thread's receive buffer of [`PACKET`] bytes. One buffer, made and
/// zeroed once, not a fresh zeroed one per call: in a forkserver child (and in the server
/// after each fork) every page written is a copy-on-write fault, and zeroing 32 KiB cost
/// eight of them per message.
fn with_buf<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut b) => {
            if b.len() < PACKET {
                b.resize(PACKET, 0);
            }
            f(&mut b[..PACKET])
        }
        // Never nested today; if it were, a buffer of its own.
        Err(_) => f(&mut vec![0u8; PACKET]),
    })
}

/// Receives a message of one packet (see [`send_packet`]).
pub(crate) fn recv_packet(
    sock: BorrowedFd<'_>,
    deadline: Option<Instant>,
) -> Result<Msg, WireError> {
    with_buf(|buf| {
        let (n, fds) = recv_raw(sock, buf, deadline)?;
        if n == 0 {
            return Err(WireError::Eof);
        }
        let (kind, len) = parse_header(&buf[..n], fds.len(), PACKET - HEADER)?;
        if n != HEADER + len {
            return Err(WireError::Garbage(format!(
                "a packet of {n} bytes announcing a body of {len}"
            )));
        }
        Ok(Msg {
            kind,
            body: buf[HEADER..n].to_vec(),
            fds,
        })
    })
}

/// Receives a message of any length up to `max_body` bytes (see [`send`]), every packet
/// by `deadline`.
pub(crate) fn recv(
    sock: BorrowedFd<'_>,
    max_body: usize,
    deadline: Option<Instant>,
) -> Result<Msg, WireError> {
    with_buf(|buf| {
        let (n, fds) = recv_raw(sock, buf, deadline)?;
        if n == 0 {
            return Err(WireError::Eof);
        }
        let (kind, len) = parse_header(&buf[..n], fds.len(), max_body)?;
        if n - HEADER > len {
            return Err(WireError::Garbage(format!(
                "a first packet of {n} bytes announcing a body of {len}"
            )));
        }
        // Grow with what arrives; never allocate a length read from the socket up front.
        let mut body = Vec::with_capacity(len.min(1 << 20));
        body.extend_from_slice(&buf[HEADER..n]);
        while body.len() < len {
            let (n, more) = recv_raw(sock, buf, deadline)?;
            if n == 0 {
                return Err(WireError::Eof);
            }
            if !more.is_empty() {
                return Err(WireError::Garbage(
                    "descriptors in the middle of a message".into(),
                ));
            }
            if body.len() + n > len {
                return Err(WireError::Garbage(format!(
                    "a message longer than the {len} bytes announced"
                )));
            }
            body.extend_from_slice(&buf[..n]);
        }
        Ok(Msg { kind, body, fds })
    })
}

/// Appends little-endian fields to a body.
#[derive(Default)]
pub(crate) struct Enc(pub(crate) Vec<u8>);

impl Enc {
    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A length (u64) and the bytes.
    pub(crate) fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u64(v.len() as u64);
        self.0.extend_from_slice(v);
        self
    }
    pub(crate) fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
}

/// Reads the fields [`Enc`] wrote, each checked against what is left.
pub(crate) struct Dec<'a> {
    b: &'a [u8],
}

impl<'a> Dec<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Dec<'a> {
        Dec { b }
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], WireError> {
        if self.b.len() < n {
            return Err(WireError::Garbage(format!(
                "the message ends inside {what} ({n} bytes wanted, {} left)",
                self.b.len()
            )));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }
    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }
    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8 bytes"),
        ))
    }
    pub(crate) fn bytes(&mut self, what: &str) -> Result<&'a [u8], WireError> {
        let n = self.u64(what)?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        self.take(n, what)
    }
    pub(crate) fn str(&mut self, what: &str) -> Result<&'a str, WireError> {
        let b = self.bytes(what)?;
        std::str::from_utf8(b).map_err(|_| WireError::Garbage(format!("{what} is not UTF-8")))
    }
    /// Checks that nothing is left.
    pub(crate) fn finish(&self, what: &str) -> Result<(), WireError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(WireError::Garbage(format!(
                "{} bytes after the end of {what}",
                self.b.len()
            )))
        }
    }
}

/// True when `fd` is a Unix `SOCK_SEQPACKET` socket (an inherited descriptor that may be
/// ours).
pub(crate) fn is_seqpacket(fd: BorrowedFd<'_>) -> bool {
    rustix::net::sockopt::socket_type(fd).is_ok_and(|t| t == SocketType::SEQPACKET)
        && rustix::net::sockopt::socket_domain(fd).is_ok_and(|d| d == AddressFamily::UNIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fd::AsFd;

    #[test]
    fn messages_of_every_size_with_descriptors() {
        let (a, b) = pair().unwrap();
        let dl = deadline(Duration::from_secs(5));
        for len in [0, 1, PACKET - HEADER, PACKET - HEADER + 1, 5 * PACKET + 7] {
            let body: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let (r, w) = rustix::pipe::pipe().unwrap();
            send(a.as_fd(), 9, &body, &[r.as_fd(), w.as_fd()], dl).unwrap();
            let m = recv(b.as_fd(), 1 << 20, dl).unwrap();
            assert_eq!((m.kind, m.body.len(), m.fds.len()), (9, len, 2));
            assert_eq!(m.body, body);
        }
    }

    #[test]
    fn garbage_timeout_and_eof_are_errors() {
        let (a, b) = pair().unwrap();
        let short = deadline(Duration::from_millis(20));
        assert!(matches!(
            recv(b.as_fd(), 100, short),
            Err(WireError::Timeout)
        ));
        rustix::net::send(&a, b"not a header at all", SendFlags::empty()).unwrap();
        assert!(matches!(
            recv(b.as_fd(), 100, short),
            Err(WireError::Garbage(_))
        ));
        send_packet(a.as_fd(), 1, &[0; 200], &[], short).unwrap();
        assert!(matches!(
            recv(b.as_fd(), 100, short),
            Err(WireError::Garbage(_))
        ));
        drop(a);
        assert!(matches!(recv(b.as_fd(), 100, short), Err(WireError::Eof)));
    }

    #[test]
    fn fields_are_checked() {
        let mut e = Enc::default();
        e.u8(1).u32(2).u64(3).str("four");
        let mut d = Dec::new(&e.0);
        assert_eq!(d.u8("a").unwrap(), 1);
        assert_eq!(d.u32("b").unwrap(), 2);
        assert_eq!(d.u64("c").unwrap(), 3);
        assert_eq!(d.str("d").unwrap(), "four");
        d.finish("e").unwrap();
        let mut bad = Enc::default();
        bad.u64(u64::MAX);
        assert!(Dec::new(&bad.0).bytes("huge").is_err());
    }
}
