//! AVX-512F kernels (x86-64), 16 `f32` or 8 `f64` lanes; tails use masked loads and stores.
//!
//! Every function here is compiled with `avx512f,avx2,fma` and must only run on a CPU that has
//! them: the tables at the end are handed out by `kernels_for` only after `cpu_has(Avx512)`.

use std::arch::x86_64::*;

use super::isa::avx512::{mask16, Avx512};
use super::isa::Simd;
use super::{level_table, rows_kernel};

/// The AVX-512 token.
///
/// # Safety
/// Only called from functions that run on a CPU with AVX-512F, AVX2 and FMA (every function
/// here).
#[inline(always)]
unsafe fn isa() -> Avx512 {
    // SAFETY: this function's contract.
    unsafe { Avx512::new() }
}

// ---------------------------------------------------------------------------------------------
// f32
// ---------------------------------------------------------------------------------------------

/// The level's `f32` exp of every lane ([`Simd::exp_f32`]: the 16-entry-table exp).
///
/// # Safety
/// AVX-512F.
#[inline(always)]
unsafe fn exp_ps(a: __m512) -> __m512 {
    // SAFETY: the CPU has AVX-512F (# Safety).
    unsafe { isa() }.exp_f32(a)
}

/// [`Simd::widen_low`].
///
/// # Safety
/// AVX-512F.
#[inline(always)]
unsafe fn lo_pd(v: __m512) -> __m512d {
    // SAFETY: the CPU has AVX-512F (# Safety).
    unsafe { isa() }.widen_low(v)
}

/// [`Simd::widen_high`].
///
/// # Safety
/// AVX-512F.
#[inline(always)]
unsafe fn hi_pd(v: __m512) -> __m512d {
    // SAFETY: the CPU has AVX-512F (# Safety).
    unsafe { isa() }.widen_high(v)
}

/// [`Simd::narrow`].
///
/// # Safety
/// AVX-512F.
#[inline(always)]
unsafe fn narrow(lo: __m512d, hi: __m512d) -> __m512 {
    // SAFETY: the CPU has AVX-512F (# Safety).
    unsafe { isa() }.narrow(lo, hi)
}

type ArgF32 = crate::kernels::algo::f32::ArgF32<Avx512>;
type InvF32 = crate::kernels::algo::f32::InvF32<Avx512>;

/// Whether the `f32` vector kernels take temperature `t`
/// ([`crate::kernels::algo::f32::vector_temperature`]).
#[inline]
fn vector_inv(t: f64) -> bool {
    crate::kernels::algo::f32::vector_temperature::<Avx512>(t)
}

/// `exp((x - m) / t)` of every lane ([`ArgF32::exp`]).
///
/// # Safety
/// AVX-512F.
#[inline(always)]
unsafe fn exp_arg<const UNIT: bool>(c: ArgF32, x: __m512) -> __m512 {
    // SAFETY: the CPU has AVX-512F (# Safety).
    c.exp::<UNIT>(unsafe { isa() }, x)
}

/// `(x - m) / t - ls` of every lane ([`ArgF32::log`]).
///
/// # Safety
/// AVX-512F.
#[inline(always)]
unsafe fn log_f32<const UNIT: bool>(c: ArgF32, ls: __m512, x: __m512) -> __m512 {
    // SAFETY: the CPU has AVX-512F (# Safety).
    let s = unsafe { isa() };
    c.log::<UNIT>(s, ls, s.splat_f64(0.0), x)
}

/// [`InvF32::log_scaled`].
///
/// # Safety
/// AVX-512F.
#[inline(always)]
unsafe fn log_scaled(d: __m512, s: InvF32, ls: __m512) -> __m512 {
    // SAFETY: the CPU has AVX-512F (# Safety).
    s.log_scaled(unsafe { isa() }, d, ls)
}

/// The folded `exp((x - m) * inv)` of [`ArgF32::exp`], with `m`'s terms given lane by lane.
///
/// # Safety
/// AVX-512F.
#[inline(always)]
unsafe fn exp_folded(
    x: __m512,
    x_floor: __m512,
    s: InvF32,
    neg_mi_hi: __m512,
    neg_mi_lo: __m512,
) -> __m512 {
    // SAFETY: the CPU has AVX-512F (# Safety).
    let v = unsafe { isa() };
    // NaN propagates: MAXPS returns its second operand when either is NaN.
    let x = v.max_f32(x_floor, x);
    let a = v.mul_add_f32(x, s.hi, neg_mi_hi);
    let lo = v.mul_add_f32(x, s.lo, neg_mi_lo);
    v.exp_f32_near(a, lo)
}

/// [`Kernels::exp_sum_overlapped`](super::Kernels) for `f32`
/// ([`crate::kernels::algo::pending::exp_sum_overlapped`]).
///
/// # Safety
/// As [`super::exp_sum_overlapped`].
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn exp_sum_overlapped_f32(
    src: *const f32,
    exps: *mut f32,
    n: usize,
    m: f32,
    t: f64,
    write: Option<&super::BlockWrite<f32>>,
    ahead: *const f32,
    ahead_n: usize,
) -> f64 {
    // SAFETY: this function is only reachable through `F32`, which `kernels_for` hands out
    // only on a CPU with AVX-512F; the rest is the caller's contract.
    unsafe {
        crate::kernels::algo::pending::exp_sum_overlapped(
            isa(),
            &F32,
            src,
            exps,
            n,
            m,
            t,
            write,
            ahead,
            ahead_n,
        )
    }
}

crate::kernels::algo::f32::block_kernels!("avx512f,avx2,fma");

rows_kernel!(
    rows_f32_general,
    f32,
    "avx512f,avx2,fma",
    max_f32_impl,
    exp_store_sum_f32,
    sum_exp_f32_impl,
    scale_f32,
    scale_to_f32,
    exp_scale_f32,
    write_log_softmax_f32,
    super::row_ln_f32
);

