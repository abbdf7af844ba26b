//! In-process timing of each P20-P26 stage on top of `sample(T=0.8, top_p=0.95)`, rows of
//! 128256 N(0, 9) float32 logits: `cargo run --release --example stage_timing [rows] [threads]`
//! (`STAGE=epsilon` runs one stage alone, for a profiler). Per stage: the 10th percentile of
//! 200 calls in each of 5 rounds, the best round (the least disturbed by other jobs).
use logitkit::{sample_rows, SamplingParams, Seed};
use std::time::Instant;
fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let rows = args.first().copied().unwrap_or(1);
    let threads = args.get(1).copied().unwrap_or(1);
    let only = std::env::var("STAGE").ok();
    logitkit::set_num_threads(threads).unwrap();
    let v = 128256;
    let sd: f64 = std::env::var("SD").map_or(3.0, |s| s.parse().unwrap());
    let mut st = 0x9E37_79B9_7F4A_7C15u64;
    let x: Vec<f32> = (0..v * rows)
        .map(|_| {
            let mut s = 0.0;
            for _ in 0..12 {
                st ^= st << 13;
                st ^= st >> 7;
                st ^= st << 17;
                s += (st >> 11) as f64 / (1u64 << 53) as f64;
            }
            ((s - 6.0) * sd) as f32
        })
        .collect();
    let base = SamplingParams::default().temperature(0.8).top_p(0.95);
    let cases: Vec<(&str, SamplingParams)> = vec![
        ("baseline", base.clone()),
        ("typical", base.clone().typical_p(0.9)),
        ("sigma", base.clone().top_n_sigma(1.0)),
        ("epsilon", base.clone().epsilon_cutoff(3e-4)),
        ("eta", base.clone().eta_cutoff(3e-4)),
        ("xtc", base.clone().xtc_threshold(0.1).xtc_probability(0.5)),
        // The coin always says yes.
        ("xtc1", base.clone().xtc_threshold(0.1).xtc_probability(1.0)),
        ("dynatemp", base.clone().dynatemp_range(0.5)),
    ];
    let mut tok = vec![0i64; rows];
    let mut lp = vec![0f64; rows];
    let want_lp = std::env::var("LP").is_ok();
    let calls = 200;
    let mut res: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for round in 0..5 {
        for (ci, (name, p)) in cases.iter().enumerate() {
            if only.as_deref().is_some_and(|o| o != *name) {
                continue;
            }
            let mut ts = Vec::new();
            for i in 0..calls {
                let t0 = Instant::now();
                sample_rows(
                    &x,
                    v,
                    p,
                    &Seed::Fixed(i as u64 + round),
                    &mut tok,
                    if want_lp { Some(&mut lp) } else { None },
                )
                .unwrap();
                ts.push(t0.elapsed().as_secs_f64() * 1e6);
            }
            ts.sort_by(f64::total_cmp);
            res[ci].push(ts[calls / 10]);
        }
    }
    let b = {
        let mut r = res[0].clone();
        r.sort_by(f64::total_cmp);
        r.first().copied().unwrap_or(f64::NAN)
    };
    for (ci, (name, _)) in cases.iter().enumerate() {
        if res[ci].is_empty() {
            continue;
        }
        let mut r = res[ci].clone();
        r.sort_by(f64::total_cmp);
        println!("{name:10} {:8.1} us  {:5.2}x", r[0], r[0] / b);
    }
}
