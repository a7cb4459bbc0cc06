//! `ByteQueue`: byte messages of any length (in the slot when they fit, in a heap block
//! of their own when not), zero-copy loans, and serde values (feature `serde`) encoded
//! straight into the slot or block.

use super::core::{queue_object, queue_state};
use super::core::{Core, Loan, SlotGeometry, Wait};
use super::error::{BytePutError, GetError, PutError};
use crate::arena::{fingerprint, Arena, ObjectKind};
use crate::error::{Error, Result};
use crate::object::Obj;
use crate::raw::mpmc::{Claim, MpmcError};
use crate::raw::owned::Blocks;
use crate::raw::slots::{INDIRECT, MAX_INLINE, MIN_INLINE};
use crate::SpinPolicy;
use std::fmt;
use std::ops::Deref;
use std::time::Duration;

/// The largest slot a byte queue may have: 256 MiB (messages may be longer: they go to
/// the heap).
pub const MAX_SLOT: usize = MAX_INLINE;

/// The smallest slot a byte queue may have: 8 bytes.
pub const MIN_SLOT: usize = MIN_INLINE;

/// A bounded MPMC queue of byte messages of any length, shared between processes.
///
/// Each of the `capacity` slots holds `slot_size` bytes: a message that fits is copied
/// once into the slot and once out (or not at all, with the loans); a longer one goes to
/// a block of the arena's heap that the slot names, and the consumer frees it (one
/// allocation and one free per such message; a [read loan](Self::read_loan) lends it in
/// place). So the slot size is a speed choice (the common message's size), never a
/// limit: only the arena's limit is. With the `serde` feature, `put_value` / `get_value`
/// encode any serde type straight into the slot or block (postcard); [`ObjQueue`](super::ObjQueue)
/// is the typed queue of serde values over it.
///
/// Close, `qsize`, FIFO and blocking behave as for [`Queue`](super::Queue). A process
/// killed while it holds a message's block loses at most that message: the block is
/// freed by the next party to use the slot (see `raw::slots`).
///
/// # Example
/// ```
/// use shmproc::queue::ByteQueue;
/// let q = ByteQueue::new(8, 64)?; // 8 slots of 64 bytes
/// q.put_bytes(b"hello").unwrap();
/// q.put_bytes(&[7; 100_000]).unwrap(); // longer than a slot: a block of its own
/// assert_eq!(q.get_bytes().unwrap(), b"hello");
/// assert_eq!(q.get_bytes().unwrap(), vec![7; 100_000]);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct ByteQueue {
    pub(super) core: Core,
}

impl fmt::Debug for ByteQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slot = self.slot_size();
        self.core
            .obj_ref::<ByteQueue>()
            .debug(f, &[("slot_size", &slot)])
    }
}

queue_object!(
    impl<> for ByteQueue, ObjectKind::ByteQueue, "ByteQueue".into(),
    fingerprint::<ByteQueue>(),
    encode(g) { g.bytes_param() },
    decode(param) { SlotGeometry::from_bytes_param(param) }
);

pub(crate) fn geometry(capacity: u64, slot_size: u64) -> Result<SlotGeometry> {
    if slot_size < MIN_SLOT as u64 || slot_size > MAX_SLOT as u64 {
        return Err(Error::InvalidArgument(format!(
            "slot_size must be {MIN_SLOT} ..= {MAX_SLOT} bytes, not {slot_size} (longer \
             messages go to the heap: the slot is for the common message)"
        )));
    }
    SlotGeometry::new(capacity, slot_size as usize, 8, true)
}

impl ByteQueue {
    queue_state!(core);

    fn make(arena: &Arena, name: Option<&str>, capacity: usize, slot_size: usize) -> Result<Self> {
        let geo = geometry(capacity as u64, slot_size as u64)?;
        Ok(ByteQueue {
            core: Core::new(Obj::<ByteQueue>::create(arena, name, geo)?.recast()),
        })
    }

    #[cfg(feature = "serde")]
    pub(crate) fn from_core(core: Core) -> Self {
        ByteQueue { core }
    }

    #[cfg(feature = "serde")]
    pub(crate) fn core(&self) -> &Core {
        &self.core
    }

