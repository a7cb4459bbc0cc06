//! Start methods with real processes: `Spawn` (this test binary run again: its `main`
//! calls `shmproc::init()` first) and `ForkServer` (the server `init` forked), beside
//! `Fork`: exit codes, names, join / terminate / kill, daemons, the default with and
//! without threads, handles that travel (an `Arena` with objects in it, `Connection`
//! ends), and bad input (a child that skips the hook, arguments that do not deserialize,
//! targets that cannot travel).

use serde::{Deserialize, Serialize};
use shmproc::pipe::Sender;
use shmproc::pipe::{Pipe, RecvError};
use shmproc::process::{
    current_process, get_context, parent_process, set_start_method, Process, ProcessError, Run,
    RunResult, StartMethod,
};
use shmproc::queue::{ByteQueue, JoinableQueue, ObjQueue};
use shmproc::shared::{SharedDict, SharedList};
use shmproc::{
    Arena, Array, Barrier, BoundedSemaphore, Condition, Connection, Event, Lock, Queue, RLock,
    Semaphore, Value,
};
use std::time::{Duration, Instant};

/// What `main` does before `init` when this variable is set: a child whose binary
/// "lacks the hook".
const MODE: &str = "SHMPROC_TEST_SPAWN_MODE";

fn main() {
    match std::env::var(MODE).as_deref() {
        // A main that exits before the hook.
        Ok("exit-before-init") => std::process::exit(42),
        // A main that never reaches the hook.
        Ok("hang-before-init") => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        // A main that starts a process without the hook: it must be refused.
        Ok("start-without-init") => {
            let mut p = Process::new(|| ());
            std::process::exit(match p.start() {
                Err(ProcessError::SpawnedWithoutInit) => 43,
                _ => 44,
            });
        }
        _ => {}
    }
    shmproc::init();
    shmproc_testkit::run(&shmproc_testkit::tests![
        exit_codes_and_names,
        join_timeout_terminate_kill,
        daemon_flag_and_no_children,
        exit_hook_terminates_remote_daemons,
        spawned_daemon_dies_with_sigkilled_parent,
        threaded_parent_starts_16_workers_with_handles,
        tokio_parent_uses_the_forkserver_by_default,
        default_forks_while_single_threaded,
        context_and_global_default,
        spawned_child_adopts_global_arena,
        function_child_holds_exactly_its_args,
        anonymous_objects_travel_as_arguments,
        parent_drops_closure_captures_at_start,
        targets_that_cannot_travel,
        arguments_that_fail_to_deserialize,
        child_without_the_hook,
        errors_have_messages,
        forkserver_replaced_when_killed,
    ]);
}

const REMOTE: [StartMethod; 2] = [StartMethod::Spawn, StartMethod::ForkServer];

fn builder(m: StartMethod) -> shmproc::ProcessBuilder {
    Process::builder().start_method(m)
}

/// Reports who the child is over `conn`: name, daemon flag, parent's name and pid.
fn report_identity(conn: Connection) -> Result<(), String> {
    let me = current_process();
    let parent = parent_process().ok_or("no parent")?;
    let line = format!(
        "{}|{}|{}|{}|{}",
        me.name(),
        me.daemon(),
        parent.name(),
        parent.pid(),
        me.pid() == std::process::id()
    );
    conn.send_bytes(line.as_bytes()).map_err(|e| e.to_string())
}

