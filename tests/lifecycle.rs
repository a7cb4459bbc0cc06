//! The lifecycle of objects across real processes: every kind is freed with its last
//! handle in every process, including handles that died with a process (SIGKILL), and an
//! arena's used bytes come back to where they started after any amount of churn.

use shmproc::pipe::Pipe;
#[cfg(feature = "serde")]
use shmproc::queue::ObjQueue;
use shmproc::queue::{ByteQueue, GetError, JoinableQueue, Queue};
use shmproc::shared::{
    Array, ByteList, RawBlock, SharedDict, SharedList, SharedMemory, TypedDict, Value,
};
use shmproc::{Arena, Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};
use shmproc_testkit::{fork, SharedPage, Signal};
use std::any::Any;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[path = "rounds/creation.rs"]
mod creation;

shmproc_testkit::main!(
    every_kind_is_freed_with_its_last_handle,
    named_objects_live_until_unlinked,
    a_child_keeps_what_the_parent_drops,
    a_killed_holder_is_swept,
    churn_in_four_processes_returns_to_baseline,
    kills_at_random_points_leak_nothing,
    the_arena_grows_for_large_objects,
    named_arena_grows_under_an_earlier_attacher,
    creators_killed_at_random_points_leave_nothing_half_made,
    long_messages_killed_in_flight_leak_nothing,
);

/// One object of every kind, in `arena`.
fn one_of_each(arena: &Arena) -> Vec<Box<dyn Any>> {
    let b = |x: Box<dyn Any>| x;
    #[cfg_attr(not(feature = "serde"), allow(unused_mut))]
    let mut all = vec![
        b(Box::new(Lock::new_in(arena).unwrap())),
        b(Box::new(RLock::new_in(arena).unwrap())),
        b(Box::new(Event::new_in(arena).unwrap())),
        b(Box::new(Semaphore::new_in(arena, 2).unwrap())),
        b(Box::new(BoundedSemaphore::new_in(arena, 2).unwrap())),
        b(Box::new(Condition::new_in(arena).unwrap())),
        b(Box::new(Barrier::new_in(arena, 2).unwrap())),
        b(Box::new(Queue::<u64>::new_in(arena, 16).unwrap())),
        b(Box::new(JoinableQueue::<u64>::new_in(arena, 16).unwrap())),
        b(Box::new(ByteQueue::new_in(arena, 8, 64).unwrap())),
        b(Box::new({
            // With a message in a block of its own, which the finalizer frees.
            let q = ByteQueue::new_in(arena, 4, 16).unwrap();
            q.put_bytes(&[1; 1000]).unwrap();
            q
        })),
        b(Box::new({
            let l = SharedList::<u64>::new_in(arena).unwrap();
            l.extend([1, 2, 3]).unwrap();
            l
        })),
        b(Box::new({
            let l = ByteList::new_in(arena).unwrap();
            l.push(&[7; 300]).unwrap();
            l
        })),
        b(Box::new(Pipe::new_in(arena, true, 4096).unwrap())),
        b(Box::new(Value::new_in(arena, 7u64).unwrap())),
        b(Box::new(Array::<u32>::new_in(arena, 100).unwrap())),
        b(Box::new({
            // With entries: the dict owns blocks beyond its state (an index, entries).
            let d = SharedDict::new_in(arena).unwrap();
            d.insert(b"key", &[7; 100]).unwrap();
            d.insert(b"other", b"v").unwrap();
            d
        })),
        b(Box::new(TypedDict::<u32, u64>::new_in(arena).unwrap())),
        b(Box::new(RawBlock::new_in(arena, 300).unwrap())),
    ];
    #[cfg(feature = "serde")]
    all.push(b(Box::new({
        let q = ObjQueue::<String>::new_in(arena, 4).unwrap();
        q.put(&"x".repeat(500)).unwrap();
        q
    })));
    all
}

/// An arena whose own tables (processes, holdings, names) exist: its `used()` is then
/// the objects' bytes only.
fn warm(size: usize) -> (Arena, usize) {
    let arena = Arena::anonymous(size).unwrap();
    drop(one_of_each(&arena));
    drop(Lock::create(&arena, "warm-up").unwrap());
    arena.unlink_object("warm-up").unwrap();
    let base = arena.used();
    (arena, base)
}

