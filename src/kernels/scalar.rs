//! Portable kernels: the slow, obviously correct twin every vector kernel is tested against.
//! They compute in `f64` whatever the element type, so `f32` results are rounded once.

use super::{EntropySums, SumAcc};
use crate::element::Real;

pub(crate) fn max<C: Real>(x: &[C]) -> (C, bool) {
    let mut m = C::NEG_INFINITY;
    let mut nan = false;
    for &v in x {
        if v > m {
            m = v;
        } else if v.is_nan() {
            nan = true;
        }
    }
    (m, nan)
}

/// (v - m) / t as a double word `(hi, lo)`. The maximum is subtracted before dividing by the
/// temperature (contract S5). For `f32` data `v - m` is exact in `f64` and one rounding of the
/// quotient is far below `f32` precision, so `lo` is 0; for `f64` data `lo` carries the
/// rounding errors of the difference (TwoSum) and of the quotient, which would otherwise show
/// at the 1e-13 level for arguments near -700.
#[inline(always)]
fn shifted<C: Real>(v: C, m: f64, t: f64) -> (f64, f64) {
    let v = v.to_f64();
    let d = v - m;
    if d == f64::NEG_INFINITY && v != f64::NEG_INFINITY {
        // Only f64 data can overflow here (f32 and f16 are exact in f64); the value is still
        // x/t - m/t, which is moderate when t > 1 (contract S4: softmax(x / t)).
        return (v / t - m / t, 0.0);
    }
    if std::mem::size_of::<C>() < 8 || !d.is_finite() {
        return (d / t, 0.0);
    }
    let bb = d - v;
    let lo = (v - (d - bb)) + (-m - bb);
    // Near the overflow threshold TwoSum's intermediates overflow (lo = NaN); d alone is then
    // the best there is.
    let lo = if lo.is_finite() { lo } else { 0.0 };
    if t == 1.0 {
        return (d, lo);
    }
    let hi = d / t;
    if !hi.is_finite() || hi == 0.0 {
        return (hi, 0.0);
    }
    let rem = (-hi).mul_add(t, d);
    (hi, (rem + lo) / t)
}

/// exp(hi + lo) for |lo| tiny against 1.
#[inline(always)]
fn exp2w((hi, lo): (f64, f64)) -> f64 {
    let e = hi.exp();
    if lo == 0.0 {
        e
    } else {
        e + e * lo
    }
}

/// Adds exp((x - m) / t) in chunks of 64, chunk sums compensated: the relative error of the
/// total stays a few ulps of f64 whatever the length.
pub(crate) fn sum_exp<C: Real>(x: &[C], m: C, t: f64) -> f64 {
    let m = m.to_f64();
    let mut acc = SumAcc::default();
    for chunk in x.chunks(64) {
        acc.add(chunk.iter().map(|&v| exp2w(shifted(v, m, t))).sum());
    }
    acc.total()
}

/// [`EntropySums`] of `x` with maximum `m`, the sums in chunks of 64 as [`sum_exp`] adds
/// (the same total), in `f64`.
pub(crate) fn entropy_sums<C: Real>(x: &[C], m: C) -> EntropySums {
    let m = m.to_f64();
    let (mut total, mut dot, mut finite) = (SumAcc::default(), SumAcc::default(), 0);
    for chunk in x.chunks(64) {
        let (mut t, mut d) = (0.0, 0.0);
        for &v in chunk {
            let e = exp2w(shifted(v, m, 1.0));
            t += e;
            let v = v.to_f64();
            // A zero weight adds nothing (and its gap may be -inf).
            if e > 0.0 {
                d += e * (v - m);
            }
            finite += (v > f64::NEG_INFINITY) as usize;
        }
        total.add(t);
        dot.add(d);
    }
    EntropySums {
        total: total.total(),
        dot: dot.total(),
        finite,
    }
}

/// # Safety
/// `src` and `dst` are valid for `n` elements; they are either the same pointer or disjoint.
pub(crate) unsafe fn exp_store_sum<C: Real>(
    src: *const C,
    dst: *mut C,
    n: usize,
    m: C,
    t: f64,
) -> f64 {
    let m = m.to_f64();
    let mut acc = SumAcc::default();
    let mut start = 0;
    while start < n {
        let end = (start + 64).min(n);
        let mut s = 0.0;
        for i in start..end {
            // SAFETY: `i < n`: element `i` of `src` is readable and of `dst` writable (the
            // caller's contract); when they are the same pointer, `i` is read before written.
            let e = exp2w(shifted(unsafe { *src.add(i) }, m, t));
            // SAFETY: as above.
            unsafe { *dst.add(i) = C::from_f64(e) };
            s += e;
        }
        acc.add(s);
        start = end;
    }
    acc.total()
}

