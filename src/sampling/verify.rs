//! Speculative decoding: [`verify_draft`] (contract V1-V4), chain rejection sampling of a
//! draft model's tokens against the target model's distributions.
//!
//! Per sequence `b`, with `p_i` the target's distribution at position `i` after P3 (the kept
//! set and weights of [`select`](super::select), exactly what `sample` draws from) and `q_i`
//! the draft's:
//!
//! 1. Position `i = 0..K-1`: the draft token `x` is accepted when `u_i * q_i(x) < p_i(x)`, so
//!    with probability `min(1, p_i(x) / q_i(x))`. At temperature 0 the rule is greedy: `x` is
//!    accepted when it is the target's argmax (P3's ties), whatever `q`.
//! 2. At the first rejection, one token is drawn from `max(p_i - q_i, 0)`, renormalised (from
//!    `p_i` should that be all 0), and the sequence stops. A draft without probabilities is a
//!    point mass: the residual is then `p_i` without `x`.
//! 3. When all `K` are accepted, a bonus token is drawn from `p_K`.
//!
//! **Uniforms.** Sequence `b` takes `K + 1` uniforms from its own stream, in stream order:
//! `u_0 .. u_{K-1}` decide the drafts at positions `0 .. K-1` (a uniform whose position is not
//! reached is drawn and unused), and `u_K` draws the emitted token (residual or bonus) by the
//! inverse CDF in token order. The stream is keyed as `sample`'s (P5: by `(seed, b)`, or by
//! `seed[b]` alone with per-sequence seeds) but with the tag `"logitkit/verify"`, so a draft
//! drawn by `sample` with the same seed is not verified with the very uniforms that drew it.
//! [`verify_draft_uniforms`] gives them.
//!
//! **Work.** Every position of every sequence is read and checked (P8; draft probabilities
//! V4) so that whether a call fails does not depend on the draws. Positions after a
//! sequence's stop get only that check. A position's decision needs `p_i(x_i)`: without
//! filters, the softmax at `x_i` from one pass over the row (as `token_logprobs`); with
//! filters, from `select`'s kept set and weights. The position where a token is drawn gets
//! `select`'s kept set with weights (the bonus from `p_K`, the residual from `p_i` and `q_i`).
//! Sequences run in parallel as `sample`'s rows do (a long row's passes split across the
//! threads when there are fewer sequences than threads); nothing depends on the thread count.

use super::history::Source;
use super::logprobs::score;
use super::params::SamplingParams;
use super::process::Chain;
use super::rng::Streams;
use super::select::{first_bad_prob, wants_chunk_maxima, Draft, KeptDist, Work};
use super::{
    as_compute, check_seed, for_rows, plan, rows_of, with_row, Histories, Plan, Rows, Seed,
};
use crate::element::Float;
use crate::error::{Error, Result};
use crate::parallel::{is_parallel, ranges_mapped};
use crate::softmax::check_len;

/// What [`verify_draft`] returns (contract V1).
///
/// ```
/// use logitkit::{verify_draft, SamplingParams, Seed, Verified};
/// // One sequence, K = 1, V = 2: the target prefers token 1 at both positions, and the
/// // (greedy) draft guessed 1.
/// let target = [0.0f32, 5.0, 0.0, 5.0];
/// let greedy = SamplingParams::greedy();
/// let v: Verified =
///     verify_draft(&target, &[1], None::<&[f32]>, 2, 1, &greedy, &Seed::Fixed(0)).unwrap();
/// assert_eq!(v.tokens, [1, 1]); // the accepted draft, then the bonus token
/// assert_eq!(v.num_tokens, [2]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// `B * (K + 1)` token ids, sequence after sequence: each sequence's emitted tokens (its
    /// accepted drafts, then the residual's or the bonus token), then `-1`.
    pub tokens: Vec<i64>,
    /// How many tokens each sequence emitted, from 1 to `K + 1`.
    pub num_tokens: Vec<i64>,
}

