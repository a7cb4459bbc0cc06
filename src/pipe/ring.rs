//! The SPSC byte ring under each direction of a [`Pipe`](super::Pipe), with its frame
//! protocol and wake protocol. No system calls except the shim's futex.
//!
//! # Positions
//!
//! `tail` (bytes ever written) and `head` (bytes ever consumed) are free-running `u32`s;
//! the capacity is a power of two `<= 2^30`, so `tail - head` (wrapping) is the number of
//! bytes in the ring and `pos & (cap - 1)` is where a position lives in the buffer. Every
//! value read from shared memory is checked before use: `tail - head > cap` is
//! [`RingError::Corrupt`], never an out-of-bounds access (the buffer index is always
//! masked, and every copy is clipped to the buffer).
//!
//! | field        | written by              | read by                                 |
//! |--------------|-------------------------|-----------------------------------------|
//! | `tail`       | producer (publish)      | consumer (when its cache says empty)    |
//! | `head_cache` | producer                | producer (rtrb's cached peer index)     |
//! | `head`       | consumer (publish)      | producer (when its cache says full)     |
//! | `tail_cache` | consumer                | consumer                                |
//! | `state`      | closers, poisoners      | both, at the start of every operation   |
//! | `*_waiting`  | a side about to sleep   | the other side, after each publish      |
//! | `*_evt`      | wakers (bump + wake)    | sleepers (the futex word)               |
//!
//! Each group lives on its own 128-byte line, so the hot path of a side touches its own
//! line, the peer's index only when the cached copy says full/empty, and the control line
//! (read-mostly, so it stays shared in both caches).
//!
//! # Frames
//!
//! A message is an 8-byte little-endian length followed by the payload. Both stream
//! through the ring, so a message of any size passes through a ring of any capacity: the
//! producer publishes each piece as it is written, the consumer consumes each piece as it
//! is read, and reassembles. A consumer starts a message only once its whole header is in
//! the ring; from then on it reads the message to its end (its deadline no longer
//! applies), so a timed-out reader never leaves the ring mid-message. The only way a
//! message stops mid-way is its writer dying (or panicking): the reader then reports EOF
//! (the peer is gone) or [`RingError::Broken`] (another copy of the writer end saw the
//! dead holder mid-message), never a partial message.
//!
//! # Waking
//!
//! A side that finds the ring full (producer) or empty (consumer) spins for a while
//! ([`SpinPolicy`]), then sleeps on its futex word, an event count:
//!
//! ```text
//! sleeper                                   waker
//! e = evt.load()                            publish: index.store(Release)
//! waiting.store(1, Release)                 fence(SeqCst)
//! fence(SeqCst)                             if waiting.load(Acquire) == 1:
//! re-check index (Acquire) and state            waiting.store(0); evt += 1; wake_all(evt)
//! futex_wait(evt, e)
//! ```
//!
//! The two store-fence-load sequences form a Dekker handshake: either the sleeper's
//! re-check sees the new index, or the waker sees `waiting == 1`, bumps `evt` and wakes.
//! Because `e` was read before `waiting` was set, a bump that comes before the sleeper
//! reaches the kernel makes `futex_wait` return at once. Closing bumps both event counts
//! unconditionally. A publish that finds nobody waiting makes no system call.
//!
//! A peer that dies cannot wake anyone: a sleeper therefore also wakes periodically
//! (every 1 ms, doubling to 100 ms) to ask its [`Watch`] whether the peer is gone.

