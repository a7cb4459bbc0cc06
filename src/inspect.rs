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
//! use shmproc::inspect::{self, Value};
//! use shmproc::{Arena, Lock, Queue};
//! let arena = Arena::anonymous(1 << 20)?;
//! let q = Queue::<u64>::create(&arena, "jobs", 8)?;
//! q.put(7)?;
//! let lock = Lock::create(&arena, "db")?;
//! let _held = lock.acquire();
//!
//! let snap = arena.snapshot()?;
//! let jobs = inspect::state(&snap, snap.object("jobs").unwrap())?;
//! assert!(jobs.contains(&("qsize", Value::Int(1))));
//! assert!(jobs.contains(&("capacity", Value::Int(8))));
//! let db = inspect::state(&snap, snap.object("db").unwrap())?;
//! let me = inspect::Pid { pid: std::process::id(), alive: true };
//! assert!(db.contains(&("holder", Value::Pid(me))));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use crate::arena::snapshot::{ObjectHolder, ObjectInfo, Pid, ProcessEntry, Snapshot};

use crate::arena::ObjectKind;
use crate::error::{Error, Result};
use crate::object::{Field, Inspect, Object};
use std::fmt;

/// One value of an object's live state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Value {
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

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Pid(p) => write!(f, "{p}"),
            Value::Text(t) => f.write_str(t),
            Value::None => f.write_str("none"),
        }
    }
}

/// The live state of an object: named values, in a fixed order for each kind.
pub type State = Vec<(&'static str, Value)>;

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
/// | `Queue`, `ByteQueue` | `capacity`, `qsize`, `closed`, `get_waiters`, `put_waiters` |
/// | `JoinableQueue` | as `Queue`, and `unfinished` (tasks not yet `task_done`) |
/// | `Pipe` | `capacity`, `duplex`, then for each direction `N` (0: end 1 to end 0, 1: end 0 to end 1) `state_N` (open, writer closed, reader closed, broken) and `in_flight_N` (bytes written, not yet read) |
/// | `Value`, `Array` | `len` (arrays), `raw`, `holder` (of its lock) |
/// | `SharedDict`, `TypedDict`, `SerdeDict` | `len`, `slots` (of its index), `tombstones`, `writer` (the holder of its lock) |
/// | raw block | `len` |
///
/// A kind this build cannot read the state of (a kind newer than the build) gives its
/// parameter word alone, as `param`.
///
/// # Errors
/// [`Error::Corrupt`] when the object's parameters or state are impossible (a peer wrote
/// them, or the object was damaged): the object is listed, its state is not;
/// [`Error::NotFound`] when `object` is not an object `snapshot` could read (see
/// [`ObjectInfo::problem`]).
pub fn state(snapshot: &Snapshot, object: &ObjectInfo) -> Result<State> {
    if let Some(p) = &object.problem {
        return Err(Error::NotFound(format!(
            "object at {:#x}: {p}",
            object.offset
        )));
    }
    let Some(kind) = object.kind else {
        return Ok(vec![("param", Value::Int(object.param.into()))]);
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
        ObjectKind::Queue => via::<crate::Queue<u8>>(s, o)?.0,
        ObjectKind::JoinableQueue => {
            let (mut out, ring, _) = via::<crate::JoinableQueue<u8>>(s, o)?;
            out.push(("unfinished", Value::Int(ring.unfinished().into())));
            out
        }
        // An ObjQueue is a byte queue with its element type recorded.
        ObjectKind::ByteQueue | ObjectKind::ObjQueue => via::<crate::ByteQueue>(s, o)?.0,
        ObjectKind::Pipe => {
            let (mut out, _, _) = via::<crate::pipe::Pipe>(s, o)?;
            for (name, v) in out.iter_mut() {
                if let (true, Value::Int(bits)) = (name.starts_with("state_"), &*v) {
                    *v = Value::Text(pipe_state(*bits));
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
        if let (true, Value::Int(pid)) = (*name == "holder", &*v) {
            *v = Value::Pid(Pid::check(u32::try_from(*pid).unwrap_or(0), 0));
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
            "its block of {} bytes is too small for a {name}'s state",
            o.size
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
                Field::Int(i) => Value::Int(*i),
                Field::Bool(b) => Value::Bool(*b),
                Field::Text(t) => Value::Text(t.clone()),
                Field::None => Value::None,
            };
            (*k, v)
        })
        .collect();
    Ok((fields, st, params))
}

/// A pipe direction's state bits in words.
fn pipe_state(bits: i128) -> String {
    use crate::raw::spsc::{BROKEN, READER_CLOSED, WRITER_CLOSED};
    let names = [
        (WRITER_CLOSED, "writer closed"),
        (READER_CLOSED, "reader closed"),
        (BROKEN, "broken"),
    ];
    let words: Vec<&str> = names
        .iter()
        .filter(|(b, _)| bits & i128::from(*b) != 0)
        .map(|(_, n)| *n)
        .collect();
    if words.is_empty() {
        "open".to_string()
    } else {
        words.join(", ")
    }
}
