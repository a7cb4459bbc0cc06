//! The arena: one shared mapping that holds objects, grows when it is full, and gives
//! their memory back when nobody holds them any more.
//!
//! * [`Arena::anonymous`] maps a `memfd` with `MAP_SHARED`: processes `fork`ed after it is
//!   made share it, and its descriptor can be passed to any other process.
//! * [`Arena::create`] / [`Arena::open`] use a named file in `/dev/shm`, for processes that
//!   are not related by `fork`. Creation is exclusive and atomic: the file is written in
//!   full before its name appears (`O_TMPFILE` + `linkat`), so another process never sees
//!   a half-made arena, and a creator killed before it is done leaves nothing behind. Mode
//!   `0600`; a symbolic link is never followed.
//!
//! # Memory: a heap, and growth
//!
//! Every object is a block of the arena's heap ([`raw::heap`](crate::raw::heap): variable-
//! size blocks by offset). When the heap is full the arena grows: the file is extended and
//! the new space joins the heap. Every process maps the arena's *limit* from the start
//! (address space only: pages cost nothing until touched), so growing moves nothing, and a
//! process attached earlier sees the new space on its next access. The limit is
//! [`DEFAULT_LIMIT`] (64 GiB) or the initial size if larger; [`Arena::builder`] sets another.
//! An anonymous arena's `memfd` is sealed against shrinking, so no process can make
//! another fault by truncating it.
//!
//! # Lifecycle: objects are freed when nobody holds them
//!
//! An object's memory returns to the heap when the last handle to it is dropped in every
//! process, including handles that died with their process. The arena keeps a table of
//! the processes that hold objects (pid and start time) and, for each, the objects it
//! holds; an object counts the processes that hold it. A process that exits, or is
//! killed, is *swept* by the next process that looks (when a process is joined, when
//! memory runs short, or on [`Arena::sweep`]): its holdings are released as if it had
//! dropped them. A `fork`ed child holds what its parent held: the parent registers the
//! child's holdings just before the fork (a `pthread_atfork` handler), so nothing the
//! child uses can be freed under it. **Named objects stay until unlinked**, as files do
//! ([`Arena::unlink_object`]): the name holds a reference of its own.
//!
//! Everything in the arena is an offset, never a pointer, and everything read from it is
//! checked before use: a peer that scribbles on the arena can make calls fail but cannot
//! make this process read or write outside the mapping. (A peer that *truncates* a named
//! arena's file can still make this process fault with `SIGBUS`: the kernel offers no way
//! to stop that for `/dev/shm` files. Anonymous arenas are sealed against it.)
//!
//! # Example
//! ```
//! use shmproc::Arena;
//! let arena = Arena::anonymous(1 << 20)?;
//! let before = arena.used();
//! let lock = shmproc::Lock::new_in(&arena)?;
//! assert!(arena.used() > before);
//! drop(lock); // the last handle: its memory goes back to the heap
//! assert_eq!(arena.used(), before);
//! # Ok::<(), shmproc::Error>(())
//! ```

mod directory;
mod holders;
mod layout;
mod owned;
pub mod snapshot;

pub(crate) use holders::{child_started, sweep_everywhere, Holding};
pub(crate) use layout::Header;
#[cfg(test)]
pub(crate) use layout::OBJ_HEADER;
pub use layout::{CACHE_LINE, DEFAULT_LIMIT, MAX_NAME, MIN_SIZE};

use crate::error::{Error, Result};
use crate::raw::extent::Seen;
use crate::raw::heap::{HeapError, Region};
use crate::raw::SharedState;
use crate::sync::liveness::Procfs;
use crate::sync::plain;
use crate::sync::Ordering;
use layout::*;
use memmap2::{MmapOptions, MmapRaw};
use rustix::fd::{AsFd, OwnedFd};
use std::fmt;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

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
    /// `SharedList` (any element flavour).
    SharedList = 16,
    /// A queue of serde messages of any size (`ObjQueue<T>`).
    ObjQueue = 17,
}

impl ObjectKind {
    /// Every kind, in numeric order.
    pub const ALL: [ObjectKind; 17] = [
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
        ObjectKind::SharedList,
        ObjectKind::ObjQueue,
    ];

    /// The kind with this number, if any.
    pub fn from_u32(v: u32) -> Option<ObjectKind> {
        Self::ALL.iter().copied().find(|k| *k as u32 == v)
    }
}

