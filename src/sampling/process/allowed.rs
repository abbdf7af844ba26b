//! `allowed_token_ids` (contract P11): every other token is banned.

use super::{BoxedStage, Stage};
use crate::element::Real;
use crate::error::Result;
use crate::sampling::params::{PerRow, SamplingParams};

/// The allowed ids as bitmasks: one for every row, or one per row (`None`: unrestricted).
struct AllowedIds {
    masks: PerRow<Vec<u32>>,
}

fn mask_of(ids: &[u32], vocab: usize) -> Result<Vec<u32>> {
    let mut words = crate::scratch::filled(vocab.div_ceil(32), 0u32, "allowed_token_ids masks")?;
    for &id in ids {
        words[id as usize / 32] |= 1 << (id % 32);
    }
    Ok(words)
}

pub(super) fn stage<C: Real>(
    p: &SamplingParams,
    vocab: usize,
) -> Result<Option<BoxedStage<'_, C>>> {
    let masks = match p.allowed_token_ids.as_ref() {
        None => return Ok(None),
        Some(PerRow::All(ids)) => PerRow::All(mask_of(ids, vocab)?),
        Some(PerRow::Rows(rows)) => {
            if rows.iter().all(Option::is_none) {
                return Ok(None);
            }
            PerRow::Rows(
                rows.iter()
                    .map(|r| r.as_ref().map(|ids| mask_of(ids, vocab)).transpose())
                    .collect::<Result<_>>()?,
            )
        }
    };
    Ok(Some(Box::new(AllowedIds { masks })))
}

impl<C: Real> Stage<C> for AllowedIds {
    fn mask(&self, row: usize) -> Option<&[u32]> {
        self.masks.get(row).map(Vec::as_slice)
    }
}
