//! Multi-process tests of `Value`, `Array` and `SharedMemory` (and the seeds' ticket scene
//! with a `SharedDict`; the dict's own tests are in `tests/dict.rs`).
//!
//! Every test runs in its own forked process (see `common`); children are real `fork`s,
//! and `attach_by_name_from_an_unrelated_process` re-executes this binary with
//! `SHMPROC_SHARED_ROLE` set, so `main` runs a child role instead of the test list.

use shmproc::arena::Arena;
use shmproc::shared::{cleanup_orphans, Array, SharedDict, SharedMemory, Value};
use shmproc::{Error, TryAcquireError};
use shmproc_testkit::fork;
use std::time::{Duration, Instant};

const ROLE: &str = "SHMPROC_SHARED_ROLE";

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        std::process::exit(child_role(&role));
    }
    shmproc_testkit::run(&shmproc_testkit::tests![
        value_fetch_add_8x100k_is_exact,
        value_locked_pair_stays_consistent,
        value_raw_and_named,
        value_lock_holder_killed_reports_owner_died,
        tickets_with_shared_dict_sell_exactly_3,
        tickets_with_locked_value_sell_exactly_3,
        child_doubles_array_in_place,
        array_bounds_and_slices,
        shared_memory_errors,
        attach_by_name_from_an_unrelated_process,
        orphaned_segment_is_cleaned_up,
    ]);
}

// ---------------------------------------------------------------------------------------
// Value

fn value_fetch_add_8x100k_is_exact() {
    let v = Value::new(0u64).unwrap();
    let kids: Vec<_> = (0..8)
        .map(|_| {
            let v = v.clone();
            fork(move || {
                for _ in 0..100_000 {
                    v.fetch_add(1);
                }
            })
        })
        .collect();
    kids.into_iter().for_each(|c| c.join());
    assert_eq!(v.load(), 800_000);
    assert_eq!(v.get(), 800_000);
}

fn value_locked_pair_stays_consistent() {
    // `(u64, u64)` is not `Pod` (tuples may have padding); `[u64; 2]` is the same pair.
    let v = Value::new([0u64; 2]).unwrap();
    let kids: Vec<_> = (0..8)
        .map(|i| {
            let v = v.clone();
            fork(move || {
                for _ in 0..10_000 {
                    let mut g = v.get_lock().expect("nobody died");
                    assert_eq!(g[0], g[1], "pair torn");
                    g[0] += 1;
                    // Widen the window for a second writer, without sleeping.
                    std::hint::black_box(&mut *g);
                    g[1] += 1;
                    drop(g);
                    if i % 2 == 0 {
                        let [a, b] = v.get(); // locked read
                        assert_eq!(a, b);
                    }
                }
            })
        })
        .collect();
    kids.into_iter().for_each(|c| c.join());
    assert_eq!(v.get(), [80_000, 80_000]);
}

fn value_raw_and_named() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let raw = Value::raw_in(&arena, -5i32).unwrap();
    assert!(raw.is_raw());
    raw.set(raw.get() * 2);
    assert_eq!(raw.load(), -10);
    assert_eq!(raw.fetch_add(3), -10);
    assert_eq!(raw.fetch_sub(10), -7);
    assert_eq!(raw.swap(1), -17);
    assert_eq!(raw.fetch_or(6), 1);
    assert_eq!(raw.fetch_and(3), 7);
    assert_eq!(raw.fetch_xor(1), 3);
    assert_eq!(raw.load(), 2);

    let named = Value::create(&arena, "counter", 7u64).unwrap();
    let c = fork(move || {
        let again = Value::<u64>::open(&arena, "counter").unwrap();
        assert_eq!(again.get(), 7);
        again.set(8);
        assert!(matches!(
            Value::<u32>::open(&arena, "counter"),
            Err(Error::WrongType { .. })
        ));
        assert!(matches!(
            Array::<u64>::open(&arena, "counter"),
            Err(Error::WrongType { .. })
        ));
        assert!(matches!(
            Value::<u64>::open(&arena, "nope"),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            Value::create(&arena, "counter", 0u64),
            Err(Error::AlreadyExists(_))
        ));
    });
    c.join();
    assert_eq!(named.get(), 8);
}

