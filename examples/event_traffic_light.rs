//! A traffic light and cars: the light process turns green (`set`) and red (`clear`) every
//! 200 ms; car processes arrive at different times and `wait` for green before passing.
//!
//! Ported from the Python tutorial's `traffic_light` / `car` example with
//! `multiprocessing.Event`. As in the tutorial, the light is a daemon process
//! (`Process::builder().daemon(true)`): it could never outlive the main process. Here it
//! also stops cleanly when a second event, `done`, is set (its `wait_timeout` doubles as
//! the light's sleep, so it stops at once), and the main process joins it.
//!
//! Run with `cargo run --example event_traffic_light`.

use shmproc::{Event, Process};
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let green = Event::new()?;
    let done = Event::new()?;
    let t0 = Instant::now();
    let ms = move || t0.elapsed().as_millis();

    let mut light = {
        let (green, done) = (green.clone(), done.clone());
        Process::builder()
            .name("traffic-light")
            .daemon(true)
            .target(move || {
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
    light.start()?;

    let mut cars = Vec::new();
    for i in 0..6 {
        std::thread::sleep(Duration::from_millis(90));
        let green = green.clone();
        let mut car = Process::builder().name(format!("car-{i}")).target(move || {
            if !green.is_set() {
                println!("{:>4} ms  car {i} waits at the red light", ms());
            }
            green.wait();
            println!("{:>4} ms  car {i} passes", ms());
        });
        car.start()?;
        cars.push(car);
    }
    for car in &cars {
        assert_eq!(car.join()?, 0, "{} failed", car.name());
    }
    done.set();
    assert_eq!(light.join()?, 0, "the light failed");
    println!("all cars passed");
    Ok(())
}
