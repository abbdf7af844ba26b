//! The many-rows kernel of the vector levels ([`rows`]) and its kernels for groups of rows, up
//! to one row per `f32` lane computed together. Row by row, a short row's maximum, sum and
//! logarithm are long chains of dependent steps (horizontal shuffles, a scalar division); here
//! a group's reductions run together on full vectors ([`Simd::max_of_each`],
//! [`Simd::reduce_add_f64_each`], [`row_ln`]). Every row gets the bits the block kernels give it
//! (the same operations on the same values in the same order; the maximum is exact whatever
//! the order), so a row's result does not depend on its neighbours (contract S9):
//! - [`packed`]: rows stored one after the other at one temperature, up to eight vectors and
//!   [`PACKED_MAX`] elements each; the elementwise work runs on the packed vectors, each lane
//!   getting its row's terms through one permutation;
//! - [`short`]: other rows of up to two vectors, each kept in registers from load to store;
//! - [`medium`]: log-softmax of other rows of up to `medium_max` elements;
//! - longer rows: [`rows_long`].
//!
//! (`benches/results/tuning.md`: "avx512 packed rows", "avx512 medium rows".)
//!
//! No closure here does vector work: a closure is compiled without the level's target
//! features, so one that LLVM does not inline calls every intrinsic out of line (38 times
//! slower, measured); vector steps are `#[inline(always)]` functions and trait methods.

use super::f32::{vector_temperature, ArgF32, Folded, InvF32};
use super::rows::{rows_long, RowsKernel};
use crate::kernels::isa::{Simd, MAX_F32_LANES as GROUP};
use crate::kernels::{moderate_temperature, FoldedArg, RowBatch, Store, FOLD_FLOOR, FOLD_LIMIT};
use crate::op::Op;

/// The longest rows of the packed kernel: four vectors of the widest level.
const PACKED_MAX: usize = 4 * GROUP;

/// The longest rows the medium log-softmax kernel takes: 16 vectors (AVX-512: 256 elements, 16
/// such rows fill 16 KiB of L1; at 512 and 1000 elements it measured no faster than the block
/// kernels there. AVX2: 128; at 256 it measured 1.2-1.35x the block kernels' time, at 100
/// 0.76-0.92x).
#[inline(always)]
fn medium_max<S: Simd>() -> usize {
    16 * S::F32_LANES
}

/// The longest rows of the packed kernel at level `S`: eight vectors, at most [`PACKED_MAX`].
#[inline(always)]
fn packed_max<S: Simd>() -> usize {
    (8 * S::F32_LANES).min(PACKED_MAX)
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
    let (e, m) = s.split_exponent_f64(x);
    let c = SplatF64(s);
    let big = s.gt_f64(m, c.of(std::f64::consts::SQRT_2));
    let m = s.select_f64(big, s.mul_f64(m, c.of(0.5)), m);
    let e = s.select_f64(big, s.add_f64(e, c.of(1.0)), e);
    let z = s.div_f64(s.sub_f64(m, c.of(1.0)), s.add_f64(m, c.of(1.0)));
    let z2 = s.mul_f64(z, z);
    let p = s.add_f64(c.of(1.0 / 9.0), s.mul_f64(z2, c.of(1.0 / 11.0)));
    let p = s.add_f64(c.of(1.0 / 7.0), s.mul_f64(z2, p));
    let p = s.add_f64(c.of(1.0 / 5.0), s.mul_f64(z2, p));
    let p = s.add_f64(c.of(1.0 / 3.0), s.mul_f64(z2, p));
    let z2x = s.mul_f64(c.of(2.0), z);
    let atanh2 = s.add_f64(z2x, s.mul_f64(s.mul_f64(z2x, z2), p));
    s.add_f64(s.mul_f64(e, c.of(std::f64::consts::LN_2)), atanh2)
}

/// `f64` constants of a level.
#[derive(Clone, Copy)]
struct SplatF64<S: Simd>(S);

impl<S: Simd> SplatF64<S> {
    #[inline(always)]
    fn of(self, x: f64) -> S::F64 {
        self.0.splat_f64(x)
    }
}

