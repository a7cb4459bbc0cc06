//! Event benchmarks: wake-up latency between two processes (a ping-pong of two events:
//! `set` on one side, `wait` + `clear` on the other), against the raw futex ping-pong
//! (`common::FutexPingPong`, the one futex baseline, also the queue bench's) and the
//! spinning atomic floor, measured in the same run (`common::paired`); plus the cost of
//! `set` / `is_set` / `wait` on a set event when nobody has to sleep.
//!
//! The pairs against the futex baseline run pinned, parent on CPU 0 and every child on
//! another CPU (`common::Pinned`, `common::pin_apart`), subject and baseline alike, as the
//! queue bench's blocked pair does: left to the scheduler, a futex ping-pong sometimes
//! runs both sides on one vCPU and sometimes on two, and the two sides of a pair need not
//! land the same way. (Until 2026-12 this bench measured against a futex ping-pong of its
//! own, two words and a child forked per measurement, unpinned; the queue bench measured
//! against another under the same name.)
//!
//! `cargo bench -p shmproc-benches --bench event` (about a minute); `cargo test -p
//! shmproc-benches --benches` runs each once.
mod common;

use common::{fork, paired, pin_apart, Floor, FutexPingPong, Pinned, SharedPage};
use criterion::black_box;
use shmproc::event::Event;
use shmproc::{Arena, SpinPolicy};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `n` round trips through two events (ping, pong) with a forked child.
fn event_round_trips(ping: &Event, pong: &Event, stop: &AtomicU64, n: u64) -> Duration {
    stop.store(0, Ordering::SeqCst);
    let child = fork(|| {
        pin_apart();
        loop {
            ping.wait();
            ping.clear();
            if stop.load(Ordering::SeqCst) != 0 {
                return;
            }
            pong.set();
        }
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
    child.join();
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
    let raw = FutexPingPong::start();

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
    {
        // Pinned: see the module docs. The futex peer and the events' children pin
        // themselves to another CPU.
        let _pin = Pinned::to(0);
        let raw = FutexPingPong::start();
        paired(
            "event round trip (SpinPolicy::NEVER) / raw futex ping-pong (pinned)",
            "round trip",
            2_000,
            16,
            |n| raw.round_trips(n),
            |n| event_round_trips(&ping_never, &pong_never, stop, n),
        );
        paired(
            "event round trip (default spin) / raw futex ping-pong (pinned)",
            "round trip",
            2_000,
            16,
            |n| raw.round_trips(n),
            |n| event_round_trips(&ping, &pong, stop, n),
        );
    }
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
