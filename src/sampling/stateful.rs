//! [`Sampler`]: parameters, a seed and each row's token history, for a decoding loop
//! (contract P6, P17).

use super::history::{bad_id, RowState, Source};
use super::params::{check_mirostat, RowParam, SamplingParams};
use super::rng::{os_bytes, Streams};
use super::{check_call, check_outputs, draw_rows, rows_of, write_draws, Draws, Rows};
use crate::element::Float;
use crate::error::{Error, Result};

/// A decoding loop's sampler: parameters, a seed, and each row's prompt and generated tokens.
///
/// Its `n`-th draw (counting from 0) samples as [`sample_batch`](super::sample_batch) would
/// with streams determined by `(seed, n)` and the row (contract P6), reading its own histories
/// as the output tokens; then each row's token is appended to its history (P17). Two samplers
/// with the same seed, parameters and logits give the same tokens. [`Sampler::accept`] appends
/// tokens chosen elsewhere (a forced token, accepted draft tokens) without drawing. The
/// penalties' counts are kept up to date token by token, so a step costs the same after 10 or
/// 100,000 tokens; DRY (P24) reads the history at each step, in time linear in its last
/// `dry_penalty_last_n` tokens (llama.cpp's Z-algorithm). A call that returns an error changes
/// nothing.
///
/// ```
/// use logitkit::{Sampler, SamplingParams};
/// // A tiny "model": always the same logits; the repetition penalty steers greedy decoding.
/// let logits = [2.0f32, 1.9, 1.8, 0.0];
/// let params = SamplingParams::greedy().repetition_penalty(1.5);
/// let mut s = Sampler::new(params, Some(5)).unwrap().with_prompts(vec![vec![3]]).unwrap();
/// let mut tok = [0i64];
/// for _ in 0..3 {
///     s.sample_rows(&logits, 4, &mut tok, None).unwrap();
/// }
/// assert_eq!(s.output_tokens(0), &[0, 1, 2]);
/// s.accept(&[vec![3]]).unwrap();
/// assert_eq!(s.output_tokens(0).len(), 4);
/// s.reset();
/// assert!(s.output_tokens(0).is_empty());
/// assert_eq!(s.calls(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    seed: u64,
    calls: u64,
    /// Each row's history; `None` until the row count is known.
    rows: Option<Vec<RowState>>,
    /// The vocabulary of the last draw, against which accepted ids are checked.
    vocab: Option<usize>,
    /// Mirostat 2.0 (P25), when on.
    mirostat: Option<Mirostat>,
}

/// Mirostat 2.0's parameters and each row's `mu` (empty until the first draw after
/// construction or [`Sampler::reset`], then `2 * tau` per row).
#[derive(Debug, Clone)]
struct Mirostat {
    tau: RowParam<f64>,
    eta: RowParam<f64>,
    mu: Vec<f64>,
}

impl Sampler {
    /// A sampler with `params` and `seed`; `None` takes a seed from the operating system's
    /// entropy. Parameter values are checked here; per-row lengths and token ids at each call.
    ///
    /// ```
    /// use logitkit::{Sampler, SamplingParams};
    /// assert!(Sampler::new(SamplingParams::default(), None).is_ok());
    /// let bad = SamplingParams::default().min_p(f64::NAN);
    /// assert!(Sampler::new(bad, Some(1)).unwrap_err().to_string().contains("min_p"));
    /// ```
    pub fn new(params: SamplingParams, seed: Option<u64>) -> Result<Sampler> {
        // Values only: per-row lengths depend on the batch of each call.
        params.check(None)?;
        let seed = seed.unwrap_or_else(|| u64::from_le_bytes(os_bytes()));
        Ok(Sampler {
            params,
            seed,
            calls: 0,
            rows: None,
            vocab: None,
            mirostat: None,
        })
    }