/// A fingerprint of a Rust type: its name, hashed (FNV-1a).
///
/// Stored with each typed object so that opening a `Queue<u64>` as a `Queue<u32>` is an
/// error. Two builds that name the same type differently (another crate path) disagree:
/// use the same type definition on both sides.
pub fn fingerprint<T: ?Sized>() -> u64 {
    fnv(
        0xcbf2_9ce4_8422_2325,
        core::any::type_name::<T>().as_bytes(),
    )
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

/// FNV-1a of `bytes`, from `h`.
pub(crate) fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// How long a process waits for another's metadata operation (a handful of table
/// writes) before it calls the arena wedged: a live process that keeps the lock this long
/// is hostile or stopped, and the call fails rather than hang.
pub(crate) const META_PATIENCE: Duration = Duration::from_secs(30);

std::thread_local! {
    /// A deadline this thread's waits for the arena's locks never pass, if any ([`until`]):
    /// the deadline of the timed call that runs them, or of a caller that must not wait
    /// long (the fuzz body, which runs thousands of hostile arenas whose lock words name
    /// live processes; the orphan check).
    static UNTIL: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// Runs its closure when dropped: the thread-local deadline is put back however `f`
/// leaves ([`until`]), unwinding included.
struct Restore<F: FnMut()>(F);

impl<F: FnMut()> Drop for Restore<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// Runs `f` (the arena operations of a timed call: a long message's allocation, the free
/// of its block) with this thread's waits for the arena's locks ending by `deadline` at
/// the latest, as well as after [`META_PATIENCE`]: each wait waits at most
/// `min(META_PATIENCE, deadline - now)`, and all of them together end by `deadline`
/// (nested calls keep the earlier deadline). `None`: no deadline of the caller's. A lock
/// that is free is still taken once the deadline passed: only a wait for a held one is cut
/// short (it fails, as after the patience: a heap operation with `HeapError::TimedOut`, a
/// metadata operation with [`Error::Busy`]).
pub(crate) fn until<R>(deadline: Option<Instant>, f: impl FnOnce() -> R) -> R {
    let Some(d) = deadline else {
        return f();
    };
    let old = UNTIL.with(|u| u.replace(Some(u.get().map_or(d, |o| o.min(d)))));
    let _restore = Restore(|| UNTIL.with(|u| u.set(old)));
    f()
}

struct Inner {
    map: MmapRaw,
    /// Bytes mapped: the arena's limit.
    limit: u64,
    name: Option<String>,
    fd: OwnedFd,
    /// Bytes of the file this process has seen with `fstat` (every access stays below).
    seen: Seen,
    /// This process's slot in the process table: `(pid << 32) | (index + 1)`, 0 if none.
    slot: plain::AtomicU64,
    /// The slot prepared for a child about to be forked (`index + 1`), 0 if none.
    pending: plain::AtomicU64,
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
            .field("size", &self.size())
            .field("limit", &self.inner.limit)
            .field("used", &self.used())
            .finish()
    }
}

/// An arena's figures ([`Arena::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArenaStats {
    /// Bytes of the file now ([`Arena::size`]).
    pub size: usize,
    /// The most it may grow to ([`Arena::limit`]).
    pub limit: usize,
    /// Bytes handed out to objects and what they hold ([`Arena::used`]).
    pub used: usize,
    /// Bytes that can still be handed out ([`Arena::available`]).
    pub available: usize,
    /// Bytes of the arena's own tables (directory, processes, holdings).
    pub overhead: usize,
    /// Objects alive.
    pub objects: u64,
    /// Heap blocks allocated (objects, their parts, the arena's tables).
    pub blocks: u64,
    /// Dead processes whose holdings were released.
    pub swept: u64,
    /// Repairs of the arena's metadata after a process died holding its lock.
    pub repairs: u64,
    /// Repairs of the heap after a process died inside it.
    pub heap_repairs: u64,
}

/// How to make an arena: its initial size and the limit it may grow to.
///
/// ```
/// use shmproc::Arena;
/// let arena = Arena::builder().size(1 << 20).limit(1 << 30).anonymous()?;
/// assert_eq!(arena.limit(), 1 << 30);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Builder {
    size: u64,
    limit: Option<u64>,
}

impl Builder {
    /// The initial size (default 1 MiB; at least [`MIN_SIZE`]).
    pub fn size(mut self, bytes: usize) -> Builder {
        self.size = bytes as u64;
        self
    }

    /// The most the arena may grow to (default [`DEFAULT_LIMIT`], or the size if larger).
    /// Every process maps this much address space.
    pub fn limit(mut self, bytes: usize) -> Builder {
        self.limit = Some(bytes as u64);
        self
    }

    fn sizes(&self) -> Result<(u64, u64)> {
        let size = check_size(self.size)?;
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT.max(size));
        if limit < size || limit > MAX_SIZE {
            return Err(Error::InvalidArgument(format!(
                "arena limit {limit} must be at least its size {size} and at most {MAX_SIZE} \
                 bytes"
            )));
        }
        Ok((size, limit))
    }

    /// An anonymous arena (see [`Arena::anonymous`]).
    ///
    /// # Errors
    /// As [`Arena::anonymous`], and [`Error::InvalidArgument`] for a limit below the size.
    pub fn anonymous(self) -> Result<Arena> {
        use rustix::fs::{fcntl_add_seals, ftruncate, memfd_create, MemfdFlags, SealFlags};
        let (size, limit) = self.sizes()?;
        let fd = memfd_create(
            "shmproc-arena",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )
        .map_err(|e| Error::os("memfd_create", e))?;
        ftruncate(&fd, size).map_err(|e| Error::os("ftruncate", e))?;
        // Growing stays allowed (the arena grows); shrinking never is.
        fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::SEAL)
            .map_err(|e| Error::os("fcntl(F_ADD_SEALS)", e))?;
        let arena = Arena::map_new(fd, size, limit, None)?;
        arena.init_header(size)?;
        Ok(arena)
    }

    /// A named arena (see [`Arena::create`]).
    ///
    /// # Errors
    /// As [`Arena::create`], and [`Error::InvalidArgument`] for a limit below the size.
    pub fn create(self, name: &str) -> Result<Arena> {
        check_name(name, 200)?;
        let (size, limit) = self.sizes()?;
        let file = ShmFile::new(name)?;
        rustix::fs::ftruncate(&file.fd, size).map_err(|e| Error::os("ftruncate", e))?;
        let fd = file.fd.try_clone().map_err(|e| Error::os("dup", e))?;
        let arena = Arena::map_new(fd, size, limit, Some(name.to_string()))?;
        arena.init_header(size)?;
        file.publish()?;
        Ok(arena)
    }
}

