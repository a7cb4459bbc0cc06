//! The process layer with real forked processes: exit codes, join, terminate, daemons,
//! names, the exit hook, the thread check.

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fd::OwnedFd;
use shmproc::process::{
    active_children, current_process, parent_process, Process, ProcessError, Run, RunResult,
};
use shmproc_testkit::fork;
use std::time::{Duration, Instant};

shmproc_testkit::main!(
    exit_code_0_for_return_and_ok,
    exit_code_1_for_panic_and_err_with_message,
    exit_code_n_for_exit,
    terminate_gives_minus_15_kill_minus_9,
    join_timeout_returns_in_time_and_leaves_child_alive,
    is_alive_turns_false_without_join,
    hundred_children_started_and_joined,
    join_many_times_and_lifecycle_errors,
    default_and_nested_names,
    struct_style_process_has_own_fields,
    daemon_dies_when_parent_is_sigkilled,
    daemon_starting_a_child_gets_an_error,
    terminate_on_finished_child_is_a_noop,
    sentinel_becomes_readable_at_exit,
    close_is_an_error_while_running,
    active_children_reaps_finished_ones,
    refuses_to_fork_with_threads_unless_opted_in,
    exit_hook_joins_children_and_terminates_daemons,
    sibling_cannot_join_but_sees_liveness,
    child_joins_its_own_children_before_leaving,
    exit_hook_kills_a_daemon_that_ignores_sigterm,
    errors_have_messages,
);

fn pipe() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe().expect("pipe")
}

fn write_all(fd: &OwnedFd, mut buf: &[u8]) {
    while !buf.is_empty() {
        let n = rustix::io::write(fd, buf).expect("write");
        buf = &buf[n..];
    }
}

/// Reads until EOF (every write end closed).
fn read_to_end(fd: &OwnedFd) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = rustix::io::read(fd, &mut buf).expect("read");
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Whether `fd` is readable within `timeout`.
fn readable(fd: rustix::fd::BorrowedFd<'_>, timeout: Duration) -> bool {
    let ts = Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    poll(&mut fds, Some(&ts)).expect("poll") > 0
}

/// A process is gone or a zombie (`/proc/<pid>/stat` missing or in state Z/X).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => {
            let state = s[s.rfind(')').unwrap() + 1..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_owned();
            state == "Z" || state == "X"
        }
    }
}

fn sleeper() -> Process {
    Process::new(|| std::thread::sleep(Duration::from_secs(60)))
}

fn exit_code_0_for_return_and_ok() {
    let mut a = Process::new(|| ());
    let mut b = Process::fallible(|| -> Result<(), String> { Ok(()) });
    a.start().unwrap();
    b.start().unwrap();
    assert_eq!(a.join().unwrap(), 0);
    assert_eq!(b.join().unwrap(), 0);
    assert_eq!(a.exitcode(), Some(0));
}

/// The child's stderr goes to a pipe; it must hold `Process <name>:` and the message.
fn exit_code_1_for_panic_and_err_with_message() {
    fn run_capturing(p: &mut Process) -> (i32, String) {
        let (r, w) = pipe();
        use rustix::fd::AsRawFd;
        let wfd = w.as_raw_fd();
        let inner = std::mem::replace(p.target_mut(), Box::new(NoOp));
        *p.target_mut() = Box::new(Redirect {
            fd: wfd,
            inner: Some(inner),
        });
        p.start().unwrap();
        drop(w);
        let code = p.join().unwrap();
        (code, String::from_utf8_lossy(&read_to_end(&r)).into_owned())
    }
    struct NoOp;
    impl Run for NoOp {
        fn run(&mut self) -> RunResult {
            Ok(())
        }
    }
    struct Redirect {
        fd: i32,
        inner: Option<Box<dyn Run>>,
    }
    impl Run for Redirect {
        fn run(&mut self) -> RunResult {
            // SAFETY: plain syscall in the child: stderr now writes to the pipe.
            unsafe { libc::dup2(self.fd, 2) };
            self.inner.take().unwrap().run()
        }
    }

    let mut p = Process::builder()
        .name("panicker")
        .target(|| panic!("boom {}", 42));
    let (code, err) = run_capturing(&mut p);
    assert_eq!(code, 1);
    assert!(err.contains("Process panicker:"), "stderr was {err:?}");
    assert!(err.contains("boom 42"), "stderr was {err:?}");
    assert!(
        err.find("Process panicker:") < err.find("boom 42"),
        "stderr was {err:?}"
    );

    let mut p = Process::builder()
        .name("failer")
        .fallible(|| -> Result<(), std::io::Error> { Err(std::io::Error::other("disk on fire")) });
    let (code, err) = run_capturing(&mut p);
    assert_eq!(code, 1);
    assert!(
        err.contains("Process failer:\ndisk on fire"),
        "stderr was {err:?}"
    );

    // A program that replaced the panic hook still gets the line (written after the
    // panic is caught).
    let mut p = Process::builder().name("silenced").target(|| {
        std::panic::set_hook(Box::new(|_| {}));
        panic!("quiet boom");
    });
    let (code, err) = run_capturing(&mut p);
    assert_eq!(code, 1);
    assert_eq!(err, "Process silenced:\nquiet boom\n");
}

