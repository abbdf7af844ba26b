//! AVX2 + FMA kernels (x86-64), 8 `f32` or 4 `f64` lanes. A tail shorter than a vector is
//! loaded and stored in pieces of 4, 2 and 1 lanes, padded with -inf (whose exp is exactly 0).
//!
//! Every function here is compiled with `avx2,fma` and must only run on a CPU that has them:
//! the tables at the end are handed out by `kernels_for` only after `cpu_has(Avx2)`.

use std::arch::x86_64::*;

use super::isa::avx2::Avx2;
use super::isa::{exp_f32_flushing, Simd};
use super::{level_table, rows_kernel};

/// The AVX2 token.
///
/// # Safety
/// Only called from functions that run on a CPU with AVX2 and FMA (every function here).
#[inline(always)]
unsafe fn isa() -> Avx2 {
    // SAFETY: this function's contract.
    unsafe { Avx2::new() }
}

// ---------------------------------------------------------------------------------------------
// f32
// ---------------------------------------------------------------------------------------------

/// The polynomial exp of every lane ([`exp_f32_flushing`]).
///
/// # Safety
/// AVX2, FMA.
#[inline(always)]
unsafe fn exp_ps(a: __m256) -> __m256 {
    // SAFETY: the CPU has AVX2 and FMA (# Safety).
    let s = unsafe { isa() };
    exp_f32_flushing::<Avx2, false>(s, a, s.splat_f32(0.0))
}

/// [`Simd::widen_low`].
///
/// # Safety
/// AVX2, FMA.
#[inline(always)]
unsafe fn lo_pd(v: __m256) -> __m256d {
    // SAFETY: the CPU has AVX2 and FMA (# Safety).
    unsafe { isa() }.widen_low(v)
}

/// [`Simd::widen_high`].
///
/// # Safety
/// AVX2, FMA.
#[inline(always)]
unsafe fn hi_pd(v: __m256) -> __m256d {
    // SAFETY: the CPU has AVX2 and FMA (# Safety).
    unsafe { isa() }.widen_high(v)
}

/// [`Simd::narrow`].
///
/// # Safety
/// AVX2, FMA.
#[inline(always)]
unsafe fn narrow(lo: __m256d, hi: __m256d) -> __m256 {
    // SAFETY: the CPU has AVX2 and FMA (# Safety).
    unsafe { isa() }.narrow(lo, hi)
}

/// The largest lane of four NaN-free vectors, in a fixed order (the row maximum's).
///
/// # Safety
/// AVX2, FMA.
#[inline(always)]
unsafe fn hmax_ps(m0: __m256, m1: __m256, m2: __m256, m3: __m256) -> f32 {
    // SAFETY: the CPU has AVX2 and FMA (# Safety).
    let s = unsafe { isa() };
    s.reduce_max_f32(s.max_f32(s.max_f32(m0, m1), s.max_f32(m2, m3)))
}

/// [`Simd::reduce_add_f64`].
///
/// # Safety
/// AVX2, FMA.
#[inline(always)]
unsafe fn hsum_pd(v: __m256d) -> f64 {
    // SAFETY: the CPU has AVX2 and FMA (# Safety).
    unsafe { isa() }.reduce_add_f64(v)
}

type ArgF32 = crate::kernels::algo::f32::ArgF32<Avx2>;
type Folded = crate::kernels::algo::f32::Folded<Avx2>;

