//! [`Simd`] for x86-64 AVX2 with FMA and F16C: 4 `f64` lanes in `__m256d`, masks as all-ones lanes.
//! A tail shorter than a vector is loaded and stored in pieces of 2 and 1 lanes.

use std::arch::x86_64::*;

use super::Simd;

token!(
    /// The AVX2 + FMA + F16C token.
    Avx2,
    "AVX2, FMA and F16C"
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
    fn reduce_max_f32(self, v: __m256) -> f32 {
        reg!({
            let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps::<1>(m, m)))
        })
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

    memory! {
        load_f32(p: *const f32) -> __m256 = _mm256_loadu_ps(p);
        store_f32(p: *mut f32, v: __m256) = _mm256_storeu_ps(p, v);
        stream_f32(p: *mut f32, v: __m256) = _mm256_stream_ps(p, v);
        load_f64(p: *const f64) -> __m256d = _mm256_loadu_pd(p);
        store_f64(p: *mut f64, v: __m256d) = _mm256_storeu_pd(p, v);
        stream_f64(p: *mut f64, v: __m256d) = _mm256_stream_pd(p, v);
        load_idx(p: *const i32) -> __m256i = _mm256_loadu_si256(p.cast());
        load_bf16(p: *const u16) -> __m256 = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(
            _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast())),
        ));
        store_bf16(p: *mut u16, v: __m256) = _mm_storeu_si128(p.cast(), bf16_bits(Self(()), v));
        stream_bf16(p: *mut u16, v: __m256) = _mm_stream_si128(p.cast(), bf16_bits(Self(()), v));
        load_f16(p: *const u16) -> __m256 = _mm256_cvtph_ps(_mm_loadu_si128(p.cast()));
        store_f16(p: *mut u16, v: __m256) =
            _mm_storeu_si128(p.cast(), _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v));
        stream_f16(p: *mut u16, v: __m256) =
            _mm_stream_si128(p.cast(), _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v));
    }
    lanewise! {
        stream_fence() -> () = _mm_sfence();
        // A hint: does not fault on any address.
        prefetch(p: *const f32) -> () = _mm_prefetch::<_MM_HINT_T1>(p as *const i8);
        any_m32(m: __m256) -> bool = _mm256_movemask_ps(m) != 0;
        any_m64(m: __m256d) -> bool = _mm256_movemask_pd(m) != 0;
        shift_into_exponent_f32(v: __m256) -> __m256 =
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_castps_si256(v)));
        pow2_of_rounded_f64(kr: __m256d) -> __m256d = _mm256_castsi256_pd(_mm256_slli_epi64::<52>(
            _mm256_add_epi64(_mm256_castpd_si256(kr), _mm256_set1_epi64x(1023)),
        ));
        first_lanes_m64(r: usize) -> __m256d = _mm256_castsi256_pd(_mm256_cmpgt_epi64(
            _mm256_set1_epi64x(r as i64),
            _mm256_set_epi64x(3, 2, 1, 0),
        ));
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
        keep_f32(m: __m256, v: __m256) -> __m256 = _mm256_and_ps(m, v);
        select_f32(m: __m256, a: __m256, b: __m256) -> __m256 = _mm256_blendv_ps(b, a, m);
        permute_f32(v: __m256, i: __m256i) -> __m256 = _mm256_permutevar8x32_ps(v, i);
        div_f64(a: __m256d, b: __m256d) -> __m256d = _mm256_div_pd(a, b);
        select_f64(m: __m256d, a: __m256d, b: __m256d) -> __m256d = _mm256_blendv_pd(b, a, m);
        first_lanes_m32(r: usize) -> __m256 = _mm256_castsi256_ps(_mm256_cmpgt_epi32(
            _mm256_set1_epi32(r as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        ));
    }
    type Idx = __m256i;
    /// The exponent field as an integer in the low mantissa bits of 2^52, less 2^52 + 1023
    /// (exact); the mantissa bits under the exponent of 1.
    #[inline(always)]
    fn split_exponent_f64(self, x: __m256d) -> (__m256d, __m256d) {
        let two52 = 4_503_599_627_370_496.0f64;
        reg!({
            let b = _mm256_castpd_si256(x);
            let field = _mm256_and_si256(_mm256_srli_epi64::<52>(b), _mm256_set1_epi64x(0x7ff));
            let biased = _mm256_or_si256(field, _mm256_set1_epi64x(two52.to_bits() as i64));
            let mant = _mm256_and_si256(b, _mm256_set1_epi64x(0x000f_ffff_ffff_ffff));
            (
                _mm256_sub_pd(_mm256_castsi256_pd(biased), _mm256_set1_pd(two52 + 1023.0)),
                _mm256_castsi256_pd(_mm256_or_si256(mant, _mm256_set1_epi64x(0x3ff << 52))),
            )
        })
    }
    /// A tree of 7 maxima on full vectors: each level halves every vector's candidates and
    /// packs two vectors into one (128-bit halves, then pairs within halves), then one
    /// permutation puts the rows in order.
    #[inline(always)]
    fn max_of_each(self, xs: &[__m256; 16]) -> __m256 {
        reg!({
            // w[k]: lanes 0-3 candidates of row 2k, 4-7 of row 2k + 1.
            let w: [__m256; 4] = std::array::from_fn(|k| {
                let (a, b) = (xs[2 * k], xs[2 * k + 1]);
                _mm256_max_ps(
                    _mm256_permute2f128_ps::<0x20>(a, b),
                    _mm256_permute2f128_ps::<0x31>(a, b),
                )
            });
            // u[k]: half h, lanes 0-1 candidates of row 4k + h, lanes 2-3 of 4k + 2 + h.
            let u: [__m256; 2] = std::array::from_fn(|k| {
                let (a, b) = (w[2 * k], w[2 * k + 1]);
                _mm256_max_ps(
                    _mm256_shuffle_ps::<0b01_00_01_00>(a, b),
                    _mm256_shuffle_ps::<0b11_10_11_10>(a, b),
                )
            });
            // Half h, lane i: the maximum of row 2i + h, which goes to lane 4h + i.
            let r = _mm256_max_ps(
                _mm256_shuffle_ps::<0b10_00_10_00>(u[0], u[1]),
                _mm256_shuffle_ps::<0b11_01_11_01>(u[0], u[1]),
            );
            _mm256_permutevar8x32_ps(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
        })
    }
    /// Each level adds the terms `reduce_add_f64` adds at that level (low half + high half,
    /// then `0 + 1`), for two, then four rows per vector.
    #[inline(always)]
    fn reduce_add_f64_each(self, s: &[__m256d; 16]) -> (__m256d, __m256d) {
        reg!({
            // w[k]: lanes 0-1 for row 2k, 2-3 for row 2k + 1.
            let w: [__m256d; 4] = std::array::from_fn(|k| {
                let (a, b) = (s[2 * k], s[2 * k + 1]);
                _mm256_add_pd(
                    _mm256_permute2f128_pd::<0x20>(a, b),
                    _mm256_permute2f128_pd::<0x31>(a, b),
                )
            });
            // Lanes for rows 4k, 4k + 2, 4k + 1, 4k + 3, then put in order.
            let z = |k: usize| {
                let (a, b) = (w[2 * k], w[2 * k + 1]);
                let sum = _mm256_add_pd(_mm256_unpacklo_pd(a, b), _mm256_unpackhi_pd(a, b));
                _mm256_permute4x64_pd::<0b11_01_10_00>(sum)
            };
            (z(0), z(1))
        })
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
