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
