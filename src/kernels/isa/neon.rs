//! [`Simd`] for aarch64 NEON: 2 `f64` lanes in `float64x2_t`, masks as all-ones lanes. NEON
//! has no non-temporal vector store (`STREAM_ALIGN` is 0: streamed outputs use plain stores),
//! and its `fmax` propagates NaN.
//!
//! NEON is part of the aarch64 baseline, but its intrinsics are `#[target_feature(enable =
//! "neon")]` functions, so calling them from these methods takes an `unsafe` block, register
//! arithmetic included.

use std::arch::aarch64::*;

use super::Simd;

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

    memory! {
        load_bf16(p: *const u16) -> F4 = vreinterpretq_f32_u32(vshll_n_u16::<16>(vld1_u16(p)));
        load_f32(p: *const f32) -> F4 = vld1q_f32(p);
        store_f32(p: *mut f32, v: F4) = vst1q_f32(p, v);
        load_f64(p: *const f64) -> D2 = vld1q_f64(p);
        store_f64(p: *mut f64, v: D2) = vst1q_f64(p, v);
        load_idx(p: *const i32) -> uint8x16_t = vreinterpretq_u8_u32(vmlaq_n_u32(
            vdupq_n_u32(0x0302_0100),
            vld1q_u32(p.cast()),
            0x0404_0404,
        ));
    }
    /// FCVTL (base aarch64; Rust's float16 NEON intrinsics are not stable).
    #[inline(always)]
    unsafe fn load_f16(self, p: *const u16) -> F4 {
        // SAFETY: the 4 `u16`s at `p` are readable (# Safety); the CPU has NEON; the assembly
        // only reads and writes the two registers named.
        unsafe {
            let h = vld1_u16(p);
            let out: F4;
            std::arch::asm!("fcvtl {0:v}.4s, {1:v}.4h", out(vreg) out, in(vreg) h,
                options(pure, nomem, nostack, preserves_flags));
            out
        }
    }
    /// FCVTN, in the default rounding mode (to nearest even).
    #[inline(always)]
    unsafe fn store_f16(self, p: *mut u16, v: F4) {
        // SAFETY: the 4 `u16`s at `p` are writable (# Safety); the CPU has NEON; the assembly
        // only reads and writes the two registers named.
        unsafe {
            let h: uint16x4_t;
            std::arch::asm!("fcvtn {0:v}.4h, {1:v}.4s", out(vreg) h, in(vreg) v,
                options(pure, nomem, nostack, preserves_flags));
            vst1_u16(p, h);
        }
    }
    /// `convert::f32_to_bf16` lane-wise, narrowed by a shift (exact: the rounded bits fit).
    #[inline(always)]
    unsafe fn store_bf16(self, p: *mut u16, v: F4) {
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
    #[inline(always)]
    unsafe fn load_f64_part(self, p: *const f64, r: usize, fill: f64) -> D2 {
        let f = self.splat_f64(fill);
        if r == 0 {
            return f;
        }
        // SAFETY: `r == 1` (`r < 2`, # Safety): the one element at `p` is readable and
        // aligned; the CPU has NEON.
        unsafe { vsetq_lane_f64::<0>(*p, f) }
    }
    #[inline(always)]
    unsafe fn store_f64_part(self, p: *mut f64, r: usize, v: D2) {
        if r == 1 {
            // SAFETY: the one element at `p` is writable and aligned (# Safety).
            unsafe { *p = vgetq_lane_f64::<0>(v) };
        }
    }
    #[inline(always)]
    fn unord_f64(self, a: float64x2_t, b: float64x2_t) -> uint64x2_t {
        // Neither `a == a` nor `b == b` ordered-equal: one of them is NaN.
        reg!({
            let both = vandq_u64(vceqq_f64(a, a), vceqq_f64(b, b));
            vreinterpretq_u64_u32(vmvnq_u32(vreinterpretq_u32_u64(both)))
        })
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
        any_m32(m: M4) -> bool = vmaxvq_u32(m) != 0;
        any_m64(m: M2) -> bool = vmaxvq_u32(vreinterpretq_u32_u64(m)) != 0;
        keep_f64(m: M2, v: D2) -> D2 = vreinterpretq_f64_u64(vandq_u64(m, bits(v)));
        clear_f64(m: M2, v: D2) -> D2 = vreinterpretq_f64_u64(vbicq_u64(bits(v), m));
        clear_f32(m: M4, v: F4) -> F4 = vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(v), m));
        shift_into_exponent_f32(v: F4) -> F4 = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vreinterpretq_s32_f32(v)));
        pow2_of_rounded_f64(kr: D2) -> D2 =
            vreinterpretq_f64_s64(vshlq_n_s64::<52>(vaddq_s64(vreinterpretq_s64_f64(kr), vdupq_n_s64(1023))));
        first_lanes_m64(r: usize) -> M2 =
            vcltq_u64(vsetq_lane_u64::<1>(1, vdupq_n_u64(0)), vdupq_n_u64(r as u64));
        unord_f32(a: F4, b: F4) -> M4 = vmvnq_u32(vandq_u32(vceqq_f32(a, a), vceqq_f32(b, b)));
        keep_f32(m: M4, v: F4) -> F4 = vreinterpretq_f32_u32(vandq_u32(m, vreinterpretq_u32_f32(v)));
        select_f32(m: M4, a: F4, b: F4) -> F4 = vbslq_f32(m, a, b);
        permute_f32(v: F4, i: uint8x16_t) -> F4 =
            vreinterpretq_f32_u8(vqtbl1q_u8(vreinterpretq_u8_f32(v), i));
        div_f64(a: D2, b: D2) -> D2 = vdivq_f64(a, b);
        select_f64(m: M2, a: D2, b: D2) -> D2 = vbslq_f64(m, a, b);
        first_lanes_m32(r: usize) -> M4 =
            vcltq_u32(vcombine_u32(vcreate_u32(1 << 32), vcreate_u32(3 << 32 | 2)), vdupq_n_u32(r as u32));
    }
    /// Lane `l`'s index `i` as the byte indices `4 i .. 4 i + 4` of the table lookup.
    type Idx = uint8x16_t;
    /// The exponent field as an integer in the low mantissa bits of 2^52, less 2^52 + 1023
    /// (exact); the mantissa bits under the exponent of 1.
    #[inline(always)]
    fn split_exponent_f64(self, x: D2) -> (D2, D2) {
        let two52 = 4_503_599_627_370_496.0f64;
        let field = reg!(vandq_u64(vshrq_n_u64::<52>(bits(x)), vdupq_n_u64(0x7ff)));
        let biased = float(reg!(vorrq_u64(field, vdupq_n_u64(two52.to_bits()))));
        let mant = reg!(vandq_u64(bits(x), vdupq_n_u64(0x000f_ffff_ffff_ffff)));
        (
            reg!(vsubq_f64(biased, vdupq_n_f64(two52 + 1023.0))),
            float(reg!(vorrq_u64(mant, vdupq_n_u64(0x3ff << 52)))),
        )
    }
}
