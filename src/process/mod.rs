//! Processes with the lifecycle of Python's `multiprocessing.Process`, over `fork`, a
//! fresh run of the binary (`spawn`) or a forkserver, pidfds and signals.
//!
//! ```
//! use shmproc::process::Process;
//!
//! let mut p = Process::new(|| println!("hello from the child"));
//! p.start()?;
//! assert_eq!(p.join()?, 0);
//! assert_eq!(p.exitcode(), Some(0));
//! # Ok::<(), shmproc::process::ProcessError>(())
//! ```
//!
//! # Defining the work
//! - [`Process::new`] takes a closure returning `()`; [`Process::fallible`] one returning
//!   `Result<(), E>` with `E: Display`.
//! - [`Process::function`] takes a function and its arguments, Python's
//!   `Process(target=f, args=...)`: `f: fn(A) -> R` (a closure that captures nothing
//!   will do), `A` any serde type, which may hold handles that travel
//!   ([`Arena`](crate::Arena), [`Connection`](crate::Connection) ends: see [`travel`]),
//!   `R` an [`Outcome`] (`()` or `Result<(), E>`). It works under every start method.
//! - [`Process::from_run`] takes any value implementing [`Run`]: the struct-style process
//!   (Python's subclass overriding `run`). The value stays in the parent's `Process`
//!   (see [`Process::target`]); the child runs `run` on its own copy, so fields the child
//!   changes are not seen by the parent (share data through the arena for that). It can
//!   only be forked.
//! - [`Process::builder`] sets the name, the daemon flag, the start method and the
//!   thread opt-in; so do [`Process::set_name`], [`Process::set_daemon`] and
//!   [`Process::set_start_method`], which fail once started.
//!
//! **The parent lets go of what it gave the child.** Once the child runs, `start` drops
//! the parent's copy of a closure (and what it captured) and of a function's arguments,
//! as Python's `start` deletes `_target` and `_args`: a pipe end moved into the target is
//! then held by the child alone, and closes everywhere when the child closes it. A
//! struct-style target is kept (it is the process object). And **a child started with
//! [`Process::function`] holds exactly the pipe ends in its arguments**: a spawned or
//! forkserver child receives nothing else, and a forked child releases, before `f` runs,
//! every other end it inherited (a closure child, like a Python fork child, holds every
//! end its parent held; close in the child what it must not hold).
//!
//! # Start methods
//! As Python's `set_start_method` / `get_context`: per process
//! ([`Builder::start_method`]), per [`Context`] ([`get_context`]), or for the whole
//! process ([`set_start_method`]). See [`StartMethod`] for the table.
//!
//! - **`Fork`**: `fork` of the calling thread, as below. Anything can be the target.
//! - **`Spawn`**: `posix_spawn` of `/proc/self/exe` with the parent's arguments and
//!   environment. [`init`], **the first line of `main`**, recognises the
//!   child (an environment variable names a socket it inherited), receives its target
//!   and runs it instead of `main`. The child attaches to the arenas its arguments need
//!   (their `memfd`s arrive over the socket with `SCM_RIGHTS`) and adopts the parent's
//!   global arena, so objects made with `new()` in the parent can be found in the child.
//! - **`ForkServer`**: [`init`] forks a server while the program is still
//!   single-threaded; each child is a fork of the server, made on request over a Unix
//!   socket. Its state is the program's at `init` (so, like `Spawn`, the target travels
//!   as a function and arguments), and the server reports its exit code to the parent.
//! - **`Auto`** (the default): `Fork` while the process has one thread, else
//!   `ForkServer` if [`init`] ran, else [`ProcessError::Threads`], whose
//!   message names `shmproc::init()` and [`Builder::allow_threads`].
//!
//! Under `Spawn` and `ForkServer`, `start` returns once the child has rebuilt its target
//! and said so; a child that cannot (arguments that fail to deserialize, a `main` without
//! `init`, a crash) makes `start` fail with [`ProcessError::ChildStart`], carrying the
//! exit code; a child that stays silent is killed after [`Builder::start_timeout`]. A
//! spawned program whose `main` skips `init` and tries to start processes itself gets
//! [`ProcessError::SpawnedWithoutInit`] instead of starting a cascade. Exit codes, names,
//! `join`, `terminate`, `kill`, daemons and the exit hook behave as with `fork`, with one
//! difference for a daemon under `ForkServer`: its parent is the server, so it dies with
//! the server (when the program and every fork of it have exited, or at the program's
//! normal exit through the exit hook), not with an intermediate process that started it
//! and was killed.
//!
//! # How a child runs and exits
//! [`Process::start`] flushes the parent's `stdout` (so buffered output is not inherited
//! and printed twice; Rust's `stderr` is unbuffered, and C's `stdio` buffers are not
//! touched), then `fork`s. The child runs the target once, flushes its own `stdout`,
//! joins or terminates its own children (see below) and
//! leaves with `_exit`: the parent's `atexit` handlers and destructors do not run in it.
//! The exit code ([`Process::exitcode`]) is
//!
//! | the target                          | exit code |
//! |-------------------------------------|-----------|
//! | returns `()` or `Ok(())`            | `0`       |
//! | returns `Err(e)`                    | `1`, after `Process <name>:` and `e` on stderr |
//! | panics                              | `1`, after `Process <name>:` and the panic message on stderr |
//! | calls [`exit(n)`](exit) or `std::process::exit(n)` | `n` |
//! | is killed by signal `N`             | `-N` (`-15` for [`terminate`](Process::terminate), `-9` for [`kill`](Process::kill)) |
//!
//! The `Process <name>:` line of a panic comes from a wrapper around the program's panic
//! hook, installed once by the first `start` (before the fork, so children do not pay
//! for it); outside started children it only calls the previous hook. A program that
//! replaces the hook later still gets the line: the child then writes it, with the panic
//! message, after catching the panic.
//!
//! `std::process::exit(n)` in a child goes through `exit(3)`, which runs every `atexit`
//! handler registered in the parent before the fork (ours only cleans up the child's own
//! children, which is right). Prefer returning an `Err`, or [`exit`], which leaves through
//! `_exit`. With `panic = "abort"` a panicking child dies by `SIGABRT` (exit code `-6`).
//!
//! # Waiting without busy-waiting
//! The parent holds a pidfd of every child (`pidfd_open`, Linux 5.3 or later). `join` and
//! `join_timeout` block in `poll` on it and reap with `waitid(P_PID, WNOHANG)`; the pid
//! cannot be reused before that reaping call, which a mutex makes unique. `terminate` and
//! `kill` signal through the pidfd. The pidfd is the [`sentinel`](Process::sentinel).
//! A program that sets `SIGCHLD` to `SIG_IGN` (the kernel then reaps children itself), or
//! that reaps with `waitpid(-1)` in a `SIGCHLD` handler, takes the exit codes away: `join`
//! then fails with [`ProcessError::Os`] (`ECHILD`), as Python's `multiprocessing` breaks
//! in the same situation. Pidfds are close-on-exec, but a child inherits (and keeps open)
//! the pidfds of the siblings started before it; that costs one descriptor each.
//!
//! # Daemons
//! A daemon child calls `prctl(PR_SET_PDEATHSIG, SIGKILL)` first thing, then compares
//! `getppid()` with the parent's pid recorded before the fork: if the parent died in
//! between, the child kills itself. So a daemon dies when its parent dies, however it
//! dies (`SIGKILL` included). Caveat of Linux: the death signal fires when the *thread*
//! that forked exits, not the whole process; start daemons from a thread that lives as
//! long as they should (normally the main thread). A daemon may not start children:
//! [`ProcessError::DaemonHasChildren`].
//!
//! # At exit: the exit hook
//! The first `start` in a process registers an `atexit(3)` hook. When the process exits
//! normally (`main` returns, even by a panic, or `std::process::exit` is called), the
//! hook sends `SIGTERM` to every running daemon child and then joins every child; a
//! daemon that has not exited one second after `SIGTERM` is killed. Non-daemon children
//! are joined however long they take, as in Python. A child started by `start` does the
//! same for its own children before it leaves. A `Process` value that is dropped without
//! being joined is not lost: its child stays registered, is reaped by the next `start` or
//! [`active_children`] once finished, and is joined at exit. The hook does not run when
//! the process dies by a signal or leaves through `_exit`: then its daemons still die (by
//! the death signal) and its other children run on as orphans, as in Python.
//!
//! # Forking from a process with threads
//! `fork` copies only the calling thread; a lock that another thread held at that moment
//! (inside `malloc`, `stdout`, a `Mutex` of yours) stays locked forever in the child.
//! `start` therefore counts the threads of the process (procfs) and refuses to fork
//! with [`ProcessError::Threads`] when there is more than one. Call
//! [`init`] first in `main` (the default start method then takes the
//! forkserver), start processes before spawning threads, or opt in with
//! [`Builder::allow_threads`] /
//! [`Process::set_allow_threads`]. With the opt-in, the child may safely use what no other
//! thread could have held: async-signal-safe calls, its own fresh data, shmproc's shared
//! objects (their locks live in shared memory and are robust). Printing is safe only if no
//! other thread was printing at the fork, and allocation is safe with glibc's `malloc`
//! (it has fork handlers) but not with every allocator.
//!
//! # Names
//! The main process is `MainProcess`. Children get `Process-N` (N counts the `Process`
//! values created by the current process, from 1), and their children `Process-N:M`, as
//! in Python. [`current_process`] and [`parent_process`] describe the current process and
//! its parent; [`active_children`] lists the running children (reaping finished ones).
//!
//! # Cost
//! `start` + `join` of an empty target, `benches/process.rs` on a 2-vCPU VM (2026-12,
//! other builds running beside it, so ranges are wide; ratios are interleaved rep by rep):
//!
//! | start method | against | ratio, median of the run (six runs) | times |
//! |---|---|---|---|
//! | `Fork` | raw `fork` + `waitpid` | 1.25-1.34 | ~150-210 / ~120-158 us |
//! | `ForkServer` | `Fork` | 1.40-1.44 on a quiet machine (target 1.5); 1.34-1.80 with builds beside | ~260 / ~185 us |
//! | `ForkServer` | `Fork`, parent holding 256 MiB | **0.03-0.07** | ~0.2-1.2 / 9-18 ms |
//! | `Spawn` | procspawn's spawn + join | **0.75-0.85** | ~1.0-3.9 / 1.2-4.8 ms |
//! | `Spawn` | Python 3.11 `spawn` | **0.03-0.07** | ~1-3 / 34-59 ms |
//! | `ForkServer` | Python 3.11 `forkserver` | **0.04-0.06** | ~0.22-0.27 / 3.6-6.3 ms |
//!
//! `Fork`'s cost over a bare `fork` + `waitpid` is what the lifecycle needs: the thread
//! check (one `stat` of `/proc/self/task`), the child's start time (one read of
//! `/proc/<pid>/stat`: it was five, from a buffer grown read by read, until 2026-12-07,
//! which cost ~15 us a start), the pidfd (`pidfd_open`, `close`), `poll` +
//! `waitid` instead of one `waitpid`, the child's `stdout` flush, and a few more
//! copy-on-write page faults on each side (each costs a few microseconds on a VM), which
//! `start` keeps down by allocating everything before the fork.
//!
//! `ForkServer` adds two hand-offs between processes to a fork of the (small) server:
//! the request wakes the server, and the child's report wakes the parent; the START
//! message travels right behind the request, and a child that leaves normally writes its
//! own exit code, so `join` does not wait for the server to reap it. It spends ~1.8x
//! `Fork`'s CPU per start (perf stat: 189 against 106 us, 32 against 20 page faults,
//! 3.7 against 1 context switches), which on two busy vCPUs is what the ratio shows. Its
//! cost does not grow with the parent: from a parent holding 256 MiB, `fork` copies page
//! tables and the child's exit tears them down (9-18 ms), while the forkserver's child is
//! a fork of a small process. A spare child forked ahead by the server (so that neither
//! the server's wake-up nor the fork lies between request and report) cut `start` from
//! ~150 to ~100 us but doubled `join` (the next spare's fork competes with the child),
//! so it was not kept.
//!
//! `Spawn` is an `exec` of the binary: the dynamic loader and the program's start-up
//! dominate; the socket conversation costs tens of microseconds.
//!
//! # No shared memory, so no loom model
//! This layer has no shared-memory algorithm: its state is process-local (a `Mutex`ed
//! registry and a `Mutex` per child), so it has no loom model.

