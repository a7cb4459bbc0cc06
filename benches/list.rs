//! Benches of the lists, with in-run baselines:
//!
//! * `SharedList<u64>` push and get against a `std::sync::Mutex<Vec<u64>>`, in one thread
//!   and between two threads (two appenders; a reader beside an appender);
//! * the list's lock-free `get` against its own `get` under the lock (what readers would
//!   cost if they took the writer's lock: the choice `raw::list` documents);
//! * `ByteList` of 16-byte elements (kept in the slot) and 64-byte ones (a heap block
//!   each) against a `Mutex<Vec<Vec<u8>>>`;
//! * Python's `multiprocessing.Manager().list()` append and get, when `python3` is there.
//!
//! `cargo bench -p shmproc-benches --bench list` takes about two minutes; under `cargo
//! test -p shmproc-benches --benches` every part runs once, tiny.

mod common;

use criterion::black_box;
use shmproc::shared::{ByteList, SharedList};
use shmproc::{Arena, SpinPolicy};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Elements in the lists that `get` reads.
const LEN: u64 = 4096;

/// A cheap index sequence over `0..LEN` (no division in the timed loop).
#[inline]
fn index(i: u64) -> u64 {
    i.wrapping_mul(2_654_435_761) & (LEN - 1)
}

// ---- push ---------------------------------------------------------------------------------

fn list_push(l: &SharedList<u64>, n: u64) -> Duration {
    let t = Instant::now();
    for i in 0..n {
        l.push(black_box(i)).unwrap();
    }
    let d = t.elapsed();
    l.clear().unwrap();
    d
}

fn vec_push(v: &Mutex<Vec<u64>>, n: u64) -> Duration {
    // Both start empty and grow (the list frees its chunks on clear; so does this).
    *v.lock().unwrap() = Vec::new();
    let t = Instant::now();
    for i in 0..n {
        v.lock().unwrap().push(black_box(i));
    }
    t.elapsed()
}

// ---- get ----------------------------------------------------------------------------------

fn list_get(l: &SharedList<u64>, n: u64) -> Duration {
    let t = Instant::now();
    for i in 0..n {
        black_box(l.get(black_box(index(i))).unwrap());
    }
    t.elapsed()
}

fn vec_get(v: &Mutex<Vec<u64>>, n: u64) -> Duration {
    let t = Instant::now();
    for i in 0..n {
        black_box(v.lock().unwrap()[black_box(index(i)) as usize]);
    }
    t.elapsed()
}

// ---- between two threads ------------------------------------------------------------------

/// Two threads append `n / 2` each; the time until both are done.
fn two_appenders(push: impl Fn(u64) + Sync, n: u64) -> Duration {
    let start = std::sync::Barrier::new(3);
    std::thread::scope(|s| {
        for t in 0..2 {
            let (push, start) = (&push, &start);
            s.spawn(move || {
                start.wait();
                for i in 0..n / 2 {
                    push(t << 32 | i);
                }
            });
        }
        start.wait();
        let t = Instant::now();
        // The scope joins both threads on its way out; time until then.
        t
    })
    .elapsed()
}

/// One thread gets `n` elements while another appends until it is done: the reader's
/// time.
fn reader_beside_appender(get: impl Fn(u64) + Sync, push: impl Fn(u64) + Sync, n: u64) -> Duration {
    let done = AtomicBool::new(false);
    let start = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            start.wait();
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                push(i);
                i += 1;
            }
        });
        start.wait();
        let t = Instant::now();
        for i in 0..n {
            get(index(i));
        }
        let d = t.elapsed();
        done.store(true, Ordering::Relaxed);
        d
    })
}

// ---- byte elements ------------------------------------------------------------------------

fn bytes_push_get(l: &ByteList, e: &[u8], n: u64) -> Duration {
    let mut buf = Vec::with_capacity(e.len());
    let t = Instant::now();
    for i in 0..n {
        l.push(black_box(e)).unwrap();
        l.get_into(black_box(i), &mut buf).unwrap();
        black_box(&buf);
    }
    let d = t.elapsed();
    l.clear().unwrap();
    d
}

fn vec_bytes_push_get(v: &Mutex<Vec<Vec<u8>>>, e: &[u8], n: u64) -> Duration {
    *v.lock().unwrap() = Vec::new();
    let mut buf = Vec::with_capacity(e.len());
    let t = Instant::now();
    for i in 0..n {
        v.lock().unwrap().push(black_box(e).to_vec());
        let g = v.lock().unwrap();
        buf.clear();
        buf.extend_from_slice(&g[black_box(i) as usize]);
        drop(g);
        black_box(&buf);
    }
    t.elapsed()
}

// ---- Python -------------------------------------------------------------------------------

