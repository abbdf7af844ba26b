//! The softmax family over slices: one vector, or a batch of equal-length rows in parallel.

use crate::element::Float;
use crate::error::{Error, Result};
use crate::lanes::{logsumexp_lanes_raw, map_lanes_raw, Lanes};
use crate::op::Op;
use crate::temperature::Temperature;

/// `got == expected`, else a length error naming `name`.
pub(crate) fn check_len(name: &'static str, got: usize, expected: usize) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            name,
            got,
            expected,
        })
    }
}

use crate::layout::rows_of;

fn map_rows<T: Float>(
    op: Op,
    x: &[T],
    out: &mut [T],
    row_len: usize,
    t: Temperature<'_>,
) -> Result<()> {
    check_len("out", out.len(), x.len())?;
    let rows = rows_of(x.len(), row_len)?;
    let lanes = Lanes::rows(rows, row_len);
    // SAFETY: both slices hold rows * row_len elements; `out` is borrowed mutably, so it
    // overlaps nothing.
    unsafe { map_lanes_raw(op, x.as_ptr(), &lanes, out.as_mut_ptr(), &lanes, t) }
}

fn map_rows_in_place<T: Float>(
    op: Op,
    x: &mut [T],
    row_len: usize,
    t: Temperature<'_>,
) -> Result<()> {
    let rows = rows_of(x.len(), row_len)?;
    let lanes = Lanes::rows(rows, row_len);
    let p = x.as_mut_ptr();
    // SAFETY: source and destination are the same buffer with the same layout (in place).
    unsafe { map_lanes_raw(op, p, &lanes, p, &lanes, t) }
}

/// Probabilities of one vector: `out = softmax(x / temperature)`.
///
/// Overflow-safe for any finite input and temperature; `-inf` entries get probability 0; a
/// vector with NaN or `+inf`, or with no entry above `-inf`, gives NaN everywhere.
///
/// ```
/// let mut p = [0.0f32; 3];
/// logitkit::softmax(&[1.0, 2.0, 3.0], &mut p, 1.0).unwrap();
/// assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
/// assert!(p[2] > p[1] && p[1] > p[0]);
/// ```
pub fn softmax<T: Float>(x: &[T], out: &mut [T], temperature: f64) -> Result<()> {
    map_rows(
        Op::Softmax,
        x,
        out,
        x.len().max(1),
        Temperature::Scalar(temperature),
    )
}

/// [`softmax`] overwriting its input.
///
/// ```
/// let mut x = [0.0f64, 0.0];
/// logitkit::softmax_in_place(&mut x, 1.0).unwrap();
/// assert_eq!(x, [0.5, 0.5]);
/// ```
pub fn softmax_in_place<T: Float>(x: &mut [T], temperature: f64) -> Result<()> {
    let n = x.len().max(1);
    map_rows_in_place(Op::Softmax, x, n, Temperature::Scalar(temperature))
}

/// Log-probabilities of one vector: `out = log_softmax(x / temperature)`, computed without
/// taking the log of a rounded probability.
///
/// ```
/// let mut lp = [0.0f64; 2];
/// logitkit::log_softmax(&[0.0, 0.0], &mut lp, 1.0).unwrap();
/// assert!((lp[0] + std::f64::consts::LN_2).abs() < 1e-15);
/// ```
pub fn log_softmax<T: Float>(x: &[T], out: &mut [T], temperature: f64) -> Result<()> {
    map_rows(
        Op::LogSoftmax,
        x,
        out,
        x.len().max(1),
        Temperature::Scalar(temperature),
    )
}

/// [`log_softmax`] overwriting its input.
///
/// ```
/// let mut x = [1.0f32, f32::NEG_INFINITY];
/// logitkit::log_softmax_in_place(&mut x, 1.0).unwrap();
/// assert_eq!(x, [0.0, f32::NEG_INFINITY]);
/// ```
pub fn log_softmax_in_place<T: Float>(x: &mut [T], temperature: f64) -> Result<()> {
    let n = x.len().max(1);
    map_rows_in_place(Op::LogSoftmax, x, n, Temperature::Scalar(temperature))
}

