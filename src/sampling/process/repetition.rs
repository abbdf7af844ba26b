//! `repetition_penalty` (contract P13): a token seen in the prompt or the output has its logit
//! `z` divided by `r` when `z > 0`, else multiplied by `r` (Keskar et al. 2019; Hugging Face's
//! RepetitionPenaltyLogitsProcessor, vLLM). Each distinct token is penalised once.

use super::{update, BoxedStage, RowCtx, Stage};
use crate::element::Real;
use crate::sampling::params::{RowParam, SamplingParams};

struct Repetition<'p>(&'p RowParam<f64>);

pub(super) fn stage<C: Real>(p: &SamplingParams, _vocab: usize) -> Option<BoxedStage<'_, C>> {
    let r = &p.repetition_penalty;
    r.values()
        .iter()
        .any(|&r| r != 1.0)
        .then(|| Box::new(Repetition(r)) as BoxedStage<'_, C>)
}

impl<C: Real> Stage<C> for Repetition<'_> {
    fn apply(&self, row: usize, ctx: &RowCtx<'_>, z: &mut [C]) {
        let r = self.0.get(row);
        if r == 1.0 {
            return;
        }
        for &(id, _) in ctx.seen {
            update(&mut z[id as usize], |v| if v > 0.0 { v / r } else { v * r });
        }
    }

    fn reads_seen(&self) -> bool {
        true
    }
}
