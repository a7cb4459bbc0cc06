//! `SharedDict` at a million entries, against its baselines in the same run, in one
//! process (16-byte keys, 64-byte values, keys visited in a random order so that every
//! lookup misses the caches as it would in a big table):
//!
//! * `get` vs `std::collections::HashMap<Vec<u8>, Vec<u8>>` behind a `std::sync::Mutex`
//!   (both copy the value out into a reused buffer); the target is within 1.5x;
//! * `insert` of an existing key (a new value) vs the map's `get_mut` + copy in place
//!   (the fair baseline for a map that owns its buffers) and vs the map's `insert`, which
//!   allocates a new key and value as the dict allocates a new entry;
//! * `insert` of a new key then `remove` of it, vs the same on the map;
//! * filling both from empty to a million (the dict grows ~17 times on the way), once;
//! * Python's `multiprocessing.Manager().dict()` (`benches/manager_dict.py`, when
//!   `python3` runs): get and set per operation, against the dict's.
//!
//! `cargo bench -p shmproc-benches --bench dict` takes about a minute and ~600 MB; under
//! `cargo test -p shmproc-benches --benches` every part runs once, on 10,000 entries.

mod common;

use common::{bench_mode, criterion, paired};
use criterion::black_box;
use shmproc::{Arena, SharedDict};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const KEY: usize = 16;
const VALUE: usize = 64;

fn entries() -> usize {
    if bench_mode() {
        1_000_000
    } else {
        10_000
    }
}

fn key(i: usize) -> [u8; KEY] {
    let mut k = *b"key-000000000000";
    k[4..].copy_from_slice(format!("{i:012}").as_bytes());
    k
}

struct Subjects {
    _arena: Arena,
    dict: SharedDict,
    map: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
    keys: Vec<[u8; KEY]>,
    /// The order in which the loops visit the keys (a random permutation).
    order: Vec<u32>,
    value: [u8; VALUE],
}

fn fill_dict(d: &SharedDict, keys: &[[u8; KEY]], value: &[u8]) -> Duration {
    let t = Instant::now();
    for k in keys {
        d.insert(k, value).expect("fits");
    }
    t.elapsed()
}

fn fill_map(m: &Mutex<HashMap<Vec<u8>, Vec<u8>>>, keys: &[[u8; KEY]], value: &[u8]) -> Duration {
    let t = Instant::now();
    for k in keys {
        m.lock().unwrap().insert(k.to_vec(), value.to_vec());
    }
    t.elapsed()
}

fn subjects() -> Subjects {
    let n = entries();
    let arena = Arena::anonymous(64 << 20).expect("arena");
    let dict = SharedDict::new_in(&arena).expect("dict");
    let map = Mutex::new(HashMap::new());
    let value = [7u8; VALUE];
    let keys: Vec<_> = (0..n).map(key).collect();
    // Filling both from empty, once each, interleaved: the growth on the way included.
    let d = fill_dict(&dict, &keys, &value);
    let m = fill_map(&map, &keys, &value);
    common::report(&format!(
        "dict: fill {n} from empty: SharedDict {:.0} ns/insert, Mutex<HashMap> {:.0} ns/insert, \
         ratio {:.2} (one run)",
        d.as_nanos() as f64 / n as f64,
        m.as_nanos() as f64 / n as f64,
        d.as_secs_f64() / m.as_secs_f64()
    ));
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    // Sanity before timing: both hold the same data.
    assert_eq!(dict.len(), n);
    assert_eq!(map.lock().unwrap().len(), n);
    assert_eq!(dict.get(&keys[n / 2]).unwrap().as_deref(), Some(&value[..]));
    Subjects {
        _arena: arena,
        dict,
        map,
        keys,
        order,
        value,
    }
}

impl Subjects {
    #[inline]
    fn key(&self, i: u64) -> &[u8] {
        &self.keys[self.order[i as usize % self.order.len()] as usize]
    }
}

fn dict_get(s: &Subjects, n: u64, buf: &mut Vec<u8>) -> Duration {
    let t = Instant::now();
    for i in 0..n {
        black_box(s.dict.get_into(black_box(s.key(i)), buf)).ok();
    }
    t.elapsed()
}

fn map_get(s: &Subjects, n: u64, buf: &mut Vec<u8>) -> Duration {
    let t = Instant::now();
    for i in 0..n {
        let m = s.map.lock().unwrap();
        if let Some(v) = m.get(black_box(s.key(i))) {
            buf.clear();
            buf.extend_from_slice(v);
        }
        drop(m);
        black_box(&buf);
    }
    t.elapsed()
}

fn dict_replace(s: &Subjects, n: u64) -> Duration {
    let t = Instant::now();
    for i in 0..n {
        black_box(s.dict.insert(black_box(s.key(i)), &s.value)).ok();
    }
    t.elapsed()
}

