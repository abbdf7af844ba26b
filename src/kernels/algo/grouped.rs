//! The many-rows kernel of the vector levels ([`rows`]) and its kernels for groups of rows, up
//! to one row per `f32` lane computed together. Row by row, a short row's maximum, sum and
//! logarithm are long chains of dependent steps (horizontal shuffles, a scalar division); here
//! a group's reductions run together on full vectors ([`Simd::max_of_each`],
//! [`Simd::reduce_add_f64_each`], [`row_ln`]). Every row gets the bits the block kernels give it
//! (the same operations on the same values in the same order; the maximum is exact whatever
//! the order), so a row's result does not depend on its neighbours (contract S9):
//! - [`packed`]: rows stored one after the other at one temperature, up to four vectors each;
//!   the elementwise work runs on the packed vectors, each lane getting its row's terms through
//!   one permutation;
//! - [`short`]: other rows of up to two vectors, each kept in registers from load to store;
//! - [`medium`]: log-softmax of other rows of up to [`MEDIUM_MAX`] elements;
//! - longer rows: [`rows_long`].
//!
//! (`benches/results/tuning.md`: "avx512 packed rows", "avx512 medium rows".)

use super::f32::{vector_temperature, ArgF32, Folded, InvF32};
use super::rows::{rows_long, RowsKernel};
use crate::kernels::isa::{Simd, MAX_F32_LANES as GROUP};
use crate::kernels::{moderate_temperature, FoldedArg, Store, FOLD_FLOOR, FOLD_LIMIT};
use crate::op::Op;

/// The longest rows of the packed kernel: four vectors of the widest level.
const PACKED_MAX: usize = 4 * GROUP;

/// The longest rows the medium log-softmax kernel takes (16 such rows fill 16 KiB of L1; at 512
/// and 1000 elements it measured no faster than the block kernels on AVX-512).
const MEDIUM_MAX: usize = 256;

/// The longest rows of the packed kernel at level `S`: four vectors.
#[inline(always)]
fn packed_max<S: Simd>() -> usize {
    4 * S::F32_LANES
}

/// The longest rows of the short kernel at level `S`: two vectors, at most [`GROUP`] elements.
#[inline(always)]
fn short_max<S: Simd>() -> usize {
    (2 * S::F32_LANES).min(GROUP)
}

/// [`crate::kernels::row_ln_f32`] of every lane, the same operations in the same order (so the
/// same bits).
#[inline(always)]
pub(crate) fn row_ln<S: Simd>(s: S, x: S::F64) -> S::F64 {
    let c = |v: f64| s.splat_f64(v);
    let (e, m) = s.split_exponent_f64(x);
    let big = s.gt_f64(m, c(std::f64::consts::SQRT_2));
    let m = s.select_f64(big, s.mul_f64(m, c(0.5)), m);
    let e = s.select_f64(big, s.add_f64(e, c(1.0)), e);
    let z = s.div_f64(s.sub_f64(m, c(1.0)), s.add_f64(m, c(1.0)));
    let z2 = s.mul_f64(z, z);
    let p = s.add_f64(c(1.0 / 9.0), s.mul_f64(z2, c(1.0 / 11.0)));
    let p = s.add_f64(c(1.0 / 7.0), s.mul_f64(z2, p));
    let p = s.add_f64(c(1.0 / 5.0), s.mul_f64(z2, p));
    let p = s.add_f64(c(1.0 / 3.0), s.mul_f64(z2, p));
    let z2x = s.mul_f64(c(2.0), z);
    let atanh2 = s.add_f64(z2x, s.mul_f64(s.mul_f64(z2x, z2), p));
    s.add_f64(s.mul_f64(e, c(std::f64::consts::LN_2)), atanh2)
}

/// [`FoldedArg`]'s terms for a group's rows (lane `r`: row `r`), by the same operations on the
/// same values as [`FoldedArg::new`], so the same bits and the same choice of form.
struct Folds<S: Simd> {
    /// Lane `r`: 1 when row `r` takes the folded form, else 0.
    flags: S::F32,
    /// Every row takes the folded form.
    all: bool,
    /// No row does.
    none: bool,
    terms: Folded<S>,
}

impl<S: Simd> Folds<S> {
    #[inline(always)]
    fn none(s: S) -> Folds<S> {
        Folds {
            flags: s.splat_f32(0.0),
            all: false,
            none: true,
            terms: Folded::splat(s, FoldedArg::default()),
        }
    }

