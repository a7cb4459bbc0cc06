//! The user-facing handles: [`Pipe`] and [`Connection`].

use super::token::{PeerWatch, Token};
use super::{RecvError, SendError};
use crate::arena::{Arena, ObjectKind};
use crate::error::{Error, Result};
use crate::lock::{Acquired, TimedOut};
use crate::object::{Inspect, Obj, Object, Word};
use crate::raw::lock::RobustLock;
use crate::raw::spsc::{self as ring, Buf, ByteRing, ByteRingError, Fast, Sink, Source};
use crate::raw::{Consumer, KnownSide, Producer, Side};
use crate::sync::liveness::Procfs;
use crate::SpinPolicy;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

/// Plain-data values up to this size are received through a buffer on the stack.
const SMALL_TYPED: usize = 64;

/// The default capacity of each direction: 64 KiB, like a Linux pipe buffer.
pub const DEFAULT_CAPACITY: usize = 64 << 10;

/// The shared state of a pipe: two rings (each with a lock per side, on that side's
/// line), followed by the ring buffers (`cap` bytes each; the second only for a duplex
/// pipe).
///
/// `rings[i]` is read by end `i`: `rings[0]` carries end 1 -> end 0 and `rings[1]` carries
/// end 0 -> end 1.
#[repr(C)]
pub struct RawPipe {
    rings: [ByteRing; 2],
}

// SAFETY: `#[repr(C)]`, aligned to at most 128; two `ByteRing`s, whose words are all
// atomics checked before use (see `raw::spsc`).
unsafe impl crate::raw::SharedState for RawPipe {}

static_assertions::assert_eq_size!(RawPipe, [u8; 2 * 384]);
static_assertions::assert_impl_all!(Connection: Send, Sync);

/// Makes pipes: Python's `multiprocessing.Pipe`.
///
/// ```
/// use shmproc::pipe::Pipe;
/// let (a, b) = Pipe::new(true)?;
/// a.send_bytes(b"ping")?;
/// assert_eq!(b.recv_bytes()?, b"ping");
/// b.send_bytes(b"pong")?;
/// assert_eq!(a.recv_bytes()?, b"pong");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Pipe;

/// The parameters of a pipe object: bytes per direction, and whether it has two.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    cap: u32,
    duplex: bool,
}

impl Word for Shape {
    fn to_word(&self) -> u64 {
        u64::from(self.cap) | (u64::from(self.duplex) << 32)
    }

    fn from_word(word: u64) -> Option<Shape> {
        match word >> 32 {
            d @ (0 | 1) => Some(Shape {
                cap: word as u32,
                duplex: d == 1,
            }),
            _ => None,
        }
    }
}

impl Shape {
    fn rings(&self) -> usize {
        if self.duplex {
            2
        } else {
            1
        }
    }
}

impl Object for Pipe {
    type State = RawPipe;
    type Params = Shape;
    const KIND: ObjectKind = ObjectKind::Pipe;

    fn type_name() -> Cow<'static, str> {
        "Pipe".into()
    }

    fn size(s: &Shape) -> Result<usize> {
        if !s.cap.is_power_of_two() || s.cap < ring::MIN_CAPACITY || s.cap > ring::MAX_CAPACITY {
            return Err(Error::InvalidArgument(format!(
                "pipe capacity {}: must be a power of two from {} to 2^30 bytes (the default \
                 is 64 KiB)",
                s.cap,
                ring::MIN_CAPACITY
            )));
        }
        Ok(core::mem::size_of::<RawPipe>() + s.rings() * s.cap as usize)
    }

    fn inspect(p: &RawPipe, s: &Shape, out: &mut Inspect) {
        out.field("capacity", s.cap);
        out.field("duplex", s.duplex);
        for (i, r) in p.rings.iter().take(s.rings()).enumerate() {
            out.field(["state_0", "state_1"][i], r.state());
            out.field(["in_flight_0", "in_flight_1"][i], r.in_flight());
        }
    }
}

impl Pipe {
    /// A new pipe in the [global arena](Arena::global), each direction
    /// [`DEFAULT_CAPACITY`] bytes. With `duplex == false` the first end can only receive
    /// and the second only send (Python's order).
    ///
    /// Make pipes **before** forking the processes that use them.
    ///
    /// (Named `new` although it returns the two ends, after Python's `Pipe()`.)
    ///
    /// # Errors
    /// When the global arena cannot be made or is full, or the liveness pipes cannot be
    /// made ([`Error::Os`], e.g. out of file descriptors).
    #[allow(clippy::new_ret_no_self)]
    pub fn new(duplex: bool) -> Result<(Connection, Connection)> {
        Self::new_in(&Arena::global()?, duplex, DEFAULT_CAPACITY)
    }

    /// As [`new`](Self::new), with `capacity` bytes per direction.
    ///
    /// # Errors
    /// As [`new_in`](Self::new_in).
    pub fn with_capacity(duplex: bool, capacity: usize) -> Result<(Connection, Connection)> {
        Self::new_in(&Arena::global()?, duplex, capacity)
    }

