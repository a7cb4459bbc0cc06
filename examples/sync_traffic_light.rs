//! The traffic light: a daemon light process drives an `Event` (set = green, clear =
//! red) every 60 ms; 8 car processes arrive at different times, wait for green, and pass.
//!
//! Ported from the tutorial's 红绿灯 example (`multiprocessing.Event`, a daemon
//! `traffic_light` process, cars that `e.wait()`). As in Python, the daemon light is
//! terminated when the main program is done (by `shmproc::process`'s exit hook).
//!
//! Run with `cargo run --example sync_traffic_light`.

use shmproc::event::Event;
use shmproc::process::Process;
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let green = Event::new()?;
    let t0 = Instant::now();
    let ms = move || t0.elapsed().as_millis();

    // The light: red first (the event starts clear), then alternates forever.
    let mut light = Process::builder().name("light").daemon(true).target({
        let green = green.clone();
        move || {
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
        }
    });
    light.start()?;

    let mut cars = Vec::new();
    for i in 0..8u64 {
        // The tutorial sleeps 0 or 2 s between cars; 0 or 40 ms here.
        std::thread::sleep(Duration::from_millis(if i % 3 == 0 { 0 } else { 40 }));
        let green = green.clone();
        let mut car = Process::new(move || {
            if !green.is_set() {
                println!("{:>4} ms  car {i} waits", ms());
            }
            green.wait();
            println!("{:>4} ms  car {i} passes", ms());
        });
        car.start()?;
        cars.push(car);
    }
    for car in &cars {
        assert_eq!(car.join()?, 0);
    }
    println!(
        "{:>4} ms  every car passed; the daemon light goes off with us",
        ms()
    );
    Ok(())
}
