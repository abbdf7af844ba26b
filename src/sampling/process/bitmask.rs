//! `token_bitmask` (contract P11): a grammar's allowed tokens, one bit per token.

use super::{BoxedStage, Stage};
use crate::element::Real;
use crate::sampling::params::{SamplingParams, TokenBitmask};

struct Bitmask<'p>(&'p TokenBitmask);

pub(super) fn stage<C: Real>(p: &SamplingParams, _vocab: usize) -> Option<BoxedStage<'_, C>> {
    Some(Box::new(Bitmask(p.token_bitmask.as_ref()?)))
}

impl<C: Real> Stage<C> for Bitmask<'_> {
    fn mask(&self, row: usize) -> Option<&[u32]> {
        Some(self.0.row(row))
    }
}
