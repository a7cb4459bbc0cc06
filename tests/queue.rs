//! Multi-process tests of `Queue`, `ByteQueue`, `SimpleQueue` and `JoinableQueue`.

use shmproc::queue::{
    BytePutError, ByteQueue, GetError, JoinError, JoinableQueue, PutError, Queue, SimpleQueue,
};
use shmproc::Arena;
use shmproc_testkit::{fork, Signal};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

shmproc_testkit::main!(
    inspect_names_a_dead_claimer,
    stress_4x4_million_exactly_once_in_order,
    joinable_4x4_join_after_all_task_done,
    get_timeout_200ms_on_empty,
    put_timeout_on_full,
    try_ops_never_block,
    close_wakes_blocked_consumer_in_other_process,
    blocked_producer_woken_by_consumer_in_other_process,
    close_drains_then_disconnects,
    qsize_empty_full_exact_when_quiet,
    bad_capacity_is_an_error,
    named_open_and_wrong_type,
    bytes_across_processes_with_checksums,
    bytes_longer_than_a_slot_go_to_the_heap,
    a_gigabyte_and_a_hundred_bytes_through_one_queue,
    loans_in_place_and_dropped_loans_are_skipped,
    simple_queue_across_processes,
    long_loans_make_others_wait_not_fail,
    task_done_too_often_is_an_error,
    join_timeout_reports_unfinished,
    joinable_consumer_killed_holding_tasks_abandons_them,
    joinable_producer_killed_blocked_in_put_adds_no_task,
    #[cfg(feature = "serde")]
    serde_values_across_processes,
    #[cfg(feature = "serde")]
    obj_queue_4x4_random_sizes_exactly_once_in_order,
);

fn arena(mb: usize) -> Arena {
    Arena::anonymous(mb << 20).expect("arena")
}

/// Shared, zeroed memory for test bookkeeping (a `seen` bitmap, counters), inherited by
/// forked children.
struct Shared {
    ptr: *mut u8,
    len: usize,
}

impl Shared {
    fn new(len: usize) -> Shared {
        // SAFETY: a fresh anonymous shared mapping.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED);
        Shared {
            ptr: ptr.cast(),
            len,
        }
    }

    fn byte(&self, i: usize) -> &AtomicU8 {
        assert!(i < self.len);
        // SAFETY: in bounds; zeroed shared memory is a valid AtomicU8.
        unsafe { &*self.ptr.add(i).cast::<AtomicU8>() }
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        assert!((i + 1) * 8 <= self.len);
        // SAFETY: in bounds, 8-aligned (mmap is page-aligned).
        unsafe { &*self.ptr.add(i * 8).cast::<AtomicU64>() }
    }
}

const PRODUCERS: u64 = 4;
const CONSUMERS: u64 = 4;

/// 4 producers and 4 consumer processes move 1,000,000 numbered messages through a
/// 64-slot queue. Every message is received exactly once (a shared `seen` byte per
/// message), and each consumer sees each producer's messages in increasing order.
fn stress_4x4_million_exactly_once_in_order() {
    const PER: u64 = 250_000;
    let a = arena(4);
    let q = Queue::<u64>::new_in(&a, 64).unwrap();
    let seen = Shared::new((PRODUCERS * PER) as usize);
    let counts = Shared::new(4096);
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|c| {
            let (q, seen, counts) = (q.clone(), &seen, &counts);
            fork(move || {
                let mut last = [None::<u64>; PRODUCERS as usize];
                let mut n = 0u64;
                loop {
                    match q.get() {
                        Ok(v) => {
                            let (p, i) = ((v >> 32) as usize, v & 0xffff_ffff);
                            assert!(p < PRODUCERS as usize && i < PER, "bad message {v:#x}");
                            if let Some(l) = last[p] {
                                assert!(i > l, "producer {p}: {i} after {l}");
                            }
                            last[p] = Some(i);
                            seen.byte(p * PER as usize + i as usize)
                                .fetch_add(1, Ordering::Relaxed);
                            n += 1;
                        }
                        Err(GetError::Disconnected) => break,
                        Err(e) => panic!("consumer {c}: {e}"),
                    }
                }
                counts.word(c as usize).store(n, Ordering::Relaxed);
            })
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let q = q.clone();
            fork(move || {
                for i in 0..PER {
                    q.put((p << 32) | i).unwrap();
                }
            })
        })
        .collect();
    for p in producers {
        p.join();
    }
    q.close();
    for c in consumers {
        c.join();
    }
    let per_consumer: Vec<u64> = (0..CONSUMERS)
        .map(|c| counts.word(c as usize).load(Ordering::Relaxed))
        .collect();
    println!("messages per consumer: {per_consumer:?}");
    let total: u64 = per_consumer.iter().sum();
    assert_eq!(total, PRODUCERS * PER);
    for i in 0..(PRODUCERS * PER) as usize {
        assert_eq!(
            seen.byte(i).load(Ordering::Relaxed),
            1,
            "message {i} seen wrongly"
        );
    }
    assert!(q.empty());
}

