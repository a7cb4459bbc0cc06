//! Fuzz entry point (not public API: compiled only for tests and `cfg(fuzzing)`).
//!
//! [`run`] builds a heap over a region with guard bytes on both sides, optionally fills
//! the heap's state and the region with bytes from the input (hostile from the start),
//! then runs a script of operations from the rest of the input: alloc, alloc_zeroed,
//! free (of live blocks and of arbitrary offsets), grow, check, recover, usable_size,
//! scribbles on the state and the blocks, operations killed after their k-th write, and
//! the same process's [`Cache`]: alloc, free, drain, and `reclaim_dead` of the caches of
//! processes killed while they had blocks parked.
//!
//! Always: no panic, no write outside the region (the guards stay intact), every offset
//! returned lies inside the region. While nothing hostile has happened (no scribble, no
//! hostile start), also: `check` passes after every operation, every live block is still
//! allocated and holds the bytes written to it, and `alloc_zeroed` returns zeros.

use super::*;
use crate::sync::liveness::Scripted;
use std::collections::BTreeMap;

const GUARD: usize = 256;
const CANARY: u8 = 0xA5;
/// The region (between the guards).
const LEN: u64 = 48 << 10;
const START: u64 = 64;
const END: u64 = 16 << 10;

use crate::fuzz::Input;

/// Process 1, for whom every other pid is dead: a lock word a peer scribbled is taken
/// over at once.
fn fuzzer() -> Scripted {
    Scripted::survivor(1).watching()
}

/// A process killed part-way: a new pid each time (a killed process does not come back).
fn doomed(pid: u32) -> Scripted {
    Scripted::survivor(pid).watching()
}

fn pattern(p: u64, i: usize) -> u8 {
    (p as u8) ^ (i as u8).wrapping_mul(29) ^ 0x3C
}

