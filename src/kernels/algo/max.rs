//! The row maximum, for `f32`, `f64` and the 16-bit formats, and the maxima of a row's chunks.

use crate::element::Real;
use crate::kernels::isa::{Lane, Simd, MAX_F32_LANES};
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

/// [`max`] of each consecutive chunk of `chunk` elements of `x` (the last one shorter) into
/// `out`, widened to `f32` by `widen` (exact); whether any chunk holds NaN. As
/// [`super::chunk_maxima`] over [`max`], but where `chunk` is a multiple of four vectors, the
/// chunks go a group of one per lane at a time: each chunk's vector maxima, then one tree of
/// shuffles for the whole group ([`Simd::max_of_each`]) instead of a reduction per chunk. The
/// maximum is exact in any order, so the values are `max`'s. A group holding NaN (which the
/// vector maxima may carry) goes again chunk by chunk through `max`.
///
/// # Panics
/// If `out.len()` is not `x.len().div_ceil(chunk)`, or `chunk` is 0.
#[inline(always)]
pub(crate) fn chunk_maxima<S: Simd, E: Lane<S, V = S::F32> + ScalarMax>(
    s: S,
    x: &[E],
    chunk: usize,
    out: &mut [f32],
    widen: impl Fn(E) -> f32,
) -> bool {
    assert_eq!(out.len(), x.len().div_ceil(chunk), "one maximum per chunk");
    let (l, p) = (S::F32_LANES, x.as_ptr());
    let whole_groups = if chunk.is_multiple_of(4 * l) {
        x.len() / (chunk * l)
    } else {
        0
    };
    let mut nan = false;
    for g in 0..whole_groups {
        let mut each = [E::splat(s, E::MINUS_INF); MAX_F32_LANES];
        let mut bad = E::none_m(s);
        for (c, slot) in each.iter_mut().enumerate().take(l) {
            let start = (g * l + c) * chunk;
            // SAFETY: `start + 4 l <= (g l + c + 1) chunk <= x.len()` (`chunk` is a multiple
            // of `4 l`, and group `g` is whole).
            let mut m = unsafe { load4(s, p, start) };
            for i in (start + 4 * l..start + chunk).step_by(4 * l) {
                // SAFETY: as above, `i + 4 l <= start + chunk`, `i` stepping by `4 l`.
                let v = unsafe { load4(s, p, i) };
                for k in 0..4 {
                    bad = E::or_m(s, bad, E::unord(s, v[k], m[k]));
                    m[k] = E::max(s, v[k], m[k]);
                }
            }
            bad = E::or_m(s, bad, E::unord(s, m[0], m[1]));
            bad = E::or_m(s, bad, E::unord(s, m[2], m[3]));
            *slot = E::max(s, E::max(s, m[0], m[1]), E::max(s, m[2], m[3]));
        }
        let o = &mut out[g * l..(g + 1) * l];
        if E::any_m(s, bad) {
            // NaN may have reached the vector maxima: `max` skips it.
            let xs = &x[g * l * chunk..(g + 1) * l * chunk];
            nan |= super::chunk_maxima(xs, chunk, o, |c| {
                let (m, n) = max(s, c);
                (widen(m), n)
            });
        } else {
            // SAFETY: `o` holds `l = F32_LANES` elements.
            unsafe { s.store_f32(o.as_mut_ptr(), s.max_of_each(&each)) };
        }
    }
    let rest = whole_groups * l;
    nan | super::chunk_maxima(&x[rest * chunk..], chunk, &mut out[rest..], |c| {
        let (m, n) = max(s, c);
        (widen(m), n)
    })
}

