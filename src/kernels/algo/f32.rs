//! The `f32` block kernels of the levels whose exp is the polynomial one
//! ([`exp_f32_flushing`]: AVX2 and NEON), over [`Simd`].
//!
//! The argument `(x - m) / t`: `x - m` in `f32` at `t == 1`; else folded into `f32`
//! multiply-adds with `1 / t` and `m / t` split in two `f32`s each ([`FoldedArg`]) where that
//! holds, or `(x - m) * (1 / t)` in `f64` rounded once to `f32`. Exps are added four vectors
//! at a time in `f32` (two roundings), then widened and accumulated in two `f64` vectors.
//! Temperatures whose reciprocal is not a normal number go to the scalar kernels.

use crate::kernels::isa::{Lane, Simd};
use crate::kernels::{moderate_temperature, scalar, EntropySums, FoldedArg};

/// [`FoldedArg`]'s terms in every lane.
#[derive(Clone, Copy)]
pub(crate) struct Folded<S: Simd> {
    pub(crate) inv_hi: S::F32,
    pub(crate) inv_lo: S::F32,
    pub(crate) neg_mi_hi: S::F32,
    pub(crate) neg_mi_lo: S::F32,
    pub(crate) x_floor: S::F32,
}

impl<S: Simd> Folded<S> {
    #[inline(always)]
    pub(crate) fn splat(s: S, f: FoldedArg) -> Folded<S> {
        Folded {
            inv_hi: s.splat_f32(f.inv_hi),
            inv_lo: s.splat_f32(f.inv_lo),
            neg_mi_hi: s.splat_f32(f.neg_mi_hi),
            neg_mi_lo: s.splat_f32(f.neg_mi_lo),
            x_floor: s.splat_f32(f.x_floor),
        }
    }

    /// The folded `exp((x - m) / t)` of every lane.
    #[inline(always)]
    pub(crate) fn exp(&self, s: S, x: S::F32) -> S::F32 {
        // NaN propagates (x86's maximum returns its second operand, NEON's NaN).
        let x = s.max_f32(self.x_floor, x);
        let a = s.mul_add_f32(x, self.inv_hi, self.neg_mi_hi);
        let lo = s.mul_add_f32(x, self.inv_lo, self.neg_mi_lo);
        s.exp_f32_near(a, lo)
    }
}

/// A reciprocal temperature `inv` as the `f32` log-softmax of an `F32_LOG_IN_F32` level uses
/// it: `hi + lo` (each `f32`, together within 2^-48 of `inv`), and the difference below which
/// `d * hi` overflows (or `f32::MIN`).
#[derive(Clone, Copy)]
pub(crate) struct InvF32<S: Simd> {
    pub(crate) hi: S::F32,
    pub(crate) lo: S::F32,
    pub(crate) d_floor: S::F32,
}

impl<S: Simd> InvF32<S> {
    #[inline(always)]
    pub(crate) fn new(s: S, inv: f64) -> InvF32<S> {
        let hi = inv as f32;
        InvF32 {
            hi: s.splat_f32(hi),
            lo: s.splat_f32((inv - hi as f64) as f32),
            d_floor: s.splat_f32((f32::MIN as f64 / hi as f64).max(f32::MIN as f64) as f32),
        }
    }

    /// `d * inv - ls` for `d = x - m` (at most 0, or -inf: a -inf entry, or an overflowed
    /// difference): `d hi + (d lo - ls)`, three roundings, each within half an ulp of a value
    /// no larger than the result (`ls >= 0` and `d <= 0`), so the error stays under 2e-7 of
    /// the result, well inside contract S8's 2e-6. The small term takes `d` clamped where
    /// `d hi` would overflow (the result is then -inf whatever it adds), so that it stays
    /// finite and cannot meet `d hi`'s infinity with the other sign, or `-inf * 0`.
    #[inline(always)]
    pub(crate) fn log_scaled(&self, s: S, d: S::F32, ls: S::F32) -> S::F32 {
        let clamped = s.max_f32(d, self.d_floor);
        s.mul_add_f32(d, self.hi, s.mul_sub_f32(clamped, self.lo, ls))
    }
}

/// Whether the level's `f32` vector kernels take temperature `t`: its reciprocal a normal
/// number or, on an `F32_LOG_IN_F32` level, moderate ([`moderate_temperature`]: in
/// [2^-100, 2^100], so [`InvF32`]'s parts are normal). Other temperatures go through the
/// portable kernels.
#[inline(always)]
pub(crate) fn vector_temperature<S: Simd>(t: f64) -> bool {
    if S::F32_LOG_IN_F32 {
        moderate_temperature(t)
    } else {
        (1.0 / t).is_normal()
    }
}

