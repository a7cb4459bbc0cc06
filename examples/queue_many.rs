//! Several producers and several consumers on one queue.
//!
//! The Python tutorial starts 3 producers and 4 consumers and, once the producers are
//! joined, puts one `None` per consumer. With a queue-wide `close` the main process closes
//! once, whatever the number of consumers; the consumers report how much each took, and
//! the main process checks that every item arrived exactly once.
//!
//! Run with `cargo run --example queue_many`.
use bytemuck::{Pod, Zeroable};
use shmproc::{GetError, Process, Queue};

/// A message: which producer, which item. Plain data (`Pod`): copied into the slot as is.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
struct Item {
    producer: u32,
    seq: u32,
}

const PER_PRODUCER: u32 = 6;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let q = Queue::<Item>::new(8)?;
    // The consumers send their tallies back on a second queue: (consumer, count, checksum).
    let tallies = Queue::<[u64; 3]>::new(8)?;
    let mut producers = Vec::new();
    for (p, name) in ["alex", "wusir", "wang"].into_iter().enumerate() {
        let q = q.clone();
        let mut producer = Process::new(move || {
            for seq in 1..=PER_PRODUCER {
                q.put(Item {
                    producer: p as u32,
                    seq,
                })
                .unwrap();
                println!("producer {name} made item {seq}");
            }
        });
        producer.start()?;
        producers.push(producer);
    }
    let mut consumers = Vec::new();
    for (c, name) in ["aaa", "bb", "c", "ddd"].into_iter().enumerate() {
        let (q, tallies) = (q.clone(), tallies.clone());
        let mut consumer = Process::new(move || {
            let (mut n, mut sum) = (0u64, 0u64);
            loop {
                match q.get() {
                    Ok(item) => {
                        println!("consumer {name} got {item:?}");
                        n += 1;
                        sum += u64::from(item.producer * 100 + item.seq);
                    }
                    Err(GetError::Disconnected) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            println!("\x1b[31;1mconsumer {name} is done\x1b[0m");
            tallies.put([c as u64, n, sum]).unwrap();
        });
        consumer.start()?;
        consumers.push(consumer);
    }
    for p in &producers {
        assert_eq!(p.join()?, 0, "{} failed", p.name());
    }
    q.close(); // one close, instead of one None per consumer
    let (mut n, mut sum) = (0, 0);
    for _ in 0..consumers.len() {
        let [c, cn, csum] = tallies.get()?;
        println!("consumer #{c} took {cn} items");
        n += cn;
        sum += csum;
    }
    for c in &consumers {
        assert_eq!(c.join()?, 0, "{} failed", c.name());
    }
    let want: u64 = (0..3u64)
        .map(|p| {
            (1..=u64::from(PER_PRODUCER))
                .map(|s| p * 100 + s)
                .sum::<u64>()
        })
        .sum();
    assert_eq!(
        (n, sum),
        (3 * u64::from(PER_PRODUCER), want),
        "every item exactly once"
    );
    println!("main: {n} items, each received exactly once");
    Ok(())
}
