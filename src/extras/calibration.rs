//! Temperature scaling (Guo et al. 2017) and the expected calibration error.
//!
//! [`fit_temperature`] finds the `T` minimising the mean negative log-likelihood
//! `NLL(T) = mean_rows(logsumexp(x / T) - x[label] / T)`. As a function of `β = 1 / T` the NLL is
//! convex (its second derivative is the variance of `x` under `softmax(βx)`), so its derivative
//! `g(β) = mean_rows(E_p[x] - x[label])` is non-decreasing and the minimiser is the root of `g`.
//! The search runs on `u = ln β` over `T` in [[`T_MIN`], [`T_MAX`]]: the bracket's ends are
//! evaluated first, then safeguarded Newton steps (`dg/du = β · mean Var_p[x]`) fall back to
//! bisection whenever a step leaves the bracket, until the bracket or the step is below
//! [`FIT_TOLERANCE`] in `ln T` (a relative tolerance of about `1e-10` on `T`).

use crate::element::{Float, Real};
use crate::error::{Error, Result};
use crate::extras::exec::{
    collect_lanes, label_value, lane_range_into, max_nan, neumaier_sum, rows_of, Neumaier,
};
use crate::layout::Lanes;
use crate::view::StridedView;

/// Smallest temperature [`fit_temperature`] returns.
///
/// ```
/// use logitkit::extras::{fit_temperature, T_MIN};
/// // Always right, with a margin: the NLL keeps falling as T -> 0, so the fit stops at T_MIN.
/// let fit = fit_temperature(&[3.0f64, 0.0, 0.0, 3.0], 2, &[0, 1]).unwrap();
/// assert_eq!(fit.temperature, T_MIN);
/// assert!(fit.at_bound);
/// ```
pub const T_MIN: f64 = 1e-6;
/// Largest temperature [`fit_temperature`] returns.
///
/// ```
/// use logitkit::extras::{fit_temperature, T_MAX};
/// // Confidently wrong on every row: the NLL keeps falling as T grows, so the fit stops at
/// // T_MAX (probabilities all but uniform).
/// let fit = fit_temperature(&[3.0f64, 0.0, 0.0, 3.0], 2, &[1, 0]).unwrap();
/// assert_eq!(fit.temperature, T_MAX);
/// assert!(fit.at_bound);
/// ```
pub const T_MAX: f64 = 1e6;
/// The most bins [`calibration_bins`] accepts (2^20).
///
/// ```
/// use logitkit::extras::{calibration_bins, MAX_BINS};
/// assert_eq!(MAX_BINS, 1 << 20);
/// let probs = [0.8f32, 0.2];
/// assert_eq!(calibration_bins(&probs, 2, &[0], MAX_BINS).unwrap().count.len(), MAX_BINS);
/// assert!(calibration_bins(&probs, 2, &[0], MAX_BINS + 1).is_err());
/// ```
pub const MAX_BINS: usize = 1 << 20;

/// Rows whose per-row results are computed before they are consumed in row order: at least
/// this many, and enough for a range to be worth sharing among the threads ([`range_rows`]).
const MIN_RANGE_ROWS: usize = 1 << 14;

/// Rows per range of [`in_row_order`] for rows of `n` elements: a range touches enough elements
/// to wake the helper threads, as one call over all the rows did, so a large call still runs
/// its rows in parallel. At most 2^18 results (`n = 1`; 4 MiB of the bins' 16-byte results, 6
/// MiB of `fit_temperature`'s 24-byte ones), whatever the number of rows (R1).
fn range_rows(n: usize) -> usize {
    MIN_RANGE_ROWS.max(crate::parallel::WAKE_MIN_WORK / n.max(1))
}

