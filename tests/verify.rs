//! Speculative decoding (contract V1-V4): `verify_draft` against a float64 reference run with
//! the same uniforms, chi-square tests of the emitted tokens, the greedy rule, seeds, threads
//! and bad input.

use half::f16;
use logitkit::{
    set_num_threads, softmax, verify_draft, verify_draft_uniforms, Error, SamplingParams, Seed,
    Verified,
};

mod common;
use common::{scaled, Rng};

/// P3's distribution with temperature and top-k only, by the book (full sort), in f64.
fn ref_probs(x: &[f64], t: f64, k: usize) -> Vec<f64> {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut p = vec![0.0; x.len()];
    if t == 0.0 || k == 1 {
        p[x.iter().position(|&e| e == m).unwrap()] = 1.0;
        return p;
    }
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[b].partial_cmp(&x[a]).unwrap().then(a.cmp(&b)));
    let kk = if k == 0 || k >= x.len() { x.len() } else { k };
    for &i in &order[..kk] {
        p[i] = ((x[i] - m) / t).exp();
    }
    let s: f64 = p.iter().sum();
    p.iter_mut().for_each(|e| *e /= s);
    p
}

/// V2 by the book for one sequence, given its uniforms; `None` when a decision lies within
/// 1e-9 of its boundary (float32 against float64 may then differ).
fn ref_sequence(
    x: &[f64],
    v: usize,
    drafts: &[i64],
    q: Option<&[f64]>,
    t: f64,
    top_k: usize,
    u: &[f64],
) -> Option<Vec<i64>> {
    let k = drafts.len();
    let mut out = vec![-1i64; k + 1];
    for i in 0..=k {
        let p = ref_probs(&x[i * v..(i + 1) * v], t, top_k);
        let dist = if i == k {
            p
        } else {
            let d = drafts[i] as usize;
            let qd = q.map_or(1.0, |q| q[i * v + d]);
            if (u[i] * qd - p[d]).abs() < 1e-9 {
                return None;
            }
            let accept = if t == 0.0 {
                p[d] == 1.0
            } else {
                u[i] * qd < p[d]
            };
            if accept {
                out[i] = drafts[i];
                continue;
            }
            let r: Vec<f64> = match q {
                Some(q) => (0..v).map(|j| (p[j] - q[i * v + j]).max(0.0)).collect(),
                None => (0..v).map(|j| if j == d { 0.0 } else { p[j] }).collect(),
            };
            if r.iter().sum::<f64>() > 0.0 {
                r
            } else {
                p
            }
        };
        let total: f64 = dist.iter().sum();
        let mut cum = 0.0;
        let mut tok = None;
        for (j, &w) in dist.iter().enumerate() {
            if w > 0.0 {
                cum += w;
                if (cum / total - u[k]).abs() < 1e-9 {
                    return None;
                }
                if tok.is_none() && cum / total > u[k] {
                    tok = Some(j);
                }
            }
        }
        out[i] = tok.unwrap_or_else(|| dist.iter().rposition(|&w| w > 0.0).unwrap()) as i64;
        return Some(out);
    }
    unreachable!()
}

fn random_case(rng: &mut Rng, b: usize, k: usize, v: usize) -> (Vec<f32>, Vec<i64>, Vec<f32>) {
    let x: Vec<f32> = (0..b * (k + 1) * v)
        .map(|_| (rng.normal() * 2.0) as f32)
        .collect();
    let mut q = Vec::with_capacity(b * k * v);
    let mut drafts = Vec::with_capacity(b * k);
    for _ in 0..b * k {
        let row: Vec<f64> = (0..v).map(|_| rng.uniform().powi(3)).collect();
        let s: f64 = row.iter().sum();
        let row: Vec<f32> = row.iter().map(|&e| (e / s) as f32).collect();
        let u = rng.uniform() * row.iter().map(|&e| e as f64).sum::<f64>();
        let mut cum = 0.0;
        let d = row.iter().position(|&e| {
            cum += e as f64;
            cum > u
        });
        drafts.push(d.unwrap_or(v - 1) as i64);
        q.extend_from_slice(&row);
    }
    (x, drafts, q)
}

