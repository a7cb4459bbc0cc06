//! A peer that scribbles on a queue's shared state makes calls fail, never read or write
//! out of bounds.

use super::core::SLOTS_OFFSET;
use super::{ByteQueue, GetError, PutError, Queue};
use crate::Arena;

fn word(base: *mut u8, offset: usize) -> *mut u64 {
    // `wrapping_add`: computing the address is safe; each caller's write says why it is
    // inside the queue's block.
    base.wrapping_add(offset).cast()
}

fn arena() -> Arena {
    Arena::anonymous(1 << 20).unwrap()
}

const HEAD: usize = 0;
const TAIL: usize = 128;

#[test]
fn head_index_out_of_range_is_corrupt() {
    let q = Queue::<u64>::new_in(&arena(), 4).unwrap();
    q.put(1).unwrap();
    let base = q.core_for_tests().base_for_tests();
    // cap 4: mark_bit 8, so index 5 fits the mask but is not a slot.
    // SAFETY: the head word is at offset 0 of the block; written like a hostile peer.
    unsafe { word(base, HEAD).write_volatile(5) };
    assert_eq!(q.try_get(), Err(GetError::Corrupt));
    assert_eq!(q.get(), Err(GetError::Corrupt));
    assert!(q.qsize() <= 4);
}

#[test]
fn tail_index_out_of_range_is_corrupt() {
    let q = Queue::<u64>::new_in(&arena(), 4).unwrap();
    let base = q.core_for_tests().base_for_tests();
    // SAFETY: the tail word is at offset 128 of the block.
    unsafe { word(base, TAIL).write_volatile(7) };
    assert_eq!(q.try_put(1), Err(PutError::Corrupt(1)));
    assert_eq!(q.put(2), Err(PutError::Corrupt(2)));
    assert!(q.qsize() <= 4);
}

#[test]
fn impossible_stamp_is_corrupt() {
    let q = Queue::<u64>::new_in(&arena(), 4).unwrap();
    let base = q.core_for_tests().base_for_tests();
    // Slot 0's stamp with index field 3: no state of slot 0 has that.
    // SAFETY: slot 0's stamp is the first word of the slot array.
    unsafe { word(base, SLOTS_OFFSET).write_volatile(3) };
    assert_eq!(q.try_put(1), Err(PutError::Corrupt(1)));
    assert_eq!(q.try_get(), Err(GetError::Corrupt));
}

#[test]
fn stamp_of_an_impossible_lap_is_corrupt_not_a_hang() {
    let q = Queue::<u64>::new_in(&arena(), 4).unwrap();
    let base = q.core_for_tests().base_for_tests();
    // Index field 0 (fits slot 0), but lap 5: a producer would retry forever.
    // SAFETY: as above.
    unsafe { word(base, SLOTS_OFFSET).write_volatile(5 * 16) };
    assert_eq!(q.try_put(1), Err(PutError::Corrupt(1)));
}

#[test]
fn impossible_message_length_is_corrupt_and_the_queue_goes_on() {
    let q = ByteQueue::new_in(&arena(), 4, 16).unwrap();
    q.put_bytes(b"first").unwrap();
    q.put_bytes(b"second").unwrap();
    let base = q.core_for_tests().base_for_tests();
    // Slot 0's meta (the length) at offset 8 of the slot: far beyond the maximum.
    // SAFETY: inside slot 0.
    unsafe {
        base.add(SLOTS_OFFSET + 8)
            .cast::<u32>()
            .write_volatile(1 << 30)
    };
    assert_eq!(q.get_bytes(), Err(GetError::Corrupt));
    assert_eq!(q.get_bytes().unwrap(), b"second");
}

/// Offsets of the sleep / wake words in the block (`ring::Wake`, on the third line).
const NOT_EMPTY: usize = 256;
const GET_WAITERS: usize = 260;
const NOT_FULL: usize = 264;
const PUT_WAITERS: usize = 268;

/// Registers one party in the waiter count at `count`, as `Waiters::register` would (the
/// party never sleeps: it stands for one asleep, or on its way out of the kernel).
fn register_one(base: *mut u8, count: usize) {
    // SAFETY: `count` is the offset of a waiter count, a u32 of the block's wake line.
    unsafe { word(base, count).cast::<u32>().write_volatile(1) };
}

/// The futex word at `futex` (its bumps) and the waiter count at `count`.
fn wake_state(base: *mut u8, futex: usize, count: usize) -> (u32, u32) {
    // SAFETY: both offsets are u32s of the block's wake line.
    unsafe {
        (
            word(base, futex).cast::<u32>().read_volatile(),
            word(base, count).cast::<u32>().read_volatile(),
        )
    }
}

/// A party registered to sleep is woken once, not by every claim made before it leaves:
/// with one consumer registered (as if asleep, or on its way out of the kernel), ten puts
/// bump the futex word once and leave one signal out; the consumer's leave takes it.
/// (Before `Waiters`, each of the ten woke again: ten bumps, ten `futex_wake` calls.)
#[test]
fn a_registered_consumer_is_woken_once() {
    let q = Queue::<u64>::new_in(&arena(), 16).unwrap();
    let base = q.core_for_tests().base_for_tests();
    register_one(base, GET_WAITERS);
    for v in 0..10 {
        q.put(v).unwrap();
    }
    let (bumps, count) = wake_state(base, NOT_EMPTY, GET_WAITERS);
    assert_eq!(bumps, 1, "one wake-up for one waiting consumer");
    assert_eq!(count, 1 << 16, "no consumer waiting, one signal out");
    // Every message is there, in order: the signals cost nothing.
    for v in 0..10 {
        assert_eq!(q.try_get(), Ok(v));
    }
}

/// The same on the producer side: one registered producer, ten slots released, one
/// wake-up.
#[test]
fn a_registered_producer_is_woken_once() {
    let q = Queue::<u64>::new_in(&arena(), 16).unwrap();
    let base = q.core_for_tests().base_for_tests();
    for v in 0..10 {
        q.put(v).unwrap();
    }
    register_one(base, PUT_WAITERS);
    for v in 0..10 {
        assert_eq!(q.get(), Ok(v));
    }
    let (bumps, count) = wake_state(base, NOT_FULL, PUT_WAITERS);
    assert_eq!(bumps, 1);
    assert_eq!(count, 1 << 16);
}

/// A claim that saw a party waiting, whose party left (woken by another claim, or timed
/// out) before the claim ended: the publish signals nobody and makes no wake-up.
#[test]
fn a_waiter_that_left_before_the_publish_is_not_woken() {
    let q = Queue::<u64>::new_in(&arena(), 16).unwrap();
    let base = q.core_for_tests().base_for_tests();
    register_one(base, GET_WAITERS);
    let mut loan = q.try_put_loan().unwrap();
    *loan = 9;
    // The party leaves between the claim (which saw it) and the commit.
    // SAFETY: GET_WAITERS is a u32 of the block's wake line (see `register_one`).
    unsafe { word(base, GET_WAITERS).cast::<u32>().write_volatile(0) };
    loan.commit();
    assert_eq!(wake_state(base, NOT_EMPTY, GET_WAITERS), (0, 0));
    assert_eq!(q.try_get(), Ok(9));
}
