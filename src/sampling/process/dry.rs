//! DRY, "Don't Repeat Yourself" (contract P24): llama.cpp's `llama_sampler_dry_apply` over the
//! row's output tokens, after the penalties of P13.
//!
//! Over the row's last `dry_penalty_last_n` output tokens (`-1`: all of them), for every
//! earlier position whose tokens end with the same `n` tokens as the history does
//! (`n >= dry_allowed_length`), the token that followed there would extend that repeat: it
//! loses `dry_multiplier * dry_base^(n - dry_allowed_length)` from its logit, `n` the longest
//! such repeat. As in llama.cpp:
//!
//! - a repeat never reaches back across a sequence breaker (the restart limit: the distance
//!   from the end to the last breaker of the history), and a breaker is never penalised;
//! - the repeat lengths come from the Z-algorithm over the reversed history, so a row costs
//!   time linear in its history (a [`Sampler`](crate::Sampler) step is not quadratic in it);
//! - the exponent is clamped to `88.7228391 / ln(dry_base)` when `dry_base > 1.000001`;
//! - the penalty is computed in `f64` from the parameters rounded to the processing type and
//!   rounded to it (llama.cpp's `float * std::pow(float, int)`), then subtracted in the
//!   processing type.
//!
//! Where llama.cpp's `float` would overflow (a logit becoming `-inf`, which could leave a row
//! without a finite logit), the logit becomes the processing type's lowest finite value.

use std::cell::RefCell;

use super::{BoxedStage, RowCtx, Stage};
use crate::element::Real;
use crate::error::Result;
use crate::sampling::params::{RowParam, SamplingParams};

/// llama.cpp's `FLOAT_MAX_LOG`, about `ln(f32::MAX)`.
const FLOAT_MAX_LOG: f32 = 88.722_84;

struct Dry<'p> {
    multiplier: &'p RowParam<f64>,
    base: &'p RowParam<f64>,
    allowed: &'p RowParam<i64>,
    last_n: &'p RowParam<i64>,
    /// The sequence breakers, sorted, without duplicates.
    breakers: Vec<u32>,
}

/// Whether DRY is on for a row with these parameters (llama.cpp's early return; `dry_base`
/// below 1 is refused by validation).
fn on(multiplier: f64, last_n: i64) -> bool {
    multiplier != 0.0 && last_n != 0
}

pub(super) fn stage<C: Real>(
    p: &SamplingParams,
    _vocab: usize,
) -> Result<Option<BoxedStage<'_, C>>> {
    // Present when some row has it on (each row is checked again when applied). The lengths
    // were validated; `min` keeps a bad one from panicking all the same.
    let (m, n) = (p.dry_multiplier.values(), p.dry_penalty_last_n.values());
    let on_some =
        (0..m.len().max(n.len())).any(|r| on(m[r.min(m.len() - 1)], n[r.min(n.len() - 1)]));
    if !on_some {
        return Ok(None);
    }
    let b = &p.dry_sequence_breakers;
    let mut breakers = crate::scratch::collected(b.len(), b.iter().copied(), "DRY's breakers")?;
    breakers.sort_unstable();
    breakers.dedup();
    Ok(Some(Box::new(Dry {
        multiplier: &p.dry_multiplier,
        base: &p.dry_base,
        allowed: &p.dry_allowed_length,
        last_n: &p.dry_penalty_last_n,
        breakers,
    })))
}

