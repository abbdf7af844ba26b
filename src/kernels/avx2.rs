//! AVX2 + FMA kernels (x86-64), 8 `f32` or 4 `f64` lanes. A tail shorter than a vector is
//! loaded and stored in pieces of 4, 2 and 1 lanes, padded with -inf (whose exp is exactly 0).
//!
//! Every function here is compiled with `avx2,fma` and must only run on a CPU that has them:
//! the tables at the end are handed out by `kernels_for` only after `cpu_has(Avx2)`.

use std::arch::x86_64::*;

use super::exp_f32_poly::{F32_FLUSH, F32_LN2_HI, F32_LN2_LO, F32_LOG2E, F32_P, F32_ROUND_BIASED};
use super::{level_table, rows_kernel, scalar};

// ---------------------------------------------------------------------------------------------
// f32
// ---------------------------------------------------------------------------------------------

/// exp(a). Results below `exp(F32_FLUSH)` (about 1.6e-38, just above the smallest normal
/// `f32`) are flushed to exactly 0, so no product ever underflows: on x86 an underflowing
/// multiply takes a microcode assist, which made masked (-inf) entries three times slower.
/// Probabilities that small are outside the bounds of S8. NaN propagates.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_ps(a: __m256) -> __m256 {
    // SAFETY: `exp_parts` takes no pointers; it needs only avx2,fma, which this function is
    // compiled with.
    unsafe { exp_parts::<false>(a, _mm256_setzero_ps()) }
}

/// `exp(a + lo)` (LO; else `exp(a)`) for `|lo| <= 2^-10`, flushed to 0 where `a` is below
/// `F32_FLUSH`: `k` is rounded from `a + lo`, and `lo` joins the reduced argument after the
/// Cody-Waite steps, so `r` stays within the polynomial's |r| <= ln2/2 and carries `lo`'s bits.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_parts<const LO: bool>(a: __m256, lo: __m256) -> __m256 {
    let lim = _mm256_set1_ps(F32_FLUSH);
    // True below the limit, -inf included; false for NaN.
    let flush = _mm256_cmp_ps::<_CMP_LT_OQ>(a, lim);
    // NaN in `a` propagates: MAXPS returns its second operand when either is NaN.
    let a = _mm256_max_ps(lim, a);
    let whole = if LO { _mm256_add_ps(a, lo) } else { a };
    let kr = _mm256_fmadd_ps(
        whole,
        _mm256_set1_ps(F32_LOG2E),
        _mm256_set1_ps(F32_ROUND_BIASED),
    );
    let k = _mm256_sub_ps(kr, _mm256_set1_ps(F32_ROUND_BIASED));
    let r = _mm256_fnmadd_ps(k, _mm256_set1_ps(F32_LN2_HI), a);
    let r = _mm256_fnmadd_ps(k, _mm256_set1_ps(F32_LN2_LO), r);
    let r = if LO { _mm256_add_ps(r, lo) } else { r };
    let r2 = _mm256_mul_ps(r, r);
    let mut p = _mm256_set1_ps(F32_P[0]);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(F32_P[1]));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(F32_P[2]));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(F32_P[3]));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(F32_P[4]));
    let y = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
    // 2^k from the low bits of `kr`, which hold k + 127 (k in [-126, 127] after the clamp: a
    // normal number).
    let bits = _mm256_slli_epi32::<23>(_mm256_castps_si256(kr));
    _mm256_andnot_ps(flush, _mm256_mul_ps(y, _mm256_castsi256_ps(bits)))
}

#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn lo_pd(v: __m256) -> __m256d {
    _mm256_cvtps_pd(_mm256_castps256_ps128(v))
}

#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn hi_pd(v: __m256) -> __m256d {
    _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v))
}

#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn narrow(lo: __m256d, hi: __m256d) -> __m256 {
    _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo))
}

/// `dst[i] = body(src[i])` over `n` elements, 8 (`f32`) lanes at a time. With `stream`, the
/// 32-byte-aligned middle is written with non-temporal stores (then `sfence`). Elementwise, so
/// the bits do not depend on the alignment or on `stream`.
///
/// Only invoked in `unsafe fn`s compiled with `avx2,fma` whose `# Safety` gives `src` valid
/// for reads and `dst` for writes of `n` elements, the same or disjoint: the unsafe blocks
/// below rely on that (as "the invoking kernel's contract"). The streaming path also relies
/// on `dst` being `f32`-aligned, which those sections leave implicit: every element pointer
/// the crate hands to the kernels is (slices; the Python bindings refuse unaligned arrays).
/// `$body` is evaluated outside the unsafe blocks: an unsafe operation in it has its own
/// block at the invocation. The order of evaluation is the plain `store(dst.add(i), $body)`'s
/// (load, destination pointer, body, store), which keeps the generated code unchanged.
macro_rules! map_ps {
    ($src:expr, $dst:expr, $n:expr, $stream:expr, |$x:ident| $body:expr) => {{
        let (src, dst, n): (*const f32, *mut f32, usize) = ($src, $dst, $n);
        let mut i = 0usize;
        if $stream {
            let head = (((32 - (dst as usize & 31)) & 31) / 4).min(n);
            if head > 0 {
                // SAFETY: `head <= n`, and `head <= 31 / 4 < 8` as `load_tail_ps` requires: the
                // `head` elements at `src` are among the `n` readable ones (the invoking
                // kernel's contract); this code is compiled with avx2,fma, which it requires.
                let $x = unsafe { load_tail_ps(src, head, 0.0) };
                let y = $body;
                // SAFETY: as for the load, the `head < 8` elements at `dst` are among the `n`
                // writable ones (the invoking kernel's contract).
                unsafe { store_tail_ps(dst, head, y) };
            }
            i = head;
            while i + 8 <= n {
                // SAFETY: `i + 8 <= n`: the 8 elements at `src.add(i)` are among the `n`
                // readable ones, and `dst.add(i)` is within the `n` elements of `dst` (the
                // invoking kernel's contract).
                let ($x, d) = unsafe { (_mm256_loadu_ps(src.add(i)), dst.add(i)) };
                let y = $body;
                // SAFETY: `i + 8 <= n`: the 8 elements at `d = dst.add(i)` are among the `n`
                // writable ones (the invoking kernel's contract). The loop runs only when
                // `head` was not cut to `n` (else `i == n`), so `dst.add(head)` is the first
                // 32-byte boundary at or after `dst` (`dst` is `f32`-aligned), and `i - head`
                // is a multiple of 8: the 32-byte alignment `_mm256_stream_ps` requires. The
                // `_mm_sfence` after the loop orders these non-temporal stores before any
                // later access to `dst`.
                unsafe { _mm256_stream_ps(d, y) };
                i += 8;
            }
            _mm_sfence();
        } else {
            while i + 8 <= n {
                // SAFETY: `i + 8 <= n`: the 8 elements at `src.add(i)` are among the `n`
                // readable ones, and `dst.add(i)` is within the `n` elements of `dst` (the
                // invoking kernel's contract).
                let ($x, d) = unsafe { (_mm256_loadu_ps(src.add(i)), dst.add(i)) };
                let y = $body;
                // SAFETY: `i + 8 <= n`: the 8 elements at `d = dst.add(i)` are among the `n`
                // writable ones (the invoking kernel's contract).
                unsafe { _mm256_storeu_ps(d, y) };
                i += 8;
            }
        }
        if i < n {
            // SAFETY: `i < n`, so a loop above ran its test and stopped with `i + 8 > n` (a
            // `head` cut to `n` leaves `i == n`): `n - i < 8` as `load_tail_ps` requires, the
            // last `n - i` of the `n` readable elements at `src`; avx2,fma as above. `dst.add(i)`
            // is within the `n` elements of `dst`.
            let ($x, d) = unsafe { (load_tail_ps(src.add(i), n - i, 0.0), dst.add(i)) };
            let y = $body;
            // SAFETY: as for the load, `d = dst.add(i)`: the last `n - i < 8` of the `n`
            // writable elements.
            unsafe { store_tail_ps(d, n - i, y) };
        }
    }};
}

