//! The extras (issue 6) against plain f64 references: cross-entropy, temperature fitting,
//! calibration error, top-k, sparsemax, sigmoid.

use logitkit::extras::{
    calibration_bins, calibration_bins_lanes, cross_entropy, cross_entropy_lanes,
    cross_entropy_rows, expected_calibration_error, fit_temperature, fit_temperature_lanes,
    reduce_losses, sigmoid, sigmoid_lanes, sparsemax, sparsemax_lanes, sparsemax_rows, topk,
    topk_lanes, topk_rows, CrossEntropyOptions, Reduction, T_MAX, T_MIN,
};
use logitkit::lanes::logsumexp_lanes;
use logitkit::{Error, Lanes, StridedView, StridedViewMut, Temperature};

/// Deterministic pseudo-random numbers (LCG), no rand dependency.
struct Lcg(u64);
impl Lcg {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n
    }
}

/// Textbook f64 cross-entropy of one row (finite input).
fn ref_loss(x: &[f64], y: usize, t: f64, eps: f64) -> f64 {
    let z: Vec<f64> = x.iter().map(|v| v / t).collect();
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    let logp: Vec<f64> = z.iter().map(|v| v - lse).collect();
    let c = x.len() as f64;
    -(1.0 - eps) * logp[y] - eps / c * logp.iter().sum::<f64>()
}

fn batch(rng: &mut Lcg, rows: usize, cols: usize, scale: f64) -> (Vec<f64>, Vec<i64>) {
    let x = (0..rows * cols).map(|_| rng.normal() * scale).collect();
    let y = (0..rows).map(|_| rng.below(cols) as i64).collect();
    (x, y)
}

#[test]
fn cross_entropy_matches_reference_f64_and_f32() {
    let mut rng = Lcg(1);
    let (rows, cols) = (50, 17);
    let (x, y) = batch(&mut rng, rows, cols, 4.0);
    let temps: Vec<f64> = (0..rows).map(|i| 0.3 + 0.1 * i as f64).collect();
    for eps in [0.0, 0.1, 1.0] {
        for t in [
            Temperature::Scalar(1.0),
            Temperature::Scalar(0.7),
            (&temps).into(),
        ] {
            let opts = CrossEntropyOptions {
                temperature: t,
                label_smoothing: eps,
                ignore_index: None,
            };
            let mut got = vec![0.0; rows];
            cross_entropy_rows(&x, cols, &y, &opts, &mut got).unwrap();
            let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let mut got32 = vec![0.0; rows];
            cross_entropy_rows(&x32, cols, &y, &opts, &mut got32).unwrap();
            for r in 0..rows {
                let want = ref_loss(&x[r * cols..(r + 1) * cols], y[r] as usize, t.get(r), eps);
                assert!((got[r] - want).abs() <= 1e-13 * want.abs().max(1.0), "{r}");
                let xr: Vec<f64> = x32[r * cols..(r + 1) * cols]
                    .iter()
                    .map(|&v| v as f64)
                    .collect();
                let want32 = ref_loss(&xr, y[r] as usize, t.get(r), eps);
                assert!(
                    (got32[r] - want32).abs() <= 2e-6 * want32.abs().max(1.0),
                    "f32 row {r}: {} vs {want32}",
                    got32[r]
                );
            }
        }
    }
}

/// Many short rows at one temperature take their sums a packed group of rows per kernel call;
/// at one temperature per row, a row at a time (contract S9: the same bits either way), with
/// contract S6's rows (NaN, +inf, all -inf) and ignored labels among them, at temperatures the
/// packed kernels take and one they leave to the block kernels (2e-35).
#[test]
fn s9_cross_entropy_grouped_rows_match_row_by_row_bitwise() {
    let mut rng = Lcg(91);
    for n in [2usize, 3, 7, 16, 17, 33, 64, 65] {
        let rows = 301;
        let (mut x, mut y) = batch(&mut rng, rows, n, 6.0);
        x[3 * n] = f64::NAN;
        x[20 * n + n - 1] = f64::INFINITY;
        x[40 * n..41 * n].fill(f64::NEG_INFINITY);
        y[7] = -100;
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let x16: Vec<half::f16> = x.iter().map(|&v| half::f16::from_f64(v)).collect();
        for t in [1.0, 0.7, 2e-35] {
            let each = vec![t; rows];
            for eps in [0.0, 0.1] {
                let opts = |temperature| CrossEntropyOptions {
                    temperature,
                    label_smoothing: eps,
                    ignore_index: Some(-100),
                };
                let (one, per_row) = (opts(Temperature::Scalar(t)), opts((&each).into()));
                let what = format!("n={n} t={t} eps={eps}");
                let run = |opts: &CrossEntropyOptions<'_>| {
                    let mut out = [vec![0.0; rows], vec![0.0; rows], vec![0.0; rows]];
                    cross_entropy_rows(&x, n, &y, opts, &mut out[0]).unwrap();
                    cross_entropy_rows(&x32, n, &y, opts, &mut out[1]).unwrap();
                    cross_entropy_rows(&x16, n, &y, opts, &mut out[2]).unwrap();
                    out.map(|v| bits(&v))
                };
                let (a, b) = (run(&one), run(&per_row));
                assert_eq!(a, b, "{what}");
                let f32_losses: Vec<f64> = a[1].iter().map(|&u| f64::from_bits(u)).collect();
                assert!(f32_losses[3].is_nan() && f32_losses[20].is_nan(), "{what}");
                assert!(f32_losses[40].is_nan() && f32_losses[7] == 0.0, "{what}");
                assert!(f32_losses[8].is_finite(), "{what}");
            }
        }
    }
}

