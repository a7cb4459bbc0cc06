//! Multi-process tests of `SharedList`, `ByteList` and `SerdeList`: real `fork`ed
//! processes appending, reading, inserting, setting and popping at once, checked end to
//! end (every element exactly once, per-process order, checksums against torn reads);
//! processes SIGKILLed at random points; churn; a peer scribbling on the list.
//!
//! Every element carries its identity and a checksum: `item(id)` for byte lists (its
//! length and every byte derived from `id`), `pair(id)` / `quad(id)` for plain data. A
//! torn read, a lost or doubled element, or a mix of two elements fails the check.

#[cfg(feature = "serde")]
use shmproc::shared::SerdeList;
use shmproc::shared::{ByteList, ListError, SharedList};
use shmproc::{Arena, Error};
use shmproc_testkit::{fork, SharedPage};
use std::collections::HashSet;
use std::sync::atomic::Ordering;

shmproc_testkit::main!(
    appends_from_eight_processes_arrive_once_in_order,
    byte_appends_from_four_processes_carry_their_checksums,
    readers_never_see_a_torn_element,
    concurrent_sets_and_gets_match_a_model,
    concurrent_inserts_and_pops_conserve_every_element,
    negative_indices_and_slices_across_processes,
    elements_of_one_mib,
    many_small_elements,
    named_lists_across_processes,
    killed_writers_leave_a_consistent_list_and_leak_nothing,
    churn_in_four_processes_returns_to_baseline,
    list_survives_a_peer_scribbling_on_it,
);

// ---------------------------------------------------------------------------------------
// Elements that check themselves.

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Process `p`'s element number `n`.
fn id(p: u64, n: u64) -> u64 {
    p << 32 | n
}

/// A byte element: `id`, then bytes derived from it; 0 to ~300 bytes (on both sides of
/// the 24 inline bytes), now and then 5,000.
fn item(id: u64) -> Vec<u8> {
    let h = mix(id);
    let len = if h % 50 == 0 {
        5000
    } else {
        (h % 300) as usize
    };
    let mut v = id.to_le_bytes().to_vec();
    v.extend((0..len).map(|i| (h >> (i % 8 * 8)) as u8 ^ i as u8));
    v
}

/// The id of a byte element, after checking every byte of it.
fn check_item(b: &[u8]) -> u64 {
    assert!(b.len() >= 8, "element of {} bytes", b.len());
    let id = u64::from_le_bytes(b[..8].try_into().unwrap());
    assert!(b == item(id), "element {id:#x} is torn or corrupt");
    id
}

fn pair(id: u64) -> [u64; 2] {
    [id, mix(id)]
}

fn check_pair(v: [u64; 2]) -> u64 {
    assert_eq!(v[1], mix(v[0]), "element {v:x?} is torn");
    v[0]
}

fn quad(id: u64) -> [u64; 4] {
    [id, mix(id), mix(id ^ 1), !id]
}

