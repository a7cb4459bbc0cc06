//! [`SharedDict`], [`TypedDict`] and `SerdeDict`: what Python's `Manager().dict()` is
//! used for, with no server process.
//!
//! A fixed-capacity hash table in one arena block: byte-string keys and values of bounded
//! size ([`SharedDict`]), plain-data keys and values ([`TypedDict`]), or any serde types
//! (`SerdeDict`, feature `serde`). Readers never block each other or writers (a seqlock);
//! writers take the table's robust lock, and a writer that dies mid-update is repaired by
//! the next one.
//!
//! The table, the seqlock and the recovery: [`raw::dict`](crate::raw::dict).

use crate::arena::{fingerprint_sized, Arena, ObjectKind};
use crate::error::{Error, Result};
use crate::object::{Fresh, Inspect, Obj, Object, Word};
pub use crate::raw::dict::DictError;
use crate::raw::dict::{DictGeometry, DictTable, RawDict, TABLE_OFFSET};
use crate::sync::liveness::Procfs;
use crate::sync::AtomicU64;
use crate::SpinPolicy;
use bytemuck::Pod;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
/// A table's geometry in the directory's word: its capacity (the rest is in the table,
/// where `dict_decode` reads and checks it).
impl Word for DictGeometry {
    fn to_word(&self) -> u64 {
        u64::from(self.capacity)
    }
    fn from_word(_: u64) -> Option<DictGeometry> {
        None
    }
}

/// What the three dict kinds share as objects: the table's geometry is the parameter,
/// recorded in the state block itself (and its capacity in the directory).
fn dict_size(g: &DictGeometry) -> Result<usize> {
    g.validate()?;
    Ok(g.block_bytes())
}

fn dict_decode(param: u64, raw: &RawDict) -> Result<DictGeometry> {
    let g = raw.geometry();
    g.validate()?;
    if u64::from(g.capacity) != param {
        return Err(Error::Corrupt(format!(
            "capacity {param} in the directory, {} in the table",
            g.capacity
        )));
    }
    Ok(g)
}

macro_rules! dict_object {
    ($($gen:ident),* ; $ty:ty, $name:expr, $fp:expr, $bound:path) => {
        impl<$($gen: $bound),*> Object for $ty {
            type State = RawDict;
            type Params = DictGeometry;
            const KIND: ObjectKind = ObjectKind::SharedDict;

            fn type_name() -> Cow<'static, str> {
                $name
            }

            fn fingerprint() -> u64 {
                $fp
            }

            fn size(g: &DictGeometry) -> Result<usize> {
                dict_size(g)
            }

            fn decode(param: u64, raw: &RawDict) -> Result<DictGeometry> {
                dict_decode(param, raw)
            }

            fn init(g: &DictGeometry, mut fresh: Fresh<'_, RawDict>) {
                // A zeroed table is all empty slots.
                fresh.write(RawDict::new(*g));
            }

            fn inspect(raw: &RawDict, g: &DictGeometry, out: &mut Inspect) {
                out.field("len", raw.len());
                out.field("capacity", g.capacity);
                out.field("max_key", g.max_key);
                out.field("max_value", g.max_value);
            }
        }
    };
}

dict_object!(; SharedDict, "SharedDict".into(), fingerprint_sized::<RawDict>(), Sized);
dict_object!(K, V; TypedDict<K, V>,
    format!("TypedDict<{}, {}>", core::any::type_name::<K>(), core::any::type_name::<V>()).into(),
    fingerprint_sized::<(K, V)>(), Pod);

