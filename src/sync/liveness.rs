//! Who holds a lock, and whether that process is still alive.
//!
//! Locks record their holder as a process id in the lock word, plus the holder's start
//! time (field 22 of `/proc/<pid>/stat`, in clock ticks since boot) in a second word. A
//! waiter that has been blocked for a while asks [`Liveness::is_dead`] about the holder:
//! the holder is dead when `/proc/<pid>` is gone or is a zombie (killed, not yet reaped),
//! or when the pid now belongs to a process that started at another time (pid reuse).
//!
//! The check reads one small procfs file (a few microseconds) and runs only on slow paths:
//! never while a lock is free or held briefly.

use crate::sync::plain::{AtomicU32, AtomicU64, Ordering};
use crate::sync::wait::Recheck;
use std::sync::Once;

/// The largest pid Linux hands out is 2^22; lock words keep the pid in their low 30 bits.
pub(crate) const PID_MASK: u32 = (1 << 30) - 1;

/// A lock's `owner_start` word holds the holder's pid above this bit and its start time
/// below.
pub(crate) const IDENT_PID_SHIFT: u32 = 40;
/// The start-time bits of an identity.
pub(crate) const IDENT_START_MASK: u64 = (1 << IDENT_PID_SHIFT) - 1;

/// A holder's identity: pid and start time (in clock ticks: 2^40 of them are centuries).
#[inline]
pub(crate) fn ident(pid: u32, start: u64) -> u64 {
    (u64::from(pid) << IDENT_PID_SHIFT) | (start & IDENT_START_MASK)
}

/// The pid and start time of an identity made by [`ident`] (the pid masked to its bits, so
/// an identity read from shared memory never names an impossible pid).
#[inline]
pub(crate) fn split_ident(id: u64) -> (u32, u64) {
    (
        (id >> IDENT_PID_SHIFT) as u32 & PID_MASK,
        id & IDENT_START_MASK,
    )
}

static PID: AtomicU32 = AtomicU32::new(0);
static START: AtomicU64 = AtomicU64::new(0);
static IDENT: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();

extern "C" fn forget_after_fork() {
    // Runs in the child of every fork(3), in its only thread, before fork returns: the
    // cached identity belongs to the parent. Relaxed: no other thread exists yet.
    PID.store(0, Ordering::Relaxed);
    START.store(0, Ordering::Relaxed);
    IDENT.store(0, Ordering::Relaxed);
    for hook in &FORK_HOOKS {
        // Relaxed: registered (Release) before this process could fork with it in use.
        let h = hook.load(Ordering::Acquire);
        if h != 0 {
            // SAFETY: only `after_fork` stores here, and only `fn()` pointers.
            let f: fn() = unsafe { core::mem::transmute::<usize, fn()>(h as usize) };
            f();
        }
    }
}

/// The child hooks of [`after_fork`].
static FORK_HOOKS: [AtomicU64; 4] = [
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
];

/// Runs `hook` in the child of every later `fork`, in its only thread, before `fork`
/// returns there (with the identity caches): for per-thread caches of what belongs to the
/// parent (the queue's entries of the claimers' table). `hook` must be async-signal-safe
/// (touch only atomics and thread-locals without destructors). At most four hooks; a
/// hook registered twice runs once. Returns false when there was no room.
pub(crate) fn after_fork(hook: fn()) -> bool {
    current_pid(); // registers the handler
    let h = hook as usize as u64;
    for slot in &FORK_HOOKS {
        // AcqRel: publishes the hook to the handler's Acquire load.
        match slot.compare_exchange(0, h, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(v) if v == h => return true,
            Err(_) => {}
        }
    }
    false
}

/// This process's id, cached; the cache is dropped in the child of every `fork`.
///
/// The cache is what keeps `Lock::acquire` free of system calls: `getpid` is a syscall.
#[inline]
pub(crate) fn current_pid() -> u32 {
    // Relaxed: every thread of this process computes the same value; the cache carries no
    // other data with it.
    let pid = PID.load(Ordering::Relaxed);
    if pid != 0 {
        return pid;
    }
    current_pid_slow()
}

