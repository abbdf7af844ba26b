//! Dynamic temperature (contract P26; llama.cpp's entropy-scaled `temp_ext`): with
//! `dynatemp_range` `r > 0` and temperature `T > 0`, a row's temperature is
//!
//! `lo + (hi - lo) * (H / ln n) ^ dynatemp_exponent`, `lo = max(0, T - r)`, `hi = T + r`
//! (at most `f64::MAX`),
//!
//! `H` the entropy (nats) of the row's distribution at temperature 1 (after the processing of
//! P11-P13) and `n` the number of its finite logits. It takes the place of `T` for the row's
//! filters, draw and log-probabilities. A row with one finite logit keeps `T`; `T = 0` stays
//! greedy, and a dynamic temperature of 0 is greedy too. `H / ln n` is clamped to `[0, 1]`
//! against rounding.
//!
//! Where llama.cpp applies it last, after the filters, over the tokens they kept (and counts
//! banned tokens among its `n`), here it replaces the fixed temperature, which comes first in
//! the order of P3, over the whole row.

use super::Work;
use crate::element::Real;
use crate::error::Result;
use crate::kernels::{kernels, SumAcc, BLOCK};
use crate::parallel::ranges_mapped;
use crate::sampling::params::RowCfg;

/// `cfg` with its temperature made dynamic (unchanged when the range is 0 or `T` is 0).
pub(crate) fn resolve<C: Real>(x: &[C], m: C, cfg: RowCfg, w: &mut Work<C>) -> Result<RowCfg> {
    if cfg.dyn_range <= 0.0 || cfg.t == 0.0 {
        return Ok(cfg);
    }
    // One pass at T = 1 (nothing stored), a block at a time; the blocks' sums in order.
    let k = kernels::<C>();
    let parts = ranges_mapped(x.len(), BLOCK, w.par && x.len() > BLOCK, |_, r| {
        (k.entropy_sums)(&x[r], m)
    });
    let (mut total, mut dot, mut n) = (SumAcc::default(), 0.0, 0);
    for p in parts.iter() {
        total.add(p.total);
        dot += p.dot;
        n += p.finite;
    }
    let mut cfg = cfg;
    cfg.t = temperature(cfg.t, cfg.dyn_range, cfg.dyn_exp, total.total(), dot, n);
    if !cfg.t.is_finite() {
        // Only when another thread wrote NaN or +inf into the row between the passes (R3).
        return Err(super::changed());
    }
    Ok(cfg)
}

/// The dynamic temperature from the weights' sum `total`, `dot = sum(w (x - m))` and the
/// count `n` of finite logits.
pub(crate) fn temperature(
    t: f64,
    range: f64,
    exponent: f64,
    total: f64,
    dot: f64,
    n: usize,
) -> f64 {
    if n <= 1 {
        return t;
    }
    let h = total.ln() - dot / total;
    let norm = (h / (n as f64).ln()).clamp(0.0, 1.0);
    let lo = (t - range).max(0.0);
    // Two valid values can sum past f64::MAX: the largest finite temperature stands for it.
    let hi = (t + range).min(f64::MAX);
    lo + (hi - lo) * norm.powf(exponent)
}
