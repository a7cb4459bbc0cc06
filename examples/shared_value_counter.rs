//! The `Value` counter from the tutorials in `seeds/`: `counter = Value('i', 0)`, a worker
//! process does `shared_value.value += 1` and prints it.
//!
//! Shown three ways: the tutorial's one worker; eight workers with `get_lock()` (the
//! correct Python idiom, since `value += 1` is not atomic); and eight workers with the
//! lock-free `fetch_add`.
//!
//! Run with `cargo run --release --example shared_value_counter`.

use shmproc::shared::Value;

fn spawn(f: impl FnOnce()) -> libc::pid_t {
    use std::io::Write;
    std::io::stdout().flush().ok();
    // SAFETY: single-threaded when forking; the child runs `f` and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        f();
        std::io::stdout().flush().ok();
        // SAFETY: leave the child without the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    pid
}

fn join(pids: Vec<libc::pid_t>) {
    for pid in pids {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let counter = Value::new(0i32)?;
    let c = counter.clone();
    join(vec![spawn(move || {
        let mut v = c.get_lock().unwrap_or_else(|died| died.into_guard());
        *v += 1;
        println!("worker {}: {}", std::process::id(), *v);
    })]);
    println!("parent sees {}", counter.get());

    let locked = Value::new(0u64)?;
    let kids = (0..8)
        .map(|_| {
            let v = locked.clone();
            spawn(move || {
                for _ in 0..10_000 {
                    *v.get_lock().unwrap_or_else(|d| d.into_guard()) += 1;
                }
            })
        })
        .collect();
    join(kids);
    println!("8 x 10,000 increments with get_lock(): {}", locked.get());

    let atomic = Value::new(0u64)?;
    let kids = (0..8)
        .map(|_| {
            let v = atomic.clone();
            spawn(move || {
                for _ in 0..100_000 {
                    v.fetch_add(1);
                }
            })
        })
        .collect();
    join(kids);
    println!("8 x 100,000 fetch_add (no lock):       {}", atomic.load());
    assert_eq!((locked.get(), atomic.load()), (80_000, 800_000));
    Ok(())
}
