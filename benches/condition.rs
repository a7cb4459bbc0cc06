//! Condition notify-to-wake latency (a ping-pong between 2 processes) against a
//! process-shared pthread mutex + condvar, in the same run (`common::paired`).
//!
//! `cargo bench -p shmproc-benches --bench condition`; `cargo test -p shmproc-benches
//! --benches` runs it once.

mod common;

use common::{bench_mode, fork, paired, shared_counters, Child, SharedPage};
use shmproc::condition::Condition;
use shmproc::{Arena, SpinPolicy};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const STOP: u64 = u64::MAX;

/// A ping-pong over a condition: the parent sets `turn = 1` and notifies; the child, woken,
/// sets `turn = 0` and notifies back. One round trip = two notify-to-wake hand-offs.
trait PingPong: Sync {
    fn lock(&self);
    fn unlock(&self);
    fn notify(&self);
    fn wait(&self);
    fn turn(&self) -> &AtomicU64;
}

struct ShmCond {
    cond: Condition,
    turn: &'static AtomicU64,
}

impl PingPong for ShmCond {
    fn lock(&self) {
        self.cond.acquire_forever();
    }
    fn unlock(&self) {
        self.cond.release().unwrap();
    }
    fn notify(&self) {
        self.cond.notify(1).unwrap();
    }
    fn wait(&self) {
        self.cond.wait().unwrap();
    }
    fn turn(&self) -> &AtomicU64 {
        self.turn
    }
}

/// A process-shared pthread mutex + condvar in shared memory.
struct PthreadCond {
    page: SharedPage,
}

impl PthreadCond {
    fn new() -> Self {
        let page = SharedPage::new(4096);
        // SAFETY: the page is fresh and 4096 bytes: mutex at 0, condvar at 128, both
        // initialised with process-shared attributes before any use.
        unsafe {
            let mut ma: libc::pthread_mutexattr_t = std::mem::zeroed();
            libc::pthread_mutexattr_init(&mut ma);
            libc::pthread_mutexattr_setpshared(&mut ma, libc::PTHREAD_PROCESS_SHARED);
            assert_eq!(libc::pthread_mutex_init(page.ptr().cast(), &ma), 0);
            let mut ca: libc::pthread_condattr_t = std::mem::zeroed();
            libc::pthread_condattr_init(&mut ca);
            libc::pthread_condattr_setpshared(&mut ca, libc::PTHREAD_PROCESS_SHARED);
            assert_eq!(libc::pthread_cond_init(page.ptr().add(128).cast(), &ca), 0);
        }
        PthreadCond { page }
    }
    fn m(&self) -> *mut libc::pthread_mutex_t {
        self.page.ptr().cast()
    }
    fn c(&self) -> *mut libc::pthread_cond_t {
        // SAFETY: offset 128 is inside the page (see `new`).
        unsafe { self.page.ptr().add(128).cast() }
    }
}

// SAFETY: the pthread objects are process-shared and thread-safe by design.
unsafe impl Sync for PthreadCond {}

impl PingPong for PthreadCond {
    fn lock(&self) {
        // SAFETY: initialised in `new`.
        unsafe { libc::pthread_mutex_lock(self.m()) };
    }
    fn unlock(&self) {
        // SAFETY: as above; we hold it.
        unsafe { libc::pthread_mutex_unlock(self.m()) };
    }
    fn notify(&self) {
        // SAFETY: as above.
        unsafe { libc::pthread_cond_signal(self.c()) };
    }
    fn wait(&self) {
        // SAFETY: as above; we hold the mutex.
        unsafe { libc::pthread_cond_wait(self.c(), self.m()) };
    }
    fn turn(&self) -> &AtomicU64 {
        // SAFETY: offset 256 is inside the page, 8-aligned, zeroed.
        unsafe { &*self.page.ptr().add(256).cast::<AtomicU64>() }
    }
}

fn pong_child(p: &'static dyn PingPong) -> Child {
    fork(move || {
        p.lock();
        loop {
            // Relaxed: `turn` is protected by the lock.
            let t = p.turn().load(Ordering::Relaxed);
            if t == STOP {
                break;
            }
            if t == 1 {
                p.turn().store(0, Ordering::Relaxed);
                p.notify();
            } else {
                p.wait();
            }
        }
        p.unlock();
    })
}

fn ping(p: &dyn PingPong, iters: u64) -> Duration {
    let t = Instant::now();
    p.lock();
    for _ in 0..iters {
        // Relaxed: under the lock.
        p.turn().store(1, Ordering::Relaxed);
        p.notify();
        while p.turn().load(Ordering::Relaxed) != 0 {
            p.wait();
        }
    }
    p.unlock();
    t.elapsed()
}

fn stop_pong(p: &dyn PingPong, child: Child) {
    p.lock();
    p.turn().store(STOP, Ordering::Relaxed);
    p.notify();
    p.unlock();
    child.join();
}

fn main() {
    let mut c = common::criterion();

    let arena = Arena::anonymous(1 << 20).expect("arena");

    // Condition: notify-to-wake, as a ping-pong (one-way = round trip / 2).
    let cond = |spin: SpinPolicy| -> &'static ShmCond {
        let mut cond = Condition::new_in(&arena).unwrap();
        cond.set_spin(spin);
        Box::leak(Box::new(ShmCond {
            cond,
            turn: &shared_counters(1)[0],
        }))
    };
    let sc = cond(SpinPolicy::default());
    let parked = cond(SpinPolicy::NEVER);
    let pc: &'static PthreadCond = Box::leak(Box::new(PthreadCond::new()));
    let sc_pid = pong_child(sc);
    let parked_pid = pong_child(parked);
    let pc_pid = pong_child(pc);
    c.bench_function("condition notify-to-wake round trip: shmproc", |b| {
        b.iter_custom(|n| ping(sc, n))
    });
    c.bench_function("condition notify-to-wake round trip: pthread", |b| {
        b.iter_custom(|n| ping(pc, n))
    });
    let (iters, reps) = if bench_mode() { (5_000, 30) } else { (10, 2) };
    paired(
        "condition notify-to-wake round trip (shmproc / pthread)",
        "round trip",
        iters,
        reps,
        |n| ping(pc, n),
        |n| ping(sc, n),
    );
    paired(
        "condition notify-to-wake round trip (shmproc SpinPolicy::NEVER / pthread)",
        "round trip",
        iters,
        reps,
        |n| ping(pc, n),
        |n| ping(parked, n),
    );
    stop_pong(sc, sc_pid);
    stop_pong(parked, parked_pid);
    stop_pong(pc, pc_pid);

    c.final_summary();
}
