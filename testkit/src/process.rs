//! Process helpers: fork a child that runs a closure, reap it (with or without a timeout),
//! kill it; shared anonymous memory that forked children inherit; CPU pinning; a one-shot
//! readiness signal between processes.

use std::io::Write;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

/// A child process started by [`fork`].
///
/// Nothing happens when it is dropped: reap it with [`wait`](Child::wait),
/// [`join`](Child::join), [`wait_timeout`](Child::wait_timeout) or [`kill`](Child::kill)
/// (the harness kills a test's leftovers when the test ends).
#[derive(Debug)]
pub struct Child {
    /// The child's pid.
    pub pid: i32,
}

/// Forks; the child runs `f` and leaves with `_exit(0)`, or `_exit(101)` if `f` panics
/// (never returning into the caller's code, and never running the parent's exit handlers).
///
/// Call it from a single-threaded process (the test harness and the benches are): the
/// child of a multi-threaded process may only make async-signal-safe calls.
pub fn fork(f: impl FnOnce()) -> Child {
    std::io::stdout().flush().ok();
    std::io::stderr().flush().ok();
    // SAFETY: callers run single-threaded (see above), so the child is a faithful copy.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_ok();
        std::io::stdout().flush().ok();
        std::io::stderr().flush().ok();
        // SAFETY: leaves without running the parent's exit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 101 }) };
    }
    Child { pid }
}

/// The exit code of a `waitpid` status: the code, or `-signal` if the child was killed.
fn code(status: i32) -> i32 {
    if libc::WIFSIGNALED(status) {
        -libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    }
}

impl Child {
    /// Waits for the child; returns its exit code, or `-signal` if it was killed.
    pub fn wait(&self) -> i32 {
        let mut status = 0;
        loop {
            // SAFETY: a plain syscall on our own child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r == self.pid {
                return code(status);
            }
            let e = std::io::Error::last_os_error();
            assert_eq!(e.raw_os_error(), Some(libc::EINTR), "waitpid: {e}");
        }
    }

    /// Waits at most `timeout` for the child: its exit code (as [`wait`](Child::wait)), or
    /// `None` if it still runs (it is left running, unreaped).
    pub fn wait_timeout(&self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        let mut status = 0;
        loop {
            // SAFETY: a plain syscall on our own child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if r == self.pid {
                return Some(code(status));
            }
            assert!(r == 0, "waitpid: {}", std::io::Error::last_os_error());
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits and asserts that the child exited with 0.
    pub fn join(self) {
        let code = self.wait();
        assert_eq!(code, 0, "child {} failed with {code}", self.pid);
    }

    /// Sends `sig` to the child.
    pub fn signal(&self, sig: i32) {
        // SAFETY: a plain syscall on our own child.
        unsafe { libc::kill(self.pid, sig) };
    }

    /// Kills the child (`SIGKILL`) and reaps it; returns its exit code as
    /// [`wait`](Child::wait) does (`-9` unless it had already exited).
    pub fn kill(self) -> i32 {
        self.signal(libc::SIGKILL);
        self.wait()
    }
}

/// Zeroed `MAP_SHARED | MAP_ANONYMOUS` memory, inherited by `fork`ed children (the same
/// memory in every process), unmapped when dropped.
#[derive(Debug)]
pub struct SharedPage {
    ptr: *mut u8,
    len: usize,
}

impl SharedPage {
    /// Maps `len` bytes (rounded up to whole pages by the kernel), zeroed.
    pub fn new(len: usize) -> SharedPage {
        use rustix::mm::{mmap_anonymous, MapFlags, ProtFlags};
        // SAFETY: a fresh anonymous mapping; nothing else refers to it.
        let ptr = unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
            )
        }
        .expect("mmap");
        SharedPage {
            ptr: ptr.cast(),
            len,
        }
    }

    /// The start of the mapping (page-aligned).
    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// The `i`-th 128-byte-aligned `AtomicU64` of the page (a cache-line pair of its own).
    pub fn atomic(&self, i: usize) -> &AtomicU64 {
        assert!((i + 1) * 128 <= self.len);
        // SAFETY: in bounds, aligned, zero-initialised, shared for the page's lifetime.
        unsafe { &*self.ptr.add(i * 128).cast::<AtomicU64>() }
    }

    /// The `i`-th 128-byte-aligned `AtomicU32` of the page: the same word as the low half
    /// of [`atomic(i)`](SharedPage::atomic) (use one or the other), usable as a futex.
    pub fn word(&self, i: usize) -> &AtomicU32 {
        assert!((i + 1) * 128 <= self.len);
        // SAFETY: in bounds, aligned, zero-initialised, shared for the page's lifetime.
        unsafe { &*self.ptr.add(i * 128).cast::<AtomicU32>() }
    }

    /// An `AtomicU32` 64 bytes into the `i`-th 128-byte slot: the second cache line of
    /// the slot whose first holds [`atomic(i)`](SharedPage::atomic).
    pub fn atomic32(&self, i: usize) -> &AtomicU32 {
        assert!((i + 1) * 128 <= self.len);
        // SAFETY: in bounds, aligned, zero-initialised, shared for the page's lifetime.
        unsafe { &*self.ptr.add(i * 128 + 64).cast::<AtomicU32>() }
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping; the references it handed out borrow `self`.
        unsafe { rustix::mm::munmap(self.ptr.cast(), self.len).ok() };
    }
}

