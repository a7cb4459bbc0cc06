//! `Listener` / `Client` (Python's `multiprocessing.connection`) between two separately
//! started processes: this program runs itself again as the client. The authkey is
//! checked both ways (HMAC-SHA256 challenge-response); the messages then go through
//! shared memory, and a handle (an arena with a counter in it) goes over the socket kept
//! beside the connection.
//!
//! Run with `cargo run --example listener_client`.

use shmproc::connection::{Address, Client, Listener};
use shmproc::{Arena, Value};
use std::process::Command;

const KEY: &[u8] = b"secret password";

fn client(address: &Address) -> Result<(), Box<dyn std::error::Error>> {
    let conn = Client::connect(address, Some(KEY))?;
    let arena: Arena = conn.recv_handle()?;
    let hits = Value::<u64>::open(&arena, "hits")?;
    for i in 0..1000u64 {
        conn.send(&i)?;
        hits.fetch_add(1);
    }
    conn.send_bytes(b"close")?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmproc::init();
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "--client" {
        return client(&args[2].parse()?);
    }
    let address = Address::abstract_name(format!("shmproc-example-{}", std::process::id()));
    let listener = Listener::bind(&address, Some(KEY))?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--client", &address.to_string()])
        .spawn()?;
    let conn = listener.accept()?;
    println!("accepted a client on {address}");
    let arena = Arena::anonymous(1 << 20)?;
    let hits = Value::<u64>::create(&arena, "hits", 0)?;
    conn.send_handle(&arena)?;
    let mut sum = 0;
    for i in 0..1000u64 {
        let v: u64 = conn.recv()?;
        assert_eq!(v, i);
        sum += v;
    }
    assert_eq!(conn.recv_bytes()?, b"close");
    assert!(child.wait()?.success());
    println!(
        "received 1000 messages, sum {sum}; the client counted {} hits",
        hits.load()
    );
    assert_eq!(hits.load(), 1000);
    Ok(())
}
