//! Where arenas are: named ones in `/dev/shm`, anonymous ones behind the descriptors of
//! running processes (`/proc/<pid>/fd/<n>` naming `/memfd:shmproc-arena`), and which
//! processes map each (`/proc/<pid>/maps`); and the `SharedMemory` segments in
//! `/dev/shm`.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub use shmproc::shared::SegmentHeader;

/// The name every anonymous arena's memfd has (`Arena::anonymous`).
const MEMFD: &str = "/memfd:shmproc-arena";

/// Identifies a file across paths and processes: its device (major, minor) and inode, as
/// `/proc/<pid>/maps` shows them.
pub type FileKey = (u32, u32, u64);

fn key_of(m: &std::fs::Metadata) -> FileKey {
    let dev = m.dev();
    (rustix::fs::major(dev), rustix::fs::minor(dev), m.ino())
}

/// An arena found on this machine.
#[derive(Debug, Clone)]
pub struct Found {
    /// What `shmproc inspect` takes to name it: its name in `/dev/shm`, or the path of a
    /// descriptor of a process that has it.
    pub label: String,
    /// Its name in `/dev/shm` (named arenas).
    pub name: Option<String>,
    /// A path that opens it.
    pub path: PathBuf,
    /// Its file.
    pub key: FileKey,
    /// Processes with a descriptor of it open (anonymous arenas).
    pub fd_holders: BTreeSet<u32>,
}

/// A `SharedMemory` segment found in `/dev/shm`.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Its name in `/dev/shm`.
    pub name: String,
    /// Its file.
    pub key: FileKey,
    /// What its header says.
    pub header: SegmentHeader,
    /// When its name appeared (the file's status change time: a segment is named once
    /// complete, and writes through a mapping do not change it).
    pub created: Option<SystemTime>,
}

/// What a file in `/dev/shm` is.
pub enum Kind {
    /// It starts as a shmproc arena does (`SHMPROC`, any format version).
    Arena(FileKey),
    /// A `SharedMemory` segment.
    Segment(Segment),
}

/// What the files in `/dev/shm` made by shmproc are (the ones this user can read): the
/// arenas, then the segments, each sorted by name.
pub fn named() -> std::io::Result<(Vec<Found>, Vec<Segment>)> {
    let mut arenas = Vec::new();
    let mut segments = Vec::new();
    for entry in std::fs::read_dir("/dev/shm")?.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        match named_kind(&name) {
            Some(Kind::Arena(key)) => arenas.push(Found {
                label: name.clone(),
                name: Some(name),
                path: entry.path(),
                key,
                fd_holders: BTreeSet::new(),
            }),
            Some(Kind::Segment(s)) => segments.push(s),
            None => {}
        }
    }
    arenas.sort_by(|a, b| a.label.cmp(&b.label));
    segments.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((arenas, segments))
}

/// What `/dev/shm/<name>` is, if shmproc made it (a symbolic link is not followed).
pub fn named_kind(name: &str) -> Option<Kind> {
    let path = Path::new("/dev/shm").join(name);
    match file_kind(&path, false)? {
        (key, None) => Some(Kind::Arena(key)),
        (key, Some(header)) => Some(Kind::Segment(Segment {
            name: name.to_string(),
            key,
            header,
            created: std::fs::symlink_metadata(&path)
                .ok()
                .and_then(|m| ctime(&m)),
        })),
    }
}

/// The file at `path`, if it is a `SharedMemory` segment (a symbolic link, such as
/// `/proc/<pid>/fd/<n>`, is followed).
pub fn segment_at(path: &Path) -> Option<Segment> {
    let (key, header) = file_kind(path, true)?;
    Some(Segment {
        name: path.file_name()?.to_string_lossy().into_owned(),
        key,
        header: header?,
        created: std::fs::metadata(path).ok().and_then(|m| ctime(&m)),
    })
}

fn ctime(m: &std::fs::Metadata) -> Option<SystemTime> {
    let secs = u64::try_from(m.ctime()).ok()?;
    let nanos = u32::try_from(m.ctime_nsec()).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::new(secs, nanos))
}

/// The key of the file at `path` if it is a regular file that starts with `SHMPROC` (an
/// arena, any format version).
fn arena_file(path: &Path, follow: bool) -> Option<FileKey> {
    match file_kind(path, follow)? {
        (key, None) => Some(key),
        (_, Some(_)) => None,
    }
}

