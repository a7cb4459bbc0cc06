//! A long-running worker loop that makes what it needs as it goes: a queue per job, a
//! worker process per job, and drops them when the job is done.
//!
//! Each job gets a fresh `Queue` for its results and a process that fills it; the main
//! process sums the results and drops the queue. The arena's used bytes are printed as
//! the jobs go by: they stay flat, because an object's memory goes back to the arena with
//! its last handle, in every process (the worker's copy goes when it exits and is joined).
//! Before arenas had a heap, this loop failed after a few hundred jobs.
//!
//! Run with `cargo run --example worker_loop`.
use shmproc::{Arena, Process, Queue};

const JOBS: u64 = 400;
const ITEMS: u64 = 100;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arena = Arena::anonymous(1 << 20)?;
    let mut first = None;
    let mut total = 0u64;
    for job in 0..JOBS {
        // A queue for this job only.
        let results = Queue::<u64>::new_in(&arena, 16)?;
        let mut worker = Process::new({
            let results = results.clone();
            move || {
                for i in 0..ITEMS {
                    results.put(job * 1_000 + i).unwrap();
                }
            }
        });
        worker.start()?;
        let sum: u64 = (0..ITEMS).map(|_| results.get().unwrap()).sum();
        assert_eq!(sum, job * 1_000 * ITEMS + ITEMS * (ITEMS - 1) / 2);
        total += sum;
        assert_eq!(worker.join()?, 0);
        let during = arena.used();
        drop(results);
        let after = arena.used();
        let base = *first.get_or_insert(after);
        if job % 100 == 0 || job == JOBS - 1 {
            println!("job {job:>3}: {during} bytes in use with its queue, {after} after it");
        }
        // Bounded: every job leaves the arena where the first left it.
        assert_eq!(after, base, "job {job} left memory behind");
    }
    println!("{JOBS} jobs, {} results, total {total}", JOBS * ITEMS);
    Ok(())
}