/// The many-rows kernel. Rows stored one after the other at one temperature, up to
/// [`PACKED_MAX`](super::PACKED_MAX) elements, go 16 at a time through [`rows_f32_packed`];
/// other rows of at most 16 elements are one masked vector each, kept in registers from load
/// to store, 16 rows at a time (see [`rows_f32_short`]); longer rows go through the block
/// kernels (log-softmax of rows up to 256 elements 16 at a time, see
/// [`log_softmax_f32_medium`]). All give the bits the block kernels give (the same operations
/// in the same order), so a row's result does not depend on its neighbours (contract S9).
///
/// # Safety
/// As [`Kernels::rows`].
#[target_feature(enable = "avx512f,avx2,fma")]
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
    if n > super::PACKED_MAX {
        // SAFETY: this function's contract is `rows_f32_long`'s, and `n > PACKED_MAX > 16`.
        return unsafe {
            rows_f32_long(
                op, src, src_step, dst, dst_step, n, count, temps, temp_step, store,
            )
        };
    }
    if n == 0 {
        return;
    }
    // SAFETY: this function's contract is `packed_groups`' (`Kernels::rows`), with
    // `1 <= n <= PACKED_MAX`; `packed_groups` calls the kernels only with `n >= 2`, on whole
    // groups of 16 rows stored one after the other (`16 n` elements) and a normal reciprocal
    // temperature, as `rows_f32_packed` requires (LONG exactly when `n > 16`), and they need
    // AVX-512F, AVX2 and FMA, which this function's contract requires of the CPU.
    let first = unsafe {
        super::packed_groups::<16>(
            op,
            src,
            src_step,
            dst,
            dst_step,
            n,
            count,
            temps,
            temp_step,
            if n > 16 {
                rows_f32_packed::<true, true>
            } else {
                rows_f32_packed::<true, false>
            },
            if n > 16 {
                rows_f32_packed::<false, true>
            } else {
                rows_f32_packed::<false, false>
            },
        )
    };
    // The rows the packed kernel left.
    let rest = count - first;
    // SAFETY: `first <= count`. With `first == 0` the pointers stay; else `packed_groups`
    // took the call, so the rows are stored one after the other (`src_step == dst_step == n`)
    // at one temperature (`temp_step == 0`), and `first` rows on is row `first` of `src` and
    // `dst`, or one past the end of the last row.
    let (src, dst, temps) = unsafe {
        (
            src.add(first * src_step),
            dst.add(first * dst_step),
            temps.add(first * temp_step),
        )
    };
    if n > 16 {
        // SAFETY: the `rest` rows from row `first` are rows of this function's contract, as
        // `rows_f32_long` requires, and `n > 16`.
        return unsafe {
            rows_f32_long(
                op, src, src_step, dst, dst_step, n, rest, temps, temp_step, store,
            )
        };
    }
    // SAFETY: the `rest` rows from row `first` are rows of this function's contract, as
    // `in_groups` requires. It calls the closure with the first row of up to 16 consecutive
    // ones among them (`g <= 16`), and `1 <= n <= 16` here, as `rows_f32_short` requires,
    // whose AVX-512F this function's contract also requires of the CPU.
    unsafe {
        in_groups(
            src,
            src_step,
            dst,
            dst_step,
            temps,
            temp_step,
            rest,
            |s, d, t, g| rows_f32_short(op, s, src_step, d, dst_step, n, g, t, temp_step),
        )
    };
}

/// Calls `f(src, dst, temps, len)` on `count` rows in groups of up to [`SHORT_GROUP`]
/// consecutive rows (the pointers at each group's first row).
///
/// # Safety
/// The rows and their temperatures are as [`Kernels::rows`](super::Kernels) requires.
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn in_groups(
    src: *const f32,
    src_step: usize,
    dst: *mut f32,
    dst_step: usize,
    temps: *const f64,
    temp_step: usize,
    count: usize,
    mut f: impl FnMut(*const f32, *mut f32, *const f64, usize),
) {
    let mut first = 0;
    while first < count {
        let g = SHORT_GROUP.min(count - first);
        // SAFETY: `first < count`: these are row `first`'s addresses and its temperature's,
        // within the rows and temperatures of this function's contract.
        let (s, d, t) = unsafe {
            (
                src.add(first * src_step),
                dst.add(first * dst_step),
                temps.add(first * temp_step),
            )
        };
        f(s, d, t, g);
        first += g;
    }
}

/// Rows of 17 to [`BLOCK`](super::BLOCK) elements
/// ([`crate::kernels::algo::rows::rows_long`], with the medium-row log-softmax kernel).
///
/// # Safety
/// As [`Kernels::rows`], with `n > 16`.
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_f32_long(
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
    // SAFETY: this function's contract is `rows_long`'s; `rows_f32_general` and
    // `rows_f32_medium` are this level's kernels, which this CPU can run.
    unsafe {
        crate::kernels::algo::rows::rows_long(
            isa(),
            rows_f32_general,
            Some((MEDIUM_MAX, rows_f32_medium)),
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
    }
}

/// Log-softmax of rows of 17 to [`MEDIUM_MAX`] elements, 16 rows at a time
/// ([`log_softmax_f32_medium`]).
///
/// # Safety
/// As [`Kernels::rows`], with `17 <= n <= MEDIUM_MAX` and `op` log-softmax.
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_f32_medium(
    _op: crate::op::Op,
    src: *const f32,
    src_step: usize,
    dst: *mut f32,
    dst_step: usize,
    n: usize,
    count: usize,
    temps: *const f64,
    temp_step: usize,
    _store: super::Store,
) {
    // SAFETY: this function's rows, as `in_groups` requires. It calls the closure with the
    // first row of up to 16 consecutive ones among them (`g <= 16`), and
    // `17 <= n <= MEDIUM_MAX` here, as `log_softmax_f32_medium` requires, whose AVX-512F
    // this function's contract also requires of the CPU.
    unsafe {
        in_groups(
            src,
            src_step,
            dst,
            dst_step,
            temps,
            temp_step,
            count,
            |s, d, t, g| log_softmax_f32_medium(s, src_step, d, dst_step, n, g, t, temp_step),
        )
    };
}

/// Rows per group of the short-row kernel: one per `f32` lane of the batched reductions.
const SHORT_GROUP: usize = 16;

/// The lanewise maximum of a row of `16 full` elements and a `tail` (lanes past the row's end
/// read -inf), as the multi-vector kernels batch it.
///
/// # Safety
/// `p` valid for reads of `16 full` elements and of the lanes `tail` enables after them;
/// AVX-512F.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn row_lane_max(p: *const f32, full: usize, tail: __mmask16) -> __m512 {
    let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
    // SAFETY: the lanes `tail` enables from `p + 16 full` are readable (# Safety); masked-off
    // lanes are not accessed.
    let mut m = unsafe { _mm512_mask_loadu_ps(ninf, tail, p.add(16 * full)) };
    for v in 0..full {
        // SAFETY: `v < full`: the 16 elements from `p + 16 v` are readable (# Safety).
        m = _mm512_max_ps(unsafe { _mm512_loadu_ps(p.add(16 * v)) }, m);
    }
    m
}