#[test]
fn cross_entropy_reductions_and_ignore_index_follow_pytorch() {
    let x = [1.0f64, 2.0, 3.0, 0.0, 0.0, 0.0, 5.0, -1.0, 0.5];
    let y = [2, -100, 0];
    let opts = CrossEntropyOptions {
        ignore_index: Some(-100),
        ..Default::default()
    };
    let mut per = [0.0; 3];
    cross_entropy_rows(&x, 3, &y, &opts, &mut per).unwrap();
    assert_eq!(per[1], 0.0);
    let sum = cross_entropy(&x, 3, &y, &opts, Reduction::Sum).unwrap();
    let mean = cross_entropy(&x, 3, &y, &opts, Reduction::Mean).unwrap();
    assert!((sum - per[0] - per[2]).abs() < 1e-15);
    assert!((mean - sum / 2.0).abs() < 1e-15);
    // Every label ignored: the mean is NaN (0 / 0), as in PyTorch.
    assert!(reduce_losses(&[0.0], &[-100], Some(-100), Reduction::Mean).is_nan());
    assert_eq!(Reduction::parse("none").unwrap(), Reduction::None);
}

#[test]
fn cross_entropy_is_overflow_safe_and_nan_for_bad_rows() {
    let opts = CrossEntropyOptions::default();
    let mut l = [0.0; 4];
    let x = [
        3e38f32,
        -3e38, // certain and right: 0
        3e38,
        -3e38, // certain and wrong: 6e38 (finite in f64)
        f32::NAN,
        0.0, // NaN row
        0.0,
        f32::NEG_INFINITY, // label at -inf: +inf
    ];
    cross_entropy_rows(&x, 2, &[0, 1, 0, 1], &opts, &mut l).unwrap();
    assert_eq!(l[0], 0.0);
    assert_eq!(l[1], 2.0 * (3e38f32 as f64));
    assert!(l[2].is_nan());
    assert_eq!(l[3], f64::INFINITY);
    // A tiny temperature: softmax([1e30, 0] / 1e-30) puts everything on class 0.
    let opts = CrossEntropyOptions {
        temperature: 1e-30.into(),
        ..Default::default()
    };
    let v = cross_entropy(&[1e30f64, 0.0], 2, &[0], &opts, Reduction::Sum).unwrap();
    assert_eq!(v, 0.0);
}

#[test]
fn cross_entropy_errors_name_parameter_and_value() {
    let opts = CrossEntropyOptions::default();
    let e = cross_entropy(&[0.0f32; 6], 3, &[0, 3], &opts, Reduction::Mean).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("labels") && msg.contains("3 at position 1"),
        "{msg}"
    );
    let bad = CrossEntropyOptions {
        label_smoothing: 1.5,
        ..Default::default()
    };
    let msg = cross_entropy(&[0.0f32; 3], 3, &[0], &bad, Reduction::Mean)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("label_smoothing") && msg.contains("1.5"),
        "{msg}"
    );
    let bad = CrossEntropyOptions {
        temperature: (-2.0).into(),
        ..Default::default()
    };
    let msg = cross_entropy(&[0.0f32; 3], 3, &[0], &bad, Reduction::Mean)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("temperature") && msg.contains("-2"), "{msg}");
    assert!(matches!(
        cross_entropy(&[0.0f32; 6], 3, &[0], &opts, Reduction::Mean),
        Err(Error::LengthMismatch { name: "labels", .. })
    ));
}

