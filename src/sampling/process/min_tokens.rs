//! `min_tokens` with `stop_token_ids` (contract P11): while a row has fewer output tokens than
//! `min_tokens`, its stop tokens are banned.

use super::{BoxedStage, RowCtx, Stage};
use crate::element::Real;
use crate::sampling::params::{RowParam, SamplingParams};

struct MinTokens<'p> {
    min: &'p RowParam<i64>,
    stop: &'p [u32],
}

pub(super) fn stage<C: Real>(p: &SamplingParams, _vocab: usize) -> Option<BoxedStage<'_, C>> {
    let on = !p.stop_token_ids.is_empty() && p.min_tokens.values().iter().any(|&n| n > 0);
    on.then(|| {
        Box::new(MinTokens {
            min: &p.min_tokens,
            stop: &p.stop_token_ids,
        }) as BoxedStage<'_, C>
    })
}

impl<C: Real> Stage<C> for MinTokens<'_> {
    fn apply(&self, row: usize, ctx: &RowCtx<'_>, z: &mut [C]) {
        if (ctx.output.len() as u64) < self.min.get(row) as u64 {
            for &id in self.stop {
                z[id as usize] = C::NEG_INFINITY;
            }
        }
    }
}
