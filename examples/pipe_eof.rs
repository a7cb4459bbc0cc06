//! The EOF loop: a child receives until every copy of the writing end is closed.
//!
//! Ported from the tutorial (Python):
//! ```python
//! def f(parent_conn, child_conn):
//!     parent_conn.close()   # without this close there is no EOFError
//!     while True:
//!         try:
//!             print(child_conn.recv())
//!         except EOFError:
//!             child_conn.close()
//!             break
//!
//! parent_conn, child_conn = Pipe()
//! p = Process(target=f, args=(parent_conn, child_conn))
//! p.start()
//! child_conn.close()
//! parent_conn.send('hello')
//! parent_conn.close()
//! p.join()
//! ```
//!
//! As in Python, the pipe's ends are counted by the operating system (here, through one
//! liveness descriptor per end): EOF comes only once *every* process has closed the
//! writing end, so the child must close its own copy of it first.
//!
//! Run with `cargo run --example pipe_eof`.

use shmproc::pipe::{Connection, Pipe, RecvError};

fn f(mut parent_conn: Connection, mut child_conn: Connection) -> Result<usize, RecvError> {
    parent_conn.close(); // without this close the loop below would never end
    let mut n = 0;
    loop {
        match child_conn.recv_bytes() {
            Ok(msg) => {
                println!("child received: {}", String::from_utf8_lossy(&msg));
                n += 1;
            }
            Err(RecvError::Eof) => {
                println!("child: EOF, the writer is closed everywhere");
                child_conn.close();
                return Ok(n);
            }
            Err(e) => return Err(e),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (parent_conn, child_conn) = Pipe::new(true)?;
    let mut ends = Some((parent_conn, child_conn));

    // SAFETY: single-threaded here; the child leaves through `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    if pid == 0 {
        let (p, c) = ends.take().expect("ends");
        let code = match f(p, c) {
            Ok(3) => 0,
            _ => 1,
        };
        // SAFETY: leave the child process at once.
        unsafe { libc::_exit(code) };
    }
    let (mut parent_conn, mut child_conn) = ends.take().expect("ends");
    child_conn.close();
    for msg in ["hello", "你好", "bye"] {
        parent_conn.send_bytes(msg.as_bytes())?;
    }
    parent_conn.close();

    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed"
    );
    println!("parent: child joined after EOF");
    Ok(())
}
