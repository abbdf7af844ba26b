//! Sampling (contract P1-P9) against a straightforward full-sort reference.

use half::f16;
use logitkit::{
    filter_logits, filter_logits_rows, sample, sample_batch, sample_rows, set_num_threads, softmax,
    Error, Histories, LogprobsMode, RowParam, Sampler, SamplingParams, Seed,
};

// ---------------------------------------------------------------------------------------------
// Helpers

mod common;
use common::{scaled, Rng};

fn params(t: f64, k: i64, p: f64, mp: f64) -> SamplingParams {
    SamplingParams::default()
        .temperature(t)
        .top_k(k)
        .top_p(p)
        .min_p(mp)
}

/// P3 by the book: full sort, cumulative sums in sorted order. Returns each token's probability
/// under the final distribution (0 for removed tokens).
fn reference(x: &[f64], t: f64, k: i64, p: f64, mp: f64) -> Vec<f64> {
    let v = x.len();
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut probs = vec![0.0; v];
    let greedy = || x.iter().position(|&e| e == m).unwrap();
    if t == 0.0 || p == 0.0 || k == 1 {
        probs[greedy()] = 1.0;
        return probs;
    }
    let mut order: Vec<usize> = (0..v).collect();
    order.sort_by(|&a, &b| x[b].partial_cmp(&x[a]).unwrap().then(a.cmp(&b)));
    let kk = if k <= 0 || k as usize >= v {
        v
    } else {
        k as usize
    };
    let mut kept: Vec<usize> = order[..kk].to_vec();
    let w: Vec<f64> = x.iter().map(|&e| ((e - m) / t).exp()).collect();
    if p < 1.0 {
        let s: f64 = kept.iter().map(|&i| w[i]).sum();
        let mut cum = 0.0;
        for n in 0..kept.len() {
            cum += w[kept[n]];
            if cum / s >= p {
                kept.truncate(n + 1);
                break;
            }
        }
    }
    if mp > 0.0 {
        kept.retain(|&i| w[i] >= mp);
    }
    let s: f64 = kept.iter().map(|&i| w[i]).sum();
    for &i in &kept {
        probs[i] = w[i] / s;
    }
    probs
}

/// Tokens kept by the reference (including zero-probability ones, by the cut semantics).
fn reference_kept(x: &[f64], t: f64, k: i64, p: f64, mp: f64) -> Vec<bool> {
    let v = x.len();
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if t == 0.0 || p == 0.0 || k == 1 {
        let mut kept = vec![false; v];
        kept[x.iter().position(|&e| e == m).unwrap()] = true;
        return kept;
    }
    let mut order: Vec<usize> = (0..v).collect();
    order.sort_by(|&a, &b| x[b].partial_cmp(&x[a]).unwrap().then(a.cmp(&b)));
    let kk = if k <= 0 || k as usize >= v {
        v
    } else {
        k as usize
    };
    let mut keep: Vec<usize> = order[..kk].to_vec();
    let w: Vec<f64> = x.iter().map(|&e| ((e - m) / t).exp()).collect();
    if p < 1.0 {
        let s: f64 = keep.iter().map(|&i| w[i]).sum();
        let mut cum = 0.0;
        for n in 0..keep.len() {
            cum += w[keep[n]];
            if cum / s >= p {
                keep.truncate(n + 1);
                break;
            }
        }
    }
    if mp > 0.0 {
        keep.retain(|&i| w[i] >= mp);
    }
    let mut kept = vec![false; v];
    keep.iter().for_each(|&i| kept[i] = true);
    kept
}

/// Regularised upper incomplete gamma Q(a, x) (Numerical Recipes' gammq).
fn gamma_q(a: f64, x: f64) -> f64 {
    fn ln_gamma(z: f64) -> f64 {
        // Lanczos, g = 7.
        const C: [f64; 9] = [
            0.999_999_999_999_809_9,
            676.520_368_121_885_1,
            -1_259.139_216_722_402_8,
            771.323_428_777_653_1,
            -176.615_029_162_140_6,
            12.507_343_278_686_905,
            -0.138_571_095_265_720_12,
            9.984_369_578_019_572e-6,
            1.505_632_735_149_311_6e-7,
        ];
        let z = z - 1.0;
        let mut s = C[0];
        for (i, &c) in C.iter().enumerate().skip(1) {
            s += c / (z + i as f64);
        }
        let t = z + 7.5;
        0.5 * (2.0 * std::f64::consts::PI).ln() + (z + 0.5) * t.ln() - t + s.ln()
    }
    if x <= 0.0 {
        return 1.0;
    }
    let gln = ln_gamma(a);
    if x < a + 1.0 {
        let (mut sum, mut del, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..10_000 {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if del.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        1.0 - sum * (-x + a * x.ln() - gln).exp()
    } else {
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-15 {
                break;
            }
        }
        (-x + a * x.ln() - gln).exp() * h
    }
}

#[test]
fn chi_square_survival_is_right() {
    // Known values: chi2.sf(3.84, 1) ~= 0.05, chi2.sf(18.307, 10) ~= 0.05.
    assert!((gamma_q(0.5, 3.841_458_8 / 2.0) - 0.05).abs() < 1e-6);
    assert!((gamma_q(5.0, 18.307_038 / 2.0) - 0.05).abs() < 1e-6);
    assert!((gamma_q(50.0, 50.0) - 0.481_185).abs() < 1e-5);
}

/// Draws `n` tokens (one row each, scalar seed) and checks their frequencies against `probs`
/// with a chi-square test; also that no removed token is ever drawn. Returns the p-value.
fn chi_square<T: logitkit::Float>(x: &[T], prm: &SamplingParams, probs: &[f64], seed: u64) -> f64 {
    let v = x.len();
    let n = scaled(40_000).max(4000);
    let batch: Vec<T> = (0..n).flat_map(|_| x.iter().copied()).collect();
    let mut tokens = vec![0i64; n];
    let mut logprobs = vec![0.0f64; n];
    sample_rows(
        &batch,
        v,
        prm,
        &Seed::Fixed(seed),
        &mut tokens,
        Some(&mut logprobs),
    )
    .unwrap();
    let mut counts = vec![0usize; v];
    for (&t, &lp) in tokens.iter().zip(&logprobs) {
        let t = t as usize;
        assert!(probs[t] > 0.0, "drew removed token {t}");
        assert!(
            (lp - probs[t].ln()).abs() < 1e-5,
            "logprob {lp} vs {}",
            probs[t].ln()
        );
        counts[t] += 1;
    }
    let mut stat = 0.0;
    let mut df = 0usize;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            let e = p * n as f64;
            stat += (counts[i] as f64 - e).powi(2) / e;
            df += 1;
        }
    }
    if df <= 1 {
        return 1.0;
    }
    gamma_q((df - 1) as f64 / 2.0, stat / 2.0)
}

fn test_row() -> Vec<f64> {
    vec![
        2.0,
        1.5,
        1.5,
        0.3,
        -0.7,
        2.4,
        0.0,
        -3.0,
        1.1,
        0.9,
        f64::NEG_INFINITY,
        1.9,
    ]
}

// ---------------------------------------------------------------------------------------------
// P3: the kept set, exactly, against the full-sort reference

