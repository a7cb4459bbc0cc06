//! The tour: every shmproc primitive, across real processes, with what happened printed.
//!
//! Run it with `cargo run --release --example tour`.

mod lock;
mod pipe;
mod process;
mod queue;
mod shared;
mod sync2;

type Res = Result<(), Box<dyn std::error::Error>>;
type Part = (&'static str, fn() -> Res);

/// Starts a process running `f` (every part's children are started this way).
fn spawn(f: impl FnOnce() + 'static) -> Result<shmproc::Process, shmproc::ProcessError> {
    let mut p = shmproc::Process::new(f);
    p.start()?;
    Ok(p)
}

/// Waits for a child; an error unless it exited with 0.
fn join(p: &shmproc::Process) -> Res {
    match p.join()? {
        0 => Ok(()),
        code => Err(format!(
            "{} (pid {:?}) failed with exit code {code}",
            p.name(),
            p.pid()
        )
        .into()),
    }
}

fn main() -> Res {
    println!("shmproc tour: Python's multiprocessing, in Rust, on shared memory\n");
    let parts: [Part; 6] = [
        ("Process", process::run),
        ("Lock, Semaphore, Event", lock::run),
        ("RLock, Condition, Barrier", sync2::run),
        ("Queue, JoinableQueue", queue::run),
        ("Pipe", pipe::run),
        ("Value, Array, SharedDict, SharedMemory", shared::run),
    ];
    for (title, part) in parts {
        println!("== {title}");
        part()?;
        println!();
    }
    println!("tour complete");
    Ok(())
}
