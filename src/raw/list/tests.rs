//! Unit tests of the list algorithm over a private heap (`HeapBlocks`): a model of
//! Python's list under random operations, a writer stopped before each of its stores in
//! turn (every operation), hostile bytes, and the index arithmetic.

use super::*;
use crate::raw::owned::HeapBlocks;
use crate::sync::liveness::Scripted;

/// Where the list's state sits in the heap's first 4 KiB.
const STATE: u64 = 128;

fn fresh(g: ListGeometry) -> HeapBlocks {
    let b = HeapBlocks::new(1 << 20);
    raw(&b).geometry.store(g.to_word(), Ordering::Relaxed);
    b
}

fn raw(b: &HeapBlocks) -> &RawList {
    b.state(STATE)
}

fn core(b: &HeapBlocks, who: Scripted) -> ListCore<'_, HeapBlocks, Scripted> {
    ListCore::new(raw(b), b, who).unwrap()
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// An index in `-(len + extra)..len + extra`.
    fn index(&mut self, len: usize, extra: usize) -> i64 {
        let span = 2 * (len + extra) as u64;
        self.below(span) as i64 - (len + extra) as i64
    }
}

/// Element number `n` of a list of geometry `g`: of the fixed size, or (byte lists) of
/// sizes on both sides of the inline limit, large ones now and then.
fn element(g: ListGeometry, n: u64) -> Vec<u8> {
    let len = if g.bytes {
        [0usize, 3, 8, 23, 24, 25, 40, 200, 3000][(n % 9) as usize]
    } else {
        g.elem as usize
    };
    (0..len)
        .map(|i| (n.wrapping_mul(31) as usize).wrapping_add(i * 7) as u8)
        .collect()
}

/// Python's `list[i]` position.
fn py_index(i: i64, len: usize) -> Option<usize> {
    let j = if i < 0 { i + len as i64 } else { i };
    (0..len as i64).contains(&j).then_some(j as usize)
}

fn blocks_of(g: ListGeometry, m: &[Vec<u8>]) -> u64 {
    if g.bytes {
        m.iter().filter(|e| e.len() > g.elem as usize).count() as u64
    } else {
        0
    }
}

/// The list against a `Vec` under random operations; the heap holds exactly the chunks
/// and the element blocks after each; everything is freed by `clear` and the finalizer.
fn matches_a_vec(g: ListGeometry, seed: u64) {
    let b = fresh(g);
    let l = core(&b, Scripted::alive(1));
    let mut m: Vec<Vec<u8>> = Vec::new();
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    for step in 0..3000u64 {
        let e = element(g, rng.next());
        match rng.below(20) {
            0..=5 => {
                l.push(&e).unwrap();
                m.push(e);
            }
            6 => match (l.pop_at(-1, &mut out), m.pop()) {
                (Ok(()), Some(v)) => assert_eq!(out, v),
                (Err(ListError::Empty), None) => {}
                r => panic!("pop: {r:?}"),
            },
            7 => {
                let i = rng.index(m.len(), 2);
                match (l.pop_at(i, &mut out), py_index(i, m.len())) {
                    (Ok(()), Some(j)) => assert_eq!(out, m.remove(j)),
                    (Err(ListError::Empty), _) => assert!(m.is_empty()),
                    (Err(ListError::IndexOutOfRange { index, len }), None) => {
                        assert_eq!((index, len), (i, m.len() as u64))
                    }
                    r => panic!("pop_at({i}): {r:?}"),
                }
            }
            8 | 9 => {
                let i = rng.index(m.len(), 3);
                l.insert(i, &e).unwrap();
                m.insert(insert_position(i, m.len() as u64) as usize, e);
            }
            10 | 11 => {
                let i = rng.index(m.len(), 1);
                match (l.set(i, &e), py_index(i, m.len())) {
                    (Ok(()), Some(j)) => m[j] = e,
                    (Err(ListError::IndexOutOfRange { .. }), None) => {}
                    r => panic!("set({i}): {r:?}"),
                }
            }
            12 => {
                let v = match m.len() {
                    0 => e,
                    n => m[rng.below(n as u64) as usize].clone(),
                };
                match (l.remove(&v), m.iter().position(|x| *x == v)) {
                    (Ok(i), Some(j)) => {
                        assert_eq!(i as usize, j);
                        m.remove(j);
                    }
                    (Err(ListError::NotFound), None) => {}
                    r => panic!("remove: {r:?}"),
                }
            }
            13 | 14 => {
                let i = rng.index(m.len(), 1);
                match (l.get(i, &mut out), py_index(i, m.len())) {
                    (Ok(()), Some(j)) => assert_eq!(out, m[j]),
                    (Err(ListError::IndexOutOfRange { .. }), None) => {}
                    r => panic!("get({i}): {r:?}"),
                }
            }
            15 => {
                let v = element(g, rng.next());
                let want = m.iter().position(|x| *x == v);
                assert_eq!(l.index(&v).ok(), want.map(|j| j as u64));
                let count = m.iter().filter(|x| **x == v).count() as u64;
                assert_eq!(l.count(&v), Ok(count));
            }
            16 | 17 => {
                let (a, z) = (rng.index(m.len(), 2), rng.index(m.len(), 2));
                let (s, t) = span(&(a..z), m.len() as u64);
                assert_eq!(l.slice(&(a..z)).unwrap(), m[s as usize..t as usize]);
            }
            18 => {
                l.extend([&e, &e]).unwrap();
                m.extend([e.clone(), e]);
            }
            _ if step % 7 == 0 => {
                l.clear().unwrap();
                m.clear();
                assert_eq!(b.allocated(), 0, "clear frees every block");
            }
            _ => {}
        }
        assert_eq!(l.len(), m.len() as u64);
        let a = l.audit().unwrap();
        assert_eq!(a.element_blocks, blocks_of(g, &m), "step {step}");
        assert_eq!(b.allocated(), a.chunks + a.element_blocks, "step {step}");
    }
    assert_eq!(l.slice(&(..)).unwrap(), m);
    raw(&b).finalize(&b);
    assert_eq!(b.allocated(), 0, "the finalizer frees every block");
    raw(&b).finalize(&b);
    assert_eq!(b.allocated(), 0, "and may run again");
}

