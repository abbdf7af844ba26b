//! Quick timing of one softmax call, back to back and after a gap in which the calling thread
//! does other work (as in a decoding loop, or the interleaved comparison), release mode:
//! `cargo run --release --example softmax_timing [threads] [gap_us] [ROWSxLEN] [temperature]`
//! (ROWSxLEN times that one shape only; the temperature is 1 unless given).

use std::time::{Duration, Instant};

use logitkit::{log_softmax_rows, softmax_rows};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Keeps the calling thread busy for `us` microseconds without sleeping.
fn busy(us: u64) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_micros(us) {
        std::hint::spin_loop();
    }
}

fn main() {
    let threads: usize = std::env::args().nth(1).map_or(2, |a| a.parse().unwrap());
    let gap: u64 = std::env::args().nth(2).map_or(300, |a| a.parse().unwrap());
    let temperature: f64 = std::env::args().nth(4).map_or(1.0, |a| a.parse().unwrap());
    logitkit::set_num_threads(threads).unwrap();
    println!(
        "threads={threads} simd={} gap={gap}us temperature={temperature} (median µs)",
        logitkit::simd_level().name()
    );
    println!("| op | shape | back to back | after a gap |");
    println!("|---|---|---|---|");
    let only: Option<(usize, usize)> = std::env::args().nth(3).map(|a| {
        let (r, n) = a.split_once('x').expect("shape as ROWSxLEN");
        (r.parse().unwrap(), n.parse().unwrap())
    });
    let shapes = [
        (1, 10),
        (1, 32000),
        (1, 128256),
        (4096, 1000),
        (32, 128256),
        (65536, 10),
    ];
    for (rows, n) in only.map_or(shapes.to_vec(), |s| vec![s]) {
        let x: Vec<f32> = (0..rows * n)
            .map(|i| ((i * 7919) % 1000) as f32 * 0.01)
            .collect();
        let mut out = vec![0.0f32; x.len()];
        for (name, log) in [("softmax", false), ("log_softmax", true)] {
            let mut call = || {
                if log {
                    log_softmax_rows(&x, &mut out, n, temperature.into()).unwrap()
                } else {
                    softmax_rows(&x, &mut out, n, temperature.into()).unwrap()
                }
            };
            let reps = if only.is_some() {
                3000
            } else if rows * n > 1 << 20 {
                30
            } else {
                300
            };
            let mut b2b = Vec::new();
            let mut gapped = Vec::new();
            for _ in 0..reps {
                let t = Instant::now();
                call();
                b2b.push(t.elapsed().as_secs_f64() * 1e6);
            }
            for _ in 0..reps {
                busy(gap);
                let t = Instant::now();
                call();
                gapped.push(t.elapsed().as_secs_f64() * 1e6);
            }
            println!(
                "| {name} | {rows}x{n} | {:.2} | {:.2} |",
                median(b2b),
                median(gapped)
            );
        }
    }
}
