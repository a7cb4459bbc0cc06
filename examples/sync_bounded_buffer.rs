//! A bounded buffer built from a `Lock` and two `Condition`s: 2 cook processes make buns,
//! 2 eater processes eat them, through a shelf that holds 4.
//!
//! Ported from the tutorial's producer/consumer model (生产者消费者模型: 厨师 make 包子,
//! 吃货 eat them), which uses a `multiprocessing.Queue`; here the queue is written by hand,
//! the way `threading.Condition`'s documentation builds one: producers wait on `not_full`,
//! consumers on `not_empty`, both under one lock. A `None` per eater ends the meal, as in
//! the tutorial's improved version.
//!
//! Run with `cargo run --example sync_bounded_buffer`.

use shmproc::{Arena, Array, Condition, Lock, Process, ProcessError};
use std::time::Duration;

const SHELF: u64 = 4;
const BUNS_PER_COOK: u64 = 5;
const COOKS: u64 = 2;
const EATERS: u64 = 2;
/// Marks "no more buns" on the shelf (the tutorial's `None`).
const DONE: u64 = u64::MAX;

/// The shelf: a ring of `SHELF` slots in shared memory, `[head, tail, slots...]`, guarded
/// by `lock`, with a condition for each way it can block.
#[derive(Clone)]
struct Shelf {
    lock: Lock,
    not_full: Condition,
    not_empty: Condition,
    ring: Array<u64>,
}

impl Shelf {
    fn new(arena: &Arena) -> Result<Shelf, shmproc::Error> {
        let lock = Lock::new_in(arena)?;
        Ok(Shelf {
            not_full: Condition::with_lock(arena, &lock)?,
            not_empty: Condition::with_lock(arena, &lock)?,
            ring: Array::raw_in(arena, &[0; 2 + SHELF as usize])?,
            lock,
        })
    }

    fn len(&self) -> u64 {
        self.ring.get(1).unwrap() - self.ring.get(0).unwrap()
    }

    fn put(&self, item: u64) {
        let _held = self.lock.acquire().expect("a holder died");
        self.not_full
            .wait_for(|| self.len() < SHELF, None)
            .expect("we hold the lock");
        let tail = self.ring.get(1).unwrap();
        self.ring.set(2 + (tail % SHELF) as usize, item).unwrap();
        self.ring.set(1, tail + 1).unwrap();
        self.not_empty.notify(1).expect("we hold the lock");
    }

    fn get(&self) -> u64 {
        let _held = self.lock.acquire().expect("a holder died");
        self.not_empty
            .wait_for(|| self.len() > 0, None)
            .expect("we hold the lock");
        let head = self.ring.get(0).unwrap();
        let item = self.ring.get(2 + (head % SHELF) as usize).unwrap();
        self.ring.set(0, head + 1).unwrap();
        self.not_full.notify(1).expect("we hold the lock");
        item
    }
}

/// Starts a process running `f`.
fn spawn(f: impl FnOnce() + 'static) -> Result<Process, ProcessError> {
    let mut p = Process::new(f);
    p.start()?;
    Ok(p)
}

/// Joins a process; it must have exited with 0.
fn join(p: Process) -> Result<(), ProcessError> {
    assert_eq!(p.join()?, 0, "{} failed", p.name());
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arena = Arena::anonymous(1 << 20)?;
    let shelf = Shelf::new(&arena)?;
    let eaten = Array::<u64>::raw_in(&arena, &[0; 2])?; // [count, sum], under shelf.lock

    let eaters = (0..EATERS)
        .map(|e| {
            let (shelf, eaten) = (shelf.clone(), eaten.clone());
            spawn(move || loop {
                let bun = shelf.get();
                if bun == DONE {
                    return;
                }
                println!("eater {e} ate bun {bun}");
                std::thread::sleep(Duration::from_millis(3));
                let _held = shelf.lock.acquire().unwrap();
                eaten.set(0, eaten.get(0).unwrap() + 1).unwrap();
                eaten.set(1, eaten.get(1).unwrap() + bun).unwrap();
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cooks = (0..COOKS)
        .map(|c| {
            let shelf = shelf.clone();
            spawn(move || {
                for i in 0..BUNS_PER_COOK {
                    let bun = c * BUNS_PER_COOK + i + 1;
                    std::thread::sleep(Duration::from_millis(1));
                    shelf.put(bun);
                    println!("cook {c} made bun {bun}");
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for c in cooks {
        join(c)?;
    }
    // Every cook is done: one DONE per eater.
    for _ in 0..EATERS {
        shelf.put(DONE);
    }
    for e in eaters {
        join(e)?;
    }
    let n = COOKS * BUNS_PER_COOK;
    let (count, sum) = (eaten.get(0).unwrap(), eaten.get(1).unwrap());
    println!(
        "{count} buns eaten (checksum {sum}), shelf empty: {}",
        shelf.len() == 0
    );
    assert_eq!((count, sum), (n, n * (n + 1) / 2));
    Ok(())
}
