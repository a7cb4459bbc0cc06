//! Inspection: what is in an arena, and the live state of every object in it, for
//! programs that want to look and for the `shmproc` command-line tool (`shmproc ls`,
//! `shmproc inspect`, `shmproc clean`: the workspace member `cli/`).
//!
//! Two steps:
//!
//! 1. A [`Snapshot`] of the arena ([`Arena::snapshot`](crate::Arena::snapshot) for an
//!    arena this process has, [`Snapshot::open`] for a named one, [`Snapshot::from_path`]
//!    for `/proc/<pid>/fd/<n>` of another process): its figures, its processes, and every
//!    object, named or anonymous, with its kind, name, references and holders. It is read
//!    from a private copy: no lock is taken and nothing is written (see
//!    [`crate::arena::snapshot`]).
//! 2. [`state`] of each object: its live state by kind (a lock's holder, a semaphore's
//!    value, a queue's length, capacity and sleepers, a pipe's bytes in flight, ...),
//!    read from the same copy. It needs no element type: a `Queue<Order>` is inspected
//!    as well by a program that has never heard of `Order`. The fields are the ones each
//!    handle's `Debug` shows (one description per kind, in the object layer), with a
//!    holder's liveness added.
//!
//! ```
//! use shmproc::inspect::{self, Reading};
//! use shmproc::{Arena, Lock, Queue};
//! let arena = Arena::anonymous(1 << 20)?;
//! let q = Queue::<u64>::create(&arena, "jobs", 8)?;
//! q.put(7)?;
//! let lock = Lock::create(&arena, "db")?;
//! let _held = lock.acquire();
//!
//! let snap = arena.snapshot()?;
//! let jobs = inspect::state(&snap, snap.object("jobs").unwrap())?;
//! assert!(jobs.contains(&("qsize", Reading::Int(1))));
//! assert!(jobs.contains(&("capacity", Reading::Int(8))));
//! let db = inspect::state(&snap, snap.object("db").unwrap())?;
//! let me = inspect::Pid { pid: std::process::id(), alive: true };
//! assert!(db.contains(&("holder", Reading::Pid(me))));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use crate::arena::snapshot::{ObjectHolder, ObjectInfo, Pid, ProcessEntry, Snapshot};

use crate::arena::ObjectKind;
use crate::error::{Error, Result};
use crate::object::{Field, Inspect, Object};
use std::fmt;

/// One value of an object's live state (a reading: not to be confused with the shared
/// [`Value`](crate::Value) object).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reading {
    /// A count, a size, a capacity.
    Int(i128),
    /// A flag.
    Bool(bool),
    /// A process (a lock's holder), and whether it is alive.
    Pid(Pid),
    /// Anything else, in words (a pipe direction's state).
    Text(String),
    /// Absent: a free lock has no holder.
    None,
}

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reading::Int(v) => write!(f, "{v}"),
            Reading::Bool(v) => write!(f, "{v}"),
            Reading::Pid(p) => write!(f, "{p}"),
            Reading::Text(t) => f.write_str(t),
            Reading::None => f.write_str("none"),
        }
    }
}