/// `row(i, lane_i)` for every lane, computed a range of lanes at a time (in parallel within a
/// range when it is large) and handed to `take` a range at a time, in lane order, or the first
/// error. The results go through one buffer of at most [`range_rows`] entries, not one per row
/// (R1), and `take` sees them in the same order as a pass over a vector of all of them would.
///
/// # Safety
/// Every element of every lane of `src` is valid for reads and nobody writes it during the call.
unsafe fn in_row_order<T: Float, R: Send + Clone>(
    src: *const T,
    lanes: &Lanes,
    fill: R,
    row: impl Fn(usize, &[T::Compute]) -> Result<R> + Sync,
    mut take: impl FnMut(&[R]),
) -> Result<()> {
    let count = lanes.count();
    let per_range = range_rows(lanes.len);
    let mut results = crate::scratch::filled(count.min(per_range), fill, "per-row results")?;
    for first in (0..count).step_by(per_range) {
        let range = first..(first + per_range).min(count);
        let results = &mut results[..range.len()];
        // SAFETY: every lane of `src` is readable and not written during the call (this
        // function's contract), as `lane_range_into` asks.
        unsafe { lane_range_into(src, lanes, range, results, |i, x, _| row(i, x)) }?;
        take(results);
    }
    Ok(())
}

/// Tolerance on `ln T` at which the search stops.
///
/// ```
/// use logitkit::extras::{fit_temperature, FIT_TOLERANCE};
/// // Right 3 times in 4 with logit gap 10: the optimum is 10 / T = ln 3.
/// let logits = [10.0f64, 0.0, 10.0, 0.0, 10.0, 0.0, 10.0, 0.0];
/// let fit = fit_temperature(&logits, 2, &[0, 0, 0, 1]).unwrap();
/// let exact = 10.0 / 3f64.ln();
/// // Within the tolerance in ln T (with room for the rounding of the NLL's derivative).
/// assert!((fit.temperature.ln() - exact.ln()).abs() < 100.0 * FIT_TOLERANCE);
/// ```
pub const FIT_TOLERANCE: f64 = 1e-10;

/// The result of [`fit_temperature`].
///
/// ```
/// use logitkit::extras::{fit_temperature, TemperatureFit};
/// // Right once, wrong once, each time with logit gap 2: the best temperature makes both
/// // classes equally likely, so it is the upper bound.
/// let fit: TemperatureFit = fit_temperature(&[2.0f32, 0.0, 2.0, 0.0], 2, &[0, 1]).unwrap();
/// assert!(fit.at_bound && fit.temperature > 1e5);
/// assert!(fit.nll_after < fit.nll_before);
/// assert!((fit.nll_after - 2f64.ln()).abs() < 1e-6); // -ln(1/2) per row
/// assert!(fit.evaluations >= 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TemperatureFit {
    /// The temperature minimising the mean NLL (clamped to [[`T_MIN`], [`T_MAX`]]).
    pub temperature: f64,
    /// Mean NLL at `T = 1`.
    pub nll_before: f64,
    /// Mean NLL at the fitted temperature.
    pub nll_after: f64,
    /// Passes over the data the search took.
    pub evaluations: usize,
    /// True when the minimiser lies at or beyond a bound of [`T_MIN`], [`T_MAX`].
    pub at_bound: bool,
}

fn check_labels(labels: &[i64], classes: usize) -> Result<()> {
    for (i, &y) in labels.iter().enumerate() {
        if y < 0 || y as u64 >= classes as u64 {
            return Err(Error::InvalidParameter {
                name: "labels",
                value: format!("{y} at position {i} (n_classes = {classes})"),
                expected: "class indices in [0, n_classes)",
            });
        }
    }
    Ok(())
}

/// Per row at inverse temperature `beta`: (nll, g, g') where g = E_p[x] - x_y and g' = Var_p[x].
fn row_terms<C: Real>(x: &[C], label: usize, beta: f64) -> (f64, f64, f64) {
    let (m, _) = max_nan(x);
    let m = m.to_f64();
    let (mut s0, mut s1, mut s2) = (0.0f64, 0.0f64, 0.0f64);
    for &v in x {
        let d = v.to_f64() - m;
        if d == f64::NEG_INFINITY {
            continue;
        }
        let e = (beta * d).exp();
        s0 += e;
        s1 += e * d;
        s2 += e * d * d;
    }
    let dy = label_value(x, label) - m;
    let mean = s1 / s0;
    let var = (s2 / s0 - mean * mean).max(0.0);
    (s0.ln() - beta * dy, mean - dy, var)
}

