//! `Queue<T>`, its loans, `SimpleQueue<T>` and `JoinableQueue<T>`.

use super::core::{queue_object, queue_state};
use super::core::{typed_layout, Core, Fixed, Loan, SlotGeometry, Wait};
use super::error::{GetError, JoinError, PutError, TaskDoneError};
use crate::arena::{fingerprint_sized, Arena, ObjectKind};
use crate::error::Result;
use crate::object::{Obj, Object};
use crate::raw::mpmc::MpmcRing;
use crate::raw::mpmc::{Claim, JoinStop, MpmcError};
use crate::sync::liveness::Procfs;
use crate::sync::time;
use crate::sync::AtomicU64;
use crate::SpinPolicy;
use bytemuck::Pod;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

/// A bounded multi-producer, multi-consumer queue of plain-data values, shared between
/// processes: Python's `multiprocessing.Queue(maxsize)`.
///
/// `T: Pod` (from [`bytemuck`]): any bytes are a valid `T` and it holds no pointer, so a
/// value is copied into a slot of the ring and out again, with no serialization. For other
/// types, see [`ByteQueue::put_value`](super::ByteQueue) (feature `serde`).
///
/// The handle is `Clone + Send + Sync` and keeps working in every process `fork`ed after
/// it was made; [`Queue::create`] / [`Queue::open`] find a queue by name in a named arena.
///
/// Unlike Python's, [`close`](Queue::close) is queue-wide: after it, puts fail with
/// [`PutError::Disconnected`] (the value comes back) and gets drain what is left, then
/// fail with [`GetError::Disconnected`]. That replaces the "one `None` per consumer"
/// sentinel idiom.
///
/// FIFO: the values of one producer are taken in the order it put them.
///
/// # Example
/// ```
/// use shmproc::queue::{GetError, Queue};
/// let q = Queue::<u64>::new(4)?;
/// q.put(1).unwrap();
/// q.put(2).unwrap();
/// assert_eq!(q.qsize(), 2);
/// assert_eq!(q.get(), Ok(1));
/// q.close();
/// assert_eq!(q.get(), Ok(2)); // drained after close
/// assert_eq!(q.get(), Err(GetError::Disconnected));
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct Queue<T: Pod> {
    core: Core,
    _t: PhantomData<fn(T) -> T>,
}

impl<T: Pod> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            core: self.core.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Pod> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.obj_ref::<Queue<T>>().debug(f, &[])
    }
}

/// The parameter word of a typed queue: its capacity (the slot layout follows from `T`).
fn typed_geometry<T>(param: u64) -> Result<SlotGeometry> {
    SlotGeometry::new(
        param,
        core::mem::size_of::<T>(),
        core::mem::align_of::<T>(),
        false,
    )
    .map_err(|e| crate::Error::Corrupt(format!("impossible geometry: {e}")))
}

queue_object!(
    impl<T: Pod> for Queue<T>, ObjectKind::Queue,
    format!("Queue<{}>", core::any::type_name::<T>()).into(),
    fingerprint_sized::<T>(),
    encode(g) { g.cap },
    decode(param) { typed_geometry::<T>(param) }
);

queue_object!(
    impl<T: Pod> for JoinableQueue<T>, ObjectKind::JoinableQueue,
    format!("JoinableQueue<{}>", core::any::type_name::<T>()).into(),
    fingerprint_sized::<T>(),
    encode(g) { g.cap },
    decode(param) { typed_geometry::<T>(param) }
);

impl<T: Pod> Queue<T> {
    queue_state!(core);

    /// `(payload_off, stride)` of every `Queue<T>`: [`Self::geometry`] computes the same
    /// (checked in [`Self::from_core`]), and the fast paths use it as a constant.
    const LAYOUT: (usize, usize) = typed_layout::<T>();

