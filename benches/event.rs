//! Event benchmarks: wake-up latency between two processes (a ping-pong of two events:
//! `set` on one side, `wait` + `clear` on the other), against a raw shared-futex ping-pong
//! and the spinning atomic floor, measured in the same run (`common::paired`); plus the
//! cost of `set` / `is_set` / `wait` on a set event when nobody has to sleep.
//!
//! `cargo bench --bench event` (about a minute); `cargo test --benches` runs each once.
#[path = "common/mod.rs"]
mod common;

use common::{fork_child, paired, wait_child, Floor, SharedPage};
use criterion::black_box;
use rustix::thread::futex;
use shmproc::event::Event;
use shmproc::{Arena, SpinPolicy};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The baseline: two futex words in shared memory; each side stores 1 and always calls
/// `futex_wake`, the other waits (in the kernel, no spinning) until it sees 1, then resets
/// it. The classic blocking futex ping-pong.
struct RawFutexPingPong {
    page: SharedPage,
}

impl RawFutexPingPong {
    fn new() -> Self {
        RawFutexPingPong {
            page: SharedPage::new(4096),
        }
    }

    fn word(&self, i: usize) -> &AtomicU32 {
        assert!(i < 2);
        // SAFETY: in bounds (128-byte slots of a 4096-byte page), aligned, zero-initialised,
        // shared for the page's lifetime.
        unsafe { &*self.page.ptr().add(i * 128).cast::<AtomicU32>() }
    }

    fn stop(&self) -> &AtomicU64 {
        self.page.atomic(2)
    }

    fn post(&self, i: usize) {
        // Release: pairs with the Acquire load in `wait`.
        self.word(i).store(1, Ordering::Release);
        let _ = futex::wake(self.word(i), futex::Flags::empty(), 1);
    }

    fn wait(&self, i: usize) {
        // Acquire: pairs with the Release store in `post`.
        while self.word(i).load(Ordering::Acquire) == 0 {
            let _ = futex::wait(self.word(i), futex::Flags::empty(), 0, None);
        }
        // Relaxed: only this side resets its own word, before answering.
        self.word(i).store(0, Ordering::Relaxed);
    }

    fn round_trips(&self, n: u64) -> Duration {
        self.stop().store(0, Ordering::SeqCst);
        let pid = fork_child(|| loop {
            self.wait(0);
            if self.stop().load(Ordering::SeqCst) != 0 {
                return;
            }
            self.post(1);
        });
        let t = Instant::now();
        for _ in 0..n {
            self.post(0);
            self.wait(1);
        }
        let d = t.elapsed();
        self.stop().store(1, Ordering::SeqCst);
        self.post(0);
        wait_child(pid);
        d
    }
}

/// `n` round trips through two events (ping, pong) with a forked child.
fn event_round_trips(ping: &Event, pong: &Event, stop: &AtomicU64, n: u64) -> Duration {
    stop.store(0, Ordering::SeqCst);
    let pid = fork_child(|| loop {
        ping.wait();
        ping.clear();
        if stop.load(Ordering::SeqCst) != 0 {
            return;
        }
        pong.set();
    });
    let t = Instant::now();
    for _ in 0..n {
        ping.set();
        pong.wait();
        pong.clear();
    }
    let d = t.elapsed();
    stop.store(1, Ordering::SeqCst);
    ping.set();
    wait_child(pid);
    d
}

fn main() {
    let mut c = common::criterion();

    let arena = Arena::anonymous(1 << 20).expect("arena");
    let (ping, pong) = (
        Event::new_in(&arena).unwrap(),
        Event::new_in(&arena).unwrap(),
    );
    let (mut ping_never, mut pong_never) = (ping.clone(), pong.clone());
    ping_never.set_spin(SpinPolicy::NEVER);
    pong_never.set_spin(SpinPolicy::NEVER);
    let stop_page = SharedPage::new(4096);
    let stop = stop_page.atomic(0);
    let raw = RawFutexPingPong::new();

    // Sanity before timing: a few checked round trips of each.
    event_round_trips(&ping, &pong, stop, 10);
    raw.round_trips(10);
    assert!(!pong.is_set());

    // --- no one sleeps: the fast paths
    {
        let ev = Event::new_in(&arena).unwrap();
        let mut g = c.benchmark_group("event/uncontended");
        g.bench_function("set (already set)", |b| {
            ev.set();
            b.iter(|| ev.set())
        });
        g.bench_function("set+clear (no waiter)", |b| {
            b.iter(|| {
                ev.set();
                ev.clear();
            })
        });
        g.bench_function("wait (set)", |b| {
            ev.set();
            b.iter(|| ev.wait())
        });
        g.bench_function("is_set", |b| b.iter(|| black_box(ev.is_set())));
        g.finish();
    }

    // --- wake-up latency between two processes
    {
        let mut g = c.benchmark_group("event/2-process round trip");
        g.bench_function("shmproc Event (default spin)", |b| {
            b.iter_custom(|n| event_round_trips(&ping, &pong, stop, n))
        });
        g.bench_function("shmproc Event (SpinPolicy::NEVER)", |b| {
            b.iter_custom(|n| event_round_trips(&ping_never, &pong_never, stop, n))
        });
        g.bench_function("raw futex ping-pong", |b| {
            b.iter_custom(|n| raw.round_trips(n))
        });
        g.finish();
    }
    paired(
        "event round trip (SpinPolicy::NEVER) / raw futex ping-pong",
        "round trip",
        2_000,
        16,
        |n| raw.round_trips(n),
        |n| event_round_trips(&ping_never, &pong_never, stop, n),
    );
    paired(
        "event round trip (default spin) / raw futex ping-pong",
        "round trip",
        2_000,
        16,
        |n| raw.round_trips(n),
        |n| event_round_trips(&ping, &pong, stop, n),
    );
    {
        let floor = Floor::start();
        paired(
            "event round trip (default spin) / atomic floor",
            "round trip",
            2_000,
            16,
            |n| floor.round_trips(n),
            |n| event_round_trips(&ping, &pong, stop, n),
        );
    }

    c.final_summary();
}
