//! The object model (layer 5): written once for every primitive.
//!
//! A primitive declares what its objects are by implementing [`Object`]: its state block
//! (a [`SharedState`] type of the algorithm layer), its [`ObjectKind`], the parameters a
//! new object is made from and how they are recorded, how big the block is, and how its
//! zeroed memory becomes the initial state. This module gives every primitive, from that
//! declaration alone:
//!
//! * the constructors: [`make`] (anonymous or named, in any arena) and [`find`] (by
//!   name), each a one-line body in the handle's `new` / `new_in` / `create` / `open`;
//! * the check on open: the kind, the type fingerprint, the parameters decoded and
//!   re-checked against the block's real size ([`Object::size`] must fit in it), so a
//!   handle never indexes past its block whatever a peer wrote;
//! * `Debug` of the handle ([`Obj::debug`]), from one description of the live state
//!   ([`Object::inspect`]) that the inspection tool will read too;
//! * [`Obj`], the reference a handle holds: its clone and drop are where reference
//!   counting and freeing go, and its arena and offset are what a handle travels as.
//!
//! The split is lock_api's: the algorithm (a `Raw*` type of [`crate::raw`]) knows
//! nothing of arenas or names; the handle knows nothing of directories or layouts; this
//! layer joins them.
//!
//! ```text
//!   Lock::create(&arena, "db")
//!     -> object::make::<Lock>(arena, Some("db"), ())
//!        -> Lock::size(&()), Lock::encode(&()), Arena::create_object(.., init)
//!        -> Lock::init(&(), fresh)          (writes the initial RawLock)
//!        -> Lock::from_obj(Obj { block, params })
//! ```

use crate::arena::{Arena, ObjectKind, Shm};
use crate::error::{Error, Result};
use crate::raw::SharedState;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;

/// What a kind of shared object is. Implemented by each handle type (`Lock`,
/// `Queue<T>`, ...), read only by this module.
pub(crate) trait Object: Sized {
    /// The state block at the start of the object's memory.
    type State: SharedState;
    /// What a new object is made from (a capacity, an initial value, ...); what
    /// [`encode`](Self::encode) records in the directory and [`decode`](Self::decode)
    /// gives back when the object is opened.
    type Params: Copy + fmt::Debug + Word + Send + Sync + 'static;
    /// The directory's kind of these objects.
    const KIND: ObjectKind;

    /// The type as errors and `Debug` name it (`"Lock"`, `"Queue<u64>"`).
    fn type_name() -> Cow<'static, str>;

    /// The fingerprint recorded with the object, checked on open: by default the state
    /// block's type; element-typed objects mix in their element type.
    fn fingerprint() -> u64 {
        crate::arena::fingerprint::<Self::State>()
    }

    /// Bytes of the block (the state and whatever trails it) for `params`, or why such
    /// an object cannot be made. Checked again on open, against the block's real size.
    fn size(params: &Self::Params) -> Result<usize> {
        let _ = params;
        Ok(core::mem::size_of::<Self::State>())
    }

    /// `params` as the directory's parameter word. By default the parameters' own
    /// [`Word`] encoding.
    fn encode(params: &Self::Params) -> u64 {
        params.to_word()
    }

    /// The parameters of an existing object, from its directory word and its state (both
    /// written by a peer, so both validated here). By default the [`Word`] decoding,
    /// then [`check`](Self::check) against the state.
    ///
    /// # Errors
    /// [`Error::Corrupt`] (or [`Error::WrongType`]) when they are impossible.
    fn decode(param: u64, state: &Self::State) -> Result<Self::Params> {
        let params = Self::Params::from_word(param).ok_or_else(|| {
            Error::Corrupt(format!(
                "its parameter word {param:#x} is not one {} is made with",
                crate::error::with_article(&Self::type_name())
            ))
        })?;
        Self::check(&params, state)?;
        Ok(params)
    }

    /// Whether decoded parameters agree with the state (a barrier's party count, a bounded
    /// semaphore's bound). By default they do.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when they disagree.
    fn check(params: &Self::Params, state: &Self::State) -> Result<()> {
        let _ = (params, state);
        Ok(())
    }

