//! Pipe benchmarks: small-message round trips between two processes against the atomic
//! floor, an OS pipe and a Unix socketpair; throughput of 64 B, 4 KiB and 1 MiB messages
//! against an OS pipe and `memcpy`.
//!
//! The round trip is also measured against a *two-line* floor (ping on one line, pong on
//! another: what a channel with a ring per direction costs at least), and that floor
//! against the one-word floor. Runs of 2026-11-23 with the producer priming the next cache
//! line after each publish (`ByteRing::prime`), in the machine's usual phase (the floor at
//! 66-74 ns): the pipe 1.54-1.74x the floor (seven runs, median 1.68; the build before,
//! alternated with it, 1.85-2.06x). Before the priming: 1.80-2.11x (eighteen runs, median
//! 1.92), 1.71-2.05x the two-line floor; the two-line floor 1.00-1.58x the floor.
//! The phase moves the floor itself from 28 to 800 ns (see the README), so compare runs
//! whose floors agree.
//!
//! `cargo bench -p shmproc-benches --bench pipe` (about 2 minutes); `cargo test -p
//! shmproc-benches --benches` runs it once, tiny.

mod common;

use common::{bench_mode, fork, paired, Child, Floor};
use shmproc::pipe::{Connection, Pipe, RecvError};
use shmproc::Arena;
use std::hint::black_box;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

const SMALL: usize = 8;

/// The ring capacity of the large-ring throughput pair.
const BIG_RING: usize = 4 << 20;

// ---------------------------------------------------------------------------------------
// shmproc pipe: an echo child and a sink child.

struct PipePeer {
    conn: Connection,
    peer: Child,
    buf: Vec<u8>,
}

