//! Pipe: two `Connection`s over SPSC byte rings in shared memory.

use shmproc::pipe::{Pipe, RecvError};
use std::time::{Duration, Instant};

pub fn run() -> super::Res {
    let (parent, child) = Pipe::new(true)?;
    let (mut parent, mut child) = (Some(parent), Some(child));

    // SAFETY: the tour is single-threaded; the child leaves through `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    if pid == 0 {
        drop(parent.take()); // like Python: drop the end this process does not use
        let conn = child.take().expect("child end");
        let mut ok = true;
        // Echo in upper case until EOF; a 16 MiB message included.
        loop {
            match conn.recv_bytes() {
                Ok(m) => ok &= conn.send_bytes(&m.to_ascii_uppercase()).is_ok(),
                Err(RecvError::Eof) => break,
                Err(_) => {
                    ok = false;
                    break;
                }
            }
        }
        drop(conn);
        // SAFETY: leave the child at once.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    drop(child.take());
    let conn = parent.take().expect("parent end");

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
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    println!(
        "  parent closed its end; child saw EOF and exited with {}",
        libc::WEXITSTATUS(status)
    );
    Ok(())
}