#[derive(Clone, Copy)]
struct ArgF32 {
    m: __m256,
    m64: __m256d,
    inv: __m256d,
    /// [`super::FoldedArg`] holds: [`exp_arg`] folds the temperature into `f32` arithmetic.
    fold: bool,
    folded: Folded,
}

/// [`super::FoldedArg`]'s terms, one per lane (a lane's row's).
#[derive(Clone, Copy)]
struct Folded {
    inv_hi: __m256,
    inv_lo: __m256,
    neg_mi_hi: __m256,
    neg_mi_lo: __m256,
    x_floor: __m256,
}

impl Folded {
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn splat(f: super::FoldedArg) -> Folded {
        Folded {
            inv_hi: _mm256_set1_ps(f.inv_hi),
            inv_lo: _mm256_set1_ps(f.inv_lo),
            neg_mi_hi: _mm256_set1_ps(f.neg_mi_hi),
            neg_mi_lo: _mm256_set1_ps(f.neg_mi_lo),
            x_floor: _mm256_set1_ps(f.x_floor),
        }
    }

    /// The folded `exp((x - m) / t)` of every lane.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn exp(&self, x: __m256) -> __m256 {
        // NaN propagates: MAXPS returns its second operand when either is NaN.
        let x = _mm256_max_ps(self.x_floor, x);
        let a = _mm256_fmadd_ps(x, self.inv_hi, self.neg_mi_hi);
        let lo = _mm256_fmadd_ps(x, self.inv_lo, self.neg_mi_lo);
        // SAFETY: `exp_parts` takes no pointers; it needs only avx2,fma, which this function is
        // compiled with.
        unsafe { exp_parts::<true>(a, lo) }
    }
}

impl ArgF32 {
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn new(m: f32, inv: f64) -> ArgF32 {
        let f = super::FoldedArg::new(m, inv);
        ArgF32 {
            m: _mm256_set1_ps(m),
            m64: _mm256_set1_pd(m as f64),
            inv: _mm256_set1_pd(inv),
            fold: f.is_some(),
            // SAFETY: `Folded::splat` takes no pointers; it needs only avx2,fma, which this
            // function is compiled with.
            folded: unsafe { Folded::splat(f.unwrap_or_default()) },
        }
    }
}

/// `x - m` in `f32` when `t == 1` (UNIT), else `(x - m) / t` in `f64` rounded once to `f32`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn arg_ps<const UNIT: bool>(c: ArgF32, x: __m256) -> __m256 {
    if UNIT {
        _mm256_sub_ps(x, c.m)
    } else {
        // SAFETY: `lo_pd`, `hi_pd` and `narrow` take no pointers; they need only avx2,fma,
        // which this function is compiled with.
        unsafe {
            let lo = _mm256_mul_pd(_mm256_sub_pd(lo_pd(x), c.m64), c.inv);
            let hi = _mm256_mul_pd(_mm256_sub_pd(hi_pd(x), c.m64), c.inv);
            narrow(lo, hi)
        }
    }
}

/// `exp((x - m) / t)` of every lane (UNIT: `t` is 1). With a temperature the argument is
/// within half an ulp (plus 2^-30) of `(x - m) / t`, as `x - m` is at temperature 1: folded
/// into `f32` arithmetic ([`super::FoldedArg`]) where that holds, else [`arg_ps`] in `f64`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_arg<const UNIT: bool>(c: ArgF32, x: __m256) -> __m256 {
    // SAFETY: `Folded::exp`, `exp_ps` and `arg_ps` take no pointers; they need only avx2,fma,
    // which this function is compiled with.
    unsafe {
        if !UNIT && c.fold {
            c.folded.exp(x)
        } else {
            exp_ps(arg_ps::<UNIT>(c, x))
        }
    }
}

/// Loads the `r < 8` elements at `p` (nothing past them is touched), padding with `fill`.
/// Built from 4-, 2- and 1-lane loads: a masked load is slow on some CPUs.
///
/// # Safety
/// `r < 8`; `p` valid for reads of `r` elements; AVX2, FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn load_tail_ps(p: *const f32, r: usize, fill: f32) -> __m256 {
    let f = _mm_set1_ps(fill);
    if r >= 4 {
        // SAFETY: `4 <= r < 8` (# Safety): the 4 elements at `p` and the `r - 4 < 4` at
        // `p.add(4)` (as `load_part_ps` requires) are the `r` readable ones; `load_part_ps`
        // also needs avx2,fma, which this function is compiled with.
        unsafe { _mm256_set_m128(load_part_ps(p.add(4), r - 4, f), _mm_loadu_ps(p)) }
    } else {
        // SAFETY: `r < 4`: `load_part_ps`'s requirements are this function's (# Safety).
        unsafe { _mm256_set_m128(f, load_part_ps(p, r, f)) }
    }
}

/// The `r < 4` elements at `p` over `f`.
///
/// # Safety
/// `r < 4`; `p` valid for reads of `r` elements; AVX2, FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn load_part_ps(p: *const f32, r: usize, f: __m128) -> __m128 {
    // SAFETY: the `r < 4` elements at `p` are readable (# Safety): `r == 1` reads element 0,
    // `r == 2` the 8 bytes of elements 0 and 1, `r == 3` those and element 2 at `p.add(2)`.
    // `_mm_load_ss` dereferences its `*const f32`: `p` is `f32`-aligned, as the element
    // pointers the crate hands to the kernels are.
    // FIXME(soundness): `_mm_loadl_pd` reads through `*const f64` (a plain `*mem_addr` in
    // `core::arch`), which Rust requires to be 8-byte aligned; `p` is only known to be
    // `f32`-aligned (row and tail starts fall on any element), so arms 2 and 3 are undefined
    // behaviour when `p % 8 == 4`, however harmless MOVLPD is on x86.
    unsafe {
        match r {
            0 => f,
            1 => _mm_move_ss(f, _mm_load_ss(p)),
            2 => _mm_castpd_ps(_mm_loadl_pd(_mm_castps_pd(f), p.cast())),
            _ => _mm_insert_ps::<0x20>(
                _mm_castpd_ps(_mm_loadl_pd(_mm_castps_pd(f), p.cast())),
                _mm_load_ss(p.add(2)),
            ),
        }
    }
}

