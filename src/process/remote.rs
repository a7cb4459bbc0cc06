//! Children that are not forks of their parent: `Spawn` (this binary run again) and
//! `ForkServer` (a fork of the server [`init`](crate::init) started), and [`init`], the
//! hook that makes a spawned child run its target instead of `main`.
//!
//! # How a target reaches the child
//! A target that can leave its process is a [`Portable`]: the address of an *entry* (a
//! monomorphic function of this crate that rebuilds the target from bytes), the address
//! of the user's function, and the serialized arguments. Addresses travel as offsets
//! from an anchor function of this crate and are checked (`dladdr`) to lie in the same
//! loaded object as the anchor: the child runs the very same file (`/proc/self/exe`; the
//! kernel refuses writes to a running executable, and the child checks the file's device
//! and inode against the parent's), so the offsets lead to the same code. A function in a
//! shared library is refused in the parent.
//!
//! Closures are targets only if they capture nothing (a zero-sized type): the child makes
//! the closure value out of no bytes, as `fork` would have copied it. A closure that
//! captures data is refused ([`ProcessError::NotPortable`]).
//!
//! # The conversation
//! Parent and child share a `SOCK_SEQPACKET` socket pair (see `wire.rs`). The parent sends
//! START (who the child is, the entry, the arguments, the arenas and descriptors the
//! arguments' handles need); the child rebuilds its target and answers READY, or FAILED
//! with the reason (then exits with code 1), with its pid and (a forkserver child, which
//! the parent did not make) a pidfd of itself. For a forkserver child, START is sent
//! right behind the request to the server, so it waits in the socket when the child
//! starts: one round trip fewer. `start` returns once READY arrives, so an
//! argument that does not deserialize, a binary that differs, a child that exits or
//! hangs before it reports (a `main` that does not call `init` first) is an error of
//! `start`, with the exit code. Every wait has a deadline.

use super::child::ChildState;
use super::error::ProcessError;
use super::method::StartMethod;
use super::registry;
use super::travel::{Inbox, Outbox};
use super::wire::{self, Dec, Enc, WireError};
use super::{ProcessInfo, RunResult};
use crate::arena::Arena;
use crate::sync::plain::{AtomicBool, Ordering};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use rustix::process::{pidfd_open, Pid, PidfdFlags, Signal};
use std::ffi::CString;
use std::io::Write;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Message kinds on a start socket and the forkserver's control socket.
pub(crate) const START: u8 = 1;
pub(crate) const READY: u8 = 2;
pub(crate) const FAILED: u8 = 3;
pub(crate) const FORK_REQUEST: u8 = 4;

/// The environment variable that marks a spawned child: `<fd>:<cookie>`.
pub(crate) const SPAWN_ENV: &str = "SHMPROC_SPAWN";
/// The environment variable that marks a forkserver started by exec: `<fd>:<cookie>`.
pub(crate) const SERVER_ENV: &str = "SHMPROC_FORKSERVER";

/// How long a child waits for its START message.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest START message (arguments included).
const MAX_START: usize = 1 << 30;

/// Set by [`init`] (and inherited by forks): the hook ran in this binary.
static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// True once [`init`] has run in this process or in the process it was forked from.
pub(crate) fn initialized() -> bool {
    // Relaxed: a flag with no data published through it.
    INITIALIZED.load(Ordering::Relaxed)
}

/// True in a process that was spawned by shmproc but did not run [`init`]: its `main`
/// runs again instead of its target, and must not start processes of its own.
pub(crate) fn spawned_without_init() -> bool {
    !initialized() && std::env::var_os(SPAWN_ENV).is_some()
}

/// What a spawned or forkserver child runs: built by an entry from the START message.
pub(crate) type Runner = Box<dyn FnOnce() -> RunResult>;

/// Rebuilds a target in the child from (function address, argument bytes, inbox).
type Entry = fn(usize, &[u8], &mut Inbox) -> Result<Runner, String>;

/// A target that can be rebuilt in another process (see the module docs). Made only by
/// this crate; it appears in [`Run`](super::Run)'s hidden methods.
#[doc(hidden)]
pub struct Portable {
    entry: Entry,
    func: Option<usize>,
    args: Vec<u8>,
}

impl std::fmt::Debug for Portable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portable")
            .field("args", &self.args.len())
            .finish_non_exhaustive()
    }
}

