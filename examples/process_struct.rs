//! A struct-style process with its own fields: Python's `class MyProcess(Process)` with
//! `__init__(self, i)` and `run(self)`, as a type implementing [`Run`].
//!
//! Ported from the tutorial "Process之join、daemon、terminate" (opening processes with a
//! class, passing parameters). Each child prints its index, its pid and its parent's pid.
//!
//! Run it with `cargo run --example process_struct`.

use shmproc::process::{current_process, parent_process, Process, Run, RunResult};
use std::time::Duration;

struct MyProcess {
    index: u32,
    greeting: String,
}

impl Run for MyProcess {
    fn run(&mut self) -> RunResult {
        std::thread::sleep(Duration::from_millis(100));
        let me = current_process();
        let parent = parent_process().ok_or("started without a parent?")?;
        println!(
            "child {}: {} ({}), pid {}, parent {} (pid {})",
            self.index,
            self.greeting,
            me.name(),
            me.pid(),
            parent.name(),
            parent.pid()
        );
        // Changes stay in the child: the parent's copy of the struct is untouched.
        self.greeting.push_str(" (changed in the child)");
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut ps: Vec<Process<MyProcess>> = (0..10)
        .map(|i| {
            Process::from_run(MyProcess {
                index: i,
                greeting: format!("hello #{i}"),
            })
        })
        .collect();
    for p in &mut ps {
        p.start()?;
    }
    for p in &ps {
        p.join()?;
    }
    println!(
        "main: pid {}; the parent's copy still says {:?}",
        std::process::id(),
        ps[0].target().greeting
    );
    Ok(())
}
