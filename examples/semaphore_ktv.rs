//! A karaoke room with two microphones: five people, at most two singing at once.
//!
//! Ported from the Python tutorial's `changba` example:
//! `sem = Semaphore(2)`, five `Process(target=changba, args=(person, sem))`, each doing
//! `sem.acquire(); sing; sem.release()`.
//!
//! Run with `cargo run --example semaphore_ktv`.

use shmproc::semaphore::Semaphore;
use std::time::Duration;

/// Forks a child that runs `f` and exits; returns its pid. (The `Process` layer of shmproc
/// does this for you; this example forks by hand to show what happens underneath.)
fn spawn(f: impl FnOnce()) -> libc::pid_t {
    // SAFETY: this program is single-threaded when it forks; the child runs `f` and leaves
    // through `_exit`, without running the parent's exit handlers.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        f();
        // SAFETY: see above.
        unsafe { libc::_exit(0) };
    }
    pid
}

fn join(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
}

fn main() -> Result<(), shmproc::Error> {
    let sem = Semaphore::new(2)?; // two microphones
    let people: Vec<_> = (0..5)
        .map(|i| {
            let sem = sem.clone();
            spawn(move || {
                let _mic = sem.acquire(); // given back when `_mic` is dropped
                println!(
                    "person{i} walks into the room  (free mics now: {})",
                    sem.value()
                );
                std::thread::sleep(Duration::from_millis(100 + 50 * i));
                println!("person{i} walks out");
            })
        })
        .collect();
    for p in people {
        join(p);
    }
    println!("everyone sang; free mics: {}", sem.value());
    assert_eq!(sem.value(), 2);
    Ok(())
}
