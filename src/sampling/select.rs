//! One row of sampling: the kept set of contract P3 without sorting the vocabulary (P9), and
//! the inverse-CDF draw. See the module documentation of [`crate::sampling`] for the scheme.

use super::hot::{
    at_least_in, compress_at_least, compresses, count_at_least, first_eq, for_each_at_least,
    gather_at_least, hits_at_least, lane_sum, level_masses, mask_below, masked_lane_sum,
    positions_at_least, positions_eq, z_ids, Packed, LEVELS,
};
use super::params::RowCfg;
use crate::element::{is_native, Float, Real};
use crate::error::Result;
use std::ops::Range;

use super::rng::RowRng;
use crate::kernels::{kernels, SumAcc, BLOCK};
use crate::parallel::{
    chunks_mapped_mut, map_chunks_mut, map_ranges, ranges_mapped, zip_chunks_mut,
};
use logit_row::{compress_row_at_least, LogitRow};

pub(crate) mod cutoff;
mod dist;
pub(crate) mod dynatemp;
pub(crate) mod in_place;
pub(crate) mod kept;
mod logit_row;
pub(crate) mod mirostat;
mod nucleus;
mod sampled;
pub(crate) mod sigma;
pub(crate) mod typical;
pub(crate) mod xtc;

pub(crate) use dist::{first_bad_prob, Draft, KeptDist};

/// Buckets of one histogram level.
const NB: usize = 2048;
/// Level 0 buckets `z = (m - x) / T` over `[0, Z_SPAN)` (width `Z_SPAN / NB` = 1/32), the last
/// bucket also holding everything beyond.
const Z_SPAN: f64 = 64.0;
/// Bands of at most this many tokens are sorted instead of bucketed.
const SORT_MAX: usize = 64;
/// Tokens per partial sum of the draw.
const CHUNK: usize = 1024;

/// Why a row gives no token: its logits changed between two reads of them. Rows without a
/// processing stage are read in place, several times, and another thread may write to them
/// during a call (contract R3: then some result or this error, never a hang or a panic).
pub(crate) const CHANGED: &str =
    "changed while it was being read (another thread wrote to the logits during the call)";

/// [`CHANGED`] as an error, its row still unknown ([`UNKNOWN_ROW`]): the caller that knows the
/// row names it.
pub(crate) fn changed() -> crate::Error {
    crate::Error::InvalidRow {
        row: UNKNOWN_ROW,
        problem: CHANGED,
    }
}

/// The row of an error made where the row is not known.
pub(crate) const UNKNOWN_ROW: usize = usize::MAX;

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

    /// Room for `n` tokens in all (their weights too `with_ws`).
    fn reserve(&mut self, n: usize, with_ws: bool) -> Result<()> {
        crate::scratch::reserve(&mut self.idx, n, "a token set")?;
        crate::scratch::reserve(&mut self.xs, n, "a token set")?;
        if with_ws {
            crate::scratch::reserve(&mut self.ws, n, "a token set")?;
        }
        Ok(())
    }

    /// Keeps the tokens whose logit `keep` accepts (called in position order), in place.
    fn retain(&mut self, mut keep: impl FnMut(f64) -> bool)
    where
        C: Real,
    {
        self.retain_with(|_, x, _| keep(x.to_f64()));
    }

    /// Keeps the tokens whose logit is `>= lowest` (not NaN), in place. When few stay, a
    /// vector scan finds them (their positions into `pos`, scratch) and only they are moved;
    /// [`Bufs::retain_with`] moves every token.
    fn retain_at_least(&mut self, lowest: f64, pos: &mut Vec<usize>) -> Result<()>
    where
        C: Real,
    {
        let len = self.idx.len();
        let n = count_at_least(&self.xs, lowest);
        if n == len {
            return Ok(());
        }
        if n * 8 > len {
            self.retain(|x| x >= lowest);
            return Ok(());
        }
        pos.clear();
        crate::scratch::reserve(pos, n, "the kept tokens")?;
        for_each_at_least(&self.xs, at_least_in::<C>(lowest), |j| {
            pos.push(j);
            pos.len() < n
        });
        let with_ws = self.ws.len() == len;
        // Positions ascend and `k <= j`: each token moves down over one already read.
        for (k, &j) in pos.iter().enumerate() {
            self.idx[k] = self.idx[j];
            self.xs[k] = self.xs[j];
            if with_ws {
                self.ws[k] = self.ws[j];
            }
        }
        let kept = pos.len();
        self.idx.truncate(kept);
        self.xs.truncate(kept);
        if with_ws {
            self.ws.truncate(kept);
        }
        Ok(())
    }

    /// Keeps the tokens that `keep(position, logit, weight)` accepts (called once per token,
    /// in position order; the weight is 0 in a set without weights), in place.
    ///
    /// Branch-free: every token is copied to the write position, which moves on only for a
    /// kept one. Which tokens a filter keeps is close to random in position order, and a
    /// branch on it was mispredicted about every other token.
    fn retain_with(&mut self, mut keep: impl FnMut(usize, C, C) -> bool)
    where
        C: Real,
    {
        let len = self.idx.len();
        let mut n = 0;
        if self.ws.len() == len {
            let (idx, xs, ws) = (&mut self.idx[..], &mut self.xs[..len], &mut self.ws[..len]);
            for i in 0..len {
                let (id, x, w) = (idx[i], xs[i], ws[i]);
                let k = keep(i, x, w);
                // `n <= i`: the token at `n` was read (or is this one).
                idx[n] = id;
                xs[n] = x;
                ws[n] = w;
                n += usize::from(k);
            }
            self.ws.truncate(n);
        } else {
            let (idx, xs) = (&mut self.idx[..], &mut self.xs[..len]);
            for i in 0..len {
                let (id, x) = (idx[i], xs[i]);
                let k = keep(i, x, C::default());
                idx[n] = id;
                xs[n] = x;
                n += usize::from(k);
            }
        }
        self.idx.truncate(n);
        self.xs.truncate(n);
    }

    /// Replaces the set with the packed tokens of `set`, their positions offset by `base`.
    fn assign_packed(&mut self, set: &Packed<C>, base: usize) -> Result<()>
    where
        C: Copy,
    {
        self.clear();
        self.append_packed(set, base)
    }

    /// Appends the packed tokens of `set`, their positions offset by `base`.
    fn append_packed(&mut self, set: &Packed<C>, base: usize) -> Result<()>
    where
        C: Copy,
    {
        self.reserve(self.idx.len() + set.ids.len(), true)?;
        self.idx.extend(set.ids.iter().map(|&j| base + j as usize));
        self.xs.extend_from_slice(&set.xs);
        self.ws.extend_from_slice(&set.ws);
        Ok(())
    }

    /// Adds token `id` (logit `x`, weight `w` when the set has weights).
    #[inline]
    fn push(&mut self, id: usize, x: C, w: Option<C>) -> Result<()> {
        crate::scratch::push(&mut self.idx, id, "a token set")?;
        crate::scratch::push(&mut self.xs, x, "a token set")?;
        if let Some(w) = w {
            crate::scratch::push(&mut self.ws, w, "a token set")?;
        }
        Ok(())
    }
}

/// Per-thread scratch, reused across rows.
#[derive(Default)]
pub(crate) struct Work<C> {
    /// The row converted to the compute type (for `f16` input).
    pub conv: Vec<C>,
    /// The row after the processing stages (masks, bias, penalties).
    pub proc: Vec<C>,
    /// For building a row's seen list from its history.
    pub seen: super::history::SeenScratch,
    /// For combining several token masks.
    pub words: Vec<u32>,
    /// The current set when it is a list.
    pub cur: Bufs<C>,
    alt: Bufs<C>,
    /// Weights over the whole row, when the current set is the row.
    pub row_ws: Vec<C>,
    band: Vec<usize>,
    band2: Vec<usize>,
    /// A band's logits (read once) and positions, sorted.
    sorted: Vec<(f64, usize)>,
    /// Positions (in the set) of the tokens equal to the last cut's value that it keeps.
    tie_pos: Vec<usize>,
    cand: Bufs<C>,
    cmax: Vec<C>,
    /// `cmax` holds the current row's chunk maxima (set by [`row_chunk_maxima`] for the row
    /// being drawn, cleared after it).
    cmax_of_row: bool,
    sel: Vec<C>,
    ids: Vec<u16>,
    /// Candidates packed at ln(tau) and at a level ([`nucleus_list`]).
    packed: (Packed<C>, Packed<C>),
    hist: Vec<f64>,
    /// Split the passes over a row across the crate's threads.
    pub par: bool,
    /// The total weight of the row when `chunks` holds its chunk sums (no filter).
    row_total: f64,
    chunks: Vec<f64>,
    /// What XTC would remove under `filter_logits` with `xtc_probability < 1`: the shift of
    /// their scaled logits and their ids (see [`xtc`]).
    pub soft: (f64, Vec<usize>),
    /// The stages' buffers.
    pub stage: kept::StageScratch,
}

impl<C> Work<C> {
    /// The chunk maxima in this scratch are no longer the current row's.
    pub fn forget_chunk_maxima(&mut self) {
        self.cmax_of_row = false;
    }

    /// Elements held by the largest buffers (a bound on what caching this scratch keeps).
    pub fn footprint(&self) -> usize {
        self.conv.capacity()
            + self.proc.capacity()
            + self.seen.footprint()
            + self.row_ws.capacity()
            + self.ids.capacity() / 2
            + 3 * (self.packed.0.ids.capacity() + self.packed.1.ids.capacity())
            + self.cur.idx.capacity()
            + self.alt.idx.capacity()
            + self.cand.idx.capacity()
            + 2 * self.sorted.capacity()
    }
}

