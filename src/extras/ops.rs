//! Top-k selection, sparsemax and an overflow-safe sigmoid.

use crate::element::{Float, Real};
use crate::error::{Error, Result};
use crate::extras::exec::{collect_lanes, map_lanes_with, max_nan, rows_of};
use crate::layout::Lanes;
use crate::shared::SharedPtr;
use crate::view::{StridedView, StridedViewMut};

/// `a` ranks before `b` (value descending, NaN above everything; equal values keep index order,
/// which the callers handle).
#[inline(always)]
fn greater<C: Real>(a: C, b: C) -> bool {
    if a.is_nan() {
        !b.is_nan()
    } else {
        a > b
    }
}

/// The ranking of `(value, index)` pairs: value descending (NaN first), then index ascending.
#[inline(always)]
fn rank<C: Real>(a: &(C, usize), b: &(C, usize)) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    if greater(a.0, b.0) {
        Ordering::Less
    } else if greater(b.0, a.0) {
        Ordering::Greater
    } else {
        a.1.cmp(&b.1)
    }
}

/// Below this `k`, a single pass keeps a sorted buffer of the best `k` so far; above it, a
/// linear-time selection (introselect) over an index buffer then sorts the first `k`.
const SMALL_K: usize = 64;

/// How many entries better than the bar the small-`k` path of [`top_indices`] collects before
/// merging them into its best `k`.
const PENDING: usize = 448;

/// Lanes up to this long, when `k` is at least half of them, are ranked whole by their keys
/// ([`rank_key`]), on the stack: there the sorted buffer would take most entries in.
const TINY_LANE: usize = 32;

/// An integer whose ascending order is the ranking: value descending (NaN above every number,
/// -0.0 equal to +0.0), then index ascending. Exact for every f32 and f64 value.
#[inline(always)]
fn rank_key<C: Real>(v: C, i: usize) -> u128 {
    // `+ 0.0` turns -0.0 into +0.0 and changes nothing else. No branch on the sign or on NaN:
    // random signs would mispredict.
    let bits = (v.to_f64() + 0.0).to_bits();
    let flip = ((bits as i64 >> 63) as u64) | (1 << 63);
    let ordered = if v.is_nan() { u64::MAX } else { bits ^ flip };
    ((!ordered as u128) << 64) | i as u128
}

/// Lanes up to this long whose `k` is at most [`FEW_K`] keep their best `k` keys in registers
/// ([`best_few`]).
const FEW_LANE: usize = 64;

/// See [`FEW_LANE`].
const FEW_K: usize = 8;

/// The lanes handled on the stack by [`stack_top`]: the [`rank_key`]s of their top `k`, best
/// first, without a buffer.
#[inline(always)]
fn on_stack(n: usize, k: usize) -> bool {
    (n <= FEW_LANE && k <= FEW_K) || (n <= TINY_LANE && 2 * k >= n)
}

/// `emit(j, key)` for the [`rank_key`]s of the best `k` entries of a lane that is
/// [`on_stack`], best first (`j = 0..k`). The keys live in an array of exactly `k` (or, for a
/// lane ranked whole, [`TINY_LANE`]) on this function's stack: a lane of millions of short
/// lanes costs no buffer to zero.
#[inline(always)]
fn stack_top<C: Real>(x: &[C], k: usize, mut emit: impl FnMut(usize, u128)) {
    macro_rules! few {
        ($($k:literal)*) => {
            match k {
                $($k => {
                    let mut best = [u128::MAX; $k];
                    best_few(x, &mut best);
                    best.iter().enumerate().for_each(|(j, &key)| emit(j, key));
                })*
                _ => {
                    let mut keys = [0u128; TINY_LANE];
                    let keys = rank_whole(x, &mut keys);
                    keys[..k].iter().enumerate().for_each(|(j, &key)| emit(j, key));
                }
            }
        };
    }
    few!(1 2 3 4 5 6 7 8)
}

/// The `K` best [`rank_key`]s of `x` (`K <= x.len()`), sorted, into `best` (which starts all
/// `u128::MAX`), by selects: each entry is carried down the slots, swapping with every slot it
/// beats. On short lanes of random values the sorted buffer's branches are mispredicted on most
/// entries; this has no branch on values.
#[inline(always)]
fn best_few<C: Real, const K: usize>(x: &[C], best: &mut [u128; K]) {
    for (j, &v) in x.iter().enumerate() {
        let mut carry = rank_key(v, j);
        for slot in best.iter_mut() {
            let kept = *slot;
            *slot = kept.min(carry);
            carry = kept.max(carry);
        }
    }
}

/// The [`rank_key`]s of a short lane (at most [`TINY_LANE`] entries) sorted, in `keys`: no
/// buffer, and integer comparisons instead of the sorted buffer's branches on the values.
#[inline(always)]
fn rank_whole<'a, C: Real>(x: &[C], keys: &'a mut [u128; TINY_LANE]) -> &'a [u128] {
    for (j, (key, &v)) in keys.iter_mut().zip(x).enumerate() {
        *key = rank_key(v, j);
    }
    let keys = &mut keys[..x.len()];
    // Insertion sort: the lanes are short, and it inlines where the library sort is a call.
    for i in 1..keys.len() {
        let key = keys[i];
        let mut j = i;
        while j > 0 && keys[j - 1] > key {
            keys[j] = keys[j - 1];
            j -= 1;
        }
        keys[j] = key;
    }
    keys
}

