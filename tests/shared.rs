//! Multi-process tests of `Value`, `Array`, `SharedDict` and `SharedMemory`.
//!
//! Every test runs in its own forked process (see `common`); children are real `fork`s,
//! and `attach_by_name_from_an_unrelated_process` re-executes this binary with
//! `SHMPROC_SHARED_ROLE` set, so `main` runs a child role instead of the test list.

use shmproc::arena::Arena;
use shmproc::shared::{
    cleanup_orphans, Array, DictError, SharedDict, SharedMemory, TypedDict, Value,
};
use shmproc::{Error, TryAcquireError};
use shmproc_testkit::fork;
use std::collections::HashMap;
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
        dict_matches_hashmap_model,
        dict_limits_are_clear_errors,
        dict_readers_never_see_torn_values,
        dict_countdown_update_with_is_exact,
        dict_readers_run_while_writer_holds_lock_and_dead_writer_recovers,
        dict_writer_killed_mid_write_recovers,
        dict_survives_a_peer_scribbling_on_it,
        typed_dict_across_processes,
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
    let db = SharedDict::new(8, 16, 16).unwrap();
    db.insert(b"count", &3u64.to_le_bytes()).unwrap();
    let sold = Value::new(0u64).unwrap();
    let buyers: Vec<_> = (0..10)
        .map(|_| {
            let (db, sold) = (db.clone(), sold.clone());
            fork(move || {
                // search: a lock-free read
                let left = u64::from_le_bytes(db.get(b"count").unwrap().try_into().unwrap());
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
    assert_eq!(db.get(b"count").unwrap(), 0u64.to_le_bytes());
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
// SharedDict

/// A tiny deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn dict_matches_hashmap_model() {
    let arena = Arena::anonymous(4 << 20).unwrap();
    let d = SharedDict::new_in(&arena, 64, 24, 40).unwrap();
    let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for step in 0..40_000u64 {
        let key = format!("k{}", rng.next() % 100).into_bytes();
        match rng.next() % 10 {
            0..=4 => {
                let v: Vec<u8> = (0..rng.next() % 41).map(|i| (i ^ step) as u8).collect();
                let r = d.insert(&key, &v);
                if model.len() == 64 && !model.contains_key(&key) {
                    assert_eq!(r, Err(DictError::Full { capacity: 64 }));
                } else {
                    assert_eq!(r, Ok(model.insert(key, v).is_some()), "step {step}");
                }
            }
            5..=7 => assert_eq!(d.remove(&key), model.remove(&key), "step {step}"),
            8 => assert_eq!(d.get(&key), model.get(&key).cloned(), "step {step}"),
            _ => {
                if step % 5_000 == 9 {
                    d.clear();
                    model.clear();
                }
                assert_eq!(d.contains(&key), model.contains_key(&key));
            }
        }
        assert_eq!(d.len(), model.len());
    }
    let mut snap = d.snapshot();
    snap.sort();
    let mut want: Vec<_> = model.into_iter().collect();
    want.sort();
    assert_eq!(snap, want);
}

fn dict_limits_are_clear_errors() {
    let d = SharedDict::new(2, 4, 4).unwrap();
    assert_eq!(
        d.insert(b"12345", b"v"),
        Err(DictError::KeyTooLong { len: 5, max: 4 })
    );
    assert_eq!(
        d.insert(b"k", b"12345"),
        Err(DictError::ValueTooLong { len: 5, max: 4 })
    );
    d.insert(b"a", b"").unwrap();
    d.insert(b"", b"e").unwrap();
    assert_eq!(d.get(b""), Some(b"e".to_vec()));
    assert_eq!(d.get(b"a"), Some(vec![]));
    let e = d.insert(b"c", b"x").unwrap_err();
    assert_eq!(e, DictError::Full { capacity: 2 });
    assert!(e.to_string().contains("full"));
    assert_eq!(d.get(b"far too long key"), None);
    assert!(!d.contains(b"far too long key"));
    assert!(d.update_with(b"a", |_| Some(b"toolong".to_vec())).is_err());
    assert_eq!(
        d.get(b"a"),
        Some(vec![]),
        "a failed update leaves the entry"
    );
    assert!(matches!(
        SharedDict::new(0, 4, 4),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        SharedDict::new(4, 0, 4),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        SharedDict::new(4, 4, usize::MAX),
        Err(Error::InvalidArgument(_))
    ));
    // Larger than an arena that may not grow past 1 MiB.
    let arena = Arena::builder()
        .size(1 << 20)
        .limit(1 << 20)
        .anonymous()
        .unwrap();
    assert!(matches!(
        SharedDict::new_in(&arena, 1 << 20, 64, 64),
        Err(Error::OutOfSpace { .. })
    ));
}

/// Writers store values whose 8-byte words all equal one number; readers in other
/// processes check that every value they get is uniform (never a mix of two writes) and
/// that every snapshot is too.
fn dict_readers_never_see_torn_values() {
    const KEYS: u64 = 8;
    const WORDS: usize = 16;
    let d = SharedDict::new(16, 8, WORDS * 8).unwrap();
    let value = |n: u64| -> Vec<u8> { (0..WORDS).flat_map(|_| n.to_le_bytes()).collect() };
    for k in 0..KEYS {
        d.insert(&k.to_le_bytes(), &value(0)).unwrap();
    }
    let done = Value::new(0u32).unwrap();
    let reads = Value::new(0u64).unwrap();
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let d = d.clone();
            fork(move || {
                for i in 1..=200_000u64 {
                    let k = (i + w) % KEYS;
                    d.insert(&k.to_le_bytes(), &value(i * 2 + w)).unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (d, done, reads) = (d.clone(), done.clone(), reads.clone());
            fork(move || {
                let mut buf = Vec::new();
                let mut n = 0u64;
                while done.load() == 0 || n < 1000 {
                    let k = n % KEYS;
                    assert!(d.get_into(&k.to_le_bytes(), &mut buf));
                    assert_eq!(buf.len(), WORDS * 8);
                    let first = &buf[..8];
                    assert!(buf.chunks(8).all(|c| c == first), "torn value {buf:?}");
                    if n % 256 == 0 {
                        let snap = d.snapshot();
                        assert_eq!(snap.len(), KEYS as usize);
                        for (_, v) in snap {
                            assert!(v.chunks(8).all(|c| c == &v[..8]));
                        }
                    }
                    n += 1;
                }
                reads.fetch_add(n);
            })
        })
        .collect();
    writers.into_iter().for_each(|c| c.join());
    done.store(1);
    readers.into_iter().for_each(|c| c.join());
    assert_eq!(d.len(), KEYS as usize);
    assert!(reads.load() >= 2000);
}

/// The seed's Manager-dict countdown: 10 processes do `num -= 1` with a read, a sleep
/// and a write; `update_with` makes it exact without a separate lock.
fn dict_countdown_update_with_is_exact() {
    let d = TypedDict::<[u8; 3], i64>::new(4).unwrap();
    d.insert(b"num", &100).unwrap();
    let kids: Vec<_> = (0..10)
        .map(|_| {
            let d = d.clone();
            fork(move || {
                for _ in 0..10 {
                    d.update_with(b"num", |v| {
                        std::thread::sleep(Duration::from_micros(200));
                        v.map(|n| n - 1)
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    kids.into_iter().for_each(|c| c.join());
    assert_eq!(d.get(b"num"), Some(0));
}

fn dict_readers_run_while_writer_holds_lock_and_dead_writer_recovers() {
    let d = SharedDict::new(8, 8, 8).unwrap();
    d.insert(b"a", b"1").unwrap();
    let inside = Value::new(0u32).unwrap();
    let (d2, in2) = (d.clone(), inside.clone());
    let writer = fork(move || {
        let _ = d2.update_with(b"a", |_| {
            in2.store(1);
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        });
    });
    while inside.load() == 0 {
        std::thread::yield_now();
    }
    // The writer holds the lock inside its closure; readers in other processes go on.
    let d3 = d.clone();
    fork(move || {
        for _ in 0..10_000 {
            assert_eq!(d3.get(b"a"), Some(b"1".to_vec()));
        }
        assert_eq!(d3.snapshot().len(), 1);
    })
    .join();
    writer.signal(libc::SIGKILL);
    assert_eq!(writer.wait(), -libc::SIGKILL);
    // The next writer takes the lock over from the dead one and carries on.
    assert_eq!(d.insert(b"a", b"2"), Ok(true));
    assert_eq!(d.insert(b"b", b"3"), Ok(false));
    assert_eq!(d.get(b"a"), Some(b"2".to_vec()));
    assert_eq!(d.len(), 2);
}

/// Writers are SIGKILLed at arbitrary points of a burst of inserts and removes (some die
/// holding the lock, some in the middle of a write, with the sequence odd); after each,
/// readers and writers carry on, and the dict's count matches its contents.
fn dict_writer_killed_mid_write_recovers() {
    let d = SharedDict::new(64, 8, 64).unwrap();
    let started = Value::new(0u64).unwrap();
    for round in 0..20u64 {
        let (d2, s2) = (d.clone(), started.clone());
        let writer = fork(move || {
            let mut i = 0u64;
            loop {
                let k = (i % 48).to_le_bytes();
                if i % 3 == 2 {
                    d2.remove(&k);
                } else {
                    d2.insert(&k, &[i as u8; 64]).unwrap();
                }
                if i == 100 {
                    s2.fetch_add(1);
                }
                i += 1;
            }
        });
        while started.load() <= round {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_micros(200 * (round % 5)));
        writer.signal(libc::SIGKILL);
        assert_eq!(writer.wait(), -libc::SIGKILL);
        // A reader in another process gets through (by the lock and a repair if needed).
        let d3 = d.clone();
        fork(move || {
            let snap = d3.snapshot();
            for (_, v) in &snap {
                assert_eq!(v.len(), 64);
            }
            let _ = d3.get(&1u64.to_le_bytes());
        })
        .join();
        d.insert(&999u64.to_le_bytes(), b"alive").unwrap();
        assert_eq!(d.len(), d.snapshot().len(), "round {round}");
        assert_eq!(d.remove(&999u64.to_le_bytes()), Some(b"alive".to_vec()));
    }
}

/// A buggy or hostile peer overwrites the whole table with garbage: calls may return
/// nonsense, but never read or write out of bounds, never panic, never hang; `clear`
/// restores a working dict. A damaged geometry makes `open` fail cleanly.
fn dict_survives_a_peer_scribbling_on_it() {
    let name = format!("shmproc-test-scribble-{}", std::process::id());
    let arena = Arena::create(&name, 1 << 20).unwrap();
    let d = SharedDict::create(&arena, "d", 8, 16, 24).unwrap();
    d.insert(b"k", b"v").unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap();
    let _ = arena.unlink();
    // Find the dict's state block by its geometry (at offset 32 of the block): the words
    // 8, 16, 16, 24 (capacity, key bytes, key bytes rounded, value bytes).
    let mut image = Vec::new();
    std::io::Read::read_to_end(&mut &file, &mut image).unwrap();
    let pattern: Vec<u8> = [8u32, 16, 16, 24]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    let at = (0..image.len() - 16)
        .step_by(16)
        .find(|&i| image[i..i + 16] == pattern[..])
        .expect("the dict's geometry is in the arena");
    let block = at as u64 - 32;
    let table_len = d.geometry().block_bytes() - 64;
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for _ in 0..50 {
        let garbage: Vec<u8> = (0..table_len).map(|_| rng.next() as u8).collect();
        std::os::unix::fs::FileExt::write_all_at(&file, &garbage, block + 64).unwrap();
        for k in 0..20u8 {
            let _ = d.get(&[k]);
            let _ = d.contains(&[k; 16]);
            let _ = d.insert(&[k], b"x");
            let _ = d.remove(&[k, k]);
        }
        for (k, v) in d.snapshot() {
            assert!(k.len() <= 16 && v.len() <= 24);
        }
        assert!(d.len() <= 8);
    }
    d.clear();
    d.insert(b"k", b"again").unwrap();
    assert_eq!(d.get(b"k"), Some(b"again".to_vec()));
    assert_eq!(d.snapshot().len(), 1);
    // Geometry: slots no longer a power of two.
    std::os::unix::fs::FileExt::write_all_at(&file, &7u32.to_le_bytes(), block + 36).unwrap();
    assert!(matches!(
        SharedDict::open(&arena, "d"),
        Err(Error::Corrupt(_))
    ));
}

fn typed_dict_across_processes() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let d = TypedDict::<u32, [u64; 2]>::create(&arena, "scores", 100).unwrap();
    let kids: Vec<_> = (0..4u32)
        .map(|w| {
            let arena = arena.clone();
            fork(move || {
                let d = TypedDict::<u32, [u64; 2]>::open(&arena, "scores").unwrap();
                for k in 0..25 {
                    d.insert(&(w * 25 + k), &[u64::from(w), u64::from(k)])
                        .unwrap();
                }
                assert!(TypedDict::<u64, [u64; 2]>::open(&arena, "scores").is_err());
                assert!(SharedDict::open(&arena, "scores").is_err());
            })
        })
        .collect();
    kids.into_iter().for_each(|c| c.join());
    assert_eq!(d.len(), 100);
    assert_eq!(d.get(&57), Some([2, 7]));
    assert_eq!(d.remove(&57), Some([2, 7]));
    assert!(!d.contains(&57));
    assert_eq!(d.snapshot().len(), 99);
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
    assert!(matches!(SharedMemory::open(&name), Err(Error::NotFound(_))));
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
    assert!(matches!(s.unlink(), Err(Error::NotFound(_))));
    assert!(matches!(SharedMemory::open(&name), Err(Error::NotFound(_))));
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
    let d = SharedDict::create(&arena, "replies", 4, 16, 32).unwrap();
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
    assert_eq!(d.get(b"hello"), Some(b"hello world".to_vec()));
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
        Err(Error::NotFound(_))
    ));
    assert!(SharedMemory::open(&kept).is_ok());
    SharedMemory::unlink_name(&kept).unwrap();
    alive.unlink().unwrap();
}
