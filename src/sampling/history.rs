//! Token histories (contract P10): what the penalties, bad words and `min_tokens` read.
//!
//! A stage sees one row's history as its output tokens (in order) and its *seen* list: each
//! distinct token of the prompt or the output once, with its count in the output. A call of
//! [`sample_batch`](super::sample_batch) builds the seen list of each row from the histories it
//! is given, in time linear in their length; a [`Sampler`](super::Sampler) keeps it up to date
//! token by token, so a step costs the same after 10 or 100,000 tokens of history.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// The token histories of a call's rows: each row's prompt and the tokens generated so far
/// (contract P10). Either may be absent (an empty history).
///
/// ```
/// use logitkit::Histories;
/// let prompts = vec![vec![1, 2, 3], vec![4]];
/// let outputs = vec![vec![5], vec![]];
/// let h = Histories::new().prompt_tokens(&prompts).output_tokens(&outputs);
/// assert_eq!(h.output(0), &[5]);
/// assert!(h.output(1).is_empty());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Histories<'a> {
    prompt: Option<&'a [Vec<u32>]>,
    output: Option<&'a [Vec<u32>]>,
}

impl<'a> Histories<'a> {
    /// No history.
    ///
    /// ```
    /// use logitkit::{filter_logits, filter_logits_batch, Histories, SamplingParams};
    /// let h = Histories::new();
    /// assert!(h.output(0).is_empty());
    /// // With no history, the penalties have nothing to penalise.
    /// let params = SamplingParams::default().repetition_penalty(2.0);
    /// let (mut a, mut b) = ([0.0f32; 3], [0.0f32; 3]);
    /// filter_logits_batch(&[1.0, 2.0, 3.0], 3, &params, &h, &mut a).unwrap();
    /// filter_logits(&[1.0, 2.0, 3.0], &SamplingParams::default(), &mut b).unwrap();
    /// assert_eq!(a, b);
    /// ```
    pub fn new() -> Self {
        Histories::default()
    }

    /// Each row's prompt tokens.
    ///
    /// ```
    /// use logitkit::{filter_logits_batch, Histories, SamplingParams};
    /// // Row 0's prompt holds tokens 0 and 1: the repetition penalty divides a positive logit
    /// // by 2 and multiplies a negative one by 2. Row 1's prompt is empty.
    /// let prompts = vec![vec![0, 1], vec![]];
    /// let h = Histories::new().prompt_tokens(&prompts);
    /// let params = SamplingParams::default().repetition_penalty(2.0);
    /// let mut out = [0.0f32; 6];
    /// filter_logits_batch(&[2.0, -1.0, 2.0, 2.0, -1.0, 2.0], 3, &params, &h, &mut out).unwrap();
    /// assert_eq!(out, [1.0, -2.0, 2.0, 2.0, -1.0, 2.0]);
    /// ```
    #[must_use]
    pub fn prompt_tokens(mut self, rows: &'a [Vec<u32>]) -> Self {
        self.prompt = Some(rows);
        self
    }

    /// Each row's output (generated) tokens, oldest first.
    ///
    /// ```
    /// use logitkit::{filter_logits_batch, Histories, SamplingParams};
    /// // Token 1 was generated twice: the frequency penalty takes 0.5 per occurrence.
    /// let outputs = vec![vec![1, 2, 1]];
    /// let h = Histories::new().output_tokens(&outputs);
    /// let params = SamplingParams::default().frequency_penalty(0.5);
    /// let mut out = [0.0f32; 3];
    /// filter_logits_batch(&[1.0, 1.0, 1.0], 3, &params, &h, &mut out).unwrap();
    /// assert_eq!(out, [1.0, 0.0, 0.5]);
    /// ```
    #[must_use]
    pub fn output_tokens(mut self, rows: &'a [Vec<u32>]) -> Self {
        self.output = Some(rows);
        self
    }

    /// Row `row`'s output tokens (empty when none were given).
    ///
    /// ```
    /// use logitkit::Histories;
    /// let outputs = vec![vec![7, 8]];
    /// let h = Histories::new().output_tokens(&outputs);
    /// assert_eq!(h.output(0), &[7, 8]);
    /// assert!(h.output(1).is_empty()); // past the rows given
    /// assert!(Histories::new().output(0).is_empty());
    /// ```
    pub fn output(&self, row: usize) -> &'a [u32] {
        self.output
            .and_then(|o| o.get(row))
            .map_or(&[][..], Vec::as_slice)
    }

    fn prompt(&self, row: usize) -> &'a [u32] {
        self.prompt
            .and_then(|o| o.get(row))
            .map_or(&[][..], Vec::as_slice)
    }

    /// One history per row, every id in `[0, vocab)`.
    pub(crate) fn check(&self, rows: usize, vocab: usize) -> Result<()> {
        for (name, h) in [
            ("prompt_tokens", self.prompt),
            ("output_tokens", self.output),
        ] {
            if let Some(h) = h {
                check_rows(name, h, rows, vocab)?;
            }
        }
        Ok(())
    }
}