mod child;
mod error;
mod method;
mod registry;
mod remote;
mod server;
pub mod travel;
pub(crate) mod wire;

pub use child::ProcessHandle;
pub use error::ProcessError;
pub use method::{get_context, set_start_method, start_method, Context, StartMethod};
pub use remote::init;
#[doc(hidden)]
pub use remote::Portable;
use travel::Outbox;

use crate::sync::plain::{AtomicBool, Ordering};
use child::ChildState;
use rustix::fd::BorrowedFd;
use rustix::process::{getppid, pidfd_open, Pid, PidfdFlags, Signal};
use std::fmt::{self, Write as _};
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

/// What the struct-style process runs in the child: the equivalent of overriding
/// `Process.run` in Python.
///
/// ```
/// use shmproc::process::{Process, Run, RunResult};
///
/// struct Mailer {
///     index: u32,
/// }
///
/// impl Run for Mailer {
///     fn run(&mut self) -> RunResult {
///         println!("mail {} sent", self.index);
///         Ok(())
///     }
/// }
///
/// let mut p = Process::from_run(Mailer { index: 7 });
/// p.start()?;
/// assert_eq!(p.join()?, 0);
/// assert_eq!(p.target().index, 7); // the parent keeps its own copy
/// # Ok::<(), shmproc::process::ProcessError>(())
/// ```
pub trait Run {
    /// Runs in the child, once. `Err` makes the exit code 1 and is printed to stderr.
    fn run(&mut self) -> RunResult;

