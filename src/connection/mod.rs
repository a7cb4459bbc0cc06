//! `Listener` and `Client`: Python's `multiprocessing.connection`, for processes that are
//! not related by `fork`.
//!
//! A server [`Listener::bind`]s a Unix socket (a path in the file system, or a name in
//! Linux's abstract namespace) and [`accept`](Listener::accept)s; a client
//! [`Client::connect`]s. Both get a duplex [`Connection`] whose data path is shared
//! memory: the server makes a pipe in a fresh anonymous arena and sends the client its
//! end (the arena's `memfd` and the end's liveness token) over the socket. Messages then
//! never touch the socket; EOF works as for any pipe (a client that dies, even by
//! `SIGKILL`, is EOF for the server).
//!
//! # Authentication
//! With an authkey, both sides prove they know it before anything else crosses, by the
//! challenge-response of Python's `multiprocessing.connection` (3.12 and later, which
//! authenticates both ways): each side sends 32 random bytes, and the other answers with
//! HMAC-SHA256(authkey, role ‖ bytes), compared in constant time (`hmac` and `sha2`
//! crates; the role label keeps an answer of one side from serving as the other's). A
//! wrong key is [`ConnectionError::Authentication`] on both sides. A server with a key
//! refuses clients without one; a client with a key refuses a server that does not
//! authenticate. **An abstract-namespace name has no file permissions: any local user
//! can connect, so give such a listener an authkey.**
//!
//! # Handles over an established connection
//! The socket stays beside each end. [`Connection::send_handle`] sends any travelling
//! handle over it (an [`Arena`], another [`Connection`] end, and, with the
//! object layer, every primitive); [`Connection::recv_handle`] receives one, type-checked.
//! Handles and messages take different paths, so they are not ordered with each other:
//! send a message after a handle to say "it is there" if the receiver must wait for it.
//!
//! # Never a hang
//! Every read of the handshake has a deadline ([`Listener::set_handshake_timeout`],
//! [`Client::connect_timeout`]; 10 s by default). A peer that dies mid-handshake, closes
//! early, sends garbage or stays silent makes that `accept` or `connect` fail with a
//! clear error; the listener stays usable.
//!
//! ```
//! use shmproc::connection::{Address, Client, Listener};
//!
//! let address = Address::abstract_name(format!("shmproc-doc-{}", std::process::id()));
//! let listener = Listener::bind(&address, Some(b"secret"))?;
//! let client = std::thread::spawn(move || -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//!     let conn = Client::connect(&address, Some(b"secret"))?;
//!     conn.send_bytes(b"hello")?;
//!     assert_eq!(conn.recv_bytes()?, b"world");
//!     Ok(())
//! });
//! let conn = listener.accept()?;
//! assert_eq!(conn.recv_bytes()?, b"hello");
//! conn.send_bytes(b"world")?;
//! client.join().unwrap().unwrap();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod auth;

use crate::arena::Arena;
use crate::pipe::{Connection, Pipe};
use crate::process::travel::{self, Travel, TravelError};
use crate::process::wire::{self, Dec, Enc, WireError};
use rustix::fd::{AsFd, OwnedFd};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const HELLO: u8 = 20;
const CHALLENGE: u8 = 21;
const RESPONSE: u8 = 22;
const WELCOME: u8 = 23;
const FAILURE: u8 = 24;
const PIPE: u8 = 25;
const ACK: u8 = 26;
const HANDLE: u8 = 27;

const MAGIC: &[u8] = b"shmproc-connection";
const VERSION: u32 = 1;

/// How long each step of a handshake may take, by default.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `send_handle` waits for room on the socket.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a [`Listener`] listens: a socket file, or a name in Linux's abstract namespace
/// (no file; gone when the listener closes).
///
/// ```
/// use shmproc::connection::Address;
///
/// let a: Address = "@my-service".parse()?;
/// assert_eq!(a, Address::abstract_name("my-service"));
/// assert_eq!(a.to_string(), "@my-service");
/// let p: Address = "/tmp/my-service.sock".parse()?;
/// assert_eq!(p, Address::path("/tmp/my-service.sock"));
/// # Ok::<(), shmproc::connection::ConnectionError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A socket file.
    Path(PathBuf),
    /// A name in the abstract namespace (at most 107 bytes).
    Abstract(Vec<u8>),
}

