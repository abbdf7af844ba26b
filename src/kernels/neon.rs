//! NEON kernels (aarch64), 4 `f32` or 2 `f64` lanes. NEON is part of the aarch64 baseline, so
//! these run on every aarch64 CPU; `kernels_for` still hands them out only after
//! `cpu_has(Neon)`.
//!
//! The exps are the AVX2 kernels', operation for operation (see [`super::exp_f32_poly`] and
//! [`super::exp_f64_poly`]), on narrower vectors. A tail shorter than a vector goes through a
//! stack buffer padded with -inf (for exps) or 0 (for elementwise maps). NEON has no
//! non-temporal vector store, so `stream` writes with plain stores.
//!
//! Every `unsafe fn` here requires a CPU with NEON (besides what its `# Safety` says of its
//! pointers): the tables are handed out only after `cpu_has(Neon)`. The NEON intrinsics are
//! `#[target_feature(enable = "neon")]` functions, so calling them from these functions (which
//! are not compiled with that attribute: most are `#[inline(always)]`) takes an `unsafe` block,
//! arithmetic on registers included. A pointer a `# Safety` section here calls valid for reads
//! or writes is also aligned for its element type, as the kernel contracts of `mod.rs` and
//! `scalar.rs` take for granted (the scalar kernels dereference such pointers; the Python
//! bindings read arrays in place only when aligned).

use std::arch::aarch64::*;

use super::exp_f32_poly::{F32_FLUSH, F32_LN2_HI, F32_LN2_LO, F32_LOG2E, F32_P, F32_ROUND_BIASED};
use super::{level_table, rows_kernel, scalar};

/// exp(a), with the operations of the AVX2 `exp_ps`: results below `exp(F32_FLUSH)` are
/// flushed to exactly 0; NaN propagates.
#[inline(always)]
unsafe fn exp_ps(a: float32x4_t) -> float32x4_t {
    // SAFETY: NEON intrinsics and `exp_parts` on registers only, no memory access; the CPU has
    // NEON, as every function here requires of its caller (module doc).
    unsafe { exp_parts::<false>(a, vdupq_n_f32(0.0)) }
}

/// `exp(a + lo)` (LO; else `exp(a)`) for `|lo| <= 2^-10`, with the operations of the AVX2
/// `exp_parts`.
#[inline(always)]
unsafe fn exp_parts<const LO: bool>(a: float32x4_t, lo: float32x4_t) -> float32x4_t {
    // SAFETY: NEON intrinsics on registers only, no memory access; the CPU has NEON, as every
    // function here requires of its caller (module doc).
    unsafe {
        let lim = vdupq_n_f32(F32_FLUSH);
        // True below the limit, -inf included; false for NaN.
        let flush = vcltq_f32(a, lim);
        // FMAX returns NaN when either operand is NaN, so NaN in `a` propagates.
        let a = vmaxq_f32(lim, a);
        let whole = if LO { vaddq_f32(a, lo) } else { a };
        let kr = vfmaq_f32(vdupq_n_f32(F32_ROUND_BIASED), whole, vdupq_n_f32(F32_LOG2E));
        let k = vsubq_f32(kr, vdupq_n_f32(F32_ROUND_BIASED));
        let r = vfmsq_f32(a, k, vdupq_n_f32(F32_LN2_HI));
        let r = vfmsq_f32(r, k, vdupq_n_f32(F32_LN2_LO));
        let r = if LO { vaddq_f32(r, lo) } else { r };
        let r2 = vmulq_f32(r, r);
        let mut p = vdupq_n_f32(F32_P[0]);
        p = vfmaq_f32(vdupq_n_f32(F32_P[1]), p, r);
        p = vfmaq_f32(vdupq_n_f32(F32_P[2]), p, r);
        p = vfmaq_f32(vdupq_n_f32(F32_P[3]), p, r);
        p = vfmaq_f32(vdupq_n_f32(F32_P[4]), p, r);
        let y = vaddq_f32(vfmaq_f32(r, p, r2), vdupq_n_f32(1.0));
        // 2^k from the low bits of `kr`, which hold k + 127 (k in [-126, 127] after the clamp: a
        // normal number).
        let bits = vshlq_n_s32::<23>(vreinterpretq_s32_f32(kr));
        let e = vmulq_f32(y, vreinterpretq_f32_s32(bits));
        vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(e), flush))
    }
}