    /// Turns on Mirostat 2.0 (contract P25; llama.cpp's `mirostat_v2`) with target surprise
    /// `tau` (bits) and learning rate `eta` (llama.cpp's default is 0.1), each a finite
    /// float `>= 0`, for every row or per row. Each row keeps `mu`, starting at `2 * tau`:
    /// after temperature (and the masks, bias, penalties and the stages of P20-P23), the
    /// tokens of surprise `-log2 p > mu` are removed (the most probable always stays), a
    /// token is drawn from the rest renormalised, and `mu -= eta * (s - tau)`, `s` the drawn
    /// token's surprise under that truncated set. It replaces top-k, top-p and min-p, which
    /// are ignored while it is on. [`Sampler::reset`] restarts `mu`. `sample_batch` and
    /// `filter_logits_batch` have no Mirostat: they keep no state.
    ///
    /// # Errors
    /// A value that is not a finite float `>= 0` (the error names `mirostat_tau` or
    /// `mirostat_eta`); per-row lengths are checked at each draw.
    ///
    /// ```
    /// use logitkit::{Sampler, SamplingParams};
    /// // Probabilities 0.5, 0.25, 0.125, 0.125: surprises 1, 2, 3, 3 bits.
    /// let x = [0.5f64.ln(), 0.25f64.ln(), 0.125f64.ln(), 0.125f64.ln()];
    /// // tau = 1: mu starts at 2, which keeps tokens 0 and 1 only.
    /// let mut s = Sampler::new(SamplingParams::default(), Some(3)).unwrap()
    ///     .with_mirostat(1.0, 0.1).unwrap();
    /// let tok = s.sample_batch(&x, 4, false).unwrap().tokens[0];
    /// assert!(tok == 0 || tok == 1);
    /// // Under the truncated set {2/3, 1/3}, the surprise is log2(3/2) or log2(3).
    /// let surprise = if tok == 0 { 1.5f64.log2() } else { 3f64.log2() };
    /// assert!((s.mirostat_mu()[0] - (2.0 - 0.1 * (surprise - 1.0))).abs() < 1e-12);
    /// s.reset();
    /// assert!(s.mirostat_mu().is_empty());
    /// assert!(Sampler::new(SamplingParams::default(), Some(3)).unwrap()
    ///     .with_mirostat(-1.0, 0.1).unwrap_err().to_string().contains("mirostat_tau"));
    /// ```
    pub fn with_mirostat(
        mut self,
        tau: impl Into<RowParam<f64>>,
        eta: impl Into<RowParam<f64>>,
    ) -> Result<Sampler> {
        let (tau, eta) = (tau.into(), eta.into());
        check_mirostat(&tau, &eta, self.rows())?;
        self.mirostat = Some(Mirostat {
            tau,
            eta,
            mu: Vec::new(),
        });
        Ok(self)
    }

    /// Each row's Mirostat 2.0 `mu` (P25): empty when Mirostat is off or before the first
    /// draw after construction or [`Sampler::reset`].
    ///
    /// ```
    /// use logitkit::{Sampler, SamplingParams};
    /// let mut s = Sampler::new(SamplingParams::default(), Some(0)).unwrap()
    ///     .with_mirostat(vec![3.0, 5.0], 0.0).unwrap();
    /// s.sample_batch(&[0.0f32; 8], 4, false).unwrap();
    /// assert_eq!(s.mirostat_mu(), &[6.0, 10.0]); // 2 * tau; eta = 0 keeps it
    /// ```
    pub fn mirostat_mu(&self) -> &[f64] {
        self.mirostat.as_ref().map_or(&[][..], |m| &m.mu[..])
    }

    /// Sets each row's prompt tokens, which fixes the row count. Meant for a sampler that
    /// has not drawn yet: it replaces each row's history, so a sampler that has drawn forgets
    /// its rows' output tokens (the penalties and DRY then see the new prompt alone), while
    /// its call count, and with it its place in the seed's streams (P6), and Mirostat's `mu`
    /// stay. [`Sampler::reset`] restarts everything.
    ///
    /// # Errors
    /// When the row count is already fixed by an earlier call and differs.
    ///
    /// ```
    /// use logitkit::{Sampler, SamplingParams};
    /// // The prompt holds token 0: a strong repetition penalty steers greedy decoding off it.
    /// let params = SamplingParams::greedy().repetition_penalty(4.0);
    /// let mut s = Sampler::new(params, Some(0)).unwrap().with_prompts(vec![vec![0]]).unwrap();
    /// assert_eq!(s.rows(), Some(1));
    /// let d = s.sample_batch(&[2.0f32, 1.0, 0.0], 3, false).unwrap();
    /// assert_eq!(d.tokens, [1]); // 2 / 4 < 1
    /// // The row count is fixed now: prompts for 2 rows are refused.
    /// assert!(s.clone().with_prompts(vec![vec![], vec![]]).is_err());
    /// // New prompts after a draw: the output tokens are gone, the call count stays.
    /// let s = s.with_prompts(vec![vec![2]]).unwrap();
    /// assert!(s.output_tokens(0).is_empty());
    /// assert_eq!(s.calls(), 1);
    /// ```
    pub fn with_prompts(mut self, prompts: Vec<Vec<u32>>) -> Result<Sampler> {
        self.check_rows(prompts.len(), "prompts (one per row of the sampler)")?;
        self.rows = Some(prompts.into_iter().map(RowState::new).collect());
        Ok(self)
    }

