//! `Listener` / `Client` between separately started processes: this test binary runs
//! itself again with `--client <mode> <address> <authkey>` to be the client.

use shmproc::connection::{Address, Client, ConnectionError, Listener};
use shmproc::pipe::{Pipe, RecvError};
use shmproc::process::travel::TravelError;
use shmproc::queue::JoinableQueue;
use shmproc::{Arena, Connection, Value};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const MESSAGES: u64 = 1_000_000;

/// Tasks the server puts on the `JoinableQueue` it sends (more than the queue holds).
const TASKS: u64 = 300;

fn main() {
    shmproc::init();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--client") {
        let code = client(&args[2], &args[3].parse().unwrap(), args[4].as_bytes());
        std::process::exit(code);
    }
    shmproc_testkit::run(&shmproc_testkit::tests![
        million_messages_checksummed,
        path_socket_and_abstract_name,
        wrong_authkey_refused,
        client_killed_mid_message_gives_eof,
        handshake_failures_are_clear_errors,
        handles_travel_over_a_connection,
    ]);
}

fn checksum(acc: u64, v: u64) -> u64 {
    acc.wrapping_mul(0x100_0000_01b3).wrapping_add(v)
}

/// The client side of each test, in a process of its own. Returns its exit code.
fn client(mode: &str, address: &Address, key: &[u8]) -> i32 {
    let key = (!key.is_empty()).then_some(key);
    match mode {
        "stream" => {
            let conn = Client::connect(address, key).unwrap();
            let mut acc = 0;
            for i in 0..MESSAGES {
                let v = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                acc = checksum(acc, v);
                conn.send(&v).unwrap();
            }
            conn.send(&acc).unwrap();
            assert_eq!(conn.recv_bytes().unwrap(), b"ok");
            0
        }
        "wrong-key" => match Client::connect(address, key) {
            Err(ConnectionError::Authentication(_)) => 0,
            other => {
                eprintln!("expected an authentication error, got {other:?}");
                1
            }
        },
        "die-mid-message" => {
            let conn = Client::connect(address, key).unwrap();
            conn.send_bytes(b"begin").unwrap();
            // 16 MiB through a 64 KiB ring: blocks mid-message until the server reads,
            // which it will not do: it kills us instead.
            let _ = conn.send_bytes(&vec![7u8; 16 << 20]);
            2
        }
        "handles" => {
            let conn = Client::connect(address, key).unwrap();
            let arena: Arena = conn.recv_handle().unwrap();
            Value::<u64>::open(&arena, "count").unwrap().fetch_add(5);
            let end: Connection = conn.recv_handle().unwrap();
            end.send_bytes(b"through the travelled end").unwrap();
            // Every task of the travelled JoinableQueue, each marked done: the server's
            // `join` waits for them; the count and checksum go back through `end`.
            let tasks: JoinableQueue<u64> = conn.recv_handle().unwrap();
            let mut check = 0;
            for _ in 0..TASKS {
                check = checksum(check, tasks.get().unwrap());
                tasks.task_done().unwrap();
            }
            end.send(&[TASKS, check]).unwrap();
            // A handle of the wrong type is refused, never misread.
            match conn.recv_handle::<Arena>() {
                Err(TravelError::WrongType { .. }) => {}
                other => panic!("expected WrongType, got {other:?}"),
            }
            conn.send_bytes(b"done").unwrap();
            0
        }
        _ => 3,
    }
}

fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    // Relaxed: a counter for unique names within this process.
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("shmproc-test-{tag}-{}-{n}", std::process::id())
}

fn spawn_client(mode: &str, address: &Address, key: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--client", mode, &address.to_string(), key])
        .spawn()
        .unwrap()
}

fn million_messages_checksummed() {
    let address = Address::abstract_name(unique("stream"));
    let listener = Listener::bind(&address, Some(b"k3y")).unwrap();
    let mut child = spawn_client("stream", &address, "k3y");
    let conn = listener.accept().unwrap();
    let mut acc = 0;
    for i in 0..MESSAGES {
        let v: u64 = conn.recv().unwrap();
        assert_eq!(v, i.wrapping_mul(0x9e37_79b9_7f4a_7c15), "message {i}");
        acc = checksum(acc, v);
    }
    assert_eq!(conn.recv::<u64>().unwrap(), acc, "checksum");
    conn.send_bytes(b"ok").unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(conn.recv_bytes(), Err(RecvError::Eof));
}

