//! shmproc's test kit, shared by the integration tests (`tests/`), the benches
//! (`shmproc-benches`) and the loom models (`loom-tests`). Not published; no criterion
//! here, so that tests and examples build light.
//!
//! * [`harness`]: the fork-per-test harness with its watchdog, [`main!`] / [`tests!`]
//!   (every test name written once) and [`run`]; [`eventually`] (poll a state that no
//!   primitive can be awaited for);
//! * [`process`]: [`fork`] a child that runs a closure, reap it with or without a timeout
//!   ([`Child`]), kill it; [`SharedPage`] and [`shared_counters`] (memory forked children
//!   share); [`Pinned`] / [`pin_apart`] (CPU pinning); [`Signal`]; [`UnlinkOnDrop`];
//! * [`floor`]: the baselines: [`Floor`] (the physical floor, a bare one-word cache-line
//!   ping-pong, and its two-line form) and [`FutexPingPong`] (the one futex baseline);
//! * [`placement`](mod@placement): the placement probe ([`Probe`]: are the two vCPUs near or far?);
//! * [`paired`](mod@paired): interleaved per-rep ratios, each run tagged with the
//!   placement it was taken in ([`paired()`]).
//! * `loom` (under `--cfg shmproc_loom`): model runners with a per-model preemption bound.

pub mod floor;
pub mod harness;
#[cfg(shmproc_loom)]
pub mod loom;
pub mod paired;
pub mod placement;
pub mod process;

pub use floor::{Floor, FutexPingPong};
pub use harness::{eventually, run, test_timeout, Test};
pub use paired::{bench_mode, paired, report, target_dir, Ratio, Stats};
pub use placement::{placement, Placement, Probe, Sample};
pub use process::{
    cpus_online, fork, pin_apart, shared_counters, Child, Pinned, SharedPage, Signal, UnlinkOnDrop,
};
