//! [`Simd`] for x86-64 AVX2 with FMA: 4 `f64` lanes in `__m256d`, masks as all-ones lanes.
//! A tail shorter than a vector is loaded and stored in pieces of 2 and 1 lanes.

use std::arch::x86_64::*;

use super::{exp_f64_flushing, Simd};

/// The AVX2 + FMA token.
#[derive(Clone, Copy)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[inline(always)]
    pub(crate) unsafe fn new() -> Avx2 {
        Avx2(())
    }
}

/// For the register-only intrinsics below: an `Avx2` exists only on a CPU with AVX2 and FMA
/// (`Avx2::new`), all these intrinsics need besides their register operands.
macro_rules! reg {
    ($e:expr) => {
        // SAFETY: see the macro's doc: the CPU has AVX2 and FMA; no memory is accessed.
        unsafe { $e }
    };
}

impl Simd for Avx2 {
    type F64 = __m256d;
    type M64 = __m256d;
    const F64_LANES: usize = 4;
    const STREAM_ALIGN: usize = 32;
    const MAX_PROPAGATES_NAN: bool = false;

    #[inline(always)]
    fn splat_f64(self, x: f64) -> __m256d {
        reg!(_mm256_set1_pd(x))
    }
    #[inline(always)]
    unsafe fn load_f64(self, p: *const f64) -> __m256d {
        // SAFETY: the 4 elements at `p` are readable (# Safety); the CPU has AVX (the token).
        unsafe { _mm256_loadu_pd(p) }
    }
    #[inline(always)]
    unsafe fn load_f64_part(self, p: *const f64, r: usize, fill: f64) -> __m256d {
        let f = reg!(_mm_set1_pd(fill));
        // SAFETY: the `r < 4` elements at `p` are readable (# Safety): `r == 1` reads element
        // 0, `r == 2` elements 0 and 1, `r == 3` those and element 2 at `p.add(2)`;
        // `_mm_loadl_pd` dereferences its `f64`-aligned `p`. The CPU has AVX (the token).
        let (lo, hi) = unsafe {
            match r {
                0 => (f, f),
                1 => (_mm_loadl_pd(f, p), f),
                2 => (_mm_loadu_pd(p), f),
                _ => (_mm_loadu_pd(p), _mm_loadl_pd(f, p.add(2))),
            }
        };
        reg!(_mm256_set_m128d(hi, lo))
    }
    #[inline(always)]
    unsafe fn store_f64(self, p: *mut f64, v: __m256d) {
        // SAFETY: the 4 elements at `p` are writable (# Safety); the CPU has AVX (the token).
        unsafe { _mm256_storeu_pd(p, v) }
    }
    #[inline(always)]
    unsafe fn store_f64_part(self, p: *mut f64, r: usize, v: __m256d) {
        let mut lo = reg!(_mm256_castpd256_pd128(v));
        let mut p = p;
        if r >= 2 {
            // SAFETY: `2 <= r < 4` (# Safety): the 2 elements at `p` are writable, and
            // `p.add(2)` is within the `r` or one past the end.
            unsafe {
                _mm_storeu_pd(p, lo);
                lo = _mm256_extractf128_pd::<1>(v);
                p = p.add(2);
            }
        }
        if r % 2 == 1 {
            // SAFETY: `r` is 1 or 3: the element at `p` (element 0, or element 2 after the
            // move above) is the last of the `r` writable ones, `f64`-aligned (# Safety).
            unsafe { _mm_store_sd(p, lo) };
        }
    }
    #[inline(always)]
    unsafe fn stream_f64(self, p: *mut f64, v: __m256d) {
        // SAFETY: the 4 elements at `p` are writable and `p` is 32-byte aligned (# Safety).
        unsafe { _mm256_stream_pd(p, v) }
    }
    #[inline(always)]
    fn stream_fence(self) {
        reg!(_mm_sfence())
    }