fn every_kind_is_freed_with_its_last_handle() {
    let (arena, base) = warm(1 << 20);
    for _ in 0..1000 {
        let all = one_of_each(&arena);
        assert!(arena.used() > base);
        drop(all);
        assert_eq!(arena.used(), base);
    }
}

fn named_objects_live_until_unlinked() {
    let (arena, base) = warm(1 << 20);
    drop(Queue::<u64>::create(&arena, "jobs", 8).unwrap());
    assert!(arena.used() > base, "the name holds the queue");
    let q = Queue::<u64>::open(&arena, "jobs").unwrap();
    q.put(5).unwrap();
    arena.unlink_object("jobs").unwrap();
    assert!(
        Queue::<u64>::open(&arena, "jobs").is_err(),
        "the name is gone"
    );
    assert_eq!(q.get(), Ok(5), "the queue lives while a handle does");
    drop(q);
    assert_eq!(arena.used(), base);
}

/// A child forked while the parent holds a queue keeps it working after the parent drops
/// its handle; the queue is freed once the child is gone and swept.
fn a_child_keeps_what_the_parent_drops() {
    let (arena, base) = warm(1 << 20);
    let q = Queue::<u64>::new_in(&arena, 64).unwrap();
    let (go, done) = (Signal::new(), Signal::new());
    let child = {
        let q = q.clone();
        let (go, done) = (&go, &done);
        fork(move || {
            assert!(go.wait());
            // The parent has dropped its handle: ours still holds the queue.
            let mut sum = 0;
            for i in 0..1000 {
                q.put(i).unwrap();
                sum += q.get().unwrap();
            }
            assert_eq!(sum, 999 * 1000 / 2);
            done.notify();
        })
    };
    drop(q);
    // Something else may now take the freed memory if the queue had been freed.
    let filler: Vec<Lock> = (0..64).map(|_| Lock::new_in(&arena).unwrap()).collect();
    assert!(arena.used() > base);
    go.notify();
    assert!(done.wait());
    child.join();
    drop(filler);
    assert_eq!(arena.sweep().unwrap(), 1, "the exited child is swept");
    assert_eq!(arena.used(), base);
}

/// A process SIGKILLed while holding objects (some only it holds) is swept: its objects
/// go back to the heap; what others hold stays.
fn a_killed_holder_is_swept() {
    let (arena, base) = warm(1 << 20);
    let shared = Value::new_in(&arena, 0u64).unwrap();
    let ready = Signal::new();
    let child = {
        let (arena, shared, ready) = (arena.clone(), shared.clone(), &ready);
        fork(move || {
            let mine = one_of_each(&arena); // only the child holds these
            shared.set(1);
            ready.notify();
            std::mem::forget(mine);
            loop {
                std::thread::park();
            }
        })
    };
    assert!(ready.wait());
    let with_child = arena.used();
    assert!(with_child > base);
    assert_eq!(child.kill(), -libc::SIGKILL);
    assert_eq!(arena.sweep().unwrap(), 1);
    assert_eq!(shared.get(), 1, "the parent's value lives on");
    drop(shared);
    assert_eq!(arena.used(), base);
}

/// Four processes each make and drop objects of every kind; the arena ends where it began.
fn churn_in_four_processes_returns_to_baseline() {
    let (arena, base) = warm(4 << 20);
    // 100,000 objects per process in all (`SHMPROC_CHURN=per-kind`: 100,000 of each
    // kind, the full run, about 20 times longer).
    let kinds = one_of_each(&arena).len();
    let rounds = if std::env::var("SHMPROC_CHURN").as_deref() == Ok("per-kind") {
        100_000
    } else {
        100_000 / kinds
    };
    let kids: Vec<_> = (0..4)
        .map(|_| {
            let arena = arena.clone();
            fork(move || {
                for _ in 0..rounds {
                    drop(one_of_each(&arena));
                }
            })
        })
        .collect();
    kids.into_iter().for_each(|c| c.join());
    arena.sweep().unwrap();
    assert_eq!(arena.used(), base);
}

