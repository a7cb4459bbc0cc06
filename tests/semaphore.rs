//! Multi-process tests of `Semaphore` and `BoundedSemaphore`: real `fork`, data checked end
//! to end, every test in its own process under the harness's watchdog.

use shmproc::semaphore::{BoundedSemaphore, PermitError, Semaphore, TooManyReleases, VALUE_MAX};
use shmproc::{Arena, Error, SpinPolicy};
use shmproc_testkit::{eventually, fork, shared_counters};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

shmproc_testkit::main!(
    two_never_admits_three,
    bounded_never_admits_more_than_bound,
    release_in_parent_wakes_sleeping_children,
    ping_pong_between_processes_is_exact,
    bounded_release_above_bound_is_an_error,
    release_at_value_max_is_an_error,
    try_acquire_never_blocks,
    acquire_timeout_returns_within_bound,
    acquire_timeout_wakes_on_release,
    named_semaphore_opened_in_child,
    bad_input_is_an_error,
    forget_then_release_from_other_process,
    killed_sleeper_does_not_break_semaphore,
    concurrent_bounded_releases_stop_at_bound,
    robust_permit_of_a_killed_holder_is_taken_over,
    robust_permits_are_released_only_by_their_holder,
);

fn arena() -> Arena {
    Arena::anonymous(1 << 20).expect("arena")
}

/// Counts how many processes are inside at once, and stays inside a moment.
fn enter(inside: &AtomicU64, max: &AtomicU64) {
    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
    max.fetch_max(now, Ordering::SeqCst);
    for _ in 0..50 {
        std::hint::spin_loop();
    }
}

