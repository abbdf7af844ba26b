//! One row of sampling: the kept set of contract P3 without sorting the vocabulary (P9), and
//! the inverse-CDF draw. See the module documentation of [`crate::sampling`] for the scheme.

use super::params::RowCfg;
use crate::element::Real;
use crate::kernels::{kernels, SumAcc, BLOCK};

/// Buckets of one histogram level.
const NB: usize = 2048;
/// Level 0 buckets `z = (m - x) / T` over `[0, Z_SPAN)` (width `Z_SPAN / NB` = 1/32), the last
/// bucket also holding everything beyond.
const Z_SPAN: f64 = 64.0;
/// Bands of at most this many tokens are sorted instead of bucketed.
const SORT_MAX: usize = 64;
/// Tokens per partial sum of the draw.
const CHUNK: usize = 1024;

/// A cut of a set in the order (logit descending, position ascending): keeps the tokens with
/// logit `> value`, and the first `ties` (by position) of those with logit `== value`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Cut {
    pub value: f64,
    pub ties: usize,
}

/// A set of tokens of one row, in increasing token order.
#[derive(Default)]
pub(crate) struct Bufs<C> {
    /// Token ids.
    pub idx: Vec<usize>,
    /// Their logits.
    pub xs: Vec<C>,
    /// Their weights `exp((x - m) / T)`, when computed.
    pub ws: Vec<C>,
}

impl<C> Bufs<C> {
    fn clear(&mut self) {
        self.idx.clear();
        self.xs.clear();
        self.ws.clear();
    }
}

/// Per-thread scratch, reused across rows.
#[derive(Default)]
pub(crate) struct Work<C> {
    /// The row converted to the compute type (for `f16` input).
    pub conv: Vec<C>,
    /// The current set when it is a list.
    pub cur: Bufs<C>,
    alt: Bufs<C>,
    /// Weights over the whole row, when the current set is the row.
    pub row_ws: Vec<C>,
    band: Vec<usize>,
    band2: Vec<usize>,
    hist: Vec<f64>,
    bhist: Vec<f64>,
    chunks: Vec<f64>,
}

/// The tokens a row keeps after temperature and filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kept {
    /// Exactly one token (temperature 0, top-p 0, top-k 1, or `V = 1`).
    Greedy(usize),
    /// Every token of the row (weights, if asked for, in `Work::row_ws`).
    Row,
    /// The tokens of `Work::cur` (weights, if asked for, in `Work::cur.ws`).
    List,
}

/// Level 0 bucket: `floor((m - x) / T * NB / Z_SPAN)`, capped. Non-increasing in `x`.
#[inline(always)]
fn z_bucket(x: f64, m: f64, zc: f64) -> usize {
    let b = (m - x) * zc;
    if b >= (NB - 1) as f64 {
        NB - 1
    } else {
        // NaN (0 * inf, for x == m at a subnormal temperature) casts to 0: the top bucket.
        b as usize
    }
}

/// The first bucket (from the top) at which the running weight reaches the target, and the
/// weight above it. Falls back to the last non-empty bucket (rounding at the very end).
fn pick(hist: &[f64], mut cum: f64, reached: &impl Fn(f64) -> bool) -> (usize, f64) {
    let mut last = (NB - 1, cum);
    for (b, &h) in hist.iter().enumerate() {
        if h > 0.0 {
            if reached(cum + h) {
                return (b, cum);
            }
            last = (b, cum);
            cum += h;
        }
    }
    last
}

