//! The stages of contract P20-P23 and P25, after min-p, on the kept set: typical-p,
//! top-n-sigma, the epsilon and eta cutoffs, XTC, Mirostat 2.0's truncation, in this order.
//!
//! After [`select`](super::select) (with weights) the kept set is gathered into a list of
//! tokens in id order with their logits and weights `w = exp((x - m) / T)` (`m` the row's
//! maximum), and each stage on for the row narrows the list. The kept set after top-p is
//! usually small, so the stages cost little next to the weights of the row. Probabilities are
//! the weights over their `f64` sum, and `ln w` is `(x - m) / T` in `f64`. Each stage is one
//! file and one line of [`STAGES`]; none leaves the list empty. Top-n-sigma, when it is the
//! first stage on, has already been applied by [`select`](super::select), to the kept set
//! before it was listed (see [`super::sigma::least_kept_of_cut`]).

use super::{
    count_at_least, cut_keeper, gather_at_least, lowest_finite, min_p_threshold, Bufs, Kept, Work,
};
use crate::element::Real;
use crate::error::Result;
use crate::sampling::hot::{
    at_least_in, compress_at_least, lane_dot, lane_extremes, lane_sum, scaled_gaps, Packed,
};
use crate::sampling::params::RowCfg;

/// XTC's coin: tossed by the draw (on the row's stream, before the stages run), or not at all
/// (`filter_logits`: both outcomes, as the law of the drawn token).
pub(crate) enum Coin {
    /// Whether XTC applies to this draw.
    Tossed(bool),
    Filter,
}

/// What a stage sees: the kept list and the row's scale.
pub(crate) struct Ctx<'a, C> {
    pub set: &'a mut Bufs<C>,
    /// The row's maximum (of the processed logits).
    pub m: f64,
    pub cfg: RowCfg,
    pub coin: Coin,
    /// Tokens (ids) that XTC removes with probability `xtc_probability < 1` under
    /// `filter_logits`, and the shift of their scaled logits (see [`super::xtc`]).
    pub soft: &'a mut (f64, Vec<usize>),
    /// Buffers the stages reuse from row to row (allocating them per row, some 200 KB for a
    /// list of 5,000 tokens, made the allocator return and fault in pages each time).
    pub scratch: &'a mut StageScratch,
}

/// Buffers of the stages, kept in [`Work`] between rows.
#[derive(Default)]
pub(crate) struct StageScratch {
    /// `ln w` of the list ([`Ctx::ln_ws`]).
    pub lns: Vec<f64>,
    /// typical-p's cut ([`super::typical::prefix_by_key`]).
    pub cut: super::typical::CutScratch,
    /// The kept positions of [`Ctx::retain_logits_at_least`].
    pub pos: Vec<usize>,
}

/// A stage: narrows `ctx.set` when its parameters are on for the row.
type StageFn<C> = fn(&mut Ctx<'_, C>) -> Result<()>;

/// The stages in the order of the contract.
fn stages<C: Real>() -> [StageFn<C>; 5] {
    [
        super::typical::apply::<C>,
        super::sigma::apply::<C>,
        super::cutoff::apply::<C>,
        super::xtc::apply::<C>,
        super::mirostat::apply::<C>,
    ]
}

impl<C: Real> Ctx<'_, C> {
    /// `ln w` of position `i`: `(x - m) / T`.
    #[inline]
    pub fn ln_w(&self, i: usize) -> f64 {
        super::scaled_gap(self.set.xs[i].to_f64(), self.m, self.cfg.t)
    }

    /// The weights' `f64` sum (in lanes: a sum in position order is one long chain of
    /// dependent additions).
    pub fn total(&self) -> f64 {
        lane_sum(&self.set.ws)
    }

    /// `ln w` of every position, in order, in the scratch's buffer (taken out of it: give it
    /// back with [`Ctx::keep_ln_ws`]).
    pub fn ln_ws(&mut self) -> Result<Vec<f64>> {
        let xs = &self.set.xs;
        let mut out = std::mem::take(&mut self.scratch.lns);
        out.clear();
        crate::scratch::resize(&mut out, xs.len(), 0.0, "the kept tokens' ln w")?;
        if !scaled_gaps(xs, self.m, self.cfg.t, &mut out) {
            for (i, o) in out.iter_mut().enumerate() {
                *o = self.ln_w(i);
            }
        }
        Ok(out)
    }

    /// Gives the buffer of [`Ctx::ln_ws`] back to the scratch.
    pub fn keep_ln_ws(&mut self, lns: Vec<f64>) {
        self.scratch.lns = lns;
    }

    /// The entropy (nats) of the kept distribution whose weight sum is `total`, `ln_ws` its
    /// [`Ctx::ln_ws`]: `ln S - sum(w ln w) / S`.
    pub fn entropy(&self, total: f64, ln_ws: &[f64]) -> f64 {
        total.ln() - lane_dot(&self.set.ws, ln_ws) / total
    }

    /// Keeps the positions `keep(position, weight)` accepts (called once per position, in
    /// order).
    pub fn retain(&mut self, mut keep: impl FnMut(usize, f64) -> bool) {
        self.set.retain_with(|i, _, w| keep(i, w.to_f64()));
    }

    /// Keeps the tokens whose logit is `>= lowest` (not NaN).
    pub fn retain_logits_at_least(&mut self, lowest: f64) -> Result<()> {
        self.set.retain_at_least(lowest, &mut self.scratch.pos)
    }

    /// Keeps the tokens whose probability `w / total` is `>= thr`; when none is, the tokens
    /// of the largest weight (the most probable token is always kept; equal ones with it, as
    /// Hugging Face's warpers keep them).
    pub fn keep_probability_at_least(&mut self, thr: f64, total: f64) {
        let top = lane_extremes(&self.set.ws).1;
        if top / total >= thr {
            match least_weight_reaching(thr, total) {
                Some(least) => self.retain(|_, w| w >= least),
                None => self.retain(|_, w| w / total >= thr),
            }
        } else {
            self.retain(|_, w| w == top);
        }
    }
}

