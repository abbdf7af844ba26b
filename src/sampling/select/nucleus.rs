//! The top-p draw without the cut: rejection from a shrinking prefix of the order.
//!
//! A token `j` is in the nucleus exactly when the weight of the tokens before it in the order
//! (logit descending, position ascending), `A(j)`, is below `p` times the total: the prefix
//! that stops at `j` has not reached `p` yet. So a token drawn from any prefix `R` of the
//! order that contains the nucleus `K` can be tested with one masked sum, and
//!
//! - if `j` is in `K`, it is the draw: conditioned on landing in `K`, a draw from `R` is a
//!   draw from `K`;
//! - if not, `K` is contained in the prefix before `j`, which becomes `R`: a smaller prefix,
//!   still holding `K`.
//!
//! The masked sum of `A(j)` is taken per chunk of [`CHUNK`] tokens, and those chunk sums are
//! the next round's draw table, so a round is one vectorised pass over the weights and the
//! logits. The first round draws from the whole row (or, with min-p, from the tokens min-p
//! keeps, a prefix holding the kept set), whose chunk sums come with the weights. A draw lands
//! in `K` with probability `mass(K) / mass(R) >= p` in the first round, and each rejection
//! removes on average half of the weight of `R` outside `K`, so one or two passes suffice for
//! the usual `p` (this is the pivot scheme of FlashInfer's sorting-free top-p sampling). After
//! [`ROUNDS`] rejections the caller finds the cut instead; either way the token's law is the
//! nucleus distribution.
//!
//! Epsilon's cutoff (P22), when it is the only stage after top-p, is tested the same way: it
//! keeps the tokens of the nucleus `K` whose weight is at least `e W(K)` (a prefix of `K`),
//! and `W(K)` lies between the weight `p` of the row (min-p's tokens' weight when lower)
//! and that of `R`. A token below `e` times the lower bound is rejected without a pass, and
//! the next draw is from the same `R`; one above `e` times the upper bound is then tested for
//! `K`. The rare token between the two (about `1 - p` of the log-weight range at the
//! threshold) is left to the caller, which decides it on the kept set itself. Eta's cutoff
//! alone is tested so too, its threshold bounded from the entropy of `R`'s distribution (see
//! [`eta_bounds`]). XTC (P23) alone, its coin having said yes, is drawn this way when at most
//! one token can reach its threshold in a set weighing that lower bound (it then removes
//! nothing); otherwise it is left to the caller.

use super::super::params::RowCfg;
use super::super::rng::RowRng;
use super::cutoff::{eta_bounds, verdict, Verdict, MARGIN};
use super::{
    chunk_sums, exp_weights_chunked, masked_lane_sum, min_p_threshold, sum_over_blocks, walk, Work,
    CHUNK,
};
use crate::element::{Float, Real};
use crate::error::Result;
use crate::sampling::hot::masked_gap_dot;

/// Rejections before the caller falls back to the exact cut (reached only for small `p`
/// on flat rows, where the weight outside the nucleus is many times its own).
const ROUNDS: usize = 6;

/// Draws, passes or not, before the caller falls back to the exact kept set: epsilon's
/// rejections need no pass, but a row whose epsilon keeps little of its weight would reject
/// most draws.
const DRAWS: usize = 24;

/// What [`draw_nucleus`] found.
pub(in crate::sampling) struct NucleusDraw {
    /// The token; `None` after [`ROUNDS`] rejections, when the row changed meanwhile, or when
    /// epsilon's or eta's bounds left a token `undecided`.
    pub tok: Option<usize>,
    /// A drawn token whose fate under epsilon or eta only the kept set decides: the draw when the
    /// set keeps it, else the set is drawn from anew.
    pub undecided: Option<usize>,
    /// The total of the row's weights, left in `w.row_ws`.
    pub total: f64,
}

/// Whether `i` comes before `j` in the order (logit descending, position ascending), `xj`
/// being `j`'s logit.
#[inline(always)]
fn before<X: Float>(x: &[X], i: usize, j: usize, xj: f64) -> bool {
    let xi = x[i].to_f64();
    xi > xj || (xi == xj && i < j)
}