fn exit_codes_and_names() {
    for m in REMOTE {
        let mut ok = builder(m).target(|| ());
        let mut err = builder(m).fallible(|| -> Result<(), String> { Err("no mail".into()) });
        let mut boom = builder(m).target(|| panic!("boom"));
        let mut seven = builder(m).function(|n: i32| -> () { shmproc::process::exit(n) }, 7);
        let mut res = builder(m).function(
            |v: Vec<u8>| -> Result<(), String> {
                if v == b"abc" {
                    Ok(())
                } else {
                    Err(format!("got {v:?}"))
                }
            },
            b"abc".to_vec(),
        );
        for p in [&mut ok, &mut err, &mut boom, &mut seven, &mut res] {
            p.start().unwrap();
            assert_eq!(p.start_method(), m);
        }
        assert_eq!(ok.join().unwrap(), 0, "{m}");
        assert_eq!(err.join().unwrap(), 1, "{m}");
        assert_eq!(boom.join().unwrap(), 1, "{m}");
        assert_eq!(seven.join().unwrap(), 7, "{m}");
        assert_eq!(res.join().unwrap(), 0, "{m}");
        assert_eq!(seven.exitcode(), Some(7));

        // Names: default Process-N and given ones, the parent's identity, the pid.
        let (mine, theirs) = Pipe::new(true).unwrap();
        let mut named = builder(m).name("mailer").function(report_identity, theirs);
        named.start().unwrap();
        let line = String::from_utf8(mine.recv_bytes().unwrap()).unwrap();
        assert_eq!(
            line,
            format!("mailer|false|MainProcess|{}|true", std::process::id()),
            "{m}"
        );
        assert_eq!(named.join().unwrap(), 0);
        let (mine, theirs) = Pipe::new(true).unwrap();
        let mut anon = builder(m).function(report_identity, theirs);
        let expected = anon.name().to_string();
        assert!(expected.starts_with("Process-"), "{expected}");
        anon.start().unwrap();
        let line = String::from_utf8(mine.recv_bytes().unwrap()).unwrap();
        assert!(line.starts_with(&format!("{expected}|false|")), "{line}");
        assert_eq!(anon.join().unwrap(), 0);
    }
}

fn join_timeout_terminate_kill() {
    for m in REMOTE {
        let sleeper = || {
            builder(m).target(|| loop {
                std::thread::sleep(Duration::from_secs(60));
            })
        };
        let mut a = sleeper();
        a.start().unwrap();
        let t = Instant::now();
        assert_eq!(a.join_timeout(Duration::from_millis(100)).unwrap(), None);
        assert!(t.elapsed() >= Duration::from_millis(100));
        assert!(a.is_alive());
        assert_eq!(a.exitcode(), None);
        a.terminate().unwrap();
        assert_eq!(a.join().unwrap(), -15, "{m}");
        assert!(!a.is_alive());
        let mut b = sleeper();
        b.start().unwrap();
        b.kill().unwrap();
        assert_eq!(b.join().unwrap(), -9, "{m}");
        // The sentinel is readable once the exit code can be read.
        let mut c = builder(m).target(|| ());
        c.start().unwrap();
        let mut fds = [rustix::event::PollFd::from_borrowed_fd(
            c.sentinel().unwrap(),
            rustix::event::PollFlags::IN,
        )];
        rustix::event::poll(&mut fds, None).unwrap();
        assert_eq!(c.exitcode(), Some(0));
        c.close().unwrap();
        assert!(matches!(c.join(), Err(ProcessError::Closed)));
    }
}

fn daemon_flag_and_no_children() {
    fn daemon_tries_a_child(conn: Connection) -> Result<(), String> {
        let me = current_process();
        let mut p = Process::new(|| ());
        let refused = matches!(p.start(), Err(ProcessError::DaemonHasChildren));
        conn.send_bytes(format!("{}|{refused}", me.daemon()).as_bytes())
            .map_err(|e| e.to_string())
    }
    for m in REMOTE {
        let (mine, theirs) = Pipe::new(true).unwrap();
        let mut d = builder(m)
            .daemon(true)
            .function(daemon_tries_a_child, theirs);
        d.start().unwrap();
        assert_eq!(mine.recv_bytes().unwrap(), b"true|true", "{m}");
        assert_eq!(d.join().unwrap(), 0);
    }
}

/// Reads a pid written as 4 bytes to `r`.
fn read_pid(r: &std::os::fd::OwnedFd) -> i32 {
    let mut b = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = rustix::io::read(r, &mut b[got..]).unwrap();
        assert!(n > 0, "the middle process died before reporting");
        got += n;
    }
    i32::from_le_bytes(b)
}

