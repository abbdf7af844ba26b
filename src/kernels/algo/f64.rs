//! The `f64` kernels of the vector levels, over [`Simd`].
//!
//! The exp argument `(x - m) / t` is a double word: `x - m` exactly (TwoSum), times `1 / t`
//! split in two and carried to about 2^-100 relative. Exps are added four vectors at a time,
//! then into lane sums with TwoSum compensation; the lanes are reduced in the level's order.
//! Temperatures whose reciprocal is not a normal number go to the scalar kernels.

use super::elementwise::{map, scale_to, LaneMap};
use crate::kernels::isa::Simd;
use crate::kernels::{scalar, EntropySums, RowBatch};
use crate::op::Op;

/// The exp argument's constants for a row: the maximum `m` and `1 / t = inv + inv_lo`.
#[derive(Clone, Copy)]
pub(crate) struct ArgF64<S: Simd> {
    m_scalar: f64,
    m: S::F64,
    neg_m: S::F64,
    inv: S::F64,
    inv_lo: S::F64,
}

impl<S: Simd> ArgF64<S> {
    #[inline(always)]
    pub(crate) fn new(s: S, m: f64, t: f64) -> ArgF64<S> {
        let inv = 1.0 / t;
        // 1/t = inv + inv_lo to about 2^-106 relative.
        let inv_lo = (-t).mul_add(inv, 1.0) / t;
        ArgF64 {
            m_scalar: m,
            m: s.splat_f64(m),
            neg_m: s.splat_f64(-m),
            inv: s.splat_f64(inv),
            inv_lo: s.splat_f64(inv_lo),
        }
    }

    /// `(x - m) / t` as a double word `(hi, lo)` (`t == 1` when UNIT).
    #[inline(always)]
    pub(crate) fn of<const UNIT: bool>(self, s: S, x: S::F64) -> (S::F64, S::F64) {
        let d = s.sub_f64(x, self.m);
        let bb = s.sub_f64(d, x);
        let lo = s.add_f64(s.sub_f64(x, s.sub_f64(d, bb)), s.sub_f64(self.neg_m, bb));
        // Near the overflow threshold (|x - m| close to f64::MAX) TwoSum's intermediates
        // overflow and lo is NaN; so is l when d / t overflows. d alone is then the argument
        // (no NaN may reach a result for finite input, contract S5).
        let lo = finite_or_zero(s, lo);
        if UNIT {
            (d, lo)
        } else {
            let h = s.mul_f64(d, self.inv);
            let l = s.add_f64(
                s.mul_sub_f64(d, self.inv, h),
                s.mul_add_f64(d, self.inv_lo, s.mul_f64(lo, self.inv)),
            );
            (h, finite_or_zero(s, l))
        }
    }

    /// exp((x - m) / t).
    #[inline(always)]
    fn exp<const UNIT: bool>(self, s: S, x: S::F64) -> S::F64 {
        let (h, l) = self.of::<UNIT>(s, x);
        s.exp_f64(h, l)
    }

    /// (x - m) / t - log_sum, `ls` holding `log_sum`.
    #[inline(always)]
    fn log<const UNIT: bool>(self, s: S, ls: S::F64, x: S::F64) -> S::F64 {
        let (h, l) = self.of::<UNIT>(s, x);
        // The low word is NaN when the high one is -inf: drop it there.
        let l = s.keep_f64(s.gt_f64(h, s.splat_f64(f64::NEG_INFINITY)), l);
        s.add_f64(s.sub_f64(h, ls), l)
    }
}

/// `v` where finite, 0 where infinite or NaN.
#[inline(always)]
fn finite_or_zero<S: Simd>(s: S, v: S::F64) -> S::F64 {
    s.keep_f64(s.eq_f64(s.sub_f64(v, v), s.splat_f64(0.0)), v)
}

/// True when `t` and `1/t` are normal numbers, so the vector path may multiply by `1/t`.
#[inline(always)]
fn vector_temperature(t: f64) -> bool {
    (1.0 / t).is_normal() && t.is_normal()
}

/// Adds `v` to the compensated lane sums (`sum`, `comp`) (TwoSum).
#[inline(always)]
fn two_sum_add<S: Simd>(s: S, sum: &mut S::F64, comp: &mut S::F64, v: S::F64) {
    let t = s.add_f64(*sum, v);
    let bp = s.sub_f64(t, *sum);
    let err = s.add_f64(s.sub_f64(*sum, s.sub_f64(t, bp)), s.sub_f64(v, bp));
    *comp = s.add_f64(*comp, err);
    *sum = t;
}