/// For `f32` and `f16` logits the weights are computed in `f32` (as softmax computes them),
/// so where the reference's running probability (in `f64`) lands within `1e-6` of `p`, the
/// top-p boundary may fall one way or the other. Returns the tokens that may differ from the
/// reference for that reason: those between the two possible boundaries, by (logit desc, id).
fn top_p_rounding_slack(x: &[f64], t: f64, k: i64, p: f64) -> Vec<usize> {
    let v = x.len();
    if t == 0.0 || p == 0.0 || p == 1.0 || k == 1 {
        return Vec::new();
    }
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut order: Vec<usize> = (0..v).collect();
    order.sort_by(|&a, &b| x[b].partial_cmp(&x[a]).unwrap().then(a.cmp(&b)));
    let kk = if k <= 0 || k as usize >= v {
        v
    } else {
        k as usize
    };
    let w: Vec<f64> = order[..kk]
        .iter()
        .map(|&i| ((x[i] - m) / t).exp())
        .collect();
    let s: f64 = w.iter().sum();
    let mut cum = 0.0;
    let mut slack = Vec::new();
    for (n, &wi) in w.iter().enumerate() {
        cum += wi;
        if (cum / s - p).abs() <= 1e-6 * p {
            slack.push(order[n]);
            if n + 1 < kk {
                slack.push(order[n + 1]);
            }
        }
        if cum / s >= p + 1e-6 {
            break;
        }
    }
    slack
}

fn check_filter_matches_reference<T: logitkit::Float>(
    x: &[f64],
    conv: impl Fn(f64) -> T,
    back: impl Fn(T) -> f64,
    prm: (f64, i64, f64, f64),
    what: &str,
) {
    let xt: Vec<T> = x.iter().map(|&e| conv(e)).collect();
    let xr: Vec<f64> = xt.iter().map(|&e| back(e)).collect();
    let (t, k, p, mp) = prm;
    let mut out = vec![conv(0.0); x.len()];
    filter_logits(&xt, &params(t, k, p, mp), &mut out).unwrap();
    let mut kept = reference_kept(&xr, t, k, p, mp);
    if T::NAME != "float64" {
        for i in top_p_rounding_slack(&xr, t, k, p) {
            let got = back(out[i]);
            if got != f64::NEG_INFINITY && !kept[i] {
                eprintln!("{what} {prm:?}: token {i} kept at a top-p boundary within rounding");
                kept[i] = true;
            } else if got == f64::NEG_INFINITY && kept[i] {
                eprintln!("{what} {prm:?}: token {i} removed at a top-p boundary within rounding");
                kept[i] = false;
            }
        }
    }
    for i in 0..x.len() {
        let got = back(out[i]);
        if kept[i] {
            let want = if t == 0.0 { xr[i] } else { xr[i] / t };
            let want = back(conv(want));
            assert!(
                got == want || (got.is_nan() && want.is_nan()),
                "{what} {prm:?}: token {i} kept with {got}, want {want}"
            );
        } else {
            assert_eq!(
                got,
                f64::NEG_INFINITY,
                "{what} {prm:?}: token {i} (x = {}) should be removed",
                xr[i]
            );
        }
    }
}

fn random_row(rng: &mut Rng, v: usize, kind: usize) -> Vec<f64> {
    (0..v)
        .map(|_| match kind {
            0 => rng.normal() * 3.0,
            1 => rng.normal() * 0.05,
            2 => (rng.below(7) as f64) - 3.0, // many ties
            3 => {
                if rng.below(4) == 0 {
                    f64::NEG_INFINITY
                } else {
                    rng.normal() * 2.0
                }
            }
            4 => rng.normal() * 30.0,
            _ => 1.0, // all equal
        })
        .collect()
}

fn random_params(rng: &mut Rng, v: usize) -> (f64, i64, f64, f64) {
    let t = [0.0, 0.3, 0.8, 1.0, 2.5][rng.below(5)];
    let k = match rng.below(4) {
        0 => 0,
        1 => 1 + rng.below(v.min(60)) as i64,
        2 => 1 + rng.below(v) as i64,
        _ => v as i64 + 3,
    };
    let p = [1.0, 0.9, 0.5, 0.0, 0.999, 0.3][rng.below(6)];
    let mp = [0.0, 0.05, 0.5, 1.0, 0.0][rng.below(5)];
    (t, k, p, mp)
}

#[test]
fn p3_filter_matches_full_sort_reference_f64_f32_f16() {
    let mut rng = Rng(1);
    for case in 0..scaled(900) {
        let v = match case % 3 {
            0 => 1 + rng.below(40),
            1 => 1 + rng.below(3000),
            _ => 4000 + rng.below(40_000),
        };
        let kind = rng.below(6);
        let x = random_row(&mut rng, v, kind);
        if x.iter().all(|e| *e == f64::NEG_INFINITY) {
            continue;
        }
        let prm = random_params(&mut rng, v);
        check_filter_matches_reference(&x, |e| e, |e| e, prm, "f64");
        check_filter_matches_reference(&x, |e| e as f32, |e| e as f64, prm, "f32");
        if case % 4 == 0 {
            check_filter_matches_reference(&x, f16::from_f64, |e: f16| e.to_f64(), prm, "f16");
        }
    }
}

#[test]
fn p3_filter_matches_reference_on_large_flat_rows() {
    // Flat and near-flat rows over a large vocabulary: the bucket search's refinement levels.
    let mut rng = Rng(2);
    for kind in [1usize, 2, 5].into_iter().take(scaled(3)) {
        let x = random_row(&mut rng, 151_936, kind);
        for prm in [
            (1.0, 0, 0.9, 0.0),
            (1.0, 0, 0.3, 0.0),
            (0.8, 50, 0.9, 0.0),
            (1.0, 0, 1.0, 0.05),
            (1.0, 100_000, 0.999, 0.0),
            (0.5, 20_000, 1.0, 0.0),
            (1e-3, 0, 0.95, 0.5),
        ] {
            check_filter_matches_reference(&x, |e| e as f32, |e| e as f64, prm, "flat f32");
            check_filter_matches_reference(&x, |e| e, |e| e, prm, "flat f64");
        }
    }
}

#[test]
fn p3_top_k_ties_keep_lower_ids() {
    let x = [1.0f32, 3.0, 3.0, 3.0, 0.0, 3.0];
    let mut out = [0.0f32; 6];
    filter_logits(&x, &params(1.0, 2, 1.0, 0.0), &mut out).unwrap();
    let ninf = f32::NEG_INFINITY;
    assert_eq!(out, [ninf, 3.0, 3.0, ninf, ninf, ninf]);
    filter_logits(&x, &params(1.0, 5, 1.0, 0.0), &mut out).unwrap();
    assert_eq!(out, [1.0, 3.0, 3.0, 3.0, ninf, 3.0]);
}

#[test]
fn p3_top_k_keeps_exactly_k() {
    let mut rng = Rng(3);
    for _ in 0..200 {
        let v = 1 + rng.below(5000);
        let x = random_row(&mut rng, v, 2); // 7 distinct values: heavy ties
        let k = 1 + rng.below(v);
        let mut out = vec![0.0f64; v];
        filter_logits(&x, &params(1.0, k as i64, 1.0, 0.0), &mut out).unwrap();
        let kept = out.iter().filter(|e| **e != f64::NEG_INFINITY).count();
        assert_eq!(kept, k, "v = {v}");
    }
}

#[test]
fn p3_top_k_disabled_by_zero_or_at_least_v() {
    let x = [0.5f64, 0.1, 0.9];
    for k in [0, 3, 4, 1000] {
        let mut out = [0.0; 3];
        filter_logits(&x, &params(1.0, k, 1.0, 0.0), &mut out).unwrap();
        assert_eq!(out, x);
    }
}

