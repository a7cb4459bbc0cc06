//! [`SharedDict`], [`TypedDict`] and `SerdeDict`: what Python's `Manager().dict()` is
//! used for, with no server process.
//!
//! A hash map in shared memory that grows from empty to millions of entries, with keys
//! and values of any size: byte strings ([`SharedDict`]), plain-data keys and values
//! ([`TypedDict`]), or any serde types (`SerdeDict`, feature `serde`). Readers never
//! block each other or writers (a seqlock), and a growing dict does not stall them;
//! writers take the dict's robust lock, and a writer killed at any point is repaired by
//! the next one, with no value torn and no memory leaked.
//!
//! | Python (`d = Manager().dict()`) | here                                              |
//! |---------------------------------|---------------------------------------------------|
//! | `d[k] = v`                      | [`insert`](SharedDict::insert)                    |
//! | `d[k]`, `d.get(k)`              | [`get`](SharedDict::get) (`None` when absent)     |
//! | `k in d`                        | [`contains_key`](SharedDict::contains_key)        |
//! | `del d[k]`, `d.pop(k)`          | [`remove`](SharedDict::remove), [`pop`](SharedDict::pop) |
//! | `d.popitem()`                   | [`popitem`](SharedDict::popitem) (some entry: no order is kept) |
//! | `d.setdefault(k, v)`            | [`setdefault`](SharedDict::setdefault)            |
//! | `d.update(other)`               | [`update`](SharedDict::update)                    |
//! | `with lock: d[k] = f(d[k])`     | [`update_with`](SharedDict::update_with) (atomic, no separate lock) |
//! | `len(d)`, `d.clear()`           | [`len`](SharedDict::len), [`clear`](SharedDict::clear) |
//! | `d.keys()`, `d.values()`, `d.items()` | [`keys`](SharedDict::keys), [`values`](SharedDict::values), [`items`](SharedDict::items) (consistent snapshots) |
//!
//! Iteration order is not insertion order (Python's is, since 3.7): it is the order of the
//! hash table, as with Rust's `HashMap`.
//!
//! Measured (`benches/shared.rs`, `benches/dict.rs`; each against a
//! `Mutex<HashMap<Vec<u8>, Vec<u8>>>` in the same run, 2 busy vCPUs; 16-byte keys,
//! 64-byte values): `get` 1.3x the map's in a small table (29-48 ns) and 0.8-1.1x at a
//! million entries in a random order; `insert` of an existing key 3.7x the map's
//! allocating `insert` in a small table (~150-230 ns: a new entry block from the arena's
//! heap and the old one freed, so that no value is ever torn) and 1.2-1.4x at a million
//! entries; filling from empty to a million, 0.45-0.49x the map's time. Against Python's
//! `Manager().dict()` (19-23 µs an operation, a round trip to the manager process): a
//! get 390-680x faster, an insert 100-140x.
//!
//! The table, the seqlock, growth and the recovery: [`raw::dict`](crate::raw::dict).

use crate::arena::{fingerprint_sized, Arena, ObjectKind};
use crate::error::{Error, Result};
use crate::object::{Handle, Inspect, Obj, Object};
pub use crate::raw::dict::{DictError, Item};
use crate::raw::dict::{DictTable, RawDict};
use crate::sync::liveness::Procfs;
use crate::SpinPolicy;
use bytemuck::Pod;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

macro_rules! dict_object {
    ($($gen:ident),* ; $ty:ty, $name:expr, $fp:expr, $bound:path) => {
        impl<$($gen: $bound),*> Object for $ty {
            type State = RawDict;
            type Params = ();
            const KIND: ObjectKind = ObjectKind::SharedDict;

            fn type_name() -> Cow<'static, str> {
                $name
            }

            fn fingerprint() -> u64 {
                $fp
            }

            fn inspect(raw: &RawDict, _: &(), out: &mut Inspect) {
                let (slots, tombs) = raw.slots_and_tombs();
                out.field("len", raw.len());
                out.field("slots", slots);
                out.field("tombstones", tombs);
                out.field("writer", raw.writer());
            }
        }
    };
}

dict_object!(; SharedDict, "SharedDict".into(), fingerprint_sized::<RawDict>(), Sized);
dict_object!(K, V; TypedDict<K, V>,
    format!("TypedDict<{}, {}>", core::any::type_name::<K>(), core::any::type_name::<V>()).into(),
    fingerprint_sized::<(RawDict, K, V)>(), Pod);

/// A dict error as the constructors' error.
fn construct_error(e: DictError) -> Error {
    match e {
        DictError::OutOfSpace {
            requested,
            available,
        } => Error::OutOfSpace {
            requested,
            available,
        },
        e => Error::Corrupt(e.to_string()),
    }
}

/// The read-modify-write of the typed and serde dicts over their byte dict `inner`: the
/// stored value, `decode`d, is handed to `f`, whose answer is stored `encode`d (`None`:
/// the entry removed); returns the previous value. A stored value that does not decode
/// (then `f` is not called) or an answer that does not encode leaves the entry as it was
/// and is the error: nothing a codec refuses is lost.
fn update_decoded<V>(
    inner: &SharedDict,
    key: &[u8],
    decode: impl Fn(&[u8]) -> Result<V, DictError>,
    encode: impl FnOnce(&V) -> Result<Vec<u8>, DictError>,
    f: impl FnOnce(Option<V>) -> Option<V>,
) -> Result<Option<V>, DictError> {
    let mut err = None;
    let old = inner.update_with(key, |v| {
        let cur = match v.map(&decode).transpose() {
            Ok(cur) => cur,
            Err(e) => {
                // Put back as it was: `f` never saw it.
                err = Some(e);
                return v.map(<[u8]>::to_vec);
            }
        };
        match f(cur).map(|n| encode(&n)) {
            Some(Ok(b)) => Some(b),
            Some(Err(e)) => {
                err = Some(e);
                v.map(<[u8]>::to_vec)
            }
            None => None,
        }
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    // It decoded above (the lock held since): decoding it again is all that remains.
    old.map(|b| decode(&b)).transpose()
}

/// A new dict of type `O` in `arena` (named or not), its hash keyed by the arena's seed,
/// with room for `capacity` entries.
fn make<O: Object<State = RawDict, Params = ()>>(
    arena: &Arena,
    name: Option<&str>,
    capacity: usize,
) -> Result<Obj<O>> {
    let seed = arena.seed();
    let obj = Obj::<O>::create_with(arena, name, (), |fresh| fresh.write(RawDict::new(seed)))?;
    if capacity > 0 {
        DictTable::new(&obj, obj.block().arena(), Procfs, SpinPolicy::default())
            .reserve(capacity)
            .map_err(construct_error)?;
    }
    Ok(obj)
}

/// A hash map of byte strings in shared memory: Python's `Manager().dict()` without the
/// manager process.
///
/// Keys and values are byte strings of any size; the dict grows as entries come (and
/// gives its memory back on [`clear`](Self::clear) and when its last handle goes).
/// Readers never block each other (see the [module docs](self)); writers are serialised
/// by a robust lock. [`update_with`](Self::update_with) is an atomic read-modify-write,
/// so the classic "read the count, sleep, write count - 1" race cannot happen.
///
/// The handle is `Clone + Send + Sync` and keeps working in every process `fork`ed after
/// it was made.
///
/// Every call that reads entries returns a `Result`: memory that a peer scribbled on
/// makes it fail with [`DictError::Corrupt`] rather than answer "absent" for a key that
/// may be there. [`len`](Self::len), [`is_empty`](Self::is_empty) and
/// [`capacity`](Self::capacity) read one counter and cannot fail.
///
/// # Example
/// ```
/// use shmproc::shared::SharedDict;
/// let d = SharedDict::new()?;
/// d.insert(b"num", b"10")?;
/// assert_eq!(d.get(b"num")?.as_deref(), Some(&b"10"[..]));
/// d.update_with(b"num", |v| {
///     let n: u32 = std::str::from_utf8(v?).ok()?.parse().ok()?;
///     Some((n - 1).to_string().into_bytes())
/// })?;
/// assert_eq!(d.get(b"num")?.as_deref(), Some(&b"9"[..]));
/// assert_eq!(d.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SharedDict {
    shm: Obj<SharedDict>,
    spin: SpinPolicy,
}

impl fmt::Debug for SharedDict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shm.debug(f, &[])
    }
}