impl Portable {
    /// A closure that captures nothing, run as `f()`.
    pub(crate) fn unit<F: FnOnce() + 'static>() -> Result<Portable, String> {
        zero_sized::<F>()?;
        Ok(Portable {
            entry: unit_entry::<F>,
            func: None,
            args: Vec::new(),
        })
    }

    /// A closure that captures nothing, run as `f()` with its `Err` printed.
    pub(crate) fn fallible<F, E>() -> Result<Portable, String>
    where
        F: FnOnce() -> Result<(), E> + 'static,
        E: std::fmt::Display + 'static,
    {
        zero_sized::<F>()?;
        Ok(Portable {
            entry: fallible_entry::<F, E>,
            func: None,
            args: Vec::new(),
        })
    }

    /// `f(args)`, the arguments serialized (their handles into `out`).
    #[cfg(feature = "serde")]
    pub(crate) fn call<A, R>(f: fn(A) -> R, args: &A, out: &mut Outbox) -> Result<Portable, String>
    where
        A: serde::Serialize + serde::de::DeserializeOwned + 'static,
        R: super::Outcome + 'static,
    {
        let _ = super::travel::take_last_error();
        let bytes =
            super::travel::with_outbox(out, || postcard::to_allocvec(args)).map_err(|e| {
                let why = super::travel::take_last_error().unwrap_or_else(|| e.to_string());
                format!("the arguments could not be serialized: {why}")
            })?;
        Ok(Portable {
            entry: call_entry::<A, R>,
            func: Some(f as usize),
            args: bytes,
        })
    }
}

fn zero_sized<F>() -> Result<(), String> {
    match std::mem::size_of::<F>() {
        0 => Ok(()),
        n => Err(format!(
            "the closure captures {n} bytes of data, which cannot be sent to a process that \
             is not forked from this one: pass the data as arguments with \
             Process::function(f, args) (serde types and handles), or use StartMethod::Fork"
        )),
    }
}

fn unit_entry<F: FnOnce() + 'static>(
    _: usize,
    args: &[u8],
    _: &mut Inbox,
) -> Result<Runner, String> {
    zero_sized::<F>()?;
    if !args.is_empty() {
        return Err("arguments for a closure that takes none".into());
    }
    Ok(Box::new(|| {
        // SAFETY: `F` is zero-sized (checked above and in the parent): its value has no
        // bytes, so `zeroed` is its only representation, and a closure type is inhabited.
        // Its captures (zero-sized values) are duplicated exactly as `fork` duplicates
        // them: the parent drops its copy when `start` returns.
        let f: F = unsafe { std::mem::zeroed() };
        f();
        Ok(())
    }))
}

fn fallible_entry<F, E>(_: usize, args: &[u8], _: &mut Inbox) -> Result<Runner, String>
where
    F: FnOnce() -> Result<(), E> + 'static,
    E: std::fmt::Display + 'static,
{
    zero_sized::<F>()?;
    if !args.is_empty() {
        return Err("arguments for a closure that takes none".into());
    }
    Ok(Box::new(|| {
        // SAFETY: as in `unit_entry`.
        let f: F = unsafe { std::mem::zeroed() };
        f().map_err(|e| e.to_string().into())
    }))
}

#[cfg(feature = "serde")]
fn call_entry<A, R>(func: usize, args: &[u8], inbox: &mut Inbox) -> Result<Runner, String>
where
    A: serde::de::DeserializeOwned + 'static,
    R: super::Outcome + 'static,
{
    let _ = super::travel::take_last_error();
    let decoded: Result<(A, &[u8]), _> =
        super::travel::with_inbox(inbox, || postcard::take_from_bytes::<A>(args));
    let a = match decoded {
        Ok((a, [])) => a,
        Ok((_, rest)) => {
            return Err(format!(
                "the arguments could not be deserialized as {}: {} bytes left over",
                std::any::type_name::<A>(),
                rest.len()
            ))
        }
        Err(e) => {
            // postcard drops the text of custom errors: a handle's is kept aside.
            let why = super::travel::take_last_error().unwrap_or_else(|| e.to_string());
            return Err(format!(
                "the arguments could not be deserialized as {}: {why}",
                std::any::type_name::<A>()
            ));
        }
    };
    // SAFETY: `func` is the address of an `fn(A) -> R` in the parent (`Portable::call`
    // took it from a value of that very type, and this entry is the instance for the same
    // `A` and `R`), moved to this process's copy of the same executable by `from_offset`
    // (same file, same layout: see the module docs).
    let f = unsafe { std::mem::transmute::<usize, fn(A) -> R>(func) };
    Ok(Box::new(move || f(a).into_run_result()))
}

