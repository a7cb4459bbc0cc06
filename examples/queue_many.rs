//! Several producers and several consumers on one queue.
//!
//! The Python tutorial starts 3 producers and 4 consumers and, once the producers are
//! joined, puts one `None` per consumer. With a queue-wide `close` the main process closes
//! once, whatever the number of consumers; the consumers report how much each took, and
//! the main process checks that every item arrived exactly once.
//!
//! Run with `cargo run --example queue_many`.
use bytemuck::{Pod, Zeroable};
use shmproc::queue::{GetError, Queue};
use std::io::Write;

/// A message: which producer, which item. Plain data (`Pod`): copied into the slot as is.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
struct Item {
    producer: u32,
    seq: u32,
}

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

const PER_PRODUCER: u32 = 6;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let q = Queue::<Item>::new(8)?;
    // The consumers send their tallies back on a second queue: (consumer, count, checksum).
    let tallies = Queue::<[u64; 3]>::new(8)?;
    let producers: Vec<_> = ["alex", "wusir", "wang"]
        .into_iter()
        .enumerate()
        .map(|(p, name)| {
            let q = q.clone();
            spawn(move || {
                for seq in 1..=PER_PRODUCER {
                    q.put(Item {
                        producer: p as u32,
                        seq,
                    })
                    .unwrap();
                    println!("producer {name} made item {seq}");
                }
            })
        })
        .collect();
    let consumers: Vec<_> = ["aaa", "bb", "c", "ddd"]
        .into_iter()
        .enumerate()
        .map(|(c, name)| {
            let (q, tallies) = (q.clone(), tallies.clone());
            spawn(move || {
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
            })
        })
        .collect();
    for p in producers {
        join(p);
    }
    q.close(); // one close, instead of one None per consumer
    let (mut n, mut sum) = (0, 0);
    for _ in 0..consumers.len() {
        let [c, cn, csum] = tallies.get()?;
        println!("consumer #{c} took {cn} items");
        n += cn;
        sum += csum;
    }
    for c in consumers {
        join(c);
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