    /// The slots, with the layout as a constant.
    #[inline(always)]
    fn slots(&self) -> Fixed<'_> {
        // SAFETY: every `Queue<T>` was made by `from_core`, which checked the layout.
        unsafe { self.core.fixed(Self::LAYOUT) }
    }

    /// [`slots`](Self::slots) with this thread's intent word already found.
    #[inline(always)]
    fn slots_with<'a>(&'a self, me: &'a AtomicU64) -> Fixed<'a> {
        // SAFETY: as in `slots`.
        unsafe { self.core.fixed_with(Self::LAYOUT, me) }
    }

    /// A handle on `core`, whose geometry was made by [`Self::geometry`].
    fn from_core(core: Core) -> Result<Self> {
        if !core.fixed_layout_matches(Self::LAYOUT) {
            // Unreachable: both come from `slot_layout` with the same arguments.
            return Err(crate::Error::Corrupt(format!(
                "queue slot layout {:?} is not {:?}",
                (core.geo().payload_off, core.geo().stride),
                Self::LAYOUT
            )));
        }
        Ok(Queue {
            core,
            _t: PhantomData,
        })
    }

    fn geometry(capacity: usize) -> Result<SlotGeometry> {
        SlotGeometry::new(
            capacity as u64,
            core::mem::size_of::<T>(),
            core::mem::align_of::<T>(),
            false,
        )
    }

    /// A new queue of kind `K` (a `Queue<T>` or a `JoinableQueue<T>`).
    fn make<K: Object<State = MpmcRing, Params = SlotGeometry>>(
        arena: &Arena,
        name: Option<&str>,
        capacity: usize,
    ) -> Result<Self> {
        let geo = Self::geometry(capacity)?;
        Self::from_core(Core::new(Obj::<K>::create(arena, name, geo)?.recast()))
    }

    /// The queue of kind `K` named `name`.
    fn open_as<K: Object<State = MpmcRing, Params = SlotGeometry>>(
        arena: &Arena,
        name: &str,
    ) -> Result<Self> {
        Self::from_core(Core::new(Obj::<K>::open(arena, name)?.recast()))
    }

    /// A new, empty queue of `capacity` slots in the [global arena](Arena::global).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) when `capacity` is 0 or
    /// above 2^31; [`Error::OutOfSpace`](crate::Error::OutOfSpace) when the arena has no
    /// room for it.
    ///
    /// ```
    /// use shmproc::queue::Queue;
    /// assert!(Queue::<u32>::new(0).is_err());
    /// assert!(Queue::<u32>::new(1 << 40).is_err());
    /// let q = Queue::<u32>::new(8)?;
    /// assert_eq!(q.capacity(), 8);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn new(capacity: usize) -> Result<Self> {
        Self::new_in(&Arena::global()?, capacity)
    }

    /// A new, empty queue of `capacity` slots in `arena`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    ///
    /// ```
    /// use shmproc::{Arena, queue::Queue};
    /// let arena = Arena::builder().size(1 << 20).limit(1 << 20).anonymous()?;
    /// // 4 MiB: more than this arena may grow to.
    /// assert!(Queue::<[u8; 1024]>::new_in(&arena, 4096).is_err());
    /// let q = Queue::<u64>::new_in(&arena, 64)?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn new_in(arena: &Arena, capacity: usize) -> Result<Self> {
        Self::make::<Self>(arena, None, capacity)
    }

    /// A new queue named `name` in `arena`, for [`Queue::open`] to find.
    ///
    /// # Errors
    /// As [`new`](Self::new), and [`Error::AlreadyExists`](crate::Error::AlreadyExists)
    /// or a bad name.
    pub fn create(arena: &Arena, name: &str, capacity: usize) -> Result<Self> {
        Self::make::<Self>(arena, Some(name), capacity)
    }

    /// The queue named `name` in `arena`.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound);
    /// [`Error::WrongType`](crate::Error::WrongType) when it is not a `Queue<T>` of this
    /// `T`; [`Error::Corrupt`](crate::Error::Corrupt) when its recorded geometry does not
    /// fit its block.
    ///
    /// ```
    /// use shmproc::{Arena, queue::Queue};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// let a = Queue::<u64>::create(&arena, "jobs", 16)?;
    /// let b = Queue::<u64>::open(&arena, "jobs")?;
    /// a.put(7).unwrap();
    /// assert_eq!(b.get(), Ok(7));
    /// assert!(Queue::<u32>::open(&arena, "jobs").is_err()); // another element type
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn open(arena: &Arena, name: &str) -> Result<Self> {
        Self::open_as::<Self>(arena, name)
    }

    /// Sets how long this handle spins before sleeping when it must wait (see
    /// [`SpinPolicy`]).
    pub fn set_spin(&mut self, spin: SpinPolicy) {
        self.core.spin = spin;
    }

    #[cfg(test)]
    pub(crate) fn core_for_tests(&self) -> &Core {
        &self.core
    }

    // ---------------------------------------------------------------------------------
    // put

    // `put_with` and `get_with` try the common case inline (`MpmcRing::push_fast`,
    // `MpmcRing::pop_fast`, on the slots with the layout as a constant) and leave the rest
    // (waiting, retries, skipped loans, errors) to a function out of line. Measured with
    // callgrind, a `u64` put plus a get that take their slots at once ran 147
    // instructions through the full path (which saved and restored six registers per
    // call, and multiplied by the stride loaded from the geometry), then 86, and 58 since
    // the claims take the view's registers through their CAS and leave the lap's last
    // slot to the full path (see `Fixed` and `MpmcRing::claim_fast`). Crossbeam's
    // `ArrayQueue` push plus pop, in the same loop: 83 (its `pop` is not inlined there;
    // inlined into the throughput bench's loops, ~57 against our ~60 per message).
    #[inline(always)]
    fn put_with(&self, value: T, wait: Wait) -> std::result::Result<(), (MpmcError, T)> {
        let s = self.slots();
        match s.ring().push_fast(&s, s.me()) {
            Some(c) => {
                Self::write_and_publish(&s, c, value);
                Ok(())
            }
            None => self.put_slow(value, wait, s.me()),
        }
    }

    // The slow paths claim through `Core`'s own slots, not the `Fixed` view: handing the
    // view by reference to a function out of line made every put and get build it in
    // memory first (tried: 86 -> 110 instructions per put plus get). The ring's claim then
    // makes its one fast attempt again before the full loop: two loads of lines the
    // failed attempt has just read, on a path that goes on to retry, spin or sleep. They
    // take the intent word the fast path found (one pointer, in a register): looking it
    // up again cost MPMC 2x2 most of what recording claims added to it.
    #[inline(never)]
    fn put_slow(
        &self,
        value: T,
        wait: Wait,
        me: &AtomicU64,
    ) -> std::result::Result<(), (MpmcError, T)> {
        match self.core.push_claim_with(me, wait) {
            Ok(c) => {
                Self::write_and_publish(&self.slots_with(me), c, value);
                Ok(())
            }
            Err(e) => Err((e, value)),
        }
    }

    // Takes the view its caller claimed through: a fresh one would load the handle's
    // fields again after the claim's CAS (see `Fixed`).
    #[inline(always)]
    fn write_and_publish(s: &Fixed<'_>, c: Claim, value: T) {
        // SAFETY: we hold the claim on this slot; its payload has room for a `T` and is
        // aligned for it (SlotGeometry was made from size_of / align_of T).
        unsafe { s.payload_ptr(&c).cast::<T>().write(value) };
        s.ring().publish(s, c);
    }

    /// Puts `value`, waiting while the queue is full.
    ///
    /// # Errors
    /// [`PutError::Disconnected`] when the queue is closed, [`PutError::Corrupt`]; the
    /// value comes back.
    ///
    /// ```
    /// # use shmproc::queue::Queue;
    /// let q = Queue::<u32>::new(2)?;
    /// q.put(5).unwrap();
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    #[inline]
    pub fn put(&self, value: T) -> std::result::Result<(), PutError<T>> {
        self.put_with(value, Wait::Until(None))
            .map_err(|(e, v)| PutError::from_ring(e, v))
    }

    /// Puts `value`, waiting at most `timeout` while the queue is full.
    ///
    /// # Errors
    /// [`PutError::Timeout`], [`PutError::Disconnected`], [`PutError::Corrupt`]; the value
    /// comes back.
    ///
    /// ```
    /// # use shmproc::queue::{PutError, Queue};
    /// # use std::time::Duration;
    /// let q = Queue::<u32>::new(1)?;
    /// q.put(1).unwrap();
    /// assert_eq!(q.put_timeout(2, Duration::from_millis(10)), Err(PutError::Timeout(2)));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn put_timeout(&self, value: T, timeout: Duration) -> std::result::Result<(), PutError<T>> {
        self.put_with(value, Wait::timeout(timeout))
            .map_err(|(e, v)| PutError::timeout_from_ring(e, v))
    }

    /// Puts `value` if there is room; never blocks.
    ///
    /// # Errors
    /// [`PutError::Full`], [`PutError::Disconnected`], [`PutError::Corrupt`]; the value
    /// comes back.
    ///
    /// ```
    /// # use shmproc::queue::{PutError, Queue};
    /// let q = Queue::<u32>::new(1)?;
    /// q.try_put(1).unwrap();
    /// assert_eq!(q.try_put(2), Err(PutError::Full(2)));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    #[inline]
    pub fn try_put(&self, value: T) -> std::result::Result<(), PutError<T>> {
        self.put_with(value, Wait::Never)
            .map_err(|(e, v)| PutError::from_ring(e, v))
    }

    // ---------------------------------------------------------------------------------
    // get

    // See `put_with`.
    #[inline(always)]
    fn get_with(&self, wait: Wait) -> std::result::Result<T, MpmcError> {
        let s = self.slots();
        match s.ring().pop_fast(&s, s.me()) {
            Some(c) => Ok(Self::read_and_release(&s, c)),
            None => self.get_slow(wait, s.me()),
        }
    }

    // Through `Core`'s slots, with the fast path's intent word: see `put_slow`.
    #[inline(never)]
    fn get_slow(&self, wait: Wait, me: &AtomicU64) -> std::result::Result<T, MpmcError> {
        let c = self.core.pop_message_with(me, wait)?;
        Ok(Self::read_and_release(&self.slots_with(me), c))
    }

    // See `write_and_publish`.
    #[inline(always)]
    fn read_and_release(s: &Fixed<'_>, c: Claim) -> T {
        // SAFETY: we hold the claim on a published slot with a message in it (Acquire on
        // its stamp pairs with the producer's Release publish); the payload is aligned
        // and large enough for `T`, and any bytes are a valid `T` (Pod).
        let v = unsafe { s.payload_ptr(&c).cast::<T>().read() };
        s.ring().release(s, c);
        v
    }

    /// Takes the oldest value, waiting while the queue is empty.
    ///
    /// # Errors
    /// [`GetError::Disconnected`] when the queue is closed and drained;
    /// [`GetError::Corrupt`].
    ///
    /// ```
    /// # use shmproc::queue::Queue;
    /// let q = Queue::<u32>::new(2)?;
    /// q.put(5).unwrap();
    /// assert_eq!(q.get(), Ok(5));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    #[inline]
    pub fn get(&self) -> std::result::Result<T, GetError> {
        self.get_with(Wait::Until(None))
            .map_err(GetError::from_ring)
    }

    /// Takes the oldest value, waiting at most `timeout` while the queue is empty.
    ///
    /// # Errors
    /// [`GetError::Timeout`], [`GetError::Disconnected`], [`GetError::Corrupt`].
    ///
    /// ```
    /// # use shmproc::queue::{GetError, Queue};
    /// # use std::time::Duration;
    /// let q = Queue::<u32>::new(2)?;
    /// assert_eq!(q.get_timeout(Duration::from_millis(10)), Err(GetError::Timeout));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> std::result::Result<T, GetError> {
        self.get_with(Wait::timeout(timeout))
            .map_err(GetError::timeout_from_ring)
    }

    /// Takes the oldest value if there is one; never blocks.
    ///
    /// # Errors
    /// [`GetError::Empty`] (also while the next value is still being written),
    /// [`GetError::Disconnected`], [`GetError::Corrupt`].
    ///
    /// ```
    /// # use shmproc::queue::{GetError, Queue};
    /// let q = Queue::<u32>::new(2)?;
    /// assert_eq!(q.try_get(), Err(GetError::Empty));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    #[inline]
    pub fn try_get(&self) -> std::result::Result<T, GetError> {
        self.get_with(Wait::Never).map_err(GetError::from_ring)
    }

    // ---------------------------------------------------------------------------------
    // loans

    fn put_loan_with(&self, wait: Wait) -> std::result::Result<PutLoan<'_, T>, MpmcError> {
        // The loan's claim records itself in a word of its own (`raw::mpmc`, "Who holds a
        // claim"): this thread's puts and gets overwrite the other.
        let loan = self.core.loan_word();
        let c = self
            .core
            .push_claim_with(self.core.loan_intent(&loan), wait)?;
        Ok(PutLoan {
            q: self,
            claim: Some(c),
            _loan: loan,
        })
    }

    /// Lends the next free slot, waiting while the queue is full: write the value in place
    /// through the loan, then [`commit`](PutLoan::commit) it. A loan dropped without
    /// `commit` publishes nothing (consumers skip the slot).
    ///
    /// The slot holds whatever bytes it held before (a valid `T`, since `T: Pod`).
    /// While the loan is held, consumers cannot get past it: keep it short. A loan that is
    /// leaked (`mem::forget`) blocks the queue; one held by a process that dies is
    /// published skipped by the survivors (as a put that never came), unless its thread
    /// held more than two loans of this queue at once (see
    /// [`raw::mpmc`](crate::raw::mpmc), "A party that dies").
    ///
    /// # Errors
    /// [`PutError::Disconnected`], [`PutError::Corrupt`].
    ///
    /// ```
    /// # use shmproc::queue::Queue;
    /// let q = Queue::<[u64; 8]>::new(2)?;
    /// let mut loan = q.put_loan().unwrap();
    /// for (i, x) in loan.iter_mut().enumerate() {
    ///     *x = i as u64;
    /// }
    /// loan.commit();
    /// assert_eq!(q.get_loan().unwrap()[7], 7);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn put_loan(&self) -> std::result::Result<PutLoan<'_, T>, PutError<()>> {
        self.put_loan_with(Wait::Until(None))
            .map_err(|e| PutError::from_ring(e, ()))
    }

    /// Like [`put_loan`](Self::put_loan), but never blocks.
    ///
    /// # Errors
    /// [`PutError::Full`], [`PutError::Disconnected`], [`PutError::Corrupt`].
    pub fn try_put_loan(&self) -> std::result::Result<PutLoan<'_, T>, PutError<()>> {
        self.put_loan_with(Wait::Never)
            .map_err(|e| PutError::from_ring(e, ()))
    }

    fn get_loan_with(&self, wait: Wait) -> std::result::Result<GetLoan<'_, T>, MpmcError> {
        // As in `put_loan_with`.
        let loan = self.core.loan_word();
        let c = self
            .core
            .pop_message_with(self.core.loan_intent(&loan), wait)?;
        Ok(GetLoan {
            q: self,
            claim: c,
            _loan: loan,
        })
    }

    /// Lends the oldest value in place, waiting while the queue is empty; the slot is
    /// released when the loan is dropped. While it is held, producers cannot get past the
    /// slot once they wrap around: keep it short. A loan held by a process that dies is
    /// released by the survivors, its value counted lost ([`lost`](Self::lost)).
    ///
    /// # Errors
    /// [`GetError::Disconnected`], [`GetError::Corrupt`].
    ///
    /// ```
    /// # use shmproc::queue::Queue;
    /// let q = Queue::<[u8; 4096]>::new(2)?;
    /// q.put([7; 4096]).unwrap();
    /// let page = q.get_loan().unwrap();
    /// assert!(page.iter().all(|&b| b == 7));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn get_loan(&self) -> std::result::Result<GetLoan<'_, T>, GetError> {
        self.get_loan_with(Wait::Until(None))
            .map_err(GetError::from_ring)
    }

    /// Like [`get_loan`](Self::get_loan), but never blocks.
    ///
    /// # Errors
    /// [`GetError::Empty`], [`GetError::Disconnected`], [`GetError::Corrupt`].
    pub fn try_get_loan(&self) -> std::result::Result<GetLoan<'_, T>, GetError> {
        self.get_loan_with(Wait::Never).map_err(GetError::from_ring)
    }

    // ---------------------------------------------------------------------------------
    // state

    /// Closes the queue for every process: puts fail from now on, gets drain what is
    /// left. Sleepers on either side wake up. Returns false if it was already closed.
    ///
    /// ```
    /// # use shmproc::queue::{PutError, Queue};
    /// let q = Queue::<u8>::new(2)?;
    /// assert!(q.close());
    /// assert!(!q.close());
    /// assert_eq!(q.put(1), Err(PutError::Disconnected(1)));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn close(&self) -> bool {
        self.core.close()
    }
}

