//! Unit tests of the ring and the handles in one process, and the fuzz corpus replay.

use super::{Pipe, RecvError, SendError};
use crate::raw::spsc::{Buf, ByteRing, ByteRingError, MAX_MESSAGE};
use crate::sync::liveness::Scripted;
use crate::sync::spin::SpinPolicy;
use crate::Arena;
use std::time::{Duration, Instant};

fn small(cap: usize) -> (super::Connection, super::Connection) {
    let arena = Arena::anonymous(4 << 20).unwrap();
    Pipe::new_in(&arena, true, cap).unwrap()
}

/// Replays every file of `fuzz/corpus/pipe_ring/` (so CI runs the fuzz target on stable).
#[test]
fn fuzz_corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/pipe_ring");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        super::fuzz::ring(&data);
        n += 1;
    }
    assert!(n >= 12, "corpus has {n} files");
}

#[test]
fn fuzz_random_inputs_never_go_out_of_bounds() {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..2000 {
        let len = (x % 300) as usize;
        let data: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        super::fuzz::ring(&data);
    }
}

#[test]
fn hostile_indices_are_errors() {
    let ring = ByteRing::new();
    let mut words = [0u64; 8];
    let ptr = words.as_mut_ptr().cast::<u8>();
    // SAFETY: `words` outlives `buf` and is 8-aligned; 64 is a power of two in range.
    let buf = unsafe { Buf::from_raw(ptr, 64) };
    let set = |i: usize, v: u64| {
        // SAFETY: `i < 8`: inside `words`; nothing else accesses it meanwhile.
        unsafe { ptr.cast::<u64>().add(i).write(v) }
    };
    let past = Some(Instant::now());
    // A position that is not a multiple of 8.
    ring.scribble(0, 3, 0, 0);
    assert!(matches!(
        ring.peek(&buf, past, SpinPolicy::NEVER, &Scripted::alive(1)),
        Err(ByteRingError::Corrupt(_))
    ));
    // The producer trusts its cache only while it says "room": make it lie too.
    ring.scribble(0, 1000, 1000, 0);
    assert!(matches!(
        ring.send(
            &buf,
            1,
            &mut [1u8].as_slice(),
            SpinPolicy::NEVER,
            &Scripted::alive(1)
        ),
        Err(ByteRingError::Corrupt(_))
    ));
    // A header that is not a header, a chunk longer than the ring, and a message length
    // word claiming more than 2^48 bytes.
    for (hdr, word) in [
        (0x1234u64, 0),
        ((1 << 63) | (1 << 62) | (1 << 61) | 60, 0),
        ((1 << 63) | (1 << 62) | 8, MAX_MESSAGE + 1),
    ] {
        let ring = ByteRing::new();
        set(0, hdr);
        set(1, word);
        assert!(matches!(
            ring.peek(&buf, past, SpinPolicy::NEVER, &Scripted::alive(1)),
            Err(ByteRingError::Corrupt(_))
        ));
    }
}

#[test]
fn messages_keep_boundaries_across_wrap() {
    let (a, b) = small(64);
    for round in 0..200u32 {
        // Up to 48 bytes: what an empty 64-byte ring holds as one chunk (cap - 16).
        let len = (round * 7 % 49) as usize;
        let msg: Vec<u8> = (0..len).map(|i| (i as u32 + round) as u8).collect();
        a.send_bytes(&msg).unwrap();
        assert_eq!(b.recv_bytes().unwrap(), msg);
    }
}

#[test]
fn large_message_streams_through_small_ring() {
    let (a, b) = small(64);
    let msg: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let m2 = msg.clone();
    let t = std::thread::spawn(move || {
        a.send_bytes(&m2).unwrap();
        a.send_bytes(b"after").unwrap();
        a
    });
    assert_eq!(b.recv_bytes().unwrap(), msg);
    assert_eq!(b.recv_bytes().unwrap(), b"after");
    drop(t.join().unwrap());
    assert_eq!(b.recv_bytes(), Err(RecvError::Eof));
}

