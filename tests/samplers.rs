//! P20-P23 and P26 in Rust: the kept set against a full-sort `f64` reference, llama.cpp's
//! literal cases, bad values, a row never left empty, thread counts, and the fast paths
//! (the nucleus gathered from candidates) against the row's own cut.

use logitkit::{
    filter_logits, filter_logits_rows, sample_batch, set_num_threads, Histories, SamplingParams,
    Seed,
};

mod common;
use common::Rng;

const NEG: f64 = f64::NEG_INFINITY;

fn probs_of(z: &[f64], kept: &[bool]) -> Vec<f64> {
    let m = z
        .iter()
        .zip(kept)
        .filter(|(_, &k)| k)
        .map(|(&e, _)| e)
        .fold(NEG, f64::max);
    let w: Vec<f64> = z
        .iter()
        .zip(kept)
        .map(|(&e, &k)| if k { (e - m).exp() } else { 0.0 })
        .collect();
    let s: f64 = w.iter().sum();
    w.iter().map(|e| e / s).collect()
}

fn entropy(p: &[f64]) -> f64 {
    -p.iter()
        .filter(|&&e| e > 0.0)
        .map(|e| e * e.ln())
        .sum::<f64>()
}

/// Top-p then one stage, by the book (full sorts, `f64`).
fn reference(x: &[f64], t: f64, top_p: f64, stage: &str, v: f64) -> Vec<bool> {
    reference_with_min_p(x, t, top_p, 0.0, stage, v)
}

/// Top-p, min-p (`min_p` 0: off), then one stage, by the book.
fn reference_with_min_p(
    x: &[f64],
    t: f64,
    top_p: f64,
    min_p: f64,
    stage: &str,
    v: f64,
) -> Vec<bool> {
    let z: Vec<f64> = x.iter().map(|e| e / t).collect();
    let n = x.len();
    let mut kept: Vec<bool> = x.iter().map(|e| e.is_finite()).collect();
    let by = |key: &dyn Fn(usize) -> f64| {
        let mut o: Vec<usize> = (0..n).collect();
        o.sort_by(|&a, &b| key(a).total_cmp(&key(b)).then(a.cmp(&b)));
        o
    };
    if top_p < 1.0 {
        let p = probs_of(&z, &kept);
        let mut cum = 0.0;
        let mut new = vec![false; n];
        for j in by(&|j| -z[j]) {
            if kept[j] {
                new[j] = true;
                cum += p[j];
                if cum >= top_p {
                    break;
                }
            }
        }
        kept = new;
    }
    if min_p > 0.0 {
        // p >= min_p * max p, in scaled logits (the ratio does not depend on renormalising).
        let top = (0..n)
            .filter(|&j| kept[j])
            .map(|j| z[j])
            .fold(NEG, f64::max);
        for j in 0..n {
            kept[j] &= z[j] >= top + min_p.ln();
        }
    }
    let p = probs_of(&z, &kept);
    let pk: Vec<f64> = (0..n).filter(|&j| kept[j]).map(|j| p[j]).collect();
    let h = entropy(&pk);
    let top = pk.iter().cloned().fold(0.0, f64::max);
    let keep_at_least = |thr: f64| -> Vec<bool> {
        if top >= thr {
            (0..n).map(|j| kept[j] && p[j] >= thr).collect()
        } else {
            (0..n).map(|j| kept[j] && p[j] == top).collect()
        }
    };
    match stage {
        "typical" => {
            let key = |j: usize| {
                if kept[j] {
                    (-p[j].ln() - h).abs()
                } else {
                    f64::INFINITY
                }
            };
            let mut cum = 0.0;
            let mut new = vec![false; n];
            for j in by(&key) {
                new[j] = true;
                cum += p[j];
                if cum >= v {
                    break;
                }
            }
            new
        }
        "sigma" => {
            let zs: Vec<f64> = (0..n).filter(|&j| kept[j]).map(|j| z[j]).collect();
            let mean = zs.iter().sum::<f64>() / zs.len() as f64;
            let sd = (zs.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / zs.len() as f64).sqrt();
            let mx = zs.iter().cloned().fold(NEG, f64::max);
            (0..n).map(|j| kept[j] && z[j] >= mx - v * sd).collect()
        }
        "epsilon" => keep_at_least(v),
        "eta" => keep_at_least(v.min(v.sqrt() * (-h).exp())),
        "xtc" => {
            let mut top: Vec<usize> = by(&|j| -p[j])
                .into_iter()
                .filter(|&j| kept[j] && p[j] > 0.0 && p[j] >= v)
                .collect();
            let mut new = kept.clone();
            if top.len() >= 2 {
                top.pop();
                for j in top {
                    new[j] = false;
                }
            }
            new
        }
        _ => unreachable!(),
    }
}