/// A slot lent by [`Queue::put_loan`]: write the value in place, then
/// [`commit`](PutLoan::commit). Dropped without `commit`, it publishes nothing.
#[must_use = "a put loan publishes nothing unless committed"]
pub struct PutLoan<'a, T: Pod> {
    q: &'a Queue<T>,
    claim: Option<Claim>,
    /// The intent word the claim is recorded in, given back after the claim ends.
    _loan: Loan,
}

impl<T: Pod> PutLoan<'_, T> {
    /// Publishes the value written through the loan.
    pub fn commit(mut self) {
        if let Some(c) = self.claim.take() {
            self.q.core.publish(c);
        }
    }

    fn claim(&self) -> &Claim {
        self.claim
            .as_ref()
            .expect("a loan holds its claim until commit or drop")
    }
}

impl<T: Pod> Deref for PutLoan<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: we hold the claim: no other process reads or writes the slot; the
        // payload is aligned and sized for T and holds valid bytes for a Pod.
        unsafe { &*self.q.core.payload_ptr(self.claim()).cast::<T>() }
    }
}

impl<T: Pod> DerefMut for PutLoan<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { &mut *self.q.core.payload_ptr(self.claim()).cast::<T>() }
    }
}

impl<T: Pod> Drop for PutLoan<'_, T> {
    fn drop(&mut self) {
        if let Some(c) = self.claim.take() {
            self.q.core.publish_skip(c);
        }
    }
}

