//! Handles that travel to another process: to a spawned or forkserver child (as its
//! arguments), or over an established connection ([`Connection::send_handle`]).
//!
//! A handle travels as a [`Descriptor`] (its kind, the fingerprint of its type, the arena
//! it lives in, the offset of its state block, a kind-specific parameter) plus the file
//! descriptors it needs (the arena's `memfd`, a pipe end's liveness token). Describing a
//! handle ([`Travel::describe`]) puts the descriptors in an [`Outbox`]: each arena once,
//! however many handles live in it. The outbox's descriptors cross over a Unix socket
//! with `SCM_RIGHTS` (see `wire.rs`); on arrival an [`Inbox`] holds them, attaches each
//! arena once (validating it, and reusing a mapping this process already has of the same
//! file), and [`Travel::arrive`] rebuilds the handle after the type check: a descriptor
//! of another kind or type is [`TravelError::WrongType`], never a handle of the wrong type.
//!
//! What travels: [`Arena`], [`Connection`] ends, and every handle over one object
//! (`Lock`, `RLock`, `Semaphore`, `BoundedSemaphore`, `Event`, `Barrier`, `Condition` with
//! its own lock, `Value<T>`, `Array<T>`, ...), named or anonymous. Those get their
//! `Travel` from the object layer, written once (`travel_as_object!`): the arena, the
//! object's offset and its generation, checked on arrival. An outbox keeps the objects it
//! describes alive until it is dropped; a process start keeps it until the child has
//! opened its arguments. Over [`Connection::send_handle`], keep a handle in the sender
//! until the receiver has its own: an object freed in between is refused on arrival,
//! never mistaken for another made in its place.
//!
//! With the `serde` feature (on by default), every travelling handle is also
//! `Serialize + Deserialize`, through the outbox and inbox of the transfer in progress:
//! a handle can sit anywhere in the arguments of
//! [`Process::function`](super::Process::function). Serialized outside a transfer (to
//! JSON, say), it is an error, never a dangling number.
//!
//! ```
//! use shmproc::process::travel::{Inbox, Outbox, Travel};
//! use shmproc::Arena;
//!
//! let arena = Arena::anonymous(1 << 20)?;
//! let mut out = Outbox::new();
//! let d = arena.describe(&mut out)?;
//! // ... the descriptors cross over a socket; here they stay in this process:
//! let mut inbox = Inbox::from_outbox(out)?;
//! let back: Arena = inbox.open(&d)?;
//! assert_eq!(back.size(), arena.size());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::wire::{Dec, Enc, WireError};
use crate::arena::{fingerprint, Arena, ObjectKind, WeakArena};
use crate::object::{Obj, Object, Shared};
#[cfg(not(shmproc_loom))]
use crate::pipe::Connection;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::fmt;
use std::sync::{Mutex, PoisonError};

/// The descriptor kind of an [`Arena`] (above every [`ObjectKind`]).
pub const KIND_ARENA: u32 = 0x1_0000;

/// A handle that can be sent to another process.
///
/// ```
/// use shmproc::process::travel::{Inbox, Outbox, Travel};
/// use shmproc::pipe::Pipe;
///
/// let (a, b) = Pipe::new(true)?;
/// let mut out = Outbox::new();
/// let d = b.describe(&mut out)?;
/// drop(b); // the copy in the outbox keeps the end alive
/// let mut inbox = Inbox::from_outbox(out)?;
/// let b: shmproc::Connection = inbox.open(&d)?;
/// a.send_bytes(b"it travelled")?;
/// assert_eq!(b.recv_bytes()?, b"it travelled");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Travel: Sized {
    /// The kind written in the descriptor: an [`ObjectKind`] number, or [`KIND_ARENA`].
    const KIND: u32;
    /// What the handle is, for messages ("Arena", "pipe Connection").
    const WHAT: &'static str;

    /// The fingerprint of the handle's type, checked on arrival.
    fn type_fingerprint() -> u64;

    /// Describes the handle, putting the descriptors it needs in `out`.
    ///
    /// # Errors
    /// [`TravelError::Closed`] for a handle that can no longer be used;
    /// [`TravelError::Os`] when a descriptor cannot be duplicated.
    fn describe(&self, out: &mut Outbox) -> Result<Descriptor, TravelError>;

    /// Rebuilds the handle from `d`, taking its descriptors from `inbox`. Called by
    /// [`Inbox::open`] after the kind and fingerprint were checked.
    ///
    /// # Errors
    /// [`TravelError::Missing`] when `d` names a descriptor or arena that did not
    /// arrive; [`TravelError::Arena`] when the object is not where `d` says.
    fn arrive(d: &Descriptor, inbox: &mut Inbox) -> Result<Self, TravelError>;
}