/// Checks every row can be fitted: no NaN or `+inf`, a finite label logit.
fn check_rows<C: Real>(x: &[C], label: usize, row: usize) -> Result<()> {
    let (m, nan) = max_nan(x);
    if nan || m == C::INFINITY {
        return Err(Error::InvalidRow {
            row,
            problem: "holds NaN or +inf",
        });
    }
    // `get`: the labels were checked, but another thread may write them during the call (R3).
    match x.get(label) {
        None => Err(Error::InvalidRow {
            row,
            problem: "has a label out of range (written during the call)",
        }),
        Some(&v) if v == C::NEG_INFINITY => Err(Error::InvalidRow {
            row,
            problem: "has -inf at its label (infinite loss at every temperature)",
        }),
        Some(_) => Ok(()),
    }
}

/// [`fit_temperature`] over strided lanes (one row per lane, `labels[i]` for lane `i`).
///
/// # Errors
/// As [`fit_temperature`]: a length error naming `labels` unless it has one label per lane, an
/// error naming `logits` for no lanes, `labels` for a label outside the lane, and
/// [`Error::InvalidRow`] for a row that cannot be fitted.
///
/// ```
/// use logitkit::extras::{fit_temperature, fit_temperature_lanes};
/// use logitkit::{Lanes, StridedView};
/// // 4 rows of 2 classes stored column-major (classes x rows): row i is (x[i], x[4 + i]).
/// let x = [10.0f64, 10.0, 10.0, 10.0, 0.0, 0.0, 0.0, 0.0];
/// let src = StridedView::new(&x, 0, Lanes::from_strided(&[2, 4], &[4, 1], 0)).unwrap();
/// let fit = fit_temperature_lanes(&src, &[0, 0, 0, 1]).unwrap();
/// let rows = [10.0f64, 0.0, 10.0, 0.0, 10.0, 0.0, 10.0, 0.0];
/// assert_eq!(fit, fit_temperature(&rows, 2, &[0, 0, 0, 1]).unwrap());
/// ```
pub fn fit_temperature_lanes<T: Float>(
    src: &StridedView<'_, T>,
    labels: &[i64],
) -> Result<TemperatureFit> {
    // SAFETY: the view was checked at construction: every element of every lane lies in its
    // slice, which is borrowed shared, so nobody writes it during the call.
    unsafe { fit_temperature_lanes_raw(src.as_ptr(), src.lanes(), labels) }
}

/// The raw form of [`fit_temperature_lanes`] (the NumPy bindings hold raw pointers).
///
/// # Safety
/// Every element of every lane of `src` is valid for reads and nobody writes it during the call.
pub(crate) unsafe fn fit_temperature_lanes_raw<T: Float>(
    src: *const T,
    lanes: &Lanes,
    labels: &[i64],
) -> Result<TemperatureFit> {
    let count = lanes.count();
    if labels.len() != count {
        return Err(Error::LengthMismatch {
            name: "labels",
            got: labels.len(),
            expected: count,
        });
    }
    if count == 0 {
        return Err(Error::invalid(
            "logits",
            "an empty batch",
            "at least one row",
        ));
    }
    check_labels(labels, lanes.len)?;
    // SAFETY: every lane of `src` is readable and not written during the call (this function's contract), as `collect_lanes` asks.
    unsafe { collect_lanes(src, lanes, |i, x, _| check_rows(x, labels[i] as usize, i)) }?;
    let mut evaluations = 0;
    let mut eval = |u: f64| {
        evaluations += 1;
        let beta = u.exp();
        // Each term summed over the rows in row order (the same bits at any thread count).
        let mut sums = [Neumaier::default(); 3];
        // SAFETY: every lane of `src` is readable and not written during the call (this
        // function's contract), as `in_row_order` asks.
        unsafe {
            in_row_order(
                src,
                lanes,
                (0.0, 0.0, 0.0),
                |i, x| Ok(row_terms(x, labels[i] as usize, beta)),
                |terms| {
                    for &(nll, g, var) in terms {
                        sums[0].add(nll);
                        sums[1].add(g);
                        sums[2].add(var);
                    }
                },
            )
        }?;
        let n = count as f64;
        Ok::<_, Error>((
            sums[0].value() / n,
            sums[1].value() / n,
            beta * sums[2].value() / n,
        ))
    };
    // u = ln(beta) = -ln(T).
    let (mut lo, mut hi) = (-T_MAX.ln(), -T_MIN.ln());
    let (nll_before, g1, d1) = eval(0.0)?;
    let (u, at_bound) = {
        let (_, g_lo, _) = eval(lo)?;
        let (_, g_hi, _) = eval(hi)?;
        if g_lo >= 0.0 && g_hi <= 0.0 {
            // g is zero throughout: every temperature is as good; keep T = 1.
            (0.0, false)
        } else if g_lo >= 0.0 {
            (-T_MAX.ln(), true)
        } else if g_hi <= 0.0 {
            (-T_MIN.ln(), true)
        } else {
            let (mut u, mut g, mut d) = (0.0, g1, d1);
            for _ in 0..200 {
                if g == 0.0 {
                    break;
                }
                if g > 0.0 {
                    hi = u;
                } else {
                    lo = u;
                }
                let newton = u - g / d;
                let next = if d > 0.0 && newton > lo && newton < hi {
                    newton
                } else {
                    0.5 * (lo + hi)
                };
                let step = (next - u).abs();
                u = next;
                if step <= FIT_TOLERANCE || hi - lo <= FIT_TOLERANCE {
                    break;
                }
                let (_, gn, dn) = eval(u)?;
                g = gn;
                d = dn;
            }
            (u, false)
        }
    };
    let (nll_after, _, _) = eval(u)?;
    let temperature = match (at_bound, u > 0.0) {
        (true, true) => T_MIN,
        (true, false) => T_MAX,
        _ => (-u).exp().clamp(T_MIN, T_MAX),
    };
    Ok(TemperatureFit {
        temperature,
        nll_before,
        nll_after,
        evaluations,
        at_bound,
    })
}

