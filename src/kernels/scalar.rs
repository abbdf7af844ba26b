//! Portable kernels: the slow, obviously correct twin every vector kernel is tested against.
//! They compute in `f64` whatever the element type, so `f32` results are rounded once.

use super::SumAcc;
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

#[inline(always)]
fn shifted<C: Real>(v: C, m: f64, t: f64) -> f64 {
    // The maximum is subtracted before dividing by the temperature (contract S5). Only f64
    // input can overflow here (f32 and f16 are exact in f64): then x/t - m/t is the value.
    let d = v.to_f64() - m;
    if d == f64::NEG_INFINITY && v.to_f64() != f64::NEG_INFINITY {
        v.to_f64() / t - m / t
    } else {
        d / t
    }
}

/// Adds exp((x - m) / t) in chunks of 64, chunk sums compensated: the relative error of the
/// total stays a few ulps of f64 whatever the length.
pub(crate) fn sum_exp<C: Real>(x: &[C], m: C, t: f64) -> f64 {
    let m = m.to_f64();
    let mut acc = SumAcc::default();
    for chunk in x.chunks(64) {
        acc.add(chunk.iter().map(|&v| shifted(v, m, t).exp()).sum());
    }
    acc.total()
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
            let e = shifted(*src.add(i), m, t).exp();
            *dst.add(i) = C::from_f64(e);
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
        let p = dst.add(i);
        *p = C::from_f64((*p).to_f64() * factor);
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
) {
    let m = m.to_f64();
    for i in 0..n {
        *dst.add(i) = C::from_f64(shifted(*src.add(i), m, t) - log_sum);
    }
}
