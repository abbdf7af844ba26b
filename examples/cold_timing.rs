//! One shape's softmax and log-softmax with the caches flushed before each call (a 64 MiB
//! buffer is written in between, as the other contenders' calls do in `benches/compare.py`),
//! 2 threads, medians and minima, release mode:
//! `cargo run --release --example cold_timing ROWS LEN [rounds]`.

use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let arg = |i: usize, d: usize| std::env::args().nth(i).map_or(d, |a| a.parse().unwrap());
    let (rows, n, rounds) = (arg(1, 32), arg(2, 128256), arg(3, 40));
    let x: Vec<f32> = (0..rows * n)
        .map(|i| ((i * 7919) % 1000) as f32 * 0.01)
        .collect();
    let mut out = vec![0.0f32; x.len()];
    let mut flush = vec![0u8; 64 << 20];
    logitkit::set_num_threads(2).unwrap();
    let (mut soft, mut log, mut copy) = (vec![], vec![], vec![]);
    for r in 0..rounds {
        for (k, v) in [&mut soft, &mut log, &mut copy].into_iter().enumerate() {
            flush.iter_mut().for_each(|b| *b = b.wrapping_add(r as u8));
            let t = Instant::now();
            match k {
                0 => logitkit::softmax_rows(&x, &mut out, n, 1.0.into()).unwrap(),
                1 => logitkit::log_softmax_rows(&x, &mut out, n, 1.0.into()).unwrap(),
                _ => out.copy_from_slice(&x),
            }
            v.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    std::hint::black_box(&flush);
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "{rows}x{n} cold (median / fastest µs): softmax {:.0} / {:.0}, log_softmax {:.0} / {:.0}, copy {:.0} / {:.0}",
        median(soft.clone()),
        min(&soft),
        median(log.clone()),
        min(&log),
        median(copy.clone()),
        min(&copy)
    );
}