/// `masked(ws, xs, v, incl)`: Σ of the weights `ws` of the tokens whose logit in `xs` is
/// `> v` (`>= v` with `incl`), as [`masked_lane_sum`] adds them: that function for logits of
/// the compute type, [`masked_lane_sum_half`](crate::sampling::hot::masked_lane_sum_half)
/// for 16-bit logits read as they are.
pub(in crate::sampling) type MaskedSum<C, X> = fn(&[C], &[X], f64, bool) -> f64;

/// Chunk sums of the weights of the tokens before `j` in the order; returns their total.
fn sums_before<C: Real, X: Float>(
    x: &[X],
    ws: &[C],
    j: usize,
    chunks: &mut Vec<f64>,
    par: bool,
    masked: MaskedSum<C, X>,
) -> Result<f64> {
    let v = x[j].to_f64();
    chunk_sums(x, ws, chunks, par, |c, wc, xc| {
        let start = c * CHUNK;
        if start + wc.len() <= j {
            masked(wc, xc, v, true)
        } else if start > j {
            masked(wc, xc, v, false)
        } else {
            // The chunk holding `j`: ties before it count, `j` and the ties after it do not.
            let k = j - start;
            masked(&wc[..k], &xc[..k], v, true) + masked(&wc[k..], &xc[k..], v, false)
        }
    })
}

/// Draws a token of a validated row `x` (maximum `m`) under `cfg`'s top-p, its min-p when
/// set, and epsilon, eta or XTC when one of them is the only stage (`cfg` has no top-k,
/// `0 < p < 1`, `T > 0`), with the uniforms of `rng`. Leaves the row's weights in
/// `w.row_ws`.
pub(in crate::sampling) fn draw_nucleus<C: Real>(
    x: &[C],
    m: C,
    cfg: RowCfg,
    rng: &mut RowRng,
    w: &mut Work<C>,
) -> Result<NucleusDraw> {
    let mut ws = std::mem::take(&mut w.row_ws);
    let mut chunks = std::mem::take(&mut w.chunks);
    let found = draw(x, m, cfg, rng, &mut ws, &mut chunks, w.par);
    w.row_ws = ws;
    w.chunks = chunks;
    found
}

/// [`draw_nucleus`] with the weights and chunk sums in `ws` and `chunks`.
fn draw<C: Real>(
    x: &[C],
    m: C,
    cfg: RowCfg,
    rng: &mut RowRng,
    ws: &mut Vec<C>,
    chunks: &mut Vec<f64>,
    par: bool,
) -> Result<NucleusDraw> {
    let total = exp_weights_chunked(x, m, cfg.t, ws, chunks, par)?;
    let start = Start::first(
        x,
        ws,
        chunks,
        m.to_f64(),
        &cfg,
        total,
        par,
        masked_lane_sum::<C>,
    )?;
    let Start {
        set_total,
        least_kept,
        thr,
        ..
    } = start;
    // XTC on (its coin said yes) may remove nothing, found from the weight the kept set has at
    // least; else the kept set decides, and nothing is drawn here.
    if cfg.xtc_q > 0.0
        && !super::xtc::removes_none(x, m.to_f64(), cfg.t, cfg.xtc_t, least_kept, par)
    {
        return Ok(NucleusDraw {
            tok: None,
            undecided: None,
            total,
        });
    }
    // Eta's threshold bounded from the entropy of `R`'s distribution (one more pass).
    let eta = if cfg.eta > 0.0 {
        let lowest = thr.unwrap_or(f64::MIN);
        let mf = m.to_f64();
        let dot = sum_over_blocks(x.len(), par, |r| {
            masked_gap_dot(&ws[r.clone()], &x[r], lowest, mf)
        }) / cfg.t;
        let h_r = set_total.ln() - dot / set_total;
        let a_lo = least_kept / set_total * (1.0 - MARGIN);
        // The nucleus stops at the first token that reaches `p`, of weight at most 1.
        let a_hi = ((cfg.p * total + 1.0) * (1.0 + MARGIN) / set_total).min(1.0);
        Some(eta_bounds(cfg.eta, h_r, a_lo, a_hi, x.len()))
    } else {
        None
    };
    let start = Start {
        // The stage's threshold, at its lowest and highest.
        bounds: eta.or((cfg.epsilon > 0.0).then_some((cfg.epsilon, cfg.epsilon))),
        ..start
    };
    rounds(x, ws, chunks, cfg.p, start, rng, par, masked_lane_sum::<C>)
}

