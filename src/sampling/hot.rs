//! The sampler's own passes over a row, written so that the compiler vectorises them, and
//! compiled three times on x86-64: for the build's baseline, for AVX2 + FMA and for AVX-512F,
//! chosen by the crate's SIMD level (contract S12, `LOGITKIT_SIMD` included).

use crate::element::Real;

#[cfg(target_arch = "x86_64")]
use crate::simd::{simd_level, SimdLevel};

/// Defines `pub(crate) fn $name` over `C: Real` that runs `$body` compiled for the crate's SIMD
/// level: AVX-512F, AVX2 + FMA, or the baseline.
macro_rules! multiversion {
    // With a 16-bit storage type `H` besides the compute type.
    ($(#[$m:meta])* fn $name:ident<H>($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        #[allow(clippy::extra_unused_type_parameters)]
        pub(crate) fn $name<C: Real, H: $crate::sampling::hot::Stored16>($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::extra_unused_type_parameters)]
            fn imp<C: Real, H: $crate::sampling::hot::Stored16>($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            #[allow(clippy::extra_unused_type_parameters)]
            unsafe fn avx2<C: Real, H: $crate::sampling::hot::Stored16>($($arg: $ty),*) $(-> $ret)? {
                imp::<C, H>($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            #[allow(clippy::extra_unused_type_parameters)]
            unsafe fn avx512<C: Real, H: $crate::sampling::hot::Stored16>($($arg: $ty),*) $(-> $ret)? {
                imp::<C, H>($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            match simd_level() {
                // SAFETY: the SIMD level is AVX-512 only on CPUs with AVX-512F, AVX2 and FMA.
                SimdLevel::Avx512 => return unsafe { avx512::<C, H>($($arg),*) },
                // SAFETY: the SIMD level is AVX2 only on CPUs with AVX2 and FMA.
                SimdLevel::Avx2 => return unsafe { avx2::<C, H>($($arg),*) },
                _ => {}
            }
            imp::<C, H>($($arg),*)
        }
    };
    ($(#[$m:meta])* fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        #[allow(clippy::extra_unused_type_parameters)]
        pub(crate) fn $name<C: Real>($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::extra_unused_type_parameters)]
            fn imp<C: Real>($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            #[allow(clippy::extra_unused_type_parameters)]
            unsafe fn avx2<C: Real>($($arg: $ty),*) $(-> $ret)? {
                imp::<C>($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            #[allow(clippy::extra_unused_type_parameters)]
            unsafe fn avx512<C: Real>($($arg: $ty),*) $(-> $ret)? {
                imp::<C>($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            match simd_level() {
                // SAFETY: the SIMD level is AVX-512 only on CPUs with AVX-512F, AVX2 and FMA.
                SimdLevel::Avx512 => return unsafe { avx512::<C>($($arg),*) },
                // SAFETY: the SIMD level is AVX2 only on CPUs with AVX2 and FMA.
                SimdLevel::Avx2 => return unsafe { avx2::<C>($($arg),*) },
                _ => {}
            }
            imp::<C>($($arg),*)
        }
    };
}
// For the kernels of other modules (`select/kept.rs`).
pub(crate) use multiversion;

/// The slice as `f32` when `C` is `f32`.
#[inline(always)]
fn as_f32<C: Real>(xs: &[C]) -> Option<&[f32]> {
    if std::any::TypeId::of::<C>() == std::any::TypeId::of::<f32>() {
        // SAFETY: `C` is `f32`.
        Some(unsafe { std::slice::from_raw_parts(xs.as_ptr().cast::<f32>(), xs.len()) })
    } else {
        None
    }
}

/// The smallest `f32` that is `>= v` (`v` not NaN), so that `x >= v` is `x >= f32_at_least(v)`
/// for every `f32` `x`, and `x > v` is `x > f32_at_most(v)`.
#[inline(always)]
fn f32_at_least(v: f64) -> f32 {
    let c = v as f32;
    if (c as f64) < v {
        f32_next_up(c)
    } else {
        c
    }
}

/// The smallest `C` that is `>= v` (`v` not NaN): `x >= v` is `x >= at_least_in::<C>(v)` for
/// every `x` of type `C`.
pub(crate) fn at_least_in<C: Real>(v: f64) -> C {
    if std::mem::size_of::<C>() == 4 {
        C::from_f64(f64::from(f32_at_least(v)))
    } else {
        C::from_f64(v)
    }
}

/// The largest `f32` that is `<= v` (`v` not NaN).
#[inline(always)]
fn f32_at_most(v: f64) -> f32 {
    let c = v as f32;
    if (c as f64) > v {
        -f32_next_up(-c)
    } else {
        c
    }
}

#[inline(always)]
fn f32_next_up(c: f32) -> f32 {
    if c.is_nan() || c == f32::INFINITY {
        return c;
    }
    if c == 0.0 {
        return f32::from_bits(1);
    }
    let b = c.to_bits();
    f32::from_bits(if c > 0.0 { b + 1 } else { b - 1 })
}

/// Lanes of the `f64` sums: enough independent additions in flight to hide the adder's
/// latency (four AVX-512 or eight AVX2 registers).
const LANES: usize = 32;

/// Reduces the lanes in a fixed order (pairwise). Not inlined: inlined, it led the compiler to
/// vectorise the summing loops two lanes at a time.
#[inline(never)]
fn reduce_lanes(mut a: [f64; LANES]) -> f64 {
    let mut n = LANES;
    while n > 1 {
        n /= 2;
        for l in 0..n {
            a[l] += a[l + n];
        }
    }
    a[0]
}

multiversion! {
    /// Level 0 bucket ids: `min(floor((m - x) * zc), nb - 1)` (NaN, from `0 * inf`, gives 0).
    fn z_ids(ids: &mut [u16], xs: &[C], m: f64, zc: f64, nb: usize) {
        let top = (nb - 1) as f64;
        if let Some(x32) = as_f32(xs) {
            // In f32 for f32 logits: twice the lanes, and just as monotone.
            let (m32, zc32, top32) = (m as f32, zc as f32, top as f32);
            for (id, &x) in ids.iter_mut().zip(x32) {
                let b = ((m32 - x) * zc32).max(0.0).min(top32);
                // SAFETY: `b` is finite and in [0, nb - 1] (NaN became 0), and nb <= 65536.
                *id = unsafe { b.to_int_unchecked::<i32>() } as u16;
            }
            return;
        }
        for (id, &x) in ids.iter_mut().zip(xs) {
            let b = ((m - x.to_f64()) * zc).max(0.0).min(top);
            // SAFETY: as above.
            *id = unsafe { b.to_int_unchecked::<i32>() } as u16;
        }
    }
}

multiversion! {
    /// Σ w in `f64`, [`LANES`] lanes.
    fn lane_sum(ws: &[C]) -> f64 {
        let mut acc = [0.0f64; LANES];
        let mut it = ws.chunks_exact(LANES);
        for c in &mut it {
            for l in 0..LANES {
                acc[l] += c[l].to_f64();
            }
        }
        for (l, &v) in it.remainder().iter().enumerate() {
            acc[l] += v.to_f64();
        }
        reduce_lanes(acc)
    }
}

multiversion! {
    /// The smallest and the largest of `vals` (not NaN; `(inf, -inf)` for none), [`LANES`]
    /// lanes.
    fn lane_extremes(vals: &[C]) -> (f64, f64) {
        let mut lo = [f64::INFINITY; LANES];
        let mut hi = [f64::NEG_INFINITY; LANES];
        let mut it = vals.chunks_exact(LANES);
        for c in &mut it {
            for l in 0..LANES {
                let v = c[l].to_f64();
                lo[l] = if v < lo[l] { v } else { lo[l] };
                hi[l] = if v > hi[l] { v } else { hi[l] };
            }
        }
        for (l, &v) in it.remainder().iter().enumerate() {
            lo[l] = lo[l].min(v.to_f64());
            hi[l] = hi[l].max(v.to_f64());
        }
        (
            lo.into_iter().fold(f64::INFINITY, f64::min),
            hi.into_iter().fold(f64::NEG_INFINITY, f64::max),
        )
    }
}

multiversion! {
    /// `out[i] = (xs[i] - m) / t` in `f64`; `false` (and `out` unspecified) when some
    /// `xs[i] - m` is not finite, which [`super::select::scaled_gap`] handles.
    fn scaled_gaps(xs: &[C], m: f64, t: f64, out: &mut [f64]) -> bool {
        let mut finite = true;
        for (o, &x) in out.iter_mut().zip(xs) {
            let d = x.to_f64() - m;
            finite &= d.is_finite();
            *o = d / t;
        }
        finite
    }
}

multiversion! {
    /// Σ `ws[i] * vals[i]` over the `ws[i] > 0`, [`LANES`] lanes.
    fn lane_dot(ws: &[C], vals: &[f64]) -> f64 {
        let mut acc = [0.0f64; LANES];
        let mut wi = ws.chunks_exact(LANES);
        let mut vi = vals.chunks_exact(LANES);
        for (wc, vc) in (&mut wi).zip(&mut vi) {
            for l in 0..LANES {
                let w = wc[l].to_f64();
                acc[l] += if w > 0.0 { w * vc[l] } else { 0.0 };
            }
        }
        for (l, (&w, &v)) in wi.remainder().iter().zip(vi.remainder()).enumerate() {
            let w = w.to_f64();
            if w > 0.0 {
                acc[l] += w * v;
            }
        }
        reduce_lanes(acc)
    }
}

multiversion! {
    /// Σ `(vals[i] - mean)^2`, [`LANES`] lanes.
    fn lane_squared_deviations(vals: &[C], mean: f64) -> f64 {
        let mut acc = [0.0f64; LANES];
        let mut it = vals.chunks_exact(LANES);
        for c in &mut it {
            for l in 0..LANES {
                let d = c[l].to_f64() - mean;
                acc[l] += d * d;
            }
        }
        for (l, &v) in it.remainder().iter().enumerate() {
            let d = v.to_f64() - mean;
            acc[l] += d * d;
        }
        reduce_lanes(acc)
    }
}

multiversion! {
    /// The number and the Σ of the values `>= floor`, [`LANES`] lanes (branch-free; the
    /// others count as 0).
    fn lane_count_sum_at_least(vals: &[C], floor: f64) -> (usize, f64) {
        let (mut n, mut acc) = ([0.0f64; LANES], [0.0f64; LANES]);
        let mut it = vals.chunks_exact(LANES);
        for c in &mut it {
            for l in 0..LANES {
                let v = c[l].to_f64();
                let on = v >= floor;
                n[l] += if on { 1.0 } else { 0.0 };
                acc[l] += if on { v } else { 0.0 };
            }
        }
        for (l, &v) in it.remainder().iter().enumerate() {
            let v = v.to_f64();
            if v >= floor {
                n[l] += 1.0;
                acc[l] += v;
            }
        }
        (reduce_lanes(n) as usize, reduce_lanes(acc))
    }
}

multiversion! {
    /// Σ `(v - mean)^2` over the values `v >= floor`, [`LANES`] lanes.
    fn lane_squared_deviations_at_least(vals: &[C], mean: f64, floor: f64) -> f64 {
        let mut acc = [0.0f64; LANES];
        let mut it = vals.chunks_exact(LANES);
        for c in &mut it {
            for l in 0..LANES {
                let v = c[l].to_f64();
                let d = v - mean;
                acc[l] += if v >= floor { d * d } else { 0.0 };
            }
        }
        for (l, &v) in it.remainder().iter().enumerate() {
            let v = v.to_f64();
            if v >= floor {
                acc[l] += (v - mean) * (v - mean);
            }
        }
        reduce_lanes(acc)
    }
}

multiversion! {
    /// Σ `w (x - m)` over the tokens with `x >= v` and `w > 0`, [`LANES`] lanes (in f64; for
    /// f32 data, products and groups of four in f32).
    fn masked_gap_dot(ws: &[C], xs: &[C], v: f64, m: f64) -> f64 {
        /// f32 logits and weights: the products in f32, four per lane added in f32 before
        /// widening, as [`masked_lane_sum`] adds.
        #[inline(always)]
        fn run32(ws: &[f32], xs: &[f32], c: f32, m: f32) -> f64 {
            const STEP: usize = 4 * LANES;
            let mut acc = [0.0f64; LANES];
            let mut wi = ws.chunks_exact(STEP);
            let mut xi = xs.chunks_exact(STEP);
            for (wv, xv) in (&mut wi).zip(&mut xi) {
                let mut d = [0.0f32; STEP];
                for l in 0..STEP {
                    // `w > 0`: a weight that underflowed never meets an infinite gap.
                    d[l] = (wv[l] * (xv[l] - m)).keep_if(xv[l] >= c && wv[l] > 0.0);
                }
                for l in 0..LANES {
                    acc[l] += ((d[l] + d[l + LANES]) + (d[l + 2 * LANES] + d[l + 3 * LANES])) as f64;
                }
            }
            for (l, (&w, &x)) in wi.remainder().iter().zip(xi.remainder()).enumerate() {
                if x >= c && w > 0.0 {
                    acc[l % LANES] += w as f64 * (x as f64 - m as f64);
                }
            }
            reduce_lanes(acc)
        }
        if let (Some(x32), Some(w32)) = (as_f32(xs), as_f32(ws)) {
            // `m` is an f32 logit; the bound at least the lowest finite f32.
            return run32(w32, x32, f32_at_least(v).max(f32::MIN), m as f32);
        }
        let mut acc = [0.0f64; LANES];
        let mut wi = ws.chunks_exact(LANES);
        let mut xi = xs.chunks_exact(LANES);
        for (wc, xc) in (&mut wi).zip(&mut xi) {
            for l in 0..LANES {
                let (w, x) = (wc[l].to_f64(), xc[l].to_f64());
                acc[l] += if x >= v && w > 0.0 { w * (x - m) } else { 0.0 };
            }
        }
        for (l, (&w, &x)) in wi.remainder().iter().zip(xi.remainder()).enumerate() {
            let (w, x) = (w.to_f64(), x.to_f64());
            if x >= v && w > 0.0 {
                acc[l] += w * (x - m);
            }
        }
        reduce_lanes(acc)
    }
}

multiversion! {
    /// Σ w over the tokens with `x > v` (`x >= v` when `incl`), [`LANES`] lanes, branch-free.
    fn masked_lane_sum(ws: &[C], xs: &[C], v: f64, incl: bool) -> f64 {
        #[inline(always)]
        fn run<C: Real, X: Copy>(ws: &[C], xs: &[X], keep: impl Fn(X) -> bool) -> f64 {
            let mut acc = [0.0f64; LANES];
            let mut wi = ws.chunks_exact(LANES);
            let mut xi = xs.chunks_exact(LANES);
            for (wv, xv) in (&mut wi).zip(&mut xi) {
                // Masked in `C` (exact, by bits), then widened.
                let mut wm = [C::default(); LANES];
                for l in 0..LANES {
                    wm[l] = wv[l].keep_if(keep(xv[l]));
                }
                for l in 0..LANES {
                    acc[l] += wm[l].to_f64();
                }
            }
            for (l, (&we, &xe)) in wi.remainder().iter().zip(xi.remainder()).enumerate() {
                acc[l] += if keep(xe) { we.to_f64() } else { 0.0 };
            }
            reduce_lanes(acc)
        }
        // f32 logits and weights: compare and add as `masked_f32_lane_sum`.
        if let (Some(x32), Some(w32)) = (as_f32(xs), as_f32(ws)) {
            return if incl {
                let c = f32_at_least(v);
                masked_f32_lane_sum(w32, x32, |e| e >= c)
            } else {
                let c = f32_at_most(v);
                masked_f32_lane_sum(w32, x32, |e| e > c)
            };
        }
        // Compare in f32 when the logits are f32 (the same outcome, twice the lanes).
        match (as_f32(xs), incl) {
            (Some(x32), true) => {
                let c = f32_at_least(v);
                run(ws, x32, |e| e >= c)
            }
            (Some(x32), false) => {
                let c = f32_at_most(v);
                run(ws, x32, |e| e > c)
            }
            (None, true) => run(ws, xs, |e: C| e.to_f64() >= v),
            (None, false) => run(ws, xs, |e: C| e.to_f64() > v),
        }
    }
}

/// Σ of the f32 weights `ws` whose logit `xs[i]` (f32 or bfloat16) `keep` accepts: 128
/// tokens a step, four masked weights per lane added in f32 (two roundings, as the exp kernels
/// add their exps) before widening: a quarter of the conversions and f64 additions.
#[inline(always)]
fn masked_f32_lane_sum<X: Copy>(ws: &[f32], xs: &[X], keep: impl Fn(X) -> bool) -> f64 {
    const STEP: usize = 4 * LANES;
    let mut acc = [0.0f64; LANES];
    let mut wi = ws.chunks_exact(STEP);
    let mut xi = xs.chunks_exact(STEP);
    for (wv, xv) in (&mut wi).zip(&mut xi) {
        let mut wm = [0.0f32; STEP];
        for l in 0..STEP {
            wm[l] = wv[l].keep_if(keep(xv[l]));
        }
        for l in 0..LANES {
            let q = (wm[l] + wm[l + LANES]) + (wm[l + 2 * LANES] + wm[l + 3 * LANES]);
            acc[l] += q as f64;
        }
    }
    for (l, (&we, &xe)) in wi.remainder().iter().zip(xi.remainder()).enumerate() {
        acc[l % LANES] += if keep(xe) { we as f64 } else { 0.0 };
    }
    reduce_lanes(acc)
}

/// A 16-bit logit type sampling reads as it is stored (`select::in_place`).
pub(crate) trait Stored16: Copy + Send + Sync + 'static {
    /// The value as f32 (exact), from the bits, in operations the compiler vectorises.
    fn value(self) -> f32;
}

impl Stored16 for half::bf16 {
    #[inline(always)]
    fn value(self) -> f32 {
        f32::from_bits(u32::from(self.to_bits()) << 16)
    }
}

impl Stored16 for half::f16 {
    /// The exponent and mantissa moved to f32's places, then scaled by 2^112 (the bias
    /// difference; exact, subnormals included); infinities and NaNs get f32's top exponent.
    #[inline(always)]
    fn value(self) -> f32 {
        let h = u32::from(self.to_bits());
        let em = (h & 0x7fff) << 13;
        let finite = (f32::from_bits(em) * f32::from_bits(0x7780_0000)).to_bits();
        let bits = if em >= 0x7c00 << 13 {
            em | 0x7f80_0000
        } else {
            finite
        };
        f32::from_bits(bits | (h & 0x8000) << 16)
    }
}

multiversion! {
    /// [`masked_lane_sum`] over 16-bit logits read as they are: the same sum, bit for bit, as
    /// over their f32 values.
    fn masked_lane_sum_half<H>(ws: &[f32], xs: &[H], v: f64, incl: bool) -> f64 {
        if incl {
            let c = f32_at_least(v);
            masked_f32_lane_sum(ws, xs, |b| b.value() >= c)
        } else {
            let c = f32_at_most(v);
            masked_f32_lane_sum(ws, xs, |b| b.value() > c)
        }
    }
}

/// The number of levels [`level_masses`] takes.
pub(crate) const LEVELS: usize = 8;

/// For each level `v[k]`, Σ w over the tokens with `x >= v[k]`: [`masked_lane_sum`] at every
/// level in one pass over the row (the sums may differ from it by rounding).
pub(crate) fn level_masses<C: Real>(ws: &[C], xs: &[C], v: &[f64; LEVELS]) -> [f64; LEVELS] {
    #[cfg(target_arch = "x86_64")]
    if let (Some(x32), Some(w32)) = (as_f32(xs), as_f32(ws)) {
        let c = v.map(f32_at_least);
        match simd_level() {
            // SAFETY: the SIMD level is AVX-512 only on CPUs with AVX-512F.
            SimdLevel::Avx512 => return unsafe { level_masses_avx512(w32, x32, &c) },
            // SAFETY: the SIMD level is AVX2 only on CPUs with AVX2.
            SimdLevel::Avx2 => return unsafe { level_masses_avx2(w32, x32, &c) },
            _ => {}
        }
    }
    v.map(|t| masked_lane_sum::<C>(ws, xs, t, true))
}

/// [`level_masses`] of f32 weights and logits, `c` the levels in f32: 16 tokens a step, the
/// masked weights added in f32 over four steps, then widened into f64 sums.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn level_masses_avx512(ws: &[f32], xs: &[f32], c: &[f32; LEVELS]) -> [f64; LEVELS] {
    use std::arch::x86_64::*;
    // 16 steps of 16 tokens added in f32 per level, then widened: the additions in f32 are
    // few enough for the use (a threshold, checked exactly afterwards), and the widening is
    // rarer.
    const STEP: usize = 256;
    let n = ws.len().min(xs.len());
    let cv = c.map(|t| _mm512_set1_ps(t));
    let mut lo = [_mm512_setzero_pd(); LEVELS];
    let mut hi = [_mm512_setzero_pd(); LEVELS];
    let mut i = 0;
    while i + STEP <= n {
        let mut q = [_mm512_setzero_ps(); LEVELS];
        for s in 0..STEP / 16 {
            // SAFETY: `i + STEP <= n`: the 16 floats at `i + 16 s` are in both slices.
            let (w, x) = unsafe {
                (
                    _mm512_loadu_ps(ws.as_ptr().add(i + 16 * s)),
                    _mm512_loadu_ps(xs.as_ptr().add(i + 16 * s)),
                )
            };
            for k in 0..LEVELS {
                let m = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, cv[k]);
                q[k] = _mm512_mask_add_ps(q[k], m, q[k], w);
            }
        }
        for k in 0..LEVELS {
            lo[k] = _mm512_add_pd(lo[k], _mm512_cvtps_pd(_mm512_castps512_ps256(q[k])));
            let h = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(q[k])));
            hi[k] = _mm512_add_pd(hi[k], _mm512_cvtps_pd(h));
        }
        i += STEP;
    }
    let mut out = [0.0f64; LEVELS];
    for k in 0..LEVELS {
        out[k] = _mm512_reduce_add_pd(_mm512_add_pd(lo[k], hi[k]));
        for j in i..n {
            if xs[j] >= c[k] {
                out[k] += ws[j] as f64;
            }
        }
    }
    out
}

/// A set of tokens as parallel arrays, in row order: positions, logits, weights.
#[derive(Default)]
pub(crate) struct Packed<C> {
    pub ids: Vec<u32>,
    pub xs: Vec<C>,
    pub ws: Vec<C>,
}

/// Whether [`compress_at_least`] has a vector path for sets of `C` of `n` tokens: f32 logits at
/// AVX-512 or AVX2 (see [`packing_for`]), fewer than 2^32 tokens.
#[cfg_attr(
    not(target_arch = "x86_64"),
    allow(clippy::extra_unused_type_parameters)
)]
pub(crate) fn compresses<C: Real>(n: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::any::TypeId::of::<C>() == std::any::TypeId::of::<f32>() && packing_for(n).is_some()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = n;
        false
    }
}

