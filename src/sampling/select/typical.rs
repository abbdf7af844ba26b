//! `typical_p` (contract P20; Meier et al. 2023, Hugging Face's TypicalLogitsWarper,
//! llama.cpp's typical sampler): keeps the fewest tokens, in the order of `|-ln p - H|`
//! ascending (lower id first among equal ones), whose probability reaches `typical_p`. `H` is
//! the entropy (nats) of the kept distribution; probabilities are renormalised over the kept
//! set. It may remove the most probable token.
//!
//! "Reaches" is `>=` (the token that crosses `typical_p` is kept, as top-p's), where llama.cpp
//! stops at the first running sum `> p`.
//!
//! The cut is found without sorting the set ([`prefix_by_key`]): histograms of the keys over
//! a shrinking band, as top-p's cut; [`prefix_by_key_sorted`] is its slow twin, which sorts.

use super::kept::Ctx;
use super::{pick, NB, SORT_MAX};
use crate::element::Real;
use crate::error::Result;
use crate::sampling::hot::{lane_extremes, positions_eq, z_ids};

pub(super) fn apply<C: Real>(ctx: &mut Ctx<'_, C>) -> Result<()> {
    let p = ctx.cfg.typical;
    if p >= 1.0 {
        return Ok(());
    }
    let total = ctx.total();
    let lns = ctx.ln_ws()?;
    let h = ctx.entropy(total, &lns);
    let ln_s = total.ln();
    // -ln p = ln S - ln w.
    // The keys in place of the ln w they come from.
    let mut keys = lns;
    keys.iter_mut().for_each(|l| *l = (ln_s - *l - h).abs());
    let cut = prefix_by_key(&keys, &ctx.set.ws, p, total, &mut ctx.scratch.cut)?;
    let mut ties = cut.ties;
    // Without a branch on the key: on a flat row the kept band is most of a long list, and
    // which tokens fall in it is unpredictable.
    ctx.retain(|i, _| {
        let k = keys[i];
        let tie = (k == cut.value) & (ties > 0);
        ties -= usize::from(tie);
        (k < cut.value) | tie
    });
    ctx.keep_ln_ws(keys);
    Ok(())
}

/// Buffers of [`prefix_by_key`], kept between rows.
#[derive(Default)]
pub(crate) struct CutScratch {
    ids: Vec<u16>,
    hist: Vec<f64>,
    hist2: Vec<f64>,
    band: Vec<usize>,
    next: Vec<usize>,
}

/// A prefix of a set in the order (key ascending, position ascending): the positions with
/// key `< value`, and the first `ties` (by position) of those with key `== value`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct KeyCut {
    pub value: f64,
    pub ties: usize,
}

/// The shortest prefix of `0..keys.len()` in the order (key ascending, position ascending)
/// whose weight `ws` reaches `target` (`running weight / total >= target`); the whole set
/// when rounding keeps the running weight below it. Keys are finite.
///
/// Histograms of the weights over 2048 linear buckets of the band's key range find the bucket
/// where `target` is crossed, which becomes the band, until the band holds at most
/// [`SORT_MAX`] tokens (sorted) or a single key (ties by position).
pub(crate) fn prefix_by_key<W: Real>(
    keys: &[f64],
    ws: &[W],
    target: f64,
    total: f64,
    sc: &mut CutScratch,
) -> Result<KeyCut> {
    let reached = |cum: f64| cum / total >= target;
    let n = keys.len();
    // The first band is every position: its bounds, bucket ids and histogram are taken over
    // the keys in order (in lanes, without indirection), which is most of the work.
    let CutScratch {
        ids,
        hist,
        hist2,
        band,
        next,
    } = sc;
    band.clear();
    let mut all = true;
    crate::scratch::resize(hist, NB, 0.0, "typical_p's histogram")?;
    crate::scratch::resize(hist2, NB, 0.0, "typical_p's histogram")?;
    let mut cum = 0.0;
    let mut stuck = false;
    loop {
        let (lo, hi) = if all {
            lane_extremes(keys)
        } else {
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for &j in band.iter() {
                lo = lo.min(keys[j]);
                hi = hi.max(keys[j]);
            }
            (lo, hi)
        };
        let size = if all { n } else { band.len() };
        if lo == hi || size <= SORT_MAX || stuck {
            if all {
                crate::scratch::reserve(band, n, "typical_p's band")?;
                band.extend(0..n);
            }
            if lo != hi {
                return walk_sorted(keys, ws, band, cum, &reached);
            }
            // One key: ties go by position, the band's order.
            let mut r = band.len();
            for (i, &j) in band.iter().enumerate() {
                cum += ws[j].to_f64();
                if reached(cum) {
                    r = i + 1;
                    break;
                }
            }
            return Ok(KeyCut { value: lo, ties: r });
        }
        let scale = NB as f64 / (hi - lo);
        let top = (NB - 1) as f64;
        let bucket = |k: f64| -> usize {
            // In [0, NB - 1] (NaN, from `0 * inf`, gives 0), as `z_ids` computes it.
            let b = ((k - lo) * scale).max(0.0).min(top);
            // SAFETY: `b` is finite and in [0, NB - 1].
            unsafe { b.to_int_unchecked::<i32>() as usize }
        };
        hist.iter_mut().for_each(|h| *h = 0.0);
        next.clear();
        if all {
            // Every id is overwritten.
            crate::scratch::resize(ids, n, 0u16, "typical_p's bucket ids")?;
            // `(lo - k) * -scale` is `(k - lo) * scale`.
            z_ids::<f64>(ids, keys, lo, -scale, NB);
            add_to_histogram(hist, hist2, ids, ws);
            let (b, c) = pick(hist, cum, &reached);
            cum = c;
            if !positions_eq::<f64>(ids, b as u16, next) {
                return Err(crate::Error::OutOfMemory {
                    what: "typical_p's band",
                    bytes: n.saturating_mul(std::mem::size_of::<usize>()),
                });
            }
            all = false;
            stuck = next.len() >= n;
        } else {
            for &j in band.iter() {
                hist[bucket(keys[j])] += ws[j].to_f64();
            }
            let (b, c) = pick(hist, cum, &reached);
            cum = c;
            crate::scratch::reserve(next, band.len(), "typical_p's band")?;
            next.extend(band.iter().copied().filter(|&j| bucket(keys[j]) == b));
            stuck = next.len() >= band.len();
        }
        std::mem::swap(band, next);
    }
}