    /// A new queue of `capacity` messages, in the [global arena](Arena::global); a
    /// message of up to `slot_size` bytes is kept in its slot, a longer one in a heap
    /// block of its own.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `capacity` is 0 or above 2^31, or `slot_size` is
    /// below [`MIN_SLOT`] or above [`MAX_SLOT`]; [`Error::OutOfSpace`] when the arena has
    /// no room.
    pub fn new(capacity: usize, slot_size: usize) -> Result<Self> {
        Self::new_in(&Arena::global()?, capacity, slot_size)
    }

    /// A new queue in `arena`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    ///
    /// ```
    /// use shmproc::{Arena, queue::ByteQueue};
    /// let arena = Arena::builder().size(1 << 20).limit(1 << 20).anonymous()?;
    /// assert!(ByteQueue::new_in(&arena, 4, 0).is_err());
    /// // 4 MiB: more than this arena may grow to.
    /// assert!(ByteQueue::new_in(&arena, 1024, 4096).is_err());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn new_in(arena: &Arena, capacity: usize, slot_size: usize) -> Result<Self> {
        Self::make(arena, None, capacity, slot_size)
    }

    /// A new queue named `name` in `arena`.
    ///
    /// # Errors
    /// As [`new`](Self::new), and [`Error::AlreadyExists`] or a bad name.
    pub fn create(arena: &Arena, name: &str, capacity: usize, slot_size: usize) -> Result<Self> {
        Self::make(arena, Some(name), capacity, slot_size)
    }

    /// The byte queue named `name` in `arena`.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::WrongType`], [`Error::Corrupt`].
    ///
    /// ```
    /// use shmproc::{Arena, queue::ByteQueue};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// let a = ByteQueue::create(&arena, "logs", 4, 100)?;
    /// let b = ByteQueue::open(&arena, "logs")?;
    /// a.put_bytes(b"line").unwrap();
    /// assert_eq!(b.get_bytes().unwrap(), b"line");
    /// assert_eq!(b.slot_size(), 100);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn open(arena: &Arena, name: &str) -> Result<Self> {
        Ok(ByteQueue {
            core: Core::new(Obj::<ByteQueue>::open(arena, name)?.recast()),
        })
    }

    /// Sets how long this handle spins before sleeping (see [`SpinPolicy`]).
    pub fn set_spin(&mut self, spin: SpinPolicy) {
        self.core.spin = spin;
    }

    #[cfg(test)]
    pub(crate) fn core_for_tests(&self) -> &Core {
        &self.core
    }

    /// The bytes a slot holds: a message up to this long is kept in its slot, a longer
    /// one in a heap block of its own.
    pub fn slot_size(&self) -> usize {
        self.core.geo().payload
    }

    // ---------------------------------------------------------------------------------
    // put

    fn put_with(&self, msg: &[u8], wait: Wait) -> std::result::Result<(), BytePutError> {
        if msg.len() > self.slot_size() {
            return self.put_indirect(msg.len(), wait, |dst| {
                dst.copy_from_slice(msg);
                Ok(())
            });
        }
        let c = self
            .core
            .push_claim(wait)
            .map_err(|e| ring_put_error(e, wait))?;
        self.core.clear_stale(&c, wait);
        // SAFETY: we hold the claim; the payload has `slot_size` >= msg.len() bytes and
        // does not overlap `msg` (a caller's slice cannot be a claimed slot: loans lend
        // only through `&mut` / `&` tied to their own claim).
        unsafe {
            core::ptr::copy_nonoverlapping(msg.as_ptr(), self.core.payload_ptr(&c), msg.len())
        };
        self.core.publish_len(c, msg.len() as u32);
        Ok(())
    }

    /// A message of `len` bytes, longer than a slot: claims a slot, allocates a block of
    /// `8 + len` bytes into the slot's block word (`raw::slots`), writes the length and
    /// lets `fill` write the message, then publishes the slot as [`INDIRECT`]. A block
    /// that cannot be had, or a `fill` that fails, publishes the slot skipped (a slot
    /// cannot be given back) and sends nothing.
    ///
    /// The heap's lock is waited for no longer than `wait` allows ([`Wait::bound`]): a put
    /// with a timeout whose deadline passes while a live process holds that lock (or a
    /// peer wrote a live pid into it) returns [`BytePutError::Timeout`].
    #[cold]
    fn put_indirect(
        &self,
        len: usize,
        wait: Wait,
        fill: impl FnOnce(&mut [u8]) -> std::result::Result<(), BytePutError>,
    ) -> std::result::Result<(), BytePutError> {
        let arena = self.core.arena();
        let size = (len as u64)
            .checked_add(8)
            .filter(|&n| n <= arena.limit() as u64)
            .ok_or_else(|| {
                BytePutError::NoSpace(format!(
                    "a message of {len} bytes is larger than the arena's limit of {} bytes",
                    arena.limit()
                ))
            })?;
        let c = self
            .core
            .push_claim(wait)
            .map_err(|e| ring_put_error(e, wait))?;
        // Under the heap's lock, not on a look at the word: a producer that died inside
        // its allocation for this slot may have its allocation finished by the heap's
        // repair, into this word, at the next heap operation; `free_from` runs that
        // repair first, then frees what the word names, so the allocation below never
        // overwrites a block.
        // The heap's operations of this put share one deadline: the put's, or (a
        // `try_put`) a short one of their own (`Wait::heap`).
        let heap = wait.heap();
        // A failure with the deadline passed is the wait for a lock cut short (a free
        // lock is taken whatever the deadline, and a heap operation takes microseconds):
        // the put timed out, or a `try_put` found the heap busy (`Full`: try again).
        let late = || match wait {
            Wait::Never => BytePutError::Full,
            _ => BytePutError::Timeout,
        };
        if self.core.free_stale(&c, heap).is_err() && heap.expired() {
            // The word may still name a block: an allocation into it would lose that.
            self.core.publish_skip(c);
            return Err(late());
        }
        let word = self.core.block_word(&c);
        let block = match heap.bound(|| arena.alloc_into(word, size, 8, false)) {
            Ok(off) => block_bytes(arena, off, size),
            Err(_) if heap.expired() => {
                self.core.publish_skip(c);
                return Err(late());
            }
            Err(e) => {
                self.core.publish_skip(c);
                return Err(BytePutError::NoSpace(e.to_string()));
            }
        };
        let filled = match block {
            Some(block) => {
                // SAFETY: the block was just allocated for this slot, whose claim we hold:
                // nobody else reads or writes it until the publish below.
                let block = unsafe { &mut *block };
                block[..8].copy_from_slice(&(len as u64).to_ne_bytes());
                fill(&mut block[8..])
            }
            None => Err(BytePutError::Corrupt),
        };
        match filled {
            Ok(()) => {
                self.core.publish_len(c, INDIRECT);
                Ok(())
            }
            Err(e) => {
                // (If this free fails, the consumer that passes the skipped slot frees it.)
                let _ = self.core.free_stale(&c, heap);
                self.core.publish_skip(c);
                Err(e)
            }
        }
    }

    /// Puts a copy of `msg`, waiting while the queue is full.
    ///
    /// # Errors
    /// [`BytePutError::TooLarge`], [`BytePutError::Disconnected`],
    /// [`BytePutError::Corrupt`].
    pub fn put_bytes(&self, msg: &[u8]) -> std::result::Result<(), BytePutError> {
        self.put_with(msg, Wait::Until(None))
    }

    /// Puts a copy of `msg`, waiting at most `timeout` while the queue is full.
    ///
    /// # Errors
    /// [`BytePutError::TooLarge`], [`BytePutError::Timeout`],
    /// [`BytePutError::Disconnected`], [`BytePutError::Corrupt`].
    pub fn put_bytes_timeout(
        &self,
        msg: &[u8],
        timeout: Duration,
    ) -> std::result::Result<(), BytePutError> {
        self.put_with(msg, Wait::timeout(timeout))
    }

    /// Puts a copy of `msg` if there is room; never blocks. (A message longer than a slot
    /// needs a heap block: if another process holds the heap's lock for more than a few
    /// milliseconds, this fails with `Full` too, rather than wait for it.)
    ///
    /// # Errors
    /// [`BytePutError::TooLarge`], [`BytePutError::Full`],
    /// [`BytePutError::Disconnected`], [`BytePutError::Corrupt`].
    ///
    /// ```
    /// # use shmproc::queue::{BytePutError, ByteQueue};
    /// let q = ByteQueue::new(1, 8)?;
    /// q.try_put_bytes(b"a").unwrap();
    /// assert_eq!(q.try_put_bytes(b"b"), Err(BytePutError::Full));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn try_put_bytes(&self, msg: &[u8]) -> std::result::Result<(), BytePutError> {
        self.put_with(msg, Wait::Never)
    }

    // ---------------------------------------------------------------------------------
    // get

    /// Claims the next message (recording the claim in `me`) and finds its bytes: in the
    /// slot, or in the block the slot names, each checked against what holds it.
    fn pop_with(
        &self,
        me: &crate::sync::AtomicU64,
        wait: Wait,
    ) -> std::result::Result<(Claim, Msg), GetError> {
        let c = self
            .core
            .pop_message_with(me, wait)
            .map_err(|e| ring_get_error(e, wait))?;
        let len = self.core.len_of(&c);
        let msg = if len == INDIRECT {
            self.indirect(&c)
        } else if len as usize <= self.slot_size() {
            Some(Msg {
                ptr: self.core.payload_ptr(&c),
                len: len as usize,
                indirect: false,
            })
        } else {
            None
        };
        match msg {
            Some(m) => Ok((c, m)),
            None => {
                // A length or block no producer could write: drop the slot, report it.
                let _ = self.core.free_stale(&c, wait);
                self.core.release(c);
                Err(GetError::Corrupt)
            }
        }
    }

    /// The message in the block a claimed slot names (`[length: u64][bytes]`), checked
    /// to lie in that block; `None` when the word or the length is not one a producer
    /// wrote.
    fn indirect(&self, c: &Claim) -> Option<Msg> {
        let arena = self.core.arena();
        // Relaxed: we hold the claim; its Acquire stamp load pairs with the producer's
        // Release publish, after its allocation stored the word.
        let off = self.core.block_word(c).load(crate::sync::Ordering::Relaxed);
        let usable = arena.block_len(off).ok()?;
        // Relaxed: the same claim orders the producer's write of the length.
        let len = arena.words(off, 1).ok()?[0].load(crate::sync::Ordering::Relaxed);
        let size = len.checked_add(8).filter(|&n| n <= usable)?;
        let block = block_bytes(arena, off, size)?;
        Some(Msg {
            // SAFETY: 8 <= size: inside the block.
            ptr: unsafe { block.cast::<u8>().add(8) },
            len: usize::try_from(len).ok()?,
            indirect: true,
        })
    }

    /// Ends a claim on a message read: frees its block if it had one (waiting for the
    /// heap's lock no longer than `wait`, the get's, allows: a block left when that fails
    /// is freed later, see `Core::free_stale`), releases the slot.
    fn done(&self, c: Claim, m: &Msg, wait: Wait) {
        if m.indirect {
            let _ = self.core.free_stale(&c, wait);
        }
        self.core.release(c);
    }

    /// Claims the next message with this thread's put / get word.
    fn pop(&self, wait: Wait) -> std::result::Result<(Claim, Msg), GetError> {
        self.pop_with(self.core.intent(0), wait)
    }

    fn get_into_with(&self, buf: &mut Vec<u8>, wait: Wait) -> std::result::Result<usize, GetError> {
        let (c, m) = self.pop(wait)?;
        buf.clear();
        buf.reserve(m.len);
        // SAFETY: we hold the claim on a published slot (its Acquire stamp load pairs with
        // the producer's Release publish); the `m.len` bytes at `m.ptr` lie in its slot or
        // its block (`pop_with` checked them); `buf` has capacity for `m.len` bytes and
        // does not overlap the arena.
        unsafe {
            core::ptr::copy_nonoverlapping(m.ptr, buf.as_mut_ptr(), m.len);
            buf.set_len(m.len);
        }
        let len = m.len;
        self.done(c, &m, wait);
        Ok(len)
    }

    /// Takes the oldest message, waiting while the queue is empty.
    ///
    /// # Errors
    /// [`GetError::Disconnected`] when closed and drained, [`GetError::Corrupt`].
    pub fn get_bytes(&self) -> std::result::Result<Vec<u8>, GetError> {
        let mut v = Vec::new();
        self.get_into_with(&mut v, Wait::Until(None))?;
        Ok(v)
    }

    /// Takes the oldest message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`GetError::Timeout`], [`GetError::Disconnected`], [`GetError::Corrupt`].
    pub fn get_bytes_timeout(&self, timeout: Duration) -> std::result::Result<Vec<u8>, GetError> {
        let mut v = Vec::new();
        self.get_into_with(&mut v, Wait::timeout(timeout))?;
        Ok(v)
    }

    /// Takes the oldest message if there is one; never blocks.
    ///
    /// # Errors
    /// [`GetError::Empty`], [`GetError::Disconnected`], [`GetError::Corrupt`].
    pub fn try_get_bytes(&self) -> std::result::Result<Vec<u8>, GetError> {
        let mut v = Vec::new();
        self.get_into_with(&mut v, Wait::Never)?;
        Ok(v)
    }

    /// Takes the oldest message into `buf` (replacing its contents, reusing its
    /// allocation), waiting while the queue is empty. Returns the message's length.
    ///
    /// # Errors
    /// As [`get_bytes`](Self::get_bytes).
    ///
    /// ```
    /// # use shmproc::queue::ByteQueue;
    /// let q = ByteQueue::new(4, 16)?;
    /// let mut buf = Vec::with_capacity(16);
    /// q.put_bytes(b"abc").unwrap();
    /// assert_eq!(q.get_bytes_into(&mut buf), Ok(3));
    /// assert_eq!(buf, b"abc");
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn get_bytes_into(&self, buf: &mut Vec<u8>) -> std::result::Result<usize, GetError> {
        self.get_into_with(buf, Wait::Until(None))
    }

    /// Like [`get_bytes_into`](Self::get_bytes_into), waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`get_bytes_timeout`](Self::get_bytes_timeout).
    pub fn get_bytes_into_timeout(
        &self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> std::result::Result<usize, GetError> {
        self.get_into_with(buf, Wait::timeout(timeout))
    }

    /// Like [`get_bytes_into`](Self::get_bytes_into), but never blocks.
    ///
    /// # Errors
    /// As [`try_get_bytes`](Self::try_get_bytes).
    pub fn try_get_bytes_into(&self, buf: &mut Vec<u8>) -> std::result::Result<usize, GetError> {
        self.get_into_with(buf, Wait::Never)
    }

    // ---------------------------------------------------------------------------------
    // loans

    /// Lends the next free slot, waiting while the queue is full: write up to
    /// [`slot_size`](Self::slot_size) bytes in place, then
    /// [`commit(len)`](ByteWriteLoan::commit). Dropped without `commit`, the loan
    /// publishes nothing (consumers skip the slot).
    ///
    /// While the loan is held, consumers cannot get past the slot: keep it short. A loan
    /// that is leaked blocks the queue; one held by a process that dies is published
    /// skipped by the survivors (see [`Queue::put_loan`](super::Queue::put_loan)).
    ///
    /// # Errors
    /// [`BytePutError::Disconnected`], [`BytePutError::Corrupt`].
    ///
    /// ```
    /// # use shmproc::queue::ByteQueue;
    /// use std::io::Write;
    /// let q = ByteQueue::new(4, 64)?;
    /// let mut loan = q.write_loan().unwrap();
    /// let n = {
    ///     let mut w = &mut loan[..];
    ///     write!(w, "pid {}", 42).unwrap();
    ///     64 - w.len()
    /// };
    /// loan.commit(n).unwrap();
    /// let msg = q.read_loan().unwrap();
    /// assert_eq!(&*msg, b"pid 42");
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn write_loan(&self) -> std::result::Result<ByteWriteLoan<'_>, BytePutError> {
        self.write_loan_with(Wait::Until(None))
    }

    /// Like [`write_loan`](Self::write_loan), but never blocks.
    ///
    /// # Errors
    /// [`BytePutError::Full`], [`BytePutError::Disconnected`], [`BytePutError::Corrupt`].
    pub fn try_write_loan(&self) -> std::result::Result<ByteWriteLoan<'_>, BytePutError> {
        self.write_loan_with(Wait::Never)
    }

    fn write_loan_with(&self, wait: Wait) -> std::result::Result<ByteWriteLoan<'_>, BytePutError> {
        // The loan's claim records itself in a word of its own (see `Queue::put_loan`).
        let loan = self.core.loan_word();
        let c = self
            .core
            .push_claim_with(self.core.loan_intent(&loan), wait)
            .map_err(|e| ring_put_error(e, wait))?;
        self.core.clear_stale(&c, wait);
        Ok(ByteWriteLoan {
            q: self,
            claim: Some(c),
            _loan: loan,
        })
    }

    /// A read loan, its claim recorded in a word of its own.
    fn read_loan_with(&self, wait: Wait) -> std::result::Result<ByteReadLoan<'_>, GetError> {
        let loan = self.core.loan_word();
        let (claim, msg) = self.pop_with(self.core.loan_intent(&loan), wait)?;
        Ok(ByteReadLoan {
            q: self,
            claim: Some(claim),
            msg,
            wait,
            _loan: loan,
        })
    }

    /// Lends the oldest message in place (in its slot, or in its block when it was longer
    /// than a slot), waiting while the queue is empty; the slot is released (and the
    /// block freed) when the loan is dropped.
    ///
    /// # Errors
    /// [`GetError::Disconnected`], [`GetError::Corrupt`].
    pub fn read_loan(&self) -> std::result::Result<ByteReadLoan<'_>, GetError> {
        self.read_loan_with(Wait::Until(None))
    }

    /// Like [`read_loan`](Self::read_loan), but never blocks.
    ///
    /// # Errors
    /// [`GetError::Empty`], [`GetError::Disconnected`], [`GetError::Corrupt`].
    pub fn try_read_loan(&self) -> std::result::Result<ByteReadLoan<'_>, GetError> {
        self.read_loan_with(Wait::Never)
    }

    // ---------------------------------------------------------------------------------
    // serde

    /// Encodes `value` with postcard straight into the next free slot (or, when the
    /// encoding is longer than a slot, into a heap block of its own), waiting while the
    /// queue is full. The encoding is measured first: a value that cannot be encoded
    /// takes nothing from the queue.
    ///
    /// # Errors
    /// [`BytePutError::Encode`] (nothing was sent), [`BytePutError::NoSpace`] (no block
    /// for a long encoding), [`BytePutError::Disconnected`], [`BytePutError::Corrupt`].
    ///
    /// ```
    /// # use shmproc::queue::{BytePutError, ByteQueue};
    /// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    /// struct Job { id: u32, name: String }
    /// let q = ByteQueue::new(4, 256)?;
    /// q.put_value(&Job { id: 1, name: "wash".into() }).unwrap();
    /// assert_eq!(q.get_value::<Job>().unwrap(), Job { id: 1, name: "wash".into() });
    /// let long = "x".repeat(300); // longer than a slot: a block of its own
    /// q.put_value(&long).unwrap();
    /// assert_eq!(q.get_value::<String>().unwrap(), long);
    /// struct Bad;
    /// impl serde::Serialize for Bad {
    ///     fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
    ///         Err(serde::ser::Error::custom("no"))
    ///     }
    /// }
    /// assert!(matches!(q.put_value(&Bad), Err(BytePutError::Encode(_))));
    /// assert_eq!(q.qsize(), 0); // a failed put takes no slot
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    ///
    /// Needs the `serde` feature (on by default).
    #[cfg(feature = "serde")]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub fn put_value<V: serde::Serialize + ?Sized>(
        &self,
        value: &V,
    ) -> std::result::Result<(), BytePutError> {
        self.put_value_with(value, Wait::Until(None))
    }

    /// Like [`put_value`](Self::put_value), waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`put_value`](Self::put_value), and [`BytePutError::Timeout`].
    ///
    /// Needs the `serde` feature (on by default).
    #[cfg(feature = "serde")]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub fn put_value_timeout<V: serde::Serialize + ?Sized>(
        &self,
        value: &V,
        timeout: Duration,
    ) -> std::result::Result<(), BytePutError> {
        self.put_value_with(value, Wait::timeout(timeout))
    }

    /// Like [`put_value`](Self::put_value), if there is room; never blocks.
    ///
    /// # Errors
    /// As [`put_value`](Self::put_value), and [`BytePutError::Full`].
    ///
    /// Needs the `serde` feature (on by default).
    #[cfg(feature = "serde")]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub fn try_put_value<V: serde::Serialize + ?Sized>(
        &self,
        value: &V,
    ) -> std::result::Result<(), BytePutError> {
        self.put_value_with(value, Wait::Never)
    }

    #[cfg(feature = "serde")]
    fn put_value_with<V: serde::Serialize + ?Sized>(
        &self,
        value: &V,
        wait: Wait,
    ) -> std::result::Result<(), BytePutError> {
        let max = self.slot_size();
        // Measured before a slot is claimed: a slot cannot be given back, only published
        // skipped, and a skipped slot counts in `qsize` and holds the queue's room until a
        // consumer passes it.
        let len = postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
            .map_err(|e| BytePutError::Encode(e.to_string()))?;
        if len > max {
            return self.put_indirect(len, wait, |dst| match postcard::to_slice(value, dst) {
                Ok(used) if used.len() == len => Ok(()),
                // Only a value whose encoding changed between the two passes gets here.
                Ok(_) | Err(postcard::Error::SerializeBufferFull) => Err(BytePutError::Encode(
                    "the value's encoding changed between measuring and writing it".into(),
                )),
                Err(e) => Err(BytePutError::Encode(e.to_string())),
            });
        }
        let mut loan = self.write_loan_with(wait)?;
        match postcard::to_slice(value, &mut loan[..]) {
            Ok(used) => {
                let n = used.len();
                loan.commit(n)
            }
            // Only a value whose encoding changed between the two passes gets here;
            // dropping the loan publishes a skipped slot: nothing is sent.
            Err(postcard::Error::SerializeBufferFull) => Err(BytePutError::Encode(
                "the value's encoding changed between measuring and writing it".into(),
            )),
            Err(e) => Err(BytePutError::Encode(e.to_string())),
        }
    }

    /// Takes the oldest message and decodes it (postcard) in place, waiting while the queue
    /// is empty.
    ///
    /// # Errors
    /// [`GetError::Decode`] (the message was taken), [`GetError::Disconnected`],
    /// [`GetError::Corrupt`].
    ///
    /// Needs the `serde` feature (on by default).
    #[cfg(feature = "serde")]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub fn get_value<V: serde::de::DeserializeOwned>(&self) -> std::result::Result<V, GetError> {
        let loan = self.read_loan()?;
        postcard::from_bytes(&loan).map_err(|e| GetError::Decode(e.to_string()))
    }

    /// Like [`get_value`](Self::get_value), waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`get_value`](Self::get_value), and [`GetError::Timeout`].
    ///
    /// Needs the `serde` feature (on by default).
    #[cfg(feature = "serde")]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub fn get_value_timeout<V: serde::de::DeserializeOwned>(
        &self,
        timeout: Duration,
    ) -> std::result::Result<V, GetError> {
        let loan = self.read_loan_with(Wait::timeout(timeout))?;
        postcard::from_bytes(&loan).map_err(|e| GetError::Decode(e.to_string()))
    }

    /// Like [`get_value`](Self::get_value), if there is a message; never blocks.
    ///
    /// # Errors
    /// As [`get_value`](Self::get_value), and [`GetError::Empty`].
    ///
    /// Needs the `serde` feature (on by default).
    #[cfg(feature = "serde")]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub fn try_get_value<V: serde::de::DeserializeOwned>(
        &self,
    ) -> std::result::Result<V, GetError> {
        let loan = self.read_loan_with(Wait::Never)?;
        postcard::from_bytes(&loan).map_err(|e| GetError::Decode(e.to_string()))
    }

    // ---------------------------------------------------------------------------------
    // state

    /// Closes the queue for every process (see [`Queue::close`](super::Queue::close)).
    pub fn close(&self) -> bool {
        self.core.close()
    }
}

