//! [`Event`]: Python's `multiprocessing.Event`, a flag processes can wait for.
//!
//! [`set`](Event::set) raises the flag and wakes every waiter, [`clear`](Event::clear)
//! lowers it, [`wait`](Event::wait) blocks until it is raised. A `set` immediately
//! followed by a `clear` still releases every process that was waiting (as Python's
//! `threading.Event` does). `set` with nobody waiting is one CAS and no system call;
//! `wait` on a set event is one load.
//!
//! The algorithm: [`raw::event`](crate::raw::event).

use crate::arena::{Arena, ObjectKind};
use crate::error::Result;
use crate::object::{self, Handle, Inspect, Obj, Object};
use crate::raw::event::RawEvent;
use crate::sync::time;
use crate::SpinPolicy;
use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// An event shared between processes: Python's `multiprocessing.Event`.
///
/// The state is 8 bytes in an [`Arena`]; the handle is `Clone + Send + Sync` and keeps
/// working in every process `fork`ed after it was made. [`set`](Self::set) wakes every
/// waiter in every process, with no system call when nobody waits. See the
/// [module docs](self) for the algorithm.
///
/// # Example
/// ```
/// use shmproc::event::Event;
/// let ev = Event::new()?;
/// assert!(!ev.is_set());
/// ev.set();
/// ev.wait(); // returns at once
/// ev.clear();
/// assert!(!ev.wait_timeout(std::time::Duration::from_millis(1)));
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Event {
    raw: Obj<Event>,
    spin: SpinPolicy,
}

impl Object for Event {
    type State = RawEvent;
    type Params = ();
    const KIND: ObjectKind = ObjectKind::Event;

    fn type_name() -> Cow<'static, str> {
        "Event".into()
    }

    fn inspect(ev: &RawEvent, _: &(), out: &mut Inspect) {
        out.field("is_set", ev.is_set());
    }
}

impl Handle for Event {
    fn from_obj(raw: Obj<Event>) -> Result<Event> {
        Ok(Event {
            raw,
            spin: SpinPolicy::default(),
        })
    }

    fn obj(&self) -> &Obj<Event> {
        &self.raw
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.raw.debug(f, &[])
    }
}

impl Event {
    /// A new, clear event in the [global arena](Arena::global).
    ///
    /// # Errors
    /// When the global arena cannot be made, or is full.
    pub fn new() -> Result<Event> {
        Self::new_in(&Arena::global()?)
    }

    /// A new, clear event in `arena`.
    ///
    /// # Errors
    /// [`Error::OutOfSpace`](crate::Error::OutOfSpace) /
    /// [`Error::OutOfSpace`](crate::Error::OutOfSpace) when the arena is full to its limit.
    pub fn new_in(arena: &Arena) -> Result<Event> {
        object::make(arena, None, ())
    }

    /// A new, clear event named `name` in `arena`, for [`Event::open`] to find.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists),
    /// [`Error::InvalidName`](crate::Error::InvalidName), or a full arena.
    pub fn create(arena: &Arena, name: &str) -> Result<Event> {
        object::make(arena, Some(name), ())
    }

    /// The event named `name` in `arena`.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound), or
    /// [`Error::WrongType`](crate::Error::WrongType) when `name` is not an event.
    ///
    /// ```
    /// use shmproc::{event::Event, Arena};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// let a = Event::create(&arena, "ready")?;
    /// let b = Event::open(&arena, "ready")?;
    /// a.set();
    /// assert!(b.is_set());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn open(arena: &Arena, name: &str) -> Result<Event> {
        object::find(arena, name)
    }

    /// Sets how long this handle spins before sleeping (see [`SpinPolicy`]).
    pub fn set_spin(&mut self, spin: SpinPolicy) {
        self.spin = spin;
    }

    /// Raises the flag and wakes every process waiting in [`wait`](Self::wait) or
    /// [`wait_timeout`](Self::wait_timeout). Everything this process wrote before `set` is
    /// visible to a waiter after its `wait` returns.
    #[inline]
    pub fn set(&self) {
        self.raw.set();
    }

    /// Lowers the flag. Processes already waiting when a `set` happened still return, even
    /// if `clear` follows at once.
    #[inline]
    pub fn clear(&self) {
        self.raw.clear();
    }

    /// True while the flag is set (a snapshot).
    #[inline]
    pub fn is_set(&self) -> bool {
        self.raw.is_set()
    }

    /// Blocks until the flag is set (returns at once if it is).
    #[inline]
    pub fn wait(&self) {
        self.raw.wait(None, self.spin);
    }

    /// Blocks until the flag is set, or until `timeout` has passed. True if it was set
    /// (Python's `wait(timeout)` return value).
    ///
    /// ```
    /// use shmproc::event::Event;
    /// use std::time::Duration;
    /// let ev = Event::new()?;
    /// assert!(!ev.wait_timeout(Duration::from_millis(5)));
    /// ev.set();
    /// assert!(ev.wait_timeout(Duration::from_millis(5)));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.raw.wait(time::deadline_after(timeout), self.spin)
    }

    /// The shared state, for model checks and diagnostics.
    pub fn raw(&self) -> &RawEvent {
        &self.raw
    }
}
