//! The primitive layer: the only per-ISA code of the kernels.
//!
//! [`Simd`] is the set of vector operations the algorithms of [`super::algo`] are written in:
//! loads and stores (whole vectors, the first `r` lanes of a tail, non-temporal stores), lane
//! arithmetic, comparisons into masks, horizontal reductions in a fixed order, and the exp of
//! the level. Each ISA implements it once (`avx2.rs`, `avx512.rs`, `neon.rs`) with the exact
//! instructions the level's kernels have always used, so an algorithm written once over `Simd`
//! gives each level the bits it gave before (the golden outputs of `tests/golden.rs`).
//!
//! A value of an implementing type is a token: it exists only on a CPU that has the level's
//! features (its constructor is `unsafe` and says so). The register-only operations are
//! therefore safe methods; the loads and stores are `unsafe` for their pointers only. The
//! algorithms are `#[inline(always)]` and generic over `S: Simd`; each level instantiates them
//! inside `#[target_feature]` functions (see `algo`), where the intrinsics inline.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;

use super::exp_f64_poly::{F64_FLUSH, F64_LN2_HI, F64_LN2_LO, F64_LOG2E, F64_P, F64_ROUND};

/// The vector operations of one instruction-set level (module doc).
///
/// Lane-wise operations are IEEE operations rounded once (`mul_add_f64` and its kin are fused).
/// A mask (`M64`) holds one flag per lane.
pub(crate) trait Simd: Copy {
    /// A vector of `F64_LANES` `f64`s.
    type F64: Copy;
    /// One flag per `f64` lane.
    type M64: Copy;
    /// Lanes per `F64` vector.
    const F64_LANES: usize;
    /// The alignment in bytes non-temporal stores need, or 0 when the level has none (then
    /// a streamed output is written with plain stores).
    const STREAM_ALIGN: usize;
    /// Whether `max_f64` gives NaN when an operand is NaN (NEON) rather than its second
    /// operand (x86's `maxpd`, which the row maximum uses to skip NaN).
    const MAX_PROPAGATES_NAN: bool;

    /// Every lane `x`.
    fn splat_f64(self, x: f64) -> Self::F64;
    /// The `F64_LANES` elements at `p`.
    ///
    /// # Safety
    /// `p` is valid for reads of `F64_LANES` `f64`s (and `f64`-aligned).
    unsafe fn load_f64(self, p: *const f64) -> Self::F64;
    /// The `r` elements at `p` in the first lanes, `fill` in the others; nothing past the `r`
    /// elements is read.
    ///
    /// # Safety
    /// `r < F64_LANES`; `p` is valid for reads of `r` `f64`s (and `f64`-aligned).
    unsafe fn load_f64_part(self, p: *const f64, r: usize, fill: f64) -> Self::F64;
    /// Writes the `F64_LANES` lanes of `v` at `p`.
    ///
    /// # Safety
    /// `p` is valid for writes of `F64_LANES` `f64`s (and `f64`-aligned).
    unsafe fn store_f64(self, p: *mut f64, v: Self::F64);
    /// Writes the first `r` lanes of `v` at `p`, nothing past them.
    ///
    /// # Safety
    /// `r < F64_LANES`; `p` is valid for writes of `r` `f64`s (and `f64`-aligned).
    unsafe fn store_f64_part(self, p: *mut f64, r: usize, v: Self::F64);
    /// A non-temporal store of `v` at `p`; [`Simd::stream_fence`] orders it before later
    /// accesses. Only called when `STREAM_ALIGN > 0`.
    ///
    /// # Safety
    /// `p` is valid for writes of `F64_LANES` `f64`s and `STREAM_ALIGN`-aligned.
    unsafe fn stream_f64(self, p: *mut f64, v: Self::F64);
    /// Orders the non-temporal stores before every later memory access.
    fn stream_fence(self);

    /// `a + b`.
    fn add_f64(self, a: Self::F64, b: Self::F64) -> Self::F64;
    /// `a - b`.
    fn sub_f64(self, a: Self::F64, b: Self::F64) -> Self::F64;
    /// `a * b`.
    fn mul_f64(self, a: Self::F64, b: Self::F64) -> Self::F64;
    /// `a * b + c`, rounded once.
    fn mul_add_f64(self, a: Self::F64, b: Self::F64, c: Self::F64) -> Self::F64;
    /// `a * b - c`, rounded once.
    fn mul_sub_f64(self, a: Self::F64, b: Self::F64, c: Self::F64) -> Self::F64;
    /// `c - a * b`, rounded once.
    fn neg_mul_add_f64(self, a: Self::F64, b: Self::F64, c: Self::F64) -> Self::F64;
    /// The larger of `a` and `b`; with a NaN operand, NaN or `b` (`MAX_PROPAGATES_NAN`).
    fn max_f64(self, a: Self::F64, b: Self::F64) -> Self::F64;

