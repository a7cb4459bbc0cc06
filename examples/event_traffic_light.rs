//! A traffic light and cars: the light process turns green (`set`) and red (`clear`) every
//! 200 ms; car processes arrive at different times and `wait` for green before passing.
//!
//! Ported from the Python tutorial's `traffic_light` / `car` example with
//! `multiprocessing.Event`. Here the light stops when a second event, `done`, is set (its
//! `wait_timeout` doubles as the light's sleep, so it stops at once).
//!
//! Run with `cargo run --example event_traffic_light`.

use shmproc::event::Event;
use std::time::{Duration, Instant};

fn spawn(f: impl FnOnce()) -> libc::pid_t {
    // SAFETY: single-threaded when forking; the child leaves through `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        f();
        // SAFETY: see above.
        unsafe { libc::_exit(0) };
    }
    pid
}

fn join(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
}

fn main() -> Result<(), shmproc::Error> {
    let green = Event::new()?;
    let done = Event::new()?;
    let t0 = Instant::now();
    let ms = move || t0.elapsed().as_millis();

    let light = {
        let (green, done) = (green.clone(), done.clone());
        spawn(move || {
            println!("{:>4} ms  light: RED", ms());
            // Sleep 200 ms per phase, but stop as soon as `done` is set.
            while !done.wait_timeout(Duration::from_millis(200)) {
                if green.is_set() {
                    green.clear();
                    println!("{:>4} ms  light: RED", ms());
                } else {
                    green.set();
                    println!("{:>4} ms  light: GREEN", ms());
                }
            }
        })
    };

    let cars: Vec<_> = (0..6)
        .map(|i| {
            std::thread::sleep(Duration::from_millis(90));
            let green = green.clone();
            spawn(move || {
                if !green.is_set() {
                    println!("{:>4} ms  car {i} waits at the red light", ms());
                }
                green.wait();
                println!("{:>4} ms  car {i} passes", ms());
            })
        })
        .collect();
    for car in cars {
        join(car);
    }
    done.set();
    join(light);
    println!("all cars passed");
    Ok(())
}
