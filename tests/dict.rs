//! Multi-process tests of `SharedDict`, `TypedDict` and `SerdeDict`: growth to a million
//! entries under four readers that check every value, churn in four processes (values up to 64 KiB),
//! values of any size, torn-value checks, recovery of a dead writer, a peer that
//! scribbles on the dict, the typed and serde layers across processes, and the three
//! kinds travelling over a connection.
//!
//! Every test runs in its own forked process under the harness's watchdog; children are
//! real `fork`s.

use shmproc::shared::{DictError, SharedDict, TypedDict, Value};
use shmproc::{Arena, Error};
use shmproc_testkit::{fork, SharedPage, Signal};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[path = "rounds/dict_kills.rs"]
mod dict_kills;
use dict_kills::{check, mix, pattern, value, warm, Rng};

shmproc_testkit::main!(
    grows_to_a_million_while_four_readers_check_every_value,
    churn_in_four_processes_returns_to_baseline,
    four_processes_churn_one_dict_with_values_up_to_64k,
    values_of_any_size,
    matches_a_hashmap_model,
    out_of_space_is_an_error_and_changes_nothing,
    readers_never_see_torn_values,
    countdown_update_with_is_exact,
    readers_run_while_a_writer_holds_the_lock_and_a_dead_writer_is_repaired,
    survives_a_peer_scribbling_on_it,
    typed_dict_across_processes,
    #[cfg(feature = "serde")]
    serde_dict_across_processes,
    #[cfg(feature = "serde")]
    dicts_travel_over_a_connection,
);

// ---------------------------------------------------------------------------------------
// Growth under readers.

/// One writer process grows the dict from 16 entries to 1,000,000; four reader processes
/// meanwhile read keys the writer has published (each must be there, with an intact value
/// for that very key) and keys it may not have reached yet (absent, or intact; once one
/// is seen, it and every key before it must be there in every later read). The writer
/// publishes its progress after each 1024 inserts; readers check every value they read.
/// At the end every key is there once, with its value.
fn grows_to_a_million_while_four_readers_check_every_value() {
    const N: u64 = 1_000_000;
    let arena = Arena::anonymous(64 << 20).unwrap();
    let d = TypedDict::<u64, [u64; 3]>::new_in(&arena).unwrap();
    let entry = |k: u64| [k, mix(k), mix(k ^ 0xabcd)];
    for k in 0..16 {
        d.insert(&k, &entry(k)).unwrap();
    }
    let page = SharedPage::new(4096);
    let (written, done, reads) = (page.atomic(0), page.atomic(1), page.atomic(2));
    written.store(16, Ordering::SeqCst);
    let started = Instant::now();
    let writer = {
        let d = d.clone();
        fork(move || {
            for k in 16..N {
                assert_eq!(d.insert(&k, &entry(k)), Ok(false));
                if k % 1024 == 0 {
                    // Release: pairs with the readers' Acquire load: a reader that sees k
                    // sees every insert before it.
                    written.store(k + 1, Ordering::Release);
                }
            }
            written.store(N, Ordering::Release);
            done.store(1, Ordering::Release);
        })
    };
    let readers: Vec<_> = (0..4u64)
        .map(|r| {
            let d = d.clone();
            fork(move || {
                let mut rng = Rng(0x9e37_79b9 + r);
                let mut n = 0u64;
                // Keys below this one were seen (the writer inserts in order, so once a
                // key is seen every key before it must be there too, and stay there).
                let mut seen = 0u64;
                loop {
                    // Acquire: pairs with the writer's Release store.
                    let finished = done.load(Ordering::Acquire) == 1;
                    let w = written.load(Ordering::Acquire).max(seen);
                    for _ in 0..256 {
                        let k = rng.next() % w;
                        assert_eq!(
                            d.get(&k),
                            Ok(Some(entry(k))),
                            "key {k} below {w}, seen before"
                        );
                        // A key the writer may be inserting right now.
                        let ahead = w + rng.next() % 4096;
                        if let Some(v) = d.get(&ahead).unwrap() {
                            assert_eq!(v, entry(ahead), "key {ahead} ahead of {w}");
                            seen = seen.max(ahead + 1);
                        }
                        n += 2;
                    }
                    if finished {
                        break;
                    }
                }
                reads.fetch_add(n, Ordering::SeqCst);
            })
        })
        .collect();
    writer.join();
    readers.into_iter().for_each(|c| c.join());
    let took = started.elapsed();
    assert_eq!(d.len(), N as usize);
    let items = d.items().unwrap();
    assert_eq!(items.len(), N as usize);
    let mut seen = vec![false; N as usize];
    for (k, v) in items {
        assert_eq!(v, entry(k));
        assert!(
            !std::mem::replace(&mut seen[k as usize], true),
            "key {k} twice"
        );
    }
    println!(
        "  ({N} inserts under 4 readers in {took:.1?}: {} checked reads, index of {} entries)",
        reads.load(Ordering::SeqCst),
        d.capacity()
    );
    assert!(reads.load(Ordering::SeqCst) >= 4 * 512);
}

