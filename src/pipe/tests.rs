//! Unit tests of the ring and the handles in one process, and the fuzz corpus replay.

use super::ring::{Buf, NoWatch, RawRing, RingError, MAX_MESSAGE};
use super::{Pipe, RecvError, SendError};
use crate::spin::SpinPolicy;
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
    let ring = RawRing::new();
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
        ring.peek(&buf, past, SpinPolicy::NEVER, &NoWatch),
        Err(RingError::Corrupt(_))
    ));
    // The producer trusts its cache only while it says "room": make it lie too.
    ring.scribble(0, 1000, 1000, 0);
    assert!(matches!(
        ring.send(&buf, 1, &mut [1u8].as_slice(), SpinPolicy::NEVER, &NoWatch),
        Err(RingError::Corrupt(_))
    ));
    // A header that is not a header, a chunk longer than the ring, and a message length
    // word claiming more than 2^48 bytes.
    for (hdr, word) in [
        (0x1234u64, 0),
        ((1 << 63) | (1 << 62) | (1 << 61) | 60, 0),
        ((1 << 63) | (1 << 62) | 8, MAX_MESSAGE + 1),
    ] {
        let ring = RawRing::new();
        set(0, hdr);
        set(1, word);
        assert!(matches!(
            ring.peek(&buf, past, SpinPolicy::NEVER, &NoWatch),
            Err(RingError::Corrupt(_))
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
