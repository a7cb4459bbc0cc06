//! The `Value` counter from the tutorials in `seeds/`: `counter = Value('i', 0)`, a worker
//! process does `shared_value.value += 1` and prints it.
//!
//! Shown three ways: the tutorial's one worker; eight workers with `get_lock()` (the
//! correct Python idiom, since `value += 1` is not atomic); and eight workers with the
//! lock-free `fetch_add`.
//!
//! Run with `cargo run --release --example shared_value_counter`.

use shmproc::{Process, Value};

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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let counter = Value::new(0i32)?;
    let c = counter.clone();
    run_all(vec![Process::new(move || {
        let mut v = c.get_lock().unwrap_or_else(|died| died.into_guard());
        *v += 1;
        println!("worker {}: {}", std::process::id(), *v);
    })])?;
    println!("parent sees {}", counter.get());

    let locked = Value::new(0u64)?;
    let kids = (0..8)
        .map(|_| {
            let v = locked.clone();
            Process::new(move || {
                for _ in 0..10_000 {
                    *v.get_lock().unwrap_or_else(|d| d.into_guard()) += 1;
                }
            })
        })
        .collect();
    run_all(kids)?;
    println!("8 x 10,000 increments with get_lock(): {}", locked.get());

    let atomic = Value::new(0u64)?;
    let kids = (0..8)
        .map(|_| {
            let v = atomic.clone();
            Process::new(move || {
                for _ in 0..100_000 {
                    v.fetch_add(1);
                }
            })
        })
        .collect();
    run_all(kids)?;
    println!("8 x 100,000 fetch_add (no lock):       {}", atomic.load());
    assert_eq!((locked.get(), atomic.load()), (80_000, 800_000));
    Ok(())
}
