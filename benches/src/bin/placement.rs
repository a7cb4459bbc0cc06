//! Watches the placement of this machine's two vCPUs: a placement probe
//! (`shmproc_testkit::Probe`) every `--every-ms` (250) for `--secs` (60) seconds; prints
//! each change of placement as it happens, then a histogram of the one-way floor and the
//! time spent in each placement. The data the probe's threshold
//! (`shmproc_testkit::placement::FAR_FROM_NS`) was chosen from.
//!
//! `cargo run --profile bench -p shmproc-benches --bin placement -- --secs 600`

use shmproc_testkit::placement::FAR_FROM_NS;
use shmproc_testkit::{Placement, Probe};
use std::time::{Duration, Instant};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn main() {
    let secs = arg("--secs", 60);
    let every = Duration::from_millis(arg("--every-ms", 250));
    let probe = Probe::start();
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut last: Option<Placement> = None;
    while start.elapsed() < Duration::from_secs(secs) {
        let s = probe.sample();
        if last != Some(s.placement) {
            println!(
                "{:7.1} s  {} ({:.0} ns one way)",
                start.elapsed().as_secs_f64(),
                s.placement,
                s.one_way_ns
            );
            last = Some(s.placement);
        }
        samples.push(s);
        std::thread::sleep(every);
    }
    // Histogram in bins that double: 8-16, 16-32, ... ns one way.
    let mut bins = [0usize; 12];
    for s in &samples {
        let b = (s.one_way_ns.max(1.0).log2().floor() as usize).clamp(3, 14) - 3;
        bins[b] += 1;
    }
    println!("\none-way floor, {} probes:", samples.len());
    for (i, n) in bins.iter().enumerate().filter(|(_, n)| **n > 0) {
        let lo = 1u64 << (i + 3);
        println!(
            "  {:5}-{:5} ns: {n:5} {}",
            lo,
            2 * lo,
            "#".repeat((n * 60).div_ceil(samples.len()))
        );
    }
    let mut near: Vec<f64> = samples
        .iter()
        .filter(|s| s.placement == Placement::Near)
        .map(|s| s.one_way_ns)
        .collect();
    let mut far: Vec<f64> = samples
        .iter()
        .filter(|s| s.placement == Placement::Far)
        .map(|s| s.one_way_ns)
        .collect();
    for (name, v) in [("near", &mut near), ("far", &mut far)] {
        if v.is_empty() {
            println!("{name}: no probe");
            continue;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        println!(
            "{name}: {} probes ({:.0}%), min {:.0} / median {:.0} / max {:.0} ns one way",
            v.len(),
            100.0 * v.len() as f64 / samples.len() as f64,
            v[0],
            v[v.len() / 2],
            v[v.len() - 1]
        );
    }
    println!("(threshold: far from {FAR_FROM_NS} ns one way)");
}
