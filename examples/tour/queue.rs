//! The queue part of the tour: `Queue<T>` between processes with a queue-wide `close`,
//! byte messages written in place, and a `JoinableQueue` whose `join` waits for every
//! `task_done`.

use shmproc::queue::{ByteQueue, GetError, JoinableQueue, Queue};
use std::io::Write;

/// Forks a child that runs `f`, then exits.
fn spawn(f: impl FnOnce()) -> libc::pid_t {
    std::io::stdout().flush().ok();
    // SAFETY: the tour is single-threaded when it forks, so the child is a faithful copy;
    // the child leaves through `_exit` and never returns into the tour.
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

/// Waits for a child; true if it exited with 0.
fn join(pid: libc::pid_t) -> bool {
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

pub fn run() -> super::Res {
    // 1. Queue<u64>: two producer processes fill the queue, then we close it and drain it.
    let q = Queue::<u64>::new(2048)?;
    let producers: Vec<_> = (0..2u64)
        .map(|p| {
            let q = q.clone();
            spawn(move || {
                for i in 0..1000 {
                    q.put(p * 1_000_000 + i).unwrap();
                }
            })
        })
        .collect();
    let joined: Vec<bool> = producers.into_iter().map(join).collect();
    let done = joined.iter().all(|ok| *ok);
    println!("  Queue<u64>(2048): 2 producer processes put 1000 numbers each (ok: {done})");
    q.close();
    let (mut n, mut last) = (0, [None::<u64>; 2]);
    while let Ok(v) = q.get() {
        let p = (v / 1_000_000) as usize;
        assert!(last[p].is_none_or(|l| l < v), "FIFO per producer");
        last[p] = Some(v);
        n += 1;
    }
    println!(
        "  after close: drained {n} values, each producer's in order; then {:?}",
        q.get()
    );

    // 2. ByteQueue: a child writes its message in place in the slot (zero-copy loan).
    let bq = ByteQueue::new(4, 128)?;
    let child = {
        let bq = bq.clone();
        spawn(move || {
            let mut loan = bq.write_loan().unwrap();
            let len = {
                let mut w = &mut loan[..];
                // SAFETY: getpid has no preconditions.
                write!(w, "hello from pid {}", unsafe { libc::getpid() }).unwrap();
                128 - w.len()
            };
            loan.commit(len).unwrap();
        })
    };
    {
        let msg = bq.read_loan()?;
        println!(
            "  ByteQueue: read in place: {:?}",
            String::from_utf8_lossy(&msg)
        );
    }
    join(child);
    println!(
        "  a message above the maximum is refused: {}",
        bq.put_bytes(&[0; 200]).unwrap_err()
    );

    // 3. JoinableQueue: we put 20 jobs and join; two worker processes mark them done.
    let jq = JoinableQueue::<u32>::new(4)?;
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let jq = jq.clone();
            spawn(move || loop {
                match jq.get() {
                    Ok(_job) => jq.task_done().unwrap(),
                    Err(GetError::Disconnected) => break,
                    Err(e) => panic!("{e}"),
                }
            })
        })
        .collect();
    for job in 0..20 {
        jq.put(job)?;
    }
    jq.join();
    println!(
        "  JoinableQueue: join returned with {} unfinished tasks; one task_done too many: {}",
        jq.unfinished_tasks(),
        jq.task_done().unwrap_err()
    );
    jq.close();
    for w in workers {
        join(w);
    }
    Ok(())
}