#[test]
fn byte_list_matches_a_vec() {
    matches_a_vec(ListGeometry::bytes(24).unwrap(), 0x9e37_79b9_7f4a_7c15);
}

#[test]
fn fixed_lists_match_a_vec() {
    for (size, seed) in [(8, 1), (12, 2), (16, 3), (0, 4), (100, 5)] {
        matches_a_vec(
            ListGeometry::fixed(size).unwrap(),
            seed * 0x2545_f491_4f6c_dd1d,
        );
    }
}

#[test]
fn plain_data_reads_and_writes() {
    let g = ListGeometry::fixed(8).unwrap();
    let b = fresh(g);
    let l = core(&b, Scripted::alive(1));
    for i in 0..1000u64 {
        l.push(&i.to_le_bytes()).unwrap();
    }
    assert_eq!(l.get_pod::<u64>(-1), Ok(999));
    assert_eq!(l.get_pod_locked::<u64>(500), Ok(500));
    l.set_pod(3, &7u64).unwrap();
    assert_eq!(l.get_pod::<u64>(3), Ok(7));
    assert_eq!(l.slice_pod::<u64>(&(-3..)), Ok(vec![997, 998, 999]));
    assert!(matches!(
        l.get_pod::<u32>(0),
        Err(ListError::WrongSize {
            len: 4,
            expected: 8
        })
    ));
    assert!(matches!(
        l.push(&[1, 2, 3]),
        Err(ListError::WrongSize { .. })
    ));
    assert_eq!(
        l.get_pod::<u64>(1000),
        Err(ListError::IndexOutOfRange {
            index: 1000,
            len: 1000
        })
    );
    // 1000 u64: chunks of 32, 64, ..., 1024 slots (the sixth holds 8).
    assert_eq!(raw(&b).chunk_count(), 6);
    for _ in 0..1000 {
        l.pop_at(-1, &mut Vec::new()).unwrap();
    }
    assert_eq!(raw(&b).chunk_count(), 1, "one spare chunk is kept");
    assert_eq!(l.pop_at(-1, &mut Vec::new()), Err(ListError::Empty));
}

#[test]
fn large_elements_have_blocks_of_their_own() {
    let g = ListGeometry::bytes(24).unwrap();
    let b = HeapBlocks::new(8 << 20);
    raw(&b).geometry.store(g.to_word(), Ordering::Relaxed);
    let l = core(&b, Scripted::alive(1));
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 13) as u8).collect();
    l.push(&big).unwrap();
    l.push(b"small").unwrap();
    l.insert(0, &big[..100_001]).unwrap();
    let mut out = Vec::new();
    l.get(1, &mut out).unwrap();
    assert!(out == big);
    l.get(0, &mut out).unwrap();
    assert_eq!(out, big[..100_001]);
    l.set(-1, &big[5..]).unwrap();
    l.get(2, &mut out).unwrap();
    assert_eq!(out, big[5..]);
    assert_eq!(l.audit().unwrap().element_blocks, 3);
    raw(&b).finalize(&b);
    assert_eq!(b.allocated(), 0);
}

