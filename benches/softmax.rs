//! Softmax and log-softmax over f32 batches of the shapes, at 1 and 2 threads, against a
//! same-size memcpy. Run with `cargo bench --bench softmax`; filter with e.g.
//! `cargo bench --bench softmax -- 1x128256`. Measurement times are short on purpose.

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

mod common;
use common::SHAPES;

/// Deterministic logits, uniform in [-5, 5).
fn logits(len: usize) -> Vec<f32> {
    common::logits(len, 0x2545_F491_4F6C_DD1D)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("softmax_f32");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1200));
    for &(rows, n) in SHAPES {
        let x = logits(rows * n);
        let mut out = vec![0.0f32; rows * n];
        let shape = format!("{rows}x{n}");
        g.throughput(Throughput::Bytes((rows * n * 4) as u64));
        g.bench_function(BenchmarkId::new("memcpy", &shape), |b| {
            b.iter(|| out.copy_from_slice(black_box(&x)))
        });
        for threads in [1usize, 2] {
            logitkit::set_num_threads(threads).unwrap();
            g.bench_function(
                BenchmarkId::new(format!("softmax/t{threads}"), &shape),
                |b| {
                    b.iter(|| {
                        logitkit::softmax_rows(black_box(&x), &mut out, n, 1.0.into()).unwrap()
                    })
                },
            );
            g.bench_function(
                BenchmarkId::new(format!("log_softmax/t{threads}"), &shape),
                |b| {
                    b.iter(|| {
                        logitkit::log_softmax_rows(black_box(&x), &mut out, n, 1.0.into()).unwrap()
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
