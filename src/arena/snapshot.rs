//! Snapshots: what an arena holds, object by object and process by process, read without
//! taking its locks and without writing a byte of it.
//!
//! [`Arena::snapshot`] (an arena this process has), [`Snapshot::open`] (a named arena in
//! `/dev/shm`), [`Snapshot::from_path`] (a file, e.g. `/proc/<pid>/fd/<n>`: the memfd of
//! another process's anonymous arena) and [`Snapshot::from_fd`] give a [`Snapshot`]: the
//! arena's figures, its table of processes (alive or not), and every object, named or
//! anonymous, with its kind, name, generation, references, size and the processes that
//! hold it. [`crate::inspect`] adds the live state of each object (a lock's holder, a
//! queue's length, ...) from the same snapshot.
//!
//! # How it reads
//!
//! The arena is never mapped. Its bytes are copied with `pread` into a private mapping of
//! this process, laid out at the same offsets: the header first, then each table and each
//! object header the previous ones name, then the first bytes of each object's state
//! block (its state; not the slots, tables or data that trail it). Every offset is checked
//! against the copy before use, exactly as the arena checks it, and everything else
//! happens on the copy: so
//!
//! * nothing is written to the arena, no lock is taken (a process stopped holding the
//!   arena's lock cannot make the snapshot wait), and no reference count changes;
//! * a hostile or half-written arena gives an error or a partial listing (a damaged table
//!   or object is reported in [`Snapshot::problems`] or [`ObjectInfo::problem`], and the
//!   rest is still listed), never an access out of bounds, and never `SIGBUS` (a file that
//!   shrinks while it is read reads as zeros past its end);
//! * a value read once stays what it was: what was validated is what is used.
//!
//! The copy is not atomic: other processes change the arena while it is read. The
//! metadata words (the tables' offsets, the object and generation counters) are read
//! again at the end; if they changed, the snapshot is taken again (a few times), and
//! [`Snapshot::consistent`] says whether the last attempt saw them unchanged. Figures and
//! live state are each exact when nothing is changing them, a moment's view otherwise.
//!
//! # Example
//! ```
//! use shmproc::arena::{Arena, ObjectKind};
//! let arena = Arena::anonymous(1 << 20)?;
//! let jobs = shmproc::Queue::<u64>::create(&arena, "jobs", 8)?;
//! let lock = shmproc::Lock::new_in(&arena)?; // anonymous objects are listed too
//! let snap = arena.snapshot()?;
//! assert_eq!(snap.objects.len(), 2);
//! let q = snap.objects.iter().find(|o| o.name.as_deref() == Some("jobs")).unwrap();
//! assert_eq!(q.kind, Some(ObjectKind::Queue));
//! assert_eq!(q.holders[0].pid.pid, std::process::id()); // this process holds it
//! assert_eq!(q.refs, 2); // its holder, and its name
//! assert!(snap.problems.is_empty() && snap.consistent);
//! # drop((jobs, lock));
//! # Ok::<(), shmproc::Error>(())
//! ```

use super::holders::{gone, header_copy, held_list, ObjCopy};
use super::layout::*;
use super::{check_name, Arena, ArenaStats, HeaderCopy, Inner, ObjectKind};
use crate::error::{Error, Result};
use crate::raw::SharedState;
use crate::sync::liveness::{Liveness, Procfs, IDENT_PID_SHIFT, IDENT_START_MASK};
use crate::sync::{plain, Ordering};
use memmap2::{MmapOptions, MmapRaw};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// Most bytes of an object's state block that a snapshot copies: every kind's state
/// structure fits (the largest, a pipe's, is 768 bytes); what trails it (slots, tables,
/// data) is not copied.
const STATE_COPY: u64 = 4096;

/// Most bytes of a queue's block that a snapshot copies: the whole block of any queue of
/// up to this size (slots and table of claimers included); a larger one is copied as any
/// object, its claims in progress not shown.
const QUEUE_COPY: u64 = 16 << 20;

/// Times a snapshot is taken again when the arena's metadata changed while it was read.
const ATTEMPTS: usize = 5;

/// A process and whether it is alive (its pid exists, is not a zombie, and started when
/// the arena recorded it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pid {
    /// The process id.
    pub pid: u32,
    /// Whether that process is alive now.
    pub alive: bool,
}