crate::kernels::algo::f32::block_kernels!("avx2,fma");

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
    if n == 0 {
        return;
    }
    if n > 16 {
        // SAFETY: this function's contract is `rows_long`'s (`Kernels::rows`, `n > 16`);
        // `rows_f32_general` is this level's plain rows kernel, which this CPU can run.
        return unsafe {
            crate::kernels::algo::rows::rows_long(
                isa(),
                rows_f32_general,
                None,
                op,
                src,
                src_step,
                dst,
                dst_step,
                n,
                count,
                temps,
                temp_step,
                store,
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
        // vector is loaded for `r == 8`, else `load_f32_part` takes the `r < 8`; it needs
        // avx2,fma, which this CPU has (the enclosing kernel runs).
        unsafe {
            if r == 8 {
                _mm256_loadu_ps(p)
            } else {
                isa().load_f32_part(p, r, f32::NEG_INFINITY)
            }
        }
    };
    let store = |p: *mut f32, r: usize, v: __m256| {
        // SAFETY: as for `load`, with `r` writable elements at `p` (of a row of `dst`).
        unsafe {
            if r == 8 {
                _mm256_storeu_ps(p, v)
            } else {
                isa().store_f32_part(p, r, v)
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
        let c = unsafe { ArgF32::new(isa(), m, inv) };
        let exp = |x: __m256| {
            // SAFETY: `exp_arg` takes no pointers; it needs only avx2,fma, which this CPU has
            // (the enclosing kernel runs).
            unsafe {
                if t == 1.0 {
                    c.exp::<true>(isa(), x)
                } else {
                    c.exp::<false>(isa(), x)
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
                            c.log::<true>(isa(), _mm256_set1_ps(ls as f32), ls64, x0),
                            c.log::<true>(isa(), _mm256_set1_ps(ls as f32), ls64, x1),
                        )
                    } else {
                        (
                            c.log::<false>(isa(), _mm256_set1_ps(ls as f32), ls64, x0),
                            c.log::<false>(isa(), _mm256_set1_ps(ls as f32), ls64, x1),
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
            terms: unsafe { Folded::splat(isa(), super::FoldedArg::default()) },
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
        // `load_f32_part` takes the `r < 8`; it needs avx2,fma, which this CPU has (the
        // enclosing kernel runs).
        unsafe {
            if r == 8 {
                _mm256_loadu_ps(p)
            } else {
                isa().load_f32_part(p, r, f32::NEG_INFINITY)
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
    // The exps of the group, `8 n` written below, then the 8 after them zeroed: the
    // read-back of a row's last vector may run past the group's end (not the whole buffer
    // zeroed first: for rows this short that would cost as much as a pass over them).
    let mut exps_buf = std::mem::MaybeUninit::<[f32; 8 * 16 + 8]>::uninit();
    let exps = exps_buf.as_mut_ptr().cast::<f32>();
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
        let folded = || unsafe { fold.lanes(row).exp(isa(), x) };
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
        unsafe { _mm256_storeu_ps(exps.add(8 * v), e) };
    }
    // SAFETY: `n <= 16`: elements `8 n .. 8 n + 8` of `exps` (136 elements) exist. Now the
    // first `8 n + 8` are initialized.
    unsafe { _mm256_storeu_ps(exps.add(8 * n), _mm256_setzero_ps()) };
    // SAFETY: `lanes_below` takes no pointers; it needs only avx2,fma, which this function is
    // compiled with (and `n0, n1 <= 8`, as it expects).
    let (keep0, keep1) = unsafe { (lanes_below(n0), lanes_below(n1)) };
    let mut sums = [_mm256_setzero_pd(); PACKED_GROUP];
    for (r, slot) in sums.iter_mut().enumerate() {
        // SAFETY: `r < 8`, `n <= 16`: the 8 elements read from `exps.add(r * n)`, and with
        // `n1 > 0` (`n > 8`) the 8 after them, end at `7 n + 8 <= 8 n + 8` (`n <= 8`) or at
        // `7 n + 16 < 8 n + 8` (`n > 8`): among the first `8 n + 8`, initialized above.
        // `lo_pd` and `hi_pd` take no pointers; they need only avx2,fma, which this function
        // is compiled with.
        unsafe {
            let p = exps.cast_const().add(r * n);
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
                    let e = _mm256_loadu_ps(exps.cast_const().add(8 * v));
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
            // `d.add(8)`, stored whole when 8, else by `store_f32_part` (which takes fewer than
            // 8 and needs avx2,fma, which this function is compiled with).
            unsafe {
                let d = dst.add(r * n);
                let nan = _mm256_set1_ps(f32::NAN);
                if n0 == 8 {
                    _mm256_storeu_ps(d, nan);
                } else {
                    isa().store_f32_part(d, n0, nan);
                }
                if n1 == 8 {
                    _mm256_storeu_ps(d.add(8), nan);
                } else if n1 > 0 {
                    isa().store_f32_part(d.add(8), n1, nan);
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
