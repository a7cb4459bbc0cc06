//! [`SharedList`], [`ByteList`] and `SerdeList`: what Python's `Manager().list()` and
//! `shared_memory.ShareableList` are used for, with no server process and no size limit.
//!
//! A list in shared memory that any number of processes append to, read, change and pop
//! from, with Python's semantics: negative indices count from the end (`-1` is the last),
//! `insert` clamps its index, `remove` takes the first equal element, slices clamp their
//! bounds. Three flavours of element, named as the queue's and the dict's are:
//!
//! | list             | elements                                     | like                    |
//! |------------------|----------------------------------------------|-------------------------|
//! | [`SharedList<T>`] | plain data (`T: Pod`), stored in place       | [`Queue<T>`](crate::Queue), [`Array<T>`](crate::Array) |
//! | [`ByteList`]     | byte strings of any length                   | [`ByteQueue`](crate::ByteQueue) |
//! | `SerdeList<T>`   | any serde type, encoded with postcard (feature `serde`) | `SerdeDict`    |
//!
//! (The typed list takes the primitive's own name, as `Queue<T>`, `Value<T>` and
//! `Array<T>` do: it is the list of Rust values. The dict is the exception, because its
//! byte flavour came first.)
//!
//! # What it costs, what survives
//!
//! * The list grows without a bound and without copying: its elements live in chunks
//!   that double in size, blocks of the [`Arena`] that the list owns. A byte element
//!   above 24 bytes (and every serde element that encodes to more) gets a block of its
//!   own; a plain-data element is never boxed.
//! * Readers (`get`, `slice`, `index`, `iter`, `len`) take no lock and write nothing
//!   to shared memory: any number of them in any number of processes run in parallel. A
//!   reader retries while a writer is inside, and takes the lock after its spin
//!   ([`set_spin`](SharedList::set_spin)). Writers take the list's robust lock.
//! * A process killed at any point (SIGKILL included) leaves the list as it was before
//!   or after its operation, never in between (`extend` appends element by element, so
//!   a prefix of its elements), and leaks nothing: the next writer finishes or undoes
//!   what it was doing and frees what it had allocated. Every block the list owns goes
//!   back to the arena with the list's last handle.
//! * Memory that a peer scribbled on makes calls fail with [`ListError::Corrupt`], never
//!   panic, hang or touch memory outside the arena.
//!
//! Measured (`benches/list.rs`, each against its baseline in the same run, 2 busy vCPUs):
//! `SharedList<u64>::push` 14-15 ns, 1.4x a push on a `Mutex<Vec<u64>>`; `get` 6 ns,
//! 0.6x indexing that `Vec` under its mutex (0.4x beside a thread that appends); both
//! 2,000-5,000x faster than Python's `Manager().list()` (31-35 µs an operation, a round
//! trip to the manager process). A plain-data element takes a whole number of 8-byte
//! words (a `u32` takes 8 bytes), and `get` returns it by value: for elements of many
//! KiB, a [`ByteList`] copies into a buffer of yours instead ([`ByteList::get_into`]).
//!
//! The layout, the protocols and the recovery: [`raw::list`](crate::raw::list).

use crate::arena::{fingerprint, fingerprint_sized, Arena, ObjectKind};
use crate::error::{Error, Result};
use crate::object::{self, Fresh, Handle, Inspect, Obj, Object, Word};
pub use crate::raw::list::ListError;
use crate::raw::list::{ListCore, ListGeometry, RawList};
use crate::sync::liveness::Procfs;
use crate::SpinPolicy;
use bytemuck::Pod;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::RangeBounds;

/// Bytes a [`ByteList`] (and a `SerdeList`) keeps in the slot itself; longer elements get a
/// block of their own.
pub const INLINE_BYTES: usize = 24;

/// An index into a list, as Python takes it: any integer, negative ones counting from the
/// end (`-1` is the last element). Implemented for every primitive integer type, so
/// `list.get(i)` takes a `usize` as well as `-1`.
///
/// ```
/// use shmproc::shared::SharedList;
/// let l = SharedList::<u8>::new()?;
/// l.extend([1, 2, 3])?;
/// let i: usize = 1;
/// assert_eq!(l.get(i)?, 2); // a usize
/// assert_eq!(l.get(-1)?, 3); // an i32 (a literal's default): from the end
/// assert!(l.get(u64::MAX).is_err()); // out of range, not wrapped
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait ListIndex: Copy {
    /// The index as an `i64` (values above `i64::MAX` become `i64::MAX`: out of range).
    fn to_i64(self) -> i64;
}

macro_rules! list_index {
    ($($t:ty),*) => {$(
        impl ListIndex for $t {
            #[inline(always)]
            fn to_i64(self) -> i64 {
                i64::try_from(self).unwrap_or(i64::MAX)
            }
        }
    )*};
}
list_index!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

impl Word for ListGeometry {
    fn to_word(&self) -> u64 {
        ListGeometry::to_word(self)
    }
    fn from_word(w: u64) -> Option<ListGeometry> {
        ListGeometry::from_word(w).ok()
    }
}

/// What the three list kinds share as objects: the state is a [`RawList`], the parameter
/// its geometry (recorded in the directory and in the state, checked to agree on open).
macro_rules! list_object {
    ($($gen:ident),* ; $ty:ty, $name:expr, $fp:expr, $bound:path) => {
        impl<$($gen: $bound),*> Object for $ty {
            type State = RawList;
            type Params = ListGeometry;
            const KIND: ObjectKind = ObjectKind::SharedList;

            fn type_name() -> Cow<'static, str> {
                $name
            }

            fn fingerprint() -> u64 {
                $fp
            }

            fn check(g: &ListGeometry, raw: &RawList) -> Result<()> {
                if raw.geometry_word() != g.to_word() {
                    return Err(Error::Corrupt(format!(
                        "list geometry {:#x} in the directory, {:#x} in the list",
                        g.to_word(),
                        raw.geometry_word()
                    )));
                }
                Ok(())
            }

            fn init(g: &ListGeometry, mut fresh: Fresh<'_, RawList>) {
                fresh.write(RawList::new(*g));
            }

            fn inspect(raw: &RawList, g: &ListGeometry, out: &mut Inspect) {
                out.field("len", raw.len());
                out.field("chunks", raw.chunk_count());
                out.field("writer", raw.holder());
                out.field("repairs", raw.repairs());
                if g.bytes {
                    out.field("inline", g.elem);
                } else {
                    out.field("element_bytes", g.elem);
                }
            }
        }
    };
}

