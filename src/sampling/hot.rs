//! The sampler's own passes over a row, written so that the compiler vectorises them, and
//! compiled twice on x86-64: for the build's baseline and for AVX2 + FMA, the latter used when
//! the crate's SIMD level (contract S12, `LOGITKIT_SIMD` included) is AVX2 or better.

use crate::element::Real;

#[cfg(target_arch = "x86_64")]
#[inline]
fn use_avx2() -> bool {
    use crate::simd::{simd_level, SimdLevel};
    matches!(simd_level(), SimdLevel::Avx2 | SimdLevel::Avx512)
}

/// Defines `pub(crate) fn $name` over `C: Real` that runs `$body` compiled for AVX2 + FMA when
/// the SIMD level allows, else for the baseline.
macro_rules! multiversion {
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
            if use_avx2() {
                // SAFETY: the SIMD level is AVX2 or better only on CPUs with AVX2 and FMA.
                return unsafe { avx2::<C>($($arg),*) };
            }
            imp::<C>($($arg),*)
        }
    };
}

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

/// Reduces eight lanes in a fixed order.
#[inline(always)]
fn reduce8(a: [f64; 8]) -> f64 {
    ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]))
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
    /// Σ w in `f64`, eight lanes.
    fn lane_sum(ws: &[C]) -> f64 {
        let mut acc = [0.0f64; 8];
        let mut it = ws.chunks_exact(8);
        for c in &mut it {
            for l in 0..8 {
                acc[l] += c[l].to_f64();
            }
        }
        for (l, &v) in it.remainder().iter().enumerate() {
            acc[l] += v.to_f64();
        }
        reduce8(acc)
    }
}

multiversion! {
    /// Σ w over the tokens with `x > v` (`x >= v` when `incl`), eight lanes, branch-free.
    fn masked_lane_sum(ws: &[C], xs: &[C], v: f64, incl: bool) -> f64 {
        #[inline(always)]
        fn run<C: Real, X: Copy>(ws: &[C], xs: &[X], keep: impl Fn(X) -> bool) -> f64 {
            let mut acc = [0.0f64; 8];
            let mut wi = ws.chunks_exact(8);
            let mut xi = xs.chunks_exact(8);
            for (wv, xv) in (&mut wi).zip(&mut xi) {
                for l in 0..8 {
                    let w = wv[l].to_f64();
                    acc[l] += if keep(xv[l]) { w } else { 0.0 };
                }
            }
            for (l, (&we, &xe)) in wi.remainder().iter().zip(xi.remainder()).enumerate() {
                acc[l] += if keep(xe) { we.to_f64() } else { 0.0 };
            }
            reduce8(acc)
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

multiversion! {
    /// The number of tokens `>= thr`.
    fn count_at_least(x: &[C], thr: f64) -> usize {
        let mut n = 0usize;
        if let Some(x32) = as_f32(x) {
            // In f32 for f32 logits: the same outcome, twice the lanes.
            let c = f32_at_least(thr);
            for ch in x32.chunks(256) {
                n += ch.iter().map(|&e| (e >= c) as u32).sum::<u32>() as usize;
            }
            return n;
        }
        for ch in x.chunks(256) {
            n += ch.iter().map(|e| (e.to_f64() >= thr) as u32).sum::<u32>() as usize;
        }
        n
    }
}

multiversion! {
    /// Appends the `count` tokens `>= thr` (ids and logits), branch-free (a token passes or
    /// not unpredictably), skipping chunks of 64 without any.
    fn gather_at_least(x: &[C], thr: f64, count: usize, idx: &mut Vec<usize>, xs: &mut Vec<C>) {
        let base = idx.len();
        idx.resize(base + count + 1, 0);
        xs.resize(base + count + 1, C::default());
        let mut n = base;
        for (c, chunk) in x.chunks(64).enumerate() {
            let hits = chunk.iter().map(|e| (e.to_f64() >= thr) as u32).sum::<u32>();
            if hits > 0 {
                for (j, &e) in chunk.iter().enumerate() {
                    // n <= base + count: at most `count` tokens pass.
                    idx[n] = c * 64 + j;
                    xs[n] = e;
                    n += (e.to_f64() >= thr) as usize;
                }
            }
        }
        idx.truncate(n);
        xs.truncate(n);
    }
}

multiversion! {
    /// Appends the positions `j` with `ids[j] == b`, skipping chunks of 64 without any.
    fn positions_eq(ids: &[u16], b: u16, out: &mut Vec<usize>) {
        let mut buf = [0usize; 65];
        for (c, chunk) in ids.chunks(64).enumerate() {
            let hits = chunk.iter().map(|&id| (id == b) as u32).sum::<u32>();
            if hits > 0 {
                // Branch-free within the chunk: a token matches or not unpredictably.
                let mut n = 0;
                for (j, &id) in chunk.iter().enumerate() {
                    buf[n.min(64)] = c * 64 + j;
                    n += (id == b) as usize;
                }
                out.extend_from_slice(&buf[..n]);
            }
        }
    }
}

multiversion! {
    /// The first position holding `m` (which the slice holds), scanning chunks of 64 at once.
    fn first_eq(x: &[C], m: C) -> usize {
        for (c, chunk) in x.chunks(64).enumerate() {
            if chunk.iter().fold(false, |a, &e| a | (e == m)) {
                return c * 64 + chunk.iter().position(|&e| e == m).unwrap_or(0);
            }
        }
        unreachable!("the maximum is in the row")
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
            for (o, &e) in o32.iter_mut().zip(x32) {
                *o = if e >= c { e } else { f32::NEG_INFINITY };
            }
            return;
        }
        for (o, &e) in out.iter_mut().zip(x) {
            *o = if e.to_f64() >= thr { e } else { ninf };
        }
    }
}