/// What a handle travels as: plain data, valid in any process that receives the
/// [`Outbox`] it was described into. `Serialize` and `Deserialize` with the `serde`
/// feature (on by default).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Descriptor {
    /// An [`ObjectKind`] number, or [`KIND_ARENA`].
    pub kind: u32,
    /// The fingerprint of the handle's type ([`Travel::type_fingerprint`]).
    pub type_fp: u64,
    /// The index of its arena in the outbox ([`Outbox::arena`]), if it lives in one.
    pub arena: Option<u32>,
    /// Where its state block starts in the arena.
    pub offset: u64,
    /// Kind-specific: for a pipe end, which end (bit 0) and whether a socket travels
    /// beside it (bit 8).
    pub param: u64,
    /// Its descriptors, as indices into the outbox ([`Outbox::fd`]).
    pub fds: Vec<u32>,
}

impl Descriptor {
    pub(crate) fn encode(&self, e: &mut Enc) {
        e.u32(self.kind)
            .u64(self.type_fp)
            .u32(self.arena.unwrap_or(u32::MAX))
            .u64(self.offset)
            .u64(self.param)
            .u32(self.fds.len() as u32);
        for f in &self.fds {
            e.u32(*f);
        }
    }

    pub(crate) fn decode(d: &mut Dec<'_>) -> Result<Descriptor, TravelError> {
        let kind = d.u32("descriptor kind")?;
        let type_fp = d.u64("descriptor fingerprint")?;
        let arena = match d.u32("descriptor arena")? {
            u32::MAX => None,
            i => Some(i),
        };
        let offset = d.u64("descriptor offset")?;
        let param = d.u64("descriptor parameter")?;
        let n = d.u32("descriptor count")?;
        if n as usize > super::wire::MAX_FDS {
            return Err(TravelError::Garbage(format!(
                "a handle with {n} descriptors"
            )));
        }
        let fds = (0..n)
            .map(|_| d.u32("descriptor index"))
            .collect::<Result<_, _>>()?;
        Ok(Descriptor {
            kind,
            type_fp,
            arena,
            offset,
            param,
            fds,
        })
    }
}

/// Why a handle could not travel.
#[derive(Debug)]
#[non_exhaustive]
pub enum TravelError {
    /// The handle is closed (a [`Connection`] after `close`).
    Closed,
    /// A handle was serialized or deserialized outside a transfer (not as an argument of
    /// [`Process::function`](super::Process::function) or through
    /// [`Connection::send_handle`]).
    NoTransfer(&'static str),
    /// What arrived is another kind of handle, or holds another type.
    WrongType {
        /// What the receiver asked for.
        expected: String,
        /// What the descriptor says.
        found: String,
    },
    /// The descriptor names a file descriptor or arena that did not arrive (or was taken
    /// already).
    Missing(String),
    /// The handle's arena could not be attached, or its object is not where the
    /// descriptor says.
    Arena(crate::Error),
    /// Too many descriptors for one message.
    TooMany(usize),
    /// A connection made by [`Pipe::new`](crate::Pipe::new) has no socket for handles:
    /// only `Listener` / `Client` connections do.
    NoSocket,
    /// The peer closed the connection before a handle arrived.
    Eof,
    /// No handle arrived before the timeout.
    Timeout,
    /// What arrived is not a handle message.
    Garbage(String),
    /// A system call failed.
    Os(&'static str, std::io::Error),
}

impl fmt::Display for TravelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TravelError::Closed => {
                f.write_str("a closed handle cannot travel: send it before closing it")
            }
            TravelError::NoTransfer(what) => write!(
                f,
                "{what} can only be serialized as an argument of Process::function or by \
                 Connection::send_handle (its file descriptors travel beside the bytes)"
            ),
            TravelError::WrongType { expected, found } => write!(
                f,
                "expected {}, but {} arrived: receive it as the type that was sent",
                crate::error::with_article(expected),
                crate::error::with_article(found),
            ),
            TravelError::Missing(what) => write!(
                f,
                "the handle's {what} did not arrive with it (the sender and the receiver \
                 disagree on what was sent, or its descriptors were taken already)"
            ),
            TravelError::Arena(e) => write!(f, "the handle's arena could not be used: {e}"),
            TravelError::TooMany(n) => write!(
                f,
                "{n} file descriptors are more than one transfer carries ({}): send the \
                 handles in several messages or processes",
                super::wire::MAX_FDS
            ),
            TravelError::NoSocket => f.write_str(
                "this connection has no socket for handles: only connections made by \
                 Listener / Client have one (hand handles to a child as its arguments instead)",
            ),
            TravelError::Eof => {
                f.write_str("the peer closed the connection (or exited) before a handle arrived")
            }
            TravelError::Timeout => f.write_str(
                "no handle arrived before the timeout: is the peer sending one with \
                 send_handle?",
            ),
            TravelError::Garbage(what) => write!(
                f,
                "what arrived is not a handle ({what}): recv_handle must pair with the \
                 peer's send_handle"
            ),
            TravelError::Os(op, e) => write!(f, "{op} failed: {e}{}", crate::error::os_hint(e)),
        }
    }
}

impl std::error::Error for TravelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TravelError::Arena(e) => Some(e),
            TravelError::Os(_, e) => Some(e),
            _ => None,
        }
    }
}

impl From<WireError> for TravelError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Eof => TravelError::Eof,
            WireError::Timeout => TravelError::Timeout,
            WireError::Garbage(g) => TravelError::Garbage(g),
            WireError::Os(op, e) => TravelError::Os(op, e),
        }
    }
}

