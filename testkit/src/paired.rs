//! Interleaved, per-rep ratios, each rep tagged with the vCPUs' placement.
//!
//! The machines these benches run on change character every few tens of seconds (the host
//! moves the two vCPUs closer or further apart, see DESIGN.md and [`crate::placement`](mod@crate::placement)).
//! Two medians taken a minute apart are therefore not comparable. [`paired`] instead
//! measures the baseline and the subject back to back, rep by rep, and reports the
//! distribution of the per-rep ratio `subject / baseline`; before each rep a
//! [`Probe`] names the placement, and the line says which placement the reps were taken
//! in (and the ratio in each, when the placement changed during the run).
//!
//! Results are printed and appended to `<target dir>/shmproc-bench.txt`, one line per
//! pair.

use crate::placement::{Placement, Probe};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// True under `cargo bench` (criterion's harness gets `--bench`); false under `cargo test
/// --benches`, where every bench must run once, quickly, as a smoke test.
pub fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The cargo target directory this binary was built in: `CARGO_TARGET_DIR` if set, else
/// worked out from the executable's path (`<target>/<profile>/deps/<bin>` or
/// `<target>/<profile>/<bin>`), else `target`.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let from_exe = std::env::current_exe().ok().and_then(|exe| {
        let mut dir = exe.parent()?;
        if dir.file_name()? == "deps" || dir.file_name()? == "examples" {
            dir = dir.parent()?;
        }
        Some(dir.parent()?.to_path_buf())
    });
    from_exe.unwrap_or_else(|| PathBuf::from("target"))
}

/// The per-rep ratios of the reps taken in one placement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Median of the per-rep `subject / baseline`.
    pub median: f64,
    /// 10th percentile of the same.
    pub p10: f64,
    /// 90th percentile of the same.
    pub p90: f64,
    /// Median baseline time per operation, ns.
    pub baseline_ns: f64,
    /// Median subject time per operation, ns.
    pub subject_ns: f64,
    /// How many reps.
    pub reps: usize,
}

/// Ratio statistics of one [`paired`] run.
#[derive(Debug, Clone)]
pub struct Ratio {
    /// Median of the per-rep `subject / baseline`, over all reps.
    pub median: f64,
    /// 10th percentile of the same.
    pub p10: f64,
    /// 90th percentile of the same.
    pub p90: f64,
    /// Median baseline time per operation, ns.
    pub baseline_ns: f64,
    /// Median subject time per operation, ns.
    pub subject_ns: f64,
    /// The placement of every rep, if they all agree (`None`: it changed during the run,
    /// see `by_placement`, or the pair was filtered out).
    pub placement: Option<Placement>,
    /// The reps of each placement seen, in the order of [`Placement::ALL`].
    pub by_placement: Vec<(Placement, Stats)>,
}

impl Ratio {
    fn skipped() -> Ratio {
        Ratio {
            median: f64::NAN,
            p10: f64::NAN,
            p90: f64::NAN,
            baseline_ns: f64::NAN,
            subject_ns: f64::NAN,
            placement: None,
            by_placement: Vec::new(),
        }
    }
}

/// One rep: placement, baseline and subject ns per operation.
type Rep = (Placement, f64, f64);

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn stats(reps: &[Rep]) -> Option<Stats> {
    if reps.is_empty() {
        return None;
    }
    let mut ratios: Vec<f64> = reps.iter().map(|(_, b, s)| s / b.max(1e-3)).collect();
    let mut base: Vec<f64> = reps.iter().map(|r| r.1).collect();
    let mut subj: Vec<f64> = reps.iter().map(|r| r.2).collect();
    Some(Stats {
        median: quantile(&mut ratios, 0.5),
        p10: quantile(&mut ratios, 0.1),
        p90: quantile(&mut ratios, 0.9),
        baseline_ns: quantile(&mut base, 0.5),
        subject_ns: quantile(&mut subj, 0.5),
        reps: reps.len(),
    })
}

