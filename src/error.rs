//! The crate's one error type. The Python bindings map every variant but `Interrupted` to
//! `ValueError`, keeping the message, which always names the parameter and the bad value;
//! `Interrupted` becomes the exception the signal handler raised (`KeyboardInterrupt`).

/// Everything that can go wrong in a call to this crate.
///
/// ```
/// let err = logitkit::softmax(&[1.0f32, 2.0], &mut [0.0; 2], -1.0).unwrap_err();
/// assert!(err.to_string().contains("temperature"));
/// assert!(err.to_string().contains("-1"));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A parameter is outside its domain: `name` is the parameter, `value` its bad value, and
    /// `expected` says what would have been accepted.
    #[error("{name} must be {expected}, got {value}")]
    InvalidParameter {
        /// The parameter's name as the user spelled it.
        name: &'static str,
        /// The offending value, formatted.
        value: String,
        /// What the parameter accepts.
        expected: &'static str,
    },
    /// A buffer or per-row parameter has the wrong length.
    #[error("{name} has length {got}, expected {expected}")]
    LengthMismatch {
        /// The buffer's or parameter's name.
        name: &'static str,
        /// Its length.
        got: usize,
        /// The length the call needed.
        expected: usize,
    },
    /// One row of logits cannot be sampled from (NaN, `+inf`, no finite entry left), or changed
    /// while it was being read (another thread wrote to it during the call, contract R3).
    #[error("logits row {row} {problem}")]
    InvalidRow {
        /// Index of the row (counting rows in C order over all leading dimensions).
        row: usize,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// One sequence of a speculative-decoding call ([`crate::verify_draft`], contract V4) has
    /// bad input: `name` is the argument, `row` the sequence, `problem` what is wrong (with the
    /// draft position and the value).
    #[error("{name} row {row} {problem}")]
    InvalidSequence {
        /// The argument's name (`target_logits`, `draft_tokens` or `draft_probs`).
        name: &'static str,
        /// Index of the sequence (the first axis).
        row: usize,
        /// What is wrong, with the position and the bad value.
        problem: String,
    },
    /// The system refused memory the call needs (contract R1). The call has no effect beyond
    /// its outputs, whose contents are then unspecified; the process goes on.
    #[error("out of memory: {what} needs {bytes} bytes")]
    OutOfMemory {
        /// What the memory was for.
        what: &'static str,
        /// The size of the refused allocation.
        bytes: usize,
    },
    /// The interruption check installed with [`crate::with_interrupt_check`] said to stop; the
    /// call skipped the rest of its work, and its outputs are unspecified.
    #[error("interrupted")]
    Interrupted,
}

/// Shorthand for results of this crate.
///
/// ```
/// fn top_token(logits: &[f32], temperature: f64) -> logitkit::Result<(usize, f32)> {
///     let mut p = vec![0.0; logits.len()];
///     logitkit::softmax(logits, &mut p, temperature)?;
///     let best = p.iter().copied().fold(0.0, f32::max);
///     Ok((p.iter().position(|&v| v == best).unwrap_or(0), best))
/// }
/// let (i, p) = top_token(&[0.0, 3.0, 1.0], 1.0).unwrap();
/// assert_eq!(i, 1);
/// assert!(p > 0.8);
/// assert!(matches!(
///     top_token(&[0.0, 1.0], 0.0),
///     Err(logitkit::Error::InvalidParameter { name: "temperature", .. })
/// ));
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(
        name: &'static str,
        value: impl std::fmt::Display,
        expected: &'static str,
    ) -> Self {
        Error::InvalidParameter {
            name,
            value: value.to_string(),
            expected,
        }
    }
}
