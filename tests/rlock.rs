//! Multi-process tests of RLock (real `fork`, watchdog per test).

use shmproc::lock::TryAcquireError;
use shmproc::rlock::{NotOwner, RLock};
use shmproc::Arena;
use shmproc_testkit::{eventually, fork, shared_counters};
use std::sync::atomic::Ordering;
use std::time::Duration;

shmproc_testkit::main!(
    rlock_depth_three_across_fork,
    rlock_threads_of_one_process,
    rlock_owner_died_is_recovered,
);

fn arena() -> Arena {
    Arena::anonymous(1 << 20).unwrap()
}

fn rlock_depth_three_across_fork() {
    let a = arena();
    let lock = RLock::new_in(&a).unwrap();
    let flags = shared_counters(2);
    for _ in 0..3 {
        lock.acquire_forever();
    }
    assert_eq!(lock.depth(), 3);
    let child = fork(|| {
        // The child is another process: it does not own the parent's lock.
        assert!(!lock.is_owned());
        assert!(lock.is_locked());
        assert!(matches!(
            lock.try_acquire(),
            Err(TryAcquireError::WouldBlock)
        ));
        assert_eq!(lock.release(), Err(NotOwner));
        assert!(matches!(
            lock.acquire_timeout(Duration::from_millis(20)),
            Err(TryAcquireError::WouldBlock)
        ));
        flags[0].store(1, Ordering::SeqCst);
        let g = lock.acquire().expect("the parent is alive");
        flags[1].store(1, Ordering::SeqCst);
        let g2 = lock.acquire().unwrap();
        assert_eq!(lock.depth(), 2);
        drop(g2);
        drop(g);
        assert!(!lock.is_locked());
    });
    eventually("the child tried", || flags[0].load(Ordering::SeqCst) == 1);
    assert_eq!(lock.release(), Ok(2));
    assert_eq!(lock.release(), Ok(1));
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        flags[1].load(Ordering::SeqCst),
        0,
        "taken while held at depth 1"
    );
    assert_eq!(lock.release(), Ok(0));
    child.join();
    assert_eq!(flags[1].load(Ordering::SeqCst), 1);
    assert_eq!(lock.release(), Err(NotOwner));
}

fn rlock_threads_of_one_process() {
    let lock = RLock::new_in(&arena()).unwrap();
    let g = lock.acquire().unwrap();
    let l2 = lock.clone();
    std::thread::spawn(move || {
        assert!(!l2.is_owned());
        assert_eq!(l2.release(), Err(NotOwner));
        assert!(matches!(l2.try_acquire(), Err(TryAcquireError::WouldBlock)));
    })
    .join()
    .unwrap();
    drop(g);
    // Mutual exclusion between 4 threads, each re-entering: the counter is exact.
    let counter = shared_counters(1);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let l = lock.clone();
            std::thread::spawn(move || {
                for _ in 0..2000 {
                    let _a = l.acquire().unwrap();
                    let _b = l.acquire().unwrap();
                    let v = counter[0].load(Ordering::Relaxed);
                    counter[0].store(v + 1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(counter[0].load(Ordering::Relaxed), 8000);
}

fn rlock_owner_died_is_recovered() {
    let lock = RLock::new_in(&arena()).unwrap();
    let child = fork(|| {
        lock.acquire_forever();
        lock.acquire_forever();
        // Exit holding it at depth 2.
    });
    child.join();
    match lock.acquire() {
        Err(died) => {
            assert_eq!(lock.depth(), 1);
            drop(died.into_guard());
        }
        Ok(_) => panic!("the death of the holder was not reported"),
    }
    assert!(!lock.is_locked());
    assert!(lock.try_acquire().is_ok());
}