/// Per-thread scratch: the repeat counts and the `(token, repeat)` pairs of a row.
#[derive(Default)]
struct Scratch {
    counts: Vec<usize>,
    pairs: Vec<(u32, usize)>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// The tokens that would extend a repeat of `history` and the longest such repeat of each,
/// by llama.cpp's DRY (steps 1-3 of `llama_sampler_dry_apply`), into `pairs` sorted by token,
/// one per token; breakers (sorted) are left out. `counts` is scratch.
fn repeats(
    history: &[u32],
    allowed: usize,
    breakers: &[u32],
    counts: &mut Vec<usize>,
    pairs: &mut Vec<(u32, usize)>,
) -> Result<()> {
    pairs.clear();
    let n = history.len();
    if n <= allowed {
        return Ok(());
    }
    // `at(i)`: the `i`-th token from the end (llama.cpp's `last_tokens.rat(i)`).
    let at = |i: usize| history[n - 1 - i];
    let is_breaker = |t: u32| breakers.binary_search(&t).is_ok();
    // Step 1: a repeat reaches back at most to the last breaker (single-token breakers: the
    // restart sequence is the breaker alone).
    let rep_limit = (0..n).find(|&i| is_breaker(at(i))).unwrap_or(n);
    if rep_limit < allowed {
        return Ok(());
    }
    // Step 2: the Z-algorithm over the reversed history: `counts[n - 1 - k]` is the length of
    // the longest common prefix of the reversed history and its suffix from `k`, that is, how
    // many tokens the history's end repeats ending at position `n - 1 - k`, clamped to
    // `rep_limit`.
    counts.clear();
    crate::scratch::resize(counts, n, 0, "DRY's repeat counts")?;
    let last = n - 1;
    let (mut lt, mut rt) = (0usize, 0usize);
    for k in 1..n {
        if k > rt {
            let mut m = 0;
            while m + k < n && at(m) == at(m + k) {
                m += 1;
            }
            counts[last - k] = m.min(rep_limit);
            if m > 0 {
                lt = k;
                rt = k + m - 1;
            }
        } else {
            let p = k - lt;
            let right_part_len = rt - k + 1;
            if counts[last - p] < right_part_len {
                counts[last - k] = counts[last - p].min(rep_limit);
            } else {
                let mut i = rt + 1;
                while i < n && at(i) == at(i - k) {
                    i += 1;
                }
                counts[last - k] = (i - k).min(rep_limit);
                lt = k;
                rt = i - 1;
            }
        }
    }
    // Step 3: the token after each repeat long enough would extend it; the longest per token.
    crate::scratch::reserve(pairs, n - 1, "DRY's penalised tokens")?;
    for (i, &len) in counts[..last].iter().enumerate() {
        if len >= allowed {
            let token = history[i + 1];
            if !is_breaker(token) {
                pairs.push((token, len));
            }
        }
    }
    // By token, the longest repeat first; then one per token.
    pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    pairs.dedup_by_key(|p| p.0);
    Ok(())
}

/// llama.cpp's largest exponent for `base` (0: no clamp), computed in the processing type.
fn max_exponent<C: Real>(base: C) -> usize {
    let b = base.to_f64();
    let q = if std::mem::size_of::<C>() == 4 {
        // As llama.cpp: `float / std::log(float)`, truncated.
        f64::from(FLOAT_MAX_LOG / (b as f32).ln())
    } else {
        f64::from(FLOAT_MAX_LOG) / b.ln()
    };
    if b > 1.000_001 {
        q as usize
    } else {
        0
    }
}

impl<C: Real> Stage<C> for Dry<'_> {
    fn try_apply(&self, row: usize, ctx: &RowCtx<'_>, z: &mut [C]) -> Result<()> {
        let (multiplier, last_n) = (self.multiplier.get(row), self.last_n.get(row));
        if !on(multiplier, last_n) {
            return Ok(());
        }
        let out = ctx.output;
        let history = match usize::try_from(last_n) {
            Ok(k) if k < out.len() => &out[out.len() - k..],
            _ => out,
        };
        // Validated >= 0; a length beyond the history's disables the row.
        let allowed = usize::try_from(self.allowed.get(row)).unwrap_or(usize::MAX);
        SCRATCH.with(|cell| {
            let s = &mut *cell.borrow_mut();
            let found = repeats(
                history,
                allowed,
                &self.breakers,
                &mut s.counts,
                &mut s.pairs,
            );
            let r = found.map(|()| self.penalise(row, allowed, multiplier, &s.pairs, z));
            // Kept between rows and calls only while small (contract R1: a long history's
            // counts are not held on to).
            if s.counts.capacity() > KEEP {
                *s = Scratch::default();
            }
            r
        })
    }
}

/// The most scratch elements kept by a thread between rows.
const KEEP: usize = 1 << 16;

impl Dry<'_> {
    /// Step 4 of llama.cpp: each token of `pairs` loses its penalty.
    fn penalise<C: Real>(
        &self,
        row: usize,
        allowed: usize,
        multiplier: f64,
        pairs: &[(u32, usize)],
        z: &mut [C],
    ) {
        if pairs.is_empty() {
            return;
        }
        let m = C::from_f64(multiplier).to_f64();
        let base = C::from_f64(self.base.get(row));
        let max_exp = max_exponent(base);
        let lowest = C::from_f64(if std::mem::size_of::<C>() == 4 {
            f64::from(f32::MIN)
        } else {
            f64::MIN
        });
        for &(token, len) in pairs {
            let mut exp = len - allowed;
            if max_exp > 0 && exp > max_exp {
                exp = max_exp;
            }
            let penalty = C::from_f64(m * base.to_f64().powf(exp as f64));
            let e = &mut z[token as usize];
            let v = *e - penalty;
            // A finite logit stays finite (llama.cpp's float would overflow to -inf).
            *e = if v == C::NEG_INFINITY && *e != C::NEG_INFINITY {
                lowest
            } else {
                v
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The repeats by direct suffix matching (quadratic): the reference for the Z-algorithm.
    fn slow(history: &[u32], allowed: usize, breakers: &[u32]) -> Vec<(u32, usize)> {
        let n = history.len();
        if n <= allowed {
            return Vec::new();
        }
        let limit = (0..n)
            .find(|&i| breakers.contains(&history[n - 1 - i]))
            .unwrap_or(n);
        if limit < allowed {
            return Vec::new();
        }
        let mut best = std::collections::BTreeMap::new();
        for end in 0..n - 1 {
            let mut len = 0;
            while len <= end && history[end - len] == history[n - 1 - len] {
                len += 1;
            }
            let len = len.min(limit);
            let t = history[end + 1];
            if len >= allowed && !breakers.contains(&t) {
                let b = best.entry(t).or_insert(len);
                *b = (*b).max(len);
            }
        }
        best.into_iter().collect()
    }

    #[test]
    fn p24_z_algorithm_matches_suffix_matching() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |m: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % m
        };
        let (mut counts, mut pairs) = (Vec::new(), Vec::new());
        for _ in 0..3000 {
            let v = 1 + next(4) as u32;
            let n = next(40) as usize;
            let h: Vec<u32> = (0..n).map(|_| next(u64::from(v)) as u32).collect();
            let allowed = next(4) as usize;
            let breakers: Vec<u32> = if next(3) == 0 {
                vec![next(u64::from(v)) as u32]
            } else {
                vec![]
            };
            repeats(&h, allowed, &breakers, &mut counts, &mut pairs).unwrap();
            assert_eq!(
                pairs,
                slow(&h, allowed, &breakers),
                "{h:?} {allowed} {breakers:?}"
            );
        }
    }
}
