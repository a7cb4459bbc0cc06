//! The JoinableQueue kitchen: cooks (producers) put dishes and then `join` the queue, which
//! returns only when every dish has been eaten and marked `task_done` by an eater
//! (consumer).
//!
//! In the Python tutorial the eaters are daemon processes: they loop forever and die with
//! the main process. Here they are plain forked children that leave when the main process
//! `close`s the queue after the cooks are done (a queue-wide close wakes them and their
//! `get` fails with `Disconnected`), so nothing is killed mid-dish. The `Process` layer's
//! daemons would do the same job.
//!
//! Run with `cargo run --example queue_kitchen`.
use bytemuck::{Pod, Zeroable};
use shmproc::queue::{GetError, JoinableQueue};
use std::io::Write;
use std::time::Duration;

/// A dish: which cook, which number. Plain data, copied into the queue's slot.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
struct Dish {
    cook: u32,
    n: u32,
}

const COOKS: [&str; 3] = ["baozi", "bones", "slop"];

/// Forks a child that runs `f`, then exits.
fn spawn(f: impl FnOnce()) -> libc::pid_t {
    std::io::stdout().flush().ok();
    // SAFETY: this program is single-threaded when it forks, so the child is a faithful
    // copy; the child leaves through `_exit` and never returns into the parent's code.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        f();
        std::io::stdout().flush().ok();
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    pid
}

/// Waits for a child.
fn join(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let q = JoinableQueue::<Dish>::new(8)?;
    // The eaters ("daemons": they leave when the queue is closed).
    let eaters: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            spawn(move || {
                // SAFETY: getpid has no preconditions.
                let me = unsafe { libc::getpid() };
                loop {
                    match q.get() {
                        Ok(d) => {
                            std::thread::sleep(Duration::from_millis(1 + u64::from(d.n % 3)));
                            println!("\x1b[45m{me} ate {}{}\x1b[0m", COOKS[d.cook as usize], d.n);
                            q.task_done().unwrap(); // one dish fully handled
                        }
                        Err(GetError::Disconnected) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    // The cooks.
    let cooks: Vec<_> = COOKS
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let q = q.clone();
            spawn(move || {
                // SAFETY: getpid has no preconditions.
                let me = unsafe { libc::getpid() };
                for n in 0..10 {
                    q.put(Dish { cook: c as u32, n }).unwrap();
                    println!("\x1b[44m{me} cooked {name}{n}\x1b[0m");
                }
                println!("{name}: cooking done, waiting until everything is eaten");
                q.join(); // blocks until every dish put (by anyone) is task_done
                println!(
                    "{name}: all dishes eaten (unfinished: {})",
                    q.unfinished_tasks()
                );
            })
        })
        .collect();
    for c in cooks {
        join(c);
    }
    // Every cook returned from join, so every dish was eaten: the eaters can go.
    assert_eq!(q.unfinished_tasks(), 0);
    println!("main: the cooks are done, closing the kitchen");
    q.close();
    for e in eaters {
        join(e);
    }
    println!("main: done");
    Ok(())
}