/// Σ exp(arg(x)), storing the exps when STORE.
///
/// # Safety
/// `src` valid for reads of `n` elements; with STORE, `dst` valid for writes of `n` (the same
/// as `src` or disjoint), else unused (it may be null).
#[inline(always)]
unsafe fn exp_sum<S: Simd, const UNIT: bool, const STORE: bool>(
    s: S,
    src: *const f64,
    dst: *mut f64,
    n: usize,
    c: ArgF64<S>,
) -> f64 {
    let l = S::F64_LANES;
    let mut sum = s.splat_f64(0.0);
    let mut comp = s.splat_f64(0.0);
    let mut i = 0;
    while i + 4 * l <= n {
        // SAFETY: `i + 4 l <= n`: the four vectors from `src.add(i)` are among the `n`
        // readable elements and, with STORE, those from `dst.add(i)` among the `n` writable.
        unsafe {
            let e0 = c.exp::<UNIT>(s, s.load_f64(src.add(i)));
            let e1 = c.exp::<UNIT>(s, s.load_f64(src.add(i + l)));
            let e2 = c.exp::<UNIT>(s, s.load_f64(src.add(i + 2 * l)));
            let e3 = c.exp::<UNIT>(s, s.load_f64(src.add(i + 3 * l)));
            if STORE {
                s.store_f64(dst.add(i), e0);
                s.store_f64(dst.add(i + l), e1);
                s.store_f64(dst.add(i + 2 * l), e2);
                s.store_f64(dst.add(i + 3 * l), e3);
            }
            let v = s.add_f64(s.add_f64(e0, e1), s.add_f64(e2, e3));
            two_sum_add(s, &mut sum, &mut comp, v);
        }
        i += 4 * l;
    }
    while i + l <= n {
        // SAFETY: `i + l <= n`: the vector at `src.add(i)` is readable and, with STORE, the
        // one at `dst.add(i)` writable.
        unsafe {
            let e = c.exp::<UNIT>(s, s.load_f64(src.add(i)));
            if STORE {
                s.store_f64(dst.add(i), e);
            }
            two_sum_add(s, &mut sum, &mut comp, e);
        }
        i += l;
    }
    if i < n {
        // SAFETY: `i < n < i + l` (the loop above stopped): the last `n - i < l` elements of
        // `src` are readable and, with STORE, of `dst` writable. Lanes past the end read the
        // maximum and are zeroed after the exp (what exp(-inf) gives, without AVX-512's slow
        // underflowing scale, which made rows shorter than a few vectors several times
        // slower).
        unsafe {
            let x = s.load_f64_part(src.add(i), n - i, c.m_scalar);
            let e = s.keep_f64(s.first_lanes_m64(n - i), c.exp::<UNIT>(s, x));
            if STORE {
                s.store_f64_part(dst.add(i), n - i, e);
            }
            two_sum_add(s, &mut sum, &mut comp, e);
        }
    }
    s.reduce_add_f64(sum) + s.reduce_add_f64(comp)
}

/// Lane sums of [`entropy_sums`]: the exps (compensated as [`exp_sum`]'s), the products
/// `e (x - m)` (`x - m` rounded and clamped to `f64::MIN`, so that a `-inf` gap meets only a
/// zero weight) and the finite lanes.
struct EntropyLanes<S: Simd> {
    sum: S::F64,
    comp: S::F64,
    dot: S::F64,
    finite: S::F64,
}

impl<S: Simd> EntropyLanes<S> {
    /// Adds the products and finite lanes of vector `v` (only its lanes `part` flags, when
    /// given) and returns its exps.
    #[inline(always)]
    fn terms(&mut self, s: S, c: ArgF64<S>, v: S::F64, part: Option<S::M64>) -> S::F64 {
        let floor = s.splat_f64(f64::MIN);
        let (d, lo) = c.of::<true>(s, v);
        let mut e = s.exp_f64(d, lo);
        let mut f = s.clear_f64(s.lt_f64(v, floor), s.splat_f64(1.0));
        if let Some(keep) = part {
            (e, f) = (s.keep_f64(keep, e), s.keep_f64(keep, f));
        }
        self.dot = s.mul_add_f64(e, s.max_f64(floor, d), self.dot);
        self.finite = s.add_f64(self.finite, f);
        e
    }
}

