//! Queue benches, each against an in-run baseline (see `common::paired`):
//!
//! * one-way latency between two processes, consumer spinning: `Queue<u64>` ping-pong vs
//!   the floor (atomic ping-pong between the same two processes);
//! * one-way latency, consumer blocked in the futex: `Queue<u64>` (no spinning) vs the raw
//!   futex ping-pong (`common::FutexPingPong`, the one futex baseline, also the event
//!   bench's);
//! * the blocking `put` / `get` vs `try_put` / `try_get` in one process, on a queue that
//!   never waits (the calls' own cost: should be equal);
//! * SPSC and MPMC throughput of `u64` between processes vs crossbeam's `ArrayQueue`
//!   between threads, with the blocking `put` / `get`; and MPMC once more with the
//!   baseline's own loop (`try_put` / `try_get`, yield on `Full` / `Empty`), which
//!   compares the rings themselves;
//! * MPMC once more against crossbeam's ring *between processes* (its heap in shared
//!   memory, see `BenchAlloc`), and crossbeam between processes against crossbeam between
//!   threads: the ring apart from the processes-vs-threads difference;
//! * SPSC throughput vs an OS pipe (one 8-byte `write` / `read` per message).
//!
//! `cargo bench -p shmproc-benches --bench queue` takes about two minutes; `cargo test -p
//! shmproc-benches --benches` seconds.
//!
//! Measured on the 2-vCPU machine, median of the per-rep ratios (p10 / p90), or the range
//! (and median) of several runs' medians where the machine drifted between them;
//! 2026-11-23, after the claims kept the slot view's fields in registers
//! (`queue::core::Fixed`, `MpmcRing::claim_fast`):
//!
//! | pair (subject vs baseline)                                   | ratio     | p10 / p90    | subject / baseline       |
//! |--------------------------------------------------------------|-----------|--------------|--------------------------|
//! | latency, spinning consumer, vs floor (five runs)             | 1.37-1.42 |              | 88-91 / 64-65 ns round trip |
//! | latency, blocked consumer, vs raw futex ping-pong (pinned)   | 1.06      | 1.00 / 1.72  | 44.0 / 42.3 us round trip |
//! | uncontended put/get vs try_put/try_get (one process)         | 0.98      | 0.97 / 0.99  | 6.8 / 6.9 ns             |
//! | SPSC throughput u64 (processes) vs crossbeam (threads), two runs | 0.56-0.58 |         | 10.4 / 18.4-18.8 ns per msg |
//! | MPMC 2x2 throughput vs crossbeam ArrayQueue, thirteen runs   | 1.04-1.18, median 1.12 |  | 10.5-10.8 / 8.9-10.3 ns per msg |
//! | MPMC 2x2, try_put / try_get + yield, vs crossbeam, thirteen runs | 1.04-1.18, median 1.06 | | 9.7-10.2 / 9.1-9.8 ns per msg |
//! | MPMC 2x2, SpinPolicy::NEVER, vs crossbeam, nine runs         | 2.21-2.86, median 2.33 |  | 21.2-28.4 / 9.3-9.8 ns per msg |
//! | MPMC 2x2, try + yield, vs crossbeam between processes, thirteen runs | 0.96-1.02, median 0.99 | | 9.8-10.2 / 9.8-10.4 ns per msg |
//! | crossbeam MPMC 2x2, processes vs threads, thirteen runs      | 1.05-1.15, median 1.08 |  | 9.8-10.5 / 8.9-9.5 ns per msg |
//! | SPSC throughput vs OS pipe (8-byte write / read), two runs   | 0.04-0.05 |              | 10.7-11.7 / 236-254 ns per msg |
//!
//! The blocked pair pins the parent to CPU 0 and the child to CPU 1, for the queue and
//! for the futex baseline (`common::Pinned`, `common::pin_apart`). Unpinned it measured the scheduler: one run
//! woke the baseline's peer on the waker's vCPU (3.8 us) and the queue's on the other
//! (43 us), 7.6x; the next run the other way round, 0.19x.
//!
//! The timekeeper of the throughput runs (the parent) sleeps until the consumers are done;
//! until 2026-11-23 it spun, which on two cores took a CPU from the parties it timed and
//! made crossbeam's yielding threads look 20x slower than they are (the old "MPMC 0.20x").
//!
//! Throughput against the "at least crossbeam" target: SPSC meets it. MPMC misses it by
//! 1.04-1.18x (medians 1.12x blocking, 1.06x with the baseline's loop), and all of that is
//! processes against threads: crossbeam's own ring loses 1.05-1.15x when moved to
//! processes, and ours matches it there (0.96-1.02x). Before the registers were kept the
//! MPMC pairs measured 1.10-1.18x, before the fast paths 1.37-1.47x; until earlier that day
//! the blocking `get` cost twice `try_get` (a store-forwarding stall, see
//! `MpmcRing::push_step`) and the blocking pairs measured ~2.4-2.8x. The blocking pair
//! trails the try + yield one by ~5%: a blocked consumer spins, and takes each message as
//! soon as it is published, where one that yields comes back to a batch; waiting for a
//! batch would cost the spinning round trip the same wait.
mod common;

