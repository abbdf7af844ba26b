//! Kernel tables, one per element type and instruction-set level, chosen once per process.
//!
//! A kernel works on one block of a row (at most [`BLOCK`] elements). Rows are cut into blocks
//! at fixed offsets and block results are combined in block order, so a row's result is the same
//! bits however many threads share the row (contract S9); see `row.rs`. Rows of at most
//! [`BLOCK`] elements go whole through the `rows` kernel, many rows per call (short rows a group
//! at a time, `algo::grouped`), with the bits the block kernels would give.
//!
//! Levels: `scalar` (the portable twin every vector kernel is tested against), on x86-64
//! `avx2` (AVX2 + FMA) and `avx512` (AVX-512F), on aarch64 `neon`, chosen at run time (contract
//! S12). The vector kernels are compiled with `#[target_feature]`, so a build for the platform
//! baseline carries them all; a table is only handed out for a level the running CPU has.
//!
//! Layers, each using only the ones above it:
//! - `isa/`: the primitive layer, the only code written per instruction set. The trait
//!   `isa::Simd` (loads and stores with tails, lane arithmetic, masks, reductions in a fixed
//!   order, the level's exp) with one implementation per ISA, whose values are tokens that
//!   exist only on a CPU with the ISA.
//! - `algo/`: the algorithms, written once over `Simd`: the row maximum and elementwise maps
//!   (`f32` and `f64`), the `f64` and `f32` block kernels, the grouped short-row kernels
//!   (packed, short and medium rows), the streamed schedules (pending writes overlapped with
//!   the next exp pass, prefetching) and the long-rows schedules; each level instantiates them
//!   inside `#[target_feature]` functions and builds its tables (`algo::f64::instantiate!`,
//!   `algo::f32::instantiate!`), so dispatch happens once per call, through the table.
//!
//! Every vector kernel computes `exp` the same way: the argument `a = (x - m) / t` (in `f32` when
//! `t == 1`; else, for `f32` data, folded into `f32` multiply-adds with `m / t` and `1 / t` split
//! into two `f32`s each ([`FoldedArg`]) or, for rows where that does not hold, in `f64`; for
//! `f64` data with a double-word correction), clamped below to a value
//! whose `exp` rounds to 0 (so `-inf` gives exactly 0 while NaN propagates), Cody-Waite reduction
//! `a = k ln2 + r`, `|r| <= ln2 / 2`, a polynomial for `exp(r)` (`f32`: degree 6, Chebyshev fit;
//! `f64`: degree 12 Taylor), and a scaling by `2^k`; except the AVX-512 `f32` exp, which reduces
//! to `|r| <= ln2 / 32` and takes `2^((k mod 16) / 16)` from a 16-entry table in a register, so
//! a degree-3 polynomial suffices (fewer multiply-adds per element). The scaling: AVX-512 `vscalef` rounds once into the
//! subnormals; AVX2 flushes results below about 1.6e-38 (`f32`) or 3.3e-308 (`f64`) to exactly 0,
//! because an underflowing multiply takes a slow microcode assist. `exp(0)` is exactly 1.
//!
//! Measured `f32` exp error (`tests/kernels.rs`, `s8_f32_exp_max_ulp_exhaustive`, every `f32` in
//! [-110, 0] against libm's `f64` exp): at most 1.070 ulp (AVX2) and 1.061 ulp (AVX-512).
//!
//! Sums: `f32` exps are added four vectors at a time in `f32`, then widened and accumulated in
//! `f64` lanes; `f64` exps are accumulated with TwoSum compensation per lane. Block sums are
//! combined in block order with Neumaier compensation (`SumAcc`).

pub(crate) mod algo;
pub(crate) mod isa;
pub(crate) mod scalar;

/// The constants of the vector levels' `f32` exp. The AVX2 and NEON kernels share all of them
/// (the same operations, so the same bits on both): `k = round(a / ln 2)` by the addition of
/// `F32_ROUND_BIASED`, Cody-Waite reduction, a degree-6 polynomial over |r| <= ln2/2, results below
/// `exp(F32_FLUSH)` flushed to 0. AVX-512 reduces to |r| <= ln2/32 with a table instead.
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
pub(crate) mod exp_f32_poly {
    pub(crate) const F32_LOG2E: f32 = std::f32::consts::LOG2_E;
    /// ln 2 split so that `k * LN2_HI` is exact for |k| < 2^15 (Cody-Waite).
    pub(crate) const F32_LN2_HI: f32 = 0.693_359_4;
    pub(crate) const F32_LN2_LO: f32 = -2.121_944_4e-4;
    pub(crate) const F32_P: [f32; 5] = [
        1.392_768_5e-3,
        8.364_38e-3,
        4.166_654_5e-2,
        1.666_657e-1,
        0.5,
    ];
    /// 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits.
    pub(crate) const F32_ROUND: f32 = 12_582_912.0;
    /// `F32_ROUND + 127`: adding it leaves `k + 127` (the biased exponent of 2^k) in the low
    /// mantissa bits, so shifting the bits left by 23 makes 2^k with no integer addition. The
    /// same `k` as `F32_ROUND` gives: rounding `x + 127 + F32_ROUND` differs from `127` plus
    /// rounding `x + F32_ROUND` only at ties, and `a * F32_LOG2E` is never a half-integer for an
    /// `f32` `a` of magnitude below 2^22 (the product is an odd multiple of 2^(e - 23), with
    /// `e <= -1` the exponent of `a`'s last bit). An exhaustive comparison over every `f32` in
    /// [-110, 1] found no difference when this constant replaced the integer addition.
    pub(crate) const F32_ROUND_BIASED: f32 = F32_ROUND + 127.0;
    /// Arguments below this give 0 (exp(-87) = 1.6e-38; exp(-87.34) is the smallest normal f32).
    pub(crate) const F32_FLUSH: f32 = -87.0;
}

