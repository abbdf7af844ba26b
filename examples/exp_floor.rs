//! Short rows against one core's exp throughput, per SIMD level, one thread, release mode:
//! `cargo run --release --example exp_floor [rows] [len]` (default 65536 x 10).
//!
//! For each level the many-rows kernel (softmax and log-softmax, as `softmax_rows` runs them)
//! is timed beside two floors over the same elements taken as one long row: `exp_store_sum`
//! (one exp, one add and one store per element, none of the per-row work) and a plain copy.
//! The levels' timings are interleaved round by round, medians of `EXP_FLOOR_ROUNDS` (21);
//! `EXP_FLOOR_LEVELS` (names joined by commas) keeps only those levels.

use std::time::Instant;

use logitkit::__kernels::{exp_store_sum, rows_at, Store};
use logitkit::{Op, SimdLevel};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Microseconds per call of `f`, averaged over enough calls to take about 20 ms.
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    f();
    let once = t.elapsed().as_secs_f64().max(1e-7);
    let calls = ((0.02 / once) as usize).clamp(1, 10_000);
    let t = Instant::now();
    for _ in 0..calls {
        f();
    }
    t.elapsed().as_secs_f64() * 1e6 / calls as f64
}

fn main() {
    let rows: usize = std::env::args()
        .nth(1)
        .map_or(65536, |a| a.parse().unwrap());
    let len: usize = std::env::args().nth(2).map_or(10, |a| a.parse().unwrap());
    let rounds: usize = std::env::var("EXP_FLOOR_ROUNDS").map_or(21, |r| r.parse().unwrap());
    let x: Vec<f32> = (0..rows * len)
        .map(|i| ((i as u64).wrapping_mul(2654435761) % 1000) as f32 / 100.0 - 5.0)
        .collect();
    let mut out = vec![0.0f32; x.len()];
    // The widest level first; `EXP_FLOOR_LEVELS=avx2,scalar` (for instance) keeps those.
    let only = std::env::var("EXP_FLOOR_LEVELS").ok();
    let levels: Vec<SimdLevel> = logitkit::supported_levels()
        .into_iter()
        .rev()
        .filter(|l| {
            only.as_ref()
                .is_none_or(|o| o.split(',').any(|n| n == l.name()))
        })
        .collect();
    let names = ["softmax", "log_softmax", "exp floor", "copy"];
    let mut times = vec![vec![Vec::new(); names.len()]; levels.len()];
    for round in 0..rounds {
        for i in 0..levels.len() {
            // Alternate the order of the levels between rounds.
            let li = if round % 2 == 0 {
                i
            } else {
                levels.len() - 1 - i
            };
            let level = levels[li];
            let t = &mut times[li];
            for (k, op) in [Op::Softmax, Op::LogSoftmax].into_iter().enumerate() {
                let (x, out) = (&x, &mut out);
                t[k].push(time(|| {
                    rows_at(level, op, x, out, len, 1.0, false, Store::Cached)
                }));
            }
            t[2].push(time(|| {
                std::hint::black_box(exp_store_sum(level, &x, &mut out, 5.0, 1.0));
            }));
            t[3].push(time(|| out.copy_from_slice(std::hint::black_box(&x))));
        }
    }
    println!("{rows}x{len} f32, 1 thread, medians of {rounds} interleaved rounds (µs)");
    println!("| level | softmax | log_softmax | exp floor | copy |");
    println!("|---|---:|---:|---:|---:|");
    let med: Vec<Vec<f64>> = times
        .into_iter()
        .map(|t| t.into_iter().map(median).collect())
        .collect();
    for (level, m) in levels.iter().zip(&med) {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            level.name(),
            m[0],
            m[1],
            m[2],
            m[3]
        );
    }
    if levels.len() >= 2 {
        let (a, b) = (&med[0], &med[1]);
        println!(
            "{} / {}: softmax {:.2}x, log_softmax {:.2}x, exp floor {:.2}x; {} exp floor / {} softmax {:.2}x",
            levels[1].name(),
            levels[0].name(),
            b[0] / a[0],
            b[1] / a[1],
            b[2] / a[2],
            levels[1].name(),
            levels[0].name(),
            b[2] / a[0]
        );
    }
}
