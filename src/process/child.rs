//! The parent's view of one started child: its pid, its pidfd, its exit code.

use super::error::ProcessError;
use crate::sync::liveness::current_pid;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;
use rustix::process::{pidfd_send_signal, waitid, Pid, Signal, WaitId, WaitIdOptions};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};
use std::time::{Duration, Instant};

/// What the parent knows of a started child. Shared (through `Arc`) by the `Process`, its
/// [`ProcessHandle`]s and the registry of children.
pub(crate) struct ChildState {
    pub(crate) pid: Pid,
    /// Readable once the child has exited: the sentinel. Owned here, so it lives as long
    /// as any handle that could poll it.
    pub(crate) pidfd: OwnedFd,
    /// For a child of the forkserver (which only the server can reap): the read end of
    /// the pipe its exit code arrives on (non-blocking), written by the child itself just
    /// before `_exit` when it leaves normally, else by the server when it reaps it. The
    /// code is taken only once the pidfd says the process has exited, so `join` never
    /// returns while the child still holds anything. `None`: our own child.
    status: Option<OwnedFd>,
    pub(crate) name: String,
    pub(crate) daemon: bool,
    /// The pid of the process that started the child: only it may reap the child.
    pub(crate) parent: u32,
    /// `None` while the child runs or has not been reaped; its exit code afterwards. The
    /// mutex also serialises the reaping `waitid`, so two threads never both reap.
    exit: Mutex<Option<i32>>,
}

/// Decodes a `waitid` status: `n` for `exit(n)`, `-N` for signal `N`.
pub(crate) fn exit_code(st: &rustix::process::WaitIdStatus) -> i32 {
    if let Some(code) = st.exit_status() {
        code
    } else if let Some(sig) = st.terminating_signal() {
        -sig
    } else {
        // `waitid` was asked for exited children only (`WEXITED`), so this is unreachable
        // in practice; report something that is not a success.
        -1
    }
}

impl ChildState {
    pub(crate) fn new(
        pid: Pid,
        pidfd: OwnedFd,
        status: Option<OwnedFd>,
        name: String,
        daemon: bool,
        parent: u32,
    ) -> Self {
        ChildState {
            pid,
            pidfd,
            status,
            name,
            daemon,
            parent,
            exit: Mutex::new(None),
        }
    }

    pub(crate) fn pid_u32(&self) -> u32 {
        self.pid.as_raw_nonzero().get() as u32
    }

    /// True in the process that started the child (not in a sibling that inherited the
    /// handle through `fork`).
    pub(crate) fn is_ours(&self) -> bool {
        current_pid() == self.parent
    }

    fn check_ours(&self) -> Result<(), ProcessError> {
        if self.is_ours() {
            Ok(())
        } else {
            Err(ProcessError::NotOurChild {
                pid: self.pid_u32(),
                parent: self.parent,
            })
        }
    }