    #[inline(always)]
    fn add_f64(self, a: __m256d, b: __m256d) -> __m256d {
        reg!(_mm256_add_pd(a, b))
    }
    #[inline(always)]
    fn sub_f64(self, a: __m256d, b: __m256d) -> __m256d {
        reg!(_mm256_sub_pd(a, b))
    }
    #[inline(always)]
    fn mul_f64(self, a: __m256d, b: __m256d) -> __m256d {
        reg!(_mm256_mul_pd(a, b))
    }
    #[inline(always)]
    fn mul_add_f64(self, a: __m256d, b: __m256d, c: __m256d) -> __m256d {
        reg!(_mm256_fmadd_pd(a, b, c))
    }
    #[inline(always)]
    fn mul_sub_f64(self, a: __m256d, b: __m256d, c: __m256d) -> __m256d {
        reg!(_mm256_fmsub_pd(a, b, c))
    }
    #[inline(always)]
    fn neg_mul_add_f64(self, a: __m256d, b: __m256d, c: __m256d) -> __m256d {
        reg!(_mm256_fnmadd_pd(a, b, c))
    }
    #[inline(always)]
    fn max_f64(self, a: __m256d, b: __m256d) -> __m256d {
        reg!(_mm256_max_pd(a, b))
    }

    #[inline(always)]
    fn eq_f64(self, a: __m256d, b: __m256d) -> __m256d {
        reg!(_mm256_cmp_pd::<_CMP_EQ_OQ>(a, b))
    }
    #[inline(always)]
    fn gt_f64(self, a: __m256d, b: __m256d) -> __m256d {
        reg!(_mm256_cmp_pd::<_CMP_GT_OQ>(a, b))
    }
    #[inline(always)]
    fn ge_f64(self, a: __m256d, b: __m256d) -> __m256d {
        reg!(_mm256_cmp_pd::<_CMP_GE_OQ>(a, b))
    }
    #[inline(always)]
    fn lt_f64(self, a: __m256d, b: __m256d) -> __m256d {
        reg!(_mm256_cmp_pd::<_CMP_LT_OQ>(a, b))
    }
    #[inline(always)]
    fn unord_f64(self, a: __m256d, b: __m256d) -> __m256d {
        reg!(_mm256_cmp_pd::<_CMP_UNORD_Q>(a, b))
    }
    #[inline(always)]
    fn or_m64(self, a: __m256d, b: __m256d) -> __m256d {
        reg!(_mm256_or_pd(a, b))
    }
    #[inline(always)]
    fn none_m64(self) -> __m256d {
        reg!(_mm256_setzero_pd())
    }
    #[inline(always)]
    fn any_m64(self, m: __m256d) -> bool {
        reg!(_mm256_movemask_pd(m)) != 0
    }
    #[inline(always)]
    fn keep_f64(self, m: __m256d, v: __m256d) -> __m256d {
        reg!(_mm256_and_pd(m, v))
    }
    #[inline(always)]
    fn clear_f64(self, m: __m256d, v: __m256d) -> __m256d {
        reg!(_mm256_andnot_pd(m, v))
    }

    #[inline(always)]
    fn reduce_add_f64(self, v: __m256d) -> f64 {
        reg!({
            let s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd::<1>(v));
            _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)))
        })
    }
    #[inline(always)]
    fn reduce_max_f64(self, v: __m256d) -> f64 {
        reg!({
            let m = _mm_max_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd::<1>(v));
            _mm_cvtsd_f64(_mm_max_sd(m, _mm_unpackhi_pd(m, m)))
        })
    }

    #[inline(always)]
    fn pow2_of_rounded_f64(self, kr: __m256d) -> __m256d {
        reg!(_mm256_castsi256_pd(_mm256_slli_epi64::<52>(
            _mm256_add_epi64(_mm256_castpd_si256(kr), _mm256_set1_epi64x(1023),)
        )))
    }
    #[inline(always)]
    fn exp_f64(self, hi: __m256d, lo: __m256d) -> __m256d {
        exp_f64_flushing(self, hi, lo)
    }
}
