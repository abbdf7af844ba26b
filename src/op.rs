//! Which member of the softmax family a map over vectors computes (the bottom of the
//! layering: kernels, rows and lanes all take it).

/// What a map over lanes computes.
///
/// ```
/// use logitkit::lanes::map_lanes;
/// use logitkit::{Op, StridedView, StridedViewMut};
/// let x = [1.0f64, 2.0, 3.0];
/// let src = StridedView::rows(&x, 3).unwrap();
/// let (mut p, mut lp) = ([0.0f64; 3], [0.0f64; 3]);
/// map_lanes(Op::Softmax, &src, &mut StridedViewMut::rows(&mut p, 3).unwrap(), 1.0.into()).unwrap();
/// let mut dst = StridedViewMut::rows(&mut lp, 3).unwrap();
/// map_lanes(Op::LogSoftmax, &src, &mut dst, 1.0.into()).unwrap();
/// // The same distribution: probabilities and their logs.
/// for (p, lp) in p.iter().zip(&lp) {
///     assert!((p.ln() - lp).abs() < 1e-15);
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Probabilities.
    Softmax,
    /// Log-probabilities.
    LogSoftmax,
}