impl<T: Pod> fmt::Debug for PutLoan<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutLoan").finish_non_exhaustive()
    }
}

/// A value lent in place by [`Queue::get_loan`]; its slot is released on drop.
pub struct GetLoan<'a, T: Pod> {
    q: &'a Queue<T>,
    claim: Claim,
    /// As in [`PutLoan`].
    _loan: Loan,
}

impl<T: Pod> Deref for GetLoan<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: we hold the claim on a published slot (see `get_with`); nobody writes
        // it until we release it in `drop`.
        unsafe { &*self.q.core.payload_ptr(&self.claim).cast::<T>() }
    }
}

impl<T: Pod> Drop for GetLoan<'_, T> {
    fn drop(&mut self) {
        self.q.core.release(self.claim);
    }
}

impl<T: Pod> fmt::Debug for GetLoan<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetLoan").finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------
// SimpleQueue

/// Python's `multiprocessing.SimpleQueue`: a [`Queue`] without capacity choice, timeouts
/// or close. It holds up to [`SimpleQueue::CAPACITY`] values; `put` waits beyond that.
///
/// ```
/// use shmproc::queue::SimpleQueue;
/// let q = SimpleQueue::<u32>::new()?;
/// assert!(q.empty());
/// q.put(3).unwrap();
/// assert_eq!(q.get(), Ok(3));
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct SimpleQueue<T: Pod> {
    q: Queue<T>,
}