/// The constants of the vector levels' `f64` exp of a double-word argument `hi + lo`:
/// `k = round(hi / ln 2)`, Cody-Waite reduction with a 32-bit `LN2_HI`, and the Taylor
/// polynomial of degree 12. AVX-512 rounds `k` with VRNDSCALEPD and scales with VSCALEFPD;
/// AVX2 and NEON (the same operations, so the same bits) round by adding `F64_ROUND` and flush
/// results below `exp(F64_FLUSH)` to 0.
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
pub(crate) mod exp_f64_poly {
    pub(crate) const F64_LOG2E: f64 = std::f64::consts::LOG2_E;
    /// ln 2 = LN2_HI + LN2_LO, LN2_HI with 32 significant bits (fdlibm), so `k * LN2_HI` is
    /// exact.
    pub(crate) const F64_LN2_HI: f64 = 6.931_471_803_691_238e-1;
    pub(crate) const F64_LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    /// 1/n! for n = 12 down to 2: the Taylor polynomial of degree 12, whose truncation error
    /// on |r| <= ln2/2 is below 2e-16 relative.
    pub(crate) const F64_P: [f64; 11] = [
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
    ];
    /// 1.5 * 2^52: adding it rounds to an integer held in the low mantissa bits.
    pub(crate) const F64_ROUND: f64 = 6_755_399_441_055_744.0;
    /// Arguments below this give 0 (exp(-708) = 3.3e-308; exp(-708.4) is the smallest normal
    /// f64).
    pub(crate) const F64_FLUSH: f64 = -708.0;
}

use crate::element::Real;
use crate::op::Op;
use crate::simd::{cpu_has, simd_level, SimdLevel};

/// Elements per block: the unit of within-row parallelism and of deterministic summation.
pub(crate) const BLOCK: usize = 16 * 1024;

/// The kernels of one level for compute type `C`.
///
/// The exp-based kernels take the row's (or block's) maximum `m`: every entry is `<= m` or NaN,
/// and `m` is finite.
pub struct Kernels<C: 'static> {
    /// Largest entry ignoring NaN (`-inf` for an empty or all `-inf` block), and whether any
    /// entry is NaN.
    pub max: fn(&[C]) -> (C, bool),
    /// `chunk_maxima(x, chunk, out)`: `max` of each consecutive chunk of `chunk` elements of
    /// `x` (the last one shorter) into `out` (`x.len().div_ceil(chunk)` of them; panics
    /// otherwise), in one call; whether any chunk holds NaN.
    pub chunk_maxima: fn(&[C], usize, &mut [C]) -> bool,
    /// Σ exp((x - m) / t), accumulated at least as precisely as `f64` pairwise summation.
    pub sum_exp: fn(&[C], C, f64) -> f64,
    /// dst = exp((src - m) / t), returning the sum as `sum_exp` would. `src == dst` allowed.
    pub exp_store_sum: unsafe fn(*const C, *mut C, usize, C, f64) -> f64,
    /// `exp_store_chunk_sums(src, dst, n, m, t, chunk, sums)`: as `exp_store_sum` over each
    /// consecutive chunk of `chunk` elements (the last one shorter), in one call, each chunk's
    /// sum (the bits `exp_store_sum` gives over it) stored at `sums`, in order.
    #[allow(clippy::type_complexity)]
    pub exp_store_chunk_sums: unsafe fn(*const C, *mut C, usize, C, f64, usize, *mut f64),
    /// dst *= factor.
    pub scale: unsafe fn(*mut C, usize, f64),
    /// dst = exp((src - m) / t) * factor, the same bits as `exp_store_sum` then `scale` give
    /// (so the two softmax schedules agree). `stream`: write with non-temporal stores where
    /// the level has them. `src == dst` allowed.
    pub exp_scale: unsafe fn(*const C, *mut C, usize, C, f64, f64, bool),
    /// dst = src * factor, rounded as `scale` rounds; `stream` as for `exp_scale`. `src` and
    /// `dst` are the same or disjoint.
    pub scale_to: unsafe fn(*const C, *mut C, usize, f64, bool),
    /// dst = (src - m) / t - log_sum; `stream` as for `exp_scale`. `src == dst` allowed.
    pub write_log_softmax: unsafe fn(*const C, *mut C, usize, C, f64, f64, bool),
    /// Whole rows of at most [`BLOCK`] elements, one call for many rows (the short-row path):
    /// `rows(op, batch, store)` computes `op` of each row of the [`RowBatch`], contract S6
    /// included. A row's result is the
    /// same bits as `max`, then `exp_store_sum` and `scale` by `1 / sum` (softmax) or `sum_exp`
    /// and `write_log_softmax` with `ln(sum)` (log-softmax) would give, `ln` being `f64::ln`
    /// except in the `f32` kernels of the vector levels, which use `row_ln_f32`. See [`Store`]
    /// for the ways the output may be written (without a scratch buffer, `Stream` takes
    /// `sum_exp`, then `exp_scale`). The bits are the same on every path.
    pub rows: unsafe fn(Op, RowBatch<C>, Store),
    /// Where the level has one: pass 1's exp pass over a block of a streamed row fused with
    /// another row's block write and a prefetch (see [`exp_sum_overlapped`]).
    pub exp_sum_overlapped: Option<ExpSumOverlapped<C>>,
    /// The [`EntropySums`] of a block with maximum `m`, in one pass.
    pub entropy_sums: fn(&[C], C) -> EntropySums,
    /// Where the level has one: [`row_sums`] of the leading rows of a call, as many as it takes
    /// (it returns how many), from `(src, n, count, t, maxima, totals)`.
    pub packed_sums: Option<PackedSums<C>>,
}

