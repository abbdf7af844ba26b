//! [`Simd`] for x86-64 AVX-512F: 8 `f64` lanes in `__m512d`, masks in `__mmask8`, tails by
//! masked loads and stores.

use std::arch::x86_64::*;

use super::Simd;
use crate::kernels::exp_f32_poly::{F32_LN2_HI, F32_LN2_LO, F32_LOG2E, F32_ROUND};
use crate::kernels::exp_f64_poly::{F64_LN2_HI, F64_LN2_LO, F64_LOG2E, F64_P};

/// Below this the `f64` exp is 0 (exp(-746) already rounds to 0); -inf is clamped here.
pub(crate) const F64_ARG_MIN: f64 = -760.0;

token!(
    /// The AVX-512F token (with AVX2 and FMA, which every AVX-512F CPU has).
    Avx512,
    "AVX-512F, AVX2 and FMA"
);

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

/// Below this the `f32` exp is 0 (exp(-104) already rounds to 0); -inf is clamped here.
pub(crate) const F32_ARG_MIN: f32 = -110.0;

/// Below this the `f32` exp rounds to exactly 0 (exp(-104) < 2^-150, half the smallest
/// subnormal), so [`exp_reduced`] gives 0 there without computing.
const F32_ZERO_BELOW: f32 = -104.0;

/// 2^(j/16) for j in 0..16, each correctly rounded to `f32` (computed with 60-digit decimals).
const F32_EXP2_SIXTEENTHS: [f32; 16] = [
    1.0,
    1.044_273_7,
    1.090_507_7,
    1.138_788_6,
    1.189_207_1,
    1.241_857_8,
    1.296_839_6,
    1.354_255_6,
    std::f32::consts::SQRT_2,
    1.476_826_2,
    1.542_210_8,
    1.610_490_3,
    1.681_792_9,
    1.756_252_2,
    1.834_008_1,
    1.915_206_6,
];

/// exp of every lane. `k = round(16 a / ln 2)`, `r = a - k ln2/16` (Cody-Waite, |r| <= ln2/32),
/// `exp(a) = 2^floor(k/16) * 2^((k mod 16)/16) * exp(r)`: the middle factor comes from a
/// 16-entry table in one register (VPERMPS), so `exp(r)` needs only a degree-3 polynomial,
/// whose truncation error (r^4/24 < 9.2e-9) is under 0.08 ulp. Fewer multiply-adds than the
/// degree-6 polynomial over |r| <= ln2/2 that AVX2 uses, same accuracy class (the ulp test in
/// tests/kernels.rs bounds both).
///
/// 12 vector operations: `k` is rounded by the shifter's addition (fused with the multiply, so
/// no separate round and no float-to-integer conversion for the table index), and VSCALEFPS
/// floors its exponent operand itself.
#[inline(always)]
fn exp_ps(s: Avx512, a: __m512) -> __m512 {
    // NaN in `a` propagates: MAXPS returns its second operand when either is NaN.
    exp_reduced::<false>(
        s,
        reg!(_mm512_max_ps(_mm512_set1_ps(F32_ARG_MIN), a)),
        reg!(_mm512_setzero_ps()),
    )
}

