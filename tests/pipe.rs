//! Multi-process tests of `shmproc::pipe`: real `fork`, data checked end to end.

use shmproc::pipe::{Connection, Pipe, RecvError, SendError};
use shmproc::Arena;
use shmproc_testkit::{fork, Child};
use std::time::{Duration, Instant};

shmproc_testkit::main!(
    echo_child_upper_cases,
    round_trip_16_mib_through_64_kib,
    million_random_messages_checked,
    eof_after_peer_closes,
    eof_after_peer_exits_without_close,
    eof_after_writer_sigkilled_mid_message,
    eof_after_writer_sigkilled_while_reader_waits,
    broken_pipe_after_reader_sigkilled,
    poll_timeouts,
    forked_copies_of_one_end_keep_frames,
    one_way_pipe_across_processes,
    closed_connection_errors,
    copy_of_end_dies_mid_message_breaks_pipe,
    timed_receive_ends_when_its_own_copy_of_the_writer_end_lives_and_the_writer_dies,
    timed_receive_waits_for_another_reader_only_until_its_deadline,
    timed_receive_takes_a_message_only_whole,
    timed_receive_mid_stream_drops_that_message_and_the_next_arrives,
);

/// Forks a child that gets `theirs` (and drops its copy of `mine`, as Python code must);
/// the parent drops its copy of `theirs` and keeps `mine`.
fn fork_with(
    mine: Connection,
    theirs: Connection,
    f: impl FnOnce(Connection),
) -> (Connection, Child) {
    let mut slots = (Some(mine), Some(theirs));
    let c = fork(|| {
        drop(slots.0.take());
        f(slots.1.take().unwrap());
    });
    drop(slots.1.take());
    (slots.0.take().unwrap(), c)
}

fn arena() -> Arena {
    Arena::anonymous(64 << 20).unwrap()
}

