//! Sampling parameters: one value for every row or one per row (contract P2), and their
//! validation (contract P8).

use crate::error::{Error, Result};

/// One parameter of a sampling call: the same value for every row, or one value per row.
///
/// ```
/// use logitkit::RowParam;
/// let t: RowParam<f64> = 0.7.into();
/// let per_row: RowParam<f64> = vec![0.5, 1.0].into();
/// assert_eq!(t.get(3), 0.7);
/// assert_eq!(per_row.get(1), 1.0);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum RowParam<T> {
    /// The same value for every row.
    All(T),
    /// One value per row, in row order (C order over the leading dimensions).
    PerRow(Vec<T>),
}

impl<T: Copy> RowParam<T> {
    /// The value for row `row`.
    ///
    /// # Panics
    /// For a per-row parameter with fewer than `row + 1` values.
    ///
    /// ```
    /// let k: logitkit::RowParam<i64> = vec![5, 0].into();
    /// assert_eq!(k.get(0), 5);
    /// ```
    #[inline]
    pub fn get(&self, row: usize) -> T {
        match self {
            RowParam::All(v) => *v,
            RowParam::PerRow(v) => v[row],
        }
    }

    /// Every value the parameter holds (one for [`RowParam::All`]).
    ///
    /// ```
    /// let p: logitkit::RowParam<f64> = 0.9.into();
    /// assert_eq!(p.values(), &[0.9]);
    /// ```
    pub fn values(&self) -> &[T] {
        match self {
            RowParam::All(v) => std::slice::from_ref(v),
            RowParam::PerRow(v) => v,
        }
    }

    fn check(
        &self,
        name: &'static str,
        rows: Option<usize>,
        ok: impl Fn(T) -> bool,
        expected: &'static str,
    ) -> Result<()>
    where
        T: std::fmt::Display,
    {
        if let (RowParam::PerRow(v), Some(rows)) = (self, rows) {
            if v.len() != rows {
                return Err(Error::LengthMismatch {
                    name,
                    got: v.len(),
                    expected: rows,
                });
            }
        }
        match self.values().iter().find(|&&v| !ok(v)) {
            Some(&bad) => Err(Error::invalid(name, bad, expected)),
            None => Ok(()),
        }
    }
}

macro_rules! row_param_from {
    ($t:ty) => {
        impl From<$t> for RowParam<$t> {
            fn from(v: $t) -> Self {
                RowParam::All(v)
            }
        }
        impl From<Vec<$t>> for RowParam<$t> {
            fn from(v: Vec<$t>) -> Self {
                RowParam::PerRow(v)
            }
        }
        impl From<&[$t]> for RowParam<$t> {
            fn from(v: &[$t]) -> Self {
                RowParam::PerRow(v.to_vec())
            }
        }
        impl<const N: usize> From<[$t; N]> for RowParam<$t> {
            fn from(v: [$t; N]) -> Self {
                RowParam::PerRow(v.to_vec())
            }
        }
    };
}
row_param_from!(f64);
row_param_from!(i64);

/// Where the log-probabilities of [`Draws`](super::Draws) come from (contract P15).
///
/// ```
/// use logitkit::LogprobsMode;
/// assert_eq!("processed".parse::<LogprobsMode>().unwrap(), LogprobsMode::Processed);
/// assert!("other".parse::<LogprobsMode>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LogprobsMode {
    /// The distribution the token was drawn from: after every stage, renormalised over the
    /// kept tokens (removed tokens have `-inf`).
    #[default]
    Sampled,
    /// `log_softmax` after masks, bias, penalties and temperature, before top-k, top-p and
    /// min-p (at temperature 0: without temperature).
    Processed,
    /// `log_softmax` of the logits as passed in.
    Raw,
}

impl std::str::FromStr for LogprobsMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sampled" => Ok(LogprobsMode::Sampled),
            "processed" => Ok(LogprobsMode::Processed),
            "raw" => Ok(LogprobsMode::Raw),
            _ => Err(Error::invalid(
                "logprobs_mode",
                format!("{s:?}"),
                "one of \"sampled\", \"processed\", \"raw\"",
            )),
        }
    }
}

/// A value given once for every row, or once per row with `None` for a row it does not
/// apply to (allowed token ids, logit bias).
///
/// ```
/// use logitkit::PerRow;
/// let every: PerRow<Vec<u32>> = PerRow::All(vec![1, 2]);
/// assert_eq!(every.get(5), Some(&vec![1, 2]));
/// let rows = PerRow::Rows(vec![None, Some(vec![3])]);
/// assert_eq!(rows.get(0), None);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum PerRow<T> {
    /// The same value for every row.
    All(T),
    /// One entry per row; `None` leaves that row alone.
    Rows(Vec<Option<T>>),
}

impl<T> PerRow<T> {
    /// The value for row `row` (`None` when the row has none, or past the rows given).
    ///
    /// ```
    /// use logitkit::PerRow;
    /// let bias = PerRow::Rows(vec![Some(vec![(3u32, -1.0)]), None]);
    /// assert_eq!(bias.get(0), Some(&vec![(3, -1.0)]));
    /// assert_eq!(bias.get(1), None); // no bias for row 1
    /// assert_eq!(bias.get(2), None); // past the rows given
    /// assert_eq!(PerRow::All(5).get(100), Some(&5));
    /// ```
    pub fn get(&self, row: usize) -> Option<&T> {
        match self {
            PerRow::All(v) => Some(v),
            PerRow::Rows(v) => v.get(row).and_then(Option::as_ref),
        }
    }

    fn values(&self) -> impl Iterator<Item = (Option<usize>, &T)> {
        let (all, rows) = match self {
            PerRow::All(v) => (Some(v), &[][..]),
            PerRow::Rows(v) => (None, &v[..]),
        };
        all.map(|v| (None, v)).into_iter().chain(
            rows.iter()
                .enumerate()
                .filter_map(|(i, v)| v.as_ref().map(|v| (Some(i), v))),
        )
    }

    fn check_rows(&self, name: &'static str, rows: Option<usize>) -> Result<()> {
        match (self, rows) {
            (PerRow::Rows(v), Some(r)) if v.len() != r => Err(Error::LengthMismatch {
                name,
                got: v.len(),
                expected: r,
            }),
            _ => Ok(()),
        }
    }
}