impl From<crate::Error> for TravelError {
    fn from(e: crate::Error) -> Self {
        TravelError::Arena(e)
    }
}

/// Collects what handles need to travel: their arenas (each once) and descriptors.
///
/// Descriptors are duplicated into the outbox, so the handles may be dropped before the
/// outbox is sent (it then keeps what they held alive, as a message in flight would).
#[derive(Default)]
pub struct Outbox {
    arenas: Vec<(Arena, u32)>,
    fds: Vec<OwnedFd>,
    /// References to the objects described, kept while the handles are in flight.
    keep: Vec<Box<dyn std::any::Any + Send + Sync>>,
    /// Census mode: record descriptor numbers, duplicate nothing (see `census`).
    census: Option<Vec<RawFd>>,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("arenas", &self.arenas.len())
            .field("fds", &self.fds.len())
            .finish()
    }
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Outbox {
        Outbox::default()
    }

    /// An outbox that only notes which descriptors the handles hold (no duplicates, no
    /// arenas): which pipe ends a forked child's arguments hold.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn census() -> Outbox {
        Outbox {
            census: Some(Vec::new()),
            ..Outbox::default()
        }
    }

    /// The descriptor numbers a census saw.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn census_fds(&self) -> &[RawFd] {
        self.census.as_deref().unwrap_or(&[])
    }

    /// Adds `arena` (once, however often it is asked for) and returns its index.
    ///
    /// # Errors
    /// [`TravelError::Os`] when its descriptor cannot be duplicated;
    /// [`TravelError::TooMany`].
    pub fn arena(&mut self, arena: &Arena) -> Result<u32, TravelError> {
        if self.census.is_some() {
            return Ok(0);
        }
        if let Some(i) = self.arenas.iter().position(|(a, _)| a.ptr_eq(arena)) {
            return Ok(i as u32);
        }
        let fd = self.fd(arena.fd())?;
        self.arenas.push((arena.clone(), fd));
        remember(arena);
        Ok(self.arenas.len() as u32 - 1)
    }

    /// Keeps `what` (a reference to an object being described) until the outbox is
    /// dropped: a handle in flight keeps its object alive, as the handle did.
    pub(crate) fn keep(&mut self, what: Box<dyn std::any::Any + Send + Sync>) {
        if self.census.is_none() {
            self.keep.push(what);
        }
    }

    /// Adds a duplicate of `fd` and returns its index.
    ///
    /// # Errors
    /// [`TravelError::Os`] when `fd` cannot be duplicated; [`TravelError::TooMany`].
    pub fn fd(&mut self, fd: BorrowedFd<'_>) -> Result<u32, TravelError> {
        use std::os::fd::AsRawFd;
        if let Some(c) = &mut self.census {
            c.push(fd.as_raw_fd());
            return Ok(c.len() as u32 - 1);
        }
        if self.fds.len() >= super::wire::MAX_FDS {
            return Err(TravelError::TooMany(self.fds.len() + 1));
        }
        let dup = rustix::io::fcntl_dupfd_cloexec(fd, 0)
            .map_err(|e| TravelError::Os("fcntl(F_DUPFD_CLOEXEC)", e.into()))?;
        self.fds.push(dup);
        Ok(self.fds.len() as u32 - 1)
    }

    /// Writes the arena table.
    pub(crate) fn encode_table(&self, e: &mut Enc) {
        e.u32(self.arenas.len() as u32);
        for (a, fd) in &self.arenas {
            e.u32(*fd);
            match a.name() {
                Some(n) => e.u8(1).str(n),
                None => e.u8(0),
            };
        }
    }

    /// The descriptors to send, in index order.
    pub(crate) fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.fds.iter().map(|f| f.as_fd()).collect()
    }
}

/// One arena in a transfer: which descriptor maps it, its name, and the mapping once made.
struct InArena {
    fd: u32,
    name: Option<String>,
    attached: Option<Arena>,
}

/// What arrived: the descriptors and arenas that travelling handles are rebuilt from.
pub struct Inbox {
    fds: Vec<Option<OwnedFd>>,
    arenas: Vec<InArena>,
    /// What the outbox kept alive, when it came without a socket ([`from_outbox`]).
    ///
    /// [`from_outbox`]: Inbox::from_outbox
    _keep: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("arenas", &self.arenas.len())
            .field("fds", &self.fds.len())
            .finish()
    }
}

impl Inbox {
    /// The inbox an outbox would arrive as, without a socket in between (for tests and
    /// for handing handles across threads of one process).
    ///
    /// # Errors
    /// None today; the signature leaves room for a check of the table.
    pub fn from_outbox(out: Outbox) -> Result<Inbox, TravelError> {
        let mut e = Enc::default();
        out.encode_table(&mut e);
        let mut d = Dec::new(&e.0);
        let mut inbox = Inbox::decode(&mut d, out.fds)?;
        inbox._keep = out.keep;
        Ok(inbox)
    }