/// 200 processes SIGKILLed at random points while they make, use and drop objects (so
/// some die inside the allocator or the arena's tables): the survivors' objects keep
/// working, and once the dead are swept the arena is back where it began.
fn kills_at_random_points_leak_nothing() {
    let (arena, base) = warm(4 << 20);
    let counter = Value::new_in(&arena, 0u64).unwrap();
    let page = SharedPage::new(4096);
    let started = page.atomic(0);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for k in 0..200 {
        let child = {
            let (arena, counter) = (arena.clone(), counter.clone());
            fork(move || {
                started.fetch_add(1, Ordering::SeqCst);
                loop {
                    let all = one_of_each(&arena);
                    counter.fetch_add(1);
                    let q = Queue::<u64>::new_in(&arena, 4).unwrap();
                    q.put(1).unwrap();
                    assert_eq!(q.get(), Ok(1));
                    drop((all, q));
                }
            })
        };
        while started.load(Ordering::SeqCst) <= k {
            std::thread::yield_now();
        }
        // A random moment in the child's loop: spin a random number of rounds.
        let spin = next() % 20_000;
        for _ in 0..spin {
            std::hint::spin_loop();
        }
        assert_eq!(child.kill(), -libc::SIGKILL);
        // The survivors' objects keep working.
        let before = counter.get();
        counter.fetch_add(1);
        assert_eq!(counter.get(), before + 1);
    }
    let swept = arena.sweep().unwrap();
    assert!(swept <= 200);
    drop(counter);
    if arena.used() != base {
        for b in arena.debug_blocks() {
            println!("  block {:#x} {} {}", b.0, b.1, b.2);
        }
    }
    assert_eq!(arena.used(), base, "the dead left nothing behind");
    let stats = arena.stats();
    // Some kills landed inside the metadata lock (the loop spends most of its time
    // there): the repair ran, and left nothing behind either.
    assert!(
        stats.repairs > 0,
        "no kill hit the metadata lock: {stats:?}"
    );
    // And some inside the heap (about a quarter of them: 54 of 200 in one run), whose
    // journal finished or undid the operation.
    assert!(stats.heap_repairs > 0, "no kill hit the heap: {stats:?}");
    println!(
        "  (200 kills: {} inside the metadata lock, {} inside the heap; swept {swept} at the end)",
        stats.repairs, stats.heap_repairs
    );
}

/// The big array's contents: a value per index, so that a word read from the wrong place
/// (a stale or short mapping) shows.
fn big_pattern(n: usize) -> Vec<u64> {
    (0..n as u64)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 42)
        .collect()
}

/// Objects larger than the arena make it grow; a process attached before the growth (a
/// child forked while the arena was 1 MiB) sees the objects made after it, whole (the
/// 32 MiB array word for word, a queue's 4 MiB of slots), and allocates in the grown
/// arena itself.
fn the_arena_grows_for_large_objects() {
    const BIG: usize = 4 << 20; // 32 MiB of u64
    let arena = Arena::anonymous(1 << 20).unwrap();
    let size0 = arena.size();
    let (attached, grown, child_put) = (Signal::new(), Signal::new(), Signal::new());
    let child = {
        let (arena, attached, grown, child_put) = (arena.clone(), &attached, &grown, &child_put);
        fork(move || {
            assert_eq!(arena.size(), size0, "forked before the growth");
            attached.notify();
            assert!(grown.wait());
            let q = Queue::<[u8; 4096]>::open(&arena, "slots").unwrap();
            let big = Array::<u64>::open(&arena, "big").unwrap();
            assert_eq!(big.len(), BIG);
            assert!(
                big.to_vec() == big_pattern(BIG),
                "the array, seen from the child"
            );
            assert_eq!(q.get().unwrap(), [7; 4096]);
            // This process allocates past the arena's first size too.
            let more = Array::<u64>::create(&arena, "more", &[5; 1 << 20]).unwrap();
            assert!(arena.size() > size0);
            q.put([9; 4096]).unwrap();
            child_put.notify();
            drop(more);
        })
    };
    assert!(attached.wait());
    let q = Queue::<[u8; 4096]>::create(&arena, "slots", 1024).unwrap(); // 4 MiB of slots
    assert!(arena.size() > size0);
    let big = Array::<u64>::create(&arena, "big", &big_pattern(BIG)).unwrap();
    q.put([7; 4096]).unwrap();
    grown.notify();
    assert!(child_put.wait());
    assert_eq!(q.get().unwrap(), [9; 4096]);
    let more = Array::<u64>::open(&arena, "more").unwrap();
    assert!(
        more.to_vec() == vec![5; 1 << 20],
        "the child's array, seen here"
    );
    child.join();
    drop(big);
}

