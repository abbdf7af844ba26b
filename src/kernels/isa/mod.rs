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

/// A level's token type, `token!(doc, Name, "the CPU features")`: a zero-sized value whose
/// `unsafe` constructor requires the features, so that holding one proves them.
macro_rules! token {
    ($(#[$doc:meta])* $name:ident, $cpu:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub(crate) struct $name(());

        impl $name {
            /// # Safety
            #[doc = concat!("The CPU has ", $cpu, ".")]
            #[inline(always)]
            pub(crate) unsafe fn new() -> $name {
                $name(())
            }
        }
    };
}

/// A register-only intrinsic expression in an ISA file. Every use is reached only through a
/// value of that file's token (a method of it, or a helper only its methods call), which
/// exists only on a CPU with the level's features: all such intrinsics need besides their
/// register operands.
macro_rules! reg {
    ($e:expr) => {
        // SAFETY: see the macro's doc: the CPU has the level's features; no memory is accessed.
        unsafe { $e }
    };
}

/// Methods whose body is one register-only intrinsic expression, one per line:
/// `name(args) -> Ret = expression;` (each `#[inline(always)]`, wrapped in `reg!`).
macro_rules! lanewise {
    ($($name:ident($($arg:ident: $t:ty),*) -> $r:ty = $e:expr;)*) => {
        $(
            #[inline(always)]
            fn $name(self, $($arg: $t),*) -> $r {
                reg!($e)
            }
        )*
    };
}

/// Methods whose body is one intrinsic expression accessing only the memory the method's
/// `# Safety` makes valid (a whole vector at `p`, or the lanes a mask enables), one per line:
/// `name(p: P, args) -> Ret = expression;` (each `#[inline(always)]`).
macro_rules! memory {
    ($($name:ident($($arg:ident: $t:ty),*) $(-> $r:ty)? = $e:expr;)*) => {
        $(
            #[inline(always)]
            unsafe fn $name(self, $($arg: $t),*) $(-> $r)? {
                // SAFETY: see the macro's doc: the caller's contract makes the memory valid;
                // the token proves the CPU features.
                unsafe { $e }
            }
        )*
    };
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;

use super::exp_f32_poly::{F32_FLUSH, F32_LN2_HI, F32_LN2_LO, F32_LOG2E, F32_P, F32_ROUND_BIASED};
use super::exp_f64_poly::{F64_FLUSH, F64_LN2_HI, F64_LN2_LO, F64_LOG2E, F64_P, F64_ROUND};

/// The most `f32` lanes of any level (AVX-512's 16): the size of the tails' stack buffers.
pub(crate) const MAX_F32_LANES: usize = 16;

/// The vector operations of one instruction-set level (module doc).
///
/// Lane-wise operations are IEEE operations rounded once (`mul_add_f64` and its kin are fused).
/// A mask (`M64`) holds one flag per lane.
pub(crate) trait Simd: Copy {
    /// A vector of `F32_LANES` `f32`s.
    type F32: Copy;
    /// One flag per `f32` lane.
    type M32: Copy;
    /// Lanes per `F32` vector.
    const F32_LANES: usize;
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
    /// How the `f32` log-softmax applies a temperature: in `f32`, with `1 / t` split into two
    /// `f32`s (AVX-512), or in `f64` (AVX2, NEON). The `f32` way needs both parts normal, so
    /// the level's `f32` vector kernels then take only moderate temperatures (see
    /// `algo::f32::vector_temperature`).
    const F32_LOG_IN_F32: bool;

    /// Every lane `x`.
    fn splat_f32(self, x: f32) -> Self::F32;
    /// The `F32_LANES` elements at `p`.
    ///
    /// # Safety
    /// `p` is valid for reads of `F32_LANES` `f32`s (and `f32`-aligned).
    unsafe fn load_f32(self, p: *const f32) -> Self::F32;
    /// The `r` elements at `p` in the first lanes, `fill` in the others; nothing past the `r`
    /// elements is read.
    ///
    /// Through a stack buffer by default.
    ///
    /// # Safety
    /// `r < F32_LANES`; `p` is valid for reads of `r` `f32`s (and `f32`-aligned).
    #[inline(always)]
    unsafe fn load_f32_part(self, p: *const f32, r: usize, fill: f32) -> Self::F32 {
        let mut buf = [fill; MAX_F32_LANES];
        // SAFETY: `p` is valid for `r < F32_LANES` reads (# Safety); `buf`, a local array (so
        // disjoint from `p`), holds at least `F32_LANES` elements.
        unsafe {
            std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), r);
            self.load_f32(buf.as_ptr())
        }
    }
    /// Writes the `F32_LANES` lanes of `v` at `p`.
    ///
    /// # Safety
    /// `p` is valid for writes of `F32_LANES` `f32`s (and `f32`-aligned).
    unsafe fn store_f32(self, p: *mut f32, v: Self::F32);
    /// Writes the first `r` lanes of `v` at `p`, nothing past them.
    ///
    /// Through a stack buffer by default.
    ///
    /// # Safety
    /// `r < F32_LANES`; `p` is valid for writes of `r` `f32`s (and `f32`-aligned).
    #[inline(always)]
    unsafe fn store_f32_part(self, p: *mut f32, r: usize, v: Self::F32) {
        let mut buf = [0.0f32; MAX_F32_LANES];
        // SAFETY: `buf` is a local array of at least `F32_LANES` elements; `p` is valid for
        // `r < F32_LANES` writes (# Safety) and disjoint from `buf`.
        unsafe {
            self.store_f32(buf.as_mut_ptr(), v);
            std::ptr::copy_nonoverlapping(buf.as_ptr(), p, r);
        }
    }
    /// As [`Simd::stream_f64`].
    ///
    /// # Safety
    /// `p` is valid for writes of `F32_LANES` `f32`s and `STREAM_ALIGN`-aligned.
    #[inline(always)]
    unsafe fn stream_f32(self, p: *mut f32, v: Self::F32) {
        // SAFETY: the caller's contract covers `store_f32`'s.
        unsafe { self.store_f32(p, v) }
    }
    /// The `F32_LANES` bfloat16s whose bits are at `p`, widened to `f32` (exactly: each is the
    /// upper half of its `f32`).
    ///
    /// # Safety
    /// `p` is valid for reads of `F32_LANES` `u16`s.
    unsafe fn load_bf16(self, p: *const u16) -> Self::F32;
    /// Every lane of `v` rounded to bfloat16 as `convert::f32_to_bf16` rounds (to nearest
    /// even; NaN quietened), the bits written at `p`.
    ///
    /// # Safety
    /// `p` is valid for writes of `F32_LANES` `u16`s.
    unsafe fn store_bf16(self, p: *mut u16, v: Self::F32);
    /// As [`Simd::store_bf16`], with a non-temporal store (`stream_fence` orders it). Only
    /// called when `STREAM_ALIGN > 0`.
    ///
    /// # Safety
    /// `p` is valid for writes of `F32_LANES` `u16`s and aligned to their size in bytes
    /// (`2 F32_LANES`).
    #[inline(always)]
    unsafe fn stream_bf16(self, p: *mut u16, v: Self::F32) {
        // SAFETY: the caller's contract covers `store_bf16`'s.
        unsafe { self.store_bf16(p, v) }
    }
    /// The `F32_LANES` float16s whose bits are at `p`, widened to `f32` (exactly).
    ///
    /// # Safety
    /// `p` is valid for reads of `F32_LANES` `u16`s.
    unsafe fn load_f16(self, p: *const u16) -> Self::F32;
    /// Every lane of `v` rounded to float16 as `half::f16::from_f32` rounds (to nearest even,
    /// overflow to infinity, subnormals kept; NaN quietened), the bits written at `p`.
    ///
    /// # Safety
    /// `p` is valid for writes of `F32_LANES` `u16`s.
    unsafe fn store_f16(self, p: *mut u16, v: Self::F32);
    /// As [`Simd::store_f16`], with a non-temporal store, as [`Simd::stream_bf16`].
    ///
    /// # Safety
    /// As [`Simd::stream_bf16`].
    #[inline(always)]
    unsafe fn stream_f16(self, p: *mut u16, v: Self::F32) {
        // SAFETY: the caller's contract covers `store_f16`'s.
        unsafe { self.store_f16(p, v) }
    }
    /// `a * b`.
    fn mul_f32(self, a: Self::F32, b: Self::F32) -> Self::F32;
    /// As [`Simd::max_f64`].
    fn max_f32(self, a: Self::F32, b: Self::F32) -> Self::F32;
    /// `a` or `b` is NaN.
    fn unord_f32(self, a: Self::F32, b: Self::F32) -> Self::M32;
    /// Either mask's flag.
    fn or_m32(self, a: Self::M32, b: Self::M32) -> Self::M32;
    /// No lane flagged.
    fn none_m32(self) -> Self::M32;
    /// Whether any lane is flagged.
    fn any_m32(self, m: Self::M32) -> bool;
    /// The largest lane, in the level's fixed order (`max_f32`'s rules).
    fn reduce_max_f32(self, v: Self::F32) -> f32;
    /// `a + b`.
    fn add_f32(self, a: Self::F32, b: Self::F32) -> Self::F32;
    /// `a - b`.
    fn sub_f32(self, a: Self::F32, b: Self::F32) -> Self::F32;
    /// `a * b + c`, rounded once.
    fn mul_add_f32(self, a: Self::F32, b: Self::F32, c: Self::F32) -> Self::F32;
    /// `a * b - c`, rounded once.
    fn mul_sub_f32(self, a: Self::F32, b: Self::F32, c: Self::F32) -> Self::F32;
    /// `c - a * b`, rounded once.
    fn neg_mul_add_f32(self, a: Self::F32, b: Self::F32, c: Self::F32) -> Self::F32;
    /// The level's `f32` exp of every lane: `-inf` gives exactly 0, NaN propagates.
    /// [`exp_f32_flushing`] by default (AVX2 and NEON).
    #[inline(always)]
    fn exp_f32(self, a: Self::F32) -> Self::F32 {
        exp_f32_flushing::<Self, false>(self, a, self.splat_f32(0.0))
    }
    /// `exp(a + lo)` for `|lo| <= 2^-10` and `a` at least the level's floor for folded
    /// arguments (`FoldedArg::x_floor`'s, or NaN): the exp of the folded argument.
    #[inline(always)]
    fn exp_f32_near(self, a: Self::F32, lo: Self::F32) -> Self::F32 {
        exp_f32_flushing::<Self, true>(self, a, lo)
    }
    /// `a < b` (ordered).
    fn lt_f32(self, a: Self::F32, b: Self::F32) -> Self::M32;
    /// 0 where `m` is set, `v` elsewhere.
    fn clear_f32(self, m: Self::M32, v: Self::F32) -> Self::F32;
    /// The bits of `v` shifted left by 23 (into the exponent field) as an `f32` vector.
    fn shift_into_exponent_f32(self, v: Self::F32) -> Self::F32;
    /// The first `F64_LANES` lanes of `v`, widened (exactly).
    fn widen_low(self, v: Self::F32) -> Self::F64;
    /// The last `F64_LANES` lanes of `v`, widened (exactly).
    fn widen_high(self, v: Self::F32) -> Self::F64;
    /// `lo` then `hi`, each lane rounded to `f32` (the inverse of the widenings).
    fn narrow(self, lo: Self::F64, hi: Self::F64) -> Self::F32;
    /// The first `r` lanes flagged, `r <= F32_LANES`.
    fn first_lanes_m32(self, r: usize) -> Self::M32;
    /// `v` where `m` is set, 0 elsewhere.
    fn keep_f32(self, m: Self::M32, v: Self::F32) -> Self::F32;
    /// `a` where `m` is set, `b` elsewhere.
    fn select_f32(self, m: Self::M32, a: Self::F32, b: Self::F32) -> Self::F32;
    /// Lane indices for [`Simd::permute_f32`].
    type Idx: Copy;
    /// The `F32_LANES` indices at `p`, each below `F32_LANES`.
    ///
    /// # Safety
    /// `p` is valid for reads of `F32_LANES` `i32`s.
    unsafe fn load_idx(self, p: *const i32) -> Self::Idx;
    /// Lane `l`: lane `idx[l]` of `v`.
    fn permute_f32(self, v: Self::F32, idx: Self::Idx) -> Self::F32;
    /// Lane `r` (for `r < F32_LANES`): the largest lane of `xs[r]`, for vectors without NaN
    /// (with NaN, any value). Through [`Simd::reduce_max_f32`] by default; the x86 levels
    /// reduce the rows together by a tree of shuffles.
    #[inline(always)]
    fn max_of_each(self, xs: &[Self::F32; MAX_F32_LANES]) -> Self::F32 {
        let mut m = [0.0f32; MAX_F32_LANES];
        for (slot, &x) in m.iter_mut().zip(xs).take(Self::F32_LANES) {
            *slot = self.reduce_max_f32(x);
        }
        // SAFETY: `m` holds `MAX_F32_LANES >= F32_LANES` elements.
        unsafe { self.load_f32(m.as_ptr()) }
    }
    /// [`Simd::reduce_add_f64`] of each of the first `F32_LANES` vectors (so the same bits):
    /// those of the first `F64_LANES` in the lanes of the first result, the others in the
    /// second. One by one by default; the x86 levels add the rows together by a tree of
    /// shuffles, the same additions in the same order.
    #[inline(always)]
    fn reduce_add_f64_each(self, v: &[Self::F64; MAX_F32_LANES]) -> (Self::F64, Self::F64) {
        let mut t = [0.0f64; MAX_F32_LANES];
        for (slot, &x) in t.iter_mut().zip(v).take(Self::F32_LANES) {
            *slot = self.reduce_add_f64(x);
        }
        // SAFETY: `t` holds `MAX_F32_LANES >= 2 F64_LANES` elements.
        unsafe {
            (
                self.load_f64(t.as_ptr()),
                self.load_f64(t.as_ptr().add(Self::F64_LANES)),
            )
        }
    }

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
    /// A plain store by default (a level without non-temporal stores).
    ///
    /// # Safety
    /// `p` is valid for writes of `F64_LANES` `f64`s and `STREAM_ALIGN`-aligned.
    #[inline(always)]
    unsafe fn stream_f64(self, p: *mut f64, v: Self::F64) {
        // SAFETY: the caller's contract covers `store_f64`'s.
        unsafe { self.store_f64(p, v) }
    }
    /// Orders the non-temporal stores before every later memory access.
    #[inline(always)]
    fn stream_fence(self) {}
    /// Asks for the cache line holding `p` to be brought into L2 (a hint: any address, no
    /// fault; nothing on a level without such a hint). Only the streamed schedules of
    /// `algo::pending` ask, which no aarch64 level uses yet.
    #[inline(always)]
    fn prefetch(self, _p: *const f32) {}

    /// `a + b`.
    fn add_f64(self, a: Self::F64, b: Self::F64) -> Self::F64;
    /// `a - b`.
    fn sub_f64(self, a: Self::F64, b: Self::F64) -> Self::F64;
    /// `a * b`.
    fn mul_f64(self, a: Self::F64, b: Self::F64) -> Self::F64;
    /// `a * b + c`, rounded once.
    fn mul_add_f64(self, a: Self::F64, b: Self::F64, c: Self::F64) -> Self::F64;
    /// `a / b`.
    fn div_f64(self, a: Self::F64, b: Self::F64) -> Self::F64;
    /// `a` where `m` is set, `b` elsewhere.
    fn select_f64(self, m: Self::M64, a: Self::F64, b: Self::F64) -> Self::F64;
    /// `(e, m)` with `x = m 2^e`, `m` in [1, 2), for positive normal `x` (exactly).
    fn split_exponent_f64(self, x: Self::F64) -> (Self::F64, Self::F64);
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
    /// The first `r` lanes flagged, `r < F64_LANES`.
    fn first_lanes_m64(self, r: usize) -> Self::M64;
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
    /// propagates and `-inf` gives exactly 0. [`exp_f64_flushing`] by default (AVX2, NEON).
    #[inline(always)]
    fn exp_f64(self, hi: Self::F64, lo: Self::F64) -> Self::F64 {
        exp_f64_flushing(self, hi, lo)
    }
}