#[inline(always)]
unsafe fn lo_pd(v: float32x4_t) -> float64x2_t {
    // SAFETY: NEON intrinsics on registers only, no memory access; the CPU has NEON, as every
    // function here requires of its caller (module doc).
    unsafe { vcvt_f64_f32(vget_low_f32(v)) }
}

#[inline(always)]
unsafe fn hi_pd(v: float32x4_t) -> float64x2_t {
    // SAFETY: NEON intrinsics on registers only, no memory access; the CPU has NEON, as every
    // function here requires of its caller (module doc).
    unsafe { vcvt_high_f64_f32(v) }
}

#[inline(always)]
unsafe fn narrow(lo: float64x2_t, hi: float64x2_t) -> float32x4_t {
    // SAFETY: NEON intrinsics on registers only, no memory access; the CPU has NEON, as every
    // function here requires of its caller (module doc).
    unsafe { vcvt_high_f32_f64(vcvt_f32_f64(lo), hi) }
}

/// Loads the `r < 4` elements at `p` (nothing past them is touched), padding with `fill`.
///
/// # Safety
/// `r < 4`; `p` is aligned and valid for reads of `r` elements; NEON.
#[inline(always)]
unsafe fn load_tail(p: *const f32, r: usize, fill: f32) -> float32x4_t {
    let mut buf = [fill; 4];
    // SAFETY: `p` is aligned and valid for `r` reads (the caller's contract); `buf`, a local
    // array (so disjoint from `p`), holds `4 > r` elements, which `vld1q_f32` then reads; NEON:
    // the caller's contract.
    unsafe {
        std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), r);
        vld1q_f32(buf.as_ptr())
    }
}

/// Stores the first `r < 4` lanes of `v` at `p`.
///
/// # Safety
/// `r < 4`; `p` is aligned and valid for writes of `r` elements; NEON.
#[inline(always)]
unsafe fn store_tail(p: *mut f32, r: usize, v: float32x4_t) {
    let mut buf = [0.0f32; 4];
    // SAFETY: `vst1q_f32` writes the 4 elements of the local `buf`, of which the first `r < 4`
    // are copied to `p`, aligned and valid for `r` writes (the caller's contract) and disjoint
    // from the local `buf`; NEON: the caller's contract.
    unsafe {
        vst1q_f32(buf.as_mut_ptr(), v);
        std::ptr::copy_nonoverlapping(buf.as_ptr(), p, r);
    }
}

