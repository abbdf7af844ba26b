//! Token sampling over rows of logits: the decoding-time pipeline of an LLM loop (contract
//! P1-P17): masks, logit bias and penalties over each row's history, then temperature, top-k,
//! top-p and min-p, then one draw per row; log-probabilities, ranks and alternatives; scoring of
//! given tokens; a stateful [`Sampler`] for decoding loops.
//!
//! A small decoding loop over a toy "model" whose logits favour repeating the last token:
//!
//! ```
//! use logitkit::{Sampler, SamplingParams};
//! let vocab = 8;
//! let model = |last: u32| -> Vec<f32> {
//!     (0..vocab).map(|j| if j == last { 3.0 } else { (j as f32) * 0.1 }).collect()
//! };
//! let params = SamplingParams::default()
//!     .temperature(0.7)
//!     .top_p(0.95)
//!     .repetition_penalty(1.3) // steer away from what was said
//!     .logit_bias(vec![(0, f64::NEG_INFINITY)]) // never token 0
//!     .top_logprobs(3);
//! let mut sampler = Sampler::new(params, Some(42)).unwrap().with_prompts(vec![vec![5]]).unwrap();
//! let mut last = 5;
//! for _ in 0..10 {
//!     let d = sampler.sample_batch(&model(last), vocab as usize, true).unwrap();
//!     assert_ne!(d.tokens[0], 0);
//!     assert_eq!(d.top_ids.len(), 3); // the three most probable tokens and their logprobs
//!     last = d.tokens[0] as u32;
//! }
//! assert_eq!(sampler.output_tokens(0).len(), 10);
//! ```
//!
//! # Processing (P10-P14)
//!
//! Before P3, each row is copied and processed by the stages of `process`: the masks
//! (`allowed_token_ids`, `token_bitmask` applied while the row is copied; `bad_words`,
//! `min_tokens`), then `logit_bias`, then the repetition, frequency and presence penalties,
//! then DRY (P24, `process/dry.rs`: llama.cpp's penalty on the tokens that would extend a
//! repeat of the row's output tokens, the repeats found by the Z-algorithm in time linear in
//! the history), reading the row's history ([`Histories`], or the [`Sampler`]'s own). A stage
//! whose parameters are at their defaults is not in the chain, and a call without stages reads
//! the row in place.
//!
//! # Semantics of P3
//!
//! Per row, in this order (P3):
//!
//! 1. **Temperature** `T >= 0`. `T = 0` is greedy: the largest logit, the lowest token id among
//!    equal ones, and the filters are irrelevant. Otherwise a token's weight is
//!    `w = exp((x - max) / T)`, computed in `f64` from the row maximum (overflow-safe, as
//!    softmax is); probabilities are weights over their sum.
//! 2. **Top-k** (`0` or `k >= V` disables): exactly the `k` largest logits; among equal
//!    logits at the boundary, lower ids first.
//! 3. **Top-p** (`1` disables, `0` is greedy): over the tokens top-k kept, in the order
//!    (probability descending, lower id first), the shortest prefix whose cumulative
//!    probability is `>= p` (the running sum of weights, in `f64`, divided by their total):
//!    the token crossing `p` is kept, and reaching `p` exactly stops there.
//! 4. **Min-p** (`0` disables): keeps the tokens with `w >= min_p` (`w` in `f64`; the largest
//!    weight is exactly 1, so this is "probability >= min_p times the largest probability").
//! 5. **Draw**: from the renormalised distribution over the kept tokens, with the uniforms
//!    (`f64`, in `[0, 1)`) of the row's stream: an inverse CDF in id order (the first kept
//!    token whose running weight exceeds `u` times the kept weight), one uniform, or, for
//!    top-p without top-k, rejection rounds of one uniform each (below). The returned
//!    log-probability is the chosen token's, renormalised over the kept tokens.
//!
//! 6. **More samplers** (P20-P23, after min-p, each off at its default): typical-p,
//!    top-n-sigma, the epsilon and eta cutoffs, XTC, over the kept set with its probabilities
//!    renormalised (`select/kept.rs`, one file per stage). When one is on, the kept set is
//!    gathered as a list (after top-p: from the candidates above a weight threshold that
//!    masked sums show to hold the nucleus, so the cut is found among them, not over the row),
//!    each stage narrows it, and the draw walks it. Top-n-sigma, when it is the first stage
//!    on, is a threshold over the kept set before that set is listed: its statistics come
//!    from masked passes over the candidates, or over the row when they are too many to pack
//!    (a flat row), and only the tokens at or above its bound are listed. Epsilon, eta or XTC alone after top-p
//!    are taken on by top-p's rejection draw instead, from bounds on the kept set's weight
//!    (`select/nucleus.rs`); a drawn token the bounds cannot decide is decided on the list.
//!    XTC's coin is the row stream's first uniform, before anything else is drawn; when it
//!    says no, the row is drawn as without XTC (by rejection when no other stage is on). The
//!    dynamic temperature
//!    (P26, `select/dynatemp.rs`) replaces `T` before all of this, from one weight pass and one
//!    weighted sum over the row.
//!
//! Ordering ties by the logit (not by the rounded scaled logit or probability) is the
//! exact-arithmetic meaning of "largest logits / largest probabilities": dividing by `T > 0`
//! and `exp` are increasing. Weights are computed by the crate's kernels in the input's compute
//! precision (`f32` for `f16` and `f32` input, `f64` for `f64`), and summed in `f64`.
//!
//! # Selection without sorting (P9)
//!
//! Every filter keeps a *prefix* of the row in the order (logit descending, id ascending), so
//! each is a cut in that order, found without sorting the vocabulary. The row's maximum comes
//! from the validation pass (the kernel table's `max`).
//!
//! - **top-k** (`k` up to a quarter of the row's chunks of 64 tokens): the `k`-th largest
//!   chunk maximum `t` is a lower bound of the `k`-th largest logit (`k` chunks each hold a
//!   token `>= t`), and every token `>= t` lies in a chunk whose maximum is `>= t`. So one
//!   pass of chunk maxima, a selection among them, and a scan of about `k` chunks give the
//!   candidates; the exact cut is found among them. No `exp` is computed for the row. Larger
//!   `k`: the bucket search below over the row.
//! - **top-p, drawing**: without top-k, [`sample_rows`] does not look for the cut at all. It
//!   draws by rejection from a shrinking prefix of the order (the pivot scheme of FlashInfer's
//!   sorting-free top-p sampling): a token `j` is in the nucleus exactly when the weight of the
//!   tokens before it in the order is below `p` times the total, which one vectorised masked
//!   sum tells; if it is not, the nucleus lies within the tokens before `j`, from which the
//!   next round draws, and that masked sum's chunk sums are the next round's draw table. The
//!   first round draws from the whole row (with min-p, from min-p's tokens) and is accepted
//!   with probability `>= p`, so one weight pass and one or two masked passes do it; after six
//!   rejections (small `p` on a flat row) the cut is found as below. The token's law is exactly
//!   the nucleus distribution either way, and it does not depend on `return_logprobs` (the
//!   log-probability's normaliser, the nucleus weight, is found from the cut when asked for;
//!   the weights the draw computed are reused for it).
//! - **top-p, the cut** (for [`filter_logits_rows`], the log-probabilities, and after top-k):
//!   the weights are computed with the kernel table (the same `exp` kernels as
//!   softmax, vectorised). Every token of the nucleus weighs at least `(1 - p) / (2 V)` of
//!   the total; a sample of the row (runs of 16 tokens every 256) usually shows a higher
//!   level of the scaled logit whose tokens hold `p` already, and those tokens (at `f32`
//!   with AVX-512 or AVX2, while under a quarter of the row) are packed in one vector pass, their
//!   weight checked exactly, and the cut found among them. Else, on a peaked row, the tokens
//!   above the 32nd largest chunk maximum usually hold weight `p` already, and the cut is
//!   found among them. Otherwise a **bucket search** finds the position where the running weight crosses `p`: one pass buckets the
//!   tokens by `z = (max - x) / T` into 2048 buckets of width 1/32 (the last open-ended) and
//!   sums their weights per bucket (per block of 16384 tokens, then in block order, so the
//!   sums do not depend on threads); walking the buckets from the top finds the one bucket
//!   where `p` is crossed. Only that bucket's tokens (the *band*) are examined further: the
//!   band is re-bucketed linearly over its own logit range until it has at most 64 tokens
//!   (then it is sorted) or holds a single logit value (then ties go by id). Each
//!   re-bucketing leaves the largest and the smallest logit in different buckets, so the band
//!   always shrinks, and a flat distribution costs a few passes over the band instead of a
//!   sort. The cut is exactly the prefix a full sort would give; the weight above the band is
//!   summed per bucket rather than token by token, which can only matter when the running sum
//!   lands within rounding of `p`.
//! - **min-p** is a logit threshold: a binary search over the `f64` values finds the smallest
//!   logit `y` with `exp((y - max) / T) >= min_p`; the tokens kept are those `>= y`. When few
//!   pass they are gathered (and only they get an `exp`), else the row's weights are masked.
//! - The **draw** walks per-chunk sums (1024 tokens) of the kept weights, then one chunk.
//!
//! The passes of this module's own (bucket ids, masked sums, counts, gathers) are written to
//! vectorise and compiled for AVX-512F and AVX2 as well as the baseline, chosen with the
//! crate's SIMD level; their `f64` sums keep 32 lanes, enough to hide the adder's latency.
//! Batches of at least as many rows as threads are shared out by rows. A row of at least 2^16
//! tokens in a smaller batch has its passes split across the threads instead: the calling
//! thread and the pool's take blocks of 16384 tokens, each its own stretch first, results go to
//! fixed places, so nothing depends on the thread count.
//!
//! Cost, against `softmax_rows` of the same batch with the AVX-512 kernels at 2 threads
//! (README, "Speed"): `T=0.8, top_k=50, top_p=0.9` (the usual LLM setting) and `top_k` alone
//! cost about one softmax or less, greedy about a third. `top_p` alone costs a `max` pass, an
//! `exp` pass that stores the weights, and one or two masked sums over weights and logits:
//! 0.9 to 1.5 softmaxes. `min_p` alone costs one to two softmaxes (an `exp` pass over the row
//! when many tokens pass).
//!
//! # Randomness (P5, P6)
//!
//! See [`Seed`]: every row draws from its own ChaCha20 stream, keyed by the seed and selected
//! by the row index (scalar seed), by its own seed (per-row seeds), or by `(seed, call index)`
//! and the row index ([`Sampler`]). Nothing depends on the thread count or on the other rows.
//!
//! # Errors (P8)
//!
//! Parameters, lengths and every row are checked before anything is drawn: a call that
//! returns an error draws nothing and advances no [`Sampler`].
//!
//! # Another thread writing to the logits (R3)
//!
//! A row without a processing stage is read in place, pass after pass (maximum, weights,
//! cuts, draw), and the Python bindings cannot stop another thread from writing to it during
//! a call. No pass relies on what an earlier one read for termination or memory safety: every
//! loop is bounded whatever it reads, sorts compare values read once, a count from an earlier
//! pass is a cap rather than a promise, and the band of the cut search is sorted when it stops
//! shrinking. A row whose values changed so that the earlier passes no longer hold gives
//! either a token of the row or [`Error::InvalidRow`] ("changed while it was being read").

