//! RLock, Condition, Barrier, and the tutorial scenes built with them: a bounded buffer,
//! the traffic light (`Event`) and the karaoke room (`Semaphore`), across processes.
//!
//! Every child is a [`Process`] whose closure captures clones of shmproc handles (a
//! handle needs no setup in a child); the traffic light is a daemon, as in the tutorial.

use shmproc::{
    Arena, Array, Barrier, Condition, Event, Process, RLock, Semaphore, TryAcquireError,
};
use std::time::Duration;

pub fn run() -> super::Res {
    let arena = Arena::anonymous(1 << 20)?;
    rlock(&arena)?;
    bounded_buffer(&arena)?;
    barrier(&arena)?;
    traffic_light(&arena)?;
    karaoke(&arena)?;
    Ok(())
}

/// An RLock held 3 deep by nested calls; another process cannot take it until all 3
/// levels are released.
fn rlock(arena: &Arena) -> super::Res {
    let lock = RLock::new_in(arena)?;
    fn nested(lock: &RLock, depth: u32) -> u32 {
        let _g = lock.acquire().unwrap();
        if depth == 1 {
            lock.depth()
        } else {
            nested(lock, depth - 1)
        }
    }
    println!("rlock: nested calls reached depth {}", nested(&lock, 3));
    for _ in 0..3 {
        lock.acquire_forever();
    }
    let child = super::spawn({
        let lock = lock.clone();
        move || {
            let busy = matches!(lock.try_acquire(), Err(TryAcquireError::WouldBlock));
            println!("rlock: another process finds it held: {busy}; it waits...");
            let _g = lock.acquire().unwrap();
            println!("rlock: ...and gets it once the owner released all 3 levels");
        }
    })?;
    std::thread::sleep(Duration::from_millis(20));
    for _ in 0..3 {
        lock.release()?;
    }
    super::join(&child)
}

/// The condition-based bounded buffer: a producer and a consumer process, 3 slots.
fn bounded_buffer(arena: &Arena) -> super::Res {
    const CAP: u64 = 3;
    const N: u64 = 50;
    let cond = Condition::new_in(arena)?; // with its own RLock
    let ring = Array::<u64>::raw_in(arena, &[0; 2 + CAP as usize])?; // [head, tail, slots]
    let len = |r: &Array<u64>| r.get(1).unwrap() - r.get(0).unwrap();
    let producer = super::spawn({
        let (cond, ring) = (cond.clone(), ring.clone());
        move || {
            for item in 1..=N {
                let _g = cond.acquire().unwrap();
                cond.wait_for(|| len(&ring) < CAP, None).unwrap();
                let t = ring.get(1).unwrap();
                ring.set(2 + (t % CAP) as usize, item).unwrap();
                ring.set(1, t + 1).unwrap();
                cond.notify_all().unwrap();
            }
        }
    })?;
    let mut sum = 0;
    for _ in 0..N {
        let _g = cond.acquire().unwrap();
        cond.wait_for(|| len(&ring) > 0, None).unwrap();
        let h = ring.get(0).unwrap();
        sum += ring.get(2 + (h % CAP) as usize).unwrap();
        ring.set(0, h + 1).unwrap();
        cond.notify_all().unwrap();
    }
    super::join(&producer)?;
    println!(
        "condition: {N} items through a {CAP}-slot buffer, checksum {sum} (expected {})",
        N * (N + 1) / 2
    );
    Ok(())
}

/// 3 processes pass a barrier 3 times; the last to arrive runs the action.
fn barrier(arena: &Arena) -> super::Res {
    let b = Barrier::new_in(arena, 3)?.with_action(|| println!("barrier: everyone is here"));
    let party = |name: &'static str| {
        let b = b.clone();
        move || {
            for pass in 0..3 {
                let i = b.wait().unwrap();
                if i == 0 {
                    println!("barrier: pass {pass}, {name} arrived first");
                }
            }
        }
    };
    let kids = [
        super::spawn(party("child A"))?,
        super::spawn(party("child B"))?,
    ];
    party("the parent")();
    for k in &kids {
        super::join(k)?;
    }
    b.abort();
    println!("barrier: aborted, a late arrival gets {:?}", b.wait());
    b.reset();
    println!("barrier: reset, broken = {}", b.broken());
    Ok(())
}

/// The traffic light: a daemon light process turns an Event green and red; car processes
/// wait for green.
fn traffic_light(arena: &Arena) -> super::Res {
    let green = Event::new_in(arena)?;
    let mut light = Process::builder().name("light").daemon(true).target({
        let green = green.clone();
        move || loop {
            std::thread::sleep(Duration::from_millis(15));
            if green.is_set() {
                green.clear();
            } else {
                green.set();
            }
        }
    });
    light.start()?;
    let mut cars = Vec::new();
    for i in 0..4 {
        let green = green.clone();
        let mut car = Process::new(move || {
            std::thread::sleep(Duration::from_millis(7 * i));
            green.wait();
            println!("traffic light: car {i} passes on green");
        });
        car.start()?;
        cars.push(car);
    }
    for c in &cars {
        super::join(c)?;
    }
    // A daemon would end with the program; this part ends it now.
    light.terminate()?;
    light.join()?;
    Ok(())
}

/// The karaoke room with 2 places: a Semaphore(2), 4 singer processes.
fn karaoke(arena: &Arena) -> super::Res {
    let keys = Semaphore::new_in(arena, 2)?;
    let mut singers = Vec::new();
    for i in 0..4 {
        let keys = keys.clone();
        let mut p = Process::new(move || {
            let _key = keys.acquire();
            println!("karaoke: person{i} sings ({} place(s) free)", keys.value());
            std::thread::sleep(Duration::from_millis(10));
        });
        p.start()?;
        singers.push(p);
    }
    for s in &singers {
        super::join(s)?;
    }
    println!("karaoke: everyone sang, {} places free", keys.value());
    Ok(())
}
