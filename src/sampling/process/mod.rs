//! The logits processing of contract P11-P13 and P24, applied to a copy of each row before
//! temperature and the filters of P3: masks, then the bias, then the penalties (P14), then
//! DRY (P24, with the penalties, after them).
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
mod dry;
mod frequency;
mod min_tokens;
mod repetition;

use super::history::RowCtx;
use super::hot::{ban_unset, copy_checked, copy_marked, frequency_marked, repetition_marked};
use super::params::SamplingParams;
use crate::element::{is_native, Float, Real};
use crate::error::Result;
use crate::kernels::{kernels, BLOCK};
use crate::parallel::{chunks_mapped_mut, map_chunks_mut};

/// One processing stage: changes a row's logits in place.
///
/// A mask over the whole vocabulary says which tokens it allows as bits ([`Stage::mask`]):
/// every such mask is applied while the row is copied, in one pass. Other stages change the
/// few logits they name ([`Stage::apply`]).
pub(crate) trait Stage<C: Real>: Sync {
    /// Applies the stage to row `row`'s logits `z`, whose history is `ctx`.
    fn apply(&self, _row: usize, _ctx: &RowCtx<'_>, _z: &mut [C]) {}

    /// [`Stage::apply`] for a stage that needs scratch memory, which may be refused
    /// (contract R1). The chain calls this one.
    fn try_apply(&self, row: usize, ctx: &RowCtx<'_>, z: &mut [C]) -> Result<()> {
        self.apply(row, ctx, z);
        Ok(())
    }

    /// The tokens row `row` allows, as the bits of [`TokenBitmask`](crate::TokenBitmask)
    /// (`None`: the stage is not a whole-vocabulary mask, or allows every token of the row).
    fn mask(&self, _row: usize) -> Option<&[u32]> {
        None
    }

    /// Whether the stage reads [`RowCtx::seen`] (building it costs a pass over the history).
    fn reads_seen(&self) -> bool {
        false
    }

    /// The stage as a function of each token's history mark, when it is one for row `row`
    /// (the penalties): then, with marks, it is applied while the row is copied instead of in
    /// a pass of its own, and its [`Stage::apply`] is not called.
    fn mark_op(&self, _row: usize) -> Option<MarkOp<C>> {
        None
    }

    /// Whether the stage changes finite logits of row `row` other than by banning them (the
    /// bias): the penalties after it cannot then be applied during the copy.
    fn changes_values(&self, _row: usize) -> bool {
        false
    }
}

/// A stage that is a function of each token's mark (see [`RowCtx::marks`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum MarkOp<C> {
    /// Seen tokens (`mark != 0`): `z / r` if `z > 0`, else `z * r`.
    Repetition(C),
    /// Tokens in the output (`mark = 1 + c`, `c > 0`): `z - f * c - p`.
    FrequencyPresence(C, C),
}

/// A boxed stage borrowing the call's parameters.
pub(crate) type BoxedStage<'p, C> = Box<dyn Stage<C> + 'p>;

/// Makes a stage from a call's parameters for a vocabulary of `vocab` tokens, or `None`
/// when the parameters disable it for every row.
/// A stage's builder: `None` when its parameters are at their defaults; an error when the
/// memory it needs is refused (contract R1).
type Builder<C> = for<'q> fn(&'q SamplingParams, usize) -> Result<Option<BoxedStage<'q, C>>>;

/// The processing stages of one call, in the order of contract P14.
pub(crate) struct Chain<'p, C> {
    stages: Vec<BoxedStage<'p, C>>,
    reads_seen: bool,
}

impl<'p, C: Real> Chain<'p, C> {
    /// The chain for `params` (validated, ids checked against `vocab`).
    pub fn build(params: &'p SamplingParams, vocab: usize) -> Result<Self> {
        let builders: [Builder<C>; 8] = [
            // Masks (P11).
            allowed::stage::<C>,
            |p, v| Ok(bitmask::stage::<C>(p, v)),
            |p, v| Ok(bad_words::stage::<C>(p, v)),
            |p, v| Ok(min_tokens::stage::<C>(p, v)),
            // Bias (P12).
            |p, v| Ok(bias::stage::<C>(p, v)),
            // Penalties (P13): repetition first.
            |p, v| Ok(repetition::stage::<C>(p, v)),
            |p, v| Ok(frequency::stage::<C>(p, v)),
            // DRY (P24), with the penalties, after them. It changes values but comes last, so
            // it does not report `changes_values`: the penalties before it may still be
            // applied during the copy.
            dry::stage::<C>,
        ];
        let mut stages = Vec::new();
        for b in builders {
            stages.extend(b(params, vocab)?);
        }
        let reads_seen = stages.iter().any(|s| s.reads_seen());
        Ok(Chain { stages, reads_seen })
    }