/// `a0 + a1` of `exp_sum_pending` for a row of `n` elements at `p`, over `value` of its
/// vectors: each 64 elements add their four values in `f32` first, then whole vectors, then the
/// `tail` vector, whose lanes past the row's end read `fill` (so that `value` makes them 0).
/// `reduce_add_f64` (or [`hsum_of_each`]) of it is the row's sum, with the block kernels' bits.
///
/// # Safety
/// `p` valid for reads of `n` elements; `tail` enables at most the `n % 16` lanes after the
/// last whole vector; AVX-512F.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn row_sum_halves(
    p: *const f32,
    n: usize,
    tail: __mmask16,
    fill: __m512,
    value: impl Fn(__m512) -> __m512,
) -> __m512d {
    let (mut a0, mut a1) = (_mm512_setzero_pd(), _mm512_setzero_pd());
    let mut i = 0;
    while i + 64 <= n {
        // SAFETY: `i + 64 <= n`: the 16 elements from `p + i + 16 q` are readable for each
        // `q < 4` (# Safety). `lo_pd` and `hi_pd` require only the target features this
        // function is compiled with.
        unsafe {
            let e: [__m512; 4] = std::array::from_fn(|q| value(_mm512_loadu_ps(p.add(i + 16 * q))));
            let s = _mm512_add_ps(_mm512_add_ps(e[0], e[1]), _mm512_add_ps(e[2], e[3]));
            a0 = _mm512_add_pd(a0, lo_pd(s));
            a1 = _mm512_add_pd(a1, hi_pd(s));
        }
        i += 64;
    }
    while i + 16 <= n {
        // SAFETY: `i + 16 <= n`: the 16 elements from `p + i` are readable (# Safety). `lo_pd`
        // and `hi_pd` require only the target features this function is compiled with.
        unsafe {
            let e = value(_mm512_loadu_ps(p.add(i)));
            a0 = _mm512_add_pd(a0, lo_pd(e));
            a1 = _mm512_add_pd(a1, hi_pd(e));
        }
        i += 16;
    }
    if i < n {
        // SAFETY: `i` is `16 (n / 16)` here, and `tail` enables at most the `n % 16` lanes
        // from `p + i`, all readable (# Safety); masked-off lanes are not accessed. `lo_pd`
        // and `hi_pd` require only the target features this function is compiled with.
        unsafe {
            let e = value(_mm512_mask_loadu_ps(fill, tail, p.add(i)));
            a0 = _mm512_add_pd(a0, lo_pd(e));
            a1 = _mm512_add_pd(a1, hi_pd(e));
        }
    }
    _mm512_add_pd(a0, a1)
}

/// The longest rows [`log_softmax_f32_medium`] takes (16 such rows fill 16 KiB of L1; at 512 and
/// 1000 elements it measured no faster than the block kernels' path).
const MEDIUM_MAX: usize = 256;