/// Verifies a batch of drafts against the target model's logits (contract V1-V4): chain
/// rejection sampling (Leviathan et al. 2023, Chen et al. 2023), the residual distribution at
/// the first rejection, a bonus token when every draft is accepted; the greedy rule at
/// temperature 0.
///
/// - `target_logits`: `B * (K + 1)` rows of `vocab` logits, sequence after sequence: the
///   target's logits at the `K` draft positions and one past them.
/// - `draft_tokens`: `B * K` token ids.
/// - `draft_probs`: `B * K` rows of `vocab` probabilities the drafts were drawn from, used as
///   given (not renormalised); `None` for drafts made without a distribution (n-gram, greedy
///   drafting), each then a point mass on its token.
/// - `params`: temperature, top-k, top-p and min-p as for [`sample_batch`](crate::sample_batch),
///   one value for every sequence or one per sequence (`B` values). The target's distribution
///   at each position is what `sample` would draw from (P3).
/// - `seed`: as for `sample` with one row per sequence (per-sequence seeds make a sequence's
///   result independent of its batch). Sequence `b` takes `K + 1` uniforms from its own
///   stream (keyed like `sample`'s, with the tag `"logitkit/verify"`): `u_i` decides the
///   draft at position `i` (accepted when `u_i * q_i(x) < p_i(x)`), `u_K` draws the emitted
///   token by the inverse CDF in token order; [`verify_draft_uniforms`] returns them.
///
/// # Errors
/// [`Error::InvalidParameter`] for `vocab == 0`, a row count that is not a multiple of
/// `k + 1`, a bad parameter, or parameters that ask for processing other than temperature,
/// top-k, top-p and min-p (masks, bias, penalties, DRY, the samplers of P20-P26); [`Error::LengthMismatch`] for
/// `draft_tokens`, `draft_probs`, a per-sequence parameter or seeds of the wrong length;
/// [`Error::InvalidSequence`] naming the argument and the sequence for a draft token outside
/// `[0, vocab)`, a draft probability that is negative or not finite, a draft token whose
/// probability is 0, and a target row holding NaN or `+inf` or no finite logit. Every
/// position is checked, and nothing is drawn when an error is returned.
///
/// ```
/// use logitkit::{verify_draft, SamplingParams, Seed};
/// let v = 4; // vocabulary
/// // One sequence, two draft tokens: the target's logits at 3 positions.
/// let target = [
///     0.0f32, 5.0, 0.0, 0.0, // position 0: token 1 is likely
///     0.0, 0.0, 0.0, 5.0, // position 1: token 3 is likely
///     5.0, 0.0, 0.0, 0.0, // the bonus position: token 0
/// ];
/// let greedy = SamplingParams::greedy();
/// // The draft guessed 1 then 2: 1 is accepted, 2 is not, the target's choice 3 is emitted.
/// let r = verify_draft(&target, &[1, 2], None::<&[f32]>, v, 2, &greedy, &Seed::Fixed(0))
///     .unwrap();
/// assert_eq!(r.tokens, [1, 3, -1]);
/// assert_eq!(r.num_tokens, [2]);
///
/// // Sampling at T = 1, the draft's own distributions given: a draft equal to the target
/// // is always accepted, and the bonus token follows.
/// let soft = SamplingParams::default();
/// let mut q = Vec::new();
/// for row in target[..8].chunks(4) {
///     let mut p = [0.0f32; 4];
///     logitkit::softmax(row, &mut p, 1.0).unwrap();
///     q.extend_from_slice(&p);
/// }
/// let r = verify_draft(&target, &[1, 3], Some(&q[..]), v, 2, &soft, &Seed::Fixed(7)).unwrap();
/// assert_eq!(r.num_tokens, [3]);
/// assert_eq!(&r.tokens[..2], [1, 3]);
/// ```
pub fn verify_draft<T: Float, Q: Float>(
    target_logits: &[T],
    draft_tokens: &[i64],
    draft_probs: Option<&[Q]>,
    vocab: usize,
    k: usize,
    params: &SamplingParams,
    seed: &Seed,
) -> Result<Verified> {
    let rows = rows_of(target_logits.len(), vocab)?;
    let k1 = k
        .checked_add(1)
        .ok_or_else(|| Error::invalid("k", k, "below usize::MAX"))?;
    if !rows.is_multiple_of(k1) {
        return Err(Error::invalid(
            "target_logits",
            format!("{rows} rows of {vocab} logits with k = {k}"),
            "B * (k + 1) rows: the k draft positions and one past them per sequence",
        ));
    }
    let batch = rows / k1;
    let target = Grid::contiguous(target_logits, batch, k1, vocab);
    let probs = match draft_probs {
        Some(q) => {
            check_len("draft_probs", q.len(), batch * k * vocab)?;
            Some(Grid::contiguous(q, batch, k, vocab))
        }
        None => None,
    };
    verify_draft_of(target, draft_tokens, probs, params, seed)
}