fn exit_code_n_for_exit() {
    let mut a = Process::new(|| std::process::exit(7));
    let mut b = Process::new(|| shmproc::process::exit(3));
    let mut c = Process::new(|| std::process::exit(255));
    a.start().unwrap();
    b.start().unwrap();
    c.start().unwrap();
    assert_eq!(a.join().unwrap(), 7);
    assert_eq!(b.join().unwrap(), 3);
    assert_eq!(c.join().unwrap(), 255);
}

fn terminate_gives_minus_15_kill_minus_9() {
    let mut a = sleeper();
    let mut b = sleeper();
    a.start().unwrap();
    b.start().unwrap();
    assert_eq!(a.exitcode(), None, "running");
    a.terminate().unwrap();
    b.kill().unwrap();
    assert_eq!(a.join().unwrap(), -15);
    assert_eq!(b.join().unwrap(), -9);
    assert_eq!(a.exitcode(), Some(-15));
    assert_eq!(b.exitcode(), Some(-9));
}

fn join_timeout_returns_in_time_and_leaves_child_alive() {
    let mut p = sleeper();
    p.start().unwrap();
    let t = Instant::now();
    assert_eq!(p.join_timeout(Duration::from_millis(200)).unwrap(), None);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(200),
        "returned early: {took:?}"
    );
    assert!(p.is_alive());
    assert_eq!(p.exitcode(), None);
    assert_eq!(p.join_timeout(Duration::ZERO).unwrap(), None);
    p.kill().unwrap();
    assert_eq!(p.join_timeout(Duration::from_secs(30)).unwrap(), Some(-9));
}

fn is_alive_turns_false_without_join() {
    let mut p = Process::new(|| std::process::exit(4));
    assert!(!p.is_alive(), "not started");
    p.start().unwrap();
    // Wait for the exit on the sentinel (not by sleeping), then ask without joining.
    assert!(readable(p.sentinel().unwrap(), Duration::from_secs(30)));
    assert!(!p.is_alive());
    assert_eq!(p.exitcode(), Some(4));
    assert_eq!(p.join().unwrap(), 4);
}

fn hundred_children_started_and_joined() {
    // Each child's exit code is its index: every one ran, once, and reported its own.
    let mut ps: Vec<Process> = (0..100)
        .map(|i| Process::new(move || std::process::exit(i)))
        .collect();
    for p in &mut ps {
        p.start().unwrap();
    }
    let pids: std::collections::HashSet<u32> = ps.iter().map(|p| p.pid().unwrap()).collect();
    assert_eq!(pids.len(), 100);
    for (i, p) in ps.iter().enumerate() {
        assert_eq!(p.join().unwrap(), i as i32);
    }
    assert!(active_children().is_empty());
}

fn join_many_times_and_lifecycle_errors() {
    let mut p = Process::new(|| std::process::exit(9));
    assert_eq!(p.pid(), None);
    assert_eq!(p.exitcode(), None);
    assert!(matches!(p.join(), Err(ProcessError::NotStarted)));
    assert!(matches!(
        p.join_timeout(Duration::ZERO),
        Err(ProcessError::NotStarted)
    ));
    assert!(matches!(p.terminate(), Err(ProcessError::NotStarted)));
    assert!(matches!(p.sentinel(), Err(ProcessError::NotStarted)));
    assert!(matches!(p.close(), Err(ProcessError::NotStarted)));
    p.set_name("nine").unwrap();
    p.start().unwrap();
    assert!(p.pid().is_some());
    assert!(matches!(p.start(), Err(ProcessError::AlreadyStarted)));
    assert!(matches!(p.set_name("x"), Err(ProcessError::AlreadyStarted)));
    assert!(matches!(
        p.set_daemon(true),
        Err(ProcessError::AlreadyStarted)
    ));
    assert!(matches!(
        p.set_allow_threads(true),
        Err(ProcessError::AlreadyStarted)
    ));
    assert_eq!(p.name(), "nine");
    for _ in 0..3 {
        assert_eq!(p.join().unwrap(), 9);
    }
    assert_eq!(p.join_timeout(Duration::ZERO).unwrap(), Some(9));
}