/// The lane position a [`rank_key`] holds.
#[inline(always)]
fn key_index(key: u128) -> usize {
    (key & u64::MAX as u128) as usize
}

/// Elements of one lane between polls for an interruption (contract R8: a single long lane).
const POLL_ELEMS: usize = 1 << 16;

/// The position of the first top-ranked entry of a non-empty `x` (the top-1 of
/// [`top_indices`], without its buffers: the common `k = 1` on many short lanes).
#[inline(always)]
fn best_index<C: Real>(x: &[C]) -> Result<usize> {
    let mut best = (0, x[0]);
    if x.len() <= POLL_ELEMS {
        x.iter()
            .enumerate()
            .for_each(|(j, &v)| keep_better(&mut best, j, v));
        return Ok(best.0);
    }
    for (c, piece) in x.chunks(POLL_ELEMS).enumerate() {
        if c > 0 && crate::interrupt::poll() {
            return Err(Error::Interrupted);
        }
        let base = c * POLL_ELEMS;
        piece
            .iter()
            .enumerate()
            .for_each(|(j, &v)| keep_better(&mut best, base + j, v));
    }
    Ok(best.0)
}

/// `best = (j, v)` when `v` ranks above `best.1`, by selects, not a branch: on short lanes of
/// random values a branch is mispredicted half the time.
#[inline(always)]
fn keep_better<C: Real>(best: &mut (usize, C), j: usize, v: C) {
    let better = greater(v, best.1);
    best.0 = if better { j } else { best.0 };
    best.1 = if better { v } else { best.1 };
}

/// The positions of the `k` largest entries of `x`, best first (ties: lower index first).
///
/// Scratch is O(k) (contract R1): for large `k`, the candidates' keys stream through a buffer
/// of `2k`; each time it fills, a linear-time selection keeps the best `k` and their worst key
/// becomes the bar that later entries must beat.
fn top_indices<C: Real>(
    x: &[C],
    k: usize,
    idx: &mut Vec<usize>,
    keys: &mut Vec<u128>,
) -> Result<()> {
    idx.clear();
    let n = x.len();
    if k == 0 {
        return Ok(());
    }
    if k <= SMALL_K {
        // Each value is read once and kept beside its position: another thread writing `x`
        // (contract R3) then gives some ranking, never an inconsistent one (re-reading `x`
        // could put an insertion point past the end).
        let mut top = [(C::default(), 0usize); SMALL_K];
        let top = &mut top[..k];
        for (i, slot) in top.iter_mut().enumerate() {
            *slot = (x[i], i);
        }
        top.sort_unstable_by(rank);
        // Entries better than the bar (the k-th best when last merged) wait in `pending`; a
        // full `pending` is merged into `top` by one linear-time selection. On rising rows,
        // where every entry is better, that costs O(1) an entry where inserting each in order
        // costs O(k) (topk(k=64) of ascending rows took 50 times as long as of random ones).
        let mut merged = [(C::default(), 0usize); SMALL_K + PENDING];
        let mut pending = 0;
        // `top` becomes the best `k` of itself and the `pending` entries after it in `merged`
        // (in no order but its worst, the `k`-th best, last).
        let merge = |top: &mut [(C, usize)], merged: &mut [(C, usize)], pending: usize| {
            merged[..k].copy_from_slice(top);
            let all = &mut merged[..k + pending];
            all.select_nth_unstable_by(k - 1, rank);
            top.copy_from_slice(&all[..k]);
        };
        let mut bar = top[k - 1].0;
        for (c, piece) in x.chunks(POLL_ELEMS).enumerate() {
            if c > 0 && crate::interrupt::poll() {
                return Err(Error::Interrupted);
            }
            // Entries from `k` on (the first `k` are the start).
            let from = k.saturating_sub(c * POLL_ELEMS).min(piece.len());
            let base = c * POLL_ELEMS + from;
            for (j, &v) in piece[from..].iter().enumerate() {
                // A later index never beats an equal value: only strictly better entries
                // enter.
                if greater(v, bar) {
                    merged[k + pending] = (v, base + j);
                    pending += 1;
                    if pending == PENDING {
                        merge(top, &mut merged, pending);
                        pending = 0;
                        bar = top[k - 1].0;
                    }
                }
            }
        }
        merge(top, &mut merged, pending);
        top.sort_unstable_by(rank);
        idx.extend(top.iter().map(|p| p.1));
        return Ok(());
    }
    // Larger k: packed integer keys (their ascending order is the ranking, index included, so
    // every key is distinct), selected in rounds, then only the k winners sorted.
    let cap = k.saturating_mul(2).min(n);
    keys.clear();
    crate::scratch::reserve(keys, cap, "top-k candidates")?;
    crate::scratch::reserve(idx, k, "top-k positions")?;
    let mut bar = u128::MAX;
    for (c, piece) in x.chunks(POLL_ELEMS).enumerate() {
        if c > 0 && crate::interrupt::poll() {
            return Err(Error::Interrupted);
        }
        for (j, &v) in piece.iter().enumerate() {
            let key = rank_key(v, c * POLL_ELEMS + j);
            if key < bar {
                if keys.len() == cap {
                    keys.select_nth_unstable(k - 1);
                    keys.truncate(k);
                    bar = keys[k - 1];
                    if key >= bar {
                        continue;
                    }
                }
                keys.push(key);
            }
        }
    }
    if keys.len() > k {
        keys.select_nth_unstable(k - 1);
        keys.truncate(k);
    }
    keys.sort_unstable();
    idx.extend(keys.iter().map(|&key| key_index(key)));
    Ok(())
}