/// Rows of `vocab` contiguous elements in a `(B, P)` grid, read where they are: row `(b, i)`
/// is `data[b * seq_stride + i * pos_stride..][..vocab]`. The last positions of a longer
/// sequence of logits (`logits[:, -(K + 1):, :]`) are such a grid, read without a copy (P18).
#[derive(Clone, Copy)]
pub(crate) struct Grid<'a, T> {
    data: &'a [T],
    seqs: usize,
    positions: usize,
    vocab: usize,
    seq_stride: usize,
    pos_stride: usize,
}

impl<'a, T> Grid<'a, T> {
    /// The grid of a row-major `(seqs, positions, vocab)` array (`data` of that length).
    fn contiguous(data: &'a [T], seqs: usize, positions: usize, vocab: usize) -> Self {
        Grid {
            data,
            seqs,
            positions,
            vocab,
            seq_stride: positions * vocab,
            pos_stride: vocab,
        }
    }

    /// The grid of `seqs x positions` rows of `vocab >= 1` elements at the given strides (in
    /// elements); `data` must hold the last row.
    #[cfg_attr(not(feature = "python"), allow(dead_code))]
    pub(crate) fn strided(
        name: &'static str,
        data: &'a [T],
        [seqs, positions, vocab]: [usize; 3],
        [seq_stride, pos_stride]: [usize; 2],
    ) -> Result<Self> {
        rows_of(vocab, vocab)?;
        let span = if seqs == 0 || positions == 0 {
            Some(0)
        } else {
            (seqs - 1)
                .checked_mul(seq_stride)
                .and_then(|a| (positions - 1).checked_mul(pos_stride)?.checked_add(a))
                .and_then(|a| a.checked_add(vocab))
        };
        let span = span.unwrap_or(usize::MAX);
        if data.len() < span {
            return Err(Error::LengthMismatch {
                name,
                got: data.len(),
                expected: span,
            });
        }
        Ok(Grid {
            data,
            seqs,
            positions,
            vocab,
            seq_stride,
            pos_stride,
        })
    }

    /// Sequence `b < seqs`'s rows.
    fn seq(&self, b: usize) -> Rows<'a, T> {
        Rows {
            data: self.data.get(b * self.seq_stride..).unwrap_or(&[]),
            count: self.positions,
            vocab: self.vocab,
            stride: self.pos_stride,
            scattered: None,
        }
    }
}

