//! [`SharedMemory`]: a raw named segment in `/dev/shm` (Python's
//! `multiprocessing.shared_memory.SharedMemory`), outside any arena.
//!
//! # Layout
//!
//! A segment is a `/dev/shm` file of `HEADER + size` bytes. The 64-byte header records a
//! magic number, the usable size, and the creator's pid and start time; the usable bytes
//! follow, 64-byte aligned. [`SharedMemory::open`] takes the size from the header (and
//! checks it against the file), so attaching needs only the name.
//!
//! # Segments whose creator was killed
//!
//! A name in `/dev/shm` outlives every process: if the creator is killed before it calls
//! [`unlink`](SharedMemory::unlink), the segment leaks until reboot. Python runs a
//! resource-tracker process for this. Here the header is the record instead:
//! [`cleanup_orphans`] scans `/dev/shm` for segments of this format, owned by this user,
//! whose creator process is gone (its pid is absent, a zombie, or reused by a process
//! that started later), and unlinks them. Call it at the start of a program (it costs one
//! `open` + `pread` per file in `/dev/shm`), or from a supervisor.
//!
//! A segment meant to outlive its creator (to be picked up by a later process) is
//! [`persist`](SharedMemory::persist)ed: its creator record is cleared, and the sweep
//! leaves it alone.
//!
//! Like every `/dev/shm` mapping, a peer that truncates the file can make this process
//! fault with `SIGBUS` on access; the kernel offers no defence against that for named
//! segments.

use crate::error::{Error, Result};
use crate::sync::liveness::{Liveness, Procfs};
use memmap2::{MmapOptions, MmapRaw};
use rustix::fd::OwnedFd;
use std::fmt;

/// Bytes before the usable memory of a segment.
pub const SEGMENT_HEADER: usize = 64;

const SEG_MAGIC: u64 = u64::from_le_bytes(*b"SHMPSEG\x01");
/// Largest segment (1 TiB).
const MAX_SEGMENT: u64 = 1 << 40;

/// The header at the start of every segment (read with `pread`, never trusted).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct SegHeader {
    magic: u64,
    size: u64,
    creator_pid: u32,
    _pad: u32,
    creator_start: u64,
    _reserved: [u64; 4],
}

#[cfg(not(shmproc_loom))]
static_assertions::assert_eq_size!(SegHeader, [u8; SEGMENT_HEADER]);

/// A raw block of named shared memory: Python's `SharedMemory`.
///
/// The bytes are plain memory shared with other processes: synchronise access with a
/// [`Lock`](crate::Lock) or other primitive. The safe accessors ([`read`](Self::read),
/// [`write`](Self::write)) copy with volatile accesses and check bounds; raw access goes
/// through [`as_ptr`](Self::as_ptr).
///
/// Dropping the handle (or [`close`](Self::close)) unmaps the segment; only
/// [`unlink`](Self::unlink) removes its name. See the [module docs](self) on cleaning up
/// after a creator that was killed.
///
/// # Example
/// ```
/// use shmproc::shared::SharedMemory;
/// let a = SharedMemory::create(None, 1000)?; // a generated, unique name
/// a.write(0, b"hello")?;
/// let b = SharedMemory::open(a.name())?;     // e.g. in another process
/// assert_eq!(b.size(), 1000);
/// let mut buf = [0u8; 5];
/// b.read(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// a.unlink()?;
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct SharedMemory {
    map: MmapRaw,
    name: String,
    size: usize,
    _fd: OwnedFd,
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("name", &self.name)
            .field("size", &self.size)
            .finish()
    }
}

/// A range was outside a [`SharedMemory`] segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfBounds {
    /// First byte asked for.
    pub offset: usize,
    /// Bytes asked for.
    pub len: usize,
    /// The segment's size.
    pub size: usize,
}

impl fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bytes {}..{} are outside a segment of {} bytes: read and write within 0..size()",
            self.offset,
            self.offset.saturating_add(self.len),
            self.size
        )
    }
}

