//! Benches of `SharedDict` and `Value`, with in-run baselines:
//!
//! * `SharedDict` get / insert vs `std::collections::HashMap` behind a `std::sync::Mutex`
//!   in one process, 1024 entries (insert against the map's copy in place and against its
//!   allocating `insert`); `benches/dict.rs` has the same at a million entries;
//! * the same vs Python's `multiprocessing.Manager().dict()`, when `python3` is there;
//! * `Value<u64>::fetch_add` vs an `AtomicU64` in process memory.
//!
//! `cargo bench -p shmproc-benches --bench shared` takes about a minute; under `cargo test
//! -p shmproc-benches --benches` every part runs once, tiny.

mod common;

use criterion::black_box;
use shmproc::shared::{SharedDict, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const ENTRIES: usize = 1024;
const KEY: usize = 16;
const VALUE: usize = 64;

fn key(i: usize) -> [u8; KEY] {
    let mut k = *b"key-000000000000";
    k[4..].copy_from_slice(format!("{:012}", i % ENTRIES).as_bytes());
    k
}

struct Subjects {
    dict: SharedDict,
    map: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
    keys: Vec<[u8; KEY]>,
    value: [u8; VALUE],
}

fn subjects() -> Subjects {
    let dict = SharedDict::with_capacity(ENTRIES).expect("dict");
    let mut map = HashMap::new();
    let value = [7u8; VALUE];
    let keys: Vec<_> = (0..ENTRIES).map(key).collect();
    for k in &keys {
        dict.insert(k, &value).expect("fits");
        map.insert(k.to_vec(), value.to_vec());
    }
    // Sanity before timing: both hold the same data.
    assert_eq!(dict.len(), map.len());
    assert_eq!(dict.get(&keys[5]).unwrap().as_deref(), Some(&value[..]));
    Subjects {
        dict,
        map: Mutex::new(map),
        keys,
        value,
    }
}

fn dict_get(s: &Subjects, n: u64, buf: &mut Vec<u8>) -> Duration {
    let t = Instant::now();
    for i in 0..n as usize {
        black_box(s.dict.get_into(black_box(&s.keys[i % ENTRIES]), buf)).ok();
    }
    t.elapsed()
}

fn map_get(s: &Subjects, n: u64, buf: &mut Vec<u8>) -> Duration {
    let t = Instant::now();
    for i in 0..n as usize {
        let m = s.map.lock().unwrap();
        if let Some(v) = m.get(black_box(&s.keys[i % ENTRIES][..])) {
            buf.clear();
            buf.extend_from_slice(v);
        }
        drop(m);
        black_box(&buf);
    }
    t.elapsed()
}

fn dict_insert(s: &Subjects, n: u64) -> Duration {
    let t = Instant::now();
    for i in 0..n as usize {
        black_box(s.dict.insert(black_box(&s.keys[i % ENTRIES]), &s.value)).ok();
    }
    t.elapsed()
}

/// The map replacing the value in its own buffer: what the dict cannot do (a new value is
/// a new entry block, copy on write, so that no reader and no killed writer ever leaves a
/// torn value), hence the cost of the heap's allocation and free in the ratio.
fn map_insert(s: &Subjects, n: u64) -> Duration {
    let t = Instant::now();
    for i in 0..n as usize {
        let k = black_box(&s.keys[i % ENTRIES][..]);
        let mut m = s.map.lock().unwrap();
        match m.get_mut(k) {
            Some(v) => {
                v.clear();
                v.extend_from_slice(&s.value);
            }
            None => {
                m.insert(k.to_vec(), s.value.to_vec());
            }
        }
    }
    t.elapsed()
}

/// The map's own `insert`: a new key and value allocated, the old ones freed, as the dict
/// allocates a new entry and frees the old one.
fn map_insert_alloc(s: &Subjects, n: u64) -> Duration {
    let t = Instant::now();
    for i in 0..n as usize {
        let k = black_box(&s.keys[i % ENTRIES][..]);
        black_box(s.map.lock().unwrap().insert(k.to_vec(), s.value.to_vec()));
    }
    t.elapsed()
}

fn value_fetch_add(v: &Value<u64>, n: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        black_box(v.fetch_add(1));
    }
    t.elapsed()
}

