//! [`Value<T>`] and [`Array<T>`]: plain data in the arena, with a robust lock or raw.
//!
//! # Layout
//!
//! Both are one arena block:
//!
//! | offset | contents                                              |
//! |--------|-------------------------------------------------------|
//! | 0      | a [`RawLock`] (16 bytes), the object's own lock       |
//! | 64     | the data: `len` elements of `T`, 64-byte aligned      |
//!
//! The element count and whether the object was made raw live in the arena directory
//! (the entry's `param`), not in the block, and are validated against the block's size on
//! [`open`](Value::open): a peer that scribbles on the block cannot make an index go out
//! of bounds.
//!
//! # Locked, raw and atomic access
//!
//! Like Python's `Value(.., lock=True)`, a locked object's [`get`](Value::get) and
//! [`set`](Value::set) take its lock, and [`get_lock`](Value::get_lock) holds it across a
//! read-modify-write. A raw object (`Value::raw`, Python's `RawValue`) reads and writes
//! without the lock; it still has one, so `get_lock` works on it too.
//!
//! Integer values (`u32`, `u64`, `i32`, `i64`) also offer atomic operations
//! ([`fetch_add`](Value::fetch_add) and friends) that never take the lock: a counter
//! needs no lock at all. Do not mix them with concurrent writes through `set` or a guard:
//! each kind of access is consistent with itself, a mix is not (the result may then be
//! any mixture of the two writes, never a memory-safety problem).
//!
//! Data is read and written with volatile copies (the memory is shared with other
//! processes, which the compiler cannot see); `T` is [`bytemuck::Pod`], so any bytes a
//! peer leaves there are a valid `T`.

use crate::arena::{fingerprint_sized, Arena, ObjectKind};
use crate::error::{Error, Result};
use crate::lock::{self, OwnerDied, TryAcquireError};
use crate::object::{Inspect, Obj, Object, Word};
use crate::raw::lock::RawLock;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::SpinPolicy;
use bytemuck::Pod;
use std::borrow::Cow;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

/// Offset of the data in the block: the lock sits before it, on its own.
pub const DATA_OFFSET: usize = 64;

/// Bit of the directory `param` that marks an object made raw.
const RAW_FLAG: u64 = 1 << 63;
/// Largest element count (the rest of `param` is flags).
const MAX_LEN: u64 = (1 << 48) - 1;

#[cfg(not(shmproc_loom))]
static_assertions::const_assert!(core::mem::size_of::<RawLock>() <= DATA_OFFSET);

/// The block both handles share: the lock at offset 0 and `len` elements at
/// [`DATA_OFFSET`]. `ARRAY` picks the kind: a `Value` is an array of one, of another kind.
pub(crate) struct Block<T: Pod, const ARRAY: bool> {
    obj: Obj<Block<T, ARRAY>>,
    /// The element count and the raw flag, from the validated parameters.
    len: usize,
    raw: bool,
    spin: SpinPolicy,
}

impl<T: Pod, const ARRAY: bool> Clone for Block<T, ARRAY> {
    fn clone(&self) -> Self {
        Block {
            obj: self.obj.clone(),
            len: self.len,
            raw: self.raw,
            spin: self.spin,
        }
    }
}

fn check_type<T>() -> Result<()> {
    if core::mem::align_of::<T>() > DATA_OFFSET {
        return Err(Error::InvalidArgument(format!(
            "{} needs {}-byte alignment; shared values support at most {DATA_OFFSET}: use a \
             type with a smaller alignment (no `#[repr(align)]` above {DATA_OFFSET})",
            core::any::type_name::<T>(),
            core::mem::align_of::<T>()
        )));
    }
    Ok(())
}

/// The parameters of a value or array: how many elements, and whether `get` / `set`
/// skip the lock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    len: usize,
    raw: bool,
}

impl Word for Shape {
    fn to_word(&self) -> u64 {
        self.len as u64 | if self.raw { RAW_FLAG } else { 0 }
    }

    fn from_word(word: u64) -> Option<Shape> {
        Some(Shape {
            len: usize::try_from(word & MAX_LEN).ok()?,
            raw: word & RAW_FLAG != 0,
        })
    }
}

