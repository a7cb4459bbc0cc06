//! Model checks of the dict (`raw::dict`): its seqlock read path against a writer that
//! grows the index, replaces values (a new entry block, the old one freed and reused)
//! and removes keys; read-modify-writes that lose nothing; and a writer killed after each
//! of its writes while it grows the dict, repaired by whoever takes the lock next, with a
//! reader running throughout.
//!
//! Run: `RUSTFLAGS="--cfg shmproc_loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p loom-tests
//! --release --test dict`.
//!
//! The dict starts with the smallest index loom builds use (2 slots: one entry fills it),
//! so that the second insert grows it; values are two words whose halves are equal, so a
//! torn copy shows. The blocks come from [`LoomBlocks`], a first-fit allocator over a
//! vector of loom atomics that reuses freed blocks at once: a reader that raced a free
//! reads a block already rewritten by its next owner, and must throw that read away.
#![cfg(shmproc_loom)]

use loom::sync::Arc;
use loom::thread;
use shmproc::raw::dict::{finalize, CrashAfter, DictTable, RawDict};
use shmproc::raw::sync::liveness::{Liveness, Scripted};
use shmproc::SpinPolicy;

mod common;
use common::LoomBlocks;

/// Words of the model's memory.
const WORDS: usize = 96;

struct World {
    raw: RawDict,
    blocks: LoomBlocks,
}

/// A dict holding `k1 -> val(1)`: its index full (2 slots, one entry).
fn world() -> Arc<World> {
    let w = Arc::new(World {
        raw: RawDict::new(7),
        blocks: LoomBlocks::new(WORDS),
    });
    table(&w, Scripted::alive(9))
        .insert(b"k1", &val(1))
        .unwrap();
    w
}

fn table(w: &World, who: Scripted) -> DictTable<'_, LoomBlocks, Scripted> {
    DictTable::new(&w.raw, &w.blocks, who, SpinPolicy::default())
}

/// A 16-byte value whose two words are equal: a torn copy has two different words.
fn val(n: u64) -> Vec<u8> {
    [n.to_le_bytes(), n.to_le_bytes()].concat()
}

fn uniform(v: &[u8]) -> u64 {
    assert_eq!(v.len(), 16, "value length torn: {v:?}");
    let (a, b) = v.split_at(8);
    assert_eq!(a, b, "torn value {v:?}");
    u64::from_le_bytes(a.try_into().unwrap())
}

fn get(t: &DictTable<'_, LoomBlocks, Scripted>, key: &[u8]) -> Option<u64> {
    let mut out = Vec::new();
    // No model scribbles: a read that reports damage is a bug.
    t.get(key, &mut out).unwrap().then(|| uniform(&out))
}

/// Runs the model `f` with at most `bound` preemptions; returns the executions explored
/// (a model that explores only one has no race in it: see [`reader_thread`]).
fn model(bound: usize, f: impl Fn() + Sync + Send + 'static) -> u64 {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = runs.clone();
    shmproc_testkit::loom::model(bound, move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f()
    });
    let n = runs.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("{n} executions");
    n
}

/// Starts `read` on a thread of its own while the caller (the model's first thread)
/// writes.
///
/// The reader is the spawned thread, not the writer, because of how loom prunes: its
/// DPOR remembers one last access per atomic, and a writer that loads a word before it
/// stores it (as every writer here does: `len`, `seq`) hides the reader's earlier loads
/// of that word, so a reader that runs first is never interleaved with the writer (the
/// model explores one execution). Loom schedules the first thread until it blocks; with
/// the writer there, the reader's loads come after the writer's stores, and each of them
/// makes loom go back and run the reader earlier.
fn reader_thread(read: impl FnOnce() + Send + 'static) -> thread::JoinHandle<()> {
    thread::spawn(read)
}

/// A reader races a writer that grows the index (the second key does not fit the first
/// index): the reader sees k1 whole throughout (growth must not lose it) and k2 absent or
/// whole.
#[test]
fn reader_never_sees_a_wrong_value_while_the_dict_grows() {
    let n = model(2, || {
        let w = world();
        let reader = {
            let w = w.clone();
            reader_thread(move || {
                let t = table(&w, Scripted::alive(1));
                assert_eq!(get(&t, b"k1"), Some(1), "k1 lost or torn");
                let second = get(&t, b"k2");
                assert!(matches!(second, None | Some(2)), "k2 read as {second:?}");
            })
        };
        let t = table(&w, Scripted::alive(2));
        assert_eq!(t.insert(b"k2", &val(2)), Ok(false));
        reader.join().unwrap();
        assert_eq!(get(&t, b"k2"), Some(2));
        assert_eq!(t.len(), 2);
        // The index (4 slots now) and two entries; the old index went back.
        assert_eq!(w.blocks.allocated(), 3);
        finalize(&w.raw, &w.blocks);
        assert_eq!(w.blocks.allocated(), 0);
    });
    assert!(n > 1000, "loom explored {n} executions");
}