    /// Writes the initial state into the block's zeroed memory (before anyone else can
    /// see it). By default nothing: all zero bytes are the initial state.
    fn init(params: &Self::Params, fresh: Fresh<'_, Self::State>) {
        let _ = (params, fresh);
    }

    /// The live state as named values: what `Debug` of a handle and the inspection tool
    /// show. By default, the parameters.
    fn inspect(state: &Self::State, params: &Self::Params, out: &mut Inspect) {
        let _ = state;
        out.field("params", format!("{params:?}"));
    }
}

/// A parameter that fits the directory's parameter word.
pub(crate) trait Word: Sized {
    /// The word.
    fn to_word(&self) -> u64;
    /// The parameter a (peer-written) word describes; `None` when it describes none, or
    /// when the word alone cannot say (a queue's geometry needs its element type: its
    /// [`Object::decode`] does the work).
    fn from_word(word: u64) -> Option<Self>;
}

impl Word for () {
    fn to_word(&self) -> u64 {
        0
    }
    fn from_word(word: u64) -> Option<()> {
        (word == 0).then_some(())
    }
}

impl Word for u32 {
    fn to_word(&self) -> u64 {
        u64::from(*self)
    }
    fn from_word(word: u64) -> Option<u32> {
        u32::try_from(word).ok()
    }
}

impl Word for usize {
    fn to_word(&self) -> u64 {
        *self as u64
    }
    fn from_word(word: u64) -> Option<usize> {
        usize::try_from(word).ok()
    }
}

/// A handle type made from an [`Obj`]: what [`make`] and [`find`] return.
pub(crate) trait Handle: Object {
    /// The handle over `obj` (checking what only the handle knows, e.g. that a queue's
    /// slots fit its element type).
    ///
    /// # Errors
    /// When `obj` does not fit this handle.
    fn from_obj(obj: Obj<Self>) -> Result<Self>;

    /// The reference this handle holds.
    fn obj(&self) -> &Obj<Self>;
}

/// A handle over one object: it travels to other processes as that object (its arena,
/// offset and generation; `process::travel` implements `Travel` for every `Shared` type
/// through one macro). Every [`Handle`] is one; so are the handles over another type's
/// object (`Value<T>` over its block, a typed dict over the byte dict's table).
pub(crate) trait Shared: Sized {
    /// The object the handle refers to.
    type Of: Object + 'static;
    /// The reference the handle holds.
    fn shared(&self) -> &Obj<Self::Of>;
    /// The handle over `obj`, which arrived from another process.
    ///
    /// # Errors
    /// When `obj` does not fit this handle.
    fn rebuild(obj: Obj<Self::Of>) -> Result<Self>;

    /// Whether this handle can travel alone (by default it can).
    ///
    /// # Errors
    /// Why it cannot.
    fn can_travel(&self) -> Result<()> {
        Ok(())
    }
}

impl<H: Handle + 'static> Shared for H {
    type Of = H;
    fn shared(&self) -> &Obj<H> {
        self.obj()
    }
    fn rebuild(obj: Obj<H>) -> Result<H> {
        H::from_obj(obj)
    }
}

/// A new object of type `H` in `arena`, named `name` (so that [`find`] finds it) or
/// anonymous.
///
/// # Errors
/// What [`Object::size`] says of `params`; a bad or taken name; a full arena.
pub(crate) fn make<H: Handle>(arena: &Arena, name: Option<&str>, params: H::Params) -> Result<H> {
    H::from_obj(Obj::create(arena, name, params)?)
}

/// The object named `name` in `arena`, which must be an `H`.
///
/// # Errors
/// [`Error::NotFound`]; [`Error::WrongType`] for another kind or element type;
/// [`Error::Corrupt`] when its parameters do not fit its block.
pub(crate) fn find<H: Handle>(arena: &Arena, name: &str) -> Result<H> {
    H::from_obj(Obj::open(arena, name)?)
}

/// The zeroed, not yet published memory of a new object, for [`Object::init`].
pub(crate) struct Fresh<'a, S> {
    base: NonNull<u8>,
    len: usize,
    _state: PhantomData<&'a mut S>,
}