/// Stores the first `r < 8` lanes of `v` at `p`, in pieces of 4, 2 and 1 lanes (a masked
/// store is microcoded and slow on some CPUs).
///
/// # Safety
/// `r < 8`; `p` valid for writes of `r` elements; AVX2, FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn store_tail_ps(p: *mut f32, r: usize, v: __m256) {
    // Throughout, the `r` elements at `p` are writable (# Safety), `p` and `r` moving together.
    let (mut p, mut r) = (p, r);
    let mut lo = _mm256_castps256_ps128(v);
    if r >= 4 {
        // SAFETY: `r >= 4`: the 4 elements at `p` are writable, and `p.add(4)` is within them
        // or one past the end.
        unsafe {
            _mm_storeu_ps(p, lo);
            lo = _mm256_extractf128_ps::<1>(v);
            p = p.add(4);
        }
        r -= 4;
    }
    if r >= 2 {
        // SAFETY: `r >= 2`: the 2 elements (8 bytes) at `p` are writable, and `p.add(2)` is
        // within them or one past the end.
        // FIXME(soundness): `_mm_storel_pd` writes through `*mut f64` (a plain `*mem_addr =`
        // in `core::arch`), which Rust requires to be 8-byte aligned; `p` is only known to be
        // `f32`-aligned, so this is undefined behaviour when `p % 8 == 4`, however harmless
        // MOVLPD is on x86.
        unsafe {
            _mm_storel_pd(p.cast(), _mm_castps_pd(lo));
            lo = _mm_movehl_ps(lo, lo);
            p = p.add(2);
        }
        r -= 2;
    }
    if r == 1 {
        // SAFETY: `r == 1`: the element at `p` is writable (and `f32`-aligned, as the element
        // pointers the crate hands to the kernels are).
        unsafe { _mm_store_ss(p, lo) };
    }
}

#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) unsafe fn max_f32_impl(x: &[f32]) -> (f32, bool) {
    let n = x.len();
    let p = x.as_ptr();
    let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
    let (mut m0, mut m1, mut m2, mut m3) = (ninf, ninf, ninf, ninf);
    let mut nan = _mm256_setzero_ps();
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: `i + 32 <= n = x.len()`: the 32 elements from `p.add(i)` are in `x`.
        let (v0, v1, v2, v3) = unsafe {
            (
                _mm256_loadu_ps(p.add(i)),
                _mm256_loadu_ps(p.add(i + 8)),
                _mm256_loadu_ps(p.add(i + 16)),
                _mm256_loadu_ps(p.add(i + 24)),
            )
        };
        // An unordered compare is true exactly when either operand is NaN; MAXPS alone would
        // drop it.
        nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(v0, v1));
        nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(v2, v3));
        m0 = _mm256_max_ps(v0, m0);
        m1 = _mm256_max_ps(v1, m1);
        m2 = _mm256_max_ps(v2, m2);
        m3 = _mm256_max_ps(v3, m3);
        i += 32;
    }
    while i < n {
        // SAFETY: `i < n = x.len()`: with `n - i >= 8` the 8 elements from `p.add(i)` are in
        // `x`; else the last `n - i < 8`, which `load_tail_ps` takes (it also needs avx2,fma,
        // which this function is compiled with).
        let v = unsafe {
            if n - i >= 8 {
                _mm256_loadu_ps(p.add(i))
            } else {
                load_tail_ps(p.add(i), n - i, f32::NEG_INFINITY)
            }
        };
        nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
        m0 = _mm256_max_ps(v, m0);
        i += 8;
    }
    // SAFETY: `hmax_ps` takes no pointers; it needs only avx2,fma, which this function is
    // compiled with.
    let m = unsafe { hmax_ps(m0, m1, m2, m3) };
    (m, _mm256_movemask_ps(nan) != 0)
}

/// The largest lane of four NaN-free vectors, in a fixed order.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn hmax_ps(m0: __m256, m1: __m256, m2: __m256, m3: __m256) -> f32 {
    let m = _mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3));
    let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let m = _mm_max_ss(m, _mm_shuffle_ps::<1>(m, m));
    _mm_cvtss_f32(m)
}

#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn hsum_pd(v: __m256d) -> f64 {
    let s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd::<1>(v));
    _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)))
}

