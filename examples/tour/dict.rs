//! Tour part: SharedDict, TypedDict and SerdeDict across real processes: Python's
//! `Manager().dict()` with no manager process.

use shmproc::{Event, Process, SerdeDict, SharedDict, TypedDict};

/// Starts every process, then joins them all; each must exit with 0.
fn run_all(mut ps: Vec<Process>) -> super::Res {
    for p in &mut ps {
        p.start()?;
    }
    ps.iter().try_for_each(super::join)
}

/// The value a writer stores under key `k`: `[k, !k, k * k]`, so that any reader can
/// tell a whole value from a torn or foreign one.
fn val(k: u64) -> [u64; 3] {
    [k, !k, k.wrapping_mul(k)]
}

pub fn run() -> super::Res {
    // Four processes insert at once; the dict grows from empty to 100,000 entries.
    let squares = TypedDict::<u64, u64>::new()?;
    let kids = (0..4u64)
        .map(|p| {
            let squares = squares.clone();
            Process::new(move || {
                for k in (p * 25_000)..(p + 1) * 25_000 {
                    squares.insert(&k, &(k * k)).expect("the arena grows");
                }
            })
        })
        .collect();
    run_all(kids)?;
    let all_there = (0..100_000u64).all(|k| squares.get(&k) == Ok(Some(k * k)));
    println!(
        "TypedDict<u64, u64>: 4 processes x 25,000 inserts = {} entries (index of {}), \
         each with its value: {all_there}",
        squares.len(),
        squares.capacity()
    );
    if !all_there || squares.len() != 100_000 {
        return Err("an insert was lost".into());
    }

    // Python's dict methods, in a child; the parent sees the result.
    let d = SharedDict::new()?;
    d.update([(&b"a"[..], &b"1"[..]), (b"b", b"2"), (b"c", b"3")])?;
    let child = d.clone();
    run_all(vec![Process::new(move || {
        assert_eq!(child.setdefault(b"d", b"4").unwrap(), b"4"); // d.setdefault('d', '4')
        assert_eq!(child.pop(b"a"), Ok(Some(b"1".to_vec()))); // d.pop('a')
        child.insert(b"b", b"two").unwrap(); // d['b'] = 'two'
        assert_eq!(child.contains_key(b"c"), Ok(true)); // 'c' in d
    })])?;
    let mut items = d.items()?;
    items.sort();
    let show: Vec<_> = items
        .iter()
        .map(|(k, v)| {
            format!(
                "{}: {}",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(v)
            )
        })
        .collect();
    println!(
        "after a child's setdefault('d'), pop('a'), d['b'] = 'two': {{{}}}",
        show.join(", ")
    );
    if show != ["b: two", "c: 3", "d: 4"] {
        return Err("the child's edits are not what the parent sees".into());
    }

    // Keys and values of any size: an empty key, a 1 MiB value.
    let blobs = SharedDict::new()?;
    let writer = blobs.clone();
    run_all(vec![Process::new(move || {
        writer.insert(b"", &vec![0xAB; 1 << 20]).unwrap();
        writer.insert(b"empty", b"").unwrap();
    })])?;
    let big = blobs.get(b"")?.ok_or("the 1 MiB value is missing")?;
    let empty = blobs.get(b"empty")?;
    println!(
        "SharedDict: d[b''] is {} bytes, all 0xAB: {}; d[b'empty'] = {:?}",
        big.len(),
        big.iter().all(|&b| b == 0xAB),
        empty
    );
    if big != vec![0xAB; 1 << 20] || empty != Some(Vec::new()) {
        return Err("a value of any size came back different".into());
    }

    // Any serde types.
    let people = SerdeDict::<String, Vec<String>>::new()?;
    let writer = people.clone();
    run_all(vec![Process::new(move || {
        writer
            .insert(&"ada".into(), &vec!["charles".into(), "mary".into()])
            .unwrap();
    })])?;
    println!(
        "SerdeDict<String, Vec<String>>: people['ada'] = {:?}",
        people.get(&"ada".into())?
    );

    // A writer killed (SIGKILL) while it inserts, replaces and removes: the dict stays
    // whole, and the next writer takes the lock over.
    let table = TypedDict::<u64, [u64; 3]>::new()?;
    let going = Event::new()?;
    let mut victim = {
        let (table, going) = (table.clone(), going.clone());
        Process::new(move || {
            for i in 0u64.. {
                table.insert(&i, &val(i)).unwrap();
                table.insert(&(i / 2), &val(i / 2)).unwrap(); // a new value, same bytes
                if i % 3 == 0 {
                    table.remove(&(i / 3)).unwrap();
                }
                if i == 10_000 {
                    going.set();
                }
            }
        })
    };
    victim.start()?;
    going.wait();
    victim.kill()?;
    let code = victim.join()?;
    table.insert(&u64::MAX, &val(u64::MAX))?; // takes the lock over if need be
    let items = table.items()?;
    let whole = items.iter().all(|(k, v)| *v == val(*k));
    println!(
        "a writer killed mid-insert (exit code {code}): {} entries, all whole: {whole}",
        items.len()
    );
    if !whole || code != -9 || items.len() != table.len() {
        return Err("the killed writer left the dict torn".into());
    }
    Ok(())
}