const PYTHON: &str = r#"
import sys, time, multiprocessing as mp
if __name__ == '__main__':
    n = int(sys.argv[1])
    m = mp.Manager()
    l = m.list()
    t = time.perf_counter()
    for i in range(n):
        l.append(i)
    append = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for i in range(n):
        l[(i * 2654435761) % n]
    get = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for i in range(n // 10):
        l.pop()
    pop = (time.perf_counter() - t) / (n // 10)
    print(append * 1e9, get * 1e9, pop * 1e9)
    m.shutdown()
"#;

/// Python's Manager list: (append, get, pop) ns per operation, if python3 runs.
fn python_manager_list(n: u64) -> Option<(f64, f64, f64)> {
    let out = std::process::Command::new("python3")
        .args(["-c", PYTHON, &n.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let mut it = text.split_whitespace().map(|s| s.parse::<f64>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

fn main() {
    let arena = Arena::anonymous(64 << 20).expect("arena");
    let pushed = SharedList::<u64>::new_in(&arena).expect("list");
    let read = SharedList::<u64>::new_in(&arena).expect("list");
    read.extend(0..LEN).unwrap();
    let mut locked_reads = read.clone();
    locked_reads.set_spin(SpinPolicy::NEVER); // every get takes the lock
    let vec = Mutex::new(Vec::new());
    let vec_read = Mutex::new((0..LEN).collect::<Vec<u64>>());
    // Sanity before timing: the same data, read alike.
    assert_eq!(
        read.get(index(77)).unwrap(),
        vec_read.lock().unwrap()[index(77) as usize]
    );
    assert_eq!(locked_reads.get(-1).unwrap(), LEN - 1);
    let bytes = ByteList::new_in(&arena).expect("list");
    let vec_bytes = Mutex::new(Vec::new());
    let elem = [5u8; 64];

    let mut c = common::criterion();
    {
        let mut g = c.benchmark_group("list");
        g.bench_function("SharedList<u64>::push", |b| {
            b.iter_custom(|n| list_push(&pushed, n))
        });
        g.bench_function("Mutex<Vec<u64>>::push", |b| {
            b.iter_custom(|n| vec_push(&vec, n))
        });
        g.bench_function("SharedList<u64>::get", |b| {
            b.iter_custom(|n| list_get(&read, n))
        });
        g.bench_function("SharedList<u64>::get, locked", |b| {
            b.iter_custom(|n| list_get(&locked_reads, n))
        });
        g.bench_function("Mutex<Vec<u64>>::get", |b| {
            b.iter_custom(|n| vec_get(&vec_read, n))
        });
        g.finish();
    }

    let push = common::paired(
        "list: SharedList<u64>::push vs Mutex<Vec<u64>>::push, one thread",
        "op",
        100_000,
        30,
        |n| vec_push(&vec, n),
        |n| list_push(&pushed, n),
    );
    let get = common::paired(
        "list: SharedList<u64>::get vs Mutex<Vec<u64>> index, one thread",
        "op",
        1_000_000,
        30,
        |n| vec_get(&vec_read, n),
        |n| list_get(&read, n),
    );
    common::paired(
        "list: SharedList<u64>::get, lock-free vs under the lock, one thread",
        "op",
        1_000_000,
        30,
        |n| list_get(&locked_reads, n),
        |n| list_get(&read, n),
    );
    common::paired(
        "list: two threads appending, SharedList<u64> vs Mutex<Vec<u64>>",
        "op",
        200_000,
        20,
        |n| {
            *vec.lock().unwrap() = Vec::new();
            two_appenders(|x| vec.lock().unwrap().push(x), n)
        },
        |n| {
            pushed.clear().unwrap();
            two_appenders(|x| pushed.push(x).unwrap(), n)
        },
    );
    common::paired(
        "list: get beside an appending thread, SharedList<u64> vs Mutex<Vec<u64>>",
        "op",
        200_000,
        20,
        |n| {
            *vec.lock().unwrap() = (0..LEN).collect();
            reader_beside_appender(
                |i| {
                    black_box(vec.lock().unwrap()[i as usize]);
                },
                |x| vec.lock().unwrap().push(x),
                n,
            )
        },
        |n| {
            pushed.clear().unwrap();
            pushed.extend(0..LEN).unwrap();
            reader_beside_appender(
                |i| {
                    black_box(pushed.get(i).unwrap());
                },
                |x| pushed.push(x).unwrap(),
                n,
            )
        },
    );
    common::paired(
        "list: get beside an appending thread, SharedList<u64> lock-free vs under the lock",
        "op",
        200_000,
        20,
        |n| {
            pushed.clear().unwrap();
            pushed.extend(0..LEN).unwrap();
            let mut locked = pushed.clone();
            locked.set_spin(SpinPolicy::NEVER);
            reader_beside_appender(
                |i| {
                    black_box(locked.get(i).unwrap());
                },
                |x| pushed.push(x).unwrap(),
                n,
            )
        },
        |n| {
            pushed.clear().unwrap();
            pushed.extend(0..LEN).unwrap();
            reader_beside_appender(
                |i| {
                    black_box(pushed.get(i).unwrap());
                },
                |x| pushed.push(x).unwrap(),
                n,
            )
        },
    );
    pushed.clear().unwrap();
    common::paired(
        "list: ByteList push + get of 16 bytes (in the slot) vs Mutex<Vec<Vec<u8>>>",
        "op",
        50_000,
        20,
        |n| vec_bytes_push_get(&vec_bytes, &elem[..16], n),
        |n| bytes_push_get(&bytes, &elem[..16], n),
    );
    common::paired(
        "list: ByteList push + get of 64 bytes (a block each) vs Mutex<Vec<Vec<u8>>>",
        "op",
        50_000,
        20,
        |n| vec_bytes_push_get(&vec_bytes, &elem, n),
        |n| bytes_push_get(&bytes, &elem, n),
    );

    let n = if common::bench_mode() { 5_000 } else { 20 };
    let measured = !push.subject_ns.is_nan() && !get.subject_ns.is_nan();
    match python_manager_list(n).filter(|_| measured) {
        Some((py_append, py_get, py_pop)) => {
            common::report(&format!(
                "list: Python Manager().list() append {py_append:.0} ns/op, get {py_get:.0} \
                 ns/op, pop {py_pop:.0} ns/op | SharedList<u64> push {:.1} ns/op ({:.0}x \
                 faster), get {:.1} ns/op ({:.0}x faster)",
                push.subject_ns,
                py_append / push.subject_ns.max(1e-3),
                get.subject_ns,
                py_get / get.subject_ns.max(1e-3),
            ));
        }
        None => println!(
            "list: Manager().list() comparison skipped (no python3, or push / get not measured)"
        ),
    }

    c.final_summary();
}
