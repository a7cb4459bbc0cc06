//! Start + join latency of `shmproc::process::Process` under each start method, against
//! a raw `fork` + `waitpid`, procspawn's spawn + join, and Python's `spawn` /
//! `forkserver` start + join, in the same run.
//!
//! Subjects: `Process::new(|| ())` (or a function target), `start()`, `join()`, under
//! `Fork`, `Spawn` and `ForkServer`. Baselines: `libc::fork()` with a child that
//! `_exit(0)`s at once and a parent that `waitpid`s; `procspawn::spawn((), f).join()`;
//! Python 3's `Process(target=f).start(); p.join()` timed inside one `python3` run per
//! method (interpreter start-up excluded). Targets: `Fork` within 1.2x of raw fork,
//! `ForkServer` within 1.5x of `Fork`, `Spawn` no slower than procspawn. One more pair
//! shows why the forkserver is the default once a program has threads and grows: from a
//! parent holding 256 MiB, `Fork` pays for the page tables, `ForkServer` does not.
//!
//! Each pair is a self-contained function (`pair_*`) so the benches can move to a
//! workspace member as they are. The binary's `main` calls `procspawn::init()` and
//! `shmproc::init()` first: both re-execute it for their spawned children.

mod common;

use criterion::Criterion;
use shmproc::process::{Process, StartMethod};
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

/// `iters` start + join of an empty target under `method`.
fn start_join(method: StartMethod) -> impl FnMut(u64) -> Duration {
    move |iters| {
        let t = Instant::now();
        for _ in 0..iters {
            let mut p = Process::builder().start_method(method).target(|| ());
            p.start().expect("start");
            assert_eq!(p.join().expect("join"), 0);
        }
        t.elapsed()
    }
}

/// `iters` spawn + join of an empty function with procspawn.
fn procspawn_spawn_join(iters: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..iters {
        let h = procspawn::spawn((), |()| 0u8);
        assert_eq!(h.join().expect("procspawn join"), 0);
    }
    t.elapsed()
}

/// Python's start + join, per process, under `method` (`spawn` / `forkserver`), timed
/// inside the interpreter; `None` if python3 is missing or fails.
fn python_start_join(method: &str, n: u32) -> Option<Duration> {
    let script = format!(
        "import multiprocessing as mp, time, sys\n\
         def f():\n    pass\n\
         if __name__ == '__main__':\n\
         \x20   ctx = mp.get_context('{method}')\n\
         \x20   p = ctx.Process(target=f); p.start(); p.join()  # warm-up (starts the server)\n\
         \x20   t = time.perf_counter()\n\
         \x20   for _ in range({n}):\n\
         \x20       p = ctx.Process(target=f); p.start(); p.join()\n\
         \x20       assert p.exitcode == 0\n\
         \x20   print((time.perf_counter() - t) / {n})\n"
    );
    // A file, not `-c`: a spawned Python child imports `f` from the main module's file.
    let path = std::env::temp_dir().join(format!("shmproc-bench-{}.py", std::process::id()));
    std::fs::write(&path, script).ok()?;
    let out = std::process::Command::new("python3").arg(&path).output();
    let _ = std::fs::remove_file(&path);
    let out = out.ok()?;
    if !out.status.success() {
        return None;
    }
    let secs: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some(Duration::from_secs_f64(secs))
}

/// `Fork` against a raw fork + waitpid.
fn pair_fork_vs_raw() {
    common::paired(
        "process start+join (Fork) vs fork+waitpid",
        "start",
        // Small batches, many reps: a start's cost swings with what the other vCPU is
        // doing, so baseline and subject are best compared a few milliseconds apart.
        20,
        120,
        raw_fork_waitpid,
        start_join(StartMethod::Fork),
    );
}

/// `ForkServer` against `Fork`.
fn pair_forkserver_vs_fork() {
    common::paired(
        "process start+join (ForkServer) vs Fork",
        "start",
        20,
        120,
        start_join(StartMethod::Fork),
        start_join(StartMethod::ForkServer),
    );
}

/// `ForkServer` against `Fork` from a parent holding 256 MiB of touched memory: `fork`
/// copies the page tables (and the child's exit tears them down), the forkserver's
/// children do not grow with the parent.
fn pair_forkserver_vs_fork_big_parent() {
    let big = vec![1u8; 256 << 20];
    std::hint::black_box(&big);
    common::paired(
        "process start+join (ForkServer) vs Fork, parent with 256 MiB",
        "start",
        5,
        20,
        start_join(StartMethod::Fork),
        start_join(StartMethod::ForkServer),
    );
    drop(big);
}

/// `Spawn` against procspawn.
fn pair_spawn_vs_procspawn() {
    common::paired(
        "process start+join (Spawn) vs procspawn spawn+join",
        "start",
        5,
        40,
        procspawn_spawn_join,
        start_join(StartMethod::Spawn),
    );
}

/// `Spawn` and `ForkServer` against Python's, measured right after ours.
fn against_python() {
    let n = if common::bench_mode() { 50 } else { 3 };
    for (ours, theirs) in [
        (StartMethod::Spawn, "spawn"),
        (StartMethod::ForkServer, "forkserver"),
    ] {
        let mut subject = start_join(ours);
        subject(2);
        let us = subject(n as u64) / n;
        match python_start_join(theirs, n) {
            Some(py) => {
                let line = format!(
                    "process start+join ({ours}) vs Python {theirs}: {:.3} ({:.1} / {:.1} us)",
                    us.as_secs_f64() / py.as_secs_f64(),
                    us.as_secs_f64() * 1e6,
                    py.as_secs_f64() * 1e6
                );
                common::report(&line);
            }
            None => println!("process start+join ({ours}) vs Python {theirs}: python3 unavailable"),
        }
    }
}

fn main() {
    // Both hooks first: procspawn's and shmproc's spawned children leave from here.
    procspawn::init();
    shmproc::init();

    // Sanity before timing: each subject does what it claims.
    for m in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ] {
        let mut p = Process::builder()
            .start_method(m)
            .target(|| shmproc::process::exit(3));
        p.start().expect("start");
        assert_eq!(p.join().expect("join"), 3, "{m}");
        assert_eq!(p.start_method(), m);
    }
    assert_eq!(
        procspawn::spawn(4u8, |x| x + 1).join().expect("procspawn"),
        5
    );

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
        let mut g = c.benchmark_group("start_join");
        g.bench_function("raw_fork_waitpid", |b| b.iter_custom(raw_fork_waitpid));
        for m in [
            StartMethod::Fork,
            StartMethod::ForkServer,
            StartMethod::Spawn,
        ] {
            g.bench_function(m.name(), |b| b.iter_custom(start_join(m)));
        }
        g.bench_function("procspawn", |b| b.iter_custom(procspawn_spawn_join));
        g.finish();
    }
    c.final_summary();

    pair_fork_vs_raw();
    pair_forkserver_vs_fork();
    pair_forkserver_vs_fork_big_parent();
    pair_spawn_vs_procspawn();
    against_python();
}