/// Log-softmax of up to 16 rows of 17 to [`MEDIUM_MAX`] elements. Row by row, the block kernels
/// spend most of the time of such a row in a chain of dependent steps: the sum's horizontal
/// reduction, then `row_ln_f32` (a scalar division and polynomial), then the write. Here the
/// 16 rows' reductions and logarithms are batched as in [`rows_f32_short`] (on one thread, with
/// rows stored back to back, before those of up to 64 elements went to [`rows_f32_packed`],
/// it measured faster than the block kernels at 32 and 256 elements; `benches/results/tuning.md`,
/// "avx512 medium rows").
/// It takes the rows the packed kernel does not: strided rows, per-row temperatures, a call's
/// last rows, and rows of 65 to [`MEDIUM_MAX`] elements.
/// Every row keeps the block kernels' bits: the same exps, accumulated in the order
/// `exp_sum_pending` adds them (each 64 elements first add their four vectors in `f32`),
/// `reduce_add_f64`'s additions through [`hsum_of_each`], and
/// `row_ln_f32`'s operations through [`row_ln_pd`]; the maximum is exact whatever the order.
/// (Softmax gains little this way: its chain is shorter, and the exps must be stored and read
/// back or computed twice.)
///
/// # Safety
/// As [`Kernels::rows`](super::Kernels), with `17 <= n <= MEDIUM_MAX` and `count <= 16`.
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn log_softmax_f32_medium(
    src: *const f32,
    src_step: usize,
    dst: *mut f32,
    dst_step: usize,
    n: usize,
    count: usize,
    temps: *const f64,
    temp_step: usize,
) {
    debug_assert!((17..=MEDIUM_MAX).contains(&n) && count <= SHORT_GROUP);
    let full = n / 16;
    let tail = mask16(n % 16);
    let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
    let temp = |j: usize| {
        // SAFETY: called only with `j < count`: row `j`'s temperature, readable (this
        // function's contract).
        unsafe { *temps.add(j * temp_step) }
    };
    let mut inv = [1.0f64; SHORT_GROUP];
    // Rows whose temperature has no normal reciprocal go alone through the block kernels, as
    // their portable fallback requires.
    let mut alone: u32 = 0;
    // Each row's lanewise maximum over its vectors.
    let mut lanes = [ninf; SHORT_GROUP];
    for (j, l) in lanes.iter_mut().enumerate().take(count) {
        let t = temp(j);
        if t != 1.0 {
            inv[j] = 1.0 / t;
            if !vector_inv(t) {
                alone |= 1 << j;
                continue;
            }
        }
        // SAFETY: `j < count`: row `j` of `src`, valid for reads of its `n = 16 full + n % 16`
        // elements, the lanes `tail` enables after the whole vectors; `row_lane_max` requires
        // only this function's target features beyond that.
        *l = unsafe { row_lane_max(src.add(j * src_step), full, tail) };
    }
    // Exact for rows without NaN whatever the order (a row with NaN is caught below through its
    // sum, as in `rows_f32_short`).
    let mut ms = [0.0f32; SHORT_GROUP];
    // SAFETY: `ms` holds the 16 `f32` stored; `max_of_each` requires only the target features
    // this function is compiled with.
    unsafe { _mm512_storeu_ps(ms.as_mut_ptr(), max_of_each(&lanes)) };
    let mut halves = [_mm512_setzero_pd(); SHORT_GROUP];
    for (j, half) in halves.iter_mut().enumerate().take(count) {
        if alone & (1 << j) != 0 {
            continue;
        }
        // SAFETY: `ArgF32::new` requires only the target features this function is compiled
        // with.
        let c = unsafe { ArgF32::new(isa(), ms[j], inv[j]) };
        let unit = temp(j) == 1.0;
        let exp = |x: __m512| {
            // SAFETY: `exp_arg` requires only the target features this function is compiled
            // with.
            unsafe {
                if unit {
                    exp_arg::<true>(c, x)
                } else {
                    exp_arg::<false>(c, x)
                }
            }
        };
        // Lanes past the end read -inf, whose exp is exactly 0.
        // SAFETY: `j < count`: row `j` of `src`, valid for reads of `n` elements, and `tail`
        // enables its `n % 16` last lanes; `row_sum_halves` requires only this function's
        // target features beyond that.
        *half = unsafe { row_sum_halves(src.add(j * src_step), n, tail, ninf, exp) };
    }
    // SAFETY: `hsum_of_each` requires only the target features this function is compiled
    // with.
    let (tot_lo, tot_hi) = unsafe { hsum_of_each(&halves) };
    let mut totals = [0.0f64; SHORT_GROUP];
    // SAFETY: `totals` holds 16 `f64`: the 8 stored from its start and the 8 from its 8th.
    unsafe {
        _mm512_storeu_pd(totals.as_mut_ptr(), tot_lo);
        _mm512_storeu_pd(totals.as_mut_ptr().add(8), tot_hi);
    }
    // row_ln(sum) of the 16 rows, rounded to f32 as `write_log_f32` rounds it.
    let mut ls = [0.0f32; SHORT_GROUP];
    // SAFETY: `ls` holds the 16 `f32` stored; `narrow` and `row_ln_pd` require only the target
    // features this function is compiled with.
    unsafe {
        _mm512_storeu_ps(
            ls.as_mut_ptr(),
            narrow(row_ln_pd(tot_lo), row_ln_pd(tot_hi)),
        )
    };
    for j in 0..count {
        // SAFETY: `j < count`: row `j` of `src` and `dst` (this function's contract).
        let (s, d) = unsafe { (src.add(j * src_step), dst.add(j * dst_step)) };
        let t = temp(j);
        if alone & (1 << j) != 0 {
            let op = crate::op::Op::LogSoftmax;
            // SAFETY: row `j` alone, as `rows_f32_general` (`Kernels::rows`) requires: `s`
            // valid for reads and `d` for writes of `n` elements, the same or disjoint, at the
            // positive finite temperature `t` (this function's contract); it requires the
            // CPU features this function's contract requires too.
            unsafe { rows_f32_general(op, s, 0, d, 0, n, 1, &t, 0, super::Store::Cached) };
            continue;
        }
        let nan = totals[j].is_nan();
        // SAFETY: `ArgF32::new` requires only the target features this function is compiled
        // with.
        let c = unsafe { ArgF32::new(isa(), ms[j], inv[j]) };
        let v = _mm512_set1_ps(ls[j]);
        // Contract S6 for a NaN sum (see `rows_f32_short`), else `write_log_f32`.
        let y = |x: __m512| {
            if nan {
                _mm512_set1_ps(f32::NAN)
            } else if t == 1.0 {
                // SAFETY: `log_f32` requires only the target features this function is
                // compiled with.
                unsafe { log_f32::<true>(c, v, x) }
            } else {
                // SAFETY: as above.
                unsafe { log_f32::<false>(c, v, x) }
            }
        };
        for i in 0..full {
            // SAFETY: `i < full`: the 16 elements from `s + 16 i` are readable and those from
            // `d + 16 i` writable (row `j`, `n >= 16 full` elements).
            unsafe { _mm512_storeu_ps(d.add(16 * i), y(_mm512_loadu_ps(s.add(16 * i)))) };
        }
        if tail != 0 {
            // SAFETY: `tail` enables the `n % 16` lanes from `s + 16 full` and `d + 16 full`,
            // the end of row `j`, readable and writable; masked-off lanes are not accessed.
            unsafe {
                let x = _mm512_mask_loadu_ps(ninf, tail, s.add(16 * full));
                _mm512_mask_storeu_ps(d.add(16 * full), tail, y(x));
            }
        }
    }
}