/// [`EntropySums`] of `x` with maximum `m`: the exps and their sum as [`sum_exp`] at
/// temperature 1 (the same bits), the products and finite lanes in plain lane sums.
#[inline(always)]
pub(crate) fn entropy_sums<S: Simd>(s: S, x: &[f64], m: f64) -> EntropySums {
    let (l, n, p) = (S::F64_LANES, x.len(), x.as_ptr());
    let c = ArgF64::new(s, m, 1.0);
    let zero = s.splat_f64(0.0);
    let mut a = EntropyLanes::<S> {
        sum: zero,
        comp: zero,
        dot: zero,
        finite: zero,
    };
    let mut i = 0;
    while i + 4 * l <= n {
        // SAFETY: `i + 4 l <= n`: the four vectors from `p.add(i)` are in `x`.
        let (v0, v1, v2, v3) = unsafe {
            (
                s.load_f64(p.add(i)),
                s.load_f64(p.add(i + l)),
                s.load_f64(p.add(i + 2 * l)),
                s.load_f64(p.add(i + 3 * l)),
            )
        };
        let e0 = a.terms(s, c, v0, None);
        let e1 = a.terms(s, c, v1, None);
        let e2 = a.terms(s, c, v2, None);
        let e3 = a.terms(s, c, v3, None);
        let v = s.add_f64(s.add_f64(e0, e1), s.add_f64(e2, e3));
        two_sum_add(s, &mut a.sum, &mut a.comp, v);
        i += 4 * l;
    }
    while i + l <= n {
        // SAFETY: `i + l <= n`: the vector at `p.add(i)` is in `x`.
        let e = a.terms(s, c, unsafe { s.load_f64(p.add(i)) }, None);
        two_sum_add(s, &mut a.sum, &mut a.comp, e);
        i += l;
    }
    if i < n {
        // SAFETY: `i < n < i + l`: the last `n - i < l` elements are in `x`. Lanes past the
        // end read the maximum and are left out.
        let v = unsafe { s.load_f64_part(p.add(i), n - i, m) };
        let e = a.terms(s, c, v, Some(s.first_lanes_m64(n - i)));
        two_sum_add(s, &mut a.sum, &mut a.comp, e);
    }
    EntropySums {
        total: s.reduce_add_f64(a.sum) + s.reduce_add_f64(a.comp),
        dot: s.reduce_add_f64(a.dot),
        finite: s.reduce_add_f64(a.finite) as usize,
    }
}

/// `exp((x - m) / t) * factor`.
#[derive(Clone, Copy)]
struct ExpTimes<S: Simd, const UNIT: bool> {
    s: S,
    c: ArgF64<S>,
    factor: S::F64,
}

impl<S: Simd, const UNIT: bool> LaneMap<S::F64> for ExpTimes<S, UNIT> {
    #[inline(always)]
    fn apply(&self, x: S::F64) -> S::F64 {
        self.s.mul_f64(self.c.exp::<UNIT>(self.s, x), self.factor)
    }
}

/// `(x - m) / t - log_sum`, `ls` holding `log_sum`.
#[derive(Clone, Copy)]
struct LogMinus<S: Simd, const UNIT: bool> {
    s: S,
    c: ArgF64<S>,
    ls: S::F64,
}

impl<S: Simd, const UNIT: bool> LaneMap<S::F64> for LogMinus<S, UNIT> {
    #[inline(always)]
    fn apply(&self, x: S::F64) -> S::F64 {
        self.c.log::<UNIT>(self.s, self.ls, x)
    }
}

/// `dst = exp((src - m) / t)`, returning the sum `sum_exp` gives.
///
/// # Safety
/// `src` valid for reads and `dst` for writes of `n` (same pointer or disjoint).
#[inline(always)]
pub(crate) unsafe fn exp_store_sum<S: Simd>(
    s: S,
    src: *const f64,
    dst: *mut f64,
    n: usize,
    m: f64,
    t: f64,
) -> f64 {
    // SAFETY: this function's contract is what `exp_sum` with STORE and
    // `scalar::exp_store_sum` require.
    unsafe {
        if t == 1.0 {
            exp_sum::<S, true, true>(s, src, dst, n, ArgF64::new(s, m, 1.0))
        } else if vector_temperature(t) {
            exp_sum::<S, false, true>(s, src, dst, n, ArgF64::new(s, m, t))
        } else {
            scalar::exp_store_sum(src, dst, n, m, t)
        }
    }
}

