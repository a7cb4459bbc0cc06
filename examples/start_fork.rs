//! Start method `Fork`: the child is a copy of the parent, so a closure may capture
//! anything, but the parent must have one thread (or opt in with `allow_threads`).
//!
//! Run with `cargo run --example start_fork`.

use shmproc::process::{get_context, ProcessError, StartMethod};
use shmproc::Value;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmproc::init();
    let ctx = get_context(StartMethod::Fork);
    let total = Value::<u64>::new(0)?; // in the global arena, inherited by the fork
    let greeting = String::from("hello from a forked child"); // captured data: fine
    let t = total.clone();
    let mut p = ctx.process(move || {
        println!("{greeting}");
        t.fetch_add(42);
    });
    p.start()?;
    assert_eq!(p.join()?, 0);
    assert_eq!(total.load(), 42);

    // With another thread, fork is refused (a lock held by that thread would stay held
    // in the child forever) unless the caller opts in.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let helper = std::thread::spawn(move || rx.recv().ok());
    let mut q = ctx.process(|| ());
    match q.start() {
        Err(ProcessError::Threads { count }) => println!("refused: {count} threads"),
        other => panic!("expected Threads, got {other:?}"),
    }
    drop(tx);
    helper.join().unwrap();
    Ok(())
}