#[test]
fn s9_extras_bitwise_same_for_any_thread_count() {
    let mut rng = Lcg(9);
    let (rows, cols) = (200, 257);
    let (x, y) = batch(&mut rng, rows, cols, 3.0);
    let x: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let run = |threads: usize| {
        logitkit::set_num_threads(threads).unwrap();
        let opts = CrossEntropyOptions {
            label_smoothing: 0.1,
            ..Default::default()
        };
        let ce = cross_entropy(&x, cols, &y, &opts, Reduction::Mean).unwrap();
        let fit = fit_temperature(&x, cols, &y).unwrap();
        let mut sp = vec![0f32; x.len()];
        sparsemax_rows(&x, cols, &mut sp).unwrap();
        let (mut v, mut i) = (vec![0f32; rows * 5], vec![0i64; rows * 5]);
        topk_rows(&x, cols, 5, &mut v, &mut i).unwrap();
        let mut sg = vec![0f32; x.len()];
        sigmoid(&x, &mut sg).unwrap();
        (ce.to_bits(), fit.temperature.to_bits(), sp, v, i, sg)
    };
    let one = run(1);
    for t in [2, 3, 8] {
        assert!(run(t) == one, "threads = {t}");
    }
    logitkit::set_num_threads(logitkit::available_cpus()).unwrap();
}

/// Mean NLL at temperature t, textbook f64.
fn ref_nll(x: &[f64], cols: usize, y: &[i64], t: f64) -> f64 {
    let rows = y.len();
    (0..rows)
        .map(|r| ref_loss(&x[r * cols..(r + 1) * cols], y[r] as usize, t, 0.0))
        .sum::<f64>()
        / rows as f64
}

#[test]
fn fit_temperature_minimises_nll() {
    let mut rng = Lcg(3);
    let (rows, cols) = (400, 6);
    // Informative but over-confident logits.
    let (mut x, y) = batch(&mut rng, rows, cols, 1.0);
    for r in 0..rows {
        x[r * cols + y[r] as usize] += 1.5;
    }
    x.iter_mut().for_each(|v| *v *= 4.0);
    let fit = fit_temperature(&x, cols, &y).unwrap();
    assert!(!fit.at_bound && fit.evaluations < 40, "{fit:?}");
    let t = fit.temperature;
    assert!(t > 1.0, "{t}");
    // A minimum: the NLL is higher a little to either side, and the reported values agree.
    let f = |t: f64| ref_nll(&x, cols, &y, t);
    assert!(f(t * 1.001) > f(t) && f(t / 1.001) > f(t));
    assert!((fit.nll_after - f(t)).abs() < 1e-12);
    assert!((fit.nll_before - f(1.0)).abs() < 1e-12);
    // Golden-section reference on ln T.
    let (mut a, mut b) = ((0.1f64).ln(), (100f64).ln());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..200 {
        let (c, d) = (b - g * (b - a), a + g * (b - a));
        if f(c.exp()) < f(d.exp()) {
            b = d;
        } else {
            a = c;
        }
    }
    let t_ref = (0.5 * (a + b)).exp();
    assert!((t / t_ref - 1.0).abs() < 1e-6, "{t} vs {t_ref}");
}

#[test]
fn fit_temperature_bounds_and_errors() {
    // Always right: the NLL keeps falling as T -> 0.
    let fit = fit_temperature(&[1.0f64, 0.0, 0.0, 1.0], 2, &[0, 1]).unwrap();
    assert!(fit.at_bound && fit.temperature == T_MIN);
    // Always wrong: the best is the uniform distribution, T -> inf.
    let fit = fit_temperature(&[1.0f64, 0.0, 0.0, 1.0], 2, &[1, 0]).unwrap();
    assert!(fit.at_bound && fit.temperature == T_MAX);
    // No information at all: any T, keep 1.
    let fit = fit_temperature(&[0.5f64, 0.5], 2, &[1]).unwrap();
    assert_eq!(fit.temperature, 1.0);
    let e = fit_temperature(&[f64::NAN, 0.0], 2, &[0]).unwrap_err();
    assert!(matches!(e, Error::InvalidRow { row: 0, .. }), "{e}");
    assert!(fit_temperature(&[0.0f64, 0.0], 2, &[2])
        .unwrap_err()
        .to_string()
        .contains("labels"));
    assert!(fit_temperature::<f64>(&[], 2, &[]).is_err());
}