// ---------------------------------------------------------------------------------------
// A writer stopped before each of its stores.

#[derive(Debug, Clone, Copy)]
enum Op {
    Push(u64),
    Pop,
    PopAt(i64),
    Insert(i64, u64),
    Set(i64, u64),
    Remove(usize),
    Extend(u64),
    Clear,
}

impl Op {
    fn run(self, l: &ListCore<'_, HeapBlocks, Scripted>, m: &[Vec<u8>]) -> Result<(), ListError> {
        let g = l.geometry();
        match self {
            Op::Push(n) => l.push(&element(g, n)),
            Op::Pop => l.pop_at(-1, &mut Vec::new()),
            Op::PopAt(i) => l.pop_at(i, &mut Vec::new()),
            Op::Insert(i, n) => l.insert(i, &element(g, n)),
            Op::Set(i, n) => l.set(i, &element(g, n)),
            Op::Remove(j) => l.remove(&m[j]).map(drop),
            Op::Extend(n) => l.extend([element(g, n), element(g, n + 1)]).map(drop),
            Op::Clear => l.clear(),
        }
    }

    fn apply(self, g: ListGeometry, m: &mut Vec<Vec<u8>>) {
        let at = |i: i64, len: usize| py_index(i, len).unwrap();
        match self {
            Op::Push(n) => m.push(element(g, n)),
            Op::Pop => drop(m.pop()),
            Op::PopAt(i) => drop(m.remove(at(i, m.len()))),
            Op::Insert(i, n) => {
                let j = insert_position(i, m.len() as u64) as usize;
                m.insert(j, element(g, n));
            }
            Op::Set(i, n) => {
                let j = at(i, m.len());
                m[j] = element(g, n);
            }
            Op::Remove(j) => {
                let v = m[j].clone();
                let first = m.iter().position(|x| *x == v).unwrap();
                m.remove(first);
            }
            Op::Extend(n) => m.extend([element(g, n), element(g, n + 1)]),
            Op::Clear => m.clear(),
        }
    }
}

/// A list of `len` elements, built past `len` and popped back so that chunk
/// `chunk_of(len) + 1` is allocated (a pop to a chunk boundary then frees one).
fn build(b: &HeapBlocks, len: u64) -> Vec<Vec<u8>> {
    let l = core(b, Scripted::alive(9));
    let g = l.geometry();
    let (k, _) = g.locate(len).unwrap();
    let mut m = Vec::new();
    for n in 0..g.chunk_start(k + 2) + 1 {
        l.push(&element(g, n)).unwrap();
        m.push(element(g, n));
    }
    while m.len() as u64 > len {
        l.pop_at(-1, &mut Vec::new()).unwrap();
        m.pop();
    }
    m
}

/// Runs `op` on a list of `len` elements, stopped before its k-th store for every k: a
/// survivor then finds the list as it was before or after `op` (never in between), with
/// exactly the blocks it needs, keeps using it, and the finalizer frees everything.
fn killed_at_every_store(g: ListGeometry, len: u64, op: Op) {
    let mut k = 0;
    loop {
        let b = fresh(g);
        let before = build(&b, len);
        let mut after = before.clone();
        op.apply(g, &mut after);
        let team = Scripted::team(2, true);
        let hook = CrashAfter::new(k);
        let doomed = core(&b, team[0].clone()).with_crash(&hook);
        let r = op.run(&doomed, &before);
        let crashed = hook.crashed();
        if crashed {
            team[0].kill(1);
        } else {
            r.unwrap();
        }
        let l = core(&b, team[1].clone());
        let a = l.audit().unwrap();
        let now = l.slice(&(..)).unwrap();
        // An extend appends element by element: a prefix of what it appends.
        let partial = matches!(op, Op::Extend(_))
            && now.len() > before.len()
            && now[..] == after[..now.len()];
        assert!(
            now == before || now == after || partial,
            "{op:?}, stopped at store {k}: the list is neither before nor after"
        );
        assert!(crashed || now == after, "{op:?} finished: {k}");
        assert_eq!(
            b.allocated(),
            a.chunks + a.element_blocks,
            "{op:?} stopped at store {k}: blocks leaked or lost"
        );
        assert_eq!(a.element_blocks, blocks_of(g, &now));
        assert_eq!(raw(&b).flight.blocks(), [0, 0]);
        assert_eq!(raw(&b).journal.load(Ordering::Relaxed), J_NONE);
        assert_eq!(raw(&b).repairs(), u64::from(crashed));
        // The survivor carries on.
        l.push(&element(g, 77)).unwrap();
        l.insert(0, &element(g, 78)).unwrap();
        assert_eq!(l.pop_at(0, &mut Vec::new()), Ok(()));
        raw(&b).finalize(&b);
        assert_eq!(b.allocated(), 0, "{op:?} stopped at store {k}: finalizer");
        if !crashed {
            assert!(k > 0, "{op:?} stored nothing");
            return;
        }
        k += 1;
    }
}