list_object!(T; SharedList<T>,
    format!("SharedList<{}>", core::any::type_name::<T>()).into(),
    fingerprint_sized::<T>(), Sized);
list_object!(; ByteList, "ByteList".into(), fingerprint::<ByteList>(), Sized);
#[cfg(feature = "serde")]
list_object!(T; SerdeList<T>,
    format!("SerdeList<{}>", core::any::type_name::<T>()).into(),
    fingerprint::<SerdeList<T>>(), Sized);

/// The list algorithm over an object's state, in its arena.
#[inline]
fn core<O: Object<State = RawList, Params = ListGeometry>>(
    obj: &Obj<O>,
    spin: SpinPolicy,
) -> ListCore<'_, Arena, Procfs> {
    ListCore::with_geometry(obj, obj.block().arena(), *obj.params(), Procfs, spin)
}

// ---------------------------------------------------------------------------------------
// SharedList<T>

/// A list of plain-data values in shared memory: Python's `Manager().list()` (or
/// `ShareableList`) of numbers, without the manager process.
///
/// Elements are any [`bytemuck::Pod`] type (integers, floats, arrays and `#[repr(C)]`
/// structs of them), stored in place: `get` is a few loads and no allocation. The type is
/// recorded in the arena: opening the list as another `T` is an error. Values are
/// compared by their bytes (`remove`, `index`, `count`): `0.0` and `-0.0` differ, a NaN
/// equals itself.
///
/// The handle is `Clone + Send + Sync`; make the list before forking and every child
/// shares it. See the [module docs](self) for what readers and writers cost and what a
/// killed process leaves.
///
/// # Example
/// ```
/// use shmproc::shared::SharedList;
/// let l = SharedList::<u64>::new()?;
/// l.extend([3, 1, 4])?;
/// l.append(1)?;
/// assert_eq!(l.get(-1)?, 1); // the last
/// l.insert(0, 9)?;
/// assert_eq!(l.to_vec()?, [9, 3, 1, 4, 1]);
/// l.remove(&1)?; // the first 1
/// assert_eq!(l.pop()?, 1);
/// assert_eq!(l.slice(1..)?, [3, 4]);
/// assert_eq!(l.len(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SharedList<T> {
    obj: Obj<SharedList<T>>,
    spin: SpinPolicy,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for SharedList<T> {
    fn clone(&self) -> Self {
        SharedList {
            obj: self.obj.clone(),
            spin: self.spin,
            _t: PhantomData,
        }
    }
}

impl<T: Pod> fmt::Debug for SharedList<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.obj.debug(f, &[])
    }
}

impl<T: Pod> Handle for SharedList<T> {
    fn from_obj(obj: Obj<Self>) -> Result<Self> {
        let want = ListGeometry::fixed(core::mem::size_of::<T>())?;
        if *obj.params() != want {
            return Err(Error::Corrupt(format!(
                "{} has the geometry {:?}, its type needs {want:?}",
                Self::type_name(),
                obj.params()
            )));
        }
        Ok(SharedList {
            obj,
            spin: SpinPolicy::default(),
            _t: PhantomData,
        })
    }

    fn obj(&self) -> &Obj<Self> {
        &self.obj
    }
}

impl<T: Pod> SharedList<T> {
    /// An empty list in the [global arena](Arena::global).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `T` is larger than
    /// [`MAX_FIXED`](crate::raw::list::MAX_FIXED) bytes (use a [`ByteList`]); the global
    /// arena cannot be made or is full.
    pub fn new() -> Result<Self> {
        Self::new_in(&Arena::global()?)
    }

