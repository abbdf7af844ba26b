//! XTC, "exclude top choices" (contract P23; llama.cpp, text-generation-webui): with
//! probability `xtc_probability`, every token of probability `>= xtc_threshold` is removed
//! except the least probable of them, when at least two reach the threshold. "Least probable"
//! is the last of them in the order (probability descending, lower id first): among equal
//! probabilities, the highest id stays. A token whose weight underflows to 0 does not count
//! as reaching the threshold (with threshold 0 it would otherwise be the one left).
//!
//! The coin: when `xtc_probability > 0` for a row that is not greedy, one uniform `u` of the
//! row's stream is drawn first, before anything else is drawn, and XTC applies when
//! `u < xtc_probability` (so `1` always applies it). When it does not, the row is drawn as
//! without XTC (top-p by rejection, without listing the nucleus, when no other stage is on). `filter_logits` has no
//! stream: it returns the law of the drawn token, the mixture of both outcomes. The tokens XTC
//! would remove keep their scaled logit shifted by
//! `ln((1 - q) Z') - ln(q Z + (1 - q) Z')` (`Z` the kept weight, `Z'` the weight XTC keeps),
//! the others their scaled logit; for `q = 1` they are removed.

use super::kept::{Coin, Ctx};
use crate::element::Real;
use crate::error::Result;
use crate::sampling::hot::count_at_least;

pub(super) fn apply<C: Real>(ctx: &mut Ctx<'_, C>) -> Result<()> {
    let q = ctx.cfg.xtc_q;
    if q <= 0.0 {
        return Ok(());
    }
    let on = match ctx.coin {
        Coin::Tossed(on) => on,
        Coin::Filter => true,
    };
    if !on {
        return Ok(());
    }
    let total = ctx.total();
    let t = ctx.cfg.xtc_t;
    // A token whose weight underflowed to 0 never reaches the threshold (for `t = 0` it
    // would be the one kept, and nothing could be drawn).
    let reaches = |w: f64| w > 0.0 && w / total >= t;
    // The least probable of those reaching t: the smallest weight, the last position among
    // equal ones.
    let (mut count, mut least, mut least_w) = (0usize, 0usize, f64::INFINITY);
    for (i, w) in ctx.set.ws.iter().enumerate() {
        let w = w.to_f64();
        if reaches(w) {
            count += 1;
            if w <= least_w {
                least_w = w;
                least = i;
            }
        }
    }
    if count < 2 {
        return Ok(());
    }
    let removed = |i: usize, w: f64| reaches(w) && i != least;
    if q >= 1.0 || matches!(ctx.coin, Coin::Tossed(_)) {
        ctx.retain(|i, w| !removed(i, w));
        return Ok(());
    }
    // filter_logits with q < 1: both outcomes.
    let mut gone = 0.0;
    ctx.soft.1.clear();
    for (i, (&id, w)) in ctx.set.idx.iter().zip(&ctx.set.ws).enumerate() {
        let w = w.to_f64();
        if removed(i, w) {
            gone += w;
            crate::scratch::push(&mut ctx.soft.1, id, "XTC's tokens")?;
        }
    }
    let kept = total - gone;
    ctx.soft.0 = ((1.0 - q) * kept).ln() - (q * total + (1.0 - q) * kept).ln();
    Ok(())
}

/// Whether XTC (threshold `t`) removes nothing from the kept set of row `x` (maximum `m`,
/// temperature `temp`, the row's weights relative to the maximum's), which weighs at least
/// `least`: no token can reach `t`, not even the maximum (weight 1), or (one pass over the
/// row) at most one can, and XTC needs two. With the margin of epsilon's bounds
/// ([`super::cutoff::MARGIN`]).
pub(in crate::sampling) fn removes_none<C: Real>(
    x: &[C],
    m: f64,
    temp: f64,
    t: f64,
    least: f64,
    par: bool,
) -> bool {
    use super::cutoff::MARGIN;
    let bar = t * least * (1.0 - MARGIN);
    if 1.0 + MARGIN < bar {
        return true;
    }
    if bar.is_nan() || bar <= 0.0 {
        return false;
    }
    // The tokens that could reach: their weight at least `bar`, so their logit at least
    // this (the weights are within far less than the margin of `exp((x - m) / T)`).
    let lowest = m + temp * (bar * (1.0 - MARGIN)).ln();
    super::sum_over_blocks(x.len(), par, |r| count_at_least(&x[r], lowest)) <= 1
}
