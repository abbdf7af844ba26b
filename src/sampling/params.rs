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

/// The parameters of a sampling call (contract P3), each one value or one per row.
///
/// - `temperature`: `T >= 0`, finite. `0` is greedy (the largest logit, lowest id among equal
///   ones; the filters are then irrelevant). Default `1`.
/// - `top_k`: `k >= 0`; `0` or `k >= V` disables it. Default `0`.
/// - `top_p`: in `[0, 1]`; `1` disables it, `0` is greedy. Default `1`.
/// - `min_p`: in `[0, 1]`; `0` disables it. Default `0`.
///
/// ```
/// use logitkit::SamplingParams;
/// let params = SamplingParams {
///     temperature: 0.8.into(),
///     top_k: 50.into(),
///     top_p: 0.9.into(),
///     ..Default::default()
/// };
/// assert!(params.validate(1).is_ok());
/// let bad = SamplingParams { top_p: 1.5.into(), ..Default::default() };
/// let msg = bad.validate(1).unwrap_err().to_string();
/// assert!(msg.contains("top_p") && msg.contains("1.5"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Temperature, `>= 0` and finite; `0` is greedy.
    pub temperature: RowParam<f64>,
    /// Top-k, `>= 0`; `0` (or `>= V`) disables it.
    pub top_k: RowParam<i64>,
    /// Top-p (nucleus), in `[0, 1]`; `1` disables it.
    pub top_p: RowParam<f64>,
    /// Min-p, in `[0, 1]`; `0` disables it.
    pub min_p: RowParam<f64>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: RowParam::All(1.0),
            top_k: RowParam::All(0),
            top_p: RowParam::All(1.0),
            min_p: RowParam::All(0.0),
        }
    }
}

impl SamplingParams {
    /// Greedy decoding: temperature 0.
    ///
    /// ```
    /// let p = logitkit::SamplingParams::greedy();
    /// assert_eq!(p.temperature.get(0), 0.0);
    /// ```
    pub fn greedy() -> Self {
        SamplingParams {
            temperature: RowParam::All(0.0),
            ..Default::default()
        }
    }

    /// Checks every value (contract P8) and that per-row parameters have `rows` values.
    /// Errors name the parameter and the bad value.
    ///
    /// ```
    /// use logitkit::SamplingParams;
    /// let p = SamplingParams { temperature: vec![1.0, -2.0].into(), ..Default::default() };
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
        )
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
        }
    }
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
}