impl std::error::Error for OutOfBounds {}

impl From<OutOfBounds> for Error {
    fn from(e: OutOfBounds) -> Error {
        Error::InvalidArgument(e.to_string())
    }
}

fn check_seg_name(name: &str) -> Result<()> {
    crate::arena::check_name(name, 200)
}

fn unique_name() -> String {
    use crate::sync::plain::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // Relaxed: only uniqueness within this process matters; O_EXCL settles the rest.
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "shmproc-{}-{n}-{nanos:08x}",
        crate::sync::liveness::current_pid()
    )
}

impl SharedMemory {
    /// Creates a segment of `size` usable bytes (zero-filled), named `name` or, with
    /// `None`, a generated unique name (see [`name`](Self::name)). Creation is exclusive
    /// and atomic (the segment appears complete, with its header, or not at all; a
    /// creator killed part-way leaves nothing), mode `0600`. The caller's pid is recorded
    /// for [`cleanup_orphans`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a size of 0 (or above 1 TiB);
    /// [`Error::InvalidName`] for an empty name or one with `/` or NUL;
    /// [`Error::AlreadyExists`] when the name is taken; [`Error::Os`] otherwise.
    ///
    /// ```
    /// use shmproc::{Error, shared::SharedMemory};
    /// assert!(matches!(SharedMemory::create(None, 0), Err(Error::InvalidArgument(_))));
    /// assert!(matches!(SharedMemory::create(Some("a/b"), 8), Err(Error::InvalidName(_))));
    /// let a = SharedMemory::create(None, 8)?;
    /// assert!(matches!(SharedMemory::create(Some(a.name()), 8), Err(Error::AlreadyExists(_))));
    /// a.unlink()?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn create(name: Option<&str>, size: usize) -> Result<SharedMemory> {
        if size == 0 || size as u64 > MAX_SEGMENT {
            return Err(Error::InvalidArgument(format!(
                "segment size {size} is outside 1..={MAX_SEGMENT} bytes: give a size in that range"
            )));
        }
        match name {
            Some(n) => {
                check_seg_name(n)?;
                Self::create_named(n, size)
            }
            None => loop {
                match Self::create_named(&unique_name(), size) {
                    Err(Error::AlreadyExists(_)) => continue,
                    r => break r,
                }
            },
        }
    }

    fn create_named(name: &str, size: usize) -> Result<SharedMemory> {
        use rustix::fs::ftruncate;
        // Made unnamed, then named in one step once complete (O_TMPFILE + linkat): nobody
        // sees a segment without its header, and a creator killed before the end leaves
        // nothing behind.
        let file = crate::arena::ShmFile::new(name)?;
        let fd = file.fd().try_clone().map_err(|e| Error::os("dup", e))?;
        let total = (SEGMENT_HEADER + size) as u64;
        ftruncate(&fd, total).map_err(|e| Error::os("ftruncate", e))?;
        let header = SegHeader {
            magic: SEG_MAGIC,
            size: size as u64,
            creator_pid: Procfs.me(),
            creator_start: Procfs.my_start(),
            ..SegHeader::default()
        };
        let bytes = bytemuck::bytes_of(&header);
        let n = rustix::io::pwrite(&fd, bytes, 0).map_err(|e| Error::os("pwrite", e))?;
        if n != bytes.len() {
            return Err(Error::os(
                "pwrite",
                std::io::Error::from(std::io::ErrorKind::WriteZero),
            ));
        }
        let seg = Self::map(fd, name, size)?;
        file.publish()?;
        Ok(seg)
    }

    fn map(fd: OwnedFd, name: &str, size: usize) -> Result<SharedMemory> {
        let map = MmapOptions::new()
            .len(SEGMENT_HEADER + size)
            .map_raw(&fd)
            .map_err(|e| Error::os("mmap", e))?;
        Ok(SharedMemory {
            map,
            name: name.to_string(),
            size,
            _fd: fd,
        })
    }

    /// Attaches to the segment `name`; its size comes from the segment.
    ///
    /// # Errors
    /// [`Error::NoSuchSegment`] when there is no such segment; [`Error::InvalidName`];
    /// [`Error::WrongType`] when the file is not a segment made by
    /// [`create`](Self::create); [`Error::Truncated`] when it is shorter than its header
    /// says.
    ///
    /// ```
    /// use shmproc::{Error, shared::SharedMemory};
    /// assert!(matches!(SharedMemory::open("shmproc-no-such-segment"), Err(Error::NoSuchSegment(_))));
    /// ```
    pub fn open(name: &str) -> Result<SharedMemory> {
        use rustix::fs::Mode;
        use rustix::shm;
        check_seg_name(name)?;
        let fd = shm::open(
            crate::arena::shm_path(name).as_str(),
            shm::OFlags::RDWR,
            Mode::empty(),
        )
        .map_err(|e| match e {
            rustix::io::Errno::NOENT => Error::NoSuchSegment(name.to_string()),
            e => Error::os("shm_open", e),
        })?;
        let (header, len) = read_header(&fd)?;
        if header.magic != SEG_MAGIC {
            return Err(Error::WrongType {
                name: name.to_string(),
                expected: "shmproc SharedMemory segment".into(),
                found: "file without a segment header".into(),
            });
        }
        let needed = header.size.checked_add(SEGMENT_HEADER as u64);
        match needed {
            Some(n) if header.size > 0 && header.size <= MAX_SEGMENT && n <= len => {}
            _ => {
                return Err(Error::Truncated {
                    needed: needed.unwrap_or(u64::MAX),
                    found: len,
                })
            }
        }
        Self::map(fd, name, header.size as usize)
    }

    /// The segment's name (pass it to [`open`](Self::open) in another process).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Usable bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Start of the usable bytes (64-byte aligned), valid for [`size`](Self::size) bytes
    /// while `self` lives. Other processes may write them at any time.
    pub fn as_ptr(&self) -> *mut u8 {
        // SAFETY: the mapping is SEGMENT_HEADER + size bytes, so the offset is inside it.
        unsafe { self.map.as_mut_ptr().add(SEGMENT_HEADER) }
    }

    fn check(&self, offset: usize, len: usize) -> std::result::Result<(), OutOfBounds> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(OutOfBounds {
                offset,
                len,
                size: self.size,
            }),
        }
    }

    /// Copies `out.len()` bytes at `offset` into `out`.
    ///
    /// # Errors
    /// [`OutOfBounds`] when the range does not fit.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> std::result::Result<(), OutOfBounds> {
        self.check(offset, out.len())?;
        let src = self.as_ptr();
        for (i, o) in out.iter_mut().enumerate() {
            // SAFETY: offset + i < size (checked), inside the mapping; volatile because
            // other processes write the memory behind the compiler's back.
            *o = unsafe { src.add(offset + i).read_volatile() };
        }
        Ok(())
    }

    /// Copies `src` into the segment at `offset`.
    ///
    /// # Errors
    /// [`OutOfBounds`] when the range does not fit.
    pub fn write(&self, offset: usize, src: &[u8]) -> std::result::Result<(), OutOfBounds> {
        self.check(offset, src.len())?;
        let dst = self.as_ptr();
        for (i, &b) in src.iter().enumerate() {
            // SAFETY: as in `read`.
            unsafe { dst.add(offset + i).write_volatile(b) };
        }
        Ok(())
    }

    /// The usable bytes as a slice.
    ///
    /// # Safety
    /// No process may write the segment while the slice lives.
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: in bounds (see `as_ptr`); the caller excludes concurrent writers.
        unsafe { core::slice::from_raw_parts(self.as_ptr(), self.size) }
    }

    /// The usable bytes as a mutable slice.
    ///
    /// # Safety
    /// No other process or handle may read or write the segment while the slice lives.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn as_mut_slice(&self) -> &mut [u8] {
        // SAFETY: in bounds (see `as_ptr`); the caller guarantees exclusive access.
        unsafe { core::slice::from_raw_parts_mut(self.as_ptr(), self.size) }
    }

    /// Marks the segment as meant to outlive its creator: [`cleanup_orphans`] will not
    /// remove it (remove it with [`unlink`](Self::unlink) or
    /// [`unlink_name`](Self::unlink_name)).
    pub fn persist(&self) {
        let hdr = self.map.as_mut_ptr().cast::<SegHeader>();
        // SAFETY: the header is the first SEGMENT_HEADER bytes of the mapping, 8-byte
        // aligned (page-aligned mapping). A zero pid means "no creator to outlive".
        unsafe { (&raw mut (*hdr).creator_pid).write_volatile(0) };
    }

    /// Unmaps the segment (same as dropping the handle). The name stays.
    pub fn close(self) {}

    /// Removes the segment's name: no process can attach any more; mappings stay valid
    /// until closed.
    ///
    /// # Errors
    /// [`Error::NoSuchSegment`] when the name was already removed.
    pub fn unlink(&self) -> Result<()> {
        Self::unlink_name(&self.name)
    }

    /// Removes the segment `name` from `/dev/shm`.
    ///
    /// # Errors
    /// [`Error::NoSuchSegment`]; [`Error::InvalidName`].
    pub fn unlink_name(name: &str) -> Result<()> {
        check_seg_name(name)?;
        rustix::shm::unlink(crate::arena::shm_path(name).as_str()).map_err(|e| match e {
            rustix::io::Errno::NOENT => Error::NoSuchSegment(name.to_string()),
            e => Error::os("shm_unlink", e),
        })
    }
}