fn path_socket_and_abstract_name() {
    let path = std::env::temp_dir().join(format!("{}.sock", unique("path")));
    for address in [Address::path(&path), Address::abstract_name(unique("name"))] {
        let listener = Listener::bind(&address, None).unwrap();
        assert_eq!(listener.address(), &address);
        // A second listener on the same address is refused.
        assert!(matches!(
            Listener::bind(&address, None),
            Err(ConnectionError::AddressInUse(_))
        ));
        let a = address.clone();
        let t = std::thread::spawn(move || {
            let c = Client::connect(&a, None).unwrap();
            c.send_bytes(b"ping").unwrap();
            c.recv_bytes().unwrap()
        });
        let conn = listener.accept().unwrap();
        assert_eq!(conn.recv_bytes().unwrap(), b"ping");
        conn.send_bytes(b"pong").unwrap();
        assert_eq!(t.join().unwrap(), b"pong");
    }
    assert!(!path.exists(), "the listener removes its socket file");
    assert!(Client::connect(&Address::path(&path), None).is_err());
}

fn wrong_authkey_refused() {
    let address = Address::abstract_name(unique("auth"));
    let listener = Listener::bind(&address, Some(b"right")).unwrap();
    let mut child = spawn_client("wrong-key", &address, "wrong");
    match listener.accept() {
        Err(ConnectionError::Authentication(why)) => assert!(why.contains("wrong"), "{why}"),
        other => panic!("expected an authentication error, got {other:?}"),
    }
    assert!(
        child.wait().unwrap().success(),
        "the client saw the refusal"
    );
    // No key against a server that wants one; a key against one that has none.
    let a = address.clone();
    let t = std::thread::spawn(move || Client::connect(&a, None));
    assert!(listener.accept().is_err());
    assert!(matches!(
        t.join().unwrap(),
        Err(ConnectionError::Authentication(_))
    ));
    let open = Address::abstract_name(unique("open"));
    let open_listener = Listener::bind(&open, None).unwrap();
    let o = open.clone();
    let t = std::thread::spawn(move || Client::connect(&o, Some(b"key")));
    let _ = open_listener.accept();
    assert!(matches!(
        t.join().unwrap(),
        Err(ConnectionError::Authentication(_))
    ));
    // The right key still gets in.
    let a = address.clone();
    let t = std::thread::spawn(move || Client::connect(&a, Some(b"right")).map(drop));
    listener.accept().unwrap();
    t.join().unwrap().unwrap();
}

fn client_killed_mid_message_gives_eof() {
    let address = Address::abstract_name(unique("kill"));
    let listener = Listener::bind(&address, None).unwrap();
    let mut child = spawn_client("die-mid-message", &address, "");
    let conn = listener.accept().unwrap();
    assert_eq!(conn.recv_bytes().unwrap(), b"begin");
    // Wait until the big message has begun to arrive, then kill its sender.
    assert!(conn.poll_timeout(Duration::from_secs(60)).unwrap());
    child.kill().unwrap();
    child.wait().unwrap();
    let t = Instant::now();
    assert_eq!(conn.recv_bytes(), Err(RecvError::Eof));
    eprint!("[EOF {:?} after the kill] ", t.elapsed());
}

/// A raw client: connects to `address` and does `f` with the socket.
fn raw_client(address: &Address, f: impl FnOnce(std::os::fd::OwnedFd) + Send + 'static) {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let sa = match address {
        Address::Abstract(n) => SocketAddrUnix::new_abstract_name(n).unwrap(),
        Address::Path(p) => SocketAddrUnix::new(p.as_path()).unwrap(),
    };
    let s = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    rustix::net::connect(&s, &sa).unwrap();
    std::thread::spawn(move || f(s));
}

