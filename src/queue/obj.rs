//! `ObjQueue<T>`: a queue of any serde value, of any size (Python's `Queue` of objects).

use super::bytes::{geometry, ByteQueue};
use super::core::{queue_object, queue_state, Core};
use super::error::{BytePutError, GetError};
use crate::arena::{fingerprint, Arena, ObjectKind};
use crate::error::Result;
use crate::object::Obj;
use crate::queue::core::SlotGeometry;
use crate::SpinPolicy;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

/// The slot size of an [`ObjQueue`] made with [`new`](ObjQueue::new): 104 bytes, so that
/// a slot (with its 24-byte header) is two cache lines. A value whose encoding is longer
/// goes to a heap block of its own.
pub const OBJ_SLOT: usize = 104;

/// A bounded MPMC queue of values of any serde type `T`, of any size, shared between
/// processes: Python's `multiprocessing.Queue` of objects.
///
/// Each value is encoded with postcard straight into its slot when it fits
/// ([`OBJ_SLOT`] bytes by default, [`with_slot_size`](Self::with_slot_size) to choose),
/// or into a block of the arena's heap of its own when it does not; `get` decodes it. It
/// is a [`ByteQueue`] whose object records `T`, so opening it by name as another type
/// is refused ([`Error::WrongType`](crate::Error::WrongType)). Close, `qsize`, FIFO,
/// blocking and recovery from dead processes are the byte queue's. Needs the `serde`
/// feature (on by default).
///
/// ```
/// use shmproc::queue::ObjQueue;
/// let q = ObjQueue::<String>::new(16)?;
/// q.put(&"hello".to_string()).unwrap();
/// q.put(&"x".repeat(1 << 20)).unwrap(); // 1 MiB: a block of its own
/// assert_eq!(q.get().unwrap(), "hello");
/// assert_eq!(q.get().unwrap().len(), 1 << 20);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub struct ObjQueue<T> {
    bytes: ByteQueue,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> Clone for ObjQueue<T> {
    fn clone(&self) -> Self {
        ObjQueue {
            bytes: self.bytes.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: 'static> fmt::Debug for ObjQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slot = self.slot_size();
        self.bytes
            .core()
            .obj_ref::<ObjQueue<T>>()
            .debug(f, &[("slot_size", &slot)])
    }
}

queue_object!(
    impl<T: Sized> for ObjQueue<T>, ObjectKind::ObjQueue,
    format!("ObjQueue<{}>", core::any::type_name::<T>()).into(),
    fingerprint::<ObjQueue<T>>(),
    encode(g) { g.bytes_param() },
    decode(param) { SlotGeometry::from_bytes_param(param) }
);

impl<T: Serialize + DeserializeOwned + 'static> ObjQueue<T> {
    fn make(arena: &Arena, name: Option<&str>, capacity: usize, slot: usize) -> Result<Self> {
        let geo = geometry(capacity as u64, slot as u64)?;
        let obj = Obj::<ObjQueue<T>>::create(arena, name, geo)?;
        Ok(Self::over(Core::new(obj.recast())))
    }

    fn over(core: Core) -> Self {
        ObjQueue {
            bytes: ByteQueue::from_core(core),
            _t: PhantomData,
        }
    }

    /// A new queue of `capacity` values in the [global arena](Arena::global).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) when `capacity` is 0 or
    /// above 2^31; [`Error::OutOfSpace`](crate::Error::OutOfSpace) when the arena has no
    /// room.
    pub fn new(capacity: usize) -> Result<Self> {
        Self::new_in(&Arena::global()?, capacity)
    }

    /// A new queue of `capacity` values in `arena`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn new_in(arena: &Arena, capacity: usize) -> Result<Self> {
        Self::make(arena, None, capacity, OBJ_SLOT)
    }

    /// A new queue in `arena` whose slots hold `slot_size` bytes of encoding (longer ones
    /// go to the heap): the size of the common value's encoding is the fastest choice.
    ///
    /// # Errors
    /// As [`ByteQueue::new`].
    ///
    /// ```
    /// let arena = shmproc::Arena::anonymous(1 << 20)?;
    /// let q = shmproc::queue::ObjQueue::<(u32, f64)>::with_slot_size(&arena, 64, 16)?;
    /// q.put(&(1, 2.5)).unwrap();
    /// assert_eq!(q.get().unwrap(), (1, 2.5));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn with_slot_size(arena: &Arena, capacity: usize, slot_size: usize) -> Result<Self> {
        Self::make(arena, None, capacity, slot_size)
    }

    /// A new queue named `name` in `arena`.
    ///
    /// # Errors
    /// As [`new`](Self::new), and [`Error::AlreadyExists`](crate::Error::AlreadyExists)
    /// or a bad name.
    pub fn create(arena: &Arena, name: &str, capacity: usize) -> Result<Self> {
        Self::make(arena, Some(name), capacity, OBJ_SLOT)
    }

    /// The queue of `T` named `name` in `arena`.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound); [`Error::WrongType`](crate::Error::WrongType)
    /// when it is not an `ObjQueue<T>`; [`Error::Corrupt`](crate::Error::Corrupt).
    ///
    /// ```
    /// use shmproc::{queue::ObjQueue, Arena};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// let a = ObjQueue::<Vec<String>>::create(&arena, "jobs", 8)?;
    /// let b = ObjQueue::<Vec<String>>::open(&arena, "jobs")?;
    /// a.put(&vec!["wash".into(), "dry".into()]).unwrap();
    /// assert_eq!(b.get().unwrap(), ["wash", "dry"]);
    /// assert!(ObjQueue::<u64>::open(&arena, "jobs").is_err());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn open(arena: &Arena, name: &str) -> Result<Self> {
        Ok(Self::over(Core::new(
            Obj::<ObjQueue<T>>::open(arena, name)?.recast(),
        )))
    }

    /// Sets how long this handle spins before sleeping (see [`SpinPolicy`]).
    pub fn set_spin(&mut self, spin: SpinPolicy) {
        self.bytes.set_spin(spin);
    }

    /// Puts `value`, waiting while the queue is full.
    ///
    /// # Errors
    /// [`BytePutError::Encode`] and [`BytePutError::NoSpace`] (nothing was sent),
    /// [`BytePutError::Disconnected`], [`BytePutError::Corrupt`].
    pub fn put(&self, value: &T) -> std::result::Result<(), BytePutError> {
        self.bytes.put_value(value)
    }

    /// Puts `value`, waiting at most `timeout` while the queue is full.
    ///
    /// # Errors
    /// As [`put`](Self::put), and [`BytePutError::Timeout`].
    pub fn put_timeout(
        &self,
        value: &T,
        timeout: Duration,
    ) -> std::result::Result<(), BytePutError> {
        self.bytes.put_value_timeout(value, timeout)
    }

    /// Puts `value` if there is room; never blocks.
    ///
    /// # Errors
    /// As [`put`](Self::put), and [`BytePutError::Full`].
    pub fn try_put(&self, value: &T) -> std::result::Result<(), BytePutError> {
        self.bytes.try_put_value(value)
    }

    /// Takes the oldest value, waiting while the queue is empty.
    ///
    /// # Errors
    /// [`GetError::Disconnected`] when closed and drained, [`GetError::Decode`] (the
    /// message was taken), [`GetError::Corrupt`].
    pub fn get(&self) -> std::result::Result<T, GetError> {
        self.bytes.get_value()
    }

    /// Takes the oldest value, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`get`](Self::get), and [`GetError::Timeout`].
    pub fn get_timeout(&self, timeout: Duration) -> std::result::Result<T, GetError> {
        self.bytes.get_value_timeout(timeout)
    }

    /// Takes the oldest value if there is one; never blocks.
    ///
    /// # Errors
    /// As [`get`](Self::get), and [`GetError::Empty`].
    pub fn try_get(&self) -> std::result::Result<T, GetError> {
        self.bytes.try_get_value()
    }
}

impl<T> ObjQueue<T> {
    queue_state!(bytes.core);

    /// The bytes of encoding a slot holds (longer encodings go to the heap).
    pub fn slot_size(&self) -> usize {
        self.bytes.slot_size()
    }

    /// Closes the queue for every process (see [`Queue::close`](super::Queue::close)).
    pub fn close(&self) -> bool {
        self.bytes.close()
    }

    /// The byte queue under this queue (its messages are postcard encodings of `T`).
    pub fn as_bytes(&self) -> &ByteQueue {
        &self.bytes
    }
}

impl<T: 'static> crate::object::Shared for ObjQueue<T> {
    type Of = ObjQueue<T>;
    fn shared(&self) -> &Obj<ObjQueue<T>> {
        self.bytes.core().obj_ref()
    }
    fn rebuild(obj: Obj<ObjQueue<T>>) -> Result<Self> {
        Ok(ObjQueue {
            bytes: ByteQueue::from_core(Core::new(obj.recast())),
            _t: PhantomData,
        })
    }
}