#[test]
fn one_way_pipe_checks_direction() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let (r, w) = Pipe::new_in(&arena, false, 1024).unwrap();
    assert_eq!(r.send_bytes(b"x"), Err(SendError::WrongDirection));
    assert_eq!(w.recv_bytes(), Err(RecvError::WrongDirection));
    w.send_bytes(b"x").unwrap();
    assert_eq!(r.recv_bytes().unwrap(), b"x");
    assert!(r.readable() && !r.writable() && w.writable() && !w.readable());
}

#[test]
fn timeout_leaves_ring_clean() {
    let (a, b) = small(64);
    let t0 = Instant::now();
    assert_eq!(
        b.recv_bytes_timeout(Duration::from_millis(20)),
        Err(RecvError::Timeout)
    );
    assert!(t0.elapsed() >= Duration::from_millis(20));
    a.send_bytes(b"next").unwrap();
    assert_eq!(
        b.recv_bytes_timeout(Duration::from_secs(5)).unwrap(),
        b"next"
    );
}

#[test]
fn panicking_fill_breaks_the_pipe() {
    let (a, b) = small(64);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        a.send_with(40, |_, _| panic!("fill failed"))
    }));
    assert!(r.is_err());
    assert_eq!(b.recv_bytes(), Err(RecvError::Broken));
    assert_eq!(a.send_bytes(b"x"), Err(SendError::Broken));
}

#[cfg(feature = "serde")]
#[test]
fn serde_values_round_trip() {
    let (a, b) = small(64);
    a.send_obj(&("job", vec![1u32, 2, 3], Some(2.5f64)))
        .unwrap();
    let got: (String, Vec<u32>, Option<f64>) = b.recv_obj().unwrap();
    assert_eq!(got, ("job".to_string(), vec![1, 2, 3], Some(2.5)));
    a.send_bytes(&[0xff; 3]).unwrap();
    assert!(matches!(
        b.recv_obj::<String>(),
        Err(RecvError::Deserialize(_))
    ));
}

#[test]
fn typed_recv_of_wrong_size_returns_the_message() {
    let (a, b) = small(64);
    a.send_bytes(b"abc").unwrap();
    let e = b.recv::<u64>().unwrap_err();
    assert_eq!(e.into_message().unwrap(), b"abc");
}

#[test]
fn io_write_and_read_stream() {
    use std::io::{Read, Write};
    let (mut a, mut b) = small(64);
    let t = std::thread::spawn(move || {
        for i in 0..100u32 {
            write!(a, "{i},").unwrap();
        }
    });
    let mut s = String::new();
    b.read_to_string(&mut s).unwrap();
    t.join().unwrap();
    let want: String = (0..100u32).map(|i| format!("{i},")).collect();
    assert_eq!(s, want);
}

