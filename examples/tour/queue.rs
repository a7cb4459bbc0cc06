//! The queue part of the tour: `Queue<T>` between processes with a queue-wide `close`,
//! byte messages written in place, and a `JoinableQueue` whose `join` waits for every
//! `task_done`.

use shmproc::{ByteQueue, GetError, JoinableQueue, Process, Queue};
use std::io::Write;

pub fn run() -> super::Res {
    // 1. Queue<u64>: two producer processes fill the queue, then we close it and drain it.
    let q = Queue::<u64>::new(2048)?;
    let producers = (0..2u64)
        .map(|p| {
            let q = q.clone();
            super::spawn(move || {
                for i in 0..1000 {
                    q.put(p * 1_000_000 + i).unwrap();
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    producers.iter().try_for_each(super::join)?;
    println!("  Queue<u64>(2048): 2 producer processes put 1000 numbers each (both exited with 0)");
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
        super::spawn(move || {
            let mut loan = bq.write_loan().unwrap();
            let len = {
                let mut w = &mut loan[..];
                write!(w, "hello from pid {}", std::process::id()).unwrap();
                128 - w.len()
            };
            loan.commit(len).unwrap();
        })?
    };
    {
        let msg = bq.read_loan()?;
        println!(
            "  ByteQueue: read in place: {:?}",
            String::from_utf8_lossy(&msg)
        );
    }
    super::join(&child)?;
    // A message longer than the slot goes to a heap block of its own (the consumer
    // frees it): the slot size is a speed choice, never a limit.
    let child = {
        let bq = bq.clone();
        super::spawn(move || bq.put_bytes(&vec![7; 1 << 20]).unwrap())?
    };
    let big = bq.get_bytes()?;
    super::join(&child)?;
    assert!(big.len() == 1 << 20 && big.iter().all(|&b| b == 7));
    println!(
        "  a 1 MiB message through 128-byte slots: {} bytes, whole",
        big.len()
    );

    // ObjQueue<T>: Python's Queue of objects, any serde value of any size.
    let oq = shmproc::queue::ObjQueue::<(String, Vec<u32>)>::new(4)?;
    let child = {
        let oq = oq.clone();
        super::spawn(move || {
            for i in 0..3u32 {
                oq.put(&(format!("job {i}"), (0..i * 1000).collect()))
                    .unwrap();
            }
        })?
    };
    for _ in 0..3 {
        let (name, data) = oq.get()?;
        println!("  ObjQueue: {name:?} with {} numbers", data.len());
    }
    super::join(&child)?;

    // 3. JoinableQueue: we put 20 jobs and join; two daemon worker processes mark them
    //    done (daemons, as in the tutorial's kitchen: they would die with the parent).
    let jq = JoinableQueue::<u32>::new(4)?;
    let workers = (0..2)
        .map(|i| {
            let jq = jq.clone();
            let mut p = Process::builder()
                .name(format!("worker-{i}"))
                .daemon(true)
                .target(move || loop {
                    match jq.get() {
                        Ok(_job) => jq.task_done().unwrap(),
                        Err(GetError::Disconnected) => break,
                        Err(e) => panic!("{e}"),
                    }
                });
            p.start().map(|()| p)
        })
        .collect::<Result<Vec<_>, _>>()?;
    for job in 0..20 {
        jq.put(job)?;
    }
    jq.join()?;
    println!(
        "  JoinableQueue: join returned with {} unfinished tasks; one task_done too many: {}",
        jq.unfinished_tasks(),
        jq.task_done().unwrap_err()
    );
    jq.close(); // the workers see Disconnected and leave
    for w in &workers {
        super::join(w)?;
    }
    Ok(())
}
