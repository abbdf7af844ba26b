//! Profiling harness for one sampling configuration on one 32000-token row, single thread:
//! `cargo build --release --example prof_sample && perf record -e cpu-clock -g target/release/examples/prof_sample`.

use logitkit::{sample_rows, SamplingParams, Seed};
fn main() {
    logitkit::set_num_threads(1).unwrap();
    let v = 32000;
    let mut st = 0x9E37_79B9_7F4A_7C15u64;
    let x: Vec<f32> = (0..v)
        .map(|_| {
            let mut s = 0.0;
            for _ in 0..4 {
                st ^= st << 13;
                st ^= st >> 7;
                st ^= st << 17;
                s += (st >> 11) as f64 / (1u64 << 53) as f64;
            }
            ((s - 2.0) * 3.0 * 1.7) as f32
        })
        .collect();
    let p = SamplingParams::default()
        .temperature(0.8)
        .top_k(50)
        .top_p(0.9);
    let mut tok = [0i64; 1];
    for i in 0..400_000u64 {
        sample_rows(&x, v, &p, &Seed::Fixed(i), &mut tok, None).unwrap();
    }
    println!("{}", tok[0]);
}