mod chacha_lanes;
mod history;
pub(crate) mod hot;
mod logprobs;
mod params;
mod process;
mod rng;
mod select;
mod stateful;
#[cfg(test)]
mod test_units;
pub(crate) mod verify;

use std::any::Any;
use std::cell::RefCell;

pub use history::Histories;
#[cfg(feature = "python")]
pub(crate) use logprobs::token_logprobs_of;
pub use logprobs::{token_logprobs, token_logprobs_rows};
#[cfg(feature = "python")]
pub(crate) use params::check_mirostat;
pub use params::{LogprobsMode, PerRow, RowParam, SamplingParams, TokenBitmask};
pub use rng::Seed;
pub use stateful::Sampler;
pub use verify::{verify_draft, verify_draft_uniforms, Verified};

use crate::element::{is_native, Float, Real};
use crate::error::{Error, Result};
use crate::interrupt;
use crate::kernels::{kernels, BLOCK};
use crate::parallel::{chunks_mapped_mut, get_num_threads, is_parallel, map_init, ranges_mapped};
use crate::shared::SharedPtr;
use crate::softmax::check_len;
use history::Source;
use process::Chain;
use rng::{FirstWords, Streams};
use select::{filter_row, row_chunk_maxima, sample_row, top_in_order, wants_chunk_maxima, Work};

/// The error for an empty vector given to a function of one vector (which has no `vocab`).
fn one_vector(logits_len: usize) -> Result<()> {
    if logits_len == 0 {
        return Err(Error::invalid(
            "logits",
            "an empty slice",
            "non-empty (at least one token)",
        ));
    }
    Ok(())
}

/// Rows in the batch: `len / vocab`.
fn rows_of(len: usize, vocab: usize) -> Result<usize> {
    if vocab == 0 {
        return Err(Error::invalid(
            "vocab",
            0,
            "at least 1 (the logits' last axis may not be empty)",
        ));
    }
    if !len.is_multiple_of(vocab) {
        return Err(Error::invalid(
            "vocab",
            vocab,
            "a divisor of the logits' length",
        ));
    }
    Ok(len / vocab)
}