/// What a [`SharedMemory`] segment's header records, read from its file without mapping
/// it: for tools that list segments and decide which to remove (`shmproc ls` and
/// `shmproc clean` use it). [`is_orphan`](Self::is_orphan) is the rule
/// [`cleanup_orphans`] applies.
///
/// # Example
/// ```
/// use shmproc::shared::{SegmentHeader, SharedMemory};
/// let seg = SharedMemory::create(None, 100)?;
/// let file = std::fs::File::open(format!("/dev/shm/{}", seg.name()))?;
/// let h = SegmentHeader::read(&file)?.expect("a segment");
/// assert_eq!(h.size, 100);
/// assert_eq!(h.creator_pid, std::process::id());
/// assert!(!h.is_orphan()); // its creator (this process) is alive
/// seg.persist();
/// assert!(SegmentHeader::read(&file)?.unwrap().is_persistent());
/// // A file of another kind is not a segment.
/// assert_eq!(SegmentHeader::read(&std::fs::File::open(std::env::current_exe()?)?)?, None);
/// seg.unlink()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentHeader {
    /// Usable bytes, as the header says (the file may be shorter: see
    /// [`is_truncated`](Self::is_truncated)).
    pub size: u64,
    /// The creator's pid; 0 once the segment was [`persist`](SharedMemory::persist)ed.
    pub creator_pid: u32,
    /// The creator's start time (clock ticks since boot), which tells it from a later
    /// process with the same pid.
    pub creator_start: u64,
    /// The file's length now (header included).
    pub file_len: u64,
    /// The user id that owns the file.
    pub owner: u32,
}

