//! The Manager scene of the tutorials in `seeds/`, with data that grows: what Python
//! writes as
//!
//! ```python
//! def task(dic, lock, i):
//!     with lock:
//!         dic['num'] -= 1                                   # the countdown
//!     dic['worker-%d' % i] = (os.getpid(), b'x' * 4 ** i)   # ever larger records
//! if __name__ == '__main__':
//!     m = Manager()
//!     dic = m.dict({'num': 10})
//!     ps = [Process(target=task, args=(dic, lock, i)) for i in range(10)]
//!     ...
//!     print(dic['num'], len(dic))                           # 0 11
//! ```
//!
//! Here the dict lives in shared memory, with no manager process and no separate lock:
//! ten processes count `num` down with [`update_with`](SerdeDict::update_with) (an atomic
//! read-modify-write) and each stores a record of 1 byte to 256 KiB ([`SerdeDict`] of
//! [`Val`]); then four processes count the words of a text into a byte dict
//! ([`SharedDict`]) that grows from empty to 50,000 keys while the parent reads it; the
//! parent checks every count and every record, drains both dicts (Python's `popitem()`)
//! and clears them, and the arena's memory comes back.
//!
//! Run with `cargo run --release --example manager_dict`.

use serde::{Deserialize, Serialize};
use shmproc::{Arena, Process, SerdeDict, SharedDict};
use std::collections::HashMap;

/// A value of the Manager dict: Python's dict holds values of any type; here an enum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Val {
    Num(i64),
    /// (pid, i, payload)
    Record(u32, u32, Vec<u8>),
}

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

/// Record `i`'s payload: `4^i` bytes (1 B to 256 KiB), each derived from `i`.
fn payload(i: u32) -> Vec<u8> {
    (0..4usize.pow(i)).map(|k| (k as u32 ^ i) as u8).collect()
}

/// Word `n` of process `p`'s part of the text: one of 50,000 words, some far more often
/// than others.
fn word(p: u64, n: u64) -> String {
    let mut x = ((p << 32) | n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 29;
    let r = x % 50_000;
    format!("w{}", r * r / 50_000 + (x >> 40) % 7)
}

const WORDS_EACH: u64 = 50_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmproc::init();
    let arena = Arena::anonymous(1 << 20)?; // grows as the dicts do
    let base = arena.used();

    // dic = m.dict({'num': 10}); ten processes count down and leave a record each.
    let dic = SerdeDict::<String, Val>::new_in(&arena)?;
    dic.insert(&"num".into(), &Val::Num(10))?;
    let workers = (0..10)
        .map(|i| {
            let dic = dic.clone();
            Process::new(move || {
                dic.update_with(&"num".into(), |v| match v {
                    Some(Val::Num(n)) => Some(Val::Num(n - 1)),
                    other => other,
                })
                .expect("num is a number");
                let record = Val::Record(std::process::id(), i, payload(i));
                dic.insert(&format!("worker-{i}"), &record)
                    .expect("the arena grows");
            })
        })
        .collect();
    run_all(workers)?;
    let num = dic.get(&"num".into())?;
    println!("dic['num'] = {num:?}, len(dic) = {}", dic.len());
    assert_eq!(num, Some(Val::Num(0)), "ten atomic decrements");
    assert_eq!(dic.len(), 11);
    for i in 0..10 {
        match dic.get(&format!("worker-{i}"))? {
            Some(Val::Record(_, j, bytes)) => {
                assert_eq!(j, i);
                assert!(bytes == payload(i), "record {i} is whole");
            }
            other => panic!("worker-{i}: {other:?}"),
        }
    }
    if let Some(Val::Record(pid, _, bytes)) = dic.get(&"worker-9".into())? {
        println!("dic['worker-9'] = (pid {pid}, {} KiB)", bytes.len() / 1024);
    }
    println!(
        "arena: {} KiB in use for the records (they sum to {} KiB)",
        (arena.used() - base) / 1024,
        (0..10).map(|i| 4usize.pow(i)).sum::<usize>() / 1024
    );

    // Four processes count words into one dict, which grows from empty as they go; the
    // parent reads it meanwhile (readers never wait for the writers).
    let counts = SharedDict::new_in(&arena)?;
    let counters = (0..4u64)
        .map(|p| {
            let counts = counts.clone();
            Process::new(move || {
                for n in 0..WORDS_EACH {
                    counts
                        .update_with(word(p, n).as_bytes(), |c| {
                            let c = c.map_or(0, |c| u64::from_le_bytes(c.try_into().unwrap()));
                            Some((c + 1).to_le_bytes().to_vec())
                        })
                        .expect("the arena grows");
                }
            })
        })
        .collect::<Vec<_>>();
    let mut counters = counters;
    for c in &mut counters {
        c.start()?;
    }
    let mut glimpses = Vec::new();
    while counters.iter().any(|c| c.is_alive()) && glimpses.len() < 1000 {
        glimpses.push(counts.len());
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    for c in &counters {
        assert_eq!(c.join()?, 0, "{} failed", c.name());
    }
    let mut want: HashMap<String, u64> = HashMap::new();
    for p in 0..4 {
        for n in 0..WORDS_EACH {
            *want.entry(word(p, n)).or_default() += 1;
        }
    }
    let got: HashMap<String, u64> = counts
        .items()?
        .into_iter()
        .map(|(k, v)| {
            let count = u64::from_le_bytes(v[..].try_into().expect("an 8-byte count"));
            (String::from_utf8(k).expect("a word"), count)
        })
        .collect();
    assert_eq!(got, want, "every word counted exactly");
    let mut top: Vec<_> = got.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    println!(
        "word counts: {} words from 4 x {WORDS_EACH} counted, every count exact; the dict \
         grew to {} keys (index of {}), the parent saw it at {} sizes on the way; top 3: \
         {:?}",
        got.values().sum::<u64>(),
        counts.len(),
        counts.capacity(),
        {
            glimpses.dedup();
            glimpses.len()
        },
        &top[..3]
    );

    // Drain both (Python's popitem()), clear them, and give the memory back.
    let mut popped = 0;
    while let Some((k, _)) = dic.popitem()? {
        assert!(k == "num" || k.starts_with("worker-"));
        popped += 1;
    }
    while counts.popitem()?.is_some() {
        popped += 1;
    }
    println!(
        "popped {popped} items: {} KiB still in use (the dicts keep their indexes; clear() \
         frees them)",
        (arena.used() - base) / 1024
    );
    dic.clear()?;
    counts.clear()?;
    println!(
        "cleared: {} bytes in use (the two dicts' state blocks)",
        arena.used() - base
    );
    drop((dic, counts));
    assert_eq!(arena.used(), base);
    println!("dropped: the arena is back where it began");
    Ok(())
}
