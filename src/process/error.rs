//! The one error type of the process layer.

use std::fmt;

/// Why a [`Process`](super::Process) operation failed.
///
/// Every variant says what to do about it in its `Display` message.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProcessError {
    /// `join`, `terminate`, `close`, ... on a process that was never started.
    NotStarted,
    /// A second `start`, or `set_name` / `set_daemon` after `start`.
    AlreadyStarted,
    /// The process was [`close`](super::Process::close)d: its OS resources are gone.
    Closed,
    /// [`close`](super::Process::close) on a process that is still running.
    StillRunning,
    /// A daemon process tried to start a child (daemons may not have children).
    DaemonHasChildren,
    /// `start` from a process that has other threads: `fork` copies only the calling
    /// thread, so locks held by the others stay locked forever in the child.
    Threads {
        /// How many threads the process had (including the caller).
        count: usize,
    },
    /// `join` (or `close`) from a process that is not the parent of this one, e.g. from
    /// a sibling that inherited the handle through `fork`.
    NotOurChild {
        /// The process asked about.
        pid: u32,
        /// The process that started it.
        parent: u32,
    },
    /// A system call failed.
    Os {
        /// What was being done.
        op: &'static str,
        /// The error the kernel returned.
        source: std::io::Error,
    },
}

impl ProcessError {
    pub(crate) fn os(op: &'static str, e: rustix::io::Errno) -> ProcessError {
        ProcessError::Os {
            op,
            source: e.into(),
        }
    }
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessError::NotStarted => {
                f.write_str("the process has not been started: call start() first")
            }
            ProcessError::AlreadyStarted => f.write_str(
                "the process was already started: a Process starts only once, and its name and \
                 daemon flag are fixed from then on (create a new Process instead)",
            ),
            ProcessError::Closed => f.write_str(
                "the process object was closed: its pid and sentinel are released, so it can no \
                 longer be joined, polled or signalled",
            ),
            ProcessError::StillRunning => f.write_str(
                "cannot close a process that is still running: join() it (or terminate() then \
                 join()) first",
            ),
            ProcessError::DaemonHasChildren => f.write_str(
                "daemonic processes are not allowed to have children: start this process from a \
                 non-daemon process, or make its parent a non-daemon",
            ),
            ProcessError::Threads { count } => write!(
                f,
                "refusing to fork a process that has {count} threads: only the calling thread \
                 survives in the child and locks held by the others stay locked; start \
                 processes before spawning threads, or opt in with allow_threads(true) if the \
                 child only does fork-safe work"
            ),
            ProcessError::NotOurChild { pid, parent } => write!(
                f,
                "process {pid} is a child of process {parent}, not of this process: only its \
                 parent can join or close it"
            ),
            ProcessError::Os { op, source } => write!(f, "{op} failed: {source}"),
        }
    }
}

impl std::error::Error for ProcessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProcessError::Os { source, .. } => Some(source),
            _ => None,
        }
    }
}