/// A reader races a writer that replaces a value (a new entry, swapped in; the old one
/// freed) and then inserts another key, whose entry reuses the freed memory at once: the
/// reader gets the old value or the new one, whole, never the other key's bytes.
#[test]
fn reader_never_sees_a_replaced_value_torn_or_reused() {
    let n = model(2, || {
        let w = world();
        table(&w, Scripted::alive(9)).reserve(2).unwrap();
        let reader = {
            let w = w.clone();
            reader_thread(move || {
                let got = get(&table(&w, Scripted::alive(1)), b"k1");
                assert!(matches!(got, Some(1 | 3)), "k1 read as {got:?}");
            })
        };
        let t = table(&w, Scripted::alive(2));
        assert_eq!(t.insert(b"k1", &val(3)), Ok(true));
        assert_eq!(t.insert(b"k9", &val(9)), Ok(false));
        reader.join().unwrap();
        assert_eq!(get(&t, b"k1"), Some(3));
        assert_eq!(w.blocks.allocated(), 3);
    });
    assert!(n > 100, "loom explored {n} executions");
}

/// A reader looks up a key that a writer removes, while the writer then inserts another
/// key whose entry reuses the removed one's memory at once: the reader gets the removed
/// value whole or nothing, never the new key's value under the old key.
#[test]
fn reader_of_a_removed_key_never_sees_its_reused_memory() {
    let n = model(2, || {
        let w = world();
        table(&w, Scripted::alive(9)).reserve(2).unwrap();
        let reader = {
            let w = w.clone();
            reader_thread(move || {
                let got = get(&table(&w, Scripted::alive(1)), b"k1");
                assert!(matches!(got, None | Some(1)), "k1 read as {got:?}");
            })
        };
        let t = table(&w, Scripted::alive(2));
        let mut old = Vec::new();
        assert_eq!(t.remove(b"k1", &mut old), Ok(true));
        assert_eq!(uniform(&old), 1);
        assert_eq!(t.insert(b"k9", &val(9)), Ok(false));
        reader.join().unwrap();
        assert_eq!(get(&t, b"k1"), None);
        assert_eq!(w.blocks.allocated(), 2);
    });
    assert!(n > 100, "loom explored {n} executions");
}

/// Two read-modify-writes of one key, in two processes: neither is lost.
#[test]
fn concurrent_update_with_loses_nothing() {
    let n = model(2, || {
        let w = world();
        let other = {
            let w = w.clone();
            thread::spawn(move || {
                table(&w, Scripted::alive(2))
                    .update_with(b"k1", |v| Some(val(uniform(v.unwrap()) + 1)))
                    .unwrap();
            })
        };
        table(&w, Scripted::alive(1))
            .update_with(b"k1", |v| Some(val(uniform(v.unwrap()) + 1)))
            .unwrap();
        other.join().unwrap();
        assert_eq!(get(&table(&w, Scripted::alive(1)), b"k1"), Some(3));
        assert_eq!(w.blocks.allocated(), 2);
    });
    assert!(n > 5, "loom explored {n} executions");
}

/// A writer inserts a second key (which grows the index) and is killed after its k-th
/// write, for every k, holding the lock; a reader runs meanwhile (it may have to take the
/// lock over from the dead writer, and repair). Afterwards a survivor writes (repairing
/// if the reader did not): k1 holds its value, k2 is there whole or not at all, the
/// counts match, and the memory holds exactly the index and the entries: nothing leaked.
#[test]
fn a_writer_killed_mid_growth_is_repaired() {
    let mut k = 0;
    loop {
        let crashed_once = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = crashed_once.clone();
        model(1, move || {
            let w = world();
            let team: Vec<Scripted> = Scripted::team(3, true)
                .iter()
                .map(Scripted::watching)
                .collect();
            let reader = {
                let (w, me) = (w.clone(), team[0].clone());
                reader_thread(move || {
                    let t = table(&w, me);
                    assert_eq!(get(&t, b"k1"), Some(1), "k1 lost or torn");
                    let k2 = get(&t, b"k2");
                    assert!(matches!(k2, None | Some(2)), "k2 read as {k2:?}");
                })
            };
            let me = team[1].clone();
            let hook = CrashAfter::new(k);
            let t =
                DictTable::with_hook(&w.raw, &w.blocks, me.clone(), SpinPolicy::default(), &hook);
            let r = t.insert(b"k2", &val(2));
            let crashed = hook.crashed();
            if crashed {
                // Killed: the kernel reports it gone to whoever asks.
                me.kill(me.me());
            } else {
                assert_eq!(r, Ok(false));
            }
            seen.fetch_or(crashed, std::sync::atomic::Ordering::SeqCst);
            reader.join().unwrap();
            let survivor = table(&w, team[2].clone());
            survivor.insert(b"k3", &val(3)).unwrap();
            assert_eq!(get(&survivor, b"k1"), Some(1));
            let k2 = get(&survivor, b"k2");
            assert!(matches!(k2, None | Some(2)), "k2 left as {k2:?}");
            assert!(crashed || k2 == Some(2));
            let n = 2 + usize::from(k2.is_some());
            assert_eq!(survivor.len(), n);
            assert_eq!(survivor.items().map(|i| i.len()), Ok(n));
            assert_eq!(w.blocks.allocated(), 1 + n, "k={k}: a block leaked");
            finalize(&w.raw, &w.blocks);
            assert_eq!(w.blocks.allocated(), 0, "k={k}");
        });
        if !crashed_once.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        k += 1;
    }
    assert!(k >= 10, "only {k} writes");
}
