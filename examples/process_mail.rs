//! Sending ten mails in parallel: start every process first, then join them all.
//!
//! Ported from the tutorial "Process之join、daemon、terminate" (send ten mails): in Python,
//! `p.start()` for each of ten `Process(target=func, args=(i,))`, then `p.join()` for each,
//! then "all 10 mails sent". Here the delay of each mail is 100-300 ms.
//!
//! Run it with `cargo run --example process_mail`.

use shmproc::process::{current_process, Process};
use std::time::{Duration, Instant};

/// Sends mail `index` (pretends to: waits a little, like a slow mail server).
fn send_mail(index: u32) {
    // A pseudo-random delay of 100-300 ms, different in every process.
    let delay = 100 + (std::process::id().wrapping_mul(2654435761) >> 7) % 201;
    std::thread::sleep(Duration::from_millis(u64::from(delay)));
    println!(
        "mail {index} sent by {} after {delay} ms",
        current_process().name()
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let t = Instant::now();
    let mut mails = Vec::new();
    for i in 0..10 {
        let mut p = Process::new(move || send_mail(i));
        p.start()?; // start them all first ...
        mails.push(p);
    }
    for p in &mails {
        let code = p.join()?; // ... then wait for each
        assert_eq!(code, 0, "{} failed", p.name());
    }
    println!(
        "all 10 mails sent in {:?} (in parallel: not the sum of the delays)",
        t.elapsed()
    );
    Ok(())
}