/// The instructions the packing passes use at this SIMD level, if they have a path for it:
/// AVX-512F with POPCNT, or AVX2 with POPCNT and F16C (F16C widens float16 rows).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Packing {
    Avx512,
    Avx2,
}

/// The packing level for a set of `n` f32 tokens: `None` at a level without a path, or when
/// positions would not fit in u32.
#[cfg(target_arch = "x86_64")]
fn packing_for(n: usize) -> Option<Packing> {
    if !std::is_x86_feature_detected!("popcnt") || u32::try_from(n).is_err() {
        return None;
    }
    match simd_level() {
        SimdLevel::Avx512 => Some(Packing::Avx512),
        SimdLevel::Avx2 if std::is_x86_feature_detected!("f16c") => Some(Packing::Avx2),
        _ => None,
    }
}

/// The tokens with logit `>= t` of a set, in order, into `out` (replacing what it held): the
/// set is a row (logits `x`, weights `ws`, positions `0..`) or, with `ids`, a packed set of
/// those positions. `Ok(false)` (and `out` unspecified) when more than `limit` tokens pass, or
/// when there is no vector path for it ([`compresses`]).
pub(crate) fn compress_at_least<C: Real>(
    x: &[C],
    ws: &[C],
    ids: Option<&[u32]>,
    t: C,
    limit: usize,
    out: &mut Packed<C>,
) -> crate::Result<bool> {
    assert!(ws.len() == x.len() && ids.is_none_or(|ids| ids.len() == x.len()));
    #[cfg(target_arch = "x86_64")]
    if let (Some(x32), Some(w32)) = (as_f32(x), as_f32(ws)) {
        if let Some(level) = packing_for(x.len()) {
            let t = t.to_f64() as f32;
            return packed_into(out, limit.min(x.len()), |to, limit| match (level, ids) {
                // SAFETY: `packing_for` gives a level only on CPUs with its instructions (the
                // SIMD level is AVX-512 or AVX2 only on CPUs with them, and POPCNT and F16C were
                // detected) and when every position fits in u32, `to` has room for
                // `limit + 16` (`packed_into`), and `ws` and `ids` are as long as `x`.
                (Packing::Avx512, Some(ids)) => unsafe {
                    compress_avx512::<true>(x32, w32, ids, t, limit, to)
                },
                // SAFETY: as above.
                (Packing::Avx512, None) => unsafe { positions_avx512(x32, w32, t, limit, to) },
                // SAFETY: as above.
                (Packing::Avx2, Some(ids)) => unsafe { compress_avx2(x32, w32, ids, t, limit, to) },
                // SAFETY: as above.
                (Packing::Avx2, None) => unsafe { positions_avx2(x32, w32, t, limit, to) },
            });
        }
    }
    // No vector path here (`t` and `limit` are read only by the x86-64 one).
    let _ = (t, limit, ids, out);
    Ok(false)
}