fn two_never_admits_three() {
    const PROCS: u64 = 5;
    const ITERS: u64 = 20_000;
    let a = arena();
    let sem = Semaphore::new_in(&a, 2).unwrap();
    let s = shared_counters(3); // inside, max inside, total entries
    let children: Vec<_> = (0..PROCS)
        .map(|i| {
            let mut sem = sem.clone();
            if i % 2 == 0 {
                sem.set_spin(SpinPolicy::NEVER); // half of them always sleep in the kernel
            }
            fork(move || {
                for _ in 0..ITERS {
                    let _permit = sem.acquire();
                    enter(&s[0], &s[1]);
                    s[2].fetch_add(1, Ordering::Relaxed);
                    s[0].fetch_sub(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for c in children {
        c.join();
    }
    let max = s[1].load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&max),
        "{max} processes were inside a semaphore of 2"
    );
    assert_eq!(s[2].load(Ordering::SeqCst), PROCS * ITERS, "entries lost");
    assert_eq!(sem.value(), 2, "a permit was lost or made up");
    println!("max inside: {max}");
}

fn bounded_never_admits_more_than_bound() {
    const PROCS: u64 = 4;
    const ITERS: u64 = 1_000;
    let a = arena();
    let sem = BoundedSemaphore::new_in(&a, 3).unwrap();
    let s = shared_counters(3);
    let children: Vec<_> = (0..PROCS)
        .map(|_| {
            let sem = sem.clone();
            fork(move || {
                for _ in 0..ITERS {
                    // Python style: explicit acquire / release, checked.
                    sem.acquire_forever();
                    enter(&s[0], &s[1]);
                    s[2].fetch_add(1, Ordering::Relaxed);
                    s[0].fetch_sub(1, Ordering::SeqCst);
                    sem.release().expect("release of an acquired permit");
                }
            })
        })
        .collect();
    for c in children {
        c.join();
    }
    assert!(s[1].load(Ordering::SeqCst) <= 3);
    assert_eq!(s[2].load(Ordering::SeqCst), PROCS * ITERS);
    assert_eq!(sem.value(), 3);
    assert_eq!(sem.release(), Err(TooManyReleases { limit: 3 }));
}

fn release_in_parent_wakes_sleeping_children() {
    const CHILDREN: usize = 4;
    let a = arena();
    let mut sem = Semaphore::new_in(&a, 0).unwrap();
    sem.set_spin(SpinPolicy::NEVER);
    let s = shared_counters(1); // permits taken
    let children: Vec<_> = (0..CHILDREN)
        .map(|_| {
            let sem = sem.clone();
            fork(move || {
                sem.acquire_forever();
                s[0].fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    // Let them go to sleep (a release before a child waits would simply leave a permit for
    // it; waiting here makes every release a wake-up).
    eventually("every child asleep", || {
        sem.raw().waiters() == CHILDREN as u32
    });
    for _ in 0..CHILDREN {
        sem.release().unwrap();
    }
    for c in children {
        c.join();
    }
    assert_eq!(s[0].load(Ordering::SeqCst), CHILDREN as u64);
    assert_eq!(sem.value(), 0);
    assert_eq!(sem.raw().waiters(), 0);
}

/// Two semaphores as a hand-off: parent and child take turns 20 000 times, each turn
/// checked, so a lost wake-up hangs (watchdog) and a double wake breaks the sequence.
fn ping_pong_between_processes_is_exact() {
    const ROUNDS: u64 = 20_000;
    let a = arena();
    let ping = Semaphore::new_in(&a, 0).unwrap();
    let pong = Semaphore::new_in(&a, 0).unwrap();
    let s = shared_counters(1);
    let child = {
        let (ping, pong) = (ping.clone(), pong.clone());
        fork(move || {
            for i in 0..ROUNDS {
                ping.acquire_forever();
                assert_eq!(s[0].load(Ordering::Relaxed), 2 * i + 1);
                s[0].store(2 * i + 2, Ordering::Relaxed);
                pong.release().unwrap();
            }
        })
    };
    for i in 0..ROUNDS {
        assert_eq!(s[0].load(Ordering::Relaxed), 2 * i);
        s[0].store(2 * i + 1, Ordering::Relaxed);
        ping.release().unwrap();
        pong.acquire_forever();
    }
    child.join();
    assert_eq!(s[0].load(Ordering::Relaxed), 2 * ROUNDS);
    assert_eq!((ping.value(), pong.value()), (0, 0));
}

fn bounded_release_above_bound_is_an_error() {
    let a = arena();
    let sem = BoundedSemaphore::new_in(&a, 2).unwrap();
    assert_eq!(sem.release(), Err(TooManyReleases { limit: 2 }));
    assert_eq!(sem.value(), 2);
    // A permit taken in a child may be given back by the parent, once.
    let c = {
        let sem = sem.clone();
        fork(move || sem.acquire_forever())
    };
    c.join();
    assert_eq!(sem.value(), 1);
    assert_eq!(sem.release(), Ok(()));
    let err = sem.release().unwrap_err();
    assert_eq!(err.limit, 2);
    assert!(err.to_string().contains("limit of 2"), "{err}");
    // A guard whose release finds the semaphore full reports it.
    let g = sem.acquire();
    sem.release().unwrap(); // an unmatched release fills the slot the guard holds
    assert_eq!(g.release(), Err(TooManyReleases { limit: 2 }));
    assert_eq!(sem.value(), 2);
}

fn release_at_value_max_is_an_error() {
    let sem = Semaphore::new_in(&arena(), VALUE_MAX).unwrap();
    assert_eq!(sem.release(), Err(TooManyReleases { limit: VALUE_MAX }));
    assert_eq!(sem.value(), VALUE_MAX);
    drop(sem.acquire());
    assert_eq!(sem.value(), VALUE_MAX);
}

fn try_acquire_never_blocks() {
    let a = arena();
    let sem = Semaphore::new_in(&a, 1).unwrap();
    let held = Semaphore::new_in(&a, 0).unwrap(); // child -> parent: "I hold it"
    let done = Semaphore::new_in(&a, 0).unwrap(); // parent -> child: "let go"
    let c = {
        let (sem, held, done) = (sem.clone(), held.clone(), done.clone());
        fork(move || {
            let _p = sem.acquire();
            held.release().unwrap();
            done.acquire_forever();
        })
    };
    held.acquire_forever();
    // A try that blocked would wait forever (the holder waits for `done`): the watchdog.
    for _ in 0..10_000 {
        assert_eq!(sem.try_acquire().unwrap_err(), PermitError::WouldBlock);
    }
    done.release().unwrap();
    c.join();
    let p = sem.try_acquire().expect("free again");
    assert_eq!(sem.value(), 0);
    drop(p);
    assert_eq!(sem.value(), 1);
}

fn acquire_timeout_returns_within_bound() {
    let sem = Semaphore::new_in(&arena(), 0).unwrap();
    for ms in [0u64, 1, 50] {
        let t0 = Instant::now();
        let r = sem.acquire_timeout(Duration::from_millis(ms));
        let took = t0.elapsed();
        assert_eq!(r.unwrap_err(), PermitError::Timeout);
        assert!(
            took >= Duration::from_millis(ms),
            "{ms} ms timeout returned after {took:?}"
        );
    }
    assert_eq!(sem.raw().waiters(), 0);
    assert_eq!(sem.value(), 0);
}

fn acquire_timeout_wakes_on_release() {
    let a = arena();
    let mut sem = Semaphore::new_in(&a, 0).unwrap();
    sem.set_spin(SpinPolicy::NEVER);
    let c = {
        let sem = sem.clone();
        fork(move || {
            // Give the parent time to fall asleep, then release.
            std::thread::sleep(Duration::from_millis(30));
            sem.release().unwrap();
        })
    };
    // A lost wake-up would not fail the call: after its timeout, `acquire_timeout` takes a
    // permit that is there. So the check is that it returned before its timeout ran out
    // (20 s; the release comes after ~30 ms).
    let timeout = Duration::from_secs(20);
    let t0 = Instant::now();
    let p = sem.acquire_timeout(timeout).expect("woken by the release");
    assert!(
        t0.elapsed() < timeout,
        "woken by its timeout, not by the release"
    );
    p.forget();
    c.join();
    assert_eq!(sem.value(), 0);
}

fn named_semaphore_opened_in_child() {
    let a = arena();
    let sem = Semaphore::create(&a, "slots", 0).unwrap();
    let b = BoundedSemaphore::create(&a, "pool", 2).unwrap();
    let c = {
        let a = a.clone();
        fork(move || {
            let s = Semaphore::open(&a, "slots").unwrap();
            s.release().unwrap();
            s.release().unwrap();
            let b = BoundedSemaphore::open(&a, "pool").unwrap();
            assert_eq!(b.bound(), 2);
            b.acquire_forever();
        })
    };
    c.join();
    assert_eq!(sem.value(), 2);
    assert_eq!(b.value(), 1);
}

fn bad_input_is_an_error() {
    let a = arena();
    assert!(matches!(
        Semaphore::new_in(&a, VALUE_MAX + 1),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Semaphore::new_in(&a, u32::MAX),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        BoundedSemaphore::new_in(&a, 0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        BoundedSemaphore::new_in(&a, VALUE_MAX + 1),
        Err(Error::InvalidArgument(_))
    ));
    Semaphore::create(&a, "s", 1).unwrap();
    BoundedSemaphore::create(&a, "b", 1).unwrap();
    shmproc::Lock::create(&a, "l").unwrap();
    assert!(matches!(
        Semaphore::create(&a, "s", 1),
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(
        Semaphore::open(&a, "b"),
        Err(Error::WrongType { .. })
    ));
    assert!(matches!(
        BoundedSemaphore::open(&a, "s"),
        Err(Error::WrongType { .. })
    ));
    assert!(matches!(
        Semaphore::open(&a, "l"),
        Err(Error::WrongType { .. })
    ));
    assert!(matches!(
        Semaphore::open(&a, "nope"),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        Semaphore::create(&a, "a/b", 1),
        Err(Error::InvalidName(_))
    ));
    // Zero is a fine value for a plain semaphore (a signal).
    assert_eq!(Semaphore::new_in(&a, 0).unwrap().value(), 0);
}

fn forget_then_release_from_other_process() {
    let a = arena();
    let sem = BoundedSemaphore::new_in(&a, 1).unwrap();
    sem.acquire().forget();
    assert_eq!(sem.value(), 0);
    let c = {
        let sem = sem.clone();
        fork(move || sem.release().unwrap())
    };
    c.join();
    assert_eq!(sem.value(), 1);
    assert!(format!("{sem:?}").contains("bound: 1"));
}

/// A process killed while asleep in `acquire` leaves its waiter count behind; the semaphore
/// keeps working (releases just make a useless wake call) and no permit is lost.
fn killed_sleeper_does_not_break_semaphore() {
    let a = arena();
    let mut sem = Semaphore::new_in(&a, 0).unwrap();
    sem.set_spin(SpinPolicy::NEVER);
    let victim = {
        let sem = sem.clone();
        fork(move || sem.acquire_forever())
    };
    eventually("the child asleep", || sem.raw().waiters() != 0);
    victim.signal(libc::SIGKILL);
    assert_eq!(victim.wait(), -libc::SIGKILL);
    assert_eq!(sem.raw().waiters(), 1, "the dead sleeper's count stays");
    sem.release().unwrap();
    assert_eq!(
        sem.value(),
        1,
        "the permit was not swallowed by the dead sleeper"
    );
    // A live sleeper is still woken.
    sem.acquire_forever();
    let c = {
        let sem = sem.clone();
        fork(move || sem.acquire_forever())
    };
    while sem.raw().waiters() < 2 {
        std::thread::sleep(Duration::from_millis(1));
    }
    sem.release().unwrap();
    c.join();
    assert_eq!(sem.value(), 0);
}

/// Many processes release a bounded semaphore at once: exactly `bound - value` succeed.
fn concurrent_bounded_releases_stop_at_bound() {
    const PROCS: usize = 4;
    const TRIES: u64 = 1_000;
    let a = arena();
    let sem = BoundedSemaphore::new_in(&a, 1_000).unwrap();
    for _ in 0..1_000 {
        sem.acquire_forever();
    }
    let s = shared_counters(2); // successes, refusals
    let children: Vec<_> = (0..PROCS)
        .map(|_| {
            let sem = sem.clone();
            fork(move || {
                for _ in 0..TRIES {
                    match sem.release() {
                        Ok(()) => s[0].fetch_add(1, Ordering::Relaxed),
                        Err(TooManyReleases { limit }) => {
                            assert_eq!(limit, 1_000);
                            s[1].fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();
    for c in children {
        c.join();
    }
    assert_eq!(
        s[0].load(Ordering::Relaxed),
        1_000,
        "exactly the missing permits came back"
    );
    assert_eq!(s[1].load(Ordering::Relaxed), PROCS as u64 * TRIES - 1_000);
    assert_eq!(sem.value(), 1_000);
}

/// Robust mode: a process killed holding a permit gives it back through the survivors. A
/// sleeping acquirer takes it over (within its liveness schedule), exactly once.
fn robust_permit_of_a_killed_holder_is_taken_over() {
    let a = arena();
    let sem = Semaphore::robust_in(&a, 1).unwrap();
    assert!(sem.is_robust());
    let ready = shmproc_testkit::Signal::new();
    let victim = {
        let (sem, ready) = (sem.clone(), &ready);
        fork(move || {
            sem.acquire_forever();
            ready.notify();
            std::thread::sleep(Duration::from_secs(60));
        })
    };
    assert!(ready.wait());
    assert_eq!(sem.value(), 0);
    assert!(sem.try_acquire().is_err());
    victim.signal(libc::SIGKILL);
    assert_eq!(victim.wait(), -libc::SIGKILL);
    let t = Instant::now();
    let g = sem
        .acquire_timeout(Duration::from_secs(20))
        .expect("taken over");
    println!("taken over after {:?}", t.elapsed());
    assert_eq!(sem.recovered(), 1);
    drop(g);
    assert_eq!(sem.value(), 1);
}

/// Robust mode: only the process that holds a permit releases it (Python's release from
/// anywhere is the default mode's); a guard gives its own permit back.
fn robust_permits_are_released_only_by_their_holder() {
    let a = arena();
    let sem = Semaphore::robust_in(&a, 2).unwrap();
    assert!(sem.release().is_err(), "no permit held");
    sem.acquire_forever();
    let c = {
        let sem = sem.clone();
        fork(move || assert!(sem.release().is_err(), "the parent's permit"))
    };
    c.join();
    assert_eq!(sem.value(), 1);
    sem.release().unwrap();
    assert_eq!(sem.value(), 2);
    assert!(Semaphore::robust_in(&a, 0).is_err());
    assert!(Semaphore::robust_in(&a, shmproc::semaphore::ROBUST_MAX + 1).is_err());
    let named = Semaphore::create_robust(&a, "robust", 3).unwrap();
    let opened = Semaphore::open(&a, "robust").unwrap();
    assert!(opened.is_robust());
    let _g = named.acquire();
    assert_eq!(opened.value(), 2);
}