#[cold]
fn current_pid_slow() -> u32 {
    ATFORK.call_once(|| {
        // SAFETY: `forget_after_fork` is an `extern "C" fn()` that only stores to atomics,
        // which is async-signal-safe as fork's child handlers must be.
        // libc: `pthread_atfork` is libc's own facility; rustix has no wrapper.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(forget_after_fork)) };
        debug_assert_eq!(rc, 0, "pthread_atfork failed");
    });
    let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
    // Relaxed: see `current_pid`.
    PID.store(pid, Ordering::Relaxed);
    pid
}

/// The value cached in `cell`, computing it with `compute` on first use (0 means "not yet":
/// a computed 0 is computed again next time). Like `PID`, every such cache is dropped in
/// the child of a `fork` (`forget_after_fork`).
#[inline]
fn cached(cell: &AtomicU64, compute: fn() -> u64) -> u64 {
    // Relaxed: every thread of this process computes the same value; the cache carries no
    // other data with it.
    match cell.load(Ordering::Relaxed) {
        0 => fill(cell, compute),
        v => v,
    }
}

#[cold]
fn fill(cell: &AtomicU64, compute: fn() -> u64) -> u64 {
    let v = compute();
    // Relaxed: see `cached`.
    cell.store(v, Ordering::Relaxed);
    v
}

/// This process's start time, as the kernel reports it in `/proc/self/stat` (cached).
pub(crate) fn current_start_time() -> u64 {
    cached(&START, || {
        proc_stat(current_pid()).map(|p| p.start_time).unwrap_or(1)
    })
}

/// This process's [`ident`] (cached): one load on the path of every lock acquisition,
/// where composing it from the two caches cost a dozen instructions.
#[inline]
pub(crate) fn current_ident() -> u64 {
    // Never 0: the pid is not.
    cached(&IDENT, || ident(current_pid(), current_start_time()))
}

/// What `/proc/<pid>/stat` says of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// One-letter state: `R`, `S`, `D`, `Z` (zombie), `X` (dead), ...
    pub state: u8,
    /// Clock ticks since boot at which the process started.
    pub start_time: u64,
}

