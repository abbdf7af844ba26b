//! Fuzzing the public sampling API over slices (`sample_batch`, `filter_logits_batch`,
//! `token_logprobs_rows`, `Sampler`) with hostile input: NaN, `±inf`, huge, tiny and subnormal
//! magnitudes, ties, empty and ragged batches, out-of-range and odd parameters. Every call
//! must return without panicking (R2/R3: a panic would reach Python), and either an error or
//! results that are valid: token ids in `[0, V)`, log-probabilities that are probabilities'
//! logs, filtered rows whose kept values are finite (P7) and sum to 1 under softmax.
//!
//! `cargo test` runs a short budget (a few seconds); `make fuzz` runs many more cases in
//! release mode (`PROPTEST_CASES=...`). The lanes fuzz (`tests/fuzz_lanes.rs`) covers the
//! softmax family.

use half::f16;
use logitkit::{
    filter_logits_batch, sample_batch, softmax, token_logprobs_rows, Draws, Float, Histories,
    LogprobsMode, RowParam, Sampler, SamplingParams, Seed, TokenBitmask,
};
use proptest::prelude::*;

mod common;
use common::Rng;

/// 2000 cases under `cargo test` (a second or two); `PROPTEST_CASES` for long runs
/// (`make fuzz`) and short ones (`make valgrind`).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// How a row's values are made (from a seed, so that long rows cost no shrinking).
#[derive(Debug, Clone, Copy)]
enum Style {
    /// Normal logits, scale 3.
    Normal,
    /// A few distinct values: many ties.
    Ties,
    /// Values from the hostile set below, mixed into normal ones at a rate.
    Hostile(u8),
    /// Huge magnitudes near the type's end.
    Huge,
    /// Subnormal and tiny magnitudes around 0 (`±0` included).
    Tiny,
    /// One value everywhere.
    Flat,
}

const HOSTILE: [f64; 12] = [
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::MAX,
    -f64::MAX,
    3e38,
    -3e38,
    65504.0,
    1e-300,
    -0.0,
    5e-324,
    1e30,
];