fn with_stage(p: SamplingParams, stage: &str, v: f64) -> SamplingParams {
    match stage {
        "typical" => p.typical_p(v),
        "sigma" => p.top_n_sigma(v),
        "epsilon" => p.epsilon_cutoff(v),
        "eta" => p.eta_cutoff(v),
        "xtc" => p.xtc_threshold(v).xtc_probability(1.0),
        _ => unreachable!(),
    }
}

const STAGES: [(&str, f64); 5] = [
    ("typical", 0.7),
    ("sigma", 1.3),
    ("epsilon", 0.002),
    ("eta", 0.004),
    ("xtc", 0.05),
];

fn row(rng: &mut Rng, v: usize, scale: f64) -> Vec<f64> {
    (0..v).map(|_| rng.normal() * scale).collect()
}

#[test]
fn p20_to_p23_match_the_full_sort_reference() {
    let mut rng = Rng(1);
    for case in 0..40 {
        let v = [50, 300, 3000, 40000][case % 4];
        let x = row(&mut rng, v, 0.5 + (case % 5) as f64);
        for &(stage, val) in &STAGES {
            for &top_p in &[1.0, 0.9] {
                let params = with_stage(
                    SamplingParams::default().temperature(0.8).top_p(top_p),
                    stage,
                    val,
                );
                let mut out = vec![0.0; v];
                filter_logits(&x, &params, &mut out).unwrap();
                let want = reference(&x, 0.8, top_p, stage, val);
                let got: Vec<bool> = out.iter().map(|e| e.is_finite()).collect();
                assert_eq!(got, want, "case {case} {stage} top_p {top_p}");
                for j in 0..v {
                    if want[j] {
                        assert_eq!(out[j], x[j] / 0.8);
                    }
                }
            }
        }
    }
}

/// Top-n-sigma, the first stage on, is applied to the kept set of top-p (or of every finite
/// token) before that set is listed: its statistics by masked passes over packed candidates
/// (peaked rows) or over the row (flat rows, where the set is most of it). Vocabulary-sized
/// f32 rows flat to peaked, some tokens banned: the kept set is the full-sort reference's, and
/// the drawn token is in it with the reference's log-probability. With min-p on, top-n-sigma's
/// statistics are those of the set after min-p (P3's order, then P20-P23).
#[test]
fn p21_top_n_sigma_on_vocabulary_rows_matches_the_full_sort_reference() {
    let mut rng = Rng(21);
    let v = 128_256;
    for (case, &scale) in [0.5, 1.0, 2.0, 3.0, 4.0].iter().enumerate() {
        let mut x32: Vec<f32> = row(&mut rng, v, scale).iter().map(|&e| e as f32).collect();
        x32[case * 1000..][..500].fill(f32::NEG_INFINITY);
        let x: Vec<f64> = x32.iter().map(|&e| f64::from(e)).collect();
        for (&top_p, &min_p) in [1.0, 0.95, 0.5, 0.95, 0.95, 0.99, 1.0]
            .iter()
            .zip(&[0.0, 0.0, 0.0, 0.02, 0.05, 0.2, 0.02])
        {
            for &n in &[0.5, 1.5] {
                let params = SamplingParams::default()
                    .temperature(0.8)
                    .top_p(top_p)
                    .min_p(min_p)
                    .top_n_sigma(n);
                let mut out = vec![0.0f32; v];
                filter_logits(&x32, &params, &mut out).unwrap();
                let want = reference_with_min_p(&x, 0.8, top_p, min_p, "sigma", n);
                let got: Vec<bool> = out.iter().map(|e| e.is_finite()).collect();
                let what = format!("scale {scale} top_p {top_p} min_p {min_p} n {n}");
                assert_eq!(got, want, "{what}");
                let z: Vec<f64> = x.iter().map(|e| e / 0.8).collect();
                let p = probs_of(&z, &want);
                let d = sample_batch(&x32, v, &params, &Histories::new(), &Seed::Fixed(7), true)
                    .unwrap();
                let tok = d.tokens[0] as usize;
                assert!(want[tok], "{what}");
                assert!((d.logprobs[0] - p[tok].ln()).abs() < 1e-4, "{what}");
            }
        }
    }
}