    /// Called in the parent once the child is started: closures and function arguments
    /// drop what they hold (Python's `start` deletes `_target` and `_args`). A
    /// struct-style target keeps its fields (it is the process object).
    #[doc(hidden)]
    fn __shmproc_release(&mut self) {}

    /// The target as it travels to a spawned or forkserver child; `None` if it cannot.
    #[doc(hidden)]
    fn __shmproc_portable(&mut self, _out: &mut Outbox) -> Option<Result<Portable, String>> {
        None
    }

    /// In a forked child: the descriptors of the pipe ends the target holds, if known
    /// (function arguments); every other end the child inherited is then released.
    #[doc(hidden)]
    fn __shmproc_census(&self) -> Option<Vec<std::os::fd::RawFd>> {
        None
    }
}

/// What [`Run::run`] returns: any error can be returned with `?`.
pub type RunResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

impl<R: Run + ?Sized> Run for Box<R> {
    fn run(&mut self) -> RunResult {
        (**self).run()
    }
    fn __shmproc_release(&mut self) {
        (**self).__shmproc_release()
    }
    fn __shmproc_portable(&mut self, out: &mut Outbox) -> Option<Result<Portable, String>> {
        (**self).__shmproc_portable(out)
    }
    fn __shmproc_census(&self) -> Option<Vec<std::os::fd::RawFd>> {
        (**self).__shmproc_census()
    }
}

/// What a function target returns: `()` (exit code 0) or a `Result` whose `Err` is
/// printed after `Process <name>:` and makes the exit code 1.
///
/// ```
/// use shmproc::process::Outcome;
/// assert!(().into_run_result().is_ok());
/// assert!(Err::<(), _>("no mail server").into_run_result().is_err());
/// ```
pub trait Outcome {
    /// The outcome as a [`RunResult`].
    fn into_run_result(self) -> RunResult;
}

impl Outcome for () {
    fn into_run_result(self) -> RunResult {
        Ok(())
    }
}

impl<E: fmt::Display> Outcome for Result<(), E> {
    fn into_run_result(self) -> RunResult {
        self.map_err(|e| e.to_string().into())
    }
}

/// A closure as a [`Run`] target: runs once.
struct FnTarget<F>(Option<F>);

impl<F: FnOnce() + 'static> Run for FnTarget<F> {
    fn run(&mut self) -> RunResult {
        if let Some(f) = self.0.take() {
            f();
        }
        Ok(())
    }
    fn __shmproc_release(&mut self) {
        self.0 = None;
    }
    fn __shmproc_portable(&mut self, _out: &mut Outbox) -> Option<Result<Portable, String>> {
        Some(Portable::unit::<F>())
    }
}

/// A closure returning a `Result` as a [`Run`] target: runs once.
struct TryFnTarget<F>(Option<F>);

impl<F: FnOnce() -> Result<(), E> + 'static, E: fmt::Display + 'static> Run for TryFnTarget<F> {
    fn run(&mut self) -> RunResult {
        match self.0.take() {
            Some(f) => f().map_err(|e| e.to_string().into()),
            None => Ok(()),
        }
    }
    fn __shmproc_release(&mut self) {
        self.0 = None;
    }
    fn __shmproc_portable(&mut self, _out: &mut Outbox) -> Option<Result<Portable, String>> {
        Some(Portable::fallible::<F, E>())
    }
}

/// A function and its arguments as a [`Run`] target: `f(args)`, once.
#[cfg(feature = "serde")]
struct FnCall<A, R> {
    f: fn(A) -> R,
    args: Option<A>,
}

#[cfg(feature = "serde")]
impl<A, R> Run for FnCall<A, R>
where
    A: serde::Serialize + serde::de::DeserializeOwned + 'static,
    R: Outcome + 'static,
{
    fn run(&mut self) -> RunResult {
        match self.args.take() {
            Some(a) => (self.f)(a).into_run_result(),
            None => Ok(()),
        }
    }
    fn __shmproc_release(&mut self) {
        self.args = None;
    }
    fn __shmproc_portable(&mut self, out: &mut Outbox) -> Option<Result<Portable, String>> {
        let a = self.args.as_ref()?;
        Some(Portable::call(self.f, a, out))
    }
    fn __shmproc_census(&self) -> Option<Vec<std::os::fd::RawFd>> {
        remote::census(self.args.as_ref()?)
    }
}

/// Sets a process's name, daemon flag and thread opt-in before it exists.
///
/// ```
/// use shmproc::process::Process;
///
/// let mut p = Process::builder().name("mailer").daemon(false).target(|| ());
/// assert_eq!(p.name(), "mailer");
/// p.start()?;
/// assert_eq!(p.join()?, 0);
/// # Ok::<(), shmproc::process::ProcessError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    name: Option<String>,
    daemon: Option<bool>,
    allow_threads: bool,
    method: StartMethod,
    start_timeout: Duration,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            name: None,
            daemon: None,
            allow_threads: false,
            method: StartMethod::Auto,
            start_timeout: DEFAULT_START_TIMEOUT,
        }
    }
}

/// How long `start` waits for a spawned or forkserver child to report in, by default.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(60);

impl Builder {
    /// A builder with the defaults: `Process-N`, the daemon flag of the current process,
    /// no forking from a multi-threaded process, the default start method.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// The start method of this process (default [`StartMethod::Auto`]: the process-wide
    /// default set with [`set_start_method`], itself `Auto` unless set).
    ///
    /// ```
    /// use shmproc::process::{Process, StartMethod};
    ///
    /// let mut p = Process::builder().start_method(StartMethod::Fork).target(|| ());
    /// p.start()?;
    /// assert_eq!(p.join()?, 0);
    /// # Ok::<(), shmproc::process::ProcessError>(())
    /// ```
    pub fn start_method(mut self, method: StartMethod) -> Builder {
        self.method = method;
        self
    }

    /// How long `start` waits for a spawned or forkserver child to report in (it has
    /// received and rebuilt its target) before it kills the child and fails with
    /// [`ProcessError::ChildStart`]. Default [`DEFAULT_START_TIMEOUT`].
    pub fn start_timeout(mut self, timeout: Duration) -> Builder {
        self.start_timeout = timeout;
        self
    }