#[test]
fn ece_matches_reference() {
    let mut rng = Lcg(5);
    let (rows, cols, n_bins) = (1000, 4, 15);
    let mut p = vec![0f64; rows * cols];
    for r in 0..rows {
        let w: Vec<f64> = (0..cols).map(|_| (2.0 * rng.normal()).exp()).collect();
        let s: f64 = w.iter().sum();
        for c in 0..cols {
            p[r * cols + c] = w[c] / s;
        }
    }
    let y: Vec<i64> = (0..rows).map(|_| rng.below(cols) as i64).collect();
    let ece = expected_calibration_error(&p, cols, &y, n_bins).unwrap();
    // Reference: bins (lo, hi] from an explicit edge list.
    let mut cnt = vec![0f64; n_bins];
    let mut acc = vec![0f64; n_bins];
    let mut conf = vec![0f64; n_bins];
    for r in 0..rows {
        let row = &p[r * cols..(r + 1) * cols];
        let (best, &c) = row
            .iter()
            .enumerate()
            .fold((0, &row[0]), |a, b| if b.1 > a.1 { b } else { a });
        let b = (0..n_bins)
            .find(|&b| c > b as f64 / n_bins as f64 && c <= (b + 1) as f64 / n_bins as f64)
            .unwrap();
        cnt[b] += 1.0;
        conf[b] += c;
        acc[b] += (best as i64 == y[r]) as u8 as f64;
    }
    let want: f64 = (0..n_bins).map(|b| (acc[b] - conf[b]).abs()).sum::<f64>() / rows as f64;
    assert!((ece - want).abs() < 1e-14, "{ece} vs {want}");
    let bins = calibration_bins(&p, cols, &y, n_bins).unwrap();
    assert_eq!(bins.rows(), rows as u64);
    assert!(calibration_bins(&p, cols, &y, 0)
        .unwrap_err()
        .to_string()
        .contains("n_bins"));
}

/// R7: probabilities above 1, below 0 or infinite are refused naming `probs` (they used to give
/// an ECE above 1 or infinite).
#[test]
fn r7_calibration_refuses_probabilities_outside_0_1() {
    for bad in [1.5f64, f64::INFINITY, -0.25, f64::NEG_INFINITY, 1.0 + 1e-12] {
        let p = [0.2f64, bad, 0.1, 0.9];
        let e = expected_calibration_error(&p, 2, &[0, 1], 15)
            .unwrap_err()
            .to_string();
        assert!(e.contains("probs") && e.contains("[0, 1]"), "{e}");
        assert!(calibration_bins(&p, 2, &[0, 1], 15).is_err());
        let p32 = [0.2f32, bad as f32, 0.1, 0.9];
        // (1 + 1e-12 rounds to 1 in f32, a probability.)
        let bad32 = !(0.0..=1.0).contains(&(bad as f32));
        assert_eq!(
            expected_calibration_error(&p32, 2, &[0, 1], 15).is_err(),
            bad32
        );
    }
    // The ends of [0, 1] themselves are probabilities.
    assert!(expected_calibration_error(&[0.0f64, 1.0, 1.0, 0.0], 2, &[1, 0], 15).is_ok());
}

/// R2/#17: top-k with a huge k on rows is an error value, in debug builds too (forming
/// `rows * k` overflowed: a panic with overflow checks, a wrapped length in release).
#[test]
fn r2_topk_rows_with_a_huge_k_is_an_error_not_an_overflow() {
    let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let (mut v, mut i) = ([0.0f32; 2], [0i64; 2]);
    for k in [usize::MAX, usize::MAX / 2 + 1, 1 << 62, 4] {
        let e = topk_rows(&x, 3, k, &mut v, &mut i).unwrap_err().to_string();
        assert!(e.contains("k must be"), "{e}");
    }
    // The same on broadcast lanes (stride 0, far more elements than memory): the length check
    // does not overflow either.
    // The source view is valid (every element is x[0]); outputs that small cannot hold
    // 2^30 x 2^40 results, and the expected length saturates instead of overflowing.
    let lanes = Lanes::from_strided(&[1 << 40, 1 << 40], &[0, 0], 1);
    let src = StridedView::new(&x, 0, lanes).unwrap();
    let mut values = StridedViewMut::rows(&mut v, 1).unwrap();
    let mut indices = StridedViewMut::rows(&mut i, 1).unwrap();
    let e = topk_lanes(&src, 1 << 30, &mut values, &mut indices).unwrap_err();
    assert!(
        matches!(
            e,
            Error::LengthMismatch {
                name: "values",
                got: 2,
                expected: usize::MAX
            }
        ),
        "{e}"
    );
}

/// Top-k by a stable full sort: value descending (NaN first), index ascending.
fn ref_topk(x: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| {
        let key = |v: f64| if v.is_nan() { f64::INFINITY } else { v };
        let (ka, kb) = (key(x[a]), key(x[b]));
        let na = x[a].is_nan() as u8;
        let nb = x[b].is_nan() as u8;
        nb.cmp(&na)
            .then(kb.partial_cmp(&ka).unwrap())
            .then(a.cmp(&b))
    });
    idx.truncate(k);
    idx
}