    /// `m`: the rows' maxima; `inv`: their reciprocal temperature (moderate).
    #[inline(always)]
    fn of_rows(s: S, m: S::F32, inv: f64) -> Folds<S> {
        if inv == 1.0 {
            // As `FoldedArg::new` (a temperature just off 1 whose reciprocal rounds to 1).
            return Folds::none(s);
        }
        let inv_v = s.splat_f64(inv);
        let (lo_m, hi_m) = (s.widen_low(m), s.widen_high(m));
        let (mi_lo, mi_hi) = (s.mul_f64(lo_m, inv_v), s.mul_f64(hi_m, inv_v));
        let hi = s.narrow(mi_lo, mi_hi);
        let lo = s.narrow(
            s.sub_f64(mi_lo, s.widen_low(hi)),
            s.sub_f64(mi_hi, s.widen_high(hi)),
        );
        let gap = s.splat_f64(FOLD_FLOOR / inv);
        let x_floor = s.narrow(s.sub_f64(lo_m, gap), s.sub_f64(hi_m, gap));
        // |mi| <= FOLD_LIMIT, false for NaN (x86's maximum returns its second operand, NEON's
        // NaN).
        let (limit, one) = (s.splat_f64(FOLD_LIMIT), s.splat_f64(1.0));
        let within = |mi| {
            let abs = s.max_f64(mi, s.mul_f64(mi, s.splat_f64(-1.0)));
            s.keep_f64(s.ge_f64(limit, abs), one)
        };
        let flags = s.narrow(within(mi_lo), within(mi_hi));
        let (zero, one) = (s.splat_f32(0.0), s.splat_f32(1.0));
        let minus = s.splat_f32(-1.0);
        let inv_hi = inv as f32;
        Folds {
            flags,
            all: !s.any_m32(s.lt_f32(flags, one)),
            none: !s.any_m32(s.lt_f32(zero, flags)),
            terms: Folded {
                inv_hi: s.splat_f32(inv_hi),
                inv_lo: s.splat_f32((inv - inv_hi as f64) as f32),
                // Negation by -1 keeps the sign of zeros as `-x` does.
                neg_mi_hi: s.mul_f32(hi, minus),
                neg_mi_lo: s.mul_f32(lo, minus),
                x_floor,
            },
        }
    }

    /// The folded `exp` of every lane of `x`, lane `l` in row `row[l]`.
    #[inline(always)]
    fn exp(&self, s: S, row: S::Idx, x: S::F32) -> S::F32 {
        Folded {
            neg_mi_hi: s.permute_f32(self.terms.neg_mi_hi, row),
            neg_mi_lo: s.permute_f32(self.terms.neg_mi_lo, row),
            x_floor: s.permute_f32(self.terms.x_floor, row),
            ..self.terms
        }
        .exp(s, x)
    }
}

/// `a0 + a1` of [`exp_sum`](super::f32::exp_sum) over a row of `n` values: `full(i)` is the
/// vector of values `i..i + F32_LANES`, `tail(i)` that of the last `n - i < F32_LANES` values,
/// 0 in its other lanes. [`Simd::reduce_add_f64`] of it is the row's sum with the block
/// kernels' bits.
#[inline(always)]
fn row_sum_halves<S: Simd>(
    s: S,
    n: usize,
    full: impl Fn(usize) -> S::F32,
    tail: impl Fn(usize) -> S::F32,
) -> S::F64 {
    let l = S::F32_LANES;
    let (mut a0, mut a1) = (s.splat_f64(0.0), s.splat_f64(0.0));
    let mut add = |e: S::F32| {
        a0 = s.add_f64(a0, s.widen_low(e));
        a1 = s.add_f64(a1, s.widen_high(e));
    };
    let mut i = 0;
    while i + 4 * l <= n {
        let (e0, e1) = (full(i), full(i + l));
        let (e2, e3) = (full(i + 2 * l), full(i + 3 * l));
        add(s.add_f32(s.add_f32(e0, e1), s.add_f32(e2, e3)));
        i += 4 * l;
    }
    while i + l <= n {
        add(full(i));
        i += l;
    }
    if i < n {
        add(tail(i));
    }
    s.add_f64(a0, a1)
}

