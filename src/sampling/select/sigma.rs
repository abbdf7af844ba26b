//! `top_n_sigma` (contract P21; Tang et al. 2024, llama.cpp's top-n-sigma): keeps the tokens
//! whose scaled logit is `>= max - n * sigma`, `sigma` the population standard deviation
//! (divided by `N`) of the scaled logits of the kept set. The largest is always kept.
//!
//! The scaled logits are `(x - m) / T`, whose deviation is that of the logits over `T`: the
//! statistics are taken over the logits as they are (no division per token), and the bound is
//! turned into the least logit that reaches it, so that the kept tokens are found by one
//! comparison each.

use super::kept::Ctx;
use super::{least_logit_passing, scaled_gap};
use crate::element::Real;
use crate::error::Result;
use crate::sampling::hot::{lane_extremes, lane_squared_deviations, lane_sum};

pub(super) fn apply<C: Real>(ctx: &mut Ctx<'_, C>) -> Result<()> {
    let n_sigma = ctx.cfg.n_sigma;
    if n_sigma <= 0.0 {
        return Ok(());
    }
    let xs = &ctx.set.xs;
    let count = xs.len() as f64;
    let top = lane_extremes(xs).1;
    let mean = lane_sum(xs) / count;
    let (m, t) = (ctx.m, ctx.cfg.t);
    let sigma = (lane_squared_deviations(xs, mean) / count).sqrt() / t;
    let thr = scaled_gap(top, m, t) - n_sigma * sigma;
    // An infinite spread (or a NaN from one) keeps every token.
    if thr.is_nan() || thr == f64::NEG_INFINITY {
        return Ok(());
    }
    let lowest = least_logit_passing(m, |y| scaled_gap(y, m, t) >= thr);
    ctx.retain_logits_at_least(lowest)
}
