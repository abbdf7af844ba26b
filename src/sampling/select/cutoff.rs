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

/// The verdict of epsilon or eta on a token of weight `w` drawn before the kept set is known
/// (the row's weights, the maximum's weight 1): kept if its probability reaches the stage's
/// threshold for every kept set the bounds allow, removed if for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::sampling) enum Verdict {
    Kept,
    Removed,
    /// Within the bounds' margin, or possibly the most probable token, which the stages keep
    /// when no token passes: decided on the kept set itself.
    Undecided,
}

/// The relative margin of [`verdict`]'s bounds: the kept set's total and the bounds are sums
/// of the same weights in other orders (and `f32` lanes), far closer than this.
pub(in crate::sampling) const MARGIN: f64 = 1e-3;

/// [`Verdict`] of a token of weight `w` that is kept when `w >= kept_from` and removed when
/// `w < removed_below` (threshold times kept weight, at its lowest and highest), the same
/// decision as [`Ctx::keep_probability_at_least`] on the kept set.
pub(in crate::sampling) fn verdict(w: f64, removed_below: f64, kept_from: f64) -> Verdict {
    if w >= kept_from * (1.0 + MARGIN) {
        Verdict::Kept
    } else if w < removed_below * (1.0 - MARGIN) && w < 1.0 - MARGIN {
        Verdict::Removed
    } else {
        Verdict::Undecided
    }
}

/// `h(a) = -a ln a - (1 - a) ln(1 - a)` (nats).
fn binary_entropy(a: f64) -> f64 {
    if a <= 0.0 || a >= 1.0 {
        0.0
    } else {
        -a * a.ln() - (1.0 - a) * (1.0 - a).ln()
    }
}

/// Bounds `(lo, hi)` on eta's threshold `min(eta, sqrt(eta) exp(-H_K))` for a kept set `K`
/// that holds a share `a` in `[a_lo, a_hi]` of the weight of a set `R` of at most `n` tokens
/// whose entropy is `h_r` (nats). By the grouping rule, `H_R = h(a) + a H_K + (1 - a) H_T`
/// for the rest `T` of `R`, and `0 <= H_T <= ln n`, so
/// `H_R - max h - (1 - a_lo) ln n <= H_K <= (H_R - min h) / a_lo` (`h` over `[a_lo, a_hi]`).
pub(in crate::sampling) fn eta_bounds(
    eta: f64,
    h_r: f64,
    a_lo: f64,
    a_hi: f64,
    n: usize,
) -> (f64, f64) {
    let (ends_lo, ends_hi) = (binary_entropy(a_lo), binary_entropy(a_hi));
    let h_min = ends_lo.min(ends_hi);
    // Concave, its maximum ln 2 at one half.
    let h_max = if a_lo <= 0.5 && 0.5 <= a_hi {
        std::f64::consts::LN_2
    } else {
        ends_lo.max(ends_hi)
    };
    // The kept set's own sums are in another order, with its own rounding.
    let slack = 1e-5 * (1.0 + h_r.abs());
    let hk_hi = (h_r - h_min).max(0.0) / a_lo + slack;
    let hk_lo = h_r - h_max - (1.0 - a_lo) * (n.max(1) as f64).ln() - slack;
    let thr = |h: f64| eta.min(eta.sqrt() * (-h).exp());
    (thr(hk_hi), thr(hk_lo.max(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Eta's bounds hold the threshold of the true nucleus: rows flat to peaked, short to
    /// vocabulary-sized, every `p`, with the shares the rejection draw passes (`p` of the row,
    /// and at most the weight of the token that reaches it more).
    #[test]
    fn p22_eta_bounds_hold_the_nucleus_threshold() {
        let mut u = crate::sampling::test_units::units(0xE7A_B0D5);
        for case in 0..120 {
            let n = [3, 12, 500, 20000][case % 4];
            let sd = [0.1, 1.0, 3.0, 6.0, 12.0][case % 5];
            let g: Vec<f64> = (0..n)
                .map(|_| ((0..12).map(|_| u()).sum::<f64>() - 6.0) * sd)
                .collect();
            let m = g.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut w: Vec<f64> = g.iter().map(|&e| (e - m).exp()).collect();
            w.sort_by(|a, b| b.total_cmp(a));
            let total: f64 = w.iter().sum();
            let h_r = total.ln() - w.iter().map(|&e| e * e.ln()).sum::<f64>() / total;
            for p in [0.05, 0.3, 0.5, 0.9, 0.95, 0.999] {
                let mut cum = 0.0;
                let below = w
                    .iter()
                    .take_while(|&&e| {
                        cum += e;
                        cum < p * total
                    })
                    .count();
                let k = (below + 1).min(n);
                let wk: f64 = w[..k].iter().sum();
                let hk = wk.ln() - w[..k].iter().map(|&e| e * e.ln()).sum::<f64>() / wk;
                let a_lo = p * (1.0 - MARGIN);
                let a_hi = ((p * total + 1.0) * (1.0 + MARGIN) / total).min(1.0);
                for eta in [1e-4, 3e-4, 0.01, 0.2, 0.9] {
                    let (lo, hi) = eta_bounds(eta, h_r, a_lo, a_hi, n);
                    let thr = eta.min(eta.sqrt() * (-hk).exp());
                    assert!(
                        lo <= thr && thr <= hi,
                        "case {case} n {n} sd {sd} p {p} eta {eta}: {lo} {thr} {hi}"
                    );
                }
            }
        }
    }
}
