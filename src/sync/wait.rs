//! The wait engine: the pieces every blocking call is made of, written once.
//!
//! A blocking call of any primitive has the same shape:
//!
//! 1. **try** the operation (one attempt, no system call);
//! 2. **spin** for a while as its [`SpinPolicy`] says, trying again;
//! 3. **register** as a waiter, so that the party that makes progress knows to wake it,
//!    and read the futex word it will sleep on (its *key*);
//! 4. **re-check**: progress made before the registration was not announced to us;
//! 5. **sleep** on the word while it still holds the key, until woken, until the
//!    deadline, or until it is time to look at something no wake-up announces (a holder
//!    that may have died, a peer that may be gone, a claim that may have been made before
//!    we registered): the [`Recheck`] schedule;
//! 6. **unregister**, and go to 1.
//!
//! [`Waitable`] is that shape as a trait (crossbeam-channel's `SelectHandle` is the
//! model): the coming `wait` / `Select` drives several at once with one multi-word futex
//! wait, and [`block_on`] drives one. [`EventCount`] is the futex word of the primitives
//! that sleep on a count rather than on their state (the queue ring, the pipe ring, the
//! condition variable): "change the state, then bump the count and wake" is written once,
//! here.

use super::futex::{self, WaitResult};
use super::spin::{Round, SpinPolicy};
use super::{time, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A futex word used as an event count.
///
/// A waiter reads the count ([`key`](Self::key)) *before* its last re-check of the
/// condition, then sleeps only while the count still holds that key; a waker changes the
/// condition, then [`notify`](Self::notify)s: it bumps the count and wakes. A bump after
/// the waiter's read makes its sleep return at once, so no wake-up is lost between the
/// re-check and the sleep. The count wraps; a waiter confused by exactly 2^32 bumps
/// between its read and its sleep only re-checks once more.
///
/// All zero bytes are a valid count (it lives in shared state blocks).
///
/// ```
/// use shmproc::raw::sync::wait::EventCount;
/// let ev = EventCount::new();
/// let key = ev.key();
/// ev.notify_all(); // nobody sleeps: no system call... but the count moved
/// assert_ne!(ev.key(), key);
/// ```
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct EventCount(AtomicU32);

impl EventCount {
    /// A count of zero.
    pub fn new() -> EventCount {
        EventCount(AtomicU32::new(0))
    }

    /// The count, to sleep on after the re-check.
    #[inline]
    pub fn key(&self) -> u32 {
        // SeqCst: a waiter's read of the count is one half of every sleep handshake
        // (SYNC POINT "event count"): it must not be ordered after the waiter's
        // registration or re-check, and it pairs with the SeqCst bump in `notify`.
        self.0.load(Ordering::SeqCst)
    }

    /// Bumps the count and wakes up to `n` sleepers (`u32::MAX`: all); returns how many
    /// the kernel woke.
    #[inline]
    pub fn notify(&self, n: u32) -> usize {
        // SeqCst: the bump follows the caller's change of the condition (a publish, a
        // release, a state bit) in every order, so a waiter whose `key` read missed the
        // bump sees the change in its re-check, and one whose read saw it returns from
        // `futex_wait` at once (SYNC POINT "event count", the waker's half).
        self.0.fetch_add(1, Ordering::SeqCst);
        futex::wake_n(&self.0, n)
    }

    /// [`notify`](Self::notify) one sleeper.
    #[inline]
    pub fn notify_one(&self) -> usize {
        self.notify(1)
    }

    /// [`notify`](Self::notify) every sleeper.
    #[inline]
    pub fn notify_all(&self) -> usize {
        self.notify(u32::MAX)
    }

    // (`futex::wake_n` reads `u32::MAX` as "all": the kernel's count is an `int`, and a
    // bare `u32::MAX` there is -1, which wakes one. `tests::notify_all_wakes_every_sleeper`.)

    /// Sleeps while the count holds `key`, until woken or `deadline` (spurious returns
    /// happen: re-check).
    #[inline]
    pub fn wait(&self, key: u32, deadline: Option<Instant>) -> WaitResult {
        futex::wait(&self.0, key, deadline)
    }

    /// The futex word (for a wait on many words at once).
    pub fn word(&self) -> &AtomicU32 {
        &self.0
    }
}

/// When a sleeper looks again at what no wake-up can announce: a lock holder that may have
/// died, a peer that may be gone, a claim made before the sleeper registered. First after
/// `first`, then twice as long each time, up to `max`: the one re-check schedule of every
/// wait loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recheck {
    next: Duration,
    max: Duration,
}

impl Recheck {
    /// For a holder or a peer that may die: 1 ms, doubling to 100 ms. So a death is
    /// noticed within about 100 ms by a blocked waiter, at a cost of ~10 procfs reads a
    /// second while it waits.
    pub const LIVENESS: Recheck =
        Recheck::new(Duration::from_millis(1), Duration::from_millis(100));