fn ring_put_error(e: MpmcError, wait: Wait) -> BytePutError {
    BytePutError::from_put(match wait {
        Wait::Never => PutError::from_ring(e, ()),
        Wait::Until(_) => PutError::timeout_from_ring(e, ()),
    })
}

fn ring_get_error(e: MpmcError, wait: Wait) -> GetError {
    match wait {
        Wait::Never => GetError::from_ring(e),
        Wait::Until(_) => GetError::timeout_from_ring(e),
    }
}

/// A slot lent by [`ByteQueue::write_loan`]: `slot_size` bytes to write in place
/// (through `DerefMut<Target = [u8]>`), then [`commit`](Self::commit).
#[must_use = "a write loan publishes nothing unless committed"]
pub struct ByteWriteLoan<'a> {
    q: &'a ByteQueue,
    claim: Option<Claim>,
    /// The intent word the claim is recorded in, given back after the claim ends.
    _loan: Loan,
}

impl ByteWriteLoan<'_> {
    /// Publishes the first `len` bytes of the slot as the message.
    ///
    /// # Errors
    /// [`BytePutError::TooLarge`] when `len` is above `slot_size`: nothing is
    /// published.
    pub fn commit(mut self, len: usize) -> std::result::Result<(), BytePutError> {
        let max = self.q.slot_size();
        if len > max {
            return Err(BytePutError::TooLarge { len, max });
        }
        if let Some(c) = self.claim.take() {
            self.q.core.publish_len(c, len as u32);
        }
        Ok(())
    }

    fn claim(&self) -> &Claim {
        self.claim
            .as_ref()
            .expect("a loan holds its claim until commit or drop")
    }
}