impl PipePeer {
    /// A child that echoes every message back.
    fn echo(arena: &Arena) -> PipePeer {
        let (a, b) = Pipe::new_in(arena, true, 64 << 10).unwrap();
        let mut slots = (Some(a), Some(b));
        let peer = fork(|| {
            drop(slots.0.take());
            let b = slots.1.take().unwrap();
            let mut buf = vec![0u8; 64];
            while let Ok(n) = b.recv_bytes_into(&mut buf) {
                if b.send_bytes(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        drop(slots.1.take());
        PipePeer {
            conn: slots.0.take().unwrap(),
            peer,
            buf: vec![0u8; 64],
        }
    }

    /// A child that receives `[count, size]`, then `count` messages, then acks; each
    /// direction a ring of `capacity` bytes.
    fn sink(arena: &Arena, capacity: usize) -> PipePeer {
        let (a, b) = Pipe::new_in(arena, true, capacity).unwrap();
        let mut slots = (Some(a), Some(b));
        let peer = fork(|| {
            drop(slots.0.take());
            let b = slots.1.take().unwrap();
            let mut buf = vec![0u8; 1 << 20];
            while let Ok([count, size]) = b.recv::<[u64; 2]>() {
                for _ in 0..count {
                    let n = b.recv_bytes_into(&mut buf).unwrap();
                    assert_eq!(n as u64, size);
                }
                b.send(&count).unwrap();
            }
        });
        drop(slots.1.take());
        PipePeer {
            conn: slots.0.take().unwrap(),
            peer,
            buf: vec![0u8; 64],
        }
    }

    fn round_trips(&mut self, n: u64) -> Duration {
        let msg = [7u8; SMALL];
        let t = Instant::now();
        for _ in 0..n {
            self.conn.send_bytes(&msg).unwrap();
            let k = self.conn.recv_bytes_into(&mut self.buf).unwrap();
            debug_assert_eq!(k, SMALL);
        }
        t.elapsed()
    }

    fn stream(&mut self, msg: &[u8], n: u64) -> Duration {
        let t = Instant::now();
        self.conn.send(&[n, msg.len() as u64]).unwrap();
        for _ in 0..n {
            self.conn.send_bytes(msg).unwrap();
        }
        assert_eq!(self.conn.recv::<u64>().unwrap(), n);
        t.elapsed()
    }
}

impl Drop for PipePeer {
    fn drop(&mut self) {
        self.conn.close();
        assert_eq!(self.peer.wait(), 0, "bench child failed");
    }
}

// ---------------------------------------------------------------------------------------
// OS baselines: a pipe pair or a socketpair, with the same children.

fn read_full(fd: &OwnedFd, mut buf: &mut [u8]) -> bool {
    while !buf.is_empty() {
        // SAFETY: `buf` is valid for writes of its length.
        let r = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if r <= 0 {
            return false;
        }
        buf = &mut buf[r as usize..];
    }
    true
}

fn write_full(fd: &OwnedFd, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        // SAFETY: `buf` is valid for reads of its length.
        let r = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        if r <= 0 {
            return false;
        }
        buf = &buf[r as usize..];
    }
    true
}

/// Two byte streams to a child: `tx` (to it) and `rx` (from it).
struct OsPeer {
    tx: Option<OwnedFd>,
    rx: OwnedFd,
    peer: Child,
}

fn os_channels(socket: bool) -> ((OwnedFd, OwnedFd), (OwnedFd, OwnedFd)) {
    if socket {
        use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
        let (p, c) = socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let p2 = rustix::io::fcntl_dupfd_cloexec(&p, 0).unwrap();
        let c2 = rustix::io::fcntl_dupfd_cloexec(&c, 0).unwrap();
        // (parent tx, parent rx), (child rx, child tx)
        ((p, p2), (c, c2))
    } else {
        let (r1, w1) = rustix::pipe::pipe().unwrap();
        let (r2, w2) = rustix::pipe::pipe().unwrap();
        ((w1, r2), (r1, w2))
    }
}

impl OsPeer {
    fn echo(socket: bool) -> OsPeer {
        let ((tx, rx), (crx, ctx)) = os_channels(socket);
        let mut child = Some((crx, ctx));
        let mut parent = Some((tx, rx));
        let peer = fork(|| {
            drop(parent.take());
            let (crx, ctx) = child.take().unwrap();
            let mut buf = [0u8; SMALL];
            while read_full(&crx, &mut buf) && write_full(&ctx, &buf) {}
        });
        drop(child.take());
        let (tx, rx) = parent.take().unwrap();
        OsPeer {
            tx: Some(tx),
            rx,
            peer,
        }
    }

    fn sink() -> OsPeer {
        let ((tx, rx), (crx, ctx)) = os_channels(false);
        let mut child = Some((crx, ctx));
        let mut parent = Some((tx, rx));
        let peer = fork(|| {
            drop(parent.take());
            let (crx, ctx) = child.take().unwrap();
            let mut buf = vec![0u8; 1 << 20];
            let mut hdr = [0u8; 16];
            while read_full(&crx, &mut hdr) {
                let count = u64::from_le_bytes(hdr[..8].try_into().unwrap());
                let size = u64::from_le_bytes(hdr[8..].try_into().unwrap()) as usize;
                for _ in 0..count {
                    read_full(&crx, &mut buf[..size]);
                }
                write_full(&ctx, &count.to_le_bytes());
            }
        });
        drop(child.take());
        let (tx, rx) = parent.take().unwrap();
        OsPeer {
            tx: Some(tx),
            rx,
            peer,
        }
    }

    fn round_trips(&mut self, n: u64) -> Duration {
        let msg = [7u8; SMALL];
        let mut buf = [0u8; SMALL];
        let tx = self.tx.as_ref().unwrap();
        let t = Instant::now();
        for _ in 0..n {
            write_full(tx, &msg);
            read_full(&self.rx, &mut buf);
        }
        t.elapsed()
    }

    fn stream(&mut self, msg: &[u8], n: u64) -> Duration {
        let tx = self.tx.as_ref().unwrap();
        let mut hdr = [0u8; 16];
        hdr[..8].copy_from_slice(&n.to_le_bytes());
        hdr[8..].copy_from_slice(&(msg.len() as u64).to_le_bytes());
        let mut ack = [0u8; 8];
        let t = Instant::now();
        write_full(tx, &hdr);
        for _ in 0..n {
            write_full(tx, msg);
        }
        read_full(&self.rx, &mut ack);
        t.elapsed()
    }
}

impl Drop for OsPeer {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            // A socketpair's `rx` is a dup of the same socket: shut the writing half down
            // so the child sees EOF (a no-op error on a pipe).
            // SAFETY: plain syscall on a descriptor we own.
            unsafe { libc::shutdown(tx.as_raw_fd(), libc::SHUT_WR) };
        }
        assert_eq!(self.peer.wait(), 0, "bench child failed");
    }
}

fn memcpy(src: &[u8], dst: &mut [u8], n: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        dst.copy_from_slice(black_box(src));
        black_box(&mut *dst);
    }
    t.elapsed()
}