/// The census of a forked child's arguments: which pipe ends they hold.
#[cfg(feature = "serde")]
pub(crate) fn census<A: serde::Serialize>(args: &A) -> Option<Vec<RawFd>> {
    let mut out = Outbox::census();
    super::travel::with_outbox(&mut out, || {
        postcard::serialize_with_flavor(args, postcard::ser_flavors::Size::default())
    })
    .ok()?;
    Some(out.census_fds().to_vec())
}

/// The point that code addresses are measured from: a function of this crate.
#[inline(never)]
fn anchor() -> usize {
    anchor as fn() -> usize as usize
}

/// The start of the loaded object (executable or library) that `addr` lies in.
fn object_base(addr: usize) -> Option<usize> {
    // SAFETY: `Dl_info` is plain data, valid zeroed; dladdr only writes into it.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only looks `addr` up in the loader's tables; any value is fine.
    // libc: a question for the dynamic loader; rustix has no wrapper.
    let rc = unsafe { libc::dladdr(addr as *const libc::c_void, &mut info) };
    (rc != 0 && !info.dli_fbase.is_null()).then_some(info.dli_fbase as usize)
}

/// `addr` as an offset from the anchor, if it lies in the anchor's object. Addresses
/// found good are remembered (a few dozen: the targets a program starts over and over),
/// so a start usually makes no `dladdr` call.
fn to_offset(addr: usize, what: &str) -> Result<u64, String> {
    static GOOD: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());
    static ANCHOR_BASE: OnceLock<Option<usize>> = OnceLock::new();
    let a = anchor();
    let known = GOOD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .contains(&addr);
    if !known {
        let base = *ANCHOR_BASE.get_or_init(|| object_base(a));
        match (object_base(addr), base) {
            (Some(x), Some(y)) if x == y => {
                let mut good = GOOD
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if good.len() < 64 {
                    good.push(addr);
                }
            }
            _ => {
                return Err(format!(
                    "{what} is not in the executable that shmproc is linked into (a shared \
                     library?), so a spawned or forkserver child could not find it"
                ))
            }
        }
    }
    Ok(addr.wrapping_sub(a) as u64)
}

fn from_offset(off: u64) -> usize {
    anchor().wrapping_add(off as usize)
}

/// The executable's device and inode: a child checks that it runs the parent's file.
fn exe_id() -> (u64, u64) {
    static ID: OnceLock<(u64, u64)> = OnceLock::new();
    *ID.get_or_init(|| {
        rustix::fs::stat("/proc/self/exe").map_or((0, 0), |st| (st.st_dev, st.st_ino))
    })
}

/// Who the child is: what the parent's registry would have given a forked child.
pub(crate) struct StartInfo {
    pub(crate) name: String,
    pub(crate) identity: Vec<u32>,
    pub(crate) daemon: bool,
    pub(crate) parent: ProcessInfo,
}

fn random_u64() -> Result<u64, ProcessError> {
    let mut b = [0u8; 8];
    crate::sync::random(&mut b).map_err(|source| ProcessError::Os {
        op: "getrandom",
        source,
    })?;
    Ok(u64::from_le_bytes(b))
}

/// The START message.
fn encode_start(
    info: &StartInfo,
    cookie: u64,
    portable: &Portable,
    out: &mut Outbox,
) -> Result<Vec<u8>, ProcessError> {
    let entry = to_offset(portable.entry as usize, "the target's entry")
        .map_err(|reason| ProcessError::NotPortable { reason })?;
    let func = match portable.func {
        Some(f) => to_offset(f, "the target function")
            .map_err(|reason| ProcessError::NotPortable { reason })?,
        None => u64::MAX,
    };
    let global = match Arena::global_if_made() {
        Some(g) => out.arena(&g).map_err(|e| ProcessError::NotPortable {
            reason: format!("the global arena cannot travel: {e}"),
        })?,
        None => u32::MAX,
    };
    let (dev, ino) = exe_id();
    let mut e = Enc::default();
    e.u64(cookie).u64(dev).u64(ino);
    e.str(&info.name).u32(info.identity.len() as u32);
    for i in &info.identity {
        e.u32(*i);
    }
    e.u8(info.daemon as u8)
        .str(&info.parent.name)
        .u32(info.parent.pid)
        .u8(info.parent.daemon as u8)
        .u8(super::method::start_method().to_u8())
        .u64(entry)
        .u64(func)
        .u32(global);
    out.encode_table(&mut e);
    e.bytes(&portable.args);
    Ok(e.0)
}