fn bad_k(k: usize, len: usize) -> Error {
    Error::InvalidParameter {
        name: "k",
        value: format!("{k} (axis length {len})"),
        expected: "an integer in [0, axis length]",
    }
}

/// Top-k along strided lanes: lane `i`'s `k` largest values and their positions go to lane `i`
/// of `values` and of `indices` (lanes of length `k`, one per lane of `src`; the two may be laid
/// out differently).
///
/// Values are sorted descending; equal values are ordered by lower index first; NaN ranks above
/// every number (as in PyTorch).
///
/// # Errors
/// [`Error::InvalidParameter`] naming `k` when `k` exceeds the lane length; a length error
/// naming `values` or `indices` when its lanes are not `k` long or not one per lane of `src`.
///
/// ```
/// use logitkit::extras::topk_lanes;
/// use logitkit::{Lanes, StridedView, StridedViewMut};
/// // The top 2 of each column of a C-contiguous 3 x 2 array (lanes along axis 0).
/// let x = [1.0f32, 4.0, 5.0, 2.0, 3.0, 6.0];
/// let src = StridedView::new(&x, 0, Lanes::from_strided(&[3, 2], &[2, 1], 0)).unwrap();
/// // The outputs are 2 x 2 arrays, their lanes along axis 0 too.
/// let out = Lanes::from_strided(&[2, 2], &[2, 1], 0);
/// let (mut values, mut indices) = ([0.0f32; 4], [0i64; 4]);
/// topk_lanes(
///     &src,
///     2,
///     &mut StridedViewMut::new(&mut values, 0, out.clone()).unwrap(),
///     &mut StridedViewMut::new(&mut indices, 0, out).unwrap(),
/// )
/// .unwrap();
/// assert_eq!(values, [5.0, 6.0, 3.0, 4.0]); // column 0: 5, 3; column 1: 6, 4
/// assert_eq!(indices, [1, 2, 2, 0]);
/// ```
pub fn topk_lanes<T: Float>(
    src: &StridedView<'_, T>,
    k: usize,
    values: &mut StridedViewMut<'_, T>,
    indices: &mut StridedViewMut<'_, i64>,
) -> Result<()> {
    let (v, ix) = (values.as_mut_ptr(), indices.as_mut_ptr());
    // SAFETY: the views were checked at construction: every element of every lane lies in its
    // slice, and each output's elements are pairwise distinct. `src` is borrowed shared,
    // `values` and `indices` mutably: the three are disjoint and untouched by anyone else.
    unsafe {
        topk_lanes_raw(
            src.as_ptr(),
            src.lanes(),
            k,
            v,
            values.lanes(),
            ix,
            indices.lanes(),
        )
    }
}

/// Output lanes hold `k` per lane of `lanes` (checked after `k <= lanes.len`), else a length
/// error naming `name`.
fn check_out_lanes(name: &'static str, out: &Lanes, lanes: &Lanes, k: usize) -> Result<()> {
    if k > lanes.len {
        return Err(bad_k(k, lanes.len));
    }
    if out.len != k || out.count() != lanes.count() {
        // Saturating: the lanes may be broadcast views far larger than memory.
        return Err(Error::LengthMismatch {
            name,
            got: out.len.saturating_mul(out.count()),
            expected: k.saturating_mul(lanes.count()),
        });
    }
    Ok(())
}

/// The raw form of [`topk_lanes`] (the NumPy bindings hold raw pointers); `values` is laid out
/// as `value_lanes`, `indices` as `index_lanes`.
///
/// # Safety
/// Every element of every lane of `src` is valid for reads; every element of every lane of
/// `value_lanes` in `values`, and of `index_lanes` in `indices`, is valid for writes, lanes
/// pairwise disjoint and disjoint from `src`; nobody else touches them during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn topk_lanes_raw<T: Float>(
    src: *const T,
    lanes: &Lanes,
    k: usize,
    values: *mut T,
    value_lanes: &Lanes,
    indices: *mut i64,
    index_lanes: &Lanes,
) -> Result<()> {
    check_out_lanes("values", value_lanes, lanes, k)?;
    check_out_lanes("indices", index_lanes, lanes, k)?;
    if k == 0 {
        return Ok(());
    }
    let (v, ix) = (SharedPtr(values), SharedPtr(indices));
    let per_lane = |i: usize, x: &[T::Compute], _: &mut Vec<T::Compute>| {
        if k == 1 {
            let p = best_index(x)?;
            // SAFETY: lane i of the outputs is in bounds and written by this task only.
            unsafe {
                *v.get().offset(value_lanes.offset(i)) = T::from_compute(x[p]);
                *ix.get().offset(index_lanes.offset(i)) = p as i64;
            }
            return Ok(());
        }
        if on_stack(x.len(), k) {
            let (voff, ioff) = (value_lanes.offset(i), index_lanes.offset(i));
            stack_top(x, k, |j, key| {
                let (p, j) = (key_index(key), j as isize);
                // SAFETY: lane i of the outputs is in bounds and written by this task only.
                unsafe {
                    *v.get().offset(voff + j * value_lanes.stride) = T::from_compute(x[p]);
                    *ix.get().offset(ioff + j * index_lanes.stride) = p as i64;
                }
            });
            return Ok(());
        }
        // A thread-local is safe here: nothing in this closure waits on parallel work, so the
        // thread cannot start another lane while the buffers are borrowed.
        thread_local! {
            static IDX: std::cell::RefCell<(Vec<usize>, Vec<u128>)> =
                const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
        }
        IDX.with(|cell| {
            let (idx, keys) = &mut *cell.borrow_mut();
            top_indices(x, k, idx, keys)?;
            let (voff, ioff) = (value_lanes.offset(i), index_lanes.offset(i));
            for (j, &p) in idx.iter().enumerate() {
                let j = j as isize;
                // SAFETY: lane i of the outputs is in bounds and written by this task only.
                unsafe {
                    *v.get().offset(voff + j * value_lanes.stride) = T::from_compute(x[p]);
                    *ix.get().offset(ioff + j * index_lanes.stride) = p as i64;
                }
            }
            // Keep no more than a small row's worth between calls.
            if keys.capacity() > 1 << 16 {
                *keys = Vec::new();
            }
            if idx.capacity() > 1 << 16 {
                *idx = Vec::new();
            }
            Ok(())
        })
    };
    // SAFETY: every lane of `src` is readable and not written during the call (this
    // function's contract), as `collect_lanes` asks.
    unsafe { collect_lanes(src, lanes, per_lane) }?;
    Ok(())
}

