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

use super::super::params::RowCfg;
use super::super::rng::RowRng;
use super::{chunk_sums, exp_weights_chunked, masked_lane_sum, min_p_threshold, walk, Work, CHUNK};
use crate::element::Real;
use crate::error::Result;

/// Rejections before the caller falls back to the exact cut (reached only for small `p`
/// on flat rows, where the weight outside the nucleus is many times its own).
const ROUNDS: usize = 6;

/// Whether `i` comes before `j` in the order (logit descending, position ascending), `xj`
/// being `j`'s logit.
#[inline(always)]
fn before<C: Real>(x: &[C], i: usize, j: usize, xj: f64) -> bool {
    let xi = x[i].to_f64();
    xi > xj || (xi == xj && i < j)
}

/// Chunk sums of the weights of the tokens before `j` in the order; returns their total.
fn sums_before<C: Real>(
    x: &[C],
    ws: &[C],
    j: usize,
    chunks: &mut Vec<f64>,
    par: bool,
) -> Result<f64> {
    let v = x[j].to_f64();
    chunk_sums(x, ws, chunks, par, |c, wc, xc| {
        let start = c * CHUNK;
        if start + wc.len() <= j {
            masked_lane_sum(wc, xc, v, true)
        } else if start > j {
            masked_lane_sum(wc, xc, v, false)
        } else {
            // The chunk holding `j`: ties before it count, `j` and the ties after it do not.
            let k = j - start;
            masked_lane_sum(&wc[..k], &xc[..k], v, true)
                + masked_lane_sum(&wc[k..], &xc[k..], v, false)
        }
    })
}

/// Draws a token of a validated row `x` (maximum `m`) under `cfg`'s top-p, and its min-p
/// when set (`cfg` has no top-k and `0 < p < 1`, `T > 0`), with the uniforms of `rng`.
/// Leaves the row's weights in `w.row_ws` and returns their total with the token: `None`
/// after [`ROUNDS`] rejections (or when the row changed meanwhile).
pub(in crate::sampling) fn draw_nucleus<C: Real>(
    x: &[C],
    m: C,
    cfg: RowCfg,
    rng: &mut RowRng,
    w: &mut Work<C>,
) -> Result<(Option<usize>, f64)> {
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
) -> Result<(Option<usize>, f64)> {
    let total = exp_weights_chunked(x, m, cfg.t, ws, chunks, par)?;
    let thr = (cfg.mp > 0.0).then(|| min_p_threshold(m.to_f64(), cfg.t, cfg.mp));
    // The current prefix `R`: the row or min-p's tokens, then the tokens before `pivot`.
    let mut set_total = match thr {
        None => total,
        Some(thr) => chunk_sums(x, ws, chunks, par, |_, wc, xc| {
            masked_lane_sum(wc, xc, thr, true)
        })?,
    };
    let mut pivot: Option<(usize, f64)> = None;
    let mut found = None;
    for _ in 0..ROUNDS {
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
        let above = sums_before(x, ws, j, chunks, par)?;
        if above / total < cfg.p {
            found = Some(j);
            break;
        }
        pivot = Some((j, x[j].to_f64()));
        set_total = above;
    }
    Ok((found, total))
}