impl Deref for ByteWriteLoan<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: we hold the claim: nobody else reads or writes the slot's `slot_size`
        // payload bytes, which are in bounds.
        unsafe {
            core::slice::from_raw_parts(self.q.core.payload_ptr(self.claim()), self.q.slot_size())
        }
    }
}

impl core::ops::DerefMut for ByteWriteLoan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe {
            core::slice::from_raw_parts_mut(
                self.q.core.payload_ptr(self.claim()),
                self.q.slot_size(),
            )
        }
    }
}

impl Drop for ByteWriteLoan<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.claim.take() {
            self.q.core.publish_skip(c);
        }
    }
}

impl fmt::Debug for ByteWriteLoan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteWriteLoan").finish_non_exhaustive()
    }
}

/// A message lent in place by [`ByteQueue::read_loan`] (`Deref<Target = [u8]>`); its
/// slot is released on drop.
pub struct ByteReadLoan<'a> {
    q: &'a ByteQueue,
    /// Taken by `drop`.
    claim: Option<Claim>,
    msg: Msg,
    /// The wait of the get that made the loan: its deadline bounds the free of the
    /// message's block on drop (`get_value_timeout`).
    wait: Wait,
    /// As in [`ByteWriteLoan`].
    _loan: Loan,
}

impl Deref for ByteReadLoan<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: we hold the claim on a published slot; the message's bytes lie in its
        // slot or its block (checked in `pop_with`); nobody writes either until we release
        // the slot.
        unsafe { core::slice::from_raw_parts(self.msg.ptr, self.msg.len) }
    }
}

