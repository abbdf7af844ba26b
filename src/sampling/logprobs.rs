//! Log-probabilities (contract P15, P16): of the chosen token under the distribution
//! `logprobs_mode` names, its rank, the most probable alternatives, and [`token_logprobs`]
//! for scoring given tokens.
//!
//! Every filter of P3 keeps a prefix of the order (logit descending, id ascending), so the
//! most probable alternatives of every mode are a prefix of that order of the row the mode
//! reads, found by the top-k selection (no sort of the row), and a rank is a count of the
//! tokens whose logit is at least the chosen one's. Log-probabilities are computed in `f64`
//! from the row's maximum and its sum of weights.

use super::params::{LogprobsMode, RowCfg, RowParam};
use super::select::{scaled_gap, sum_over_blocks, RowDraw, Work};
use super::{for_rows, plan, row_max, top_in_order, RowResult, RowView};
use crate::element::{Float, Real};
use crate::error::{Error, Result};
use crate::kernels::{kernels, row_sums, BLOCK};
use crate::ln::ln_in_place;
use crate::parallel::{is_parallel, ranges_mapped, zip_chunks_mut};
use crate::softmax::check_len;

use super::hot::{count_at_least, count_at_least_half, Stored16};
use super::select::in_place::as_stored;
use crate::kernels::HalfRows;
use crate::simd::simd_level;

/// What a call reports beyond the token.
pub(super) struct Want {
    /// The chosen token's log-probability.
    pub logprob: bool,
    /// How many alternatives (their ranks come with them).
    pub n_top: usize,
    pub mode: LogprobsMode,
}

impl Want {
    /// Whether the row as passed in is read (for `"raw"`).
    pub fn needs_raw(&self) -> bool {
        self.logprob && self.mode == LogprobsMode::Raw
    }
}

/// `ln Σ exp((x - m) / t)` over a row, block by block in order (the same bits whatever the
/// threads), split across the pool when `par`.
fn ln_sum_exp<C: Real>(x: &[C], m: C, t: f64, par: bool) -> f64 {
    let k = kernels::<C>();
    sum_over_blocks::<f64>(x.len(), par, |r| (k.sum_exp)(&x[r], m, t)).ln()
}

/// A distribution over a row: `lp(j) = (x_j - m) / t - ln_total`, for the first `kept`
/// tokens of the order (the others have `-inf`).
struct Dist<'a, C> {
    x: &'a [C],
    m: C,
    t: f64,
    ln_total: f64,
    kept: usize,
}

impl<C: Real> Dist<'_, C> {
    fn logprob(&self, j: usize) -> f64 {
        scaled_gap(self.x[j].to_f64(), self.m.to_f64(), self.t) - self.ln_total
    }

    /// The number of tokens at least as probable as `j` (`j` kept), counted block by block
    /// on the threads when `par`: each thread counts the blocks it wrote in the row's earlier
    /// passes (a converted or processed row), so no block moves between the cores.
    fn rank(&self, j: usize, par: bool) -> i64 {
        let xj = self.x[j].to_f64();
        let count: usize = sum_over_blocks(self.x.len(), par, |r| count_at_least(&self.x[r], xj));
        count.min(self.kept) as i64
    }

    /// The `n` most probable tokens, by log-probability descending then id ascending.
    fn top(&self, n: usize, w: &mut Work<C>) -> Result<Vec<(i64, f64)>> {
        let v = self.x.len();
        let n = n.min(v);
        let order = top_in_order(self.x, self.m, n.min(self.kept), w)?;
        let items = order.iter().map(|&j| (j as i64, self.logprob(j)));
        let mut top = crate::scratch::collected(n, items, "top_logprobs")?;
        if n > top.len() {
            let mut kept = order;
            kept.sort_unstable();
            pad_with_removed(&mut top, &kept, v, n);
        }
        Ok(top)
    }
}

/// Fills `top` up to `n` entries with the removed tokens (probability 0) of a row of `v`
/// tokens, by id: those not in `kept` (ids in increasing order).
fn pad_with_removed(top: &mut Vec<(i64, f64)>, kept: &[usize], v: usize, n: usize) {
    let mut it = kept.iter().peekable();
    for j in 0..v {
        if top.len() >= n {
            break;
        }
        if it.peek() == Some(&&j) {
            it.next();
        } else {
            top.push((j as i64, f64::NEG_INFINITY));
        }
    }
}