    /// An empty list in `arena`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    ///
    /// ```
    /// use shmproc::{Arena, shared::SharedList};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// let l = SharedList::<[f32; 3]>::new_in(&arena)?;
    /// l.push([1.0, 2.0, 3.0])?;
    /// assert_eq!(l.get(0)?, [1.0, 2.0, 3.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new_in(arena: &Arena) -> Result<Self> {
        object::make(arena, None, ListGeometry::fixed(core::mem::size_of::<T>())?)
    }

    /// An empty list named `name` in `arena`, for [`open`](Self::open) to find.
    ///
    /// # Errors
    /// As [`new`](Self::new); [`Error::AlreadyExists`]; [`Error::InvalidName`].
    pub fn create(arena: &Arena, name: &str) -> Result<Self> {
        object::make(
            arena,
            Some(name),
            ListGeometry::fixed(core::mem::size_of::<T>())?,
        )
    }

    /// The list named `name` in `arena`.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::WrongType`] when `name` is not a `SharedList<T>` (of
    /// this `T`); [`Error::Corrupt`] when its geometry is damaged.
    ///
    /// ```
    /// use shmproc::{Arena, Error, shared::SharedList};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// SharedList::<u32>::create(&arena, "ids")?.push(7)?;
    /// assert_eq!(SharedList::<u32>::open(&arena, "ids")?.get(0)?, 7);
    /// assert!(matches!(SharedList::<u64>::open(&arena, "ids"), Err(Error::WrongType { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(arena: &Arena, name: &str) -> Result<Self> {
        object::find(arena, name)
    }

    /// Sets how many optimistic attempts a reader makes before it takes the lock (and how
    /// long a writer spins for the lock before it sleeps). [`SpinPolicy::NEVER`] makes
    /// every reader take the lock at once.
    pub fn set_spin(&mut self, spin: SpinPolicy) {
        self.spin = spin;
    }

    #[inline]
    fn core(&self) -> ListCore<'_, Arena, Procfs> {
        core(&self.obj, self.spin)
    }

    /// Appends `value` (Python's `append`).
    ///
    /// # Errors
    /// [`ListError::OutOfSpace`] when the arena cannot hold the list's next chunk;
    /// [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::SharedList::<i32>::new()?;
    /// l.push(-5)?;
    /// assert_eq!(l.to_vec()?, [-5]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn push(&self, value: T) -> Result<(), ListError> {
        self.core().push(bytemuck::bytes_of(&value))
    }

    /// [`push`](Self::push), by Python's name.
    ///
    /// # Errors
    /// As [`push`](Self::push).
    ///
    /// ```
    /// let l = shmproc::shared::SharedList::<u8>::new()?;
    /// l.append(1)?;
    /// assert_eq!(l.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn append(&self, value: T) -> Result<(), ListError> {
        self.push(value)
    }

    /// The element at `index` (negative: from the end).
    ///
    /// # Errors
    /// [`ListError::IndexOutOfRange`]; [`ListError::Corrupt`].
    ///
    /// ```
    /// use shmproc::shared::{ListError, SharedList};
    /// let l = SharedList::<u64>::new()?;
    /// l.extend([10, 20, 30])?;
    /// assert_eq!(l.get(0)?, 10);
    /// assert_eq!(l.get(-1)?, 30);
    /// assert_eq!(l.get(3), Err(ListError::IndexOutOfRange { index: 3, len: 3 }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn get(&self, index: impl ListIndex) -> Result<T, ListError> {
        self.core().get_pod(index.to_i64())
    }

    /// Replaces the element at `index` (negative: from the end).
    ///
    /// # Errors
    /// [`ListError::IndexOutOfRange`]; [`ListError::OutOfSpace`] (an element of more than
    /// 8 bytes is staged past the end, which may need a chunk); [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::SharedList::<u64>::new()?;
    /// l.extend([1, 2, 3])?;
    /// l.set(-2, 20)?;
    /// assert_eq!(l.to_vec()?, [1, 20, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set(&self, index: impl ListIndex, value: T) -> Result<(), ListError> {
        self.core().set_pod(index.to_i64(), &value)
    }

    /// Removes and returns the last element.
    ///
    /// # Errors
    /// [`ListError::Empty`]; [`ListError::Corrupt`].
    ///
    /// ```
    /// use shmproc::shared::{ListError, SharedList};
    /// let l = SharedList::<u64>::new()?;
    /// l.push(1)?;
    /// assert_eq!(l.pop(), Ok(1));
    /// assert_eq!(l.pop(), Err(ListError::Empty));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pop(&self) -> Result<T, ListError> {
        self.pop_at(-1)
    }

    /// Removes and returns the element at `index` (negative: from the end); the elements
    /// after it move down (Python's `pop(i)`).
    ///
    /// # Errors
    /// [`ListError::Empty`]; [`ListError::IndexOutOfRange`]; [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::SharedList::<u64>::new()?;
    /// l.extend([1, 2, 3])?;
    /// assert_eq!(l.pop_at(0)?, 1);
    /// assert_eq!(l.to_vec()?, [2, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pop_at(&self, index: impl ListIndex) -> Result<T, ListError> {
        let mut b = Vec::with_capacity(core::mem::size_of::<T>());
        self.core().pop_at(index.to_i64(), &mut b)?;
        decode_pod(&b)
    }

    /// Inserts `value` before `index` (Python's `insert`: negative counts from the end,
    /// an index past either end inserts at that end).
    ///
    /// # Errors
    /// [`ListError::OutOfSpace`]; [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::SharedList::<u64>::new()?;
    /// l.extend([1, 3])?;
    /// l.insert(1, 2)?;
    /// l.insert(-100, 0)?;
    /// l.insert(100, 4)?;
    /// assert_eq!(l.to_vec()?, [0, 1, 2, 3, 4]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert(&self, index: impl ListIndex, value: T) -> Result<(), ListError> {
        self.core()
            .insert(index.to_i64(), bytemuck::bytes_of(&value))
    }

    /// Removes the first element equal to `value` (Python's `remove`).
    ///
    /// # Errors
    /// [`ListError::NotFound`]; [`ListError::Corrupt`].
    ///
    /// ```
    /// use shmproc::shared::{ListError, SharedList};
    /// let l = SharedList::<u64>::new()?;
    /// l.extend([5, 6, 5])?;
    /// l.remove(&5)?;
    /// assert_eq!(l.to_vec()?, [6, 5]);
    /// assert_eq!(l.remove(&7), Err(ListError::NotFound));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove(&self, value: &T) -> Result<(), ListError> {
        self.core().remove(bytemuck::bytes_of(value)).map(drop)
    }

    /// The index of the first element equal to `value` (Python's `index`).
    ///
    /// # Errors
    /// [`ListError::NotFound`]; [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::SharedList::<u8>::new()?;
    /// l.extend(*b"ab")?;
    /// assert_eq!(l.index(&b'b')?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn index(&self, value: &T) -> Result<usize, ListError> {
        Ok(self.core().index(bytemuck::bytes_of(value))? as usize)
    }

    /// True when an element equals `value` (Python's `in`); false for a corrupt list.
    ///
    /// ```
    /// let l = shmproc::shared::SharedList::<u16>::new()?;
    /// l.push(3)?;
    /// assert!(l.contains(&3) && !l.contains(&4));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn contains(&self, value: &T) -> bool {
        self.index(value).is_ok()
    }

    /// How many elements equal `value` (Python's `count`).
    ///
    /// # Errors
    /// [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::SharedList::<u8>::new()?;
    /// l.extend([1, 2, 1])?;
    /// assert_eq!(l.count(&1)?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn count(&self, value: &T) -> Result<usize, ListError> {
        Ok(self.core().count(bytemuck::bytes_of(value))? as usize)
    }

    /// Elements in the list (a snapshot).
    ///
    /// ```
    /// let l = shmproc::shared::SharedList::<u64>::new()?;
    /// assert_eq!(l.len(), 0);
    /// l.push(1)?;
    /// assert_eq!(l.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn len(&self) -> usize {
        self.core().len() as usize
    }

    /// True when the list is empty (a snapshot).
    ///
    /// ```
    /// assert!(shmproc::shared::SharedList::<u64>::new()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many times a process found this list's lock held by a writer that had died,
    /// and finished or undid that writer's operation (a statistic; see the
    /// [module docs](self)).
    ///
    /// ```
    /// assert_eq!(shmproc::shared::SharedList::<u64>::new()?.repairs(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn repairs(&self) -> u64 {
        self.obj.repairs()
    }

    /// Removes every element and gives the list's memory back to the arena.
    ///
    /// # Errors
    /// [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::SharedList::<u64>::new()?;
    /// l.extend(0..1000)?;
    /// l.clear()?;
    /// assert!(l.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clear(&self) -> Result<(), ListError> {
        self.core().clear()
    }

    /// Appends every value, holding the lock once (Python's `extend`). A process killed
    /// inside leaves a prefix of the values appended.
    ///
    /// # Errors
    /// As [`push`](Self::push): the values before the one that failed stay appended.
    ///
    /// ```
    /// let l = shmproc::shared::SharedList::<u64>::new()?;
    /// l.extend((1..=3).map(|i| i * i))?;
    /// assert_eq!(l.to_vec()?, [1, 4, 9]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn extend(&self, values: impl IntoIterator<Item = T>) -> Result<(), ListError> {
        self.core()
            .extend_by(values, |v| bytemuck::bytes_of(v))
            .map(drop)
    }

    /// The elements `range` as one consistent copy: Python's `list[a:b]` (negative bounds
    /// count from the end, bounds past either end are clamped, so it never fails on them).
    ///
    /// # Errors
    /// [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::SharedList::<u64>::new()?;
    /// l.extend(0..10)?;
    /// assert_eq!(l.slice(2..5)?, [2, 3, 4]);
    /// assert_eq!(l.slice(-2..)?, [8, 9]);
    /// assert_eq!(l.slice(..=-9)?, [0, 1]);
    /// assert_eq!(l.slice(5..100)?.len(), 5);
    /// assert!(l.slice(7..3)?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn slice(&self, range: impl RangeBounds<i64>) -> Result<Vec<T>, ListError> {
        self.core().slice_pod(&range)
    }

    /// Every element, as one consistent copy.
    ///
    /// # Errors
    /// [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::SharedList::<u64>::new()?;
    /// l.extend([1, 2])?;
    /// assert_eq!(l.to_vec()?, vec![1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_vec(&self) -> Result<Vec<T>, ListError> {
        self.slice(..)
    }

    /// Iterates by index, as Python's list iterator does: each step reads the element at
    /// the next index, so it sees what other processes append meanwhile, and ends at the
    /// first index past the end. For one consistent copy, use [`to_vec`](Self::to_vec).
    ///
    /// ```
    /// let l = shmproc::shared::SharedList::<u64>::new()?;
    /// l.extend([1, 2, 3])?;
    /// assert_eq!(l.iter().sum::<u64>(), 6);
    /// for x in &l {
    ///     assert!(x > 0);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&self) -> Iter<'_, T> {
        Iter {
            list: self,
            next: 0,
        }
    }
}