/// A batch of rows of logits read where they are: row `r` is `data[r * stride..][..vocab]`.
/// A row-major batch has `stride == vocab`; rows taken out of a larger array (the last
/// position of each sequence, `logits[:, -1, :]`, at a larger stride; a broadcast row, at
/// stride 0; overlapping rows, below `vocab`: all read-only) are not copied (R1, P18). Rows
/// whose elements are not adjacent (an F-order array) are [`Scattered`]: each is copied when
/// it is read, one row per thread at a time (R1).
#[derive(Clone, Copy)]
pub(crate) struct Rows<'a, T> {
    data: &'a [T],
    count: usize,
    vocab: usize,
    stride: usize,
    scattered: Option<Scattered<'a>>,
}

/// Where the rows' elements are when they are not adjacent: row `r` is lane `r` of `lanes`
/// (the vocabulary its lanes, the leading dimensions in C order), from index `base`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scattered<'a> {
    pub(crate) base: usize,
    pub(crate) lanes: &'a crate::Lanes,
}

impl<'a, T> Rows<'a, T> {
    /// The rows of a row-major batch of `vocab` tokens each.
    pub(crate) fn contiguous(data: &'a [T], vocab: usize) -> Result<Self> {
        let count = rows_of(data.len(), vocab)?;
        Ok(Rows {
            data,
            count,
            vocab,
            stride: vocab,
            scattered: None,
        })
    }

    /// `count` rows of `vocab` tokens, row `r` at `data[r * stride..]`; `data` must hold the
    /// last of them. (The Python bindings' way to read rows out of a larger array.)
    #[cfg_attr(not(feature = "python"), allow(dead_code))]
    pub(crate) fn strided(
        data: &'a [T],
        count: usize,
        vocab: usize,
        stride: usize,
    ) -> Result<Self> {
        let count_of_one = rows_of(vocab, vocab)?; // refuses `vocab == 0`, as for any batch
        debug_assert_eq!(count_of_one, 1);
        let span = match count {
            0 => 0,
            _ => (count - 1)
                .checked_mul(stride)
                .and_then(|s| s.checked_add(vocab))
                .unwrap_or(usize::MAX),
        };
        if data.len() < span {
            return Err(Error::LengthMismatch {
                name: "logits",
                got: data.len(),
                expected: span,
            });
        }
        Ok(Rows {
            data,
            count,
            vocab,
            stride,
            scattered: None,
        })
    }

    /// The lanes of `at` as rows, read out of `data` (which must hold every element they
    /// read: [`crate::StridedView`]'s check).
    #[cfg_attr(not(feature = "python"), allow(dead_code))]
    pub(crate) fn scattered(data: &'a [T], at: Scattered<'a>) -> Result<Self> {
        let vocab = at.lanes.len;
        rows_of(vocab, vocab)?;
        crate::view::check_bounds(at.base, at.lanes, data.len())?;
        Ok(Rows {
            data,
            count: at.lanes.count(),
            vocab,
            stride: vocab,
            scattered: Some(at),
        })
    }

    /// Row `r < count` of rows that are not [`Scattered`].
    pub(crate) fn row(&self, r: usize) -> &'a [T] {
        debug_assert!(
            self.scattered.is_none(),
            "scattered rows are read with `with_row_at`"
        );
        &self.data[r * self.stride..][..self.vocab]
    }
}

const SCATTERED_ROW: &str = "a row of scattered logits";

impl<T: Copy + 'static> Rows<'_, T> {
    /// Runs `f` on row `r < count`: the row where it is, or (scattered rows) a copy of it in
    /// this thread's buffer.
    pub(crate) fn with_row_at<R>(&self, r: usize, f: impl FnOnce(&[T]) -> Result<R>) -> Result<R> {
        let Some(at) = self.scattered else {
            return f(self.row(r));
        };
        thread_local! {
            static GATHERED: Cached = const { RefCell::new(None) };
        }
        // Taken out while `f` runs, so that a call inside it gets a buffer of its own.
        let mut buf: Box<Vec<T>> = take_cached(&GATHERED);
        let start = (at.base as isize + at.lanes.offset(r)) as usize;
        let (n, step) = (self.vocab, at.lanes.stride);
        // The elements lowest first, `step` apart (`extent` checked that they are in `data`).
        let low = (start as isize + step.min(0) * (n as isize - 1)) as usize;
        let elems = self.data[low..]
            .iter()
            .step_by(step.unsigned_abs().max(1))
            .take(n);
        let res = if step == 0 {
            // A broadcast vocabulary: one element, repeated.
            let one = self.data[start];
            crate::scratch::refill(&mut buf, n, std::iter::repeat_n(one, n), SCATTERED_ROW)
        } else if step < 0 {
            crate::scratch::refill(&mut buf, n, elems.rev().copied(), SCATTERED_ROW)
        } else {
            crate::scratch::refill(&mut buf, n, elems.copied(), SCATTERED_ROW)
        }
        .and_then(|()| f(&buf));
        GATHERED.with(|c| *c.borrow_mut() = Some(buf));
        res
    }
}

/// The row as the compute type: borrowed when `T` is its own compute type, else converted
/// into `conv`.
fn as_compute<'a, T: Float>(
    row: &'a [T],
    conv: &'a mut Vec<T::Compute>,
) -> Result<&'a [T::Compute]> {
    widened(row, conv, false, false).map(|(x, _)| x)
}

/// [`as_compute`] a block at a time, on the threads when `par` (a row whose passes the threads
/// share shares its conversion too); when `with_max` and the row is converted here, also its
/// maximum as [`row_max`] gives it (the same blocks), each block's taken while the block is in
/// cache.
fn widened<'a, T: Float>(
    row: &'a [T],
    conv: &'a mut Vec<T::Compute>,
    par: bool,
    with_max: bool,
) -> Result<Widened<'a, T::Compute>> {
    if is_native::<T>() {
        // SAFETY: `is_native` says `T` and `T::Compute` are the same type.
        let x = unsafe { std::slice::from_raw_parts(row.as_ptr().cast::<T::Compute>(), row.len()) };
        return Ok((x, None));
    }
    // Filled only past its current length: the widening overwrites every element.
    conv.truncate(row.len());
    crate::scratch::resize(
        conv,
        row.len(),
        Default::default(),
        "the row in the compute type",
    )?;
    let k = kernels::<T::Compute>();
    let blocks = chunks_mapped_mut(conv, BLOCK, par && row.len() > BLOCK, |b, d| {
        T::widen(&row[b * BLOCK..][..d.len()], d);
        if with_max {
            (k.max)(d)
        } else {
            Default::default()
        }
    });
    Ok((conv, with_max.then(|| max_of_blocks(&blocks))))
}