/// The straight-line receive (`ByteRing::recv_small`) takes only its own case and leaves
/// everything else, unconsumed, to the general path.
#[test]
fn small_receive_takes_only_its_case() {
    use crate::raw::spsc::{Fast, WRITER_CLOSED};
    let ring = ByteRing::new();
    // 64 bytes, 8-aligned.
    let mut mem = vec![0u64; 8];
    // SAFETY: `mem` is 64 bytes, 8-aligned, outlives `buf`, and only the ring touches it.
    let buf = unsafe { Buf::from_raw(mem.as_mut_ptr().cast(), 64) };
    let send = |m: &[u8]| {
        let mut src = m;
        ring.send(
            &buf,
            m.len() as u64,
            &mut src,
            SpinPolicy::NEVER,
            &Scripted::alive(1),
        )
        .unwrap()
    };
    let mut out = [0u8; 32];
    // Empty: it spins (here: not at all) and says so.
    assert_eq!(
        ring.recv_small(&buf, &mut out, SpinPolicy::NEVER),
        Fast::Spun
    );
    send(b"hey");
    // A destination one byte short: nothing consumed.
    assert_eq!(
        ring.recv_small(&buf, &mut out[..2], SpinPolicy::NEVER),
        Fast::Slow
    );
    assert_eq!(
        ring.recv_small(&buf, &mut out, SpinPolicy::NEVER),
        Fast::Done(3)
    );
    assert_eq!(&out[..3], b"hey");
    // Longer than a piece (16 bytes in a 64-byte ring): sent as chunks, received slowly.
    let long: Vec<u8> = (0..40).collect();
    let t = std::thread::scope(|s| {
        let h = s.spawn(|| send(&long));
        let slow = ring.recv_small(&buf, &mut out, SpinPolicy::default());
        let got = ring
            .recv_vec(
                &buf,
                u64::MAX,
                None,
                SpinPolicy::default(),
                &Scripted::alive(1),
            )
            .unwrap();
        h.join().unwrap();
        (slow, got)
    });
    assert_ne!(t.0, Fast::Done(40));
    assert_eq!(t.1, long);
    // Positions now sit where the next small message wraps the buffer end: slow again,
    // but whole.
    let mut wrapped = 0;
    for i in 0..8u8 {
        send(&[i; 12]);
        match ring.recv_small(&buf, &mut out, SpinPolicy::NEVER) {
            Fast::Done(n) => assert_eq!(&out[..n], &[i; 12]),
            Fast::Slow => {
                wrapped += 1;
                let m = ring
                    .recv_vec(&buf, u64::MAX, None, SpinPolicy::NEVER, &Scripted::alive(1))
                    .unwrap();
                assert_eq!(m, [i; 12]);
            }
            Fast::Spun => panic!("message {i} not seen"),
        }
    }
    assert!(wrapped > 0, "no message wrapped the buffer end");
    // Closed and empty: the spin stops at once and the general path reports EOF.
    ring.set_state(WRITER_CLOSED);
    assert_eq!(
        ring.recv_small(&buf, &mut out, SpinPolicy::default()),
        Fast::Slow
    );
    assert_eq!(
        ring.recv_vec(&buf, u64::MAX, None, SpinPolicy::NEVER, &Scripted::alive(1)),
        Err(ByteRingError::Eof)
    );
}

/// `recv_bytes_into` and typed `recv` through the straight-line path and off it: a short
/// buffer gets the whole message back in the error; a value of the wrong size too, in
/// either direction; a wrapped message and EOF come through the general path.
#[test]
fn receive_into_falls_back_whole() {
    let (a, b) = small(64);
    let mut buf = [0u8; 8];
    a.send_bytes(b"0123456789").unwrap();
    let e = b.recv_bytes_into(&mut buf).unwrap_err();
    assert_eq!(e.into_message().unwrap(), b"0123456789");
    a.send(&7u32).unwrap();
    assert!(matches!(b.recv::<u64>(), Err(RecvError::WrongSize(v)) if v == 7u32.to_ne_bytes()));
    a.send(&[1u64, 2]).unwrap();
    assert!(matches!(b.recv::<u64>(), Err(RecvError::WrongSize(v)) if v.len() == 16));
    for i in 0..50u64 {
        a.send(&i).unwrap();
        assert_eq!(b.recv::<u64>().unwrap(), i);
        a.send_bytes(&[i as u8; 5]).unwrap();
        assert_eq!(b.recv_bytes_into(&mut buf).unwrap(), 5);
        assert_eq!(buf[..5], [i as u8; 5]);
    }
    let big = [3u8; 100]; // larger than a 64-byte ring: typed recv of a big value
    let h = std::thread::scope(|s| {
        s.spawn(|| a.send(&big).unwrap());
        b.recv::<[u8; 100]>().unwrap()
    });
    assert_eq!(h, big);
    drop(a);
    assert_eq!(b.recv_bytes_into(&mut buf), Err(RecvError::Eof));
}