    /// Reads the arena table written by [`Outbox::encode_table`]; `fds` are the
    /// descriptors that came with it.
    pub(crate) fn decode(d: &mut Dec<'_>, fds: Vec<OwnedFd>) -> Result<Inbox, TravelError> {
        let n = d.u32("arena count")?;
        if n as usize > fds.len() {
            return Err(TravelError::Garbage(format!(
                "{n} arenas with {} descriptors",
                fds.len()
            )));
        }
        let mut arenas = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let fd = d.u32("arena descriptor")?;
            let name = match d.u8("arena name flag")? {
                0 => None,
                1 => Some(d.str("arena name")?.to_owned()),
                x => return Err(TravelError::Garbage(format!("arena name flag {x}"))),
            };
            arenas.push(InArena {
                fd,
                name,
                attached: None,
            });
        }
        Ok(Inbox {
            _keep: Vec::new(),
            fds: fds.into_iter().map(Some).collect(),
            arenas,
        })
    }

    /// The arena at `index`, attached on first use (validated as [`Arena::open`] does;
    /// an arena this process already maps is reused).
    ///
    /// # Errors
    /// [`TravelError::Missing`] for an index that did not arrive;
    /// [`TravelError::Arena`] when it is not a valid arena.
    pub fn arena(&mut self, index: u32) -> Result<Arena, TravelError> {
        let slot = self
            .arenas
            .get(index as usize)
            .ok_or_else(|| TravelError::Missing(format!("arena {index}")))?;
        if let Some(a) = &slot.attached {
            return Ok(a.clone());
        }
        let (fd_index, name) = (slot.fd, slot.name.clone());
        let fd = self.take_fd(fd_index)?;
        let arena = match known(fd.as_fd()) {
            Some(a) => a,
            None => {
                let a = Arena::attach_fd(fd, name)?;
                remember(&a);
                a
            }
        };
        self.arenas[index as usize].attached = Some(arena.clone());
        Ok(arena)
    }

    /// Takes the descriptor at `index` (each can be taken once).
    ///
    /// # Errors
    /// [`TravelError::Missing`] for an index that did not arrive or was taken.
    pub fn take_fd(&mut self, index: u32) -> Result<OwnedFd, TravelError> {
        self.fds
            .get_mut(index as usize)
            .and_then(Option::take)
            .ok_or_else(|| TravelError::Missing(format!("file descriptor {index}")))
    }

    /// Rebuilds a handle of type `H` from `d`, after checking that `d` describes one.
    ///
    /// # Errors
    /// [`TravelError::WrongType`], and what [`Travel::arrive`] returns.
    pub fn open<H: Travel>(&mut self, d: &Descriptor) -> Result<H, TravelError> {
        if d.kind != H::KIND || d.type_fp != H::type_fingerprint() {
            let found = if d.kind == KIND_ARENA {
                "Arena".to_string()
            } else {
                match ObjectKind::from_u32(d.kind) {
                    Some(k) if d.kind == H::KIND => format!("{k:?} of another type"),
                    Some(k) => format!("{k:?}"),
                    None => format!("handle of kind {}", d.kind),
                }
            };
            return Err(TravelError::WrongType {
                expected: H::WHAT.to_string(),
                found,
            });
        }
        H::arrive(d, self)
    }
}

/// Arenas this process has sent or received, by file, so that one that comes back (or
/// comes twice) is mapped once.
static KNOWN: Mutex<Vec<((u64, u64), WeakArena)>> = Mutex::new(Vec::new());

fn file_id(fd: BorrowedFd<'_>) -> Option<(u64, u64)> {
    rustix::fs::fstat(fd).ok().map(|st| (st.st_dev, st.st_ino))
}

fn remember(arena: &Arena) {
    let Some(id) = file_id(arena.fd()) else {
        return;
    };
    let mut known = KNOWN.lock().unwrap_or_else(PoisonError::into_inner);
    known.retain(|(_, w)| w.upgrade().is_some());
    if !known.iter().any(|(k, _)| *k == id) {
        known.push((id, arena.downgrade()));
    }
}

fn known(fd: BorrowedFd<'_>) -> Option<Arena> {
    let id = file_id(fd)?;
    let known = KNOWN.lock().unwrap_or_else(PoisonError::into_inner);
    known
        .iter()
        .filter(|(k, _)| *k == id)
        .find_map(|(_, w)| w.upgrade())
}

/// Makes `arena` known to this process (its global arena, adopted from a parent).
pub(crate) fn adopt(arena: &Arena) {
    remember(arena);
}

impl Travel for Arena {
    const KIND: u32 = KIND_ARENA;
    const WHAT: &'static str = "Arena";

    fn type_fingerprint() -> u64 {
        fingerprint::<Arena>()
    }

    fn describe(&self, out: &mut Outbox) -> Result<Descriptor, TravelError> {
        Ok(Descriptor {
            kind: Self::KIND,
            type_fp: Self::type_fingerprint(),
            arena: Some(out.arena(self)?),
            offset: 0,
            param: 0,
            fds: Vec::new(),
        })
    }