/// Finds the shortest prefix, in the order (logit descending, position ascending), whose
/// weight reaches `target` (`running weight / denom >= target`, in `f64`). Weights are `ws`,
/// or 1 per token when `ws` is `None` (then `target` is a count).
///
/// Level 0 is a histogram of `z = (m - x) / T` (fixed buckets, summed per block of [`BLOCK`]
/// tokens and then in block order, so the sums do not depend on threads). Only the bucket
/// where the target is crossed is looked at further: histograms linear in the logit over that
/// band's range, until the band is small (sorted) or a run of equal logits (in position order).
fn find_cut<C: Real>(
    xs: &[C],
    ws: Option<&[C]>,
    m: f64,
    zc: f64,
    target: f64,
    denom: f64,
    w: &mut Work<C>,
) -> Cut {
    let weight = |j: usize| -> f64 { ws.map_or(1.0, |ws| ws[j].to_f64()) };
    let reached = |cum: f64| cum / denom >= target;
    let n = xs.len();
    let mut cum = 0.0;
    w.band.clear();
    if n <= SORT_MAX {
        w.band.extend(0..n);
    } else {
        w.hist.clear();
        w.hist.resize(NB, 0.0);
        for start in (0..n).step_by(BLOCK) {
            w.bhist.clear();
            w.bhist.resize(NB, 0.0);
            for j in start..(start + BLOCK).min(n) {
                w.bhist[z_bucket(xs[j].to_f64(), m, zc)] += weight(j);
            }
            for (t, &b) in w.hist.iter_mut().zip(&w.bhist) {
                *t += b;
            }
        }
        let (b, c) = pick(&w.hist, 0.0, &reached);
        cum = c;
        w.band
            .extend((0..n).filter(|&j| z_bucket(xs[j].to_f64(), m, zc) == b));
    }
    loop {
        let band = &mut w.band;
        let (mut hi, mut lo, mut neg_inf) = (f64::NEG_INFINITY, f64::INFINITY, false);
        for &j in band.iter() {
            let x = xs[j].to_f64();
            hi = hi.max(x);
            if x == f64::NEG_INFINITY {
                neg_inf = true;
            } else {
                lo = lo.min(x);
            }
        }
        if hi == f64::NEG_INFINITY || (hi == lo && !neg_inf) {
            // One logit value: ties go by position, which is the band's order.
            for (r, &j) in band.iter().enumerate() {
                cum += weight(j);
                if reached(cum) {
                    return Cut {
                        value: hi,
                        ties: r + 1,
                    };
                }
            }
            return Cut {
                value: hi,
                ties: band.len(),
            };
        }
        if band.len() <= SORT_MAX {
            band.sort_unstable_by(|&a, &b| {
                xs[b]
                    .to_f64()
                    .partial_cmp(&xs[a].to_f64())
                    .expect("no NaN in a validated row")
                    .then(a.cmp(&b))
            });
            let mut cut = Cut {
                value: f64::NAN,
                ties: 0,
            };
            for &j in band.iter() {
                let x = xs[j].to_f64();
                cut = if x == cut.value {
                    Cut {
                        value: x,
                        ties: cut.ties + 1,
                    }
                } else {
                    Cut { value: x, ties: 1 }
                };
                cum += weight(j);
                if reached(cum) {
                    break;
                }
            }
            return cut;
        }
        // Linear buckets over [lo, hi] (halved so that hi - lo cannot overflow); -inf last.
        // The largest token lands in bucket 0 and the smallest in a later one, so every level
        // shrinks the band.
        let hh = hi * 0.5;
        let scale = NB as f64 / (hh - lo * 0.5);
        let lin = |x: f64| -> usize {
            if x == f64::NEG_INFINITY {
                return NB - 1;
            }
            let b = (hh - x * 0.5) * scale;
            if b >= (NB - 1) as f64 {
                NB - 1
            } else {
                b as usize
            }
        };
        w.hist.clear();
        w.hist.resize(NB, 0.0);
        for &j in band.iter() {
            w.hist[lin(xs[j].to_f64())] += weight(j);
        }
        let (b, c) = pick(&w.hist, cum, &reached);
        cum = c;
        w.band2.clear();
        w.band2
            .extend(band.iter().copied().filter(|&j| lin(xs[j].to_f64()) == b));
        std::mem::swap(&mut w.band, &mut w.band2);
    }
}

/// Copies the tokens of a set that `keep` accepts (called in position order) into `dst`.
fn filter_into<C: Real>(
    xs: &[C],
    idx: Option<&[usize]>,
    ws: Option<&[C]>,
    mut keep: impl FnMut(f64) -> bool,
    dst: &mut Bufs<C>,
) {
    dst.clear();
    for (j, &x) in xs.iter().enumerate() {
        if keep(x.to_f64()) {
            dst.idx.push(idx.map_or(j, |i| i[j]));
            dst.xs.push(x);
            if let Some(ws) = ws {
                dst.ws.push(ws[j]);
            }
        }
    }
}

fn cut_keeper(cut: Cut) -> impl FnMut(f64) -> bool {
    let mut ties = cut.ties;
    move |x| {
        if x > cut.value {
            true
        } else if x == cut.value && ties > 0 {
            ties -= 1;
            true
        } else {
            false
        }
    }
}

/// The smallest logit `y` with `exp((y - m) / T) >= mp` (computed in `f64`): min-p keeps
/// exactly the tokens with logit `>= y`. A binary search over the ordered `f64` bit patterns
/// between `-inf` (fails, as `mp > 0`) and `m` (passes, as `mp <= 1`).
pub(crate) fn min_p_threshold(m: f64, t: f64, mp: f64) -> f64 {
    let pass = |y: f64| ((y - m) / t).exp() >= mp;
    let key = |y: f64| -> u64 {
        let b = y.to_bits();
        if b >> 63 == 1 {
            !b
        } else {
            b | (1 << 63)
        }
    };
    let from_key = |k: u64| -> f64 {
        f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
    };
    let (mut lo, mut hi) = (key(f64::NEG_INFINITY), key(m));
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if pass(from_key(mid)) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    from_key(hi)
}