    /// A new pipe in `arena`, `capacity` bytes per direction (a power of two from 32 to
    /// 2^30; messages of any size stream through it).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad capacity, a full arena, or [`Error::Os`] when
    /// the liveness pipes cannot be made.
    ///
    /// ```
    /// # use shmproc::{Arena, pipe::Pipe};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// let (a, b) = Pipe::new_in(&arena, false, 4096)?;
    /// let reader = std::thread::spawn(move || a.recv_bytes());
    /// b.send_bytes(&[7; 10_000])?; // larger than the ring: streamed as the reader reads
    /// assert_eq!(reader.join().unwrap()?, vec![7; 10_000]);
    /// assert!(Pipe::new_in(&arena, true, 1000).is_err()); // not a power of two
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new_in(
        arena: &Arena,
        duplex: bool,
        capacity: usize,
    ) -> Result<(Connection, Connection)> {
        let cap = u32::try_from(capacity).unwrap_or(0);
        let shape = Shape { cap, duplex };
        Pipe::size(&shape)?;
        let (t0, t1) = Token::pair().map_err(|e| Error::Os {
            op: "pipe2 (liveness token)",
            source: e,
        })?;
        // Zeroed memory is two empty, open rings and four unlocked locks: no `init`.
        let obj = Obj::<Pipe>::create(arena, None, shape)?;
        Ok((
            Connection::assemble(obj.clone(), 0, t0)?,
            Connection::assemble(obj, 1, t1)?,
        ))
    }
}

/// What an end is made of, for travel (`crate::process::travel`): its arena, the offset
/// of the pipe's block, which end it is, its token's three descriptors (see
/// [`Connection::from_parts`]) and the socket kept beside it, if any.
pub(crate) struct Parts<'a> {
    pub(crate) arena: &'a Arena,
    pub(crate) offset: u64,
    pub(crate) end: u8,
    pub(crate) token: [BorrowedFd<'a>; 3],
    pub(crate) link: Option<BorrowedFd<'a>>,
}

impl Connection {
    /// Builds end `end` (0 or 1, as [`Pipe::new_in`] returns them) over a pipe object,
    /// whose geometry the object layer has checked against its block.
    fn assemble(obj: Obj<Pipe>, end: u8, token: Token) -> Result<Connection> {
        let Shape { cap, duplex } = *obj.params();
        let shm = obj.block();
        let data = core::mem::size_of::<RawPipe>();
        let size = Pipe::size(obj.params())?;
        if shm.len() < size || end > 1 {
            return Err(Error::Corrupt(format!(
                "pipe block of {} bytes, {size} needed (end {end})",
                shm.len()
            )));
        }
        let buf = |i: usize| {
            // SAFETY: `data + (i + 1) * cap <= size <= shm.len()` for i < the number of
            // rings (checked above): the buffer is inside the block, which lives as long as
            // `obj`. Only ring code touches it.
            unsafe { Buf::from_raw(shm.base().add(data + i * cap as usize), cap) }
        };
        let raw: &RawPipe = shm;
        let side = |ring: usize| Lane {
            ring: NonNull::from(&raw.rings[ring]),
            buf: buf(ring),
        };
        // End 0 reads ring 0 and (duplex) writes ring 1; end 1 writes ring 0 and reads
        // ring 1.
        let (rx, tx) = match (duplex, end) {
            (true, 0) => (Some(side(0)), Some(side(1))),
            (true, _) => (Some(side(1)), Some(side(0))),
            (false, 0) => (Some(side(0)), None),
            (false, _) => (None, Some(side(0))),
        };
        Ok(Connection {
            inner: Some(Inner {
                _obj: obj.clone(),
                rx,
                tx,
                token,
                spin: SpinPolicy::HAND_OFF,
            }),
            stash: Vec::new(),
            stash_pos: 0,
            link: None,
        })
    }

    /// The end's `Debug` under the name `name` (a `Sender` and a `Receiver` show theirs).
    pub(crate) fn debug_as(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(i) = &self.inner else {
            return write!(f, "{name}(closed)");
        };
        let end = self.parts().map_or(0, |p| p.end);
        let mut d = f.debug_struct(name);
        d.field("end", &end).field("capacity", &i._obj.params().cap);
        if let Some(rx) = &i.rx {
            let r = rx.ring();
            d.field("recv_pending", &r.in_flight())
                .field("recv_state", &Words(ring_state(r.state())));
        }
        if let Some(tx) = &i.tx {
            let r = tx.ring();
            d.field("send_pending", &r.in_flight())
                .field("send_state", &Words(ring_state(r.state())));
        }
        d.field("peer_alive", &!i.token.peer_gone()).finish()
    }

    /// What this end is made of (see [`Parts`]); `None` once closed.
    pub(crate) fn parts(&self) -> Option<Parts<'_>> {
        let i = self.inner.as_ref()?;
        let raw: &RawPipe = &i._obj;
        // End 0 reads ring 0; end 1 reads ring 1 (duplex) or nothing (one-way).
        let end = match &i.rx {
            Some(s) if s.ring == NonNull::from(&raw.rings[0]) => 0,
            _ => 1,
        };
        Some(Parts {
            arena: i._obj.block().arena(),
            offset: i._obj.block().offset(),
            end,
            token: i.token.fds()?,
            link: self.link.as_ref().map(|l| l.as_fd()),
        })
    }

    /// Rebuilds an end that travelled: the pipe block at `offset` in `arena` (checked to
    /// be a pipe, of this build's layout, with a geometry that fits the block), end `end`,
    /// with the token made of `token` (the write and read sides of the end's own pipe,
    /// the read side of the peer's) and, if given, the socket kept beside it.
    ///
    /// # Errors
    /// [`Error::NoObjectAt`] / [`Error::WrongType`] when no pipe starts at `offset`;
    /// [`Error::Corrupt`] for an impossible geometry or `end`.
    pub(crate) fn from_parts(
        arena: &Arena,
        offset: u64,
        end: u8,
        token: [OwnedFd; 3],
        link: Option<OwnedFd>,
    ) -> Result<Connection> {
        let [w, r, p] = token;
        let token = Token::from_fds(w, r, p);
        let obj = Obj::<Pipe>::open_at(arena, offset)?;
        let mut c = Connection::assemble(obj, end, token)?;
        c.link = link;
        Ok(c)
    }

    /// The socket kept beside this end (ends made by `Listener` / `Client`).
    pub(crate) fn link(&self) -> Option<BorrowedFd<'_>> {
        self.link.as_ref().map(|l| l.as_fd())
    }

    /// Keeps `link` beside this end (it closes with the end).
    pub(crate) fn set_link(&mut self, link: Option<OwnedFd>) {
        self.link = link;
    }
}

