//! Start methods, and processes that do not share a fork.
//!
//! Every other part starts its children with `fork`: the child is a copy of this process,
//! so a closure may capture anything, and handles made before `start` are simply there.
//! That stops being safe once a program has threads (a lock another thread held at the
//! fork stays locked in the child forever), and some processes are not children at all.
//! This part shows what shmproc does then, as Python's `spawn` and `forkserver` do:
//!
//! 1. `shmproc::init()`, the first line of `main`, starts a forkserver while the program
//!    is still single-threaded. The default start method forks while there is one thread
//!    and takes the forkserver once there are more; the target is then a function and
//!    its arguments (`Process::function`), which travel over a socket.
//! 2. `Spawn` runs this binary again; `init()` recognises the child and runs its target
//!    instead of `main`. Its arguments may hold an `Arena` and a `Connection` end: they
//!    arrive attached (their file descriptors go along).
//! 3. `Listener` / `Client` connect two processes by an address and a shared authkey, and
//!    give them a `Connection`; `send_handle` passes an arena over it.

use serde::{Deserialize, Serialize};
use shmproc::connection::{Address, Client, Listener};
use shmproc::process::{get_context, Process, ProcessError, StartMethod};
use shmproc::{Arena, Connection, Pipe, Value};
use std::time::Duration;

/// The authkey both sides of the Listener / Client pair know.
const KEY: &[u8] = b"tour secret";

pub fn run() -> super::Res {
    default_switches_to_forkserver()?;
    spawn_with_handles()?;
    listener_and_client()?;
    Ok(())
}

/// A child's target: says who it is and how it was started, on the pipe end it was given.
fn greet(conn: Connection) -> Result<(), String> {
    let me = shmproc::current_process();
    conn.send_bytes(format!("{} (pid {})", me.name(), std::process::id()).as_bytes())
        .map_err(|e| e.to_string())
}

/// Starts `greet` under the default start method and prints what it said.
fn greet_once(when: &str) -> Result<StartMethod, Box<dyn std::error::Error>> {
    let (mine, theirs) = Pipe::new(false)?; // one way: we read (.0), the child writes (.1)
    let mut p = Process::function(greet, theirs);
    p.start()?;
    let said = String::from_utf8_lossy(&mine.recv_bytes()?).into_owned();
    super::join(&p)?;
    println!(
        "{when}: the default start method chose {}; the child said: {said}",
        p.start_method()
    );
    Ok(p.start_method())
}

/// One thread: fork. A second thread (a logger, a runtime): the forkserver.
fn default_switches_to_forkserver() -> super::Res {
    let alone = greet_once("one thread")?;

    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let logger = std::thread::spawn(move || stopped.recv().ok());
    let threaded = greet_once("two threads")?;

    // A closure that captures data cannot leave this process: the forkserver's children
    // are forks of the server, not of us. The error says what to use instead.
    let captured = vec![1u8, 2, 3];
    let mut p = Process::new(move || drop(captured));
    match p.start() {
        Err(e @ ProcessError::NotPortable { .. }) => {
            println!("two threads: a closure that captures data is refused, on purpose:\n  {e}")
        }
        other => return Err(format!("expected NotPortable, got {other:?}").into()),
    }
    drop(stop);
    logger.join().map_err(|_| "the logger thread panicked")?;

    if (alone, threaded) != (StartMethod::Fork, StartMethod::ForkServer) {
        return Err(format!("expected Fork then ForkServer, got {alone} then {threaded}").into());
    }
    Ok(())
}

/// What a spawned child gets: an arena, the writing end of a pipe, plain data.
#[derive(Serialize, Deserialize)]
struct Job {
    arena: Arena,
    results: Connection,
    words: Vec<String>,
}