/// The tokens a row keeps after temperature and filters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kept {
    /// Exactly one token (temperature 0, top-p 0, top-k 1, or `V = 1`).
    Greedy(usize),
    /// The tokens of the row that `cut` keeps; for `None`, every token. Weights, if asked
    /// for, in `Work::row_ws`. With `None` and weights, `Work::chunks` and `Work::row_total`
    /// hold their chunk sums and total, and a removed token has weight exactly 0 (min-p
    /// applied by masking).
    Row(Option<Cut>),
    /// The tokens of `Work::cur` (weights, if asked for, in `Work::cur.ws`).
    List,
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
/// weight, plus `cum0` (the weight of tokens above the set), reaches `target` (`running weight / denom >= target`, in `f64`). Weights are `ws`,
/// or 1 per token when `ws` is `None` (then `target` is a count).
///
/// Level 0 is a histogram of `z = (m - x) / T` (fixed buckets, summed per block of [`BLOCK`]
/// tokens and then in block order, so the sums do not depend on threads). Only the bucket
/// where the target is crossed is looked at further: histograms linear in the logit over that
/// band's range, until the band is small (sorted) or a run of equal logits (in position order).
#[allow(clippy::too_many_arguments)]
fn find_cut<C: Real>(
    xs: &[C],
    ws: Option<&[C]>,
    m: f64,
    zc: f64,
    target: f64,
    denom: f64,
    cum0: f64,
    w: &mut Work<C>,
) -> Result<Cut> {
    let weight = |j: usize| -> f64 { ws.map_or(1.0, |ws| ws[j].to_f64()) };
    let reached = |cum: f64| cum / denom >= target;
    let n = xs.len();
    let mut cum = cum0;
    w.band.clear();
    if n <= SORT_MAX {
        crate::scratch::reserve(&mut w.band, n, "the cut's band")?;
        w.band.extend(0..n);
    } else {
        w.hist.clear();
        w.hist.resize(NB, 0.0);
        // Every id is overwritten: no need to clear.
        crate::scratch::resize(&mut w.ids, n, 0, "the cut's bucket ids")?;
        // Per block of BLOCK tokens, two interleaved histograms (so that runs of one bucket
        // do not serialise), added in block order: the same sums whatever the threads.
        let hist_block = |(b, ids): (usize, &[u16])| -> Option<Vec<f64>> {
            let start = b * BLOCK;
            let mut h = crate::scratch::filled(2 * NB, 0.0f64, "histograms").ok()?;
            let (h0, h1) = h.split_at_mut(NB);
            let mut pairs = ids.chunks_exact(2);
            let mut j = start;
            for pr in &mut pairs {
                h0[pr[0] as usize] += weight(j);
                h1[pr[1] as usize] += weight(j + 1);
                j += 2;
            }
            if let [id] = pairs.remainder() {
                h0[*id as usize] += weight(j);
            }
            for (a, &b) in h0.iter_mut().zip(h1.iter()) {
                *a += b;
            }
            h.truncate(NB);
            Some(h)
        };
        let par = w.par && n > BLOCK;
        zip_chunks_mut(&mut w.ids, BLOCK, &mut [(); 0], 0, par, |b, ids, _| {
            z_ids(ids, &xs[b * BLOCK..][..ids.len()], m, zc, NB)
        });
        let mut blocks: Vec<Option<Vec<f64>>> = Vec::new();
        let ids = &w.ids;
        map_ranges(n, BLOCK, &mut blocks, par, |b, r| hist_block((b, &ids[r])));
        for h in &blocks {
            let Some(h) = h else {
                return Err(crate::Error::OutOfMemory {
                    what: "histograms",
                    bytes: 2 * NB * std::mem::size_of::<f64>(),
                });
            };
            for (t, &b) in w.hist.iter_mut().zip(h) {
                *t += b;
            }
        }
        let (b, c) = pick(&w.hist, cum, &reached);
        cum = c;
        let b = b as u16;
        if !positions_eq::<C>(&w.ids, b, &mut w.band) {
            return Err(crate::Error::OutOfMemory {
                what: "the cut's band",
                bytes: n.saturating_mul(std::mem::size_of::<usize>()),
            });
        }
    }
    let mut stuck = false;
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
            let mut r = band.len();
            for (i, &j) in band.iter().enumerate() {
                cum += weight(j);
                if reached(cum) {
                    r = i + 1;
                    break;
                }
            }
            w.tie_pos.clear();
            crate::scratch::reserve(&mut w.tie_pos, r, "the kept ties")?;
            w.tie_pos.extend_from_slice(&band[..r]);
            return Ok(Cut { value: hi, ties: r });
        }
        if band.len() <= SORT_MAX || stuck {
            // Each logit is read once: the comparisons then see one consistent set of values
            // even if another thread writes to the row meanwhile (contract R3), and `-0.0` is
            // taken as `0.0` so that the total order ties them, as `==` does.
            let sorted = &mut w.sorted;
            sorted.clear();
            sorted.extend(band.iter().map(|&j| (xs[j].to_f64() + 0.0, j)));
            sorted.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut cut = Cut {
                value: f64::NAN,
                ties: 0,
            };
            let mut end = sorted.len();
            for (i, &(x, j)) in sorted.iter().enumerate() {
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
                    end = i + 1;
                    break;
                }
            }
            // The kept ties are the last `ties` of the kept part, in position order.
            w.tie_pos.clear();
            crate::scratch::reserve(&mut w.tie_pos, cut.ties, "the kept ties")?;
            w.tie_pos
                .extend(sorted[end - cut.ties..end].iter().map(|&(_, j)| j));
            return Ok(cut);
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
        crate::scratch::reserve(&mut w.band2, band.len(), "the cut's band")?;
        w.band2
            .extend(band.iter().copied().filter(|&j| lin(xs[j].to_f64()) == b));
        // A band that did not shrink would loop forever: its range is too narrow for the
        // halved arithmetic (adjacent subnormals), or the row changed under another thread's
        // writes (a `+inf` makes `scale` 0). Sorting it ends the search either way.
        stuck = w.band2.len() >= band.len();
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
) -> Result<()> {
    dst.clear();
    // Pushed one by one: room for every token of `xs` up front would hold up to a whole row
    // when few are kept (contract R1).
    for (j, &x) in xs.iter().enumerate() {
        if keep(x.to_f64()) {
            dst.push(idx.map_or(j, |i| i[j]), x, ws.map(|ws| ws[j]))?;
        }
    }
    Ok(())
}

fn cut_keeper(cut: Cut) -> impl FnMut(f64) -> bool {
    let mut ties = cut.ties;
    // Without a branch on the comparison (see `Bufs::retain_with`).
    move |x| {
        let tie = (x == cut.value) & (ties > 0);
        ties -= usize::from(tie);
        (x > cut.value) | tie
    }
}

/// `(x - m) / t` in `f64`, also where `x - m` overflows (`f64` logits of opposite signs near
/// the type's end, at a temperature large enough to bring their gap back into range): then
/// `x / t - m / t`. The kernels' weights are overflow-safe likewise (contract S5).
#[inline]
pub(crate) fn scaled_gap(x: f64, m: f64, t: f64) -> f64 {
    let d = x - m;
    if d.is_finite() {
        d / t
    } else if x == f64::NEG_INFINITY {
        // Not `x / t - m / t`: with `m / t` overflowing too (a subnormal `t`), `-inf + inf`.
        f64::NEG_INFINITY
    } else {
        x / t - m / t
    }
}

/// The smallest logit `y` with `exp((y - m) / T) >= mp` (computed in `f64`): min-p keeps
/// exactly the tokens with logit `>= y`.
pub(crate) fn min_p_threshold(m: f64, t: f64, mp: f64) -> f64 {
    least_logit_passing(m, |y| scaled_gap(y, m, t).exp() >= mp)
}

/// The smallest logit `y <= m` that `pass` accepts, for a `pass` that is monotone (a larger
/// logit passes when a smaller one does) and rejects `-inf`; `m` when even `m` fails. A binary
/// search over the ordered `f64` bit patterns between them.
pub(crate) fn least_logit_passing(m: f64, pass: impl Fn(f64) -> bool) -> f64 {
    let key = |y: f64| -> u64 {
        let b = y.to_bits();
        if b >> 63 == 1 {
            !b
        } else {
            b | (1 << 63)
        }
    };
    let from_key =
        |k: u64| -> f64 { f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k }) };
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

/// `f` over the ranges of [`BLOCK`] tokens of `0..n` (split across the pool with `par`), its
/// results added in block order: the same value whatever the threads.
pub(crate) fn sum_over_blocks<T: Send + Default + std::iter::Sum>(
    n: usize,
    par: bool,
    f: impl Fn(Range<usize>) -> T + Sync,
) -> T {
    ranges_mapped(n, BLOCK, par && n > BLOCK, |_, r| f(r)).sum()
}

/// `ws = exp((xs - m) / t)` through the kernel table, block by block.
fn exp_weights<C: Real>(xs: &[C], m: C, t: f64, ws: &mut Vec<C>, par: bool) -> Result<f64> {
    let k = kernels::<C>();
    // Every element is overwritten: no need to clear.
    crate::scratch::resize(ws, xs.len(), C::default(), "the weights")?;
    let sums = chunks_mapped_mut(ws, BLOCK, par && xs.len() > BLOCK, |b, d| {
        let s = &xs[b * BLOCK..][..d.len()];
        // SAFETY: `d` and `s` are blocks of equal length of two distinct buffers.
        unsafe { (k.exp_store_sum)(s.as_ptr(), d.as_mut_ptr(), s.len(), m, t) }
    });
    Ok(compensated_total(&sums))
}

/// Total weight of a set: chunk sums of [`CHUNK`] weights, added with compensation in order.
/// Leaves the chunk sums in `chunks` for [`draw`].
fn weight_total<C: Real>(ws: &[C], chunks: &mut Vec<f64>, par: bool) -> Result<f64> {
    per_chunk(ws.len(), chunks, par, |r| lane_sum(&ws[r]))
}

/// The sum of partial sums, added in order with compensation.
fn compensated_total(sums: &[f64]) -> f64 {
    let mut acc = SumAcc::default();
    sums.iter().for_each(|&s| acc.add(s));
    acc.total()
}

/// `chunks[c] = sum(range of chunk c)` over the chunks of [`CHUNK`] tokens of `0..n`, the
/// threads (with `par`) taking [`BLOCK`] tokens at a time; returns the chunk sums' total,
/// added with compensation in order.
fn per_chunk(
    n: usize,
    chunks: &mut Vec<f64>,
    par: bool,
    sum: impl Fn(Range<usize>) -> f64 + Sync,
) -> Result<f64> {
    const PER: usize = BLOCK / CHUNK;
    chunks.clear();
    crate::scratch::resize(chunks, n.div_ceil(CHUNK), 0.0, "chunk sums")?;
    map_chunks_mut(
        chunks,
        PER,
        &mut Vec::<()>::new(),
        par && n > BLOCK,
        |g, sums| {
            for (i, s) in sums.iter_mut().enumerate() {
                let start = (g * PER + i) * CHUNK;
                *s = sum(start..(start + CHUNK).min(n));
            }
        },
    );
    Ok(compensated_total(chunks))
}