/// The `k` largest entries of each row of a row-major batch, best first, with their positions:
/// `values` and `indices` hold `k` per row.
///
/// ```
/// let x = [1.0f32, 5.0, 3.0, 5.0, 0.0, -1.0, 2.0, 2.0];
/// let (mut v, mut i) = ([0.0f32; 4], [0i64; 4]);
/// logitkit::extras::topk_rows(&x, 4, 2, &mut v, &mut i).unwrap();
/// assert_eq!(v, [5.0, 5.0, 2.0, 2.0]);
/// assert_eq!(i, [1, 3, 2, 3]); // ties: lower index first
/// ```
pub fn topk_rows<T: Float>(
    x: &[T],
    row_len: usize,
    k: usize,
    values: &mut [T],
    indices: &mut [i64],
) -> Result<()> {
    let rows = rows_of(x.len(), row_len)?;
    // k beyond the row length is refused before `rows * k` is formed: that product could
    // overflow (a debug build panicked, a release build wrapped, issue 20 #17). With
    // k <= row_len it is at most x.len().
    if k > row_len {
        return Err(bad_k(k, row_len));
    }
    let expected = rows * k;
    for (name, got) in [("values", values.len()), ("indices", indices.len())] {
        if got != expected {
            return Err(Error::LengthMismatch {
                name,
                got,
                expected,
            });
        }
    }
    let lanes = Lanes::rows(rows, row_len);
    let out = Lanes::rows(rows, k);
    // SAFETY: x holds rows * row_len elements; the outputs rows * k each, borrowed mutably.
    unsafe {
        topk_lanes_raw(
            x.as_ptr(),
            &lanes,
            k,
            values.as_mut_ptr(),
            &out,
            indices.as_mut_ptr(),
            &out,
        )
    }
}

/// The `k` largest entries of one vector, best first, and their positions.
///
/// ```
/// let (v, i) = logitkit::extras::topk(&[0.5f64, f64::NAN, 2.0, -1.0], 2).unwrap();
/// assert!(v[0].is_nan() && v[1] == 2.0);
/// assert_eq!(i, [1, 2]);
/// ```
pub fn topk<T: Float>(x: &[T], k: usize) -> Result<(Vec<T>, Vec<i64>)> {
    if k > x.len() {
        return Err(bad_k(k, x.len()));
    }
    if k == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut v = crate::scratch::filled(k, x[0], "top-k values")?;
    let mut i = crate::scratch::filled(k, 0i64, "top-k indices")?;
    topk_rows(x, x.len(), k, &mut v, &mut i)?;
    Ok((v, i))
}

/// Sparsemax of one vector in the compute type: the Euclidean projection onto the simplex.
fn sparsemax_row<C: Real>(x: &[C], out: &mut [C], cand: &mut Vec<f64>) -> Result<()> {
    let Some(m) = sparsemax_max(x, out) else {
        return Ok(());
    };
    // tau >= max - 1, so only entries within 1 of the maximum can be in the support.
    let near = || x.iter().map(|&v| v.to_f64() - m).filter(|&d| d > -1.0);
    crate::scratch::refill(cand, near().count(), near(), "sparsemax candidates")?;
    cand.sort_unstable_by(|a, b| b.total_cmp(a));
    sparsemax_write(x, out, m, cand);
    Ok(())
}

/// Lanes up to this long keep their sparsemax candidates on the stack ([`sparsemax_short`]).
const SPARSEMAX_SHORT: usize = 64;