/// `exp(a + lo)` (LO; else `exp(a)`, `lo` unused) for `|lo| <= 2^-10` by the constants of
/// [`super::exp_f32_poly`]: `k` is rounded from `a + lo` by adding `F32_ROUND_BIASED`, `lo`
/// joins the reduced argument after the Cody-Waite steps (so `r` stays within the polynomial's
/// |r| <= ln2/2 and carries `lo`'s bits), the degree-6 polynomial, a multiplication by `2^k`.
/// Results below `exp(F32_FLUSH)` (about 1.6e-38, just above the smallest normal `f32`) are
/// flushed to exactly 0, so no product ever underflows: on x86 an underflowing multiply takes
/// a microcode assist, which made masked (-inf) entries three times slower. NaN propagates
/// (the maximum with the limit keeps it: x86's returns its second operand, NEON's NaN).
#[inline(always)]
pub(crate) fn exp_f32_flushing<S: Simd, const LO: bool>(s: S, a: S::F32, lo: S::F32) -> S::F32 {
    let lim = s.splat_f32(F32_FLUSH);
    // True below the limit, -inf included; false for NaN.
    let flush = s.lt_f32(a, lim);
    let a = s.max_f32(lim, a);
    let whole = if LO { s.add_f32(a, lo) } else { a };
    let kr = s.mul_add_f32(whole, s.splat_f32(F32_LOG2E), s.splat_f32(F32_ROUND_BIASED));
    let k = s.sub_f32(kr, s.splat_f32(F32_ROUND_BIASED));
    let r = s.neg_mul_add_f32(k, s.splat_f32(F32_LN2_HI), a);
    let r = s.neg_mul_add_f32(k, s.splat_f32(F32_LN2_LO), r);
    let r = if LO { s.add_f32(r, lo) } else { r };
    let r2 = s.mul_f32(r, r);
    let mut p = s.splat_f32(F32_P[0]);
    for &c in &F32_P[1..] {
        p = s.mul_add_f32(p, r, s.splat_f32(c));
    }
    let y = s.add_f32(s.mul_add_f32(p, r2, r), s.splat_f32(1.0));
    // 2^k from the low bits of `kr`, which hold k + 127 (k in [-126, 127] after the clamp: a
    // normal number).
    s.clear_f32(flush, s.mul_f32(y, s.shift_into_exponent_f32(kr)))
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

/// An element type of the vector levels: the operations of [`Simd`] on its vectors under one
/// name, for the algorithms written once for `f32` and `f64` (the row maximum, elementwise
/// maps).
pub(crate) trait Lane<S: Simd>: Copy + PartialEq + 'static {
    /// A vector of `LANES` elements.
    type V: Copy;
    /// One flag per lane.
    type M: Copy;
    /// Lanes per vector.
    const LANES: usize;
    /// Whether `stream` is a non-temporal store (else a plain one).
    const STREAMS: bool;
    /// -inf.
    const MINUS_INF: Self;
    /// 0.
    const ZERO: Self;
    /// `x` rounded to this type.
    fn of_f64(x: f64) -> Self;
    /// Whether this is NaN.
    fn nan(self) -> bool;
    /// [`Simd::splat_f64`].
    fn splat(s: S, x: Self) -> Self::V;
    /// [`Simd::load_f64`].
    ///
    /// # Safety
    /// As there.
    unsafe fn load(s: S, p: *const Self) -> Self::V;
    /// [`Simd::load_f64_part`].
    ///
    /// # Safety
    /// As there.
    unsafe fn load_part(s: S, p: *const Self, r: usize, fill: Self) -> Self::V;
    /// [`Simd::store_f64`].
    ///
    /// # Safety
    /// As there.
    unsafe fn store(s: S, p: *mut Self, v: Self::V);
    /// [`Simd::store_f64_part`].
    ///
    /// # Safety
    /// As there.
    unsafe fn store_part(s: S, p: *mut Self, r: usize, v: Self::V);
    /// [`Simd::stream_f64`].
    ///
    /// # Safety
    /// As there.
    unsafe fn stream(s: S, p: *mut Self, v: Self::V);
    /// [`Simd::mul_f64`].
    fn mul(s: S, a: Self::V, b: Self::V) -> Self::V;
    /// [`Simd::max_f64`].
    fn max(s: S, a: Self::V, b: Self::V) -> Self::V;
    /// [`Simd::unord_f64`].
    fn unord(s: S, a: Self::V, b: Self::V) -> Self::M;
    /// [`Simd::or_m64`].
    fn or_m(s: S, a: Self::M, b: Self::M) -> Self::M;
    /// [`Simd::none_m64`].
    fn none_m(s: S) -> Self::M;
    /// [`Simd::any_m64`].
    fn any_m(s: S, m: Self::M) -> bool;
    /// [`Simd::reduce_max_f64`].
    fn reduce_max(s: S, v: Self::V) -> Self;
}