impl<T: Pod, const ARRAY: bool> Object for Block<T, ARRAY> {
    type State = RawLock;
    type Params = Shape;
    const KIND: ObjectKind = if ARRAY {
        ObjectKind::Array
    } else {
        ObjectKind::Value
    };

    fn type_name() -> Cow<'static, str> {
        let kind = if ARRAY { "Array" } else { "Value" };
        format!("{kind}<{}>", core::any::type_name::<T>()).into()
    }

    fn fingerprint() -> u64 {
        fingerprint_sized::<T>()
    }

    fn size(shape: &Shape) -> Result<usize> {
        check_type::<T>()?;
        if !ARRAY && shape.len != 1 {
            return Err(Error::InvalidArgument(format!(
                "a value holds 1 element, not {}",
                shape.len
            )));
        }
        (shape.len as u64)
            .checked_mul(core::mem::size_of::<T>() as u64)
            .and_then(|b| b.checked_add(DATA_OFFSET as u64))
            .filter(|_| shape.len as u64 <= MAX_LEN)
            .and_then(|b| usize::try_from(b).ok())
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "an array of {} elements is larger than any arena can hold: use fewer \
                     elements, or several arrays",
                    shape.len
                ))
            })
    }

    fn inspect(lock: &RawLock, shape: &Shape, out: &mut Inspect) {
        if ARRAY {
            out.field("len", shape.len);
        }
        out.field("raw", shape.raw);
        out.field("holder", lock.holder());
    }
}

impl<T: Pod, const ARRAY: bool> Block<T, ARRAY> {
    fn make(arena: &Arena, name: Option<&str>, init: &[T], len: usize, raw: bool) -> Result<Self> {
        debug_assert!(init.is_empty() || init.len() == len);
        let obj = Obj::create_with(arena, name, Shape { len, raw }, |fresh| {
            // Zeroed memory is an unlocked RawLock; the data follows at DATA_OFFSET.
            let data = fresh.tail(DATA_OFFSET);
            let init = bytemuck::cast_slice::<T, u8>(init);
            data[..init.len()].copy_from_slice(init);
        })?;
        Ok(Self::from_obj(obj))
    }

    fn open(arena: &Arena, name: &str) -> Result<Self> {
        Ok(Self::from_obj(Obj::open(arena, name)?))
    }

    fn from_obj(obj: Obj<Self>) -> Self {
        let Shape { len, raw } = *obj.params();
        Block {
            obj,
            len,
            raw,
            spin: SpinPolicy::default(),
        }
    }

    #[inline]
    fn data(&self) -> *mut T {
        // SAFETY: the block holds DATA_OFFSET + len * size_of::<T>() bytes (checked at
        // creation and on open), so the offset stays inside it.
        unsafe { self.obj.block().base().add(DATA_OFFSET).cast::<T>() }
    }

    #[inline]
    fn read(&self, i: usize) -> T {
        assert!(i < self.len);
        // SAFETY: i < len, so the element lies in the block; aligned (see `make`); T is
        // Pod, so whatever bytes are there form a valid T. Volatile: other processes
        // write this memory behind the compiler's back.
        unsafe { self.data().add(i).read_volatile() }
    }

    #[inline]
    fn write(&self, i: usize, v: T) {
        assert!(i < self.len);
        // SAFETY: as in `read`; T is Pod, so no destructor is skipped.
        unsafe { self.data().add(i).write_volatile(v) }
    }

    /// The guard of this block's lock over `data`, acquired as `acquire` says: every
    /// `get_lock` of both handles.
    fn guard<'a, D: ?Sized>(&'a self, data: *mut D) -> impl FnOnce() -> SharedGuard<'a, D> {
        move || SharedGuard {
            lock: &self.obj,
            data,
        }
    }

    /// Runs `f` with the lock held unless the object is raw.
    #[inline]
    fn locked<R>(&self, f: impl FnOnce() -> R) -> R {
        if self.raw {
            return f();
        }
        lock::acquire_forever(&*self.obj, self.spin);
        let _unlock = Unlock(&self.obj);
        f()
    }

    /// The atomic view of element 0, for integer types of width 4 or 8.
    #[inline]
    fn atomic<A>(&self) -> &A {
        debug_assert_eq!(core::mem::size_of::<A>(), core::mem::size_of::<T>());
        // SAFETY: element 0 exists (a Value has len 1), is 64-byte aligned and as large
        // as `A` (AtomicU32 / AtomicU64, chosen by `AtomicInt` to match T's size); the
        // memory is shared, which atomics are made for, and lives as long as `self.obj`.
        unsafe { &*self.data().cast::<A>() }
    }
}

