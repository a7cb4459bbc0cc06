//! Futex wait / wake on a 32-bit word in shared memory.
//!
//! The real build calls `futex(2)` through rustix **without** `FUTEX_PRIVATE_FLAG`:
//! private futexes are keyed by (mm, address) and do not cross processes; shared ones are
//! keyed by the backing page, so two processes that map the same arena at different
//! addresses still meet on the same word.
//!
//! The contract is the kernel's: [`wait`] sleeps only if the word still holds `expected`
//! (checked atomically against [`wake_one`] / [`wake_all`]), and may return spuriously at
//! any time (signal, `EINTR`, a stale wake). Every caller re-checks its condition in a loop.
//!
//! Under `--cfg shmproc_loom` the futex is modelled inside loom: a waiter registers itself
//! and blocks until a wake marks it; a wait with a deadline may time out at any point. The
//! model has no spurious wake-ups, so a protocol that relies on one to make progress is
//! reported as a deadlock: that is how lost wake-ups are found.
//!
//! A [`nap`] (a short timed wait for another party to finish something it has begun) is
//! modelled differently, because loom has no clock and does not schedule fairly: two
//! threads that nap in a loop as yields could take turns forever while the party they
//! wait for never runs. In the model a nap ends when it is woken, or when another thread
//! has reported [`progress`] since the napper took its [`tick`]: "time passes" only by
//! others doing something. The real build's `tick` and `progress` do nothing.

use super::AtomicU32;
use std::time::Instant;

/// Why [`wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitResult {
    /// Woken, or the word no longer held `expected`, or a spurious wake-up: re-check.
    Woken,
    /// The deadline passed.
    TimedOut,
}

#[cfg(not(shmproc_loom))]
mod imp {
    use super::WaitResult;
    use crate::sync::AtomicU32;
    use rustix::io::Errno;
    use rustix::thread::futex;
    use std::time::Instant;

    pub fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> WaitResult {
        let timeout = match deadline {
            None => None,
            Some(d) => {
                let now = Instant::now();
                if d <= now {
                    return WaitResult::TimedOut;
                }
                let left = d - now;
                Some(futex::Timespec {
                    tv_sec: left.as_secs().min(i64::MAX as u64) as i64,
                    tv_nsec: i64::from(left.subsec_nanos()),
                })
            }
        };
        // Shared (not private) futex: the word lives in memory mapped by several processes.
        match futex::wait(word, futex::Flags::empty(), expected, timeout.as_ref()) {
            Ok(()) => WaitResult::Woken,
            // The word changed before we slept, a signal arrived: the caller re-checks.
            Err(Errno::AGAIN) | Err(Errno::INTR) => WaitResult::Woken,
            Err(Errno::TIMEDOUT) => WaitResult::TimedOut,
            // EFAULT/EINVAL cannot happen for an aligned, mapped `AtomicU32`; treat as a
            // spurious wake-up so the caller's loop stays in charge (it may spin, never UB).
            Err(_) => WaitResult::Woken,
        }
    }

    #[inline]
    pub fn tick() -> u64 {
        0
    }

    #[inline]
    pub fn progress() {}

    pub fn nap(
        word: &AtomicU32,
        expected: u32,
        _since: u64,
        deadline: Option<Instant>,
        nap: std::time::Duration,
    ) -> WaitResult {
        wait(word, expected, crate::sync::time::earlier(deadline, nap))
    }

    pub fn wake(word: &AtomicU32, n: u32) -> usize {
        // Errors are impossible for a valid word; a wake that fails wakes nobody, and every
        // waiter also re-checks on its own deadline, so ignoring it is safe.
        futex::wake(word, futex::Flags::empty(), n).unwrap_or(0)
    }
}

#[cfg(shmproc_loom)]
mod imp {
    use super::WaitResult;
    use crate::sync::AtomicU32;
    use loom::sync::{Condvar, Mutex};
    use std::time::Instant;

    /// One registered waiter: the word's address and whether a wake has selected it.
    struct Waiter {
        addr: usize,
        id: u64,
        woken: bool,
    }

    use loom::sync::atomic::{AtomicU32 as LoomU32, AtomicU64 as LoomU64, Ordering};

    struct Table {
        next_id: u64,
        waiters: Vec<Waiter>,
    }

    impl Table {
        /// Registers a waiter on the word at `addr`; returns its id.
        fn enqueue(&mut self, addr: usize) -> u64 {
            let id = self.next_id;
            self.next_id += 1;
            self.waiters.push(Waiter {
                addr,
                id,
                woken: false,
            });
            id
        }

        /// Removes waiter `id`; returns whether a wake had selected it.
        fn dequeue(&mut self, id: u64) -> bool {
            let pos = self
                .waiters
                .iter()
                .position(|w| w.id == id)
                .expect("waiter registered");
            self.waiters.remove(pos).woken
        }

        /// Whether a wake has selected waiter `id` (still registered).
        fn is_woken(&self, id: u64) -> bool {
            self.waiters.iter().any(|w| w.id == id && w.woken)
        }
    }

    loom::lazy_static! {
        static ref TABLE: Mutex<Table> = Mutex::new(Table { next_id: 0, waiters: Vec::new() });
        static ref COND: Condvar = Condvar::new();
        /// Bumped by every `progress`: the model's clock.
        static ref PROGRESS: LoomU64 = LoomU64::new(0);
        /// Threads in a `nap` (so `progress` knows whether to notify).
        static ref NAPPERS: LoomU32 = LoomU32::new(0);
    }

    pub fn tick() -> u64 {
        // Acquire: pairs with the Release bump in `progress`: a napper whose clock reads
        // a bump also sees what the bumper did before it (e.g. `Scripted::kill`'s store),
        // so its look after the tick cannot miss that and then nap through it. An older
        // value only ends a nap sooner.
        PROGRESS.load(Ordering::Acquire)
    }