/// A token bitmask in the layout of xgrammar, llguidance and outlines (contract P11): token
/// `j` is allowed iff bit `j % 32` of word `j / 32` is set. Tokens at `j >= 32 * width` are
/// banned; bits at `j >= V` are ignored.
///
/// ```
/// use logitkit::TokenBitmask;
/// let m = TokenBitmask::all_rows(vec![0b101]);
/// assert!(m.allows(0, 0) && !m.allows(0, 1) && m.allows(0, 2) && !m.allows(0, 40));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBitmask {
    words: Vec<u32>,
    width: usize,
    /// The row count of a per-row mask (`None`: one mask for every row).
    rows: Option<usize>,
}

impl TokenBitmask {
    /// One mask of `words.len()` words for every row.
    ///
    /// ```
    /// use logitkit::{filter_logits_rows, SamplingParams, TokenBitmask};
    /// // Tokens 1 and 2 allowed (bits 1 and 2 of word 0), for both rows.
    /// let mask = TokenBitmask::all_rows(vec![0b0110]);
    /// let params = SamplingParams::default().token_bitmask(mask);
    /// let mut out = [0.0f32; 8];
    /// let logits = [1.0, 2.0, 3.0, 4.0, /* row 1 */ 4.0, 3.0, 2.0, 1.0];
    /// filter_logits_rows(&logits, 4, &params, &mut out).unwrap();
    /// let ninf = f32::NEG_INFINITY;
    /// assert_eq!(out, [ninf, 2.0, 3.0, ninf, ninf, 3.0, 2.0, ninf]);
    /// ```
    pub fn all_rows(words: Vec<u32>) -> Self {
        let width = words.len();
        TokenBitmask {
            words,
            width,
            rows: None,
        }
    }

    /// One mask per row: `words` holds the `rows` masks of `width` words one after the other.
    ///
    /// # Errors
    /// When `words.len()` is not `rows * width`.
    ///
    /// ```
    /// use logitkit::TokenBitmask;
    /// // Two rows of 2 words (64 tokens): row 0 allows token 0, row 1 token 33.
    /// let mask = TokenBitmask::per_row(vec![0b1, 0, 0, 0b10], 2, 2).unwrap();
    /// assert!(mask.allows(0, 0) && !mask.allows(0, 33));
    /// assert!(mask.allows(1, 33) && !mask.allows(1, 0));
    /// assert!(TokenBitmask::per_row(vec![0; 3], 2, 2).is_err()); // 3 words, not 2 * 2
    /// ```
    pub fn per_row(words: Vec<u32>, rows: usize, width: usize) -> Result<Self> {
        if Some(words.len()) != rows.checked_mul(width) {
            return Err(Error::invalid(
                "token_bitmask",
                format!("{} words for {rows} rows of {width}", words.len()),
                "rows of equal width",
            ));
        }
        Ok(TokenBitmask {
            words,
            width,
            rows: Some(rows),
        })
    }

    /// The words of row `row`.
    ///
    /// ```
    /// use logitkit::TokenBitmask;
    /// let per_row = TokenBitmask::per_row(vec![1, 2, 3, 4], 2, 2).unwrap();
    /// assert_eq!(per_row.row(1), &[3, 4]);
    /// let shared = TokenBitmask::all_rows(vec![9]);
    /// assert_eq!(shared.row(0), shared.row(5)); // the same words for every row
    /// assert!(per_row.row(2).is_empty()); // past the rows: no words
    /// ```
    pub fn row(&self, row: usize) -> &[u32] {
        match self.rows {
            // Past the mask's rows: no words, so every token is banned (no panic).
            Some(rows) if row >= rows => &[],
            Some(_) => &self.words[row * self.width..][..self.width],
            None => &self.words,
        }
    }

    /// Whether row `row` allows token `j`.
    ///
    /// ```
    /// use logitkit::TokenBitmask;
    /// // Token j is bit j % 32 of word j / 32.
    /// let mask = TokenBitmask::all_rows(vec![0, 1 << 5]);
    /// assert!(mask.allows(0, 37));
    /// assert!(!mask.allows(0, 5));
    /// assert!(!mask.allows(0, 64)); // beyond the mask: banned
    /// let per_row = TokenBitmask::per_row(vec![1, 2], 2, 1).unwrap();
    /// assert!(!per_row.allows(5, 0)); // past the mask's rows: banned
    /// ```
    pub fn allows(&self, row: usize, j: usize) -> bool {
        self.row(row)
            .get(j / 32)
            .is_some_and(|w| (w >> (j % 32)) & 1 == 1)
    }

    fn rows(&self) -> Option<usize> {
        self.rows
    }
}