/// Rank and most probable tokens of a draw from a kept set held as a list of token ids
/// (`kept`, in any order, holding the drawn token, whose logit is `xt`), `logit(j)` being
/// token `j`'s logit in a row of `v` tokens and `logprob(e, j)` the log-probability of kept
/// token `j`, `e` its logit as read for the order (`-0.0` read as `0.0`). The rank counts the
/// kept tokens at least as probable as the drawn one, or is `rank` when given; the `n`
/// alternatives are the kept tokens by logit descending then id ascending (only the first `n`
/// are ordered), then the removed tokens by id.
pub(crate) fn list_report(
    kept: &[usize],
    logit: impl Fn(usize) -> f64,
    xt: f64,
    rank: Option<usize>,
    v: usize,
    n: usize,
    logprob: impl Fn(f64, usize) -> f64,
) -> Result<(i64, Vec<(i64, f64)>)> {
    // Keyed by logits read once: a comparison that read the row again could see another
    // thread's writes and contradict an earlier one (contract R3). `-0.0` is taken as `0.0`.
    let keys = kept.iter().map(|&j| (logit(j) + 0.0, j));
    let mut keyed = crate::scratch::collected(kept.len(), keys, "top_logprobs order")?;
    let rank = rank.unwrap_or_else(|| keyed.iter().filter(|k| k.0 >= xt).count()) as i64;
    let n = n.min(v);
    let order = |a: &(f64, usize), b: &(f64, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if n < keyed.len() {
        keyed.select_nth_unstable_by(n, order);
        keyed.truncate(n);
    }
    keyed.sort_unstable_by(order);
    let items = keyed.iter().map(|&(e, j)| (j as i64, logprob(e, j)));
    let mut top = crate::scratch::collected(n, items, "top_logprobs")?;
    if n > top.len() {
        // Fewer kept than asked for: a short list, which padding wants by id.
        let mut ids = crate::scratch::collected(kept.len(), kept.iter().copied(), "kept ids")?;
        ids.sort_unstable();
        pad_with_removed(&mut top, &ids, v, n);
    }
    Ok((rank, top))
}

/// The report of one drawn row.
pub(super) fn report<C: Real>(
    view: &RowView<'_, C>,
    cfg: RowCfg,
    d: RowDraw,
    want: &Want,
    w: &mut Work<C>,
) -> Result<RowResult> {
    let mut res = RowResult {
        tok: d.tok as i64,
        logprob: d.logprob,
        ..Default::default()
    };
    if !want.logprob {
        return Ok(res);
    }
    let v = view.x.len();
    let filtered = cfg.k < v || cfg.p < 1.0 || cfg.mp > 0.0 || cfg.has_kept_stages();
    if d.in_list && want.mode == LogprobsMode::Sampled && want.n_top > 0 {
        // The kept set is the list in `w.cur`. After a stage of P20-P23 it need not be a prefix
        // of the order: each alternative's log-probability is then taken from the drawn
        // token's, lp(j) = lp + (x_j - x_tok) / t.
        let (x, xt) = (view.x, view.x[d.tok].to_f64());
        let t = if cfg.t == 0.0 { 1.0 } else { cfg.t };
        let (m, ln_total) = (
            view.max.to_f64(),
            scaled_gap(xt, view.max.to_f64(), t) - d.logprob,
        );
        let (rank, top) = if d.listed {
            let lp = |e, _| d.logprob + scaled_gap(e, xt, cfg.t);
            list_report(&w.cur.idx, |j| x[j].to_f64(), xt, None, v, want.n_top, lp)?
        } else {
            // A prefix of the order holding the drawn token: the row's tokens at least as
            // probable as it, capped at the kept set's size, are the kept set's own.
            let lp = |_, j: usize| scaled_gap(x[j].to_f64(), m, t) - ln_total;
            list_report(&w.cur.idx, |j| x[j].to_f64(), xt, None, v, want.n_top, lp)?
        };
        res.rank = rank;
        res.top = top;
        return Ok(res);
    }
    let dist = match want.mode {
        LogprobsMode::Sampled => {
            let t = if cfg.t == 0.0 { 1.0 } else { cfg.t };
            Dist {
                x: view.x,
                m: view.max,
                t,
                // The draw's log-probability is the token's scaled logit less ln(total).
                ln_total: scaled_gap(view.x[d.tok].to_f64(), view.max.to_f64(), t) - d.logprob,
                kept: d.kept,
            }
        }
        LogprobsMode::Processed => {
            let t = if cfg.t == 0.0 { 1.0 } else { cfg.t };
            let ln_total = if cfg.t > 0.0 && !filtered {
                scaled_gap(view.x[d.tok].to_f64(), view.max.to_f64(), t) - d.logprob
            } else {
                ln_sum_exp(view.x, view.max, t, w.par)
            };
            Dist {
                x: view.x,
                m: view.max,
                t,
                ln_total,
                kept: v,
            }
        }
        LogprobsMode::Raw => {
            let raw = view.raw.expect("read for raw logprobs");
            w.forget_chunk_maxima();
            // Checked finite by the caller (no NaN or +inf; some finite logit).
            let m = row_max(raw, w.par).unwrap_or(view.max);
            Dist {
                x: raw,
                m,
                t: 1.0,
                ln_total: ln_sum_exp(raw, m, 1.0, w.par),
                kept: v,
            }
        }
    };
    if want.mode != LogprobsMode::Sampled {
        res.logprob = dist.logprob(d.tok);
    }
    if want.n_top > 0 {
        res.rank = dist.rank(d.tok, w.par);
        res.top = dist.top(want.n_top, w)?;
    }
    Ok(res)
}

/// The log-probability of given tokens: `log_softmax(logits / T)` at `token_ids`, one per row
/// of a row-major batch (contract P16), without materialising the log-softmax: a maximum and a
/// sum of exponentials per row. `out` receives the result as the logits' type, rounded once
/// from `f64`; `ranks`, if given, each token's rank (the number of tokens whose logit is at
/// least its own; 1 = most probable). Rows that hold NaN or `+inf`, or no finite logit, give
/// NaN, as `log_softmax` does (S6).
///
/// # Errors
/// A `temperature` that is not finite and `> 0` (or a per-row one of the wrong length), a
/// token id outside `[0, vocab)` (naming its row), `vocab == 0`, or outputs of the wrong
/// length.
///
/// ```
/// use logitkit::token_logprobs_rows;
/// let logits = [0.0f32, 0.0, 0.0, 0.0, /* row 1 */ 1.0, 2.0, 3.0, 4.0];
/// let mut lp = [0.0f32; 2];
/// let mut ranks = [0i64; 2];
/// token_logprobs_rows(&logits, 4, &[2, 3], 1.0.into(), &mut lp, Some(&mut ranks)).unwrap();
/// assert!((lp[0] - 0.25f32.ln()).abs() < 1e-6);
/// assert_eq!(ranks, [4, 1]);
/// ```
pub fn token_logprobs_rows<T: Float>(
    logits: &[T],
    vocab: usize,
    token_ids: &[i64],
    temperature: RowParam<f64>,
    out: &mut [T],
    ranks: Option<&mut [i64]>,
) -> Result<()> {
    let logits = super::Rows::contiguous(logits, vocab)?;
    token_logprobs_of(logits, token_ids, temperature, out, ranks)
}

/// [`token_logprobs_rows`] of rows read where they are.
pub(crate) fn token_logprobs_of<T: Float>(
    logits: super::Rows<'_, T>,
    token_ids: &[i64],
    temperature: RowParam<f64>,
    out: &mut [T],
    ranks: Option<&mut [i64]>,
) -> Result<()> {
    let (rows, vocab) = (logits.count, logits.vocab);
    check_len("token_ids", token_ids.len(), rows)?;
    check_len("out", out.len(), rows)?;
    if let Some(r) = &ranks {
        check_len("ranks", r.len(), rows)?;
    }
    if let RowParam::PerRow(t) = &temperature {
        check_len("temperature", t.len(), rows)?;
    }
    if let Some(&t) = temperature
        .values()
        .iter()
        .find(|t| !(t.is_finite() && **t > 0.0))
    {
        return Err(Error::invalid("temperature", t, "a finite float > 0"));
    }
    if let Some((row, &id)) = token_ids
        .iter()
        .enumerate()
        .find(|(_, &id)| id < 0 || id as u64 >= vocab as u64)
    {
        return Err(super::history::bad_id("token_ids", row, id as i128, vocab));
    }
    let with_rank = ranks.is_some();
    if let (RowParam::All(t), true) = (&temperature, short_rows(&logits)) {
        return short_rows_scored(logits, token_ids, *t, out, ranks);
    }
    let results = for_rows::<T::Compute, _>(plan(rows, vocab), rows, vocab, |r, w| {
        let (j, t) = (token_ids[r] as usize, temperature.get(r));
        logits.with_row_at(r, |row| {
            if let Some(res) = score_stored(row, j, t, with_rank, w.par) {
                return Ok(res);
            }
            let mut conv = std::mem::take(&mut w.conv);
            let res = super::as_compute(row, &mut conv).map(|x| score(x, j, t, with_rank, w.par));
            w.conv = conv;
            res
        })
    })?;
    let results = results.into_iter().collect::<Result<Vec<_>>>()?;
    for (o, &(lp, _)) in out.iter_mut().zip(&results) {
        *o = T::from_compute(<T::Compute as Real>::from_f64(lp));
    }
    if let Some(ranks) = ranks {
        for (o, &(_, rank)) in ranks.iter_mut().zip(&results) {
            *o = rank;
        }
    }
    Ok(())
}

/// Rows at most this long, stored one after the other, are scored [`SHORT_ROWS_CHUNK`] at a time
/// by [`short_rows_scored`] rather than one by one: the work of a row of a few logits is less
/// than a call's per-row cost (contract R8: `token_logprobs` of a million rows of 2 took 20
/// times NumPy's softmax over them).
const SHORT_ROW_MAX: usize = 256;

/// How many short rows one kernel call sums.
const SHORT_ROWS_CHUNK: usize = 256;

/// Whether [`short_rows_scored`] takes the rows.
fn short_rows<T>(logits: &super::Rows<'_, T>) -> bool {
    logits.vocab <= SHORT_ROW_MAX && logits.stride == logits.vocab && logits.scattered.is_none()
}

/// [`token_logprobs_of`] of short adjacent rows at one temperature (`t`, checked), with the
/// bits [`score`] gives each row: the rows' maxima and sums of exps from [`row_sums`] (the
/// bits of the row kernels, many rows per call), their logs from [`ln_in_place`] (the bits of
/// `f64::ln`), chunks of rows on the threads.
fn short_rows_scored<T: Float>(
    logits: super::Rows<'_, T>,
    token_ids: &[i64],
    t: f64,
    out: &mut [T],
    ranks: Option<&mut [i64]>,
) -> Result<()> {
    let (rows, n) = (logits.count, logits.vocab);
    let x = &logits.data[..rows * n];
    let par = is_parallel(rows * n);
    // One pass writes both outputs (without ranks, their chunks are empty).
    let (ranks, rank_chunk) = match ranks {
        Some(r) => (r, SHORT_ROWS_CHUNK),
        None => (&mut [][..], 0),
    };
    let failed = crate::scratch::FirstError::default();
    zip_chunks_mut(
        out,
        SHORT_ROWS_CHUNK,
        ranks,
        rank_chunk,
        par,
        |c, outs, ranks| {
            let first = c * SHORT_ROWS_CHUNK;
            let mut conv = Vec::new();
            let xs = match chunk_rows(x, n, c, outs.len(), &mut conv) {
                Ok(xs) => xs,
                Err(e) => return failed.set(e),
            };
            let k = kernels::<T::Compute>();
            let mut maxima = [<T::Compute as Real>::NAN; SHORT_ROWS_CHUNK];
            let mut ln_totals = [0.0f64; SHORT_ROWS_CHUNK];
            let (maxima, ln_totals) = (&mut maxima[..outs.len()], &mut ln_totals[..outs.len()]);
            row_sums(k, xs, n, t, maxima, ln_totals);
            ln_in_place(ln_totals);
            for (r, (o, row)) in outs.iter_mut().zip(xs.chunks_exact(n)).enumerate() {
                let xj = row[token_ids[first + r] as usize].to_f64();
                let lp = if ln_totals[r].is_nan() {
                    f64::NAN
                } else {
                    scaled_gap(xj, maxima[r].to_f64(), t) - ln_totals[r]
                };
                *o = T::from_compute(<T::Compute as Real>::from_f64(lp));
            }
            for (r, (o, row)) in ranks.iter_mut().zip(xs.chunks_exact(n)).enumerate() {
                let xj = row[token_ids[first + r] as usize].to_f64();
                *o = count_at_least(row, xj) as i64;
            }
        },
    );
    failed.into_result()?;
    crate::interrupt::status()
}

/// The `count` rows of chunk `c` of [`short_rows_scored`] (rows of `n` in `x`) as the compute
/// type, converted into `conv` when `T` is not its own; `Err(Interrupted)` once Ctrl-C was
/// seen (R8: a call over tens of millions of rows takes seconds, and a poll may have taken
/// Python's exception, so it must be reported).
fn chunk_rows<'a, T: Float>(
    x: &'a [T],
    n: usize,
    c: usize,
    count: usize,
    conv: &'a mut Vec<T::Compute>,
) -> Result<&'a [T::Compute]> {
    if crate::interrupt::poll_at(c, SHORT_ROWS_CHUNK * n) {
        return Err(Error::Interrupted);
    }
    super::as_compute(&x[c * SHORT_ROWS_CHUNK * n..][..count * n], conv)
}

