//! The karaoke room (唱吧) with 2 places: 5 people, a `Semaphore(2)` as the 2 keys.
//!
//! Ported from the tutorial's `changba` example (`multiprocessing.Semaphore(2)`): each
//! person takes a key, sings for a while, leaves, and hands the key on. An `RLock` guards
//! a head count in shared memory, so the program can check that the room never held more
//! than 2.
//!
//! Run with `cargo run --example sync_karaoke`.

use shmproc::process::Process;
use shmproc::rlock::RLock;
use shmproc::semaphore::Semaphore;
use shmproc::shared::Array;
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keys = Semaphore::new(2)?;
    let count_lock = RLock::new()?;
    let room = Array::<u32>::from_slice(&[0, 0])?; // [inside, most ever inside]
    let t0 = Instant::now();
    let ms = move || t0.elapsed().as_millis();

    let mut people = Vec::new();
    for i in 0..5u64 {
        let (keys, count_lock, room) = (keys.clone(), count_lock.clone(), room.clone());
        let mut p = Process::new(move || {
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
        });
        p.start()?;
        people.push(p);
    }
    for p in &people {
        assert_eq!(p.join()?, 0);
    }
    let most = room.get(1).unwrap();
    println!("the room never held more than {most}");
    assert!(most <= 2);
    Ok(())
}