fn default_and_nested_names() {
    assert_eq!(current_process().name(), "MainProcess");
    assert!(parent_process().is_none());
    let main_pid = std::process::id();
    let first = Process::new(|| ());
    assert_eq!(first.name(), "Process-1");
    let mut p = Process::fallible(move || -> Result<(), String> {
        let me = current_process();
        if me.name() != "Process-2" || me.pid() != std::process::id() || me.daemon() {
            return Err(format!("wrong identity {me:?}"));
        }
        let parent = parent_process().ok_or("no parent")?;
        if parent.name() != "MainProcess" || parent.pid() != main_pid || !parent.is_alive() {
            return Err(format!("wrong parent {parent:?}"));
        }
        let mut a = Process::fallible(move || -> Result<(), String> {
            let me = current_process().name().to_owned();
            let parent = parent_process().ok_or("no parent")?.name().to_owned();
            if me == "Process-2:1" && parent == "Process-2" {
                Ok(())
            } else {
                Err(format!("grandchild is {me}, parent {parent}"))
            }
        });
        let b = Process::new(|| ());
        if a.name() != "Process-2:1" || b.name() != "Process-2:2" {
            return Err(format!("names {} {}", a.name(), b.name()));
        }
        a.start().map_err(|e| e.to_string())?;
        match a.join() {
            Ok(0) => Ok(()),
            other => Err(format!("grandchild: {other:?}")),
        }
    });
    assert_eq!(p.name(), "Process-2");
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 0);
    let third = Process::new(|| ());
    assert_eq!(third.name(), "Process-3");
}

struct Mailer {
    index: i32,
    sent: bool,
}

impl Run for Mailer {
    fn run(&mut self) -> RunResult {
        if self.sent {
            return Err("already sent".into());
        }
        self.sent = true;
        // Report the field through the exit code: the child saw the parent's values.
        shmproc::process::exit(self.index)
    }
}

fn struct_style_process_has_own_fields() {
    let mut ps: Vec<Process<Mailer>> = (10..15)
        .map(|i| {
            Process::from_run(Mailer {
                index: i,
                sent: false,
            })
        })
        .collect();
    for p in &mut ps {
        p.start().unwrap();
    }
    for p in &ps {
        assert_eq!(p.join().unwrap(), p.target().index);
        assert!(!p.target().sent, "the child's changes stay in the child");
    }
}

fn daemon_dies_when_parent_is_sigkilled() {
    let (r, w) = pipe();
    let middle = fork(move || {
        let mut d = Process::builder().daemon(true).target(|| loop {
            std::thread::sleep(Duration::from_secs(1));
        });
        d.start().unwrap();
        write_all(&w, &d.pid().unwrap().to_le_bytes());
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let mut buf = [0u8; 4];
    let n = rustix::io::read(&r, &mut buf).unwrap();
    assert_eq!(n, 4);
    let daemon = u32::from_le_bytes(buf);
    assert!(!is_dead(daemon), "daemon runs while its parent lives");
    // A pidfd of the daemon (not our child, but any process can be watched this way):
    // readable once it has exited.
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(daemon as i32).unwrap(),
        rustix::process::PidfdFlags::empty(),
    )
    .expect("pidfd_open of the daemon");
    middle.signal(libc::SIGKILL);
    assert_eq!(middle.wait(), -9);
    assert!(
        readable(rustix::fd::AsFd::as_fd(&pidfd), Duration::from_secs(20)),
        "daemon {daemon} survived its parent"
    );
    assert!(is_dead(daemon), "gone or a zombie");
}

fn daemon_starting_a_child_gets_an_error() {
    let mut d = Process::builder()
        .daemon(true)
        .fallible(|| -> Result<(), String> {
            if !current_process().daemon() {
                return Err("not a daemon".into());
            }
            let mut c = Process::new(|| ());
            match c.start() {
                Err(ProcessError::DaemonHasChildren) => Ok(()),
                other => Err(format!("expected DaemonHasChildren, got {other:?}")),
            }
        });
    assert!(d.daemon());
    d.start().unwrap();
    assert_eq!(d.join().unwrap(), 0);
}

fn terminate_on_finished_child_is_a_noop() {
    // Finished and reaped.
    let mut p = Process::new(|| std::process::exit(5));
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 5);
    p.terminate().unwrap();
    p.kill().unwrap();
    assert_eq!(p.exitcode(), Some(5));
    // Finished but not reaped yet (a zombie).
    let mut q = Process::new(|| std::process::exit(6));
    q.start().unwrap();
    assert!(readable(
        q.handle().unwrap().sentinel(),
        Duration::from_secs(30)
    ));
    q.terminate().unwrap();
    assert_eq!(q.join().unwrap(), 6);
}