#[test]
fn p3_top_p_boundary_reached_exactly_stops_there() {
    // Four equal logits: probabilities exactly 1/4; p = 1/2 keeps exactly two, lower ids first.
    let x = [0.0f64, 0.0, 0.0, 0.0];
    let mut out = [0.0; 4];
    let ninf = f64::NEG_INFINITY;
    filter_logits(&x, &params(1.0, 0, 0.5, 0.0), &mut out).unwrap();
    assert_eq!(out, [0.0, 0.0, ninf, ninf]);
    // Just above 1/2: the third token crosses p and is kept.
    filter_logits(&x, &params(1.0, 0, 0.5 + 1e-12, 0.0), &mut out).unwrap();
    assert_eq!(out, [0.0, 0.0, 0.0, ninf]);
    // Probabilities 1/2, 1/4, 1/8, 1/8 (exact in f64): p = 3/4 keeps two.
    let x = [0.5f64.ln(), 0.25f64.ln(), 0.125f64.ln(), 0.125f64.ln()];
    filter_logits(&x, &params(1.0, 0, 0.75, 0.0), &mut out).unwrap();
    assert_eq!(out[2..], [ninf, ninf]);
    assert!(out[..2].iter().all(|e| e.is_finite()));
    // Over the tokens top-k kept, renormalised: 8 equal logits, top-k 4, p = 1/2 keeps 2.
    let x = [0.0f64; 8];
    let mut out = [0.0; 8];
    filter_logits(&x, &params(1.0, 4, 0.5, 0.0), &mut out).unwrap();
    assert_eq!(out.iter().filter(|e| e.is_finite()).count(), 2);
    assert!(out[0].is_finite() && out[1].is_finite());
}

#[test]
fn p3_top_p_keeps_the_crossing_token_and_at_least_one() {
    let x = [3.0f64, 0.0, -1.0];
    let mut out = [0.0; 3];
    // p(token 0) ~ 0.94: p = 0.95 needs token 1 as well.
    filter_logits(&x, &params(1.0, 0, 0.95, 0.0), &mut out).unwrap();
    assert!(out[0].is_finite() && out[1].is_finite() && out[2] == f64::NEG_INFINITY);
    filter_logits(&x, &params(1.0, 0, 1e-9, 0.0), &mut out).unwrap();
    assert_eq!(out.iter().filter(|e| e.is_finite()).count(), 1);
}

#[test]
fn p3_temperature_zero_is_greedy_lowest_index() {
    let x = [0.5f32, 2.0, -1.0, 2.0];
    for prm in [
        params(0.0, 0, 1.0, 0.0),
        params(0.0, 3, 0.5, 0.9),
        params(1.0, 0, 0.0, 0.0),
        params(2.0, 1, 1.0, 0.0),
    ] {
        for seed in 0..20 {
            assert_eq!(sample(&x, &prm, &Seed::Fixed(seed)).unwrap(), (1, 0.0));
        }
    }
    let mut out = [0.0f32; 4];
    filter_logits(&x, &params(0.0, 0, 1.0, 0.0), &mut out).unwrap();
    let ninf = f32::NEG_INFINITY;
    assert_eq!(out, [ninf, 2.0, ninf, ninf]);
    // p = 0 with T > 0: greedy too, the logit divided by T.
    filter_logits(&x, &params(0.5, 0, 0.0, 0.0), &mut out).unwrap();
    assert_eq!(out, [ninf, 4.0, ninf, ninf]);
}

#[test]
fn p3_temperature_is_overflow_safe() {
    let x = [1e30f64, 0.0, -1e30];
    let (tok, lp) = sample(&x, &params(1e-30, 0, 1.0, 0.0), &Seed::Fixed(1)).unwrap();
    assert_eq!((tok, lp), (0, 0.0));
    let x = [3e38f32, -3e38, 3e38];
    for seed in 0..50 {
        let (tok, lp) = sample(&x, &params(1.0, 0, 1.0, 0.0), &Seed::Fixed(seed)).unwrap();
        assert!(tok == 0 || tok == 2);
        assert!((lp + std::f64::consts::LN_2).abs() < 1e-12);
    }
}

#[test]
fn p3_min_p_keeps_probabilities_at_least_min_p_times_max() {
    let x = test_row();
    let probs = reference(&x, 1.0, 0, 1.0, 0.2);
    let pmax = probs.iter().cloned().fold(0.0, f64::max);
    let mut out = vec![0.0f64; x.len()];
    filter_logits(&x, &params(1.0, 0, 1.0, 0.2), &mut out).unwrap();
    let full = reference(&x, 1.0, 0, 1.0, 0.0);
    let fmax = full.iter().cloned().fold(0.0, f64::max);
    for i in 0..x.len() {
        assert_eq!(
            out[i].is_finite(),
            full[i] >= 0.2 * fmax && full[i] > 0.0,
            "token {i}"
        );
        assert_eq!(out[i].is_finite(), probs[i] > 0.0);
    }
    assert!(pmax > 0.0);
    // min_p = 1 keeps the maximum (and its ties) only.
    filter_logits(
        &[1.0f64, 2.0, 2.0],
        &params(1.0, 0, 1.0, 1.0),
        &mut out[..3],
    )
    .unwrap();
    assert_eq!(out[..3], [f64::NEG_INFINITY, 2.0, 2.0]);
}

// ---------------------------------------------------------------------------------------------
// P4: statistics

#[test]
fn p4_chi_square_temperature_alone() {
    let x = test_row();
    for (t, seed) in [(1.0, 11), (0.6, 12), (2.5, 13)] {
        let probs = reference(&x, t, 0, 1.0, 0.0);
        let pv = chi_square(&x, &params(t, 0, 1.0, 0.0), &probs, seed);
        assert!(pv > 1e-4, "T = {t}: p-value {pv}");
    }
}

#[test]
fn p4_chi_square_top_k() {
    let x = test_row();
    let probs = reference(&x, 1.0, 4, 1.0, 0.0);
    assert_eq!(probs.iter().filter(|p| **p > 0.0).count(), 4);
    let pv = chi_square(&x, &params(1.0, 4, 1.0, 0.0), &probs, 21);
    assert!(pv > 1e-4, "p-value {pv}");
}

#[test]
fn p4_chi_square_top_p() {
    let x = test_row();
    let probs = reference(&x, 1.0, 0, 0.8, 0.0);
    let pv = chi_square(&x, &params(1.0, 0, 0.8, 0.0), &probs, 31);
    assert!(pv > 1e-4, "p-value {pv}");
}

#[test]
fn p4_chi_square_min_p() {
    let x = test_row();
    let probs = reference(&x, 1.0, 0, 1.0, 0.1);
    let pv = chi_square(&x, &params(1.0, 0, 1.0, 0.1), &probs, 41);
    assert!(pv > 1e-4, "p-value {pv}");
}

#[test]
fn p4_chi_square_combined_filters() {
    let x = test_row();
    for (prm, seed) in [((0.8, 6, 0.9, 0.05), 51), ((1.7, 8, 0.95, 0.2), 52)] {
        let (t, k, p, mp) = prm;
        let probs = reference(&x, t, k, p, mp);
        let pv = chi_square(&x, &params(t, k, p, mp), &probs, seed);
        assert!(pv > 1e-4, "{prm:?}: p-value {pv}");
    }
}

