//! The arena: one shared mapping with a header, a directory of named objects and a bump
//! allocator. Every shmproc primitive is a small `#[repr(C)]` block inside an arena.
//!
//! * [`Arena::anonymous`] maps a sealed `memfd` with `MAP_SHARED`: processes `fork`ed
//!   after it is made share it.
//! * [`Arena::create`] / [`Arena::open`] use a named segment in `/dev/shm`, for processes
//!   that are not related by `fork`. Creation is exclusive (`O_EXCL`), mode `0600`, and
//!   never follows a symbolic link.
//!
//! Objects are found by name and type-checked when found. Nothing in the arena is a
//! pointer; every offset read from it is validated against the mapping before use, so a
//! peer that scribbles on the arena can make calls fail but cannot make this process read
//! or write outside the mapping. (A peer that *truncates* a named segment can still make
//! this process fault with `SIGBUS`: the kernel offers no way to stop that for `/dev/shm`
//! files. Anonymous arenas are sealed against it.)
//!
//! Memory is never freed: objects live as long as the arena.
//!
//! # Example
//! ```
//! use shmproc::Arena;
//! let arena = Arena::anonymous(1 << 20)?;
//! assert_eq!(arena.size(), 1 << 20);
//! assert!(arena.available() > 0);
//! # Ok::<(), shmproc::Error>(())
//! ```

mod layout;

pub(crate) use layout::{DirEntry, EntryCopy, Header};
pub use layout::{CACHE_LINE, MAX_NAME, MIN_SIZE};

use crate::error::{Error, Result};
use crate::raw::lock::RobustLock;
use crate::raw::SharedState;
use crate::sync::liveness::Procfs;
use crate::sync::spin::SpinPolicy;
use crate::sync::Ordering;
use layout::*;
use memmap2::{MmapOptions, MmapRaw};
use rustix::fd::{AsFd, OwnedFd};
use std::fmt;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, Weak};

/// What kind of object a directory entry describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
#[non_exhaustive]
pub enum ObjectKind {
    /// [`Lock`](crate::Lock).
    Lock = 1,
    /// `RLock`.
    RLock = 2,
    /// [`Semaphore`](crate::Semaphore).
    Semaphore = 3,
    /// [`Event`](crate::Event).
    Event = 4,
    /// `Condition`.
    Condition = 5,
    /// `Barrier`.
    Barrier = 6,
    /// `Queue<T>` / `SimpleQueue<T>`.
    Queue = 7,
    /// `JoinableQueue<T>`.
    JoinableQueue = 8,
    /// A queue of byte messages.
    ByteQueue = 9,
    /// `Pipe`.
    Pipe = 10,
    /// `Value<T>`.
    Value = 11,
    /// `Array<T>`.
    Array = 12,
    /// `SharedDict`.
    SharedDict = 13,
    /// A raw block of bytes.
    Raw = 14,
    /// [`BoundedSemaphore`](crate::BoundedSemaphore).
    BoundedSemaphore = 15,
}

impl ObjectKind {
    /// Every kind, in numeric order.
    pub const ALL: [ObjectKind; 15] = [
        ObjectKind::Lock,
        ObjectKind::RLock,
        ObjectKind::Semaphore,
        ObjectKind::Event,
        ObjectKind::Condition,
        ObjectKind::Barrier,
        ObjectKind::Queue,
        ObjectKind::JoinableQueue,
        ObjectKind::ByteQueue,
        ObjectKind::Pipe,
        ObjectKind::Value,
        ObjectKind::Array,
        ObjectKind::SharedDict,
        ObjectKind::Raw,
        ObjectKind::BoundedSemaphore,
    ];

    /// The kind with this number, if any.
    pub fn from_u32(v: u32) -> Option<ObjectKind> {
        Self::ALL.iter().copied().find(|k| *k as u32 == v)
    }
}

/// A fingerprint of a Rust type: its name, size and alignment, hashed (FNV-1a).
///
/// Stored with each typed object so that opening a `Queue<u64>` as a `Queue<u32>` is an
/// error. Two builds that name the same type differently (another crate path) disagree:
/// use the same type definition on both sides.
pub fn fingerprint<T: ?Sized>() -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(core::any::type_name::<T>().as_bytes());
    h
}

