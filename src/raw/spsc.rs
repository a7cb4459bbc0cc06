//! The SPSC byte ring under each direction of a [`Pipe`](crate::pipe::Pipe), with its frame
//! protocol and wake protocol. No system calls except the shim's futex.
//!
//! # Positions
//!
//! `tail` (bytes ever written) and `head` (bytes ever consumed) are free-running `u32`s,
//! always multiples of 8; the capacity is a power of two from 32 to `2^30`, so
//! `tail - head` (wrapping) is the number of bytes in the ring and `pos & (cap - 1)` is
//! where a position lives in the buffer. Every value read from shared memory is checked
//! before use: `tail - head > cap`, a position that is not a multiple of 8 or an
//! impossible chunk header is [`ByteRingError::Corrupt`], never an out-of-bounds access (the
//! buffer index is always masked, and every copy is clipped to the buffer).
//!
//! | field        | written by                 | read by                              |
//! |--------------|----------------------------|--------------------------------------|
//! | `tx_lock`    | producers (one holds it)   | producers; a consumer about to sleep sets its `PEER` bit |
//! | `tail`       | producer                   | producer (its position; diagnostics) |
//! | `head_cache` | producer                   | producer (rtrb's cached peer index)  |
//! | `rx_lock`    | consumers (one holds it)   | consumers; a producer about to sleep sets its `PEER` bit |
//! | `head`       | consumer (publish)         | producer (when its cache says full)  |
//! | chunk headers| producer (publish)         | consumer (polls the one at `head`)   |
//! | `state`      | closers, poisoners         | both, at the start of every operation|
//! | `*_evt`      | wakers (bump + wake)       | sleepers (the futex word)            |
//!
//! Each group lives on its own 128-byte line: the producer's (its lock and indices), the
//! consumer's, and the control line. The consumer learns of new data from the
//! data itself (the chunk header at `head`), not from an index: a small message moves
//! from one core to the other as the one or two lines that hold it, as in the atomic
//! ping-pong floor, instead of an index line and then a data line.
//!
//! # Chunks and frames
//!
//! The ring holds *chunks* at 8-aligned positions: an 8-byte header word, then (in the
//! first chunk of a message that takes several) the 8-byte message length, then the
//! payload, padded to a multiple of 8. The header word is
//! `MARK | FIRST? | LAST? | payload length`; a message is one chunk `FIRST | LAST`, or a
//! `FIRST` chunk, zero or more middle chunks and a `LAST` chunk.
//!
//! ```text
//! producer, one chunk at tail:               consumer, at head:
//!   write length word and payload              h = header(head).load(Acquire)
//!   header(tail + size).store(0)  (the         if h == 0: nothing yet (spin / sleep)
//!     terminator: the next header slot)        read length word and payload
//!   header(tail).store(h, Release)             head += size; publish head
//!   tail += size
//! ```
//!
//! The zero terminator is what makes the header an honest "data is here" flag: the slot
//! where the next header will go holds stale bytes of an earlier lap until the producer
//! zeroes it, and it does so before it publishes the chunk that leads to it (so the
//! consumer, which reads a slot only after the chunk before it, never sees the stale
//! bytes). The producer therefore always keeps 8 bytes free beyond its last chunk.
//!
//! A message of any size passes through a ring of any capacity: the producer publishes
//! each chunk (at most `cap / 4` bytes of payload) as it is written, and the consumer
//! copies chunk `k` while the producer writes chunk `k + 1`. A consumer starts a message
//! only once its first chunk is published; from then on it reads the message to its end
//! (its deadline no longer applies), so a timed-out reader never leaves the ring
//! mid-message. The only way a message stops mid-way is its writer dying (or panicking):
//! the reader then reports EOF (the peer is gone) or [`ByteRingError::Broken`] (another copy
//! of the writer end saw the dead holder mid-message), never a partial message.
//!
//! # Waking
//!
//! A side that finds the ring full (producer) or empty (consumer) spins for a while
//! ([`SpinPolicy`]), then sleeps on its futex word, an event count. It announces itself
//! in the `PEER` bit of the *other* side's lock word ([`RawLock::set_user_flag`]: the lock's user flag), and
//! the other side learns of it from an RMW it makes anyway: the swap that releases its
//! lock after a message, which returns the old word.
//!
//! ```text
//! sleeper (e.g. the consumer)               waker (the producer, holding tx_lock)
//! e = evt.load()                            publish: header .store(Release)
//! tx_lock.fetch_or(PEER)                    old = tx_lock.swap(0)      (the unlock)
//! re-check header (Acquire), state          if old & PEER:
//! futex_wait(evt, e)                            evt += 1; wake_all(evt)
//! ```
//!
//! The two RMWs of one word form a Dekker handshake without a fence: they are ordered,
//! and if the announcement comes first, the unlock sees `PEER`, bumps `evt` and wakes;
//! if the unlock comes first, the announcement reads from it (or from a later RMW of the
//! word: a release sequence), so the re-check sees the header. Because `e` was read
//! before the announcement, a bump that comes before the sleeper reaches the kernel makes
//! `futex_wait` return at once. A side that keeps its lock while it publishes (a message
//! streamed chunk by chunk) clears the bit after each chunk instead
//! ([`RawLock::take_user_flag`]), and wakes if it was set. Closing bumps both event counts
//! unconditionally. A publish that finds nobody waiting makes no system call, and a small
//! message makes no RMW beyond its side's lock and unlock (an earlier version stored a
//! `waiting` flag and fenced after each publish: one full fence more per message).
//!
//! Only the holder of a side waits, so each side has at most one sleeper, and a sleeper
//! that does not sleep after all clears its own announcement.
//!
//! A peer that dies cannot wake anyone: a sleeper therefore also wakes periodically
//! (on its [`Liveness::recheck`] schedule: 1 ms, doubling to 100 ms) to ask whether the
//! peer is gone ([`Liveness::peer_gone`]).