/// The parameters of a sampling call, each one value for every row or one per row (contract
/// P2): the processing of P11-P13 and P24 (masks, bias, penalties, DRY), then temperature,
/// top-k, top-p and min-p (P3), the samplers of P20-P26, and what to report (P15). Build with
/// the setters; every parameter's default disables it, and a disabled stage costs nothing.
///
/// ```
/// use logitkit::SamplingParams;
/// let params = SamplingParams::default()
///     .temperature(0.8)
///     .top_k(50)
///     .top_p(0.9)
///     .repetition_penalty(1.1)
///     .logit_bias(vec![(42, -5.0)]);
/// assert!(params.validate(1).is_ok());
/// let bad = SamplingParams::default().top_p(1.5);
/// let msg = bad.validate(1).unwrap_err().to_string();
/// assert!(msg.contains("top_p") && msg.contains("1.5"));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SamplingParams {
    /// Temperature, `>= 0` and finite; `0` is greedy.
    pub temperature: RowParam<f64>,
    /// Top-k, `>= 0`; `0` (or `>= V`) disables it.
    pub top_k: RowParam<i64>,
    /// Top-p (nucleus), in `[0, 1]`; `1` disables it.
    pub top_p: RowParam<f64>,
    /// Min-p, in `[0, 1]`; `0` disables it.
    pub min_p: RowParam<f64>,
    /// The only token ids a row may draw (P11).
    pub allowed_token_ids: Option<PerRow<Vec<u32>>>,
    /// A grammar's token bitmask (P11).
    pub token_bitmask: Option<TokenBitmask>,
    /// Banned token sequences, for every row (P11).
    pub bad_words: Vec<Vec<u32>>,
    /// While a row has fewer output tokens than this, its stop tokens are banned (P11).
    pub min_tokens: RowParam<i64>,
    /// The stop tokens that `min_tokens` holds back.
    pub stop_token_ids: Vec<u32>,
    /// `(token, bias)` pairs added to the logits after the masks (P12); a bias is finite or
    /// `-inf`.
    pub logit_bias: Option<PerRow<Vec<(u32, f64)>>>,
    /// Repetition penalty `r > 0` over prompt and output tokens; `1` disables it (P13).
    pub repetition_penalty: RowParam<f64>,
    /// Frequency penalty, finite; `0` disables it (P13).
    pub frequency_penalty: RowParam<f64>,
    /// Presence penalty, finite; `0` disables it (P13).
    pub presence_penalty: RowParam<f64>,
    /// How many most probable alternatives to report per row (P15).
    pub top_logprobs: usize,
    /// The distribution log-probabilities come from (P15).
    pub logprobs_mode: LogprobsMode,
    /// Locally typical sampling, in `(0, 1]`; `1` disables it (P20).
    pub typical_p: RowParam<f64>,
    /// Top-n-sigma, `n >= 0` and finite; `0` disables it (P21).
    pub top_n_sigma: RowParam<f64>,
    /// Epsilon cutoff, in `[0, 1)`; `0` disables it (P22).
    pub epsilon_cutoff: RowParam<f64>,
    /// Eta cutoff, in `[0, 1)`; `0` disables it (P22).
    pub eta_cutoff: RowParam<f64>,
    /// XTC's threshold, in `[0, 1]` (default 0.1) (P23).
    pub xtc_threshold: RowParam<f64>,
    /// XTC's probability, in `[0, 1]`; `0` disables XTC (P23).
    pub xtc_probability: RowParam<f64>,
    /// Dynamic temperature's range, `>= 0` and finite; `0` disables it (P26).
    pub dynatemp_range: RowParam<f64>,
    /// Dynamic temperature's exponent, `>= 0` and finite (default 1) (P26).
    pub dynatemp_exponent: RowParam<f64>,
    /// DRY's multiplier, `>= 0` and finite; `0` disables DRY (P24).
    pub dry_multiplier: RowParam<f64>,
    /// DRY's base, `>= 1` and finite (default 1.75) (P24).
    pub dry_base: RowParam<f64>,
    /// DRY's allowed length, an integer `>= 0` (default 2) (P24).
    pub dry_allowed_length: RowParam<i64>,
    /// How many of the last output tokens DRY reads, an integer `>= -1`: `-1` (the default)
    /// all of them, `0` disables DRY (P24).
    pub dry_penalty_last_n: RowParam<i64>,
    /// DRY's sequence breakers, single token ids, for every row (P24).
    pub dry_sequence_breakers: Vec<u32>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: RowParam::All(1.0),
            top_k: RowParam::All(0),
            top_p: RowParam::All(1.0),
            min_p: RowParam::All(0.0),
            allowed_token_ids: None,
            token_bitmask: None,
            bad_words: Vec::new(),
            min_tokens: RowParam::All(0),
            stop_token_ids: Vec::new(),
            logit_bias: None,
            repetition_penalty: RowParam::All(1.0),
            frequency_penalty: RowParam::All(0.0),
            presence_penalty: RowParam::All(0.0),
            top_logprobs: 0,
            logprobs_mode: LogprobsMode::Sampled,
            typical_p: RowParam::All(1.0),
            top_n_sigma: RowParam::All(0.0),
            epsilon_cutoff: RowParam::All(0.0),
            eta_cutoff: RowParam::All(0.0),
            xtc_threshold: RowParam::All(0.1),
            xtc_probability: RowParam::All(0.0),
            dynatemp_range: RowParam::All(0.0),
            dynatemp_exponent: RowParam::All(1.0),
            dry_multiplier: RowParam::All(0.0),
            dry_base: RowParam::All(1.75),
            dry_allowed_length: RowParam::All(2),
            dry_penalty_last_n: RowParam::All(-1),
            dry_sequence_breakers: Vec::new(),
        }
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $t:ty;)*) => {$(
        $(#[$doc])*
        #[must_use]
        pub fn $name(mut self, v: impl Into<$t>) -> Self {
            self.$name = v.into();
            self
        }
    )*};
}

impl SamplingParams {
    /// Greedy decoding: temperature 0.
    ///
    /// ```
    /// let p = logitkit::SamplingParams::greedy();
    /// assert_eq!(p.temperature.get(0), 0.0);
    /// ```
    pub fn greedy() -> Self {
        SamplingParams::default().temperature(0.0)
    }