/// The type of [`Kernels::packed_sums`].
pub type PackedSums<C> = unsafe fn(*const C, usize, usize, f64, *mut C, *mut f64) -> usize;

/// Each row's maximum and the sum of its exps at temperature `t` (positive, finite), for the
/// rows of `n` elements (`1 <= n <= BLOCK`) stored one after the other in `x`, row `r`'s at
/// `maxima[r]` and `totals[r]`: the value `max` gives (a maximum made of zeros may carry
/// either sign, which changes no exp) and the bits `sum_exp(row, max, t)` gives. `totals[r]`
/// is NaN exactly when the row holds a NaN or a +inf, or no entry above -inf
/// (contract S6), and `maxima[r]` is then unspecified. Many short rows in one call: the vector
/// levels' `f32` kernels take them a group at a time.
///
/// # Panics
/// Unless `x` holds `maxima.len()` rows and `totals` as many entries.
pub(crate) fn row_sums<C: Real>(
    k: &Kernels<C>,
    x: &[C],
    n: usize,
    t: f64,
    maxima: &mut [C],
    totals: &mut [f64],
) {
    let count = maxima.len();
    assert!(x.len() == n * count && totals.len() == count && (1..=BLOCK).contains(&n));
    let done = match k.packed_sums {
        // SAFETY: `x` holds the `count` rows of `n` elements, `maxima` and `totals` `count`
        // entries (asserted), as the kernel's contract (`grouped::sums`) requires.
        Some(f) => unsafe {
            f(
                x.as_ptr(),
                n,
                count,
                t,
                maxima.as_mut_ptr(),
                totals.as_mut_ptr(),
            )
        },
        None => 0,
    };
    for (r, row) in x.chunks_exact(n).enumerate().skip(done) {
        let (m, nan) = (k.max)(row);
        maxima[r] = m;
        totals[r] = if nan || m == C::INFINITY || m == C::NEG_INFINITY {
            f64::NAN
        } else {
            (k.sum_exp)(row, m, t)
        };
    }
}

/// `count` rows of `n` elements for [`Kernels::rows`]: row `r` is read at `src + r * src_step`
/// and written at `dst + r * dst_step`, at the temperature `*temps.add(r * temp_step)`
/// (`temp_step` 0: one temperature for every row). The pointer arithmetic of its methods wraps,
/// so they are safe; what they give points into the rows when the batch is as
/// [`Kernels::rows`] requires and `r < count`.
#[derive(Debug, Clone, Copy)]
pub struct RowBatch<C> {
    pub src: *const C,
    pub src_step: usize,
    pub dst: *mut C,
    pub dst_step: usize,
    pub n: usize,
    pub count: usize,
    pub temps: *const f64,
    pub temp_step: usize,
}

impl<C> RowBatch<C> {
    /// `count` rows stored back to back (`n` apart, in `src` and `dst` alike), every one at the
    /// temperature at `t`.
    pub(crate) fn adjacent(
        src: *const C,
        dst: *mut C,
        n: usize,
        count: usize,
        t: *const f64,
    ) -> Self {
        RowBatch {
            src,
            src_step: n,
            dst,
            dst_step: n,
            n,
            count,
            temps: t,
            temp_step: 0,
        }
    }

    /// Row `r`'s source and destination.
    #[inline(always)]
    pub(crate) fn row(&self, r: usize) -> (*const C, *mut C) {
        (
            self.src.wrapping_add(r * self.src_step),
            self.dst.wrapping_add(r * self.dst_step),
        )
    }

    /// Row `r`'s temperature.
    ///
    /// # Safety
    /// `r < count`, and the batch's temperatures are readable.
    #[inline(always)]
    pub(crate) unsafe fn temp(&self, r: usize) -> f64 {
        // SAFETY: temperature `r < count` is readable (# Safety).
        unsafe { *self.temps.add(r * self.temp_step) }
    }

    /// Up to `len` rows from row `first` (`first <= count`).
    #[inline(always)]
    pub(crate) fn rows(self, first: usize, len: usize) -> Self {
        let (src, dst) = self.row(first);
        RowBatch {
            src,
            dst,
            temps: self.temps.wrapping_add(first * self.temp_step),
            count: len.min(self.count - first),
            ..self
        }
    }
}

/// What a row's entropy at temperature 1 takes, over a block with maximum `m`: the weights
/// `e = exp(x - m)` summed (the bits `sum_exp` gives at `t = 1`), `Σ e (x - m)` over the
/// finite `x`, and how many `x` are finite. The dynamic temperature of contract P26 is
/// `ln total - dot / total` over `ln finite`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EntropySums {
    /// Σ e.
    pub total: f64,
    /// Σ e (x - m) over the finite `x`.
    pub dot: f64,
    /// The number of finite `x`.
    pub finite: usize,
}