/// The lanewise maximum of the `n` elements at `p` (lanes past the end read -inf).
///
/// # Safety
/// `p` is valid for reads of `n` elements.
#[inline(always)]
unsafe fn lane_max<S: Simd>(s: S, p: *const f32, n: usize) -> S::F32 {
    let l = S::F32_LANES;
    let (full, r) = (n / l, n % l);
    let mut m = if r > 0 {
        // SAFETY: the `r < l` elements after the `l full` are readable (# Safety).
        unsafe { s.load_f32_part(p.add(l * full), r, f32::NEG_INFINITY) }
    } else {
        s.splat_f32(f32::NEG_INFINITY)
    };
    for v in 0..full {
        // SAFETY: `v < full`: the `l` elements from `p + l v` are readable (# Safety).
        m = s.max_f32(unsafe { s.load_f32(p.add(l * v)) }, m);
    }
    m
}

/// A group's totals in an array (row `r`'s at `r`) and `f(totals)` of its two halves narrowed to
/// `f32` lanes (row `r` in lane `r`): `1 / total` for softmax, `row_ln(total)` for log-softmax.
#[inline(always)]
fn group_factors<S: Simd>(
    s: S,
    op: Op,
    halves: &[S::F64; GROUP],
) -> ([f64; GROUP], [f64; GROUP], S::F32) {
    let (lo, hi) = s.reduce_add_f64_each(halves);
    let one = s.splat_f64(1.0);
    let (f_lo, f_hi) = match op {
        Op::Softmax => (s.div_f64(one, lo), s.div_f64(one, hi)),
        Op::LogSoftmax => (row_ln(s, lo), row_ln(s, hi)),
    };
    let (mut totals, mut factors) = ([0.0f64; GROUP], [0.0f64; GROUP]);
    let h = S::F64_LANES;
    // SAFETY: each array holds `GROUP >= 2 F64_LANES` elements.
    unsafe {
        s.store_f64(totals.as_mut_ptr(), lo);
        s.store_f64(totals.as_mut_ptr().add(h), hi);
        s.store_f64(factors.as_mut_ptr(), f_lo);
        s.store_f64(factors.as_mut_ptr().add(h), f_hi);
    }
    (totals, factors, s.narrow(f_lo, f_hi))
}

/// Lane `r` of `v` for `r < F32_LANES`.
#[inline(always)]
fn lanes_of<S: Simd>(s: S, v: S::F32) -> [f32; GROUP] {
    let mut out = [0.0f32; GROUP];
    // SAFETY: `out` holds `GROUP >= F32_LANES` elements.
    unsafe { s.store_f32(out.as_mut_ptr(), v) };
    out
}

/// Contract S6 for a row of `n` elements at `d`: a NaN anywhere gives a NaN exp; a +inf gives
/// `m = +inf` and `inf - inf`; no entry above -inf gives `m = -inf` and `-inf - -inf`. So a
/// row's sum is NaN exactly then (every other row has exps in [0, 1] and a finite sum).
///
/// # Safety
/// `d` is valid for writes of `n` elements.
#[inline(always)]
unsafe fn fill_nan(d: *mut f32, n: usize) {
    for i in 0..n {
        // SAFETY: `i < n` (# Safety).
        unsafe { *d.add(i) = f32::NAN };
    }
}

/// For a packed group of `F32_LANES` rows of `n` elements (2 to [`PACKED_MAX`]) stored one after
/// the other: lane `l` of vector `v` (element `F32_LANES v + l`) belongs to row
/// `(F32_LANES v + l) / n`.
struct PackedRows {
    n: usize,
    row_of: [[i32; GROUP]; PACKED_MAX],
}

impl PackedRows {
    #[inline(always)]
    fn new(n: usize, lanes: usize) -> PackedRows {
        let mut row_of = [[0i32; GROUP]; PACKED_MAX];
        for (v, rows) in row_of.iter_mut().enumerate().take(n) {
            for (l, row) in rows.iter_mut().enumerate().take(lanes) {
                *row = ((lanes * v + l) / n) as i32;
            }
        }
        PackedRows { n, row_of }
    }
}

