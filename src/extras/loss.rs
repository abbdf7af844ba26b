//! Fused, overflow-safe cross-entropy (softmax + negative log-likelihood) with PyTorch's
//! semantics for `reduction`, `label_smoothing` and `ignore_index`.
//!
//! Per row, with `z = x / T` and `C` classes: `nll = logsumexp(z) - z[label]` and, with label
//! smoothing `ε`, `loss = (1 - ε) * nll + ε * (logsumexp(z) - mean(z))` (PyTorch's formula:
//! the smoothed target puts `1 - ε + ε / C` on the label and `ε / C` elsewhere). Everything is
//! computed relative to the row's maximum in `f64`, so no finite input overflows, and the log of
//! a rounded probability is never taken.

use crate::element::{Float, Real};
use crate::error::{Error, Result};
use crate::extras::exec::{lanes_into, max_nan, neumaier_sum, rows_of, sum_f64};
use crate::layout::Lanes;
use crate::temperature::Temperature;
use crate::view::StridedView;

/// How per-row losses are combined (PyTorch's `reduction`).
///
/// ```
/// use logitkit::extras::{cross_entropy, cross_entropy_rows, Reduction};
/// use std::f64::consts::LN_2;
/// // Two rows of equal logits: each loses ln 2.
/// let logits = [0.0f64, 0.0, 5.0, 5.0];
/// let opts = Default::default();
/// let sum = cross_entropy(&logits, 2, &[0, 1], &opts, Reduction::Sum).unwrap();
/// let mean = cross_entropy(&logits, 2, &[0, 1], &opts, Reduction::Mean).unwrap();
/// assert!((sum - 2.0 * LN_2).abs() < 1e-15 && (mean - LN_2).abs() < 1e-15);
/// assert_eq!(Reduction::default(), Reduction::Mean);
/// // `Reduction::None` is the per-row losses of `cross_entropy_rows`.
/// let mut losses = [0.0; 2];
/// cross_entropy_rows(&logits, 2, &[0, 1], &opts, &mut losses).unwrap();
/// assert!(losses.iter().all(|l| (l - LN_2).abs() < 1e-15));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reduction {
    /// One loss per row (ignored rows: 0).
    None,
    /// The sum over rows.
    Sum,
    /// The mean over rows whose label is not `ignore_index` (NaN when there are none).
    #[default]
    Mean,
}

impl Reduction {
    /// Parses `"none"`, `"sum"` or `"mean"`.
    ///
    /// ```
    /// use logitkit::extras::Reduction;
    /// assert_eq!(Reduction::parse("sum").unwrap(), Reduction::Sum);
    /// assert!(Reduction::parse("avg").is_err());
    /// ```
    pub fn parse(name: &str) -> Result<Reduction> {
        match name {
            "none" => Ok(Reduction::None),
            "sum" => Ok(Reduction::Sum),
            "mean" => Ok(Reduction::Mean),
            other => Err(Error::invalid(
                "reduction",
                format!("'{other}'"),
                "'none', 'mean' or 'sum'",
            )),
        }
    }
}

/// Options of [`cross_entropy`] and friends.
///
/// ```
/// use logitkit::extras::{cross_entropy_rows, CrossEntropyOptions};
/// let temps = [2.0, 1.0];
/// let opts = CrossEntropyOptions {
///     temperature: (&temps[..]).into(), // row 0 at T = 2, row 1 at T = 1
///     ignore_index: Some(-100),
///     ..Default::default()
/// };
/// let mut losses = [f64::NAN; 2];
/// cross_entropy_rows(&[2.0f64, 0.0, 2.0, 0.0], 2, &[0, -100], &opts, &mut losses).unwrap();
/// // Row 0: logits / 2 = (1, 0), loss = ln(1 + e^-1). Row 1 is ignored: 0.
/// assert!((losses[0] - (-1f64).exp().ln_1p()).abs() < 1e-15);
/// assert_eq!(losses[1], 0.0);
/// // Label smoothing outside [0, 1] is refused.
/// let bad = CrossEntropyOptions { label_smoothing: 1.5, ..Default::default() };
/// assert!(cross_entropy_rows(&[0.0f64, 0.0], 2, &[0], &bad, &mut [0.0]).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CrossEntropyOptions<'a> {
    /// Logits are divided by this (one value, or one per row); positive and finite.
    pub temperature: Temperature<'a>,
    /// `ε` in [0, 1]: the weight moved from the label to the uniform distribution.
    pub label_smoothing: f64,
    /// Rows with this label contribute nothing (and do not count for the mean).
    pub ignore_index: Option<i64>,
}

impl Default for CrossEntropyOptions<'_> {
    fn default() -> Self {
        CrossEntropyOptions {
            temperature: Temperature::Scalar(1.0),
            label_smoothing: 0.0,
            ignore_index: None,
        }
    }
}