#[test]
fn topk_matches_full_sort_with_ties_and_nan() {
    let mut rng = Lcg(11);
    // 20 and 32: short lanes ranked whole when k is at least half of them.
    for &n in &[1usize, 7, 20, 32, 100, 5000] {
        // Few distinct values: many ties.
        let mut x: Vec<f64> = (0..n).map(|_| (rng.normal() * 3.0).round()).collect();
        if n > 10 {
            x[3] = f64::NAN;
            x[n - 1] = f64::INFINITY;
            x[n / 2] = f64::NEG_INFINITY;
            x[5] = f64::NAN;
            // -0.0 and 0.0 are equal: index order.
            x[7] = -0.0;
            x[8] = 0.0;
        }
        for &k in &[0usize, 1, 2, 10, 16, 64, 65, 300, n] {
            if k > n {
                continue;
            }
            let (v, i) = topk(&x, k).unwrap();
            let want = ref_topk(&x, k);
            let got: Vec<usize> = i.iter().map(|&j| j as usize).collect();
            assert_eq!(got, want, "n = {n}, k = {k}");
            for (a, &j) in v.iter().zip(&want) {
                assert!(a.to_bits() == x[j].to_bits());
            }
        }
    }
    let e = topk(&[1.0f32, 2.0], 3).unwrap_err().to_string();
    assert!(e.contains('k') && e.contains('3'), "{e}");
}

#[test]
fn topk_lanes_along_a_strided_axis() {
    // A 4 x 3 C-contiguous array, top-2 along axis 0 (columns), output 2 x 3 C-contiguous.
    let x = [
        1.0f64, 9.0, 5.0, 4.0, 8.0, 5.0, 3.0, 7.0, 6.0, 2.0, 0.0, 5.0,
    ];
    let lanes = Lanes::from_strided(&[4, 3], &[3, 1], 0);
    let out = Lanes::from_strided(&[2, 3], &[3, 1], 0);
    let (mut v, mut i) = ([0.0f64; 6], [0i64; 6]);
    let src = StridedView::new(&x, 0, lanes).unwrap();
    let mut values = StridedViewMut::new(&mut v, 0, out.clone()).unwrap();
    let mut indices = StridedViewMut::new(&mut i, 0, out).unwrap();
    topk_lanes(&src, 2, &mut values, &mut indices).unwrap();
    assert_eq!(v, [4.0, 9.0, 6.0, 3.0, 8.0, 5.0]);
    assert_eq!(i, [1, 0, 2, 2, 1, 0]);
}

/// Sparsemax by a full sort (Martins & Astudillo, Algorithm 1), finite input.
fn ref_sparsemax(z: &[f64]) -> Vec<f64> {
    let mut s = z.to_vec();
    s.sort_by(|a, b| b.partial_cmp(a).unwrap());
    let mut cum = 0.0;
    let mut k = 0;
    let mut ksum = 0.0;
    for (j, &v) in s.iter().enumerate() {
        cum += v;
        if 1.0 + (j + 1) as f64 * v > cum {
            k = j + 1;
            ksum = cum;
        }
    }
    let tau = (ksum - 1.0) / k as f64;
    z.iter().map(|&v| (v - tau).max(0.0)).collect()
}

#[test]
fn sparsemax_matches_reference() {
    let mut rng = Lcg(13);
    for &(n, scale) in &[
        (1usize, 1.0),
        (5, 0.3),
        (50, 0.5),
        (1000, 0.05),
        (300, 10.0),
    ] {
        let x: Vec<f64> = (0..n).map(|_| rng.normal() * scale).collect();
        let mut p = vec![0.0; n];
        sparsemax(&x, &mut p).unwrap();
        let want = ref_sparsemax(&x);
        for (a, b) in p.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-14, "n = {n}: {a} vs {b}");
        }
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-13);
        // f32 and f16 within their rounding.
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let mut p32 = vec![0f32; n];
        sparsemax(&x32, &mut p32).unwrap();
        let want32 = ref_sparsemax(&x32.iter().map(|&v| v as f64).collect::<Vec<_>>());
        for (a, b) in p32.iter().zip(&want32) {
            assert!((*a as f64 - b).abs() <= 1e-7, "{a} vs {b}");
        }
    }
    // Overflow-safe, -inf gives 0, bad vectors give NaN.
    let mut p = [0f32; 3];
    sparsemax(&[3e38f32, 3e38, f32::NEG_INFINITY], &mut p).unwrap();
    assert_eq!(p, [0.5, 0.5, 0.0]);
    sparsemax(&[1.0f32, f32::NAN, 0.0], &mut p).unwrap();
    assert!(p.iter().all(|v| v.is_nan()));
    let mut h = [half::f16::ZERO; 2];
    sparsemax(&[half::f16::from_f32(0.25), half::f16::ZERO], &mut h).unwrap();
    assert_eq!(h.map(|v| v.to_f32()), [0.625, 0.375]);
}