/// Releases the lock when dropped (also when the critical section panics).
struct Unlock<'a>(&'a RawLock);

impl Drop for Unlock<'_> {
    fn drop(&mut self) {
        self.0.unlock();
    }
}

// ---------------------------------------------------------------------------------------
// Value

/// One `T` in shared memory: Python's `multiprocessing.Value`.
///
/// Made with its own lock ([`new`](Self::new)) or raw ([`raw`](Self::raw)), see the
/// [module docs](self). `T` is plain data ([`bytemuck::Pod`]): numbers, arrays of them,
/// `#[derive(Pod, Zeroable)] #[repr(C)]` structs. Tuples are not `Pod` (they may have
/// padding): a pair is `[u64; 2]` or a derived struct. The handle is `Clone + Send + Sync` and keeps working in every
/// process `fork`ed after it was made.
///
/// # Example
/// ```
/// use shmproc::shared::Value;
/// let v = Value::new(41u64)?;
/// v.set(v.get() + 1);
/// assert_eq!(v.get(), 42);
/// *v.get_lock().unwrap() += 1;
/// assert_eq!(v.fetch_add(1), 43);
/// assert_eq!(v.load(), 44);
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct Value<T: Pod> {
    block: Block<T, false>,
}

impl<T: Pod> crate::object::Shared for Value<T> {
    type Of = Block<T, false>;
    fn shared(&self) -> &Obj<Block<T, false>> {
        &self.block.obj
    }
    fn rebuild(obj: Obj<Block<T, false>>) -> Result<Self> {
        Ok(Value {
            block: Block::from_obj(obj),
        })
    }
}

impl<T: Pod> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            block: self.block.clone(),
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value")
            .field("value", &self.block.read(0))
            .field("raw", &self.block.raw)
            .finish()
    }
}

/// Holds the lock of a [`Value`] (or [`Array`]) and gives access to its data; released
/// when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct SharedGuard<'a, T: ?Sized> {
    lock: &'a RawLock,
    data: *mut T,
}

impl<T: ?Sized> fmt::Debug for SharedGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedGuard").finish_non_exhaustive()
    }
}

impl<T: ?Sized> Deref for SharedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `data` points at the object's data inside a mapping that outlives 'a
        // (the guard borrows the handle); the lock is held, so every cooperating process
        // stays out; the data is Pod, valid for any bytes.
        unsafe { &*self.data }
    }
}

impl<T: ?Sized> DerefMut for SharedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference handed out.
        unsafe { &mut *self.data }
    }
}

impl<T: ?Sized> Drop for SharedGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

// SAFETY: the guard is a lock held on behalf of the process plus access to Pod data,
// which any thread may use; Lock itself is not bound to a thread either.
unsafe impl<T: ?Sized + Send> Send for SharedGuard<'_, T> {}
// SAFETY: `&SharedGuard` only gives `&T`.
unsafe impl<T: ?Sized + Sync> Sync for SharedGuard<'_, T> {}

/// What [`Value::try_get_lock`] and [`Value::get_lock_timeout`] (and the `Array`
/// equivalents) return.
pub type TryLockResult<'a, T> =
    std::result::Result<SharedGuard<'a, T>, TryAcquireError<SharedGuard<'a, T>>>;

/// What [`Value::get_lock`] and [`Array::get_lock`] return.
pub type LockResult<'a, T> = std::result::Result<SharedGuard<'a, T>, OwnerDied<SharedGuard<'a, T>>>;

impl<T: Pod> Value<T> {
    /// A locked value holding `v`, in the [global arena](Arena::global).
    ///
    /// # Errors
    /// When the global arena cannot be made or is full; [`Error::InvalidArgument`] when
    /// `T` needs more than 64-byte alignment.
    pub fn new(v: T) -> Result<Self> {
        Self::new_in(&Arena::global()?, v)
    }