/// As [`per_chunk`] over the chunks of `dst`, which `f(start, chunk)` may write.
fn per_chunk_mut<C: Real>(
    dst: &mut [C],
    chunks: &mut Vec<f64>,
    par: bool,
    f: impl Fn(usize, &mut [C]) -> f64 + Sync,
) -> Result<f64> {
    per_block_mut(dst, chunks, par, |start, d, sums| {
        for (i, (dc, s)) in d.chunks_mut(CHUNK).zip(sums).enumerate() {
            *s = f(start + i * CHUNK, dc);
        }
    })
}

/// `f(start, block, sums)` over the blocks of [`BLOCK`] elements of `dst` (in parallel with
/// `par`), `sums` the block's slots in `chunks` (one per chunk of [`CHUNK`]), which `f` fills;
/// returns their compensated total.
fn per_block_mut<C: Real>(
    dst: &mut [C],
    chunks: &mut Vec<f64>,
    par: bool,
    f: impl Fn(usize, &mut [C], &mut [f64]) + Sync,
) -> Result<f64> {
    const PER: usize = BLOCK / CHUNK;
    let n = dst.len();
    chunks.clear();
    crate::scratch::resize(chunks, n.div_ceil(CHUNK), 0.0, "chunk sums")?;
    zip_chunks_mut(dst, BLOCK, chunks, PER, par && n > BLOCK, |g, d, sums| {
        f(g * BLOCK, d, sums)
    });
    Ok(compensated_total(chunks))
}

/// Inverse CDF over the set in position order: the first position whose running weight
/// exceeds `u * total`. Never returns a zero-weight position (`None`: no position has a
/// weight, see [`walk`]).
fn draw<C: Real>(ws: &[C], chunks: &[f64], total: f64, u: f64) -> Option<usize> {
    walk(ws, chunks, total, u, |_| true)
}

/// Inverse CDF over the positions `keep` accepts, from their weights' sums per chunk of
/// [`CHUNK`] (`chunks`) and their total: the first kept position whose running weight exceeds
/// `u * total`. Never returns a zero-weight position. `None` when no position is kept after
/// all, which happens only when `keep` reads logits that another thread changed since the
/// sums were taken (contract R3).
fn walk<C: Real>(
    ws: &[C],
    chunks: &[f64],
    total: f64,
    u: f64,
    keep: impl Fn(usize) -> bool,
) -> Option<usize> {
    let kept = |i: usize| ws[i].to_f64() > 0.0 && keep(i);
    let target = u * total;
    let mut cum = 0.0;
    let mut last_chunk = None;
    for (c, &cs) in chunks.iter().enumerate() {
        if cs > 0.0 {
            let range = c * CHUNK..((c + 1) * CHUNK).min(ws.len());
            if cum + cs > target {
                let mut last = None;
                for i in range.filter(|&i| kept(i)) {
                    last = Some(i);
                    cum += ws[i].to_f64();
                    if cum > target {
                        return Some(i);
                    }
                }
                // Rounding between the chunk's lane sum and the running sum.
                return last;
            }
            cum += cs;
            last_chunk = Some(range);
        }
    }
    // Rounding at u close to 1: the last kept token.
    last_chunk.and_then(|mut r| r.rfind(|&i| kept(i)))
}

/// `chunks[c] = sum(c, ws_c, x_c)` over the chunks of [`CHUNK`] tokens of `ws` and `x`;
/// returns their total, added with compensation in order.
fn chunk_sums<C: Real, X: Sync>(
    x: &[X],
    ws: &[C],
    chunks: &mut Vec<f64>,
    par: bool,
    sum: impl Fn(usize, &[C], &[X]) -> f64 + Sync + Send,
) -> Result<f64> {
    per_chunk(x.len(), chunks, par, |r| {
        sum(r.start / CHUNK, &ws[r.clone()], &x[r])
    })
}

/// Tokens per chunk of the top-k candidate search.
const KCH: usize = 64;

/// Top-k of the row into `w.cur`.
///
/// With `k` at most a quarter of the number of chunks of [`KCH`] tokens: the `k`-th largest
/// chunk maximum `t` bounds the `k`-th largest logit from below (`k` chunks each hold a
/// token `>= t`), so the top `k` are among the tokens `>= t`, all of which lie in the chunks
/// whose maximum is `>= t`. Only those chunks are scanned, and the exact cut is found among
/// the candidates. Otherwise (large `k`), [`find_cut`] over the row.
fn top_k<C: Real>(x: &[C], k: usize, m: f64, zc: f64, w: &mut Work<C>) -> Result<()> {
    let nch = x.len().div_ceil(KCH);
    if k.saturating_mul(4) > nch {
        let mut cur = std::mem::take(&mut w.cur);
        // A large k over a huge row is seconds of passes: Ctrl-C is seen between them (R8).
        let done = find_cut(x, None, m, zc, k as f64, 1.0, 0.0, w)
            .and_then(|cut| interrupted().map(|()| cut))
            .and_then(|cut| filter_into(x, None, None, cut_keeper(cut), &mut cur))
            .and_then(|()| interrupted());
        w.cur = cur;
        return done;
    }
    if !w.cmax_of_row {
        chunk_maxima(x, &mut w.cmax, w.par)?;
    }
    top_k_in_chunks(x, k, m, zc, w)
}

/// `Err(Interrupted)` when the call was told to stop (polls, see [`crate::interrupt`]).
fn interrupted() -> Result<()> {
    if crate::interrupt::poll() {
        return Err(crate::Error::Interrupted);
    }
    Ok(())
}

/// [`top_k`] with a small `k`, from the row's chunk maxima in `w.cmax`; the row `x` read as
/// `X` (its compute type, or a 16-bit type widened a chunk at a time).
pub(crate) fn top_k_in_chunks<X: Float<Compute = C>, C: Real>(
    x: &[X],
    k: usize,
    m: f64,
    zc: f64,
    w: &mut Work<C>,
) -> Result<()> {
    debug_assert_eq!(
        w.cmax.len(),
        x.len().div_ceil(KCH),
        "chunk maxima of another row"
    );
    let t = kth_largest(&w.cmax, k, &mut w.sel)?;
    // At least k chunks reach the row's maximum (a row of equal logits, say): the kept set is
    // the first k tokens at the maximum (ties go to lower ids), gathered alone, not every
    // token of every chunk that holds the maximum and then cut.
    let at_max = !w.cmax.iter().any(|&c| c > t);
    let mut cur = std::mem::take(&mut w.cur);
    let mut cand = std::mem::take(&mut w.cand);
    let done = (|| {
        if at_max {
            return gather_candidates(x, None, &w.cmax, t, k, &mut cur);
        }
        gather_candidates(x, None, &w.cmax, t, usize::MAX, &mut cand)?;
        let cut = find_cut(&cand.xs, None, m, zc, k as f64, 1.0, 0.0, w)?;
        filter_into(&cand.xs, Some(&cand.idx), None, cut_keeper(cut), &mut cur)
    })();
    w.cand = cand;
    w.cur = cur;
    done
}

/// Maxima of the row's chunks of [`KCH`] tokens (ignoring NaN), through the kernel table;
/// returns whether the row holds NaN.
fn chunk_maxima<C: Real>(x: &[C], cmax: &mut Vec<C>, par: bool) -> Result<bool> {
    chunk_maxima_by(x, cmax, par, kernels::<C>().chunk_maxima)
}

/// [`chunk_maxima`] of a row read as `X`, a block at a time through `chunk_maxima` (a kernel
/// table's).
pub(crate) fn chunk_maxima_by<X: Sync, C: Real>(
    x: &[X],
    cmax: &mut Vec<C>,
    par: bool,
    chunk_maxima: fn(&[X], usize, &mut [C]) -> bool,
) -> Result<bool> {
    const PER: usize = BLOCK / KCH;
    cmax.clear();
    crate::scratch::resize(cmax, x.len().div_ceil(KCH), C::default(), "chunk maxima")?;
    let nans = chunks_mapped_mut(cmax, PER, par && x.len() > BLOCK, |g, out| {
        let block = &x[g * BLOCK..(g * BLOCK + BLOCK).min(x.len())];
        chunk_maxima(block, KCH, out)
    });
    Ok(nans.iter().any(|&n| n))
}

/// Whether [`select`] will look at the chunk maxima of a row of `v` tokens under `cfg` (top-k
/// with a small `k`): then the row's maximum is best taken from them, one pass instead of two.
pub(crate) fn wants_chunk_maxima(cfg: &RowCfg, v: usize) -> bool {
    let greedy = cfg.is_greedy(v);
    !greedy && cfg.k < v && cfg.k.saturating_mul(4) <= v.div_ceil(KCH)
}

/// The row's chunk maxima into `w` (as the current row's, until
/// [`Work::forget_chunk_maxima`]), and from them the row's maximum (ignoring NaN) and whether
/// it holds NaN.
pub(crate) fn row_chunk_maxima<C: Real>(x: &[C], w: &mut Work<C>) -> Result<(C, bool)> {
    let nan = chunk_maxima(x, &mut w.cmax, w.par)?;
    w.cmax_of_row = true;
    Ok(((kernels::<C>().max)(&w.cmax).0, nan))
}