/// The `f32` block kernels of one vector level over 16-bit storage `H` (bfloat16, float16):
/// loads widen in registers and stores round each result once to `H`, so a block's results are
/// the bits the `f32` kernels give on the widened values, rounded (as `convert::f32_to_bf16`,
/// or `half::f16::from_f32`), without a conversion buffer. Only for temperatures `takes`
/// accepts (the others need the portable kernels, which read `f32`).
pub(crate) struct HalfKernels<H> {
    /// Whether the kernels below compute at temperature `t`.
    pub(crate) takes: fn(f64) -> bool,
    /// As [`Kernels::max`], the maximum widened.
    pub(crate) max: fn(&[H]) -> (f32, bool),
    /// As [`Kernels::chunk_maxima`], the maxima widened.
    pub(crate) chunk_maxima: fn(&[H], usize, &mut [f32]) -> bool,
    /// `exp_sum(src, exps, n, m, t, ahead, ahead_bytes)`: as [`Kernels::exp_store_sum`], the
    /// exps in `f32` (a scratch buffer, disjoint), or as [`Kernels::sum_exp`] when `exps` is
    /// null; meanwhile asks for the `ahead_bytes` bytes at `ahead` to be brought into the
    /// caches.
    #[allow(clippy::type_complexity)]
    pub(crate) exp_sum: unsafe fn(*const H, *mut f32, usize, f32, f64, *const u8, usize) -> f64,
    /// As [`Kernels::exp_store_chunk_sums`], the exps in `f32` (disjoint from `src`).
    #[allow(clippy::type_complexity)]
    pub(crate) exp_store_chunk_sums:
        unsafe fn(*const H, *mut f32, usize, f32, f64, usize, *mut f64),
    /// As [`Kernels::scale_to`] from `f32` exps, each product rounded to `H` (disjoint).
    pub(crate) scale_to: unsafe fn(*const f32, *mut H, usize, f64, bool),
    /// As [`Kernels::exp_scale`].
    pub(crate) exp_scale: unsafe fn(*const H, *mut H, usize, f32, f64, f64, bool),
    /// As [`Kernels::write_log_softmax`].
    pub(crate) write_log_softmax: unsafe fn(*const H, *mut H, usize, f32, f64, f64, bool),
}

/// A 16-bit storage type with [`HalfKernels`] at the vector levels.
pub(crate) trait HalfRows: isa::Half {
    /// The kernels of `level`; `None` when this CPU lacks `level` or it is the scalar one
    /// (whose kernels compute in `f64` from `f32` buffers).
    fn kernels_for(level: SimdLevel) -> Option<&'static HalfKernels<Self>>;
}

macro_rules! half_rows {
    ($t:ty, $table:ident) => {
        impl HalfRows for $t {
            fn kernels_for(level: SimdLevel) -> Option<&'static HalfKernels<$t>> {
                match level {
                    #[cfg(target_arch = "x86_64")]
                    SimdLevel::Avx512 if cpu_has(SimdLevel::Avx512) => {
                        Some(&algo::f32::avx512::$table)
                    }
                    #[cfg(target_arch = "x86_64")]
                    SimdLevel::Avx2 if cpu_has(SimdLevel::Avx2) => Some(&algo::f32::avx2::$table),
                    #[cfg(target_arch = "aarch64")]
                    SimdLevel::Neon if cpu_has(SimdLevel::Neon) => Some(&algo::f32::neon::$table),
                    _ => None,
                }
            }
        }
    };
}

half_rows!(half::bf16, BF16);
half_rows!(half::f16, F16);

/// `f(src, exps, n, m, t, write, ahead, ahead_n)`: the sum `sum_exp` gives over the `n`
/// elements at `src`, storing the exps at `exps` as `exp_store_sum` would unless `exps` is
/// null; meanwhile does `write` (the same bits as [`BlockWrite::run`]) and asks for the
/// `ahead_n` elements at `ahead` to be brought into the caches.
pub type ExpSumOverlapped<C> =
    unsafe fn(*const C, *mut C, usize, C, f64, Option<&BlockWrite<C>>, *const C, usize) -> f64;

/// One block of a streamed row's output: what pass 2 of `row.rs` writes, with non-temporal
/// stores, once the row's maximum and sum are known.
#[derive(Debug, Clone, Copy)]
pub enum BlockWrite<C> {
    /// `dst = src * factor`, as `scale_to` (softmax, from the kept exps).
    Scale {
        src: *const C,
        dst: *mut C,
        n: usize,
        factor: f64,
    },
    /// `dst = exp((src - m) / t) * factor`, as `exp_scale` (softmax, exps not kept).
    ExpScale {
        src: *const C,
        dst: *mut C,
        n: usize,
        m: C,
        t: f64,
        factor: f64,
    },
    /// `dst = (src - m) / t - log_sum`, as `write_log_softmax`.
    Log {
        src: *const C,
        dst: *mut C,
        n: usize,
        m: C,
        t: f64,
        log_sum: f64,
    },
}

impl<C: Real> BlockWrite<C> {
    /// Writes the block with the plain kernels of `k`.
    ///
    /// # Safety
    /// `src` is valid for reads and `dst` for writes of `n` elements, the same or disjoint.
    pub(crate) unsafe fn run(&self, k: &Kernels<C>) {
        // SAFETY: the block's `src` and `dst` are valid for its `n` elements, the same or
        // disjoint (this function's contract), which is what each kernel asks.
        unsafe {
            match *self {
                BlockWrite::Scale {
                    src,
                    dst,
                    n,
                    factor,
                } => (k.scale_to)(src, dst, n, factor, true),
                BlockWrite::ExpScale {
                    src,
                    dst,
                    n,
                    m,
                    t,
                    factor,
                } => (k.exp_scale)(src, dst, n, m, t, factor, true),
                BlockWrite::Log {
                    src,
                    dst,
                    n,
                    m,
                    t,
                    log_sum,
                } => (k.write_log_softmax)(src, dst, n, m, t, log_sum, true),
            }
        }
    }
}

