//! The Manager-dict countdown from the tutorials in `seeds/`: ten processes each do
//! `temp = dic['num']; sleep(0.1); dic['num'] = temp - 1` on `{'num': 10}`.
//!
//! Without a lock every process reads 10 and the result is 9, not 0. The tutorial adds a
//! `Lock`; here [`SharedDict::update_with`] makes the read-modify-write atomic by
//! construction, and there is no manager process: the dict lives in shared memory.
//!
//! Run with `cargo run --release --example shared_countdown`.

use shmproc::{Process, TypedDict};
use std::time::Duration;

/// Starts every process, then joins them all; each must exit with 0.
fn run_all(mut ps: Vec<Process>) -> Result<(), Box<dyn std::error::Error>> {
    for p in &mut ps {
        p.start()?;
    }
    for p in &ps {
        assert_eq!(p.join()?, 0, "{} failed", p.name());
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Keys are 3-byte strings, values i64: `{'num': 10}`.
    let dic = TypedDict::<[u8; 3], i64>::new()?;

    dic.insert(b"num", &10)?;
    let racers = (0..10)
        .map(|_| {
            let dic = dic.clone();
            Process::new(move || {
                let temp = dic.get(b"num").unwrap().expect("'num' is there");
                std::thread::sleep(Duration::from_millis(100));
                dic.insert(b"num", &(temp - 1)).unwrap();
            })
        })
        .collect();
    run_all(racers)?;
    println!(
        "get, sleep, insert (the race):   {{'num': {}}}",
        dic.get(b"num")?.expect("'num' is there")
    );

    dic.insert(b"num", &10)?;
    let workers = (0..10)
        .map(|_| {
            let dic = dic.clone();
            Process::new(move || {
                dic.update_with(b"num", |temp| {
                    std::thread::sleep(Duration::from_millis(100));
                    temp.map(|t| t - 1)
                })
                .unwrap();
            })
        })
        .collect();
    run_all(workers)?;
    let num = dic.get(b"num")?.expect("'num' is there");
    println!("update_with (atomic):            {{'num': {num}}}");
    assert_eq!(num, 0);
    Ok(())
}