    /// The parameters.
    ///
    /// ```
    /// let s = logitkit::Sampler::new(Default::default(), Some(1)).unwrap();
    /// assert_eq!(s.params().top_k.get(0), 0);
    /// ```
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// The seed (the one drawn from the OS when constructed without one).
    ///
    /// ```
    /// let s = logitkit::Sampler::new(Default::default(), Some(9)).unwrap();
    /// assert_eq!(s.seed(), 9);
    /// ```
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The number of successful draws since construction or [`Sampler::reset`]: the index of
    /// the next one.
    ///
    /// ```
    /// let s = logitkit::Sampler::new(Default::default(), Some(9)).unwrap();
    /// assert_eq!(s.calls(), 0);
    /// ```
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// The row count, once fixed by the prompts, a draw or [`Sampler::accept`].
    ///
    /// ```
    /// use logitkit::{Sampler, SamplingParams};
    /// let mut s = Sampler::new(SamplingParams::greedy(), Some(0)).unwrap();
    /// assert_eq!(s.rows(), None);
    /// s.sample_batch(&[0.0f32, 1.0, 1.0, 0.0, 0.5, 0.5], 2, false).unwrap(); // 3 rows of 2
    /// assert_eq!(s.rows(), Some(3));
    /// // A batch of another size is refused.
    /// assert!(s.sample_batch(&[0.0f32, 1.0], 2, false).is_err());
    /// ```
    pub fn rows(&self) -> Option<usize> {
        self.rows.as_ref().map(Vec::len)
    }

    /// Row `row`'s output tokens, oldest first (empty for a row not yet known).
    ///
    /// ```
    /// use logitkit::{Sampler, SamplingParams};
    /// let mut s = Sampler::new(SamplingParams::greedy(), Some(0)).unwrap();
    /// assert!(s.output_tokens(0).is_empty());
    /// s.sample_batch(&[0.0f32, 1.0, 1.0, 0.0], 2, false).unwrap();
    /// s.sample_batch(&[1.0f32, 0.0, 1.0, 0.0], 2, false).unwrap();
    /// assert_eq!(s.output_tokens(0), &[1, 0]);
    /// assert_eq!(s.output_tokens(1), &[0, 0]);
    /// assert!(s.output_tokens(2).is_empty()); // no such row
    /// ```
    pub fn output_tokens(&self, row: usize) -> &[u32] {
        self.rows
            .as_ref()
            .and_then(|r| r.get(row))
            .map_or(&[][..], |s| &s.output[..])
    }

    /// Empties the output histories and restarts the seed stream (the next draw is draw 0
    /// again), keeping the prompts and the row count.
    ///
    /// ```
    /// use logitkit::{Sampler, SamplingParams};
    /// let logits = [1.0f32, 1.1, 0.9, 1.0];
    /// let mut s = Sampler::new(SamplingParams::default(), Some(42)).unwrap();
    /// let draw = |s: &mut Sampler| s.sample_batch(&logits, 4, false).unwrap().tokens[0];
    /// let first: Vec<i64> = (0..5).map(|_| draw(&mut s)).collect();
    /// s.reset();
    /// assert_eq!((s.calls(), s.output_tokens(0).len(), s.rows()), (0, 0, Some(1)));
    /// // The same seed stream again: the same tokens.
    /// let again: Vec<i64> = (0..5).map(|_| draw(&mut s)).collect();
    /// assert_eq!(first, again);
    /// ```
    pub fn reset(&mut self) {
        self.calls = 0;
        for r in self.rows.iter_mut().flatten() {
            r.restart();
        }
        if let Some(m) = &mut self.mirostat {
            m.mu.clear();
        }
    }

    /// `rows` against the sampler's row count, `name` what gave them (for the error).
    fn check_rows(&self, rows: usize, name: &'static str) -> Result<()> {
        match self.rows() {
            Some(have) if have != rows => Err(Error::LengthMismatch {
                name,
                got: rows,
                expected: have,
            }),
            _ => Ok(()),
        }
    }

