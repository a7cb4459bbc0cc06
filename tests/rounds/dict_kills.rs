//! The dict's writer kills, shared by tests/dict.rs (its helpers) and tests/faults.rs (the
//! fault table's `SharedDict` row): writers SIGKILLed at random points of a loop of
//! inserts, replacements, removes, read-modify-writes, popitems and clears, each
//! operation checked wholly done or not against a replayed model, nothing leaked.
#![allow(dead_code)] // each including file uses a part

use shmproc::shared::SharedDict;
use shmproc::{Arena, Lock};
use shmproc_testkit::{fork, SharedPage};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// What [`writers_killed`] found.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Kills that landed inside the dict's lock (the next writer repaired).
    pub locked: u64,
    /// Kills whose operation in flight was found done.
    pub applied: u64,
    /// Entries at the end.
    pub entries: usize,
    /// The most entries after a kill.
    pub max_len: usize,
    /// The arena's heap repairs (kills inside the heap's journal).
    pub heap_repairs: u64,
    /// Each round's time from the kill to the end of its checks (the survivor's reads,
    /// repair and writes).
    pub after_kill: Vec<Duration>,
}

/// A tiny deterministic generator (xorshift), so failures reproduce.
pub struct Rng(pub u64);
impl Rng {
    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

pub fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The value of key `k` at `version`: `[k, version, checksum, filler..]`, `len` bytes
/// (at least 24). Whoever reads it can tell a torn, foreign or stale value.
pub fn value(k: u64, version: u64, len: usize) -> Vec<u8> {
    let len = len.max(24);
    let mut v = Vec::with_capacity(len);
    v.extend(k.to_le_bytes());
    v.extend(version.to_le_bytes());
    v.extend(mix(k ^ version.rotate_left(17) ^ len as u64).to_le_bytes());
    let pat = pattern(k, version);
    while v.len() < len {
        let at = v.len() % 256;
        let n = (256 - at).min(len - v.len());
        v.extend_from_slice(&pat[at..at + n]);
    }
    v
}

/// The filler of a [`value`]: byte `i` is `k ^ version ^ i` (as bytes), so it repeats
/// every 256 bytes.
pub fn pattern(k: u64, version: u64) -> [u8; 256] {
    core::array::from_fn(|i| (k as u8) ^ (version as u8) ^ (i as u8))
}

/// Checks a value made by [`value`]; returns its (key, version).
pub fn check(v: &[u8]) -> (u64, u64) {
    assert!(v.len() >= 24, "value of {} bytes", v.len());
    let w = |i: usize| u64::from_le_bytes(v[8 * i..8 * i + 8].try_into().unwrap());
    let (k, version) = (w(0), w(1));
    assert_eq!(
        w(2),
        mix(k ^ version.rotate_left(17) ^ v.len() as u64),
        "bad checksum: torn or foreign value"
    );
    let pat = pattern(k, version);
    let mut at = 24;
    while at < v.len() {
        let n = (256 - at % 256).min(v.len() - at);
        assert!(v[at..at + n] == pat[at % 256..at % 256 + n], "torn filler");
        at += n;
    }
    (k, version)
}

/// An arena whose own tables exist already: its `used()` is then the objects' bytes.
pub fn warm(size: usize) -> (Arena, usize) {
    let arena = Arena::anonymous(size).unwrap();
    drop(SharedDict::new_in(&arena).unwrap());
    drop(Lock::create(&arena, "warm-up").unwrap());
    arena.unlink_object("warm-up").unwrap();
    (arena.clone(), arena.used())
}

/// One operation of a killed writer's loop, drawn from its generator: the parent replays
/// the same draws to know what the writer did.
#[derive(Debug, Clone, Copy)]
enum Op {
    Insert {
        k: u64,
        version: u64,
        len: usize,
    },
    Remove {
        k: u64,
    },
    /// `update_with`: the value's version + 1 if the key is there (same length).
    Bump {
        k: u64,
    },
    PopItem,
    Clear,
}

/// Op `j` of writer `kill`: keys `0..keys`, values mostly small, one in 16 of 8..64 KiB.
fn draw(rng: &mut Rng, kill: u64, j: u64, keys: u64) -> Op {
    let k = rng.next() % keys;
    let len = match rng.next() % 16 {
        0 => 8192 + rng.next() % 57_344,
        _ => 24 + rng.next() % 400,
    } as usize;
    match rng.next() % 1000 {
        0..=599 => Op::Insert {
            k,
            version: (kill << 32) | j,
            len,
        },
        600..=799 => Op::Remove { k },
        800..=919 => Op::Bump { k },
        920..=997 => Op::PopItem,
        _ => Op::Clear,
    }
}

/// The dict as key -> (version, length), each value checked intact and of its key.
type Model = HashMap<u64, (u64, usize)>;

/// What `op` does to `model` (`popped`: the key a finished `popitem` took, if any).
fn apply(model: &mut Model, op: Op, popped: Option<u64>) {
    match op {
        Op::Insert { k, version, len } => drop(model.insert(k, (version, len.max(24)))),
        Op::Remove { k } => drop(model.remove(&k)),
        Op::Bump { k } => {
            if let Some((v, _)) = model.get_mut(&k) {
                *v += 1;
            }
        }
        Op::PopItem => {
            if let Some(k) = popped {
                assert!(model.remove(&k).is_some(), "popitem took {k}, not there");
            }
        }
        Op::Clear => model.clear(),
    }
}

/// The dict's contents as a [`Model`], every value checked.
fn contents(d: &SharedDict) -> Model {
    let items = d.items().unwrap();
    let mut m = Model::new();
    for (k, v) in &items {
        let key = u64::from_le_bytes(k[..].try_into().expect("an 8-byte key"));
        let (of, version) = check(v);
        assert_eq!(of, key, "the value of another key");
        assert!(
            m.insert(key, (version, v.len())).is_none(),
            "key {key} twice"
        );
    }
    m
}

/// 200 writer processes are SIGKILLed at random points of a loop of inserts (values up to
/// 64 KiB; the index grows, and regrows after the odd clear), replacements, removes,
/// read-modify-writes and popitems: so some die holding the lock, with the sequence odd,
/// with blocks in flight, mid-growth or mid-clear. Each writer's operations are drawn
/// from a generator the parent replays, and each writer counts the operations it
/// finished (and logs what each popitem took): after each kill the dict must be exactly
/// what the finished operations made, with the one in flight wholly done or not at all.
/// Then the parent reads and writes (taking the lock over and repairing). Once the dict
/// is dropped, the arena's bytes and blocks are back to their baseline. Panics (with what
/// broke) on any of those; returns what the kills hit.
pub fn writers_killed(kills: u64) -> Summary {
    const LOG: usize = 1 << 16;
    let (arena, base) = warm(16 << 20);
    let base_blocks = arena.stats().blocks;
    let d = SharedDict::new_in(&arena).unwrap();
    let page = SharedPage::new(4096);
    let done = page.atomic(0);
    // What popitem `j` took (key + 1; 0: nothing), written before `done` counts it.
    let log_page = SharedPage::new(LOG * 8);
    let log = |j: u64| -> &std::sync::atomic::AtomicU64 {
        assert!((j as usize) < LOG);
        // SAFETY: in bounds (checked), 8-aligned (the mapping is page-aligned), zeroed
        // shared memory that lives as long as `log_page`, only used atomically.
        unsafe {
            &*log_page
                .ptr()
                .cast::<std::sync::atomic::AtomicU64>()
                .add(j as usize)
        }
    };
    let mut model = Model::new();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut locked, mut applied, mut max_len) = (0, 0, 0);
    let mut after_kill = Vec::new();
    for kill in 0..kills {
        let seed = rng.next() | 1;
        let keys = 64 + seed % 4000;
        done.store(0, Ordering::SeqCst);
        let child = {
            let d = d.clone();
            fork(move || {
                let mut rng = Rng(seed);
                for j in 0..LOG as u64 - 1 {
                    match draw(&mut rng, kill, j, keys) {
                        Op::Insert { k, version, len } => {
                            d.insert(&k.to_le_bytes(), &value(k, version, len)).unwrap();
                        }
                        Op::Remove { k } => drop(d.remove(&k.to_le_bytes()).unwrap()),
                        Op::Bump { k } => drop(
                            d.update_with(&k.to_le_bytes(), |v| {
                                v.map(|v| value(k, check(v).1 + 1, v.len()))
                            })
                            .unwrap(),
                        ),
                        Op::PopItem => {
                            let k = d.popitem().unwrap().map_or(0, |(k, _)| {
                                u64::from_le_bytes(k[..].try_into().unwrap()) + 1
                            });
                            log(j).store(k, Ordering::SeqCst);
                        }
                        Op::Clear => d.clear().unwrap(),
                    }
                    done.store(j + 1, Ordering::SeqCst);
                }
                loop {
                    std::thread::park(); // the log is full: wait to be killed
                }
            })
        };
        while done.load(Ordering::SeqCst) < 100 {
            std::thread::yield_now();
        }
        // A random moment in the child's loop: up to ~2 ms more of it.
        let until = Instant::now() + Duration::from_micros(rng.next() % 2000);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        assert_eq!(child.kill(), -libc::SIGKILL);
        let killed_at = Instant::now();
        if !format!("{d:?}").contains("writer: None") {
            locked += 1;
        }
        // Replay what the writer finished; then the one it may have been inside.
        let finished = done.load(Ordering::SeqCst);
        let mut replay = Rng(seed);
        for j in 0..finished {
            let op = draw(&mut replay, kill, j, keys);
            let popped = log(j).load(Ordering::SeqCst).checked_sub(1);
            apply(&mut model, op, popped);
        }
        let in_flight = draw(&mut replay, kill, finished, keys);
        let got = contents(&d); // a lock-free read: before any repair
        assert_eq!(got.len(), d.len(), "kill {kill}: len");
        let whole = match in_flight {
            Op::PopItem => {
                got == model
                    || (got.len() + 1 == model.len()
                        && got.iter().all(|(k, v)| model.get(k) == Some(v)))
            }
            op => {
                let mut after = model.clone();
                apply(&mut after, op, None);
                got == model || got == after
            }
        };
        assert!(
            whole,
            "kill {kill}: after {finished} operations, {in_flight:?} is half done ({} \
             entries, {} expected)",
            got.len(),
            model.len()
        );
        if got != model {
            applied += 1;
        }
        model = got;
        max_len = max_len.max(model.len());
        // The survivors keep working: a read, then a write (which repairs if need be).
        if let Some(&(version, len)) = model.get(&7) {
            assert_eq!(d.get(&7u64.to_le_bytes()), Ok(Some(value(7, version, len))));
        }
        d.insert(b"alive", &value(u64::MAX, kill, 24)).unwrap();
        assert_eq!(
            check(&d.remove(b"alive").unwrap().unwrap()),
            (u64::MAX, kill)
        );
        if kill % 10 == 9 {
            assert_eq!(contents(&d), model, "kill {kill}: after the repair");
        }
        after_kill.push(killed_at.elapsed());
    }
    let summary = Summary {
        locked,
        applied,
        entries: d.len(),
        max_len,
        heap_repairs: arena.stats().heap_repairs,
        after_kill,
    };
    assert!(locked > 0, "no kill landed inside the dict's lock");
    drop(d);
    arena.sweep().unwrap();
    if arena.used() != base {
        for b in arena.debug_blocks() {
            println!("  block {:#x} {} {}", b.0, b.1, b.2);
        }
    }
    assert_eq!(arena.used(), base, "the dead left nothing behind");
    assert_eq!(arena.stats().blocks, base_blocks, "blocks");
    summary
}