fn main() {
    let arena = Arena::anonymous(64 << 20).unwrap();
    let mut c = common::criterion();

    // Sanity before timing: a round trip and a stream of each kind really happen.
    {
        let mut p = PipePeer::echo(&arena);
        p.round_trips(10);
        let mut s = PipePeer::sink(&arena, 64 << 10);
        s.stream(&[1u8; 100_000], 3);
        drop(s);
        drop(p);
    }

    // --- Criterion: each side on its own.
    {
        let mut p = PipePeer::echo(&arena);
        let mut o = OsPeer::echo(false);
        let mut s = OsPeer::echo(true);
        let mut g = c.benchmark_group("pipe_round_trip_8B");
        g.bench_function("shmproc_pipe", |b| b.iter_custom(|n| p.round_trips(n)));
        g.bench_function("os_pipe", |b| b.iter_custom(|n| o.round_trips(n)));
        g.bench_function("socketpair", |b| b.iter_custom(|n| s.round_trips(n)));
        g.finish();
    }
    {
        let mut p = PipePeer::sink(&arena, 64 << 10);
        let mut o = OsPeer::sink();
        let mut g = c.benchmark_group("pipe_throughput");
        for size in [64usize, 4 << 10, 1 << 20] {
            let msg = vec![3u8; size];
            g.throughput(criterion::Throughput::Bytes(size as u64));
            g.bench_function(format!("shmproc_pipe_{size}B"), |b| {
                b.iter_custom(|n| p.stream(&msg, n))
            });
            g.bench_function(format!("os_pipe_{size}B"), |b| {
                b.iter_custom(|n| o.stream(&msg, n))
            });
        }
        g.finish();
    }

    // --- Paired ratios (subject / baseline, interleaved rep by rep).
    {
        let mut p = PipePeer::echo(&arena);
        // The floors' peers sleep between reps: they take no core from the subject's.
        let (floor, two_lines) = (Floor::start(), Floor::two_lines());
        paired(
            "pipe round trip 8 B vs atomic floor",
            "round trip",
            20_000,
            20,
            |n| floor.round_trips(n),
            |n| p.round_trips(n),
        );
        // The least a ring per direction can cost (each way moves a line the receiver
        // polls), against the one-word floor: what the 2x target leaves for the pipe.
        paired(
            "two-line floor (a line per direction) vs atomic floor",
            "round trip",
            20_000,
            20,
            |n| floor.round_trips(n),
            |n| two_lines.round_trips(n),
        );
        paired(
            "pipe round trip 8 B vs two-line floor",
            "round trip",
            20_000,
            20,
            |n| two_lines.round_trips(n),
            |n| p.round_trips(n),
        );
        let mut o = OsPeer::echo(false);
        paired(
            "pipe round trip 8 B vs OS pipe",
            "round trip",
            2_000,
            15,
            |n| o.round_trips(n),
            |n| p.round_trips(n),
        );
        drop(o);
        let mut s = OsPeer::echo(true);
        paired(
            "pipe round trip 8 B vs socketpair",
            "round trip",
            2_000,
            15,
            |n| s.round_trips(n),
            |n| p.round_trips(n),
        );
    }
    {
        let mut p = PipePeer::sink(&arena, 64 << 10);
        let mut o = OsPeer::sink();
        let mut dst = vec![0u8; 1 << 20];
        for (size, iters) in [(64usize, 50_000u64), (4 << 10, 5_000), (1 << 20, 40)] {
            let msg = vec![3u8; size];
            paired(
                &format!("pipe throughput {size} B vs OS pipe"),
                "msg",
                iters,
                15,
                |n| o.stream(&msg, n),
                |n| p.stream(&msg, n),
            );
            paired(
                &format!("pipe throughput {size} B vs memcpy"),
                "msg",
                iters,
                15,
                |n| memcpy(&msg, &mut dst[..size], n),
                |n| p.stream(&msg, n),
            );
        }
    }
    {
        // The same 1 MiB stream through a pipe whose rings are larger than a core's L2
        // (`Pipe::with_capacity`): the ring's lines then pass between the cores through
        // the shared L3 instead of from one core's L2 to the other's, several times
        // faster on the machines measured here (see the module docs of `shmproc::pipe`).
        let mut p = PipePeer::sink(&arena, BIG_RING);
        let mut dst = vec![0u8; 1 << 20];
        let msg = vec![3u8; 1 << 20];
        paired(
            "pipe throughput 1048576 B, 4 MiB ring, vs memcpy",
            "msg",
            40,
            15,
            |n| memcpy(&msg, &mut dst, n),
            |n| p.stream(&msg, n),
        );
    }
    if !bench_mode() {
        // `cargo test --benches`: the smoke run above is all.
        let _ = RecvError::Eof;
    }
    c.final_summary();
}