/// [`compress_at_least`] of a row of 16-bit logits (positions `0..`, weights `ws`), compared
/// as their f32 values, which are packed: the set and order it gives the row widened to f32.
pub(crate) fn compress_half_at_least<H: Stored16 + Lanes16>(
    x: &[H],
    ws: &[f32],
    t: f32,
    limit: usize,
    out: &mut Packed<f32>,
) -> crate::Result<bool> {
    assert!(ws.len() == x.len());
    #[cfg(target_arch = "x86_64")]
    if let Some(level) = packing_for(x.len()) {
        return packed_into(out, limit.min(x.len()), |to, limit| match level {
            // SAFETY: as in `compress_at_least`.
            Packing::Avx512 => unsafe { positions_avx512(x, ws, t, limit, to) },
            // SAFETY: as in `compress_at_least`.
            Packing::Avx2 => unsafe { positions_avx2(x, ws, t, limit, to) },
        });
    }
    let _ = (t, limit, out);
    Ok(false)
}

/// `out` filled by `fill(to, limit)`, which writes the positions, logits and weights of at most
/// `limit` tokens through `to` (whole registers: up to 16 slots past the last) and returns
/// their number, `None` when more pass; `Ok(false)` then. The room is reserved here (R1).
#[cfg(target_arch = "x86_64")]
fn packed_into<C: Real>(
    out: &mut Packed<C>,
    limit: usize,
    fill: impl FnOnce((*mut u32, *mut f32, *mut f32), usize) -> Option<usize>,
) -> crate::Result<bool> {
    assert!(std::mem::size_of::<C>() == 4);
    out.ids.clear();
    out.xs.clear();
    out.ws.clear();
    // Whole registers are stored at the write position: spare slots for one.
    let room = limit + 16;
    const WHAT: &str = "the candidates";
    crate::scratch::reserve(&mut out.ids, room, WHAT)?;
    crate::scratch::reserve(&mut out.xs, room, WHAT)?;
    crate::scratch::reserve(&mut out.ws, room, WHAT)?;
    let to = (
        out.ids.as_mut_ptr(),
        out.xs.as_mut_ptr().cast::<f32>(),
        out.ws.as_mut_ptr().cast::<f32>(),
    );
    let Some(n) = fill(to, limit) else {
        return Ok(false);
    };
    // SAFETY: `fill` wrote the first `n <= limit` slots of each (`C` is 4 bytes: f32).
    unsafe {
        out.ids.set_len(n);
        out.xs.set_len(n);
        out.ws.set_len(n);
    }
    Ok(true)
}

/// [`compress_at_least`] at AVX-512; returns how many tokens it wrote to `to` (positions,
/// logits, weights), `None` when more than `limit` pass. Branch-free within a group of 16
/// tokens: its hits are compressed into registers stored whole at the write position, which
/// then moves by the number of hits. (A compressing store to memory is microcoded and slow on
/// AMD's Zen 4; into a register it is not.)
///
/// The positions are `ids` for a `PACKED` set, else `0..`. Rows go to [`positions_avx512`]
/// instead; the row form stays because LLVM fails on the others ("Cannot emit physreg copy
/// instruction", when the doctests are built with thin LTO at opt-level 0 by `cargo test
/// --release --doc`): an `Option` choosing between a loaded register and a carried one inside
/// the loop, and this function for packed sets alone.
///
/// # Safety
/// AVX-512F and POPCNT are available; each pointer of `to` is valid for `limit + 16` writes;
/// `ws` (and `ids` when `PACKED`) are at least as long as `x`, which has fewer than 2^32
/// tokens.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,popcnt")]
unsafe fn compress_avx512<const PACKED: bool>(
    x: &[f32],
    ws: &[f32],
    ids: &[u32],
    t: f32,
    limit: usize,
    to: (*mut u32, *mut f32, *mut f32),
) -> Option<usize> {
    use std::arch::x86_64::*;
    let tv = _mm512_set1_ps(t);
    let sixteen = _mm512_set1_epi32(16);
    let mut iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let mut n = 0;
    let groups = x.len() / 16;
    for g in 0..groups {
        let at = 16 * g;
        if n > limit {
            return None;
        }
        // SAFETY: `at + 16 <= x.len()`, and `ws`, `ids` are as long; `n <= limit`, so the 16
        // slots written from `n` are within `limit + 16`.
        unsafe {
            let v = _mm512_loadu_ps(x.as_ptr().add(at));
            let w = _mm512_loadu_ps(ws.as_ptr().add(at));
            let pos = if PACKED {
                _mm512_loadu_si512(ids.as_ptr().add(at).cast())
            } else {
                iota
            };
            let m = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(v, tv);
            _mm512_storeu_si512(to.0.add(n).cast(), _mm512_maskz_compress_epi32(m, pos));
            _mm512_storeu_ps(to.1.add(n), _mm512_maskz_compress_ps(m, v));
            _mm512_storeu_ps(to.2.add(n), _mm512_maskz_compress_ps(m, w));
            n += m.count_ones() as usize;
        }
        iota = _mm512_add_epi32(iota, sixteen);
    }
    // SAFETY: `to` has room for `limit` (# Safety); `ws` and `ids` are as long as `x`.
    unsafe {
        compress_tail(
            x,
            ws,
            |j| if PACKED { ids[j] } else { j as u32 },
            t,
            16 * groups,
            n,
            limit,
            to,
        )
    }
}

/// [`compress_at_least`] of a row at AVX-512; returns how many tokens it wrote to `to`
/// (positions, logits, weights), `None` when more than `limit` pass. The positions first
/// ([`hit_positions`]), then their logits (as f32: a 16-bit row is widened in registers, see
/// [`Lanes16`]) and weights, sixteen at a time by gathers.
///
/// # Safety
/// AVX-512F and POPCNT are available; each pointer of `to` is valid for `limit + 16` writes;
/// `ws` is at least as long as `x`, which has fewer than 2^32 tokens.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,popcnt")]
unsafe fn positions_avx512<X: Lanes16>(
    x: &[X],
    ws: &[f32],
    t: f32,
    limit: usize,
    to: (*mut u32, *mut f32, *mut f32),
) -> Option<usize> {
    use std::arch::x86_64::*;
    let tv = _mm512_set1_ps(t);
    let bits_of = |c: *const X| {
        let mut bits = 0u64;
        for q in 0..4 {
            // SAFETY: `hit_positions` hands out chunks of 64 readable logits; AVX-512F is
            // enabled here.
            let v = unsafe { X::load16(c.add(16 * q)) };
            bits |= u64::from(_mm512_cmp_ps_mask::<_CMP_GE_OQ>(v, tv)) << (16 * q);
        }
        bits
    };
    // SAFETY: the caller's contract.
    let n = unsafe { hit_positions(x, t, limit, to.0, bits_of) }?;
    // Sixteen at a time by gathers, while positions fit the gathers' signed offsets: the
    // weights, and the logits of an f32 row (an `X` of 4 bytes: `Lanes16` has no other).
    let gathered = if x.len() <= i32::MAX as usize {
        n / 16 * 16
    } else {
        0
    };
    let logits_gathered = std::mem::size_of::<X>() == 4;
    for k in (0..gathered).step_by(16) {
        // SAFETY: the 16 positions from `k < gathered <= n` are written, each below
        // `x.len() <= i32::MAX` (so read as `i32` they stay positive), which `ws` is at least
        // as long as; the outputs have room for `n` values.
        unsafe {
            let at = _mm512_loadu_si512(to.0.add(k).cast());
            _mm512_storeu_ps(to.2.add(k), _mm512_i32gather_ps::<4>(at, ws.as_ptr()));
            if logits_gathered {
                let xv = _mm512_i32gather_ps::<4>(at, x.as_ptr().cast::<f32>());
                _mm512_storeu_ps(to.1.add(k), xv);
            }
        }
    }
    // SAFETY: the first `n` positions are written, each below `x.len()`; `ws` is at least as
    // long as `x`; the outputs have room for `n` values.
    unsafe {
        gather_hits(
            x,
            ws,
            n,
            if logits_gathered { gathered } else { 0 },
            gathered,
            to,
        )
    };
    Some(n)
}

/// [`positions_avx512`] at AVX2: the comparisons eight at a time, the gathers one by one
/// (`vgatherdps` eight at a time measured no faster than these loads on an AMD Zen 3).
///
/// # Safety
/// AVX2, F16C and POPCNT are available; as [`positions_avx512`] otherwise.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c,popcnt")]
unsafe fn positions_avx2<X: Lanes16>(
    x: &[X],
    ws: &[f32],
    t: f32,
    limit: usize,
    to: (*mut u32, *mut f32, *mut f32),
) -> Option<usize> {
    use std::arch::x86_64::*;
    let tv = _mm256_set1_ps(t);
    // SAFETY: `hit_positions` hands out chunks of 64 readable logits; AVX2 and F16C are
    // enabled here.
    let bits_of = |c: *const X| unsafe { at_least_bits_avx2(c, tv) };
    // SAFETY: the caller's contract.
    let n = unsafe { hit_positions(x, t, limit, to.0, bits_of) }?;
    // SAFETY: as in `positions_avx512`.
    unsafe { gather_hits(x, ws, n, 0, 0, to) };
    Some(n)
}

