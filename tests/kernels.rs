//! The vector kernels of every level this CPU has, against the scalar twin and against an
//! `f64` (double-word argument) reference: contracts S5, S6, S8, S9, S12.

use logitkit::__kernels as k;
use logitkit::{supported_levels, Op, SimdLevel};

// ----------------------------------------------------------------------------------------------
// Helpers
// ----------------------------------------------------------------------------------------------

/// SplitMix64: a small deterministic generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    fn normal(&mut self) -> f64 {
        let u = self.unit().max(1e-300);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

fn vector_levels() -> Vec<SimdLevel> {
    supported_levels()
        .into_iter()
        .filter(|&l| l != SimdLevel::Scalar)
        .collect()
}

/// (x - m) / t as a double word (hi, lo).
fn dd_arg(x: f64, m: f64, t: f64) -> (f64, f64) {
    let d = x - m;
    if !d.is_finite() {
        return (d, 0.0);
    }
    let bb = d - x;
    let lo = (x - (d - bb)) + (-m - bb);
    if t == 1.0 {
        return (d, lo);
    }
    let hi = d / t;
    if !hi.is_finite() {
        return (hi, 0.0);
    }
    let rem = (-hi).mul_add(t, d);
    (hi, (rem + lo) / t)
}

fn dd_exp(hi: f64, lo: f64) -> f64 {
    if hi == f64::NEG_INFINITY {
        return 0.0;
    }
    let e = hi.exp();
    e + e * lo
}

/// Neumaier sum.
fn ksum(v: impl IntoIterator<Item = f64>) -> f64 {
    let (mut s, mut c) = (0.0f64, 0.0f64);
    for x in v {
        let t = s + x;
        if s.abs() >= x.abs() {
            c += (s - t) + x;
        } else {
            c += (x - t) + s;
        }
        s = t;
    }
    s + c
}

/// Reference probabilities, log-probabilities and log-sum-exp (of x / t) of a finite row.
fn reference(x: &[f64], t: f64) -> (Vec<f64>, Vec<f64>, f64) {
    let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let args: Vec<(f64, f64)> = x.iter().map(|&v| dd_arg(v, m, t)).collect();
    let e: Vec<f64> = args.iter().map(|&(h, l)| dd_exp(h, l)).collect();
    let sum = ksum(e.iter().copied());
    let ls = sum.ln();
    let p = e.iter().map(|&v| v / sum).collect();
    let lp = args.iter().map(|&(h, l)| (h - ls) + l).collect();
    (p, lp, m / t + ls)
}

fn f32_row(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

fn widen<C: logitkit::Real>(x: &[C]) -> Vec<f64> {
    x.iter().map(|v| v.to_f64()).collect()
}

const LENS: &[usize] = &[
    0,
    1,
    2,
    3,
    7,
    8,
    9,
    15,
    16,
    17,
    31,
    32,
    33,
    63,
    64,
    65,
    100,
    1000,
    k::BLOCK - 1,
    k::BLOCK,
    k::BLOCK + 1,
];

fn random_row(rng: &mut Rng, n: usize, scale: f64, neg_inf_every: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            if neg_inf_every > 0 && i % neg_inf_every == neg_inf_every - 1 {
                f64::NEG_INFINITY
            } else {
                rng.normal() * scale
            }
        })
        .collect()
}

// ----------------------------------------------------------------------------------------------
// S12: levels
// ----------------------------------------------------------------------------------------------

#[test]
fn s12_vector_levels_listed_for_this_cpu() {
    let levels = supported_levels();
    assert_eq!(levels[0], SimdLevel::Scalar);
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        let avx512 = avx2 && is_x86_feature_detected!("avx512f");
        assert_eq!(levels.contains(&SimdLevel::Avx2), avx2);
        assert_eq!(levels.contains(&SimdLevel::Avx512), avx512);
        assert!(!levels.contains(&SimdLevel::Neon));
    }
    #[cfg(target_arch = "aarch64")]
    {
        assert_eq!(
            levels,
            vec![SimdLevel::Scalar, SimdLevel::Neon],
            "NEON is in the aarch64 baseline"
        );
        assert_eq!(logitkit::simd_level(), SimdLevel::Neon);
    }
    assert!(levels.contains(&logitkit::simd_level()));
}

// ----------------------------------------------------------------------------------------------
// Every vector kernel against the scalar twin
// ----------------------------------------------------------------------------------------------

/// Results below these may be flushed to exactly 0 by a vector exp (AVX2 does, to keep
/// underflowing multiplies off the fast path); they are far below the bounds of S8.
const F32_FLUSHABLE: f64 = 1.66e-38;
const F64_FLUSHABLE: f64 = 3.31e-308;

/// Relative tolerance of a vector f32 exp against the (correctly rounded) scalar one, for an
/// argument `a <= 0`: the polynomial, plus half an ulp of the f32 argument.
fn f32_exp_tol(reference: f64, a: f64) -> f64 {
    let sub = 2.0 * f32::from_bits(1) as f64;
    if reference == 0.0 {
        sub
    } else {
        reference * (3.0e-7 + 6.0e-8 * a.abs()) + sub
    }
}

/// The row maximum at every alignment of the row (the vector kernels start from an aligned
/// address on long rows, after a partial first vector): the scalar twin's value and NaN flag,
/// with the maximum or a NaN in that first part, in the body or in the tail.
#[test]
fn max_matches_scalar_twin_at_every_alignment_all_levels() {
    fn check<C: logitkit::Real + std::fmt::Debug>(of: impl Fn(f64) -> C) {
        let mut rng = Rng(7);
        for level in vector_levels() {
            for n in [1, 15, 127, 128, 129, 1000, 16_384 + 7] {
                let base = random_row(&mut rng, n + 16, 4.0, 5);
                for off in 0..16 {
                    for (what, at) in [("none", usize::MAX), ("head", 1), ("body", n / 2)]
                        .into_iter()
                        .chain([("tail", n.saturating_sub(1))])
                    {
                        for special in [f64::NAN, 50.0] {
                            let mut buf: Vec<C> = base.iter().map(|&v| of(v)).collect();
                            if at < n {
                                buf[off + at] = of(special);
                            }
                            let x = &buf[off..off + n];
                            let (m, nan) = k::max(level, x);
                            let (ms, nans) = k::max(SimdLevel::Scalar, x);
                            let ctx = format!("{level:?} n={n} off={off} {what} {special}");
                            assert_eq!(nan, nans, "{ctx}");
                            assert!(m == ms, "{ctx}: {m:?} vs {ms:?}");
                        }
                    }
                }
            }
        }
    }
    check(|v| v as f32);
    check(|v| v);
}

#[test]
fn kernels_match_scalar_twin_f32_all_levels() {
    let mut rng = Rng(1);
    for level in vector_levels() {
        for &n in LENS {
            for (scale, every, t) in [(5.0, 0, 1.0), (20.0, 7, 1.0), (3.0, 5, 0.37), (8.0, 0, 3.0)]
            {
                let x = f32_row(&random_row(&mut rng, n, scale, every));
                let ctx = format!("{level:?} n={n} scale={scale} t={t}");
                let (m, nan) = k::max(level, &x);
                let (ms, nans) = k::max(SimdLevel::Scalar, &x);
                assert_eq!((m.to_bits(), nan), (ms.to_bits(), nans), "max {ctx}");
                if n == 0 {
                    assert_eq!(m, f32::NEG_INFINITY);
                    continue;
                }
                let s = k::sum_exp(level, &x, m, t);
                let ss = k::sum_exp(SimdLevel::Scalar, &x, m, t);
                assert!((s - ss).abs() <= 1e-6 * ss, "sum_exp {ctx}: {s} vs {ss}");
                let mut e = vec![0.0f32; n];
                let mut es = vec![0.0f32; n];
                let s2 = k::exp_store_sum(level, &x, &mut e, m, t);
                let ss2 = k::exp_store_sum(SimdLevel::Scalar, &x, &mut es, m, t);
                assert_eq!(
                    s2.to_bits(),
                    s.to_bits(),
                    "exp_store_sum and sum_exp agree {ctx}"
                );
                assert!((s2 - ss2).abs() <= 1e-6 * ss2, "exp_store_sum {ctx}");
                for i in 0..n {
                    let a = (x[i] as f64 - m as f64) / t;
                    let tol = f32_exp_tol(es[i] as f64, a);
                    let flushed = e[i] == 0.0 && (es[i] as f64) < F32_FLUSHABLE;
                    assert!(
                        flushed || ((e[i] - es[i]) as f64).abs() <= tol,
                        "exp {ctx} i={i} x={} got {} want {}",
                        x[i],
                        e[i],
                        es[i]
                    );
                }
                let f = 1.0 / ss2;
                let mut sc = e.clone();
                k::scale(level, &mut sc, f);
                for i in 0..n {
                    let want = e[i] as f64 * f;
                    assert!(
                        (sc[i] as f64 - want).abs() <= 1.5e-7 * want + 1e-45,
                        "scale {ctx} i={i}"
                    );
                }
                let ls = ss.ln();
                let mut lp = vec![0.0f32; n];
                let mut lps = vec![0.0f32; n];
                k::write_log_softmax(level, &x, &mut lp, m, t, ls, false);
                k::write_log_softmax(SimdLevel::Scalar, &x, &mut lps, m, t, ls, false);
                for i in 0..n {
                    if lps[i] == f32::NEG_INFINITY {
                        assert_eq!(lp[i], f32::NEG_INFINITY, "log -inf {ctx} i={i}");
                    } else {
                        let tol = 3e-7 * (lps[i].abs() as f64).max(1.0);
                        assert!(
                            ((lp[i] - lps[i]) as f64).abs() <= tol,
                            "log {ctx} i={i}: {} vs {}",
                            lp[i],
                            lps[i]
                        );
                    }
                }
            }
        }
    }
}

