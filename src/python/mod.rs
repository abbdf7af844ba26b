//! PyO3 bindings: argument checking and dtype/stride dispatch, then one call into the core with
//! the GIL released. Compiled only with the `python` feature.

mod arrays;
mod extras;
mod sampling;
mod softmax;

use std::ffi::CString;

use pyo3::exceptions::{PyRuntimeWarning, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBool;

/// Sets the number of threads logitkit uses.
///
/// Parameters
/// ----------
/// n : int
///     The thread count, from 1 to 1024 (the most logitkit uses, contract R5).
///
/// Raises
/// ------
/// ValueError
///     If ``n`` is not an integer from 1 to 1024; the setting is then unchanged.
///
/// Examples
/// --------
/// >>> import logitkit
/// >>> logitkit.set_num_threads(1)
/// >>> logitkit.get_num_threads()
/// 1
#[pyfunction]
#[pyo3(text_signature = "(n)")]
fn set_num_threads(n: &Bound<'_, PyAny>) -> PyResult<()> {
    let bad = || {
        PyValueError::new_err(format!(
            "n must be an integer from 1 to {}, got {}",
            crate::MAX_THREADS,
            arrays::repr(n)
        ))
    };
    if n.cast::<PyBool>().is_ok() {
        return Err(bad());
    }
    let v = n
        .call_method0("__index__")
        .and_then(|i| i.extract::<i64>())
        .map_err(|_| bad())?;
    if v < 1 || v > crate::MAX_THREADS as i64 {
        return Err(bad());
    }
    crate::set_num_threads(v as usize).map_err(arrays::to_py_err)
}

/// The number of threads logitkit uses.
///
/// Returns
/// -------
/// int
///     The last :func:`set_num_threads` value, else ``LOGITKIT_NUM_THREADS`` as read at import,
///     else the number of CPUs this process may use.
#[pyfunction]
#[pyo3(text_signature = "()")]
fn get_num_threads() -> usize {
    crate::get_num_threads()
}

/// The instruction set the kernels use on this CPU.
///
/// Returns
/// -------
/// str
///     ``"scalar"``, ``"avx2"``, ``"avx512"`` or ``"neon"``; ``LOGITKIT_SIMD`` set at import may
///     lower it.
#[pyfunction]
#[pyo3(text_signature = "()")]
fn simd_level() -> &'static str {
    crate::simd_level().name()
}

/// Reads the environment once at import (contract S11, S12), warning about a bad value.
fn read_environment(py: Python<'_>) -> PyResult<()> {
    if let Ok(v) = std::env::var(crate::NUM_THREADS_ENV) {
        if let Err(e) = crate::parallel::parse_num_threads(&v) {
            let msg = CString::new(format!("{e}; using the default thread count"))
                .map_err(|_| PyValueError::new_err("LOGITKIT_NUM_THREADS holds a NUL byte"))?;
            PyErr::warn(py, &py.get_type::<PyRuntimeWarning>(), &msg, 1)?;
        }
    }
    if let Ok(v) = std::env::var(crate::simd::SIMD_ENV) {
        if !v.trim().is_empty() && crate::SimdLevel::from_name(&v).is_none() {
            let msg = CString::new(format!(
                "{} must be one of \"scalar\", \"avx2\", \"avx512\", \"neon\", got {:?}; \
                 using the best level this CPU has",
                crate::simd::SIMD_ENV,
                crate::parallel::abbreviate(v.trim())
            ))
            .map_err(|_| PyValueError::new_err("LOGITKIT_SIMD holds a NUL byte"))?;
            PyErr::warn(py, &py.get_type::<PyRuntimeWarning>(), &msg, 1)?;
        }
    }
    let _ = crate::get_num_threads();
    let _ = crate::simd_level();
    Ok(())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(softmax::softmax, m)?)?;
    m.add_function(wrap_pyfunction!(softmax::log_softmax, m)?)?;
    m.add_function(wrap_pyfunction!(softmax::logsumexp, m)?)?;
    m.add_function(wrap_pyfunction!(sampling::sample, m)?)?;
    m.add_function(wrap_pyfunction!(sampling::filter_logits, m)?)?;
    m.add_function(wrap_pyfunction!(sampling::token_logprobs, m)?)?;
    m.add_class::<sampling::Sampler>()?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(simd_level, m)?)?;
    m.add_function(wrap_pyfunction!(extras::cross_entropy, m)?)?;
    m.add_function(wrap_pyfunction!(extras::fit_temperature, m)?)?;
    m.add_function(wrap_pyfunction!(extras::expected_calibration_error, m)?)?;
    m.add_function(wrap_pyfunction!(extras::calibration_bins, m)?)?;
    m.add_function(wrap_pyfunction!(extras::topk, m)?)?;
    m.add_function(wrap_pyfunction!(extras::sparsemax, m)?)?;
    m.add_function(wrap_pyfunction!(extras::sigmoid, m)?)?;
    read_environment(m.py())?;
    Ok(())
}