/// A fixed-capacity hash map of byte strings in shared memory: Python's
/// `Manager().dict()` without the manager process.
///
/// Keys and values are byte strings of bounded size, fixed at creation. Readers never
/// block each other (see the [module docs](self)); writers are serialised by a robust
/// lock. [`update_with`](Self::update_with) is an atomic read-modify-write, so the
/// classic "read the count, sleep, write count - 1" race cannot happen.
///
/// The handle is `Clone + Send + Sync` and keeps working in every process `fork`ed after
/// it was made.
///
/// # Example
/// ```
/// use shmproc::shared::SharedDict;
/// let d = SharedDict::new(16, 32, 64)?; // 16 entries, keys <= 32 B, values <= 64 B
/// d.insert(b"num", b"10")?;
/// assert_eq!(d.get(b"num").as_deref(), Some(&b"10"[..]));
/// d.update_with(b"num", |v| {
///     let n: u32 = std::str::from_utf8(v?).ok()?.parse().ok()?;
///     Some((n - 1).to_string().into_bytes())
/// })?;
/// assert_eq!(d.get(b"num").as_deref(), Some(&b"9"[..]));
/// assert_eq!(d.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SharedDict {
    shm: Obj<SharedDict>,
    g: DictGeometry,
    spin: SpinPolicy,
}

impl fmt::Debug for SharedDict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shm.debug(f, &[])
    }
}

impl SharedDict {
    /// An empty dict in the [global arena](Arena::global) for `capacity` entries, keys
    /// of at most `max_key` bytes and values of at most `max_value` bytes.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for limits out of range (see [`DictGeometry::new`]); the
    /// global arena cannot be made or is full.
    pub fn new(capacity: usize, max_key: usize, max_value: usize) -> Result<SharedDict> {
        Self::new_in(&Arena::global()?, capacity, max_key, max_value)
    }