/// Pass 1's exp pass over one block of a streamed row (the sum, and the exps at `exps` unless
/// null), with `write` and a prefetch of the `ahead_n` elements at `ahead`: fused into one loop
/// where the level has [`Kernels::exp_sum_overlapped`] (so that reading and writing memory
/// overlap the arithmetic), else one after the other. The same bits either way.
///
/// # Safety
/// `src` is valid for reads of `n` elements and `exps`, unless null, for writes of `n`
/// (the same as `src` or disjoint); every element is `<= m` or NaN, `m` finite; `write` as for
/// [`BlockWrite::run`], disjoint from both.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn exp_sum_overlapped<C: Real>(
    k: &Kernels<C>,
    src: *const C,
    exps: *mut C,
    n: usize,
    m: C,
    t: f64,
    write: Option<&BlockWrite<C>>,
    ahead: *const C,
    ahead_n: usize,
) -> f64 {
    // SAFETY: this function's contract is both callees' (`exp_sum_overlapped`'s kernels are
    // the level's, which only exist on a CPU that has it).
    unsafe {
        match k.exp_sum_overlapped {
            Some(f) => f(src, exps, n, m, t, write, ahead, ahead_n),
            None => exp_sum_unfused(k, src, exps, n, m, t, write, ahead, ahead_n),
        }
    }
}

/// [`exp_sum_overlapped`] one step after the other, with the plain kernels of `k`.
///
/// # Safety
/// As [`exp_sum_overlapped`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn exp_sum_unfused<C: Real>(
    k: &Kernels<C>,
    src: *const C,
    exps: *mut C,
    n: usize,
    m: C,
    t: f64,
    write: Option<&BlockWrite<C>>,
    ahead: *const C,
    ahead_n: usize,
) -> f64 {
    if let Some(w) = write {
        // SAFETY: `write` is valid as `BlockWrite::run` asks (this function's contract).
        unsafe { w.run(k) };
    }
    prefetch(ahead as *const u8, ahead_n * std::mem::size_of::<C>());
    // SAFETY: `src` is valid for reads of `n` elements, and `exps` (not null here) for writes
    // of `n`, the same or disjoint (this function's contract).
    unsafe {
        if exps.is_null() {
            (k.sum_exp)(std::slice::from_raw_parts(src, n), m, t)
        } else {
            (k.exp_store_sum)(src, exps, n, m, t)
        }
    }
}

/// How the many-rows kernel writes a softmax (log-softmax only streams or not). Every mode gives
/// the same bits; they differ in memory traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// The exps go to the output, which is then scaled in place. (There is no mode keeping
    /// the exps in a scratch buffer and writing the output once with normal stores: it
    /// measured slower; `benches/results/tuning.md`, "kernels::Store".)
    Cached,
    /// The exps go to a per-thread scratch buffer (hot in L1), then one scaled write of the
    /// output with non-temporal stores: for outputs larger than the caches. (The AVX-512 `f32`
    /// kernel writes each row during the next row's exp pass, so that writing to memory
    /// overlaps arithmetic, which measured faster than writing each row in one burst.)
    Stream,
}

/// 1, or a temperature whose reciprocal lies in [2^-100, 2^100] (about 7.9e-31 to 1.27e30): the
/// temperatures the packed short-row kernels, and AVX-512's `f32` kernels, take (the latter
/// split the reciprocal into `f32` parts, which must be normal). Others take the plain
/// kernels, which are exact for any temperature.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline]
pub(crate) fn moderate_temperature(t: f64) -> bool {
    t == 1.0 || (1.0 / RECIPROCAL_LIMIT..=RECIPROCAL_LIMIT).contains(&(1.0 / t))
}

/// 2^100: see [`moderate_temperature`].
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const RECIPROCAL_LIMIT: f64 = 1.267_650_600_228_229_4e30;

/// The largest `|m / t|` (row maximum over temperature) for which the vector `f32` kernels fold
/// the temperature into `f32` arithmetic ([`FoldedArg`]).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) const FOLD_LIMIT: f64 = 4096.0;

/// How far below a row's maximum, in units of `t`, the folded form raises entries
/// ([`FoldedArg::x_floor`]): their exp, below e^-120, is 0 in `f32` either way.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) const FOLD_FLOOR: f64 = 120.0;