/// `Lane` for `$t` by `Simd`'s methods of suffix `$x`.
macro_rules! lane {
    ($t:ident, $v:ident, $m:ident, $lanes:ident, $splat:ident, $load:ident, $load_part:ident,
     $store:ident, $store_part:ident, $stream:ident, $mul:ident, $max:ident, $unord:ident,
     $or:ident, $none:ident, $any:ident, $reduce_max:ident) => {
        impl<S: Simd> Lane<S> for $t {
            type V = S::$v;
            type M = S::$m;
            const LANES: usize = S::$lanes;
            const STREAMS: bool = true;
            const MINUS_INF: $t = $t::NEG_INFINITY;
            const ZERO: $t = 0.0;
            #[inline(always)]
            fn of_f64(x: f64) -> $t {
                x as $t
            }
            #[inline(always)]
            fn nan(self) -> bool {
                self.is_nan()
            }
            #[inline(always)]
            fn splat(s: S, x: $t) -> S::$v {
                s.$splat(x)
            }
            #[inline(always)]
            unsafe fn load(s: S, p: *const $t) -> S::$v {
                // SAFETY: the caller's contract is the method's.
                unsafe { s.$load(p) }
            }
            #[inline(always)]
            unsafe fn load_part(s: S, p: *const $t, r: usize, fill: $t) -> S::$v {
                // SAFETY: the caller's contract is the method's.
                unsafe { s.$load_part(p, r, fill) }
            }
            #[inline(always)]
            unsafe fn store(s: S, p: *mut $t, v: S::$v) {
                // SAFETY: the caller's contract is the method's.
                unsafe { s.$store(p, v) }
            }
            #[inline(always)]
            unsafe fn store_part(s: S, p: *mut $t, r: usize, v: S::$v) {
                // SAFETY: the caller's contract is the method's.
                unsafe { s.$store_part(p, r, v) }
            }
            #[inline(always)]
            unsafe fn stream(s: S, p: *mut $t, v: S::$v) {
                // SAFETY: the caller's contract is the method's.
                unsafe { s.$stream(p, v) }
            }
            #[inline(always)]
            fn mul(s: S, a: S::$v, b: S::$v) -> S::$v {
                s.$mul(a, b)
            }
            #[inline(always)]
            fn max(s: S, a: S::$v, b: S::$v) -> S::$v {
                s.$max(a, b)
            }
            #[inline(always)]
            fn unord(s: S, a: S::$v, b: S::$v) -> S::$m {
                s.$unord(a, b)
            }
            #[inline(always)]
            fn or_m(s: S, a: S::$m, b: S::$m) -> S::$m {
                s.$or(a, b)
            }
            #[inline(always)]
            fn none_m(s: S) -> S::$m {
                s.$none()
            }
            #[inline(always)]
            fn any_m(s: S, m: S::$m) -> bool {
                s.$any(m)
            }
            #[inline(always)]
            fn reduce_max(s: S, v: S::$v) -> $t {
                s.$reduce_max(v)
            }
        }
    };
}