/// Why a child did not start: before any was made (the target is intact: the caller may
/// try again), a forkserver child that vanished before it said who it is (its target
/// went with it), or a child that failed (the caller waits for its exit code).
pub(crate) enum StartFailure {
    Before(ProcessError),
    Lost(ProcessError),
    Child(ChildState, String),
}

/// Launches the child, delivers its START message and waits for its report (READY or
/// FAILED, with its pid and, from a forkserver child, a pidfd of itself). Returns the
/// parent's view of the child once it is ready.
pub(crate) fn start_child(
    method: StartMethod,
    info: &StartInfo,
    portable: &Portable,
    mut out: Outbox,
    timeout: Duration,
) -> Result<ChildState, StartFailure> {
    let deadline = wire::deadline(timeout);
    let before = StartFailure::Before;
    let cookie = if method == StartMethod::Spawn {
        random_u64().map_err(before)?
    } else {
        0
    };
    let body = encode_start(info, cookie, portable, &mut out).map_err(before)?;
    let (ours, theirs) = wire::pair()
        .map_err(|e| wire_error("socketpair", e))
        .map_err(before)?;
    let mk = |pid, pidfd, status| {
        ChildState::new(
            pid,
            pidfd,
            status,
            info.name.clone(),
            info.daemon,
            info.parent.pid,
        )
    };
    if method == StartMethod::Spawn {
        let pid = spawn_self(&theirs, SPAWN_ENV, cookie).map_err(before)?;
        drop(theirs);
        let child = mk(pid, open_pidfd(pid).map_err(before)?, None);
        return match deliver(&ours, &body, &out, deadline) {
            Ok(()) => match report(&ours, Some(&child), deadline, false) {
                Ok(Report { failed: None, .. }) => Ok(child),
                Ok(Report {
                    failed: Some(reason),
                    ..
                })
                | Err(reason) => Err(StartFailure::Child(child, reason)),
            },
            Err(reason) => Err(StartFailure::Child(child, reason)),
        };
    }
    // ForkServer: the request, then START at once (it waits in the socket for the child,
    // which reads it right after the fork); the child's report says who it is.
    let status = super::server::request_fork(theirs, deadline).map_err(before)?;
    let failed = |reason: String| {
        StartFailure::Lost(ProcessError::ChildStart {
            pid: 0,
            exitcode: None,
            reason,
        })
    };
    deliver(&ours, &body, &out, deadline).map_err(failed)?;
    match report(&ours, None, deadline, true) {
        Ok(Report {
            pid,
            pidfd: Some(pidfd),
            failed: None,
        }) => Ok(mk(pid, pidfd, Some(status))),
        Ok(Report {
            pid,
            pidfd: Some(pidfd),
            failed: Some(reason),
        }) => Err(StartFailure::Child(mk(pid, pidfd, Some(status)), reason)),
        Ok(_) => Err(failed("the forkserver child's report has no pidfd".into())),
        Err(reason) => Err(failed(reason)),
    }
}

/// Sends START. A child that is gone or silent is left for `report` to explain.
fn deliver(
    ours: &OwnedFd,
    body: &[u8],
    out: &Outbox,
    deadline: Option<Instant>,
) -> Result<(), String> {
    match wire::send(ours.as_fd(), START, body, &out.fds(), deadline) {
        Ok(()) | Err(WireError::Eof | WireError::Timeout) => Ok(()),
        Err(e) => Err(format!("sending the start message: {e}")),
    }
}

fn wire_error(op: &'static str, e: WireError) -> ProcessError {
    match e {
        WireError::Os(_, source) => ProcessError::Os { op, source },
        other => ProcessError::Os {
            op,
            source: std::io::Error::other(other.to_string()),
        },
    }
}

fn open_pidfd(pid: Pid) -> Result<OwnedFd, ProcessError> {
    // The child cannot be reaped by anyone but us yet, so the pid names it.
    pidfd_open(pid, PidfdFlags::empty()).map_err(|e| {
        let _ = rustix::process::kill_process(pid, Signal::KILL);
        let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
        ProcessError::os("pidfd_open (Linux 5.3 or later is needed)", e)
    })
}

/// What a child reported: its pid, a pidfd of itself (forkserver children), and the
/// reason it failed, if it did.
struct Report {
    pid: Pid,
    pidfd: Option<OwnedFd>,
    failed: Option<String>,
}