    setters! {
        /// Sets `temperature` (one value, or a `Vec` of one per row).
        ///
        /// ```
        /// use logitkit::{filter_logits_rows, SamplingParams};
        /// // Row 0 at T = 0.5, row 1 at T = 2: kept logits are divided by them.
        /// let params = SamplingParams::default().temperature(vec![0.5, 2.0]);
        /// let mut out = [0.0f32; 4];
        /// filter_logits_rows(&[1.0, 2.0, 1.0, 2.0], 2, &params, &mut out).unwrap();
        /// assert_eq!(out, [2.0, 4.0, 0.5, 1.0]);
        /// ```
        temperature: RowParam<f64>;
        /// Sets `top_k`.
        ///
        /// ```
        /// use logitkit::{filter_logits, SamplingParams};
        /// let mut out = [0.0f32; 4];
        /// filter_logits(&[1.0, 3.0, 2.0, 0.0], &SamplingParams::default().top_k(2), &mut out)
        ///     .unwrap();
        /// assert_eq!(out, [f32::NEG_INFINITY, 3.0, 2.0, f32::NEG_INFINITY]);
        /// ```
        top_k: RowParam<i64>;
        /// Sets `top_p`.
        ///
        /// ```
        /// use logitkit::{filter_logits, SamplingParams};
        /// // Probabilities 0.6, 0.3 and 0.1: the smallest set holding 0.8 of the mass is the
        /// // first two tokens.
        /// let logits = [0.6f64.ln(), 0.3f64.ln(), 0.1f64.ln()];
        /// let mut out = [0.0f64; 3];
        /// filter_logits(&logits, &SamplingParams::default().top_p(0.8), &mut out).unwrap();
        /// assert_eq!(out, [logits[0], logits[1], f64::NEG_INFINITY]);
        /// ```
        top_p: RowParam<f64>;
        /// Sets `min_p`.
        ///
        /// ```
        /// use logitkit::{filter_logits, SamplingParams};
        /// // Probabilities 0.6, 0.3 and 0.1: min_p 0.25 removes those below 0.25 * 0.6 = 0.15.
        /// let logits = [0.6f64.ln(), 0.3f64.ln(), 0.1f64.ln()];
        /// let mut out = [0.0f64; 3];
        /// filter_logits(&logits, &SamplingParams::default().min_p(0.25), &mut out).unwrap();
        /// assert_eq!(out, [logits[0], logits[1], f64::NEG_INFINITY]);
        /// ```
        min_p: RowParam<f64>;
        /// Sets `min_tokens`.
        ///
        /// ```
        /// use logitkit::{filter_logits_batch, Histories, SamplingParams};
        /// // Stop token 0 is banned while a row has fewer than 2 output tokens.
        /// let params = SamplingParams::default().min_tokens(2).stop_token_ids(vec![0]);
        /// let outputs = vec![vec![3], vec![3, 1]];
        /// let h = Histories::new().output_tokens(&outputs);
        /// let mut out = [0.0f32; 8];
        /// filter_logits_batch(&[1.0; 8], 4, &params, &h, &mut out).unwrap();
        /// assert_eq!(out[..4], [f32::NEG_INFINITY, 1.0, 1.0, 1.0]); // 1 token so far
        /// assert_eq!(out[4..], [1.0; 4]); // 2 tokens: it may stop
        /// ```
        min_tokens: RowParam<i64>;
        /// Sets `repetition_penalty`.
        ///
        /// ```
        /// use logitkit::{filter_logits_batch, Histories, SamplingParams};
        /// // Tokens 0 and 1 were seen: a positive logit is divided by 2, a negative one doubled.
        /// let outputs = vec![vec![0, 1]];
        /// let h = Histories::new().output_tokens(&outputs);
        /// let params = SamplingParams::default().repetition_penalty(2.0);
        /// let mut out = [0.0f32; 3];
        /// filter_logits_batch(&[3.0, -1.0, 2.0], 3, &params, &h, &mut out).unwrap();
        /// assert_eq!(out, [1.5, -2.0, 2.0]);
        /// ```
        repetition_penalty: RowParam<f64>;
        /// Sets `frequency_penalty`.
        ///
        /// ```
        /// use logitkit::{filter_logits_batch, Histories, SamplingParams};
        /// // Subtracts 0.25 per earlier occurrence in the output: token 2 came 3 times.
        /// let outputs = vec![vec![2, 2, 0, 2]];
        /// let h = Histories::new().output_tokens(&outputs);
        /// let params = SamplingParams::default().frequency_penalty(0.25);
        /// let mut out = [0.0f32; 3];
        /// filter_logits_batch(&[1.0, 1.0, 1.0], 3, &params, &h, &mut out).unwrap();
        /// assert_eq!(out, [0.75, 1.0, 0.25]);
        /// ```
        frequency_penalty: RowParam<f64>;
        /// Sets `presence_penalty`.
        ///
        /// ```
        /// use logitkit::{filter_logits_batch, Histories, SamplingParams};
        /// // Subtracts 0.5 once from every token in the output, however often it came.
        /// let outputs = vec![vec![2, 2, 0, 2]];
        /// let h = Histories::new().output_tokens(&outputs);
        /// let params = SamplingParams::default().presence_penalty(0.5);
        /// let mut out = [0.0f32; 3];
        /// filter_logits_batch(&[1.0, 1.0, 1.0], 3, &params, &h, &mut out).unwrap();
        /// assert_eq!(out, [0.5, 1.0, 0.5]);
        /// ```
        presence_penalty: RowParam<f64>;
        /// Sets `bad_words`.
        ///
        /// ```
        /// use logitkit::{filter_logits_batch, Histories, SamplingParams};
        /// // Token 3 is always banned; token 1 only right after token 0.
        /// let params = SamplingParams::default().bad_words(vec![vec![3], vec![0, 1]]);
        /// let outputs = vec![vec![2, 0], vec![0, 2]];
        /// let h = Histories::new().output_tokens(&outputs);
        /// let mut out = [0.0f32; 8];
        /// filter_logits_batch(&[1.0; 8], 4, &params, &h, &mut out).unwrap();
        /// let ninf = f32::NEG_INFINITY;
        /// assert_eq!(out, [1.0, ninf, 1.0, ninf, 1.0, 1.0, 1.0, ninf]);
        /// ```
        bad_words: Vec<Vec<u32>>;
        /// Sets `stop_token_ids`.
        ///
        /// ```
        /// use logitkit::{filter_logits, SamplingParams};
        /// // The stop tokens only matter with `min_tokens`: with no output yet, they are banned.
        /// let params = SamplingParams::default().stop_token_ids(vec![2, 3]).min_tokens(1);
        /// let mut out = [0.0f32; 4];
        /// filter_logits(&[1.0; 4], &params, &mut out).unwrap();
        /// assert_eq!(out, [1.0, 1.0, f32::NEG_INFINITY, f32::NEG_INFINITY]);
        /// ```
        stop_token_ids: Vec<u32>;
        /// Sets `logprobs_mode`.
        ///
        /// ```
        /// use logitkit::{sample_batch, Histories, LogprobsMode, SamplingParams, Seed};
        /// // Probabilities 1/4 and 3/4; greedy decoding picks token 1.
        /// let logits = [0.0f64, 3f64.ln()];
        /// let draw = |mode| {
        ///     let params = SamplingParams::greedy().logprobs_mode(mode);
        ///     sample_batch(&logits, 2, &params, &Histories::new(), &Seed::Fixed(0), true).unwrap()
        /// };
        /// // Drawn from: certainty (greedy). Raw logits: log(3/4).
        /// assert_eq!(draw(LogprobsMode::Sampled).logprobs, [0.0]);
        /// assert!((draw(LogprobsMode::Raw).logprobs[0] - 0.75f64.ln()).abs() < 1e-15);
        /// ```
        logprobs_mode: LogprobsMode;
        /// Sets `typical_p` (P20): keep the fewest tokens, by `|-ln p - H|` ascending (`H` the
        /// entropy of the kept distribution), whose probability reaches `typical_p`.
        ///
        /// ```
        /// use logitkit::{filter_logits, SamplingParams};
        /// let mut out = [0.0f64; 3];
        /// // Probabilities 0.5, 0.4, 0.1: the two closest to the entropy hold 0.9 >= 0.8.
        /// let x = [0.5f64.ln(), 0.4f64.ln(), 0.1f64.ln()];
        /// filter_logits(&x, &SamplingParams::default().typical_p(0.8), &mut out).unwrap();
        /// assert!(out[0].is_finite() && out[1].is_finite() && out[2] == f64::NEG_INFINITY);
        /// ```
        typical_p: RowParam<f64>;
        /// Sets `top_n_sigma` (P21): keep the tokens whose scaled logit is at least the
        /// largest minus `n` standard deviations of the kept scaled logits.
        ///
        /// ```
        /// use logitkit::{filter_logits, SamplingParams};
        /// let mut out = [0.0f64; 4];
        /// // Mean 1, population sigma 1: keep x >= 2 - 1.
        /// let p = SamplingParams::default().top_n_sigma(1.0);
        /// filter_logits(&[2.0, 2.0, 0.0, 0.0], &p, &mut out).unwrap();
        /// assert_eq!(out, [2.0, 2.0, f64::NEG_INFINITY, f64::NEG_INFINITY]);
        /// ```
        top_n_sigma: RowParam<f64>;
        /// Sets `epsilon_cutoff` (P22): keep the tokens with probability `>= e` (the most
        /// probable always).
        ///
        /// ```
        /// use logitkit::{filter_logits, SamplingParams};
        /// let mut out = [0.0f64; 3];
        /// let x = [0.7f64.ln(), 0.25f64.ln(), 0.05f64.ln()];
        /// filter_logits(&x, &SamplingParams::default().epsilon_cutoff(0.1), &mut out).unwrap();
        /// assert_eq!(out[2], f64::NEG_INFINITY);
        /// ```
        epsilon_cutoff: RowParam<f64>;
        /// Sets `eta_cutoff` (P22): keep the tokens with probability
        /// `>= min(eta, sqrt(eta) * exp(-H))` (the most probable always).
        ///
        /// ```
        /// use logitkit::{filter_logits, SamplingParams};
        /// let mut out = [0.0f64; 3];
        /// let x = [0.9f64.ln(), 0.09f64.ln(), 0.01f64.ln()];
        /// filter_logits(&x, &SamplingParams::default().eta_cutoff(0.05), &mut out).unwrap();
        /// assert_eq!(out[2], f64::NEG_INFINITY); // the bound is min(0.05, 0.22 * exp(-0.36))
        /// ```
        eta_cutoff: RowParam<f64>;
        /// Sets `xtc_threshold` (P23, default 0.1).
        ///
        /// ```
        /// use logitkit::{sample, SamplingParams, Seed};
        /// let x = [0.45f64.ln(), 0.35f64.ln(), 0.2f64.ln()];
        /// // Only token 0 reaches 0.4: XTC needs two, so it removes nothing.
        /// let p = SamplingParams::default().xtc_threshold(0.4).xtc_probability(1.0);
        /// assert!((0..20).any(|s| sample(&x, &p, &Seed::Fixed(s)).unwrap().0 == 0));
        /// ```
        xtc_threshold: RowParam<f64>;
        /// Sets `xtc_probability` (P23): with this probability, drawn from the row's stream,
        /// remove every token of probability `>= xtc_threshold` but the least probable of
        /// them, when at least two reach it.
        ///
        /// ```
        /// use logitkit::{sample, SamplingParams, Seed};
        /// let x = [0.45f64.ln(), 0.35f64.ln(), 0.2f64.ln()];
        /// let p = SamplingParams::default().xtc_threshold(0.3).xtc_probability(1.0);
        /// // Tokens 0 and 1 reach 0.3: token 0 goes, token 1 (the least of them) stays.
        /// for s in 0..20 {
        ///     assert_ne!(sample(&x, &p, &Seed::Fixed(s)).unwrap().0, 0);
        /// }
        /// ```
        xtc_probability: RowParam<f64>;
        /// Sets `dynatemp_range` (P26): with a range `r > 0`, the temperature of a row is
        /// `max(0, T - r) + (T + r - max(0, T - r)) * (H / ln n)^exponent`, `H` the entropy of
        /// the row at temperature 1 and `n` its number of finite logits (llama.cpp).
        ///
        /// ```
        /// use logitkit::{filter_logits, SamplingParams};
        /// let mut out = [0.0f64; 2];
        /// // A uniform row has H = ln n: the temperature is T + r = 2.
        /// let p = SamplingParams::default().dynatemp_range(1.0);
        /// filter_logits(&[1.0, 1.0], &p, &mut out).unwrap();
        /// assert_eq!(out, [0.5, 0.5]);
        /// ```
        dynatemp_range: RowParam<f64>;
        /// Sets `dynatemp_exponent` (P26, default 1).
        ///
        /// ```
        /// use logitkit::{filter_logits, SamplingParams};
        /// let x = [0.5f64.ln(), 0.25f64.ln(), 0.25f64.ln()];
        /// let h = -(0.5 * 0.5f64.ln() + 0.5 * 0.25f64.ln()); // the entropy at T = 1
        /// let mut out = [0.0f64; 3];
        /// for e in [1.0, 2.0] {
        ///     // T = 1, range 1: from max(0, 1 - 1) = 0 to 2, by (H / ln 3)^e.
        ///     let t = 2.0 * (h / 3f64.ln()).powf(e);
        ///     let p = SamplingParams::default().dynatemp_range(1.0).dynatemp_exponent(e);
        ///     filter_logits(&x, &p, &mut out).unwrap();
        ///     assert!((out[1] - x[1] / t).abs() < 1e-9);
        /// }
        /// ```
        dynatemp_exponent: RowParam<f64>;
        /// Sets `dry_multiplier` (P24, llama.cpp's DRY; `0` disables it): a token that would
        /// extend a repeat of `n >= dry_allowed_length` tokens of the row's output loses
        /// `dry_multiplier * dry_base^(n - dry_allowed_length)` from its logit.
        ///
        /// ```
        /// use logitkit::{filter_logits_batch, Histories, SamplingParams};
        /// // The output ends with 1 2, which came before followed by 3: emitting 3 would
        /// // repeat 1 2 3 (a repeat of 2 = dry_allowed_length tokens): 3 loses 0.5 * 1.75^0.
        /// let outputs = vec![vec![1, 2, 3, 0, 1, 2]];
        /// let h = Histories::new().output_tokens(&outputs);
        /// let p = SamplingParams::default().dry_multiplier(0.5);
        /// let mut out = [0.0f32; 4];
        /// filter_logits_batch(&[1.0; 4], 4, &p, &h, &mut out).unwrap();
        /// assert_eq!(out, [1.0, 1.0, 1.0, 0.5]);
        /// ```
        dry_multiplier: RowParam<f64>;
        /// Sets `dry_base` (P24, default 1.75): each token of repeat beyond
        /// `dry_allowed_length` multiplies the penalty by it.
        ///
        /// ```
        /// use logitkit::{filter_logits_batch, Histories, SamplingParams};
        /// // 0 1 2 repeats (3 tokens, one more than allowed): token 3 loses 1 * 2^1.
        /// let outputs = vec![vec![0, 1, 2, 3, 0, 1, 2]];
        /// let h = Histories::new().output_tokens(&outputs);
        /// let p = SamplingParams::default().dry_multiplier(1.0).dry_base(2.0);
        /// let mut out = [0.0f32; 4];
        /// filter_logits_batch(&[5.0; 4], 4, &p, &h, &mut out).unwrap();
        /// assert_eq!(out, [5.0, 5.0, 5.0, 3.0]);
        /// ```
        dry_base: RowParam<f64>;
        /// Sets `dry_allowed_length` (P24, default 2): repeats shorter than this are not
        /// penalised.
        ///
        /// ```
        /// use logitkit::{filter_logits_batch, Histories, SamplingParams};
        /// // The output ends with 2, which came before followed by 3: a repeat of one token,
        /// // penalised only when one token is allowed.
        /// let outputs = vec![vec![2, 3, 0, 2]];
        /// let h = Histories::new().output_tokens(&outputs);
        /// let mut out = [0.0f32; 4];
        /// for (allowed, want) in [(2, 1.0), (1, 0.0)] {
        ///     let p = SamplingParams::default().dry_multiplier(1.0).dry_allowed_length(allowed);
        ///     filter_logits_batch(&[1.0; 4], 4, &p, &h, &mut out).unwrap();
        ///     assert_eq!(out[3], want);
        /// }
        /// ```
        dry_allowed_length: RowParam<i64>;
        /// Sets `dry_penalty_last_n` (P24, default `-1`: every output token; `0` disables
        /// DRY): DRY reads only the row's last `n` output tokens.
        ///
        /// ```
        /// use logitkit::{filter_logits_batch, Histories, SamplingParams};
        /// // 5 6 7 ... 5 6: the earlier 5 6 is out of reach of the last 4 tokens.
        /// let outputs = vec![vec![5, 6, 7, 0, 1, 5, 6]];
        /// let h = Histories::new().output_tokens(&outputs);
        /// let mut out = [0.0f32; 8];
        /// for (last_n, want) in [(-1, 0.0), (4, 1.0)] {
        ///     let p = SamplingParams::default().dry_multiplier(1.0).dry_penalty_last_n(last_n);
        ///     filter_logits_batch(&[1.0; 8], 8, &p, &h, &mut out).unwrap();
        ///     assert_eq!(out[7], want);
        /// }
        /// ```
        dry_penalty_last_n: RowParam<i64>;
        /// Sets `dry_sequence_breakers` (P24): token ids that end every repeat (a repeat never
        /// reaches back across one) and are never penalised themselves.
        ///
        /// ```
        /// use logitkit::{filter_logits_batch, Histories, SamplingParams};
        /// // The output ends with 9 3, which came before followed by 4: a repeat of 2 tokens.
        /// // With 9 a breaker, the repeat stops before it: 1 token, below the allowed 2.
        /// let outputs = vec![vec![9, 3, 4, 0, 9, 3]];
        /// let h = Histories::new().output_tokens(&outputs);
        /// let mut out = [0.0f32; 10];
        /// let p = SamplingParams::default().dry_multiplier(1.0);
        /// filter_logits_batch(&[1.0; 10], 10, &p, &h, &mut out).unwrap();
        /// assert_eq!(out[4], 0.0);
        /// let p = p.dry_sequence_breakers(vec![9]);
        /// filter_logits_batch(&[1.0; 10], 10, &p, &h, &mut out).unwrap();
        /// assert_eq!(out[4], 1.0);
        /// ```
        dry_sequence_breakers: Vec<u32>;
    }

