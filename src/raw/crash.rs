//! The crash-injection hook of the algorithms that repair a writer killed part-way (the
//! heap, the dict, the list), written once: every shared write of such an operation asks
//! its [`Hook`] first. The real build's hook ([`Live`]) always allows, and compiles to
//! nothing; the tests', models' and fuzzers' (`CrashAfter`) allows the first `k` writes
//! and refuses the rest, as if the process had been SIGKILLed right after its `k`-th: the
//! operation then releases nothing (not even its lock), and what it left is what the next
//! locker must repair.

/// Whether the next shared write happens.
pub trait Hook {
    /// Whether to perform the next write (or block operation).
    fn allow(&self) -> bool;
    /// False once a write was refused (the modelled process is dead).
    fn alive(&self) -> bool;
}

impl<H: Hook + ?Sized> Hook for &H {
    #[inline(always)]
    fn allow(&self) -> bool {
        (**self).allow()
    }
    #[inline(always)]
    fn alive(&self) -> bool {
        (**self).alive()
    }
}

/// The real build's hook: every write happens.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Live;

impl Hook for Live {
    #[inline(always)]
    fn allow(&self) -> bool {
        true
    }
    #[inline(always)]
    fn alive(&self) -> bool {
        true
    }
}

/// Test hook (unit tests, loom models, fuzzers): allows the first `k` shared writes and
/// refuses every later one, as if the process had been killed right after its `k`-th.
#[cfg(any(test, fuzzing, shmproc_loom))]
#[doc(hidden)]
#[derive(Debug)]
pub struct CrashAfter {
    left: std::cell::Cell<u64>,
    writes: std::cell::Cell<u64>,
    refused: std::cell::Cell<u64>,
}

#[cfg(any(test, fuzzing, shmproc_loom))]
impl CrashAfter {
    /// Allows `k` writes.
    pub fn new(k: u64) -> CrashAfter {
        CrashAfter {
            left: std::cell::Cell::new(k),
            writes: std::cell::Cell::new(0),
            refused: std::cell::Cell::new(0),
        }
    }

    /// True if a write was refused: the writer "died" part-way, holding its lock.
    pub fn crashed(&self) -> bool {
        self.refused.get() > 0
    }

    /// Writes performed.
    pub fn writes(&self) -> u64 {
        self.writes.get()
    }

    /// Writes refused (1 for the heap: only the lock's release was lost, the operation
    /// is complete).
    pub fn dropped(&self) -> u64 {
        self.refused.get()
    }
}

#[cfg(any(test, fuzzing, shmproc_loom))]
impl Hook for CrashAfter {
    fn allow(&self) -> bool {
        if self.left.get() == 0 {
            self.refused.set(self.refused.get() + 1);
            return false;
        }
        self.left.set(self.left.get() - 1);
        self.writes.set(self.writes.get() + 1);
        true
    }
    fn alive(&self) -> bool {
        self.refused.get() == 0
    }
}