/// Waits for the child's report on `sock` until `deadline`, watching `child`'s pidfd (a
/// spawned child) to notice a child that exits first. `Err(reason)`: no report (the child
/// exited or closed its socket first, sent garbage, or stayed silent).
fn report(
    sock: &OwnedFd,
    child: Option<&ChildState>,
    deadline: Option<Instant>,
    hook_ran: bool,
) -> Result<Report, String> {
    // What to do, by what went wrong. A forkserver child (`hook_ran`) is past `init`; a
    // spawned child that never reports in most often has a `main` that does not call
    // `init` first.
    let (exited, silent) = if hook_ran {
        (
            ": it crashed, or exited, before its target ran (its stderr says why)",
            ": it may be slow to start (raise Builder::start_timeout), or stuck before \
             shmproc::init()",
        )
    } else {
        (
            ": make shmproc::init() the first line of main (a spawned child runs main until \
             init; if main does call it first, the child crashed: its stderr says why)",
            ": make shmproc::init() the first line of main (a spawned child runs main until \
             init), or raise Builder::start_timeout if the child is slow to start",
        )
    };
    loop {
        let ts = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            Timespec {
                tv_sec: left.as_secs().min(i64::MAX as u64) as i64,
                tv_nsec: left.subsec_nanos() as _,
            }
        });
        let mut fds = vec![PollFd::new(sock, PollFlags::IN)];
        if let Some(c) = child {
            fds.push(PollFd::from_borrowed_fd(c.pidfd.as_fd(), PollFlags::IN));
        }
        let n = match poll(&mut fds, ts.as_ref()) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(format!("poll failed while waiting for the child: {e}")),
        };
        let sock_ready = !fds[0].revents().is_empty();
        let child_gone = fds.get(1).is_some_and(|f| !f.revents().is_empty());
        drop(fds);
        if sock_ready || child_gone {
            // A report may have been sent just before the child exited: read first.
            let quick = wire::deadline(Duration::from_millis(if sock_ready { 1000 } else { 0 }));
            match wire::recv_packet(sock.as_fd(), quick) {
                Ok(m) if m.kind == READY || m.kind == FAILED => {
                    let mut d = Dec::new(&m.body);
                    let pid = d
                        .u32("pid")
                        .ok()
                        .and_then(|p| Pid::from_raw(p as i32))
                        .ok_or("the child's report has no pid")?;
                    let failed = (m.kind == FAILED)
                        .then(|| String::from_utf8_lossy(&m.body[4..]).into_owned());
                    return Ok(Report {
                        pid,
                        pidfd: m.fds.into_iter().next(),
                        failed,
                    });
                }
                Ok(m) => return Err(format!("the child sent a message of kind {}", m.kind)),
                Err(WireError::Timeout) if child_gone => {
                    return Err(format!("the child exited before it reported in{exited}"));
                }
                Err(WireError::Eof) => {
                    return Err(format!(
                        "the child closed its socket before it reported in{exited}"
                    ));
                }
                Err(WireError::Timeout) => {}
                Err(e) => return Err(format!("the child's report: {e}")),
            }
        }
        if n == 0 && deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(format!("the child did not report in in time{silent}"));
        }
    }
}

