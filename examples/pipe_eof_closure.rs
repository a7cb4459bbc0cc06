//! The EOF loop of the tutorial, ported line for line: a child receives until every copy
//! of the sending end is closed.
//!
//! Python (the tutorial's 16 lines):
//! ```python
//! def f(parent_conn, child_conn):
//!     parent_conn.close()
//!     while True:
//!         try:
//!             print(child_conn.recv())
//!         except EOFError:
//!             child_conn.close()
//!             break
//!
//! if __name__ == '__main__':
//!     parent_conn, child_conn = Pipe()
//!     p = Process(target=f, args=(parent_conn, child_conn))
//!     p.start()
//!     child_conn.close()
//!     parent_conn.send('hello')
//!     parent_conn.close()
//!     p.join()
//! ```
//!
//! Rust: `Process::function(f, args)` is `Process(target=f, args=...)`, with two rules
//! that make the closes of the Python version implicit: the child holds exactly the
//! handles in its arguments (so `f` has no `parent_conn` to close), and `start` drops the
//! parent's copy of the arguments (Python's `child_conn.close()` after `start`). The
//! target is a closure that captures nothing, so this runs under every start method.
//!
//! Run with `cargo run --example pipe_eof_closure`.

use shmproc::pipe::{Pipe, RecvError};
use shmproc::{Connection, Process};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmproc::init();
    let (parent_conn, child_conn) = Pipe::new(true)?;
    let f = |child_conn: Connection| loop {
        match child_conn.recv_bytes() {
            Ok(msg) => println!("{}", String::from_utf8_lossy(&msg)),
            Err(RecvError::Eof) => return Ok(()), // drops (closes) child_conn
            Err(e) => return Err(e),
        }
    };
    let mut p = Process::function(f, child_conn);
    p.start()?; // the parent's child_conn is dropped here
    parent_conn.send_bytes(b"hello")?;
    drop(parent_conn);
    assert_eq!(p.join()?, 0, "the child saw EOF and returned Ok");
    Ok(())
}