/// P26's one pass at temperature 1: its total is `sum_exp`'s (same bits) at every level, its
/// count of finite entries exact, its `Σ e (x - m)` within the level's rounding of a float64
/// reference, for `f32` and `f64` rows with `-inf` entries and every tail length.
fn check_entropy_sums<C: logitkit::Real>(from: fn(&[f64]) -> Vec<C>, dot_tol: f64) {
    let mut rng = Rng(26);
    let mut levels = vector_levels();
    levels.push(SimdLevel::Scalar);
    for level in levels {
        for &n in LENS.iter().filter(|&&n| n > 0) {
            for (scale, every) in [(5.0, 0), (20.0, 7), (3.0, 2), (1e3, 3)] {
                let x = from(&random_row(&mut rng, n, scale, every));
                let ctx = format!("{level:?} n={n} scale={scale} every={every}");
                let (m, _) = k::max(level, &x);
                if m == C::from_f64(f64::NEG_INFINITY) {
                    continue;
                }
                let (total, dot, finite) = k::entropy_sums(level, &x, m);
                let sum = k::sum_exp(level, &x, m, 1.0);
                assert_eq!(total.to_bits(), sum.to_bits(), "total is sum_exp's {ctx}");
                let xs = widen(&x);
                let mf = m.to_f64();
                let want_finite = xs.iter().filter(|v| v.is_finite()).count();
                assert_eq!(finite, want_finite, "finite {ctx}");
                let want: f64 = xs
                    .iter()
                    .filter(|v| v.is_finite())
                    .map(|&v| (v - mf).exp() * (v - mf))
                    .sum();
                // Every term is <= 0: the bound is relative to the sum itself, plus what
                // weights flushed to 0 (`f32` kernels, below F32_FLUSHABLE) leave out.
                let flushed: f64 = xs
                    .iter()
                    .filter(|v| v.is_finite())
                    .map(|&v| v - mf)
                    .filter(|g| g.exp() < F32_FLUSHABLE)
                    .map(|g| -g * g.exp())
                    .sum();
                assert!(
                    (dot - want).abs() <= dot_tol * want.abs() + flushed,
                    "dot {ctx}: {dot} vs {want}"
                );
            }
        }
        // The largest gap: a finite entry whose difference from the maximum overflows to
        // -inf has weight 0 and adds nothing; -inf is not counted.
        let x = from(&[3e38, -3e38, f64::NEG_INFINITY, 3e38]);
        let (total, dot, finite) = k::entropy_sums(level, &x, x[0]);
        assert_eq!(
            (total, dot, finite),
            (2.0, 0.0, 3),
            "{level:?} extreme gaps"
        );
    }
}

#[test]
fn p26_entropy_sums_match_sum_exp_and_reference_all_levels() {
    check_entropy_sums::<f32>(f32_row, 2e-6);
    check_entropy_sums::<f64>(|x| x.to_vec(), 1e-12);
}

#[test]
fn kernels_match_scalar_twin_f64_all_levels() {
    let mut rng = Rng(2);
    for level in vector_levels() {
        for &n in LENS {
            for (scale, every, t) in [
                (5.0, 0, 1.0),
                (200.0, 7, 1.0),
                (3.0, 5, 0.37),
                (50.0, 0, 3.0),
            ] {
                let x = random_row(&mut rng, n, scale, every);
                let ctx = format!("{level:?} n={n} scale={scale} t={t}");
                let (m, nan) = k::max(level, &x);
                let (ms, nans) = k::max(SimdLevel::Scalar, &x);
                assert_eq!((m.to_bits(), nan), (ms.to_bits(), nans), "max {ctx}");
                if n == 0 {
                    continue;
                }
                let s = k::sum_exp(level, &x, m, t);
                let ss = k::sum_exp(SimdLevel::Scalar, &x, m, t);
                assert!((s - ss).abs() <= 1e-14 * ss, "sum_exp {ctx}: {s} vs {ss}");
                let mut e = vec![0.0f64; n];
                let mut es = vec![0.0f64; n];
                let s2 = k::exp_store_sum(level, &x, &mut e, m, t);
                k::exp_store_sum(SimdLevel::Scalar, &x, &mut es, m, t);
                assert_eq!(
                    s2.to_bits(),
                    s.to_bits(),
                    "exp_store_sum and sum_exp agree {ctx}"
                );
                for i in 0..n {
                    // The scalar twin rounds (x - m) / t; the vector kernels carry it exactly.
                    let (h, l) = dd_arg(x[i], m, t);
                    let want = dd_exp(h, l);
                    let tol = want * 1e-15 + 1e-322;
                    let flushed = e[i] == 0.0 && want < F64_FLUSHABLE;
                    assert!(
                        flushed || (e[i] - want).abs() <= tol,
                        "exp {ctx} i={i} x={} got {} want {}",
                        x[i],
                        e[i],
                        want
                    );
                }
                let f = 1.0 / s;
                let mut sc = e.clone();
                let mut scs = e.clone();
                k::scale(level, &mut sc, f);
                k::scale(SimdLevel::Scalar, &mut scs, f);
                assert_eq!(widen(&sc), widen(&scs), "scale {ctx}");
                let ls = ss.ln();
                let mut lp = vec![0.0f64; n];
                k::write_log_softmax(level, &x, &mut lp, m, t, ls, false);
                for i in 0..n {
                    let (h, l) = dd_arg(x[i], m, t);
                    let want = (h - ls) + l;
                    if want == f64::NEG_INFINITY {
                        assert_eq!(lp[i], want, "log -inf {ctx} i={i}");
                    } else {
                        assert!(
                            (lp[i] - want).abs() <= 4e-16 * want.abs().max(1.0),
                            "log {ctx} i={i}: {} vs {want}",
                            lp[i]
                        );
                    }
                }
            }
        }
    }
}

/// The many-rows kernel gives the same bits as the block kernels it is built from.
/// Row `xr` at temperature `t` through the block kernels (`max`, then `exp_store_sum` and
/// `scale`, or `sum_exp` and `write_log_softmax`), after checking that `map_row` agrees.
fn by_block_kernels(level: SimdLevel, op: Op, xr: &[f32], t: f64) -> Vec<u32> {
    let n = xr.len();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut want = vec![0.0f32; n];
    k::map_row(level, op, xr, &mut want, t, false, false);
    let (m, nan) = k::max(level, xr);
    let mut by_blocks = vec![0.0f32; n];
    if nan || m == f32::INFINITY || m == f32::NEG_INFINITY {
        by_blocks.fill(f32::NAN);
    } else if op == Op::Softmax {
        let s = k::exp_store_sum(level, xr, &mut by_blocks, m, t);
        k::scale(level, &mut by_blocks, 1.0 / s);
    } else {
        let s = k::sum_exp(level, xr, m, t);
        k::write_log_softmax(
            level,
            xr,
            &mut by_blocks,
            m,
            t,
            k::row_ln::<f32>(level, s),
            false,
        );
    }
    assert_eq!(
        bits(&want),
        bits(&by_blocks),
        "{level:?} {op:?} n={n} map_row"
    );
    bits(&by_blocks)
}

#[test]
fn rows_kernel_matches_block_kernels_all_levels() {
    let mut rng = Rng(3);
    for level in supported_levels() {
        for n in [
            1usize, 3, 7, 8, 9, 10, 15, 16, 17, 24, 32, 48, 63, 64, 65, 100, 1000,
        ] {
            let count = 37;
            let x = f32_row(&random_row(&mut rng, n * count, 4.0, 11));
            // 1e308: a reciprocal the vector kernels do not take (that row goes alone through
            // the portable kernels, among rows that do not).
            let temps: Vec<f64> = (0..count)
                .map(|i| [1.0, 0.5, 2.0, 1.0, 0.5, 1e308][i % 6])
                .collect();
            for op in [Op::Softmax, Op::LogSoftmax] {
                let mut out = vec![0.0f32; n * count];
                k::rows(level, op, &x, &mut out, n, &temps, k::Store::Cached);
                for r in 0..count {
                    let got: Vec<u32> = out[r * n..(r + 1) * n]
                        .iter()
                        .map(|v| v.to_bits())
                        .collect();
                    let want = by_block_kernels(level, op, &x[r * n..(r + 1) * n], temps[r]);
                    assert_eq!(got, want, "{level:?} {op:?} n={n} row {r}");
                }
            }
        }
    }
}