/// 1 in the lanes where `|mi| <= FOLD_LIMIT`, else 0 (NaN: 0; x86's maximum returns its second
/// operand, NEON's NaN).
#[inline(always)]
fn within_fold_limit<S: Simd>(s: S, mi: S::F64) -> S::F64 {
    let abs = s.max_f64(mi, s.mul_f64(mi, s.splat_f64(-1.0)));
    s.keep_f64(s.ge_f64(s.splat_f64(FOLD_LIMIT), abs), s.splat_f64(1.0))
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
        let flags = s.narrow(within_fold_limit(s, mi_lo), within_fold_limit(s, mi_hi));
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

/// The values of a row that [`row_sum_halves`] adds.
trait RowValues<S: Simd> {
    /// The vector of values `i..i + F32_LANES`.
    ///
    /// # Safety
    /// `i + F32_LANES <= n`.
    unsafe fn full(&self, i: usize) -> S::F32;
    /// The last `n - i < F32_LANES` values, 0 in the other lanes.
    ///
    /// # Safety
    /// `i < n < i + F32_LANES`.
    unsafe fn tail(&self, i: usize) -> S::F32;
}

/// A row's exps as the packed kernel stores them: `p` valid for reads of a whole vector from
/// any of them; `tail` the first `n % F32_LANES` lanes (`n` lanes for a row of at most one
/// vector).
struct StoredExps<S: Simd> {
    s: S,
    p: *const f32,
    tail: S::M32,
}

impl<S: Simd> RowValues<S> for StoredExps<S> {
    #[inline(always)]
    unsafe fn full(&self, i: usize) -> S::F32 {
        // SAFETY: `i < n`: a whole vector from `p + i` is readable (the struct's invariant).
        unsafe { self.s.load_f32(self.p.add(i)) }
    }
    #[inline(always)]
    unsafe fn tail(&self, i: usize) -> S::F32 {
        // SAFETY: as `full` (`i < n`).
        self.s.keep_f32(self.tail, unsafe { self.full(i) })
    }
}

/// The exps of a row of `n` elements at `p` (valid for reads of `n`), `c` its argument (UNIT:
/// temperature 1).
struct ExpsOf<S: Simd, const UNIT: bool> {
    s: S,
    p: *const f32,
    n: usize,
    c: ArgF32<S>,
}

impl<S: Simd, const UNIT: bool> RowValues<S> for ExpsOf<S, UNIT> {
    #[inline(always)]
    unsafe fn full(&self, i: usize) -> S::F32 {
        // SAFETY: `i + F32_LANES <= n` (# Safety): readable.
        self.c
            .exp::<UNIT>(self.s, unsafe { self.s.load_f32(self.p.add(i)) })
    }
    #[inline(always)]
    unsafe fn tail(&self, i: usize) -> S::F32 {
        // SAFETY: the last `n - i < F32_LANES` elements (# Safety); lanes past the end read
        // -inf, whose exp is exactly 0.
        let x = unsafe {
            self.s
                .load_f32_part(self.p.add(i), self.n - i, f32::NEG_INFINITY)
        };
        self.c.exp::<UNIT>(self.s, x)
    }
}

/// `a0 + a1` of [`exp_sum`](super::f32::exp_sum) over a row of `n` values, `full = n /
/// F32_LANES` of them whole vectors. [`Simd::reduce_add_f64`] of it is the row's sum with the
/// block kernels' bits. (Callers that can pass `full` as a constant should, as the packed kernel
/// does through `by_whole_vectors!`: loops of a few steps whose count is only known at run time
/// measured much slower there, `benches/results/kernels-ab.md`.)
#[inline(always)]
fn row_sum_halves<S: Simd>(s: S, n: usize, full: usize, values: &impl RowValues<S>) -> S::F64 {
    let l = S::F32_LANES;
    debug_assert_eq!(full, n / l);
    let (mut a0, mut a1) = (s.splat_f64(0.0), s.splat_f64(0.0));
    let mut i = 0;
    for _ in 0..full / 4 {
        // SAFETY: `i + 4 l <= full l <= n`: four whole vectors.
        let v = unsafe {
            let (e0, e1) = (values.full(i), values.full(i + l));
            let (e2, e3) = (values.full(i + 2 * l), values.full(i + 3 * l));
            s.add_f32(s.add_f32(e0, e1), s.add_f32(e2, e3))
        };
        a0 = s.add_f64(a0, s.widen_low(v));
        a1 = s.add_f64(a1, s.widen_high(v));
        i += 4 * l;
    }
    for _ in 0..full % 4 {
        // SAFETY: `i + l <= full l <= n`.
        let e = unsafe { values.full(i) };
        a0 = s.add_f64(a0, s.widen_low(e));
        a1 = s.add_f64(a1, s.widen_high(e));
        i += l;
    }
    if i < n {
        // SAFETY: `i = full l`, so `i < n < i + l`.
        let e = unsafe { values.tail(i) };
        a0 = s.add_f64(a0, s.widen_low(e));
        a1 = s.add_f64(a1, s.widen_high(e));
    }
    s.add_f64(a0, a1)
}

/// A vector whose largest lane is the largest of the `n` elements at `p` (every lane holds one
/// of them or -inf; NaN as `max_f32` passes it on).
///
/// # Safety
/// `p` is valid for reads of `n` elements.
#[inline(always)]
unsafe fn lane_max<S: Simd>(s: S, p: *const f32, n: usize, full: usize) -> S::F32 {
    let l = S::F32_LANES;
    debug_assert_eq!(full, n / l);
    let r = n % l;
    // A row of at least one vector: its last whole vector, overlapping the others (a maximum
    // does not mind elements seen twice), rather than a partial load of the rest, which AVX2
    // assembles in pieces.
    let mut m = if full > 0 {
        // SAFETY: `l <= n`: the `l` elements ending at `p + n` are readable (# Safety).
        unsafe { s.load_f32(p.add(n - l)) }
    } else {
        // SAFETY: the `r < l` elements at `p` are readable (# Safety).
        unsafe { s.load_f32_part(p, r, f32::NEG_INFINITY) }
    };
    for v in 0..full {
        // SAFETY: `v < full`: the `l` elements from `p + l v` are readable (# Safety).
        m = s.max_f32(unsafe { s.load_f32(p.add(l * v)) }, m);
    }
    m
}

/// A group's totals (row `r` in lane `r` of `lo` then `hi`) and their factors: `1 / total`
/// for softmax, `row_ln(total)` for log-softmax.
struct GroupSums<S: Simd> {
    lo: S::F64,
    hi: S::F64,
    f_lo: S::F64,
    f_hi: S::F64,
}

impl<S: Simd> GroupSums<S> {
    #[inline(always)]
    fn new(s: S, op: Op, halves: &[S::F64; GROUP]) -> GroupSums<S> {
        let (lo, hi) = s.reduce_add_f64_each(halves);
        let one = s.splat_f64(1.0);
        let (f_lo, f_hi) = match op {
            Op::Softmax => (s.div_f64(one, lo), s.div_f64(one, hi)),
            Op::LogSoftmax => (row_ln(s, lo), row_ln(s, hi)),
        };
        GroupSums { lo, hi, f_lo, f_hi }
    }

    /// Whether a row's total is NaN (contract S6, see [`fill_nan`]).
    #[inline(always)]
    fn any_nan(&self, s: S) -> bool {
        s.any_m64(s.or_m64(s.unord_f64(self.lo, self.lo), s.unord_f64(self.hi, self.hi)))
    }

    /// The totals, row `r`'s at `r`.
    #[inline(always)]
    fn totals(&self, s: S) -> [f64; GROUP] {
        both_halves(s, self.lo, self.hi)
    }

    /// The factors, row `r`'s at `r`.
    #[inline(always)]
    fn factors(&self, s: S) -> [f64; GROUP] {
        both_halves(s, self.f_lo, self.f_hi)
    }

    /// The factors rounded to `f32`, row `r`'s in lane `r`.
    #[inline(always)]
    fn factors_f32(&self, s: S) -> S::F32 {
        s.narrow(self.f_lo, self.f_hi)
    }
}

/// The lanes of `lo` then `hi` in an array.
#[inline(always)]
fn both_halves<S: Simd>(s: S, lo: S::F64, hi: S::F64) -> [f64; GROUP] {
    let mut out = [0.0f64; GROUP];
    // SAFETY: `out` holds `GROUP >= 2 F64_LANES` elements.
    unsafe {
        s.store_f64(out.as_mut_ptr(), lo);
        s.store_f64(out.as_mut_ptr().add(S::F64_LANES), hi);
    }
    out
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
pub(crate) struct PackedRows {
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

    /// The rows of the lanes of vector `v < n`.
    #[inline(always)]
    fn idx<S: Simd>(&self, s: S, v: usize) -> S::Idx {
        assert!(v < self.n);
        // SAFETY: `v < n <= PACKED_MAX`: `row_of[v]` holds `GROUP >= F32_LANES` indices.
        unsafe { s.load_idx(self.row_of[v].as_ptr()) }
    }
}

/// `exp((x - m) * inv)` with the difference and product in `f64`, rounded once to `f32`
/// (`ArgF32::exp` where the folded form does not hold), `m` given per lane.
#[inline(always)]
fn exp_widened<S: Simd>(s: S, x: S::F32, m: S::F32, inv: S::F64) -> S::F32 {
    let lo = s.mul_f64(s.sub_f64(s.widen_low(x), s.widen_low(m)), inv);
    let hi = s.mul_f64(s.sub_f64(s.widen_high(x), s.widen_high(m)), inv);
    s.exp_f32(s.narrow(lo, hi))
}

/// `$f($args.., full)` with `full` the row's count of whole vectors `$whole` (LONG rows of the
/// packed kernel: 1 to 8) written as a constant in each arm, so that the loops over a row's
/// vectors have fixed trip counts once inlined; 0 when not LONG.
macro_rules! by_whole_vectors {
    ($long:expr, $whole:expr, $f:path, ($($arg:expr),*)) => {
        match $whole {
            _ if !$long => $f($($arg,)* 0),
            1 => $f($($arg,)* 1),
            2 => $f($($arg,)* 2),
            3 => $f($($arg,)* 3),
            4 => $f($($arg,)* 4),
            5 => $f($($arg,)* 5),
            6 => $f($($arg,)* 6),
            7 => $f($($arg,)* 7),
            _ => $f($($arg,)* 8),
        }
    };
}

/// What [`each_group`] makes of a packed group once its maxima and exps are known.
trait GroupOutput<S: Simd> {
    /// Group `g`'s outputs: `m` its rows' maxima (row `r`'s in lane `r`), `exps` as
    /// [`packed_exps`] left them.
    ///
    /// # Safety
    /// `g` is one of the groups of the [`each_group`] call; `exps` as [`packed_exps`] left it.
    unsafe fn finish(&self, s: S, g: usize, m: S::F32, exps: *const f32);
}

/// [`packed`]'s output: `op` of each row, written to `dst`.
struct Written<'a, const UNIT: bool, const LONG: bool> {
    op: Op,
    src: *const f32,
    dst: *mut f32,
    inv: f64,
    rows: &'a PackedRows,
}

impl<S: Simd, const UNIT: bool, const LONG: bool> GroupOutput<S> for Written<'_, UNIT, LONG> {
    #[inline(always)]
    unsafe fn finish(&self, s: S, g: usize, m: S::F32, exps: *const f32) {
        let a = g * S::F32_LANES * self.rows.n;
        // SAFETY: group `g`: the `F32_LANES n` elements from `src + a` and `dst + a` ([`packed`]'s
        // # Safety); its exps and maxima as `packed_finish` takes them (# Safety).
        unsafe {
            packed_finish::<S, UNIT, LONG>(
                s,
                self.op,
                self.src.add(a),
                self.dst.add(a),
                self.inv,
                self.rows,
                m,
                exps,
            )
        };
    }
}