/// Four processes make, fill (to random sizes, values of random sizes), partly empty,
/// clear and drop dicts of the three kinds; the arena ends where it began.
fn churn_in_four_processes_returns_to_baseline() {
    let (arena, base) = warm(16 << 20);
    let kids: Vec<_> = (0..4u64)
        .map(|p| {
            let arena = arena.clone();
            fork(move || {
                let mut rng = Rng(0x1234_5678 + p);
                for round in 0..100 {
                    let n = rng.next() % 2000;
                    let d = if round % 3 == 0 {
                        SharedDict::with_capacity_in(&arena, n as usize).unwrap()
                    } else {
                        SharedDict::new_in(&arena).unwrap()
                    };
                    for k in 0..n {
                        let len = 24 + (rng.next() % 300) as usize;
                        d.insert(&k.to_le_bytes(), &value(k, round, len)).unwrap();
                    }
                    for k in (0..n).step_by(3) {
                        assert_eq!(check(&d.remove(&k.to_le_bytes()).unwrap().unwrap()).0, k);
                    }
                    if round % 2 == 0 {
                        d.clear().unwrap();
                        d.insert(b"again", &value(1, 1, 24)).unwrap();
                    }
                    let t = TypedDict::<u32, [u8; 40]>::new_in(&arena).unwrap();
                    t.update((0..(n as u32 % 500)).map(|k| (k, [k as u8; 40])))
                        .unwrap();
                    #[cfg(feature = "serde")]
                    {
                        let s = shmproc::SerdeDict::<String, Vec<u64>>::new_in(&arena).unwrap();
                        s.insert(&format!("r{round}"), &vec![n; (n % 50) as usize])
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    kids.into_iter().for_each(|c| c.join());
    arena.sweep().unwrap();
    assert_eq!(arena.used(), base);
}

/// The bytes of key `k` at `version`, `len` bytes, any length: a [`value`] from 24 bytes
/// on, a pattern below (checked by comparison).
fn bytes_of(k: u64, version: u64, len: usize) -> Vec<u8> {
    if len >= 24 {
        value(k, version, len)
    } else {
        pattern(k, version)[..len].to_vec()
    }
}

/// Four processes share one dict: each inserts, replaces and removes its own 256 keys
/// with values of 0 to 64 KiB (its model says what each must hold: every get and every
/// remove is checked against it), and reads the others' keys (any value it gets of 24
/// bytes or more must be intact and of that key). At the end each removes what it has
/// left; the dict is empty, and once dropped the arena's bytes and blocks are back to
/// their baseline.
fn four_processes_churn_one_dict_with_values_up_to_64k() {
    let (arena, base) = warm(16 << 20);
    let base_blocks = arena.stats().blocks;
    let d = SharedDict::new_in(&arena).unwrap();
    let kids: Vec<_> = (0..4u64)
        .map(|p| {
            let d = d.clone();
            fork(move || {
                let mut rng = Rng(0x5151_0000 + p);
                let mut model: HashMap<u64, (u64, usize)> = HashMap::new();
                let mut buf = Vec::new();
                for i in 0..1500u64 {
                    let k = (p << 32) | (rng.next() % 256);
                    let key = k.to_le_bytes();
                    match rng.next() % 10 {
                        0..=4 => {
                            let len = match rng.next() % 8 {
                                0 => 0,
                                1 => (rng.next() % 24) as usize,
                                _ => (rng.next() % (64 << 10)) as usize,
                            };
                            let had = model.insert(k, (i, len)).is_some();
                            assert_eq!(d.insert(&key, &bytes_of(k, i, len)), Ok(had));
                        }
                        5..=6 => assert_eq!(
                            d.remove(&key),
                            Ok(model.remove(&k).map(|(v, len)| bytes_of(k, v, len)))
                        ),
                        7..=8 => {
                            let want = model.get(&k).map(|&(v, len)| bytes_of(k, v, len));
                            assert_eq!(d.get_into(&key, &mut buf), Ok(want.is_some()));
                            if let Some(want) = want {
                                assert!(buf == want, "key {k:#x}: not what was stored");
                            }
                        }
                        _ => {
                            let other = ((rng.next() % 4) << 32) | (rng.next() % 256);
                            if let Some(v) = d.get(&other.to_le_bytes()).unwrap() {
                                if v.len() >= 24 {
                                    assert_eq!(check(&v).0, other);
                                }
                            }
                        }
                    }
                }
                for (k, (v, len)) in model {
                    assert_eq!(d.remove(&k.to_le_bytes()), Ok(Some(bytes_of(k, v, len))));
                }
            })
        })
        .collect();
    kids.into_iter().for_each(|c| c.join());
    assert_eq!(d.len(), 0);
    assert!(d.items().unwrap().is_empty());
    drop(d);
    arena.sweep().unwrap();
    assert_eq!(arena.used(), base);
    assert_eq!(arena.stats().blocks, base_blocks);
}

/// Keys and values of any size: an empty key with a 1 MiB value, an empty value (there,
/// not absent), a 100 KB key; a child process reads them all and replaces the 1 MiB value
/// with 3 MiB; the parent sees it. Then every byte goes back to the arena.
fn values_of_any_size() {
    let (arena, base) = warm(1 << 20);
    let d = SharedDict::new_in(&arena).unwrap();
    let big_key = bytes_of(9, 9, 100_000);
    d.insert(b"", &value(0, 1, 1 << 20)).unwrap();
    d.insert(b"nothing", b"").unwrap();
    d.insert(&big_key, b"k").unwrap();
    d.insert(b"", &value(0, 2, 1 << 20)).unwrap(); // a new 1 MiB value
    let child = {
        let d = d.clone();
        let big_key = big_key.clone();
        fork(move || {
            let v = d.get(b"").unwrap().unwrap();
            assert_eq!((v.len(), check(&v)), (1 << 20, (0, 2)));
            assert_eq!(d.get(b"nothing"), Ok(Some(Vec::new())));
            assert_eq!(d.contains_key(b"nothing"), Ok(true));
            assert_eq!(d.get(&big_key), Ok(Some(b"k".to_vec())));
            assert_eq!(d.get(&big_key[..99_999]), Ok(None));
            assert_eq!(d.insert(b"", &value(0, 3, 3 << 20)), Ok(true));
            assert_eq!(d.remove(&big_key), Ok(Some(b"k".to_vec())));
        })
    };
    child.join();
    let v = d.get(b"").unwrap().unwrap();
    assert_eq!((v.len(), check(&v)), (3 << 20, (0, 3)));
    assert_eq!(d.contains_key(&big_key), Ok(false));
    assert_eq!(d.pop(b"nothing"), Ok(Some(Vec::new())));
    assert_eq!(d.get(b"nothing"), Ok(None));
    assert_eq!(d.len(), 1);
    let items = d.items().unwrap();
    assert_eq!(items.len(), 1);
    assert!(items[0].0.is_empty() && items[0].1 == v);
    drop(d);
    arena.sweep().unwrap();
    assert_eq!(arena.used(), base);
}

/// Anonymous dicts made after a child was forked reach it only as handles sent over a
/// connection (`travel`): it uses all three, the parent sees every effect; a typed dict
/// received as another type is refused.
#[cfg(feature = "serde")]
fn dicts_travel_over_a_connection() {
    use shmproc::connection::{Address, Client, Listener};
    use shmproc::process::travel::TravelError;
    use shmproc::SerdeDict;
    let address = Address::abstract_name(format!("shmproc-test-dict-{}", std::process::id()));
    let listener = Listener::bind(&address, None).unwrap();
    let child = {
        let address = address.clone();
        fork(move || {
            let conn = Client::connect(&address, None).unwrap();
            let d: SharedDict = conn.recv_handle().unwrap();
            let t: TypedDict<u64, [u64; 2]> = conn.recv_handle().unwrap();
            let s: SerdeDict<String, Vec<u32>> = conn.recv_handle().unwrap();
            assert!(matches!(
                conn.recv_handle::<TypedDict<u32, [u64; 2]>>(),
                Err(TravelError::WrongType { .. })
            ));
            assert_eq!(d.get(b"from"), Ok(Some(b"parent".to_vec())));
            d.insert(b"from", b"child").unwrap();
            for k in 0..1000u64 {
                t.insert(&k, &[k, k * k]).unwrap();
            }
            s.update_with(&"seen".to_string(), |v| {
                let mut v = v.unwrap_or_default();
                v.push(7);
                Some(v)
            })
            .unwrap();
            conn.send_bytes(b"done").unwrap();
        })
    };
    let conn = listener.accept().unwrap();
    let arena = Arena::anonymous(1 << 20).unwrap();
    let d = SharedDict::new_in(&arena).unwrap();
    d.insert(b"from", b"parent").unwrap();
    let t = TypedDict::<u64, [u64; 2]>::new_in(&arena).unwrap();
    let s = SerdeDict::<String, Vec<u32>>::new_in(&arena).unwrap();
    s.insert(&"seen".to_string(), &vec![1]).unwrap();
    conn.send_handle(&d).unwrap();
    conn.send_handle(&t).unwrap();
    conn.send_handle(&s).unwrap();
    conn.send_handle(&t).unwrap(); // received as TypedDict<u32, _>: refused
    assert_eq!(conn.recv_bytes().unwrap(), b"done");
    child.join();
    assert_eq!(d.get(b"from"), Ok(Some(b"child".to_vec())));
    assert_eq!(t.len(), 1000);
    assert_eq!(t.get(&999), Ok(Some([999, 998_001])));
    assert_eq!(s.get(&"seen".to_string()).unwrap(), Some(vec![1, 7]));
}

// ---------------------------------------------------------------------------------------
// Semantics.

fn matches_a_hashmap_model() {
    let arena = Arena::anonymous(4 << 20).unwrap();
    let d = SharedDict::new_in(&arena).unwrap();
    let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for step in 0..40_000u64 {
        let key = format!("k{}", rng.next() % 500).into_bytes();
        match rng.next() % 12 {
            0..=4 => {
                let v: Vec<u8> = (0..rng.next() % 300).map(|i| (i ^ step) as u8).collect();
                assert_eq!(
                    d.insert(&key, &v),
                    Ok(model.insert(key, v).is_some()),
                    "step {step}"
                );
            }
            5..=6 => assert_eq!(d.remove(&key), Ok(model.remove(&key)), "step {step}"),
            7 => assert_eq!(d.get(&key), Ok(model.get(&key).cloned()), "step {step}"),
            8 => {
                let v = d.setdefault(&key, b"dflt").unwrap();
                assert_eq!(&v, model.entry(key).or_insert(b"dflt".to_vec()));
            }
            9 => match d.popitem().unwrap() {
                Some((k, v)) => assert_eq!(model.remove(&k), Some(v)),
                None => assert!(model.is_empty()),
            },
            10 if step % 5_000 == 10 => {
                d.clear().unwrap();
                model.clear();
            }
            _ => assert_eq!(d.contains_key(&key), Ok(model.contains_key(&key))),
        }
        assert_eq!(d.len(), model.len());
    }
    let mut items = d.items().unwrap();
    items.sort();
    let mut want: Vec<_> = model.into_iter().collect();
    want.sort();
    assert_eq!(items, want);
    let (mut keys, mut values) = (d.keys().unwrap(), d.values().unwrap());
    keys.sort();
    values.sort();
    assert_eq!(
        keys,
        want.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()
    );
    let mut wv: Vec<_> = want.into_iter().map(|(_, v)| v).collect();
    wv.sort();
    assert_eq!(values, wv);
}

/// An arena that may not grow past 1 MiB: the insert that does not fit is an error that
/// says so, and the dict is as it was.
fn out_of_space_is_an_error_and_changes_nothing() {
    let arena = Arena::builder()
        .size(1 << 20)
        .limit(1 << 20)
        .anonymous()
        .unwrap();
    let d = SharedDict::new_in(&arena).unwrap();
    d.insert(b"small", b"v").unwrap();
    let e = d.insert(b"big", &vec![0; 2 << 20]).unwrap_err();
    assert!(matches!(e, DictError::OutOfSpace { .. }), "{e:?}");
    assert!(e.to_string().contains("limit"), "{e}");
    assert!(matches!(
        SharedDict::with_capacity_in(&arena, 1 << 20),
        Err(Error::OutOfSpace { .. })
    ));
    assert!(matches!(
        d.reserve(1 << 20),
        Err(DictError::OutOfSpace { .. })
    ));
    let mut n = 0u64;
    let err = loop {
        match d.insert(&n.to_le_bytes(), &[1; 200]) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, DictError::OutOfSpace { .. }));
    assert_eq!(
        d.len() as u64,
        n + 1,
        "every insert before the failure is there"
    );
    assert_eq!(d.get(b"small"), Ok(Some(b"v".to_vec())));
    d.clear().unwrap();
    d.insert(b"after", &[2; 100_000]).unwrap();
}

/// Writers store values whose 8-byte words all equal one number (values of 1 KiB, so a
/// copy takes a while); readers in other processes check that every value they get, and
/// every snapshot, is uniform (never a mix of two writes).
fn readers_never_see_torn_values() {
    const KEYS: u64 = 8;
    const WORDS: usize = 128;
    let d = SharedDict::new().unwrap();
    let uniform = |n: u64| -> Vec<u8> { (0..WORDS).flat_map(|_| n.to_le_bytes()).collect() };
    for k in 0..KEYS {
        d.insert(&k.to_le_bytes(), &uniform(0)).unwrap();
    }
    let done = Value::new(0u32).unwrap();
    let reads = Value::new(0u64).unwrap();
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let d = d.clone();
            fork(move || {
                for i in 1..=20_000u64 {
                    let k = (i + w) % KEYS;
                    d.insert(&k.to_le_bytes(), &uniform(i * 2 + w)).unwrap();
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
                    assert_eq!(d.get_into(&k.to_le_bytes(), &mut buf), Ok(true));
                    assert_eq!(buf.len(), WORDS * 8);
                    let first = &buf[..8];
                    assert!(buf.chunks(8).all(|c| c == first), "torn value");
                    if n % 256 == 0 {
                        let items = d.items().unwrap();
                        assert_eq!(items.len(), KEYS as usize);
                        for (_, v) in items {
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
fn countdown_update_with_is_exact() {
    let d = TypedDict::<[u8; 3], i64>::new().unwrap();
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
    assert_eq!(d.get(b"num"), Ok(Some(0)));
}

fn readers_run_while_a_writer_holds_the_lock_and_a_dead_writer_is_repaired() {
    let d = SharedDict::new().unwrap();
    d.insert(b"a", b"1").unwrap();
    let inside = Signal::new();
    let writer = {
        let (d, inside) = (d.clone(), &inside);
        fork(move || {
            let _ = d.update_with(b"a", |_| {
                inside.notify();
                loop {
                    std::thread::park();
                }
            });
        })
    };
    assert!(inside.wait());
    // The writer holds the lock inside its closure; readers in other processes go on.
    let d3 = d.clone();
    fork(move || {
        for _ in 0..10_000 {
            assert_eq!(d3.get(b"a"), Ok(Some(b"1".to_vec())));
        }
        assert_eq!(d3.items().unwrap().len(), 1);
    })
    .join();
    assert_eq!(writer.kill(), -libc::SIGKILL);
    // The next writer takes the lock over from the dead one and carries on.
    assert_eq!(d.insert(b"a", b"2"), Ok(true));
    assert_eq!(d.insert(b"b", b"3"), Ok(false));
    assert_eq!(d.get(b"a"), Ok(Some(b"2".to_vec())));
    assert_eq!(d.len(), 2);
}

/// A buggy or hostile peer overwrites the dict's index and entries with garbage: calls
/// may fail or return garbage, but never read or write out of bounds, never panic, never
/// hang; the damage is reported as `DictError::Corrupt` (some reads must), and a key whose
/// slot and entry were spared still reads back right; `clear` restores a working dict, or
/// the arena's heap reports the damage.
fn survives_a_peer_scribbling_on_it() {
    let name = format!("shmproc-test-dict-scribble-{}", std::process::id());
    let arena = Arena::create(&name, 1 << 20).unwrap();
    let _unlink = shmproc_testkit::UnlinkOnDrop(name.clone());
    let d = SharedDict::create(&arena, "d").unwrap();
    d.reserve(100).unwrap(); // one index, made before the entries: no stale copies of links
    let key = |i: u64| format!("scribble-key-{i:03}").into_bytes();
    for i in 0..100 {
        d.insert(&key(i), &value(i, 0, 40)).unwrap();
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap();
    let mut image = Vec::new();
    std::io::Read::read_to_end(&mut &file, &mut image).unwrap();
    // The entries: [key length, value length, key.., value..]; the index words that link
    // them hold their offsets.
    let entries: Vec<u64> = (0..100)
        .map(|i| {
            let mut pat = 16u64.to_le_bytes().to_vec();
            pat.extend(40u64.to_le_bytes());
            pat.extend(key(i));
            (0..image.len() - pat.len())
                .step_by(8)
                .find(|&at| image[at..at + pat.len()] == pat[..])
                .expect("the entry is in the arena") as u64
        })
        .collect();
    let links: Vec<u64> = (0..image.len() / 8)
        .filter(|&w| {
            let word = u64::from_le_bytes(image[8 * w..8 * w + 8].try_into().unwrap());
            entries.contains(&word)
        })
        .map(|w| 8 * w as u64)
        .collect();
    assert_eq!(links.len(), 100, "each entry is linked once");
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    // Keys whose slot or entry a scribble hit, or that a write of the test changed: the
    // others must read back exactly, as long as no write has moved a block (round 0).
    let mut touched = [false; 100];
    let mut reported = 0;
    let corrupt = |e: DictError, what: &str| match e {
        DictError::Corrupt(_) => 1,
        e => panic!("{what} failed with {e}, not Corrupt"),
    };
    for round in 0..50 {
        for _ in 0..20 {
            let target = if rng.next() % 2 == 0 {
                let slot = (rng.next() % 100) as usize;
                // The link word, or the meta word before it.
                let at = links[slot] - 8 * (rng.next() % 2);
                let linked = u64::from_le_bytes(
                    image[links[slot] as usize..links[slot] as usize + 8]
                        .try_into()
                        .unwrap(),
                );
                let k = entries.iter().position(|&e| e == linked).unwrap();
                touched[k] = true;
                at
            } else {
                let k = (rng.next() % 100) as usize;
                touched[k] = true;
                entries[k] + 8 * (rng.next() % 4)
            };
            let garbage = match rng.next() % 4 {
                0 => rng.next(),
                1 => rng.next() % (1 << 20),
                2 => u64::MAX,
                _ => entries[(rng.next() % 100) as usize],
            };
            std::os::unix::fs::FileExt::write_all_at(&file, &garbage.to_le_bytes(), target)
                .unwrap();
        }
        for i in 0..100 {
            let spared = round == 0 && !touched[i as usize];
            match d.get(&key(i)) {
                Ok(got) if spared => assert_eq!(got, Some(value(i, 0, 40)), "key {i}"),
                Ok(_) => {}
                Err(e) => reported += corrupt(e, "get"),
            }
            match d.contains_key(&key(i)) {
                Ok(got) if spared => assert!(got, "key {i} is there"),
                Ok(_) => {}
                Err(e) => reported += corrupt(e, "contains_key"),
            }
        }
        for i in 0..100 {
            if i % 10 == round % 10 {
                let _ = d.insert(&key(i), b"x");
                let _ = d.remove(&key(i + 1));
                touched[i as usize] = true;
                touched[(i as usize + 1) % 100] = true;
            }
        }
        match d.items() {
            Ok(items) => {
                for (_, v) in items {
                    assert!(v.len() <= 1 << 20);
                }
            }
            Err(e) => reported += corrupt(e, "items"),
        }
    }
    assert!(
        reported > 0,
        "no read reported the scribbles as Corrupt in 50 rounds"
    );
    println!("  ({reported} reads reported the damage)");
    // `clear` gives a working dict again, unless the scribbles reached the arena's heap:
    // an entry block that a write freed is free heap memory (its words the heap's free
    // lists) when a later round scribbles on it, and a scribbled link may name a block the
    // dict then frees. The heap checks its tags and says so: a clear error, never a panic.
    if let Err(e) = d.clear() {
        // Links that named no block: forgotten, and said so.
        let _ = corrupt(e, "clear");
    }
    match d.insert(b"k", b"again") {
        Ok(_) => {
            assert_eq!(d.get(b"k"), Ok(Some(b"again".to_vec())));
            assert_eq!(d.items().map(|i| i.len()), Ok(1));
            println!("  (cleared: the dict works again)");
        }
        Err(DictError::Corrupt(why)) => {
            assert!(why.contains("heap"), "{why}");
            println!("  (the scribbles reached the heap, which says so: {why:.60}...)");
        }
        Err(e) => panic!("after a clear: {e}"),
    }
}

fn typed_dict_across_processes() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let d = TypedDict::<u32, [u64; 2]>::create(&arena, "scores").unwrap();
    let kids: Vec<_> = (0..4u32)
        .map(|w| {
            let arena = arena.clone();
            fork(move || {
                let d = TypedDict::<u32, [u64; 2]>::open(&arena, "scores").unwrap();
                for k in 0..250 {
                    d.insert(&(w * 250 + k), &[u64::from(w), u64::from(k)])
                        .unwrap();
                }
                assert!(TypedDict::<u64, [u64; 2]>::open(&arena, "scores").is_err());
                assert!(SharedDict::open(&arena, "scores").is_err());
            })
        })
        .collect();
    kids.into_iter().for_each(|c| c.join());
    assert_eq!(d.len(), 1000);
    assert_eq!(d.get(&257), Ok(Some([1, 7])));
    assert_eq!(d.remove(&257), Ok(Some([1, 7])));
    assert_eq!(d.contains_key(&257), Ok(false));
    assert_eq!(d.items().unwrap().len(), 999);
    assert_eq!(d.setdefault(&257, &[9, 9]), Ok([9, 9]));
    assert_eq!(d.pop(&257), Ok(Some([9, 9])));
    let (k, v) = d.popitem().unwrap().unwrap();
    assert_eq!(v, [u64::from(k / 250), u64::from(k % 250)]);
    assert_eq!(d.keys().unwrap().len(), 998);
    // Writer 3's 250 entries, less the one popitem took if it was one of them (which
    // one it takes depends on the arena's random hash seed).
    let popped_3 = usize::from(k / 250 == 3);
    assert_eq!(
        d.values().unwrap().iter().filter(|v| v[0] == 3).count(),
        250 - popped_3
    );
}

#[cfg(feature = "serde")]
fn serde_dict_across_processes() {
    use shmproc::SerdeDict;
    let arena = Arena::anonymous(1 << 20).unwrap();
    let d = SerdeDict::<String, Vec<String>>::create(&arena, "people").unwrap();
    let kids: Vec<_> = (0..4u32)
        .map(|w| {
            let arena = arena.clone();
            fork(move || {
                let d = SerdeDict::<String, Vec<String>>::open(&arena, "people").unwrap();
                for k in 0..50 {
                    let name = format!("p{w}-{k}");
                    let friends = (0..k % 7).map(|f| format!("f{f}-of-{name}")).collect();
                    d.insert(&name, &friends).unwrap();
                    d.update_with(&"all".to_string(), |v| {
                        let mut v = v.unwrap_or_default();
                        v.push(name.clone());
                        Some(v)
                    })
                    .unwrap();
                }
                assert!(SerdeDict::<String, String>::open(&arena, "people").is_err());
            })
        })
        .collect();
    kids.into_iter().for_each(|c| c.join());
    assert_eq!(d.len(), 201);
    assert_eq!(d.get(&"all".to_string()).unwrap().unwrap().len(), 200);
    assert_eq!(
        d.get(&"p2-3".to_string()).unwrap(),
        Some(vec![
            "f0-of-p2-3".into(),
            "f1-of-p2-3".into(),
            "f2-of-p2-3".into()
        ])
    );
    assert_eq!(d.items().unwrap().len(), 201);
    assert_eq!(
        d.pop(&"all".to_string()).unwrap().map(|v| v.len()),
        Some(200)
    );
    assert_eq!(d.keys().unwrap().len(), 200);
}
