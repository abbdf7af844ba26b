//! The block kernels of every level this CPU has, on one 16384-element f32 block (in L1/L2),
//! and the many-rows kernel on 1000 rows of 10. Single thread. `cargo bench --bench kernels`.

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use logitkit::__kernels as k;
use logitkit::{supported_levels, Op};

mod common;

fn logits(len: usize) -> Vec<f32> {
    common::logits(len, 0x9E37_79B9_7F4A_7C15)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("kernels_f32");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(600));
    let x = logits(k::BLOCK);
    let mut out = vec![0.0f32; k::BLOCK];
    let short = logits(10 * 1000);
    let mut short_out = vec![0.0f32; short.len()];
    let temps = vec![1.0f64; 1000];
    for level in supported_levels() {
        let name = level.name();
        let (m, _) = k::max(level, &x);
        g.bench_function(BenchmarkId::new("max", name), |b| {
            b.iter(|| k::max(level, black_box(&x)))
        });
        g.bench_function(BenchmarkId::new("exp_store_sum", name), |b| {
            b.iter(|| k::exp_store_sum(level, black_box(&x), &mut out, m, 1.0))
        });
        g.bench_function(BenchmarkId::new("exp_store_sum_t0.7", name), |b| {
            b.iter(|| k::exp_store_sum(level, black_box(&x), &mut out, m, 0.7))
        });
        g.bench_function(BenchmarkId::new("sum_exp", name), |b| {
            b.iter(|| k::sum_exp(level, black_box(&x), m, 1.0))
        });
        g.bench_function(BenchmarkId::new("scale", name), |b| {
            b.iter(|| k::scale(level, black_box(&mut out), 0.5))
        });
        for op in [Op::Softmax, Op::LogSoftmax] {
            g.bench_function(
                BenchmarkId::new(format!("rows_1000x10_{op:?}"), name),
                |b| {
                    b.iter(|| {
                        k::rows(
                            level,
                            op,
                            black_box(&short),
                            &mut short_out,
                            10,
                            &temps,
                            k::Store::Cached,
                        )
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