fn value_lock_holder_killed_reports_owner_died() {
    let v = Value::new([1u64, 1]).unwrap();
    let ready = Value::new(0u32).unwrap();
    let (v2, r2) = (v.clone(), ready.clone());
    let child = fork(move || {
        let mut g = v2.get_lock().unwrap();
        g[0] = 99; // half an update, then death
        r2.store(1);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    while ready.load() == 0 {
        std::thread::yield_now();
    }
    child.signal(libc::SIGKILL);
    assert_eq!(child.wait(), -libc::SIGKILL);
    match v.get_lock() {
        Err(died) => {
            let mut g = died.into_guard();
            assert_eq!(*g, [99, 1]);
            g[1] = 99; // repair
        }
        Ok(_) => panic!("the death of the holder was not reported"),
    }
    assert_eq!(v.get(), [99, 99]);
}

// ---------------------------------------------------------------------------------------
// The ticket-selling scenario (seeds: 10 buyers, 3 tickets).

fn tickets_with_shared_dict_sell_exactly_3() {
    let db = SharedDict::new().unwrap();
    db.insert(b"count", &3u64.to_le_bytes()).unwrap();
    let sold = Value::new(0u64).unwrap();
    let buyers: Vec<_> = (0..10)
        .map(|_| {
            let (db, sold) = (db.clone(), sold.clone());
            fork(move || {
                // search: a lock-free read
                let left = db.get(b"count").unwrap().expect("the count is there");
                let left = u64::from_le_bytes(left.try_into().unwrap());
                assert!(left <= 3);
                // get: read, "network delay", write, all in one atomic step
                let mut bought = false;
                db.update_with(b"count", |v| {
                    let n = u64::from_le_bytes(v?.try_into().ok()?);
                    std::thread::sleep(Duration::from_millis(2));
                    bought = n > 0;
                    Some(n.saturating_sub(1).to_le_bytes().to_vec())
                })
                .unwrap();
                if bought {
                    sold.fetch_add(1);
                }
            })
        })
        .collect();
    buyers.into_iter().for_each(|c| c.join());
    assert_eq!(sold.load(), 3);
    assert_eq!(db.get(b"count"), Ok(Some(0u64.to_le_bytes().to_vec())));
}

fn tickets_with_locked_value_sell_exactly_3() {
    let tickets = Value::new(3u32).unwrap();
    let sold = Value::new(0u32).unwrap();
    let buyers: Vec<_> = (0..10)
        .map(|_| {
            let (tickets, sold) = (tickets.clone(), sold.clone());
            fork(move || {
                let mut g = tickets.get_lock().unwrap();
                let n = *g;
                std::thread::sleep(Duration::from_millis(2));
                if n > 0 {
                    *g = n - 1;
                    sold.fetch_add(1);
                }
            })
        })
        .collect();
    buyers.into_iter().for_each(|c| c.join());
    assert_eq!((tickets.get(), sold.load()), (0, 3));
}

// ---------------------------------------------------------------------------------------
// Array

fn child_doubles_array_in_place() {
    let init: Vec<u64> = (0..1000).collect();
    let a = Array::from_slice(&init).unwrap();
    let a2 = a.clone();
    fork(move || {
        for x in a2.get_lock().unwrap().iter_mut() {
            *x *= 2;
        }
    })
    .join();
    let got = a.to_vec();
    assert_eq!(got.len(), 1000);
    assert!(got.iter().enumerate().all(|(i, &x)| x == 2 * i as u64));
    assert_eq!(got.iter().sum::<u64>(), 999 * 1000);
}

fn array_bounds_and_slices() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let a = Array::<u16>::new_in(&arena, 5).unwrap();
    assert_eq!(a.len(), 5);
    assert_eq!(a.to_vec(), [0; 5]);
    a.write(1, &[1, 2, 3]).unwrap();
    assert_eq!(a.get(2), Some(2));
    assert_eq!(a.get(5), None);
    let e = a.set(5, 1).unwrap_err();
    assert_eq!((e.start, e.len), (5, 5));
    assert!(a.write(4, &[1, 2]).is_err());
    assert!(a.write(usize::MAX, &[1]).is_err());
    let mut out = [9u16; 2];
    assert!(a.read(4, &mut out).is_err());
    assert_eq!(out, [9, 9], "a failed read leaves the buffer alone");
    assert_eq!(a.to_vec(), [0, 1, 2, 3, 0]);
    let g = a.get_lock().unwrap();
    assert!(matches!(a.try_get_lock(), Err(TryAcquireError::WouldBlock)));
    let t = Instant::now();
    assert!(matches!(
        a.get_lock_timeout(Duration::from_millis(20)),
        Err(TryAcquireError::WouldBlock)
    ));
    assert!(t.elapsed() >= Duration::from_millis(20));
    drop(g);
    a.try_get_lock().unwrap()[0] = 4;
    assert_eq!(a.get(0), Some(4));
    a.set(0, 0).unwrap();
    let empty = Array::<u64>::new_in(&arena, 0).unwrap();
    assert!(empty.is_empty() && empty.to_vec().is_empty());
    let raw = Array::raw_in(&arena, &[1u8, 2]).unwrap();
    assert!(raw.is_raw());
    Array::create(&arena, "xs", &[1.0f32, 2.0]).unwrap();
    assert_eq!(
        Array::<f32>::open(&arena, "xs").unwrap().to_vec(),
        [1.0, 2.0]
    );
    assert!(Value::<f32>::open(&arena, "xs").is_err());
}

// ---------------------------------------------------------------------------------------
// SharedMemory

fn shared_memory_errors() {
    assert!(matches!(
        SharedMemory::create(None, 0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        SharedMemory::create(Some("a/b"), 1),
        Err(Error::InvalidName(_))
    ));
    assert!(matches!(
        SharedMemory::create(Some("a\0b"), 1),
        Err(Error::InvalidName(_))
    ));
    assert!(matches!(
        SharedMemory::create(Some(""), 1),
        Err(Error::InvalidName(_))
    ));
    assert!(matches!(
        SharedMemory::open("a/b"),
        Err(Error::InvalidName(_))
    ));
    let name = format!("shmproc-test-errors-{}", std::process::id());
    assert!(matches!(
        SharedMemory::open(&name),
        Err(Error::NoSuchSegment(_))
    ));
    let s = SharedMemory::create(Some(&name), 10).unwrap();
    assert_eq!((s.name(), s.size()), (name.as_str(), 10));
    assert!(matches!(
        SharedMemory::create(Some(&name), 10),
        Err(Error::AlreadyExists(_))
    ));
    assert!(s.write(8, b"abc").is_err());
    assert!(s.read(usize::MAX, &mut [0]).is_err());
    assert_eq!(s.as_ptr() as usize % 64, 0);
    // An arena is a /dev/shm file too, but not a segment.
    let arena_name = format!("shmproc-test-notseg-{}", std::process::id());
    let arena = Arena::create(&arena_name, 1 << 20).unwrap();
    assert!(matches!(
        SharedMemory::open(&arena_name),
        Err(Error::WrongType { .. })
    ));
    arena.unlink().unwrap();
    s.unlink().unwrap();
    assert!(matches!(s.unlink(), Err(Error::NoSuchSegment(_))));
    assert!(matches!(
        SharedMemory::open(&name),
        Err(Error::NoSuchSegment(_))
    ));
    // The mapping outlives the name.
    s.write(0, b"still here").unwrap();
    s.close();
}

fn child_role(role: &str) -> i32 {
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let (what, name) = role.split_once(':').ok_or("bad role")?;
        match what {
            "attach" => {
                let seg = SharedMemory::open(name)?;
                let mut buf = vec![0u8; seg.size()];
                seg.read(0, &mut buf)?;
                let sum: u64 = buf.iter().map(|&b| u64::from(b)).sum();
                // Reply: the checksum at the end, doubled bytes at the start.
                let len = seg.size();
                seg.write(len - 8, &sum.to_le_bytes())?;
                for (i, b) in buf[..16].iter().enumerate() {
                    seg.write(i, &[b.wrapping_mul(2)])?;
                }
                // And a dict in a named arena, opened by name.
                let arena = Arena::open(&format!("{name}-arena"))?;
                let d = SharedDict::open(&arena, "replies")?;
                d.update_with(b"hello", |v| {
                    let mut v = v?.to_vec();
                    v.extend_from_slice(b" world");
                    Some(v)
                })?;
                Ok(())
            }
            _ => Err("unknown role".into()),
        }
    };
    match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("child role {role:?} failed: {e}");
            1
        }
    }
}