fn check_size(size: u64) -> Result<u64> {
    if !(MIN_SIZE..=MAX_SIZE).contains(&size) {
        return Err(Error::InvalidArgument(format!(
            "arena size {size} is outside {MIN_SIZE}..={MAX_SIZE} bytes: give a size in that \
             range (1 << 20 is 1 MiB)"
        )));
    }
    Ok(size.next_multiple_of(4096))
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

/// A file in `/dev/shm` being made: unnamed until [`publish`](Self::publish) links it
/// under its name, so nobody sees it half-written and a creator that dies leaves nothing.
pub(crate) struct ShmFile {
    fd: OwnedFd,
    dir: OwnedFd,
    name: String,
}

impl ShmFile {
    /// An unnamed file in `/dev/shm`, mode `0600`, that will be named `name`.
    pub(crate) fn new(name: &str) -> Result<ShmFile> {
        use rustix::fs::{openat, Mode, OFlags, CWD};
        let dir = openat(
            CWD,
            "/dev/shm",
            OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY,
            Mode::empty(),
        )
        .map_err(|e| Error::os("open /dev/shm", e))?;
        // Refuse a taken name now (the link would fail later anyway, after the work).
        if rustix::fs::statat(&dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok() {
            return Err(Error::AlreadyExists(name.to_string()));
        }
        let fd = openat(
            &dir,
            ".",
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        )
        .map_err(|e| Error::os("open(O_TMPFILE) in /dev/shm", e))?;
        Ok(ShmFile {
            fd,
            dir,
            name: name.to_string(),
        })
    }

    /// The file's descriptor.
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Gives the file its name, atomically: it appears complete, or not at all. Never
    /// replaces an existing name (nor follows a symbolic link there).
    pub(crate) fn publish(self) -> Result<()> {
        use rustix::fd::AsRawFd;
        let path = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
        rustix::fs::linkat(
            rustix::fs::CWD,
            path.as_str(),
            &self.dir,
            self.name.as_str(),
            rustix::fs::AtFlags::SYMLINK_FOLLOW,
        )
        .map_err(|e| match e {
            rustix::io::Errno::EXIST => Error::AlreadyExists(self.name.clone()),
            e => Error::os("linkat (naming the file in /dev/shm)", e),
        })
    }
}

/// The fields of a header, copied out of shared memory before anything is trusted.
#[derive(Debug, Clone, Copy)]
struct HeaderCopy {
    magic: u64,
    version: u32,
    layout_hash: u64,
    limit: u64,
    size: u64,
}

impl HeaderCopy {
    /// Reads the first bytes of `fd` (before anything is mapped).
    fn read(fd: &OwnedFd) -> Result<HeaderCopy> {
        let mut b = [0u8; 40];
        let mut got = 0;
        while got < b.len() {
            match rustix::io::pread(fd, &mut b[got..], got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::os("pread (arena header)", e)),
            }
        }
        let w = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        Ok(HeaderCopy {
            magic: w(0),
            version: w(8) as u32,
            layout_hash: w(16),
            limit: w(24),
            size: w(32),
        })
    }

    /// Checks the header against the file's real length `len`.
    fn validate(&self, len: u64) -> Result<()> {
        if self.magic != MAGIC {
            return Err(Error::NotAnArena);
        }
        if self.version != VERSION {
            return Err(Error::Version {
                found: self.version,
                expected: VERSION,
            });
        }
        if self.layout_hash != LAYOUT_HASH {
            return Err(Error::Layout {
                found: self.layout_hash,
                expected: LAYOUT_HASH,
            });
        }
        if !(MIN_SIZE..=MAX_SIZE).contains(&self.limit) || self.limit % 4096 != 0 {
            return Err(Error::Corrupt(format!(
                "its header gives a limit of {} bytes, outside {MIN_SIZE}..={MAX_SIZE}",
                self.limit
            )));
        }
        if self.size < MIN_SIZE || self.size > self.limit || self.size % 4096 != 0 {
            return Err(Error::Corrupt(format!(
                "its header gives a size of {} bytes, outside {MIN_SIZE}..={}",
                self.size, self.limit
            )));
        }
        if len < self.size {
            return Err(Error::Truncated {
                needed: self.size,
                found: len,
            });
        }
        Ok(())
    }
}

impl Arena {
    /// How to make an arena with another initial size or limit.
    pub fn builder() -> Builder {
        Builder {
            size: 1 << 20,
            limit: None,
        }
    }

    /// Creates an anonymous arena of `size` bytes (it grows as needed, up to
    /// [`DEFAULT_LIMIT`] or `size` if larger), shared with every process `fork`ed after
    /// this call (and, through its file descriptor, with any process it is passed to).
    ///
    /// Pages are allocated on first touch: a large arena costs nothing until it is used.
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
        Arena::builder().size(size).anonymous()
    }

    /// Creates a named arena of `size` bytes in `/dev/shm/<name>` (it grows as needed),
    /// for processes that are not related by `fork` to attach with [`Arena::open`].
    ///
    /// Creation is exclusive (an existing name is an error, even a symbolic link) and
    /// atomic (module docs), and the file is readable and writable by this user only (mode
    /// `0600`). The name stays until [`Arena::unlink`] or [`Arena::unlink_name`] removes it.
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
        Arena::builder().size(size).create(name)
    }

    /// Attaches to the named arena `/dev/shm/<name>`, validating its header before
    /// anything is used.
    ///
    /// # Errors
    /// [`Error::NoSuchArena`] when there is no such arena; [`Error::NotAnArena`],
    /// [`Error::Version`], [`Error::Truncated`] or [`Error::Corrupt`] when it is not a
    /// valid arena of this format.
    pub fn open(name: &str) -> Result<Arena> {
        use rustix::fs::Mode;
        use rustix::shm;
        check_name(name, 200)?;
        let fd =
            shm::open(shm_path(name).as_str(), shm::OFlags::RDWR, Mode::empty()).map_err(|e| {
                match e {
                    rustix::io::Errno::NOENT => Error::NoSuchArena(name.to_string()),
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
        // What the file is before how long it is: a short file of another kind (or an
        // empty one) is not an arena, not a truncated one.
        let h = HeaderCopy::read(&fd)?;
        if h.magic != MAGIC {
            return Err(Error::NotAnArena);
        }
        if len < MIN_SIZE {
            return Err(Error::Truncated {
                needed: MIN_SIZE,
                found: len,
            });
        }
        h.validate(len)?;
        let arena = Self::map(fd, len, h.limit, name)?;
        arena.validate_mapped()?;
        Ok(arena)
    }

    /// Maps a new arena's file: at `limit` bytes, or, where the address space is tight (a
    /// `ulimit -v`, valgrind), at the largest halving of it down to `size` that maps. The
    /// limit the creator got is the arena's (written in its header).
    fn map_new(fd: OwnedFd, size: u64, limit: u64, name: Option<String>) -> Result<Arena> {
        let mut try_limit = limit;
        loop {
            match MmapOptions::new()
                .len(try_limit as usize)
                .map_raw(&fd.as_fd())
            {
                Ok(map) => return Ok(Self::with_map(map, fd, size, try_limit, name)),
                // ENOMEM where the address space is limited; EINVAL from valgrind.
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::ENOMEM | libc::EINVAL))
                        && try_limit / 2 >= size =>
                {
                    try_limit = (try_limit / 2).next_multiple_of(4096).max(size);
                }
                Err(e) => return Err(Error::os("mmap", e)),
            }
        }
    }

    fn map(fd: OwnedFd, size: u64, limit: u64, name: Option<String>) -> Result<Arena> {
        let map = MmapOptions::new()
            .len(limit as usize)
            .map_raw(&fd.as_fd())
            .map_err(|e| Error::os("mmap", e))?;
        Ok(Self::with_map(map, fd, size, limit, name))
    }

    fn with_map(map: MmapRaw, fd: OwnedFd, size: u64, limit: u64, name: Option<String>) -> Arena {
        let arena = Arena {
            inner: Arc::new(Inner {
                map,
                limit,
                name,
                fd,
                seen: Seen::new(size.min(limit)),
                slot: plain::AtomicU64::new(0),
                pending: plain::AtomicU64::new(0),
            }),
        };
        holders::register_arena(&arena);
        arena
    }

    /// Writes a fresh header and heap into a new, zero-filled mapping of `size` bytes.
    fn init_header(&self, size: u64) -> Result<()> {
        let h = self.header_ptr();
        let mut random = [0u8; 16];
        // The id tells arenas apart and the seed keys the dicts' hash: never zeros.
        crate::sync::random(&mut random).map_err(|e| Error::os("getrandom", e))?;
        let id = u64::from_le_bytes(random[..8].try_into().unwrap_or([0; 8]));
        let seed = u64::from_le_bytes(random[8..].try_into().unwrap_or([0; 8]));
        // SAFETY: the mapping is new, at least MIN_SIZE bytes, page-aligned, and no other
        // process can see it yet (anonymous: not forked yet; named: not linked yet). Plain
        // fields are written through raw pointers, never through references.
        unsafe {
            (&raw mut (*h).version).write(VERSION);
            (&raw mut (*h).layout_hash).write(LAYOUT_HASH);
            (&raw mut (*h).limit).write(self.inner.limit);
            (&raw mut (*h).creator).write(crate::sync::liveness::current_ident());
            (&raw mut (*h).id).write(id);
            (&raw mut (*h).seed).write(seed);
        }
        let header = self.header();
        header.size.init(size);
        header
            .heap
            .init(&self.region_of(size), HEADER_SIZE, size)
            .map_err(|e| Error::Corrupt(format!("initialising the heap: {e}")))?;
        // Release: pairs with the Acquire load of `magic` in `validate_mapped`, so an
        // opener that sees the magic number sees every field above.
        header.magic.store(MAGIC, Ordering::Release);
        Ok(())
    }

    /// Checks what `HeaderCopy::validate` could not see before mapping.
    fn validate_mapped(&self) -> Result<()> {
        let header = self.header();
        // Acquire: pairs with the Release store in `init_header`.
        if header.magic.load(Ordering::Acquire) != MAGIC {
            return Err(Error::NotAnArena);
        }
        // SAFETY: the header lies in the mapping; plain fields read volatile.
        let limit = unsafe { (&raw const (*self.header_ptr()).limit).read_volatile() };
        if limit != self.inner.limit {
            return Err(Error::Corrupt(
                "the arena's limit changed while attaching".into(),
            ));
        }
        Ok(())
    }

    fn header_ptr(&self) -> *mut Header {
        self.inner.map.as_mut_ptr().cast::<Header>()
    }

    /// The header, for its atomic fields only.
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: the mapping is at least MIN_SIZE > size_of::<Header>() bytes and
        // page-aligned; every field another process may write concurrently is an atomic
        // (or the heap's state, which it validates itself), and plain fields are only read
        // volatile.
        unsafe { &*self.header_ptr() }
    }

    /// The arena's random id (tells two arenas apart).
    #[allow(dead_code)] // WIP: objects' own blocks (next commit)
    pub(crate) fn id(&self) -> u64 {
        // SAFETY: as in `header`; a plain field written before the magic number.
        unsafe { (&raw const (*self.header_ptr()).id).read_volatile() }
    }

    /// The arena's random key for hashing names and keys.
    pub(crate) fn seed(&self) -> u64 {
        // SAFETY: as in `id`.
        unsafe { (&raw const (*self.header_ptr()).seed).read_volatile() }
    }

    /// Bytes of the file this process may touch: what `fstat` last said, refreshed when
    /// the header says the arena grew. Never more than the limit (the mapping), never more
    /// than the file (whatever the header says: a peer may lie).
    pub(crate) fn accessible(&self) -> u64 {
        self.inner
            .seen
            .get(&self.header().size, || self.file_len(), self.inner.limit)
    }

    /// The file's length now, from the kernel (0 if it cannot say).
    fn file_len(&self) -> u64 {
        rustix::fs::fstat(&self.inner.fd)
            .map(|s| u64::try_from(s.st_size).unwrap_or(0))
            .unwrap_or(0)
    }

    fn refresh_seen(&self) -> u64 {
        self.inner
            .seen
            .refresh(|| self.file_len(), self.inner.limit)
    }

    /// The heap's view of the mapping, bounded by what is accessible now.
    pub(crate) fn region(&self) -> Region {
        self.region_of(self.accessible())
    }

    fn region_of(&self, len: u64) -> Region {
        // SAFETY: the first `len <= limit` bytes are mapped for as long as `self` lives
        // (callers keep the arena for as long as they use the region), and lie in the file
        // (`accessible`, or a size we just gave the file), so touching them cannot fault.
        // The mapping is page-aligned, so 16-aligned.
        unsafe { Region::new(self.inner.map.as_mut_ptr(), len.min(self.inner.limit)) }
            .unwrap_or_else(|_| unreachable!("a page-aligned, non-null mapping"))
    }

    /// A pointer to `offset` in the mapping; the caller has checked `offset + len` against
    /// [`accessible`](Self::accessible).
    pub(crate) fn ptr(&self, offset: u64) -> *mut u8 {
        debug_assert!(offset <= self.inner.limit);
        // SAFETY: offset <= limit, the mapping's length.
        unsafe { self.inner.map.as_mut_ptr().add(offset as usize) }
    }

    /// Grows the file so that the heap can satisfy a request of `need` bytes: to twice its
    /// size or `size + need` (and a page), at most the limit. Serialised by the metadata
    /// lock; a grower that finds the arena grown by another since it looked returns at once.
    fn grow(&self, seen_size: u64, need: u64) -> Result<()> {
        let _meta = holders::MetaGuard::lock(self)?;
        self.grow_locked(seen_size, need)
    }

    /// [`grow`](Self::grow), with the metadata lock held.
    pub(crate) fn grow_locked(&self, seen_size: u64, need: u64) -> Result<()> {
        let header = self.header();
        let size = header.size.said();
        if size > seen_size {
            return Ok(()); // someone grew it meanwhile: try again
        }
        let limit = self.inner.limit;
        let want = size
            .saturating_mul(2)
            .max(size.saturating_add(need).saturating_add(HEADER_SIZE))
            .next_multiple_of(4096)
            .min(limit);
        if want <= size {
            return Err(Error::OutOfSpace {
                requested: need,
                available: self.available() as u64,
            });
        }
        // Never shrink: a file a peer already grew further stays as it is.
        let file = rustix::fs::fstat(&self.inner.fd)
            .map(|s| u64::try_from(s.st_size).unwrap_or(0))
            .map_err(|e| Error::os("fstat", e))?;
        if file < want {
            rustix::fs::ftruncate(&self.inner.fd, want)
                .map_err(|e| Error::os("ftruncate (growing the arena)", e))?;
        }
        self.refresh_seen();
        header
            .heap
            .grow(&self.region_of(want), want, &Procfs, self.deadline())
            .map_err(|e| Error::Corrupt(format!("growing the heap: {e}")))?;
        // Release: pairs with the Acquire load in `accessible`: the file is extended and
        // the heap knows the space before anyone reads the new size.
        header.size.publish(want);
        Ok(())
    }

    /// When a wait for one of the arena's locks that starts now gives up: after
    /// [`META_PATIENCE`], or at the deadline of the call it runs for ([`until`]), whichever
    /// comes first.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let mine = crate::sync::time::deadline_after(META_PATIENCE);
        match (mine, UNTIL.with(|u| u.get())) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Allocates `size` bytes aligned to `align` from the heap (zeroed if `zeroed`),
    /// growing the arena when the heap is full. Returns the block's offset. (A block an
    /// object keeps goes through [`alloc_into`](Self::alloc_into) instead.)
    #[allow(dead_code)] // raw blocks: the fuzz and test hooks
    pub(crate) fn alloc(&self, size: u64, align: u64, zeroed: bool) -> Result<u64> {
        self.alloc_at(size, align, zeroed, None, None)
    }

    /// Gives the block at `offset` back to the heap.
    #[allow(dead_code)] // WIP: objects' own blocks (next commit)
    pub(crate) fn free(&self, offset: u64) -> Result<()> {
        let region = self.region();
        self.header()
            .heap
            .free(&region, offset, &Procfs, self.deadline())
            .map_err(heap_error)
    }

    /// The usable bytes of the allocated block at `offset`.
    pub(crate) fn block_len(&self, offset: u64) -> Result<u64> {
        let region = self.region();
        self.header()
            .heap
            .usable_size(&region, offset)
            .map_err(heap_error)
    }

    /// Bytes of the file now (it grows up to [`limit`](Self::limit)).
    pub fn size(&self) -> usize {
        self.accessible() as usize
    }

    /// The most the arena may grow to.
    pub fn limit(&self) -> usize {
        self.inner.limit as usize
    }

    /// Bytes in blocks handed out to objects and what they hold (messages, tables of
    /// entries), block headers included; the arena's own header and tables (its
    /// directory, its table of processes) excluded.
    pub fn used(&self) -> usize {
        let used = self.header().heap.stats().used_bytes;
        // Relaxed: a statistic.
        let own = self.header().meta.overhead.load(Ordering::Relaxed);
        used.saturating_sub(own) as usize
    }

    /// Bytes that can still be handed out: free in the heap, plus what growth may add.
    pub fn available(&self) -> usize {
        let s = self.header().heap.stats();
        let size = self.header().size.said().min(self.inner.limit);
        (s.free_bytes + (self.inner.limit - size)) as usize
    }

    /// A snapshot of the arena's figures (read without its lock; each is exact when no
    /// other process is changing it).
    ///
    /// ```
    /// let arena = shmproc::Arena::anonymous(1 << 20)?;
    /// let lock = shmproc::Lock::new_in(&arena)?;
    /// let s = arena.stats();
    /// assert_eq!(s.objects, 1);
    /// assert!(s.used > 0 && s.used <= s.size);
    /// drop(lock);
    /// assert_eq!(arena.stats().objects, 0);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn stats(&self) -> ArenaStats {
        let meta = &self.header().meta;
        // Relaxed: statistics.
        let ld = |w: &crate::sync::AtomicU64| w.load(Ordering::Relaxed);
        let heap = self.header().heap.stats();
        ArenaStats {
            size: self.size(),
            limit: self.limit(),
            used: self.used(),
            available: self.available(),
            overhead: ld(&meta.overhead) as usize,
            objects: ld(&meta.objects),
            blocks: heap.allocated_blocks,
            swept: ld(&meta.swept),
            repairs: ld(&meta.repairs),
            heap_repairs: heap.recoveries,
        }
    }

    /// The segment name of a named arena (`None` for an anonymous one).
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// Removes the name of this named arena from `/dev/shm`. Processes that are attached
    /// keep their mapping; no new process can attach. A no-op for anonymous arenas.
    ///
    /// # Errors
    /// [`Error::NoSuchArena`] if the name was already removed.
    pub fn unlink(&self) -> Result<()> {
        match &self.inner.name {
            Some(name) => Self::unlink_name(name),
            None => Ok(()),
        }
    }

    /// Removes `/dev/shm/<name>` (for cleaning up after a creator that died).
    ///
    /// # Errors
    /// [`Error::NoSuchArena`] when there is no such file.
    pub fn unlink_name(name: &str) -> Result<()> {
        check_name(name, 200)?;
        rustix::shm::unlink(shm_path(name).as_str()).map_err(|e| match e {
            rustix::io::Errno::NOENT => Error::NoSuchArena(name.to_string()),
            e => Error::os("shm_unlink", e),
        })
    }

    /// Removes the named arenas (in `/dev/shm`) whose creator has exited, in which no
    /// live process holds an object and that no live process maps, and returns their
    /// names.
    ///
    /// Looks at every file in `/dev/shm` owned by this user that is an arena of this
    /// format: one is removed only if its recorded creator (pid and start time) is gone,
    /// its table of processes lists no live holder, and no process's `/proc/<pid>/maps`
    /// (of those this user may read) shows it. Files of other formats, of other users,
    /// and arenas of live creators are left alone. (The `shmproc clean` tool judges
    /// the same way.)
    ///
    /// # Errors
    /// [`Error::Os`] when `/dev/shm` cannot be listed.
    ///
    /// ```
    /// use shmproc::Arena;
    /// let name = format!("shmproc-doc-orphans-{}", std::process::id());
    /// let mine = Arena::create(&name, 1 << 20)?;
    /// let removed = Arena::cleanup_orphans()?;
    /// assert!(!removed.contains(&name)); // its creator (us) is alive
    /// mine.unlink()?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn cleanup_orphans() -> Result<Vec<String>> {
        let dir = std::fs::read_dir("/dev/shm").map_err(|e| Error::os("read_dir(/dev/shm)", e))?;
        let mut removed = Vec::new();
        let mapped = mapped_files();
        for entry in dir.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let key = entry.metadata().map(|m| file_key(&m));
            if key.is_ok_and(|k| mapped.contains(&k)) {
                continue; // a live process maps it
            }
            if Self::is_orphan(&name).unwrap_or(false) && Self::unlink_name(&name).is_ok() {
                removed.push(name);
            }
        }
        Ok(removed)
    }

    /// Whether `/dev/shm/<name>` is an arena of this user whose creator is gone and in
    /// which no live process holds anything.
    pub(crate) fn is_orphan(name: &str) -> Result<bool> {
        use rustix::fs::Mode;
        use rustix::shm;
        check_name(name, 200)?;
        let fd = shm::open(shm_path(name).as_str(), shm::OFlags::RDWR, Mode::empty())
            .map_err(|e| Error::os("shm_open", e))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| Error::os("fstat", e))?;
        if st.st_uid != rustix::process::geteuid().as_raw()
            || rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile
        {
            return Ok(false);
        }
        if HeaderCopy::read(&fd)?.magic != MAGIC {
            return Ok(false);
        }
        let mut c = [0u8; 8];
        if rustix::io::pread(&fd, &mut c, 40).map_err(|e| Error::os("pread", e))? != 8 {
            return Ok(false);
        }
        let creator = u64::from_le_bytes(c);
        let pid = (creator >> crate::sync::liveness::IDENT_PID_SHIFT) as u32;
        let start = creator & crate::sync::liveness::IDENT_START_MASK;
        if pid == 0 || !crate::sync::liveness::Liveness::is_dead(&Procfs, pid, start) {
            return Ok(false);
        }
        // The creator is gone: an arena nobody alive holds anything in (or a damaged one)
        // is an orphan.
        match Arena::attach(fd, Some(name.to_string())) {
            Ok(a) => Ok(!until(
                crate::sync::time::deadline_after(Duration::from_millis(100)),
                || holders::any_live_holder(&a).unwrap_or(true),
            )),
            Err(_) => Ok(true),
        }
    }

    /// The process-wide default arena, made on first use: what `Lock::new()` and the other
    /// argument-less constructors allocate in.
    ///
    /// It is anonymous (inherited by `fork`), starts at 1 MiB and grows as needed up to
    /// [`DEFAULT_LIMIT`] (pages are only allocated when touched); set `SHMPROC_ARENA_SIZE`
    /// (bytes) to start it larger, `SHMPROC_ARENA_LIMIT` to change the limit. As with
    /// Python's multiprocessing, make the objects **before** forking the processes that
    /// share them: a child that makes the default arena first gets its own.
    ///
    /// # Errors
    /// As [`Arena::anonymous`].
    pub fn global() -> Result<Arena> {
        let mut g = GLOBAL.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = g.as_ref() {
            return Ok(a.clone());
        }
        let env = |k: &str| std::env::var(k).ok().and_then(|s| s.parse::<usize>().ok());
        let mut b = Arena::builder().size(env("SHMPROC_ARENA_SIZE").unwrap_or(1 << 20));
        if let Some(limit) = env("SHMPROC_ARENA_LIMIT") {
            b = b.limit(limit);
        }
        let a = b.anonymous()?;
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
        self.inner.fd.as_fd()
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

    // -----------------------------------------------------------------------------------
    // Objects.

    /// Allocates an object of `size` bytes of state (and what trails it), writes its
    /// header, runs `init` on its zero-filled state, registers this process as its holder
    /// and, if `name` is given, names it in the directory.
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
        let size = (size.max(core::mem::size_of::<T>()).max(1) as u64)
            .checked_next_multiple_of(16)
            .filter(|s| *s <= MAX_SIZE)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "an object of {size} bytes is larger than any arena can hold (at most \
                     {MAX_SIZE}): make it smaller"
                ))
            })?;
        let holding = holders::create(self, name, kind, type_fp, size, param, |state, len| {
            // SAFETY: `state` is the state block of a block the heap just handed us,
            // zeroed, `len` bytes, CACHE_LINE-aligned, and nobody else references it.
            init(unsafe { NonNull::new_unchecked(state) }, len)
        })?;
        Ok(Shm::new(holding, size as usize))
    }

    /// Finds the object `name` and checks that it is a `kind` holding `type_fp` and at
    /// least `size_of::<T>()` bytes; registers this process as a holder. Returns the
    /// handle and the object's parameter word (for the object layer to decode and check).
    pub(crate) fn open_object<T: SharedState>(
        &self,
        name: &str,
        kind: ObjectKind,
        type_fp: u64,
        type_desc: &str,
    ) -> Result<(Shm<T>, u64)> {
        check_name(name, MAX_NAME)?;
        let obj = directory::find(self, name)?.ok_or_else(|| Error::NotFound(name.to_string()))?;
        self.open_checked(obj, name, kind, type_fp, type_desc)
    }

    /// The object at `offset` (a handle that travelled), checked as
    /// [`open_object`](Self::open_object) checks a named one.
    pub(crate) fn open_object_at<T: SharedState>(
        &self,
        offset: u64,
        kind: ObjectKind,
        type_fp: u64,
        type_desc: &str,
    ) -> Result<(Shm<T>, u64)> {
        self.open_checked(offset, &format!("@{offset}"), kind, type_fp, type_desc)
    }

    fn open_checked<T: SharedState>(
        &self,
        obj: u64,
        name: &str,
        kind: ObjectKind,
        type_fp: u64,
        type_desc: &str,
    ) -> Result<(Shm<T>, u64)> {
        assert!(core::mem::align_of::<T>() as u64 <= CACHE_LINE);
        let (holding, h) = holders::open(self, obj)?;
        if h.kind != kind as u32 || h.type_fp != type_fp {
            let found = match ObjectKind::from_u32(h.kind) {
                Some(k) if k == kind => format!("{k:?} of another element type"),
                Some(k) => format!("{k:?}"),
                None => format!("kind {}", h.kind),
            };
            return Err(Error::WrongType {
                name: name.to_string(),
                expected: type_desc.to_string(),
                found,
            });
        }
        if h.size < core::mem::size_of::<T>() as u64 {
            return Err(Error::Corrupt(format!(
                "object {name} is smaller than its state block"
            )));
        }
        Ok((Shm::new(holding, h.size as usize), h.param))
    }

    /// The names and kinds of the named objects in the arena.
    pub fn objects(&self) -> Vec<(String, ObjectKind)> {
        directory::list(self)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(name, obj)| {
                let h = holders::header_copy(self, obj).ok()?;
                Some((name, ObjectKind::from_u32(h.kind)?))
            })
            .collect()
    }

    /// Removes the name `name` from the directory: the object lives on while handles to
    /// it do, and is freed with the last (as a file that is unlinked while open).
    ///
    /// # Errors
    /// [`Error::NotFound`] when no object has that name.
    ///
    /// ```
    /// use shmproc::{Arena, Lock};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// let before = arena.used();
    /// drop(Lock::create(&arena, "db")?); // the name keeps it alive
    /// assert!(arena.used() > before);
    /// arena.unlink_object("db")?;
    /// assert_eq!(arena.used(), before);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn unlink_object(&self, name: &str) -> Result<()> {
        check_name(name, MAX_NAME)?;
        directory::unlink(self, name)
    }

    /// Releases what processes that have exited (or were killed) held, as if they had
    /// dropped their handles; returns how many such processes were found. The arena does
    /// this by itself when memory runs short and when a child is joined; call it to
    /// reclaim at once.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the arena's tables are damaged.
    pub fn sweep(&self) -> Result<usize> {
        holders::sweep(self, None)
    }

    /// Every allocated block and what it looks like (for diagnosing leaks in tests).
    #[doc(hidden)]
    pub fn debug_blocks(&self) -> Vec<(u64, u64, String)> {
        let blocks = self
            .header()
            .heap
            .used_blocks(&self.region(), &Procfs, self.deadline())
            .unwrap_or_default();
        blocks
            .into_iter()
            .map(|(off, len)| {
                let what = match holders::header_copy(self, off) {
                    Ok(h) => format!("object kind {}", h.kind),
                    Err(_) => {
                        // SAFETY: an allocated block of `len >= 8` bytes (every block has
                        // at least 16) inside the mapping.
                        let w = unsafe { self.ptr(off).cast::<u64>().read_volatile() };
                        if w == layout::OBJ_DEAD {
                            "dead object".into()
                        } else {
                            format!("other (first word {w:#x})")
                        }
                    }
                };
                (off, len, what)
            })
            .collect()
    }
}