impl Pid {
    /// `pid` with its liveness, judged as a lock judges its holder: dead when
    /// `/proc/<pid>` is gone or a zombie, or (with a known `start_time`, in clock ticks
    /// since boot; 0 when unknown) when the pid now names a process that started later.
    pub fn check(pid: u32, start_time: u64) -> Pid {
        Pid {
            pid,
            alive: pid != 0 && !Procfs.is_dead(pid, start_time),
        }
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.alive {
            write!(f, "{}", self.pid)
        } else {
            write!(f, "{} (dead)", self.pid)
        }
    }
}

/// One entry of an arena's table of processes: a process that holds (or held) objects
/// there.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessEntry {
    /// The process, and whether it is alive. A dead one keeps its holdings until the next
    /// sweep ([`Arena::sweep`]; the arena also sweeps when a child is joined and when it
    /// runs short of memory).
    pub pid: Pid,
    /// Its start time (clock ticks since boot), as recorded; 0 when not yet recorded.
    pub start_time: u64,
    /// A slot its parent prepared for it just before `fork`, not yet adopted (the child
    /// has not run yet); `parent` names the parent.
    pub pending: bool,
    /// The parent that prepared a pending slot.
    pub parent: Option<u32>,
    /// Objects it holds.
    pub objects: usize,
}

/// A process that holds an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectHolder {
    /// The process, and whether it is alive.
    pub pid: Pid,
    /// How many times that process opened the object (clones of a handle share one).
    pub opens: u64,
}

/// One object of an arena, as a [`Snapshot`] saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectInfo {
    /// Where its block starts in the arena (what a travelling handle names).
    pub offset: u64,
    /// Its kind; `None` for a kind this build does not know (see `kind_code`).
    pub kind: Option<ObjectKind>,
    /// The kind's number as stored.
    pub kind_code: u32,
    /// Its name in the arena's directory; `None` for an anonymous object.
    pub name: Option<String>,
    /// Its generation: unique in the arena, so a reused offset is told apart.
    pub generation: u64,
    /// Its reference count: the processes that hold it, plus one for a name.
    pub refs: u64,
    /// Bytes of its state block and what trails it (slots, data).
    pub size: u64,
    /// The kind's parameter word (a capacity, an element count, ...).
    pub param: u64,
    /// The fingerprint of its element type (0 for untyped kinds).
    pub type_fingerprint: u64,
    /// The processes that hold it, in table order.
    pub holders: Vec<ObjectHolder>,
    /// Why the object could not be read, when it could not (its other fields then hold
    /// what the tables said of it: its offset, name and holders).
    pub problem: Option<String>,
    /// Bytes of its state block in the copy.
    copied: u64,
}

/// What an arena held at one moment, read from a private copy (see the
/// [module docs](self)).
#[non_exhaustive]
pub struct Snapshot {
    /// The segment name of a named arena; `None` for an anonymous arena or a path.
    pub name: Option<String>,
    /// Where it was read from: `/dev/shm/<name>`, the path given, or `a descriptor`.
    pub source: String,
    /// The arena's random id: the same for every process attached, so two paths to one
    /// arena (e.g. two processes' descriptors of one memfd) are told apart from two
    /// arenas.
    pub id: u64,
    /// When the arena's file was made, if the file system records it.
    pub created: Option<SystemTime>,
    /// The arena's figures (the heap's and the metadata's counters, from the copy).
    pub stats: ArenaStats,
    /// The process that made the arena.
    pub creator: Pid,
    /// The process that held the arena's metadata lock when it was copied (it was then in
    /// the middle of creating, opening or dropping an object); a dead one's work is
    /// repaired by the next process that takes the lock.
    pub metadata_lock: Option<Pid>,
    /// The process that held the heap's lock when it was copied (allocating or freeing).
    pub heap_lock: Option<Pid>,
    /// The arena's table of processes.
    pub processes: Vec<ProcessEntry>,
    /// Every object, named or anonymous, in offset order.
    pub objects: Vec<ObjectInfo>,
    /// What could not be read (a damaged table, a name that is not UTF-8, ...): the rest
    /// is listed. Objects that could not be read say so in [`ObjectInfo::problem`].
    pub problems: Vec<String>,
    /// True when the arena's metadata was the same at the end of the copy as at its
    /// start (no object was made or freed, no table changed, meanwhile).
    pub consistent: bool,
    /// The private copy that `state` reads (`crate::inspect`, not built under loom).
    #[cfg_attr(shmproc_loom, allow(dead_code))]
    copy: Arena,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("name", &self.name)
            .field("source", &self.source)
            .field("id", &self.id)
            .field("stats", &self.stats)
            .field("creator", &self.creator)
            .field("metadata_lock", &self.metadata_lock)
            .field("heap_lock", &self.heap_lock)
            .field("processes", &self.processes)
            .field("objects", &self.objects)
            .field("problems", &self.problems)
            .field("consistent", &self.consistent)
            .finish_non_exhaustive()
    }
}

