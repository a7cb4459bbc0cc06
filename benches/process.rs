//! Spawn + join latency of `shmproc::process::Process` against a raw `fork` + `waitpid`,
//! in the same run.
//!
//! Subject: `Process::new(|| ())`, `start()`, `join()` (thread check, fork, pidfd, poll,
//! waitid, the child's bookkeeping and `_exit`). Baseline: `libc::fork()`, the child
//! `_exit(0)`s at once, the parent `waitpid`s. Target: a ratio within 1.2.

mod common;

use criterion::Criterion;
use shmproc::process::Process;
use std::time::{Duration, Instant};

fn raw_fork_waitpid(iters: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..iters {
        // SAFETY: the bench is single-threaded; the child leaves at once through `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: leaves without the parent's exit handlers.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: a plain syscall on our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(r, pid, "waitpid failed");
    }
    t.elapsed()
}

fn process_start_join(iters: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..iters {
        let mut p = Process::new(|| ());
        p.start().expect("start");
        assert_eq!(p.join().expect("join"), 0);
    }
    t.elapsed()
}

fn main() {
    // Sanity before timing: the subject does what it claims.
    let mut p = Process::new(|| std::process::exit(3));
    p.start().expect("start");
    assert_eq!(p.join().expect("join"), 3);

    let (warm, measure, samples) = if common::bench_mode() {
        (Duration::from_secs(1), Duration::from_secs(2), 20)
    } else {
        (Duration::from_millis(10), Duration::from_millis(20), 10)
    };
    let mut c = Criterion::default()
        .warm_up_time(warm)
        .measurement_time(measure)
        .sample_size(samples)
        .configure_from_args();
    {
        let mut g = c.benchmark_group("spawn_join");
        g.bench_function("raw_fork_waitpid", |b| b.iter_custom(raw_fork_waitpid));
        g.bench_function("process_start_join", |b| b.iter_custom(process_start_join));
        g.finish();
    }
    c.final_summary();

    common::paired(
        "process spawn+join vs fork+waitpid",
        "spawn",
        // Small batches, many reps: a spawn's cost swings with what the other vCPU is
        // doing, so baseline and subject are best compared a few milliseconds apart.
        20,
        120,
        raw_fork_waitpid,
        process_start_join,
    );
}
