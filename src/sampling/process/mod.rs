//! The logits processing of contract P11-P13, applied to a copy of each row before
//! temperature and the filters of P3: masks, then the bias, then the penalties (P14).
//!
//! Arithmetic is done in the processing type (`f32` for `f16`, `bf16` and `f32` logits, `f64`
//! for `f64`) with the parameters rounded to it, one operation at a time, as PyTorch does it in
//! Hugging Face's and vLLM's processors, so that the results are theirs bit for bit.
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
use super::hot::copy_masked;
use super::params::SamplingParams;
use crate::element::Real;
use crate::kernels::BLOCK;
use crate::parallel::map_chunks_mut;

/// One processing stage: changes a row's logits in place.
///
/// A mask over the whole vocabulary says which tokens it allows as bits ([`Stage::mask`]):
/// every such mask is applied while the row is copied, in one pass. Other stages change the
/// few logits they name ([`Stage::apply`]).
pub(crate) trait Stage<C: Real>: Sync {
    /// Applies the stage to row `row`'s logits `z`, whose history is `ctx`.
    fn apply(&self, _row: usize, _ctx: &RowCtx<'_>, _z: &mut [C]) {}

    /// The tokens row `row` allows, as the bits of [`TokenBitmask`](crate::TokenBitmask)
    /// (`None`: the stage is not a whole-vocabulary mask, or allows every token of the row).
    fn mask(&self, _row: usize) -> Option<&[u32]> {
        None
    }

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

    /// Row `row` processed into `z`: copied from `x` with every mask applied on the way (the
    /// blocks shared across the pool when `par`), then every other stage in order. Returns
    /// whether `x` holds NaN or `+inf` (then `z` is not processed further).
    pub fn process(
        &self,
        row: usize,
        ctx: &RowCtx<'_>,
        x: &[C],
        z: &mut Vec<C>,
        words: &mut Vec<u32>,
        par: bool,
    ) -> bool {
        let masks: Vec<&[u32]> = self.stages.iter().filter_map(|s| s.mask(row)).collect();
        let mask: Option<&[u32]> = match masks[..] {
            [] => None,
            [one] => Some(one),
            [first, ..] => {
                // Several masks allow the tokens all of them allow.
                words.clear();
                words.extend_from_slice(first);
                for m in &masks[1..] {
                    words.truncate(m.len());
                    for (w, &b) in words.iter_mut().zip(*m) {
                        *w &= b;
                    }
                }
                Some(words)
            }
        };
        if z.len() != x.len() {
            z.resize(x.len(), C::default());
        }
        let mut bad = Vec::new();
        map_chunks_mut(z, BLOCK, &mut bad, par && x.len() > BLOCK, |b, d| {
            copy_masked(&x[b * BLOCK..][..d.len()], d, mask, b * BLOCK / 32)
        });
        if bad.iter().any(|&b| b) {
            return true;
        }
        for s in &self.stages {
            s.apply(row, ctx, z);
        }
        false
    }
}

/// `f(z block, marks block)` over the row's blocks, shared across the pool when `par`.
pub(super) fn on_blocks<C: Real>(
    z: &mut [C],
    marks: &[u32],
    par: bool,
    f: impl Fn(&mut [C], &[u32]) + Sync,
) {
    map_chunks_mut(
        z,
        BLOCK,
        &mut Vec::<()>::new(),
        par && z.len() > BLOCK,
        |b, d| f(d, &marks[b * BLOCK..][..d.len()]),
    );
}
