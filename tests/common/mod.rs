//! A tiny test harness for multi-process tests (`harness = false` test targets).
//!
//! libtest runs every test on a thread of its own, so a test that forks would fork a
//! multi-threaded process. This harness runs each test in a `fork`ed, single-threaded
//! child of its own, in a process group of its own, under a watchdog: a test that hangs
//! is killed (with every process it started) and reported as failed, never wedging CI.
//!
//! ```ignore
//! mod common;
//! fn main() { common::run(&[("counter_is_exact", counter_is_exact)]); }
//! ```
//!
//! Arguments: a substring filters tests by name; `SHMPROC_TEST_TIMEOUT` (seconds, default
//! 120) sets the watchdog. The last line is libtest's `test result: ...` summary.
#![allow(dead_code)]

use std::io::Write;
use std::time::{Duration, Instant};

/// One test: a name and a function that panics on failure.
pub type Test = (&'static str, fn());

/// Runs `tests` (each in its own forked process) and exits with 0 if all passed.
pub fn run(tests: &[Test]) {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let list_only = std::env::args().any(|a| a == "--list");
    let timeout = Duration::from_secs(
        std::env::var("SHMPROC_TEST_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(120),
    );
    let selected: Vec<&Test> = tests
        .iter()
        .filter(|(n, _)| filter.as_deref().is_none_or(|f| n.contains(f)))
        .collect();
    if list_only {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        return;
    }
    let started = Instant::now();
    println!("\nrunning {} tests", selected.len());
    let mut failed = Vec::new();
    for (name, f) in &selected {
        print!("test {name} ... ");
        std::io::stdout().flush().unwrap();
        let t0 = Instant::now();
        let outcome = run_one(*f, timeout);
        match outcome {
            Ok(()) => println!("ok ({:.2}s)", t0.elapsed().as_secs_f64()),
            Err(why) => {
                println!("FAILED ({why})");
                failed.push(*name);
            }
        }
    }
    let filtered = tests.len() - selected.len();
    if !failed.is_empty() {
        println!("\nfailures:");
        for n in &failed {
            println!("    {n}");
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; 0 ignored; 0 measured; {} filtered out; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failed.len(),
        failed.len(),
        filtered,
        started.elapsed().as_secs_f64()
    );
    std::process::exit(if failed.is_empty() { 0 } else { 101 });
}

fn run_one(f: fn(), timeout: Duration) -> Result<(), String> {
    std::io::stdout().flush().ok();
    std::io::stderr().flush().ok();
    // SAFETY: the harness is single-threaded (no test runs in this process), so the child
    // is a faithful copy; it runs the test and leaves through `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork failed: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: plain syscalls in the child.
        unsafe { libc::setpgid(0, 0) };
        let ok = std::panic::catch_unwind(f).is_ok();
        std::io::stdout().flush().ok();
        std::io::stderr().flush().ok();
        // SAFETY: leave without running the harness's exit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 101 }) };
    }
    // Put the child in its own group from the parent too (whichever runs first wins).
    // SAFETY: plain syscall on our own child.
    unsafe { libc::setpgid(pid, pid) };
    let deadline = Instant::now() + timeout;
    let mut status = 0;
    let result = loop {
        // SAFETY: plain syscall on our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                Ok(())
            } else if libc::WIFSIGNALED(status) {
                Err(format!("killed by signal {}", libc::WTERMSIG(status)))
            } else {
                Err(format!("exit status {}", libc::WEXITSTATUS(status)))
            };
        }
        if Instant::now() >= deadline {
            // SAFETY: plain syscalls on our own child's process group.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            break Err(format!("timed out after {timeout:?}: watchdog killed it"));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    // Leftovers of the test (children it did not reap) go with it.
    // SAFETY: plain syscall on the test's process group.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    result
}

/// A child process started by [`fork`], for tests that do not use `shmproc::Process`.
#[derive(Debug)]
pub struct Child {
    pub pid: i32,
}

/// Forks; the child runs `f` and exits 0, or 101 if `f` panics.
pub fn fork(f: impl FnOnce()) -> Child {
    std::io::stdout().flush().ok();
    std::io::stderr().flush().ok();
    // SAFETY: test processes run on one thread (see `run`).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_ok();
        std::io::stdout().flush().ok();
        std::io::stderr().flush().ok();
        // SAFETY: leave without running the parent's exit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 101 }) };
    }
    Child { pid }
}

impl Child {
    /// Waits for the child; returns its exit code, or `-signal` if it was killed.
    pub fn wait(&self) -> i32 {
        let mut status = 0;
        // SAFETY: plain syscall on our own child.
        let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
        assert_eq!(r, self.pid, "waitpid failed");
        if libc::WIFSIGNALED(status) {
            -libc::WTERMSIG(status)
        } else {
            libc::WEXITSTATUS(status)
        }
    }

    /// Waits and asserts that the child exited with 0.
    pub fn join(self) {
        let code = self.wait();
        assert_eq!(code, 0, "child {} failed with {code}", self.pid);
    }

    /// Sends `sig` to the child.
    pub fn signal(&self, sig: i32) {
        // SAFETY: plain syscall on our own child.
        unsafe { libc::kill(self.pid, sig) };
    }
}

/// At least `n` zeroed `AtomicU64`s in `MAP_SHARED` memory, inherited by forked children.
/// Use indices 0, 16, 32, ... to keep counters on cache lines of their own. The mapping is
/// leaked: it lives as long as the test process.
pub fn shared_counters(n: usize) -> &'static [std::sync::atomic::AtomicU64] {
    use rustix::mm::{mmap_anonymous, MapFlags, ProtFlags};
    let len = (n * 128).max(4096);
    // SAFETY: a fresh anonymous shared mapping that is never unmapped.
    let p = unsafe {
        mmap_anonymous(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
        )
    }
    .expect("mmap");
    let base = p.cast::<std::sync::atomic::AtomicU64>();
    // SAFETY: `len` bytes hold at least `n * 16` u64s; zero is a valid AtomicU64.
    unsafe { std::slice::from_raw_parts(base, (len / 8).min(n * 16)) }
}

/// A one-shot readiness signal between processes: an OS pipe. `notify` writes a byte,
/// `wait` blocks until one arrives (or fails when every writer is gone).
pub struct Signal {
    r: std::os::fd::OwnedFd,
    w: std::os::fd::OwnedFd,
}

impl Signal {
    pub fn new() -> Signal {
        let (r, w) = rustix::pipe::pipe().expect("pipe");
        Signal { r, w }
    }
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

/// Removes the named arena `/dev/shm/<name>` when dropped, so a test that fails (panics)
/// leaves nothing behind.
pub struct UnlinkOnDrop(pub String);

impl Drop for UnlinkOnDrop {
    fn drop(&mut self) {
        let _ = shmproc::Arena::unlink_name(&self.0);
    }
}