use crate::raw::lock::{RawLock, USER_FLAG, WAITERS};
use crate::raw::Side;
use crate::sync::futex::WaitResult;
use crate::sync::liveness::Liveness;
use crate::sync::spin::SpinPolicy;
use crate::sync::wait::EventCount;
use crate::sync::{time, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

/// The bit of a side's lock word in which the *other* side announces that it sleeps
/// (module docs, "Waking"): the lock's [`USER_FLAG`], which the lock carries through all
/// its transitions and reports from the swap that unlocks.
const PEER: u32 = USER_FLAG;

/// Bytes of a chunk header word (and of the message-length word that follows the header
/// of a `FIRST` chunk that is not `LAST`, and of the zero terminator).
pub const HEADER: u32 = 8;

/// Chunk header: always set in a published header, so a header is never 0 (0 = no chunk).
const MARK: u64 = 1 << 63;
/// Chunk header: the chunk begins a message.
const FIRST: u64 = 1 << 62;
/// Chunk header: the chunk ends its message.
const LAST: u64 = 1 << 61;
/// Chunk header: the payload length of the chunk (in the low bits).
const LEN_MASK: u64 = (1 << 32) - 1;

/// The largest message the frame protocol accepts (2^48 bytes): a longer header is corrupt.
pub const MAX_MESSAGE: u64 = 1 << 48;

/// The smallest capacity of a ring (a first chunk of 8 payload bytes with its header,
/// length word and terminator).
pub const MIN_CAPACITY: u32 = 32;

/// The largest capacity of a ring (positions are `u32`s that must never lap twice).
pub const MAX_CAPACITY: u32 = 1 << 30;

/// `rx_mid` / `tx_mid`: the side is part-way through a message.
const MID: u32 = 1;
/// `rx_mid`: a timed receive gave up part-way through a message too long for the ring: the
/// next receive skips the rest of it first (chunks up to and including its last).
pub const SKIP: u32 = 2;

/// `state`: every process holding the writing end is gone (closed or dead).
pub const WRITER_CLOSED: u32 = 1;
/// `state`: every process holding the reading end is gone (closed or dead).
pub const READER_CLOSED: u32 = 2;
/// `state`: the frame stream is unusable (a writer or reader died mid-message while
/// another copy of its end lives on, or a peer wrote nonsense).
pub const BROKEN: u32 = 4;

const LINE: usize = 128;

/// The hardware cache line (x86-64, most ARM cores): the unit `ByteRing::prime` prepares.
const PRIME_LINE: u32 = 64;

/// Why a ring operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRingError {
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
    /// The message (`len` bytes) is longer than the limit the reader gave (`max`);
    /// nothing was consumed.
    TooLong {
        /// Bytes in the message.
        len: u64,
        /// The reader's limit.
        max: u64,
    },
    /// The deadline passed part-way through a message of this many bytes, too long to be
    /// whole in the ring: its part read is dropped, and the rest is skipped by the next
    /// receive.
    TimeoutMidMessage(u64),
}

/// The shared state of one direction. All zero bytes is an empty, open ring.
///
/// Three 128-byte lines, so that a message moves as few lines between the two cores as
/// possible: the producer's words (the consumer never reads them: it polls the chunk
/// header in the buffer, and touches `tx_lock` only to announce that it sleeps), the
/// consumer's words (`head` is read by the producer only when its cached copy says
/// "full"), the control line (read-mostly). Each side's lock is on its side's line, so a
/// message's lock, unlock and index updates touch one line that stays in its core.
#[repr(C)]
pub struct ByteRing {
    // Producer line: touched only by (holders of) the producer side.
    tx_lock: RawLock,
    tail: AtomicU32,
    head_cache: AtomicU32,
    tx_mid: AtomicU32,
    _p: [u8; LINE - 28],
    // Consumer line: the producer reads `head` only when its cached copy says "full".
    rx_lock: RawLock,
    head: AtomicU32,
    rx_mid: AtomicU32,
    _c: [u8; LINE - 24],
    // Control line: written rarely (close, sleep), read by both.
    state: AtomicU32,
    rx_evt: EventCount,
    tx_evt: EventCount,
    _x: [u8; LINE - 12],
}

#[cfg(not(shmproc_loom))]
mod layout {
    use super::*;
    static_assertions::assert_eq_size!(ByteRing, [u8; 3 * LINE]);
    static_assertions::const_assert_eq!(core::mem::offset_of!(ByteRing, tail), 16);
    static_assertions::const_assert_eq!(core::mem::offset_of!(ByteRing, rx_lock), LINE);
    static_assertions::const_assert_eq!(core::mem::offset_of!(ByteRing, head), LINE + 16);
    static_assertions::const_assert_eq!(core::mem::offset_of!(ByteRing, state), 2 * LINE);
    static_assertions::const_assert_eq!(core::mem::offset_of!(ByteRing, tx_evt), 2 * LINE + 8);
}

impl Default for ByteRing {
    fn default() -> Self {
        Self::new()
    }
}

// ---------------------------------------------------------------------------------------
// The ring's bytes.

/// The bytes of a ring: `cap` (a power of two) bytes the producer writes and the consumer
/// reads. Every access masks its position and is clipped to the buffer, whatever the
/// caller passes.
///
/// Chunk header words are accessed atomically (`load_word`,
/// `store_word`) at 8-aligned positions; the same bytes are payload
/// (plain copies) in other laps, ordered by the ring protocol. (The loom model keeps the
/// header words apart from the payload cells: it checks the ordering of the protocol,
/// while the space accounting that keeps a payload off a live header is checked by the
/// tests and the fuzzer on the real buffer.)
pub struct Buf {
    #[cfg(not(shmproc_loom))]
    ptr: *mut u8,
    #[cfg(shmproc_loom)]
    cells: Box<[crate::sync::UnsafeCell<u8>]>,
    #[cfg(shmproc_loom)]
    words: Box<[crate::sync::AtomicU64]>,
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
    /// - `ptr` is 8-byte aligned (chunk headers are `AtomicU64`s in the buffer);
    /// - `cap` is a power of two in `MIN_CAPACITY..=MAX_CAPACITY`;
    /// - only ring protocol code touches those bytes.
    #[cfg(not(shmproc_loom))]
    pub unsafe fn from_raw(ptr: *mut u8, cap: u32) -> Buf {
        debug_assert!(cap.is_power_of_two() && cap >= MIN_CAPACITY);
        debug_assert!(ptr as usize % 8 == 0);
        Buf { ptr, mask: cap - 1 }
    }

    /// A buffer of `cap` bytes for models (loom) and tests.
    #[cfg(shmproc_loom)]
    pub fn new_model(cap: u32) -> Buf {
        assert!(cap.is_power_of_two() && cap >= MIN_CAPACITY);
        Buf {
            cells: (0..cap).map(|_| crate::sync::UnsafeCell::new(0)).collect(),
            words: (0..cap / 8)
                .map(|_| crate::sync::AtomicU64::new(0))
                .collect(),
            mask: cap - 1,
        }
    }

    /// Capacity in bytes.
    #[inline]
    pub fn cap(&self) -> u32 {
        self.mask + 1
    }

    /// Copies positions `pos..pos + dst.len()` into `dst`. The bytes never wrap: every
    /// caller reads a stretch of one chunk (cut where the buffer wraps, `stretches`) or an
    /// 8-aligned length word; if they did, nothing is copied (never out of bounds).
    #[inline]
    fn read(&self, pos: u32, dst: &mut [u8]) {
        // The same test as the callers' `contiguous(pos) >= len`, so the compiler drops
        // one of the two where both are inlined.
        if dst.len() as u64 > u64::from(self.contiguous(pos)) {
            return; // unreachable by construction; never out of bounds.
        }
        // SAFETY: `dst.len() <= contiguous(pos) = cap - idx` (checked above).
        unsafe { self.copy_out((pos & self.mask) as usize, dst) }
    }

    /// Copies `src` to positions `pos..pos + src.len()`, which never wrap (as in `read`;
    /// nothing is copied if they did).
    #[inline]
    fn write(&self, pos: u32, src: &[u8]) {
        // As in `read`.
        if src.len() as u64 > u64::from(self.contiguous(pos)) {
            return; // unreachable by construction; never out of bounds.
        }
        // SAFETY: `src.len() <= contiguous(pos) = cap - idx` (checked above).
        unsafe { self.copy_in((pos & self.mask) as usize, src) }
    }

