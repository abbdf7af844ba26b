//! The kept set of one row, as [`select`] makes it, read as a distribution: for
//! `verify_draft` (contract V2), which needs one token's probability `p(x)`, a draw from `p`,
//! and a draw from the residual `max(p - q, 0)`. Nothing here filters: the set and its weights
//! are `select`'s (top-k, top-p and min-p as for `sample`), so `p` is P3's distribution.

use super::super::hot::multiversion;
use super::super::params::RowCfg;
use super::{
    changed, compensated_total, draw, lane_sum, per_chunk, per_chunk_mut, select, walk,
    weight_total, Cut, Kept, Work, CHUNK,
};
use crate::element::{Float, Real};
use crate::error::Result;
#[cfg(target_arch = "x86_64")]
use crate::simd::{simd_level, SimdLevel};

/// P3's distribution of one row, its weights held in the row's [`Work`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum KeptDist {
    /// One token has probability 1 (temperature 0, top-p 0, top-k 1, `V = 1`).
    Point(usize),
    /// The tokens of `Work::cur` (in token order), weights `Work::cur.ws`, their sums per
    /// chunk in `Work::chunks`.
    List { total: f64 },
    /// Every token of the row, weight `Work::row_ws` (exactly 0 for a removed token), sums per
    /// chunk in `Work::chunks`.
    Dense { total: f64 },
}

/// What the draft model proposed at one position: its distribution `q`, or (drafts without
/// one) the token, `q` then being a point mass on it.
#[derive(Clone, Copy)]
pub(crate) enum Draft<'a, Q> {
    /// `q` is the point mass on this token.
    Point(usize),
    /// `q` over the vocabulary, as given (not renormalised).
    Probs(&'a [Q]),
}

impl KeptDist {
    /// The distribution of a validated row `x` with maximum `m` under `cfg`: [`select`]'s kept
    /// set with weights. [`CHANGED`](super::CHANGED) when the row changed under another
    /// thread's writes so that nothing is kept.
    pub(crate) fn of<C: Real>(x: &[C], m: C, cfg: RowCfg, w: &mut Work<C>) -> Result<KeptDist> {
        // No stage of P20-P23 is on for a target distribution (`verify_draft` refuses them).
        let mut cfg = cfg;
        let d = match select(x, m, &mut cfg, w, true, None)? {
            Kept::Greedy(a) => return Ok(KeptDist::Point(a)),
            Kept::List => KeptDist::List {
                total: weight_total(&w.cur.ws, &mut w.chunks, w.par)?,
            },
            Kept::Row(None) => KeptDist::Dense { total: w.row_total },
            Kept::Row(Some(cut)) => KeptDist::Dense {
                total: mask_to_cut(x, cut, w)?,
            },
        };
        match d {
            KeptDist::List { total } | KeptDist::Dense { total }
                if total.is_nan() || total <= 0.0 =>
            {
                Err(changed())
            }
            d => Ok(d),
        }
    }

    /// `p(j)`, in `f64`: the token's weight over the kept set's total (0 for a removed token).
    pub(crate) fn prob<C: Real>(&self, j: usize, w: &Work<C>) -> f64 {
        match *self {
            KeptDist::Point(a) => f64::from(u8::from(j == a)),
            KeptDist::List { total } => w
                .cur
                .idx
                .binary_search(&j)
                .map_or(0.0, |i| w.cur.ws[i].to_f64() / total),
            KeptDist::Dense { total } => w.row_ws[j].to_f64() / total,
        }
    }

    /// One token drawn from `p` with the uniform `u` in `[0, 1)`: the inverse CDF in token
    /// order (the first kept token whose running weight exceeds `u` times the total), as
    /// `sample` draws from a kept set.
    pub(crate) fn draw<C: Real>(&self, u: f64, w: &Work<C>) -> Result<usize> {
        match *self {
            KeptDist::Point(a) => Ok(a),
            KeptDist::List { total } => draw(&w.cur.ws, &w.chunks, total, u)
                .map(|i| w.cur.idx[i])
                .ok_or_else(changed),
            KeptDist::Dense { total } => draw(&w.row_ws, &w.chunks, total, u).ok_or_else(changed),
        }
    }

