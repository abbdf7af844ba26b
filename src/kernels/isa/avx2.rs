//! [`Simd`] for x86-64 AVX2 with FMA: 4 `f64` lanes in `__m256d`, masks as all-ones lanes.
//! A tail shorter than a vector is loaded and stored in pieces of 2 and 1 lanes.

use std::arch::x86_64::*;

use super::{exp_f32_flushing, exp_f64_flushing, Simd};

token!(
    /// The AVX2 + FMA token.
    Avx2,
    "AVX2 and FMA"
);

/// Every lane rounded to bfloat16 as `convert::f32_to_bf16` rounds, the 8 bits in order (an
/// unsigned saturating pack of the two halves: every lane is below 2^16, so it is exact).
#[inline(always)]
fn bf16_bits(_s: Avx2, v: __m256) -> __m128i {
    reg!({
        let b = _mm256_castps_si256(v);
        let high = _mm256_srli_epi32::<16>(b);
        let odd = _mm256_and_si256(high, _mm256_set1_epi32(1));
        let bias = _mm256_add_epi32(odd, _mm256_set1_epi32(0x7FFF));
        let rounded = _mm256_srli_epi32::<16>(_mm256_add_epi32(b, bias));
        let quiet = _mm256_or_si256(high, _mm256_set1_epi32(0x40));
        let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
        let r = _mm256_blendv_epi8(rounded, quiet, nan);
        _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256::<1>(r))
    })
}

impl Simd for Avx2 {
    type F32 = __m256;
    type M32 = __m256;
    const F32_LANES: usize = 8;
    type F64 = __m256d;
    type M64 = __m256d;
    const F64_LANES: usize = 4;
    const STREAM_ALIGN: usize = 32;
    const MAX_PROPAGATES_NAN: bool = false;
    const F32_LOG_IN_F32: bool = false;

