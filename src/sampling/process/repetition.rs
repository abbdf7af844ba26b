//! `repetition_penalty` (contract P13): a token seen in the prompt or the output has its logit
//! `z` divided by `r` when `z > 0`, else multiplied by `r` (Keskar et al. 2019; Hugging Face's
//! RepetitionPenaltyLogitsProcessor, vLLM). Each distinct token is penalised once.

use super::{on_blocks, BoxedStage, MarkOp, RowCtx, Stage};
use crate::element::Real;
use crate::sampling::hot::repetition_marked;
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
        let r = C::from_f64(r);
        match ctx.marks {
            Some(marks) => on_blocks(z, marks, ctx.par, |z, marks| repetition_marked(z, marks, r)),
            None => {
                for &(id, _) in ctx.seen {
                    let e = &mut z[id as usize];
                    *e = if *e > C::default() { *e / r } else { *e * r };
                }
            }
        }
    }

    fn reads_seen(&self) -> bool {
        true
    }

    fn mark_op(&self, row: usize) -> Option<MarkOp<C>> {
        let r = self.0.get(row);
        (r != 1.0).then(|| MarkOp::Repetition(C::from_f64(r)))
    }
}