/// The exp argument's constants for a row (module doc).
#[derive(Clone, Copy)]
pub(crate) struct ArgF32<S: Simd> {
    m: S::F32,
    m64: S::F64,
    inv: S::F64,
    /// The parts of `1 / t` for the `f32` log-softmax (`F32_LOG_IN_F32` levels only).
    pub(crate) s: InvF32<S>,
    /// [`FoldedArg`] holds: `exp` folds the temperature into `f32` arithmetic.
    fold: bool,
    folded: Folded<S>,
}

impl<S: Simd> ArgF32<S> {
    /// `inv`: 1, or a reciprocal temperature that is a normal number.
    #[inline(always)]
    pub(crate) fn new(s: S, m: f32, inv: f64) -> ArgF32<S> {
        let f = FoldedArg::new(m, inv);
        ArgF32 {
            m: s.splat_f32(m),
            m64: s.splat_f64(m as f64),
            inv: s.splat_f64(inv),
            s: if S::F32_LOG_IN_F32 {
                InvF32::new(s, inv)
            } else {
                InvF32 {
                    hi: s.splat_f32(0.0),
                    lo: s.splat_f32(0.0),
                    d_floor: s.splat_f32(0.0),
                }
            },
            fold: f.is_some(),
            folded: Folded::splat(s, f.unwrap_or_default()),
        }
    }

    /// `x - m` in `f32` when `t == 1` (UNIT), else `(x - m) / t` in `f64` rounded once.
    #[inline(always)]
    fn arg<const UNIT: bool>(&self, s: S, x: S::F32) -> S::F32 {
        if UNIT {
            s.sub_f32(x, self.m)
        } else {
            let lo = s.mul_f64(s.sub_f64(s.widen_low(x), self.m64), self.inv);
            let hi = s.mul_f64(s.sub_f64(s.widen_high(x), self.m64), self.inv);
            s.narrow(lo, hi)
        }
    }

    /// `exp((x - m) / t)` of every lane (UNIT: `t` is 1). With a temperature the argument is
    /// within half an ulp (plus 2^-30) of `(x - m) / t`, as `x - m` is at temperature 1.
    #[inline(always)]
    pub(crate) fn exp<const UNIT: bool>(&self, s: S, x: S::F32) -> S::F32 {
        if !UNIT && self.fold {
            self.folded.exp(s, x)
        } else {
            s.exp_f32(self.arg::<UNIT>(s, x))
        }
    }

    /// `(x - m) / t - ls` (`ls` and `ls64` holding `ls`): in `f32` at `t == 1`; else on an
    /// `F32_LOG_IN_F32` level [`InvF32::log_scaled`] of `x - m`, on the others
    /// `(x - m) * inv - ls` in `f64` rounded once (then to `f32`).
    #[inline(always)]
    pub(crate) fn log<const UNIT: bool>(
        &self,
        s: S,
        ls: S::F32,
        ls64: S::F64,
        x: S::F32,
    ) -> S::F32 {
        if UNIT {
            s.sub_f32(s.sub_f32(x, self.m), ls)
        } else if S::F32_LOG_IN_F32 {
            self.s.log_scaled(s, s.sub_f32(x, self.m), ls)
        } else {
            let lo = s.mul_sub_f64(s.sub_f64(s.widen_low(x), self.m64), self.inv, ls64);
            let hi = s.mul_sub_f64(s.sub_f64(s.widen_high(x), self.m64), self.inv, ls64);
            s.narrow(lo, hi)
        }
    }
}

/// What [`exp_sum`] does on each turn of its main loop (four vectors) besides the sum:
/// nothing for the block kernels; for the streamed schedules, a prefetch of a later block and
/// a step of another row's pending write ([`super::pending`]). Neither changes the sum's bits.
pub(crate) trait Turn {
    /// At the start of the turn over elements `i..i + 4 F32_LANES`.
    #[inline(always)]
    fn before(&mut self, _i: usize) {}
    /// After the turn.
    #[inline(always)]
    fn after(&mut self) {}
}

/// No extra work.
pub(crate) struct NoTurn;

impl Turn for NoTurn {}

/// A prefetch of the block at `ahead` (its first `ahead_n` `f32`s' worth of bytes), a turn's
/// worth per turn, so that the next block's first pass finds it in the cache.
pub(crate) struct Ahead<S: Simd> {
    pub(crate) s: S,
    pub(crate) ahead: *const f32,
    pub(crate) ahead_n: usize,
}

impl<S: Simd> Turn for Ahead<S> {
    #[inline(always)]
    fn before(&mut self, i: usize) {
        if i < self.ahead_n {
            for q in (0..4 * S::F32_LANES).step_by(16) {
                self.s.prefetch(self.ahead.wrapping_add(i + q));
            }
        }
    }
}

