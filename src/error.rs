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
    /// The arena was made by a build of shmproc with another layout (the same format
    /// version, other structure sizes: another version of the crate, or another target).
    Layout {
        /// The layout hash in the arena's header.
        found: u64,
        /// This build's.
        expected: u64,
    },
    /// The arena's metadata lock has been held by a live process for longer than the
    /// arena waits (see `Arena::stats` and the `shmproc inspect` tool): that process is
    /// stopped or stuck inside an arena operation. Nothing was changed.
    Busy {
        /// The process holding the lock.
        holder: u32,
        /// How long this process waited.
        waited: std::time::Duration,
    },
    /// The arena has no room left for the requested object.
    OutOfSpace {
        /// Bytes requested (aligned).
        requested: u64,
        /// Bytes still free.
        available: u64,
    },
    /// An object with this name already exists in the arena.
    AlreadyExists(String),
    /// No object with this name exists in the arena. (A missing arena is
    /// [`NoSuchArena`](Error::NoSuchArena), a missing segment
    /// [`NoSuchSegment`](Error::NoSuchSegment).)
    NotFound(String),
    /// No arena has this name (`/dev/shm/<name>` does not exist), or no file is at this
    /// path: [`Arena::open`](crate::Arena::open), [`Arena::unlink_name`](crate::Arena::unlink_name)
    /// and the [`Snapshot`](crate::inspect::Snapshot) readers. Holds the name (or the path).
    ///
    /// ```
    /// use shmproc::{Arena, Error};
    /// let e = Arena::open("shmproc-doc-no-such-arena").unwrap_err();
    /// assert!(matches!(&e, Error::NoSuchArena(name) if name == "shmproc-doc-no-such-arena"));
    /// assert!(e.to_string().contains("shmproc ls"));
    /// ```
    NoSuchArena(String),
    /// No [`SharedMemory`](crate::shared::SharedMemory) segment has this name
    /// (`/dev/shm/<name>` does not exist). Holds the name.
    ///
    /// ```
    /// use shmproc::{shared::SharedMemory, Error};
    /// let e = SharedMemory::open("shmproc-doc-no-such-segment").unwrap_err();
    /// assert!(matches!(&e, Error::NoSuchSegment(name) if name == "shmproc-doc-no-such-segment"));
    /// ```
    NoSuchSegment(String),
    /// No live object is at this offset of the arena: a handle that travelled (or an
    /// entry of the arena's tables) names an object that was freed, its last handle
    /// dropped, before this process opened it (another object may be in its place now).
    NoObjectAt {
        /// The offset of the object's block in the arena.
        offset: u64,
    },
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
            Error::Os { op, source } => write!(f, "{op} failed: {source}{}", os_hint(source)),
            Error::NotAnArena => f.write_str(
                "not a shmproc arena (no shmproc header): check the name; if its creator is \
                 still making it, try again in a moment",
            ),
            Error::Version { found, expected } => write!(
                f,
                "the arena has format version {found}, this build of shmproc reads version \
                 {expected}: open it with the shmproc that made it, or make it again"
            ),
            Error::Truncated { needed, found } => write!(
                f,
                "the arena is truncated: {found} bytes, at least {needed} needed (its creator \
                 died while making it, or a process shrank the file): remove it \
                 (Arena::unlink_name) and make it again"
            ),
            Error::Corrupt(what) => write!(
                f,
                "the arena is corrupt: {what}. Nothing was used through the damaged part. A \
                 process wrote into the arena outside shmproc, or the file is not a shmproc \
                 arena: make the arena again (a named one: remove it first with \
                 Arena::unlink_name)"
            ),
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Error::InvalidName(what) => write!(
                f,
                "invalid name: {what}: choose another (a name is not empty, is short, and has no \
                 '/' or NUL)"
            ),
            Error::OutOfSpace {
                requested,
                available,
            } => write!(
                f,
                "the arena is full: {requested} bytes requested, {available} free: make the \
                 arena larger (Arena::anonymous / Arena::create take its size), or put \
                 objects in an arena of their own"
            ),
            Error::Layout { found, expected } => write!(
                f,
                "the arena was made by a build of shmproc with another layout (layout hash \
                 {found:#x}, this build {expected:#x}): open it from a program built with the \
                 same shmproc, or make it again"
            ),
            Error::Busy { holder, waited } => write!(
                f,
                "the arena's metadata lock has been held by process {holder} for more than \
                 {waited:?}; that process is alive, so the lock was not taken from it: it is \
                 stopped or stuck inside an arena operation (check it with `ps`)"
            ),
            Error::AlreadyExists(name) => write!(
                f,
                "an object named {name:?} already exists in the arena: open it with open(), \
                 or choose another name"
            ),
            Error::NotFound(name) => write!(
                f,
                "no object named {name:?} in this arena: check the name, and that its creator \
                 made it (create()) before this process opened it"
            ),
            Error::NoSuchArena(name) if name.contains('/') => write!(
                f,
                "no arena file at {name}: check the path (an anonymous arena of a running \
                 process is one of its /proc/<pid>/fd/<n>); `shmproc ls` lists the arenas"
            ),
            Error::NoSuchArena(name) => write!(
                f,
                "no arena named {name:?} (/dev/shm/{name}): check the name, and that its \
                 creator made it with Arena::create / Arena::builder before this process \
                 opened it; `shmproc ls` lists the arenas"
            ),
            Error::NoSuchSegment(name) => write!(
                f,
                "no SharedMemory segment named {name:?} (/dev/shm/{name}): check the name, and \
                 that its creator made it with SharedMemory::create before this process \
                 opened it; `shmproc ls` lists the segments"
            ),
            Error::NoObjectAt { offset } => write!(
                f,
                "no live object at offset {offset:#x} of the arena: it was freed (its last \
                 handle was dropped) before this process opened it; a process that hands a \
                 handle to another must keep its own until the receiver has opened it"
            ),
            Error::WrongType {
                name,
                expected,
                found,
            } => write!(
                f,
                "object {name:?} is {}, not {}: open it as {0}, or use another name for the \
                 {expected}",
                with_article(found),
                with_article(expected),
            ),
        }
    }
}