    /// `a == b` (ordered).
    fn eq_f64(self, a: Self::F64, b: Self::F64) -> Self::M64;
    /// `a > b` (ordered).
    fn gt_f64(self, a: Self::F64, b: Self::F64) -> Self::M64;
    /// `a >= b` (ordered).
    fn ge_f64(self, a: Self::F64, b: Self::F64) -> Self::M64;
    /// `a < b` (ordered).
    fn lt_f64(self, a: Self::F64, b: Self::F64) -> Self::M64;
    /// `a` or `b` is NaN.
    fn unord_f64(self, a: Self::F64, b: Self::F64) -> Self::M64;
    /// Either mask's flag.
    fn or_m64(self, a: Self::M64, b: Self::M64) -> Self::M64;
    /// No lane flagged.
    fn none_m64(self) -> Self::M64;
    /// Whether any lane is flagged.
    fn any_m64(self, m: Self::M64) -> bool;
    /// `v` where `m` is set, 0 elsewhere.
    fn keep_f64(self, m: Self::M64, v: Self::F64) -> Self::F64;
    /// 0 where `m` is set, `v` elsewhere.
    fn clear_f64(self, m: Self::M64, v: Self::F64) -> Self::F64;

    /// The sum of the lanes, in the level's fixed order.
    fn reduce_add_f64(self, v: Self::F64) -> f64;
    /// The largest lane, in the level's fixed order (`max_f64`'s rules).
    fn reduce_max_f64(self, v: Self::F64) -> f64;

    /// `2^k` for `kr = k + F64_ROUND` (the integer `k` in the low mantissa bits), `k` in
    /// [-1022, 1023]: the bits of `kr` plus 1023, shifted into the exponent field.
    fn pow2_of_rounded_f64(self, kr: Self::F64) -> Self::F64;
    /// exp(hi + lo), `|lo|` tiny against `|hi|` (a double-word argument); NaN in `hi`
    /// propagates and `-inf` gives exactly 0. [`exp_f64_flushing`] on AVX2 and NEON.
    fn exp_f64(self, hi: Self::F64, lo: Self::F64) -> Self::F64;
}

/// exp(hi + lo) by the constants of [`super::exp_f64_poly`]: `k = round(hi / ln 2)` by adding
/// `F64_ROUND`, Cody-Waite reduction, the Taylor polynomial of degree 12, a multiplication by
/// `2^k`; results below `exp(F64_FLUSH)` (about 3.3e-308, just above the smallest normal) are
/// flushed to exactly 0, because an underflowing multiply takes a slow microcode assist on x86.
/// NaN propagates.
#[inline(always)]
pub(crate) fn exp_f64_flushing<S: Simd>(s: S, hi: S::F64, lo: S::F64) -> S::F64 {
    let lim = s.splat_f64(F64_FLUSH);
    let ok = s.ge_f64(hi, lim);
    let flush = s.lt_f64(hi, lim);
    let hi = s.max_f64(lim, hi);
    let lo = s.keep_f64(ok, lo);
    let kr = s.mul_add_f64(hi, s.splat_f64(F64_LOG2E), s.splat_f64(F64_ROUND));
    let k = s.sub_f64(kr, s.splat_f64(F64_ROUND));
    let r = s.neg_mul_add_f64(k, s.splat_f64(F64_LN2_HI), hi);
    let r = s.add_f64(r, s.neg_mul_add_f64(k, s.splat_f64(F64_LN2_LO), lo));
    let mut p = s.splat_f64(F64_P[0]);
    for &c in &F64_P[1..] {
        p = s.mul_add_f64(p, r, s.splat_f64(c));
    }
    let r2 = s.mul_f64(r, r);
    let y = s.add_f64(s.mul_add_f64(p, r2, r), s.splat_f64(1.0));
    // 2^k (k in [-1022, 1023] after the clamp: a normal number).
    s.clear_f64(flush, s.mul_f64(y, s.pow2_of_rounded_f64(kr)))
}
