//! Lock benchmarks, each against its baseline in the same run:
//! * uncontended acquire + release: shmproc `Lock` vs a `PTHREAD_PROCESS_SHARED` pthread
//!   mutex in the same arena vs `std::sync::Mutex`;
//! * contended: two processes each doing lock / increment / unlock, shmproc vs pthread.

mod common;

use common::{bench_mode, fork, paired, SharedPage};
use criterion::{black_box, Criterion};
use shmproc::shared::RawBlock;
use shmproc::{Arena, Lock};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A process-shared pthread mutex placed in an arena block (held with it: the block is
/// freed with its last handle).
struct PMutex(*mut libc::pthread_mutex_t, #[allow(dead_code)] RawBlock);

impl PMutex {
    fn new_in(block: RawBlock) -> PMutex {
        assert!(block.len() >= std::mem::size_of::<libc::pthread_mutex_t>());
        let m = block.as_ptr().cast::<libc::pthread_mutex_t>();
        // SAFETY: the block is large enough, aligned to 128 and ours; the attr lives on our
        // stack for the duration of the init.
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            libc::pthread_mutexattr_init(&mut attr);
            libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
            assert_eq!(libc::pthread_mutex_init(m, &attr), 0);
            libc::pthread_mutexattr_destroy(&mut attr);
        }
        PMutex(m, block)
    }
    #[inline]
    fn lock(&self) {
        // SAFETY: initialised above, shared memory outlives every user.
        unsafe { libc::pthread_mutex_lock(self.0) };
    }
    #[inline]
    fn unlock(&self) {
        // SAFETY: as above; called by the thread that locked it.
        unsafe { libc::pthread_mutex_unlock(self.0) };
    }
}

fn uncontended(c: &mut Criterion, arena: &Arena) {
    let lock = Lock::new_in(arena).unwrap();
    let pm = PMutex::new_in(RawBlock::new_in(arena, 64).unwrap());
    let sm = std::sync::Mutex::new(0u64);
    let mut g = c.benchmark_group("lock/uncontended acquire+release");
    g.bench_function("shmproc Lock", |b| {
        b.iter(|| drop(black_box(lock.acquire())))
    });
    g.bench_function("pthread pshared mutex", |b| {
        b.iter(|| {
            pm.lock();
            pm.unlock();
        })
    });
    g.bench_function("std Mutex", |b| b.iter(|| drop(black_box(sm.lock()))));
    g.finish();

    let n = 1_000_000;
    paired(
        "lock uncontended: shmproc Lock / pthread pshared mutex",
        "op",
        n,
        15,
        |n| {
            let t = Instant::now();
            for _ in 0..n {
                pm.lock();
                pm.unlock();
            }
            t.elapsed()
        },
        |n| {
            let t = Instant::now();
            for _ in 0..n {
                drop(black_box(lock.acquire()));
            }
            t.elapsed()
        },
    );
    paired(
        "lock uncontended: shmproc Lock / std Mutex",
        "op",
        n,
        15,
        |n| {
            let t = Instant::now();
            for _ in 0..n {
                drop(black_box(sm.lock()));
            }
            t.elapsed()
        },
        |n| {
            let t = Instant::now();
            for _ in 0..n {
                drop(black_box(lock.acquire()));
            }
            t.elapsed()
        },
    );
}

/// Two processes each do `n` lock / increment / unlock rounds on one counter; returns the
/// wall time from a common start until both are done. Checks the count.
fn contended_run(n: u64, lock: &dyn Fn(), unlock: &dyn Fn(), page: &SharedPage) -> Duration {
    let (go, ready, done, counter) = (
        page.atomic(0),
        page.atomic(1),
        page.atomic(2),
        page.atomic(3),
    );
    for a in [go, ready, done, counter] {
        a.store(0, Ordering::SeqCst);
    }
    let work = |counter: &AtomicU64| {
        for _ in 0..n {
            lock();
            // A plain load + store: only the lock makes the count exact.
            counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            unlock();
        }
    };
    let child = fork(|| {
        ready.store(1, Ordering::SeqCst);
        while go.load(Ordering::SeqCst) == 0 {
            std::hint::spin_loop();
        }
        work(counter);
        done.store(1, Ordering::SeqCst);
    });
    while ready.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    let t = Instant::now();
    go.store(1, Ordering::SeqCst);
    work(counter);
    while done.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    let elapsed = t.elapsed();
    child.join();
    assert_eq!(counter.load(Ordering::SeqCst), 2 * n, "lost increments");
    elapsed
}

fn contended(c: &mut Criterion, arena: &Arena) {
    let lock = Lock::new_in(arena).unwrap();
    let pm = PMutex::new_in(RawBlock::new_in(arena, 64).unwrap());
    let page = SharedPage::new(4096);
    let lk = || std::mem::forget(lock.acquire().unwrap());
    let ulk = || {
        lock.release().unwrap();
    };
    let plk = || pm.lock();
    let pulk = || pm.unlock();
    let mut g = c.benchmark_group("lock/contended 2 processes (per op)");
    g.bench_function("shmproc Lock", |b| {
        b.iter_custom(|iters| contended_run(iters.max(1000), &lk, &ulk, &page) / 2)
    });
    g.bench_function("pthread pshared mutex", |b| {
        b.iter_custom(|iters| contended_run(iters.max(1000), &plk, &pulk, &page) / 2)
    });
    g.finish();
    paired(
        "lock contended 2 procs: shmproc Lock / pthread pshared mutex (time per op)",
        "op",
        200_000,
        10,
        |n| contended_run(n, &plk, &pulk, &page),
        |n| contended_run(n, &lk, &ulk, &page),
    );
}

fn main() {
    let mut c = common::criterion();
    let arena = Arena::anonymous(1 << 20).unwrap();
    uncontended(&mut c, &arena);
    contended(&mut c, &arena);
    if bench_mode() {
        c.final_summary();
    }
}
