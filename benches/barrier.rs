//! Barrier pass latency between 2 processes against a process-shared pthread barrier, in
//! the same run (`common::paired`).
//!
//! `cargo bench -p shmproc-benches --bench barrier`; `cargo test -p shmproc-benches
//! --benches` runs it once.

mod common;

use common::{bench_mode, fork, paired, shared_counters, Child, SharedPage};
use shmproc::barrier::Barrier;
use shmproc::{Arena, SpinPolicy};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Something two processes pass through together, once per call of `pass`.
trait TwoParty {
    fn pass(&self);
}

struct Shm(Barrier);

impl TwoParty for Shm {
    fn pass(&self) {
        self.0.wait().expect("barrier broken");
    }
}

/// A `pthread_barrier_t` (PTHREAD_PROCESS_SHARED) in shared memory.
struct PthreadBarrier {
    page: SharedPage,
}

impl PthreadBarrier {
    fn new() -> Self {
        let page = SharedPage::new(4096);
        // SAFETY: the page is fresh, large and aligned enough for the attribute-initialised
        // barrier; the attribute object lives on our stack for the duration of the calls.
        unsafe {
            let mut attr: libc::pthread_barrierattr_t = std::mem::zeroed();
            libc::pthread_barrierattr_init(&mut attr);
            libc::pthread_barrierattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
            let rc = libc::pthread_barrier_init(page.ptr().cast(), &attr, 2);
            assert_eq!(rc, 0);
        }
        PthreadBarrier { page }
    }
}

// SAFETY: a process-shared pthread barrier is thread-safe by design.
unsafe impl Sync for PthreadBarrier {}

impl TwoParty for PthreadBarrier {
    fn pass(&self) {
        // SAFETY: initialised in `new`, shared with the peer for the page's lifetime.
        unsafe { libc::pthread_barrier_wait(self.page.ptr().cast()) };
    }
}

/// A child that passes with us until the pass numbered `stop_at` (`words[0]`).
struct Partner {
    child: Child,
    words: &'static [AtomicU64; 2], // [stop_at, passes done by the parent]
}

fn words() -> &'static [AtomicU64; 2] {
    shared_counters(1)[..2].try_into().expect("two words")
}

impl Partner {
    fn start(subject: &'static (dyn TwoParty + Sync)) -> Partner {
        let w = words();
        let child = fork(move || {
            let mut done = 0u64;
            loop {
                subject.pass();
                done += 1;
                // Acquire: the parent's store of `stop_at` precedes its arrival at the pass
                // we just completed, which the pass orders before us.
                if w[0].load(Ordering::Acquire) == done {
                    return;
                }
            }
        });
        Partner { child, words: w }
    }

    fn run(&self, subject: &dyn TwoParty, iters: u64) -> Duration {
        let t = Instant::now();
        for _ in 0..iters {
            subject.pass();
        }
        let e = t.elapsed();
        self.words[1].fetch_add(iters, Ordering::Relaxed);
        e
    }

    fn stop(self, subject: &dyn TwoParty) {
        let n = self.words[1].load(Ordering::Relaxed) + 1;
        self.words[0].store(n, Ordering::Release);
        subject.pass();
        self.child.join();
    }
}

fn main() {
    let mut c = common::criterion();

    let arena = Arena::anonymous(1 << 20).expect("arena");

    // Barrier: 2 processes.
    let shm: &'static Shm = Box::leak(Box::new(Shm(Barrier::new_in(&arena, 2).unwrap())));
    let mut parked = Barrier::new_in(&arena, 2).unwrap();
    parked.set_spin(SpinPolicy::NEVER);
    let parked: &'static Shm = Box::leak(Box::new(Shm(parked)));
    let pth: &'static PthreadBarrier = Box::leak(Box::new(PthreadBarrier::new()));
    let shm_partner = Partner::start(shm);
    let parked_partner = Partner::start(parked);
    let pth_partner = Partner::start(pth);
    c.bench_function("barrier pass, 2 processes: shmproc", |b| {
        b.iter_custom(|n| shm_partner.run(shm, n))
    });
    c.bench_function("barrier pass, 2 processes: pthread", |b| {
        b.iter_custom(|n| pth_partner.run(pth, n))
    });
    let (iters, reps) = if bench_mode() { (20_000, 30) } else { (10, 2) };
    paired(
        "barrier pass, 2 processes (shmproc / pthread)",
        "pass",
        iters,
        reps,
        |n| pth_partner.run(pth, n),
        |n| shm_partner.run(shm, n),
    );
    paired(
        "barrier pass, 2 processes (shmproc SpinPolicy::NEVER / pthread)",
        "pass",
        iters,
        reps,
        |n| pth_partner.run(pth, n),
        |n| parked_partner.run(parked, n),
    );
    shm_partner.stop(shm);
    parked_partner.stop(parked);
    pth_partner.stop(pth);

    c.final_summary();
}