    #[inline(always)]
    unsafe fn load_bf16(self, p: *const u16) -> __m256 {
        // SAFETY: the 8 `u16`s (16 bytes) at `p` are readable (# Safety); the CPU has AVX2
        // (the token).
        unsafe {
            let wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()));
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(wide))
        }
    }
    #[inline(always)]
    unsafe fn store_bf16(self, p: *mut u16, v: __m256) {
        // SAFETY: the 8 `u16`s (16 bytes) at `p` are writable (# Safety); the CPU has AVX2
        // (the token).
        unsafe { _mm_storeu_si128(p.cast(), bf16_bits(self, v)) }
    }
    #[inline(always)]
    unsafe fn stream_bf16(self, p: *mut u16, v: __m256) {
        // SAFETY: the 8 `u16`s at `p` are writable and `p` is 16-byte aligned (# Safety).
        unsafe { _mm_stream_si128(p.cast(), bf16_bits(self, v)) }
    }
    #[inline(always)]
    unsafe fn load_f32(self, p: *const f32) -> __m256 {
        // SAFETY: the 8 elements at `p` are readable (# Safety); the CPU has AVX (the token).
        unsafe { _mm256_loadu_ps(p) }
    }
    /// Built from 4-, 2- and 1-lane loads: a masked load is slow on some CPUs.
    #[inline(always)]
    unsafe fn load_f32_part(self, p: *const f32, r: usize, fill: f32) -> __m256 {
        let f = reg!(_mm_set1_ps(fill));
        if r >= 4 {
            // SAFETY: `4 <= r < 8` (# Safety): the 4 elements at `p` and the `r - 4 < 4` at
            // `p.add(4)` are the `r` readable ones.
            unsafe { _mm256_set_m128(load_quarter(p.add(4), r - 4, f), _mm_loadu_ps(p)) }
        } else {
            // SAFETY: `r < 4`: `load_quarter`'s requirements are this function's.
            unsafe { _mm256_set_m128(f, load_quarter(p, r, f)) }
        }
    }
    #[inline(always)]
    unsafe fn store_f32(self, p: *mut f32, v: __m256) {
        // SAFETY: the 8 elements at `p` are writable (# Safety); the CPU has AVX (the token).
        unsafe { _mm256_storeu_ps(p, v) }
    }
    /// In pieces of 4, 2 and 1 lanes (a masked store is microcoded and slow on some CPUs).
    #[inline(always)]
    unsafe fn store_f32_part(self, p: *mut f32, r: usize, v: __m256) {
        // Throughout, the `r` elements at `p` are writable (# Safety), `p` and `r` moving
        // together.
        let (mut p, mut r) = (p, r);
        let mut lo = reg!(_mm256_castps256_ps128(v));
        if r >= 4 {
            // SAFETY: `r >= 4`: the 4 elements at `p` are writable, and `p.add(4)` is within
            // them or one past the end.
            unsafe {
                _mm_storeu_ps(p, lo);
                lo = _mm256_extractf128_ps::<1>(v);
                p = p.add(4);
            }
            r -= 4;
        }
        if r >= 2 {
            let two = reg!(_mm_cvtsi128_si64(_mm_castps_si128(lo)));
            // SAFETY: `r >= 2`: the 2 elements (8 bytes) at `p` are writable, written
            // unaligned (`p` is only `f32`-aligned); `p.add(2)` is within them or one past
            // the end.
            unsafe {
                p.cast::<i64>().write_unaligned(two);
                p = p.add(2);
            }
            lo = reg!(_mm_movehl_ps(lo, lo));
            r -= 2;
        }
        if r == 1 {
            // SAFETY: `r == 1`: the element at `p` is writable and `f32`-aligned.
            unsafe { _mm_store_ss(p, lo) };
        }
    }
    #[inline(always)]
    unsafe fn stream_f32(self, p: *mut f32, v: __m256) {
        // SAFETY: the 8 elements at `p` are writable and `p` is 32-byte aligned (# Safety).
        unsafe { _mm256_stream_ps(p, v) }
    }
    #[inline(always)]
    fn any_m32(self, m: __m256) -> bool {
        reg!(_mm256_movemask_ps(m)) != 0
    }
    #[inline(always)]
    fn exp_f32(self, a: __m256) -> __m256 {
        exp_f32_flushing::<Self, false>(self, a, self.splat_f32(0.0))
    }
    #[inline(always)]
    fn exp_f32_near(self, a: __m256, lo: __m256) -> __m256 {
        exp_f32_flushing::<Self, true>(self, a, lo)
    }
    #[inline(always)]
    fn shift_into_exponent_f32(self, v: __m256) -> __m256 {
        reg!(_mm256_castsi256_ps(_mm256_slli_epi32::<23>(
            _mm256_castps_si256(v)
        )))
    }
    #[inline(always)]
    fn reduce_max_f32(self, v: __m256) -> f32 {
        reg!({
            let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps::<1>(m, m)))
        })
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
    fn prefetch(self, p: *const f32) {
        // A hint: does not fault on any address.
        reg!(_mm_prefetch::<_MM_HINT_T1>(p as *const i8))
    }

    #[inline(always)]
    fn any_m64(self, m: __m256d) -> bool {
        reg!(_mm256_movemask_pd(m)) != 0
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
    #[inline(always)]
    fn first_lanes_m64(self, r: usize) -> __m256d {
        reg!(_mm256_castsi256_pd(_mm256_cmpgt_epi64(
            _mm256_set1_epi64x(r as i64),
            _mm256_set_epi64x(3, 2, 1, 0),
        )))
    }
    lanewise! {
        splat_f32(x: f32) -> __m256 = _mm256_set1_ps(x);
        mul_f32(a: __m256, b: __m256) -> __m256 = _mm256_mul_ps(a, b);
        max_f32(a: __m256, b: __m256) -> __m256 = _mm256_max_ps(a, b);
        unord_f32(a: __m256, b: __m256) -> __m256 = _mm256_cmp_ps::<_CMP_UNORD_Q>(a, b);
        or_m32(a: __m256, b: __m256) -> __m256 = _mm256_or_ps(a, b);
        none_m32() -> __m256 = _mm256_setzero_ps();
        add_f32(a: __m256, b: __m256) -> __m256 = _mm256_add_ps(a, b);
        sub_f32(a: __m256, b: __m256) -> __m256 = _mm256_sub_ps(a, b);
        mul_add_f32(a: __m256, b: __m256, c: __m256) -> __m256 = _mm256_fmadd_ps(a, b, c);
        mul_sub_f32(a: __m256, b: __m256, c: __m256) -> __m256 = _mm256_fmsub_ps(a, b, c);
        neg_mul_add_f32(a: __m256, b: __m256, c: __m256) -> __m256 = _mm256_fnmadd_ps(a, b, c);
        lt_f32(a: __m256, b: __m256) -> __m256 = _mm256_cmp_ps::<_CMP_LT_OQ>(a, b);
        clear_f32(m: __m256, v: __m256) -> __m256 = _mm256_andnot_ps(m, v);
        widen_low(v: __m256) -> __m256d = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
        widen_high(v: __m256) -> __m256d = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v));
        narrow(lo: __m256d, hi: __m256d) -> __m256 =
            _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
        splat_f64(x: f64) -> __m256d = _mm256_set1_pd(x);
        add_f64(a: __m256d, b: __m256d) -> __m256d = _mm256_add_pd(a, b);
        sub_f64(a: __m256d, b: __m256d) -> __m256d = _mm256_sub_pd(a, b);
        mul_f64(a: __m256d, b: __m256d) -> __m256d = _mm256_mul_pd(a, b);
        mul_add_f64(a: __m256d, b: __m256d, c: __m256d) -> __m256d = _mm256_fmadd_pd(a, b, c);
        mul_sub_f64(a: __m256d, b: __m256d, c: __m256d) -> __m256d = _mm256_fmsub_pd(a, b, c);
        neg_mul_add_f64(a: __m256d, b: __m256d, c: __m256d) -> __m256d = _mm256_fnmadd_pd(a, b, c);
        max_f64(a: __m256d, b: __m256d) -> __m256d = _mm256_max_pd(a, b);
        eq_f64(a: __m256d, b: __m256d) -> __m256d = _mm256_cmp_pd::<_CMP_EQ_OQ>(a, b);
        gt_f64(a: __m256d, b: __m256d) -> __m256d = _mm256_cmp_pd::<_CMP_GT_OQ>(a, b);
        ge_f64(a: __m256d, b: __m256d) -> __m256d = _mm256_cmp_pd::<_CMP_GE_OQ>(a, b);
        lt_f64(a: __m256d, b: __m256d) -> __m256d = _mm256_cmp_pd::<_CMP_LT_OQ>(a, b);
        unord_f64(a: __m256d, b: __m256d) -> __m256d = _mm256_cmp_pd::<_CMP_UNORD_Q>(a, b);
        or_m64(a: __m256d, b: __m256d) -> __m256d = _mm256_or_pd(a, b);
        none_m64() -> __m256d = _mm256_setzero_pd();
        keep_f64(m: __m256d, v: __m256d) -> __m256d = _mm256_and_pd(m, v);
        clear_f64(m: __m256d, v: __m256d) -> __m256d = _mm256_andnot_pd(m, v);
    }
}

