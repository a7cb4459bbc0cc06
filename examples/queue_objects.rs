//! Python's `Queue` of objects: workers take jobs of any size and send back results of
//! any size, as Rust values (any serde type), through `ObjQueue`; each worker's log line
//! comes back over a one-way pipe's typed ends (`Pipe::channel`).
//!
//! The Python it follows:
//!
//! ```python
//! def worker(jobs, results):
//!     for name, text in iter(jobs.get, None):
//!         results.put((name, len(text.split()), text.upper()))
//! ```
//!
//! Here a job is a `(String, String)` of up to 1 MiB (a queue slot holds 104 bytes: a
//! longer value goes to a heap block of its own, freed by the consumer), and `close`
//! replaces the `None` sentinels. Run with `cargo run --example queue_objects`.
use shmproc::pipe::Pipe;
use shmproc::queue::{GetError, ObjQueue};
use shmproc::{Arena, Process};

#[derive(serde::Serialize, serde::Deserialize, Debug)]
struct Report {
    name: String,
    words: usize,
    shout: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arena = Arena::anonymous(1 << 20)?;
    let jobs = ObjQueue::<(String, String)>::new_in(&arena, 8)?;
    let results = ObjQueue::<Report>::new_in(&arena, 8)?;
    let base = arena.used();

    let mut logs = Vec::new();
    let workers: Vec<Process> = (0..3)
        .map(|w| {
            let (jobs, results) = (jobs.clone(), results.clone());
            let (log, log_rx) = Pipe::channel_in(&arena, 4096)?;
            logs.push(log_rx);
            // `start` drops the parent's copy of what the closure captured (the Sender):
            // the child holds the only one, so its exit is the pipe's EOF.
            let mut p = Process::new(move || {
                let mut done = 0;
                loop {
                    match jobs.get() {
                        Ok((name, text)) => {
                            let r = Report {
                                words: text.split_whitespace().count(),
                                shout: text.to_uppercase(),
                                name,
                            };
                            results.put(&r).unwrap();
                            done += 1;
                        }
                        Err(GetError::Disconnected) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
                log.send_obj(&format!("worker {w}: {done} jobs")).unwrap();
            });
            p.start()?;
            Ok(p)
        })
        .collect::<Result<_, Box<dyn std::error::Error>>>()?;

    // Jobs from 10 bytes to 1 MiB.
    let sizes: Vec<usize> = (0..20).map(|i| 10usize << i).collect();
    std::thread::scope(|s| {
        s.spawn(|| {
            for (i, &n) in sizes.iter().enumerate() {
                let text = "word ".repeat(n.div_ceil(5));
                jobs.put(&(format!("job {i}"), text)).unwrap();
            }
            jobs.close();
        });
        let mut got = 0;
        while got < sizes.len() {
            let r = results.get().unwrap();
            assert!(r.shout.starts_with("WORD"));
            if got % 5 == 0 {
                println!(
                    "{}: {} words, {} bytes back",
                    r.name,
                    r.words,
                    r.shout.len()
                );
            }
            got += 1;
        }
    });
    for w in &workers {
        assert_eq!(w.join()?, 0);
    }
    for rx in &logs {
        println!("{}", rx.recv_obj::<String>()?);
    }
    drop(logs);
    assert_eq!(arena.used(), base, "every message's block was freed");
    println!(
        "all {} jobs done; the arena is back to {} bytes in use",
        sizes.len(),
        base
    );
    Ok(())
}
