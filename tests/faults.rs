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
//! primitive); `SHMPROC_FAULT_SEED` fixes the random seed (printed at the start). For
//! debugging: `FAULT_ONLY=<row name>` runs one row of the locks, semaphores, barriers,
//! conditions and pipe, `FAULT_SKIP_QUEUES=1` skips the queue rows, `FAULT_DEBUG=1`
//! prints each round.
//!
//! `SharedDict` is a row of writers killed mid-operation (`tests/rounds/dict_kills.rs`):
//! after each kill the dict must be exactly what the finished operations made, the one in
//! flight wholly done or not (a half-done one fails the test at once: *torn* is 0 when it
//! passes), and the arena returns to its baseline once the dict is dropped.
//!
//! Segment creation is the last row: creators of `SharedMemory` segments and named
//! arenas killed at random points (the round `tests/lifecycle.rs` asserts on, shared
//! through `tests/rounds/creation.rs`); a file the dead creator left that does not open
//! whole counts as *torn*, one that `cleanup_orphans` does not remove (or a live
//! process's file removed) as *lost*.

use shmproc::barrier::{Barrier, BarrierError};
use shmproc::condition::ConditionError;
use shmproc::queue::{ByteQueue, GetError, JoinError, JoinableQueue, Queue};
use shmproc::semaphore::{PermitError, Semaphore};
use shmproc::{Arena, Condition, Lock, Pipe, PipeRecvError, RLock};
use shmproc_testkit::{fork, Child, SharedPage};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

#[path = "rounds/creation.rs"]
mod creation;

#[path = "rounds/dict_kills.rs"]
mod dict_kills;

shmproc_testkit::main!(dead_loan_holders_are_recovered, kill_at_random_points,);

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
    /// Rounds that lost more than was inside their dead process (checked per round: a
    /// sum over rounds could hide one behind others that lost less than allowed).
    over: u64,
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
        self.over += u64::from(o.lost > o.allowed);
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