/// Fingerprint of a sized type, with its size and alignment mixed in.
pub fn fingerprint_sized<T>() -> u64 {
    let mut h = fingerprint::<T>();
    for v in [
        core::mem::size_of::<T>() as u64,
        core::mem::align_of::<T>() as u64,
    ] {
        h = (h ^ v).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// How long `create_object` waits for another process's directory insert.
const DIR_LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

struct Inner {
    map: MmapRaw,
    len: u64,
    name: Option<String>,
    _fd: OwnedFd,
}

/// The process-wide default arena (see [`Arena::global`]).
static GLOBAL: Mutex<Option<Arena>> = Mutex::new(None);

/// A handle to an arena that does not keep it mapped (see [`Arena::downgrade`]).
#[derive(Clone)]
pub(crate) struct WeakArena(Weak<Inner>);

impl WeakArena {
    /// The arena, if some handle still keeps it mapped.
    pub(crate) fn upgrade(&self) -> Option<Arena> {
        self.0.upgrade().map(|inner| Arena { inner })
    }
}

/// A handle to a shared arena. Cheap to clone; the mapping lives until the last clone (and
/// every object handle made from it) is dropped.
#[derive(Clone)]
pub struct Arena {
    inner: Arc<Inner>,
}

impl fmt::Debug for Arena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arena")
            .field("name", &self.inner.name)
            .field("size", &self.inner.len)
            .field("used", &self.used())
            .finish()
    }
}

fn check_size(size: usize) -> Result<u64> {
    let size = size as u64;
    if !(MIN_SIZE..=MAX_SIZE).contains(&size) {
        return Err(Error::InvalidArgument(format!(
            "arena size {size} is outside {MIN_SIZE}..={MAX_SIZE} bytes"
        )));
    }
    Ok(size)
}

/// Checks a segment or object name: 1..=max bytes, no `/`, no NUL.
pub(crate) fn check_name(name: &str, max: usize) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidName("a name may not be empty".into()));
    }
    if name.len() > max {
        return Err(Error::InvalidName(format!(
            "{name:?} is longer than {max} bytes"
        )));
    }
    if name.contains('/') || name.contains('\0') {
        return Err(Error::InvalidName(format!("{name:?} contains '/' or NUL")));
    }
    Ok(())
}

/// `/dev/shm` path component for a segment name.
pub(crate) fn shm_path(name: &str) -> String {
    format!("/{name}")
}