/// `F32_LANES` rows of `rows.n` elements stored one after the other (`n` full vectors), all at
/// one temperature (`inv` its reciprocal; UNIT: temperature 1; LONG: `n > F32_LANES`). The
/// exps, the scaling and the log-softmax outputs run on the `n` packed vectors, each lane
/// getting its row's maximum, form and factor through one permutation; a row's exps are read
/// back from a scratch copy (0 past the row's end, as `exp(-inf)` gives) and summed in the block
/// kernels' order.
///
/// # Safety
/// `src` valid for reads and `dst` for writes of `F32_LANES n` elements, the same or disjoint;
/// `2 <= n <= packed_max::<S>()`; `inv` moderate.
#[inline(always)]
unsafe fn packed<S: Simd, const UNIT: bool, const LONG: bool>(
    s: S,
    op: Op,
    src: *const f32,
    dst: *mut f32,
    inv: f64,
    rows: &PackedRows,
) {
    let (l, n) = (S::F32_LANES, rows.n);
    debug_assert!(LONG == (n > l) && n <= packed_max::<S>());
    let mut xs = [s.splat_f32(f32::NEG_INFINITY); GROUP];
    for (r, x) in xs.iter_mut().enumerate().take(l) {
        // SAFETY: `r < l`: row `r` is the `n` readable elements from `src + r n` (# Safety).
        *x = unsafe { lane_max(s, src.add(r * n), n) };
    }
    // Exact for rows without NaN whatever the order (a row with NaN is caught by its sum).
    let m = s.max_of_each(&xs);
    let inv_v = s.splat_f64(inv);
    let fold = if UNIT {
        Folds::none(s)
    } else {
        Folds::of_rows(s, m, inv)
    };
    let zero = s.splat_f32(0.0);
    // The exps of the group, `l n` of them, then `l` zeros: a row's last vector read back may
    // run past the group's end (not the whole buffer zeroed: for rows this short that would
    // cost as much as the exps).
    let mut exps_buf = std::mem::MaybeUninit::<[f32; PACKED_MAX * GROUP + GROUP]>::uninit();
    let exps = exps_buf.as_mut_ptr().cast::<f32>();
    let row_at = |v: usize| {
        // SAFETY: called with `v < n <= PACKED_MAX`: `row_of[v]` holds `GROUP >= l` indices,
        // each below `l`.
        unsafe { s.load_idx(rows.row_of[v].as_ptr()) }
    };
    for v in 0..n {
        // SAFETY: `v < n`: the `l` elements from `src + l v` are among the `l n` readable ones.
        let (row, x) = (row_at(v), unsafe { s.load_f32(src.add(l * v)) });
        let mv = s.permute_f32(m, row);
        // As `ArgF32::exp`, with each lane's row maximum and its row's choice of form.
        let e = if UNIT {
            s.exp_f32(s.sub_f32(x, mv))
        } else {
            let widened = || {
                let lo = s.mul_f64(s.sub_f64(s.widen_low(x), s.widen_low(mv)), inv_v);
                let hi = s.mul_f64(s.sub_f64(s.widen_high(x), s.widen_high(mv)), inv_v);
                s.exp_f32(s.narrow(lo, hi))
            };
            if fold.all {
                fold.exp(s, row, x)
            } else if fold.none {
                widened()
            } else {
                let folded_rows = s.lt_f32(zero, s.permute_f32(fold.flags, row));
                s.select_f32(folded_rows, fold.exp(s, row, x), widened())
            }
        };
        // SAFETY: `v < n <= PACKED_MAX`: the `l` from `exps + l v` are inside `exps_buf`.
        unsafe { s.store_f32(exps.add(l * v), e) };
    }
    // SAFETY: `n <= PACKED_MAX`: the `l` from `exps + l n` are inside `exps_buf`, whose first
    // `l n + l` elements are now written.
    unsafe { s.store_f32(exps.add(l * n), zero) };
    let mut halves = [s.splat_f64(0.0); GROUP];
    for (r, h) in halves.iter_mut().enumerate().take(l) {
        // SAFETY: `r < l`: row `r`'s exps, from `exps + r n`; a vector read from `i < n` in it
        // ends by `r n + i + l <= l n + l`, among the elements written above.
        let p = unsafe { exps.add(r * n).cast_const() };
        // SAFETY: called with `i < n`: see `p`.
        let full = |i: usize| unsafe { s.load_f32(p.add(i)) };
        let tail = |i: usize| s.keep_f32(s.first_lanes_m32(n - i), full(i));
        *h = if LONG {
            row_sum_halves(s, n, full, tail)
        } else {
            // As `row_sum_halves` of one vector, from zero accumulators.
            let e = tail(0);
            s.add_f64(s.widen_low(e), s.widen_high(e))
        };
    }
    let (totals, factors, f32s) = group_factors(s, op, &halves);
    let write = |v: usize, y: S::F32| {
        // SAFETY: called with `v < n`: the `l` elements from `dst + l v` are among the `l n`
        // writable ones.
        unsafe { s.store_f32(dst.add(l * v), y) }
    };
    match op {
        Op::Softmax => {
            for v in 0..n {
                // SAFETY: `v < n`: written above.
                let e = unsafe { s.load_f32(exps.add(l * v)) };
                write(v, s.mul_f32(e, s.permute_f32(f32s, row_at(v))));
            }
        }
        Op::LogSoftmax => {
            let scaled = InvF32::new(s, inv);
            for v in 0..n {
                // Read before the same vector of `dst` is written (`src == dst` allowed).
                // SAFETY: `v < n`: among the `l n` readable elements.
                let (row, x) = (row_at(v), unsafe { s.load_f32(src.add(l * v)) });
                let d = s.sub_f32(x, s.permute_f32(m, row));
                let ls = s.permute_f32(f32s, row);
                // As `ArgF32::log`, with each lane's row maximum and logarithm.
                let y = if UNIT {
                    s.sub_f32(d, ls)
                } else if S::F32_LOG_IN_F32 {
                    scaled.log_scaled(s, d, ls)
                } else {
                    let mut ls64 = [0.0f64; GROUP];
                    for (q, slot) in ls64.iter_mut().enumerate().take(l) {
                        *slot = factors[rows.row_of[v][q] as usize];
                    }
                    let mv = s.permute_f32(m, row);
                    let h = S::F64_LANES;
                    // SAFETY: `ls64` holds `GROUP >= 2 F64_LANES` elements.
                    let (ls_lo, ls_hi) = unsafe {
                        let p = ls64.as_ptr();
                        (s.load_f64(p), s.load_f64(p.add(h)))
                    };
                    let d_lo = s.sub_f64(s.widen_low(x), s.widen_low(mv));
                    let d_hi = s.sub_f64(s.widen_high(x), s.widen_high(mv));
                    s.narrow(
                        s.mul_sub_f64(d_lo, inv_v, ls_lo),
                        s.mul_sub_f64(d_hi, inv_v, ls_hi),
                    )
                };
                write(v, y);
            }
        }
    }
    for (r, total) in totals.iter().enumerate().take(l) {
        if total.is_nan() {
            // SAFETY: `r < l`: row `r`, the `n` writable elements from `dst + r n`.
            unsafe { fill_nan(dst.add(r * n), n) };
        }
    }
}

