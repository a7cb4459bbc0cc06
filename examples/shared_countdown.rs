//! The Manager-dict countdown from the tutorials in `seeds/`: ten processes each do
//! `temp = dic['num']; sleep(0.1); dic['num'] = temp - 1` on `{'num': 10}`.
//!
//! Without a lock every process reads 10 and the result is 9, not 0. The tutorial adds a
//! `Lock`; here [`SharedDict::update_with`] makes the read-modify-write atomic by
//! construction, and there is no manager process: the dict lives in shared memory.
//!
//! Run with `cargo run --release --example shared_countdown`.

use shmproc::shared::TypedDict;
use std::time::Duration;

fn spawn(f: impl FnOnce()) -> libc::pid_t {
    use std::io::Write;
    std::io::stdout().flush().ok();
    // SAFETY: single-threaded when forking; the child runs `f` and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        f();
        // SAFETY: leave the child without the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    pid
}

fn join(pids: Vec<libc::pid_t>) {
    for pid in pids {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Keys are 3-byte strings, values i64: `{'num': 10}`.
    let dic = TypedDict::<[u8; 3], i64>::new(4)?;

    dic.insert(b"num", &10)?;
    let racers = (0..10)
        .map(|_| {
            let dic = dic.clone();
            spawn(move || {
                let temp = dic.get(b"num").unwrap();
                std::thread::sleep(Duration::from_millis(100));
                dic.insert(b"num", &(temp - 1)).unwrap();
            })
        })
        .collect();
    join(racers);
    println!(
        "get, sleep, insert (the race):   {{'num': {}}}",
        dic.get(b"num").unwrap()
    );

    dic.insert(b"num", &10)?;
    let workers = (0..10)
        .map(|_| {
            let dic = dic.clone();
            spawn(move || {
                dic.update_with(b"num", |temp| {
                    std::thread::sleep(Duration::from_millis(100));
                    temp.map(|t| t - 1)
                })
                .unwrap();
            })
        })
        .collect();
    join(workers);
    let num = dic.get(b"num").unwrap();
    println!("update_with (atomic):            {{'num': {num}}}");
    assert_eq!(num, 0);
    Ok(())
}
