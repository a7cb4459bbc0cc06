//! Unit tests of the dict algorithm over a private heap ([`HeapBlocks`]): a model
//! comparison, growth and shrinking, memory that comes back, a writer stopped after each
//! of its writes in every operation (repaired, nothing torn, nothing leaked), the
//! finalizer stopped the same way, and hostile bytes.

use super::*;
use crate::raw::owned::HeapBlocks;
use crate::sync::liveness::Scripted;
use std::collections::HashMap;

/// Where the state lives in the heap's first 4 KiB.
const STATE: u64 = 128;

fn heap(len: u64) -> HeapBlocks {
    let b = HeapBlocks::new(len);
    b.state::<RawDict>(STATE).set_seed(0x5eed_5eed_5eed_5eed);
    b
}

fn raw(b: &HeapBlocks) -> &RawDict {
    b.state(STATE)
}

fn table<'a>(b: &'a HeapBlocks, who: Scripted) -> DictTable<'a, HeapBlocks, Scripted> {
    DictTable::new(raw(b), b, who, SpinPolicy::default())
}

fn me(b: &HeapBlocks) -> DictTable<'_, HeapBlocks, Scripted> {
    table(b, Scripted::alive(1))
}

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

/// A value that says which key and version it is, and checks itself: `len` bytes, the
/// first 8 the checksum of the rest.
fn value(key: &[u8], version: u64, len: usize) -> Vec<u8> {
    let len = len.max(8);
    let mut v = vec![0u8; len];
    for (i, b) in v[8..].iter_mut().enumerate() {
        *b = (version as u8) ^ (i as u8).wrapping_mul(31) ^ key.first().copied().unwrap_or(7);
    }
    let sum = checksum(&v[8..]);
    v[..8].copy_from_slice(&sum.to_le_bytes());
    v
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn intact(v: &[u8]) -> bool {
    v.len() >= 8 && u64::from_le_bytes(v[..8].try_into().unwrap()) == checksum(&v[8..])
}

/// The blocks a dict of these live entries holds: its index (if any) and one per entry.
fn expected_blocks(b: &HeapBlocks) -> u64 {
    let r = raw(b);
    let index = u64::from(r.index.load(Ordering::Relaxed) != 0);
    index + r.len()
}

/// Checks every invariant the writer keeps (lock free, seq even, nothing in flight),
/// that the counts match the index, and that the heap holds exactly the dict's blocks.
fn check_consistent(b: &HeapBlocks) {
    let r = raw(b);
    assert_eq!(r.seq.load(Ordering::Relaxed) & 1, 0, "seq even");
    assert_eq!(r.in_flight.blocks(), [0, 0], "nothing in flight");
    assert_eq!(r.retired.load(Ordering::Relaxed), 0, "no retired index");
    let items = me(b).items().unwrap();
    assert_eq!(items.len() as u64, r.len(), "len matches the index");
    assert_eq!(b.allocated(), expected_blocks(b), "no block leaked");
}

#[test]
fn matches_a_hashmap_model() {
    let b = heap(8 << 20);
    let t = me(&b);
    let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for step in 0..30_000u64 {
        let key = format!("k{}", rng.next() % 300).into_bytes();
        let len = match rng.next() % 20 {
            0 => 0,
            1 => 3000 + (rng.next() % 5000) as usize,
            _ => (rng.next() % 100) as usize,
        };
        let v: Vec<u8> = (0..len).map(|i| (i as u64 ^ step) as u8).collect();
        let mut out = Vec::new();
        match rng.next() % 16 {
            0..=5 => assert_eq!(
                t.insert(&key, &v),
                Ok(model.insert(key.clone(), v).is_some()),
                "step {step}"
            ),
            6..=8 => {
                let got = t.remove(&key, &mut out).unwrap().then_some(out);
                assert_eq!(got, model.remove(&key), "step {step}");
            }
            9..=10 => {
                let got = t.get(&key, &mut out).unwrap().then_some(out);
                assert_eq!(got.as_ref(), model.get(&key), "step {step}");
            }
            11 => {
                let old = t
                    .update_with(&key, |cur| match cur {
                        Some(c) if c.len() % 2 == 0 => None,
                        Some(c) => Some([c, b"+"].concat()),
                        None => Some(b"new".to_vec()),
                    })
                    .unwrap();
                assert_eq!(old.as_ref(), model.get(&key), "step {step}");
                match old {
                    Some(c) if c.len() % 2 == 0 => {
                        model.remove(&key);
                    }
                    Some(c) => {
                        model.insert(key.clone(), [&c[..], b"+"].concat());
                    }
                    None => {
                        model.insert(key.clone(), b"new".to_vec());
                    }
                }
            }
            12 => {
                let added = t.setdefault(&key, &v, &mut out).unwrap();
                assert_eq!(added, !model.contains_key(&key));
                assert_eq!(&out, model.entry(key.clone()).or_insert(v));
            }
            13 => {
                if let Some((k, v)) = t.pop_any().unwrap() {
                    assert_eq!(model.remove(&k), Some(v), "step {step}");
                } else {
                    assert!(model.is_empty());
                }
            }
            14 if step % 1000 == 14 => {
                t.clear().unwrap();
                model.clear();
            }
            _ => assert_eq!(t.contains(&key), Ok(model.contains_key(&key))),
        }
        assert_eq!(t.len(), model.len(), "step {step}");
    }
    let mut items = t.items().unwrap();
    items.sort();
    let mut want: Vec<_> = model.into_iter().collect();
    want.sort();
    assert_eq!(items, want);
    check_consistent(&b);
    finalize(raw(&b), &b);
    assert_eq!(b.allocated(), 0, "the finalizer frees everything");
    finalize(raw(&b), &b);
    assert_eq!(b.allocated(), 0, "and again: idempotent");
}

#[test]
fn grows_from_empty_and_gives_memory_back() {
    let b = heap(32 << 20);
    let t = me(&b);
    assert_eq!(
        (t.capacity(), b.allocated()),
        (0, 0),
        "no index before the first insert"
    );
    let mut shifts = Vec::new();
    for round in 0..3 {
        for i in 0..50_000u64 {
            let k = i.to_le_bytes();
            assert_eq!(t.insert(&k, &value(&k, i + round, 24)), Ok(false));
            let s = raw(&b).slots_and_tombs().0;
            if shifts.last() != Some(&s) {
                shifts.push(s);
            }
        }
        assert_eq!(t.len(), 50_000);
        let mut out = Vec::new();
        for i in (0..50_000u64).step_by(7) {
            assert_eq!(t.get(&i.to_le_bytes(), &mut out), Ok(true), "key {i}");
            assert_eq!(out, value(&i.to_le_bytes(), i + round, 24));
        }
        check_consistent(&b);
        // Every growth doubled the index.
        assert!(shifts.windows(2).all(|w| w[1] == w[0] * 2), "{shifts:?}");
        assert!(t.capacity() >= 50_000 && t.capacity() <= 4 * 50_000);
        t.clear().unwrap();
        assert_eq!(
            (t.len(), t.capacity(), b.allocated()),
            (0, 0, 0),
            "round {round}"
        );
        shifts.clear();
    }
}

#[test]
fn churn_keeps_the_index_bounded() {
    let b = heap(4 << 20);
    let t = me(&b);
    let mut rng = Rng(77);
    let mut max_slots = 0;
    for i in 0..200_000u64 {
        // About 100 live keys out of 100,000 ever inserted: tombstones force rebuilds,
        // which size the index for the live entries.
        let k = (i % 100_000).to_le_bytes();
        t.insert(&k, b"v").unwrap();
        let old = (i.wrapping_sub(100) % 100_000).to_le_bytes();
        if i >= 100 {
            assert!(t.remove(&old, &mut Vec::new()).unwrap() || rng.next() == 0);
        }
        max_slots = max_slots.max(raw(&b).slots_and_tombs().0);
    }
    assert_eq!(t.len(), 100);
    assert!(
        max_slots <= 1024,
        "index grew to {max_slots} slots for 100 entries"
    );
    check_consistent(&b);
}

#[test]
fn reserve_and_capacity() {
    let b = heap(4 << 20);
    let t = me(&b);
    t.reserve(1000).unwrap();
    let cap = t.capacity();
    assert!(cap >= 1000);
    let shift = raw(&b).slots_and_tombs().0;
    for i in 0..1000u64 {
        t.insert(&i.to_le_bytes(), b"x").unwrap();
    }
    assert_eq!(raw(&b).slots_and_tombs().0, shift, "no growth on the way");
    t.reserve(10).unwrap();
    assert!(t.capacity() >= cap);
    assert!(matches!(
        t.reserve(usize::MAX),
        Err(DictError::OutOfSpace { .. })
    ));
    let small = heap(64 << 10);
    assert!(matches!(
        me(&small).reserve(1 << 20),
        Err(DictError::OutOfSpace { .. })
    ));
    assert!(matches!(
        me(&small).insert(b"k", &vec![0; 1 << 20]),
        Err(DictError::OutOfSpace { .. })
    ));
    assert!(me(&small).is_empty());
    check_consistent(&small);
}

/// Keys of every length up to 40 bytes and values up to 200 round-trip, also among keys
/// that share their first words.
#[test]
fn odd_lengths_round_trip() {
    let b = heap(4 << 20);
    let t = me(&b);
    for kl in 0..40usize {
        for vl in [0usize, 1, 7, 8, 9, 63, 64, 65, 200] {
            let key: Vec<u8> = (0..kl).map(|i| i as u8).collect();
            let v: Vec<u8> = (0..vl).map(|i| (i * kl) as u8).collect();
            t.insert(&key, &v).unwrap();
            let mut out = vec![1, 2, 3];
            assert_eq!(t.get(&key, &mut out), Ok(true));
            assert_eq!(out, v, "key of {kl}, value of {vl}");
        }
    }
    assert_eq!(t.len(), 40);
    check_consistent(&b);
}

#[test]
fn the_hash_is_keyed_and_stable() {
    // SipHash-1-3 is specified: these values may never change (processes of other builds
    // share the dict). Computed once, by this implementation.
    assert_eq!(hash(0, b""), hash(0, b""));
    let a = hash(1, b"key");
    assert_ne!(a, hash(2, b"key"), "the seed changes the hash");
    assert_ne!(a, hash(1, b"kez"));
    assert_eq!(
        hash(0, b"hello"),
        siphasher::sip::SipHasher13::new_with_keys(0, 0x6469_6374_7368_6d70).hash(b"hello")
    );
}

// ---------------------------------------------------------------------------------------
// Writers stopped after each of their writes.

/// A dict with `n` entries `k0..` (values checked by `intact`), and the process that
/// made it gone: returns the heap.
fn filled(n: u64, len: usize) -> HeapBlocks {
    let b = heap(4 << 20);
    for i in 0..n {
        let k = format!("k{i}").into_bytes();
        me(&b).insert(&k, &value(&k, 0, len)).unwrap();
    }
    b
}

/// What the doomed operation does to the dict.
#[derive(Clone, Copy, Debug)]
enum Op {
    InsertNew,
    InsertGrowing,
    Replace,
    Remove,
    RemoveLast,
    Clear,
    PopItem,
    UpdateWithRemove,
    Reserve,
}

fn run(op: Op, t: &DictTable<'_, HeapBlocks, Scripted, &CrashAfter>) {
    let key = |i: u64| format!("k{i}").into_bytes();
    // Results are meaningless for a stopped writer; what counts is what it wrote.
    match op {
        Op::InsertNew | Op::InsertGrowing => drop(t.insert(b"new", &value(b"new", 1, 40))),
        Op::Replace => drop(t.insert(&key(2), &value(&key(2), 1, 300))),
        Op::Remove => drop(t.remove(&key(3), &mut Vec::new())),
        Op::RemoveLast => drop(t.remove(&key(0), &mut Vec::new())),
        Op::Clear => drop(t.clear()),
        Op::PopItem => drop(t.pop_any()),
        Op::UpdateWithRemove => drop(t.update_with(&key(1), |_| None)),
        Op::Reserve => drop(t.reserve(500)),
    }
}

/// For every k: a dict, then `op` stopped after its k-th write (holding the lock), then a
/// survivor's write, which repairs. Every key is present with an intact value or absent
/// as the operation allows; the counts match; no block leaked; the finalizer frees all.
fn stopped_at_every_write(op: Op) {
    let (n, len) = match op {
        Op::InsertGrowing => (5, 16), // 5 live in 8 slots: the next insert grows
        Op::RemoveLast => (1, 16),
        _ => (12, 40),
    };
    let mut k = 0;
    loop {
        let b = filled(n, len);
        let before: HashMap<Vec<u8>, Vec<u8>> = me(&b).items().unwrap().into_iter().collect();
        let hook = CrashAfter::new(k);
        run(
            op,
            &DictTable::with_hook(
                raw(&b),
                &b,
                Scripted::alive(1),
                SpinPolicy::default(),
                &hook,
            ),
        );
        let crashed = hook.crashed();
        // A reader that comes now gets through (by the lock and a repair if need be).
        let survivor = table(&b, Scripted::survivor(2).peer_gone());
        let mut out = Vec::new();
        let _ = survivor.get(b"k4", &mut out);
        // A write repairs for sure.
        survivor.insert(b"probe", b"p").unwrap();
        assert_eq!(survivor.remove(b"probe", &mut out), Ok(true));
        if crashed {
            assert_eq!(
                raw(&b).lock.holder(),
                None,
                "k={k}: the survivor released it"
            );
        }
        let after: HashMap<Vec<u8>, Vec<u8>> = survivor.items().unwrap().into_iter().collect();
        for (key, v) in &after {
            assert!(intact(v), "{op:?} k={k}: torn value for {key:?}");
            if let Some(old) = before.get(key) {
                let new_value = matches!(op, Op::Replace) && key == b"k2";
                assert!(old == v || new_value, "{op:?} k={k}: {key:?} changed");
            }
        }
        for key in before.keys() {
            let may_go = match op {
                Op::Remove => key == b"k3",
                Op::RemoveLast => key == b"k0",
                Op::UpdateWithRemove => key == b"k1",
                Op::Clear | Op::PopItem => true,
                _ => false,
            };
            assert!(
                after.contains_key(key) || may_go,
                "{op:?} k={k}: {key:?} lost"
            );
        }
        check_consistent(&b);
        finalize(raw(&b), &b);
        assert_eq!(b.allocated(), 0, "{op:?} k={k}");
        if !crashed {
            break;
        }
        k += 1;
    }
    assert!(k >= 4, "{op:?}: only {k} writes");
}

#[test]
fn insert_new_stopped_anywhere() {
    stopped_at_every_write(Op::InsertNew);
}

#[test]
fn insert_growing_stopped_anywhere() {
    stopped_at_every_write(Op::InsertGrowing);
}

#[test]
fn replace_stopped_anywhere() {
    stopped_at_every_write(Op::Replace);
}

#[test]
fn remove_stopped_anywhere() {
    stopped_at_every_write(Op::Remove);
    stopped_at_every_write(Op::RemoveLast);
}

#[test]
fn clear_stopped_anywhere() {
    stopped_at_every_write(Op::Clear);
}

#[test]
fn popitem_and_update_with_stopped_anywhere() {
    stopped_at_every_write(Op::PopItem);
    stopped_at_every_write(Op::UpdateWithRemove);
}

#[test]
fn reserve_stopped_anywhere() {
    stopped_at_every_write(Op::Reserve);
}

/// A writer stopped in the middle of anything, then the dict's last reference goes: the
/// finalizer (stopped itself after each of its writes, then run again) frees every block.
#[test]
fn finalizer_after_a_dead_writer_and_stopped_itself() {
    for op in [Op::InsertGrowing, Op::Replace, Op::Clear, Op::Remove] {
        for k in [0u64, 1, 2, 3, 5, 8] {
            let mut j = 0;
            loop {
                let b = filled(5, 24);
                let hook = CrashAfter::new(k);
                run(
                    op,
                    &DictTable::with_hook(
                        raw(&b),
                        &b,
                        Scripted::alive(1),
                        SpinPolicy::default(),
                        &hook,
                    ),
                );
                let fin = CrashAfter::new(j);
                let stopped = finalize_with(raw(&b), &b, &&fin).is_err();
                finalize(raw(&b), &b);
                assert_eq!(b.allocated(), 0, "{op:?} k={k} j={j}");
                if !stopped {
                    break;
                }
                j += 1;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Hostile bytes.

/// A peer scribbles on the index words, the entry headers and the state: calls return
/// misses, errors or garbage, never panic or read out of bounds (`words` would fail the
/// test by panicking in `HeapBlocks::word` if an offset escaped: it does not), never hang;
/// the readers report damage they meet as [`DictError::Corrupt`] (some rounds must);
/// `clear` makes a working dict again.
#[test]
fn hostile_bytes_give_errors_or_misses() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let mut reported = 0;
    for round in 0..200u64 {
        let b = filled(40, 24);
        let r = raw(&b);
        let (off, shift) = unpack(r.index.load(Ordering::Relaxed));
        let view = View::at(&b, off, shift).unwrap();
        let entries: Vec<u64> = (0..view.slots())
            .filter(|&i| is_live(view.meta(i).load(Ordering::Relaxed)))
            .map(|i| view.link(i).load(Ordering::Relaxed))
            .collect();
        for _ in 0..1 + rng.next() % 8 {
            let garbage = match rng.next() % 6 {
                0 => rng.next(),
                1 => rng.next() % (4 << 20),
                2 => u64::MAX,
                3 => 0,
                4 => 1,
                _ => rng.next() % 64,
            };
            match rng.next() % 5 {
                0 => view.words[(rng.next() as usize) % view.words.len()]
                    .store(garbage, Ordering::Relaxed),
                1 | 2 => {
                    let e = entries[(rng.next() as usize) % entries.len()];
                    b.word(e + 8 * (rng.next() % 3))
                        .store(garbage, Ordering::Relaxed);
                }
                3 => [&r.index, &r.seed, &r.len, &r.tombs, &r.cursor][(rng.next() % 5) as usize]
                    .store(garbage, Ordering::Relaxed),
                _ => [&r.seq, &r.retired, &r.retired_shift][(rng.next() % 3) as usize]
                    .store(garbage, Ordering::Relaxed),
            }
        }
        let t = table(&b, Scripted::survivor(1).peer_gone());
        let mut out = Vec::new();
        for i in 0..50u64 {
            let k = format!("k{i}").into_bytes();
            for r in [t.get(&k, &mut out), t.contains(&k)] {
                match r {
                    Ok(_) => {}
                    Err(DictError::Corrupt(_)) => reported += 1,
                    Err(e) => panic!("round {round}: a read failed with {e}"),
                }
            }
            match (i + round) % 5 {
                0 => drop(t.insert(&k, b"x")),
                1 => drop(t.remove(&k, &mut out)),
                2 => drop(t.update_with(&k, |v| v.map(<[u8]>::to_vec))),
                3 => drop(t.pop_any()),
                _ => drop(t.setdefault(&k, b"d", &mut out)),
            }
        }
        let _ = (t.items(), t.len(), t.capacity());
        // May report blocks it had to forget; the dict is empty and works all the same.
        let _ = t.clear();
        t.insert(b"k", b"again").unwrap();
        assert_eq!(t.get(b"k", &mut out), Ok(true));
        assert_eq!(out, b"again");
        assert_eq!(t.items().unwrap().len(), 1, "round {round}");
        finalize(r, &b);
    }
    assert!(reported > 0, "no read reported the damage in 200 rounds");
}

fn corrupt<T>(r: Result<T, DictError>) -> bool {
    matches!(r, Err(DictError::Corrupt(_)))
}

/// The offset of the entry that `key` links to (lock-free look, test only).
fn entry_of(b: &HeapBlocks, key: &[u8]) -> u64 {
    let t = me(b);
    let view = t.index_view().unwrap().unwrap();
    let found = t.find(&view, key, live_meta(t.hash(key))).unwrap();
    found.expect("the key is in the dict").off
}

/// A peer overwrote an entry's value length (its value now runs past the memory): reads
/// of the key fail with `Corrupt` instead of answering "absent"; `remove`, `pop_any`,
/// `update_with` and `setdefault` fail and leave the entry where it was (`remove` once
/// handed back an empty value and dropped the entry); the other keys stay readable; an
/// insert over the key, or a clear, mends the dict.
#[test]
fn a_damaged_entry_is_an_error_not_a_miss() {
    for value_len in [u64::MAX, 1 << 40, 4 << 20] {
        let b = filled(1, 24);
        let t = me(&b);
        let entry = entry_of(&b, b"k0");
        // [key length, value length, ..]. Relaxed (in these tests): one thread, the peer
        // played between calls.
        b.word(entry + 8).store(value_len, Ordering::Relaxed);
        let mut out = vec![9];
        assert!(corrupt(t.get(b"k0", &mut out)), "get, {value_len}");
        assert_eq!(t.contains(b"k0"), Ok(true), "the key itself is intact");
        assert!(corrupt(t.remove(b"k0", &mut out)), "remove, {value_len}");
        assert!(corrupt(t.pop_any()), "pop_any, {value_len}");
        assert!(corrupt(t.update_with(b"k0", |_| None)), "update_with");
        assert!(corrupt(t.setdefault(b"k0", b"d", &mut out)), "setdefault");
        assert!(corrupt(t.items()), "items, {value_len}");
        // Nothing was removed: the entry is still there, still damaged.
        assert_eq!(t.len(), 1);
        assert_eq!(entry_of(&b, b"k0"), entry);
        // Other keys work.
        t.insert(b"other", b"o").unwrap();
        assert_eq!(t.get(b"other", &mut out), Ok(true));
        assert_eq!(t.remove(b"other", &mut out), Ok(true));
        assert_eq!(out, b"o");
        // An insert over the key replaces the damaged entry.
        assert_eq!(t.insert(b"k0", b"fresh"), Ok(true));
        assert_eq!(t.get(b"k0", &mut out), Ok(true));
        assert_eq!(out, b"fresh");
        check_consistent(&b);
        finalize(raw(&b), &b);
        assert_eq!(b.allocated(), 0);
    }
}

/// A peer overwrote the offset an index slot links: the entry's header now lies outside
/// the memory. Readers of the key report it; a removal does not answer "absent".
#[test]
fn a_link_out_of_the_memory_is_an_error_not_a_miss() {
    let b = filled(3, 24);
    let t = me(&b);
    // Relaxed (here and below): one thread, the peer played between calls.
    let (off, shift) = unpack(raw(&b).index.load(Ordering::Relaxed));
    let view = View::at(&b, off, shift).unwrap();
    let entry = entry_of(&b, b"k1");
    let slot = (0..view.slots())
        .find(|&i| view.link(i).load(Ordering::Relaxed) == entry)
        .unwrap();
    view.link(slot).store(u64::MAX - 7, Ordering::Relaxed);
    let mut out = Vec::new();
    assert!(corrupt(t.get(b"k1", &mut out)));
    assert!(corrupt(t.contains(b"k1")));
    assert!(corrupt(t.remove(b"k1", &mut out)));
    assert!(corrupt(t.update_with(b"k1", |_| None)));
    assert!(corrupt(t.items()));
    assert_eq!(t.get(b"k2", &mut out), Ok(true), "another key");
    assert_eq!(t.len(), 3);
    // The link names no block: clear forgets it and says so; the dict works again.
    assert!(corrupt(t.clear()));
    assert!(t.is_empty());
    t.insert(b"k1", b"again").unwrap();
    assert_eq!(t.get(b"k1", &mut out), Ok(true));
    assert_eq!(out, b"again");
}

#[test]
fn fuzz_corpus_replays() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/dict");
    if std::env::var_os("SHMPROC_WRITE_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in super::fuzz::seeds() {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/dict exists") {
        let Ok(data) = std::fs::read(entry.unwrap().path()) else {
            continue;
        };
        super::fuzz::run(&data);
        n += 1;
    }
    assert!(n >= 4, "the seed corpus is missing ({n} files)");
}

#[test]
fn fuzz_random_inputs_never_go_out_of_bounds() {
    let mut rng = Rng(0x5eed);
    for _ in 0..300 {
        let len = (rng.next() % 600) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        super::fuzz::run(&data);
    }
}