impl Arena {
    /// Creates an anonymous arena of `size` bytes, shared with every process `fork`ed after
    /// this call (and, through its file descriptor, with any process it is passed to).
    ///
    /// The backing `memfd` is sealed against shrinking and growing, so no process can make
    /// another fault by truncating it. Pages are allocated on first touch: a large arena
    /// costs nothing until it is used.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a size outside [`MIN_SIZE`]`..=1 TiB`;
    /// [`Error::Os`] when the kernel refuses the memory.
    ///
    /// # Example
    /// ```
    /// let arena = shmproc::Arena::anonymous(1 << 20)?;
    /// let lock = shmproc::Lock::new_in(&arena)?;
    /// drop(lock.acquire());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn anonymous(size: usize) -> Result<Arena> {
        use rustix::fs::{fcntl_add_seals, ftruncate, memfd_create, MemfdFlags, SealFlags};
        let size = check_size(size)?;
        let fd = memfd_create(
            "shmproc-arena",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )
        .map_err(|e| Error::os("memfd_create", e))?;
        ftruncate(&fd, size).map_err(|e| Error::os("ftruncate", e))?;
        fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
            .map_err(|e| Error::os("fcntl(F_ADD_SEALS)", e))?;
        let arena = Self::map(fd, size, None)?;
        arena.init_header();
        Ok(arena)
    }

    /// Creates a named arena of `size` bytes in `/dev/shm/<name>`, for processes that are
    /// not related by `fork` to attach with [`Arena::open`].
    ///
    /// Creation is exclusive (an existing name is an error, even a symbolic link), and the
    /// segment is readable and writable by this user only (mode `0600`). The name stays
    /// until [`Arena::unlink`] or [`Arena::unlink_name`] removes it.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for an empty name or one with `/` or NUL;
    /// [`Error::AlreadyExists`] when the name is taken; [`Error::Os`] for other failures.
    ///
    /// # Example
    /// ```
    /// use shmproc::Arena;
    /// let name = format!("shmproc-doc-{}", std::process::id());
    /// let a = Arena::create(&name, 1 << 20)?;
    /// let b = Arena::open(&name)?;
    /// assert_eq!(b.size(), a.size());
    /// a.unlink()?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn create(name: &str, size: usize) -> Result<Arena> {
        use rustix::fs::{ftruncate, Mode};
        use rustix::shm;
        check_name(name, 200)?;
        let size = check_size(size)?;
        let path = shm_path(name);
        let fd = shm::open(
            path.as_str(),
            shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR,
            Mode::RUSR | Mode::WUSR,
        )
        .map_err(|e| match e {
            rustix::io::Errno::EXIST => Error::AlreadyExists(name.to_string()),
            e => Error::os("shm_open", e),
        })?;
        let made = (|| {
            ftruncate(&fd, size).map_err(|e| Error::os("ftruncate", e))?;
            Self::map(fd, size, Some(name.to_string()))
        })();
        match made {
            Ok(arena) => {
                arena.init_header();
                Ok(arena)
            }
            Err(e) => {
                let _ = shm::unlink(path.as_str());
                Err(e)
            }
        }
    }

    /// Attaches to the named arena `/dev/shm/<name>`, validating its header and every
    /// directory entry before anything is used.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such segment; [`Error::NotAnArena`],
    /// [`Error::Version`], [`Error::Truncated`] or [`Error::Corrupt`] when it is not a
    /// valid arena of this format.
    pub fn open(name: &str) -> Result<Arena> {
        use rustix::fs::Mode;
        use rustix::shm;
        check_name(name, 200)?;
        let fd =
            shm::open(shm_path(name).as_str(), shm::OFlags::RDWR, Mode::empty()).map_err(|e| {
                match e {
                    rustix::io::Errno::NOENT => Error::NotFound(name.to_string()),
                    e => Error::os("shm_open", e),
                }
            })?;
        Self::attach(fd, Some(name.to_string()))
    }

    /// Attaches to an arena through a file descriptor (a `memfd` passed over a socket, a
    /// file in `/dev/shm`, ...), validating it exactly as [`Arena::open`] does.
    ///
    /// # Errors
    /// As [`Arena::open`].
    pub fn from_fd(fd: OwnedFd) -> Result<Arena> {
        Self::attach(fd, None)
    }

    fn attach(fd: OwnedFd, name: Option<String>) -> Result<Arena> {
        let len = rustix::fs::fstat(&fd)
            .map_err(|e| Error::os("fstat", e))?
            .st_size;
        let len = u64::try_from(len).unwrap_or(0);
        if len < MIN_SIZE {
            return Err(Error::Truncated {
                needed: MIN_SIZE,
                found: len,
            });
        }
        if len > MAX_SIZE {
            return Err(Error::Corrupt(format!(
                "file of {len} bytes is larger than any arena"
            )));
        }
        let arena = Self::map(fd, len, name)?;
        arena.validate()?;
        Ok(arena)
    }

    fn map(fd: OwnedFd, len: u64, name: Option<String>) -> Result<Arena> {
        let map = MmapOptions::new()
            .len(len as usize)
            .map_raw(&fd.as_fd())
            .map_err(|e| Error::os("mmap", e))?;
        Ok(Arena {
            inner: Arc::new(Inner {
                map,
                len,
                name,
                _fd: fd,
            }),
        })
    }

    /// Writes a fresh header into a new, zero-filled mapping.
    fn init_header(&self) {
        let h = self.header_ptr();
        // SAFETY: the mapping is new, at least MIN_SIZE bytes, page-aligned, and no other
        // process can see it yet (anonymous: not forked yet; named: `magic` is still 0,
        // and openers refuse a header without it). Plain fields are written through raw
        // pointers, never through references.
        unsafe {
            (&raw mut (*h).version).write(VERSION);
            (&raw mut (*h).dir_capacity).write(DIR_CAPACITY);
            (&raw mut (*h).layout_hash).write(LAYOUT_HASH);
            (&raw mut (*h).total_size).write(self.inner.len);
            (&raw mut (*h).creator_pid).write(crate::sync::liveness::current_pid());
        }
        let header = self.header();
        // Relaxed: published by the Release store of `magic` below.
        header.bump.store(DATA_START, Ordering::Relaxed);
        // Release: pairs with the Acquire load of `magic` in `header_copy`, so an opener
        // that sees the magic number sees every field above.
        header.magic.store(MAGIC, Ordering::Release);
    }

    fn header_ptr(&self) -> *mut Header {
        self.inner.map.as_mut_ptr().cast::<Header>()
    }

    /// The header, for its atomic fields only (plain fields are read by `header_copy`).
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: the mapping is at least MIN_SIZE > size_of::<Header>() bytes and
        // page-aligned; every field that another process may write concurrently is an
        // atomic, and plain fields are only read through `header_copy`'s volatile reads.
        unsafe { &*self.header_ptr() }
    }

    fn header_copy(&self) -> HeaderCopy {
        let h = self.header_ptr();
        let header = self.header();
        // Acquire: pairs with the Release store in `init_header`.
        let magic = header.magic.load(Ordering::Acquire);
        // SAFETY: `h` points at a mapped, aligned header (see `header`). Volatile reads of
        // plain integers: any bit pattern is a valid value, and the copy is validated.
        unsafe {
            HeaderCopy {
                magic,
                version: (&raw const (*h).version).read_volatile(),
                dir_capacity: (&raw const (*h).dir_capacity).read_volatile(),
                layout_hash: (&raw const (*h).layout_hash).read_volatile(),
                total_size: (&raw const (*h).total_size).read_volatile(),
                bump: header.bump.load(Ordering::Acquire),
            }
        }
    }

    fn entry_ptr(&self, index: usize) -> *mut DirEntry {
        debug_assert!(index < DIR_CAPACITY as usize);
        // SAFETY: HEADER_SIZE + index * ENTRY_SIZE + ENTRY_SIZE <= DATA_START <= len for
        // every index < DIR_CAPACITY, so the pointer stays inside the mapping.
        unsafe {
            self.inner
                .map
                .as_mut_ptr()
                .add((HEADER_SIZE + index as u64 * ENTRY_SIZE) as usize)
                .cast::<DirEntry>()
        }
    }

    /// Copies entry `index` out of shared memory; `None` when it is not READY.
    fn entry_copy(&self, index: usize) -> Option<EntryCopy> {
        let e = self.entry_ptr(index);
        // SAFETY: `e` is in bounds and aligned (see `entry_ptr`); `state` is an atomic.
        let state = unsafe { &(*e).state };
        // Acquire: pairs with the Release store of ENTRY_READY in `create_object`, so the
        // fields read below are the ones written before it.
        if state.load(Ordering::Acquire) != ENTRY_READY {
            return None;
        }
        // SAFETY: as above; plain integer fields read volatile into a private copy that
        // is validated before use.
        unsafe {
            Some(EntryCopy {
                kind: (&raw const (*e).kind).read_volatile(),
                name_len: (&raw const (*e).name_len).read_volatile(),
                type_fp: (&raw const (*e).type_fp).read_volatile(),
                offset: (&raw const (*e).offset).read_volatile(),
                size: (&raw const (*e).size).read_volatile(),
                param: (&raw const (*e).param).read_volatile(),
                name: (&raw const (*e).name).read_volatile(),
            })
        }
    }

    /// Validates the header and every directory entry (on attach).
    fn validate(&self) -> Result<()> {
        // Entries first, the header (and its allocation mark) after: see `bump_after`.
        let entries: Vec<(usize, EntryCopy)> = (0..DIR_CAPACITY as usize)
            .filter_map(|i| Some((i, self.entry_copy(i)?)))
            .collect();
        let h = self.header_copy();
        h.validate(self.inner.len)?;
        let mut spans = Vec::with_capacity(entries.len());
        for (i, e) in &entries {
            e.validate(*i, h.bump)?;
            spans.push((e.offset, e.offset + e.size, *i));
        }
        spans.sort_unstable();
        for w in spans.windows(2) {
            if w[1].0 < w[0].1 {
                return Err(Error::Corrupt(format!(
                    "directory entries {} and {} overlap",
                    w[0].2, w[1].2
                )));
            }
        }
        Ok(())
    }

    /// The current allocation mark, validated against the mapping.
    ///
    /// To bound an entry by it, read it *after* copying the entry (`bump_after`): the
    /// creator advances the mark before it publishes the entry with a Release store, and
    /// the copy's Acquire load of the entry's state makes that advance visible, so the mark
    /// read afterwards covers the entry. Read before, a mark can be older than an entry
    /// published in between, and a sound entry would look out of bounds.
    fn bump(&self) -> Result<u64> {
        // Acquire: with the Acquire load of an entry's state before it (see above), sees
        // at least the mark stored before that entry was published.
        let bump = self.header().bump.load(Ordering::Acquire);
        if bump < DATA_START || bump > self.inner.len || bump % CACHE_LINE != 0 {
            return Err(Error::Corrupt(format!(
                "allocation mark {bump} is out of range"
            )));
        }
        Ok(bump)
    }

    /// Total size of the arena in bytes.
    pub fn size(&self) -> usize {
        self.inner.len as usize
    }

    /// Bytes handed out to objects so far (header and directory excluded).
    pub fn used(&self) -> usize {
        self.bump()
            .map(|b| (b - DATA_START) as usize)
            .unwrap_or(self.size())
    }

    /// Bytes still free for new objects.
    pub fn available(&self) -> usize {
        self.bump()
            .map(|b| (self.inner.len - b) as usize)
            .unwrap_or(0)
    }

    /// The segment name of a named arena (`None` for an anonymous one).
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// Removes the name of this named arena from `/dev/shm`. Processes that are attached
    /// keep their mapping; no new process can attach. A no-op for anonymous arenas.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the name was already removed.
    pub fn unlink(&self) -> Result<()> {
        match &self.inner.name {
            Some(name) => Self::unlink_name(name),
            None => Ok(()),
        }
    }

    /// Removes `/dev/shm/<name>` (for cleaning up after a creator that died).
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such segment.
    pub fn unlink_name(name: &str) -> Result<()> {
        check_name(name, 200)?;
        rustix::shm::unlink(shm_path(name).as_str()).map_err(|e| match e {
            rustix::io::Errno::NOENT => Error::NotFound(name.to_string()),
            e => Error::os("shm_unlink", e),
        })
    }

    /// The names and kinds of the named objects in the arena.
    pub fn objects(&self) -> Vec<(String, ObjectKind)> {
        let entries: Vec<(usize, EntryCopy)> = (0..DIR_CAPACITY as usize)
            .filter_map(|i| Some((i, self.entry_copy(i)?)))
            .collect();
        // After the entries: see `bump`.
        let bump = match self.bump() {
            Ok(b) => b,
            Err(_) => return Vec::new(),
        };
        entries
            .into_iter()
            .filter(|(i, e)| e.validate(*i, bump).is_ok())
            .map(|(_, e)| e)
            .filter(|e| e.name_len > 0)
            .filter_map(|e| Some((e.name().to_string(), ObjectKind::from_u32(e.kind)?)))
            .collect()
    }

    /// The process-wide default arena, made on first use: what `Lock::new()` and the other
    /// argument-less constructors allocate in.
    ///
    /// It is anonymous (inherited by `fork`), 256 MiB of address space by default (pages
    /// are only allocated when touched); set `SHMPROC_ARENA_SIZE` (bytes) to change it.
    /// As with Python's multiprocessing, make the objects **before** forking the processes
    /// that share them: a child that makes the default arena first gets its own.
    ///
    /// # Errors
    /// As [`Arena::anonymous`].
    pub fn global() -> Result<Arena> {
        let mut g = GLOBAL.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = g.as_ref() {
            return Ok(a.clone());
        }
        let size = std::env::var("SHMPROC_ARENA_SIZE")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(256 << 20);
        let a = Arena::anonymous(size)?;
        *g = Some(a.clone());
        Ok(a)
    }

    /// The global arena if this process has made (or been given) one; never makes it.
    pub(crate) fn global_if_made() -> Option<Arena> {
        GLOBAL.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Makes `arena` this process's global arena unless it already has one (a spawned
    /// child adopts its parent's, as a forked child inherits it). True if installed.
    pub(crate) fn install_global(arena: Arena) -> bool {
        let mut g = GLOBAL.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_some() {
            return false;
        }
        *g = Some(arena);
        true
    }

    /// The descriptor of the mapping (a `memfd` or a `/dev/shm` file): what travels.
    pub(crate) fn fd(&self) -> rustix::fd::BorrowedFd<'_> {
        self.inner._fd.as_fd()
    }

    /// Attaches through `fd`, keeping `name` (a named arena that travelled by descriptor).
    pub(crate) fn attach_fd(fd: OwnedFd, name: Option<String>) -> Result<Arena> {
        Self::attach(fd, name)
    }

    /// True when both handles are the same mapping.
    pub(crate) fn ptr_eq(&self, other: &Arena) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// A handle that does not keep the mapping alive.
    pub(crate) fn downgrade(&self) -> WeakArena {
        WeakArena(Arc::downgrade(&self.inner))
    }

    /// The object whose block starts at `offset`, checked as [`open_object`](Self::open_object)
    /// checks a named one (kind, type fingerprint, size): how a handle that travelled as
    /// (arena, offset, kind, fingerprint) is opened again.
    #[cfg_attr(shmproc_loom, allow(dead_code))]
    pub(crate) fn open_object_at<T: SharedState>(
        &self,
        offset: u64,
        kind: ObjectKind,
        type_fp: u64,
        type_desc: &str,
    ) -> Result<(Shm<T>, u64)> {
        assert!(core::mem::align_of::<T>() as u64 <= CACHE_LINE);
        let mut found = None;
        for i in 0..DIR_CAPACITY as usize {
            if let Some(e) = self.entry_copy(i) {
                if e.offset == offset {
                    // The mark after the entry: see `bump`.
                    e.validate(i, self.bump()?)?;
                    found = Some(e);
                    break;
                }
            }
        }
        let e = found.ok_or_else(|| {
            Error::NotFound(format!(
                "{type_desc} at offset {offset} (no object starts there)"
            ))
        })?;
        if e.kind != kind as u32 || e.type_fp != type_fp {
            let found = match ObjectKind::from_u32(e.kind) {
                Some(k) if k == kind => format!("{k:?} of another element type"),
                Some(k) => format!("{k:?}"),
                None => format!("kind {}", e.kind),
            };
            return Err(Error::WrongType {
                name: format!("@{offset}"),
                expected: type_desc.to_string(),
                found,
            });
        }
        if (e.size as usize) < core::mem::size_of::<T>() {
            return Err(Error::Corrupt(format!(
                "object at offset {offset} is smaller than its state block"
            )));
        }
        // SAFETY: `validate` checked offset + size <= bump <= len and offset % CACHE_LINE
        // == 0, so the block lies inside the mapping and is aligned for T
        // (align_of::<T>() <= CACHE_LINE, asserted above).
        let ptr =
            unsafe { NonNull::new_unchecked(self.inner.map.as_mut_ptr().add(e.offset as usize)) };
        Ok((
            Shm {
                arena: self.clone(),
                ptr: ptr.cast(),
                len: e.size as usize,
            },
            e.param,
        ))
    }

    /// Allocates and registers an object of `size` bytes (rounded up to [`CACHE_LINE`]),
    /// runs `init` on its zero-filled memory, then publishes it in the directory.
    ///
    /// `init` runs while the directory lock is held: keep it to writing initial values.
    pub(crate) fn create_object<T: SharedState>(
        &self,
        name: Option<&str>,
        kind: ObjectKind,
        type_fp: u64,
        size: usize,
        param: u64,
        init: impl FnOnce(NonNull<u8>, usize),
    ) -> Result<Shm<T>> {
        assert!(core::mem::align_of::<T>() as u64 <= CACHE_LINE);
        if let Some(name) = name {
            check_name(name, MAX_NAME)?;
        }
        let size = size.max(core::mem::size_of::<T>()).max(1) as u64;
        let aligned = size
            .checked_next_multiple_of(CACHE_LINE)
            .filter(|s| *s <= MAX_SIZE)
            .ok_or_else(|| {
                Error::InvalidArgument(format!("object of {size} bytes is too large"))
            })?;

        let header = self.header();
        // OwnerDied is fine here: a process that died mid-insert left at most an entry
        // that is not READY (ignored and overwritten) and a bump mark that skips some
        // bytes (leaked, never handed out twice). A live process that keeps the lock far
        // longer than any insert takes is a hostile or wedged peer: an error, not a hang.
        let deadline = crate::sync::time::deadline_after(DIR_LOCK_PATIENCE);
        if RobustLock::lock(&header.dir_lock, &Procfs, deadline, SpinPolicy::default()).is_err() {
            return Err(Error::Corrupt(format!(
                "the directory lock has been held by pid {} for more than {DIR_LOCK_PATIENCE:?}",
                header.dir_lock.holder().unwrap_or(0)
            )));
        }
        let result = (|| {
            if let Some(name) = name {
                if self.find_entry(name)?.is_some() {
                    return Err(Error::AlreadyExists(name.to_string()));
                }
            }
            let slot = (0..DIR_CAPACITY as usize)
                .find(|&i| self.entry_copy(i).is_none())
                .ok_or(Error::DirectoryFull)?;
            let offset = self.bump()?;
            let available = self.inner.len - offset;
            if aligned > available {
                return Err(Error::OutOfSpace {
                    requested: aligned,
                    available,
                });
            }
            // Relaxed: the allocation mark is only written under `dir_lock`, whose Release
            // unlock publishes it; readers outside the lock only use it as a bound.
            header.bump.store(offset + aligned, Ordering::Relaxed);
            // SAFETY: offset + aligned <= len, so the block is inside the mapping; it was
            // never handed out (the mark only grows), so it is zero-filled and nobody
            // else references it.
            let ptr =
                unsafe { NonNull::new_unchecked(self.inner.map.as_mut_ptr().add(offset as usize)) };
            init(ptr, aligned as usize);
            let e = self.entry_ptr(slot);
            let mut name_buf = [0u8; MAX_NAME];
            let name_len = name.map_or(0, |n| {
                name_buf[..n.len()].copy_from_slice(n.as_bytes());
                n.len()
            });
            // SAFETY: `e` is in bounds (see `entry_ptr`); the entry is FREE and we hold
            // `dir_lock`, so no other process writes it; readers skip it until READY.
            unsafe {
                (&raw mut (*e).kind).write_volatile(kind as u32);
                (&raw mut (*e).name_len).write_volatile(name_len as u32);
                (&raw mut (*e).flags).write_volatile(0);
                (&raw mut (*e).type_fp).write_volatile(type_fp);
                (&raw mut (*e).offset).write_volatile(offset);
                (&raw mut (*e).size).write_volatile(aligned);
                (&raw mut (*e).param).write_volatile(param);
                (&raw mut (*e).name).write_volatile(name_buf);
                // Release: pairs with the Acquire load in `entry_copy`: a reader that sees
                // READY sees the fields above and the object initialised by `init`.
                (*e).state.store(ENTRY_READY, Ordering::Release);
            }
            // Relaxed: a statistic, published with the unlock below.
            header.entries_used.fetch_add(1, Ordering::Relaxed);
            Ok(Shm {
                arena: self.clone(),
                ptr: ptr.cast(),
                len: aligned as usize,
            })
        })();
        header.dir_lock.unlock();
        result
    }

    fn find_entry(&self, name: &str) -> Result<Option<EntryCopy>> {
        for i in 0..DIR_CAPACITY as usize {
            if let Some(e) = self.entry_copy(i) {
                if e.name_len as usize == name.len()
                    && e.name.get(..name.len()) == Some(name.as_bytes())
                {
                    // The mark after the entry: see `bump`.
                    e.validate(i, self.bump()?)?;
                    return Ok(Some(e));
                }
            }
        }
        Ok(None)
    }

    /// Finds the object `name` and checks that it is a `kind` holding `type_fp` and at
    /// least `size_of::<T>()` bytes. Returns the handle and the entry's parameter word
    /// (for the object layer to decode and check).
    pub(crate) fn open_object<T: SharedState>(
        &self,
        name: &str,
        kind: ObjectKind,
        type_fp: u64,
        type_desc: &str,
    ) -> Result<(Shm<T>, u64)> {
        assert!(core::mem::align_of::<T>() as u64 <= CACHE_LINE);
        check_name(name, MAX_NAME)?;
        let e = self
            .find_entry(name)?
            .ok_or_else(|| Error::NotFound(name.to_string()))?;
        if e.kind != kind as u32 || e.type_fp != type_fp {
            let found = match ObjectKind::from_u32(e.kind) {
                Some(k) if k == kind => format!("{k:?} of another element type"),
                Some(k) => format!("{k:?}"),
                None => format!("kind {}", e.kind),
            };
            return Err(Error::WrongType {
                name: name.to_string(),
                expected: type_desc.to_string(),
                found,
            });
        }
        if (e.size as usize) < core::mem::size_of::<T>() {
            return Err(Error::Corrupt(format!(
                "object {name:?} is smaller than its state block"
            )));
        }
        // SAFETY: `validate` (in find_entry) checked offset + size <= bump <= len and
        // offset % CACHE_LINE == 0, so the block lies inside the mapping and is aligned
        // for T (align_of::<T>() <= CACHE_LINE, asserted above).
        let ptr =
            unsafe { NonNull::new_unchecked(self.inner.map.as_mut_ptr().add(e.offset as usize)) };
        Ok((
            Shm {
                arena: self.clone(),
                ptr: ptr.cast(),
                len: e.size as usize,
            },
            e.param,
        ))
    }
}