/// A row's maximum, or what makes the row unusable (P8).
type RowMax<C> = Result<C, &'static str>;

/// A row in the compute type, and its maximum when [`widened`] took it.
type Widened<'a, C> = (&'a [C], Option<RowMax<C>>);

/// The maximum of a row, or what makes it unusable (P8).
fn row_max<C: Real>(x: &[C], par: bool) -> RowMax<C> {
    let k = kernels::<C>();
    let blocks = ranges_mapped(x.len(), BLOCK, par && x.len() > BLOCK, |_, r| {
        (k.max)(&x[r])
    });
    max_of_blocks(&blocks)
}

/// The row maximum from its blocks' (maximum, has NaN), or what makes the row unusable.
fn max_of_blocks<C: Real>(blocks: &[(C, bool)]) -> RowMax<C> {
    let (mut m, mut nan) = (C::NEG_INFINITY, false);
    for &(bm, bn) in blocks {
        if bm > m {
            m = bm;
        }
        nan |= bn;
    }
    classify_row(m, nan)
}

/// A row's maximum `m` (ignoring NaN), or what is wrong with the row (contract P8).
fn classify_row<C: Real>(m: C, nan: bool) -> Result<C, &'static str> {
    if nan {
        Err("contains NaN")
    } else if m == C::INFINITY {
        Err("contains +inf")
    } else if m == C::NEG_INFINITY {
        Err("has no finite logit")
    } else {
        Ok(m)
    }
}

/// A thread's value kept between calls, of whichever type last put it there.
type Cached = RefCell<Option<Box<dyn Any>>>;

/// The value `cache` holds when it is a `V`, else a new one; the cache is left empty.
fn take_cached<V: Default + 'static>(cache: &'static std::thread::LocalKey<Cached>) -> Box<V> {
    cache
        .with(|c| c.borrow_mut().take())
        .and_then(|b| b.downcast().ok())
        .unwrap_or_default()
}

/// Runs `f` with this thread's scratch for compute type `C` (kept between calls, so that
/// sampling a row allocates nothing in the steady state).
fn with_work<C: Real, R>(f: impl FnOnce(&mut Work<C>) -> R) -> R {
    thread_local! {
        static CACHE: Cached = const { RefCell::new(None) };
    }
    let mut w: Box<Work<C>> = take_cached(&CACHE);
    let r = f(&mut w);
    // Keep the scratch for the next call, unless a huge row made it huge.
    if w.footprint() <= 1 << 24 {
        CACHE.with(|c| *c.borrow_mut() = Some(w));
    }
    r
}

/// A row at least this long (two blocks), in a batch of fewer rows than threads, has its
/// passes split across the threads (the calling thread and the helpers share each pass, block
/// by block). Shorter rows run whole on one thread: splitting their passes costs more than it
/// saves (`benches/results/tuning.md`, "ROW_SPLIT_MIN").
const ROW_SPLIT_MIN: usize = 24 * 1024;

/// How a call uses the pool.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// On the calling thread.
    Serial,
    /// Whole rows per task.
    Rows,
    /// One row after another, each row's passes split across the threads.
    Split,
}

fn plan(rows: usize, vocab: usize) -> Plan {
    if !is_parallel(rows.saturating_mul(vocab)) {
        Plan::Serial
    } else if rows >= 2 && (rows >= get_num_threads() || vocab < ROW_SPLIT_MIN) {
        Plan::Rows
    } else if vocab >= ROW_SPLIT_MIN {
        Plan::Split
    } else {
        Plan::Serial
    }
}

/// Runs `f(row, work)` for every row of `vocab` logits as `plan` (from [`plan`], decided once
/// per call) says. Rows are cut into blocks at fixed offsets whichever way, so results do not
/// depend on the thread count.
///
/// Polls for an interruption between rows (contract R8; a row's passes are not cut short, so
/// a single huge row is seen through): once told to stop, the remaining rows are skipped and
/// the call is [`Error::Interrupted`].
fn for_rows<C: Real, R: Send>(
    plan: Plan,
    rows: usize,
    vocab: usize,
    f: impl Fn(usize, &mut Work<C>) -> R + Sync + Send,
) -> Result<impl ExactSizeIterator<Item = R>> {
    let g = |r: usize, w: &mut Work<C>| (!interrupt::poll_at(r, vocab)).then(|| f(r, w));
    let done: Vec<Option<R>> = match plan {
        Plan::Serial => with_work(|w| {
            w.par = false;
            crate::scratch::collected(rows, (0..rows).map(|r| g(r, w)), ROW_RESULTS)
        })?,
        // Whole rows taken in order by the calling thread and the helpers (each with its own
        // scratch); a helper that is late takes fewer rows.
        Plan::Rows => map_init(
            rows,
            1,
            true,
            || (),
            |_, r| {
                with_work(|w| {
                    w.par = false;
                    g(r, w)
                })
            },
        )?,
        // On the calling thread, which shares each pass with the helpers.
        Plan::Split => with_work(|w| {
            w.par = true;
            crate::scratch::collected(rows, (0..rows).map(|r| g(r, w)), ROW_RESULTS)
        })?,
    };
    interrupt::status()?;
    // Taken as they are: a second vector of the results (a million of them for as many short
    // rows) is an allocation and a pass that no caller needs.
    Ok(done
        .into_iter()
        .map(|r| r.expect("rows are skipped only when interrupted")))
}

const ROW_RESULTS: &str = "the results of a call's rows";

/// One row as the filters see it.
struct RowView<'a, C> {
    /// The logits after the processing of P11-P13 (the row itself when no stage is on).
    x: &'a [C],
    /// Their maximum (finite).
    max: C,
    /// The row as passed in, as the compute type, when asked for.
    raw: Option<&'a [C]>,
}