/// Spawns `/proc/self/exe` with the parent's arguments, its environment plus
/// `var=<fd>:<cookie>`, and `sock` as descriptor `fd` (inherited across exec).
pub(crate) fn spawn_self(sock: &OwnedFd, var: &str, cookie: u64) -> Result<Pid, ProcessError> {
    let os = |op: &'static str| move |e: std::io::Error| ProcessError::Os { op, source: e };
    let target = sock.as_raw_fd();
    // A close-on-exec duplicate is what the child's file action copies onto `target`:
    // dup2 onto a different number clears close-on-exec on the copy (dup2 of a
    // descriptor onto itself would leave the flag set).
    let tmp = rustix::io::fcntl_dupfd_cloexec(sock, 0)
        .map_err(|e| ProcessError::os("fcntl(F_DUPFD_CLOEXEC)", e))?;
    let mut argv: Vec<CString> = Vec::new();
    for a in std::env::args_os() {
        use std::os::unix::ffi::OsStrExt;
        argv.push(CString::new(a.as_bytes()).map_err(|e| os("building argv")(e.into()))?);
    }
    if argv.is_empty() {
        argv.push(CString::from(c"shmproc-child"));
    }
    let mut envp: Vec<CString> = Vec::new();
    for (k, v) in std::env::vars_os() {
        use std::os::unix::ffi::OsStrExt;
        if k == SPAWN_ENV || k == SERVER_ENV {
            continue;
        }
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        if let Ok(c) = CString::new(kv) {
            envp.push(c);
        }
    }
    envp.push(
        CString::new(format!("{var}={target}:{cookie:016x}")).expect("no NUL in the variable"),
    );
    let mut argv_p: Vec<*mut libc::c_char> = argv
        .iter()
        .map(|c| c.as_ptr() as *mut libc::c_char)
        .collect();
    argv_p.push(std::ptr::null_mut());
    let mut envp_p: Vec<*mut libc::c_char> = envp
        .iter()
        .map(|c| c.as_ptr() as *mut libc::c_char)
        .collect();
    envp_p.push(std::ptr::null_mut());
    let path = c"/proc/self/exe";
    let mut pid: libc::pid_t = 0;
    // SAFETY: the file actions and attributes are initialised before use and destroyed
    // after; every pointer passed (path, argv, envp and their strings) lives until
    // posix_spawn returns; argv and envp end with a null pointer. posix_spawn is safe to
    // call from a multi-threaded process.
    // libc: rustix has no posix_spawn, and std's Command cannot put a descriptor at a
    // chosen number without a pre_exec hook (which makes it fork, not posix_spawn).
    let rc = unsafe {
        let mut fa: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        libc::posix_spawn_file_actions_init(&mut fa);
        libc::posix_spawnattr_init(&mut attr);
        let mut rc = libc::posix_spawn_file_actions_adddup2(&mut fa, tmp.as_raw_fd(), target);
        if rc == 0 {
            // The child starts with no signal blocked, whatever this thread blocks.
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::posix_spawnattr_setsigmask(&mut attr, &empty);
            libc::posix_spawnattr_setflags(&mut attr, libc::POSIX_SPAWN_SETSIGMASK as _);
            rc = libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                &fa,
                &attr,
                argv_p.as_ptr(),
                envp_p.as_ptr(),
            );
        }
        libc::posix_spawn_file_actions_destroy(&mut fa);
        libc::posix_spawnattr_destroy(&mut attr);
        rc
    };
    drop(tmp);
    if rc != 0 {
        return Err(ProcessError::Os {
            op: "posix_spawn of /proc/self/exe",
            source: std::io::Error::from_raw_os_error(rc),
        });
    }
    Pid::from_raw(pid).ok_or_else(|| ProcessError::Os {
        op: "posix_spawn",
        source: std::io::Error::other("pid 0"),
    })
}

/// The socket a parent left open for this process in `var`, if the variable names one
/// (a Unix `SOCK_SEQPACKET` socket at that number), and the cookie beside it.
fn inherited(var: &str) -> Option<(OwnedFd, u64)> {
    let v = std::env::var(var).ok()?;
    let (fd, cookie) = v.split_once(':')?;
    let fd: RawFd = fd.parse().ok()?;
    let cookie = u64::from_str_radix(cookie, 16).ok()?;
    if fd < 3 {
        return None;
    }
    // SAFETY: F_GETFD on a number only asks whether it is open.
    // libc: rustix's fcntl takes a BorrowedFd, i.e. a descriptor known to be open;
    // whether this number is open is the question.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: `fd` is open (checked just above) and stays open while borrowed here.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    if !wire::is_seqpacket(b) {
        return None;
    }
    // SAFETY: the parent that set `var` left this descriptor open for this process and
    // nothing else in it knows the number (it was just checked to be such a socket).
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let _ = rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC);
    Some((owned, cookie))
}

/// Removes `var` from the environment when no other thread can be reading it.
fn forget_env(var: &str) {
    if super::thread_count().is_ok_and(|n| n <= 1) {
        // SAFETY: only this thread exists (counted just above, and a thread cannot be
        // started but by this one): nothing reads or writes the environment concurrently.
        unsafe { std::env::remove_var(var) };
    }
}

