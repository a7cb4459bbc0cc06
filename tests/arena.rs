//! Multi-process tests of the arena: objects made in one process are found by another
//! while creation goes on, through inherited and through separately mapped arenas; and the
//! errors that say which of an arena, a segment or an object is missing.

use shmproc::inspect::Snapshot;
use shmproc::shared::SharedMemory;
use shmproc::{Arena, Error, Event, Lock, RLock};
use shmproc_testkit::{fork, Signal, UnlinkOnDrop};

shmproc_testkit::main!(
    open_by_name_races_with_create,
    attach_races_with_create,
    objects_made_in_a_child_are_seen_by_the_parent,
    missing_arenas_segments_and_objects_say_which,
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

/// A missing arena, a missing segment and a missing object are three errors, each saying
/// what is missing and what to check; a wrong kind takes the right article.
fn missing_arenas_segments_and_objects_say_which() {
    let missing = format!("shmproc-arenatest-missing-{}", std::process::id());
    let e = Arena::open(&missing).unwrap_err();
    assert!(
        matches!(&e, Error::NoSuchArena(n) if *n == missing),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "no arena named {missing:?} (/dev/shm/{missing}): "
        )) && text.contains("Arena::create")
            && text.contains("`shmproc ls`"),
        "{text}"
    );
    assert!(matches!(
        Arena::unlink_name(&missing),
        Err(Error::NoSuchArena(_))
    ));
    // The read-only snapshot readers: by name, and by a path (said as a path).
    assert!(matches!(Snapshot::open(&missing), Err(Error::NoSuchArena(n)) if n == missing));
    let path = std::path::PathBuf::from(format!("/dev/shm/{missing}"));
    let e = Snapshot::from_path(&path).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("no arena file at {}: ", path.display())),
        "{e}"
    );

    let e = SharedMemory::open(&missing).unwrap_err();
    assert!(
        matches!(&e, Error::NoSuchSegment(n) if *n == missing),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with(&format!("no SharedMemory segment named {missing:?} ")),
        "{e}"
    );
    assert!(matches!(
        SharedMemory::unlink_name(&missing),
        Err(Error::NoSuchSegment(_))
    ));

    // Inside an arena that exists: a missing object, and objects of another kind.
    let arena = Arena::anonymous(1 << 20).unwrap();
    let e = Lock::open(&arena, "nope").unwrap_err();
    assert!(matches!(&e, Error::NotFound(n) if n == "nope"), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("no object named \"nope\" in this arena"),
        "{e}"
    );
    let _lock = Lock::create(&arena, "db").unwrap();
    let _event = Event::create(&arena, "ready").unwrap();
    let e = Event::open(&arena, "db").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("object \"db\" is a Lock, not an Event: open it as a Lock"),
        "{e}"
    );
    let e = RLock::open(&arena, "ready").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("object \"ready\" is an Event, not an RLock: open it as an Event"),
        "{e}"
    );
}
