//! Three processes print "start" and "end" with a pause in between: without a lock their
//! lines interleave; with a [`Lock`] each process's pair stays together.
//!
//! Ported from the tutorial "进程间同步" (the terminal-printing example with and without
//! `Lock`). Besides printing, every process records its two events in a shared log, so the
//! program *checks* the claim instead of asking you to read the output.
//!
//! Run it with `cargo run --example lock_printing`.

use shmproc::{Array, Lock, Process, Value};
use std::time::Duration;

const WORKERS: usize = 3;

/// A shared log of `(pid, 0 = start / 1 = end)` events, appended atomically.
struct Log {
    events: Array<[u32; 2]>,
    next: Value<u64>,
}

impl Log {
    fn new() -> shmproc::Result<Log> {
        Ok(Log {
            events: Array::new(2 * WORKERS)?,
            next: Value::new(0)?,
        })
    }
    fn record(&self, what: u32) {
        let i = self.next.fetch_add(1) as usize;
        self.events
            .set(i, [std::process::id(), what])
            .expect("log has room");
    }
    /// True when every "start" is immediately followed by the same process's "end".
    fn pairs_adjacent(&self) -> bool {
        let ev = self.events.to_vec();
        ev.chunks(2)
            .all(|p| p[0][1] == 0 && p[1][1] == 1 && p[0][0] == p[1][0])
    }
}

fn task(lock: Option<&Lock>, log: &Log) {
    let _guard = lock.map(|l| l.acquire().expect("no holder died"));
    println!("p{} is start", std::process::id());
    log.record(0);
    std::thread::sleep(Duration::from_millis(200));
    println!("p{} is end", std::process::id());
    log.record(1);
}

fn run(lock: Option<Lock>) -> Result<bool, Box<dyn std::error::Error>> {
    let log = Log::new()?;
    let mut ps = Vec::new();
    for _ in 0..WORKERS {
        let (lock, log) = (
            lock.clone(),
            Log {
                events: log.events.clone(),
                next: log.next.clone(),
            },
        );
        let mut p = Process::new(move || task(lock.as_ref(), &log));
        p.start()?;
        ps.push(p);
    }
    for p in &ps {
        assert_eq!(p.join()?, 0);
    }
    Ok(log.pairs_adjacent())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("-- without a lock");
    let unlocked = run(None)?;
    println!("   start/end pairs adjacent: {unlocked} (usually false: the processes interleave)\n");
    println!("-- with a Lock");
    let locked = run(Some(Lock::new()?))?;
    println!("   start/end pairs adjacent: {locked}");
    assert!(locked, "the lock must keep each process's pair together");
    Ok(())
}