/// Σ exp(arg(x)) over `n` elements, storing the exps when STORE (module doc).
///
/// # Safety
/// `src` valid for reads of `n` elements; with STORE, `dst` valid for writes of `n` (the same
/// as `src`, then `E` is `D`, or disjoint), else unused (it may be null).
#[inline(always)]
pub(crate) unsafe fn exp_sum<
    S: Simd,
    const UNIT: bool,
    const STORE: bool,
    T: Turn,
    E: Lane<S, V = S::F32>,
    D: Lane<S, V = S::F32>,
>(
    s: S,
    src: *const E,
    dst: *mut D,
    n: usize,
    c: ArgF32<S>,
    turn: &mut T,
) -> f64 {
    let l = S::F32_LANES;
    let mut a0 = s.splat_f64(0.0);
    let mut a1 = s.splat_f64(0.0);
    let mut i = 0;
    while i + 4 * l <= n {
        turn.before(i);
        // SAFETY: `i + 4 l <= n`: the four vectors from `src.add(i)` are among the `n`
        // readable elements and, with STORE, those from `dst.add(i)` among the `n` writable.
        unsafe {
            let e0 = c.exp::<UNIT>(s, E::load(s, src.add(i)));
            let e1 = c.exp::<UNIT>(s, E::load(s, src.add(i + l)));
            let e2 = c.exp::<UNIT>(s, E::load(s, src.add(i + 2 * l)));
            let e3 = c.exp::<UNIT>(s, E::load(s, src.add(i + 3 * l)));
            if STORE {
                D::store(s, dst.add(i), e0);
                D::store(s, dst.add(i + l), e1);
                D::store(s, dst.add(i + 2 * l), e2);
                D::store(s, dst.add(i + 3 * l), e3);
            }
            let v = s.add_f32(s.add_f32(e0, e1), s.add_f32(e2, e3));
            a0 = s.add_f64(a0, s.widen_low(v));
            a1 = s.add_f64(a1, s.widen_high(v));
        }
        turn.after();
        i += 4 * l;
    }
    while i + l <= n {
        // SAFETY: `i + l <= n`: the vector at `src.add(i)` is readable and, with STORE, the
        // one at `dst.add(i)` writable.
        unsafe {
            let e = c.exp::<UNIT>(s, E::load(s, src.add(i)));
            if STORE {
                D::store(s, dst.add(i), e);
            }
            a0 = s.add_f64(a0, s.widen_low(e));
            a1 = s.add_f64(a1, s.widen_high(e));
        }
        i += l;
    }
    if i < n {
        // SAFETY: `i < n < i + l` (the loop above stopped): the last `n - i < l` elements of
        // `src` are readable and, with STORE, of `dst` writable. Lanes past the end read
        // -inf, whose exp is exactly 0.
        unsafe {
            let x = E::load_part(s, src.add(i), n - i, E::MINUS_INF);
            let e = c.exp::<UNIT>(s, x);
            if STORE {
                D::store_part(s, dst.add(i), n - i, e);
            }
            a0 = s.add_f64(a0, s.widen_low(e));
            a1 = s.add_f64(a1, s.widen_high(e));
        }
    }
    s.reduce_add_f64(s.add_f64(a0, a1))
}

/// `exp((x - m) / t) * factor`.
#[derive(Clone, Copy)]
struct ExpTimes<S: Simd, const UNIT: bool> {
    s: S,
    c: ArgF32<S>,
    factor: S::F32,
}

impl<S: Simd, const UNIT: bool> LaneMap<S::F32> for ExpTimes<S, UNIT> {
    #[inline(always)]
    fn apply(&self, x: S::F32) -> S::F32 {
        self.s.mul_f32(self.c.exp::<UNIT>(self.s, x), self.factor)
    }
}

/// `(x - m) / t - log_sum`, `ls` and `ls64` holding `log_sum`.
#[derive(Clone, Copy)]
struct LogMinus<S: Simd, const UNIT: bool> {
    s: S,
    c: ArgF32<S>,
    ls: S::F32,
    ls64: S::F64,
}

impl<S: Simd, const UNIT: bool> LaneMap<S::F32> for LogMinus<S, UNIT> {
    #[inline(always)]
    fn apply(&self, x: S::F32) -> S::F32 {
        self.c.log::<UNIT>(self.s, self.ls, self.ls64, x)
    }
}