use common::{
    bench_mode, fork, paired, pin_apart, Child, Floor, FutexPingPong, Pinned, SharedPage,
};
use crossbeam_queue::ArrayQueue;
use rustix::thread::futex;
use shmproc::queue::{GetError, PutError, Queue};
use shmproc::{Arena, SpinPolicy};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Crossbeam's ring between processes: its heap in shared memory.

/// This binary's allocator: the system's, except while [`SharedHeap`] is on, when
/// allocations come from one `MAP_SHARED` region (bump-allocated, never freed), so that a
/// crossbeam `ArrayQueue` made then (its struct and its buffer) is the same memory in the
/// processes forked after. It lets the bench run crossbeam's ring between processes, as
/// ours runs, and so tell the ring apart from the processes-vs-threads difference.
struct BenchAlloc;

/// `SHARED_REGION` bytes, mapped on first use (0: not yet).
static SHARED_BASE: AtomicUsize = AtomicUsize::new(0);
/// Bytes of the region handed out.
static SHARED_USED: AtomicUsize = AtomicUsize::new(0);
/// True while allocations go to the region.
static SHARED_ON: AtomicBool = AtomicBool::new(false);
const SHARED_REGION: usize = 16 << 20;

impl BenchAlloc {
    fn region() -> usize {
        // Relaxed: the bench allocates from one thread while the switch is on.
        let base = SHARED_BASE.load(Ordering::Relaxed);
        if base != 0 {
            return base;
        }
        // SAFETY: a fresh anonymous shared mapping; nothing else refers to it.
        let p = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                SHARED_REGION,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
            )
        }
        .expect("mmap");
        SHARED_BASE.store(p as usize, Ordering::Relaxed);
        p as usize
    }

    fn in_region(ptr: *mut u8) -> bool {
        // Relaxed: as above.
        let base = SHARED_BASE.load(Ordering::Relaxed);
        base != 0 && (base..base + SHARED_REGION).contains(&(ptr as usize))
    }
}

// SAFETY: region allocations are aligned as asked, inside the region, and never reused
// while the switch is off (the bump only moves forward until `SharedHeap` resets it, when
// nothing allocated from it is alive); everything else is the system allocator's.
unsafe impl std::alloc::GlobalAlloc for BenchAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // Relaxed: switched only while the bench runs one thread (`SharedHeap`), which is
        // the thread that allocates.
        if !SHARED_ON.load(Ordering::Relaxed) {
            // SAFETY: forwarded as is.
            return unsafe { std::alloc::System.alloc(layout) };
        }
        let base = Self::region();
        // Relaxed: one thread allocates while the switch is on.
        let used = SHARED_USED.load(Ordering::Relaxed);
        let start = (base + used).next_multiple_of(layout.align()) - base;
        if start + layout.size() > SHARED_REGION {
            return std::ptr::null_mut();
        }
        SHARED_USED.store(start + layout.size(), Ordering::Relaxed);
        (base + start) as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        if !Self::in_region(ptr) {
            // SAFETY: allocated by the system allocator (not in the region).
            unsafe { std::alloc::System.dealloc(ptr, layout) }
        }
    }
}

#[global_allocator]
static ALLOC: BenchAlloc = BenchAlloc;

/// While alive, every allocation of the process goes to the shared region (see
/// [`BenchAlloc`]): the switch is one global flag, so turn it on only while a single
/// thread runs.
struct SharedHeap;

impl SharedHeap {
    /// Switches the shared heap on, reusing the region from its start: call it only when
    /// nothing made under an earlier `SharedHeap` is alive.
    fn on() -> SharedHeap {
        // Relaxed: see `BenchAlloc`.
        SHARED_USED.store(0, Ordering::Relaxed);
        SHARED_ON.store(true, Ordering::Relaxed);
        SharedHeap
    }
}

