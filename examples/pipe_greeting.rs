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
//! The worker is a struct-style process ([`Run`]) holding both ends, like Python's
//! `args`: the child drops the parent's end, and the parent, after `start`, takes its own
//! end out of its copy of the struct and drops the child's.
//!
//! Run with `cargo run --example pipe_greeting`.

use shmproc::{Connection, Pipe, Process, Run, RunResult};

fn worker(conn: &Connection) -> RunResult {
    let data = conn.recv_bytes()?;
    println!("worker got:  {}", String::from_utf8_lossy(&data));
    conn.send_bytes("Hello from the worker process (妹妹)".as_bytes())?;
    Ok(())
}

/// Both ends of the pipe, as the process's arguments: each side keeps the one it uses.
struct Ends {
    parent_conn: Option<Connection>,
    child_conn: Option<Connection>,
}

impl Run for Ends {
    fn run(&mut self) -> RunResult {
        drop(self.parent_conn.take()); // the child does not use the parent's end
        let conn = self.child_conn.take().ok_or("no child end")?;
        worker(&conn)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Make the pipe before starting the process, as in Python.
    let (parent_conn, child_conn) = Pipe::new(true)?;
    let mut process = Process::from_run(Ends {
        parent_conn: Some(parent_conn),
        child_conn: Some(child_conn),
    });
    process.start()?;

    let ends = process.target_mut(); // the parent's copy of the arguments
    drop(ends.child_conn.take()); // the parent does not use the child's end
    let conn = ends.parent_conn.take().expect("parent end");
    conn.send_bytes(b"Hello from the main process")?;
    let reply = conn.recv_bytes()?;
    println!("parent got:  {}", String::from_utf8_lossy(&reply));

    assert_eq!(process.join()?, 0, "the worker failed");
    println!("worker joined");
    Ok(())
}
