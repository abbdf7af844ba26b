//! Mirostat 2.0's truncation (contract P25; llama.cpp's `mirostat_v2`): the tokens whose
//! surprise `-log2 p` under the kept set exceeds the row's `mu` are removed; when every token
//! would be, those of the largest probability stay (the most probable token is always kept).
//!
//! `mu` comes from the [`Sampler`](crate::Sampler), which keeps it per row (starting at
//! `2 * tau`) and, after each draw, updates it with the drawn token's surprise under the
//! truncated, renormalised set: `mu -= eta * (surprise - tau)`. The surprise is computed from
//! the scaled logits in `f64`: `(ln S - ln w) / ln 2`, `S` the kept weight.

use super::kept::Ctx;
use crate::element::Real;
use crate::error::Result;

pub(super) fn apply<C: Real>(ctx: &mut Ctx<'_, C>) -> Result<()> {
    let Some(mu) = ctx.cfg.mu else {
        return Ok(());
    };
    let ln_total = ctx.total().ln();
    let lws = ctx.ln_ws()?;
    let surprise = |lw: f64| (ln_total - lw) / std::f64::consts::LN_2;
    if lws.iter().any(|&lw| surprise(lw) <= mu) {
        ctx.retain(|i, _| surprise(lws[i]) <= mu);
    } else {
        let top = lws.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        ctx.retain(|i, _| lws[i] == top);
    }
    ctx.keep_ln_ws(lws);
    Ok(())
}