/// The live state of an object: named values, in a fixed order for each kind.
pub type State = Vec<(&'static str, Reading)>;

/// The live state of `object`, an object of `snapshot`, read from the snapshot's copy.
///
/// | kind | fields |
/// |------|--------|
/// | `Lock` | `holder` |
/// | `RLock` | `holder`, `depth` |
/// | `Semaphore` | `value`, `waiters` |
/// | `BoundedSemaphore` | `value`, `bound`, `waiters` |
/// | `Event` | `is_set` |
/// | `Condition` | `n_waiting`, `holder` (of its own lock) |
/// | `Barrier` | `parties`, `n_waiting`, `broken` |
/// | `Queue`, `ByteQueue`, `ObjQueue` | `capacity`, `qsize`, `closed`, `get_waiters`, `put_waiters`, `lost` (messages lost with consumers that died holding them), `skipped` (dead producers' claims ended), `claims_held` (claims made and not ended; `none` for a queue over 16 MiB, which a snapshot does not copy whole), `dead_claimers` (pids of exited processes among their holders) |
/// | `JoinableQueue` | as `Queue`, with `unfinished` (tasks not yet `task_done`) before `claims_held` |
/// | `Pipe` | `capacity`, `duplex`, then for each direction `N` (0: end 1 to end 0, 1: end 0 to end 1) `state_N` (open, writer closed, reader closed, broken) and `in_flight_N` (bytes written, not yet read) |
/// | `Value`, `Array` | `len` (arrays), `raw`, `holder` (of its lock) |
/// | `SharedDict`, `TypedDict`, `SerdeDict` | `len`, `slots` (of its index), `tombstones`, `writer` (the holder of its lock) |
/// | `SharedList`, `ByteList`, `SerdeList` | `len`, `chunks` (blocks of elements), `writer` (the holder of its lock), `repairs` (interrupted writes repaired), then `element_bytes` (typed lists) or `inline` (byte and serde lists: the most bytes an element keeps in place; a longer one gets a block of its own) |
/// | raw block | `len` |
///
/// A kind this build cannot read the state of (a kind newer than the build) gives its
/// parameter word alone, as `param`.
///
/// # Errors
/// [`Error::Corrupt`] when the object's parameters or state are impossible (a peer wrote
/// them, or the object was damaged): the object is listed, its state is not; also when
/// `object` is not an object `snapshot` could read (its [`ObjectInfo::problem`] says
/// why).
pub fn state(snapshot: &Snapshot, object: &ObjectInfo) -> Result<State> {
    if let Some(p) = &object.problem {
        return Err(Error::Corrupt(format!(
            "object at {:#x}: {p}",
            object.offset
        )));
    }
    let Some(kind) = object.kind else {
        return Ok(vec![("param", Reading::Int(object.param.into()))]);
    };
    let s = snapshot;
    let o = object;
    let mut out = match kind {
        ObjectKind::Lock => via::<crate::Lock>(s, o)?.0,
        ObjectKind::RLock => via::<crate::RLock>(s, o)?.0,
        ObjectKind::Semaphore => via::<crate::Semaphore>(s, o)?.0,
        ObjectKind::BoundedSemaphore => via::<crate::BoundedSemaphore>(s, o)?.0,
        ObjectKind::Event => via::<crate::Event>(s, o)?.0,
        ObjectKind::Condition => via::<crate::Condition>(s, o)?.0,
        ObjectKind::Barrier => via::<crate::Barrier>(s, o)?.0,
        // The element type changes the slots' stride, which the state does not show: any
        // type reads the ring's words (and the decoded capacity) the same.
        ObjectKind::Queue => {
            let (mut out, ring, g) = via::<crate::Queue<u8>>(s, o)?;
            claims(&mut out, ring, s.state_len(o), &g);
            out
        }
        ObjectKind::JoinableQueue => {
            let (mut out, ring, g) = via::<crate::JoinableQueue<u8>>(s, o)?;
            out.push(("unfinished", Reading::Int(ring.unfinished().into())));
            claims(&mut out, ring, s.state_len(o), &g);
            out
        }
        // An ObjQueue is a byte queue with its element type recorded.
        ObjectKind::ByteQueue | ObjectKind::ObjQueue => {
            let (mut out, ring, g) = via::<crate::ByteQueue>(s, o)?;
            claims(&mut out, ring, s.state_len(o), &g);
            out
        }
        ObjectKind::Pipe => {
            let (mut out, _, _) = via::<crate::pipe::Pipe>(s, o)?;
            for (name, v) in out.iter_mut() {
                if let (true, Reading::Int(bits)) = (name.starts_with("state_"), &*v) {
                    *v = Reading::Text(pipe_state(*bits));
                }
            }
            out
        }
        ObjectKind::Value => via::<crate::shared::value::Block<u8, false>>(s, o)?.0,
        ObjectKind::Array => via::<crate::shared::value::Block<u8, true>>(s, o)?.0,
        // Every dict flavour shares the byte dict's table and decoding.
        ObjectKind::SharedDict => via::<crate::SharedDict>(s, o)?.0,
        ObjectKind::Raw => via::<crate::shared::RawBlock>(s, o)?.0,
        // Every list flavour shares one state and its geometry word.
        ObjectKind::SharedList => via::<crate::shared::ByteList>(s, o)?.0,
    };
    for (name, v) in out.iter_mut() {
        // A lock's holder is a pid: with its liveness (start time unknown here: a pid
        // reused since is taken for the holder).
        if let (true, Reading::Int(pid)) = (*name == "holder", &*v) {
            *v = Reading::Pid(Pid::check(u32::try_from(*pid).unwrap_or(0), 0));
        }
    }
    Ok(out)
}

/// The state of `o` as the object type `O` describes it, with `O`'s state block and
/// parameters (decoded and checked against the object's size, as an open checks them).
fn via<'s, O: Object>(s: &'s Snapshot, o: &ObjectInfo) -> Result<(State, &'s O::State, O::Params)> {
    let name = O::type_name();
    let st = s.state::<O::State>(o).ok_or_else(|| {
        Error::Corrupt(format!(
            "its block of {} bytes is too small for {}'s state",
            o.size,
            crate::error::with_article(&name)
        ))
    })?;
    let params = O::decode(o.param, st)?;
    let needed = O::size(&params)?;
    if needed as u64 > o.size {
        return Err(Error::Corrupt(format!(
            "its parameters need {needed} bytes, its block has {}",
            o.size
        )));
    }
    let mut out = Inspect::default();
    O::inspect(st, &params, &mut out);
    let fields = out
        .fields()
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Field::Int(i) => Reading::Int(*i),
                Field::Bool(b) => Reading::Bool(*b),
                Field::Text(t) => Reading::Text(t.clone()),
                Field::None => Reading::None,
            };
            (*k, v)
        })
        .collect();
    Ok((fields, st, params))
}