impl Address {
    /// A socket file at `path`.
    pub fn path(path: impl AsRef<Path>) -> Address {
        Address::Path(path.as_ref().to_path_buf())
    }

    /// A name in the abstract namespace.
    pub fn abstract_name(name: impl AsRef<[u8]>) -> Address {
        Address::Abstract(name.as_ref().to_vec())
    }

    fn sockaddr(&self) -> Result<SocketAddrUnix, ConnectionError> {
        let r = match self {
            Address::Path(p) => SocketAddrUnix::new(p.as_path()),
            Address::Abstract(n) => SocketAddrUnix::new_abstract_name(n),
        };
        r.map_err(|e| ConnectionError::InvalidAddress(format!("{self}: {e}")))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Path(p) => write!(f, "{}", p.display()),
            Address::Abstract(n) => write!(f, "@{}", String::from_utf8_lossy(n)),
        }
    }
}

/// `@name` is an abstract name; anything else a path.
impl std::str::FromStr for Address {
    type Err = ConnectionError;
    fn from_str(s: &str) -> Result<Address, ConnectionError> {
        if s.is_empty() {
            return Err(ConnectionError::InvalidAddress("an empty address".into()));
        }
        Ok(match s.strip_prefix('@') {
            Some(name) => Address::abstract_name(name),
            None => Address::path(s),
        })
    }
}

impl From<&Address> for Address {
    fn from(a: &Address) -> Address {
        a.clone()
    }
}

/// Why a listener or client failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The address cannot be used (too long, empty).
    InvalidAddress(String),
    /// Something already listens there (or a file is in the way).
    AddressInUse(String),
    /// A system call failed.
    Os {
        /// What was being done.
        op: &'static str,
        /// The error the kernel returned.
        source: std::io::Error,
    },
    /// The peer did not answer in time (`during` says which step).
    Timeout {
        /// The step of the handshake.
        during: &'static str,
    },
    /// The peer closed the socket (or died) during the handshake.
    PeerClosed {
        /// The step of the handshake.
        during: &'static str,
    },
    /// The peer sent something that is not this protocol.
    Garbage(String),
    /// The authkeys differ (or one side has none): the text says which side found out.
    Authentication(String),
    /// The pipe's end did not arrive whole.
    Travel(TravelError),
    /// The pipe's arena could not be made.
    Arena(crate::Error),
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionError::InvalidAddress(a) => write!(
                f,
                "invalid address: {a} (a path or an abstract name, not empty, at most 107 \
                 bytes)"
            ),
            ConnectionError::AddressInUse(a) => write!(
                f,
                "address {a} is in use (another listener, or a stale socket file: remove it)"
            ),
            ConnectionError::Os { op, source } => {
                write!(f, "{op} failed: {source}{}", crate::error::os_hint(source))
            }
            ConnectionError::Timeout { during } => write!(
                f,
                "the peer did not answer in time ({during}): is it a shmproc Listener / \
                 Client, and is it running? (or give a longer timeout)"
            ),
            ConnectionError::PeerClosed { during } => write!(
                f,
                "the peer closed the connection ({during}): it exited, or refused this \
                 side (see its own error)"
            ),
            ConnectionError::Garbage(what) => write!(
                f,
                "the peer is not a shmproc Listener / Client of this version: {what}"
            ),
            ConnectionError::Authentication(what) => write!(
                f,
                "authentication failed: {what}: give both sides the same authkey (or None \
                 to both)"
            ),
            ConnectionError::Travel(e) => write!(f, "the pipe did not arrive whole: {e}"),
            ConnectionError::Arena(e) => write!(f, "the pipe could not be made: {e}"),
        }
    }
}

impl std::error::Error for ConnectionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectionError::Os { source, .. } => Some(source),
            ConnectionError::Travel(e) => Some(e),
            ConnectionError::Arena(e) => Some(e),
            _ => None,
        }
    }
}

impl From<crate::Error> for ConnectionError {
    fn from(e: crate::Error) -> Self {
        ConnectionError::Arena(e)
    }
}

/// A wire error during step `during` of a handshake.
fn step(during: &'static str) -> impl Fn(WireError) -> ConnectionError {
    move |e| match e {
        WireError::Eof => ConnectionError::PeerClosed { during },
        WireError::Timeout => ConnectionError::Timeout { during },
        WireError::Garbage(g) => ConnectionError::Garbage(format!("{during}: {g}")),
        WireError::Os(op, source) => ConnectionError::Os { op, source },
    }
}

