//! The decoding-time pipeline (contract P10-P17) against straightforward references.

use logitkit::{
    filter_logits_batch, log_softmax, sample_batch, set_num_threads, token_logprobs_rows, Error,
    Histories, LogprobsMode, Sampler, SamplingParams, Seed, TokenBitmask,
};

mod common;
use common::{scaled, Rng};

fn logits(rng: &mut Rng, n: usize, scale: f64) -> Vec<f64> {
    (0..n).map(|_| rng.normal() * scale).collect()
}

/// P11-P13 by the book, one row in f64: masks, bias, repetition, frequency/presence.
#[allow(clippy::too_many_arguments)]
fn process_ref(
    x: &[f64],
    allowed: Option<&[u32]>,
    bitmask: Option<&[u32]>,
    bad_words: &[Vec<u32>],
    min_tokens: usize,
    stop: &[u32],
    bias: &[(u32, f64)],
    rep: f64,
    freq: f64,
    pres: f64,
    prompt: &[u32],
    output: &[u32],
) -> Vec<f64> {
    let mut z = x.to_vec();
    let ninf = f64::NEG_INFINITY;
    if let Some(a) = allowed {
        for (j, e) in z.iter_mut().enumerate() {
            if !a.contains(&(j as u32)) {
                *e = ninf;
            }
        }
    }
    if let Some(words) = bitmask {
        for (j, e) in z.iter_mut().enumerate() {
            let allowed = j / 32 < words.len() && (words[j / 32] >> (j % 32)) & 1 == 1;
            if !allowed {
                *e = ninf;
            }
        }
    }
    for w in bad_words {
        let (last, prefix) = w.split_last().unwrap();
        if output.len() >= prefix.len() && &output[output.len() - prefix.len()..] == prefix {
            z[*last as usize] = ninf;
        }
    }
    if output.len() < min_tokens {
        for &s in stop {
            z[s as usize] = ninf;
        }
    }
    for &(id, b) in bias {
        z[id as usize] += b;
    }
    for (j, e) in z.iter_mut().enumerate() {
        let seen = prompt.contains(&(j as u32)) || output.contains(&(j as u32));
        if seen {
            *e = if *e > 0.0 { *e / rep } else { *e * rep };
        }
    }
    for (j, e) in z.iter_mut().enumerate() {
        let c = output.iter().filter(|&&t| t as usize == j).count() as f64;
        if c > 0.0 {
            *e = *e - freq * c - pres;
        }
    }
    z
}