/// Σ exp(arg(x)), storing the exps when STORE. Four vectors are added in `f32` (two
/// roundings), then widened and accumulated in `f64` lanes.
///
/// # Safety
/// `src` valid for reads of `n` elements; with STORE, `dst` valid for writes of `n` (the same
/// as `src` or disjoint), else unused (it may be null); AVX2, FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_sum_f32<const UNIT: bool, const STORE: bool>(
    src: *const f32,
    dst: *mut f32,
    n: usize,
    c: ArgF32,
) -> f64 {
    let mut a0 = _mm256_setzero_pd();
    let mut a1 = _mm256_setzero_pd();
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: `i + 32 <= n`: the 32 elements from `src.add(i)` are among the `n` readable
        // ones, and with STORE the 32 from `dst.add(i)` among the `n` writable ones (# Safety;
        // `dst` is only touched with STORE). `exp_arg`, `lo_pd` and `hi_pd` take no pointers;
        // they need only avx2,fma, which this function is compiled with.
        unsafe {
            let e0 = exp_arg::<UNIT>(c, _mm256_loadu_ps(src.add(i)));
            let e1 = exp_arg::<UNIT>(c, _mm256_loadu_ps(src.add(i + 8)));
            let e2 = exp_arg::<UNIT>(c, _mm256_loadu_ps(src.add(i + 16)));
            let e3 = exp_arg::<UNIT>(c, _mm256_loadu_ps(src.add(i + 24)));
            if STORE {
                _mm256_storeu_ps(dst.add(i), e0);
                _mm256_storeu_ps(dst.add(i + 8), e1);
                _mm256_storeu_ps(dst.add(i + 16), e2);
                _mm256_storeu_ps(dst.add(i + 24), e3);
            }
            let s = _mm256_add_ps(_mm256_add_ps(e0, e1), _mm256_add_ps(e2, e3));
            a0 = _mm256_add_pd(a0, lo_pd(s));
            a1 = _mm256_add_pd(a1, hi_pd(s));
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n`: the 8 elements from `src.add(i)` are among the `n` readable
        // ones, and with STORE the 8 from `dst.add(i)` among the `n` writable ones (# Safety);
        // the helpers need only avx2,fma, as above.
        unsafe {
            let e = exp_arg::<UNIT>(c, _mm256_loadu_ps(src.add(i)));
            if STORE {
                _mm256_storeu_ps(dst.add(i), e);
            }
            a0 = _mm256_add_pd(a0, lo_pd(e));
            a1 = _mm256_add_pd(a1, hi_pd(e));
        }
        i += 8;
    }
    if i < n {
        // SAFETY: `i < n` and `i + 8 > n` (the loop above stopped): the last `n - i < 8`
        // elements of `src` are readable and, with STORE, of `dst` writable (# Safety), as
        // `load_tail_ps` and `store_tail_ps` require; the helpers need only avx2,fma, as above.
        unsafe {
            let e = exp_arg::<UNIT>(c, load_tail_ps(src.add(i), n - i, f32::NEG_INFINITY));
            if STORE {
                store_tail_ps(dst.add(i), n - i, e);
            }
            a0 = _mm256_add_pd(a0, lo_pd(e));
            a1 = _mm256_add_pd(a1, hi_pd(e));
        }
    }
    // SAFETY: `hsum_pd` takes no pointers; it needs only avx2,fma, which this function is
    // compiled with.
    unsafe { hsum_pd(_mm256_add_pd(a0, a1)) }
}

/// # Safety
/// `src` valid for reads and `dst` for writes of `n` (same pointer or disjoint); AVX2, FMA.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) unsafe fn exp_store_sum_f32(
    src: *const f32,
    dst: *mut f32,
    n: usize,
    m: f32,
    t: f64,
) -> f64 {
    // SAFETY: this function's contract (# Safety) is what `exp_sum_f32` (with STORE) and
    // `scalar::exp_store_sum` require of `src`, `dst` and `n`; `exp_sum_f32` and `ArgF32::new`
    // also need avx2,fma, which this function is compiled with.
    unsafe {
        if t == 1.0 {
            return exp_sum_f32::<true, true>(src, dst, n, ArgF32::new(m, 1.0));
        }
        let inv = 1.0 / t;
        if !inv.is_normal() {
            return scalar::exp_store_sum(src, dst, n, m, t);
        }
        exp_sum_f32::<false, true>(src, dst, n, ArgF32::new(m, inv))
    }
}

#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) unsafe fn sum_exp_f32_impl(x: &[f32], m: f32, t: f64) -> f64 {
    let (p, n) = (x.as_ptr(), x.len());
    if t == 1.0 {
        // SAFETY: `p` is valid for reads of the `n = x.len()` elements of `x`; without STORE
        // `exp_sum_f32` does not touch `dst` (null). It and `ArgF32::new` need avx2,fma, which
        // this function is compiled with.
        return unsafe {
            exp_sum_f32::<true, false>(p, std::ptr::null_mut(), n, ArgF32::new(m, 1.0))
        };
    }
    let inv = 1.0 / t;
    if !inv.is_normal() {
        return scalar::sum_exp(x, m, t);
    }
    // SAFETY: as above.
    unsafe { exp_sum_f32::<false, false>(p, std::ptr::null_mut(), n, ArgF32::new(m, inv)) }
}

/// # Safety
/// `dst` valid for reads and writes of `n`; AVX2, FMA.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) unsafe fn scale_f32(dst: *mut f32, n: usize, factor: f64) {
    let f = _mm256_set1_ps(factor as f32);
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: `i + 32 <= n`: the 32 elements from `dst.add(i)` are among the `n` readable
        // and writable ones (# Safety).
        unsafe {
            let v0 = _mm256_mul_ps(_mm256_loadu_ps(dst.add(i)), f);
            let v1 = _mm256_mul_ps(_mm256_loadu_ps(dst.add(i + 8)), f);
            let v2 = _mm256_mul_ps(_mm256_loadu_ps(dst.add(i + 16)), f);
            let v3 = _mm256_mul_ps(_mm256_loadu_ps(dst.add(i + 24)), f);
            _mm256_storeu_ps(dst.add(i), v0);
            _mm256_storeu_ps(dst.add(i + 8), v1);
            _mm256_storeu_ps(dst.add(i + 16), v2);
            _mm256_storeu_ps(dst.add(i + 24), v3);
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n`: the 8 elements from `dst.add(i)` are among the `n` readable
        // and writable ones (# Safety).
        unsafe { _mm256_storeu_ps(dst.add(i), _mm256_mul_ps(_mm256_loadu_ps(dst.add(i)), f)) };
        i += 8;
    }
    if i < n {
        // SAFETY: `i < n` and `i + 8 > n` (the loop above stopped): the last `n - i < 8` of
        // the `n` readable and writable elements (# Safety), as `load_tail_ps` and
        // `store_tail_ps` require; they also need avx2,fma, which this function is compiled
        // with.
        unsafe {
            let v = load_tail_ps(dst.add(i), n - i, 0.0);
            store_tail_ps(dst.add(i), n - i, _mm256_mul_ps(v, f));
        }
    }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn log_f32<const UNIT: bool>(c: ArgF32, ls: f32, ls64: __m256d, x: __m256) -> __m256 {
    if UNIT {
        _mm256_sub_ps(_mm256_sub_ps(x, c.m), _mm256_set1_ps(ls))
    } else {
        // SAFETY: `lo_pd`, `hi_pd` and `narrow` take no pointers; they need only avx2,fma,
        // which this function is compiled with.
        unsafe {
            let lo = _mm256_fmsub_pd(_mm256_sub_pd(lo_pd(x), c.m64), c.inv, ls64);
            let hi = _mm256_fmsub_pd(_mm256_sub_pd(hi_pd(x), c.m64), c.inv, ls64);
            narrow(lo, hi)
        }
    }
}

/// # Safety
/// `src` valid for reads and `dst` for writes of `n` elements, the same or disjoint; AVX2,
/// FMA. With `stream`, `dst` must be `f32`-aligned (see `map_ps`).
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn write_log_f32<const UNIT: bool>(
    src: *const f32,
    dst: *mut f32,
    n: usize,
    c: ArgF32,
    log_sum: f64,
    stream: bool,
) {
    let ls = log_sum as f32;
    let ls64 = _mm256_set1_pd(log_sum);
    map_ps!(src, dst, n, stream, |x| {
        // SAFETY: `log_f32` takes no pointers; it needs only avx2,fma, which this function is
        // compiled with.
        unsafe { log_f32::<UNIT>(c, ls, ls64, x) }
    });
}

/// # Safety
/// As [`write_log_f32`].
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_scale_f32_impl<const UNIT: bool>(
    src: *const f32,
    dst: *mut f32,
    n: usize,
    c: ArgF32,
    factor: f64,
    stream: bool,
) {
    let f = _mm256_set1_ps(factor as f32);
    map_ps!(src, dst, n, stream, |x| {
        // SAFETY: `exp_arg` takes no pointers; it needs only avx2,fma, which this function is
        // compiled with.
        let e = unsafe { exp_arg::<UNIT>(c, x) };
        _mm256_mul_ps(e, f)
    });
}

/// dst = exp((src - m) / t) * factor: the bits `exp_store_sum_f32` then `scale_f32` give.
///
/// # Safety
/// As [`exp_store_sum_f32`].
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) unsafe fn exp_scale_f32(
    src: *const f32,
    dst: *mut f32,
    n: usize,
    m: f32,
    t: f64,
    factor: f64,
    stream: bool,
) {
    // SAFETY: this function's contract (as `exp_store_sum_f32`'s: `src` readable and `dst`
    // writable for `n`, the same or disjoint) is what `exp_scale_f32_impl` and
    // `scalar::exp_store_sum` require; `scale_f32` gets `dst`, valid for writes of `n` and
    // just written by `scalar::exp_store_sum`, so valid for its reads and writes. The
    // streaming path's `f32`-aligned `dst` is left implicit (see `map_ps`). The AVX2 helpers
    // need avx2,fma, which this function is compiled with.
    unsafe {
        if t == 1.0 {
            return exp_scale_f32_impl::<true>(src, dst, n, ArgF32::new(m, 1.0), factor, stream);
        }
        let inv = 1.0 / t;
        if !inv.is_normal() {
            scalar::exp_store_sum(src, dst, n, m, t);
            return scale_f32(dst, n, factor);
        }
        exp_scale_f32_impl::<false>(src, dst, n, ArgF32::new(m, inv), factor, stream)
    }
}

