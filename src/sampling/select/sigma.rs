//! `top_n_sigma` (contract P21; Tang et al. 2024, llama.cpp's top-n-sigma): keeps the tokens
//! whose scaled logit is `>= max - n * sigma`, `sigma` the population standard deviation
//! (divided by `N`) of the scaled logits of the kept set. The largest is always kept.
//!
//! The scaled logits are taken as `(x - m) / T`, a shift of `x / T` by a constant, which
//! changes neither `sigma` nor the kept set.

use super::kept::Ctx;
use crate::element::Real;
use crate::error::Result;

pub(super) fn apply<C: Real>(ctx: &mut Ctx<'_, C>) -> Result<()> {
    let n_sigma = ctx.cfg.n_sigma;
    if n_sigma <= 0.0 {
        return Ok(());
    }
    let count = ctx.set.idx.len();
    let (mut sum, mut top) = (0.0, f64::NEG_INFINITY);
    for i in 0..count {
        let s = ctx.ln_w(i);
        sum += s;
        top = top.max(s);
    }
    let mean = sum / count as f64;
    let mut var = 0.0;
    for i in 0..count {
        let d = ctx.ln_w(i) - mean;
        var += d * d;
    }
    let sigma = (var / count as f64).sqrt();
    let thr = top - n_sigma * sigma;
    let lns: Vec<f64> =
        crate::scratch::collected(count, (0..count).map(|i| ctx.ln_w(i)), "top_n_sigma")?;
    ctx.retain(|i, _| lns[i] >= thr);
    Ok(())
}