impl Handle for SharedDict {
    fn from_obj(obj: Obj<Self>) -> Result<Self> {
        Ok(Self::wrap(obj))
    }

    fn obj(&self) -> &Obj<Self> {
        &self.shm
    }
}

impl SharedDict {
    /// An empty dict in the [global arena](Arena::global).
    ///
    /// # Errors
    /// The global arena cannot be made or is full.
    pub fn new() -> Result<SharedDict> {
        Self::new_in(&Arena::global()?)
    }

    /// An empty dict in `arena`.
    ///
    /// # Errors
    /// [`Error::OutOfSpace`] when the arena is full.
    ///
    /// ```
    /// let arena = shmproc::Arena::anonymous(1 << 20)?;
    /// let d = shmproc::SharedDict::new_in(&arena)?;
    /// assert!(d.is_empty());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn new_in(arena: &Arena) -> Result<SharedDict> {
        Self::with_capacity_in(arena, 0)
    }

    /// An empty dict in the global arena with room for `capacity` entries before it
    /// grows (`HashMap::with_capacity`).
    ///
    /// # Errors
    /// As [`new`](Self::new); [`Error::OutOfSpace`] when the index for `capacity` does
    /// not fit.
    ///
    /// ```
    /// let d = shmproc::SharedDict::with_capacity(1000)?;
    /// assert!(d.capacity() >= 1000);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn with_capacity(capacity: usize) -> Result<SharedDict> {
        Self::with_capacity_in(&Arena::global()?, capacity)
    }

    /// As [`with_capacity`](Self::with_capacity), in `arena`.
    ///
    /// # Errors
    /// As [`with_capacity`](Self::with_capacity).
    ///
    /// ```
    /// let arena = shmproc::Arena::anonymous(1 << 20)?;
    /// let d = shmproc::SharedDict::with_capacity_in(&arena, 100)?;
    /// assert!(d.capacity() >= 100);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn with_capacity_in(arena: &Arena, capacity: usize) -> Result<SharedDict> {
        Ok(Self::wrap(make(arena, None, capacity)?))
    }

    /// An empty dict named `name` in `arena`, for [`open`](Self::open) to find.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`]; [`Error::InvalidName`]; [`Error::OutOfSpace`].
    ///
    /// ```
    /// use shmproc::{Arena, SharedDict};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// SharedDict::create(&arena, "cfg")?.insert(b"mode", b"fast")?;
    /// assert!(SharedDict::create(&arena, "cfg").is_err()); // the name is taken
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(arena: &Arena, name: &str) -> Result<SharedDict> {
        Ok(Self::wrap(make(arena, Some(name), 0)?))
    }

    /// The dict named `name` in `arena`.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::WrongType`] when `name` is not a byte dict.
    ///
    /// ```
    /// use shmproc::{Arena, SharedDict};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// SharedDict::create(&arena, "cfg")?.insert(b"mode", b"fast")?;
    /// let d = SharedDict::open(&arena, "cfg")?;
    /// assert!(d.contains_key(b"mode")?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(arena: &Arena, name: &str) -> Result<SharedDict> {
        Ok(Self::wrap(Obj::open(arena, name)?))
    }

    /// The byte dict over `obj`: its own, or the table of a typed or serde dict.
    fn wrap(shm: Obj<SharedDict>) -> SharedDict {
        SharedDict {
            shm,
            spin: SpinPolicy::default(),
        }
    }

    /// Sets how long a reader retries optimistically (and a writer spins) before taking
    /// the lock.
    ///
    /// ```
    /// let mut d = shmproc::SharedDict::new()?;
    /// d.set_spin(shmproc::SpinPolicy::NEVER); // readers take the lock after 2 tries
    /// assert_eq!(d.get(b"x")?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_spin(&mut self, spin: SpinPolicy) {
        self.spin = spin;
    }

    #[inline]
    fn table(&self) -> DictTable<'_, Arena, Procfs> {
        DictTable::new(&self.shm, self.shm.block().arena(), Procfs, self.spin)
    }

    /// Entries the dict holds before its index grows (it grows by itself; see
    /// [`reserve`](Self::reserve)).
    ///
    /// ```
    /// let d = shmproc::SharedDict::new()?;
    /// assert_eq!(d.capacity(), 0); // no index before the first insert
    /// d.insert(b"k", b"v")?;
    /// assert!(d.capacity() >= 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.table().capacity()
    }

    /// Makes room for `additional` more entries, so that inserting them grows nothing on
    /// the way.
    ///
    /// # Errors
    /// [`DictError::OutOfSpace`] when the larger index does not fit in the arena.
    ///
    /// ```
    /// let d = shmproc::SharedDict::new()?;
    /// d.reserve(10_000)?;
    /// assert!(d.capacity() >= 10_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reserve(&self, additional: usize) -> Result<(), DictError> {
        self.table().reserve(additional)
    }

    /// Inserts or replaces (`d[key] = value`); returns true when a value was replaced.
    /// A value is never seen half-written: readers get the old value or the new one.
    ///
    /// # Errors
    /// [`DictError::OutOfSpace`] when the arena cannot hold the entry (or the larger
    /// index it needs); [`DictError::Corrupt`] when another process wrote over the dict.
    ///
    /// ```
    /// let d = shmproc::SharedDict::new()?;
    /// assert_eq!(d.insert(b"a", b"1"), Ok(false));
    /// assert_eq!(d.insert(b"a", &[7; 100_000]), Ok(true)); // any size
    /// assert_eq!(d.get(b"a")?.map(|v| v.len()), Some(100_000));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<bool, DictError> {
        self.table().insert(key, value)
    }

    /// A copy of the value of `key`, or `None` when it is absent.
    ///
    /// # Errors
    /// [`DictError::Corrupt`] when the dict's memory does not hold together even with
    /// the writer lock held (a peer wrote over its index or the key's entry): the key
    /// may be there, so "absent" would be a guess.
    ///
    /// ```
    /// let d = shmproc::SharedDict::new()?;
    /// d.insert(b"k", b"v")?;
    /// assert_eq!(d.get(b"k")?, Some(b"v".to_vec()));
    /// assert_eq!(d.get(b"missing")?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DictError> {
        let mut v = Vec::new();
        Ok(self.table().get(key, &mut v)?.then_some(v))
    }

    /// Copies the value of `key` into `out` (reusing its allocation); false when absent.
    ///
    /// # Errors
    /// As [`get`](Self::get) (`out` then holds no value of the key).
    ///
    /// ```
    /// let d = shmproc::SharedDict::new()?;
    /// d.insert(b"k", b"value")?;
    /// let mut buf = Vec::with_capacity(64);
    /// assert!(d.get_into(b"k", &mut buf)?);
    /// assert_eq!(buf, b"value");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_into(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool, DictError> {
        self.table().get(key, out)
    }

    /// True when `key` is present (`key in d`).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    ///
    /// ```
    /// let d = shmproc::SharedDict::new()?;
    /// d.insert(b"k", b"")?;
    /// assert!(d.contains_key(b"k")?);
    /// assert!(!d.contains_key(b"j")?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn contains_key(&self, key: &[u8]) -> Result<bool, DictError> {
        self.table().contains(key)
    }

    /// Removes `key`, returning its value (`del d[key]`); `None` when it was absent.
    ///
    /// # Errors
    /// [`DictError::Corrupt`] when the index or the key's entry does not hold together
    /// (a peer wrote over it): the entry is then left in place, since its value cannot
    /// be handed back ([`clear`](Self::clear) mends the dict; so does an
    /// [`insert`](Self::insert) over the key when only the value was damaged).
    ///
    /// ```
    /// let d = shmproc::SharedDict::new()?;
    /// d.insert(b"k", b"v")?;
    /// assert_eq!(d.remove(b"k")?, Some(b"v".to_vec()));
    /// assert_eq!(d.remove(b"k")?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DictError> {
        let mut v = Vec::new();
        Ok(self.table().remove(key, &mut v)?.then_some(v))
    }

    /// Python's `d.pop(key)`: [`remove`](Self::remove) under its Python name (`d.pop(key,
    /// default)` is `d.pop(key)?.unwrap_or(default)`).
    ///
    /// # Errors
    /// As [`remove`](Self::remove).
    ///
    /// ```
    /// let d = shmproc::SharedDict::new()?;
    /// d.insert(b"k", b"v")?;
    /// assert_eq!(d.pop(b"k")?, Some(b"v".to_vec()));
    /// assert_eq!(d.pop(b"k")?.unwrap_or_default(), b"");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pop(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DictError> {
        self.remove(key)
    }

    /// Removes some entry and returns it (Python's `d.popitem()`, except that the dict
    /// keeps no insertion order: which entry comes out is not defined). `None` when
    /// empty.
    ///
    /// # Errors
    /// [`DictError::Corrupt`] when the index or the entry it would pop does not hold
    /// together (a peer wrote over it): nothing is removed.
    ///
    /// ```
    /// let d = shmproc::SharedDict::new()?;
    /// d.insert(b"a", b"1")?;
    /// assert_eq!(d.popitem()?, Some((b"a".to_vec(), b"1".to_vec())));
    /// assert_eq!(d.popitem()?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn popitem(&self) -> Result<Option<Item>, DictError> {
        self.table().pop_any()
    }

    /// The value of `key`; if it is absent, `default` is inserted first and returned
    /// (Python's `d.setdefault(key, default)`), in one atomic step.
    ///
    /// # Errors
    /// As [`insert`](Self::insert).
    ///
    /// ```
    /// let d = shmproc::SharedDict::new()?;
    /// assert_eq!(d.setdefault(b"k", b"first")?, b"first");
    /// assert_eq!(d.setdefault(b"k", b"second")?, b"first");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn setdefault(&self, key: &[u8], default: &[u8]) -> Result<Vec<u8>, DictError> {
        let mut v = Vec::new();
        self.table().setdefault(key, default, &mut v)?;
        Ok(v)
    }

    /// The number of entries (`len(d)`; a snapshot). It reads one counter, so it cannot
    /// fail; after a peer scribbled on the dict it may be wrong (the next writer that
    /// finds damage recounts).
    ///
    /// ```
    /// let d = shmproc::SharedDict::new()?;
    /// d.update([(&b"a"[..], &b"1"[..]), (b"b", b"2")])?;
    /// assert_eq!(d.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.table().len()
    }

    /// True when empty (a snapshot of the counter [`len`](Self::len) reads).
    ///
    /// ```
    /// let d = shmproc::SharedDict::new()?;
    /// assert!(d.is_empty());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every entry and gives their memory back to the arena (readers see an empty
    /// dict at once; the entries are freed after, the writer lock still held).
    ///
    /// # Errors
    /// [`DictError::Corrupt`] when some block the dict named is not one the arena's heap
    /// can free (a peer wrote over the dict or the heap): the dict is empty and usable
    /// all the same, and those blocks are forgotten.
    ///
    /// ```
    /// let arena = shmproc::Arena::anonymous(1 << 20)?;
    /// let d = shmproc::SharedDict::new_in(&arena)?;
    /// let empty = arena.used();
    /// d.insert(b"k", &[0; 1000])?;
    /// d.clear()?;
    /// assert!(d.is_empty());
    /// assert_eq!(arena.used(), empty);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clear(&self) -> Result<(), DictError> {
        self.table().clear()
    }

    /// Inserts every pair under one hold of the lock (Python's `d.update(other)`).
    ///
    /// # Errors
    /// As [`insert`](Self::insert); the pairs before the one that failed stay inserted.
    ///
    /// ```
    /// let d = shmproc::SharedDict::new()?;
    /// d.update([(&b"a"[..], &b"1"[..]), (b"b", b"2")])?;
    /// assert_eq!(d.get(b"b")?, Some(b"2".to_vec()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update<'k>(
        &self,
        pairs: impl IntoIterator<Item = (&'k [u8], &'k [u8])>,
    ) -> Result<(), DictError> {
        self.table().update(pairs)
    }

    /// Atomic read-modify-write: `f` gets the current value (or `None`) and returns the
    /// new value (or `None` to remove it). No other writer runs in between; readers are
    /// not stalled while `f` runs. Returns the previous value. `f` must not use this dict
    /// (it holds the dict's lock, which is not re-entrant).
    ///
    /// # Errors
    /// As [`insert`](Self::insert) for the value `f` returns (the entry is then
    /// unchanged); [`DictError::Corrupt`], without calling `f`, when the key's entry does
    /// not hold together (as [`remove`](Self::remove)).
    ///
    /// ```
    /// let d = shmproc::SharedDict::new()?;
    /// let bump = |v: Option<&[u8]>| Some(vec![v.map_or(0, |v| v[0]) + 1]);
    /// assert_eq!(d.update_with(b"hits", bump)?, None); // inserted [1]
    /// assert_eq!(d.update_with(b"hits", bump)?, Some(vec![1]));
    /// assert_eq!(d.get(b"hits")?, Some(vec![2]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update_with(
        &self,
        key: &[u8],
        f: impl FnOnce(Option<&[u8]>) -> Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>, DictError> {
        self.table().update_with(key, f)
    }

    /// A consistent copy of every entry (`d.items()`), in the table's order.
    ///
    /// # Errors
    /// [`DictError::Corrupt`] when the index or an entry does not hold together even with
    /// the writer lock held (a peer wrote over it).
    ///
    /// ```
    /// let d = shmproc::SharedDict::new()?;
    /// d.insert(b"x", b"1")?;
    /// assert_eq!(d.items()?, vec![(b"x".to_vec(), b"1".to_vec())]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn items(&self) -> Result<Vec<Item>, DictError> {
        self.table().items()
    }

    /// Iterates over a consistent snapshot (see [`items`](Self::items)).
    ///
    /// # Errors
    /// As [`items`](Self::items): the snapshot is taken before the first element.
    ///
    /// ```
    /// let d = shmproc::SharedDict::new()?;
    /// d.insert(b"x", b"1")?;
    /// for (k, v) in d.iter()? {
    ///     assert_eq!((k.as_slice(), v.as_slice()), (&b"x"[..], &b"1"[..]));
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&self) -> Result<std::vec::IntoIter<Item>, DictError> {
        Ok(self.items()?.into_iter())
    }

    /// The keys of a consistent snapshot (`d.keys()`).
    ///
    /// # Errors
    /// As [`items`](Self::items).
    ///
    /// ```
    /// let d = shmproc::SharedDict::new()?;
    /// d.insert(b"x", b"1")?;
    /// assert_eq!(d.keys()?, vec![b"x".to_vec()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn keys(&self) -> Result<Vec<Vec<u8>>, DictError> {
        Ok(self.items()?.into_iter().map(|(k, _)| k).collect())
    }

    /// The values of a consistent snapshot (`d.values()`).
    ///
    /// # Errors
    /// As [`items`](Self::items).
    ///
    /// ```
    /// let d = shmproc::SharedDict::new()?;
    /// d.insert(b"x", b"1")?;
    /// assert_eq!(d.values()?, vec![b"1".to_vec()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn values(&self) -> Result<Vec<Vec<u8>>, DictError> {
        Ok(self.items()?.into_iter().map(|(_, v)| v).collect())
    }
}