    /// One token drawn from the residual `max(p - q, 0)`, renormalised, with the uniform `u`:
    /// the inverse CDF in token order over the residual's weights. When the residual is all 0
    /// (`q >= p` everywhere), from `p` (contract V4). Changes the weights in `w`.
    pub(crate) fn residual<C: Real, Q: Float>(
        &self,
        draft: Draft<'_, Q>,
        u: f64,
        w: &mut Work<C>,
    ) -> Result<usize> {
        let total = match *self {
            KeptDist::Point(a) => return Ok(a),
            KeptDist::List { total } | KeptDist::Dense { total } => total,
        };
        let dense = matches!(self, KeptDist::Dense { .. });
        match draft {
            Draft::Point(x) => {
                // max(p - δ_x, 0) is p without x (p(x) <= 1): its weights are p's with x's
                // set to 0, and x's chunk summed again.
                let pos = if dense {
                    Some(x)
                } else {
                    w.cur.idx.binary_search(&x).ok()
                };
                let Some(pos) = pos.filter(|&i| self.ws(w)[i].to_f64() > 0.0) else {
                    return self.draw(u, w); // p(x) = 0: the residual is p.
                };
                let ws = if dense { &mut w.row_ws } else { &mut w.cur.ws };
                ws[pos] = C::default();
                let c = pos / CHUNK;
                w.chunks[c] = lane_sum(&ws[c * CHUNK..((c + 1) * CHUNK).min(ws.len())]);
                let rest = compensated_total(&w.chunks);
                if rest.is_nan() || rest <= 0.0 {
                    return Ok(x); // p is the point mass on x.
                }
                let drawn = walk(ws, &w.chunks, rest, u, |_| true);
                let drawn = if dense {
                    drawn
                } else {
                    drawn.map(|i| w.cur.idx[i])
                };
                drawn.ok_or_else(changed)
            }
            Draft::Probs(q) => {
                let inv = 1.0 / total;
                let r = |wj: f64, qj: f64| {
                    let d = wj * inv - qj;
                    if d > 0.0 {
                        d
                    } else {
                        0.0
                    }
                };
                if !dense {
                    // A list (top-k, few min-p tokens): token by token.
                    let (idx, ws) = (&w.cur.idx, &w.cur.ws);
                    let res = |i: usize| r(ws[i].to_f64(), q[idx[i]].to_f64());
                    let sum: f64 = (0..idx.len()).map(res).sum();
                    if sum.is_nan() || sum <= 0.0 {
                        return self.draw(u, w);
                    }
                    let target = u * sum;
                    let (mut cum, mut last) = (0.0, None);
                    for (i, &id) in idx.iter().enumerate() {
                        let ri = res(i);
                        if ri > 0.0 {
                            cum += ri;
                            last = Some(id);
                            if cum > target {
                                break;
                            }
                        }
                    }
                    return last.ok_or_else(changed);
                }
                // Every token: residual sums per chunk (vectorised), then one chunk walked.
                let ws = &w.row_ws;
                let n = ws.len();
                let mut sums = std::mem::take(&mut w.chunks);
                let sum = per_chunk(n, &mut sums, w.par, |r| {
                    residual_chunk(&ws[r.clone()], &q[r], inv)
                });
                w.chunks = sums;
                let sum = sum?;
                if sum.is_nan() || sum <= 0.0 {
                    // Rebuild p's chunk sums for the draw from p.
                    let mut sums = std::mem::take(&mut w.chunks);
                    for (c, s) in sums.iter_mut().enumerate() {
                        *s = lane_sum(&ws[c * CHUNK..((c + 1) * CHUNK).min(n)]);
                    }
                    w.chunks = sums;
                    return self.draw(u, w);
                }
                let target = u * sum;
                let mut cum = 0.0;
                let mut last_chunk = None;
                for (c, &cs) in w.chunks.iter().enumerate() {
                    if cs > 0.0 {
                        let range = c * CHUNK..((c + 1) * CHUNK).min(n);
                        if cum + cs > target {
                            let mut last = None;
                            for j in range {
                                let rj = r(ws[j].to_f64(), q[j].to_f64());
                                if rj > 0.0 {
                                    last = Some(j);
                                    cum += rj;
                                    if cum > target {
                                        return Ok(j);
                                    }
                                }
                            }
                            // Rounding between the chunk's sum and the running sum.
                            return last.ok_or_else(changed);
                        }
                        cum += cs;
                        last_chunk = Some(range);
                    }
                }
                // Rounding at u close to 1: the last token with a residual.
                last_chunk
                    .and_then(|mut rg| rg.rfind(|&j| r(ws[j].to_f64(), q[j].to_f64()) > 0.0))
                    .ok_or_else(changed)
            }
        }
    }

    /// The weights of a list or dense distribution.
    fn ws<'w, C: Real>(&self, w: &'w Work<C>) -> &'w [C] {
        match self {
            KeptDist::List { .. } => &w.cur.ws,
            _ => &w.row_ws,
        }
    }
}

/// Zeroes the weights (in `Work::row_ws`) of the tokens a cut of the row removes, and sums
/// the rest per chunk into `Work::chunks`; returns their total. The kept tokens are those
/// [`super::draw_row_cut`] draws from: logit `> cut.value`, or equal to it and (an inclusive
/// cut, `ties == usize::MAX`) any, else at most the last kept tie's position.
fn mask_to_cut<C: Real>(x: &[C], cut: Cut, w: &mut Work<C>) -> Result<f64> {
    let v = cut.value;
    let incl = cut.ties == usize::MAX;
    let last_tie = if incl {
        None
    } else {
        w.tie_pos.last().copied()
    };
    let mut ws = std::mem::take(&mut w.row_ws);
    let total = per_chunk_mut(&mut ws, &mut w.chunks, w.par, |start, d| {
        for (i, e) in d.iter_mut().enumerate() {
            let j = start + i;
            let xe = x[j].to_f64();
            let keep = xe > v || (xe == v && (incl || last_tie.is_some_and(|t| j <= t)));
            *e = e.keep_if(keep);
        }
        lane_sum(d)
    });
    w.row_ws = ws;
    total
}

