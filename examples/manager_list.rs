//! The Manager scene of the tutorials in `seeds/` (`m = Manager(); d = m.dict(...)`, ten
//! `Process(target=task, args=(d, lock))`), with the Manager's list instead of its dict,
//! and data that grows: what Python writes as
//!
//! ```python
//! def task(results, i):
//!     results.append((os.getpid(), i, b'x' * 4 ** i))   # ever larger records
//! if __name__ == '__main__':
//!     m = Manager()
//!     results = m.list()
//!     ps = [Process(target=task, args=(results, i)) for i in range(10)]
//!     ...
//!     print(len(results), results[-1][1], results[:3])
//! ```
//!
//! Here the list lives in shared memory, with no manager process: ten processes append
//! records of 1 byte to 256 KiB ([`SerdeList`] of `(pid, i, bytes)`), four more append
//! plain numbers in bulk ([`SharedList<u64>`](shmproc::SharedList)), and the parent reads
//! them with Python's indices and slices, checks every record, then pops them all, and
//! the arena's memory comes back.
//!
//! Run with `cargo run --release --example manager_list`.

use shmproc::{Arena, Process, SerdeList, SharedList};

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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmproc::init();
    let arena = Arena::anonymous(1 << 20)?; // grows as the lists do
    let base = arena.used();

    // Ten processes, each appends one record, larger and larger.
    let results = SerdeList::<(u32, u32, Vec<u8>)>::new_in(&arena)?;
    let workers = (0..10)
        .map(|i| {
            let results = results.clone();
            Process::new(move || {
                results
                    .append(&(std::process::id(), i, payload(i)))
                    .expect("the arena grows");
            })
        })
        .collect();
    run_all(workers)?;
    println!("len(results) = {}", results.len());
    let last = results.get(-1)?; // results[-1]
    println!(
        "results[-1]   = (pid {}, i {}, {} bytes)",
        last.0,
        last.1,
        last.2.len()
    );
    let first3: Vec<_> = results
        .slice(..3)? // results[:3]
        .into_iter()
        .map(|(pid, i, b)| format!("(pid {pid}, i {i}, {} B)", b.len()))
        .collect();
    println!("results[:3]   = [{}]", first3.join(", "));
    let mut seen: Vec<u32> = results.iter().map(|(_, i, _)| i).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..10).collect::<Vec<_>>(), "each record once");
    for (_, i, bytes) in results.iter() {
        assert!(bytes == payload(i), "record {i} is whole");
    }
    println!(
        "arena: {} KiB in use for the records (they sum to {} KiB)",
        (arena.used() - base) / 1024,
        (0..10).map(|i| 4usize.pow(i)).sum::<usize>() / 1024
    );

    // Four processes append 250,000 numbers each, in bulk; the parent reads as they go.
    let numbers = SharedList::<u64>::new_in(&arena)?;
    let producers = (0..4u64)
        .map(|p| {
            let numbers = numbers.clone();
            Process::new(move || {
                for chunk in 0..250 {
                    let start = (p << 32) | (chunk * 1000);
                    numbers
                        .extend(start..start + 1000)
                        .expect("the arena grows");
                }
            })
        })
        .collect();
    run_all(producers)?;
    let all = numbers.to_vec()?;
    let sum: u64 = all.iter().map(|x| x & 0xffff_ffff).sum();
    assert_eq!(all.len(), 1_000_000);
    assert_eq!(sum, 4 * (0..250_000u64).sum::<u64>());
    println!(
        "numbers: {} appended by 4 processes, numbers[-1] = {:#x}, checksum ok",
        numbers.len(),
        numbers.get(-1)?
    );

    // Drain both (Python's pop()) and give the memory back.
    let mut popped = 0;
    while results.pop().is_ok() {
        popped += 1;
    }
    numbers.clear()?;
    println!(
        "popped {popped} records, cleared the numbers: {} KiB still in use (the two lists' \
         headers)",
        (arena.used() - base) / 1024
    );
    drop((results, numbers));
    assert_eq!(arena.used(), base);
    println!("dropped: the arena is back where it began");
    Ok(())
}