fn alive(pid: i32) -> bool {
    // Not a zombie: a killed process that its parent has not reaped yet is dead.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

fn wait_dead(pid: i32, what: &str) {
    let t = Instant::now();
    while alive(pid) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{what} {pid} still alive"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn exit_hook_terminates_remote_daemons() {
    for m in REMOTE {
        let (r, w) = rustix::pipe::pipe().unwrap();
        let middle = shmproc_testkit::fork(move || {
            let mut d = builder(m).daemon(true).target(|| loop {
                std::thread::sleep(Duration::from_secs(60));
            });
            d.start().unwrap();
            let pid = d.pid().unwrap() as i32;
            rustix::io::write(&w, &pid.to_le_bytes()).unwrap();
            // A normal exit: the exit hook terminates the daemon, then joins it.
            std::process::exit(0);
        });
        let pid = read_pid(&r);
        middle.join();
        wait_dead(pid, "daemon");
    }
}

fn spawned_daemon_dies_with_sigkilled_parent() {
    let (r, w) = rustix::pipe::pipe().unwrap();
    let middle = shmproc_testkit::fork(move || {
        let mut d = builder(StartMethod::Spawn).daemon(true).target(|| loop {
            std::thread::sleep(Duration::from_secs(60));
        });
        d.start().unwrap();
        let pid = d.pid().unwrap() as i32;
        rustix::io::write(&w, &pid.to_le_bytes()).unwrap();
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    });
    let pid = read_pid(&r);
    assert!(alive(pid));
    middle.signal(libc::SIGKILL);
    assert_eq!(middle.wait(), -9);
    wait_dead(pid, "spawned daemon of a killed parent");
}

const ROUNDS: u64 = 1000;

/// What every worker is handed: anonymous objects (no name to find them by), which
/// travel in its arguments as themselves.
#[derive(Clone, Serialize, Deserialize)]
struct Shared {
    hits: Value<u64>,
    lock: Lock,
    sum: Value<u64>,
    results: Queue<u64>,
    notes: ByteQueue,
    done: SharedDict,
}

#[derive(Serialize, Deserialize)]
struct WorkerArgs {
    shared: Shared,
    conn: Connection,
    id: u64,
}

/// Counts in the objects it was handed, puts its id on the queue and a note of any size
/// on the byte queue, and streams a checksummed sequence back over its connection end,
/// ended by EOF.
fn worker(a: WorkerArgs) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let s = &a.shared;
    for i in 0..ROUNDS {
        s.hits.fetch_add(1);
        let _g = s.lock.acquire();
        // A read-modify-write that is only exact under the lock.
        s.sum.store(s.sum.load() + i);
    }
    s.results.put(a.id).map_err(|x| e(&x))?;
    s.notes
        .put_bytes(&vec![a.id as u8; a.id as usize * 1000])
        .map_err(|x| e(&x))?;
    s.done
        .insert(format!("worker {}", a.id).as_bytes(), &a.id.to_le_bytes())
        .map_err(|x| e(&x))?;
    let mut check = 0u64;
    for i in 0..ROUNDS {
        let v = a.id * 1_000_000 + i;
        check = check.wrapping_mul(31).wrapping_add(v);
        a.conn.send(&v).map_err(|x| e(&x))?;
    }
    a.conn.send(&check).map_err(|x| e(&x))?;
    Ok(())
}