// ---------------------------------------------------------------------------------------
// Typed layer.

/// A [`SharedDict`] of plain-data keys and values (`K`, `V`: [`bytemuck::Pod`]), stored
/// as their bytes. Its type is recorded in the arena: opening it with other `K` / `V` is
/// an error. A stored key or value of another size than `K` / `V` (written through the
/// [byte dict](Self::as_bytes_dict), or scribbled) is a [`DictError::Codec`] error, never
/// "absent".
///
/// ```
/// use shmproc::shared::TypedDict;
/// let d = TypedDict::<u32, [f64; 2]>::new()?;
/// d.insert(&7, &[1.0, 2.5])?;
/// d.update_with(&7, |v| v.map(|[n, x]| [n + 1.0, x * 2.0]))?;
/// assert_eq!(d.get(&7)?, Some([2.0, 5.0]));
/// assert_eq!(d.get(&8)?, None);
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

impl<K: Pod, V: Pod> Handle for TypedDict<K, V> {
    fn from_obj(obj: Obj<Self>) -> Result<Self> {
        Ok(Self::wrap(obj))
    }

    fn obj(&self) -> &Obj<Self> {
        self.inner.shm.recast_ref()
    }
}

impl<K: Pod, V: Pod> TypedDict<K, V> {
    /// An empty dict in the global arena.
    ///
    /// # Errors
    /// As [`SharedDict::new`].
    ///
    /// ```
    /// let d = shmproc::TypedDict::<u64, u64>::new()?;
    /// assert!(d.is_empty());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        Self::new_in(&Arena::global()?)
    }

    /// An empty dict in `arena`.
    ///
    /// # Errors
    /// As [`SharedDict::new_in`].
    ///
    /// ```
    /// let arena = shmproc::Arena::anonymous(1 << 20)?;
    /// let d = shmproc::TypedDict::<u64, u64>::new_in(&arena)?;
    /// d.insert(&1, &2)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new_in(arena: &Arena) -> Result<Self> {
        Self::with_capacity_in(arena, 0)
    }

    /// An empty dict in the global arena with room for `capacity` entries.
    ///
    /// # Errors
    /// As [`SharedDict::with_capacity`].
    ///
    /// ```
    /// let d = shmproc::TypedDict::<u64, u64>::with_capacity(500)?;
    /// assert!(d.capacity() >= 500);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn with_capacity(capacity: usize) -> Result<Self> {
        Self::with_capacity_in(&Arena::global()?, capacity)
    }

    /// As [`with_capacity`](Self::with_capacity), in `arena`.
    ///
    /// # Errors
    /// As [`SharedDict::with_capacity`].
    ///
    /// ```
    /// let arena = shmproc::Arena::anonymous(1 << 20)?;
    /// let d = shmproc::TypedDict::<u64, u64>::with_capacity_in(&arena, 500)?;
    /// assert!(d.capacity() >= 500);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn with_capacity_in(arena: &Arena, capacity: usize) -> Result<Self> {
        Ok(Self::wrap(make(arena, None, capacity)?))
    }

    /// An empty dict named `name` in `arena`.
    ///
    /// # Errors
    /// As [`SharedDict::create`].
    ///
    /// ```
    /// let arena = shmproc::Arena::anonymous(1 << 20)?;
    /// shmproc::TypedDict::<u32, f64>::create(&arena, "scores")?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn create(arena: &Arena, name: &str) -> Result<Self> {
        Ok(Self::wrap(make(arena, Some(name), 0)?))
    }

    /// The typed dict named `name` in `arena`.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::WrongType`] for another `K` / `V`, or a byte or
    /// serde dict.
    ///
    /// ```
    /// use shmproc::{Arena, TypedDict};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// TypedDict::<u32, f64>::create(&arena, "scores")?.insert(&1, &9.5)?;
    /// assert_eq!(TypedDict::<u32, f64>::open(&arena, "scores")?.get(&1)?, Some(9.5));
    /// assert!(TypedDict::<u64, f64>::open(&arena, "scores").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(arena: &Arena, name: &str) -> Result<Self> {
        Ok(Self::wrap(Obj::open(arena, name)?))
    }

    fn wrap(obj: Obj<Self>) -> Self {
        TypedDict {
            inner: SharedDict::wrap(obj.recast()),
            _kv: PhantomData,
        }
    }

    /// The byte dict underneath.
    ///
    /// ```
    /// let d = shmproc::TypedDict::<u8, u8>::new()?;
    /// d.insert(&1, &2)?;
    /// assert_eq!(d.as_bytes_dict().get(&[1])?, Some(vec![2]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_bytes_dict(&self) -> &SharedDict {
        &self.inner
    }

    /// `V` from its stored bytes; a [`DictError::Codec`] error for another size.
    fn decode(bytes: &[u8]) -> Result<V, DictError> {
        Self::read_pod(bytes, "value")
    }

    fn read_pod<T: Pod>(bytes: &[u8], what: &str) -> Result<T, DictError> {
        if bytes.len() == core::mem::size_of::<T>() {
            Ok(bytemuck::pod_read_unaligned(bytes))
        } else {
            Err(Self::wrong_size(
                bytes.len(),
                core::mem::size_of::<T>(),
                what,
            ))
        }
    }

    #[cold]
    fn wrong_size(got: usize, want: usize, what: &str) -> DictError {
        DictError::Codec(format!(
            "a stored {what} of {got} bytes, where the dict's type has {want}"
        ))
    }

    fn decode_pair((k, v): (Vec<u8>, Vec<u8>)) -> Result<(K, V), DictError> {
        Ok((Self::read_pod(&k, "key")?, Self::decode(&v)?))
    }

    /// Entries the dict holds before it grows.
    ///
    /// ```
    /// let d = shmproc::TypedDict::<u8, u8>::new()?;
    /// d.reserve(100)?;
    /// assert!(d.capacity() >= 100);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    /// Makes room for `additional` more entries.
    ///
    /// # Errors
    /// [`DictError::OutOfSpace`].
    ///
    /// ```
    /// let d = shmproc::TypedDict::<u8, u8>::new()?;
    /// d.reserve(100)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reserve(&self, additional: usize) -> Result<(), DictError> {
        self.inner.reserve(additional)
    }

    /// Inserts or replaces; true when a value was replaced.
    ///
    /// # Errors
    /// [`DictError::OutOfSpace`]; [`DictError::Corrupt`].
    ///
    /// ```
    /// let d = shmproc::TypedDict::<u32, u64>::new()?;
    /// assert_eq!(d.insert(&1, &10), Ok(false));
    /// assert_eq!(d.insert(&1, &11), Ok(true));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn insert(&self, key: &K, value: &V) -> Result<bool, DictError> {
        self.inner
            .insert(bytemuck::bytes_of(key), bytemuck::bytes_of(value))
    }

    /// The value of `key`, or `None` when it is absent.
    ///
    /// # Errors
    /// As [`SharedDict::get`]; [`DictError::Codec`] when the stored value has another
    /// size than `V` (a peer wrote it through the byte dict).
    ///
    /// ```
    /// let d = shmproc::TypedDict::<u32, u64>::new()?;
    /// d.insert(&1, &10)?;
    /// assert_eq!(d.get(&1)?, Some(10));
    /// assert_eq!(d.get(&2)?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(&self, key: &K) -> Result<Option<V>, DictError> {
        let mut buf = Vec::with_capacity(core::mem::size_of::<V>());
        if self.inner.get_into(bytemuck::bytes_of(key), &mut buf)? {
            Self::decode(&buf).map(Some)
        } else {
            Ok(None)
        }
    }

    /// True when `key` is present.
    ///
    /// # Errors
    /// As [`SharedDict::contains_key`].
    ///
    /// ```
    /// let d = shmproc::TypedDict::<u32, u64>::new()?;
    /// d.insert(&1, &10)?;
    /// assert!(d.contains_key(&1)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn contains_key(&self, key: &K) -> Result<bool, DictError> {
        self.inner.contains_key(bytemuck::bytes_of(key))
    }

    /// Removes `key`, returning its value; `None` when it was absent.
    ///
    /// # Errors
    /// As [`SharedDict::remove`]; [`DictError::Codec`] when the stored value has another
    /// size than `V`: the entry is then left in place (nothing is lost; the byte dict
    /// can read and remove it).
    ///
    /// ```
    /// let d = shmproc::TypedDict::<u32, u64>::new()?;
    /// d.insert(&1, &10)?;
    /// assert_eq!(d.remove(&1)?, Some(10));
    /// assert_eq!(d.remove(&1)?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove(&self, key: &K) -> Result<Option<V>, DictError> {
        // A read-modify-write that removes, so that a value that does not decode stays in
        // the dict (put back as it was) instead of being removed and lost.
        self.update_with(key, |_| None)
    }

    /// Python's `d.pop(key)`: [`remove`](Self::remove).
    ///
    /// # Errors
    /// As [`remove`](Self::remove).
    ///
    /// ```
    /// let d = shmproc::TypedDict::<u32, u64>::new()?;
    /// d.insert(&1, &10)?;
    /// assert_eq!(d.pop(&1)?, Some(10));
    /// assert_eq!(d.pop(&1)?.unwrap_or(0), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pop(&self, key: &K) -> Result<Option<V>, DictError> {
        self.remove(key)
    }

    /// Removes some entry and returns it (see [`SharedDict::popitem`]).
    ///
    /// # Errors
    /// As [`SharedDict::popitem`]; [`DictError::Codec`] when the entry's key or value has
    /// another size than `K` / `V` (it is removed all the same).
    ///
    /// ```
    /// let d = shmproc::TypedDict::<u32, u64>::new()?;
    /// d.insert(&1, &10)?;
    /// assert_eq!(d.popitem()?, Some((1, 10)));
    /// assert_eq!(d.popitem()?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn popitem(&self) -> Result<Option<(K, V)>, DictError> {
        self.inner.popitem()?.map(Self::decode_pair).transpose()
    }

    /// The value of `key`, after inserting `default` if it was absent (Python's
    /// `setdefault`).
    ///
    /// # Errors
    /// As [`insert`](Self::insert); [`DictError::Codec`] when the stored value has
    /// another size than `V` (a peer wrote it through the byte dict).
    ///
    /// ```
    /// let d = shmproc::TypedDict::<u32, u64>::new()?;
    /// assert_eq!(d.setdefault(&1, &5)?, 5);
    /// assert_eq!(d.setdefault(&1, &6)?, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn setdefault(&self, key: &K, default: &V) -> Result<V, DictError> {
        let v = self
            .inner
            .setdefault(bytemuck::bytes_of(key), bytemuck::bytes_of(default))?;
        Self::decode(&v)
    }

    /// Atomic read-modify-write (see [`SharedDict::update_with`]). Returns the previous
    /// value.
    ///
    /// # Errors
    /// As [`SharedDict::update_with`]; [`DictError::Codec`], without calling `f`, when
    /// the stored value has another size than `V` (the entry is then unchanged).
    ///
    /// ```
    /// let d = shmproc::TypedDict::<u32, u64>::new()?;
    /// d.update_with(&1, |v| Some(v.unwrap_or(0) + 1))?;
    /// d.update_with(&1, |v| Some(v.unwrap_or(0) + 1))?;
    /// assert_eq!(d.get(&1)?, Some(2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update_with(
        &self,
        key: &K,
        f: impl FnOnce(Option<V>) -> Option<V>,
    ) -> Result<Option<V>, DictError> {
        update_decoded(
            &self.inner,
            bytemuck::bytes_of(key),
            Self::decode,
            |n| Ok(bytemuck::bytes_of(n).to_vec()),
            f,
        )
    }

    /// Inserts every pair under one hold of the lock (Python's `d.update(other)`).
    ///
    /// # Errors
    /// As [`insert`](Self::insert).
    ///
    /// ```
    /// let d = shmproc::TypedDict::<u32, u64>::new()?;
    /// d.update([(1, 10), (2, 20)])?;
    /// assert_eq!(d.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<(), DictError> {
        let pairs: Vec<(K, V)> = pairs.into_iter().collect();
        self.inner.update(
            pairs
                .iter()
                .map(|(k, v)| (bytemuck::bytes_of(k), bytemuck::bytes_of(v))),
        )
    }

    /// The number of entries (a snapshot).
    ///
    /// ```
    /// let d = shmproc::TypedDict::<u32, u64>::new()?;
    /// d.insert(&1, &10)?;
    /// assert_eq!(d.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when empty.
    ///
    /// ```
    /// assert!(shmproc::TypedDict::<u32, u64>::new()?.is_empty());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Removes every entry.
    ///
    /// # Errors
    /// As [`SharedDict::clear`].
    ///
    /// ```
    /// let d = shmproc::TypedDict::<u32, u64>::new()?;
    /// d.insert(&1, &10)?;
    /// d.clear()?;
    /// assert!(d.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clear(&self) -> Result<(), DictError> {
        self.inner.clear()
    }

    /// A consistent copy of every entry.
    ///
    /// # Errors
    /// As [`SharedDict::items`]; [`DictError::Codec`] when an entry's key or value has
    /// another size than `K` / `V`.
    ///
    /// ```
    /// let d = shmproc::TypedDict::<u32, u64>::new()?;
    /// d.insert(&1, &10)?;
    /// assert_eq!(d.items()?, vec![(1, 10)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn items(&self) -> Result<Vec<(K, V)>, DictError> {
        self.inner
            .items()?
            .into_iter()
            .map(Self::decode_pair)
            .collect()
    }

    /// Iterates over a consistent snapshot.
    ///
    /// # Errors
    /// As [`items`](Self::items): the snapshot is taken, and decoded, before the first
    /// element.
    ///
    /// ```
    /// let d = shmproc::TypedDict::<u32, u64>::new()?;
    /// d.update([(1, 10), (2, 20)])?;
    /// assert_eq!(d.iter()?.map(|(_, v)| v).sum::<u64>(), 30);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&self) -> Result<std::vec::IntoIter<(K, V)>, DictError> {
        Ok(self.items()?.into_iter())
    }

    /// The keys of a consistent snapshot.
    ///
    /// # Errors
    /// As [`items`](Self::items).
    ///
    /// ```
    /// let d = shmproc::TypedDict::<u32, u64>::new()?;
    /// d.insert(&1, &10)?;
    /// assert_eq!(d.keys()?, vec![1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn keys(&self) -> Result<Vec<K>, DictError> {
        Ok(self.items()?.into_iter().map(|(k, _)| k).collect())
    }

    /// The values of a consistent snapshot.
    ///
    /// # Errors
    /// As [`items`](Self::items).
    ///
    /// ```
    /// let d = shmproc::TypedDict::<u32, u64>::new()?;
    /// d.insert(&1, &10)?;
    /// assert_eq!(d.values()?, vec![10]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn values(&self) -> Result<Vec<V>, DictError> {
        Ok(self.items()?.into_iter().map(|(_, v)| v).collect())
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
/// let d = SerdeDict::<String, Vec<u32>>::new()?;
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
    crate::arena::fingerprint::<(RawDict, SerdeDict<K, V>)>(), Sized);