    /// As [`new`](Self::new), in `arena`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn new_in(
        arena: &Arena,
        capacity: usize,
        max_key: usize,
        max_value: usize,
    ) -> Result<SharedDict> {
        let g = DictGeometry::new(capacity, max_key, max_value)?;
        Ok(Self::from_obj(Obj::create(arena, None, g)?))
    }

    /// As [`new`](Self::new), named `name` in `arena` for [`open`](Self::open) to find.
    ///
    /// # Errors
    /// As [`new`](Self::new); [`Error::AlreadyExists`]; [`Error::InvalidName`].
    pub fn create(
        arena: &Arena,
        name: &str,
        capacity: usize,
        max_key: usize,
        max_value: usize,
    ) -> Result<SharedDict> {
        let g = DictGeometry::new(capacity, max_key, max_value)?;
        Ok(Self::from_obj(Obj::create(arena, Some(name), g)?))
    }

    /// The dict named `name` in `arena`.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::WrongType`] when `name` is not a byte dict;
    /// [`Error::Corrupt`] when its geometry is invalid or does not fit its block.
    ///
    /// ```
    /// use shmproc::{Arena, shared::SharedDict};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// SharedDict::create(&arena, "cfg", 8, 16, 16)?.insert(b"mode", b"fast")?;
    /// let d = SharedDict::open(&arena, "cfg")?;
    /// assert!(d.contains(b"mode"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(arena: &Arena, name: &str) -> Result<SharedDict> {
        Ok(Self::from_obj(Obj::open(arena, name)?))
    }

    /// The byte dict over `obj`: its own, or the table of a typed or serde dict (whose
    /// geometry the object layer has validated against the block).
    fn from_obj(shm: Obj<SharedDict>) -> SharedDict {
        let g = *shm.params();
        SharedDict {
            shm,
            g,
            spin: SpinPolicy::default(),
        }
    }

    /// Sets how long a reader retries optimistically (and a writer spins) before taking
    /// the lock.
    pub fn set_spin(&mut self, spin: SpinPolicy) {
        self.spin = spin;
    }

    #[inline]
    fn table(&self) -> DictTable<'_, Procfs> {
        // SAFETY: the block holds block_bytes() = TABLE_OFFSET + table_words() * 8 bytes
        // (checked at creation and on open), 8-byte aligned at TABLE_OFFSET; zeroed or
        // written memory is a valid AtomicU64, and the mapping lives as long as `shm`.
        let words = unsafe {
            core::slice::from_raw_parts(
                self.shm
                    .block()
                    .base()
                    .add(TABLE_OFFSET)
                    .cast::<AtomicU64>(),
                self.g.table_words(),
            )
        };
        DictTable::with_geometry(&self.shm, words, self.g, Procfs, self.spin)
    }

    /// The limits this dict was made with.
    pub fn geometry(&self) -> DictGeometry {
        self.g
    }

    /// Most entries the dict holds.
    pub fn capacity(&self) -> usize {
        self.g.capacity as usize
    }

    /// Inserts or replaces; returns true when a value was replaced.
    ///
    /// # Errors
    /// [`DictError::KeyTooLong`] / [`DictError::ValueTooLong`] beyond the dict's limits;
    /// [`DictError::Full`] for a new key when the dict holds `capacity` entries.
    ///
    /// ```
    /// use shmproc::shared::{DictError, SharedDict};
    /// let d = SharedDict::new(1, 4, 4)?;
    /// assert_eq!(d.insert(b"a", b"1"), Ok(false));
    /// assert_eq!(d.insert(b"a", b"2"), Ok(true));
    /// assert_eq!(d.insert(b"b", b"1"), Err(DictError::Full { capacity: 1 }));
    /// assert!(matches!(d.insert(b"a", b"12345"), Err(DictError::ValueTooLong { .. })));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<bool, DictError> {
        self.table().insert(key, value)
    }

    /// A copy of the value of `key`, or `None`.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let mut v = Vec::new();
        self.table().get(key, &mut v).then_some(v)
    }

    /// Copies the value of `key` into `out` (reusing its allocation); false when absent.
    pub fn get_into(&self, key: &[u8], out: &mut Vec<u8>) -> bool {
        self.table().get(key, out)
    }

    /// True when `key` is present.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.table().contains(key)
    }

    /// Removes `key`, returning its value.
    ///
    /// ```
    /// let d = shmproc::shared::SharedDict::new(4, 8, 8)?;
    /// d.insert(b"k", b"v")?;
    /// assert_eq!(d.remove(b"k"), Some(b"v".to_vec()));
    /// assert_eq!(d.remove(b"k"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove(&self, key: &[u8]) -> Option<Vec<u8>> {
        let mut v = Vec::new();
        self.table().remove(key, &mut v).then_some(v)
    }

    /// The number of entries (a snapshot).
    pub fn len(&self) -> usize {
        self.table().len()
    }

    /// True when empty (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every entry.
    pub fn clear(&self) {
        self.table().clear()
    }

    /// Inserts every pair under one hold of the lock (Python's `d.update(other)`).
    ///
    /// # Errors
    /// As [`insert`](Self::insert). Sizes are checked before anything is inserted; on
    /// [`DictError::Full`], the pairs before the one that did not fit stay inserted.
    ///
    /// ```
    /// let d = shmproc::shared::SharedDict::new(4, 8, 8)?;
    /// d.update([(&b"a"[..], &b"1"[..]), (b"b", b"2")])?;
    /// assert_eq!(d.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update<'k>(
        &self,
        pairs: impl IntoIterator<Item = (&'k [u8], &'k [u8])> + Clone,
    ) -> Result<(), DictError> {
        self.table().update(pairs)
    }

    /// Atomic read-modify-write: `f` gets the current value (or `None`) and returns the
    /// new value (or `None` to remove it). No other writer runs in between; readers are
    /// not stalled while `f` runs. Returns the previous value.
    ///
    /// # Errors
    /// As [`insert`](Self::insert) for the value `f` returns (the entry is then
    /// unchanged); [`DictError::KeyTooLong`] for the key.
    pub fn update_with(
        &self,
        key: &[u8],
        f: impl FnOnce(Option<&[u8]>) -> Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>, DictError> {
        self.table().update_with(key, f)
    }

    /// A consistent copy of every entry, in table order.
    pub fn snapshot(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.table().snapshot()
    }

    /// Iterates over a consistent snapshot (see [`snapshot`](Self::snapshot)).
    ///
    /// ```
    /// let d = shmproc::shared::SharedDict::new(4, 8, 8)?;
    /// d.insert(b"x", b"1")?;
    /// for (k, v) in d.iter() {
    ///     assert_eq!((k.as_slice(), v.as_slice()), (&b"x"[..], &b"1"[..]));
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&self) -> std::vec::IntoIter<(Vec<u8>, Vec<u8>)> {
        self.snapshot().into_iter()
    }

    /// The keys of a consistent snapshot.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        self.snapshot().into_iter().map(|(k, _)| k).collect()
    }
}

