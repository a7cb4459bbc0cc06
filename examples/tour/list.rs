//! Tour part: SharedList, ByteList and SerdeList across real processes: Python's
//! `Manager().list()` with no manager process.

use shmproc::{ByteList, Event, Process, SerdeList, SharedList};

/// Starts every process, then joins them all; each must exit with 0.
fn run_all(mut ps: Vec<Process>) -> super::Res {
    for p in &mut ps {
        p.start()?;
    }
    ps.iter().try_for_each(super::join)
}

pub fn run() -> super::Res {
    // Four processes append at once; every element arrives once.
    let squares = SharedList::<u64>::new()?;
    let kids = (0..4u64)
        .map(|p| {
            let squares = squares.clone();
            Process::new(move || {
                for i in (p * 2_500)..(p + 1) * 2_500 {
                    squares.push(i * i).expect("the arena grows");
                }
            })
        })
        .collect();
    run_all(kids)?;
    let mut all = squares.to_vec()?;
    all.sort_unstable();
    let want: Vec<u64> = (0..10_000).map(|i| i * i).collect();
    println!(
        "SharedList<u64>: 4 processes x 2,500 push = {} elements, each once: {}",
        squares.len(),
        all == want
    );

    // Python's indices and slices, across processes.
    let l = SharedList::<i32>::new()?;
    l.extend(0..10)?;
    let child = l.clone();
    run_all(vec![Process::new(move || {
        child.set(-1, 90).unwrap(); // l[-1] = 90
        child.insert(0, -1).unwrap(); // l.insert(0, -1)
        child.remove(&5).unwrap(); // l.remove(5)
        assert_eq!(child.pop_at(-2).unwrap(), 8); // l.pop(-2)
    })])?;
    println!(
        "after a child's l[-1] = 90, insert(0, -1), remove(5), pop(-2): l = {:?}, l[-3:] = {:?}, l[:2] = {:?}",
        l.to_vec()?,
        l.slice(-3..)?,
        l.slice(..2)?
    );

    // Byte strings of any size, and serde values.
    let blobs = ByteList::new()?;
    let writer = blobs.clone();
    run_all(vec![Process::new(move || {
        writer.push(b"a short one").unwrap();
        writer.push(&vec![0xAB; 1 << 20]).unwrap(); // 1 MiB: a block of its own
    })])?;
    println!(
        "ByteList: {} elements, {} and {} bytes",
        blobs.len(),
        blobs.get(0)?.len(),
        blobs.get(-1)?.len()
    );
    let log = SerdeList::<(String, u32)>::new()?;
    let writer = log.clone();
    run_all(vec![Process::new(move || {
        writer
            .push(&("started".into(), std::process::id()))
            .unwrap();
    })])?;
    println!("SerdeList<(String, u32)>: {:?}", log.get(0)?.0);

    // A writer killed (SIGKILL) while it appends: the list stays whole.
    let pairs = SharedList::<[u64; 2]>::new()?;
    let going = Event::new()?;
    let mut victim = {
        let (pairs, going) = (pairs.clone(), going.clone());
        Process::new(move || {
            for i in 0u64.. {
                pairs.push([i, !i]).unwrap();
                pairs.insert(i / 2, [i, !i]).unwrap();
                if i == 1_000 {
                    going.set();
                }
            }
        })
    };
    victim.start()?;
    going.wait();
    victim.kill()?;
    let code = victim.join()?;
    pairs.push([7, !7])?; // takes the lock over if the kill landed inside it
    let whole = pairs.iter().all(|[a, b]| b == !a);
    println!(
        "a writer killed mid-append (exit code {code}): {} elements, all whole: {whole}, \
         repairs by the next writer: {} (1 when the kill landed inside the list's lock)",
        pairs.len(),
        pairs.repairs()
    );
    if !whole || code != -9 {
        return Err("the killed writer left the list torn".into());
    }
    Ok(())
}