fn decode_pod<T: Pod>(b: &[u8]) -> Result<T, ListError> {
    if b.len() != core::mem::size_of::<T>() {
        return Err(ListError::WrongSize {
            len: b.len() as u64,
            expected: core::mem::size_of::<T>() as u64,
        });
    }
    Ok(bytemuck::pod_read_unaligned(b))
}

/// The iterator of [`SharedList::iter`]: element by element, by index.
pub struct Iter<'a, T> {
    list: &'a SharedList<T>,
    next: u64,
}

impl<T: Pod> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        let v = self.list.get(self.next).ok()?;
        self.next += 1;
        Some(v)
    }
}

impl<T> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").field("next", &self.next).finish()
    }
}

impl<'a, T: Pod> IntoIterator for &'a SharedList<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

// ---------------------------------------------------------------------------------------
// ByteList

/// A list of byte strings of any length in shared memory: Python's `Manager().list()` of
/// `bytes`, without the manager process.
///
/// An element of up to [`INLINE_BYTES`] bytes lives in its slot; a longer one (a 1 MiB
/// image, a 1 GiB file) in a block of the arena of its own, freed when the element is
/// popped, removed, replaced or cleared, or with the list.
///
/// # Example
/// ```
/// use shmproc::shared::ByteList;
/// let l = ByteList::new()?;
/// l.push(b"short")?;
/// l.push(&vec![7u8; 1 << 20])?; // 1 MiB: a block of its own
/// assert_eq!(l.get(0)?, b"short");
/// assert_eq!(l.get(-1)?.len(), 1 << 20);
/// assert_eq!(l.pop()?.len(), 1 << 20);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ByteList {
    obj: Obj<ByteList>,
    spin: SpinPolicy,
}

impl fmt::Debug for ByteList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.obj.debug(f, &[])
    }
}

impl Handle for ByteList {
    fn from_obj(obj: Obj<Self>) -> Result<Self> {
        if !obj.params().bytes {
            return Err(Error::Corrupt(format!(
                "ByteList with the geometry of a list of plain data: {:?}",
                obj.params()
            )));
        }
        Ok(ByteList {
            obj,
            spin: SpinPolicy::default(),
        })
    }