/// A process that attached to a named arena by name (`Arena::open`: a mapping of its
/// own, not inherited) before the arena grew sees an object placed in the grown part,
/// and can allocate there itself; the creator sees what it made.
fn named_arena_grows_under_an_earlier_attacher() {
    const BIG: usize = 4 << 20; // 32 MiB of u64
    let name = format!("shmproc-lifecycle-grow-{}", std::process::id());
    let _cleanup = shmproc_testkit::UnlinkOnDrop(name.clone());
    let (created, opened, grown, child_made) =
        (Signal::new(), Signal::new(), Signal::new(), Signal::new());
    // Forked before the arena exists: the child's only way in is the name.
    let child = {
        let name = name.clone();
        let (created, opened, grown, child_made) = (&created, &opened, &grown, &child_made);
        fork(move || {
            assert!(created.wait());
            let a = Arena::open(&name).unwrap();
            let s0 = a.size();
            assert!(s0 < BIG * 8, "attached before the growth: {s0} bytes");
            opened.notify();
            assert!(grown.wait());
            let big = Array::<u64>::open(&a, "big").unwrap();
            assert!(big.to_vec() == big_pattern(BIG), "the array, seen by name");
            assert!(a.size() > s0);
            // This process allocates in the grown arena too.
            let v = Value::create(&a, "from-child", 99u64).unwrap();
            let more = Array::<u64>::create(&a, "more", &[5; 8 << 20]).unwrap(); // 64 MiB
            child_made.notify();
            drop((v, more));
        })
    };
    let arena = Arena::create(&name, 1 << 20).unwrap();
    let size0 = arena.size();
    created.notify();
    assert!(opened.wait());
    assert_eq!(
        arena.size(),
        size0,
        "nothing grew before the child attached"
    );
    let big = Array::<u64>::create(&arena, "big", &big_pattern(BIG)).unwrap();
    assert!(arena.size() > size0);
    grown.notify();
    assert!(child_made.wait());
    assert_eq!(Value::<u64>::open(&arena, "from-child").unwrap().get(), 99);
    let more = Array::<u64>::open(&arena, "more").unwrap();
    assert!(
        more.to_vec() == vec![5; 8 << 20],
        "the child's array, seen here"
    );
    child.join();
    drop(big);
    arena.unlink().unwrap();
}

/// 100 processes SIGKILLed at random points while they create (and unlink) named
/// `SharedMemory` segments and named arenas: whatever a dead creator left in /dev/shm is
/// complete (creation is atomic: every visible file opens), and the two `cleanup_orphans`
/// remove all of it, while a live process's segment and arena stay.
fn creators_killed_at_random_points_leave_nothing_half_made() {
    let prefix = format!("shmproc-kill-{}", std::process::id());
    let live_seg = SharedMemory::create(Some(&format!("{prefix}-live-seg")), 4096).unwrap();
    let live_arena = Arena::create(&format!("{prefix}-live-arena"), 1 << 20).unwrap();
    let page = SharedPage::new(4096);
    let started = page.atomic(0);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut left = 0;
    for k in 0..100u64 {
        let l = creation::kill_a_creator(&prefix, k, next() % 200_000, started);
        assert!(
            l.half_made.is_empty(),
            "kill {k}: half made: {:?}",
            l.half_made
        );
        assert!(
            l.not_removed.is_empty() && l.live_kept,
            "kill {k}: only the live segment and arena stay: {l:?}"
        );
        left += l.files;
    }
    assert!(
        left > 50,
        "the creators left files behind only {left} times"
    );
    println!("  (100 kills: {left} files of dead creators found whole and removed)");
    // An orphan that a live process still maps (this one) is kept until it lets go.
    let name = format!("{prefix}-mapped");
    let made = {
        let name = name.clone();
        fork(move || drop(Arena::create(&name, 1 << 20).unwrap()))
    };
    made.join();
    let mapped = Arena::open(&name).unwrap();
    assert!(
        !Arena::cleanup_orphans().unwrap().contains(&name),
        "mapped here"
    );
    drop(mapped);
    assert!(Arena::cleanup_orphans().unwrap().contains(&name));
    live_seg.unlink().unwrap();
    live_arena.unlink().unwrap();
}