impl Arena {
    /// A snapshot of this arena: every object, named or anonymous, with its holders, and
    /// every process attached (see [`Snapshot`]). Reads a private copy: takes no lock and
    /// changes nothing, so it works on an arena whose lock a stopped process holds.
    ///
    /// # Errors
    /// [`Error::Os`] when the arena's descriptor cannot be read or the copy cannot be
    /// mapped; the header errors of [`Arena::open`] when a peer damaged the header.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let source = match self.name() {
            Some(n) => format!("/dev/shm/{n}"),
            None => "an anonymous arena of this process".to_string(),
        };
        Snapshot::read(self.fd(), self.name().map(str::to_string), source)
    }
}

impl Snapshot {
    /// A snapshot of the named arena `/dev/shm/<name>`, opened read-only (a symbolic link
    /// is not followed).
    ///
    /// # Errors
    /// [`Error::NoSuchArena`] when there is no such file; [`Error::NotAnArena`] when the
    /// file does not start with an arena's header (another kind of file, or an empty
    /// one, whatever its size); [`Error::InvalidArgument`] when it is a
    /// [`SharedMemory`](crate::shared::SharedMemory) segment (the message says so);
    /// [`Error::Version`], [`Error::Layout`], [`Error::Truncated`] (an arena's header on
    /// a file shorter than it says) or [`Error::Corrupt`] when it is an arena this build
    /// cannot read; [`Error::Os`] (e.g. permission denied: arenas are their creator's
    /// user's only).
    ///
    /// ```
    /// use shmproc::{inspect::Snapshot, Arena};
    /// let name = format!("shmproc-doc-snap-{}", std::process::id());
    /// let arena = Arena::create(&name, 1 << 20)?;
    /// let _lock = shmproc::Lock::create(&arena, "db")?;
    /// let snap = Snapshot::open(&name)?;
    /// assert_eq!(snap.objects[0].name.as_deref(), Some("db"));
    /// assert!(snap.creator.alive && !snap.is_orphan());
    /// arena.unlink()?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Snapshot> {
        use rustix::fs::{openat, Mode, OFlags, CWD};
        check_name(name, 200)?;
        let dir = openat(
            CWD,
            "/dev/shm",
            OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY,
            Mode::empty(),
        )
        .map_err(|e| Error::os("open /dev/shm", e))?;
        let fd = openat(
            &dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            rustix::io::Errno::NOENT => Error::NoSuchArena(name.to_string()),
            e => Error::os("open (a named arena, read-only)", e),
        })?;
        Self::read(
            fd.as_fd(),
            Some(name.to_string()),
            format!("/dev/shm/{name}"),
        )
    }

    /// A snapshot of the arena in the file at `path`, opened read-only: a named arena's
    /// file, or `/proc/<pid>/fd/<n>`, a descriptor of another process (of this user) that
    /// names an arena (an anonymous arena's memfd is listed there as
    /// `/memfd:shmproc-arena`).
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn from_path(path: &Path) -> Result<Snapshot> {
        use rustix::fs::{open, Mode, OFlags};
        let fd = open(
            path,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            rustix::io::Errno::NOENT => Error::NoSuchArena(path.display().to_string()),
            e => Error::os("open (an arena file, read-only)", e),
        })?;
        let name = path
            .parent()
            .filter(|p| *p == Path::new("/dev/shm"))
            .and_then(|_| path.file_name()?.to_str().map(str::to_string));
        Self::read(fd.as_fd(), name, path.display().to_string())
    }

    /// A snapshot of the arena behind `fd` (a memfd passed over a socket, a file).
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn from_fd(fd: BorrowedFd<'_>) -> Result<Snapshot> {
        Self::read(fd, None, "a descriptor".to_string())
    }

    /// Whether the arena is an orphan: its creator is gone and no live process holds an
    /// object in it (what [`Arena::cleanup_orphans`] removes, for a named arena). A live
    /// process that holds nothing (it dropped what it opened) does not keep it.
    pub fn is_orphan(&self) -> bool {
        !self.creator.alive
            && self
                .processes
                .iter()
                .all(|p| !p.pid.alive || p.objects == 0)
    }

    /// The object named `name`, if the snapshot saw one.
    pub fn object(&self, name: &str) -> Option<&ObjectInfo> {
        self.objects
            .iter()
            .find(|o| o.name.as_deref() == Some(name))
    }

    /// The state block of `object` in the copy, as a `T`, if the snapshot copied that
    /// object (and at least `size_of::<T>()` bytes of its state). For [`crate::inspect`],
    /// which knows which `T` each kind's state is.
    #[cfg_attr(shmproc_loom, allow(dead_code))]
    pub(crate) fn state<T: SharedState>(&self, object: &ObjectInfo) -> Option<&T> {
        // The entry of this snapshot at that offset (an `ObjectInfo` of another snapshot
        // says nothing of this copy).
        let o = self
            .objects
            .iter()
            .find(|o| o.offset == object.offset && o.problem.is_none())?;
        let need = core::mem::size_of::<T>() as u64;
        if need > o.copied || need > o.size || core::mem::align_of::<T>() as u64 > CACHE_LINE {
            return None;
        }
        // SAFETY: the object's header passed `header_copy` on this copy, so
        // `offset + OBJ_HEADER + size` lies inside the private mapping, which lives as long
        // as `self` (it is `self.copy`'s); `offset` is CACHE_LINE-aligned and so is the
        // state (OBJ_HEADER is a multiple of CACHE_LINE), which `T` needs at most
        // (`SharedState`); `need` bytes of it were copied. No copy is written after the
        // snapshot is made, and `T: SharedState` is valid for any bytes.
        Some(unsafe { &*self.copy.ptr(o.offset + OBJ_HEADER).cast::<T>() })
    }

    /// Bytes of `object`'s state block the copy holds (the state that [`state`](Self::state)
    /// returns and what follows it in the block); 0 if this snapshot did not copy it.
    #[cfg_attr(shmproc_loom, allow(dead_code))]
    pub(crate) fn state_len(&self, object: &ObjectInfo) -> usize {
        self.objects
            .iter()
            .find(|o| o.offset == object.offset && o.problem.is_none())
            .map_or(0, |o| usize::try_from(o.copied.min(o.size)).unwrap_or(0))
    }

    /// Reads the arena behind `fd`: [`ATTEMPTS`] tries for a consistent copy.
    fn read(fd: BorrowedFd<'_>, name: Option<String>, source: String) -> Result<Snapshot> {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let s = Reader::new(fd, name.clone())?.snapshot(source.clone())?;
            if s.consistent {
                return Ok(s);
            }
            last = Some(s);
        }
        let mut s = last.unwrap_or_else(|| unreachable!("ATTEMPTS > 0"));
        s.problems.push(format!(
            "the arena's metadata changed while it was read ({ATTEMPTS} tries): objects were \
             being made or freed; the listing mixes moments"
        ));
        Ok(s)
    }
}

