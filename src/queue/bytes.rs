//! `ByteQueue`: variable-length byte messages up to a per-queue maximum, zero-copy loans,
//! and serde values (feature `serde`) encoded straight into the slot.

use super::core::queue_object;
use super::core::{Core, Loan, SlotGeometry, Wait};
use super::error::{BytePutError, GetError, PutError};
use crate::arena::{fingerprint, Arena, ObjectKind};
use crate::error::{Error, Result};
use crate::object::Obj;
use crate::raw::mpmc::{Claim, MpmcError};
use crate::SpinPolicy;
use std::fmt;
use std::ops::Deref;
use std::time::Duration;

/// The largest per-queue maximum message size: 256 MiB.
pub const MAX_MESSAGE: usize = 1 << 28;

/// A bounded MPMC queue of byte messages, each up to a per-queue maximum size, shared
/// between processes.
///
/// Every slot has room for the maximum, so a message is copied once in and once out (or
/// not at all, with the loans). A message longer than the maximum is an error
/// ([`BytePutError::TooLarge`]), never truncated. With the `serde` feature,
/// `put_value` / `get_value` encode any serde type straight into the slot (postcard).
///
/// Close, `qsize`, FIFO and blocking behave as for [`Queue`](super::Queue).
///
/// # Example
/// ```
/// use shmproc::queue::{BytePutError, ByteQueue};
/// let q = ByteQueue::new(8, 64)?; // 8 messages of up to 64 bytes
/// q.put_bytes(b"hello").unwrap();
/// assert_eq!(q.get_bytes().unwrap(), b"hello");
/// assert_eq!(
///     q.put_bytes(&[0; 65]),
///     Err(BytePutError::TooLarge { len: 65, max: 64 })
/// );
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct ByteQueue {
    core: Core,
}

impl fmt::Debug for ByteQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = self.max_message();
        self.core
            .obj_as::<ByteQueue>()
            .debug(f, &[("max_message", &max)])
    }
}

queue_object!(
    impl<> for ByteQueue, ObjectKind::ByteQueue, "ByteQueue".into(),
    fingerprint::<ByteQueue>(),
    encode(g) { g.cap | ((g.payload as u64) << 32) },
    decode(param) {
        geometry(param & 0xffff_ffff, param >> 32)
            .map_err(|e| Error::Corrupt(format!("impossible geometry: {e}")))
    }
);

fn geometry(capacity: u64, max_message: u64) -> Result<SlotGeometry> {
    if max_message == 0 || max_message > MAX_MESSAGE as u64 {
        return Err(Error::InvalidArgument(format!(
            "max_message must be 1 ..= {MAX_MESSAGE} bytes, not {max_message}"
        )));
    }
    SlotGeometry::new(capacity, max_message as usize, 8, true)
}

impl ByteQueue {
    fn make(
        arena: &Arena,
        name: Option<&str>,
        capacity: usize,
        max_message: usize,
    ) -> Result<Self> {
        let geo = geometry(capacity as u64, max_message as u64)?;
        Ok(ByteQueue {
            core: Core::new(Obj::<ByteQueue>::create(arena, name, geo)?.recast()),
        })
    }