/// The `k`-th largest value (`1 <= k <= vals.len()`; no NaN, as chunk maxima ignore it).
///
/// The maxima of `k` disjoint groups are `k` values at least as large as the smallest of
/// them, so the `k` largest are all at least that: the selection runs over the values that
/// reach it (a few times `k` of the 2000 chunk maxima of a 128256-token row), where a
/// selection over all of them mispredicts about every other comparison. Group `j` holds the
/// values at `j`, `j + k`, `j + 2k`, ...: their maxima are lane-wise maxima of consecutive
/// runs of `k` values, which vectorise.
fn kth_largest<C: Real>(vals: &[C], k: usize, sel: &mut Vec<C>) -> Result<C> {
    sel.clear();
    crate::scratch::reserve(sel, vals.len(), "chunk maxima")?;
    sel.extend_from_slice(&vals[..k]);
    for run in vals[k..].chunks_exact(k) {
        for (g, &v) in sel.iter_mut().zip(run) {
            *g = if v > *g { v } else { *g };
        }
    }
    let floor = sel
        .iter()
        .fold(C::INFINITY, |a, &b| if b < a { b } else { a });
    if vals.len() / k >= 16 {
        // Most values fail: a branch per value is well predicted.
        sel.clear();
        sel.extend(vals.iter().filter(|&&v| v >= floor));
    } else {
        // Groups of fewer than 16 make a low floor: about a third of the values fail, in no
        // predictable pattern, so no branch.
        sel.resize(vals.len(), C::default());
        let mut len = 0;
        for &v in vals {
            sel[len] = v;
            len += usize::from(v >= floor);
        }
        sel.truncate(len);
    }
    let (_, &mut t, _) = sel.select_nth_unstable_by(k - 1, |a, b| {
        b.partial_cmp(a).unwrap_or(std::cmp::Ordering::Equal)
    });
    Ok(t)
}

/// The tokens `>= t` (with their weights, if given), scanning only the chunks whose maximum
/// is `>= t`: in token order, the first `at_most` of them.
fn gather_candidates<X: Float<Compute = C>, C: Real>(
    x: &[X],
    ws: Option<&[C]>,
    cmax: &[C],
    t: C,
    at_most: usize,
    cand: &mut Bufs<C>,
) -> Result<()> {
    cand.clear();
    let mut widened = [C::default(); KCH];
    let mut next = 0;
    // The few chunks that reach `t` found by a search of their own (a short loop over the
    // maxima), not by a branch in the loop that gathers.
    while let Some(skip) = cmax[next..].iter().position(|&cm| cm >= t) {
        let c = next + skip;
        next = c + 1;
        let start = c * KCH;
        let xc = chunk_as_compute(&x[start..(start + KCH).min(x.len())], &mut widened);
        // The chunk's few passing tokens from a bit mask, not a branch per token.
        let mut bits = hits_at_least(xc, t);
        while bits != 0 {
            if cand.idx.len() == at_most {
                return Ok(());
            }
            let j = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            cand.push(start + j, xc[j], ws.map(|ws| ws[start + j]))?;
        }
    }
    Ok(())
}

/// A chunk of at most [`KCH`] logits as the compute type: itself, or widened into `buf`.
#[inline]
fn chunk_as_compute<'a, X: Float<Compute = C>, C: Real>(
    xc: &'a [X],
    buf: &'a mut [C; KCH],
) -> &'a [C] {
    if is_native::<X>() {
        // SAFETY: `is_native` says `X` is `C`.
        unsafe { std::slice::from_raw_parts(xc.as_ptr().cast::<C>(), xc.len()) }
    } else {
        X::widen(xc, &mut buf[..xc.len()]);
        &buf[..xc.len()]
    }
}

/// Chunks whose maxima bound the candidates of top-p on a peaked row.
const PEAK_CHUNKS: usize = 32;

/// The top-p cut of the whole row (weights `ws`, total `total`); the kept ties' positions in
/// `w.tie_pos`. On a peaked row, the tokens `>=` the [`PEAK_CHUNKS`]-th largest chunk maximum
/// often hold weight `p` already: then the cut is among them (they are a prefix of the order)
/// and is found from them alone. Otherwise, [`find_cut`] over the row.
fn top_p_row<C: Real>(
    x: &[C],
    ws: &[C],
    total: f64,
    p: f64,
    m: f64,
    zc: f64,
    w: &mut Work<C>,
) -> Result<Cut> {
    let v = x.len();
    let mut cand = std::mem::take(&mut w.cand);
    let cut = (|| {
        // The candidates are at most PEAK_CHUNKS * KCH tokens of weight <= 1: they cannot
        // hold `p * total` when that is larger.
        if v.div_ceil(KCH) >= 4 * PEAK_CHUNKS && p * total <= (PEAK_CHUNKS * KCH) as f64 {
            chunk_maxima(x, &mut w.cmax, w.par)?;
            let t = kth_largest(&w.cmax, PEAK_CHUNKS, &mut w.sel)?;
            gather_candidates(x, Some(ws), &w.cmax, t, usize::MAX, &mut cand)?;
            let mass: f64 = cand.ws.iter().map(|e| e.to_f64()).sum();
            if mass / total >= p {
                let cut = find_cut(&cand.xs, Some(&cand.ws), m, zc, p, total, 0.0, w)?;
                for j in w.tie_pos.iter_mut() {
                    *j = cand.idx[*j];
                }
                return Ok(cut);
            }
        }
        find_cut(x, Some(ws), m, zc, p, total, 0.0, w)
    })();
    w.cand = cand;
    cut
}

/// The more restrictive of two cuts (both keep prefixes of the same order).
fn tighter(a: Option<Cut>, b: Cut) -> Cut {
    match a {
        None => b,
        Some(a) if a.value > b.value || (a.value == b.value && a.ties <= b.ties) => a,
        Some(_) => b,
    }
}

/// The draw over the tokens of the row a cut keeps, without copying them: chunk sums of the
/// weights masked by `x > cut.value` (or `>=` for an inclusive cut, `ties == usize::MAX`),
/// plus the kept tokens equal to the cut value (`ties`, in increasing position), then the
/// inverse CDF in position order. Returns `(token, total kept weight)` (no token: see
/// [`walk`]).
fn draw_row_cut<C: Real>(
    x: &[C],
    ws: &[C],
    cut: Cut,
    ties: &[usize],
    chunks: &mut Vec<f64>,
    u: f64,
    par: bool,
) -> Result<(Option<usize>, f64)> {
    let v = cut.value;
    let incl = cut.ties == usize::MAX;
    let mut acc = SumAcc::default();
    acc.add(chunk_sums(x, ws, chunks, par, |_, wc, xc| {
        masked_lane_sum(wc, xc, v, incl)
    })?);
    for &j in ties {
        chunks[j / CHUNK] += ws[j].to_f64();
        acc.add(ws[j].to_f64());
    }
    let total = acc.total();
    // The kept ties are the first ones by position.
    let last_tie = ties.last().copied();
    let keep = |i: usize| {
        let e = x[i].to_f64();
        e > v || (e == v && (incl || last_tie.is_some_and(|t| i <= t)))
    };
    Ok((walk(ws, chunks, total, u, keep), total))
}

/// The kept set of one validated row `x` with maximum `m` (finite). With `want_weights`, the
/// weights of the kept set are computed too (see [`Kept`]). [`CHANGED`] when the row no longer
/// holds `m`.
///
/// `weighed`: `Some(total)` when `w.row_ws` already holds the row's weights at `cfg.t`,
/// summing to `total` (the top-p draw leaves them there, with its chunked total: the same
/// weights as [`exp_weights`] gives, their sum in another order).
///
/// Top-n-sigma, when it leads the stages of P20-P23, is applied here to the kept set before
/// it is listed, and switched off in `cfg` for [`kept::apply`]: its statistics over the set
/// then take masked passes over the candidates or the row, with no list of the set (on a
/// flat row, most of it).
pub(crate) fn select<C: Real>(
    x: &[C],
    m: C,
    cfg: &mut RowCfg,
    w: &mut Work<C>,
    want_weights: bool,
    weighed: Option<f64>,
) -> Result<Kept> {
    let v = x.len();
    if cfg.is_greedy(v) {
        return first_eq(x, m).map(Kept::Greedy).ok_or_else(changed);
    }
    let zc = cut_zc(cfg.t);
    if cfg.k < v {
        top_k(x, cfg.k, m.to_f64(), zc, w)?;
        return narrow_list(m, *cfg, zc, w, want_weights);
    }
    let mf = m.to_f64();
    // The current set: the row restricted by `row_cut`, or the list `w.cur`.
    let mut list = false;
    let mut row_cut: Option<Cut> = None;
    let mut have_w = false;
    if cfg.p < 1.0 {
        // Usually few tokens are kept: found among candidates as a list. Else, the stages of
        // P20-P23 want the list all the same; otherwise the kept set may be most of the row:
        // kept as a cut of the row.
        let mut ws = std::mem::take(&mut w.row_ws);
        let done = (|| {
            let total = match weighed {
                Some(total) => total,
                None => exp_weights(x, m, cfg.t, &mut ws, w.par)?,
            };
            let any = cfg.has_kept_stages();
            if nucleus_list(x, m, cfg, zc, &ws, total, any, w)? {
                return Ok(None);
            }
            top_p_row(x, &ws, total, cfg.p, mf, zc, w).map(Some)
        })();
        w.row_ws = ws;
        match done? {
            None => list = true,
            Some(cut) => row_cut = Some(cut),
        }
        have_w = true;
    }
    if cfg.mp > 0.0 {
        let thr = min_p_threshold(mf, cfg.t, cfg.mp);
        if list {
            min_p_of_list(thr, have_w, w)?;
        } else if have_w {
            let t = tighter(
                row_cut,
                Cut {
                    value: thr,
                    ties: usize::MAX,
                },
            );
            row_cut = Some(t);
        } else {
            let mut alt = std::mem::take(&mut w.alt);
            let count: usize = sum_over_blocks(v, w.par, |r| count_at_least(&x[r], thr));
            if want_weights && min_p_masks_row(count, v) {
                // Many tokens pass: weights over the row, those below the threshold exactly 0
                // (the exp of -inf), beat copying the tokens. The kernel's chunk sums are then
                // the draw's, and `Kept::Row(None)` draws from them.
                let mut ws = std::mem::take(&mut w.row_ws);
                let total = masked_weights(v, m, cfg.t, &mut ws, &mut w.chunks, w.par, |at, d| {
                    mask_below(&x[at..][..d.len()], thr, d)
                });
                w.row_ws = ws;
                w.alt = alt;
                w.row_total = total?;
                return Ok(Kept::Row(None));
            }
            // Few tokens pass: only they need weights.
            alt.clear();
            if let Err(e) = alt.reserve(count + 1, false) {
                w.alt = alt;
                return Err(e);
            }
            gather_at_least(x, thr, count, &mut alt.idx, &mut alt.xs);
            w.alt = std::mem::replace(&mut w.cur, alt);
            list = true;
        }
    }
    if list {
        return finish_list(m, cfg.t, w, want_weights, have_w);
    }
    if cfg.sigma_leads() {
        // The kept set is every finite token, or those the cut keeps.
        let cut = row_cut.unwrap_or(Cut {
            value: lowest_finite::<C>(),
            ties: usize::MAX,
        });
        if let Some(lowest) = sigma::least_kept_of_cut(x, cut, mf, cfg) {
            row_cut = Some(Cut {
                value: lowest,
                ties: usize::MAX,
            });
        }
        cfg.n_sigma = 0.0;
    }
    if want_weights && !have_w {
        // No filter: the kernel's sums per chunk are the draw's chunk sums.
        let mut ws = std::mem::take(&mut w.row_ws);
        let total = exp_weights_chunked(x, m, cfg.t, &mut ws, &mut w.chunks, w.par);
        w.row_ws = ws;
        w.row_total = total?;
    }
    Ok(Kept::Row(row_cut))
}