/// [`sparsemax_row`] of a lane of at most [`SPARSEMAX_SHORT`] entries: the candidates on the
/// stack, sorted in the same order (so with the same bits), no buffer.
///
/// `buf` is scratch from the caller, so that many lanes share one: zeroing 512 bytes per
/// lane would cost more than the sort.
fn sparsemax_short<C: Real>(x: &[C], out: &mut [C], buf: &mut [f64; SPARSEMAX_SHORT]) {
    if sparsemax_fixed(x, out, x.len()) {
        return;
    }
    let Some(m) = sparsemax_max(x, out) else {
        return;
    };
    let mut count = 0;
    for &v in x {
        // Kept when within 1 of the maximum, without a branch: `count` only moves then.
        let d = v.to_f64() - m;
        buf[count] = d;
        count += usize::from(d > -1.0);
    }
    let cand = &mut buf[..count];
    for i in 1..cand.len() {
        let z = cand[i];
        let mut j = i;
        while j > 0 && cand[j - 1].total_cmp(&z).is_lt() {
            cand[j] = cand[j - 1];
            j -= 1;
        }
        cand[j] = z;
    }
    sparsemax_write(x, out, m, cand);
}

/// Sparsemax of the lanes of `n` entries held back to back in `x`, into `out`, when `n` is at
/// most 8 ([`sparsemax_lanes_of`]); else `false`, nothing written.
#[inline(always)]
fn sparsemax_fixed<C: Real>(x: &[C], out: &mut [C], n: usize) -> bool {
    match n {
        1 => sparsemax_lanes_of::<C, 1>(x, out),
        2 => sparsemax_lanes_of::<C, 2>(x, out),
        3 => sparsemax_lanes_of::<C, 3>(x, out),
        4 => sparsemax_lanes_of::<C, 4>(x, out),
        5 => sparsemax_lanes_of::<C, 5>(x, out),
        6 => sparsemax_lanes_of::<C, 6>(x, out),
        7 => sparsemax_lanes_of::<C, 7>(x, out),
        8 => sparsemax_lanes_of::<C, 8>(x, out),
        _ => return false,
    }
    true
}

/// Sparsemax of lanes of `N` entries back to back, without a branch on the values (on many
/// short lanes of random values, the number of candidates and their order would mispredict):
/// entries that are not candidates become `-inf`, a sorting network of `min`/`max` orders them,
/// the support scan uses selects (`-inf` fails its test), and contract S6's lanes are chosen
/// by a select at the end.
///
/// The same operations as [`sparsemax_short`]'s, in the same order, so the same bits: the
/// candidates are finite and at most 0, and `min`/`max` ordering `-0.0` and `+0.0` either way
/// changes no sum.
#[inline(always)]
fn sparsemax_lanes_of<C: Real, const N: usize>(x: &[C], out: &mut [C]) {
    for (x, out) in x.chunks_exact(N).zip(out.chunks_exact_mut(N)) {
        let (mut m, mut nan) = (C::NEG_INFINITY, false);
        for &v in x {
            nan |= v.is_nan();
            m = if v > m { v } else { m };
        }
        let bad = nan | (m == C::INFINITY) | (m == C::NEG_INFINITY);
        let m = m.to_f64();
        let mut z = [0.0f64; N];
        for (zj, &v) in z.iter_mut().zip(x) {
            let d = v.to_f64() - m;
            *zj = if d > -1.0 { d } else { f64::NEG_INFINITY };
        }
        for pass in 0..N {
            for j in 0..N - 1 - pass {
                let (a, b) = (z[j], z[j + 1]);
                z[j] = if a < b { b } else { a };
                z[j + 1] = if a < b { a } else { b };
            }
        }
        let (mut sum, mut k, mut support_sum) = (0.0f64, 0usize, 0.0f64);
        for (j, &zj) in z.iter().enumerate() {
            sum += zj;
            let inside = 1.0 + (j + 1) as f64 * zj > sum;
            k = if inside { j + 1 } else { k };
            support_sum = if inside { sum } else { support_sum };
        }
        let tau = (support_sum - 1.0) / k as f64;
        for (o, &v) in out.iter_mut().zip(x) {
            let p = C::from_f64((v.to_f64() - m - tau).max(0.0));
            *o = if bad { C::NAN } else { p };
        }
    }
}

/// The lane's maximum in `f64`, or `None` after filling `out` with NaN (contract S6's lanes:
/// NaN or `+inf` anywhere, or no entry above `-inf`).
#[inline(always)]
fn sparsemax_max<C: Real>(x: &[C], out: &mut [C]) -> Option<f64> {
    let (m, nan) = max_nan(x);
    if nan || m == C::INFINITY || m == C::NEG_INFINITY {
        out.iter_mut().for_each(|o| *o = C::NAN);
        return None;
    }
    Some(m.to_f64())
}

/// The projection from the candidates `x - m > -1`, sorted in descending order.
#[inline(always)]
fn sparsemax_write<C: Real>(x: &[C], out: &mut [C], m: f64, cand: &[f64]) {
    let (mut sum, mut k, mut support_sum) = (0.0f64, 0usize, 0.0f64);
    for (j, &z) in cand.iter().enumerate() {
        sum += z;
        if 1.0 + (j + 1) as f64 * z > sum {
            k = j + 1;
            support_sum = sum;
        }
    }
    let tau = (support_sum - 1.0) / k as f64;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = C::from_f64((v.to_f64() - m - tau).max(0.0));
    }
}