/// A travel error during step `during`.
fn travel_step(during: &'static str) -> impl Fn(TravelError) -> ConnectionError {
    move |e| match e {
        TravelError::Eof => ConnectionError::PeerClosed { during },
        TravelError::Timeout => ConnectionError::Timeout { during },
        TravelError::Garbage(g) => ConnectionError::Garbage(format!("{during}: {g}")),
        other => ConnectionError::Travel(other),
    }
}

/// Receives a packet of `kind` (anything else is garbage).
fn expect(
    sock: &OwnedFd,
    kind: u8,
    during: &'static str,
    deadline: Option<Instant>,
) -> Result<Vec<u8>, ConnectionError> {
    let m = wire::recv_packet(sock.as_fd(), deadline).map_err(step(during))?;
    if m.kind != kind {
        return Err(ConnectionError::Garbage(format!(
            "{during}: a message of kind {} where {kind} was expected",
            m.kind
        )));
    }
    if !m.fds.is_empty() {
        return Err(ConnectionError::Garbage(format!(
            "{during}: unexpected file descriptors"
        )));
    }
    Ok(m.body)
}

fn send(
    sock: &OwnedFd,
    kind: u8,
    body: &[u8],
    during: &'static str,
    deadline: Option<Instant>,
) -> Result<(), ConnectionError> {
    wire::send_packet(sock.as_fd(), kind, body, &[], deadline).map_err(step(during))
}

fn socket() -> Result<OwnedFd, ConnectionError> {
    rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| ConnectionError::Os {
        op: "socket",
        source: e.into(),
    })
}

/// A server that accepts connections: Python's `multiprocessing.connection.Listener`.
///
/// See the [module docs](self) for an example. Dropping it stops listening (and removes
/// its socket file).
pub struct Listener {
    sock: OwnedFd,
    address: Address,
    authkey: Option<Vec<u8>>,
    handshake_timeout: Duration,
    capacity: usize,
    /// The socket file's identity, to remove only our own file on drop.
    file: Option<(u64, u64)>,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("address", &self.address)
            .field("authenticates", &self.authkey.is_some())
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// Listens on `address`; clients must prove they know `authkey` if one is given.
    ///
    /// # Errors
    /// [`ConnectionError::AddressInUse`], [`ConnectionError::InvalidAddress`],
    /// [`ConnectionError::Os`].
    pub fn bind(
        address: impl Into<Address>,
        authkey: Option<&[u8]>,
    ) -> Result<Listener, ConnectionError> {
        let address = address.into();
        let sa = address.sockaddr()?;
        let sock = socket()?;
        rustix::net::bind(&sock, &sa).map_err(|e| match e {
            Errno::ADDRINUSE => ConnectionError::AddressInUse(address.to_string()),
            e => ConnectionError::Os {
                op: "bind",
                source: e.into(),
            },
        })?;
        let file = match &address {
            Address::Path(p) => rustix::fs::stat(p.as_path())
                .ok()
                .map(|st| (st.st_dev, st.st_ino)),
            Address::Abstract(_) => None,
        };
        let listener = Listener {
            sock,
            address,
            authkey: authkey.map(<[u8]>::to_vec),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            capacity: crate::pipe::DEFAULT_CAPACITY,
            file,
        };
        rustix::net::listen(&listener.sock, 128).map_err(|e| ConnectionError::Os {
            op: "listen",
            source: e.into(),
        })?;
        Ok(listener)
    }

