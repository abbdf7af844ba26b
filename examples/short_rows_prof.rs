//! Profiling harness for sampling over many short rows (contract R8): (131072, 8) float32,
//! one thread, `MODE=greedy|t|tp` (default `t`, temperature 0.8; `tp` adds top-p 0.9):
//! `cargo build --release --example short_rows_prof && perf record -g target/release/examples/short_rows_prof`.
use logitkit::{sample_rows, SamplingParams, Seed};
use std::time::Instant;
fn main() {
    logitkit::set_num_threads(1).unwrap();
    let (rows, v) = (131072, 8);
    let mut st = 0x9E37_79B9_7F4A_7C15u64;
    let x: Vec<f32> = (0..rows * v)
        .map(|_| {
            st ^= st << 13;
            st ^= st >> 7;
            st ^= st << 17;
            ((st >> 11) as f64 / (1u64 << 53) as f64 * 6.0 - 3.0) as f32
        })
        .collect();
    let p = match std::env::var("MODE").as_deref() {
        Ok("greedy") => SamplingParams::default().temperature(0.0),
        Ok("tp") => SamplingParams::default().temperature(0.8).top_p(0.9),
        _ => SamplingParams::default().temperature(0.8),
    };
    let mut tok = vec![0i64; rows];
    let mut best = f64::INFINITY;
    for i in 0..60u64 {
        let t0 = Instant::now();
        sample_rows(&x, v, &p, &Seed::Fixed(i), &mut tok, None).unwrap();
        best = best.min(t0.elapsed().as_secs_f64());
    }
    println!(
        "best {:.2} ms, {:.1} ns/row, token[0] {}",
        best * 1e3,
        best * 1e9 / rows as f64,
        tok[0]
    );
}