    /// The exit code if the child is known to have finished (no system call, no
    /// blocking: in a child forked while another thread held the mutex, the mutex stays
    /// locked forever, and "not known" is the right answer there).
    pub(crate) fn known_exit(&self) -> Option<i32> {
        match self.exit.try_lock() {
            Ok(g) => *g,
            Err(TryLockError::Poisoned(p)) => *p.into_inner(),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Reaps the child if it has exited, without blocking. `Ok(None)`: still running.
    pub(crate) fn poll(&self) -> Result<Option<i32>, ProcessError> {
        self.check_ours()?;
        let mut exit = self.exit.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(code) = *exit {
            return Ok(Some(code));
        }
        if let Some(status) = &self.status {
            if !readable(self.pidfd.as_fd(), Some(Duration::ZERO))? {
                return Ok(None);
            }
            let code = read_status(status, self.pid_u32())?;
            *exit = code;
            crate::arena::sweep_everywhere(self.pid_u32());
            return Ok(code);
        }
        loop {
            // P_PID is safe from pid reuse: the pid stays ours until this very call reaps
            // it, and the mutex makes sure only one thread makes that call.
            match waitid(
                WaitId::Pid(self.pid),
                WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
            ) {
                Ok(Some(st)) => {
                    let code = exit_code(&st);
                    *exit = Some(code);
                    // What the child held in shared arenas goes back now, not at the
                    // next sweep.
                    crate::arena::sweep_everywhere(self.pid_u32());
                    return Ok(Some(code));
                }
                Ok(None) => return Ok(None),
                Err(Errno::INTR) => continue,
                Err(e) => {
                    return Err(ProcessError::os(
                        "waitid (someone else reaped the child?)",
                        e,
                    ))
                }
            }
        }
    }

    /// True when the child's exit (and, for a forkserver child, its exit code) can be
    /// read, waiting at most `timeout`.
    fn wait_readable(&self, timeout: Option<Duration>) -> Result<bool, ProcessError> {
        match &self.status {
            None => readable(self.pidfd.as_fd(), timeout),
            Some(status) => {
                // Wait for the exit first; then (a child killed by a signal has not
                // written its code) for the server's report.
                if readable(self.pidfd.as_fd(), Some(Duration::ZERO))? {
                    readable(status.as_fd(), timeout)
                } else {
                    readable(self.pidfd.as_fd(), timeout)
                }
            }
        }
    }

    /// Waits until the child has exited (and reaps it), or until `deadline`.
    /// `Ok(None)`: the deadline passed first. Never busy-waits: blocks in `poll`.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Result<Option<i32>, ProcessError> {
        self.check_ours()?;
        if let Some(code) = self.known_exit() {
            return Ok(Some(code));
        }
        loop {
            let (timeout, last) = match deadline {
                None => (None, false),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    (Some(left), left.is_zero())
                }
            };
            // Sleeps in the kernel until the pidfd is readable (the child has exited) or
            // the time is up; a signal (EINTR) just goes round.
            let ready = self.wait_readable(timeout)?;
            if ready || last {
                if let Some(code) = self.poll()? {
                    return Ok(Some(code));
                }
                if last {
                    return Ok(None);
                }
            }
        }
    }

    /// Waits, without a deadline, until the child has exited; returns its exit code.
    pub(crate) fn join(&self) -> Result<i32, ProcessError> {
        loop {
            if let Some(code) = self.wait(None)? {
                return Ok(code);
            }
        }
    }

    /// Whether the child still runs. In the parent this reaps a finished child; in a
    /// process that merely inherited the handle it asks the pidfd.
    pub(crate) fn is_alive(&self) -> bool {
        if self.is_ours() && self.status.is_none() {
            matches!(self.poll(), Ok(None))
        } else {
            // A forkserver child is dead once its pidfd says so, reported or not.
            if self.is_ours() {
                let _ = self.poll();
            }
            matches!(
                readable(self.pidfd.as_fd(), Some(Duration::ZERO)),
                Ok(false)
            )
        }
    }

    /// The exit code, reaping the child if it has finished; `None` while it runs (and in
    /// processes other than its parent, which cannot reap it).
    pub(crate) fn exitcode(&self) -> Option<i32> {
        if self.is_ours() {
            self.poll().ok().flatten()
        } else {
            None
        }
    }

    /// Sends `sig` through the pidfd (immune to pid reuse). A child that has already
    /// exited (reaped or not) is left alone: that is not an error.
    pub(crate) fn signal(&self, sig: Signal) -> Result<(), ProcessError> {
        if self.known_exit().is_some() {
            return Ok(());
        }
        match pidfd_send_signal(&self.pidfd, sig) {
            Ok(()) | Err(Errno::SRCH) => Ok(()),
            Err(e) => Err(ProcessError::os("pidfd_send_signal", e)),
        }
    }

    pub(crate) fn sentinel(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }
}