/// Sparsemax (Martins & Astudillo 2016) along strided lanes: `dst`'s lane `i` is the Euclidean
/// projection of `src`'s lane `i` onto the probability simplex. Computed in `f64` relative to the
/// lane's maximum (overflow-safe); `-inf` entries get 0; a lane holding NaN or `+inf`, or only
/// `-inf`, becomes all NaN. Not in place: `dst` is a buffer of its own.
///
/// # Errors
/// [`Error::InvalidParameter`] naming `dst` unless the views lay out the same lanes (lane
/// length and outer extents).
///
/// ```
/// use logitkit::extras::sparsemax_lanes;
/// use logitkit::{Lanes, StridedView, StridedViewMut};
/// // Sparsemax down each column of a C-contiguous 2 x 2 array: (1, 1) and (0, 3).
/// let x = [1.0f64, 0.0, 1.0, 3.0];
/// let lanes = Lanes::from_strided(&[2, 2], &[2, 1], 0);
/// let mut p = [f64::NAN; 4];
/// let src = StridedView::new(&x, 0, lanes.clone()).unwrap();
/// sparsemax_lanes(&src, &mut StridedViewMut::new(&mut p, 0, lanes).unwrap()).unwrap();
/// assert_eq!(p, [0.5, 0.0, 0.5, 1.0]);
/// ```
pub fn sparsemax_lanes<T: Float>(
    src: &StridedView<'_, T>,
    dst: &mut StridedViewMut<'_, T>,
) -> Result<()> {
    crate::view::check_matching(src.lanes(), dst.lanes())?;
    let d = dst.as_mut_ptr();
    // SAFETY: the views were checked at construction: every element of every lane lies in its
    // slice and `dst`'s elements are pairwise distinct; `src` is borrowed shared and `dst`
    // mutably, so they are disjoint and nobody else touches them.
    unsafe { sparsemax_lanes_raw(src.as_ptr(), src.lanes(), d, dst.lanes()) }
}

/// The raw form of [`sparsemax_lanes`] (the NumPy bindings hold raw pointers).
///
/// # Safety
/// As for `map_lanes_raw` without the in-place case: `dst`'s lanes are valid for writes,
/// pairwise disjoint and disjoint from `src`.
pub(crate) unsafe fn sparsemax_lanes_raw<T: Float>(
    src: *const T,
    src_lanes: &Lanes,
    dst: *mut T,
    dst_lanes: &Lanes,
) -> Result<()> {
    crate::lanes::check_same_lanes(src_lanes, dst_lanes)?;
    // SAFETY: `src`'s lanes are readable and `dst`'s writable, pairwise disjoint and disjoint from `src` (this function's contract), as `map_lanes_with` asks.
    unsafe {
        map_lanes_with(src, src_lanes, dst, dst_lanes, |x, out| {
            let n = src_lanes.len;
            if sparsemax_fixed(x, out, n) {
                return Ok(());
            }
            if n <= SPARSEMAX_SHORT {
                let mut buf = [0.0; SPARSEMAX_SHORT];
                for (x, out) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
                    sparsemax_short(x, out, &mut buf);
                }
                return Ok(());
            }
            // As in topk_lanes: no parallel work inside, so no re-entrant borrow.
            thread_local! {
                static CAND: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
            }
            CAND.with(|c| sparsemax_row(x, out, &mut c.borrow_mut()))
        })
    }
}

/// Sparsemax of each row of a row-major batch.
///
/// ```
/// let mut p = [0.0f64; 6];
/// logitkit::extras::sparsemax_rows(&[0.0, 0.5, 3.0, 1.0, 1.2, 0.1], 3, &mut p).unwrap();
/// assert_eq!(&p[..3], &[0.0, 0.0, 1.0]); // far ahead: all the mass
/// assert!((p[3] - 0.4).abs() < 1e-15 && (p[4] - 0.6).abs() < 1e-15 && p[5] == 0.0);
/// ```
pub fn sparsemax_rows<T: Float>(x: &[T], row_len: usize, out: &mut [T]) -> Result<()> {
    if out.len() != x.len() {
        return Err(Error::LengthMismatch {
            name: "out",
            got: out.len(),
            expected: x.len(),
        });
    }
    let rows = rows_of(x.len(), row_len)?;
    let lanes = Lanes::rows(rows, row_len);
    // SAFETY: both slices hold rows * row_len elements; `out` is borrowed mutably.
    unsafe { sparsemax_lanes_raw(x.as_ptr(), &lanes, out.as_mut_ptr(), &lanes) }
}

/// Sparsemax of one vector.
///
/// ```
/// let mut p = [0.0f32; 3];
/// logitkit::extras::sparsemax(&[1.0, 1.0, -5.0], &mut p).unwrap();
/// assert_eq!(p, [0.5, 0.5, 0.0]);
/// ```
pub fn sparsemax<T: Float>(x: &[T], out: &mut [T]) -> Result<()> {
    sparsemax_rows(x, x.len().max(1), out)
}

/// `1 / (1 + exp(-v))` without overflow: `exp` only ever sees a non-positive argument. No
/// branch on the sign (random signs would mispredict): `e = exp(-|v|)`, then `1 / (1 + e)` or
/// `e / (1 + e)`.
#[inline]
fn sigmoid_f64(v: f64) -> f64 {
    let e = (-v.abs()).exp();
    let num = if v >= 0.0 { 1.0 } else { e };
    num / (1.0 + e)
}