/// `log(sum(exp(x)))` of one vector, overflow-safe. Empty or all `-inf`: `-inf`; any NaN: NaN;
/// otherwise any `+inf`: `+inf`. NaN when an interruption check ([`crate::with_interrupt_check`])
/// stopped it.
///
/// ```
/// let v = logitkit::logsumexp(&[1000.0f64, 1000.0]);
/// assert!((v - (1000.0 + std::f64::consts::LN_2)).abs() < 1e-12);
/// assert_eq!(logitkit::logsumexp::<f32>(&[]), f32::NEG_INFINITY);
/// ```
pub fn logsumexp<T: Float>(x: &[T]) -> T {
    let mut out = [T::from_compute(<T::Compute as crate::element::Real>::NAN)];
    let lanes = Lanes::rows(1, x.len());
    // SAFETY: the lane is the slice itself.
    match unsafe { logsumexp_lanes_raw(x.as_ptr(), &lanes, &mut out) } {
        Ok(()) => out[0],
        Err(e) => {
            debug_assert_eq!(e, crate::Error::Interrupted, "one lane, one output");
            T::from_compute(<T::Compute as crate::element::Real>::NAN)
        }
    }
}

/// Softmax of each row of a row-major batch (`x.len() / row_len` rows), rows in parallel.
/// `temperature` is one value or one per row.
///
/// ```
/// let x = [0.0f32, 0.0, 1.0, 1.0];
/// let mut p = [0.0f32; 4];
/// logitkit::softmax_rows(&x, &mut p, 2, 1.0.into()).unwrap();
/// assert_eq!(p, [0.5; 4]);
/// let per_row = [1.0, 2.0];
/// logitkit::softmax_rows(&x, &mut p, 2, (&per_row[..]).into()).unwrap();
/// ```
pub fn softmax_rows<T: Float>(
    x: &[T],
    out: &mut [T],
    row_len: usize,
    temperature: Temperature<'_>,
) -> Result<()> {
    map_rows(Op::Softmax, x, out, row_len, temperature)
}

/// [`softmax_rows`] overwriting its input.
///
/// ```
/// let mut x = vec![3.0f64; 6];
/// logitkit::softmax_rows_in_place(&mut x, 3, 1.0.into()).unwrap();
/// assert!(x.iter().all(|&p| (p - 1.0 / 3.0).abs() < 1e-15));
/// ```
pub fn softmax_rows_in_place<T: Float>(
    x: &mut [T],
    row_len: usize,
    temperature: Temperature<'_>,
) -> Result<()> {
    map_rows_in_place(Op::Softmax, x, row_len, temperature)
}

/// Log-softmax of each row of a row-major batch, rows in parallel.
///
/// ```
/// let x = [0.0f64, 0.0];
/// let mut lp = [0.0f64; 2];
/// logitkit::log_softmax_rows(&x, &mut lp, 1, 1.0.into()).unwrap();
/// assert_eq!(lp, [0.0, 0.0]);
/// ```
pub fn log_softmax_rows<T: Float>(
    x: &[T],
    out: &mut [T],
    row_len: usize,
    temperature: Temperature<'_>,
) -> Result<()> {
    map_rows(Op::LogSoftmax, x, out, row_len, temperature)
}

/// [`log_softmax_rows`] overwriting its input.
///
/// ```
/// let mut x = vec![0.0f32; 4];
/// logitkit::log_softmax_rows_in_place(&mut x, 4, 1.0.into()).unwrap();
/// assert!(x.iter().all(|&v| (v + 4f32.ln()).abs() < 1e-6));
/// ```
pub fn log_softmax_rows_in_place<T: Float>(
    x: &mut [T],
    row_len: usize,
    temperature: Temperature<'_>,
) -> Result<()> {
    map_rows_in_place(Op::LogSoftmax, x, row_len, temperature)
}

/// log-sum-exp of each row of a row-major batch into `out` (one value per row), rows in
/// parallel. `row_len` may be 0, giving `-inf` for every row.
///
/// ```
/// let x = [0.0f64, 0.0, f64::NEG_INFINITY, f64::NEG_INFINITY];
/// let mut out = [0.0f64; 2];
/// logitkit::logsumexp_rows(&x, 2, &mut out).unwrap();
/// assert_eq!(out, [std::f64::consts::LN_2, f64::NEG_INFINITY]);
/// ```
pub fn logsumexp_rows<T: Float>(x: &[T], row_len: usize, out: &mut [T]) -> Result<()> {
    let rows = if row_len == 0 {
        out.len()
    } else {
        rows_of(x.len(), row_len)?
    };
    check_len("x", x.len(), rows * row_len)?;
    check_len("out", out.len(), rows)?;
    let lanes = Lanes::rows(rows, row_len);
    // SAFETY: x holds rows * row_len elements.
    unsafe { logsumexp_lanes_raw(x.as_ptr(), &lanes, out) }
}