/// `dst[i] = body(src[i])` over `n` elements, `$lanes` lanes at a time (four vectors per loop
/// turn), the tail (`< $lanes` elements) through `$tail_load` / `$tail_store`. Elementwise,
/// so `src == dst` is fine.
///
/// For use in an `unsafe fn` whose contract makes `src` valid for reads and `dst` for writes
/// of `n` elements (aligned) and requires NEON. `$load(p)` / `$store(p, v)` read / write the
/// `$lanes` elements at `p`, `$tail_load(p, r)` / `$tail_store(p, r, v)` the `r < $lanes`
/// elements at `p`, and need nothing more than that and NEON (`map_ps`, `map_pd`). `$body` is
/// evaluated outside this macro's `unsafe` blocks, after the store's address is computed and
/// before the store: the order of `$store(dst.add(j), $body)`.
macro_rules! map_lanes {
    ($t:ty, $lanes:expr, $load:ident, $store:ident, $tail_load:expr, $tail_store:expr,
     $src:expr, $dst:expr, $n:expr, |$x:ident| $body:expr) => {{
        let (src, dst, n): (*const $t, *mut $t, usize) = ($src, $dst, $n);
        let mut i = 0usize;
        while i + 4 * $lanes <= n {
            // SAFETY: `i + 4 * $lanes <= n`, so the four vectors from `src.add(i)` are among
            // the `n` elements `src` is valid to read (the enclosing function's contract, as
            // is NEON).
            let vs = unsafe {
                [
                    $load(src.add(i)),
                    $load(src.add(i + $lanes)),
                    $load(src.add(i + 2 * $lanes)),
                    $load(src.add(i + 3 * $lanes)),
                ]
            };
            for (q, &$x) in vs.iter().enumerate() {
                // SAFETY: `q < 4` and `i + 4 * $lanes <= n`: `d` is within the `n` elements at
                // `dst`.
                let d = unsafe { dst.add(i + $lanes * q) };
                let v = $body;
                // SAFETY: the vector at `d` ends by `i + 4 * $lanes <= n`: among the `n`
                // elements `dst` is valid to write (the enclosing function's contract, as is
                // NEON).
                unsafe { $store(d, v) };
            }
            i += 4 * $lanes;
        }
        while i + $lanes <= n {
            // SAFETY: `i + $lanes <= n`: the vector at `src.add(i)` is among the `n` elements
            // `src` is valid to read (the enclosing function's contract, as is NEON).
            let $x = unsafe { $load(src.add(i)) };
            // SAFETY: `i + $lanes <= n`: `d` is within the `n` elements at `dst`.
            let d = unsafe { dst.add(i) };
            let v = $body;
            // SAFETY: `i + $lanes <= n`: the vector at `d` is among the `n` elements `dst` is
            // valid to write (the enclosing function's contract, as is NEON).
            unsafe { $store(d, v) };
            i += $lanes;
        }
        if i < n {
            // SAFETY: `i < n < i + $lanes` (the loop above ended): `$tail_load` reads the last
            // `n - i < $lanes` of the `n` elements `src` is valid to read (the enclosing
            // function's contract, as is NEON).
            let $x = unsafe { $tail_load(src.add(i), n - i) };
            // SAFETY: `i < n`: `d` is within the `n` elements at `dst`.
            let d = unsafe { dst.add(i) };
            let v = $body;
            // SAFETY: `$tail_store` writes the `n - i < $lanes` elements at `d`, the last of the
            // `n` elements `dst` is valid to write (the enclosing function's contract, as is
            // NEON).
            unsafe { $tail_store(d, n - i, v) };
        }
    }};
}

/// `map_lanes` over `f32`, 4 lanes.
macro_rules! map_ps {
    ($src:expr, $dst:expr, $n:expr, |$x:ident| $body:expr) => {
        map_lanes!(
            f32,
            4,
            vld1q_f32,
            vst1q_f32,
            |p, r| load_tail(p, r, 0.0),
            store_tail,
            $src,
            $dst,
            $n,
            |$x| $body
        )
    };
}

/// The exp argument of an `f32` row: `x - m` in `f32` when `t == 1` (UNIT), else
/// `(x - m) / t` in `f64`, rounded once to `f32`.
#[derive(Clone, Copy)]
struct ArgF32 {
    m: float32x4_t,
    m64: float64x2_t,
    inv: float64x2_t,
    /// [`super::FoldedArg`] holds: [`exp_arg`] folds the temperature into `f32` arithmetic.
    fold: bool,
    inv_hi: float32x4_t,
    inv_lo: float32x4_t,
    neg_mi_hi: float32x4_t,
    neg_mi_lo: float32x4_t,
    x_floor: float32x4_t,
}

impl ArgF32 {
    #[inline(always)]
    unsafe fn new(m: f32, inv: f64) -> ArgF32 {
        let f = super::FoldedArg::new(m, inv);
        let g = f.unwrap_or_default();
        // SAFETY: NEON broadcasts into registers, no memory access; the CPU has NEON, as every
        // function here requires of its caller (module doc).
        unsafe {
            ArgF32 {
                m: vdupq_n_f32(m),
                m64: vdupq_n_f64(m as f64),
                inv: vdupq_n_f64(inv),
                fold: f.is_some(),
                inv_hi: vdupq_n_f32(g.inv_hi),
                inv_lo: vdupq_n_f32(g.inv_lo),
                neg_mi_hi: vdupq_n_f32(g.neg_mi_hi),
                neg_mi_lo: vdupq_n_f32(g.neg_mi_lo),
                x_floor: vdupq_n_f32(g.x_floor),
            }
        }
    }
}

#[inline(always)]
unsafe fn arg_ps<const UNIT: bool>(c: ArgF32, x: float32x4_t) -> float32x4_t {
    // SAFETY: NEON intrinsics (and `lo_pd`, `hi_pd`, `narrow`) on registers only, no memory access;
    // the CPU has NEON, as every function here requires of its caller (module doc).
    unsafe {
        if UNIT {
            vsubq_f32(x, c.m)
        } else {
            let lo = vmulq_f64(vsubq_f64(lo_pd(x), c.m64), c.inv);
            let hi = vmulq_f64(vsubq_f64(hi_pd(x), c.m64), c.inv);
            narrow(lo, hi)
        }
    }
}