/// `(log_softmax(x / t)[j], rank of j)`; the rank counts every token whose logit is at
/// least `x[j]` (equal logits are equally probable).
///
/// One pass over the row: each block's maximum, its sum of `exp((x - block max) / t)` while the
/// block is in cache (and its count for the rank), then the blocks combined in order, in `f64`,
/// relative to the row's maximum; the same result whatever the threads.
pub(super) fn score<C: Real>(x: &[C], j: usize, t: f64, with_rank: bool, par: bool) -> (f64, i64) {
    let k = kernels::<C>();
    let xj = x[j].to_f64();
    score_by_blocks(x.len(), xj, t, par, |r| {
        let b = &x[r];
        let (m, nan) = (k.max)(b);
        let s = if usable(m.to_f64(), nan) {
            (k.sum_exp)(b, m, t)
        } else {
            0.0
        };
        let count = if with_rank { count_at_least(b, xj) } else { 0 };
        (m.to_f64(), nan, s, count)
    })
}

/// [`score`] of a bfloat16 or float16 row read as it is (issue 22, item 5): the same blocks,
/// the same bits, from the level's 16-bit kernels (the logits widened in registers) instead of
/// a float32 copy of the row; `None` for any other `T`, or when the level has no 16-bit
/// kernels or they do not take `t`.
fn score_stored<T: Float>(
    row: &[T],
    j: usize,
    t: f64,
    with_rank: bool,
    par: bool,
) -> Option<(f64, i64)> {
    fn of<H: HalfRows + Stored16>(
        x: &[H],
        j: usize,
        t: f64,
        rank: bool,
        par: bool,
    ) -> Option<(f64, i64)> {
        let k = H::kernels_for(simd_level()).filter(|k| (k.takes)(t))?;
        let xj = f64::from(x[j].value());
        Some(score_by_blocks(x.len(), xj, t, par, |r| {
            let b = &x[r];
            let (m, nan) = (k.max)(b);
            let s = if usable(f64::from(m), nan) {
                // SAFETY: `k` is this CPU's level's table (`kernels_for` gives no other); the
                // block's elements are readable, each `<= m` or NaN, `m` finite; a null
                // `exps` stores nothing and a null `ahead` prefetches nothing.
                unsafe {
                    (k.exp_sum)(
                        b.as_ptr(),
                        std::ptr::null_mut(),
                        b.len(),
                        m,
                        t,
                        std::ptr::null(),
                        0,
                    )
                }
            } else {
                0.0
            };
            let count = if rank {
                count_at_least_half::<f32, H>(b, xj)
            } else {
                0
            };
            (f64::from(m), nan, s, count)
        }))
    }
    if let Some(x) = as_stored::<T, half::bf16>(row) {
        of(x, j, t, with_rank, par)
    } else if let Some(x) = as_stored::<T, half::f16>(row) {
        of(x, j, t, with_rank, par)
    } else {
        None
    }
}

