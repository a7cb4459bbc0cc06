//! The arena's fixed layout: header, directory, data. All offsets, no pointers.
//!
//! ```text
//! 0                    HEADER_SIZE          DATA_START                        total_size
//! +--------------------+--------------------+----------------------------------+
//! | Header (4 KiB)     | Directory:         | objects, bump-allocated upward,   |
//! | magic, version,    | DIR_CAPACITY x 128 | each CACHE_LINE aligned           |
//! | layout hash, size, | byte entries       |                                   |
//! | bump, dir lock     |                    |                                   |
//! +--------------------+--------------------+----------------------------------+
//! ```
//!
//! Everything read from here is treated as untrusted: [`EntryCopy::validate`] and
//! [`HeaderCopy::validate`] check a private copy, and only the copy is used.

use crate::error::Error;
use crate::raw::lock::RawLock;
use crate::sync::{AtomicU32, AtomicU64};

/// "SHMPROC" + format byte, little-endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMPROC\x01");
/// Bumped on any change of the layout or of any shared state block.
pub const VERSION: u32 = 6;
/// Alignment of every object (and of the data start).
pub const CACHE_LINE: u64 = 128;
/// Bytes reserved for the header.
pub const HEADER_SIZE: u64 = 4096;
/// Directory entries in every arena.
pub const DIR_CAPACITY: u32 = 256;
/// Bytes per directory entry.
pub const ENTRY_SIZE: u64 = 128;
/// Longest object name, in bytes.
pub const MAX_NAME: usize = 80;
/// First byte of the data area.
pub const DATA_START: u64 = HEADER_SIZE + DIR_CAPACITY as u64 * ENTRY_SIZE;
/// Smallest arena: header, directory and one page of data.
pub const MIN_SIZE: u64 = DATA_START + 4096;
/// Largest arena (1 TiB): keeps every offset computation far from overflow.
pub const MAX_SIZE: u64 = 1 << 40;

/// A hash of every layout constant: two builds that disagree on any of them refuse to
/// share an arena even if someone forgot to bump [`VERSION`].
pub const LAYOUT_HASH: u64 = {
    let parts = [
        VERSION as u64,
        CACHE_LINE,
        HEADER_SIZE,
        DIR_CAPACITY as u64,
        ENTRY_SIZE,
        MAX_NAME as u64,
        core::mem::size_of::<Header>() as u64,
        core::mem::size_of::<DirEntry>() as u64,
    ];
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut i = 0;
    while i < parts.len() {
        h = (h ^ parts[i]).wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
};

/// The arena header, at offset 0.
#[repr(C)]
pub struct Header {
    /// [`MAGIC`], stored last by the creator (Release) so an opener that sees it (Acquire)
    /// sees a complete header.
    pub magic: AtomicU64,
    /// [`VERSION`].
    pub version: u32,
    /// Always [`DIR_CAPACITY`].
    pub dir_capacity: u32,
    /// [`LAYOUT_HASH`].
    pub layout_hash: u64,
    /// Bytes in the arena, header included.
    pub total_size: u64,
    /// Pid of the creating process.
    pub creator_pid: u32,
    _pad0: u32,
    /// Next free data offset; only grows. Written under `dir_lock`.
    pub bump: AtomicU64,
    /// Entries in use (a hint for lookups); written under `dir_lock`.
    pub entries_used: AtomicU32,
    _pad1: u32,
    /// Serialises allocation and directory inserts across processes. Robust: a process
    /// that dies while holding it does not wedge the arena.
    pub dir_lock: RawLock,
}

/// A directory entry's `state` once the entry is complete (0 means free) and its object initialised.
pub const ENTRY_READY: u32 = 1;

/// One object in the directory.
#[repr(C)]
pub struct DirEntry {
    /// 0 (free) or [`ENTRY_READY`]; set to READY (Release) after every other field
    /// and the object itself are written.
    pub state: AtomicU32,
    /// An [`ObjectKind`](super::ObjectKind) value.
    pub kind: u32,
    /// Bytes of `name` in use; 0 for an unnamed object.
    pub name_len: u32,
    /// Reserved, zero.
    pub flags: u32,
    /// Fingerprint of the element type (see `fingerprint`), or 0.
    pub type_fp: u64,
    /// Offset of the object from the start of the arena.
    pub offset: u64,
    /// Size of the object in bytes.
    pub size: u64,
    /// Kind-specific parameter (capacity, element count, ...), for diagnostics.
    pub param: u64,
    /// UTF-8 name, not NUL-terminated.
    pub name: [u8; MAX_NAME],
}

#[cfg(not(shmproc_loom))]
mod layout_checks {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};
    static_assertions::const_assert_eq!(size_of::<DirEntry>() as u64, ENTRY_SIZE);
    static_assertions::const_assert_eq!(offset_of!(DirEntry, state), 0);
    static_assertions::const_assert_eq!(offset_of!(DirEntry, type_fp), 16);
    static_assertions::const_assert_eq!(offset_of!(DirEntry, offset), 24);
    static_assertions::const_assert_eq!(offset_of!(DirEntry, name), 48);
    static_assertions::const_assert_eq!(offset_of!(Header, magic), 0);
    static_assertions::const_assert_eq!(offset_of!(Header, layout_hash), 16);
    static_assertions::const_assert_eq!(offset_of!(Header, total_size), 24);
    static_assertions::const_assert_eq!(offset_of!(Header, bump), 40);
    static_assertions::const_assert_eq!(offset_of!(Header, dir_lock), 56);
    static_assertions::const_assert_eq!(size_of::<Header>(), 72);
    static_assertions::const_assert!(size_of::<Header>() as u64 <= HEADER_SIZE);
    static_assertions::const_assert!(align_of::<Header>() <= CACHE_LINE as usize);
    static_assertions::const_assert_eq!(DATA_START % CACHE_LINE, 0);
}

