use super::*;
use crate::raw::Opaque;
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
    assert!(matches!(Arena::open(&name), Err(Error::NotFound(_))));
    let a = Arena::create(&name, 1 << 20).unwrap();
    a.unlink().unwrap();
    assert!(matches!(a.unlink(), Err(Error::NotFound(_))));
    assert!(matches!(Arena::open(&name), Err(Error::NotFound(_))));
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
    assert!(matches!(
        Arena::from_fd(memfd_with(b"hello")),
        Err(Error::Truncated { .. })
    ));
}

#[test]
fn truncated_version_and_layout_are_detected() {
    let img = valid_image();
    let mut big = img.clone();
    big[24..32].copy_from_slice(&(MIN_SIZE * 2).to_le_bytes()); // total_size > file
    assert!(matches!(
        Arena::from_fd(memfd_with(&big)),
        Err(Error::Truncated { .. })
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
        Err(Error::Corrupt(_))
    ));
}

#[test]
fn corrupt_entries_are_detected() {
    let img = valid_image();
    let entry = HEADER_SIZE as usize; // first entry
    type Corruption = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Corruption)> = vec![
        (
            "offset into header",
            Box::new(move |b| b[entry + 24..entry + 32].copy_from_slice(&0u64.to_le_bytes())),
        ),
        (
            "misaligned",
            Box::new(move |b| b[entry + 24] = b[entry + 24].wrapping_add(8)),
        ),
        (
            "huge size",
            Box::new(move |b| b[entry + 32..entry + 40].copy_from_slice(&u64::MAX.to_le_bytes())),
        ),
        (
            "bad kind",
            Box::new(move |b| b[entry + 4..entry + 8].copy_from_slice(&777u32.to_le_bytes())),
        ),
        (
            "long name",
            Box::new(move |b| b[entry + 8..entry + 12].copy_from_slice(&1000u32.to_le_bytes())),
        ),
        (
            "bump past end",
            Box::new(|b| b[40..48].copy_from_slice(&u64::MAX.to_le_bytes())),
        ),
    ];
    for (what, corrupt) in cases {
        let mut b = img.clone();
        corrupt(&mut b);
        let r = Arena::from_fd(memfd_with(&b));
        assert!(matches!(r, Err(Error::Corrupt(_))), "{what}: {r:?}");
    }
}

#[test]
fn overlapping_entries_are_detected() {
    let a = Arena::anonymous(MIN_SIZE as usize).unwrap();
    Lock::create(&a, "one").unwrap();
    Lock::create(&a, "two").unwrap();
    // SAFETY: as in `valid_image`.
    let mut b = unsafe { std::slice::from_raw_parts(a.inner.map.as_ptr(), a.size()) }.to_vec();
    let (e0, e1) = (HEADER_SIZE as usize, (HEADER_SIZE + ENTRY_SIZE) as usize);
    let off0 = b[e0 + 24..e0 + 32].to_vec();
    b[e1 + 24..e1 + 32].copy_from_slice(&off0);
    assert!(
        matches!(Arena::from_fd(memfd_with(&b)), Err(Error::Corrupt(m)) if m.contains("overlap"))
    );
}

#[test]
fn wrong_kind_and_missing_names() {
    let a = Arena::anonymous(1 << 20).unwrap();
    Lock::create(&a, "x").unwrap();
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

#[test]
fn space_and_directory_run_out_cleanly() {
    let a = Arena::anonymous(MIN_SIZE as usize).unwrap();
    let big = a.create_object::<Opaque>(None, ObjectKind::Raw, 0, 1 << 20, 0, |_, _| {});
    assert!(matches!(big, Err(Error::OutOfSpace { .. })));
    let a = Arena::anonymous(1 << 20).unwrap();
    let mut n = 0;
    let err = loop {
        match Lock::new_in(&a) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(n, DIR_CAPACITY as usize);
    assert!(matches!(err, Error::DirectoryFull));
}

#[test]
fn objects_are_aligned_and_disjoint() {
    let a = Arena::anonymous(1 << 20).unwrap();
    let x = a
        .create_object::<Opaque>(None, ObjectKind::Raw, 0, 1, 0, |_, _| {})
        .unwrap();
    let y = a
        .create_object::<Opaque>(None, ObjectKind::Raw, 0, 200, 0, |p, _| unsafe {
            // SAFETY: the block is 200+ bytes, fresh and ours.
            p.as_ptr().write_bytes(7, 200)
        })
        .unwrap();
    assert_eq!(x.base() as usize % CACHE_LINE as usize, 0);
    assert_eq!(y.base() as usize % CACHE_LINE as usize, 0);
    assert_eq!(y.base() as usize - x.base() as usize, CACHE_LINE as usize);
    assert_eq!(y.len(), 256);
    assert_eq!(a.used(), 128 + 256);
}

#[test]
fn fingerprints_differ_by_type() {
    assert_ne!(fingerprint_sized::<u32>(), fingerprint_sized::<u64>());
    assert_ne!(fingerprint_sized::<[u8; 4]>(), fingerprint_sized::<u32>());
    assert_eq!(fingerprint_sized::<u32>(), fingerprint_sized::<u32>());
}
