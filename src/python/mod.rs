//! PyO3 bindings: argument checking and dtype/stride dispatch, then one call into the core with
//! the GIL released. Compiled only with the `python` feature.

mod arrays;
mod extras;
mod sampling;
mod softmax;

use std::ffi::CString;

use pyo3::exceptions::{PyRuntimeError, PyRuntimeWarning, PyValueError};
use pyo3::prelude::*;

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
    if arrays::is_bool(n) {
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
///
/// Examples
/// --------
/// >>> import logitkit
/// >>> 1 <= logitkit.get_num_threads() <= 1024
/// True
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
///
/// Examples
/// --------
/// >>> import logitkit
/// >>> logitkit.simd_level() in ("scalar", "avx2", "avx512", "neon")
/// True
#[pyfunction]
#[pyo3(text_signature = "()")]
fn simd_level() -> &'static str {
    crate::simd_level().name()
}

/// Runs `f`, a call into the core, with the GIL released. A panic in it (on this thread or on
/// a helper thread of the call, whose panic the crew hands back here) is an internal invariant
/// that broke: it becomes a `RuntimeError` that says so, never pyo3's `PanicException`
/// (contract R2). The core's own errors come back as they are, for the caller to map.
pub(crate) fn detached<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> crate::Result<T> + Send,
) -> PyResult<crate::Result<T>> {
    py.detach(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)))
        .map_err(|payload| {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            PyRuntimeError::new_err(format!(
                "logitkit internal error (a bug; please report it): {what}"
            ))
        })
}

/// Breaks an internal invariant on purpose, for the tests of contract R2: `where_` is
/// `"caller"` (a panic on the calling thread) or `"helpers"` (a panic in every task of a
/// parallel section, so on the crew's threads too).
#[pyfunction]
#[pyo3(signature = (where_))]
fn _internal_error_for_tests(py: Python<'_>, where_: &str) -> PyResult<()> {
    let on_helpers = match where_ {
        "caller" => false,
        "helpers" => true,
        _ => {
            return Err(PyValueError::new_err(format!(
                "where_ must be \"caller\" or \"helpers\", got {}",
                arrays::abbreviate(&format!("{where_:?}"))
            )))
        }
    };
    detached(py, || {
        if on_helpers {
            crate::parallel::map_init(
                64,
                1,
                true,
                || (),
                |_, i| -> () { panic!("deliberate panic in task {i}") },
            )?;
        } else {
            panic!("deliberate panic on the calling thread");
        }
        Ok(())
    })?
    .map_err(arrays::to_py_err)
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
    m.add_function(wrap_pyfunction!(sampling::verify::verify_draft, m)?)?;
    m.add_function(wrap_pyfunction!(
        sampling::verify::_verify_draft_uniforms,
        m
    )?)?;
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
    m.add_function(wrap_pyfunction!(_internal_error_for_tests, m)?)?;
    read_environment(m.py())?;
    Ok(())
}