/// [`packed_sums`]' output: each row's maximum and sum, at `maxima` and `totals`.
struct Sums<'a, const LONG: bool> {
    maxima: *mut f32,
    totals: *mut f64,
    rows: &'a PackedRows,
}

impl<S: Simd, const LONG: bool> GroupOutput<S> for Sums<'_, LONG> {
    #[inline(always)]
    unsafe fn finish(&self, s: S, g: usize, m: S::F32, exps: *const f32) {
        let (l, n) = (S::F32_LANES, self.rows.n);
        if !LONG && n == 2 {
            // Each row's sum is its two exps' sum whatever the order of `packed_halves` (its
            // other terms are exact zeros): added here, without that reduction.
            for r in 0..l {
                // SAFETY: row `r < l`'s two exps, among the group's `l n` (# Safety); its total
                // is among the writable ones ([`packed_sums`]' # Safety).
                unsafe {
                    let (a, b) = (*exps.add(2 * r), *exps.add(2 * r + 1));
                    *self.totals.add(g * l + r) = f64::from(a) + f64::from(b);
                }
            }
            // SAFETY: group `g`'s `l` maxima are writable ([`packed_sums`]' # Safety).
            unsafe { s.store_f32(self.maxima.add(g * l), m) };
            return;
        }
        // SAFETY: the exps are written as `packed_halves` requires (# Safety); group `g`'s `l`
        // maxima and totals are among the writable ones ([`packed_sums`]' # Safety), and
        // `l = 2 F64_LANES`.
        unsafe {
            let halves = by_whole_vectors!(LONG, n / l, packed_halves::<S, LONG>, (s, exps, n));
            let (lo, hi) = s.reduce_add_f64_each(&halves);
            s.store_f32(self.maxima.add(g * l), m);
            s.store_f64(self.totals.add(g * l), lo);
            s.store_f64(self.totals.add(g * l + S::F64_LANES), hi);
        }
    }
}