/// The packed kernel's share of a many-rows call (the arguments of
/// [`Kernels::rows`](crate::kernels::Kernels)): when the rows are stored one after the other at
/// one moderate temperature, the leading whole groups of `F32_LANES` rows. Returns how many
/// rows it computed (0 when the call does not qualify); the rest are the caller's.
///
/// # Safety
/// As [`Kernels::rows`](crate::kernels::Kernels).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn packed_groups<S: Simd>(
    s: S,
    op: Op,
    src: *const f32,
    src_step: usize,
    dst: *mut f32,
    dst_step: usize,
    n: usize,
    count: usize,
    temps: *const f64,
    temp_step: usize,
) -> usize {
    let l = S::F32_LANES;
    let adjacent = src_step == n && dst_step == n && temp_step == 0;
    if !(2..=packed_max::<S>()).contains(&n) || !adjacent || count < l {
        return 0;
    }
    // SAFETY: `count >= l >= 1` rows, so temperature 0 is readable (# Safety).
    let t = unsafe { *temps };
    if !moderate_temperature(t) {
        return 0;
    }
    let rows = PackedRows::new(n, l);
    let groups = count / l;
    let inv = 1.0 / t;
    // SAFETY: every arm: groups of `l` rows of `n` adjacent elements (`src_step == dst_step ==
    // n`) among the `count` rows # Safety makes valid, at the moderate temperature `t`, with
    // `2 <= n <= packed_max` and LONG exactly when `n > l`.
    unsafe {
        match (t == 1.0, n > l) {
            (true, false) => for_each_group(src, dst, l * n, groups, |a, b| {
                packed::<S, true, false>(s, op, a, b, 1.0, &rows)
            }),
            (true, true) => for_each_group(src, dst, l * n, groups, |a, b| {
                packed::<S, true, true>(s, op, a, b, 1.0, &rows)
            }),
            (false, false) => for_each_group(src, dst, l * n, groups, |a, b| {
                packed::<S, false, false>(s, op, a, b, inv, &rows)
            }),
            (false, true) => for_each_group(src, dst, l * n, groups, |a, b| {
                packed::<S, false, true>(s, op, a, b, inv, &rows)
            }),
        }
    }
    groups * l
}