fn sentinel_becomes_readable_at_exit() {
    use rustix::fd::AsRawFd;
    let (r, w) = pipe();
    let wfd = w.as_raw_fd();
    let mut p = Process::new(move || {
        // Close the child's copy of the write end, then run until the parent closes its own.
        // SAFETY: closes an fd this child inherited and does not use otherwise.
        unsafe { libc::close(wfd) };
        let _ = read_to_end(&r);
    });
    p.start().unwrap();
    assert!(
        !readable(p.sentinel().unwrap(), Duration::from_millis(50)),
        "readable while running"
    );
    assert!(p.is_alive());
    drop(w);
    assert!(readable(p.sentinel().unwrap(), Duration::from_secs(30)));
    assert_eq!(p.join().unwrap(), 0);
}

fn close_is_an_error_while_running() {
    let mut p = sleeper();
    p.start().unwrap();
    let pid = p.pid();
    assert!(matches!(p.close(), Err(ProcessError::StillRunning)));
    p.terminate().unwrap();
    assert_eq!(p.join().unwrap(), -15);
    p.close().unwrap();
    p.close().unwrap();
    assert_eq!(p.pid(), pid);
    assert_eq!(p.exitcode(), Some(-15));
    assert!(!p.is_alive());
    assert!(matches!(p.join(), Err(ProcessError::Closed)));
    assert!(matches!(p.kill(), Err(ProcessError::Closed)));
    assert!(matches!(p.sentinel(), Err(ProcessError::Closed)));
    assert!(p.handle().is_none());
}

fn active_children_reaps_finished_ones() {
    let mut a = sleeper();
    let mut b = Process::new(|| ());
    a.start().unwrap();
    b.start().unwrap();
    let hb = b.handle().unwrap();
    assert!(readable(hb.sentinel(), Duration::from_secs(30)));
    let live = active_children();
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0].pid(), a.pid().unwrap());
    assert_eq!(live[0].name(), a.name());
    assert_eq!(hb.exitcode(), Some(0), "reaped by active_children");
    // Dropped without join: still listed, and stopped through its handle.
    drop(a);
    live[0].terminate().unwrap();
    assert_eq!(live[0].join().unwrap(), -15);
    assert!(active_children().is_empty());
}

fn refuses_to_fork_with_threads_unless_opted_in() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || rx.recv().ok());
    let mut p = Process::new(|| std::process::exit(2));
    match p.start() {
        Err(ProcessError::Threads { count }) => assert!(count >= 2),
        other => panic!("expected Threads, got {other:?}"),
    }
    assert_eq!(p.pid(), None, "not started");
    p.set_allow_threads(true).unwrap();
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 2);
    let mut q = Process::builder().allow_threads(true).target(|| ());
    q.start().unwrap();
    assert_eq!(q.join().unwrap(), 0);
    drop(tx);
    t.join().unwrap();
    let mut r = Process::new(|| ());
    r.start().unwrap();
    assert_eq!(r.join().unwrap(), 0);
}