lane!(
    f32,
    F32,
    M32,
    F32_LANES,
    splat_f32,
    load_f32,
    load_f32_part,
    store_f32,
    store_f32_part,
    stream_f32,
    mul_f32,
    max_f32,
    unord_f32,
    or_m32,
    none_m32,
    any_m32,
    reduce_max_f32
);
lane!(
    f64,
    F64,
    M64,
    F64_LANES,
    splat_f64,
    load_f64,
    load_f64_part,
    store_f64,
    store_f64_part,
    stream_f64,
    mul_f64,
    max_f64,
    unord_f64,
    or_m64,
    none_m64,
    any_m64,
    reduce_max_f64
);

/// A 16-bit storage format of `f32` lanes (bfloat16, float16): loads widen exactly, stores
/// round to nearest even (NaN quietened), each with its level's instructions.
pub(crate) trait Half: Copy + PartialEq + Send + Sync + 'static {
    const NAN: Self;
    const NEG_INFINITY: Self;
    const ZERO: Self;
    fn from_f64(x: f64) -> Self;
    fn from_f32(x: f32) -> Self;
    fn to_f32(self) -> f32;
    fn to_bits(self) -> u16;
    /// # Safety
    /// As [`Simd::load_bf16`].
    unsafe fn load<S: Simd>(s: S, p: *const u16) -> S::F32;
    /// # Safety
    /// As [`Simd::store_bf16`].
    unsafe fn store<S: Simd>(s: S, p: *mut u16, v: S::F32);
    /// # Safety
    /// As [`Simd::stream_bf16`].
    unsafe fn stream<S: Simd>(s: S, p: *mut u16, v: S::F32);
}

