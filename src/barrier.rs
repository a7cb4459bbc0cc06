//! [`Barrier`]: Python's `multiprocessing.Barrier`, on one futex word.
//!
//! `parties` processes (or threads) meet at [`wait`](Barrier::wait); the last to arrive
//! runs the optional action once, then every party is released. A timeout, an
//! [`abort`](Barrier::abort) or a failed action breaks the barrier
//! ([`BarrierError::Broken`]) until [`reset`](Barrier::reset). So does a party killed
//! while it waits (unlike Python, where the others wait for ever, or until their
//! timeout): each arrival records its pid and start time, and the others look at them
//! while they wait (1 ms after they start waiting, then every 2, 4, ... up to 100 ms), so
//! a `wait()` without a timeout ends with `Broken` within about 100 ms of the death. A
//! party killed while it runs the action breaks it as a panicking action does; one killed
//! asleep in a pass the others complete breaks the next pass (which it will never
//! reach). Only a process killed before it ever arrived goes unseen (a party is a count).
//! Details: [`raw::barrier`](crate::raw::barrier), "A party that dies".
//!
//! The algorithm: [`raw::barrier`](crate::raw::barrier).

use crate::arena::{Arena, ObjectKind};
use crate::error::{Error, Result};
use crate::object::{self, Fresh, Handle, Inspect, Obj, Object};
use crate::raw::barrier::{Arrival, RawBarrier};
pub use crate::raw::barrier::{BarrierError, MAX_PARTIES};
use crate::sync::liveness::Procfs;
use crate::sync::time;
use crate::SpinPolicy;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The action a [`Barrier`] handle runs when its process arrives last.
type Action = Arc<dyn Fn() + Send + Sync>;

/// A barrier shared between processes: Python's `multiprocessing.Barrier(parties,
/// action, timeout)`.
///
/// [`wait`](Self::wait) blocks until `parties` processes (or threads) have called it, then
/// releases them all; each gets a distinct index in `0..parties` (its arrival order, so
/// exactly one gets 0). The [action](Self::with_action) is per handle: the handle through
/// which the last party arrives runs it, once per pass, before anyone is released. A
/// timeout, [`abort`](Self::abort) or panicking action breaks the barrier for every party,
/// including late ones, until [`reset`](Self::reset).
///
/// # Example
/// ```
/// use shmproc::barrier::Barrier;
/// let b = Barrier::new(1)?.with_action(|| println!("everyone is here"));
/// assert_eq!(b.wait(), Ok(0)); // a barrier of one passes at once
/// assert_eq!(b.parties(), 1);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Barrier {
    raw: Obj<Barrier>,
    action: Option<Action>,
    timeout: Option<Duration>,
    spin: SpinPolicy,
}

impl Object for Barrier {
    type State = RawBarrier;
    type Params = u32;
    const KIND: ObjectKind = ObjectKind::Barrier;

    fn type_name() -> Cow<'static, str> {
        "Barrier".into()
    }

    fn size(&parties: &u32) -> Result<usize> {
        if !(1..=MAX_PARTIES).contains(&parties) {
            return Err(Error::InvalidArgument(format!(
                "a barrier needs 1 to {MAX_PARTIES} parties, not {parties}"
            )));
        }
        // The word, then two arrival records per party (one for even passes, one for odd
        // ones; zeroed: of no generation).
        Ok(core::mem::size_of::<RawBarrier>()
            + 2 * parties as usize * core::mem::size_of::<Arrival>())
    }

    fn check(&parties: &u32, b: &RawBarrier) -> Result<()> {
        match b.parties() {
            Some(p) if p == parties => Ok(()),
            _ => Err(Error::Corrupt("invalid party count".into())),
        }
    }

    fn init(&parties: &u32, mut fresh: Fresh<'_, RawBarrier>) {
        fresh.write(RawBarrier::new(parties));
    }

    fn inspect(b: &RawBarrier, _: &u32, out: &mut Inspect) {
        out.field("parties", b.parties());
        out.field("n_waiting", b.n_waiting());
        out.field("broken", b.is_broken());
    }
}

impl Handle for Barrier {
    fn from_obj(raw: Obj<Barrier>) -> Result<Barrier> {
        Ok(Barrier {
            raw,
            action: None,
            timeout: None,
            spin: SpinPolicy::default(),
        })
    }

    fn obj(&self) -> &Obj<Barrier> {
        &self.raw
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.raw.debug(f, &[("timeout", &self.timeout)])
    }
}

impl Barrier {
    /// A barrier for `parties` parties in the [global arena](Arena::global).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `1 <= parties <= MAX_PARTIES`; a full arena.
    pub fn new(parties: u32) -> Result<Barrier> {
        Self::new_in(&Arena::global()?, parties)
    }

