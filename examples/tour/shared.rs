//! Tour part: Value, Array, SharedDict and SharedMemory across real processes.

use shmproc::{cleanup_orphans, Array, Process, SharedDict, SharedMemory, Value};
use std::time::Duration;

/// Starts every process, then joins them all; each must exit with 0.
fn run_all(mut ps: Vec<Process>) -> super::Res {
    for p in &mut ps {
        p.start()?;
    }
    ps.iter().try_for_each(super::join)
}

pub fn run() -> super::Res {
    // Value: a lock-free counter.
    let hits = Value::new(0u64)?;
    let kids = (0..4)
        .map(|_| {
            let hits = hits.clone();
            Process::new(move || {
                for _ in 0..25_000 {
                    hits.fetch_add(1);
                }
            })
        })
        .collect();
    run_all(kids)?;
    println!(
        "Value<u64>: 4 processes x 25,000 fetch_add = {}",
        hits.load()
    );

    // Value with its lock: a pair that must stay consistent.
    let pair = Value::new([0u64; 2])?;
    let kids = (0..4)
        .map(|_| {
            let pair = pair.clone();
            Process::new(move || {
                for _ in 0..1_000 {
                    let mut g = pair.get_lock().unwrap_or_else(|d| d.into_guard());
                    g[0] += 1;
                    g[1] += 2;
                }
            })
        })
        .collect();
    run_all(kids)?;
    println!("Value<[u64; 2]> under get_lock(): {:?}", pair.get());

    // Array: a child doubles it in place.
    let xs = Array::from_slice(&[1u32, 2, 3, 4, 5])?;
    let ys = xs.clone();
    run_all(vec![Process::new(move || {
        ys.get_lock()
            .unwrap_or_else(|d| d.into_guard())
            .iter_mut()
            .for_each(|x| *x *= 2);
    })])?;
    println!("Array<u32> after a child doubled it: {:?}", xs.to_vec());

    // SharedDict: ten buyers, three tickets, one atomic read-modify-write each.
    let db = SharedDict::new()?;
    db.insert(b"tickets", &3u64.to_le_bytes())?;
    let buyers = (0..10)
        .map(|i| {
            let db = db.clone();
            Process::new(move || {
                let mut bought = false;
                db.update_with(b"tickets", |v| {
                    let n = u64::from_le_bytes(v?.try_into().ok()?);
                    std::thread::sleep(Duration::from_millis(2));
                    bought = n > 0;
                    Some(n.saturating_sub(1).to_le_bytes().to_vec())
                })
                .expect("value fits");
                if bought {
                    println!("  buyer {i} got a ticket");
                }
            })
        })
        .collect();
    run_all(buyers)?;
    let left = u64::from_le_bytes(
        db.get(b"tickets")?
            .unwrap_or_default()
            .try_into()
            .unwrap_or([0; 8]),
    );
    println!("SharedDict: {left} tickets left after 10 buyers");

    // SharedMemory: a named segment, attached by name.
    let seg = SharedMemory::create(None, 64)?;
    let name = seg.name().to_string();
    run_all(vec![Process::new(move || {
        let peer = SharedMemory::open(&name).expect("attach by name");
        peer.write(0, b"hello from a child").expect("in bounds");
    })])?;
    let mut buf = [0u8; 18];
    seg.read(0, &mut buf)?;
    println!(
        "SharedMemory {:?} ({} bytes): {:?}",
        seg.name(),
        seg.size(),
        String::from_utf8_lossy(&buf)
    );
    seg.unlink()?;
    let expected = (100_000, [4_000, 8_000], vec![2, 4, 6, 8, 10], 0);
    if (hits.load(), pair.get(), xs.to_vec(), left) != expected || &buf != b"hello from a child" {
        return Err("a shared object lost an update".into());
    }
    println!(
        "cleanup_orphans(): {} leaked segment(s) of dead creators removed",
        cleanup_orphans()?.len()
    );
    Ok(())
}