/// `dst = exp((src - m) / t)`, returning the sum `sum_exp` gives.
///
/// # Safety
/// `src` valid for reads and `dst` for writes of `n` (same pointer or disjoint).
#[inline(always)]
pub(crate) unsafe fn exp_store_sum<S: Simd>(
    s: S,
    src: *const f32,
    dst: *mut f32,
    n: usize,
    m: f32,
    t: f64,
) -> f64 {
    // SAFETY: this function's contract is what the callees require.
    unsafe {
        if !vector_takes::<S>(t) {
            return scalar::exp_store_sum(src, dst, n, m, t);
        }
        exp_sum_with::<S, true, _, _>(s, src, dst, n, m, t, &mut NoTurn)
    }
}

/// [`vector_takes`] of the level of `_s`.
#[inline(always)]
pub(crate) fn vector_takes_at<S: Simd>(_s: S, t: f64) -> bool {
    vector_takes::<S>(t)
}

/// Whether the level's vector kernels compute at temperature `t`: 1, or a
/// [`vector_temperature`]. At others the `f32` kernels call the portable ones.
#[inline(always)]
pub(crate) fn vector_takes<S: Simd>(t: f64) -> bool {
    t == 1.0 || vector_temperature::<S>(t)
}

/// [`exp_sum`] of `f32` or bfloat16 data at temperature `t` (one the vector kernels take,
/// [`vector_takes`]), storing the `f32` exps at `exps` when STORE, with `turn`'s work.
///
/// # Safety
/// As [`exp_sum`] (`src` read as `E`, `exps` written as `f32`).
#[inline(always)]
pub(crate) unsafe fn exp_sum_with<S: Simd, const STORE: bool, E: Lane<S, V = S::F32>, T: Turn>(
    s: S,
    src: *const E,
    exps: *mut f32,
    n: usize,
    m: f32,
    t: f64,
    turn: &mut T,
) -> f64 {
    debug_assert!(vector_takes::<S>(t));
    // SAFETY: this function's contract is `exp_sum`'s.
    unsafe {
        if t == 1.0 {
            exp_sum::<S, true, STORE, _, _, _>(s, src, exps, n, ArgF32::new(s, m, 1.0), turn)
        } else {
            let c = ArgF32::new(s, m, 1.0 / t);
            exp_sum::<S, false, STORE, _, _, _>(s, src, exps, n, c, turn)
        }
    }
}

/// Σ exp((x - m) / t).
#[inline(always)]
pub(crate) fn sum_exp<S: Simd>(s: S, x: &[f32], m: f32, t: f64) -> f64 {
    if !vector_takes::<S>(t) {
        return scalar::sum_exp(x, m, t);
    }
    let (p, n, q) = (x.as_ptr(), x.len(), std::ptr::null_mut::<f32>());
    // SAFETY: `p` is valid for reads of the `n` elements of `x`; without STORE `exp_sum` does
    // not touch `q` (null).
    unsafe { exp_sum_with::<S, false, _, _>(s, p, q, n, m, t, &mut NoTurn) }
}

/// One vector's terms of [`entropy_sums`]: its exps, their products with `x - m` (clamped to
/// `f32::MIN`, so that a `-inf` gap meets only a zero weight) and 1 in its finite lanes.
#[inline(always)]
fn entropy_terms<S: Simd>(s: S, v: S::F32, m: S::F32) -> [S::F32; 3] {
    let floor = s.splat_f32(f32::MIN);
    let d = s.sub_f32(v, m);
    let e = s.exp_f32(d);
    let finite = s.clear_f32(s.lt_f32(v, floor), s.splat_f32(1.0));
    [e, s.mul_f32(e, s.max_f32(floor, d)), finite]
}