/// Up to 16 rows of 1 to 16 elements, each one masked vector. A row's maximum and sum are
/// horizontal reductions, which done one row at a time are long dependency chains of shuffles
/// (the kernel was latency-bound at about 27 cycles per 10-element row). Here the 16 rows'
/// reductions are done together ([`max_of_each`], [`hsum_of_each`]), each a tree of shuffles
/// across rows with full vectors at every step, giving every row the same bits as the block
/// kernels' reductions.
///
/// # Safety
/// As [`Kernels::rows`], with `1 <= n <= 16` and `count <= 16`.
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_f32_short(
    op: crate::op::Op,
    src: *const f32,
    src_step: usize,
    dst: *mut f32,
    dst_step: usize,
    n: usize,
    count: usize,
    temps: *const f64,
    temp_step: usize,
) {
    debug_assert!((1..=16).contains(&n) && count <= SHORT_GROUP);
    let k: __mmask16 = if n == 16 { 0xFFFF } else { mask16(n) };
    let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut xs = [ninf; SHORT_GROUP];
    let mut inv = [1.0f64; SHORT_GROUP];
    // Rows whose temperature has no normal reciprocal go alone through the block kernels, as
    // their portable fallback requires.
    let mut alone: u32 = 0;
    for j in 0..count {
        // SAFETY: `j < count`: row `j`'s temperature, readable (this function's contract).
        let t = unsafe { *temps.add(j * temp_step) };
        if t != 1.0 {
            inv[j] = 1.0 / t;
            if !vector_inv(t) {
                alone |= 1 << j;
                continue;
            }
        }
        // SAFETY: `j < count`: row `j` of `src`, valid for reads of its `n` elements, the lanes
        // `k` enables; masked-off lanes are not accessed.
        xs[j] = unsafe { _mm512_mask_loadu_ps(ninf, k, src.add(j * src_step)) };
    }
    // Exact for rows without NaN whatever the order (a row with NaN is caught below through its
    // sum).
    let mut ms = [0.0f32; SHORT_GROUP];
    // SAFETY: `ms` holds the 16 `f32` stored; `max_of_each` requires only the target features
    // this function is compiled with.
    unsafe { _mm512_storeu_ps(ms.as_mut_ptr(), max_of_each(&xs)) };
    let mut es = [_mm512_setzero_ps(); SHORT_GROUP];
    let mut halves = [_mm512_setzero_pd(); SHORT_GROUP];
    for j in 0..count {
        // SAFETY: `j < count`: row `j`'s temperature, readable (this function's contract).
        // `ArgF32::new`, `exp_arg`, `lo_pd` and `hi_pd` require only the target features this
        // function is compiled with.
        unsafe {
            let c = ArgF32::new(isa(), ms[j], inv[j]);
            let e = if *temps.add(j * temp_step) == 1.0 {
                exp_arg::<true>(c, xs[j])
            } else {
                exp_arg::<false>(c, xs[j])
            };
            es[j] = e;
            // As the tail step of `exp_sum_f32` starting from zero accumulators.
            halves[j] = _mm512_add_pd(lo_pd(e), hi_pd(e));
        }
    }
    // SAFETY: `hsum_of_each` requires only the target features this function is compiled
    // with.
    let (tot_lo, tot_hi) = unsafe { hsum_of_each(&halves) };
    let mut totals = [0.0f64; SHORT_GROUP];
    // SAFETY: `totals` holds 16 `f64`: the 8 stored from its start and the 8 from its 8th.
    unsafe {
        _mm512_storeu_pd(totals.as_mut_ptr(), tot_lo);
        _mm512_storeu_pd(totals.as_mut_ptr().add(8), tot_hi);
    }
    // 1 / sum (softmax) or row_ln(sum) (log-softmax) of the 16 rows, in f64 and rounded to f32.
    let (v_lo, v_hi) = match op {
        crate::op::Op::Softmax => {
            let one = _mm512_set1_pd(1.0);
            (_mm512_div_pd(one, tot_lo), _mm512_div_pd(one, tot_hi))
        }
        // SAFETY: `row_ln_pd` requires only the target features this function is compiled
        // with.
        crate::op::Op::LogSoftmax => unsafe { (row_ln_pd(tot_lo), row_ln_pd(tot_hi)) },
    };
    let mut v = [0.0f64; SHORT_GROUP];
    // SAFETY: `v` holds 16 `f64`: the 8 stored from its start and the 8 from its 8th.
    unsafe {
        _mm512_storeu_pd(v.as_mut_ptr(), v_lo);
        _mm512_storeu_pd(v.as_mut_ptr().add(8), v_hi);
    }
    let mut v32 = [0.0f32; SHORT_GROUP];
    // SAFETY: `v32` holds the 16 `f32` stored; `narrow` requires only the target features this
    // function is compiled with.
    unsafe { _mm512_storeu_ps(v32.as_mut_ptr(), narrow(v_lo, v_hi)) };
    for j in 0..count {
        // SAFETY: `j < count`: row `j` of `src` and `dst`, and its temperature, readable (this
        // function's contract).
        let (s, d, t) = unsafe {
            (
                src.add(j * src_step),
                dst.add(j * dst_step),
                *temps.add(j * temp_step),
            )
        };
        if alone & (1 << j) != 0 {
            // SAFETY: row `j` alone, as `rows_f32_general` (`Kernels::rows`) requires: `s`
            // valid for reads and `d` for writes of `n` elements, the same or disjoint, at the
            // positive finite temperature `t` (this function's contract); it requires the
            // CPU features this function's contract requires too.
            unsafe { rows_f32_general(op, s, 0, d, 0, n, 1, &t, 0, super::Store::Cached) };
            continue;
        }
        if totals[j].is_nan() {
            // Contract S6. A NaN anywhere in the row gives a NaN exp; a +inf gives m = +inf
            // and inf - inf; no entry above -inf gives m = -inf and -inf - -inf. Every other row
            // has exps in [0, 1] and a finite sum.
            // SAFETY: `k` enables the `n` lanes of row `j` of `dst`, writable; masked-off
            // lanes are not accessed.
            unsafe { _mm512_mask_storeu_ps(d, k, _mm512_set1_ps(f32::NAN)) };
            continue;
        }
        let y = match op {
            crate::op::Op::Softmax => _mm512_mul_ps(es[j], _mm512_set1_ps(v32[j])),
            // SAFETY: `ArgF32::new` and `log_f32` require only the target features this
            // function is compiled with.
            crate::op::Op::LogSoftmax => unsafe {
                let c = ArgF32::new(isa(), ms[j], inv[j]);
                let ls = _mm512_set1_ps(v32[j]);
                if t == 1.0 {
                    log_f32::<true>(c, ls, xs[j])
                } else {
                    log_f32::<false>(c, ls, xs[j])
                }
            },
        };
        // SAFETY: `k` enables the `n` lanes of row `j` of `dst`, writable; masked-off lanes are
        // not accessed.
        unsafe { _mm512_mask_storeu_ps(d, k, y) };
    }
}