impl CrossEntropyOptions<'_> {
    fn check(&self, rows: usize) -> Result<()> {
        self.temperature.check_softmax(rows)?;
        let e = self.label_smoothing;
        if !(0.0..=1.0).contains(&e) {
            return Err(Error::invalid("label_smoothing", e, "a float in [0, 1]"));
        }
        Ok(())
    }
}

fn bad_label(label: i64, row: usize, classes: usize) -> Error {
    Error::InvalidParameter {
        name: "labels",
        value: format!("{label} at position {row} (n_classes = {classes})"),
        expected: "class indices in [0, n_classes) or ignore_index",
    }
}

/// Checks every label; returns the number of rows not ignored.
fn check_labels(labels: &[i64], classes: usize, ignore: Option<i64>) -> Result<usize> {
    let mut kept = 0;
    for (i, &y) in labels.iter().enumerate() {
        if Some(y) == ignore {
            continue;
        }
        if y < 0 || y as u64 >= classes as u64 {
            return Err(bad_label(y, i, classes));
        }
        kept += 1;
    }
    Ok(kept)
}

/// The loss of one row (`x` in the compute type), label already checked.
fn row_loss<C: Real>(x: &[C], label: usize, t: f64, eps: f64, buf: &mut Vec<C>) -> Result<f64> {
    let (m, nan) = max_nan(x);
    if nan || m == C::INFINITY || m == C::NEG_INFINITY {
        return Ok(f64::NAN);
    }
    let m = m.to_f64();
    // z_i - max(z) = (x_i - m) / t <= 0: no overflow, and logsumexp of it lies in [0, ln C].
    // x_i - m is exact in f64 for f32/f16 input; one rounding to the compute type follows.
    buf.clear();
    crate::scratch::reserve(buf, x.len(), "the scaled row")?;
    let inv_t = 1.0 / t;
    if inv_t.is_finite() {
        buf.extend(x.iter().map(|&v| C::from_f64((v.to_f64() - m) * inv_t)));
    } else {
        buf.extend(x.iter().map(|&v| C::from_f64((v.to_f64() - m) / t)));
    }
    let lse = scaled_logsumexp(buf);
    // The label's term exactly, not through the rounded buffer.
    let nll = lse - (x[label].to_f64() - m) / t;
    if eps == 0.0 {
        return Ok(nll);
    }
    let mean = sum_f64(buf) / x.len() as f64;
    Ok((1.0 - eps) * nll + eps * (lse - mean))
}

/// logsumexp of a row whose maximum is 0 (`x - max`, scaled): the bits of the public
/// `logsumexp`, through its row kernels without their per-call checks and poll (rows are
/// polled by the caller). A row of a block or less skips the maximum pass: the maximum is known,
/// and `0 + ln(sum)` is `ln(sum)` (the sum is at least 1, so its log is not -0).
fn scaled_logsumexp<C: Real>(buf: &[C]) -> f64 {
    if buf.len() <= crate::kernels::BLOCK {
        let total = (crate::kernels::kernels::<C>().sum_exp)(buf, C::default(), 1.0);
        return C::from_f64(total.ln()).to_f64();
    }
    crate::row::logsumexp_row(buf, crate::parallel::is_parallel(buf.len())).to_f64()
}

/// Per-lane cross-entropy over strided lanes: `losses[i]` is lane `i`'s loss (0 where
/// `labels[i]` is the ignore index).
///
/// # Errors
/// As [`cross_entropy_rows`]: length errors naming `labels` or `losses` unless each has one
/// entry per lane, and errors naming `labels`, `temperature` or `label_smoothing` for values
/// out of range.
///
/// ```
/// use logitkit::extras::{cross_entropy_lanes, CrossEntropyOptions};
/// use logitkit::{Lanes, StridedView};
/// // 3 rows of 2 classes stored column-major (classes x rows): row i is (x[i], x[3 + i]).
/// let x = [0.0f64, 3.0, 1e30, 0.0, 3.0, -1e30];
/// let src = StridedView::new(&x, 0, Lanes::from_strided(&[2, 3], &[3, 1], 0)).unwrap();
/// let mut losses = [f64::NAN; 3];
/// let opts = CrossEntropyOptions::default();
/// cross_entropy_lanes(&src, &[1, 0, 0], &opts, &mut losses).unwrap();
/// assert!((losses[0] - std::f64::consts::LN_2).abs() < 1e-15); // (0, 0)
/// assert!((losses[1] - std::f64::consts::LN_2).abs() < 1e-15); // (3, 3)
/// assert_eq!(losses[2], 0.0); // (1e30, -1e30), label 0: certain and right
/// ```
pub fn cross_entropy_lanes<T: Float>(
    src: &StridedView<'_, T>,
    labels: &[i64],
    opts: &CrossEntropyOptions<'_>,
    losses: &mut [f64],
) -> Result<()> {
    // SAFETY: the view was checked at construction: every element of every lane lies in its
    // slice, which is borrowed shared, so nobody writes it during the call.
    unsafe { cross_entropy_lanes_raw(src.as_ptr(), src.lanes(), labels, opts, losses) }
}

