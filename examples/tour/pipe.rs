//! Pipe: two `Connection`s over SPSC byte rings in shared memory.

use shmproc::{Pipe, PipeRecvError as RecvError, Process};
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

pub fn run() -> super::Res {
    // Both ends go to the child, as with Python's `Process(target=f, args=(parent_conn,
    // child_conn))`: the child inherits a copy of the parent's end and must drop it, or
    // it would never see EOF. The shared cell lets the child take both ends out of its
    // own (forked) copy of it, and the parent out of its own after `start`.
    let ends = Rc::new(Cell::new(Some(Pipe::new(true)?)));
    let mut echo = Process::fallible({
        let ends = Rc::clone(&ends);
        move || -> Result<(), Box<dyn std::error::Error>> {
            let (parent_end, conn) = ends.take().ok_or("no ends")?;
            drop(parent_end); // like Python: drop the end this process does not use
                              // Echo in upper case until EOF; a 16 MiB message included.
            loop {
                match conn.recv_bytes() {
                    Ok(m) => conn.send_bytes(&m.to_ascii_uppercase())?,
                    Err(RecvError::Eof) => return Ok(()),
                    Err(e) => return Err(e.into()),
                }
            }
        }
    });
    echo.start()?;
    let (conn, child_end) = ends.take().ok_or("no ends")?;
    drop(child_end); // and the parent drops the child's end

    conn.send_bytes(b"hello")?;
    println!(
        "  parent sent 'hello', child answered '{}'",
        String::from_utf8_lossy(&conn.recv_bytes()?)
    );

    let n = 10_000;
    let t = Instant::now();
    for _ in 0..n {
        conn.send_bytes(b"ping")?;
        conn.recv_bytes()?;
    }
    println!(
        "  {n} round trips of 4-byte messages: {:.2} us each",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );

    let big = vec![b'x'; 16 << 20];
    let t = Instant::now();
    conn.send_bytes(&big)?;
    let back = conn.recv_bytes()?;
    assert!(back.len() == big.len() && back.iter().all(|&b| b == b'X'));
    println!(
        "  a 16 MiB message through a {} KiB ring and back: {:.1} ms",
        conn.capacity() >> 10,
        t.elapsed().as_secs_f64() * 1e3
    );

    println!(
        "  poll with nothing pending: {}",
        conn.poll_timeout(Duration::from_millis(10))?
    );
    drop(conn); // the child sees EOF and exits
    let code = echo.join()?;
    println!("  parent closed its end; child saw EOF and exited with {code}");
    if code != 0 {
        return Err("the echo child failed".into());
    }
    Ok(())
}
