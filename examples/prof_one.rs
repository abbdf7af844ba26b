//! Profiling helper: `cargo run --release --example prof_one -- <case>`.
use logitkit::{sample_rows, SamplingParams, Seed};
fn main() {
    let case = std::env::args().nth(1).unwrap_or_default();
    logitkit::set_num_threads(1).unwrap();
    let v = 128256;
    let mut s = 88172645463325252u64;
    let x: Vec<f32> = (0..v)
        .map(|_| {
            let mut a = 0.0;
            for _ in 0..4 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                a += (s >> 11) as f64 / (1u64 << 53) as f64;
            }
            ((a - 2.0) * 3.0) as f32
        })
        .collect();
    let params = match case.as_str() {
        "k" => SamplingParams {
            top_k: 50.into(),
            ..Default::default()
        },
        "m" => SamplingParams {
            min_p: 0.05.into(),
            ..Default::default()
        },
        _ => SamplingParams {
            top_p: 0.9.into(),
            ..Default::default()
        },
    };
    let mut tok = [0i64];
    for i in 0..300 {
        sample_rows(&x, v, &params, &Seed::Fixed(i), &mut tok, None).unwrap();
    }
}