/// `exp(a + lo)` (LO; else `exp(a)`) for `a` at least [`F32_ARG_MIN`] - 64 (or NaN) and `|lo|`
/// at most 2^-10: `k` is taken from `a` alone and `lo` joins the reduced argument `r`, so
/// `|r| <= ln2/32 + 2^-10` and the polynomial's truncation error stays under 0.1 ulp.
#[inline(always)]
pub(crate) fn exp_reduced<const LO: bool>(_s: Avx512, a: __m512, lo: __m512) -> __m512 {
    // SAFETY: an `Avx512` exists only on a CPU with AVX-512F, AVX2 and FMA; the one load
    // reads `F32_EXP2_SIXTEENTHS`, an array of exactly the 16 `f32` it reads.
    unsafe {
        // Lanes whose exp rounds to 0 anyway (a < -104: exp(a) < 2^-150) are computed at a = 0
        // and zeroed at the end: VSCALEFPS underflowing to 0 takes a slow microcode path on some
        // CPUs (3x slower softmax on rows with 10% masked tokens), and masked rows are common.
        // NaN compares false, so it still propagates.
        let under = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, _mm512_set1_ps(F32_ZERO_BELOW));
        let a = _mm512_mask_mov_ps(a, under, _mm512_setzero_ps());
        // |16 a / ln 2| < 2^12, far inside the 2^22 within which adding F32_ROUND leaves the
        // rounded integer in the low mantissa bits.
        let shifted = _mm512_fmadd_ps(
            a,
            _mm512_set1_ps(16.0 * F32_LOG2E),
            _mm512_set1_ps(F32_ROUND),
        );
        let k = _mm512_sub_ps(shifted, _mm512_set1_ps(F32_ROUND));
        // k * LN2_HI / 16 is exact: LN2_HI has 9 significant bits and |k| < 2^12.
        let r = _mm512_fnmadd_ps(k, _mm512_set1_ps(F32_LN2_HI / 16.0), a);
        let r = _mm512_fnmadd_ps(k, _mm512_set1_ps(F32_LN2_LO / 16.0), r);
        let r = if LO { _mm512_add_ps(r, lo) } else { r };
        // VPERMPS reads the low 4 bits of each index: the shifted float's low bits are k mod 16
        // (F32_ROUND's bits are a multiple of 16), also for k < 0.
        let t = _mm512_permutexvar_ps(
            _mm512_castps_si512(shifted),
            _mm512_loadu_ps(F32_EXP2_SIXTEENTHS.as_ptr()),
        );
        // exp(r) - 1 ~ r + r^2 (1/2 + r/6); then t * exp(r) = t + t (exp(r) - 1), rounded once.
        let p = _mm512_fmadd_ps(_mm512_set1_ps(1.0 / 6.0), r, _mm512_set1_ps(0.5));
        let em1 = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
        let y = _mm512_fmadd_ps(t, em1, t);
        // y * 2^floor(k / 16) (VSCALEFPS floors; k / 16 is exact), rounded once (into the
        // subnormals when k is very negative).
        _mm512_maskz_mov_ps(
            !under,
            _mm512_scalef_ps(y, _mm512_mul_ps(k, _mm512_set1_ps(0.0625))),
        )
    }
}