/// `word` after its indefinite article: "a Lock", "an Event", "an RLock" (a word of
/// initials takes the article of its first letter's name).
pub(crate) fn with_article(word: &str) -> String {
    format!("{} {word}", article(word))
}

/// "a" or "an", whichever goes before `word` (English by its spelling: a vowel, or an
/// initial whose name starts with one, as in "an RLock", "an MPMC ring").
pub(crate) fn article(word: &str) -> &'static str {
    let mut chars = word.chars();
    let (Some(first), second) = (chars.next(), chars.next()) else {
        return "a";
    };
    // An initial: a capital followed by a capital or a digit, or standing alone.
    let initial = first.is_ascii_uppercase()
        && second.is_none_or(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    let vowel_sound = if initial {
        "AEFHILMNORSX".contains(first)
    } else {
        let lower = word.to_ascii_lowercase();
        "aeiou".contains(first.to_ascii_lowercase())
            && !["uni", "use", "usi", "usu", "one", "once"]
                .iter()
                .any(|p| lower.starts_with(p))
    };
    if vowel_sound {
        "an"
    } else {
        "a"
    }
}

/// What to do about an OS error, for the errors that have a usual cause (empty for the
/// others): shared by every error type that carries one.
pub(crate) fn os_hint(e: &std::io::Error) -> &'static str {
    use rustix::io::Errno;
    match e.raw_os_error().map(Errno::from_raw_os_error) {
        Some(Errno::MFILE | Errno::NFILE) => {
            " (too many open files: drop handles no longer used, or raise the limit: ulimit -n)"
        }
        Some(Errno::NOSPC) => {
            " (/dev/shm is full: remove what dead processes left there, or make a smaller arena)"
        }
        Some(Errno::NOMEM) => " (out of memory or of memory mappings: use fewer or smaller arenas)",
        Some(Errno::ACCESS | Errno::PERM) => {
            " (permission denied: named arenas and segments are created mode 0600, for their \
             creator's user only)"
        }
        Some(Errno::NOSYS) => {
            " (the kernel lacks this system call: shmproc needs Linux 5.3 or later)"
        }
        Some(Errno::AGAIN) => {
            " (a resource limit was reached, e.g. the number of processes: ulimit -u)"
        }
        _ => "",
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::io::Errno;

    fn os(errno: Errno) -> String {
        Error::os(
            "memfd_create",
            std::io::Error::from_raw_os_error(errno.raw_os_error()),
        )
        .to_string()
    }

    #[test]
    fn articles_follow_the_sound_of_the_word() {
        for (word, art) in [
            ("Event", "an"),
            ("Array<u64>", "an"),
            ("ObjQueue<String>", "an"),
            ("RLock", "an"),
            ("MPMC ring", "an"),
            ("Lock", "a"),
            ("Queue", "a"),
            ("SharedDict", "a"),
            ("BoundedSemaphore", "a"),
            ("pipe Connection", "a"),
            ("kind 99", "a"),
            ("unit", "a"),
            ("", "a"),
        ] {
            assert_eq!(article(word), art, "{word}");
        }
    }

    #[test]
    fn wrong_type_says_an_before_a_vowel() {
        let e = Error::WrongType {
            name: "e".into(),
            expected: "Event".into(),
            found: "Lock".into(),
        };
        assert_eq!(
            e.to_string(),
            "object \"e\" is a Lock, not an Event: open it as a Lock, or use another name \
             for the Event"
        );
    }

    #[test]
    fn missing_arenas_segments_and_objects_say_which() {
        let arena = Error::NoSuchArena("jobs".into()).to_string();
        assert!(
            arena.starts_with("no arena named \"jobs\" (/dev/shm/jobs): ")
                && arena.contains("Arena::create")
                && arena.contains("`shmproc ls`"),
            "{arena}"
        );
        let path = Error::NoSuchArena("/proc/1/fd/9".into()).to_string();
        assert!(
            path.starts_with("no arena file at /proc/1/fd/9: "),
            "{path}"
        );
        let seg = Error::NoSuchSegment("frames".into()).to_string();
        assert!(
            seg.starts_with("no SharedMemory segment named \"frames\" (/dev/shm/frames): ")
                && seg.contains("SharedMemory::create"),
            "{seg}"
        );
        let at = Error::NoObjectAt { offset: 0x1c0 }.to_string();
        assert!(at.starts_with("no live object at offset 0x1c0 "), "{at}");
        let obj = Error::NotFound("db".into()).to_string();
        assert!(
            obj.starts_with("no object named \"db\" in this arena"),
            "{obj}"
        );
    }

    #[test]
    fn os_errors_with_a_usual_cause_say_what_to_do() {
        assert!(
            os(Errno::MFILE).contains("ulimit -n"),
            "{}",
            os(Errno::MFILE)
        );
        assert!(os(Errno::NOSPC).contains("/dev/shm is full"));
        assert!(os(Errno::NOSYS).contains("Linux 5.3"));
        // No usual cause: the kernel's text alone, nothing made up.
        let plain = os(Errno::NOENT);
        assert!(plain.starts_with("memfd_create failed: "), "{plain}");
        assert!(plain.ends_with("(os error 2)"), "{plain}");
    }
}
