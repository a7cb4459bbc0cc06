//! The JoinableQueue kitchen: cooks (producers) put dishes and then `join` the queue, which
//! returns only when every dish has been eaten and marked `task_done` by an eater
//! (consumer).
//!
//! In the Python tutorial the eaters are daemon processes: they loop forever and die with
//! the main process. Here too they are daemons (`Process::builder().daemon(true)`), so they
//! can never outlive the main process; but rather than being killed at exit, possibly
//! mid-dish, they leave on their own when the main process `close`s the queue after the
//! cooks are done (a queue-wide close wakes them and their `get` fails with
//! `Disconnected`), and the main process joins them.
//!
//! Run with `cargo run --example queue_kitchen`.
use bytemuck::{Pod, Zeroable};
use shmproc::{GetError, JoinableQueue, Process};
use std::time::Duration;

/// A dish: which cook, which number. Plain data, copied into the queue's slot.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
struct Dish {
    cook: u32,
    n: u32,
}

const COOKS: [&str; 3] = ["baozi", "bones", "slop"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let q = JoinableQueue::<Dish>::new(8)?;
    // The eaters: daemons, which leave when the queue is closed.
    let mut eaters = Vec::new();
    for e in 0..2 {
        let q = q.clone();
        let mut eater = Process::builder()
            .name(format!("eater-{e}"))
            .daemon(true)
            .target(move || {
                let me = std::process::id();
                loop {
                    match q.get() {
                        Ok(d) => {
                            std::thread::sleep(Duration::from_millis(1 + u64::from(d.n % 3)));
                            println!("\x1b[45m{me} ate {}{}\x1b[0m", COOKS[d.cook as usize], d.n);
                            q.task_done().unwrap(); // one dish fully handled
                        }
                        Err(GetError::Disconnected) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
            });
        eater.start()?;
        eaters.push(eater);
    }
    // The cooks.
    let mut cooks = Vec::new();
    for (c, name) in COOKS.iter().enumerate() {
        let q = q.clone();
        let mut cook = Process::builder().name(*name).target(move || {
            let me = std::process::id();
            for n in 0..10 {
                q.put(Dish { cook: c as u32, n }).unwrap();
                println!("\x1b[44m{me} cooked {name}{n}\x1b[0m");
            }
            println!("{name}: cooking done, waiting until everything is eaten");
            // blocks until every dish put (by anyone) is task_done
            q.join().expect("no eater died holding a dish");
            println!(
                "{name}: all dishes eaten (unfinished: {})",
                q.unfinished_tasks()
            );
        });
        cook.start()?;
        cooks.push(cook);
    }
    for c in &cooks {
        assert_eq!(c.join()?, 0, "cook {} failed", c.name());
    }
    // Every cook returned from join, so every dish was eaten: the eaters can go.
    assert_eq!(q.unfinished_tasks(), 0);
    println!("main: the cooks are done, closing the kitchen");
    q.close();
    for e in &eaters {
        assert_eq!(e.join()?, 0, "{} failed", e.name());
    }
    println!("main: done");
    Ok(())
}