    /// Builds a process that runs `f(args)`: Python's `Process(target=f, args=args)`,
    /// under every start method (see [`Process::function`]).
    ///
    /// Needs the `serde` feature (on by default).
    #[cfg(feature = "serde")]
    pub fn function<A, R>(self, f: fn(A) -> R, args: A) -> Process
    where
        A: serde::Serialize + serde::de::DeserializeOwned + 'static,
        R: Outcome + 'static,
    {
        self.run(Box::new(FnCall {
            f,
            args: Some(args),
        }) as Box<dyn Run>)
    }

    /// The process's name (Python's `name=`).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Whether the process is a daemon (Python's `daemon=`). Default: inherited from the
    /// current process (false in the main process).
    pub fn daemon(mut self, daemon: bool) -> Builder {
        self.daemon = Some(daemon);
        self
    }

    /// Allows `start` to fork although the current process has other threads (and makes
    /// the default start method fork rather than use the forkserver). Read the module
    /// docs (*Forking from a process with threads*) for what the child may do.
    ///
    /// ```
    /// use shmproc::process::Process;
    ///
    /// let mut p = Process::builder().allow_threads(true).target(|| ());
    /// p.start()?;
    /// assert_eq!(p.join()?, 0);
    /// # Ok::<(), shmproc::process::ProcessError>(())
    /// ```
    pub fn allow_threads(mut self, allow: bool) -> Builder {
        self.allow_threads = allow;
        self
    }

    /// Builds a process that runs the closure `f`.
    pub fn target<F: FnOnce() + 'static>(self, f: F) -> Process {
        self.run(Box::new(FnTarget(Some(f))) as Box<dyn Run>)
    }

    /// Builds a process that runs the closure `f`; an `Err` makes the exit code 1.
    pub fn fallible<F, E>(self, f: F) -> Process
    where
        F: FnOnce() -> Result<(), E> + 'static,
        E: fmt::Display + 'static,
    {
        self.run(Box::new(TryFnTarget(Some(f))) as Box<dyn Run>)
    }

    /// Builds a struct-style process that runs `target.run()`.
    pub fn run<T: Run>(self, target: T) -> Process<T> {
        let mut reg = registry::lock();
        reg.counter = reg.counter.wrapping_add(1);
        let mut identity = reg.me.identity.clone();
        identity.push(reg.counter);
        let name = self.name.unwrap_or_else(|| {
            let mut name = String::from("Process");
            for (i, id) in identity.iter().enumerate() {
                let sep = if i == 0 { '-' } else { ':' };
                let _ = write!(name, "{sep}{id}");
            }
            name
        });
        Process {
            target,
            name,
            daemon: self.daemon.unwrap_or(reg.me.daemon),
            allow_threads: self.allow_threads,
            method: self.method,
            start_timeout: self.start_timeout,
            identity,
            state: State::New,
        }
    }
}

/// Where a `Process` is in its life.
enum State {
    New,
    Started(Arc<ChildState>),
    Closed { pid: u32, exitcode: i32 },
}

/// A child process: Python's `multiprocessing.Process`.
///
/// `T` is the work: a boxed closure for [`Process::new`], your own type for
/// [`Process::from_run`]. See the [module docs](self) for the lifecycle.
pub struct Process<T = Box<dyn Run>> {
    target: T,
    name: String,
    daemon: bool,
    allow_threads: bool,
    /// As configured before `start`; the method used after it.
    method: StartMethod,
    start_timeout: Duration,
    identity: Vec<u32>,
    state: State,
}

impl<T> fmt::Debug for Process<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::New => "initial",
            State::Started(c) if c.known_exit().is_some() => "stopped",
            State::Started(_) => "started",
            State::Closed { .. } => "closed",
        };
        f.debug_struct("Process")
            .field("name", &self.name)
            .field("pid", &self.pid())
            .field("daemon", &self.daemon)
            .field("state", &state)
            .finish()
    }
}

impl Process {
    /// A process that runs the closure `f` in the child. Name `Process-N`.
    ///
    /// Under `Fork` the closure may capture anything. Under `Spawn` and `ForkServer` only
    /// a closure that captures nothing can go (it is rebuilt in the child from its type);
    /// pass data with [`Process::function`] instead.
    ///
    /// ```
    /// use shmproc::process::Process;
    ///
    /// let mut p = Process::new(|| panic!("no mail server"));
    /// p.start()?;
    /// assert_eq!(p.join()?, 1); // stderr got "Process Process-1:" and the panic message
    /// # Ok::<(), shmproc::process::ProcessError>(())
    /// ```
    pub fn new<F: FnOnce() + 'static>(f: F) -> Process {
        Builder::new().target(f)
    }

    /// A process that runs the closure `f`, which may fail: `Err(e)` makes the exit code
    /// 1 after `Process <name>:` and `e` are written to stderr.
    ///
    /// ```
    /// use shmproc::process::Process;
    ///
    /// let mut p = Process::fallible(|| -> Result<(), String> { Err("no mail server".into()) });
    /// p.start()?;
    /// assert_eq!(p.join()?, 1);
    /// let mut q = Process::fallible(|| "42".parse::<u8>().map(drop));
    /// q.start()?;
    /// assert_eq!(q.join()?, 0);
    /// # Ok::<(), shmproc::process::ProcessError>(())
    /// ```
    pub fn fallible<F, E>(f: F) -> Process
    where
        F: FnOnce() -> Result<(), E> + 'static,
        E: fmt::Display + 'static,
    {
        Builder::new().fallible(f)
    }

    /// A [`Builder`], to set the name, the daemon flag, the start method or the thread
    /// opt-in.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// A process that runs `f(args)`: Python's `Process(target=f, args=args)`.
    /// Needs the `serde` feature (on by default).
    ///
    /// `f` is a function (or a closure that captures nothing); `args` any serde type,
    /// which may hold travelling handles ([`Arena`](crate::Arena), [`Connection`](crate::Connection)
    /// ends). It works under every start method: a forked child calls `f(args)` on its
    /// copy; a spawned or forkserver child receives the arguments serialized and their
    /// handles' descriptors over a socket, and `start` reports an argument that fails to
    /// deserialize there. Either way **the child holds exactly the pipe ends in its
    /// arguments** (a forked child releases the others it inherited before `f` runs),
    /// and the parent drops its copy of the arguments when `start` returns: so an end
    /// handed to the child is closed everywhere once the child closes it.
    ///
    /// ```
    /// use shmproc::pipe::{Pipe, RecvError};
    /// use shmproc::{Connection, Process};
    ///
    /// fn reader(conn: Connection) -> Result<(), RecvError> {
    ///     while conn.recv_bytes().is_ok() {} // until EOF
    ///     Ok(())
    /// }
    ///
    /// let (parent_conn, child_conn) = Pipe::new(true)?;
    /// let mut p = Process::function(reader, child_conn);
    /// p.start()?; // the parent's child_conn is dropped here
    /// parent_conn.send_bytes(b"hello")?;
    /// drop(parent_conn); // the child sees EOF
    /// assert_eq!(p.join()?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "serde")]
    pub fn function<A, R>(f: fn(A) -> R, args: A) -> Process
    where
        A: serde::Serialize + serde::de::DeserializeOwned + 'static,
        R: Outcome + 'static,
    {
        Builder::new().function(f, args)
    }
}