fn every_operation_killed_anywhere(g: ListGeometry) {
    // 25 elements: chunk 2 of a byte list starts at 24, of a 16-byte fixed list at 48.
    let len = 25;
    for op in [
        Op::Push(3),
        Op::Push(7),
        Op::Pop,
        Op::PopAt(1),
        Op::PopAt(-2),
        Op::Insert(1, 6),
        Op::Insert(-3, 8),
        Op::Insert(100, 6),
        Op::Set(2, 6),
        Op::Set(-1, 1),
        Op::Remove(6),
        Op::Extend(6),
        Op::Clear,
    ] {
        killed_at_every_store(g, len, op);
    }
}

#[test]
fn byte_list_writer_killed_at_every_store() {
    every_operation_killed_anywhere(ListGeometry::bytes(24).unwrap());
}

#[test]
fn fixed_list_writer_killed_at_every_store() {
    every_operation_killed_anywhere(ListGeometry::fixed(16).unwrap());
    every_operation_killed_anywhere(ListGeometry::fixed(8).unwrap());
}

/// The finalizer of a list whose writer died mid-operation finishes it first (no block
/// named twice), and may itself be cut short and run again.
#[test]
fn finalizer_after_a_dead_writer() {
    let g = ListGeometry::bytes(24).unwrap();
    for k in [3, 8, 15, 30, 60] {
        let b = fresh(g);
        let m = build(&b, 25);
        let hook = CrashAfter::new(k);
        let doomed = core(&b, Scripted::alive(1)).with_crash(&hook);
        let _ = Op::Remove(4).run(&doomed, &m);
        assert!(hook.crashed());
        raw(&b).finalize(&b);
        assert_eq!(b.allocated(), 0, "k = {k}");
    }
}

// ---------------------------------------------------------------------------------------
// Hostile bytes.

/// A peer overwrites the list's state (all but its lock word) and its chunks with random
/// words and offsets: every operation returns, with a value or an error.
#[test]
fn survives_a_peer_scribbling_on_it() {
    for (round, g) in (0..60).zip(
        [
            ListGeometry::bytes(24).unwrap(),
            ListGeometry::fixed(8).unwrap(),
            ListGeometry::fixed(24).unwrap(),
        ]
        .into_iter()
        .cycle(),
    ) {
        let b = fresh(g);
        build(&b, 30);
        let mut rng = Rng(0xdead_beef_0000_0001 + round);
        let garbage = |rng: &mut Rng| match rng.below(5) {
            0 => rng.next(),
            1 => rng.below(1 << 20) & !7,
            2 => OUT | rng.below(1 << 16),
            3 => rng.below(64),
            _ => 0,
        };
        // The state from `seq` on (the geometry too, now and then).
        let words = b.words(
            STATE + 16,
            (core::mem::size_of::<RawList>() as u64 - 16) / 8,
        );
        for (i, w) in words.unwrap().iter().enumerate() {
            if (i != 6 || round % 5 == 0) && rng.below(3) == 0 {
                w.store(garbage(&mut rng), Ordering::Relaxed);
            }
        }
        // Words of the chunks.
        for c in raw(&b).chunks.iter().take(4) {
            let off = c.load(Ordering::Relaxed);
            if let Ok(ws) = b.words(off, 16) {
                for w in ws {
                    if rng.below(2) == 0 {
                        w.store(garbage(&mut rng), Ordering::Relaxed);
                    }
                }
            }
        }
        let Ok(l) = ListCore::new(raw(&b), &b, Scripted::survivor(2).watching()) else {
            continue; // a scribbled geometry: refused before any use
        };
        let e = element(g, round);
        let mut out = Vec::new();
        for i in [-3i64, 0, 5, 29, 1000] {
            let _ = l.get(i, &mut out);
            let _ = l.set(i, &e);
            let _ = l.insert(i, &e);
            let _ = l.pop_at(i, &mut out);
        }
        let _ = l.slice(&(..));
        let _ = l.index(&e);
        let _ = l.count(&e);
        let _ = l.remove(&e);
        let _ = l.push(&e);
        let _ = l.audit();
        let _ = l.clear();
        // Cleared, the list works again (its chunks may be lost to the scribble).
        if l.push(&e).is_ok() {
            assert_eq!(l.len(), 1);
            assert!(l.get(0, &mut out).is_ok());
        }
        raw(&b).finalize(&b);
    }
}