/// One end's use of one ring: the ring (whose side this end uses: the producer side for
/// sending, the consumer side for receiving) and the ring's bytes.
///
/// The pointer leads into the pipe's block, which the `Inner` holding this `Lane` keeps
/// mapped (its `_obj`); a `Lane` exists only inside one. It is worked out once, in
/// `Pipe::new_in`: from the ring's index, on every message, it cost a dozen instructions
/// of the small-message round trip.
struct Lane {
    ring: NonNull<ByteRing>,
    buf: Buf,
}

// SAFETY: the pointer leads to a `ByteRing`, which is `Sync` (its shared state is all
// atomics) and lives in shared memory that the owning `Inner` keeps mapped; `Buf` is
// `Send + Sync` for the same reason.
unsafe impl Send for Lane {}
// SAFETY: as above.
unsafe impl Sync for Lane {}

impl Lane {
    /// The ring.
    #[inline(always)]
    fn ring(&self) -> &ByteRing {
        // SAFETY: `ring` was made from a reference into the block that the owning
        // `Inner`'s `_obj` maps (`Pipe::new_in`), which stays mapped while that `Inner`,
        // and so `self`, lives; the ring is only accessed through atomics.
        unsafe { self.ring.as_ref() }
    }

    /// Takes side `S` of the ring if it is free now
    /// (one CAS): the fast paths' lock. Taken this way, the previous holder let go
    /// normally, so there is nothing to repair.
    #[inline(always)]
    fn try_hold<S: KnownSide>(&self) -> Option<Held<'_, S>> {
        let ring = self.ring();
        ring.lock(S::SIDE).try_lock(&Procfs).then(|| Held {
            ring,
            side: PhantomData,
        })
    }
}

struct Inner {
    /// Keeps the pipe's block mapped: the `Lane`s point into it.
    _obj: Obj<Pipe>,
    rx: Option<Lane>,
    tx: Option<Lane>,
    token: Token,
    spin: SpinPolicy,
}

/// One end of a [`Pipe`]: Python's `multiprocessing.connection.Connection`.
///
/// `Send + Sync`; after a `fork` the child holds a copy of the end (see the
/// [module docs](super) on EOF and on copies of one end). Dropping it closes it.
pub struct Connection {
    inner: Option<Inner>,
    /// The rest of the message being read through `io::Read`.
    stash: Vec<u8>,
    stash_pos: usize,
    /// The Unix socket beside the end, for handles that travel over the connection
    /// (`Connection::send_handle`); only ends made by `Listener` / `Client` have one.
    link: Option<OwnedFd>,
}

/// The live state of the end: which end of the pipe it is, its capacity per direction,
/// then for the direction it reads (if it reads) `recv_pending` (bytes sent to it, not
/// yet read) and `recv_state`, for the direction it writes `send_pending` (bytes it sent
/// that the peer has not read) and `send_state` (each state `open`, or what closed it:
/// `writer closed`, `reader closed`, `broken`), and `peer_alive` (some process still
/// holds the other end). A closed end prints `Connection(closed)`.
///
/// ```
/// use shmproc::{Arena, pipe::Pipe};
/// let arena = Arena::anonymous(1 << 20)?;
/// let (a, b) = Pipe::new_in(&arena, true, 4096)?;
/// a.send_bytes(b"ping")?;
/// let shown = format!("{b:?}");
/// assert!(shown.starts_with("Connection { end: 1, capacity: 4096, "), "{shown}");
/// // One frame in flight: its 8-byte header and the 4 bytes padded to 8.
/// assert!(shown.contains("recv_pending: 16, recv_state: open"), "{shown}");
/// assert!(shown.contains("send_pending: 0, send_state: open, peer_alive: true"), "{shown}");
/// drop(a);
/// assert!(format!("{b:?}").contains("recv_state: writer closed"));
/// assert!(format!("{b:?}").contains("peer_alive: false"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.debug_as("Connection", f)
    }
}

/// A text shown as is by `Debug` (no quotes).
struct Words(String);

impl fmt::Debug for Words {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A ring's state bits in words: `open`, or what closed it (`writer closed`, `reader
/// closed`, `broken`, joined by ", ").
pub(crate) fn ring_state(bits: u32) -> String {
    let names = [
        (ring::WRITER_CLOSED, "writer closed"),
        (ring::READER_CLOSED, "reader closed"),
        (ring::BROKEN, "broken"),
    ];
    let words: Vec<&str> = names
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if words.is_empty() {
        "open".to_string()
    } else {
        words.join(", ")
    }
}

/// Holds side `S` of a ring; on drop, marks the ring
/// broken if a message was left half-done (a panic in a zero-copy fill, or corrupt
/// state), then releases the side (`ByteRing::release`: unlocks, and wakes the other side
/// if it sleeps).
struct Held<'a, S: KnownSide> {
    ring: &'a ByteRing,
    side: PhantomData<S>,
}