/// Runs one fuzz case. Panics only if a guarantee is broken.
pub fn run(data: &[u8]) {
    let mut inp = Input(data);
    let mode = inp.u8();
    let mut words = vec![0u128; (LEN as usize + 2 * GUARD) / 16];
    let mem: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
    mem[..GUARD].fill(CANARY);
    mem[GUARD + LEN as usize..].fill(CANARY);
    let base = mem[GUARD..].as_mut_ptr();
    // SAFETY: `LEN` bytes from `base` lie inside `mem` (between the guards), 16-aligned
    // (a u128 allocation, GUARD a multiple of 16); `mem` outlives every use of `region`
    // and is touched only through the region (and the guard check after the last use).
    let region = unsafe { Region::new(base, LEN) }.expect("aligned");
    let heap = Box::new(RawHeap::new());
    heap.init(&region, START, END).expect("valid bounds");

    let mut hostile = false;
    match mode % 4 {
        0 => {}
        1 => {
            // A few words of the state and of the heap, as a peer could have left them.
            hostile = true;
            for _ in 0..(inp.u8() % 16) {
                heap.scribble(inp.u16() as usize, inp.u64());
            }
            for _ in 0..(inp.u8() % 16) {
                let off = (inp.u16() as u64 * 8) % END;
                if let Some(w) = region.word(off) {
                    // Relaxed: a peer's scribble; the fuzzer runs one thread.
                    w.store(inp.u64(), Ordering::Relaxed);
                }
            }
        }
        2 => {
            // The heap's region from the input, as raw bytes (magic kept, so the
            // operations look at them).
            hostile = true;
            let n = (inp.u8() as u64 * 64).min(END);
            for off in (0..n).step_by(8) {
                // Relaxed: the fuzzer runs one thread.
                region
                    .word(off)
                    .expect("in bounds")
                    .store(inp.u64(), Ordering::Relaxed);
            }
        }
        _ => {
            // State words chosen to be nearly right: bounds, end_prev, fresh, intent.
            hostile = true;
            for _ in 0..(inp.u8() % 4) {
                let i = 8 + (inp.u8() % 8) as usize;
                let v = match inp.u8() % 4 {
                    0 => inp.u16() as u64 * 16,
                    1 => END + inp.u8() as u64 * 16,
                    2 => inp.u64(),
                    _ => (inp.u16() as u64 * 16) | (inp.u8() % 5) as u64,
                };
                heap.scribble(i, v);
            }
        }
    }

    let deadline = || Some(Instant::now() + std::time::Duration::from_millis(20));
    // Live blocks: payload offset -> bytes filled.
    let mut live: BTreeMap<u64, u64> = BTreeMap::new();
    let mut end = END;
    let mut ops = 0;
    let mut pids = 1;
    let mut cache = Cache::new();
    while !inp.0.is_empty() && ops < 48 {
        ops += 1;
        match inp.u8() % 15 {
            0..=2 => {
                let size = match inp.u8() % 4 {
                    0 => inp.u8() as u64,
                    1 => inp.u16() as u64 % 4096,
                    2 => inp.u16() as u64,
                    _ => inp.u64(),
                };
                let align = 1u64 << (inp.u8() % 24);
                let zero = inp.u8() % 2 == 0;
                let r = if zero {
                    heap.alloc_zeroed(&region, size, align, &fuzzer(), deadline())
                } else {
                    heap.alloc(&region, size, align, &fuzzer(), deadline())
                };
                if let Ok(p) = r {
                    assert!(
                        p >= HEADER && p + size.min(LEN) <= LEN,
                        "offset {p:#x} outside"
                    );
                    if !hostile {
                        assert_eq!(p % align.max(GRANULE), 0);
                        let usable = heap.usable_size(&region, p).expect("just allocated");
                        assert!(usable >= size);
                        // SAFETY: the block is ours and inside the region (checked).
                        let bytes = unsafe {
                            std::slice::from_raw_parts_mut(base.add(p as usize), size as usize)
                        };
                        if zero {
                            assert!(bytes.iter().all(|&b| b == 0), "alloc_zeroed not zero");
                        }
                        for (i, b) in bytes.iter_mut().enumerate() {
                            *b = pattern(p, i);
                        }
                        assert!(live.insert(p, size).is_none(), "handed out twice");
                    }
                }
            }
            3..=4 => {
                let pick = inp.u8();
                let p = match live.keys().nth(pick as usize % live.len().max(1)) {
                    Some(&p) if pick < 200 => p,
                    _ => inp.u16() as u64 * 16,
                };
                let known = live.remove(&p).is_some();
                let r = heap.free(&region, p, &fuzzer(), deadline());
                if !hostile && known {
                    r.expect("freeing a live block");
                }
            }
            5 => {
                let new_end = end + (inp.u8() as u64 + 2) * 16;
                if heap.grow(&region, new_end, &fuzzer(), deadline()).is_ok() {
                    end = new_end;
                } else {
                    assert!(hostile || new_end > LEN, "grow to {new_end} failed");
                }
            }
            6 => {
                let r = heap.check(&region, &fuzzer(), deadline());
                assert!(hostile || r.is_ok(), "{r:?}");
            }
            7 => {
                let r = heap.recover(&region, &fuzzer(), deadline());
                assert!(hostile || r.is_ok(), "{r:?}");
            }
            8 => {
                let _ = heap.usable_size(&region, inp.u16() as u64 * 8);
            }
            9 => {
                hostile = true;
                heap.scribble(inp.u16() as usize, inp.u64());
            }
            10 => {
                hostile = true;
                let off = (inp.u16() as u64 * 8) % LEN;
                if let Some(w) = region.word(off) {
                    // Relaxed: a peer's scribble; the fuzzer runs one thread.
                    w.store(inp.u64(), Ordering::Relaxed);
                }
            }
            12 => {
                let size = match inp.u8() % 3 {
                    0 => inp.u8() as u64,
                    1 => inp.u16() as u64 % 9000,
                    _ => inp.u16() as u64,
                };
                let zero = size % 2 == 0;
                let r = if zero {
                    cache.alloc_zeroed(&heap, &region, size, 16, &fuzzer(), deadline())
                } else {
                    cache.alloc(&heap, &region, size, 16, &fuzzer(), deadline())
                };
                if let Ok(p) = r {
                    assert!(
                        p >= HEADER && p + size.min(LEN) <= LEN,
                        "offset {p:#x} outside"
                    );
                    if !hostile {
                        let usable = heap.usable_size(&region, p).expect("just allocated");
                        assert!(usable >= size);
                        // SAFETY: the block is ours and inside the region (checked).
                        let bytes = unsafe {
                            std::slice::from_raw_parts_mut(base.add(p as usize), size as usize)
                        };
                        if zero {
                            assert!(bytes.iter().all(|&b| b == 0), "alloc_zeroed not zero");
                        }
                        for (i, b) in bytes.iter_mut().enumerate() {
                            *b = pattern(p, i);
                        }
                        assert!(live.insert(p, size).is_none(), "handed out twice");
                    }
                }
            }
            13 => {
                let pick = inp.u8();
                let p = match live.keys().nth(pick as usize % live.len().max(1)) {
                    Some(&p) if pick < 200 => p,
                    _ => inp.u16() as u64 * 16,
                };
                let known = live.remove(&p).is_some();
                let r = cache.free(&heap, &region, p, &fuzzer(), deadline());
                if !hostile && known {
                    r.expect("parking a live block");
                }
            }
            14 => {
                if inp.u8() % 2 == 0 {
                    let r = cache.drain(&heap, &region, &fuzzer(), deadline());
                    assert!(hostile || r.is_ok(), "{r:?}");
                } else {
                    // Another process parks blocks and is killed; a survivor sweeps.
                    pids += 1;
                    let gone = doomed(pids);
                    let mut theirs = Cache::new();
                    for _ in 0..(inp.u8() % 8) {
                        let size = inp.u8() as u64 * 8;
                        if let Ok(p) = theirs.alloc(&heap, &region, size, 16, &gone, deadline()) {
                            let _ = theirs.free(&heap, &region, p, &gone, deadline());
                        }
                    }
                    let parked = theirs.cached_bytes();
                    let r = heap.reclaim_dead(&region, &fuzzer(), deadline());
                    assert!(hostile || r.is_ok_and(|r| parked == 0 || r.reclaimed > 0));
                }
            }
            _ => {
                // An operation by a new process, killed after its k-th write.
                let h = CrashAfter::new(inp.u8() as u64 % 40);
                pids += 1;
                let doomed = doomed(pids);
                match inp.u8() % 4 {
                    0 => {
                        let size = inp.u16() as u64 % 2048;
                        let _ =
                            heap.alloc_hooked(&region, size, 16, false, &doomed, deadline(), &h);
                    }
                    1 => {
                        if let Some(&p) = live.keys().nth(inp.u8() as usize % live.len().max(1)) {
                            // Freed or not, the block is no longer the model's.
                            live.remove(&p);
                            let _ = heap.free_hooked(&region, p, &doomed, deadline(), &h);
                        }
                    }
                    2 => {
                        let new_end = end + (inp.u8() as u64 + 2) * 16;
                        if heap
                            .grow_hooked(&region, new_end, &doomed, deadline(), &h)
                            .is_ok()
                            && !h.crashed()
                        {
                            end = new_end;
                        }
                    }
                    _ => {
                        let _ = heap.recover_hooked(&region, &doomed, deadline(), &h);
                    }
                }
                if !h.crashed() {
                    // It finished and released the lock: nothing to recover.
                } else if !hostile {
                    // A killed grow may or may not have landed: learn which.
                    if let Ok(s) = heap.check(&region, &fuzzer(), deadline()) {
                        end = START + s.size;
                    }
                }
            }
        }
        if !hostile {
            let s = heap
                .check(&region, &fuzzer(), deadline())
                .expect("a clean heap checks");
            assert!(s.allocated_blocks >= live.len() as u64);
            assert_eq!(START + s.size, end);
            for (&p, &len) in &live {
                assert!(heap.usable_size(&region, p).is_ok_and(|u| u >= len));
                // SAFETY: a live block of ours, inside the region.
                let bytes =
                    unsafe { std::slice::from_raw_parts(base.add(p as usize), len as usize) };
                assert!(
                    bytes.iter().enumerate().all(|(i, &b)| b == pattern(p, i)),
                    "block {p:#x} overwritten"
                );
            }
        }
    }
    let _ = (heap.stats(), heap.holder(), format!("{heap:?}"));
    drop(heap);
    let mem: &[u8] = bytemuck::cast_slice(&words);
    assert!(
        mem[..GUARD].iter().all(|&b| b == CANARY),
        "wrote below the region"
    );
    assert!(
        mem[GUARD + LEN as usize..].iter().all(|&b| b == CANARY),
        "wrote above the region"
    );
}