/// Runs in a fresh run of this binary: counts letters into a `Value` it finds by name in
/// the arena it was given, and answers on the pipe end it was given.
fn count_letters(job: Job) -> Result<(), String> {
    let letters: u64 = job.words.iter().map(|w| w.len() as u64).sum();
    Value::<u64>::open(&job.arena, "letters")
        .map_err(|e| e.to_string())?
        .fetch_add(letters);
    job.results
        .send_bytes(
            format!(
                "pid {} counted {} words",
                std::process::id(),
                job.words.len()
            )
            .as_bytes(),
        )
        .map_err(|e| e.to_string())
}

/// `Spawn`: a new program run, handed an `Arena` and a `Connection` end.
fn spawn_with_handles() -> super::Res {
    let arena = Arena::anonymous(1 << 20)?;
    let letters = Value::<u64>::create(&arena, "letters", 0)?;
    let (mine, theirs) = Pipe::new_in(&arena, false, 4096)?;
    let words = ["spawn", "runs", "this", "binary", "again"]
        .map(String::from)
        .to_vec();
    let expected: u64 = words.iter().map(|w| w.len() as u64).sum();
    let job = Job {
        arena: arena.clone(),
        results: theirs,
        words,
    };
    let mut p = get_context(StartMethod::Spawn).function(count_letters, job);
    p.start()?; // our copy of `theirs` is dropped here: the child holds the only one
    println!(
        "Spawn: the child says \"{}\"; letters counted in our arena: {} (expected {expected})",
        String::from_utf8_lossy(&mine.recv_bytes()?),
        letters.load()
    );
    super::join(&p)?;
    if letters.load() != expected {
        return Err("the spawned child's count did not reach our arena".into());
    }
    Ok(())
}

/// The client side, in a spawned child: connects with the key, receives an arena, counts
/// into it, sends numbers back.
fn client(address: String) -> Result<(), Box<dyn std::error::Error>> {
    let conn = Client::connect(&address.parse()?, Some(KEY))?;
    let arena: Arena = conn.recv_handle()?;
    let hits = Value::<u64>::open(&arena, "hits")?;
    for i in 0..100u64 {
        conn.send(&i)?;
        hits.fetch_add(1);
    }
    Ok(())
}

/// `Listener` / `Client`: two processes that share no fork, an authkey checked both ways,
/// then a shared-memory `Connection`; an arena passed over it with `send_handle`.
fn listener_and_client() -> super::Res {
    let address = Address::abstract_name(format!("shmproc-tour-{}", std::process::id()));
    let listener = Listener::bind(&address, Some(KEY))?;

    // A peer with another key is turned away, and both sides are told why.
    let wrong = {
        let address = address.clone();
        std::thread::spawn(move || Client::connect(&address, Some(b"a guess")).err())
    };
    let refused = listener.accept_timeout(Duration::from_secs(30)).err();
    let client_side = wrong.join().map_err(|_| "the client thread panicked")?;
    match (refused, client_side) {
        (Some(server), Some(client)) => println!(
            "Listener: a client with the wrong authkey is refused, on purpose:\n  \
             the listener's error: {server}\n  the client's error: {client}"
        ),
        other => return Err(format!("the wrong key was accepted: {other:?}").into()),
    }

    let mut p = get_context(StartMethod::Spawn).function(
        |a: String| client(a).map_err(|e| e.to_string()),
        address.to_string(),
    );
    p.start()?;
    let conn = listener.accept_timeout(Duration::from_secs(30))?;
    let arena = Arena::anonymous(1 << 20)?;
    let hits = Value::<u64>::create(&arena, "hits", 0)?;
    conn.send_handle(&arena)?;
    let mut sum = 0;
    for i in 0..100u64 {
        let v: u64 = conn.recv()?;
        if v != i {
            return Err(format!("message {i} arrived as {v}").into());
        }
        sum += v;
    }
    super::join(&p)?;
    println!(
        "Listener / Client: {} connected to {address} with the key; 100 messages, sum {sum}; \
         it counted {} hits in the arena we sent it",
        p.name(),
        hits.load()
    );
    if hits.load() != 100 {
        return Err("the client's hits did not reach our arena".into());
    }
    Ok(())
}
