//! The measured loops of the instruction-count check (`scripts/check-instructions.sh`,
//! table in `benches/instructions.txt`).
//!
//! `instructions <operation> <n>` runs `n` operations through the function named after
//! the operation (each `#[inline(never)]`, so that `valgrind --tool=callgrind
//! --toggle-collect=<its name>` counts exactly its loop and what it calls). Before it, a
//! few operations through a separate warm-up function take the one-time paths (first
//! use of a lock's cached identity, page faults of the ring), which the count leaves out.
//! Build it with the bench profile (LTO, one codegen unit): the counts are those of the
//! code the benches measure.
//!
//! Operations:
//! * `queue_u64_put_get`: a `Queue<u64>` `put` then `get`, one process, never waiting;
//! * `pipe_8b_send_recv`: an 8-byte `send_bytes` on one end of a duplex `Pipe` then
//!   `recv_bytes_into` on the other, one process, never waiting.

use shmproc::pipe::{Connection, Pipe};
use shmproc::queue::Queue;
use shmproc::Arena;
use std::hint::black_box;

/// `n` put + get pairs.
#[inline(never)]
fn queue_u64_put_get(q: &Queue<u64>, n: u64) -> u64 {
    let mut sum = 0u64;
    for i in 0..n {
        q.put(black_box(i)).unwrap();
        sum = sum.wrapping_add(q.get().unwrap());
    }
    sum
}

/// The same, outside the counted function.
#[inline(never)]
fn queue_warm_up(q: &Queue<u64>, n: u64) -> u64 {
    let mut sum = 0u64;
    for i in 0..n {
        q.put(black_box(i)).unwrap();
        sum = sum.wrapping_add(q.get().unwrap());
    }
    sum
}

/// `n` 8-byte send + receive pairs.
#[inline(never)]
fn pipe_8b_send_recv(a: &Connection, b: &Connection, buf: &mut [u8; 64], n: u64) -> usize {
    let msg = [7u8; 8];
    let mut total = 0;
    for _ in 0..n {
        a.send_bytes(black_box(&msg)).unwrap();
        total += b.recv_bytes_into(buf).unwrap();
    }
    total
}

/// The same, outside the counted function.
#[inline(never)]
fn pipe_warm_up(a: &Connection, b: &Connection, buf: &mut [u8; 64], n: u64) -> usize {
    let msg = [7u8; 8];
    let mut total = 0;
    for _ in 0..n {
        a.send_bytes(black_box(&msg)).unwrap();
        total += b.recv_bytes_into(buf).unwrap();
    }
    total
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: instructions <queue_u64_put_get | pipe_8b_send_recv> <n>";
    let (op, n) = match &args[1..] {
        [op, n] => (op.as_str(), n.parse::<u64>().expect(usage)),
        _ => panic!("{usage}"),
    };
    // A limit valgrind can map: it refuses the default 64 GiB reservation (mmap EINVAL).
    let arena = Arena::builder()
        .size(1 << 20)
        .limit(64 << 20)
        .anonymous()
        .expect("arena");
    let done = match op {
        "queue_u64_put_get" => {
            let q = Queue::<u64>::new_in(&arena, 1024).expect("queue");
            // Warm-up: more than a lap of the ring, so every slot has been used.
            black_box(queue_warm_up(&q, 4096));
            let sum = queue_u64_put_get(&q, n);
            assert_eq!(sum, n * n.saturating_sub(1) / 2, "every value came back");
            n
        }
        "pipe_8b_send_recv" => {
            let (a, b) = Pipe::new_in(&arena, true, 64 << 10).expect("pipe");
            let mut buf = [0u8; 64];
            // Warm-up: more than a lap of the 64 KiB ring (16-byte chunks).
            black_box(pipe_warm_up(&a, &b, &mut buf, 8192));
            let total = pipe_8b_send_recv(&a, &b, &mut buf, n);
            assert_eq!(total as u64, 8 * n, "every byte came back");
            n
        }
        _ => panic!("{usage}"),
    };
    println!("{op}: {done} operations");
}
