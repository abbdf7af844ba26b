//! [`Simd`] for aarch64 NEON: 2 `f64` lanes in `float64x2_t`, masks as all-ones lanes. NEON
//! has no non-temporal vector store (`STREAM_ALIGN` is 0: streamed outputs use plain stores),
//! and its `fmax` propagates NaN.
//!
//! NEON is part of the aarch64 baseline, but its intrinsics are `#[target_feature(enable =
//! "neon")]` functions, so calling them from these methods takes an `unsafe` block, register
//! arithmetic included.

use std::arch::aarch64::*;

use super::{exp_f32_flushing, exp_f64_flushing, Simd};

/// The NEON token.
#[derive(Clone, Copy)]
pub(crate) struct Neon(());

impl Neon {
    /// # Safety
    /// The CPU has NEON (every aarch64 CPU does).
    #[inline(always)]
    pub(crate) unsafe fn new() -> Neon {
        Neon(())
    }
}

/// For the register-only intrinsics below: a `Neon` exists only on a CPU with NEON
/// (`Neon::new`), all these intrinsics need besides their register operands.
macro_rules! reg {
    ($e:expr) => {
        // SAFETY: see the macro's doc: the CPU has NEON; no memory is accessed.
        unsafe { $e }
    };
}

#[inline(always)]
fn bits(v: float64x2_t) -> uint64x2_t {
    reg!(vreinterpretq_u64_f64(v))
}

#[inline(always)]
fn float(v: uint64x2_t) -> float64x2_t {
    reg!(vreinterpretq_f64_u64(v))
}

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
    fn splat_f32(self, x: f32) -> float32x4_t {
        reg!(vdupq_n_f32(x))
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
    fn mul_f32(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        reg!(vmulq_f32(a, b))
    }
    #[inline(always)]
    fn max_f32(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        reg!(vmaxq_f32(a, b))
    }
    #[inline(always)]
    fn unord_f32(self, a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        // Neither `a == a` nor `b == b` ordered-equal: one of them is NaN.
        reg!(vmvnq_u32(vandq_u32(vceqq_f32(a, a), vceqq_f32(b, b))))
    }
    #[inline(always)]
    fn or_m32(self, a: uint32x4_t, b: uint32x4_t) -> uint32x4_t {
        reg!(vorrq_u32(a, b))
    }
    #[inline(always)]
    fn none_m32(self) -> uint32x4_t {
        reg!(vdupq_n_u32(0))
    }
    #[inline(always)]
    fn any_m32(self, m: uint32x4_t) -> bool {
        reg!(vmaxvq_u32(m)) != 0
    }
    #[inline(always)]
    fn add_f32(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        reg!(vaddq_f32(a, b))
    }
    #[inline(always)]
    fn sub_f32(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        reg!(vsubq_f32(a, b))
    }
    #[inline(always)]
    fn mul_add_f32(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        reg!(vfmaq_f32(c, a, b))
    }
    #[inline(always)]
    fn mul_sub_f32(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        reg!(vnegq_f32(vfmsq_f32(c, a, b)))
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
    fn neg_mul_add_f32(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        reg!(vfmsq_f32(c, a, b))
    }
    #[inline(always)]
    fn lt_f32(self, a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        reg!(vcltq_f32(a, b))
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
    fn widen_low(self, v: float32x4_t) -> float64x2_t {
        reg!(vcvt_f64_f32(vget_low_f32(v)))
    }
    #[inline(always)]
    fn widen_high(self, v: float32x4_t) -> float64x2_t {
        reg!(vcvt_high_f64_f32(v))
    }
    #[inline(always)]
    fn narrow(self, lo: float64x2_t, hi: float64x2_t) -> float32x4_t {
        reg!(vcvt_high_f32_f64(vcvt_f32_f64(lo), hi))
    }
    #[inline(always)]
    fn reduce_max_f32(self, v: float32x4_t) -> f32 {
        reg!(vmaxvq_f32(v))
    }

    #[inline(always)]
    fn splat_f64(self, x: f64) -> float64x2_t {
        reg!(vdupq_n_f64(x))
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
    fn add_f64(self, a: float64x2_t, b: float64x2_t) -> float64x2_t {
        reg!(vaddq_f64(a, b))
    }
    #[inline(always)]
    fn sub_f64(self, a: float64x2_t, b: float64x2_t) -> float64x2_t {
        reg!(vsubq_f64(a, b))
    }
    #[inline(always)]
    fn mul_f64(self, a: float64x2_t, b: float64x2_t) -> float64x2_t {
        reg!(vmulq_f64(a, b))
    }
    #[inline(always)]
    fn mul_add_f64(self, a: float64x2_t, b: float64x2_t, c: float64x2_t) -> float64x2_t {
        reg!(vfmaq_f64(c, a, b))
    }
    /// The negation of FMLS's `c - a * b`: the same value as x86's FMSUB, but +0 where that
    /// gives -0 and the other way round (the bits NEON has always given).
    #[inline(always)]
    fn mul_sub_f64(self, a: float64x2_t, b: float64x2_t, c: float64x2_t) -> float64x2_t {
        reg!(vnegq_f64(vfmsq_f64(c, a, b)))
    }
    #[inline(always)]
    fn neg_mul_add_f64(self, a: float64x2_t, b: float64x2_t, c: float64x2_t) -> float64x2_t {
        reg!(vfmsq_f64(c, a, b))
    }
    #[inline(always)]
    fn max_f64(self, a: float64x2_t, b: float64x2_t) -> float64x2_t {
        reg!(vmaxq_f64(a, b))
    }

    #[inline(always)]
    fn eq_f64(self, a: float64x2_t, b: float64x2_t) -> uint64x2_t {
        reg!(vceqq_f64(a, b))
    }
    #[inline(always)]
    fn gt_f64(self, a: float64x2_t, b: float64x2_t) -> uint64x2_t {
        reg!(vcgtq_f64(a, b))
    }
    #[inline(always)]
    fn ge_f64(self, a: float64x2_t, b: float64x2_t) -> uint64x2_t {
        reg!(vcgeq_f64(a, b))
    }
    #[inline(always)]
    fn lt_f64(self, a: float64x2_t, b: float64x2_t) -> uint64x2_t {
        reg!(vcltq_f64(a, b))
    }
    #[inline(always)]
    fn unord_f64(self, a: float64x2_t, b: float64x2_t) -> uint64x2_t {
        // Neither `a == a` nor `b == b` ordered-equal: one of them is NaN.
        reg!({
            let both = vandq_u64(vceqq_f64(a, a), vceqq_f64(b, b));
            vreinterpretq_u64_u32(vmvnq_u32(vreinterpretq_u32_u64(both)))
        })
    }
    #[inline(always)]
    fn or_m64(self, a: uint64x2_t, b: uint64x2_t) -> uint64x2_t {
        reg!(vorrq_u64(a, b))
    }
    #[inline(always)]
    fn none_m64(self) -> uint64x2_t {
        reg!(vdupq_n_u64(0))
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
    fn reduce_add_f64(self, v: float64x2_t) -> f64 {
        reg!(vaddvq_f64(v))
    }
    #[inline(always)]
    fn reduce_max_f64(self, v: float64x2_t) -> f64 {
        reg!(vmaxvq_f64(v))
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
}