fn attach_by_name_from_an_unrelated_process() {
    let seg = SharedMemory::create(None, 4096).unwrap();
    let data: Vec<u8> = (0..4088).map(|i| (i % 251) as u8).collect();
    seg.write(0, &data).unwrap();
    let arena_name = format!("{}-arena", seg.name());
    let arena = Arena::create(&arena_name, 1 << 20).unwrap();
    let d = SharedDict::create(&arena, "replies").unwrap();
    d.insert(b"hello", b"hello").unwrap();

    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .env(ROLE, format!("attach:{}", seg.name()))
        .status()
        .unwrap();
    let _ = seg.unlink();
    let _ = arena.unlink();
    assert!(status.success(), "child failed: {status}");

    let mut sum = [0u8; 8];
    seg.read(4088, &mut sum).unwrap();
    let want: u64 = data.iter().map(|&b| u64::from(b)).sum();
    assert_eq!(u64::from_le_bytes(sum), want);
    let mut head = [0u8; 16];
    seg.read(0, &mut head).unwrap();
    assert!(head.iter().enumerate().all(|(i, &b)| b == (i as u8) * 2));
    assert_eq!(d.get(b"hello"), Ok(Some(b"hello world".to_vec())));
}

fn orphaned_segment_is_cleaned_up() {
    let pid = std::process::id();
    let orphan = format!("shmproc-test-orphan-{pid}");
    let kept = format!("shmproc-test-kept-{pid}");
    let orphan2 = orphan.clone();
    let kept2 = kept.clone();
    // The creator is killed before it can unlink.
    let creator = fork(move || {
        let a = SharedMemory::create(Some(&orphan2), 100).unwrap();
        a.write(0, b"leak").unwrap();
        let b = SharedMemory::create(Some(&kept2), 100).unwrap();
        b.persist();
        // SAFETY: immediate exit of a forked test child, as if killed.
        unsafe { libc::raise(libc::SIGKILL) };
    });
    assert_eq!(creator.wait(), -libc::SIGKILL);
    let alive = SharedMemory::create(None, 100).unwrap();
    // Both segments are still there and attachable ...
    assert!(SharedMemory::open(&orphan).is_ok());
    // ... until the sweep.
    let removed = cleanup_orphans().unwrap();
    assert!(removed.contains(&orphan), "{removed:?}");
    assert!(!removed.contains(&kept));
    assert!(!removed.iter().any(|n| n == alive.name()));
    assert!(matches!(
        SharedMemory::open(&orphan),
        Err(Error::NoSuchSegment(_))
    ));
    assert!(SharedMemory::open(&kept).is_ok());
    SharedMemory::unlink_name(&kept).unwrap();
    alive.unlink().unwrap();
}