impl<S> Fresh<'_, S> {
    /// Writes the initial state block.
    pub(crate) fn write(&mut self, state: S) {
        // SAFETY: `base` is the start of a zeroed block of `len >= size_of::<S>()` bytes,
        // aligned to CACHE_LINE >= align_of::<S>() (asserted by `create_object`), that no
        // other thread or process can see yet (`Obj::create`).
        unsafe { self.base.cast::<S>().as_ptr().write(state) }
    }

    /// The bytes after offset `from` (the slots, the table, the data that trail the
    /// state); empty when `from` is past the end.
    pub(crate) fn tail(&mut self, from: usize) -> &mut [u8] {
        let from = from.min(self.len);
        // SAFETY: as in `write`: the block is ours alone until it is published, and
        // `from..len` lies inside it.
        unsafe { core::slice::from_raw_parts_mut(self.base.as_ptr().add(from), self.len - from) }
    }
}

/// The reference to an object that every handle holds: the block in its arena, and the
/// validated parameters.
///
/// Cloning it clones the reference (the arena stays mapped while any lives); it is where
/// the object's reference count and its description for travel belong.
///
/// `repr(C)`: two `Obj`s with the same state and parameter types have one layout, so
/// [`recast_ref`](Self::recast_ref) may view one as the other.
#[repr(C)]
pub(crate) struct Obj<O: Object> {
    block: Shm<O::State>,
    params: O::Params,
}

impl<O: Object> Clone for Obj<O> {
    fn clone(&self) -> Self {
        Obj {
            block: self.block.clone(),
            params: self.params,
        }
    }
}

impl<O: Object> Deref for Obj<O> {
    type Target = O::State;
    #[inline(always)]
    fn deref(&self) -> &O::State {
        &self.block
    }
}

impl<O: Object> Obj<O> {
    /// A new object (what [`make`] builds its handle from).
    pub(crate) fn create(arena: &Arena, name: Option<&str>, params: O::Params) -> Result<Self> {
        Self::create_with(arena, name, params, |_| {})
    }

    /// A new object whose memory `fill` completes after [`Object::init`], before anyone
    /// can see it: for what the parameters cannot carry (a value's initial data).
    pub(crate) fn create_with(
        arena: &Arena,
        name: Option<&str>,
        params: O::Params,
        fill: impl FnOnce(&mut Fresh<'_, O::State>),
    ) -> Result<Self> {
        let size = O::size(&params)?;
        let block = arena.create_object::<O::State>(
            name,
            O::KIND,
            O::fingerprint(),
            size,
            O::encode(&params),
            |base, len| {
                let fresh = || Fresh {
                    base,
                    len,
                    _state: PhantomData,
                };
                O::init(&params, fresh());
                fill(&mut fresh());
            },
        )?;
        Ok(Obj { block, params })
    }

    /// The object `name` (what [`find`] builds its handle from).
    pub(crate) fn open(arena: &Arena, name: &str) -> Result<Self> {
        let (block, param) =
            arena.open_object::<O::State>(name, O::KIND, O::fingerprint(), &O::type_name())?;
        Self::checked(block, param, &format!("{name:?}"))
    }

    /// The reference over an opened block, after decoding its parameters and checking
    /// them against its real size: the check every open makes.
    fn checked(block: Shm<O::State>, param: u64, name: &str) -> Result<Self> {
        let corrupt = |why: String| Error::Corrupt(format!("{} {name}: {why}", O::type_name()));
        let params = O::decode(param, &block).map_err(|e| match e {
            Error::Corrupt(why) => corrupt(why),
            e => e,
        })?;
        let needed = O::size(&params).map_err(|e| corrupt(e.to_string()))?;
        if needed > block.len() {
            return Err(corrupt(format!(
                "its parameters need {needed} bytes, its block has {}",
                block.len()
            )));
        }
        Ok(Obj { block, params })
    }

    /// The object whose block starts at `offset` in `arena` (a handle that travelled),
    /// checked as [`open`](Self::open) checks a named one.
    pub(crate) fn open_at(arena: &Arena, offset: u64) -> Result<Self> {
        let (block, param) =
            arena.open_object_at::<O::State>(offset, O::KIND, O::fingerprint(), &O::type_name())?;
        Self::checked(block, param, &format!("@{offset}"))
    }

    /// The same reference, seen as a `P`: a handle that is a typed view of another
    /// kind's layout (a `TypedDict` works through the byte dict's table). Same state
    /// block, same parameters; the kind and fingerprint were checked as `O`'s.
    pub(crate) fn recast<P: Object<State = O::State, Params = O::Params>>(self) -> Obj<P> {
        Obj {
            block: self.block,
            params: self.params,
        }
    }

    /// [`recast`](Self::recast) by reference: the handle that wraps another kind's
    /// handle (a `SerdeList` over its `ByteList`) hands out its reference as its own.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn recast_ref<P: Object<State = O::State, Params = O::Params>>(&self) -> &Obj<P> {
        // SAFETY: `Obj` is `repr(C)` and its fields' types are `Shm<O::State>` and
        // `O::Params`, the same for `P` as for `O` (the bound), so `Obj<O>` and `Obj<P>`
        // have one layout and validity; the reference keeps `self`'s lifetime.
        unsafe { &*(self as *const Obj<O>).cast::<Obj<P>>() }
    }