impl<S: KnownSide> Held<'_, S> {
    /// Releases the side after a fast path moved a whole message, skipping `drop`'s
    /// mid-message check: a fast path ends every message it begins, and runs only on a
    /// ring that is not broken, while a holder that died mid-message is taken over only
    /// by `hold_slow`, which breaks the ring (the send fast path takes only a free lock).
    #[inline(always)]
    fn finished(self) {
        let ring = self.ring;
        std::mem::forget(self);
        ring.release(S::SIDE);
    }
}

impl<S: KnownSide> Drop for Held<'_, S> {
    #[inline]
    fn drop(&mut self) {
        if mid_message::<S>(self.ring) {
            self.ring.set_state(ring::BROKEN);
        }
        self.ring.release(S::SIDE);
    }
}

/// True while side `S` of `ring` is part-way through a message.
#[inline]
fn mid_message<S: KnownSide>(ring: &ByteRing) -> bool {
    if S::SIDE == Side::Producer {
        ring.tx_mid()
    } else {
        ring.rx_mid()
    }
}

struct SendFn<F>(F);

impl<F: FnMut(usize, &mut [u8])> Source for SendFn<F> {
    fn fill(&mut self, buf: &Buf, pos: u32, offset: u64, len: u32) {
        // SAFETY: `ByteRing::send` passes only free, contiguous bytes of the ring it holds
        // the producer side of; the slice is dropped before they are published.
        let chunk = unsafe { buf.slice_mut(pos, len) };
        (self.0)(offset as usize, chunk);
    }
}

/// A `Vec` sink that writes into spare capacity without zero-filling first.
struct VecSink(Vec<u8>);

impl Sink for VecSink {
    #[inline]
    fn take(&mut self, buf: &Buf, pos: u32, _offset: u64, len: u32) {
        // SAFETY: the bytes are published and not consumed (`recv_peeked`'s contract).
        let src = unsafe { buf.slice(pos, len) };
        self.0.extend_from_slice(src);
    }
}

impl Inner {
    /// Takes this end's side of the ring of `s` (as [`Lane::try_hold`]), waiting while
    /// another holder has it (until `deadline`: `Err` then), and taking it over from a
    /// dead one.
    #[inline(always)]
    fn hold<'a, S: KnownSide>(
        &self,
        s: &'a Lane,
        deadline: Option<Instant>,
    ) -> std::result::Result<Held<'a, S>, TimedOut> {
        match s.try_hold::<S>() {
            Some(held) => Ok(held),
            None => self.hold_slow(s, deadline),
        }
    }

    /// [`hold`](Self::hold) when the side is not free at once.
    #[inline(never)]
    fn hold_slow<'a, S: KnownSide>(
        &self,
        s: &'a Lane,
        deadline: Option<Instant>,
    ) -> std::result::Result<Held<'a, S>, TimedOut> {
        let r = s.ring();
        let acquired = r.lock(S::SIDE).lock_slow(&Procfs, deadline, self.spin)?;
        // A holder that died between messages left nothing to repair; one that died
        // mid-message left a frame nobody can finish: the ring is broken for good. (One
        // that died skipping the rest of an abandoned message left nothing either: the
        // next receive goes on skipping.)
        if acquired == Acquired::OwnerDied && mid_message::<S>(r) {
            r.set_state(ring::BROKEN);
        }
        Ok(Held {
            ring: r,
            side: PhantomData,
        })
    }

    /// The peer end is gone for good: record it on both rings so every copy knows.
    fn peer_gone(&self) {
        if let Some(rx) = &self.rx {
            rx.ring().set_state(ring::WRITER_CLOSED);
        }
        if let Some(tx) = &self.tx {
            tx.ring().set_state(ring::READER_CLOSED);
        }
    }
}

/// Receives the peeked message of `len` bytes into a new `Vec` (waiting for its chunks
/// until `deadline`).
fn take_vec(
    i: &Inner,
    s: &Lane,
    r: &ByteRing,
    len: u64,
    deadline: Option<Instant>,
) -> std::result::Result<Vec<u8>, RecvError> {
    // Never trust a length from shared memory with an allocation: grow as the bytes
    // arrive (from at most one ring's worth, plus 1 MiB).
    let mut v = VecSink(Vec::with_capacity(
        len.min(u64::from(s.buf.cap()) + (1 << 20)) as usize,
    ));
    r.recv_peeked(&s.buf, len, &mut v, deadline, i.spin, &PeerWatch(&i.token))?;
    Ok(v.0)
}

fn deadline(timeout: Duration) -> Option<Instant> {
    crate::sync::time::deadline_after(timeout)
}

impl Connection {
    fn inner(&self) -> std::result::Result<&Inner, bool> {
        self.inner.as_ref().ok_or(true)
    }

    fn tx(&self) -> std::result::Result<(&Inner, &Lane), SendError> {
        let i = self.inner.as_ref().ok_or(SendError::Closed)?;
        let s = i.tx.as_ref().ok_or(SendError::WrongDirection)?;
        Ok((i, s))
    }

    fn rx(&self) -> std::result::Result<(&Inner, &Lane), RecvError> {
        let i = self.inner.as_ref().ok_or(RecvError::Closed)?;
        let s = i.rx.as_ref().ok_or(RecvError::WrongDirection)?;
        Ok((i, s))
    }