/// Starts 8 workers under each of `methods`, handing each the shared objects and a
/// connection end, and checks every result.
fn sixteen_workers(arena: &Arena, methods: &[StartMethod]) {
    let shared = Shared {
        hits: Value::new_in(arena, 0).unwrap(),
        lock: Lock::new_in(arena).unwrap(),
        sum: Value::new_in(arena, 0).unwrap(),
        results: Queue::new_in(arena, 64).unwrap(),
        notes: ByteQueue::new_in(arena, 64, 64).unwrap(),
        done: SharedDict::new_in(arena).unwrap(),
    };
    let mut procs = Vec::new();
    let mut ends = Vec::new();
    let mut id = 0;
    for &m in methods {
        for _ in 0..8 {
            id += 1;
            let (mine, theirs) = Pipe::new_in(arena, false, 4096).unwrap();
            let mut p = builder(m).function(
                worker,
                WorkerArgs {
                    shared: shared.clone(),
                    conn: theirs,
                    id,
                },
            );
            p.start().unwrap();
            if m != StartMethod::Auto {
                assert_eq!(p.start_method(), m);
            }
            procs.push(p);
            ends.push((id, mine));
        }
    }
    for (id, end) in &ends {
        let mut check = 0u64;
        for i in 0..ROUNDS {
            let v: u64 = end.recv().unwrap();
            assert_eq!(v, id * 1_000_000 + i, "worker {id}: order");
            check = check.wrapping_mul(31).wrapping_add(v);
        }
        assert_eq!(end.recv::<u64>().unwrap(), check, "worker {id}: checksum");
        // The worker held the only copy of the sending end: EOF once it is done.
        assert_eq!(end.recv::<u64>(), Err(RecvError::Eof), "worker {id}");
    }
    for p in &procs {
        assert_eq!(p.join().unwrap(), 0, "{}", p.name());
    }
    let n = id;
    assert_eq!(shared.hits.load(), n * ROUNDS);
    assert_eq!(shared.sum.load(), n * (ROUNDS * (ROUNDS - 1) / 2));
    let mut ids: Vec<u64> = (0..n).map(|_| shared.results.get().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=n).collect::<Vec<_>>());
    assert_eq!(shared.done.len(), n as usize);
    for id in 1..=n {
        let v = shared.done.get(format!("worker {id}").as_bytes());
        assert_eq!(
            v,
            Ok(Some(id.to_le_bytes().to_vec())),
            "worker {id} in the dict"
        );
    }
    let mut notes: Vec<Vec<u8>> = (0..n).map(|_| shared.notes.get_bytes().unwrap()).collect();
    notes.sort();
    for (i, note) in notes.iter().enumerate() {
        let id = i as u64 + 1;
        assert_eq!(
            note,
            &vec![id as u8; id as usize * 1000],
            "worker {id}'s note"
        );
    }
}

fn fresh_arena() -> Arena {
    Arena::anonymous(8 << 20).unwrap()
}

fn threaded_parent_starts_16_workers_with_handles() {
    // Three std threads blocked in a channel, and a tokio runtime's workers: a process
    // that `fork` would refuse.
    let (stops, busy): (Vec<_>, Vec<_>) = (0..3)
        .map(|_| {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            (tx, std::thread::spawn(move || rx.recv().is_err()))
        })
        .unzip();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    // The runtime's thread blocks in the parent's work, as an async main would.
    rt.block_on(async {
        let arena = fresh_arena();
        sixteen_workers(&arena, &[StartMethod::Spawn, StartMethod::ForkServer]);
        // The default, with threads: the forkserver.
        let arena = fresh_arena();
        sixteen_workers(&arena, &[StartMethod::Auto, StartMethod::Auto]);
    });
    drop(rt);
    drop(stops);
    for t in busy {
        assert!(t.join().unwrap());
    }
}

fn tokio_parent_uses_the_forkserver_by_default() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    // Inside the runtime: the default sees threads and takes the forkserver.
    let codes = rt.block_on(async {
        let mut p = Process::new(|| shmproc::process::exit(5));
        p.start().unwrap();
        assert_eq!(p.start_method(), StartMethod::ForkServer);
        let mut q = Process::function(|x: u8| -> () { shmproc::process::exit(x.into()) }, 6);
        q.start().unwrap();
        assert_eq!(q.start_method(), StartMethod::ForkServer);
        // A closure that captures data cannot go to the forkserver: a clear error.
        let data = vec![1u8, 2, 3];
        let mut r = Process::new(move || drop(data));
        match r.start() {
            Err(ProcessError::NotPortable { reason }) => {
                assert!(reason.contains("Process::function"), "{reason}");
                assert!(reason.contains("allow_threads"), "{reason}");
            }
            other => panic!("expected NotPortable, got {other:?}"),
        }
        assert_eq!(r.pid(), None);
        // ... unless the caller opts into forking with threads.
        r.set_allow_threads(true).unwrap();
        r.start().unwrap();
        assert_eq!(r.start_method(), StartMethod::Fork);
        (p.join().unwrap(), q.join().unwrap(), r.join().unwrap())
    });
    assert_eq!(codes, (5, 6, 0));
}

