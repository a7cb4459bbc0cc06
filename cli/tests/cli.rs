//! The `shmproc` tool run against live arenas made by real processes: an arena with one
//! object of every kind, held by live children and by a killed one (`ls`, `inspect`, its
//! JSON read back, the text), orphans removed by `clean` and nothing else, scribbled and
//! truncated arenas (an error or a partial listing, never a crash), a lock word naming a
//! stuck process (no wait), an anonymous arena found by pid, `--watch` under a
//! pseudo-terminal, and the messages of wrong commands; `SharedMemory` segments listed,
//! inspected and cleaned (a live creator's kept, a dead one's removed), files of other
//! kinds named for what they are, and a closed output taken as a normal end.

use serde_json::Value as Json;
use shmproc::pipe::Pipe;
use shmproc::queue::{ByteQueue, JoinableQueue, ObjQueue, Queue};
use shmproc::shared::{
    Array, RawBlock, SegmentHeader, SharedDict, SharedList, SharedMemory, TypedDict, Value,
};
use shmproc::{Arena, Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};
use shmproc_testkit::{fork, Signal, UnlinkOnDrop};
use std::any::Any;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::process::{Command, Output, Stdio};

shmproc_testkit::main!(
    inspect_lists_every_kind_with_holders_and_live_state,
    ls_lists_named_and_anonymous_arenas,
    clean_removes_orphans_only,
    a_scribbled_arena_gives_a_partial_listing_or_an_error,
    a_stuck_lock_holder_does_not_make_inspect_wait,
    watch_refreshes_under_a_pseudo_terminal,
    wrong_commands_say_what_to_do,
    segments_are_listed_inspected_and_cleaned,
    files_of_other_kinds_are_not_called_truncated_arenas,
    a_closed_output_is_a_normal_end,
);

/// The tool built with this test.
fn shmproc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shmproc"))
        .args(args)
        .output()
        .expect("run the shmproc binary")
}