/// The temperature minimising the mean cross-entropy of a row-major batch of logits (one label
/// per row); see the module documentation for the method and tolerance.
///
/// ```
/// use logitkit::extras::fit_temperature;
/// // Over-confident logits: right 3 times in 4, but with probability ~0.9999.
/// let logits = [10.0f64, 0.0, 10.0, 0.0, 10.0, 0.0, 10.0, 0.0];
/// let fit = fit_temperature(&logits, 2, &[0, 0, 0, 1]).unwrap();
/// // The optimum puts probability 3/4 on the first class: 10 / T = ln 3.
/// assert!((fit.temperature - 10.0 / 3f64.ln()).abs() < 1e-7);
/// assert!(fit.nll_after < fit.nll_before);
/// ```
pub fn fit_temperature<T: Float>(
    logits: &[T],
    row_len: usize,
    labels: &[i64],
) -> Result<TemperatureFit> {
    let rows = rows_of(logits.len(), row_len)?;
    let lanes = Lanes::rows(rows, row_len);
    // SAFETY: the slice holds rows * row_len elements laid out as `lanes`.
    unsafe { fit_temperature_lanes_raw(logits.as_ptr(), &lanes, labels) }
}

/// Reliability statistics in equal-width confidence bins: bin `b` of `n` holds the rows whose
/// confidence (largest probability) lies in `(b / n, (b + 1) / n]`, each edge the `f64`
/// division (a confidence of 0 goes to the first bin).
///
/// ```
/// use logitkit::extras::{calibration_bins, CalibrationBins};
/// // Confidences 0.6, 0.6 and 0.9 in 2 bins: (0, 0.5] and (0.5, 1].
/// let probs = [0.6f64, 0.4, 0.4, 0.6, 0.9, 0.1];
/// let bins: CalibrationBins = calibration_bins(&probs, 2, &[0, 0, 0], 2).unwrap();
/// assert_eq!(bins.count, vec![0, 3]);
/// assert_eq!(bins.correct, vec![0, 2]); // row 1 predicts class 1
/// assert!((bins.confidence_sum[1] - 2.1).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationBins {
    /// Rows per bin.
    pub count: Vec<u64>,
    /// Sum of the confidences of the rows in each bin.
    pub confidence_sum: Vec<f64>,
    /// Rows per bin whose predicted class (the largest probability, lowest index on ties) is
    /// the label.
    pub correct: Vec<u64>,
}