#[test]
fn v2_matches_the_f64_reference_given_the_same_uniforms() {
    let mut rng = Rng(1);
    let (b, k, v) = (scaled(200).max(20), 3, 10);
    for &(t, top_k) in &[(1.0, 0), (0.7, 4), (0.0, 0), (1.5, 1)] {
        let (x, drafts, q) = random_case(&mut rng, b, k, v);
        let prm = SamplingParams::default().temperature(t).top_k(top_k as i64);
        let u = verify_draft_uniforms(&Seed::Fixed(5), b, k).unwrap();
        let xf: Vec<f64> = x.iter().map(|&e| e as f64).collect();
        let qf: Vec<f64> = q.iter().map(|&e| e as f64).collect();
        for with_q in [true, false] {
            let qs = with_q.then_some(&q[..]);
            let r = verify_draft(&x, &drafts, qs, v, k, &prm, &Seed::Fixed(5)).unwrap();
            let mut checked = 0;
            for s in 0..b {
                let per = (k + 1) * v;
                let want = ref_sequence(
                    &xf[s * per..(s + 1) * per],
                    v,
                    &drafts[s * k..(s + 1) * k],
                    with_q.then(|| &qf[s * k * v..(s + 1) * k * v]),
                    t,
                    top_k,
                    &u[s * (k + 1)..(s + 1) * (k + 1)],
                );
                if let Some(want) = want {
                    assert_eq!(
                        r.tokens[s * (k + 1)..(s + 1) * (k + 1)],
                        want[..],
                        "{t} {s}"
                    );
                    let n = want.iter().filter(|&&e| e >= 0).count() as i64;
                    assert_eq!(r.num_tokens[s], n);
                    checked += 1;
                }
            }
            assert!(checked * 100 >= b * 99, "{checked} of {b}");
        }
    }
}

/// A bound the chi-square statistic exceeds with probability about 1e-5 (Wilson-Hilferty).
fn chi_square_ok(counts: &[usize], p: &[f64]) -> bool {
    let n: usize = counts.iter().sum();
    let (mut stat, mut df) = (0.0, -1.0f64);
    for (&c, &pj) in counts.iter().zip(p) {
        if pj > 0.0 {
            let e = pj * n as f64;
            stat += (c as f64 - e).powi(2) / e;
            df += 1.0;
        } else {
            assert_eq!(c, 0, "a token of probability 0 was emitted");
        }
    }
    let z = 4.3; // one-sided 1e-5
    let bound = df * (1.0 - 2.0 / (9.0 * df) + z * (2.0 / (9.0 * df)).sqrt()).powi(3);
    df <= 0.0 || stat < bound
}

/// V3: draws many sequences (drafts from `q_rows`), checks each position's emitted tokens
/// given the accepted prefix against p.
fn check_positions(target: &[f64], v: usize, q_rows: &[f64], point_mass: bool, t: f64) {
    let k = q_rows.len() / v;
    // Not scaled down with PROPTEST_CASES (valgrind's run): with point-mass drafts only a few
    // percent of the sequences reach the bonus position, and 30,000 tiny sequences are cheap.
    let n = 30_000;
    let mut rng = Rng(7);
    let x: Vec<f32> = (0..n)
        .flat_map(|_| target.iter().map(|&e| e as f32))
        .collect();
    let mut drafts = Vec::with_capacity(n * k);
    for _ in 0..n {
        for i in 0..k {
            let row = &q_rows[i * v..(i + 1) * v];
            let u = rng.uniform() * row.iter().sum::<f64>();
            let mut cum = 0.0;
            let d = row.iter().position(|&e| {
                cum += e;
                cum > u
            });
            drafts.push(d.unwrap_or(v - 1) as i64);
        }
    }
    let q: Vec<f32> = (0..n)
        .flat_map(|_| q_rows.iter().map(|&e| e as f32))
        .collect();
    let qs = (!point_mass).then_some(&q[..]);
    let prm = SamplingParams::default().temperature(t);
    let r = verify_draft(&x, &drafts, qs, v, k, &prm, &Seed::Fixed(3)).unwrap();
    let xf: Vec<f64> = target.iter().map(|&e| e as f32 as f64).collect();
    for i in 0..=k {
        let p = ref_probs(&xf[i * v..(i + 1) * v], t, 0);
        let mut counts = vec![0usize; v];
        for s in 0..n {
            if r.num_tokens[s] > i as i64 {
                counts[r.tokens[s * (k + 1) + i] as usize] += 1;
            }
        }
        assert!(counts.iter().sum::<usize>() > 500, "position {i}");
        assert!(chi_square_ok(&counts, &p), "position {i}: {counts:?} {p:?}");
    }
}