/// Set before each `start` below: a forked child sees it, a spawned or forkserver child
/// (made from the program's state at `init`) does not.
static MARK: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

fn default_forks_while_single_threaded() {
    MARK.store(9, std::sync::atomic::Ordering::Relaxed);
    let mark = || shmproc::process::exit(MARK.load(std::sync::atomic::Ordering::Relaxed));
    let mut p = Process::new(mark);
    assert_eq!(p.start_method(), StartMethod::Auto);
    p.start().unwrap();
    assert_eq!(p.start_method(), StartMethod::Fork);
    assert_eq!(p.join().unwrap(), 9, "a fork sees the parent's memory");
    for m in REMOTE {
        let mut q = builder(m).target(mark);
        q.start().unwrap();
        assert_eq!(q.join().unwrap(), 0, "{m}: a fresh process");
    }
}

fn context_and_global_default() {
    for m in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ] {
        let ctx = get_context(m);
        assert_eq!(ctx.method(), m);
        let mut p = ctx.process(|| ());
        p.start().unwrap();
        assert_eq!(p.start_method(), m);
        assert_eq!(p.join().unwrap(), 0);
        let mut q = ctx.function(|x: i32| -> () { shmproc::process::exit(x) }, 3);
        q.start().unwrap();
        assert_eq!((q.start_method(), q.join().unwrap()), (m, 3));

        set_start_method(m);
        let mut r = Process::new(|| ());
        r.start().unwrap();
        assert_eq!(r.start_method(), m);
        r.join().unwrap();
        // A process's own choice wins over the default.
        let mut s = builder(StartMethod::Fork).target(|| ());
        s.start().unwrap();
        assert_eq!(s.start_method(), StartMethod::Fork);
        s.join().unwrap();
    }
    set_start_method(StartMethod::Auto);
}

fn spawned_child_adopts_global_arena() {
    let global = Arena::global().unwrap();
    for (i, m) in REMOTE.into_iter().enumerate() {
        let name = format!("from-child-{i}");
        let mut p = builder(m).function(
            |name: String| -> Result<(), String> {
                Lock::create(&Arena::global().map_err(|e| e.to_string())?, &name)
                    .map(drop)
                    .map_err(|e| e.to_string())
            },
            name.clone(),
        );
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 0);
        Lock::open(&global, &name).expect("the child's global arena is the parent's");
    }
}

/// The tutorial's EOF loop with `Process::function`: the child holds only its argument,
/// so it sees EOF once the parent closes its end, under every start method.
fn function_child_holds_exactly_its_args() {
    fn reader(conn: Connection) -> Result<(), String> {
        let mut got = Vec::new();
        loop {
            match conn.recv_bytes() {
                Ok(m) => got.push(m),
                Err(RecvError::Eof) => break,
                Err(e) => return Err(e.to_string()),
            }
        }
        if got == [b"hello".to_vec(), b"bye".to_vec()] {
            Ok(())
        } else {
            Err(format!("got {got:?}"))
        }
    }
    for m in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ] {
        let (parent_conn, child_conn) = Pipe::new(true).unwrap();
        let mut p = builder(m).function(reader, child_conn);
        p.start().unwrap();
        parent_conn.send_bytes(b"hello").unwrap();
        parent_conn.send_bytes(b"bye").unwrap();
        drop(parent_conn);
        assert_eq!(p.join().unwrap(), 0, "{m}");
    }
}

/// One anonymous object of every synchronisation and value kind, as one argument.
#[derive(Serialize, Deserialize)]
struct Kit {
    lock: Lock,
    rlock: RLock,
    sem: Semaphore,
    bounded: BoundedSemaphore,
    event: Event,
    barrier: Barrier,
    cond: Condition,
    count: Value<u64>,
    cells: Array<u32>,
    list: SharedList<u32>,
    jobs: ObjQueue<String>,
    tasks: JoinableQueue<u64>,
    report: Sender,
    id: u32,
}

/// Tasks the parent puts on a kit's `JoinableQueue` (more than its capacity: the parent's
/// puts wait for the child's gets).
const TASKS: u64 = 500;

