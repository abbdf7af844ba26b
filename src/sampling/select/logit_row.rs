//! A row of logits as it is stored, for the passes of top-p's nucleus list that read the row
//! itself ([`super::nucleus_list`]'s candidates): the compute type, or a bfloat16 or float16
//! row read in place ([`super::in_place`]), whose values are its f32 values, exactly.

use crate::element::Real;
use crate::error::Result;
use crate::sampling::hot::{compress_at_least, compress_half_at_least, Lanes16, Packed, Stored16};

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