/// Σ exp((x - m) / t).
#[inline(always)]
pub(crate) fn sum_exp<S: Simd>(s: S, x: &[f64], m: f64, t: f64) -> f64 {
    let (p, n, q) = (x.as_ptr(), x.len(), std::ptr::null_mut());
    if t == 1.0 {
        // SAFETY: `p` is valid for reads of the `n` elements of `x`; without STORE `exp_sum`
        // does not touch `q` (null).
        unsafe { exp_sum::<S, true, false>(s, p, q, n, ArgF64::new(s, m, 1.0)) }
    } else if vector_temperature(t) {
        // SAFETY: as above.
        unsafe { exp_sum::<S, false, false>(s, p, q, n, ArgF64::new(s, m, t)) }
    } else {
        scalar::sum_exp(x, m, t)
    }
}

/// `dst = exp((src - m) / t) * factor`: the bits `exp_store_sum` then `scale_to` give.
///
/// # Safety
/// `src` valid for reads and `dst` for writes of `n` (same pointer or disjoint).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn exp_scale<S: Simd>(
    s: S,
    src: *const f64,
    dst: *mut f64,
    n: usize,
    m: f64,
    t: f64,
    factor: f64,
    stream: bool,
) {
    let f = s.splat_f64(factor);
    // SAFETY: this function's contract is what `map` and `scalar::exp_store_sum` require;
    // `scale_to` then reads and writes the `n` elements of `dst` just written.
    unsafe {
        if t == 1.0 {
            let c = ArgF64::new(s, m, 1.0);
            map(
                s,
                src,
                dst,
                n,
                stream,
                ExpTimes::<S, true> { s, c, factor: f },
            )
        } else if vector_temperature(t) {
            let c = ArgF64::new(s, m, t);
            map(
                s,
                src,
                dst,
                n,
                stream,
                ExpTimes::<S, false> { s, c, factor: f },
            )
        } else {
            scalar::exp_store_sum(src, dst, n, m, t);
            scale_to(s, dst, dst, n, factor, false)
        }
    }
}

/// `dst = (src - m) / t - log_sum`.
///
/// # Safety
/// `src` valid for reads and `dst` for writes of `n` (same pointer or disjoint).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn write_log_softmax<S: Simd>(
    s: S,
    src: *const f64,
    dst: *mut f64,
    n: usize,
    m: f64,
    t: f64,
    log_sum: f64,
    stream: bool,
) {
    let ls = s.splat_f64(log_sum);
    // SAFETY: this function's contract is what `map` and `scalar::write_log_softmax` require.
    unsafe {
        if t == 1.0 {
            let c = ArgF64::new(s, m, 1.0);
            map(s, src, dst, n, stream, LogMinus::<S, true> { s, c, ls })
        } else if vector_temperature(t) {
            let c = ArgF64::new(s, m, t);
            map(s, src, dst, n, stream, LogMinus::<S, false> { s, c, ls })
        } else {
            scalar::write_log_softmax(src, dst, n, m, t, log_sum, false)
        }
    }
}

/// The most rows a group of [`short_rows`] holds: the widest level's `F64_LANES`.
const MAX_F64_LANES: usize = 8;

/// The groups of [`short_rows`] whose log-sums are taken together (vectorised `ln`).
const LN_GROUPS: usize = 32;