/// The task values of kit `id`, in order, and their checksum.
fn task(id: u32, i: u64) -> u64 {
    u64::from(id) * 1_000_000 + i
}

fn task_checksum(check: u64, v: u64) -> u64 {
    check.wrapping_mul(31).wrapping_add(v)
}

/// Uses every object of the kit: the parent checks each effect.
fn use_kit(k: Kit) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    for _ in 0..1000 {
        let _g = k.lock.acquire();
        k.count.store(k.count.load() + 1);
    }
    {
        let _a = k.rlock.acquire();
        let _b = k.rlock.acquire();
    }
    k.cells.set(k.id as usize, k.id * 10).map_err(|x| e(&x))?;
    k.sem.release().map_err(|x| e(&x))?;
    drop(k.bounded.acquire());
    k.event.set();
    k.barrier.wait().map_err(|x| e(&x))?;
    let g = k.cond.acquire();
    k.cond.notify_all().map_err(|x| e(&x))?;
    drop(g);
    k.list.push(k.id).map_err(|x| e(&x))?;
    k.jobs.put(&format!("kit {}", k.id)).map_err(|x| e(&x))?;
    // Every task, each marked done after it is used: the parent's `join` waits for them.
    let (mut count, mut check) = (0u64, 0u64);
    while count < TASKS {
        let v = k.tasks.get().map_err(|x| e(&x))?;
        check = task_checksum(check, v);
        count += 1;
        k.tasks.task_done().map_err(|x| e(&x))?;
    }
    k.report.send(&k.id).map_err(|x| e(&x))?;
    k.report.send(&[count, check]).map_err(|x| e(&x))?;
    Ok(())
}

/// Anonymous objects (no name to open them by) travel in a `Process::function`'s
/// arguments to `Spawn` and `ForkServer` children, which use them; the parent sees every
/// effect, and the objects are freed with the last handle.
fn anonymous_objects_travel_as_arguments() {
    let arena = Arena::anonymous(1 << 20).unwrap();
    let base = arena.used();
    {
        let kit = |id, report| Kit {
            lock: Lock::new_in(&arena).unwrap(),
            rlock: RLock::new_in(&arena).unwrap(),
            sem: Semaphore::new_in(&arena, 0).unwrap(),
            bounded: BoundedSemaphore::new_in(&arena, 1).unwrap(),
            event: Event::new_in(&arena).unwrap(),
            barrier: Barrier::new_in(&arena, 2).unwrap(),
            cond: Condition::new_in(&arena).unwrap(),
            count: Value::new_in(&arena, 0u64).unwrap(),
            cells: Array::new_in(&arena, 4).unwrap(),
            list: SharedList::new_in(&arena).unwrap(),
            jobs: ObjQueue::new_in(&arena, 4).unwrap(),
            tasks: JoinableQueue::new_in(&arena, 16).unwrap(),
            report,
            id,
        };
        for (id, m) in [(1, StartMethod::Spawn), (2, StartMethod::ForkServer)] {
            let (tx, rx) = Pipe::channel_in(&arena, 4096).unwrap();
            let k = kit(id, tx);
            let (list, jobs, tasks) = (k.list.clone(), k.jobs.clone(), k.tasks.clone());
            let (lock, count, cells, sem, bounded, event, barrier) = (
                k.lock.clone(),
                k.count.clone(),
                k.cells.clone(),
                k.sem.clone(),
                k.bounded.clone(),
                k.event.clone(),
                k.barrier.clone(),
            );
            let _held = bounded.acquire();
            let mut p = builder(m).function(use_kit, k);
            p.start().unwrap();
            for _ in 0..1000 {
                let _g = lock.acquire();
                count.store(count.load() + 1);
            }
            drop(sem.acquire());
            drop(_held);
            assert!(event.wait_timeout(Duration::from_secs(30)), "{m}: event");
            barrier.wait().unwrap();
            let mut check = 0;
            for i in 0..TASKS {
                tasks.put(task(id, i)).unwrap();
                check = task_checksum(check, task(id, i));
            }
            // Returns once the child has marked every task done (a hang guard above).
            tasks
                .join_timeout(Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("{m}: the JoinableQueue's join: {e}"));
            assert_eq!(tasks.unfinished_tasks(), 0, "{m}");
            assert!(tasks.is_empty(), "{m}: every task taken");
            assert_eq!(p.join().unwrap(), 0, "{m}");
            assert_eq!(count.load(), 2000, "{m}: counted under the lock by both");
            assert_eq!(cells.get(id as usize), Some(id * 10), "{m}");
            assert_eq!(list.to_vec().unwrap(), [id], "{m}: the list");
            assert_eq!(
                jobs.get().unwrap(),
                format!("kit {id}"),
                "{m}: the ObjQueue"
            );
            assert_eq!(rx.recv::<u32>().unwrap(), id, "{m}: the one-way pipe");
            assert_eq!(
                rx.recv::<[u64; 2]>().unwrap(),
                [TASKS, check],
                "{m}: the JoinableQueue's tasks, counted and checksummed by the child"
            );
            assert_eq!(
                rx.recv::<u32>(),
                Err(RecvError::Eof),
                "{m}: the child's Sender closed"
            );
        }
    }
    assert_eq!(
        arena.used(),
        base,
        "every object freed with its last handle"
    );
}

