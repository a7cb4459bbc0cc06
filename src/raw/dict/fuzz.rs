//! Fuzz entry point (not public API: compiled only for tests and `cfg(fuzzing)`).
//!
//! [`run`] makes a dict over a private heap and runs a script of operations from the
//! input: inserts of values of any size, removes, gets, read-modify-writes, `popitem`,
//! `clear`, `reserve`, writers stopped after their k-th write (a survivor repairs), and
//! scribbles on the index, the entries and the state.
//!
//! Always: no panic, no access outside the heap's buffer (every offset goes through
//! `Blocks::words`, which checks it). While nothing hostile has happened: the dict
//! matches a `HashMap` model (a stopped writer's key may hold its old or its new value),
//! every value is intact, and the heap holds exactly the index and one block per entry.

use super::*;
use crate::raw::owned::HeapBlocks;
use crate::sync::liveness::Scripted;
use std::collections::HashMap;

const LEN: u64 = 256 << 10;
const STATE: u64 = 128;

use crate::fuzz::Input;

/// A value for `key` at `version`: `len` bytes (at least 8) whose first 8 are a checksum
/// of the rest, so a torn or foreign value shows.
fn value(key: u8, version: u8, len: usize) -> Vec<u8> {
    let len = len.max(8);
    let mut v: Vec<u8> = (0..len)
        .map(|i| key ^ version.wrapping_mul(7) ^ (i as u8).wrapping_mul(13))
        .collect();
    let sum = checksum(&v[8..]);
    v[..8].copy_from_slice(&sum.to_le_bytes());
    v
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn intact(v: &[u8]) -> bool {
    v.len() >= 8 && v[..8] == checksum(&v[8..]).to_le_bytes()
}

fn key(k: u8) -> Vec<u8> {
    // Keys of several lengths, some sharing their first word.
    let mut key = b"key-of-some-length".to_vec();
    key.truncate(1 + usize::from(k % 17));
    key.push(k);
    key
}

/// Runs one fuzz case. Panics only if a guarantee is broken.
pub fn run(data: &[u8]) {
    let mut inp = Input(data);
    let b = HeapBlocks::new(LEN);
    let raw: &RawDict = b.state(STATE);
    raw.set_seed(inp.u64());
    // Process 1 survives every other: a dead writer's lock is taken over at once.
    let me = Scripted::survivor(1).peer_gone();
    let t = DictTable::new(raw, &b, me, SpinPolicy::rounds(1));
    let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut hostile = false;
    let mut doomed = 2;
    let mut out = Vec::new();
    let mut version = 0u8;
    while !inp.0.is_empty() {
        let op = inp.u8();
        let k = key(inp.u8() % 64);
        version = version.wrapping_add(1);
        let len = match inp.u8() % 8 {
            0 => 0,
            1 => 2000 + usize::from(inp.u8()) * 16,
            _ => usize::from(inp.u8()),
        };
        let v = value(k[k.len() - 1], version, len);
        match op % 12 {
            0..=2 => match t.insert(&k, &v) {
                Ok(replaced) => {
                    assert!(hostile || replaced == model.insert(k, v).is_some());
                }
                Err(DictError::OutOfSpace { .. }) => {}
                Err(e) => assert!(hostile, "{e}"),
            },
            3 => match t.remove(&k, &mut out) {
                Ok(got) => assert!(hostile || got.then(|| out.clone()) == model.remove(&k)),
                Err(e) => assert!(hostile, "{e}"),
            },
            4 => match t.get(&k, &mut out) {
                Ok(got) => assert!(hostile || got.then_some(&out) == model.get(&k)),
                Err(e) => assert!(hostile, "{e}"),
            },
            5 => {
                let r = t.update_with(&k, |cur| match cur {
                    Some(_) if len % 2 == 0 => None,
                    _ => Some(v.clone()),
                });
                match r {
                    Ok(old) if !hostile => {
                        assert_eq!(old.as_ref(), model.get(&k));
                        if old.is_some() && len % 2 == 0 {
                            model.remove(&k);
                        } else {
                            model.insert(k, v);
                        }
                    }
                    Err(DictError::OutOfSpace { .. }) => {}
                    _ => assert!(hostile),
                }
            }
            6 => match t.pop_any() {
                Ok(Some((k, v))) => assert!(hostile || model.remove(&k) == Some(v)),
                Ok(None) => assert!(hostile || model.is_empty()),
                Err(e) => assert!(hostile, "{e}"),
            },
            7 if len % 4 == 0 => {
                if let Err(e) = t.clear() {
                    assert!(hostile, "{e}");
                }
                model.clear();
            }
            7 => {
                let _ = t.reserve(len);
            }
            8 | 9 => {
                // A writer stopped after its k-th write, holding the lock.
                let hook = CrashAfter::new(u64::from(inp.u8() % 24));
                let w = DictTable::with_hook(
                    raw,
                    &b,
                    Scripted::survivor(doomed).peer_gone(),
                    SpinPolicy::rounds(1),
                    &hook,
                );
                doomed += 1;
                let before = model.get(&k).cloned();
                let kind = op % 3;
                match kind {
                    0 => drop(w.insert(&k, &v)),
                    1 => drop(w.remove(&k, &mut out)),
                    _ => drop(w.clear()),
                }
                if !hostile {
                    // Finished or stopped, the key holds its old value or its new one
                    // (none, for a removal); a clear happened or did not. Learn which.
                    let now = t.get(&k, &mut out).unwrap().then(|| out.clone());
                    let allowed = match kind {
                        0 => now == before || now.as_ref() == Some(&v),
                        1 => now == before || now.is_none(),
                        _ => true,
                    };
                    assert!(allowed, "a stopped writer left {k:?} as {now:?}");
                    if kind == 2 {
                        let items: HashMap<Vec<u8>, Vec<u8>> =
                            t.items().unwrap().into_iter().collect();
                        assert!(items.is_empty() || items == model, "a clear went half-way");
                        model = items;
                    } else {
                        match now {
                            Some(nv) => drop(model.insert(k, nv)),
                            None => drop(model.remove(&k)),
                        }
                    }
                }
            }
            10 => {
                // A scribble: a word of the index, an entry, or the state.
                hostile = true;
                let garbage = inp.u64();
                let which = inp.u8();
                let (index, _) = unpack(raw.index.load(Ordering::Relaxed));
                let at = match which % 3 {
                    0 if index != 0 => index + 8 * u64::from(inp.u8()),
                    1 => {
                        let view = t.index_view().ok().flatten();
                        let link = view
                            .map(|v| v.link(usize::from(inp.u8())).load(Ordering::Relaxed))
                            .unwrap_or(0);
                        if link == 0 {
                            continue;
                        }
                        link + 8 * u64::from(inp.u8() % 4)
                    }
                    _ => STATE + 16 + 8 * u64::from(inp.u8() % 11),
                };
                if let Ok(w) = b.words(at, 1) {
                    w[0].store(garbage, Ordering::Relaxed);
                }
            }
            _ => {
                let items = t.items();
                if !hostile {
                    let items = items.unwrap();
                    assert_eq!(items.len(), model.len());
                    for (k, v) in items {
                        assert!(intact(&v));
                        assert_eq!(model.get(&k), Some(&v));
                    }
                }
            }
        }
        if !hostile && !raw.lock.is_locked() {
            assert_eq!(t.len(), model.len());
            let index = u64::from(raw.index.load(Ordering::Relaxed) != 0);
            if raw.in_flight.blocks() == [0, 0] && raw.retired.load(Ordering::Relaxed) == 0 {
                assert_eq!(b.allocated(), index + raw.len(), "a block leaked");
            }
        }
    }
    finalize(raw, &b);
    if !hostile {
        assert_eq!(b.allocated(), 0, "the finalizer left blocks");
    }
}

/// Seed inputs: each exercises what it is named for.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let seed = 0x0123_4567_89ab_cdefu64.to_le_bytes();
    let mut grow = seed.to_vec();
    for i in 0..120u8 {
        grow.extend([0, i, 2, 40]);
    }
    grow.extend([11, 0, 2, 0]);
    let mut churn = seed.to_vec();
    for i in 0..100u8 {
        churn.extend([1, i % 20, 2, i, 3, (i + 7) % 20, 2, 9, 5, i % 30, 3, 1]);
    }
    let mut crashes = seed.to_vec();
    for i in 0..60u8 {
        crashes.extend([
            0,
            i,
            2,
            30,
            8,
            i,
            2,
            8,
            i % 24,
            9,
            i / 2,
            4,
            4,
            i % 24,
            11,
            0,
            0,
            0,
        ]);
    }
    let mut hostile = grow.clone();
    for i in 0..40u8 {
        hostile.extend([10, 0, 2, 0]);
        hostile.extend(u64::from(i).wrapping_mul(0x9e37_79b9).to_le_bytes());
        hostile.extend([i % 3, i, i]);
        hostile.extend([4, i, 2, 0, 0, i, 2, 10, 3, i, 2, 0]);
    }
    let mut big = seed.to_vec();
    for i in 0..20u8 {
        big.extend([0, i, 1, 200, 4, i, 0]);
    }
    vec![
        ("grow", grow),
        ("churn", churn),
        ("crashes", crashes),
        ("hostile", hostile),
        ("big-values", big),
        ("empty", Vec::new()),
    ]
}