    /// The general send: any message, any state of the ring (waits for space, streams a
    /// long message, reports errors). Out of line: `send_bytes` inlines only its fast
    /// path.
    #[inline(never)]
    fn send_source(&self, len: u64, src: &mut impl Source) -> std::result::Result<(), SendError> {
        if len > ring::MAX_MESSAGE {
            return Err(SendError::TooLarge(len));
        }
        let (i, s) = self.tx()?;
        // Without a deadline, `hold` cannot time out.
        let _held = i.hold::<Producer>(s, None).map_err(|_| SendError::Broken)?;
        let r = s.ring();
        match r.send(&s.buf, len, src, i.spin, &PeerWatch(&i.token)) {
            Ok(()) => Ok(()),
            Err(ByteRingError::BrokenPipe) => {
                i.peer_gone();
                Err(SendError::BrokenPipe)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Sends `bytes` as one message (Python's `send_bytes`). An empty message is a
    /// message. Blocks while the ring is full; a message larger than the ring streams
    /// through it while the peer reads.
    ///
    /// # Errors
    /// [`SendError::BrokenPipe`] when the peer end is gone, [`SendError::Closed`],
    /// [`SendError::WrongDirection`], [`SendError::Broken`].
    ///
    /// ```
    /// # use shmproc::pipe::Pipe;
    /// let (a, b) = Pipe::new(true)?;
    /// a.send_bytes(b"")?;
    /// a.send_bytes(b"two")?;
    /// assert_eq!(b.recv_bytes()?, b"");
    /// assert_eq!(b.recv_bytes()?, b"two");
    /// drop(b);
    /// assert_eq!(a.send_bytes(b"x"), Err(shmproc::pipe::SendError::BrokenPipe));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn send_bytes(&self, bytes: &[u8]) -> std::result::Result<(), SendError> {
        // The fast path: the producer side is free (`Lane::try_hold`), and the message goes
        // whole into free, contiguous space of an open ring (`ByteRing::send_small`).
        // Anything else, nothing written, takes the general path.
        if let Some(i) = &self.inner {
            if let Some(s) = &i.tx {
                if let Some(held) = s.try_hold::<Producer>() {
                    if held.ring.send_small(&s.buf, bytes) {
                        held.finished();
                        return Ok(());
                    }
                }
            }
        }
        let mut src = bytes;
        self.send_source(bytes.len() as u64, &mut src)
    }

    /// Sends one message of `len` bytes written **in place** in the ring: `fill(offset,
    /// chunk)` is called with consecutive pieces of the message (`chunk` is ring memory;
    /// `offset` is where it starts in the message) until `len` bytes are written. No copy
    /// through a buffer of the caller (rtrb's `write_chunk_uninit` + `commit`).
    ///
    /// If `fill` panics, the half-sent message is abandoned and the pipe becomes
    /// [`Broken`](SendError::Broken); the receiver never sees a partial message.
    ///
    /// # Errors
    /// As [`send_bytes`](Self::send_bytes).
    ///
    /// ```
    /// # use shmproc::pipe::Pipe;
    /// let (a, b) = Pipe::new(true)?;
    /// a.send_with(5, |off, chunk| {
    ///     for (i, x) in chunk.iter_mut().enumerate() {
    ///         *x = b"hello"[off + i];
    ///     }
    /// })?;
    /// assert_eq!(b.recv_bytes()?, b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_with(
        &self,
        len: usize,
        fill: impl FnMut(usize, &mut [u8]),
    ) -> std::result::Result<(), SendError> {
        self.send_source(len as u64, &mut SendFn(fill))
    }

    /// Holds the consumer side and receives one message: first `fast` (the straight-line
    /// small-message path, given `ctx`), then, if it did not finish, [`ByteRing::peek`] and
    /// `take` (given the message length and `ctx`).
    #[inline]
    fn recv_with<C, T>(
        &self,
        deadline: Option<Instant>,
        mut ctx: C,
        fast: impl FnOnce(&ByteRing, &Buf, SpinPolicy, &mut C) -> Fast<T>,
        take: impl FnOnce(
            &Inner,
            &Lane,
            &ByteRing,
            u64,
            Option<Instant>,
            C,
        ) -> std::result::Result<T, RecvError>,
    ) -> std::result::Result<T, RecvError> {
        let (i, s) = self.rx()?;
        let held = i
            .hold::<Consumer>(s, deadline)
            .map_err(|_| RecvError::Timeout)?;
        match fast(held.ring, &s.buf, i.spin, &mut ctx) {
            Fast::Done(v) => {
                held.finished();
                Ok(v)
            }
            f => Self::recv_rest(i, s, held, matches!(f, Fast::Spun), deadline, ctx, take),
        }
    }

    /// The rest of [`recv_with`](Self::recv_with) when its fast path did not finish
    /// (`spun`: it spun in full and nothing came, so look once more, then sleep). Out of
    /// line, so the fast path keeps its registers.
    #[inline(never)]
    fn recv_rest<C, T>(
        i: &Inner,
        s: &Lane,
        held: Held<'_, Consumer>,
        spun: bool,
        deadline: Option<Instant>,
        ctx: C,
        take: impl FnOnce(
            &Inner,
            &Lane,
            &ByteRing,
            u64,
            Option<Instant>,
            C,
        ) -> std::result::Result<T, RecvError>,
    ) -> std::result::Result<T, RecvError> {
        let r = held.ring;
        let spin = if spun { SpinPolicy::NEVER } else { i.spin };
        let who = PeerWatch(&i.token);
        // A timed receive consumes a message only once it is whole in the ring (or, too
        // long for the ring, has begun): so its timeout never leaves it part-way through
        // one that could have been whole (`ByteRing::peek_whole`).
        let peeked = match deadline {
            Some(_) => r.peek_whole(&s.buf, deadline, spin, &who),
            None => r.peek(&s.buf, deadline, spin, &who),
        };
        let result = match peeked {
            Ok(len) => take(i, s, r, len, deadline, ctx),
            Err(e) => Err(e.into()),
        };
        if matches!(result, Err(RecvError::Eof)) {
            i.peer_gone();
        }
        result
    }

    fn recv_vec(
        &self,
        max: u64,
        deadline: Option<Instant>,
    ) -> std::result::Result<Vec<u8>, RecvError> {
        self.recv_with(
            deadline,
            (),
            |_, _, _, _| Fast::Slow,
            |i, s, r, len, deadline, ()| {
                if len > max {
                    return Err(RecvError::TooLong { len, max });
                }
                take_vec(i, s, r, len, deadline)
            },
        )
    }

    /// Receives one whole message (Python's `recv_bytes`). Blocks until one arrives.
    ///
    /// # Errors
    /// [`RecvError::Eof`] when the peer end is gone and every message has been received;
    /// [`RecvError::Closed`], [`RecvError::WrongDirection`], [`RecvError::Broken`].
    ///
    /// ```
    /// # use shmproc::pipe::{Pipe, RecvError};
    /// let (a, b) = Pipe::new(true)?;
    /// a.send_bytes(b"last words")?;
    /// drop(a);
    /// assert_eq!(b.recv_bytes()?, b"last words");
    /// assert_eq!(b.recv_bytes(), Err(RecvError::Eof));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn recv_bytes(&self) -> std::result::Result<Vec<u8>, RecvError> {
        self.recv_vec(u64::MAX, None)
    }

    /// Receives one message of at most `maxlength` bytes. A longer message is an error
    /// and **stays in the pipe** (unlike Python, the connection remains usable).
    ///
    /// # Errors
    /// [`RecvError::TooLong`], and as [`recv_bytes`](Self::recv_bytes).
    ///
    /// ```
    /// # use shmproc::pipe::{Pipe, RecvError};
    /// let (a, b) = Pipe::new(true)?;
    /// a.send_bytes(&[1; 100])?;
    /// assert_eq!(b.recv_bytes_max(10), Err(RecvError::TooLong { len: 100, max: 10 }));
    /// assert_eq!(b.recv_bytes()?.len(), 100);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_bytes_max(&self, maxlength: usize) -> std::result::Result<Vec<u8>, RecvError> {
        self.recv_vec(maxlength as u64, None)
    }