    /// The chunk header word at `pos` (rounded down to a multiple of 8; callers check
    /// that their positions are multiples of 8).
    #[cfg(not(shmproc_loom))]
    #[inline]
    fn word(&self, pos: u32) -> &AtomicU64 {
        let idx = (pos & self.mask & !7) as usize;
        // SAFETY: `idx + 8 <= cap` (cap is a multiple of 8 and idx one below it), so the
        // word is inside the buffer, and it is 8-aligned (`from_raw` contract: `ptr` is
        // 8-aligned); the buffer lives as long as `self`. Plain copies of the same bytes
        // (payload in another lap) are ordered against these atomic accesses by the ring
        // protocol.
        unsafe { &*self.ptr.add(idx).cast::<AtomicU64>() }
    }

    #[cfg(shmproc_loom)]
    #[inline]
    fn word(&self, pos: u32) -> &AtomicU64 {
        &self.words[((pos & self.mask) / 8) as usize]
    }

    /// Loads the chunk header word at `pos`.
    #[inline]
    fn load_word(&self, pos: u32, order: Ordering) -> u64 {
        self.word(pos).load(order)
    }

    /// Stores the chunk header word at `pos`.
    #[inline]
    fn store_word(&self, pos: u32, v: u64, order: Ordering) {
        self.word(pos).store(v, order);
    }

    /// Contiguous bytes from `pos` to the end of the buffer.
    #[inline]
    fn contiguous(&self, pos: u32) -> u32 {
        self.cap() - (pos & self.mask)
    }

    /// Calls `f(pos, done, k)` for each contiguous stretch of the `n` bytes from `pos`
    /// (`done` bytes before it; at most two stretches, split where the buffer wraps).
    #[inline]
    fn stretches(&self, mut pos: u32, n: u32, mut f: impl FnMut(u32, u32, u32)) {
        let mut done = 0u32;
        while done < n {
            let k = (n - done).min(self.contiguous(pos));
            f(pos, done, k);
            pos = pos.wrapping_add(k);
            done += k;
        }
    }

    /// Copies `src` to buffer index `idx`.
    ///
    /// # Safety
    /// `idx + src.len() <= cap` (`write` checks it).
    #[cfg(not(shmproc_loom))]
    #[inline]
    unsafe fn copy_in(&self, idx: usize, src: &[u8]) {
        debug_assert!(idx + src.len() <= self.cap() as usize);
        // SAFETY: idx + len <= cap (our contract), so the destination is inside the
        // buffer (`from_raw` contract); the bytes are free (not readable by the consumer)
        // by the ring protocol, and `src` is process-local memory, so they do not overlap.
        unsafe { copy_bytes(src.as_ptr(), self.ptr.add(idx), src.len()) }
    }

    /// Copies from buffer index `idx` into `dst`.
    ///
    /// # Safety
    /// `idx + dst.len() <= cap` (`read` checks it).
    #[cfg(not(shmproc_loom))]
    #[inline]
    unsafe fn copy_out(&self, idx: usize, dst: &mut [u8]) {
        debug_assert!(idx + dst.len() <= self.cap() as usize);
        // SAFETY: in bounds (our contract); the bytes were published by the producer
        // (Acquire on the chunk header) and it will not write them before we publish
        // `head`; `dst` is process-local memory, so they do not overlap.
        unsafe { copy_bytes(self.ptr.add(idx), dst.as_mut_ptr(), dst.len()) }
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

    /// The model's `copy_in` (checked per cell; `unsafe` only to match).
    #[cfg(shmproc_loom)]
    unsafe fn copy_in(&self, idx: usize, src: &[u8]) {
        for (i, b) in src.iter().enumerate() {
            if let Some(c) = self.cells.get(idx + i) {
                // SAFETY: the producer owns free bytes (ring protocol); loom checks it.
                c.with_mut(|p| unsafe { *p = *b });
            }
        }
    }

    /// The model's `copy_out` (checked per cell; `unsafe` only to match).
    #[cfg(shmproc_loom)]
    unsafe fn copy_out(&self, idx: usize, dst: &mut [u8]) {
        for (i, b) in dst.iter_mut().enumerate() {
            if let Some(c) = self.cells.get(idx + i) {
                // SAFETY: the consumer owns published bytes (ring protocol); loom checks it.
                *b = c.with(|p| unsafe { *p });
            }
        }
    }
}

/// Copies `len` bytes from `src` to `dst`. Up to 16 bytes (a small message's payload)
/// without a call into `memcpy`: as two overlapping word copies, which costs a few
/// instructions where the call costs ~25 and was a sixth of an 8-byte message's send and
/// receive.
///
/// # Safety
/// `src` is valid for reads and `dst` for writes of `len` bytes; they do not overlap.
#[cfg(not(shmproc_loom))]
#[inline(always)]
unsafe fn copy_bytes(src: *const u8, dst: *mut u8, len: usize) {
    use core::ptr::{read_unaligned as rd, write_unaligned as wr};
    // SAFETY: (all arms) the caller's contract; every access lies in `0..len` (`len - 8`
    // and `len - 4` do not underflow in their arms), and unaligned accesses are allowed.
    unsafe {
        match len {
            17.. => core::ptr::copy_nonoverlapping(src, dst, len),
            8..=16 => {
                let (a, b) = (rd(src.cast::<u64>()), rd(src.add(len - 8).cast::<u64>()));
                wr(dst.cast::<u64>(), a);
                wr(dst.add(len - 8).cast::<u64>(), b);
            }
            4..=7 => {
                let (a, b) = (rd(src.cast::<u32>()), rd(src.add(len - 4).cast::<u32>()));
                wr(dst.cast::<u32>(), a);
                wr(dst.add(len - 4).cast::<u32>(), b);
            }
            1..=3 => {
                // First, middle, last: covers 1, 2 and 3 bytes.
                *dst = *src;
                *dst.add(len / 2) = *src.add(len / 2);
                *dst.add(len - 1) = *src.add(len - 1);
            }
            0 => {}
        }
    }
}

/// Where a message's payload comes from (the producer side of [`ByteRing::send`]).
pub trait Source {
    /// Writes payload bytes `offset..offset + len` at ring position `pos` (contiguous in
    /// the buffer: `len <= buf.contiguous(pos)`).
    fn fill(&mut self, buf: &Buf, pos: u32, offset: u64, len: u32);
}

/// Where a message's payload goes (the consumer side of [`ByteRing::recv_peeked`]).
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

/// The most payload bytes in one chunk: small enough that the consumer copies one chunk
/// while the producer writes the next (the two copies overlap), large enough that the
/// waiter check of each chunk (an RMW of the side's lock word) costs nothing next to the
/// copy. A power of two (so every chunk but a message's last needs no padding), and at
/// least 8, as every `Buf` holds at least `MIN_CAPACITY` = 32 bytes.
#[inline]
fn piece(cap: u32) -> u32 {
    const _: () = assert!(MIN_CAPACITY / 4 >= HEADER);
    cap / 4
}

/// The longest message sent as one chunk when the free space holds it (a longer one is
/// cut into pieces, so the reader copies one while the writer writes the next).
const SINGLE_MAX: u64 = 64 << 10;

/// Bytes a chunk of `n` payload bytes takes in the ring: its header, the message-length
/// word if it has one, the payload padded to a multiple of 8. (`n <= cap <= 2^30`.)
#[inline]
fn chunk_size(n: u32, len_word: bool) -> u32 {
    HEADER + if len_word { HEADER } else { 0 } + n.next_multiple_of(HEADER)
}

/// A decoded chunk header.
struct Chunk {
    n: u32,
    first: bool,
    last: bool,
}

impl Chunk {
    /// Decodes a published header (never 0), checking it against the capacity.
    #[inline]
    fn decode(h: u64, cap: u32) -> Result<Chunk, ByteRingError> {
        if h & MARK == 0 || h & !(MARK | FIRST | LAST | LEN_MASK) != 0 {
            return Err(ByteRingError::Corrupt("chunk header is not a header"));
        }
        let first = h & FIRST != 0;
        let last = h & LAST != 0;
        let n = (h & LEN_MASK) as u32;
        // The producer always keeps the terminator's 8 bytes free after a chunk.
        if n > cap || chunk_size(n, first && !last) + HEADER > cap {
            return Err(ByteRingError::Corrupt("chunk longer than the ring"));
        }
        Ok(Chunk { n, first, last })
    }
}

/// What a fast path did (see [`ByteRing::recv_small`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fast<T> {
    /// Done: the operation completed with this result.
    Done(T),
    /// Nothing came while the spin policy ran: nothing was consumed, and the general path
    /// need not spin again before it sleeps.
    Spun,
    /// Not the fast path's case: nothing was consumed; the general path does it.
    Slow,
}

