//! Shared bench kit: the cross-process floor and interleaved, per-rep ratios.
//!
//! The machines these benches run on change character every few tens of seconds (the host
//! moves the two vCPUs closer or further apart, see DESIGN.md). Two medians taken a minute
//! apart are therefore not comparable. [`paired`] instead measures the baseline and the
//! subject back to back, rep by rep, and reports the distribution of the per-rep ratio
//! `subject / baseline`. Criterion still measures each side on its own for its reports.
//!
//! Results are printed and appended to `target/shmproc-bench.txt`, one line per pair.
#![allow(dead_code)]

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The criterion settings every bench uses (1 s warm-up, 2 s measurement, 20 samples),
/// then the command line's.
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args()
}

/// True under `cargo bench` (criterion passes `--bench`); false under `cargo test
/// --benches`, where every bench must run once, quickly, as a smoke test.
pub fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A page of `MAP_SHARED | MAP_ANONYMOUS` memory, inherited by `fork`ed children.
pub struct SharedPage {
    ptr: *mut u8,
    len: usize,
}

impl SharedPage {
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

    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// The `i`-th 128-byte-aligned `AtomicU64` of the page.
    pub fn atomic(&self, i: usize) -> &AtomicU64 {
        assert!((i + 1) * 128 <= self.len);
        // SAFETY: in bounds, aligned, zero-initialised, shared for the page's lifetime.
        unsafe { &*self.ptr.add(i * 128).cast::<AtomicU64>() }
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping.
        unsafe { rustix::mm::munmap(self.ptr.cast(), self.len).ok() };
    }
}

/// Forks a child that runs `f` then `_exit(0)`s. Returns its pid.
pub fn fork_child(f: impl FnOnce()) -> i32 {
    std::io::stdout().flush().ok();
    // SAFETY: bench binaries are single-threaded (criterion without rayon).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        f();
        // SAFETY: leave without the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    pid
}

/// Pins the calling process to CPU `cpu` until the returned guard is dropped (which
/// restores the CPUs it had); a no-op on a machine with fewer than two CPUs.
///
/// For pairs whose cost is a cross-CPU wake-up: left to itself the scheduler sometimes
/// runs both processes of a futex ping-pong on one CPU (a same-CPU switch, ~4 µs) and
/// sometimes on two (an IPI to an idle vCPU, ~20-40 µs), and the two sides of a pair do
/// not land the same way, so the ratio measured the lottery (0.19 and 7.6 on the same
/// code). Pinned, every wake-up of both sides crosses CPUs. A child forked while the
/// guard lives inherits the pin and calls `Pinned::to(1)` itself.
pub struct Pinned(Option<libc::cpu_set_t>);

impl Pinned {
    pub fn to(cpu: usize) -> Pinned {
        // SAFETY: plain syscalls on this process with a zeroed (valid) cpu_set_t.
        unsafe {
            if libc::sysconf(libc::_SC_NPROCESSORS_ONLN) < 2 {
                return Pinned(None);
            }
            let size = std::mem::size_of::<libc::cpu_set_t>();
            let mut old: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, size, &mut old) != 0 {
                return Pinned(None);
            }
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            if libc::sched_setaffinity(0, size, &set) != 0 {
                return Pinned(None);
            }
            Pinned(Some(old))
        }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            // SAFETY: restores the mask read in `to`.
            unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), old) };
        }
    }
}

/// Waits for a child.
pub fn wait_child(pid: i32) {
    let mut status = 0;
    // SAFETY: plain syscall on our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
}

/// The floor: a spinning atomic ping-pong between this process and a forked peer.
///
/// `round_trips(n)` returns the time of `n` round trips; one way is half of it. Between
/// calls the peer sleeps in a futex, so it does not steal a core from whatever is measured
/// in between (the subject of a `paired` run).
///
/// [`Floor::start`] pings and pongs through one word, so a round trip moves one cache
/// line there and back. [`Floor::two_lines`] pings through one line and pongs through
/// another: the least any channel with a line (a ring) per direction can cost, as each
/// way moves a line the receiver polls.
pub struct Floor {
    page: SharedPage,
    pid: i32,
    /// Index (`SharedPage::atomic`) of the pong word: 0 (the ping word itself) or 2.
    pong: usize,
}

const STOP: u64 = u64::MAX;

impl SharedPage {
    /// The `i`-th 128-byte-aligned `AtomicU32` of the page (shares its line with `atomic(i)`).
    pub fn atomic32(&self, i: usize) -> &std::sync::atomic::AtomicU32 {
        assert!((i + 1) * 128 <= self.len);
        // SAFETY: in bounds, aligned, zero-initialised, shared for the page's lifetime.
        unsafe {
            &*self
                .ptr
                .add(i * 128 + 64)
                .cast::<std::sync::atomic::AtomicU32>()
        }
    }
}

impl Floor {
    /// The one-word floor.
    pub fn start() -> Floor {
        Floor::with_pong(0)
    }

    /// The two-line floor: ping on one 128-byte line, pong on another.
    pub fn two_lines() -> Floor {
        Floor::with_pong(2)
    }