/// `exp((x - m) / t)` of every lane (UNIT: `t` is 1), as the AVX2 `exp_arg`: folded into `f32`
/// arithmetic ([`super::FoldedArg`]) where that holds, else [`arg_ps`] in `f64`.
#[inline(always)]
unsafe fn exp_arg<const UNIT: bool>(c: ArgF32, x: float32x4_t) -> float32x4_t {
    // SAFETY: NEON intrinsics (and `exp_parts`, `exp_ps`, `arg_ps`) on registers only, no memory
    // access; the CPU has NEON, as every function here requires of its caller (module doc).
    unsafe {
        if !UNIT && c.fold {
            // FMAX returns NaN when either operand is NaN, so NaN in `x` propagates.
            let x = vmaxq_f32(c.x_floor, x);
            let a = vfmaq_f32(c.neg_mi_hi, x, c.inv_hi);
            let lo = vfmaq_f32(c.neg_mi_lo, x, c.inv_lo);
            exp_parts::<true>(a, lo)
        } else {
            exp_ps(arg_ps::<UNIT>(c, x))
        }
    }
}

/// `$name(x) -> (max, nan)` over `$t` in vectors of `$lanes` lanes (four per loop turn), the
/// tail loaded with `$tail(ptr, remaining)` padded with -inf. FMAX keeps NaN, so a NaN
/// anywhere makes the vector result NaN; such a row (rare, and all NaN in the output) is then
/// scanned again by the portable kernel for its exact answer.
macro_rules! max_impl {
    ($name:ident, $t:ty, $lanes:expr, $dup:ident, $load:ident, $max:ident, $maxv:ident,
     $tail:expr) => {
        /// # Safety
        /// NEON (the aarch64 baseline).
        pub(crate) unsafe fn $name(x: &[$t]) -> ($t, bool) {
            let n = x.len();
            let p = x.as_ptr();
            // SAFETY: a NEON broadcast into a register; NEON: the caller's contract.
            let ninf = unsafe { $dup(<$t>::NEG_INFINITY) };
            let (mut m0, mut m1, mut m2, mut m3) = (ninf, ninf, ninf, ninf);
            let mut i = 0;
            while i + 4 * $lanes <= n {
                // SAFETY: `i + 4 * $lanes <= n = x.len()`: the four vectors from `p.add(i)`
                // lie in `x`; the rest is NEON register arithmetic (NEON: the caller's
                // contract).
                unsafe {
                    m0 = $max(m0, $load(p.add(i)));
                    m1 = $max(m1, $load(p.add(i + $lanes)));
                    m2 = $max(m2, $load(p.add(i + 2 * $lanes)));
                    m3 = $max(m3, $load(p.add(i + 3 * $lanes)));
                }
                i += 4 * $lanes;
            }
            while i + $lanes <= n {
                // SAFETY: `i + $lanes <= n = x.len()`: the vector at `p.add(i)` lies in `x`;
                // NEON: the caller's contract.
                unsafe { m0 = $max(m0, $load(p.add(i))) };
                i += $lanes;
            }
            if i < n {
                // SAFETY: `i < n < i + $lanes` (the loop above ended): `$tail` reads the last
                // `n - i < $lanes` elements of `x` and nothing past them; NEON: the caller's
                // contract.
                unsafe { m0 = $max(m0, $tail(p.add(i), n - i)) };
            }
            // SAFETY: NEON register arithmetic; NEON: the caller's contract.
            let m = unsafe { $maxv($max($max(m0, m1), $max(m2, m3))) };
            if m.is_nan() {
                return scalar::max(x);
            }
            (m, false)
        }
    };
}

max_impl!(
    max_f32_impl,
    f32,
    4,
    vdupq_n_f32,
    vld1q_f32,
    vmaxq_f32,
    vmaxvq_f32,
    |p, r| load_tail(p, r, f32::NEG_INFINITY)
);

