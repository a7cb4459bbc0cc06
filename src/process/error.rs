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
    /// `Spawn` or `ForkServer` was asked for, but [`init`](crate::init) never ran.
    NotInitialized {
        /// The method asked for.
        method: super::StartMethod,
    },
    /// `start` in a process that shmproc spawned but whose `main` did not call
    /// [`init`](crate::init) first: it is running `main` again instead of its target.
    SpawnedWithoutInit,
    /// The target cannot be sent to a process that is not a fork of this one (a closure
    /// that captures data, a struct-style target, arguments that do not serialize, a
    /// function in a shared library); `reason` says which and what to do.
    NotPortable {
        /// What is wrong, and what to use instead.
        reason: String,
    },
    /// A spawned or forkserver child failed before its target ran: it did not report in
    /// (its `main` does not call [`init`](crate::init) first, it crashed, it hung), or its
    /// target could not be rebuilt (arguments that do not deserialize). The child is
    /// gone (killed if it hung); the `Process` holds its exit code.
    ChildStart {
        /// The child's pid.
        pid: u32,
        /// Its exit code, if it could be read.
        exitcode: Option<i32>,
        /// What went wrong.
        reason: String,
    },
    /// The forkserver could not be reached, or exited before it reported an exit code.
    ForkServer(String),
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
                 longer be joined, polled or signalled (close() only once done with it)",
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
                 survives in the child and locks held by the others stay locked; call \
                 shmproc::init() as the first line of main (the default start method then \
                 uses the forkserver once threads exist), start processes before spawning \
                 threads, or opt in with Builder::allow_threads(true) if the child only does \
                 fork-safe work"
            ),
            ProcessError::NotInitialized { method } => write!(
                f,
                "the {method} start method needs shmproc::init() as the first line of main \
                 (it makes a spawned child run its target instead of main, and starts the \
                 forkserver)"
            ),
            ProcessError::SpawnedWithoutInit => f.write_str(
                "this process was spawned by shmproc, but its main did not call \
                 shmproc::init() first, so it is running main again instead of its target: \
                 call shmproc::init() as the first line of main",
            ),
            ProcessError::NotPortable { reason } => write!(
                f,
                "the target cannot be sent to a spawned or forkserver child: {reason}"
            ),
            ProcessError::ChildStart {
                pid,
                exitcode,
                reason,
            } => {
                write!(f, "process {pid} failed to start: {reason}")?;
                match exitcode {
                    Some(c) => write!(f, " (exit code {c})"),
                    None => f.write_str(" (exit code unknown)"),
                }
            }
            ProcessError::ForkServer(what) => write!(
                f,
                "the forkserver failed: {what} (a server found gone is replaced once; if this \
                 repeats, something kills it: its process group, a supervisor; \
                 StartMethod::Spawn needs no server)"
            ),
            ProcessError::NotOurChild { pid, parent } => write!(
                f,
                "process {pid} is a child of process {parent}, not of this process: only its \
                 parent can join or close it"
            ),
            ProcessError::Os { op, source } => {
                write!(f, "{op} failed: {source}{}", crate::error::os_hint(source))
            }
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