/// Bit `j` set when logit `j` of the 64 from `c` is `>= t` (`tv`: `t` in every lane), from
/// eight AVX2 comparisons.
///
/// # Safety
/// AVX2 (and F16C for float16) is available; the 64 logits from `c` are readable.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn at_least_bits_avx2<X: Lanes16>(c: *const X, tv: std::arch::x86_64::__m256) -> u64 {
    use std::arch::x86_64::*;
    let mut bits = 0u64;
    for q in 0..8 {
        // SAFETY: the caller's contract.
        let ge = unsafe {
            let v = X::load8(c.add(8 * q));
            _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(v, tv))
        };
        bits |= u64::from(ge as u8) << (8 * q);
    }
    bits
}

/// The positions of the tokens of `x` at or above `t`, written from `to`; their number, `None`
/// when more than `limit` pass. The positions come from the bits of the comparisons of 64
/// tokens at a time (`bits_of`, reading 64 logits from a pointer; when few pass, as the levels
/// make it, cheaper than compressing each vector); the tokens before the first 64-byte
/// boundary and after the last whole chunk are compared one by one.
///
/// # Safety
/// `to` is valid for `limit + 4` writes; `bits_of` may be called with the start of any 64
/// consecutive logits of `x`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn hit_positions<X: Lanes16>(
    x: &[X],
    t: f32,
    limit: usize,
    to: *mut u32,
    bits_of: impl Fn(*const X) -> u64,
) -> Option<usize> {
    let mut n = 0;
    // The tokens before the first 64-byte boundary alone: the loads below then do not
    // straddle cache lines.
    let head = unaligned_head(x);
    for (j, &e) in x[..head].iter().enumerate() {
        if e.f32_value() >= t {
            if n >= limit {
                return None;
            }
            // SAFETY: `n < limit`.
            unsafe { *to.add(n) = j as u32 };
            n += 1;
        }
    }
    let mut it = x[head..].chunks_exact(64);
    let mut base = head;
    for c in &mut it {
        let mut bits = bits_of(c.as_ptr());
        let hits = bits.count_ones() as usize;
        if n + hits > limit {
            return None;
        }
        // The first four slots without a branch (most steps have no more hits when few pass);
        // slots past the hits are overwritten by the next step or lie past the count.
        for s in 0..4 {
            // SAFETY: `n + s < n + 4 <= limit + 4`, within the room of `to`.
            unsafe { *to.add(n + s) = (base + bits.trailing_zeros() as usize) as u32 };
            bits &= bits.wrapping_sub(1);
        }
        let mut k = n + 4;
        while bits != 0 {
            // SAFETY: `k < n + hits <= limit` (the step's hits fit, checked above).
            unsafe { *to.add(k) = (base + bits.trailing_zeros() as usize) as u32 };
            k += 1;
            bits &= bits - 1;
        }
        n += hits;
        base += 64;
    }
    for (j, &e) in it.remainder().iter().enumerate() {
        if e.f32_value() >= t {
            if n >= limit {
                return None;
            }
            // SAFETY: `n < limit`.
            unsafe { *to.add(n) = (base + j) as u32 };
            n += 1;
        }
    }
    Some(n)
}

/// The logits (widened to f32) of the hits `logits_from..n` and the weights of the hits
/// `weights_from..n`, whose positions `to.0` holds, into `to.1` and `to.2`.
///
/// # Safety
/// The first `n` slots of `to.0` hold positions below `x.len()`, and `ws` is at least as long
/// as `x`; `to.1` and `to.2` are valid for `n` writes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn gather_hits<X: Lanes16>(
    x: &[X],
    ws: &[f32],
    n: usize,
    logits_from: usize,
    weights_from: usize,
    to: (*mut u32, *mut f32, *mut f32),
) {
    for k in logits_from..n {
        // SAFETY: the caller's contract.
        unsafe { *to.1.add(k) = x.get_unchecked(*to.0.add(k) as usize).f32_value() };
    }
    for k in weights_from..n {
        // SAFETY: the caller's contract.
        unsafe { *to.2.add(k) = *ws.get_unchecked(*to.0.add(k) as usize) };
    }
}

/// For each mask of eight comparisons, the positions of its set bits in order, one byte each
/// (unused bytes 0): the lane indices that move a vector's hits to its front.
#[cfg(target_arch = "x86_64")]
const LEFT_PACK: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut mask = 0;
    while mask < 256 {
        let (mut entry, mut k, mut bit) = (0u64, 0, 0);
        while bit < 8 {
            if (mask >> bit) & 1 == 1 {
                entry |= (bit as u64) << (8 * k);
                k += 1;
            }
            bit += 1;
        }
        table[mask] = entry;
        mask += 1;
    }
    table
};

/// [`compress_at_least`] of a packed set at AVX2, as [`compress_avx512`] does it: branch-free
/// within a group of 8 tokens, whose hits are moved to the front of the registers (by a
/// permutation read from [`LEFT_PACK`]) stored whole at the write position, which then moves by
/// the number of hits.
///
/// # Safety
/// AVX2 and POPCNT are available; each pointer of `to` is valid for `limit + 8` writes; `ws`
/// and `ids` are at least as long as `x`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
unsafe fn compress_avx2(
    x: &[f32],
    ws: &[f32],
    ids: &[u32],
    t: f32,
    limit: usize,
    to: (*mut u32, *mut f32, *mut f32),
) -> Option<usize> {
    use std::arch::x86_64::*;
    let tv = _mm256_set1_ps(t);
    let mut n = 0;
    let groups = x.len() / 8;
    for g in 0..groups {
        let at = 8 * g;
        if n > limit {
            return None;
        }
        // SAFETY: `at + 8 <= x.len()`, and `ws`, `ids` are as long; `n <= limit`, so the 8
        // slots written from `n` are within `limit + 8`.
        unsafe {
            let v = _mm256_loadu_ps(x.as_ptr().add(at));
            let w = _mm256_loadu_ps(ws.as_ptr().add(at));
            let pos = _mm256_loadu_si256(ids.as_ptr().add(at).cast());
            let m = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(v, tv)) as u8;
            let perm = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(LEFT_PACK[usize::from(m)] as i64));
            _mm256_storeu_si256(to.0.add(n).cast(), _mm256_permutevar8x32_epi32(pos, perm));
            _mm256_storeu_ps(to.1.add(n), _mm256_permutevar8x32_ps(v, perm));
            _mm256_storeu_ps(to.2.add(n), _mm256_permutevar8x32_ps(w, perm));
            n += m.count_ones() as usize;
        }
    }
    // SAFETY: as in `compress_avx512`.
    unsafe { compress_tail(x, ws, |j| ids[j], t, 8 * groups, n, limit, to) }
}

/// The compressing passes' last tokens, from `from` on, one by one after the `n` the vector
/// steps wrote: their count, `None` when more than `limit` pass in all (as `n > limit`).
///
/// # Safety
/// Each pointer of `to` is valid for `limit` writes; `ws` is as long as `x`, and `id_of` takes
/// every position of `x`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn compress_tail(
    x: &[f32],
    ws: &[f32],
    id_of: impl Fn(usize) -> u32,
    t: f32,
    from: usize,
    mut n: usize,
    limit: usize,
    to: (*mut u32, *mut f32, *mut f32),
) -> Option<usize> {
    for j in from..x.len() {
        if x[j] >= t {
            if n >= limit {
                return None;
            }
            // SAFETY: `n < limit`.
            unsafe {
                *to.0.add(n) = id_of(j);
                *to.1.add(n) = x[j];
                *to.2.add(n) = ws[j];
            }
            n += 1;
        }
    }
    (n <= limit).then_some(n)
}

/// Logits the row's packing passes read (`positions_avx512`, `positions_avx2`): f32, or a
/// 16-bit type widened in registers.
pub(crate) trait Lanes16: Copy {
    /// The 16 logits from `p` as f32 (exact).
    ///
    /// # Safety
    /// AVX-512F is available; the 16 elements from `p` are readable.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load16(p: *const Self) -> std::arch::x86_64::__m512;

    /// The 8 logits from `p` as f32 (exact).
    ///
    /// # Safety
    /// AVX2 and F16C are available; the 8 elements from `p` are readable.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256;

    /// The logit as f32 (exact).
    #[cfg(target_arch = "x86_64")]
    fn f32_value(self) -> f32;
}

impl Lanes16 for f32 {
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load16(p: *const f32) -> std::arch::x86_64::__m512 {
        // SAFETY: the caller's contract.
        unsafe { std::arch::x86_64::_mm512_loadu_ps(p) }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> std::arch::x86_64::__m256 {
        // SAFETY: the caller's contract.
        unsafe { std::arch::x86_64::_mm256_loadu_ps(p) }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn f32_value(self) -> f32 {
        self
    }
}

impl Lanes16 for half::bf16 {
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load16(p: *const half::bf16) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        // SAFETY: the caller's contract: AVX-512F, 16 elements of 2 bytes readable from `p`.
        unsafe {
            let bits = _mm512_cvtepu16_epi32(_mm256_loadu_si256(p.cast()));
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(bits))
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const half::bf16) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        // SAFETY: the caller's contract: AVX2, 8 elements of 2 bytes readable from `p`.
        unsafe {
            let bits = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()));
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(bits))
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn f32_value(self) -> f32 {
        self.value()
    }
}

impl Lanes16 for half::f16 {
    /// `vcvtph2ps`: exact, subnormals included (NaNs come out quiet, and compare as NaN).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load16(p: *const half::f16) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        // SAFETY: the caller's contract: AVX-512F, 16 elements of 2 bytes readable from `p`.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
    }
    /// `vcvtph2ps` as [`Lanes16::load16`] (F16C).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const half::f16) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        // SAFETY: the caller's contract: F16C, 8 elements of 2 bytes readable from `p`.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn f32_value(self) -> f32 {
        self.value()
    }
}

/// [`level_masses_avx512`] with AVX2: 8 tokens a step, the masks ANDed with the weights.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn level_masses_avx2(ws: &[f32], xs: &[f32], c: &[f32; LEVELS]) -> [f64; LEVELS] {
    use std::arch::x86_64::*;
    const STEP: usize = 128;
    let n = ws.len().min(xs.len());
    let cv = c.map(|t| _mm256_set1_ps(t));
    let mut lo = [_mm256_setzero_pd(); LEVELS];
    let mut hi = [_mm256_setzero_pd(); LEVELS];
    let mut i = 0;
    while i + STEP <= n {
        let mut q = [_mm256_setzero_ps(); LEVELS];
        for s in 0..STEP / 8 {
            // SAFETY: `i + STEP <= n`: the 8 floats at `i + 8 s` are in both slices.
            let (w, x) = unsafe {
                (
                    _mm256_loadu_ps(ws.as_ptr().add(i + 8 * s)),
                    _mm256_loadu_ps(xs.as_ptr().add(i + 8 * s)),
                )
            };
            for k in 0..LEVELS {
                let m = _mm256_cmp_ps::<_CMP_GE_OQ>(x, cv[k]);
                q[k] = _mm256_add_ps(q[k], _mm256_and_ps(m, w));
            }
        }
        for k in 0..LEVELS {
            lo[k] = _mm256_add_pd(lo[k], _mm256_cvtps_pd(_mm256_castps256_ps128(q[k])));
            hi[k] = _mm256_add_pd(hi[k], _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(q[k])));
        }
        i += STEP;
    }
    let mut out = [0.0f64; LEVELS];
    for k in 0..LEVELS {
        let mut l = [0.0f64; 4];
        // SAFETY: `l` holds 4 doubles.
        unsafe { _mm256_storeu_pd(l.as_mut_ptr(), _mm256_add_pd(lo[k], hi[k])) };
        out[k] = (l[0] + l[1]) + (l[2] + l[3]);
        for j in i..n {
            if xs[j] >= c[k] {
                out[k] += ws[j] as f64;
            }
        }
    }
    out
}