/// A closure child that writes and exits: the parent's copy of the captured end is
/// dropped by `start`, so the parent's loop ends at EOF.
fn parent_drops_closure_captures_at_start() {
    let (parent_conn, child_conn) = Pipe::new(true).unwrap();
    let mut p = Process::new(move || {
        for i in 0..3u32 {
            child_conn.send(&i).unwrap();
        }
    });
    p.start().unwrap();
    let mut got = Vec::new();
    loop {
        match parent_conn.recv::<u32>() {
            Ok(v) => got.push(v),
            Err(RecvError::Eof) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, [0, 1, 2]);
    assert_eq!(p.join().unwrap(), 0);
}

fn targets_that_cannot_travel() {
    struct Mailer;
    impl Run for Mailer {
        fn run(&mut self) -> RunResult {
            Ok(())
        }
    }
    for m in REMOTE {
        let data = String::from("captured");
        let mut p = builder(m).target(move || println!("{data}"));
        match p.start() {
            Err(ProcessError::NotPortable { reason }) => {
                assert!(reason.contains("captures"), "{reason}")
            }
            other => panic!("{m}: expected NotPortable, got {other:?}"),
        }
        assert_eq!(p.pid(), None, "nothing was started");
        let mut s = Process::builder().start_method(m).run(Mailer);
        assert!(matches!(s.start(), Err(ProcessError::NotPortable { .. })));
        // A closed end cannot travel either.
        let (mut a, _b) = Pipe::new(true).unwrap();
        a.close();
        let mut c = builder(m).function(|_c: Connection| (), a);
        match c.start() {
            Err(ProcessError::NotPortable { reason }) => {
                assert!(reason.contains("closed"), "{reason}")
            }
            other => panic!("{m}: expected NotPortable, got {other:?}"),
        }
    }
}

/// Serializes as any u32, deserializes only even ones.
struct Picky(u32);

impl Serialize for Picky {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u32::deserialize(d)?;
        if v % 2 == 0 {
            Ok(Picky(v))
        } else {
            Err(serde::de::Error::custom(format!("{v} is odd")))
        }
    }
}

fn arguments_that_fail_to_deserialize() {
    for m in REMOTE {
        let mut ok = builder(m).function(
            |p: Picky| -> () { shmproc::process::exit(p.0 as i32) },
            Picky(4),
        );
        ok.start().unwrap();
        assert_eq!(ok.join().unwrap(), 4);
        let mut bad = builder(m).function(|_p: Picky| (), Picky(3));
        match bad.start() {
            Err(ProcessError::ChildStart {
                exitcode, reason, ..
            }) => {
                assert_eq!(exitcode, Some(1), "{m}");
                assert!(reason.contains("could not be deserialized"), "{reason}");
                assert!(reason.contains("Picky"), "{reason}");
            }
            other => panic!("{m}: expected ChildStart, got {other:?}"),
        }
        assert_eq!(bad.exitcode(), Some(1));
        assert!(!bad.is_alive());
    }
}