/// Initialises shmproc: **call it as the first line of `main`**.
///
/// - In a child started with [`StartMethod::Spawn`], it runs the child's target and
///   exits: `main` goes no further (what comes before `init` runs in every spawned child
///   too, as with procspawn).
/// - In the program itself, it starts the forkserver for [`StartMethod::ForkServer`] by
///   forking while the program is still single-threaded (if threads already exist, as
///   under `#[tokio::main]`, the server is started on first use by running this binary
///   again instead). It also enables [`StartMethod::Spawn`] and lets the default start
///   method ([`StartMethod::Auto`]) use the forkserver once the program has threads.
///
/// Calling it again does nothing.
///
/// ```
/// shmproc::init(); // the first line of main
/// let mut p = shmproc::process::Process::builder()
///     .start_method(shmproc::process::StartMethod::Spawn)
///     .target(|| println!("hello from a fresh run of this binary"));
/// p.start()?;
/// assert_eq!(p.join()?, 0);
/// # Ok::<(), shmproc::process::ProcessError>(())
/// ```
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let mut first = false;
    ONCE.call_once(|| first = true);
    if !first {
        return;
    }
    if let Some((sock, cookie)) = inherited(SPAWN_ENV) {
        forget_env(SPAWN_ENV);
        // Relaxed: see `initialized`.
        INITIALIZED.store(true, Ordering::Relaxed);
        run_child(sock, cookie, None, None);
    }
    if let Some((sock, _)) = inherited(SERVER_ENV) {
        forget_env(SERVER_ENV);
        // Relaxed: see `initialized`.
        INITIALIZED.store(true, Ordering::Relaxed);
        super::server::serve(sock);
    }
    // Relaxed: see `initialized`.
    INITIALIZED.store(true, Ordering::Relaxed);
    // Worked out once, before the server is forked: its children inherit it.
    exe_id();
    if super::thread_count().is_ok_and(|n| n <= 1) {
        super::server::fork_at_init();
    }
}

/// Sends the child's report: READY, or FAILED with `reason`; with its pid and, in a
/// forkserver child (which the parent did not make), a pidfd of itself.
fn send_report(sock: &OwnedFd, failed: Option<&str>) {
    let me = rustix::process::getpid();
    let mut e = Enc::default();
    e.u32(me.as_raw_nonzero().get() as u32);
    let kind = match failed {
        Some(r) => {
            e.0.extend_from_slice(r.as_bytes());
            FAILED
        }
        None => READY,
    };
    // Relaxed: a flag of this process only, set before its one thread reads it.
    let pidfd = if CHILD_OF_SERVER.load(Ordering::Relaxed) {
        pidfd_open(me, PidfdFlags::empty()).ok()
    } else {
        None
    };
    let fds: Vec<BorrowedFd<'_>> = pidfd.iter().map(|f| f.as_fd()).collect();
    let _ = wire::send_packet(
        sock.as_fd(),
        kind,
        &e.0,
        &fds,
        wire::deadline(Duration::from_secs(5)),
    );
}

/// Set in a forkserver child (relaxed: written before anything reads it, one thread).
static CHILD_OF_SERVER: AtomicBool = AtomicBool::new(false);

/// A forkserver child's status pipe, and the pid it belongs to (a fork of the child
/// inherits it, and must not report through it).
static REPORT: OnceLock<(u32, OwnedFd)> = OnceLock::new();

/// In a forkserver child about to `_exit(code)`: writes the code to its status pipe, so
/// the parent reads it as soon as the pidfd says the child is gone, without waiting for
/// the server to reap it.
pub(crate) fn report_exit(code: i32) {
    if let Some((pid, fd)) = REPORT.get() {
        if *pid == crate::sync::liveness::current_pid() {
            let _ = rustix::io::write(fd, &code.to_le_bytes());
        }
    }
}

/// Leaves a child that could not start: the reason on stderr (and to the parent if the
/// socket is given), exit code 1.
fn fail(sock: Option<&OwnedFd>, name: &str, reason: &str) -> ! {
    if let Some(s) = sock {
        send_report(s, Some(reason));
    }
    let _ = writeln!(std::io::stderr(), "Process {name}:\n{reason}");
    report_exit(1);
    // SAFETY: leaving a child that has run nothing of its own yet.
    // libc: std has no `_exit`, and rustix's (runtime::exit_group) is for programs
    // without libc, outside its stable API.
    unsafe { libc::_exit(1) }
}

