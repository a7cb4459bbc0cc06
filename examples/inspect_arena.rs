//! Looking inside an arena while its processes run: which process holds which lock, how
//! many jobs wait in a queue, which processes died holding objects.
//!
//! The program makes a named arena with a queue of jobs, a lock, a semaphore and an
//! event, starts a worker that takes the lock and keeps it, and a worker that takes a
//! permit and a job (reading it in place) and is then killed. It prints what [`Arena::snapshot`] and
//! [`inspect::state`] say: the same as `shmproc inspect <name>` shows from outside.
//!
//! Run with `cargo run --example inspect_arena`. With `-- --wait` it keeps running (the
//! worker keeps its lock) so that you can look at it with the tool from another terminal:
//!
//! ```text
//! cargo run --example inspect_arena -- --wait
//! cargo run -p shmproc-cli -- ls
//! cargo run -p shmproc-cli -- inspect demo-<pid>
//! ```
//!
//! Stopped with Ctrl-C, it leaves its arena in `/dev/shm` as a crashed program would:
//! `shmproc clean` removes it.

use shmproc::inspect::{self, Snapshot};
use shmproc::{Arena, Event, Lock, Process, Queue, Semaphore};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmproc::init();
    let wait = std::env::args().any(|a| a == "--wait");
    let name = format!("demo-{}", std::process::id());
    let arena = Arena::create(&name, 1 << 20)?;
    let jobs = Queue::<u64>::create(&arena, "jobs", 16)?;
    let db = Lock::create(&arena, "db")?;
    let slots = Semaphore::create(&arena, "slots", 2)?;
    let locked = Event::create(&arena, "locked")?;
    for job in [10, 20, 30] {
        jobs.put(job)?;
    }

    // A worker that takes the lock and keeps it.
    let mut holder = {
        let (db, locked) = (db.clone(), locked.clone());
        Process::new(move || {
            let _guard = db.acquire();
            locked.set();
            std::thread::sleep(Duration::from_secs(3600));
        })
    };
    holder.start()?;
    locked.wait();

    // A worker that takes a permit and a job, and is killed before it gives them back.
    let victim = {
        let (jobs, slots, took) = (jobs.clone(), slots.clone(), Event::new_in(&arena)?);
        let t = took.clone();
        let mut p = Process::new(move || {
            // A permit it will never release.
            std::mem::forget(slots.acquire());
            // The job read in place (a loan): a claim its death leaves for the
            // survivors to end (inspection lists it, with the dead holder's pid).
            let _job = jobs.get_loan();
            t.set();
            std::thread::sleep(Duration::from_secs(3600));
        });
        p.start()?;
        took.wait();
        p
    };
    victim.kill()?;
    let victim_pid = victim.pid().expect("started");
    // Not joined: a joined child is swept at once. This one stays in the arena's table,
    // listed as dead, once the signal has done its work.
    let snap = loop {
        let snap = arena.snapshot()?;
        if snap
            .processes
            .iter()
            .any(|p| p.pid.pid == victim_pid && !p.pid.alive)
        {
            break snap;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    println!(
        "arena {name}: {} objects, {} bytes used of {}",
        snap.stats.objects, snap.stats.used, snap.stats.size
    );
    for p in &snap.processes {
        println!("  process {} holds {} objects", p.pid, p.objects);
    }
    for o in &snap.objects {
        let state: Vec<String> = inspect::state(&snap, o)?
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let holders: Vec<String> = o.holders.iter().map(|h| h.pid.to_string()).collect();
        println!(
            "  {:<10} {:<7} held by {:<24} {}",
            format!("{:?}", o.kind.expect("a kind of this build")),
            o.name.as_deref().unwrap_or("-"),
            holders.join(", "),
            state.join(" ")
        );
    }
    // What the tool reads from outside: the same, by name.
    assert_eq!(Snapshot::open(&name)?.objects.len(), snap.objects.len());

    if wait {
        println!("\nlook with: cargo run -p shmproc-cli -- inspect {name}   (Ctrl-C ends this)");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    victim.join()?;
    holder.kill()?;
    holder.join()?;
    arena.unlink()?;
    Ok(())
}