/// The lowest finite value of `C`, in `f64` (`x >= it` is `x` finite and not NaN).
pub(crate) fn lowest_finite<C: Real>() -> f64 {
    if std::mem::size_of::<C>() == 4 {
        // f64::MIN would round to -inf.
        f64::from(f32::MIN)
    } else {
        f64::MIN
    }
}

/// Whether min-p alone, `count` of `v` tokens passing, draws from the row's weights with the
/// others' masked to 0 (many pass: cheaper than copying them) rather than from a list of them.
fn min_p_masks_row(count: usize, v: usize) -> bool {
    count * 32 > v
}

/// The weights of a row of `v` tokens whose logits `mask(start, chunk)` writes into each
/// chunk of `ws` (`-inf` for the tokens min-p removes, so that their weight is exactly 0),
/// exponentiated in place while the chunk is in cache; the kernel's sum per chunk in
/// `chunks`; returns their total.
fn masked_weights<C: Real>(
    v: usize,
    m: C,
    t: f64,
    ws: &mut Vec<C>,
    chunks: &mut Vec<f64>,
    par: bool,
    mask: impl Fn(usize, &mut [C]) + Sync,
) -> Result<f64> {
    let k = kernels::<C>();
    crate::scratch::resize(ws, v, C::default(), "the weights")?;
    per_chunk_mut(ws, chunks, par, |start, d| {
        mask(start, d);
        let p = d.as_mut_ptr();
        // SAFETY: in place (the kernels allow `src == dst`) over one chunk borrowed mutably.
        unsafe { (k.exp_store_sum)(p, p, d.len(), m, t) }
    })
}

/// `zc` of [`find_cut`] at temperature `t`: buckets per unit of scaled logit.
pub(crate) fn cut_zc(t: f64) -> f64 {
    (1.0 / t) * (NB as f64 / Z_SPAN)
}

/// [`select`] after top-k, whose kept set is the list `w.cur`: top-p and min-p on it, then
/// its weights when wanted.
pub(crate) fn narrow_list<C: Real>(
    m: C,
    cfg: RowCfg,
    zc: f64,
    w: &mut Work<C>,
    want_weights: bool,
) -> Result<Kept> {
    let mf = m.to_f64();
    let have_w = cfg.p < 1.0;
    if have_w {
        let mut ws = std::mem::take(&mut w.cur.ws);
        let xs = std::mem::take(&mut w.cur.xs);
        let idx = std::mem::take(&mut w.cur.idx);
        let mut alt = std::mem::take(&mut w.alt);
        let done = (|| {
            exp_weights(&xs, m, cfg.t, &mut ws, w.par)?;
            let total = weight_total(&ws, &mut w.chunks, w.par)?;
            let cut = find_cut(&xs, Some(&ws), mf, zc, cfg.p, total, 0.0, w)?;
            filter_into(&xs, Some(&idx), Some(&ws), cut_keeper(cut), &mut alt)
        })();
        w.alt = Bufs { idx, xs, ws };
        w.cur = alt;
        done?;
    }
    if cfg.mp > 0.0 {
        min_p_of_list(min_p_threshold(mf, cfg.t, cfg.mp), have_w, w)?;
    }
    finish_list(m, cfg.t, w, want_weights, have_w)
}

/// Min-p's threshold `thr` on the list `w.cur` (whose weights are kept along when `have_w`).
fn min_p_of_list<C: Real>(thr: f64, have_w: bool, w: &mut Work<C>) -> Result<()> {
    let mut alt = std::mem::take(&mut w.alt);
    let cur = &w.cur;
    let done = filter_into(
        &cur.xs,
        Some(&cur.idx),
        have_w.then_some(&cur.ws[..]),
        |x| x >= thr,
        &mut alt,
    );
    if done.is_ok() {
        std::mem::swap(&mut w.cur, &mut alt);
    }
    w.alt = alt;
    done
}

/// The list `w.cur` as the kept set, its weights at temperature `t` computed when wanted and
/// not yet there.
fn finish_list<C: Real>(
    m: C,
    t: f64,
    w: &mut Work<C>,
    want_weights: bool,
    have_w: bool,
) -> Result<Kept> {
    if want_weights && !have_w {
        let mut ws = std::mem::take(&mut w.cur.ws);
        let done = exp_weights(&w.cur.xs, m, t, &mut ws, w.par);
        w.cur.ws = ws;
        done?;
    }
    Ok(Kept::List)
}

/// The levels [`nucleus_list`] and [`packed_candidates`] look for top-p's candidates at.
///
/// Every token of the nucleus has weight `>= tau = (1 - p) * total / (2 V)`: the tokens below
/// `tau` weigh less than `(1 - p) * total / 2` together, so the tokens at or above it, a prefix
/// of the order, already hold more than `p` of the total. Tighter: the highest of eight levels
/// of the scaled logit, evenly spaced from the maximum down to `ln(tau)`, whose tokens hold
/// `enough = p + (1 - p) / 20` of the total (the margin is for the order of additions). The
/// levels' masses are added partly in f32: a set's own mass is checked in f64 and, if short,
/// the set is that of `ln(tau)`, which always holds enough (`x >= m + T ln(tau)` is `w >= tau`
/// up to rounding, which the factor 1/2 absorbs).
struct NucleusLevels {
    /// `ln(tau)`.
    floor: f64,
    /// The weight the candidates must hold.
    enough: f64,
    gaps: [f64; LEVELS],
    /// The logits `m + T gap`.
    levels: [f64; LEVELS],
}

impl NucleusLevels {
    fn new(m: f64, t: f64, p: f64, total: f64, v: usize) -> NucleusLevels {
        let tau = 0.5 * (1.0 - p) * total / v as f64;
        let floor = tau.ln();
        let gaps: [f64; LEVELS] = std::array::from_fn(|k| floor * (k + 1) as f64 / LEVELS as f64);
        NucleusLevels {
            floor,
            enough: (p + 0.05 * (1.0 - p)) * total,
            gaps,
            levels: gaps.map(|z| m + t * z),
        }
    }

    /// The highest level whose mass (in the order of `levels`) is enough; else `ln(tau)`.
    fn highest_enough(&self, masses: [f64; LEVELS]) -> f64 {
        self.gaps
            .iter()
            .zip(masses)
            .find(|&(_, s)| s >= self.enough)
            .map_or(self.floor, |(&z, _)| z)
    }
}

/// The logit at or below which gap `z` starts, lowered a little so that it stays at or below
/// the level in `C`: more candidates are harmless, fewer would not be.
fn at_least_gap<C: Real>(m: f64, t: f64, z: f64) -> C {
    let thr = m + t * z;
    C::from_f64(thr - thr.abs() * 1e-6)
}

/// The estimated share of a row above which [`packed_candidates`] does not try to pack a
/// level's tokens (the packing gives up past a quarter of the row).
const MAX_PACKED_SHARE: f64 = 0.22;

/// Top-p's candidates packed in vector passes (see [`NucleusLevels`]): the tokens of row `x`
/// (weights `ws`, maximum `m`, temperature `t`) at or above a level, a prefix of the order
/// that holds at least `p` of `total`, with their positions and weights, into `pre` (`sel`:
/// scratch); returns the level's gap `z < 0` (the tokens have `x >= m + t z`, a little
/// lowered). `None` (and `pre` let go, so that the scratch stays a few rows: contract R1)
/// when there is no vector path or the levels' tokens are over a quarter of the row. The row
/// is read as stored (see [`LogitRow`]), packed a block at a time on the threads when `par`.
#[allow(clippy::too_many_arguments)]
fn packed_candidates<C: Real, X: LogitRow<C> + ?Sized>(
    x: &X,
    ws: &[C],
    m: f64,
    t: f64,
    lv: &NucleusLevels,
    total: f64,
    pre: &mut Packed<C>,
    sel: &mut Packed<C>,
    par: bool,
) -> Result<Option<f64>> {
    let v = x.len();
    if !compresses::<C>(v) {
        return Ok(None);
    }
    // Most often a sample of the row shows a level close above the cut: the tokens at or
    // above it, packed in one pass, if they hold enough (checked exactly: a guess). The
    // sample (left in `sel`) also shows when a level's tokens are too many to pack (on a flat
    // row), so that the packing is not tried in vain.
    let level = sampled::sampled_level(x, ws, m, t, lv.floor, total - lv.enough, sel)?;
    let too_many = |sample: &Packed<C>, thr: C| {
        sampled::share_at_least(x, sample, thr).is_some_and(|s| s > MAX_PACKED_SHARE)
    };
    if let Some(z) = level {
        let thr = at_least_gap(m, t, z);
        if !too_many(sel, thr)
            && compress_row_at_least(x, ws, thr, v / 4, pre, par)?
            && lane_sum(&pre.ws) >= lv.enough
        {
            return Ok(Some(z));
        }
    }
    // Else usually a small part of the row is at or above ln(tau): packed first, the levels
    // are taken over it alone.
    let thr = at_least_gap(m, t, lv.floor);
    if too_many(sel, thr) || !compress_row_at_least(x, ws, thr, v / 4, pre, par)? {
        *pre = Packed::default();
        return Ok(None);
    }
    let lo = lv.highest_enough(level_masses(&pre.ws, &pre.xs, &lv.levels));
    if lo != lv.floor
        && compress_at_least(
            &pre.xs,
            &pre.ws,
            Some(&pre.ids),
            at_least_gap(m, t, lo),
            v,
            sel,
        )?
        && lane_sum(&sel.ws) >= lv.enough
    {
        std::mem::swap(pre, sel);
        return Ok(Some(lo));
    }
    Ok(Some(lv.floor))
}