// ---------------------------------------------------------------------------------------
// Typed layer.

/// A [`SharedDict`] of plain-data keys and values (`K`, `V`: [`bytemuck::Pod`]), stored
/// as their bytes. Its type is recorded in the arena: opening it with other `K` / `V` is
/// an error.
///
/// ```
/// use shmproc::shared::TypedDict;
/// let d = TypedDict::<u32, [f64; 2]>::new(100)?;
/// d.insert(&7, &[1.0, 2.5])?;
/// d.update_with(&7, |v| v.map(|[n, x]| [n + 1.0, x * 2.0]))?;
/// assert_eq!(d.get(&7), Some([2.0, 5.0]));
/// assert_eq!(d.get(&8), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TypedDict<K, V> {
    inner: SharedDict,
    _kv: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for TypedDict<K, V> {
    fn clone(&self) -> Self {
        TypedDict {
            inner: self.inner.clone(),
            _kv: PhantomData,
        }
    }
}

impl<K, V> fmt::Debug for TypedDict<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedDict")
            .field("len", &self.inner.len())
            .finish()
    }
}

fn typed_geometry<K, V>(capacity: usize) -> Result<DictGeometry> {
    DictGeometry::new(
        capacity,
        core::mem::size_of::<K>().max(1),
        core::mem::size_of::<V>(),
    )
}

impl<K: Pod, V: Pod> TypedDict<K, V> {
    /// An empty dict for `capacity` entries in the global arena.
    ///
    /// # Errors
    /// As [`SharedDict::new`] (`K` may be at most [`MAX_KEY`](crate::raw::dict::MAX_KEY) bytes, `V` at most
    /// [`MAX_VALUE`](crate::raw::dict::MAX_VALUE)).
    pub fn new(capacity: usize) -> Result<Self> {
        Self::new_in(&Arena::global()?, capacity)
    }