impl<T: Run> Process<T> {
    /// A struct-style process: the child runs `target.run()` (see [`Run`]).
    pub fn from_run(target: T) -> Process<T> {
        Builder::new().run(target)
    }

    /// Starts the child, which runs the target once and exits. The start method is the
    /// process's own ([`Builder::start_method`]) or the default ([`set_start_method`],
    /// itself [`StartMethod::Auto`] unless set). Once the child runs, the parent drops a
    /// closure target and a function's arguments (see [`Run`]).
    ///
    /// ```
    /// use shmproc::process::{Process, ProcessError};
    ///
    /// let mut p = Process::new(|| ());
    /// assert!(matches!(p.join(), Err(ProcessError::NotStarted)));
    /// p.start()?;
    /// assert!(matches!(p.start(), Err(ProcessError::AlreadyStarted)));
    /// p.join()?;
    /// # Ok::<(), ProcessError>(())
    /// ```
    ///
    /// # Errors
    /// - [`ProcessError::AlreadyStarted`]: `start` was called before.
    /// - [`ProcessError::DaemonHasChildren`]: the current process is a daemon.
    /// - [`ProcessError::Threads`]: `Fork` (chosen, or `Auto` without
    ///   [`init`]) in a process with other threads, and
    ///   [`allow_threads`](Builder::allow_threads) was not set.
    /// - [`ProcessError::NotInitialized`]: `Spawn` or `ForkServer` without [`init`].
    /// - [`ProcessError::NotPortable`]: `Spawn` or `ForkServer` (chosen, or `Auto` with
    ///   threads) for a target that cannot leave this process.
    /// - [`ProcessError::ChildStart`]: a spawned or forkserver child failed before its
    ///   target ran (the process is started: [`exitcode`](Self::exitcode) has its code).
    /// - [`ProcessError::SpawnedWithoutInit`]: this process was spawned but skipped
    ///   [`init`].
    /// - [`ProcessError::ForkServer`], [`ProcessError::Os`]: the forkserver, `fork`,
    ///   `posix_spawn` or `pidfd_open` failed.
    pub fn start(&mut self) -> Result<(), ProcessError> {
        if !matches!(self.state, State::New) {
            return Err(ProcessError::AlreadyStarted);
        }
        if remote::spawned_without_init() {
            return Err(ProcessError::SpawnedWithoutInit);
        }
        let method = self.resolve_method()?;
        match method {
            StartMethod::Spawn | StartMethod::ForkServer => self.start_remote(method),
            _ => self.start_fork(),
        }
    }

    /// The method `start` uses (never `Auto`); the thread check of `Fork` is left to
    /// `start_fork`.
    fn resolve_method(&self) -> Result<StartMethod, ProcessError> {
        let m = match self.method {
            StartMethod::Auto => method::start_method(),
            m => m,
        };
        match m {
            StartMethod::Spawn | StartMethod::ForkServer if !remote::initialized() => {
                Err(ProcessError::NotInitialized { method: m })
            }
            StartMethod::Auto if !self.allow_threads => {
                // One `stat` of /proc/self/task; fork is right while we are alone.
                if thread_count()? <= 1 {
                    Ok(StartMethod::Fork)
                } else if remote::initialized() {
                    Ok(StartMethod::ForkServer)
                } else {
                    // `start_fork` settles the count and reports the threads.
                    Ok(StartMethod::Fork)
                }
            }
            StartMethod::Auto => Ok(StartMethod::Fork),
            m => Ok(m),
        }
    }

    /// `start` through a spawned or forkserver child.
    fn start_remote(&mut self, method: StartMethod) -> Result<(), ProcessError> {
        let info = {
            let mut reg = registry::lock();
            if reg.me.daemon {
                return Err(ProcessError::DaemonHasChildren);
            }
            reg.prune();
            reg.ensure_exit_hook();
            remote::StartInfo {
                name: self.name.clone(),
                identity: self.identity.clone(),
                daemon: self.daemon,
                parent: ProcessInfo {
                    name: reg.my_name(),
                    pid: crate::sync::liveness::current_pid(),
                    daemon: reg.me.daemon,
                },
            }
        };
        let mut out = Outbox::new();
        let why_not_fork = if self.method == StartMethod::Auto {
            " (the default start method chose the forkserver because this process has \
             threads; Builder::allow_threads(true) forks anyway, if the child only does \
             fork-safe work)"
        } else {
            ""
        };
        let portable = match self.target.__shmproc_portable(&mut out) {
            Some(Ok(p)) => p,
            Some(Err(reason)) => {
                return Err(ProcessError::NotPortable {
                    reason: format!("{reason}{why_not_fork}"),
                })
            }
            None => {
                return Err(ProcessError::NotPortable {
                    reason: format!(
                        "a struct-style target (Run) lives in this process only: use \
                         Process::function(f, args) with serde arguments, or \
                         StartMethod::Fork{why_not_fork}"
                    ),
                })
            }
        };
        let _ = std::io::stdout().flush();
        let started = remote::start_child(method, &info, &portable, out, self.start_timeout);
        drop(portable);
        let (child, failure) = match started {
            Ok(child) => (child, None),
            Err(remote::StartFailure::Child(child, reason)) => (child, Some(reason)),
            Err(remote::StartFailure::Before(e)) => return Err(e),
            Err(remote::StartFailure::Lost(e)) => {
                self.target.__shmproc_release();
                return Err(e);
            }
        };
        let child = Arc::new(child);
        registry::lock().children.push(child.clone());
        self.state = State::Started(child.clone());
        self.method = method;
        self.target.__shmproc_release();
        let Some(reason) = failure else {
            return Ok(());
        };
        // A child that failed exits at once; one that is silent is killed now.
        let grace = if child.is_alive() && reason.contains("did not report in") {
            Duration::ZERO
        } else {
            Duration::from_secs(5)
        };
        let exitcode = match child.wait(wire::deadline(grace)) {
            Ok(Some(code)) => Some(code),
            _ => {
                let _ = child.signal(Signal::KILL);
                child
                    .wait(wire::deadline(Duration::from_secs(10)))
                    .ok()
                    .flatten()
            }
        };
        Err(ProcessError::ChildStart {
            pid: child.pid_u32(),
            exitcode,
            reason,
        })
    }

