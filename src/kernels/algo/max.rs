//! The row maximum, for `f32`, `f64` and bfloat16.

use crate::element::Real;
use crate::kernels::isa::{Lane, Simd};
use crate::kernels::scalar;

/// The largest entry ignoring NaN, and whether there is a NaN: four vector maxima (from an
/// aligned address on long rows), combined pairwise, then across lanes. x86's maximum returns
/// its second operand on NaN, so the new value goes first and NaN is found by unordered
/// compares; where the level's maximum propagates NaN instead (NEON), a row whose result is
/// NaN (rare, and all NaN in the output) is scanned again by the scalar kernel.
#[inline(always)]
pub(crate) fn max<S: Simd, E: Lane<S> + ScalarMax>(s: S, x: &[E]) -> (E, bool) {
    let (n, p, l) = (x.len(), x.as_ptr(), E::LANES);
    let ninf = E::splat(s, E::MINUS_INF);
    let (mut m0, mut m1, mut m2, mut m3) = (ninf, ninf, ninf, ninf);
    let mut nan = E::none_m(s);
    let mut i = 0;
    // The elements before the first whole vector's worth of aligned bytes, alone, so that the
    // loads below do not straddle cache lines (measured 1.4x slower from L1 and L2 when they
    // do). The maximum, and whether there is a NaN, do not depend on the order.
    let head = p.align_offset(l * std::mem::size_of::<E>());
    if 0 < head && head < l && 8 * l <= n {
        // SAFETY: `head < l <= n` elements from `p`, in `x`.
        let v = unsafe { E::load_part(s, p, head, E::MINUS_INF) };
        if !S::MAX_PROPAGATES_NAN {
            nan = E::or_m(s, nan, E::unord(s, v, v));
        }
        m0 = E::max(s, v, m0);
        i = head;
    }
    while i + 4 * l <= n {
        // SAFETY: `i + 4 l <= n = x.len()`: the four vectors from `p.add(i)` are in `x`.
        let (v0, v1, v2, v3) = unsafe {
            (
                E::load(s, p.add(i)),
                E::load(s, p.add(i + l)),
                E::load(s, p.add(i + 2 * l)),
                E::load(s, p.add(i + 3 * l)),
            )
        };
        if !S::MAX_PROPAGATES_NAN {
            nan = E::or_m(s, nan, E::unord(s, v0, v1));
            nan = E::or_m(s, nan, E::unord(s, v2, v3));
        }
        m0 = E::max(s, v0, m0);
        m1 = E::max(s, v1, m1);
        m2 = E::max(s, v2, m2);
        m3 = E::max(s, v3, m3);
        i += 4 * l;
    }
    while i < n {
        // SAFETY: `i < n = x.len()`: with `n - i >= l` the vector at `p.add(i)` is in `x`;
        // else the last `n - i < l` elements, which `load_part` takes.
        let v = unsafe {
            if n - i >= l {
                E::load(s, p.add(i))
            } else {
                E::load_part(s, p.add(i), n - i, E::MINUS_INF)
            }
        };
        if !S::MAX_PROPAGATES_NAN {
            nan = E::or_m(s, nan, E::unord(s, v, v));
        }
        m0 = E::max(s, v, m0);
        i += l;
    }
    let m = E::reduce_max(s, E::max(s, E::max(s, m0, m1), E::max(s, m2, m3)));
    if S::MAX_PROPAGATES_NAN {
        if m.nan() {
            return E::scalar_max(x);
        }
        return (m, false);
    }
    (m, E::any_m(s, nan))
}

/// The portable kernel's maximum (`scalar::max`'s rules: the first of equal values, NaN
/// skipped and flagged), for a level whose maximum propagates NaN.
pub(crate) trait ScalarMax: Sized {
    /// The largest element ignoring NaN, and whether there is a NaN.
    fn scalar_max(x: &[Self]) -> (Self, bool);
}

impl<C: Real> ScalarMax for C {
    fn scalar_max(x: &[C]) -> (C, bool) {
        scalar::max(x)
    }
}

macro_rules! scalar_max_widened {
    ($t:ty) => {
        impl ScalarMax for $t {
            /// `scalar::max` of the widened values (exact, so the same element).
            fn scalar_max(x: &[$t]) -> ($t, bool) {
                let mut m = f32::NEG_INFINITY;
                let mut nan = false;
                for v in x.iter().map(|v| v.to_f32()) {
                    if v > m {
                        m = v;
                    } else if v.is_nan() {
                        nan = true;
                    }
                }
                (<$t>::from_f32(m), nan)
            }
        }
    };
}

scalar_max_widened!(half::bf16);
scalar_max_widened!(half::f16);