/// Reads row `r` of a call (converted when needed, processed when the chain has a stage),
/// finds its maximum and runs `f` on it; or what makes the row unusable (P8, P11), what `f`
/// found wrong with it (R3), or refused memory (R1). The row is checked for NaN and `+inf` as
/// passed in, before any stage.
#[allow(clippy::too_many_arguments)]
fn with_row<T: Float, R>(
    row: &[T],
    r: usize,
    chain: &Chain<'_, T::Compute>,
    source: &Source<'_>,
    wants_chunks: bool,
    need_raw: bool,
    w: &mut Work<T::Compute>,
    f: impl FnOnce(RowView<'_, T::Compute>, &mut Work<T::Compute>) -> Result<R>,
) -> Result<R> {
    let bad_row = |problem| Error::InvalidRow { row: r, problem };
    let mut conv = std::mem::take(&mut w.conv);
    let mut proc = std::mem::take(&mut w.proc);
    let out = (|| {
        // A converted row's maximum is taken as it is converted (the row's first pass).
        let mut max_read = None;
        let (x, raw) = if chain.is_empty() {
            let (x, m) = widened(row, &mut conv, w.par, !wants_chunks)?;
            max_read = m;
            (x, Some(x))
        } else {
            let mut scratch = std::mem::take(&mut w.seen);
            let mut words = std::mem::take(&mut w.words);
            // The row is converted only when the row as passed in is read again: processing
            // reads a 16-bit row as it is, converting it a piece at a time.
            let processed = match source.ctx(r, row.len(), chain.reads_seen(), w.par, &mut scratch)
            {
                Ok(ctx) if need_raw => {
                    widened(row, &mut conv, w.par, false).and_then(|(raw, _)| {
                        let bad = chain.process(r, &ctx, raw, &mut proc, &mut words, w.par)?;
                        Ok((Some(raw), bad))
                    })
                }
                Ok(ctx) => chain
                    .process(r, &ctx, row, &mut proc, &mut words, w.par)
                    .map(|bad| (None, bad)),
                Err(e) => Err(e),
            };
            w.seen = scratch;
            w.words = words;
            let (raw, bad) = processed?;
            if bad {
                // What is wrong with the row as passed in (converted now if it was not).
                let mut conv_bad = Vec::new();
                let raw = match raw {
                    Some(raw) => raw,
                    None => widened(row, &mut conv_bad, w.par, false)?.0,
                };
                return Err(bad_row(row_max(raw, w.par).err().unwrap_or("contains NaN")));
            }
            (&proc[..], raw)
        };
        // Top-k with a small k wants the row's chunk maxima: its maximum then comes from them.
        let max = if wants_chunks {
            let (m, nan) = row_chunk_maxima(x, w)?;
            classify_row(m, nan)
        } else if let Some(m) = max_read {
            m
        } else {
            row_max(x, w.par)
        };
        // The row as passed in was checked: a problem now comes from the processing.
        let max = match max {
            Err("has no finite logit") if !chain.is_empty() => {
                Err("has no finite logit left after the masks, logit_bias and penalties")
            }
            Err(_) if !chain.is_empty() => Err(
                "overflows the processing dtype after logit_bias or the penalties (a logit became +inf or NaN)",
            ),
            m => m,
        }
        .map_err(bad_row)?;
        let res = f(RowView { x, max, raw }, w);
        // What `f` found wrong with the row (R3) gets the row's index.
        res.map_err(|e| match e {
            Error::InvalidRow {
                row: select::UNKNOWN_ROW,
                problem,
            } => bad_row(problem),
            e => e,
        })
    })();
    // However the row ended (refused after its chunk maxima were taken, too), they are not
    // the next row's.
    w.forget_chunk_maxima();
    w.conv = conv;
    w.proc = proc;
    out
}

/// Checks a call's parameters and histories against its shape before anything is drawn.
fn check_call(
    params: &SamplingParams,
    rows: usize,
    vocab: usize,
    source: &Source<'_>,
) -> Result<()> {
    params.validate(rows)?;
    params.check_ids(vocab)?;
    match source {
        Source::Call(h) => h.check(rows, vocab),
        Source::Kept(states) => {
            if states.len() == rows {
                Ok(())
            } else {
                Err(Error::LengthMismatch {
                    name: "logits rows",
                    got: rows,
                    expected: states.len(),
                })
            }
        }
    }
}

/// What one row's draw reports.
#[derive(Debug, Clone, Default)]
struct RowResult {
    tok: i64,
    logprob: f64,
    rank: i64,
    top: Vec<(i64, f64)>,
    /// The drawn token's log-probability under the kept set, for Mirostat's update (P25; NaN
    /// when Mirostat is off).
    kept_lp: f64,
}

/// Draws every row of a checked call: the draws, or the first unusable row's error (P8), in
/// which case nothing was written anywhere. With `mus` (the [`Sampler`]'s Mirostat 2.0, P25),
/// each row's `mu` replaces top-k, top-p and min-p, and the drawn tokens' log-probabilities
/// under their kept sets are returned too (otherwise an empty vector).
fn draw_rows<T: Float>(
    logits: Rows<'_, T>,
    params: &SamplingParams,
    source: Source<'_>,
    streams: &Streams<'_>,
    with_logprob: bool,
    mus: Option<&[f64]>,
) -> Result<(Draws, Vec<f64>)> {
    let (rows, vocab) = (logits.count, logits.vocab);
    let chain = Chain::<T::Compute>::build(params, vocab)?;
    let n_top = params.top_logprobs;
    let mode = params.logprobs_mode;
    let want = logprobs::Want {
        logprob: with_logprob || n_top > 0,
        n_top,
        mode,
    };
    // Rows with nothing to process, and no log-probability wanted but under the kept set (the
    // drawn token's, and alternatives few enough to find from chunk maxima), may be drawn from
    // as they are when bfloat16 or float16 (`select::in_place`).
    let as_stored = select::in_place::stored_as_16_bits::<T>()
        && chain.is_empty()
        && (!want.logprob
            || (want.mode == LogprobsMode::Sampled
                && (want.n_top == 0 || select::in_place::lists_alternatives(want.n_top, vocab))))
        && mus.is_none();
    // Greedy rows draw nothing: no room for their first words.
    let drawing = params.temperature != params::RowParam::All(0.0);
    let firsts = FirstWords::new(streams, if drawing { rows } else { 0 })?;
    let draw_row = |row: &[T], r: usize, w: &mut Work<T::Compute>| -> Result<RowResult> {
        let mut cfg = params.row(r, vocab);
        if let Some(mus) = mus {
            cfg.k = vocab;
            cfg.p = 1.0;
            cfg.mp = 0.0;
            cfg.mu = Some(mus[r]);
        }
        if as_stored {
            let rng = &mut firsts.row(r);
            if let Some(d) = select::in_place::try_draw(row, cfg, rng, want.logprob, w)? {
                let (rank, top) = if want.n_top > 0 {
                    let t = if cfg.t == 0.0 { 1.0 } else { cfg.t };
                    select::in_place::alternatives(row, &d, t, want.n_top, w)?
                } else {
                    (0, Vec::new())
                };
                return Ok(RowResult {
                    tok: d.tok as i64,
                    logprob: d.logprob,
                    rank,
                    top,
                    kept_lp: f64::NAN,
                });
            }
        }
        let wants_chunks = wants_chunk_maxima(&cfg, vocab);
        with_row(
            row,
            r,
            &chain,
            &source,
            wants_chunks,
            want.needs_raw(),
            w,
            |view, w| {
                let mut rng = firsts.row(r);
                let cfg = select::dynatemp::resolve(view.x, view.max, cfg, w)?;
                let lp = want.logprob || mus.is_some();
                let d = sample_row(view.x, view.max, cfg, &mut rng, lp, w)?;
                let kept_lp = if mus.is_some() { d.logprob } else { f64::NAN };
                let mut res = logprobs::report(&view, cfg, d, &want, w)?;
                res.kept_lp = kept_lp;
                Ok(res)
            },
        )
    };
    let results = for_rows::<T::Compute, _>(plan(rows, vocab), rows, vocab, |r, w| {
        logits.with_row_at(r, |row| draw_row(row, r, w))
    })?;
    let mut draws = Draws::with_capacity(rows, with_logprob || n_top > 0, n_top)?;
    let mut kept_lps = Vec::new();
    if mus.is_some() {
        crate::scratch::reserve(&mut kept_lps, rows, "Mirostat's surprises")?;
    }
    for res in results {
        let res = res?;
        if mus.is_some() {
            kept_lps.push(res.kept_lp);
        }
        draws.push(res, n_top);
    }
    Ok((draws, kept_lps))
}

/// What a sampling call returns (contract P1, P15): per row, the token, and when asked for,
/// its log-probability, its rank and the most probable alternatives.
///
/// ```
/// use logitkit::{sample_batch, Histories, SamplingParams, Seed};
/// let logits = [0.0f32, 2.0, 1.0];
/// let params = SamplingParams::greedy().top_logprobs(2);
/// let d = sample_batch(&logits, 3, &params, &Histories::new(), &Seed::Fixed(0), true).unwrap();
/// assert_eq!(d.tokens, [1]);
/// assert_eq!(d.ranks, [1]);
/// assert_eq!(d.top_ids, [1, 0]); // the greedy token, then the removed ones by id
/// assert_eq!(d.top_logprobs, [0.0, f64::NEG_INFINITY]);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Draws {
    /// One token id per row.
    pub tokens: Vec<i64>,
    /// Each chosen token's natural-log probability under the distribution of
    /// [`SamplingParams::logprobs_mode`] (empty unless asked for or `top_logprobs > 0`).
    pub logprobs: Vec<f64>,
    /// Each chosen token's rank: the number of tokens whose log-probability is at least its
    /// own (1 is the most probable); empty unless `top_logprobs > 0`.
    pub ranks: Vec<i64>,
    /// The `top_logprobs` most probable token ids of each row, row after row, by
    /// log-probability descending then id ascending.
    pub top_ids: Vec<i64>,
    /// Their log-probabilities.
    pub top_logprobs: Vec<f64>,
}

