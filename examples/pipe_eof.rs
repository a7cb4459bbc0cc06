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
//! `args=(parent_conn, child_conn)` becomes a struct-style process ([`Run`]) holding both
//! ends: the child runs `f` on its copy, and the parent, after `start`, takes its own
//! copies out of the `Process` with [`Process::target_mut`].
//!
//! Run with `cargo run --example pipe_eof`.

use shmproc::pipe::RecvError;
use shmproc::{Connection, Pipe, Process, Run, RunResult};

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

/// The process's arguments: `args=(parent_conn, child_conn)`.
struct Args {
    parent_conn: Option<Connection>,
    child_conn: Option<Connection>,
}

impl Run for Args {
    fn run(&mut self) -> RunResult {
        let (p, c) = (self.parent_conn.take(), self.child_conn.take());
        let n = f(p.ok_or("no parent end")?, c.ok_or("no child end")?)?;
        if n != 3 {
            return Err(format!("child received {n} messages, expected 3").into());
        }
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (parent_conn, child_conn) = Pipe::new(true)?;
    let mut p = Process::from_run(Args {
        parent_conn: Some(parent_conn),
        child_conn: Some(child_conn),
    });
    p.start()?;

    // The parent's own copies of the two ends.
    let args = p.target_mut();
    let mut child_conn = args.child_conn.take().expect("child end");
    let mut parent_conn = args.parent_conn.take().expect("parent end");
    child_conn.close();
    for msg in ["hello", "你好", "bye"] {
        parent_conn.send_bytes(msg.as_bytes())?;
    }
    parent_conn.close();

    assert_eq!(p.join()?, 0, "child failed");
    println!("parent: child joined after EOF");
    Ok(())
}
