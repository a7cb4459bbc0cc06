//! The kit's own tests, run by the kit's harness (each in a forked child, under the
//! watchdog).

use shmproc_testkit::{
    cpus_online, eventually, fork, paired, pin_apart, shared_counters, Floor, FutexPingPong,
    Pinned, Placement, Probe,
};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

shmproc_testkit::main!(
    names_are_written_once,
    placement_thresholds,
    child_exit_codes,
    wait_timeout_then_kill,
    eventually_polls_until_it_holds,
    floors_park_and_resume,
    futex_ping_pong_parks_and_resumes,
    probe_names_a_placement,
    paired_ratio_and_placement,
    pin_apart_leaves_the_parents_cpu,
);

fn names_are_written_once() {
    fn a() {}
    fn b() {}
    let tests = shmproc_testkit::tests![
        a,
        #[cfg(any())]
        missing,
        b
    ];
    assert_eq!(tests.map(|(name, _)| name), ["a", "b"]);
}

fn placement_thresholds() {
    assert_eq!(Placement::of(20.0), Placement::Near);
    assert_eq!(Placement::of(99.9), Placement::Near);
    assert_eq!(Placement::of(100.0), Placement::Far);
    assert_eq!(Placement::of(1000.0), Placement::Far);
    assert_eq!(Placement::of(1000.1), Placement::Busy);
    assert_eq!(Placement::Far.to_string(), "far");
}

fn child_exit_codes() {
    assert_eq!(fork(|| {}).wait(), 0);
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let code = fork(|| panic!("deliberate")).wait();
    std::panic::set_hook(quiet);
    assert_eq!(code, 101);
    // SAFETY: a plain libc call in the child.
    assert_eq!(fork(|| unsafe { libc::_exit(7) }).wait(), 7);
}

fn wait_timeout_then_kill() {
    let child = fork(|| std::thread::sleep(Duration::from_secs(60)));
    let t = Instant::now();
    assert_eq!(child.wait_timeout(Duration::from_millis(20)), None);
    assert!(
        t.elapsed() >= Duration::from_millis(20),
        "returned before its timeout"
    );
    assert_eq!(child.kill(), -libc::SIGKILL);
}

fn eventually_polls_until_it_holds() {
    let flag = &shared_counters(1)[0];
    let child = fork(|| {
        std::thread::sleep(Duration::from_millis(20));
        flag.store(1, Ordering::SeqCst);
    });
    eventually("the child's store", || flag.load(Ordering::SeqCst) == 1);
    child.join();
}

fn floors_park_and_resume() {
    for floor in [Floor::start(), Floor::two_lines()] {
        // Each call parks the peer at the end and wakes it at the start.
        for _ in 0..3 {
            assert!(floor.round_trips(1_000) > Duration::ZERO);
        }
    }
}

fn futex_ping_pong_parks_and_resumes() {
    let futex = FutexPingPong::start();
    for _ in 0..3 {
        assert!(futex.round_trips(50) > Duration::ZERO);
    }
}

fn probe_names_a_placement() {
    let probe = Probe::start();
    let s = probe.sample();
    assert!(s.one_way_ns > 0.0);
    assert_eq!(s.placement, Placement::of(s.one_way_ns));
}

fn paired_ratio_and_placement() {
    // Not under `cargo bench`: two reps of at most 100 operations.
    let r = paired(
        "kit: a subject half again as slow as its baseline",
        "op",
        1_000,
        20,
        |n| Duration::from_nanos(100 * n),
        |n| Duration::from_nanos(150 * n),
    );
    assert!((r.median - 1.5).abs() < 1e-9, "{r:?}");
    assert!((r.baseline_ns - 100.0).abs() < 1e-9);
    let reps: usize = r.by_placement.iter().map(|(_, s)| s.reps).sum();
    assert_eq!(reps, 2);
    assert_eq!(r.placement.is_some(), r.by_placement.len() == 1);
}

fn pin_apart_leaves_the_parents_cpu() {
    if cpus_online() < 2 {
        return;
    }
    let _pin = Pinned::to(0);
    fork(|| {
        pin_apart();
        // SAFETY: a plain libc call.
        let cpu = unsafe { libc::sched_getcpu() };
        assert_ne!(cpu, 0, "the child still runs on its parent's CPU");
    })
    .join();
}