/// 16 rows of `rows.n` elements stored one after the other (`16 n` elements, `n` full
/// vectors), all at one temperature (`inv` its reciprocal; UNIT: temperature 1). As
/// [`rows_f32_short`], but the elementwise work (exps, scaling, log-softmax outputs) runs on
/// the `n` packed vectors rather than on 16 partly filled ones (or, for rows of 17 to
/// [`PACKED_MAX`](super::PACKED_MAX), on 2 to 4 vectors per row of which the last is partly
/// filled), each lane getting its row's maximum and factor through one permutation; a row's
/// exps are then read back from a scratch copy (its last vector with a masked load: zeros past
/// the row's end, as `exp(-inf)` gives) and summed in the block kernels' order. The same
/// operations on the same values as the per-row kernels, so the same bits, in far fewer
/// steps (`benches/results/tuning.md`, "avx512 packed rows").
///
/// # Safety
/// `src` valid for reads and `dst` for writes of `16 * rows.n` elements, the same or disjoint;
/// `2 <= rows.n <= PACKED_MAX`; `inv` normal; AVX-512F.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn rows_f32_packed<const UNIT: bool, const LONG: bool>(
    op: crate::op::Op,
    src: *const f32,
    dst: *mut f32,
    inv: f64,
    rows: &super::PackedRows<16>,
) {
    let n = rows.n;
    debug_assert_eq!(LONG, n > 16);
    // A row is `full` whole vectors and a `tail` of the rest (0 lanes when n % 16 == 0); a
    // short row (not LONG) is one vector of `k` lanes.
    let (full, tail) = (n / 16, mask16(n % 16));
    let k: __mmask16 = if n >= 16 { 0xFFFF } else { mask16(n) };
    let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
    // Each row's lanewise maximum over its vectors.
    let mut xs = [ninf; SHORT_GROUP];
    for (r, x) in xs.iter_mut().enumerate() {
        // SAFETY: `r < 16`: row `r`, the `n` elements from `src + r n`, is among the `16 n`
        // readable ones. LONG reads its `16 full` elements and the `n % 16` lanes `tail`
        // enables after them; else `k` enables its `n <= 16` lanes (masked-off lanes are not
        // accessed). `row_lane_max` requires only this function's target features beyond that.
        *x = unsafe {
            let p = src.add(r * n);
            if LONG {
                row_lane_max(p, full, tail)
            } else {
                _mm512_mask_loadu_ps(ninf, k, p)
            }
        };
    }
    // SAFETY: `max_of_each`, `InvF32::new`, `Folds::none` and `Folds::of_rows` require only the
    // target features this function is compiled with.
    let (m, s) = unsafe { (max_of_each(&xs), InvF32::new(isa(), inv)) };
    let inv_v = _mm512_set1_pd(inv);
    // SAFETY: as above.
    let fold = unsafe {
        if UNIT {
            Folds::none()
        } else {
            Folds::of_rows(m, inv)
        }
    };
    // Only the first 16 n floats are written, then read (not zeroed first: for short rows
    // that would cost as much as the exps themselves).
    let mut exps_buf = std::mem::MaybeUninit::<[f32; super::PACKED_MAX * SHORT_GROUP]>::uninit();
    let exps = exps_buf.as_mut_ptr().cast::<f32>();
    for v in 0..n {
        // SAFETY: `v < n <= PACKED_MAX`: `rows.row_of[v]` holds the 16 `i32` read, and the 16
        // elements from `src + 16 v` are among the `16 n` readable ones.
        let (row, x) = unsafe {
            (
                _mm512_loadu_si512(rows.row_of[v].as_ptr().cast()),
                _mm512_loadu_ps(src.add(16 * v)),
            )
        };
        let mv = _mm512_permutexvar_ps(row, m);
        // As `exp_arg`, with each lane's row maximum and its row's choice of form.
        // SAFETY: `exp_ps`, `narrow`, `lo_pd`, `hi_pd` and `Folds::exp` require only the target
        // features this function is compiled with.
        let e = unsafe {
            if UNIT {
                exp_ps(_mm512_sub_ps(x, mv))
            } else {
                let widened = || {
                    exp_ps(narrow(
                        _mm512_mul_pd(_mm512_sub_pd(lo_pd(x), lo_pd(mv)), inv_v),
                        _mm512_mul_pd(_mm512_sub_pd(hi_pd(x), hi_pd(mv)), inv_v),
                    ))
                };
                if fold.rows == 0xFFFF {
                    fold.exp(row, x, s)
                } else if fold.rows == 0 {
                    widened()
                } else {
                    let lanes = _mm512_permutexvar_ps(row, fold.flags);
                    let lanes = _mm512_cmp_ps_mask::<_CMP_NEQ_OQ>(lanes, _mm512_setzero_ps());
                    _mm512_mask_blend_ps(lanes, widened(), fold.exp(row, x, s))
                }
            }
        };
        // SAFETY: `v < n <= PACKED_MAX`: the 16 `f32` from `exps + 16 v` are inside the
        // `16 PACKED_MAX` of `exps_buf`.
        unsafe { _mm512_storeu_ps(exps.add(16 * v), e) };
    }
    let mut halves = [_mm512_setzero_pd(); SHORT_GROUP];
    for (r, h) in halves.iter_mut().enumerate() {
        // As `exp_sum_pending` over the row's exps (zeros past its end, as `exp(-inf)`).
        // SAFETY: `r < 16`: row `r`'s exps, the `n` from `exps + r n`, are among the `16 n`
        // written above (so initialized) inside `exps_buf`.
        let p = unsafe { exps.add(r * n).cast_const() };
        if !LONG {
            // Its tail step, from zero accumulators.
            // SAFETY: `k` enables the row's `n <= 16` lanes from `p`, written above; masked-off
            // lanes are not accessed. `lo_pd` and `hi_pd` require only the target features
            // this function is compiled with.
            unsafe {
                let e = _mm512_maskz_loadu_ps(k, p);
                *h = _mm512_add_pd(lo_pd(e), hi_pd(e));
            }
            continue;
        }
        // SAFETY: the `n` exps from `p` were written above; `tail` enables the `n % 16` lanes
        // after its whole vectors. `row_sum_halves` requires only this function's target
        // features beyond that.
        *h = unsafe { row_sum_halves(p, n, tail, _mm512_setzero_ps(), |e| e) };
    }
    // SAFETY: `hsum_of_each` requires only the target features this function is compiled
    // with.
    let (tot_lo, tot_hi) = unsafe { hsum_of_each(&halves) };
    // Contract S6 rows have a NaN sum (see `rows_f32_short`).
    let bad = (_mm512_cmp_pd_mask::<_CMP_UNORD_Q>(tot_lo, tot_lo) as u32)
        | ((_mm512_cmp_pd_mask::<_CMP_UNORD_Q>(tot_hi, tot_hi) as u32) << 8);
    match op {
        crate::op::Op::Softmax => {
            let one = _mm512_set1_pd(1.0);
            // SAFETY: `narrow` requires only the target features this function is compiled
            // with.
            let f = unsafe { narrow(_mm512_div_pd(one, tot_lo), _mm512_div_pd(one, tot_hi)) };
            for v in 0..n {
                // SAFETY: `v < n <= PACKED_MAX`: `rows.row_of[v]` holds the 16 `i32` read, the
                // 16 exps from `exps + 16 v` were written above, and the 16 elements from
                // `dst + 16 v` are among the `16 n` writable ones.
                unsafe {
                    let row = _mm512_loadu_si512(rows.row_of[v].as_ptr().cast());
                    let e = _mm512_loadu_ps(exps.add(16 * v));
                    let y = _mm512_mul_ps(e, _mm512_permutexvar_ps(row, f));
                    _mm512_storeu_ps(dst.add(16 * v), y);
                }
            }
        }
        crate::op::Op::LogSoftmax => {
            // SAFETY: `row_ln_pd` and `narrow` require only the target features this function
            // is compiled with.
            let ls32 = unsafe {
                let (ls_lo, ls_hi) = (row_ln_pd(tot_lo), row_ln_pd(tot_hi));
                narrow(ls_lo, ls_hi)
            };
            for v in 0..n {
                // SAFETY: `v < n <= PACKED_MAX`: `rows.row_of[v]` holds the 16 `i32` read, and
                // the 16 elements from `src + 16 v` are among the `16 n` readable ones.
                let (row, x) = unsafe {
                    (
                        _mm512_loadu_si512(rows.row_of[v].as_ptr().cast()),
                        // Read before the same vector of `dst` is written (`src == dst`
                        // allowed).
                        _mm512_loadu_ps(src.add(16 * v)),
                    )
                };
                let mv = _mm512_permutexvar_ps(row, m);
                // As `log_f32`, with each lane's row maximum and logarithm.
                let d = _mm512_sub_ps(x, mv);
                let ls = _mm512_permutexvar_ps(row, ls32);
                let y = if UNIT {
                    _mm512_sub_ps(d, ls)
                } else {
                    // SAFETY: `log_scaled` requires only the target features this function is
                    // compiled with.
                    unsafe { log_scaled(d, s, ls) }
                };
                // SAFETY: `v < n`: the 16 elements from `dst + 16 v` are among the `16 n`
                // writable ones.
                unsafe { _mm512_storeu_ps(dst.add(16 * v), y) };
            }
        }
    }
    let mut rest = bad;
    while rest != 0 {
        let r = rest.trailing_zeros() as usize;
        if LONG {
            for i in 0..n {
                // SAFETY: `r < 16` (a bit of the 16-bit `bad`) and `i < n`: element `r n + i`
                // is among the `16 n` writable ones of `dst`.
                unsafe { *dst.add(r * n + i) = f32::NAN };
            }
        } else {
            // SAFETY: `r < 16`: `k` enables row `r`'s `n` lanes from `dst + r n`, among the
            // `16 n` writable ones; masked-off lanes are not accessed.
            unsafe { _mm512_mask_storeu_ps(dst.add(r * n), k, _mm512_set1_ps(f32::NAN)) };
        }
        rest &= rest - 1;
    }
}