/// A queue's claims in progress, from its table of claimers (`len` bytes of its block in
/// the copy): `claims_held` (made and not ended), and `dead_claimers`, the processes
/// among their holders that have exited, whose claims the next party that waits at them
/// ends (a dead producer's slot skipped, a dead consumer's message counted in `lost`).
fn claims(
    out: &mut State,
    ring: &crate::raw::mpmc::MpmcRing,
    len: usize,
    g: &crate::raw::slots::SlotGeometry,
) {
    use crate::sync::liveness::{split_ident, Liveness, Procfs};
    let Some(held) = crate::queue::held_claims(ring, len, g) else {
        // A queue too large for the snapshot to copy whole.
        out.push(("claims_held", Reading::None));
        out.push(("dead_claimers", Reading::None));
        return;
    };
    let mut dead: Vec<u32> = held
        .iter()
        .map(|c| split_ident(c.owner))
        .filter(|&(pid, start)| Procfs.is_dead(pid, start))
        .map(|(pid, _)| pid)
        .collect();
    dead.sort_unstable();
    dead.dedup();
    out.push(("claims_held", Reading::Int(held.len() as i128)));
    out.push((
        "dead_claimers",
        if dead.is_empty() {
            Reading::None
        } else {
            Reading::Text(
                dead.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        },
    ));
}

/// A pipe direction's state bits in words (as a `Connection`'s `Debug` says them).
fn pipe_state(bits: i128) -> String {
    crate::pipe::ring_state(u32::try_from(bits).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod snapshot_tests {
    //! The snapshot (`arena::snapshot`) of arenas with every kind in them, read through
    //! this module: here, since they make the handles, which the arena's layer does not
    //! know.
    use crate::arena::snapshot::*;
    use crate::arena::*;
    use crate::error::Error;
    use crate::inspect::{self, Reading};
    use crate::pipe::Pipe;
    use crate::queue::{ByteQueue, JoinableQueue, Queue};
    use crate::shared::{Array, RawBlock, SharedDict, TypedDict, Value as SharedValue};
    use crate::sync::Ordering;
    use crate::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};
    use rustix::fd::{AsFd, OwnedFd};
    use std::any::Any;

    /// One object of every kind this build makes, in `arena`, each named after its kind
    /// (and one anonymous lock).
    fn one_of_each(arena: &Arena) -> Vec<Box<dyn Any>> {
        let b = |x: Box<dyn Any>| x;
        vec![
            b(Box::new(Lock::create(arena, "Lock").unwrap())),
            b(Box::new(RLock::create(arena, "RLock").unwrap())),
            b(Box::new(Event::create(arena, "Event").unwrap())),
            b(Box::new(Semaphore::create(arena, "Semaphore", 2).unwrap())),
            b(Box::new(
                BoundedSemaphore::create(arena, "BoundedSemaphore", 2).unwrap(),
            )),
            b(Box::new(Condition::create(arena, "Condition").unwrap())),
            b(Box::new(Barrier::create(arena, "Barrier", 3).unwrap())),
            b(Box::new(Queue::<u64>::create(arena, "Queue", 16).unwrap())),
            b(Box::new(
                JoinableQueue::<u64>::create(arena, "JoinableQueue", 16).unwrap(),
            )),
            b(Box::new(
                ByteQueue::create(arena, "ByteQueue", 8, 64).unwrap(),
            )),
            b(Box::new(Pipe::new_in(arena, true, 4096).unwrap())),
            b(Box::new(SharedValue::create(arena, "Value", 7u64).unwrap())),
            b(Box::new(
                Array::<u32>::create(arena, "Array", &[0; 100]).unwrap(),
            )),
            b(Box::new(SharedDict::create(arena, "SharedDict").unwrap())),
            b(Box::new(TypedDict::<u32, u64>::new_in(arena).unwrap())),
            b(Box::new(RawBlock::create(arena, "Raw", 300).unwrap())),
            b(Box::new(Lock::new_in(arena).unwrap())),
        ]
    }

    /// The bytes of `arena`'s file.
    fn image(arena: &Arena) -> Vec<u8> {
        let mut buf = vec![0u8; arena.size()];
        let n = rustix::io::pread(arena.fd(), &mut buf, 0).unwrap();
        assert_eq!(n, buf.len());
        buf
    }

    fn memfd_with(bytes: &[u8]) -> OwnedFd {
        use rustix::fs::{memfd_create, MemfdFlags};
        let fd = memfd_create("snapshot-test", MemfdFlags::CLOEXEC).unwrap();
        let mut done = 0;
        while done < bytes.len() {
            done += rustix::io::write(&fd, &bytes[done..]).unwrap();
        }
        fd
    }

    #[test]
    fn every_object_is_listed_with_its_kind_name_and_holder() {
        let arena = Arena::anonymous(1 << 20).unwrap();
        let objects = one_of_each(&arena);
        let snap = arena.snapshot().unwrap();
        assert!(snap.consistent && snap.problems.is_empty(), "{snap:?}");
        assert_eq!(snap.objects.len() as u64, snap.stats.objects);
        assert_eq!(snap.objects.len(), 17);
        let me = std::process::id();
        assert_eq!(snap.processes.len(), 1);
        assert_eq!(
            snap.processes[0].pid,
            Pid {
                pid: me,
                alive: true
            }
        );
        assert_eq!(snap.processes[0].objects, 17);
        assert!(snap.creator.alive && snap.creator.pid == me && !snap.is_orphan());
        for kind in ObjectKind::ALL {
            if matches!(kind, ObjectKind::SharedList | ObjectKind::ObjQueue) {
                continue; // not made by this build's handles
            }
            let n = snap.objects.iter().filter(|o| o.kind == Some(kind)).count();
            let expected = match kind {
                ObjectKind::Lock | ObjectKind::SharedDict => 2,
                _ => 1,
            };
            assert_eq!(n, expected, "{kind:?}");
        }
        for o in &snap.objects {
            assert_eq!(o.problem, None);
            assert_eq!(o.holders.len(), 1, "{o:?}");
            assert_eq!(o.holders[0].pid.pid, me);
            let named = o.name.is_some();
            assert_eq!(o.refs, 1 + u64::from(named), "{o:?}");
            if named && o.kind != Some(ObjectKind::SharedDict) {
                assert_eq!(
                    o.name.as_deref(),
                    Some(format!("{:?}", o.kind.unwrap()).as_str())
                );
            }
            assert!(o.size > 0 && o.offset % CACHE_LINE == 0);
            let state = inspect::state(&snap, o).unwrap();
            assert!(!state.is_empty(), "{o:?}");
        }
        let gens: std::collections::HashSet<_> =
            snap.objects.iter().map(|o| o.generation).collect();
        assert_eq!(gens.len(), snap.objects.len(), "generations are unique");
        drop(objects);
        // The names keep the named objects; the anonymous ones are gone.
        let snap = arena.snapshot().unwrap();
        assert_eq!(snap.objects.len(), 14, "{snap:?}");
        for o in &snap.objects {
            assert!(
                o.name.is_some() && o.holders.is_empty() && o.refs == 1,
                "{o:?}"
            );
        }
        assert_eq!(snap.processes[0].objects, 0);
    }

    #[test]
    fn live_state_is_read_by_kind() {
        let arena = Arena::anonymous(1 << 20).unwrap();
        let q = JoinableQueue::<[u64; 3]>::create(&arena, "q", 8).unwrap();
        for i in 0..3 {
            q.put([i; 3]).unwrap();
        }
        let sem = Semaphore::create(&arena, "sem", 5).unwrap();
        let _permit = sem.acquire();
        let ev = Event::create(&arena, "ev").unwrap();
        ev.set();
        let (a, b) = Pipe::new_in(&arena, false, 4096).unwrap();
        b.send_bytes(&[1; 100]).unwrap();
        let lock = Lock::create(&arena, "lock").unwrap();
        let held = lock.acquire();
        let d = SharedDict::create(&arena, "d").unwrap();
        d.insert(b"k", b"v").unwrap();
        let snap = arena.snapshot().unwrap();
        let st = |name: &str| inspect::state(&snap, snap.object(name).unwrap()).unwrap();
        let q_state = st("q");
        assert!(q_state.contains(&("qsize", Reading::Int(3))), "{q_state:?}");
        assert!(q_state.contains(&("capacity", Reading::Int(8))));
        assert!(q_state.contains(&("unfinished", Reading::Int(3))));
        assert!(q_state.contains(&("closed", Reading::Bool(false))));
        assert!(st("sem").contains(&("value", Reading::Int(4))));
        assert!(st("ev").contains(&("is_set", Reading::Bool(true))));
        let me = Pid::check(std::process::id(), 0);
        assert!(st("lock").contains(&("holder", Reading::Pid(me))));
        assert!(st("d").contains(&("len", Reading::Int(1))));
        let pipe = snap
            .objects
            .iter()
            .find(|o| o.kind == Some(ObjectKind::Pipe))
            .unwrap();
        let p = inspect::state(&snap, pipe).unwrap();
        // 100 bytes: an 8-byte chunk header and the payload, padded to 8.
        assert!(p.contains(&("in_flight_0", Reading::Int(112))), "{p:?}");
        assert!(
            p.contains(&("state_0", Reading::Text("open".into()))),
            "{p:?}"
        );
        drop(held);
        let after = arena.snapshot().unwrap();
        let l = inspect::state(&after, after.object("lock").unwrap()).unwrap();
        assert!(l.contains(&("holder", Reading::None)), "{l:?}");
        drop((a, b));
    }

    #[test]
    fn an_object_of_another_snapshot_is_read_as_this_ones() {
        // Two fresh arenas place their first object at the same offset.
        let arena = Arena::anonymous(1 << 20).unwrap();
        let _l = Lock::create(&arena, "l").unwrap();
        let other = Arena::anonymous(1 << 20).unwrap();
        let _q = Queue::<u64>::create(&other, "q", 4).unwrap();
        let (a, b) = (arena.snapshot().unwrap(), other.snapshot().unwrap());
        let q = b.object("q").unwrap();
        assert_eq!(q.offset, a.object("l").unwrap().offset);
        // `a` has a lock there: too small for a ring, so no state, not a lock's bytes
        // taken for a ring.
        assert!(a.state::<crate::raw::mpmc::MpmcRing>(q).is_none());
        assert!(matches!(inspect::state(&a, q), Err(Error::Corrupt(_))));
        // And at an offset where `a` has nothing, nothing.
        let mut elsewhere = q.clone();
        elsewhere.offset += 4096;
        assert!(a.state::<crate::raw::lock::RawLock>(&elsewhere).is_none());
        assert!(inspect::state(&b, q).is_ok());
    }

    #[test]
    fn headers_that_are_not_an_arena_are_errors() {
        let arena = Arena::anonymous(1 << 20).unwrap();
        let mut img = image(&arena);
        assert!(matches!(
            Snapshot::from_fd(memfd_with(&img[..4096]).as_fd()),
            Err(Error::Truncated { .. })
        ));
        img[0] ^= 1;
        assert!(matches!(
            Snapshot::from_fd(memfd_with(&img).as_fd()),
            Err(Error::NotAnArena)
        ));
        assert!(matches!(
            Snapshot::from_fd(memfd_with(&vec![0; 1 << 16]).as_fd()),
            Err(Error::NotAnArena)
        ));
    }

    #[test]
    fn what_a_file_is_is_decided_before_its_size() {
        // Small files of another kind (a text file, an empty one) are not arenas, not
        // "truncated arenas" to remove.
        let passwd = b"root:x:0:0:root:/root:/bin/bash\n";
        for bytes in [&passwd[..], b"", b"SHMPRO", &[0u8; 100][..]] {
            match Snapshot::from_fd(memfd_with(bytes).as_fd()) {
                Err(Error::NotAnArena) => {}
                r => panic!("{} bytes: {r:?}", bytes.len()),
            }
        }
        // A real file of another kind, through its path.
        let exe = std::env::current_exe().unwrap();
        assert!(matches!(Snapshot::from_path(&exe), Err(Error::NotAnArena)));
        // A SharedMemory segment, small or large: said to be one.
        for size in [16, 1 << 16] {
            let seg = crate::shared::SharedMemory::create(None, size).unwrap();
            let e = Snapshot::open(seg.name()).unwrap_err();
            assert!(
                matches!(&e, Error::InvalidArgument(m) if m.contains("SharedMemory segment")
                    && m.contains(&format!("{size} usable bytes"))),
                "{e}"
            );
            seg.unlink().unwrap();
        }
        // An arena's magic on a short file: that one is truncated, whatever follows.
        let arena = Arena::anonymous(1 << 20).unwrap();
        let img = image(&arena);
        for len in [8, 40, 4096] {
            assert!(
                matches!(
                    Snapshot::from_fd(memfd_with(&img[..len]).as_fd()),
                    Err(Error::Truncated { found, .. }) if found == len as u64
                ),
                "{len}"
            );
        }
    }

    /// A tiny PRNG (xorshift64*), seeded: the scribbles are the same on every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn scribbled_arenas_give_errors_or_partial_listings_never_a_panic() {
        let arena = Arena::anonymous(1 << 18).unwrap();
        let _objects = one_of_each(&arena);
        let img = image(&arena);
        let clean = Snapshot::from_fd(memfd_with(&img).as_fd()).unwrap();
        assert_eq!(clean.objects.len(), 17);
        // Where the metadata lives: the header, the tables, the object headers and states.
        let mut hot: Vec<u64> = vec![0, 64, 1024];
        for o in &clean.objects {
            hot.push(o.offset);
            hot.push(o.offset + OBJ_HEADER);
        }
        let meta = &arena.header().meta;
        for w in [&meta.dir, &meta.procs] {
            // Relaxed: a test, one thread, over its private copy.
            hot.push(w.load(Ordering::Relaxed));
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let rounds = std::env::var("SHMPROC_SCRIBBLES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1500);
        let (mut listed, mut partial, mut refused) = (0, 0, 0);
        for round in 0..rounds {
            let mut bad = img.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = if rng.next() % 4 == 0 {
                    rng.next() % bad.len() as u64 // anywhere
                } else {
                    hot[(rng.next() % hot.len() as u64) as usize] + rng.next() % 512
                };
                let at = at.min(bad.len() as u64 - 8) as usize & !7;
                let word = match rng.next() % 4 {
                    0 => rng.next(),
                    1 => rng.next() % (1 << 20),
                    2 => u64::MAX,
                    _ => 0,
                };
                bad[at..at + 8].copy_from_slice(&word.to_le_bytes());
            }
            if round % 7 == 0 {
                let cut = (rng.next() as usize % bad.len()).max(MIN_SIZE as usize);
                bad.truncate(cut);
            }
            match Snapshot::from_fd(memfd_with(&bad).as_fd()) {
                Ok(s) => {
                    let mut damaged = !s.problems.is_empty();
                    for o in &s.objects {
                        damaged |= o.problem.is_some();
                        // Never a panic; an error is fine.
                        let _ = inspect::state(&s, o);
                    }
                    if damaged {
                        partial += 1;
                    } else {
                        listed += 1;
                    }
                }
                Err(_) => refused += 1,
            }
        }
        // The scribbles hit every case.
        assert!(
            listed > 0 && partial > 0 && refused > 0,
            "{listed} {partial} {refused}"
        );
    }
}
