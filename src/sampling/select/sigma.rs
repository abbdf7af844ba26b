//! `top_n_sigma` (contract P21; Tang et al. 2024, llama.cpp's top-n-sigma): keeps the tokens
//! whose scaled logit is `>= max - n * sigma`, `sigma` the population standard deviation
//! (divided by `N`) of the scaled logits of the kept set. The largest is always kept.
//!
//! The scaled logits are taken as `(x - m) / T`, a shift of `x / T` by a constant, which
//! changes neither `sigma` nor the kept set.

use super::kept::Ctx;
use crate::element::Real;
use crate::error::Result;
use crate::sampling::hot::{lane_extremes, lane_squared_deviations, lane_sum};

pub(super) fn apply<C: Real>(ctx: &mut Ctx<'_, C>) -> Result<()> {
    let n_sigma = ctx.cfg.n_sigma;
    if n_sigma <= 0.0 {
        return Ok(());
    }
    let count = ctx.set.idx.len();
    let lns = ctx.ln_ws()?;
    let top = lane_extremes(&lns).1;
    let mean = lane_sum(&lns) / count as f64;
    let sigma = (lane_squared_deviations(&lns, mean) / count as f64).sqrt();
    let thr = top - n_sigma * sigma;
    ctx.retain(|i, _| lns[i] >= thr);
    ctx.keep_ln_ws(lns);
    Ok(())
}