/// The key of the file at `path` and, for a segment, its header, if it is a regular file
/// that shmproc made: an arena (it starts with `SHMPROC`) or a `SharedMemory` segment
/// (opened read-only, without blocking; a symbolic link is followed only if `follow`).
fn file_kind(path: &Path, follow: bool) -> Option<(FileKey, Option<SegmentHeader>)> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut flags = libc_flags::NONBLOCK;
    if !follow {
        flags |= libc_flags::NOFOLLOW;
    }
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .ok()?;
    let m = f.metadata().ok()?;
    if !m.file_type().is_file() {
        return None;
    }
    if let Ok(Some(h)) = SegmentHeader::read(&f) {
        return Some((key_of(&m), Some(h)));
    }
    let mut magic = [0u8; 7];
    f.read_exact(&mut magic).ok()?;
    (&magic == b"SHMPROC").then(|| (key_of(&m), None))
}

/// `open(2)` flags, from rustix (std has no names for them).
mod libc_flags {
    pub const NONBLOCK: i32 = rustix::fs::OFlags::NONBLOCK.bits() as i32;
    pub const NOFOLLOW: i32 = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
}

/// The pids in `/proc`, except this process.
fn pids() -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&p| p != me)
        .collect();
    pids.sort_unstable();
    pids
}

/// The anonymous arenas of running processes (of this user, or all for root), one entry
/// per arena however many processes have it: found through their descriptors.
pub fn anonymous() -> Vec<Found> {
    let mut by_key: BTreeMap<FileKey, Found> = BTreeMap::new();
    for pid in pids() {
        anonymous_of(pid, &mut by_key);
    }
    by_key.into_values().collect()
}

/// Adds the anonymous arenas process `pid` has a descriptor of to `by_key`.
fn anonymous_of(pid: u32, by_key: &mut BTreeMap<FileKey, Found>) {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return;
    };
    let mut fds: Vec<(u32, PathBuf)> = fds
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path())))
        .collect();
    fds.sort_unstable();
    for (_, path) in fds {
        let Ok(target) = std::fs::read_link(&path) else {
            continue;
        };
        if !target.to_string_lossy().starts_with(MEMFD) {
            continue;
        }
        let Some(key) = arena_file(&path, true) else {
            continue;
        };
        by_key
            .entry(key)
            .or_insert_with(|| Found {
                label: path.display().to_string(),
                name: None,
                path: path.clone(),
                key,
                fd_holders: BTreeSet::new(),
            })
            .fd_holders
            .insert(pid);
    }
}

/// The anonymous arenas of process `pid` (for `pid:<pid>`).
pub fn anonymous_of_pid(pid: u32) -> Vec<Found> {
    let mut by_key = BTreeMap::new();
    anonymous_of(pid, &mut by_key);
    by_key.into_values().collect()
}

/// Which processes map which file (of the files in `/dev/shm` and the arenas' memfds).
#[derive(Debug, Default)]
pub struct Mappers(BTreeMap<FileKey, BTreeSet<u32>>);

impl Mappers {
    /// Reads `/proc/<pid>/maps` of every process this user may read.
    pub fn scan() -> Mappers {
        let mut m = Mappers::default();
        for pid in pids() {
            let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
                continue;
            };
            for line in text.lines() {
                if !(line.contains("/dev/shm/") || line.contains(MEMFD)) {
                    continue;
                }
                if let Some(key) = maps_key(line) {
                    m.0.entry(key).or_default().insert(pid);
                }
            }
        }
        m
    }

    /// The processes that map `key`.
    pub fn of(&self, key: FileKey) -> BTreeSet<u32> {
        self.0.get(&key).cloned().unwrap_or_default()
    }
}

/// The file key of a `/proc/<pid>/maps` line: `addr perms offset MAJ:MIN inode path`.
fn maps_key(line: &str) -> Option<FileKey> {
    let mut f = line.split_ascii_whitespace();
    let dev = f.nth(3)?;
    let ino = f.next()?.parse().ok()?;
    let (maj, min) = dev.split_once(':')?;
    Some((
        u32::from_str_radix(maj, 16).ok()?,
        u32::from_str_radix(min, 16).ok()?,
        ino,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_give_device_and_inode() {
        let l = "7f1c2a000000-7f1c2a100000 rw-s 00000000 00:1a 4242    /dev/shm/jobs";
        assert_eq!(maps_key(l), Some((0, 0x1a, 4242)));
        let l = "7f1c2a000000-7f1c2a100000 rw-s 00000000 00:01 77 /memfd:shmproc-arena (deleted)";
        assert_eq!(maps_key(l), Some((0, 1, 77)));
        assert_eq!(maps_key("garbage"), None);
    }
}