#[test]
fn sigmoid_is_accurate_and_overflow_safe() {
    let xs: Vec<f64> = (-2000..=2000).map(|i| i as f64 * 0.37).collect();
    let mut s = vec![0.0; xs.len()];
    sigmoid(&xs, &mut s).unwrap();
    for (&x, &v) in xs.iter().zip(&s) {
        let want = if x >= 0.0 {
            1.0 / (1.0 + (-x).exp())
        } else {
            x.exp() / (1.0 + x.exp())
        };
        assert!(
            (v - want).abs() <= 1e-16 * want.max(1e-300) * 4.0 || v == want,
            "{x}"
        );
        assert!(v.is_finite() && (0.0..=1.0).contains(&v));
    }
    let x = [
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -1e30,
        1e30,
        -90.0,
    ];
    let mut o = [0f32; 6];
    sigmoid(&x, &mut o).unwrap();
    assert_eq!(&o[..2], &[1.0, 0.0]);
    assert!(o[2].is_nan());
    assert_eq!(&o[3..5], &[0.0, 1.0]);
    assert!(o[5] > 0.0); // 8e-40: a subnormal, not flushed
                         // A long input (threads share its rows) with a ragged tail.
    let long: Vec<f32> = (0..100_003).map(|i| (i % 200) as f32 - 100.0).collect();
    let mut out = vec![0f32; long.len()];
    sigmoid(&long, &mut out).unwrap();
    for (&x, &v) in long.iter().zip(&out) {
        let want = 1.0 / (1.0 + (-(x as f64)).exp());
        assert_eq!(v, want as f32);
    }
}

#[test]
fn s9_long_rows_share_threads_and_stay_bitwise() {
    // Rows longer than the parallel threshold: the per-row logsumexp itself runs in parallel
    // inside the parallel loop over rows.
    let mut rng = Lcg(21);
    let (rows, cols) = (3, 40_000);
    let (x, y) = batch(&mut rng, rows, cols, 2.0);
    let x: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let run = |threads: usize| {
        logitkit::set_num_threads(threads).unwrap();
        let opts = CrossEntropyOptions {
            label_smoothing: 0.2,
            ..Default::default()
        };
        let mut l = vec![0.0; rows];
        cross_entropy_rows(&x, cols, &y, &opts, &mut l).unwrap();
        l
    };
    let one = run(1);
    for t in [2, 4, 16] {
        assert_eq!(run(t), one, "threads = {t}");
    }
    for r in 0..rows {
        let xr: Vec<f64> = x[r * cols..(r + 1) * cols]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let want = ref_loss(&xr, y[r] as usize, 1.0, 0.2);
        assert!((one[r] - want).abs() <= 2e-6 * want.abs().max(1.0));
    }
    logitkit::set_num_threads(logitkit::available_cpus()).unwrap();
}

#[test]
fn sigmoid_f32_is_correctly_rounded_on_a_dense_grid() {
    // Every f32 result equals the f64 libm formula rounded to f32 (the fast exp of the f32 path
    // is accurate far beyond f32 rounding), across the whole range where results are not 0 or 1.
    let xs: Vec<f32> = (0..400_000).map(|i| -110.0 + i as f32 * 0.000_55).collect();
    let mut got = vec![0f32; xs.len()];
    sigmoid(&xs, &mut got).unwrap();
    let mut mismatches = 0;
    for (&x, &g) in xs.iter().zip(&got) {
        let x = x as f64;
        let want = if x >= 0.0 {
            1.0 / (1.0 + (-x).exp())
        } else {
            x.exp() / (1.0 + x.exp())
        };
        if g != want as f32 {
            mismatches += 1;
            // Only where the f64 value sits on an f32 rounding boundary: within 1 ulp.
            assert!(
                (g as f64 - want).abs() <= (want as f32).abs() as f64 * 1.2e-7,
                "{x}"
            );
        }
    }
    assert!(
        mismatches <= 2,
        "{mismatches} results differ from the correctly rounded one"
    );
    let mut h = [half::f16::ZERO; 3];
    let hx = [
        half::f16::from_f32(-3.0),
        half::f16::ZERO,
        half::f16::from_f32(8.0),
    ];
    sigmoid(&hx, &mut h).unwrap();
    assert_eq!(
        h.map(|v| v.to_f32()),
        [0.04742, 0.5, 0.9995].map(|v: f32| half::f16::from_f32(v).to_f32())
    );
}

