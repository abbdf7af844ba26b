//! Times `sample_batch` with one processing stage at a time against the plain call (no
//! Python): where the pipeline's cost goes. `cargo run --release --example pipeline_timing`.

use std::time::Instant;

use logitkit::{sample_batch, Histories, SamplingParams, Seed, TokenBitmask};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    if let Some(t) = std::env::var("THREADS").ok().and_then(|t| t.parse().ok()) {
        logitkit::set_num_threads(t).unwrap();
    }
    let (rows, vocab) = (1usize, 128_256usize);
    let mut s = 1u64;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) as f64 / (1u64 << 31) as f64
    };
    let x: Vec<f32> = (0..rows * vocab)
        .map(|_| (next() * 12.0 - 6.0) as f32)
        .collect();
    let ids = |n: usize, next: &mut dyn FnMut() -> f64| -> Vec<u32> {
        (0..n).map(|_| (next() * vocab as f64) as u32).collect()
    };
    let prompts: Vec<Vec<u32>> = (0..rows).map(|_| ids(512, &mut next)).collect();
    let outputs: Vec<Vec<u32>> = (0..rows).map(|_| ids(256, &mut next)).collect();
    let bad: Vec<Vec<u32>> = (0..200).map(|i| ids(1 + i % 3, &mut next)).collect();
    let bias: Vec<(u32, f64)> = ids(20, &mut next).into_iter().map(|i| (i, 1.0)).collect();
    let words = vec![u32::MAX; vocab.div_ceil(32)];
    let base = SamplingParams::default().temperature(0.8).top_p(0.9);
    let cases: Vec<(&str, SamplingParams)> = vec![
        ("plain", base.clone()),
        ("bias", base.clone().logit_bias(bias.clone())),
        (
            "bitmask",
            base.clone().token_bitmask(TokenBitmask::all_rows(words)),
        ),
        ("bad_words", base.clone().bad_words(bad)),
        ("repetition", base.clone().repetition_penalty(1.1)),
        ("frequency", base.clone().frequency_penalty(0.2)),
        ("lp", base.clone()),
        ("top20", base.clone().top_logprobs(20)),
        ("T-only", SamplingParams::default().temperature(0.8)),
        ("T-only lp", SamplingParams::default().temperature(0.8)),
        (
            "T-only top20",
            SamplingParams::default().temperature(0.8).top_logprobs(20),
        ),
    ];
    let h = Histories::new()
        .prompt_tokens(&prompts)
        .output_tokens(&outputs);
    let only = std::env::var("ONLY").ok();
    // A Sampler step with penalties after 10 and after 100,000 accepted tokens (Zipf-like ids).
    for n in [10usize, 100_000] {
        let pen = base
            .clone()
            .repetition_penalty(1.1)
            .frequency_penalty(0.2)
            .presence_penalty(0.1);
        let mut sampler = logitkit::Sampler::new(pen, Some(1)).unwrap();
        let toks: Vec<u32> = (0..n)
            .map(|_| ((1.0 / (next() + 1e-9)).powf(1.0 / 0.2) as u64 % vocab as u64) as u32)
            .collect();
        sampler.accept(&[toks]).unwrap();
        let mut t = Vec::new();
        for _ in 0..300 {
            let t0 = Instant::now();
            sampler.sample_batch(&x, vocab, false).unwrap();
            t.push(t0.elapsed().as_secs_f64() * 1e6);
        }
        println!("sampler after {n:6} tokens {:8.1} us", median(t));
    }
    for round in 0..3 {
        for (name, p) in cases
            .iter()
            .filter(|c| only.as_deref().is_none_or(|o| o == c.0))
        {
            let mut t = Vec::new();
            for _ in 0..std::env::var("N")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(200)
            {
                let t0 = Instant::now();
                sample_batch(&x, vocab, p, &h, &Seed::Fixed(1), name.ends_with("lp")).unwrap();
                t.push(t0.elapsed().as_secs_f64() * 1e6);
            }
            if round == 2 {
                println!("{name:12} {:8.1} us", median(t));
            }
        }
    }
}