    fn obj(&self) -> &Obj<Self> {
        &self.obj
    }
}

fn byte_geometry() -> Result<ListGeometry> {
    ListGeometry::bytes(INLINE_BYTES)
}

impl ByteList {
    /// An empty list in the [global arena](Arena::global).
    ///
    /// # Errors
    /// The global arena cannot be made or is full.
    pub fn new() -> Result<ByteList> {
        Self::new_in(&Arena::global()?)
    }

    /// An empty list in `arena`.
    ///
    /// # Errors
    /// The arena is full.
    ///
    /// ```
    /// use shmproc::{Arena, shared::ByteList};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// let l = ByteList::new_in(&arena)?;
    /// l.push(b"x")?;
    /// assert_eq!(l.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new_in(arena: &Arena) -> Result<ByteList> {
        object::make(arena, None, byte_geometry()?)
    }

    /// An empty list named `name` in `arena`, for [`open`](Self::open) to find.
    ///
    /// # Errors
    /// As [`new_in`](Self::new_in); [`Error::AlreadyExists`]; [`Error::InvalidName`].
    pub fn create(arena: &Arena, name: &str) -> Result<ByteList> {
        object::make(arena, Some(name), byte_geometry()?)
    }

    /// The list named `name` in `arena`.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::WrongType`] when `name` is not a `ByteList`;
    /// [`Error::Corrupt`] when its geometry is damaged.
    ///
    /// ```
    /// use shmproc::{Arena, shared::ByteList};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// ByteList::create(&arena, "log")?.push(b"started")?;
    /// assert_eq!(ByteList::open(&arena, "log")?.get(0)?, b"started");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(arena: &Arena, name: &str) -> Result<ByteList> {
        object::find(arena, name)
    }

    /// As [`SharedList::set_spin`].
    pub fn set_spin(&mut self, spin: SpinPolicy) {
        self.spin = spin;
    }

    #[inline]
    fn core(&self) -> ListCore<'_, Arena, Procfs> {
        core(&self.obj, self.spin)
    }

    /// Appends `elem`.
    ///
    /// # Errors
    /// [`ListError::OutOfSpace`] when the arena cannot hold it; [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::ByteList::new()?;
    /// l.push(b"a")?;
    /// l.push(b"")?;
    /// assert_eq!(l.to_vec()?, [b"a".to_vec(), vec![]]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn push(&self, elem: &[u8]) -> Result<(), ListError> {
        self.core().push(elem)
    }

    /// [`push`](Self::push), by Python's name.
    ///
    /// # Errors
    /// As [`push`](Self::push).
    ///
    /// ```
    /// let l = shmproc::shared::ByteList::new()?;
    /// l.append(b"x")?;
    /// assert_eq!(l.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn append(&self, elem: &[u8]) -> Result<(), ListError> {
        self.push(elem)
    }

    /// A copy of the element at `index` (negative: from the end).
    ///
    /// # Errors
    /// [`ListError::IndexOutOfRange`]; [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::ByteList::new()?;
    /// l.extend([&b"a"[..], b"b"])?;
    /// assert_eq!(l.get(-1)?, b"b");
    /// assert!(l.get(2).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(&self, index: impl ListIndex) -> Result<Vec<u8>, ListError> {
        let mut v = Vec::new();
        self.get_into(index, &mut v)?;
        Ok(v)
    }

    /// Copies the element at `index` into `out` (cleared first), reusing its allocation.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    ///
    /// ```
    /// let l = shmproc::shared::ByteList::new()?;
    /// l.push(b"abc")?;
    /// let mut buf = Vec::with_capacity(64);
    /// l.get_into(0, &mut buf)?;
    /// assert_eq!(buf, b"abc");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_into(&self, index: impl ListIndex, out: &mut Vec<u8>) -> Result<(), ListError> {
        self.core().get(index.to_i64(), out)
    }

    /// Replaces the element at `index` (negative: from the end).
    ///
    /// # Errors
    /// [`ListError::IndexOutOfRange`]; [`ListError::OutOfSpace`]; [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::ByteList::new()?;
    /// l.push(b"old")?;
    /// l.set(0, b"new")?;
    /// assert_eq!(l.get(0)?, b"new");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set(&self, index: impl ListIndex, elem: &[u8]) -> Result<(), ListError> {
        self.core().set(index.to_i64(), elem)
    }

    /// Removes and returns the last element.
    ///
    /// # Errors
    /// [`ListError::Empty`]; [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::ByteList::new()?;
    /// l.push(b"z")?;
    /// assert_eq!(l.pop()?, b"z");
    /// assert!(l.pop().is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pop(&self) -> Result<Vec<u8>, ListError> {
        self.pop_at(-1)
    }

    /// Removes and returns the element at `index` (negative: from the end).
    ///
    /// # Errors
    /// [`ListError::Empty`]; [`ListError::IndexOutOfRange`]; [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::ByteList::new()?;
    /// l.extend([&b"a"[..], b"b", b"c"])?;
    /// assert_eq!(l.pop_at(1)?, b"b");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pop_at(&self, index: impl ListIndex) -> Result<Vec<u8>, ListError> {
        let mut v = Vec::new();
        self.core().pop_at(index.to_i64(), &mut v)?;
        Ok(v)
    }

    /// Inserts `elem` before `index` (Python's `insert`: clamped, never an index error).
    ///
    /// # Errors
    /// [`ListError::OutOfSpace`]; [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::ByteList::new()?;
    /// l.push(b"b")?;
    /// l.insert(0, b"a")?;
    /// assert_eq!(l.get(0)?, b"a");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert(&self, index: impl ListIndex, elem: &[u8]) -> Result<(), ListError> {
        self.core().insert(index.to_i64(), elem)
    }

    /// Removes the first element equal to `elem`.
    ///
    /// # Errors
    /// [`ListError::NotFound`]; [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::ByteList::new()?;
    /// l.extend([&b"a"[..], b"b"])?;
    /// l.remove(b"a")?;
    /// assert_eq!(l.to_vec()?, [b"b".to_vec()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove(&self, elem: &[u8]) -> Result<(), ListError> {
        self.core().remove(elem).map(drop)
    }

    /// The index of the first element equal to `elem`.
    ///
    /// # Errors
    /// [`ListError::NotFound`]; [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::ByteList::new()?;
    /// l.extend([&b"a"[..], b"b"])?;
    /// assert_eq!(l.index(b"b")?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn index(&self, elem: &[u8]) -> Result<usize, ListError> {
        Ok(self.core().index(elem)? as usize)
    }

    /// True when an element equals `elem`; false for a corrupt list.
    ///
    /// ```
    /// let l = shmproc::shared::ByteList::new()?;
    /// l.push(b"a")?;
    /// assert!(l.contains(b"a"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn contains(&self, elem: &[u8]) -> bool {
        self.index(elem).is_ok()
    }

    /// How many elements equal `elem`.
    ///
    /// # Errors
    /// [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::ByteList::new()?;
    /// l.extend([&b"a"[..], b"a"])?;
    /// assert_eq!(l.count(b"a")?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn count(&self, elem: &[u8]) -> Result<usize, ListError> {
        Ok(self.core().count(elem)? as usize)
    }

    /// Elements in the list (a snapshot).
    ///
    /// ```
    /// assert_eq!(shmproc::shared::ByteList::new()?.len(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.core().len() as usize
    }

    /// True when the list is empty (a snapshot).
    ///
    /// ```
    /// assert!(shmproc::shared::ByteList::new()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// As [`SharedList::repairs`].
    ///
    /// ```
    /// assert_eq!(shmproc::shared::ByteList::new()?.repairs(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn repairs(&self) -> u64 {
        self.obj.repairs()
    }

    /// Removes every element and gives the list's memory back to the arena.
    ///
    /// # Errors
    /// [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::ByteList::new()?;
    /// l.push(&[1; 100])?;
    /// l.clear()?;
    /// assert!(l.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clear(&self) -> Result<(), ListError> {
        self.core().clear()
    }

    /// Appends every element, holding the lock once.
    ///
    /// # Errors
    /// As [`push`](Self::push): the elements before the one that failed stay appended.
    ///
    /// ```
    /// let l = shmproc::shared::ByteList::new()?;
    /// l.extend(["x", "yy"])?;
    /// assert_eq!(l.get(1)?, b"yy");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn extend<E: AsRef<[u8]>>(
        &self,
        elems: impl IntoIterator<Item = E>,
    ) -> Result<(), ListError> {
        self.core().extend(elems).map(drop)
    }

    /// The elements `range` (Python's `list[a:b]`) as one consistent copy.
    ///
    /// # Errors
    /// [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::ByteList::new()?;
    /// l.extend(["a", "b", "c"])?;
    /// assert_eq!(l.slice(-2..)?, [b"b".to_vec(), b"c".to_vec()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn slice(&self, range: impl RangeBounds<i64>) -> Result<Vec<Vec<u8>>, ListError> {
        self.core().slice(&range)
    }

    /// Every element, as one consistent copy.
    ///
    /// # Errors
    /// [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::ByteList::new()?;
    /// l.push(b"a")?;
    /// assert_eq!(l.to_vec()?, [b"a".to_vec()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_vec(&self) -> Result<Vec<Vec<u8>>, ListError> {
        self.slice(..)
    }

    /// Iterates by index, as [`SharedList::iter`] does.
    ///
    /// ```
    /// let l = shmproc::shared::ByteList::new()?;
    /// l.extend(["ab", "c"])?;
    /// assert_eq!(l.iter().map(|e| e.len()).sum::<usize>(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&self) -> ByteIter<'_> {
        ByteIter {
            list: self,
            next: 0,
        }
    }
}