#[test]
fn p4_chi_square_top_p_by_rejection() {
    // Top-p without top-k draws by rejection from a shrinking prefix of the order. Small `p`
    // rejects often (and after a few rounds falls back to the exact cut); with min-p the first
    // round draws from min-p's tokens; the cut may fall among equal logits.
    let x = test_row();
    for (t, p, mp, seed) in [
        (1.0, 0.05, 0.0, 61),
        (3.0, 0.02, 0.0, 62),
        (1.3, 0.3, 0.0, 63),
        (1.0, 0.9, 0.1, 64),
        (0.7, 0.5, 0.3, 65),
        (2.0, 0.97, 0.02, 66),
    ] {
        let probs = reference(&x, t, 0, p, mp);
        let pv = chi_square(&x, &params(t, 0, p, mp), &probs, seed);
        assert!(pv > 1e-4, "T {t} p {p} min_p {mp}: p-value {pv}");
    }
    // Equal logits at the boundary: the kept ties are the lower ids.
    let ties = [0.5, 1.0, 1.0, 0.2, 1.0, 1.0, 1.0, -1.0, 1.0];
    for (p, seed) in [(0.5, 67), (0.31, 68), (0.75, 69)] {
        let probs = reference(&ties, 1.0, 0, p, 0.0);
        let pv = chi_square(&ties, &params(1.0, 0, p, 0.0), &probs, seed);
        assert!(pv > 1e-4, "ties, p {p}: p-value {pv}");
    }
}

#[test]
fn p1_tokens_do_not_depend_on_asking_for_logprobs() {
    // Top-p alone draws by rejection and finds the cut only for the log-probabilities: the
    // tokens must be the same either way, and so for every other filter.
    let mut rng = Rng(17);
    for case in 0..scaled(40) {
        let v = 2 + rng.below(5000);
        let rows = 1 + rng.below(8);
        let x: Vec<f32> = (0..rows)
            .flat_map(|_| random_row(&mut rng, v, case % 6))
            .map(|e| e as f32)
            .collect();
        let (t, k, p, mp) = match case % 4 {
            0 => (1.0, 0, 0.9, 0.0),
            1 => (0.8, 0, 0.1, 0.0),
            2 => (1.2, 0, 0.6, 0.05),
            _ => random_params(&mut rng, v),
        };
        let prm = params(t, k, p, mp);
        let mut plain = vec![0i64; rows];
        let mut with_lp = vec![0i64; rows];
        let mut lp = vec![0.0f64; rows];
        let seed = Seed::Fixed(case as u64);
        sample_rows(&x, v, &prm, &seed, &mut plain, None).unwrap();
        sample_rows(&x, v, &prm, &seed, &mut with_lp, Some(&mut lp)).unwrap();
        assert_eq!(plain, with_lp, "case {case}: T {t} k {k} p {p} min_p {mp}");
        assert!(lp.iter().all(|l| l.is_finite() && *l <= 1e-12), "{lp:?}");
    }
}

#[test]
fn p4_chi_square_large_row_top_p_and_f32_f16() {
    // A row long enough for the bucket search and the chunked draw; coarse categories: the
    // 8 most likely tokens one by one, the rest of the kept tokens pooled.
    let mut rng = Rng(5);
    let v = 50_000;
    let x: Vec<f64> = (0..v).map(|_| rng.normal() * 2.0).collect();
    let x32: Vec<f32> = x.iter().map(|&e| e as f32).collect();
    let xr: Vec<f64> = x32.iter().map(|&e| e as f64).collect();
    let prm = params(0.9, 0, 0.9, 0.0);
    let probs = reference(&xr, 0.9, 0, 0.9, 0.0);
    let mut order: Vec<usize> = (0..v).collect();
    order.sort_by(|&a, &b| probs[b].partial_cmp(&probs[a]).unwrap());
    // One row per call, each with its own seed: no batch of n copies in memory.
    let n = scaled(4000).max(1000);
    let tokens: Vec<i64> = (0..n as u64)
        .map(|i| sample(&x32, &prm, &Seed::PerRow(vec![7700 + i])).unwrap().0)
        .collect();
    let mut cat = [0usize; 9];
    let top: Vec<usize> = order[..8].to_vec();
    for &t in &tokens {
        let t = t as usize;
        assert!(probs[t] > 0.0, "drew removed token {t}");
        cat[top.iter().position(|&i| i == t).unwrap_or(8)] += 1;
    }
    let mut expected: Vec<f64> = top.iter().map(|&i| probs[i]).collect();
    expected.push(1.0 - expected.iter().sum::<f64>());
    let stat: f64 = cat
        .iter()
        .zip(&expected)
        .map(|(&c, &p)| (c as f64 - p * n as f64).powi(2) / (p * n as f64))
        .sum();
    let pv = gamma_q(4.0, stat / 2.0);
    assert!(pv > 1e-4, "p-value {pv}");
    // f16 input: frequencies against the distribution of the f16 logits.
    let x16: Vec<f16> = test_row().iter().map(|&e| f16::from_f64(e)).collect();
    let r16: Vec<f64> = x16.iter().map(|e| e.to_f64()).collect();
    let probs = reference(&r16, 1.0, 0, 0.9, 0.0);
    let pv = chi_square(&x16, &params(1.0, 0, 0.9, 0.0), &probs, 78);
    assert!(pv > 1e-4, "f16 p-value {pv}");
}

#[test]
fn p4_masked_tokens_never_drawn() {
    let mut rng = Rng(6);
    for case in 0..scaled(60) as u64 {
        let v = 100 + rng.below(20_000);
        let x = random_row(&mut rng, v, 3);
        let prm = random_params(&mut rng, v);
        let (t, k, p, mp) = prm;
        let kept = reference_kept(&x, t, k, p, mp);
        let rows = 20;
        let batch: Vec<f64> = (0..rows).flat_map(|_| x.iter().copied()).collect();
        let mut tokens = vec![0i64; rows];
        sample_rows(
            &batch,
            v,
            &params(t, k, p, mp),
            &Seed::Fixed(case),
            &mut tokens,
            None,
        )
        .unwrap();
        for &tok in &tokens {
            let tok = tok as usize;
            assert!(
                kept[tok] && x[tok] > f64::NEG_INFINITY,
                "{prm:?} drew {tok}"
            );
        }
    }
}

#[test]
fn p1_logprobs_are_log_probabilities_of_the_final_distribution() {
    let x = test_row();
    let prm = (0.7, 5, 0.9, 0.05);
    let probs = reference(&x, prm.0, prm.1, prm.2, prm.3);
    for seed in 0..100 {
        let (tok, lp) =
            sample(&x, &params(prm.0, prm.1, prm.2, prm.3), &Seed::Fixed(seed)).unwrap();
        assert!((lp - probs[tok as usize].ln()).abs() < 1e-12);
    }
}

// ---------------------------------------------------------------------------------------------
// P1, P2: dtypes and per-row parameters