fn values(style: Style, n: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| match style {
            Style::Normal => rng.normal() * 3.0,
            Style::Ties => (rng.below(4) as f64) - 1.0,
            Style::Hostile(rate) => {
                if rng.below(100) < rate as usize {
                    HOSTILE[rng.below(HOSTILE.len())]
                } else {
                    rng.normal() * 3.0
                }
            }
            Style::Huge => {
                let s = if rng.below(2) == 0 { 1.0 } else { -1.0 };
                s * [f64::MAX, 1e300, 3.4e38, 3e38, 65000.0][rng.below(5)]
                    * (1.0 - rng.uniform() * 1e-3)
            }
            Style::Tiny => [0.0, -0.0, 5e-324, 1e-310, -1e-310, 1e-45, 1e-300][rng.below(7)],
            Style::Flat => 0.5,
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Ty {
    F16,
    F32,
    F64,
}

/// Token ids per row.
type Rows = Vec<Vec<u32>>;

/// One call's input: the logits (as `f64`, converted per `ty`), their shape, parameters and
/// histories.
#[derive(Debug, Clone)]
struct Case {
    ty: Ty,
    rows: usize,
    vocab: usize,
    /// Extra elements that make the length not a multiple of `vocab`.
    ragged: usize,
    style: Style,
    seed: u64,
    params: SamplingParams,
    /// Prompt and output tokens per row.
    histories: Option<(Rows, Rows)>,
    per_row_seed: Option<usize>,
    with_logprobs: bool,
    token_ids: Vec<i64>,
}

/// A parameter's value: mostly valid ones (`good`), one case in `1 + odds` a bad one.
fn mostly<T: std::fmt::Debug + Clone + 'static>(
    good: impl Strategy<Value = T> + 'static,
    bad: impl Strategy<Value = T> + 'static,
    odds: u32,
) -> BoxedStrategy<T> {
    prop_oneof![odds => good, 1 => bad].boxed()
}

fn temperature() -> impl Strategy<Value = f64> {
    let good = prop_oneof![
        4 => Just(1.0),
        2 => Just(0.0),
        2 => Just(0.7),
        1 => Just(1e-4),
        1 => Just(1e-30),
        1 => Just(5e-324),
        1 => Just(1e10),
        1 => Just(1e300),
        1 => Just(f64::MAX),
    ];
    mostly(
        good,
        prop_oneof![Just(-1.0), Just(f64::NAN), Just(f64::INFINITY)],
        12,
    )
}

fn prob(default: f64) -> impl Strategy<Value = f64> {
    let good = prop_oneof![
        4 => Just(default),
        1 => Just(0.0),
        1 => Just(1e-12),
        1 => Just(0.05),
        1 => Just(0.5),
        1 => Just(0.9),
        1 => Just(0.999_999),
        1 => Just(1.0),
    ];
    mostly(good, prop_oneof![Just(-0.1), Just(1.5), Just(f64::NAN)], 15)
}

fn case_strategy() -> impl Strategy<Value = Case> {
    let shape = prop_oneof![
        6 => (0usize..4, 0usize..40),
        3 => (1usize..3, 40usize..3000),
        1 => (1usize..2, 70_000usize..70_001),
    ];
    let style = prop_oneof![
        4 => Just(Style::Normal),
        2 => Just(Style::Ties),
        1 => Just(Style::Hostile(1)),
        1 => Just(Style::Hostile(30)),
        1 => Just(Style::Huge),
        1 => Just(Style::Tiny),
        1 => Just(Style::Flat),
    ];
    let ty = prop_oneof![Just(Ty::F16), Just(Ty::F32), Just(Ty::F64)];
    let filters = (
        temperature(),
        mostly(
            prop_oneof![
                4 => Just(0i64),
                1 => Just(1),
                1 => Just(2),
                1 => Just(5),
                1 => Just(50),
                1 => Just(i64::MAX),
                1 => 0i64..5000,
            ],
            Just(-1),
            15,
        ),
        prob(1.0),
        prob(0.0),
    );
    let logprobs = (
        prop_oneof![8 => Just(0usize), 2 => Just(1), 2 => Just(3), 1 => 0usize..50, 1 => 0usize..5000],
        prop_oneof![
            Just(LogprobsMode::Sampled),
            Just(LogprobsMode::Processed),
            Just(LogprobsMode::Raw)
        ],
        any::<bool>(),
    );
    let processing = (
        mostly(
            prop_oneof![6 => Just(1.0f64), 1 => Just(1.3), 1 => Just(0.5), 1 => Just(1e300)],
            prop_oneof![Just(0.0), Just(f64::NAN)],
            20,
        ),
        mostly(
            prop_oneof![6 => Just(0.0f64), 1 => Just(0.5), 1 => Just(-2.0), 1 => Just(1e300)],
            Just(f64::INFINITY),
            20,
        ),
        prop_oneof![8 => Just(None), 1 => Just(Some(1e30f64)), 1 => Just(Some(f64::NEG_INFINITY)), 1 => Just(Some(f64::NAN))],
        prop_oneof![8 => Just(None), 1 => prop::collection::vec(0u32..60, 0..4).prop_map(Some)],
        prop_oneof![8 => Just(false), 1 => Just(true)],
        prop_oneof![10 => Just(None), 4 => Just(Some(0usize)), 1 => Just(Some(1usize))],
    );
    (
        shape,
        prop_oneof![20 => Just(0usize), 1 => 1usize..3],
        style,
        ty,
        any::<u64>(),
        filters,
        logprobs,
        processing,
    )
        .prop_map(
            |(
                (rows, vocab),
                ragged,
                style,
                ty,
                seed,
                (t, k, p, mp),
                (n_top, mode, with_logprobs),
                (rep, freq, bias, allowed, hist, per_row_seed),
            )| {
                let mut rng = Rng(seed ^ 0x5EED);
                let mut params = SamplingParams::default()
                    .temperature(t)
                    .top_k(k)
                    .top_p(p)
                    .min_p(mp)
                    .repetition_penalty(rep)
                    .frequency_penalty(freq)
                    .logprobs_mode(mode)
                    .top_logprobs(n_top);
                if let Some(b) = bias {
                    // A token outside the vocabulary (an error) now and then.
                    params = params.logit_bias(vec![(rng.below(vocab.max(1) + 1) as u32, b)]);
                }
                if let Some(ids) = allowed {
                    params = params.allowed_token_ids(ids);
                }
                if rng.below(8) == 0 {
                    let words = (0..vocab.div_ceil(32)).map(|_| rng.next() as u32).collect();
                    params = params.token_bitmask(TokenBitmask::all_rows(words));
                }
                if rng.below(8) == 0 {
                    params = params
                        .bad_words(vec![vec![rng.below(vocab.max(1)) as u32]])
                        .min_tokens(3i64)
                        .stop_token_ids(vec![0u32]);
                }
                let ids = |rng: &mut Rng| -> Rows {
                    (0..rows)
                        .map(|_| {
                            (0..rng.below(6))
                                .map(|_| rng.below(vocab.max(1) + 1) as u32)
                                .collect()
                        })
                        .collect()
                };
                let histories = hist.then(|| (ids(&mut rng), ids(&mut rng)));
                let token_ids = (0..rows + (rng.below(10) == 0) as usize)
                    .map(|_| rng.below(vocab + 2) as i64 - (rng.below(20) == 0) as i64)
                    .collect();
                Case {
                    ty,
                    rows,
                    vocab,
                    ragged,
                    style,
                    seed,
                    params,
                    histories,
                    per_row_seed,
                    with_logprobs,
                    token_ids,
                }
            },
        )
}

/// A log-probability of something that was drawn or ranked: not NaN, and at most 0 (up to
/// rounding).
fn is_logprob(lp: f64) -> bool {
    !lp.is_nan() && lp <= 1e-9
}

fn check_draws(d: &Draws, rows: usize, vocab: usize, params: &SamplingParams, lp: bool) {
    assert_eq!(d.tokens.len(), rows);
    for &t in &d.tokens {
        assert!(
            t >= 0 && (t as usize) < vocab,
            "token {t} outside [0, {vocab})"
        );
    }
    let n_top = params.top_logprobs;
    if lp || n_top > 0 {
        assert_eq!(d.logprobs.len(), rows);
        for &l in &d.logprobs {
            assert!(is_logprob(l), "logprob {l}");
        }
    }
    if n_top > 0 {
        assert_eq!(d.ranks.len(), rows);
        for &r in &d.ranks {
            assert!(r >= 1 && r as usize <= vocab, "rank {r}");
        }
        assert_eq!(d.top_ids.len(), rows * n_top);
        assert_eq!(d.top_logprobs.len(), rows * n_top);
        for (ids, lps) in d.top_ids.chunks(n_top).zip(d.top_logprobs.chunks(n_top)) {
            let mut seen = ids.to_vec();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), ids.len(), "repeated top ids {ids:?}");
            for (&id, &l) in ids.iter().zip(lps) {
                assert!(id >= 0 && (id as usize) < vocab, "top id {id}");
                assert!(is_logprob(l) || l == f64::NEG_INFINITY, "top logprob {l}");
            }
            assert!(
                lps.windows(2).all(|w| w[0] >= w[1]),
                "top logprobs out of order {lps:?}"
            );
        }
    }
}

