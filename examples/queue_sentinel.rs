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
use shmproc::{ByteQueue, Process};
use std::time::Duration;

/// A few milliseconds of "work", different in each process.
fn work(seed: u64) {
    let ms = (seed.wrapping_mul(6364136223846793005) >> 59) + 1;
    std::thread::sleep(Duration::from_millis(ms));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Byte messages of up to 64 bytes; the empty message is the sentinel ("if not food").
    let q = ByteQueue::new(16, 64)?;
    let mut producer = {
        let q = q.clone();
        Process::new(move || {
            for i in 1..10u64 {
                work(i);
                let food = format!("slop {i}");
                println!("taibai made {food}");
                q.put_bytes(food.as_bytes()).unwrap();
            }
        })
    };
    producer.start()?;
    let mut consumers = Vec::new();
    for name in ["alex", "wusir"] {
        let q = q.clone();
        let mut c = Process::new(move || loop {
            let food = q.get_bytes().unwrap();
            if food.is_empty() {
                println!("{name} got the sentinel and stops");
                break;
            }
            work(food.len() as u64 + name.len() as u64);
            println!("{name} ate {}", String::from_utf8_lossy(&food));
        });
        c.start()?;
        consumers.push(c);
    }
    assert_eq!(producer.join()?, 0, "the producer failed");
    // One sentinel per consumer, or some consumer waits forever.
    for _ in &consumers {
        q.put_bytes(b"")?;
    }
    for c in &consumers {
        assert_eq!(c.join()?, 0, "{} failed", c.name());
    }
    println!("main: done");
    Ok(())
}