/// Where [`rounds`] starts: the row's weights' `total`, the weight `set_total` of the first
/// prefix `R` (the row, or min-p's tokens, those `>= thr`), the weight the nucleus has at
/// least, and the bounds of epsilon's or eta's threshold when one is on.
pub(in crate::sampling) struct Start {
    pub total: f64,
    pub set_total: f64,
    pub least_kept: f64,
    pub thr: Option<f64>,
    pub bounds: Option<(f64, f64)>,
}

impl Start {
    /// The start of a row (maximum `m`) under `cfg`'s top-p and min-p, its weights `ws`
    /// summing to `total`: `R` is the row, or min-p's tokens (then their chunk sums are left
    /// in `chunks`); no stage's bounds.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::sampling) fn first<C: Real, X: Float>(
        x: &[X],
        ws: &[C],
        chunks: &mut Vec<f64>,
        m: f64,
        cfg: &RowCfg,
        total: f64,
        par: bool,
        masked: MaskedSum<C, X>,
    ) -> Result<Start> {
        let thr = (cfg.mp > 0.0).then(|| min_p_threshold(m, cfg.t, cfg.mp));
        let set_total = match thr {
            None => total,
            Some(thr) => chunk_sums(x, ws, chunks, par, |_, wc, xc| masked(wc, xc, thr, true))?,
        };
        Ok(Start {
            total,
            set_total,
            // The nucleus holds `p` of the row; min-p's tokens are a prefix too, and `K` the
            // shorter.
            least_kept: (cfg.p * total).min(set_total),
            thr,
            bounds: None,
        })
    }
}

