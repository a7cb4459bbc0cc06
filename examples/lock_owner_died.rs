//! A robust lock: a worker is killed while it holds the lock, halfway through updating two
//! values that must stay equal. The next process to take the lock is told so
//! (`OwnerDied`), repairs the pair, and work goes on.
//!
//! Python's `multiprocessing.Lock` would stay locked forever here: every other process
//! would hang. Run it with `cargo run --example lock_owner_died`.

use shmproc::{Lock, Process, Value};
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lock = Lock::new()?;
    // Two balances that must always be equal; `Value::raw` has no lock of its own: the
    // shared `lock` protects them both.
    let (a, b) = (Value::<u64>::raw(100)?, Value::<u64>::raw(100)?);
    let ready = shmproc::Event::new()?;

    let mut victim = {
        let (lock, a, ready) = (lock.clone(), a.clone(), ready.clone());
        Process::new(move || {
            let _g = lock.acquire().expect("fresh lock");
            a.set(a.get() - 30); // first half of the transfer ...
            ready.set();
            std::thread::sleep(Duration::from_secs(3600)); // ... and it never gets to the second
        })
    };
    victim.start()?;
    ready.wait();
    println!(
        "worker {} holds the lock, mid-update: a = {}, b = {}",
        victim.pid().unwrap(),
        a.get(),
        b.get()
    );
    victim.kill()?;
    println!("worker killed (exit code {:?})", victim.join()?);

    let t = Instant::now();
    let guard = match lock.acquire() {
        Ok(g) => g,
        Err(died) => {
            println!(
                "acquired after {:?}: the previous holder died holding the lock",
                t.elapsed()
            );
            if a.get() != b.get() {
                println!(
                    "repairing: a = {}, b = {} -> rolling a back",
                    a.get(),
                    b.get()
                );
                a.set(b.get());
            }
            died.into_guard()
        }
    };
    assert_eq!(a.get(), b.get());
    drop(guard);
    println!("consistent again: a = {}, b = {}", a.get(), b.get());
    victim.close()?;
    Ok(())
}