    fn arrive(d: &Descriptor, inbox: &mut Inbox) -> Result<Self, TravelError> {
        let i = d
            .arena
            .ok_or_else(|| TravelError::Missing("arena index".into()))?;
        inbox.arena(i)
    }
}

/// `param` bit: a socket travels beside the pipe end.
#[cfg(not(shmproc_loom))]
const PARAM_LINK: u64 = 1 << 8;

#[cfg(not(shmproc_loom))]
impl Travel for Connection {
    const KIND: u32 = ObjectKind::Pipe as u32;
    const WHAT: &'static str = "pipe Connection";

    fn type_fingerprint() -> u64 {
        fingerprint::<crate::pipe::RawPipe>()
    }

    /// A copy of this end travels: its arena, the offset of the pipe, which end, the
    /// three descriptors of its liveness token (so the receiver holds the end, and EOF
    /// counts it) and the socket beside it, if any. The sender keeps its own copy: drop
    /// it (a child's arguments are dropped by `start`) if the receiver is to be the
    /// end's only holder.
    fn describe(&self, out: &mut Outbox) -> Result<Descriptor, TravelError> {
        let p = self.parts().ok_or(TravelError::Closed)?;
        let arena = out.arena(p.arena)?;
        let mut fds = Vec::with_capacity(4);
        for fd in p.token {
            fds.push(out.fd(fd)?);
        }
        let mut param = u64::from(p.end);
        if let Some(l) = p.link {
            fds.push(out.fd(l)?);
            param |= PARAM_LINK;
        }
        Ok(Descriptor {
            kind: Self::KIND,
            type_fp: Self::type_fingerprint(),
            arena: Some(arena),
            offset: p.offset,
            param,
            fds,
        })
    }

    fn arrive(d: &Descriptor, inbox: &mut Inbox) -> Result<Self, TravelError> {
        let link = d.param & PARAM_LINK != 0;
        let want = if link { 4 } else { 3 };
        if d.fds.len() != want || d.param & !(PARAM_LINK | 1) != 0 {
            return Err(TravelError::Garbage(format!(
                "a pipe end with {} descriptors and parameter {:#x}",
                d.fds.len(),
                d.param
            )));
        }
        let i = d
            .arena
            .ok_or_else(|| TravelError::Missing("arena index".into()))?;
        let arena = inbox.arena(i)?;
        let token = [
            inbox.take_fd(d.fds[0])?,
            inbox.take_fd(d.fds[1])?,
            inbox.take_fd(d.fds[2])?,
        ];
        let link = if link {
            Some(inbox.take_fd(d.fds[3])?)
        } else {
            None
        };
        Ok(Connection::from_parts(
            &arena,
            d.offset,
            (d.param & 1) as u8,
            token,
            link,
        )?)
    }
}

/// `Travel` for the typed ends of a one-way pipe: a [`Connection`] that, on arrival, is
/// checked to go the way its type says.
#[cfg(not(shmproc_loom))]
macro_rules! travel_as_end {
    ($ty:ty, $what:expr, $from:path) => {
        impl Travel for $ty {
            const KIND: u32 = <Connection as Travel>::KIND;
            const WHAT: &'static str = $what;

            fn type_fingerprint() -> u64 {
                <Connection as Travel>::type_fingerprint()
            }

            fn describe(&self, out: &mut Outbox) -> Result<Descriptor, TravelError> {
                self.connection().describe(out)
            }

            fn arrive(d: &Descriptor, inbox: &mut Inbox) -> Result<Self, TravelError> {
                $from(Connection::arrive(d, inbox)?).ok_or_else(|| {
                    TravelError::Garbage(format!(
                        "a pipe end that is not {}",
                        crate::error::with_article($what)
                    ))
                })
            }
        }

        #[cfg(feature = "serde")]
        #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
        /// Travels as a [`Connection`] does. Needs the `serde` feature (on by default).
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                glue::serialize_handle(self, s)
            }
        }

        #[cfg(feature = "serde")]
        #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
        /// The end of a transfer, rebuilt and checked to go the way its type says. Needs
        /// the `serde` feature (on by default).
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                glue::deserialize_handle(d)
            }
        }
    };
}

#[cfg(not(shmproc_loom))]
travel_as_end!(crate::pipe::Sender, "pipe Sender", crate::pipe::sender_from);
#[cfg(not(shmproc_loom))]
travel_as_end!(
    crate::pipe::Receiver,
    "pipe Receiver",
    crate::pipe::receiver_from
);