macro_rules! half_format {
    ($t:ty, $load:ident, $store:ident, $stream:ident) => {
        impl Half for $t {
            const NAN: $t = <$t>::NAN;
            const NEG_INFINITY: $t = <$t>::NEG_INFINITY;
            const ZERO: $t = <$t>::ZERO;
            #[inline(always)]
            fn from_f64(x: f64) -> $t {
                <$t>::from_f64(x)
            }
            #[inline(always)]
            fn from_f32(x: f32) -> $t {
                <$t>::from_f32(x)
            }
            #[inline(always)]
            fn to_f32(self) -> f32 {
                <$t>::to_f32(self)
            }
            #[inline(always)]
            fn to_bits(self) -> u16 {
                <$t>::to_bits(self)
            }
            #[inline(always)]
            unsafe fn load<S: Simd>(s: S, p: *const u16) -> S::F32 {
                // SAFETY: the caller's contract is the method's.
                unsafe { s.$load(p) }
            }
            #[inline(always)]
            unsafe fn store<S: Simd>(s: S, p: *mut u16, v: S::F32) {
                // SAFETY: the caller's contract is the method's.
                unsafe { s.$store(p, v) }
            }
            #[inline(always)]
            unsafe fn stream<S: Simd>(s: S, p: *mut u16, v: S::F32) {
                // SAFETY: the caller's contract is the method's.
                unsafe { s.$stream(p, v) }
            }
        }
    };
}

half_format!(half::bf16, load_bf16, store_bf16, stream_bf16);
half_format!(half::f16, load_f16, store_f16, stream_f16);