impl<T: Pod> SimpleQueue<T> {
    /// The number of values a `SimpleQueue` holds before `put` waits.
    pub const CAPACITY: usize = 1024;

    /// A new, empty queue in the [global arena](Arena::global).
    ///
    /// # Errors
    /// When the global arena cannot be made or is full.
    pub fn new() -> Result<Self> {
        Self::new_in(&Arena::global()?)
    }

    /// A new, empty queue in `arena`.
    ///
    /// # Errors
    /// [`Error::OutOfSpace`](crate::Error::OutOfSpace) when the arena is full.
    pub fn new_in(arena: &Arena) -> Result<Self> {
        Ok(SimpleQueue {
            q: Queue::new_in(arena, Self::CAPACITY)?,
        })
    }

    /// Puts `value`, waiting while [`CAPACITY`](Self::CAPACITY) values are pending.
    ///
    /// # Errors
    /// Only [`PutError::Corrupt`], when another process corrupted the queue's shared
    /// state (a `SimpleQueue` is never closed).
    pub fn put(&self, value: T) -> std::result::Result<(), PutError<T>> {
        self.q.put(value)
    }

    /// Takes the oldest value, waiting while the queue is empty.
    ///
    /// # Errors
    /// Only [`GetError::Corrupt`] (see [`put`](Self::put)).
    pub fn get(&self) -> std::result::Result<T, GetError> {
        self.q.get()
    }