/// Measures `baseline(iters)` and `subject(iters)` back to back, `reps` times, and reports
/// the distribution of `subject / baseline` per rep, with the placement of the vCPUs
/// probed before each rep. Both closures return the time of `iters` operations; `per`
/// names the unit (e.g. "round trip", "msg").
///
/// The line printed (and appended to `<target dir>/shmproc-bench.txt` under `cargo
/// bench`) reads
/// `name: ratio 1.42 (p10 1.38, p90 1.51) [far, floor 236 ns one way] | subject ... | baseline ... | 20 reps x 20000`;
/// when the placement changed during the run the bracket reads `[mixed: 12 near, 8 far]`
/// and the line ends with the ratio of each placement's reps. `busy` reps (the probe found
/// no floor: another process holds a CPU) say that the machine was not free.
///
/// Under `cargo test --benches` ([`bench_mode`] false) it runs 2 reps of at most 100
/// operations: a smoke test. `SHMPROC_PAIRS=<text>` in the environment runs only the
/// pairs whose name contains `<text>` (the others return NaN ratios without measuring),
/// e.g. `SHMPROC_PAIRS=SPSC cargo bench -p shmproc-benches --bench queue`.
pub fn paired(
    name: &str,
    per: &str,
    iters: u64,
    reps: usize,
    mut baseline: impl FnMut(u64) -> Duration,
    mut subject: impl FnMut(u64) -> Duration,
) -> Ratio {
    if let Ok(only) = std::env::var("SHMPROC_PAIRS") {
        if !name.contains(only.as_str()) {
            return Ratio::skipped();
        }
    }
    let (iters, reps) = if bench_mode() {
        (iters, reps)
    } else {
        (iters.clamp(1, 100), 2)
    };
    let probe = Probe::start();
    // Warm up both sides once.
    baseline(iters);
    subject(iters);
    let mut all: Vec<Rep> = Vec::with_capacity(reps);
    let mut floor_ns = Vec::with_capacity(reps);
    for rep in 0..reps {
        let sample = probe.sample();
        floor_ns.push(sample.one_way_ns);
        // Alternate which side goes first, so neither always follows the other.
        let (b, s) = if rep % 2 == 0 {
            let b = baseline(iters);
            (b, subject(iters))
        } else {
            let s = subject(iters);
            (baseline(iters), s)
        };
        let per_op = |d: Duration| d.as_nanos() as f64 / iters as f64;
        all.push((sample.placement, per_op(b), per_op(s)));
    }
    drop(probe);
    let by_placement: Vec<(Placement, Stats)> = Placement::ALL
        .into_iter()
        .filter_map(|p| {
            let reps: Vec<Rep> = all.iter().copied().filter(|r| r.0 == p).collect();
            Some((p, stats(&reps)?))
        })
        .collect();
    let total = stats(&all).expect("at least one rep");
    let placement = match by_placement.as_slice() {
        [(p, _)] => Some(*p),
        _ => None,
    };
    let tag = match placement {
        Some(p) => format!("{p}, floor {:.0} ns one way", quantile(&mut floor_ns, 0.5)),
        None => {
            let counts: Vec<String> = by_placement
                .iter()
                .map(|(p, s)| format!("{} {p}", s.reps))
                .collect();
            format!("mixed: {}", counts.join(", "))
        }
    };
    let mut line = format!(
        "{name}: ratio {:.2} (p10 {:.2}, p90 {:.2}) [{tag}] | subject {:.1} ns/{per} | baseline {:.1} ns/{per} | {reps} reps x {iters}",
        total.median, total.p10, total.p90, total.subject_ns, total.baseline_ns
    );
    if placement.is_none() {
        for (p, s) in &by_placement {
            line += &format!(
                " | {p}: ratio {:.2} (p10 {:.2}, p90 {:.2}), {} reps",
                s.median, s.p10, s.p90, s.reps
            );
        }
    }
    let r = Ratio {
        median: total.median,
        p10: total.p10,
        p90: total.p90,
        baseline_ns: total.baseline_ns,
        subject_ns: total.subject_ns,
        placement,
        by_placement,
    };
    report(&line);
    r
}

/// Prints a bench's result `line` and, under `cargo bench` ([`bench_mode`]), appends it
/// to `<target dir>/shmproc-bench.txt`: how every line of the benches is kept (the
/// pairs' and the benches' own, e.g. Python's figures).
pub fn report(line: &str) {
    println!("{line}");
    if bench_mode() {
        let dir = target_dir();
        std::fs::create_dir_all(&dir).ok();
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("shmproc-bench.txt"))
        {
            writeln!(f, "{line}").ok();
        }
    }
}