/// [`EntropySums`] of `x` with maximum `m`: the exps and their sum as [`sum_exp`] at
/// temperature 1 (the same bits); the products added as the exps are (four vectors at a time
/// in `f32`, widened into `f64` lane sums); the finite lanes counted in `f32` lanes (exact)
/// and widened every [`COUNT_RUN`] elements.
#[inline(always)]
pub(crate) fn entropy_sums<S: Simd>(s: S, x: &[f32], m: f32) -> EntropySums {
    /// Elements between two widenings of the finite count: each lane counts at most 2^20,
    /// exactly in `f32`.
    const COUNT_RUN: usize = 1 << 20;
    let (l, n, p, mv) = (S::F32_LANES, x.len(), x.as_ptr(), s.splat_f32(m));
    let mut acc = [s.splat_f64(0.0); 6];
    let mut count = s.splat_f32(0.0);
    let mut i = 0;
    while i + 4 * l <= n {
        // SAFETY: `i + 4 l <= n`: the four vectors from `p.add(i)` are in `x`.
        let (t0, t1, t2, t3) = unsafe {
            (
                entropy_terms(s, s.load_f32(p.add(i)), mv),
                entropy_terms(s, s.load_f32(p.add(i + l)), mv),
                entropy_terms(s, s.load_f32(p.add(i + 2 * l)), mv),
                entropy_terms(s, s.load_f32(p.add(i + 3 * l)), mv),
            )
        };
        for k in 0..2 {
            let v = s.add_f32(s.add_f32(t0[k], t1[k]), s.add_f32(t2[k], t3[k]));
            widen_add(s, &mut acc, k, v);
        }
        count = s.add_f32(
            count,
            s.add_f32(s.add_f32(t0[2], t1[2]), s.add_f32(t2[2], t3[2])),
        );
        i += 4 * l;
        if i % COUNT_RUN == 0 {
            widen_add(s, &mut acc, 2, count);
            count = s.splat_f32(0.0);
        }
    }
    while i + l <= n {
        // SAFETY: `i + l <= n`: the vector at `p.add(i)` is in `x`.
        let [e, g, c] = entropy_terms(s, unsafe { s.load_f32(p.add(i)) }, mv);
        widen_add(s, &mut acc, 0, e);
        widen_add(s, &mut acc, 1, g);
        count = s.add_f32(count, c);
        i += l;
    }
    if i < n {
        // SAFETY: `i < n < i + l`: the last `n - i < l` elements are in `x`. Lanes past the
        // end read -inf: no weight, no product, not finite.
        let v = unsafe { s.load_f32_part(p.add(i), n - i, f32::NEG_INFINITY) };
        let [e, g, c] = entropy_terms(s, v, mv);
        widen_add(s, &mut acc, 0, e);
        widen_add(s, &mut acc, 1, g);
        count = s.add_f32(count, c);
    }
    widen_add(s, &mut acc, 2, count);
    let lanes = |k: usize| s.reduce_add_f64(s.add_f64(acc[2 * k], acc[2 * k + 1]));
    EntropySums {
        total: lanes(0),
        dot: lanes(1),
        finite: lanes(2) as usize,
    }
}

/// Adds the lanes of `v` to the `f64` lane sums `acc[2 k]` (low half) and `acc[2 k + 1]`.
#[inline(always)]
fn widen_add<S: Simd>(s: S, acc: &mut [S::F64; 6], k: usize, v: S::F32) {
    acc[2 * k] = s.add_f64(acc[2 * k], s.widen_low(v));
    acc[2 * k + 1] = s.add_f64(acc[2 * k + 1], s.widen_high(v));
}

/// `dst = exp((src - m) / t) * factor`: the bits `exp_store_sum` then `scale_to` give.
///
/// # Safety
/// `src` valid for reads and `dst` for writes of `n` (same pointer or disjoint).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn exp_scale<S: Simd>(
    s: S,
    src: *const f32,
    dst: *mut f32,
    n: usize,
    m: f32,
    t: f64,
    factor: f64,
    stream: bool,
) {
    // SAFETY: this function's contract is what the callees require; `scale_to` then reads
    // and writes the `n` elements of `dst` just written.
    unsafe {
        if !vector_takes::<S>(t) {
            scalar::exp_store_sum(src, dst, n, m, t);
            return scale_to(s, dst, dst, n, factor, false);
        }
        exp_scale_vector(s, src, dst, n, m, t, factor, stream)
    }
}

/// [`exp_scale`] of `f32` or bfloat16 data (each result rounded once to the type), for a
/// `t` the vector kernels take ([`vector_takes`]).
///
/// # Safety
/// As [`exp_scale`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn exp_scale_vector<S: Simd, E: Lane<S, V = S::F32>>(
    s: S,
    src: *const E,
    dst: *mut E,
    n: usize,
    m: f32,
    t: f64,
    factor: f64,
    stream: bool,
) {
    debug_assert!(vector_takes::<S>(t));
    let factor = s.splat_f32(factor as f32);
    // SAFETY: this function's contract is `map`'s.
    unsafe {
        if t == 1.0 {
            let c = ArgF32::new(s, m, 1.0);
            map(s, src, dst, n, stream, ExpTimes::<S, true> { s, c, factor })
        } else {
            let c = ArgF32::new(s, m, 1.0 / t);
            map(
                s,
                src,
                dst,
                n,
                stream,
                ExpTimes::<S, false> { s, c, factor },
            )
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
    src: *const f32,
    dst: *mut f32,
    n: usize,
    m: f32,
    t: f64,
    log_sum: f64,
    stream: bool,
) {
    // SAFETY: this function's contract is what the callees require.
    unsafe {
        if !vector_takes::<S>(t) {
            return scalar::write_log_softmax(src, dst, n, m, t, log_sum, false);
        }
        write_log_softmax_vector(s, src, dst, n, m, t, log_sum, stream)
    }
}

/// [`write_log_softmax`] of `f32` or bfloat16 data (each result rounded once to the type),
/// for a `t` the vector kernels take ([`vector_takes`]).
///
/// # Safety
/// As [`write_log_softmax`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn write_log_softmax_vector<S: Simd, E: Lane<S, V = S::F32>>(
    s: S,
    src: *const E,
    dst: *mut E,
    n: usize,
    m: f32,
    t: f64,
    log_sum: f64,
    stream: bool,
) {
    debug_assert!(vector_takes::<S>(t));
    // SAFETY: this function's contract is `write_log`'s.
    unsafe {
        if t == 1.0 {
            let c = ArgF32::new(s, m, 1.0);
            write_log::<S, true, E>(s, src, dst, n, c, log_sum, stream)
        } else {
            let c = ArgF32::new(s, m, 1.0 / t);
            write_log::<S, false, E>(s, src, dst, n, c, log_sum, stream)
        }
    }
}

/// `dst = (src - m) / t - log_sum`, the row's argument `c` given (`t == 1` when UNIT).
///
/// # Safety
/// `src` valid for reads and `dst` for writes of `n` (same pointer or disjoint).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn write_log<S: Simd, const UNIT: bool, E: Lane<S, V = S::F32>>(
    s: S,
    src: *const E,
    dst: *mut E,
    n: usize,
    c: ArgF32<S>,
    log_sum: f64,
    stream: bool,
) {
    let (ls, ls64) = (s.splat_f32(log_sum as f32), s.splat_f64(log_sum));
    // SAFETY: this function's contract is `map`'s.
    unsafe {
        map(
            s,
            src,
            dst,
            n,
            stream,
            LogMinus::<S, UNIT> { s, c, ls, ls64 },
        )
    }
}