impl ByteRing {
    /// An empty, open ring (all zero bytes).
    pub fn new() -> Self {
        ByteRing {
            tx_lock: RawLock::new(),
            tail: AtomicU32::new(0),
            head_cache: AtomicU32::new(0),
            tx_mid: AtomicU32::new(0),
            _p: [0; LINE - 28],
            rx_lock: RawLock::new(),
            head: AtomicU32::new(0),
            rx_mid: AtomicU32::new(0),
            _c: [0; LINE - 24],
            state: AtomicU32::new(0),
            rx_evt: EventCount::new(),
            tx_evt: EventCount::new(),
            _x: [0; LINE - 12],
        }
    }

    /// The lock of `side`: one holder at a time uses a side. Release it with [`release`](Self::release), not
    /// [`RawLock::unlock`], which would not wake a sleeping peer.
    #[inline(always)]
    pub fn lock(&self, side: Side) -> &RawLock {
        match side {
            Side::Producer => &self.tx_lock,
            Side::Consumer => &self.rx_lock,
        }
    }

    /// Releases `side`, which the caller holds, and wakes the other side if it announced that it sleeps (module docs): what
    /// the caller published is then seen or woken for.
    #[inline(always)]
    pub fn release(&self, side: Side) {
        let lock = self.lock(side);
        // SYNC POINT "sleep handshake" (the waker's side): this swap is the RMW of the
        // lock word that reads the peer's announcement, after what we published.
        let old = lock.unlock_word();
        // One test for the two rare cases: other holders sleep, the peer sleeps.
        if old & (WAITERS | PEER) != 0 {
            self.release_wake(lock, old, side);
        }
    }

    /// The wake-ups of [`release`](Self::release), out of line.
    #[cold]
    fn release_wake(&self, lock: &RawLock, old: u32, side: Side) {
        if old & WAITERS != 0 {
            lock.wake_waiter();
        }
        if old & PEER != 0 {
            self.peer_evt(side).notify_all();
        }
    }

    /// The event count the other side of the producer side (`producer`) or of the
    /// consumer side sleeps on.
    #[inline(always)]
    fn peer_evt(&self, side: Side) -> &EventCount {
        match side {
            Side::Producer => &self.rx_evt,
            Side::Consumer => &self.tx_evt,
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
        // SeqCst (Release is what counts): a sleeper whose SeqCst read of an event count
        // sees the bump below synchronises with it, so its `state` load sees these bits;
        // one whose read does not will find the count changed in `futex_wait`. Also
        // Release for the publishes before it.
        self.state.fetch_or(bits, Ordering::SeqCst);
        self.rx_evt.notify_all();
        self.tx_evt.notify_all();
    }

    /// True while a producer was part-way through a message (read by whoever takes the
    /// producer side over from a dead holder).
    pub fn tx_mid(&self) -> bool {
        // Relaxed: read under the producer lock, whose Acquire orders it.
        self.tx_mid.load(Ordering::Relaxed) != 0
    }

    /// True while a consumer was part-way through a message (reading it: a holder that
    /// dies then leaves a frame nobody can finish). A message whose rest is to be skipped
    /// ([`SKIP`]) is not part-way: any receiver finishes skipping it.
    pub fn rx_mid(&self) -> bool {
        // Relaxed: read under the consumer lock.
        self.rx_mid.load(Ordering::Relaxed) == MID
    }

    /// True when no chunk is published at the consumer's position (a snapshot).
    pub fn is_empty(&self, buf: &Buf) -> bool {
        // Relaxed: a snapshot.
        let h = self.head.load(Ordering::Relaxed);
        buf.load_word(h, Ordering::Relaxed) == 0
    }

    /// Bytes written and not yet consumed (`tail - head`: payload, chunk headers and
    /// padding), a snapshot for inspection; above the capacity only in a corrupted ring.
    pub fn in_flight(&self) -> u32 {
        // Relaxed (both): a diagnostic snapshot; it orders nothing.
        let tail = self.tail.load(Ordering::Relaxed);
        tail.wrapping_sub(self.head.load(Ordering::Relaxed))
    }

    /// Overwrites the indices and state as a hostile peer could (fuzzing and tests).
    #[cfg(any(test, fuzzing))]
    pub fn scribble(&self, tail: u32, head: u32, head_cache: u32, state: u32) {
        // Relaxed: a test hook; the fuzzer runs one thread.
        self.tail.store(tail, Ordering::Relaxed);
        self.head.store(head, Ordering::Relaxed);
        self.head_cache.store(head_cache, Ordering::Relaxed);
        self.state.store(state, Ordering::Relaxed);
    }

    /// After the producer (`producer`) published a chunk, or the consumer `head`, part-way
    /// through a message (it keeps its lock): wake the other side if it announced that it
    /// sleeps. The waker's half of the handshake in the module docs, without the unlock.
    #[inline]
    fn wake_peer(&self, side: Side) {
        // SYNC POINT "sleep handshake" (the waker's side, holding the lock).
        if self.lock(side).take_user_flag() {
            self.peer_evt(side).notify_all();
        }
    }

    /// Producer: free bytes, refreshing the cached head when the cache says `< need`.
    #[inline]
    fn free(&self, cap: u32, tail: u32, head: &mut u32, need: u32) -> Result<u32, ByteRingError> {
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
            return Err(ByteRingError::Corrupt("ring indices out of range"));
        }
        Ok(cap - used)
    }

