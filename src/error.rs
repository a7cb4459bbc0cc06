//! Errors of creating, attaching to and looking up shared objects.
//!
//! Each operation on a primitive has its own small error enum next to it (crossbeam
//! style: `TryPutError::Full(value)` hands the value back). This module holds the one
//! error that every constructor shares: [`Error`].

use std::fmt;

/// Why an arena or an object in it could not be created, attached to or found.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call failed (`memfd_create`, `shm_open`, `mmap`, ...).
    Os {
        /// What was being done.
        op: &'static str,
        /// The error the kernel returned.
        source: std::io::Error,
    },
    /// The file is not a shmproc arena (bad magic number), or is still being created.
    NotAnArena,
    /// The arena was made by another format version of shmproc.
    Version {
        /// The version found in the header.
        found: u32,
        /// The version this build reads.
        expected: u32,
    },
    /// The arena is smaller than its header says, or than a header.
    Truncated {
        /// Bytes the header (or the format) requires.
        needed: u64,
        /// Bytes actually there.
        found: u64,
    },
    /// The header or a directory entry fails validation: the arena is corrupt, or was
    /// written by a hostile or buggy peer. Nothing in it was used.
    Corrupt(String),
    /// A size or count given by the caller is out of range (`what` says which).
    InvalidArgument(String),
    /// A name is empty, too long, or contains `/` or NUL.
    InvalidName(String),
    /// The arena has no room left for the requested object.
    OutOfSpace {
        /// Bytes requested (aligned).
        requested: u64,
        /// Bytes still free.
        available: u64,
    },
    /// The arena's directory has no free entry.
    DirectoryFull,
    /// An object with this name already exists in the arena.
    AlreadyExists(String),
    /// No object with this name exists in the arena.
    NotFound(String),
    /// The named object exists but is another kind of object or holds another type.
    WrongType {
        /// The object's name.
        name: String,
        /// What the caller asked for.
        expected: String,
        /// What the directory says it is.
        found: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Os { op, source } => write!(f, "{op} failed: {source}"),
            Error::NotAnArena => f.write_str(
                "not a shmproc arena (bad magic number), or its creator has not finished creating it",
            ),
            Error::Version { found, expected } => write!(
                f,
                "arena format version {found} cannot be read by this build (it reads version {expected})"
            ),
            Error::Truncated { needed, found } => {
                write!(f, "arena is truncated: {found} bytes, at least {needed} needed")
            }
            Error::Corrupt(what) => write!(f, "arena is corrupt: {what}"),
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Error::InvalidName(what) => write!(f, "invalid name: {what}"),
            Error::OutOfSpace { requested, available } => write!(
                f,
                "arena is full: {requested} bytes requested, {available} free (create a larger arena)"
            ),
            Error::DirectoryFull => f.write_str("arena directory is full: too many objects in one arena"),
            Error::AlreadyExists(name) => write!(f, "an object named {name:?} already exists"),
            Error::NotFound(name) => write!(f, "no object named {name:?} in this arena"),
            Error::WrongType { name, expected, found } => {
                write!(f, "object {name:?} is a {found}, not a {expected}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Os { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Error {
    pub(crate) fn os(op: &'static str, source: impl Into<std::io::Error>) -> Self {
        Error::Os {
            op,
            source: source.into(),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
