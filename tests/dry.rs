//! P24 (DRY) in Rust: llama.cpp's literal `test_dry` cases, a direct quadratic reference on
//! random histories (breakers, `dry_penalty_last_n`, per-row parameters), the exponent clamp,
//! a row never left empty, bad values, the default disabling it bit for bit, the stateful
//! `Sampler` against the batch call on the same history, thread counts, and `verify_draft`
//! refusing it.

use std::collections::BTreeMap;

use logitkit::{
    filter_logits_batch, sample_batch, set_num_threads, softmax, verify_draft, Histories,
    LogprobsMode, Sampler, SamplingParams, Seed,
};
use proptest::prelude::*;

mod common;
use common::{scaled, Rng};

/// DRY's parameters for the reference.
#[derive(Debug, Clone)]
struct Dry {
    multiplier: f64,
    base: f64,
    allowed: i64,
    last_n: i64,
    breakers: Vec<u32>,
}

impl Dry {
    fn params(&self) -> SamplingParams {
        SamplingParams::default()
            .dry_multiplier(self.multiplier)
            .dry_base(self.base)
            .dry_allowed_length(self.allowed)
            .dry_penalty_last_n(self.last_n)
            .dry_sequence_breakers(self.breakers.clone())
    }
}

/// P24 by the book, in `f64`: every earlier end position of the (last `last_n`) history is
/// matched against the history's end token by token (quadratic), the repeat stopped at the
/// last breaker; the token after each repeat of at least `allowed` tokens that is not a
/// breaker loses `multiplier * base^(len - allowed)` for its longest repeat, the exponent
/// clamped to `88.7228391 / ln(base)` when `base > 1.000001`.
fn reference(x: &[f64], history: &[u32], d: &Dry) -> Vec<f64> {
    let mut out = x.to_vec();
    if d.multiplier == 0.0 || d.last_n == 0 {
        return out;
    }
    let h = if d.last_n > 0 && (d.last_n as usize) < history.len() {
        &history[history.len() - d.last_n as usize..]
    } else {
        history
    };
    let (n, allowed) = (h.len(), d.allowed as usize);
    if n <= allowed {
        return out;
    }
    let limit = (0..n)
        .find(|&i| d.breakers.contains(&h[n - 1 - i]))
        .unwrap_or(n);
    if limit < allowed {
        return out;
    }
    let mut best: BTreeMap<u32, usize> = BTreeMap::new();
    for end in 0..n - 1 {
        let mut len = 0;
        while len <= end && h[end - len] == h[n - 1 - len] {
            len += 1;
        }
        let len = len.min(limit);
        let next = h[end + 1];
        if len >= allowed && !d.breakers.contains(&next) {
            let b = best.entry(next).or_insert(len);
            *b = (*b).max(len);
        }
    }
    let max_exp = if d.base > 1.000_001 {
        (f64::from(88.722_84f32) / d.base.ln()) as usize
    } else {
        0
    };
    for (t, len) in best {
        let mut e = len - allowed;
        if max_exp > 0 && e > max_exp {
            e = max_exp;
        }
        let v = out[t as usize] - d.multiplier * d.base.powf(e as f64);
        out[t as usize] = if v == f64::NEG_INFINITY { f64::MIN } else { v };
    }
    out
}

#[test]
fn p24_llama_cpp_literal_cases() {
    // llama.cpp's tests/test-sampling.cpp: test_dry(probs, last_tokens, expected, multiplier,
    // base, allowed_length, penalty_last_n, breakers) on the logits log(probs), compared after
    // a softmax.
    type Case = (
        &'static [f32],
        &'static [u32],
        &'static [f32],
        f64,
        f64,
        i64,
        i64,
        &'static [u32],
    );
    let cases: [Case; 5] = [
        (&[0.25; 4], &[0, 1], &[0.25; 4], 1.0, 1.1, 2, 4, &[]),
        (
            &[0.25; 4],
            &[0, 1, 2, 0, 1],
            &[0.296923, 0.296923, 0.109232, 0.296923],
            1.0,
            1.1,
            2,
            5,
            &[],
        ),
        (
            &[0.2; 5],
            &[0, 1, 3, 4, 0, 1],
            &[0.2; 5],
            1.0,
            1.1,
            2,
            6,
            &[3],
        ),
        (
            &[0.2; 5],
            &[0, 1, 2, 0, 1],
            &[0.241818, 0.241818, 0.032727, 0.241818, 0.241818],
            2.0,
            1.1,
            2,
            5,
            &[],
        ),
        (
            &[0.2; 5],
            &[0, 1, 2, 3, 4, 0, 1],
            &[0.2; 5],
            1.0,
            1.1,
            4,
            7,
            &[],
        ),
    ];
    for (probs, last, want, m, base, allowed, last_n, breakers) in cases {
        let v = probs.len();
        let x: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
        let p = Dry {
            multiplier: m,
            base,
            allowed,
            last_n,
            breakers: breakers.to_vec(),
        }
        .params();
        let outputs = vec![last.to_vec()];
        let h = Histories::new().output_tokens(&outputs);
        let mut z = vec![0.0f32; v];
        filter_logits_batch(&x, v, &p, &h, &mut z).unwrap();
        let mut got = vec![0.0f32; v];
        softmax(&z, &mut got, 1.0).unwrap();
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{last:?}: {got:?} vs {want:?}");
        }
    }
}