    /// For a claim that may already be made when the waiter registered (the queue ring's
    /// nap): 50 µs, doubling to 10 ms. The claimer normally finishes within nanoseconds.
    pub const CLAIM: Recheck = Recheck::new(Duration::from_micros(50), Duration::from_millis(10));

    /// A schedule from `first` to `max`.
    pub const fn new(first: Duration, max: Duration) -> Recheck {
        Recheck { next: first, max }
    }

    /// The interval before the next look.
    #[inline]
    pub fn interval(&self) -> Duration {
        self.next
    }

    /// When a sleep that also respects `deadline` should end: the earlier of the two.
    #[inline]
    pub fn wake_at(&self, deadline: Option<Instant>) -> Option<Instant> {
        time::earlier(deadline, self.next)
    }

    /// After a look that found nothing: the next interval is twice as long (at most
    /// `max`).
    #[inline]
    pub fn backoff(&mut self) {
        self.next = (self.next * 2).min(self.max);
    }
}

/// Where a registered waiter sleeps: a futex word and the value it must still hold.
#[derive(Debug, Clone, Copy)]
pub struct Sleep<'a> {
    /// The futex word.
    pub word: &'a AtomicU32,
    /// The value the word held when the waiter registered; a change wakes it.
    pub key: u32,
}

/// A blocking operation in the engine's shape (module docs): what [`block_on`] drives,
/// and what the coming `wait` / `Select` will drive several of at once.
///
/// The protocol a driver follows: [`attempt`](Self::attempt); if it would block,
/// [`register`](Self::register), [`attempt`](Self::attempt) again (progress made before
/// the registration was not announced), sleep on the returned [`Sleep`], then
/// [`unregister`](Self::unregister) and start over. An implementation must guarantee
/// that progress made after `register` returned changes the `Sleep`'s word (or wakes it).
pub trait Waitable {
    /// What a successful attempt gives.
    type Output;

    /// One attempt: `Some` when the operation completed (or failed for good), `None`
    /// when it would block.
    fn attempt(&self) -> Option<Self::Output>;

    /// Announces a waiter and says where to sleep.
    fn register(&self) -> Sleep<'_>;

    /// Takes the announcement back (a waiter that will not sleep after all, or woke).
    fn unregister(&self);

    /// True when others already sleep on the word: a spinning waiter stops spinning and
    /// sleeps too (it would only compete with the party it waits for). By default never.
    fn sleepers(&self) -> bool {
        false
    }
}

/// Blocks on one [`Waitable`] until it completes or `deadline` passes (`None` at the
/// deadline): try and spin as `spin` says (one attempt per round, stopping early when
/// others already sleep), then register / re-check / sleep / unregister.
pub fn block_on<W: Waitable>(
    w: &W,
    deadline: Option<Instant>,
    spin: SpinPolicy,
) -> Option<W::Output> {
    let spun = spin.attempts(|| match w.attempt() {
        Some(r) => Round::Done(r),
        None if w.sleepers() => Round::Sleep,
        None => Round::Again,
    });
    if let Some(r) = spun {
        return Some(r);
    }
    loop {
        let sleep = w.register();
        if let Some(r) = w.attempt() {
            w.unregister();
            return Some(r);
        }
        let res = futex::wait(sleep.word, sleep.key, deadline);
        w.unregister();
        if let Some(r) = w.attempt() {
            return Some(r);
        }
        if res == WaitResult::TimedOut && time::expired(deadline) {
            return None;
        }
    }
}

#[cfg(all(test, not(shmproc_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Regression: `notify_all` once passed `u32::MAX` to the kernel, which reads it as
    /// -1 and wakes one sleeper; three sleepers then waited for ever (the queue's 4x4
    /// stress tests hung).
    #[test]
    fn notify_all_wakes_every_sleeper() {
        let ev = Arc::new(EventCount::new());
        let key = ev.key();
        // Each sleeper says whether it was woken before its (generous) deadline.
        let deadline = time::deadline_after(Duration::from_secs(10));
        let sleepers: Vec<_> = (0..3)
            .map(|_| {
                let ev = ev.clone();
                std::thread::spawn(move || {
                    while ev.key() == key {
                        if ev.wait(key, deadline) == WaitResult::TimedOut {
                            return false;
                        }
                    }
                    true
                })
            })
            .collect();
        // Wait until all three are asleep in the kernel: a wake now must reach them all.
        while futex_waiters(&ev) < 3 {
            std::thread::yield_now();
        }
        ev.notify_all();
        for s in sleepers {
            assert!(s.join().unwrap(), "a sleeper was not woken by notify_all");
        }
    }

    /// How many threads of this process sleep on `ev` (from their kernel wait channel).
    fn futex_waiters(_ev: &EventCount) -> usize {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return 3;
        };
        tasks
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("wchan")).ok())
            .filter(|w| w.contains("futex"))
            .count()
    }
}
