//! The Process part of the tour: start, join, exit codes, names, daemons, terminate.

use shmproc::process::{active_children, cpu_count, current_process, parent_process, Process};
use std::time::Duration;

pub fn run() -> super::Res {
    println!(
        "{} (pid {}), {} CPUs",
        current_process().name(),
        std::process::id(),
        cpu_count()
    );

    // Four children, four ways to end: the exit codes Python's multiprocessing gives.
    // The second one's target returns an error, so it prints "Process <name>:" and the
    // error on stderr (as a Python child prints its traceback) and exits with 1.
    let mut ok = Process::new(|| ());
    let mut failing = Process::fallible(|| "forty-two".parse::<u32>().map(drop));
    let mut exiting = Process::new(|| std::process::exit(7));
    let mut sleeping = Process::new(|| std::thread::sleep(Duration::from_secs(60)));
    println!(
        "{} will fail on purpose: its target parses \"forty-two\" as a number; the \
         \"Process {}:\" line on stderr is its report",
        failing.name(),
        failing.name()
    );
    for p in [&mut ok, &mut failing, &mut exiting, &mut sleeping] {
        p.start()?;
    }
    let timed_out = sleeping.join_timeout(Duration::from_millis(50))?;
    println!(
        "join_timeout(50 ms) on {}: {timed_out:?}, is_alive = {}",
        sleeping.name(),
        sleeping.is_alive()
    );
    sleeping.terminate()?;
    let how = [
        "returned ()",
        "returned Err: 1, after its report on stderr",
        "called exit(7)",
        "was terminated: -SIGTERM",
    ];
    let mut codes = Vec::new();
    for (p, how) in [&ok, &failing, &exiting, &sleeping].into_iter().zip(how) {
        let code = p.join()?;
        codes.push(code);
        println!(
            "{} (pid {}) exited with {code} ({how})",
            p.name(),
            p.pid().unwrap_or(0)
        );
    }
    if codes != [0, 1, 7, -15] {
        return Err(format!("exit codes {codes:?}, expected [0, 1, 7, -15]").into());
    }

    // Nested names: a child's children are Process-N:1, Process-N:2, ...
    let mut outer = Process::fallible(|| -> Result<(), Box<dyn std::error::Error>> {
        let mut inner = Process::new(|| {
            let parent = parent_process()
                .map(|p| p.name().to_owned())
                .unwrap_or_default();
            println!("  I am {}, child of {parent}", current_process().name());
        });
        inner.start()?;
        inner.join()?;
        Ok(())
    });
    outer.start()?;
    outer.join()?;

    // A daemon dies with its parent; here we stop it ourselves since the tour goes on.
    let mut daemon = Process::builder()
        .name("heartbeat")
        .daemon(true)
        .target(|| loop {
            std::thread::sleep(Duration::from_secs(1));
        });
    daemon.start()?;
    println!(
        "active children: {:?}",
        active_children()
            .iter()
            .map(|c| c.name().to_owned())
            .collect::<Vec<_>>()
    );
    daemon.kill()?;
    println!(
        "daemon {} killed: exit code {}",
        daemon.name(),
        daemon.join()?
    );
    Ok(())
}
