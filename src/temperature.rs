//! Temperatures: one for all rows, or one per row (contract S4).

use crate::error::{Error, Result};

/// The temperature of a call: `softmax(x, T) = softmax(x / T)`.
///
/// ```
/// use logitkit::Temperature;
/// let one: Temperature = 2.0.into();
/// let per_row: Temperature = (&[0.5, 2.0][..]).into();
/// assert_eq!(one.get(7), 2.0);
/// assert_eq!(per_row.get(1), 2.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Temperature<'a> {
    /// The same temperature for every row.
    Scalar(f64),
    /// One temperature per row, in row order.
    PerRow(&'a [f64]),
}

impl Default for Temperature<'_> {
    fn default() -> Self {
        Temperature::Scalar(1.0)
    }
}

impl From<f64> for Temperature<'_> {
    fn from(t: f64) -> Self {
        Temperature::Scalar(t)
    }
}

impl<'a> From<&'a [f64]> for Temperature<'a> {
    fn from(t: &'a [f64]) -> Self {
        Temperature::PerRow(t)
    }
}

impl<'a> From<&'a Vec<f64>> for Temperature<'a> {
    fn from(t: &'a Vec<f64>) -> Self {
        Temperature::PerRow(t)
    }
}

/// Checks one softmax temperature: positive and finite.
pub(crate) fn check_softmax_temperature(t: f64) -> Result<()> {
    if t > 0.0 && t.is_finite() {
        Ok(())
    } else {
        Err(Error::invalid("temperature", t, "a positive finite float"))
    }
}

impl Temperature<'_> {
    /// The temperature of row `row`.
    ///
    /// # Panics
    /// For a per-row temperature with fewer than `row + 1` values.
    ///
    /// ```
    /// use logitkit::Temperature;
    /// let temps = [0.7, 1.3];
    /// let t = Temperature::PerRow(&temps);
    /// assert_eq!((t.get(0), t.get(1)), (0.7, 1.3));
    /// assert_eq!(Temperature::Scalar(0.7).get(1_000), 0.7); // any row
    /// assert_eq!(Temperature::default().get(0), 1.0);
    /// ```
    #[inline]
    pub fn get(&self, row: usize) -> f64 {
        match self {
            Temperature::Scalar(t) => *t,
            Temperature::PerRow(ts) => ts[row],
        }
    }

    /// Checks every value is positive and finite, and that a per-row slice has `rows` entries.
    pub(crate) fn check_softmax(&self, rows: usize) -> Result<()> {
        match self {
            Temperature::Scalar(t) => check_softmax_temperature(*t),
            Temperature::PerRow(ts) => {
                if ts.len() != rows {
                    return Err(Error::LengthMismatch {
                        name: "temperature",
                        got: ts.len(),
                        expected: rows,
                    });
                }
                ts.iter().try_for_each(|&t| check_softmax_temperature(t))
            }
        }
    }
}