use super::elementwise::{map, scale_to, LaneMap};

/// A level's `f32` kernels, in the invoking module: `instantiate!(Token, "features",
/// overlapped)` defines the block kernels (`max_f32_impl`, `exp_store_sum_f32`, ...), the plain
/// rows kernel `rows_f32_general`, the many-rows kernel `rows_f32` ([`super::grouped::rows`]),
/// each compiled with the level's features, and the level's tables `F32`
/// ([`Kernels`](crate::kernels::Kernels); with `exp_sum_overlapped` when `overlapped`) and
/// `BF16` and `F16` ([`HalfKernels`](crate::kernels::HalfKernels), through [`half_table`]).
macro_rules! instantiate {
    ($isa:ty, $feat:literal, $overlapped:literal) => {
        /// The level's token.
        ///
        /// # Safety
        /// Only called from functions compiled with the level's features, which run only on
        /// a CPU that has them (the tables are handed out only then).
        #[inline(always)]
        unsafe fn isa() -> $isa {
            // SAFETY: this function's contract.
            unsafe { <$isa>::new() }
        }

        crate::kernels::rows_kernel!(
            rows_f32_general,
            f32,
            $feat,
            max_f32_impl,
            exp_store_sum_f32,
            sum_exp_f32_impl,
            scale_f32,
            scale_to_f32,
            exp_scale_f32,
            write_log_softmax_f32,
            crate::kernels::row_ln_f32
        );

        crate::kernels::algo::entry_points! { $feat;
            // `rows_f32_general` is the level's plain rows kernel and `GROUPED` its group
            // kernels.
            fn rows_f32(
                op: crate::op::Op, b: crate::kernels::RowBatch<f32>, store: crate::kernels::Store,
            ) => crate::kernels::algo::grouped::rows(
                isa(), rows_f32_general, &GROUPED, op, b, store,
            );
            fn packed_f32<const UNIT: bool, const LONG: bool>(
                op: crate::op::Op, src: *const f32, dst: *mut f32, inv: f64,
                rows: &crate::kernels::algo::grouped::PackedRows, groups: usize,
                exps: *mut f32,
            ) => crate::kernels::algo::grouped::packed::<_, UNIT, LONG>(
                isa(), op, src, dst, inv, rows, groups, exps,
            );
            fn sums_f32<const UNIT: bool, const LONG: bool>(
                src: *const f32, inv: f64, rows: &crate::kernels::algo::grouped::PackedRows,
                groups: usize, maxima: *mut f32, totals: *mut f64, exps: *mut f32,
            ) => crate::kernels::algo::grouped::packed_sums::<_, UNIT, LONG>(
                isa(), src, inv, rows, groups, maxima, totals, exps,
            );
            fn packed_sums_f32(
                src: *const f32, n: usize, count: usize, t: f64, maxima: *mut f32,
                totals: *mut f64,
            ) -> usize => crate::kernels::algo::grouped::sums::<$isa>(
                &GROUPED, src, n, count, t, maxima, totals,
            );
            fn short_f32<const V: usize>(
                general: crate::kernels::algo::rows::RowsKernel, op: crate::op::Op,
                b: crate::kernels::RowBatch<f32>,
            ) => crate::kernels::algo::grouped::short::<_, V>(isa(), general, op, b);
            fn medium_f32(
                general: crate::kernels::algo::rows::RowsKernel, b: crate::kernels::RowBatch<f32>,
            ) => crate::kernels::algo::grouped::medium(isa(), general, b);
            fn exp_sum_overlapped_f32(
                src: *const f32, exps: *mut f32, n: usize, m: f32, t: f64,
                write: Option<&crate::kernels::BlockWrite<f32>>, ahead: *const f32,
                ahead_n: usize,
            ) -> f64 => crate::kernels::algo::pending::exp_sum_overlapped(
                isa(), &F32, src, exps, n, m, t, write, ahead, ahead_n,
            );
            fn entropy_sums_f32(x: &[f32], m: f32) -> crate::kernels::EntropySums
                => crate::kernels::algo::f32::entropy_sums(isa(), x, m);
            fn max_f32_impl(x: &[f32]) -> (f32, bool) => crate::kernels::algo::max::max(isa(), x);
            fn chunk_maxima_f32(x: &[f32], chunk: usize, out: &mut [f32]) -> bool
                => crate::kernels::algo::max::chunk_maxima(isa(), x, chunk, out, |m| m);
            fn sum_exp_f32_impl(x: &[f32], m: f32, t: f64) -> f64
                => crate::kernels::algo::f32::sum_exp(isa(), x, m, t);
            fn exp_store_sum_f32(src: *const f32, dst: *mut f32, n: usize, m: f32, t: f64) -> f64
                => crate::kernels::algo::f32::exp_store_sum(isa(), src, dst, n, m, t);
            fn exp_store_chunk_sums_f32(
                src: *const f32, dst: *mut f32, n: usize, m: f32, t: f64, chunk: usize,
                sums: *mut f64,
            ) => crate::kernels::algo::per_chunk(n, chunk, sums, |i, len| {
                crate::kernels::algo::f32::exp_store_sum(isa(), src.add(i), dst.add(i), len, m, t)
            });
            // `dst` as both `src` and `dst` meets `scale_to`'s contract.
            fn scale_f32(dst: *mut f32, n: usize, factor: f64)
                => crate::kernels::algo::elementwise::scale_to(isa(), dst, dst, n, factor, false);
            fn scale_to_f32(src: *const f32, dst: *mut f32, n: usize, factor: f64, stream: bool)
                => crate::kernels::algo::elementwise::scale_to(isa(), src, dst, n, factor, stream);
            fn exp_scale_f32(
                src: *const f32, dst: *mut f32, n: usize, m: f32, t: f64, factor: f64, stream: bool
            ) => crate::kernels::algo::f32::exp_scale(isa(), src, dst, n, m, t, factor, stream);
            fn write_log_softmax_f32(
                src: *const f32, dst: *mut f32, n: usize, m: f32, t: f64, log_sum: f64,
                stream: bool,
            ) => crate::kernels::algo::f32::write_log_softmax(
                isa(), src, dst, n, m, t, log_sum, stream,
            );
        }

        /// The level's group kernels (only reachable through `F32`, handed out only when the
        /// CPU has the level). Not inlined into `rows_f32`: see `GroupKernels`.
        static GROUPED: crate::kernels::algo::grouped::GroupKernels =
            crate::kernels::algo::grouped::GroupKernels {
                packed: [
                    packed_f32::<true, false>,
                    packed_f32::<true, true>,
                    packed_f32::<false, false>,
                    packed_f32::<false, true>,
                ],
                sums: [
                    sums_f32::<true, false>,
                    sums_f32::<true, true>,
                    sums_f32::<false, false>,
                    sums_f32::<false, true>,
                ],
                short: [short_f32::<1>, short_f32::<2>],
                medium: medium_f32,
            };

        crate::kernels::level_table!(
            /// The level's table for `f32`. Only handed out when the CPU has the level.
            F32: f32 {
                max: max_f32_impl,
                chunk_maxima: chunk_maxima_f32,
                sum_exp: sum_exp_f32_impl,
                exp_store_sum: exp_store_sum_f32,
                exp_store_chunk_sums: exp_store_chunk_sums_f32,
                scale: scale_f32,
                scale_to: scale_to_f32,
                exp_scale: exp_scale_f32,
                write_log_softmax: write_log_softmax_f32,
                rows: rows_f32,
                exp_sum_overlapped: if $overlapped {
                    Some(exp_sum_overlapped_f32)
                } else {
                    None
                },
                entropy_sums: entropy_sums_f32,
                packed_sums: Some(packed_sums_f32),
            }
        );

        crate::kernels::algo::f32::half_table!(BF16, half::bf16, $feat);
        crate::kernels::algo::f32::half_table!(F16, half::f16, $feat);
    };
}