/// `Travel` for handles over one object (`object::Shared`), written once: the descriptor
/// is the arena, the object's offset and its generation (checked on arrival, so an
/// object freed and replaced in between is not mistaken for it). The outbox keeps a
/// reference until it is dropped, so the object lives while the handle is in flight.
#[cfg(not(shmproc_loom))]
macro_rules! travel_as_object {
    ($ty:ty) => {
        travel_as_object!(@[] $ty);
    };
    (@[$($g:tt)*] $ty:ty) => {
        impl<$($g)*> Travel for $ty {
            const KIND: u32 = <<$ty as Shared>::Of as Object>::KIND as u32;
            const WHAT: &'static str = stringify!($ty);

            fn type_fingerprint() -> u64 {
                <<$ty as Shared>::Of as Object>::fingerprint()
            }

            fn describe(&self, out: &mut Outbox) -> Result<Descriptor, TravelError> {
                describe_object(self, out)
            }

            fn arrive(d: &Descriptor, inbox: &mut Inbox) -> Result<Self, TravelError> {
                arrive_object(d, inbox)
            }
        }

        #[cfg(feature = "serde")]
        #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
        /// Travels in the arguments of [`Process::function`](crate::Process::function) and
        /// through [`Connection::send_handle`]; outside such a transfer, serializing it is an
        /// error. Needs the `serde` feature (on by default).
        impl<$($g)*> serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                glue::serialize_handle(self, s)
            }
        }

        #[cfg(feature = "serde")]
        #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
        /// The handle of a transfer, rebuilt over the same object. Needs the `serde`
        /// feature (on by default).
        impl<'de, $($g)*> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                glue::deserialize_handle(d)
            }
        }
    };
}

#[cfg(not(shmproc_loom))]
fn describe_object<S: Shared>(h: &S, out: &mut Outbox) -> Result<Descriptor, TravelError> {
    h.can_travel().map_err(TravelError::Arena)?;
    let obj = h.shared();
    let arena = out.arena(obj.block().arena())?;
    out.keep(Box::new(obj.clone()));
    Ok(Descriptor {
        kind: <S::Of as Object>::KIND as u32,
        type_fp: <S::Of as Object>::fingerprint(),
        arena: Some(arena),
        offset: obj.block().offset(),
        param: obj.generation(),
        fds: Vec::new(),
    })
}

#[cfg(not(shmproc_loom))]
fn arrive_object<S: Shared>(d: &Descriptor, inbox: &mut Inbox) -> Result<S, TravelError> {
    let i = d
        .arena
        .ok_or_else(|| TravelError::Missing("arena index".into()))?;
    let arena = inbox.arena(i)?;
    let obj = Obj::<S::Of>::open_at(&arena, d.offset)?;
    if obj.generation() != d.param {
        return Err(TravelError::Arena(crate::Error::NoObjectAt {
            offset: d.offset,
        }));
    }
    Ok(S::rebuild(obj)?)
}

#[cfg(not(shmproc_loom))]
mod objects {
    use super::*;
    use crate::{
        Array, Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore, Value,
    };
    use bytemuck::Pod;