/// `exp(x)` for `x <= 0` without a libm call, so that loops over it vectorise: clamped at -110
/// (below it every result rounds to 0 in `f32`), `x = n ln 2 + r` with `|r| <= ln 2 / 2`, a
/// degree-11 Taylor polynomial for `exp(r)` (relative error < 1e-14) and `2^n` built from bits.
/// Only for results rounded to `f32` or narrower.
#[inline(always)]
fn exp_nonpositive_for_f32(x: f64) -> f64 {
    const MAGIC: f64 = 6755399441055744.0; // 1.5 * 2^52: adding it rounds to an integer
    const LN2_HI: f64 = 0.693_147_180_369_123_8;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let x = x.max(-110.0);
    let t = x * std::f64::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 39_916_800.0;
    for c in [
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + c;
    }
    // The low bits of t hold n (two's complement); n + 1023 is in [863, 1023].
    let scale = f64::from_bits((t.to_bits().wrapping_add(1023)) << 52);
    p * scale
}

/// Sigmoid with [`exp_nonpositive_for_f32`]: for results rounded to `f32` or narrower.
#[inline(always)]
fn sigmoid_for_f32(v: f64) -> f64 {
    let e = exp_nonpositive_for_f32(-v.abs());
    let num = if v >= 0.0 { 1.0 } else { e };
    let s = num / (1.0 + e);
    if v.is_nan() {
        v
    } else {
        s
    }
}

/// Elementwise logistic sigmoid along strided lanes, computed in `f64` and rounded once.
/// `sigmoid(+inf) = 1`, `sigmoid(-inf) = 0`, NaN stays NaN. Not in place: `dst` is a buffer of
/// its own.
///
/// # Errors
/// [`Error::InvalidParameter`] naming `dst` unless the views lay out the same lanes (lane
/// length and outer extents).
///
/// ```
/// use logitkit::extras::sigmoid_lanes;
/// use logitkit::{Lanes, StridedView, StridedViewMut};
/// // Every other element of `x` (stride 2), into a contiguous output.
/// let x = [0.0f32, 7.0, f32::INFINITY, 7.0, f32::NEG_INFINITY, 7.0];
/// let src = StridedView::new(&x, 0, Lanes { len: 3, stride: 2, outer: vec![(1, 0)] }).unwrap();
/// let mut s = [f32::NAN; 3];
/// sigmoid_lanes(&src, &mut StridedViewMut::rows(&mut s, 3).unwrap()).unwrap();
/// assert_eq!(s, [0.5, 1.0, 0.0]);
/// ```
pub fn sigmoid_lanes<T: Float>(
    src: &StridedView<'_, T>,
    dst: &mut StridedViewMut<'_, T>,
) -> Result<()> {
    crate::view::check_matching(src.lanes(), dst.lanes())?;
    let d = dst.as_mut_ptr();
    // SAFETY: as in `sparsemax_lanes`: both views checked at construction, disjoint borrows.
    unsafe { sigmoid_lanes_raw(src.as_ptr(), src.lanes(), d, dst.lanes()) }
}

/// The raw form of [`sigmoid_lanes`] (the NumPy bindings hold raw pointers).
///
/// # Safety
/// As for [`sparsemax_lanes_raw`].
pub(crate) unsafe fn sigmoid_lanes_raw<T: Float>(
    src: *const T,
    src_lanes: &Lanes,
    dst: *mut T,
    dst_lanes: &Lanes,
) -> Result<()> {
    crate::lanes::check_same_lanes(src_lanes, dst_lanes)?;
    let narrow = std::any::TypeId::of::<T::Compute>() == std::any::TypeId::of::<f32>();
    // SAFETY: `src`'s lanes are readable and `dst`'s writable, pairwise disjoint and disjoint from `src` (this function's contract), as `map_lanes_with` asks.
    unsafe {
        map_lanes_with(src, src_lanes, dst, dst_lanes, |x, out| {
            if narrow {
                // f32 and f16 results: a vectorisable exp, accurate far beyond f32 rounding.
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = <T::Compute as Real>::from_f64(sigmoid_for_f32(v.to_f64()));
                }
            } else {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = <T::Compute as Real>::from_f64(sigmoid_f64(v.to_f64()));
                }
            }
            Ok(())
        })
    }
}