/// A row's exp argument `(x - m) / t` in `f32` arithmetic, as the vector `f32` kernels compute
/// it at a temperature other than 1: `a = x * inv_hi - mi_hi`, rounded once by a multiply-add
/// (the product is exact inside it), and the small rest `lo = x * inv_lo - mi_lo`, which the
/// exp adds to its reduced argument; `inv_hi + inv_lo` is `1 / t` and `mi_hi + mi_lo` is
/// `m / t` (each pair within 2^-48 relative). So the argument is within half an ulp (plus
/// 2^-30) of `(x - m) / t`, as `x - m` is at temperature 1. Rounding `x - m` first and then
/// multiplying by `1 / t` would cost up to 1.8e-6 relative on 262144-entry rows, against
/// contract S8's 2e-6: that rounding's relative error peaks just above a power of two, where
/// the argument's need not. Widening to `f64` instead costs about 10 more operations per
/// vector.
///
/// Entries are first raised to `x_floor = m - 120 t` (their exp is 0 either way; -inf becomes
/// finite). Then `|x / t| <= 4096 + 121`, so `|lo| <= 2^-24 (4217 + 4096) < 2^-10`, and
/// `|a| <= 121`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct FoldedArg {
    pub inv_hi: f32,
    pub inv_lo: f32,
    pub neg_mi_hi: f32,
    pub neg_mi_lo: f32,
    pub x_floor: f32,
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
impl FoldedArg {
    /// The terms for row maximum `m` at reciprocal temperature `inv`, or `None` where the
    /// folded form does not hold: `inv` is 1, outside [2^-100, 2^100] (its `f32` parts would
    /// not be normal), or `|m * inv|` above [`FOLD_LIMIT`] (or `m` not finite).
    #[inline]
    pub fn new(m: f32, inv: f64) -> Option<FoldedArg> {
        let mi = m as f64 * inv;
        let moderate = (1.0 / RECIPROCAL_LIMIT..=RECIPROCAL_LIMIT).contains(&inv);
        // False for NaN (`m` NaN) and infinities.
        let small = (0.0..=FOLD_LIMIT).contains(&mi.abs());
        if inv == 1.0 || !moderate || !small {
            return None;
        }
        let (inv_hi, mi_hi) = (inv as f32, mi as f32);
        Some(FoldedArg {
            inv_hi,
            inv_lo: (inv - inv_hi as f64) as f32,
            neg_mi_hi: -mi_hi,
            neg_mi_lo: -((mi - mi_hi as f64) as f32),
            x_floor: (m as f64 - FOLD_FLOOR / inv) as f32,
        })
    }
}

/// Compensated (Neumaier) sum of block or chunk partial sums.
#[derive(Default, Clone, Copy)]
pub(crate) struct SumAcc {
    sum: f64,
    comp: f64,
}

impl SumAcc {
    #[inline]
    pub fn add(&mut self, v: f64) {
        let t = self.sum + v;
        if self.sum.abs() >= v.abs() {
            self.comp += (self.sum - t) + v;
        } else {
            self.comp += (v - t) + self.sum;
        }
        self.sum = t;
    }

    #[inline]
    pub fn total(self) -> f64 {
        self.sum + self.comp
    }
}

/// Natural log of a row's `f32` exp-sum (`x >= 1`, finite), inlined into the many-rows kernels
/// of the vector levels: reduction to `m * 2^e` with `m` in [sqrt(1/2), sqrt(2)), then
/// `ln m = 2 atanh(z)`, `z = (m - 1) / (m + 1)`, `|z| <= 0.1716`, by its series to `z^11`
/// (truncation below 2e-11 absolute): far below the `f32` bounds of S8, and several times
/// cheaper than a call to libm's `ln`.
#[inline(always)]
pub(crate) fn row_ln_f32(x: f64) -> f64 {
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let z = (m - 1.0) / (m + 1.0);
    let z2 = z * z;
    let p = 1.0 / 9.0 + z2 * (1.0 / 11.0);
    let p = 1.0 / 7.0 + z2 * p;
    let p = 1.0 / 5.0 + z2 * p;
    let p = 1.0 / 3.0 + z2 * p;
    let atanh2 = 2.0 * z + 2.0 * z * z2 * p;
    e as f64 * std::f64::consts::LN_2 + atanh2
}

/// Largest per-thread scratch buffer: rows whose exps need more are streamed by computing the
/// exps twice instead (`sum_exp`, then `exp_scale`).
pub(crate) const SCRATCH_MAX_BYTES: usize = 4 << 20;

std::thread_local! {
    static SCRATCH: std::cell::Cell<Vec<u64>> = const { std::cell::Cell::new(Vec::new()) };
}

/// This thread's scratch buffer, taken out of its slot while in use (so a nested user gets a
/// fresh one rather than a conflict) and put back on drop. It only grows, to at most
/// [`SCRATCH_MAX_BYTES`]: no allocation once it has reached the largest row seen.
pub(crate) struct Scratch {
    buf: Vec<u64>,
}

impl Scratch {
    /// A buffer of at least `bytes` bytes, 8-byte aligned; `None` above [`SCRATCH_MAX_BYTES`].
    pub(crate) fn take(bytes: usize) -> Option<Scratch> {
        if bytes > SCRATCH_MAX_BYTES {
            return None;
        }
        let mut buf = SCRATCH.try_with(|c| c.take()).unwrap_or_default();
        let words = bytes.div_ceil(8);
        if buf.len() < words {
            buf.resize(words, 0);
        }
        Some(Scratch { buf })
    }

    /// The buffer as elements of `C` (`f32` or `f64`).
    pub(crate) fn ptr<C>(&mut self) -> *mut C {
        self.buf.as_mut_ptr().cast()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let _ = SCRATCH.try_with(|c| c.set(buf));
    }
}

/// Generates the `rows` kernel of a level from its block kernels, compiled with the level's
/// target features so that the block kernels inline into it.
/// The many-rows kernel asks for the row this many rows ahead while it computes the current
/// one, so that reading memory overlaps computing (the rows are too short for the hardware
/// prefetcher to run far enough ahead on its own).
pub(crate) const ROWS_PREFETCH_AHEAD: usize = 2;

