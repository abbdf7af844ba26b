//! Quick timing of sampling against softmax of the same batch (contract P9), release mode:
//! `cargo run --release --example sampling_timing [threads]`.

use std::time::Instant;

use logitkit::{sample_rows, softmax_rows, SamplingParams, Seed};

/// Deterministic pseudo-normal logits (sum of uniforms), scaled like LLM logits.
fn logits(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| ((0..4).map(|_| next()).sum::<f64>() - 2.0) as f32 * 3.0)
        .collect()
}

fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn main() {
    let threads: usize = std::env::args().nth(1).map_or(2, |a| a.parse().unwrap());
    logitkit::set_num_threads(threads).unwrap();
    println!("threads={threads} simd={}", logitkit::simd_level().name());
    let cases: [(&str, SamplingParams); 6] = [
        (
            "T=.8,k=50,p=.9",
            SamplingParams::default()
                .temperature(0.8)
                .top_k(50)
                .top_p(0.9),
        ),
        ("p=.9", SamplingParams::default().top_p(0.9)),
        ("min_p=.05", SamplingParams::default().min_p(0.05)),
        ("plain", SamplingParams::default()),
        ("greedy", SamplingParams::greedy()),
        ("k=50", SamplingParams::default().top_k(50)),
    ];
    for &(rows, v) in &[
        (1, 32000),
        (1, 128256),
        (8, 128256),
        (32, 128256),
        (128, 151936),
    ] {
        let x = logits(rows * v, 1);
        let mut out = vec![0.0f32; x.len()];
        let reps = if rows >= 32 { 10 } else { 40 };
        let soft = best_of(reps, || softmax_rows(&x, &mut out, v, 1.0.into()).unwrap());
        let mut line = format!("({rows:>3},{v:>6}) softmax {:>9.1} us", soft * 1e6);
        for (name, params) in &cases {
            let mut tok = vec![0i64; rows];
            let t = best_of(reps, || {
                sample_rows(&x, v, params, &Seed::Fixed(3), &mut tok, None).unwrap()
            });
            line += &format!(" | {name} {:>9.1} us ({:.2}x)", t * 1e6, t / soft);
        }
        println!("{line}");
    }
}