/// Every lane rounded to bfloat16 as `convert::f32_to_bf16` rounds, the 16 bits in order: an
/// unsigned saturating pack of the two 256-bit halves (every lane is below 2^16, so the pack
/// is exact) put back in order. Not VPMOVDW: the compiler folds it into its store form, which
/// is microcoded on AMD's Zen 4 (the store pass took three times as long).
#[inline(always)]
fn bf16_bits(_s: Avx512, v: __m512) -> __m256i {
    reg!({
        let b = _mm512_castps_si512(v);
        let high = _mm512_srli_epi32::<16>(b);
        let odd = _mm512_and_si512(high, _mm512_set1_epi32(1));
        let bias = _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF));
        let rounded = _mm512_srli_epi32::<16>(_mm512_add_epi32(b, bias));
        let quiet = _mm512_or_si512(high, _mm512_set1_epi32(0x40));
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
        let r = _mm512_mask_mov_epi32(rounded, nan, quiet);
        let lo = _mm512_castsi512_si256(r);
        let packed = _mm256_packus_epi32(lo, _mm512_extracti64x4_epi64::<1>(r));
        // The pack interleaves 64-bit quarters: lo 0-3, hi 0-3, lo 4-7, hi 4-7.
        _mm256_permute4x64_epi64::<0b11_01_10_00>(packed)
    })
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
    const F32_LOG_IN_F32: bool = true;

    #[inline(always)]
    fn narrow(self, lo: __m512d, hi: __m512d) -> __m512 {
        reg!({
            let l = _mm256_castps_pd(_mm512_cvtpd_ps(lo));
            let h = _mm256_castps_pd(_mm512_cvtpd_ps(hi));
            _mm512_castpd_ps(_mm512_insertf64x4::<1>(_mm512_castpd256_pd512(l), h))
        })
    }

    /// Lanes `i + (i + 4)`, then `i + (i + 2)`, then `0 + 1`: written out (rather than
    /// `_mm512_reduce_add_pd`, whose order is the library's to choose) so that the packed
    /// kernels can repeat it lane-wise with the same bits.
    #[inline(always)]
    fn reduce_add_f64(self, v: __m512d) -> f64 {
        reg!({
            let four = _mm256_add_pd(_mm512_castpd512_pd256(v), _mm512_extractf64x4_pd::<1>(v));
            let two = _mm_add_pd(
                _mm256_castpd256_pd128(four),
                _mm256_extractf128_pd::<1>(four),
            );
            _mm_cvtsd_f64(two) + _mm_cvtsd_f64(_mm_unpackhi_pd(two, two))
        })
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
    type Idx = __m512i;
    #[inline(always)]
    fn split_exponent_f64(self, x: __m512d) -> (__m512d, __m512d) {
        reg!((
            _mm512_getexp_pd(x),
            _mm512_getmant_pd::<_MM_MANT_NORM_1_2, _MM_MANT_SIGN_SRC>(x)
        ))
    }
    /// A tree of 15 maxima on full vectors: each level halves every vector's candidates and
    /// packs two vectors into one (128-bit blocks, then pairs within blocks), then one
    /// permutation puts the rows in order.
    #[inline(always)]
    fn max_of_each(self, xs: &[__m512; 16]) -> __m512 {
        reg!({
            // w[k]: lanes 0-7 candidates of row 2k, 8-15 of row 2k + 1.
            let w: [__m512; 8] = std::array::from_fn(|k| {
                let (a, b) = (xs[2 * k], xs[2 * k + 1]);
                _mm512_max_ps(
                    _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b),
                    _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b),
                )
            });
            // u[k]: block q (4 lanes) candidates of row 4k + q.
            let u: [__m512; 4] = std::array::from_fn(|k| {
                let (a, b) = (w[2 * k], w[2 * k + 1]);
                _mm512_max_ps(
                    _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b),
                    _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b),
                )
            });
            // t[k]: block q, lanes 0-1 candidates of row 8k + q, lanes 2-3 of 8k + 4 + q.
            let t: [__m512; 2] = std::array::from_fn(|k| {
                let (a, b) = (u[2 * k], u[2 * k + 1]);
                _mm512_max_ps(
                    _mm512_shuffle_ps::<0b01_00_01_00>(a, b),
                    _mm512_shuffle_ps::<0b11_10_11_10>(a, b),
                )
            });
            // Block q, lane i: the maximum of row 4i + q, which goes to lane 4q + i.
            let r = _mm512_max_ps(
                _mm512_shuffle_ps::<0b10_00_10_00>(t[0], t[1]),
                _mm512_shuffle_ps::<0b11_01_11_01>(t[0], t[1]),
            );
            let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
            _mm512_permutexvar_ps(order, r)
        })
    }
    /// Each level adds the terms `reduce_add_f64` adds at that level (`i + (i + 4)`, then
    /// `i + (i + 2)`, then `0 + 1`), for two, then four, then eight rows per vector.
    #[inline(always)]
    fn reduce_add_f64_each(self, s: &[__m512d; 16]) -> (__m512d, __m512d) {
        reg!({
            // w[k]: lanes 0-3 for row 2k, 4-7 for row 2k + 1.
            let w: [__m512d; 8] = std::array::from_fn(|k| {
                let (a, b) = (s[2 * k], s[2 * k + 1]);
                _mm512_add_pd(
                    _mm512_shuffle_f64x2::<0b01_00_01_00>(a, b),
                    _mm512_shuffle_f64x2::<0b11_10_11_10>(a, b),
                )
            });
            // y[k]: lanes 2q, 2q + 1 for row 4k + q.
            let y: [__m512d; 4] = std::array::from_fn(|k| {
                let (a, b) = (w[2 * k], w[2 * k + 1]);
                _mm512_add_pd(
                    _mm512_shuffle_f64x2::<0b10_00_10_00>(a, b),
                    _mm512_shuffle_f64x2::<0b11_01_11_01>(a, b),
                )
            });
            // Lane 2q: row 8k + q, lane 2q + 1: row 8k + 4 + q, then put in order.
            let order = _mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7);
            let z = |k: usize| {
                let (a, b) = (y[2 * k], y[2 * k + 1]);
                let sum = _mm512_add_pd(_mm512_unpacklo_pd(a, b), _mm512_unpackhi_pd(a, b));
                _mm512_permutexvar_pd(order, sum)
            };
            (z(0), z(1))
        })
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
    fn first_lanes_m32(self, r: usize) -> __mmask16 {
        ((1u32 << r) - 1) as __mmask16
    }
    #[inline(always)]
    fn first_lanes_m64(self, r: usize) -> __mmask8 {
        mask8(r)
    }
    #[inline(always)]
    fn exp_f32(self, a: __m512) -> __m512 {
        exp_ps(self, a)
    }
    #[inline(always)]
    fn exp_f32_near(self, a: __m512, lo: __m512) -> __m512 {
        exp_reduced::<true>(self, a, lo)
    }
    memory! {
        load_f32(p: *const f32) -> __m512 = _mm512_loadu_ps(p);
        load_f32_part(p: *const f32, r: usize, f: f32) -> __m512 =
            _mm512_mask_loadu_ps(_mm512_set1_ps(f), mask16(r), p);
        store_f32(p: *mut f32, v: __m512) = _mm512_storeu_ps(p, v);
        store_f32_part(p: *mut f32, r: usize, v: __m512) = _mm512_mask_storeu_ps(p, mask16(r), v);
        stream_f32(p: *mut f32, v: __m512) = _mm512_stream_ps(p, v);
        load_f64(p: *const f64) -> __m512d = _mm512_loadu_pd(p);
        load_f64_part(p: *const f64, r: usize, f: f64) -> __m512d =
            _mm512_mask_loadu_pd(_mm512_set1_pd(f), mask8(r), p);
        store_f64(p: *mut f64, v: __m512d) = _mm512_storeu_pd(p, v);
        store_f64_part(p: *mut f64, r: usize, v: __m512d) = _mm512_mask_storeu_pd(p, mask8(r), v);
        stream_f64(p: *mut f64, v: __m512d) = _mm512_stream_pd(p, v);
        load_idx(p: *const i32) -> __m512i = _mm512_loadu_si512(p.cast());
        load_bf16(p: *const u16) -> __m512 = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(
            _mm512_cvtepu16_epi32(_mm256_loadu_si256(p.cast())),
        ));
        store_bf16(p: *mut u16, v: __m512) = _mm256_storeu_si256(p.cast(), bf16_bits(Self(()), v));
        stream_bf16(p: *mut u16, v: __m512) = _mm256_stream_si256(p.cast(), bf16_bits(Self(()), v));
        load_f16(p: *const u16) -> __m512 = _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()));
        store_f16(p: *mut u16, v: __m512) =
            _mm256_storeu_si256(p.cast(), _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v));
        stream_f16(p: *mut u16, v: __m512) =
            _mm256_stream_si256(p.cast(), _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v));
    }
    lanewise! {
        stream_fence() -> () = _mm_sfence();
        // A hint: does not fault on any address.
        prefetch(p: *const f32) -> () = _mm_prefetch::<_MM_HINT_T1>(p as *const i8);
        shift_into_exponent_f32(v: __m512) -> __m512 =
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_castps_si512(v)));
        widen_high(v: __m512) -> __m512d =
            _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))));
        pow2_of_rounded_f64(kr: __m512d) -> __m512d = _mm512_castsi512_pd(_mm512_slli_epi64::<52>(
            _mm512_add_epi64(_mm512_castpd_si512(kr), _mm512_set1_epi64(1023)),
        ));
        splat_f32(x: f32) -> __m512 = _mm512_set1_ps(x);
        mul_f32(a: __m512, b: __m512) -> __m512 = _mm512_mul_ps(a, b);
        max_f32(a: __m512, b: __m512) -> __m512 = _mm512_max_ps(a, b);
        unord_f32(a: __m512, b: __m512) -> __mmask16 = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, b);
        add_f32(a: __m512, b: __m512) -> __m512 = _mm512_add_ps(a, b);
        sub_f32(a: __m512, b: __m512) -> __m512 = _mm512_sub_ps(a, b);
        mul_add_f32(a: __m512, b: __m512, c: __m512) -> __m512 = _mm512_fmadd_ps(a, b, c);
        mul_sub_f32(a: __m512, b: __m512, c: __m512) -> __m512 = _mm512_fmsub_ps(a, b, c);
        neg_mul_add_f32(a: __m512, b: __m512, c: __m512) -> __m512 = _mm512_fnmadd_ps(a, b, c);
        lt_f32(a: __m512, b: __m512) -> __mmask16 = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b);
        clear_f32(m: __mmask16, v: __m512) -> __m512 = _mm512_maskz_mov_ps(!m, v);
        widen_low(v: __m512) -> __m512d = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
        reduce_max_f32(v: __m512) -> f32 = _mm512_reduce_max_ps(v);
        splat_f64(x: f64) -> __m512d = _mm512_set1_pd(x);
        add_f64(a: __m512d, b: __m512d) -> __m512d = _mm512_add_pd(a, b);
        sub_f64(a: __m512d, b: __m512d) -> __m512d = _mm512_sub_pd(a, b);
        mul_f64(a: __m512d, b: __m512d) -> __m512d = _mm512_mul_pd(a, b);
        mul_add_f64(a: __m512d, b: __m512d, c: __m512d) -> __m512d = _mm512_fmadd_pd(a, b, c);
        mul_sub_f64(a: __m512d, b: __m512d, c: __m512d) -> __m512d = _mm512_fmsub_pd(a, b, c);
        neg_mul_add_f64(a: __m512d, b: __m512d, c: __m512d) -> __m512d = _mm512_fnmadd_pd(a, b, c);
        max_f64(a: __m512d, b: __m512d) -> __m512d = _mm512_max_pd(a, b);
        eq_f64(a: __m512d, b: __m512d) -> __mmask8 = _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(a, b);
        gt_f64(a: __m512d, b: __m512d) -> __mmask8 = _mm512_cmp_pd_mask::<_CMP_GT_OQ>(a, b);
        ge_f64(a: __m512d, b: __m512d) -> __mmask8 = _mm512_cmp_pd_mask::<_CMP_GE_OQ>(a, b);
        lt_f64(a: __m512d, b: __m512d) -> __mmask8 = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(a, b);
        unord_f64(a: __m512d, b: __m512d) -> __mmask8 = _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(a, b);
        keep_f64(m: __mmask8, v: __m512d) -> __m512d = _mm512_maskz_mov_pd(m, v);
        clear_f64(m: __mmask8, v: __m512d) -> __m512d = _mm512_maskz_mov_pd(!m, v);
        reduce_max_f64(v: __m512d) -> f64 = _mm512_reduce_max_pd(v);
        keep_f32(m: __mmask16, v: __m512) -> __m512 = _mm512_maskz_mov_ps(m, v);
        select_f32(m: __mmask16, a: __m512, b: __m512) -> __m512 = _mm512_mask_blend_ps(m, b, a);
        permute_f32(v: __m512, i: __m512i) -> __m512 = _mm512_permutexvar_ps(i, v);
        div_f64(a: __m512d, b: __m512d) -> __m512d = _mm512_div_pd(a, b);
        select_f64(m: __mmask8, a: __m512d, b: __m512d) -> __m512d = _mm512_mask_blend_pd(m, b, a);
    }
}