/// 16-bit storage of `f32` lanes: loads widen (exactly), stores round (as
/// `convert::f32_to_bf16` for bfloat16, as `half::f16::from_f32` for float16), and everything
/// between is `f32` arithmetic. So an algorithm written for `f32` and run on such data computes
/// the `f32` results of the widened values and rounds each once on the way out, with no
/// conversion buffer. Tails go through a stack buffer.
impl<S: Simd, H: Half> Lane<S> for H {
    type V = S::F32;
    type M = S::M32;
    const LANES: usize = S::F32_LANES;
    const STREAMS: bool = true;
    const MINUS_INF: H = H::NEG_INFINITY;
    const ZERO: H = H::ZERO;
    #[inline(always)]
    fn of_f64(x: f64) -> H {
        H::from_f64(x)
    }
    #[inline(always)]
    fn nan(self) -> bool {
        self.to_f32().is_nan()
    }
    #[inline(always)]
    fn splat(s: S, x: H) -> S::F32 {
        s.splat_f32(x.to_f32())
    }
    #[inline(always)]
    unsafe fn load(s: S, p: *const H) -> S::F32 {
        // SAFETY: the caller's contract, for the elements' bits.
        unsafe { H::load(s, p.cast()) }
    }
    #[inline(always)]
    unsafe fn load_part(s: S, p: *const H, r: usize, fill: H) -> S::F32 {
        let mut buf = [fill.to_bits(); MAX_F32_LANES];
        // SAFETY: `p` is valid for `r < F32_LANES <= MAX_F32_LANES` reads (the caller's
        // contract); `buf` is a local array (disjoint from `p`) of at least `F32_LANES`.
        unsafe {
            std::ptr::copy_nonoverlapping(p.cast::<u16>(), buf.as_mut_ptr(), r);
            H::load(s, buf.as_ptr())
        }
    }
    #[inline(always)]
    unsafe fn store(s: S, p: *mut H, v: S::F32) {
        // SAFETY: as `load`.
        unsafe { H::store(s, p.cast(), v) }
    }
    #[inline(always)]
    unsafe fn store_part(s: S, p: *mut H, r: usize, v: S::F32) {
        let mut buf = [0u16; MAX_F32_LANES];
        // SAFETY: `buf` is a local array of at least `F32_LANES` elements; `p` is valid for
        // `r < F32_LANES` writes (the caller's contract) and disjoint from `buf`.
        unsafe {
            H::store(s, buf.as_mut_ptr(), v);
            std::ptr::copy_nonoverlapping(buf.as_ptr(), p.cast::<u16>(), r);
        }
    }
    #[inline(always)]
    unsafe fn stream(s: S, p: *mut H, v: S::F32) {
        // SAFETY: as `load`.
        unsafe { H::stream(s, p.cast(), v) }
    }
    #[inline(always)]
    fn mul(s: S, a: S::F32, b: S::F32) -> S::F32 {
        s.mul_f32(a, b)
    }
    #[inline(always)]
    fn max(s: S, a: S::F32, b: S::F32) -> S::F32 {
        s.max_f32(a, b)
    }
    #[inline(always)]
    fn unord(s: S, a: S::F32, b: S::F32) -> S::M32 {
        s.unord_f32(a, b)
    }
    #[inline(always)]
    fn or_m(s: S, a: S::M32, b: S::M32) -> S::M32 {
        s.or_m32(a, b)
    }
    #[inline(always)]
    fn none_m(s: S) -> S::M32 {
        s.none_m32()
    }
    #[inline(always)]
    fn any_m(s: S, m: S::M32) -> bool {
        s.any_m32(m)
    }
    /// Exact: the largest lane is a widened value of the format.
    #[inline(always)]
    fn reduce_max(s: S, v: S::F32) -> H {
        H::from_f32(s.reduce_max_f32(v))
    }
}

/// The primitives against their definitions, lane by lane, at every level this CPU has:
/// partial loads and stores at every length and at `f32`-only alignment (nothing past the
/// `r` elements read or written), the first-lanes mask, widening and narrowing, and the
/// reductions against a scalar fold in the documented order's result.
#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
mod tests {
    use super::{Simd, MAX_F32_LANES};
    use crate::simd::{cpu_has, SimdLevel};

    fn lanes_f32<S: Simd>(s: S, v: S::F32) -> Vec<f32> {
        let mut out = vec![0.0f32; S::F32_LANES];
        // SAFETY: `out` holds `F32_LANES` elements.
        unsafe { s.store_f32(out.as_mut_ptr(), v) };
        out
    }

    fn lanes_f64<S: Simd>(s: S, v: S::F64) -> Vec<f64> {
        let mut out = vec![0.0f64; S::F64_LANES];
        // SAFETY: `out` holds `F64_LANES` elements.
        unsafe { s.store_f64(out.as_mut_ptr(), v) };
        out
    }

    fn check<S: Simd>(s: S, name: &str) {
        let (l32, l64) = (S::F32_LANES, S::F64_LANES);
        let src32: Vec<f32> = (0..2 * l32 + 1).map(|i| i as f32 + 0.5).collect();
        for off in 0..2 {
            for r in 0..l32 {
                // SAFETY: `off + r < 2 l32 + 1` elements of `src32` are readable from `off`.
                let v = unsafe { s.load_f32_part(src32.as_ptr().add(off), r, -7.0) };
                let want: Vec<f32> = (0..l32)
                    .map(|j| if j < r { src32[off + j] } else { -7.0 })
                    .collect();
                assert_eq!(
                    lanes_f32(s, v),
                    want,
                    "{name} load_f32_part off={off} r={r}"
                );
                let mut dst = vec![99.0f32; l32 + 2];
                // SAFETY: `dst` holds `l32 + 2 > off + r` elements.
                unsafe { s.store_f32_part(dst.as_mut_ptr().add(off), r, v) };
                for (j, &x) in dst.iter().enumerate() {
                    let want = if j >= off && j < off + r {
                        src32[j]
                    } else {
                        99.0
                    };
                    assert_eq!(x, want, "{name} store_f32_part off={off} r={r} j={j}");
                }
                let widened = [lanes_f64(s, s.widen_low(v)), lanes_f64(s, s.widen_high(v))];
                let all: Vec<f32> = widened.concat().iter().map(|&x| x as f32).collect();
                assert_eq!(all, lanes_f32(s, v), "{name} widen r={r}");
                let back = s.narrow(s.widen_low(v), s.widen_high(v));
                assert_eq!(lanes_f32(s, back), lanes_f32(s, v), "{name} narrow r={r}");
                let m = s.reduce_max_f32(v);
                let want = lanes_f32(s, v)
                    .into_iter()
                    .fold(f32::NEG_INFINITY, f32::max);
                assert_eq!(m, want, "{name} reduce_max_f32 r={r}");
            }
        }
        check_half::<S, half::bf16>(s, name);
        check_half::<S, half::f16>(s, name);
        check_group(s, name);
        let src64: Vec<f64> = (0..2 * l64 + 1).map(|i| i as f64 * 0.25 - 1.0).collect();
        for r in 0..l64 {
            // SAFETY: `r < 2 l64 + 1` elements of `src64` are readable.
            let v = unsafe { s.load_f64_part(src64.as_ptr(), r, 3.0) };
            let want: Vec<f64> = (0..l64)
                .map(|j| if j < r { src64[j] } else { 3.0 })
                .collect();
            assert_eq!(lanes_f64(s, v), want, "{name} load_f64_part r={r}");
            let mut dst = vec![99.0f64; l64];
            // SAFETY: `dst` holds `l64 > r` elements.
            unsafe { s.store_f64_part(dst.as_mut_ptr(), r, v) };
            let want: Vec<f64> = (0..l64)
                .map(|j| if j < r { src64[j] } else { 99.0 })
                .collect();
            assert_eq!(dst, want, "{name} store_f64_part r={r}");
            let kept = s.keep_f64(s.first_lanes_m64(r), s.splat_f64(2.0));
            let want: Vec<f64> = (0..l64).map(|j| if j < r { 2.0 } else { 0.0 }).collect();
            assert_eq!(lanes_f64(s, kept), want, "{name} first_lanes_m64 r={r}");
            // Small integers and halves: every order of additions gives the exact sum.
            let sum = s.reduce_add_f64(v);
            assert_eq!(
                sum,
                lanes_f64(s, v).iter().sum::<f64>(),
                "{name} reduce_add r={r}"
            );
        }
    }