impl Drop for SharedHeap {
    fn drop(&mut self) {
        // Relaxed: see `BenchAlloc`.
        SHARED_ON.store(false, Ordering::Relaxed);
    }
}

const STOP: u64 = u64::MAX;
const CAP: usize = 1024;
/// Spin rounds of the throughput handles (PAUSEs, then yields: see `SpinPolicy`): longer than
/// the default before sleeping, as crossbeam's side never sleeps.
const THROUGHPUT_SPIN_ROUNDS: u32 = 200;

// ---------------------------------------------------------------------------------------
// Latency: a persistent echo process.

/// A child that echoes every value of `ping` into `pong` until `STOP`.
struct Echo {
    ping: Queue<u64>,
    pong: Queue<u64>,
    child: Option<Child>,
    spin: bool,
}

impl Echo {
    fn start(arena: &Arena, spin: bool) -> Echo {
        let mut ping = Queue::<u64>::new_in(arena, 16).unwrap();
        let mut pong = Queue::<u64>::new_in(arena, 16).unwrap();
        if !spin {
            // Blocked: both sides sleep in the futex at once.
            ping.set_spin(SpinPolicy::NEVER);
            pong.set_spin(SpinPolicy::NEVER);
        }
        let child = {
            let (ping, pong) = (ping.clone(), pong.clone());
            fork(move || {
                // Blocked: every wake-up crosses CPUs (the parent is pinned, see `Pinned`).
                pin_apart();
                loop {
                    let v = if spin {
                        spin_get(&ping)
                    } else {
                        ping.get().unwrap()
                    };
                    if v == STOP {
                        return;
                    }
                    pong.put(v).unwrap();
                }
            })
        };
        Echo {
            ping,
            pong,
            child: Some(child),
            spin,
        }
    }

    fn round_trips(&self, n: u64) -> Duration {
        // One untimed round trip: the child is awake (it may have slept since the last
        // rep, see `spin_get`) before the clock starts.
        self.ping.put(0).unwrap();
        assert_eq!(spin_get(&self.pong), 0);
        let t = Instant::now();
        for i in 0..n {
            self.ping.put(i).unwrap();
            let v = if self.spin {
                spin_get(&self.pong)
            } else {
                self.pong.get().unwrap()
            };
            debug_assert_eq!(v, i);
        }
        t.elapsed()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.ping.put(STOP).unwrap();
        if let Some(child) = self.child.take() {
            child.join();
        }
    }
}

/// Busy polls of [`spin_get`] before it blocks: ~1 ms, far beyond a round trip.
const SPIN_GETS: u32 = 1 << 16;

/// A consumer that does not sleep while messages keep coming: it polls with `try_get`,
/// and only after [`SPIN_GETS`] empty polls (~1 ms) blocks in `get`. So the echo child
/// sleeps between the subject's reps instead of spinning through the baseline's (until
/// 2026-12 it never slept: during each floor rep three processes spun on two CPUs, and
/// on a busy machine the floor read 12.7 µs a round trip).
#[inline]
fn spin_get(q: &Queue<u64>) -> u64 {
    for _ in 0..SPIN_GETS {
        if let Ok(v) = q.try_get() {
            return v;
        }
        std::hint::spin_loop();
    }
    q.get().unwrap()
}

// ---------------------------------------------------------------------------------------
// Throughput.

/// A go / done handshake in shared memory, so that the timed section excludes fork.
struct Gate {
    page: SharedPage,
}

impl Gate {
    fn new() -> Gate {
        Gate {
            page: SharedPage::new(4096),
        }
    }
    fn go(&self) -> &AtomicU64 {
        self.page.atomic(0)
    }
    fn done(&self) -> &AtomicU32 {
        self.page.atomic32(1)
    }
    /// A consumer has taken its last message.
    fn finish(&self) {
        // Release: pairs with the Acquire load in `wait_done`.
        self.done().fetch_add(1, Ordering::Release);
        let _ = futex::wake(self.done(), futex::Flags::empty(), u32::MAX);
    }
    fn wait_go(&self) {
        // Acquire: pairs with the Release store in `start`.
        while self.go().load(Ordering::Acquire) == 0 {
            std::hint::spin_loop();
        }
    }
    fn start(&self) -> Instant {
        let t = Instant::now();
        self.go().store(1, Ordering::Release);
        t
    }
    /// Sleeps (never spins: on two cores a spinning timekeeper would take a CPU from the
    /// producers and consumers it times) until `parties` consumers finished.
    fn wait_done(&self, parties: u32) {
        loop {
            // Acquire: pairs with the Release increment in `finish`.
            let done = self.done().load(Ordering::Acquire);
            if done >= parties {
                return;
            }
            let _ = futex::wait(self.done(), futex::Flags::empty(), done, None);
        }
    }
}