/// The same shape with a JoinableQueue: producers put, then `join`; when `join` returns,
/// every item was processed (counted before `task_done`).
fn joinable_4x4_join_after_all_task_done() {
    const PER: u64 = 50_000;
    let a = arena(4);
    let q = JoinableQueue::<u64>::new_in(&a, 32).unwrap();
    let counts = Shared::new(4096);
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let (q, counts) = (q.clone(), &counts);
            fork(move || loop {
                match q.get() {
                    Ok(v) => {
                        counts.word(0).fetch_add(1, Ordering::Relaxed);
                        counts.word(1).fetch_add(v, Ordering::Relaxed);
                        q.task_done().unwrap();
                    }
                    Err(GetError::Disconnected) => break,
                    Err(e) => panic!("{e}"),
                }
            })
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (q, counts) = (q.clone(), &counts);
            fork(move || {
                for i in 0..PER {
                    q.put(p * PER + i).unwrap();
                }
                q.join().unwrap();
                // Every item of every producer that finished putting is done; ours are.
                assert!(counts.word(0).load(Ordering::Relaxed) >= PER);
            })
        })
        .collect();
    for p in producers {
        p.join();
    }
    q.join().unwrap();
    let n = PRODUCERS * PER;
    assert_eq!(counts.word(0).load(Ordering::Relaxed), n);
    assert_eq!(counts.word(1).load(Ordering::Relaxed), n * (n - 1) / 2);
    assert_eq!(q.unfinished_tasks(), 0);
    q.close();
    for c in consumers {
        c.join();
    }
}

fn get_timeout_200ms_on_empty() {
    let q = Queue::<u32>::new_in(&arena(1), 4).unwrap();
    let t = Instant::now();
    assert_eq!(
        q.get_timeout(Duration::from_millis(200)),
        Err(GetError::Timeout)
    );
    let e = t.elapsed();
    assert!(e >= Duration::from_millis(195), "returned early: {e:?}");
    assert!(e < Duration::from_secs(2), "returned late: {e:?}");
}

fn put_timeout_on_full() {
    let q = Queue::<u32>::new_in(&arena(1), 1).unwrap();
    q.put(1).unwrap();
    let t = Instant::now();
    assert_eq!(
        q.put_timeout(2, Duration::from_millis(100)),
        Err(PutError::Timeout(2))
    );
    let e = t.elapsed();
    assert!(
        e >= Duration::from_millis(95) && e < Duration::from_secs(2),
        "{e:?}"
    );
    assert_eq!(q.get(), Ok(1));
}

fn try_ops_never_block() {
    let q = Queue::<u32>::new_in(&arena(1), 2).unwrap();
    for _ in 0..1000 {
        assert_eq!(q.try_get(), Err(GetError::Empty));
    }
    q.try_put(1).unwrap();
    q.try_put(2).unwrap();
    for _ in 0..1000 {
        assert_eq!(q.try_put(3), Err(PutError::Full(3)));
    }
    q.close();
    assert_eq!(q.try_put(4), Err(PutError::Disconnected(4)));
    assert_eq!(q.try_get(), Ok(1));
}

fn close_wakes_blocked_consumer_in_other_process() {
    let a = arena(1);
    let q = Queue::<u32>::new_in(&a, 4).unwrap();
    let flag = Shared::new(4096);
    let child = {
        let (q, flag) = (q.clone(), &flag);
        fork(move || {
            flag.word(0).store(1, Ordering::Release);
            assert_eq!(q.get(), Ok(5));
            assert_eq!(q.get(), Err(GetError::Disconnected));
        })
    };
    while flag.word(0).load(Ordering::Acquire) == 0 {
        std::hint::spin_loop();
    }
    q.put(5).unwrap();
    // Give the child time to fall asleep in the futex (not for correctness: either way
    // the close must reach it).
    std::thread::sleep(Duration::from_millis(50));
    q.close();
    child.join();
}