use crate::spin::SpinPolicy;
use crate::sync::futex::{self, WaitResult};
use crate::sync::{fence, spin_hint, time, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Bytes of a frame header (the payload length, `u64` little-endian).
pub const HEADER: u32 = 8;

/// The largest message the frame protocol accepts (2^48 bytes): a longer header is corrupt.
pub const MAX_MESSAGE: u64 = 1 << 48;

/// The smallest capacity of a ring.
pub const MIN_CAPACITY: u32 = 16;

/// The largest capacity of a ring (positions are `u32`s that must never lap twice).
pub const MAX_CAPACITY: u32 = 1 << 30;

/// `state`: every process holding the writing end is gone (closed or dead).
pub const WRITER_CLOSED: u32 = 1;
/// `state`: every process holding the reading end is gone (closed or dead).
pub const READER_CLOSED: u32 = 2;
/// `state`: the frame stream is unusable (a writer or reader died mid-message while
/// another copy of its end lives on, or a peer wrote nonsense).
pub const BROKEN: u32 = 4;

const LINE: usize = 128;

/// Why a ring operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// The deadline passed before a message (or the space for it) was there.
    Timeout,
    /// Consumer: the writer is gone and every whole message has been read.
    Eof,
    /// Producer: the reader is gone.
    BrokenPipe,
    /// The stream was abandoned mid-message by a process that died while another copy of
    /// its end lives on: no further message can be framed.
    Broken,
    /// Shared indices or a frame header are impossible: memory was overwritten.
    Corrupt(&'static str),
    /// The message is longer than the limit the reader gave (nothing was consumed).
    TooLong(u64),
}

/// How a sleeping side learns that its peer died (it cannot wake anyone).
pub trait Watch {
    /// How often to ask [`gone`](Self::gone) while sleeping; `None`: never (loom models,
    /// where a lost wake-up must show up as a deadlock rather than be hidden by a poll).
    fn interval(&self) -> Option<Duration>;
    /// True when every copy of the peer end is closed or dead.
    fn gone(&self) -> bool;
}

/// A [`Watch`] that never reports the peer gone and never polls.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoWatch;

impl Watch for NoWatch {
    fn interval(&self) -> Option<Duration> {
        None
    }
    fn gone(&self) -> bool {
        false
    }
}

/// The shared state of one direction. All zero bytes is an empty, open ring.
///
/// Four 128-byte lines, so that a message moves as few lines between the two cores as
/// possible: `tail` alone on the line the consumer polls (the producer writes it once per
/// publish, and nothing else there, so a polling consumer never steals the line between
/// two producer stores); the producer's private words; the consumer's words (`head` is
/// read by the producer only when its cached copy says "full"); the control line.
#[repr(C)]
pub struct RawRing {
    // Tail line: written by the producer once per publish, polled by the consumer.
    tail: AtomicU32,
    _t: [u8; LINE - 4],
    // Producer line: touched only by (holders of) the producer side.
    head_cache: AtomicU32,
    tx_mid: AtomicU32,
    _p: [u8; LINE - 8],
    // Consumer line.
    head: AtomicU32,
    tail_cache: AtomicU32,
    rx_mid: AtomicU32,
    _c: [u8; LINE - 12],
    // Control line: written rarely (close, sleep), read by both.
    state: AtomicU32,
    rx_waiting: AtomicU32,
    rx_evt: AtomicU32,
    tx_waiting: AtomicU32,
    tx_evt: AtomicU32,
    _x: [u8; LINE - 20],
}

#[cfg(not(shmproc_loom))]
mod layout {
    use super::*;
    static_assertions::assert_eq_size!(RawRing, [u8; 4 * LINE]);
    static_assertions::const_assert_eq!(core::mem::offset_of!(RawRing, head_cache), LINE);
    static_assertions::const_assert_eq!(core::mem::offset_of!(RawRing, head), 2 * LINE);
    static_assertions::const_assert_eq!(core::mem::offset_of!(RawRing, state), 3 * LINE);
    static_assertions::const_assert_eq!(core::mem::offset_of!(RawRing, tx_evt), 3 * LINE + 16);
}

impl Default for RawRing {
    fn default() -> Self {
        Self::new()
    }
}

// ---------------------------------------------------------------------------------------
// The ring's bytes.

/// The bytes of a ring: `cap` (a power of two) bytes the producer writes and the consumer
/// reads. Every access masks its position and is clipped to the buffer, whatever the
/// caller passes.
pub struct Buf {
    #[cfg(not(shmproc_loom))]
    ptr: *mut u8,
    #[cfg(shmproc_loom)]
    cells: Box<[crate::sync::UnsafeCell<u8>]>,
    mask: u32,
}

// SAFETY: a `Buf` is a view of shared bytes whose accesses are ordered by the ring
// protocol (the producer writes only free bytes, the consumer reads only published ones).
unsafe impl Send for Buf {}
// SAFETY: as above.
unsafe impl Sync for Buf {}

impl Buf {
    /// A view of `cap` bytes at `ptr`.
    ///
    /// # Safety
    /// - `ptr..ptr + cap` is valid for reads and writes for the life of the `Buf`;
    /// - `cap` is a power of two in `MIN_CAPACITY..=MAX_CAPACITY`;
    /// - only ring protocol code touches those bytes.
    #[cfg(not(shmproc_loom))]
    pub unsafe fn from_raw(ptr: *mut u8, cap: u32) -> Buf {
        debug_assert!(cap.is_power_of_two());
        Buf { ptr, mask: cap - 1 }
    }

    /// A buffer of `cap` bytes for models (loom) and tests.
    #[cfg(shmproc_loom)]
    pub fn new_model(cap: u32) -> Buf {
        assert!(cap.is_power_of_two());
        Buf {
            cells: (0..cap).map(|_| crate::sync::UnsafeCell::new(0)).collect(),
            mask: cap - 1,
        }
    }

    /// Capacity in bytes.
    #[inline]
    pub fn cap(&self) -> u32 {
        self.mask + 1
    }

    /// Copies `src` to positions `pos..` (wrapping). At most `cap` bytes are copied.
    #[inline]
    fn write(&self, pos: u32, src: &[u8]) {
        let cap = self.cap() as usize;
        let idx = (pos & self.mask) as usize;
        let len = src.len().min(cap);
        let first = len.min(cap - idx);
        self.copy_in(idx, &src[..first]);
        self.copy_in(0, &src[first..len]);
    }

    /// Copies positions `pos..` (wrapping) into `dst`. At most `cap` bytes are copied.
    #[inline]
    fn read(&self, pos: u32, dst: &mut [u8]) {
        let cap = self.cap() as usize;
        let idx = (pos & self.mask) as usize;
        let len = dst.len().min(cap);
        let first = len.min(cap - idx);
        let (a, b) = dst[..len].split_at_mut(first);
        self.copy_out(idx, a);
        self.copy_out(0, b);
    }

    /// Asks the CPU to start fetching the line holding `pos` (no memory access in the
    /// language's sense: it cannot fault or race). A polling consumer does this before it
    /// loads `tail`, so the frame and the index travel between the cores at once rather
    /// than one after the other.
    #[inline]
    fn prefetch(&self, pos: u32) {
        #[cfg(all(target_arch = "x86_64", not(shmproc_loom)))]
        {
            let idx = (pos & self.mask) as usize;
            // SAFETY: `idx < cap`, so the address is inside the buffer (`from_raw`
            // contract); a prefetch only hints the cache, it reads nothing.
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                    self.ptr.add(idx).cast::<i8>(),
                )
            }
        }
        #[cfg(not(all(target_arch = "x86_64", not(shmproc_loom))))]
        let _ = pos;
    }

    /// Contiguous bytes from `pos` to the end of the buffer.
    #[inline]
    fn contiguous(&self, pos: u32) -> u32 {
        self.cap() - (pos & self.mask)
    }

    #[cfg(not(shmproc_loom))]
    #[inline]
    fn copy_in(&self, idx: usize, src: &[u8]) {
        if idx + src.len() > self.cap() as usize {
            return; // unreachable by construction; never out of bounds.
        }
        // SAFETY: idx + len <= cap (checked above), so the destination is inside the
        // buffer (`from_raw` contract); the bytes are free (not readable by the consumer)
        // by the ring protocol, and `src` is process-local memory, so they do not overlap.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(idx), src.len()) }
    }

    #[cfg(not(shmproc_loom))]
    #[inline]
    fn copy_out(&self, idx: usize, dst: &mut [u8]) {
        if idx + dst.len() > self.cap() as usize {
            return; // unreachable by construction; never out of bounds.
        }
        // SAFETY: in bounds as in `copy_in`; the bytes were published by the producer
        // (Acquire on `tail`) and it will not write them before we publish `head`.
        unsafe { core::ptr::copy_nonoverlapping(self.ptr.add(idx), dst.as_mut_ptr(), dst.len()) }
    }

    /// `len` contiguous bytes at `pos` for in-place writing (clipped to the buffer end).
    ///
    /// # Safety
    /// The bytes must be free for the producer (it holds the producer side and they lie
    /// between its tail and the consumer's head + cap), and stay so while the slice lives.
    #[cfg(not(shmproc_loom))]
    #[inline]
    // The bytes are shared memory: exclusivity comes from the ring protocol, as the
    // `# Safety` section says, not from `&self`.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice_mut(&self, pos: u32, len: u32) -> &mut [u8] {
        let idx = (pos & self.mask) as usize;
        let len = (len as usize).min(self.cap() as usize - idx);
        // SAFETY: idx + len <= cap, inside the buffer; exclusivity is the caller's
        // contract.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.add(idx), len) }
    }

    /// `len` contiguous published bytes at `pos`, for reading in place (clipped).
    ///
    /// # Safety
    /// The bytes must be published to the consumer and not yet consumed.
    #[cfg(not(shmproc_loom))]
    #[inline]
    pub(crate) unsafe fn slice(&self, pos: u32, len: u32) -> &[u8] {
        let idx = (pos & self.mask) as usize;
        let len = (len as usize).min(self.cap() as usize - idx);
        // SAFETY: as in `slice_mut`.
        unsafe { core::slice::from_raw_parts(self.ptr.add(idx), len) }
    }

    #[cfg(shmproc_loom)]
    fn copy_in(&self, idx: usize, src: &[u8]) {
        for (i, b) in src.iter().enumerate() {
            if let Some(c) = self.cells.get(idx + i) {
                // SAFETY: the producer owns free bytes (ring protocol); loom checks it.
                c.with_mut(|p| unsafe { *p = *b });
            }
        }
    }

    #[cfg(shmproc_loom)]
    fn copy_out(&self, idx: usize, dst: &mut [u8]) {
        for (i, b) in dst.iter_mut().enumerate() {
            if let Some(c) = self.cells.get(idx + i) {
                // SAFETY: the consumer owns published bytes (ring protocol); loom checks it.
                *b = c.with(|p| unsafe { *p });
            }
        }
    }
}