/// The four vectors from `p.add(i)`.
///
/// # Safety
/// They are valid for reads.
#[inline(always)]
unsafe fn load4<S: Simd, E: Lane<S>>(s: S, p: *const E, i: usize) -> [E::V; 4] {
    let l = E::LANES;
    // SAFETY: this function's contract.
    unsafe {
        [
            E::load(s, p.add(i)),
            E::load(s, p.add(i + l)),
            E::load(s, p.add(i + 2 * l)),
            E::load(s, p.add(i + 3 * l)),
        ]
    }
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

/// Each level's `chunk_maxima` (f32, f64, bfloat16, float16) against the scalar `max` of each
/// chunk: chunk sizes the grouped path takes and others, rows with whole groups and a short
/// last chunk, NaN and `-inf` in chunks, and ties of signed zeros.
#[cfg(test)]
mod tests {
    use crate::kernels::{kernels_for, scalar, HalfRows};
    use crate::simd::{supported_levels, SimdLevel};

    fn rows() -> Vec<Vec<f64>> {
        let mut rows = Vec::new();
        for n in [1, 63, 64, 65, 1000, 1024, 4096, 4096 + 17, 16_384] {
            let base: Vec<f64> = (0..n)
                .map(|i| ((i * 7919 % 1009) as f64 - 504.0) / 37.0)
                .collect();
            rows.push(base.clone());
            let mut special = base.clone();
            for (j, v) in special.iter_mut().enumerate() {
                match j % 97 {
                    3 => *v = f64::NAN,
                    5 | 6 => *v = f64::NEG_INFINITY,
                    _ => {}
                }
            }
            rows.push(special);
            // Chunks all -inf, and maxima at signed zeros.
            rows.push(
                (0..n)
                    .map(|i| {
                        if i % 300 < 150 {
                            f64::NEG_INFINITY
                        } else {
                            0.0
                        }
                    })
                    .collect(),
            );
            rows.push(
                (0..n)
                    .map(|i| if i % 2 == 0 { -0.0 } else { -(i as f64) })
                    .collect(),
            );
            rows.push(
                (0..n)
                    .map(|i| if i % 5 == 0 { 0.0 } else { -0.0 })
                    .collect(),
            );
        }
        rows
    }

    fn check<T: Copy, O: Copy + PartialEq + std::fmt::Debug>(
        of: impl Fn(f64) -> T,
        kernel: impl Fn(SimdLevel) -> Option<fn(&[T], usize, &mut [O]) -> bool>,
        reference: impl Fn(&[T]) -> (O, bool),
    ) -> usize {
        let mut checked = 0;
        for level in supported_levels() {
            let Some(chunk_maxima) = kernel(level) else {
                continue;
            };
            for row in rows() {
                let x: Vec<T> = row.iter().map(|&v| of(v)).collect();
                for chunk in [1, 3, 16, 32, 64, 128, 1000] {
                    let mut out = vec![reference(&x[..1]).0; x.len().div_ceil(chunk)];
                    let nan = chunk_maxima(&x, chunk, &mut out);
                    let mut any = false;
                    for (c, (o, xs)) in out.iter().zip(x.chunks(chunk)).enumerate() {
                        let (m, n) = reference(xs);
                        any |= n;
                        assert_eq!(*o, m, "{level:?} n={} chunk={chunk} #{c}", x.len());
                    }
                    assert_eq!(nan, any, "{level:?} n={} chunk={chunk}", x.len());
                    checked += 1;
                }
            }
        }
        checked
    }

    #[test]
    fn chunk_maxima_are_each_chunks_maximum_at_every_level() {
        let levels = supported_levels().len();
        let f32s = check(
            |v| v as f32,
            |l| Some(kernels_for::<f32>(l).chunk_maxima),
            scalar::max::<f32>,
        );
        let f64s = check(
            |v| v,
            |l| Some(kernels_for::<f64>(l).chunk_maxima),
            scalar::max::<f64>,
        );
        assert_eq!(f32s, f64s);
        assert_eq!(f32s, levels * 45 * 7);
        let bf16s = check(
            half::bf16::from_f64,
            |l| half::bf16::kernels_for(l).map(|k| k.chunk_maxima),
            |xs: &[half::bf16]| {
                let w: Vec<f32> = xs.iter().map(|v| v.to_f32()).collect();
                scalar::max(&w)
            },
        );
        let f16s = check(
            half::f16::from_f64,
            |l| half::f16::kernels_for(l).map(|k| k.chunk_maxima),
            |xs: &[half::f16]| {
                let w: Vec<f32> = xs.iter().map(|v| v.to_f32()).collect();
                scalar::max(&w)
            },
        );
        assert_eq!(bf16s, f16s);
        // Every vector level has 16-bit kernels; the scalar level has none.
        assert_eq!(bf16s, (levels - 1) * 45 * 7);
    }
}