/// The scale of [`find_cut`]'s first histogram for candidates at or above gap `z < 0`: the
/// row's (`zc`, buckets of 1/32 in `(m - x) / t`), or finer, so that the candidates' range
/// spans the buckets and the bucket where `p` is crossed holds few of them.
fn candidates_zc(zc: f64, t: f64, z: f64) -> f64 {
    let fine = NB as f64 / (-z * t);
    if fine.is_finite() {
        zc.max(fine)
    } else {
        zc
    }
}

/// Top-n-sigma, leading the stages, on the kept set that candidates `xs` hold at top-p's `cut`
/// and min-p's threshold when on (min-p comes first, and the two cuts keep prefixes of the
/// same order): the least logit it keeps, `None` when it keeps them all (see
/// [`sigma::least_kept_of_cut`]). Switches it off in `cfg`. Min-p's filter of the list later
/// keeps every token at or above that logit.
fn sigma_of_candidates<C: Real>(xs: &[C], cut: Cut, m: f64, cfg: &mut RowCfg) -> Option<f64> {
    let kept = if cfg.mp > 0.0 {
        let thr = min_p_threshold(m, cfg.t, cfg.mp);
        tighter(
            Some(cut),
            Cut {
                value: thr,
                ties: usize::MAX,
            },
        )
    } else {
        cut
    };
    let lowest = sigma::least_kept_of_cut(xs, kept, m, cfg);
    cfg.n_sigma = 0.0;
    lowest
}

/// Top-p's kept set of the row as the list `w.cur` with its weights, the row's weights `ws`
/// summing to `total`: the cut is found among candidates (usually a small part of the row;
/// see [`NucleusLevels`]) with the row's total as the denominator, the same prefix as the cut
/// over the row. When the candidates are not packed in vector passes (too many, or no vector
/// path): with `any`, gathered all the same from a row stored as `C` (without a vector path,
/// those at the sample's level first); else `false`, and nothing is kept. Top-n-sigma, when
/// it leads the stages, is applied to the candidates' kept set before it is listed (and
/// switched off in `cfg`); when they are over a quarter of the row, the list is not made for
/// it (`false`: see [`select`]).
#[allow(clippy::too_many_arguments)]
fn nucleus_list<C: Real, X: LogitRow<C> + ?Sized>(
    x: &X,
    m: C,
    cfg: &mut RowCfg,
    zc: f64,
    ws: &[C],
    total: f64,
    any: bool,
    w: &mut Work<C>,
) -> Result<bool> {
    let (v, mf) = (LogitRow::len(x), m.to_f64());
    let mut cand = std::mem::take(&mut w.cand);
    let (mut pre, mut sel) = std::mem::take(&mut w.packed);
    let done = (|| {
        let lv = NucleusLevels::new(mf, cfg.t, cfg.p, total, v);
        if let Some(z) = packed_candidates(x, ws, mf, cfg.t, &lv, total, &mut pre, &mut sel, w.par)?
        {
            let zc = candidates_zc(zc, cfg.t, z);
            let cut = find_cut(&pre.xs, Some(&pre.ws), mf, zc, cfg.p, total, 0.0, w)?;
            if cfg.sigma_leads() {
                if let Some(lowest) = sigma_of_candidates(&pre.xs, cut, mf, cfg) {
                    let at = at_least_in::<C>(lowest);
                    let kept =
                        compress_at_least(&pre.xs, &pre.ws, Some(&pre.ids), at, v, &mut sel)?;
                    cand.assign_packed(if kept { &sel } else { &pre }, 0)?;
                    if !kept {
                        cand.retain(|x| x >= lowest);
                    }
                    return Ok(true);
                }
            }
            // When the cut keeps every token equal to its value (ties cut in two are rare),
            // it is a threshold, compressed as the candidates were.
            let value = C::from_f64(cut.value);
            let all_ties = pre.xs.iter().filter(|&&x| x == value).count() == cut.ties;
            let kept = all_ties
                && compress_at_least(&pre.xs, &pre.ws, Some(&pre.ids), value, v, &mut sel)?;
            cand.assign_packed(if kept { &sel } else { &pre }, 0)?;
            if !kept {
                cand.retain(cut_keeper(cut));
            }
            return Ok(true);
        }
        let (true, Some(x)) = (any, x.as_compute()) else {
            return Ok(false);
        };
        // Top-n-sigma's set on a flat row is most of it: taken over the row, with no list
        // (see `select`).
        let floor = at_least_gap::<C>(mf, cfg.t, lv.floor).to_f64();
        if cfg.sigma_leads() && count_at_least(x, floor) > v / 4 {
            return Ok(false);
        }
        // Too many, or no vector path for the packing. Without one, the sample's level first,
        // as the packing takes it: the levels over the row are coarser, and every token they
        // hold is gathered.
        let mut from = None;
        if !compresses::<C>(v) {
            let allowed = total - lv.enough;
            if let Some(z) = sampled::sampled_level(x, ws, mf, cfg.t, lv.floor, allowed, &mut sel)?
            {
                gather_candidates_at_least(x, ws, at_least_gap(mf, cfg.t, z), &mut sel, &mut cand)?;
                from = (lane_sum(&cand.ws) >= lv.enough).then_some(z);
            }
        }
        if from.is_none() {
            let lo = lv.highest_enough(level_masses(ws, x, &lv.levels));
            for z in [lo, lv.floor] {
                gather_candidates_at_least(x, ws, at_least_gap(mf, cfg.t, z), &mut sel, &mut cand)?;
                if z == lv.floor || lane_sum(&cand.ws) >= lv.enough {
                    break;
                }
            }
        }
        let zc = from.map_or(zc, |z| candidates_zc(zc, cfg.t, z));
        let cut = find_cut(&cand.xs, Some(&cand.ws), mf, zc, cfg.p, total, 0.0, w)?;
        // In place: a copy would hold the kept list and the candidates at once (R1).
        match cfg
            .sigma_leads()
            .then(|| sigma_of_candidates(&cand.xs, cut, mf, cfg))
        {
            Some(Some(lowest)) => cand.retain(|x| x >= lowest),
            _ => cand.retain(cut_keeper(cut)),
        }
        Ok(true)
    })();
    w.packed = (pre, sel);
    if let Ok(true) = done {
        // The candidates, cut, are the current set.
        w.cand = std::mem::replace(&mut w.cur, cand);
    } else {
        w.cand = cand;
    }
    done
}

/// The tokens of row `x` at or above `thr`, with their weights from `ws`, into `cand`
/// (`packed`: scratch).
fn gather_candidates_at_least<C: Real>(
    x: &[C],
    ws: &[C],
    thr: C,
    packed: &mut Packed<C>,
    cand: &mut Bufs<C>,
) -> Result<()> {
    cand.clear();
    // A block at a time: the scratch stays small (contract R1), the candidates grow as `Vec`s
    // do.
    const BLOCK: usize = 4096;
    let mut vector = true;
    for (b, (xb, wb)) in x.chunks(BLOCK).zip(ws.chunks(BLOCK)).enumerate() {
        if !compress_at_least(xb, wb, None, thr, xb.len(), packed)? {
            vector = false;
            break;
        }
        cand.append_packed(packed, b * BLOCK)?;
    }
    if vector {
        return Ok(());
    }
    cand.clear();
    let count = count_at_least(x, thr.to_f64());
    cand.reserve(count, true)?;
    if !positions_at_least(x, thr, &mut cand.idx) {
        return Err(crate::Error::OutOfMemory {
            what: "the candidates",
            bytes: count.saturating_mul(std::mem::size_of::<usize>()),
        });
    }
    // At most `count` (another thread may write to the row meanwhile: contract R3).
    cand.idx.truncate(count);
    cand.xs.extend(cand.idx.iter().map(|&j| x[j]));
    cand.ws.extend(cand.idx.iter().map(|&j| ws[j]));
    Ok(())
}

/// [`exp_weights`] keeping the kernel's sum of each chunk of [`CHUNK`] tokens in `chunks`
/// (one kernel call per block); returns their total.
fn exp_weights_chunked<C: Real>(
    xs: &[C],
    m: C,
    t: f64,
    ws: &mut Vec<C>,
    chunks: &mut Vec<f64>,
    par: bool,
) -> Result<f64> {
    // SAFETY: the kernel is the table's for this CPU, over logits of `C`.
    unsafe {
        exp_weights_chunked_by(
            xs,
            m,
            t,
            ws,
            chunks,
            par,
            kernels::<C>().exp_store_chunk_sums,
        )
    }
}

/// `exp_store_chunk_sums(src, dst, n, m, t, chunk, sums)` of a kernel table: logits of type
/// `X` to weights of type `C` (see [`Kernels::exp_store_chunk_sums`](crate::kernels::Kernels)).
pub(crate) type ExpChunkSums<X, C> = unsafe fn(*const X, *mut C, usize, C, f64, usize, *mut f64);

/// [`exp_weights_chunked`] with the kernel `kernel`, which reads the logits as `X`.
///
/// # Safety
/// `kernel` is the `exp_store_chunk_sums` of a kernel table for this CPU (its other
/// requirements, on the buffers, are met here).
pub(crate) unsafe fn exp_weights_chunked_by<X: Sync, C: Real>(
    xs: &[X],
    m: C,
    t: f64,
    ws: &mut Vec<C>,
    chunks: &mut Vec<f64>,
    par: bool,
    kernel: ExpChunkSums<X, C>,
) -> Result<f64> {
    crate::scratch::resize(ws, xs.len(), C::default(), "the weights")?;
    per_block_mut(ws, chunks, par, |start, d, sums| {
        let s = &xs[start..][..d.len()];
        debug_assert_eq!(sums.len(), d.len().div_ceil(CHUNK));
        // SAFETY: `kernel` is a table's for this CPU (# Safety); `d` and `s` are blocks of
        // equal length of two distinct buffers, and `sums` holds one value per chunk of the
        // block.
        unsafe {
            kernel(
                s.as_ptr(),
                d.as_mut_ptr(),
                s.len(),
                m,
                t,
                CHUNK,
                sums.as_mut_ptr(),
            )
        }
    })
}