    /// Sets `top_logprobs`.
    ///
    /// ```
    /// use logitkit::{sample_batch, Histories, LogprobsMode, SamplingParams, Seed};
    /// let logits = [0.0f32, 2.0, 1.0];
    /// let params = SamplingParams::greedy().top_logprobs(2).logprobs_mode(LogprobsMode::Raw);
    /// let d = sample_batch(&logits, 3, &params, &Histories::new(), &Seed::Fixed(0), false)
    ///     .unwrap();
    /// assert_eq!(d.tokens, [1]);
    /// assert_eq!(d.ranks, [1]);
    /// assert_eq!(d.top_ids, [1, 2]); // the 2 most probable tokens, best first
    /// let mut lp = [0.0f32; 3];
    /// logitkit::log_softmax(&logits, &mut lp, 1.0).unwrap();
    /// assert!((d.top_logprobs[0] - lp[1] as f64).abs() < 1e-6);
    /// assert!((d.top_logprobs[1] - lp[2] as f64).abs() < 1e-6);
    /// ```
    #[must_use]
    pub fn top_logprobs(mut self, n: usize) -> Self {
        self.top_logprobs = n;
        self
    }

    /// Sets `allowed_token_ids` for every row.
    ///
    /// ```
    /// use logitkit::{filter_logits, SamplingParams};
    /// let params = SamplingParams::default().allowed_token_ids(vec![0, 2]);
    /// let mut out = [0.0f32; 4];
    /// filter_logits(&[1.0, 5.0, 2.0, 5.0], &params, &mut out).unwrap();
    /// assert_eq!(out, [1.0, f32::NEG_INFINITY, 2.0, f32::NEG_INFINITY]);
    /// ```
    #[must_use]
    pub fn allowed_token_ids(mut self, ids: Vec<u32>) -> Self {
        self.allowed_token_ids = Some(PerRow::All(ids));
        self
    }

