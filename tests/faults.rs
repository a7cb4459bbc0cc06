//! Fault injection: SIGKILL a participant of each primitive at a random point, and check
//! that no survivor wedges, nothing is duplicated or torn, and only what was inside the
//! dead process is lost.
//!
//! Each round forks the participants of one primitive, kills one of them after a random
//! delay (while it works), lets the survivors finish, and checks the outcome under a
//! watchdog of its own (a round that does not end in time counts as a hang, its processes
//! are killed and the next round starts). The table printed at the end has, per primitive:
//! the rounds, the kills that landed (the victim was still running), hangs, messages (or
//! acquisitions) lost, duplicated and torn, and how many losses the rules allow (the
//! messages in flight inside the dead process).
//!
//! `SHMPROC_FAULT_ROUNDS` multiplies the rounds (default 1: at least 100 kills per
//! primitive); `SHMPROC_FAULT_SEED` fixes the random seed (printed at the start).

use shmproc::queue::{ByteQueue, GetError, JoinError, JoinableQueue, Queue};
use shmproc::Arena;
use shmproc_testkit::{fork, Child, SharedPage};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

shmproc_testkit::main!(
    dead_loan_holders_are_recovered,
    kill_at_random_points,
    window_experiment
);

// ---------------------------------------------------------------------------------------
// Bookkeeping.

/// A small, fast random number generator (xorshift64*), seeded per run.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Shared memory for one round's bookkeeping, inherited by the forked participants:
/// per-message receipt counts and per-participant counters.
struct Book {
    page: SharedPage,
    messages: usize,
}

impl Book {
    /// Room for `messages` receipt counts and 64 counters.
    fn new(messages: usize) -> Book {
        Book {
            page: SharedPage::new(64 * 128 + messages.next_multiple_of(4096)),
            messages,
        }
    }

    /// Counter `i` (`< 64`), on a line of its own.
    fn counter(&self, i: usize) -> &AtomicU64 {
        self.page.atomic(i)
    }

    /// How many times message `id` was received.
    fn seen(&self, id: usize) -> &AtomicU8 {
        assert!(id < self.messages);
        // SAFETY: past the 64 counters, `messages` bytes of the zeroed shared page.
        unsafe { &*self.page.ptr().add(64 * 128 + id).cast::<AtomicU8>() }
    }
}

/// What the rounds of one primitive found.
#[derive(Default, Clone)]
struct Tally {
    name: &'static str,
    rounds: u64,
    kills: u64,
    hangs: u64,
    lost: u64,
    allowed: u64,
    duplicated: u64,
    torn: u64,
    /// What the primitive itself reported (recovered claims, abandoned tasks, ...).
    note: String,
}

impl Tally {
    fn new(name: &'static str) -> Tally {
        Tally {
            name,
            ..Tally::default()
        }
    }

    fn add(&mut self, o: &Outcome) {
        self.rounds += 1;
        self.kills += u64::from(o.killed);
        self.hangs += u64::from(o.hung);
        self.lost += o.lost;
        self.allowed += o.allowed;
        self.duplicated += o.duplicated;
        self.torn += o.torn;
    }
}

/// What one round found.
#[derive(Default, Debug)]
struct Outcome {
    /// The kill landed: the victim was still running when it was killed.
    killed: bool,
    /// Some survivor did not finish within the round's watchdog.
    hung: bool,
    lost: u64,
    /// Losses the rules allow in this round (what was inside the dead process).
    allowed: u64,
    duplicated: u64,
    torn: u64,
    /// Something the primitive reported (e.g. its count of lost messages).
    reported: u64,
    /// Claims of the dead process that survivors ended.
    recovered: u64,
    /// How long the round took after the kill.
    after_kill: Duration,
}

/// The watchdog of one round: how long the survivors may take once the victim is dead.
const ROUND_LIMIT: Duration = Duration::from_secs(10);

/// Waits for `children` until `deadline`; true if all ended. Those still running are
/// killed (and reaped).
fn reap_all(children: Vec<Child>, deadline: Instant) -> bool {
    let mut all = true;
    for c in children {
        let left = deadline.saturating_duration_since(Instant::now());
        if c.wait_timeout(left).is_none() {
            all = false;
            c.kill();
        }
    }
    all
}

/// Kills `victim` and reaps it; true if it was still running (killed by the signal).
fn kill(victim: Child) -> bool {
    victim.kill() == -libc::SIGKILL
}