impl SegmentHeader {
    /// Reads the header of the file open as `fd` (with `pread`): `Ok(None)` when the file
    /// is not a segment (not a regular file, shorter than a header, or without the
    /// segment magic number). Nothing in it is trusted beyond being reported.
    ///
    /// # Errors
    /// [`Error::Os`] when the file cannot be examined or read.
    pub fn read(fd: impl rustix::fd::AsFd) -> Result<Option<SegmentHeader>> {
        let fd = fd.as_fd();
        let st = rustix::fs::fstat(fd).map_err(|e| Error::os("fstat", e))?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Ok(None);
        }
        let (h, len) = read_header(fd)?;
        Ok((h.magic == SEG_MAGIC).then_some(SegmentHeader {
            size: h.size,
            creator_pid: h.creator_pid,
            creator_start: h.creator_start,
            file_len: len,
            owner: st.st_uid,
        }))
    }

    /// Whether the segment was [`persist`](SharedMemory::persist)ed (meant to outlive its
    /// creator: [`cleanup_orphans`] leaves it).
    pub fn is_persistent(&self) -> bool {
        self.creator_pid == 0
    }

    /// Whether the file is shorter than its header says ([`SharedMemory::open`] refuses
    /// it with [`Error::Truncated`]).
    pub fn is_truncated(&self) -> bool {
        self.size == 0
            || self.size > MAX_SEGMENT
            || self.size + SEGMENT_HEADER as u64 > self.file_len
    }

    /// Whether [`cleanup_orphans`] removes it: owned by this user, not persisted, and its
    /// recorded creator has exited (its pid is absent, a zombie, or reused by a process
    /// that started later).
    pub fn is_orphan(&self) -> bool {
        self.owner == rustix::process::geteuid().as_raw()
            && !self.is_persistent()
            && Procfs.is_dead(self.creator_pid, self.creator_start)
    }
}

