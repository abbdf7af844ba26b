//! Stopping a long call with an interruption check (contract R8: a long call answers Ctrl-C
//! within a second). The Python bindings install a check that runs the signal handlers; these
//! tests install their own and look at what the core does: the remaining chunks are skipped,
//! the call returns `Error::Interrupted`, and the next call (and the thread pool) is unharmed.

use std::cell::Cell;

use logitkit::lanes::{logsumexp_lanes, map_lanes};
use logitkit::{
    set_num_threads, softmax_rows, with_interrupt_check, Error, Histories, Lanes, Op, RowParam,
    SamplingParams, Seed, StridedView, StridedViewMut, Temperature,
};

const ONE: Temperature<'static> = Temperature::Scalar(1.0);

/// Values that are not a softmax output, to tell untouched elements apart.
const SENTINEL: f32 = -7.0;

fn data(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919) % 1000) as f32 / 100.0)
        .collect()
}

fn untouched(out: &[f32]) -> f64 {
    out.iter().filter(|&&v| v == SENTINEL).count() as f64 / out.len() as f64
}

/// Runs `f` under a check that says "stop" at its first run, and returns how often the check
/// ran along with `f`'s result.
fn stopped_at_once<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let runs = Cell::new(0);
    let check = || {
        runs.set(runs.get() + 1);
        true
    };
    let r = with_interrupt_check(&check, f);
    (r, runs.get())
}

/// Softmax along axis 0 of a C-contiguous `rows x cols` array (strided lanes: the tiled path).
fn softmax_axis0(x: &[f32], out: &mut [f32], rows: usize, cols: usize) -> logitkit::Result<()> {
    let lanes = Lanes::from_strided(&[rows, cols], &[cols as isize, 1], 0);
    let src = StridedView::new(x, 0, lanes.clone())?;
    let mut dst = StridedViewMut::new(out, 0, lanes)?;
    map_lanes(Op::Softmax, &src, &mut dst, Temperature::Scalar(1.0))
}

#[test]
fn r8_interrupted_calls_skip_their_work_and_return_interrupted() {
    for threads in [1, 2] {
        set_num_threads(threads).unwrap();
        // Rows (the many-rows path), rows of one long lane (blocks of a row), strided lanes
        // (tiles).
        let x = data(1 << 22);
        let mut out = vec![SENTINEL; x.len()];
        let (r, runs) = stopped_at_once(|| softmax_rows(&x, &mut out, 1024, ONE));
        assert_eq!(r, Err(Error::Interrupted));
        assert_eq!(runs, 1, "a stopped call does not ask again");
        assert!(untouched(&out) > 0.9, "rows: {} untouched", untouched(&out));

        out.fill(SENTINEL);
        let (r, _) = stopped_at_once(|| softmax_rows(&x, &mut out, x.len(), ONE));
        assert_eq!(r, Err(Error::Interrupted));
        assert!(untouched(&out) > 0.9, "one row: {}", untouched(&out));

        out.fill(SENTINEL);
        let (r, _) = stopped_at_once(|| softmax_axis0(&x, &mut out, 2048, 2048));
        assert_eq!(r, Err(Error::Interrupted));
        assert!(untouched(&out) > 0.9, "axis 0: {}", untouched(&out));

        let lanes = Lanes::from_strided(&[2048, 2048], &[2048, 1], 0);
        let mut lse = vec![SENTINEL; 2048];
        let src = StridedView::new(&x, 0, lanes.clone()).unwrap();
        let (r, _) = stopped_at_once(|| logsumexp_lanes(&src, &mut lse));
        assert_eq!(r, Err(Error::Interrupted));
        assert!(untouched(&lse) > 0.9, "logsumexp: {}", untouched(&lse));
    }
}

#[test]
fn r8_the_next_call_and_the_pool_work_after_an_interruption() {
    let (rows, cols) = (1024, 2048);
    let x = data(rows * cols);
    set_num_threads(1).unwrap();
    let mut want = vec![0.0f32; x.len()];
    softmax_axis0(&x, &mut want, rows, cols).unwrap();
    for threads in [2, 1, 2] {
        set_num_threads(threads).unwrap();
        let mut out = vec![SENTINEL; x.len()];
        let (r, _) = stopped_at_once(|| softmax_axis0(&x, &mut out, rows, cols));
        assert_eq!(r, Err(Error::Interrupted));
        // Without a check, and with a check that never stops: the whole result, bit for bit.
        softmax_axis0(&x, &mut out, rows, cols).unwrap();
        assert!(out
            .iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        out.fill(SENTINEL);
        with_interrupt_check(&|| false, || softmax_axis0(&x, &mut out, rows, cols)).unwrap();
        assert!(out
            .iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}

#[test]
fn r8_interrupted_sampling_draws_nothing_and_the_sampler_is_unchanged() {
    let vocab = 32000;
    let x = data(64 * vocab);
    let params = SamplingParams::default().top_p(0.9);
    for threads in [1, 2] {
        set_num_threads(threads).unwrap();
        let (r, _) = stopped_at_once(|| {
            logitkit::sample_batch(
                &x,
                vocab,
                &params,
                &Histories::new(),
                &Seed::Fixed(3),
                false,
            )
        });
        assert_eq!(r.unwrap_err(), Error::Interrupted);
        let mut s = logitkit::Sampler::new(params.clone(), Some(5)).unwrap();
        let (r, _) = stopped_at_once(|| s.sample_batch(&x, vocab, false));
        assert_eq!(r.unwrap_err(), Error::Interrupted);
        assert_eq!(s.calls(), 0, "an interrupted call is not counted");
        let mut fresh = logitkit::Sampler::new(params.clone(), Some(5)).unwrap();
        assert_eq!(
            s.sample_batch(&x, vocab, false).unwrap().tokens,
            fresh.sample_batch(&x, vocab, false).unwrap().tokens
        );
        let mut filtered = vec![0.0f32; x.len()];
        let (r, _) =
            stopped_at_once(|| logitkit::filter_logits_rows(&x, vocab, &params, &mut filtered));
        assert_eq!(r, Err(Error::Interrupted));
        let mut ids = vec![0i64; 64];
        ids.iter_mut().enumerate().for_each(|(i, t)| *t = i as i64);
        let mut lp = vec![0.0f32; 64];
        let (r, _) = stopped_at_once(|| {
            logitkit::token_logprobs_rows(&x, vocab, &ids, RowParam::All(1.0), &mut lp, None)
        });
        assert_eq!(r, Err(Error::Interrupted));
    }
}

#[test]
fn r8_a_check_that_never_stops_runs_rarely_and_changes_nothing() {
    let x = data(1 << 22);
    let mut want = vec![0.0f32; x.len()];
    softmax_rows(&x, &mut want, 4096, ONE).unwrap();
    let runs = Cell::new(0);
    let check = || {
        runs.set(runs.get() + 1);
        false
    };
    let mut out = vec![0.0f32; x.len()];
    let t0 = std::time::Instant::now();
    with_interrupt_check(&check, || softmax_rows(&x, &mut out, 4096, ONE)).unwrap();
    let elapsed = t0.elapsed();
    assert_eq!(out, want);
    // Once at the start, then at most every 50 ms.
    let most = 1 + (elapsed.as_millis() / 50) as usize + 1;
    assert!(
        runs.get() >= 1 && runs.get() <= most,
        "{} runs in {elapsed:?}",
        runs.get()
    );
}
