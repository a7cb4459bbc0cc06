//! Heap benchmarks, each against its baseline in the same run, in one process:
//! * alloc + free of 64 B, 4 KiB and 1 MiB: `raw::heap::RawHeap` (its state and blocks in
//!   a shared anonymous mapping, taking its robust lock every call) vs the system
//!   allocator (`std::alloc::alloc` / `dealloc`: glibc malloc);
//! * the same through a per-process `raw::heap::Cache` (64 B and 4 KiB: the cache keeps
//!   blocks up to 8 KiB; 1 MiB goes to the heap either way);
//! * `alloc_zeroed` vs `alloc` for 64 B and 4 KiB: what zeroing on alloc costs.
//!
//! Neither side touches the memory it gets: this is the allocator's own cost.

mod common;

use common::{bench_mode, criterion, paired, SharedPage};
use criterion::{black_box, Criterion};
use shmproc::raw::heap::{Cache, RawHeap, Region};
use shmproc::raw::sync::liveness::Procfs;
use std::alloc::{alloc, dealloc, Layout};
use std::cell::RefCell;
use std::time::Instant;

/// A heap over a lazily backed shared mapping; its state sits at the mapping's start, as
/// in an arena's header.
struct Shared {
    _page: SharedPage,
    region: Region,
    heap: &'static RawHeap,
    cache: RefCell<Cache>,
}

const LEN: u64 = 256 << 20;

fn shared() -> Shared {
    let page = SharedPage::new(LEN as usize);
    // SAFETY: the mapping is LEN bytes and lives in `Shared` with the region.
    let region = unsafe { Region::new(page.ptr(), LEN) }.unwrap();
    // SAFETY: zeroed shared memory is an uninitialised RawHeap (all atomics); the mapping
    // outlives every use (the benchmark's `Shared` lives until `main` returns).
    let heap: &'static RawHeap = unsafe { &*page.ptr().cast::<RawHeap>() };
    heap.init(&region, 8192, LEN).unwrap();
    Shared {
        _page: page,
        region,
        heap,
        cache: RefCell::new(Cache::new()),
    }
}

impl Shared {
    #[inline]
    fn alloc_free(&self, size: u64, zeroed: bool) {
        let p = if zeroed {
            self.heap
                .alloc_zeroed(&self.region, size, 16, &Procfs, None)
        } else {
            self.heap.alloc(&self.region, size, 16, &Procfs, None)
        };
        let p = black_box(p.unwrap());
        self.heap.free(&self.region, p, &Procfs, None).unwrap();
    }

    /// Alloc + free through the cache.
    #[inline]
    fn cached_alloc_free(&self, cache: &mut Cache, size: u64) {
        let p = cache.alloc(self.heap, &self.region, size, 16, &Procfs, None);
        let p = black_box(p.unwrap());
        cache
            .free(self.heap, &self.region, p, &Procfs, None)
            .unwrap();
    }

    fn run_cached(&self, size: u64, n: u64) -> std::time::Duration {
        let mut cache = self.cache.borrow_mut();
        let t = Instant::now();
        for _ in 0..n {
            self.cached_alloc_free(&mut cache, size);
        }
        t.elapsed()
    }

    fn run(&self, size: u64, zeroed: bool, n: u64) -> std::time::Duration {
        let t = Instant::now();
        for _ in 0..n {
            self.alloc_free(size, zeroed);
        }
        t.elapsed()
    }
}

#[inline]
fn system_alloc_free(layout: Layout) {
    // SAFETY: a non-zero-sized layout; the pointer is freed with the same layout.
    unsafe {
        let p = black_box(alloc(layout));
        assert!(!p.is_null());
        dealloc(p, layout);
    }
}

fn system_run(layout: Layout, n: u64) -> std::time::Duration {
    let t = Instant::now();
    for _ in 0..n {
        system_alloc_free(layout);
    }
    t.elapsed()
}

fn sizes(c: &mut Criterion, s: &Shared) {
    for (name, size, n) in [
        ("64 B", 64u64, 1_000_000u64),
        ("4 KiB", 4096, 1_000_000),
        ("1 MiB", 1 << 20, 200_000),
    ] {
        let layout = Layout::from_size_align(size as usize, 16).unwrap();
        // Sanity before timing: the heap gives a usable block and takes it back whole.
        let before = s.heap.stats().allocated_blocks;
        let p = s.heap.alloc(&s.region, size, 16, &Procfs, None).unwrap();
        assert!(s.heap.usable_size(&s.region, p).unwrap() >= size);
        s.heap.free(&s.region, p, &Procfs, None).unwrap();
        assert_eq!(s.heap.stats().allocated_blocks, before);

        let mut g = c.benchmark_group(format!("heap/alloc+free {name}"));
        g.bench_function("shmproc RawHeap", |b| b.iter(|| s.alloc_free(size, false)));
        g.bench_function("shmproc RawHeap + Cache", |b| {
            let mut cache = s.cache.borrow_mut();
            b.iter(|| s.cached_alloc_free(&mut cache, size))
        });
        g.bench_function("system allocator", |b| b.iter(|| system_alloc_free(layout)));
        g.finish();

        paired(
            &format!("heap alloc+free {name}: RawHeap / system allocator"),
            "pair",
            n,
            15,
            |n| system_run(layout, n),
            |n| s.run(size, false, n),
        );
        paired(
            &format!("heap alloc+free {name}: RawHeap + Cache / system allocator"),
            "pair",
            n,
            15,
            |n| system_run(layout, n),
            |n| s.run_cached(size, n),
        );
    }
    for (name, size) in [("64 B", 64u64), ("4 KiB", 4096)] {
        paired(
            &format!("heap alloc_zeroed+free {name}: zeroed / not"),
            "pair",
            1_000_000,
            15,
            |n| s.run(size, false, n),
            |n| s.run(size, true, n),
        );
    }
    s.cache
        .borrow_mut()
        .drain(s.heap, &s.region, &Procfs, None)
        .unwrap();
    let st = s.heap.check(&s.region, &Procfs, None).unwrap();
    assert_eq!((st.allocated_blocks, st.free_blocks), (0, 1));
}

fn main() {
    let mut c = criterion();
    let s = shared();
    sizes(&mut c, &s);
    if bench_mode() {
        c.final_summary();
    }
}