/// `groups` groups of `F32_LANES` rows of `rows.n` elements each, stored one after the other
/// (`n` full vectors a group), all at one temperature (`inv` its reciprocal; UNIT: temperature
/// 1; LONG: `n > F32_LANES`): softmax or log-softmax (`op`) of each row into `dst`. The exps,
/// the scaling and the log-softmax outputs run on the `n` packed vectors, each lane getting its
/// row's maximum, form and factor through one permutation; a row's exps are read back from a
/// scratch copy (0 past the row's end, as `exp(-inf)` gives) and summed in the block kernels'
/// order.
///
/// # Safety
/// `src` valid for reads and `dst` for writes of `groups F32_LANES n` elements, the same or
/// disjoint; `2 <= n <= packed_max::<S>()`; `inv` moderate; `exps` valid for writes and reads
/// of `2 EXPS_LEN` `f32` (its contents on entry do not matter), disjoint from the rows.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn packed<S: Simd, const UNIT: bool, const LONG: bool>(
    s: S,
    op: Op,
    src: *const f32,
    dst: *mut f32,
    inv: f64,
    rows: &PackedRows,
    groups: usize,
    exps: *mut f32,
) {
    let out = Written::<UNIT, LONG> {
        op,
        src,
        dst,
        inv,
        rows,
    };
    // SAFETY: # Safety, which `Written` needs of `src` and `dst`.
    unsafe { each_group::<S, UNIT, LONG>(s, src, inv, rows, groups, exps, &out) };
}

/// Each row's maximum and its exps' sum ([`row_sums`](crate::kernels::row_sums)'s values: the
/// sums' bits, the maximum's value) for `groups` groups of `F32_LANES` rows of `rows.n`
/// elements stored one after the other, at one temperature (`inv` its reciprocal; UNIT:
/// temperature 1; LONG: `n > F32_LANES`), row `r`'s at `maxima + r` and `totals + r`.
///
/// # Safety
/// `src` valid for reads of `groups F32_LANES n` elements, `maxima` and `totals` for writes of
/// `groups F32_LANES` values; `2 <= n <= packed_max::<S>()`; `inv` moderate; `exps` as for
/// [`packed`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn packed_sums<S: Simd, const UNIT: bool, const LONG: bool>(
    s: S,
    src: *const f32,
    inv: f64,
    rows: &PackedRows,
    groups: usize,
    maxima: *mut f32,
    totals: *mut f64,
    exps: *mut f32,
) {
    let out = Sums::<LONG> {
        maxima,
        totals,
        rows,
    };
    // SAFETY: # Safety, which `Sums` needs of `maxima` and `totals`.
    unsafe { each_group::<S, UNIT, LONG>(s, src, inv, rows, groups, exps, &out) };
}

/// [`packed_exps`] of each group, then `out`'s finish of it.
///
/// A group's exps are read back only after the next group's are computed: read at once, a
/// row that does not start on a vector boundary overlaps two stores still in flight, and such
/// a load waits until both reach the cache (`benches/results/kernels-ab.md`).
///
/// # Safety
/// `src` valid for reads of `groups F32_LANES n` elements; `2 <= n <= packed_max::<S>()`;
/// `inv` moderate; `exps` as for [`packed`]; `out` takes each of the `groups` groups.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn each_group<S: Simd, const UNIT: bool, const LONG: bool>(
    s: S,
    src: *const f32,
    inv: f64,
    rows: &PackedRows,
    groups: usize,
    exps: *mut f32,
    out: &impl GroupOutput<S>,
) {
    if groups == 0 {
        return;
    }
    let group = S::F32_LANES * rows.n;
    if !LONG && rows.n == S::F32_LANES {
        // Rows of one whole vector are read back on vector boundaries: nothing to wait for
        // (and deferring measured slower).
        for g in 0..groups {
            // SAFETY: group `g < groups`: the `group` elements from `src + g group` (# Safety);
            // its exps in the first half of `exps`, written before they are read.
            unsafe {
                let m = packed_exps::<S, UNIT, LONG>(s, src.add(g * group), inv, rows, exps);
                out.finish(s, g, m, exps);
            }
        }
        return;
    }
    // Group `g`'s exps go to half `g % 2` of `exps`; they are read before the next write there
    // (for group `g + 2`).
    let buffer = |g: usize| exps.wrapping_add((g % 2) * EXPS_LEN);
    // SAFETY: group 0 (`groups > 0`): the `group` elements from `src` (# Safety).
    let mut m = unsafe { packed_exps::<S, UNIT, LONG>(s, src, inv, rows, buffer(0)) };
    for g in 1..groups {
        // SAFETY: group `g < groups`: the `group` elements from `src + g group`.
        let next =
            unsafe { packed_exps::<S, UNIT, LONG>(s, src.add(g * group), inv, rows, buffer(g)) };
        // SAFETY: group `g - 1`: its exps in `buffer(g - 1)`, written by the last call but one
        // of `packed_exps`, whose maxima are `m`.
        unsafe { out.finish(s, g - 1, m, buffer(g - 1)) };
        m = next;
    }
    // (The last group's finish is written out here rather than as a last turn of the loop
    // above, with the `packed_exps` call under a condition: that measured 1.1x slower.)
    // SAFETY: the last group, as above.
    unsafe { out.finish(s, groups - 1, m, buffer(groups - 1)) };
}