/// A file as `/proc/<pid>/maps` names it: device (major, minor) and inode.
type FileKey = (u32, u32, u64);

fn file_key(m: &std::fs::Metadata) -> FileKey {
    use std::os::unix::fs::MetadataExt;
    (
        rustix::fs::major(m.dev()),
        rustix::fs::minor(m.dev()),
        m.ino(),
    )
}

/// The files in `/dev/shm` that some process maps, from the `/proc/<pid>/maps` of every
/// process this user may read (this one included).
fn mapped_files() -> std::collections::HashSet<FileKey> {
    let mut keys = std::collections::HashSet::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return keys;
    };
    for e in dir.flatten() {
        if !e
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(e.path().join("maps")) else {
            continue;
        };
        // `addr perms offset MAJ:MIN inode path`
        for line in text.lines().filter(|l| l.contains("/dev/shm/")) {
            let mut f = line.split_ascii_whitespace();
            let (Some(dev), Some(ino)) = (f.nth(3), f.next()) else {
                continue;
            };
            let key = dev.split_once(':').and_then(|(maj, min)| {
                Some((
                    u32::from_str_radix(maj, 16).ok()?,
                    u32::from_str_radix(min, 16).ok()?,
                    ino.parse().ok()?,
                ))
            });
            keys.extend(key);
        }
    }
    keys
}

