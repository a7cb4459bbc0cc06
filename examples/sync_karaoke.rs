//! The karaoke room (唱吧) with 2 places: 5 people, a `Semaphore(2)` as the 2 keys.
//!
//! Ported from the tutorial's `changba` example (`multiprocessing.Semaphore(2)`): each
//! person takes a key, sings for a while, leaves, and hands the key on. An `RLock` guards
//! a head count in shared memory, so the program can check that the room never held more
//! than 2. `shmproc::process` was not merged when this was written: processes are plain
//! `fork`s.
//!
//! Run with `cargo run --example sync_karaoke`.

use shmproc::rlock::RLock;
use shmproc::semaphore::Semaphore;
use shmproc::shared::Array;
use shmproc::Arena;
use std::time::{Duration, Instant};

fn spawn(f: impl FnOnce()) -> libc::pid_t {
    // SAFETY: this program is single-threaded when it forks; the child leaves via `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        f();
        // SAFETY: see above.
        unsafe { libc::_exit(0) };
    }
    pid
}

fn join(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
}

fn main() -> Result<(), shmproc::Error> {
    let arena = Arena::anonymous(1 << 20)?;
    let keys = Semaphore::new_in(&arena, 2)?;
    let count_lock = RLock::new_in(&arena)?;
    let room = Array::<u32>::raw_in(&arena, &[0, 0])?; // [inside, most ever inside]
    let t0 = Instant::now();
    let ms = move || t0.elapsed().as_millis();

    let people: Vec<_> = (0..5u64)
        .map(|i| {
            let (keys, count_lock, room) = (keys.clone(), count_lock.clone(), room.clone());
            spawn(move || {
                let _key = keys.acquire();
                {
                    let _g = count_lock.acquire().unwrap();
                    let inside = room.get(0).unwrap() + 1;
                    room.set(0, inside).unwrap();
                    room.set(1, room.get(1).unwrap().max(inside)).unwrap();
                    println!("{:>4} ms  person{i} walks in ({inside} inside)", ms());
                }
                // The tutorial sings 3-6 s; 30-60 ms here.
                std::thread::sleep(Duration::from_millis(30 + 10 * (i * 7 % 4)));
                let _g = count_lock.acquire().unwrap();
                room.set(0, room.get(0).unwrap() - 1).unwrap();
                println!("{:>4} ms  person{i} walks out", ms());
                // `_g`, then `_key` are released here: the key goes to the next person.
            })
        })
        .collect();
    for p in people {
        join(p);
    }
    let most = room.get(1).unwrap();
    println!("the room never held more than {most}");
    assert!(most <= 2);
    Ok(())
}