    /// An empty dict for `capacity` entries in `arena`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn new_in(arena: &Arena, capacity: usize) -> Result<Self> {
        let g = typed_geometry::<K, V>(capacity)?;
        Ok(Self::wrap(Obj::create(arena, None, g)?))
    }

    /// An empty dict named `name` in `arena`.
    ///
    /// # Errors
    /// As [`new`](Self::new); [`Error::AlreadyExists`]; [`Error::InvalidName`].
    pub fn create(arena: &Arena, name: &str, capacity: usize) -> Result<Self> {
        let g = typed_geometry::<K, V>(capacity)?;
        Ok(Self::wrap(Obj::create(arena, Some(name), g)?))
    }

    /// The typed dict named `name` in `arena`.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::WrongType`] for another `K` / `V` or a byte dict;
    /// [`Error::Corrupt`] when its sizes do not match `K` and `V`.
    pub fn open(arena: &Arena, name: &str) -> Result<Self> {
        let obj = Obj::<Self>::open(arena, name)?;
        let (g, want) = (
            *obj.params(),
            typed_geometry::<K, V>(obj.params().capacity as usize)?,
        );
        if (g.max_key, g.max_value) != (want.max_key, want.max_value) {
            return Err(Error::Corrupt(format!(
                "typed dict {name:?} has key/value sizes that do not match its type"
            )));
        }
        Ok(Self::wrap(obj))
    }

    fn wrap(obj: Obj<Self>) -> Self {
        let inner = SharedDict::from_obj(obj.recast());
        TypedDict {
            inner,
            _kv: PhantomData,
        }
    }

    /// The byte dict underneath.
    pub fn as_bytes_dict(&self) -> &SharedDict {
        &self.inner
    }

    fn decode(bytes: &[u8]) -> Option<V> {
        (bytes.len() == core::mem::size_of::<V>()).then(|| bytemuck::pod_read_unaligned(bytes))
    }

    /// Inserts or replaces; true when a value was replaced.
    ///
    /// # Errors
    /// [`DictError::Full`].
    pub fn insert(&self, key: &K, value: &V) -> Result<bool, DictError> {
        self.inner
            .insert(bytemuck::bytes_of(key), bytemuck::bytes_of(value))
    }

    /// The value of `key`.
    pub fn get(&self, key: &K) -> Option<V> {
        let mut buf = Vec::with_capacity(core::mem::size_of::<V>());
        if self.inner.get_into(bytemuck::bytes_of(key), &mut buf) {
            Self::decode(&buf)
        } else {
            None
        }
    }

    /// True when `key` is present.
    pub fn contains(&self, key: &K) -> bool {
        self.inner.contains(bytemuck::bytes_of(key))
    }

    /// Removes `key`, returning its value.
    pub fn remove(&self, key: &K) -> Option<V> {
        self.inner
            .remove(bytemuck::bytes_of(key))
            .and_then(|b| Self::decode(&b))
    }

    /// Atomic read-modify-write (see [`SharedDict::update_with`]). Returns the previous
    /// value.
    ///
    /// # Errors
    /// [`DictError::Full`] when `f` adds a key to a full dict.
    pub fn update_with(
        &self,
        key: &K,
        f: impl FnOnce(Option<V>) -> Option<V>,
    ) -> Result<Option<V>, DictError> {
        let old = self.inner.update_with(bytemuck::bytes_of(key), |v| {
            f(v.and_then(Self::decode)).map(|n| bytemuck::bytes_of(&n).to_vec())
        })?;
        Ok(old.and_then(|b| Self::decode(&b)))
    }

    /// The number of entries (a snapshot).
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Removes every entry.
    pub fn clear(&self) {
        self.inner.clear()
    }

    /// A consistent copy of every entry.
    pub fn snapshot(&self) -> Vec<(K, V)> {
        self.inner
            .snapshot()
            .into_iter()
            .filter(|(k, _)| k.len() == core::mem::size_of::<K>())
            .filter_map(|(k, v)| Some((bytemuck::pod_read_unaligned(&k), Self::decode(&v)?)))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// Serde layer.

/// A [`SharedDict`] of any serde types, encoded with postcard (feature `serde`).
///
/// Keys are compared by their encoding, so use key types whose equal values encode
/// equally (integers, strings, tuples of them: not floats with `-0.0`, not hash sets).
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use shmproc::shared::SerdeDict;
/// let d = SerdeDict::<String, Vec<u32>>::new(8, 32, 64)?;
/// d.insert(&"primes".to_string(), &vec![2, 3, 5])?;
/// assert_eq!(d.get(&"primes".to_string())?, Some(vec![2, 3, 5]));
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "serde")]
pub struct SerdeDict<K, V> {
    inner: SharedDict,
    _kv: PhantomData<fn() -> (K, V)>,
}

#[cfg(feature = "serde")]
impl<K, V> Clone for SerdeDict<K, V> {
    fn clone(&self) -> Self {
        SerdeDict {
            inner: self.inner.clone(),
            _kv: PhantomData,
        }
    }
}

#[cfg(feature = "serde")]
impl<K, V> fmt::Debug for SerdeDict<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SerdeDict")
            .field("len", &self.inner.len())
            .finish()
    }
}

#[cfg(feature = "serde")]
dict_object!(K, V; SerdeDict<K, V>,
    format!("SerdeDict<{}, {}>", core::any::type_name::<K>(), core::any::type_name::<V>()).into(),
    crate::arena::fingerprint::<SerdeDict<K, V>>(), Sized);