/// Whether a block with maximum `m` (and NaN or not) has a sum of weights: no NaN, and a
/// finite maximum.
fn usable(m: f64, nan: bool) -> bool {
    !nan && m.is_finite()
}

/// [`score`] from `block(range)`, one block's maximum (widened), whether it holds NaN, its
/// `Σ exp((x - max) / t)` (0 unless [`usable`]) and its count of logits `>= xj`, each block
/// on the threads when `par`, combined in order.
fn score_by_blocks(
    n: usize,
    xj: f64,
    t: f64,
    par: bool,
    block: impl Fn(std::ops::Range<usize>) -> (f64, bool, f64, usize) + Sync,
) -> (f64, i64) {
    let blocks = ranges_mapped(n, BLOCK, par && n > BLOCK, |_, r| block(r));
    let rank = blocks.iter().map(|b| b.3).sum::<usize>() as i64;
    let (mut m, mut nan) = (f64::NEG_INFINITY, false);
    for &(bm, bn, _, _) in blocks.iter() {
        if bm > m {
            m = bm;
        }
        nan |= bn;
    }
    if !usable(m, nan) {
        return (f64::NAN, rank);
    }
    let total: f64 = blocks
        .iter()
        .filter(|b| b.0 != f64::NEG_INFINITY)
        .map(|b| b.2 * scaled_gap(b.0, m, t).exp())
        .sum();
    (scaled_gap(xj, m, t) - total.ln(), rank)
}