/// Softmax or log-softmax of rows of `n <= F64_LANES` elements, `F64_LANES` rows at a time
/// laid across the lanes (lane `q` of vector `j`: element `j` of row `q`), so that short rows
/// (`(1M, 2)` along either axis order) share each vector operation instead of taking one
/// each. Each row gets the bits of the row kernel (`max`, then `exp_store_sum` and `scale`,
/// or `sum_exp`, `f64::ln` and `write_log_softmax`): the same lane-wise operations on the same
/// values, and its sum added in the order of `reduce_add_f64` (halving), where the zeros of
/// the lanes past a row's end change nothing; the logarithms of [`LN_GROUPS`] groups' sums are
/// taken together by [`crate::ln::ln_in_place`] (the bits of `f64::ln`). Groups whose
/// temperatures do not all take one vector path (1, or a vector temperature other than 1),
/// and the rows after the last whole group, go to `each` (the level's row-by-row kernel).
///
/// # Safety
/// As [`Kernels::rows`](crate::kernels::Kernels) for `b`; `each` may be called with any part
/// of `b`.
#[inline(always)]
pub(crate) unsafe fn short_rows<S: Simd>(
    s: S,
    op: Op,
    b: RowBatch<f64>,
    each: impl Fn(RowBatch<f64>),
) {
    let l = S::F64_LANES;
    if b.n > l || b.n == 0 || b.count < l || l > MAX_F64_LANES {
        return each(b);
    }
    let whole = b.count / l * l;
    let mut sums = [0.0f64; LN_GROUPS * MAX_F64_LANES];
    for first in (0..whole).step_by(LN_GROUPS * l) {
        let groups = (whole - first) / l;
        let groups = groups.min(LN_GROUPS);
        // Which vector path each group takes: Some(UNIT), or None (row by row).
        let mut unit = [None; LN_GROUPS];
        for (g, path) in unit.iter_mut().enumerate().take(groups) {
            let r0 = first + g * l;
            let mut t = [1.0f64; MAX_F64_LANES];
            for (q, slot) in t.iter_mut().enumerate().take(l) {
                // SAFETY: `r0 + q < count` (# Safety).
                *slot = unsafe { b.temp(r0 + q) };
            }
            let t = &t[..l];
            *path = if t.iter().all(|&t| t == 1.0) {
                Some(true)
            } else if t.iter().all(|&t| t != 1.0 && vector_temperature(t)) {
                Some(false)
            } else {
                None
            };
            let sums = &mut sums[g * l..(g + 1) * l];
            // SAFETY: rows `r0..r0 + l` are rows of `b` (# Safety).
            unsafe {
                match *path {
                    Some(true) => short_group::<S, true>(s, op, &b, r0, sums),
                    Some(false) => short_group::<S, false>(s, op, &b, r0, sums),
                    None => each(b.rows(r0, l)),
                }
            }
        }
        if op == Op::LogSoftmax {
            crate::ln::ln_in_place(&mut sums[..groups * l]);
            for (g, path) in unit.iter().enumerate().take(groups) {
                let (r0, ls) = (first + g * l, &sums[g * l..(g + 1) * l]);
                // SAFETY: as above.
                unsafe {
                    match *path {
                        Some(true) => write_short_logs::<S, true>(s, &b, r0, ls),
                        Some(false) => write_short_logs::<S, false>(s, &b, r0, ls),
                        None => {}
                    }
                }
            }
        }
    }
    if whole < b.count {
        each(b.rows(whole, b.count - whole));
    }
}

/// Rows `r0..r0 + F64_LANES` of `b` laid across the lanes (every row read before any is
/// written, so in place works): `x[j]` lane `q` is element `j` of row `r0 + q` (0 past `n`),
/// and the row maxima; `bad[q]` for contract S6's rows (NaN or +inf anywhere, or no entry
/// above -inf: the row kernel's test).
///
/// # Safety
/// Rows `r0..r0 + F64_LANES` are rows of `b`, readable as [`short_rows`] says.
#[inline(always)]
unsafe fn short_rows_across<S: Simd>(
    s: S,
    b: &RowBatch<f64>,
    r0: usize,
) -> ([S::F64; MAX_F64_LANES], S::F64, [bool; MAX_F64_LANES]) {
    let (l, n) = (S::F64_LANES, b.n);
    let mut xs = [[0.0f64; MAX_F64_LANES]; MAX_F64_LANES];
    let mut bad = [false; MAX_F64_LANES];
    for q in 0..l {
        let src = b.row(r0 + q).0;
        for (j, col) in xs.iter_mut().enumerate().take(n) {
            // SAFETY: `j < n`: element `j` of row `r0 + q` is readable (# Safety).
            col[q] = unsafe { *src.add(j) };
            bad[q] |= col[q].is_nan();
        }
    }
    // Loops, not `array::from_fn`, here and below: its closure is not inlined into the
    // caller's `target_feature` function, and the intrinsics became calls.
    let mut x = [s.splat_f64(0.0); MAX_F64_LANES];
    for (v, col) in x.iter_mut().zip(&xs).take(n) {
        // SAFETY: `col` holds `MAX_F64_LANES >= F64_LANES` elements.
        *v = unsafe { s.load_f64(col.as_ptr()) };
    }
    let mut m = x[0];
    for &v in &x[1..n] {
        m = s.max_f64(m, v);
    }
    let mut ms = [0.0f64; MAX_F64_LANES];
    // SAFETY: `ms` holds `F64_LANES` elements.
    unsafe { s.store_f64(ms.as_mut_ptr(), m) };
    for q in 0..l {
        bad[q] |= ms[q].is_infinite();
    }
    (x, m, bad)
}