    /// Appends tokens chosen elsewhere to the histories, without drawing (the seed stream does
    /// not advance): one sequence per row (empty for none).
    ///
    /// # Errors
    /// A row count other than the sampler's, or an id outside the vocabulary of the last
    /// draw (before the first draw, ids are checked at the next one). Nothing is appended
    /// when an error is returned.
    ///
    /// ```
    /// use logitkit::{Sampler, SamplingParams};
    /// let mut s = Sampler::new(SamplingParams::greedy(), Some(0)).unwrap();
    /// s.sample_batch(&[0.0f32, 2.0, 1.0], 3, false).unwrap();
    /// // Token 2 forced, e.g. by a grammar with a single choice: no draw, no new call.
    /// s.accept(&[vec![2]]).unwrap();
    /// assert_eq!(s.output_tokens(0), &[1, 2]);
    /// assert_eq!(s.calls(), 1);
    /// // Id 3 is outside the vocabulary of the last draw (3 tokens): refused, nothing appended.
    /// assert!(s.accept(&[vec![0, 3]]).is_err());
    /// assert_eq!(s.output_tokens(0), &[1, 2]);
    /// ```
    pub fn accept(&mut self, tokens: &[Vec<u32>]) -> Result<()> {
        self.check_rows(tokens.len(), "tokens (one sequence per row of the sampler)")?;
        if let Some(vocab) = self.vocab {
            for (r, toks) in tokens.iter().enumerate() {
                if let Some(&id) = toks.iter().find(|&&t| t as usize >= vocab) {
                    return Err(bad_id("tokens", r, id as i128, vocab));
                }
            }
        }
        let known = self.rows.is_some();
        let mut rows = match self.rows.take() {
            Some(rows) => rows,
            None => fresh_states(tokens.len())?,
        };
        // Room first, so that refused memory fails the call with nothing changed (R1).
        let reserved = rows
            .iter_mut()
            .zip(tokens)
            .try_for_each(|(r, toks)| r.reserve(toks.len()));
        if reserved.is_ok() {
            for (r, toks) in rows.iter_mut().zip(tokens) {
                for &t in toks {
                    r.push(t);
                }
            }
        }
        if reserved.is_ok() || known {
            self.rows = Some(rows);
        }
        reserved
    }

    /// Draws one token per row and appends it to the row's history: [`Draws`] as
    /// [`sample_batch`](super::sample_batch) gives them.
    ///
    /// # Errors
    /// As [`sample_batch`](super::sample_batch), and a row count other than the sampler's, or
    /// a history id outside `[0, vocab)`. A failed call draws nothing, appends nothing and is
    /// not counted.
    ///
    /// ```
    /// use logitkit::{Sampler, SamplingParams};
    /// // Two rows, greedy, with the chosen tokens' log-probabilities and the top 2 of each row.
    /// let params = SamplingParams::greedy().top_logprobs(2);
    /// let mut s = Sampler::new(params, Some(7)).unwrap();
    /// let d = s.sample_batch(&[0.0f32, 3.0, 1.0, 2.0, 0.0, 1.0], 3, true).unwrap();
    /// assert_eq!(d.tokens, [1, 0]);
    /// assert_eq!(d.logprobs, [0.0, 0.0]); // greedy: certain
    /// assert_eq!(d.top_ids[..1], [1]);
    /// assert_eq!(d.top_ids[2..3], [0]);
    /// assert_eq!((s.calls(), s.output_tokens(1)), (1, &[0][..]));
    /// // A failed call (a NaN logit) draws nothing and appends nothing.
    /// assert!(s.sample_batch(&[f32::NAN, 0.0, 0.0, 0.0, 0.0, 0.0], 3, true).is_err());
    /// assert_eq!((s.calls(), s.output_tokens(1)), (1, &[0][..]));
    /// ```
    pub fn sample_batch<T: Float>(
        &mut self,
        logits: &[T],
        vocab: usize,
        with_logprobs: bool,
    ) -> Result<Draws> {
        self.sample_batch_of(Rows::contiguous(logits, vocab)?, with_logprobs)
    }