/// Checks `rows` histories of ids in `[0, vocab)`; errors name the parameter, the row and
/// the id.
pub(crate) fn check_rows(
    name: &'static str,
    h: &[Vec<u32>],
    rows: usize,
    vocab: usize,
) -> Result<()> {
    if h.len() != rows {
        return Err(Error::LengthMismatch {
            name,
            got: h.len(),
            expected: rows,
        });
    }
    for (r, ids) in h.iter().enumerate() {
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(bad_id(name, r, id as i128, vocab));
        }
    }
    Ok(())
}

/// The error for token id `id` of row `row` of history `name`.
pub(crate) fn bad_id(name: &'static str, row: usize, id: i128, vocab: usize) -> Error {
    Error::InvalidParameter {
        name,
        value: format!("token id {id} in row {row}"),
        expected: if vocab == usize::MAX {
            "token ids >= 0 (or -1 as padding)"
        } else {
            "token ids in [0, V) for the logits' vocabulary V"
        },
    }
}

/// One row's history as the stages read it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowCtx<'a> {
    /// The output tokens, oldest first.
    pub output: &'a [u32],
    /// Each distinct token of the prompt or the output once: `(id, count in the output)`.
    pub seen: &'a [(u32, u32)],
    /// The seen list as one mark per vocabulary id (0: unseen, else 1 + the count in the
    /// output), when it is long enough that a pass over the row beats updating its tokens one
    /// by one (see [`use_marks`] and [`use_marks_once`]).
    pub marks: Option<&'a [u32]>,
    /// Passes over the row may be shared across the pool.
    pub par: bool,
}

/// Whether a seen list of `n` tokens kept by a sampler is better applied as marks over a
/// vocabulary of `vocab`: one token's update at a random place costs about as much as a pass
/// over 64 tokens.
pub(crate) fn use_marks(n: usize, vocab: usize) -> bool {
    n.saturating_mul(64) >= vocab
}

/// [`use_marks`] for a seen list built for one call, whose marks cost a pass to build and one
/// to clear as well.
fn use_marks_once(n: usize, vocab: usize) -> bool {
    n.saturating_mul(8) >= vocab
}

/// A row's history kept by a [`Sampler`](super::Sampler), updated token by token.
#[derive(Debug, Clone, Default)]
pub(crate) struct RowState {
    prompt: Vec<u32>,
    /// One more than the largest id of the prompt (0 when empty).
    prompt_bound: usize,
    /// One more than the largest id in the history (0 when empty), checked against the
    /// vocabulary at each call in constant time.
    pub id_bound: usize,
    pub output: Vec<u32>,
    pub seen: Vec<(u32, u32)>,
    slot: HashMap<u32, usize>,
    /// The seen list as marks (see [`RowCtx::marks`]), once it is long; kept up to date.
    marks: Vec<u32>,
}

impl RowState {
    pub fn new(prompt: Vec<u32>) -> Self {
        let mut s = RowState {
            prompt,
            ..Default::default()
        };
        s.restart();
        s
    }

    /// Back to the prompt alone.
    pub fn restart(&mut self) {
        self.output.clear();
        self.seen.clear();
        self.slot.clear();
        self.marks = Vec::new();
        self.prompt_bound = self.prompt.iter().max().map_or(0, |&m| m as usize + 1);
        self.id_bound = self.prompt_bound;
        for &id in &self.prompt {
            if let std::collections::hash_map::Entry::Vacant(e) = self.slot.entry(id) {
                e.insert(self.seen.len());
                self.seen.push((id, 0));
            }
        }
    }

    /// Room for `n` more ids in the history, so that as many [`push`](Self::push)es allocate
    /// nothing; an error (nothing else changed) when the memory is refused (contract R1).
    pub fn reserve(&mut self, n: usize) -> crate::error::Result<()> {
        let refused = || crate::error::Error::OutOfMemory {
            what: "a sampler row's history",
            bytes: n.saturating_mul(std::mem::size_of::<(u32, u32)>() + 16),
        };
        self.output.try_reserve(n).map_err(|_| refused())?;
        self.seen.try_reserve(n).map_err(|_| refused())?;
        self.slot.try_reserve(n).map_err(|_| refused())
    }