/// Σ exp(arg(x)) over `n` elements, storing the exps when STORE. Four vectors are added in
/// `f32` (two roundings), then widened and accumulated in `f64` lanes, as on AVX2.
///
/// # Safety
/// `src` is valid for reads of `n` elements and, when STORE, `dst` for writes of `n` (aligned;
/// the same pointer or disjoint); NEON.
#[inline(always)]
unsafe fn exp_sum_f32<const UNIT: bool, const STORE: bool>(
    src: *const f32,
    dst: *mut f32,
    n: usize,
    c: ArgF32,
) -> f64 {
    // SAFETY: a NEON broadcast into a register; NEON: the caller's contract.
    let mut a0 = unsafe { vdupq_n_f64(0.0) };
    // SAFETY: a NEON broadcast into a register; NEON: the caller's contract.
    let mut a1 = unsafe { vdupq_n_f64(0.0) };
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: `i + 16 <= n`: the four vectors from `src.add(i)` are among the `n` elements
        // `src` is valid to read and, when STORE, those from `dst.add(i)` among the `n` `dst`
        // is valid to write (the caller's contract); the rest is NEON register arithmetic
        // (`exp_arg`, `lo_pd`, `hi_pd`, intrinsics; NEON: the caller's contract).
        unsafe {
            let e0 = exp_arg::<UNIT>(c, vld1q_f32(src.add(i)));
            let e1 = exp_arg::<UNIT>(c, vld1q_f32(src.add(i + 4)));
            let e2 = exp_arg::<UNIT>(c, vld1q_f32(src.add(i + 8)));
            let e3 = exp_arg::<UNIT>(c, vld1q_f32(src.add(i + 12)));
            if STORE {
                vst1q_f32(dst.add(i), e0);
                vst1q_f32(dst.add(i + 4), e1);
                vst1q_f32(dst.add(i + 8), e2);
                vst1q_f32(dst.add(i + 12), e3);
            }
            let s = vaddq_f32(vaddq_f32(e0, e1), vaddq_f32(e2, e3));
            a0 = vaddq_f64(a0, lo_pd(s));
            a1 = vaddq_f64(a1, hi_pd(s));
        }
        i += 16;
    }
    while i + 4 <= n {
        // SAFETY: `i + 4 <= n`: the vector at `src.add(i)` is among the `n` elements `src` is
        // valid to read and, when STORE, the one at `dst.add(i)` among the `n` `dst` is valid
        // to write (the caller's contract); the rest is NEON register arithmetic (NEON: the
        // caller's contract).
        unsafe {
            let e = exp_arg::<UNIT>(c, vld1q_f32(src.add(i)));
            if STORE {
                vst1q_f32(dst.add(i), e);
            }
            a0 = vaddq_f64(a0, lo_pd(e));
            a1 = vaddq_f64(a1, hi_pd(e));
        }
        i += 4;
    }
    if i < n {
        // Lanes past the end read -inf, whose exp is exactly 0.
        // SAFETY: `i < n < i + 4` (the loop above ended): `load_tail` reads the last `n - i < 4`
        // of the `n` elements `src` is valid to read and, when STORE, `store_tail` writes the
        // last `n - i` of the `n` `dst` is valid to write (the caller's contract, aligned
        // pointers included); the rest is NEON register arithmetic (NEON: the caller's
        // contract).
        unsafe {
            let x = load_tail(src.add(i), n - i, f32::NEG_INFINITY);
            let e = exp_arg::<UNIT>(c, x);
            if STORE {
                store_tail(dst.add(i), n - i, e);
            }
            a0 = vaddq_f64(a0, lo_pd(e));
            a1 = vaddq_f64(a1, hi_pd(e));
        }
    }
    // SAFETY: NEON register arithmetic; NEON: the caller's contract.
    unsafe { vaddvq_f64(vaddq_f64(a0, a1)) }
}

/// # Safety
/// `src` valid for reads and `dst` for writes of `n` (same pointer or disjoint); NEON.
pub(crate) unsafe fn exp_store_sum_f32(
    src: *const f32,
    dst: *mut f32,
    n: usize,
    m: f32,
    t: f64,
) -> f64 {
    if t == 1.0 {
        // SAFETY: the caller's contract (`src` readable and `dst` writable for `n`, the same
        // or disjoint; NEON) is what `exp_sum_f32` with STORE and `ArgF32::new` require.
        return unsafe { exp_sum_f32::<true, true>(src, dst, n, ArgF32::new(m, 1.0)) };
    }
    let inv = 1.0 / t;
    if !inv.is_normal() {
        // SAFETY: the caller's contract (`src` readable and `dst` writable for `n`, the same
        // or disjoint) is what `scalar::exp_store_sum` requires.
        return unsafe { scalar::exp_store_sum(src, dst, n, m, t) };
    }
    // SAFETY: as for `t == 1` above.
    unsafe { exp_sum_f32::<false, true>(src, dst, n, ArgF32::new(m, inv)) }
}