    fn with_pong(pong: usize) -> Floor {
        use rustix::thread::futex;
        let page = SharedPage::new(4096);
        type Words = (
            &'static AtomicU64,
            &'static AtomicU64,
            &'static std::sync::atomic::AtomicU32,
        );
        // SAFETY: the page outlives the child (the child exits before we unmap it, and the
        // child's own copy of the mapping stays valid in the child).
        let (word, pong_word, active): Words = unsafe {
            (
                &*(page.atomic(0) as *const AtomicU64),
                &*(page.atomic(pong) as *const AtomicU64),
                &*(page.atomic32(0) as *const _),
            )
        };
        let pid = fork_child(move || {
            let mut seen = 0u64;
            loop {
                // Acquire: pairs with the parent's Release store of the ping.
                let v = word.load(Ordering::Acquire);
                if v == STOP {
                    return;
                }
                if v != seen && v % 2 == 1 {
                    seen = v + 1;
                    // Release: pairs with the parent's Acquire load of the pong.
                    pong_word.store(v + 1, Ordering::Release);
                } else if active.load(Ordering::Acquire) == 0 {
                    // Not being measured: sleep until `round_trips` (or drop) wakes us.
                    let _ = futex::wait(active, futex::Flags::empty(), 0, None);
                } else {
                    std::hint::spin_loop();
                }
            }
        });
        Floor { page, pid, pong }
    }

    fn wake(&self, active: u32) {
        use rustix::thread::futex;
        self.page.atomic32(0).store(active, Ordering::Release);
        let _ = futex::wake(self.page.atomic32(0), futex::Flags::empty(), 1);
    }

    pub fn round_trips(&self, n: u64) -> Duration {
        let (word, pong) = (self.page.atomic(0), self.page.atomic(self.pong));
        self.wake(1);
        // The last pong (even); the next ping is one above it.
        let mut v = pong.load(Ordering::Relaxed);
        // One untimed round trip: the peer is awake and spinning before the clock starts.
        word.store(v + 1, Ordering::Release);
        while pong.load(Ordering::Acquire) != v + 2 {
            std::hint::spin_loop();
        }
        v += 2;
        let t = Instant::now();
        for _ in 0..n {
            // Release/Acquire: pair with the child's loop above.
            word.store(v + 1, Ordering::Release);
            while pong.load(Ordering::Acquire) != v + 2 {
                std::hint::spin_loop();
            }
            v += 2;
        }
        let elapsed = t.elapsed();
        self.page.atomic32(0).store(0, Ordering::Release);
        elapsed
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        self.page.atomic(0).store(STOP, Ordering::Release);
        self.wake(1);
        wait_child(self.pid);
    }
}

/// Ratio statistics of one [`paired`] run.
#[derive(Debug, Clone, Copy)]
pub struct Ratio {
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
    pub baseline_ns: f64,
    pub subject_ns: f64,
}

/// Measures `baseline(iters)` and `subject(iters)` back to back, `reps` times, and reports
/// the distribution of `subject / baseline` per rep. Both closures return the time of
/// `iters` operations; `per` names the unit (e.g. "one-way", "msg").
///
/// `SHMPROC_PAIRS=<text>` in the environment runs only the pairs whose name contains
/// `<text>` (the others return NaN ratios without measuring), e.g.
/// `SHMPROC_PAIRS=SPSC cargo bench --bench queue`.
pub fn paired(
    name: &str,
    per: &str,
    iters: u64,
    reps: usize,
    mut baseline: impl FnMut(u64) -> Duration,
    mut subject: impl FnMut(u64) -> Duration,
) -> Ratio {
    if let Ok(only) = std::env::var("SHMPROC_PAIRS") {
        if !name.contains(only.as_str()) {
            return Ratio {
                median: f64::NAN,
                p10: f64::NAN,
                p90: f64::NAN,
                baseline_ns: f64::NAN,
                subject_ns: f64::NAN,
            };
        }
    }
    let (iters, reps) = if bench_mode() {
        (iters, reps)
    } else {
        (iters.clamp(1, 100), 2)
    };
    // Warm up both sides once.
    baseline(iters);
    subject(iters);
    let mut ratios = Vec::with_capacity(reps);
    let mut base_ns = Vec::with_capacity(reps);
    let mut subj_ns = Vec::with_capacity(reps);
    for rep in 0..reps {
        // Alternate which side goes first, so neither always follows the other.
        let (b, s) = if rep % 2 == 0 {
            let b = baseline(iters);
            (b, subject(iters))
        } else {
            let s = subject(iters);
            (baseline(iters), s)
        };
        let b = b.as_nanos() as f64 / iters as f64;
        let s = s.as_nanos() as f64 / iters as f64;
        base_ns.push(b);
        subj_ns.push(s);
        ratios.push(s / b.max(1e-3));
    }
    let med = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[((v.len() - 1) as f64 * q).round() as usize]
    };
    let r = Ratio {
        median: med(&mut ratios, 0.5),
        p10: med(&mut ratios, 0.1),
        p90: med(&mut ratios, 0.9),
        baseline_ns: med(&mut base_ns, 0.5),
        subject_ns: med(&mut subj_ns, 0.5),
    };
    let line = format!(
        "{name}: ratio {:.2} (p10 {:.2}, p90 {:.2}) | subject {:.1} ns/{per} | baseline {:.1} ns/{per} | {reps} reps x {iters}",
        r.median, r.p10, r.p90, r.subject_ns, r.baseline_ns
    );
    println!("{line}");
    if bench_mode() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        std::fs::create_dir_all(&dir).ok();
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("shmproc-bench.txt"))
        {
            writeln!(f, "{line}").ok();
        }
    }
    r
}