    pub fn push(&mut self, id: u32) {
        self.output.push(id);
        self.id_bound = self.id_bound.max(id as usize + 1);
        let n = self.seen.len();
        let i = *self.slot.entry(id).or_insert(n);
        if i == n {
            self.seen.push((id, 0));
        }
        self.seen[i].1 += 1;
        if let Some(m) = self.marks.get_mut(id as usize) {
            *m = (*m).max(1) + 1;
        }
    }

    /// The parameter and the id of a history id outside `[0, vocab)`, if any.
    pub fn id_beyond(&self, vocab: usize) -> Option<(&'static str, u32)> {
        if self.id_bound <= vocab {
            None
        } else if self.prompt_bound > vocab {
            Some(("prompt_tokens", (self.prompt_bound - 1) as u32))
        } else {
            let id = self.output.iter().copied().find(|&t| t as usize >= vocab)?;
            Some(("output_tokens", id))
        }
    }

    /// Keeps marks over a vocabulary of `vocab` once the seen list is long (the first call
    /// that finds it so builds them; every token accepted after updates them).
    pub fn prepare(&mut self, vocab: usize) -> Result<()> {
        if self.marks.len() != vocab {
            self.marks = Vec::new();
            if use_marks(self.seen.len(), vocab) && self.id_bound <= vocab {
                self.marks = crate::scratch::filled(vocab, 0, "a history's marks")?;
                for &(id, c) in &self.seen {
                    self.marks[id as usize] = 1 + c;
                }
            }
        }
        Ok(())
    }

    pub fn ctx(&self, par: bool) -> RowCtx<'_> {
        RowCtx {
            output: &self.output,
            seen: &self.seen,
            marks: (!self.marks.is_empty()).then_some(&self.marks[..]),
            par,
        }
    }
}

/// Where a call's rows' histories come from.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    /// Given with the call.
    Call(Histories<'a>),
    /// Kept by a sampler.
    Kept(&'a [RowState]),
}

/// Per-thread scratch for building a seen list: a slot per vocabulary id (0 = absent, else
/// the position in `seen` plus 1), all 0 between rows.
#[derive(Default)]
pub(crate) struct SeenScratch {
    slot: Vec<u32>,
    seen: Vec<(u32, u32)>,
    /// Marks for a long seen list, all 0 between rows.
    marks: Vec<u32>,
}

impl SeenScratch {
    /// Elements held (a bound on what caching this scratch keeps).
    pub fn footprint(&self) -> usize {
        self.slot.capacity() + self.seen.capacity() * 2 + self.marks.capacity()
    }
}

impl<'a> Source<'a> {
    /// Row `row`'s history over a vocabulary of `vocab`; the seen list only `with_seen`
    /// (else empty).
    pub fn ctx<'s>(
        &'s self,
        row: usize,
        vocab: usize,
        with_seen: bool,
        par: bool,
        s: &'s mut SeenScratch,
    ) -> Result<RowCtx<'s>> {
        match self {
            Source::Kept(rows) => Ok(rows[row].ctx(par)),
            Source::Call(h) => {
                let output = h.output(row);
                s.seen.clear();
                if with_seen {
                    let prompt = h.prompt(row);
                    let need = prompt
                        .iter()
                        .chain(output)
                        .max()
                        .map_or(0, |&m| m as usize + 1);
                    if s.slot.len() < need {
                        crate::scratch::resize(&mut s.slot, need, 0, "a history's slots")?;
                    }
                    let len = prompt.len().saturating_add(output.len());
                    crate::scratch::reserve(&mut s.seen, len.min(need), "a seen list")?;
                    for (&id, out) in prompt
                        .iter()
                        .map(|id| (id, 0))
                        .chain(output.iter().map(|id| (id, 1)))
                    {
                        let slot = &mut s.slot[id as usize];
                        if *slot == 0 {
                            s.seen.push((id, 0));
                            *slot = s.seen.len() as u32;
                        }
                        s.seen[*slot as usize - 1].1 += out;
                    }
                    for &(id, _) in &s.seen {
                        s.slot[id as usize] = 0;
                    }
                }
                // The marks of the previous row back to 0, then this row's if it wants them.
                if !s.marks.is_empty() {
                    s.marks.fill(0);
                }
                let marks = if with_seen && use_marks_once(s.seen.len(), vocab) {
                    crate::scratch::resize(&mut s.marks, vocab, 0, "a history's marks")?;
                    for &(id, c) in &s.seen {
                        s.marks[id as usize] = 1 + c;
                    }
                    Some(&s.marks[..])
                } else {
                    None
                };
                Ok(RowCtx {
                    output,
                    seen: &s.seen,
                    marks,
                    par,
                })
            }
        }
    }
}
