use half::bf16;
use logitkit::{sample_rows, SamplingParams, Seed};
use std::time::Instant;
fn main() {
    logitkit::set_num_threads(1).unwrap();
    let v = 128256;
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let x: Vec<f32> = (0..v)
        .map(|_| {
            let mut a = 0.0;
            for _ in 0..4 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                a += (s >> 11) as f64 / (1u64 << 53) as f64;
            }
            ((a - 2.0) * 6.0) as f32
        })
        .collect();
    let xb: Vec<bf16> = x.iter().map(|&e| bf16::from_f32(e)).collect();
    let x32: Vec<f32> = xb.iter().map(|e| e.to_f32()).collect();
    let only = std::env::var("CASE").ok();
    let cases = [
        ("greedy", SamplingParams::default().temperature(0.0)),
        ("T1", SamplingParams::default().temperature(1.0)),
        (
            "T.8 p.95",
            SamplingParams::default().temperature(0.8).top_p(0.95),
        ),
        ("minp", SamplingParams::default().min_p(0.05)),
    ];
    for (name, p) in cases
        .iter()
        .filter(|c| only.as_deref().is_none_or(|o| o == c.0))
    {
        let mut t = [0i64];
        let mut best = [f64::INFINITY; 2];
        for _ in 0..5 {
            for (i, run) in [0, 1].iter().enumerate() {
                let t0 = Instant::now();
                for k in 0..200 {
                    if *run == 0 {
                        sample_rows(&x32, v, p, &Seed::Fixed(k), &mut t, None).unwrap();
                    } else {
                        sample_rows(&xb, v, p, &Seed::Fixed(k), &mut t, None).unwrap();
                    }
                }
                best[i] = best[i].min(t0.elapsed().as_secs_f64() / 200.0 * 1e6);
            }
        }
        println!(
            "{name:10} f32 {:6.1} us  bf16 {:6.1} us  {:.2}x",
            best[0],
            best[1],
            best[1] / best[0]
        );
    }
}