/// Whether a row is one that sampling accepts as passed in (P8): no NaN or `+inf`, some
/// finite logit.
fn usable<T: Float>(row: &[T]) -> bool {
    let f: Vec<f64> = row.iter().map(|e| e.to_f64()).collect();
    f.iter().all(|e| !e.is_nan() && *e != f64::INFINITY) && f.iter().any(|e| e.is_finite())
}

fn run<T: Float>(c: &Case, conv: impl Fn(f64) -> T) {
    let len = c.rows * c.vocab + c.ragged;
    let x: Vec<T> = values(c.style, len, c.seed)
        .into_iter()
        .map(&conv)
        .collect();
    let (prompts, outputs) = c.histories.clone().unwrap_or_default();
    let h = match &c.histories {
        Some(_) => Histories::new()
            .prompt_tokens(&prompts)
            .output_tokens(&outputs),
        None => Histories::new(),
    };
    let seed = match c.per_row_seed {
        None => Seed::Fixed(c.seed),
        Some(extra) => Seed::PerRow((0..c.rows + extra).map(|i| i as u64).collect()),
    };
    let p = &c.params;
    // The rows a call sees (`ragged` may add whole rows when `vocab` is small).
    let rows = len.checked_div(c.vocab).unwrap_or(0);

    // sample_batch: an error, or valid draws.
    if let Ok(d) = sample_batch(&x, c.vocab, p, &h, &seed, c.with_logprobs) {
        check_draws(&d, rows, c.vocab, p, c.with_logprobs);
    }

    // filter_logits_batch: an error, or rows whose kept values are finite and whose softmax
    // is a distribution.
    let mut out = vec![conv(0.0); x.len()];
    if filter_logits_batch(&x, c.vocab, p, &h, &mut out).is_ok() {
        // No processing stage makes a -inf logit finite.
        for (j, (&o, &e)) in out.iter().zip(&x).enumerate() {
            let (o, e) = (o.to_f64(), e.to_f64());
            assert!(
                e != f64::NEG_INFINITY || o == e,
                "token {j}: -inf became {o}"
            );
        }
        for row in out.chunks(c.vocab.max(1)) {
            let f: Vec<f64> = row.iter().map(|e| e.to_f64()).collect();
            let bad = f
                .iter()
                .position(|e| !(e.is_finite() || *e == f64::NEG_INFINITY));
            assert!(
                bad.is_none(),
                "kept token {bad:?} not finite: {:?}",
                bad.map(|j| f[j])
            );
            assert!(f.iter().any(|e| e.is_finite()), "nothing kept");
            let mut probs = vec![0.0; f.len()];
            softmax(&f, &mut probs, 1.0).unwrap();
            let s: f64 = probs.iter().sum();
            assert!((s - 1.0).abs() < 1e-9, "softmax sums to {s}");
        }
    }

    // token_logprobs_rows: an error, or log-probabilities (NaN only for the rows S6 makes
    // NaN) and ranks.
    let mut lps = vec![conv(0.0); rows];
    let mut ranks = vec![0i64; rows];
    let t = RowParam::All(p.temperature.get(0));
    let ids = &c.token_ids;
    if token_logprobs_rows(&x, c.vocab, ids, t, &mut lps, Some(&mut ranks)).is_ok() {
        for (r, (&lp, &rank)) in lps.iter().zip(&ranks).enumerate() {
            assert!(rank >= 0 && rank as usize <= c.vocab, "rank {rank}");
            if usable(&x[r * c.vocab..][..c.vocab]) {
                assert!(
                    is_logprob(lp.to_f64()) || lp.to_f64() == f64::NEG_INFINITY,
                    "{lp:?}"
                );
            }
        }
    }

    // Sampler: two draws and an accept, each an error or valid.
    if let Ok(s) = Sampler::new(p.clone(), Some(c.seed)) {
        let mut s = match &c.histories {
            Some(_) => match s.with_prompts(prompts.clone()) {
                Ok(s) => s,
                Err(_) => return,
            },
            None => s,
        };
        for _ in 0..2 {
            if let Ok(d) = s.sample_batch(&x, c.vocab, c.with_logprobs) {
                check_draws(&d, rows, c.vocab, p, c.with_logprobs);
            }
        }
        let _ = s.accept(&vec![vec![0]; rows]);
        if let Ok(d) = s.sample_batch(&x, c.vocab, c.with_logprobs) {
            check_draws(&d, rows, c.vocab, p, c.with_logprobs);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// R2/R3/P7/P8: no panic on any input; errors or valid results.
    #[test]
    fn r3_sampling_api_never_panics_and_returns_valid_results(c in case_strategy()) {
        match c.ty {
            Ty::F16 => run(&c, f16::from_f64),
            Ty::F32 => run(&c, |e| e as f32),
            Ty::F64 => run(&c, |e| e),
        }
    }
}

/// R3: a row refused after its chunk maxima were taken (top-k with a small `k` on a long row
/// whose masks leave no finite logit) must not leave them behind as the next row's. The next
/// call, on a shorter row, looks for its top logprobs among chunk maxima: stale ones, from the
/// longer row, sent it past the end of its row (found by this fuzz under qemu at 7786c6f).
#[test]
fn r3_refused_row_leaves_no_chunk_maxima_behind() {
    let long: Vec<f32> = (0..64 * 400).map(|i| (i % 97) as f32 * 0.01).collect();
    let masked = SamplingParams::default()
        .top_k(5)
        .logit_bias(vec![(0, f64::NEG_INFINITY)])
        .allowed_token_ids(vec![0]);
    let refused = sample_batch(
        &long,
        long.len(),
        &masked,
        &Histories::new(),
        &Seed::Fixed(1),
        false,
    );
    assert!(refused.is_err(), "the masks leave no finite logit");
    let short: Vec<f32> = (0..941).map(|i| (i % 31) as f32 * 0.1).collect();
    let p = SamplingParams::default().top_k(5).top_logprobs(3);
    let d = sample_batch(
        &short,
        short.len(),
        &p,
        &Histories::new(),
        &Seed::Fixed(1),
        true,
    )
    .expect("a valid row");
    check_draws(&d, 1, short.len(), &p, true);
}
