//! A pool of three connections guarded by a `BoundedSemaphore`: workers in four processes
//! borrow a connection, Python style (`acquire()` ... `release()`), and a release that was
//! never matched by an acquire is caught instead of silently growing the pool.
//!
//! Run with `cargo run --example semaphore_bounded_pool`.

use shmproc::{BoundedSemaphore, Process, TooManyReleases};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = BoundedSemaphore::new(3)?;
    let mut workers = Vec::new();
    for w in 0..4 {
        let pool = pool.clone();
        let mut p = Process::new(move || {
            for job in 0..3 {
                // Wait at most a second for a connection.
                match pool.acquire_timeout(Duration::from_secs(1)) {
                    Ok(conn) => {
                        println!(
                            "worker {w}: job {job} on a connection ({} left)",
                            pool.value()
                        );
                        std::thread::sleep(Duration::from_millis(20));
                        drop(conn);
                    }
                    Err(e) => println!("worker {w}: job {job} skipped: {e}"),
                }
            }
        });
        p.start()?;
        workers.push(p);
    }
    for w in &workers {
        assert_eq!(w.join()?, 0, "{} failed", w.name());
    }
    println!("all workers done; connections free: {}", pool.value());

    // A buggy extra release is refused: the pool stays at three.
    match pool.release() {
        Err(TooManyReleases { limit }) => println!("extra release refused (bound {limit})"),
        Ok(()) => unreachable!("a bounded semaphore cannot grow"),
    }
    assert_eq!(pool.value(), 3);
    Ok(())
}
