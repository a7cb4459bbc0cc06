//! Unit tests of the heap: random operations against a model, alignment, growth,
//! exhaustion, refused frees, hostile state, zeroing, 2^40-byte heaps, and a process
//! killed after every single shared write of every operation.

use super::*;
use crate::sync::liveness::Scripted;
use std::collections::BTreeMap;
use std::time::Duration;

/// Process `pid`, for whom process `dead` is dead.
fn p(pid: u32, dead: u32) -> Scripted {
    let p = Scripted::alive(pid).watching();
    if dead != 0 {
        p.kill(dead);
    }
    p
}

/// The survivor: pid 1, for whom pid 2 is dead.
fn me() -> Scripted {
    p(1, 2)
}

fn soon() -> Option<Instant> {
    Some(Instant::now() + Duration::from_secs(30))
}

/// A heap over a private buffer.
struct T {
    _mem: Vec<u128>,
    region: Region,
    heap: Box<RawHeap>,
}

impl T {
    /// A region of `len` bytes with a heap over `[start, end)`.
    fn new(len: u64, start: u64, end: u64) -> T {
        let mut mem = vec![0u128; len as usize / 16];
        // SAFETY: `mem` is `len` bytes, 16-aligned, owned by `T` with the region.
        let region = unsafe { Region::new(mem.as_mut_ptr().cast(), len) }.unwrap();
        let heap = Box::new(RawHeap::new());
        heap.init(&region, start, end).unwrap();
        T {
            _mem: mem,
            region,
            heap,
        }
    }

    fn alloc(&self, size: u64, align: u64) -> Result<u64, HeapError> {
        self.heap.alloc(&self.region, size, align, &me(), soon())
    }

    fn free(&self, p: u64) -> Result<(), HeapError> {
        self.heap.free(&self.region, p, &me(), soon())
    }

    fn check(&self) -> HeapStats {
        match self.heap.check(&self.region, &me(), soon()) {
            Ok(s) => s,
            Err(e) => panic!("check failed: {e}\nchain: {:?}", self.chain()),
        }
    }

    /// The region's bytes `[off, off + len)`: shared memory seen through a shared handle,
    /// as every process sees it.
    #[allow(clippy::mut_from_ref)]
    fn bytes(&self, off: u64, len: u64) -> &mut [u8] {
        assert!(off + len <= self.region.len);
        // SAFETY: in bounds; the tests use one thread and do not hold two of these over
        // the same bytes at once.
        unsafe { std::slice::from_raw_parts_mut(self.region.base.add(off as usize), len as usize) }
    }

    fn state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        // SAFETY: State is made of atomics.
        self.heap.state.with(|p| f(unsafe { &*p }))
    }

    // Relaxed, in every test helper: the tests run each heap in one thread (the loom
    // models check the orderings).
    fn bounds(&self) -> (u64, u64) {
        self.state(|s| {
            (
                s.start.load(Ordering::Relaxed),
                s.end.load(Ordering::Relaxed),
            )
        })
    }

    /// The chain of blocks as the tags tell it: (offset, size, state).
    fn chain(&self) -> Vec<(u64, u64, u64)> {
        let (start, end) = self.bounds();
        let mut out = Vec::new();
        let mut b = start;
        while b < end {
            let tag = self.region.word(b).unwrap().load(Ordering::Relaxed);
            let Some((size, state)) = unseal(b, tag) else {
                out.push((b, 0, 0));
                break;
            };
            out.push((b, size, state));
            if size == 0 {
                break;
            }
            b += size;
        }
        out
    }
}

/// A byte pattern per block, so overlap or stray writes show.
fn fill(t: &T, p: u64, len: u64, seed: u8) {
    for (i, b) in t.bytes(p, len).iter_mut().enumerate() {
        *b = seed ^ (i as u8).wrapping_mul(31);
    }
}

fn intact(t: &T, p: u64, len: u64, seed: u8) -> bool {
    t.bytes(p, len)
        .iter()
        .enumerate()
        .all(|(i, b)| *b == seed ^ (i as u8).wrapping_mul(31))
}

/// Live blocks of the model: payload offset -> (requested bytes, seed).
type Model = BTreeMap<u64, (u64, u8)>;

