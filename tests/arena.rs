//! Multi-process tests of the arena: objects made in one process are found by another
//! while creation goes on, through inherited and through separately mapped arenas.

use shmproc::{Arena, Error, Lock};
use shmproc_testkit::{fork, Signal, UnlinkOnDrop};

shmproc_testkit::main!(
    open_by_name_races_with_create,
    attach_races_with_create,
    objects_made_in_a_child_are_seen_by_the_parent,
);

const N: usize = 250;

/// Regression: a lookup read the allocation mark *before* scanning the directory, so an
/// object published in between ended past the stale mark and the lookup failed with
/// `Corrupt` instead of finding it.
fn open_by_name_races_with_create() {
    let arena = Arena::anonymous(8 << 20).unwrap();
    let maker = {
        let arena = arena.clone();
        fork(move || {
            for i in 0..N {
                Lock::create(&arena, &format!("lock-{i}")).unwrap();
            }
        })
    };
    for i in 0..N {
        let name = format!("lock-{i}");
        loop {
            match Lock::open(&arena, &name) {
                Ok(_) => break,
                Err(Error::NotFound(_)) => std::hint::spin_loop(),
                Err(e) => panic!("open({name}) while it was being created: {e}"),
            }
        }
    }
    maker.join();
    assert_eq!(arena.objects().len(), N);
}

/// Attaching by name (validating every entry) while another process keeps creating.
fn attach_races_with_create() {
    let name = format!("shmproc-arenatest-{}", std::process::id());
    let arena = Arena::create(&name, 8 << 20).unwrap();
    let _cleanup = UnlinkOnDrop(name.clone());
    let started = Signal::new();
    let maker = {
        let (arena, started) = (arena.clone(), &started);
        fork(move || {
            started.notify();
            for i in 0..N {
                Lock::create(&arena, &format!("lock-{i}")).unwrap();
            }
        })
    };
    assert!(started.wait());
    let mut attaches = 0;
    loop {
        let a = Arena::open(&name).unwrap_or_else(|e| panic!("attach during creation: {e}"));
        let seen = a.objects().len();
        assert!(seen <= N);
        attaches += 1;
        if seen == N {
            break;
        }
    }
    maker.join();
    assert!(attaches > 0);
}

fn objects_made_in_a_child_are_seen_by_the_parent() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let child = {
        let arena = arena.clone();
        fork(move || {
            let l = Lock::create(&arena, "from-child").unwrap();
            l.acquire_forever();
        })
    };
    child.join();
    let l = Lock::open(&arena, "from-child").unwrap();
    assert!(l.is_locked(), "the child's acquisition is visible");
    // The child exited holding it: recovered, not wedged.
    assert!(l.try_acquire().is_err_and(|e| e.into_guard().is_some()));
}
