//! The many-rows schedules of rows longer than the grouped kernels take (up to `BLOCK`
//! elements): rows one after the other with the block kernels' operations (so
//! their bits), the next rows prefetched a few lines per exp loop turn, and, for outputs
//! written with non-temporal stores, each row's output written during the next row's exp pass
//! ([`Pending`]).

use super::elementwise::scale_to;
use super::f32::{vector_temperature, write_log, ArgF32};
use super::max::max;
use super::pending::{exp_sum_pending, Pending};
use crate::kernels::isa::Simd;
use crate::kernels::{row_ln_f32, RowBatch, Scratch, Store, ROWS_PREFETCH_AHEAD};

/// A level's many-rows kernel ([`Kernels::rows`](crate::kernels::Kernels)'s type).
pub(crate) type RowsKernel = unsafe fn(crate::op::Op, RowBatch<f32>, Store);

/// Rows of up to [`BLOCK`](crate::kernels::BLOCK) elements: the block kernels row by row (the bits of
/// the level's plain rows kernel, `plain`), except that with non-temporal output each row's output is written
/// during the next row's exp pass ([`Pending`]) rather than in one burst after its own.
///
/// # Safety
/// As [`Kernels::rows`](crate::kernels::Kernels).
#[inline(always)]
pub(crate) unsafe fn rows_long<S: Simd>(
    v: S,
    plain: RowsKernel,
    op: crate::op::Op,
    b: RowBatch<f32>,
    store: Store,
) {
    let (n, count) = (b.n, b.count);
    let temp = |r: usize| {
        // SAFETY: called only with `r < count`: row `r`'s temperature, readable (this
        // function's contract).
        unsafe { b.temp(r) }
    };
    let vector_temps = (0..if b.temp_step == 0 {
        count.min(1)
    } else {
        count
    })
        .all(|r| vector_temperature::<S>(temp(r)));
    let softmax = op == crate::op::Op::Softmax;
    if store == Store::Cached && vector_temps {
        // SAFETY: this function's contract is `rows_f32_cached`'s, and every temperature has
        // a normal reciprocal or is 1 (`vector_temps`; with `temp_step == 0` every row reads
        // the first one).
        return unsafe { rows_cached(v, op, b) };
    }
    let mut scratch = if softmax {
        Scratch::take(2 * n * std::mem::size_of::<f32>())
    } else {
        None
    };
    if store != Store::Stream || !vector_temps || (softmax && scratch.is_none()) {
        // SAFETY: this function's contract is `rows_f32_general`'s (`Kernels::rows`, with the
        // CPU features this function requires too).
        return unsafe { plain(op, b, store) };
    }
    let bufs = scratch.as_mut().map_or([std::ptr::null_mut(); 2], |sc| {
        let p = sc.ptr::<f32>();
        // SAFETY: the scratch buffer holds at least `2 n` `f32`, so `p + n` is inside it.
        [p, unsafe { p.add(n) }]
    });
    let mut pending: Option<Pending<S>> = None;
    for r in 0..count {
        // Row `r < count` of `src` and `dst` (this function's contract).
        let (s, d) = b.row(r);
        let t = temp(r);
        // The row ROWS_PREFETCH_AHEAD rows on is asked for during this row's exp pass, a few
        // lines per loop turn.
        let (ahead, ahead_n) = row_ahead(&b, r);
        // SAFETY: `s` is valid for reads of `n` aligned `f32` (row `r`), nothing writes them
        // while the slice lives, and `n <= BLOCK` elements are far below `isize::MAX` bytes.
        let (m, nan) = max(v, unsafe { std::slice::from_raw_parts(s, n) });
        if nan || m == f32::INFINITY || m == f32::NEG_INFINITY {
            if let Some(p) = pending.as_mut() {
                // SAFETY: `p` is the previous row's, started below on memory that no one
                // else has accessed since (the rows do not overlap one another); the fence
                // its non-temporal stores need is at the end of this function.
                unsafe { p.finish() };
            }
            pending = None;
            // Contract S6.
            for i in 0..n {
                // SAFETY: `i < n`: in row `r` of `dst`, valid for writes of `n` aligned `f32`.
                unsafe { *d.add(i) = f32::NAN };
            }
            continue;
        }
        let inv = if t == 1.0 { 1.0 } else { 1.0 / t };
        let c = ArgF32::new(v, m, inv);
        let e = bufs[r % 2];
        // As `exp_store_sum_f32` (softmax, exps kept) or `sum_exp_f32_impl` (log-softmax).
        let pend = pending.as_mut();
        let (a, an) = (ahead, ahead_n);
        // SAFETY: `s` is valid for reads of `n` (row `r`); with STORE (softmax) `e` is one of
        // the two halves of the scratch buffer, `n` `f32` each, disjoint from every row.
        // `pend` is the previous row's write, started below: its destination is row `r - 1`
        // of `dst` and its source that row of `src` or the other half of the buffer, all
        // disjoint from `s` and `e` (the rows do not overlap one another). `a` is only
        // prefetched. `exp_sum_pending` requires only this function's target features
        // beyond that.
        let total = unsafe {
            match (t == 1.0, softmax) {
                (true, true) => exp_sum_pending::<S, true, true>(v, s, e, n, c, pend, a, an),
                (false, true) => exp_sum_pending::<S, false, true>(v, s, e, n, c, pend, a, an),
                (true, false) => exp_sum_pending::<S, true, false>(v, s, e, n, c, pend, a, an),
                (false, false) => exp_sum_pending::<S, false, false>(v, s, e, n, c, pend, a, an),
            }
        };
        if let Some(p) = pending.as_mut() {
            // SAFETY: as for the `finish` above.
            unsafe { p.finish() };
        }
        let ls = if softmax { 0.0 } else { row_ln_f32(total) };
        let src = if softmax { e } else { s };
        // SAFETY: `src` is `e` (softmax: its `n` exps just written, and that half of the
        // buffer is next written two rows on, after this write is finished) or `s` (row `r`
        // of the source); `d` is row `r` of `dst`, valid for writes of `n`, the same as or
        // disjoint from `s` and disjoint from `e`. Until the write is finished (during the
        // next row, or after the loop) only it accesses `d`, and nothing writes `src`; the
        // fence follows the loop. `start` requires only this function's target features
        // beyond that.
        pending = Some(unsafe {
            Pending::start(v, !softmax, false, t == 1.0, src, d, n, 1.0 / total, c, ls)
        });
    }
    if let Some(p) = pending.as_mut() {
        // SAFETY: as for the `finish` in the loop; the fence follows.
        unsafe { p.finish() };
    }
    v.stream_fence();
}