/// A heap error as an arena error.
fn heap_error(e: HeapError) -> Error {
    match e {
        HeapError::OutOfSpace {
            requested,
            available,
        } => Error::OutOfSpace {
            requested,
            available,
        },
        HeapError::TimedOut => Error::Corrupt(match UNTIL.with(|u| u.get()) {
            Some(d) if crate::sync::time::expired(Some(d)) => {
                "the heap's lock was held by a live process until the call's deadline".into()
            }
            _ => format!(
                "the heap's lock was held for more than {META_PATIENCE:?} by a live process"
            ),
        }),
        e => Error::Corrupt(format!("heap: {e}")),
    }
}

/// A process-local handle to a state block of type `T` inside an arena: a pointer into
/// the mapping, and this process's [`Holding`] of the object (which keeps the mapping
/// alive, and releases the object when the last clone in this process is dropped).
///
/// `T` is a [`SharedState`]: made only of atomics and cells whose access the algorithm
/// that owns them synchronises, valid for any bytes a peer may leave, so `&T` may be
/// shared between threads and processes (the trait's safety contract, which this type
/// relies on instead of a convention).
pub(crate) struct Shm<T: SharedState> {
    holding: Arc<Holding>,
    ptr: NonNull<T>,
    /// Bytes of the state block and whatever trails it.
    len: usize,
}

