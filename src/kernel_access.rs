//! Direct access to the kernels of any level, for the integration tests and benches. Not part
//! of the API: it may change in any release. (Apart from `kernels`, which it reaches into,
//! so that the kernels do not depend on the rows built on them.)

use crate::element::Real;
use crate::op::Op;
use crate::simd::SimdLevel;

pub use crate::kernels::Store;

/// Elements per block.
pub const BLOCK: usize = crate::kernels::BLOCK;

/// The logarithm the many-rows kernel of `level` applies to an exp-sum of type `C`.
pub fn row_ln<C: Real>(level: SimdLevel, sum: f64) -> f64 {
    if std::mem::size_of::<C>() == 4 && level != SimdLevel::Scalar {
        crate::kernels::row_ln_f32(sum)
    } else {
        sum.ln()
    }
}

/// The `max` kernel of `level`.
pub fn max<C: Real>(level: SimdLevel, x: &[C]) -> (C, bool) {
    (crate::kernels::kernels_for::<C>(level).max)(x)
}

/// The `sum_exp` kernel of `level`; `m` should be the maximum of `x`.
pub fn sum_exp<C: Real>(level: SimdLevel, x: &[C], m: C, t: f64) -> f64 {
    (crate::kernels::kernels_for::<C>(level).sum_exp)(x, m, t)
}

/// The `entropy_sums` kernel of `level` (`total`, `dot`, `finite`); `m` should be the maximum
/// of `x`.
pub fn entropy_sums<C: Real>(level: SimdLevel, x: &[C], m: C) -> (f64, f64, usize) {
    let e = (crate::kernels::kernels_for::<C>(level).entropy_sums)(x, m);
    (e.total, e.dot, e.finite)
}

/// The `exp_store_sum` kernel of `level`.
///
/// # Panics
/// If the lengths differ.
pub fn exp_store_sum<C: Real>(level: SimdLevel, x: &[C], out: &mut [C], m: C, t: f64) -> f64 {
    assert_eq!(x.len(), out.len());
    // SAFETY: both slices hold x.len() elements and do not overlap (`out` is unique).
    unsafe {
        (crate::kernels::kernels_for::<C>(level).exp_store_sum)(
            x.as_ptr(),
            out.as_mut_ptr(),
            x.len(),
            m,
            t,
        )
    }
}

/// The `exp_store_chunk_sums` kernel of `level`: the exps into `out` and the sum of each
/// chunk of `chunk` elements into `sums` (`x.len().div_ceil(chunk)` of them).
///
/// # Panics
/// If the lengths differ, `chunk` is 0 or `sums` has another length.
pub fn exp_store_chunk_sums<C: Real>(
    level: SimdLevel,
    x: &[C],
    out: &mut [C],
    m: C,
    t: f64,
    chunk: usize,
    sums: &mut [f64],
) {
    assert_eq!(x.len(), out.len());
    assert!(chunk > 0);
    assert_eq!(sums.len(), x.len().div_ceil(chunk));
    // SAFETY: both slices hold x.len() elements and do not overlap (`out` is unique), and
    // `sums` holds one value per chunk.
    unsafe {
        (crate::kernels::kernels_for::<C>(level).exp_store_chunk_sums)(
            x.as_ptr(),
            out.as_mut_ptr(),
            x.len(),
            m,
            t,
            chunk,
            sums.as_mut_ptr(),
        )
    }
}

/// The `scale` kernel of `level`.
pub fn scale<C: Real>(level: SimdLevel, x: &mut [C], factor: f64) {
    // SAFETY: the slice is valid for reads and writes of its length.
    unsafe { (crate::kernels::kernels_for::<C>(level).scale)(x.as_mut_ptr(), x.len(), factor) }
}

/// The `exp_scale` kernel of `level`.
///
/// # Panics
/// If the lengths differ.
pub fn exp_scale<C: Real>(
    level: SimdLevel,
    x: &[C],
    out: &mut [C],
    m: C,
    t: f64,
    factor: f64,
    stream: bool,
) {
    assert_eq!(x.len(), out.len());
    // SAFETY: both slices hold x.len() elements and do not overlap.
    unsafe {
        (crate::kernels::kernels_for::<C>(level).exp_scale)(
            x.as_ptr(),
            out.as_mut_ptr(),
            x.len(),
            m,
            t,
            factor,
            stream,
        )
    }
}

/// The `write_log_softmax` kernel of `level`.
///
/// # Panics
/// If the lengths differ.
pub fn write_log_softmax<C: Real>(
    level: SimdLevel,
    x: &[C],
    out: &mut [C],
    m: C,
    t: f64,
    log_sum: f64,
    stream: bool,
) {
    assert_eq!(x.len(), out.len());
    // SAFETY: both slices hold x.len() elements and do not overlap.
    unsafe {
        (crate::kernels::kernels_for::<C>(level).write_log_softmax)(
            x.as_ptr(),
            out.as_mut_ptr(),
            x.len(),
            m,
            t,
            log_sum,
            stream,
        )
    }
}

/// The many-rows kernel of `level` over the rows of `n` elements of `x`, one temperature
/// per row.
///
/// # Panics
/// If `n` is 0 or above [`BLOCK`], or the lengths do not match.
pub fn rows<C: Real>(
    level: SimdLevel,
    op: Op,
    x: &[C],
    out: &mut [C],
    n: usize,
    t: &[f64],
    store: crate::kernels::Store,
) {
    assert!(n > 0 && n <= BLOCK);
    assert_eq!(x.len(), out.len());
    assert_eq!(x.len(), n * t.len());
    assert!(t.iter().all(|&t| t > 0.0 && t.is_finite()));
    // SAFETY: t.len() rows of n elements each in both slices, one temperature per row.
    unsafe {
        let batch = crate::kernels::RowBatch {
            temp_step: 1,
            ..crate::kernels::RowBatch::adjacent(
                x.as_ptr(),
                out.as_mut_ptr(),
                n,
                t.len(),
                t.as_ptr(),
            )
        };
        (crate::kernels::kernels_for::<C>(level).rows)(op, batch, store)
    }
}