    travel_as_object!(Lock);
    travel_as_object!(RLock);
    travel_as_object!(Semaphore);
    travel_as_object!(BoundedSemaphore);
    travel_as_object!(Event);
    travel_as_object!(Barrier);
    travel_as_object!(Condition);
    travel_as_object!(@[T: Pod] Value<T>);
    travel_as_object!(@[T: Pod] Array<T>);
    travel_as_object!(@[T: Pod] crate::queue::Queue<T>);
    travel_as_object!(@[T: Pod] crate::queue::SimpleQueue<T>);
    travel_as_object!(@[T: Pod] crate::queue::JoinableQueue<T>);
    travel_as_object!(crate::queue::ByteQueue);
    #[cfg(feature = "serde")]
    travel_as_object!(@[T: 'static] crate::queue::ObjQueue<T>);
    travel_as_object!(@[T: Pod] crate::shared::SharedList<T>);
    travel_as_object!(crate::shared::ByteList);
    #[cfg(feature = "serde")]
    travel_as_object!(@[T: 'static] crate::shared::SerdeList<T>);
    travel_as_object!(crate::shared::SharedDict);
    travel_as_object!(@[K: Pod, V: Pod] crate::shared::TypedDict<K, V>);
    #[cfg(feature = "serde")]
    travel_as_object!(@[K: 'static, V: 'static] crate::shared::SerdeDict<K, V>);
}

/// Sends `handle` over the socket `sock` as one packet (kind `kind`).
pub(crate) fn send_one<H: Travel>(
    sock: BorrowedFd<'_>,
    kind: u8,
    handle: &H,
    deadline: Option<std::time::Instant>,
) -> Result<(), TravelError> {
    let mut out = Outbox::new();
    let d = handle.describe(&mut out)?;
    let mut e = Enc::default();
    out.encode_table(&mut e);
    d.encode(&mut e);
    super::wire::send_packet(sock, kind, &e.0, &out.fds(), deadline)?;
    Ok(())
}

/// Receives a handle sent by [`send_one`] (a message of kind `kind`).
pub(crate) fn recv_one<H: Travel>(
    sock: BorrowedFd<'_>,
    kind: u8,
    deadline: Option<std::time::Instant>,
) -> Result<H, TravelError> {
    let m = super::wire::recv_packet(sock, deadline)?;
    if m.kind != kind {
        return Err(TravelError::Garbage(format!(
            "a message of kind {} where a handle (kind {kind}) was expected",
            m.kind
        )));
    }
    let mut d = Dec::new(&m.body);
    let mut inbox = Inbox::decode(&mut d, m.fds)?;
    let desc = Descriptor::decode(&mut d)?;
    d.finish("a handle message")?;
    inbox.open(&desc)
}

#[cfg(feature = "serde")]
pub use glue::{deserialize_handle, serialize_handle};

/// Serde for travelling handles: through the outbox or inbox of the transfer in progress.
#[cfg(feature = "serde")]
mod glue {
    use super::{Descriptor, Inbox, Outbox, Travel, TravelError};
    use std::cell::Cell;

    thread_local! {
        static OUT: Cell<*mut Outbox> = const { Cell::new(std::ptr::null_mut()) };
        static IN: Cell<*mut Inbox> = const { Cell::new(std::ptr::null_mut()) };
        /// The last travel error of this thread: some formats (postcard) drop the text
        /// of custom errors, so the transfer reads it back from here.
        static LAST: Cell<Option<String>> = const { Cell::new(None) };
    }

    /// Records `e` as this thread's last travel error and returns it.
    fn note(e: TravelError) -> TravelError {
        LAST.with(|l| l.set(Some(e.to_string())));
        e
    }

    /// Takes this thread's last travel error (see `LAST`).
    pub(crate) fn take_last_error() -> Option<String> {
        LAST.with(Cell::take)
    }

    /// Restores the previous pointer when the transfer's scope ends (even by a panic).
    struct Restore<T: 'static>(&'static std::thread::LocalKey<Cell<*mut T>>, *mut T);

    impl<T> Drop for Restore<T> {
        fn drop(&mut self) {
            self.0.with(|c| c.set(self.1));
        }
    }

    /// Runs `f` with `out` as the outbox that handles serialize into.
    pub(crate) fn with_outbox<R>(out: &mut Outbox, f: impl FnOnce() -> R) -> R {
        let p: *mut Outbox = out;
        let _restore = Restore(&OUT, OUT.with(|c| c.replace(p)));
        f()
    }

    /// Runs `f` with `inbox` as the inbox that handles deserialize from.
    pub(crate) fn with_inbox<R>(inbox: &mut Inbox, f: impl FnOnce() -> R) -> R {
        let p: *mut Inbox = inbox;
        let _restore = Restore(&IN, IN.with(|c| c.replace(p)));
        f()
    }

    /// Serializes a travelling handle: its [`Descriptor`], its descriptors into the
    /// outbox of the transfer in progress. The one-line `Serialize` of every handle.
    /// Needs the `serde` feature (on by default).
    ///
    /// # Errors
    /// Outside a transfer, or when the handle cannot travel (closed, ...).
    pub fn serialize_handle<H: Travel, S: serde::Serializer>(
        h: &H,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, Serialize};
        let p = OUT.with(Cell::get);
        if p.is_null() {
            return Err(S::Error::custom(note(TravelError::NoTransfer(H::WHAT))));
        }
        // SAFETY: `p` was set by `with_outbox` from a `&mut Outbox` that is not used while
        // its closure runs, and is reset before that borrow ends; one thread, and no
        // other reference to the outbox is alive during `describe`.
        let out = unsafe { &mut *p };
        let d = h.describe(out).map_err(|e| S::Error::custom(note(e)))?;
        d.serialize(s)
    }

    /// Deserializes a travelling handle from the inbox of the transfer in progress,
    /// after the type check. The one-line `Deserialize` of every handle.
    /// Needs the `serde` feature (on by default).
    ///
    /// # Errors
    /// Outside a transfer, or when the handle does not check or cannot be rebuilt.
    pub fn deserialize_handle<'de, H: Travel, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<H, D::Error> {
        use serde::de::{Deserialize, Error};
        let desc = Descriptor::deserialize(d)?;
        let p = IN.with(Cell::get);
        if p.is_null() {
            return Err(D::Error::custom(note(TravelError::NoTransfer(H::WHAT))));
        }
        // SAFETY: as in `serialize_handle`, for the inbox set by `with_inbox`.
        let inbox = unsafe { &mut *p };
        inbox.open(&desc).map_err(|e| D::Error::custom(note(e)))
    }

    /// An arena travels in the arguments of [`Process::function`](crate::Process::function)
    /// (its `memfd` goes along); outside such a transfer, serializing it is an error.
    /// Needs the `serde` feature (on by default).
    impl serde::Serialize for crate::Arena {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            serialize_handle(self, s)
        }
    }

    /// The arena of a [`Process::function`](crate::Process::function) transfer, attached.
    /// Needs the `serde` feature (on by default).
    impl<'de> serde::Deserialize<'de> for crate::Arena {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            deserialize_handle(d)
        }
    }

    /// A pipe end travels in the arguments of
    /// [`Process::function`](crate::Process::function) (its descriptors go along); outside
    /// such a transfer, serializing it is an error. Needs the `serde` feature (on by default).
    #[cfg(not(shmproc_loom))]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    impl serde::Serialize for crate::Connection {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            serialize_handle(self, s)
        }
    }

    /// The pipe end of a [`Process::function`](crate::Process::function) transfer, rebuilt.
    /// Needs the `serde` feature (on by default).
    #[cfg(not(shmproc_loom))]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    impl<'de> serde::Deserialize<'de> for crate::Connection {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            deserialize_handle(d)
        }
    }
}