impl Draws {
    fn with_capacity(rows: usize, logprobs: bool, n_top: usize) -> Result<Self> {
        let ranked = if n_top > 0 { rows } else { 0 };
        let tops = rows.saturating_mul(n_top);
        let mut d = Draws::default();
        crate::scratch::reserve(&mut d.tokens, rows, "the drawn tokens")?;
        crate::scratch::reserve(&mut d.logprobs, if logprobs { rows } else { 0 }, "logprobs")?;
        crate::scratch::reserve(&mut d.ranks, ranked, "ranks")?;
        crate::scratch::reserve(&mut d.top_ids, tops, "top_logprobs ids")?;
        crate::scratch::reserve(&mut d.top_logprobs, tops, "top_logprobs")?;
        Ok(d)
    }

    fn push(&mut self, r: RowResult, n_top: usize) {
        self.tokens.push(r.tok);
        if self.logprobs.capacity() > 0 {
            self.logprobs.push(r.logprob);
        }
        if n_top > 0 {
            self.ranks.push(r.rank);
            for (id, lp) in r.top {
                self.top_ids.push(id);
                self.top_logprobs.push(lp);
            }
        }
    }
}

fn check_outputs(rows: usize, tokens: &[i64], logprobs: Option<&[f64]>) -> Result<()> {
    check_len("tokens", tokens.len(), rows)?;
    if let Some(lp) = logprobs {
        check_len("logprobs", lp.len(), rows)?;
    }
    Ok(())
}

fn check_seed(seed: &Seed, rows: usize) -> Result<()> {
    match seed {
        Seed::PerRow(s) => check_len("seed", s.len(), rows),
        _ => Ok(()),
    }
}

/// Samples one token per row of a row-major batch of logits (`logits.len() / vocab` rows of
/// `vocab` tokens) with the whole pipeline of contract P14: masks, logit bias and penalties
/// (reading `histories`), then temperature, top-k, top-p and min-p, then one draw; rows in
/// parallel on the crate's pool. With `with_logprobs` (or `params.top_logprobs > 0`) the
/// [`Draws`] hold log-probabilities too.
///
/// # Errors
/// As [`sample_rows`]; also [`Error::InvalidParameter`] for a token id outside `[0, vocab)`
/// in the parameters or the histories (naming the parameter, the row and the id), and
/// [`Error::InvalidRow`] for a row the masks leave without a finite logit. Nothing is drawn
/// when an error is returned.
///
/// ```
/// use logitkit::{sample_batch, Histories, SamplingParams, Seed};
/// let logits = [3.0f32, 2.9, 0.0, 0.0];
/// // Token 0 was generated before: a strong repetition penalty moves greedy decoding off it.
/// let outputs = vec![vec![0u32]];
/// let params = SamplingParams::greedy().repetition_penalty(2.0);
/// let h = Histories::new().output_tokens(&outputs);
/// let d = sample_batch(&logits, 4, &params, &h, &Seed::Entropy, false).unwrap();
/// assert_eq!(d.tokens, [1]);
/// ```
pub fn sample_batch<T: Float>(
    logits: &[T],
    vocab: usize,
    params: &SamplingParams,
    histories: &Histories<'_>,
    seed: &Seed,
    with_logprobs: bool,
) -> Result<Draws> {
    sample_batch_of(
        Rows::contiguous(logits, vocab)?,
        params,
        histories,
        seed,
        with_logprobs,
    )
}

/// [`sample_batch`] of rows read where they are.
pub(crate) fn sample_batch_of<T: Float>(
    logits: Rows<'_, T>,
    params: &SamplingParams,
    histories: &Histories<'_>,
    seed: &Seed,
    with_logprobs: bool,
) -> Result<Draws> {
    let (rows, vocab) = (logits.count, logits.vocab);
    check_seed(seed, rows)?;
    let source = Source::Call(*histories);
    check_call(params, rows, vocab, &source)?;
    let streams = Streams::for_sample(seed);
    draw_rows(logits, params, source, &streams, with_logprobs, None).map(|(d, _)| d)
}