/// `Σ max(w * s - q, 0)` over one chunk, in `f64`: the vectorised kernel when `q` is of the
/// weights' type, else token by token (the same terms; the sum's rounding may differ).
fn residual_chunk<C: Real, Q: Float>(ws: &[C], q: &[Q], s: f64) -> f64 {
    if std::any::TypeId::of::<Q>() == std::any::TypeId::of::<C>() {
        // SAFETY: `Q` is `C`.
        let qc = unsafe { std::slice::from_raw_parts(q.as_ptr().cast::<C>(), q.len()) };
        return residual_lane_sum(ws, qc, s);
    }
    residual_sum_plain(ws, q, s)
}

/// `Σ max(w * s - q, 0)`, token by token in order: the slow twin of [`residual_lane_sum`].
pub(crate) fn residual_sum_plain<C: Real, Q: Float>(ws: &[C], q: &[Q], s: f64) -> f64 {
    ws.iter()
        .zip(q)
        .map(|(&wj, &qj)| (wj.to_f64() * s - qj.to_f64()).max(0.0))
        .sum()
}

/// Lanes of the residual sum.
const RL: usize = 16;

multiversion! {
    /// `Σ max(w * s - q, 0)` in `f64`, [`RL`] lanes, branch-free.
    fn residual_lane_sum(ws: &[C], qs: &[C], s: f64) -> f64 {
        let mut acc = [0.0f64; RL];
        let mut wi = ws.chunks_exact(RL);
        let mut qi = qs.chunks_exact(RL);
        for (wv, qv) in (&mut wi).zip(&mut qi) {
            for l in 0..RL {
                let d = wv[l].to_f64() * s - qv[l].to_f64();
                acc[l] += if d > 0.0 { d } else { 0.0 };
            }
        }
        for (l, (&we, &qe)) in wi.remainder().iter().zip(qi.remainder()).enumerate() {
            let d = we.to_f64() * s - qe.to_f64();
            acc[l] += if d > 0.0 { d } else { 0.0 };
        }
        let mut t = 0.0;
        for a in acc {
            t += a;
        }
        t
    }
}

multiversion! {
    /// Whether every value is finite and `>= 0` (a draft probability), branch-free.
    fn all_probs(q: &[C]) -> bool {
        let mut ok = true;
        for &v in q {
            ok &= v >= C::default() && v < C::INFINITY;
        }
        ok
    }
}

/// The first value of `q` that is negative, NaN or infinite.
pub(crate) fn first_bad_prob<Q: Float>(q: &[Q]) -> Option<usize> {
    let bad = |v: f64| !(v >= 0.0 && v.is_finite());
    if std::any::TypeId::of::<Q>() == std::any::TypeId::of::<Q::Compute>() {
        // SAFETY: `Q` is its compute type.
        let qc = unsafe { std::slice::from_raw_parts(q.as_ptr().cast::<Q::Compute>(), q.len()) };
        for (c, chunk) in qc.chunks(CHUNK).enumerate() {
            if !all_probs(chunk) {
                let i = chunk.iter().position(|v| bad(v.to_f64()))?;
                return Some(c * CHUNK + i);
            }
        }
        return None;
    }
    q.iter().position(|v| bad(v.to_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_residual_kernel_matches_the_plain_sum() {
        let mut next = crate::test_rng::lcg_uniform(1);
        for n in [0, 1, 15, 16, 17, 1000, 1024] {
            let ws: Vec<f32> = (0..n).map(|_| next() as f32).collect();
            let qs: Vec<f32> = (0..n).map(|_| (next() * 0.01) as f32).collect();
            let fast = residual_lane_sum(&ws, &qs, 0.013);
            let plain = residual_sum_plain(&ws, &qs, 0.013);
            assert!(
                (fast - plain).abs() <= 1e-12 * plain.max(1.0),
                "{n}: {fast} {plain}"
            );
        }
    }

    #[test]
    fn v4_bad_probabilities_are_found() {
        let mut q = vec![0.5f32; 3000];
        assert_eq!(first_bad_prob(&q), None);
        q[2500] = -0.0;
        assert_eq!(first_bad_prob(&q), None);
        q[2049] = f32::NAN;
        q[2999] = -1.0;
        assert_eq!(first_bad_prob(&q), Some(2049));
        let h = [half::f16::from_f32(0.1), half::f16::INFINITY];
        assert_eq!(first_bad_prob(&h), Some(1));
        assert_eq!(first_bad_prob(&[1.0f64, -1e-300]), Some(1));
    }
}
