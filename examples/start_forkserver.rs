//! Start method `ForkServer`, and the default once a program has threads: `init()` forks
//! a server while the program is still single-threaded; each child is forked from it, so
//! the parent may run a tokio runtime, a logger, anything.
//!
//! Run with `cargo run --example start_forkserver`.

use shmproc::process::{Process, StartMethod};
use shmproc::Pipe;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmproc::init(); // forks the server now, while this is the only thread
                     // Threads appear (a logger, a runtime, ...).
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let logger = std::thread::spawn(move || {
        for line in rx {
            println!("[log] {line}");
        }
    });

    // The default start method sees the threads and uses the forkserver.
    let (mine, theirs) = Pipe::new(true)?;
    let mut workers = Vec::new();
    let mut ends = vec![mine];
    for i in 0..4u32 {
        let (a, b) = Pipe::new(true)?;
        let mut p = Process::function(
            |(i, conn): (u32, shmproc::Connection)| -> Result<(), String> {
                conn.send(&(i * i)).map_err(|e| e.to_string())
            },
            (i, b),
        );
        p.start()?;
        assert_eq!(p.start_method(), StartMethod::ForkServer);
        workers.push(p);
        ends.push(a);
    }
    drop(theirs);
    for (i, end) in ends.iter().skip(1).enumerate() {
        let sq: u32 = end.recv()?;
        tx.send(format!("worker {i} answered {sq}"))?;
        assert_eq!(sq, (i * i) as u32);
    }
    for p in &workers {
        assert_eq!(p.join()?, 0);
    }
    drop(tx);
    logger.join().unwrap();
    Ok(())
}
