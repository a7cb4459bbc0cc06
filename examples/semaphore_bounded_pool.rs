//! A pool of three connections guarded by a `BoundedSemaphore`: workers in four processes
//! borrow a connection, Python style (`acquire()` ... `release()`), and a release that was
//! never matched by an acquire is caught instead of silently growing the pool.
//!
//! Run with `cargo run --example semaphore_bounded_pool`.

use shmproc::semaphore::{BoundedSemaphore, TooManyReleases};
use std::time::Duration;

fn spawn(f: impl FnOnce()) -> libc::pid_t {
    // SAFETY: single-threaded when forking; the child leaves through `_exit`.
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
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = BoundedSemaphore::new(3)?;
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let pool = pool.clone();
            spawn(move || {
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
            })
        })
        .collect();
    for w in workers {
        join(w);
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
