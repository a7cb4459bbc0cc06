//! Parent and child greet each other over a duplex pipe.
//!
//! Ported from the tutorial (Python):
//! ```python
//! def worker(conn):
//!     data = conn.recv()
//!     print(data)
//!     conn.send("Hello from the worker process")
//!
//! parent_conn, child_conn = Pipe()
//! process = Process(target=worker, args=(child_conn,))
//! process.start()
//! parent_conn.send("Hello from the main process")
//! print(parent_conn.recv())
//! process.join()
//! ```
//!
//! Run with `cargo run --example pipe_greeting`.

use shmproc::pipe::{Connection, Pipe};

fn worker(conn: &Connection) -> Result<(), Box<dyn std::error::Error>> {
    let data = conn.recv_bytes()?;
    println!("worker got:  {}", String::from_utf8_lossy(&data));
    conn.send_bytes("Hello from the worker process (妹妹)".as_bytes())?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Make the pipe before starting the process, as in Python.
    let (parent_conn, child_conn) = Pipe::new(true)?;
    let mut parent_conn = Some(parent_conn);
    let mut child_conn = Some(child_conn);

    // SAFETY: this program is single-threaded here, so the child is a faithful copy; it
    // leaves through `_exit` without running the parent's exit handlers.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    if pid == 0 {
        drop(parent_conn.take()); // the child does not use the parent's end
        let ok = worker(child_conn.as_ref().expect("child end")).is_ok();
        drop(child_conn.take());
        // SAFETY: leave the child process at once.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    drop(child_conn.take()); // the parent does not use the child's end
    let conn = parent_conn.take().expect("parent end");
    conn.send_bytes(b"Hello from the main process")?;
    let reply = conn.recv_bytes()?;
    println!("parent got:  {}", String::from_utf8_lossy(&reply));

    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    println!("worker joined");
    Ok(())
}