/// # Safety
/// As [`exp_store_sum_f32`].
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) unsafe fn write_log_softmax_f32(
    src: *const f32,
    dst: *mut f32,
    n: usize,
    m: f32,
    t: f64,
    log_sum: f64,
    stream: bool,
) {
    // SAFETY: this function's contract (as `exp_store_sum_f32`'s: `src` readable and `dst`
    // writable for `n`, the same or disjoint) is what `write_log_f32` and
    // `scalar::write_log_softmax` require; the streaming path's `f32`-aligned `dst` is left
    // implicit (see `map_ps`). The AVX2 helpers need avx2,fma, which this function is compiled
    // with.
    unsafe {
        if t == 1.0 {
            return write_log_f32::<true>(src, dst, n, ArgF32::new(m, 1.0), log_sum, stream);
        }
        let inv = 1.0 / t;
        if !inv.is_normal() {
            return scalar::write_log_softmax(src, dst, n, m, t, log_sum, false);
        }
        write_log_f32::<false>(src, dst, n, ArgF32::new(m, inv), log_sum, stream)
    }
}

/// dst = src * factor: the bits `scale_f32` gives.
///
/// # Safety
/// `src` valid for reads and `dst` for writes of `n`, the same or disjoint.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) unsafe fn scale_to_f32(
    src: *const f32,
    dst: *mut f32,
    n: usize,
    factor: f64,
    stream: bool,
) {
    let f = _mm256_set1_ps(factor as f32);
    map_ps!(src, dst, n, stream, |x| _mm256_mul_ps(x, f));
}

rows_kernel!(
    rows_f32_general,
    f32,
    "avx2,fma",
    max_f32_impl,
    exp_store_sum_f32,
    sum_exp_f32_impl,
    scale_f32,
    scale_to_f32,
    exp_scale_f32,
    write_log_softmax_f32,
    super::row_ln_f32
);

/// The many-rows kernel: a row of at most 16 elements is one or two vectors, kept in
/// registers from load to store, with the operations (so the bits) of the block kernels;
/// longer rows go through the block kernels. Rows stored back to back at one temperature go
/// 8 at a time through [`rows_f32_packed`], with the same bits.
///
/// # Safety
/// As [`Kernels::rows`].
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_f32(
    op: crate::op::Op,
    src: *const f32,
    src_step: usize,
    dst: *mut f32,
    dst_step: usize,
    n: usize,
    count: usize,
    temps: *const f64,
    temp_step: usize,
    store: super::Store,
) {
    if n > 16 || n == 0 {
        // SAFETY: `rows_f32_general`'s contract (`rows_kernel!`'s `# Safety`) is this
        // function's, `Kernels::rows`', for the same arguments; it needs avx2,fma, which this
        // function is compiled with.
        return unsafe {
            rows_f32_general(
                op, src, src_step, dst, dst_step, n, count, temps, temp_step, store,
            )
        };
    }
    // SAFETY: `packed_groups` requires `Kernels::rows`' contract, this function's, for the
    // same arguments, with `n` within what the kernels take and the kernels safe to call on
    // this CPU. It calls them only for `n >= 2` (and here `n <= 16`), on whole groups of 8
    // rows stored back to back (`src_step == dst_step == n`, so `8 n` readable and writable
    // elements from each group's start) at one temperature with a normal reciprocal: the
    // `# Safety` of `rows_f32_packed`, whose avx2,fma this CPU has (this function runs).
    let first = unsafe {
        super::packed_groups::<8>(
            op,
            src,
            src_step,
            dst,
            dst_step,
            n,
            count,
            temps,
            temp_step,
            rows_f32_packed::<true>,
            rows_f32_packed::<false>,
        )
    };
    // SAFETY: `first <= count`. `packed_groups` computes rows (`first > 0`) only when they are
    // stored back to back at one temperature (`src_step == dst_step == n`, `temp_step == 0`):
    // then `first * n` is at most the end of the `count` rows of `src` and of `dst`, and
    // `temps` stays put; with `first == 0` no pointer moves.
    let (src, dst, temps) = unsafe {
        (
            src.add(first * src_step),
            dst.add(first * dst_step),
            temps.add(first * temp_step),
        )
    };
    let count = count - first;
    let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
    // Lanes in the second vector (0 when the row fits in one).
    let n1 = n.saturating_sub(8);
    let n0 = n - n1;
    let load = |p: *const f32, r: usize| {
        // SAFETY: every call below passes `p` with `r` readable elements, `1 <= r <= 8`: a
        // row's first `n0` (`1 <= n <= 16`) or, with `n1 > 0`, last `n1` elements. A full
        // vector is loaded for `r == 8`, else `load_tail_ps` takes the `r < 8`; it needs
        // avx2,fma, which this CPU has (the enclosing kernel runs).
        unsafe {
            if r == 8 {
                _mm256_loadu_ps(p)
            } else {
                load_tail_ps(p, r, f32::NEG_INFINITY)
            }
        }
    };
    let store = |p: *mut f32, r: usize, v: __m256| {
        // SAFETY: as for `load`, with `r` writable elements at `p` (of a row of `dst`).
        unsafe {
            if r == 8 {
                _mm256_storeu_ps(p, v)
            } else {
                store_tail_ps(p, r, v)
            }
        }
    };
    for r in 0..count {
        // SAFETY: `r` is below the rows left (`count` now excludes the `first` done): row
        // `first + r` of the caller's, whose `n` elements at `s` are readable and at `d`
        // writable, and whose temperature `temps.add(r * temp_step)` points to
        // (`Kernels::rows`).
        let (s, d, t) = unsafe {
            (
                src.add(r * src_step),
                dst.add(r * dst_step),
                *temps.add(r * temp_step),
            )
        };
        let inv = 1.0 / t;
        if t != 1.0 && !inv.is_normal() {
            // SAFETY: one row (`count` 1, so the steps are not used) of `n` elements at `s`
            // (readable) and `d` (writable), the same or disjoint as the caller's rows are; its
            // temperature at `&t`, positive and finite as the caller's are. `rows_f32_general`
            // needs avx2,fma, which this function is compiled with.
            unsafe { rows_f32_general(op, s, 0, d, 0, n, 1, &t, 0, super::Store::Cached) };
            continue;
        }
        // As `max_f32_impl`, `exp_sum_f32` and the write kernels, step by step.
        let x0 = load(s, n0);
        let x1 = if n1 > 0 {
            // SAFETY: `n1 > 0` means `n > 8`: `s.add(8)` is within the row.
            load(unsafe { s.add(8) }, n1)
        } else {
            ninf
        };
        let nan = _mm256_or_ps(
            _mm256_cmp_ps::<_CMP_UNORD_Q>(x0, x0),
            _mm256_cmp_ps::<_CMP_UNORD_Q>(x1, x1),
        );
        let nan = _mm256_movemask_ps(nan) != 0;
        let m0 = _mm256_max_ps(x0, ninf);
        let m0 = if n1 > 0 { _mm256_max_ps(x1, m0) } else { m0 };
        // SAFETY: `hmax_ps` takes no pointers; it needs only avx2,fma, which this function is
        // compiled with.
        let m = unsafe { hmax_ps(m0, ninf, ninf, ninf) };
        if nan || m == f32::INFINITY || m == f32::NEG_INFINITY {
            // Contract S6.
            let y = _mm256_set1_ps(f32::NAN);
            store(d, n0, y);
            if n1 > 0 {
                // SAFETY: `n1 > 0` means `n > 8`: `d.add(8)` is within the row.
                store(unsafe { d.add(8) }, n1, y);
            }
            continue;
        }
        // SAFETY: `ArgF32::new` takes no pointers; it needs only avx2,fma, which this function
        // is compiled with.
        let c = unsafe { ArgF32::new(m, inv) };
        let exp = |x: __m256| {
            // SAFETY: `exp_arg` takes no pointers; it needs only avx2,fma, which this CPU has
            // (the enclosing kernel runs).
            unsafe {
                if t == 1.0 {
                    exp_arg::<true>(c, x)
                } else {
                    exp_arg::<false>(c, x)
                }
            }
        };
        let e0 = exp(x0);
        // SAFETY: `lo_pd` and `hi_pd` take no pointers; they need only avx2,fma, which this
        // function is compiled with.
        let (mut a0, mut a1) = unsafe { (lo_pd(e0), hi_pd(e0)) };
        let e1 = if n1 > 0 {
            let e1 = exp(x1);
            // SAFETY: as above.
            unsafe {
                a0 = _mm256_add_pd(a0, lo_pd(e1));
                a1 = _mm256_add_pd(a1, hi_pd(e1));
            }
            e1
        } else {
            e0
        };
        // SAFETY: `hsum_pd` takes no pointers; it needs only avx2,fma, which this function is
        // compiled with.
        let total = unsafe { hsum_pd(_mm256_add_pd(a0, a1)) };
        let (y0, y1) = match op {
            crate::op::Op::Softmax => {
                let f = _mm256_set1_ps((1.0 / total) as f32);
                (_mm256_mul_ps(e0, f), _mm256_mul_ps(e1, f))
            }
            crate::op::Op::LogSoftmax => {
                let ls = super::row_ln_f32(total);
                let ls64 = _mm256_set1_pd(ls);
                // SAFETY: `log_f32` takes no pointers; it needs only avx2,fma, which this
                // function is compiled with.
                unsafe {
                    if t == 1.0 {
                        (
                            log_f32::<true>(c, ls as f32, ls64, x0),
                            log_f32::<true>(c, ls as f32, ls64, x1),
                        )
                    } else {
                        (
                            log_f32::<false>(c, ls as f32, ls64, x0),
                            log_f32::<false>(c, ls as f32, ls64, x1),
                        )
                    }
                }
            }
        };
        store(d, n0, y0);
        if n1 > 0 {
            // SAFETY: `n1 > 0` means `n > 8`: `d.add(8)` is within the row.
            store(unsafe { d.add(8) }, n1, y1);
        }
    }
}