    /// No stage is on: rows are read as they are.
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Whether a stage reads the seen list of the rows' histories.
    pub fn reads_seen(&self) -> bool {
        self.reads_seen
    }

    /// Row `row` processed into `z`: copied from `x` (as stored: a 16-bit row is converted on
    /// the way) with every mask applied on the way (the blocks shared across the pool when
    /// `par`), then every other stage in order. Returns whether `x` holds NaN or `+inf` (then
    /// `z` is not processed further), or that memory for `z` was refused.
    pub fn process<T: Float<Compute = C>>(
        &self,
        row: usize,
        ctx: &RowCtx<'_>,
        x: &[T],
        z: &mut Vec<C>,
        words: &mut Vec<u32>,
        par: bool,
    ) -> Result<bool> {
        let masks: Vec<&[u32]> = self.stages.iter().filter_map(|s| s.mask(row)).collect();
        let mask: Option<&[u32]> = match masks[..] {
            [] => None,
            [one] => Some(one),
            [first, ..] => {
                // Several masks allow the tokens all of them allow.
                words.clear();
                crate::scratch::reserve(words, first.len(), "the combined token masks")?;
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
        // The penalties ride along with the copy when the history is given as marks and no
        // stage before them changes values (bans commute with them: a penalty keeps -inf).
        let mut ops = (None, None);
        let fused = ctx
            .marks
            .filter(|_| !self.stages.iter().any(|s| s.changes_values(row)));
        if fused.is_some() {
            for op in self.stages.iter().filter_map(|s| s.mark_op(row)) {
                match op {
                    MarkOp::Repetition(r) => ops.0 = Some(r),
                    MarkOp::FrequencyPresence(f, p) => ops.1 = Some((f, p)),
                }
            }
        }
        if z.len() != x.len() {
            crate::scratch::resize(z, x.len(), C::default(), "the processed row")?;
        }
        let bad = chunks_mapped_mut(z, BLOCK, par && x.len() > BLOCK, |b, d| {
            let (src, start) = (&x[b * BLOCK..][..d.len()], b * BLOCK);
            let marked = fused.map(|marks| (&marks[start..][..d.len()], ops.0, ops.1));
            let bad = copy_block(src, d, marked);
            if let Some(m) = mask {
                ban_unset(d, m, start / 32);
            }
            bad
        });
        if bad.iter().any(|&b| b) {
            return Ok(true);
        }
        for s in &self.stages {
            if fused.is_none() || s.mark_op(row).is_none() {
                s.try_apply(row, ctx, z)?;
            }
        }
        Ok(false)
    }
}

/// Penalties applied while a block is copied: the block's marks, the repetition penalty, the
/// frequency and presence penalties (see [`MarkOp`]).
type Marked<'a, C> = (&'a [u32], Option<C>, Option<(C, C)>);

/// The logits of a row's block `src` copied into `d` as the compute type, with the penalties
/// of `marked` applied on the way; whether `src` holds NaN or `+inf`. A 16-bit block is
/// widened a piece at a time, each piece checked and penalised while it is in the first-level
/// cache: the row is read once, with no converted copy of the whole row (the same operations
/// on the same values as [`copy_marked`] over the row widened, so the same bits).
fn copy_block<T: Float<Compute = C>, C: Real>(
    src: &[T],
    d: &mut [C],
    marked: Option<Marked<'_, C>>,
) -> bool {
    if is_native::<T>() {
        // SAFETY: `is_native` says `T` and `C` are the same type.
        let src = unsafe { std::slice::from_raw_parts(src.as_ptr().cast::<C>(), src.len()) };
        return match marked {
            Some((marks, rep, freq)) => copy_marked(src, d, marks, rep, freq),
            None => copy_checked(src, d),
        };
    }
    // 8 KiB of f32: the piece stays in the first-level cache between its passes.
    const PIECE: usize = 2048;
    let k = kernels::<C>();
    let mut bad = false;
    for (i, (s, p)) in src.chunks(PIECE).zip(d.chunks_mut(PIECE)).enumerate() {
        T::widen(s, p);
        let (m, nan) = (k.max)(p);
        bad |= nan || m == C::INFINITY;
        if let Some((marks, rep, freq)) = marked {
            let marks = &marks[i * PIECE..][..p.len()];
            if let Some(r) = rep {
                repetition_marked(p, marks, r);
            }
            if let Some((f, pres)) = freq {
                frequency_marked(p, marks, f, pres);
            }
        }
    }
    bad
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
