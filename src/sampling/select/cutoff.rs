//! `epsilon_cutoff` and `eta_cutoff` (contract P22; Hewitt et al. 2022, Hugging Face's
//! EpsilonLogitsWarper and EtaLogitsWarper), in this order: epsilon keeps the tokens of
//! probability `>= e`; eta those of probability `>= min(eta, sqrt(eta) * exp(-H))`, `H` the
//! entropy (nats) of the kept distribution. Probabilities are over the kept set, renormalised.
//! When no token passes, the most probable token is kept (with any of equal probability).

use super::kept::Ctx;
use crate::element::Real;
use crate::error::Result;

pub(super) fn apply<C: Real>(ctx: &mut Ctx<'_, C>) -> Result<()> {
    let (eps, eta) = (ctx.cfg.epsilon, ctx.cfg.eta);
    if eps > 0.0 {
        let total = ctx.total();
        ctx.keep_probability_at_least(eps, total);
    }
    if eta > 0.0 && ctx.set.idx.len() > 1 {
        let total = ctx.total();
        let lns = ctx.ln_ws()?;
        let h = ctx.entropy(total, &lns);
        ctx.keep_ln_ws(lns);
        let bound = eta.min(eta.sqrt() * (-h).exp());
        ctx.keep_probability_at_least(bound, total);
    }
    Ok(())
}

/// Epsilon's verdict on a token of weight `w` drawn before the kept set is known, from bounds
/// `lo <= W <= hi` on the kept set's weight `W` (the row's weights, the maximum's weight 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::sampling) enum Verdict {
    Kept,
    Removed,
    /// Within the bounds' margin, or possibly the most probable token, which epsilon keeps
    /// when no token reaches `e`: decided on the kept set itself.
    Undecided,
}

/// The relative margin of [`verdict`]'s bounds: the kept set's total and the bounds are sums
/// of the same weights in other orders (and `f32` lanes), far closer than this.
pub(in crate::sampling) const MARGIN: f64 = 1e-3;

/// Whether `w / W >= eps` for every `W` in `[lo, hi]`, for none, or undecided (see
/// [`Verdict`]); the same decision as [`Ctx::keep_probability_at_least`] on the kept set.
pub(in crate::sampling) fn verdict(w: f64, eps: f64, lo: f64, hi: f64) -> Verdict {
    if w >= eps * hi * (1.0 + MARGIN) {
        Verdict::Kept
    } else if w < eps * lo * (1.0 - MARGIN) && w < 1.0 - MARGIN {
        Verdict::Removed
    } else {
        Verdict::Undecided
    }
}
