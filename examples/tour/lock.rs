//! Lock, Semaphore, Event: three short runs across real processes.
//!
//! Each child is a [`Process`] whose closure captures clones of shmproc handles: a
//! handle needs no setup in the child, it is the same shared memory. The counters the
//! children update are shared [`Value`]s.

use shmproc::{Event, Lock, Semaphore, Value};
use std::time::Duration;

pub fn run() -> super::Res {
    lock_counter()?;
    semaphore_limit()?;
    event_wakes_all()?;
    Ok(())
}

/// N processes x M increments of one shared counter under a `Lock`: exactly N*M.
fn lock_counter() -> super::Res {
    const N: u64 = 4;
    const M: u64 = 25_000;
    let lock = Lock::new()?;
    let counter = Value::raw(0u64)?;
    let children = (0..N)
        .map(|_| {
            let (lock, counter) = (lock.clone(), counter.clone());
            super::spawn(move || {
                for _ in 0..M {
                    let _g = lock.acquire().expect("no holder dies in this run");
                    // A read-modify-write in two steps: only the lock keeps it exact.
                    counter.store(counter.load() + 1);
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for c in &children {
        super::join(c)?;
    }
    let got = counter.load();
    println!(
        "Lock:      {N} processes x {M} increments under one Lock = {got} (expected {})",
        N * M
    );
    if got != N * M {
        return Err("the lock lost increments".into());
    }
    Ok(())
}

/// A semaphore of 2, hammered by 5 processes: at most 2 are ever inside.
fn semaphore_limit() -> super::Res {
    const PROCS: u64 = 5;
    const ITERS: u64 = 5_000;
    let sem = Semaphore::new(2)?;
    // Inside now, most ever inside, entries.
    let (inside, most, entries) = (Value::raw(0u64)?, Value::raw(0u64)?, Value::raw(0u64)?);
    let children = (0..PROCS)
        .map(|_| {
            let sem = sem.clone();
            let (inside, most, entries) = (inside.clone(), most.clone(), entries.clone());
            super::spawn(move || {
                for _ in 0..ITERS {
                    let _permit = sem.acquire();
                    let now = inside.fetch_add(1) + 1;
                    most.fetch_update(|m| m.max(now));
                    for _ in 0..200 {
                        std::hint::spin_loop(); // stay inside a moment
                    }
                    entries.fetch_add(1);
                    inside.fetch_sub(1);
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for c in &children {
        super::join(c)?;
    }
    let (max, entries) = (most.load(), entries.load());
    println!(
        "Semaphore: {PROCS} processes entered a Semaphore(2) {entries} times; most inside at once: {max} (never 3)"
    );
    if max > 2 || entries != PROCS * ITERS || sem.value() != 2 {
        return Err("the semaphore admitted too many, or lost a permit".into());
    }
    Ok(())
}

/// Three processes wait on one Event; a fourth sets it; all three wake.
fn event_wakes_all() -> super::Res {
    const WAITERS: usize = 3;
    let ev = Event::new()?;
    let ready = Semaphore::new(0)?;
    let woken = Value::raw(0u64)?;
    let waiters = (0..WAITERS)
        .map(|i| {
            let (ev, ready, woken) = (ev.clone(), ready.clone(), woken.clone());
            super::spawn(move || {
                ready.release().expect("far below the limit");
                ev.wait();
                woken.fetch_add(1);
                println!("           waiter {i} (pid {}) woke up", std::process::id());
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for _ in 0..WAITERS {
        ready.acquire_forever();
    }
    let setter = {
        let ev = ev.clone();
        super::spawn(move || {
            std::thread::sleep(Duration::from_millis(20)); // the waiters are asleep by now
            println!("Event:     process {} sets the event", std::process::id());
            ev.set();
        })?
    };
    super::join(&setter)?;
    for w in &waiters {
        super::join(w)?;
    }
    let woken = woken.load();
    println!("           one set() woke {woken} of {WAITERS} waiting processes");
    if woken != WAITERS as u64 {
        return Err("the event did not wake every waiter".into());
    }
    Ok(())
}