    /// Sets `allowed_token_ids` per row (`None`: no restriction).
    ///
    /// ```
    /// use logitkit::{filter_logits_rows, SamplingParams};
    /// let params = SamplingParams::default().allowed_token_ids_per_row(vec![Some(vec![1]), None]);
    /// let mut out = [0.0f32; 4];
    /// filter_logits_rows(&[3.0, 2.0, 3.0, 2.0], 2, &params, &mut out).unwrap();
    /// assert_eq!(out, [f32::NEG_INFINITY, 2.0, 3.0, 2.0]);
    /// ```
    #[must_use]
    pub fn allowed_token_ids_per_row(mut self, ids: Vec<Option<Vec<u32>>>) -> Self {
        self.allowed_token_ids = Some(PerRow::Rows(ids));
        self
    }

    /// Sets the token bitmask.
    ///
    /// ```
    /// use logitkit::{sample, SamplingParams, Seed, TokenBitmask};
    /// // A grammar allows only tokens 2 and 3: sampling never draws another.
    /// let params = SamplingParams::default().token_bitmask(TokenBitmask::all_rows(vec![0b1100]));
    /// for seed in 0..20 {
    ///     let (tok, _) = sample(&[5.0f32, 5.0, 0.0, 0.0], &params, &Seed::Fixed(seed)).unwrap();
    ///     assert!(tok == 2 || tok == 3);
    /// }
    /// ```
    #[must_use]
    pub fn token_bitmask(mut self, mask: TokenBitmask) -> Self {
        self.token_bitmask = Some(mask);
        self
    }

