//! The baselines every cross-process bench measures against, each with a persistent peer
//! process that sleeps in a futex between measurements (so it takes no CPU from whatever
//! is measured in between, such as the subject of a [`paired`](crate::paired()) run):
//!
//! * [`Floor`]: the physical floor of a hand-off, a spinning cache-line ping-pong. In its
//!   one-word form one line travels there and back per round trip, through one word that
//!   each side polls and nothing else; the two-line form pongs through a second line.
//! * [`FutexPingPong`]: the blocked baseline, a ping-pong where each side sleeps in
//!   `futex_wait` at once and always calls `futex_wake`.

use crate::process::{fork, pin_apart, Child, SharedPage};
use rustix::thread::futex;
use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The high bit of a ping word: a control value, not a count.
const CONTROL: u32 = 1 << 31;
/// The counts of a ping word (they wrap within the low 31 bits).
const COUNT: u32 = CONTROL - 1;
/// Control value: the peer sleeps in `futex_wait` until the word changes.
const PARK: u32 = CONTROL;
/// Control value: the peer leaves.
const STOP: u32 = CONTROL | 1;

/// Sleeps while `word` holds `value` (a futex wait, no deadline; spurious returns are the
/// caller's loop's business).
fn sleep_while(word: &AtomicU32, value: u32) {
    let _ = futex::wait(word, futex::Flags::empty(), value, None);
}

/// Wakes one sleeper on `word`.
fn wake(word: &AtomicU32) {
    let _ = futex::wake(word, futex::Flags::empty(), 1);
}

/// A `&'static` view of a word of `page`, for a forked child's closure.
///
/// # Safety
/// The child must be gone before `page` is unmapped (the `Drop` of each baseline stops
/// and reaps its child before the page goes; the child's own copy of the mapping stays
/// valid in the child either way).
unsafe fn child_word(page: &SharedPage, i: usize) -> &'static AtomicU32 {
    // SAFETY: the caller keeps the page mapped for as long as the reference is used.
    unsafe { &*(page.word(i) as *const AtomicU32) }
}

/// The floor: a spinning atomic ping-pong between this process and a forked peer.
///
/// [`round_trips(n)`](Floor::round_trips) returns the time of `n` round trips; one way is
/// half of it. Between calls the peer sleeps in a futex.
///
/// [`Floor::start`] is the physical floor: one 32-bit word on one cache line, which the
/// parent writes odd (ping) and the peer writes even (pong); each side polls that word and
/// nothing else, and the park / stop commands travel in the same word. A round trip is one
/// line moving to the peer's core and back. (The floor the benches used until 2026-12 also
/// polled a second word, on the adjacent line, on every spin of the peer. Taken minutes
/// apart it once read 854 ns where a bare ping-pong read ~475 ns, the vCPUs far apart;
/// interleaved rep by rep with this one, 2026-12-07, it read 1.09-1.40x it near, median
/// 1.20 over 12 runs, and 0.93-1.18x far apart, median 1.05 over 15 runs on a busy
/// machine.)
///
/// [`Floor::two_lines`] pings on one line and pongs on another: the least any channel with
/// a line (a ring) per direction can cost, as each way moves a line the receiver polls.
///
/// ```
/// let floor = shmproc_testkit::Floor::start();
/// let t = floor.round_trips(1_000);
/// assert!(t.as_nanos() > 0);
/// ```
#[derive(Debug)]
pub struct Floor {
    page: SharedPage,
    child: Option<Child>,
    /// Whether the pong travels on its own line (word 1 of the page) or in the ping word.
    two_lines: bool,
    /// The last count of the conversation (the ping word holds `PARK` between calls).
    last: Cell<u32>,
}

impl Floor {
    /// The one-word floor (the physical one).
    pub fn start() -> Floor {
        Floor::with(false)
    }

    /// The two-line floor: ping on one 128-byte slot, pong on another.
    pub fn two_lines() -> Floor {
        Floor::with(true)
    }

    fn with(two_lines: bool) -> Floor {
        let page = SharedPage::new(4096);
        page.word(0).store(PARK, Ordering::Relaxed);
        // SAFETY: `Drop` stops and reaps the child before the page is unmapped.
        let (ping, pong) = unsafe { (child_word(&page, 0), child_word(&page, 1)) };
        let child = fork(move || {
            pin_apart();
            if two_lines {
                two_line_peer(ping, pong)
            } else {
                one_word_peer(ping)
            }
        });
        Floor {
            page,
            child: Some(child),
            two_lines,
            last: Cell::new(0),
        }
    }