/// Where a message's payload comes from (the producer side of [`RawRing::send`]).
pub trait Source {
    /// Writes payload bytes `offset..offset + len` at ring position `pos` (contiguous in
    /// the buffer: `len <= buf.contiguous(pos)`).
    fn fill(&mut self, buf: &Buf, pos: u32, offset: u64, len: u32);
}

/// Where a message's payload goes (the consumer side of [`RawRing::recv_peeked`]).
pub trait Sink {
    /// Takes payload bytes `offset..offset + len` from ring position `pos` (contiguous).
    fn take(&mut self, buf: &Buf, pos: u32, offset: u64, len: u32);
}

impl Source for &[u8] {
    #[inline]
    fn fill(&mut self, buf: &Buf, pos: u32, offset: u64, len: u32) {
        let o = offset as usize;
        if let Some(src) = self.get(o..o + len as usize) {
            buf.write(pos, src);
        }
    }
}

impl Sink for &mut [u8] {
    #[inline]
    fn take(&mut self, buf: &Buf, pos: u32, offset: u64, len: u32) {
        let o = offset as usize;
        if let Some(dst) = self.get_mut(o..o + len as usize) {
            buf.read(pos, dst);
        }
    }
}

impl Sink for Vec<u8> {
    #[inline]
    fn take(&mut self, buf: &Buf, pos: u32, offset: u64, len: u32) {
        debug_assert_eq!(offset, self.len() as u64);
        let old = self.len();
        self.resize(old + len as usize, 0);
        buf.read(pos, &mut self[old..]);
    }
}

