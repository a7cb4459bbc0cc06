//! Loom model runners with a per-model preemption bound (only under
//! `--cfg shmproc_loom`).
//!
//! `LOOM_MAX_PREEMPTIONS` sets loom's bound for every model of a run (the test command
//! uses 3). A model whose threads all block can take minutes at that bound; [`model`]
//! runs it at a lower bound of its own, chosen (and documented at the model) as the
//! lowest at which the bugs it is known to catch are still caught.

/// Runs the loom model `f` with at most `bound` preemptions, or fewer if
/// `LOOM_MAX_PREEMPTIONS` asks for fewer (3 when it is not set).
pub fn model(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(b.preemption_bound.unwrap_or(3).min(bound));
    b.check(f);
}
