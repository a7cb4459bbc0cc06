//! What every bench target shares: criterion's settings, and the test kit
//! (`shmproc-testkit`: [`paired`], the baselines [`Floor`] and [`FutexPingPong`], the
//! placement probe, [`fork`], [`SharedPage`], [`Pinned`], ...), re-exported whole so that
//! `mod common;` gives a bench both.
#![allow(dead_code, unused_imports)]

pub use shmproc_testkit::*;
use std::time::Duration;

/// The criterion settings every bench uses (1 s warm-up, 2 s measurement, 20 samples),
/// then the command line's.
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args()
}
