//! [`Simd`] for aarch64 NEON: 2 `f64` lanes in `float64x2_t`, masks as all-ones lanes. NEON
//! has no non-temporal vector store (`STREAM_ALIGN` is 0: streamed outputs use plain stores),
//! and its `fmax` propagates NaN.
//!
//! NEON is part of the aarch64 baseline, but its intrinsics are `#[target_feature(enable =
//! "neon")]` functions, so calling them from these methods takes an `unsafe` block, register
//! arithmetic included.

use std::arch::aarch64::*;

use super::{exp_f32_flushing, exp_f64_flushing, Simd};

token!(
    /// The NEON token.
    Neon,
    "NEON (every aarch64 CPU does)"
);

#[inline(always)]
fn bits(v: float64x2_t) -> uint64x2_t {
    reg!(vreinterpretq_u64_f64(v))
}

#[inline(always)]
fn float(v: uint64x2_t) -> float64x2_t {
    reg!(vreinterpretq_f64_u64(v))
}

// Short names for the lane-wise methods below.
type F4 = float32x4_t;
type D2 = float64x2_t;
type M4 = uint32x4_t;
type M2 = uint64x2_t;

impl Simd for Neon {
    type F32 = float32x4_t;
    type M32 = uint32x4_t;
    const F32_LANES: usize = 4;
    type F64 = float64x2_t;
    type M64 = uint64x2_t;
    const F64_LANES: usize = 2;
    const STREAM_ALIGN: usize = 0;
    const MAX_PROPAGATES_NAN: bool = true;
    const F32_LOG_IN_F32: bool = false;

