//! A row of logits as it is stored, for the passes of top-p's nucleus list that read the row
//! itself ([`super::nucleus_list`]'s candidates): the compute type, or a bfloat16 or float16
//! row read in place ([`super::in_place`]), whose values are its f32 values, exactly.

use crate::element::Real;
use crate::error::Result;
use crate::kernels::BLOCK;
use crate::parallel::map_ranges;
use crate::sampling::hot::{compress_at_least, compress_half_at_least, Lanes16, Packed, Stored16};
use std::ops::Range;

/// Tokens in each run of a row's sample ([`super::sampled`]).
pub(crate) const RUN: usize = 16;

/// The reads of a row that the nucleus list's candidates take, in the compute type `C`.
pub(crate) trait LogitRow<C: Real>: Sync {
    /// The number of tokens.
    fn len(&self) -> usize;

    /// The [`RUN`] logits from `start`, as `C`.
    fn run(&self, start: usize) -> [C; RUN];

    /// The row as `C`, when it is stored as `C`.
    fn as_compute(&self) -> Option<&[C]>;

    /// The tokens in `r`, as a row of their own.
    fn part(&self, r: Range<usize>) -> &Self;

    /// [`compress_at_least`] of the row (positions `0..`, weights `ws`): the tokens with
    /// logit `>= t`, in order, into `out`; `Ok(false)` (and `out` unspecified) when more than
    /// `limit` pass or there is no vector path for it.
    fn compress_at_least(&self, ws: &[C], t: C, limit: usize, out: &mut Packed<C>) -> Result<bool>;
}

impl<C: Real> LogitRow<C> for [C] {
    fn len(&self) -> usize {
        <[C]>::len(self)
    }

    #[inline(always)]
    fn run(&self, start: usize) -> [C; RUN] {
        // Copied as an array: a few vector moves, where a slice of run-time length calls
        // `memmove`.
        self[start..][..RUN].try_into().expect("a whole run")
    }

    fn as_compute(&self) -> Option<&[C]> {
        Some(self)
    }

    fn part(&self, r: Range<usize>) -> &[C] {
        &self[r]
    }

    fn compress_at_least(&self, ws: &[C], t: C, limit: usize, out: &mut Packed<C>) -> Result<bool> {
        compress_at_least(self, ws, None, t, limit, out)
    }
}

impl<H: Stored16 + Lanes16> LogitRow<f32> for [H] {
    fn len(&self) -> usize {
        <[H]>::len(self)
    }

    #[inline(always)]
    fn run(&self, start: usize) -> [f32; RUN] {
        let run = &self[start..][..RUN];
        std::array::from_fn(|i| run[i].value())
    }

    fn as_compute(&self) -> Option<&[f32]> {
        None
    }

    fn part(&self, r: Range<usize>) -> &[H] {
        &self[r]
    }

    fn compress_at_least(
        &self,
        ws: &[f32],
        t: f32,
        limit: usize,
        out: &mut Packed<f32>,
    ) -> Result<bool> {
        compress_half_at_least(self, ws, t, limit, out)
    }
}

/// [`LogitRow::compress_at_least`], a block at a time on the threads when `par` (each thread
/// packs the blocks it wrote or read in the row's earlier passes), the blocks' sets then
/// joined in order: the same set, in the same order, as one pass over the row.
pub(crate) fn compress_row_at_least<C: Real, X: LogitRow<C> + ?Sized>(
    x: &X,
    ws: &[C],
    t: C,
    limit: usize,
    out: &mut Packed<C>,
    par: bool,
) -> Result<bool> {
    let v = x.len();
    if !par || v <= BLOCK {
        return x.compress_at_least(ws, t, limit, out);
    }
    // Each block's set, `None` when more than `limit` of its tokens pass (or no vector path).
    let mut parts: Vec<Option<Result<Packed<C>>>> = Vec::new();
    map_ranges(v, BLOCK, &mut parts, true, |_, r| {
        let mut set = Packed::default();
        match x
            .part(r.clone())
            .compress_at_least(&ws[r.clone()], t, limit.min(r.len()), &mut set)
        {
            Ok(true) => Some(Ok(set)),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        }
    });
    let mut n = 0;
    for part in &parts {
        match part {
            Some(Ok(set)) => n += set.ids.len(),
            Some(Err(e)) => return Err(e.clone()),
            None => return Ok(false),
        }
    }
    if n > limit {
        return Ok(false);
    }
    const WHAT: &str = "the candidates";
    out.ids.clear();
    out.xs.clear();
    out.ws.clear();
    crate::scratch::reserve(&mut out.ids, n, WHAT)?;
    crate::scratch::reserve(&mut out.xs, n, WHAT)?;
    crate::scratch::reserve(&mut out.ws, n, WHAT)?;
    for (b, set) in parts.into_iter().flatten().flatten().enumerate() {
        // Positions below the row's length, which is below 2^32 (the packing passes took it).
        let base = (b * BLOCK) as u32;
        out.ids.extend(set.ids.iter().map(|&j| j + base));
        out.xs.extend_from_slice(&set.xs);
        out.ws.extend_from_slice(&set.ws);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::hot::compresses;

    /// Packed a block at a time on the threads, a row gives the set one pass gives it, for
    /// f32, bfloat16 and float16 rows, and refuses past the limit as that pass does.
    #[test]
    fn row_packed_by_blocks_on_the_threads_is_packed_in_one_pass() {
        if !compresses::<f32>(1 << 20) {
            return;
        }
        let mut u = crate::sampling::test_units::units(7);
        for v in [BLOCK + 1, 3 * BLOCK, 50_000] {
            let x: Vec<f32> = (0..v)
                .map(|_| ((u() * 64.0).floor() - 32.0) as f32)
                .collect();
            let ws: Vec<f32> = (0..v).map(|j| j as f32).collect();
            let xb: Vec<half::bf16> = x.iter().map(|&e| half::bf16::from_f32(e)).collect();
            let xh: Vec<half::f16> = x.iter().map(|&e| half::f16::from_f32(e)).collect();
            for t in [31.0f32, 28.5, 20.0, -40.0] {
                let want: Vec<u32> = (0..v as u32).filter(|&j| x[j as usize] >= t).collect();
                let check = |got: &Packed<f32>, what: &str| {
                    assert_eq!(got.ids, want, "{what} v {v} t {t}");
                    let xs: Vec<f32> = want.iter().map(|&j| x[j as usize]).collect();
                    let wv: Vec<f32> = want.iter().map(|&j| ws[j as usize]).collect();
                    assert_eq!(got.xs, xs, "{what} v {v} t {t}");
                    assert_eq!(got.ws, wv, "{what} v {v} t {t}");
                };
                let k = want.len();
                for par in [false, true] {
                    let mut out = Packed::default();
                    assert!(compress_row_at_least(&x[..], &ws, t, v, &mut out, par).unwrap());
                    check(&out, "f32");
                    assert!(compress_row_at_least(&xb[..], &ws, t, v, &mut out, par).unwrap());
                    check(&out, "bfloat16");
                    assert!(compress_row_at_least(&xh[..], &ws, t, v, &mut out, par).unwrap());
                    check(&out, "float16");
                    if k > 0 {
                        let refused = compress_row_at_least(&x[..], &ws, t, k - 1, &mut out, par);
                        assert!(!refused.unwrap(), "limit, v {v} t {t} par {par}");
                        assert!(compress_row_at_least(&xb[..], &ws, t, k, &mut out, par).unwrap());
                        check(&out, "bfloat16 at its limit");
                    }
                }
            }
        }
    }
}
