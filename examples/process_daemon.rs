//! Daemon processes: a heartbeat that reports "still alive" while the main process works,
//! and dies with it.
//!
//! Ported from the tutorial "Process之join、daemon、terminate" (守护进程): a daemon
//! child prints a growing row of stars every beat, a normal child works a little longer
//! than the main process; when the main process reaches its end, the daemon is terminated
//! but the normal child is still waited for (by the exit hook, as in Python). A daemon
//! may not start children of its own.
//!
//! Run it with `cargo run --example process_daemon`.

use shmproc::process::{Process, ProcessError};
use std::time::Duration;

fn heartbeat() {
    // A daemon cannot have children: Python raises "daemonic processes are not allowed
    // to have children"; here `start` returns an error.
    let mut child = Process::new(|| ());
    match child.start() {
        Err(e @ ProcessError::DaemonHasChildren) => println!("daemon: as expected: {e}"),
        other => println!("daemon: unexpected {other:?}"),
    }
    let mut count = 1;
    loop {
        println!("daemon: {} still alive", "*".repeat(count));
        std::thread::sleep(Duration::from_millis(200));
        count += 1;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut daemon = Process::builder()
        .name("heartbeat")
        .daemon(true)
        .target(heartbeat);
    daemon.start()?;
    let mut worker = Process::new(|| {
        println!("worker: start");
        std::thread::sleep(Duration::from_millis(1000));
        println!("worker: end (the main process waited for me)");
    });
    worker.start()?;
    std::thread::sleep(Duration::from_millis(600));
    println!("main: my code is done; at exit the daemon is terminated, the worker joined");
    // No join here: returning from main runs the exit hook.
    Ok(())
}