/// [`ArgF64::new`] lane by lane: maxima `m`, the temperatures of rows `r0..` of `b` (all 1
/// when UNIT).
///
/// # Safety
/// Rows `r0..r0 + F64_LANES` are rows of `b`.
#[inline(always)]
unsafe fn short_rows_arg<S: Simd, const UNIT: bool>(
    s: S,
    b: &RowBatch<f64>,
    r0: usize,
    m: S::F64,
) -> ArgF64<S> {
    let (mut inv, mut inv_lo) = ([1.0f64; MAX_F64_LANES], [0.0f64; MAX_F64_LANES]);
    if !UNIT {
        for q in 0..S::F64_LANES {
            // SAFETY: `r0 + q < count` (# Safety).
            let t = unsafe { b.temp(r0 + q) };
            inv[q] = 1.0 / t;
            inv_lo[q] = (-t).mul_add(inv[q], 1.0) / t;
        }
    }
    // SAFETY: `inv` and `inv_lo` hold `F64_LANES` elements.
    unsafe {
        ArgF64 {
            m_scalar: 0.0,
            m,
            neg_m: s.mul_f64(m, s.splat_f64(-1.0)),
            inv: s.load_f64(inv.as_ptr()),
            inv_lo: s.load_f64(inv_lo.as_ptr()),
        }
    }
}

/// Element `j` of rows `r0..r0 + F64_LANES` of `b` from lane `q` of `out[j]` (NaN for the
/// `bad` rows).
///
/// # Safety
/// Rows `r0..r0 + F64_LANES` are rows of `b`, writable as [`short_rows`] says.
#[inline(always)]
unsafe fn short_rows_write<S: Simd>(
    s: S,
    b: &RowBatch<f64>,
    r0: usize,
    out: &[S::F64; MAX_F64_LANES],
    bad: &[bool; MAX_F64_LANES],
) {
    let (l, n) = (S::F64_LANES, b.n);
    let mut os = [[0.0f64; MAX_F64_LANES]; MAX_F64_LANES];
    for j in 0..n {
        // SAFETY: `os[j]` holds `F64_LANES` elements.
        unsafe { s.store_f64(os[j].as_mut_ptr(), out[j]) };
    }
    for q in 0..l {
        let dst = b.row(r0 + q).1;
        for (j, col) in os.iter().enumerate().take(n) {
            let v = if bad[q] { f64::NAN } else { col[q] };
            // SAFETY: `j < n`: element `j` of row `r0 + q` is writable (# Safety).
            unsafe { *dst.add(j) = v };
        }
    }
}

/// The exps of the `n` vectors `x` of rows laid across the lanes (0 past `n`) and the rows'
/// sums, added in the order of `reduce_add_f64` (halving), as the row kernels' `exp_sum` adds
/// a row of at most one vector: the zeros of the lanes past a row's end change nothing.
#[inline(always)]
fn short_rows_exps<S: Simd, const UNIT: bool>(
    s: S,
    x: &[S::F64; MAX_F64_LANES],
    c: ArgF64<S>,
    n: usize,
) -> ([S::F64; MAX_F64_LANES], S::F64) {
    let mut e = [s.splat_f64(0.0); MAX_F64_LANES];
    for (v, &x) in e.iter_mut().zip(x).take(n) {
        *v = c.exp::<UNIT>(s, x);
    }
    let mut acc = e;
    let mut half = S::F64_LANES / 2;
    while half >= 1 {
        for i in 0..half.min(n) {
            if i + half < n {
                acc[i] = s.add_f64(acc[i], acc[i + half]);
            }
        }
        half /= 2;
    }
    (e, acc[0])
}