/// Many short rows' maxima and exp-sums in one call (`row_sums`, and `logsumexp_rows` on it):
/// the packed groups of 16 or 8 rows stored one after the other (`f64`: rows of up to
/// `F64_LANES`, that many at a time) and the rows they leave over give every row the bits of
/// the block kernels (`max`, then `sum_exp`) at every temperature (2e-35: one the `f32` packed
/// kernels leave to the block kernels), and of one row's logsumexp
/// (contract S9), and a NaN sum exactly for contract S6's rows (NaN, +inf, all -inf), whatever
/// their place among the rows.
#[test]
fn s9_row_sums_match_block_kernels_all_levels() {
    let mut rng = Rng(29);
    for level in supported_levels() {
        for n in (1usize..=70).chain([127, 128, 129, 300]) {
            for count in [1usize, 15, 16, 17, 48, 53] {
                for scale in [4.0, 40.0] {
                    let mut x = f32_row(&random_row(&mut rng, n * count, scale, 7));
                    for (r, special) in [(2usize, f32::NAN), (5, f32::INFINITY), (16, f32::NAN)] {
                        if r < count {
                            x[r * n + (r % n)] = special;
                        }
                    }
                    if count > 9 {
                        x[9 * n..10 * n].fill(f32::NEG_INFINITY);
                    }
                    if count > 20 {
                        x[20 * n..21 * n].fill(-0.0);
                        x[21 * n..22 * n].fill(f32::MAX);
                    }
                    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
                    // 1e-310 (subnormal): one the float64 packed sums leave to the block kernels.
                    for t in [1.0, 0.7, 3.0, 2e-35, 1e-310] {
                        let what = format!("{level:?} n={n} count={count} t={t}");
                        let (mut maxima, mut totals) = (vec![0f32; count], vec![0f64; count]);
                        k::row_sums(level, &x, n, t, &mut maxima, &mut totals);
                        let (mut maxima64, mut totals64) = (vec![0f64; count], vec![0f64; count]);
                        k::row_sums(level, &x64, n, t, &mut maxima64, &mut totals64);
                        for r in 0..count {
                            let row = &x[r * n..(r + 1) * n];
                            let (m, nan) = k::max(level, row);
                            let special = nan || m.is_infinite();
                            assert_eq!(totals[r].is_nan(), special, "{what} row {r}");
                            assert_eq!(totals64[r].is_nan(), special, "{what} row {r} f64");
                            if special {
                                continue;
                            }
                            assert_eq!(maxima[r], m, "{what} row {r}");
                            let want = k::sum_exp(level, row, m, t);
                            assert_eq!(totals[r].to_bits(), want.to_bits(), "{what} row {r}");
                            let row64 = &x64[r * n..(r + 1) * n];
                            let want64 = k::sum_exp(level, row64, m as f64, t);
                            assert_eq!(maxima64[r], m as f64, "{what} row {r} f64");
                            let got64 = totals64[r].to_bits();
                            assert_eq!(got64, want64.to_bits(), "{what} row {r} f64");
                        }
                    }
                    let mut lse = vec![0f32; count];
                    k::logsumexp_rows(level, &x, n, &mut lse);
                    let mut lse64 = vec![0f64; count];
                    k::logsumexp_rows(level, &x64, n, &mut lse64);
                    for r in 0..count {
                        let what = format!("{level:?} n={n} count={count} row {r}");
                        let want = k::logsumexp(level, &x[r * n..(r + 1) * n], false);
                        assert_eq!(lse[r].to_bits(), want.to_bits(), "{what}: logsumexp");
                        let want64 = k::logsumexp(level, &x64[r * n..(r + 1) * n], false);
                        assert_eq!(
                            lse64[r].to_bits(),
                            want64.to_bits(),
                            "{what}: f64 logsumexp"
                        );
                    }
                }
            }
        }
    }
}