/// [`packed`]'s first half for one group (`src`: its `F32_LANES n` elements): the exps into
/// `exps` (valid for [`EXPS_LEN`]), then `F32_LANES` zeros; returns the rows' maxima, row `r`'s
/// in lane `r`.
///
/// # Safety
/// As [`packed`] for one group.
#[inline(always)]
unsafe fn packed_exps<S: Simd, const UNIT: bool, const LONG: bool>(
    s: S,
    src: *const f32,
    inv: f64,
    rows: &PackedRows,
    exps: *mut f32,
) -> S::F32 {
    let (l, n) = (S::F32_LANES, rows.n);
    debug_assert!(LONG == (n > l) && n <= packed_max::<S>());
    // SAFETY: # Safety.
    let xs = unsafe { by_whole_vectors!(LONG, n / l, packed_lane_maxima::<S, LONG>, (s, src, n)) };
    // Exact for rows without NaN whatever the order (a row with NaN is caught by its sum).
    let m = s.max_of_each(&xs);
    let inv_v = s.splat_f64(inv);
    let fold = if UNIT {
        Folds::none(s)
    } else {
        Folds::of_rows(s, m, inv)
    };
    let zero = s.splat_f32(0.0);
    // `exps`: the exps of the group, `l n` of them, then `l` zeros: a row's last vector read
    // back may run past the group's end (not the whole buffer zeroed: for rows this short
    // that would cost as much as the exps).
    for v in 0..n {
        // SAFETY: `v < n`: the `l` elements from `src + l v` are among the `l n` readable ones.
        let (row, x) = (rows.idx(s, v), unsafe { s.load_f32(src.add(l * v)) });
        let mv = s.permute_f32(m, row);
        // As `ArgF32::exp`, with each lane's row maximum and its row's choice of form.
        let e = if UNIT {
            s.exp_f32(s.sub_f32(x, mv))
        } else {
            if fold.all {
                fold.exp(s, row, x)
            } else if fold.none {
                exp_widened(s, x, mv, inv_v)
            } else {
                let folded_rows = s.lt_f32(zero, s.permute_f32(fold.flags, row));
                let widened = exp_widened(s, x, mv, inv_v);
                s.select_f32(folded_rows, fold.exp(s, row, x), widened)
            }
        };
        // SAFETY: `v < n <= PACKED_MAX`: the `l` from `exps + l v` are inside `exps`.
        unsafe { s.store_f32(exps.add(l * v), e) };
    }
    // SAFETY: `n <= PACKED_MAX`: the `l` from `exps + l n` are inside `exps`, whose first
    // `l n + l` elements are now written.
    unsafe { s.store_f32(exps.add(l * n), zero) };
    m
}

/// [`packed`]'s second half for one group (`src`, `dst`: its `F32_LANES n` elements): the sums
/// of the exps [`packed_exps`] wrote into `exps` and the outputs; `m` the rows' maxima it
/// returned.
///
/// # Safety
/// As [`packed`] for one group; `exps` as [`packed_exps`] left it.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn packed_finish<S: Simd, const UNIT: bool, const LONG: bool>(
    s: S,
    op: Op,
    src: *const f32,
    dst: *mut f32,
    inv: f64,
    rows: &PackedRows,
    m: S::F32,
    exps: *const f32,
) {
    let (l, n) = (S::F32_LANES, rows.n);
    let inv_v = s.splat_f64(inv);
    // SAFETY: the exps are written as `packed_halves` requires (# Safety).
    let halves = unsafe { by_whole_vectors!(LONG, n / l, packed_halves::<S, LONG>, (s, exps, n)) };
    let sums = GroupSums::new(s, op, &halves);
    let f32s = sums.factors_f32(s);
    match op {
        Op::Softmax => {
            for v in 0..n {
                // SAFETY: `v < n`: the `l` exps from `exps + l v`, written above; the `l`
                // elements from `dst + l v` are among the `l n` writable ones.
                unsafe {
                    let e = s.load_f32(exps.add(l * v));
                    let y = s.mul_f32(e, s.permute_f32(f32s, rows.idx(s, v)));
                    s.store_f32(dst.add(l * v), y);
                }
            }
        }
        Op::LogSoftmax => {
            let scaled = InvF32::new(s, inv);
            let factors = if UNIT || S::F32_LOG_IN_F32 {
                [0.0; GROUP]
            } else {
                sums.factors(s)
            };
            for v in 0..n {
                // Read before the same vector of `dst` is written (`src == dst` allowed).
                // SAFETY: `v < n`: among the `l n` readable elements.
                let (row, x) = (rows.idx(s, v), unsafe { s.load_f32(src.add(l * v)) });
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
                // SAFETY: `v < n`: among the `l n` writable elements.
                unsafe { s.store_f32(dst.add(l * v), y) };
            }
        }
    }
    if sums.any_nan(s) {
        for (r, total) in sums.totals(s).iter().enumerate().take(l) {
            if total.is_nan() {
                // SAFETY: `r < l`: row `r`, the `n` writable elements from `dst + r n`.
                unsafe { fill_nan(dst.add(r * n), n) };
            }
        }
    }
}