    /// `start` by `fork`.
    fn start_fork(&mut self) -> Result<(), ProcessError> {
        let mut reg = registry::lock();
        if reg.me.daemon {
            return Err(ProcessError::DaemonHasChildren);
        }
        if !self.allow_threads {
            let count = settled_thread_count()?;
            if count > 1 {
                return Err(ProcessError::Threads { count });
            }
        }
        reg.prune();
        reg.ensure_exit_hook();
        install_panic_hook();
        let parent = crate::sync::liveness::current_pid();
        // Allocate now whatever either side needs after the fork: from the fork until
        // the child exits, every page one of them writes is copied (a fault of a few
        // microseconds each on a VM). The child moves its registry record out of
        // `pending`; the parent leaves it there (the next `start` drops it).
        let child_name = self.name.clone();
        reg.pending = Some(registry::Me {
            name: Some(self.name.clone()),
            identity: self.identity.clone(),
            daemon: self.daemon,
            parent: Some(ProcessInfo {
                name: reg.my_name(),
                pid: parent,
                daemon: reg.me.daemon,
            }),
        });
        // Buffered output belongs to the parent: write it out now, or the child would
        // inherit the buffer and print it a second time. (Rust's stderr is unbuffered.)
        let _ = std::io::stdout().flush();

        // SAFETY: `fork` has no memory-safety preconditions of its own. The child is a
        // copy of this thread only: either the process has no other thread (checked
        // above), or the caller opted in and accepted the documented limits. The child
        // never returns from this function (it leaves through `_exit`), so nothing of the
        // parent's is dropped or run twice.
        // libc's fork, not rustix's: rustix::runtime::kernel_fork is for programs without libc,
        // and here libc must do its own fork handling (atfork handlers, its caches).
        let raw = unsafe { libc::fork() };
        if raw < 0 {
            return Err(ProcessError::Os {
                op: "fork",
                source: std::io::Error::last_os_error(),
            });
        }
        if raw == 0 {
            child_main(reg, self, parent);
        }
        let Some(pid) = Pid::from_raw(raw) else {
            return Err(ProcessError::Os {
                op: "fork",
                source: std::io::Error::other("pid 0"),
            });
        };
        // The child's registration in the arenas (made before the fork) gets its exact
        // identity: its start time tells a reused pid apart.
        crate::arena::child_started(raw as u32);
        // The child cannot be reaped by anyone but us yet, so its pid is still its own
        // (a zombie at worst) and the pidfd names the right process.
        let pidfd = match pidfd_open(pid, PidfdFlags::empty()) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = rustix::process::kill_process(pid, Signal::KILL);
                let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
                return Err(ProcessError::os(
                    "pidfd_open (Linux 5.3 or later is needed)",
                    e,
                ));
            }
        };
        let state = Arc::new(ChildState::new(
            pid,
            pidfd,
            None,
            child_name,
            self.daemon,
            parent,
        ));
        reg.children.push(state.clone());
        drop(reg);
        self.state = State::Started(state);
        self.method = StartMethod::Fork;
        self.target.__shmproc_release();
        Ok(())
    }
}

/// The child's side of `start`: set up, run the target, leave through `_exit`.
fn child_main<T: Run>(
    mut reg: std::sync::MutexGuard<'static, registry::Registry>,
    p: &mut Process<T>,
    parent: u32,
) -> ! {
    if p.daemon {
        // Die with the parent. If the parent died before the prctl, we have already been
        // re-parented: then die now.
        let armed = rustix::process::set_parent_process_death_signal(Some(Signal::KILL)).is_ok();
        let ppid = getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32);
        if !armed || ppid != parent {
            let _ = rustix::process::kill_process(rustix::process::getpid(), Signal::KILL);
            // SAFETY: leaving the child without running anything of the parent's.
            // libc: std has no `_exit`, and rustix's (runtime::exit_group) is for programs
            // without libc, outside its stable API.
            unsafe { libc::_exit(1) };
        }
    }
    // The registry now describes this process (the lock taken before the fork is held by
    // this very thread, the only one in the child). The children listed are our
    // siblings: forget them without touching them (dropping would write to each one's
    // shared, copy-on-write page; the handful of bytes stays allocated until `_exit`).
    reg.owner = crate::sync::liveness::current_pid();
    std::mem::forget(std::mem::take(&mut reg.children));
    reg.counter = 0;
    if let Some(me) = reg.pending.take() {
        reg.me = me;
    }
    drop(reg);

    // A function's arguments say which pipe ends the child holds: release the others it
    // inherited, so that it holds what a spawned child would.
    #[cfg(not(shmproc_loom))]
    if let Some(keep) = p.target.__shmproc_census() {
        crate::pipe::release_holds_except(&keep);
    }
    run_and_exit(&p.name, || p.target.run())
}

/// Runs a child's target and leaves with its exit code (see the module docs' table).
fn run_and_exit(name: &str, f: impl FnOnce() -> RunResult) -> ! {
    let code = match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            let _ = writeln!(std::io::stderr(), "Process {name}:\n{e}");
            1
        }
        Err(payload) => {
            // Relaxed: set by this thread, in the panic hook, before unwinding got here.
            if !PANIC_LINE_WRITTEN.load(Ordering::Relaxed) {
                // Someone replaced our panic hook: say who panicked, and what, ourselves.
                let what = payload
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("(a panic with a non-string payload)");
                let _ = writeln!(std::io::stderr(), "Process {name}:\n{what}");
            }
            // Dropping a panic payload can panic again; we are leaving anyway.
            std::mem::forget(payload);
            1
        }
    };
    exit(code)
}

impl<T> Process<T> {
    /// The process's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renames the process (before `start` only).
    ///
    /// # Errors
    /// [`ProcessError::AlreadyStarted`] once started.
    pub fn set_name(&mut self, name: impl Into<String>) -> Result<(), ProcessError> {
        self.check_new()?;
        self.name = name.into();
        Ok(())
    }

    /// Whether the process is a daemon.
    pub fn daemon(&self) -> bool {
        self.daemon
    }

    /// Before `start`: the start method asked for (maybe [`StartMethod::Auto`]); after:
    /// the one used.
    ///
    /// ```
    /// use shmproc::process::{Process, StartMethod};
    ///
    /// let mut p = Process::new(|| ());
    /// assert_eq!(p.start_method(), StartMethod::Auto);
    /// p.start()?;
    /// assert_eq!(p.start_method(), StartMethod::Fork); // one thread: fork
    /// p.join()?;
    /// # Ok::<(), shmproc::process::ProcessError>(())
    /// ```
    pub fn start_method(&self) -> StartMethod {
        self.method
    }