/// Waits for `children` until `deadline`; true if all ended well. Those still running
/// are killed (and reaped); one that ended with a panic (a failed check) counts as not
/// ended well (so as a hang in the table: a survivor that did not finish its work).
fn reap_all(children: Vec<Child>, deadline: Instant) -> bool {
    let mut all = true;
    for c in children {
        let left = deadline.saturating_duration_since(Instant::now());
        match c.wait_timeout(left) {
            Some(0) => {}
            Some(code) => {
                eprintln!("a survivor failed (exit {code})");
                all = false;
            }
            None => {
                all = false;
                c.kill();
            }
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
// Locks, semaphores, barriers.

/// Kills per primitive at scale 1.
const KILLS: u64 = 100;

/// Counter of the bookkeeping page set once the victim is dead.
const VICTIM_DEAD: usize = 63;

/// Forks `n` workers running `work(i)` (worker 0 is the victim: it never yields), kills
/// the victim `delay_us` after `started()` says so (polled, under the watchdog), sets
/// [`VICTIM_DEAD`], and waits for the survivors under the round's watchdog. Fills
/// `killed`, `hung` and `after_kill` of the outcome.
fn kill_round(
    book: &Book,
    n: usize,
    delay_us: u64,
    started: impl Fn() -> bool,
    work: impl Fn(usize),
) -> Outcome {
    let mut children: Vec<Child> = (0..n)
        .map(|i| {
            let work = &work;
            fork(move || work(i))
        })
        .collect();
    let t = Instant::now();
    while !started() && t.elapsed() < ROUND_LIMIT {
        std::thread::yield_now();
    }
    pause_us(delay_us);
    let mut o = Outcome {
        killed: kill(children.remove(0)),
        ..Outcome::default()
    };
    book.counter(VICTIM_DEAD).store(1, Ordering::Release);
    let killed_at = Instant::now();
    o.hung = !reap_all(children, killed_at + ROUND_LIMIT);
    o.after_kill = killed_at.elapsed();
    o
}

/// A critical section of a checked counter: `A` (counter 30) is bumped, then a short
/// spin, then `B` (31); so `A == B` whenever the lock is free, unless its holder died in
/// the section. Three workers take the lock `SECTIONS` times each (an `RLock` twice,
/// nested); counter `i` counts worker `i`'s finished sections. A taker told `OwnerDied`
/// (counter 40) repairs a torn pair (`B = A`: the dead one's section counts as done;
/// counter 41); one that finds the pair torn without being told so counts it torn (42).
///
/// Rules checked: at most one `OwnerDied` per death, never a torn pair unannounced, and
/// `A` ends between the finished sections and one more (the dead one's, finished but not
/// yet counted, or repaired).
fn lock_round(recursive: bool, delay_us: u64) -> Outcome {
    const SECTIONS: u64 = 3000;
    let arena = Arena::anonymous(1 << 20).expect("arena");
    let book = Book::new(0);
    let lock = Lock::new_in(&arena).expect("lock");
    let rlock = RLock::new_in(&arena).expect("rlock");
    let (a, b) = (book.counter(30), book.counter(31));
    let section = |died: bool| {
        let (x, y) = (a.load(Ordering::Acquire), b.load(Ordering::Acquire));
        if x != y {
            if died {
                b.store(x, Ordering::Release);
                book.counter(41).fetch_add(1, Ordering::AcqRel);
            } else {
                book.counter(42).fetch_add(1, Ordering::AcqRel);
            }
        }
        if died {
            book.counter(40).fetch_add(1, Ordering::AcqRel);
        }
        let x = a.load(Ordering::Acquire);
        a.store(x + 1, Ordering::Release);
        for _ in 0..20 {
            std::hint::spin_loop();
        }
        b.store(x + 1, Ordering::Release);
    };
    let mut o = kill_round(
        &book,
        3,
        delay_us,
        || true,
        |i| {
            // The victim works until it is killed; the survivors, `SECTIONS` times.
            for _ in 0..if i == 0 { u64::MAX } else { SECTIONS } {
                if recursive {
                    let (g, died) = match rlock.acquire() {
                        Ok(g) => (g, false),
                        Err(d) => (d.into_guard(), true),
                    };
                    let inner = rlock.acquire().unwrap_or_else(|_| panic!("nested acquire"));
                    section(died);
                    drop(inner);
                    drop(g);
                } else {
                    let (g, died) = match lock.acquire() {
                        Ok(g) => (g, false),
                        Err(d) => (d.into_guard(), true),
                    };
                    section(died);
                    drop(g);
                }
                book.counter(i).fetch_add(1, Ordering::AcqRel);
                if i != 0 && book.counter(VICTIM_DEAD).load(Ordering::Acquire) == 0 {
                    // Let the victim run too (two cores, three workers).
                    std::thread::yield_now();
                }
            }
        },
    );
    if !o.hung {
        // The victim may have died holding it after the survivors finished: take it once.
        let died = if recursive {
            rlock.acquire().is_err()
        } else {
            lock.acquire().is_err()
        };
        section(died);
        let finished: u64 = (0..3)
            .map(|i| book.counter(i).load(Ordering::Acquire))
            .sum::<u64>()
            + 1;
        let x = a.load(Ordering::Acquire);
        o.lost = finished.saturating_sub(x);
        o.duplicated = x.saturating_sub(finished + 1);
        o.torn = book.counter(42).load(Ordering::Acquire);
        o.reported = book.counter(40).load(Ordering::Acquire);
        o.recovered = book.counter(41).load(Ordering::Acquire);
        // More than one OwnerDied for one death is a duplicate report.
        o.duplicated += o.reported.saturating_sub(1);
    }
    o
}

/// A semaphore of one permit; three workers take it `TAKES` times each (the survivors
/// check that they are alone: counter 30 counts them inside, 42 the overlaps). With a
/// robust semaphore, untimed: the dead one's permit comes back, and the value ends at 1.
/// With the default one, timed (20 ms): a permit the dead one held is lost, as in Python
/// (allowed), and the survivors stop at their first timeout once the victim is dead;
/// every timed call returns.
fn semaphore_round(robust: bool, delay_us: u64) -> Outcome {
    const TAKES: u64 = 3000;
    let arena = Arena::anonymous(1 << 20).expect("arena");
    let book = Book::new(0);
    let sem = if robust {
        Semaphore::robust_in(&arena, 1)
    } else {
        Semaphore::new_in(&arena, 1)
    }
    .expect("semaphore");
    let inside = book.counter(30);
    let mut o = kill_round(
        &book,
        3,
        delay_us,
        || true,
        |i| {
            for _ in 0..if i == 0 { u64::MAX } else { TAKES } {
                let g = if robust {
                    sem.acquire()
                } else {
                    match sem.acquire_timeout(Duration::from_millis(20)) {
                        Ok(g) => g,
                        Err(PermitError::Timeout)
                            if book.counter(VICTIM_DEAD).load(Ordering::Acquire) != 0 =>
                        {
                            return;
                        }
                        Err(PermitError::Timeout) => continue,
                        Err(e) => panic!("acquire: {e}"),
                    }
                };
                if i != 0 && inside.fetch_add(1, Ordering::AcqRel) != 0 {
                    book.counter(42).fetch_add(1, Ordering::AcqRel);
                }
                for _ in 0..20 {
                    std::hint::spin_loop();
                }
                if i != 0 {
                    inside.fetch_sub(1, Ordering::AcqRel);
                }
                drop(g);
                if i != 0 {
                    std::thread::yield_now();
                }
            }
        },
    );
    if !o.hung {
        o.duplicated = book.counter(42).load(Ordering::Acquire);
        let value = u64::from(sem.value());
        o.lost = 1u64.saturating_sub(value);
        o.duplicated += value.saturating_sub(1);
        o.allowed = u64::from(!robust);
        o.recovered = if robust {
            u64::from(sem.recovered())
        } else {
            0
        };
    }
    o
}

/// A barrier of three parties passed by three workers until it breaks; the victim is
/// killed at a random point (waiting, or between passes). Every survivor must end with
/// `Broken` (never wait for ever for the dead; counted hung otherwise, or torn if it
/// ended otherwise), and none may pass more than once after the dead one's last pass
/// (duplicated).
fn barrier_round(delay_us: u64) -> Outcome {
    barrier_round_with(delay_us, None)
}

/// As [`barrier_round`], the survivors waiting with a timeout of 5 s (never reached: the
/// death breaks the barrier first).
fn barrier_timed_round(delay_us: u64) -> Outcome {
    barrier_round_with(delay_us, Some(Duration::from_secs(5)))
}

fn barrier_round_with(delay_us: u64, timeout: Option<Duration>) -> Outcome {
    let arena = Arena::anonymous(1 << 20).expect("arena");
    let book = Book::new(0);
    let b = Barrier::new_in(&arena, 3).expect("barrier");
    // The kill comes after the victim's first pass: a party that never arrived is one the
    // barrier cannot know of (parties are a count, as in Python).
    let started = || book.counter(0).load(Ordering::Acquire) > 0;
    let mut o = kill_round(&book, 3, delay_us, started, |i| {
        // Every party waits until the barrier breaks (the victim until it is killed).
        for _ in 0..u64::MAX {
            let r = match timeout {
                Some(t) if i != 0 => b.wait_timeout(t),
                _ => b.wait(),
            };
            match r {
                Ok(_) => {
                    book.counter(i).fetch_add(1, Ordering::AcqRel);
                }
                Err(BarrierError::Broken) => {
                    book.counter(10 + i).store(1, Ordering::Release);
                    return;
                }
                Err(BarrierError::Timeout) => {
                    // Counted as a hang: the death should have broken it long before.
                    book.counter(20 + i).store(1, Ordering::Release);
                    return;
                }
            }
        }
    });
    if o.hung && std::env::var("FAULT_DEBUG").is_ok() {
        eprintln!(
            "{b:?} passes {:?}",
            (0..3)
                .map(|i| book.counter(i).load(Ordering::Relaxed))
                .collect::<Vec<_>>()
        );
    }
    if !o.hung {
        let broken: Vec<bool> = (1..3)
            .map(|i| book.counter(10 + i).load(Ordering::Acquire) == 1)
            .collect();
        let passes: Vec<u64> = (1..3)
            .map(|i| book.counter(i).load(Ordering::Acquire))
            .collect();
        o.hung = (1..3).any(|i| book.counter(20 + i).load(Ordering::Acquire) == 1);
        o.reported = broken.iter().filter(|&&x| x).count() as u64;
        o.torn = broken.iter().filter(|&&x| !x).count() as u64;
        // A survivor released past the dead one's last pass: a pass without it.
        let victim = book.counter(0).load(Ordering::Acquire);
        o.duplicated = passes
            .iter()
            .map(|&p| p.saturating_sub(victim + 1))
            .sum::<u64>();
    }
    o
}

/// A condition (over its own lock) with three waiters (worker 0, the victim, among them)
/// and a notifier (worker 3) that sends `NOTIFIES` notifications one at a time, each
/// after the previous one was received (or after 2 s: then it stays lost). The victim is
/// killed at a random point, asleep in `wait` or not, notified or not. Counters: `i`:
/// notifications waiter `i` received; 30: granted (`notify(1)` returned 1); 31: stop.
///
/// Rule: every granted notification reaches a waiter; only one granted to the victim
/// just before its death may be lost (allowed). Before the fix, one granted to the dead
/// victim while a live waiter sat in the newer generation stayed with the dead.
fn condition_round(delay_us: u64) -> Outcome {
    const NOTIFIES: u64 = 30;
    let arena = Arena::anonymous(1 << 20).expect("arena");
    let book = Book::new(0);
    let cond = Condition::new_in(&arena).expect("condition");
    let received = || {
        (0..3)
            .map(|i| book.counter(i).load(Ordering::Acquire))
            .sum::<u64>()
    };
    let started = || book.counter(30).load(Ordering::Acquire) > 0;
    let mut o = kill_round(&book, 4, delay_us, started, |i| {
        if i < 3 {
            cond.acquire_forever();
            // (The victim waits until it is killed.)
            while i == 0 || book.counter(31).load(Ordering::Acquire) == 0 {
                match cond.wait() {
                    // Retaken from a holder that died (the victim): notified all the same.
                    Ok(()) | Err(ConditionError::OwnerDied { notified: true }) => {
                        book.counter(i).fetch_add(1, Ordering::AcqRel);
                    }
                    Err(e) => panic!("wait: {e:?}"),
                }
            }
            let _ = cond.release();
            return;
        }
        for _ in 0..NOTIFIES {
            let t = Instant::now();
            while cond.n_waiting() == 0 && t.elapsed() < Duration::from_secs(2) {
                std::thread::yield_now();
            }
            let before = received();
            cond.acquire_forever();
            let granted = cond.notify(1).expect("notify");
            let _ = cond.release();
            book.counter(30)
                .fetch_add(u64::from(granted), Ordering::AcqRel);
            let t = Instant::now();
            while granted == 1 && received() == before && t.elapsed() < Duration::from_secs(2) {
                std::thread::yield_now();
            }
        }
        book.counter(31).store(1, Ordering::Release);
        cond.acquire_forever();
        let _ = cond.notify_all();
        let _ = cond.release();
    });
    if !o.hung {
        let granted = book.counter(30).load(Ordering::Acquire);
        let got = received();
        o.lost = granted.saturating_sub(got);
        o.duplicated = got.saturating_sub(granted + 3); // + the final notify_all's
        o.allowed = u64::from(o.killed);
        o.reported = granted;
    }
    o
}

/// The arrangement where a dead waiter could keep a notification from the living
/// (`tests/condition.rs`, `condition_a_dead_waiter_takes_no_notification`), with the
/// victim killed at a random point: D (the victim) and A wait; we notify one and wait
/// ourselves while it is untaken (joining the newer generation); once it is taken, N
/// notifies one more. We must be notified (the victim may have taken the first one and
/// died: then A takes N's, and ours may be lost: allowed). Counters: 0, 1: D's and A's
/// receipts; 2: N's grant.
fn condition_generations_round(delay_us: u64) -> Outcome {
    let arena = Arena::anonymous(1 << 20).expect("arena");
    let book = Book::new(0);
    let c = Condition::new_in(&arena).expect("condition");
    let wait_counting = |i: usize| {
        c.acquire_forever();
        loop {
            match c.wait() {
                Ok(()) | Err(ConditionError::OwnerDied { notified: true }) => {
                    book.counter(i).fetch_add(1, Ordering::AcqRel);
                    if i == 1 {
                        let _ = c.release();
                        return;
                    }
                }
                Err(e) => panic!("wait: {e:?}"),
            }
        }
    };
    let d = fork(|| wait_counting(0));
    let started = Instant::now();
    while c.n_waiting() == 0 && started.elapsed() < ROUND_LIMIT {
        std::thread::yield_now();
    }
    let a = fork(|| wait_counting(1));
    while c.n_waiting() < 2 && started.elapsed() < ROUND_LIMIT {
        std::thread::yield_now();
    }
    let received =
        || book.counter(0).load(Ordering::Acquire) + book.counter(1).load(Ordering::Acquire);
    // The victim dies at a random point of what follows.
    let killer = fork(|| {
        pause_us(delay_us);
    });
    c.acquire_forever();
    let first = c.notify(1).expect("notify");
    let n = fork(|| {
        let t = Instant::now();
        while received() == 0 && t.elapsed() < Duration::from_secs(2) {
            std::thread::yield_now();
        }
        c.acquire_forever();
        let granted = c.notify(1).expect("notify");
        book.counter(2).store(u64::from(granted), Ordering::Release);
        let _ = c.release();
    });
    assert_eq!(killer.wait(), 0);
    let mut o = Outcome {
        killed: kill(d),
        ..Outcome::default()
    };
    let killed_at = Instant::now();
    // (The rescue takes ~150 ms; 2 s is room, not a measure.)
    let notified = c
        .wait_timeout(Duration::from_secs(2))
        .expect("wait_timeout");
    let _ = c.release();
    o.hung = !reap_all(vec![n, a], killed_at + ROUND_LIMIT);
    o.after_kill = killed_at.elapsed();
    if !o.hung {
        let granted = u64::from(first) + book.counter(2).load(Ordering::Acquire);
        // Our own receipt, A's, and the victim's (counted before it died).
        let got = u64::from(notified) + received();
        o.lost = granted.saturating_sub(got);
        o.duplicated = got.saturating_sub(granted);
        o.allowed = 1;
        o.reported = granted;
    }
    o
}

/// A pipe of 4 KiB; the writer (the victim) sends messages of 16 bytes to 12 KiB (so
/// most stream through the ring, and it dies mid-message), each an id, a checksum and a
/// padding that depends on the id; a reader process receives with a 50 ms timeout until
/// EOF, or until a timeout once the writer is dead (its own copy of the writing end, from
/// the fork, keeps EOF away: then the writer's death is seen from the writing side's
/// lock; the reader then gets `Broken`, never a torn message). Counters: 0: messages
/// `send_bytes` returned for; 1: received in order; 42:
/// torn; 43: out of order (duplicated or skipped); 44: timed receives that returned
/// early or more than 2 s late.
fn pipe_round(delay_us: u64) -> Outcome {
    const TIMEOUT: Duration = Duration::from_millis(50);
    let arena = Arena::anonymous(4 << 20).expect("arena");
    let book = Book::new(0);
    let (r, w) = Pipe::new_in(&arena, false, 4096).expect("pipe");
    let message = |id: u64| {
        let mut b = bytemuck::bytes_of(&message(id)).to_vec();
        b.extend(std::iter::repeat_n(
            id as u8,
            ((id * 7919) % 12_000) as usize,
        ));
        b
    };
    let mut o = kill_round(
        &book,
        2,
        delay_us,
        || true,
        |i| {
            if i == 0 {
                for id in 0u64.. {
                    if w.send_bytes(&message(id)).is_err() {
                        return;
                    }
                    book.counter(0).store(id + 1, Ordering::Release);
                }
            }
            let mut next = 0u64;
            loop {
                let t = Instant::now();
                match r.recv_bytes_timeout(TIMEOUT) {
                    Ok(m) => {
                        if m.len() < 16
                            || m != message(u64::from_ne_bytes(m[..8].try_into().unwrap()))
                        {
                            book.counter(42).fetch_add(1, Ordering::AcqRel);
                            continue;
                        }
                        let id = u64::from_ne_bytes(m[..8].try_into().unwrap());
                        if id != next {
                            book.counter(43).fetch_add(1, Ordering::AcqRel);
                        }
                        next = id + 1;
                        book.counter(1).fetch_add(1, Ordering::AcqRel);
                    }
                    Err(PipeRecvError::Timeout) => {
                        let took = t.elapsed();
                        if took < TIMEOUT || took > TIMEOUT + Duration::from_secs(2) {
                            book.counter(44).fetch_add(1, Ordering::AcqRel);
                        }
                        if book.counter(VICTIM_DEAD).load(Ordering::Acquire) != 0 {
                            return;
                        }
                    }
                    // The writer died mid-message: the ring says so (never a torn message).
                    Err(PipeRecvError::Eof) | Err(PipeRecvError::Broken) => return,
                    Err(e) => panic!("recv: {e:?}"),
                }
            }
        },
    );
    if !o.hung {
        let sent = book.counter(0).load(Ordering::Acquire);
        let got = book.counter(1).load(Ordering::Acquire);
        o.lost = sent.saturating_sub(got);
        o.torn = book.counter(42).load(Ordering::Acquire);
        o.duplicated = book.counter(43).load(Ordering::Acquire);
        o.reported = got;
        o.recovered = book.counter(44).load(Ordering::Acquire);
        o.hung = o.recovered > 0;
    }
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

    let queues = if std::env::var("FAULT_SKIP_QUEUES").is_ok() {
        &[][..]
    } else {
        &[
            (Kind::Typed, "Queue"),
            (Kind::Joinable, "JoinableQueue"),
            (Kind::Bytes, "ByteQueue"),
        ][..]
    };
    for &(kind, name) in queues {
        let mut t = Tally::new(name);
        let (mut reported, mut recovered, mut slowest) = (0, 0, Duration::ZERO);
        while t.kills < KILLS * scale {
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

    type Round = fn(u64) -> Outcome;
    let rows: [(&'static str, Round); 9] = [
        ("Lock", |d| lock_round(false, d)),
        ("RLock", |d| lock_round(true, d)),
        ("Semaphore (robust)", |d| semaphore_round(true, d)),
        ("Semaphore (default)", |d| semaphore_round(false, d)),
        ("Barrier", barrier_round),
        ("Barrier (timeouts)", barrier_timed_round),
        ("Condition", condition_round),
        ("Condition (generations)", condition_generations_round),
        ("Pipe", pipe_round),
    ];
    let only = std::env::var("FAULT_ONLY").ok();
    for (name, round) in rows {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let mut t = Tally::new(name);
        let (mut reported, mut recovered, mut slowest) = (0, 0, Duration::ZERO);
        while t.kills < KILLS * scale {
            let o = round(rng.below(4000));
            if std::env::var("FAULT_DEBUG").is_ok() {
                eprintln!("{name}: {o:?}");
            }
            reported += o.reported;
            recovered += o.recovered;
            slowest = slowest.max(o.after_kill);
            t.add(&o);
        }
        t.note = match name {
            "Lock" | "RLock" => format!(
                "OwnerDied reported {reported}; sections repaired {recovered}; slowest round after its kill {:.0} ms",
                slowest.as_secs_f64() * 1e3
            ),
            "Pipe" => format!(
                "messages received {reported}; timed receives late {recovered}; slowest round after its kill {:.0} ms",
                slowest.as_secs_f64() * 1e3
            ),
            "Condition" | "Condition (generations)" => format!(
                "notifications (1 at a time) {reported}; slowest round after its kill {:.0} ms",
                slowest.as_secs_f64() * 1e3
            ),
            "Barrier" | "Barrier (timeouts)" => format!(
                "survivors that got Broken {reported}; slowest round after its kill {:.0} ms",
                slowest.as_secs_f64() * 1e3
            ),
            _ => format!(
                "permits recovered {recovered}; slowest round after its kill {:.0} ms",
                slowest.as_secs_f64() * 1e3
            ),
        };
        tallies.push(t);
    }

    if only.as_deref().is_none_or(|o| o == "SharedDict") {
        let kills = KILLS * scale;
        let d = dict_kills::writers_killed(kills);
        let mut t = Tally::new("SharedDict");
        for &took in &d.after_kill {
            // Each round's checks (nothing half done, lost or torn) are asserted inside
            // `writers_killed`; a round whose checks outlast the watchdog is a hang.
            t.add(&Outcome {
                killed: true,
                hung: took > ROUND_LIMIT,
                ..Outcome::default()
            });
        }
        let slowest = d.after_kill.iter().max().copied().unwrap_or_default();
        t.note = format!(
            "kills inside the dict's lock {}; operations in flight found done {}; heap repairs {}; entries at most {}; slowest round after its kill {:.0} ms",
            d.locked,
            d.applied,
            d.heap_repairs,
            d.max_len,
            slowest.as_secs_f64() * 1e3
        );
        tallies.push(t);
    }

    if only.as_deref().is_none_or(|o| o == "Segment creation") {
        let prefix = format!("shmproc-fault-{}", std::process::id());
        let live_seg = shmproc::SharedMemory::create(Some(&format!("{prefix}-live-seg")), 4096)
            .expect("live segment");
        let live_arena =
            Arena::create(&format!("{prefix}-live-arena"), 1 << 20).expect("live arena");
        let page = SharedPage::new(4096);
        let mut t = Tally::new("Segment creation");
        let mut files = 0;
        for k in 0..KILLS * scale {
            let l = creation::kill_a_creator(&prefix, k, rng.below(200_000), page.atomic(0));
            files += l.files;
            t.add(&Outcome {
                killed: true,
                torn: l.half_made.len() as u64,
                lost: l.not_removed.len() as u64 + u64::from(!l.live_kept),
                ..Outcome::default()
            });
        }
        t.note = format!("files of dead creators found whole and removed {files}");
        tallies.push(t);
        live_seg.unlink().ok();
        live_arena.unlink().ok();
    }

    print_table(&tallies, started.elapsed());
    for t in &tallies {
        assert_eq!(t.hangs, 0, "{}: a survivor hung", t.name);
        assert_eq!(t.duplicated, 0, "{}: a message arrived twice", t.name);
        assert_eq!(t.torn, 0, "{}: a torn message arrived", t.name);
        assert_eq!(
            t.over, 0,
            "{}: {} rounds lost more than was inside their dead process ({} lost in all, {} allowed)",
            t.name, t.over, t.lost, t.allowed
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