    /// A new queue of `capacity` messages of up to `max_message` bytes, in the [global
    /// arena](Arena::global).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `capacity` is 0 or above 2^31, or `max_message` is
    /// 0 or above [`MAX_MESSAGE`]; [`Error::OutOfSpace`] when the arena has no room.
    pub fn new(capacity: usize, max_message: usize) -> Result<Self> {
        Self::new_in(&Arena::global()?, capacity, max_message)
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
    pub fn new_in(arena: &Arena, capacity: usize, max_message: usize) -> Result<Self> {
        Self::make(arena, None, capacity, max_message)
    }

    /// A new queue named `name` in `arena`.
    ///
    /// # Errors
    /// As [`new`](Self::new), and [`Error::AlreadyExists`] or a bad name.
    pub fn create(arena: &Arena, name: &str, capacity: usize, max_message: usize) -> Result<Self> {
        Self::make(arena, Some(name), capacity, max_message)
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
    /// assert_eq!(b.max_message(), 100);
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

    /// The largest message this queue carries, in bytes.
    pub fn max_message(&self) -> usize {
        self.core.geo().payload
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.core.geo().cap as usize
    }

    // ---------------------------------------------------------------------------------
    // put

    fn put_with(&self, msg: &[u8], wait: Wait) -> std::result::Result<(), BytePutError> {
        let max = self.max_message();
        if msg.len() > max {
            return Err(BytePutError::TooLarge {
                len: msg.len(),
                max,
            });
        }
        let c = self
            .core
            .push_claim(wait)
            .map_err(|e| ring_put_error(e, wait))?;
        // SAFETY: we hold the claim; the payload has `max` >= msg.len() bytes and does not
        // overlap `msg` (a caller's slice cannot be a claimed slot: loans lend only
        // through `&mut` / `&` tied to their own claim).
        unsafe {
            core::ptr::copy_nonoverlapping(msg.as_ptr(), self.core.payload_ptr(&c), msg.len())
        };
        self.core.publish_len(c, msg.len() as u32);
        Ok(())
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

    /// Puts a copy of `msg` if there is room; never blocks.
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

    /// Claims the next message (recording the claim in `me`) and checks its length.
    fn pop_with(
        &self,
        me: &crate::sync::AtomicU64,
        wait: Wait,
    ) -> std::result::Result<(Claim, usize), GetError> {
        let c = self
            .core
            .pop_message_with(me, wait)
            .map_err(|e| ring_get_error(e, wait))?;
        let len = self.core.len_of(&c) as usize;
        if len > self.max_message() {
            // A length no producer could write: drop the slot, report it.
            self.core.release(c);
            return Err(GetError::Corrupt);
        }
        Ok((c, len))
    }

    /// Claims the next message with this thread's put / get word.
    fn pop(&self, wait: Wait) -> std::result::Result<(Claim, usize), GetError> {
        self.pop_with(self.core.intent(0), wait)
    }

    fn get_into_with(&self, buf: &mut Vec<u8>, wait: Wait) -> std::result::Result<usize, GetError> {
        let (c, len) = self.pop(wait)?;
        buf.clear();
        buf.reserve(len);
        // SAFETY: we hold the claim on a published slot (its Acquire stamp load pairs with
        // the producer's Release publish); `len <= max_message` bytes of payload are in
        // bounds; `buf` has capacity for `len` bytes and does not overlap the arena.
        unsafe {
            core::ptr::copy_nonoverlapping(self.core.payload_ptr(&c), buf.as_mut_ptr(), len);
            buf.set_len(len);
        }
        self.core.release(c);
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
    /// [`max_message`](Self::max_message) bytes in place, then
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
        Ok(ByteWriteLoan {
            q: self,
            claim: Some(c),
            _loan: loan,
        })
    }

    /// A read loan, its claim recorded in a word of its own.
    fn read_loan_with(&self, wait: Wait) -> std::result::Result<ByteReadLoan<'_>, GetError> {
        let loan = self.core.loan_word();
        let (claim, len) = self.pop_with(self.core.loan_intent(&loan), wait)?;
        Ok(ByteReadLoan {
            q: self,
            claim,
            len,
            _loan: loan,
        })
    }

    /// Lends the oldest message in place, waiting while the queue is empty; the slot is
    /// released when the loan is dropped.
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

    /// Encodes `value` with postcard straight into the next free slot, waiting while the
    /// queue is full. The encoding is measured first: a value that cannot be encoded, or
    /// whose encoding is longer than the queue's maximum, takes nothing from the queue.
    ///
    /// # Errors
    /// [`BytePutError::TooLarge`] (with the encoding's length; nothing was sent),
    /// [`BytePutError::Encode`] (nothing was sent), [`BytePutError::Disconnected`],
    /// [`BytePutError::Corrupt`].
    ///
    /// ```
    /// # use shmproc::queue::{BytePutError, ByteQueue};
    /// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    /// struct Job { id: u32, name: String }
    /// let q = ByteQueue::new(4, 256)?;
    /// q.put_value(&Job { id: 1, name: "wash".into() }).unwrap();
    /// assert_eq!(q.get_value::<Job>().unwrap(), Job { id: 1, name: "wash".into() });
    /// let long = "x".repeat(300);
    /// assert_eq!(q.put_value(&long), Err(BytePutError::TooLarge { len: 302, max: 256 }));
    /// assert_eq!(q.qsize(), 0); // a failed put takes no slot
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    #[cfg(feature = "serde")]
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
    #[cfg(feature = "serde")]
    pub fn put_value_timeout<V: serde::Serialize + ?Sized>(
        &self,
        value: &V,
        timeout: Duration,
    ) -> std::result::Result<(), BytePutError> {
        self.put_value_with(value, Wait::timeout(timeout))
    }

    #[cfg(feature = "serde")]
    fn put_value_with<V: serde::Serialize + ?Sized>(
        &self,
        value: &V,
        wait: Wait,
    ) -> std::result::Result<(), BytePutError> {
        let max = self.max_message();
        // Measured before a slot is claimed: a slot cannot be given back, only published
        // skipped, and a skipped slot counts in `qsize` and holds the queue's room until a
        // consumer passes it.
        let len = postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
            .map_err(|e| BytePutError::Encode(e.to_string()))?;
        if len > max {
            return Err(BytePutError::TooLarge { len, max });
        }
        let mut loan = self.write_loan_with(wait)?;
        match postcard::to_slice(value, &mut loan[..]) {
            Ok(used) => {
                let n = used.len();
                loan.commit(n)
            }
            // Only a value whose encoding changed between the two passes gets here;
            // dropping the loan publishes a skipped slot: nothing is sent.
            Err(postcard::Error::SerializeBufferFull) => {
                Err(BytePutError::TooLarge { len: 0, max })
            }
            Err(e) => Err(BytePutError::Encode(e.to_string())),
        }
    }

    /// Takes the oldest message and decodes it (postcard) in place, waiting while the queue
    /// is empty.
    ///
    /// # Errors
    /// [`GetError::Decode`] (the message was taken), [`GetError::Disconnected`],
    /// [`GetError::Corrupt`].
    #[cfg(feature = "serde")]
    pub fn get_value<V: serde::de::DeserializeOwned>(&self) -> std::result::Result<V, GetError> {
        let loan = self.read_loan()?;
        postcard::from_bytes(&loan).map_err(|e| GetError::Decode(e.to_string()))
    }

    /// Like [`get_value`](Self::get_value), waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`get_value`](Self::get_value), and [`GetError::Timeout`].
    #[cfg(feature = "serde")]
    pub fn get_value_timeout<V: serde::de::DeserializeOwned>(
        &self,
        timeout: Duration,
    ) -> std::result::Result<V, GetError> {
        let loan = self.read_loan_with(Wait::timeout(timeout))?;
        postcard::from_bytes(&loan).map_err(|e| GetError::Decode(e.to_string()))
    }

    // ---------------------------------------------------------------------------------
    // state

    /// Closes the queue for every process (see [`Queue::close`](super::Queue::close)).
    pub fn close(&self) -> bool {
        self.core.close()
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    /// Messages in the queue (approximate under concurrency, exact when quiet).
    pub fn qsize(&self) -> usize {
        self.core.len()
    }

    /// True when [`qsize`](Self::qsize) is 0.
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// True when [`qsize`](Self::qsize) is the capacity.
    pub fn full(&self) -> bool {
        self.qsize() == self.capacity()
    }

    /// Messages lost with consumers that died holding them (see
    /// [`Queue::lost`](super::Queue::lost)).
    pub fn lost(&self) -> u64 {
        self.core.ring().lost()
    }

    /// Claims of dead processes that survivors ended (see
    /// [`Queue::recovered`](super::Queue::recovered)).
    pub fn recovered(&self) -> u64 {
        self.core.ring().skipped() + self.core.ring().lost()
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

/// A slot lent by [`ByteQueue::write_loan`]: `max_message` bytes to write in place
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
    /// [`BytePutError::TooLarge`] when `len` is above `max_message`: nothing is
    /// published.
    pub fn commit(mut self, len: usize) -> std::result::Result<(), BytePutError> {
        let max = self.q.max_message();
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
        // SAFETY: we hold the claim: nobody else reads or writes the slot's `max_message`
        // payload bytes, which are in bounds.
        unsafe {
            core::slice::from_raw_parts(self.q.core.payload_ptr(self.claim()), self.q.max_message())
        }
    }
}

impl core::ops::DerefMut for ByteWriteLoan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe {
            core::slice::from_raw_parts_mut(
                self.q.core.payload_ptr(self.claim()),
                self.q.max_message(),
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
    claim: Claim,
    len: usize,
    /// As in [`ByteWriteLoan`].
    _loan: Loan,
}

impl Deref for ByteReadLoan<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: we hold the claim on a published slot; `len <= max_message` was checked
        // in `pop`; nobody writes the slot until we release it.
        unsafe { core::slice::from_raw_parts(self.q.core.payload_ptr(&self.claim), self.len) }
    }
}

impl Drop for ByteReadLoan<'_> {
    fn drop(&mut self) {
        self.q.core.release(self.claim);
    }
}

impl fmt::Debug for ByteReadLoan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteReadLoan")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}