/// A sink that drops the payload (used to skip a message).
#[derive(Debug, Default)]
pub struct Discard;

impl Sink for Discard {
    fn take(&mut self, _: &Buf, _: u32, _: u64, _: u32) {}
}

// ---------------------------------------------------------------------------------------
// The algorithm.

/// The most bytes a side copies between two publishes of its index while streaming a
/// message: small enough that the peer copies one piece while this side copies the next
/// (the two copies overlap), large enough that the fence and waiter check of each publish
/// cost nothing next to the copy.
#[inline]
fn piece(cap: u32) -> u32 {
    (cap / 4).max(HEADER)
}

/// Which side a wait is for.
#[derive(Clone, Copy)]
enum Side {
    Producer,
    Consumer,
}

impl RawRing {
    /// An empty, open ring (all zero bytes).
    pub fn new() -> Self {
        RawRing {
            tail: AtomicU32::new(0),
            _t: [0; LINE - 4],
            head_cache: AtomicU32::new(0),
            tx_mid: AtomicU32::new(0),
            _p: [0; LINE - 8],
            head: AtomicU32::new(0),
            tail_cache: AtomicU32::new(0),
            rx_mid: AtomicU32::new(0),
            _c: [0; LINE - 12],
            state: AtomicU32::new(0),
            rx_waiting: AtomicU32::new(0),
            rx_evt: AtomicU32::new(0),
            tx_waiting: AtomicU32::new(0),
            tx_evt: AtomicU32::new(0),
            _x: [0; LINE - 20],
        }
    }

    /// The `state` bits ([`WRITER_CLOSED`], [`READER_CLOSED`], [`BROKEN`]).
    #[inline]
    pub fn state(&self) -> u32 {
        // Acquire: pairs with the fetch_or in `set_state`; a reader that sees
        // WRITER_CLOSED also sees every publish made before the close.
        self.state.load(Ordering::Acquire)
    }