/// Hints the CPU to bring `bytes` bytes from `p` into the caches. Never faults, whatever `p`.
#[inline(always)]
pub(crate) fn prefetch(p: *const u8, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let mut off = 0;
        while off < bytes {
            // SAFETY: PREFETCHT0 is a hint; it does not fault on any address (SSE, baseline).
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    p.wrapping_add(off) as *const i8,
                )
            };
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, bytes);
}

macro_rules! rows_kernel {
    ($name:ident, $t:ty, $feat:literal, $max:path, $ess:path, $se:path, $scale:path, $st:path, $es:path, $wls:path, $ln:path) => {
        /// # Safety
        /// As [`Kernels::rows`](super::Kernels): row `i` of `src` is valid for reads and of
        /// `dst` for writes of `n` elements, each the same as or disjoint from the other; every
        /// temperature read is positive and finite; the CPU has the level's features.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn $name(
            op: $crate::op::Op,
            b: $crate::kernels::RowBatch<$t>,
            store: $crate::kernels::Store,
        ) {
            let n = b.n;
            let stream = store == $crate::kernels::Store::Stream;
            let mut scratch =
                if op == $crate::op::Op::Softmax && store != $crate::kernels::Store::Cached {
                    $crate::kernels::Scratch::take(n * std::mem::size_of::<$t>())
                } else {
                    None
                };
            for r in 0..b.count {
                // SAFETY: `r < count`: row `r` of `src` is readable and of `dst` writable, the
                // same or disjoint, and its temperature readable (this function's contract);
                // the kernels called below are the level's, whose features the CPU has, and
                // take exactly such a row.
                unsafe {
                    let (s, d) = b.row(r);
                    let t = b.temp(r);
                    if r + $crate::kernels::ROWS_PREFETCH_AHEAD < b.count {
                        $crate::kernels::prefetch(
                            b.row(r + $crate::kernels::ROWS_PREFETCH_AHEAD).0 as *const u8,
                            n * std::mem::size_of::<$t>(),
                        );
                    }
                    let (m, nan) = $max(std::slice::from_raw_parts(s, n));
                    if nan || m == <$t>::INFINITY || m == <$t>::NEG_INFINITY {
                        // Contract S6: NaN or +inf anywhere, or no entry above -inf.
                        for i in 0..n {
                            *d.add(i) = <$t>::NAN;
                        }
                        continue;
                    }
                    match op {
                        $crate::op::Op::Softmax if store != $crate::kernels::Store::Cached => {
                            if let Some(sc) = scratch.as_mut() {
                                let e = sc.ptr::<$t>();
                                let total = $ess(s, e, n, m, t);
                                $st(e, d, n, 1.0 / total, stream);
                            } else {
                                let total = $se(std::slice::from_raw_parts(s, n), m, t);
                                $es(s, d, n, m, t, 1.0 / total, true);
                            }
                        }
                        $crate::op::Op::Softmax => {
                            let total = $ess(s, d, n, m, t);
                            $scale(d, n, 1.0 / total);
                        }
                        $crate::op::Op::LogSoftmax => {
                            let total = $se(std::slice::from_raw_parts(s, n), m, t);
                            $wls(s, d, n, m, t, $ln(total), stream);
                        }
                    }
                }
            }
        }
    };
}
pub(crate) use rows_kernel;

/// A vector level's kernel table for one compute type, `$table: $t { kernel paths }`: the
/// level's `max_impl` and `sum_exp_impl` (unsafe: they need the level's CPU features) behind
/// the safe `max` and `sum_exp` entries, the other kernels as they are.
macro_rules! level_table {
    ($(#[$doc:meta])* $table:ident: $t:ty {
        max: $max:path,
        chunk_maxima: $cm:path,
        sum_exp: $se:path,
        exp_store_sum: $ess:path,
        exp_store_chunk_sums: $escs:path,
        scale: $scale:path,
        scale_to: $st:path,
        exp_scale: $es:path,
        write_log_softmax: $wls:path,
        rows: $rows:path,
        exp_sum_overlapped: $ov:expr,
        entropy_sums: $ent:path,
        packed_sums: $ps:expr $(,)?
    }) => {
        $(#[$doc])*
        pub(crate) static $table: $crate::kernels::Kernels<$t> = {
            fn max(x: &[$t]) -> ($t, bool) {
                // SAFETY: only reachable through this table, which `kernels_for` hands out only
                // when the CPU has the level's features.
                unsafe { $max(x) }
            }
            fn chunk_maxima(x: &[$t], chunk: usize, out: &mut [$t]) -> bool {
                // SAFETY: as `max`.
                unsafe { $cm(x, chunk, out) }
            }
            fn sum_exp(x: &[$t], m: $t, t: f64) -> f64 {
                // SAFETY: as `max`.
                unsafe { $se(x, m, t) }
            }
            fn entropy_sums(x: &[$t], m: $t) -> $crate::kernels::EntropySums {
                // SAFETY: as `max`.
                unsafe { $ent(x, m) }
            }
            $crate::kernels::Kernels {
                max,
                chunk_maxima,
                sum_exp,
                exp_store_sum: $ess,
                exp_store_chunk_sums: $escs,
                scale: $scale,
                scale_to: $st,
                exp_scale: $es,
                write_log_softmax: $wls,
                rows: $rows,
                exp_sum_overlapped: $ov,
                entropy_sums,
                packed_sums: $ps,
            }
        };
    };
}
pub(crate) use level_table;

macro_rules! scalar_table {
    ($t:ty) => {
        Kernels::<$t> {
            max: scalar::max::<$t>,
            chunk_maxima: |x, chunk, out| algo::chunk_maxima(x, chunk, out, scalar::max::<$t>),
            sum_exp: scalar::sum_exp::<$t>,
            exp_store_sum: scalar::exp_store_sum::<$t>,
            exp_store_chunk_sums: scalar::exp_store_chunk_sums::<$t>,
            scale: scalar::scale::<$t>,
            scale_to: scalar::scale_to::<$t>,
            exp_scale: scalar::exp_scale::<$t>,
            write_log_softmax: scalar::write_log_softmax::<$t>,
            rows: scalar::rows::<$t>,
            exp_sum_overlapped: None,
            entropy_sums: scalar::entropy_sums::<$t>,
            packed_sums: None,
        }
    };
}

static SCALAR_F32: Kernels<f32> = scalar_table!(f32);
static SCALAR_F64: Kernels<f64> = scalar_table!(f64);

fn f32_table(level: SimdLevel) -> &'static Kernels<f32> {
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 if cpu_has(SimdLevel::Avx512) => &algo::f32::avx512::F32,
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 if cpu_has(SimdLevel::Avx2) => &algo::f32::avx2::F32,
        #[cfg(target_arch = "aarch64")]
        SimdLevel::Neon if cpu_has(SimdLevel::Neon) => &algo::f32::neon::F32,
        _ => &SCALAR_F32,
    }
}