/// True when `fd` is readable within `timeout` (`None`: no limit); a signal is `false`
/// (callers go round and recompute the time left).
fn readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> Result<bool, ProcessError> {
    let ts = timeout.map(|d| Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: d.subsec_nanos() as _,
    });
    let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    match poll(&mut fds, ts.as_ref()) {
        Ok(n) => Ok(n > 0),
        Err(Errno::INTR) => Ok(false),
        Err(e) => Err(ProcessError::os("poll on the pidfd", e)),
    }
}

/// Reads a forkserver child's exit code from its status pipe without blocking:
/// `Ok(None)` while the server has not written it.
fn read_status(status: &OwnedFd, pid: u32) -> Result<Option<i32>, ProcessError> {
    let mut b = [0u8; 4];
    loop {
        match rustix::io::read(status, &mut b) {
            // Writes of up to PIPE_BUF bytes are atomic: 4 bytes arrive together.
            Ok(4) => return Ok(Some(i32::from_le_bytes(b))),
            Ok(0) => {
                return Err(ProcessError::ForkServer(format!(
                    "the forkserver exited before it reported the exit code of process {pid}"
                )))
            }
            Ok(n) => {
                return Err(ProcessError::ForkServer(format!(
                    "a status of {n} bytes where a 4-byte exit code was expected"
                )))
            }
            Err(Errno::AGAIN) => return Ok(None),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(ProcessError::os("read (forkserver status)", e)),
        }
    }
}

/// A handle to a started child process, as returned by
/// [`active_children`](super::active_children) and [`Process::handle`](super::Process::handle).
///
/// Cheap to clone; every clone sees the same child. It offers the lifecycle methods of
/// [`Process`](super::Process) that make sense once a process runs.
#[derive(Clone)]
pub struct ProcessHandle(pub(crate) Arc<ChildState>);

impl std::fmt::Debug for ProcessHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessHandle")
            .field("name", &self.0.name)
            .field("pid", &self.0.pid_u32())
            .field("daemon", &self.0.daemon)
            .field("exitcode", &self.0.known_exit())
            .finish()
    }
}

impl ProcessHandle {
    /// The child's name (`Process-N` unless it was given one).
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.0.pid_u32()
    }

    /// Whether the child is a daemon.
    pub fn daemon(&self) -> bool {
        self.0.daemon
    }

    /// Whether the child still runs; reaps it if it has finished.
    pub fn is_alive(&self) -> bool {
        self.0.is_alive()
    }

    /// `None` while the child runs, then its exit code (`-N` if killed by signal `N`).
    pub fn exitcode(&self) -> Option<i32> {
        self.0.exitcode()
    }

    /// Waits for the child to finish and returns its exit code.
    ///
    /// # Errors
    /// [`ProcessError::NotOurChild`] outside the child's parent; [`ProcessError::Os`] if
    /// waiting fails.
    pub fn join(&self) -> Result<i32, ProcessError> {
        self.0.join()
    }

    /// Waits at most `timeout`; `Ok(None)` if the child still runs.
    ///
    /// # Errors
    /// As [`join`](Self::join).
    pub fn join_timeout(&self, timeout: Duration) -> Result<Option<i32>, ProcessError> {
        self.0.wait(Some(Instant::now() + timeout))
    }

    /// Sends `SIGTERM`; does nothing if the child has already exited.
    ///
    /// # Errors
    /// [`ProcessError::Os`] if the signal cannot be sent.
    pub fn terminate(&self) -> Result<(), ProcessError> {
        self.0.signal(Signal::TERM)
    }

    /// Sends `SIGKILL`; does nothing if the child has already exited.
    ///
    /// # Errors
    /// [`ProcessError::Os`] if the signal cannot be sent.
    pub fn kill(&self) -> Result<(), ProcessError> {
        self.0.signal(Signal::KILL)
    }

    /// A file descriptor (the child's pidfd) that becomes readable when the child exits.
    pub fn sentinel(&self) -> BorrowedFd<'_> {
        self.0.sentinel()
    }
}

// A handle can be waited on from any thread.
static_assertions::assert_impl_all!(ProcessHandle: Send, Sync, Clone);