/// The raw form of [`cross_entropy_lanes`] (the NumPy bindings hold raw pointers).
///
/// # Safety
/// Every element of every lane of `src` is valid for reads and nobody writes it during the call.
pub(crate) unsafe fn cross_entropy_lanes_raw<T: Float>(
    src: *const T,
    lanes: &Lanes,
    labels: &[i64],
    opts: &CrossEntropyOptions<'_>,
    losses: &mut [f64],
) -> Result<()> {
    let count = lanes.count();
    for (name, got) in [("labels", labels.len()), ("losses", losses.len())] {
        if got != count {
            return Err(Error::LengthMismatch {
                name,
                got,
                expected: count,
            });
        }
    }
    opts.check(count)?;
    check_labels(labels, lanes.len, opts.ignore_index)?;
    let eps = opts.label_smoothing;
    // SAFETY: every lane of `src` is readable and not written during the call (this function's contract), as `lanes_into` asks.
    unsafe {
        lanes_into(src, lanes, losses, |i, x, scratch| {
            let y = labels[i];
            if Some(y) == opts.ignore_index {
                return Ok(0.0);
            }
            row_loss(x, y as usize, opts.temperature.get(i), eps, scratch)
        })
    }
}

/// Per-row cross-entropy of a row-major batch (`logits.len() / row_len` rows, one label each)
/// into `losses` (0 for ignored rows).
///
/// ```
/// use logitkit::extras::{cross_entropy_rows, CrossEntropyOptions};
/// let mut losses = [0.0; 2];
/// cross_entropy_rows(&[0.0f64, 0.0, 1e30, -1e30], 2, &[1, 0], &Default::default(), &mut losses)
///     .unwrap();
/// assert!((losses[0] - std::f64::consts::LN_2).abs() < 1e-15);
/// assert_eq!(losses[1], 0.0); // overflow-safe: the right class with certainty
/// ```
pub fn cross_entropy_rows<T: Float>(
    logits: &[T],
    row_len: usize,
    labels: &[i64],
    opts: &CrossEntropyOptions<'_>,
    losses: &mut [f64],
) -> Result<()> {
    let rows = if row_len == 0 && logits.is_empty() {
        labels.len()
    } else {
        rows_of(logits.len(), row_len)?
    };
    let lanes = Lanes::rows(rows, row_len);
    // SAFETY: the slice holds rows * row_len elements laid out as `lanes`.
    unsafe { cross_entropy_lanes_raw(logits.as_ptr(), &lanes, labels, opts, losses) }
}

/// Combines per-row losses as PyTorch does: `Sum` adds them, `Mean` divides the sum by the
/// number of rows whose label is not `ignore_index` (NaN when there are none). Sums are
/// compensated and taken in row order, so the result does not depend on the thread count.
/// `Reduction::None` is not a single number: this returns the sum for it.
///
/// ```
/// use logitkit::extras::{reduce_losses, Reduction};
/// let mean = reduce_losses(&[1.0, 0.0, 3.0], &[0, -100, 2], Some(-100), Reduction::Mean);
/// assert_eq!(mean, 2.0);
/// ```
pub fn reduce_losses(
    losses: &[f64],
    labels: &[i64],
    ignore_index: Option<i64>,
    reduction: Reduction,
) -> f64 {
    let sum = neumaier_sum(losses.iter().copied());
    match reduction {
        Reduction::Mean => {
            let kept = labels.iter().filter(|&&y| Some(y) != ignore_index).count();
            sum / kept as f64
        }
        Reduction::Sum | Reduction::None => sum,
    }
}

/// Cross-entropy of a row-major batch reduced to one number (`Sum` or `Mean`; `None` gives the
/// sum, see [`cross_entropy_rows`] for per-row losses).
///
/// ```
/// use logitkit::extras::{cross_entropy, CrossEntropyOptions, Reduction};
/// let opts = CrossEntropyOptions { label_smoothing: 0.1, ..Default::default() };
/// let l = cross_entropy(&[1.0f32, 2.0, 3.0], 3, &[2], &opts, Reduction::Sum).unwrap();
/// assert!(l > 0.4076 && l < 0.6);
/// ```
pub fn cross_entropy<T: Float>(
    logits: &[T],
    row_len: usize,
    labels: &[i64],
    opts: &CrossEntropyOptions<'_>,
    reduction: Reduction,
) -> Result<f64> {
    let mut losses = crate::scratch::filled(labels.len(), 0.0, "per-row losses")?;
    cross_entropy_rows(logits, row_len, labels, opts, &mut losses)?;
    Ok(reduce_losses(&losses, labels, opts.ignore_index, reduction))
}
