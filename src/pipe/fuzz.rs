//! Fuzz entry point (not public API: compiled only for tests and `cfg(fuzzing)`).
//!
//! [`ring`] builds a ring whose shared indices, caches, state and buffer bytes (so frame
//! headers too) come from the input, then runs a script of consumer and producer
//! operations from the rest of the input, scribbling on the indices between them as a
//! hostile peer could. Every operation must return (no wait can block: the watch reports
//! the peer gone at once) and the buffer's guard bytes must be intact: hostile state gives
//! errors, never out-of-bounds access.

use crate::raw::spsc::{Buf, ByteRing, ByteRingError, MAX_MESSAGE};
use crate::sync::liveness::Scripted;
use crate::sync::spin::SpinPolicy;
use std::time::Instant;

const GUARD: usize = 64;
const CANARY: u8 = 0xA5;

use crate::fuzz::Input;

/// Runs one fuzz case. Panics only if an invariant is broken (guard bytes overwritten,
/// a message longer than the limit accepted).
pub fn ring(data: &[u8]) {
    let mut inp = Input(data);
    let cap = 1u32 << (5 + inp.u8() % 6); // 32 ..= 1024
    let ring = Box::new(ByteRing::new());
    let (tail, head, head_cache) = (inp.u32(), inp.u32(), inp.u32());
    let _ = inp.u32(); // (was the consumer's cached tail; kept so the corpus means the same)
    ring.scribble(tail, head, head_cache, inp.u32());
    // The buffer, with guard bytes on both sides, 8-aligned (chunk headers are atomics).
    let mut words = vec![u64::from_ne_bytes([CANARY; 8]); (cap as usize + 2 * GUARD) / 8];
    let mem: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
    for b in mem[GUARD..GUARD + cap as usize].iter_mut() {
        *b = inp.u8();
    }
    // SAFETY: `mem[GUARD..GUARD + cap]` is valid for reads and writes while `buf` lives
    // (both are dropped at the end of this function, `buf` first) and 8-aligned (a `u64`
    // allocation, GUARD a multiple of 8); cap is a power of two in range; only the ring
    // code below touches it.
    let buf = unsafe { Buf::from_raw(mem.as_mut_ptr().add(GUARD), cap) };
    let spin = SpinPolicy::NEVER;
    let past = Some(Instant::now());
    let mut ops = 0;
    while !inp.0.is_empty() && ops < 64 {
        ops += 1;
        let result = match inp.u8() % 7 {
            0 => ring.peek(&buf, past, spin, &gone()).map(drop),
            1 => {
                let max = u64::from(inp.u32());
                ring.recv_vec(&buf, max, past, spin, &gone()).map(|v| {
                    assert!(v.len() as u64 <= max && v.len() as u64 <= MAX_MESSAGE);
                })
            }
            2 => ring.poll(&buf, past, spin, &gone()).map(drop),
            3 => {
                let len = usize::from(inp.u8()) * 7;
                let payload = vec![0x5Au8; len];
                ring.send(&buf, len as u64, &mut payload.as_slice(), spin, &gone())
            }
            4 => {
                let (t, h) = (inp.u32(), inp.u32());
                let hc = inp.u32();
                let _ = inp.u32();
                ring.scribble(t, h, hc, u32::from(inp.u8()) & 7);
                Ok(())
            }
            5 => {
                let mut out = vec![0u8; usize::from(inp.u8())];
                match ring.peek(&buf, past, spin, &gone()) {
                    Ok(len) if len <= out.len() as u64 => {
                        let mut dst = &mut out[..len as usize];
                        ring.recv_peeked(&buf, len, &mut dst, past, spin, &gone())
                    }
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            _ => {
                let len = u64::from(inp.u32()) << (inp.u8() % 32);
                ring.send(&buf, len, &mut [].as_slice(), spin, &gone())
            }
        };
        match result {
            Ok(())
            | Err(ByteRingError::Timeout)
            | Err(ByteRingError::Eof)
            | Err(ByteRingError::BrokenPipe)
            | Err(ByteRingError::Broken)
            | Err(ByteRingError::Corrupt(_))
            | Err(ByteRingError::TooLong { .. })
            | Err(ByteRingError::TimeoutMidMessage(_)) => {}
        }
    }
    assert!(
        mem[..GUARD].iter().all(|b| *b == CANARY),
        "ring wrote before its buffer"
    );
    assert!(
        mem[GUARD + cap as usize..].iter().all(|b| *b == CANARY),
        "ring wrote past its buffer"
    );
}

/// Who waits: a process whose peer is always gone, looked at once, so every wait ends.
fn gone() -> Scripted {
    Scripted::alive(1).peer_gone()
}