/// Sleeps `us` microseconds (the random point of the kill).
fn pause_us(us: u64) {
    std::thread::sleep(Duration::from_micros(us));
}

// ---------------------------------------------------------------------------------------
// The queue family.

/// Messages per producer.
const PER: usize = 20000;

/// A message: its id and a checksum of it (so a torn message shows).
fn message(id: u64) -> [u64; 2] {
    [id, id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5555]
}

/// The id of a received message, or `None` if it is torn.
fn check(m: [u64; 2]) -> Option<u64> {
    (message(m[0]) == m).then_some(m[0])
}

/// A byte message's `[id, checksum]`, or `None` if its padding does not add up (torn).
fn bytes_message(b: &[u8]) -> Option<[u64; 2]> {
    let m: [u64; 2] = bytemuck::pod_read_unaligned(b.get(..16)?);
    let pad = b.get(16..)?;
    (pad.len() == (m[0] % 32) as usize && pad.iter().all(|&x| x == m[0] as u8)).then_some(m)
}

/// The wait of a polling participant after its `i`-th failed try: spin, and now and then
/// let the others run (two cores, five participants). The victim never yields: so it is
/// killed at an instruction of its own, not at the end of a system call.
fn spin(i: u64, victim: bool) {
    if !victim && i % 8 == 7 {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// Which queue a round uses.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Typed,
    Joinable,
    Bytes,
}

/// One round of a queue of `kind`: producers put `PER` messages each, consumers take them
/// until the queue is closed; the victim (a producer if `producer_dies`, else a consumer)
/// is killed after `delay_us`.
///
/// Counters: `p`: messages producer `p` saw `put` return for; `8 + c`: messages consumer
/// `c` took; 20: torn messages.
fn queue_round(kind: Kind, producer_dies: bool, delay_us: u64) -> Outcome {
    let (producers_n, consumers_n) = if producer_dies { (1, 3) } else { (3, 2) };
    const PRODUCERS: usize = 3;
    let arena = Arena::anonymous(4 << 20).expect("arena");
    let book = Book::new(PRODUCERS * PER);
    let q = Queue::<[u64; 2]>::new_in(&arena, 64).expect("queue");
    let jq = JoinableQueue::<[u64; 2]>::new_in(&arena, 64).expect("queue");
    let bq = ByteQueue::new_in(&arena, 64, 64).expect("queue");
    // Half the rounds block in `put` / `get` (sleeping when they must wait), half poll
    // with `try_*` and spin: so the victim is killed in every state (asleep, in a system
    // call, and at any instruction of its own: a process killed in a system call dies at
    // its end, never inside a claim).
    let polling = delay_us % 2 == 1;
    let put = |m: [u64; 2], victim: bool| {
        let mut b = Vec::new();
        if kind == Kind::Bytes {
            // A message of 16 to 47 bytes: the id, the checksum, and a padding that
            // depends on the id (so a torn message shows in its length or its bytes).
            b = bytemuck::bytes_of(&m).to_vec();
            b.extend(std::iter::repeat_n(m[0] as u8, (m[0] % 32) as usize));
        }
        if !polling {
            return match kind {
                Kind::Typed => q.put(m).is_ok(),
                Kind::Joinable => jq.put(m).is_ok(),
                Kind::Bytes => bq.put_bytes(&b).is_ok(),
            };
        }
        for i in 0u64.. {
            let r = match kind {
                Kind::Typed => q.try_put(m).map_err(|e| e.is_disconnected()),
                Kind::Joinable => jq.try_put(m).map_err(|e| e.is_disconnected()),
                Kind::Bytes => bq
                    .try_put_bytes(&b)
                    .map_err(|e| e == shmproc::queue::BytePutError::Disconnected),
            };
            match r {
                Ok(()) => return true,
                Err(true) => return false,
                Err(false) => spin(i, victim),
            }
        }
        false
    };
    let get = |victim: bool| -> Result<Option<[u64; 2]>, GetError> {
        if polling {
            for i in 0u64.. {
                let r = match kind {
                    Kind::Typed => q.try_get().map(Some),
                    Kind::Joinable => jq.try_get().map(Some),
                    Kind::Bytes => bq.try_get_bytes().map(|b| bytes_message(&b)),
                };
                match r {
                    Err(GetError::Empty) => spin(i, victim),
                    r => return r,
                }
            }
        }
        match kind {
            Kind::Typed => q.get().map(Some),
            Kind::Joinable => jq.get().map(Some),
            Kind::Bytes => bq.get_bytes().map(|b| bytes_message(&b)),
        }
    };

    let mut producers = Vec::new();
    for p in 0..producers_n {
        let book = &book;
        let put = &put;
        producers.push(fork(move || {
            for s in 0..PER {
                let id = (p * PER + s) as u64;
                assert!(put(message(id), producer_dies && p == 0), "put failed");
                book.counter(p).store(s as u64 + 1, Ordering::Release);
            }
        }));
    }
    let mut consumers = Vec::new();
    for c in 0..consumers_n {
        let book = &book;
        let (get, jq) = (&get, &jq);
        consumers.push(fork(move || loop {
            match get(!producer_dies && c == 0) {
                Ok(Some(m)) => {
                    match check(m) {
                        Some(id) if (id as usize) < PRODUCERS * PER => {
                            book.seen(id as usize).fetch_add(1, Ordering::AcqRel);
                        }
                        _ => {
                            book.counter(20).fetch_add(1, Ordering::AcqRel);
                        }
                    }
                    if kind == Kind::Joinable {
                        jq.task_done().expect("task_done");
                    }
                    book.counter(8 + c).fetch_add(1, Ordering::Release);
                }
                Ok(None) => {
                    // A byte message that does not add up: torn.
                    book.counter(20).fetch_add(1, Ordering::AcqRel);
                }
                Err(GetError::Disconnected) => break,
                Err(e) => panic!("get: {e}"),
            }
        }));
    }
    pause_us(delay_us);
    let mut o = Outcome::default();
    let v = if producer_dies {
        producers.remove(0)
    } else {
        consumers.remove(0)
    };
    o.killed = kill(v);
    let killed_at = Instant::now();
    let deadline = killed_at + ROUND_LIMIT;
    let ok = reap_all(producers, deadline);
    match kind {
        Kind::Typed => q.close(),
        Kind::Joinable => jq.close(),
        Kind::Bytes => bq.close(),
    };
    o.hung = !(reap_all(consumers, deadline) && ok);
    o.after_kill = killed_at.elapsed();
    if std::env::var("FAULT_DEBUG").is_ok() {
        eprintln!(
            "producer dies {producer_dies} delay {delay_us} polling {polling} killed {} progress {:?} recovered {}",
            o.killed,
            (0..12).map(|i| book.counter(i).load(Ordering::Relaxed)).collect::<Vec<_>>(),
            match kind { Kind::Typed => q.recovered(), Kind::Joinable => jq.recovered(), Kind::Bytes => bq.recovered() }
        );
    }
    if kind == Kind::Joinable && !o.hung {
        // Every task left was abandoned by the dead consumer, or none: `join` ends.
        let t = Instant::now();
        match jq.join_timeout(ROUND_LIMIT) {
            Ok(()) => {}
            Err(JoinError::Abandoned { tasks }) => o.reported += tasks,
            Err(e) => {
                eprintln!("join: {e} after {:?}", t.elapsed());
                o.hung = true;
            }
        }
    }
    // The tally. A message a producer saw `put` return for must arrive once; the one a
    // dead producer was putting may or may not; one a dead consumer took may not.
    o.torn = book.counter(20).load(Ordering::Acquire);
    for p in 0..PRODUCERS {
        let sent = book.counter(p).load(Ordering::Acquire) as usize;
        for s in 0..PER {
            let n = u64::from(book.seen(p * PER + s).load(Ordering::Acquire));
            o.duplicated += n.saturating_sub(1);
            // A message past `sent` was in flight inside a dead producer (or never put).
            if n == 0 && s < sent {
                o.lost += 1;
            }
        }
    }
    if !producer_dies {
        // The dead consumer may have taken one message (claimed, or returned from `get`)
        // and not recorded it.
        o.allowed = 1;
    }
    o.recovered = match kind {
        Kind::Typed => q.recovered(),
        Kind::Joinable => jq.recovered(),
        Kind::Bytes => bq.recovered(),
    };
    o.reported += match kind {
        Kind::Typed => q.lost(),
        Kind::Joinable => jq.lost(),
        Kind::Bytes => bq.lost(),
    };
    o
}

// ---------------------------------------------------------------------------------------
// The driver.

fn kill_at_random_points() {
    let seed = std::env::var("SHMPROC_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let scale: u64 = std::env::var("SHMPROC_FAULT_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    println!("\nfault injection: seed {seed} (SHMPROC_FAULT_SEED to repeat)");
    let mut rng = Rng::new(seed);
    let mut tallies = Vec::new();
    let started = Instant::now();

    for (kind, name) in [
        (Kind::Typed, "Queue"),
        (Kind::Joinable, "JoinableQueue"),
        (Kind::Bytes, "ByteQueue"),
    ] {
        let mut t = Tally::new(name);
        let (mut reported, mut recovered, mut slowest) = (0, 0, Duration::ZERO);
        while t.kills < 40 * scale {
            let o = queue_round(kind, rng.below(2) == 0, rng.below(4000));
            reported += o.reported;
            recovered += o.recovered;
            slowest = slowest.max(o.after_kill);
            t.add(&o);
        }
        t.note = format!(
            "claims recovered {recovered}; lost / abandoned as reported {reported}; slowest round after its kill {:.0} ms",
            slowest.as_secs_f64() * 1e3
        );
        tallies.push(t);
    }

    print_table(&tallies, started.elapsed());
    for t in &tallies {
        assert_eq!(t.hangs, 0, "{}: a survivor hung", t.name);
        assert_eq!(t.duplicated, 0, "{}: a message arrived twice", t.name);
        assert_eq!(t.torn, 0, "{}: a torn message arrived", t.name);
        assert!(
            t.lost <= t.allowed,
            "{}: {} lost where only {} were inside dead processes",
            t.name,
            t.lost,
            t.allowed
        );
    }
}

fn print_table(tallies: &[Tally], took: Duration) {
    println!(
        "\n| primitive | rounds | kills | hangs | lost | allowed | duplicated | torn | notes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for t in tallies {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            t.name, t.rounds, t.kills, t.hangs, t.lost, t.allowed, t.duplicated, t.torn, t.note
        );
    }
    println!("\n({:.1} s)", took.as_secs_f64());
}

fn dead_loan_holders_are_recovered() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let q = Queue::<u64>::new_in(&arena, 4).unwrap();
    let ready = shmproc_testkit::Signal::new();
    // A producer that dies holding a put loan, then a consumer that dies holding a get
    // loan.
    let p = {
        let (q, ready) = (q.clone(), &ready);
        fork(move || {
            let _loan = q.put_loan().unwrap();
            ready.notify();
            std::thread::sleep(Duration::from_secs(60));
        })
    };
    assert!(ready.wait());
    q.put(7).unwrap();
    assert!(kill(p));
    let t = Instant::now();
    assert_eq!(q.get(), Ok(7), "the dead producer's slot is skipped");
    println!("dead producer's claim recovered in {:?}", t.elapsed());
    assert_eq!(q.recovered(), 1);
    q.put(8).unwrap();
    let c = {
        let (q, ready) = (q.clone(), &ready);
        fork(move || {
            let _loan = q.get_loan().unwrap();
            ready.notify();
            std::thread::sleep(Duration::from_secs(60));
        })
    };
    assert!(ready.wait());
    assert!(kill(c));
    // Fill the ring so that a producer needs the dead consumer's slot again.
    for i in 0..4 {
        q.put_timeout(i, Duration::from_secs(5)).unwrap();
    }
    assert_eq!(q.lost(), 1, "the dead consumer's message is counted lost");
    for i in 0..4 {
        assert_eq!(q.get(), Ok(i));
    }
}

fn window_experiment() {
    let mut rng = Rng::new(12345);
    let mut hits = 0;
    let n = 200;
    for _ in 0..n {
        let arena = Arena::anonymous(1 << 20).unwrap();
        let q = Queue::<u64>::new_in(&arena, 64).unwrap();
        let v = {
            let q = q.clone();
            fork(move || loop {
                q.put(1).unwrap();
                q.get().unwrap();
            })
        };
        pause_us(200 + rng.below(2000));
        kill(v);
        // A claim outstanding? Put 64 and get 64: a stuck slot shows as a recovery.
        for i in 0..64 {
            if q.put_timeout(i, Duration::from_secs(2)).is_err() {
                break;
            }
            let _ = q.get_timeout(Duration::from_secs(2));
        }
        if q.recovered() > 0 {
            hits += 1;
        }
    }
    println!("window hits: {hits} / {n}");
}