    pub fn progress() {
        // A Dekker pair with `nap` (bump, fence, read the napper count; register, fence,
        // read the clock): either the napper sees the bump or we see the napper. Spelled
        // with fences because loom models a SeqCst load as an Acquire one.
        // Release: pairs with the Acquire load in `tick`.
        PROGRESS.fetch_add(1, Ordering::Release);
        loom::sync::atomic::fence(Ordering::SeqCst);
        if NAPPERS.load(Ordering::Relaxed) != 0 {
            // Taken and released so that a napper between its check and its sleep
            // (which holds the table lock across both) is asleep before we notify.
            drop(TABLE.lock().unwrap());
            COND.notify_all();
        }
    }

    pub fn nap(
        word: &AtomicU32,
        expected: u32,
        since: u64,
        deadline: Option<Instant>,
        _nap: std::time::Duration,
    ) -> WaitResult {
        if deadline.is_some() {
            // A caller's deadline may pass at any point, as in `wait`.
            return wait(word, expected, deadline);
        }
        let addr = word as *const AtomicU32 as usize;
        // Relaxed + SeqCst fence: see `progress`.
        NAPPERS.fetch_add(1, Ordering::Relaxed);
        loom::sync::atomic::fence(Ordering::SeqCst);
        let mut table = TABLE.lock().unwrap();
        let result = if word.load(Ordering::SeqCst) != expected {
            WaitResult::Woken
        } else {
            let id = table.enqueue(addr);
            loop {
                if table.is_woken(id) {
                    table.dequeue(id);
                    break WaitResult::Woken;
                }
                // Relaxed: ordered after our registration by the fence above (see
                // `progress`); after a notify, by the table lock.
                if PROGRESS.load(Ordering::Relaxed) != since {
                    // Time has passed: another thread did something. A wake that
                    // selects us from here on goes to someone else.
                    table.dequeue(id);
                    break WaitResult::TimedOut;
                }
                table = COND.wait(table).unwrap();
            }
        };
        drop(table);
        // Relaxed: a count; a stale non-zero value costs `progress` one notify.
        NAPPERS.fetch_sub(1, Ordering::Relaxed);
        result
    }

    pub fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> WaitResult {
        let addr = word as *const AtomicU32 as usize;
        let mut table = TABLE.lock().unwrap();
        // The kernel compares the word under its hash-bucket lock; the table lock plays
        // that role, and every wake takes it too, so check-then-sleep is atomic.
        if word.load(Ordering::SeqCst) != expected {
            return WaitResult::Woken;
        }
        let id = table.enqueue(addr);
        if deadline.is_some() {
            // The deadline may pass at any moment after the waiter registered: let others
            // run once, then either a wake has selected us (Woken) or the timer fired first
            // and we leave the queue (TimedOut), so a later wake goes to someone else.
            drop(table);
            loom::thread::yield_now();
            table = TABLE.lock().unwrap();
            return if table.dequeue(id) {
                WaitResult::Woken
            } else {
                WaitResult::TimedOut
            };
        }
        loop {
            table = COND.wait(table).unwrap();
            if table.is_woken(id) {
                table.dequeue(id);
                return WaitResult::Woken;
            }
        }
    }

    pub fn wake(word: &AtomicU32, n: u32) -> usize {
        let addr = word as *const AtomicU32 as usize;
        let mut table = TABLE.lock().unwrap();
        let mut woken = 0usize;
        for w in table.waiters.iter_mut() {
            if woken as u32 == n {
                break;
            }
            if w.addr == addr && !w.woken {
                w.woken = true;
                woken += 1;
            }
        }
        drop(table);
        if woken > 0 {
            COND.notify_all();
        }
        woken
    }
}

/// Sleeps while `*word == expected`, until woken or until `deadline`.
///
/// Returns [`WaitResult::TimedOut`] only when the deadline has passed; every other return,
/// including spurious ones, is [`WaitResult::Woken`]: the caller re-checks its condition.
#[inline]
pub fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> WaitResult {
    imp::wait(word, expected, deadline)
}

/// Sleeps like [`wait`], for at most `nap` (and not past `deadline`): a waiter that
/// gives another party time to finish what it has begun. `since` is a [`tick`] taken
/// before the waiter last looked at the state it waits on (the model ends the nap once
/// another thread reports [`progress`] after it; the real build ignores it).
#[inline]
pub fn nap(
    word: &AtomicU32,
    expected: u32,
    since: u64,
    deadline: Option<Instant>,
    nap: std::time::Duration,
) -> WaitResult {
    imp::nap(word, expected, since, deadline, nap)
}

/// The model's clock, for [`nap`] (0 in the real build).
#[inline]
pub fn tick() -> u64 {
    imp::tick()
}

/// Tells the model that this thread finished something a napper may wait for (nothing in
/// the real build).
#[inline]
pub fn progress() {
    imp::progress()
}

/// Wakes at most one waiter on `word`, in any process. Returns how many were woken.
#[inline]
pub fn wake_one(word: &AtomicU32) -> usize {
    imp::wake(word, 1)
}

/// Wakes at most `n` waiters on `word`, in any process (`n` above `i32::MAX` means all).
/// Returns how many were woken.
#[inline]
pub fn wake_n(word: &AtomicU32, n: u32) -> usize {
    // The kernel reads the count as an `int`: `u32::MAX` would be -1, which wakes one.
    imp::wake(word, n.min(i32::MAX as u32))
}

/// Wakes every waiter on `word`, in any process. Returns how many were woken.
#[inline]
pub fn wake_all(word: &AtomicU32) -> usize {
    imp::wake(word, i32::MAX as u32)
}