    /// A locked value holding `v`, in `arena`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn new_in(arena: &Arena, v: T) -> Result<Self> {
        Self::make(arena, None, v, false)
    }

    /// A raw value (no locking in [`get`](Self::get) / [`set`](Self::set): Python's
    /// `RawValue`), in the global arena.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    ///
    /// ```
    /// let v = shmproc::shared::Value::raw(7i32)?;
    /// assert!(v.is_raw());
    /// assert_eq!(v.get(), 7);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn raw(v: T) -> Result<Self> {
        Self::raw_in(&Arena::global()?, v)
    }

    /// A raw value in `arena`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn raw_in(arena: &Arena, v: T) -> Result<Self> {
        Self::make(arena, None, v, true)
    }

    /// A locked value named `name` in `arena`, for [`open`](Self::open) to find.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`], [`Error::InvalidName`], or a full arena.
    pub fn create(arena: &Arena, name: &str, v: T) -> Result<Self> {
        Self::make(arena, Some(name), v, false)
    }

    /// The value named `name` in `arena` (locked or raw, as it was made).
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::WrongType`] when `name` is not a `Value<T>` of this
    /// `T`; [`Error::Corrupt`] when its block is damaged.
    ///
    /// ```
    /// use shmproc::{Arena, shared::Value};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// let a = Value::create(&arena, "hits", 0u32)?;
    /// let b = Value::<u32>::open(&arena, "hits")?;
    /// a.fetch_add(2);
    /// assert_eq!(b.get(), 2);
    /// assert!(Value::<u64>::open(&arena, "hits").is_err());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn open(arena: &Arena, name: &str) -> Result<Self> {
        Ok(Value {
            block: Block::open(arena, name)?,
        })
    }

    fn make(arena: &Arena, name: Option<&str>, v: T, raw: bool) -> Result<Self> {
        Ok(Value {
            block: Block::make(arena, name, &[v], 1, raw)?,
        })
    }

    /// True when the value was made raw (`get` / `set` do not lock).
    pub fn is_raw(&self) -> bool {
        self.block.raw
    }

    /// Sets how long a blocked [`get_lock`](Self::get_lock) spins before sleeping.
    pub fn set_spin(&mut self, spin: SpinPolicy) {
        self.block.spin = spin;
    }

    /// A copy of the value (under the lock, unless raw). Python's `v.value`.
    ///
    /// A previous holder that died is ignored here; use [`get_lock`](Self::get_lock) to
    /// learn of it.
    pub fn get(&self) -> T {
        self.block.locked(|| self.block.read(0))
    }

    /// Stores `v` (under the lock, unless raw). Python's `v.value = x`.
    pub fn set(&self, v: T) {
        self.block.locked(|| self.block.write(0, v))
    }

    /// Locks the value and gives `&mut T` until the guard is dropped: a read-modify-write
    /// that no other process (using the lock) can interleave with.
    ///
    /// # Errors
    /// [`OwnerDied`] (holding the guard) when the previous holder died holding the lock:
    /// the value may be half-updated.
    ///
    /// ```
    /// // Tuples are not `Pod` (they may have padding): use arrays or `#[derive(Pod)]`
    /// // structs for compound values.
    /// let v = shmproc::shared::Value::new([1u64, 1u64])?;
    /// {
    ///     let mut g = v.get_lock().unwrap_or_else(|died| died.into_guard());
    ///     g[0] += 1;
    ///     g[1] += 1;
    /// }
    /// assert_eq!(v.get(), [2, 2]);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn get_lock(&self) -> LockResult<'_, T> {
        lock::acquire(
            &*self.block.obj,
            self.block.spin,
            self.block.guard(self.block.data()),
        )
    }

    /// Like [`get_lock`](Self::get_lock), but never blocks.
    ///
    /// # Errors
    /// [`TryAcquireError::WouldBlock`] when another process holds the lock;
    /// [`TryAcquireError::OwnerDied`] (with the guard) when taken over from a dead
    /// holder.
    ///
    /// ```
    /// use shmproc::TryAcquireError;
    /// let v = shmproc::shared::Value::new(0u8)?;
    /// let g = v.try_get_lock().unwrap();
    /// assert!(matches!(v.try_get_lock(), Err(TryAcquireError::WouldBlock)));
    /// drop(g);
    /// assert!(v.try_get_lock().is_ok());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn try_get_lock(&self) -> TryLockResult<'_, T> {
        lock::try_acquire(&*self.block.obj, self.block.guard(self.block.data()))
    }

    /// Like [`get_lock`](Self::get_lock), giving up after `timeout`.
    ///
    /// # Errors
    /// [`TryAcquireError::WouldBlock`] at the timeout; [`TryAcquireError::OwnerDied`] as
    /// for [`try_get_lock`](Self::try_get_lock).
    pub fn get_lock_timeout(&self, timeout: Duration) -> TryLockResult<'_, T> {
        lock::acquire_timeout(
            &*self.block.obj,
            self.block.spin,
            timeout,
            self.block.guard(self.block.data()),
        )
    }
}