/// Reads `/proc/<pid>/stat`; `None` when the process does not exist.
pub(crate) fn proc_stat(pid: u32) -> Option<ProcStat> {
    use std::io::Read;
    // One read into a buffer the line fits: `std::fs::read` sizes its buffer from the
    // file's length, which procfs reports as 0, and grows it read by read (five reads of
    // 32 to 256 bytes for one line; `Process::start` reads its child's line).
    let mut file = std::fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    let mut buf = [0u8; 1024];
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                // The whole line came (procfs gives it in one read): no read for EOF.
                if buf[len - 1] == b'\n' {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    // The line is ~300 bytes (the command name at most 64); a longer one is cut, and
    // parsed only if its start time came before the cut.
    parse_stat(&buf[..len])
}

/// Parses the fields after the command name (which may itself contain spaces and `)`).
fn parse_stat(text: &[u8]) -> Option<ProcStat> {
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(text.get(close + 1..)?).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.bytes().next()?;
    // `state` is field 3; `starttime` is field 22, i.e. 19 fields further on.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

/// Decides whether the process recorded as a lock's holder is gone.
///
/// The real implementation asks procfs; loom models substitute a scripted one, so the
/// recovery path of every lock is model-checked without system calls.
pub trait Liveness {
    /// The id recorded for the caller (a pid, in `1..=PID_MASK`).
    fn me(&self) -> u32;
    /// The caller's start time, recorded next to its id.
    fn my_start(&self) -> u64;
    /// The calling thread's id, for locks held by a thread (an `RLock`): the kernel's
    /// tid for real processes; a model gives each of its threads its own.
    fn my_thread(&self) -> u32;
    /// True when `pid`, recorded with start time `start`, has certainly exited.
    fn is_dead(&self, pid: u32, start: u64) -> bool;

    /// The identity a lock records next to its word for the caller: its id and start
    /// time, packed (pid above bit 40, start time below). Provided; an implementation may
    /// cache it.
    fn my_ident(&self) -> u64 {
        ident(self.me(), self.my_start())
    }

    /// How often a sleeper wakes to look at what cannot wake it (a holder that may have
    /// died, a peer that may be gone): the one re-check schedule, [`Recheck::LIVENESS`]
    /// for real processes. `None`: never (a model, where a lost wake-up must show up as a
    /// deadlock instead of being papered over by the periodic look).
    fn recheck(&self) -> Option<Recheck> {
        Some(Recheck::LIVENESS)
    }

    /// Whether a waiter blocked on a lock held by `holder` should wake now and then (on
    /// the [`recheck`](Self::recheck) schedule) to check on it.
    ///
    /// By default, whenever it re-checks at all. A model returns true only for a holder
    /// it has already killed: its other waiters sleep without a deadline, so a lost
    /// wake-up shows up as a deadlock.
    fn watches_holder(&self, holder: u32) -> bool {
        let _ = holder;
        self.recheck().is_some()
    }

    /// For a wait on a party that no lock word names (a pipe's other end, known by its
    /// liveness token): true once every copy of it is gone. By default never.
    fn peer_gone(&self) -> bool {
        false
    }

    /// True when thread `tid` of the live process `pid` has certainly exited (its record
    /// in a table, e.g. a queue's claimers, may be taken over). By default never.
    fn thread_gone(&self, pid: u32, tid: u32) -> bool {
        let _ = (pid, tid);
        false
    }
}

/// Liveness of real processes, through procfs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Procfs;

impl Liveness for Procfs {
    #[inline]
    fn me(&self) -> u32 {
        current_pid()
    }

    #[inline]
    fn my_start(&self) -> u64 {
        current_start_time()
    }

    #[inline]
    fn my_ident(&self) -> u64 {
        current_ident()
    }

    #[inline]
    fn my_thread(&self) -> u32 {
        current_tid()
    }

    fn is_dead(&self, pid: u32, start: u64) -> bool {
        if pid == current_pid() {
            return false;
        }
        match proc_stat(pid) {
            None => true,
            Some(s) if s.state == b'Z' || s.state == b'X' => true,
            // The pid is alive, but it started at another time than the holder did: the
            // holder died and the pid was handed out again. `start == 0` means the holder
            // had not yet recorded its start time: no verdict.
            Some(s) => start != 0 && s.start_time != start,
        }
    }

    fn thread_gone(&self, pid: u32, tid: u32) -> bool {
        // A thread id is not reused while its process's task entry exists; one of another
        // process is not under this process's `task/`.
        tid != 0 && pid != 0 && !std::path::Path::new(&format!("/proc/{pid}/task/{tid}")).exists()
    }
}

/// A scripted process, for the loom models and unit tests: the one [`Liveness`] of the
/// models (each algorithm's model used to carry its own copy).
///
/// It has a pid and a thread id of its own, and a view of who is dead that the processes
/// of one model share ([`team`](Self::team), [`kill`](Self::kill)). Every scripted
/// process "started" at `100 + pid`, so a recorded start time that is not that one means
/// the pid was reused, as [`Procfs`] decides; a start time of 0 gives no verdict.
///
/// `watch` decides [`watches_holder`](Liveness::watches_holder): a model whose waiters
/// must not poll (so that a lost wake-up shows up as a deadlock instead of being papered
/// over by the periodic check) leaves it off; a model of a holder's death turns it on,
/// and its waiters then poll only a holder that is already dead; a model whose holder
/// dies while others wait makes them poll every holder ([`watching`](Self::watching)).
///
/// ```
/// use shmproc::raw::sync::liveness::{Liveness, Scripted};
/// let team = Scripted::team(2, true);
/// assert!(!team[0].is_dead(2, 0));
/// team[0].kill(2);
/// assert!(team[1].is_dead(2, 0)); // the view of death is shared
/// assert!(team[0].watches_holder(2));
/// ```
#[derive(Clone, Debug)]
pub struct Scripted {
    pid: u32,
    thread: u32,
    watch: bool,
    always: bool,
    survivor: bool,
    peer_gone: bool,
    dead: std::sync::Arc<crate::sync::AtomicU32>,
}

impl Scripted {
    /// Process `pid` (thread 1) in a world where nobody dies and waiters never poll.
    pub fn alive(pid: u32) -> Scripted {
        Scripted {
            pid,
            thread: 1,
            watch: false,
            always: false,
            survivor: false,
            peer_gone: false,
            dead: std::sync::Arc::new(crate::sync::AtomicU32::new(0)),
        }
    }

    /// Processes `1..=n`, sharing one view of who died; their waiters poll a dead holder
    /// when `watch` is set.
    pub fn team(n: u32, watch: bool) -> Vec<Scripted> {
        let first = Scripted {
            watch,
            ..Scripted::alive(1)
        };
        (1..=n)
            .map(|pid| Scripted {
                pid,
                ..first.clone()
            })
            .collect()
    }

    /// Process `pid` for whom every other process is dead (it has survived them all).
    pub fn survivor(pid: u32) -> Scripted {
        Scripted {
            survivor: true,
            ..Scripted::alive(pid)
        }
    }

    /// The same process, for which the peer of a pipe is gone and every wait looks again
    /// at once: so no wait can block (the fuzz targets).
    pub fn peer_gone(&self) -> Scripted {
        Scripted {
            peer_gone: true,
            watch: true,
            ..self.clone()
        }
    }

    /// The same process, whose waiters look at every holder now and then, live or dead,
    /// as real processes do ([`Recheck::LIVENESS`]): for a model whose holder dies while
    /// others already wait (and for unit tests, where a poll costs nothing).
    pub fn watching(&self) -> Scripted {
        Scripted {
            watch: true,
            always: true,
            ..self.clone()
        }
    }

    /// The same process, as its thread `thread`.
    pub fn thread(&self, thread: u32) -> Scripted {
        Scripted {
            thread,
            ..self.clone()
        }
    }

    /// Marks process `pid` dead, for every member of the team. Under loom this is
    /// progress ([`futex::progress`](crate::sync::futex::progress)): a party napping until
    /// something happens (a survivor waiting to look at a holder again) looks now.
    pub fn kill(&self, pid: u32) {
        self.dead.store(pid, crate::sync::Ordering::SeqCst);
        crate::sync::futex::progress();
    }

    /// The start time every scripted process `pid` has.
    pub fn start_of(pid: u32) -> u64 {
        100 + u64::from(pid)
    }
}

impl Liveness for Scripted {
    fn me(&self) -> u32 {
        self.pid
    }
    fn my_start(&self) -> u64 {
        Scripted::start_of(self.pid)
    }
    fn my_thread(&self) -> u32 {
        self.thread
    }
    fn is_dead(&self, pid: u32, start: u64) -> bool {
        (self.survivor && pid != self.pid)
            || self.dead.load(crate::sync::Ordering::SeqCst) == pid
            || (start != 0 && start != Scripted::start_of(pid))
    }
    fn recheck(&self) -> Option<Recheck> {
        match (self.watch, self.peer_gone) {
            (_, true) => Some(Recheck::new(
                std::time::Duration::ZERO,
                std::time::Duration::ZERO,
            )),
            (true, false) => Some(Recheck::LIVENESS),
            (false, false) => None,
        }
    }
    fn watches_holder(&self, holder: u32) -> bool {
        self.watch && (self.always || self.is_dead(holder, 0))
    }
    fn peer_gone(&self) -> bool {
        self.peer_gone
    }
}

// ---------------------------------------------------------------------------------------
// Thread identity.

/// This thread's id for RLock ownership: the kernel tid, cached per thread and re-read
/// when the cached pid is not the current one (i.e. after `fork`).
pub fn current_tid() -> u32 {
    use std::cell::Cell;
    thread_local! {
        static CACHE: Cell<(u32, u32)> = const { Cell::new((0, 0)) };
    }
    let pid = current_pid();
    CACHE.with(|c| {
        let (cached_pid, tid) = c.get();
        if cached_pid == pid {
            return tid;
        }
        let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
        c.set((pid, tid));
        tid
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_command_name_with_parens_and_spaces() {
        let line =
            b"42 (a) b (c)) S 1 42 42 0 -1 4194304 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.state, b'S');
        assert_eq!(s.start_time, 987654);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_stat(b"no paren here"), None);
        assert_eq!(parse_stat(b"1 (x) S 1 2"), None);
    }

    #[test]
    fn this_process_is_alive_and_pid_is_cached() {
        let me = current_pid();
        assert_eq!(me, std::process::id());
        assert!(!Procfs.is_dead(me, current_start_time()));
        assert!(current_start_time() > 0);
    }

    #[test]
    fn a_reaped_child_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start = proc_stat(pid).map(|s| s.start_time).unwrap_or(0);
        child.wait().unwrap();
        assert!(Procfs.is_dead(pid, start));
    }
}