/// The least `w >= 0` with `w / total >= thr` (the division rounded, as `f64` does), so that
/// `w >= least` is `w / total >= thr` for every `w >= 0` (rounded division is monotone) without
/// a division per token; `None` if it takes more than a few steps of one unit in the last place
/// from `thr * total` (it never should: that product is within one of it).
fn least_weight_reaching(thr: f64, total: f64) -> Option<f64> {
    let reaches = |w: f64| w / total >= thr;
    let mut w = thr * total;
    if !(w.is_finite() && w > 0.0 && total.is_finite() && total > 0.0) {
        return None;
    }
    for _ in 0..8 {
        let below = w.next_down();
        match (reaches(below), reaches(w)) {
            (false, true) => return Some(w),
            (true, _) => w = below,
            (false, false) => w = w.next_up(),
        }
    }
    None
}

/// Runs the stages of P20-P23 on the kept set `kept` of row `x` (maximum `m`), whose weights
/// [`select`](super::select) computed: the result is a list in `w.cur` (or the greedy token).
pub(crate) fn apply<C: Real>(
    x: &[C],
    m: C,
    cfg: RowCfg,
    kept: Kept,
    coin: Coin,
    w: &mut Work<C>,
) -> Result<Kept> {
    w.soft.1.clear();
    // Mirostat alone on the whole row: its cut is a logit threshold, gathered directly.
    let mut cfg = cfg;
    let mut lowest = f64::NEG_INFINITY;
    match kept {
        Kept::Greedy(_) => return Ok(kept),
        Kept::List => {}
        Kept::Row(cut) => {
            if let (None, Some(mu), false) = (cut, cfg.mu, cfg.has_list_stages()) {
                let m = m.to_f64();
                lowest = super::mirostat::lowest_logit(m, m, cfg.t, w.row_total, mu);
                cfg.mu = None;
            }
            let mut set = std::mem::take(&mut w.cur);
            let done = gather(x, m, cfg, cut, lowest, &w.row_ws, &mut set, &mut w.packed.0);
            w.cur = set;
            done?;
        }
    }
    let mut set = std::mem::take(&mut w.cur);
    let mut soft = std::mem::take(&mut w.soft);
    let mut scratch = std::mem::take(&mut w.stage);
    let mut ctx = Ctx {
        set: &mut set,
        m: m.to_f64(),
        cfg,
        coin,
        soft: &mut soft,
        scratch: &mut scratch,
    };
    let mut done = Ok(());
    for stage in stages::<C>() {
        if ctx.set.idx.len() <= 1 {
            break;
        }
        done = stage(&mut ctx);
        if done.is_err() {
            break;
        }
    }
    w.cur = set;
    w.soft = soft;
    w.stage = scratch;
    done.map(|()| Kept::List)
}