    /// The address listened on.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// How long each step of an accepted client's handshake may take (default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub fn set_handshake_timeout(&mut self, timeout: Duration) {
        self.handshake_timeout = timeout;
    }

    /// The capacity of each direction of the pipes made for clients (a power of two
    /// from 32 bytes to 1 GiB; default 64 KiB).
    pub fn set_capacity(&mut self, bytes: usize) {
        self.capacity = bytes;
    }

    /// Waits for a client and returns the server's end of its connection (Python's
    /// `accept`).
    ///
    /// # Errors
    /// A client that fails the handshake (wrong authkey, garbage, closes early, silent
    /// past the handshake timeout) makes this call fail; the listener stays usable.
    pub fn accept(&self) -> Result<Connection, ConnectionError> {
        self.accept_deadline(None)
    }

    /// As [`accept`](Self::accept), waiting at most `timeout` for a client to arrive.
    ///
    /// # Errors
    /// [`ConnectionError::Timeout`] when none arrives, and as [`accept`](Self::accept).
    pub fn accept_timeout(&self, timeout: Duration) -> Result<Connection, ConnectionError> {
        self.accept_deadline(wire::deadline(timeout))
    }

    fn accept_deadline(&self, deadline: Option<Instant>) -> Result<Connection, ConnectionError> {
        wire::wait(self.sock.as_fd(), rustix::event::PollFlags::IN, deadline)
            .map_err(step("waiting for a client"))?;
        let conn = loop {
            match rustix::net::accept_with(&self.sock, SocketFlags::CLOEXEC) {
                Ok(c) => break c,
                Err(Errno::INTR) => continue,
                Err(e) => {
                    return Err(ConnectionError::Os {
                        op: "accept",
                        source: e.into(),
                    })
                }
            }
        };
        self.handshake(conn)
    }

    fn handshake(&self, sock: OwnedFd) -> Result<Connection, ConnectionError> {
        let deadline = || wire::deadline(self.handshake_timeout);
        let mut hello = Enc::default();
        hello
            .bytes(MAGIC)
            .u32(VERSION)
            .u8(self.authkey.is_some() as u8);
        send(&sock, HELLO, &hello.0, "hello", deadline())?;
        if let Some(key) = &self.authkey {
            // The client proves it knows the key, then we prove it.
            auth::deliver(&sock, key, auth::Role::Client, deadline)?;
            auth::answer(&sock, key, auth::Role::Server, deadline)?;
        }
        let arena_size =
            (crate::arena::MIN_SIZE as usize + 4096 + 2 * self.capacity).next_multiple_of(4096);
        let arena = Arena::anonymous(arena_size)?;
        let (ours, theirs) = Pipe::new_in(&arena, true, self.capacity)?;
        travel::send_one(sock.as_fd(), PIPE, &theirs, deadline())
            .map_err(travel_step("sending the pipe"))?;
        expect(
            &sock,
            ACK,
            "waiting for the client's acknowledgement",
            deadline(),
        )?;
        drop(theirs);
        let mut ours = ours;
        ours.set_link(Some(sock));
        Ok(ours)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let (Address::Path(p), Some(id)) = (&self.address, self.file) {
            // Remove the socket file only if it is still the one we made.
            if rustix::fs::stat(p.as_path()).is_ok_and(|st| (st.st_dev, st.st_ino) == id) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Connects to a [`Listener`]: Python's `multiprocessing.connection.Client`.
///
/// See the [module docs](self) for an example.
#[derive(Debug, Clone, Copy)]
pub struct Client;

impl Client {
    /// Connects to the listener at `address`, proving knowledge of `authkey` (and
    /// checking the server's) if one is given; returns the client's end.
    ///
    /// # Errors
    /// [`ConnectionError::Os`] (nobody listens: `ECONNREFUSED` / `ENOENT`),
    /// [`ConnectionError::Authentication`], [`ConnectionError::Timeout`] (each step
    /// waits at most [`DEFAULT_HANDSHAKE_TIMEOUT`]), [`ConnectionError::Garbage`].
    pub fn connect(
        address: &Address,
        authkey: Option<&[u8]>,
    ) -> Result<Connection, ConnectionError> {
        Self::connect_timeout(address, authkey, DEFAULT_HANDSHAKE_TIMEOUT)
    }

    /// As [`connect`](Self::connect), each step of the handshake waiting at most
    /// `timeout`.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub fn connect_timeout(
        address: &Address,
        authkey: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Connection, ConnectionError> {
        let sa = address.sockaddr()?;
        let sock = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )
        .map_err(|e| ConnectionError::Os {
            op: "socket",
            source: e.into(),
        })?;
        // Non-blocking, so that a listener whose backlog is full (it does not accept)
        // cannot hold us past the timeout. The kernel has no readiness to wait on for a
        // full backlog, so that case retries with a growing pause.
        let until = wire::deadline(timeout);
        let mut pause = Duration::from_micros(100);
        loop {
            match rustix::net::connect(&sock, &sa) {
                Ok(()) => break,
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) if until.is_none_or(|u| Instant::now() < u) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(Errno::AGAIN) => {
                    return Err(ConnectionError::Timeout {
                        during: "connecting (the listener's backlog stays full)",
                    })
                }
                Err(e) => {
                    return Err(ConnectionError::Os {
                        op: "connect",
                        source: e.into(),
                    })
                }
            }
        }
        let deadline = || wire::deadline(timeout);
        let hello = expect(&sock, HELLO, "hello", deadline())?;
        let mut d = Dec::new(&hello);
        let bad = |e: WireError| ConnectionError::Garbage(format!("hello: {e}"));
        let magic = d.bytes("magic").map_err(bad)?;
        let version = d.u32("version").map_err(bad)?;
        let server_auth = d.u8("authentication flag").map_err(bad)? != 0;
        d.finish("hello").map_err(bad)?;
        if magic != MAGIC || version != VERSION {
            return Err(ConnectionError::Garbage(format!(
                "the server speaks {:?} version {version}, not {:?} version {VERSION}",
                String::from_utf8_lossy(magic),
                String::from_utf8_lossy(MAGIC)
            )));
        }
        match (server_auth, authkey) {
            (true, None) => {
                return Err(ConnectionError::Authentication(
                    "the server requires an authkey and none was given".into(),
                ))
            }
            (false, Some(_)) => {
                return Err(ConnectionError::Authentication(
                    "the server does not authenticate, but an authkey was given: refusing \
                     a server that cannot prove it knows the key"
                        .into(),
                ))
            }
            (true, Some(key)) => {
                auth::answer(&sock, key, auth::Role::Client, deadline)?;
                auth::deliver(&sock, key, auth::Role::Server, deadline)?;
            }
            (false, None) => {}
        }
        let mut conn: Connection = travel::recv_one(sock.as_fd(), PIPE, deadline())
            .map_err(travel_step("receiving the pipe"))?;
        send(&sock, ACK, &[], "acknowledging the pipe", deadline())?;
        conn.set_link(Some(sock));
        Ok(conn)
    }
}

