//! [`RawBlock`]: raw shared bytes, found by name like any object.

use crate::arena::{Arena, ObjectKind};
use crate::error::{Error, Result};
use crate::object::{self, Handle, Inspect, Obj, Object};
use crate::raw::Opaque;
use std::borrow::Cow;
use std::fmt;

/// A block of raw shared bytes in an arena: zero-filled, [`CACHE_LINE`](crate::arena::CACHE_LINE)-aligned, found by
/// name like any object. What lives in it is up to the caller (a `pthread_mutex_t`, a
/// struct of atomics, ...); the arena only guarantees that the bytes are shared and stay
/// mapped while the handle lives.
///
/// ```
/// use shmproc::{shared::RawBlock, Arena};
/// let arena = Arena::anonymous(1 << 20)?;
/// let a = RawBlock::create(&arena, "scratch", 100)?;
/// let b = RawBlock::open(&arena, "scratch")?;
/// assert_eq!(a.as_ptr(), b.as_ptr());
/// assert!(b.len() >= 100);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct RawBlock {
    obj: Obj<RawBlock>,
}

impl Object for RawBlock {
    type State = Opaque;
    /// The length asked for.
    type Params = usize;
    const KIND: ObjectKind = ObjectKind::Raw;

    fn type_name() -> Cow<'static, str> {
        "raw block".into()
    }

    fn fingerprint() -> u64 {
        0
    }

    fn size(&len: &usize) -> Result<usize> {
        if len == 0 {
            return Err(Error::InvalidArgument(
                "a raw block needs at least 1 byte".into(),
            ));
        }
        Ok(len)
    }

    fn inspect(_: &Opaque, len: &usize, out: &mut Inspect) {
        out.field("len", *len);
    }
}

impl Handle for RawBlock {
    fn from_obj(obj: Obj<RawBlock>) -> Result<RawBlock> {
        Ok(RawBlock { obj })
    }

    fn obj(&self) -> &Obj<RawBlock> {
        &self.obj
    }
}

impl fmt::Debug for RawBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.obj.debug(f, &[])
    }
}

impl RawBlock {
    /// A new unnamed block of at least `len` bytes.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `len == 0`; a full arena.
    pub fn new_in(arena: &Arena, len: usize) -> Result<RawBlock> {
        object::make(arena, None, len)
    }

    /// A new block of at least `len` bytes named `name`.
    ///
    /// # Errors
    /// As [`RawBlock::new_in`], plus [`Error::AlreadyExists`] and bad names.
    pub fn create(arena: &Arena, name: &str, len: usize) -> Result<RawBlock> {
        object::make(arena, Some(name), len)
    }

    /// The block named `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`], or [`Error::WrongType`] when `name` is another kind of object.
    pub fn open(arena: &Arena, name: &str) -> Result<RawBlock> {
        object::find(arena, name)
    }

    /// The first byte; valid for [`len`](Self::len) bytes while `self` lives.
    pub fn as_ptr(&self) -> *mut u8 {
        self.obj.block().base()
    }

    /// Usable bytes (the request, rounded up to [`CACHE_LINE`](crate::arena::CACHE_LINE)).
    pub fn len(&self) -> usize {
        self.obj.block().len()
    }

    /// Never true: blocks have at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }
}