/// Short strided lanes are gathered a block of lanes at a time (up to 64 elements per lane, 4096
/// elements per block): every lane-form extra and `logsumexp_lanes` over column-major storage, with lane counts that
/// cross the block boundaries, gives the bits of the same lanes stored row by row, at one
/// thread and at two.
#[test]
fn s9_short_strided_lanes_match_contiguous_lanes_bitwise() {
    let mut rng = Lcg(77);
    for &n in &[1usize, 2, 3, 7, 64, 65] {
        let rows = 3 * (4096 / n) + 5;
        let x: Vec<f64> = (0..rows * n).map(|_| 4.0 * rng.normal()).collect();
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        // Column-major: element (r, j) at j * rows + r.
        let mut xf = vec![0.0f32; rows * n];
        for r in 0..rows {
            for j in 0..n {
                xf[j * rows + r] = x32[r * n + j];
            }
        }
        let labels: Vec<i64> = (0..rows).map(|_| rng.below(n) as i64).collect();
        let c_lanes = Lanes::rows(rows, n);
        let f_lanes = Lanes::from_strided(&[rows, n], &[1, rows as isize], 1);
        let c = StridedView::new(&x32, 0, c_lanes.clone()).unwrap();
        let f = StridedView::new(&xf, 0, f_lanes.clone()).unwrap();
        let opts = CrossEntropyOptions {
            label_smoothing: 0.1,
            ..Default::default()
        };
        let probs: Vec<f32> = {
            let mut p = vec![0.0f32; rows * n];
            logitkit::softmax_rows(&x32, &mut p, n, 1.0.into()).unwrap();
            p
        };
        let mut pf = vec![0.0f32; rows * n];
        for r in 0..rows {
            for j in 0..n {
                pf[j * rows + r] = probs[r * n + j];
            }
        }
        for threads in [1, 2] {
            logitkit::set_num_threads(threads).unwrap();
            let (mut lc, mut lf) = (vec![0.0; rows], vec![0.0; rows]);
            cross_entropy_lanes(&c, &labels, &opts, &mut lc).unwrap();
            cross_entropy_lanes(&f, &labels, &opts, &mut lf).unwrap();
            assert_eq!(
                bits(&lc),
                bits(&lf),
                "cross_entropy n={n} threads={threads}"
            );
            // logsumexp, with contract S6's lanes (NaN, +inf, all -inf) among the others.
            let (mut special_c, mut special_f) = (x32.clone(), xf.clone());
            for (r, v) in [
                (3usize, f32::NAN),
                (40, f32::INFINITY),
                (41, f32::NEG_INFINITY),
            ] {
                for j in 0..n {
                    if j == 0 || v == f32::NEG_INFINITY {
                        special_c[r * n + j] = v;
                        special_f[j * rows + r] = v;
                    }
                }
            }
            let sc = StridedView::new(&special_c, 0, c_lanes.clone()).unwrap();
            let sf = StridedView::new(&special_f, 0, f_lanes.clone()).unwrap();
            let (mut lse_c, mut lse_f) = (vec![0.0f32; rows], vec![0.0f32; rows]);
            logsumexp_lanes(&sc, &mut lse_c).unwrap();
            logsumexp_lanes(&sf, &mut lse_f).unwrap();
            let lse_bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                lse_bits(&lse_c),
                lse_bits(&lse_f),
                "logsumexp n={n} threads={threads}"
            );
            assert!(lse_c[3].is_nan() && lse_c[40] == f32::INFINITY);
            assert_eq!(lse_c[41], f32::NEG_INFINITY);
            for k in [1, 2.min(n), n] {
                let out = Lanes::rows(rows, k);
                let (mut vc, mut ic) = (vec![0.0f32; rows * k], vec![0i64; rows * k]);
                let (mut vf, mut i_f) = (vc.clone(), ic.clone());
                topk_lanes(
                    &c,
                    k,
                    &mut StridedViewMut::new(&mut vc, 0, out.clone()).unwrap(),
                    &mut StridedViewMut::new(&mut ic, 0, out.clone()).unwrap(),
                )
                .unwrap();
                topk_lanes(
                    &f,
                    k,
                    &mut StridedViewMut::new(&mut vf, 0, out.clone()).unwrap(),
                    &mut StridedViewMut::new(&mut i_f, 0, out).unwrap(),
                )
                .unwrap();
                assert_eq!(
                    (&vc, &ic),
                    (&vf, &i_f),
                    "topk k={k} n={n} threads={threads}"
                );
                let want: Vec<i64> = (0..rows)
                    .flat_map(|r| {
                        let row: Vec<f64> =
                            x32[r * n..(r + 1) * n].iter().map(|&v| v as f64).collect();
                        ref_topk(&row, k).into_iter().map(|i| i as i64)
                    })
                    .collect();
                assert_eq!(ic, want, "topk k={k} n={n} against the reference");
            }
            // Sparsemax and sigmoid, into column-major outputs (a strided write) and
            // row-major ones.
            for (name, op) in [
                ("sparsemax", sparsemax_lanes::<f32> as LaneOp),
                ("sigmoid", sigmoid_lanes::<f32> as LaneOp),
            ] {
                let mut oc = vec![0.0f32; rows * n];
                op(
                    &c,
                    &mut StridedViewMut::new(&mut oc, 0, c_lanes.clone()).unwrap(),
                )
                .unwrap();
                let mut of = vec![0.0f32; rows * n];
                op(
                    &f,
                    &mut StridedViewMut::new(&mut of, 0, f_lanes.clone()).unwrap(),
                )
                .unwrap();
                let mut ofc = vec![0.0f32; rows * n];
                op(
                    &f,
                    &mut StridedViewMut::new(&mut ofc, 0, c_lanes.clone()).unwrap(),
                )
                .unwrap();
                assert_eq!(oc, ofc, "{name} n={n} threads={threads}");
                for r in 0..rows {
                    for j in 0..n {
                        assert_eq!(
                            of[j * rows + r].to_bits(),
                            oc[r * n + j].to_bits(),
                            "{name}"
                        );
                    }
                }
            }
            let pc = StridedView::new(&probs, 0, c_lanes.clone()).unwrap();
            let pfv = StridedView::new(&pf, 0, f_lanes.clone()).unwrap();
            let (bc, bf) = (
                calibration_bins_lanes(&pc, &labels, 10).unwrap(),
                calibration_bins_lanes(&pfv, &labels, 10).unwrap(),
            );
            assert_eq!(bc.count, bf.count, "calibration n={n}");
            assert_eq!(bits(&bc.confidence_sum), bits(&bf.confidence_sum));
            assert_eq!(bc.correct, bf.correct);
            if n > 1 {
                let (tc, tf) = (
                    fit_temperature_lanes(&c, &labels).unwrap(),
                    fit_temperature_lanes(&f, &labels).unwrap(),
                );
                assert_eq!(
                    tc.temperature.to_bits(),
                    tf.temperature.to_bits(),
                    "fit n={n}"
                );
            }
        }
    }
    logitkit::set_num_threads(logitkit::available_cpus()).unwrap();
}