#[test]
fn p11_p12_p13_p14_filter_logits_is_the_processed_row_exactly() {
    let mut rng = Rng(11);
    for case in 0..scaled(90) {
        // Large vocabularies with short histories take the penalties' sparse path, the others
        // their pass over marks (both checked against the same reference).
        let v = if case % 3 == 0 {
            2000 + rng.below(3000)
        } else {
            1 + rng.below(300)
        };
        let rows = 1 + rng.below(3);
        let x = logits(&mut rng, rows * v, 3.0);
        let ids =
            |rng: &mut Rng, n: usize| -> Vec<u32> { (0..n).map(|_| rng.below(v) as u32).collect() };
        let prompts: Vec<Vec<u32>> = (0..rows)
            .map(|_| {
                let n = rng.below(20);
                ids(&mut rng, n)
            })
            .collect();
        let outputs: Vec<Vec<u32>> = (0..rows)
            .map(|_| {
                let n = rng.below(20);
                ids(&mut rng, n)
            })
            .collect();
        let bad: Vec<Vec<u32>> = (0..rng.below(4))
            .map(|_| {
                let n = 1 + rng.below(3);
                ids(&mut rng, n)
            })
            .collect();
        let stop = ids(&mut rng, 2);
        // Without a bias the penalties over marks are applied during the copy; with one,
        // in passes of their own.
        let n_bias = if case % 4 == 1 { 0 } else { 5 };
        let bias: Vec<(u32, f64)> = ids(&mut rng, n_bias)
            .into_iter()
            .map(|i| (i, rng.normal() * 2.0))
            .collect();
        // The allowed set always holds the argmax-free token 0 and half the vocabulary.
        let allowed: Vec<u32> = (0..v as u32)
            .filter(|_| rng.below(2) == 0)
            .chain([0])
            .collect();
        let words: Vec<u32> = (0..v.div_ceil(32)).map(|_| rng.next() as u32 | 1).collect();
        let (rep, freq, pres) = (1.0 + rng.uniform(), rng.normal(), rng.normal());
        let min_tokens = rng.below(30);
        let use_mask = case % 2 == 0;
        let mut params = SamplingParams::default()
            .bad_words(bad.clone())
            .stop_token_ids(stop.clone())
            .min_tokens(min_tokens as i64)
            .logit_bias(bias.clone())
            .repetition_penalty(rep)
            .frequency_penalty(freq)
            .presence_penalty(pres);
        if use_mask {
            params = params
                .allowed_token_ids(allowed.clone())
                .token_bitmask(TokenBitmask::all_rows(words.clone()));
        }
        let h = Histories::new()
            .prompt_tokens(&prompts)
            .output_tokens(&outputs);
        let mut out = vec![0.0; x.len()];
        let res = filter_logits_batch(&x, v, &params, &h, &mut out);
        for r in 0..rows {
            let want = process_ref(
                &x[r * v..(r + 1) * v],
                use_mask.then_some(&allowed[..]),
                use_mask.then_some(&words[..]),
                &bad,
                min_tokens,
                &stop,
                &bias,
                rep,
                freq,
                pres,
                &prompts[r],
                &outputs[r],
            );
            if want.iter().all(|z| *z == f64::NEG_INFINITY) {
                let e = res.clone().unwrap_err();
                assert!(matches!(e, Error::InvalidRow { .. }), "{e}");
                break;
            }
            res.clone().unwrap();
            assert_eq!(&out[r * v..(r + 1) * v], &want[..], "case {case} row {r}");
        }
    }
}

#[test]
fn p14_f32_processing_is_pytorchs_arithmetic_bit_for_bit() {
    // Each stage in float32 with its parameter rounded to float32, one operation at a time,
    // as `scores + bias`, `torch.where(z > 0, z / r, z * r)` and `z - f * c - p` do in Hugging
    // Face's and vLLM's processors.
    let mut rng = Rng(14);
    for _ in 0..scaled(200) {
        let v = 40;
        let x: Vec<f32> = (0..v).map(|_| (rng.normal() * 5.0) as f32).collect();
        let (b, r, f, p) = (
            rng.normal(),
            1.0 + rng.uniform() * 2.0,
            rng.normal(),
            rng.normal(),
        );
        let outputs = vec![vec![3u32, 3, 3, 7, 9]];
        let prompts = vec![vec![7u32, 11]];
        // Every other case without the bias: the penalties then ride along with the copy.
        let with_bias = rng.below(2) == 0;
        let b = if with_bias { b } else { 0.0 };
        let params = SamplingParams::default()
            .logit_bias(if with_bias {
                vec![(3, b), (11, b)]
            } else {
                vec![]
            })
            .repetition_penalty(r)
            .frequency_penalty(f)
            .presence_penalty(p);
        let h = Histories::new()
            .prompt_tokens(&prompts)
            .output_tokens(&outputs);
        let mut out = vec![0.0f32; v];
        filter_logits_batch(&x, v, &params, &h, &mut out).unwrap();
        let (b32, r32, f32_, p32) = (b as f32, r as f32, f as f32, p as f32);
        let mut want = x.clone();
        for id in [3, 11] {
            want[id] += b32;
        }
        for id in [3, 7, 9, 11] {
            let z = want[id];
            want[id] = if z > 0.0 { z / r32 } else { z * r32 };
        }
        for (id, c) in [(3, 3.0f32), (7, 1.0), (9, 1.0)] {
            want[id] = want[id] - f32_ * c - p32;
        }
        assert_eq!(out, want);
    }
}