// ---------------------------------------------------------------------------------------
// Index arithmetic and geometry.

#[test]
#[allow(clippy::reversed_empty_ranges)] // Python's a:b with a > b: empty, on purpose
fn indices_slices_and_inserts_are_pythons() {
    // Python: [0, 1, 2, 3, 4][a:b]
    let len = 5;
    let cases: [(core::ops::Range<i64>, (u64, u64)); 7] = [
        (1..3, (1, 3)),
        (-2..5, (3, 5)),
        (-100..100, (0, 5)),
        (3..1, (3, 3)),
        (-1..-3, (4, 4)),
        (7..9, (5, 5)),
        (0..-1, (0, 4)),
    ];
    for (r, want) in cases {
        assert_eq!(span(&r, len), want, "{r:?}");
    }
    assert_eq!(span(&(..), len), (0, 5));
    assert_eq!(span(&(-2..), len), (3, 5));
    assert_eq!(span(&(..=-1), len), (0, 5));
    assert_eq!(span(&(..=1), len), (0, 2));
    assert_eq!(span(&(..), 0), (0, 0));
    // Python: l.insert(i, x) for l of length 5.
    for (i, at) in [(0, 0), (2, 2), (5, 5), (9, 5), (-1, 4), (-5, 0), (-9, 0)] {
        assert_eq!(insert_position(i, len), at, "insert({i})");
    }
    // Python: l[i].
    assert_eq!(resolve(-1, 5), Ok(4));
    assert_eq!(resolve(-5, 5), Ok(0));
    assert!(resolve(-6, 5).is_err());
    assert!(resolve(5, 5).is_err());
    assert!(resolve(i64::MIN, 5).is_err());
    assert!(resolve(0, 0).is_err());
}

#[test]
fn geometry_round_trips_and_rejects_garbage() {
    for g in [
        ListGeometry::fixed(0).unwrap(),
        ListGeometry::fixed(8).unwrap(),
        ListGeometry::fixed(1 << 20).unwrap(),
        ListGeometry::bytes(0).unwrap(),
        ListGeometry::bytes(24).unwrap(),
        ListGeometry::bytes(4096).unwrap(),
    ] {
        assert_eq!(ListGeometry::from_word(g.to_word()).unwrap(), g);
        // Chunk k starts where chunk k - 1 ends; every index finds its chunk.
        for k in 1..MAX_CHUNKS {
            assert_eq!(
                g.chunk_start(k),
                g.chunk_start(k - 1) + g.chunk_slots(k - 1)
            );
            assert_eq!(g.locate(g.chunk_start(k)), Some((k, 0)));
            assert_eq!(
                g.locate(g.chunk_start(k) - 1),
                Some((k - 1, g.chunk_slots(k - 1) - 1))
            );
        }
        assert_eq!(g.locate(g.max_len()), None);
    }
    assert_eq!(ListGeometry::bytes(24).unwrap().slot_words(), 4);
    assert_eq!(ListGeometry::fixed(12).unwrap().slot_words(), 2);
    assert!(ListGeometry::fixed(MAX_FIXED as usize + 1).is_err());
    assert!(ListGeometry::bytes(MAX_INLINE as usize + 1).is_err());
    let mut rng = Rng(7);
    let mut accepted = 0;
    for _ in 0..10_000 {
        accepted += u32::from(ListGeometry::from_word(rng.next()).is_ok());
    }
    assert_eq!(accepted, 0);
    assert!(
        ListGeometry::from_word(ListGeometry::fixed(8).unwrap().to_word() + (1 << 40)).is_err()
    );
}