/// [`row_sums`](crate::kernels::row_sums) of the leading rows of `count` rows of `n` elements
/// stored back to back at `src`, at temperature `t`, `F64_LANES` rows at a time laid across
/// the lanes as [`short_rows`] lays them: each row's maximum and exp-sum (NaN for contract
/// S6's rows) with the bits of `max` and `sum_exp`. Returns how many rows it took: the whole
/// groups, or none when `n > F64_LANES` or `t` is not a vector temperature.
///
/// # Safety
/// `src` holds `count` rows of `n` elements; `maxima` and `totals` are writable for `count`.
#[inline(always)]
pub(crate) unsafe fn short_sums<S: Simd>(
    s: S,
    src: *const f64,
    n: usize,
    count: usize,
    t: f64,
    maxima: *mut f64,
    totals: *mut f64,
) -> usize {
    let l = S::F64_LANES;
    if n > l || n == 0 || l > MAX_F64_LANES || !(t == 1.0 || vector_temperature(t)) {
        return 0;
    }
    let b = RowBatch::adjacent(src, std::ptr::null_mut(), n, count, &t);
    let whole = count / l * l;
    for r0 in (0..whole).step_by(l) {
        // SAFETY: rows `r0..r0 + l` are among the `count` readable rows (# Safety); the batch's
        // one temperature, `t`, is read with step 0.
        let (x, m, bad) = unsafe { short_rows_across(s, &b, r0) };
        let total = if t == 1.0 {
            // SAFETY: as above.
            let c = unsafe { short_rows_arg::<S, true>(s, &b, r0, m) };
            short_rows_exps::<S, true>(s, &x, c, n).1
        } else {
            // SAFETY: as above.
            let c = unsafe { short_rows_arg::<S, false>(s, &b, r0, m) };
            short_rows_exps::<S, false>(s, &x, c, n).1
        };
        let nan = s.splat_f64(f64::NAN);
        let mut bad_lanes = [0.0f64; MAX_F64_LANES];
        for (q, v) in bad_lanes.iter_mut().enumerate().take(l) {
            *v = if bad[q] { 1.0 } else { 0.0 };
        }
        // SAFETY: `bad_lanes` holds `F64_LANES` elements; `maxima` and `totals` are writable
        // at rows `r0..r0 + l` (# Safety).
        unsafe {
            let bad = s.eq_f64(s.load_f64(bad_lanes.as_ptr()), s.splat_f64(1.0));
            s.store_f64(totals.add(r0), s.select_f64(bad, nan, total));
            s.store_f64(maxima.add(r0), m);
        }
    }
    whole
}

/// Rows `r0..r0 + F64_LANES` of `b` at temperatures all 1 (UNIT) or none 1 and each a vector
/// temperature: their exp-sums into `sums` and, for softmax, their probabilities written.
///
/// # Safety
/// As [`short_rows`], and the rows are rows of `b`.
#[inline(always)]
unsafe fn short_group<S: Simd, const UNIT: bool>(
    s: S,
    op: Op,
    b: &RowBatch<f64>,
    r0: usize,
    sums: &mut [f64],
) {
    let (l, n) = (S::F64_LANES, b.n);
    // SAFETY: the rows are rows of `b` (# Safety).
    let (x, m, bad) = unsafe { short_rows_across(s, b, r0) };
    // SAFETY: as above.
    let c = unsafe { short_rows_arg::<S, UNIT>(s, b, r0, m) };
    let (e, total) = short_rows_exps::<S, UNIT>(s, &x, c, n);
    debug_assert!(sums.len() >= l);
    // SAFETY: `sums` holds `F64_LANES` elements.
    unsafe { s.store_f64(sums.as_mut_ptr(), total) };
    if op == Op::Softmax {
        let factor = s.div_f64(s.splat_f64(1.0), total);
        let mut out = e;
        for v in out.iter_mut().take(n) {
            *v = s.mul_f64(*v, factor);
        }
        // SAFETY: as above.
        unsafe { short_rows_write(s, b, r0, &out, &bad) };
    }
}

/// The log-probabilities of rows `r0..r0 + F64_LANES` of `b` from their exp-sums' logarithms
/// `ls` (of [`short_group`] with the same UNIT).
///
/// # Safety
/// As [`short_group`].
#[inline(always)]
unsafe fn write_short_logs<S: Simd, const UNIT: bool>(
    s: S,
    b: &RowBatch<f64>,
    r0: usize,
    ls: &[f64],
) {
    // SAFETY: the rows are rows of `b` (# Safety).
    let (x, m, bad) = unsafe { short_rows_across(s, b, r0) };
    // SAFETY: as above.
    let c = unsafe { short_rows_arg::<S, UNIT>(s, b, r0, m) };
    debug_assert!(ls.len() >= S::F64_LANES);
    // SAFETY: `ls` holds `F64_LANES` elements.
    let ls = unsafe { s.load_f64(ls.as_ptr()) };
    let mut out = x;
    for v in out.iter_mut().take(b.n) {
        *v = c.log::<UNIT>(s, ls, *v);
    }
    // SAFETY: as above.
    unsafe { short_rows_write(s, b, r0, &out, &bad) };
}

