//! Messages longer than a queue's slot: a `ByteQueue` round trip (to a child that echoes
//! it back on a second queue) of a message that goes to a heap block of its own, against
//! the same round trip through a `Pipe` (the message copied through the ring, streamed in
//! chunks when it is larger than the ring), in the same run, at 4 KiB, 64 KiB and 1 MiB.
//!
//! `cargo bench -p shmproc-benches --bench big_message`; under `cargo test
//! -p shmproc-benches --benches` every pair runs once, tiny.

mod common;

use common::{fork, paired, Child};
use shmproc::pipe::{Connection, Pipe};
use shmproc::queue::ByteQueue;
use shmproc::Arena;
use std::time::{Duration, Instant};

/// The queues' slot: every message measured here is longer.
const SLOT: usize = 64;

/// A child echoing every message of `to` back on `from`.
struct QueueEcho {
    to: ByteQueue,
    from: ByteQueue,
    buf: Vec<u8>,
    peer: Option<Child>,
}

impl QueueEcho {
    fn start(arena: &Arena) -> QueueEcho {
        let to = ByteQueue::new_in(arena, 4, SLOT).unwrap();
        let from = ByteQueue::new_in(arena, 4, SLOT).unwrap();
        let peer = {
            let (to, from) = (to.clone(), from.clone());
            fork(move || {
                let mut buf = Vec::new();
                while to.get_bytes_into(&mut buf).is_ok() {
                    from.put_bytes(&buf).unwrap();
                }
            })
        };
        QueueEcho {
            to,
            from,
            buf: Vec::new(),
            peer: Some(peer),
        }
    }

    fn round_trips(&mut self, msg: &[u8], n: u64) -> Duration {
        let t = Instant::now();
        for _ in 0..n {
            self.to.put_bytes(msg).unwrap();
            let k = self.from.get_bytes_into(&mut self.buf).unwrap();
            debug_assert_eq!(k, msg.len());
        }
        t.elapsed()
    }
}

impl Drop for QueueEcho {
    fn drop(&mut self) {
        self.to.close();
        if let Some(p) = self.peer.take() {
            p.join();
        }
    }
}

/// A child echoing every message of a duplex pipe back.
struct PipeEcho {
    conn: Option<Connection>,
    buf: Vec<u8>,
    peer: Option<Child>,
}

impl PipeEcho {
    fn start(arena: &Arena) -> PipeEcho {
        let (a, b) = Pipe::new_in(arena, true, 64 << 10).unwrap();
        let mut ends = (Some(a), Some(b));
        let peer = fork(|| {
            drop(ends.0.take());
            let b = ends.1.take().unwrap();
            let mut buf = vec![0u8; 2 << 20];
            while let Ok(n) = b.recv_bytes_into(&mut buf) {
                if b.send_bytes(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        drop(ends.1.take());
        PipeEcho {
            conn: ends.0.take(),
            buf: vec![0u8; 2 << 20],
            peer: Some(peer),
        }
    }

    fn round_trips(&mut self, msg: &[u8], n: u64) -> Duration {
        let conn = self.conn.as_ref().unwrap();
        let t = Instant::now();
        for _ in 0..n {
            conn.send_bytes(msg).unwrap();
            let k = conn.recv_bytes_into(&mut self.buf).unwrap();
            debug_assert_eq!(k, msg.len());
        }
        t.elapsed()
    }
}

impl Drop for PipeEcho {
    fn drop(&mut self) {
        drop(self.conn.take());
        if let Some(p) = self.peer.take() {
            p.join();
        }
    }
}

fn main() {
    let arena = Arena::anonymous(64 << 20).unwrap();
    let mut q = QueueEcho::start(&arena);
    let mut p = PipeEcho::start(&arena);
    // Sanity before timing: the bytes come back.
    {
        let msg: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        q.to.put_bytes(&msg).unwrap();
        assert_eq!(q.from.get_bytes().unwrap(), msg);
        let c = p.conn.as_ref().unwrap();
        c.send_bytes(&msg).unwrap();
        assert_eq!(c.recv_bytes().unwrap(), msg);
    }
    let used = arena.used();
    for (size, iters) in [(4usize << 10, 20_000u64), (64 << 10, 2_000), (1 << 20, 200)] {
        let msg = vec![5u8; size];
        paired(
            &format!(
                "ByteQueue round trip {} KiB (a heap block each way) / Pipe",
                size >> 10
            ),
            "round trip",
            iters,
            20,
            |n| p.round_trips(&msg, n),
            |n| q.round_trips(&msg, n),
        );
    }
    assert_eq!(arena.used(), used, "every message's block was freed");
}
