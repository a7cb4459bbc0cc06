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

    struct Table {
        next_id: u64,
        waiters: Vec<Waiter>,
    }

    loom::lazy_static! {
        static ref TABLE: Mutex<Table> = Mutex::new(Table { next_id: 0, waiters: Vec::new() });
        static ref COND: Condvar = Condvar::new();
    }

    pub fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> WaitResult {
        let addr = word as *const AtomicU32 as usize;
        let mut table = TABLE.lock().unwrap();
        // The kernel compares the word under its hash-bucket lock; the table lock plays
        // that role, and every wake takes it too, so check-then-sleep is atomic.
        if word.load(loom::sync::atomic::Ordering::SeqCst) != expected {
            return WaitResult::Woken;
        }
        let id = table.next_id;
        table.next_id += 1;
        table.waiters.push(Waiter {
            addr,
            id,
            woken: false,
        });
        if deadline.is_some() {
            // The deadline may pass at any moment after the waiter registered: let others
            // run once, then either a wake has selected us (Woken) or the timer fired first
            // and we leave the queue (TimedOut), so a later wake goes to someone else.
            drop(table);
            loom::thread::yield_now();
            table = TABLE.lock().unwrap();
            let pos = table
                .waiters
                .iter()
                .position(|w| w.id == id)
                .expect("waiter registered");
            let w = table.waiters.remove(pos);
            return if w.woken {
                WaitResult::Woken
            } else {
                WaitResult::TimedOut
            };
        }
        loop {
            table = COND.wait(table).unwrap();
            if let Some(pos) = table.waiters.iter().position(|w| w.id == id && w.woken) {
                table.waiters.remove(pos);
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

/// Wakes at most one waiter on `word`, in any process. Returns how many were woken.
#[inline]
pub fn wake_one(word: &AtomicU32) -> usize {
    imp::wake(word, 1)
}

/// Wakes at most `n` waiters on `word`, in any process. Returns how many were woken.
#[inline]
pub fn wake_n(word: &AtomicU32, n: u32) -> usize {
    imp::wake(word, n)
}

/// Wakes every waiter on `word`, in any process. Returns how many were woken.
#[inline]
pub fn wake_all(word: &AtomicU32) -> usize {
    imp::wake(word, i32::MAX as u32)
}
