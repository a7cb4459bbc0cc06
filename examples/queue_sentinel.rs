//! Producer / consumer with one sentinel per consumer: the pattern the Python tutorials
//! teach (`q.put(None)` once per consumer), ported as is. See `queue_close.rs` for the
//! same program with a queue-wide `close`, which needs no sentinel.
//!
//! Run with `cargo run --example queue_sentinel`.
//!
//! Python:
//! ```text
//! def consumer(q, name):
//!     while True:
//!         food = q.get()
//!         if not food: break
//!         print('%s ate %s' % (name, food))
//! ...
//! p1.join(); q.put(None); q.put(None)   # one None per consumer
//! ```
use shmproc::queue::ByteQueue;
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

/// A few milliseconds of "work", different in each process.
fn work(seed: u64) {
    let ms = (seed.wrapping_mul(6364136223846793005) >> 59) + 1;
    std::thread::sleep(Duration::from_millis(ms));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Byte messages of up to 64 bytes; the empty message is the sentinel ("if not food").
    let q = ByteQueue::new(16, 64)?;
    let producer = {
        let q = q.clone();
        spawn(move || {
            for i in 1..10u64 {
                work(i);
                let food = format!("slop {i}");
                println!("taibai made {food}");
                q.put_bytes(food.as_bytes()).unwrap();
            }
        })
    };
    let consumers: Vec<_> = ["alex", "wusir"]
        .into_iter()
        .map(|name| {
            let q = q.clone();
            spawn(move || loop {
                let food = q.get_bytes().unwrap();
                if food.is_empty() {
                    println!("{name} got the sentinel and stops");
                    break;
                }
                work(food.len() as u64 + name.len() as u64);
                println!("{name} ate {}", String::from_utf8_lossy(&food));
            })
        })
        .collect();
    join(producer);
    // One sentinel per consumer, or some consumer waits forever.
    for _ in &consumers {
        q.put_bytes(b"")?;
    }
    for c in consumers {
        join(c);
    }
    println!("main: done");
    Ok(())
}