impl Connection {
    /// Sends a travelling handle (an [`Arena`], another [`Connection`] end, ...) over the
    /// socket kept beside this end; the peer receives it with
    /// [`recv_handle`](Self::recv_handle). The sender keeps its own handle. Only ends
    /// made by [`Listener`] / [`Client`] have such a socket.
    ///
    /// ```
    /// use shmproc::connection::{Address, Client, Listener};
    /// use shmproc::Arena;
    ///
    /// let address = Address::abstract_name(format!("shmproc-doc-handle-{}", std::process::id()));
    /// let listener = Listener::bind(&address, None)?;
    /// let t = std::thread::spawn(move || {
    ///     let conn = Client::connect(&address, None).unwrap();
    ///     let arena: Arena = conn.recv_handle().unwrap();
    ///     arena.objects().len()
    /// });
    /// let conn = listener.accept()?;
    /// let arena = Arena::anonymous(1 << 20)?;
    /// shmproc::Lock::create(&arena, "the-lock")?;
    /// conn.send_handle(&arena)?;
    /// assert_eq!(t.join().unwrap(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`TravelError::NoSocket`] for an end made by [`Pipe::new`];
    /// [`TravelError::Eof`] when the peer is gone; what describing the handle returns.
    pub fn send_handle<H: Travel>(&self, handle: &H) -> Result<(), TravelError> {
        let link = self.link().ok_or(TravelError::NoSocket)?;
        travel::send_one(link, HANDLE, handle, wire::deadline(SEND_TIMEOUT))
    }

    /// Receives a handle sent with [`send_handle`](Self::send_handle), checked to be an
    /// `H`. Blocks until one arrives or the peer closes the connection.
    ///
    /// # Errors
    /// [`TravelError::WrongType`] (the handle is dropped), [`TravelError::Eof`],
    /// [`TravelError::NoSocket`], [`TravelError::Garbage`].
    pub fn recv_handle<H: Travel>(&self) -> Result<H, TravelError> {
        let link = self.link().ok_or(TravelError::NoSocket)?;
        travel::recv_one(link, HANDLE, None)
    }

    /// As [`recv_handle`](Self::recv_handle), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`TravelError::Timeout`], and as [`recv_handle`](Self::recv_handle).
    pub fn recv_handle_timeout<H: Travel>(&self, timeout: Duration) -> Result<H, TravelError> {
        let link = self.link().ok_or(TravelError::NoSocket)?;
        travel::recv_one(link, HANDLE, wire::deadline(timeout))
    }
}
