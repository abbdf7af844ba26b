//! Fused, overflow-safe cross-entropy (softmax + negative log-likelihood) with PyTorch's
//! semantics for `reduction`, `label_smoothing` and `ignore_index`.
//!
//! Per row, with `z = x / T` and `C` classes: `nll = logsumexp(z) - z[label]` and, with label
//! smoothing `ε`, `loss = (1 - ε) * nll + ε * (logsumexp(z) - mean(z))` (PyTorch's formula:
//! the smoothed target puts `1 - ε + ε / C` on the label and `ε / C` elsewhere). Everything is
//! computed relative to the row's maximum in `f64` (but the exp-sum: the softmax kernels',
//! with exps in the compute type, summed in `f64`), so no finite input overflows, and the log
//! of a rounded probability is never taken.

use crate::element::{Float, Real};
use crate::error::{Error, Result};
use crate::extras::exec::{
    blocks_into, label_value, lanes_into, neumaier_sum, rows_of, takes_blocks,
};
use crate::kernels::{kernels, row_sums};
use crate::layout::Lanes;
use crate::ln::ln_in_place;
use crate::row::max_and_sum_exp;
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
fn row_loss<C: Real>(x: &[C], label: usize, t: f64, eps: f64) -> f64 {
    let parallel = crate::parallel::is_parallel(x.len());
    match max_and_sum_exp(kernels::<C>(), x, t, parallel) {
        Ok((m, total)) => loss_from_sums(x, label, t, eps, m.to_f64(), total.ln()),
        Err(_) => f64::NAN,
    }
}

/// The loss of a row from its maximum `m` and `lse = ln Σ exp((x - m) / t)` (a finite `m`;
/// label already checked). `lse` is logsumexp of `z - max z` (`z = x / t`), in [0, ln C]; the
/// label's term is exact, not through a rounded probability.
fn loss_from_sums<C: Real>(x: &[C], label: usize, t: f64, eps: f64, m: f64, lse: f64) -> f64 {
    let nll = lse - (label_value(x, label) - m) / t;
    if eps == 0.0 {
        return nll;
    }
    let mean = shifted_sum(x, m, t) / x.len() as f64;
    (1.0 - eps) * nll + eps * (lse - mean)
}

/// Σ (x - m) / t in `f64` with eight accumulators (vectorisable; a fixed order, so
/// deterministic).
#[inline]
fn shifted_sum<C: Real>(x: &[C], m: f64, t: f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for j in 0..8 {
            acc[j] += (c[j].to_f64() - m) / t;
        }
    }
    let mut s = acc.iter().sum::<f64>();
    for &v in rest {
        s += (v.to_f64() - m) / t;
    }
    s
}

/// Per-row losses of a block of rows of `n` elements stored one after the other (`first` the
/// first row's number), into `losses`: the rows' sums many rows per kernel call at one
/// temperature ([`row_sums`]), else row by row, with the bits of [`row_loss`] either way.
fn block_losses<C: Real>(
    first: usize,
    block: &[C],
    n: usize,
    labels: &[i64],
    opts: &CrossEntropyOptions<'_>,
    losses: &mut [f64],
) {
    const CHUNK: usize = 256;
    let k = kernels::<C>();
    let (mut maxima, mut totals) = ([C::default(); CHUNK], [0.0f64; CHUNK]);
    for (c, (rows, outs)) in block
        .chunks(CHUNK * n)
        .zip(losses.chunks_mut(CHUNK))
        .enumerate()
    {
        let (first, count) = (first + c * CHUNK, outs.len());
        let (maxima, totals) = (&mut maxima[..count], &mut totals[..count]);
        match opts.temperature {
            Temperature::Scalar(t) => row_sums(k, rows, n, t, maxima, totals),
            Temperature::PerRow(ts) => {
                for (r, row) in rows.chunks_exact(n).enumerate() {
                    (maxima[r], totals[r]) =
                        max_and_sum_exp(k, row, ts[first + r], false).unwrap_or((C::NAN, f64::NAN));
                }
            }
        }
        let log_sums = totals;
        ln_in_place(log_sums);
        for (r, (o, row)) in outs.iter_mut().zip(rows.chunks_exact(n)).enumerate() {
            let y = labels[first + r];
            *o = if Some(y) == opts.ignore_index {
                0.0
            } else if log_sums[r].is_nan() {
                f64::NAN
            } else {
                let t = opts.temperature.get(first + r);
                let m = maxima[r].to_f64();
                loss_from_sums(row, y as usize, t, opts.label_smoothing, m, log_sums[r])
            };
        }
    }
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
    let n = lanes.len;
    if takes_blocks(n) {
        // SAFETY: every lane of `src` is readable and not written during the call (this
        // function's contract), as `blocks_into` asks.
        return unsafe {
            blocks_into(src, lanes, losses, |first, block, out| {
                block_losses(first, block, n, labels, opts, out);
                Ok(())
            })
        };
    }
    let eps = opts.label_smoothing;
    // SAFETY: as above, for `lanes_into`.
    unsafe {
        lanes_into(src, lanes, losses, |i, x, _| {
            let y = labels[i];
            if Some(y) == opts.ignore_index {
                return Ok(0.0);
            }
            Ok(row_loss(x, y as usize, opts.temperature.get(i), eps))
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
/// `Reduction::None` is not a single number: this returns the sum for it. `losses` and
/// `labels` go row by row: lengths that differ give NaN (there is no count to divide by).
///
/// ```
/// use logitkit::extras::{reduce_losses, Reduction};
/// let mean = reduce_losses(&[1.0, 0.0, 3.0], &[0, -100, 2], Some(-100), Reduction::Mean);
/// assert_eq!(mean, 2.0);
/// assert!(reduce_losses(&[1.0, 2.0], &[0], None, Reduction::Mean).is_nan());
/// ```
pub fn reduce_losses(
    losses: &[f64],
    labels: &[i64],
    ignore_index: Option<i64>,
    reduction: Reduction,
) -> f64 {
    if losses.len() != labels.len() {
        return f64::NAN;
    }
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
