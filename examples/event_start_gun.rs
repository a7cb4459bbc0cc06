//! A start gun: four runner processes get ready and wait on one `Event`; the starter sets
//! it once, and every runner in every process is released at the same moment.
//!
//! Run with `cargo run --example event_start_gun`.

use shmproc::{Event, Process, Semaphore};
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const RUNNERS: usize = 4;
    let gun = Event::new()?;
    let ready = Semaphore::new(0)?; // each runner releases one permit when on its mark
    let t0 = Instant::now();

    let mut runners = Vec::new();
    for i in 0..RUNNERS {
        let (gun, ready) = (gun.clone(), ready.clone());
        let mut p = Process::new(move || {
            println!("runner {i} (pid {}) on its mark", std::process::id());
            ready.release().expect("far below the limit");
            gun.wait();
            println!("runner {i} off at {:?}", t0.elapsed());
        });
        p.start()?;
        runners.push(p);
    }

    for _ in 0..RUNNERS {
        ready.acquire_forever(); // wait until everybody is ready
    }
    std::thread::sleep(Duration::from_millis(50));
    println!("BANG at {:?}", t0.elapsed());
    gun.set();
    for r in &runners {
        assert_eq!(r.join()?, 0, "{} failed", r.name());
    }
    println!("all {RUNNERS} runners started");
    Ok(())
}