/// The iterator of [`ByteList::iter`]: element by element, by index.
#[derive(Debug)]
pub struct ByteIter<'a> {
    list: &'a ByteList,
    next: u64,
}

impl Iterator for ByteIter<'_> {
    type Item = Vec<u8>;
    fn next(&mut self) -> Option<Vec<u8>> {
        let v = self.list.get(self.next).ok()?;
        self.next += 1;
        Some(v)
    }
}

impl<'a> IntoIterator for &'a ByteList {
    type Item = Vec<u8>;
    type IntoIter = ByteIter<'a>;
    fn into_iter(self) -> ByteIter<'a> {
        self.iter()
    }
}

// ---------------------------------------------------------------------------------------
// SerdeList<T>

/// A list of any serde values in shared memory, encoded with postcard (feature `serde`):
/// Python's `Manager().list()` of arbitrary objects.
///
/// A [`ByteList`] underneath: an element whose encoding is longer than
/// [`INLINE_BYTES`] gets a block of its own. Elements are compared by their encoding
/// (`remove`, `index`, `count`): use types whose equal values encode equally.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use shmproc::shared::SerdeList;
/// let l = SerdeList::<(String, Vec<u32>)>::new()?;
/// l.push(&("primes".to_string(), vec![2, 3, 5, 7]))?;
/// l.push(&("empty".to_string(), vec![]))?;
/// assert_eq!(l.get(0)?.1, [2, 3, 5, 7]);
/// assert_eq!(l.pop()?.0, "empty");
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "serde")]
pub struct SerdeList<T> {
    inner: ByteList,
    _t: PhantomData<fn() -> T>,
}

#[cfg(feature = "serde")]
impl<T> Clone for SerdeList<T> {
    fn clone(&self) -> Self {
        SerdeList {
            inner: self.inner.clone(),
            _t: PhantomData,
        }
    }
}