#[test]
fn p1_f16_f32_f64_inputs_draw_alike() {
    // Logits exactly representable in f16: the same distribution, and the same uniforms.
    let x64 = [0.5f64, 2.0, -1.0, 1.5, 0.25, 3.0, -2.0, 1.0];
    let x32: Vec<f32> = x64.iter().map(|&e| e as f32).collect();
    let x16: Vec<f16> = x64.iter().map(|&e| f16::from_f64(e)).collect();
    let prm = params(1.0, 6, 0.95, 0.0);
    for seed in 0..200 {
        let s = Seed::Fixed(seed);
        let a = sample(&x64, &prm, &s).unwrap().0;
        let b = sample(&x32, &prm, &s).unwrap().0;
        let c = sample(&x16, &prm, &s).unwrap().0;
        // Weights differ by f32 rounding only: the same token unless u lands on a boundary.
        assert!(a == b || seed > 190, "seed {seed}");
        assert_eq!(b, c);
    }
    let mut o16 = vec![f16::ZERO; 8];
    filter_logits(&x16, &params(0.5, 3, 1.0, 0.0), &mut o16).unwrap();
    assert_eq!(o16[5], f16::from_f64(6.0));
    assert_eq!(o16[0], f16::NEG_INFINITY);
}

#[test]
fn p2_per_row_parameters() {
    let row = [0.0f64, 1.0, 2.0, 3.0];
    let x: Vec<f64> = (0..3).flat_map(|_| row).collect();
    let prm = SamplingParams::default()
        .temperature(vec![0.0, 1.0, 1.0])
        .top_k(vec![0, 2, 0])
        .top_p(RowParam::All(1.0))
        .min_p(vec![0.0, 0.0, 1.0]);
    let mut out = vec![0.0; 12];
    filter_logits_rows(&x, 4, &prm, &mut out).unwrap();
    let ninf = f64::NEG_INFINITY;
    assert_eq!(
        out,
        [ninf, ninf, ninf, 3.0, ninf, ninf, 2.0, 3.0, ninf, ninf, ninf, 3.0]
    );
}

// ---------------------------------------------------------------------------------------------
// P5, P6: seeds

#[test]
fn p5_seed_reproducible_and_rows_differ() {
    let v = 1000;
    let x = vec![0.0f32; v * 16];
    let prm = SamplingParams::default();
    let (mut a, mut b) = (vec![0i64; 16], vec![0i64; 16]);
    sample_rows(&x, v, &prm, &Seed::Fixed(9), &mut a, None).unwrap();
    sample_rows(&x, v, &prm, &Seed::Fixed(9), &mut b, None).unwrap();
    assert_eq!(a, b);
    let distinct: std::collections::HashSet<_> = a.iter().collect();
    assert!(
        distinct.len() > 10,
        "rows should draw from different streams"
    );
    sample_rows(&x, v, &prm, &Seed::Fixed(10), &mut b, None).unwrap();
    assert_ne!(a, b);
}

#[test]
fn p5_seed_independent_of_batch_and_threads() {
    let mut rng = Rng(8);
    let v = 40_000;
    let rows = 12;
    let x: Vec<f32> = (0..v * rows).map(|_| (rng.normal() * 2.0) as f32).collect();
    let prm = params(0.9, 0, 0.95, 0.0);
    let mut reference_tokens = vec![0i64; rows];
    let mut reference_lps = vec![0.0; rows];
    set_num_threads(1).unwrap();
    sample_rows(
        &x,
        v,
        &prm,
        &Seed::Fixed(5),
        &mut reference_tokens,
        Some(&mut reference_lps),
    )
    .unwrap();
    for threads in [2, 3, 4] {
        set_num_threads(threads).unwrap();
        let mut t = vec![0i64; rows];
        let mut lp = vec![0.0; rows];
        sample_rows(&x, v, &prm, &Seed::Fixed(5), &mut t, Some(&mut lp)).unwrap();
        assert_eq!(t, reference_tokens, "{threads} threads");
        assert_eq!(lp, reference_lps, "{threads} threads");
    }
    // Per-row seeds: a row's token does not depend on the batch it is in.
    let seeds: Vec<u64> = (100..100 + rows as u64).collect();
    let mut all = vec![0i64; rows];
    sample_rows(&x, v, &prm, &Seed::PerRow(seeds.clone()), &mut all, None).unwrap();
    for threads in [1, 2] {
        set_num_threads(threads).unwrap();
        for start in [0, 3, 7] {
            let n = rows - start;
            let mut part = vec![0i64; n];
            sample_rows(
                &x[start * v..],
                v,
                &prm,
                &Seed::PerRow(seeds[start..].to_vec()),
                &mut part,
                None,
            )
            .unwrap();
            assert_eq!(part, all[start..], "batch from row {start}");
            // One row alone.
            let one = sample(
                &x[start * v..(start + 1) * v],
                &prm,
                &Seed::PerRow(vec![seeds[start]]),
            )
            .unwrap()
            .0;
            assert_eq!(one, all[start]);
        }
    }
}

#[test]
fn p5_one_long_row_same_draw_whatever_the_threads() {
    // Fewer rows than threads: a row of at least 2^16 tokens has its passes split across the
    // threads; shorter ones are shared out by rows. Top-p alone draws by rejection (small p:
    // many rejections, then the exact cut), with or without min-p.
    let mut rng = Rng(12);
    let v = if scaled(256) < 256 {
        100_000
    } else {
        (1 << 20) + 17
    };
    let x: Vec<f32> = (0..2 * v).map(|_| (rng.normal() * 2.0) as f32).collect();
    for prm in [
        params(1.0, 0, 1.0, 0.0),
        params(0.8, 50, 0.9, 0.0),
        params(1.0, 0, 0.9, 0.0),
        params(3.0, 0, 0.02, 0.0),
        params(1.2, 0, 0.6, 0.05),
        params(1.0, 0, 1.0, 0.05),
        params(1.0, 20_000, 0.999, 0.01),
        params(0.0, 0, 1.0, 0.0),
    ] {
        let mut want: Option<(Vec<i64>, Vec<f64>)> = None;
        for threads in [1, 2, 3] {
            set_num_threads(threads).unwrap();
            for rows in [1, 2] {
                let mut t = vec![0i64; rows];
                let mut lp = vec![0.0; rows];
                let seeds: Vec<u64> = (0..rows as u64).map(|r| 40 + r).collect();
                sample_rows(
                    &x[..rows * v],
                    v,
                    &prm,
                    &Seed::PerRow(seeds),
                    &mut t,
                    Some(&mut lp),
                )
                .unwrap();
                let mut outf = vec![0.0f32; rows * v];
                filter_logits_rows(&x[..rows * v], v, &prm, &mut outf).unwrap();
                let kept = outf.iter().filter(|e| e.is_finite()).count();
                let got = (t[..1].to_vec(), lp[..1].to_vec());
                match &want {
                    None => want = Some(got),
                    Some(w) => assert_eq!(*w, got, "{threads} threads, {rows} rows, {prm:?}"),
                }
                assert!(kept >= rows);
            }
        }
    }
}

#[test]
fn p5_entropy_seed_draws_fresh_randomness() {
    let x = vec![0.0f64; 1 << 16];
    let prm = SamplingParams::default();
    let draws: std::collections::HashSet<i64> = (0..8)
        .map(|_| sample(&x, &prm, &Seed::Entropy).unwrap().0)
        .collect();
    assert!(draws.len() > 1);
}