#[test]
fn p11_banned_tokens_are_never_drawn_greedy_or_not() {
    let mut rng = Rng(5);
    let v = 64;
    let x: Vec<f32> = (0..v).map(|i| i as f32).collect();
    let allowed = vec![3u32, 10, 20];
    for t in [0.0, 0.5, 1.0, 50.0] {
        let params = SamplingParams::default()
            .temperature(t)
            .allowed_token_ids(allowed.clone())
            .logit_bias(vec![(20, f64::NEG_INFINITY)]);
        for _ in 0..50 {
            let seed = Seed::Fixed(rng.next());
            let d = sample_batch(&x, v, &params, &Histories::new(), &seed, false).unwrap();
            assert!(d.tokens[0] == 3 || d.tokens[0] == 10);
            if t == 0.0 {
                assert_eq!(d.tokens[0], 10);
            }
        }
    }
}

#[test]
fn p11_masks_leaving_no_finite_logit_name_the_row() {
    let x = vec![0.0f32; 8];
    let params = SamplingParams::default().allowed_token_ids_per_row(vec![None, Some(vec![])]);
    let e = sample_batch(&x, 4, &params, &Histories::new(), &Seed::Fixed(0), false).unwrap_err();
    assert!(e.to_string().contains("row 1"), "{e}");
}

#[test]
fn p11_min_tokens_needs_stop_tokens() {
    let e = SamplingParams::default()
        .min_tokens(3)
        .validate(1)
        .unwrap_err();
    assert!(e.to_string().contains("min_tokens"), "{e}");
}

#[test]
fn p10_history_ids_out_of_range_name_parameter_row_and_id() {
    let x = vec![0.0f32; 8];
    let prompts = vec![vec![1u32], vec![2, 9]];
    let h = Histories::new().prompt_tokens(&prompts);
    let params = SamplingParams::default().repetition_penalty(1.2);
    let e = sample_batch(&x, 4, &params, &h, &Seed::Fixed(0), false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("prompt_tokens") && e.contains("row 1") && e.contains('9'),
        "{e}"
    );
    let short = vec![vec![1u32]];
    let h = Histories::new().output_tokens(&short);
    let e = sample_batch(&x, 4, &params, &h, &Seed::Fixed(0), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("output_tokens"), "{e}");
}

fn log_softmax_ref(z: &[f64], t: f64) -> Vec<f64> {
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = z.iter().map(|&e| ((e - m) / t).exp()).sum();
    z.iter().map(|&e| (e - m) / t - s.ln()).collect()
}

/// `(id, logprob)` of the `n` largest, by logprob descending then id.
fn top_ref(lp: &[f64], n: usize) -> Vec<(i64, f64)> {
    let mut ids: Vec<usize> = (0..lp.len()).collect();
    ids.sort_by(|&a, &b| lp[b].partial_cmp(&lp[a]).unwrap().then(a.cmp(&b)));
    ids.into_iter().take(n).map(|j| (j as i64, lp[j])).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a == b) || (a - b).abs() <= 1e-12 * a.abs().max(1.0)
}

#[test]
fn p15_logprobs_modes_ranks_and_top_alternatives() {
    let mut rng = Rng(15);
    for case in 0..scaled(40) {
        let v = 2 + rng.below(500);
        let mut x = logits(&mut rng, v, 2.0);
        // Some ties, to exercise the order by id.
        x[v - 1] = x[0];
        let t = [0.0, 0.7, 1.0, 1.5][case % 4];
        let k = [0, 5, 0, 40][(case / 4) % 4];
        let n = 1 + rng.below(v.min(30));
        let bias = vec![(1u32, 1.5)];
        for mode in [
            LogprobsMode::Sampled,
            LogprobsMode::Processed,
            LogprobsMode::Raw,
        ] {
            let params = SamplingParams::default()
                .temperature(t)
                .top_k(k)
                .logit_bias(bias.clone())
                .top_logprobs(n)
                .logprobs_mode(mode);
            let d = sample_batch(
                &x,
                v,
                &params,
                &Histories::new(),
                &Seed::Fixed(case as u64),
                true,
            )
            .unwrap();
            let mut z = x.clone();
            z[1] += 1.5;
            let tt = if t == 0.0 { 1.0 } else { t };
            let lp = match mode {
                LogprobsMode::Raw => log_softmax_ref(&x, 1.0),
                LogprobsMode::Processed => log_softmax_ref(&z, tt),
                _ => {
                    // Kept: top-k of z (or the greedy token), renormalised.
                    let order = top_ref(&z, v);
                    let kept = if t == 0.0 {
                        1
                    } else if k == 0 {
                        v
                    } else {
                        k.min(v as i64) as usize
                    };
                    let mut zz = vec![f64::NEG_INFINITY; v];
                    for &(j, _) in &order[..kept] {
                        zz[j as usize] = z[j as usize];
                    }
                    log_softmax_ref(&zz, tt)
                }
            };
            let tok = d.tokens[0] as usize;
            assert!(
                close(d.logprobs[0], lp[tok]),
                "{mode:?} {} vs {}",
                d.logprobs[0],
                lp[tok]
            );
            let rank = lp.iter().filter(|&&e| e >= lp[tok]).count() as i64;
            assert_eq!(d.ranks[0], rank, "{mode:?} case {case}");
            let want = top_ref(&lp, n);
            assert_eq!(
                d.top_ids,
                want.iter().map(|p| p.0).collect::<Vec<_>>(),
                "{mode:?} case {case}"
            );
            for (g, w) in d.top_logprobs.iter().zip(&want) {
                assert!(close(*g, w.1), "{mode:?} {g} vs {}", w.1);
            }
        }
    }
}

