//! Barrier pass latency (2 processes) against a process-shared pthread barrier, and
//! condition notify-to-wake latency (a ping-pong between 2 processes) against a
//! process-shared pthread mutex + condvar, in the same run.

#[path = "common/mod.rs"]
mod common;

use common::{bench_mode, fork_child, paired, wait_child, SharedPage};
use shmproc::barrier::Barrier;
use shmproc::condition::Condition;
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
    pid: i32,
    words: &'static [AtomicU64; 2], // [stop_at, passes done by the parent]
}

fn words() -> &'static [AtomicU64; 2] {
    let page = Box::leak(Box::new(SharedPage::new(4096)));
    // SAFETY: the first 16 bytes of the leaked (never unmapped) page: zeroed, aligned,
    // and valid as two AtomicU64 for the rest of the process, and of its forked children.
    unsafe { &*page.ptr().cast::<[AtomicU64; 2]>() }
}

impl Partner {
    fn start(subject: &'static (dyn TwoParty + Sync)) -> Partner {
        let w = words();
        let pid = fork_child(move || {
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
        Partner { pid, words: w }
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
        wait_child(self.pid);
    }
}

// ---------------------------------------------------------------------------------------
// Condition ping-pong.

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

fn pong_child(p: &'static dyn PingPong) -> i32 {
    fork_child(move || {
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

fn stop_pong(p: &dyn PingPong, pid: i32) {
    p.lock();
    p.turn().store(STOP, Ordering::Relaxed);
    p.notify();
    p.unlock();
    wait_child(pid);
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
        "sync2 barrier pass, 2 processes (shmproc / pthread)",
        "pass",
        iters,
        reps,
        |n| pth_partner.run(pth, n),
        |n| shm_partner.run(shm, n),
    );
    paired(
        "sync2 barrier pass, 2 processes (shmproc SpinPolicy::NEVER / pthread)",
        "pass",
        iters,
        reps,
        |n| pth_partner.run(pth, n),
        |n| parked_partner.run(parked, n),
    );
    shm_partner.stop(shm);
    parked_partner.stop(parked);
    pth_partner.stop(pth);

    // Condition: notify-to-wake, as a ping-pong (one-way = round trip / 2).
    let cond = |spin: SpinPolicy| -> &'static ShmCond {
        let mut cond = Condition::new_in(&arena).unwrap();
        cond.set_spin(spin);
        Box::leak(Box::new(ShmCond {
            cond,
            turn: &words()[0],
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
        "sync2 condition notify-to-wake round trip (shmproc / pthread)",
        "round trip",
        iters,
        reps,
        |n| ping(pc, n),
        |n| ping(sc, n),
    );
    paired(
        "sync2 condition notify-to-wake round trip (shmproc SpinPolicy::NEVER / pthread)",
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