#[cfg(feature = "serde")]
pub(crate) use glue::{take_last_error, with_inbox, with_outbox};

#[cfg(all(test, not(shmproc_loom)))]
mod tests {
    use super::*;

    #[test]
    fn objects_in_flight_live_and_stale_ones_are_refused() {
        use crate::object::Shared;
        use crate::{Condition, Lock, Value};
        let arena = Arena::anonymous(1 << 20).unwrap();
        let base = arena.used();
        // The outbox keeps a described object alive after its handle is gone.
        let v = Value::new_in(&arena, 7u64).unwrap();
        let mut out = Outbox::new();
        let d = v.describe(&mut out).unwrap();
        drop(v);
        assert!(arena.used() > base, "kept by the outbox");
        let mut inbox = Inbox::from_outbox(out).unwrap();
        let back: Value<u64> = inbox.open(&d).unwrap();
        assert_eq!(back.load(), 7);
        assert!(matches!(
            inbox.open::<Lock>(&d),
            Err(TravelError::WrongType { .. })
        ));
        drop((back, inbox));
        assert_eq!(arena.used(), base);
        // A descriptor whose object was freed, and another made in its place, is refused.
        let v = Value::new_in(&arena, 1u64).unwrap();
        let d = v.describe(&mut Outbox::new()).unwrap(); // the outbox is dropped at once
        drop(v);
        let w = Value::new_in(&arena, 2u64).unwrap();
        assert_eq!(
            w.shared().block().offset(),
            d.offset,
            "the block was reused"
        );
        let mut out = Outbox::new();
        out.arena(&arena).unwrap();
        let mut inbox = Inbox::from_outbox(out).unwrap();
        assert!(matches!(
            inbox.open::<Value<u64>>(&d),
            Err(TravelError::Arena(crate::Error::NoObjectAt { .. }))
        ));
        drop(w);
        // A condition over an external lock cannot travel alone.
        let lock = Lock::new_in(&arena).unwrap();
        let c = Condition::with_lock(&arena, &lock).unwrap();
        assert!(matches!(
            c.describe(&mut Outbox::new()),
            Err(TravelError::Arena(crate::Error::InvalidArgument(_)))
        ));
    }

    #[test]
    fn wrong_type_and_missing_pieces_are_errors() {
        let arena = Arena::anonymous(1 << 20).unwrap();
        let (a, b) = crate::pipe::Pipe::new_in(&arena, true, 4096).unwrap();
        let mut out = Outbox::new();
        let da = arena.describe(&mut out).unwrap();
        let db = b.describe(&mut out).unwrap();
        assert_eq!(
            out.arenas.len(),
            1,
            "one arena, however many handles live in it"
        );
        let mut inbox = Inbox::from_outbox(out).unwrap();
        assert!(matches!(
            inbox.open::<Connection>(&da),
            Err(TravelError::WrongType { .. })
        ));
        assert!(matches!(
            inbox.open::<Arena>(&db),
            Err(TravelError::WrongType { .. })
        ));
        let mut bad = db.clone();
        bad.fds = vec![0, 1, 9];
        assert!(matches!(
            inbox.open::<Connection>(&bad),
            Err(TravelError::Missing(_))
        ));
        let mut inbox2 = {
            let mut out = Outbox::new();
            let d = b.describe(&mut out).unwrap();
            let mut i = Inbox::from_outbox(out).unwrap();
            // An offset where no pipe starts.
            let mut off = d.clone();
            off.offset += 128;
            assert!(matches!(
                i.open::<Connection>(&off),
                Err(TravelError::Arena(_))
            ));
            i
        };
        assert!(inbox2.take_fd(99).is_err());
        drop(a);
        let (mut c, _d) = crate::pipe::Pipe::new(true).unwrap();
        c.close();
        assert!(matches!(
            c.describe(&mut Outbox::new()),
            Err(TravelError::Closed)
        ));
    }

    #[test]
    fn an_arena_that_comes_back_is_the_same_mapping() {
        let arena = Arena::anonymous(1 << 20).unwrap();
        let mut out = Outbox::new();
        let d = arena.describe(&mut out).unwrap();
        let back: Arena = Inbox::from_outbox(out).unwrap().open(&d).unwrap();
        assert!(back.ptr_eq(&arena));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_outside_a_transfer_is_an_error() {
        let arena = Arena::anonymous(1 << 20).unwrap();
        let _ = take_last_error();
        assert!(postcard::to_allocvec(&arena).is_err());
        assert!(take_last_error().is_some_and(|e| e.contains("Process::function")));
        let mut out = Outbox::new();
        let bytes = with_outbox(&mut out, || postcard::to_allocvec(&arena)).unwrap();
        assert!(postcard::from_bytes::<Arena>(&bytes).is_err());
        let mut inbox = Inbox::from_outbox(out).unwrap();
        let back: Arena = with_inbox(&mut inbox, || postcard::from_bytes(&bytes)).unwrap();
        assert_eq!(back.size(), arena.size());
    }
}