fn dry_strategy() -> impl Strategy<Value = Dry> {
    (
        prop::sample::select(vec![0.0, 0.5, 1.0, 3.7]),
        prop::sample::select(vec![1.0, 1.000_000_5, 1.1, 1.75, 3.0]),
        0i64..5,
        -1i64..70,
        prop::collection::vec(0u32..6, 0..3),
    )
        .prop_map(|(multiplier, base, allowed, last_n, breakers)| Dry {
            multiplier,
            base,
            allowed,
            last_n,
            breakers,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(scaled(400) as u32))]

    /// P24: the stage (Z-algorithm, linear) equals the direct quadratic reference bit for bit
    /// (`f64` logits: the penalty is computed in `f64` either way).
    #[test]
    fn p24_matches_the_quadratic_reference(
        d in dry_strategy(),
        v in 1usize..7,
        raw in prop::collection::vec(0u32..6, 0..80),
        seed in any::<u64>(),
    ) {
        let history: Vec<u32> = raw.iter().map(|&t| t % v as u32).collect();
        let mut d = d;
        d.breakers.retain(|&b| (b as usize) < v);
        let mut rng = Rng(seed);
        let x: Vec<f64> = (0..v).map(|_| rng.normal()).collect();
        let outputs = vec![history.clone()];
        let h = Histories::new().output_tokens(&outputs);
        let mut z = vec![0.0f64; v];
        filter_logits_batch(&x, v, &d.params(), &h, &mut z).unwrap();
        prop_assert_eq!(z, reference(&x, &history, &d));
    }
}

#[test]
fn p24_per_row_parameters_and_histories() {
    // Three rows, each with its own multiplier, base, allowed length and window.
    let mut rng = Rng(11);
    let v = 5;
    let rows: Vec<Dry> = vec![
        Dry {
            multiplier: 0.8,
            base: 1.75,
            allowed: 2,
            last_n: -1,
            breakers: vec![4],
        },
        Dry {
            multiplier: 0.0,
            base: 1.1,
            allowed: 0,
            last_n: 3,
            breakers: vec![4],
        },
        Dry {
            multiplier: 2.0,
            base: 1.3,
            allowed: 1,
            last_n: 20,
            breakers: vec![4],
        },
    ];
    let p = SamplingParams::default()
        .dry_multiplier(rows.iter().map(|d| d.multiplier).collect::<Vec<_>>())
        .dry_base(rows.iter().map(|d| d.base).collect::<Vec<_>>())
        .dry_allowed_length(rows.iter().map(|d| d.allowed).collect::<Vec<_>>())
        .dry_penalty_last_n(rows.iter().map(|d| d.last_n).collect::<Vec<_>>())
        .dry_sequence_breakers(vec![4]);
    for _ in 0..200 {
        let outputs: Vec<Vec<u32>> = (0..3)
            .map(|_| {
                let n = rng.below(40);
                (0..n).map(|_| rng.below(v) as u32).collect()
            })
            .collect();
        let x: Vec<f64> = (0..3 * v).map(|_| rng.normal()).collect();
        let h = Histories::new().output_tokens(&outputs);
        let mut z = vec![0.0f64; 3 * v];
        filter_logits_batch(&x, v, &p, &h, &mut z).unwrap();
        for r in 0..3 {
            let want = reference(&x[r * v..][..v], &outputs[r], &rows[r]);
            assert_eq!(z[r * v..][..v], want[..], "row {r}: {:?}", outputs[r]);
        }
    }
}