impl<T: Pod + bytemuck::Zeroable> Value<T> {
    /// A zero-filled locked value in the global arena (Python's `Value('i')`).
    ///
    /// # Errors
    /// As [`new`](Self::new).
    ///
    /// ```
    /// let v = shmproc::shared::Value::<f64>::zeroed()?;
    /// assert_eq!(v.get(), 0.0);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn zeroed() -> Result<Self> {
        Self::new(T::zeroed())
    }
}

/// Integer types whose [`Value`] offers atomic operations: `u32`, `u64`, `i32`, `i64`.
///
/// Sealed: implemented by this crate only.
pub trait AtomicInt: Pod + private::Sealed {
    #[doc(hidden)]
    type Atomic: AtomicOps;
    #[doc(hidden)]
    fn to_bits(self) -> u64;
    #[doc(hidden)]
    fn from_bits(bits: u64) -> Self;
}

mod private {
    pub trait Sealed {}
}

#[doc(hidden)]
pub trait AtomicOps {
    fn load(&self) -> u64;
    fn store(&self, v: u64);
    fn swap(&self, v: u64) -> u64;
    fn fetch_add(&self, v: u64) -> u64;
    fn fetch_sub(&self, v: u64) -> u64;
    fn fetch_and(&self, v: u64) -> u64;
    fn fetch_or(&self, v: u64) -> u64;
    fn fetch_xor(&self, v: u64) -> u64;
    fn compare_exchange(&self, current: u64, new: u64) -> std::result::Result<u64, u64>;
}