/// At least `n` zeroed `AtomicU64`s in `MAP_SHARED` memory, inherited by forked children.
/// Use indices 0, 16, 32, ... to keep counters on cache lines of their own. The mapping is
/// leaked: it lives as long as the process.
pub fn shared_counters(n: usize) -> &'static [AtomicU64] {
    let page = SharedPage::new((n * 128).max(4096));
    let (ptr, len) = (page.ptr, page.len);
    std::mem::forget(page);
    // SAFETY: `len` bytes hold at least `n * 16` u64s, zero is a valid AtomicU64, and the
    // mapping is never unmapped (forgotten above).
    unsafe { std::slice::from_raw_parts(ptr.cast::<AtomicU64>(), (len / 8).min(n * 16)) }
}

/// The CPUs this process may run on, or `None` if the kernel would not say.
fn affinity() -> Option<libc::cpu_set_t> {
    // SAFETY: a zeroed cpu_set_t is valid; a plain syscall on this process.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        (libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0)
            .then_some(set)
    }
}

/// Restricts this process to `set`; false if the kernel refused.
fn set_affinity(set: &libc::cpu_set_t) -> bool {
    // SAFETY: a plain syscall on this process with a valid cpu_set_t.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) == 0 }
}

/// The number of CPUs online.
pub fn cpus_online() -> usize {
    // SAFETY: a plain libc call.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    n.max(1) as usize
}

/// Pins the calling process to CPU `cpu` until the returned guard is dropped (which
/// restores the CPUs it had); a no-op on a machine with fewer than two CPUs.
///
/// For pairs whose cost is a cross-CPU wake-up: left to itself the scheduler sometimes
/// runs both processes of a futex ping-pong on one CPU (a same-CPU switch, ~4 µs) and
/// sometimes on two (an IPI to an idle vCPU, ~20-40 µs), and the two sides of a pair do
/// not land the same way, so the ratio measured the lottery (0.19 and 7.6 on the same
/// code). Pinned, every wake-up of both sides crosses CPUs. A child forked while the
/// guard lives inherits the pin and calls [`pin_apart`] (the kit's own children do).
#[derive(Debug)]
pub struct Pinned(Option<libc::cpu_set_t>);

impl Pinned {
    /// Pins this process to `cpu`.
    pub fn to(cpu: usize) -> Pinned {
        if cpus_online() < 2 {
            return Pinned(None);
        }
        let Some(old) = affinity() else {
            return Pinned(None);
        };
        // SAFETY: a zeroed cpu_set_t is valid; CPU_SET checks `cpu` against the set's size.
        let set = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            set
        };
        Pinned(set_affinity(&set).then_some(old))
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            set_affinity(old);
        }
    }
}

/// In a child forked by a process pinned to one CPU ([`Pinned`]): pins the child to
/// another CPU (the lowest other one online), so that parent and child never share one.
/// A no-op when the process may run on more than one CPU, or the machine has one.
///
/// The kit's spinning and futex peers ([`Floor`](crate::Floor),
/// [`FutexPingPong`](crate::FutexPingPong)) call it first thing: a spinning peer that
/// inherited its parent's single CPU would take a time slice per round trip.
pub fn pin_apart() {
    let Some(set) = affinity() else { return };
    // SAFETY: CPU_COUNT only reads the set.
    if unsafe { libc::CPU_COUNT(&set) } != 1 {
        return;
    }
    // SAFETY: CPU_ISSET only reads the set, and checks `c` against its size.
    let mine = (0..libc::CPU_SETSIZE as usize).find(|&c| unsafe { libc::CPU_ISSET(c, &set) });
    if let Some(other) = (0..cpus_online()).find(|&c| Some(c) != mine) {
        std::mem::forget(Pinned::to(other));
    }
}

/// A one-shot readiness signal between processes: an OS pipe. [`notify`](Signal::notify)
/// writes a byte, [`wait`](Signal::wait) blocks until one arrives (or fails when every
/// writer is gone).
#[derive(Debug)]
pub struct Signal {
    r: std::os::fd::OwnedFd,
    w: std::os::fd::OwnedFd,
}

impl Default for Signal {
    fn default() -> Self {
        Self::new()
    }
}

impl Signal {
    /// A new signal (a pipe), to be inherited by children forked after.
    pub fn new() -> Signal {
        let (r, w) = rustix::pipe::pipe().expect("pipe");
        Signal { r, w }
    }

    /// Sends one notification.
    pub fn notify(&self) {
        rustix::io::write(&self.w, &[1]).expect("write");
    }

    /// Blocks for one notification; returns false on EOF.
    pub fn wait(&self) -> bool {
        let mut b = [0u8; 1];
        loop {
            match rustix::io::read(&self.r, &mut b) {
                Ok(1) => return true,
                Ok(_) => return false,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => panic!("read: {e}"),
            }
        }
    }
}

/// Removes the POSIX shared-memory object `/dev/shm/<name>` (a named arena) when dropped,
/// so that a test that fails (panics) leaves nothing behind. A name that is already gone
/// is fine.
#[derive(Debug)]
pub struct UnlinkOnDrop(pub String);

impl Drop for UnlinkOnDrop {
    fn drop(&mut self) {
        let _ = rustix::shm::unlink(format!("/{}", self.0).as_str());
    }
}