#[test]
fn p20_to_p23_draws_stay_in_the_kept_set_and_no_row_is_empty() {
    let mut rng = Rng(2);
    let (rows, v) = (16, 200);
    let mut x: Vec<f32> = (0..rows * v).map(|_| (rng.normal() * 4.0) as f32).collect();
    x[..v / 2].fill(f32::NEG_INFINITY); // row 0 half banned
    let extreme = [
        SamplingParams::default().typical_p(1e-9),
        SamplingParams::default().top_n_sigma(1e-9),
        SamplingParams::default().epsilon_cutoff(0.999),
        SamplingParams::default().eta_cutoff(0.999),
        SamplingParams::default()
            .xtc_threshold(0.0)
            .xtc_probability(1.0),
        SamplingParams::default()
            .top_p(0.5)
            .typical_p(0.01)
            .top_n_sigma(0.01)
            .epsilon_cutoff(0.9)
            .xtc_threshold(0.0)
            .xtc_probability(1.0)
            .dynatemp_range(3.0),
    ];
    for params in extreme {
        let mut out = vec![0.0f32; rows * v];
        filter_logits_rows(&x, v, &params, &mut out).unwrap();
        let d = sample_batch(&x, v, &params, &Histories::new(), &Seed::Fixed(3), true).unwrap();
        for r in 0..rows {
            let o = &out[r * v..][..v];
            assert!(o.iter().any(|e| e.is_finite()), "{params:?} row {r}");
            assert!(o[d.tokens[r] as usize].is_finite());
            assert!(d.logprobs[r] <= 0.0);
        }
    }
}

#[test]
fn p20_p23_p21_llama_cpp_literal_cases() {
    let kept = |probs: &[f64], params: SamplingParams| -> Vec<f64> {
        let x: Vec<f64> = probs.iter().map(|p| p.ln()).collect();
        let mut out = vec![0.0; x.len()];
        filter_logits(&x, &params, &mut out).unwrap();
        let k: Vec<bool> = out.iter().map(|e| e.is_finite()).collect();
        probs_of(
            &out.iter()
                .map(|&e| if e.is_finite() { e } else { 0.0 })
                .collect::<Vec<_>>(),
            &k,
        )
    };
    let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
    let d = SamplingParams::default;
    // test_typical
    assert!(close(
        &kept(&[0.97, 0.01, 0.01, 0.01], d().typical_p(0.5)),
        &[1.0, 0.0, 0.0, 0.0]
    ));
    let third = 1.0 / 3.0;
    assert!(close(
        &kept(&[0.4, 0.2, 0.2, 0.2], d().typical_p(0.5)),
        &[0.0, third, third, third]
    ));
    // test_top_n_sigma
    let p = [0.1, 0.2, 0.3, 0.4];
    assert!(close(
        &kept(&p, d().top_n_sigma(1.0)),
        &[0.0, 0.0, 0.428571, 0.571429]
    ));
    assert!(close(&kept(&p, d().top_n_sigma(0.0)), &p));
    assert!(close(&kept(&p, d().top_n_sigma(3.0)), &p));
    // test_xtc (probability 1 here: llama.cpp's 0.99 relies on its own generator's coin)
    let q = [0.4, 0.3, 0.2, 0.1];
    let xtc = |t: f64| d().xtc_threshold(t).xtc_probability(1.0);
    assert!(close(&kept(&q, xtc(0.09)), &[0.0, 0.0, 0.0, 1.0]));
    assert!(close(
        &kept(&q, xtc(0.19)),
        &[0.0, 0.0, 2.0 / 3.0, 1.0 / 3.0]
    ));
    assert!(close(
        &kept(&q, xtc(0.29)),
        &[0.0, 0.5, 1.0 / 3.0, 1.0 / 6.0]
    ));
    assert!(close(&kept(&q, xtc(0.39)), &q));
    // test_temp_ext with delta 0
    assert!(close(
        &kept(&p, d().temperature(1.0).dynatemp_range(0.0)),
        &p
    ));
    assert!(close(
        &kept(&p, d().temperature(0.0).dynatemp_range(0.0)),
        &[0.0, 0.0, 0.0, 1.0]
    ));
}