// Every operation is SeqCst: a shared counter is often used as a flag or an index by
// naive ports of Python code, and on x86 the read-modify-writes cost the same either way.
macro_rules! atomic_ops {
    ($atomic:ty, $bits:ty) => {
        impl AtomicOps for $atomic {
            #[inline]
            fn load(&self) -> u64 {
                <$atomic>::load(self, Ordering::SeqCst) as u64
            }
            #[inline]
            fn store(&self, v: u64) {
                <$atomic>::store(self, v as $bits, Ordering::SeqCst)
            }
            #[inline]
            fn swap(&self, v: u64) -> u64 {
                <$atomic>::swap(self, v as $bits, Ordering::SeqCst) as u64
            }
            #[inline]
            fn fetch_add(&self, v: u64) -> u64 {
                <$atomic>::fetch_add(self, v as $bits, Ordering::SeqCst) as u64
            }
            #[inline]
            fn fetch_sub(&self, v: u64) -> u64 {
                <$atomic>::fetch_sub(self, v as $bits, Ordering::SeqCst) as u64
            }
            #[inline]
            fn fetch_and(&self, v: u64) -> u64 {
                <$atomic>::fetch_and(self, v as $bits, Ordering::SeqCst) as u64
            }
            #[inline]
            fn fetch_or(&self, v: u64) -> u64 {
                <$atomic>::fetch_or(self, v as $bits, Ordering::SeqCst) as u64
            }
            #[inline]
            fn fetch_xor(&self, v: u64) -> u64 {
                <$atomic>::fetch_xor(self, v as $bits, Ordering::SeqCst) as u64
            }
            #[inline]
            fn compare_exchange(&self, current: u64, new: u64) -> std::result::Result<u64, u64> {
                <$atomic>::compare_exchange(
                    self,
                    current as $bits,
                    new as $bits,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
                .map(|v| v as u64)
                .map_err(|v| v as u64)
            }
        }
    };
}
atomic_ops!(AtomicU32, u32);
atomic_ops!(AtomicU64, u64);

macro_rules! atomic_int {
    ($t:ty, $atomic:ty, $unsigned:ty) => {
        impl private::Sealed for $t {}
        impl AtomicInt for $t {
            type Atomic = $atomic;
            #[inline]
            fn to_bits(self) -> u64 {
                self as $unsigned as u64
            }
            #[inline]
            fn from_bits(bits: u64) -> Self {
                bits as $unsigned as $t
            }
        }
    };
}
atomic_int!(u32, AtomicU32, u32);
atomic_int!(i32, AtomicU32, u32);
atomic_int!(u64, AtomicU64, u64);
atomic_int!(i64, AtomicU64, u64);

/// Atomic operations: lock-free, never take the value's lock (see the
/// [module docs](self) on mixing them with locked access). All are `SeqCst`; arithmetic
/// wraps on overflow, as `AtomicU64::fetch_add` does.
impl<T: AtomicInt> Value<T> {
    #[inline]
    fn a(&self) -> &T::Atomic {
        self.block.atomic::<T::Atomic>()
    }

    /// Atomically reads the value.
    #[inline]
    pub fn load(&self) -> T {
        T::from_bits(self.a().load())
    }

    /// Atomically stores `v`.
    #[inline]
    pub fn store(&self, v: T) {
        self.a().store(v.to_bits())
    }

    /// Stores `v`, returns the previous value.
    #[inline]
    pub fn swap(&self, v: T) -> T {
        T::from_bits(self.a().swap(v.to_bits()))
    }

    /// Adds `v` (wrapping), returns the previous value.
    ///
    /// ```
    /// let hits = shmproc::shared::Value::new(0i64)?;
    /// assert_eq!(hits.fetch_add(5), 0);
    /// assert_eq!(hits.fetch_sub(7), 5);
    /// assert_eq!(hits.load(), -2);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    #[inline]
    pub fn fetch_add(&self, v: T) -> T {
        T::from_bits(self.a().fetch_add(v.to_bits()))
    }

    /// Subtracts `v` (wrapping), returns the previous value.
    #[inline]
    pub fn fetch_sub(&self, v: T) -> T {
        T::from_bits(self.a().fetch_sub(v.to_bits()))
    }

    /// Bitwise and, returns the previous value.
    #[inline]
    pub fn fetch_and(&self, v: T) -> T {
        T::from_bits(self.a().fetch_and(v.to_bits()))
    }

    /// Bitwise or, returns the previous value.
    #[inline]
    pub fn fetch_or(&self, v: T) -> T {
        T::from_bits(self.a().fetch_or(v.to_bits()))
    }

    /// Bitwise xor, returns the previous value.
    #[inline]
    pub fn fetch_xor(&self, v: T) -> T {
        T::from_bits(self.a().fetch_xor(v.to_bits()))
    }

    /// Stores `new` if the value is `current`.
    ///
    /// # Errors
    /// The value found, when it was not `current`.
    ///
    /// ```
    /// let v = shmproc::shared::Value::new(3u32)?;
    /// assert_eq!(v.compare_exchange(3, 4), Ok(3));
    /// assert_eq!(v.compare_exchange(3, 5), Err(4));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    #[inline]
    pub fn compare_exchange(&self, current: T, new: T) -> std::result::Result<T, T> {
        self.a()
            .compare_exchange(current.to_bits(), new.to_bits())
            .map(T::from_bits)
            .map_err(T::from_bits)
    }

    /// Applies `f` atomically (a compare-exchange loop, lock-free), returns the previous
    /// value. `f` may run more than once.
    ///
    /// ```
    /// let best = shmproc::shared::Value::new(10u64)?;
    /// best.fetch_update(|v| v.max(25));
    /// assert_eq!(best.load(), 25);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn fetch_update(&self, mut f: impl FnMut(T) -> T) -> T {
        let mut cur = self.load();
        loop {
            match self.compare_exchange(cur, f(cur)) {
                Ok(prev) => return prev,
                Err(now) => cur = now,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Array

/// An index or range was outside an [`Array`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfRange {
    /// The first index asked for.
    pub start: usize,
    /// How many elements were asked for.
    pub count: usize,
    /// The array's length.
    pub len: usize,
}

impl fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "elements {}..{} are out of range for an array of length {}: use indices within \
             0..len()",
            self.start,
            self.start.saturating_add(self.count),
            self.len
        )
    }
}