    /// True when the queue holds nothing (approximate under concurrency).
    pub fn empty(&self) -> bool {
        self.q.empty()
    }

    /// [`empty`](Self::empty), by the name Rust's collections use.
    pub fn is_empty(&self) -> bool {
        self.q.empty()
    }
}

// ---------------------------------------------------------------------------------------
// JoinableQueue

/// Python's `multiprocessing.JoinableQueue`: a [`Queue`] that counts unfinished tasks.
///
/// Every value put is a task; a consumer calls [`task_done`](Self::task_done) once per
/// task it finished; [`join`](Self::join) waits (in any process) until every task put was
/// marked done.
///
/// A task counts from the moment its value is in the queue: a `put` that waits for room
/// (or fails, or whose process dies while it waits) counts nothing. A process that dies
/// after taking tasks and before marking them done *abandons* them: when nothing else is
/// left to wait for, `join` returns [`JoinError::Abandoned`] with their number instead of
/// waiting for ever (within ~100 ms of the death; see [`raw::mpmc`](crate::raw::mpmc),
/// "Tasks"). A task is judged by the process that took it: one marked done by another
/// process counts as done, but one still being worked on by another process while its
/// taker is dead counts as abandoned.
///
/// ```
/// use shmproc::queue::JoinableQueue;
/// let q = JoinableQueue::<u32>::new(4)?;
/// q.put(1).unwrap();
/// assert_eq!(q.unfinished_tasks(), 1);
/// assert_eq!(q.get(), Ok(1));
/// q.task_done().unwrap();
/// q.join().unwrap(); // returns at once: nothing unfinished
/// assert!(q.task_done().is_err()); // one more than was put
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct JoinableQueue<T: Pod> {
    q: Queue<T>,
}