fn check_quad(v: [u64; 4]) -> u64 {
    assert_eq!(v, quad(v[0]), "element {v:x?} is torn");
    v[0]
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Per process, the ids seen in order: each process's must be 0, 1, 2, ... `per`.
fn assert_each_once_in_order(ids: impl IntoIterator<Item = u64>, procs: u64, per: u64) {
    let mut next = vec![0u64; procs as usize];
    for id in ids {
        let (p, n) = ((id >> 32) as usize, id & 0xffff_ffff);
        assert!(p < procs as usize, "id {id:#x} from no process");
        assert_eq!(
            n, next[p],
            "process {p}: element {n} out of order or doubled"
        );
        next[p] += 1;
    }
    assert!(next.iter().all(|&n| n == per), "lost elements: {next:?}");
}

/// An arena whose lists' machinery has been used once: its `used()` is then the lists'
/// own bytes only.
fn warm(size: usize) -> (Arena, usize) {
    let arena = Arena::anonymous(size).unwrap();
    let l = ByteList::new_in(&arena).unwrap();
    l.push(&[1; 100]).unwrap();
    drop(l);
    drop(SharedList::<u64>::create(&arena, "warm-up").unwrap());
    arena.unlink_object("warm-up").unwrap();
    let base = arena.used();
    (arena, base)
}

// ---------------------------------------------------------------------------------------
// Appends.

fn appends_from_eight_processes_arrive_once_in_order() {
    let (procs, per) = (8u64, 20_000u64);
    let l = SharedList::<[u64; 2]>::new().unwrap();
    let kids: Vec<_> = (0..procs)
        .map(|p| {
            let l = l.clone();
            fork(move || {
                for n in 0..per {
                    l.push(pair(id(p, n))).unwrap();
                }
            })
        })
        .collect();
    kids.into_iter().for_each(|c| c.join());
    assert_eq!(l.len() as u64, procs * per);
    let all = l.to_vec().unwrap();
    assert_each_once_in_order(all.iter().map(|&v| check_pair(v)), procs, per);
    // Iteration by index sees the same.
    assert_eq!(l.iter().count() as u64, procs * per);
    let sum: u64 = all.iter().map(|v| v[1]).fold(0, u64::wrapping_add);
    let want = (0..procs)
        .flat_map(|p| (0..per).map(move |n| mix(id(p, n))))
        .fold(0, u64::wrapping_add);
    assert_eq!(sum, want, "checksum of the whole list");
}

fn byte_appends_from_four_processes_carry_their_checksums() {
    let (procs, per) = (4u64, 3_000u64);
    let (arena, base) = warm(1 << 20);
    let l = ByteList::new_in(&arena).unwrap();
    let kids: Vec<_> = (0..procs)
        .map(|p| {
            let l = l.clone();
            fork(move || {
                for n in 0..per {
                    l.push(&item(id(p, n))).unwrap();
                }
            })
        })
        .collect();
    kids.into_iter().for_each(|c| c.join());
    let all = l.to_vec().unwrap();
    assert_eq!(all.len() as u64, procs * per);
    assert_each_once_in_order(all.iter().map(|b| check_item(b)), procs, per);
    drop(l);
    arena.sweep().unwrap();
    assert_eq!(arena.used(), base, "the list's blocks are back");
}

// ---------------------------------------------------------------------------------------
// Readers against writers.

/// Two writers push, set, insert and pop (multi-word elements, so a torn copy is
/// possible); two readers read single elements, slices and iterations all the while.
/// Every element any reader sees checks out.
fn readers_never_see_a_torn_element() {
    let quads = SharedList::<[u64; 4]>::new().unwrap();
    let bytes = ByteList::new().unwrap();
    for n in 0..64 {
        quads.push(quad(id(9, n))).unwrap();
        bytes.push(&item(id(9, n))).unwrap();
    }
    let page = SharedPage::new(4096);
    let stop = page.atomic(0);
    let reads = page.atomic(1);
    let writers: Vec<_> = (0..2u64)
        .map(|p| {
            let (quads, bytes) = (quads.clone(), bytes.clone());
            fork(move || {
                let mut rng = Rng(p + 1);
                for n in 0..6_000 {
                    // The other writer may pop meanwhile: `i` may be past the end then.
                    let i = rng.below(quads.len()) as i64;
                    let ok = |r: Result<(), ListError>| match r {
                        Ok(()) | Err(ListError::IndexOutOfRange { .. }) => {}
                        Err(e) => panic!("{e}"),
                    };
                    match n % 6 {
                        0 | 1 => {
                            ok(quads.set(i, quad(id(p, n))));
                            ok(bytes.set(i, &item(id(p, n))));
                        }
                        2 => {
                            quads.insert(i, quad(id(p, n))).unwrap();
                            bytes.insert(i, &item(id(p, n))).unwrap();
                        }
                        3 => {
                            quads.push(quad(id(p, n))).unwrap();
                            bytes.push(&item(id(p, n))).unwrap();
                        }
                        _ => {
                            if quads.len() > 32 {
                                check_quad(
                                    quads.pop_at(i).unwrap_or_else(|_| quads.pop().unwrap()),
                                );
                            }
                            if bytes.len() > 32 {
                                check_item(
                                    &bytes.pop_at(i).unwrap_or_else(|_| bytes.pop().unwrap()),
                                );
                            }
                        }
                    }
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2u64)
        .map(|r| {
            let (quads, bytes) = (quads.clone(), bytes.clone());
            fork(move || {
                let mut rng = Rng(r + 100);
                let mut buf = Vec::new();
                while stop.load(Ordering::SeqCst) == 0 {
                    for i in [0, -1, rng.below(32) as i64] {
                        check_quad(quads.get(i).unwrap());
                        bytes.get_into(i, &mut buf).unwrap();
                        check_item(&buf);
                    }
                    quads.slice(-8..).unwrap().into_iter().for_each(|v| {
                        check_quad(v);
                    });
                    bytes.slice(..4).unwrap().iter().for_each(|b| {
                        check_item(b);
                    });
                    quads.iter().take(40).for_each(|v| {
                        check_quad(v);
                    });
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    writers.into_iter().for_each(|c| c.join());
    stop.store(1, Ordering::SeqCst);
    readers.into_iter().for_each(|c| c.join());
    assert!(reads.load(Ordering::SeqCst) > 0);
    let q = quads.to_vec().unwrap();
    let ids: HashSet<u64> = q.iter().map(|&v| check_quad(v)).collect();
    assert_eq!(ids.len(), q.len(), "an element doubled");
    let b = bytes.to_vec().unwrap();
    let ids: HashSet<u64> = b.iter().map(|e| check_item(e)).collect();
    assert_eq!(ids.len(), b.len(), "an element doubled");
    println!(
        "  ({} reader rounds; {} and {} elements at the end)",
        reads.load(Ordering::SeqCst),
        q.len(),
        b.len()
    );
}

/// Four processes set and read back the indices `i % 4 == p` (the list's shape does not
/// change, so the result is determined): every read sees the process's own last write,
/// and the final list is the model's.
fn concurrent_sets_and_gets_match_a_model() {
    let (procs, len, rounds) = (4usize, 2_000usize, 20u64);
    let l = SharedList::<[u64; 2]>::new().unwrap();
    let b = ByteList::new().unwrap();
    l.extend((0..len as u64).map(|i| pair(id(99, i)))).unwrap();
    b.extend((0..len as u64).map(|i| item(id(99, i)))).unwrap();
    let value = |p: usize, i: usize, r: u64| id(p as u64, (i as u64) << 8 | r);
    let kids: Vec<_> = (0..procs)
        .map(|p| {
            let (l, b) = (l.clone(), b.clone());
            fork(move || {
                for r in 0..rounds {
                    for i in (p..len).step_by(procs) {
                        // Negative and positive indices name the same elements.
                        let at = if r % 2 == 0 {
                            i as i64
                        } else {
                            i as i64 - len as i64
                        };
                        l.set(at, pair(value(p, i, r))).unwrap();
                        if i % 16 == p {
                            b.set(at, &item(value(p, i, r))).unwrap();
                        }
                    }
                    for i in (p..len).step_by(procs) {
                        assert_eq!(check_pair(l.get(i).unwrap()), value(p, i, r));
                        if i % 16 == p {
                            assert_eq!(check_item(&b.get(i).unwrap()), value(p, i, r));
                        }
                    }
                }
            })
        })
        .collect();
    kids.into_iter().for_each(|c| c.join());
    let model: Vec<[u64; 2]> = (0..len)
        .map(|i| pair(value(i % procs, i, rounds - 1)))
        .collect();
    assert_eq!(l.to_vec().unwrap(), model);
    for (i, e) in b.to_vec().unwrap().iter().enumerate() {
        let want = if i % 16 == i % procs {
            value(i % procs, i, rounds - 1)
        } else {
            id(99, i as u64)
        };
        assert_eq!(check_item(e), want, "element {i}");
    }
}

/// Four processes insert new elements at random places and pop elements at random
/// places (their own or anyone's), each keeping the ids it popped in a list of its own:
/// at the end, what is in the list and what was popped is exactly what was ever put in.
fn concurrent_inserts_and_pops_conserve_every_element() {
    let (procs, per) = (4u64, 3_000u64);
    let l = ByteList::new().unwrap();
    l.extend((0..100).map(|n| item(id(procs, n)))).unwrap();
    let popped: Vec<SharedList<u64>> = (0..procs).map(|_| SharedList::new().unwrap()).collect();
    let kids: Vec<_> = (0..procs)
        .map(|p| {
            let (l, out) = (l.clone(), popped[p as usize].clone());
            fork(move || {
                let mut rng = Rng(p * 7 + 3);
                for n in 0..per {
                    let len = l.len() + 2;
                    l.insert(rng.below(2 * len) as i64 - len as i64, &item(id(p, n)))
                        .unwrap();
                    if n % 3 != 0 {
                        let i = rng.below(len) as i64 - (len / 2) as i64;
                        match l.pop_at(i) {
                            Ok(e) => out.push(check_item(&e)).unwrap(),
                            Err(ListError::IndexOutOfRange { .. } | ListError::Empty) => {}
                            Err(e) => panic!("pop_at({i}): {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    kids.into_iter().for_each(|c| c.join());
    let mut seen = HashSet::new();
    for e in l.to_vec().unwrap() {
        assert!(seen.insert(check_item(&e)), "an element doubled");
    }
    for out in &popped {
        for id in out.to_vec().unwrap() {
            assert!(
                seen.insert(id),
                "element {id:#x} popped twice or still there"
            );
        }
    }
    let put: HashSet<u64> = (0..procs)
        .flat_map(|p| (0..per).map(move |n| id(p, n)))
        .chain((0..100).map(|n| id(procs, n)))
        .collect();
    assert_eq!(seen, put, "elements lost or invented");
    println!(
        "  ({} elements left, {} popped)",
        l.len(),
        popped.iter().map(|o| o.len()).sum::<usize>()
    );
}

// ---------------------------------------------------------------------------------------
// Python's semantics, sizes, names.

#[allow(clippy::reversed_empty_ranges)] // Python's a:b with a > b: empty, on purpose
fn negative_indices_and_slices_across_processes() {
    let l = SharedList::<i64>::new().unwrap();
    l.extend(0..10).unwrap();
    let child = {
        let l = l.clone();
        fork(move || {
            l.set(-1, 90).unwrap();
            l.insert(-1, 80).unwrap(); // before the last: [.., 8, 80, 90]
            assert_eq!(l.pop_at(-3).unwrap(), 8);
            l.insert(-100, -1).unwrap(); // clamped: at the front
            assert_eq!(
                l.get(-12),
                Err(ListError::IndexOutOfRange {
                    index: -12,
                    len: 11
                })
            );
        })
    };
    child.join();
    assert_eq!(l.to_vec().unwrap(), [-1, 0, 1, 2, 3, 4, 5, 6, 7, 80, 90]);
    assert_eq!(l.get(-1).unwrap(), 90);
    assert_eq!(l.get(-11).unwrap(), -1);
    assert_eq!(l.slice(-3..).unwrap(), [7, 80, 90]);
    assert_eq!(l.slice(..-8).unwrap(), [-1, 0, 1]);
    assert_eq!(l.slice(-3..-1).unwrap(), [7, 80]);
    assert_eq!(l.slice(5..=-5).unwrap(), [4, 5]);
    assert_eq!(l.slice(-100..2).unwrap(), [-1, 0]);
    assert!(l.slice(9..3).unwrap().is_empty());
    assert!(l.slice(100..).unwrap().is_empty());
    assert_eq!(l.index(&80), Ok(9));
    assert_eq!(l.count(&3), Ok(1));
    assert_eq!(l.remove(&1234), Err(ListError::NotFound));
    l.clear().unwrap();
    assert_eq!(l.pop(), Err(ListError::Empty));
    assert_eq!(l.pop_at(-1), Err(ListError::Empty));
}

/// Runs `f` on a thread with a 64 MiB stack: a 1 MiB plain-data element is a 1 MiB value,
/// and an unoptimised build keeps several copies of it on the stack.
fn on_a_big_stack<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn_scoped(s, f)
            .unwrap()
            .join()
            .unwrap()
    })
}

fn elements_of_one_mib() {
    const MIB: usize = 1 << 20;
    let (arena, base) = warm(1 << 20);
    let bytes = ByteList::new_in(&arena).unwrap();
    let plain = SharedList::<[u64; MIB / 8]>::new_in(&arena).unwrap();
    let big = |id: u64| -> Vec<u8> {
        let h = mix(id);
        let mut v = id.to_le_bytes().to_vec();
        v.extend((8..MIB).map(|i| (h >> (i % 8 * 8)) as u8 ^ (i / 8) as u8));
        v
    };
    let kids: Vec<_> = (0..4u64)
        .map(|p| {
            let (bytes, plain) = (bytes.clone(), plain.clone());
            fork(move || {
                for n in 0..4 {
                    bytes.push(&big(id(p, n))).unwrap();
                    on_a_big_stack(|| {
                        let mut v = [0u64; MIB / 8];
                        v[0] = id(p, n);
                        v[MIB / 8 - 1] = mix(id(p, n));
                        plain.push(v).unwrap();
                    });
                }
                // Read back one of another process's, whole.
                let e = bytes.get(0).unwrap();
                let id = u64::from_le_bytes(e[..8].try_into().unwrap());
                assert!(e == big(id));
            })
        })
        .collect();
    kids.into_iter().for_each(|c| c.join());
    assert_eq!((bytes.len(), plain.len()), (16, 16));
    let mut ids = HashSet::new();
    for e in bytes.iter() {
        let id = u64::from_le_bytes(e[..8].try_into().unwrap());
        assert!(e == big(id), "1 MiB element {id:#x} damaged");
        ids.insert(id);
    }
    assert_eq!(ids.len(), 16);
    on_a_big_stack(|| {
        for i in 0..16 {
            let v = plain.get(i).unwrap();
            assert_eq!(v[MIB / 8 - 1], mix(v[0]));
            assert!(ids.contains(&v[0]));
        }
        plain.pop_at(3).unwrap();
    });
    // Replace one in the middle, insert one at the front, pop them all.
    bytes.set(7, &big(1 << 40)).unwrap();
    bytes.insert(0, &big(2 << 40)).unwrap();
    assert!(bytes.get(8).unwrap() == big(1 << 40));
    while let Ok(e) = bytes.pop() {
        assert_eq!(e.len(), MIB);
    }
    plain.clear().unwrap();
    assert!(
        arena.used() < base + 4096,
        "popped and cleared: the blocks are back"
    );
    drop((bytes, plain));
    arena.sweep().unwrap();
    assert_eq!(arena.used(), base);
}

fn many_small_elements() {
    let (procs, per) = (4u32, 250_000u32);
    let (arena, base) = warm(1 << 20);
    let l = SharedList::<u32>::new_in(&arena).unwrap();
    let kids: Vec<_> = (0..procs)
        .map(|p| {
            let l = l.clone();
            fork(move || {
                // In batches under one hold of the lock, and one by one.
                l.extend((0..per / 2).map(|n| p << 24 | n)).unwrap();
                for n in per / 2..per {
                    l.push(p << 24 | n).unwrap();
                }
            })
        })
        .collect();
    kids.into_iter().for_each(|c| c.join());
    assert_eq!(l.len(), (procs * per) as usize);
    let ids = l.to_vec().unwrap().into_iter().map(|v| {
        let (p, n) = (u64::from(v >> 24), u64::from(v & 0xff_ffff));
        p << 32 | n
    });
    assert_each_once_in_order(ids, u64::from(procs), u64::from(per));
    // A word a slot, in chunks that double: at most twice the words, and the states.
    let used = arena.used();
    assert!(
        used < base + 2 * 8 * (procs * per) as usize + 4096,
        "{used} bytes"
    );
    l.clear().unwrap();
    drop(l);
    arena.sweep().unwrap();
    assert_eq!(arena.used(), base);
}

fn named_lists_across_processes() {
    let name = format!("shmproc-test-list-{}", std::process::id());
    let arena = Arena::create(&name, 1 << 20).unwrap();
    let _cleanup = shmproc_testkit::UnlinkOnDrop(name.clone());
    let log = ByteList::create(&arena, "log").unwrap();
    let ids = SharedList::<u64>::create(&arena, "ids").unwrap();
    log.push(b"parent").unwrap();
    ids.push(1).unwrap();
    #[cfg(feature = "serde")]
    SerdeList::<(String, u32)>::create(&arena, "scores")
        .unwrap()
        .push(&("parent".into(), 1))
        .unwrap();
    let child = {
        let name = name.clone();
        fork(move || {
            let arena = Arena::open(&name).unwrap();
            let log = ByteList::open(&arena, "log").unwrap();
            let ids = SharedList::<u64>::open(&arena, "ids").unwrap();
            assert_eq!(log.get(0).unwrap(), b"parent");
            log.push(b"child").unwrap();
            ids.push(ids.get(-1).unwrap() + 1).unwrap();
            assert!(matches!(
                SharedList::<u32>::open(&arena, "ids"),
                Err(Error::WrongType { .. })
            ));
            assert!(matches!(
                ByteList::open(&arena, "ids"),
                Err(Error::WrongType { .. })
            ));
            assert!(matches!(
                SharedList::<u64>::open(&arena, "log"),
                Err(Error::WrongType { .. })
            ));
            assert!(matches!(
                ByteList::open(&arena, "nope"),
                Err(Error::NotFound(_))
            ));
            #[cfg(feature = "serde")]
            {
                let l = SerdeList::<(String, u32)>::open(&arena, "scores").unwrap();
                assert_eq!(l.get(0).unwrap(), ("parent".to_string(), 1));
                l.push(&("child".into(), 2)).unwrap();
                assert!(matches!(
                    SerdeList::<u64>::open(&arena, "scores"),
                    Err(Error::WrongType { .. })
                ));
                assert!(matches!(
                    ByteList::open(&arena, "scores"),
                    Err(Error::WrongType { .. })
                ));
            }
        })
    };
    child.join();
    assert_eq!(
        log.to_vec().unwrap(),
        [b"parent".to_vec(), b"child".to_vec()]
    );
    assert_eq!(ids.to_vec().unwrap(), [1, 2]);
    assert!(matches!(
        ByteList::create(&arena, "log"),
        Err(Error::AlreadyExists(_))
    ));
    #[cfg(feature = "serde")]
    assert_eq!(
        SerdeList::<(String, u32)>::open(&arena, "scores")
            .unwrap()
            .to_vec()
            .unwrap(),
        [("parent".to_string(), 1), ("child".to_string(), 2)]
    );
}

// ---------------------------------------------------------------------------------------
// Faults.

/// 200 processes SIGKILLed at random points while they append, insert, set, pop and
/// remove (and make and drop lists of their own): after each kill the survivor finds
/// every element whole and no element doubled, and keeps using the lists; once the dead
/// are swept and the lists dropped, the arena is back where it began.
fn killed_writers_leave_a_consistent_list_and_leak_nothing() {
    let (arena, base) = warm(4 << 20);
    let bytes = ByteList::new_in(&arena).unwrap();
    let quads = SharedList::<[u64; 4]>::new_in(&arena).unwrap();
    let page = SharedPage::new(4096);
    let started = page.atomic(0);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for k in 0..200u64 {
        let child = {
            let (arena, bytes, quads) = (arena.clone(), bytes.clone(), quads.clone());
            fork(move || {
                started.fetch_add(1, Ordering::SeqCst);
                let mut rng = Rng(k + 1);
                for n in 0.. {
                    let e = id(k, n);
                    let i = rng.below(bytes.len() + 1) as i64 - 1;
                    match rng.below(10) {
                        0..=2 => {
                            bytes.push(&item(e)).unwrap();
                            quads.push(quad(e)).unwrap();
                        }
                        3 => {
                            bytes.insert(i, &item(e)).unwrap();
                            quads.insert(i, quad(e)).unwrap();
                        }
                        4 => {
                            let _ = bytes.set(i, &item(e));
                            let _ = quads.set(i, quad(e));
                        }
                        5 | 6 => {
                            let _ = bytes.pop_at(i);
                            let _ = quads.pop();
                        }
                        7 => {
                            if let Ok(x) = bytes.get(-1) {
                                let _ = bytes.remove(&x);
                            }
                        }
                        8 => {
                            let mine = ByteList::new_in(&arena).unwrap();
                            mine.extend([item(e), item(e + 1)]).unwrap();
                            mine.insert(0, &vec![7; 3000]).unwrap();
                            drop(mine);
                        }
                        _ => {
                            if bytes.len() > 400 {
                                bytes.clear().unwrap();
                            }
                        }
                    }
                }
            })
        };
        while started.load(Ordering::SeqCst) <= k {
            std::thread::yield_now();
        }
        for _ in 0..rng.next() % 40_000 {
            std::hint::spin_loop();
        }
        assert_eq!(child.kill(), -libc::SIGKILL);
        // The survivor: everything whole, nothing doubled, and the lists keep working.
        let all = bytes.to_vec().unwrap();
        let ids: HashSet<u64> = all.iter().map(|e| check_item(e)).collect();
        assert_eq!(ids.len(), all.len(), "kill {k}: an element doubled");
        let q = quads.to_vec().unwrap();
        let qids: HashSet<u64> = q.iter().map(|&v| check_quad(v)).collect();
        assert_eq!(qids.len(), q.len(), "kill {k}: an element doubled");
        let mine = id(1000, k);
        bytes.insert(0, &item(mine)).unwrap();
        assert_eq!(check_item(&bytes.pop_at(0).unwrap()), mine);
        quads.push(quad(mine)).unwrap();
        assert_eq!(check_quad(quads.pop().unwrap()), mine);
    }
    let (repairs, len) = (bytes.repairs() + quads.repairs(), bytes.len());
    let swept = arena.sweep().unwrap();
    assert!(swept <= 200);
    drop((bytes, quads));
    if arena.used() != base {
        for b in arena.debug_blocks() {
            println!("  block {:#x} {} {}", b.0, b.1, b.2);
        }
    }
    assert_eq!(arena.used(), base, "the dead left nothing behind");
    assert!(repairs > 0, "no kill landed inside a list's lock");
    println!(
        "  (200 kills: {repairs} repairs of the lists after a dead writer, {} inside the \
         heap, {} inside the metadata lock; {len} elements at the end)",
        arena.stats().heap_repairs,
        arena.stats().repairs,
    );
}

/// Four processes make, fill and drop lists of every flavour; the arena ends where it
/// began.
fn churn_in_four_processes_returns_to_baseline() {
    let (arena, base) = warm(4 << 20);
    let kids: Vec<_> = (0..4u64)
        .map(|p| {
            let arena = arena.clone();
            fork(move || {
                for r in 0..1_500u64 {
                    let b = ByteList::new_in(&arena).unwrap();
                    let q = SharedList::<u64>::new_in(&arena).unwrap();
                    #[cfg(feature = "serde")]
                    let s = SerdeList::<String>::new_in(&arena).unwrap();
                    #[cfg(not(feature = "serde"))]
                    let s = ByteList::new_in(&arena).unwrap();
                    for n in 0..40 {
                        b.push(&item(id(p, r << 8 | n))).unwrap();
                        q.push(n).unwrap();
                    }
                    s.extend((0..5).map(|n| "x".repeat(n * 10))).unwrap();
                    b.insert(3, &[1; 100]).unwrap();
                    b.pop_at(10).unwrap();
                    if r % 2 == 0 {
                        b.clear().unwrap();
                    }
                    drop((b, q, s));
                }
            })
        })
        .collect();
    kids.into_iter().for_each(|c| c.join());
    arena.sweep().unwrap();
    assert_eq!(arena.used(), base);
}

/// A peer overwrites the list's state (all but its lock) and the words of its chunks:
/// every operation returns a value or an error, none panics or hangs; a damaged geometry
/// is refused on open.
fn list_survives_a_peer_scribbling_on_it() {
    let name = format!("shmproc-test-list-scribble-{}", std::process::id());
    let arena = Arena::create(&name, 1 << 20).unwrap();
    let _cleanup = shmproc_testkit::UnlinkOnDrop(name.clone());
    let l = ByteList::create(&arena, "l").unwrap();
    for n in 0..50 {
        l.push(&item(id(1, n))).unwrap();
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap();
    // The list's state: found by its geometry word (24 inline bytes, a byte list, first
    // chunk of 8 slots), 64 bytes into it.
    let mut image = Vec::new();
    std::io::Read::read_to_end(&mut &file, &mut image).unwrap();
    let geometry = (24u64 | 1 << 32 | 3 << 40).to_le_bytes();
    let at = (64..image.len() - 8)
        .step_by(8)
        .find(|&i| image[i..i + 8] == geometry)
        .expect("the list's geometry is in the arena");
    let state = (at - 64) as u64;
    let word = |image: &[u8], off: u64| {
        u64::from_le_bytes(image[off as usize..off as usize + 8].try_into().unwrap())
    };
    let first_chunk = word(&image, state + 80);
    let write = |off: u64, v: u64| {
        std::os::unix::fs::FileExt::write_all_at(&file, &v.to_le_bytes(), off).unwrap();
    };
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for round in 0..40 {
        let mut garbage = || match rng.below(5) {
            0 => rng.next(),
            1 => rng.next() % 64,
            2 => (1 << 63) | (rng.next() % 100_000),
            3 => rng.next() | 1,
            _ => 0,
        };
        // seq, len, journal, jlen, the in-flight words; then the first chunk's slots.
        for off in (16..64).step_by(8) {
            if round % 3 == 0 || off == 24 {
                write(state + off, garbage());
            }
        }
        for s in 0..8 {
            write(first_chunk + s * 32 + 8 * (s % 4), garbage());
        }
        let e = item(id(2, round));
        for i in [-1i64, 0, 3, 49, 1000] {
            let _ = l.get(i);
            let _ = l.set(i, &e);
            let _ = l.insert(i, &e);
            let _ = l.pop_at(i);
        }
        let _ = l.to_vec();
        let _ = l.index(&e);
        let _ = l.remove(&e);
        let _ = l.push(&e);
        assert!(l.iter().take(100).count() <= 100);
        // Put a sane state back (the chunk offsets were never touched), and it works.
        write(state + 24, 0);
        for off in (32..64).step_by(8) {
            write(state + off, 0);
        }
        l.push(&e).unwrap();
        assert_eq!(check_item(&l.get(-1).unwrap()), id(2, round));
    }
    // A damaged geometry: refused on open.
    write(state + 64, 25 | 1 << 32 | 3 << 40);
    assert!(matches!(
        ByteList::open(&arena, "l"),
        Err(Error::Corrupt(_))
    ));
}