impl std::error::Error for OutOfRange {}

/// A fixed-length array of `T` in shared memory: Python's `multiprocessing.Array`.
///
/// Reads and writes are bounds-checked and return [`OutOfRange`] rather than panic. A
/// locked array takes its lock for each call (a slice read or write is one critical
/// section, so it is never torn); [`get_lock`](Self::get_lock) holds it across calls and
/// gives `&mut [T]`.
///
/// # Example
/// ```
/// use shmproc::shared::Array;
/// let a = Array::from_slice(&[1u32, 2, 3])?;
/// a.set(0, 10)?;
/// assert_eq!(a.to_vec(), [10, 2, 3]);
/// for x in a.get_lock().unwrap().iter_mut() {
///     *x *= 2;
/// }
/// assert_eq!(a.get(2), Some(6));
/// assert!(a.set(3, 0).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Array<T: Pod> {
    block: Block<T, true>,
}

impl<T: Pod> crate::object::Shared for Array<T> {
    type Of = Block<T, true>;
    fn shared(&self) -> &Obj<Block<T, true>> {
        &self.block.obj
    }
    fn rebuild(obj: Obj<Block<T, true>>) -> Result<Self> {
        Ok(Array {
            block: Block::from_obj(obj),
        })
    }
}

impl<T: Pod> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            block: self.block.clone(),
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array")
            .field("len", &self.block.len)
            .field("raw", &self.block.raw)
            .finish()
    }
}

impl<T: Pod> Array<T> {
    /// A zero-filled locked array of `len` elements in the global arena.
    ///
    /// # Errors
    /// When the global arena cannot be made or is full, or `T` needs more than 64-byte
    /// alignment.
    pub fn new(len: usize) -> Result<Self> {
        Self::new_in(&Arena::global()?, len)
    }