    /// The group primitives: masks, selections and permutations lane by lane, the per-row
    /// reductions against the one-vector ones (bit for bit: the values are not exactly
    /// summable, so a different order shows), the exponent split, and `row_ln` against
    /// `row_ln_f32`.
    fn check_group<S: Simd>(s: S, name: &str) {
        let (l32, l64) = (S::F32_LANES, S::F64_LANES);
        let v: Vec<f32> = (0..l32).map(|i| i as f32 * 1.5 - 4.0).collect();
        let w: Vec<f32> = (0..l32).map(|i| 100.0 + i as f32).collect();
        // SAFETY: `v` and `w` hold `l32` elements.
        let (a, b) = unsafe { (s.load_f32(v.as_ptr()), s.load_f32(w.as_ptr())) };
        for r in 0..=l32 {
            let m = s.first_lanes_m32(r);
            let want: Vec<f32> = (0..l32).map(|j| if j < r { v[j] } else { 0.0 }).collect();
            assert_eq!(
                lanes_f32(s, s.keep_f32(m, a)),
                want,
                "{name} keep_f32 r={r}"
            );
            let want: Vec<f32> = (0..l32).map(|j| if j < r { v[j] } else { w[j] }).collect();
            assert_eq!(
                lanes_f32(s, s.select_f32(m, a, b)),
                want,
                "{name} select_f32 r={r}"
            );
        }
        for r in 0..l64 {
            let (x, y) = (s.splat_f64(1.0), s.splat_f64(2.0));
            let got = lanes_f64(s, s.select_f64(s.first_lanes_m64(r), x, y));
            let want: Vec<f64> = (0..l64).map(|j| if j < r { 1.0 } else { 2.0 }).collect();
            assert_eq!(got, want, "{name} select_f64 r={r}");
        }
        let idx: Vec<i32> = (0..l32).map(|i| ((i * 7 + 3) % l32) as i32).collect();
        // SAFETY: `idx` holds `l32` indices, each below `l32`.
        let permuted = lanes_f32(s, s.permute_f32(a, unsafe { s.load_idx(idx.as_ptr()) }));
        let want: Vec<f32> = idx.iter().map(|&i| v[i as usize]).collect();
        assert_eq!(permuted, want, "{name} permute_f32");
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let rows: Vec<Vec<f32>> = (0..MAX_F32_LANES)
            .map(|_| (0..l32).map(|_| (next() * 200.0 - 100.0) as f32).collect())
            .collect();
        // SAFETY: every row holds `l32` elements.
        let xs: [S::F32; MAX_F32_LANES] =
            std::array::from_fn(|r| unsafe { s.load_f32(rows[r].as_ptr()) });
        let want: Vec<f32> = (0..l32)
            .map(|r| rows[r].iter().copied().fold(f32::NEG_INFINITY, f32::max))
            .collect();
        assert_eq!(lanes_f32(s, s.max_of_each(&xs)), want, "{name} max_of_each");
        let sums: Vec<Vec<f64>> = (0..MAX_F32_LANES)
            .map(|_| {
                (0..l64)
                    .map(|_| next() * 10f64.powi((next() * 30.0) as i32 - 15))
                    .collect()
            })
            .collect();
        // SAFETY: every row holds `l64` elements.
        let vs: [S::F64; MAX_F32_LANES] =
            std::array::from_fn(|r| unsafe { s.load_f64(sums[r].as_ptr()) });
        let (lo, hi) = s.reduce_add_f64_each(&vs);
        let got: Vec<u64> = [lanes_f64(s, lo), lanes_f64(s, hi)]
            .concat()
            .iter()
            .map(|x| x.to_bits())
            .collect();
        let want: Vec<u64> = (0..l32)
            .map(|r| s.reduce_add_f64(vs[r]).to_bits())
            .collect();
        assert_eq!(got, want, "{name} reduce_add_f64_each");
        for &x in &[
            1.0,
            1.5,
            2.0,
            3.999,
            1e-300,
            7.3e18,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            let (e, m) = s.split_exponent_f64(s.splat_f64(x));
            let (e, m) = (lanes_f64(s, e)[0], lanes_f64(s, m)[0]);
            assert!(
                (1.0..2.0).contains(&m),
                "{name} split_exponent_f64({x}): m={m}"
            );
            let want = ((x.to_bits() >> 52) as i64 - 1023) as f64;
            assert_eq!(e, want, "{name} split_exponent_f64({x}): e={e}");
            assert_eq!(
                m * 2f64.powi(e as i32),
                x,
                "{name} split_exponent_f64({x}): m={m}"
            );
        }
        for k in 0..200 {
            let x = 1.0 + next() * 10f64.powi(k % 8) + k as f64;
            let got = lanes_f64(s, crate::kernels::algo::grouped::row_ln(s, s.splat_f64(x)));
            let q = s.div_f64(s.splat_f64(x), s.splat_f64(3.0));
            assert_eq!(lanes_f64(s, q)[0], x / 3.0, "{name} div_f64");
            assert_eq!(
                got[0].to_bits(),
                crate::kernels::row_ln_f32(x).to_bits(),
                "{name} row_ln({x})"
            );
        }
    }