/// [`lane_max`] of each row of a packed group (row `r` at `r`), the group's `F32_LANES n`
/// elements at `src`; `full = n / F32_LANES` when LONG.
///
/// # Safety
/// `src` is valid for reads of `F32_LANES n` elements.
#[inline(always)]
unsafe fn packed_lane_maxima<S: Simd, const LONG: bool>(
    s: S,
    src: *const f32,
    n: usize,
    full: usize,
) -> [S::F32; GROUP] {
    let l = S::F32_LANES;
    let mut xs = [s.splat_f32(f32::NEG_INFINITY); GROUP];
    for (r, x) in xs.iter_mut().enumerate().take(l) {
        // SAFETY: `r < l`: row `r` is the `n` readable elements from `src + r n` (# Safety);
        // not LONG, they are `n <= l`.
        *x = unsafe {
            let p = src.add(r * n);
            match (LONG, n == l) {
                (true, _) => lane_max(s, p, n, full),
                (false, true) => s.load_f32(p),
                (false, false) => s.load_f32_part(p, n, f32::NEG_INFINITY),
            }
        };
    }
    xs
}

/// [`row_sum_halves`] of each row of a packed group (row `r` at `r`), from the group's exps
/// at `exps`; `full = n / F32_LANES` when LONG.
///
/// # Safety
/// `exps` holds the `F32_LANES n` exps of the group's rows, then `F32_LANES` zeros.
#[inline(always)]
unsafe fn packed_halves<S: Simd, const LONG: bool>(
    s: S,
    exps: *const f32,
    n: usize,
    full: usize,
) -> [S::F64; GROUP] {
    let l = S::F32_LANES;
    let mut halves = [s.splat_f64(0.0); GROUP];
    let tail = s.first_lanes_m32(if LONG { n % l } else { n });
    for (r, h) in halves.iter_mut().enumerate().take(l) {
        // SAFETY: `r < l`: row `r`'s exps, from `exps + r n`; a vector read from `i < n` in it
        // ends by `r n + i + l <= l n + l`, among the elements # Safety makes readable.
        let p = unsafe { exps.add(r * n) };
        let exps = StoredExps { s, p, tail };
        *h = if LONG {
            row_sum_halves(s, n, full, &exps)
        } else {
            // As `row_sum_halves` of one vector, from zero accumulators.
            // SAFETY: `0 < n`.
            let e = unsafe { exps.tail(0) };
            s.add_f64(s.widen_low(e), s.widen_high(e))
        };
    }
    halves
}

/// A packed kernel: [`packed`] at a level with its UNIT and LONG.
pub(crate) type PackedKernel =
    unsafe fn(Op, *const f32, *mut f32, f64, &PackedRows, usize, *mut f32);

/// The length of each half of the packed kernel's scratch buffer (one half per group in flight,
/// see [`packed`]): the exps of a group of the widest level's longest packed rows, and a vector
/// after them. Allocated once per call (on the stack), not per group.
const EXPS_LEN: usize = PACKED_MAX * GROUP + GROUP;
/// A packed sums kernel: [`packed_sums`] at a level with its LONG.
pub(crate) type SumsKernel =
    unsafe fn(*const f32, f64, &PackedRows, usize, *mut f32, *mut f64, *mut f32);
/// A short-row kernel: [`short`] at a level with its V.
pub(crate) type ShortKernel = unsafe fn(RowsKernel, Op, RowBatch<f32>);
/// The medium-row kernel: [`medium`] at a level.
pub(crate) type MediumKernel = unsafe fn(RowsKernel, RowBatch<f32>);

/// A level's instances of the group kernels, each compiled with the level's features
/// (`algo::f32::instantiate!`). Separate functions, called through these pointers once per
/// group, rather than inlined into the many-rows kernel: inlined, the packed kernel measured
/// 10-20% slower at 65536x10 to 65536x40 (one function holding every path). The pointers pass
/// through `black_box`, as `#[inline(never)]` did not keep LLVM from inlining a
/// `#[target_feature]` function read from a constant table.
pub(crate) struct GroupKernels {
    /// [`packed`] with (UNIT, LONG) `(true, false)`, `(true, true)`, `(false, false)`,
    /// `(false, true)`.
    pub(crate) packed: [PackedKernel; 4],
    /// [`packed_sums`] with (UNIT, LONG) as for `packed`.
    pub(crate) sums: [SumsKernel; 4],
    /// [`short`] with V 1 and 2.
    pub(crate) short: [ShortKernel; 2],
    pub(crate) medium: MediumKernel,
}

/// The packed kernel's share of a many-rows call (the arguments of
/// [`Kernels::rows`](crate::kernels::Kernels)): when the rows are stored one after the other at
/// one moderate temperature, the leading whole groups of `F32_LANES` rows. Returns how many
/// rows it computed (0 when the call does not qualify); the rest are the caller's.
///
/// # Safety
/// As [`Kernels::rows`](crate::kernels::Kernels).
#[inline(always)]
unsafe fn packed_groups<S: Simd>(k: &GroupKernels, op: Op, b: RowBatch<f32>) -> usize {
    let (l, n) = (S::F32_LANES, b.n);
    let adjacent = b.src_step == n && b.dst_step == n && b.temp_step == 0;
    if !(2..=packed_max::<S>()).contains(&n) || !adjacent || b.count < l {
        return 0;
    }
    // SAFETY: `count >= l >= 1` rows, so temperature 0 is readable (# Safety).
    let t = unsafe { b.temp(0) };
    if !moderate_temperature(t) {
        return 0;
    }
    let rows = PackedRows::new(n, l);
    let groups = b.count / l;
    let kernel = std::hint::black_box(match (t == 1.0, n > l) {
        (true, false) => k.packed[0],
        (true, true) => k.packed[1],
        (false, false) => k.packed[2],
        (false, true) => k.packed[3],
    });
    let inv = if t == 1.0 { 1.0 } else { 1.0 / t };
    let mut exps = std::mem::MaybeUninit::<[f32; 2 * EXPS_LEN]>::uninit();
    // SAFETY: the `groups l` rows from `src` and `dst`, `n` adjacent elements each (`src_step
    // == dst_step == n`), among the `count` rows # Safety makes valid, at the moderate
    // temperature `t`, with `2 <= n <= packed_max` and LONG exactly when `n > l`; `exps` is
    // the scratch buffer of `2 EXPS_LEN`, local.
    unsafe {
        kernel(
            op,
            b.src,
            b.dst,
            inv,
            &rows,
            groups,
            exps.as_mut_ptr().cast::<f32>(),
        )
    };
    groups * l
}