    /// Receives one message, waiting at most `timeout` for it to **begin**; a message
    /// that has begun is read to its end (so a timeout never leaves the pipe
    /// mid-message).
    ///
    /// # Errors
    /// [`RecvError::Timeout`] (nothing consumed), and as [`recv_bytes`](Self::recv_bytes).
    ///
    /// ```
    /// # use shmproc::pipe::{Pipe, RecvError};
    /// # use std::time::Duration;
    /// let (a, b) = Pipe::new(true)?;
    /// assert_eq!(b.recv_bytes_timeout(Duration::from_millis(5)), Err(RecvError::Timeout));
    /// # drop(a);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_bytes_timeout(&self, timeout: Duration) -> std::result::Result<Vec<u8>, RecvError> {
        self.recv_vec(u64::MAX, deadline(timeout))
    }

    /// Receives one message into `buf`; returns its length (Python's `recv_bytes_into`).
    ///
    /// # Errors
    /// [`RecvError::BufferTooShort`] holding the whole message when it does not fit (it
    /// is consumed: nothing is lost), and as [`recv_bytes`](Self::recv_bytes).
    ///
    /// ```
    /// # use shmproc::pipe::{Pipe, RecvError};
    /// let (a, b) = Pipe::new(true)?;
    /// a.send_bytes(b"abc")?;
    /// a.send_bytes(b"too long")?;
    /// let mut buf = [0u8; 4];
    /// assert_eq!(b.recv_bytes_into(&mut buf)?, 3);
    /// assert_eq!(&buf[..3], b"abc");
    /// let err = b.recv_bytes_into(&mut buf).unwrap_err();
    /// assert_eq!(err.into_message().unwrap(), b"too long");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_bytes_into(&self, buf: &mut [u8]) -> std::result::Result<usize, RecvError> {
        self.recv_into(None, buf)
    }

    /// [`recv_bytes_into`](Self::recv_bytes_into) with a deadline for the message to begin.
    #[inline]
    fn recv_into(
        &self,
        deadline: Option<Instant>,
        buf: &mut [u8],
    ) -> std::result::Result<usize, RecvError> {
        self.recv_with(
            deadline,
            buf,
            |r, rb, spin, buf| r.recv_small(rb, buf, spin),
            |i, s, r, len, deadline, buf| {
                if len > buf.len() as u64 {
                    return Err(RecvError::BufferTooShort(take_vec(i, s, r, len, deadline)?));
                }
                let mut dst = &mut buf[..len as usize];
                r.recv_peeked(
                    &s.buf,
                    len,
                    &mut dst,
                    deadline,
                    i.spin,
                    &PeerWatch(&i.token),
                )?;
                Ok(len as usize)
            },
        )
    }

    /// Sends a plain-data value as one message of `size_of::<T>()` bytes.
    ///
    /// # Errors
    /// As [`send_bytes`](Self::send_bytes).
    ///
    /// ```
    /// # use shmproc::pipe::Pipe;
    /// let (a, b) = Pipe::new(true)?;
    /// a.send(&[1.5f64, 2.5])?;
    /// assert_eq!(b.recv::<[f64; 2]>()?, [1.5, 2.5]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send<T: super::PlainSend>(&self, value: &T) -> std::result::Result<(), SendError> {
        self.send_bytes(bytemuck::bytes_of(value))
    }

    /// Receives a plain-data value sent with [`send`](Self::send).
    ///
    /// # Errors
    /// [`RecvError::WrongSize`] (holding the message) when the message is not
    /// `size_of::<T>()` bytes, and as [`recv_bytes`](Self::recv_bytes).
    pub fn recv<T: super::PlainRecv>(&self) -> std::result::Result<T, RecvError> {
        self.recv_typed(None)
    }

    /// [`recv`](Self::recv) with a timeout for the message to begin.
    ///
    /// # Errors
    /// [`RecvError::Timeout`], and as [`recv`](Self::recv).
    ///
    /// ```
    /// # use shmproc::pipe::{Pipe, RecvError};
    /// # use std::time::Duration;
    /// let (a, b) = Pipe::new(true)?;
    /// a.send(&7u32)?;
    /// assert_eq!(b.recv_timeout::<u32>(Duration::from_secs(1))?, 7);
    /// assert_eq!(b.recv_timeout::<u32>(Duration::from_millis(1)), Err(RecvError::Timeout));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_timeout<T: super::PlainRecv>(
        &self,
        timeout: Duration,
    ) -> std::result::Result<T, RecvError> {
        self.recv_typed(deadline(timeout))
    }

    fn recv_typed<T: bytemuck::AnyBitPattern>(
        &self,
        deadline: Option<Instant>,
    ) -> std::result::Result<T, RecvError> {
        let size = core::mem::size_of::<T>();
        if size <= SMALL_TYPED {
            // No allocation: into a buffer on the stack, exactly `size` long, so a longer
            // message comes back whole in the error.
            let mut b = [0u8; SMALL_TYPED];
            return match self.recv_into(deadline, &mut b[..size]) {
                Ok(n) if n == size => Ok(bytemuck::pod_read_unaligned(&b[..size])),
                Ok(n) => Err(RecvError::WrongSize(b[..n].to_vec())),
                Err(RecvError::BufferTooShort(v)) => Err(RecvError::WrongSize(v)),
                Err(e) => Err(e),
            };
        }
        let v = self.recv_vec(u64::MAX, deadline)?;
        if v.len() != size {
            return Err(RecvError::WrongSize(v));
        }
        Ok(bytemuck::pod_read_unaligned(&v))
    }

    /// Sends any serializable value (postcard encoding).
    ///
    /// # Errors
    /// [`SendError::Serialize`], and as [`send_bytes`](Self::send_bytes).
    ///
    /// Needs the `serde` feature (on by default).
    #[cfg(feature = "serde")]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub fn send_obj<T: serde::Serialize + ?Sized>(
        &self,
        value: &T,
    ) -> std::result::Result<(), SendError> {
        let bytes =
            postcard::to_allocvec(value).map_err(|e| SendError::Serialize(e.to_string()))?;
        self.send_bytes(&bytes)
    }

    /// Receives a value sent with [`send_obj`](Self::send_obj).
    ///
    /// # Errors
    /// [`RecvError::Deserialize`], and as [`recv_bytes`](Self::recv_bytes).
    ///
    /// Needs the `serde` feature (on by default).
    #[cfg(feature = "serde")]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub fn recv_obj<T: serde::de::DeserializeOwned>(&self) -> std::result::Result<T, RecvError> {
        let bytes = self.recv_bytes()?;
        postcard::from_bytes(&bytes).map_err(|e| RecvError::Deserialize(e.to_string()))
    }

    /// True when a whole message (or EOF) can be received without waiting. Does not
    /// consume. A message larger than the ring counts as ready once it has begun to
    /// arrive (the rest streams in as it is read).
    ///
    /// # Errors
    /// [`RecvError::Closed`], [`RecvError::WrongDirection`], [`RecvError::Broken`].
    ///
    /// ```
    /// # use shmproc::pipe::Pipe;
    /// let (a, b) = Pipe::new(true)?;
    /// assert!(!b.poll()?);
    /// a.send_bytes(b"x")?;
    /// assert!(b.poll()?);
    /// assert!(b.poll()?); // still there
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll(&self) -> std::result::Result<bool, RecvError> {
        self.poll_deadline(Some(Instant::now()), true)
    }

    /// As [`poll`](Self::poll), waiting up to `timeout` for a message (or EOF).
    ///
    /// # Errors
    /// As [`poll`](Self::poll).
    ///
    /// ```
    /// # use shmproc::pipe::Pipe;
    /// # use std::time::Duration;
    /// let (a, b) = Pipe::new(true)?;
    /// assert!(!b.poll_timeout(Duration::from_millis(5))?);
    /// drop(a);
    /// assert!(b.poll_timeout(Duration::from_secs(5))?); // EOF is ready
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll_timeout(&self, timeout: Duration) -> std::result::Result<bool, RecvError> {
        self.poll_deadline(deadline(timeout), false)
    }

    fn poll_deadline(
        &self,
        deadline: Option<Instant>,
        nowait: bool,
    ) -> std::result::Result<bool, RecvError> {
        let (i, s) = self.rx()?;
        // Another copy of this end receiving: not ready now (or until the deadline).
        let Ok(_held) = i.hold::<Consumer>(s, deadline) else {
            return Ok(false);
        };
        let r = s.ring();
        let spin = if nowait { SpinPolicy::NEVER } else { i.spin };
        let ready = r
            .poll(&s.buf, deadline, spin, &PeerWatch(&i.token))
            .map_err(RecvError::from)?;
        if ready {
            return Ok(true);
        }
        // The periodic check may not have run: ask the token once (a dead peer is EOF).
        if r.is_empty(&s.buf) && i.token.peer_gone() {
            i.peer_gone();
            return Ok(true);
        }
        Ok(false)
    }

    /// Closes this handle (Python's `close`); idempotent. Dropping does the same. The
    /// end is closed for the peer once every copy of it (in every process) is closed.
    ///
    /// ```
    /// # use shmproc::pipe::{Pipe, RecvError};
    /// let (mut a, b) = Pipe::new(true)?;
    /// a.close();
    /// a.close();
    /// assert!(a.is_closed());
    /// assert_eq!(a.recv_bytes(), Err(RecvError::Closed));
    /// assert_eq!(b.recv_bytes(), Err(RecvError::Eof));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&mut self) {
        if let Some(mut i) = self.inner.take() {
            if i.token.release() {
                // We were the last holder of this end anywhere: tell the peer now.
                if let Some(rx) = &i.rx {
                    rx.ring().set_state(ring::READER_CLOSED);
                }
                if let Some(tx) = &i.tx {
                    tx.ring().set_state(ring::WRITER_CLOSED);
                }
            }
        }
        self.stash = Vec::new();
        self.stash_pos = 0;
        self.link = None;
    }

    /// True after [`close`](Self::close).
    pub fn is_closed(&self) -> bool {
        self.inner.is_none()
    }

    /// True when this end can receive.
    pub fn readable(&self) -> bool {
        self.inner().is_ok_and(|i| i.rx.is_some())
    }

    /// True when this end can send.
    pub fn writable(&self) -> bool {
        self.inner().is_ok_and(|i| i.tx.is_some())
    }

    /// Bytes each direction's ring holds (messages of any size still pass).
    pub fn capacity(&self) -> usize {
        self.inner.as_ref().map_or(0, |i| {
            i.rx.as_ref()
                .or(i.tx.as_ref())
                .map_or(0, |s| s.buf.cap() as usize)
        })
    }

    /// Sets how long this handle spins before sleeping (see [`SpinPolicy`]; the default is
    /// [`SpinPolicy::HAND_OFF`]).
    pub fn set_spin(&mut self, spin: SpinPolicy) {
        if let Some(i) = &mut self.inner {
            i.spin = spin;
        }
    }

    /// A descriptor that becomes readable (`POLLHUP`) when the peer end is gone in every
    /// process: register it with `epoll` to learn of EOF / broken pipe. `None` when closed.
    pub fn peer_liveness_fd(&self) -> Option<BorrowedFd<'_>> {
        self.inner.as_ref().map(|i| i.token.peer_fd())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close();
    }
}