/// A process that exits normally (`exit(3)`, as at the end of `main`) joins its non-daemon
/// children and terminates its daemons before it is gone.
fn exit_hook_joins_children_and_terminates_daemons() {
    let (r, w) = pipe();
    let middle = fork(move || {
        let w2 = w.try_clone().unwrap();
        let mut worker = Process::new(move || {
            std::thread::sleep(Duration::from_millis(300));
            write_all(&w2, b"N");
        });
        let mut daemon = Process::builder().daemon(true).target(|| loop {
            std::thread::sleep(Duration::from_secs(1));
        });
        worker.start().unwrap();
        daemon.start().unwrap();
        write_all(&w, &daemon.pid().unwrap().to_le_bytes());
        drop(w);
        // Leave as `main` returning would: through exit(3) and the atexit hook.
        std::process::exit(0);
    });
    let mut buf = [0u8; 4];
    assert_eq!(rustix::io::read(&r, &mut buf).unwrap(), 4);
    let daemon = u32::from_le_bytes(buf);
    assert_eq!(middle.wait(), 0);
    // The worker had finished (and written) before its parent was gone.
    assert!(
        readable(rustix::fd::AsFd::as_fd(&r), Duration::ZERO),
        "worker was not joined"
    );
    assert_eq!(rustix::io::read(&r, &mut buf).unwrap(), 1);
    assert_eq!(buf[0], b'N');
    // The daemon was terminated and reaped by its parent's exit hook.
    assert!(is_dead(daemon), "daemon {daemon} outlived the hook");
}

fn sibling_cannot_join_but_sees_liveness() {
    let mut a = sleeper();
    a.start().unwrap();
    let ha = a.handle().unwrap();
    let mut b = Process::fallible(move || -> Result<(), String> {
        match ha.join() {
            Err(ProcessError::NotOurChild { .. }) => {}
            other => return Err(format!("expected NotOurChild, got {other:?}")),
        }
        if !ha.is_alive() {
            return Err("sibling should look alive".into());
        }
        Ok(())
    });
    b.start().unwrap();
    assert_eq!(b.join().unwrap(), 0);
    a.kill().unwrap();
    assert_eq!(a.join().unwrap(), -9);
}

/// A child that returns without joining its own child still waits for it (Python's
/// child runs `_exit_function` too).
fn child_joins_its_own_children_before_leaving() {
    let (r, w) = pipe();
    let mut p = Process::fallible(move || -> Result<(), ProcessError> {
        let mut grandchild = Process::new(move || {
            std::thread::sleep(Duration::from_millis(200));
            write_all(&w, b"G");
        });
        grandchild.start()?;
        Ok(()) // no join
    });
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 0);
    assert!(
        readable(rustix::fd::AsFd::as_fd(&r), Duration::ZERO),
        "grandchild not joined"
    );
    let mut buf = [0u8; 1];
    assert_eq!(rustix::io::read(&r, &mut buf).unwrap(), 1);
    assert_eq!(&buf, b"G");
}

/// At exit, a daemon gets SIGTERM; one that ignores it is killed after the grace period.
fn exit_hook_kills_a_daemon_that_ignores_sigterm() {
    let (r, w) = pipe();
    let middle = fork(move || {
        let (ready_r, ready_w) = pipe();
        let mut daemon = Process::builder().daemon(true).target(move || {
            // SAFETY: plain syscall in the child: ignore SIGTERM.
            unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
            write_all(&ready_w, b"r");
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        daemon.start().unwrap();
        let mut b = [0u8; 1];
        assert_eq!(rustix::io::read(&ready_r, &mut b).unwrap(), 1);
        write_all(&w, &daemon.pid().unwrap().to_le_bytes());
        std::process::exit(0);
    });
    let mut buf = [0u8; 4];
    assert_eq!(rustix::io::read(&r, &mut buf).unwrap(), 4);
    let daemon = u32::from_le_bytes(buf);
    let t = Instant::now();
    assert_eq!(middle.wait(), 0);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "the daemon got no grace period: {took:?}"
    );
    assert!(is_dead(daemon), "daemon {daemon} outlived the hook");
}

fn errors_have_messages() {
    let all = [
        ProcessError::NotStarted,
        ProcessError::AlreadyStarted,
        ProcessError::Closed,
        ProcessError::StillRunning,
        ProcessError::DaemonHasChildren,
        ProcessError::Threads { count: 3 },
        ProcessError::NotOurChild { pid: 5, parent: 4 },
    ];
    for e in &all {
        let msg = e.to_string();
        assert!(msg.len() > 20, "{msg}");
    }
    assert!(ProcessError::DaemonHasChildren
        .to_string()
        .contains("daemonic processes are not allowed to have children"));
    assert!(ProcessError::Threads { count: 3 }
        .to_string()
        .contains("allow_threads"));
}
