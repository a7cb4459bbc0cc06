//! The fork-per-test harness for multi-process tests (`harness = false` test targets).
//!
//! libtest runs every test on a thread of its own, so a test that forks would fork a
//! multi-threaded process. This harness runs each test in a `fork`ed, single-threaded
//! child of its own, in a process group of its own, under a watchdog: a test that hangs
//! is killed (with every process it started) and reported as failed, never wedging CI.
//!
//! ```ignore
//! fn counter_is_exact() { /* ... */ }
//! fn lock_survives_fork() { /* ... */ }
//!
//! shmproc_testkit::main!(counter_is_exact, lock_survives_fork);
//! ```
//!
//! A file whose `main` does more (e.g. dispatches a re-executed child first) calls
//! [`run`] with [`tests!`](crate::tests): `shmproc_testkit::run(&shmproc_testkit::tests![a, b])`.
//!
//! Arguments: a substring filters tests by name (`--exact` makes it a whole name);
//! `--list` lists them; `SHMPROC_TEST_TIMEOUT` (seconds, default 120) sets the watchdog.
//! The last line is libtest's `test result: ...` summary.

use std::io::Write;
use std::time::{Duration, Instant};

/// One test: a name and a function that panics on failure.
pub type Test = (&'static str, fn());

/// The `[Test]` array of the test functions named, each under its own name: every name is
/// written once. A name may carry `#[cfg(...)]` attributes (for tests of optional
/// features).
///
/// ```
/// fn one() {}
/// fn two() {}
/// let tests = shmproc_testkit::tests![one, two, #[cfg(any())] three];
/// assert_eq!(tests.map(|(name, _)| name), ["one", "two"]);
/// ```
#[macro_export]
macro_rules! tests {
    ($($(#[$attr:meta])* $test:ident),+ $(,)?) => {
        [$($(#[$attr])* (::core::stringify!($test), $test as fn())),+]
    };
}

/// `fn main` of a `harness = false` test file: [`run`] over the test functions named
/// (as in [`tests!`](crate::tests)).
///
/// ```ignore
/// shmproc_testkit::main!(counter_is_exact, lock_survives_fork, #[cfg(feature = "serde")] serde_values);
/// ```
#[macro_export]
macro_rules! main {
    ($($(#[$attr:meta])* $test:ident),+ $(,)?) => {
        fn main() {
            $crate::run(&$crate::tests![$($(#[$attr])* $test),+]);
        }
    };
}

/// The watchdog's limit per test: `SHMPROC_TEST_TIMEOUT` seconds, 120 by default.
pub fn test_timeout() -> Duration {
    Duration::from_secs(
        std::env::var("SHMPROC_TEST_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(120),
    )
}

/// Runs `tests` (each in its own forked process, under the watchdog) and exits the process
/// with 0 if all passed, 101 otherwise.
pub fn run(tests: &[Test]) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filter = args.iter().find(|a| !a.starts_with('-'));
    let exact = args.iter().any(|a| a == "--exact");
    let list_only = args.iter().any(|a| a == "--list");
    let timeout = test_timeout();
    let selected: Vec<&Test> = tests
        .iter()
        .filter(|(n, _)| match filter {
            None => true,
            Some(f) if exact => n == f,
            Some(f) => n.contains(f.as_str()),
        })
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
        std::io::stdout().flush().ok();
        let t0 = Instant::now();
        match run_one(*f, timeout) {
            Ok(()) => println!("ok ({:.2}s)", t0.elapsed().as_secs_f64()),
            Err(why) => {
                println!("FAILED ({why})");
                failed.push(*name);
            }
        }
    }
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
        tests.len() - selected.len(),
        started.elapsed().as_secs_f64()
    );
    std::process::exit(if failed.is_empty() { 0 } else { 101 });
}

/// Runs `f` in a forked child, in a process group of its own; kills the group when `f`
/// returns or the watchdog fires.
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
        // SAFETY: a plain syscall on this (child) process.
        unsafe { libc::setpgid(0, 0) };
        let ok = std::panic::catch_unwind(f).is_ok();
        std::io::stdout().flush().ok();
        std::io::stderr().flush().ok();
        // SAFETY: leaves without running the harness's exit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 101 }) };
    }
    // Put the child in its own group from the parent too (whichever runs first wins).
    // SAFETY: a plain syscall on our own child.
    unsafe { libc::setpgid(pid, pid) };
    let child = crate::Child { pid };
    let result = match child.wait_timeout(timeout) {
        Some(0) => Ok(()),
        Some(code) if code < 0 => Err(format!("killed by signal {}", -code)),
        Some(code) => Err(format!("exit status {code}")),
        None => {
            // SAFETY: a plain syscall on our own child's process group.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            child.kill();
            Err(format!("timed out after {timeout:?}: watchdog killed it"))
        }
    };
    // Leftovers of the test (children it did not reap) go with it.
    // SAFETY: a plain syscall on the test's process group.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    result
}

/// Polls `cond` (every millisecond, sleeping in between) until it holds: for a state that
/// no primitive can be awaited for, such as "two parties are asleep in the barrier".
///
/// There is no time limit: a state that never comes is a hang, and the harness's watchdog
/// ends the test. After 10 s it says on stderr what it is still waiting for, once, so that
/// the log of a test the watchdog killed names the state that never came.
///
/// ```
/// let mut n = 0;
/// shmproc_testkit::eventually("three polls", || {
///     n += 1;
///     n == 3
/// });
/// ```
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    let mut said = false;
    while !cond() {
        if !said && t.elapsed() >= Duration::from_secs(10) {
            eprintln!("[pid {}] still waiting for: {what}", std::process::id());
            said = true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