impl<T: Pod> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unfinished = self.unfinished_tasks();
        self.q
            .core
            .obj_ref::<JoinableQueue<T>>()
            .debug(f, &[("unfinished_tasks", &unfinished)])
    }
}

impl<T: Pod> JoinableQueue<T> {
    queue_state!(q.core);

    /// A new, empty queue of `capacity` slots in the [global arena](Arena::global).
    ///
    /// # Errors
    /// As [`Queue::new`].
    pub fn new(capacity: usize) -> Result<Self> {
        Self::new_in(&Arena::global()?, capacity)
    }

    /// A new, empty queue of `capacity` slots in `arena`.
    ///
    /// # Errors
    /// As [`Queue::new`].
    pub fn new_in(arena: &Arena, capacity: usize) -> Result<Self> {
        Ok(JoinableQueue {
            q: Queue::make::<Self>(arena, None, capacity)?,
        })
    }

    /// A new queue named `name` in `arena`.
    ///
    /// # Errors
    /// As [`Queue::create`].
    pub fn create(arena: &Arena, name: &str, capacity: usize) -> Result<Self> {
        Ok(JoinableQueue {
            q: Queue::make::<Self>(arena, Some(name), capacity)?,
        })
    }

    /// The joinable queue named `name` in `arena`.
    ///
    /// # Errors
    /// As [`Queue::open`].
    pub fn open(arena: &Arena, name: &str) -> Result<Self> {
        Ok(JoinableQueue {
            q: Queue::open_as::<Self>(arena, name)?,
        })
    }

    /// Sets how long this handle spins before sleeping (see [`SpinPolicy`]).
    pub fn set_spin(&mut self, spin: SpinPolicy) {
        self.q.set_spin(spin);
    }

    /// Puts `value` as a task: claims a slot (waiting as `wait` says), writes the value,
    /// counts the task, publishes it (module docs of [`raw::mpmc`](crate::raw::mpmc),
    /// "Tasks").
    fn put_task(&self, value: T, wait: Wait) -> std::result::Result<(), (MpmcError, T)> {
        let core = &self.q.core;
        let c = match core.push_claim(wait) {
            Ok(c) => c,
            Err(e) => return Err((e, value)),
        };
        // SAFETY: we hold the claim on this slot; its payload has room for a `T` and is
        // aligned for it (SlotGeometry was made from size_of / align_of T).
        unsafe { core.payload_ptr(&c).cast::<T>().write(value) };
        core.ring().count_put(core.mine(), &c);
        core.publish(c);
        Ok(())
    }

    /// Takes a task's value (waiting as `wait` says), counting it as taken by this thread.
    fn get_task(&self, wait: Wait) -> std::result::Result<T, MpmcError> {
        let core = &self.q.core;
        let c = core.pop_message(wait)?;
        // SAFETY: we hold the claim on a published slot with a message in it (Acquire on
        // its stamp pairs with the producer's Release publish); the payload is aligned
        // and large enough for `T`, and any bytes are a valid `T` (Pod).
        let v = unsafe { core.payload_ptr(&c).cast::<T>().read() };
        core.ring().count_took(core, core.mine(), &c);
        core.release(c);
        Ok(v)
    }

    /// Puts `value` (waiting while full) as one more unfinished task.
    ///
    /// # Errors
    /// As [`Queue::put`]; a failed put counts no task.
    pub fn put(&self, value: T) -> std::result::Result<(), PutError<T>> {
        self.put_task(value, Wait::Until(None))
            .map_err(|(e, v)| PutError::from_ring(e, v))
    }

    /// Puts `value`, waiting at most `timeout`; counts a task on success.
    ///
    /// # Errors
    /// As [`Queue::put_timeout`].
    pub fn put_timeout(&self, value: T, timeout: Duration) -> std::result::Result<(), PutError<T>> {
        self.put_task(value, Wait::timeout(timeout))
            .map_err(|(e, v)| PutError::timeout_from_ring(e, v))
    }

    /// Puts `value` if there is room; counts a task on success. Never blocks.
    ///
    /// # Errors
    /// As [`Queue::try_put`].
    pub fn try_put(&self, value: T) -> std::result::Result<(), PutError<T>> {
        self.put_task(value, Wait::Never)
            .map_err(|(e, v)| PutError::from_ring(e, v))
    }

    /// Takes the oldest value, waiting while empty. Call [`task_done`](Self::task_done)
    /// when it is processed.
    ///
    /// # Errors
    /// As [`Queue::get`].
    pub fn get(&self) -> std::result::Result<T, GetError> {
        self.get_task(Wait::Until(None))
            .map_err(GetError::from_ring)
    }