    #[inline(always)]
    unsafe fn load_bf16(self, p: *const u16) -> float32x4_t {
        // SAFETY: the 4 `u16`s at `p` are readable (# Safety); the CPU has NEON.
        unsafe { vreinterpretq_f32_u32(vshll_n_u16::<16>(vld1_u16(p))) }
    }
    /// `convert::f32_to_bf16` lane-wise, narrowed by a shift (exact: the rounded bits fit).
    #[inline(always)]
    unsafe fn store_bf16(self, p: *mut u16, v: float32x4_t) {
        // SAFETY: the 4 `u16`s at `p` are writable (# Safety); the CPU has NEON.
        unsafe {
            let b = vreinterpretq_u32_f32(v);
            let high = vshrq_n_u32::<16>(b);
            let bias = vaddq_u32(vandq_u32(high, vdupq_n_u32(1)), vdupq_n_u32(0x7FFF));
            let rounded = vshrn_n_u32::<16>(vaddq_u32(b, bias));
            let quiet = vmovn_u32(vorrq_u32(high, vdupq_n_u32(0x40)));
            let ordered = vmovn_u32(vceqq_f32(v, v));
            vst1_u16(p, vbsl_u16(ordered, rounded, quiet));
        }
    }
    /// A plain store: NEON has no non-temporal one (`STREAM_ALIGN` is 0, so never called).
    #[inline(always)]
    unsafe fn stream_bf16(self, p: *mut u16, v: float32x4_t) {
        // SAFETY: the caller's contract is `store_bf16`'s.
        unsafe { self.store_bf16(p, v) }
    }
    #[inline(always)]
    unsafe fn load_f32(self, p: *const f32) -> float32x4_t {
        // SAFETY: the 4 elements at `p` are readable (# Safety); the CPU has NEON.
        unsafe { vld1q_f32(p) }
    }
    /// Through a stack buffer padded with `fill`.
    #[inline(always)]
    unsafe fn load_f32_part(self, p: *const f32, r: usize, fill: f32) -> float32x4_t {
        let mut buf = [fill; 4];
        // SAFETY: `p` is valid for `r < 4` reads (# Safety); `buf`, a local array (so disjoint
        // from `p`), holds 4 elements, which `vld1q_f32` then reads; the CPU has NEON.
        unsafe {
            std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), r);
            vld1q_f32(buf.as_ptr())
        }
    }
    #[inline(always)]
    unsafe fn store_f32(self, p: *mut f32, v: float32x4_t) {
        // SAFETY: the 4 elements at `p` are writable (# Safety); the CPU has NEON.
        unsafe { vst1q_f32(p, v) }
    }
    /// Through a stack buffer.
    #[inline(always)]
    unsafe fn store_f32_part(self, p: *mut f32, r: usize, v: float32x4_t) {
        let mut buf = [0.0f32; 4];
        // SAFETY: `vst1q_f32` writes the 4 elements of the local `buf`, of which the first
        // `r < 4` are copied to `p`, valid for `r` writes (# Safety) and disjoint from `buf`.
        unsafe {
            vst1q_f32(buf.as_mut_ptr(), v);
            std::ptr::copy_nonoverlapping(buf.as_ptr(), p, r);
        }
    }
    #[inline(always)]
    unsafe fn stream_f32(self, p: *mut f32, v: float32x4_t) {
        // SAFETY: as `store_f32` (# Safety); never called, `STREAM_ALIGN` being 0.
        unsafe { self.store_f32(p, v) }
    }
    #[inline(always)]
    fn unord_f32(self, a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        // Neither `a == a` nor `b == b` ordered-equal: one of them is NaN.
        reg!(vmvnq_u32(vandq_u32(vceqq_f32(a, a), vceqq_f32(b, b))))
    }
    #[inline(always)]
    fn any_m32(self, m: uint32x4_t) -> bool {
        reg!(vmaxvq_u32(m)) != 0
    }
    #[inline(always)]
    fn exp_f32(self, a: float32x4_t) -> float32x4_t {
        exp_f32_flushing::<Self, false>(self, a, self.splat_f32(0.0))
    }
    #[inline(always)]
    fn exp_f32_near(self, a: float32x4_t, lo: float32x4_t) -> float32x4_t {
        exp_f32_flushing::<Self, true>(self, a, lo)
    }
    #[inline(always)]
    fn clear_f32(self, m: uint32x4_t, v: float32x4_t) -> float32x4_t {
        reg!(vreinterpretq_f32_u32(vbicq_u32(
            vreinterpretq_u32_f32(v),
            m
        )))
    }
    #[inline(always)]
    fn shift_into_exponent_f32(self, v: float32x4_t) -> float32x4_t {
        reg!(vreinterpretq_f32_s32(vshlq_n_s32::<23>(
            vreinterpretq_s32_f32(v)
        )))
    }

    #[inline(always)]
    unsafe fn load_f64(self, p: *const f64) -> float64x2_t {
        // SAFETY: the 2 elements at `p` are readable (# Safety); the CPU has NEON.
        unsafe { vld1q_f64(p) }
    }
    #[inline(always)]
    unsafe fn load_f64_part(self, p: *const f64, r: usize, fill: f64) -> float64x2_t {
        let f = self.splat_f64(fill);
        if r == 0 {
            return f;
        }
        // SAFETY: `r == 1` (`r < 2`, # Safety): the one element at `p` is readable and
        // aligned; the CPU has NEON.
        unsafe { vsetq_lane_f64::<0>(*p, f) }
    }
    #[inline(always)]
    unsafe fn store_f64(self, p: *mut f64, v: float64x2_t) {
        // SAFETY: the 2 elements at `p` are writable (# Safety); the CPU has NEON.
        unsafe { vst1q_f64(p, v) }
    }
    #[inline(always)]
    unsafe fn store_f64_part(self, p: *mut f64, r: usize, v: float64x2_t) {
        if r == 1 {
            // SAFETY: the one element at `p` is writable and aligned (# Safety).
            unsafe { *p = vgetq_lane_f64::<0>(v) };
        }
    }
    #[inline(always)]
    unsafe fn stream_f64(self, p: *mut f64, v: float64x2_t) {
        // SAFETY: as `store_f64` (# Safety); never called, `STREAM_ALIGN` being 0.
        unsafe { self.store_f64(p, v) }
    }
    #[inline(always)]
    fn stream_fence(self) {}

    #[inline(always)]
    fn prefetch(self, _p: *const f32) {}
    #[inline(always)]
    fn unord_f64(self, a: float64x2_t, b: float64x2_t) -> uint64x2_t {
        // Neither `a == a` nor `b == b` ordered-equal: one of them is NaN.
        reg!({
            let both = vandq_u64(vceqq_f64(a, a), vceqq_f64(b, b));
            vreinterpretq_u64_u32(vmvnq_u32(vreinterpretq_u32_u64(both)))
        })
    }
    #[inline(always)]
    fn any_m64(self, m: uint64x2_t) -> bool {
        reg!(vmaxvq_u32(vreinterpretq_u32_u64(m))) != 0
    }
    #[inline(always)]
    fn keep_f64(self, m: uint64x2_t, v: float64x2_t) -> float64x2_t {
        float(reg!(vandq_u64(m, bits(v))))
    }
    #[inline(always)]
    fn clear_f64(self, m: uint64x2_t, v: float64x2_t) -> float64x2_t {
        float(reg!(vbicq_u64(bits(v), m)))
    }

    #[inline(always)]
    fn pow2_of_rounded_f64(self, kr: float64x2_t) -> float64x2_t {
        reg!(vreinterpretq_f64_s64(vshlq_n_s64::<52>(vaddq_s64(
            vreinterpretq_s64_f64(kr),
            vdupq_n_s64(1023),
        ))))
    }
    #[inline(always)]
    fn exp_f64(self, hi: float64x2_t, lo: float64x2_t) -> float64x2_t {
        exp_f64_flushing(self, hi, lo)
    }
    #[inline(always)]
    fn first_lanes_m64(self, r: usize) -> uint64x2_t {
        reg!(vcltq_u64(
            vsetq_lane_u64::<1>(1, vdupq_n_u64(0)),
            vdupq_n_u64(r as u64)
        ))
    }
    lanewise! {
        splat_f32(x: f32) -> F4 = vdupq_n_f32(x);
        mul_f32(a: F4, b: F4) -> F4 = vmulq_f32(a, b);
        max_f32(a: F4, b: F4) -> F4 = vmaxq_f32(a, b);
        or_m32(a: M4, b: M4) -> M4 = vorrq_u32(a, b);
        none_m32() -> M4 = vdupq_n_u32(0);
        add_f32(a: F4, b: F4) -> F4 = vaddq_f32(a, b);
        sub_f32(a: F4, b: F4) -> F4 = vsubq_f32(a, b);
        mul_add_f32(a: F4, b: F4, c: F4) -> F4 = vfmaq_f32(c, a, b);
        mul_sub_f32(a: F4, b: F4, c: F4) -> F4 = vnegq_f32(vfmsq_f32(c, a, b));
        neg_mul_add_f32(a: F4, b: F4, c: F4) -> F4 = vfmsq_f32(c, a, b);
        lt_f32(a: F4, b: F4) -> M4 = vcltq_f32(a, b);
        widen_low(v: F4) -> D2 = vcvt_f64_f32(vget_low_f32(v));
        widen_high(v: F4) -> D2 = vcvt_high_f64_f32(v);
        narrow(lo: D2, hi: D2) -> F4 = vcvt_high_f32_f64(vcvt_f32_f64(lo), hi);
        reduce_max_f32(v: F4) -> f32 = vmaxvq_f32(v);
        splat_f64(x: f64) -> D2 = vdupq_n_f64(x);
        add_f64(a: D2, b: D2) -> D2 = vaddq_f64(a, b);
        sub_f64(a: D2, b: D2) -> D2 = vsubq_f64(a, b);
        mul_f64(a: D2, b: D2) -> D2 = vmulq_f64(a, b);
        mul_add_f64(a: D2, b: D2, c: D2) -> D2 = vfmaq_f64(c, a, b);
        // mul_sub: the negation of FMLS's `c - a b`, the value of x86's FMSUB but +0 where
        // that gives -0 and the other way round (the bits NEON has always given).
        mul_sub_f64(a: D2, b: D2, c: D2) -> D2 = vnegq_f64(vfmsq_f64(c, a, b));
        neg_mul_add_f64(a: D2, b: D2, c: D2) -> D2 = vfmsq_f64(c, a, b);
        max_f64(a: D2, b: D2) -> D2 = vmaxq_f64(a, b);
        eq_f64(a: D2, b: D2) -> M2 = vceqq_f64(a, b);
        gt_f64(a: D2, b: D2) -> M2 = vcgtq_f64(a, b);
        ge_f64(a: D2, b: D2) -> M2 = vcgeq_f64(a, b);
        lt_f64(a: D2, b: D2) -> M2 = vcltq_f64(a, b);
        or_m64(a: M2, b: M2) -> M2 = vorrq_u64(a, b);
        none_m64() -> M2 = vdupq_n_u64(0);
        reduce_add_f64(v: D2) -> f64 = vaddvq_f64(v);
        reduce_max_f64(v: D2) -> f64 = vmaxvq_f64(v);
    }
}