fn verify_model(t: &T, model: &Model) {
    let (start, end) = t.bounds();
    let mut last_end = 0;
    for (&p, &(len, seed)) in model {
        let usable = t.heap.usable_size(&t.region, p).unwrap();
        assert!(usable >= len, "block {p:#x}: usable {usable} < {len}");
        assert!(
            p - HEADER >= start && p + usable <= end,
            "block {p:#x} outside the heap"
        );
        assert!(p - HEADER >= last_end, "blocks overlap at {p:#x}");
        last_end = p + usable;
        assert!(intact(t, p, len, seed), "block {p:#x} was overwritten");
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn tlsf_classes_are_ordered_and_rounding_fits() {
    let mut last = (0, 0);
    for size in (MIN_BLOCK..1 << 20).step_by(16) {
        let c = class(size);
        assert!(c >= last, "classes not monotone at {size}");
        last = c;
        let (fl, sl) = class_up(size).unwrap();
        // Every block of the rounded-up list is at least `size`.
        let min = if fl == 0 {
            (sl as u64) << 4
        } else {
            (1u64 << (fl + 7)) + ((sl as u64) << (fl + 3))
        };
        assert!(min >= size, "list ({fl}, {sl}) starts at {min} < {size}");
        assert_eq!(class(min), (fl, sl));
    }
    assert_eq!(class(MAX_HEAP), (FL_COUNT - 1, 0));
    assert_eq!(class_up(MAX_HEAP), Some((FL_COUNT - 1, 0)));
    assert!(class_up(MAX_HEAP + 16).unwrap() > class(MAX_HEAP));
    assert_eq!(class_up(MAX_HEAP * 2), None);
}

#[test]
fn tags_refuse_other_offsets_and_sizes() {
    let t = seal(4096, 80, USED);
    assert_eq!(unseal(4096, t), Some((80, USED)));
    assert_eq!(unseal(4112, t), None);
    assert_eq!(unseal(4096, t ^ (1 << 3)), None);
    // The state is not part of the check (changing it is a 2-bit store); 0 is no state.
    assert_eq!(unseal(4096, t ^ 3), Some((80, FREE)));
    assert_eq!(unseal(4096, restate(t, CACHED)), Some((80, CACHED)));
    assert_eq!(unseal(4096, t & !3), None);
    assert_eq!(unseal(4096, 0), None);
    // Random words are (almost) never tags.
    let mut rng = Rng(7);
    let valid = (0..100_000)
        .filter(|_| unseal(rng.below(1 << 30) & !15, rng.next()).is_some())
        .count();
    assert!(valid <= 2, "{valid} random words passed as tags");
}

#[test]
fn random_operations_match_a_model() {
    for seed in 1..=6u64 {
        let t = T::new(1 << 22, 4096, 1 << 20);
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut model = Model::new();
        let mut end = 1 << 20;
        for step in 0..1500 {
            match rng.below(100) {
                0..=54 => {
                    let size = match rng.below(10) {
                        0..=5 => rng.below(200),
                        6..=8 => rng.below(5000),
                        _ => rng.below(100_000),
                    };
                    let align = [1, 16, 32, 64, 128, 128, 4096][rng.below(7) as usize];
                    match t.alloc(size, align) {
                        Ok(p) => {
                            assert_eq!(p % align.max(16), 0);
                            let seed = rng.next() as u8;
                            fill(&t, p, size, seed);
                            assert!(model.insert(p, (size, seed)).is_none());
                        }
                        Err(HeapError::OutOfSpace {
                            requested,
                            available,
                        }) => {
                            assert_eq!(requested, size);
                            assert!(available < size + align, "{available} >= {size}");
                        }
                        Err(e) => panic!("seed {seed} step {step}: {e}"),
                    }
                }
                55..=97 => {
                    if let Some(&p) = model
                        .keys()
                        .nth(rng.below(model.len().max(1) as u64) as usize)
                    {
                        let (len, s) = model.remove(&p).unwrap();
                        assert!(intact(&t, p, len, s));
                        t.free(p).unwrap();
                        assert_eq!(t.free(p), Err(HeapError::DoubleFree { offset: p }));
                    }
                }
                _ => {
                    if end < (1 << 22) - (1 << 16) {
                        end += 16 * (2 + rng.below(4096));
                        t.heap.grow(&t.region, end, &me(), soon()).unwrap();
                    }
                }
            }
            let s = t.check();
            assert_eq!(s.allocated_blocks, model.len() as u64);
            assert_eq!(s.size, end - 4096);
            assert_eq!(t.heap.stats().used_bytes, s.used_bytes);
            if step % 50 == 0 {
                verify_model(&t, &model);
            }
        }
        verify_model(&t, &model);
        for &p in model.keys() {
            t.free(p).unwrap();
        }
        let s = t.check();
        assert_eq!((s.allocated_blocks, s.free_blocks), (0, 1), "seed {seed}");
        assert_eq!(s.largest_free, end - 4096);
    }
}

#[test]
fn every_alignment_up_to_the_maximum() {
    let t = T::new(1 << 26, 4096, 1 << 26);
    let mut live = Vec::new();
    let mut align = 1;
    while align <= MAX_ALIGN {
        for size in [0, 1, 100, 4096] {
            let p = t.alloc(size, align).unwrap();
            assert_eq!(p % align.max(16), 0, "align {align}");
            fill(&t, p, size, align as u8);
            live.push((p, size, align as u8));
        }
        t.check();
        align *= 2;
    }
    for &(p, size, s) in &live {
        assert!(intact(&t, p, size, s));
    }
    for (p, _, _) in live {
        t.free(p).unwrap();
    }
    assert_eq!(t.check().free_blocks, 1);
    for bad in [3, 48, MAX_ALIGN * 2, 0] {
        assert!(matches!(
            t.alloc(8, bad),
            Err(HeapError::InvalidArgument(_))
        ));
    }
}

#[test]
fn grow_merges_with_a_free_tail_or_appends() {
    let t = T::new(1 << 20, 4096, 8192);
    // Free tail: merged into one block.
    t.heap.grow(&t.region, 16384, &me(), None).unwrap();
    let s = t.check();
    assert_eq!((s.size, s.free_blocks, s.largest_free), (12288, 1, 12288));
    // Used tail: a new free block after it.
    let a = t.alloc(12288 - HEADER, 16).unwrap();
    assert_eq!(t.check().free_blocks, 0);
    t.heap.grow(&t.region, 20480, &me(), None).unwrap();
    let s = t.check();
    assert_eq!((s.size, s.free_blocks, s.largest_free), (16384, 1, 4096));
    // Freeing the big block merges it with the grown space.
    t.free(a).unwrap();
    assert_eq!(t.check().largest_free, 16384);
    // Growing to the same end does nothing; shrinking or a sliver is refused.
    t.heap.grow(&t.region, 20480, &me(), None).unwrap();
    for bad in [16384, 20480 + 16, 20480 + 24, (1 << 20) + 4096] {
        assert!(matches!(
            t.heap.grow(&t.region, bad, &me(), None),
            Err(HeapError::InvalidArgument(_))
        ));
    }
    t.check();
}

#[test]
fn exhaustion_then_reuse() {
    let t = T::new(1 << 20, 4096, 4096 + 65536);
    let mut live = Vec::new();
    loop {
        match t.alloc(1000, 16) {
            Ok(p) => live.push(p),
            Err(HeapError::OutOfSpace {
                requested,
                available,
            }) => {
                assert_eq!(requested, 1000);
                assert!(available < 1000);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(live.len(), 65536 / 1024);
    // The largest request that the error says fits, fits.
    if let Err(HeapError::OutOfSpace { available, .. }) = t.alloc(60000, 16) {
        if available > 0 {
            live.push(t.alloc(available, 16).unwrap());
        }
    }
    // Free every other block: 1000 bytes fit again, 2000 do not.
    for p in live.iter().step_by(2) {
        t.free(*p).unwrap();
    }
    assert!(matches!(
        t.alloc(2000, 16),
        Err(HeapError::OutOfSpace { .. })
    ));
    let again = t.alloc(1000, 16).unwrap();
    assert!(live.contains(&again));
    t.free(again).unwrap();
    for p in live.iter().skip(1).step_by(2) {
        t.free(*p).unwrap();
    }
    let s = t.check();
    assert_eq!(
        (s.allocated_blocks, s.free_blocks, s.largest_free),
        (0, 1, 65536)
    );
    // All of it at once.
    let all = t.alloc(65536 - HEADER, 16).unwrap();
    assert_eq!(t.heap.usable_size(&t.region, all), Ok(65536 - HEADER));
    assert!(matches!(
        t.alloc(0, 16),
        Err(HeapError::OutOfSpace {
            requested: 0,
            available: 0
        })
    ));
    assert!(matches!(
        t.alloc(MAX_REQUEST + 1, 16),
        Err(HeapError::TooLarge { .. })
    ));
}

/// A block that fits only by an exact scan of a list below the rounded-up one.
#[test]
fn exact_fit_found_below_the_rounded_list() {
    let t = T::new(1 << 20, 4096, 4096 + 1000 * 16);
    // One free block of 16000 bytes; a request of 15900 rounds up past its list.
    assert!(class_up(block_size(15900).unwrap()).unwrap() > class(16000));
    let p = t.alloc(15900, 16).unwrap();
    t.check();
    t.free(p).unwrap();
    t.check();
}

#[test]
fn double_free_and_forged_offsets_are_refused() {
    let t = T::new(1 << 20, 4096, 1 << 19);
    let a = t.alloc(100, 16).unwrap();
    let b = t.alloc(100, 16).unwrap();
    fill(&t, b, 100, 9);
    let before = t.check();
    // Unaligned, outside, in the middle of a block, its header, another heap's numbers.
    for bad in [
        a + 1,
        a + 16,
        a + 32,
        a - 16,
        0,
        8,
        4096,
        (1 << 19) + 16,
        u64::MAX - 15,
        b + 48,
    ] {
        let r = t.free(bad);
        assert!(
            matches!(r, Err(HeapError::NotAllocated { .. })),
            "{bad:#x}: {r:?}"
        );
    }
    // A forged header word inside a payload: the check refuses it.
    t.bytes(b + 48, 8)
        .copy_from_slice(&seal(b + 40, 32, USED).to_ne_bytes());
    assert!(matches!(
        t.free(b + 64),
        Err(HeapError::NotAllocated { .. })
    ));
    fill(&t, b, 100, 9);
    t.free(a).unwrap();
    assert_eq!(t.free(a), Err(HeapError::DoubleFree { offset: a }));
    assert_eq!(
        t.heap.usable_size(&t.region, a),
        Err(HeapError::DoubleFree { offset: a })
    );
    let after = t.check();
    assert_eq!(after.allocated_blocks, before.allocated_blocks - 1);
    assert!(intact(&t, b, 100, 9));
    // Random offsets: never accepted.
    let mut rng = Rng(3);
    for _ in 0..10_000 {
        let off = rng.below(1 << 19) & !15;
        if off != b {
            assert!(t.free(off).is_err(), "{off:#x} accepted");
        }
    }
    assert_eq!(t.check(), after);
}

#[test]
fn uninitialised_and_bad_bounds() {
    let mut mem = vec![0u128; 4096];
    // SAFETY: 64 KiB owned by this test.
    let region = unsafe { Region::new(mem.as_mut_ptr().cast(), 65536) }.unwrap();
    let heap = RawHeap::new();
    assert_eq!(
        heap.alloc(&region, 8, 16, &me(), None),
        Err(HeapError::Uninitialised)
    );
    assert_eq!(
        heap.check(&region, &me(), None),
        Err(HeapError::Uninitialised)
    );
    for (s, e) in [
        (0, 4096),
        (8, 4096),
        (4096, 4100),
        (4096, 4096 + 16),
        (4096, 65536 + 16),
    ] {
        assert!(
            matches!(heap.init(&region, s, e), Err(HeapError::InvalidArgument(_))),
            "{s}..{e}"
        );
    }
    heap.init(&region, 4096, 65536).unwrap();
    assert!(heap.init(&region, 4096, 65536).is_err());
    // A region too small for the heap's bounds (as if the mapping shrank).
    // SAFETY: a prefix of the same buffer.
    let small = unsafe { Region::new(mem.as_mut_ptr().cast(), 8192) }.unwrap();
    assert!(matches!(
        heap.alloc(&small, 8, 16, &me(), None),
        Err(HeapError::Corrupt(_))
    ));
    // SAFETY: a null base is refused before anything is touched.
    assert!(unsafe { Region::new(std::ptr::null_mut(), 64) }.is_err());
    // SAFETY: as above, unaligned.
    assert!(unsafe { Region::new(mem.as_mut_ptr().cast::<u8>().add(8), 64) }.is_err());
}

#[test]
fn zeroed_blocks_are_zero_and_fresh_space_is_not_touched() {
    let t = T::new(1 << 20, 4096, 1 << 20);
    // Dirty a block, free it, get it back zeroed.
    let a = t.alloc(1000, 16).unwrap();
    t.bytes(a, 1000).fill(0xAB);
    t.free(a).unwrap();
    let z = t
        .heap
        .alloc_zeroed(&t.region, 1000, 16, &me(), None)
        .unwrap();
    assert_eq!(z, a);
    assert!(t.bytes(z, 1000).iter().all(|&b| b == 0));
    // Bytes far above anything written: alloc_zeroed does not clear them (it knows they
    // are zero). Planting non-zero bytes there breaks that promise on purpose, to see it.
    let far = (1 << 19) + 256;
    t.bytes(far, 16).fill(0xCD);
    let big = t
        .heap
        .alloc_zeroed(&t.region, 1 << 19, 16, &me(), None)
        .unwrap();
    assert!(big < far && far + 16 <= big + (1 << 19));
    assert!(
        t.bytes(far, 16).iter().all(|&b| b == 0xCD),
        "fresh space was cleared"
    );
    assert!(t.bytes(big, 64).iter().all(|&b| b == 0));
    t.bytes(far, 16).fill(0);
    t.check();
}

#[test]
fn hostile_free_lists_are_errors_and_recover_rebuilds_them() {
    let t = T::new(1 << 20, 4096, 1 << 19);
    let mut model = Model::new();
    let mut rng = Rng(11);
    let mut ps = Vec::new();
    for i in 0..40u64 {
        let p = t.alloc(50 + i * 37, 16).unwrap();
        ps.push(p);
    }
    for (i, p) in ps.iter().enumerate() {
        if i % 3 == 0 {
            t.free(*p).unwrap();
        } else {
            let len = 50 + i as u64 * 37;
            fill(&t, *p, len, i as u8);
            model.insert(*p, (len, i as u8));
        }
    }
    let good = t.check();
    let state_words = 64 / 8..core::mem::size_of::<RawHeap>() / 8;
    let mut corrupt_seen = 0;
    for round in 0..200 {
        // Scribble a list head, a bitmap, or a link inside a free block.
        match round % 3 {
            0 => t.heap.scribble(
                state_words.start + 8 + rng.below((state_words.len() - 8) as u64) as usize,
                rng.next() & if round % 2 == 0 { 0xffff0 } else { u64::MAX },
            ),
            1 => t.heap.scribble(16 + 7 + rng.below(34) as usize, rng.next()),
            _ => {
                let free: Vec<_> = t.chain().into_iter().filter(|c| c.2 == FREE).collect();
                let (b, _, _) = free[rng.below(free.len() as u64) as usize];
                let w = b + 16 + 8 * rng.below(2);
                t.bytes(w, 8)
                    .copy_from_slice(&(rng.next() & 0x7fff0).to_ne_bytes());
            }
        }
        // Whatever was hit: errors or successes, never a panic or a stray write.
        for _ in 0..4 {
            match t.alloc(rng.below(3000), 16) {
                Ok(p) => {
                    t.free(p).ok();
                }
                Err(HeapError::Corrupt(_)) | Err(HeapError::OutOfSpace { .. }) => corrupt_seen += 1,
                Err(e) => panic!("{e}"),
            }
        }
        // The chain is intact, so a repair rebuilds everything.
        let r = t.heap.recover(&t.region, &me(), soon()).unwrap();
        assert!(!r.owner_died);
        let s = t.check();
        assert_eq!(s.allocated_blocks, good.allocated_blocks);
        verify_model(&t, &model);
    }
    assert!(corrupt_seen > 0, "no scribble was ever noticed");
}

#[test]
fn cyclic_free_list_is_reported_not_followed() {
    let t = T::new(1 << 20, 4096, 1 << 19);
    // Three free blocks of 1040 bytes (list (3, 0), 1024..1088), separated by allocated
    // ones, and nothing else free.
    let ps: Vec<u64> = (0..6).map(|_| t.alloc(1024, 16).unwrap()).collect();
    let Err(HeapError::OutOfSpace { available, .. }) = t.alloc(1 << 20, 16) else {
        panic!()
    };
    let _tail = t.alloc(available, 16).unwrap();
    for p in ps.iter().step_by(2) {
        t.free(*p).unwrap();
    }
    t.check();
    // Close the list into a cycle: the last block's next is the head. (Relaxed: one
    // thread.)
    let (fl, sl) = class(block_size(1024).unwrap());
    assert_eq!((fl, sl), (3, 0));
    let head = t.state(|s| s.heads[fl][sl].load(Ordering::Relaxed));
    let mut x = head;
    loop {
        let next = t.region.word(x + 16).unwrap().load(Ordering::Relaxed);
        if next == 0 {
            t.region
                .word(x + 16)
                .unwrap()
                .store(head, Ordering::Relaxed);
            break;
        }
        x = next;
    }
    assert!(matches!(
        t.heap.check(&t.region, &me(), soon()),
        Err(HeapError::Corrupt(_))
    ));
    // 1050 bytes (a block of 1072) round up past (3, 0), so only the exact scan of that
    // list could serve them; no block there fits, so it walks on: into the cycle.
    assert_eq!(class(block_size(1050).unwrap()), (3, 0));
    assert!(class_up(block_size(1050).unwrap()).unwrap() > (3, 0));
    let r = t.alloc(1050, 16);
    assert!(matches!(r, Err(HeapError::Corrupt(_))), "{r:?}");
    t.heap.recover(&t.region, &me(), soon()).unwrap();
    t.check();
}

#[test]
fn dead_holder_without_intent_costs_no_walk() {
    let t = T::new(1 << 20, 4096, 1 << 19);
    let a = t.alloc(100, 16).unwrap();
    // Process 2 takes the lock and dies holding it, before writing anything.
    assert!(t.heap.lock.try_lock(&p(2, 0)));
    let b = t.alloc(100, 16).unwrap();
    assert_ne!(a, b);
    let s = t.check();
    assert_eq!((s.recoveries, s.allocated_blocks), (1, 2));
    // A live holder is waited for, until the deadline.
    assert!(t.heap.lock.try_lock(&p(3, 0)));
    let t0 = Instant::now();
    let r = t.heap.alloc(
        &t.region,
        8,
        16,
        &me(),
        Some(t0 + Duration::from_millis(20)),
    );
    assert_eq!(r, Err(HeapError::TimedOut));
    assert!(t0.elapsed() >= Duration::from_millis(20));
    t.heap.lock.unlock();
}

/// A 2^40-byte heap over a sparse mapping: blocks of 1 GiB and of nearly a terabyte, and
/// zeroed blocks from never-used space touch no pages.
#[test]
fn terabyte_heap_and_gigabyte_blocks() {
    use rustix::mm::{mmap_anonymous, munmap, MapFlags, ProtFlags};
    let len = MAX_HEAP + (1 << 16);
    // SAFETY: a fresh private mapping, unmapped at the end of the test.
    let Ok(base) = (unsafe {
        mmap_anonymous(
            std::ptr::null_mut(),
            len as usize,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE | MapFlags::NORESERVE,
        )
    }) else {
        eprintln!("skipped: no room for a 1 TiB sparse mapping");
        return;
    };
    // SAFETY: the mapping lives until the munmap below.
    let region = unsafe { Region::new(base.cast(), len) }.unwrap();
    let heap = RawHeap::new();
    heap.init(&region, 4096, 4096 + MAX_HEAP).unwrap();
    let gib = heap
        .alloc_zeroed(&region, 1 << 30, 4096, &me(), None)
        .unwrap();
    let rest = heap
        .alloc(&region, MAX_HEAP - (1 << 31), 16, &me(), None)
        .unwrap();
    let s = heap.check(&region, &me(), None).unwrap();
    assert_eq!(s.allocated_blocks, 2);
    assert!(s.largest_free < 1 << 31);
    // The 1 GiB block was never written: its pages are still zero and unbacked, so
    // reading them costs no memory; spot-check a few.
    // SAFETY: inside the block just allocated.
    unsafe {
        for i in [0u64, 1 << 20, (1 << 30) - 8] {
            assert_eq!(*base.cast::<u8>().add((gib + i) as usize), 0);
        }
    }
    heap.free(&region, gib, &me(), None).unwrap();
    heap.free(&region, rest, &me(), None).unwrap();
    let s = heap.check(&region, &me(), None).unwrap();
    assert_eq!((s.free_blocks, s.largest_free), (1, MAX_HEAP));
    assert!(matches!(
        heap.alloc(&region, MAX_HEAP, 16, &me(), None),
        Err(HeapError::TooLarge { .. })
    ));
    let all = heap.alloc(&region, MAX_REQUEST, 16, &me(), None).unwrap();
    heap.free(&region, all, &me(), None).unwrap();
    // SAFETY: our own mapping, nothing refers to it any more.
    unsafe { munmap(base, len as usize) }.unwrap();
}

// ---------------------------------------------------------------------------------------
// Crashes.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Alloc,
    Free,
    Grow,
    Repair,
}

/// A scenario: a heap in some state (built by `setup`: the live blocks, and the block the
/// operation frees), then one operation run by a process that dies after its k-th write.
struct Scenario {
    name: &'static str,
    kind: Kind,
    setup: fn(&T) -> (Model, u64),
    /// Runs the operation as process 2; true if it returned Ok.
    op: fn(&T, &CrashAfter, u64) -> bool,
}

fn alloc_fill(t: &T, m: &mut Model, size: u64, align: u64, seed: u8) -> u64 {
    let p = t.alloc(size, align).unwrap();
    fill(t, p, size, seed);
    m.insert(p, (size, seed));
    p
}

fn free_all(t: &T, m: &mut Model, ps: &[u64]) {
    for p in ps {
        t.free(*p).unwrap();
        m.remove(p);
    }
}

fn crash_alloc(t: &T, h: &CrashAfter, size: u64, align: u64) -> bool {
    t.heap
        .alloc_hooked(&t.region, size, align, true, &p(2, 0), None, h)
        .is_ok()
}

fn crash_free(t: &T, h: &CrashAfter, victim: u64) -> bool {
    t.heap
        .free_hooked(&t.region, victim, &p(2, 0), None, h)
        .is_ok()
}

fn crash_grow(t: &T, h: &CrashAfter) -> bool {
    let (_, end) = t.bounds();
    t.heap
        .grow_hooked(&t.region, end + 8192, &p(2, 0), None, h)
        .is_ok()
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            // A free block at an offset that is not 128-aligned, split on both sides.
            name: "alloc with a leading gap and a trailing split",
            kind: Kind::Alloc,
            setup: |t| {
                let mut m = Model::new();
                alloc_fill(t, &mut m, 200, 16, 1);
                let hole = alloc_fill(t, &mut m, 3000, 16, 2);
                alloc_fill(t, &mut m, 100, 16, 3);
                free_all(t, &mut m, &[hole]);
                assert!(gap(hole - HEADER, 128) > 0);
                (m, 0)
            },
            op: |t, h, _| crash_alloc(t, h, 1000, 128),
        },
        Scenario {
            name: "alloc of an exact fit",
            kind: Kind::Alloc,
            setup: |t| {
                let mut m = Model::new();
                alloc_fill(t, &mut m, 200, 16, 1);
                let hole = alloc_fill(t, &mut m, 500, 16, 2);
                alloc_fill(t, &mut m, 100, 16, 3);
                free_all(t, &mut m, &[hole]);
                (m, 0)
            },
            op: |t, h, _| crash_alloc(t, h, 500, 16),
        },
        Scenario {
            name: "alloc from the tail",
            kind: Kind::Alloc,
            setup: |t| {
                let mut m = Model::new();
                alloc_fill(t, &mut m, 64, 16, 1);
                (m, 0)
            },
            op: |t, h, _| crash_alloc(t, h, 64, 16),
        },
        Scenario {
            name: "free merging on both sides",
            kind: Kind::Free,
            setup: |t| {
                let mut m = Model::new();
                alloc_fill(t, &mut m, 100, 16, 1);
                let left = alloc_fill(t, &mut m, 300, 16, 2);
                let victim = t.alloc(400, 16).unwrap();
                let right = alloc_fill(t, &mut m, 500, 16, 4);
                alloc_fill(t, &mut m, 100, 16, 5);
                free_all(t, &mut m, &[left, right]);
                (m, victim)
            },
            op: crash_free,
        },
        Scenario {
            name: "free merging with the tail",
            kind: Kind::Free,
            setup: |t| {
                let mut m = Model::new();
                alloc_fill(t, &mut m, 100, 16, 1);
                let victim = t.alloc(400, 16).unwrap();
                (m, victim)
            },
            op: crash_free,
        },
        Scenario {
            name: "free with no free neighbour",
            kind: Kind::Free,
            setup: |t| {
                let mut m = Model::new();
                alloc_fill(t, &mut m, 100, 16, 1);
                let victim = t.alloc(400, 16).unwrap();
                alloc_fill(t, &mut m, 100, 16, 4);
                (m, victim)
            },
            op: crash_free,
        },
        Scenario {
            name: "grow with a free last block",
            kind: Kind::Grow,
            setup: |t| {
                let mut m = Model::new();
                alloc_fill(t, &mut m, 1000, 16, 1);
                (m, 0)
            },
            op: |t, h, _| crash_grow(t, h),
        },
        Scenario {
            name: "grow with an allocated last block",
            kind: Kind::Grow,
            setup: |t| {
                let mut m = Model::new();
                let (start, end) = t.bounds();
                alloc_fill(t, &mut m, 1000, 16, 1);
                alloc_fill(t, &mut m, end - start - 1024 - HEADER, 16, 2);
                (m, 0)
            },
            op: |t, h, _| crash_grow(t, h),
        },
        Scenario {
            name: "a repair, itself interrupted",
            kind: Kind::Repair,
            setup: |t| {
                let mut m = Model::new();
                alloc_fill(t, &mut m, 100, 16, 1);
                let x = alloc_fill(t, &mut m, 300, 16, 2);
                alloc_fill(t, &mut m, 100, 16, 3);
                free_all(t, &mut m, &[x]);
                // Leave an interrupted alloc (committed, not finished) for the repair.
                let h = CrashAfter::new(7);
                crash_alloc(t, &h, 100, 16);
                assert!(h.crashed());
                // Process 2 dies; process 3 will repair, and die too. Hand the lock over
                // as a takeover would.
                t.heap.lock.unlock();
                (m, 0)
            },
            op: |t, h, _| t.heap.recover_hooked(&t.region, &p(2, 0), None, h).is_ok(),
        },
    ]
}

/// Offsets of the payloads of allocated blocks, from the chain.
fn allocated(t: &T) -> Vec<u64> {
    t.chain()
        .into_iter()
        .filter(|&(_, _, state)| state == USED)
        .map(|(b, _, _)| b + HEADER)
        .collect()
}

#[test]
fn crash_at_every_write() {
    for sc in scenarios() {
        // A run that is not killed: how many writes the operation makes (the last is the
        // lock's release).
        let total = {
            let t = T::new(1 << 18, 4096, 4096 + 32768);
            let (_, victim) = (sc.setup)(&t);
            let hook = CrashAfter::new(u64::MAX);
            assert!(
                (sc.op)(&t, &hook, victim),
                "{}: the operation failed",
                sc.name
            );
            hook.writes()
        };
        let mut k = 0;
        loop {
            let t = T::new(1 << 18, 4096, 4096 + 32768);
            let (model, victim) = (sc.setup)(&t);
            let before = t.heap.stats();
            let chain_before = t.chain();
            let hook = CrashAfter::new(k);
            let ok = (sc.op)(&t, &hook, victim);
            if !hook.crashed() {
                assert!(ok, "{}: the operation failed", sc.name);
                assert_eq!(k, total);
                break;
            }
            // Killed after its last write but the release: the operation is complete.
            let complete = k + 1 == total;
            let at = format!("{} (killed after write {k})", sc.name);
            // Process 2 died holding the lock. Process 1 comes along.
            assert_eq!(t.heap.holder(), Some(2), "{at}");
            let s = match t.heap.check(&t.region, &me(), soon()) {
                Ok(s) => s,
                Err(e) => panic!("{at}: {e}\nbefore {chain_before:?}\nafter {:?}", t.chain()),
            };
            assert!(s.recoveries > before.recoveries, "{at}");
            assert!(!t.heap.lock.is_locked(), "{at}");
            // Every block allocated before is still allocated and intact.
            verify_model(&t, &model);
            // No other block is allocated: an interrupted alloc was rolled back; an
            // interrupted free is complete once its intent (its first write) was made.
            let extra: Vec<u64> = allocated(&t)
                .into_iter()
                .filter(|p| !model.contains_key(p))
                .collect();
            let freed = sc.kind == Kind::Free && k > 0;
            let want: Vec<u64> = match sc.kind {
                Kind::Free if !freed => vec![victim],
                // The block it allocated: its caller died before it could use it, as if
                // it had died just after `alloc` returned. The heap cannot tell.
                Kind::Alloc if complete => extra.clone(),
                _ => vec![],
            };
            assert_eq!(extra, want, "{at}");
            assert!(want.len() <= 1, "{at}");
            assert_eq!(
                s.allocated_blocks,
                model.len() as u64 + want.len() as u64,
                "{at}"
            );
            if sc.kind == Kind::Alloc && !complete {
                assert_eq!(t.chain(), chain_before, "{at}: the chain changed");
            }
            if sc.kind == Kind::Grow {
                let size0 = chain_before.iter().map(|c| c.1).sum::<u64>();
                assert!(s.size == size0 || s.size == size0 + 8192, "{at}");
                // The arena retries the growth; it lands.
                let target = 4096 + size0 + 8192;
                t.heap.grow(&t.region, target, &me(), None).unwrap();
                assert_eq!(t.check().size, size0 + 8192, "{at}");
            }
            // And the heap goes on working: fill it up, empty it again.
            let mut more = Vec::new();
            while let Ok(p) = t.alloc(700, 16) {
                more.push(p);
            }
            for p in more {
                t.free(p).unwrap();
            }
            verify_model(&t, &model);
            for p in model.keys().chain(&want) {
                t.free(*p).unwrap();
            }
            let s = t.check();
            assert_eq!((s.allocated_blocks, s.free_blocks), (0, 1), "{at}");
            k += 1;
        }
        assert!(total >= 5, "{}: only {total} writes", sc.name);
        eprintln!(
            "{}: survived a kill after each of its {total} writes",
            sc.name
        );
    }
}

// ---------------------------------------------------------------------------------------
// The fuzz target's body, on stable.

fn corpus_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/heap")
}

/// Seeds: a clean script of every operation (kills included), and each hostile start.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let alloc = |size: u16, align_log: u8, zero: bool| {
        let [a, b] = size.to_le_bytes();
        vec![0, 1, a, b, align_log, u8::from(!zero)]
    };
    let free = |pick: u8| vec![3, pick];
    let kill = |k: u8, what: u8, arg: u8| vec![11, k, what, arg, 0];
    let mut clean = vec![0u8];
    for (i, size) in [40u16, 300, 1000, 64, 5000, 16, 2048]
        .into_iter()
        .enumerate()
    {
        clean.extend(alloc(size, (i % 8) as u8, i % 2 == 0));
    }
    clean.extend(free(1));
    clean.extend(free(3));
    clean.extend([5, 40]); // grow
    clean.extend([6, 7]); // check, recover
    clean.extend(kill(5, 0, 0)); // alloc killed after 5 writes
    clean.extend(kill(9, 1, 0)); // free killed after 9 writes
    clean.extend(kill(7, 2, 20)); // grow killed after 7 writes
    clean.extend(kill(12, 3, 0)); // recover killed after 12 writes
    clean.extend(alloc(100, 7, true));
    clean.extend(free(0));
    clean.extend([8, 0x10, 0x01]); // usable_size of some offset
    let mut scribbled = clean.clone();
    scribbled.extend([9, 12, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0]); // a state word
    scribbled.extend([10, 0x20, 0, 1, 2, 3, 4, 5, 6, 7, 8]); // a block word
    scribbled.extend(alloc(64, 4, false));
    scribbled.extend([6, 7, 6]);
    let mut hostile_state = vec![1u8, 6];
    for i in 0..6u16 {
        hostile_state.extend((8 + i * 3).to_le_bytes());
        hostile_state.extend((0x1000u64 * u64::from(i) + 0x20).to_le_bytes());
    }
    hostile_state.push(0);
    hostile_state.extend(&clean[1..]);
    let mut raw_region = vec![2u8, 64];
    raw_region.extend((0..64 * 64).map(|i| (i * 37 % 251) as u8));
    raw_region.extend(&clean[1..]);
    let mut near = vec![
        3u8, 3, 0, 1, 0x40, 0x80, 1, 2, 2, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
    ];
    near.extend(&clean[1..]);
    vec![
        ("empty", vec![]),
        ("clean_every_op", clean),
        ("scribbled_mid_script", scribbled),
        ("hostile_state_words", hostile_state),
        ("raw_region_bytes", raw_region),
        ("near_miss_bounds", near),
    ]
}