    /// Sets `logit_bias` for every row.
    ///
    /// ```
    /// use logitkit::{filter_logits, SamplingParams};
    /// // `(token, bias)` pairs; a bias of -inf bans the token.
    /// let params = SamplingParams::default().logit_bias(vec![(0, 1.5), (2, f64::NEG_INFINITY)]);
    /// let mut out = [0.0f32; 3];
    /// filter_logits(&[1.0, 1.0, 9.0], &params, &mut out).unwrap();
    /// assert_eq!(out, [2.5, 1.0, f32::NEG_INFINITY]);
    /// ```
    #[must_use]
    pub fn logit_bias(mut self, bias: Vec<(u32, f64)>) -> Self {
        self.logit_bias = Some(PerRow::All(bias));
        self
    }

    /// Sets `logit_bias` per row (`None`: no bias).
    ///
    /// ```
    /// use logitkit::{filter_logits_rows, SamplingParams};
    /// let params = SamplingParams::default().logit_bias_per_row(vec![None, Some(vec![(1, 2.0)])]);
    /// let mut out = [0.0f32; 4];
    /// filter_logits_rows(&[1.0, 1.0, 1.0, 1.0], 2, &params, &mut out).unwrap();
    /// assert_eq!(out, [1.0, 1.0, 1.0, 3.0]);
    /// ```
    #[must_use]
    pub fn logit_bias_per_row(mut self, bias: Vec<Option<Vec<(u32, f64)>>>) -> Self {
        self.logit_bias = Some(PerRow::Rows(bias));
        self
    }

    /// Checks every value (contract P8, P11-P13) and that per-row parameters have `rows`
    /// values. Errors name the parameter and the bad value. Token ids are checked against the
    /// vocabulary at each call.
    ///
    /// ```
    /// use logitkit::SamplingParams;
    /// let p = SamplingParams::default().temperature(vec![1.0, -2.0]);
    /// assert!(p.validate(2).unwrap_err().to_string().contains("-2"));
    /// assert!(SamplingParams::default().validate(0).is_ok());
    /// ```
    pub fn validate(&self, rows: usize) -> Result<()> {
        self.check(Some(rows))
    }

    /// Checks values, and per-row lengths when `rows` is given.
    pub(crate) fn check(&self, rows: Option<usize>) -> Result<()> {
        self.temperature.check(
            "temperature",
            rows,
            |t| t >= 0.0 && t.is_finite(),
            "a finite float >= 0",
        )?;
        self.top_k
            .check("top_k", rows, |k| k >= 0, "an integer >= 0")?;
        self.top_p.check(
            "top_p",
            rows,
            |p| (0.0..=1.0).contains(&p),
            "a float in [0, 1]",
        )?;
        self.min_p.check(
            "min_p",
            rows,
            |m| (0.0..=1.0).contains(&m),
            "a float in [0, 1]",
        )?;
        self.min_tokens
            .check("min_tokens", rows, |n| n >= 0, "an integer >= 0")?;
        if self.stop_token_ids.is_empty() {
            self.min_tokens.check(
                "min_tokens",
                rows,
                |n| n == 0,
                "0 when no stop_token_ids are given",
            )?;
        }
        self.repetition_penalty.check(
            "repetition_penalty",
            rows,
            |r| r > 0.0 && r.is_finite(),
            "a finite float > 0",
        )?;
        self.frequency_penalty.check(
            "frequency_penalty",
            rows,
            f64::is_finite,
            "a finite float",
        )?;
        self.presence_penalty
            .check("presence_penalty", rows, f64::is_finite, "a finite float")?;
        self.check_samplers(rows)?;
        if let Some(a) = &self.allowed_token_ids {
            a.check_rows("allowed_token_ids", rows)?;
        }
        if let Some(b) = &self.logit_bias {
            b.check_rows("logit_bias", rows)?;
            for (_, pairs) in b.values() {
                if let Some(&(id, bias)) = pairs
                    .iter()
                    .find(|&&(_, b)| !(b.is_finite() || b == f64::NEG_INFINITY))
                {
                    return Err(Error::invalid(
                        "logit_bias",
                        format!("{{{id}: {bias}}}"),
                        "a mapping of token ids to finite floats or -inf",
                    ));
                }
            }
        }
        if let Some(m) = &self.token_bitmask {
            if let (Some(r), Some(got)) = (rows, m.rows()) {
                if r != got {
                    return Err(Error::LengthMismatch {
                        name: "token_bitmask",
                        got,
                        expected: r,
                    });
                }
            }
        }
        if let Some(i) = self.bad_words.iter().position(Vec::is_empty) {
            return Err(Error::invalid(
                "bad_words",
                format!("an empty sequence at index {i}"),
                "a sequence of non-empty token id sequences",
            ));
        }
        Ok(())
    }

    /// Checks the parameters of P20-P26.
    fn check_samplers(&self, rows: Option<usize>) -> Result<()> {
        let unit = |v: f64| (0.0..=1.0).contains(&v);
        let half_open = |v: f64| (0.0..1.0).contains(&v);
        let non_negative = |v: f64| v >= 0.0 && v.is_finite();
        self.typical_p.check(
            "typical_p",
            rows,
            |p| p > 0.0 && p <= 1.0,
            "a float in (0, 1]",
        )?;
        self.top_n_sigma
            .check("top_n_sigma", rows, non_negative, "a finite float >= 0")?;
        self.epsilon_cutoff
            .check("epsilon_cutoff", rows, half_open, "a float in [0, 1)")?;
        self.eta_cutoff
            .check("eta_cutoff", rows, half_open, "a float in [0, 1)")?;
        self.xtc_threshold
            .check("xtc_threshold", rows, unit, "a float in [0, 1]")?;
        self.xtc_probability
            .check("xtc_probability", rows, unit, "a float in [0, 1]")?;
        self.dynatemp_range
            .check("dynatemp_range", rows, non_negative, "a finite float >= 0")?;
        self.dynatemp_exponent.check(
            "dynatemp_exponent",
            rows,
            non_negative,
            "a finite float >= 0",
        )?;
        self.dry_multiplier
            .check("dry_multiplier", rows, non_negative, "a finite float >= 0")?;
        // llama.cpp skips DRY for a base below 1; here it is a bad value, refused.
        self.dry_base.check(
            "dry_base",
            rows,
            |b| b >= 1.0 && b.is_finite(),
            "a finite float >= 1",
        )?;
        self.dry_allowed_length
            .check("dry_allowed_length", rows, |n| n >= 0, "an integer >= 0")?;
        self.dry_penalty_last_n.check(
            "dry_penalty_last_n",
            rows,
            |n| n >= -1,
            "an integer >= -1 (-1: the whole output, 0 disables DRY)",
        )
    }