    /// Takes the oldest value, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Queue::get_timeout`].
    pub fn get_timeout(&self, timeout: Duration) -> std::result::Result<T, GetError> {
        self.get_task(Wait::timeout(timeout))
            .map_err(GetError::timeout_from_ring)
    }

    /// Takes the oldest value if there is one; never blocks.
    ///
    /// # Errors
    /// As [`Queue::try_get`].
    pub fn try_get(&self) -> std::result::Result<T, GetError> {
        self.get_task(Wait::Never).map_err(GetError::from_ring)
    }

    /// Marks one task as processed. When the last unfinished task is marked, every
    /// `join` returns.
    ///
    /// # Errors
    /// [`TaskDoneError`] when called more times than tasks were put (nothing is counted).
    pub fn task_done(&self) -> std::result::Result<(), TaskDoneError> {
        self.q.core.ring().task_done(self.q.core.mine())
    }

    fn join_until(
        &self,
        deadline: Option<std::time::Instant>,
    ) -> std::result::Result<(), JoinError> {
        let core = &self.q.core;
        core.ring()
            .join(core, deadline, core.spin, &Procfs)
            .map_err(|e| match e {
                JoinStop::Timeout => JoinError::Timeout {
                    unfinished: self.unfinished_tasks(),
                },
                JoinStop::Abandoned(tasks) => JoinError::Abandoned { tasks },
            })
    }

    /// Waits until every task put was marked done with [`task_done`](Self::task_done).
    ///
    /// # Errors
    /// [`JoinError::Abandoned`] when every task still unfinished was taken by a process
    /// that died: they will never be marked done (their number is in the error).
    pub fn join(&self) -> std::result::Result<(), JoinError> {
        self.join_until(None)
    }

    /// Waits at most `timeout` for every task to be marked done.
    ///
    /// # Errors
    /// [`JoinError::Timeout`] when some were still unfinished at the timeout;
    /// [`JoinError::Abandoned`] as for [`join`](Self::join).
    ///
    /// ```
    /// # use shmproc::queue::{JoinError, JoinableQueue};
    /// # use std::time::Duration;
    /// let q = JoinableQueue::<u8>::new(2)?;
    /// q.put(1).unwrap();
    /// assert_eq!(
    ///     q.join_timeout(Duration::from_millis(10)),
    ///     Err(JoinError::Timeout { unfinished: 1 })
    /// );
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> std::result::Result<(), JoinError> {
        self.join_until(time::deadline_after(timeout))
    }

    /// Tasks put and not yet marked done (a snapshot, exact when the queue is quiet;
    /// abandoned tasks included).
    pub fn unfinished_tasks(&self) -> u64 {
        let core = &self.q.core;
        match core.ring().tasks(core, &Procfs) {
            Some(t) => t.unfinished,
            None => core.ring().unfinished(),
        }
    }

    /// Tasks taken by processes that died before marking them done (a snapshot).
    pub fn abandoned_tasks(&self) -> u64 {
        let core = &self.q.core;
        core.ring().tasks(core, &Procfs).map_or(0, |t| t.abandoned)
    }

    /// Closes the queue (see [`Queue::close`]).
    pub fn close(&self) -> bool {
        self.q.close()
    }
}

impl<T: Pod> crate::object::Shared for Queue<T> {
    type Of = Queue<T>;
    fn shared(&self) -> &Obj<Queue<T>> {
        self.core.obj_ref()
    }
    fn rebuild(obj: Obj<Queue<T>>) -> Result<Self> {
        Self::from_core(Core::new(obj.recast()))
    }
}

impl<T: Pod> crate::object::Shared for SimpleQueue<T> {
    type Of = Queue<T>;
    fn shared(&self) -> &Obj<Queue<T>> {
        self.q.core.obj_ref()
    }
    fn rebuild(obj: Obj<Queue<T>>) -> Result<Self> {
        Ok(SimpleQueue {
            q: Queue::from_core(Core::new(obj.recast()))?,
        })
    }
}

impl<T: Pod> crate::object::Shared for JoinableQueue<T> {
    type Of = JoinableQueue<T>;
    fn shared(&self) -> &Obj<JoinableQueue<T>> {
        self.q.core.obj_ref()
    }
    fn rebuild(obj: Obj<JoinableQueue<T>>) -> Result<Self> {
        Ok(JoinableQueue {
            q: Queue::from_core(Core::new(obj.recast()))?,
        })
    }
}
