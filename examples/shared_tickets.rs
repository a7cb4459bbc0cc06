//! Ticket selling, ported from the tutorials in `seeds/` (10 buyers, 3 tickets), twice
//! side by side:
//!
//! 1. the tutorial's version: the tickets live in a JSON file, `search` reads it freely,
//!    and `get` (read, delay, write) runs under a [`Lock`](shmproc::Lock);
//! 2. the shared-memory version: the count lives in a [`SharedDict`], `search` is a
//!    lock-free read, and `get` is one atomic `update_with`: no separate lock to forget.
//!
//! Run with `cargo run --release --example shared_tickets`.

use shmproc::shared::{SharedDict, Value};
use shmproc::Lock;
use std::time::Duration;

/// Forks a child that runs `f`, then exits.
fn spawn(f: impl FnOnce()) -> libc::pid_t {
    use std::io::Write;
    std::io::stdout().flush().ok();
    // SAFETY: this program is single-threaded when it forks; the child runs `f` and
    // leaves with `_exit`, never returning into the parent's code.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        f();
        std::io::stdout().flush().ok();
        // SAFETY: leave the child without running the parent's exit handlers.
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

fn read_count(path: &std::path::Path) -> u32 {
    // The tutorial's db.json is `{"count": 3}`; a tiny parser keeps the example
    // dependency-free.
    let text = std::fs::read_to_string(path).expect("read db.json");
    text.trim_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .expect("db.json holds a count")
}

fn json_file_version() -> Result<(), Box<dyn std::error::Error>> {
    println!("-- JSON file + Lock (the tutorial's version)");
    let path = std::env::temp_dir().join(format!("shmproc-tickets-{}.json", std::process::id()));
    std::fs::write(&path, r#"{"count": 3}"#)?;
    let mutex = Lock::new()?;
    let buyers = (0..10)
        .map(|i| {
            let (mutex, path) = (mutex.clone(), path.clone());
            spawn(move || {
                // search: anyone may read at any time
                println!(
                    "buyer {i} (pid {}) sees {} tickets left",
                    std::process::id(),
                    read_count(&path)
                );
                // get: read, network delay, write, under the lock
                let _guard = mutex.acquire().unwrap_or_else(|died| died.into_guard());
                let left = read_count(&path);
                std::thread::sleep(Duration::from_millis(10));
                if left > 0 {
                    std::fs::write(&path, format!(r#"{{"count": {}}}"#, left - 1)).unwrap();
                    println!("buyer {i} bought a ticket");
                } else {
                    println!("buyer {i}: sold out");
                }
            })
        })
        .collect();
    join(buyers);
    println!("tickets left in the file: {}", read_count(&path));
    std::fs::remove_file(&path)?;
    Ok(())
}

fn shared_memory_version() -> Result<(), Box<dyn std::error::Error>> {
    println!("-- SharedDict (shared memory, atomic read-modify-write)");
    let db = SharedDict::new(8, 16, 8)?;
    db.insert(b"count", &3u64.to_le_bytes())?;
    let sold = Value::new(0u32)?;
    let count = |v: &[u8]| u64::from_le_bytes(v.try_into().expect("8 bytes"));
    let buyers = (0..10)
        .map(|i| {
            let (db, sold) = (db.clone(), sold.clone());
            spawn(move || {
                let left = db.get(b"count").map_or(0, |v| count(&v));
                println!(
                    "buyer {i} (pid {}) sees {left} tickets left",
                    std::process::id()
                );
                let mut bought = false;
                db.update_with(b"count", |v| {
                    let left = count(v?);
                    std::thread::sleep(Duration::from_millis(10)); // the same delay
                    bought = left > 0;
                    Some(left.saturating_sub(1).to_le_bytes().to_vec())
                })
                .unwrap();
                if bought {
                    sold.fetch_add(1);
                    println!("buyer {i} bought a ticket");
                } else {
                    println!("buyer {i}: sold out");
                }
            })
        })
        .collect();
    join(buyers);
    let left = db.get(b"count").map_or(0, |v| count(&v));
    println!("tickets left in the dict: {left}, sold: {}", sold.load());
    assert_eq!((left, sold.load()), (0, 3));
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    json_file_version()?;
    println!();
    shared_memory_version()
}
