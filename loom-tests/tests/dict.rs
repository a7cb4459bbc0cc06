//! Model checks of `SharedDict`'s seqlock read path and its writer lock.
//!
//! Run: `RUSTFLAGS="--cfg shmproc_loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p loom-tests
//! --release --test dict`.
//!
//! The table is tiny (capacity 1-2, so 2-4 slots; 16-byte values = two words), so that a
//! reader's copy can be torn between the two words of a value: the seqlock must throw
//! every such copy away.
#![cfg(shmproc_loom)]

use loom::sync::atomic::AtomicU64;
use loom::sync::Arc;
use loom::thread;
use shmproc::raw::dict::{DictGeometry, DictTable, RawDict};
use shmproc::raw::sync::liveness::Scripted;

struct State {
    raw: RawDict,
    words: Vec<AtomicU64>,
}

fn state(capacity: usize) -> Arc<State> {
    let g = DictGeometry::new(capacity, 8, 16).unwrap();
    Arc::new(State {
        raw: RawDict::new(g),
        words: (0..g.table_words()).map(|_| AtomicU64::new(0)).collect(),
    })
}

/// Model threads never die; each has its own id.
fn table(s: &State, id: u32) -> DictTable<'_, Scripted> {
    DictTable::new(&s.raw, &s.words, Scripted::alive(id)).unwrap()
}

/// A 16-byte value whose two words are equal: a torn copy has two different words.
fn val(n: u64) -> Vec<u8> {
    [n.to_le_bytes(), n.to_le_bytes()].concat()
}

fn check_uniform(v: &[u8]) -> u64 {
    assert_eq!(v.len(), 16, "value length torn: {v:?}");
    let (a, b) = v.split_at(8);
    assert_eq!(a, b, "torn value {v:?}");
    u64::from_le_bytes(a.try_into().unwrap())
}

#[test]
fn reader_sees_old_or_new_value_never_a_mix() {
    loom::model(|| {
        let s = state(1);
        table(&s, 1).insert(b"k", &val(1)).unwrap();
        let s2 = s.clone();
        let w = thread::spawn(move || {
            table(&s2, 2).insert(b"k", &val(2)).unwrap();
        });
        let mut out = Vec::new();
        assert!(table(&s, 3).get(b"k", &mut out));
        let n = check_uniform(&out);
        assert!(n == 1 || n == 2);
        w.join().unwrap();
        assert!(table(&s, 3).get(b"k", &mut out));
        assert_eq!(check_uniform(&out), 2);
    });
}

#[test]
fn reader_sees_insert_and_remove_atomically() {
    loom::model(|| {
        let s = state(1);
        let s2 = s.clone();
        let w = thread::spawn(move || {
            let t = table(&s2, 2);
            t.insert(b"key", &val(7)).unwrap();
            let mut old = Vec::new();
            assert!(t.remove(b"key", &mut old));
            assert_eq!(check_uniform(&old), 7);
        });
        let t = table(&s, 3);
        let mut out = Vec::new();
        if t.get(b"key", &mut out) {
            assert_eq!(check_uniform(&out), 7);
        }
        let snap = t.snapshot();
        assert!(snap.len() <= 1);
        for (k, v) in snap {
            assert_eq!(k, b"key");
            assert_eq!(check_uniform(&v), 7);
        }
        w.join().unwrap();
        assert!(!t.contains(b"key"));
        assert_eq!(t.len(), 0);
    });
}

#[test]
fn concurrent_update_with_loses_nothing() {
    loom::model(|| {
        let s = state(2);
        table(&s, 1).insert(b"n", &val(0)).unwrap();
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let s = s.clone();
                thread::spawn(move || {
                    table(&s, 10 + i)
                        .update_with(b"n", |v| Some(val(check_uniform(v.unwrap()) + 1)))
                        .unwrap();
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let mut out = Vec::new();
        assert!(table(&s, 3).get(b"n", &mut out));
        assert_eq!(check_uniform(&out), 2);
    });
}