#[test]
fn p24_exponent_is_clamped_and_a_row_is_never_left_empty() {
    // 300 zeros: token 0 would extend a repeat of 299 tokens; the exponent 297 is clamped to
    // 88.7228391 / ln(1.75) = 158.
    let outputs = vec![vec![0u32; 300]];
    let h = Histories::new().output_tokens(&outputs);
    let p = SamplingParams::default().dry_multiplier(1.0);
    let mut z = [0.0f64; 2];
    filter_logits_batch(&[0.0, 0.0], 2, &p, &h, &mut z).unwrap();
    assert_eq!(z, [-(1.75f64.powf(158.0)), 0.0]);
    // In f32 a multiplier of 2 overflows (llama.cpp's logit becomes -inf): the logit becomes
    // the lowest finite f32, so a row whose every token is penalised still has one to draw.
    let p = SamplingParams::default().dry_multiplier(2.0);
    let mut z = [0.0f32; 1];
    filter_logits_batch(&[0.0f32], 1, &p, &h, &mut z).unwrap();
    assert_eq!(z, [f32::MIN]);
    for greedy in [false, true] {
        let p = if greedy {
            p.clone().temperature(0.0)
        } else {
            p.clone()
        };
        let d = sample_batch(&[0.0f32], 1, &p, &h, &Seed::Fixed(3), true).unwrap();
        assert_eq!(d.tokens, [0]);
        assert_eq!(d.logprobs, [0.0]);
    }
    let p = SamplingParams::default().dry_multiplier(f64::MAX);
    let d = sample_batch(&[0.0f64], 1, &p, &h, &Seed::Fixed(3), false).unwrap();
    assert_eq!(d.tokens, [0]);
}

#[test]
fn p24_bad_values_name_the_parameter() {
    let d = SamplingParams::default;
    let cases: Vec<(SamplingParams, &str, &str)> = vec![
        (d().dry_multiplier(-0.5), "dry_multiplier", "-0.5"),
        (d().dry_multiplier(f64::NAN), "dry_multiplier", "NaN"),
        (d().dry_multiplier(f64::INFINITY), "dry_multiplier", "inf"),
        (d().dry_base(0.9), "dry_base", "0.9"),
        (d().dry_base(f64::INFINITY), "dry_base", "inf"),
        (d().dry_allowed_length(-1), "dry_allowed_length", "-1"),
        (d().dry_penalty_last_n(-2), "dry_penalty_last_n", "-2"),
        (d().dry_multiplier(vec![1.0, 1.0]), "dry_multiplier", "2"),
    ];
    for (p, name, value) in cases {
        let msg = p.validate(3).unwrap_err().to_string();
        assert!(msg.contains(name) && msg.contains(value), "{msg}");
        let mut out = [0.0f32; 9];
        assert!(filter_logits_batch(&[0.0f32; 9], 3, &p, &Histories::new(), &mut out).is_err());
        assert!(Sampler::new(p.clone(), Some(1))
            .and_then(|mut s| s.sample_batch(&[0.0f32; 9], 3, false))
            .is_err());
    }
    // A breaker outside the vocabulary.
    let p = d().dry_multiplier(1.0).dry_sequence_breakers(vec![7]);
    let mut out = [0.0f32; 3];
    let msg = filter_logits_batch(&[0.0f32; 3], 3, &p, &Histories::new(), &mut out)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("dry_sequence_breakers") && msg.contains('7'),
        "{msg}"
    );
}