// SAFETY: a `Shm<T>` only hands out `&T`; with `T: SharedState` (so `Sync`) that is safe
// from any thread.
unsafe impl<T: SharedState> Send for Shm<T> {}
// SAFETY: as above.
unsafe impl<T: SharedState> Sync for Shm<T> {}

impl<T: SharedState> fmt::Debug for Shm<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shm")
            .field("offset", &self.offset())
            .field("len", &self.len)
            .finish()
    }
}

impl<T: SharedState> Clone for Shm<T> {
    fn clone(&self) -> Self {
        Shm {
            holding: self.holding.clone(),
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
        // the holding's arena. The block was initialised before it was published (create)
        // or is a validated block of another process (open); `T: SharedState` is valid for
        // any bytes and shareable between processes (the trait's contract).
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: SharedState> Shm<T> {
    fn new(holding: Arc<Holding>, len: usize) -> Shm<T> {
        let ptr = holding.state_ptr();
        Shm {
            ptr: NonNull::new(ptr.cast()).unwrap_or_else(|| unreachable!("inside a mapping")),
            holding,
            len,
        }
    }

    /// Start of the state block.
    #[inline]
    pub(crate) fn base(&self) -> *mut u8 {
        self.ptr.as_ptr().cast()
    }

    /// Bytes of the state block and what trails it.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The arena the block lives in.
    pub(crate) fn arena(&self) -> &Arena {
        self.holding.arena()
    }

    /// Where the object starts in its arena (its header): what a travelling handle
    /// names.
    pub(crate) fn offset(&self) -> u64 {
        self.holding.offset()
    }

    /// The object's generation.
    pub(crate) fn generation(&self) -> u64 {
        self.holding.generation()
    }
}

#[cfg(test)]
mod tests;