/// [`Kernels::packed_sums`](crate::kernels::Kernels) at level `S`: the leading whole groups of
/// `F32_LANES` rows through [`packed_sums`] when `2 <= n <= packed_max` and `t` is moderate;
/// returns how many rows it computed (0 when the call does not qualify).
///
/// # Safety
/// `src` valid for reads of `count n` elements, `maxima` and `totals` for writes of `count`
/// values.
#[inline(always)]
pub(crate) unsafe fn sums<S: Simd>(
    k: &GroupKernels,
    src: *const f32,
    n: usize,
    count: usize,
    t: f64,
    maxima: *mut f32,
    totals: *mut f64,
) -> usize {
    let l = S::F32_LANES;
    if !(2..=packed_max::<S>()).contains(&n) || count < l || !moderate_temperature(t) {
        return 0;
    }
    let rows = PackedRows::new(n, l);
    let groups = count / l;
    let kernel = std::hint::black_box(k.sums[usize::from(t != 1.0) * 2 + usize::from(n > l)]);
    let inv = if t == 1.0 { 1.0 } else { 1.0 / t };
    let mut exps = std::mem::MaybeUninit::<[f32; 2 * EXPS_LEN]>::uninit();
    // SAFETY: the first `groups l <= count` rows of `n` elements from `src`, and as many values
    // at `maxima` and `totals` (# Safety), at the moderate temperature `t`, with `2 <= n <=
    // packed_max`, UNIT exactly when `t == 1` and LONG exactly when `n > l`; `exps` is the
    // scratch buffer of `2 EXPS_LEN`, local.
    unsafe {
        kernel(
            src,
            inv,
            &rows,
            groups,
            maxima,
            totals,
            exps.as_mut_ptr().cast::<f32>(),
        )
    };
    groups * l
}

