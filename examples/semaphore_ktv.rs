//! A karaoke room with two microphones: five people, at most two singing at once.
//!
//! Ported from the Python tutorial's `changba` example:
//! `sem = Semaphore(2)`, five `Process(target=changba, args=(person, sem))`, each doing
//! `sem.acquire(); sing; sem.release()`.
//!
//! Run with `cargo run --example semaphore_ktv`.

use shmproc::{Process, Semaphore};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sem = Semaphore::new(2)?; // two microphones
    let mut people = Vec::new();
    for i in 0..5 {
        let sem = sem.clone();
        let mut p = Process::new(move || {
            let _mic = sem.acquire(); // given back when `_mic` is dropped
            println!(
                "person{i} walks into the room  (free mics now: {})",
                sem.value()
            );
            std::thread::sleep(Duration::from_millis(100 + 50 * i));
            println!("person{i} walks out");
        });
        p.start()?;
        people.push(p);
    }
    for p in &people {
        assert_eq!(p.join()?, 0, "{} failed", p.name());
    }
    println!("everyone sang; free mics: {}", sem.value());
    assert_eq!(sem.value(), 2);
    Ok(())
}
