//! Start methods (Python's `set_start_method` / `get_context`): how `start` makes the
//! child.

use super::Builder;
use crate::sync::plain::{AtomicU8, Ordering};
use std::fmt;

/// How [`Process::start`](super::Process::start) makes the child.
///
/// | method | what happens | targets | cost (start + join, 2 vCPUs) |
/// |---|---|---|---|
/// | [`Fork`](Self::Fork) | `fork` of the calling thread | anything, closures included | ~0.15-0.25 ms |
/// | [`Spawn`](Self::Spawn) | a fresh run of this binary (`/proc/self/exe`); [`init`](crate::init) makes it run the target | functions with serde arguments, closures that capture nothing | a few ms (exec) |
/// | [`ForkServer`](Self::ForkServer) | a server forked by [`init`](crate::init) while the program was single-threaded forks the child | as `Spawn` | ~0.3 ms |
/// | [`Auto`](Self::Auto) (default) | `Fork` while the process has one thread (or [`allow_threads`](Builder::allow_threads) is set), else `ForkServer` | as the method chosen | |
///
/// Python 3.14 made `forkserver` its default on Linux for the reason `Auto` has: `fork`
/// in a process with threads copies locks that other threads hold.
///
/// ```
/// use shmproc::process::{set_start_method, start_method, StartMethod};
///
/// assert_eq!(start_method(), StartMethod::Auto);
/// set_start_method(StartMethod::Fork);
/// assert_eq!(start_method(), StartMethod::Fork);
/// set_start_method(StartMethod::Auto);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum StartMethod {
    /// `Fork` while single-threaded, else `ForkServer` (see the table).
    #[default]
    Auto,
    /// Fork the calling process.
    Fork,
    /// Run this binary again; the child attaches to what its arguments carry.
    Spawn,
    /// Ask the forkserver (started by [`init`](crate::init)) to fork the child.
    ForkServer,
}

impl StartMethod {
    /// Python's name for the method (`"fork"`, `"spawn"`, `"forkserver"`; `"auto"`).
    pub fn name(self) -> &'static str {
        match self {
            StartMethod::Auto => "auto",
            StartMethod::Fork => "fork",
            StartMethod::Spawn => "spawn",
            StartMethod::ForkServer => "forkserver",
        }
    }

    pub(crate) fn to_u8(self) -> u8 {
        match self {
            StartMethod::Auto => 0,
            StartMethod::Fork => 1,
            StartMethod::Spawn => 2,
            StartMethod::ForkServer => 3,
        }
    }

    pub(crate) fn from_u8(v: u8) -> StartMethod {
        match v {
            1 => StartMethod::Fork,
            2 => StartMethod::Spawn,
            3 => StartMethod::ForkServer,
            _ => StartMethod::Auto,
        }
    }
}

impl fmt::Display for StartMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The process-wide default. Relaxed: a setting with no data published through it.
static DEFAULT: AtomicU8 = AtomicU8::new(0);

/// Sets the start method of processes that do not choose one (Python's
/// `set_start_method`). A spawned child starts with its parent's default.
///
/// ```
/// use shmproc::process::{set_start_method, Process, StartMethod};
///
/// set_start_method(StartMethod::Fork);
/// let mut p = Process::new(|| ());
/// p.start()?;
/// assert_eq!(p.start_method(), StartMethod::Fork);
/// p.join()?;
/// set_start_method(StartMethod::Auto);
/// # Ok::<(), shmproc::process::ProcessError>(())
/// ```
pub fn set_start_method(method: StartMethod) {
    // Relaxed: see `DEFAULT`.
    DEFAULT.store(method.to_u8(), Ordering::Relaxed);
}

/// The process-wide default start method (Python's `get_start_method`).
///
/// ```
/// assert_eq!(shmproc::process::start_method(), shmproc::process::StartMethod::Auto);
/// ```
pub fn start_method() -> StartMethod {
    // Relaxed: see `DEFAULT`.
    StartMethod::from_u8(DEFAULT.load(Ordering::Relaxed))
}

/// Processes with one start method (Python's `get_context("spawn")`): a factory of
/// builders.
///
/// ```
/// use shmproc::process::{get_context, StartMethod};
///
/// let ctx = get_context(StartMethod::Fork);
/// let mut p = ctx.process(|| println!("forked"));
/// p.start()?;
/// assert_eq!(p.join()?, 0);
/// assert_eq!(p.start_method(), StartMethod::Fork);
/// # Ok::<(), shmproc::process::ProcessError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    method: StartMethod,
}

/// The [`Context`] of `method`.
pub fn get_context(method: StartMethod) -> Context {
    Context { method }
}

impl Context {
    /// The context's start method.
    pub fn method(&self) -> StartMethod {
        self.method
    }

    /// A [`Builder`] with the context's start method.
    pub fn builder(&self) -> Builder {
        Builder::new().start_method(self.method)
    }

    /// A process that runs the closure `f` (see [`Process::new`](super::Process::new)).
    pub fn process<F: FnOnce() + 'static>(&self, f: F) -> super::Process {
        self.builder().target(f)
    }

    /// A process that runs `f(args)` (see [`Process::function`](super::Process::function)).
    ///
    /// Needs the `serde` feature (on by default).
    #[cfg(feature = "serde")]
    pub fn function<A, R>(&self, f: fn(A) -> R, args: A) -> super::Process
    where
        A: serde::Serialize + serde::de::DeserializeOwned + 'static,
        R: super::Outcome + 'static,
    {
        self.builder().function(f, args)
    }
}