    /// Checks that every token id the parameters name lies in `[0, vocab)`.
    pub(crate) fn check_ids(&self, vocab: usize) -> Result<()> {
        let bad = |name: &'static str, id: u32, row: Option<usize>| {
            let at = row.map_or(String::new(), |r| format!(" (row {r})"));
            Error::invalid(name, format!("token id {id}{at}"), "token ids in [0, V)")
        };
        let out = |id: u32| id as usize >= vocab;
        if let Some(a) = &self.allowed_token_ids {
            for (row, ids) in a.values() {
                if let Some(&id) = ids.iter().find(|&&id| out(id)) {
                    return Err(bad("allowed_token_ids", id, row));
                }
            }
        }
        if let Some(b) = &self.logit_bias {
            for (row, pairs) in b.values() {
                if let Some(&(id, _)) = pairs.iter().find(|&&(id, _)| out(id)) {
                    return Err(bad("logit_bias", id, row));
                }
            }
        }
        if let Some(&id) = self.bad_words.iter().flatten().find(|&&id| out(id)) {
            return Err(bad("bad_words", id, None));
        }
        if let Some(&id) = self.stop_token_ids.iter().find(|&&id| out(id)) {
            return Err(bad("stop_token_ids", id, None));
        }
        if let Some(&id) = self.dry_sequence_breakers.iter().find(|&&id| out(id)) {
            return Err(bad("dry_sequence_breakers", id, None));
        }
        if self.top_logprobs > vocab {
            return Err(Error::invalid(
                "top_logprobs",
                self.top_logprobs,
                "an integer in [0, V]",
            ));
        }
        Ok(())
    }

    /// The parameters of row `row`, normalised for a vocabulary of `vocab` tokens
    /// (a disabled top-k becomes `vocab`). Call after [`SamplingParams::validate`].
    pub(crate) fn row(&self, row: usize, vocab: usize) -> RowCfg {
        let k = self.top_k.get(row);
        let k = if k <= 0 || k as u64 >= vocab as u64 {
            vocab
        } else {
            k as usize
        };
        RowCfg {
            t: self.temperature.get(row),
            k,
            p: self.top_p.get(row),
            mp: self.min_p.get(row),
            typical: self.typical_p.get(row),
            n_sigma: self.top_n_sigma.get(row),
            epsilon: self.epsilon_cutoff.get(row),
            eta: self.eta_cutoff.get(row),
            xtc_t: self.xtc_threshold.get(row),
            xtc_q: self.xtc_probability.get(row),
            dyn_range: self.dynatemp_range.get(row),
            dyn_exp: self.dynatemp_exponent.get(row),
            mu: None,
        }
    }
}

/// Checks Mirostat 2.0's parameters (P25): `tau` a finite float `>= 0`, `eta` a finite float
/// `>= 0`, per-row lengths against `rows` when given.
pub(crate) fn check_mirostat(
    tau: &RowParam<f64>,
    eta: &RowParam<f64>,
    rows: Option<usize>,
) -> Result<()> {
    let non_negative = |v: f64| v >= 0.0 && v.is_finite();
    tau.check("mirostat_tau", rows, non_negative, "a finite float >= 0")?;
    eta.check("mirostat_eta", rows, non_negative, "a finite float >= 0")
}

/// The validated parameters of one row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowCfg {
    /// Temperature, `>= 0`.
    pub t: f64,
    /// Tokens kept by top-k, `1..=V` (`V` when disabled).
    pub k: usize,
    /// Top-p, `1` disables.
    pub p: f64,
    /// Min-p, `0` disables.
    pub mp: f64,
    /// Typical-p, `1` disables (P20).
    pub typical: f64,
    /// Top-n-sigma, `0` disables (P21).
    pub n_sigma: f64,
    /// Epsilon cutoff, `0` disables (P22).
    pub epsilon: f64,
    /// Eta cutoff, `0` disables (P22).
    pub eta: f64,
    /// XTC's threshold (P23).
    pub xtc_t: f64,
    /// XTC's probability, `0` disables (P23).
    pub xtc_q: f64,
    /// Dynamic temperature's range, `0` disables (P26).
    pub dyn_range: f64,
    /// Dynamic temperature's exponent (P26).
    pub dyn_exp: f64,
    /// Mirostat 2.0's current `mu` for the row, `None` when off (P25; set by the
    /// [`Sampler`](crate::Sampler) only).
    pub mu: Option<f64>,
}

impl RowCfg {
    /// Whether a row of `v` tokens keeps exactly one (temperature 0, top-p 0, top-k 1, or
    /// `V = 1`): its token is the first maximum, and nothing is drawn.
    #[inline]
    pub fn is_greedy(&self, v: usize) -> bool {
        self.t == 0.0 || self.p == 0.0 || self.k == 1 || v == 1
    }

    /// Whether a stage of P20-P23 or P25 runs on the kept set of this row.
    #[inline]
    pub fn has_kept_stages(&self) -> bool {
        self.has_list_stages() || self.mu.is_some()
    }

    /// Whether the only stage of P20-P23 and P25 on this row is epsilon's cutoff, eta's or XTC,
    /// which top-p's rejection draw can take on.
    #[inline]
    pub fn has_rejection_stage_only(&self) -> bool {
        [self.epsilon > 0.0, self.eta > 0.0, self.xtc_q > 0.0]
            .iter()
            .filter(|&&on| on)
            .count()
            == 1
            && self.typical >= 1.0
            && self.n_sigma == 0.0
            && self.mu.is_none()
    }

    /// Whether top-n-sigma is the first stage of P20-P23 on this row (typical-p, which comes
    /// before it, off): then it is a threshold over top-k/top-p/min-p's kept set, applied
    /// before that set is listed.
    #[inline]
    pub fn sigma_leads(&self) -> bool {
        self.n_sigma > 0.0 && self.typical >= 1.0
    }

    /// Whether a stage of P20-P23 runs on the kept set of this row.
    #[inline]
    pub fn has_list_stages(&self) -> bool {
        self.typical < 1.0
            || self.n_sigma > 0.0
            || self.epsilon > 0.0
            || self.eta > 0.0
            || self.xtc_q > 0.0
    }
}
