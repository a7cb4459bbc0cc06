//! Model checks of `shmproc::raw::condvar::RawCondvar`: notify one / n / all against
//! waiters that time out, generation promotion, and an RLock held recursively.
#![cfg(shmproc_loom)]

use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;
use shmproc::raw::condvar::{CondLock, RLockRef, RawCondvar};
use shmproc::raw::lock::Acquired;
use shmproc::raw::lock::RobustLock;
use shmproc::raw::rlock::NotOwner;
use shmproc::raw::rlock::RawRLock;
use shmproc::raw::sync::futex;
use shmproc::raw::sync::liveness::Scripted;
use shmproc::raw::sync::wait::Recheck;
use shmproc::SpinPolicy;
use std::time::{Duration, Instant};

const SPIN: SpinPolicy = SpinPolicy::NEVER;

/// A deadline: under loom a timed wait may time out at any point.
fn soon() -> Option<Instant> {
    Some(Instant::now() + Duration::from_secs(3600))
}

/// The lock of most models: the three-state futex mutex with untimed waits.
///
/// `RawLock::lock_slow` always sleeps with a deadline (to check the holder's liveness),
/// and under loom a timed wait may time out at any point, so a contended `RawLock` is a
/// spin loop to the model and the model explodes. The condition variable's algorithm does
/// not depend on which lock it uses; this one keeps the models small.
struct ModelLock {
    word: AtomicU32,
    /// The pid of the holder (0: free); written by the holder only.
    owner: AtomicU32,
}

impl ModelLock {
    fn new() -> Self {
        ModelLock {
            word: AtomicU32::new(0),
            owner: AtomicU32::new(0),
        }
    }

    fn lock(&self, pid: u32) {
        // Acquire: pairs with the Release swap in `unlock`.
        if self
            .word
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // Acquire: as above.
            while self.word.swap(2, Ordering::Acquire) != 0 {
                futex::wait(&self.word, 2, None);
            }
        }
        self.owner.store(pid, Ordering::Relaxed);
    }

    fn unlock(&self) {
        self.owner.store(0, Ordering::Relaxed);
        // Release: pairs with the Acquire in `lock`.
        if self.word.swap(0, Ordering::Release) == 2 {
            futex::wake_one(&self.word);
        }
    }
}

/// `ModelLock` held by `pid`, as the condition sees it.
struct ModelRef<'a> {
    lock: &'a ModelLock,
    pid: u32,
    /// Whether its waits look for notifications stranded on dead waiters.
    watch: bool,
}

impl CondLock for ModelRef<'_> {
    fn is_held(&self) -> bool {
        self.lock.owner.load(Ordering::Relaxed) == self.pid
    }
    fn unlock_all(&self) -> Result<u32, NotOwner> {
        if !self.is_held() {
            return Err(NotOwner);
        }
        self.lock.unlock();
        Ok(1)
    }
    fn relock(&self, _: u32) -> Acquired {
        self.lock.lock(self.pid);
        Acquired::Normal
    }
    fn recheck(&self) -> Option<Recheck> {
        self.watch.then_some(Recheck::LIVENESS)
    }
}

struct Shared {
    lock: ModelLock,
    cv: RawCondvar,
    /// Protected by `lock`: tokens posted and not yet taken.
    tokens: AtomicU32,
}

impl Shared {
    fn new() -> Arc<Shared> {
        Arc::new(Shared {
            lock: ModelLock::new(),
            cv: RawCondvar::new(),
            tokens: AtomicU32::new(0),
        })
    }