/// The many-rows kernels at one temperature for the whole call: the packed short-row paths
/// (16 or 8 rows stored one after the other) and the groups they leave over, and rows longer
/// than 16 with cached or streamed output (streaming writes each row during the next row's exp
/// pass). Every row gets the bits of the block kernels, whatever its place in the call
/// (contract S9), in place or not, at any alignment of the output. Scale 40 spreads the exps
/// over 2^-100..1 so that row sums round and a change in their order would change bits; the
/// contract S6 rows (NaN, +inf, all -inf, signed zeros) sit at several places among the rows.
#[test]
fn s9_rows_one_temperature_match_block_kernels_all_levels() {
    let mut rng = Rng(17);
    let cases = (1usize..=18)
        .chain([31, 32, 33, 47, 48, 63, 64, 65])
        .map(|n| (n, &[1usize, 15, 16, 17, 48, 53][..]))
        .chain([100usize, 128, 200, 256, 257, 1029].map(|n| (n, &[1usize, 7, 33][..])));
    for level in supported_levels() {
        for (n, counts) in cases.clone() {
            for &count in counts {
                for (scale, offset) in [(4.0, 0usize), (40.0, 3)] {
                    let mut x = f32_row(&random_row(&mut rng, n * count, scale, 7));
                    for (r, special) in [
                        (2usize, f32::NAN),
                        (5, f32::INFINITY),
                        (16, f32::NAN),
                        (30, 0.0),
                    ] {
                        if r < count {
                            x[r * n + (r % n)] = special;
                        }
                    }
                    if count > 9 {
                        x[9 * n..10 * n].fill(f32::NEG_INFINITY);
                    }
                    if count > 20 && n >= 2 {
                        x[20 * n..21 * n].fill(-0.0);
                        x[20 * n + 1] = 0.0;
                    }
                    // Rows whose |max / t| is above (row 12) and near (row 13) the AVX-512
                    // kernels' limit for folding the temperature into f32 arithmetic, among
                    // rows within it.
                    for (r, shift) in [(12usize, 2e4f32), (13, -1200.0)] {
                        if r < count {
                            x[r * n..(r + 1) * n].iter_mut().for_each(|v| *v += shift);
                        }
                    }
                    // `offset` elements before the rows move the output off 64-byte alignment.
                    let mut padded = vec![0.5f32; offset];
                    padded.extend_from_slice(&x);
                    let x = &padded[offset..];
                    for (t, op, in_place, store) in [1.0, 0.5, 3.0].into_iter().flat_map(|t| {
                        [Op::Softmax, Op::LogSoftmax]
                            .into_iter()
                            .flat_map(move |op| {
                                [false, true].into_iter().flat_map(move |p| {
                                    [k::Store::Cached, k::Store::Stream]
                                        .map(move |st| (t, op, p, st))
                                })
                            })
                    }) {
                        let mut out_buf = vec![0.0f32; offset + n * count];
                        let out = &mut out_buf[offset..];
                        k::rows_at(level, op, x, out, n, t, in_place, store);
                        for r in 0..count {
                            let xr = &x[r * n..(r + 1) * n];
                            let got: Vec<u32> = out[r * n..(r + 1) * n]
                                .iter()
                                .map(|v| v.to_bits())
                                .collect();
                            assert_eq!(
                                got,
                                by_block_kernels(level, op, xr, t),
                                "{level:?} {op:?} {store:?} n={n} count={count} scale={scale} \
                                 t={t} in_place={in_place} row {r}"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// One `f64` row through the block kernels (`max`, then `exp_store_sum` and `scale`, or
/// `sum_exp` and `write_log_softmax`): the bits every row of a many-rows call must get.
fn by_block_kernels_f64(level: SimdLevel, op: Op, xr: &[f64], t: f64) -> Vec<u64> {
    let n = xr.len();
    let (m, nan) = k::max(level, xr);
    let mut out = vec![0.0f64; n];
    if nan || m.is_infinite() {
        out.fill(f64::NAN);
    } else if op == Op::Softmax {
        let s = k::exp_store_sum(level, xr, &mut out, m, t);
        k::scale(level, &mut out, 1.0 / s);
    } else {
        let s = k::sum_exp(level, xr, m, t);
        k::write_log_softmax(level, xr, &mut out, m, t, k::row_ln::<f64>(level, s), false);
    }
    out.iter().map(|v| v.to_bits()).collect()
}

/// Short `f64` rows (`n` up to 10, across one vector's lanes), many at a time: the packed
/// groups (`F64_LANES` rows laid across the lanes), the groups they leave to the row kernel
/// (mixed temperatures: 1 among others, or one the vector kernels do not take) and the rows
/// after the last group give every row the bits of the block kernels (contract S9), with the
/// contract S6 rows (NaN, +inf, all -inf), signed zeros, values near f64::MAX and subnormals
/// among them, in place or not.
#[test]
fn s9_short_f64_rows_match_block_kernels_all_levels() {
    let mut rng = Rng(41);
    let temp_sets: [&[f64]; 5] = [
        &[1.0],
        &[0.5],
        &[3.0, 0.7, 1e-3],
        &[1.0, 0.5],
        &[2.0, 1e308],
    ];
    for level in supported_levels() {
        for n in 1usize..=10 {
            for count in [1usize, 2, 3, 4, 5, 8, 9, 16, 17, 40] {
                for scale in [4.0, 40.0, 700.0] {
                    let mut x = random_row(&mut rng, n * count, scale, 7);
                    let specials = [
                        (2usize, f64::NAN),
                        (5, f64::INFINITY),
                        (11, f64::MAX),
                        (12, -f64::MAX),
                        (14, 5e-324),
                    ];
                    for (r, special) in specials {
                        if r < count {
                            x[r * n + (r % n)] = special;
                        }
                    }
                    if count > 9 {
                        x[9 * n..10 * n].fill(f64::NEG_INFINITY);
                    }
                    if count > 20 {
                        x[20 * n..21 * n].fill(-0.0);
                        x[20 * n] = 0.0;
                        x[22 * n..23 * n].fill(-f64::MAX);
                        x[22 * n] = f64::MAX;
                    }
                    for temps in temp_sets {
                        let t: Vec<f64> = (0..count).map(|i| temps[i % temps.len()]).collect();
                        for op in [Op::Softmax, Op::LogSoftmax] {
                            for store in [k::Store::Cached, k::Store::Stream] {
                                let mut out = vec![0.0f64; n * count];
                                k::rows(level, op, &x, &mut out, n, &t, store);
                                let mut at = vec![0.0f64; n * count];
                                k::rows_at(level, op, &x, &mut at, n, t[0], true, store);
                                for r in 0..count {
                                    let what = format!(
                                        "{level:?} {op:?} {store:?} n={n} count={count} \
                                         scale={scale} t={} row {r}",
                                        t[r]
                                    );
                                    let xr = &x[r * n..(r + 1) * n];
                                    let bits = |v: &[f64]| -> Vec<u64> {
                                        v[r * n..(r + 1) * n].iter().map(|v| v.to_bits()).collect()
                                    };
                                    let want = by_block_kernels_f64(level, op, xr, t[r]);
                                    assert_eq!(bits(&out), want, "{what}");
                                    let want = by_block_kernels_f64(level, op, xr, t[0]);
                                    assert_eq!(bits(&at), want, "{what} (in place, t[0])");
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What a row of [`s9_streamed_long_rows_match_map_row_all_levels`] holds.
#[derive(Clone, Copy, Debug)]
enum LongRow {
    Normal,
    Nan,
    PosInf,
    AllNegInf,
    /// Block 0 all -inf, the rest normal (softmax writes that block's zeros in pass 1).
    NegInfBlock,
}

fn long_row(rng: &mut Rng, kind: LongRow, n: usize) -> Vec<f64> {
    let mut x = random_row(rng, n, 40.0, 11);
    match kind {
        LongRow::Normal => {}
        LongRow::Nan => x[n - 2] = f64::NAN,
        LongRow::PosInf => x[n - 1] = f64::INFINITY,
        LongRow::AllNegInf => x.fill(f64::NEG_INFINITY),
        LongRow::NegInfBlock => x[..k::BLOCK].fill(f64::NEG_INFINITY),
    }
    x
}

/// The first index where `a` and `b` differ, with both values.
fn first_diff<T: PartialEq + Copy>(a: &[T], b: &[T]) -> Option<(usize, T, T)> {
    assert_eq!(a.len(), b.len());
    (0..a.len())
        .find(|&i| a[i] != b[i])
        .map(|i| (i, a[i], b[i]))
}

/// The streamed many-long-rows path (each row's output written during the next row's first
/// pass, the AVX-512 `f32` kernels fusing the two) gives every row the bits `map_row` gives
/// it alone (contract S9), whatever its neighbours: S6 rows, temperatures of 1, other normal
/// ones, and 1e308 (whose reciprocal is subnormal, so the row and the write it carries go
/// through the plain kernels), in place or not, at any alignment of the output.
#[test]
fn s9_streamed_long_rows_match_map_row_all_levels() {
    use LongRow::*;
    let sequences: [&[(LongRow, f64)]; 4] = [
        &[
            (Normal, 1.0),
            (Nan, 0.5),
            (NegInfBlock, 3.0),
            (Normal, 1e308),
            (Normal, 0.5),
        ],
        &[
            (Normal, 0.5),
            (AllNegInf, 1.0),
            (PosInf, 1.0),
            (NegInfBlock, 1.0),
        ],
        &[(Normal, 1.0)],
        &[(Normal, 3.0), (Normal, 1.0)],
    ];
    let mut rng = Rng(23);
    for level in supported_levels() {
        for n in [k::BLOCK + 1, 2 * k::BLOCK + 100] {
            for seq in sequences {
                let temps: Vec<f64> = seq.iter().map(|&(_, t)| t).collect();
                let x64: Vec<f64> = seq
                    .iter()
                    .flat_map(|&(kind, _)| long_row(&mut rng, kind, n))
                    .collect();
                let x32 = f32_row(&x64);
                for op in [Op::Softmax, Op::LogSoftmax] {
                    // `keep`: softmax keeps its exps for the write, or (where the level
                    // fuses the write) computes them again there; the same bits either way.
                    for (in_place, offset, keep) in [
                        (false, 0usize, false),
                        (false, 0, true),
                        (false, 3, true),
                        (true, 0, false),
                        (true, 3, true),
                        (false, 5, false),
                    ] {
                        let what = format!(
                            "{level:?} {op:?} n={n} {seq:?} in_place={in_place} keep={keep}"
                        );
                        let mut out = vec![0.0f32; offset + x32.len()];
                        let got = &mut out[offset..];
                        k::map_rows_streamed(level, op, &x32, got, n, &temps, in_place, keep);
                        let mut out64 = vec![0.0f64; offset + x64.len()];
                        let got64 = &mut out64[offset..];
                        k::map_rows_streamed(level, op, &x64, got64, n, &temps, in_place, keep);
                        for (r, &t) in temps.iter().enumerate() {
                            let rows = r * n..(r + 1) * n;
                            let mut want = vec![0.0f32; n];
                            k::map_row(level, op, &x32[rows.clone()], &mut want, t, false, false);
                            let diff = first_diff(&bits32(&got[rows.clone()]), &bits32(&want));
                            assert_eq!(diff, None, "{what} row {r}: (index, got, want)");
                            let mut want = vec![0.0f64; n];
                            k::map_row(level, op, &x64[rows.clone()], &mut want, t, false, false);
                            let diff = first_diff(&bits64(&got64[rows]), &bits64(&want));
                            assert_eq!(diff, None, "{what} f64 row {r}: (index, got, want)");
                        }
                    }
                }
            }
        }
    }
}

// ----------------------------------------------------------------------------------------------
// exp: exact points and measured error
// ----------------------------------------------------------------------------------------------

#[test]
fn s6_exp_exact_points_all_levels() {
    for level in supported_levels() {
        let x = [
            0.0f32,
            f32::NEG_INFINITY,
            -104.0,
            -200.0,
            -3e38,
            f32::NAN,
            -1e-30,
        ];
        let mut e = [9.0f32; 7];
        k::exp_store_sum(level, &x, &mut e, 0.0, 1.0);
        assert_eq!(e[0], 1.0, "{level:?} exp(0)");
        assert_eq!(&e[1..5], &[0.0; 4], "{level:?} exp(very negative)");
        assert!(e[5].is_nan(), "{level:?} NaN propagates");
        assert_eq!(e[6], 1.0, "{level:?}");
        let x = [
            0.0f64,
            f64::NEG_INFINITY,
            -746.0,
            -1000.0,
            -1.7e308,
            f64::NAN,
            -1e-300,
        ];
        let mut e = [9.0f64; 7];
        k::exp_store_sum(level, &x, &mut e, 0.0, 1.0);
        assert_eq!(e[0], 1.0, "{level:?} exp(0)");
        assert_eq!(&e[1..5], &[0.0; 4], "{level:?} exp(very negative)");
        assert!(e[5].is_nan(), "{level:?} NaN propagates");
        assert_eq!(e[6], 1.0, "{level:?}");
    }
}

/// ulp error of `got` against the f64 value `want` (as an f32 result).
fn ulp_err_f32(got: f32, want: f64) -> f64 {
    let w = want as f32;
    let ulp = if w == 0.0 || !w.is_normal() {
        f32::from_bits(1) as f64
    } else {
        let e = (w.to_bits() >> 23) as i32 - 127;
        2f64.powi(e - 23)
    };
    (got as f64 - want).abs() / ulp
}

/// Max ulp error of the f32 exp of `level` over every `step`-th f32 in [lo, 0] (by bit
/// pattern), against libm's f64 exp; results flushed to 0 below `F32_FLUSHABLE` are skipped.
fn f32_exp_max_ulp(level: SimdLevel, step: u32, lo: f32) -> (f64, f32) {
    let start = 0x8000_0000u32; // -0.0
    let end = lo.to_bits();
    let mut worst = (0.0f64, 0.0f32);
    let mut buf = Vec::with_capacity(k::BLOCK);
    let mut out = vec![0.0f32; k::BLOCK];
    let mut b = start;
    while b <= end {
        buf.clear();
        while buf.len() < k::BLOCK && b <= end {
            buf.push(f32::from_bits(b));
            b = match b.checked_add(step) {
                Some(v) => v,
                None => break,
            };
        }
        let o = &mut out[..buf.len()];
        k::exp_store_sum(level, &buf, o, 0.0, 1.0);
        for (&x, &y) in buf.iter().zip(o.iter()) {
            let want = (x as f64).exp();
            if y == 0.0 && want < F32_FLUSHABLE {
                continue;
            }
            let u = ulp_err_f32(y, want);
            if u > worst.0 {
                worst = (u, x);
            }
        }
    }
    worst
}

#[test]
fn s8_f32_exp_max_ulp_sampled_all_levels() {
    for level in vector_levels() {
        // Every 61st float from -0 down to -110 (about 18 million arguments).
        let (u, x) = f32_exp_max_ulp(level, 61, -110.0);
        eprintln!("{level:?}: f32 exp max error {u:.3} ulp at {x:e} (sampled)");
        assert!(u <= 2.0, "{level:?}: {u} ulp at {x}");
    }
}

/// Exhaustive: every f32 in [-110, 0] (about 1.1e9 arguments). Run with
/// `cargo test --release --test kernels -- --ignored --nocapture s8_f32_exp_max_ulp_exhaustive`.
#[test]
#[ignore]
fn s8_f32_exp_max_ulp_exhaustive() {
    for level in vector_levels() {
        let (u, x) = f32_exp_max_ulp(level, 1, -110.0);
        eprintln!("{level:?}: f32 exp max error {u:.3} ulp at {x:e} (exhaustive)");
        assert!(u <= 2.0, "{level:?}: {u} ulp at {x}");
    }
}

#[test]
fn s8_f64_exp_max_ulp_sampled_all_levels() {
    let mut rng = Rng(4);
    let x: Vec<f64> = (0..200_000)
        .map(|i| {
            if i % 2 == 0 {
                rng.uniform(-745.0, 0.0)
            } else {
                rng.uniform(-2.0, 0.0)
            }
        })
        .collect();
    for level in vector_levels() {
        let mut e = vec![0.0f64; x.len()];
        for (xc, ec) in x.chunks(k::BLOCK).zip(e.chunks_mut(k::BLOCK)) {
            k::exp_store_sum(level, xc, ec, 0.0, 1.0);
        }
        let mut worst = 0.0f64;
        for (&a, &y) in x.iter().zip(&e) {
            let want = a.exp();
            if want.is_normal() && !(y == 0.0 && want < F64_FLUSHABLE) {
                let ulp = f64::EPSILON * 2f64.powi(want.log2().floor() as i32);
                worst = worst.max((y - want).abs() / ulp);
            }
        }
        eprintln!("{level:?}: f64 exp max error {worst:.3} ulp against libm (sampled)");
        assert!(worst <= 3.0, "{level:?}: {worst} ulp");
    }
}

// ----------------------------------------------------------------------------------------------
// S8: accuracy on 262144-entry rows, through the block path of each level
// ----------------------------------------------------------------------------------------------

const LONG: usize = 262_144;

fn s8_f32_case(level: SimdLevel, name: &str, x64: &[f64], t: f64) {
    let x = f32_row(x64);
    let xr = widen(&x);
    let (p_ref, lp_ref, lse_ref) = reference(&xr, t);
    let mut p = vec![0.0f32; x.len()];
    let mut lp = vec![0.0f32; x.len()];
    k::map_row(level, Op::Softmax, &x, &mut p, t, false, false);
    k::map_row(level, Op::LogSoftmax, &x, &mut lp, t, false, false);
    let (mut w12, mut w30, mut wl) = (0.0f64, 0.0f64, 0.0f64);
    for i in 0..x.len() {
        assert!(p[i].is_finite(), "{level:?} {name}: p[{i}] = {}", p[i]);
        let r = p_ref[i];
        let rel = ((p[i] as f64) - r).abs() / r;
        if r >= 1e-12 {
            w12 = w12.max(rel);
        } else if r >= 1e-30 {
            w30 = w30.max(rel);
        }
        if lp[i] == f32::NEG_INFINITY {
            assert!(r < 1e-38, "{level:?} {name}: log -inf at p = {r}");
        } else {
            assert!(lp[i].is_finite(), "{level:?} {name}: lp[{i}] = {}", lp[i]);
            let e = ((lp[i] as f64) - lp_ref[i]).abs() / lp_ref[i].abs().max(1.0);
            wl = wl.max(e);
        }
    }
    let sum = ksum(p.iter().map(|&v| v as f64));
    eprintln!(
        "{level:?} f32 {name}: rel err {w12:.2e} (p>=1e-12), {w30:.2e} (p>=1e-30), \
         sum-1 {:.2e}, log {wl:.2e}",
        sum - 1.0
    );
    assert!(
        w12 <= 2e-6,
        "{level:?} {name}: rel err {w12:e} for p >= 1e-12"
    );
    assert!(
        w30 <= 1e-5,
        "{level:?} {name}: rel err {w30:e} for p >= 1e-30"
    );
    assert!((sum - 1.0).abs() <= 1e-6, "{level:?} {name}: sum {sum}");
    assert!(wl <= 2e-6, "{level:?} {name}: log err {wl:e}");
    if t == 1.0 {
        let lse = k::logsumexp(level, &x, false) as f64;
        let e = (lse - lse_ref).abs() / lse_ref.abs().max(1.0);
        assert!(e <= 2e-6, "{level:?} {name}: logsumexp {lse} vs {lse_ref}");
    }
}

fn s8_f32(level: SimdLevel) {
    if !supported_levels().contains(&level) {
        eprintln!("{level:?} not on this CPU: skipped");
        return;
    }
    let mut rng = Rng(5);
    let spread: Vec<f64> = (0..LONG).map(|_| rng.uniform(-30.0, 10.0)).collect();
    s8_f32_case(level, "uniform[-30,10]", &spread, 1.0);
    let normal: Vec<f64> = (0..LONG).map(|_| rng.normal() * 4.0).collect();
    s8_f32_case(level, "normal*4 t=0.37", &normal, 0.37);
    let small: Vec<f64> = (0..LONG).map(|_| rng.uniform(-0.3, 0.05)).collect();
    s8_f32_case(level, "uniform[-0.3,0.05] t=0.01", &small, 0.01);
    let wide: Vec<f64> = (0..LONG).map(|_| rng.uniform(-80.0, 0.0)).collect();
    s8_f32_case(level, "uniform[-80,0]", &wide, 1.0);
    let big: Vec<f64> = (0..LONG).map(|_| 1e4 + rng.uniform(-60.0, 0.0)).collect();
    s8_f32_case(level, "1e4+uniform[-60,0] t=1.7", &big, 1.7);
    // |max / t| = 4000, just inside the AVX-512 kernels' folded temperature form (the largest
    // low parts); 5882 above is outside it.
    let edge: Vec<f64> = (0..LONG).map(|_| 3e3 + rng.uniform(-30.0, 0.0)).collect();
    s8_f32_case(level, "3e3+uniform[-30,0] t=0.75", &edge, 0.75);
}

fn s8_f64_case(level: SimdLevel, name: &str, x: &[f64], t: f64) {
    let (p_ref, lp_ref, lse_ref) = reference(x, t);
    let mut p = vec![0.0f64; x.len()];
    let mut lp = vec![0.0f64; x.len()];
    k::map_row(level, Op::Softmax, x, &mut p, t, false, false);
    k::map_row(level, Op::LogSoftmax, x, &mut lp, t, false, false);
    let (mut wp, mut wl) = (0.0f64, 0.0f64);
    for i in 0..x.len() {
        assert!(
            p[i].is_finite() && !lp[i].is_nan(),
            "{level:?} {name}: i={i}"
        );
        if p_ref[i] >= 1e-250 {
            wp = wp.max((p[i] - p_ref[i]).abs() / p_ref[i]);
        }
        if lp_ref[i].is_finite() {
            wl = wl.max((lp[i] - lp_ref[i]).abs() / lp_ref[i].abs().max(1.0));
        }
    }
    eprintln!("{level:?} f64 {name}: rel err {wp:.2e} (p>=1e-250), log {wl:.2e}");
    assert!(wp <= 1e-13, "{level:?} {name}: rel err {wp:e}");
    assert!(wl <= 1e-13, "{level:?} {name}: log err {wl:e}");
    if t == 1.0 {
        let lse = k::logsumexp(level, x, false);
        let e = (lse - lse_ref).abs() / lse_ref.abs().max(1.0);
        assert!(e <= 1e-13, "{level:?} {name}: logsumexp {lse} vs {lse_ref}");
    }
}

fn s8_f64(level: SimdLevel) {
    if !supported_levels().contains(&level) {
        eprintln!("{level:?} not on this CPU: skipped");
        return;
    }
    let mut rng = Rng(6);
    let wide: Vec<f64> = (0..LONG).map(|_| rng.uniform(-600.0, 0.0)).collect();
    s8_f64_case(level, "uniform[-600,0]", &wide, 1.0);
    let normal: Vec<f64> = (0..LONG).map(|_| rng.normal() * 60.0).collect();
    s8_f64_case(level, "normal*60 t=0.7", &normal, 0.7);
    let small: Vec<f64> = (0..LONG).map(|_| rng.uniform(-60.0, 0.0)).collect();
    s8_f64_case(level, "uniform[-60,0] t=0.1", &small, 0.1);
    let big: Vec<f64> = (0..LONG).map(|_| -1e6 + rng.uniform(-500.0, 0.0)).collect();
    s8_f64_case(level, "-1e6+uniform[-500,0]", &big, 1.0);
}

/// S8 at temperatures where rounding `x - max` to f32 before dividing would be the argument's
/// largest error (its relative error is largest just above a power of two, the argument's
/// need not be). Half of each row's entries sit at such differences (random low bits, so the
/// rounding error takes every value up to half an ulp) with `d / t` between -14 and -27.6,
/// the other half far below (exp under 1e-17), so that the sum stays near 1 and those entries'
/// probabilities reach 1e-12, where the 2e-6 bound applies; the maximum is 0.3 so that `d` is
/// inexact. (The vector kernels fold the temperature into f32 arithmetic with `m / t` and
/// `1 / t` each split into two f32s, so `x - m` is never rounded; rounding it first measured
/// up to 1.8e-6 on rows like these.)
fn s8_f32_worst_rounding(level: SimdLevel) {
    if !supported_levels().contains(&level) {
        eprintln!("{level:?} not on this CPU: skipped");
        return;
    }
    let mut rng = Rng(29);
    for t in [0.2899, 0.37, 0.58, 0.7301, 1.3, 1.7, 2.9, 5.79] {
        let m = 0.3;
        let mut x = vec![m; LONG];
        for (i, v) in x.iter_mut().enumerate().skip(1) {
            *v = if i % 2 == 0 {
                m - t * rng.uniform(40.0, 60.0)
            } else {
                // The powers of two 2^e with 14 t <= 2^e <= 27.6 t, just above.
                let lo = (14.0 * t).log2().ceil() as i32;
                let hi = (27.6 * t).log2().floor() as i32;
                let e = lo + (rng.uniform(0.0, (hi - lo + 1) as f64) as i32).min(hi - lo);
                m - 2f64.powi(e) * (1.0 + rng.uniform(0.0, 1e-4))
            };
        }
        s8_f32_case(level, &format!("d above 2^e, t={t}"), &x, t);
    }
}

#[test]
fn s8_f32_worst_rounding_temperatures_all_levels() {
    for level in supported_levels() {
        s8_f32_worst_rounding(level);
    }
}

#[test]
fn s8_f32_accuracy_262144_scalar() {
    s8_f32(SimdLevel::Scalar);
}

#[test]
fn s8_f32_accuracy_262144_avx2() {
    s8_f32(SimdLevel::Avx2);
}

#[test]
fn s8_f32_accuracy_262144_avx512() {
    s8_f32(SimdLevel::Avx512);
}

#[test]
fn s8_f32_accuracy_262144_neon() {
    s8_f32(SimdLevel::Neon);
}

#[test]
fn s8_f64_accuracy_262144_scalar() {
    s8_f64(SimdLevel::Scalar);
}

#[test]
fn s8_f64_accuracy_262144_avx2() {
    s8_f64(SimdLevel::Avx2);
}

#[test]
fn s8_f64_accuracy_262144_avx512() {
    s8_f64(SimdLevel::Avx512);
}

#[test]
fn s8_f64_accuracy_262144_neon() {
    s8_f64(SimdLevel::Neon);
}

// ----------------------------------------------------------------------------------------------
// S5 and S6 at every level, short rows and multi-block rows
// ----------------------------------------------------------------------------------------------

const S6_LENS: &[usize] = &[1, 5, 16, 17, 100, 3 * k::BLOCK + 5];

fn run_all<C: logitkit::Real>(
    level: SimdLevel,
    x: &[C],
    t: f64,
) -> (Vec<C>, Vec<C>, Vec<C>, Vec<C>) {
    let mut p = vec![C::default(); x.len()];
    let mut lp = vec![C::default(); x.len()];
    let mut pp = vec![C::default(); x.len()];
    let mut lpp = vec![C::default(); x.len()];
    k::map_row(level, Op::Softmax, x, &mut p, t, false, false);
    k::map_row(level, Op::LogSoftmax, x, &mut lp, t, false, false);
    // The second pair: blocks over the pool, and the streaming schedule.
    k::map_row(level, Op::Softmax, x, &mut pp, t, true, true);
    k::map_row(level, Op::LogSoftmax, x, &mut lpp, t, true, true);
    (p, lp, pp, lpp)
}

#[test]
fn s6_nan_row_all_levels() {
    for level in supported_levels() {
        for &n in S6_LENS {
            for pos in [0, n / 2, n - 1] {
                let mut x = vec![1.0f32; n];
                x[pos] = f32::NAN;
                let (p, lp, pp, lpp) = run_all(level, &x, 1.0);
                for v in [&p, &lp, &pp, &lpp] {
                    assert!(v.iter().all(|v| v.is_nan()), "{level:?} n={n} pos={pos}");
                }
                assert!(k::logsumexp(level, &x, false).is_nan());
                let mut x = vec![1.0f64; n];
                x[pos] = f64::NAN;
                if n - 1 - pos != pos {
                    x[n - 1 - pos] = f64::INFINITY;
                }
                let (p, lp, pp, lpp) = run_all(level, &x, 0.5);
                for v in [&p, &lp, &pp, &lpp] {
                    assert!(v.iter().all(|v| v.is_nan()), "{level:?} n={n} pos={pos}");
                }
                assert!(k::logsumexp(level, &x, true).is_nan(), "NaN wins over +inf");
            }
        }
    }
}

#[test]
fn s6_pos_inf_row_all_levels() {
    for level in supported_levels() {
        for &n in S6_LENS {
            let mut x = vec![-2.0f32; n];
            x[n - 1] = f32::INFINITY;
            let (p, lp, pp, lpp) = run_all(level, &x, 1.0);
            for v in [&p, &lp, &pp, &lpp] {
                assert!(v.iter().all(|v| v.is_nan()), "{level:?} n={n}");
            }
            assert_eq!(k::logsumexp(level, &x, false), f32::INFINITY);
            assert_eq!(k::logsumexp(level, &x, true), f32::INFINITY);
        }
    }
}

#[test]
fn s6_all_neg_inf_row_all_levels() {
    for level in supported_levels() {
        for &n in S6_LENS {
            let x = vec![f64::NEG_INFINITY; n];
            let (p, lp, pp, lpp) = run_all(level, &x, 1.0);
            for v in [&p, &lp, &pp, &lpp] {
                assert!(v.iter().all(|v| v.is_nan()), "{level:?} n={n}");
            }
            assert_eq!(k::logsumexp(level, &x, false), f64::NEG_INFINITY);
            assert_eq!(k::logsumexp::<f32>(level, &[], false), f32::NEG_INFINITY);
        }
    }
}

#[test]
fn s6_neg_inf_entries_exact_zero_all_levels() {
    let mut rng = Rng(7);
    for level in supported_levels() {
        for &n in S6_LENS {
            // Masked entries, including whole blocks of -inf in the long row.
            let x: Vec<f32> = (0..n)
                .map(|i| {
                    if i % 3 == 1 || (k::BLOCK..2 * k::BLOCK).contains(&i) {
                        f32::NEG_INFINITY
                    } else {
                        rng.normal() as f32
                    }
                })
                .collect();
            for t in [1.0, 0.3] {
                let (p, lp, pp, lpp) = run_all(level, &x, t);
                for i in 0..n {
                    if x[i] == f32::NEG_INFINITY {
                        assert_eq!(p[i].to_bits(), 0, "{level:?} n={n} i={i}");
                        assert_eq!(pp[i].to_bits(), 0);
                        assert_eq!(lp[i], f32::NEG_INFINITY);
                        assert_eq!(lpp[i], f32::NEG_INFINITY);
                    } else {
                        assert!(p[i] > 0.0 && lp[i].is_finite(), "{level:?} n={n} i={i}");
                    }
                }
                let s = ksum(p.iter().map(|&v| v as f64));
                assert!((s - 1.0).abs() <= 1e-6, "{level:?} n={n}: sum {s}");
            }
        }
    }
}

#[test]
fn s5_huge_magnitudes_f32_all_levels() {
    for level in supported_levels() {
        for &n in S6_LENS {
            if n < 2 {
                continue;
            }
            let mut x = vec![-3e38f32; n];
            x[n / 2] = 3e38;
            x[0] = f32::MAX;
            x[n - 1] = -f32::MAX;
            for t in [1.0, 1e-30, 1e30, 7.0] {
                let (p, lp, pp, lpp) = run_all(level, &x, t);
                for v in [&p, &pp] {
                    assert!(v.iter().all(|v| v.is_finite()), "{level:?} n={n} t={t}");
                    assert_eq!(
                        ksum(v.iter().map(|&v| v as f64)),
                        1.0,
                        "{level:?} n={n} t={t}"
                    );
                }
                for v in [&lp, &lpp] {
                    assert!(v.iter().all(|v| !v.is_nan() && *v != f32::INFINITY));
                    assert_eq!(v[0], 0.0, "{level:?} n={n} t={t}");
                }
            }
            // softmax([1e30, 0], temperature=1e-30) is [1, 0].
            let y = [1e30f32, 0.0];
            let (p, _, _, _) = run_all(level, &y, 1e-30);
            assert_eq!(p, vec![1.0, 0.0], "{level:?}");
            assert_eq!(k::logsumexp(level, &x, false), f32::MAX);
        }
    }
}

#[test]
fn s5_huge_magnitudes_f64_all_levels() {
    for level in supported_levels() {
        for &n in S6_LENS {
            if n < 2 {
                continue;
            }
            let mut x = vec![-1.7e308f64; n];
            x[n / 2] = 1.7e308;
            x[n - 1] = 1e-300;
            for t in [1.0, 1e-30, 1e-300, 1e-310, 1e300, 7.0] {
                let (p, lp, pp, lpp) = run_all(level, &x, t);
                for v in [&p, &pp] {
                    assert!(v.iter().all(|v| v.is_finite()), "{level:?} n={n} t={t}");
                    assert_eq!(v[n / 2], 1.0, "{level:?} n={n} t={t}");
                }
                for v in [&lp, &lpp] {
                    assert!(v.iter().all(|v| !v.is_nan() && *v != f64::INFINITY));
                    assert_eq!(v[n / 2], 0.0, "{level:?} n={n} t={t}");
                }
            }
            // A subnormal temperature that still resolves small differences.
            let y = [0.0f64, -5e-324];
            let (p, _, _, _) = run_all(level, &y, 5e-324);
            let want = [
                1.0 / (1.0 + (-1f64).exp()),
                (-1f64).exp() / (1.0 + (-1f64).exp()),
            ];
            assert!(
                (p[0] - want[0]).abs() < 1e-15 && (p[1] - want[1]).abs() < 1e-15,
                "{p:?}"
            );
        }
    }
}

// ----------------------------------------------------------------------------------------------
// S9: bitwise the same whatever the thread count
// ----------------------------------------------------------------------------------------------

fn bits32(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn bits64(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn s9_thread_count_bitwise() {
    let mut rng = Rng(8);
    let n = 300_007;
    let x: Vec<f32> = (0..n).map(|_| (rng.normal() * 6.0) as f32).collect();
    let x64: Vec<f64> = (0..n).map(|_| rng.normal() * 30.0).collect();
    // Many short rows too.
    let rows: Vec<f32> = (0..65536 * 10).map(|_| rng.normal() as f32).collect();
    let run = |threads: usize| {
        logitkit::set_num_threads(threads).unwrap();
        let mut p = vec![0.0f32; n];
        let mut lp = vec![0.0f32; n];
        let mut p64 = vec![0.0f64; n];
        let mut pr = vec![0.0f32; rows.len()];
        logitkit::softmax(&x, &mut p, 1.0).unwrap();
        logitkit::log_softmax(&x, &mut lp, 0.8).unwrap();
        logitkit::softmax(&x64, &mut p64, 2.5).unwrap();
        logitkit::softmax_rows(&rows, &mut pr, 10, 0.9.into()).unwrap();
        let lse = logitkit::logsumexp(&x);
        (
            bits32(&p),
            bits32(&lp),
            bits64(&p64),
            bits32(&pr),
            lse.to_bits(),
        )
    };
    let one = run(1);
    let two = run(2);
    let three = run(3);
    assert!(one == two, "1 vs 2 threads");
    assert!(one == three, "1 vs 3 threads");
}

#[test]
fn s9_blocks_parallel_bitwise_all_levels() {
    let mut rng = Rng(9);
    let n = 5 * k::BLOCK + 123;
    let x: Vec<f32> = (0..n).map(|_| (rng.normal() * 6.0) as f32).collect();
    for level in supported_levels() {
        let (p, lp, pp, lpp) = run_all(level, &x, 0.7);
        assert_eq!(bits32(&p), bits32(&pp), "{level:?}");
        assert_eq!(bits32(&lp), bits32(&lpp), "{level:?}");
        assert_eq!(
            k::logsumexp(level, &x, false).to_bits(),
            k::logsumexp(level, &x, true).to_bits()
        );
    }
}

/// The streaming schedule (sum, then exp * factor with non-temporal stores) gives the bits of
/// the caching one (exp stored with the sum, then scaled), whatever the alignment.
#[test]
fn s9_stream_schedule_bitwise_all_levels() {
    let mut rng = Rng(12);
    for level in supported_levels() {
        for n in [1usize, 5, 16, 17, 40, 100, 1000, k::BLOCK, 3 * k::BLOCK + 5] {
            let x64 = random_row(&mut rng, n + 16, 5.0, 9);
            let x32 = f32_row(&x64);
            for off in [0usize, 1, 3, 7, 15] {
                for t in [1.0, 0.7] {
                    let xs = &x32[off..off + n];
                    let mut a = vec![0.0f32; n + 16];
                    let mut b = vec![0.0f32; n + 16];
                    for op in [Op::Softmax, Op::LogSoftmax] {
                        k::map_row(level, op, xs, &mut a[off..off + n], t, false, false);
                        k::map_row(level, op, xs, &mut b[off..off + n], t, false, true);
                        assert_eq!(bits32(&a), bits32(&b), "{level:?} {op:?} n={n} off={off}");
                    }
                    let m = k::max(level, xs).0;
                    if m > f32::NEG_INFINITY {
                        let s = k::exp_store_sum(level, xs, &mut a[off..off + n], m, t);
                        k::scale(level, &mut a[off..off + n], 1.0 / s);
                        k::exp_scale(level, xs, &mut b[off..off + n], m, t, 1.0 / s, true);
                        assert_eq!(
                            bits32(&a),
                            bits32(&b),
                            "{level:?} exp_scale n={n} off={off}"
                        );
                    }
                    let xs = &x64[off..off + n];
                    let mut a = vec![0.0f64; n + 16];
                    let mut b = vec![0.0f64; n + 16];
                    for op in [Op::Softmax, Op::LogSoftmax] {
                        k::map_row(level, op, xs, &mut a[off..off + n], t, false, false);
                        k::map_row(level, op, xs, &mut b[off..off + n], t, false, true);
                        assert_eq!(bits64(&a), bits64(&b), "{level:?} {op:?} n={n} off={off}");
                    }
                }
            }
        }
    }
}

/// The streaming schedule through the many-rows kernel, and for a row too long for the scratch
/// buffer (exps computed twice), gives the bits of the caching one.
#[test]
fn s9_stream_schedule_rows_and_long_row_bitwise_all_levels() {
    let mut rng = Rng(14);
    for level in supported_levels() {
        for n in [10usize, 17, 100, 1000, k::BLOCK] {
            let count = 5;
            let x = f32_row(&random_row(&mut rng, n * count, 6.0, 13));
            let temps = [1.0, 0.3, 2.0, 1.0, 0.9];
            for op in [Op::Softmax, Op::LogSoftmax] {
                let mut a = vec![0.0f32; x.len()];
                k::rows(level, op, &x, &mut a, n, &temps, k::Store::Cached);
                {
                    let store = k::Store::Stream;
                    let mut b = vec![0.0f32; x.len()];
                    k::rows(level, op, &x, &mut b, n, &temps, store);
                    assert_eq!(
                        bits32(&a),
                        bits32(&b),
                        "{level:?} {op:?} {store:?} rows n={n}"
                    );
                }
                let x64 = widen(&x);
                let mut a = vec![0.0f64; x.len()];
                k::rows(level, op, &x64, &mut a, n, &temps, k::Store::Cached);
                {
                    let store = k::Store::Stream;
                    let mut b = vec![0.0f64; x.len()];
                    k::rows(level, op, &x64, &mut b, n, &temps, store);
                    assert_eq!(
                        bits64(&a),
                        bits64(&b),
                        "{level:?} {op:?} {store:?} f64 n={n}"
                    );
                }
            }
        }
        let n = (4 << 20) / 4 + 1001;
        let x = f32_row(&random_row(&mut rng, n, 6.0, 0));
        let mut a = vec![0.0f32; n];
        let mut b = vec![0.0f32; n];
        k::map_row(level, Op::Softmax, &x, &mut a, 0.8, false, false);
        k::map_row(level, Op::Softmax, &x, &mut b, 0.8, true, true);
        assert_eq!(bits32(&a), bits32(&b), "{level:?} long row");
    }
}

#[test]
fn s9_row_independent_of_batch() {
    let mut rng = Rng(10);
    for n in [10usize, 1000, 20_000] {
        let count = 40;
        let x: Vec<f32> = (0..n * count)
            .map(|_| (rng.normal() * 3.0) as f32)
            .collect();
        let mut all = vec![0.0f32; x.len()];
        logitkit::log_softmax_rows(&x, &mut all, n, 1.0.into()).unwrap();
        for r in [0, 17, count - 1] {
            let mut one = vec![0.0f32; n];
            logitkit::log_softmax(&x[r * n..(r + 1) * n], &mut one, 1.0).unwrap();
            assert_eq!(
                bits32(&one),
                bits32(&all[r * n..(r + 1) * n]),
                "n={n} row {r}"
            );
        }
    }
}

// ----------------------------------------------------------------------------------------------
// Properties
// ----------------------------------------------------------------------------------------------

mod props {
    use super::*;
    use proptest::prelude::*;

    fn entry() -> impl Strategy<Value = f32> {
        prop_oneof![
            8 => -50.0f32..50.0,
            1 => Just(f32::NEG_INFINITY),
            1 => -3e38f32..3e38,
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// S5/S8: every level meets S8 against the f64 reference on random finite or masked rows.
        #[test]
        fn s8_levels_agree_with_scalar(x in proptest::collection::vec(entry(), 1..300),
                                       t in prop_oneof![Just(1.0f64), 0.01f64..100.0]) {
            let (want, _, _) = reference(&widen(&x), t);
            let all_masked = x.iter().all(|&v| v == f32::NEG_INFINITY);
            for level in vector_levels() {
                let mut p = vec![0.0f32; x.len()];
                k::map_row(level, Op::Softmax, &x, &mut p, t, false, false);
                if all_masked {
                    prop_assert!(p.iter().all(|v| v.is_nan()));
                    continue;
                }
                for i in 0..x.len() {
                    prop_assert!(p[i].is_finite());
                    let (a, b) = (p[i] as f64, want[i]);
                    if b >= 1e-12 {
                        prop_assert!((a - b).abs() <= 2e-6 * b, "{:?} i={} {} vs {}", level, i, a, b);
                    } else if b >= 1e-30 {
                        prop_assert!((a - b).abs() <= 1e-5 * b, "{:?} i={} {} vs {}", level, i, a, b);
                    } else {
                        prop_assert!(a < 1.1e-30);
                    }
                }
            }
        }
    }
}

#[test]
fn s8_row_ln_accuracy_all_levels() {
    let mut rng = Rng(11);
    for level in supported_levels() {
        for i in 0..100_000 {
            let x = if i < 1000 {
                1.0 + i as f64 * 1e-3
            } else {
                (rng.uniform(0.0, 40.0)).exp()
            };
            let got = k::row_ln::<f32>(level, x);
            assert!(
                (got - x.ln()).abs() <= 1e-10 * x.ln().max(1.0),
                "{level:?} ln({x}) = {got}"
            );
            assert_eq!(k::row_ln::<f64>(level, x), x.ln());
        }
        assert_eq!(k::row_ln::<f32>(level, 1.0), 0.0);
    }
}

/// S9: a vector's result depends only on the vector: in place or not, strided or contiguous,
/// alone or in a batch with per-row temperatures.
#[test]
fn s9_layout_and_in_place_bitwise() {
    let mut rng = Rng(13);
    for (count, n) in [(3usize, 3 * k::BLOCK + 5), (40, 1000), (700, 10), (33, 16)] {
        let x: Vec<f32> = (0..count * n)
            .map(|_| (rng.normal() * 4.0) as f32)
            .collect();
        let temps: Vec<f64> = (0..count).map(|i| 0.5 + (i % 5) as f64 * 0.3).collect();
        let mut rows = vec![0.0f32; x.len()];
        logitkit::softmax_rows(&x, &mut rows, n, (&temps[..]).into()).unwrap();
        let mut in_place = x.clone();
        logitkit::softmax_rows_in_place(&mut in_place, n, (&temps[..]).into()).unwrap();
        assert_eq!(bits32(&rows), bits32(&in_place), "in place {count}x{n}");
        for r in [0, count / 2, count - 1] {
            let mut one = vec![0.0f32; n];
            logitkit::softmax(&x[r * n..(r + 1) * n], &mut one, temps[r]).unwrap();
            assert_eq!(
                bits32(&one),
                bits32(&rows[r * n..(r + 1) * n]),
                "alone {count}x{n} row {r}"
            );
        }
        // The same vectors as the columns of the transposed array (strided lanes).
        let mut xt = vec![0.0f32; x.len()];
        for r in 0..count {
            for j in 0..n {
                xt[j * count + r] = x[r * n + j];
            }
        }
        let mut outt = vec![0.0f32; x.len()];
        let lanes = logitkit::Lanes::from_strided(&[n, count], &[count as isize, 1], 0);
        let src = logitkit::StridedView::new(&xt, 0, lanes.clone()).unwrap();
        let mut dst = logitkit::StridedViewMut::new(&mut outt, 0, lanes).unwrap();
        logitkit::lanes::map_lanes(Op::Softmax, &src, &mut dst, (&temps[..]).into()).unwrap();
        for r in 0..count {
            for j in 0..n {
                assert_eq!(
                    outt[j * count + r].to_bits(),
                    rows[r * n + j].to_bits(),
                    "strided {count}x{n} row {r} col {j}"
                );
            }
        }
    }
}

/// S9/S10: calls from several threads at once share the pool (callers and helpers) and still
/// give the bits of a lone call.
#[test]
fn s10_concurrent_callers_bitwise() {
    let mut rng = Rng(15);
    let long: Vec<f32> = (0..300_001).map(|_| (rng.normal() * 5.0) as f32).collect();
    let short: Vec<f32> = (0..20_000 * 10).map(|_| rng.normal() as f32).collect();
    let mut want_long = vec![0.0f32; long.len()];
    let mut want_short = vec![0.0f32; short.len()];
    logitkit::softmax(&long, &mut want_long, 0.9).unwrap();
    logitkit::log_softmax_rows(&short, &mut want_short, 10, 1.0.into()).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..5 {
                    let mut a = vec![0.0f32; long.len()];
                    let mut b = vec![0.0f32; short.len()];
                    logitkit::softmax(&long, &mut a, 0.9).unwrap();
                    logitkit::log_softmax_rows(&short, &mut b, 10, 1.0.into()).unwrap();
                    assert_eq!(bits32(&a), bits32(&want_long));
                    assert_eq!(bits32(&b), bits32(&want_short));
                }
            });
        }
    });
}

/// S8 (float16): computed in f32 and rounded once, so exactly the f32 result rounded.
#[test]
fn s8_f16_is_f32_result_rounded_once() {
    let mut rng = Rng(16);
    for n in [7usize, 1000, 2 * k::BLOCK + 3] {
        let x16: Vec<half::f16> = (0..n)
            .map(|_| half::f16::from_f64(rng.normal() * 4.0))
            .collect();
        let x32: Vec<f32> = x16.iter().map(|v| v.to_f32()).collect();
        let mut p16 = vec![half::f16::ZERO; n];
        let mut p32 = vec![0.0f32; n];
        logitkit::softmax(&x16, &mut p16, 0.8).unwrap();
        logitkit::softmax(&x32, &mut p32, 0.8).unwrap();
        for i in 0..n {
            assert_eq!(p16[i], half::f16::from_f32(p32[i]), "n={n} i={i}");
        }
    }
}

/// One call over chunks is `exp_store_sum` over each chunk: the same exps and, per chunk, the
/// same sum bits, at every level (the vector ones and the scalar twin), `f32` and `f64`, at
/// temperature 1, a moderate one and one the vector kernels hand to the scalar ones; chunk
/// sizes that divide the row, leave a short last chunk, or exceed it.
#[test]
fn exp_store_chunk_sums_are_exp_store_sum_per_chunk_all_levels() {
    fn check<C: logitkit::Real + std::fmt::Debug>(
        rng: &mut Rng,
        of: impl Fn(f64) -> C,
        bits: impl Fn(C) -> u64,
    ) {
        for level in supported_levels() {
            for &n in &[0usize, 1, 17, 1000, 1024, 4097, k::BLOCK] {
                let x: Vec<C> = random_row(rng, n, 8.0, 9).into_iter().map(&of).collect();
                let m = k::max(level, &x).0;
                if n == 0 {
                    continue;
                }
                for t in [1.0, 0.8, 1e-35] {
                    for chunk in [1024usize, 64, 5000] {
                        let ctx = format!("{level:?} n={n} t={t} chunk={chunk}");
                        let mut out = x.clone();
                        let mut sums = vec![f64::NAN; n.div_ceil(chunk)];
                        k::exp_store_chunk_sums(level, &x, &mut out, m, t, chunk, &mut sums);
                        for (c, (xc, oc)) in x.chunks(chunk).zip(out.chunks(chunk)).enumerate() {
                            let mut want = xc.to_vec();
                            let s = k::exp_store_sum(level, xc, &mut want, m, t);
                            assert_eq!(sums[c].to_bits(), s.to_bits(), "sum {c} {ctx}");
                            let same = oc.iter().zip(&want).all(|(&a, &b)| bits(a) == bits(b));
                            assert!(same, "exps of chunk {c} {ctx}");
                        }
                    }
                }
            }
        }
    }
    let mut rng = Rng(29);
    check::<f32>(&mut rng, |v| v as f32, |v| v.to_bits() as u64);
    check::<f64>(&mut rng, |v| v, f64::to_bits);
}