/// The tokens of the row that `cut` keeps (for `None`: every finite token, min-p's when on),
/// those `>= lowest` of them, with their weights from `ws`, into `set` (`packed`: scratch).
#[allow(clippy::too_many_arguments)]
fn gather<C: Real>(
    x: &[C],
    m: C,
    cfg: RowCfg,
    cut: Option<super::Cut>,
    lowest: f64,
    ws: &[C],
    set: &mut Bufs<C>,
    packed: &mut Packed<C>,
) -> Result<()> {
    set.clear();
    // A threshold (every finite token, min-p's, or a cut that keeps its ties) is gathered in
    // vectorised passes.
    let floor = match cut {
        Some(cut) if cut.ties != usize::MAX => {
            let mut keep = cut_keeper(cut);
            for (j, &e) in x.iter().enumerate() {
                let ef = e.to_f64();
                if keep(ef) && ef > f64::NEG_INFINITY && ef >= lowest {
                    set.push(j, e, Some(ws[j]))?;
                }
            }
            return Ok(());
        }
        Some(cut) => cut.value.max(lowest_finite::<C>()),
        None if cfg.mp > 0.0 => min_p_threshold(m.to_f64(), cfg.t, cfg.mp),
        None => lowest_finite::<C>(),
    };
    // A cut's tokens or Mirostat's, usually a few: packed in one pass where there is a vector
    // path for it (it gives up past a quarter of the row, as every finite token or min-p's
    // often are).
    let few = cut.is_some() || lowest > floor;
    let lowest = lowest.max(floor);
    if few && compress_at_least(x, ws, None, at_least_in::<C>(lowest), x.len() / 4, packed)? {
        return set.assign_packed(packed, 0);
    }
    let count = count_at_least(x, lowest);
    set.reserve(count + 1, true)?;
    gather_at_least(x, lowest, count, &mut set.idx, &mut set.xs);
    set.ws.extend(set.idx.iter().map(|&j| ws[j]));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{gather, least_weight_reaching, Bufs};
    use crate::element::Real;
    use crate::sampling::test_units::units;
    use crate::sampling::SamplingParams;

    /// Gathering the tokens at or above a threshold (Mirostat's), packed in one pass where
    /// there is a vector path, is the filter of every token of the row: rows of several
    /// lengths with ties, `-inf` and NaN-free noise, thresholds keeping a few tokens to more
    /// than a quarter of the row (where the packing gives up), `f32` and `f64`.
    #[test]
    fn p25_gather_at_a_threshold_is_the_filter_of_the_row() {
        fn check<C: Real>() {
            let mut unit = units(0x2545_F491_4F6C_DD1D);
            for &n in &[70usize, 1000, 128_256] {
                let x: Vec<C> = (0..n)
                    .map(|_| match unit() {
                        u if u < 0.01 => C::NEG_INFINITY,
                        u if u < 0.2 => C::from_f64((unit() * 6.0).floor()),
                        _ => C::from_f64(unit() * 12.0 - 6.0),
                    })
                    .collect();
                let ws: Vec<C> = x
                    .iter()
                    .map(|&e| C::from_f64((e.to_f64() - 6.0).exp()))
                    .collect();
                let m = x
                    .iter()
                    .copied()
                    .fold(C::NEG_INFINITY, |a, b| if b > a { b } else { a });
                let cfg = SamplingParams::default().row(0, n);
                for lowest in [5.999, 5.0, 4.0 + 1e-9, 2.0, -1.0, -5.5] {
                    let (mut set, mut packed) = (Bufs::default(), Default::default());
                    gather(&x, m, cfg, None, lowest, &ws, &mut set, &mut packed).unwrap();
                    let want: Vec<usize> = (0..n).filter(|&j| x[j].to_f64() >= lowest).collect();
                    assert_eq!(set.idx, want, "n {n} lowest {lowest}");
                    assert!(set.idx.iter().zip(&set.xs).all(|(&j, &e)| x[j] == e));
                    assert!(set.idx.iter().zip(&set.ws).all(|(&j, &w)| ws[j] == w));
                }
            }
        }
        check::<f32>();
        check::<f64>();
    }

    /// `w >= least` is `w / total >= thr` at and around the boundary, and for weights spread
    /// over the range (P22's cutoffs compare without dividing).
    #[test]
    fn p22_least_weight_reaching_is_the_division_test() {
        let mut unit = units(0x2545_F491_4F6C_DD1D);
        for _ in 0..20_000 {
            let thr = unit() * 0.999 + 1e-12;
            let total = (unit() * 40.0 - 20.0).exp2();
            let least = least_weight_reaching(thr, total).expect("found within a few steps");
            assert!(least / total >= thr && least.next_down() / total < thr);
            let mut w = least;
            for _ in 0..4 {
                w = w.next_down();
            }
            for _ in 0..9 {
                assert_eq!(
                    w >= least,
                    w / total >= thr,
                    "thr {thr} total {total} w {w}"
                );
                w = w.next_up();
            }
            let w = unit() * total;
            assert_eq!(
                w >= least,
                w / total >= thr,
                "thr {thr} total {total} w {w}"
            );
            let w32 = f64::from((unit() * total) as f32);
            assert_eq!(w32 >= least, w32 / total >= thr);
        }
    }
}