/// [`super::FoldedArg`]'s terms for 16 rows at once (lane `r`: row `r`), for the packed kernel:
/// the same operations on the same values, so the same bits and the same choice of form.
struct Folds {
    /// Bit `r`: row `r` takes the folded form.
    rows: u16,
    /// Lane `r`: nonzero when row `r` takes the folded form.
    flags: __m512,
    neg_mi_hi: __m512,
    neg_mi_lo: __m512,
    x_floor: __m512,
}

impl Folds {
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn none() -> Folds {
        let z = _mm512_setzero_ps();
        Folds {
            rows: 0,
            flags: z,
            neg_mi_hi: z,
            neg_mi_lo: z,
            x_floor: z,
        }
    }

    /// `m`: the rows' maxima; `inv`: their reciprocal temperature, not 1.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn of_rows(m: __m512, inv: f64) -> Folds {
        // SAFETY: `Folds::none`, `lo_pd`, `hi_pd`, `narrow` and `negate` require only the
        // target features this function is compiled with (avx512f, avx2, fma).
        unsafe {
            if inv == 1.0 {
                // As `FoldedArg::new` (a temperature just off 1 whose reciprocal rounds to 1).
                return Folds::none();
            }
            let inv_v = _mm512_set1_pd(inv);
            let (mi_lo, mi_hi) = (
                _mm512_mul_pd(lo_pd(m), inv_v),
                _mm512_mul_pd(hi_pd(m), inv_v),
            );
            let hi = narrow(mi_lo, mi_hi);
            let lo = narrow(
                _mm512_sub_pd(mi_lo, lo_pd(hi)),
                _mm512_sub_pd(mi_hi, hi_pd(hi)),
            );
            let gap = _mm512_set1_pd(super::FOLD_FLOOR / inv);
            let x_floor = narrow(_mm512_sub_pd(lo_pd(m), gap), _mm512_sub_pd(hi_pd(m), gap));
            // False for NaN, as in `FoldedArg::new`.
            let limit = _mm512_set1_pd(super::FOLD_LIMIT);
            let rows = (_mm512_cmp_pd_mask::<_CMP_LE_OQ>(_mm512_abs_pd(mi_lo), limit) as u16)
                | ((_mm512_cmp_pd_mask::<_CMP_LE_OQ>(_mm512_abs_pd(mi_hi), limit) as u16) << 8);
            Folds {
                rows,
                flags: _mm512_maskz_mov_ps(rows, _mm512_set1_ps(1.0)),
                neg_mi_hi: negate(hi),
                neg_mi_lo: negate(lo),
                x_floor,
            }
        }
    }

    /// [`exp_folded`] of the lanes of `x`, lane `l` in row `row[l]`.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn exp(&self, row: __m512i, x: __m512, s: InvF32) -> __m512 {
        // SAFETY: `exp_folded` requires only the target features this function is compiled
        // with (avx512f, avx2, fma).
        unsafe {
            exp_folded(
                x,
                _mm512_permutexvar_ps(row, self.x_floor),
                s,
                _mm512_permutexvar_ps(row, self.neg_mi_hi),
                _mm512_permutexvar_ps(row, self.neg_mi_lo),
            )
        }
    }
}

/// `-v` (the sign bit flipped, as scalar negation does, zeros included).
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn negate(v: __m512) -> __m512 {
    _mm512_castsi512_ps(_mm512_xor_si512(
        _mm512_castps_si512(v),
        _mm512_set1_epi32(i32::MIN),
    ))
}

