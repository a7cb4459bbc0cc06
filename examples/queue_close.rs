//! Producer / consumer with a queue-wide `close` instead of sentinels.
//!
//! Python's `Queue.close()` only closes the calling process's end, so the tutorials send
//! one `None` per consumer (see `queue_sentinel.rs`). Here `close` is queue-wide: every
//! consumer drains what is left, then its `get` fails with `Disconnected`, however many
//! consumers there are.
//!
//! Run with `cargo run --example queue_close`.
use shmproc::queue::{GetError, Queue};
use std::io::Write;
use std::time::Duration;

/// Forks a child that runs `f`, then exits.
fn spawn(f: impl FnOnce()) -> libc::pid_t {
    std::io::stdout().flush().ok();
    // SAFETY: this program is single-threaded when it forks, so the child is a faithful
    // copy; the child leaves through `_exit` and never returns into the parent's code.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        f();
        std::io::stdout().flush().ok();
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    pid
}

/// Waits for a child.
fn join(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Plain data needs no serialization: a dish is a number.
    let q = Queue::<u32>::new(4)?;
    let producer = {
        let q = q.clone();
        spawn(move || {
            for i in 1..10 {
                std::thread::sleep(Duration::from_millis(2));
                println!("taibai made dish {i}");
                q.put(i).unwrap();
            }
            // No sentinels: close the queue for everybody.
            q.close();
            println!("taibai closed the queue");
        })
    };
    let consumers: Vec<_> = ["alex", "wusir"]
        .into_iter()
        .map(|name| {
            let q = q.clone();
            spawn(move || {
                let mut eaten = 0;
                loop {
                    match q.get() {
                        Ok(dish) => {
                            std::thread::sleep(Duration::from_millis(3));
                            println!("{name} ate dish {dish}");
                            eaten += 1;
                        }
                        Err(GetError::Disconnected) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
                println!("{name}: queue closed and empty after {eaten} dishes");
            })
        })
        .collect();
    join(producer);
    for c in consumers {
        join(c);
    }
    assert!(q.put(99).unwrap_err().is_disconnected());
    println!("main: done");
    Ok(())
}
