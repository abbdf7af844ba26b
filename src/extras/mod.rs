//! Beyond the softmax family: a fused cross-entropy loss, temperature scaling and calibration
//! error, top-k selection, sparsemax and an overflow-safe sigmoid.
//!
//! Every function has a slice form (one vector or a row-major batch of rows) and a strided
//! "lanes" form (any axis and strides of an n-dimensional array, as the NumPy bindings use it).
//! Rows run in parallel on the crate's own pool when the call is large; results are bitwise the
//! same whatever the thread count, and a row's result depends only on that row.
//!
//! ```
//! use logitkit::extras::{cross_entropy, CrossEntropyOptions, Reduction};
//! let logits = [2.0f32, 0.5, -1.0, 0.0, 0.0, 3.0];
//! let loss = cross_entropy(&logits, 3, &[0, 2], &CrossEntropyOptions::default(), Reduction::Mean)
//!     .unwrap();
//! assert!(loss > 0.0 && loss < 0.3);
//! ```

pub mod calibration;
pub(crate) mod exec;
pub mod loss;
pub mod ops;

pub use calibration::{
    calibration_bins, calibration_bins_lanes, expected_calibration_error, fit_temperature,
    fit_temperature_lanes, CalibrationBins, TemperatureFit, FIT_TOLERANCE, MAX_BINS, T_MAX, T_MIN,
};
pub use loss::{
    cross_entropy, cross_entropy_lanes, cross_entropy_rows, reduce_losses, CrossEntropyOptions,
    Reduction,
};
pub use ops::{
    sigmoid, sigmoid_lanes, sparsemax, sparsemax_lanes, sparsemax_rows, topk, topk_lanes, topk_rows,
};
// The raw-pointer forms, for the NumPy bindings.
#[cfg(feature = "python")]
pub(crate) use calibration::{calibration_bins_lanes_raw, fit_temperature_lanes_raw};
#[cfg(feature = "python")]
pub(crate) use loss::cross_entropy_lanes_raw;
#[cfg(feature = "python")]
pub(crate) use ops::{sigmoid_lanes_raw, sparsemax_lanes_raw, topk_lanes_raw};