    /// The time of `n` round trips (after one untimed round trip that wakes the peer).
    pub fn round_trips(&self, n: u64) -> Duration {
        let ping = self.page.word(0);
        let pong = if self.two_lines {
            self.page.word(1)
        } else {
            ping
        };
        // One-word: `v` even, ping `v + 1`, the peer answers `v + 2`. Two lines: ping
        // `v + 1` on the ping line, the peer echoes it on the pong line.
        let step = if self.two_lines { 1 } else { 2 };
        let mut v = self.last.get();
        let trip = |v: &mut u32| {
            // Release / Acquire: pair with the peer's Acquire load of the ping and its
            // Release store of the pong.
            ping.store((*v + 1) & COUNT, Ordering::Release);
            let want = v.wrapping_add(step) & COUNT;
            while pong.load(Ordering::Acquire) != want {
                std::hint::spin_loop();
            }
            *v = want;
        };
        // The untimed round trip: the peer is awake and spinning before the clock starts.
        ping.store((v + 1) & COUNT, Ordering::Release);
        wake(ping);
        let want = v.wrapping_add(step) & COUNT;
        while pong.load(Ordering::Acquire) != want {
            std::hint::spin_loop();
        }
        v = want;
        let t = Instant::now();
        for _ in 0..n {
            trip(&mut v);
        }
        let elapsed = t.elapsed();
        self.last.set(v);
        // Relaxed: the peer has answered the last ping; it reads PARK with its Acquire load
        // and only goes to sleep on it.
        ping.store(PARK, Ordering::Relaxed);
        elapsed
    }
}

/// The one-word peer: answers an odd ping with the next (even) count in the same word.
fn one_word_peer(word: &AtomicU32) {
    loop {
        // Acquire: pairs with the parent's Release store of the ping.
        let w = word.load(Ordering::Acquire);
        if w & CONTROL != 0 {
            if w == STOP {
                return;
            }
            sleep_while(word, w);
        } else if w & 1 == 1 {
            // Release: pairs with the parent's Acquire load of the pong.
            word.store((w + 1) & COUNT, Ordering::Release);
        } else {
            std::hint::spin_loop();
        }
    }
}

/// The two-line peer: echoes each new ping count on the pong line.
fn two_line_peer(ping: &AtomicU32, pong: &AtomicU32) {
    let mut seen = 0;
    loop {
        // Acquire: pairs with the parent's Release store of the ping.
        let w = ping.load(Ordering::Acquire);
        if w & CONTROL != 0 {
            if w == STOP {
                return;
            }
            sleep_while(ping, w);
        } else if w != seen {
            seen = w;
            // Release: pairs with the parent's Acquire load of the pong.
            pong.store(w, Ordering::Release);
        } else {
            std::hint::spin_loop();
        }
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let ping = self.page.word(0);
        ping.store(STOP, Ordering::Release);
        wake(ping);
        if let Some(child) = self.child.take() {
            child.join();
        }
    }
}

/// The blocked baseline: a futex ping-pong between this process and a forked peer, where
/// each side, to hand over, stores to one shared word and calls `futex_wake`, then sleeps
/// in `futex_wait` at once (no spinning) until the answer is there.
///
/// Measure it pinned ([`Pinned::to(0)`](crate::Pinned) around both the baseline and the
/// subject; the peer pins itself to another CPU, [`pin_apart`]): unpinned, the scheduler
/// sometimes runs both sides on one vCPU (~4 µs a round trip) and sometimes on two
/// (~40 µs). It is the one futex baseline of every bench (the Event and Queue benches
/// once measured against two different ones under one name).
///
/// ```
/// let futex = shmproc_testkit::FutexPingPong::start();
/// assert!(futex.round_trips(10).as_nanos() > 0);
/// ```
#[derive(Debug)]
pub struct FutexPingPong {
    page: SharedPage,
    child: Option<Child>,
}

impl FutexPingPong {
    /// Forks the peer (asleep until the first round trip).
    pub fn start() -> FutexPingPong {
        let page = SharedPage::new(4096);
        // SAFETY: `Drop` stops and reaps the child before the page is unmapped.
        let w = unsafe { child_word(&page, 0) };
        let child = fork(move || {
            pin_apart();
            // The parent writes odd counts, the peer the even count after each.
            loop {
                // Acquire: pairs with the parent's Release store in `round_trips`.
                let v = w.load(Ordering::Acquire);
                if v == STOP {
                    return;
                }
                if v & 1 == 0 {
                    sleep_while(w, v);
                    continue;
                }
                // Release: pairs with the parent's Acquire load in `round_trips`.
                w.store((v + 1) & COUNT, Ordering::Release);
                wake(w);
            }
        });
        FutexPingPong {
            page,
            child: Some(child),
        }
    }

    /// The time of `n` round trips.
    pub fn round_trips(&self, n: u64) -> Duration {
        let w = self.page.word(0);
        // Relaxed: only the parent moves the word from even to odd; it is even here.
        let mut v = w.load(Ordering::Relaxed);
        let t = Instant::now();
        for _ in 0..n {
            // Release: pairs with the peer's Acquire load.
            w.store(v + 1, Ordering::Release);
            wake(w);
            let want = (v + 2) & COUNT;
            loop {
                // Acquire: pairs with the peer's Release store.
                let now = w.load(Ordering::Acquire);
                if now == want {
                    break;
                }
                sleep_while(w, now);
            }
            v = want;
        }
        t.elapsed()
    }
}

impl Drop for FutexPingPong {
    fn drop(&mut self) {
        let w = self.page.word(0);
        w.store(STOP, Ordering::Release);
        wake(w);
        if let Some(child) = self.child.take() {
            child.join();
        }
    }
}