/// Calls `f` with the start of each of `groups` blocks of `stride` elements from `src` and
/// `dst`.
///
/// # Safety
/// The `groups stride` elements from `src` and from `dst` are within one allocation each.
#[inline(always)]
unsafe fn for_each_group(
    src: *const f32,
    dst: *mut f32,
    stride: usize,
    groups: usize,
    mut f: impl FnMut(*const f32, *mut f32),
) {
    for g in 0..groups {
        // SAFETY: `g < groups`: inside the blocks of # Safety.
        unsafe { f(src.add(g * stride), dst.add(g * stride)) };
    }
}

/// Calls `f(src, dst, temps, len)` on `count` rows in groups of up to `F32_LANES` consecutive
/// rows (the pointers at each group's first row).
///
/// # Safety
/// The rows and their temperatures are as [`Kernels::rows`](crate::kernels::Kernels) requires.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn in_groups<S: Simd>(
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
        let g = S::F32_LANES.min(count - first);
        // SAFETY: `first < count`: row `first`'s addresses and its temperature's, within those
        // of # Safety.
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

/// The group's rows whose temperature the vector kernels take, their reciprocal temperatures
/// (1 at temperature 1) and temperatures; the others (bit `j` of the mask) go alone through the
/// level's plain rows kernel, as its portable fallback requires.
///
/// # Safety
/// `temps` valid for reads of the `count` temperatures `temp_step` apart.
#[inline(always)]
unsafe fn group_temperatures<S: Simd>(
    temps: *const f64,
    temp_step: usize,
    count: usize,
) -> (u32, [f64; GROUP], [f64; GROUP]) {
    let (mut alone, mut inv, mut ts) = (0u32, [1.0f64; GROUP], [1.0f64; GROUP]);
    for j in 0..count {
        // SAFETY: `j < count` (# Safety).
        let t = unsafe { *temps.add(j * temp_step) };
        ts[j] = t;
        if t != 1.0 {
            inv[j] = 1.0 / t;
            if !vector_temperature::<S>(t) {
                alone |= 1 << j;
            }
        }
    }
    (alone, inv, ts)
}

/// Up to `F32_LANES` rows of `n` elements, `V` vectors each (`V` 1 or 2; the last one holds
/// `n - (V - 1) F32_LANES` lanes), kept in registers from load to store.
///
/// # Safety
/// As [`Kernels::rows`](crate::kernels::Kernels), with `count <= F32_LANES`,
/// `(V - 1) F32_LANES < n <= V F32_LANES` and `general` the level's plain rows kernel.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn short<S: Simd, const V: usize>(
    s: S,
    general: RowsKernel,
    op: Op,
    src: *const f32,
    src_step: usize,
    dst: *mut f32,
    dst_step: usize,
    n: usize,
    count: usize,
    temps: *const f64,
    temp_step: usize,
) {
    let l = S::F32_LANES;
    let last = n - (V - 1) * l;
    debug_assert!(count <= l && (1..=l).contains(&last));
    // SAFETY: the `count` temperatures are readable (# Safety).
    let (alone, inv, ts) = unsafe { group_temperatures::<S>(temps, temp_step, count) };
    let ninf = s.splat_f32(f32::NEG_INFINITY);
    let mut xs = [[ninf; V]; GROUP];
    let mut lanes = [ninf; GROUP];
    for j in (0..count).filter(|j| alone & (1 << j) == 0) {
        for (q, x) in xs[j].iter_mut().enumerate() {
            // SAFETY: `j < count`: row `j` of `src`, `n` readable elements: vector `q < V - 1`
            // whole, the last one's `last` lanes.
            *x = unsafe {
                let p = src.add(j * src_step + q * l);
                if q + 1 < V || last == l {
                    s.load_f32(p)
                } else {
                    s.load_f32_part(p, last, f32::NEG_INFINITY)
                }
            };
            lanes[j] = s.max_f32(*x, lanes[j]);
        }
    }
    let ms = lanes_of(s, s.max_of_each(&lanes));
    let arg = |j: usize| ArgF32::new(s, ms[j], inv[j]);
    let mut es = [[ninf; V]; GROUP];
    let mut halves = [s.splat_f64(0.0); GROUP];
    for j in (0..count).filter(|j| alone & (1 << j) == 0) {
        let c = arg(j);
        let (mut a0, mut a1) = (s.splat_f64(0.0), s.splat_f64(0.0));
        for (e, &x) in es[j].iter_mut().zip(&xs[j]) {
            *e = if ts[j] == 1.0 {
                c.exp::<true>(s, x)
            } else {
                c.exp::<false>(s, x)
            };
            // As `exp_sum`: whole vectors, then the tail, from zero accumulators.
            a0 = s.add_f64(a0, s.widen_low(*e));
            a1 = s.add_f64(a1, s.widen_high(*e));
        }
        halves[j] = s.add_f64(a0, a1);
    }
    let (totals, factors, f32s) = group_factors(s, op, &halves);
    let f32s = lanes_of(s, f32s);
    for j in 0..count {
        // SAFETY: `j < count`: row `j` of `src` and `dst` (# Safety).
        let (sp, d) = unsafe { (src.add(j * src_step), dst.add(j * dst_step)) };
        if alone & (1 << j) != 0 {
            // SAFETY: row `j` alone, as `general` (`Kernels::rows`) requires.
            unsafe { general(op, sp, 0, d, 0, n, 1, &ts[j], 0, Store::Cached) };
            continue;
        }
        if totals[j].is_nan() {
            // SAFETY: row `j` of `dst`, `n` writable elements.
            unsafe { fill_nan(d, n) };
            continue;
        }
        let (c, f, f64s) = (arg(j), s.splat_f32(f32s[j]), s.splat_f64(factors[j]));
        for q in 0..V {
            let y = match op {
                Op::Softmax => s.mul_f32(es[j][q], f),
                Op::LogSoftmax if ts[j] == 1.0 => c.log::<true>(s, f, f64s, xs[j][q]),
                Op::LogSoftmax => c.log::<false>(s, f, f64s, xs[j][q]),
            };
            // SAFETY: row `j` of `dst`, `n` writable elements: vector `q < V - 1` whole, the
            // last one's `last` lanes.
            unsafe {
                let p = d.add(q * l);
                if q + 1 < V || last == l {
                    s.store_f32(p, y)
                } else {
                    s.store_f32_part(p, last, y)
                }
            }
        }
    }
}

