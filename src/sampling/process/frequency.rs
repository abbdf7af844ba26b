//! `frequency_penalty` and `presence_penalty` (contract P13): with `c` a token's count in the
//! output, `z - f * c - p * [c > 0]` (the OpenAI API, vLLM).

use super::{on_blocks, BoxedStage, MarkOp, RowCtx, Stage};
use crate::element::Real;
use crate::sampling::hot::frequency_marked;
use crate::sampling::params::{RowParam, SamplingParams};

struct FrequencyPresence<'p> {
    frequency: &'p RowParam<f64>,
    presence: &'p RowParam<f64>,
}

pub(super) fn stage<C: Real>(p: &SamplingParams, _vocab: usize) -> Option<BoxedStage<'_, C>> {
    let on = |r: &RowParam<f64>| r.values().iter().any(|&v| v != 0.0);
    (on(&p.frequency_penalty) || on(&p.presence_penalty)).then(|| {
        Box::new(FrequencyPresence {
            frequency: &p.frequency_penalty,
            presence: &p.presence_penalty,
        }) as BoxedStage<'_, C>
    })
}

impl<C: Real> Stage<C> for FrequencyPresence<'_> {
    fn apply(&self, row: usize, ctx: &RowCtx<'_>, z: &mut [C]) {
        let (f, p) = (self.frequency.get(row), self.presence.get(row));
        if f == 0.0 && p == 0.0 {
            return;
        }
        let (f, p) = (C::from_f64(f), C::from_f64(p));
        match ctx.marks {
            Some(marks) => on_blocks(z, marks, ctx.par, |z, marks| {
                frequency_marked(z, marks, f, p)
            }),
            None => {
                for &(id, c) in ctx.seen.iter().filter(|&&(_, c)| c > 0) {
                    let e = &mut z[id as usize];
                    *e = *e - f * C::from_f64(c as f64) - p;
                }
            }
        }
    }

    fn reads_seen(&self) -> bool {
        true
    }

    fn mark_op(&self, row: usize) -> Option<MarkOp<C>> {
        let (f, p) = (self.frequency.get(row), self.presence.get(row));
        (f != 0.0 || p != 0.0).then(|| MarkOp::FrequencyPresence(C::from_f64(f), C::from_f64(p)))
    }
}
