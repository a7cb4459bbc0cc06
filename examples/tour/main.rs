//! The tour: every shmproc primitive, across real processes, with what happened printed.
//!
//! Run it with `cargo run --release --example tour`. Each part checks its own results
//! and the tour ends with "tour complete"; a line on stderr that starts with
//! `Process <name>:` is a child reporting the error it was made to fail with (the
//! Process part shows exit codes), not a fault of the tour.

mod dict;
mod lifecycle;
mod list;
mod lock;
mod pipe;
mod process;
mod queue;
mod shared;
mod start;
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
    // First, as in every program that uses shmproc: it starts the forkserver while this is
    // the only thread, and makes a child started by `Spawn` (a fresh run of this binary)
    // run its target instead of `main`. The last part shows both.
    shmproc::init();
    println!("shmproc tour: Python's multiprocessing, in Rust, on shared memory");
    println!(
        "(lines on stderr that start with \"Process <name>:\" are children that fail on \
         purpose; the tour checks every result)\n"
    );
    let parts: [Part; 10] = [
        ("Process", process::run),
        ("Lock, Semaphore, Event", lock::run),
        ("RLock, Condition, Barrier", sync2::run),
        ("Queue, JoinableQueue", queue::run),
        ("Pipe", pipe::run),
        ("Value, Array, SharedDict, SharedMemory", shared::run),
        ("SharedList, ByteList, SerdeList", list::run),
        ("SharedDict, TypedDict, SerdeDict", dict::run),
        (
            "The arena: freed objects, swept processes, growth",
            lifecycle::run,
        ),
        (
            "Start methods: fork, forkserver, spawn; Listener / Client",
            start::run,
        ),
    ];
    for (title, part) in parts {
        println!("== {title}");
        part()?;
        println!();
    }
    println!("tour complete");
    Ok(())
}