/// The group's rows whose temperature the vector kernels take, their reciprocal temperatures
/// (1 at temperature 1) and temperatures; the others (bit `j` of the mask) go alone through the
/// level's plain rows kernel, as its portable fallback requires.
///
/// # Safety
/// `b`'s temperatures are readable.
#[inline(always)]
unsafe fn group_temperatures<S: Simd>(b: &RowBatch<f32>) -> (u32, [f64; GROUP], [f64; GROUP]) {
    let (mut alone, mut inv, mut ts) = (0u32, [1.0f64; GROUP], [1.0f64; GROUP]);
    for j in 0..b.count {
        // SAFETY: `j < count` (# Safety).
        let t = unsafe { b.temp(j) };
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
pub(crate) unsafe fn short<S: Simd, const V: usize>(
    s: S,
    general: RowsKernel,
    op: Op,
    b: RowBatch<f32>,
) {
    let (l, n, count) = (S::F32_LANES, b.n, b.count);
    let last = n - (V - 1) * l;
    debug_assert!(count <= l && (1..=l).contains(&last));
    // SAFETY: the `count` temperatures are readable (# Safety).
    let (alone, inv, ts) = unsafe { group_temperatures::<S>(&b) };
    let ninf = s.splat_f32(f32::NEG_INFINITY);
    let mut xs = [[ninf; V]; GROUP];
    let mut lanes = [ninf; GROUP];
    for j in (0..count).filter(|j| alone & (1 << j) == 0) {
        for (q, x) in xs[j].iter_mut().enumerate() {
            // SAFETY: `j < count`: row `j` of `src`, `n` readable elements: vector `q < V - 1`
            // whole, the last one's `last` lanes.
            *x = unsafe {
                let p = b.row(j).0.add(q * l);
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
    let mut es = [[ninf; V]; GROUP];
    let mut halves = [s.splat_f64(0.0); GROUP];
    for j in (0..count).filter(|j| alone & (1 << j) == 0) {
        let c = ArgF32::new(s, ms[j], inv[j]);
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
    let sums = GroupSums::new(s, op, &halves);
    let (totals, factors) = (sums.totals(s), sums.factors(s));
    let f32s = lanes_of(s, sums.factors_f32(s));
    for j in 0..count {
        // `j < count`: row `j` of `src` and `dst` (# Safety).
        let (sp, d) = b.row(j);
        if alone & (1 << j) != 0 {
            // SAFETY: row `j` alone, as `general` (`Kernels::rows`) requires.
            unsafe { general(op, RowBatch::adjacent(sp, d, n, 1, &ts[j]), Store::Cached) };
            continue;
        }
        if totals[j].is_nan() {
            // SAFETY: row `j` of `dst`, `n` writable elements.
            unsafe { fill_nan(d, n) };
            continue;
        }
        let c = ArgF32::new(s, ms[j], inv[j]);
        let (f, f64s) = (s.splat_f32(f32s[j]), s.splat_f64(factors[j]));
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

/// Log-softmax of up to `F32_LANES` rows of `short_max < n <= medium_max` elements: the rows'
/// sums batched as in [`short`], each row read three times (maximum, exp sum, write) from L1.
/// It takes the rows the packed kernel does not: strided rows, per-row temperatures, a call's
/// last rows, and rows longer than four vectors.
///
/// # Safety
/// As [`Kernels::rows`](crate::kernels::Kernels), with `count <= F32_LANES` and `general` the
/// level's plain rows kernel.
#[inline(always)]
pub(crate) unsafe fn medium<S: Simd>(s: S, general: RowsKernel, b: RowBatch<f32>) {
    let (l, n, count) = (S::F32_LANES, b.n, b.count);
    debug_assert!(count <= l && n <= medium_max::<S>());
    // SAFETY: the `count` temperatures are readable (# Safety).
    let (alone, inv, ts) = unsafe { group_temperatures::<S>(&b) };
    // Called with `j < count`: row `j` of `src` and `dst` (# Safety).
    let row = |j: usize| b.row(j);
    let mut lanes = [s.splat_f32(f32::NEG_INFINITY); GROUP];
    for j in (0..count).filter(|j| alone & (1 << j) == 0) {
        // SAFETY: row `j` of `src`, `n` readable elements.
        lanes[j] = unsafe { lane_max(s, row(j).0, n, n / S::F32_LANES) };
    }
    let ms = lanes_of(s, s.max_of_each(&lanes));
    let mut halves = [s.splat_f64(0.0); GROUP];
    for j in (0..count).filter(|j| alone & (1 << j) == 0) {
        let (c, p) = (ArgF32::new(s, ms[j], inv[j]), row(j).0);
        // Row `j` of `src`: `n` readable elements.
        halves[j] = if ts[j] == 1.0 {
            row_sum_halves(s, n, n / S::F32_LANES, &ExpsOf::<S, true> { s, p, n, c })
        } else {
            row_sum_halves(s, n, n / S::F32_LANES, &ExpsOf::<S, false> { s, p, n, c })
        };
    }
    let sums = GroupSums::new(s, Op::LogSoftmax, &halves);
    let (totals, factors) = (sums.totals(s), sums.factors(s));
    for j in 0..count {
        let (sp, d) = row(j);
        if alone & (1 << j) != 0 {
            let op = Op::LogSoftmax;
            // SAFETY: row `j` alone, as `general` (`Kernels::rows`) requires.
            unsafe { general(op, RowBatch::adjacent(sp, d, n, 1, &ts[j]), Store::Cached) };
            continue;
        }
        if totals[j].is_nan() {
            // SAFETY: row `j` of `dst`, `n` writable elements.
            unsafe { fill_nan(d, n) };
            continue;
        }
        let c = ArgF32::new(s, ms[j], inv[j]);
        // SAFETY: row `j` of `src` (readable) and `dst` (writable), the same or disjoint.
        unsafe {
            if ts[j] == 1.0 {
                write_log_row::<S, true>(s, c, factors[j], sp, d, n)
            } else {
                write_log_row::<S, false>(s, c, factors[j], sp, d, n)
            }
        }
    }
}

/// `dst = (src - m) / t - ls` over a row of `n` elements ([`ArgF32::log`], as the block
/// kernels' `write_log` computes each element), in whole vectors and a tail, without
/// `write_log`'s alignment and streaming steps (which cost 10-20% on rows this short).
///
/// # Safety
/// `src` valid for reads and `dst` for writes of `n` elements, the same or disjoint.
#[inline(always)]
unsafe fn write_log_row<S: Simd, const UNIT: bool>(
    s: S,
    c: ArgF32<S>,
    ls: f64,
    src: *const f32,
    dst: *mut f32,
    n: usize,
) {
    let (l, ls32, ls64) = (S::F32_LANES, s.splat_f32(ls as f32), s.splat_f64(ls));
    let (full, r) = (n / l, n % l);
    for i in 0..full {
        // SAFETY: `i < full`: `l` elements from `l i`, within the `n` (# Safety).
        unsafe {
            let y = c.log::<UNIT>(s, ls32, ls64, s.load_f32(src.add(l * i)));
            s.store_f32(dst.add(l * i), y);
        }
    }
    if r > 0 {
        // SAFETY: the last `r < l` elements (# Safety).
        unsafe {
            let x = s.load_f32_part(src.add(l * full), r, f32::NEG_INFINITY);
            s.store_f32_part(dst.add(l * full), r, c.log::<UNIT>(s, ls32, ls64, x));
        }
    }
}

/// The many-rows kernel of a vector level ([`Kernels::rows`](crate::kernels::Kernels)): rows of
/// up to `packed_max` elements stored one after the other at one temperature go `F32_LANES` at a time
/// through [`packed`]; the rest, up to two vectors, through [`short`]; log-softmax rows up to
/// `medium_max` elements with cached output through [`medium`]; other rows through
/// [`rows_long`]. `general` is the level's plain rows kernel.
///
/// # Safety
/// As [`Kernels::rows`](crate::kernels::Kernels).
#[inline(always)]
pub(crate) unsafe fn rows<S: Simd>(
    s: S,
    general: RowsKernel,
    k: &GroupKernels,
    op: Op,
    b: RowBatch<f32>,
    store: Store,
) {
    let n = b.n;
    if n == 0 {
        return;
    }
    // SAFETY: # Safety is `packed_groups`'.
    let first = unsafe { packed_groups::<S>(k, op, b) };
    // `first <= count`: the rows the packed kernel left.
    let b = b.rows(first, b.count);
    let l = S::F32_LANES;
    let long = n > short_max::<S>()
        && !(n <= medium_max::<S>() && op == Op::LogSoftmax && store == Store::Cached);
    if !long {
        let (short1, short2) = std::hint::black_box((k.short[0], k.short[1]));
        let medium = std::hint::black_box(k.medium);
        for first in (0..b.count).step_by(l) {
            let g = b.rows(first, l);
            // SAFETY: `g` is up to `l` consecutive rows among the `count` from row `first`,
            // rows of # Safety, as `short` and `medium` require (with `n` in their ranges);
            // `general` is the level's plain rows kernel.
            unsafe {
                if n <= l {
                    short1(general, op, g)
                } else if n <= short_max::<S>() {
                    short2(general, op, g)
                } else {
                    medium(general, g)
                }
            }
        }
        return;
    }
    // SAFETY: the `count` rows from row `first` are rows of # Safety.
    unsafe { rows_long(s, general, op, b, store) }
}