/// # Safety
/// `dst` is valid for reads and writes of `n` elements.
pub(crate) unsafe fn scale<C: Real>(dst: *mut C, n: usize, factor: f64) {
    for i in 0..n {
        // SAFETY: `i < n`, and `dst` is valid for reads and writes of `n` elements.
        unsafe {
            let p = dst.add(i);
            *p = C::from_f64((*p).to_f64() * factor);
        }
    }
}

/// dst = src * factor, rounded as [`scale`] rounds.
///
/// # Safety
/// `src` valid for reads and `dst` for writes of `n`, the same or disjoint.
pub(crate) unsafe fn scale_to<C: Real>(
    src: *const C,
    dst: *mut C,
    n: usize,
    factor: f64,
    _stream: bool,
) {
    for i in 0..n {
        // SAFETY: `i < n`: element `i` of `src` is readable and of `dst` writable (the
        // caller's contract); when they are the same pointer, `i` is read before written.
        unsafe { *dst.add(i) = C::from_f64((*src.add(i)).to_f64() * factor) };
    }
}

/// [`exp_store_sum`] over each chunk of `chunk` elements, the sums at `sums`
/// ([`Kernels::exp_store_chunk_sums`](super::Kernels)).
///
/// # Safety
/// As [`exp_store_sum`]; `sums` valid for writes of `n.div_ceil(chunk)` values, `chunk > 0`.
pub(crate) unsafe fn exp_store_chunk_sums<C: Real>(
    src: *const C,
    dst: *mut C,
    n: usize,
    m: C,
    t: f64,
    chunk: usize,
    sums: *mut f64,
) {
    // SAFETY: each chunk lies within the `n` elements of `src` and `dst` (this function's
    // contract, which is also `per_chunk`'s).
    unsafe {
        super::algo::per_chunk(n, chunk, sums, |i, len| {
            exp_store_sum(src.add(i), dst.add(i), len, m, t)
        })
    }
}

/// dst = exp((src - m) / t) * factor, rounded as [`exp_store_sum`] then [`scale`] round.
///
/// # Safety
/// As [`exp_store_sum`].
pub(crate) unsafe fn exp_scale<C: Real>(
    src: *const C,
    dst: *mut C,
    n: usize,
    m: C,
    t: f64,
    factor: f64,
    _stream: bool,
) {
    let m = m.to_f64();
    for i in 0..n {
        // SAFETY: `i < n`: element `i` of `src` is readable (the caller's contract).
        let e = C::from_f64(exp2w(shifted(unsafe { *src.add(i) }, m, t)));
        // SAFETY: `i < n`: element `i` of `dst` is writable; `src`'s was read first.
        unsafe { *dst.add(i) = C::from_f64(e.to_f64() * factor) };
    }
}

/// # Safety
/// As [`exp_store_sum`].
pub(crate) unsafe fn write_log_softmax<C: Real>(
    src: *const C,
    dst: *mut C,
    n: usize,
    m: C,
    t: f64,
    log_sum: f64,
    _stream: bool,
) {
    let m = m.to_f64();
    for i in 0..n {
        // SAFETY: `i < n`: element `i` of `src` is readable (the caller's contract).
        let (hi, lo) = shifted(unsafe { *src.add(i) }, m, t);
        // SAFETY: `i < n`: element `i` of `dst` is writable; `src`'s was read first.
        unsafe { *dst.add(i) = C::from_f64((hi - log_sum) + lo) };
    }
}

/// Whole rows, one after the other (see [`Kernels::rows`](super::Kernels)).
///
/// # Safety
/// As [`Kernels::rows`](super::Kernels).
pub(crate) unsafe fn rows<C: Real>(op: crate::op::Op, b: super::RowBatch<C>, store: super::Store) {
    let n = b.n;
    for r in 0..b.count {
        // SAFETY: `r < count`: row `r` of `src` (`n` elements from `r * src_step`) is readable
        // and not written during the call unless it is row `r` of `dst`, which is writable, the
        // same or disjoint; temperature `r` is readable (the `Kernels::rows` contract).
        unsafe {
            let (s, d) = b.row(r);
            let t = b.temp(r);
            let (m, nan) = max(std::slice::from_raw_parts(s, n));
            if nan || m == C::INFINITY || m == C::NEG_INFINITY {
                for i in 0..n {
                    *d.add(i) = C::NAN;
                }
                continue;
            }
            match op {
                crate::op::Op::Softmax => {
                    let total = exp_store_sum(s, d, n, m, t);
                    scale(d, n, 1.0 / total);
                }
                crate::op::Op::LogSoftmax => {
                    let total = sum_exp(std::slice::from_raw_parts(s, n), m, t);
                    write_log_softmax(s, d, n, m, t, total.ln(), store == super::Store::Stream);
                }
            }
        }
    }
}