/// Samples one token per row of a row-major batch of logits (`logits.len() / vocab` rows of
/// `vocab` tokens), rows in parallel on the crate's pool: [`sample_batch`] without histories,
/// writing into `tokens` (and `logprobs`).
///
/// `tokens[i]` receives row `i`'s token id; `logprobs[i]`, if given, the natural log of its
/// probability under the distribution it was drawn from (after temperature and filters; 0 for
/// a greedy row). The semantics are in the [module documentation](crate::sampling).
///
/// # Errors
/// [`Error::InvalidParameter`] for `vocab == 0` (or not dividing `logits.len()`) and for a bad
/// parameter value; [`Error::LengthMismatch`] for a per-row parameter, per-row seed, `tokens`
/// or `logprobs` of the wrong length; [`Error::InvalidRow`] for the first row holding NaN or
/// `+inf`, or no finite logit. Nothing is written when an error is returned.
///
/// ```
/// use logitkit::{sample_rows, SamplingParams, Seed};
/// let logits = [2.0f32, 1.0, 0.5, -1.0, /* row 1 */ 0.0, 0.0, 9.0, 0.0];
/// let params = SamplingParams::default().temperature(0.8).top_k(2);
/// let mut tokens = [0i64; 2];
/// let mut logprobs = [0.0f64; 2];
/// sample_rows(&logits, 4, &params, &Seed::Fixed(7), &mut tokens, Some(&mut logprobs)).unwrap();
/// assert!(tokens[0] == 0 || tokens[0] == 1);
/// assert!(logprobs.iter().all(|&lp| lp <= 0.0));
///
/// let bad = [1.0f32, f32::NAN];
/// let err = sample_rows(&bad, 2, &params, &Seed::Fixed(7), &mut tokens[..1], None).unwrap_err();
/// assert_eq!(err.to_string(), "logits row 0 contains NaN");
/// ```
pub fn sample_rows<T: Float>(
    logits: &[T],
    vocab: usize,
    params: &SamplingParams,
    seed: &Seed,
    tokens: &mut [i64],
    logprobs: Option<&mut [f64]>,
) -> Result<()> {
    let rows = rows_of(logits.len(), vocab)?;
    check_outputs(rows, tokens, logprobs.as_deref())?;
    let d = sample_batch(
        logits,
        vocab,
        params,
        &Histories::new(),
        seed,
        logprobs.is_some(),
    )?;
    write_draws(&d, tokens, logprobs);
    Ok(())
}

/// Writes the tokens and log-probabilities of `d` to the outputs.
fn write_draws(d: &Draws, tokens: &mut [i64], logprobs: Option<&mut [f64]>) {
    tokens.copy_from_slice(&d.tokens);
    if let Some(lps) = logprobs {
        lps.copy_from_slice(&d.logprobs);
    }
}

/// Samples one token from one vector of logits: `(token id, log-probability)`.
/// As [`sample_rows`] with a single row.
///
/// ```
/// use logitkit::{sample, SamplingParams, Seed};
/// let (tok, lp) = sample(&[0.0f64, 5.0, 1.0], &SamplingParams::greedy(), &Seed::Entropy).unwrap();
/// assert_eq!((tok, lp), (1, 0.0));
/// ```
pub fn sample<T: Float>(logits: &[T], params: &SamplingParams, seed: &Seed) -> Result<(i64, f64)> {
    one_vector(logits.len())?;
    let (mut tok, mut lp) = ([0i64], [0.0f64]);
    sample_rows(logits, logits.len(), params, seed, &mut tok, Some(&mut lp))?;
    Ok((tok[0], lp[0]))
}

/// The logits [`sample_batch`] draws from (contract P7): the processed logits (masks, bias,
/// penalties), each kept token's divided by the temperature, every removed token `-inf`; for
/// temperature 0 the greedy token keeps its processed logit unscaled. `softmax` of the result
/// is the distribution of P14.
///
/// Kept values are always finite. Should some kept `x / T` not be finite in `T` (a small
/// temperature, large logits, or `f16`'s range of ±65504), that row's kept tokens get
/// `(x - max) / T` instead, the row's largest kept logit `max` subtracted first: the
/// largest becomes 0, and one below `-limit` (the type's largest finite value) becomes
/// `-limit`. Softmax does not see the shift, and the clamped tokens have probability 0
/// either way, so `softmax` of the row is still the distribution of P14. Likewise a greedy
/// row (`T = 0`) whose processed logit is beyond the type's range (after `logit_bias`) gets 0
/// for its token. Other rows are unaffected.
///
/// # Errors
/// As [`sample_batch`], with `out` in place of the tokens; after an error, `out`'s contents
/// are unspecified (rows are written as they are done).
///
/// ```
/// use logitkit::{filter_logits_batch, Histories, SamplingParams};
/// let logits = [1.0f32, 3.0, 2.0, 3.0];
/// let mut out = [0.0f32; 4];
/// let params = SamplingParams::default().temperature(0.5).logit_bias(vec![(3, -1.0)]);
/// filter_logits_batch(&logits, 4, &params, &Histories::new(), &mut out).unwrap();
/// assert_eq!(out, [2.0, 6.0, 4.0, 4.0]);
/// ```
pub fn filter_logits_batch<T: Float>(
    logits: &[T],
    vocab: usize,
    params: &SamplingParams,
    histories: &Histories<'_>,
    out: &mut [T],
) -> Result<()> {
    let logits = Rows::contiguous(logits, vocab)?;
    filter_logits_batch_of(logits, params, histories, out)
}

/// [`filter_logits_batch`] of rows read where they are (`out` row-major).
pub(crate) fn filter_logits_batch_of<T: Float>(
    logits: Rows<'_, T>,
    params: &SamplingParams,
    histories: &Histories<'_>,
    out: &mut [T],
) -> Result<()> {
    let (rows, vocab) = (logits.count, logits.vocab);
    check_len("out", out.len(), rows.saturating_mul(vocab))?;
    let source = Source::Call(*histories);
    check_call(params, rows, vocab, &source)?;
    let chain = Chain::<T::Compute>::build(params, vocab)?;
    // Kept values stay finite in `T` (P7), whose range may be narrower than the compute type's.
    let limit = T::MAX_FINITE;
    let dst = SharedPtr(out.as_mut_ptr());
    let filter_one = |row: &[T], r: usize, w: &mut Work<T::Compute>| -> Result<()> {
        // SAFETY: row r of `out` (which holds rows * vocab elements, borrowed mutably for the
        // call) is written by this task only.
        let out_row = unsafe { std::slice::from_raw_parts_mut(dst.get().add(r * vocab), vocab) };
        with_row(row, r, &chain, &source, false, false, w, |view, w| {
            let cfg = params.row(r, vocab);
            let cfg = select::dynatemp::resolve(view.x, view.max, cfg, w)?;
            if is_native::<T>() {
                // SAFETY: `is_native` says `T` and `T::Compute` are the same type.
                let o = unsafe { &mut *(out_row as *mut [T] as *mut [T::Compute]) };
                filter_row(view.x, view.max, cfg, w, o, limit)
            } else {
                // One row in the compute type, converted on the way out: no more scratch than
                // a row per thread (contract R1).
                let mut o = crate::scratch::filled(vocab, T::Compute::NEG_INFINITY, "a row")?;
                filter_row(view.x, view.max, cfg, w, &mut o, limit)?;
                T::narrow(&o, out_row);
                Ok(())
            }
        })
    };
    let filtered = for_rows::<T::Compute, _>(plan(rows, vocab), rows, vocab, |r, w| {
        logits.with_row_at(r, |row| filter_one(row, r, w))
    })?;
    filtered.into_iter().collect()
}