#[test]
fn p16_token_logprobs_is_log_softmax_at_the_ids() {
    let mut rng = Rng(16);
    for _ in 0..scaled(30) {
        let v = 1 + rng.below(70_000);
        let rows = 1 + rng.below(3);
        let x: Vec<f32> = (0..rows * v).map(|_| (rng.normal() * 4.0) as f32).collect();
        let ids: Vec<i64> = (0..rows).map(|_| rng.below(v) as i64).collect();
        let t = 0.3 + rng.uniform() * 2.0;
        let mut got = vec![0.0f32; rows];
        let mut ranks = vec![0i64; rows];
        token_logprobs_rows(&x, v, &ids, t.into(), &mut got, Some(&mut ranks)).unwrap();
        for r in 0..rows {
            let row = &x[r * v..(r + 1) * v];
            let mut full = vec![0.0f32; v];
            log_softmax(row, &mut full, t).unwrap();
            let j = ids[r] as usize;
            let want = log_softmax_ref(&row.iter().map(|&e| e as f64).collect::<Vec<_>>(), t)[j];
            assert!((got[r] as f64 - want).abs() <= 2e-6 * want.abs().max(1.0));
            assert!((got[r] - full[j]).abs() <= 4e-6 * full[j].abs().max(1.0));
            assert_eq!(
                ranks[r],
                row.iter().filter(|&&e| e >= row[j]).count() as i64
            );
        }
    }
    let e = token_logprobs_rows(&[0.0f32; 4], 2, &[0, 2], 1.0.into(), &mut [0.0; 2], None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("token_ids") && e.contains("row 1"), "{e}");
}

#[test]
fn p17_sampler_matches_stateless_calls_with_its_histories() {
    // Greedy with penalties: the stateful sampler's incremental counts must steer exactly as
    // the stateless call over the whole history does.
    let mut rng = Rng(17);
    let (rows, v) = (3, 50);
    let prompts: Vec<Vec<u32>> = (0..rows)
        .map(|_| (0..10).map(|_| rng.below(v) as u32).collect())
        .collect();
    let params = SamplingParams::greedy()
        .repetition_penalty(1.3)
        .frequency_penalty(0.2)
        .presence_penalty(0.1)
        .bad_words(vec![vec![4, 5], vec![7]]);
    let mut s = Sampler::new(params.clone(), Some(1))
        .unwrap()
        .with_prompts(prompts.clone())
        .unwrap();
    let mut outputs: Vec<Vec<u32>> = vec![Vec::new(); rows];
    for step in 0..scaled(200) {
        let x: Vec<f32> = (0..rows * v).map(|_| (rng.normal() * 0.5) as f32).collect();
        if step % 7 == 3 {
            let forced: Vec<Vec<u32>> = (0..rows).map(|_| vec![rng.below(v) as u32]).collect();
            s.accept(&forced).unwrap();
            for (o, f) in outputs.iter_mut().zip(&forced) {
                o.extend(f);
            }
        }
        let h = Histories::new()
            .prompt_tokens(&prompts)
            .output_tokens(&outputs);
        let want = sample_batch(&x, v, &params, &h, &Seed::Fixed(0), false).unwrap();
        let got = s.sample_batch(&x, v, false).unwrap();
        assert_eq!(got.tokens, want.tokens, "step {step}");
        for (o, &t) in outputs.iter_mut().zip(&got.tokens) {
            o.push(t as u32);
        }
    }
    for (r, o) in outputs.iter().enumerate() {
        assert_eq!(s.output_tokens(r), &o[..]);
    }
}