type LaneOp = fn(&StridedView<'_, f32>, &mut StridedViewMut<'_, f32>) -> logitkit::Result<()>;

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// R7: a NaN probability is named as `probs`, with its row and position, as the other bad
/// probabilities are (it was reported as a row of "logits", a parameter these do not have).
#[test]
fn r7_calibration_names_probs_for_nan() {
    let e = calibration_bins(&[f32::NAN, 0.5, 0.2, 0.8], 2, &[0, 1], 10).unwrap_err();
    assert!(
        matches!(e, Error::InvalidParameter { name: "probs", .. }),
        "{e}"
    );
    assert!(e.to_string().contains("NaN (row 0, position 0)"), "{e}");
    let e = expected_calibration_error(&[0.5f32, 0.5, 0.2, f32::NAN], 2, &[0, 1], 10).unwrap_err();
    assert!(e.to_string().contains("NaN (row 1, position 1)"), "{e}");
}

/// R2: the public layout helpers do not panic on layouts no array has: a lane count beyond
/// `usize` saturates, and `coalesce` leaves layouts it cannot merge (other lane numberings,
/// strides whose product overflows) as they are.
#[test]
fn r2_layout_helpers_take_layouts_no_array_has() {
    use logitkit::lanes::coalesce;
    let huge = Lanes {
        len: 3,
        stride: 1,
        outer: vec![(usize::MAX, 0), (2, 0)],
    };
    assert_eq!(huge.count(), usize::MAX);
    let (mut a, mut b) = (Lanes::rows(3, 2), Lanes::rows(4, 2));
    coalesce(&mut a, &mut b);
    assert_eq!((a, b), (Lanes::rows(3, 2), Lanes::rows(4, 2)));
    let wide = Lanes {
        len: 1,
        stride: 1,
        outer: vec![(2, 1), (2, isize::MAX)],
    };
    let (mut a, mut b) = (wide.clone(), wide.clone());
    coalesce(&mut a, &mut b);
    assert_eq!((a.count(), b.count()), (4, 4));
}
