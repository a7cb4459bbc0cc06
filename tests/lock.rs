//! Multi-process tests of `Lock`, each in its own forked process under a watchdog.

use shmproc::{Arena, Lock, NotLocked, TryAcquireError};
use shmproc_testkit::{fork, shared_counters, Signal, UnlinkOnDrop};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

shmproc_testkit::main!(
    counter_under_lock_is_exact,
    holder_killed_does_not_wedge_waiters,
    try_acquire_recovers_from_dead_holder,
    acquire_timeout_returns_in_time,
    release_from_another_process,
    blocked_waiters_in_many_processes_all_get_through,
    named_arena_lock_across_separate_mappings,
    guard_releases_on_panic_unwind,
    no_false_owner_died_on_long_handovers,
);

/// N processes x M increments of a counter that is *not* updated atomically (load, then
/// store): only the lock makes the total exact.
fn counter_under_lock_is_exact() {
    const N: usize = 4;
    const M: u64 = 20_000;
    let lock = Lock::new().unwrap();
    let c = &shared_counters(1)[0];
    let kids: Vec<_> = (0..N)
        .map(|_| {
            let lock = lock.clone();
            fork(move || {
                for _ in 0..M {
                    let _g = lock.acquire().unwrap();
                    c.store(c.load(Relaxed) + 1, Relaxed);
                }
            })
        })
        .collect();
    for k in kids {
        k.join();
    }
    assert_eq!(c.load(Relaxed), N as u64 * M);
    assert!(!lock.is_locked());
}

/// A child takes the lock and is SIGKILLed. Waiters in the parent and in another child get
/// it back: exactly one of them is told `OwnerDied`, and it comes within a bounded time.
fn holder_killed_does_not_wedge_waiters() {
    let lock = Lock::new().unwrap();
    let died = &shared_counters(1)[0];
    let ready = Signal::new();
    let holder = {
        let (lock, ready) = (lock.clone(), &ready);
        fork(move || {
            lock.acquire_forever();
            ready.notify();
            loop {
                std::thread::park();
            }
        })
    };
    assert!(ready.wait());
    assert_eq!(lock.holder(), Some(holder.pid as u32));
    let other = {
        let lock = lock.clone();
        fork(move || match lock.acquire() {
            Ok(_) => {}
            Err(d) => {
                died.fetch_add(1, Relaxed);
                drop(d.into_guard());
            }
        })
    };
    holder.signal(libc::SIGKILL);
    // Deliberately not reaped yet: a killed, unreaped holder is a zombie, and still dead.
    match lock.acquire() {
        Ok(_) => {}
        Err(d) => {
            died.fetch_add(1, Relaxed);
            drop(d.into_guard());
        }
    }
    other.join();
    assert_eq!(
        died.load(Relaxed),
        1,
        "exactly one waiter takes over from the dead holder"
    );
    assert_eq!(holder.wait(), -libc::SIGKILL);
    assert!(!lock.is_locked());
    // And the lock is an ordinary lock again.
    drop(lock.try_acquire().unwrap());
}