#[cfg(feature = "serde")]
impl<T> fmt::Debug for SerdeList<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SerdeList")
            .field("len", &self.inner.len())
            .finish()
    }
}

#[cfg(feature = "serde")]
impl<T> Handle for SerdeList<T> {
    fn from_obj(obj: Obj<Self>) -> Result<Self> {
        Ok(SerdeList {
            inner: ByteList::from_obj(obj.recast())?,
            _t: PhantomData,
        })
    }

    fn obj(&self) -> &Obj<Self> {
        self.inner.obj.recast_ref()
    }
}

#[cfg(feature = "serde")]
impl<T: serde::Serialize + serde::de::DeserializeOwned> SerdeList<T> {
    /// An empty list in the [global arena](Arena::global).
    ///
    /// # Errors
    /// The global arena cannot be made or is full.
    pub fn new() -> Result<Self> {
        Self::new_in(&Arena::global()?)
    }

    /// An empty list in `arena`.
    ///
    /// # Errors
    /// The arena is full.
    ///
    /// ```
    /// let arena = shmproc::Arena::anonymous(1 << 20)?;
    /// let l = shmproc::shared::SerdeList::<String>::new_in(&arena)?;
    /// l.push(&"hi".to_string())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new_in(arena: &Arena) -> Result<Self> {
        object::make(arena, None, byte_geometry()?)
    }

    /// An empty list named `name` in `arena`, for [`open`](Self::open) to find.
    ///
    /// # Errors
    /// As [`new_in`](Self::new_in); [`Error::AlreadyExists`]; [`Error::InvalidName`].
    pub fn create(arena: &Arena, name: &str) -> Result<Self> {
        object::make(arena, Some(name), byte_geometry()?)
    }

    /// The list named `name` in `arena`.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::WrongType`] when `name` is not a `SerdeList<T>` of
    /// this `T`; [`Error::Corrupt`].
    ///
    /// ```
    /// use shmproc::{Arena, shared::SerdeList};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// SerdeList::<String>::create(&arena, "names")?.push(&"ada".into())?;
    /// assert_eq!(SerdeList::<String>::open(&arena, "names")?.get(0)?, "ada");
    /// assert!(SerdeList::<u64>::open(&arena, "names").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(arena: &Arena, name: &str) -> Result<Self> {
        object::find(arena, name)
    }

    /// As [`SharedList::set_spin`].
    pub fn set_spin(&mut self, spin: SpinPolicy) {
        self.inner.set_spin(spin);
    }

    /// The list of encodings underneath.
    pub fn as_byte_list(&self) -> &ByteList {
        &self.inner
    }

    fn enc(v: &T) -> Result<Vec<u8>, ListError> {
        postcard::to_allocvec(v).map_err(|e| ListError::Codec(e.to_string()))
    }

    fn dec(b: &[u8]) -> Result<T, ListError> {
        postcard::from_bytes(b).map_err(|e| ListError::Codec(e.to_string()))
    }

    /// Appends `value`.
    ///
    /// # Errors
    /// [`ListError::Codec`] when it cannot be encoded; as [`ByteList::push`].
    ///
    /// ```
    /// let l = shmproc::shared::SerdeList::<Option<u8>>::new()?;
    /// l.push(&None)?;
    /// assert_eq!(l.get(0)?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn push(&self, value: &T) -> Result<(), ListError> {
        self.inner.push(&Self::enc(value)?)
    }

    /// [`push`](Self::push), by Python's name.
    ///
    /// # Errors
    /// As [`push`](Self::push).
    ///
    /// ```
    /// let l = shmproc::shared::SerdeList::<String>::new()?;
    /// l.append(&"x".into())?;
    /// assert_eq!(l.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn append(&self, value: &T) -> Result<(), ListError> {
        self.push(value)
    }

    /// The element at `index` (negative: from the end).
    ///
    /// # Errors
    /// [`ListError::IndexOutOfRange`]; [`ListError::Codec`] when it does not decode as a
    /// `T`; [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::SerdeList::<Vec<i32>>::new()?;
    /// l.push(&vec![-1, 2])?;
    /// assert_eq!(l.get(-1)?, [-1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(&self, index: impl ListIndex) -> Result<T, ListError> {
        Self::dec(&self.inner.get(index)?)
    }

    /// Replaces the element at `index`.
    ///
    /// # Errors
    /// As [`push`](Self::push); [`ListError::IndexOutOfRange`].
    ///
    /// ```
    /// let l = shmproc::shared::SerdeList::<String>::new()?;
    /// l.push(&"a".into())?;
    /// l.set(0, &"b".into())?;
    /// assert_eq!(l.get(0)?, "b");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set(&self, index: impl ListIndex, value: &T) -> Result<(), ListError> {
        self.inner.set(index, &Self::enc(value)?)
    }

    /// Removes and returns the last element.
    ///
    /// # Errors
    /// [`ListError::Empty`]; [`ListError::Codec`]; [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::SerdeList::<String>::new()?;
    /// l.push(&"a".into())?;
    /// assert_eq!(l.pop()?, "a");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pop(&self) -> Result<T, ListError> {
        Self::dec(&self.inner.pop()?)
    }

    /// Removes and returns the element at `index`.
    ///
    /// # Errors
    /// As [`pop`](Self::pop); [`ListError::IndexOutOfRange`].
    ///
    /// ```
    /// let l = shmproc::shared::SerdeList::<u64>::new()?;
    /// l.extend([1, 2])?;
    /// assert_eq!(l.pop_at(0)?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pop_at(&self, index: impl ListIndex) -> Result<T, ListError> {
        Self::dec(&self.inner.pop_at(index)?)
    }

    /// Inserts `value` before `index` (clamped, as Python's `insert`).
    ///
    /// # Errors
    /// As [`push`](Self::push).
    ///
    /// ```
    /// let l = shmproc::shared::SerdeList::<u64>::new()?;
    /// l.push(&2)?;
    /// l.insert(0, &1)?;
    /// assert_eq!(l.to_vec()?, [1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert(&self, index: impl ListIndex, value: &T) -> Result<(), ListError> {
        self.inner.insert(index, &Self::enc(value)?)
    }

    /// Removes the first element whose encoding equals `value`'s.
    ///
    /// # Errors
    /// [`ListError::NotFound`]; [`ListError::Codec`]; [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::SerdeList::<String>::new()?;
    /// l.push(&"a".into())?;
    /// l.remove(&"a".into())?;
    /// assert!(l.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove(&self, value: &T) -> Result<(), ListError> {
        self.inner.remove(&Self::enc(value)?)
    }

    /// The index of the first element whose encoding equals `value`'s.
    ///
    /// # Errors
    /// [`ListError::NotFound`]; [`ListError::Codec`]; [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::SerdeList::<char>::new()?;
    /// l.extend(['a', 'b'])?;
    /// assert_eq!(l.index(&'b')?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn index(&self, value: &T) -> Result<usize, ListError> {
        self.inner.index(&Self::enc(value)?)
    }

    /// True when an element's encoding equals `value`'s.
    ///
    /// ```
    /// let l = shmproc::shared::SerdeList::<char>::new()?;
    /// l.push(&'a')?;
    /// assert!(l.contains(&'a'));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn contains(&self, value: &T) -> bool {
        self.index(value).is_ok()
    }

    /// How many elements' encodings equal `value`'s.
    ///
    /// # Errors
    /// [`ListError::Codec`]; [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::SerdeList::<char>::new()?;
    /// l.extend(['a', 'a'])?;
    /// assert_eq!(l.count(&'a')?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn count(&self, value: &T) -> Result<usize, ListError> {
        self.inner.count(&Self::enc(value)?)
    }

    /// Elements in the list (a snapshot).
    ///
    /// ```
    /// assert_eq!(shmproc::shared::SerdeList::<u8>::new()?.len(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when the list is empty (a snapshot).
    ///
    /// ```
    /// assert!(shmproc::shared::SerdeList::<u8>::new()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Removes every element.
    ///
    /// # Errors
    /// [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::SerdeList::<u8>::new()?;
    /// l.push(&1)?;
    /// l.clear()?;
    /// assert!(l.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clear(&self) -> Result<(), ListError> {
        self.inner.clear()
    }

    /// Appends every value, holding the lock once (all are encoded first).
    ///
    /// # Errors
    /// [`ListError::Codec`] (then nothing is appended); as [`ByteList::extend`].
    ///
    /// ```
    /// let l = shmproc::shared::SerdeList::<String>::new()?;
    /// l.extend(["a", "b"].map(String::from))?;
    /// assert_eq!(l.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn extend(&self, values: impl IntoIterator<Item = T>) -> Result<(), ListError> {
        let encoded = values
            .into_iter()
            .map(|v| Self::enc(&v))
            .collect::<Result<Vec<_>, _>>()?;
        self.inner.extend(encoded)
    }

    /// The elements `range` (Python's `list[a:b]`) as one consistent copy.
    ///
    /// # Errors
    /// [`ListError::Codec`]; [`ListError::Corrupt`].
    ///
    /// ```
    /// let l = shmproc::shared::SerdeList::<u64>::new()?;
    /// l.extend([1, 2, 3])?;
    /// assert_eq!(l.slice(1..)?, [2, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn slice(&self, range: impl RangeBounds<i64>) -> Result<Vec<T>, ListError> {
        self.inner
            .slice(range)?
            .iter()
            .map(|b| Self::dec(b))
            .collect()
    }

    /// Every element, as one consistent copy.
    ///
    /// # Errors
    /// As [`slice`](Self::slice).
    ///
    /// ```
    /// let l = shmproc::shared::SerdeList::<u64>::new()?;
    /// l.push(&1)?;
    /// assert_eq!(l.to_vec()?, [1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_vec(&self) -> Result<Vec<T>, ListError> {
        self.slice(..)
    }

    /// Iterates by index, as [`SharedList::iter`] does (ends at an element that does not
    /// decode).
    ///
    /// ```
    /// let l = shmproc::shared::SerdeList::<String>::new()?;
    /// l.extend(["a", "bc"].map(String::from))?;
    /// assert_eq!(l.iter().collect::<String>(), "abc");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&self) -> SerdeIter<'_, T> {
        SerdeIter {
            list: self,
            next: 0,
        }
    }
}

/// The iterator of [`SerdeList::iter`]: element by element, by index.
#[cfg(feature = "serde")]
pub struct SerdeIter<'a, T> {
    list: &'a SerdeList<T>,
    next: u64,
}

#[cfg(feature = "serde")]
impl<T: serde::Serialize + serde::de::DeserializeOwned> Iterator for SerdeIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        let v = self.list.get(self.next).ok()?;
        self.next += 1;
        Some(v)
    }
}

#[cfg(feature = "serde")]
impl<T> fmt::Debug for SerdeIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SerdeIter")
            .field("next", &self.next)
            .finish()
    }
}

#[cfg(feature = "serde")]
impl<'a, T: serde::Serialize + serde::de::DeserializeOwned> IntoIterator for &'a SerdeList<T> {
    type Item = T;
    type IntoIter = SerdeIter<'a, T>;
    fn into_iter(self) -> SerdeIter<'a, T> {
        self.iter()
    }
}

#[cfg(not(shmproc_loom))]
static_assertions::assert_impl_all!(SharedList<u64>: Clone, Send, Sync);
#[cfg(not(shmproc_loom))]
static_assertions::assert_impl_all!(ByteList: Clone, Send, Sync);