/// A level's [`HalfKernels`](crate::kernels::HalfKernels) for the 16-bit type `$h`, in the
/// invoking module (which holds the level's `isa()`): its `f32` block kernels over `$h`
/// storage, as the static `$name`.
macro_rules! half_table {
    ($name:ident, $h:ty, $feat:literal) => {
        pub(crate) static $name: crate::kernels::HalfKernels<$h> = {
            fn takes(t: f64) -> bool {
                // SAFETY: only reachable through this table, which `HalfRows::kernels_for` hands
                // out only when the CPU has the level's features.
                crate::kernels::algo::f32::vector_takes_at(unsafe { isa() }, t)
            }
            crate::kernels::algo::entry_points! { $feat;
                fn max_impl(x: &[$h]) -> (f32, bool) => {
                    let (m, nan) = crate::kernels::algo::max::max(isa(), x);
                    (m.to_f32(), nan)
                };
                fn chunk_maxima_impl(x: &[$h], chunk: usize, out: &mut [f32]) -> bool
                    => crate::kernels::algo::max::chunk_maxima(isa(), x, chunk, out, |m| m.to_f32());
                // `src` valid for reads of `n` and, unless null, `exps` for writes of `n`,
                // disjoint; every entry `<= m` or NaN, `m` finite; `ahead` any pointer (only
                // prefetched).
                fn exp_sum(
                    src: *const $h, exps: *mut f32, n: usize, m: f32, t: f64, ahead: *const u8,
                    ahead_bytes: usize,
                ) -> f64 => {
                    use crate::kernels::algo::f32::{exp_sum_with, Ahead};
                    let s = isa();
                    let mut turn = Ahead { s, ahead: ahead.cast(), ahead_n: ahead_bytes / 4 };
                    if exps.is_null() {
                        exp_sum_with::<_, false, _, _>(s, src, exps, n, m, t, &mut turn)
                    } else {
                        exp_sum_with::<_, true, _, _>(s, src, exps, n, m, t, &mut turn)
                    }
                };
                // `src` valid for reads and `dst` for writes of `n`, disjoint; `sums` for
                // writes of `n.div_ceil(chunk)`, `chunk > 0`; entries as for `exp_sum`.
                fn exp_store_chunk_sums(
                    src: *const $h, dst: *mut f32, n: usize, m: f32, t: f64, chunk: usize,
                    sums: *mut f64,
                ) => crate::kernels::algo::per_chunk(n, chunk, sums, |i, len| {
                    use crate::kernels::algo::f32::{exp_sum_with, NoTurn};
                    exp_sum_with::<_, true, _, _>(isa(), src.add(i), dst.add(i), len, m, t, &mut NoTurn)
                });
                fn exp_scale(
                    src: *const $h, dst: *mut $h, n: usize, m: f32, t: f64, factor: f64,
                    stream: bool,
                ) => crate::kernels::algo::f32::exp_scale_vector(
                    isa(), src, dst, n, m, t, factor, stream,
                );
                fn write_log_softmax(
                    src: *const $h, dst: *mut $h, n: usize, m: f32, t: f64, log_sum: f64,
                    stream: bool,
                ) => crate::kernels::algo::f32::write_log_softmax_vector(
                    isa(), src, dst, n, m, t, log_sum, stream,
                );
                // `src` and `dst` disjoint.
                fn scale_to(src: *const f32, dst: *mut $h, n: usize, factor: f64, stream: bool)
                    => crate::kernels::algo::elementwise::scale_to(isa(), src, dst, n, factor, stream);
            }
            fn max(x: &[$h]) -> (f32, bool) {
                // SAFETY: as `takes`.
                unsafe { max_impl(x) }
            }
            fn chunk_maxima(x: &[$h], chunk: usize, out: &mut [f32]) -> bool {
                // SAFETY: as `takes`.
                unsafe { chunk_maxima_impl(x, chunk, out) }
            }
            crate::kernels::HalfKernels {
                takes,
                max,
                chunk_maxima,
                exp_sum,
                exp_store_chunk_sums,
                scale_to,
                exp_scale,
                write_log_softmax,
            }
        };
    };
}
pub(crate) use half_table;

/// The AVX2 kernels (no overlapped exp sum: measured no faster there).
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    instantiate!(crate::kernels::isa::avx2::Avx2, "avx2,fma,f16c", false);
}

/// The AVX-512F kernels.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    instantiate!(
        crate::kernels::isa::avx512::Avx512,
        "avx512f,avx2,fma",
        true
    );
}

/// The NEON kernels.
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon {
    instantiate!(crate::kernels::isa::neon::Neon, "neon", false);
}