#[test]
fn p26_dynamic_temperature_matches_its_formula() {
    let mut rng = Rng(4);
    for case in 0..20 {
        let mut x = row(&mut rng, 100 + case * 37, 1.0 + case as f64 * 0.3);
        x[3] = NEG;
        let (t, r, e) = (0.9, 0.6, [0.5, 1.0, 2.0][case % 3]);
        let params = SamplingParams::default()
            .temperature(t)
            .dynatemp_range(r)
            .dynatemp_exponent(e);
        let mut out = vec![0.0; x.len()];
        filter_logits(&x, &params, &mut out).unwrap();
        let fin: Vec<bool> = x.iter().map(|v| v.is_finite()).collect();
        let p = probs_of(&x, &fin);
        let n = fin.iter().filter(|&&f| f).count() as f64;
        let norm = (entropy(&p) / n.ln()).clamp(0.0, 1.0);
        let lo = (t - r).max(0.0);
        let td = lo + (t + r - lo) * norm.powf(e);
        for j in 0..x.len() {
            if fin[j] {
                assert!((out[j] - x[j] / td).abs() <= 1e-12 * (x[j] / td).abs().max(1.0));
            } else {
                assert_eq!(out[j], NEG);
            }
        }
    }
}

#[test]
fn p20_p26_bad_values_name_the_parameter() {
    let d = SamplingParams::default;
    let cases: Vec<(SamplingParams, &str)> = vec![
        (d().typical_p(0.0), "typical_p"),
        (d().typical_p(1.5), "typical_p"),
        (d().top_n_sigma(-1.0), "top_n_sigma"),
        (d().top_n_sigma(f64::INFINITY), "top_n_sigma"),
        (d().epsilon_cutoff(1.0), "epsilon_cutoff"),
        (d().eta_cutoff(f64::NAN), "eta_cutoff"),
        (d().xtc_threshold(1.5), "xtc_threshold"),
        (d().xtc_probability(-0.1), "xtc_probability"),
        (d().dynatemp_range(-1.0), "dynatemp_range"),
        (d().dynatemp_exponent(f64::NAN), "dynatemp_exponent"),
        (d().typical_p(vec![0.5, 0.5]), "typical_p"),
    ];
    for (p, name) in cases {
        let msg = p.validate(3).unwrap_err().to_string();
        assert!(msg.contains(name), "{msg}");
        let mut out = [0.0f32; 6];
        assert!(filter_logits_rows(&[0.0f32; 6], 2, &p, &mut out).is_err());
    }
}

#[test]
fn p20_p26_do_not_depend_on_the_thread_count() {
    let mut rng = Rng(5);
    let v = 70_000;
    let x: Vec<f32> = (0..3 * v).map(|_| rng.normal() as f32).collect();
    let all = SamplingParams::default()
        .temperature(0.9)
        .top_p(0.97)
        .typical_p(0.95)
        .top_n_sigma(3.0)
        .epsilon_cutoff(1e-6)
        .eta_cutoff(1e-6)
        .xtc_threshold(1e-4)
        .xtc_probability(0.5)
        .dynatemp_range(0.3);
    let before = logitkit::get_num_threads();
    let run = |threads: usize, n_rows: usize| {
        set_num_threads(threads).unwrap();
        let xs = &x[..n_rows * v];
        let d = sample_batch(xs, v, &all, &Histories::new(), &Seed::Fixed(9), true).unwrap();
        let mut out = vec![0.0f32; xs.len()];
        filter_logits_rows(xs, v, &all, &mut out).unwrap();
        (d, out)
    };
    for n_rows in [1, 3] {
        assert_eq!(run(1, n_rows), run(2, n_rows));
    }
    set_num_threads(before).unwrap();
}

