//! `bad_words` (contract P11): a one-token sequence bans its token; a longer one bans its last
//! token when the row's output ends with the tokens before it (Hugging Face's
//! NoBadWordsLogitsProcessor, vLLM's bad_words).

use super::{BoxedStage, RowCtx, Stage};
use crate::element::Real;
use crate::sampling::params::SamplingParams;

struct BadWords<'p>(&'p [Vec<u32>]);

pub(super) fn stage<C: Real>(p: &SamplingParams, _vocab: usize) -> Option<BoxedStage<'_, C>> {
    (!p.bad_words.is_empty()).then(|| Box::new(BadWords(&p.bad_words)) as BoxedStage<'_, C>)
}

impl<C: Real> Stage<C> for BadWords<'_> {
    fn apply(&self, _row: usize, ctx: &RowCtx<'_>, z: &mut [C]) {
        for seq in self.0 {
            let (&last, prefix) = seq.split_last().expect("validated: non-empty");
            if ctx.output.ends_with(prefix) {
                z[last as usize] = C::NEG_INFINITY;
            }
        }
    }
}