/// [`super::FoldedArg`]'s terms for 8 rows at once (lane `r`: row `r`), for the packed kernel:
/// the same operations on the same values, so the same bits and the same choice of form.
struct PackedFolds {
    /// Bit `r`: row `r` takes the folded form.
    rows: i32,
    /// Lane `r`: all ones when row `r` takes the folded form.
    flags: __m256,
    terms: Folded,
}

impl PackedFolds {
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn none() -> PackedFolds {
        PackedFolds {
            rows: 0,
            flags: _mm256_setzero_ps(),
            // SAFETY: `Folded::splat` takes no pointers; it needs only avx2,fma, which this
            // function is compiled with.
            terms: unsafe { Folded::splat(super::FoldedArg::default()) },
        }
    }

    /// `m`: the rows' maxima; `inv`: their reciprocal temperature, not 1, in [2^-100, 2^100]
    /// (as the packed kernels require).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn of_rows(m: __m256, inv: f64) -> PackedFolds {
        // SAFETY: there are no pointers here: the only unsafe operations are calls to this
        // file's `PackedFolds::none`, `lo_pd`, `hi_pd`, `narrow` and `narrow_mask`, which need
        // only avx2,fma, which this function is compiled with.
        unsafe {
            if inv == 1.0 {
                // As `FoldedArg::new` (a temperature just off 1 whose reciprocal rounds to 1).
                return PackedFolds::none();
            }
            let inv_v = _mm256_set1_pd(inv);
            let (mi_lo, mi_hi) = (
                _mm256_mul_pd(lo_pd(m), inv_v),
                _mm256_mul_pd(hi_pd(m), inv_v),
            );
            let hi = narrow(mi_lo, mi_hi);
            let lo = narrow(
                _mm256_sub_pd(mi_lo, lo_pd(hi)),
                _mm256_sub_pd(mi_hi, hi_pd(hi)),
            );
            let gap = _mm256_set1_pd(super::FOLD_FLOOR / inv);
            let x_floor = narrow(_mm256_sub_pd(lo_pd(m), gap), _mm256_sub_pd(hi_pd(m), gap));
            // |mi| <= FOLD_LIMIT, false for NaN, as in `FoldedArg::new`.
            let abs = _mm256_castsi256_pd(_mm256_set1_epi64x(i64::MAX));
            let limit = _mm256_set1_pd(super::FOLD_LIMIT);
            let in_lo = _mm256_cmp_pd::<_CMP_LE_OQ>(_mm256_and_pd(mi_lo, abs), limit);
            let in_hi = _mm256_cmp_pd::<_CMP_LE_OQ>(_mm256_and_pd(mi_hi, abs), limit);
            let flags = narrow_mask(in_lo, in_hi);
            let sign = _mm256_set1_ps(-0.0);
            let inv_hi = inv as f32;
            PackedFolds {
                rows: _mm256_movemask_ps(flags),
                flags,
                terms: Folded {
                    inv_hi: _mm256_set1_ps(inv_hi),
                    inv_lo: _mm256_set1_ps((inv - inv_hi as f64) as f32),
                    neg_mi_hi: _mm256_xor_ps(hi, sign),
                    neg_mi_lo: _mm256_xor_ps(lo, sign),
                    x_floor,
                },
            }
        }
    }

    /// The terms of each lane's row, lane `l` in row `row[l]`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn lanes(&self, row: __m256i) -> Folded {
        Folded {
            neg_mi_hi: _mm256_permutevar8x32_ps(self.terms.neg_mi_hi, row),
            neg_mi_lo: _mm256_permutevar8x32_ps(self.terms.neg_mi_lo, row),
            x_floor: _mm256_permutevar8x32_ps(self.terms.x_floor, row),
            ..self.terms
        }
    }
}

/// Two masks of 4 `f64` lanes (all ones or zero) as one of 8 `f32` lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn narrow_mask(lo: __m256d, hi: __m256d) -> __m256 {
    // Each 64-bit lane's low half, in order: 32-bit lanes 0, 2, 4, 6 of each.
    let pick = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    let l = _mm256_permutevar8x32_ps(_mm256_castpd_ps(lo), pick);
    let h = _mm256_permutevar8x32_ps(_mm256_castpd_ps(hi), pick);
    _mm256_blend_ps::<0xF0>(l, h)
}

/// Rows per group of the packed short-row kernel: one per `f32` lane.
const PACKED_GROUP: usize = 8;

/// Lanes `0..r` all ones, the others zero (`r <= 8`).
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn lanes_below(r: usize) -> __m256 {
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(r as i32), lane))
}