const TARGET: [f64; 24] = [
    2.0, 1.5, 1.5, 0.3, -0.7, 1.2, 0.0, -1.0, // position 0
    -1.0, 0.5, 2.2, 2.2, 0.1, -0.3, 1.0, 0.0, // position 1
    0.0, -0.5, 0.4, 1.1, 1.9, 0.2, -2.0, 1.0, // the bonus position
];

#[test]
fn v3_chi_square_q_far_from_p() {
    let far = [0.01, 0.01, 0.02, 0.06, 0.1, 0.2, 0.3, 0.3];
    let q: Vec<f64> = far.iter().chain(far.iter().rev()).copied().collect();
    check_positions(&TARGET, 8, &q, false, 1.0);
    check_positions(&TARGET, 8, &q, false, 0.6);
}

#[test]
fn v3_chi_square_point_mass_drafts() {
    let crude: Vec<f64> = TARGET[..16].iter().map(|&e| (e / 3.0).exp()).collect();
    check_positions(&TARGET, 8, &crude, true, 1.0);
}

#[test]
fn v3_q_equal_to_p_always_accepts() {
    let v = 8;
    let x: Vec<f32> = TARGET.iter().map(|&e| e as f32).collect();
    let mut q = [0.0f32; 16];
    softmax(&x[..8], &mut q[..8], 1.0).unwrap();
    softmax(&x[8..16], &mut q[8..], 1.0).unwrap();
    let q: Vec<f32> = q.iter().map(|&e| e * (1.0 - 1e-6)).collect();
    for seed in 0..200 {
        let r = verify_draft(
            &x,
            &[1, 3],
            Some(&q[..]),
            v,
            2,
            &SamplingParams::default(),
            &Seed::Fixed(seed),
        )
        .unwrap();
        assert_eq!(r.num_tokens, [3]);
        assert_eq!(r.tokens[..2], [1, 3]);
    }
}

/// vLLM's create_logits_tensor: the argmax at each position is the given token.
fn vllm_logits(out: &[&[usize]], v: usize) -> Vec<f32> {
    let mut x = vec![];
    for toks in out {
        for &t in *toks {
            let mut row = vec![-100.0f32; v];
            row[t] = 100.0;
            x.extend(row);
        }
    }
    x
}

