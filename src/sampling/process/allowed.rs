//! `allowed_token_ids` (contract P11): every other token is banned.

use super::{BoxedStage, Stage};
use crate::element::Real;
use crate::sampling::params::{PerRow, SamplingParams};

/// The allowed ids as bitmasks: one for every row, or one per row (`None`: unrestricted).
struct AllowedIds {
    masks: PerRow<Vec<u32>>,
}

fn mask_of(ids: &[u32], vocab: usize) -> Vec<u32> {
    let mut words = vec![0u32; vocab.div_ceil(32)];
    for &id in ids {
        words[id as usize / 32] |= 1 << (id % 32);
    }
    words
}

pub(super) fn stage<C: Real>(p: &SamplingParams, vocab: usize) -> Option<BoxedStage<'_, C>> {
    let masks = match p.allowed_token_ids.as_ref()? {
        PerRow::All(ids) => PerRow::All(mask_of(ids, vocab)),
        PerRow::Rows(rows) => {
            if rows.iter().all(Option::is_none) {
                return None;
            }
            PerRow::Rows(
                rows.iter()
                    .map(|r| r.as_ref().map(|ids| mask_of(ids, vocab)))
                    .collect(),
            )
        }
    };
    Some(Box::new(AllowedIds { masks }))
}

impl<C: Real> Stage<C> for AllowedIds {
    fn mask(&self, row: usize) -> Option<&[u32]> {
        self.masks.get(row).map(Vec::as_slice)
    }
}