fn try_acquire_recovers_from_dead_holder() {
    let lock = Lock::new().unwrap();
    let child = {
        let lock = lock.clone();
        fork(move || {
            lock.acquire_forever()
                .eq(&shmproc::Acquired::Normal)
                .then_some(())
                .unwrap()
        })
    };
    assert_eq!(child.wait(), 0);
    assert!(lock.is_locked(), "the child exited holding the lock");
    match lock.try_acquire() {
        Err(TryAcquireError::OwnerDied(d)) => drop(d.into_guard()),
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    assert!(lock.try_acquire().is_ok());
}

fn acquire_timeout_returns_in_time() {
    let lock = Lock::new().unwrap();
    let (ready, done) = (Signal::new(), Signal::new());
    let child = {
        let (lock, ready, done) = (lock.clone(), &ready, &done);
        fork(move || {
            let _g = lock.acquire().unwrap();
            ready.notify();
            done.wait();
        })
    };
    assert!(ready.wait());
    assert!(matches!(
        lock.try_acquire(),
        Err(TryAcquireError::WouldBlock)
    ));
    for ms in [0u64, 50, 200] {
        let t = Instant::now();
        let r = lock.acquire_timeout(Duration::from_millis(ms));
        let took = t.elapsed();
        assert!(
            matches!(r, Err(TryAcquireError::WouldBlock)),
            "{ms} ms: {r:?}"
        );
        assert!(
            took >= Duration::from_millis(ms),
            "{ms} ms timeout returned after {took:?}"
        );
    }
    done.notify();
    child.join();
    assert!(lock.acquire_timeout(Duration::from_secs(5)).is_ok());
}

/// Python allows releasing a lock from a process that did not acquire it.
fn release_from_another_process() {
    let lock = Lock::new().unwrap();
    lock.acquire_forever();
    let child = {
        let lock = lock.clone();
        fork(move || {
            assert_eq!(lock.release(), Ok(()));
            assert_eq!(lock.release(), Err(NotLocked));
        })
    };
    child.join();
    assert!(!lock.is_locked());
    assert_eq!(lock.release(), Err(NotLocked));
}

/// The parent holds the lock while children pile up asleep in `acquire`; each release wakes
/// one, and every child gets through.
fn blocked_waiters_in_many_processes_all_get_through() {
    const N: usize = 6;
    let lock = Lock::new().unwrap();
    let counters = shared_counters(64);
    let (entered, inside) = (&counters[0], &counters[16]);
    let g = lock.acquire().unwrap();
    let kids: Vec<_> = (0..N)
        .map(|_| {
            let lock = lock.clone();
            fork(move || {
                let _g = lock.acquire().unwrap();
                assert_eq!(
                    inside.fetch_add(1, Relaxed),
                    0,
                    "two processes inside the lock"
                );
                entered.fetch_add(1, Relaxed);
                inside.fetch_sub(1, Relaxed);
            })
        })
        .collect();
    // Give the children time to go to sleep in the futex (not needed for correctness).
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(entered.load(Relaxed), 0);
    drop(g);
    for k in kids {
        k.join();
    }
    assert_eq!(entered.load(Relaxed), N as u64);
}

/// A process that maps the arena again by name (at another address) meets the same futex:
/// the futex must be shared, not private.
fn named_arena_lock_across_separate_mappings() {
    let name = format!("shmproc-locktest-{}", std::process::id());
    let arena = Arena::create(&name, 1 << 20).unwrap();
    let _cleanup = UnlinkOnDrop(name.clone());
    let lock = Lock::create(&arena, "the-lock").unwrap();
    let g = lock.acquire().unwrap();
    let ready = Signal::new();
    let child = {
        let (name, ready) = (name.clone(), &ready);
        fork(move || {
            let arena = Arena::open(&name).unwrap();
            let lock = Lock::open(&arena, "the-lock").unwrap();
            assert!(lock.is_locked());
            ready.notify();
            // Blocks in futex_wait until the parent releases, possibly without a deadline
            // ever passing: a private futex would never be woken here.
            drop(lock.acquire().unwrap());
        })
    };
    assert!(ready.wait());
    std::thread::sleep(Duration::from_millis(20));
    drop(g);
    child.join();
}

fn guard_releases_on_panic_unwind() {
    // The panic below is the point of the test: keep it out of the output.
    std::panic::set_hook(Box::new(|_| {}));
    let lock = Lock::new().unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _g = lock.acquire().unwrap();
        panic!("inside the lock");
    }));
    assert!(r.is_err());
    assert!(!lock.is_locked());
}

/// Two processes hand the lock back and forth with holds long enough that waiters sleep
/// past their first liveness check; nobody may ever be told `OwnerDied`. (The contended
/// benchmark once found a live holder robbed this way, when a holder was preempted between
/// its CAS and recording its identity; the loom model `stale_identity_is_no_evidence_of_death`
/// is the deterministic regression test for it.)
fn no_false_owner_died_on_long_handovers() {
    const ROUNDS: u64 = 300;
    let lock = Lock::new().unwrap();
    let c = &shared_counters(1)[0];
    let hammer = |lock: &Lock| {
        for _ in 0..ROUNDS {
            let g = lock.acquire().expect("a live holder was declared dead");
            c.store(c.load(Relaxed) + 1, Relaxed);
            // Hold past the waiter's first liveness check (1 ms).
            let t = Instant::now();
            while t.elapsed() < Duration::from_micros(1500) {
                std::hint::spin_loop();
            }
            drop(g);
        }
    };
    let kid = {
        let lock = lock.clone();
        fork(move || hammer(&lock))
    };
    hammer(&lock);
    kid.join();
    assert_eq!(c.load(Relaxed), 2 * ROUNDS);
}
