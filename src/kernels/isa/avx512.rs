//! [`Simd`] for x86-64 AVX-512F: 8 `f64` lanes in `__m512d`, masks in `__mmask8`, tails by
//! masked loads and stores.

use std::arch::x86_64::*;

use super::Simd;
use crate::kernels::exp_f64_poly::{F64_LN2_HI, F64_LN2_LO, F64_LOG2E, F64_P};

/// Below this the `f64` exp is 0 (exp(-746) already rounds to 0); -inf is clamped here.
pub(crate) const F64_ARG_MIN: f64 = -760.0;

/// The AVX-512F token (with AVX2 and FMA, which every AVX-512F CPU has).
#[derive(Clone, Copy)]
pub(crate) struct Avx512(());

impl Avx512 {
    /// # Safety
    /// The CPU has AVX-512F, AVX2 and FMA.
    #[inline(always)]
    pub(crate) unsafe fn new() -> Avx512 {
        Avx512(())
    }
}

/// For the register-only intrinsics below: an `Avx512` exists only on a CPU with AVX-512F,
/// AVX2 and FMA (`Avx512::new`), all these intrinsics need besides their register operands.
macro_rules! reg {
    ($e:expr) => {
        // SAFETY: see the macro's doc: the CPU has AVX-512F; no memory is accessed.
        unsafe { $e }
    };
}

/// The first `r < 16` lanes.
#[inline(always)]
pub(crate) fn mask16(r: usize) -> __mmask16 {
    debug_assert!(r < 16);
    ((1u32 << r) - 1) as __mmask16
}

/// The first `r < 8` lanes.
#[inline(always)]
fn mask8(r: usize) -> __mmask8 {
    debug_assert!(r < 8);
    ((1u32 << r) - 1) as __mmask8
}

impl Simd for Avx512 {
    type F32 = __m512;
    type M32 = __mmask16;
    const F32_LANES: usize = 16;
    type F64 = __m512d;
    type M64 = __mmask8;
    const F64_LANES: usize = 8;
    const STREAM_ALIGN: usize = 64;
    const MAX_PROPAGATES_NAN: bool = false;