fn child_without_the_hook() {
    let start = |mode: &str, timeout: Duration| {
        // SAFETY: the test runs on the only thread of its process (the testkit harness
        // forks a single-threaded child per test) and `start` starts no thread: nothing
        // reads the environment concurrently.
        unsafe { std::env::set_var(MODE, mode) };
        let mut p = builder(StartMethod::Spawn)
            .start_timeout(timeout)
            .target(|| ());
        let r = p.start();
        // SAFETY: as for `set_var` above.
        unsafe { std::env::remove_var(MODE) };
        (p, r)
    };
    // Exits before the hook: the error says so, with the exit code.
    let (p, r) = start("exit-before-init", Duration::from_secs(60));
    match r {
        Err(ProcessError::ChildStart {
            exitcode, reason, ..
        }) => {
            assert_eq!(exitcode, Some(42));
            assert!(reason.contains("shmproc::init()"), "{reason}");
        }
        other => panic!("expected ChildStart, got {other:?}"),
    }
    assert_eq!(p.exitcode(), Some(42));
    // Never reaches the hook: killed after the start timeout.
    let t = Instant::now();
    let (_p, r) = start("hang-before-init", Duration::from_millis(500));
    assert!(t.elapsed() >= Duration::from_millis(500));
    match r {
        Err(ProcessError::ChildStart {
            exitcode, reason, ..
        }) => {
            assert_eq!(exitcode, Some(-9));
            assert!(reason.contains("did not report in"), "{reason}");
            assert!(reason.contains("shmproc::init()"), "{reason}");
        }
        other => panic!("expected ChildStart, got {other:?}"),
    }
    // Runs main without the hook and tries to start a process: refused (exit 43).
    let (_p, r) = start("start-without-init", Duration::from_secs(60));
    match r {
        Err(ProcessError::ChildStart { exitcode, .. }) => assert_eq!(exitcode, Some(43)),
        other => panic!("expected ChildStart, got {other:?}"),
    }
}

fn errors_have_messages() {
    let all = [
        ProcessError::NotInitialized {
            method: StartMethod::Spawn,
        },
        ProcessError::SpawnedWithoutInit,
        ProcessError::NotPortable {
            reason: "why".into(),
        },
        ProcessError::ChildStart {
            pid: 7,
            exitcode: Some(42),
            reason: "why".into(),
        },
        ProcessError::ForkServer("gone".into()),
    ];
    for e in &all {
        assert!(e.to_string().len() > 20, "{e}");
    }
    assert!(all[0].to_string().contains("shmproc::init()"));
    assert!(all[1].to_string().contains("shmproc::init()"));
    assert!(all[3].to_string().contains("exit code 42"));
    assert!(ProcessError::Threads { count: 3 }
        .to_string()
        .contains("shmproc::init()"));
}

/// The harness's forkserver (a child of the harness process, which forked it at `init`)
/// is SIGKILLed; the next `ForkServer` start runs a new server and succeeds.
fn forkserver_replaced_when_killed() {
    let mut p = builder(StartMethod::ForkServer).target(|| ());
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 0);
    let harness = rustix::process::getppid().unwrap().as_raw_nonzero().get();
    let me = std::process::id() as i32;
    let children = std::fs::read_to_string(format!("/proc/{harness}/task/{harness}/children"))
        .expect("/proc/<pid>/task/<tid>/children");
    let servers: Vec<i32> = children
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .filter(|&c| c != me)
        .collect();
    assert_eq!(servers.len(), 1, "the harness's children: {children:?}");
    // SAFETY: a plain syscall on the forkserver, a process of this test run.
    unsafe { libc::kill(servers[0], libc::SIGKILL) };
    wait_dead(servers[0], "forkserver");
    for _ in 0..3 {
        let mut q = builder(StartMethod::ForkServer)
            .function(|x: i32| -> () { shmproc::process::exit(x) }, 11);
        q.start().unwrap();
        assert_eq!(q.join().unwrap(), 11);
    }
}