/// The metadata words compared at the start and the end of a copy: every word of `Meta`
/// after its lock (tables, counters, the objects being made or freed).
fn meta_range() -> std::ops::Range<u64> {
    let meta = core::mem::offset_of!(Header, meta) as u64;
    meta + core::mem::offset_of!(Meta, dir) as u64..meta + core::mem::size_of::<Meta>() as u64
}

/// Why a file without an arena's magic number is not an arena: a [`SharedMemory`]
/// segment says so ([`Error::InvalidArgument`], naming what to use instead); anything
/// else, an empty file included (an anonymous arena's memfd is empty for a moment while
/// its creator makes it), is [`Error::NotAnArena`].
///
/// [`SharedMemory`]: crate::shared::SharedMemory
fn not_an_arena(fd: &OwnedFd) -> Error {
    match crate::shared::SegmentHeader::read(fd) {
        Ok(Some(h)) => Error::InvalidArgument(format!(
            "this file is a SharedMemory segment ({} usable bytes), not an arena: open it with \
             shmproc::shared::SharedMemory::open (`shmproc inspect` shows its header)",
            h.size
        )),
        _ => Error::NotAnArena,
    }
}

/// Builds one snapshot: the private copy, filled on demand.
struct Reader {
    /// An `Arena` over the private mapping (never registered, never attached: only read
    /// through the arena's checked accessors), whose descriptor is the source.
    copy: Arena,
    /// Bytes of the private mapping.
    len: u64,
    /// The header as validated before anything was copied.
    header: HeaderCopy,
}