    #[inline(always)]
    fn splat_f32(self, x: f32) -> __m512 {
        reg!(_mm512_set1_ps(x))
    }
    #[inline(always)]
    unsafe fn load_f32(self, p: *const f32) -> __m512 {
        // SAFETY: the 16 elements at `p` are readable (# Safety); the CPU has AVX-512F.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn load_f32_part(self, p: *const f32, r: usize, fill: f32) -> __m512 {
        // SAFETY: the mask enables only the first `r < 16` lanes, all readable (# Safety);
        // masked-off lanes are not accessed. The CPU has AVX-512F.
        unsafe { _mm512_mask_loadu_ps(_mm512_set1_ps(fill), mask16(r), p) }
    }
    #[inline(always)]
    unsafe fn store_f32(self, p: *mut f32, v: __m512) {
        // SAFETY: the 16 elements at `p` are writable (# Safety); the CPU has AVX-512F.
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn store_f32_part(self, p: *mut f32, r: usize, v: __m512) {
        // SAFETY: the mask enables only the first `r < 16` lanes, all writable (# Safety);
        // masked-off lanes are not accessed. The CPU has AVX-512F.
        unsafe { _mm512_mask_storeu_ps(p, mask16(r), v) }
    }
    #[inline(always)]
    unsafe fn stream_f32(self, p: *mut f32, v: __m512) {
        // SAFETY: the 16 elements at `p` are writable and `p` is 64-byte aligned (# Safety).
        unsafe { _mm512_stream_ps(p, v) }
    }
    #[inline(always)]
    fn mul_f32(self, a: __m512, b: __m512) -> __m512 {
        reg!(_mm512_mul_ps(a, b))
    }
    #[inline(always)]
    fn max_f32(self, a: __m512, b: __m512) -> __m512 {
        reg!(_mm512_max_ps(a, b))
    }
    #[inline(always)]
    fn unord_f32(self, a: __m512, b: __m512) -> __mmask16 {
        reg!(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, b))
    }
    #[inline(always)]
    fn or_m32(self, a: __mmask16, b: __mmask16) -> __mmask16 {
        a | b
    }
    #[inline(always)]
    fn none_m32(self) -> __mmask16 {
        0
    }
    #[inline(always)]
    fn any_m32(self, m: __mmask16) -> bool {
        m != 0
    }
    #[inline(always)]
    fn add_f32(self, a: __m512, b: __m512) -> __m512 {
        reg!(_mm512_add_ps(a, b))
    }
    #[inline(always)]
    fn sub_f32(self, a: __m512, b: __m512) -> __m512 {
        reg!(_mm512_sub_ps(a, b))
    }
    #[inline(always)]
    fn mul_add_f32(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        reg!(_mm512_fmadd_ps(a, b, c))
    }
    #[inline(always)]
    fn neg_mul_add_f32(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        reg!(_mm512_fnmadd_ps(a, b, c))
    }
    #[inline(always)]
    fn lt_f32(self, a: __m512, b: __m512) -> __mmask16 {
        reg!(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b))
    }
    #[inline(always)]
    fn clear_f32(self, m: __mmask16, v: __m512) -> __m512 {
        reg!(_mm512_maskz_mov_ps(!m, v))
    }
    #[inline(always)]
    fn shift_into_exponent_f32(self, v: __m512) -> __m512 {
        reg!(_mm512_castsi512_ps(_mm512_slli_epi32::<23>(
            _mm512_castps_si512(v)
        )))
    }
    #[inline(always)]
    fn widen_low(self, v: __m512) -> __m512d {
        reg!(_mm512_cvtps_pd(_mm512_castps512_ps256(v)))
    }
    #[inline(always)]
    fn widen_high(self, v: __m512) -> __m512d {
        reg!(_mm512_cvtps_pd(_mm256_castpd_ps(
            _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))
        )))
    }
    #[inline(always)]
    fn narrow(self, lo: __m512d, hi: __m512d) -> __m512 {
        reg!({
            let l = _mm256_castps_pd(_mm512_cvtpd_ps(lo));
            let h = _mm256_castps_pd(_mm512_cvtpd_ps(hi));
            _mm512_castpd_ps(_mm512_insertf64x4::<1>(_mm512_castpd256_pd512(l), h))
        })
    }
    #[inline(always)]
    fn reduce_max_f32(self, v: __m512) -> f32 {
        reg!(_mm512_reduce_max_ps(v))
    }

    #[inline(always)]
    fn splat_f64(self, x: f64) -> __m512d {
        reg!(_mm512_set1_pd(x))
    }
    #[inline(always)]
    unsafe fn load_f64(self, p: *const f64) -> __m512d {
        // SAFETY: the 8 elements at `p` are readable (# Safety); the CPU has AVX-512F.
        unsafe { _mm512_loadu_pd(p) }
    }
    #[inline(always)]
    unsafe fn load_f64_part(self, p: *const f64, r: usize, fill: f64) -> __m512d {
        // SAFETY: the mask enables only the first `r < 8` lanes, all readable (# Safety);
        // masked-off lanes are not accessed. The CPU has AVX-512F.
        unsafe { _mm512_mask_loadu_pd(_mm512_set1_pd(fill), mask8(r), p) }
    }
    #[inline(always)]
    unsafe fn store_f64(self, p: *mut f64, v: __m512d) {
        // SAFETY: the 8 elements at `p` are writable (# Safety); the CPU has AVX-512F.
        unsafe { _mm512_storeu_pd(p, v) }
    }
    #[inline(always)]
    unsafe fn store_f64_part(self, p: *mut f64, r: usize, v: __m512d) {
        // SAFETY: the mask enables only the first `r < 8` lanes, all writable (# Safety);
        // masked-off lanes are not accessed. The CPU has AVX-512F.
        unsafe { _mm512_mask_storeu_pd(p, mask8(r), v) }
    }
    #[inline(always)]
    unsafe fn stream_f64(self, p: *mut f64, v: __m512d) {
        // SAFETY: the 8 elements at `p` are writable and `p` is 64-byte aligned (# Safety).
        unsafe { _mm512_stream_pd(p, v) }
    }
    #[inline(always)]
    fn stream_fence(self) {
        reg!(_mm_sfence())
    }

    #[inline(always)]
    fn add_f64(self, a: __m512d, b: __m512d) -> __m512d {
        reg!(_mm512_add_pd(a, b))
    }
    #[inline(always)]
    fn sub_f64(self, a: __m512d, b: __m512d) -> __m512d {
        reg!(_mm512_sub_pd(a, b))
    }
    #[inline(always)]
    fn mul_f64(self, a: __m512d, b: __m512d) -> __m512d {
        reg!(_mm512_mul_pd(a, b))
    }
    #[inline(always)]
    fn mul_add_f64(self, a: __m512d, b: __m512d, c: __m512d) -> __m512d {
        reg!(_mm512_fmadd_pd(a, b, c))
    }
    #[inline(always)]
    fn mul_sub_f64(self, a: __m512d, b: __m512d, c: __m512d) -> __m512d {
        reg!(_mm512_fmsub_pd(a, b, c))
    }
    #[inline(always)]
    fn neg_mul_add_f64(self, a: __m512d, b: __m512d, c: __m512d) -> __m512d {
        reg!(_mm512_fnmadd_pd(a, b, c))
    }
    #[inline(always)]
    fn max_f64(self, a: __m512d, b: __m512d) -> __m512d {
        reg!(_mm512_max_pd(a, b))
    }

    #[inline(always)]
    fn eq_f64(self, a: __m512d, b: __m512d) -> __mmask8 {
        reg!(_mm512_cmp_pd_mask::<_CMP_EQ_OQ>(a, b))
    }
    #[inline(always)]
    fn gt_f64(self, a: __m512d, b: __m512d) -> __mmask8 {
        reg!(_mm512_cmp_pd_mask::<_CMP_GT_OQ>(a, b))
    }
    #[inline(always)]
    fn ge_f64(self, a: __m512d, b: __m512d) -> __mmask8 {
        reg!(_mm512_cmp_pd_mask::<_CMP_GE_OQ>(a, b))
    }
    #[inline(always)]
    fn lt_f64(self, a: __m512d, b: __m512d) -> __mmask8 {
        reg!(_mm512_cmp_pd_mask::<_CMP_LT_OQ>(a, b))
    }
    #[inline(always)]
    fn unord_f64(self, a: __m512d, b: __m512d) -> __mmask8 {
        reg!(_mm512_cmp_pd_mask::<_CMP_UNORD_Q>(a, b))
    }
    #[inline(always)]
    fn or_m64(self, a: __mmask8, b: __mmask8) -> __mmask8 {
        a | b
    }
    #[inline(always)]
    fn none_m64(self) -> __mmask8 {
        0
    }
    #[inline(always)]
    fn any_m64(self, m: __mmask8) -> bool {
        m != 0
    }
    #[inline(always)]
    fn keep_f64(self, m: __mmask8, v: __m512d) -> __m512d {
        reg!(_mm512_maskz_mov_pd(m, v))
    }
    #[inline(always)]
    fn clear_f64(self, m: __mmask8, v: __m512d) -> __m512d {
        reg!(_mm512_maskz_mov_pd(!m, v))
    }

    #[inline(always)]
    fn reduce_add_f64(self, v: __m512d) -> f64 {
        reg!(_mm512_reduce_add_pd(v))
    }
    #[inline(always)]
    fn reduce_max_f64(self, v: __m512d) -> f64 {
        reg!(_mm512_reduce_max_pd(v))
    }

    #[inline(always)]
    fn pow2_of_rounded_f64(self, kr: __m512d) -> __m512d {
        reg!(_mm512_castsi512_pd(_mm512_slli_epi64::<52>(
            _mm512_add_epi64(_mm512_castpd_si512(kr), _mm512_set1_epi64(1023),)
        )))
    }
    /// Rounds `k` with VRNDSCALEPD and scales with VSCALEFPD, which rounds once into the
    /// subnormals (no flush); `hi <= F64_ARG_MIN` (-inf included, whatever `lo`) gives 0.
    #[inline(always)]
    fn exp_f64(self, hi: __m512d, lo: __m512d) -> __m512d {
        reg!({
            let amin = _mm512_set1_pd(F64_ARG_MIN);
            let ok = _mm512_cmp_pd_mask::<_CMP_GT_OQ>(hi, amin);
            let hi = _mm512_max_pd(amin, hi);
            let lo = _mm512_maskz_mov_pd(ok, lo);
            let k = _mm512_roundscale_pd::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm512_mul_pd(hi, _mm512_set1_pd(F64_LOG2E)),
            );
            let r = _mm512_fnmadd_pd(k, _mm512_set1_pd(F64_LN2_HI), hi);
            let r = _mm512_add_pd(r, _mm512_fnmadd_pd(k, _mm512_set1_pd(F64_LN2_LO), lo));
            let mut p = _mm512_set1_pd(F64_P[0]);
            for &c in &F64_P[1..] {
                p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(c));
            }
            let r2 = _mm512_mul_pd(r, r);
            let y = _mm512_add_pd(_mm512_fmadd_pd(p, r2, r), _mm512_set1_pd(1.0));
            _mm512_scalef_pd(y, k)
        })
    }
}