/// The child's side: receive START, become the process it describes, report, run the
/// target, exit. `server` is the forkserver's pid in a forkserver child (the parent a
/// daemon must die with); a spawned child's parent is the one in START.
pub(crate) fn run_child(
    sock: OwnedFd,
    cookie: u64,
    server: Option<u32>,
    status: Option<OwnedFd>,
) -> ! {
    if let Some(st) = status {
        // Relaxed: a flag of this process only, set before its one thread reads it.
        CHILD_OF_SERVER.store(true, Ordering::Relaxed);
        let _ = REPORT.set((crate::sync::liveness::current_pid(), st));
    }
    let m = match wire::recv(sock.as_fd(), MAX_START, wire::deadline(BOOT_TIMEOUT)) {
        Ok(m) if m.kind == START => m,
        Ok(m) => fail(
            Some(&sock),
            "(unknown)",
            &format!("a message of kind {} instead of START", m.kind),
        ),
        Err(e) => fail(
            None,
            "(unknown)",
            &format!("no start message from the parent: {e}"),
        ),
    };
    let mut d = Dec::new(&m.body);
    let parsed = (|| -> Result<_, WireError> {
        let got_cookie = d.u64("cookie")?;
        let exe = (d.u64("exe device")?, d.u64("exe inode")?);
        let name = d.str("name")?.to_owned();
        let n = d.u32("identity length")?;
        if n > 1024 {
            return Err(WireError::Garbage(format!("an identity of {n} numbers")));
        }
        let identity = (0..n)
            .map(|_| d.u32("identity"))
            .collect::<Result<Vec<_>, _>>()?;
        let daemon = d.u8("daemon")? != 0;
        let parent = ProcessInfo {
            name: d.str("parent name")?.to_owned(),
            pid: d.u32("parent pid")?,
            daemon: d.u8("parent daemon")? != 0,
        };
        let default = StartMethod::from_u8(d.u8("start method")?);
        let entry = d.u64("entry")?;
        let func = d.u64("function")?;
        let global = d.u32("global arena")?;
        Ok((
            got_cookie, exe, name, identity, daemon, parent, default, entry, func, global,
        ))
    })();
    let (got_cookie, exe, name, identity, daemon, parent, default, entry, func, global) =
        match parsed {
            Ok(p) => p,
            Err(e) => fail(
                Some(&sock),
                "(unknown)",
                &format!("a bad start message: {e}"),
            ),
        };
    if server.is_none() && got_cookie != cookie {
        fail(
            Some(&sock),
            &name,
            "the start message does not carry this child's cookie",
        );
    }
    if exe != exe_id() {
        fail(
            Some(&sock),
            &name,
            "the child runs another executable than its parent (was the binary replaced?)",
        );
    }
    // Become the process START describes (the registry of a fresh or forked process).
    {
        let mut reg = registry::lock();
        reg.me = registry::Me {
            name: Some(name.clone()),
            identity,
            daemon,
            parent: Some(parent.clone()),
        };
        reg.counter = 0;
        reg.pending = None;
    }
    if daemon {
        // Die with the parent; if it died before the prctl, die now.
        let expected = server.unwrap_or(parent.pid);
        let armed = rustix::process::set_parent_process_death_signal(Some(Signal::KILL)).is_ok();
        let ppid = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32);
        if !armed || ppid != expected {
            let _ = rustix::process::kill_process(rustix::process::getpid(), Signal::KILL);
            // SAFETY: leaving the child without running anything.
            // libc: std has no `_exit`, and rustix's (runtime::exit_group) is for programs
            // without libc, outside its stable API.
            unsafe { libc::_exit(1) };
        }
    }
    super::method::set_start_method(default);
    let mut inbox = match Inbox::decode(&mut d, m.fds) {
        Ok(i) => i,
        Err(e) => fail(Some(&sock), &name, &format!("a bad start message: {e}")),
    };
    let args = match d
        .bytes("arguments")
        .and_then(|a| d.finish("the start message").map(|()| a))
    {
        Ok(a) => a,
        Err(e) => fail(Some(&sock), &name, &format!("a bad start message: {e}")),
    };
    if global != u32::MAX {
        match inbox.arena(global) {
            Ok(g) => {
                super::travel::adopt(&g);
                Arena::install_global(g);
            }
            Err(e) => fail(
                Some(&sock),
                &name,
                &format!("the parent's global arena: {e}"),
            ),
        }
    }
    // SAFETY: `entry` is the offset of an `Entry` function in the parent's executable
    // (`encode_start` checked it lies in the anchor's object), and this process runs the
    // same file (checked above), so the address is that function here.
    let entry = unsafe { std::mem::transmute::<usize, Entry>(from_offset(entry)) };
    let func = if func == u64::MAX {
        0
    } else {
        from_offset(func)
    };
    let runner = match entry(func, args, &mut inbox) {
        Ok(r) => r,
        Err(reason) => fail(Some(&sock), &name, &reason),
    };
    drop(inbox);
    send_report(&sock, None);
    drop(sock);
    super::install_panic_hook();
    super::run_and_exit(&name, runner)
}