    fn with<R>(&self, pid: u32, f: impl FnOnce(&ModelRef<'_>) -> R) -> R {
        self.lock.lock(pid);
        let r = f(&ModelRef {
            lock: &self.lock,
            pid,
            watch: false,
        });
        self.lock.unlock();
        r
    }

    fn tokens(&self) -> u32 {
        self.tokens.load(Ordering::Relaxed)
    }

    fn set_tokens(&self, v: u32) {
        self.tokens.store(v, Ordering::Relaxed)
    }

    /// An untimed waiter: blocks until it takes a token (deadlocks if a wake-up is lost).
    fn take(&self, pid: u32) {
        self.with(pid, |l| {
            while self.tokens() == 0 {
                let w = self.cv.wait(l, None, SPIN).unwrap();
                assert!(w.notified, "an untimed wait returns only when notified");
            }
            self.set_tokens(self.tokens() - 1);
        })
    }

    /// Posts `k` tokens and notifies `n`; returns how many were notified.
    fn post(&self, pid: u32, k: u32, n: u32) -> u32 {
        self.with(pid, |l| {
            self.set_tokens(self.tokens() + k);
            self.cv.notify(l, n).unwrap()
        })
    }

    fn idle(&self) {
        assert_eq!(self.cv.n_waiting(), 0);
        assert_eq!(self.cv.n_pending(), 0);
    }
}

/// One timed waiter against `notify(1)`: it reports a notification exactly when one was
/// granted to it, and leaves nothing behind either way.
#[test]
fn notify_one_against_a_timeout() {
    loom::model(|| {
        let s = Shared::new();
        let s2 = s.clone();
        let waiter =
            thread::spawn(move || s2.with(2, |l| s2.cv.wait(l, soon(), SPIN).unwrap().notified));
        let granted = s.with(1, |l| s.cv.notify(l, 1).unwrap());
        let notified = waiter.join().unwrap();
        assert_eq!(granted == 1, notified);
        s.idle();
    });
}

/// A waiter that times out must not absorb a later `notify(1)` meant for a waiter that is
/// still there (the stale wake-up). The timed waiter passes a notification it cannot use
/// on, as user code does; a lost wake-up shows as a deadlock of the untimed waiter.
#[test]
fn a_timed_out_waiter_leaves_no_stale_wakeup() {
    loom::model(|| {
        let s = Shared::new();
        let (a, b) = (s.clone(), s.clone());
        let timed = thread::spawn(move || {
            a.with(3, |l| {
                if a.cv.wait(l, soon(), SPIN).unwrap().notified {
                    a.cv.notify(l, 1).unwrap();
                }
            })
        });
        let untimed = thread::spawn(move || b.take(2));
        s.post(1, 1, 1);
        timed.join().unwrap();
        untimed.join().unwrap();
        assert_eq!(s.tokens(), 0);
        s.idle();
    });
}

/// `notify(2)` (or `notify_all`) with two untimed waiters: both take their token, however
/// the waits and the notification interleave.
#[test]
fn notify_n_wakes_two() {
    for n in [2, u32::MAX] {
        loom::model(move || {
            let s = Shared::new();
            let (a, b) = (s.clone(), s.clone());
            let t1 = thread::spawn(move || a.take(2));
            let t2 = thread::spawn(move || b.take(3));
            let granted = s.post(1, 2, n);
            assert!(granted <= 2);
            t1.join().unwrap();
            t2.join().unwrap();
            assert_eq!(s.tokens(), 0);
            s.idle();
        });
    }
}

/// Two notifications of one each, with a waiter that arrives between them: the second
/// waiter lands in the newer generation, which is promoted by the second `notify`.
/// `notify(1)` never notifies more than one, and nobody waits forever.
#[test]
fn generations_are_promoted() {
    loom::model(|| {
        let s = Shared::new();
        let (a, b) = (s.clone(), s.clone());
        let t1 = thread::spawn(move || a.take(2));
        let t2 = thread::spawn(move || b.take(3));
        let g1 = s.post(1, 1, 1);
        let g2 = s.post(1, 1, 1);
        assert!(g1 <= 1 && g2 <= 1);
        t1.join().unwrap();
        t2.join().unwrap();
        assert_eq!(s.tokens(), 0);
        s.idle();
    });
}

/// A condition over an RLock held twice: `wait` releases both levels (so the notifier can
/// take the lock) and restores them.
#[test]
fn rlock_depth_is_restored() {
    // The notifier contends for the RawRLock, whose slow path the model sees as a spin
    // loop (see `ModelLock`): allow it more branches.
    let mut builder = loom::model::Builder::new();
    builder.max_branches = 20_000;
    builder.check(|| {
        let lock = Arc::new(RawRLock::new());
        let cv = Arc::new(RawCondvar::new());
        let flag = Arc::new(AtomicU32::new(0));
        let (l2, c2, f2) = (lock.clone(), cv.clone(), flag.clone());
        let waiter = thread::spawn(move || {
            let who = Scripted::alive(2).thread(7);
            l2.lock(&who, None, SPIN).unwrap();
            l2.lock(&who, None, SPIN).unwrap();
            let r = RLockRef {
                lock: &l2,
                who: &who,
                spin: SPIN,
            };
            while f2.load(Ordering::Relaxed) == 0 {
                c2.wait(&r, None, SPIN).unwrap();
            }
            assert_eq!(l2.depth(), 2);
            assert_eq!(l2.unlock_held(&who), Ok(1));
            assert_eq!(l2.unlock_held(&who), Ok(0));
        });
        let who = Scripted::alive(1);
        lock.lock(&who, None, SPIN).unwrap();
        flag.store(1, Ordering::Relaxed);
        let r = RLockRef {
            lock: &lock,
            who: &who,
            spin: SPIN,
        };
        cv.notify(&r, 1).unwrap();
        lock.unlock_held(&who).unwrap();
        waiter.join().unwrap();
        assert!(!lock.is_locked());
    });
}

/// A waiter that arrives after a `notify` cannot take that notification: it was granted
/// to the waiters present when `notify` ran.
#[test]
fn a_late_waiter_cannot_steal() {
    loom::model(|| {
        let s = Shared::new();
        let a = s.clone();
        let early = thread::spawn(move || a.take(2));
        s.post(1, 0, 1);
        let b = s.clone();
        let late =
            thread::spawn(move || b.with(3, |l| b.cv.wait(l, soon(), SPIN).unwrap().notified));
        assert!(
            !late.join().unwrap(),
            "the late waiter took an earlier notification"
        );
        // Release the early waiter for good (the first notification may have come before
        // it waited, or woken it to find no token).
        s.post(1, 1, u32::MAX);
        early.join().unwrap();
        s.idle();
    });
}

/// Two waiters that may both time out, against `notify(1)`, `notify(2)` and
/// `notify_all`: exactly as many report a notification as `notify` granted, and nothing
/// is left behind.
#[test]
fn notify_n_against_timeouts() {
    for n in [1, 2, u32::MAX] {
        loom::model(move || {
            let s = Shared::new();
            let waiters: Vec<_> = [2, 3]
                .into_iter()
                .map(|pid| {
                    let s = s.clone();
                    thread::spawn(move || {
                        s.with(pid, |l| s.cv.wait(l, soon(), SPIN).unwrap().notified)
                    })
                })
                .collect();
            let granted = s.with(1, |l| s.cv.notify(l, n).unwrap());
            let notified = waiters
                .into_iter()
                .map(|w| u32::from(w.join().unwrap()))
                .sum::<u32>();
            assert_eq!(notified, granted);
            assert!(granted <= n);
            s.idle();
        });
    }
}

/// As `a_timed_out_waiter_leaves_no_stale_wakeup`, with the default spin policy, so the
/// spinning paths (on the sequence word, and for the notifier's unlock) are modelled too.
#[test]
fn with_spinning() {
    loom::model(|| {
        let spin = SpinPolicy::default();
        let s = Shared::new();
        let (a, b) = (s.clone(), s.clone());
        let timed = thread::spawn(move || {
            a.with(3, |l| {
                if a.cv.wait(l, soon(), spin).unwrap().notified {
                    a.cv.notify(l, 1).unwrap();
                }
            })
        });
        let untimed = thread::spawn(move || {
            b.with(2, |l| {
                while b.tokens() == 0 {
                    b.cv.wait(l, None, spin).unwrap();
                }
                b.set_tokens(b.tokens() - 1);
            })
        });
        s.post(1, 1, 1);
        timed.join().unwrap();
        untimed.join().unwrap();
        assert_eq!(s.tokens(), 0);
        s.idle();
    });
}

/// A waiter that dies (`raw::condvar`, "A waiter that dies"): D joins G1 and stops for
/// ever; A waits (G1 = {D, A}); L (the main thread, whose waits look for stranded
/// notifications) notifies one, for A, and waits itself while that one is untaken, so it
/// joins G2; once A has it, N notifies one more, which the bookkeeping grants to G1's last
/// member, D. L must be notified all the same (its look rescues the stranded grant).
///
/// Planted bug (caught, 2026-12-07): no rescue (`Stranded::look` never due): L waits for
/// ever (loom: deadlock).
#[test]
fn a_grant_to_a_dead_waiter_reaches_a_live_one() {
    shmproc_testkit::loom::model(2, || {
        let s = Shared::new();
        let as_pid = |pid: u32, watch: bool| ModelRef {
            lock: &s.lock,
            pid,
            watch,
        };
        // D (pid 4): joins G1, never wakes.
        s.lock.lock(4);
        s.cv.wait_and_stop(&as_pid(4, false)).unwrap();
        let got = Arc::new(AtomicU32::new(0));
        let a = {
            let (s, got) = (s.clone(), got.clone());
            thread::spawn(move || {
                s.lock.lock(2);
                let r = ModelRef {
                    lock: &s.lock,
                    pid: 2,
                    watch: false,
                };
                let w = s.cv.wait(&r, None, SPIN).unwrap();
                assert!(w.notified);
                got.store(1, Ordering::SeqCst);
                s.lock.unlock();
            })
        };
        while s.cv.n_waiting() < 2 {
            thread::yield_now();
        }
        s.lock.lock(1);
        assert_eq!(s.cv.notify(&as_pid(1, true), 1), Ok(1));
        let n = {
            let (s, got) = (s.clone(), got.clone());
            thread::spawn(move || {
                while got.load(Ordering::SeqCst) == 0 {
                    thread::yield_now();
                }
                s.lock.lock(3);
                let r = ModelRef {
                    lock: &s.lock,
                    pid: 3,
                    watch: false,
                };
                assert_eq!(s.cv.notify(&r, 1), Ok(1));
                s.lock.unlock();
                // Time passes (what the rescue waits for: a model's naps end on it).
                futex::progress();
            })
        };
        let w = s.cv.wait(&as_pid(1, true), None, SPIN).unwrap();
        assert!(w.notified, "the grant stayed with the dead waiter");
        s.lock.unlock();
        a.join().unwrap();
        n.join().unwrap();
    });
}