    /// The validated parameters.
    #[inline(always)]
    /// The object's generation: unique in its arena, so a handle that arrives after its
    /// object was freed and another made at the same offset is told apart.
    pub(crate) fn generation(&self) -> u64 {
        self.block.generation()
    }

    pub(crate) fn params(&self) -> &O::Params {
        &self.params
    }

    /// The block: its start, its size, its arena.
    #[inline(always)]
    pub(crate) fn block(&self) -> &Shm<O::State> {
        &self.block
    }

    /// `Debug` of a handle: its type name and the fields [`Object::inspect`] gives, then
    /// `extra` (what only the handle knows, e.g. its spin policy).
    pub(crate) fn debug(
        &self,
        f: &mut fmt::Formatter<'_>,
        extra: &[(&str, &dyn fmt::Debug)],
    ) -> fmt::Result {
        let mut out = Inspect::default();
        O::inspect(&self.block, &self.params, &mut out);
        let name = O::type_name();
        let mut d = f.debug_struct(&name);
        for (k, v) in &out.fields {
            d.field(k, v);
        }
        for (k, v) in extra {
            d.field(k, v);
        }
        d.finish()
    }
}

/// The live state of an object as named values, gathered by [`Object::inspect`].
#[derive(Debug, Default)]
pub(crate) struct Inspect {
    fields: Vec<(&'static str, Field)>,
}

impl Inspect {
    /// Adds a field.
    pub(crate) fn field(&mut self, name: &'static str, value: impl Into<Field>) {
        self.fields.push((name, value.into()));
    }

    /// The fields gathered, in order (for `crate::inspect`, not built under loom).
    #[cfg_attr(shmproc_loom, allow(dead_code))]
    pub(crate) fn fields(&self) -> &[(&'static str, Field)] {
        &self.fields
    }
}

/// One value of an [`Inspect`]: a number, a flag, a text, or nothing.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Field {
    /// A count, a size, a pid.
    Int(i128),
    /// A flag.
    Bool(bool),
    /// Anything else, already formatted.
    Text(String),
    /// An absent value (no holder).
    None,
}

impl fmt::Debug for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Int(v) => fmt::Debug::fmt(v, f),
            Field::Bool(v) => fmt::Debug::fmt(v, f),
            Field::Text(v) => f.write_str(v),
            Field::None => f.write_str("None"),
        }
    }
}

macro_rules! int_fields {
    ($($t:ty),*) => {$(
        impl From<$t> for Field {
            fn from(v: $t) -> Field {
                Field::Int(v as i128)
            }
        }
    )*};
}
int_fields!(u8, u16, u32, u64, usize, i32, i64);

impl From<bool> for Field {
    fn from(v: bool) -> Field {
        Field::Bool(v)
    }
}

impl From<String> for Field {
    fn from(v: String) -> Field {
        Field::Text(v)
    }
}

impl From<&str> for Field {
    fn from(v: &str) -> Field {
        Field::Text(v.to_string())
    }
}

impl<T: Into<Field>> From<Option<T>> for Field {
    fn from(v: Option<T>) -> Field {
        v.map_or(Field::None, Into::into)
    }
}