/// Each `write` sends one message of the bytes given (never merged by the receiver's
/// `recv_bytes`; a reader through `io::Read` sees one byte stream).
impl std::io::Write for &Connection {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.send_bytes(buf).map_err(send_io)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// See `impl Write for &Connection`.
impl std::io::Write for Connection {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads the messages as one byte stream; `Ok(0)` at EOF.
///
/// ```
/// # use shmproc::pipe::Pipe;
/// use std::io::{Read, Write};
/// let (mut a, mut b) = Pipe::new(true)?;
/// a.write_all(b"hello ")?;
/// a.write_all(b"world")?;
/// drop(a);
/// let mut s = String::new();
/// b.read_to_string(&mut s)?;
/// assert_eq!(s, "hello world");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl std::io::Read for Connection {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.stash_pos >= self.stash.len() {
            if out.is_empty() {
                return Ok(0);
            }
            match self.recv_bytes() {
                Ok(v) => {
                    self.stash = v;
                    self.stash_pos = 0;
                }
                Err(RecvError::Eof) => return Ok(0),
                Err(e) => return Err(recv_io(e)),
            }
        }
        let n = out.len().min(self.stash.len() - self.stash_pos);
        out[..n].copy_from_slice(&self.stash[self.stash_pos..self.stash_pos + n]);
        self.stash_pos += n;
        Ok(n)
    }
}

fn send_io(e: SendError) -> std::io::Error {
    use std::io::ErrorKind as K;
    let kind = match e {
        SendError::BrokenPipe => K::BrokenPipe,
        SendError::Closed => K::NotConnected,
        SendError::WrongDirection => K::Unsupported,
        _ => K::Other,
    };
    std::io::Error::new(kind, e)
}

fn recv_io(e: RecvError) -> std::io::Error {
    use std::io::ErrorKind as K;
    let kind = match e {
        RecvError::Closed => K::NotConnected,
        RecvError::WrongDirection => K::Unsupported,
        RecvError::Timeout => K::TimedOut,
        _ => K::Other,
    };
    std::io::Error::new(kind, e)
}