/// The `r < 4` elements at `p` over `f`: `r == 1` one `f32` load, `r >= 2` the first two as
/// one unaligned 8-byte read (`p` is only `f32`-aligned), the third inserted.
///
/// # Safety
/// `r < 4`; `p` valid for reads of `r` `f32`s (and `f32`-aligned); AVX2.
#[inline(always)]
unsafe fn load_quarter(p: *const f32, r: usize, f: __m128) -> __m128 {
    // SAFETY: the `r < 4` elements at `p` are readable (# Safety): `r == 1` reads element 0,
    // `r == 2` the 8 bytes of elements 0 and 1 (unaligned), `r == 3` those and element 2 at
    // `p.add(2)`; the intrinsics need SSE4.1 at most, which AVX2 implies.
    unsafe {
        match r {
            0 => f,
            1 => _mm_move_ss(f, _mm_load_ss(p)),
            _ => {
                let two = _mm_castsi128_pd(_mm_cvtsi64_si128(p.cast::<i64>().read_unaligned()));
                let low = _mm_castpd_ps(_mm_move_sd(_mm_castps_pd(f), two));
                if r == 2 {
                    low
                } else {
                    _mm_insert_ps::<0x20>(low, _mm_load_ss(p.add(2)))
                }
            }
        }
    }
}