impl CalibrationBins {
    /// Total number of rows.
    ///
    /// ```
    /// use logitkit::extras::calibration_bins;
    /// let bins = calibration_bins(&[0.7f32, 0.3, 0.2, 0.8, 0.5, 0.5], 2, &[0, 1, 1], 10).unwrap();
    /// assert_eq!(bins.rows(), 3);
    /// ```
    pub fn rows(&self) -> u64 {
        self.count.iter().sum()
    }

    /// `Σ_b |B_b| / N · |accuracy(B_b) - confidence(B_b)|` (0 for no rows).
    ///
    /// ```
    /// use logitkit::extras::{calibration_bins, expected_calibration_error};
    /// let probs = [0.9f64, 0.1, 0.8, 0.2, 0.4, 0.6];
    /// let bins = calibration_bins(&probs, 2, &[0, 1, 1], 10).unwrap();
    /// // Bins (0.8, 0.9]: 1 row, right, confidence 0.9; (0.7, 0.8]: 1 row, wrong, 0.8;
    /// // (0.5, 0.6]: 1 row, right, 0.6. ECE = (0.1 + 0.8 + 0.4) / 3.
    /// let ece = bins.expected_calibration_error();
    /// assert!((ece - 1.3 / 3.0).abs() < 1e-12);
    /// assert_eq!(ece, expected_calibration_error(&probs, 2, &[0, 1, 1], 10).unwrap());
    /// ```
    pub fn expected_calibration_error(&self) -> f64 {
        let n = self.rows();
        if n == 0 {
            return 0.0;
        }
        let gaps = self
            .correct
            .iter()
            .zip(&self.confidence_sum)
            .map(|(&c, &s)| (c as f64 - s).abs());
        neumaier_sum(gaps) / n as f64
    }
}

/// [`calibration_bins`] over strided lanes (one probability vector per lane).
///
/// # Errors
/// As [`calibration_bins`]: a length error naming `labels` unless it has one label per lane,
/// errors naming `n_bins`, `labels` or `probs` for values out of range (`probs` for NaN too,
/// with its row and position).
///
/// ```
/// use logitkit::extras::{calibration_bins, calibration_bins_lanes};
/// use logitkit::{Lanes, StridedView};
/// // Two probability vectors stored as columns of a 2 x 2 array: (0.9, 0.1) and (0.3, 0.7).
/// let probs = [0.9f64, 0.3, 0.1, 0.7];
/// let src = StridedView::new(&probs, 0, Lanes::from_strided(&[2, 2], &[2, 1], 0)).unwrap();
/// let bins = calibration_bins_lanes(&src, &[0, 1], 10).unwrap();
/// assert_eq!(bins, calibration_bins(&[0.9f64, 0.1, 0.3, 0.7], 2, &[0, 1], 10).unwrap());
/// assert_eq!(bins.correct.iter().sum::<u64>(), 2);
/// ```
pub fn calibration_bins_lanes<T: Float>(
    src: &StridedView<'_, T>,
    labels: &[i64],
    n_bins: usize,
) -> Result<CalibrationBins> {
    // SAFETY: the view was checked at construction: every element of every lane lies in its
    // slice, which is borrowed shared, so nobody writes it during the call.
    unsafe { calibration_bins_lanes_raw(src.as_ptr(), src.lanes(), labels, n_bins) }
}