    /// A zero-filled locked array of `len` elements in `arena`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn new_in(arena: &Arena, len: usize) -> Result<Self> {
        Self::make(arena, None, &[], len, false)
    }

    /// A locked array holding a copy of `init`, in the global arena.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn from_slice(init: &[T]) -> Result<Self> {
        Self::from_slice_in(&Arena::global()?, init)
    }

    /// A locked array holding a copy of `init`, in `arena`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn from_slice_in(arena: &Arena, init: &[T]) -> Result<Self> {
        Self::make(arena, None, init, init.len(), false)
    }

    /// A raw array (no locking: Python's `RawArray`) holding a copy of `init`, in `arena`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn raw_in(arena: &Arena, init: &[T]) -> Result<Self> {
        Self::make(arena, None, init, init.len(), true)
    }

    /// A locked array named `name` holding a copy of `init`, in `arena`.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`], [`Error::InvalidName`], or a full arena.
    pub fn create(arena: &Arena, name: &str, init: &[T]) -> Result<Self> {
        Self::make(arena, Some(name), init, init.len(), false)
    }

    /// The array named `name` in `arena`.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::WrongType`] when it is not an `Array<T>` of this `T`;
    /// [`Error::Corrupt`] when its length does not fit its block.
    ///
    /// ```
    /// use shmproc::{Arena, shared::Array};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// Array::create(&arena, "xs", &[1.5f64, 2.5])?;
    /// let xs = Array::<f64>::open(&arena, "xs")?;
    /// assert_eq!(xs.to_vec(), [1.5, 2.5]);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn open(arena: &Arena, name: &str) -> Result<Self> {
        Ok(Array {
            block: Block::open(arena, name)?,
        })
    }

    fn make(arena: &Arena, name: Option<&str>, init: &[T], len: usize, raw: bool) -> Result<Self> {
        Ok(Array {
            block: Block::make(arena, name, init, len, raw)?,
        })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.block.len
    }

    /// True for an array of length 0.
    pub fn is_empty(&self) -> bool {
        self.block.len == 0
    }

    /// True when the array was made raw.
    pub fn is_raw(&self) -> bool {
        self.block.raw
    }

    /// Sets how long a blocked call spins before sleeping.
    pub fn set_spin(&mut self, spin: SpinPolicy) {
        self.block.spin = spin;
    }

    /// Element `i`, or `None` when out of range.
    pub fn get(&self, i: usize) -> Option<T> {
        (i < self.block.len).then(|| self.block.locked(|| self.block.read(i)))
    }

    /// Stores `v` at `i`.
    ///
    /// # Errors
    /// [`OutOfRange`] when `i >= len`.
    pub fn set(&self, i: usize, v: T) -> std::result::Result<(), OutOfRange> {
        self.check(i, 1)?;
        self.block.locked(|| self.block.write(i, v));
        Ok(())
    }

    fn check(&self, start: usize, count: usize) -> std::result::Result<(), OutOfRange> {
        match start.checked_add(count) {
            Some(end) if end <= self.block.len => Ok(()),
            _ => Err(OutOfRange {
                start,
                count,
                len: self.block.len,
            }),
        }
    }

    /// Copies `out.len()` elements starting at `start` into `out`, in one critical
    /// section.
    ///
    /// # Errors
    /// [`OutOfRange`] when the range does not fit; `out` is then untouched.
    pub fn read(&self, start: usize, out: &mut [T]) -> std::result::Result<(), OutOfRange> {
        self.check(start, out.len())?;
        self.block.locked(|| {
            for (k, o) in out.iter_mut().enumerate() {
                *o = self.block.read(start + k);
            }
        });
        Ok(())
    }

    /// Copies `src` into the array starting at `start`, in one critical section.
    ///
    /// # Errors
    /// [`OutOfRange`] when the range does not fit; the array is then untouched.
    ///
    /// ```
    /// let a = shmproc::shared::Array::<u8>::new(4)?;
    /// a.write(1, &[7, 8])?;
    /// let mut out = [0; 3];
    /// a.read(1, &mut out)?;
    /// assert_eq!(out, [7, 8, 0]);
    /// assert!(a.write(3, &[1, 2]).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write(&self, start: usize, src: &[T]) -> std::result::Result<(), OutOfRange> {
        self.check(start, src.len())?;
        self.block.locked(|| {
            for (k, &v) in src.iter().enumerate() {
                self.block.write(start + k, v);
            }
        });
        Ok(())
    }

    /// A copy of the whole array (one critical section).
    pub fn to_vec(&self) -> Vec<T> {
        let mut v = vec![T::zeroed(); self.block.len];
        // The range is the whole array: cannot be out of range.
        let _ = self.read(0, &mut v);
        v
    }

    /// Locks the array and gives `&mut [T]` until the guard is dropped.
    ///
    /// # Errors
    /// [`OwnerDied`] (holding the guard) when the previous holder died holding the lock.
    pub fn get_lock(&self) -> LockResult<'_, [T]> {
        lock::acquire(
            &*self.block.obj,
            self.block.spin,
            self.block.guard(self.slice_ptr()),
        )
    }

    fn slice_ptr(&self) -> *mut [T] {
        core::ptr::slice_from_raw_parts_mut(self.block.data(), self.block.len)
    }

    /// Like [`get_lock`](Self::get_lock), but never blocks.
    ///
    /// # Errors
    /// [`TryAcquireError::WouldBlock`] when held; [`TryAcquireError::OwnerDied`] (with
    /// the guard) when taken over from a dead holder.
    pub fn try_get_lock(&self) -> TryLockResult<'_, [T]> {
        lock::try_acquire(&*self.block.obj, self.block.guard(self.slice_ptr()))
    }

    /// Like [`get_lock`](Self::get_lock), giving up after `timeout`.
    ///
    /// # Errors
    /// [`TryAcquireError::WouldBlock`] at the timeout; [`TryAcquireError::OwnerDied`] as
    /// for [`try_get_lock`](Self::try_get_lock).
    pub fn get_lock_timeout(&self, timeout: Duration) -> TryLockResult<'_, [T]> {
        lock::acquire_timeout(
            &*self.block.obj,
            self.block.spin,
            timeout,
            self.block.guard(self.slice_ptr()),
        )
    }
}