/// One row's draw: the token, its log-probability under the kept set (NaN unless asked
/// for), and the number of tokens kept (0 unless asked for).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowDraw {
    pub tok: usize,
    pub logprob: f64,
    pub kept: usize,
    /// The kept set is the list in `Work::cur`, after a stage of P20-P23 (it need not be a
    /// prefix of the order (logit descending, id ascending)).
    pub listed: bool,
    /// The kept set is the list in `Work::cur` (after a stage or not).
    pub in_list: bool,
}

/// Draws one token of a validated row with the uniforms of `rng`. With `with_logprob`, the
/// log-probability under the kept set and the kept set's size are computed too. The token
/// does not depend on `with_logprob`.
///
/// Top-p without top-k (and epsilon, eta or XTC alone after it) draws by rejection ([`nucleus`]), which
/// needs no cut; the cut (for the log-probability's normaliser, or after too many rejections)
/// is found as for every filter.
/// [`CHANGED`] when the row changed under another thread's writes so that nothing is kept.
pub(crate) fn sample_row<C: Real>(
    x: &[C],
    m: C,
    cfg: RowCfg,
    rng: &mut RowRng,
    with_logprob: bool,
    w: &mut Work<C>,
) -> Result<RowDraw> {
    let v = x.len();
    let mut tok = None;
    let mut weighed = None;
    // XTC's coin is the stream's first uniform; when it says no, the row is drawn as without
    // XTC (by rejection, with no list, when no other stage is on).
    let mut cfg = cfg;
    let mut coin = kept::Coin::Tossed(false);
    if cfg.xtc_q > 0.0 && !cfg.is_greedy(v) {
        let on = rng.uniform() < cfg.xtc_q;
        coin = kept::Coin::Tossed(on);
        if !on {
            cfg.xtc_q = 0.0;
        }
    }
    let staged = cfg.has_kept_stages();
    let mut undecided = None;
    if (!staged || cfg.has_rejection_stage_only())
        && cfg.t > 0.0
        && cfg.p > 0.0
        && cfg.p < 1.0
        && cfg.k >= v
        && v > 1
    {
        let d = nucleus::draw_nucleus(x, m, cfg, rng, w)?;
        (tok, undecided, weighed) = (d.tok, d.undecided, Some(d.total));
        if tok.is_some() && !with_logprob {
            return Ok(RowDraw {
                tok: tok.unwrap_or_default(),
                logprob: f64::NAN,
                kept: 0,
                listed: false,
                in_list: false,
            });
        }
    }
    let mut kept = select(x, m, &mut cfg, w, true, weighed)?;
    if staged {
        kept = kept::apply(x, m, cfg, kept, coin, w)?;
    }
    if let Kept::Greedy(i) = kept {
        return Ok(RowDraw {
            tok: i,
            logprob: 0.0,
            kept: 1,
            listed: false,
            in_list: false,
        });
    }
    // A token epsilon's or eta's bounds left undecided is the draw if the kept set holds it; if not,
    // it is a rejection like the others, and the set is drawn from anew.
    if let (Some(j), Kept::List) = (undecided, kept) {
        tok = w.cur.idx.contains(&j).then_some(j);
    }
    let u = if tok.is_some() { 0.0 } else { rng.uniform() };
    let (drawn, total) = match kept {
        Kept::List => draw_from_list(w, u)?,
        Kept::Row(None) => (draw(&w.row_ws, &w.chunks, w.row_total, u), w.row_total),
        Kept::Row(Some(cut)) => {
            let ties: &[usize] = if cut.ties == usize::MAX {
                &[]
            } else {
                &w.tie_pos
            };
            draw_row_cut(x, &w.row_ws, cut, ties, &mut w.chunks, u, w.par)?
        }
        Kept::Greedy(_) => unreachable!(),
    };
    let tok = tok.or(drawn).ok_or_else(changed)?;
    let in_list = kept == Kept::List;
    let listed = staged && in_list;
    if !with_logprob {
        return Ok(RowDraw {
            tok,
            logprob: f64::NAN,
            kept: 0,
            listed,
            in_list,
        });
    }
    let kept = match kept {
        Kept::List => w.cur.idx.len(),
        // Every token, or (min-p applied by masking) those with a non-zero weight.
        Kept::Row(None) => {
            if cfg.mp > 0.0 {
                count_at_least(x, min_p_threshold(m.to_f64(), cfg.t, cfg.mp))
            } else {
                v
            }
        }
        Kept::Row(Some(cut)) => {
            if cut.ties == usize::MAX {
                count_at_least(x, cut.value)
            } else {
                count_above(x, cut.value) + cut.ties
            }
        }
        Kept::Greedy(_) => unreachable!(),
    };
    let mut logprob = scaled_gap(x[tok].to_f64(), m.to_f64(), cfg.t) - total.ln();
    if listed {
        // A kept set without the row's maximum: the weights' rounding (f32 for f32 logits)
        // could put a lone token's log-probability a hair above 0.
        logprob = if kept == 1 { 0.0 } else { logprob.min(0.0) };
    }
    Ok(RowDraw {
        tok,
        logprob,
        kept,
        listed,
        in_list,
    })
}

/// The token of the kept list `w.cur` at uniform `u` (`None`: the row changed, see [`walk`]),
/// and the list's total weight.
pub(crate) fn draw_from_list<C: Real>(w: &mut Work<C>, u: f64) -> Result<(Option<usize>, f64)> {
    let total = weight_total(&w.cur.ws, &mut w.chunks, w.par)?;
    let i = draw(&w.cur.ws, &w.chunks, total, u);
    Ok((i.map(|i| w.cur.idx[i]), total))
}

/// The number of tokens `> v`.
pub(crate) fn count_above<C: Real>(x: &[C], v: f64) -> usize {
    let up = if v == f64::INFINITY {
        return 0;
    } else {
        next_up(v)
    };
    count_at_least(x, up)
}

fn next_up(v: f64) -> f64 {
    if v.is_nan() || v == f64::INFINITY {
        v
    } else if v == 0.0 {
        f64::from_bits(1)
    } else if v > 0.0 {
        f64::from_bits(v.to_bits() + 1)
    } else {
        f64::from_bits(v.to_bits() - 1)
    }
}

/// The first `n` tokens of a validated row (maximum `m`) in the order (logit descending, id
/// ascending). Uses the top-k selection, so no sort of the row. [`CHANGED`] when the row no
/// longer holds `m`.
pub(crate) fn top_in_order<C: Real>(
    x: &[C],
    m: C,
    n: usize,
    w: &mut Work<C>,
) -> Result<Vec<usize>> {
    let v = x.len();
    let n = n.min(v);
    let ids: Vec<usize> = if n == 0 {
        Vec::new()
    } else if n == v {
        crate::scratch::collected(v, 0..v, "top_logprobs order")?
    } else if n == 1 {
        vec![first_eq(x, m).ok_or_else(changed)?]
    } else {
        let zc = NB as f64 / Z_SPAN;
        top_k(x, n, m.to_f64(), zc, w)?;
        std::mem::take(&mut w.cur.idx)
    };
    // Sorted by logits read once: a comparison that read the row again could see another
    // thread's writes and contradict an earlier one, which the sort may answer with a panic
    // (contract R3). `-0.0` is taken as `0.0`, as `==` takes it.
    let keys = ids.iter().map(|&j| (x[j].to_f64() + 0.0, j));
    let mut keyed = crate::scratch::collected(ids.len(), keys, "top_logprobs order")?;
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let order = keyed.iter().map(|&(_, j)| j);
    crate::scratch::collected(keyed.len(), order, "top_logprobs order")
}