/// The raw form of [`calibration_bins_lanes`] (the NumPy bindings hold raw pointers).
///
/// # Safety
/// Every element of every lane of `src` is valid for reads and nobody writes it during the call.
pub(crate) unsafe fn calibration_bins_lanes_raw<T: Float>(
    src: *const T,
    lanes: &Lanes,
    labels: &[i64],
    n_bins: usize,
) -> Result<CalibrationBins> {
    let count = lanes.count();
    if labels.len() != count {
        return Err(Error::LengthMismatch {
            name: "labels",
            got: labels.len(),
            expected: count,
        });
    }
    if n_bins == 0 || n_bins > MAX_BINS {
        return Err(Error::invalid(
            "n_bins",
            n_bins,
            "an integer in [1, 1048576]",
        ));
    }
    check_labels(labels, lanes.len)?;
    let mut bins = CalibrationBins {
        count: crate::scratch::filled(n_bins, 0, "calibration bins")?,
        confidence_sum: crate::scratch::filled(n_bins, 0.0, "calibration bins")?,
        correct: crate::scratch::filled(n_bins, 0, "calibration bins")?,
    };
    // Each bin's confidences summed in row order, as they come.
    let mut sums = crate::scratch::filled(n_bins, Neumaier::default(), "calibration bins")?;
    let edges = Edges::new(n_bins)?;
    // SAFETY: every lane of `src` is readable and not written during the call (this function's
    // contract), as `in_row_order` asks.
    unsafe {
        in_row_order(
            src,
            lanes,
            (0.0, false),
            |i, x| {
                // Contract R7: NaN and probabilities outside [0, 1] (infinities included) are
                // refused. Checked in one pass over the lane first: on the valid lanes (all but
                // an error's) the scan below then has no branch to mispredict.
                if !x.iter().all(|&v| (0.0..=1.0).contains(&v.to_f64())) {
                    return Err(bad_probability(x, i));
                }
                let (mut best, mut top) = (0usize, x[0]);
                for (j, &v) in x.iter().enumerate() {
                    let better = v > top;
                    best = if better { j } else { best };
                    top = if better { v } else { top };
                }
                Ok((top.to_f64(), best as i64 == labels[i]))
            },
            |results| {
                let (count, correct) = (&mut bins.count[..], &mut bins.correct[..]);
                for &(conf, ok) in results {
                    let b = edges.bin_of(conf);
                    count[b] += 1;
                    correct[b] += ok as u64;
                    sums[b].add(conf);
                }
            },
        )
    }?;
    for (s, acc) in bins.confidence_sum.iter_mut().zip(sums) {
        *s = acc.value();
    }
    Ok(bins)
}

/// The error for a lane holding NaN or a value outside [0, 1]: the first such entry, named
/// `probs` with its row and position (NaN as the other bad values: the function has no logits).
#[cold]
fn bad_probability<C: Real>(x: &[C], row: usize) -> Error {
    let (j, v) = x
        .iter()
        .enumerate()
        .find(|(_, v)| v.is_nan() || !(0.0..=1.0).contains(&v.to_f64()))
        .map(|(j, &v)| (j, v))
        .unwrap_or((0, x[0]));
    Error::InvalidParameter {
        name: "probs",
        value: format!("{v:?} (row {row}, position {j})"),
        expected: "probabilities in [0, 1]",
    }
}

/// The edges of `n` equal-width bins of [0, 1], for [`Edges::bin_of`].
struct Edges {
    /// `edge[b] = b / n` in float64, `b` in `0..=n`.
    edge: Vec<f64>,
}

impl Edges {
    fn new(n: usize) -> Result<Edges> {
        let nf = n as f64;
        let edge = crate::scratch::collected(n + 1, (0..=n).map(|b| b as f64 / nf), "bin edges")?;
        Ok(Edges { edge })
    }

    /// The bin of a confidence `conf` in [0, 1] among `n` equal-width bins: the `b` with
    /// `edge(b) < conf <= edge(b + 1)`, `edge(b)` the float64 `b / n` (so that 0.9 is in the bin
    /// that ends at 0.9, as NumPy's edges would have it; bin 0 takes 0 too). `ceil(conf * n) - 1`
    /// is the bin but for the rounding of `conf * n`, which can carry a confidence just past an
    /// edge onto it. `conf * n` truncated (no libm `ceil` call) starts within a bin or two of
    /// it, and comparisons with the edges settle it.
    #[inline]
    fn bin_of(&self, conf: f64) -> usize {
        let n = self.edge.len() - 1;
        let mut b = ((conf * n as f64) as usize).min(n - 1);
        // The edge test comes first, and the downward test is one branch on a bool computed
        // without branching: a branch on `b + 1 < n` alone follows the row's bin, and
        // mispredicts with random bins. The bound still holds if another thread writes a value
        // above 1 after the row's check (contract R3).
        while conf > self.edge[b + 1] && b + 1 < n {
            b += 1;
        }
        while (b > 0) & (conf <= self.edge[b]) {
            b -= 1;
        }
        b
    }
}

