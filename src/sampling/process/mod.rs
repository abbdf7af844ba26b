//! The logits processing of contract P11-P13, applied to a copy of each row before
//! temperature and the filters of P3: masks, then the bias, then the penalties (P14).
//!
//! Each stage is one small type behind [`Stage`], in a file of its own. [`Chain::build`]
//! makes the chain of a call from its parameters, once per call: a stage whose parameters are
//! at their defaults is absent, so it costs nothing. Adding a stage is a new file and one line
//! in [`Chain::build`]'s list.

mod allowed;
mod bad_words;
mod bias;
mod bitmask;
mod frequency;
mod min_tokens;
mod repetition;

use super::history::RowCtx;
use super::params::SamplingParams;
use crate::element::Real;

/// One processing stage: changes a row's logits in place.
pub(crate) trait Stage<C: Real>: Sync {
    /// Applies the stage to row `row`'s logits `z`, whose history is `ctx`.
    fn apply(&self, row: usize, ctx: &RowCtx<'_>, z: &mut [C]);

    /// Whether the stage reads [`RowCtx::seen`] (building it costs a pass over the history).
    fn reads_seen(&self) -> bool {
        false
    }
}

/// A boxed stage borrowing the call's parameters.
pub(crate) type BoxedStage<'p, C> = Box<dyn Stage<C> + 'p>;

/// Makes a stage from a call's parameters for a vocabulary of `vocab` tokens, or `None`
/// when the parameters disable it for every row.
type Builder<C> = for<'q> fn(&'q SamplingParams, usize) -> Option<BoxedStage<'q, C>>;

/// The processing stages of one call, in the order of contract P14.
pub(crate) struct Chain<'p, C> {
    stages: Vec<BoxedStage<'p, C>>,
    reads_seen: bool,
}

impl<'p, C: Real> Chain<'p, C> {
    /// The chain for `params` (validated, ids checked against `vocab`).
    pub fn build(params: &'p SamplingParams, vocab: usize) -> Self {
        let builders: [Builder<C>; 7] = [
            // Masks (P11).
            allowed::stage::<C>,
            bitmask::stage::<C>,
            bad_words::stage::<C>,
            min_tokens::stage::<C>,
            // Bias (P12).
            bias::stage::<C>,
            // Penalties (P13): repetition first.
            repetition::stage::<C>,
            frequency::stage::<C>,
        ];
        let stages: Vec<_> = builders.iter().filter_map(|b| b(params, vocab)).collect();
        let reads_seen = stages.iter().any(|s| s.reads_seen());
        Chain { stages, reads_seen }
    }

    /// No stage is on: rows are read as they are.
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Whether a stage reads the seen list of the rows' histories.
    pub fn reads_seen(&self) -> bool {
        self.reads_seen
    }

    /// Applies every stage, in order, to row `row`'s logits.
    pub fn apply(&self, row: usize, ctx: &RowCtx<'_>, z: &mut [C]) {
        for s in &self.stages {
            s.apply(row, ctx, z);
        }
    }
}

/// `z = f(z)`, computed in `f64` and rounded once to the processing type.
#[inline]
pub(super) fn update<C: Real>(z: &mut C, f: impl FnOnce(f64) -> f64) {
    *z = C::from_f64(f(z.to_f64()));
}

/// Bans (sets to `-inf`) every token whose bit in `words` is 0 (the layout of
/// [`TokenBitmask`](crate::TokenBitmask)); tokens past the words are banned.
pub(super) fn ban_unset<C: Real>(words: &[u32], z: &mut [C]) {
    for (i, chunk) in z.chunks_mut(32).enumerate() {
        match words.get(i).copied().unwrap_or(0) {
            u32::MAX => {}
            0 => chunk.fill(C::NEG_INFINITY),
            w => {
                for (b, e) in chunk.iter_mut().enumerate() {
                    if (w >> b) & 1 == 0 {
                        *e = C::NEG_INFINITY;
                    }
                }
            }
        }
    }
}
