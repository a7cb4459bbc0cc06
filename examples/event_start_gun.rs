//! A start gun: four runner processes get ready and wait on one `Event`; the starter sets
//! it once, and every runner in every process is released at the same moment.
//!
//! Run with `cargo run --example event_start_gun`.

use shmproc::event::Event;
use shmproc::semaphore::Semaphore;
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
    const RUNNERS: usize = 4;
    let gun = Event::new()?;
    let ready = Semaphore::new(0)?; // each runner releases one permit when on its mark
    let t0 = Instant::now();

    let runners: Vec<_> = (0..RUNNERS)
        .map(|i| {
            let (gun, ready) = (gun.clone(), ready.clone());
            spawn(move || {
                println!("runner {i} (pid {}) on its mark", std::process::id());
                ready.release().expect("far below the limit");
                gun.wait();
                println!("runner {i} off at {:?}", t0.elapsed());
            })
        })
        .collect();

    for _ in 0..RUNNERS {
        ready.acquire_forever(); // wait until everybody is ready
    }
    std::thread::sleep(Duration::from_millis(50));
    println!("BANG at {:?}", t0.elapsed());
    gun.set();
    for r in runners {
        join(r);
    }
    println!("all {RUNNERS} runners started");
    Ok(())
}