/// `ws = exp((xs - m) / t)` through the kernel table, block by block.
fn exp_weights<C: Real>(xs: &[C], m: C, t: f64, ws: &mut Vec<C>) {
    let k = kernels::<C>();
    ws.clear();
    ws.resize(xs.len(), C::default());
    for start in (0..xs.len()).step_by(BLOCK) {
        let len = BLOCK.min(xs.len() - start);
        // SAFETY: `xs` and `ws` both hold `xs.len()` elements, the block lies inside both, and
        // they are distinct allocations (one borrowed shared, the other mutably).
        unsafe { (k.exp_store_sum)(xs.as_ptr().add(start), ws.as_mut_ptr().add(start), len, m, t) };
    }
}

/// Sum of a chunk of weights in `f64`, eight lanes, in a fixed order.
#[inline]
fn lane_sum<C: Real>(ws: &[C]) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut it = ws.chunks_exact(8);
    for c in &mut it {
        for l in 0..8 {
            acc[l] += c[l].to_f64();
        }
    }
    for (l, &v) in it.remainder().iter().enumerate() {
        acc[l] += v.to_f64();
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// Total weight of a set: chunk sums of [`CHUNK`] weights, added with compensation in order.
/// Leaves the chunk sums in `chunks` for [`draw`].
fn weight_total<C: Real>(ws: &[C], chunks: &mut Vec<f64>) -> f64 {
    chunks.clear();
    chunks.extend(ws.chunks(CHUNK).map(lane_sum));
    let mut acc = SumAcc::default();
    chunks.iter().for_each(|&c| acc.add(c));
    acc.total()
}

/// Inverse CDF over the set in position order: the first position whose running weight
/// exceeds `u * total`. Never returns a zero-weight position.
fn draw<C: Real>(ws: &[C], chunks: &[f64], total: f64, u: f64) -> usize {
    let target = u * total;
    let mut cum = 0.0;
    let mut last_chunk = None;
    for (c, &cs) in chunks.iter().enumerate() {
        if cs > 0.0 {
            if cum + cs > target {
                let start = c * CHUNK;
                let mut last = None;
                for (i, &wi) in ws[start..(start + CHUNK).min(ws.len())].iter().enumerate() {
                    let wi = wi.to_f64();
                    if wi > 0.0 {
                        last = Some(start + i);
                        cum += wi;
                        if cum > target {
                            return start + i;
                        }
                    }
                }
                // Rounding between the chunk's lane sum and the running sum.
                return last.expect("a chunk with a positive sum has a positive weight");
            }
            cum += cs;
            last_chunk = Some(c);
        }
    }
    // Rounding at u close to 1: the last token with a positive weight.
    let c = last_chunk.expect("the row's maximum has weight 1");
    let start = c * CHUNK;
    let end = (start + CHUNK).min(ws.len());
    (start..end)
        .rev()
        .find(|&i| ws[i].to_f64() > 0.0)
        .expect("a chunk with a positive sum has a positive weight")
}

/// The kept set of one validated row `x` with maximum `m` (finite). With `want_weights`, the
/// weights of the kept set are computed too (in `Work::row_ws` for [`Kept::Row`], in
/// `Work::cur.ws` for [`Kept::List`]).
pub(crate) fn select<C: Real>(
    x: &[C],
    m: C,
    cfg: RowCfg,
    w: &mut Work<C>,
    want_weights: bool,
) -> Kept {
    let v = x.len();
    if cfg.t == 0.0 || cfg.p == 0.0 || cfg.k == 1 || v == 1 {
        let i = x
            .iter()
            .position(|&e| e == m)
            .expect("the maximum is in the row");
        return Kept::Greedy(i);
    }
    let mf = m.to_f64();
    let zc = (1.0 / cfg.t) * (NB as f64 / Z_SPAN);
    let mut list = false;
    let mut have_w = false;
    if cfg.k < v {
        let cut = find_cut(x, None, mf, zc, cfg.k as f64, 1.0, w);
        let mut cur = std::mem::take(&mut w.cur);
        filter_into(x, None, None, cut_keeper(cut), &mut cur);
        w.cur = cur;
        list = true;
    }
    if cfg.p < 1.0 {
        let (xs, mut ws) = if list {
            (std::mem::take(&mut w.cur.xs), std::mem::take(&mut w.cur.ws))
        } else {
            (Vec::new(), std::mem::take(&mut w.row_ws))
        };
        let set: &[C] = if list { &xs } else { x };
        exp_weights(set, m, cfg.t, &mut ws);
        let total = weight_total(&ws, &mut w.chunks);
        let cut = find_cut(set, Some(&ws), mf, zc, cfg.p, total, w);
        let mut alt = std::mem::take(&mut w.alt);
        let idx = std::mem::take(&mut w.cur.idx);
        filter_into(
            set,
            list.then_some(&idx[..]),
            Some(&ws),
            cut_keeper(cut),
            &mut alt,
        );
        // Recycle the buffers.
        w.alt = Bufs { idx, xs, ws: Vec::new() };
        if !list {
            w.row_ws = ws;
        } else {
            w.alt.ws = ws;
        }
        w.cur = alt;
        list = true;
        have_w = true;
    }
    if cfg.mp > 0.0 {
        let thr = min_p_threshold(mf, cfg.t, cfg.mp);
        let mut alt = std::mem::take(&mut w.alt);
        if list {
            let cur = &w.cur;
            filter_into(
                &cur.xs,
                Some(&cur.idx),
                have_w.then_some(&cur.ws[..]),
                |x| x >= thr,
                &mut alt,
            );
            std::mem::swap(&mut w.cur, &mut alt);
            w.alt = alt;
        } else {
            filter_into(x, None, None, |x| x >= thr, &mut alt);
            w.alt = std::mem::replace(&mut w.cur, alt);
        }
        list = true;
    }
    if want_weights && !have_w {
        if list {
            let mut ws = std::mem::take(&mut w.cur.ws);
            exp_weights(&w.cur.xs, m, cfg.t, &mut ws);
            w.cur.ws = ws;
        } else {
            let mut ws = std::mem::take(&mut w.row_ws);
            exp_weights(x, m, cfg.t, &mut ws);
            w.row_ws = ws;
        }
    }
    if list {
        Kept::List
    } else {
        Kept::Row
    }
}

/// Draws one token of a validated row: `(token id, log-probability under the kept set)`.
pub(crate) fn sample_row<C: Real>(x: &[C], m: C, cfg: RowCfg, u: f64, w: &mut Work<C>) -> (usize, f64) {
    match select(x, m, cfg, w, true) {
        Kept::Greedy(i) => (i, 0.0),
        kept => {
            let (ws, idx) = match kept {
                Kept::Row => (&w.row_ws[..], None),
                _ => (&w.cur.ws[..], Some(&w.cur.idx[..])),
            };
            let total = weight_total(ws, &mut w.chunks);
            let j = draw(ws, &w.chunks, total, u);
            let tok = idx.map_or(j, |i| i[j]);
            let logprob = (x[tok].to_f64() - m.to_f64()) / cfg.t - total.ln();
            (tok, logprob)
        }
    }
}

/// Writes the filtered logits of a validated row (contract P7) through `put(token, value)`:
/// kept tokens `x / T` (the greedy token of `T = 0` keeps `x`), the others `-inf`.
pub(crate) fn filter_row<C: Real>(x: &[C], m: C, cfg: RowCfg, w: &mut Work<C>, out: &mut [C]) {
    match select(x, m, cfg, w, false) {
        Kept::Greedy(i) => {
            out.fill(C::NEG_INFINITY);
            out[i] = if cfg.t == 0.0 {
                x[i]
            } else {
                C::from_f64(x[i].to_f64() / cfg.t)
            };
        }
        Kept::Row => {
            for (o, &e) in out.iter_mut().zip(x) {
                *o = C::from_f64(e.to_f64() / cfg.t);
            }
        }
        Kept::List => {
            out.fill(C::NEG_INFINITY);
            for (&i, &e) in w.cur.idx.iter().zip(&w.cur.xs) {
                out[i] = C::from_f64(e.to_f64() / cfg.t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p3_min_p_threshold_is_exact() {
        for &(m, t, mp) in &[(0.0, 1.0, 0.05), (3.5, 0.7, 0.5), (1e30, 1e-30, 0.9), (-2.0, 3.0, 1.0)] {
            let y = min_p_threshold(m, t, mp);
            assert!(((y - m) / t).exp() >= mp);
            let below = if y == 0.0 { -f64::MIN_POSITIVE } else { f64::from_bits(if y > 0.0 { y.to_bits() - 1 } else { y.to_bits() + 1 }) };
            assert!(((below - m) / t).exp() < mp, "{m} {t} {mp}: {y}");
        }
    }
}
