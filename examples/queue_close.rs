//! Producer / consumer with a queue-wide `close` instead of sentinels.
//!
//! Python's `Queue.close()` only closes the calling process's end, so the tutorials send
//! one `None` per consumer (see `queue_sentinel.rs`). Here `close` is queue-wide: every
//! consumer drains what is left, then its `get` fails with `Disconnected`, however many
//! consumers there are.
//!
//! Run with `cargo run --example queue_close`.
use shmproc::{GetError, Process, Queue};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Plain data needs no serialization: a dish is a number.
    let q = Queue::<u32>::new(4)?;
    let mut producer = {
        let q = q.clone();
        Process::new(move || {
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
    producer.start()?;
    let mut consumers = Vec::new();
    for name in ["alex", "wusir"] {
        let q = q.clone();
        let mut c = Process::new(move || {
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
        });
        c.start()?;
        consumers.push(c);
    }
    assert_eq!(producer.join()?, 0, "the producer failed");
    for c in &consumers {
        assert_eq!(c.join()?, 0, "{} failed", c.name());
    }
    assert!(q.put(99).unwrap_err().is_disconnected());
    println!("main: done");
    Ok(())
}