/// P25's reference: the kept mask and renormalised probabilities of llama.cpp's `mirostat_v2`
/// truncation at `mu` of logits `x` at temperature `t` (`f64`).
fn mirostat_reference(x: &[f64], t: f64, mu: f64) -> (Vec<bool>, Vec<f64>) {
    let z: Vec<f64> = x.iter().map(|&e| e / t).collect();
    let m = z.iter().cloned().fold(NEG, f64::max);
    let s: f64 = z.iter().map(|&e| (e - m).exp()).sum();
    let p: Vec<f64> = z.iter().map(|&e| (e - m).exp() / s).collect();
    let mut kept: Vec<bool> = p.iter().map(|&q| -q.log2() <= mu).collect();
    if !kept.contains(&true) {
        let top = p.iter().cloned().fold(0.0, f64::max);
        kept = p.iter().map(|&q| q == top).collect();
    }
    let probs = probs_of(&z, &kept);
    (kept, probs)
}

#[test]
fn p25_mirostat_loop_matches_the_reference() {
    let mut rng = Rng(25);
    let (rows, v, t) = (3usize, 120usize, 0.7);
    let tau = [2.0, 3.5, 5.0];
    let eta = [0.1, 0.3, 0.05];
    // Top-k, top-p and min-p are replaced by Mirostat while it is on.
    let params = SamplingParams::default()
        .temperature(t)
        .top_k(3)
        .top_p(0.4)
        .min_p(0.3)
        .top_logprobs(v);
    let mut s = logitkit::Sampler::new(params, Some(8))
        .unwrap()
        .with_mirostat(tau.to_vec(), eta.to_vec())
        .unwrap();
    let mut mu: Vec<f64> = tau.iter().map(|t| 2.0 * t).collect();
    for _ in 0..15 {
        let x: Vec<f64> = (0..rows).flat_map(|_| row(&mut rng, v, 3.0)).collect();
        let d = s.sample_batch(&x, v, true).unwrap();
        for r in 0..rows {
            let (kept, q) = mirostat_reference(&x[r * v..(r + 1) * v], t, mu[r]);
            let tok = d.tokens[r] as usize;
            assert!(kept[tok]);
            let mut lp = vec![NEG; v];
            for i in 0..v {
                lp[d.top_ids[r * v + i] as usize] = d.top_logprobs[r * v + i];
            }
            for j in 0..v {
                assert_eq!(lp[j].is_finite(), kept[j], "row {r} token {j}");
                if kept[j] {
                    assert!((lp[j] - q[j].ln()).abs() < 1e-9);
                }
            }
            assert!((d.logprobs[r] - q[tok].ln()).abs() < 1e-9);
            mu[r] -= eta[r] * (-q[tok].log2() - tau[r]);
        }
        for (got, want) in s.mirostat_mu().iter().zip(&mu) {
            assert!((got - want).abs() < 1e-9);
        }
    }
    s.reset();
    assert!(s.mirostat_mu().is_empty());
}

#[test]
fn p25_mirostat_bad_values_and_threads() {
    let new = || logitkit::Sampler::new(SamplingParams::default(), Some(1)).unwrap();
    for (tau, eta, name) in [
        (-1.0, 0.1, "mirostat_tau"),
        (f64::NAN, 0.1, "mirostat_tau"),
        (1.0, -0.1, "mirostat_eta"),
        (1.0, f64::INFINITY, "mirostat_eta"),
    ] {
        let e = new().with_mirostat(tau, eta).unwrap_err().to_string();
        assert!(e.contains(name), "{e}");
    }
    // A per-row length other than the batch's is refused at the call, which changes nothing.
    let mut s = new().with_mirostat(vec![1.0, 2.0], 0.1).unwrap();
    assert!(s.sample_batch(&[0.0f32; 9], 3, false).is_err());
    assert_eq!(s.calls(), 0);
    // 1 and 2 threads: the same tokens and mu.
    let mut rng = Rng(9);
    let x: Vec<f32> = (0..64 * 2000)
        .map(|_| (rng.normal() * 2.0) as f32)
        .collect();
    let before = logitkit::get_num_threads();
    let mut runs = Vec::new();
    for n in [1, 2] {
        set_num_threads(n).unwrap();
        let mut s = new().with_mirostat(4.0, 0.2).unwrap();
        let toks: Vec<Vec<i64>> = (0..3)
            .map(|_| s.sample_batch(&x, 2000, false).unwrap().tokens)
            .collect();
        runs.push((toks, s.mirostat_mu().to_vec()));
    }
    set_num_threads(before).unwrap();
    assert_eq!(runs[0], runs[1]);
}