/// Lane `r`: the largest lane of `xs[r]`, for vectors without NaN (with NaN, any value). A
/// tree of 15 maxima on full vectors: each level halves every vector's candidates and packs
/// two vectors into one (128-bit blocks, then pairs within blocks), then one permutation puts
/// the rows in order.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn max_of_each(xs: &[__m512; 16]) -> __m512 {
    // Level 1: w[k] lanes 0-7 hold 8 candidates of row 2k, lanes 8-15 of row 2k + 1.
    let mut w = [_mm512_setzero_ps(); 8];
    for (k, slot) in w.iter_mut().enumerate() {
        let (a, b) = (xs[2 * k], xs[2 * k + 1]);
        *slot = _mm512_max_ps(
            _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b),
            _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b),
        );
    }
    // Level 2: u[k] block q (4 lanes) holds 4 candidates of row 4k + q.
    let mut u = [_mm512_setzero_ps(); 4];
    for (k, slot) in u.iter_mut().enumerate() {
        let (a, b) = (w[2 * k], w[2 * k + 1]);
        *slot = _mm512_max_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b),
        );
    }
    // Level 3: t[k] block q, lanes 0-1 hold 2 candidates of row 8k + q, lanes 2-3 of 8k + 4 + q.
    let mut t = [_mm512_setzero_ps(); 2];
    for (k, slot) in t.iter_mut().enumerate() {
        let (a, b) = (u[2 * k], u[2 * k + 1]);
        *slot = _mm512_max_ps(
            _mm512_shuffle_ps::<0b01_00_01_00>(a, b),
            _mm512_shuffle_ps::<0b11_10_11_10>(a, b),
        );
    }
    // Level 4: block q, lane i holds the maximum of row 4i + q.
    let r = _mm512_max_ps(
        _mm512_shuffle_ps::<0b10_00_10_00>(t[0], t[1]),
        _mm512_shuffle_ps::<0b11_01_11_01>(t[0], t[1]),
    );
    // Row 4i + q is in lane 4q + i.
    _mm512_permutexvar_ps(
        _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15),
        r,
    )
}

/// [`Simd::reduce_add_f64`] of each of 16 vectors, the same additions in the same order (so the same bits):
/// rows 0-7 in the lanes of the first result, rows 8-15 in the second. Each level adds the
/// terms `reduce_add_f64` adds at that level, for two (then four, then eight) rows per vector.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn hsum_of_each(s: &[__m512d; 16]) -> (__m512d, __m512d) {
    // Level 1 (i + (i + 4)): w[k] lanes 0-3 for row 2k, 4-7 for row 2k + 1.
    let mut w = [_mm512_setzero_pd(); 8];
    for (k, slot) in w.iter_mut().enumerate() {
        let (a, b) = (s[2 * k], s[2 * k + 1]);
        *slot = _mm512_add_pd(
            _mm512_shuffle_f64x2::<0b01_00_01_00>(a, b),
            _mm512_shuffle_f64x2::<0b11_10_11_10>(a, b),
        );
    }
    // Level 2 (i + (i + 2)): y[k] lanes 2q, 2q + 1 for row 4k + q.
    let mut y = [_mm512_setzero_pd(); 4];
    for (k, slot) in y.iter_mut().enumerate() {
        let (a, b) = (w[2 * k], w[2 * k + 1]);
        *slot = _mm512_add_pd(
            _mm512_shuffle_f64x2::<0b10_00_10_00>(a, b),
            _mm512_shuffle_f64x2::<0b11_01_11_01>(a, b),
        );
    }
    // Level 3 (0 + 1): lane 2q for row 8k + q, lane 2q + 1 for row 8k + 4 + q.
    let order = _mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7);
    let mut z = [_mm512_setzero_pd(); 2];
    for (k, slot) in z.iter_mut().enumerate() {
        let (a, b) = (y[2 * k], y[2 * k + 1]);
        let sum = _mm512_add_pd(_mm512_unpacklo_pd(a, b), _mm512_unpackhi_pd(a, b));
        *slot = _mm512_permutexvar_pd(order, sum);
    }
    (z[0], z[1])
}

/// [`super::row_ln_f32`] in 8 lanes, the same operations in the same order (so the same bits).
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn row_ln_pd(x: __m512d) -> __m512d {
    let bits = _mm512_castpd_si512(x);
    let ebits = _mm512_and_si512(_mm512_srli_epi64::<52>(bits), _mm512_set1_epi64(0x7ff));
    // (2^52 + e_bits) - (2^52 + 1023) == e_bits - 1023, exactly.
    let two52 = 4_503_599_627_370_496.0f64;
    let mut e = _mm512_sub_pd(
        _mm512_castsi512_pd(_mm512_or_si512(
            ebits,
            _mm512_set1_epi64(two52.to_bits() as i64),
        )),
        _mm512_set1_pd(two52 + 1023.0),
    );
    let mut m = _mm512_castsi512_pd(_mm512_or_si512(
        _mm512_and_si512(bits, _mm512_set1_epi64(0x000f_ffff_ffff_ffff)),
        _mm512_set1_epi64(0x3ff0_0000_0000_0000),
    ));
    let big = _mm512_cmp_pd_mask::<_CMP_GT_OQ>(m, _mm512_set1_pd(std::f64::consts::SQRT_2));
    m = _mm512_mask_mul_pd(m, big, m, _mm512_set1_pd(0.5));
    e = _mm512_mask_add_pd(e, big, e, _mm512_set1_pd(1.0));
    let one = _mm512_set1_pd(1.0);
    let z = _mm512_div_pd(_mm512_sub_pd(m, one), _mm512_add_pd(m, one));
    let z2 = _mm512_mul_pd(z, z);
    let c = |v: f64| _mm512_set1_pd(v);
    let p = _mm512_add_pd(c(1.0 / 9.0), _mm512_mul_pd(z2, c(1.0 / 11.0)));
    let p = _mm512_add_pd(c(1.0 / 7.0), _mm512_mul_pd(z2, p));
    let p = _mm512_add_pd(c(1.0 / 5.0), _mm512_mul_pd(z2, p));
    let p = _mm512_add_pd(c(1.0 / 3.0), _mm512_mul_pd(z2, p));
    let z2x = _mm512_mul_pd(c(2.0), z);
    let atanh2 = _mm512_add_pd(z2x, _mm512_mul_pd(_mm512_mul_pd(z2x, z2), p));
    _mm512_add_pd(_mm512_mul_pd(e, c(std::f64::consts::LN_2)), atanh2)
}

level_table!(
    /// The AVX-512 table for `f32`. Only handed out when the CPU has AVX-512F, AVX2 and FMA.
    F32: f32 {
        max: max_f32_impl,
        sum_exp: sum_exp_f32_impl,
        exp_store_sum: exp_store_sum_f32,
        scale: scale_f32,
        scale_to: scale_to_f32,
        exp_scale: exp_scale_f32,
        write_log_softmax: write_log_softmax_f32,
        rows: rows_f32,
        exp_sum_overlapped: Some(exp_sum_overlapped_f32),
    }
);