/// Two threads send and two receive on the same two ends at once, so the fast paths' lock
/// (one CAS) often finds the side taken and the general path waits for it: every message
/// arrives once, whole, and in its sender's order.
#[test]
fn contended_ends_keep_every_message() {
    const PER: u64 = 20_000;
    let (a, b) = small(256);
    let seen = std::thread::scope(|s| {
        for k in 0..2u64 {
            let b = &b;
            s.spawn(move || {
                for i in 0..PER {
                    // Sender in the top byte, sequence below; 8 or 12 bytes (both sizes
                    // take the straight-line paths).
                    let v = (k << 56) | i;
                    let mut m = [0u8; 12];
                    m[..8].copy_from_slice(&v.to_le_bytes());
                    b.send_bytes(&m[..8 + 4 * (i % 2) as usize]).unwrap();
                }
            });
        }
        let rx: Vec<_> = (0..2)
            .map(|_| {
                let a = &a;
                s.spawn(move || {
                    let mut got = Vec::new();
                    let mut buf = [0u8; 16];
                    for _ in 0..PER {
                        let n = a.recv_bytes_into(&mut buf).unwrap();
                        let v = u64::from_le_bytes(buf[..8].try_into().unwrap());
                        assert_eq!(n, 8 + 4 * (v & 1) as usize, "message torn or merged");
                        got.push(v);
                    }
                    got
                })
            })
            .collect();
        rx.into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    // Each receiver sees each sender's messages in order; together, each exactly once.
    let mut all = Vec::new();
    for got in &seen {
        for k in 0..2u64 {
            let mine: Vec<u64> = got.iter().copied().filter(|v| v >> 56 == k).collect();
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "out of order");
        }
        all.extend_from_slice(got);
    }
    all.sort_unstable();
    let want: Vec<u64> = (0..2u64)
        .flat_map(|k| (0..PER).map(move |i| (k << 56) | i))
        .collect();
    assert_eq!(all, want);
}

/// `Debug` of the ends shows each end's live state, and only the directions it uses.
#[test]
fn debug_shows_each_ends_live_state() {
    let arena = Arena::anonymous(4 << 20).unwrap();
    let (tx, mut rx) = Pipe::channel_in(&arena, 1024).unwrap();
    tx.send_bytes(&[1; 20]).unwrap(); // one frame: 8-byte header + 24 (20 padded)
    assert_eq!(
        format!("{tx:?}"),
        "Sender { end: 1, capacity: 1024, send_pending: 32, send_state: open, peer_alive: true }"
    );
    assert_eq!(
        format!("{rx:?}"),
        "Receiver { end: 0, capacity: 1024, recv_pending: 32, recv_state: open, \
         peer_alive: true }"
    );
    assert_eq!(rx.recv_bytes().unwrap(), [1; 20]);
    drop(tx);
    assert_eq!(
        format!("{rx:?}"),
        "Receiver { end: 0, capacity: 1024, recv_pending: 0, recv_state: writer closed, \
         peer_alive: false }"
    );
    rx.close();
    assert_eq!(format!("{rx:?}"), "Receiver(closed)");

    // A duplex end shows both directions.
    let (a, b) = small(256);
    b.send_bytes(b"hi").unwrap();
    assert_eq!(
        format!("{a:?}"),
        "Connection { end: 0, capacity: 256, recv_pending: 16, recv_state: open, \
         send_pending: 0, send_state: open, peer_alive: true }"
    );
    // The states in words, as `Debug` and `shmproc inspect` say them.
    use crate::raw::spsc::{BROKEN, READER_CLOSED, WRITER_CLOSED};
    assert_eq!(super::ring_state(0), "open");
    assert_eq!(super::ring_state(READER_CLOSED), "reader closed");
    assert_eq!(
        super::ring_state(WRITER_CLOSED | BROKEN),
        "writer closed, broken"
    );
}