/// A process-local handle to a state block of type `T` inside an arena: a pointer into
/// the mapping plus a clone of the [`Arena`] that keeps the mapping alive.
///
/// `T` is a [`SharedState`]: made only of atomics and cells whose access the algorithm
/// that owns them synchronises, valid for any bytes a peer may leave, so `&T` may be
/// shared between threads and processes (the trait's safety contract, which this type
/// relies on instead of a convention).
pub(crate) struct Shm<T: SharedState> {
    arena: Arena,
    ptr: NonNull<T>,
    /// Bytes of the whole block (the state `T` and whatever trails it).
    len: usize,
}

// SAFETY: a `Shm<T>` only hands out `&T`; with `T: Sync` that is safe from any thread.
unsafe impl<T: SharedState> Send for Shm<T> {}
// SAFETY: as above.
unsafe impl<T: SharedState> Sync for Shm<T> {}

impl<T: SharedState> Clone for Shm<T> {
    fn clone(&self) -> Self {
        Shm {
            arena: self.arena.clone(),
            ptr: self.ptr,
            len: self.len,
        }
    }
}

impl<T: SharedState> Deref for Shm<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: `ptr` lies inside the mapping, aligned, and the mapping lives as long as
        // `self.arena`. The block was initialised before it was published (create) or is a
        // validated block of another process (open); `T: SharedState` is valid for any
        // bytes and shareable between processes (the trait's contract).
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: SharedState> Shm<T> {
    /// Start of the block.
    #[inline]
    pub(crate) fn base(&self) -> *mut u8 {
        self.ptr.as_ptr().cast()
    }

    /// Bytes in the whole block.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The arena the block lives in.
    #[allow(dead_code)]
    pub(crate) fn arena(&self) -> &Arena {
        &self.arena
    }

    /// Where the block starts in its arena.
    #[cfg_attr(shmproc_loom, allow(dead_code))]
    pub(crate) fn offset(&self) -> u64 {
        self.base() as u64 - self.arena.inner.map.as_ptr() as u64
    }
}

#[cfg(test)]
mod tests;