    /// Consumer: the header of the chunk at `head`, if it is published.
    #[inline]
    fn chunk_at(&self, buf: &Buf, head: u32) -> Option<u64> {
        // SYNC POINT "chunk published" (the consumer's half). Acquire: pairs with the
        // producer's Release store of the header in `publish_chunk`: the chunk's payload,
        // length word and terminator are written.
        let h = buf.load_word(head, Ordering::Acquire);
        (h != 0).then_some(h)
    }

    /// Consumer: waits (until `deadline`) for the chunk at `head`; returns its header.
    #[inline]
    fn next_chunk(
        &self,
        buf: &Buf,
        head: u32,
        deadline: Option<Instant>,
        spin: SpinPolicy,
        who: &impl Liveness,
        mid: bool,
    ) -> Result<u64, ByteRingError> {
        if let Some(h) = self.chunk_at(buf, head) {
            return Ok(h);
        }
        self.wait(Side::Consumer, deadline, spin, who, mid, || {
            Ok(self.chunk_at(buf, head))
        })
    }

    /// Consumer: consumes the bytes below `head`. Wakes nobody: the release of the side
    /// does, or `wake_peer` part-way through a message.
    #[inline]
    fn publish_head(&self, head: u32) {
        // Release: the bytes below `head` have been read; pairs with the Acquire load in
        // `free`. The RMW of `rx_lock` that follows (the release, or `take_user_flag`) orders it
        // before the producer's re-check (module docs).
        self.head.store(head, Ordering::Release);
    }

    /// Spins as `spin` says, calling `look` after every PAUSE (`SpinPolicy::spin`), until
    /// it gives `Some` (then `Some(Some(_))`) or the ring is `closed` (the peer's bit) or
    /// broken (then `Some(None)`); `None` when the spin ran out. No system call but the
    /// policy's yields.
    #[inline]
    fn spin_look<R>(
        &self,
        closed: u32,
        spin: SpinPolicy,
        mut look: impl FnMut() -> Option<R>,
    ) -> Option<Option<R>> {
        spin.spin(|| match look() {
            Some(r) => Some(Some(r)),
            None if self.state() & (closed | BROKEN) != 0 => Some(None),
            None => None,
        })
    }