/// [`verify_draft`] over grids read where they are: `target` of `B x (K + 1)` rows,
/// `draft_probs` of `B x K` rows of the same vocabulary.
pub(crate) fn verify_draft_of<T: Float, Q: Float>(
    target: Grid<'_, T>,
    draft_tokens: &[i64],
    draft_probs: Option<Grid<'_, Q>>,
    params: &SamplingParams,
    seed: &Seed,
) -> Result<Verified> {
    let (batch, k1, vocab) = (target.seqs, target.positions, target.vocab);
    let k = k1
        .checked_sub(1)
        .ok_or_else(|| Error::invalid("target_logits", "0 positions", "K + 1 >= 1 positions"))?;
    check_len("draft_tokens", draft_tokens.len(), batch * k)?;
    if let Some(q) = &draft_probs {
        let shape = |g: &Grid<'_, Q>| [g.seqs, g.positions, g.vocab];
        if shape(q) != [batch, k, vocab] {
            return Err(Error::invalid(
                "draft_probs",
                format!("{:?} rows", shape(q)),
                "B x K rows of the target's vocabulary",
            ));
        }
    }
    params.validate(batch)?;
    let chain = Chain::<T::Compute>::build(params, vocab)?;
    if !chain.is_empty() {
        return Err(Error::invalid(
            "params",
            "masks, logit_bias, penalties or DRY",
            "temperature, top_k, top_p and min_p only (verify_draft applies no other processing)",
        ));
    }
    // V2 is P3's distribution: the later samplers (P20-P26) are refused, not ignored.
    if (0..batch).any(|b| {
        let cfg = params.row(b, vocab);
        cfg.has_kept_stages() || cfg.dyn_range > 0.0
    }) {
        return Err(Error::invalid(
            "params",
            "typical_p, top_n_sigma, epsilon/eta cutoffs, XTC or dynamic temperature",
            "temperature, top_k, top_p and min_p only (verify_draft applies no other processing)",
        ));
    }
    check_seed(seed, batch)?;
    if let Some((i, &id)) = draft_tokens
        .iter()
        .enumerate()
        .find(|(_, &id)| id < 0 || id as u64 >= vocab as u64)
    {
        return Err(Error::InvalidSequence {
            name: "draft_tokens",
            row: i / k,
            problem: format!(
                "has token id {id} at position {}, outside [0, {vocab})",
                i % k
            ),
        });
    }
    let streams = Streams::for_verify(seed);
    let source = Source::Call(Histories::new());
    let per_seq = k1 * vocab;
    let ctx = Ctx {
        k,
        vocab,
        params,
        chain: &chain,
        source: &source,
    };
    let seq = |b: usize| Seq {
        b,
        logits: target.seq(b),
        drafts: &draft_tokens[b * k..(b + 1) * k],
        probs: draft_probs.map(|q| q.seq(b)),
    };
    let uniforms = |b: usize| {
        let mut rng = streams.row(b);
        crate::scratch::collected(k1, (0..k1).map(|_| rng.uniform()), "uniforms")
    };
    let results: Vec<Result<(Vec<i64>, i64)>> = if by_positions(batch, k1, vocab) {
        // Fewer sequences than threads: every position's p_i(x_i) first, all positions in
        // parallel; then each sequence's decisions, then its one draw.
        let ps = for_rows::<T::Compute, _>(Plan::Rows, batch * k1, vocab, |r, w| {
            seq(r / k1).accept_prob(&ctx, r % k1, w)
        })?;
        let ps = ps.into_iter().collect::<Result<Vec<f64>>>()?;
        let stops = (0..batch)
            .map(|b| {
                let u = uniforms(b)?;
                let seq = seq(b);
                let stop = (0..k)
                    .find(|&i| !seq.accepts(&ctx, i, ps[b * k1 + i], &u))
                    .unwrap_or(k);
                Ok((stop, u))
            })
            .collect::<Result<Vec<_>>>()?;
        let emitted = for_rows::<T::Compute, _>(plan(batch, vocab), batch, vocab, |b, w| {
            let (stop, u) = &stops[b];
            let seq = seq(b);
            let t = seq.emit(&ctx, *stop, u[k], w)?;
            seq.tokens(&ctx, *stop, t)
        })?;
        crate::scratch::collected(batch, emitted, "the sequences' results")?
    } else {
        let run =
            for_rows::<T::Compute, _>(verify_plan(batch, k1, vocab), batch, per_seq, |b, w| {
                seq(b).run(&ctx, &uniforms(b)?, w)
            })?;
        crate::scratch::collected(batch, run, "the sequences' results")?
    };
    let mut out = Verified::default();
    crate::scratch::reserve(&mut out.tokens, batch * k1, "the emitted tokens")?;
    crate::scratch::reserve(&mut out.num_tokens, batch, "the token counts")?;
    for r in results {
        let (toks, n) = r?;
        out.tokens.extend_from_slice(&toks);
        out.num_tokens.push(n);
    }
    Ok(out)
}