/// The map reusing the value's buffer when the key exists.
fn map_replace_in_place(s: &Subjects, n: u64) -> Duration {
    let t = Instant::now();
    for i in 0..n {
        let k = black_box(s.key(i));
        let mut m = s.map.lock().unwrap();
        if let Some(v) = m.get_mut(k) {
            v.clear();
            v.extend_from_slice(&s.value);
        }
    }
    t.elapsed()
}

/// The map's own `insert`: a new key and a new value allocated, the old ones freed.
fn map_replace_insert(s: &Subjects, n: u64) -> Duration {
    let t = Instant::now();
    for i in 0..n {
        let k = black_box(s.key(i));
        black_box(s.map.lock().unwrap().insert(k.to_vec(), s.value.to_vec()));
    }
    t.elapsed()
}

fn dict_add_remove(s: &Subjects, n: u64) -> Duration {
    let t = Instant::now();
    for i in 0..n {
        let mut k = *b"new-000000000000";
        k[4..12].copy_from_slice(&s.key(i)[8..]);
        black_box(s.dict.insert(&k, &s.value)).ok();
        black_box(s.dict.remove(&k)).ok();
    }
    t.elapsed()
}

fn map_add_remove(s: &Subjects, n: u64) -> Duration {
    let t = Instant::now();
    for i in 0..n {
        let mut k = *b"new-000000000000";
        k[4..12].copy_from_slice(&s.key(i)[8..]);
        black_box(s.map.lock().unwrap().insert(k.to_vec(), s.value.to_vec()));
        black_box(s.map.lock().unwrap().remove(&k[..]));
    }
    t.elapsed()
}

/// Python's Manager dict: (entries, get ns, set ns) per operation, if python3 runs.
fn python_manager_dict(n: usize) -> Option<(usize, f64, f64)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/manager_dict.py");
    let out = std::process::Command::new("python3")
        .args([script, &n.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let mut it = text.split_whitespace();
    Some((
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    ))
}

fn main() {
    let s = subjects();
    let mut c = criterion();
    {
        let mut g = c.benchmark_group("dict-1M");
        let mut buf = Vec::with_capacity(VALUE);
        g.bench_function("SharedDict::get", |b| {
            b.iter_custom(|n| dict_get(&s, n, &mut buf))
        });
        g.bench_function("Mutex<HashMap>::get", |b| {
            b.iter_custom(|n| map_get(&s, n, &mut buf))
        });
        g.bench_function("SharedDict::insert (existing key)", |b| {
            b.iter_custom(|n| dict_replace(&s, n))
        });
        g.bench_function("Mutex<HashMap> get_mut + copy", |b| {
            b.iter_custom(|n| map_replace_in_place(&s, n))
        });
        g.finish();
    }

    let big = if bench_mode() { "1M" } else { "10k" };
    let (mut b1, mut b2) = (Vec::with_capacity(VALUE), Vec::with_capacity(VALUE));
    let get = paired(
        &format!("dict: SharedDict::get vs Mutex<HashMap>::get, {big} entries, random keys"),
        "op",
        200_000,
        30,
        |n| map_get(&s, n, &mut b1),
        |n| dict_get(&s, n, &mut b2),
    );
    let replace = paired(
        &format!("dict: SharedDict::insert (existing key) vs Mutex<HashMap> get_mut + copy, {big} entries"),
        "op",
        200_000,
        30,
        |n| map_replace_in_place(&s, n),
        |n| dict_replace(&s, n),
    );
    paired(
        &format!(
            "dict: SharedDict::insert (existing key) vs Mutex<HashMap>::insert, {big} entries"
        ),
        "op",
        200_000,
        30,
        |n| map_replace_insert(&s, n),
        |n| dict_replace(&s, n),
    );
    paired(
        &format!(
            "dict: SharedDict insert + remove of a new key vs Mutex<HashMap>'s, {big} entries"
        ),
        "op",
        100_000,
        30,
        |n| map_add_remove(&s, n),
        |n| dict_add_remove(&s, n),
    );

    let n = if bench_mode() { 10_000 } else { 200 };
    match python_manager_dict(n) {
        Some((entries, py_get, py_set)) => common::report(&format!(
            "dict: Python Manager().dict() ({entries} entries) get {py_get:.0} ns/op, set \
             {py_set:.0} ns/op | SharedDict ({big} entries) get {:.0} ns/op ({:.0}x faster), \
             insert {:.0} ns/op ({:.0}x faster)",
            get.subject_ns,
            py_get / get.subject_ns.max(1e-3),
            replace.subject_ns,
            py_set / replace.subject_ns.max(1e-3),
        )),
        None => println!("dict: python3 not available: Manager().dict() comparison skipped"),
    }

    c.final_summary();
}