/// Elementwise logistic sigmoid of a slice, overflow-safe, in parallel for large inputs.
///
/// ```
/// let mut s = [0.0f32; 4];
/// logitkit::extras::sigmoid(&[0.0, 1e30, -1e30, -100.0], &mut s).unwrap();
/// assert_eq!(&s[..3], &[0.5, 1.0, 0.0]);
/// assert!(s[3] > 0.0 && (s[3] / (-100f32).exp() - 1.0).abs() < 1e-6);
/// ```
pub fn sigmoid<T: Float>(x: &[T], out: &mut [T]) -> Result<()> {
    if out.len() != x.len() {
        return Err(Error::LengthMismatch {
            name: "out",
            got: out.len(),
            expected: x.len(),
        });
    }
    // Rows of 4096 so that large inputs share out over threads.
    let n = x.len();
    let row = 4096.min(n.max(1));
    let (full, rest) = (n / row * row, n % row);
    let lanes = Lanes::rows(full / row, row);
    // SAFETY: the first `full` elements form full / row rows; `out` is borrowed mutably.
    unsafe { sigmoid_lanes_raw(x.as_ptr(), &lanes, out.as_mut_ptr(), &lanes)? };
    if rest > 0 {
        let tail = Lanes::rows(1, rest);
        // SAFETY: the last `rest` elements of both slices.
        unsafe {
            sigmoid_lanes_raw(
                x.as_ptr().add(full),
                &tail,
                out.as_mut_ptr().add(full),
                &tail,
            )?
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_rng::lcg_uniform as uniform;

    /// The positions [`stack_top`] ranks first.
    fn stack_ranks<C: Real>(x: &[C], k: usize) -> Vec<usize> {
        let mut ranks = vec![usize::MAX; k];
        stack_top(x, k, |j, key| ranks[j] = key_index(key));
        ranks
    }

    /// The positions [`top_indices`] ranks first.
    fn buffer_ranks<C: Real>(x: &[C], k: usize) -> Vec<usize> {
        let mut idx = Vec::new();
        top_indices(x, k, &mut idx, &mut Vec::new()).unwrap();
        idx
    }

    /// The stack path of short lanes ([`stack_top`]: the selects of [`best_few`] for small `k`,
    /// the whole-lane sort for larger ones) ranks as the sorted buffer of [`top_indices`] does,
    /// on lanes with ties, signed zeros, NaN and infinities, in f64 and f32.
    #[test]
    fn stack_top_matches_the_sorted_buffer() {
        let mut next = uniform(0x2545_F491_4F6C_DD1D);
        let specials = [0.0, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.0];
        let mut checked = 0;
        for n in 1..=FEW_LANE {
            for k in 1..=n {
                if !on_stack(n, k) {
                    continue;
                }
                for case in 0..12 {
                    let x: Vec<f64> = (0..n)
                        .map(|j| match (case + 3 * j) % 4 {
                            // Zeros of both signs tie for the top.
                            _ if case >= 10 => [-0.0, 0.0, -1.0][(j + case) % 3],
                            0 => specials[(case + j) % specials.len()],
                            1 => (next() * 4.0).round(),
                            _ => next() * 2.0 - 1.0,
                        })
                        .collect();
                    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                    assert_eq!(stack_ranks(&x, k), buffer_ranks(&x, k), "n={n} k={k} {x:?}");
                    assert_eq!(stack_ranks(&x32, k), buffer_ranks(&x32, k), "f32 {x32:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 4000, "{checked} lanes checked");
    }

    /// [`top_indices`] for every `k` up to past [`SMALL_K`] ranks as a full sort by [`rank`]
    /// does, on rising, falling, random, tied and special-valued lanes long enough that the
    /// small-`k` path merges its pending entries many times.
    #[test]
    fn top_indices_match_a_full_sort() {
        let mut next = uniform(0x6A09_E667_F3BC_C909);
        let specials = [0.0, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.0];
        for n in [1usize, 65, 200, 1000, 5000] {
            for case in 0..6 {
                let x: Vec<f64> = (0..n)
                    .map(|j| match case {
                        0 => j as f64,
                        1 => -(j as f64),
                        2 => next(),
                        3 => (next() * 5.0).floor(),
                        4 => specials[(j * 7 + (next() * 3.0) as usize) % specials.len()],
                        _ => (j % 97) as f64 + j as f64 * 1e-3,
                    })
                    .collect();
                let mut order: Vec<(f64, usize)> = x.iter().copied().zip(0..).collect();
                order.sort_by(rank);
                for k in [1, 2, 7, 63, 64, 65, 130].into_iter().filter(|&k| k <= n) {
                    let want: Vec<usize> = order[..k].iter().map(|p| p.1).collect();
                    assert_eq!(buffer_ranks(&x, k), want, "n {n} case {case} k {k}");
                    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                    let mut o32: Vec<(f32, usize)> = x32.iter().copied().zip(0..).collect();
                    o32.sort_by(rank);
                    let want32: Vec<usize> = o32[..k].iter().map(|p| p.1).collect();
                    assert_eq!(buffer_ranks(&x32, k), want32, "f32 n {n} case {case} k {k}");
                }
            }
        }
    }

    /// The stack path of short lanes gives the bits of the buffered path, on lanes with ties,
    /// signed zeros, entries just within and beyond 1 of the maximum, `-inf`, and S6's lanes.
    #[test]
    fn sparsemax_short_lanes_match_the_buffered_path_bitwise() {
        let mut next = uniform(0x9E37_79B9_7F4A_7C15);
        let specials = [0.0, -0.0, 1.0, -1.0, 0.5, f64::NEG_INFINITY, 1e-300];
        for n in 1..=SPARSEMAX_SHORT {
            for case in 0..40 {
                let x: Vec<f64> = (0..n)
                    .map(|j| match (case + j) % 5 {
                        0 => specials[(case * 7 + j) % specials.len()],
                        1 => (next() * 4.0).round() / 4.0,
                        _ => next() * 3.0 - 1.5,
                    })
                    .collect();
                let mut x = x;
                if case == 39 {
                    x[n / 2] = f64::NAN;
                }
                if case == 38 {
                    x[n - 1] = f64::INFINITY;
                }
                if case == 37 {
                    x.iter_mut().for_each(|v| *v = f64::NEG_INFINITY);
                }
                let (mut a, mut b) = (vec![7.0; n], vec![7.0; n]);
                sparsemax_short(&x, &mut a, &mut [0.0; SPARSEMAX_SHORT]);
                sparsemax_row(&x, &mut b, &mut Vec::new()).unwrap();
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&a), bits(&b), "n={n} case={case} x={x:?}");
                let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                let (mut a, mut b) = (vec![7.0f32; n], vec![7.0f32; n]);
                sparsemax_short(&x32, &mut a, &mut [0.0; SPARSEMAX_SHORT]);
                sparsemax_row(&x32, &mut b, &mut Vec::new()).unwrap();
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&a), bits(&b), "f32 n={n} case={case}");
            }
        }
    }
}