/// [`filter_logits_batch`] without histories.
///
/// ```
/// use logitkit::{filter_logits_rows, SamplingParams};
/// let logits = [1.0f32, 3.0, 2.0, 3.0];
/// let mut out = [0.0f32; 4];
/// let params = SamplingParams::default().temperature(0.5).top_k(2);
/// filter_logits_rows(&logits, 4, &params, &mut out).unwrap();
/// assert_eq!(out, [f32::NEG_INFINITY, 6.0, f32::NEG_INFINITY, 6.0]);
/// ```
pub fn filter_logits_rows<T: Float>(
    logits: &[T],
    vocab: usize,
    params: &SamplingParams,
    out: &mut [T],
) -> Result<()> {
    filter_logits_batch(logits, vocab, params, &Histories::new(), out)
}

/// [`filter_logits_rows`] of one vector.
///
/// ```
/// use logitkit::{filter_logits, SamplingParams};
/// let mut out = [0.0f64; 3];
/// filter_logits(&[1.0, 2.0, 0.5], &SamplingParams::greedy(), &mut out).unwrap();
/// assert_eq!(out, [f64::NEG_INFINITY, 2.0, f64::NEG_INFINITY]);
/// ```
pub fn filter_logits<T: Float>(logits: &[T], params: &SamplingParams, out: &mut [T]) -> Result<()> {
    one_vector(logits.len())?;
    filter_logits_rows(logits, logits.len(), params, out)
}

#[cfg(test)]
mod tests {
    use super::{row_max, widened, Rows, Scattered};
    use crate::element::{Float, Real};

    /// R1: scattered rows (here a (2, 3, 4) array stored with its axes reversed, then the
    /// vocabulary read backwards) are read element by element, in row order over the leading
    /// dimensions; a layout reaching outside the data is refused.
    #[test]
    fn r1_scattered_rows_read_their_elements_in_order() {
        // Element (i, j, k) of the logical array is 100 i + 10 j + k, stored at k*6 + j*2 + i.
        let mut data = vec![0.0f32; 24];
        for (i, j, k) in
            (0..2).flat_map(|i| (0..3).flat_map(move |j| (0..4).map(move |k| (i, j, k))))
        {
            data[k * 6 + j * 2 + i] = (100 * i + 10 * j + k) as f32;
        }
        let lanes = |stride| crate::Lanes {
            len: 4,
            stride,
            outer: vec![(2, 1), (3, 2)],
        };
        let (fwd, back, one) = (lanes(6), lanes(-6), lanes(0));
        let at = |base, lanes| Scattered { base, lanes };
        let rows = Rows::scattered(&data, at(0, &fwd)).unwrap();
        assert_eq!(rows.count, 6);
        for r in 0..6 {
            let (i, j) = (r / 3, r % 3);
            let want: Vec<f32> = (0..4).map(|k| (100 * i + 10 * j + k) as f32).collect();
            let got = rows.with_row_at(r, |row| Ok(row.to_vec())).unwrap();
            assert_eq!(got, want, "row {r}");
        }
        // The vocabulary backwards: element k at the offset of 3 - k.
        let got = Rows::scattered(&data, at(18, &back))
            .unwrap()
            .with_row_at(4, |row| Ok(row.to_vec()))
            .unwrap();
        assert_eq!(got, [113.0, 112.0, 111.0, 110.0]);
        // A broadcast vocabulary (step 0): element (1, 2, 3) four times.
        let got = Rows::scattered(&data, at(18, &one))
            .unwrap()
            .with_row_at(5, |row| Ok(row.to_vec()))
            .unwrap();
        assert_eq!(got, [123.0; 4]);
        // One element too far, either way.
        let far = lanes(7);
        for (base, l) in [(0, &far), (17, &back)] {
            assert!(Rows::scattered(&data, at(base, l)).is_err(), "{base} {l:?}");
        }
        // A call inside the row's own gets a buffer of its own.
        let nested = rows
            .with_row_at(0, |a| rows.with_row_at(5, |b| Ok((a.to_vec(), b.to_vec()))))
            .unwrap();
        assert_eq!(nested.0, [0.0, 1.0, 2.0, 3.0]);
        assert_eq!(nested.1, [120.0, 121.0, 122.0, 123.0]);
    }

    /// A 16-bit row converted a block at a time (on the threads or not) is the element-wise
    /// conversion, and the maximum taken while converting is `row_max`'s of the converted row,
    /// NaN, `+inf` and rows without a finite logit included; a native row is borrowed.
    #[test]
    fn p8_widened_rows_and_their_maxima_match_row_max() {
        fn check<T: Float>() {
            let mut u = crate::sampling::test_units::units(0x51_7CC1_B727_220A);
            for n in [1usize, 5, 16_384, 16_385, 40_000] {
                for bad in [
                    None,
                    Some(f64::NAN),
                    Some(f64::INFINITY),
                    Some(f64::NEG_INFINITY),
                ] {
                    let mut row: Vec<T> = (0..n)
                        .map(|_| T::from_compute(T::Compute::from_f64(u() * 20.0 - 10.0)))
                        .collect();
                    if let Some(b) = bad {
                        let at = (u() * n as f64) as usize;
                        if b == f64::NEG_INFINITY {
                            row.iter_mut()
                                .for_each(|e| *e = T::from_compute(T::Compute::from_f64(b)));
                        } else {
                            row[at] = T::from_compute(T::Compute::from_f64(b));
                        }
                    }
                    for par in [false, true] {
                        let mut conv = Vec::new();
                        let (x, m) = widened(&row, &mut conv, par, true).unwrap();
                        assert!(x.iter().zip(&row).all(
                            |(a, b)| a.to_f64().to_bits() == b.to_compute().to_f64().to_bits()
                        ));
                        assert_eq!(m, Some(row_max(x, par)), "n {n} bad {bad:?} par {par}");
                    }
                }
            }
        }
        check::<half::bf16>();
        check::<half::f16>();
        let row = [1.0f32, 3.0, 2.0];
        let mut conv = Vec::new();
        let (x, m) = widened(&row, &mut conv, true, true).unwrap();
        assert_eq!((x.as_ptr(), m), (row.as_ptr(), None));
    }
}