/// Reads a header copy with `pread` (no mapping: a truncated file cannot fault us).
fn read_header(fd: impl rustix::fd::AsFd) -> Result<(SegHeader, u64)> {
    let fd = fd.as_fd();
    let len = rustix::fs::fstat(fd)
        .map_err(|e| Error::os("fstat", e))?
        .st_size;
    let len = u64::try_from(len).unwrap_or(0);
    let mut h = SegHeader::default();
    if len < SEGMENT_HEADER as u64 {
        return Ok((h, len));
    }
    let n = rustix::io::pread(fd, bytemuck::bytes_of_mut(&mut h), 0)
        .map_err(|e| Error::os("pread", e))?;
    if n != SEGMENT_HEADER {
        h = SegHeader::default();
    }
    Ok((h, len))
}

/// Removes the segments whose creator process is gone, and returns their names.
///
/// Looks at every file in `/dev/shm` owned by this user; a file is removed only if it
/// carries a [`SharedMemory`] header whose recorded creator (pid and start time) has
/// exited, and that was not [`persist`](SharedMemory::persist)ed. Files of other formats,
/// of other users, and segments of live creators are left alone. Processes still
/// attached keep their mapping.
///
/// # Errors
/// [`Error::Os`] when `/dev/shm` cannot be listed.
///
/// ```
/// use shmproc::shared::{cleanup_orphans, SharedMemory};
/// let mine = SharedMemory::create(None, 16)?;
/// let removed = cleanup_orphans()?;
/// assert!(!removed.iter().any(|n| n == mine.name())); // its creator (us) is alive
/// mine.unlink()?;
/// # Ok::<(), shmproc::Error>(())
/// ```
pub fn cleanup_orphans() -> Result<Vec<String>> {
    let dir = std::fs::read_dir("/dev/shm").map_err(|e| Error::os("read_dir(/dev/shm)", e))?;
    let mut removed = Vec::new();
    for entry in dir.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if is_orphan(&name).unwrap_or(false) && SharedMemory::unlink_name(&name).is_ok() {
            removed.push(name);
        }
    }
    Ok(removed)
}

fn is_orphan(name: &str) -> Result<bool> {
    use rustix::fs::Mode;
    use rustix::shm;
    check_seg_name(name)?;
    let fd = shm::open(
        crate::arena::shm_path(name).as_str(),
        shm::OFlags::RDONLY,
        Mode::empty(),
    )
    .map_err(|e| Error::os("shm_open", e))?;
    Ok(SegmentHeader::read(&fd)?.is_some_and(|h| h.is_orphan()))
}