/// The `f64` kernels and table of one level: `instantiate!(Token, "features")` defines, in
/// the invoking module, each kernel above inside a function compiled with the level's
/// features, `rows_f64`, and the table `F64`.
macro_rules! instantiate {
    ($isa:ty, $feat:literal) => {
        use crate::kernels::algo::f64 as algo;
        use crate::kernels::{level_table, rows_kernel};

        /// The level's token.
        ///
        /// # Safety
        /// Only called from functions compiled with the level's features, which run only on
        /// a CPU that has them (their tables are handed out by `kernels_for` only then).
        #[inline(always)]
        unsafe fn isa() -> $isa {
            // SAFETY: this function's contract.
            unsafe { <$isa>::new() }
        }

        crate::kernels::algo::entry_points! { $feat;
            fn max_f64(x: &[f64]) -> (f64, bool) => crate::kernels::algo::max::max(isa(), x);
            fn chunk_maxima_f64(x: &[f64], chunk: usize, out: &mut [f64]) -> bool
                => crate::kernels::algo::chunk_maxima(x, chunk, out, |c| {
                    crate::kernels::algo::max::max(isa(), c)
                });
            fn sum_exp_f64(x: &[f64], m: f64, t: f64) -> f64 => algo::sum_exp(isa(), x, m, t);
            fn exp_store_sum_f64(src: *const f64, dst: *mut f64, n: usize, m: f64, t: f64) -> f64
                => algo::exp_store_sum(isa(), src, dst, n, m, t);
            fn exp_store_chunk_sums_f64(
                src: *const f64, dst: *mut f64, n: usize, m: f64, t: f64, chunk: usize,
                sums: *mut f64,
            ) => crate::kernels::algo::per_chunk(n, chunk, sums, |i, len| {
                algo::exp_store_sum(isa(), src.add(i), dst.add(i), len, m, t)
            });
            // `dst` as both `src` and `dst` meets `scale_to`'s contract.
            fn scale_f64(dst: *mut f64, n: usize, factor: f64)
                => crate::kernels::algo::elementwise::scale_to(isa(), dst, dst, n, factor, false);
            fn scale_to_f64(src: *const f64, dst: *mut f64, n: usize, factor: f64, stream: bool)
                => crate::kernels::algo::elementwise::scale_to(isa(), src, dst, n, factor, stream);
            fn exp_scale_f64(
                src: *const f64, dst: *mut f64, n: usize, m: f64, t: f64, factor: f64, stream: bool
            ) => algo::exp_scale(isa(), src, dst, n, m, t, factor, stream);
            fn write_log_softmax_f64(
                src: *const f64, dst: *mut f64, n: usize, m: f64, t: f64, log_sum: f64, stream: bool
            ) => algo::write_log_softmax(isa(), src, dst, n, m, t, log_sum, stream);
            fn entropy_sums_f64(x: &[f64], m: f64) -> crate::kernels::EntropySums
                => algo::entropy_sums(isa(), x, m);
            fn packed_sums_f64(
                src: *const f64, n: usize, count: usize, t: f64, maxima: *mut f64,
                totals: *mut f64,
            ) -> usize => algo::short_sums(isa(), src, n, count, t, maxima, totals);
        }

        rows_kernel!(
            rows_each_f64,
            f64,
            $feat,
            max_f64,
            exp_store_sum_f64,
            sum_exp_f64,
            scale_f64,
            scale_to_f64,
            exp_scale_f64,
            write_log_softmax_f64,
            f64::ln
        );

        /// # Safety
        /// As [`Kernels::rows`](crate::kernels::Kernels).
        #[target_feature(enable = $feat)]
        unsafe fn rows_f64(
            op: crate::op::Op,
            b: crate::kernels::RowBatch<f64>,
            store: crate::kernels::Store,
        ) {
            // SAFETY: this function's contract is `short_rows`' and, for any part of `b`,
            // `rows_each_f64`'s.
            unsafe { algo::short_rows(isa(), op, b, |part| rows_each_f64(op, part, store)) }
        }

        level_table!(
            /// The level's table for `f64`. Only handed out when the CPU has its features.
            F64: f64 {
                max: max_f64,
                chunk_maxima: chunk_maxima_f64,
                sum_exp: sum_exp_f64,
                exp_store_sum: exp_store_sum_f64,
                exp_store_chunk_sums: exp_store_chunk_sums_f64,
                scale: scale_f64,
                scale_to: scale_to_f64,
                exp_scale: exp_scale_f64,
                write_log_softmax: write_log_softmax_f64,
                rows: rows_f64,
                exp_sum_overlapped: None,
                entropy_sums: entropy_sums_f64,
                packed_sums: Some(packed_sums_f64),
            }
        );
    };
}

/// The AVX2 + FMA kernels.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    instantiate!(crate::kernels::isa::avx2::Avx2, "avx2,fma,f16c");
}

/// The AVX-512F kernels.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    instantiate!(crate::kernels::isa::avx512::Avx512, "avx512f,avx2,fma");
}

/// The NEON kernels.
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon {
    instantiate!(crate::kernels::isa::neon::Neon, "neon");
}