impl Reader {
    /// Validates the header of the file behind `fd` and maps a private, zeroed copy of
    /// its size.
    fn new(fd: BorrowedFd<'_>, name: Option<String>) -> Result<Reader> {
        let fd: OwnedFd = fd
            .try_clone_to_owned()
            .map_err(|e| Error::os("dup (the arena's descriptor)", e))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| Error::os("fstat", e))?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(Error::NotAnArena);
        }
        let file = u64::try_from(st.st_size).unwrap_or(0);
        // What the file is comes first (its magic number): a file of another kind is
        // "not an arena", whatever its size; only an arena's file can be truncated.
        let header = HeaderCopy::read(&fd)?;
        if header.magic != MAGIC {
            return Err(not_an_arena(&fd));
        }
        if file < MIN_SIZE {
            return Err(Error::Truncated {
                needed: MIN_SIZE,
                found: file,
            });
        }
        header.validate(file)?;
        // The file may have grown past the header's size since: copy what there is, up to
        // the limit (the arena never uses more).
        let len = file.min(header.limit);
        let map = MmapOptions::new()
            .len(len as usize)
            .no_reserve_swap()
            .map_anon()
            .map_err(|e| Error::os("mmap (a private copy of the arena)", e))?;
        let copy = Arena {
            inner: Arc::new(Inner {
                map: MmapRaw::from(map),
                limit: len,
                name,
                fd,
                seen: crate::raw::extent::Seen::new(len),
                slot: plain::AtomicU64::new(0),
                pending: plain::AtomicU64::new(0),
            }),
        };
        Ok(Reader { copy, len, header })
    }

    /// Copies `len` bytes at `off` from the file into the copy (clipped to the copy; what
    /// the file no longer has reads as zeros).
    fn fill(&self, off: u64, len: u64) -> Result<()> {
        let end = off.saturating_add(len).min(self.len);
        if off >= end {
            return Ok(());
        }
        // SAFETY: `off..end` lies inside the private mapping (`len` bytes, writable, this
        // process's alone). No reference into those bytes is alive: the reader copies
        // every value it needs out of the copy before it fills anything else.
        let buf =
            unsafe { core::slice::from_raw_parts_mut(self.copy.ptr(off), (end - off) as usize) };
        let mut done = 0;
        while done < buf.len() {
            match rustix::io::pread(&self.copy.inner.fd, &mut buf[done..], off + done as u64) {
                Ok(0) => {
                    buf[done..].fill(0);
                    break;
                }
                Ok(n) => done += n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::os("pread (copying the arena)", e)),
            }
        }
        Ok(())
    }

    /// Copies the heap block at `off` (its header, then its usable bytes, at most `max`);
    /// returns its usable size.
    fn fill_block(&self, off: u64, max: u64) -> Result<u64> {
        if off < crate::raw::heap::HEADER || off >= self.len {
            return Err(Error::Corrupt(format!("no block can start at {off:#x}")));
        }
        self.fill(off - crate::raw::heap::HEADER, crate::raw::heap::HEADER)?;
        let usable = self.copy.block_len(off)?;
        self.fill(off, usable.min(max))?;
        Ok(usable)
    }

    /// The meta words of [`meta_range`] in the file now.
    fn meta_now(&self) -> Result<Vec<u8>> {
        let r = meta_range();
        let mut buf = vec![0u8; (r.end - r.start) as usize];
        let n = rustix::io::pread(&self.copy.inner.fd, &mut buf, r.start)
            .map_err(|e| Error::os("pread (the arena's header)", e))?;
        buf.truncate(n);
        Ok(buf)
    }

    /// The meta words of [`meta_range`] in the copy.
    fn meta_copied(&self) -> Vec<u8> {
        let r = meta_range();
        let mut buf = vec![0u8; (r.end - r.start) as usize];
        // SAFETY: the range lies in the header, inside the copy (at least MIN_SIZE bytes),
        // which only this thread writes; plain bytes are copied out.
        unsafe {
            core::ptr::copy_nonoverlapping(self.copy.ptr(r.start), buf.as_mut_ptr(), buf.len())
        };
        buf
    }

    fn snapshot(self, source: String) -> Result<Snapshot> {
        self.fill(0, HEADER_SIZE)?;
        let before = self.meta_copied();
        let copy = &self.copy;
        let header = copy.header();
        // Acquire (as `validate_mapped`): pairs with nothing now (the copy is private);
        // the check is that the copied header is still a complete one.
        if header.magic.load(Ordering::Acquire) != MAGIC {
            return Err(Error::NotAnArena);
        }
        let mut problems = Vec::new();
        // SAFETY: plain fields of the copied header, read volatile (as `Arena::id`).
        let (creator, id) = unsafe {
            let h = copy.header_ptr();
            (
                (&raw const (*h).creator).read_volatile(),
                (&raw const (*h).id).read_volatile(),
            )
        };
        let meta = &header.meta;
        // Relaxed (every load of the copy): the copy is private, written by this thread
        // before it reads it.
        let ld = |w: &crate::sync::AtomicU64| w.load(Ordering::Relaxed);
        let (dir, procs) = (ld(&meta.dir), ld(&meta.procs));
        let heap = header.heap.stats();
        let size = header.size.said().min(self.header.limit);
        let overhead = ld(&meta.overhead);
        let stats = ArenaStats {
            size: size as usize,
            limit: self.header.limit as usize,
            used: heap.used_bytes.saturating_sub(overhead) as usize,
            available: heap.free_bytes.saturating_add(self.header.limit - size) as usize,
            overhead: overhead as usize,
            objects: ld(&meta.objects),
            blocks: heap.allocated_blocks,
            swept: ld(&meta.swept),
            repairs: ld(&meta.repairs),
            heap_repairs: heap.recoveries,
        };
        let holder = |pid: Option<u32>| pid.map(|p| Pid::check(p, 0));
        let metadata_lock = holder(meta.lock.holder());
        let heap_lock = holder(header.heap.holder());

        // The table of processes, and what each holds.
        let mut objects: BTreeMap<u64, (Option<String>, Vec<ObjectHolder>)> = BTreeMap::new();
        let mut processes = Vec::new();
        if procs != 0 {
            match self.slots(procs) {
                Ok(slots) => {
                    for (ident, parent, held) in slots {
                        let pending = ident & PENDING != 0;
                        let id = ident & !PENDING;
                        let pid = (id >> IDENT_PID_SHIFT) as u32;
                        let start_time = id & IDENT_START_MASK;
                        let alive = !gone(ident, parent);
                        let held = match self.holdings(held) {
                            Ok(list) => list,
                            Err(e) => {
                                problems
                                    .push(format!("the holdings of process {pid}: {}", brief(&e)));
                                Vec::new()
                            }
                        };
                        for &(obj, opens) in &held {
                            objects.entry(obj).or_default().1.push(ObjectHolder {
                                pid: Pid { pid, alive },
                                opens,
                            });
                        }
                        processes.push(ProcessEntry {
                            pid: Pid { pid, alive },
                            start_time,
                            pending,
                            parent: pending.then_some((parent >> IDENT_PID_SHIFT) as u32),
                            objects: held.len(),
                        });
                    }
                }
                Err(e) => problems.push(format!("the table of processes: {}", brief(&e))),
            }
        }

        // The directory.
        if dir != 0 {
            match self.names(dir, &mut problems) {
                Ok(names) => {
                    for (name, obj) in names {
                        objects.entry(obj).or_default().0 = Some(name);
                    }
                }
                Err(e) => problems.push(format!("the directory of names: {}", brief(&e))),
            }
        }

        // Every object either names.
        let objects = objects
            .into_iter()
            .map(|(offset, (name, holders))| self.object(offset, name, holders))
            .collect();

        let consistent = self.meta_now()? == before;
        let created = rustix::fs::statx(
            &copy.inner.fd,
            "",
            rustix::fs::AtFlags::EMPTY_PATH,
            rustix::fs::StatxFlags::BTIME,
        )
        .ok()
        .filter(|s| s.stx_mask & rustix::fs::StatxFlags::BTIME.bits() != 0)
        .and_then(|s| {
            let secs = u64::try_from(s.stx_btime.tv_sec).ok()?;
            SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::new(
                secs,
                s.stx_btime.tv_nsec.min(999_999_999),
            ))
        });
        Ok(Snapshot {
            name: copy.inner.name.clone(),
            source,
            id,
            created,
            stats,
            creator: Pid::check(
                (creator >> IDENT_PID_SHIFT) as u32,
                creator & IDENT_START_MASK,
            ),
            metadata_lock,
            heap_lock,
            processes,
            objects,
            problems,
            consistent,
            copy: self.copy,
        })
    }

    /// The used slots of the process table at `off`: `(ident, parent, held)` each.
    fn slots(&self, off: u64) -> Result<Vec<(u64, u64, u64)>> {
        self.fill_block(off, u64::MAX)?;
        let t = self.copy.table::<ProcSlot>(off)?;
        Ok(t.entries
            .iter()
            // Relaxed: the private copy (see `snapshot`).
            .map(|s| {
                (
                    s.ident.load(Ordering::Relaxed),
                    s.parent.load(Ordering::Relaxed),
                    s.held.load(Ordering::Relaxed),
                )
            })
            .filter(|&(ident, _, _)| ident != 0)
            .collect())
    }

    /// The objects in the holdings table at `off` (none if 0), with their open counts.
    fn holdings(&self, off: u64) -> Result<Vec<(u64, u64)>> {
        if off == 0 {
            return Ok(Vec::new());
        }
        self.fill_block(off, u64::MAX)?;
        held_list(&self.copy, off)
    }

    /// The names of the directory at `off` and the objects they name; a used entry whose
    /// name is damaged is a problem, not an error.
    fn names(&self, off: u64, problems: &mut Vec<String>) -> Result<Vec<(String, u64)>> {
        self.fill_block(off, u64::MAX)?;
        let t = self.copy.table::<DirEntry>(off)?;
        let mut out = Vec::new();
        for (i, e) in t.entries.iter().enumerate() {
            // Relaxed: the private copy (see `snapshot`).
            if e.hash.load(Ordering::Relaxed) & DIR_USED == 0 {
                continue;
            }
            let obj = e.obj.load(Ordering::Relaxed);
            match super::directory::entry_name(e) {
                Some(name) => out.push((name, obj)),
                None => problems.push(format!(
                    "directory entry {i} (for the object at {obj:#x}) has a damaged name"
                )),
            }
        }
        Ok(out)
    }

    /// The object at `offset`, which the tables name `name` and say `holders` hold.
    fn object(&self, offset: u64, name: Option<String>, holders: Vec<ObjectHolder>) -> ObjectInfo {
        let mut info = ObjectInfo {
            offset,
            kind: None,
            kind_code: 0,
            name,
            generation: 0,
            refs: 0,
            size: 0,
            param: 0,
            type_fingerprint: 0,
            holders,
            problem: None,
            copied: 0,
        };
        let read = || -> Result<(ObjCopy, u64, u64)> {
            if offset % CACHE_LINE != 0 || offset < HEADER_SIZE || offset >= self.len {
                return Err(Error::Corrupt(format!(
                    "no object can start at {offset:#x}"
                )));
            }
            let block = crate::raw::heap::HEADER;
            self.fill(offset - block, block + OBJ_HEADER)?;
            let h = header_copy(&self.copy, offset)?;
            let copied = h.size.min(match ObjectKind::from_u32(h.kind) {
                // A queue whole (its slots' stamps and its table of claimers, which
                // `inspect` reads for the claims in progress), if not huge.
                Some(
                    ObjectKind::Queue
                    | ObjectKind::JoinableQueue
                    | ObjectKind::ByteQueue
                    | ObjectKind::ObjQueue,
                ) => QUEUE_COPY,
                _ => STATE_COPY,
            });
            self.fill(offset + OBJ_HEADER, copied)?;
            // Relaxed: the private copy (see `snapshot`).
            let refs = self.copy.obj_header(offset)?.refs.load(Ordering::Relaxed);
            Ok((h, refs, copied))
        };
        match read() {
            Ok((h, refs, copied)) => {
                info.kind = ObjectKind::from_u32(h.kind);
                info.kind_code = h.kind;
                info.generation = h.generation;
                info.refs = refs;
                info.size = h.size;
                info.param = h.param;
                info.type_fingerprint = h.type_fp;
                info.copied = copied;
            }
            Err(Error::NoObjectAt { .. }) => {
                info.problem = Some(format!(
                    "the tables name an object at {offset:#x}, but no live object is there"
                ))
            }
            Err(e) => info.problem = Some(brief(&e)),
        }
        info
    }
}

/// An error as a line of a listing: a corruption's own words, without the advice of its
/// `Display` (which is about the whole arena).
fn brief(e: &Error) -> String {
    match e {
        Error::Corrupt(what) => what.clone(),
        e => e.to_string(),
    }
}