/// `hist[ids[j]] += ws[j]` for every `j`, in two interleaved histograms (`h1` zeroed here)
/// added at the end (so that a run of one bucket does not make each addition wait for the
/// one before).
fn add_to_histogram<W: Real>(hist: &mut [f64], h1: &mut [f64], ids: &[u16], ws: &[W]) {
    h1.fill(0.0);
    let mut pairs = ids.chunks_exact(2).zip(ws.chunks_exact(2));
    for (i, w) in &mut pairs {
        hist[i[0] as usize] += w[0].to_f64();
        h1[i[1] as usize] += w[1].to_f64();
    }
    if ids.len() % 2 == 1 {
        let j = ids.len() - 1;
        hist[ids[j] as usize] += ws[j].to_f64();
    }
    for (a, b) in hist.iter_mut().zip(h1.iter()) {
        *a += b;
    }
}

/// Sorts `band` by (key, position) and walks it from `cum` until `reached`.
fn walk_sorted<W: Real>(
    keys: &[f64],
    ws: &[W],
    band: &[usize],
    mut cum: f64,
    reached: &impl Fn(f64) -> bool,
) -> Result<KeyCut> {
    let pairs = band.iter().map(|&j| (keys[j], j));
    let mut sorted = crate::scratch::collected(band.len(), pairs, "typical_p's order")?;
    sorted.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut cut = KeyCut {
        value: f64::NAN,
        ties: 0,
    };
    for &(k, j) in &sorted {
        cut = if k == cut.value {
            KeyCut {
                value: k,
                ties: cut.ties + 1,
            }
        } else {
            KeyCut { value: k, ties: 1 }
        };
        cum += ws[j].to_f64();
        if reached(cum) {
            break;
        }
    }
    Ok(cut)
}

/// [`prefix_by_key`]'s slow twin: a sort of the whole set.
#[cfg(test)]
pub(crate) fn prefix_by_key_sorted(keys: &[f64], ws: &[f64], target: f64, total: f64) -> KeyCut {
    let all: Vec<usize> = (0..keys.len()).collect();
    walk_sorted(keys, ws, &all, 0.0, &|c: f64| c / total >= target).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test's data for a seed.
    fn gen(seed: u64) -> impl FnMut() -> f64 {
        crate::sampling::test_units::units(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1)
    }

    #[test]
    fn p20_prefix_by_key_matches_its_sorting_twin() {
        for seed in 0..200u64 {
            let mut u = gen(seed);
            let n = [1, 3, 60, 65, 500, 5000][seed as usize % 6];
            // Coarse keys make ties; some weights are 0.
            let coarse = seed % 3 == 0;
            let keys: Vec<f64> = (0..n)
                .map(|_| {
                    if coarse {
                        (u() * 8.0).floor()
                    } else {
                        u() * 30.0
                    }
                })
                .collect();
            let ws: Vec<f64> = (0..n).map(|_| if u() < 0.05 { 0.0 } else { u() }).collect();
            let total: f64 = ws.iter().sum();
            for &target in &[1e-9, 0.1, 0.5, 0.9, 0.999] {
                let fast =
                    prefix_by_key(&keys, &ws, target, total, &mut Default::default()).unwrap();
                let slow = prefix_by_key_sorted(&keys, &ws, target, total);
                // The kept sets are equal (the band's running sum is added per bucket, which
                // can differ from the sorted running sum only within rounding of the target).
                let kept = |c: KeyCut| -> Vec<usize> {
                    let mut t = c.ties;
                    (0..n)
                        .filter(|&j| {
                            keys[j] < c.value
                                || (keys[j] == c.value && t > 0 && {
                                    t -= 1;
                                    true
                                })
                        })
                        .collect()
                };
                assert_eq!(kept(fast), kept(slow), "seed {seed} n {n} target {target}");
            }
        }
    }
}
