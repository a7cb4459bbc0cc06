use super::*;
use crate::raw::Opaque;
use crate::sync::Ordering;
use crate::Lock;

fn uniq(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "shmproc-test-{tag}-{}-{}",
        std::process::id(),
        // Relaxed: a counter for unique names; it orders nothing.
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A named arena that unlinks itself.
struct Named(Arena);
impl Drop for Named {
    fn drop(&mut self) {
        let _ = self.0.unlink();
    }
}

#[test]
fn sizes_out_of_range_are_errors() {
    assert!(matches!(
        Arena::anonymous(0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Arena::anonymous(MIN_SIZE as usize - 1),
        Err(Error::InvalidArgument(_))
    ));
    assert!(Arena::anonymous(MIN_SIZE as usize).is_ok());
}

#[test]
fn names_are_checked() {
    for bad in ["", "a/b", "nul\0", &"x".repeat(201)] {
        assert!(
            matches!(Arena::create(bad, 1 << 20), Err(Error::InvalidName(_))),
            "{bad:?}"
        );
    }
    let a = Arena::anonymous(1 << 20).unwrap();
    assert!(matches!(
        Lock::create(&a, &"n".repeat(MAX_NAME + 1)),
        Err(Error::InvalidName(_))
    ));
    assert!(Lock::create(&a, &"n".repeat(MAX_NAME)).is_ok());
}

#[test]
fn create_is_exclusive_and_open_sees_objects() {
    let name = uniq("excl");
    let a = Named(Arena::create(&name, 1 << 20).unwrap());
    assert!(matches!(
        Arena::create(&name, 1 << 20),
        Err(Error::AlreadyExists(_))
    ));
    let l = Lock::create(&a.0, "l").unwrap();
    let b = Arena::open(&name).unwrap();
    let l2 = Lock::open(&b, "l").unwrap();
    let g = l.acquire().unwrap();
    assert!(l2.is_locked());
    drop(g);
    assert!(!l2.is_locked());
    assert_eq!(b.objects(), vec![("l".to_string(), ObjectKind::Lock)]);
}

#[test]
fn open_missing_and_unlink_twice() {
    let name = uniq("missing");
    assert!(matches!(Arena::open(&name), Err(Error::NoSuchArena(_))));
    let a = Arena::create(&name, 1 << 20).unwrap();
    a.unlink().unwrap();
    assert!(matches!(a.unlink(), Err(Error::NoSuchArena(_))));
    assert!(matches!(Arena::open(&name), Err(Error::NoSuchArena(_))));
}

#[test]
fn create_does_not_follow_symlinks() {
    let name = uniq("link");
    let target = std::env::temp_dir().join(uniq("target"));
    std::os::unix::fs::symlink(&target, format!("/dev/shm/{name}")).unwrap();
    let r = Arena::create(&name, 1 << 20);
    std::fs::remove_file(format!("/dev/shm/{name}")).unwrap();
    assert!(matches!(r, Err(Error::AlreadyExists(_))), "{r:?}");
    assert!(!target.exists(), "create wrote through a symlink");
}

#[test]
fn named_arena_mode_is_0600() {
    use std::os::unix::fs::PermissionsExt;
    let name = uniq("mode");
    let _a = Named(Arena::create(&name, 1 << 20).unwrap());
    let mode = std::fs::metadata(format!("/dev/shm/{name}"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

fn memfd_with(bytes: &[u8]) -> OwnedFd {
    use rustix::fs::{memfd_create, MemfdFlags};
    let fd = memfd_create("t", MemfdFlags::CLOEXEC).unwrap();
    rustix::io::write(&fd, bytes).unwrap();
    fd
}

/// The bytes of a valid arena with one lock in it, for corrupting.
fn valid_image() -> Vec<u8> {
    let a = Arena::anonymous(MIN_SIZE as usize).unwrap();
    Lock::create(&a, "lock").unwrap();
    // SAFETY: the mapping is `size()` bytes long and nobody writes it concurrently.
    unsafe { std::slice::from_raw_parts(a.inner.map.as_ptr(), a.size()) }.to_vec()
}

#[test]
fn a_copied_image_opens() {
    let img = valid_image();
    let a = Arena::from_fd(memfd_with(&img)).unwrap();
    assert!(Lock::open(&a, "lock").is_ok());
}

#[test]
fn garbage_is_not_an_arena() {
    assert!(matches!(
        Arena::from_fd(memfd_with(&vec![0x5a; MIN_SIZE as usize])),
        Err(Error::NotAnArena)
    ));
    // A short file of another kind, or an empty one, is not an arena either (not a
    // truncated one); a short file with the arena's magic is a truncated arena.
    assert!(matches!(
        Arena::from_fd(memfd_with(b"hello")),
        Err(Error::NotAnArena)
    ));
    assert!(matches!(
        Arena::from_fd(memfd_with(b"")),
        Err(Error::NotAnArena)
    ));
    let head = valid_image();
    assert!(matches!(
        Arena::from_fd(memfd_with(&head[..4096])),
        Err(Error::Truncated { .. })
    ));
}

#[test]
fn truncated_version_and_layout_are_detected() {
    let img = valid_image();
    let mut big = img.clone();
    big[32..40].copy_from_slice(&(img.len() as u64 * 2).to_le_bytes()); // size > file
    assert!(matches!(
        Arena::from_fd(memfd_with(&big)),
        Err(Error::Truncated { .. } | Error::Corrupt(_))
    ));

    let mut v = img.clone();
    v[8..12].copy_from_slice(&99u32.to_le_bytes());
    assert!(matches!(
        Arena::from_fd(memfd_with(&v)),
        Err(Error::Version { found: 99, .. })
    ));

    let mut h = img.clone();
    h[16] ^= 1;
    assert!(matches!(
        Arena::from_fd(memfd_with(&h)),
        Err(Error::Layout { found, expected }) if found == expected ^ 1
    ));

    let mut l = img.clone();
    l[24..32].copy_from_slice(&u64::MAX.to_le_bytes()); // limit beyond any arena
    assert!(matches!(
        Arena::from_fd(memfd_with(&l)),
        Err(Error::Corrupt(_))
    ));
}

/// Scribbles on the heap, the object header and the directory: opens fail with an
/// error, never a panic or an access out of bounds.
#[test]
fn scribbled_arenas_give_errors() {
    let img = valid_image();
    let a = Arena::from_fd(memfd_with(&img)).unwrap();
    let obj = directory::find(&a, "lock").unwrap().unwrap() as usize;
    let dir = a.header().meta.dir.load(Ordering::Relaxed) as usize;
    drop(a);
    type Corruption = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Corruption)> = vec![
        ("object magic", Box::new(move |b| b[obj] ^= 0xff)),
        (
            "object size",
            Box::new(move |b| b[obj + 32..obj + 40].copy_from_slice(&u64::MAX.to_le_bytes())),
        ),
        (
            "object kind",
            Box::new(move |b| b[obj + 8..obj + 12].copy_from_slice(&777u32.to_le_bytes())),
        ),
        (
            "directory capacity",
            Box::new(move |b| b[dir..dir + 8].copy_from_slice(&u64::MAX.to_le_bytes())),
        ),
        (
            "directory entry offsets",
            Box::new(move |b| {
                for i in 0..16 {
                    let e = dir + 16 + i * 128 + 8;
                    b[e..e + 8].copy_from_slice(&u64::MAX.to_le_bytes());
                }
            }),
        ),
        (
            "directory root",
            Box::new(|b| b[80..88].copy_from_slice(&0x1234_5678u64.to_le_bytes())),
        ),
    ];
    for (what, corrupt) in cases {
        let mut b = img.clone();
        corrupt(&mut b);
        if let Ok(a) = Arena::from_fd(memfd_with(&b)) {
            let r = Lock::open(&a, "lock");
            assert!(r.is_err(), "{what}: {r:?}");
            let _ = a.objects();
            let _ = a.sweep();
        }
    }
}

#[test]
fn wrong_kind_and_missing_names() {
    let a = Arena::anonymous(1 << 20).unwrap();
    let _x = Lock::create(&a, "x").unwrap();
    assert!(matches!(
        Lock::create(&a, "x"),
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(Lock::open(&a, "y"), Err(Error::NotFound(_))));
    let raw = a
        .create_object::<Opaque>(Some("raw"), ObjectKind::Raw, 1, 8, 0, |_, _| {})
        .unwrap();
    drop(raw);
    let r = Lock::open(&a, "raw");
    assert!(matches!(r, Err(Error::WrongType { .. })), "{r:?}");
    let r = a.open_object::<Opaque>("raw", ObjectKind::Raw, 2, "raw of type 2");
    assert!(matches!(r, Err(Error::WrongType { .. })));
}

/// No cap on objects: far more than the old directory's 256, in an arena that grows.
#[test]
fn objects_have_no_cap_and_the_arena_grows() {
    let a = Arena::anonymous(MIN_SIZE as usize).unwrap();
    let size0 = a.size();
    let locks: Vec<Lock> = (0..5000).map(|_| Lock::new_in(&a).unwrap()).collect();
    assert!(a.size() > size0, "the arena grew");
    let named: Vec<Lock> = (0..1000)
        .map(|i| Lock::create(&a, &format!("lock-{i}")).unwrap())
        .collect();
    assert_eq!(a.objects().len(), 1000);
    assert!(Lock::open(&a, "lock-999").is_ok());
    drop((locks, named));
}

#[test]
fn a_limit_is_an_error_not_a_crash() {
    let a = Arena::builder()
        .size(MIN_SIZE as usize)
        .limit(MIN_SIZE as usize * 2)
        .anonymous()
        .unwrap();
    let big = a.create_object::<Opaque>(None, ObjectKind::Raw, 0, 1 << 20, 0, |_, _| {});
    assert!(matches!(big, Err(Error::OutOfSpace { .. })), "{big:?}");
    let mut held = Vec::new();
    let err = loop {
        match Lock::new_in(&a) {
            Ok(l) => held.push(l),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::OutOfSpace { .. }), "{err:?}");
    assert!(!held.is_empty());
    drop(held);
    assert!(Lock::new_in(&a).is_ok(), "memory came back");
}

/// Objects are freed with their last handle; a named one when its name goes too.
#[test]
fn objects_are_freed_with_their_last_handle() {
    let a = Arena::anonymous(1 << 20).unwrap();
    // The arena's own tables (processes, holdings, names) are made on first use.
    drop(Lock::create(&a, "warm-up").unwrap());
    a.unlink_object("warm-up").unwrap();
    let base = a.used();
    let l = Lock::new_in(&a).unwrap();
    let l2 = l.clone();
    assert!(a.used() > base);
    drop(l);
    assert!(a.used() > base, "a clone still holds it");
    drop(l2);
    assert_eq!(a.used(), base);
    let n = Lock::create(&a, "n").unwrap();
    let n2 = Lock::open(&a, "n").unwrap();
    drop((n, n2));
    assert!(a.used() > base, "the name holds it");
    a.unlink_object("n").unwrap();
    assert_eq!(a.used(), base);
    assert!(matches!(a.unlink_object("n"), Err(Error::NotFound(_))));
    for _ in 0..10_000 {
        drop(Lock::new_in(&a).unwrap());
    }
    assert_eq!(a.used(), base);
}

#[test]
fn objects_are_aligned_and_disjoint() {
    let a = Arena::anonymous(1 << 20).unwrap();
    let x = a
        .create_object::<Opaque>(None, ObjectKind::Raw, 0, 1, 0, |_, _| {})
        .unwrap();
    let y = a
        .create_object::<Opaque>(None, ObjectKind::Raw, 0, 200, 0, |p, len| {
            assert!(len >= 200);
            // SAFETY: the block is `len` bytes, fresh and ours.
            unsafe { p.as_ptr().write_bytes(7, len) }
        })
        .unwrap();
    assert_eq!(x.base() as usize % CACHE_LINE as usize, 0);
    assert_eq!(y.base() as usize % CACHE_LINE as usize, 0);
    let (xs, ys) = (x.base() as usize, y.base() as usize);
    assert!(xs + x.len() <= ys || ys + y.len() <= xs, "disjoint");
    // SAFETY: x's first byte, zeroed at creation, untouched by y's init.
    assert_eq!(unsafe { x.base().read() }, 0);
}

#[test]
fn fingerprints_differ_by_type() {
    assert_ne!(fingerprint_sized::<u32>(), fingerprint_sized::<u64>());
    assert_ne!(fingerprint_sized::<[u8; 4]>(), fingerprint_sized::<u32>());
    assert_eq!(fingerprint_sized::<u32>(), fingerprint_sized::<u32>());
}