#[cfg(feature = "serde")]
impl<K, V> Handle for SerdeDict<K, V> {
    fn from_obj(obj: Obj<Self>) -> Result<Self> {
        Ok(SerdeDict {
            inner: SharedDict::wrap(obj.recast()),
            _kv: PhantomData,
        })
    }

    fn obj(&self) -> &Obj<Self> {
        self.inner.shm.recast_ref()
    }
}

#[cfg(feature = "serde")]
impl<K, V> SerdeDict<K, V>
where
    K: serde::Serialize + serde::de::DeserializeOwned,
    V: serde::Serialize + serde::de::DeserializeOwned,
{
    /// An empty dict in the global arena.
    ///
    /// # Errors
    /// As [`SharedDict::new`].
    ///
    /// ```
    /// let d = shmproc::SerdeDict::<String, String>::new()?;
    /// assert!(d.is_empty());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        Self::new_in(&Arena::global()?)
    }

    /// An empty dict in `arena`.
    ///
    /// # Errors
    /// As [`SharedDict::new_in`].
    ///
    /// ```
    /// let arena = shmproc::Arena::anonymous(1 << 20)?;
    /// let d = shmproc::SerdeDict::<String, u8>::new_in(&arena)?;
    /// d.insert(&"a".into(), &1)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new_in(arena: &Arena) -> Result<Self> {
        Self::with_capacity_in(arena, 0)
    }

    /// An empty dict in the global arena with room for `capacity` entries.
    ///
    /// # Errors
    /// As [`SharedDict::with_capacity`].
    ///
    /// ```
    /// let d = shmproc::SerdeDict::<String, String>::with_capacity(100)?;
    /// assert!(d.capacity() >= 100);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn with_capacity(capacity: usize) -> Result<Self> {
        Self::with_capacity_in(&Arena::global()?, capacity)
    }

    /// As [`with_capacity`](Self::with_capacity), in `arena`.
    ///
    /// # Errors
    /// As [`SharedDict::with_capacity`].
    ///
    /// ```
    /// let arena = shmproc::Arena::anonymous(1 << 20)?;
    /// let d = shmproc::SerdeDict::<String, String>::with_capacity_in(&arena, 100)?;
    /// assert!(d.capacity() >= 100);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn with_capacity_in(arena: &Arena, capacity: usize) -> Result<Self> {
        Ok(Self::wrap(make(arena, None, capacity)?))
    }

    /// An empty dict named `name` in `arena`.
    ///
    /// # Errors
    /// As [`SharedDict::create`].
    ///
    /// ```
    /// let arena = shmproc::Arena::anonymous(1 << 20)?;
    /// shmproc::SerdeDict::<String, Vec<u8>>::create(&arena, "blobs")?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn create(arena: &Arena, name: &str) -> Result<Self> {
        Ok(Self::wrap(make(arena, Some(name), 0)?))
    }

    /// The serde dict named `name` in `arena`.
    ///
    /// # Errors
    /// As [`SharedDict::open`]; [`Error::WrongType`] for other `K` / `V`.
    ///
    /// ```
    /// use shmproc::{Arena, SerdeDict};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// SerdeDict::<String, u32>::create(&arena, "ages")?.insert(&"ann".into(), &31)?;
    /// let d = SerdeDict::<String, u32>::open(&arena, "ages")?;
    /// assert_eq!(d.get(&"ann".into())?, Some(31));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(arena: &Arena, name: &str) -> Result<Self> {
        Ok(Self::wrap(Obj::open(arena, name)?))
    }

    fn wrap(obj: Obj<Self>) -> Self {
        SerdeDict {
            inner: SharedDict::wrap(obj.recast()),
            _kv: PhantomData,
        }
    }

    fn enc<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, DictError> {
        postcard::to_allocvec(v).map_err(|e| DictError::Codec(e.to_string()))
    }

    fn dec<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, DictError> {
        postcard::from_bytes(b).map_err(|e| DictError::Codec(e.to_string()))
    }

    fn dec_pair((k, v): (Vec<u8>, Vec<u8>)) -> Result<(K, V), DictError> {
        Ok((Self::dec(&k)?, Self::dec(&v)?))
    }

    /// Entries the dict holds before it grows.
    ///
    /// ```
    /// let d = shmproc::SerdeDict::<u8, u8>::new()?;
    /// assert_eq!(d.capacity(), 0);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    /// Makes room for `additional` more entries.
    ///
    /// # Errors
    /// [`DictError::OutOfSpace`].
    ///
    /// ```
    /// let d = shmproc::SerdeDict::<u8, u8>::new()?;
    /// d.reserve(10)?;
    /// assert!(d.capacity() >= 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reserve(&self, additional: usize) -> Result<(), DictError> {
        self.inner.reserve(additional)
    }

    /// Inserts or replaces; true when a value was replaced.
    ///
    /// # Errors
    /// As [`SharedDict::insert`]; [`DictError::Codec`].
    ///
    /// ```
    /// let d = shmproc::SerdeDict::<String, Vec<String>>::new()?;
    /// assert_eq!(d.insert(&"k".into(), &vec!["v".into()]), Ok(false));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn insert(&self, key: &K, value: &V) -> Result<bool, DictError> {
        self.inner.insert(&Self::enc(key)?, &Self::enc(value)?)
    }

    /// The value of `key`, or `None` when it is absent.
    ///
    /// # Errors
    /// [`DictError::Codec`] when the key cannot be encoded or the value decoded; as
    /// [`SharedDict::get`].
    ///
    /// ```
    /// let d = shmproc::SerdeDict::<String, u32>::new()?;
    /// d.insert(&"k".into(), &7)?;
    /// assert_eq!(d.get(&"k".into())?, Some(7));
    /// assert_eq!(d.get(&"j".into())?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(&self, key: &K) -> Result<Option<V>, DictError> {
        self.inner
            .get(&Self::enc(key)?)?
            .map(|b| Self::dec(&b))
            .transpose()
    }

    /// True when `key` is present.
    ///
    /// # Errors
    /// [`DictError::Codec`] when the key cannot be encoded; as
    /// [`SharedDict::contains_key`].
    ///
    /// ```
    /// let d = shmproc::SerdeDict::<String, u32>::new()?;
    /// d.insert(&"k".into(), &7)?;
    /// assert!(d.contains_key(&"k".into())?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn contains_key(&self, key: &K) -> Result<bool, DictError> {
        self.inner.contains_key(&Self::enc(key)?)
    }

    /// Removes `key`, returning its value; `None` when it was absent.
    ///
    /// # Errors
    /// As [`SharedDict::remove`]; [`DictError::Codec`] when the key cannot be encoded or
    /// the stored value decoded: the entry is then left in place (nothing is lost).
    ///
    /// ```
    /// let d = shmproc::SerdeDict::<String, u32>::new()?;
    /// d.insert(&"k".into(), &7)?;
    /// assert_eq!(d.remove(&"k".into())?, Some(7));
    /// assert_eq!(d.remove(&"k".into())?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove(&self, key: &K) -> Result<Option<V>, DictError> {
        // A read-modify-write that removes, so that a value that does not decode stays in
        // the dict (put back as it was) instead of being removed and lost.
        self.update_with(key, |_| None)
    }

    /// Python's `d.pop(key)`: [`remove`](Self::remove).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    ///
    /// ```
    /// let d = shmproc::SerdeDict::<String, u32>::new()?;
    /// d.insert(&"k".into(), &7)?;
    /// assert_eq!(d.pop(&"k".into())?, Some(7));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pop(&self, key: &K) -> Result<Option<V>, DictError> {
        self.remove(key)
    }

    /// Removes some entry and returns it (see [`SharedDict::popitem`]).
    ///
    /// # Errors
    /// As [`SharedDict::popitem`]; [`DictError::Codec`] when the entry does not decode
    /// (it is removed all the same).
    ///
    /// ```
    /// let d = shmproc::SerdeDict::<String, u32>::new()?;
    /// d.insert(&"k".into(), &7)?;
    /// assert_eq!(d.popitem()?, Some(("k".to_string(), 7)));
    /// assert_eq!(d.popitem()?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn popitem(&self) -> Result<Option<(K, V)>, DictError> {
        self.inner.popitem()?.map(Self::dec_pair).transpose()
    }

    /// The value of `key`, after inserting `default` if it was absent (Python's
    /// `setdefault`).
    ///
    /// # Errors
    /// As [`insert`](Self::insert).
    ///
    /// ```
    /// let d = shmproc::SerdeDict::<String, Vec<u32>>::new()?;
    /// assert_eq!(d.setdefault(&"k".into(), &vec![1])?, vec![1]);
    /// assert_eq!(d.setdefault(&"k".into(), &vec![2])?, vec![1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn setdefault(&self, key: &K, default: &V) -> Result<V, DictError> {
        Self::dec(
            &self
                .inner
                .setdefault(&Self::enc(key)?, &Self::enc(default)?)?,
        )
    }

    /// Atomic read-modify-write (see [`SharedDict::update_with`]). Returns the previous
    /// value.
    ///
    /// # Errors
    /// As [`SharedDict::update_with`]; [`DictError::Codec`] when `f`'s value cannot be
    /// encoded, or (without calling `f`) when the stored value does not decode; the
    /// entry is then unchanged.
    ///
    /// ```
    /// let d = shmproc::SerdeDict::<String, Vec<u32>>::new()?;
    /// let push = |x| move |v: Option<Vec<u32>>| Some([v.unwrap_or_default(), vec![x]].concat());
    /// d.update_with(&"k".into(), push(1))?;
    /// d.update_with(&"k".into(), push(2))?;
    /// assert_eq!(d.get(&"k".into())?, Some(vec![1, 2]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update_with(
        &self,
        key: &K,
        f: impl FnOnce(Option<V>) -> Option<V>,
    ) -> Result<Option<V>, DictError> {
        update_decoded(&self.inner, &Self::enc(key)?, Self::dec, Self::enc, f)
    }

    /// Inserts every pair under one hold of the lock (Python's `d.update(other)`).
    ///
    /// # Errors
    /// As [`insert`](Self::insert); nothing is inserted when a pair does not encode.
    ///
    /// ```
    /// let d = shmproc::SerdeDict::<String, u32>::new()?;
    /// d.update([("a".to_string(), 1), ("b".to_string(), 2)])?;
    /// assert_eq!(d.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<(), DictError> {
        let encoded = pairs
            .into_iter()
            .map(|(k, v)| Ok((Self::enc(&k)?, Self::enc(&v)?)))
            .collect::<Result<Vec<_>, DictError>>()?;
        self.inner
            .update(encoded.iter().map(|(k, v)| (&k[..], &v[..])))
    }

    /// The number of entries (a snapshot).
    ///
    /// ```
    /// let d = shmproc::SerdeDict::<String, u32>::new()?;
    /// d.insert(&"k".into(), &7)?;
    /// assert_eq!(d.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when empty.
    ///
    /// ```
    /// assert!(shmproc::SerdeDict::<String, u32>::new()?.is_empty());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Removes every entry.
    ///
    /// # Errors
    /// As [`SharedDict::clear`].
    ///
    /// ```
    /// let d = shmproc::SerdeDict::<String, u32>::new()?;
    /// d.insert(&"k".into(), &7)?;
    /// d.clear()?;
    /// assert!(d.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clear(&self) -> Result<(), DictError> {
        self.inner.clear()
    }

    /// A consistent copy of every entry.
    ///
    /// # Errors
    /// As [`SharedDict::items`]; [`DictError::Codec`] when an entry does not decode as
    /// `(K, V)`.
    ///
    /// ```
    /// let d = shmproc::SerdeDict::<String, u32>::new()?;
    /// d.insert(&"k".into(), &7)?;
    /// assert_eq!(d.items()?, vec![("k".to_string(), 7)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn items(&self) -> Result<Vec<(K, V)>, DictError> {
        self.inner
            .items()?
            .into_iter()
            .map(Self::dec_pair)
            .collect()
    }

    /// Iterates over a consistent snapshot.
    ///
    /// # Errors
    /// As [`items`](Self::items).
    ///
    /// ```
    /// let d = shmproc::SerdeDict::<String, u32>::new()?;
    /// d.update([("a".to_string(), 1), ("b".to_string(), 2)])?;
    /// assert_eq!(d.iter()?.map(|(_, v)| v).sum::<u32>(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&self) -> Result<std::vec::IntoIter<(K, V)>, DictError> {
        Ok(self.items()?.into_iter())
    }

    /// The keys of a consistent snapshot.
    ///
    /// # Errors
    /// As [`items`](Self::items).
    ///
    /// ```
    /// let d = shmproc::SerdeDict::<String, u32>::new()?;
    /// d.insert(&"k".into(), &7)?;
    /// assert_eq!(d.keys()?, vec!["k".to_string()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn keys(&self) -> Result<Vec<K>, DictError> {
        self.inner
            .items()?
            .into_iter()
            .map(|(k, _)| Self::dec(&k))
            .collect()
    }

    /// The values of a consistent snapshot.
    ///
    /// # Errors
    /// As [`items`](Self::items).
    ///
    /// ```
    /// let d = shmproc::SerdeDict::<String, u32>::new()?;
    /// d.insert(&"k".into(), &7)?;
    /// assert_eq!(d.values()?, vec![7]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn values(&self) -> Result<Vec<V>, DictError> {
        self.inner
            .items()?
            .into_iter()
            .map(|(_, v)| Self::dec(&v))
            .collect()
    }
}
