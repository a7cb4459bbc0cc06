//! Multi-process tests of `Event`: real `fork`, data checked end to end, every test in its
//! own process under the harness's watchdog.

use shmproc::event::Event;
use shmproc::raw::event::WAITERS;
use shmproc::{Arena, Error, SpinPolicy};
use shmproc_testkit::{eventually, fork, shared_counters};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

shmproc_testkit::main!(
    set_by_child_wakes_four_waiters,
    pulse_wakes_every_sleeper,
    set_clear_ping_pong_is_exact,
    wait_timeout_returns_within_bound,
    wait_timeout_wakes_on_set,
    set_is_visible_in_every_process,
    named_event_opened_in_child,
    open_errors,
    killed_waiter_does_not_break_event,
);

fn arena() -> Arena {
    Arena::anonymous(1 << 20).expect("arena")
}

/// Waits (politely) until some process has announced itself as a sleeper on `ev`.
fn until_someone_sleeps(ev: &Event) {
    eventually("a waiter asleep", || ev.raw().word() & WAITERS != 0);
}

fn set_by_child_wakes_four_waiters() {
    const WAITING: u64 = 4;
    let a = arena();
    let ev = Event::new_in(&a).unwrap();
    // [0] payload written before set, [1] waiters ready, [2] waiters that saw the payload
    let s = shared_counters(3);
    let waiters: Vec<_> = (0..WAITING)
        .map(|i| {
            let mut ev = ev.clone();
            if i % 2 == 0 {
                ev.set_spin(SpinPolicy::NEVER);
            }
            fork(move || {
                s[1].fetch_add(1, Ordering::SeqCst);
                ev.wait();
                // `set` published the payload (Release/Acquire through the event word).
                assert_eq!(s[0].load(Ordering::Relaxed), 0xfeed);
                s[2].fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    let setter = {
        let ev = ev.clone();
        fork(move || {
            while s[1].load(Ordering::SeqCst) < WAITING {
                std::thread::sleep(Duration::from_millis(1));
            }
            until_someone_sleeps(&ev);
            std::thread::sleep(Duration::from_millis(20)); // let the others park too
            s[0].store(0xfeed, Ordering::Relaxed);
            ev.set();
        })
    };
    setter.join();
    for w in waiters {
        w.join();
    }
    assert_eq!(s[2].load(Ordering::SeqCst), WAITING);
    assert!(ev.is_set());
}

/// `set` immediately followed by `clear` still releases every process that was asleep.
fn pulse_wakes_every_sleeper() {
    const WAITING: usize = 3;
    let a = arena();
    let mut ev = Event::new_in(&a).unwrap();
    ev.set_spin(SpinPolicy::NEVER);
    let s = shared_counters(1);
    let waiters: Vec<_> = (0..WAITING)
        .map(|_| {
            let ev = ev.clone();
            fork(move || {
                ev.wait();
                s[0].fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    until_someone_sleeps(&ev);
    std::thread::sleep(Duration::from_millis(30)); // let all of them fall asleep
    ev.set();
    ev.clear();
    for w in waiters {
        w.join();
    }
    assert_eq!(s[0].load(Ordering::SeqCst), WAITING as u64);
    assert!(!ev.is_set());
}

/// Two events as a hand-off ("your turn"), with `clear` on every turn: 10 000 turns in
/// strict alternation, each checked.
fn set_clear_ping_pong_is_exact() {
    const ROUNDS: u64 = 10_000;
    let a = arena();
    let ping = Event::new_in(&a).unwrap();
    let pong = Event::new_in(&a).unwrap();
    let s = shared_counters(1);
    let child = {
        let (ping, pong) = (ping.clone(), pong.clone());
        fork(move || {
            for i in 0..ROUNDS {
                ping.wait();
                ping.clear();
                assert_eq!(s[0].load(Ordering::Relaxed), 2 * i + 1);
                s[0].store(2 * i + 2, Ordering::Relaxed);
                pong.set();
            }
        })
    };
    for i in 0..ROUNDS {
        assert_eq!(s[0].load(Ordering::Relaxed), 2 * i);
        s[0].store(2 * i + 1, Ordering::Relaxed);
        ping.set();
        pong.wait();
        pong.clear();
    }
    child.join();
    assert_eq!(s[0].load(Ordering::Relaxed), 2 * ROUNDS);
}

fn wait_timeout_returns_within_bound() {
    let ev = Event::new_in(&arena()).unwrap();
    for ms in [0u64, 1, 50] {
        let t0 = Instant::now();
        assert!(!ev.wait_timeout(Duration::from_millis(ms)));
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(ms),
            "{ms} ms timeout returned after {took:?}"
        );
    }
    ev.set();
    // On a set event the wait returns at once; one that slept through its timeout would
    // return true too (it looks again at the end), so the check is the time: less than the
    // timeout, 10 s.
    let timeout = Duration::from_secs(10);
    let t0 = Instant::now();
    assert!(ev.wait_timeout(timeout));
    assert!(t0.elapsed() < timeout, "slept on a set event");
    assert!(ev.wait_timeout(Duration::ZERO));
}

fn wait_timeout_wakes_on_set() {
    let a = arena();
    let mut ev = Event::new_in(&a).unwrap();
    ev.set_spin(SpinPolicy::NEVER);
    let c = {
        let ev = ev.clone();
        fork(move || {
            until_someone_sleeps(&ev);
            ev.set();
        })
    };
    // A lost wake-up would not fail the call: after its timeout the wait looks at the word
    // once more and sees it set. So the check is that it returned before its timeout.
    let timeout = Duration::from_secs(20);
    let t0 = Instant::now();
    assert!(ev.wait_timeout(timeout));
    assert!(
        t0.elapsed() < timeout,
        "woken by its timeout, not by the set"
    );
    c.join();
}

fn set_is_visible_in_every_process() {
    let a = arena();
    let ev = Event::new_in(&a).unwrap();
    assert!(!ev.is_set());
    let c = {
        let ev = ev.clone();
        fork(move || {
            assert!(!ev.is_set());
            ev.set();
            ev.set(); // twice is fine
        })
    };
    c.join();
    assert!(ev.is_set());
    let c = {
        let ev = ev.clone();
        fork(move || {
            assert!(ev.is_set());
            ev.clear();
            ev.clear();
        })
    };
    c.join();
    assert!(!ev.is_set());
    assert!(format!("{ev:?}").contains("is_set: false"));
}

fn named_event_opened_in_child() {
    let a = arena();
    let ev = Event::create(&a, "go").unwrap();
    let c = {
        let a = a.clone();
        fork(move || Event::open(&a, "go").unwrap().wait())
    };
    Event::open(&a, "go").unwrap().set();
    c.join();
    assert!(ev.is_set());
}

fn open_errors() {
    let a = arena();
    Event::create(&a, "e").unwrap();
    shmproc::semaphore::Semaphore::create(&a, "s", 0).unwrap();
    assert!(matches!(
        Event::create(&a, "e"),
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(Event::open(&a, "s"), Err(Error::WrongType { .. })));
    assert!(matches!(
        Event::open(&a, "missing"),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(Event::create(&a, ""), Err(Error::InvalidName(_))));
}

/// A process killed while asleep in `wait` leaves the WAITERS bit behind: the next `set`
/// makes one useless wake call and clears it; other waiters are unaffected.
fn killed_waiter_does_not_break_event() {
    let a = arena();
    let mut ev = Event::new_in(&a).unwrap();
    ev.set_spin(SpinPolicy::NEVER);
    let victim = {
        let ev = ev.clone();
        fork(move || ev.wait())
    };
    until_someone_sleeps(&ev);
    victim.signal(libc::SIGKILL);
    assert_eq!(victim.wait(), -libc::SIGKILL);
    let survivor = {
        let ev = ev.clone();
        fork(move || ev.wait())
    };
    std::thread::sleep(Duration::from_millis(20));
    ev.set();
    survivor.join();
    assert!(ev.is_set());
    assert_eq!(ev.raw().word() & WAITERS, 0, "set clears the announcement");
}
