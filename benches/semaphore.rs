//! Semaphore benchmarks against a POSIX `sem_t` (process-shared, in shared memory):
//! uncontended acquire+release, acquire+release contended by a second process, and a
//! blocking hand-off (ping-pong) between two processes.
//!
//! `cargo bench -p shmproc-benches --bench semaphore` (about a minute); `cargo test -p
//! shmproc-benches --benches` runs each once.
mod common;

use common::{fork, paired, SharedPage};
use criterion::black_box;
use shmproc::semaphore::Semaphore;
use shmproc::{Arena, SpinPolicy};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A process-shared POSIX semaphore (`sem_init(.., pshared = 1, ..)`) on a shared page.
struct PosixSem {
    page: SharedPage,
}

impl PosixSem {
    fn new(value: u32) -> PosixSem {
        let page = SharedPage::new(4096);
        // SAFETY: the page is zeroed, page-aligned and large enough for a sem_t; pshared = 1
        // because forked children use it through their copy of the shared mapping.
        let r = unsafe { libc::sem_init(page.ptr().cast(), 1, value) };
        assert_eq!(r, 0, "sem_init failed");
        PosixSem { page }
    }

    fn sem(&self) -> *mut libc::sem_t {
        self.page.ptr().cast()
    }

    #[inline]
    fn wait(&self) {
        // SAFETY: initialised by sem_init above and alive as long as `self`.
        while unsafe { libc::sem_wait(self.sem()) } != 0 {} // EINTR: retry
    }

    #[inline]
    fn post(&self) {
        // SAFETY: as in `wait`.
        unsafe { libc::sem_post(self.sem()) };
    }
}

impl Drop for PosixSem {
    fn drop(&mut self) {
        // SAFETY: nobody uses the semaphore any more (children were joined).
        unsafe { libc::sem_destroy(self.sem()) };
    }
}

/// Flags shared with the children: [0] stop, [1] child ready.
struct Flags(SharedPage);

impl Flags {
    fn new() -> Flags {
        Flags(SharedPage::new(4096))
    }
    fn stop(&self) -> &AtomicU64 {
        self.0.atomic(0)
    }
    fn ready(&self) -> &AtomicU64 {
        self.0.atomic(1)
    }
}

/// `iters` runs of `op` while a forked child runs `op` in a loop too.
fn contended(flags: &Flags, iters: u64, op: impl Fn()) -> Duration {
    flags.stop().store(0, Ordering::SeqCst);
    flags.ready().store(0, Ordering::SeqCst);
    let child = fork(|| {
        flags.ready().store(1, Ordering::SeqCst);
        while flags.stop().load(Ordering::Relaxed) == 0 {
            op();
        }
    });
    while flags.ready().load(Ordering::SeqCst) == 0 {
        std::hint::spin_loop();
    }
    let t = Instant::now();
    for _ in 0..iters {
        op();
    }
    let d = t.elapsed();
    flags.stop().store(1, Ordering::SeqCst);
    child.join();
    d
}

/// `iters` round trips: the parent runs `there` then `back`; a forked child answers each
/// `wait_ping` with `post_pong`. Returns the time of the round trips.
fn ping_pong(
    flags: &Flags,
    iters: u64,
    post_ping: impl Fn(),
    wait_ping: impl Fn(),
    post_pong: impl Fn(),
    wait_pong: impl Fn(),
) -> Duration {
    flags.stop().store(0, Ordering::SeqCst);
    let child = fork(|| loop {
        wait_ping();
        if flags.stop().load(Ordering::SeqCst) != 0 {
            return;
        }
        post_pong();
    });
    let t = Instant::now();
    for _ in 0..iters {
        post_ping();
        wait_pong();
    }
    let d = t.elapsed();
    flags.stop().store(1, Ordering::SeqCst);
    post_ping();
    child.join();
    d
}

fn main() {
    let mut c = common::criterion();

    let arena = Arena::anonymous(1 << 20).expect("arena");
    let sem = Semaphore::new_in(&arena, 1).expect("semaphore");
    let posix = PosixSem::new(1);
    let flags = Flags::new();

    // Sanity before timing: both count correctly.
    drop(sem.acquire());
    assert_eq!(sem.value(), 1);
    posix.wait();
    posix.post();

    let shm_op = || drop(black_box(sem.acquire()));
    let posix_op = || {
        posix.wait();
        posix.post();
    };
    let time_n = |iters: u64, op: &dyn Fn()| {
        let t = Instant::now();
        for _ in 0..iters {
            op();
        }
        t.elapsed()
    };

    // --- uncontended
    {
        let mut g = c.benchmark_group("semaphore/uncontended acquire+release");
        g.bench_function("shmproc", |b| b.iter_custom(|n| time_n(n, &shm_op)));
        g.bench_function("sem_t", |b| b.iter_custom(|n| time_n(n, &posix_op)));
        g.finish();
    }
    paired(
        "semaphore uncontended acquire+release / sem_t",
        "op",
        1_000_000,
        20,
        |n| time_n(n, &posix_op),
        |n| time_n(n, &shm_op),
    );

    // --- contended by a second process
    {
        let mut g = c.benchmark_group("semaphore/2-process contended acquire+release");
        g.bench_function("shmproc", |b| {
            b.iter_custom(|n| contended(&flags, n, shm_op))
        });
        g.bench_function("sem_t", |b| {
            b.iter_custom(|n| contended(&flags, n, posix_op))
        });
        g.finish();
    }
    paired(
        "semaphore 2-process contended acquire+release / sem_t",
        "op",
        200_000,
        16,
        |n| contended(&flags, n, posix_op),
        |n| contended(&flags, n, shm_op),
    );

    // --- blocking hand-off between two processes (two semaphores of 0)
    let ping = Semaphore::new_in(&arena, 0).expect("semaphore");
    let pong = Semaphore::new_in(&arena, 0).expect("semaphore");
    let (mut ping_never, mut pong_never) = (ping.clone(), pong.clone());
    ping_never.set_spin(SpinPolicy::NEVER);
    pong_never.set_spin(SpinPolicy::NEVER);
    let (pping, ppong) = (PosixSem::new(0), PosixSem::new(0));
    let shm_rt = |n: u64, ping: &Semaphore, pong: &Semaphore| {
        ping_pong(
            &flags,
            n,
            || ping.release().expect("release"),
            || ping.acquire_forever(),
            || pong.release().expect("release"),
            || pong.acquire_forever(),
        )
    };
    let posix_rt = |n: u64| {
        ping_pong(
            &flags,
            n,
            || pping.post(),
            || pping.wait(),
            || ppong.post(),
            || ppong.wait(),
        )
    };
    {
        let mut g = c.benchmark_group("semaphore/2-process hand-off round trip");
        g.bench_function("shmproc (default spin)", |b| {
            b.iter_custom(|n| shm_rt(n, &ping, &pong))
        });
        g.bench_function("shmproc (SpinPolicy::NEVER)", |b| {
            b.iter_custom(|n| shm_rt(n, &ping_never, &pong_never))
        });
        g.bench_function("sem_t", |b| b.iter_custom(posix_rt));
        g.finish();
    }
    paired(
        "semaphore hand-off round trip (default spin) / sem_t",
        "round trip",
        2_000,
        16,
        posix_rt,
        |n| shm_rt(n, &ping, &pong),
    );
    paired(
        "semaphore hand-off round trip (SpinPolicy::NEVER) / sem_t",
        "round trip",
        2_000,
        16,
        posix_rt,
        |n| shm_rt(n, &ping_never, &pong_never),
    );

    c.final_summary();
}