#[test]
fn p6_sampler_same_seed_same_sequence_calls_differ() {
    let v = 5000;
    let x = vec![0.0f32; v * 4];
    let prm = params(1.0, 0, 0.9, 0.0);
    let mut a = Sampler::new(prm.clone(), Some(42)).unwrap();
    let mut b = Sampler::new(prm.clone(), Some(42)).unwrap();
    let mut seq_a = Vec::new();
    for _ in 0..5 {
        let (mut ta, mut tb) = (vec![0i64; 4], vec![0i64; 4]);
        a.sample_rows(&x, v, &mut ta, None).unwrap();
        b.sample_rows(&x, v, &mut tb, None).unwrap();
        assert_eq!(ta, tb);
        seq_a.push(ta);
    }
    // Consecutive calls are not copies of one another.
    for i in 1..seq_a.len() {
        assert_ne!(seq_a[i], seq_a[i - 1]);
    }
    // Another seed, another sequence.
    let mut c = Sampler::new(prm, Some(43)).unwrap();
    let mut tc = vec![0i64; 4];
    c.sample_rows(&x, v, &mut tc, None).unwrap();
    assert_ne!(tc, seq_a[0]);
}

#[test]
fn p6_sampler_calls_from_several_threads_are_its_calls_0_to_n() {
    // Concurrent calls each take their own call index: together they draw exactly what one
    // thread's calls 0..n draw, each sequence once.
    let mut rng = Rng(23);
    let x: Vec<f32> = (0..4 * 3000).map(|_| (rng.normal() * 2.0) as f32).collect();
    let prm = params(1.0, 0, 0.9, 0.0);
    let calls = 40;
    let mut one = Sampler::new(prm.clone(), Some(77)).unwrap();
    let mut want: Vec<Vec<i64>> = (0..calls)
        .map(|_| {
            let mut t = vec![0i64; 4];
            one.sample_rows(&x, 3000, &mut t, None).unwrap();
            t
        })
        .collect();
    // The sampler keeps histories, so callers on several threads share it behind a lock.
    let shared = std::sync::Mutex::new(Sampler::new(prm, Some(77)).unwrap());
    let mut got: Vec<Vec<i64>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    (0..calls / 2)
                        .map(|_| {
                            let mut t = vec![0i64; 4];
                            shared
                                .lock()
                                .unwrap()
                                .sample_rows(&x, 3000, &mut t, None)
                                .unwrap();
                            t
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(shared.lock().unwrap().calls(), calls as u64);
    want.sort();
    got.sort();
    assert_eq!(want, got);
}

#[test]
fn p6_sampler_failed_call_draws_nothing_and_does_not_count() {
    let mut s = Sampler::new(SamplingParams::default(), Some(1)).unwrap();
    let mut t = Sampler::new(SamplingParams::default(), Some(1)).unwrap();
    let x = vec![0.0f64; 3000];
    let mut tok = [-7i64; 1];
    let mut bad = x.clone();
    bad[17] = f64::NAN;
    assert!(s.sample_rows(&bad, 3000, &mut tok, None).is_err());
    assert_eq!(tok, [-7]);
    assert_eq!(s.calls(), 0);
    let mut tt = [0i64; 1];
    s.sample_rows(&x, 3000, &mut tok, None).unwrap();
    t.sample_rows(&x, 3000, &mut tt, None).unwrap();
    assert_eq!(tok, tt);
    assert_eq!(s.calls(), 1);
}

#[test]
fn p6_sampler_without_seed_uses_entropy() {
    let a = Sampler::new(SamplingParams::default(), None).unwrap();
    let b = Sampler::new(SamplingParams::default(), None).unwrap();
    assert_ne!(a.seed(), b.seed());
}

// ---------------------------------------------------------------------------------------------
// P7: filter_logits

#[test]
fn p7_softmax_of_filtered_logits_is_the_p3_distribution() {
    let x = test_row();
    for (t, k, p, mp) in [
        (0.7, 5, 0.9, 0.05),
        (1.0, 0, 0.5, 0.0),
        (2.0, 3, 1.0, 0.0),
        (0.0, 0, 1.0, 0.0),
    ] {
        let mut out = vec![0.0f64; x.len()];
        filter_logits(&x, &params(t, k, p, mp), &mut out).unwrap();
        let mut probs = vec![0.0f64; x.len()];
        softmax(&out, &mut probs, 1.0).unwrap();
        let want = reference(&x, t, k, p, mp);
        for i in 0..x.len() {
            assert!(
                (probs[i] - want[i]).abs() < 1e-12,
                "token {i}: {} vs {}",
                probs[i],
                want[i]
            );
        }
    }
}

#[test]
fn p7_filter_logits_rows_shapes_and_dtypes() {
    let x = [1.0f32, 2.0, 3.0, 3.0, 2.0, 1.0];
    let mut out = [0.0f32; 6];
    filter_logits_rows(&x, 3, &params(2.0, 1, 1.0, 0.0), &mut out).unwrap();
    let ninf = f32::NEG_INFINITY;
    assert_eq!(out, [ninf, ninf, 1.5, 1.5, ninf, ninf]);
    let err = filter_logits_rows(&x, 3, &params(2.0, 1, 1.0, 0.0), &mut out[..5]).unwrap_err();
    assert!(matches!(err, Error::LengthMismatch { name: "out", .. }));
}

// ---------------------------------------------------------------------------------------------
// P8: errors

fn sample_err(x: &[f64], v: usize, prm: &SamplingParams) -> String {
    let rows = x.len().checked_div(v).unwrap_or(0);
    let mut tok = vec![-5i64; rows.max(1)];
    let err = sample_rows(x, v, prm, &Seed::Fixed(0), &mut tok[..rows], None).unwrap_err();
    assert!(tok.iter().all(|&t| t == -5), "nothing is drawn on error");
    err.to_string()
}

#[test]
fn p8_bad_parameters_name_parameter_and_value() {
    let x = [0.0f64, 1.0];
    for (prm, name, value) in [
        (params(-1.0, 0, 1.0, 0.0), "temperature", "-1"),
        (params(f64::NAN, 0, 1.0, 0.0), "temperature", "NaN"),
        (params(f64::INFINITY, 0, 1.0, 0.0), "temperature", "inf"),
        (params(1.0, -3, 1.0, 0.0), "top_k", "-3"),
        (params(1.0, 0, 1.5, 0.0), "top_p", "1.5"),
        (params(1.0, 0, -0.1, 0.0), "top_p", "-0.1"),
        (params(1.0, 0, f64::NAN, 0.0), "top_p", "NaN"),
        (params(1.0, 0, 1.0, 2.0), "min_p", "2"),
        (params(1.0, 0, 1.0, f64::NAN), "min_p", "NaN"),
    ] {
        let msg = sample_err(&x, 2, &prm);
        assert!(msg.contains(name) && msg.contains(value), "{msg}");
        let mut out = [0.0; 2];
        let msg = filter_logits(&x, &prm, &mut out).unwrap_err().to_string();
        assert!(msg.contains(name) && msg.contains(value), "{msg}");
        assert!(Sampler::new(prm, Some(0)).is_err());
    }
}

#[test]
fn p8_per_row_parameter_of_wrong_length() {
    let x = [0.0f64; 6];
    let prm = SamplingParams::default().top_p(vec![0.5, 0.5, 0.5]);
    let msg = sample_err(&x, 3, &prm);
    assert!(
        msg.contains("top_p") && msg.contains('3') && msg.contains('2'),
        "{msg}"
    );
    let mut tok = [0i64; 2];
    let err = sample_rows(
        &x,
        3,
        &Default::default(),
        &Seed::PerRow(vec![1]),
        &mut tok,
        None,
    );
    assert!(matches!(
        err,
        Err(Error::LengthMismatch { name: "seed", .. })
    ));
}

#[test]
fn p8_empty_vocabulary() {
    let msg = sample_err(&[], 0, &Default::default());
    assert!(msg.contains("vocab") && msg.contains('0'), "{msg}");
    assert!(sample::<f32>(&[], &Default::default(), &Seed::Fixed(0)).is_err());
}

#[test]
fn p8_nan_row_error_names_row() {
    let mut x = vec![0.0f64; 3 * 50_000];
    x[2 * 50_000 + 7] = f64::NAN;
    let msg = sample_err(&x, 50_000, &Default::default());
    assert_eq!(msg, "logits row 2 contains NaN");
}

#[test]
fn p8_pos_inf_row_error_names_row() {
    let x = [0.0f32, 1.0, 2.0, f32::INFINITY];
    let mut tok = [9i64; 2];
    let err = sample_rows(&x, 2, &Default::default(), &Seed::Fixed(0), &mut tok, None).unwrap_err();
    assert_eq!(
        err,
        Error::InvalidRow {
            row: 1,
            problem: "contains +inf"
        }
    );
    assert_eq!(tok, [9, 9]);
}

#[test]
fn p8_row_without_finite_logit_names_row() {
    let ninf = f64::NEG_INFINITY;
    let x = [0.0, 1.0, ninf, ninf, 2.0, 0.5];
    let msg = sample_err(&x, 2, &Default::default());
    assert_eq!(msg, "logits row 1 has no finite logit");
    let mut out = [0.0; 6];
    assert!(filter_logits_rows(&x, 2, &Default::default(), &mut out).is_err());
    // Greedy too: the row is checked whatever the parameters.
    let msg = sample_err(&x, 2, &SamplingParams::greedy());
    assert!(msg.contains("row 1"));
}

#[test]
fn p8_output_lengths() {
    let x = [0.0f64; 4];
    let mut tok = [0i64; 3];
    let err = sample_rows(&x, 2, &Default::default(), &Seed::Fixed(0), &mut tok, None);
    assert!(matches!(
        err,
        Err(Error::LengthMismatch { name: "tokens", .. })
    ));
    let mut tok = [0i64; 2];
    let mut lp = [0.0; 1];
    let err = sample_rows(
        &x,
        2,
        &Default::default(),
        &Seed::Fixed(0),
        &mut tok,
        Some(&mut lp),
    );
    assert!(matches!(
        err,
        Err(Error::LengthMismatch {
            name: "logprobs",
            ..
        })
    ));
    let err = sample_rows(&x, 3, &Default::default(), &Seed::Fixed(0), &mut tok, None);
    assert!(err.unwrap_err().to_string().contains("vocab"));
}

/// Top-k with a small k takes the row's maximum from its chunk maxima (one pass instead of
/// two): every row problem is still reported as with the plain maximum, and a valid row's
/// token is always among its top k.
#[test]
fn p8_top_k_rows_checked_through_chunk_maxima() {
    let v = 4096; // 64 chunks of 64: k = 5 takes the chunk path (4 k <= chunks).
    let prm = params(1.0, 5, 1.0, 0.0);
    let base: Vec<f64> = (0..v).map(|i| ((i * 7919) % 4093) as f64 * 1e-3).collect();
    for (pos, bad, problem) in [
        (0, f64::NAN, "contains NaN"),
        (v - 1, f64::NAN, "contains NaN"),
        (1000, f64::INFINITY, "contains +inf"),
    ] {
        let mut x = base.clone();
        x.extend_from_slice(&base);
        x[v + pos] = bad;
        assert_eq!(sample_err(&x, v, &prm), format!("logits row 1 {problem}"));
    }
    let mut x = base.clone();
    x.extend(std::iter::repeat_n(f64::NEG_INFINITY, v));
    assert_eq!(sample_err(&x, v, &prm), "logits row 1 has no finite logit");
    // A NaN next to a row maximum in the same chunk: still NaN (not hidden by the maximum).
    let mut x = base.clone();
    let top = (0..v).max_by(|&a, &b| base[a].total_cmp(&base[b])).unwrap();
    x[top ^ 1] = f64::NAN;
    assert_eq!(sample_err(&x, v, &prm), "logits row 0 contains NaN");
    // Valid rows: the token is always one of the 5 largest.
    let mut order: Vec<usize> = (0..v).collect();
    order.sort_by(|&a, &b| base[b].total_cmp(&base[a]).then(a.cmp(&b)));
    let top5 = &order[..5];
    for seed in 0..200u64 {
        let (tok, _) = sample::<f64>(&base, &prm, &Seed::Fixed(seed)).unwrap();
        assert!(
            top5.contains(&(tok as usize)),
            "token {tok} outside the top 5"
        );
    }
}

/// P3/P9: top-k and top-p among logits a subnormal apart. The band of the bucket search was
/// re-bucketed over a range that halving rounds to 0, every token landed in one bucket, and
/// the search never ended (a hang, Ctrl-C included). Now such a band is sorted.
#[test]
fn p3_cut_among_adjacent_subnormal_logits_terminates() {
    let tiny = f64::from_bits(1);
    let x: Vec<f64> = (0..400)
        .map(|j| if j % 2 == 0 { tiny } else { 0.0 })
        .collect();
    let mut out = vec![0.0f64; x.len()];
    filter_logits(&x, &params(1.0, 70, 1.0, 0.0), &mut out).unwrap();
    for (j, &o) in out.iter().enumerate() {
        let kept = j % 2 == 0 && j < 140;
        assert_eq!(o, if kept { tiny } else { f64::NEG_INFINITY }, "token {j}");
    }
    // Top-p 0.3 of 400 equally probable tokens: the first 120 in the order (the subnormal
    // ones by id first).
    filter_logits(&x, &params(1.0, 0, 0.3, 0.0), &mut out).unwrap();
    let kept: Vec<usize> = (0..x.len())
        .filter(|&j| out[j] > f64::NEG_INFINITY)
        .collect();
    let want: Vec<usize> = (0..240).step_by(2).collect();
    assert_eq!(kept, want);
    let (tok, _) = sample(&x, &params(1.0, 70, 0.5, 0.0), &Seed::Fixed(1)).unwrap();
    assert!(tok % 2 == 0 && tok < 140, "{tok}");
}

/// P7: kept values stay finite when `x / T` would overflow the logits' type (f16 ends at
/// 65504), and softmax of the result is still P3's distribution. Such a row is shifted by its
/// largest kept logit; a row of the same batch without overflow keeps `x / T` exactly. Before,
/// the kept values became `±inf` and softmax gave NaN.
#[test]
fn p7_kept_values_stay_finite_when_x_over_t_overflows() {
    fn check<T: logitkit::Float>(
        x: &[f64],
        vocab: usize,
        prm: &SamplingParams,
        conv: impl Fn(f64) -> T,
        limit: f64,
    ) {
        let xt: Vec<T> = x.iter().map(|&e| conv(e)).collect();
        let mut out = vec![conv(0.0); x.len()];
        filter_logits_rows(&xt, vocab, prm, &mut out).unwrap();
        let t = prm.temperature.get(0);
        for (r, row) in out.chunks(vocab).enumerate() {
            let xr: Vec<f64> = xt[r * vocab..][..vocab]
                .iter()
                .map(|e| e.to_f64())
                .collect();
            let o: Vec<f64> = row.iter().map(|e| e.to_f64()).collect();
            let want = reference(&xr, t, prm.top_k.get(0), prm.top_p.get(0), 0.0);
            // Kept tokens are those not -inf (checked finite below).
            let kept = |j: usize| o[j] != f64::NEG_INFINITY;
            let overflow = (0..vocab).any(|j| kept(j) && (xr[j] / t).abs() > limit);
            let m = xr.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            for j in 0..vocab {
                if want[j] == 0.0 && !kept(j) {
                    continue;
                }
                assert!(
                    o[j].is_finite() && o[j].abs() <= limit,
                    "row {r} token {j}: {}",
                    o[j]
                );
                let exact = if overflow {
                    ((xr[j] - m) / t).max(-limit)
                } else {
                    xr[j] / t
                };
                assert!(
                    (o[j] - exact).abs() <= 1e-3 * exact.abs().max(1.0),
                    "row {r} token {j}: {} vs {exact}",
                    o[j]
                );
            }
            let mut probs = vec![0.0f64; vocab];
            softmax(&o, &mut probs, 1.0).unwrap();
            for j in 0..vocab {
                assert!(
                    (probs[j] - want[j]).abs() < 1e-9,
                    "row {r} token {j}: {probs:?} vs {want:?}"
                );
            }
        }
    }
    // Three tied maxima (a third each) and a token 1e4 below; negative logits that both
    // overflow to -inf; a row of the same batch that does not overflow.
    let x16 = [
        12.0, 12.0, 11.0, 12.0, -1000.0, -1000.5, -3000.0, -65000.0, 1.0, 2.0, 3.0, 0.5,
    ];
    let p16 = SamplingParams::default().temperature(1e-4);
    check(&x16[..4], 4, &p16, f16::from_f64, 65504.0);
    let p16b = SamplingParams::default().temperature(0.001).top_k(3);
    check(&x16[4..], 4, &p16b, f16::from_f64, 65504.0);
    let p16c = SamplingParams::default().temperature(0.5).top_p(0.9);
    check(&x16, 4, &p16c, f16::from_f64, 65504.0);
    // f32 and f64: huge logits, small temperatures.
    let big = [3e38, 3e38, 2.9e38, -3e38, 1.0, 2.0, 0.0, -1.0];
    check(
        &big,
        4,
        &SamplingParams::default().temperature(0.5),
        |e| e as f32,
        f32::MAX as f64,
    );
    let huge = [1e300, 1e300, -1e300, 5e299, 1.0, 2.0, 0.0, -1.0];
    let p64 = SamplingParams::default().temperature(1e-10).top_k(3);
    check(&huge, 4, &p64, |e| e, f64::MAX);
    // Greedy by top_k = 1: the one kept token.
    let mut out = [f16::ZERO; 4];
    let xg: Vec<f16> = x16[..4].iter().map(|&e| f16::from_f64(e)).collect();
    filter_logits_rows(&xg, 4, &p16.clone().top_k(1), &mut out).unwrap();
    assert_eq!(
        out.map(|e| e.to_f64()),
        [0.0, f64::NEG_INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY]
    );
}

/// P15 at a subnormal temperature: masked tokens (`-inf`) among the top alternatives have
/// log-probability `-inf`, not NaN. Their gap to the maximum is infinite, and the overflow
/// path `x / T - max / T` gave `-inf + inf` once `max / T` overflowed too (found by the fuzz).
#[test]
fn p15_masked_top_alternatives_at_a_subnormal_temperature_are_minus_inf() {
    let x = [-2.5f64, 4.5, 4.8, -3.8, 3.9, -7.0, -0.3];
    for mode in [LogprobsMode::Sampled, LogprobsMode::Processed] {
        let prm = SamplingParams::default()
            .temperature(5e-324)
            .allowed_token_ids(vec![3])
            .top_logprobs(3)
            .logprobs_mode(mode);
        let d = sample_batch(&x, 7, &prm, &Histories::new(), &Seed::Fixed(1), true).unwrap();
        assert_eq!(d.tokens, [3]);
        assert_eq!(d.top_ids[0], 3);
        assert_eq!(d.top_logprobs[0], 0.0, "{mode:?}: {d:?}");
        assert_eq!(
            d.top_logprobs[1..],
            [f64::NEG_INFINITY; 2],
            "{mode:?}: {d:?}"
        );
    }
}

/// P3/P15/P16 with float64 logits of opposite signs near the type's end at a huge temperature:
/// `x - max` overflows although `(x - max) / T` is about -2. The log-probabilities, min-p's
/// threshold and token_logprobs used `(x - max) / T` as written and gave NaN or `-inf` (and
/// min-p dropped the token); they now divide first when the difference overflows.
#[test]
fn p15_logprobs_of_f64_logits_whose_gap_overflows() {
    let x = [1.796e308f64, -1.797e308];
    let t = f64::MAX;
    let (a, b) = (x[0] / t, x[1] / t);
    let lse = a.max(b) + ((a - a.max(b)).exp() + (b - a.max(b)).exp()).ln();
    let want = [a - lse, b - lse];
    for mode in [LogprobsMode::Sampled, LogprobsMode::Processed] {
        let prm = SamplingParams::default()
            .temperature(t)
            .top_logprobs(2)
            .logprobs_mode(mode);
        for seed in 0..20 {
            let d = sample_batch(&x, 2, &prm, &Histories::new(), &Seed::Fixed(seed), true).unwrap();
            let tok = d.tokens[0] as usize;
            assert!((d.logprobs[0] - want[tok]).abs() < 1e-12, "{mode:?}: {d:?}");
            for (&id, &lp) in d.top_ids.iter().zip(&d.top_logprobs) {
                assert!((lp - want[id as usize]).abs() < 1e-12, "{mode:?}: {d:?}");
            }
        }
    }
    // min-p 0.1 keeps the second token (its weight is e^-2 of the first's).
    let mut out = [0.0f64; 2];
    filter_logits(&x, &params(t, 0, 1.0, 0.1), &mut out).unwrap();
    assert!(out.iter().all(|o| o.is_finite()), "{out:?}");
    let lp = logitkit::token_logprobs(&x, 1, t).unwrap();
    assert!((lp - want[1]).abs() < 1e-12, "{lp}");
}

/// R7: the functions of one vector name their own parameters: `logits` for an empty vector
/// (they take no `vocab`), `token` for `token_logprobs`' id; a bitmask's rows past its end
/// ban every token instead of panicking (R2).
#[test]
fn r7_one_vector_functions_name_their_own_parameters() {
    let name = |e: Error| match e {
        Error::InvalidParameter { name, .. } => name,
        e => panic!("not a parameter error: {e}"),
    };
    let empty: [f32; 0] = [];
    let p = SamplingParams::default();
    assert_eq!(
        name(sample(&empty, &p, &Seed::Fixed(0)).unwrap_err()),
        "logits"
    );
    assert_eq!(
        name(filter_logits(&empty, &p, &mut []).unwrap_err()),
        "logits"
    );
    assert_eq!(
        name(logitkit::token_logprobs(&empty, 0, 1.0).unwrap_err()),
        "logits"
    );
    let e = logitkit::token_logprobs(&[1.0f32, 2.0], 5, 1.0).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("token must be token ids in [0, V)"),
        "{e}"
    );
    assert!(e.to_string().ends_with("got 5"), "{e}");
    let mask = logitkit::TokenBitmask::per_row(vec![1, 2], 2, 1).unwrap();
    assert!(!mask.allows(5, 0));
    assert!(mask.row(2).is_empty());
}