/// The parent/child greeting of the tutorials: 'hello' in, 'HELLO' out.
fn echo_child_upper_cases() {
    let (parent, child) = Pipe::new_in(&arena(), true, 64 << 10).unwrap();
    let (parent, c) = fork_with(parent, child, |child| loop {
        match child.recv_bytes() {
            Ok(m) => child.send_bytes(&m.to_ascii_uppercase()).unwrap(),
            Err(RecvError::Eof) => return,
            Err(e) => panic!("{e}"),
        }
    });
    for word in ["hello", "", "pipe across processes"] {
        parent.send_bytes(word.as_bytes()).unwrap();
        assert_eq!(
            parent.recv_bytes().unwrap(),
            word.to_ascii_uppercase().as_bytes()
        );
    }
    drop(parent);
    c.join();
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn round_trip_16_mib_through_64_kib() {
    let (a, b) = Pipe::new_in(&arena(), true, 64 << 10).unwrap();
    let (a, c) = fork_with(a, b, |b| {
        let m = b.recv_bytes().unwrap();
        b.send_bytes(&m).unwrap();
    });
    let msg = pattern(16 << 20, 42);
    a.send_bytes(&msg).unwrap();
    let back = a.recv_bytes().unwrap();
    assert_eq!(back.len(), msg.len());
    assert!(back == msg, "16 MiB message changed on its way");
    assert_eq!(a.recv_bytes(), Err(RecvError::Eof));
    c.join();
}

/// 1,000,000 messages of random sizes 0..4 KiB: each one's sequence number, length and
/// contents are checked, and the sender's totals are compared at the end.
fn million_random_messages_checked() {
    const N: u64 = 1_000_000;
    let (a, b) = Pipe::new_in(&arena(), true, 64 << 10).unwrap();
    let src = pattern(8192, 7);
    let size = |i: u64| -> usize {
        let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xABCD;
        x ^= x >> 29;
        (x % 4096) as usize
    };
    let src2 = src.clone();
    let (a, c) = fork_with(a, b, move |b| {
        let mut total = 0u64;
        let mut buf = vec![0u8; 4104];
        for i in 0..N {
            let n = size(i);
            let off = (i % 4096) as usize;
            if n >= 8 {
                buf[..8].copy_from_slice(&i.to_le_bytes());
                buf[8..n].copy_from_slice(&src2[off..off + n - 8]);
            } else {
                buf[..n].copy_from_slice(&src2[off..off + n]);
            }
            b.send_bytes(&buf[..n]).unwrap();
            total += n as u64;
        }
        b.send(&[N, total]).unwrap();
    });
    let mut total = 0u64;
    let mut buf = vec![0u8; 4096];
    for i in 0..N {
        let n = a.recv_bytes_into(&mut buf).unwrap();
        assert_eq!(n, size(i), "message {i} has the wrong length");
        let off = (i % 4096) as usize;
        if n >= 8 {
            assert_eq!(u64::from_le_bytes(buf[..8].try_into().unwrap()), i);
            assert!(buf[8..n] == src[off..off + n - 8], "message {i} corrupted");
        } else {
            assert!(buf[..n] == src[off..off + n], "message {i} corrupted");
        }
        total += n as u64;
    }
    assert_eq!(a.recv::<[u64; 2]>().unwrap(), [N, total]);
    assert_eq!(a.recv_bytes(), Err(RecvError::Eof));
    c.join();
}

/// The EOF loop of the tutorials: the reader stops when every copy of the writer is gone.
fn eof_after_peer_closes() {
    let (reader, writer) = Pipe::new_in(&arena(), true, 1 << 10).unwrap();
    // fork_with: the child closes its copy of `writer` (as Python code must), the parent
    // its copy of `reader`.
    let (mut writer, c) = fork_with(writer, reader, |reader| {
        let mut got = Vec::new();
        loop {
            match reader.recv_bytes() {
                Ok(m) => got.push(m),
                Err(RecvError::Eof) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got.len(), 100);
        for (i, m) in got.iter().enumerate() {
            assert_eq!(m, &format!("message {i}").into_bytes());
        }
    });
    for i in 0..100 {
        writer
            .send_bytes(format!("message {i}").as_bytes())
            .unwrap();
    }
    writer.close();
    writer.close(); // idempotent
    c.join();
}

fn eof_after_peer_exits_without_close() {
    let (a, b) = Pipe::new_in(&arena(), true, 1 << 10).unwrap();
    let (a, c) = fork_with(a, b, |b| {
        b.send_bytes(b"bye").unwrap();
        // SAFETY: leave at once, without running destructors: only the kernel closes.
        unsafe { libc::_exit(0) };
    });
    assert_eq!(a.recv_bytes().unwrap(), b"bye");
    assert_eq!(a.recv_bytes(), Err(RecvError::Eof));
    c.join();
}

/// The writer dies in the middle of a message that it is streaming: the reader, which
/// has begun that message, gets EOF (never a partial message), within a bounded time.
fn eof_after_writer_sigkilled_mid_message() {
    let (a, b) = Pipe::new_in(&arena(), true, 4 << 10).unwrap();
    let (ready_r, ready_w) = Pipe::new_in(&arena(), true, 1 << 10).unwrap();
    let mut ready_r = Some(ready_r);
    let mut ready_w = Some(ready_w);
    let (a, w) = fork_with(a, b, |b| {
        drop(ready_r.take());
        let ready_w = ready_w.take().unwrap();
        b.send_bytes(b"whole").unwrap();
        // Stall forever half-way through a 1 MiB message.
        b.send_with(1 << 20, |off, chunk| {
            chunk.fill(1);
            if off > 100_000 {
                ready_w.send_bytes(b"mid").unwrap();
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        })
        .unwrap();
    });
    drop(ready_w.take());
    let ready_r = ready_r.take().unwrap();
    let w_pid = w.pid;
    assert_eq!(a.recv_bytes().unwrap(), b"whole");
    // Kill the writer once it is stalled mid-message, from another process, while this
    // one is blocked reading that message.
    let k = fork(|| {
        assert_eq!(ready_r.recv_bytes().unwrap(), b"mid");
        std::thread::sleep(Duration::from_millis(50));
        // SAFETY: plain syscall on a sibling test process.
        unsafe { libc::kill(w_pid, libc::SIGKILL) };
    });
    drop(ready_r);
    assert_eq!(a.recv_bytes(), Err(RecvError::Eof));
    assert_eq!(a.recv_bytes(), Err(RecvError::Eof));
    assert_eq!(a.send_bytes(b"x"), Err(SendError::BrokenPipe));
    k.join();
    assert_eq!(w.wait(), -libc::SIGKILL);
}

/// A writer killed between messages: the reader drains what was sent, then sees EOF.
fn eof_after_writer_sigkilled_while_reader_waits() {
    let (a, b) = Pipe::new_in(&arena(), true, 1 << 10).unwrap();
    let (a, w) = fork_with(a, b, |b| {
        for i in 0..10u32 {
            b.send(&i).unwrap();
        }
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    for i in 0..10u32 {
        assert_eq!(a.recv::<u32>().unwrap(), i);
    }
    w.signal(libc::SIGKILL);
    assert_eq!(a.recv_bytes(), Err(RecvError::Eof));
    assert_eq!(w.wait(), -libc::SIGKILL);
}

fn broken_pipe_after_reader_sigkilled() {
    let (a, b) = Pipe::new_in(&arena(), true, 1 << 10).unwrap();
    let (a, r) = fork_with(a, b, |b| {
        assert_eq!(b.recv_bytes().unwrap(), b"first");
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    a.send_bytes(b"first").unwrap();
    r.signal(libc::SIGKILL);
    assert_eq!(r.wait(), -libc::SIGKILL);
    // The ring takes up to 1 KiB more; then the dead reader is noticed.
    let err = loop {
        if let Err(e) = a.send_bytes(&[0; 100]) {
            break e;
        }
    };
    assert_eq!(err, SendError::BrokenPipe);
    assert_eq!(a.recv_bytes(), Err(RecvError::Eof));
}

fn poll_timeouts() {
    let (a, b) = Pipe::new_in(&arena(), true, 1 << 10).unwrap();
    let (a, c) = fork_with(a, b, |b| {
        // Wait for the go, answer after the parent's first poll has timed out.
        assert_eq!(b.recv_bytes().unwrap(), b"go");
        std::thread::sleep(Duration::from_millis(100));
        b.send_bytes(b"late").unwrap();
        assert_eq!(b.recv_bytes(), Err(RecvError::Eof));
    });
    assert!(!a.poll().unwrap());
    let t0 = Instant::now();
    assert!(!a.poll_timeout(Duration::from_millis(30)).unwrap());
    assert!(t0.elapsed() >= Duration::from_millis(30));
    a.send_bytes(b"go").unwrap();
    assert!(a.poll_timeout(Duration::from_secs(30)).unwrap());
    assert!(a.poll().unwrap(), "poll must not consume");
    assert_eq!(a.recv_bytes_timeout(Duration::ZERO).unwrap(), b"late");
    assert!(!a.poll().unwrap());
    drop(a);
    c.join();
}

/// Two processes send on copies of the same end at once: every message arrives whole.
fn forked_copies_of_one_end_keep_frames() {
    const PER: u32 = 20_000;
    let (a, b) = Pipe::new_in(&arena(), true, 4 << 10).unwrap();
    let kids: Vec<_> = (0..2u32)
        .map(|k| {
            fork(|| {
                for i in 0..PER {
                    let n = (i % 300) as usize + 5;
                    let mut m = vec![k as u8; n];
                    m[..4].copy_from_slice(&i.to_le_bytes());
                    b.send_bytes(&m).unwrap();
                }
            })
        })
        .collect();
    drop(b);
    let mut next = [0u32; 2];
    for _ in 0..2 * PER {
        let m = a.recv_bytes().unwrap();
        let k = m[m.len() - 1] as usize;
        let i = u32::from_le_bytes(m[..4].try_into().unwrap());
        assert_eq!(i, next[k], "messages of one sender stay in order");
        assert_eq!(m.len(), (i % 300) as usize + 5);
        assert!(m[4..].iter().all(|x| *x as usize == k), "message torn");
        next[k] += 1;
    }
    assert_eq!(a.recv_bytes(), Err(RecvError::Eof));
    for c in kids {
        c.join();
    }
}

fn one_way_pipe_across_processes() {
    let (r, w) = Pipe::new_in(&arena(), false, 1 << 10).unwrap();
    let (r, c) = fork_with(r, w, |w| {
        for i in 0..1000u64 {
            w.send(&i).unwrap();
        }
    });
    let mut sum = 0;
    loop {
        match r.recv::<u64>() {
            Ok(i) => sum += i,
            Err(RecvError::Eof) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(sum, 999 * 1000 / 2);
    c.join();
}

fn closed_connection_errors() {
    let (mut a, b) = Pipe::new_in(&arena(), true, 1 << 10).unwrap();
    a.close();
    assert_eq!(a.send_bytes(b"x"), Err(SendError::Closed));
    assert_eq!(a.recv_bytes(), Err(RecvError::Closed));
    assert_eq!(a.poll(), Err(RecvError::Closed));
    assert_eq!(b.recv_bytes(), Err(RecvError::Eof));
    assert_eq!(b.send_bytes(b"x"), Err(SendError::BrokenPipe));
    assert!(format!("{}", RecvError::Eof).contains("end of file"));
}

/// Two processes hold the writing end; one is SIGKILLed in the middle of a message. The
/// survivor's next send takes the lock over from the dead holder, sees the half-written
/// frame and marks the pipe broken: both sides get `Broken`, never a torn message.
fn copy_of_end_dies_mid_message_breaks_pipe() {
    let (a, b) = Pipe::new_in(&arena(), true, 4 << 10).unwrap();
    let (ready_r, ready_w) = Pipe::new_in(&arena(), true, 1 << 10).unwrap();
    let mut ready_w = Some(ready_w);
    let w = fork(|| {
        let ready_w = ready_w.take().unwrap();
        b.send_bytes(b"whole").unwrap();
        b.send_with(1 << 20, |off, chunk| {
            chunk.fill(9);
            if off == 0 {
                // The frame has begun (this process holds the writing side, mid-message).
                ready_w.send_bytes(b"mid").unwrap();
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        })
        .unwrap();
    });
    drop(ready_w.take());
    assert_eq!(ready_r.recv_bytes().unwrap(), b"mid");
    w.signal(libc::SIGKILL);
    assert_eq!(w.wait(), -libc::SIGKILL);
    assert_eq!(a.recv_bytes().unwrap(), b"whole");
    // This process still holds the writing end `b`: not EOF, but a broken frame stream.
    assert_eq!(b.send_bytes(b"next"), Err(SendError::Broken));
    assert_eq!(a.recv_bytes(), Err(RecvError::Broken));
}

/// Issue 25: the reader's own process holds a copy of the writing end (so the writer's
/// death is no EOF), and the writer is killed part-way through a message longer than the
/// ring. The reader learns it from the dead holder of the writing side: a timed receive
/// returns within its timeout, an untimed one with `Broken`.
fn timed_receive_ends_when_its_own_copy_of_the_writer_end_lives_and_the_writer_dies() {
    let (a, b) = Pipe::new_in(&arena(), true, 4 << 10).unwrap();
    let (ready_r, ready_w) = Pipe::new_in(&arena(), true, 1 << 10).unwrap();
    let mut ready_w = Some(ready_w);
    let w = fork(|| {
        let ready_w = ready_w.take().unwrap();
        b.send_with(1 << 20, |off, chunk| {
            chunk.fill(3);
            if off > 0 {
                // The first piece is in the ring: the message has begun.
                ready_w.send_bytes(b"mid").unwrap();
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        })
        .unwrap();
    });
    drop(ready_w.take());
    assert_eq!(ready_r.recv_bytes().unwrap(), b"mid");
    w.signal(libc::SIGKILL);
    assert_eq!(w.wait(), -libc::SIGKILL);
    // `b`, a copy of the writing end, is still open in this process.
    let t = Instant::now();
    let r = a.recv_bytes_timeout(Duration::from_millis(500));
    assert!(
        matches!(
            r,
            Err(RecvError::Broken) | Err(RecvError::TimeoutMidMessage { .. })
        ),
        "{r:?}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "hang guard: took {:?}",
        t.elapsed()
    );
    assert_eq!(a.recv_bytes(), Err(RecvError::Broken));
    assert_eq!(b.send_bytes(b"x"), Err(SendError::Broken));
}

/// Another process holds the reading end's side (it is blocked receiving): a timed
/// receive here waits for it only until its own deadline.
fn timed_receive_waits_for_another_reader_only_until_its_deadline() {
    let (a, b) = Pipe::new_in(&arena(), true, 1 << 10).unwrap();
    let (ready_r, ready_w) = Pipe::new_in(&arena(), true, 1 << 10).unwrap();
    let mut ready_w = Some(ready_w);
    let reader = fork(|| {
        // A copy of `a`, blocked in a receive that holds the reading side.
        let ready_w = ready_w.take().unwrap();
        ready_w.send_bytes(b"in").unwrap();
        assert_eq!(a.recv_bytes().unwrap(), b"late");
    });
    drop(ready_w.take());
    assert_eq!(ready_r.recv_bytes().unwrap(), b"in");
    // Give the child time to be inside its receive (not needed for correctness: either
    // way this receive must return at its deadline).
    std::thread::sleep(Duration::from_millis(20));
    let t = Instant::now();
    assert_eq!(
        a.recv_bytes_timeout(Duration::from_millis(100)),
        Err(RecvError::Timeout)
    );
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(100),
        "returned early: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "hang guard: {took:?}");
    assert_eq!(a.poll_timeout(Duration::from_millis(10)), Ok(false));
    b.send_bytes(b"late").unwrap();
    reader.join();
}

/// A message that fits the ring but arrives slowly (its writer stalls half-way): a timed
/// receive times out consuming nothing, and a later receive gets the whole message.
fn timed_receive_takes_a_message_only_whole() {
    let (a, b) = Pipe::new_in(&arena(), true, 64 << 10).unwrap();
    let (go_r, go_w) = Pipe::new_in(&arena(), true, 1 << 10).unwrap();
    let (ready_r, ready_w) = Pipe::new_in(&arena(), true, 1 << 10).unwrap();
    let mut slots = (Some(go_r), Some(ready_w));
    let w = fork(|| {
        let (go_r, ready_w) = (slots.0.take().unwrap(), slots.1.take().unwrap());
        b.send_with(40_000, |off, chunk| {
            for (i, x) in chunk.iter_mut().enumerate() {
                *x = ((off + i) % 251) as u8;
            }
            if off == 0 {
                // The first piece is in the ring; wait for the reader's timeout.
                ready_w.send_bytes(b"begun").unwrap();
                assert_eq!(go_r.recv_bytes().unwrap(), b"go");
            }
        })
        .unwrap();
    });
    drop(slots);
    assert_eq!(ready_r.recv_bytes().unwrap(), b"begun");
    let t = Instant::now();
    assert_eq!(
        a.recv_bytes_timeout(Duration::from_millis(50)),
        Err(RecvError::Timeout)
    );
    assert!(t.elapsed() >= Duration::from_millis(50));
    go_w.send_bytes(b"go").unwrap();
    let m = a.recv_bytes_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(m.len(), 40_000);
    assert!(m.iter().enumerate().all(|(i, &x)| x == (i % 251) as u8));
    w.join();
}

/// A message longer than the ring, streamed slowly: a timed receive whose deadline
/// passes part-way gets `TimeoutMidMessage` (the message is dropped), and the next
/// receive skips its rest and gets the next message whole.
fn timed_receive_mid_stream_drops_that_message_and_the_next_arrives() {
    let (a, b) = Pipe::new_in(&arena(), true, 4 << 10).unwrap();
    let (go_r, go_w) = Pipe::new_in(&arena(), true, 1 << 10).unwrap();
    let mut go_r = Some(go_r);
    let w = fork(|| {
        let go_r = go_r.take().unwrap();
        let mut waited = false;
        b.send_with(100_000, |off, chunk| {
            chunk.fill(7);
            if off > 10_000 && !waited {
                waited = true;
                assert_eq!(go_r.recv_bytes().unwrap(), b"go");
            }
        })
        .unwrap();
        b.send_bytes(b"next").unwrap();
    });
    drop(go_r.take());
    let t = Instant::now();
    assert_eq!(
        a.recv_bytes_timeout(Duration::from_millis(50)),
        Err(RecvError::TimeoutMidMessage { len: 100_000 })
    );
    assert!(t.elapsed() >= Duration::from_millis(50));
    go_w.send_bytes(b"go").unwrap();
    assert_eq!(a.recv_bytes().unwrap(), b"next");
    w.join();
}
