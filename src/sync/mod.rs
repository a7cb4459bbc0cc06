//! The sync shim: the only module that names `core::sync::atomic`, `UnsafeCell` or loom.
//!
//! Every algorithm in this crate (the futex mutex, the semaphore counter, the event word,
//! the rings) is written once against this module. In the real build it re-exports
//! `core::sync::atomic` and a thin `UnsafeCell`; with `--cfg shmproc_loom` it re-exports
//! loom's types and a futex modelled inside loom, so the same source is model-checked by
//! `loom-tests/`.
//!
//! The shape of [`UnsafeCell`] (`with` / `with_mut` taking closures) is loom's, so that
//! code using it compiles unchanged in both builds.

pub mod futex;

/// Fills `buf` from the kernel's random source (`getrandom`, retried on a signal and on
/// short reads): an arena's id and hash seed, a spawned child's cookie, a connection's
/// challenge. An error only if the kernel refuses (no `getrandom` and no fallback): the
/// caller fails rather than use predictable bytes.
pub(crate) fn random(buf: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(k) => filled += k,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
pub mod liveness;
pub mod spin;
pub mod wait;

#[cfg(not(shmproc_loom))]
mod imp {
    pub use core::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

    /// A spin-loop hint (`PAUSE` on x86).
    #[inline]
    pub fn spin_hint() {
        core::hint::spin_loop();
    }

    /// Lets another thread or process run; used between spin rounds.
    #[inline]
    pub fn yield_now() {
        std::thread::yield_now();
    }

    /// `core::cell::UnsafeCell` with loom's closure-based access API.
    #[derive(Debug, Default)]
    #[repr(transparent)]
    pub struct UnsafeCell<T: ?Sized>(core::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        /// Wraps `value`.
        #[inline]
        pub const fn new(value: T) -> Self {
            Self(core::cell::UnsafeCell::new(value))
        }
    }

    impl<T: ?Sized> UnsafeCell<T> {
        /// Gives `f` a const pointer to the contents.
        #[inline]
        pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Gives `f` a mutable pointer to the contents.
        #[inline]
        pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

#[cfg(shmproc_loom)]
mod imp {
    pub use loom::cell::UnsafeCell;
    pub use loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

    /// Under loom a spin hint is a yield point, so spin loops terminate in the model.
    #[inline]
    pub fn spin_hint() {
        loom::thread::yield_now();
    }

    /// Under loom: a yield point.
    #[inline]
    pub fn yield_now() {
        loom::thread::yield_now();
    }
}

pub use imp::*;

/// Deadlines, in a form the model can decide without a clock.
pub mod time {
    use std::time::Instant;

    /// True when `deadline` has passed. Callers ask only after a timed futex wait returned
    /// `TimedOut`; under loom such a return *is* the deadline passing (the model has no
    /// clock, and a decision on real time would make executions diverge).
    #[inline]
    pub fn expired(deadline: Option<Instant>) -> bool {
        #[cfg(not(shmproc_loom))]
        {
            deadline.is_some_and(|d| Instant::now() >= d)
        }
        #[cfg(shmproc_loom)]
        {
            deadline.is_some()
        }
    }

    /// `now + timeout`, or `None` (wait forever) when it would overflow.
    #[inline]
    pub fn deadline_after(timeout: std::time::Duration) -> Option<Instant> {
        Instant::now().checked_add(timeout)
    }

    /// The earlier of `deadline` and `now + after`: when a wait that must also look
    /// around every `after` (a holder's liveness, a peer's, a claimer's progress) wakes.
    #[inline]
    pub fn earlier(deadline: Option<Instant>, after: std::time::Duration) -> Option<Instant> {
        match (deadline, deadline_after(after)) {
            (Some(d), Some(a)) => Some(d.min(a)),
            (d, None) => d,
            (None, a) => a,
        }
    }
}

/// Atomics that are never model-checked: process-local statics (the pid cache, id
/// counters). Loom's atomics cannot live in a `static`, and these take part in no
/// cross-process algorithm.
pub mod plain {
    pub use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
}
