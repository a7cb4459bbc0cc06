//! The traffic light: a daemon light process drives an `Event` (set = green, clear =
//! red) every 60 ms; 8 car processes arrive at different times, wait for green, and pass.
//!
//! Ported from the tutorial's 红绿灯 example (`multiprocessing.Event`, a daemon
//! `traffic_light` process, cars that `e.wait()`). `shmproc::process` was not merged when
//! this was written, so processes are plain `fork`s, and the daemon is ended the way Python
//! ends one: terminated when the main program is done.
//!
//! Run with `cargo run --example sync_traffic_light`.

use shmproc::event::Event;
use shmproc::Arena;
use std::time::{Duration, Instant};

fn spawn(f: impl FnOnce()) -> libc::pid_t {
    // SAFETY: this program is single-threaded when it forks; the child leaves via `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        f();
        // SAFETY: see above.
        unsafe { libc::_exit(0) };
    }
    pid
}

fn join(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    status
}

fn main() -> Result<(), shmproc::Error> {
    let arena = Arena::anonymous(1 << 20)?;
    let green = Event::new_in(&arena)?;
    let t0 = Instant::now();
    let ms = move || t0.elapsed().as_millis();

    // The light: red first (the event starts clear), then alternates forever.
    let light = {
        let green = green.clone();
        spawn(move || {
            println!("{:>4} ms  light: \x1b[31mRED\x1b[0m", ms());
            loop {
                std::thread::sleep(Duration::from_millis(60));
                if green.is_set() {
                    println!("{:>4} ms  light: \x1b[31mRED\x1b[0m", ms());
                    green.clear();
                } else {
                    println!("{:>4} ms  light: \x1b[32mGREEN\x1b[0m", ms());
                    green.set();
                }
            }
        })
    };

    let mut cars = Vec::new();
    for i in 0..8u64 {
        // The tutorial sleeps 0 or 2 s between cars; 0 or 40 ms here.
        std::thread::sleep(Duration::from_millis(if i % 3 == 0 { 0 } else { 40 }));
        let green = green.clone();
        cars.push(spawn(move || {
            if !green.is_set() {
                println!("{:>4} ms  car {i} waits", ms());
            }
            green.wait();
            println!("{:>4} ms  car {i} passes", ms());
        }));
    }
    for car in cars {
        assert_eq!(join(car), 0);
    }
    println!(
        "{:>4} ms  every car passed; the daemon light is switched off",
        ms()
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(light, libc::SIGTERM) };
    join(light);
    Ok(())
}