fn handshake_failures_are_clear_errors() {
    let address = Address::abstract_name(unique("bad"));
    let mut listener = Listener::bind(&address, Some(b"key")).unwrap();
    listener.set_handshake_timeout(Duration::from_millis(300));
    // Garbage after the hello.
    raw_client(&address, |s| {
        let mut b = [0u8; 4096];
        let _ = rustix::net::recv(&s, &mut b, rustix::net::RecvFlags::empty());
        let _ = rustix::net::send(
            &s,
            b"GET / HTTP/1.1\r\n\r\n",
            rustix::net::SendFlags::empty(),
        );
        std::thread::sleep(Duration::from_secs(2));
    });
    match listener.accept() {
        Err(ConnectionError::Garbage(why)) => assert!(why.contains("magic"), "{why}"),
        other => panic!("expected garbage, got {other:?}"),
    }
    // A peer that closes at once.
    raw_client(&address, drop);
    assert!(matches!(
        listener.accept(),
        Err(ConnectionError::PeerClosed { .. })
    ));
    // A peer that says nothing: the handshake times out.
    raw_client(&address, |s| {
        std::thread::sleep(Duration::from_secs(3));
        drop(s);
    });
    let t = Instant::now();
    assert!(matches!(
        listener.accept(),
        Err(ConnectionError::Timeout { .. })
    ));
    assert!(t.elapsed() >= Duration::from_millis(300));
    // The listener is still fine.
    let a = address.clone();
    let c = std::thread::spawn(move || Client::connect(&a, Some(b"key")).map(drop));
    listener.accept().unwrap();
    c.join().unwrap().unwrap();

    // The client's side: a fake server that sends garbage, one that stays silent.
    for (tag, garbage) in [("fake-garbage", true), ("fake-silent", false)] {
        use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
        let name = unique(tag);
        let s = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        rustix::net::bind(
            &s,
            &SocketAddrUnix::new_abstract_name(name.as_bytes()).unwrap(),
        )
        .unwrap();
        rustix::net::listen(&s, 4).unwrap();
        let server = std::thread::spawn(move || {
            let c = rustix::net::accept(&s).unwrap();
            if garbage {
                rustix::net::send(&c, &[0xff; 40], rustix::net::SendFlags::empty()).unwrap();
            }
            std::thread::sleep(Duration::from_secs(2));
        });
        let r = Client::connect_timeout(
            &Address::abstract_name(&name),
            None,
            Duration::from_millis(300),
        );
        match (garbage, r) {
            (true, Err(ConnectionError::Garbage(_)))
            | (false, Err(ConnectionError::Timeout { .. })) => {}
            (_, other) => panic!("{tag}: got {other:?}"),
        }
        server.join().unwrap();
    }
    // A listener that never accepts, its backlog full: connect gives up in time.
    {
        use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
        let name = unique("full");
        let sa = SocketAddrUnix::new_abstract_name(name.as_bytes()).unwrap();
        let sock = || {
            rustix::net::socket_with(
                AddressFamily::UNIX,
                SocketType::SEQPACKET,
                SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
                None,
            )
            .unwrap()
        };
        let l = sock();
        rustix::net::bind(&l, &sa).unwrap();
        rustix::net::listen(&l, 1).unwrap();
        let mut held = Vec::new();
        while held.len() < 16 {
            let c = sock();
            if rustix::net::connect(&c, &sa).is_err() {
                break; // the backlog is full
            }
            held.push(c);
        }
        let t = Instant::now();
        let r = Client::connect_timeout(
            &Address::abstract_name(&name),
            None,
            Duration::from_millis(300),
        );
        assert!(
            matches!(r, Err(ConnectionError::Timeout { .. })),
            "{r:?} after {} connections",
            held.len()
        );
        assert!(t.elapsed() >= Duration::from_millis(300));
    }
    // Nobody listening.
    assert!(matches!(
        Client::connect(&Address::abstract_name(unique("nobody")), None),
        Err(ConnectionError::Os { .. })
    ));
}

fn handles_travel_over_a_connection() {
    let address = Address::abstract_name(unique("handles"));
    let listener = Listener::bind(&address, Some(b"k")).unwrap();
    let mut child = spawn_client("handles", &address, "k");
    let conn = listener.accept().unwrap();
    let arena = Arena::anonymous(1 << 20).unwrap();
    let count = Value::<u64>::create(&arena, "count", 10).unwrap();
    conn.send_handle(&arena).unwrap();
    let (mine, theirs) = Pipe::new_in(&arena, true, 4096).unwrap();
    conn.send_handle(&theirs).unwrap();
    drop(theirs);
    let tasks = JoinableQueue::<u64>::new_in(&arena, 16).unwrap();
    conn.send_handle(&tasks).unwrap();
    let (other, _) = Pipe::new(true).unwrap();
    conn.send_handle(&other).unwrap(); // a Connection where the client expects an Arena
    let mut check = 0;
    for i in 0..TASKS {
        let v = i * 7 + 1;
        tasks.put(v).unwrap();
        check = checksum(check, v);
    }
    // Returns once the client has marked every task done (a hang guard above).
    tasks.join_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(tasks.unfinished_tasks(), 0);
    assert_eq!(mine.recv_bytes().unwrap(), b"through the travelled end");
    assert_eq!(
        mine.recv::<[u64; 2]>().unwrap(),
        [TASKS, check],
        "the tasks, counted and checksummed by the client"
    );
    assert_eq!(conn.recv_bytes().unwrap(), b"done");
    assert!(child.wait().unwrap().success());
    assert_eq!(count.load(), 15);
    // The client held the only other copy of the travelled end: EOF now.
    assert_eq!(mine.recv_bytes(), Err(RecvError::Eof));
    // Ends made by Pipe::new have no socket for handles.
    let (a, _b) = Pipe::new(true).unwrap();
    assert!(matches!(a.send_handle(&arena), Err(TravelError::NoSocket)));
}