/// The uniforms a [`verify_draft`] call with `seed` (not [`Seed::Entropy`]) over `batch`
/// sequences of `k` drafts uses: `batch * (k + 1)` values in `[0, 1)`, sequence after
/// sequence; `u[b * (k + 1) + i]` decides the draft at position `i < k`, and
/// `u[b * (k + 1) + k]` draws the emitted token (see [`verify_draft`]).
/// For reproducing a call with another implementation.
///
/// # Errors
/// [`Error::InvalidParameter`] for [`Seed::Entropy`] (its uniforms are fresh at each call);
/// [`Error::LengthMismatch`] for per-sequence seeds that are not `batch`.
///
/// ```
/// use logitkit::{verify_draft_uniforms, Seed};
/// let u = verify_draft_uniforms(&Seed::Fixed(3), 2, 4).unwrap();
/// assert_eq!(u.len(), 10);
/// assert!(u.iter().all(|&x| (0.0..1.0).contains(&x)));
/// // Per-sequence seeds: a sequence's uniforms depend on its own seed alone.
/// let a = verify_draft_uniforms(&Seed::PerRow(vec![5, 9]), 2, 4).unwrap();
/// let b = verify_draft_uniforms(&Seed::PerRow(vec![9]), 1, 4).unwrap();
/// assert_eq!(a[5..], b[..]);
/// ```
pub fn verify_draft_uniforms(seed: &Seed, batch: usize, k: usize) -> Result<Vec<f64>> {
    if *seed == Seed::Entropy {
        return Err(Error::invalid(
            "seed",
            "None (fresh entropy)",
            "an integer seed or per-sequence seeds",
        ));
    }
    check_seed(seed, batch)?;
    let streams = Streams::for_verify(seed);
    let mut u = Vec::new();
    crate::scratch::reserve(
        &mut u,
        batch.saturating_mul(k.saturating_add(1)),
        "uniforms",
    )?;
    for b in 0..batch {
        let mut rng = streams.row(b);
        u.extend((0..=k).map(|_| rng.uniform()));
    }
    Ok(u)
}

/// Whether a call computes every position first (in parallel over all positions), rather
/// than sequence by sequence: when there are fewer sequences than threads, so that the
/// threads would otherwise split each position's passes (which costs a synchronisation per
/// pass), and there is enough work to share.
fn by_positions(batch: usize, k1: usize, vocab: usize) -> bool {
    let threads = crate::parallel::get_num_threads();
    batch < threads && batch * k1 >= 2 && is_parallel(batch * k1 * vocab)
}

/// How a call shares sequences among the threads: as `sample` shares rows, and by sequences
/// when the whole call is large enough though one position of each is not.
fn verify_plan(batch: usize, k1: usize, vocab: usize) -> Plan {
    match plan(batch, vocab) {
        Plan::Serial if batch >= 2 && is_parallel(batch * k1 * vocab) => Plan::Rows,
        p => p,
    }
}

/// What a position computes from its distribution.
type PositionFn<'f, C, R> = dyn Fn(KeptDist, &mut Work<C>) -> Result<R> + 'f;

/// What every sequence of a call shares.
struct Ctx<'a, C> {
    k: usize,
    vocab: usize,
    params: &'a SamplingParams,
    chain: &'a Chain<'a, C>,
    source: &'a Source<'a>,
}

/// One sequence of a call.
struct Seq<'a, T, Q> {
    b: usize,
    /// Its `K + 1` rows of target logits.
    logits: Rows<'a, T>,
    /// Its `K` draft tokens (checked to lie in `[0, vocab)`).
    drafts: &'a [i64],
    /// Its `K` rows of draft probabilities.
    probs: Option<Rows<'a, Q>>,
}

