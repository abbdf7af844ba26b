//! One row (one contiguous vector) of the softmax family, built from block kernels.
//!
//! A row is cut into blocks of [`BLOCK`] elements at fixed offsets; block sums are combined in
//! block order with compensation. Whether the blocks run on one thread or many, the result is
//! the same bits (contract S9).

use rayon::prelude::*;

use crate::element::Real;
use crate::kernels::{kernels, SumAcc, BLOCK};
use crate::simd::SimdLevel;

/// What a map over lanes computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Probabilities.
    Softmax,
    /// Log-probabilities.
    LogSoftmax,
}

#[derive(Clone, Copy)]
struct SyncPtr<C>(*mut C);
// SAFETY: the pointer is only used for disjoint blocks of one row while the row's owner waits.
unsafe impl<C> Send for SyncPtr<C> {}
unsafe impl<C> Sync for SyncPtr<C> {}

impl<C> SyncPtr<C> {
    // A method, so closures capture the whole (Send) wrapper, not its raw field.
    #[inline(always)]
    fn get(self) -> *mut C {
        self.0
    }
}

fn n_blocks(n: usize) -> usize {
    n.div_ceil(BLOCK)
}

fn block(n: usize, b: usize) -> (usize, usize) {
    let start = b * BLOCK;
    (start, (start + BLOCK).min(n) - start)
}

/// Max ignoring NaN, and whether a NaN was seen. Exact, so blocking does not change it.
fn row_max<C: Real>(x: &[C], parallel: bool) -> (C, bool) {
    let k = kernels::<C>();
    if !parallel || x.len() <= BLOCK {
        return (k.max)(x);
    }
    x.par_chunks(BLOCK).map(k.max).reduce(
        || (C::NEG_INFINITY, false),
        |a, b| (if b.0 > a.0 { b.0 } else { a.0 }, a.1 | b.1),
    )
}

/// Combines per-block sums in block order.
fn sum_blocks(n: usize, parallel: bool, block_sum: impl Fn(usize, usize) -> f64 + Sync) -> f64 {
    let nb = n_blocks(n);
    let mut acc = SumAcc::default();
    if parallel && nb > 1 {
        let sums: Vec<f64> = (0..nb)
            .into_par_iter()
            .map(|b| {
                let (s, len) = block(n, b);
                block_sum(s, len)
            })
            .collect();
        sums.into_iter().for_each(|s| acc.add(s));
    } else {
        for b in 0..nb {
            let (s, len) = block(n, b);
            acc.add(block_sum(s, len));
        }
    }
    acc.total()
}

fn for_blocks(n: usize, parallel: bool, f: impl Fn(usize, usize) + Sync) {
    let nb = n_blocks(n);
    if parallel && nb > 1 {
        (0..nb).into_par_iter().for_each(|b| {
            let (s, len) = block(n, b);
            f(s, len)
        });
    } else {
        for b in 0..nb {
            let (s, len) = block(n, b);
            f(s, len);
        }
    }
}

/// Computes `op` of the row at `src` into `dst`, temperature `t` (positive, finite).
///
/// `parallel`: split the row's blocks over the current rayon pool.
///
/// # Safety
/// `src` is valid for reads and `dst` for writes of `n` elements; they are the same pointer or
/// do not overlap; nothing else accesses them during the call.
pub(crate) unsafe fn map_row<C: Real>(
    op: Op,
    src: *const C,
    dst: *mut C,
    n: usize,
    t: f64,
    parallel: bool,
) {
    if n == 0 {
        return;
    }
    let k = kernels::<C>();
    let parallel = parallel && n > BLOCK;
    let (m, nan) = {
        // SAFETY: valid for reads of n; this shared view ends before any write below.
        let x = std::slice::from_raw_parts(src, n);
        row_max(x, parallel)
    };
    if nan || m == C::INFINITY || m == C::NEG_INFINITY {
        // NaN or +inf anywhere, or no entry above -inf: the whole vector is NaN (contract S6).
        for i in 0..n {
            *dst.add(i) = C::NAN;
        }
        return;
    }
    // x - max may overflow although (x - max) / t is moderate when t > 1 (contract S4: the
    // result is softmax(x / t)). Such rows are rare; the scalar kernels handle them exactly.
    let k = if t > 1.0 && m.to_f64() > C::SUBTRACTION_SAFE_MAX {
        C::kernels_for(SimdLevel::Scalar)
    } else {
        k
    };
    let (s, d) = (SyncPtr(src as *mut C), SyncPtr(dst));
    match op {
        Op::Softmax => {
            let total = sum_blocks(n, parallel, |start, len| {
                // SAFETY: block [start, start+len) lies in the row; blocks are disjoint.
                unsafe { (k.exp_store_sum)(s.get().add(start), d.get().add(start), len, m, t) }
            });
            // total >= 1: the maximum contributes exp(0) = 1.
            let factor = 1.0 / total;
            for_blocks(n, parallel, |start, len| {
                // SAFETY: as above.
                unsafe { (k.scale)(d.get().add(start), len, factor) }
            });
        }
        Op::LogSoftmax => {
            let total = sum_blocks(n, parallel, |start, len| {
                // SAFETY: as above; read only.
                let x = unsafe { std::slice::from_raw_parts(s.get().add(start), len) };
                (k.sum_exp)(x, m, t)
            });
            let log_sum = total.ln();
            for_blocks(n, parallel, |start, len| {
                // SAFETY: as above.
                unsafe {
                    (k.write_log_softmax)(
                        s.get().add(start),
                        d.get().add(start),
                        len,
                        m,
                        t,
                        log_sum,
                    )
                }
            });
        }
    }
}

/// log(Σ exp(x)) of one row (contract S6 for non-finite entries; `-inf` for an empty row).
pub(crate) fn logsumexp_row<C: Real>(x: &[C], parallel: bool) -> C {
    let k = kernels::<C>();
    let parallel = parallel && x.len() > BLOCK;
    let (m, nan) = row_max(x, parallel);
    if nan {
        return C::NAN;
    }
    if m == C::INFINITY || m == C::NEG_INFINITY {
        return m;
    }
    let total = sum_blocks(x.len(), parallel, |start, len| {
        (k.sum_exp)(&x[start..start + len], m, 1.0)
    });
    C::from_f64(m.to_f64() + total.ln())
}