    /// A barrier for `parties` parties in `arena`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    ///
    /// ```
    /// # use shmproc::{Arena, barrier::Barrier};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// assert!(Barrier::new_in(&arena, 0).is_err());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn new_in(arena: &Arena, parties: u32) -> Result<Barrier> {
        object::make(arena, None, parties)
    }

    /// A barrier named `name` in `arena`, for [`open`](Self::open).
    ///
    /// # Errors
    /// As [`new`](Self::new); [`Error::AlreadyExists`] or a bad name.
    pub fn create(arena: &Arena, name: &str, parties: u32) -> Result<Barrier> {
        object::make(arena, Some(name), parties)
    }

    /// The barrier named `name` in `arena` (with no action and no default timeout: set
    /// them on the returned handle).
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::WrongType`], or [`Error::Corrupt`] when its party
    /// count is out of range.
    ///
    /// ```
    /// # use shmproc::{Arena, barrier::Barrier};
    /// let arena = Arena::anonymous(1 << 20)?;
    /// Barrier::create(&arena, "start", 4)?;
    /// assert_eq!(Barrier::open(&arena, "start")?.parties(), 4);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn open(arena: &Arena, name: &str) -> Result<Barrier> {
        object::find(arena, name)
    }

    /// Sets the action this handle runs when its caller arrives last (Python's `action`).
    /// Handles cloned (or inherited by `fork`) afterwards carry it too.
    pub fn with_action(mut self, action: impl Fn() + Send + Sync + 'static) -> Barrier {
        self.action = Some(Arc::new(action));
        self
    }

    /// Sets the default timeout of [`wait`](Self::wait) (Python's `timeout`).
    pub fn with_timeout(mut self, timeout: Duration) -> Barrier {
        self.timeout = Some(timeout);
        self
    }

    /// Sets how long this handle spins before sleeping (see [`SpinPolicy`]).
    pub fn set_spin(&mut self, spin: SpinPolicy) {
        self.spin = spin;
    }

    /// Waits for every party (for at most the default timeout, if one was set); returns
    /// this party's index in `0..parties`.
    ///
    /// # Errors
    /// [`BarrierError::Broken`] when the barrier is or becomes broken;
    /// [`BarrierError::Timeout`] when this party's timeout passed (the barrier is then
    /// broken for all).
    ///
    /// # Panics
    /// When the action panics (the barrier is broken first).
    pub fn wait(&self) -> core::result::Result<u32, BarrierError> {
        self.wait_deadline(self.timeout.and_then(time::deadline_after))
    }

    /// As [`wait`](Self::wait), with `timeout` instead of the default one.
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    ///
    /// ```
    /// # use shmproc::barrier::{Barrier, BarrierError};
    /// # use std::time::Duration;
    /// let b = Barrier::new(2)?;
    /// assert_eq!(b.wait_timeout(Duration::from_millis(5)), Err(BarrierError::Timeout));
    /// assert!(b.broken());
    /// assert_eq!(b.wait(), Err(BarrierError::Broken));
    /// b.reset();
    /// assert!(!b.broken());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> core::result::Result<u32, BarrierError> {
        self.wait_deadline(time::deadline_after(timeout))
    }

    fn wait_deadline(&self, deadline: Option<Instant>) -> core::result::Result<u32, BarrierError> {
        let action = self.action.as_deref();
        self.raw.wait(
            self.arrivals(),
            &Procfs,
            || {
                if let Some(a) = action {
                    a();
                }
            },
            deadline,
            self.spin,
        )
    }

    /// The arrival records after the state (two per party).
    fn arrivals(&self) -> &[Arrival] {
        let block = self.raw.block();
        let n = 2 * self.raw.parties().unwrap_or(0) as usize;
        let start = core::mem::size_of::<RawBarrier>();
        if start + n * core::mem::size_of::<Arrival>() > block.len() {
            // Unreachable: the size was checked on create / open (against `parties`,
            // which `check` matched with the state's).
            return &[];
        }
        // SAFETY: `start..start + n * 16` lies inside the block (checked above), 8-aligned
        // (the block is aligned to a cache line, the state is 8 bytes); the records are
        // atomics (any bytes are a value), zeroed at creation, and live as long as
        // `self.raw`.
        unsafe { core::slice::from_raw_parts(block.base().add(start).cast::<Arrival>(), n) }
    }

    /// Breaks the barrier (Python's `abort()`): waiting parties and later arrivals get
    /// [`BarrierError::Broken`] until [`reset`](Self::reset).
    pub fn abort(&self) {
        self.raw.abort();
    }

    /// Returns the barrier to its initial state (Python's `reset()`); parties waiting now
    /// get [`BarrierError::Broken`].
    pub fn reset(&self) {
        self.raw.reset(self.arrivals(), &Procfs);
    }

    /// True while the barrier is broken (Python's `broken`).
    pub fn broken(&self) -> bool {
        self.raw.is_broken()
    }

    /// Parties waiting in the current pass (Python's `n_waiting`; a snapshot).
    pub fn n_waiting(&self) -> u32 {
        self.raw.n_waiting()
    }

    /// The number of parties needed to pass (Python's `parties`).
    pub fn parties(&self) -> u32 {
        self.raw.parties().unwrap_or(0)
    }
}