    /// Sets the start method (before `start` only; see [`Builder::start_method`]).
    ///
    /// # Errors
    /// [`ProcessError::AlreadyStarted`] once started.
    pub fn set_start_method(&mut self, method: StartMethod) -> Result<(), ProcessError> {
        self.check_new()?;
        self.method = method;
        Ok(())
    }

    /// Makes the process a daemon or not (before `start` only).
    ///
    /// ```
    /// use shmproc::process::{Process, ProcessError};
    ///
    /// let mut p = Process::new(|| ());
    /// p.set_daemon(true)?;
    /// p.start()?;
    /// assert!(matches!(p.set_daemon(false), Err(ProcessError::AlreadyStarted)));
    /// p.join()?;
    /// # Ok::<(), ProcessError>(())
    /// ```
    ///
    /// # Errors
    /// [`ProcessError::AlreadyStarted`] once started.
    pub fn set_daemon(&mut self, daemon: bool) -> Result<(), ProcessError> {
        self.check_new()?;
        self.daemon = daemon;
        Ok(())
    }

    /// Allows `start` from a multi-threaded process (see the module docs).
    ///
    /// # Errors
    /// [`ProcessError::AlreadyStarted`] once started.
    pub fn set_allow_threads(&mut self, allow: bool) -> Result<(), ProcessError> {
        self.check_new()?;
        self.allow_threads = allow;
        Ok(())
    }

    /// The parent's copy of the target (the child ran its own copy).
    pub fn target(&self) -> &T {
        &self.target
    }

    /// The parent's copy of the target, mutably. Changes after `start` are not seen by
    /// the child.
    pub fn target_mut(&mut self) -> &mut T {
        &mut self.target
    }

    fn check_new(&self) -> Result<(), ProcessError> {
        match self.state {
            State::New => Ok(()),
            _ => Err(ProcessError::AlreadyStarted),
        }
    }

    fn started(&self) -> Result<&ChildState, ProcessError> {
        match &self.state {
            State::New => Err(ProcessError::NotStarted),
            State::Started(c) => Ok(c),
            State::Closed { .. } => Err(ProcessError::Closed),
        }
    }

    /// The child's pid; `None` before `start`.
    pub fn pid(&self) -> Option<u32> {
        match &self.state {
            State::New => None,
            State::Started(c) => Some(c.pid_u32()),
            State::Closed { pid, .. } => Some(*pid),
        }
    }

    /// A clonable handle to the started child (`None` before `start` and after `close`).
    pub fn handle(&self) -> Option<ProcessHandle> {
        match &self.state {
            State::Started(c) => Some(ProcessHandle(c.clone())),
            _ => None,
        }
    }

    /// Whether the child runs. Reaps a finished child, so it turns false without `join`.
    /// False before `start` and after `close`.
    pub fn is_alive(&self) -> bool {
        self.started().is_ok_and(ChildState::is_alive)
    }

    /// `None` before `start` and while the child runs; then its exit code: `0`, `1`
    /// (panic or `Err`), `n` (`exit(n)`) or `-N` (killed by signal `N`).
    pub fn exitcode(&self) -> Option<i32> {
        match &self.state {
            State::New => None,
            State::Started(c) => c.exitcode(),
            State::Closed { exitcode, .. } => Some(*exitcode),
        }
    }

    /// Waits for the child to exit and returns its exit code. May be called many times.
    ///
    /// # Errors
    /// [`ProcessError::NotStarted`], [`ProcessError::Closed`],
    /// [`ProcessError::NotOurChild`] (called in another process than the parent, e.g. a
    /// sibling that inherited this value), [`ProcessError::Os`].
    pub fn join(&self) -> Result<i32, ProcessError> {
        self.started()?.join()
    }

    /// Waits at most `timeout` for the child; `Ok(None)` if it still runs (it is left
    /// running). Blocks in `poll`, never busy-waits.
    ///
    /// ```
    /// use shmproc::process::Process;
    /// use std::time::Duration;
    ///
    /// let mut p = Process::new(|| std::thread::sleep(Duration::from_secs(30)));
    /// p.start()?;
    /// assert_eq!(p.join_timeout(Duration::from_millis(10))?, None);
    /// assert!(p.is_alive());
    /// p.kill()?;
    /// assert_eq!(p.join()?, -9);
    /// # Ok::<(), shmproc::process::ProcessError>(())
    /// ```
    ///
    /// # Errors
    /// As [`join`](Self::join).
    pub fn join_timeout(&self, timeout: Duration) -> Result<Option<i32>, ProcessError> {
        let deadline = Instant::now().checked_add(timeout);
        self.started()?.wait(deadline)
    }

    /// Sends `SIGTERM` (exit code `-15` unless the child handles it). Does nothing if the
    /// child has already exited.
    ///
    /// # Errors
    /// [`ProcessError::NotStarted`], [`ProcessError::Closed`], [`ProcessError::Os`].
    pub fn terminate(&self) -> Result<(), ProcessError> {
        self.started()?.signal(Signal::TERM)
    }

    /// Sends `SIGKILL` (exit code `-9`). Does nothing if the child has already exited.
    ///
    /// # Errors
    /// As [`terminate`](Self::terminate).
    pub fn kill(&self) -> Result<(), ProcessError> {
        self.started()?.signal(Signal::KILL)
    }

    /// A file descriptor that becomes readable when the child exits (its pidfd), for
    /// `poll` / `epoll` over many processes and other events.
    ///
    /// ```
    /// use rustix::event::{poll, PollFd, PollFlags};
    /// use shmproc::process::Process;
    ///
    /// let mut p = Process::new(|| ());
    /// p.start()?;
    /// let mut fds = [PollFd::from_borrowed_fd(p.sentinel()?, PollFlags::IN)];
    /// poll(&mut fds, None).unwrap();
    /// assert!(!p.is_alive());
    /// # Ok::<(), shmproc::process::ProcessError>(())
    /// ```
    ///
    /// # Errors
    /// [`ProcessError::NotStarted`], [`ProcessError::Closed`].
    pub fn sentinel(&self) -> Result<BorrowedFd<'_>, ProcessError> {
        Ok(self.started()?.sentinel())
    }

    /// Releases the OS resources of a finished child (its pidfd). Afterwards `pid` and
    /// `exitcode` still answer; `join`, `terminate`, `kill` and `sentinel` return
    /// [`ProcessError::Closed`]. Closing twice is fine.
    ///
    /// # Errors
    /// [`ProcessError::StillRunning`] while the child runs; [`ProcessError::NotStarted`];
    /// [`ProcessError::NotOurChild`] outside its parent.
    pub fn close(&mut self) -> Result<(), ProcessError> {
        let c = match &self.state {
            State::New => return Err(ProcessError::NotStarted),
            State::Closed { .. } => return Ok(()),
            State::Started(c) => c.clone(),
        };
        let exitcode = c.poll()?.ok_or(ProcessError::StillRunning)?;
        registry::lock().children.retain(|x| !Arc::ptr_eq(x, &c));
        self.state = State::Closed {
            pid: c.pid_u32(),
            exitcode,
        };
        Ok(())
    }
}