/// Log-softmax of up to `F32_LANES` rows of `short_max < n <= MEDIUM_MAX` elements: the rows'
/// sums batched as in [`short`], each row read three times (maximum, exp sum, write) from L1.
/// It takes the rows the packed kernel does not: strided rows, per-row temperatures, a call's
/// last rows, and rows longer than four vectors.
///
/// # Safety
/// As [`Kernels::rows`](crate::kernels::Kernels), with `count <= F32_LANES` and `general` the
/// level's plain rows kernel.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn medium<S: Simd>(
    s: S,
    general: RowsKernel,
    src: *const f32,
    src_step: usize,
    dst: *mut f32,
    dst_step: usize,
    n: usize,
    count: usize,
    temps: *const f64,
    temp_step: usize,
) {
    let l = S::F32_LANES;
    let (full, r) = (n / l, n % l);
    debug_assert!(count <= l && n <= MEDIUM_MAX);
    // SAFETY: the `count` temperatures are readable (# Safety).
    let (alone, inv, ts) = unsafe { group_temperatures::<S>(temps, temp_step, count) };
    let row = |j: usize| {
        // SAFETY: called with `j < count`: row `j` of `src` and `dst` (# Safety).
        unsafe { (src.add(j * src_step), dst.add(j * dst_step)) }
    };
    let mut lanes = [s.splat_f32(f32::NEG_INFINITY); GROUP];
    for j in (0..count).filter(|j| alone & (1 << j) == 0) {
        // SAFETY: row `j` of `src`, `n` readable elements.
        lanes[j] = unsafe { lane_max(s, row(j).0, n) };
    }
    let ms = lanes_of(s, s.max_of_each(&lanes));
    let arg = |j: usize| ArgF32::new(s, ms[j], inv[j]);
    let mut halves = [s.splat_f64(0.0); GROUP];
    for j in (0..count).filter(|j| alone & (1 << j) == 0) {
        let (c, p) = (arg(j), row(j).0);
        let exp = |x| {
            if ts[j] == 1.0 {
                c.exp::<true>(s, x)
            } else {
                c.exp::<false>(s, x)
            }
        };
        // SAFETY: both: row `j` of `src`, `n` readable elements: whole vectors from `i` with
        // `i + l <= n`, the `n - i < l` after the last; lanes past the end read -inf, whose
        // exp is exactly 0.
        let whole = |i: usize| exp(unsafe { s.load_f32(p.add(i)) });
        // SAFETY: as `whole`.
        let tail = |i: usize| exp(unsafe { s.load_f32_part(p.add(i), n - i, f32::NEG_INFINITY) });
        halves[j] = row_sum_halves(s, n, whole, tail);
    }
    let (totals, factors, f32s) = group_factors(s, Op::LogSoftmax, &halves);
    let f32s = lanes_of(s, f32s);
    for j in 0..count {
        let (sp, d) = row(j);
        if alone & (1 << j) != 0 {
            let op = Op::LogSoftmax;
            // SAFETY: row `j` alone, as `general` (`Kernels::rows`) requires.
            unsafe { general(op, sp, 0, d, 0, n, 1, &ts[j], 0, Store::Cached) };
            continue;
        }
        if totals[j].is_nan() {
            // SAFETY: row `j` of `dst`, `n` writable elements.
            unsafe { fill_nan(d, n) };
            continue;
        }
        let (c, ls, ls64) = (arg(j), s.splat_f32(f32s[j]), s.splat_f64(factors[j]));
        let y = |x| {
            if ts[j] == 1.0 {
                c.log::<true>(s, ls, ls64, x)
            } else {
                c.log::<false>(s, ls, ls64, x)
            }
        };
        for i in 0..full {
            // SAFETY: `i < full`: `l` readable elements from `sp + l i`, writable from `d + l i`
            // (row `j`).
            unsafe { s.store_f32(d.add(l * i), y(s.load_f32(sp.add(l * i)))) };
        }
        if r > 0 {
            // SAFETY: the last `r < l` elements of row `j` of `src` and `dst`.
            unsafe {
                let x = s.load_f32_part(sp.add(l * full), r, f32::NEG_INFINITY);
                s.store_f32_part(d.add(l * full), r, y(x));
            }
        }
    }
}