/// Calls `f(j)` for each position `j` with `x[j] >= t`, in order, until it returns false: one
/// vector compare per 16 (AVX-512) or 8 (AVX2) tokens, then the set bits.
pub(crate) fn for_each_at_least<C: Real>(x: &[C], t: C, mut f: impl FnMut(usize) -> bool) {
    #[cfg(target_arch = "x86_64")]
    if let Some(x32) = as_f32(x) {
        let t32 = t.to_f64() as f32;
        match simd_level() {
            // SAFETY: the SIMD level is AVX-512 only on CPUs with AVX-512F.
            SimdLevel::Avx512 => return unsafe { for_each_avx512(x32, t32, f) },
            // SAFETY: the SIMD level is AVX2 only on CPUs with AVX2.
            SimdLevel::Avx2 => return unsafe { for_each_avx2(x32, t32, f) },
            _ => {}
        }
    }
    for (j, &e) in x.iter().enumerate() {
        if e >= t && !f(j) {
            return;
        }
    }
}

/// Calls `f` for the set bits of `bits` (positions from `base`); false when `f` stopped.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn each_bit(mut bits: u64, base: usize, f: &mut impl FnMut(usize) -> bool) -> bool {
    while bits != 0 {
        if !f(base + bits.trailing_zeros() as usize) {
            return false;
        }
        bits &= bits - 1;
    }
    true
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn for_each_avx512(x: &[f32], t: f32, mut f: impl FnMut(usize) -> bool) {
    use std::arch::x86_64::*;
    let tv = _mm512_set1_ps(t);
    let mut it = x.chunks_exact(16);
    let mut base = 0;
    for c in &mut it {
        // SAFETY: `c` holds 16 floats.
        let v = unsafe { _mm512_loadu_ps(c.as_ptr()) };
        let m = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(v, tv);
        if m != 0 && !each_bit(u64::from(m), base, &mut f) {
            return;
        }
        base += 16;
    }
    for (j, &e) in it.remainder().iter().enumerate() {
        if e >= t && !f(base + j) {
            return;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn for_each_avx2(x: &[f32], t: f32, mut f: impl FnMut(usize) -> bool) {
    use std::arch::x86_64::*;
    let tv = _mm256_set1_ps(t);
    let mut it = x.chunks_exact(8);
    let mut base = 0;
    for c in &mut it {
        // SAFETY: `c` holds 8 floats.
        let v = unsafe { _mm256_loadu_ps(c.as_ptr()) };
        let m = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(v, tv)) as u32;
        if m != 0 && !each_bit(u64::from(m), base, &mut f) {
            return;
        }
        base += 8;
    }
    for (j, &e) in it.remainder().iter().enumerate() {
        if e >= t && !f(base + j) {
            return;
        }
    }
}

/// Bit `j` set when `x[j] >= t`, for a chunk of at most 64 tokens: one vector compare per 16
/// (AVX-512) or 8 (AVX2) tokens instead of a test and branch per token.
pub(crate) fn hits_at_least<C: Real>(x: &[C], t: C) -> u64 {
    debug_assert!(x.len() <= 64);
    #[cfg(target_arch = "x86_64")]
    if let Some(x32) = as_f32(x) {
        let t32 = t.to_f64() as f32;
        match simd_level() {
            // SAFETY: the SIMD level is AVX-512 only on CPUs with AVX-512F.
            SimdLevel::Avx512 => return unsafe { hits_avx512(x32, t32) },
            // SAFETY: the SIMD level is AVX2 only on CPUs with AVX2.
            SimdLevel::Avx2 => return unsafe { hits_avx2(x32, t32) },
            _ => {}
        }
    }
    let mut bits = 0u64;
    for (j, &e) in x.iter().enumerate() {
        bits |= ((e >= t) as u64) << j;
    }
    bits
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn hits_avx512(x: &[f32], t: f32) -> u64 {
    use std::arch::x86_64::*;
    let tv = _mm512_set1_ps(t);
    let mut bits = 0u64;
    for (q, c) in x.chunks(16).enumerate() {
        let k: __mmask16 = if c.len() == 16 {
            0xFFFF
        } else {
            (1u16 << c.len()) - 1
        };
        // SAFETY: the masked load reads only the `c.len()` lanes of `c`.
        let v = unsafe { _mm512_maskz_loadu_ps(k, c.as_ptr()) };
        let m = _mm512_mask_cmp_ps_mask::<_CMP_GE_OQ>(k, v, tv);
        bits |= (m as u64) << (16 * q);
    }
    bits
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn hits_avx2(x: &[f32], t: f32) -> u64 {
    use std::arch::x86_64::*;
    let tv = _mm256_set1_ps(t);
    let mut bits = 0u64;
    let mut it = x.chunks_exact(8);
    let mut q = 0;
    for c in &mut it {
        // SAFETY: `c` holds 8 floats.
        let v = unsafe { _mm256_loadu_ps(c.as_ptr()) };
        let m = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(v, tv)) as u64;
        bits |= m << (8 * q);
        q += 1;
    }
    for (j, &e) in it.remainder().iter().enumerate() {
        bits |= ((e >= t) as u64) << (8 * q + j);
    }
    bits
}

multiversion! {
    /// `dst = src`; returns whether `src` holds NaN or `+inf`.
    fn copy_checked(src: &[C], dst: &mut [C]) -> bool {
        // `v < inf` fails for NaN and +inf; folded branch-free so that it vectorises. In runs
        // of 16 copied as arrays: a plain element loop became a `memcpy` of the block and a
        // second pass to check it, reading the row twice.
        const RUN: usize = 16;
        let mut ok = true;
        let mut d_runs = dst.chunks_exact_mut(RUN);
        let mut s_runs = src.chunks_exact(RUN);
        for (d, s) in (&mut d_runs).zip(&mut s_runs) {
            let run: [C; RUN] = s.try_into().unwrap_or_else(|_| unreachable!());
            for &v in &run {
                ok &= v < C::INFINITY;
            }
            d.copy_from_slice(&run);
        }
        for (d, &v) in d_runs.into_remainder().iter_mut().zip(s_runs.remainder()) {
            *d = v;
            ok &= v < C::INFINITY;
        }
        !ok
    }
}

multiversion! {
    /// `dst = src` with the penalties of each token's mark (`marks[j]`: 0 unseen, else 1 + its
    /// count in the output) applied on the way: the repetition penalty `r` to seen tokens, then
    /// the frequency and presence penalties `(f, p)` to tokens in the output, each exactly as
    /// its stage computes it. Returns whether `src` holds NaN or `+inf`.
    fn copy_marked(
        src: &[C],
        dst: &mut [C],
        marks: &[u32],
        rep: Option<C>,
        freq: Option<(C, C)>,
    ) -> bool {
        let mut ok = true;
        let r = rep.unwrap_or(C::from_f64(1.0));
        let (f, p) = freq.unwrap_or_default();
        let (with_r, with_f) = (rep.is_some(), freq.is_some());
        for ((d, &x), &m) in dst.iter_mut().zip(src).zip(marks) {
            ok &= x < C::INFINITY;
            let mut v = x;
            if with_r {
                let pen = if v > C::default() { v / r } else { v * r };
                v = if m != 0 { pen } else { v };
            }
            if with_f {
                let pen = v - f * C::from_f64(m.saturating_sub(1) as f64) - p;
                v = if m > 1 { pen } else { v };
            }
            *d = v;
        }
        !ok
    }
}

multiversion! {
    /// Sets to `-inf` the tokens of `dst` whose bit in `mask` (word `first_word` onwards, the
    /// layout of [`TokenBitmask`](crate::TokenBitmask); missing words ban) is 0.
    fn ban_unset(dst: &mut [C], mask: &[u32], first_word: usize) {
        for (i, d) in dst.chunks_mut(32).enumerate() {
            match mask.get(first_word + i).copied().unwrap_or(0) {
                u32::MAX => {}
                0 => d.fill(C::NEG_INFINITY),
                w => {
                    for (b, d) in d.iter_mut().enumerate() {
                        if (w >> b) & 1 == 0 {
                            *d = C::NEG_INFINITY;
                        }
                    }
                }
            }
        }
    }
}

multiversion! {
    /// The repetition penalty over a row's marked tokens (`marks[j] != 0`): `z / r` if
    /// `z > 0`, else `z * r`. Branch-free, so that it vectorises.
    fn repetition_marked(z: &mut [C], marks: &[u32], r: C) {
        for (e, &m) in z.iter_mut().zip(marks) {
            let v = *e;
            let p = if v > C::default() { v / r } else { v * r };
            *e = if m != 0 { p } else { v };
        }
    }
}

multiversion! {
    /// Frequency and presence penalties over a row's marks (`1 + count` for a seen token):
    /// `z - f * c - p` where `c > 0`.
    fn frequency_marked(z: &mut [C], marks: &[u32], f: C, p: C) {
        for (e, &m) in z.iter_mut().zip(marks) {
            let v = *e;
            let n = v - f * C::from_f64(m.saturating_sub(1) as f64) - p;
            *e = if m > 1 { n } else { v };
        }
    }
}

/// The elements of `x` before its first 64-byte boundary (all of a row that has none): the
/// passes that take them alone load whole cache lines after them.
#[inline(always)]
fn unaligned_head<X>(x: &[X]) -> usize {
    x.as_ptr().align_offset(64).min(x.len())
}

/// The number of elements `keep` accepts, counted 256 at a time in `u32` lanes (from the first
/// 64-byte boundary on).
#[inline(always)]
fn count_where<X: Copy>(x: &[X], keep: impl Fn(X) -> bool) -> usize {
    let (head, rest) = x.split_at(unaligned_head(x));
    let n = head.iter().filter(|&&e| keep(e)).count();
    n + rest
        .chunks(256)
        .map(|ch| ch.iter().map(|&e| keep(e) as u32).sum::<u32>() as usize)
        .sum::<usize>()
}

multiversion! {
    /// The number of tokens `>= thr`.
    fn count_at_least(x: &[C], thr: f64) -> usize {
        if let Some(x32) = as_f32(x) {
            // In f32 for f32 logits: the same outcome, twice the lanes.
            let c = f32_at_least(thr);
            return count_where(x32, |e| e >= c);
        }
        count_where(x, |e: C| e.to_f64() >= thr)
    }
}

multiversion! {
    /// [`count_at_least`] over 16-bit logits read as they are.
    fn count_at_least_half<H>(x: &[H], thr: f64) -> usize {
        let c = f32_at_least(thr);
        count_where(x, |b| b.value() >= c)
    }
}

/// The gathering loop of [`gather_at_least`]: appends (from slot `n`) the position and
/// `value(x[i])` of every `i` whose key `xk[i]` passes `keep`; returns the new count. Per 64
/// tokens that hold any, the keys' bits first (no branch on each token: it passes or not
/// unpredictably), then one step per token that passes.
#[inline(always)]
fn gather_run<V: Copy, X: Copy, C: Copy>(
    x: &[V],
    xk: &[X],
    keep: impl Fn(X) -> bool,
    value: impl Fn(V) -> C,
    mut n: usize,
    idx: &mut [usize],
    xs: &mut [C],
) -> usize {
    // `count` came from an earlier pass over `x`, which another thread may have written to
    // since (contract R3): more tokens may pass now, so `n` is capped rather than trusted (the
    // slot at `last` is spare).
    let last = idx.len() - 1;
    // From the keys' first 64-byte boundary on, in chunks of 64.
    let head = unaligned_head(xk).min(x.len());
    for (j, (&e, &k)) in x[..head].iter().zip(&xk[..head]).enumerate() {
        if keep(k) {
            idx[n] = j;
            xs[n] = value(e);
            n = (n + 1).min(last);
        }
    }
    for (c, (chunk, ck)) in x[head..].chunks(64).zip(xk[head..].chunks(64)).enumerate() {
        // Most chunks have none when few pass: counted first, which is cheaper.
        if ck.iter().map(|&k| keep(k) as u32).sum::<u32>() == 0 {
            continue;
        }
        let mut bits = 0u64;
        for (j, &k) in ck.iter().enumerate() {
            bits |= u64::from(keep(k)) << j;
        }
        while bits != 0 {
            let j = bits.trailing_zeros() as usize;
            idx[n] = head + c * 64 + j;
            xs[n] = value(chunk[j]);
            n = (n + 1).min(last);
            bits &= bits - 1;
        }
    }
    n
}

multiversion! {
    /// Appends the `count` tokens `>= thr` (ids and logits), branch-free (a token passes or
    /// not unpredictably), skipping chunks of 64 without any.
    fn gather_at_least(x: &[C], thr: f64, count: usize, idx: &mut Vec<usize>, xs: &mut Vec<C>) {
        let base = idx.len();
        idx.resize(base + count + 1, 0);
        xs.resize(base + count + 1, C::default());
        let n = match as_f32(x) {
            // In f32 for f32 logits: the same outcome, twice the lanes.
            Some(x32) => {
                let c = f32_at_least(thr);
                gather_run(x, x32, |e| e >= c, |e| e, base, idx, xs)
            }
            None => gather_run(x, x, |e: C| e.to_f64() >= thr, |e| e, base, idx, xs),
        };
        idx.truncate(n);
        xs.truncate(n);
    }
}

multiversion! {
    /// [`gather_at_least`] over 16-bit logits read as they are, appending their f32 values:
    /// the same list as over the row widened to f32.
    fn gather_at_least_half<H>(
        x: &[H],
        thr: f64,
        count: usize,
        idx: &mut Vec<usize>,
        xs: &mut Vec<f32>,
    ) {
        let base = idx.len();
        idx.resize(base + count + 1, 0);
        xs.resize(base + count + 1, 0.0);
        let c = f32_at_least(thr);
        let n = gather_run(x, x, |b| b.value() >= c, H::value, base, idx, xs);
        idx.truncate(n);
        xs.truncate(n);
    }
}

/// Appends the positions `j` with `vals[j] >= t`, a chunk of 64 at a time as a bit mask
/// (as [`positions_eq`]; for f32 at the x86 levels, eight comparisons of eight); false (and
/// `out` incomplete) when the memory for them is refused (contract R1).
pub(crate) fn positions_at_least<C: Real>(vals: &[C], t: C, out: &mut Vec<usize>) -> bool {
    #[cfg(target_arch = "x86_64")]
    if let Some(v32) = as_f32(vals) {
        if matches!(simd_level(), SimdLevel::Avx512 | SimdLevel::Avx2) {
            // SAFETY: both levels are only on CPUs with AVX2.
            return unsafe { positions_at_least_avx2(v32, t.to_f64() as f32, out) };
        }
    }
    let bits_of = |chunk: &[C]| {
        let mut bits = 0u64;
        for (j, &v) in chunk.iter().enumerate() {
            bits |= u64::from(v >= t) << j;
        }
        bits
    };
    positions_of_bits(vals.chunks(64).map(bits_of), out)
}

/// [`positions_at_least`] of f32 values with AVX2.
///
/// # Safety
/// AVX2 is available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn positions_at_least_avx2(vals: &[f32], t: f32, out: &mut Vec<usize>) -> bool {
    use std::arch::x86_64::*;
    let tv = _mm256_set1_ps(t);
    let bits_of = |chunk: &[f32]| -> u64 {
        if chunk.len() < 64 {
            let mut bits = 0u64;
            for (j, &v) in chunk.iter().enumerate() {
                bits |= u64::from(v >= t) << j;
            }
            return bits;
        }
        // SAFETY: the chunk holds 64 floats; AVX2 is enabled here.
        unsafe { at_least_bits_avx2(chunk.as_ptr(), tv) }
    };
    positions_of_bits(vals.chunks(64).map(bits_of), out)
}

/// Appends `64 c + j` for each set bit `j` of the `c`-th mask; false when the memory for them
/// is refused.
#[inline(always)]
fn positions_of_bits(masks: impl Iterator<Item = u64>, out: &mut Vec<usize>) -> bool {
    for (c, mut bits) in masks.enumerate() {
        if bits != 0 {
            if out.try_reserve(bits.count_ones() as usize).is_err() {
                return false;
            }
            while bits != 0 {
                out.push(c * 64 + bits.trailing_zeros() as usize);
                bits &= bits - 1;
            }
        }
    }
    true
}

multiversion! {
    /// Appends the positions `j` with `ids[j] == b`, a chunk of 64 at a time as a bit mask
    /// (the comparisons vectorise; a flat row's cut bucket has hits in most chunks, which a
    /// branch-free scalar walk of every chunk with one made the cut's slowest step); false (and
    /// `out` incomplete) when the memory for them is refused (contract R1).
    fn positions_eq(ids: &[u16], b: u16, out: &mut Vec<usize>) -> bool {
        let bits_of = |chunk: &[u16]| {
            let mut bits = 0u64;
            for (j, &id) in chunk.iter().enumerate() {
                bits |= u64::from(id == b) << j;
            }
            bits
        };
        positions_of_bits(ids.chunks(64).map(bits_of), out)
    }
}

multiversion! {
    /// The first position holding `m`, scanning chunks of 64 at once. `None` only when the
    /// slice no longer holds the maximum found in it before: another thread wrote to it
    /// (contract R3).
    fn first_eq(x: &[C], m: C) -> Option<usize> {
        first_where(x, |e| e == m)
    }
}

multiversion! {
    /// [`first_eq`] over 16-bit logits read as they are, `m` widened (compared as floats).
    fn first_eq_half<H>(x: &[H], m: f32) -> Option<usize> {
        first_where(x, |e| e.value() == m)
    }
}

/// The first position whose element `hit` accepts, a chunk of 64 tested branch-free first.
/// The elements before the first 64-byte boundary are tested alone, so that the chunks' loads
/// do not straddle cache lines (1.4x slower from the caches when they do).
#[inline(always)]
fn first_where<X: Copy>(x: &[X], hit: impl Fn(X) -> bool) -> Option<usize> {
    let head = unaligned_head(x);
    if let Some(j) = x[..head].iter().position(|&e| hit(e)) {
        return Some(j);
    }
    for (c, chunk) in x[head..].chunks(64).enumerate() {
        if chunk.iter().fold(false, |a, &e| a | hit(e)) {
            if let Some(j) = chunk.iter().position(|&e| hit(e)) {
                return Some(head + c * 64 + j);
            }
        }
    }
    None
}

/// `out[i] = value(x[i])` where `keep(x[i])`, else `-inf`.
#[inline(always)]
fn mask_run<X: Copy>(x: &[X], keep: impl Fn(X) -> bool, value: impl Fn(X) -> f32, out: &mut [f32]) {
    for (o, &e) in out.iter_mut().zip(x) {
        *o = if keep(e) { value(e) } else { f32::NEG_INFINITY };
    }
}

multiversion! {
    /// `out[i] = x[i]` where `x[i] >= thr`, else `-inf` (so that its weight is exactly 0).
    fn mask_below(x: &[C], thr: f64, out: &mut [C]) {
        let ninf = C::NEG_INFINITY;
        if let Some(x32) = as_f32(x) {
            let c = f32_at_least(thr);
            // SAFETY: `C` is f32 (as_f32 said so), and `out` is borrowed mutably here.
            let o32 =
                unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<f32>(), out.len()) };
            mask_run(x32, |e| e >= c, |e| e, o32);
            return;
        }
        for (o, &e) in out.iter_mut().zip(x) {
            *o = if e.to_f64() >= thr { e } else { ninf };
        }
    }
}

