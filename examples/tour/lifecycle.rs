//! Tour part: the arena's lifecycle: objects are freed with their last handle (in every
//! process, a killed one included), and the arena grows when it is full.

use shmproc::{Arena, Array, Lock, Queue};

pub fn run() -> super::Res {
    // Make and drop objects in a loop: the memory goes back each time.
    let arena = Arena::anonymous(1 << 20)?;
    let base = arena.used();
    for _ in 0..10_000 {
        let q = Queue::<u64>::new_in(&arena, 64)?;
        let l = Lock::new_in(&arena)?;
        q.put(1)?;
        drop((q, l));
    }
    println!(
        "20,000 objects made and dropped: {} bytes in use before, {} after",
        base,
        arena.used()
    );
    assert_eq!(arena.used(), base);

    // A child that is killed while it holds the only handle to a queue: the parent
    // sweeps it when it joins, and the queue's memory comes back.
    let ready = Queue::<u64>::new_in(&arena, 1)?;
    let child = {
        let (arena, ready) = (arena.clone(), ready.clone());
        super::spawn(move || {
            let mine = Queue::<u64>::new_in(&arena, 4096).unwrap();
            mine.put(7).unwrap();
            ready.put(1).unwrap();
            loop {
                std::thread::park(); // until killed
            }
        })?
    };
    ready.get()?; // the child has made its queue
    drop(ready);
    let during = arena.used();
    child.kill()?;
    child.join()?;
    println!(
        "a child killed holding a 4096-slot queue: {during} bytes in use before, {} after it \
         was swept ({} process swept)",
        arena.used(),
        arena.stats().swept
    );
    assert_eq!(arena.used(), base);

    // The arena grows: a 64 MiB array in an arena made at 1 MiB.
    let before = arena.size();
    let big = Array::<u64>::new_in(&arena, 8 << 20)?;
    big.set((8 << 20) - 1, 42)?;
    println!(
        "an arena of {} KiB grew to {} MiB for a 64 MiB Array (limit {} GiB)",
        before >> 10,
        arena.size() >> 20,
        arena.limit() >> 30
    );
    Ok(())
}