/// Rows of up to [`BLOCK`](crate::kernels::BLOCK) elements with cached output, every temperature's
/// reciprocal normal: the plain rows kernel's operations (softmax: the exps into the output, then
/// scaled in place; log-softmax: the sum, then one write), so its bits, except that the row
/// [`ROWS_PREFETCH_AHEAD`](ROWS_PREFETCH_AHEAD) rows on is asked for a few lines per
/// exp loop turn instead of all at once before the row.
///
/// # Safety
/// As [`Kernels::rows`](crate::kernels::Kernels), with `1 / t` normal for every temperature `t != 1`.
#[inline(always)]
pub(crate) unsafe fn rows_cached<S: Simd>(v: S, op: crate::op::Op, b: RowBatch<f32>) {
    let (softmax, n) = (op == crate::op::Op::Softmax, b.n);
    for r in 0..b.count {
        // Row `r < count` of `src` and `dst` (this function's contract).
        let (s, d) = b.row(r);
        // SAFETY: `r < count`: its temperature is readable (this function's contract).
        let t = unsafe { b.temp(r) };
        let (a, an) = row_ahead(&b, r);
        // SAFETY: `s` is valid for reads of `n` aligned `f32` (row `r`), nothing writes them
        // while the slice lives, and `n <= BLOCK` elements are far below `isize::MAX` bytes.
        let (m, nan) = max(v, unsafe { std::slice::from_raw_parts(s, n) });
        if nan || m == f32::INFINITY || m == f32::NEG_INFINITY {
            // Contract S6.
            for i in 0..n {
                // SAFETY: `i < n`: in row `r` of `dst`, valid for writes of `n` aligned `f32`.
                unsafe { *d.add(i) = f32::NAN };
            }
            continue;
        }
        let unit = t == 1.0;
        let c = ArgF32::new(v, m, if unit { 1.0 } else { 1.0 / t });
        let none = None;
        if softmax {
            // As the level's `exp_store_sum_f32` then `scale_f32`.
            // SAFETY: `s` is valid for reads and `d` for writes of `n` (row `r`), the same or
            // disjoint; `a` is only prefetched; `scale_to` then reads and writes the `n`
            // elements of `d` just written. Both require only this function's target features
            // beyond that.
            unsafe {
                let total = if unit {
                    exp_sum_pending::<S, true, true>(v, s, d, n, c, none, a, an)
                } else {
                    exp_sum_pending::<S, false, true>(v, s, d, n, c, none, a, an)
                };
                scale_to(v, d, d, n, 1.0 / total, false);
            }
        } else {
            // As `sum_exp_f32_impl` then `write_log_softmax_f32`.
            let e = std::ptr::null_mut();
            // SAFETY: `s` is valid for reads and `d` for writes of `n` (row `r`), the same or
            // disjoint; without STORE the null `e` is not used; `a` is only prefetched. Both
            // functions require only this function's target features beyond that.
            unsafe {
                let total = if unit {
                    exp_sum_pending::<S, true, false>(v, s, e, n, c, none, a, an)
                } else {
                    exp_sum_pending::<S, false, false>(v, s, e, n, c, none, a, an)
                };
                let ls = row_ln_f32(total);
                if unit {
                    write_log::<S, true, f32>(v, s, d, n, c, ls, false);
                } else {
                    write_log::<S, false, f32>(v, s, d, n, c, ls, false);
                }
            }
        }
    }
}

/// The source of the row `ROWS_PREFETCH_AHEAD` rows after row `r` of `b` (a pointer only to
/// prefetch) and its length, or null and 0 past the last row.
#[inline(always)]
fn row_ahead(b: &RowBatch<f32>, r: usize) -> (*const f32, usize) {
    if r + ROWS_PREFETCH_AHEAD < b.count {
        (b.row(r + ROWS_PREFETCH_AHEAD).0, b.n)
    } else {
        (std::ptr::null(), 0)
    }
}