/// 8 rows of `rows.n` elements stored one after the other (`8 n` elements, `n` full vectors),
/// all at one temperature (`inv` its reciprocal; UNIT: temperature 1). The per-row kernel
/// spends most of a short row on horizontal reductions and on partly filled vectors; here the
/// 8 row maxima and the 8 row sums are reduced together by shuffle trees ([`max_of_each`],
/// [`hsum_of_each`]), and the exps, the scaling and the log-softmax outputs run on the `n`
/// packed vectors, each lane getting its row's maximum and factor through one permutation. A
/// row's exps are read back from a scratch copy, zero past the row's end (as `exp(-inf)`
/// gives), and summed as the per-row kernel sums them; so every row gets the same bits.
///
/// # Safety
/// `src` valid for reads and `dst` for writes of `8 * rows.n` elements, the same or disjoint;
/// `2 <= rows.n <= 16`; `inv` normal; AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_f32_packed<const UNIT: bool>(
    op: crate::op::Op,
    src: *const f32,
    dst: *mut f32,
    inv: f64,
    rows: &super::PackedRows<8>,
) {
    let n = rows.n;
    let n1 = n.saturating_sub(8);
    let n0 = n - n1;
    let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
    let load = |p: *const f32, r: usize| {
        // SAFETY: every call below passes `p` with `r` readable elements, `1 <= r <= 8`: the
        // first `n0` or, with `n1 > 0`, the last `n1` elements of one of the 8 rows at `src`
        // (`2 <= n <= 16`, # Safety). A full vector is loaded for `r == 8`, else
        // `load_tail_ps` takes the `r < 8`; it needs avx2,fma, which this CPU has (the
        // enclosing kernel runs).
        unsafe {
            if r == 8 {
                _mm256_loadu_ps(p)
            } else {
                load_tail_ps(p, r, f32::NEG_INFINITY)
            }
        }
    };
    let mut maxima = [ninf; PACKED_GROUP];
    for (r, slot) in maxima.iter_mut().enumerate() {
        // SAFETY: `r < 8`: row `r` is the `n` elements at `src.add(r * n)`, within the `8 n`
        // readable ones (# Safety).
        let s = unsafe { src.add(r * n) };
        let m = _mm256_max_ps(load(s, n0), ninf);
        *slot = if n1 > 0 {
            // SAFETY: `n1 > 0` means `n > 8`: `s.add(8)` is within row `r`.
            _mm256_max_ps(load(unsafe { s.add(8) }, n1), m)
        } else {
            m
        };
    }
    // Exact for rows without NaN whatever the order; a row with NaN, +inf or nothing above
    // -inf has a NaN sum (NaN - m, inf - inf or -inf - -inf), caught below.
    // SAFETY: `max_of_each` takes no pointers; it needs only avx2,fma, which this function is
    // compiled with.
    let m = unsafe { max_of_each(&maxima) };
    let inv_v = _mm256_set1_pd(inv);
    // Each row's choice of form and its folded terms, as `ArgF32::new` makes them.
    // SAFETY: `PackedFolds::none` and `PackedFolds::of_rows` take no pointers; they need only
    // avx2,fma, which this function is compiled with.
    let fold = unsafe {
        if UNIT {
            PackedFolds::none()
        } else {
            PackedFolds::of_rows(m, inv)
        }
    };
    // 8 spare lanes: the read-back of a row's last vector may run past the group's end.
    let mut exps = [0.0f32; 8 * 16 + 8];
    for v in 0..n {
        // SAFETY: `rows.row_of[v]` is 8 `i32`s, the 32 bytes read (unaligned); `v < n`: the 8
        // elements at `src.add(8 * v)` are among the `8 n` readable ones (# Safety).
        let (row, x) = unsafe {
            (
                _mm256_loadu_si256(rows.row_of[v].as_ptr().cast()),
                _mm256_loadu_ps(src.add(8 * v)),
            )
        };
        let mv = _mm256_permutevar8x32_ps(m, row);
        // As `exp_arg`, with each lane's row maximum and its row's choice of form.
        // SAFETY: `PackedFolds::lanes` and `Folded::exp` take no pointers; they need only
        // avx2,fma, which this CPU has (the enclosing kernel runs).
        let folded = || unsafe { fold.lanes(row).exp(x) };
        // As `arg_ps::<false>`, with `m as f64` per lane.
        let widened = || {
            // SAFETY: `exp_ps`, `narrow`, `lo_pd` and `hi_pd` take no pointers; they need only
            // avx2,fma, which this CPU has (the enclosing kernel runs).
            unsafe {
                exp_ps(narrow(
                    _mm256_mul_pd(_mm256_sub_pd(lo_pd(x), lo_pd(mv)), inv_v),
                    _mm256_mul_pd(_mm256_sub_pd(hi_pd(x), hi_pd(mv)), inv_v),
                ))
            }
        };
        let e = if UNIT {
            // SAFETY: `exp_ps` takes no pointers; it needs only avx2,fma, which this function
            // is compiled with.
            unsafe { exp_ps(_mm256_sub_ps(x, mv)) }
        } else if fold.rows == 0xFF {
            folded()
        } else if fold.rows == 0 {
            widened()
        } else {
            let lanes = _mm256_permutevar8x32_ps(fold.flags, row);
            _mm256_blendv_ps(widened(), folded(), lanes)
        };
        // SAFETY: `v < n <= 16`: elements `8 v .. 8 v + 8` of `exps` (136 elements) exist.
        unsafe { _mm256_storeu_ps(exps.as_mut_ptr().add(8 * v), e) };
    }
    // SAFETY: `lanes_below` takes no pointers; it needs only avx2,fma, which this function is
    // compiled with (and `n0, n1 <= 8`, as it expects).
    let (keep0, keep1) = unsafe { (lanes_below(n0), lanes_below(n1)) };
    let mut sums = [_mm256_setzero_pd(); PACKED_GROUP];
    for (r, slot) in sums.iter_mut().enumerate() {
        // SAFETY: `r < 8`, `n <= 16`: the 8 elements read from `exps.as_ptr().add(r * n)`, and
        // with `n1 > 0` the 8 after them, end at most at `7 * 16 + 16 = 128`, within `exps`
        // (136 elements). `lo_pd` and `hi_pd` take no pointers; they need only avx2,fma, which
        // this function is compiled with.
        unsafe {
            let p = exps.as_ptr().add(r * n);
            // As the per-row kernel: a0 = lo(e0) (+ lo(e1)), a1 = hi(e0) (+ hi(e1)), a0 + a1.
            let e0 = _mm256_and_ps(_mm256_loadu_ps(p), keep0);
            let (mut a0, mut a1) = (lo_pd(e0), hi_pd(e0));
            if n1 > 0 {
                let e1 = _mm256_and_ps(_mm256_loadu_ps(p.add(8)), keep1);
                a0 = _mm256_add_pd(a0, lo_pd(e1));
                a1 = _mm256_add_pd(a1, hi_pd(e1));
            }
            *slot = _mm256_add_pd(a0, a1);
        }
    }
    // SAFETY: `hsum_of_each` takes no pointers; it needs only avx2,fma, which this function is
    // compiled with.
    let (tot_lo, tot_hi) = unsafe { hsum_of_each(&sums) };
    let mut totals = [0.0f64; PACKED_GROUP];
    // SAFETY: `totals` is 8 `f64`s: lanes 0-3 go to elements 0-3, lanes 4-7 to 4-7.
    unsafe {
        _mm256_storeu_pd(totals.as_mut_ptr(), tot_lo);
        _mm256_storeu_pd(totals.as_mut_ptr().add(4), tot_hi);
    }
    match op {
        crate::op::Op::Softmax => {
            let mut f = [0.0f32; PACKED_GROUP];
            for (slot, &total) in f.iter_mut().zip(&totals) {
                *slot = (1.0 / total) as f32;
            }
            // SAFETY: `f` is 8 `f32`s.
            let f = unsafe { _mm256_loadu_ps(f.as_ptr()) };
            for v in 0..n {
                // SAFETY: `rows.row_of[v]` is 8 `i32`s; `v < n <= 16`: elements `8 v .. 8 v + 8`
                // of `exps` (136 elements) exist, and those of `dst` are among its `8 n`
                // writable ones (# Safety).
                unsafe {
                    let row = _mm256_loadu_si256(rows.row_of[v].as_ptr().cast());
                    let e = _mm256_loadu_ps(exps.as_ptr().add(8 * v));
                    let y = _mm256_mul_ps(e, _mm256_permutevar8x32_ps(f, row));
                    _mm256_storeu_ps(dst.add(8 * v), y);
                }
            }
        }
        crate::op::Op::LogSoftmax => {
            let mut ls = [0.0f64; PACKED_GROUP];
            let mut ls32 = [0.0f32; PACKED_GROUP];
            for r in 0..PACKED_GROUP {
                ls[r] = super::row_ln_f32(totals[r]);
                ls32[r] = ls[r] as f32;
            }
            // SAFETY: `ls32` is 8 `f32`s.
            let ls32 = unsafe { _mm256_loadu_ps(ls32.as_ptr()) };
            for v in 0..n {
                // SAFETY: `rows.row_of[v]` is 8 `i32`s; `v < n`: the 8 elements at
                // `src.add(8 * v)` are among the `8 n` readable ones (# Safety).
                let (row, x) = unsafe {
                    (
                        _mm256_loadu_si256(rows.row_of[v].as_ptr().cast()),
                        // Read before the same vector of `dst` is written (`src == dst`
                        // allowed).
                        _mm256_loadu_ps(src.add(8 * v)),
                    )
                };
                let mv = _mm256_permutevar8x32_ps(m, row);
                let y = if UNIT {
                    _mm256_sub_ps(_mm256_sub_ps(x, mv), _mm256_permutevar8x32_ps(ls32, row))
                } else {
                    // As `log_f32::<false>`, with the row's f64 logarithm per lane.
                    let rs = &rows.row_of[v];
                    let ls_of = |l: usize| ls[rs[l] as usize];
                    let ls_lo = _mm256_setr_pd(ls_of(0), ls_of(1), ls_of(2), ls_of(3));
                    let ls_hi = _mm256_setr_pd(ls_of(4), ls_of(5), ls_of(6), ls_of(7));
                    // SAFETY: `narrow`, `lo_pd` and `hi_pd` take no pointers; they need only
                    // avx2,fma, which this function is compiled with.
                    unsafe {
                        narrow(
                            _mm256_fmsub_pd(_mm256_sub_pd(lo_pd(x), lo_pd(mv)), inv_v, ls_lo),
                            _mm256_fmsub_pd(_mm256_sub_pd(hi_pd(x), hi_pd(mv)), inv_v, ls_hi),
                        )
                    }
                };
                // SAFETY: `v < n`: the 8 elements at `dst.add(8 * v)` are among the `8 n`
                // writable ones (# Safety).
                unsafe { _mm256_storeu_ps(dst.add(8 * v), y) };
            }
        }
    }
    for (r, total) in totals.iter().enumerate() {
        if total.is_nan() {
            // Contract S6.
            // SAFETY: `r < 8`: row `r` is the `n` writable elements at `dst.add(r * n)`
            // (# Safety): its first `n0` at `d` and, with `n1 > 0` (`n > 8`), its last `n1` at
            // `d.add(8)`, stored whole when 8, else by `store_tail_ps` (which takes fewer than
            // 8 and needs avx2,fma, which this function is compiled with).
            unsafe {
                let d = dst.add(r * n);
                let nan = _mm256_set1_ps(f32::NAN);
                if n0 == 8 {
                    _mm256_storeu_ps(d, nan);
                } else {
                    store_tail_ps(d, n0, nan);
                }
                if n1 == 8 {
                    _mm256_storeu_ps(d.add(8), nan);
                } else if n1 > 0 {
                    store_tail_ps(d.add(8), n1, nan);
                }
            }
        }
    }
}