/// `producers` processes put `n` u64s in total through a queue of `CAP` slots and
/// `consumers` processes get them with the blocking `put` / `get` (spin, then sleep in the
/// futex: what users write); returns the time from go to the last get.
fn queue_throughput(producers: u64, consumers: u64, n: u64) -> Duration {
    queue_throughput_with(
        producers,
        consumers,
        n,
        SpinPolicy::rounds(THROUGHPUT_SPIN_ROUNDS),
        |q, v| q.put(v).unwrap(),
        |q| q.get().unwrap(),
    )
}

/// [`queue_throughput`] with parties that sleep at once when they must wait
/// (`SpinPolicy::NEVER`): what the sleep / wake protocol costs when it is used all the time
/// (each wait is a `futex_wait`, each claim that finds a party waiting a `futex_wake`).
fn queue_throughput_sleeping(producers: u64, consumers: u64, n: u64) -> Duration {
    queue_throughput_with(
        producers,
        consumers,
        n,
        SpinPolicy::NEVER,
        |q, v| q.put(v).unwrap(),
        |q| q.get().unwrap(),
    )
}

/// [`queue_throughput`] with `try_put` / `try_get` and `yield_now` on `Full` / `Empty`:
/// the baseline's own loop, to compare the rings themselves.
fn queue_throughput_try_yield(producers: u64, consumers: u64, n: u64) -> Duration {
    let put = |q: &Queue<u64>, mut v: u64| loop {
        match q.try_put(v) {
            Ok(()) => return,
            Err(PutError::Full(back)) => {
                v = back;
                std::thread::yield_now();
            }
            Err(e) => panic!("{e}"),
        }
    };
    let get = |q: &Queue<u64>| loop {
        match q.try_get() {
            Ok(v) => return v,
            Err(GetError::Empty) => std::thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    };
    queue_throughput_with(
        producers,
        consumers,
        n,
        SpinPolicy::rounds(THROUGHPUT_SPIN_ROUNDS),
        put,
        get,
    )
}

/// The run of [`queue_throughput`], with the queue's spin policy `spin` and `put` and `get`
/// as the parties' operations (each pair of closures gets its own monomorphized copy of
/// the loops).
fn queue_throughput_with(
    producers: u64,
    consumers: u64,
    n: u64,
    spin: SpinPolicy,
    put: impl Fn(&Queue<u64>, u64) + Copy,
    get: impl Fn(&Queue<u64>) -> u64 + Copy,
) -> Duration {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let mut q = Queue::<u64>::new_in(&arena, CAP).unwrap();
    // The callers spin (PAUSE, then yield) for longer than the default before sleeping, as
    // crossbeam's side never sleeps: on a full / empty ring each side yields, like the
    // baseline's `yield_now` loop; or not at all (`queue_throughput_sleeping`).
    q.set_spin(spin);
    let gate = Gate::new();
    let per_p = n / producers;
    let per_c = per_p * producers / consumers;
    let mut children = Vec::new();
    for _ in 0..consumers {
        let (q, gate) = (q.clone(), &gate);
        children.push(fork(move || {
            gate.wait_go();
            let mut sum = 0u64;
            for _ in 0..per_c {
                sum = sum.wrapping_add(get(&q));
            }
            std::hint::black_box(sum);
            gate.finish();
        }));
    }
    for _ in 0..producers {
        let (q, gate) = (q.clone(), &gate);
        children.push(fork(move || {
            gate.wait_go();
            for i in 0..per_p {
                put(&q, i);
            }
        }));
    }
    let t = gate.start();
    gate.wait_done(consumers as u32);
    let e = t.elapsed();
    for child in children {
        child.join();
    }
    e
}

/// A throughput run: `(producers, consumers, n)` to the time from go to the last get.
type Throughput = fn(u64, u64, u64) -> Duration;

/// A crossbeam producer: pushes `0..n`, yielding while the queue is full.
fn crossbeam_produce(q: &ArrayQueue<u64>, n: u64) {
    for i in 0..n {
        let mut v = i;
        while let Err(back) = q.push(v) {
            v = back;
            std::thread::yield_now();
        }
    }
}

/// A crossbeam consumer: pops `n` values, yielding while the queue is empty.
fn crossbeam_consume(q: &ArrayQueue<u64>, n: u64) {
    let mut sum = 0u64;
    for _ in 0..n {
        let v = loop {
            match q.pop() {
                Some(v) => break v,
                None => std::thread::yield_now(),
            }
        };
        sum = sum.wrapping_add(v);
    }
    std::hint::black_box(sum);
}

/// The same with crossbeam's `ArrayQueue` between threads (spinning with `yield_now` on
/// full / empty: it has no blocking operations).
fn crossbeam_throughput(producers: u64, consumers: u64, n: u64) -> Duration {
    let q = Arc::new(ArrayQueue::<u64>::new(CAP));
    let gate = Arc::new(AtomicU64::new(0));
    let per_p = n / producers;
    let per_c = per_p * producers / consumers;
    let mut cs = Vec::new();
    for _ in 0..consumers {
        let (q, gate) = (q.clone(), gate.clone());
        cs.push(std::thread::spawn(move || {
            while gate.load(Ordering::Acquire) == 0 {
                std::hint::spin_loop();
            }
            crossbeam_consume(&q, per_c);
        }));
    }
    let mut ps = Vec::new();
    for _ in 0..producers {
        let (q, gate) = (q.clone(), gate.clone());
        ps.push(std::thread::spawn(move || {
            while gate.load(Ordering::Acquire) == 0 {
                std::hint::spin_loop();
            }
            crossbeam_produce(&q, per_p);
        }));
    }
    let t = Instant::now();
    gate.store(1, Ordering::Release);
    // The timekeeper blocks in `join`, as `queue_throughput`'s sleeps in `wait_done`.
    for h in cs {
        h.join().unwrap();
    }
    let e = t.elapsed();
    for h in ps {
        h.join().unwrap();
    }
    e
}

/// [`crossbeam_throughput`] between processes: the `ArrayQueue` made in the shared heap
/// (see [`BenchAlloc`]), forked producers and consumers with the same loops, timed as
/// [`queue_throughput`] times ours.
fn crossbeam_process_throughput(producers: u64, consumers: u64, n: u64) -> Duration {
    let q: Box<ArrayQueue<u64>> = {
        let _shared = SharedHeap::on();
        Box::new(ArrayQueue::new(CAP))
    };
    let q: &ArrayQueue<u64> = &q;
    let gate = Gate::new();
    let per_p = n / producers;
    let per_c = per_p * producers / consumers;
    let mut children = Vec::new();
    for _ in 0..consumers {
        let gate = &gate;
        children.push(fork(move || {
            gate.wait_go();
            crossbeam_consume(q, per_c);
            gate.finish();
        }));
    }
    for _ in 0..producers {
        let gate = &gate;
        children.push(fork(move || {
            gate.wait_go();
            crossbeam_produce(q, per_p);
        }));
    }
    let t = gate.start();
    gate.wait_done(consumers as u32);
    let e = t.elapsed();
    for child in children {
        child.join();
    }
    // Every message was taken: the consumers counted them.
    assert!(q.is_empty());
    e
}

/// SPSC through an OS pipe: one 8-byte write and one 8-byte read per message.
fn pipe_throughput(n: u64) -> Duration {
    let (r, w) = rustix::pipe::pipe().unwrap();
    let gate = Gate::new();
    let child = {
        let gate = &gate;
        let w = &w;
        fork(move || {
            gate.wait_go();
            for i in 0..n {
                rustix::io::write(w, &i.to_le_bytes()).unwrap();
            }
        })
    };
    drop(w);
    let t = gate.start();
    let mut buf = [0u8; 8];
    let mut sum = 0u64;
    for _ in 0..n {
        let mut got = 0;
        while got < 8 {
            got += rustix::io::read(&r, &mut buf[got..]).unwrap();
        }
        sum = sum.wrapping_add(u64::from_le_bytes(buf));
    }
    std::hint::black_box(sum);
    let e = t.elapsed();
    child.join();
    e
}

/// One process puts and gets `n` values, 512 at a time, with the blocking calls (`put` /
/// `get`) or the non-blocking ones (`try_put` / `try_get`): the calls' own cost, on a
/// queue that never waits. The two should cost the same. Before the fix in
/// `MpmcRing::push_step` a loop of `get`s alone paid ~5 ns more per call than one of
/// `try_get`s; in this loop, where the compiler lays the calls out differently, the old
/// code measured 1.09x (1.08-1.41), the fixed 1.01x.
fn uncontended(q: &Queue<u64>, n: u64, blocking: bool) -> Duration {
    let t = Instant::now();
    for base in (0..n).step_by(512) {
        let end = (base + 512).min(n);
        let mut sum = 0u64;
        if blocking {
            (base..end).for_each(|i| q.put(i).unwrap());
            (base..end).for_each(|_| sum = sum.wrapping_add(q.get().unwrap()));
        } else {
            (base..end).for_each(|i| q.try_put(i).unwrap());
            (base..end).for_each(|_| sum = sum.wrapping_add(q.try_get().unwrap()));
        }
        std::hint::black_box(sum);
    }
    t.elapsed()
}

fn main() {
    let mut c = common::criterion();
    let arena = Arena::anonymous(1 << 20).unwrap();
    let reps = 20;

    // Latency, spinning consumer.
    {
        let echo = Echo::start(&arena, true);
        let floor = Floor::start();
        c.bench_function("queue/latency_spin_round_trip", |b| {
            b.iter_custom(|n| echo.round_trips(n))
        });
        paired(
            "queue latency, spinning consumer, vs floor (round trip)",
            "round-trip",
            20_000,
            reps,
            |n| floor.round_trips(n),
            |n| echo.round_trips(n),
        );
    }

    // Latency, blocked consumer: both sides of both pairs pinned, parent to CPU 0 and
    // child to CPU 1, so that every wake-up crosses CPUs (see `Pinned`).
    {
        let _pin = Pinned::to(0);
        let echo = Echo::start(&arena, false);
        let futex = FutexPingPong::start();
        c.bench_function("queue/latency_blocked_round_trip", |b| {
            b.iter_custom(|n| echo.round_trips(n))
        });
        paired(
            "queue latency, blocked consumer, vs raw futex ping-pong (round trip)",
            "round-trip",
            2_000,
            reps,
            |n| futex.round_trips(n),
            |n| echo.round_trips(n),
        );
    }

    // The calls' own cost, one process.
    {
        let q = Queue::<u64>::new_in(&arena, CAP).unwrap();
        paired(
            "queue uncontended put/get vs try_put/try_get (one process)",
            "put+get",
            1_000_000,
            reps,
            |n| uncontended(&q, n, false),
            |n| uncontended(&q, n, true),
        );
    }

    // Throughput.
    let n = if bench_mode() { 1_000_000 } else { 1_000 };
    c.bench_function("queue/spsc_throughput_1M_u64", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| queue_throughput(1, 1, n)).sum())
    });
    // The same parties and the same n against crossbeam, with each subject loop.
    let pairs: [(&str, u64, Throughput); 4] = [
        (
            "queue SPSC throughput vs crossbeam ArrayQueue (threads)",
            1,
            queue_throughput,
        ),
        (
            "queue MPMC 2x2 throughput vs crossbeam ArrayQueue (threads)",
            2,
            queue_throughput,
        ),
        (
            "queue MPMC 2x2 throughput, try_put/try_get + yield (the baseline's loop), vs crossbeam",
            2,
            queue_throughput_try_yield,
        ),
        (
            "queue MPMC 2x2 throughput, parties that sleep at once (SpinPolicy::NEVER), vs crossbeam",
            2,
            queue_throughput_sleeping,
        ),
    ];
    for (name, parties, subject) in pairs {
        paired(
            name,
            "msg",
            n,
            reps / 2,
            |n| crossbeam_throughput(parties, parties, n),
            |n| subject(parties, parties, n),
        );
    }
    // The rings alone: crossbeam's between processes too, with its own loop on both sides.
    paired(
        "queue MPMC 2x2, try_put/try_get + yield, vs crossbeam ArrayQueue between processes",
        "msg",
        n,
        reps / 2,
        |n| crossbeam_process_throughput(2, 2, n),
        |n| queue_throughput_try_yield(2, 2, n),
    );
    paired(
        "crossbeam ArrayQueue MPMC 2x2, processes vs threads",
        "msg",
        n,
        reps / 2,
        |n| crossbeam_throughput(2, 2, n),
        |n| crossbeam_process_throughput(2, 2, n),
    );
    paired(
        "queue SPSC throughput vs OS pipe (8-byte write/read)",
        "msg",
        n / 5,
        reps / 2,
        pipe_throughput,
        |n| queue_throughput(1, 1, n),
    );

    c.final_summary();
}