fn atomic_fetch_add(a: &AtomicU64, n: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        black_box(a.fetch_add(1, Ordering::SeqCst));
    }
    t.elapsed()
}

const PYTHON: &str = r#"
import sys, time, multiprocessing as mp
if __name__ == '__main__':
    n = int(sys.argv[1])
    m = mp.Manager()
    d = m.dict()
    val = b'\x07' * 64
    keys = ['key-%012d' % i for i in range(1024)]
    for k in keys:
        d[k] = val
    t = time.perf_counter()
    for i in range(n):
        d[keys[i % 1024]]
    get = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for i in range(n):
        d[keys[i % 1024]] = val
    put = (time.perf_counter() - t) / n
    print(get * 1e9, put * 1e9)
    m.shutdown()
"#;

/// Python's Manager dict: (get ns, set ns) per operation, if python3 runs.
fn python_manager_dict(n: u64) -> Option<(f64, f64)> {
    let out = std::process::Command::new("python3")
        .args(["-c", PYTHON, &n.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let mut it = text.split_whitespace().map(|s| s.parse::<f64>().ok());
    Some((it.next()??, it.next()??))
}

fn main() {
    let s = subjects();
    let value = Value::new(0u64).expect("value");
    let atomic = AtomicU64::new(0);

    let mut c = common::criterion();
    {
        let mut g = c.benchmark_group("dict");
        let mut buf = Vec::with_capacity(VALUE);
        g.bench_function("SharedDict::get", |b| {
            b.iter_custom(|n| dict_get(&s, n, &mut buf))
        });
        g.bench_function("Mutex<HashMap>::get", |b| {
            b.iter_custom(|n| map_get(&s, n, &mut buf))
        });
        g.bench_function("SharedDict::insert", |b| {
            b.iter_custom(|n| dict_insert(&s, n))
        });
        g.bench_function("Mutex<HashMap> get_mut + copy", |b| {
            b.iter_custom(|n| map_insert(&s, n))
        });
        g.finish();
    }
    {
        let mut g = c.benchmark_group("value");
        g.bench_function("Value<u64>::fetch_add", |b| {
            b.iter_custom(|n| value_fetch_add(&value, n))
        });
        g.bench_function("AtomicU64::fetch_add", |b| {
            b.iter_custom(|n| atomic_fetch_add(&atomic, n))
        });
        g.finish();
    }

    let mut buf = Vec::with_capacity(VALUE);
    let get = common::paired(
        "shared: SharedDict::get vs Mutex<HashMap>::get",
        "op",
        100_000,
        30,
        |n| map_get(&s, n, &mut Vec::with_capacity(VALUE)),
        |n| dict_get(&s, n, &mut buf),
    );
    let insert = common::paired(
        "shared: SharedDict::insert vs Mutex<HashMap> get_mut + copy in place",
        "op",
        100_000,
        30,
        |n| map_insert(&s, n),
        |n| dict_insert(&s, n),
    );
    common::paired(
        "shared: SharedDict::insert vs Mutex<HashMap>::insert (allocating)",
        "op",
        100_000,
        30,
        |n| map_insert_alloc(&s, n),
        |n| dict_insert(&s, n),
    );
    common::paired(
        "shared: Value<u64>::fetch_add vs AtomicU64::fetch_add",
        "op",
        1_000_000,
        30,
        |n| atomic_fetch_add(&atomic, n),
        |n| value_fetch_add(&value, n),
    );

    let n = if common::bench_mode() { 5_000 } else { 20 };
    match python_manager_dict(n) {
        Some((py_get, py_set)) => {
            common::report(&format!(
                "shared: Python Manager().dict() get {py_get:.0} ns/op, set {py_set:.0} ns/op | \
                 SharedDict get {:.1} ns/op ({:.0}x faster), insert {:.1} ns/op ({:.0}x faster)",
                get.subject_ns,
                py_get / get.subject_ns.max(1e-3),
                insert.subject_ns,
                py_set / insert.subject_ns.max(1e-3),
            ));
        }
        None => println!("shared: python3 not available: Manager().dict() comparison skipped"),
    }

    c.final_summary();
}