    /// Sets `bits` in `state` and wakes both sides, so sleepers re-check.
    pub fn set_state(&self, bits: u32) {
        // SeqCst: part of the handshake with the sleeper's `state` load after it set
        // `waiting` (see the module docs); also Release for the publishes before it.
        self.state.fetch_or(bits, Ordering::SeqCst);
        self.bump_and_wake(&self.rx_evt);
        self.bump_and_wake(&self.tx_evt);
    }

    /// True while a producer was part-way through a message (read by whoever takes the
    /// producer side over from a dead holder).
    pub fn tx_mid(&self) -> bool {
        // Relaxed: read under the producer lock, whose Acquire orders it.
        self.tx_mid.load(Ordering::Relaxed) != 0
    }

    /// True while a consumer was part-way through a message.
    pub fn rx_mid(&self) -> bool {
        // Relaxed: read under the consumer lock.
        self.rx_mid.load(Ordering::Relaxed) != 0
    }

    /// Bytes in the ring, if the indices are sane (a snapshot, for diagnostics).
    pub fn len(&self, cap: u32) -> Option<u32> {
        // Relaxed: a snapshot.
        let t = self.tail.load(Ordering::Relaxed);
        let h = self.head.load(Ordering::Relaxed);
        Some(t.wrapping_sub(h)).filter(|n| *n <= cap)
    }

    /// True when no byte is in the ring (a snapshot).
    pub fn is_empty(&self, cap: u32) -> bool {
        self.len(cap) == Some(0)
    }

    /// Overwrites the indices and state as a hostile peer could (fuzzing and tests).
    #[cfg(any(test, fuzzing))]
    pub fn scribble(&self, tail: u32, head: u32, head_cache: u32, tail_cache: u32, state: u32) {
        // Relaxed: a test hook; the fuzzer runs one thread.
        self.tail.store(tail, Ordering::Relaxed);
        self.head.store(head, Ordering::Relaxed);
        self.head_cache.store(head_cache, Ordering::Relaxed);
        self.tail_cache.store(tail_cache, Ordering::Relaxed);
        self.state.store(state, Ordering::Relaxed);
    }

    #[inline]
    fn bump_and_wake(&self, evt: &AtomicU32) {
        // SeqCst: the bump must not be ordered before the caller's publish / state store,
        // so a sleeper that read `evt` earlier sees a changed word in `futex_wait`.
        evt.fetch_add(1, Ordering::SeqCst);
        futex::wake_all(evt);
    }

    /// After the producer published `tail`: wake the consumer if it sleeps.
    #[inline]
    fn wake_consumer(&self) {
        // SYNC POINT (waker side of the Dekker handshake, see `wait`): the SeqCst fence
        // orders the publish before this load; pairs with the fence after the sleeper's
        // store of `rx_waiting`. Acquire: reads-from that store, so the sleeper's earlier
        // read of `rx_evt` cannot see the bump below.
        fence(Ordering::SeqCst);
        if self.rx_waiting.load(Ordering::Acquire) != 0 {
            self.rx_waiting.store(0, Ordering::Relaxed);
            self.bump_and_wake(&self.rx_evt);
        }
    }

    #[inline]
    fn wake_producer(&self) {
        // SYNC POINT: as in `wake_consumer`, with `tx_waiting` and the store of `head`.
        fence(Ordering::SeqCst);
        if self.tx_waiting.load(Ordering::Acquire) != 0 {
            self.tx_waiting.store(0, Ordering::Relaxed);
            self.bump_and_wake(&self.tx_evt);
        }
    }

    /// Producer: free bytes, refreshing the cached head when the cache says `< need`.
    #[inline]
    fn free(&self, cap: u32, tail: u32, head: &mut u32, need: u32) -> Result<u32, RingError> {
        let used = tail.wrapping_sub(*head);
        if used <= cap && cap - used >= need {
            return Ok(cap - used);
        }
        // Acquire: pairs with the consumer's Release store of `head` in
        // `publish_head`: the bytes it freed have been read before we overwrite them.
        *head = self.head.load(Ordering::Acquire);
        // Relaxed: a producer-private cache (rtrb's cached peer index).
        self.head_cache.store(*head, Ordering::Relaxed);
        let used = tail.wrapping_sub(*head);
        if used > cap {
            return Err(RingError::Corrupt("ring indices out of range"));
        }
        Ok(cap - used)
    }