/// The rejection rounds of top-p `top_p` over the row's logits `x` and weights `ws` (their
/// chunk sums in `chunks`), from `start`; `masked` adds the masked weights of a chunk.
#[allow(clippy::too_many_arguments)]
pub(in crate::sampling) fn rounds<C: Real, X: Float>(
    x: &[X],
    ws: &[C],
    chunks: &mut Vec<f64>,
    top_p: f64,
    start: Start,
    rng: &mut RowRng,
    par: bool,
    masked: MaskedSum<C, X>,
) -> Result<NucleusDraw> {
    let Start {
        total,
        mut set_total,
        least_kept,
        thr,
        bounds,
    } = start;
    let mut found = NucleusDraw {
        tok: None,
        undecided: None,
        total,
    };
    let mut pivot: Option<(usize, f64)> = None;
    let mut passes = 0;
    for _ in 0..DRAWS {
        if passes == ROUNDS {
            break;
        }
        let u = rng.uniform();
        let j = match pivot {
            None => walk(ws, chunks, set_total, u, |i| {
                thr.is_none_or(|t| x[i].to_f64() >= t)
            }),
            Some((p, xp)) => walk(ws, chunks, set_total, u, |i| before(x, i, p, xp)),
        };
        // No token: the row changed under another thread's writes (contract R3); the caller's
        // exact path then gives a token or says so.
        let Some(j) = j else { break };
        if let Some((lo, hi)) = bounds {
            match verdict(ws[j].to_f64(), lo * least_kept, hi * set_total) {
                Verdict::Kept => {}
                // Not kept: neither is any token after it, but the same `R` is drawn from
                // again rather than shrunk, which would take a pass.
                Verdict::Removed => continue,
                Verdict::Undecided => {
                    found.undecided = Some(j);
                    break;
                }
            }
        }
        passes += 1;
        let above = sums_before(x, ws, j, chunks, par, masked)?;
        if above / total < top_p {
            found.tok = Some(j);
            break;
        }
        pivot = Some((j, x[j].to_f64()));
        set_total = above;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::rng::Streams;
    use crate::{filter_logits_rows, sample_rows, SamplingParams, Seed};

    /// Draws `seeds` tokens of row `x` under `params` (top-p with a stage the rejection draw
    /// takes on) and checks each against the kept set of `filter_logits` (the exact path), with
    /// and without the log-probability; returns how the draw itself ended, on the same streams:
    /// [decided, undecided, left to the kept set].
    fn check<C: crate::Float + Real>(
        x: &[C],
        params: &SamplingParams,
        seeds: u64,
        ctx: &str,
    ) -> [usize; 3] {
        let v = x.len();
        let mut out = vec![C::default(); v];
        filter_logits_rows(x, v, params, &mut out).unwrap();
        let kept: Vec<bool> = out.iter().map(|e| e.to_f64() > f64::NEG_INFINITY).collect();
        let mut tally = [0; 3];
        let m = x
            .iter()
            .copied()
            .fold(C::NEG_INFINITY, |a, b| if b > a { b } else { a });
        for s in 0..seeds {
            let (mut tok, mut tok_lp, mut lp) = ([0i64], [0i64], [0.0f64]);
            sample_rows(x, v, params, &Seed::Fixed(s), &mut tok, None).unwrap();
            sample_rows(x, v, params, &Seed::Fixed(s), &mut tok_lp, Some(&mut lp)).unwrap();
            assert!(kept[tok[0] as usize], "{ctx} seed {s}: {} not kept", tok[0]);
            assert_eq!(tok, tok_lp, "{ctx} seed {s}");
            // The draw's own verdicts, on the same stream.
            let cfg = params.row(0, v);
            let mut rng = Streams::for_sample(&Seed::Fixed(s)).row(0);
            let mut w = Work::<C>::default();
            let d = draw_nucleus(x, m, cfg, &mut rng, &mut w).unwrap();
            match (d.tok, d.undecided) {
                (Some(j), None) => {
                    assert!(kept[j], "{ctx} seed {s}");
                    tally[0] += 1;
                }
                (None, Some(_)) => tally[1] += 1,
                _ => tally[2] += 1,
            }
        }
        tally
    }

    /// P22 by rejection: with top-p (and min-p) and epsilon or eta alone, every token drawn is in the
    /// kept set that `filter_logits` computes on the exact path, with and without the
    /// log-probability (which takes the exact path for its normaliser). Rows from a handful of
    /// tokens to a vocabulary, flat to peaked, ties on a grid, `-inf`, `f32` and `f64`; one
    /// row built so that a token sits between epsilon's bounds (undecided) and another below
    /// them (removed without a pass), both seen in the draw's own verdicts.
    #[test]
    fn p22_epsilon_and_eta_by_rejection_draw_from_the_kept_set() {
        // Probabilities 0.3 .. 0.03: top-p 0.9 keeps six tokens (0.93). Epsilon 0.052 keeps
        // the 0.05 one (0.05 / 0.93 >= 0.052) and 0.0545 does not, though the bounds cannot
        // tell (0.9 e < 0.05 < e); both remove the 0.04 one outright.
        let probs = [0.3, 0.25, 0.15, 0.1, 0.08, 0.05, 0.04, 0.03f64];
        let x: Vec<f64> = probs.iter().map(|q| q.ln()).collect();
        for eps in [0.052, 0.0545] {
            let params = SamplingParams::default().top_p(0.9).epsilon_cutoff(eps);
            let tally = check(&x, &params, 400, "built");
            assert!(
                tally[0] > 100 && tally[1] > 5,
                "built, eps {eps}: {tally:?}"
            );
        }
        let x32: Vec<f32> = x.iter().map(|&e| e as f32).collect();
        let params = SamplingParams::default()
            .top_p(0.9)
            .min_p(0.05)
            .epsilon_cutoff(0.052);
        check(&x32, &params, 200, "built f32 min-p");
        // Eta: the six tokens' entropy puts its threshold at 0.0531 for eta 0.072 (the 0.05
        // token, 0.0538 of the six, kept) and at 0.0544 for 0.0755 (removed).
        for eta in [0.072, 0.0755] {
            let params = SamplingParams::default().top_p(0.9).eta_cutoff(eta);
            let tally = check(&x, &params, 400, "built eta");
            assert!(tally[0] > 50 && tally[1] > 5, "built, eta {eta}: {tally:?}");
        }
        let mut u = crate::sampling::test_units::units(0x1234_5678_9ABC_DEF1);
        for case in 0..16 {
            let v = [12, 5000, 70000, 128_256][case % 4];
            let sd = [0.5, 3.0, 1.0, 8.0][case / 4];
            let grid = if case % 3 == 1 { 0.25 } else { 0.0 };
            let x: Vec<f32> = (0..v)
                .map(|j| {
                    if j % 97 == 5 {
                        return f32::NEG_INFINITY;
                    }
                    let z = ((0..12).map(|_| u()).sum::<f64>() - 6.0) * sd;
                    (if grid > 0.0 {
                        (z / grid).round() * grid
                    } else {
                        z
                    }) as f32
                })
                .collect();
            // Under valgrind or qemu, not the longest rows: the rows of 70000 take the same
            // long-row paths.
            if v == 128_256 && crate::emulated() {
                continue;
            }
            for (t, p, mp, eps) in [
                (0.8, 0.95, 0.0, 3e-4),
                (1.0, 0.9, 0.0, 0.02),
                (0.7, 0.99, 0.01, 1e-3),
                (1.2, 0.5, 0.0, 0.3),
            ] {
                let ctx = format!("case {case} v {v} sd {sd} t {t} p {p} min-p {mp} eps {eps}");
                let params = SamplingParams::default()
                    .temperature(t)
                    .top_p(p)
                    .min_p(mp)
                    .epsilon_cutoff(eps);
                check(&x, &params, 6, &ctx);
                let eta = params.clone().epsilon_cutoff(0.0).eta_cutoff(eps);
                check(&x, &eta, 6, &format!("{ctx} (eta)"));
                if case % 4 == 1 {
                    let x64: Vec<f64> = x.iter().map(|&e| f64::from(e)).collect();
                    check(&x64, &params, 4, &ctx);
                    check(&x64, &eta, 4, &format!("{ctx} (eta)"));
                }
            }
        }
    }

    /// P23 with top-p: a row where at most one token can reach XTC's threshold (in weight, `t`
    /// times `p` of the row's) is drawn by top-p's rejection, coin or not; one where two can is
    /// left to the kept set. Every token is in `filter_logits`' kept set.
    #[test]
    fn p23_xtc_that_no_token_can_reach_is_drawn_by_rejection() {
        let mut u = crate::sampling::test_units::units(0x0DDB_1A5E_5BAD_5EED);
        let (mut decided, mut left, mut by_count) = (0, 0, 0);
        for case in 0..8 {
            let v = [12, 70000][case % 2];
            let sd = [0.5, 3.0, 1.0, 8.0][case / 2];
            let x: Vec<f32> = (0..v)
                .map(|_| (((0..12).map(|_| u()).sum::<f64>() - 6.0) * sd) as f32)
                .collect();
            let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let total: f64 = x.iter().map(|&e| ((e - m) as f64 / 0.9).exp()).sum();
            for t in [0.05, 0.2, 0.45] {
                for q in [1.0, 0.5] {
                    let params = SamplingParams::default()
                        .temperature(0.9)
                        .top_p(0.9)
                        .xtc_threshold(t)
                        .xtc_probability(q);
                    let ctx = format!("case {case} v {v} sd {sd} xtc {t} {q}");
                    let tally = check(&x, &params, 12, &ctx);
                    // The draw's verdicts (its own stream has no coin: the row as if it said
                    // yes).
                    let reach = |f: f64| {
                        let bar = f * t * 0.9 * total;
                        x.iter()
                            .filter(|&&e| ((e - m) as f64 / 0.9).exp() >= bar)
                            .count()
                    };
                    if reach(0.99) <= 1 {
                        assert_eq!(tally[2], 0, "{ctx}: {tally:?}");
                        decided += 1;
                        by_count += usize::from(t * 0.9 * total < 0.99);
                    } else if reach(1.01) >= 2 {
                        assert_eq!(tally[2], 12, "{ctx}: {tally:?}");
                        left += 1;
                    }
                }
            }
        }
        // Both kinds of rows, some decided by the count of those that could reach.
        assert!(
            decided > 8 && left > 2 && by_count > 0,
            "{decided} {left} {by_count}"
        );
    }
}