/// Writes the filtered logits of a validated row (contract P7) to `out`: kept tokens `x / T`
/// (the greedy token of `T = 0` keeps `x`), the others `-inf`. When a kept `x / T` (or the
/// greedy `x`) would not be finite in the output type (its largest finite value is `limit`),
/// every kept token of the row gets `(x - m) / T` instead (at least `-limit`; 0 for the
/// greedy token): finite, and softmax, which is blind to a shift, gives the same distribution
/// (a value clamped at `-limit` has probability 0 either way). [`CHANGED`] when the row changed under another thread's writes so that
/// nothing is kept.
pub(crate) fn filter_row<C: Real>(
    x: &[C],
    m: C,
    cfg: RowCfg,
    w: &mut Work<C>,
    out: &mut [C],
    limit: f64,
) -> Result<()> {
    let (t, mf) = (cfg.t, m.to_f64());
    let ninf = f64::NEG_INFINITY;
    // A kept token whose logit is `-inf` (masked, within a top-k beyond the finite tokens)
    // stays `-inf`: its probability is 0 either way.
    let fits = |e: f64| e == ninf || (e / t).abs() <= limit;
    let scaled = |e: C| C::from_f64(e.to_f64() / t);
    let shifted = |e: C| match e.to_f64() {
        e if e == ninf => C::NEG_INFINITY,
        e => C::from_f64(scaled_gap(e, mf, t).max(-limit)),
    };
    let staged = cfg.has_kept_stages();
    let mut cfg = cfg;
    let mut kept = select(x, m, &mut cfg, w, staged, None)?;
    if staged {
        kept = kept::apply(x, m, cfg, kept, kept::Coin::Filter, w)?;
    }
    match kept {
        Kept::Greedy(i) => {
            // `x[i]` is `m` (found by its value): `m` is not read again.
            out.fill(C::NEG_INFINITY);
            let unscaled = t == 0.0;
            out[i] = if unscaled && mf.abs() <= limit {
                m
            } else if !unscaled && fits(mf) {
                scaled(m)
            } else {
                C::from_f64(0.0)
            };
        }
        Kept::Row(cut) => {
            let cut = cut.unwrap_or(Cut {
                value: ninf,
                ties: usize::MAX,
            });
            let mut keep = cut_keeper(cut);
            let (mut kept, mut all_fit) = (false, true);
            for (o, &e) in out.iter_mut().zip(x) {
                let ef = e.to_f64();
                let k = keep(ef);
                kept |= k && ef > ninf;
                all_fit &= !k || fits(ef);
                *o = if k { scaled(e) } else { C::NEG_INFINITY };
            }
            if !kept {
                return Err(changed());
            }
            if !all_fit {
                let mut keep = cut_keeper(cut);
                for (o, &e) in out.iter_mut().zip(x) {
                    if keep(e.to_f64()) {
                        *o = shifted(e);
                    }
                }
            }
        }
        Kept::List => {
            let cur = &w.cur;
            if !cur.xs.iter().any(|e| e.to_f64() > ninf) {
                return Err(changed());
            }
            out.fill(C::NEG_INFINITY);
            let all_fit = cur.xs.iter().all(|&e| fits(e.to_f64()));
            for (&i, &e) in cur.idx.iter().zip(&cur.xs) {
                out[i] = if all_fit { scaled(e) } else { shifted(e) };
            }
            // XTC's tokens under q < 1 (see `xtc`): shifted down, at least -limit.
            if staged {
                let (shift, ids) = &w.soft;
                for &i in ids {
                    out[i] = C::from_f64((out[i].to_f64() + shift).max(-limit));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `kth_largest` against a sort, on values with ties and `-inf`, every `k`.
    #[test]
    fn kth_largest_is_the_sorted_kth() {
        let mut sel = Vec::new();
        let mut state = 12345u64;
        for n in [1usize, 2, 3, 7, 50, 64, 2004] {
            for ties in [3u64, 1000] {
                let vals: Vec<f32> = (0..n)
                    .map(|_| {
                        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                        match (state >> 33) % (ties + 1) {
                            0 => f32::NEG_INFINITY,
                            r => r as f32 - 0.5 * ties as f32,
                        }
                    })
                    .collect();
                let mut sorted = vals.clone();
                sorted.sort_by(|a, b| b.partial_cmp(a).unwrap());
                for k in 1..=n {
                    let t = kth_largest(&vals, k, &mut sel).unwrap();
                    assert_eq!(t, sorted[k - 1], "n={n} ties={ties} k={k}");
                }
            }
        }
    }

    /// `retain_at_least`, which moves only the kept tokens when few stay, keeps what the
    /// branch-free pass over every token keeps: `f32` and `f64` sets with and without
    /// weights, ties and `-inf`, thresholds keeping none, a few, most and all, at lengths
    /// around the vector widths.
    #[test]
    fn p21_retain_at_least_is_the_pass_over_every_token() {
        fn check<C: Real>(u: &mut impl FnMut() -> f64) {
            let mut pos = Vec::new();
            for len in [0usize, 1, 7, 15, 16, 17, 63, 64, 65, 300, 4961] {
                for with_ws in [false, true] {
                    let mut set = Bufs::<C>::default();
                    for j in 0..len {
                        let x = match u() {
                            r if r < 0.02 => C::NEG_INFINITY,
                            r if r < 0.3 => C::from_f64((u() * 8.0).floor()),
                            _ => C::from_f64(u() * 20.0 - 10.0),
                        };
                        let w = with_ws.then(|| C::from_f64(u()));
                        set.push(3 * j + 1, x, w).unwrap();
                    }
                    let copy = || Bufs {
                        idx: set.idx.clone(),
                        xs: set.xs.clone(),
                        ws: set.ws.clone(),
                    };
                    for lowest in [f64::INFINITY, 9.5, 7.0, 6.0 + 1e-12, 3.0, -9.9, -1e300] {
                        let (mut fast, mut slow) = (copy(), copy());
                        fast.retain_at_least(lowest, &mut pos).unwrap();
                        slow.retain(|x| x >= lowest);
                        let ctx = format!("len {len} ws {with_ws} lowest {lowest}");
                        assert_eq!(fast.idx, slow.idx, "{ctx}");
                        assert!(fast.xs.iter().zip(&slow.xs).all(|(a, b)| a == b), "{ctx}");
                        assert_eq!(fast.xs.len(), slow.xs.len(), "{ctx}");
                        assert!(fast.ws.iter().zip(&slow.ws).all(|(a, b)| a == b), "{ctx}");
                        assert_eq!(fast.ws.len(), slow.ws.len(), "{ctx}");
                    }
                }
            }
        }
        let mut u = crate::sampling::test_units::units(0x9E37_79B9_7F4A_7C15);
        check::<f32>(&mut u);
        check::<f64>(&mut u);
    }

    /// The nucleus gathered for the stages of P20-P23 (from candidates even where they are
    /// too many to pack) is the kept set of top-p alone (a list of packed candidates, or a
    /// cut of the row).
    #[test]
    fn p20_nucleus_list_is_the_row_cut() {
        let mut u = crate::sampling::test_units::units(0x2545F4914F6CDD1D);
        for case in 0..60 {
            let v = [10, 500, 5000, 70000][case % 4];
            let scale = [0.1, 1.0, 3.0, 8.0, 30.0][case % 5];
            // Every third case on a coarse grid: ties at the cut, kept whole or in part.
            let grid = if case % 3 == 2 { 0.25 } else { 0.0 };
            let x: Vec<f32> = (0..v)
                .map(|_| (u() + u() + u() - 1.5) * 2.0 * scale)
                .map(|e| if grid > 0.0 { (e / grid).round() * grid } else { e } as f32)
                .collect();
            let m = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            for &(t, p) in &[
                (0.8, 0.95),
                (1.0, 0.5),
                (0.5, 0.999),
                (2.0, 0.1),
                (1.0, 0.999_999),
            ] {
                let plain = crate::SamplingParams::default()
                    .temperature(t)
                    .top_p(p)
                    .row(0, v);
                let mut staged = plain;
                staged.xtc_q = 1e-12;
                let mut w = Work::<f32>::default();
                let kept: Vec<usize> =
                    match select(&x, m, &mut { plain }, &mut w, false, None).unwrap() {
                        Kept::List => w.cur.idx.clone(),
                        Kept::Row(Some(cut)) => {
                            let mut keep = cut_keeper(cut);
                            (0..v).filter(|&j| keep(x[j] as f64)).collect()
                        }
                        Kept::Greedy(i) => vec![i],
                        k => panic!("{k:?}"),
                    };
                let mut w2 = Work::<f32>::default();
                match select(&x, m, &mut { staged }, &mut w2, true, None).unwrap() {
                    Kept::List => assert_eq!(w2.cur.idx, kept, "case {case} t {t} p {p}"),
                    Kept::Greedy(i) => assert_eq!(vec![i], kept),
                    k => panic!("{k:?}"),
                }
            }
        }
    }

    /// Top-p's kept set as [`select`] finds it (among packed candidates as a list where the
    /// vector path is, else on a peaked row from chunk maxima, else over the row) is the cut
    /// over every token of the row (its slow twin, [`find_cut`] over the row), with the same
    /// kept ties: vocabulary-sized rows flat to peaked (the packing tried, given up on a flat
    /// row, or skipped), ties at the cut on a coarse grid, `-inf` entries, `f32` and `f64`,
    /// the weights computed by `select` or given (as the top-p draw leaves them).
    #[test]
    fn p3_top_p_kept_set_is_the_cut_over_the_row() {
        fn check<C: Real>(u: &mut impl FnMut() -> f64) {
            for case in 0..30 {
                let v = [128_256, 40_000, 16_500][case % 3];
                let scale = [0.3, 1.0, 3.0, 8.0, 30.0][case % 5];
                let grid = if case % 4 == 3 { 0.25 } else { 0.0 };
                let x: Vec<C> = (0..v)
                    .map(|_| {
                        let e = (u() + u() + u() - 1.5) * 2.0 * scale;
                        let e = if grid > 0.0 {
                            (e / grid).round() * grid
                        } else {
                            e
                        };
                        if u() < 0.01 {
                            C::NEG_INFINITY
                        } else {
                            C::from_f64(e)
                        }
                    })
                    .collect();
                let m = x
                    .iter()
                    .copied()
                    .fold(C::NEG_INFINITY, |a, b| if b > a { b } else { a });
                for &(t, p) in &[(0.8, 0.95), (1.0, 0.5), (0.5, 0.999), (2.0, 0.1)] {
                    let ctx = format!("case {case} v {v} scale {scale} t {t} p {p}");
                    let (mf, zc) = (m.to_f64(), (1.0 / t) * (NB as f64 / Z_SPAN));
                    let mut w = Work::<C>::default();
                    let (mut ws, mut chunks) = (Vec::new(), Vec::new());
                    let total = exp_weights_chunked(&x, m, t, &mut ws, &mut chunks, false).unwrap();
                    let cut = find_cut(&x, Some(&ws), mf, zc, p, total, 0.0, &mut w).unwrap();
                    let ties = w.tie_pos.clone();
                    let want: Vec<usize> = (0..v)
                        .filter(|&j| {
                            let e = x[j].to_f64();
                            e > cut.value
                                || e == cut.value && (cut.ties == usize::MAX || ties.contains(&j))
                        })
                        .collect();
                    let cfg = crate::SamplingParams::default()
                        .temperature(t)
                        .top_p(p)
                        .row(0, v);
                    for given in [false, true] {
                        let mut w = Work::<C>::default();
                        if given {
                            w.row_ws = ws.clone();
                        }
                        let weighed = given.then_some(total);
                        let kept = match select(&x, m, &mut { cfg }, &mut w, true, weighed).unwrap()
                        {
                            Kept::List => w.cur.idx.clone(),
                            Kept::Row(Some(cut)) => {
                                let mut keep = cut_keeper(cut);
                                let tied = |j: usize| w.tie_pos.contains(&j);
                                (0..v)
                                    .filter(|&j| {
                                        let e = x[j].to_f64();
                                        keep(e)
                                            && (e != cut.value || cut.ties == usize::MAX || tied(j))
                                    })
                                    .collect()
                            }
                            k => panic!("{ctx}: {k:?}"),
                        };
                        assert_eq!(kept, want, "{ctx} given {given}");
                    }
                }
            }
        }
        let mut u = crate::sampling::test_units::units(0x1234_5678_9ABC_DEF1);
        check::<f32>(&mut u);
        check::<f64>(&mut u);
    }

    #[test]
    fn p3_min_p_threshold_is_exact() {
        for &(m, t, mp) in &[
            (0.0, 1.0, 0.05),
            (3.5, 0.7, 0.5),
            (1e30, 1e-30, 0.9),
            (-2.0, 3.0, 1.0),
        ] {
            let y = min_p_threshold(m, t, mp);
            assert!(((y - m) / t).exp() >= mp);
            let below = if y == 0.0 {
                -f64::MIN_POSITIVE
            } else {
                f64::from_bits(if y > 0.0 {
                    y.to_bits() - 1
                } else {
                    y.to_bits() + 1
                })
            };
            assert!(((below - m) / t).exp() < mp, "{m} {t} {mp}: {y}");
        }
    }
}
