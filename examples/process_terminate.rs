//! `terminate` then `is_alive`: the signal is not instantaneous.
//!
//! Ported from the tutorial "Process之join、daemon、terminate" (terminate: 关闭进程).
//! Python prints `True` right after `p.terminate()` (the child may not have died yet) and
//! `False` after a short sleep. Here we wait for the child with `join` instead of
//! sleeping, and show the exit code of a terminated process: `-15` (SIGTERM).
//!
//! Run it with `cargo run --example process_terminate`.

use shmproc::process::Process;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut p = Process::new(|| {
        println!("child: running (until terminated)");
        std::thread::sleep(Duration::from_secs(60));
    });
    p.start()?;
    p.terminate()?; // asks the child to stop: it may not have stopped yet
    println!(
        "right after terminate(): is_alive = {} (may still be true)",
        p.is_alive()
    );
    let code = p.join()?;
    println!("after join():            is_alive = {}", p.is_alive());
    println!("exit code {code} (-15: killed by SIGTERM)");
    p.terminate()?; // already finished: does nothing
    p.close()?;
    println!("closed; exitcode still {:?}", p.exitcode());
    Ok(())
}