fn blocked_producer_woken_by_consumer_in_other_process() {
    let a = arena(1);
    let q = Queue::<u64>::new_in(&a, 2).unwrap();
    let child = {
        let q = q.clone();
        fork(move || {
            for i in 0..10_000u64 {
                q.put(i).unwrap();
            }
        })
    };
    // Let the producer fill the queue and sleep, then drain in slow bursts.
    std::thread::sleep(Duration::from_millis(20));
    for i in 0..10_000u64 {
        assert_eq!(q.get(), Ok(i));
        if i % 2_500 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    child.join();
    assert!(q.empty());
}

fn close_drains_then_disconnects() {
    let q = Queue::<u16>::new_in(&arena(1), 8).unwrap();
    for i in 0..5 {
        q.put(i).unwrap();
    }
    q.close();
    assert!(q.is_closed());
    assert_eq!(q.put(9), Err(PutError::Disconnected(9)));
    for i in 0..5 {
        assert_eq!(q.get(), Ok(i));
    }
    assert_eq!(q.get(), Err(GetError::Disconnected));
    assert_eq!(q.try_get(), Err(GetError::Disconnected));
    assert_eq!(
        q.get_timeout(Duration::from_millis(10)),
        Err(GetError::Disconnected)
    );
}

fn qsize_empty_full_exact_when_quiet() {
    let q = Queue::<u8>::new_in(&arena(1), 3).unwrap();
    assert!(q.empty() && !q.full());
    for round in 0..5u8 {
        for i in 0..3 {
            assert_eq!(q.qsize(), i);
            q.put(round).unwrap();
        }
        assert!(q.full());
        for i in 0..3 {
            assert_eq!(q.qsize(), 3 - i);
            assert_eq!(q.get(), Ok(round));
        }
        assert!(q.empty());
    }
}

fn bad_capacity_is_an_error() {
    let a = arena(1);
    assert!(matches!(
        Queue::<u64>::new_in(&a, 0),
        Err(shmproc::Error::InvalidArgument(_))
    ));
    // 16 MiB of slots: past the limit of an arena that may not grow beyond 1 MiB.
    let small = Arena::builder()
        .size(1 << 20)
        .limit(1 << 20)
        .anonymous()
        .unwrap();
    assert!(Queue::<u64>::new_in(&small, 1 << 20).is_err());
    assert!(Queue::<u64>::new_in(&a, usize::MAX).is_err());
    assert!(ByteQueue::new_in(&a, 0, 8).is_err());
    assert!(ByteQueue::new_in(&a, 8, 0).is_err());
    assert!(JoinableQueue::<u8>::new_in(&a, 0).is_err());
    // The arena is still usable after the failures.
    Queue::<u64>::new_in(&a, 16).unwrap();
}

fn named_open_and_wrong_type() {
    let a = arena(1);
    let q = Queue::<u64>::create(&a, "q", 4).unwrap();
    let b = ByteQueue::create(&a, "b", 4, 32).unwrap();
    let j = JoinableQueue::<u64>::create(&a, "j", 4).unwrap();
    let child = {
        let a = a.clone();
        fork(move || {
            let q = Queue::<u64>::open(&a, "q").unwrap();
            let b = ByteQueue::open(&a, "b").unwrap();
            let j = JoinableQueue::<u64>::open(&a, "j").unwrap();
            q.put(1).unwrap();
            b.put_bytes(b"x").unwrap();
            j.put(2).unwrap();
        })
    };
    child.join();
    assert_eq!(q.get(), Ok(1));
    assert_eq!(b.get_bytes().unwrap(), b"x");
    assert_eq!(j.get(), Ok(2));
    assert_eq!(j.unfinished_tasks(), 1);
    assert!(matches!(
        Queue::<u32>::open(&a, "q"),
        Err(shmproc::Error::WrongType { .. })
    ));
    assert!(matches!(
        Queue::<u64>::open(&a, "b"),
        Err(shmproc::Error::WrongType { .. })
    ));
    assert!(matches!(
        Queue::<u64>::open(&a, "j"),
        Err(shmproc::Error::WrongType { .. })
    ));
    assert!(matches!(
        Queue::<u64>::open(&a, "none"),
        Err(shmproc::Error::NotFound(_))
    ));
}

fn checksum(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Two producers send variable-length messages (0..=200 bytes, the first 8 bytes being
/// producer and sequence); two consumers check length, content and per-producer order.
fn bytes_across_processes_with_checksums() {
    const PER: u64 = 20_000;
    const MAX: usize = 200;
    let a = arena(4);
    let q = ByteQueue::new_in(&a, 16, MAX).unwrap();
    let sums = Shared::new(4096);
    let make = |p: u64, i: u64| -> Vec<u8> {
        let len = 8 + ((p * 7 + i * 13) % (MAX as u64 - 7)) as usize;
        let mut m = vec![0u8; len];
        m[..8].copy_from_slice(&((p << 32) | i).to_le_bytes());
        for (k, b) in m[8..].iter_mut().enumerate() {
            *b = (i as usize + k * 31) as u8;
        }
        m
    };
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let (q, sums) = (q.clone(), &sums);
            fork(move || {
                let mut buf = Vec::new();
                let mut last = [None::<u64>; 2];
                loop {
                    match q.get_bytes_into(&mut buf) {
                        Ok(n) => {
                            assert_eq!(n, buf.len());
                            let id = u64::from_le_bytes(buf[..8].try_into().unwrap());
                            let (p, i) = (id >> 32, id & 0xffff_ffff);
                            assert_eq!(buf, make(p, i), "message {p}/{i} damaged");
                            if let Some(l) = last[p as usize] {
                                assert!(i > l);
                            }
                            last[p as usize] = Some(i);
                            sums.word(0).fetch_add(1, Ordering::Relaxed);
                            sums.word(1)
                                .fetch_add(checksum(&buf) >> 8, Ordering::Relaxed);
                        }
                        Err(GetError::Disconnected) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    let producers: Vec<_> = (0..2)
        .map(|p| {
            let q = q.clone();
            fork(move || {
                for i in 0..PER {
                    q.put_bytes(&make(p, i)).unwrap();
                }
            })
        })
        .collect();
    for p in producers {
        p.join();
    }
    q.close();
    for c in consumers {
        c.join();
    }
    let want: u64 = (0..2)
        .flat_map(|p| (0..PER).map(move |i| (p, i)))
        .map(|(p, i)| checksum(&make(p, i)) >> 8)
        .fold(0u64, |a, b| a.wrapping_add(b));
    assert_eq!(sums.word(0).load(Ordering::Relaxed), 2 * PER);
    assert_eq!(sums.word(1).load(Ordering::Relaxed), want);
}

fn bytes_longer_than_a_slot_go_to_the_heap() {
    let a = arena(1);
    let q = ByteQueue::new_in(&a, 4, 16).unwrap();
    let base = a.used();
    let sizes = [17usize, 16, 0, 100, 1 << 20, 15];
    let child = {
        let q = q.clone();
        fork(move || {
            for round in 0..50u8 {
                for &n in &sizes {
                    let msg: Vec<u8> = (0..n).map(|i| (i as u8) ^ round).collect();
                    if round % 2 == 0 {
                        q.put_bytes(&msg).unwrap();
                    } else {
                        q.put_bytes_timeout(&msg, Duration::from_secs(30)).unwrap();
                    }
                }
            }
            q.close();
        })
    };
    let mut buf = Vec::new();
    for round in 0..50u8 {
        for &n in &sizes {
            if round % 3 == 0 {
                let loan = q.read_loan().unwrap();
                assert_eq!(loan.len(), n);
                assert!(loan
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b == (i as u8) ^ round));
            } else {
                assert_eq!(q.get_bytes_into(&mut buf), Ok(n));
                assert!(buf.iter().enumerate().all(|(i, &b)| b == (i as u8) ^ round));
            }
        }
    }
    assert_eq!(q.get_bytes(), Err(GetError::Disconnected));
    child.join();
    assert_eq!(
        a.used(),
        base,
        "every block a message took was freed by its consumer"
    );
    // A loan holds only a slot: a commit past it is refused, and nothing is published.
    let q = ByteQueue::new_in(&a, 4, 16).unwrap();
    let loan = q.write_loan().unwrap();
    assert_eq!(
        loan.commit(17),
        Err(BytePutError::TooLarge { len: 17, max: 16 })
    );
    assert_eq!(q.try_get_bytes(), Err(GetError::Empty)); // the refused loan was skipped
                                                         // A message larger than the arena may ever grow: refused before a slot is claimed.
    let small = Arena::builder()
        .size(1 << 20)
        .limit(1 << 20)
        .anonymous()
        .unwrap();
    let q = ByteQueue::new_in(&small, 2, 16).unwrap();
    assert!(matches!(
        q.put_bytes(&vec![0; 2 << 20]),
        Err(BytePutError::NoSpace(_))
    ));
    assert!(q.empty());
    // One that fits the limit but not the room left: refused, the slot skipped, the
    // queue usable.
    assert!(matches!(
        q.put_bytes(&vec![0; (1 << 20) - 16]),
        Err(BytePutError::NoSpace(_))
    ));
    q.put_bytes(b"after").unwrap();
    assert_eq!(q.get_bytes().unwrap(), b"after");
}

/// The proof: a 1 GiB message and a 100-byte one through the same queue, from a
/// child to this process; the large one read in place (a read loan lends its block).
fn a_gigabyte_and_a_hundred_bytes_through_one_queue() {
    const BIG: usize = 1 << 30;
    const CHUNK: usize = 1 << 20;
    // 1024 chunks of one random MiB, each stamped with its number (so a chunk out of
    // place shows); built and compared with memcpy / memcmp, fast in a debug build too.
    let base: Vec<u8> = {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..CHUNK)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let a = arena(1);
    let q = ByteQueue::new_in(&a, 4, 128).unwrap();
    let used = a.used();
    let child = {
        let (q, base) = (q.clone(), base.clone());
        fork(move || {
            let mut big = Vec::with_capacity(BIG);
            for c in 0..BIG / CHUNK {
                big.extend_from_slice(&(c as u64).to_ne_bytes());
                big.extend_from_slice(&base[8..]);
            }
            q.put_bytes(&big).unwrap();
            drop(big);
            q.put_bytes(&[42; 100]).unwrap();
        })
    };
    {
        let loan = q.read_loan().unwrap();
        assert_eq!(loan.len(), BIG);
        for (c, chunk) in loan.chunks(CHUNK).enumerate() {
            assert_eq!(
                chunk[..8],
                (c as u64).to_ne_bytes(),
                "chunk {c} out of place"
            );
            assert!(chunk[8..] == base[8..], "bytes of chunk {c} differ");
        }
    }
    assert_eq!(q.get_bytes().unwrap(), vec![42; 100]);
    child.join();
    assert_eq!(a.used(), used, "the 1 GiB block was freed with its loan");
}

fn loans_in_place_and_dropped_loans_are_skipped() {
    let a = arena(1);
    let q = Queue::<[u32; 16]>::new_in(&a, 2).unwrap();
    let child = {
        let q = q.clone();
        fork(move || {
            for round in 0..1000u32 {
                let mut loan = q.put_loan().unwrap();
                if round % 3 == 0 {
                    drop(loan); // cancelled: consumers never see it
                    continue;
                }
                for (k, x) in loan.iter_mut().enumerate() {
                    *x = round * 100 + k as u32;
                }
                loan.commit();
            }
            q.close();
        })
    };
    let mut got = 0;
    loop {
        match q.get_loan() {
            Ok(m) => {
                let round = m[0] / 100;
                assert_ne!(round % 3, 0, "a dropped loan was delivered");
                for (k, x) in m.iter().enumerate() {
                    assert_eq!(*x, round * 100 + k as u32);
                }
                got += 1;
            }
            Err(GetError::Disconnected) => break,
            Err(e) => panic!("{e}"),
        }
    }
    child.join();
    assert_eq!(got, 1000 - 334);

    let b = ByteQueue::new_in(&a, 2, 32).unwrap();
    drop(b.write_loan().unwrap());
    let mut w = b.write_loan().unwrap();
    w[..3].copy_from_slice(b"abc");
    w.commit(3).unwrap();
    assert_eq!(&*b.read_loan().unwrap(), b"abc");
    assert_eq!(b.try_read_loan().unwrap_err(), GetError::Empty);
}

/// A loan held for longer than any race lasts: other consumers and producers wait for
/// it (and are woken when it ends); they never take the long wait for corruption.
fn long_loans_make_others_wait_not_fail() {
    let a = arena(1);
    let q = Queue::<u64>::new_in(&a, 1).unwrap();
    q.put(1).unwrap();
    let loan = q.get_loan().unwrap(); // slot 0 of lap 0 is being read
    let (consumer, producer) = {
        let (q1, q2) = (q.clone(), q.clone());
        // The consumer is at lap 1 and sees the previous lap's message still being read.
        let c = fork(move || assert_eq!(q1.get_timeout(Duration::from_secs(20)), Ok(2)));
        let p = fork(move || q2.put_timeout(2, Duration::from_secs(20)).unwrap());
        (c, p)
    };
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(*loan, 1);
    drop(loan);
    producer.join();
    consumer.join();

    // The same for a put loan: a producer one lap ahead waits for its publish.
    let q = Queue::<u64>::new_in(&a, 1).unwrap();
    let mut loan = q.put_loan().unwrap();
    *loan = 10;
    let (consumer, producer) = {
        let (q1, q2) = (q.clone(), q.clone());
        let p = fork(move || q2.put_timeout(11, Duration::from_secs(20)).unwrap());
        let c = fork(move || {
            assert_eq!(q1.get_timeout(Duration::from_secs(20)), Ok(10));
            assert_eq!(q1.get_timeout(Duration::from_secs(20)), Ok(11));
        });
        (c, p)
    };
    std::thread::sleep(Duration::from_millis(400));
    loan.commit();
    producer.join();
    consumer.join();
}

fn simple_queue_across_processes() {
    let q = SimpleQueue::<u64>::new_in(&arena(1)).unwrap();
    let child = {
        let q = q.clone();
        fork(move || {
            for i in 0..5000 {
                q.put(i).unwrap();
            }
        })
    };
    let mut sum = 0;
    for _ in 0..5000 {
        sum += q.get().unwrap();
    }
    child.join();
    assert_eq!(sum, 5000 * 4999 / 2);
    assert!(q.empty());
}

fn task_done_too_often_is_an_error() {
    let q = JoinableQueue::<u8>::new_in(&arena(1), 2).unwrap();
    assert!(q.task_done().is_err());
    q.put(1).unwrap();
    q.put(2).unwrap();
    assert_eq!(q.try_put(3), Err(PutError::Full(3)));
    assert_eq!(q.unfinished_tasks(), 2, "a failed put adds no task");
    q.get().unwrap();
    q.task_done().unwrap();
    q.get().unwrap();
    q.task_done().unwrap();
    assert!(q.task_done().is_err());
    q.join().unwrap();
}

fn join_timeout_reports_unfinished() {
    let a = arena(1);
    let q = JoinableQueue::<u8>::new_in(&a, 4).unwrap();
    q.put(1).unwrap();
    let t = Instant::now();
    let e = q.join_timeout(Duration::from_millis(100)).unwrap_err();
    assert_eq!(e, JoinError::Timeout { unfinished: 1 });
    assert!(
        t.elapsed() >= Duration::from_millis(100),
        "returned before its timeout"
    );
    let child = {
        let q = q.clone();
        fork(move || {
            q.get().unwrap();
            std::thread::sleep(Duration::from_millis(20));
            q.task_done().unwrap();
        })
    };
    q.join_timeout(Duration::from_secs(20)).unwrap();
    child.join();
}

/// A consumer SIGKILLed while it holds tasks it took and did not mark done abandons
/// them: once every other task is done, `join` returns `JoinError::Abandoned` with their
/// number instead of waiting for ever: the untimed `join` of a process that was already
/// joining when the consumer died, and a `join_timeout` after the death. While the
/// consumer lives its tasks are only unfinished (`join_timeout` times out), and the count
/// of abandoned tasks stays exact as the queue goes on with new tasks.
fn joinable_consumer_killed_holding_tasks_abandons_them() {
    let a = arena(1);
    let q = JoinableQueue::<u64>::new_in(&a, 8).unwrap();
    for v in 1..=5 {
        q.put(v).unwrap();
    }
    let took = Signal::new();
    let consumer = {
        let (q, took) = (q.clone(), &took);
        fork(move || {
            assert_eq!(q.get(), Ok(1));
            q.task_done().unwrap();
            // Tasks 2 and 3: taken, never marked done.
            assert_eq!(q.get(), Ok(2));
            assert_eq!(q.get(), Ok(3));
            took.notify();
            loop {
                std::thread::park();
            }
        })
    };
    assert!(took.wait());
    for v in 4..=5 {
        assert_eq!(q.get(), Ok(v));
        q.task_done().unwrap();
    }
    // A live holder's tasks are unfinished, not abandoned.
    assert_eq!(q.unfinished_tasks(), 2);
    assert_eq!(q.abandoned_tasks(), 0);
    let t = Instant::now();
    assert_eq!(
        q.join_timeout(Duration::from_millis(50)),
        Err(JoinError::Timeout { unfinished: 2 })
    );
    assert!(t.elapsed() >= Duration::from_millis(50), "returned early");
    // A process joins before the death (whether it is asleep in `join` or about to
    // call it when the kill lands, its untimed join must end).
    let joining = Signal::new();
    let joiner = {
        let (q, joining) = (q.clone(), &joining);
        fork(move || {
            joining.notify();
            assert_eq!(q.join(), Err(JoinError::Abandoned { tasks: 2 }));
        })
    };
    assert!(joining.wait());
    assert_eq!(consumer.kill(), -libc::SIGKILL);
    assert_eq!(
        q.join_timeout(Duration::from_secs(20)),
        Err(JoinError::Abandoned { tasks: 2 })
    );
    assert_eq!(joiner.wait(), 0, "the joiner's join");
    assert_eq!(q.abandoned_tasks(), 2);
    assert_eq!(q.unfinished_tasks(), 2, "abandoned tasks stay unfinished");
    // A new task is waited for (it is nobody's yet), then the same two are abandoned.
    q.put(6).unwrap();
    assert_eq!(
        q.join_timeout(Duration::from_millis(50)),
        Err(JoinError::Timeout { unfinished: 3 })
    );
    assert_eq!(q.get(), Ok(6));
    q.task_done().unwrap();
    assert_eq!(q.join(), Err(JoinError::Abandoned { tasks: 2 }));
    assert_eq!(q.unfinished_tasks(), 2);
}

/// A producer SIGKILLed while it waits in `put` on a full queue counted no task (a task
/// counts from the moment its value is in the queue): once the tasks in the queue are
/// done, `join` returns `Ok`, in a process that was joining all along and here, and the
/// queue holds nothing of the dead put. The queue goes on: a new task is put, taken and
/// done.
fn joinable_producer_killed_blocked_in_put_adds_no_task() {
    use shmproc::inspect::{self, Reading};
    let a = arena(1);
    let q = JoinableQueue::<u64>::create(&a, "jobs", 2).unwrap();
    let put_waiters = || {
        let snap = a.snapshot().unwrap();
        let o = snap.object("jobs").expect("the queue is listed");
        inspect::state(&snap, o)
            .unwrap()
            .into_iter()
            .find(|(k, _)| *k == "put_waiters")
            .expect("a field put_waiters")
            .1
    };
    q.put(1).unwrap();
    q.put(2).unwrap();
    assert_eq!(put_waiters(), Reading::Int(0));
    let producer = {
        let q = q.clone();
        fork(move || {
            let r = q.put(3);
            panic!("a put on a full queue returned: {r:?}");
        })
    };
    shmproc_testkit::eventually("the producer asleep in put", || {
        put_waiters() == Reading::Int(1)
    });
    assert_eq!(producer.kill(), -libc::SIGKILL);
    assert_eq!(q.unfinished_tasks(), 2, "the dead put counted a task");
    assert_eq!(q.qsize(), 2);
    let joining = Signal::new();
    let joiner = {
        let (q, joining) = (q.clone(), &joining);
        fork(move || {
            joining.notify();
            assert_eq!(q.join(), Ok(()));
        })
    };
    assert!(joining.wait());
    for v in 1..=2 {
        assert_eq!(q.get(), Ok(v));
        q.task_done().unwrap();
    }
    assert_eq!(q.try_get(), Err(GetError::Empty), "a value of the dead put");
    assert_eq!(q.join_timeout(Duration::from_secs(20)), Ok(()));
    assert_eq!(joiner.wait(), 0, "the joiner's join");
    assert_eq!(q.unfinished_tasks(), 0);
    assert_eq!(q.abandoned_tasks(), 0);
    q.put(4).unwrap();
    assert_eq!(q.unfinished_tasks(), 1);
    assert_eq!(q.get_timeout(Duration::from_secs(20)), Ok(4));
    q.task_done().unwrap();
    assert_eq!(q.join(), Ok(()));
    assert!(q.task_done().is_err(), "one more task done than was put");
}

#[cfg(feature = "serde")]
fn serde_values_across_processes() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Job {
        id: u32,
        name: String,
        tags: Vec<String>,
    }
    let q = ByteQueue::new_in(&arena(1), 4, 128).unwrap();
    let child = {
        let q = q.clone();
        fork(move || {
            for id in 0..100 {
                q.put_value(&Job {
                    id,
                    name: format!("job {id}"),
                    tags: vec!["a".into(); (id % 4) as usize],
                })
                .unwrap();
            }
            let huge = Job {
                id: 0,
                name: "x".repeat(500),
                tags: vec![],
            };
            // Longer than a slot (504 bytes of encoding): a block of its own.
            q.put_value(&huge).unwrap();
            q.close();
        })
    };
    for id in 0..100 {
        let j: Job = q.get_value().unwrap();
        assert_eq!(
            j,
            Job {
                id,
                name: format!("job {id}"),
                tags: vec!["a".into(); (id % 4) as usize]
            }
        );
    }
    let j: Job = q.get_value().unwrap();
    assert_eq!(j.name, "x".repeat(500));
    assert_eq!(q.get_value::<Job>(), Err(GetError::Disconnected));
    child.join();
}

/// The proof: serde messages of random sizes 0 .. 64 KiB, 4 producers and 4
/// consumers, each message exactly once, in per-producer order, its bytes checked.
/// `SHMPROC_OBJ_MESSAGES` sets the count (default 40,000 in a release build, 2,000 in a
/// debug one, where encoding 32 KiB on average word by word is slow; the full
/// run: `SHMPROC_OBJ_MESSAGES=1000000 cargo test --release --test queue`).
#[cfg(feature = "serde")]
fn obj_queue_4x4_random_sizes_exactly_once_in_order() {
    use shmproc::queue::ObjQueue;
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Msg {
        producer: u32,
        seq: u32,
        sum: u64,
        data: Vec<u64>,
    }
    let total: u64 = std::env::var("SHMPROC_OBJ_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            2_000
        } else {
            40_000
        });
    let per = total / PRODUCERS;
    // The message (producer, seq): its length and words, from a mix of the two.
    let words = |p: u64, s: u64| {
        let mut x = (p << 32 | s).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let n = (x >> 40) % (64 * 1024 / 8);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            })
            .collect::<Vec<u64>>()
    };
    let a = arena(16);
    let q = ObjQueue::<Msg>::new_in(&a, 64).unwrap();
    let base = a.used();
    let seen = Shared::new((PRODUCERS * per) as usize);
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let q = q.clone();
            fork(move || {
                for s in 0..per {
                    let data = words(p, s);
                    let sum = data.iter().fold(0u64, |a, &w| a.rotate_left(5) ^ w);
                    q.put(&Msg {
                        producer: p as u32,
                        seq: s as u32,
                        sum,
                        data,
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let q = q.clone();
            let (seen_ptr, len) = (seen.ptr as usize, seen.len);
            fork(move || {
                let seen = Shared {
                    ptr: seen_ptr as *mut u8,
                    len,
                };
                let mut last = [None::<u32>; PRODUCERS as usize];
                while let Ok(m) = q.get() {
                    let p = m.producer as usize;
                    assert!(
                        p < PRODUCERS as usize && u64::from(m.seq) < per,
                        "a message from nowhere"
                    );
                    assert!(
                        last[p] < Some(m.seq),
                        "producer {p}'s messages out of order"
                    );
                    last[p] = Some(m.seq);
                    let sum = m.data.iter().fold(0u64, |a, &w| a.rotate_left(5) ^ w);
                    assert_eq!(sum, m.sum, "a torn message");
                    assert_eq!(
                        m.data,
                        words(m.producer as u64, m.seq as u64),
                        "wrong bytes"
                    );
                    let i = p * per as usize + m.seq as usize;
                    assert_eq!(
                        seen.byte(i).fetch_add(1, Ordering::Relaxed),
                        0,
                        "a message twice"
                    );
                }
            })
        })
        .collect();
    for p in producers {
        p.join();
    }
    q.close();
    for c in consumers {
        c.join();
    }
    let missing = (0..(PRODUCERS * per) as usize)
        .filter(|&i| seen.byte(i).load(Ordering::Relaxed) != 1)
        .count();
    assert_eq!(missing, 0, "messages never delivered");
    assert_eq!(a.used(), base, "every block was freed by its consumer");
    println!(
        "  {} messages of 0 .. 64 KiB, 4 x 4, exactly once, in order",
        PRODUCERS * per
    );
}

/// The inspection of a queue shows a claim in progress and, once its holder is dead, the
/// holder's pid (`claims_held`, `dead_claimers`); the producer that next needs the slot
/// ends the claim (`lost`).
fn inspect_names_a_dead_claimer() {
    use shmproc::inspect::{self, Reading};
    let arena = Arena::anonymous(1 << 20).unwrap();
    let q = ByteQueue::create(&arena, "jobs", 4, 64).unwrap();
    q.put_bytes(b"first").unwrap();
    q.put_bytes(b"second").unwrap();
    let field = |name: &str| {
        let snap = arena.snapshot().unwrap();
        let o = snap.object("jobs").expect("the queue is listed");
        let state = inspect::state(&snap, o).unwrap();
        state
            .into_iter()
            .find(|(k, _)| *k == name)
            .unwrap_or_else(|| panic!("no field {name}"))
            .1
    };
    assert_eq!(field("claims_held"), Reading::Int(0));
    assert_eq!(field("dead_claimers"), Reading::None);
    let holding = Signal::new();
    let release = Signal::new();
    let child = {
        let q = q.clone();
        let (holding, release) = (&holding, &release);
        shmproc_testkit::fork(move || {
            let loan = q.read_loan().unwrap();
            assert_eq!(&loan[..], b"first");
            holding.notify();
            // Held until killed.
            release.wait();
            drop(loan);
        })
    };
    assert!(holding.wait());
    // A live holder: the claim is listed, nobody is dead.
    assert_eq!(field("claims_held"), Reading::Int(1));
    assert_eq!(field("dead_claimers"), Reading::None);
    let pid = child.pid;
    assert_eq!(child.kill(), -9);
    assert_eq!(field("claims_held"), Reading::Int(1));
    assert_eq!(field("dead_claimers"), Reading::Text(pid.to_string()));
    assert_eq!(field("lost"), Reading::Int(0));
    // Consumers pass a claimed slot (the next get takes the next message); the producer
    // that comes round to it, a lap later, waits at it and ends the dead claim.
    assert_eq!(
        q.get_bytes_timeout(Duration::from_secs(10)).unwrap(),
        b"second"
    );
    assert_eq!(field("claims_held"), Reading::Int(1));
    for m in [&b"third"[..], b"fourth", b"fifth"] {
        q.put_bytes_timeout(m, Duration::from_secs(10)).unwrap();
    }
    assert_eq!(field("claims_held"), Reading::Int(0));
    assert_eq!(field("dead_claimers"), Reading::None);
    assert_eq!(field("lost"), Reading::Int(1));
}
