//! Mirostat 2.0's truncation (contract P25; llama.cpp's `mirostat_v2`): the tokens whose
//! surprise `-log2 p` under the kept set exceeds the row's `mu` are removed; when every token
//! would be, those of the largest probability stay (the most probable token is always kept).
//!
//! `mu` comes from the [`Sampler`](crate::Sampler), which keeps it per row (starting at
//! `2 * tau`) and, after each draw, updates it with the drawn token's surprise under the
//! truncated, renormalised set: `mu -= eta * (surprise - tau)`. The surprise is computed from
//! the scaled logits in `f64`: `(ln S - ln w) / ln 2`, `S` the kept weight.
//!
//! Mirostat replaces top-k, top-p and min-p, so when no other stage of P20-P23 is on it
//! truncates the whole row: the surprise falls as the logit grows, so its tokens are those
//! with a logit at or above a threshold ([`lowest_logit`]), found from the row's weight total
//! and gathered directly, instead of listing every token of the row first. `S` is then the
//! row's total as the weight pass added it (per block, with compensation) rather than the
//! list's: the two differ in the last bits, which decide only for a token whose surprise is
//! within rounding of `mu`.

use super::kept::Ctx;
use crate::element::Real;
use crate::error::Result;
use crate::sampling::hot::lane_extremes;

/// A token's surprise `-log2 p` from `ln w` and `ln S`.
fn surprise(ln_total: f64, lw: f64) -> f64 {
    (ln_total - lw) / std::f64::consts::LN_2
}

/// The lowest logit that Mirostat keeps of a set whose largest logit is `top`, in a row of
/// maximum `m` at temperature `t > 0`, the set's weights adding up to `total`: the least with
/// surprise `<= mu`; when even `top`'s surprise is above `mu`, the least with `top`'s scaled
/// logit (the tokens of the largest probability stay). The surprise falls as the logit grows,
/// so the kept tokens are those at or above it.
pub(super) fn lowest_logit(m: f64, top: f64, t: f64, total: f64, mu: f64) -> f64 {
    let ln_total = total.ln();
    let gap = |y: f64| super::scaled_gap(y, m, t);
    let pass = |y: f64| surprise(ln_total, gap(y)) <= mu;
    if pass(top) {
        super::least_logit_passing(top, pass)
    } else {
        super::least_logit_passing(top, |y| gap(y) >= gap(top))
    }
}

/// Mirostat's truncation of the list the stages before it left (the whole row's case is
/// gathered directly: `kept::apply`).
pub(super) fn apply<C: Real>(ctx: &mut Ctx<'_, C>) -> Result<()> {
    let Some(mu) = ctx.cfg.mu else {
        return Ok(());
    };
    let top = lane_extremes(&ctx.set.xs).1;
    let lowest = lowest_logit(ctx.m, top, ctx.cfg.t, ctx.total(), mu);
    ctx.retain_logits_at_least(lowest)
}

#[cfg(test)]
mod tests {
    use super::{lowest_logit, surprise};
    use crate::sampling::select::scaled_gap;

    /// The threshold keeps exactly the tokens whose surprise is at most `mu` (the definition,
    /// token by token), or those of the maximum's scaled logit when even its surprise is above
    /// `mu`; rows with ties, `-inf`, temperatures and `mu` on both sides of the maximum's
    /// surprise.
    #[test]
    fn p25_lowest_logit_is_the_surprise_cut() {
        let mut unit = crate::sampling::test_units::units(0x9E37_79B9_7F4A_7C15);
        let mut fallbacks = 0;
        for case in 0..400 {
            let n = 1 + (unit() * 3000.0) as usize;
            let spread = [0.5, 3.0, 20.0][case % 3];
            let x: Vec<f32> = (0..n)
                .map(|_| match unit() {
                    u if u < 0.02 => f32::NEG_INFINITY,
                    // Coarse values make ties, at the maximum too.
                    u if u < 0.3 => ((unit() * 8.0).floor() * spread) as f32,
                    _ => ((unit() - 0.5) * 8.0 * spread) as f32,
                })
                .chain([1.0f32])
                .collect();
            let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let t = [0.3, 0.8, 1.0, 2.5][case % 4];
            let total: f64 = x.iter().map(|&e| scaled_gap(e as f64, m, t).exp()).sum();
            let mu = unit() * 2.0 * total.log2().max(1.0);
            let lowest = lowest_logit(m, m, t, total, mu);
            let top_fails = surprise(total.ln(), 0.0) > mu;
            fallbacks += usize::from(top_fails);
            for &e in &x {
                let e = e as f64;
                let want = if top_fails {
                    scaled_gap(e, m, t) == 0.0
                } else {
                    surprise(total.ln(), scaled_gap(e, m, t)) <= mu
                };
                assert_eq!(
                    e >= lowest,
                    want,
                    "case {case}: x {e} lowest {lowest} mu {mu}"
                );
            }
        }
        assert!(
            fallbacks > 10 && fallbacks < 390,
            "both sides of the maximum: {fallbacks}"
        );
    }
}