/// Lane `r`: the largest lane of `xs[r]`, for vectors without NaN (with NaN, any value). A
/// tree of 7 maxima on full vectors: each level halves every vector's candidates and packs
/// two vectors into one (128-bit halves, then pairs within halves), then one permutation puts
/// the rows in order.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn max_of_each(xs: &[__m256; 8]) -> __m256 {
    // Level 1: w[k] lanes 0-3 hold 4 candidates of row 2k, lanes 4-7 of row 2k + 1.
    let mut w = [_mm256_setzero_ps(); 4];
    for (k, slot) in w.iter_mut().enumerate() {
        let (a, b) = (xs[2 * k], xs[2 * k + 1]);
        *slot = _mm256_max_ps(
            _mm256_permute2f128_ps::<0x20>(a, b),
            _mm256_permute2f128_ps::<0x31>(a, b),
        );
    }
    // Level 2: u[k] half h, lanes 0-1 hold 2 candidates of row 4k + h, lanes 2-3 of 4k + 2 + h.
    let mut u = [_mm256_setzero_ps(); 2];
    for (k, slot) in u.iter_mut().enumerate() {
        let (a, b) = (w[2 * k], w[2 * k + 1]);
        *slot = _mm256_max_ps(
            _mm256_shuffle_ps::<0b01_00_01_00>(a, b),
            _mm256_shuffle_ps::<0b11_10_11_10>(a, b),
        );
    }
    // Level 3: half h, lane i holds the maximum of row 2i + h.
    let r = _mm256_max_ps(
        _mm256_shuffle_ps::<0b10_00_10_00>(u[0], u[1]),
        _mm256_shuffle_ps::<0b11_01_11_01>(u[0], u[1]),
    );
    // Row 2i + h is in lane 4h + i.
    _mm256_permutevar8x32_ps(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// [`hsum_pd`] of each of 8 vectors, the same additions in the same order (so the same bits):
/// rows 0-3 in the lanes of the first result, rows 4-7 in the second.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn hsum_of_each(s: &[__m256d; 8]) -> (__m256d, __m256d) {
    // Level 1 (low half + high half): w[k] lanes 0-1 for row 2k, 2-3 for row 2k + 1.
    let mut w = [_mm256_setzero_pd(); 4];
    for (k, slot) in w.iter_mut().enumerate() {
        let (a, b) = (s[2 * k], s[2 * k + 1]);
        *slot = _mm256_add_pd(
            _mm256_permute2f128_pd::<0x20>(a, b),
            _mm256_permute2f128_pd::<0x31>(a, b),
        );
    }
    // Level 2 (0 + 1): lanes for rows 4k, 4k + 2, 4k + 1, 4k + 3, then put in order.
    let mut z = [_mm256_setzero_pd(); 2];
    for (k, slot) in z.iter_mut().enumerate() {
        let (a, b) = (w[2 * k], w[2 * k + 1]);
        let sum = _mm256_add_pd(_mm256_unpacklo_pd(a, b), _mm256_unpackhi_pd(a, b));
        *slot = _mm256_permute4x64_pd::<0b11_01_10_00>(sum);
    }
    (z[0], z[1])
}

level_table!(
    /// The AVX2 table for `f32`. Only handed out when the CPU has AVX2 and FMA.
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