    /// Consumer: bytes available, refreshing the cached tail when the cache says `< need`.
    #[inline]
    fn avail(&self, buf: &Buf, head: u32, tail: &mut u32, need: u32) -> Result<u32, RingError> {
        let cap = buf.cap();
        let n = tail.wrapping_sub(head);
        if n <= cap && n >= need {
            return Ok(n);
        }
        // New bytes land at the cached tail: fetch that line while `tail` comes.
        buf.prefetch(*tail);
        // Acquire: pairs with the producer's Release store of `tail` in
        // `publish_tail`: the bytes below it are written.
        *tail = self.tail.load(Ordering::Acquire);
        // Relaxed: a consumer-private cache.
        self.tail_cache.store(*tail, Ordering::Relaxed);
        let n = tail.wrapping_sub(head);
        if n > cap {
            return Err(RingError::Corrupt("ring indices out of range"));
        }
        Ok(n)
    }

    #[inline]
    fn publish_tail(&self, tail: u32) {
        // Release: publishes the bytes written below `tail`; pairs with the Acquire load
        // in `avail`. The fence in `wake_consumer` orders it before the `rx_waiting` load.
        self.tail.store(tail, Ordering::Release);
        self.wake_consumer();
    }

    #[inline]
    fn publish_head(&self, head: u32) {
        // Release: the bytes below `head` have been read; pairs with the Acquire load in
        // `free`. The fence in `wake_producer` orders it before the `tx_waiting` load.
        self.head.store(head, Ordering::Release);
        self.wake_producer();
    }

    /// Blocks until `ready()` gives `Some`, the deadline passes, or the peer is gone.
    ///
    /// `ready` re-checks the index; it is called after `waiting` is set, so a publish
    /// racing with the sleep is either seen by it or wakes the futex.
    #[cold]
    fn wait<T>(
        &self,
        side: Side,
        deadline: Option<Instant>,
        spin: SpinPolicy,
        watch: &impl Watch,
        mut ready: impl FnMut() -> Result<Option<T>, RingError>,
    ) -> Result<T, RingError> {
        let (waiting, evt, closed) = match side {
            Side::Producer => (&self.tx_waiting, &self.tx_evt, READER_CLOSED),
            Side::Consumer => (&self.rx_waiting, &self.rx_evt, WRITER_CLOSED),
        };
        // Spin as long as `spin` says, but look at the index after every PAUSE rather
        // than once per round: the hand-off is noticed within one PAUSE, as in the atomic
        // floor.
        for round in 0..spin.rounds {
            for _ in 0..spin.looks(round) {
                if let Some(v) = ready()? {
                    return Ok(v);
                }
                spin_hint();
            }
            if self.state() & (closed | BROKEN) != 0 {
                break;
            }
            spin.end_round(round);
        }
        let mut check_every = watch.interval();
        loop {
            // SeqCst: read before announcing ourselves (see the module docs); any bump
            // after this read makes the futex wait below return at once.
            let e = evt.load(Ordering::SeqCst);
            // Release: the waker's Acquire load of `waiting` reads from it, so our read of
            // `evt` above happens before the waker's bump (it cannot see the bump).
            waiting.store(1, Ordering::Release);
            // SYNC POINT (sleeper side of the Dekker handshake): store `waiting`, fence,
            // re-read the peer's index in `ready`; the waker publishes its index, fences,
            // reads `waiting` (`wake_consumer` / `wake_producer`). Of the two SeqCst
            // fences one comes first: if ours, the waker sees `waiting == 1` and wakes us;
            // if theirs, `ready` sees the published index. Without the fences (Acquire
            // re-read, SeqCst accesses only) loom finds the lost wake-up as a deadlock.
            fence(Ordering::SeqCst);
            if let Some(v) = ready()? {
                // Relaxed: only saves the peer a wake-up; a stale 1 costs one syscall.
                waiting.store(0, Ordering::Relaxed);
                return Ok(v);
            }
            let st = self.state();
            if st & BROKEN != 0 {
                waiting.store(0, Ordering::Relaxed);
                return Err(RingError::Broken);
            }
            if st & closed != 0 {
                waiting.store(0, Ordering::Relaxed);
                // The peer's last publish happened before its close: one more look.
                if let Some(v) = ready()? {
                    return Ok(v);
                }
                return Err(match side {
                    Side::Producer => RingError::BrokenPipe,
                    Side::Consumer => RingError::Eof,
                });
            }
            let wake_at = match (check_every, deadline) {
                (None, d) => d,
                (Some(c), None) => Some(Instant::now() + c),
                (Some(c), Some(d)) => Some(d.min(Instant::now() + c)),
            };
            if futex::wait(evt, e, wake_at) == WaitResult::TimedOut {
                if check_every.is_some() && watch.gone() {
                    self.set_state(closed);
                    continue; // drain what is left, then report
                }
                if time::expired(deadline) {
                    // Relaxed: see above.
                    waiting.store(0, Ordering::Relaxed);
                    return Err(RingError::Timeout);
                }
                check_every = check_every.map(|c| (c * 2).min(Duration::from_millis(100)));
            }
        }
    }