/// # Safety
/// NEON.
pub(crate) unsafe fn sum_exp_f32_impl(x: &[f32], m: f32, t: f64) -> f64 {
    let (p, n) = (x.as_ptr(), x.len());
    if t == 1.0 {
        // SAFETY: `p` is the start of the `n` elements of `x` (readable, aligned); without
        // STORE `exp_sum_f32` does not touch `dst` (null); NEON: the caller's contract.
        return unsafe {
            exp_sum_f32::<true, false>(p, std::ptr::null_mut(), n, ArgF32::new(m, 1.0))
        };
    }
    let inv = 1.0 / t;
    if !inv.is_normal() {
        return scalar::sum_exp(x, m, t);
    }
    // SAFETY: as for `t == 1` above.
    unsafe { exp_sum_f32::<false, false>(p, std::ptr::null_mut(), n, ArgF32::new(m, inv)) }
}

/// # Safety
/// `dst` valid for reads and writes of `n`; NEON.
pub(crate) unsafe fn scale_f32(dst: *mut f32, n: usize, factor: f64) {
    // SAFETY: `dst` is valid for reads and writes of `n` (the caller's contract), so as both
    // `src` and `dst` (the same pointer) it meets `scale_to_f32`'s contract; NEON: the
    // caller's contract.
    unsafe { scale_to_f32(dst, dst, n, factor, false) };
}

/// dst = src * factor, rounded as [`scale_f32`] rounds (it is the same loop).
///
/// # Safety
/// `src` valid for reads and `dst` for writes of `n`, the same or disjoint; NEON.
pub(crate) unsafe fn scale_to_f32(
    src: *const f32,
    dst: *mut f32,
    n: usize,
    factor: f64,
    _stream: bool,
) {
    // SAFETY: a NEON broadcast into a register; NEON: the caller's contract.
    let f = unsafe { vdupq_n_f32(factor as f32) };
    // `map_ps`'s requirements on `src`, `dst` and `n` are this function's.
    map_ps!(src, dst, n, |x| {
        // SAFETY: NEON register arithmetic; NEON: the caller's contract.
        unsafe { vmulq_f32(x, f) }
    });
}

#[inline(always)]
unsafe fn log_f32<const UNIT: bool>(
    c: ArgF32,
    ls: f32,
    ls64: float64x2_t,
    x: float32x4_t,
) -> float32x4_t {
    // SAFETY: NEON intrinsics (and `lo_pd`, `hi_pd`, `narrow`) on registers only, no memory access;
    // the CPU has NEON, as every function here requires of its caller (module doc).
    unsafe {
        if UNIT {
            vsubq_f32(vsubq_f32(x, c.m), vdupq_n_f32(ls))
        } else {
            // (x - m) * inv - ls rounded once, as AVX2's FMSUB: the negation of FMLS's
            // ls - (x - m) * inv.
            let lo = vnegq_f64(vfmsq_f64(ls64, vsubq_f64(lo_pd(x), c.m64), c.inv));
            let hi = vnegq_f64(vfmsq_f64(ls64, vsubq_f64(hi_pd(x), c.m64), c.inv));
            narrow(lo, hi)
        }
    }
}

/// # Safety
/// `src` valid for reads and `dst` for writes of `n`, the same or disjoint; NEON.
#[inline(always)]
unsafe fn write_log_f32<const UNIT: bool>(
    src: *const f32,
    dst: *mut f32,
    n: usize,
    c: ArgF32,
    log_sum: f64,
) {
    let ls = log_sum as f32;
    // SAFETY: a NEON broadcast into a register; NEON: the caller's contract.
    let ls64 = unsafe { vdupq_n_f64(log_sum) };
    // `map_ps`'s requirements on `src`, `dst` and `n` are this function's.
    map_ps!(src, dst, n, |x| {
        // SAFETY: NEON register arithmetic (`log_f32`); NEON: the caller's contract.
        unsafe { log_f32::<UNIT>(c, ls, ls64, x) }
    });
}

