//! Start method `Spawn`: the child is a fresh run of this binary. `shmproc::init()` at
//! the top of `main` makes it run its target instead of `main`; the target is a function
//! and its serde arguments, which may hold handles (an `Arena`, a `Connection` end): they
//! arrive attached.
//!
//! Run with `cargo run --example start_spawn`.

use serde::{Deserialize, Serialize};
use shmproc::process::{get_context, StartMethod};
use shmproc::{Arena, Connection, Pipe, Value};

#[derive(Serialize, Deserialize)]
struct Job {
    arena: Arena,
    results: Connection,
    words: Vec<String>,
}

fn count_letters(job: Job) -> Result<(), String> {
    let letters: u64 = job.words.iter().map(|w| w.len() as u64).sum();
    Value::<u64>::open(&job.arena, "letters")
        .map_err(|e| e.to_string())?
        .fetch_add(letters);
    job.results
        .send_bytes(format!("{} words", job.words.len()).as_bytes())
        .map_err(|e| e.to_string())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmproc::init(); // first: a spawned child leaves from here into `count_letters`
    let arena = Arena::anonymous(1 << 20)?;
    let letters = Value::<u64>::create(&arena, "letters", 0)?;
    let (mine, theirs) = Pipe::new_in(&arena, false, 4096)?;
    let job = Job {
        arena: arena.clone(),
        results: theirs,
        words: vec!["spawn".into(), "is".into(), "exec".into()],
    };
    let mut p = get_context(StartMethod::Spawn).function(count_letters, job);
    p.start()?;
    println!(
        "child says: {}",
        String::from_utf8_lossy(&mine.recv_bytes()?)
    );
    assert_eq!(p.join()?, 0);
    assert_eq!(letters.load(), 11);
    println!("letters counted in shared memory: {}", letters.load());
    Ok(())
}