/// As [`rows`] with every row at temperature `t` (read once, as the many-rows path passes
/// one temperature for a whole call); with `in_place`, `out` is first set to `x` and is
/// both source and destination.
///
/// # Panics
/// If the lengths do not match or `t` is not positive and finite.
#[allow(clippy::too_many_arguments)]
pub fn rows_at<C: Real>(
    level: SimdLevel,
    op: Op,
    x: &[C],
    out: &mut [C],
    n: usize,
    t: f64,
    in_place: bool,
    store: crate::kernels::Store,
) {
    assert!(n > 0 && n <= BLOCK);
    assert_eq!(x.len(), out.len());
    assert_eq!(x.len() % n, 0);
    assert!(t > 0.0 && t.is_finite());
    let src = if in_place {
        out.copy_from_slice(x);
        out.as_ptr()
    } else {
        x.as_ptr()
    };
    // SAFETY: x.len() / n rows of n elements each in both buffers (the same buffer when
    // in place), one temperature read with step 0.
    unsafe {
        let batch = crate::kernels::RowBatch::adjacent(src, out.as_mut_ptr(), n, x.len() / n, &t);
        (crate::kernels::kernels_for::<C>(level).rows)(op, batch, store)
    }
}

/// One whole row (any length) with the kernels of `level`, its blocks spread over the
/// crate's pool when `parallel`, written with non-temporal stores when `stream`.
///
/// # Panics
/// If the lengths differ or `t` is not positive and finite.
pub fn map_row<C: Real>(
    level: SimdLevel,
    op: Op,
    x: &[C],
    out: &mut [C],
    t: f64,
    parallel: bool,
    stream: bool,
) {
    assert_eq!(x.len(), out.len());
    assert!(t > 0.0 && t.is_finite());
    let k = crate::kernels::kernels_for::<C>(level);
    // SAFETY: the slices are valid for the call and do not overlap (`out` is borrowed
    // mutably).
    unsafe {
        crate::row::map_row_with(
            k,
            op,
            x.as_ptr(),
            out.as_mut_ptr(),
            x.len(),
            t,
            parallel,
            stream,
        )
    }
}

/// `rows` rows of `n` elements one after the other through the streamed many-long-rows
/// path (each row's output written during the next row's first pass) on this thread with
/// the kernels of `level`, row `i` at temperature `temps[i]`; in place (on `out`, after
/// copying `x` there) when `in_place`; softmax keeping its exps for the write when `keep_exps`
/// (else, where the level can, computing them again there).
///
/// # Panics
/// If the lengths do not match or a temperature is not positive and finite.
#[allow(clippy::too_many_arguments)]
pub fn map_rows_streamed<C: Real>(
    level: SimdLevel,
    op: Op,
    x: &[C],
    out: &mut [C],
    n: usize,
    temps: &[f64],
    in_place: bool,
    keep_exps: bool,
) {
    assert_eq!(x.len(), out.len());
    assert_eq!(x.len(), n * temps.len());
    assert!(temps.iter().all(|&t| t > 0.0 && t.is_finite()));
    let k = crate::kernels::kernels_for::<C>(level);
    let src = if in_place {
        out.copy_from_slice(x);
        out.as_ptr()
    } else {
        x.as_ptr()
    };
    let dst = out.as_mut_ptr();
    let row = |i: usize| {
        // SAFETY: row i lies in both buffers (checked lengths).
        unsafe { (src.add(i * n), dst.add(i * n), temps[i]) }
    };
    // SAFETY: rows are disjoint; source and destination are the same or disjoint buffers.
    unsafe { crate::row::map_rows_streamed(k, op, n, temps.len(), row, keep_exps) }
}

/// log-sum-exp of one row with the kernels of `level`.
pub fn logsumexp<C: Real>(level: SimdLevel, x: &[C], parallel: bool) -> C {
    let k = crate::kernels::kernels_for::<C>(level);
    crate::row::logsumexp_row_with(k, x, parallel)
}

/// Each row's maximum and exp-sum at temperature `t` with the kernels of `level`, for the rows
/// of `n` elements stored one after the other in `x` (see `row_sums` in the kernels).
///
/// # Panics
/// Unless `x` holds `maxima.len()` rows of `1..=BLOCK` elements and `totals` as many entries.
pub fn row_sums<C: Real>(
    level: SimdLevel,
    x: &[C],
    n: usize,
    t: f64,
    maxima: &mut [C],
    totals: &mut [f64],
) {
    let k = crate::kernels::kernels_for::<C>(level);
    crate::kernels::row_sums(k, x, n, t, maxima, totals)
}

/// [`logsumexp`] of each row of `n` elements stored one after the other in `x`, many rows a
/// kernel call, with the kernels of `level`.
///
/// # Panics
/// Unless `x` holds `out.len()` rows of `1..=BLOCK` elements.
pub fn logsumexp_rows<C: Real>(level: SimdLevel, x: &[C], n: usize, out: &mut [C]) {
    let k = crate::kernels::kernels_for::<C>(level);
    crate::row::logsumexp_rows_with(k, x, n, out)
}
