//! `token_bitmask` (contract P11): a grammar's allowed tokens, one bit per token.

use super::{ban_unset, BoxedStage, RowCtx, Stage};
use crate::element::Real;
use crate::sampling::params::{SamplingParams, TokenBitmask};

struct Bitmask<'p>(&'p TokenBitmask);

pub(super) fn stage<C: Real>(p: &SamplingParams, _vocab: usize) -> Option<BoxedStage<'_, C>> {
    Some(Box::new(Bitmask(p.token_bitmask.as_ref()?)))
}

impl<C: Real> Stage<C> for Bitmask<'_> {
    fn apply(&self, row: usize, _: &RowCtx<'_>, z: &mut [C]) {
        ban_unset(self.0.row(row), z);
    }
}