/// A private copy of the header's plain fields, taken before anything is trusted.
#[derive(Debug, Clone, Copy)]
pub struct HeaderCopy {
    pub magic: u64,
    pub version: u32,
    pub dir_capacity: u32,
    pub layout_hash: u64,
    pub total_size: u64,
    pub bump: u64,
}

impl HeaderCopy {
    /// Checks the header against the real size of the mapping (`len`).
    pub fn validate(&self, len: u64) -> Result<(), Error> {
        if self.magic != MAGIC {
            return Err(Error::NotAnArena);
        }
        if self.version != VERSION {
            return Err(Error::Version {
                found: self.version,
                expected: VERSION,
            });
        }
        if self.layout_hash != LAYOUT_HASH || self.dir_capacity != DIR_CAPACITY {
            return Err(Error::Corrupt(format!(
                "layout hash {:#x} / directory capacity {} do not match this build's {:#x} / {}",
                self.layout_hash, self.dir_capacity, LAYOUT_HASH, DIR_CAPACITY
            )));
        }
        if self.total_size < MIN_SIZE || self.total_size > MAX_SIZE {
            return Err(Error::Corrupt(format!(
                "total size {} is out of range",
                self.total_size
            )));
        }
        if len < self.total_size {
            return Err(Error::Truncated {
                needed: self.total_size,
                found: len,
            });
        }
        if self.bump < DATA_START || self.bump > self.total_size || self.bump % CACHE_LINE != 0 {
            return Err(Error::Corrupt(format!(
                "allocation mark {} is outside {}..={} or misaligned",
                self.bump, DATA_START, self.total_size
            )));
        }
        Ok(())
    }
}

/// A private copy of one directory entry.
#[derive(Debug, Clone, Copy)]
pub struct EntryCopy {
    pub kind: u32,
    pub name_len: u32,
    pub type_fp: u64,
    pub offset: u64,
    pub size: u64,
    /// The kind-specific parameter given at creation (capacity, length, ...).
    #[allow(dead_code)]
    pub param: u64,
    pub name: [u8; MAX_NAME],
}

impl EntryCopy {
    /// The name, if the entry is named and the name is valid UTF-8 (checked by `validate`).
    pub fn name(&self) -> &str {
        let n = (self.name_len as usize).min(MAX_NAME);
        std::str::from_utf8(&self.name[..n]).unwrap_or("")
    }

    /// Checks a READY entry against the header's allocation mark `bump`.
    pub fn validate(&self, index: usize, bump: u64) -> Result<(), Error> {
        let bad = |what: String| Error::Corrupt(format!("directory entry {index}: {what}"));
        if super::ObjectKind::from_u32(self.kind).is_none() {
            return Err(bad(format!("unknown object kind {}", self.kind)));
        }
        if self.name_len as usize > MAX_NAME {
            return Err(bad(format!(
                "name length {} exceeds {MAX_NAME}",
                self.name_len
            )));
        }
        if std::str::from_utf8(&self.name[..self.name_len as usize]).is_err() {
            return Err(bad("name is not UTF-8".into()));
        }
        if self.offset < DATA_START || self.offset % CACHE_LINE != 0 {
            return Err(bad(format!(
                "offset {} is misaligned or inside the header",
                self.offset
            )));
        }
        match self.offset.checked_add(self.size) {
            Some(end) if self.size > 0 && end <= bump => Ok(()),
            _ => Err(bad(format!(
                "object {}..+{} lies outside the allocated area (which ends at {bump})",
                self.offset, self.size
            ))),
        }
    }
}