fn code(o: &Output) -> i32 {
    o.status
        .code()
        .unwrap_or_else(|| panic!("shmproc died of a signal: {o:?}"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `shmproc <args> --json`, parsed; the exit status must be `want`.
fn json(args: &[&str], want: i32) -> Json {
    json_any(args, &[want])
}

/// `shmproc ls --json` (`--named` if `named`): its status is 0, or 3 when an arena of
/// another program on this machine is damaged (other tests scribble on theirs).
fn ls(named: bool) -> Json {
    json_any(if named { &["ls", "--named"] } else { &["ls"] }, &[0, 3])
}

/// `shmproc <args> --json`, parsed; the exit status must be one of `want`.
fn json_any(args: &[&str], want: &[i32]) -> Json {
    let mut a = args.to_vec();
    a.push("--json");
    let o = shmproc(&a);
    assert!(
        want.contains(&code(&o)),
        "{a:?}: {}\n{}",
        stderr(&o),
        stdout(&o)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

/// A name for a named arena of this test, removed when the guard drops.
fn unique(tag: &str) -> (String, UnlinkOnDrop) {
    let name = format!("shmproc-cli-test-{}-{tag}", std::process::id());
    (name.clone(), UnlinkOnDrop(name))
}

/// One object of every kind this build makes, named after its kind where it can be.
fn one_of_each(arena: &Arena) -> Vec<Box<dyn Any>> {
    let b = |x: Box<dyn Any>| x;
    let q = Queue::<u64>::create(arena, "Queue", 16).unwrap();
    for i in 0..3 {
        q.put(i).unwrap();
    }
    let jq = JoinableQueue::<[u32; 5]>::create(arena, "JoinableQueue", 8).unwrap();
    jq.put([1; 5]).unwrap();
    jq.put([2; 5]).unwrap();
    let bq = ByteQueue::create(arena, "ByteQueue", 8, 64).unwrap();
    bq.put_bytes(b"hello").unwrap();
    let oq = ObjQueue::<String>::create(arena, "ObjQueue", 4).unwrap();
    oq.put(&"x".repeat(300)).unwrap(); // in a heap block of its own
    oq.put(&"y".into()).unwrap();
    let sl = SharedList::<u64>::create(arena, "SharedList").unwrap();
    sl.extend([1, 2, 3, 4]).unwrap();
    let sem = Semaphore::create(arena, "Semaphore", 2).unwrap();
    std::mem::forget(sem.acquire()); // a permit held
    let ev = Event::create(arena, "Event").unwrap();
    ev.set();
    let (rx, tx) = Pipe::new_in(arena, false, 4096).unwrap();
    tx.send_bytes(&[7; 100]).unwrap();
    let d = SharedDict::create(arena, "SharedDict").unwrap();
    d.insert(b"key", b"value").unwrap();
    vec![
        b(Box::new(q)),
        b(Box::new(jq)),
        b(Box::new(bq)),
        b(Box::new(oq)),
        b(Box::new(sl)),
        b(Box::new(sem)),
        b(Box::new(ev)),
        b(Box::new((rx, tx))),
        b(Box::new(d)),
        b(Box::new(RLock::create(arena, "RLock").unwrap())),
        b(Box::new(
            BoundedSemaphore::create(arena, "BoundedSemaphore", 2).unwrap(),
        )),
        b(Box::new(Condition::create(arena, "Condition").unwrap())),
        b(Box::new(Barrier::create(arena, "Barrier", 3).unwrap())),
        b(Box::new(Value::create(arena, "Value", 7u64).unwrap())),
        b(Box::new(
            Array::<u32>::create(arena, "Array", &[0; 100]).unwrap(),
        )),
        b(Box::new(TypedDict::<u32, u64>::new_in(arena).unwrap())),
        b(Box::new(RawBlock::create(arena, "Raw", 300).unwrap())),
    ]
}

/// The object named `name` in an `inspect --json` document.
fn object<'a>(doc: &'a Json, name: &str) -> &'a Json {
    doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no object {name} in {doc:#}"))
}

fn pid_of(v: &Json) -> (u64, bool) {
    (v["pid"].as_u64().unwrap(), v["alive"].as_bool().unwrap())
}

fn inspect_lists_every_kind_with_holders_and_live_state() {
    let (name, _guard) = unique("kinds");
    let arena = Arena::create(&name, 1 << 20).unwrap();
    let objects = one_of_each(&arena);
    let db = Lock::create(&arena, "db").unwrap();
    let dead = Lock::create(&arena, "dead").unwrap();
    let quit = Event::create(&arena, "quit").unwrap();
    let me = std::process::id() as u64;

    // A live child holding "db" (and, by fork, everything this process holds).
    let ready = Signal::new();
    let live = {
        let (db, quit) = (db.clone(), quit.clone());
        let ready = &ready;
        fork(move || {
            let _g = db.acquire().unwrap();
            ready.notify();
            quit.wait();
        })
    };
    assert!(ready.wait());
    // A child killed while it holds "dead".
    let killed = {
        let dead = dead.clone();
        let ready = &ready;
        fork(move || {
            let _g = dead.acquire().unwrap();
            ready.notify();
            loop {
                std::thread::sleep(std::time::Duration::from_secs(60));
            }
        })
    };
    assert!(ready.wait());
    let killed_pid = killed.pid as u64;
    assert_eq!(killed.kill(), -9);
    let live_pid = live.pid as u64;

    let doc = json(&["inspect", &name], 0);
    assert_eq!(doc["name"], name.as_str());
    assert_eq!(doc["consistent"], true);
    assert_eq!(doc["problems"], serde_json::json!([]));
    assert_eq!(pid_of(&doc["creator"]), (me, true));
    assert_eq!(doc["orphan"], false);
    // Every object, named or not, and the arena's own count agree.
    let objs = doc["objects"].as_array().unwrap();
    assert_eq!(objs.len() as u64, doc["stats"]["objects"].as_u64().unwrap());
    assert_eq!(
        objs.len(),
        20,
        "17 of every kind (pipe and typed dict anonymous) + 3"
    );
    for kind in [
        "Lock",
        "RLock",
        "Semaphore",
        "BoundedSemaphore",
        "Event",
        "Condition",
        "Barrier",
        "Queue",
        "JoinableQueue",
        "ByteQueue",
        "ObjQueue",
        "SharedList",
        "Pipe",
        "Value",
        "Array",
        "SharedDict",
        "Raw",
    ] {
        assert!(
            objs.iter().any(|o| o["kind"] == kind),
            "no {kind} listed: {doc:#}"
        );
        if kind != "Pipe" && kind != "Lock" {
            assert_eq!(object(&doc, kind)["kind"], kind);
        }
    }
    // The processes: this one, the live child, the killed child (dead, not yet swept).
    let procs: Vec<(u64, bool)> = doc["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(pid_of)
        .collect();
    assert!(procs.contains(&(me, true)), "{procs:?}");
    assert!(procs.contains(&(live_pid, true)), "{procs:?}");
    assert!(procs.contains(&(killed_pid, false)), "{procs:?}");
    // Holders: the queue is held by all three (the children inherited it by fork).
    let q = object(&doc, "Queue");
    let holders: Vec<(u64, bool)> = q["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(pid_of)
        .collect();
    assert_eq!(holders.len(), 3, "{q:#}");
    for p in [(me, true), (live_pid, true), (killed_pid, false)] {
        assert!(holders.contains(&p), "{p:?} not among {holders:?}");
    }
    assert_eq!(q["refs"], 4, "three holders and the name");
    // The live state of each kind.
    let state = |n: &str| object(&doc, n)["state"].clone();
    assert_eq!(pid_of(&state("db")["holder"]), (live_pid, true));
    assert_eq!(pid_of(&state("dead")["holder"]), (killed_pid, false));
    assert_eq!(state("quit")["is_set"], false);
    assert_eq!(state("Queue")["qsize"], 3);
    assert_eq!(state("Queue")["capacity"], 16);
    assert_eq!(state("Queue")["closed"], false);
    assert_eq!(state("JoinableQueue")["qsize"], 2);
    assert_eq!(state("JoinableQueue")["unfinished"], 2);
    assert_eq!(state("ByteQueue")["qsize"], 1);
    assert_eq!(state("ObjQueue")["qsize"], 2);
    assert_eq!(state("ObjQueue")["capacity"], 4);
    assert_eq!(state("SharedList")["len"], 4);
    assert_eq!(state("Semaphore")["value"], 1);
    assert_eq!(state("BoundedSemaphore")["value"], 2);
    assert_eq!(state("BoundedSemaphore")["bound"], 2);
    assert_eq!(state("Event")["is_set"], true);
    assert_eq!(state("Barrier")["parties"], 3);
    assert_eq!(state("Barrier")["n_waiting"], 0);
    assert_eq!(state("Condition")["n_waiting"], 0);
    assert_eq!(state("RLock")["holder"], Json::Null);
    assert_eq!(state("Value")["raw"], false);
    assert_eq!(state("Array")["len"], 100);
    assert_eq!(state("SharedDict")["len"], 1);
    assert_eq!(state("Raw")["len"], 300);
    let pipe = objs.iter().find(|o| o["kind"] == "Pipe").unwrap();
    assert_eq!(pipe["name"], Json::Null);
    assert_eq!(pipe["state"]["state_0"], "open");
    assert_eq!(
        pipe["state"]["in_flight_0"], 112,
        "100 bytes, a header, padding"
    );
    let tdict = objs
        .iter()
        .find(|o| o["kind"] == "SharedDict" && o["name"].is_null())
        .unwrap();
    assert_eq!(tdict["state"]["len"], 0);

    // The same for people.
    let o = shmproc(&["inspect", &name]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains(&format!("holder={live_pid}")), "{text}");
    assert!(
        text.contains(&format!("holder={killed_pid} (dead)")),
        "{text}"
    );
    assert!(text.contains("qsize=3"), "{text}");
    assert!(
        text.contains("dead: what it holds is released at the next sweep"),
        "{text}"
    );

    quit.set();
    live.join();
    drop((objects, db, dead, quit));
    arena.unlink().unwrap();
}

fn ls_lists_named_and_anonymous_arenas() {
    let (name, _guard) = unique("ls");
    let named = Arena::create(&name, 1 << 20).unwrap();
    let _l = Lock::create(&named, "l").unwrap();
    let anon = Arena::anonymous(1 << 20).unwrap();
    let q = Queue::<u64>::create(&anon, "anon-q", 4).unwrap();
    q.put(42).unwrap();
    let me = std::process::id() as u64;

    let doc = ls(false);
    let rows = doc.as_array().unwrap();
    let row = rows
        .iter()
        .find(|r| r["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} not listed: {doc:#}"));
    assert_eq!(row["arena"], name.as_str());
    assert_eq!(row["objects"], 1);
    assert_eq!(row["orphan"], false);
    assert_eq!(row["damaged"], false);
    assert_eq!(pid_of(&row["creator"]), (me, true));
    assert!(row["attached"].as_array().unwrap().contains(&me.into()));
    // The anonymous arena, through this process's descriptor.
    let anon_row = rows
        .iter()
        .find(|r| {
            r["name"].is_null()
                && r["arena"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("/proc/{me}/fd/"))
        })
        .unwrap_or_else(|| panic!("the anonymous arena is not listed: {doc:#}"));
    assert_eq!(anon_row["objects"], 1);
    // `--named` leaves it out.
    let doc = ls(true);
    assert!(doc.as_array().unwrap().iter().all(|r| !r["name"].is_null()));

    // pid:<pid> and the path both name it; its queue's state is there.
    for arena in [
        format!("pid:{me}"),
        anon_row["arena"].as_str().unwrap().into(),
    ] {
        let d = json(&["inspect", &arena], 0);
        assert_eq!(d["name"], Json::Null);
        assert_eq!(object(&d, "anon-q")["state"]["qsize"], 1);
    }
    let text = stdout(&shmproc(&["ls"]));
    assert!(text.contains(&name) && text.contains("in use"), "{text}");
    named.unlink().unwrap();
}

fn exists(name: &str) -> bool {
    std::path::Path::new("/dev/shm").join(name).exists()
}

/// A child that makes the named arena `name` with a lock in it and is then killed: its
/// creator is gone. With `keep`, this process opens the lock first (a live holder).
fn made_by_a_dead_child(name: &str, keep: bool) -> Option<Lock> {
    let ready = Signal::new();
    let n = name.to_string();
    let child = {
        let ready = &ready;
        fork(move || {
            let a = Arena::create(&n, 1 << 20).unwrap();
            let _l = Lock::create(&a, "l").unwrap();
            ready.notify();
            loop {
                std::thread::sleep(std::time::Duration::from_secs(60));
            }
        })
    };
    assert!(ready.wait());
    let kept = keep.then(|| Lock::open(&Arena::open(name).unwrap(), "l").unwrap());
    assert_eq!(child.kill(), -9);
    kept
}

fn clean_removes_orphans_only() {
    let (orphan, _g1) = unique("orphan");
    let (held, _g2) = unique("held");
    let (mine, _g3) = unique("mine");
    let _kept = made_by_a_dead_child(&held, true);
    let a = Arena::create(&mine, 1 << 20).unwrap();
    let names = [orphan.as_str(), held.as_str(), mine.as_str()];
    // The orphan is a real one: another program's cleanup (Arena::cleanup_orphans, run
    // by tests elsewhere on this machine) may remove it first. Then it is made again; a
    // tool that removes it when it must not does so every time, and the test fails.
    let mut attempt = 0;
    let gone = |attempt: &mut u32| {
        *attempt += 1;
        assert!(
            *attempt < 4,
            "{orphan} went away 3 times before it was cleaned"
        );
    };
    loop {
        made_by_a_dead_child(&orphan, false);
        let doc = ls(true);
        let row = |n: &str| {
            doc.as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == n)
                .cloned()
        };
        let Some(o) = row(&orphan) else {
            gone(&mut attempt);
            continue;
        };
        assert_eq!(o["orphan"], true);
        assert_eq!(o["creator"]["alive"], false);
        let held_row = row(&held).unwrap();
        assert_eq!(held_row["orphan"], false, "a live process holds its lock");
        assert_eq!(held_row["creator"]["alive"], false);
        assert_eq!(row(&mine).unwrap()["orphan"], false, "its creator is alive");

        // A dry run says so and removes nothing.
        let mut args = vec!["clean"];
        args.extend(names);
        let d = json(&args, 0);
        assert_eq!(d["dry_run"], true);
        if !exists(&orphan) {
            gone(&mut attempt);
            continue;
        }
        assert_eq!(d["removed"], serde_json::json!([orphan]));
        assert_eq!(d["kept"].as_array().unwrap().len(), 2, "{d:#}");
        assert!(exists(&held) && exists(&mine));
        let text = stdout(&shmproc(&args));
        assert!(
            text.contains("would remove") && text.contains(&orphan),
            "{text}"
        );

        // The real thing: the orphan only.
        let mut args = vec!["clean", "--yes"];
        args.extend(names);
        let d = json(&args, 0);
        if d["removed"] == serde_json::json!([]) && !exists(&orphan) {
            gone(&mut attempt);
            continue;
        }
        assert_eq!(d["removed"], serde_json::json!([orphan]));
        let kept: Vec<&str> = d["kept"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["name"].as_str().unwrap())
            .collect();
        assert_eq!(kept, [held.as_str(), mine.as_str()]);
        assert!(!exists(&orphan) && exists(&held) && exists(&mine));
        break;
    }
    // A live process that holds nothing there (it dropped what it opened) but still has
    // the arena open: the library counts it an orphan (Arena::cleanup_orphans would
    // remove it), the tool sees the mapping and keeps it.
    let (dropped, _g4) = unique("dropped");
    let lock = made_by_a_dead_child(&dropped, true).unwrap();
    let open = Arena::open(&dropped).unwrap();
    drop(lock);
    assert!(shmproc::inspect::Snapshot::open(&dropped)
        .unwrap()
        .is_orphan());
    let d = json(&["clean", "--yes", &dropped], 0);
    assert_eq!(d["removed"], serde_json::json!([]), "{d:#}");
    let why = d["kept"][0]["reason"].as_str().unwrap();
    assert!(
        why.contains(&format!("process {} maps it", std::process::id())),
        "{why}"
    );
    assert!(exists(&dropped));
    drop(open);

    // A name that is not there is skipped, not an error.
    let d = json(&["clean", "no-such-arena-here"], 0);
    assert_eq!(d["skipped"][0]["name"], "no-such-arena-here");
    drop(a);
}

fn a_scribbled_arena_gives_a_partial_listing_or_an_error() {
    let (name, _guard) = unique("scribbled");
    let arena = Arena::create(&name, 1 << 20).unwrap();
    let _objects = one_of_each(&arena);
    let snap = arena.snapshot().unwrap();
    let victim = snap.object("Queue").unwrap().offset;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap();
    // The queue's header: a size far past its block.
    file.write_all_at(&u64::MAX.to_le_bytes(), victim + 32)
        .unwrap();
    // The barrier's party count (its state) against its parameter.
    let barrier = snap.object("Barrier").unwrap().offset;
    file.write_all_at(&[0xff; 8], barrier + 128).unwrap();
    let doc = json(&["inspect", &name], 3);
    let q = object(&doc, "Queue");
    assert!(q["problem"].as_str().unwrap().contains("bytes"), "{q:#}");
    assert_eq!(q["state"], Json::Null);
    let b = object(&doc, "Barrier");
    assert!(b["problem"].is_string(), "{b:#}");
    // The rest is still listed, with its state.
    assert_eq!(object(&doc, "Semaphore")["state"]["value"], 1);
    assert_eq!(object(&doc, "Event")["state"]["is_set"], true);
    let text = stdout(&shmproc(&["inspect", &name]));
    assert!(text.contains("DAMAGED"), "{text}");
    // ls still lists it, as damaged.
    let rows = ls(true);
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name.as_str())
        .unwrap();
    assert_eq!(row["damaged"], true);

    // The directory's offset scribbled: the names are gone, the objects are listed
    // through the processes' holdings, and the damage is said.
    let mut dir = [0u8; 8];
    file.read_exact_at(&mut dir, 80).unwrap();
    file.write_all_at(&0x1234_5678u64.to_le_bytes(), 80)
        .unwrap();
    let doc = json(&["inspect", &name], 3);
    assert!(
        doc["problems"][0].as_str().unwrap().contains("directory"),
        "{doc:#}"
    );
    assert!(doc["objects"].as_array().unwrap().len() >= 15);
    file.write_all_at(&dir, 80).unwrap();

    // Random words over the metadata: never a crash (a signal), an exit status each time.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let original = {
        let mut b = vec![0u8; 64 << 10];
        file.read_exact_at(&mut b, 0).unwrap();
        b
    };
    for _ in 0..40 {
        for _ in 0..3 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = (x % (original.len() as u64 - 8)) & !7;
            file.write_all_at(&x.rotate_left(7).to_le_bytes(), at)
                .unwrap();
        }
        let o = shmproc(&["inspect", &name, "--json"]);
        let c = code(&o);
        assert!([0, 1, 3].contains(&c), "{c}: {}", stderr(&o));
        if c != 1 {
            serde_json::from_slice::<Json>(&o.stdout).unwrap();
        }
        file.write_all_at(&original, 0).unwrap();
    }

    // Not an arena at all, and a truncated one: clear errors. (This process lets go of
    // the arena first: its mapping would fault on the truncated file.)
    drop(_objects);
    drop(snap);
    drop(arena);
    file.write_all_at(b"NOTANARENA", 0).unwrap();
    let o = shmproc(&["inspect", &name]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("is not a shmproc arena"),
        "{}",
        stderr(&o)
    );
    assert!(ls(true)
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["name"] != name.as_str()));
    file.write_all_at(&original[..16], 0).unwrap();
    file.set_len(4096).unwrap();
    let o = shmproc(&["inspect", &name]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("truncated"), "{}", stderr(&o));
}

fn a_stuck_lock_holder_does_not_make_inspect_wait() {
    let (name, _guard) = unique("stuck");
    let arena = Arena::create(&name, 1 << 20).unwrap();
    let _l = Lock::create(&arena, "l").unwrap();
    // A live process that will never release anything: the metadata lock's word names
    // it (as if it had stopped inside an arena operation).
    let quit = Event::create(&arena, "quit").unwrap();
    let stuck = {
        let quit = quit.clone();
        fork(move || {
            quit.wait();
        })
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap();
    file.write_all_at(&(stuck.pid as u32).to_le_bytes(), 64)
        .unwrap();
    let doc = json(&["inspect", &name], 0);
    assert_eq!(pid_of(&doc["metadata_lock"]), (stuck.pid as u64, true));
    assert_eq!(object(&doc, "l")["state"]["holder"], Json::Null);
    let text = stdout(&shmproc(&["inspect", &name]));
    assert!(
        text.contains(&format!("the metadata lock is held by {}", stuck.pid)),
        "{text}"
    );
    file.write_all_at(&0u32.to_le_bytes(), 64).unwrap();
    quit.set();
    stuck.join();
}

/// A pseudo-terminal: the master, and the slave as a `Stdio`.
fn pty() -> (std::fs::File, Stdio) {
    use rustix::pty::{grantpt, ioctl_tiocgptpeer, openpt, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let slave = ioctl_tiocgptpeer(&master, OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    (std::fs::File::from(master), Stdio::from(slave))
}

/// Reads `master` until `buf` contains `what` (or the other side is gone).
fn read_until(master: &mut std::fs::File, buf: &mut String, what: &str) {
    let mut chunk = [0u8; 4096];
    while !buf.contains(what) {
        match master.read(&mut chunk) {
            Ok(0) | Err(_) => return, // EIO: the slave's last holder exited
            Ok(n) => buf.push_str(&String::from_utf8_lossy(&chunk[..n])),
        }
    }
}

fn watch_refreshes_under_a_pseudo_terminal() {
    let (name, _guard) = unique("watch");
    let arena = Arena::create(&name, 1 << 20).unwrap();
    let q = Queue::<u64>::create(&arena, "jobs", 8).unwrap();
    q.put(1).unwrap();
    let (mut master, slave) = pty();
    let mut child = Command::new(env!("CARGO_BIN_EXE_shmproc"))
        .args(["inspect", &name, "--watch", "1.5", "--count", "2"])
        .stdout(slave)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = String::new();
    // The first frame, then a change, then the second frame shows it.
    read_until(&mut master, &mut out, "qsize=1");
    assert!(out.contains("refresh 1 of 2"), "{out}");
    q.put(2).unwrap();
    read_until(&mut master, &mut out, "qsize=2");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{out}");
    let mut rest = String::new();
    read_until(&mut master, &mut rest, "\u{0}never");
    out.push_str(&rest);
    assert_eq!(
        out.matches("\x1b[H\x1b[2J").count(),
        2,
        "a cleared screen per frame: {out}"
    );
    let second = out.rsplit("\x1b[H\x1b[2J").next().unwrap();
    assert!(
        second.contains("refresh 2 of 2") && second.contains("qsize=2"),
        "{second}"
    );

    // Without a terminal, JSON: one document per line.
    let o = shmproc(&[
        "inspect", &name, "--watch", "0.05", "--count", "3", "--json",
    ]);
    assert_eq!(code(&o), 0);
    let lines: Vec<Json> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(lines
        .iter()
        .all(|d| object(d, "jobs")["state"]["qsize"] == 2));
}

fn wrong_commands_say_what_to_do() {
    let o = shmproc(&["inspect", "shmproc-cli-test-no-such-arena"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("no arena named") && stderr(&o).contains("shmproc ls"),
        "{}",
        stderr(&o)
    );
    let o = shmproc(&["inspect", "pid:notanumber"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("pid:4242"), "{}", stderr(&o));
    let o = shmproc(&["inspect", "/nonexistent/file"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    // Usage errors: clap's status 2, with a hint.
    assert_eq!(code(&shmproc(&["inspect"])), 2);
    assert_eq!(code(&shmproc(&["inspect", "x", "--count", "2"])), 2);
    assert_eq!(code(&shmproc(&["frobnicate"])), 2);
    let help = shmproc(&["inspect", "--help"]);
    assert_eq!(code(&help), 0);
    let h = stdout(&help);
    assert!(h.contains("pid:<pid>") && h.contains("Exit status"), "{h}");
    let help = shmproc(&["--help"]);
    assert!(stdout(&help).contains("clean"));
}

/// A child that makes the segment `name` (persisted if `persist`) and is then killed.
fn segment_of_a_dead_child(name: &str, persist: bool) {
    let ready = Signal::new();
    let n = name.to_string();
    let child = {
        let ready = &ready;
        fork(move || {
            let seg = SharedMemory::create(Some(&n), 1000).unwrap();
            if persist {
                seg.persist();
            }
            ready.notify();
            loop {
                std::thread::sleep(std::time::Duration::from_secs(60));
            }
        })
    };
    assert!(ready.wait());
    assert_eq!(child.kill(), -9);
}

/// The row of `name` in `ls --json`.
fn ls_row(doc: &Json, name: &str) -> Option<Json> {
    doc.as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
}

fn segments_are_listed_inspected_and_cleaned() {
    let (live, _g1) = unique("seg-live");
    let (dead, _g2) = unique("seg-dead");
    let (kept, _g3) = unique("seg-persisted");
    let mine = SharedMemory::create(Some(&live), 4096).unwrap();
    segment_of_a_dead_child(&kept, true);
    let me = std::process::id() as u64;
    let names = [live.as_str(), dead.as_str(), kept.as_str()];
    // The dead child's segment is a real orphan: `cleanup_orphans`, run by tests
    // elsewhere on this machine, may remove it first. Then it is made again; a tool that
    // removes it when it must not does so every time, and the test fails.
    let mut attempt = 0;
    let gone = |attempt: &mut u32| {
        *attempt += 1;
        assert!(
            *attempt < 4,
            "{dead} went away 3 times before it was cleaned"
        );
    };
    loop {
        segment_of_a_dead_child(&dead, false);
        // The library's rule, which the tool applies.
        let header = |n: &str| {
            let f = std::fs::File::open(format!("/dev/shm/{n}")).ok()?;
            SegmentHeader::read(&f).unwrap()
        };
        let Some(h) = header(&dead) else {
            gone(&mut attempt);
            continue;
        };
        assert!(h.is_orphan() && h.size == 1000, "{h:?}");
        assert!(!header(&live).unwrap().is_orphan());
        assert!(!header(&kept).unwrap().is_orphan());

        // ls: each segment, as a segment, with its creator's liveness.
        let doc = ls(true);
        let Some(d) = ls_row(&doc, &dead) else {
            gone(&mut attempt);
            continue;
        };
        assert_eq!(d["kind"], "segment", "{d:#}");
        assert_eq!(d["size"], 1000);
        assert_eq!(d["creator"]["alive"], false);
        assert_eq!(d["persistent"], false);
        assert_eq!(d["orphan"], true);
        let l = ls_row(&doc, &live).unwrap_or_else(|| panic!("{live} not listed: {doc:#}"));
        assert_eq!(l["kind"], "segment");
        assert_eq!(l["size"], 4096);
        assert_eq!(pid_of(&l["creator"]), (me, true));
        assert_eq!(l["orphan"], false);
        let k = ls_row(&doc, &kept).unwrap();
        assert_eq!(k["creator"], Json::Null);
        assert_eq!(
            (k["persistent"].as_bool(), k["orphan"].as_bool()),
            (Some(true), Some(false))
        );
        assert!(doc
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == "arena")
            .all(|r| !names.contains(&r["name"].as_str().unwrap_or_default())));
        let text = stdout(&shmproc(&["ls", "--named"]));
        let line = |n: &str| text.lines().find(|l| l.starts_with(n)).unwrap_or_default();
        assert!(text.contains("SEGMENT"), "{text}");
        assert!(
            line(&dead).contains("(dead)") && line(&dead).contains("orphan"),
            "{text}"
        );
        assert!(line(&kept).contains("persistent"), "{text}");

        // inspect: its header.
        let i = json(&["inspect", &dead], 0);
        assert_eq!(
            (i["kind"].as_str(), i["size"].as_u64()),
            (Some("segment"), Some(1000))
        );
        assert_eq!(i["file_size"], 1064);
        assert_eq!(i["orphan"], true);
        let i = json(&["inspect", &format!("/dev/shm/{live}")], 0);
        assert_eq!(pid_of(&i["creator"]), (me, true));
        let t = stdout(&shmproc(&["inspect", &live]));
        assert!(
            t.contains("a SharedMemory segment") && t.contains("4096 bytes"),
            "{t}"
        );
        assert!(t.contains(&format!("its creator {me} is alive")), "{t}");

        // A dry run says what it would remove, and removes nothing.
        let mut args = vec!["clean"];
        args.extend(names);
        let c = json(&args, 0);
        if !exists(&dead) {
            gone(&mut attempt);
            continue;
        }
        assert_eq!(c["dry_run"], true);
        assert_eq!(c["removed"], serde_json::json!([dead]), "{c:#}");
        let kept_rows = c["kept"].as_array().unwrap();
        assert_eq!(kept_rows.len(), 2, "{c:#}");
        assert!(kept_rows.iter().all(|k| k["kind"] == "segment"));
        let text = stdout(&shmproc(&args));
        let line = text.lines().find(|l| l.contains(&dead)).unwrap_or_default();
        assert!(
            line.starts_with("would remove") && line.contains("orphaned SharedMemory segment"),
            "{text}"
        );
        assert!(
            text.contains("1 orphaned segment would be removed, 3 segments in /dev/shm"),
            "{text}"
        );
        assert!(exists(&dead) && exists(&live) && exists(&kept));

        // The real thing: the dead creator's only.
        let mut args = vec!["clean", "--yes"];
        args.extend(names);
        let c = json(&args, 0);
        if c["removed"] == serde_json::json!([]) && !exists(&dead) {
            gone(&mut attempt);
            continue;
        }
        assert_eq!(c["removed"], serde_json::json!([dead]), "{c:#}");
        let why: Vec<(&str, &str)> = c["kept"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| (k["name"].as_str().unwrap(), k["reason"].as_str().unwrap()))
            .collect();
        assert_eq!(why.len(), 2, "{c:#}");
        assert!(
            why.iter()
                .any(|(n, w)| *n == live && w.contains("is alive")),
            "{why:?}"
        );
        assert!(
            why.iter()
                .any(|(n, w)| *n == kept && w.contains("persistent")),
            "{why:?}"
        );
        assert!(!exists(&dead) && exists(&live) && exists(&kept));
        break;
    }

    // A dead creator's segment that a live process maps: the library's rule removes it
    // (`cleanup_orphans`), the tool sees the mapping and keeps it.
    let (mapped, _g4) = unique("seg-mapped");
    segment_of_a_dead_child(&mapped, false);
    if let Ok(open) = SharedMemory::open(&mapped) {
        let c = json(&["clean", "--yes", &mapped], 0);
        if exists(&mapped) {
            assert_eq!(c["removed"], serde_json::json!([]), "{c:#}");
            let why = c["kept"][0]["reason"].as_str().unwrap();
            assert!(why.contains(&format!("process {me} maps it")), "{why}");
        }
        drop(open);
    }

    // A segment shorter than its header says: shown, as damaged (status 3).
    let (short, _g5) = unique("seg-short");
    SharedMemory::create(Some(&short), 1 << 16).unwrap(); // unmapped at once
    std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/{short}"))
        .unwrap()
        .set_len(100)
        .unwrap();
    let i = json(&["inspect", &short], 3);
    assert_eq!(
        (i["truncated"].as_bool(), i["file_size"].as_u64()),
        (Some(true), Some(100))
    );
    let t = stdout(&shmproc(&["inspect", &short]));
    assert!(t.contains("TRUNCATED"), "{t}");
    drop(mine);
}

fn files_of_other_kinds_are_not_called_truncated_arenas() {
    let (text, _g1) = unique("text");
    let (empty, _g2) = unique("empty");
    std::fs::write(
        format!("/dev/shm/{text}"),
        "root:x:0:0:root:/root:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(format!("/dev/shm/{empty}"), "").unwrap();
    for (what, say) in [
        (text.clone(), "is not a shmproc arena"),
        (empty.clone(), "is empty: not (yet) an arena"),
        ("/etc/passwd".to_string(), "is not a shmproc arena"),
    ] {
        let o = shmproc(&["inspect", &what]);
        assert_eq!(code(&o), 1, "{what}");
        let e = stderr(&o);
        assert!(e.contains(say) && !e.contains("truncated"), "{what}: {e}");
    }
    // Neither is listed (as an arena or as a segment), nor touched by clean.
    let doc = ls(true);
    assert!(ls_row(&doc, &text).is_none() && ls_row(&doc, &empty).is_none());
    let c = json(&["clean", "--yes", &text, &empty], 0);
    assert_eq!(c["removed"], serde_json::json!([]));
    assert_eq!(c["skipped"].as_array().unwrap().len(), 2, "{c:#}");
    assert!(exists(&text) && exists(&empty));
}

fn a_closed_output_is_a_normal_end() {
    let (name, _guard) = unique("closed-output");
    let arena = Arena::create(&name, 1 << 20).unwrap();
    let _objects = one_of_each(&arena);
    let (seg, _g2) = unique("closed-output-seg");
    let _seg = SharedMemory::create(Some(&seg), 64).unwrap();
    for args in [
        vec!["ls"],
        vec!["ls", "--json"],
        vec!["inspect", &name],
        vec!["inspect", &name, "--json"],
        vec!["inspect", &name, "--watch", "0.05", "--count", "2"],
        vec!["inspect", &seg],
        vec!["clean", &name],
    ] {
        // A pipe whose reader is gone before the tool writes (as `| head` after its
        // lines): every write fails with EPIPE.
        let (reader, writer) = rustix::pipe::pipe().unwrap();
        drop(reader);
        let o = Command::new(env!("CARGO_BIN_EXE_shmproc"))
            .args(&args)
            .stdout(Stdio::from(writer))
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{args:?}");
    }
    drop(_objects);
    arena.unlink().unwrap();
}
