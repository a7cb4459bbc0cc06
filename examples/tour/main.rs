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