#[test]
fn p24_default_and_zero_multiplier_disable_it_bit_for_bit() {
    let mut rng = Rng(2);
    let v = 300;
    let x: Vec<f32> = (0..2 * v).map(|_| rng.normal() as f32).collect();
    let outputs: Vec<Vec<u32>> = (0..2)
        .map(|_| (0..200).map(|_| rng.below(3) as u32).collect())
        .collect();
    let h = Histories::new().output_tokens(&outputs);
    let base = SamplingParams::default()
        .temperature(0.7)
        .frequency_penalty(0.3)
        .top_p(0.9);
    let off = [
        base.clone().dry_base(3.0).dry_allowed_length(0),
        base.clone()
            .dry_multiplier(2.0)
            .dry_penalty_last_n(0)
            .dry_sequence_breakers(vec![1]),
    ];
    let mut want = vec![0.0f32; x.len()];
    filter_logits_batch(&x, v, &base, &h, &mut want).unwrap();
    let want_d = sample_batch(&x, v, &base, &h, &Seed::Fixed(4), true).unwrap();
    for p in off {
        let mut got = vec![0.0f32; x.len()];
        filter_logits_batch(&x, v, &p, &h, &mut got).unwrap();
        assert_eq!(
            got.iter().map(|e| e.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|e| e.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(
            sample_batch(&x, v, &p, &h, &Seed::Fixed(4), true).unwrap(),
            want_d
        );
    }
}

#[test]
fn p24_sampler_steps_equal_the_batch_call_on_the_same_history() {
    // Greedy draws and the processed logprobs (after the penalties and DRY) of a Sampler's
    // steps are those of sample_batch given the sampler's history, with tokens accepted from
    // elsewhere in between; over a long history (the marks' fast path of the penalties, then
    // DRY after them).
    let mut rng = Rng(21);
    let (v, rows) = (40, 2);
    let p = SamplingParams::greedy()
        .frequency_penalty(0.05)
        .presence_penalty(0.1)
        .dry_multiplier(vec![0.8, 1.5])
        .dry_base(1.75)
        .dry_allowed_length(vec![2, 1])
        .dry_penalty_last_n(vec![-1, 50])
        .dry_sequence_breakers(vec![7])
        .top_logprobs(5)
        .logprobs_mode(LogprobsMode::Processed);
    let mut s = Sampler::new(p.clone(), Some(8)).unwrap();
    // A model that likes a few tokens, so that repeats happen.
    let favourite: Vec<f32> = (0..v).map(|j| if j < 6 { 3.0 } else { 0.0 }).collect();
    for step in 0..400 {
        let x: Vec<f32> = (0..rows * v)
            .map(|i| favourite[i % v] + 0.5 * rng.normal() as f32)
            .collect();
        if step % 17 == 5 {
            s.accept(&[vec![rng.below(v) as u32], vec![7]]).unwrap();
            continue;
        }
        let outputs: Vec<Vec<u32>> = (0..rows).map(|r| s.output_tokens(r).to_vec()).collect();
        let h = Histories::new().output_tokens(&outputs);
        let want = sample_batch(&x, v, &p, &h, &Seed::Fixed(0), true).unwrap();
        let got = s.sample_batch(&x, v, true).unwrap();
        assert_eq!(got, want, "step {step}");
    }
    // DRY changed the course: the same loop without it decodes differently.
    let mut plain = Sampler::new(p.clone().dry_multiplier(0.0), Some(8)).unwrap();
    let mut s = Sampler::new(p, Some(8)).unwrap();
    let x: Vec<f32> = (0..rows * v)
        .map(|i| favourite[i % v] + (i % 7) as f32 * 0.01)
        .collect();
    for _ in 0..60 {
        s.sample_batch(&x, v, false).unwrap();
        plain.sample_batch(&x, v, false).unwrap();
    }
    assert_ne!(s.output_tokens(0), plain.output_tokens(0));
}

#[test]
fn p24_does_not_depend_on_the_thread_count() {
    let mut rng = Rng(5);
    let v = 70_000;
    let rows = 4;
    let x: Vec<f32> = (0..rows * v).map(|_| rng.normal() as f32).collect();
    let outputs: Vec<Vec<u32>> = (0..rows)
        .map(|r| (0..500 * (r + 1)).map(|_| rng.below(20) as u32).collect())
        .collect();
    let h = Histories::new().output_tokens(&outputs);
    let p = SamplingParams::default()
        .temperature(0.9)
        .repetition_penalty(1.1)
        .dry_multiplier(0.8)
        .dry_sequence_breakers(vec![3, 11]);
    let before = logitkit::get_num_threads();
    let run = |threads: usize| {
        set_num_threads(threads).unwrap();
        let d = sample_batch(&x, v, &p, &h, &Seed::Fixed(9), true).unwrap();
        let mut out = vec![0.0f32; x.len()];
        filter_logits_batch(&x, v, &p, &h, &mut out).unwrap();
        (d, out)
    };
    assert_eq!(run(1), run(2));
    set_num_threads(before).unwrap();
}

#[test]
fn p24_verify_draft_refuses_dry() {
    let v = 4;
    let x = vec![0.0f32; 3 * v];
    let p = SamplingParams::default().dry_multiplier(0.8);
    let e = verify_draft(&x, &[0, 1], None::<&[f32]>, v, 2, &p, &Seed::Fixed(1)).unwrap_err();
    assert!(e.to_string().contains("DRY"), "{e}");
    // Off (multiplier 0), the other DRY parameters change nothing and are accepted.
    let p = SamplingParams::default()
        .dry_base(2.0)
        .dry_allowed_length(0);
    assert!(verify_draft(&x, &[0, 1], None::<&[f32]>, v, 2, &p, &Seed::Fixed(1)).is_ok());
    // No row with both a multiplier and a window: off for every row, so accepted.
    let p = SamplingParams::default()
        .dry_multiplier(vec![0.0, 0.8])
        .dry_penalty_last_n(vec![5, 0]);
    let x2 = vec![0.0f32; 6 * v];
    let d = [0, 1, 2, 3];
    assert!(verify_draft(&x2, &d, None::<&[f32]>, v, 2, &p, &Seed::Fixed(1)).is_ok());
    let p = p.dry_penalty_last_n(vec![5, -1]);
    assert!(verify_draft(&x2, &d, None::<&[f32]>, v, 2, &p, &Seed::Fixed(1)).is_err());
}