#[cfg(feature = "serde")]
impl<K, V> SerdeDict<K, V>
where
    K: serde::Serialize + serde::de::DeserializeOwned,
    V: serde::Serialize + serde::de::DeserializeOwned,
{
    /// An empty dict in the global arena; `max_key` / `max_value` bound the *encoded*
    /// sizes.
    ///
    /// # Errors
    /// As [`SharedDict::new`].
    pub fn new(capacity: usize, max_key: usize, max_value: usize) -> Result<Self> {
        Self::new_in(&Arena::global()?, capacity, max_key, max_value)
    }

    /// As [`new`](Self::new), in `arena`.
    ///
    /// # Errors
    /// As [`SharedDict::new`].
    pub fn new_in(
        arena: &Arena,
        capacity: usize,
        max_key: usize,
        max_value: usize,
    ) -> Result<Self> {
        let g = DictGeometry::new(capacity, max_key, max_value)?;
        Ok(Self::wrap(Obj::create(arena, None, g)?))
    }

    /// As [`new`](Self::new), named `name` in `arena`.
    ///
    /// # Errors
    /// As [`SharedDict::create`].
    pub fn create(
        arena: &Arena,
        name: &str,
        capacity: usize,
        max_key: usize,
        max_value: usize,
    ) -> Result<Self> {
        let g = DictGeometry::new(capacity, max_key, max_value)?;
        Ok(Self::wrap(Obj::create(arena, Some(name), g)?))
    }

    /// The serde dict named `name` in `arena`.
    ///
    /// # Errors
    /// As [`SharedDict::open`].
    pub fn open(arena: &Arena, name: &str) -> Result<Self> {
        Ok(Self::wrap(Obj::open(arena, name)?))
    }

    fn wrap(obj: Obj<Self>) -> Self {
        let inner = SharedDict::from_obj(obj.recast());
        SerdeDict {
            inner,
            _kv: PhantomData,
        }
    }

    fn enc<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, DictError> {
        postcard::to_allocvec(v).map_err(|e| DictError::Codec(e.to_string()))
    }

    fn dec(b: &[u8]) -> Result<V, DictError> {
        postcard::from_bytes(b).map_err(|e| DictError::Codec(e.to_string()))
    }

    /// Inserts or replaces; true when a value was replaced.
    ///
    /// # Errors
    /// As [`SharedDict::insert`] (for the encoded sizes); [`DictError::Codec`].
    pub fn insert(&self, key: &K, value: &V) -> Result<bool, DictError> {
        self.inner.insert(&Self::enc(key)?, &Self::enc(value)?)
    }

    /// The value of `key`.
    ///
    /// # Errors
    /// [`DictError::Codec`] when the key cannot be encoded or the value decoded.
    pub fn get(&self, key: &K) -> Result<Option<V>, DictError> {
        self.inner
            .get(&Self::enc(key)?)
            .map(|b| Self::dec(&b))
            .transpose()
    }

    /// Removes `key`, returning its value.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn remove(&self, key: &K) -> Result<Option<V>, DictError> {
        self.inner
            .remove(&Self::enc(key)?)
            .map(|b| Self::dec(&b))
            .transpose()
    }

    /// Atomic read-modify-write (see [`SharedDict::update_with`]).
    ///
    /// # Errors
    /// As [`insert`](Self::insert).
    pub fn update_with(
        &self,
        key: &K,
        f: impl FnOnce(Option<V>) -> Option<V>,
    ) -> Result<(), DictError> {
        let mut err = None;
        self.inner.update_with(&Self::enc(key)?, |v| {
            let cur = v.and_then(|b| Self::dec(b).ok());
            match f(cur).map(|n| Self::enc(&n)) {
                Some(Ok(b)) => Some(b),
                Some(Err(e)) => {
                    err = Some(e);
                    v.map(<[u8]>::to_vec)
                }
                None => None,
            }
        })?;
        err.map_or(Ok(()), Err)
    }

    /// The number of entries (a snapshot).
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// A consistent copy of every entry that decodes.
    pub fn snapshot(&self) -> Vec<(K, V)> {
        self.inner
            .snapshot()
            .into_iter()
            .filter_map(|(k, v)| Some((postcard::from_bytes(&k).ok()?, Self::dec(&v).ok()?)))
            .collect()
    }
}