    /// Producer: sends one message of `len` bytes whose payload `src` writes in place.
    ///
    /// The caller holds the producer side (one producer at a time). Blocks while the ring
    /// is full. Nothing is sent when it fails before the first byte (`BrokenPipe`,
    /// `Broken`, `Corrupt` at the start); a failure part-way leaves the peer gone or the
    /// ring broken, so no reader ever sees the partial message.
    ///
    /// # Errors
    /// [`RingError::BrokenPipe`] (reader gone), [`RingError::Broken`],
    /// [`RingError::Corrupt`], or `Corrupt` when `len > MAX_MESSAGE`.
    pub fn send(
        &self,
        buf: &Buf,
        len: u64,
        src: &mut impl Source,
        spin: SpinPolicy,
        watch: &impl Watch,
    ) -> Result<(), RingError> {
        if len > MAX_MESSAGE {
            return Err(RingError::Corrupt("message longer than 2^48 bytes"));
        }
        let st = self.state();
        if st & BROKEN != 0 {
            return Err(RingError::Broken);
        }
        if st & READER_CLOSED != 0 {
            return Err(RingError::BrokenPipe);
        }
        let cap = buf.cap();
        // Relaxed: we hold the producer side; the previous holder's values reach us
        // through the lock (or program order).
        let mut tail = self.tail.load(Ordering::Relaxed);
        let mut head = self.head_cache.load(Ordering::Relaxed);
        // Relaxed: read by a successor of the producer lock only.
        self.tx_mid.store(1, Ordering::Relaxed);
        let header = len.to_le_bytes();
        let mut done = 0u64;
        let total = len + u64::from(HEADER);
        let mut published = tail;
        while done < total {
            let mut free = self.free(cap, tail, &mut head, 1)?;
            if free == 0 {
                if published != tail {
                    self.publish_tail(tail);
                    published = tail;
                }
                free = self.wait(Side::Producer, None, spin, watch, || {
                    self.free(cap, tail, &mut head, 1)
                        .map(|f| (f > 0).then_some(f))
                })?;
            }
            let k =
                u64::from(free.min(buf.contiguous(tail)).min(piece(cap))).min(total - done) as u32;
            if done < u64::from(HEADER) {
                let k = k.min(HEADER - done as u32);
                buf.write(tail, &header[done as usize..done as usize + k as usize]);
                tail = tail.wrapping_add(k);
                done += u64::from(k);
                continue;
            }
            src.fill(buf, tail, done - u64::from(HEADER), k);
            tail = tail.wrapping_add(k);
            done += u64::from(k);
            // Publish each piece of a streaming message so the reader can make room.
            if done < total {
                self.publish_tail(tail);
                published = tail;
            }
        }
        self.publish_tail(tail);
        // Relaxed: see above.
        self.tx_mid.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Consumer: waits until a whole frame header is in the ring and returns the message
    /// length, consuming nothing.
    ///
    /// # Errors
    /// [`RingError::Timeout`], [`RingError::Eof`], [`RingError::Broken`],
    /// [`RingError::Corrupt`] (impossible indices or length).
    pub fn peek(
        &self,
        buf: &Buf,
        deadline: Option<Instant>,
        spin: SpinPolicy,
        watch: &impl Watch,
    ) -> Result<u64, RingError> {
        if self.state() & BROKEN != 0 {
            return Err(RingError::Broken);
        }
        // Relaxed: we hold the consumer side (see `send`).
        let head = self.head.load(Ordering::Relaxed);
        let mut tail = self.tail_cache.load(Ordering::Relaxed);
        if self.avail(buf, head, &mut tail, HEADER)? < HEADER {
            self.wait(Side::Consumer, deadline, spin, watch, || {
                self.avail(buf, head, &mut tail, HEADER)
                    .map(|n| (n >= HEADER).then_some(n))
            })?;
        }
        let mut h = [0u8; HEADER as usize];
        buf.read(head, &mut h);
        let len = u64::from_le_bytes(h);
        if len > MAX_MESSAGE {
            self.set_state(BROKEN);
            return Err(RingError::Corrupt("frame header longer than 2^48 bytes"));
        }
        Ok(len)
    }

    /// Consumer: like [`peek`](Self::peek), then waits (same deadline) until the whole
    /// message is in the ring, or as much of it as the ring can hold at once. True when
    /// it is; false at the deadline.
    ///
    /// # Errors
    /// As [`peek`](Self::peek), except `Timeout` (false) and `Eof` (true: EOF is ready).
    pub fn poll(
        &self,
        buf: &Buf,
        deadline: Option<Instant>,
        spin: SpinPolicy,
        watch: &impl Watch,
    ) -> Result<bool, RingError> {
        let len = match self.peek(buf, deadline, spin, watch) {
            Ok(len) => len,
            Err(RingError::Timeout) => return Ok(false),
            Err(RingError::Eof) => return Ok(true),
            Err(e) => return Err(e),
        };
        let cap = buf.cap();
        let need = (len + u64::from(HEADER)).min(u64::from(cap)) as u32;
        // Relaxed: we hold the consumer side.
        let head = self.head.load(Ordering::Relaxed);
        let mut tail = self.tail_cache.load(Ordering::Relaxed);
        if self.avail(buf, head, &mut tail, need)? >= need {
            return Ok(true);
        }
        match self.wait(Side::Consumer, deadline, spin, watch, || {
            self.avail(buf, head, &mut tail, need)
                .map(|n| (n >= need).then_some(()))
        }) {
            Ok(()) | Err(RingError::Eof) => Ok(true),
            Err(RingError::Timeout) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Consumer: receives the message whose length [`peek`](Self::peek) returned, into
    /// `sink`. Call only right after a successful `peek` (same consumer, nothing between).
    /// Reads to the end of the message (no deadline): a begun message is never left.
    ///
    /// # Errors
    /// [`RingError::Eof`] when the writer died mid-message (the part is discarded),
    /// [`RingError::Broken`], [`RingError::Corrupt`].
    pub fn recv_peeked(
        &self,
        buf: &Buf,
        len: u64,
        sink: &mut impl Sink,
        spin: SpinPolicy,
        watch: &impl Watch,
    ) -> Result<(), RingError> {
        let cap = buf.cap();
        // Relaxed: we hold the consumer side.
        let mut head = self.head.load(Ordering::Relaxed);
        let mut tail = self.tail_cache.load(Ordering::Relaxed);
        if self.avail(buf, head, &mut tail, HEADER)? < HEADER {
            return Err(RingError::Corrupt("frame header vanished"));
        }
        head = head.wrapping_add(HEADER);
        // Relaxed: read by a successor of the consumer lock only.
        self.rx_mid.store(1, Ordering::Relaxed);
        let mut off = 0u64;
        let mut published = head.wrapping_sub(HEADER);
        while off < len {
            let mut n = self.avail(buf, head, &mut tail, 1)?;
            if n == 0 {
                if published != head {
                    self.publish_head(head);
                    published = head;
                }
                n = match self.wait(Side::Consumer, None, spin, watch, || {
                    self.avail(buf, head, &mut tail, 1)
                        .map(|n| (n > 0).then_some(n))
                }) {
                    Ok(n) => n,
                    Err(RingError::Eof) => {
                        // The writer died mid-message: drop the part (nothing follows it)
                        // and report EOF; the reader never sees a partial message.
                        self.publish_head(head);
                        // Relaxed: see above.
                        self.rx_mid.store(0, Ordering::Relaxed);
                        return Err(RingError::Eof);
                    }
                    Err(e) => return Err(e),
                };
            }
            let k = u64::from(n.min(buf.contiguous(head)).min(piece(cap))).min(len - off) as u32;
            sink.take(buf, head, off, k);
            head = head.wrapping_add(k);
            off += u64::from(k);
            if off < len {
                self.publish_head(head);
                published = head;
            }
        }
        self.publish_head(head);
        // Relaxed: see above.
        self.rx_mid.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Consumer: [`peek`](Self::peek) then [`recv_peeked`](Self::recv_peeked) into a new
    /// `Vec`, refusing (and leaving in the ring) a message longer than `max`.
    ///
    /// # Errors
    /// As `peek` and `recv_peeked`, and [`RingError::TooLong`].
    pub fn recv_vec(
        &self,
        buf: &Buf,
        max: u64,
        deadline: Option<Instant>,
        spin: SpinPolicy,
        watch: &impl Watch,
    ) -> Result<Vec<u8>, RingError> {
        let len = self.peek(buf, deadline, spin, watch)?;
        if len > max {
            return Err(RingError::TooLong(len));
        }
        // Never trust a length from shared memory with an allocation: grow as bytes come.
        let mut v = Vec::with_capacity(len.min(1 << 20) as usize);
        self.recv_peeked(buf, len, &mut v, spin, watch)?;
        Ok(v)
    }
}