/// # Safety
/// `src` valid for reads and `dst` for writes of `n`, the same or disjoint; NEON.
#[inline(always)]
unsafe fn exp_scale_f32_impl<const UNIT: bool>(
    src: *const f32,
    dst: *mut f32,
    n: usize,
    c: ArgF32,
    factor: f64,
) {
    // SAFETY: a NEON broadcast into a register; NEON: the caller's contract.
    let f = unsafe { vdupq_n_f32(factor as f32) };
    // `map_ps`'s requirements on `src`, `dst` and `n` are this function's.
    map_ps!(src, dst, n, |x| {
        // SAFETY: NEON register arithmetic (`exp_arg`); NEON: the caller's contract.
        unsafe { vmulq_f32(exp_arg::<UNIT>(c, x), f) }
    });
}

/// dst = exp((src - m) / t) * factor: the bits `exp_store_sum_f32` then `scale_f32` give.
///
/// # Safety
/// As [`exp_store_sum_f32`].
pub(crate) unsafe fn exp_scale_f32(
    src: *const f32,
    dst: *mut f32,
    n: usize,
    m: f32,
    t: f64,
    factor: f64,
    _stream: bool,
) {
    if t == 1.0 {
        // SAFETY: the caller's contract (`src` readable and `dst` writable for `n`, the same
        // or disjoint; NEON) is `exp_scale_f32_impl`'s; `ArgF32::new` needs only NEON.
        return unsafe { exp_scale_f32_impl::<true>(src, dst, n, ArgF32::new(m, 1.0), factor) };
    }
    let inv = 1.0 / t;
    if !inv.is_normal() {
        // SAFETY: the caller's contract (`src` readable and `dst` writable for `n`, the same
        // or disjoint) is `scalar::exp_store_sum`'s; it writes all `n` elements of `dst`, which
        // `scale_f32` then reads and writes back (NEON: the caller's contract).
        unsafe {
            scalar::exp_store_sum(src, dst, n, m, t);
            return scale_f32(dst, n, factor);
        }
    }
    // SAFETY: as for `t == 1` above.
    unsafe { exp_scale_f32_impl::<false>(src, dst, n, ArgF32::new(m, inv), factor) }
}

/// # Safety
/// As [`exp_store_sum_f32`].
pub(crate) unsafe fn write_log_softmax_f32(
    src: *const f32,
    dst: *mut f32,
    n: usize,
    m: f32,
    t: f64,
    log_sum: f64,
    _stream: bool,
) {
    if t == 1.0 {
        // SAFETY: the caller's contract (`src` readable and `dst` writable for `n`, the same
        // or disjoint; NEON) is `write_log_f32`'s; `ArgF32::new` needs only NEON.
        return unsafe { write_log_f32::<true>(src, dst, n, ArgF32::new(m, 1.0), log_sum) };
    }
    let inv = 1.0 / t;
    if !inv.is_normal() {
        // SAFETY: the caller's contract (`src` readable and `dst` writable for `n`, the same
        // or disjoint) is `scalar::write_log_softmax`'s.
        return unsafe { scalar::write_log_softmax(src, dst, n, m, t, log_sum, false) };
    }
    // SAFETY: as for `t == 1` above.
    unsafe { write_log_f32::<false>(src, dst, n, ArgF32::new(m, inv), log_sum) }
}

rows_kernel!(
    rows_f32,
    f32,
    "neon",
    max_f32_impl,
    exp_store_sum_f32,
    sum_exp_f32_impl,
    scale_f32,
    scale_to_f32,
    exp_scale_f32,
    write_log_softmax_f32,
    super::row_ln_f32
);

level_table!(
    /// The NEON table for `f32`. Only handed out when the CPU has NEON (every aarch64 CPU).
    F32: f32 {
        max: max_f32_impl,
        sum_exp: sum_exp_f32_impl,
        exp_store_sum: exp_store_sum_f32,
        scale: scale_f32,
        scale_to: scale_to_f32,
        exp_scale: exp_scale_f32,
        write_log_softmax: write_log_softmax_f32,
        rows: rows_f32,
        exp_sum_overlapped: None,
    }
);
