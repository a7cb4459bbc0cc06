//! Ticket selling, ported from the tutorials in `seeds/` (10 buyers, 3 tickets), twice
//! side by side:
//!
//! 1. the tutorial's version: the tickets live in a JSON file, `search` reads it freely,
//!    and `get` (read, delay, write) runs under a [`Lock`](shmproc::Lock);
//! 2. the shared-memory version: the count lives in a [`SharedDict`], `search` is a
//!    lock-free read, and `get` is one atomic `update_with`: no separate lock to forget.
//!
//! Run with `cargo run --release --example shared_tickets`.

use shmproc::{Lock, Process, SharedDict, Value};
use std::time::Duration;

/// Starts every process, then joins them all; each must exit with 0.
fn run_all(mut ps: Vec<Process>) -> Result<(), Box<dyn std::error::Error>> {
    for p in &mut ps {
        p.start()?;
    }
    for p in &ps {
        assert_eq!(p.join()?, 0, "{} failed", p.name());
    }
    Ok(())
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
            Process::new(move || {
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
    run_all(buyers)?;
    let left = read_count(&path);
    println!("tickets left in the file: {left}");
    std::fs::remove_file(&path)?;
    assert_eq!(left, 0, "the lock must keep each read-delay-write whole");
    Ok(())
}

fn shared_memory_version() -> Result<(), Box<dyn std::error::Error>> {
    println!("-- SharedDict (shared memory, atomic read-modify-write)");
    let db = SharedDict::new()?;
    db.insert(b"count", &3u64.to_le_bytes())?;
    let sold = Value::new(0u32)?;
    let count = |v: &[u8]| u64::from_le_bytes(v.try_into().expect("8 bytes"));
    let buyers = (0..10)
        .map(|i| {
            let (db, sold) = (db.clone(), sold.clone());
            Process::new(move || {
                let left = db.get(b"count").unwrap().map_or(0, |v| count(&v));
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
    run_all(buyers)?;
    let left = db.get(b"count")?.map_or(0, |v| count(&v));
    println!("tickets left in the dict: {left}, sold: {}", sold.load());
    assert_eq!((left, sold.load()), (0, 3));
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    json_file_version()?;
    println!();
    shared_memory_version()
}