/// What is known of a process: the current one ([`current_process`]) or its parent
/// ([`parent_process`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    name: String,
    pid: u32,
    daemon: bool,
}

impl ProcessInfo {
    /// The name: `MainProcess`, `Process-1`, `Process-1:2`, or the name given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether it is (for a parent: was, when the current process started) a daemon.
    pub fn daemon(&self) -> bool {
        self.daemon
    }

    /// Whether the process still runs (procfs: present and not a zombie). Best effort for
    /// processes that are not the current one: a pid can be reused after the process is
    /// reaped.
    pub fn is_alive(&self) -> bool {
        crate::sync::liveness::proc_stat(self.pid)
            .is_some_and(|s| s.state != b'Z' && s.state != b'X')
    }
}

/// The current process: its name, pid and daemon flag.
///
/// ```
/// let me = shmproc::process::current_process();
/// assert_eq!(me.pid(), std::process::id());
/// assert_eq!(me.name(), "MainProcess");
/// ```
pub fn current_process() -> ProcessInfo {
    let reg = registry::lock();
    ProcessInfo {
        name: reg.my_name(),
        pid: reg.owner,
        daemon: reg.me.daemon,
    }
}

/// The process that started the current one; `None` in the main process (or in a process
/// not started by [`Process::start`]).
///
/// ```
/// use shmproc::process::{parent_process, Process};
///
/// assert!(parent_process().is_none());
/// let me = std::process::id();
/// let mut p = Process::fallible(move || {
///     let parent = parent_process().ok_or("no parent")?;
///     if parent.pid() == me && parent.name() == "MainProcess" { Ok(()) } else { Err("wrong parent") }
/// });
/// p.start()?;
/// assert_eq!(p.join()?, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parent_process() -> Option<ProcessInfo> {
    registry::lock().me.parent.clone()
}

/// The children of the current process that still run; finished ones are reaped (and
/// dropped from the list) on the way, as in Python.
///
/// ```
/// use shmproc::process::{active_children, Process};
///
/// let mut p = Process::new(|| std::thread::sleep(std::time::Duration::from_secs(30)));
/// p.start()?;
/// assert_eq!(active_children().len(), 1);
/// p.terminate()?;
/// p.join()?;
/// assert!(active_children().is_empty());
/// # Ok::<(), shmproc::process::ProcessError>(())
/// ```
pub fn active_children() -> Vec<ProcessHandle> {
    let mut reg = registry::lock();
    reg.prune();
    reg.children
        .iter()
        .map(|c| ProcessHandle(c.clone()))
        .collect()
}

/// The number of CPUs this process may run on (its affinity mask; at least 1).
///
/// ```
/// assert!(shmproc::process::cpu_count() >= 1);
/// ```
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Leaves the current process with exit code `code`, like Python's `sys.exit(code)` in a
/// child: flushes `stdout` and `stderr`, terminates daemon children and joins the others
/// (as at normal exit), then calls `_exit`: no `atexit` handler and no destructor runs.
pub fn exit(code: i32) -> ! {
    // Rust's stderr is unbuffered: only stdout has something to write out.
    let _ = std::io::stdout().flush();
    registry::cleanup_children();
    let _ = std::io::stdout().flush();
    remote::report_exit(code);
    // SAFETY: `_exit` ends the process at once; nothing is left half-done that another
    // process depends on (output was flushed, children were reaped).
    // libc: std has no `_exit`, and rustix's (runtime::exit_group) is for programs
    // without libc, outside its stable API.
    unsafe { libc::_exit(code) }
}

/// Set by our panic hook when it has written `Process <name>:` (in a started child).
/// Relaxed: written and read by the panicking thread only.
static PANIC_LINE_WRITTEN: AtomicBool = AtomicBool::new(false);
static PANIC_HOOK: Once = Once::new();

/// Wraps the program's panic hook, once per program (before the first fork, so that no
/// child pays for it): in a child started by [`Process::start`], a panic first writes
/// `Process <name>:` to stderr (as Python writes it before the traceback), then runs the
/// previous hook. Elsewhere the wrapper only runs the previous hook. If the program
/// replaces the hook later, the child writes the line itself after catching the panic.
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if let Some(name) = registry::child_name() {
                let _ = writeln!(std::io::stderr(), "Process {name}:");
                // Relaxed: see `PANIC_LINE_WRITTEN`.
                PANIC_LINE_WRITTEN.store(true, Ordering::Relaxed);
            }
            previous(info);
        }));
    });
}

/// [`thread_count`], giving a thread that was just joined a moment to leave: a join
/// returns once the kernel clears the thread's id, a little before the thread is removed
/// from `/proc/self/task`, so a `start` right after joining the last helper thread could
/// still count it (seen in CI: `Threads { count: 2 }`). Only when more than one thread is
/// counted: re-counts after yields, then short sleeps, for at most ~1 ms.
fn settled_thread_count() -> Result<usize, ProcessError> {
    let mut count = thread_count()?;
    for attempt in 0..20 {
        if count <= 1 {
            break;
        }
        if attempt < 10 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
        count = thread_count()?;
    }
    Ok(count)
}

/// The number of threads of the current process.
///
/// procfs gives `/proc/self/task` a link count of 2 plus the number of threads: one
/// `stat` call (about 2 us, against about 20 us for reading `/proc/self/stat`). If the
/// count looks wrong (procfs not mounted as expected), field 20 of `/proc/self/stat` is
/// read instead.
fn thread_count() -> Result<usize, ProcessError> {
    if let Ok(st) = rustix::fs::stat("/proc/self/task") {
        if st.st_nlink >= 3 {
            return Ok((st.st_nlink - 2) as usize);
        }
    }
    let text = std::fs::read("/proc/self/stat").map_err(|source| ProcessError::Os {
        op: "reading /proc/self/stat",
        source,
    })?;
    let bad = || ProcessError::Os {
        op: "parsing /proc/self/stat",
        source: std::io::Error::from(std::io::ErrorKind::InvalidData),
    };
    let close = text.iter().rposition(|&b| b == b')').ok_or_else(bad)?;
    let rest = std::str::from_utf8(&text[close + 1..]).map_err(|_| bad())?;
    // After the command come the fields from 3 (state) on; num_threads is field 20.
    rest.split_ascii_whitespace()
        .nth(17)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)
}

static_assertions::assert_impl_all!(ProcessInfo: Send, Sync, Clone);
static_assertions::assert_impl_all!(ProcessError: Send, Sync, std::error::Error);