multiversion! {
    /// [`mask_below`] of 16-bit logits read as they are, into their f32 values.
    fn mask_below_half<H>(x: &[H], thr: f64, out: &mut [f32]) {
        let c = f32_at_least(thr);
        mask_run(x, |b| b.value() >= c, H::value, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `first_eq` at every alignment of the row (it tests the elements before the first 64-byte
    /// boundary alone): the first position holding the value, in that first part, in a chunk
    /// or in the tail, and `None` without one.
    #[test]
    fn first_eq_at_every_alignment() {
        let base: Vec<f32> = uniforms(400, 11).iter().map(|&u| u as f32).collect();
        for n in [0, 1, 5, 17, 64, 65, 200, 300] {
            for off in 0..16 {
                for at in [0, 1, 3, 16, 40, 70, 199, 299] {
                    let mut buf = base.clone();
                    if at < n {
                        buf[off + at] = 2.0;
                        // A second one later: the first is the one found.
                        if at + 5 < n {
                            buf[off + at + 5] = 2.0;
                        }
                    }
                    let x = &buf[off..off + n];
                    let want = x.iter().position(|&e| e == 2.0);
                    assert_eq!(first_eq::<f32>(x, 2.0), want, "n={n} off={off} at={at}");
                    let b: Vec<half::bf16> = x.iter().map(|&e| half::bf16::from_f32(e)).collect();
                    let wb = b.iter().position(|e| e.to_f32() == 2.0);
                    assert_eq!(first_eq_half::<f32, half::bf16>(&b, 2.0), wb, "bf16 n={n}");
                }
            }
        }
    }

    /// `count_at_least` and `gather_at_least` (and their 16-bit twins) at every alignment of
    /// the row (they take the elements before the first 64-byte boundary alone): the tokens a
    /// plain filter keeps, in order, with their values.
    #[test]
    fn count_and_gather_at_every_alignment() {
        let base: Vec<f32> = uniforms(2100, 12)
            .iter()
            .map(|&u| (u * 8.0).floor() as f32)
            .collect();
        for n in [0, 3, 40, 64, 65, 130, 2000] {
            for off in 0..16 {
                let x = &base[off..off + n];
                for thr in [-1.0, 3.0, 6.5, 7.0, 9.0] {
                    let want: Vec<usize> = (0..n).filter(|&i| x[i] as f64 >= thr).collect();
                    let ctx = format!("n={n} off={off} thr={thr}");
                    assert_eq!(count_at_least(x, thr), want.len(), "{ctx}");
                    let (mut idx, mut xs) = (Vec::new(), Vec::new());
                    gather_at_least(x, thr, want.len(), &mut idx, &mut xs);
                    assert_eq!(idx, want, "{ctx}");
                    assert!(xs.iter().zip(&idx).all(|(&v, &i)| v == x[i]), "{ctx}");
                    let x64: Vec<f64> = x.iter().map(|&e| e as f64).collect();
                    assert_eq!(count_at_least(&x64, thr), want.len(), "f64 {ctx}");
                    let b: Vec<half::bf16> = x.iter().map(|&e| half::bf16::from_f32(e)).collect();
                    let xb = &b[..];
                    assert_eq!(count_at_least_half::<f32, _>(xb, thr), want.len(), "{ctx}");
                    let (mut idx, mut xs) = (Vec::new(), Vec::new());
                    gather_at_least_half::<f32, _>(xb, thr, want.len(), &mut idx, &mut xs);
                    assert_eq!(idx, want, "bf16 {ctx}");
                    assert!(xs.iter().zip(&idx).all(|(&v, &i)| v == x[i]), "bf16 {ctx}");
                }
            }
        }
    }

    /// `Stored16::value` is the exact f32 value of every bfloat16 and float16 (subnormals,
    /// signed zeros, infinities included; NaN stays NaN).
    #[test]
    fn stored16_values_are_exact_for_every_bit_pattern() {
        for b in 0..=u16::MAX {
            for (got, want) in [
                (
                    half::bf16::from_bits(b).value(),
                    half::bf16::from_bits(b).to_f32(),
                ),
                (
                    half::f16::from_bits(b).value(),
                    half::f16::from_bits(b).to_f32(),
                ),
            ] {
                if want.is_nan() {
                    assert!(got.is_nan(), "{b:#06x}: {got}");
                } else {
                    assert_eq!(got.to_bits(), want.to_bits(), "{b:#06x}: {got} {want}");
                }
            }
        }
    }

    /// Deterministic pseudo-random values in [0, 1).
    fn uniforms(n: usize, seed: u64) -> Vec<f64> {
        let mut u =
            crate::sampling::test_units::units(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        (0..n).map(|_| u()).collect()
    }

    /// The processing copy copies every element and finds a NaN or `+inf` wherever it is (in
    /// the runs of 16 and in the tail), in `f32` and `f64`, at every SIMD level.
    #[test]
    fn r4_copy_checked_copies_and_finds_nan_and_inf_anywhere() {
        // The NaN cases run natively only: the compiler tests `v < inf` as "not equal" on the
        // flags of one VUCOMISS, and under valgrind (`make valgrind` sets this variable) a NaN
        // then passes as finite. Measured: under valgrind only the NaN cases fail, with these
        // runs of 16 and with the plain element loop before them alike; +inf and -inf pass.
        let nan_checked = !crate::under_valgrind();
        check::<f32>(nan_checked);
        check::<f64>(nan_checked);

        fn check<C: Real>(nan_checked: bool) {
            for n in 0..=50 {
                let src: Vec<C> = uniforms(n, 3 + n as u64)
                    .iter()
                    .map(|&v| C::from_f64(v * 10.0 - 5.0))
                    .collect();
                let mut dst = vec![C::from_f64(9.0); n];
                assert!(!copy_checked(&src, &mut dst));
                assert!(src.iter().zip(&dst).all(|(a, b)| a.to_f64() == b.to_f64()));
                for at in 0..n {
                    for (bad, found) in [
                        (C::NAN, true),
                        (C::INFINITY, true),
                        (C::NEG_INFINITY, false),
                    ] {
                        if bad.to_f64().is_nan() && !nan_checked {
                            continue;
                        }
                        let mut s = src.clone();
                        s[at] = bad;
                        let mut d = vec![C::default(); n];
                        assert_eq!(copy_checked(&s, &mut d), found, "n {n} at {at}");
                        assert_eq!(d[at].to_f64().to_bits(), bad.to_f64().to_bits());
                    }
                }
            }
        }
    }

    /// The hit mask against a per-token test, for every chunk length up to 64, with ties,
    /// NaN and infinities.
    #[test]
    fn hits_at_least_matches_a_per_token_test() {
        for n in 0..=64 {
            let u = uniforms(n, 7 + n as u64);
            let mut x: Vec<f32> = u.iter().map(|&v| (v * 8.0).floor() as f32 - 4.0).collect();
            if n > 3 {
                x[1] = f32::NAN;
                x[2] = f32::INFINITY;
                x[3] = f32::NEG_INFINITY;
            }
            for t in [-4.0f32, -0.0, 0.0, 1.0, 3.0, 4.0, f32::NEG_INFINITY] {
                let want = x
                    .iter()
                    .enumerate()
                    .fold(0u64, |b, (j, &e)| b | (((e >= t) as u64) << j));
                assert_eq!(hits_at_least(&x, t), want, "n={n} t={t}");
                let x64: Vec<f64> = x.iter().map(|&e| e as f64).collect();
                assert_eq!(hits_at_least(&x64, t as f64), want, "f64 n={n} t={t}");
            }
        }
    }

    /// The masses of every level in one pass against their twin (one f64 sum of the kept
    /// weights per level), on every vector path this CPU has, for lengths around the steps of
    /// 128 and 256 tokens, levels taken from the data (ties) and `-inf` logits of weight 0.
    #[test]
    fn level_masses_match_a_plain_f64_sum_per_level() {
        for n in [0, 1, 15, 127, 128, 129, 255, 256, 257, 1000, 4099] {
            let u = uniforms(2 * n + LEVELS + 1, 11 + n as u64);
            let mut x: Vec<f32> = u[..n]
                .iter()
                .map(|&v| ((v * 40.0).floor() - 20.0) as f32)
                .collect();
            let mut w: Vec<f32> = u[n..2 * n].iter().map(|&v| (v * v) as f32).collect();
            for j in (3..n).step_by(17) {
                x[j] = f32::NEG_INFINITY;
                w[j] = 0.0;
            }
            let levels: [f64; LEVELS] = std::array::from_fn(|k| {
                let pick = u[2 * n + k];
                if n == 0 {
                    0.0
                } else {
                    f64::from(x[(pick * n as f64) as usize]).max(-30.0) + 0.25 * (k % 2) as f64
                }
            });
            let want = levels.map(|t| {
                x.iter()
                    .zip(&w)
                    .filter(|&(&e, _)| f64::from(e) >= t)
                    .map(|(_, &v)| f64::from(v))
                    .sum::<f64>()
            });
            let close = |got: [f64; LEVELS], how: &str| {
                for k in 0..LEVELS {
                    let tol = 1e-6 * want[k].max(1e-30);
                    assert!(
                        (got[k] - want[k]).abs() <= tol,
                        "{how} n={n} k={k}: {got:?} {want:?}"
                    );
                }
            };
            close(level_masses(&w, &x, &levels), "dispatched");
            let w64: Vec<f64> = w.iter().map(|&v| f64::from(v)).collect();
            let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
            close(level_masses(&w64, &x64, &levels), "f64");
            #[cfg(target_arch = "x86_64")]
            {
                let c = levels.map(f32_at_least);
                if std::is_x86_feature_detected!("avx512f") {
                    // SAFETY: AVX-512F was detected.
                    close(unsafe { level_masses_avx512(&w, &x, &c) }, "avx512");
                }
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: AVX2 was detected.
                    close(unsafe { level_masses_avx2(&w, &x, &c) }, "avx2");
                }
            }
        }
    }

    /// The positions at or above a threshold (bit masks of 64, eight AVX2 comparisons for
    /// f32) are those of a filter: lengths around 64 and 8, thresholds keeping none to all,
    /// ties, `-inf`, f32 and f64.
    #[test]
    fn positions_at_least_is_the_filter() {
        fn check<C: Real>(u: &mut impl FnMut() -> f64) {
            for n in [0usize, 1, 7, 8, 9, 63, 64, 65, 127, 129, 1000, 4099] {
                let vals: Vec<C> = (0..n)
                    .map(|_| match u() {
                        r if r < 0.05 => C::NEG_INFINITY,
                        r if r < 0.4 => C::from_f64((u() * 6.0).floor()),
                        _ => C::from_f64(u() * 12.0 - 6.0),
                    })
                    .collect();
                for t in [7.0, 5.0, 2.0, 0.5, -5.9, f64::NEG_INFINITY] {
                    let t = C::from_f64(t);
                    let mut got = vec![usize::MAX];
                    assert!(positions_at_least(&vals, t, &mut got));
                    let want: Vec<usize> = std::iter::once(usize::MAX)
                        .chain((0..n).filter(|&j| vals[j] >= t))
                        .collect();
                    assert_eq!(got, want, "n {n} t {}", t.to_f64());
                }
            }
        }
        let mut u = crate::sampling::test_units::units(0x2545_F491_4F6C_DD1D);
        check::<f32>(&mut u);
        check::<f64>(&mut u);
    }

    /// The x86 packing levels this CPU has, whatever the process's SIMD level.
    #[cfg(target_arch = "x86_64")]
    fn packings_here() -> Vec<Packing> {
        let has = |f: &str| match f {
            "avx512f" => std::is_x86_feature_detected!("avx512f"),
            "avx2" => std::is_x86_feature_detected!("avx2"),
            "f16c" => std::is_x86_feature_detected!("f16c"),
            _ => std::is_x86_feature_detected!("popcnt"),
        };
        let mut levels = Vec::new();
        if has("avx512f") && has("popcnt") {
            levels.push(Packing::Avx512);
        }
        if has("avx2") && has("f16c") && has("popcnt") {
            levels.push(Packing::Avx2);
        }
        levels
    }

    /// One packing pass over a row, by its limit.
    #[cfg(target_arch = "x86_64")]
    type RowPass<'a> = dyn Fn(usize) -> Option<Packed<f32>> + 'a;

    /// A row's tokens at or above `t` by `level`'s own pass; `None` past `limit`.
    #[cfg(target_arch = "x86_64")]
    fn pack_row<X: Lanes16>(
        level: Packing,
        x: &[X],
        ws: &[f32],
        t: f32,
        limit: usize,
    ) -> Option<Packed<f32>> {
        let mut out = Packed::default();
        let done = packed_into(&mut out, limit.min(x.len()), |to, limit| match level {
            // SAFETY: `packings_here` detected the level's instructions; `packed_into` gives
            // room for `limit + 16`; `ws` is as long as `x`, which is short.
            Packing::Avx512 => unsafe { positions_avx512(x, ws, t, limit, to) },
            // SAFETY: as above.
            Packing::Avx2 => unsafe { positions_avx2(x, ws, t, limit, to) },
        });
        done.unwrap().then_some(out)
    }

    /// A packed set's tokens at or above `t` by `level`'s own pass; `None` past `limit`.
    #[cfg(target_arch = "x86_64")]
    fn pack_set(
        level: Packing,
        x: &[f32],
        ws: &[f32],
        ids: &[u32],
        t: f32,
        limit: usize,
    ) -> Option<Packed<f32>> {
        let mut out = Packed::default();
        let done = packed_into(&mut out, limit.min(x.len()), |to, limit| match level {
            // SAFETY: as in `pack_row`; `ids` is as long as `x`.
            Packing::Avx512 => unsafe { compress_avx512::<true>(x, ws, ids, t, limit, to) },
            // SAFETY: as above.
            Packing::Avx2 => unsafe { compress_avx2(x, ws, ids, t, limit, to) },
        });
        done.unwrap().then_some(out)
    }

    /// Every packing pass this CPU has, called directly (so an AVX-512 CPU tests the AVX2 ones
    /// too), against a filter: rows of f32, bfloat16 and float16 at several alignments, packed
    /// sets of lengths around 8 and 16 (every token, every second, every third), values with
    /// NaN, +inf, -inf and -0.0, and the limit (refused one below the count, done at it).
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn packing_passes_of_every_level_match_a_filter() {
        let lens = [
            0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 127, 128, 129, 200, 1000, 4097,
        ];
        for level in packings_here() {
            for (n, off) in lens
                .into_iter()
                .flat_map(|n| [0, 1, 7, 15].map(|off| (n, off)))
            {
                let u = uniforms(n, 11 + n as u64);
                let mut xv: Vec<f32> = vec![0.0; off];
                xv.extend(u.iter().enumerate().map(|(j, &v)| match j % 23 {
                    3 => f32::NAN,
                    8 => f32::INFINITY,
                    13 => f32::NEG_INFINITY,
                    17 => -0.0,
                    _ => ((v * 16.0).floor() - 8.0) as f32,
                }));
                let x = &xv[off..];
                let ws: Vec<f32> = (0..n).map(|j| j as f32 * 0.25 + 1.0).collect();
                let xb: Vec<half::bf16> = xv.iter().map(|&e| half::bf16::from_f32(e)).collect();
                let xh: Vec<half::f16> = xv.iter().map(|&e| half::f16::from_f32(e)).collect();
                for t in [
                    f32::NEG_INFINITY,
                    -8.0,
                    -2.5,
                    -0.0,
                    0.0,
                    0.5,
                    7.0,
                    f32::INFINITY,
                ] {
                    let what = format!("{level:?} n={n} off={off} t={t}");
                    let want_of = |from: &[u32]| -> Vec<u32> {
                        from.iter()
                            .copied()
                            .filter(|&j| x[j as usize] >= t)
                            .collect()
                    };
                    let check = |got: &Packed<f32>, want: &[u32], set: &str| {
                        assert_eq!(got.ids, want, "{what} {set}");
                        let wx: Vec<u32> = want.iter().map(|&j| x[j as usize].to_bits()).collect();
                        let gx: Vec<u32> = got.xs.iter().map(|e| e.to_bits()).collect();
                        assert_eq!(gx, wx, "{what} {set}");
                        let ww: Vec<f32> = want.iter().map(|&j| ws[j as usize]).collect();
                        assert_eq!(got.ws, ww, "{what} {set}");
                    };
                    let all: Vec<u32> = (0..n as u32).collect();
                    let want = want_of(&all);
                    let k = want.len();
                    let rows: [(&str, &RowPass); 3] = [
                        ("f32 row", &|l| pack_row(level, x, &ws, t, l)),
                        ("bfloat16 row", &|l| pack_row(level, &xb[off..], &ws, t, l)),
                        ("float16 row", &|l| pack_row(level, &xh[off..], &ws, t, l)),
                    ];
                    for (set, pack) in rows {
                        check(&pack(k).expect("at its limit"), &want, set);
                        check(&pack(n).expect("under its limit"), &want, set);
                        if k > 0 {
                            assert!(pack(k - 1).is_none(), "{what} {set} over its limit");
                        }
                    }
                    for step in [1, 2, 3] {
                        let sub: Vec<u32> = (0..n as u32).step_by(step).collect();
                        let sub_x: Vec<f32> = sub.iter().map(|&j| x[j as usize]).collect();
                        let sub_w: Vec<f32> = sub.iter().map(|&j| ws[j as usize]).collect();
                        let want = want_of(&sub);
                        let k = want.len();
                        let pack = |l| pack_set(level, &sub_x, &sub_w, &sub, t, l);
                        let set = format!("packed set, step {step}");
                        check(&pack(k).expect("at its limit"), &want, &set);
                        check(&pack(sub.len()).expect("under its limit"), &want, &set);
                        if k > 0 {
                            assert!(pack(k - 1).is_none(), "{what} {set} over its limit");
                        }
                    }
                }
            }
        }
    }

    /// The packing passes have a path at both x86 vector levels (on a CPU with the level's
    /// instructions), so that the filter test below runs the level's own code.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn packing_has_a_path_at_both_x86_vector_levels() {
        let level = simd_level();
        let path = compresses::<f32>(1000);
        match level {
            SimdLevel::Avx512 => assert!(path && packing_for(1000) == Some(Packing::Avx512)),
            SimdLevel::Avx2 if std::is_x86_feature_detected!("f16c") => {
                assert!(path && packing_for(1000) == Some(Packing::Avx2))
            }
            _ => assert!(!path),
        }
        assert!(!compresses::<f64>(1000));
    }

    /// The tokens at or above a threshold, compressed branch-free, against a filter, for
    /// lengths around a group of 8 and of 16 tokens, densities from none to all, ties, `-inf`; from a
    /// row and from a packed set.
    #[test]
    fn compress_at_least_matches_a_filter() {
        // At several alignments of the row: the row pass takes the part before its first
        // 64-byte boundary alone.
        for (n, off) in [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 200, 1000, 4097]
            .into_iter()
            .flat_map(|n| [0, 1, 7, 15].map(|off| (n, off)))
        {
            let u = uniforms(n, 5 + n as u64);
            let mut xv: Vec<f32> = vec![0.0; off];
            xv.extend(u.iter().map(|&v| ((v * 16.0).floor() - 8.0) as f32));
            for j in (2..n).step_by(13) {
                xv[off + j] = f32::NEG_INFINITY;
            }
            let x = &xv[off..];
            let mut wv: Vec<f32> = vec![0.0; off];
            wv.extend((0..n).map(|j| j as f32 * 0.5 + 1.0));
            let ws = &wv[off..];
            // A packed set: every third token, with its positions.
            let sub: Vec<u32> = (0..n as u32).step_by(3).collect();
            let sub_x: Vec<f32> = sub.iter().map(|&j| x[j as usize]).collect();
            let sub_w: Vec<f32> = sub.iter().map(|&j| ws[j as usize]).collect();
            for t in [
                -9.0f32,
                -8.0,
                -2.5,
                -1.0,
                0.0,
                0.5,
                6.0,
                7.0,
                8.0,
                f32::NEG_INFINITY,
            ] {
                let check = |from: &[u32], out: &Packed<f32>, what: &str| {
                    let want: Vec<u32> = from
                        .iter()
                        .copied()
                        .filter(|&j| x[j as usize] >= t)
                        .collect();
                    assert_eq!(out.ids, want, "{what} n={n} t={t}");
                    let want_x: Vec<f32> = want.iter().map(|&j| x[j as usize]).collect();
                    let want_w: Vec<f32> = want.iter().map(|&j| ws[j as usize]).collect();
                    assert_eq!(out.xs, want_x, "{what} n={n} t={t}");
                    assert_eq!(out.ws, want_w, "{what} n={n} t={t}");
                };
                let all: Vec<u32> = (0..n as u32).collect();
                let mut out = Packed::default();
                if compress_at_least(x, ws, None, t, n, &mut out).unwrap() {
                    check(&all, &out, "row");
                    let k = out.ids.len();
                    let sub_n = sub.len();
                    assert!(
                        compress_at_least(&sub_x, &sub_w, Some(&sub), t, sub_n, &mut out).unwrap()
                    );
                    check(&sub, &out, "packed");
                    // A limit: refused above it, done at it.
                    if k > 0 {
                        assert!(!compress_at_least(x, ws, None, t, k - 1, &mut out).unwrap());
                        assert!(compress_at_least(x, ws, None, t, k, &mut out).unwrap());
                        check(&all, &out, "row at its limit");
                    }
                }
                // The same row as bfloat16 and float16 (its values are exact in both), packed
                // by the pass that widens them in registers.
                if compresses::<f32>(n) {
                    let mut out = Packed::default();
                    let xb: Vec<half::bf16> = xv.iter().map(|&e| half::bf16::from_f32(e)).collect();
                    let xh: Vec<half::f16> = xv.iter().map(|&e| half::f16::from_f32(e)).collect();
                    assert!(compress_half_at_least(&xb[off..], ws, t, n, &mut out).unwrap());
                    check(&all, &out, "bfloat16 row");
                    assert!(compress_half_at_least(&xh[off..], ws, t, n, &mut out).unwrap());
                    check(&all, &out, "float16 row");
                    let k = out.ids.len();
                    if k > 0 {
                        assert!(
                            !compress_half_at_least(&xb[off..], ws, t, k - 1, &mut out).unwrap()
                        );
                    }
                }
                let want: Vec<u32> = (0..n as u32).filter(|&j| x[j as usize] >= t).collect();
                let mut got = Vec::new();
                for_each_at_least(x, t, |j| {
                    got.push(j as u32);
                    true
                });
                assert_eq!(got, want, "for_each n={n} t={t}");
            }
        }
    }

    /// The lane reductions of the kept list's stages (P20-P22) against plain loops: the
    /// extremes exactly, the sums within the rounding of a different order of additions.
    #[test]
    fn p20_p22_lane_reductions_match_plain_loops() {
        for n in 0..200 {
            let u = uniforms(2 * n + 1, 77 + n as u64);
            let ws: Vec<f32> = u[..n]
                .iter()
                .map(|&v| if v < 0.1 { 0.0 } else { v as f32 })
                .collect();
            let vals: Vec<f64> = u[n..2 * n].iter().map(|&v| v * 50.0 - 40.0).collect();
            let close = |a: f64, b: f64, what: &str| {
                assert!(
                    (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
                    "{what} n={n}: {a} vs {b}"
                )
            };
            let (lo, hi) = lane_extremes(&vals);
            assert_eq!(
                lo,
                vals.iter().copied().fold(f64::INFINITY, f64::min),
                "n={n}"
            );
            assert_eq!(
                hi,
                vals.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                "n={n}"
            );
            let dot: f64 = ws
                .iter()
                .zip(&vals)
                .filter(|(&w, _)| w > 0.0)
                .map(|(&w, &v)| w as f64 * v)
                .sum();
            close(lane_dot(&ws, &vals), dot, "dot");
            let mean = 3.5;
            let sq: f64 = vals.iter().map(|&v| (v - mean) * (v - mean)).sum();
            close(
                lane_squared_deviations(&vals, mean),
                sq,
                "squared deviations",
            );
            let xs: Vec<f32> = vals.iter().map(|&v| v as f32).collect();
            let mut out = vec![0.0; n];
            assert!(scaled_gaps(&xs, 2.0, 0.7, &mut out));
            for (o, &x) in out.iter().zip(&xs) {
                assert_eq!(*o, (x as f64 - 2.0) / 0.7);
            }
        }
        let mut out = vec![0.0; 2];
        assert!(
            !scaled_gaps(&[f64::MAX, 0.0], -f64::MAX, 1.0, &mut out),
            "overflowed gap"
        );
    }

    /// The masked sum against its obviously correct twin (an f64 sum of the kept weights),
    /// for f32 and f64 data, every length up to 300 (all remainders of the vector steps), a
    /// threshold taken from the data (ties) and both comparisons.
    #[test]
    fn masked_lane_sum_matches_a_plain_f64_sum() {
        for n in 0..300 {
            let u = uniforms(2 * n + 1, n as u64);
            // Logits on a coarse grid, so that ties with the threshold occur.
            let x64: Vec<f64> = u[..n].iter().map(|&v| (v * 20.0).floor() - 10.0).collect();
            let w64: Vec<f64> = u[n..2 * n].iter().map(|&v| v * v).collect();
            let v = x64.get(n / 2).copied().unwrap_or(0.0);
            let x32: Vec<f32> = x64.iter().map(|&e| e as f32).collect();
            let w32: Vec<f32> = w64.iter().map(|&e| e as f32).collect();
            for incl in [false, true] {
                let keep = |e: f64| if incl { e >= v } else { e > v };
                let want32: f64 = x32
                    .iter()
                    .zip(&w32)
                    .filter(|(&e, _)| keep(e as f64))
                    .map(|(_, &w)| w as f64)
                    .sum();
                let got32 = masked_lane_sum(&w32, &x32, v, incl);
                // f32 weights are added four at a time in f32 (two roundings) before widening.
                assert!(
                    (got32 - want32).abs() <= 2.5e-7 * want32,
                    "f32 n={n} incl={incl}: {got32} vs {want32}"
                );
                let want64: f64 = x64
                    .iter()
                    .zip(&w64)
                    .filter(|(&e, _)| keep(e))
                    .map(|(_, &w)| w)
                    .sum();
                let got64 = masked_lane_sum(&w64, &x64, v, incl);
                assert!(
                    (got64 - want64).abs() <= 1e-14 * want64.max(1.0),
                    "f64 n={n} incl={incl}: {got64} vs {want64}"
                );
            }
        }
    }
}