/// The many-rows kernel of a vector level ([`Kernels::rows`](crate::kernels::Kernels)): rows of
/// up to four vectors stored one after the other at one temperature go `F32_LANES` at a time
/// through [`packed`]; the rest, up to two vectors, through [`short`]; log-softmax rows up to
/// [`MEDIUM_MAX`] elements with cached output through [`medium`]; other rows through
/// [`rows_long`]. `general` is the level's plain rows kernel.
///
/// # Safety
/// As [`Kernels::rows`](crate::kernels::Kernels).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn rows<S: Simd>(
    s: S,
    general: RowsKernel,
    op: Op,
    src: *const f32,
    src_step: usize,
    dst: *mut f32,
    dst_step: usize,
    n: usize,
    count: usize,
    temps: *const f64,
    temp_step: usize,
    store: Store,
) {
    if n == 0 {
        return;
    }
    // SAFETY: # Safety is `packed_groups`'.
    let first = unsafe {
        packed_groups(
            s, op, src, src_step, dst, dst_step, n, count, temps, temp_step,
        )
    };
    let count = count - first;
    // SAFETY: `first <= count`: with `first == 0` no pointer moves; else the rows are stored
    // one after the other at one temperature (`temp_step == 0`), and row `first` is within or
    // one past the end of the rows.
    let (src, dst, temps) = unsafe {
        (
            src.add(first * src_step),
            dst.add(first * dst_step),
            temps.add(first * temp_step),
        )
    };
    let l = S::F32_LANES;
    // SAFETY: each arm: the `count` rows from row `first` are rows of # Safety; `in_groups`
    // calls its closure with the first of up to `l` consecutive ones among them, as `short`
    // and `medium` require (with `n` in their ranges), and `general` is the level's.
    unsafe {
        if n <= l {
            let f = |a, b, t, g| {
                short::<S, 1>(s, general, op, a, src_step, b, dst_step, n, g, t, temp_step)
            };
            in_groups::<S>(src, src_step, dst, dst_step, temps, temp_step, count, f);
        } else if n <= short_max::<S>() {
            let f = |a, b, t, g| {
                short::<S, 2>(s, general, op, a, src_step, b, dst_step, n, g, t, temp_step)
            };
            in_groups::<S>(src, src_step, dst, dst_step, temps, temp_step, count, f);
        } else if n <= MEDIUM_MAX && op == Op::LogSoftmax && store == Store::Cached {
            let f = |a, b, t, g| medium(s, general, a, src_step, b, dst_step, n, g, t, temp_step);
            in_groups::<S>(src, src_step, dst, dst_step, temps, temp_step, count, f);
        } else {
            rows_long(
                s, general, op, src, src_step, dst, dst_step, n, count, temps, temp_step, store,
            );
        }
    }
}