/// [`token_logprobs_rows`] of one vector: `log_softmax(logits / temperature)[token]`.
///
/// ```
/// let lp = logitkit::token_logprobs(&[1.0f64, 1.0], 0, 1.0).unwrap();
/// assert!((lp - 0.5f64.ln()).abs() < 1e-15);
/// ```
pub fn token_logprobs<T: Float>(logits: &[T], token: i64, temperature: f64) -> Result<T> {
    super::one_vector(logits.len())?;
    let mut out = [T::from_compute(<T::Compute as Real>::NAN)];
    token_logprobs_rows(
        logits,
        logits.len(),
        &[token],
        temperature.into(),
        &mut out,
        None,
    )
    .map_err(|e| match e {
        // This function's parameter is `token`, one id.
        Error::InvalidParameter {
            name: "token_ids",
            expected,
            ..
        } => Error::InvalidParameter {
            name: "token",
            value: token.to_string(),
            expected,
        },
        e => e,
    })?;
    Ok(out[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::rng::Streams;
    use crate::sampling::select::{sample_row, RowDraw};
    use crate::Seed;

    /// Short adjacent rows scored many at a time give each row the bits of [`score`], one row
    /// at a time: rows with -inf, NaN, +inf, all -inf, ±0, ties, huge spans; f32 and f64,
    /// every row length up to [`SHORT_ROW_MAX`] tried here, temperatures the packed kernels
    /// take and ones they leave to the row kernels.
    fn short_rows_match_scoring_row_by_row<C: Float + Real>() {
        let mut u = crate::sampling::test_units::units(0x51A7_0C0F_FEE1_2345);
        for n in [1usize, 2, 3, 5, 8, 9, 16, 17, 33, 100, 256] {
            let rows = 700;
            let x: Vec<C> = (0..rows * n)
                .map(|i| {
                    let v = match (i / n) % 11 {
                        0 => [f64::NEG_INFINITY, 0.0, -0.0][i % 3],
                        1 => [f64::NAN, 1.0][i % 2],
                        2 => [f64::INFINITY, 1.0][i % 2],
                        3 => f64::NEG_INFINITY,
                        4 => [3e38, -3e38][i % 2],
                        5 => (u() * 4.0).floor(),
                        _ => (u() - 0.5) * 40.0,
                    };
                    C::from_f64(v)
                })
                .collect();
            let ids: Vec<i64> = (0..rows).map(|_| (u() * n as f64) as i64).collect();
            for t in [1.0, 0.7, 3.0, 1e-30, 1e30, 5e-324] {
                let mut out = vec![C::from_f64(0.0); rows];
                let mut ranks = vec![0i64; rows];
                let logits = super::super::Rows::contiguous(&x, n).unwrap();
                assert!(short_rows(&logits));
                token_logprobs_of(logits, &ids, t.into(), &mut out, Some(&mut ranks)).unwrap();
                for r in 0..rows {
                    let row = &x[r * n..][..n];
                    let (lp, rank) = score(row, ids[r] as usize, t, true, false);
                    let want = C::from_f64(lp);
                    assert!(
                        out[r].to_f64().to_bits() == want.to_f64().to_bits()
                            || (lp.is_nan() && out[r].to_f64().is_nan()),
                        "n {n} t {t} row {r}: {} vs {lp}",
                        out[r].to_f64()
                    );
                    assert_eq!(ranks[r], rank, "n {n} t {t} row {r}");
                }
            }
        }
    }

    #[test]
    fn p16_short_rows_match_scoring_row_by_row() {
        short_rows_match_scoring_row_by_row::<f32>();
        short_rows_match_scoring_row_by_row::<f64>();
    }

    /// A draw whose kept set is a list (top-p, min-p, top-k; no stage) reports, from the
    /// list, the rank and alternatives its row gives: the tokens at least as probable counted
    /// over the row, the row's top `n` selected from it, removed tokens padded by id. Bit for
    /// bit, over rows with and without ties, alternatives fewer and more than the kept set.
    #[test]
    fn p15_listed_kept_sets_report_what_their_rows_give() {
        let mut u = crate::sampling::test_units::units(0x2F0E_94A1_77C3_5D19);
        let mut listed = 0;
        for v in [3000usize, 40_000, 128_256] {
            for grid in [false, true] {
                let x: Vec<f32> = (0..v)
                    .map(|_| {
                        let g = ((u() + u() + u() - 1.5) * 6.0) as f32;
                        if grid {
                            (g * 2.0).round() / 2.0
                        } else {
                            g
                        }
                    })
                    .collect();
                let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let view = RowView {
                    x: &x,
                    max: m,
                    raw: Some(&x),
                };
                for (t, p, mp, k) in [
                    (0.8, 0.95, 0.0, 0),
                    (1.0, 0.5, 0.0, 0),
                    (0.7, 0.05, 0.0, 0),
                    (1.0, 1.0, 0.3, 0),
                    (0.8, 0.9, 0.0, 40),
                    (1.0, 1.0, 0.0, 2),
                ] {
                    let params = crate::sampling::test_units::filters(t, p, mp, k);
                    let cfg = params.row(0, v);
                    for s in 0..3 {
                        for n in [1, 5, 60] {
                            let mut w = Work::<f32>::default();
                            let mut rng = Streams::for_sample(&Seed::Fixed(s)).row(0);
                            let d = sample_row(&x, m, cfg, &mut rng, true, &mut w).unwrap();
                            if !d.in_list {
                                continue;
                            }
                            listed += 1;
                            let want = Want {
                                logprob: true,
                                n_top: n,
                                mode: LogprobsMode::Sampled,
                            };
                            // From the list first: the row's report selects into `w.cur`.
                            let got = report(&view, cfg, d, &want, &mut w).unwrap();
                            let by_row = RowDraw {
                                in_list: false,
                                ..d
                            };
                            let exp = report(&view, cfg, by_row, &want, &mut w).unwrap();
                            let case = format!("v {v} grid {grid} T {t} p {p} mp {mp} k {k} n {n}");
                            assert_eq!(got.rank, exp.rank, "{case}");
                            let bits = |r: &RowResult| {
                                r.top
                                    .iter()
                                    .map(|&(j, lp)| (j, lp.to_bits()))
                                    .collect::<Vec<_>>()
                            };
                            assert_eq!(bits(&got), bits(&exp), "{case}");
                            assert_eq!(got.logprob.to_bits(), exp.logprob.to_bits(), "{case}");
                        }
                    }
                }
            }
        }
        assert!(listed > 100, "listed draws: {listed}");
    }
}
