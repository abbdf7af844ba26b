//! `logit_bias` (contract P12): `{token: bias}` added to the logits after the masks; a bias of
//! `-inf` bans the token.

use super::{BoxedStage, RowCtx, Stage};
use crate::element::Real;
use crate::sampling::params::{PerRow, SamplingParams};

struct LogitBias<'p>(&'p PerRow<Vec<(u32, f64)>>);

pub(super) fn stage<C: Real>(p: &SamplingParams, _vocab: usize) -> Option<BoxedStage<'_, C>> {
    let bias = p.logit_bias.as_ref()?;
    let any = match bias {
        PerRow::All(pairs) => !pairs.is_empty(),
        PerRow::Rows(rows) => rows.iter().flatten().any(|pairs| !pairs.is_empty()),
    };
    any.then(|| Box::new(LogitBias(bias)) as BoxedStage<'_, C>)
}

impl<C: Real> Stage<C> for LogitBias<'_> {
    fn changes_values(&self, row: usize) -> bool {
        self.0.get(row).is_some_and(|pairs| !pairs.is_empty())
    }

    fn apply(&self, row: usize, _: &RowCtx<'_>, z: &mut [C]) {
        for &(id, b) in self.0.get(row).map_or(&[][..], Vec::as_slice) {
            let e = &mut z[id as usize];
            *e = *e + C::from_f64(b);
        }
    }
}