    /// [`sample_batch`](Self::sample_batch) of rows read where they are.
    pub(crate) fn sample_batch_of<T: Float>(
        &mut self,
        logits: Rows<'_, T>,
        with_logprobs: bool,
    ) -> Result<Draws> {
        let (rows, vocab) = (logits.count, logits.vocab);
        self.check_rows(rows, "logits rows (the sampler's row count)")?;
        let known = self.rows.is_some();
        let mut states = match self.rows.take() {
            Some(states) => states,
            None => fresh_states(rows)?,
        };
        let drawn = (|| {
            for s in &mut states {
                s.prepare(vocab)?;
            }
            for (r, s) in states.iter().enumerate() {
                if let Some((name, id)) = s.id_beyond(vocab) {
                    // Ids accepted before the first call (no vocabulary to check them against
                    // then) or drawn over a larger vocabulary: named as the sampler's history.
                    return Err(match bad_id(name, r, id as i128, vocab) {
                        Error::InvalidParameter {
                            name: "output_tokens",
                            value,
                            ..
                        } => Error::InvalidParameter {
                            name: "output_tokens",
                            value,
                            expected: "token ids in [0, V) for the logits' vocabulary V (the \
                                       sampler's history; reset() clears it)",
                        },
                        other => other,
                    });
                }
            }
            let source = Source::Kept(&states);
            check_call(&self.params, rows, vocab, &source)?;
            let mus = match &self.mirostat {
                Some(m) => {
                    check_mirostat(&m.tau, &m.eta, Some(rows))?;
                    let mus = if m.mu.len() == rows {
                        crate::scratch::collected(rows, m.mu.iter().copied(), MUS)?
                    } else {
                        crate::scratch::collected(rows, (0..rows).map(|r| 2.0 * m.tau.get(r)), MUS)?
                    };
                    Some(mus)
                }
                None => None,
            };
            let streams = Streams::for_sampler(self.seed, self.calls);
            let (d, lps) = draw_rows(
                logits,
                &self.params,
                source,
                &streams,
                with_logprobs,
                mus.as_deref(),
            )?;
            // Room in every row's history first: a refused allocation fails the call with
            // nothing changed (R1), before Mirostat's state moves on.
            for s in &mut states {
                s.reserve(1)?;
            }
            if let (Some(m), Some(mut mus)) = (&mut self.mirostat, mus) {
                for (r, (mu, lp)) in mus.iter_mut().zip(&lps).enumerate() {
                    let surprise = -lp / std::f64::consts::LN_2;
                    if !surprise.is_finite() {
                        // A drawn token of probability 0 (another thread wrote the logits
                        // during the call, R3) says nothing of the target: mu is kept.
                        continue;
                    }
                    // Saturates within the finite doubles: a huge eta would otherwise make it
                    // infinite, then NaN.
                    let next = *mu - m.eta.get(r) * (surprise - m.tau.get(r));
                    *mu = if next.is_nan() {
                        *mu
                    } else {
                        next.clamp(-f64::MAX, f64::MAX)
                    };
                }
                m.mu = mus;
            }
            Ok(d)
        })();
        if let Ok(d) = &drawn {
            for (s, &t) in states.iter_mut().zip(&d.tokens) {
                s.push(t as u32);
            }
            self.calls += 1;
            self.vocab = Some(vocab);
        }
        // A failed first draw leaves the row count unknown, as it was.
        if drawn.is_ok() || known {
            self.rows = Some(states);
        }
        drawn
    }

    /// [`Sampler::sample_batch`] writing into `tokens` (and `logprobs`).
    ///
    /// ```
    /// let mut s = logitkit::Sampler::new(logitkit::SamplingParams::greedy(), Some(1)).unwrap();
    /// let mut tok = [0i64; 2];
    /// s.sample_rows(&[0.0f32, 1.0, 3.0, 2.0], 2, &mut tok, None).unwrap();
    /// assert_eq!(tok, [1, 0]);
    /// assert!(s.sample_rows(&[f32::NAN, 1.0, 0.0, 0.0], 2, &mut tok, None).is_err());
    /// assert_eq!(s.calls(), 1);
    /// ```
    ///
    /// # Errors
    /// As [`Sampler::sample_batch`], and outputs of the wrong length.
    pub fn sample_rows<T: Float>(
        &mut self,
        logits: &[T],
        vocab: usize,
        tokens: &mut [i64],
        logprobs: Option<&mut [f64]>,
    ) -> Result<()> {
        let rows = rows_of(logits.len(), vocab)?;
        check_outputs(rows, tokens, logprobs.as_deref())?;
        let d = self.sample_batch(logits, vocab, logprobs.is_some())?;
        write_draws(&d, tokens, logprobs);
        Ok(())
    }
}
/// What the sampler's Mirostat `mu`s are called in an allocation error.
const MUS: &str = "Mirostat's mu of each row";

/// The state of `rows` rows that have drawn nothing yet, or an error if the memory for it is
/// refused (contract R1: never an abort).
fn fresh_states(rows: usize) -> Result<Vec<RowState>> {
    let mut states = Vec::new();
    crate::scratch::reserve(&mut states, rows, "the sampler's row states")?;
    states.resize(rows, RowState::default());
    Ok(states)
}