fn f64_table(level: SimdLevel) -> &'static Kernels<f64> {
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 if cpu_has(SimdLevel::Avx512) => &algo::f64::avx512::F64,
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 if cpu_has(SimdLevel::Avx2) => &algo::f64::avx2::F64,
        #[cfg(target_arch = "aarch64")]
        SimdLevel::Neon if cpu_has(SimdLevel::Neon) => &algo::f64::neon::F64,
        _ => &SCALAR_F64,
    }
}

/// The table of `level` for `C`; the scalar table when this CPU lacks `level` or the crate
/// has no kernels for it. (Chosen by type here, rather than through a trait of `Real`'s, so
/// that the element types do not depend on the kernels.)
#[inline]
pub(crate) fn kernels_for<C: Real>(level: SimdLevel) -> &'static Kernels<C> {
    use std::any::TypeId;
    let table: *const Kernels<C> = if TypeId::of::<C>() == TypeId::of::<f32>() {
        (f32_table(level) as *const Kernels<f32>).cast()
    } else if TypeId::of::<C>() == TypeId::of::<f64>() {
        (f64_table(level) as *const Kernels<f64>).cast()
    } else {
        unreachable!("Real is sealed: f32 and f64 only")
    };
    // SAFETY: `C` is the type whose table was taken (equal `TypeId`s), so the pointer is a
    // `&'static Kernels<C>` under another name.
    unsafe { &*table }
}

/// The kernels of the process's level for `C`.
#[inline]
pub(crate) fn kernels<C: Real>() -> &'static Kernels<C> {
    kernels_for::<C>(simd_level())
}

#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
mod folded_arg_tests {
    use super::{FoldedArg, FOLD_FLOOR, FOLD_LIMIT};

    #[test]
    fn folded_arg_only_where_its_bounds_hold() {
        for (m, inv) in [
            (3.0f32, 1.0),
            (f32::NAN, 2.0),
            (f32::INFINITY, 2.0),
            (f32::NEG_INFINITY, 2.0),
            (5000.0, 1.0 / 1.2),
            (-2049.0, 2.0),
            (0.0, 2f64.powi(101)),
            (0.0, 2f64.powi(-101)),
        ] {
            assert_eq!(FoldedArg::new(m, inv), None, "m={m} inv={inv}");
        }
        assert!(FoldedArg::new(-2048.0, 2.0).is_some());
        assert!(FoldedArg::new(0.0, 2f64.powi(100)).is_some());
    }

    /// The parts add up to `1 / t` and `m / t` within 2^-48 relative, the floor sits 120 t
    /// below the maximum, and the low part of the argument stays under 2^-10 for every entry
    /// from the floor to the maximum.
    #[test]
    fn folded_arg_parts() {
        for (m, t) in [
            (0.3f32, 0.7f64),
            (-17.25, 1.3),
            (4095.0 * 0.37, 0.37),
            (-4096.0 * 5.79, 5.79),
            (1e-22, 1e-25),
            (2.5e24, 1e21),
        ] {
            let inv = 1.0 / t;
            let f = FoldedArg::new(m, inv).unwrap_or_else(|| panic!("m={m} t={t}"));
            let close = |a: f64, b: f64| (a - b).abs() <= b.abs() * 2f64.powi(-48);
            assert!(close(f.inv_hi as f64 + f.inv_lo as f64, inv), "m={m} t={t}");
            let mi = -(f.neg_mi_hi as f64 + f.neg_mi_lo as f64);
            assert!(close(mi, m as f64 * inv), "m={m} t={t}");
            let below = (m as f64 - f.x_floor as f64) * inv;
            assert!(
                (FOLD_FLOOR - 0.01..=FOLD_FLOOR + 0.01).contains(&below),
                "m={m} t={t}: {below}"
            );
            for x in [f.x_floor, m] {
                let lo = x as f64 * f.inv_lo as f64 + f.neg_mi_lo as f64;
                assert!(lo.abs() < 2f64.powi(-10), "m={m} t={t} x={x}: {lo}");
                assert!((x as f64 * inv).abs() <= FOLD_LIMIT + 121.0);
            }
        }
    }
}