    /// Blocks until `ready()` gives `Some`, the deadline passes, or the peer is gone.
    ///
    /// `ready` re-checks the index; it is called after the announcement in the peer's lock
    /// word, so a publish racing with the sleep is either seen by it or wakes the futex.
    ///
    /// `mid`: the consumer waits for the next chunk of a message it has begun. Then the
    /// writer holds the producer side, and if that holder is found dead (on the same
    /// schedule as the peer), the message can never end: the ring is broken (another copy
    /// of the writing end lives on) or, the peer being gone too, at its end (EOF).
    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn wait<T>(
        &self,
        side: Side,
        deadline: Option<Instant>,
        spin: SpinPolicy,
        who: &impl Liveness,
        mid: bool,
        mut ready: impl FnMut() -> Result<Option<T>, ByteRingError>,
    ) -> Result<T, ByteRingError> {
        // The peer's lock is where we announce ourselves (module docs).
        let (peer, evt, closed) = match side {
            Side::Producer => (&self.rx_lock, &self.tx_evt, READER_CLOSED),
            Side::Consumer => (&self.tx_lock, &self.rx_evt, WRITER_CLOSED),
        };
        // Look first (the common case: it is there), then spin; a closed or broken ring
        // stops the spin early, and the sleep path below sorts out why.
        if let Some(v) = ready()? {
            return Ok(v);
        }
        if let Some(Some(r)) = self.spin_look(closed, spin, || ready().transpose()) {
            return r;
        }
        let mut recheck = who.recheck();
        loop {
            // SeqCst: read before announcing ourselves (see the module docs); any bump
            // after this read makes the futex wait below return at once.
            let e = evt.key();
            // SYNC POINT "sleep handshake" (the sleeper's side): announce in the peer's
            // lock word, then re-check in `ready`; the waker publishes, then makes its RMW
            // of that word (its release, or `take_user_flag`) and wakes if it finds PEER. The
            // two RMWs are ordered: if ours is first, the waker sees PEER and wakes us
            // (our read of `evt` happens before its bump: its RMW is Acquire); if theirs
            // is first, ours reads from it and `ready` sees the publish.
            peer.set_user_flag();
            if let Some(v) = ready()? {
                // Only saves the peer a wake-up: a stale PEER costs it one syscall.
                peer.take_user_flag();
                return Ok(v);
            }
            let st = self.state();
            if st & BROKEN != 0 {
                peer.take_user_flag();
                return Err(ByteRingError::Broken);
            }
            if st & closed != 0 {
                peer.take_user_flag();
                // The peer's last publish happened before its close: one more look.
                if let Some(v) = ready()? {
                    return Ok(v);
                }
                return Err(match side {
                    Side::Producer => ByteRingError::BrokenPipe,
                    Side::Consumer => ByteRingError::Eof,
                });
            }
            let wake_at = recheck.map_or(deadline, |r| r.wake_at(deadline));
            if evt.wait(e, wake_at) == WaitResult::TimedOut {
                if recheck.is_some() && who.peer_gone() {
                    self.set_state(closed);
                    continue; // drain what is left, then report
                }
                if recheck.is_some() && mid && self.tx_lock.holder_died(who) {
                    // The writer died part-way through the message we are reading: it
                    // never ends. The next writer would find the same when it takes the
                    // side over (`Held`); we cannot wait for that.
                    self.set_state(BROKEN);
                    continue; // reported by the state check above
                }
                if time::expired(deadline) {
                    peer.take_user_flag();
                    return Err(ByteRingError::Timeout);
                }
                if let Some(r) = &mut recheck {
                    r.backoff();
                }
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
    /// [`ByteRingError::BrokenPipe`] (reader gone), [`ByteRingError::Broken`],
    /// [`ByteRingError::Corrupt`], or `Corrupt` when `len > MAX_MESSAGE`.
    #[inline]
    pub fn send(
        &self,
        buf: &Buf,
        len: u64,
        src: &mut impl Source,
        spin: SpinPolicy,
        who: &impl Liveness,
    ) -> Result<(), ByteRingError> {
        if self.send_whole(buf, len, src) {
            return Ok(());
        }
        self.send_chunks(buf, len, src, spin, who)
    }

    /// The common case of [`send`](Self::send) as one straight line: a message of at most
    /// a piece, as one chunk, contiguous in the buffer, into space that is free now, on an
    /// open ring. True when sent; false when any of that does not hold,
    /// and then nothing was written: [`send_chunks`](Self::send_chunks) does it (and
    /// reports what is wrong, if anything is).
    #[inline]
    fn send_whole(&self, buf: &Buf, len: u64, src: &mut impl Source) -> bool {
        let cap = buf.cap();
        if len > u64::from(piece(cap)) || self.state() != 0 {
            return false;
        }
        let n = len as u32;
        // Relaxed: as in `send_chunks`.
        let tail = self.tail.load(Ordering::Relaxed);
        let mut head = self.head_cache.load(Ordering::Relaxed);
        let size = chunk_size(n, false);
        let pos = tail.wrapping_add(HEADER);
        // The chunk and its terminator; `free` refreshes a stale cached head.
        let need = size + HEADER;
        if tail % HEADER != 0 || buf.contiguous(pos) < n {
            return false;
        }
        if !matches!(self.free(cap, tail, &mut head, need), Ok(free) if free >= need) {
            return false;
        }
        // Relaxed: as in `send_chunks`. One chunk is published by one store, but a holder
        // that dies between that store and the store of `tail` leaves a stale `tail`.
        self.tx_mid.store(1, Ordering::Relaxed);
        src.fill(buf, pos, 0, n);
        self.publish_chunk(buf, tail, head, size, MARK | FIRST | LAST | u64::from(n));
        // Relaxed: as above.
        self.tx_mid.store(0, Ordering::Relaxed);
        true
    }

    /// `send_whole` for a message in a slice: the caller's fast path, inlined into it
    /// (`Connection::send_bytes`). True when sent; false, with nothing written, when the
    /// general path must do it.
    #[inline(always)]
    pub fn send_small(&self, buf: &Buf, src: &[u8]) -> bool {
        let mut src = src;
        self.send_whole(buf, src.len() as u64, &mut src)
    }

    /// Producer: publishes the chunk of `size` bytes at `tail` whose payload (and length
    /// word) is written, under header `h`, after zeroing the terminator after it; advances
    /// `tail`, then makes the next cache line ready for the next chunk (`prime`). `head`
    /// is a head the producer has read (its cache): the bytes below `head + cap` are free.
    /// Wakes nobody: the release of the side does, or `wake_peer` part-way through a
    /// message.
    #[inline]
    fn publish_chunk(&self, buf: &Buf, tail: u32, head: u32, size: u32, h: u64) {
        let next = tail.wrapping_add(size);
        // Relaxed: the terminator; the consumer reads this slot only after it has read
        // this chunk's header, so the Release store below orders it.
        buf.store_word(next, 0, Ordering::Relaxed);
        // SYNC POINT "chunk published" (the producer's half). Release: publishes the
        // payload, length word and terminator written before; pairs with the consumer's
        // Acquire load in `chunk_at`.
        buf.store_word(tail, h, Ordering::Release);
        // Relaxed: our own position, read by the next holder of the producer side
        // (through the lock).
        self.tail.store(next, Ordering::Relaxed);
        self.prime(buf, next, head);
    }

    /// Producer, after a publish that left `tail` at `next`: writes a zero to the first
    /// word of the cache line after the one `next` is in, if that word is free (below
    /// `head + cap`).
    ///
    /// The line last held bytes of an earlier lap, which the consumer read, so it sits
    /// in the consumer's cache and the producer's first store to it must wait for the
    /// consumer's copy to be invalidated: a cross-core round trip. Stores leave a core in
    /// order, so when that first store is the terminator of a chunk ending at the line's
    /// start (every fourth 8-byte message), the chunk's header, stored just after it,
    /// waits too, on the round trip's critical path. Stored here, after this chunk's
    /// header, the zero takes that wait off every publish: by the next one the line is
    /// the producer's. The word is free and beyond `tail`, so the consumer does not read
    /// it before a chunk that leads to it is published, and zero is what a terminator
    /// would put there. Interleaved with the build without it, at the same floor: an
    /// 8-byte round trip of ~128 ns took ~107.
    #[inline]
    fn prime(&self, buf: &Buf, next: u32, head: u32) {
        let ahead = next.wrapping_add(PRIME_LINE) & !(PRIME_LINE - 1);
        // The word's end minus `head`: at most `cap` when it lies in free space. (With
        // corrupt indices the store still lands in the buffer: `store_word` masks.)
        if ahead.wrapping_add(HEADER).wrapping_sub(head) <= buf.cap() {
            // Relaxed: a free word beyond `tail`; the Release store of the header of the
            // chunk that leads to it orders it for the consumer, as for a terminator.
            buf.store_word(ahead, 0, Ordering::Relaxed);
        }
    }

    /// [`send`](Self::send), any message: cut into pieces when it is longer than a piece
    /// and the free space does not hold it whole, waiting for space as it goes.
    fn send_chunks(
        &self,
        buf: &Buf,
        len: u64,
        src: &mut impl Source,
        spin: SpinPolicy,
        who: &impl Liveness,
    ) -> Result<(), ByteRingError> {
        if len > MAX_MESSAGE {
            return Err(ByteRingError::Corrupt("message longer than 2^48 bytes"));
        }
        let st = self.state();
        if st & BROKEN != 0 {
            return Err(ByteRingError::Broken);
        }
        if st & READER_CLOSED != 0 {
            return Err(ByteRingError::BrokenPipe);
        }
        let cap = buf.cap();
        let piece = piece(cap);
        // Relaxed: we hold the producer side; the previous holder's values reach us
        // through the lock (or program order).
        let mut tail = self.tail.load(Ordering::Relaxed);
        let mut head = self.head_cache.load(Ordering::Relaxed);
        if tail % HEADER != 0 {
            return Err(ByteRingError::Corrupt("ring position not a multiple of 8"));
        }
        // Relaxed: read by a successor of the producer lock only.
        self.tx_mid.store(1, Ordering::Relaxed);
        let mut off = 0u64;
        loop {
            let first = off == 0;
            let mut n = (len - off).min(u64::from(piece)) as u32;
            if first && len > u64::from(n) && len <= SINGLE_MAX.min(u64::from(cap)) {
                // A message the free space holds whole goes as one chunk, like a write
                // into a kernel pipe with room for it: no reader needed.
                let need = chunk_size(len as u32, false) + HEADER;
                if need <= cap && self.free(cap, tail, &mut head, need)? >= need {
                    n = len as u32;
                }
            }
            let last = off + u64::from(n) == len;
            let len_word = first && !last;
            let size = chunk_size(n, len_word);
            // The chunk and the terminator after it (`size + HEADER <= cap`: n <= cap / 4).
            let need = size + HEADER;
            if self.free(cap, tail, &mut head, need)? < need {
                self.wait(Side::Producer, None, spin, who, false, || {
                    self.free(cap, tail, &mut head, need)
                        .map(|f| (f >= need).then_some(()))
                })?;
            }
            let mut pos = tail.wrapping_add(HEADER);
            if len_word {
                buf.write(pos, &len.to_le_bytes());
                pos = pos.wrapping_add(HEADER);
            }
            buf.stretches(pos, n, |pos, done, k| {
                src.fill(buf, pos, off + u64::from(done), k)
            });
            let mut h = MARK | u64::from(n);
            if first {
                h |= FIRST;
            }
            if last {
                h |= LAST;
            }
            self.publish_chunk(buf, tail, head, size, h);
            // Not left to the release: the consumer may sleep until this chunk comes.
            self.wake_peer(Side::Producer);
            tail = tail.wrapping_add(size);
            off += u64::from(n);
            if last {
                break;
            }
        }
        // Relaxed: see above.
        self.tx_mid.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Consumer: waits until the first chunk of a message is in the ring and returns the
    /// message length, consuming nothing.
    ///
    /// # Errors
    /// [`ByteRingError::Timeout`], [`ByteRingError::Eof`], [`ByteRingError::Broken`],
    /// [`ByteRingError::Corrupt`] (impossible position, chunk header or length).
    #[inline]
    pub fn peek(
        &self,
        buf: &Buf,
        deadline: Option<Instant>,
        spin: SpinPolicy,
        who: &impl Liveness,
    ) -> Result<u64, ByteRingError> {
        if self.state() & BROKEN != 0 {
            return Err(ByteRingError::Broken);
        }
        // Relaxed: we hold the consumer side (see `send`).
        if self.rx_mid.load(Ordering::Relaxed) == SKIP {
            self.skip_rest(buf, deadline, spin, who)?;
        }
        // Relaxed: as above.
        let head = self.head.load(Ordering::Relaxed);
        if head % HEADER != 0 {
            return Err(ByteRingError::Corrupt("ring position not a multiple of 8"));
        }
        let h = self.next_chunk(buf, head, deadline, spin, who, false)?;
        let c = Chunk::decode(h, buf.cap()).inspect_err(|_| self.set_state(BROKEN))?;
        if !c.first {
            self.set_state(BROKEN);
            return Err(ByteRingError::Corrupt(
                "a message begins with a middle chunk",
            ));
        }
        if c.last {
            return Ok(u64::from(c.n));
        }
        let mut w = [0u8; HEADER as usize];
        buf.read(head.wrapping_add(HEADER), &mut w);
        let len = u64::from_le_bytes(w);
        if len > MAX_MESSAGE || len <= u64::from(c.n) {
            self.set_state(BROKEN);
            return Err(ByteRingError::Corrupt("message length word out of range"));
        }
        Ok(len)
    }

    /// Consumer: skips the rest of a message a timed receive gave up on ([`SKIP`]): its
    /// chunks up to and including its last, waiting for them until `deadline` (a timeout
    /// leaves the rest to skip to the next receive).
    fn skip_rest(
        &self,
        buf: &Buf,
        deadline: Option<Instant>,
        spin: SpinPolicy,
        who: &impl Liveness,
    ) -> Result<(), ByteRingError> {
        let cap = buf.cap();
        // Relaxed: we hold the consumer side.
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            if head % HEADER != 0 {
                return Err(ByteRingError::Corrupt("ring position not a multiple of 8"));
            }
            let h = self.next_chunk(buf, head, deadline, spin, who, true)?;
            let c = Chunk::decode(h, cap).inspect_err(|_| self.set_state(BROKEN))?;
            if c.first {
                // The message being skipped never ended: a new one began after it.
                self.set_state(BROKEN);
                return Err(ByteRingError::Corrupt("a message begins inside another"));
            }
            head = head.wrapping_add(chunk_size(c.n, false));
            self.publish_head(head);
            self.wake_peer(Side::Consumer);
            if c.last {
                // Relaxed: read under the consumer lock.
                self.rx_mid.store(0, Ordering::Relaxed);
                return Ok(());
            }
        }
    }

    /// Consumer: like [`peek`](Self::peek), then waits (same deadline) until the whole
    /// message is in the ring, or has begun if it is too long to be whole in the ring:
    /// what a timed receive waits for before it consumes anything, so that it never
    /// times out part-way through a message that could be whole.
    ///
    /// # Errors
    /// As [`peek`](Self::peek) (`Timeout`: nothing was consumed).
    pub fn peek_whole(
        &self,
        buf: &Buf,
        deadline: Option<Instant>,
        spin: SpinPolicy,
        who: &impl Liveness,
    ) -> Result<u64, ByteRingError> {
        let len = self.peek(buf, deadline, spin, who)?;
        // Relaxed: we hold the consumer side.
        let head = self.head.load(Ordering::Relaxed);
        if self.ready_whole(buf, head, len)? {
            return Ok(len);
        }
        // The message has begun: its writer holds the producer side until it ends it.
        self.wait(Side::Consumer, deadline, spin, who, true, || {
            self.ready_whole(buf, head, len).map(|w| w.then_some(()))
        })?;
        Ok(len)
    }

    /// Consumer: whether the message of `len` bytes at `head` is whole in the ring (its
    /// last chunk is published), or is too long to ever be whole in it (then it counts
    /// once it has begun).
    fn ready_whole(&self, buf: &Buf, head: u32, len: u64) -> Result<bool, ByteRingError> {
        let cap = buf.cap();
        let pieces = len.div_ceil(u64::from(piece(cap))).max(1);
        // Headers, length word, the last piece's padding, the terminator.
        if len + HEADER as u64 * (pieces + 3) > u64::from(cap) {
            return Ok(true);
        }
        let mut pos = head;
        for _ in 0..cap / HEADER {
            let Some(h) = self.chunk_at(buf, pos) else {
                return Ok(false);
            };
            let c = Chunk::decode(h, cap)?;
            if c.last {
                return Ok(true);
            }
            pos = pos.wrapping_add(chunk_size(c.n, c.first));
        }
        Err(ByteRingError::Corrupt(
            "chunks without an end fill the ring",
        ))
    }

    /// Consumer: like [`peek`](Self::peek), then waits (same deadline) until the whole
    /// message is in the ring, or has begun if it is too long to be whole in the ring.
    /// True when it is; false at the deadline.
    ///
    /// # Errors
    /// As [`peek`](Self::peek), except `Timeout` (false) and `Eof` (true: EOF is ready).
    pub fn poll(
        &self,
        buf: &Buf,
        deadline: Option<Instant>,
        spin: SpinPolicy,
        who: &impl Liveness,
    ) -> Result<bool, ByteRingError> {
        match self.peek_whole(buf, deadline, spin, who) {
            Ok(_) | Err(ByteRingError::Eof) => Ok(true),
            Err(ByteRingError::Timeout) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Consumer: receives the message whose length [`peek`](Self::peek) returned, into
    /// `sink`. Call only right after a successful `peek` (same consumer, nothing between).
    /// Reads to the end of the message, waiting for its chunks until `deadline`: after
    /// [`peek_whole`](Self::peek_whole) only a message too long to be whole in the ring
    /// can wait (it streams), and if the deadline passes part-way through one, the part
    /// read is dropped and the rest skipped by the next receive
    /// ([`ByteRingError::TimeoutMidMessage`]). A writer that dies part-way is found by
    /// its lock ([`RawLock::holder_died`]).
    ///
    /// # Errors
    /// [`ByteRingError::Eof`] when the writer died mid-message and no copy of its end
    /// lives on (the part is discarded), [`ByteRingError::Broken`] when one does,
    /// [`ByteRingError::TimeoutMidMessage`], [`ByteRingError::Corrupt`].
    #[inline]
    pub fn recv_peeked(
        &self,
        buf: &Buf,
        len: u64,
        sink: &mut impl Sink,
        deadline: Option<Instant>,
        spin: SpinPolicy,
        who: &impl Liveness,
    ) -> Result<(), ByteRingError> {
        // Relaxed: we hold the consumer side.
        let head = self.head.load(Ordering::Relaxed);
        let Some(h) = self.chunk_at(buf, head) else {
            return Err(ByteRingError::Corrupt("chunk header vanished"));
        };
        // The common case in one straight line: the whole message is this one chunk
        // (`peek` checked the header against the capacity), contiguous in the buffer. One
        // store of `head` consumes it, so no `rx_mid`: a holder that dies before that
        // store leaves the message in the ring, whole, for the next holder.
        let pos = head.wrapping_add(HEADER);
        if h == MARK | FIRST | LAST | len && u64::from(buf.contiguous(pos)) >= len {
            sink.take(buf, pos, 0, len as u32);
            self.publish_head(head.wrapping_add(chunk_size(len as u32, false)));
            return Ok(());
        }
        self.recv_chunks(buf, head, h, len, sink, deadline, spin, who)
    }

    /// Consumer: the common case of receiving, as one straight line with its spin inline:
    /// waits (spinning as `spin` says, no sleep) for the chunk at `head`, and if it is a
    /// whole message of at most a piece that fits in `dst`, contiguous in the buffer, on a
    /// ring that is not broken, copies it into `dst`, consumes it and returns
    /// [`Fast::Done`] with its length.
    ///
    /// Anything else consumes nothing: [`Fast::Spun`] when the spin ran out with no chunk
    /// there (the general path may go straight to sleep), [`Fast::Slow`] when a chunk or a
    /// closed or broken state is there but is not this case (the general path sorts it
    /// out: a longer or chunked message, a too-small `dst`, EOF, a corrupt header).
    ///
    /// This is [`peek`](Self::peek) + [`recv_peeked`](Self::recv_peeked) without the
    /// layers between them: the one header load that saw the chunk is the one decoded, and
    /// the spin exits into the copy. The caller holds the consumer side.
    #[inline]
    pub fn recv_small(&self, buf: &Buf, dst: &mut [u8], spin: SpinPolicy) -> Fast<usize> {
        // Relaxed: we hold the consumer side (see `peek`).
        let head = self.head.load(Ordering::Relaxed);
        let h = match self.chunk_at(buf, head) {
            Some(h) => h,
            None => match self.spin_look(WRITER_CLOSED, spin, || self.chunk_at(buf, head)) {
                Some(Some(h)) => h,
                Some(None) => return Fast::Slow,
                None => return Fast::Spun,
            },
        };
        let cap = buf.cap();
        let n = (h & LEN_MASK) as u32;
        let pos = head.wrapping_add(HEADER);
        // The header is a whole message; its length is at most a piece (so the chunk and
        // its terminator fit in the ring: what `Chunk::decode` checks) and fits `dst`; the
        // position is a chunk position and the payload does not wrap; the ring is not
        // broken (`peek` reports that before anything else).
        // (The first test is `h & !LEN_MASK == MARK | FIRST | LAST && n <= piece` in one
        // comparison: any other high bits put `h - (MARK | FIRST | LAST)` above 2^32.)
        if h.wrapping_sub(MARK | FIRST | LAST) > u64::from(piece(cap))
            || n as usize > dst.len()
            || head % HEADER != 0
            || buf.contiguous(pos) < n
            || self.state() & BROKEN != 0
        {
            return Fast::Slow;
        }
        buf.read(pos, &mut dst[..n as usize]);
        self.publish_head(head.wrapping_add(chunk_size(n, false)));
        Fast::Done(n as usize)
    }

    /// [`recv_peeked`](Self::recv_peeked), any message: chunk by chunk from `head`, whose
    /// header `h` is published, each checked against the message length.
    #[allow(clippy::too_many_arguments)]
    fn recv_chunks(
        &self,
        buf: &Buf,
        mut head: u32,
        mut h: u64,
        len: u64,
        sink: &mut impl Sink,
        deadline: Option<Instant>,
        spin: SpinPolicy,
        who: &impl Liveness,
    ) -> Result<(), ByteRingError> {
        let cap = buf.cap();
        // Relaxed: read by a successor of the consumer lock only.
        self.rx_mid.store(MID, Ordering::Relaxed);
        let mut off = 0u64;
        loop {
            let c = Chunk::decode(h, cap)?;
            let n = u64::from(c.n);
            if c.first != (off == 0)
                || n > len - off
                || c.last != (off + n == len)
                || (n == 0 && !c.last)
            {
                return Err(ByteRingError::Corrupt(
                    "chunks do not add up to the message",
                ));
            }
            let len_word = c.first && !c.last;
            let pos = head.wrapping_add(if len_word { 2 * HEADER } else { HEADER });
            buf.stretches(pos, c.n, |pos, done, k| {
                sink.take(buf, pos, off + u64::from(done), k)
            });
            off += n;
            head = head.wrapping_add(chunk_size(c.n, len_word));
            self.publish_head(head);
            // Not left to the release: the producer may sleep until this room is free.
            self.wake_peer(Side::Consumer);
            if c.last {
                break;
            }
            h = match self.next_chunk(buf, head, deadline, spin, who, true) {
                Ok(h) => h,
                Err(ByteRingError::Eof) => {
                    // The writer died mid-message: drop the part (nothing follows it)
                    // and report EOF; the reader never sees a partial message.
                    // Relaxed: see above.
                    self.rx_mid.store(0, Ordering::Relaxed);
                    return Err(ByteRingError::Eof);
                }
                Err(ByteRingError::Timeout) => {
                    // A timed receive of a message too long for the ring, whose time ran
                    // out part-way: the part read is dropped, and the rest is skipped by
                    // the next receive (the frame stream stays whole). Relaxed: as above.
                    self.rx_mid.store(SKIP, Ordering::Relaxed);
                    return Err(ByteRingError::TimeoutMidMessage(len));
                }
                Err(e) => return Err(e),
            };
        }
        // Relaxed: see above.
        self.rx_mid.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Consumer: [`peek`](Self::peek) then [`recv_peeked`](Self::recv_peeked) into a new
    /// `Vec`, refusing (and leaving in the ring) a message longer than `max`.
    ///
    /// # Errors
    /// As `peek` and `recv_peeked`, and [`ByteRingError::TooLong`].
    pub fn recv_vec(
        &self,
        buf: &Buf,
        max: u64,
        deadline: Option<Instant>,
        spin: SpinPolicy,
        who: &impl Liveness,
    ) -> Result<Vec<u8>, ByteRingError> {
        let len = match deadline {
            Some(_) => self.peek_whole(buf, deadline, spin, who)?,
            None => self.peek(buf, deadline, spin, who)?,
        };
        if len > max {
            return Err(ByteRingError::TooLong { len, max });
        }
        // Never trust a length from shared memory with an allocation: grow as bytes come.
        let mut v = Vec::with_capacity(len.min(1 << 20) as usize);
        self.recv_peeked(buf, len, &mut v, deadline, spin, who)?;
        Ok(v)
    }
}
