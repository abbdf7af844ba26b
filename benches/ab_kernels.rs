//! A/B speed probe for the row kernels (issue 22): the median wall time (µs) of `softmax_rows`
//! and `log_softmax_rows` (out of place, temperature 1) over the issue's f32 shapes and four f64
//! shapes, at 1 thread and at the SIMD level the environment gives (`LOGITKIT_SIMD`). One JSON
//! object per case on stdout, `{"case": "softmax f32 32x128256", "us": 123.4}`; the level, thread
//! count and calls per case go to stderr as one JSON object first.
//!
//! Built once per tree and run alternately by `benches/ab_kernels.py`, which compares an old and
//! a new build case by case:
//!
//! ```text
//! cargo bench --bench ab_kernels --no-run        # prints the executable's path
//! LOGITKIT_SIMD=avx2 target/release/deps/ab_kernels-<hash> [--quick] [FILTER]
//! ```
//!
//! Each case is warmed up, then timed as the median of K calls, K chosen from the warm-up so that
//! the case takes about 0.3 s (0.1 s with `--quick`), at least 5 calls. `FILTER` keeps the cases
//! whose name contains it (e.g. `f64`, `log_softmax f32 1x`). `AB_EXTRA_F32=4096x100,65536x20`
//! adds `f32` shapes.

use std::hint::black_box;
use std::time::Instant;

mod common;
use common::{logits, SHAPES};

/// The f64 shapes (rows, row length) of the comparison.
const SHAPES_F64: &[(usize, usize)] = &[(1, 32_000), (32, 128_256), (4096, 1000), (65_536, 10)];

/// Fewest timed calls per case, however slow the call.
const MIN_CALLS: usize = 5;
/// Most timed calls per case, however fast the call.
const MAX_CALLS: usize = 1_000_000;

fn time_us(f: &mut impl FnMut()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64() * 1e6
}

/// Median of `calls` timed calls after a warm-up of at least 2 calls and ~1/5 of the budget
/// (first touch of the output, the pool, the caches, the clock). Returns (median µs, calls).
fn median_us(budget_s: f64, mut f: impl FnMut()) -> (f64, usize) {
    let warm_until = Instant::now();
    let mut warm = Vec::new();
    while warm.len() < 2 || warm_until.elapsed().as_secs_f64() < budget_s / 5.0 {
        warm.push(time_us(&mut f));
    }
    // The warm-up's faster half estimates one call (the first calls fault pages in).
    warm.sort_by(f64::total_cmp);
    let per_call =
        warm[..warm.len().div_ceil(2)].iter().sum::<f64>() / warm.len().div_ceil(2) as f64;
    let calls = ((budget_s * 1e6 / per_call.max(1e-3)) as usize).clamp(MIN_CALLS, MAX_CALLS);
    let mut ts: Vec<f64> = (0..calls).map(|_| time_us(&mut f)).collect();
    ts.sort_by(f64::total_cmp);
    let mid = ts.len() / 2;
    let median = if ts.len() % 2 == 1 {
        ts[mid]
    } else {
        (ts[mid - 1] + ts[mid]) / 2.0
    };
    (median, calls)
}

fn run_shape<T: logitkit::Float>(
    dtype: &str,
    x: &[T],
    row_len: usize,
    rows: usize,
    budget_s: f64,
    filter: Option<&str>,
) {
    let mut out = x.to_vec();
    for (op, log) in [("softmax", false), ("log_softmax", true)] {
        let case = format!("{op} {dtype} {rows}x{row_len}");
        if filter.is_some_and(|f| !case.contains(f)) {
            continue;
        }
        let (us, calls) = median_us(budget_s, || {
            if log {
                logitkit::log_softmax_rows(black_box(x), &mut out, row_len, 1.0.into()).unwrap()
            } else {
                logitkit::softmax_rows(black_box(x), &mut out, row_len, 1.0.into()).unwrap()
            }
            black_box(&mut out);
        });
        println!("{{\"case\": \"{case}\", \"us\": {us:.3}, \"calls\": {calls}}}");
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `--quick` shortens the cases; a name filter may follow.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let filter = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .map(String::as_str);
    let budget_s = if quick { 0.1 } else { 0.3 };

    logitkit::set_num_threads(1).unwrap();
    eprintln!(
        "{{\"level\": \"{}\", \"threads\": {}, \"budget_s\": {budget_s}}}",
        logitkit::simd_level().name(),
        logitkit::get_num_threads()
    );

    let wanted = |dtype: &str, rows: usize, n: usize| {
        let shape = format!("{dtype} {rows}x{n}");
        filter.is_none_or(|f| {
            ["softmax ", "log_softmax "]
                .iter()
                .any(|op| (op.to_string() + &shape).contains(f))
        })
    };
    // Extra f32 shapes from `AB_EXTRA_F32` ("4096x100,65536x20"), after the issue's.
    let extra: Vec<(usize, usize)> = std::env::var("AB_EXTRA_F32")
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| s.split_once('x'))
        .map(|(r, n)| (r.parse().expect("rows"), n.parse().expect("row length")))
        .collect();
    for &(rows, n) in SHAPES.iter().chain(&extra) {
        if wanted("f32", rows, n) {
            let x = logits(rows * n, 0x9E37_79B9_7F4A_7C15);
            run_shape("f32", &x, n, rows, budget_s, filter);
        }
    }
    for &(rows, n) in SHAPES_F64 {
        if wanted("f64", rows, n) {
            let x: Vec<f64> = logits(rows * n, 0x9E37_79B9_7F4A_7C15)
                .into_iter()
                .map(f64::from)
                .collect();
            run_shape("f64", &x, n, rows, budget_s, filter);
        }
    }
}
