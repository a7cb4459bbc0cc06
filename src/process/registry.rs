//! Process-local bookkeeping: who this process is, and which children it started.
//!
//! One `static` [`Registry`] per address space. After a `fork` the child inherits the
//! parent's copy; [`Process::start`](super::Process::start) rewrites it in the child
//! (new identity, no children) while it still holds the lock it took before forking. A
//! process forked by other means notices that the registry's `owner` is not its pid and
//! forgets the children listed there (they are its siblings, not its children).

use super::child::ChildState;
use super::ProcessInfo;
use crate::sync::liveness::current_pid;
use crate::sync::plain::{AtomicBool, Ordering};
use rustix::process::Signal;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Who the current process is.
pub(crate) struct Me {
    /// `None` in the main process ("MainProcess").
    pub(crate) name: Option<String>,
    /// `[]` in the main process, `[1]` for `Process-1`, `[1, 2]` for `Process-1:2`.
    pub(crate) identity: Vec<u32>,
    pub(crate) daemon: bool,
    pub(crate) parent: Option<ProcessInfo>,
}

pub(crate) struct Registry {
    /// The pid this registry describes; 0 before first use.
    pub(crate) owner: u32,
    pub(crate) me: Me,
    /// Children created so far (numbers the default names).
    pub(crate) counter: u32,
    /// Started children not yet known to have been reaped (plus reaped ones whose handles
    /// have not been looked at since).
    pub(crate) children: Vec<Arc<ChildState>>,
    /// The record the child of the `start` in progress (or last made) takes as its `me`.
    pub(crate) pending: Option<Me>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    owner: 0,
    me: Me {
        name: None,
        identity: Vec::new(),
        daemon: false,
        parent: None,
    },
    counter: 0,
    children: Vec::new(),
    pending: None,
});

/// Set once the exit hook is registered with `atexit` (inherited, like the registration
/// itself, by forked children). Relaxed: only read and written under the registry lock.
static HOOK: AtomicBool = AtomicBool::new(false);

/// The name of the current process if it was started by `Process::start`; `None` in
/// the main process, or when the registry is locked (never blocks: used in the panic
/// hook, which may run while this thread or a thread lost in a fork holds the lock).
pub(crate) fn child_name() -> Option<String> {
    let reg = match REGISTRY.try_lock() {
        Ok(reg) => reg,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return None,
    };
    if reg.owner == current_pid() {
        reg.me.name.clone()
    } else {
        None
    }
}

/// Locks the registry of the current process.
pub(crate) fn lock() -> MutexGuard<'static, Registry> {
    let mut reg = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    let me = current_pid();
    if reg.owner != me {
        // First use, or a process forked by someone else than `Process::start`: the
        // children listed are the parent's. Dropping them closes this process's copies of
        // their pidfds, nothing more.
        reg.owner = me;
        reg.children.clear();
    }
    reg
}

impl Registry {
    /// This process's name.
    pub(crate) fn my_name(&self) -> String {
        self.me
            .name
            .clone()
            .unwrap_or_else(|| "MainProcess".to_owned())
    }

    /// Reaps finished children and forgets them (Python's `_cleanup`): one non-blocking
    /// `waitid` per child still listed as running.
    pub(crate) fn prune(&mut self) {
        self.children.retain(|c| matches!(c.poll(), Ok(None)));
    }

    /// Registers [`at_exit`] with `atexit(3)`, once per address space.
    pub(crate) fn ensure_exit_hook(&mut self) {
        // Relaxed: see `HOOK`.
        if !HOOK.load(Ordering::Relaxed) {
            // SAFETY: `at_exit` is an `extern "C" fn()` that never unwinds (it catches
            // nothing because nothing in it panics: every error is ignored).
            // libc: `atexit` is libc's own facility; rustix has no wrapper.
            let rc = unsafe { libc::atexit(at_exit) };
            if rc == 0 {
                HOOK.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// Runs when the process exits normally (`main` returns, or `exit(3)`): daemon children
/// are terminated and the others joined, as Python's `multiprocessing` does.
extern "C" fn at_exit() {
    cleanup_children();
}

/// How long a daemon gets to exit after `SIGTERM` at its parent's exit before `SIGKILL`.
const DAEMON_GRACE: Duration = Duration::from_secs(1);

/// Terminates daemon children, then joins every child. Called by the exit hook, by
/// [`exit`](super::exit) and at the end of every child started by `Process::start`.
pub(crate) fn cleanup_children() {
    let children: Vec<Arc<ChildState>> = {
        let mut reg = lock();
        reg.prune();
        reg.children.clone()
    };
    for c in children.iter().filter(|c| c.daemon) {
        let _ = c.signal(Signal::TERM);
    }
    for c in &children {
        if c.daemon {
            if let Ok(None) = c.wait(Some(Instant::now() + DAEMON_GRACE)) {
                let _ = c.signal(Signal::KILL);
                let _ = c.join();
            }
        } else {
            let _ = c.join();
        }
    }
    lock().prune();
}