/// A message's bytes from its first word (a seed): its length (0 .. 8 KiB, so most go to
/// a block of their own) and its contents.
fn long_message(seed: u64) -> Vec<u8> {
    let n = 8 + (seed % 8192) as usize;
    let mut m = seed.to_ne_bytes().to_vec();
    m.extend((8..n).map(|i| (seed.wrapping_mul(i as u64 + 1) >> 11) as u8));
    m
}

/// True if `m` is a message `long_message` made.
fn whole(m: &[u8]) -> bool {
    m.len() >= 8 && long_message(u64::from_ne_bytes(m[..8].try_into().unwrap())) == m
}

/// 100 rounds: a producer and a consumer of messages longer than the slot, both SIGKILLed
/// at random moments (inside an allocation, a copy, a free, a claim); the parent drains
/// what is left after each round. No message arrives torn; once the queue is dropped
/// (and the dead swept), every block is back in the heap.
fn long_messages_killed_in_flight_leak_nothing() {
    let (arena, base) = warm(4 << 20);
    let q = ByteQueue::new_in(&arena, 8, 16).unwrap();
    let page = SharedPage::new(4096);
    let (torn, got, started) = (page.atomic(0), page.atomic(1), page.atomic(2));
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut drained = 0u64;
    for round in 0..100u64 {
        let producer = {
            let q = q.clone();
            fork(move || {
                started.fetch_add(1, Ordering::SeqCst);
                let mut seed = round << 40;
                loop {
                    seed += 1;
                    q.put_bytes(&long_message(seed)).unwrap();
                }
            })
        };
        let consumer = {
            let q = q.clone();
            fork(move || {
                started.fetch_add(1, Ordering::SeqCst);
                let mut buf = Vec::new();
                while q.get_bytes_into(&mut buf).is_ok() {
                    if !whole(&buf) {
                        torn.fetch_add(1, Ordering::SeqCst);
                    }
                    got.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        // Both running (a child killed before its first instruction keeps what it
        // inherited counted until this process exits: see `arena::holders`, "fork").
        while started.load(Ordering::SeqCst) < 2 * (round + 1) {
            std::thread::yield_now();
        }
        let (first, second) = if next() % 2 == 0 {
            (producer, consumer)
        } else {
            (consumer, producer)
        };
        std::thread::sleep(Duration::from_micros(next() % 3000));
        first.kill();
        std::thread::sleep(Duration::from_micros(next() % 1000));
        second.kill();
        // What is left: every message whole (a claim of the dead in the way is ended by
        // the blocking get within ~100 ms; `qsize` counts a dead producer's claim until a
        // get passes it).
        while q.qsize() > 0 {
            match q.get_bytes_timeout(Duration::from_millis(300)) {
                Ok(m) => {
                    assert!(whole(&m), "a torn message after round {round}");
                    drained += 1;
                }
                Err(GetError::Timeout) => break,
                Err(e) => panic!("round {round}: {e}"),
            }
        }
    }
    assert_eq!(
        torn.load(Ordering::SeqCst),
        0,
        "consumers saw torn messages"
    );
    println!(
        "  (100 rounds: {} messages taken by consumers, {drained} drained, {} recovered claims, {} lost with their consumer)",
        got.load(Ordering::SeqCst),
        q.recovered(),
        q.lost()
    );
    arena.sweep().unwrap();
    drop(q);
    assert_eq!(
        arena.used(),
        base,
        "a block of a message outlived its queue"
    );
}
