//! Lock, Semaphore, Event: three short runs across real forked processes.
//!
//! The `Process` layer is another part of the tour; here processes are made with
//! `libc::fork` and reaped with `libc::waitpid` directly, to show that a shmproc handle
//! needs no setup in a forked child: it is the same shared memory.

use shmproc::event::Event;
use shmproc::semaphore::Semaphore;
use shmproc::Lock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Forks a child that runs `f` and exits with 0 (101 if `f` panicked).
fn fork(f: impl FnOnce()) -> libc::pid_t {
    use std::io::Write;
    std::io::stdout().flush().ok();
    // SAFETY: the tour is single-threaded when it forks, so the child is a faithful copy;
    // the child leaves through `_exit`, never running the parent's exit handlers.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_ok();
        std::io::stdout().flush().ok();
        // SAFETY: as above.
        unsafe { libc::_exit(if ok { 0 } else { 101 }) };
    }
    pid
}

/// Waits for a child; an error unless it exited with 0.
fn join(pid: libc::pid_t) -> super::Res {
    let mut status = 0;
    // SAFETY: waiting for our own child; `status` is a valid out-pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    if r != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("child {pid} failed (status {status:#x})").into());
    }
    Ok(())
}

/// `n` zeroed atomics in shared anonymous memory, inherited by forked children. Leaked
/// (a few bytes for the life of the tour).
fn shared_counters(n: usize) -> Result<&'static [AtomicU64], std::io::Error> {
    let len = n * std::mem::size_of::<AtomicU64>();
    // SAFETY: a fresh anonymous shared mapping, referenced by nothing else.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `len` zeroed, page-aligned bytes that are never unmapped; all-zero bytes are
    // valid `AtomicU64`s.
    Ok(unsafe { std::slice::from_raw_parts(p.cast::<AtomicU64>(), n) })
}

pub fn run() -> super::Res {
    lock_counter()?;
    semaphore_limit()?;
    event_wakes_all()?;
    Ok(())
}

/// N processes x M increments of one shared counter under a `Lock`: exactly N*M.
fn lock_counter() -> super::Res {
    const N: u64 = 4;
    const M: u64 = 25_000;
    let lock = Lock::new()?;
    let counter = &shared_counters(1)?[0];
    let children: Vec<_> = (0..N)
        .map(|_| {
            let lock = lock.clone();
            fork(move || {
                for _ in 0..M {
                    let _g = lock.acquire().expect("no holder dies in this run");
                    // A read-modify-write in two steps: only the lock keeps it exact.
                    // Relaxed: the lock orders these accesses between processes.
                    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for c in children {
        join(c)?;
    }
    let got = counter.load(Ordering::Relaxed);
    println!(
        "Lock:      {N} processes x {M} increments under one Lock = {got} (expected {})",
        N * M
    );
    if got != N * M {
        return Err("the lock lost increments".into());
    }
    Ok(())
}

/// A semaphore of 2, hammered by 5 processes: at most 2 are ever inside.
fn semaphore_limit() -> super::Res {
    const PROCS: u64 = 5;
    const ITERS: u64 = 5_000;
    let sem = Semaphore::new(2)?;
    let s = shared_counters(3)?; // inside now, most ever inside, entries
    let children: Vec<_> = (0..PROCS)
        .map(|_| {
            let sem = sem.clone();
            fork(move || {
                for _ in 0..ITERS {
                    let _permit = sem.acquire();
                    let inside = s[0].fetch_add(1, Ordering::SeqCst) + 1;
                    s[1].fetch_max(inside, Ordering::SeqCst);
                    for _ in 0..200 {
                        std::hint::spin_loop(); // stay inside a moment
                    }
                    s[2].fetch_add(1, Ordering::Relaxed);
                    s[0].fetch_sub(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for c in children {
        join(c)?;
    }
    let (max, entries) = (s[1].load(Ordering::SeqCst), s[2].load(Ordering::SeqCst));
    println!(
        "Semaphore: {PROCS} processes entered a Semaphore(2) {entries} times; most inside at once: {max} (never 3)"
    );
    if max > 2 || entries != PROCS * ITERS || sem.value() != 2 {
        return Err("the semaphore admitted too many, or lost a permit".into());
    }
    Ok(())
}

/// Three processes wait on one Event; a fourth sets it; all three wake.
fn event_wakes_all() -> super::Res {
    const WAITERS: usize = 3;
    let ev = Event::new()?;
    let ready = Semaphore::new(0)?;
    let s = shared_counters(1)?; // waiters woken
    let waiters: Vec<_> = (0..WAITERS)
        .map(|i| {
            let (ev, ready) = (ev.clone(), ready.clone());
            fork(move || {
                ready.release().expect("far below the limit");
                ev.wait();
                s[0].fetch_add(1, Ordering::SeqCst);
                println!("           waiter {i} (pid {}) woke up", std::process::id());
            })
        })
        .collect();
    for _ in 0..WAITERS {
        ready.acquire_forever();
    }
    let setter = {
        let ev = ev.clone();
        fork(move || {
            std::thread::sleep(Duration::from_millis(20)); // the waiters are asleep by now
            println!("Event:     process {} sets the event", std::process::id());
            ev.set();
        })
    };
    join(setter)?;
    for w in waiters {
        join(w)?;
    }
    let woken = s[0].load(Ordering::SeqCst);
    println!("           one set() woke {woken} of {WAITERS} waiting processes");
    if woken != WAITERS as u64 {
        return Err("the event did not wake every waiter".into());
    }
    Ok(())
}