impl<T: Float, Q: Float> Seq<'_, T, Q> {
    /// Position `i`'s draft probabilities.
    fn q(&self, ctx: &Ctx<'_, T::Compute>, i: usize) -> Option<&[Q]> {
        self.probs.filter(|_| i < ctx.k).map(|q| q.row(i))
    }

    /// Runs `f` on position `i`'s distribution `p_i` (after checking the position's draft
    /// probabilities and target row); without `f`, only checks them.
    fn at<R>(
        &self,
        ctx: &Ctx<'_, T::Compute>,
        i: usize,
        w: &mut Work<T::Compute>,
        check_q: bool,
        f: Option<&PositionFn<'_, T::Compute, R>>,
    ) -> Result<Option<R>> {
        let (k, v, b) = (ctx.k, ctx.vocab, self.b);
        if let Some(q) = self.q(ctx, i).filter(|_| check_q) {
            self.check_probs(q, i, w.par)?;
        }
        let row = self.logits.row(i);
        let flat = b * (k + 1) + i;
        let at = |e: Error| match e {
            Error::InvalidRow { problem, .. } => Error::InvalidSequence {
                name: "target_logits",
                row: b,
                problem: format!("at position {i} {problem}"),
            },
            e => e,
        };
        let Some(f) = f else {
            with_row(row, flat, ctx.chain, ctx.source, false, false, w, |_, _| {
                Ok(())
            })
            .map_err(at)?;
            return Ok(None);
        };
        let cfg = ctx.params.row(b, v);
        let wants_chunks = wants_chunk_maxima(&cfg, v);
        with_row(
            row,
            flat,
            ctx.chain,
            ctx.source,
            wants_chunks,
            false,
            w,
            |view, w| {
                let dist = KeptDist::of(view.x, view.max, cfg, w)?;
                f(dist, w)
            },
        )
        .map(Some)
        .map_err(at)
    }

    /// What position `i < K`'s decision reads from `p_i`: `p_i(x_i)`, or at temperature 0, 1
    /// when the draft is the argmax and else 0.
    fn decision_prob(
        &self,
        ctx: &Ctx<'_, T::Compute>,
        i: usize,
        dist: KeptDist,
        w: &Work<T::Compute>,
    ) -> f64 {
        let x = self.drafts[i] as usize;
        if ctx.params.row(self.b, ctx.vocab).t == 0.0 {
            f64::from(u8::from(dist == KeptDist::Point(x)))
        } else {
            dist.prob(x, w)
        }
    }

    /// [`Seq::decision_prob`] of position `i` (for the bonus position, only the checks: NaN).
    fn accept_prob(
        &self,
        ctx: &Ctx<'_, T::Compute>,
        i: usize,
        w: &mut Work<T::Compute>,
    ) -> Result<f64> {
        if i == ctx.k {
            self.at::<()>(ctx, i, w, true, None)?;
            return Ok(f64::NAN);
        }
        if let Some(p) = self.softmax_prob(ctx, i, w) {
            return p;
        }
        let f = |dist: KeptDist, w: &mut Work<T::Compute>| Ok(self.decision_prob(ctx, i, dist, w));
        Ok(self.at(ctx, i, w, true, Some(&f))?.unwrap_or(f64::NAN))
    }

    /// Without filters (`T > 0`, no top-k, top-p or min-p), `p_i(x_i)` is the softmax at
    /// `x_i`: then it is computed in one pass over the row (each block's maximum and sum of
    /// exponentials while it is in cache, as `token_logprobs` does) instead of `select`'s
    /// maximum pass and weights. `None` with filters. The position's draft probabilities are
    /// checked; a bad row gives the error the other path gives.
    fn softmax_prob(
        &self,
        ctx: &Ctx<'_, T::Compute>,
        i: usize,
        w: &mut Work<T::Compute>,
    ) -> Option<Result<f64>> {
        let v = ctx.vocab;
        let cfg = ctx.params.row(self.b, v);
        if !(cfg.t > 0.0 && cfg.k >= v && cfg.p >= 1.0 && cfg.mp == 0.0 && v > 1) {
            return None;
        }
        Some((|| {
            if let Some(q) = self.q(ctx, i) {
                self.check_probs(q, i, w.par)?;
            }
            let row = self.logits.row(i);
            let mut conv = std::mem::take(&mut w.conv);
            let lp = as_compute(row, &mut conv)
                .map(|x| score(x, self.drafts[i] as usize, cfg.t, false, w.par).0);
            w.conv = conv;
            let lp = lp?;
            if lp.is_nan() {
                // NaN, +inf or no finite logit: the error as the other path words it.
                self.at::<()>(ctx, i, w, false, None)?;
                return Err(Error::InvalidSequence {
                    name: "target_logits",
                    row: self.b,
                    problem: format!("at position {i} {}", super::select::CHANGED),
                });
            }
            Ok(lp.exp())
        })())
    }

    /// Whether the draft at position `i < K` is accepted, `p` being its
    /// [`Seq::decision_prob`] and `u` the sequence's uniforms: `u_i * q_i(x_i) < p_i(x_i)`
    /// (greedy: the draft is the argmax).
    fn accepts(&self, ctx: &Ctx<'_, T::Compute>, i: usize, p: f64, u: &[f64]) -> bool {
        if ctx.params.row(self.b, ctx.vocab).t == 0.0 {
            return p == 1.0;
        }
        let x = self.drafts[i] as usize;
        let qx = self.q(ctx, i).map_or(1.0, |q| q[x].to_f64());
        u[i] * qx < p
    }

    /// The token emitted at position `stop` from its distribution `dist` with the uniform
    /// `u`: the bonus token (from `p_K`) when `stop == K`, else one from the residual of
    /// `p_stop` and the draft.
    fn draw_at(
        &self,
        ctx: &Ctx<'_, T::Compute>,
        stop: usize,
        dist: KeptDist,
        u: f64,
        w: &mut Work<T::Compute>,
    ) -> Result<usize> {
        if stop == ctx.k {
            return dist.draw(u, w);
        }
        let draft = match self.q(ctx, stop) {
            Some(q) => Draft::Probs(q),
            None => Draft::Point(self.drafts[stop] as usize),
        };
        dist.residual(draft, u, w)
    }

    /// [`Seq::draw_at`] position `stop`, its distribution computed again.
    fn emit(
        &self,
        ctx: &Ctx<'_, T::Compute>,
        stop: usize,
        u: f64,
        w: &mut Work<T::Compute>,
    ) -> Result<usize> {
        let f = |dist: KeptDist, w: &mut Work<T::Compute>| self.draw_at(ctx, stop, dist, u, w);
        // The position's draft probabilities were checked when it was decided.
        let checked = stop < ctx.k;
        Ok(self
            .at(ctx, stop, w, !checked, Some(&f))?
            .unwrap_or_default())
    }

    /// The sequence's result when it stops at `stop` emitting `t`: the accepted drafts, `t`,
    /// then -1 (`K + 1` ids), and the count.
    fn tokens(&self, ctx: &Ctx<'_, T::Compute>, stop: usize, t: usize) -> Result<(Vec<i64>, i64)> {
        let mut out = crate::scratch::filled(ctx.k + 1, -1i64, "the emitted tokens")?;
        out[..stop].copy_from_slice(&self.drafts[..stop]);
        out[stop] = t as i64;
        Ok((out, stop as i64 + 1))
    }

    /// The whole sequence on one thread (the threads may split each position's passes):
    /// positions in order, each decided as soon as its distribution is known, the token at
    /// the stop drawn from the same distribution; positions after the stop are only checked.
    fn run(
        &self,
        ctx: &Ctx<'_, T::Compute>,
        u: &[f64],
        w: &mut Work<T::Compute>,
    ) -> Result<(Vec<i64>, i64)> {
        let k = ctx.k;
        let mut emitted = None;
        for i in 0..=k {
            // A sequence of many long positions takes seconds: Ctrl-C is seen between its
            // positions (R8), not only between sequences.
            if i > 0 && crate::interrupt::poll_at(i, ctx.vocab) {
                return Err(crate::Error::Interrupted);
            }
            if i < k {
                if let Some(p) = self.softmax_prob(ctx, i, w) {
                    if self.accepts(ctx, i, p?, u) {
                        continue;
                    }
                    emitted = Some((i, self.emit(ctx, i, u[k], w)?));
                    break;
                }
            }
            let f = |dist: KeptDist, w: &mut Work<T::Compute>| -> Result<Option<usize>> {
                if i < k && self.accepts(ctx, i, self.decision_prob(ctx, i, dist, w), u) {
                    return Ok(None);
                }
                self.draw_at(ctx, i, dist, u[k], w).map(Some)
            };
            if let Some(t) = self.at(ctx, i, w, true, Some(&f))?.flatten() {
                emitted = Some((i, t));
                break;
            }
        }
        let (stop, t) = emitted.unwrap_or_default();
        for i in stop + 1..=k {
            // Checked all the same: whether a call fails does not depend on the draws.
            self.at::<()>(ctx, i, w, true, None)?;
        }
        self.tokens(ctx, stop, t)
    }

    /// Checks one position's draft probabilities (V4): finite and `>= 0`, and not 0 at the
    /// draft token.
    fn check_probs(&self, q: &[Q], i: usize, par: bool) -> Result<()> {
        let n = q.len();
        let firsts = ranges_mapped(
            n,
            crate::kernels::BLOCK,
            par && n > crate::kernels::BLOCK,
            |_, r| first_bad_prob(&q[r.clone()]).map(|j| r.start + j),
        );
        let bad = |problem: String| Error::InvalidSequence {
            name: "draft_probs",
            row: self.b,
            problem,
        };
        if let Some(j) = firsts.iter().flatten().next() {
            return Err(bad(format!(
                "holds {} for token {j} at position {i}: draft probabilities must be finite and >= 0",
                q[*j].to_f64()
            )));
        }
        let x = self.drafts[i] as usize;
        if q[x].to_f64() == 0.0 {
            return Err(bad(format!(
                "gives probability 0 to its draft token {x} at position {i} (a draft must have been drawn from its distribution)"
            )));
        }
        Ok(())
    }
}