/// Reliability bins of a row-major batch of probability vectors (`probs.len() / row_len` rows,
/// one label each).
///
/// ```
/// use logitkit::extras::calibration_bins;
/// let probs = [0.9f64, 0.1, 0.3, 0.7];
/// let bins = calibration_bins(&probs, 2, &[0, 0], 10).unwrap();
/// assert_eq!(bins.count[8], 1); // 0.9 in (0.8, 0.9]
/// assert_eq!(bins.correct[6], 0); // 0.7 predicted class 1, label 0
/// ```
pub fn calibration_bins<T: Float>(
    probs: &[T],
    row_len: usize,
    labels: &[i64],
    n_bins: usize,
) -> Result<CalibrationBins> {
    let rows = rows_of(probs.len(), row_len)?;
    let lanes = Lanes::rows(rows, row_len);
    // SAFETY: the slice holds rows * row_len elements laid out as `lanes`.
    unsafe { calibration_bins_lanes_raw(probs.as_ptr(), &lanes, labels, n_bins) }
}

/// The expected calibration error over `n_bins` equal-width confidence bins (Guo et al. 2017):
/// `Σ_b |B_b| / N · |accuracy(B_b) - confidence(B_b)|`.
///
/// ```
/// use logitkit::extras::expected_calibration_error;
/// // Confident (0.9) and right once, confident and wrong once: |0.5 - 0.9| = 0.4.
/// let ece = expected_calibration_error(&[0.9f32, 0.1, 0.9, 0.1], 2, &[0, 1], 15).unwrap();
/// assert!((ece - 0.4).abs() < 1e-7);
/// ```
pub fn expected_calibration_error<T: Float>(
    probs: &[T],
    row_len: usize,
    labels: &[i64],
    n_bins: usize,
) -> Result<f64> {
    Ok(calibration_bins(probs, row_len, labels, n_bins)?.expected_calibration_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defining property: `edge(b) < conf <= edge(b + 1)`, bin 0 also taking 0.
    fn check(edges: &Edges, conf: f64) {
        let n = edges.edge.len() - 1;
        let b = edges.bin_of(conf);
        assert!(b < n, "conf {conf:e}, n {n}: bin {b}");
        let lower_ok = conf > edges.edge[b] || (b == 0 && conf >= 0.0);
        assert!(
            lower_ok && conf <= edges.edge[b + 1],
            "conf {conf:e}, n {n}: bin {b}"
        );
    }

    /// A row is checked before its maximum is read; another thread may write it in between
    /// (contract R3). Whatever comes then, the bin stays in range: no panic.
    #[test]
    fn r3_bin_of_stays_in_range_for_values_written_after_the_check() {
        for n in [1, 2, 15, 1000, MAX_BINS] {
            let edges = Edges::new(n).unwrap();
            for conf in [1.0f64.next_up(), 1.5, 2.0, 1e300, f64::INFINITY] {
                assert_eq!(edges.bin_of(conf), n - 1, "n {n}, confidence {conf}");
            }
            for conf in [-0.0f64, -1e-300, -1.0, f64::NEG_INFINITY, f64::NAN] {
                assert_eq!(edges.bin_of(conf), 0, "n {n}, confidence {conf}");
            }
        }
    }

    #[test]
    fn bin_of_meets_its_definition_at_and_beside_every_edge() {
        let mut seed = 12345u64;
        for n in (1..=64).chain([100, 1000, 4097, MAX_BINS]) {
            let edges = Edges::new(n).unwrap();
            let probe: Vec<usize> = if n <= 4097 {
                (0..=n).collect()
            } else {
                (0..=n).step_by(997).chain([n - 1, n]).collect()
            };
            for b in probe {
                let e = edges.edge[b];
                for conf in [e, e.next_down(), e.next_up(), e.next_up().next_up()] {
                    if (0.0..=1.0).contains(&conf) {
                        check(&edges, conf);
                    }
                }
            }
            for _ in 0..2000 {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                check(&edges, (seed >> 11) as f64 / (1u64 << 53) as f64);
            }
        }
    }
}