/// (draft tokens, the target's argmax per position, the expected tokens), per sequence.
type GreedyCase<'a> = (&'a [&'a [i64]], &'a [&'a [usize]], &'a [&'a [i64]]);

#[test]
fn v3_greedy_vllm_cases() {
    let cases: [GreedyCase; 6] = [
        (&[&[1, 2, 3]], &[&[1, 2, 3, 4]], &[&[1, 2, 3, 4]]),
        (&[&[1, 2, 3]], &[&[1, 5, 3, 4]], &[&[1, 5, -1, -1]]),
        (
            &[&[1, 2], &[3, 4]],
            &[&[1, 2, 5], &[3, 4, 7]],
            &[&[1, 2, 5], &[3, 4, 7]],
        ),
        (&[&[1]], &[&[1, 2]], &[&[1, 2]]),
        (&[&[]], &[&[5]], &[&[5]]),
        (
            &[&[1, 2, 3], &[4, 5, 6]],
            &[&[1, 2, 7, 6], &[4, 8, 6, 9]],
            &[&[1, 2, 7, -1], &[4, 8, -1, -1]],
        ),
    ];
    for (spec, out, want) in cases {
        let k = spec[0].len();
        let x = vllm_logits(out, 100);
        let drafts: Vec<i64> = spec.iter().flat_map(|s| s.iter().copied()).collect();
        let q = vec![0.01f32; drafts.len() * 100];
        for qs in [None, Some(&q[..])] {
            let r = verify_draft(
                &x,
                &drafts,
                qs,
                100,
                k,
                &SamplingParams::greedy(),
                &Seed::Entropy,
            )
            .unwrap();
            let want_flat: Vec<i64> = want.iter().flat_map(|s| s.iter().copied()).collect();
            assert_eq!(r.tokens, want_flat);
            let n: Vec<i64> = want
                .iter()
                .map(|s| s.iter().filter(|&&e| e >= 0).count() as i64)
                .collect();
            assert_eq!(r.num_tokens, n);
        }
    }
}

#[test]
fn v4_per_sequence_seeds_batches_and_threads() {
    let mut rng = Rng(9);
    let (b, k, v) = (6, 3, 40_000);
    let (x, drafts, q) = random_case(&mut rng, b, k, v);
    let seeds: Vec<u64> = (0..b as u64).map(|i| i * 7919 + 1).collect();
    let prm = SamplingParams::default().top_p(0.95);
    let run = |qs: Option<&[f32]>| {
        verify_draft(&x, &drafts, qs, v, k, &prm, &Seed::PerRow(seeds.clone())).unwrap()
    };
    set_num_threads(1).unwrap();
    let one = [run(Some(&q)), run(None)];
    set_num_threads(2).unwrap();
    let two = [run(Some(&q)), run(None)];
    assert_eq!(one, two);
    // A sequence alone, with its own seed, gives what it gave in the batch.
    let per = (k + 1) * v;
    for s in [0, 4] {
        let alone = verify_draft(
            &x[s * per..(s + 1) * per],
            &drafts[s * k..(s + 1) * k],
            Some(&q[s * k * v..(s + 1) * k * v]),
            v,
            k,
            &prm,
            &Seed::PerRow(vec![seeds[s]]),
        )
        .unwrap();
        assert_eq!(alone.tokens, one[0].tokens[s * (k + 1)..(s + 1) * (k + 1)]);
        assert_eq!(alone.num_tokens[0], one[0].num_tokens[s]);
    }
}

#[test]
fn v4_draft_probs_of_other_types_agree() {
    let mut rng = Rng(11);
    let (b, k, v) = (50, 2, 12);
    let (x, drafts, q) = random_case(&mut rng, b, k, v);
    let q64: Vec<f64> = q.iter().map(|&e| e as f64).collect();
    let x64: Vec<f64> = x.iter().map(|&e| e as f64).collect();
    let prm = SamplingParams::default();
    let a = verify_draft(&x, &drafts, Some(&q[..]), v, k, &prm, &Seed::Fixed(1)).unwrap();
    let c = verify_draft(&x64, &drafts, Some(&q64[..]), v, k, &prm, &Seed::Fixed(1)).unwrap();
    let differ = (0..b).filter(|&s| a.tokens[s * 3..s * 3 + 3] != c.tokens[s * 3..s * 3 + 3]);
    assert!(differ.count() <= 1, "f32 and f64 differ beyond rounding");
    let xh: Vec<f16> = x.iter().map(|&e| f16::from_f32(e)).collect();
    let qh: Vec<f16> = q
        .iter()
        .map(|&e| f16::from_f32(e).max(f16::from_f32(1e-3)))
        .collect();
    let r = verify_draft(&xh, &drafts, Some(&qh[..]), v, k, &prm, &Seed::Fixed(1)).unwrap();
    assert!(r.num_tokens.iter().all(|&n| (1..=3).contains(&n)));
}

#[test]
fn v4_k_zero_and_empty_batch() {
    let x = [0.0f32, 3.0, 1.0];
    let r = verify_draft(
        &x,
        &[],
        None::<&[f32]>,
        3,
        0,
        &SamplingParams::greedy(),
        &Seed::Entropy,
    )
    .unwrap();
    assert_eq!((r.tokens, r.num_tokens), (vec![1], vec![1]));
    let r = verify_draft::<f32, f32>(
        &[],
        &[],
        None,
        3,
        2,
        &SamplingParams::default(),
        &Seed::Fixed(0),
    )
    .unwrap();
    assert_eq!(r, Verified::default());
}

#[test]
fn v4_bad_input_names_the_argument_and_the_row() {
    let v = 4;
    let x = [0.0f32; 24]; // B = 2, K = 2
    let q = [0.25f32; 16];
    let prm = SamplingParams::default();
    let s = Seed::Fixed(0);
    let msg = |e: Error| e.to_string();
    let e = verify_draft(&x, &[0, 1, 2, 4], Some(&q[..]), v, 2, &prm, &s).unwrap_err();
    assert_eq!(
        msg(e),
        "draft_tokens row 1 has token id 4 at position 1, outside [0, 4)"
    );
    let e = verify_draft(&x, &[0, -1, 2, 3], None::<&[f32]>, v, 2, &prm, &s).unwrap_err();
    assert!(msg(e).starts_with("draft_tokens row 0 has token id -1 at position 1"));
    let mut bad = q;
    bad[13] = f32::NAN; // row 1, position 1, token 1
    let e = verify_draft(&x, &[0, 1, 2, 3], Some(&bad[..]), v, 2, &prm, &s).unwrap_err();
    assert!(msg(e).starts_with("draft_probs row 1 holds NaN for token 1 at position 1"));
    bad = q;
    bad[6] = 0.0; // row 0, position 1, token 2 = its draft
    let e = verify_draft(&x, &[0, 2, 2, 3], Some(&bad[..]), v, 2, &prm, &s).unwrap_err();
    assert!(msg(e)
        .starts_with("draft_probs row 0 gives probability 0 to its draft token 2 at position 1"));
    let mut bx = x;
    bx[20] = f32::INFINITY; // row 1, position 2
    let e = verify_draft(
        &bx,
        &[0, 1, 2, 3],
        None::<&[f32]>,
        v,
        2,
        &SamplingParams::greedy(),
        &s,
    )
    .unwrap_err();
    assert_eq!(msg(e), "target_logits row 1 at position 2 contains +inf");
    let e = verify_draft(&x[..20], &[0, 1, 2, 3], None::<&[f32]>, v, 2, &prm, &s).unwrap_err();
    assert!(msg(e).contains("target_logits"));
    let e = verify_draft(&x, &[0, 1, 2], None::<&[f32]>, v, 2, &prm, &s).unwrap_err();
    assert!(msg(e).contains("draft_tokens has length 3, expected 4"));
    let e = verify_draft(&x, &[0, 1, 2, 3], Some(&q[..8]), v, 2, &prm, &s).unwrap_err();
    assert!(msg(e).contains("draft_probs has length 8, expected 16"));
    let penalised = SamplingParams::default().repetition_penalty(1.2);
    let e = verify_draft(&x, &[0, 1, 2, 3], None::<&[f32]>, v, 2, &penalised, &s).unwrap_err();
    assert!(msg(e).contains("temperature, top_k, top_p and min_p only"));
    // V2 is P3's distribution: the samplers of P20-P26 are refused, not silently ignored.
    for later in [
        SamplingParams::default().typical_p(0.9),
        SamplingParams::default().top_n_sigma(1.0),
        SamplingParams::default().epsilon_cutoff(0.01),
        SamplingParams::default().eta_cutoff(0.01),
        SamplingParams::default().xtc_probability(0.5),
        SamplingParams::default().dynatemp_range(0.5),
    ] {
        let e = verify_draft(&x, &[0, 1, 2, 3], None::<&[f32]>, v, 2, &later, &s).unwrap_err();
        assert!(msg(e).contains("typical_p, top_n_sigma"), "{later:?}");
    }
    let e = verify_draft(
        &x,
        &[0, 1, 2, 3],
        None::<&[f32]>,
        v,
        2,
        &prm.clone().temperature(vec![1.0; 3]),
        &s,
    )
    .unwrap_err();
    assert!(msg(e).contains("temperature"));
    assert!(verify_draft_uniforms(&Seed::Entropy, 1, 1).is_err());
}