/// Replays every file of `fuzz/corpus/heap/` (so CI runs the fuzz target on stable).
/// `SHMPROC_WRITE_CORPUS=1` rewrites the seeds first.
#[test]
fn fuzz_corpus_replays() {
    let dir = corpus_dir();
    if std::env::var_os("SHMPROC_WRITE_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in seeds() {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/heap exists") {
        // A running fuzzer may remove a file between the listing and the read.
        let Ok(data) = std::fs::read(entry.unwrap().path()) else {
            continue;
        };
        super::fuzz::run(&data);
        n += 1;
    }
    assert!(n >= 6, "the seed corpus is missing ({n} files)");
}

/// The seeds, as built here, exercise what they are named for.
#[test]
fn fuzz_seeds_run() {
    for (_, bytes) in seeds() {
        super::fuzz::run(&bytes);
    }
}

#[test]
fn fuzz_random_inputs_never_go_out_of_bounds() {
    let mut rng = Rng(0x5eed);
    for i in 0..1500 {
        let len = rng.below(600) as usize;
        let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 2 == 0 && !data.is_empty() {
            data[0] = 0; // a clean start: the model checks apply
        }
        let t0 = Instant::now();
        super::fuzz::run(&data);
        if t0.elapsed() > Duration::from_millis(50) {
            eprintln!(
                "slow input {i}: {:?} first byte {:?}",
                t0.elapsed(),
                data.first()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// The per-process cache.

#[test]
fn cache_serves_without_the_lock() {
    let t = T::new(1 << 20, 4096, 1 << 19);
    let mut c = Cache::new();
    let a = c.alloc(&t.heap, &t.region, 64, 16, &me(), None).unwrap();
    c.free(&t.heap, &t.region, a, &me(), None).unwrap();
    assert_eq!(c.cached_bytes(), 80);
    // Another process holds the heap lock: the cache still serves.
    assert!(t.heap.lock.try_lock(&p(3, 0)));
    assert_eq!(c.alloc(&t.heap, &t.region, 60, 16, &me(), None), Ok(a));
    c.free(&t.heap, &t.region, a, &me(), None).unwrap();
    t.heap.lock.unlock();
    // Parked blocks are allocated as far as the heap is concerned, and refused by free.
    let s = t.check();
    assert_eq!(s.allocated_blocks, 1);
    assert_eq!(t.free(a), Err(HeapError::DoubleFree { offset: a }));
    assert_eq!(
        c.free(&t.heap, &t.region, a, &me(), None),
        Err(HeapError::DoubleFree { offset: a })
    );
    assert_eq!(
        t.heap.usable_size(&t.region, a),
        Err(HeapError::DoubleFree { offset: a })
    );
    for bad in [a + 16, a + 1, 8, 0, u64::MAX] {
        assert!(c.free(&t.heap, &t.region, bad, &me(), None).is_err());
    }
    // Larger blocks and aligned requests go to the heap.
    let big = c
        .alloc(&t.heap, &t.region, 10_000, 16, &me(), None)
        .unwrap();
    c.free(&t.heap, &t.region, big, &me(), None).unwrap();
    assert_eq!(c.cached_bytes(), 80);
    let al = c.alloc(&t.heap, &t.region, 64, 128, &me(), None).unwrap();
    assert_eq!(al % 128, 0);
    c.free(&t.heap, &t.region, al, &me(), None).unwrap();
    c.drain(&t.heap, &t.region, &me(), None).unwrap();
    assert_eq!(c.cached_bytes(), 0);
    let s = t.check();
    assert_eq!((s.allocated_blocks, s.free_blocks), (0, 1));
}

#[test]
fn cache_alloc_zeroed_clears_a_parked_block() {
    let t = T::new(1 << 20, 4096, 1 << 19);
    let mut c = Cache::new();
    let a = c
        .alloc_zeroed(&t.heap, &t.region, 200, 16, &me(), None)
        .unwrap();
    assert!(t.bytes(a, 200).iter().all(|&b| b == 0));
    t.bytes(a, 200).fill(0xEE);
    c.free(&t.heap, &t.region, a, &me(), None).unwrap();
    // From the cache (its first word now names the owner): cleared.
    assert_eq!(
        c.alloc_zeroed(&t.heap, &t.region, 200, 16, &me(), None),
        Ok(a)
    );
    assert!(t.bytes(a, 200).iter().all(|&b| b == 0));
    t.check();
}

#[test]
fn cache_gives_back_when_full() {
    let t = T::new(1 << 22, 4096, 1 << 22);
    let mut c = Cache::new();
    // One list overflows: half of it goes back.
    let ps: Vec<u64> = (0..40)
        .map(|_| c.alloc(&t.heap, &t.region, 100, 16, &me(), None).unwrap())
        .collect();
    for p in &ps {
        c.free(&t.heap, &t.region, *p, &me(), None).unwrap();
        assert!(c.cached_bytes() <= (CACHE_DEPTH as u64) * 128);
    }
    t.check();
    // The byte budget: large blocks of several sizes.
    let ps: Vec<u64> = (0..200)
        .map(|i| {
            c.alloc(&t.heap, &t.region, 4000 + (i % 7) * 500, 16, &me(), None)
                .unwrap()
        })
        .collect();
    for p in &ps {
        c.free(&t.heap, &t.region, *p, &me(), None).unwrap();
        assert!(c.cached_bytes() <= CACHE_BYTES);
    }
    let s = t.check();
    assert!(s.allocated_blocks > 0);
    c.drain(&t.heap, &t.region, &me(), None).unwrap();
    let s = t.check();
    assert_eq!((s.allocated_blocks, s.free_blocks), (0, 1));
}

#[test]
fn dead_process_cache_is_reclaimed() {
    let t = T::new(1 << 20, 4096, 1 << 19);
    let mut theirs = Cache::new();
    let mut mine = Cache::new();
    let kept = t.alloc(300, 16).unwrap();
    fill(&t, kept, 300, 7);
    // Process 2 parks blocks, process 3 parks blocks; process 2 dies.
    let two = p(2, 0);
    let three = p(3, 0);
    let ps: Vec<u64> = (0..10)
        .map(|i| {
            theirs
                .alloc(&t.heap, &t.region, 50 + i * 40, 16, &two, None)
                .unwrap()
        })
        .collect();
    for p in &ps {
        theirs.free(&t.heap, &t.region, *p, &two, None).unwrap();
    }
    let q = mine
        .alloc(&t.heap, &t.region, 64, 16, &three, None)
        .unwrap();
    mine.free(&t.heap, &t.region, q, &three, None).unwrap();
    assert_eq!(t.check().allocated_blocks, 12);
    // Process 1 (for whom 2 is dead) sweeps: 2's blocks come back, 3's stay.
    let r = t.heap.reclaim_dead(&t.region, &me(), soon()).unwrap();
    assert_eq!(r.reclaimed, 10);
    let s = t.check();
    assert_eq!(s.allocated_blocks, 2);
    assert!(intact(&t, kept, 300, 7));
    assert_eq!(mine.alloc(&t.heap, &t.region, 64, 16, &three, None), Ok(q));
    // Process 2's cache, were it to run again, finds its blocks gone and does not hand
    // them out.
    let fresh = theirs
        .alloc(&t.heap, &t.region, 50, 16, &two, None)
        .unwrap();
    assert_eq!(
        t.heap.usable_size(&t.region, fresh).map(|u| u >= 50),
        Ok(true)
    );
    assert_eq!(t.check().allocated_blocks, 3);
}

#[test]
fn forked_cache_forgets_the_parents_blocks() {
    let t = T::new(1 << 20, 4096, 1 << 19);
    let mut c = Cache::new();
    let parent = p(2, 0);
    let child = p(5, 0);
    let a = c.alloc(&t.heap, &t.region, 64, 16, &parent, None).unwrap();
    c.free(&t.heap, &t.region, a, &parent, None).unwrap();
    // The same Cache value, used by another process (as after fork): not a's block.
    let b = c.alloc(&t.heap, &t.region, 64, 16, &child, None).unwrap();
    assert_ne!(a, b);
    assert_eq!(c.cached_bytes(), 0);
    assert_eq!(t.check().allocated_blocks, 2);
}

#[test]
fn scribbled_parked_block_is_not_handed_out() {
    let t = T::new(1 << 20, 4096, 1 << 19);
    let mut c = Cache::new();
    let a = c.alloc(&t.heap, &t.region, 64, 16, &me(), None).unwrap();
    c.free(&t.heap, &t.region, a, &me(), None).unwrap();
    t.bytes(a - HEADER, 8).fill(0x77);
    let b = c.alloc(&t.heap, &t.region, 64, 16, &me(), None).unwrap();
    assert_ne!(a, b);
    assert_eq!(c.cached_bytes(), 0);
}

#[test]
fn random_cache_operations_match_a_model() {
    let t = T::new(1 << 22, 4096, 1 << 21);
    let mut c = Cache::new();
    let mut rng = Rng(99);
    let mut model = Model::new();
    for step in 0..3000 {
        if rng.below(100) < 55 {
            let size = [rng.below(100), rng.below(1000), rng.below(9000)][rng.below(3) as usize];
            let p = c
                .alloc(&t.heap, &t.region, size, 16, &me(), soon())
                .unwrap();
            let seed = rng.next() as u8;
            fill(&t, p, size, seed);
            assert!(
                model.insert(p, (size, seed)).is_none(),
                "step {step}: handed out twice"
            );
        } else if let Some(&p) = model
            .keys()
            .nth(rng.below(model.len().max(1) as u64) as usize)
        {
            let (len, s) = model.remove(&p).unwrap();
            assert!(intact(&t, p, len, s));
            c.free(&t.heap, &t.region, p, &me(), soon()).unwrap();
        }
        if step % 100 == 0 {
            t.check();
            verify_model(&t, &model);
        }
    }
    for &p in model.keys() {
        c.free(&t.heap, &t.region, p, &me(), soon()).unwrap();
    }
    c.drain(&t.heap, &t.region, &me(), soon()).unwrap();
    let s = t.check();
    assert_eq!((s.allocated_blocks, s.free_blocks), (0, 1));
}

/// The word `alloc_into` / `free_from` name, read from the test's region.
fn word_at(t: &T, off: u64) -> u64 {
    t.region.word(off).unwrap().load(Ordering::Relaxed)
}

#[test]
fn crash_at_every_write_keeps_the_named_word() {
    const DEST: u64 = 64;
    for freeing in [false, true] {
        let setup = |t: &T| {
            alloc_fill_plain(t, 100);
            if freeing {
                let v = t
                    .heap
                    .alloc_into(&t.region, 400, 16, false, DEST, &me(), soon())
                    .unwrap();
                alloc_fill_plain(t, 100);
                assert_eq!(word_at(t, DEST), v);
            }
        };
        let op = |t: &T, h: &CrashAfter| {
            if freeing {
                t.heap
                    .free_from_hooked(&t.region, DEST, &p(2, 0), None, h)
                    .is_ok()
            } else {
                t.heap
                    .alloc_into_hooked(&t.region, 1000, 16, DEST, &p(2, 0), None, h)
                    .is_ok()
            }
        };
        let mut k = 0;
        loop {
            let t = T::new(1 << 18, 4096, 4096 + 32768);
            setup(&t);
            let before = allocated(&t);
            let hook = CrashAfter::new(k);
            let ok = op(&t, &hook);
            if !hook.crashed() {
                assert!(ok);
                break;
            }
            let at = format!("freeing {freeing}, killed after write {k}");
            t.heap.check(&t.region, &me(), soon()).unwrap();
            let after = allocated(&t);
            let d = word_at(&t, DEST);
            // Either the operation happened, word included, or it did not at all.
            if d == 0 {
                let want = if freeing {
                    before.len() - 1
                } else {
                    before.len()
                };
                assert_eq!(after.len(), want, "{at}: the word is 0");
            } else {
                assert!(after.contains(&d), "{at}: the word names a free block");
                let want = if freeing {
                    before.len()
                } else {
                    before.len() + 1
                };
                assert_eq!(after.len(), want, "{at}: the word names {d:#x}");
            }
            k += 1;
        }
        assert!(k > 3, "the operation made {k} writes");
    }
    // Bad words are refused, not written.
    let t = T::new(1 << 18, 4096, 4096 + 32768);
    for bad in [0, 3, 1 << 18] {
        assert!(matches!(
            t.heap
                .alloc_into(&t.region, 10, 16, false, bad, &me(), soon()),
            Err(HeapError::InvalidArgument(_))
        ));
    }
    assert_eq!(t.heap.free_from(&t.region, DEST, &me(), soon()), Ok(None));
}

fn alloc_fill_plain(t: &T, size: u64) {
    t.alloc(size, 16).unwrap();
}