impl Drop for ByteReadLoan<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.claim.take() {
            self.q.done(c, &self.msg, self.wait);
        }
    }
}

impl fmt::Debug for ByteReadLoan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteReadLoan")
            .field("len", &self.msg.len)
            .field("in_block", &self.msg.indirect)
            .finish_non_exhaustive()
    }
}

/// Where a claimed message's bytes are: `len` bytes at `ptr`, in the slot or (`indirect`)
/// in the block the slot names.
struct Msg {
    ptr: *const u8,
    len: usize,
    indirect: bool,
}

/// The `size` bytes of the block at `off`, as a raw slice; `None` when they do not lie in
/// the arena. The caller holds the claim of the slot that names the block.
fn block_bytes(arena: &Arena, off: u64, size: u64) -> Option<*mut [u8]> {
    let words = arena.words(off, size.div_ceil(8)).ok()?;
    Some(core::ptr::slice_from_raw_parts_mut(
        words.as_ptr().cast::<u8>().cast_mut(),
        usize::try_from(size).ok()?,
    ))
}

impl crate::object::Shared for ByteQueue {
    type Of = ByteQueue;
    fn shared(&self) -> &Obj<ByteQueue> {
        self.core.obj_ref()
    }
    fn rebuild(obj: Obj<ByteQueue>) -> Result<Self> {
        Ok(ByteQueue {
            core: Core::new(obj.recast()),
        })
    }
}