#[test]
fn p17_reset_restarts_the_stream_and_failed_calls_change_nothing() {
    let params = SamplingParams::default().repetition_penalty(1.5);
    let mut s = Sampler::new(params, Some(3)).unwrap();
    let x = vec![0.0f32; 2 * 1000];
    let first: Vec<Vec<i64>> = (0..5)
        .map(|_| s.sample_batch(&x, 1000, false).unwrap().tokens)
        .collect();
    // Another row count is refused, and changes nothing.
    let e = s.sample_batch(&x, 500, false).unwrap_err();
    assert!(e.to_string().contains("row"), "{e}");
    assert!(s.sample_batch(&[f32::NAN; 2000], 1000, false).is_err());
    assert_eq!(s.calls(), 5);
    assert_eq!(s.output_tokens(0).len(), 5);
    s.reset();
    assert_eq!(s.calls(), 0);
    assert!(s.output_tokens(1).is_empty());
    let again: Vec<Vec<i64>> = (0..5)
        .map(|_| s.sample_batch(&x, 1000, false).unwrap().tokens)
        .collect();
    assert_eq!(first, again);
    // accept does not advance the stream.
    s.reset();
    s.accept(&[vec![], vec![]]).unwrap();
    assert_eq!(s.sample_batch(&x, 1000, false).unwrap().tokens, first[0]);
}

#[test]
fn p5_pipeline_results_do_not_depend_on_threads() {
    let mut rng = Rng(55);
    let (rows, v) = (3, 70_000);
    let x: Vec<f32> = (0..rows * v).map(|_| (rng.normal() * 3.0) as f32).collect();
    let outputs: Vec<Vec<u32>> = (0..rows)
        .map(|_| (0..300).map(|_| rng.below(v) as u32).collect())
        .collect();
    let params = SamplingParams::default()
        .temperature(0.8)
        .top_p(0.9)
        .repetition_penalty(1.1)
        .frequency_penalty(0.2)
        .logit_bias(vec![(5, 3.0)])
        .top_logprobs(5);
    let h = Histories::new().output_tokens(&outputs);
    let run = |threads| {
        set_num_threads(threads).unwrap();
        let d = sample_batch(&x, v, &params, &h, &Seed::Fixed(9), true).unwrap();
        let one = sample_batch(
            &x[..v],
            v,
            &params,
            &Histories::new().output_tokens(&outputs[..1]),
            &Seed::PerRow(vec![9]),
            true,
        )
        .unwrap();
        (d, one)
    };
    let a = run(1);
    let b = run(2);
    set_num_threads(logitkit::available_cpus()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn p15_rank_counts_only_kept_ties_at_the_cut() {
    // Three equal logits, top-k 2: the kept two each have probability 1/2, the third 0.
    let x = [1.0f64, 1.0, 1.0, 0.0];
    let params = SamplingParams::default().top_k(2).top_logprobs(4);
    for seed in 0..20 {
        let d = sample_batch(&x, 4, &params, &Histories::new(), &Seed::Fixed(seed), true).unwrap();
        assert!(d.tokens[0] < 2);
        assert_eq!(d.ranks, [2]);
        assert_eq!(d.top_ids, [0, 1, 2, 3]);
        assert!(close(d.top_logprobs[0], 0.5f64.ln()));
        assert_eq!(d.top_logprobs[2..], [f64::NEG_INFINITY; 2]);
    }
}
