//! Minimum-of-N wall times (µs) of softmax and log-softmax over the f32 shapes at 1 and
//! 2 threads, with a same-size memcpy: a quick check that is robust to a noisy, shared machine
//! (the minimum is the run least disturbed by other processes). Not a criterion bench:
//! `cargo bench --bench shapes_min`.

use std::hint::black_box;
use std::time::Instant;

mod common;
use common::SHAPES;

fn min_us(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best * 1e6
}

fn main() {
    // `cargo bench` passes `--bench`; a name filter may follow.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    println!("shape         memcpy  softmax/t1  log/t1  softmax/t2  log/t2   (min µs)");
    for &(rows, n) in SHAPES {
        let shape = format!("{rows}x{n}");
        if filter.as_ref().is_some_and(|f| !shape.contains(f.as_str())) {
            continue;
        }
        let x: Vec<f32> = (0..rows * n)
            .map(|i| ((i * 7919) % 1000) as f32 * 0.01 - 5.0)
            .collect();
        let mut out = vec![0.0f32; x.len()];
        let reps = (200_000_000 / (rows * n)).clamp(5, 2000);
        let mut line = format!("{shape:<12}");
        line += &format!(
            " {:>7.1}",
            min_us(reps, || out.copy_from_slice(black_box(&x)))
        );
        let mut times = Vec::new();
        for threads in [1, 2] {
            logitkit::set_num_threads(threads).unwrap();
            for log in [false, true] {
                times.push(min_us(reps, || {
                    if log {
                        logitkit::log_softmax_rows(black_box(&x), &mut out, n, 1.0.into()).unwrap()
                    } else {
                        logitkit::softmax_rows(black_box(&x), &mut out, n, 1.0.into()).unwrap()
                    }
                }));
            }
        }
        for t in times {
            line += &format!(" {t:>10.1}");
        }
        println!("{line}");
    }
}