    /// 16-bit loads widen exactly and stores round as the crate's scalar conversions (`Float`'s,
    /// which the tile path uses: `convert::f32_to_bf16`, `half::f16::from_f32`; random
    /// bit patterns, ties, NaNs, infinities, values next to the largest finite value and, for
    /// float16, its subnormals and overflow); the partial ones touch the first `r` elements
    /// only.
    fn check_half<S: Simd, H: super::Half + crate::Float<Compute = f32>>(s: S, name: &str) {
        use super::Lane;
        let name = format!("{name} {}", std::any::type_name::<H>());
        let round = |v: f32| H::from_compute(v).to_bits();
        let l = S::F32_LANES;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut vals: Vec<f32> = (0..256 * l)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                f32::from_bits(x as u32)
            })
            .collect();
        // bfloat16's edges (the upper 16 bits of an f32) and float16's (65504 and past it,
        // the smallest subnormal 2^-24 and half of it, the smallest normal 2^-14).
        let f16_edges = [
            0x477F_E000u32,
            0x477F_F000,
            0x4780_0000,
            0x3380_0000,
            0x3300_0000,
        ];
        for hi in [
            0x0000u32, 0x3F80, 0x3F81, 0x7F7F, 0x7F80, 0x7FC0, 0x7F81, 0x0080,
        ]
        .into_iter()
        .chain(f16_edges.iter().map(|b| b >> 16))
        .chain([0x3880, 0x3300, 0x3280])
        {
            for lo in [
                0x0000u32, 0x0001, 0x0FFF, 0x1000, 0x1001, 0x7FFF, 0x8000, 0x8001, 0xFFFF,
            ] {
                vals.push(f32::from_bits(hi << 16 | lo));
                vals.push(f32::from_bits((hi | 0x8000) << 16 | lo));
            }
        }
        vals.resize(vals.len().next_multiple_of(l), 1.0);
        for chunk in vals.chunks_exact(l) {
            // SAFETY: `chunk` holds `l` elements.
            let v = unsafe { s.load_f32(chunk.as_ptr()) };
            let mut out = vec![0u16; l];
            // SAFETY: `out` holds `l` elements.
            unsafe { H::store(s, out.as_mut_ptr(), v) };
            let want: Vec<u16> = chunk.iter().map(|&v| round(v)).collect();
            assert_eq!(out, want, "{name} store of {chunk:?}");
            // SAFETY: as above.
            let back = lanes_f32(s, unsafe { H::load(s, out.as_ptr()) });
            let widened = |b: u16| {
                // SAFETY: `H` is a 16-bit type, every bit pattern a value.
                unsafe { std::mem::transmute_copy::<u16, H>(&b) }.to_compute()
            };
            let want: Vec<u32> = out.iter().map(|&b| widened(b).to_bits()).collect();
            let got: Vec<u32> = back.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want, "{name} load");
        }
        let src: Vec<H> = (0..2 * l + 1)
            .map(|i| H::from_f32(1.0 + i as f32 / 64.0))
            .collect();
        let fill = H::NEG_INFINITY;
        for off in 0..2 {
            for r in 0..l {
                // SAFETY: `off + r < 2 l + 1` elements of `src` are readable from `off`.
                let v = unsafe { <H as Lane<S>>::load_part(s, src.as_ptr().add(off), r, fill) };
                let want: Vec<f32> = (0..l)
                    .map(|j| if j < r { src[off + j] } else { fill }.to_f32())
                    .collect();
                assert_eq!(lanes_f32(s, v), want, "{name} load_part off={off} r={r}");
                let mut dst = vec![H::ZERO; l + 2];
                // SAFETY: `dst` holds `l + 2 > off + r` elements.
                unsafe { <H as Lane<S>>::store_part(s, dst.as_mut_ptr().add(off), r, v) };
                for (j, &b) in dst.iter().enumerate() {
                    let want = if j >= off && j < off + r {
                        src[j]
                    } else {
                        H::ZERO
                    };
                    assert!(b == want, "{name} store_part off={off} r={r} j={j}");
                }
            }
        }
    }

    #[test]
    fn primitives_match_their_definitions_at_every_level() {
        let mut checked = 0;
        #[cfg(target_arch = "x86_64")]
        {
            if cpu_has(SimdLevel::Avx2) {
                // SAFETY: the CPU has AVX2 and FMA (just checked).
                check(unsafe { super::avx2::Avx2::new() }, "avx2");
                checked += 1;
            }
            if cpu_has(SimdLevel::Avx512) {
                // SAFETY: the CPU has AVX-512F, AVX2 and FMA (just checked).
                check(unsafe { super::avx512::Avx512::new() }, "avx512");
                checked += 1;
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if cpu_has(SimdLevel::Neon) {
                // SAFETY: the CPU has NEON (just checked).
                check(unsafe { super::neon::Neon::new() }, "neon");
                checked += 1;
            }
        }
        if checked == 0 {
            eprintln!("no vector level on this CPU: the scalar kernels have no primitives");
        }
    }
}
