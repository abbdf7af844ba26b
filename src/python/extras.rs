//! Bindings of [`crate::extras`]: `cross_entropy`, `fit_temperature`,
//! `expected_calibration_error`, `calibration_bins`, `topk`, `sparsemax`, `sigmoid`.
//! Same pattern as the softmax family: coerce and check, then one core call without the GIL.

use numpy::{PyArray, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeWarning, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{IntoPyDict, PyBool, PyInt, PyList, PyTuple};

use super::arrays::{
    bf16_bits_class, detach_interruptible, dispatch, float_arg, fortran_run, is_bool, new_empty,
    normalize_axis, parse_per_lane_f64, refuse_self_overlap, repr, result_of, shape_str, to_py_err,
    without, Axis, Dtype, FloatArray,
};
use crate::extras::{self, CrossEntropyOptions, Reduction};
use crate::lanes::{coalesce, Lanes};
use crate::shared::SharedPtr;

/// Element strides of a C-contiguous array of `shape`.
fn c_strides(shape: &[usize]) -> Vec<isize> {
    let mut s = vec![0isize; shape.len()];
    let mut acc = 1isize;
    for d in (0..shape.len()).rev() {
        s[d] = acc;
        acc *= shape[d].max(1) as isize;
    }
    s
}

/// The lanes of `xa` along `axis` (copying `xa` when `axis=None` and its elements are not
/// evenly spaced).
fn input_lanes<'py>(
    py: Python<'py>,
    xa: &mut FloatArray<'py>,
    axis: Option<usize>,
) -> PyResult<Lanes> {
    match xa.lanes(axis) {
        Some(l) => Ok(l),
        None => {
            *xa = xa.copy(py)?;
            Ok(xa.lanes(axis).expect("a C-contiguous array is one lane"))
        }
    }
}

/// `reduction`: a string (contract P8: a wrong type is named in the message itself, not only in
/// PyO3's exception note).
fn reduction_arg(v: &Bound<'_, PyAny>) -> PyResult<String> {
    v.extract::<String>().map_err(|_| {
        PyTypeError::new_err(format!(
            "reduction must be 'mean', 'sum' or 'none', got {}",
            repr(v)
        ))
    })
}

/// `label_smoothing`: a real number.
fn label_smoothing_arg(v: &Bound<'_, PyAny>) -> PyResult<f64> {
    float_arg(v, "label_smoothing")
}

/// `ignore_index`: None or an integer; beyond int64 it matches no label, so it is refused.
fn ignore_index_arg(v: &Bound<'_, PyAny>) -> PyResult<Option<i64>> {
    if v.is_none() {
        return Ok(None);
    }
    let wrong_type = || {
        PyTypeError::new_err(format!(
            "ignore_index must be an integer or None, got {}",
            repr(v)
        ))
    };
    if is_bool(v) {
        return Err(wrong_type());
    }
    let i = v.call_method0("__index__").map_err(|_| wrong_type())?;
    i.extract::<i64>().map(Some).map_err(|_| {
        PyValueError::new_err(format!(
            "ignore_index must be an integer in int64's range, got {}",
            repr(v)
        ))
    })
}

/// Requires an integer axis (these functions reduce along one): `None` is of the wrong type
/// for them (contract R7).
fn int_axis(py: Python<'_>, func: &str, axis: Option<Axis>, ndim: usize) -> PyResult<usize> {
    let Some(a) = axis else {
        return Err(PyTypeError::new_err(format!(
            "axis must be an integer for {func} (the class axis), got None"
        )));
    };
    Ok(normalize_axis(py, Some(a), ndim)?.expect("an int axis"))
}

/// When `labels` is a list or tuple of Python ints (nested or not) one of which does not fit
/// int64: the first such.
fn int_outside_i64<'py>(
    py: Python<'py>,
    labels: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    if labels.cast::<PyList>().is_err() && labels.cast::<PyTuple>().is_err() {
        return Ok(None);
    }
    let np = py.import("numpy")?;
    let Ok(objects) = np.call_method(
        "asarray",
        (labels,),
        Some(&[("dtype", "object")].into_py_dict(py)?),
    ) else {
        return Ok(None);
    };
    let items = objects.call_method0("ravel")?.call_method0("tolist")?;
    let items = items.cast::<PyList>()?;
    let all_ints = items
        .iter()
        .all(|v| v.cast::<PyInt>().is_ok() && v.cast::<PyBool>().is_err());
    if !all_ints {
        return Ok(None);
    }
    Ok(items.iter().find(|v| v.extract::<i64>().is_err()))
}

/// Labels (contract-style: integers only) as an int64 vector of shape `expected`, the shape of
/// the input named `of` without its class axis.
fn parse_labels<'py>(
    py: Python<'py>,
    labels: &Bound<'py, PyAny>,
    expected: &[usize],
    of: &str,
) -> PyResult<numpy::PyReadonlyArrayDyn<'py, i64>> {
    let np = py.import("numpy")?;
    let arr = np
        .call_method1("asarray", (labels,))
        .map_err(|e| PyTypeError::new_err(format!("labels must be an integer array: {e}")))?
        .cast_into::<PyUntypedArray>()?;
    let kind = arr.dtype().kind();
    if kind == b'f' || kind == b'O' {
        // Python ints outside int64 make NumPy pick float64 or object: a value out of range
        // (contract R7), not a wrong type.
        if let Some(big) = int_outside_i64(py, labels)? {
            return Err(PyValueError::new_err(format!(
                "labels must be class indices in [0, n_classes), got {}",
                repr(&big)
            )));
        }
    }
    if kind != b'i' && kind != b'u' {
        return Err(PyTypeError::new_err(format!(
            "labels must be an integer array (class indices), got dtype {}",
            arr.dtype().str()?
        )));
    }
    if arr.shape() != expected {
        return Err(PyValueError::new_err(format!(
            "labels has shape {}, expected {} (the shape of {of} without the class axis)",
            shape_str(arr.shape()),
            shape_str(expected)
        )));
    }
    if kind == b'u' && arr.dtype().itemsize() == 8 {
        let too_big = np
            .call_method1("any", (arr.call_method1("__gt__", (i64::MAX as u64,))?,))?
            .is_truthy()?;
        if too_big {
            return Err(PyValueError::new_err(
                "labels must be class indices in [0, n_classes), got a value above 2**63 - 1",
            ));
        }
    }
    let c = np.call_method(
        "ascontiguousarray",
        (arr,),
        Some(&[("dtype", "int64")].into_py_dict(py)?),
    )?;
    // A C-contiguous int64 array is read where it is (`ascontiguousarray` returns it as is),
    // as the logits are: no copy of millions of labels.
    Ok(c.cast_into::<PyArray<i64, numpy::IxDyn>>()?.readonly())
}

/// A Python int >= 0 (not bool), named `name` in errors.
fn parse_count(v: &Bound<'_, PyAny>, name: &str, what: &str) -> PyResult<usize> {
    let bad = || PyValueError::new_err(format!("{name} must be {what}, got {}", repr(v)));
    // Contract R7: a count that is not an integer (a float, a bool, a string, None) is of the
    // wrong type; an integer out of range is a bad value.
    let index = if is_bool(v) {
        None
    } else {
        v.call_method0("__index__").ok()
    };
    let Some(i) = index else {
        return Err(PyTypeError::new_err(format!(
            "{name} must be {what}, got {}",
            repr(v)
        )));
    };
    let i = i.extract::<i64>().map_err(|_| bad())?;
    usize::try_from(i).map_err(|_| bad())
}

/// A NumPy array of `dtype` and `shape` holding `values`, each rounded once from f64 (no
/// NumPy cast, so no overflow warning).
fn f64_to_array<'py>(
    py: Python<'py>,
    values: Vec<f64>,
    shape: &[usize],
    dtype: Dtype,
) -> PyResult<Bound<'py, PyAny>> {
    let arr = dtype.empty(py, shape)?;
    let dst = FloatArray::view(&arr).expect("fresh array").data;
    // SAFETY: a fresh C-contiguous array of values.len() elements of `dtype`, not yet shared.
    unsafe {
        match dtype {
            Dtype::F64 => std::ptr::copy_nonoverlapping(values.as_ptr(), dst.cast(), values.len()),
            Dtype::F32 => {
                let d = std::slice::from_raw_parts_mut(dst.cast::<f32>(), values.len());
                d.iter_mut().zip(&values).for_each(|(o, &v)| *o = v as f32);
            }
            Dtype::F16 => {
                let d = std::slice::from_raw_parts_mut(dst.cast::<half::f16>(), values.len());
                d.iter_mut()
                    .zip(&values)
                    .for_each(|(o, &v)| *o = half::f16::from_f64(v));
            }
            Dtype::BF16 => {
                // To float32, then once to bfloat16: what the float32 computation then
                // `Back`'s rounding gave before bfloat16 was read natively (the tests hold it).
                let d = std::slice::from_raw_parts_mut(dst.cast::<half::bf16>(), values.len());
                d.iter_mut()
                    .zip(&values)
                    .for_each(|(o, &v)| *o = <half::bf16 as crate::Float>::from_compute(v as f32));
            }
        }
    }
    Ok(arr.into_any())
}

fn f64_to_scalar<'py>(py: Python<'py>, v: f64, dtype: Dtype) -> PyResult<Bound<'py, PyAny>> {
    let arr = f64_to_array(py, vec![v], &[], dtype)?;
    result_of(arr, dtype)
}

/// Fused softmax cross-entropy between logits and integer class labels.
///
/// Parameters
/// ----------
/// logits : array_like
///     Unnormalised scores; dtypes as for :func:`logitkit.softmax` (float16/32/64 kept,
///     integers and bool give float64).
/// labels : array_like of int
///     Class indices, shape ``logits.shape`` without ``axis``.
/// axis : int, default -1
///     The class axis (PyTorch's is 1: pass ``axis=1`` for ``(N, C, d1, ...)`` logits).
/// temperature : float or array_like, default 1.0
///     Logits are divided by it first; one value or one per vector (positive, finite).
/// reduction : {"mean", "sum", "none"}, default "mean"
///     ``"mean"`` averages over labels that are not ``ignore_index`` (NaN if there are none).
/// label_smoothing : float, default 0.0
///     ``ε`` in [0, 1]; the target puts ``1 - ε + ε/C`` on the label and ``ε/C`` elsewhere.
/// ignore_index : int or None, default None
///     Labels equal to it contribute 0 and do not count for the mean.
///
/// Returns
/// -------
/// scalar or ndarray
///     A NumPy scalar of the logits' result dtype for ``"mean"``/``"sum"``, else an array of
///     ``labels``' shape. Computed in float64 from each vector's maximum and its exp-sum, then
///     rounded once; the exp-sum is the softmax kernels' (float32 exps, summed in float64, for
///     float32, float16 and bfloat16 logits), so float32 losses are within a few float32 ulps
///     of the exact value (the ``log_softmax`` accuracy of S8).
///     In the logits' array type (a 0-d tensor for torch logits, a JAX array for JAX logits).
///
/// Examples
/// --------
/// >>> import logitkit._native as n
/// >>> float(n.cross_entropy([[2.0, 0.5, -1.0]], [0])).__round__(4)
/// 0.2413
#[pyfunction]
#[pyo3(signature = (logits, labels, axis=Some(Axis::LAST), *, temperature=None, reduction=String::from("mean"), label_smoothing=0.0, ignore_index=None),
       text_signature = "(logits, labels, axis=-1, *, temperature=1.0, reduction='mean', label_smoothing=0.0, ignore_index=None)")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn cross_entropy<'py>(
    py: Python<'py>,
    logits: &Bound<'py, PyAny>,
    labels: &Bound<'py, PyAny>,
    axis: Option<Axis>,
    temperature: Option<&Bound<'py, PyAny>>,
    #[pyo3(from_py_with = reduction_arg)] reduction: String,
    #[pyo3(from_py_with = label_smoothing_arg)] label_smoothing: f64,
    #[pyo3(from_py_with = ignore_index_arg)] ignore_index: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    let reduction = Reduction::parse(&reduction).map_err(to_py_err)?;
    let (logits, back) = adapt_input(py, logits, "logits")?;
    let mut xa = FloatArray::coerce(py, &logits, "logits")?;
    let k = int_axis(py, "cross_entropy", axis, xa.shape.len())?;
    let outer = without(&xa.shape, k);
    let labels = parse_labels(py, labels, &outer, "logits")?;
    let labels = labels.as_slice()?;
    let temps = parse_per_lane_f64(py, "temperature", temperature, 1.0, &outer)?;
    let lanes = input_lanes(py, &mut xa, Some(k))?;
    let (src, dtype) = (SharedPtr(xa.data), xa.dtype);
    let mut losses =
        crate::scratch::filled(labels.len(), 0.0f64, "the losses").map_err(to_py_err)?;
    let opts = CrossEntropyOptions {
        temperature: temps.as_core(),
        label_smoothing,
        ignore_index,
    };
    detach_interruptible(py, || {
        // SAFETY: src is a live array laid out as `lanes`, only read.
        dispatch!(dtype, T => unsafe {
            extras::cross_entropy_lanes_raw::<T>(src.typed(), &lanes, labels, &opts, &mut losses)
        })
    })?;
    let result = match reduction {
        Reduction::None => f64_to_array(py, losses, &outer, dtype)?,
        r => {
            let v = extras::reduce_losses(&losses, labels, ignore_index, r);
            f64_to_scalar(py, v, dtype)?
        }
    };
    match back {
        Some(back) => back.call1((result,)),
        None => Ok(result),
    }
}

/// The temperature that minimises the mean negative log-likelihood of ``labels``
/// (temperature scaling, Guo et al. 2017).
///
/// Parameters
/// ----------
/// logits : array_like
///     Unnormalised scores, dtypes as for :func:`logitkit.softmax`.
/// labels : array_like of int
///     Class indices, shape ``logits.shape`` without ``axis``.
/// axis : int, default -1
///     The class axis.
///
/// Returns
/// -------
/// float
///     ``T`` in [1e-6, 1e6], to a relative tolerance of about 1e-10. The NLL is convex in
///     ``1/T``; the search is safeguarded Newton on ``ln(1/T)`` inside a bracket, falling back
///     to bisection. A ``RuntimeWarning`` says when the optimum lies at a bound (for example
///     when every prediction is right, where the NLL keeps falling as ``T -> 0``).
///
/// Examples
/// --------
/// >>> import numpy as np, logitkit
/// >>> from logitkit.calibration import fit_temperature
/// >>> logits = np.random.default_rng(0).normal(size=(2000, 10)) * 3
/// >>> labels = logitkit.sample(logits, temperature=2.0, seed=1)  # drawn at T = 2
/// >>> 1.8 < fit_temperature(logits, labels) < 2.2
/// True
#[pyfunction]
#[pyo3(signature = (logits, labels, axis=Some(Axis::LAST)), text_signature = "(logits, labels, axis=-1)")]
pub(crate) fn fit_temperature<'py>(
    py: Python<'py>,
    logits: &Bound<'py, PyAny>,
    labels: &Bound<'py, PyAny>,
    axis: Option<Axis>,
) -> PyResult<f64> {
    let (logits, _) = adapt_input(py, logits, "logits")?;
    let mut xa = FloatArray::coerce(py, &logits, "logits")?;
    let k = int_axis(py, "fit_temperature", axis, xa.shape.len())?;
    let outer = without(&xa.shape, k);
    let labels = parse_labels(py, labels, &outer, "logits")?;
    let labels = labels.as_slice()?;
    let lanes = input_lanes(py, &mut xa, Some(k))?;
    let (src, dtype) = (SharedPtr(xa.data), xa.dtype);
    let fit = detach_interruptible(py, || {
        // SAFETY: src is a live array laid out as `lanes`, only read.
        dispatch!(dtype, T => unsafe {
            extras::fit_temperature_lanes_raw::<T>(src.typed(), &lanes, labels)
        })
    })?;
    if fit.at_bound {
        let msg = std::ffi::CString::new(format!(
            "fit_temperature: the NLL's minimum lies at or beyond the search bound; returning \
             T = {:e}",
            fit.temperature
        ))
        .expect("no NUL");
        PyErr::warn(py, &py.get_type::<PyRuntimeWarning>(), &msg, 1)?;
    }
    Ok(fit.temperature)
}

/// `n_bins` of the calibration functions: an integer in `[1, MAX_BINS]` (R7: `None`, a float
/// or a bool is a `TypeError`; the default, 15, is the signature's).
fn n_bins_arg(v: &Bound<'_, PyAny>) -> PyResult<usize> {
    let n_bins = parse_count(v, "n_bins", "an integer in [1, 1048576]")?;
    if n_bins == 0 || n_bins > extras::MAX_BINS {
        return Err(PyValueError::new_err(format!(
            "n_bins must be an integer in [1, 1048576], got {n_bins}"
        )));
    }
    Ok(n_bins)
}

fn bins_impl<'py>(
    py: Python<'py>,
    probs: &Bound<'py, PyAny>,
    labels: &Bound<'py, PyAny>,
    n_bins: usize,
    axis: Option<Axis>,
    func: &str,
) -> PyResult<extras::CalibrationBins> {
    let (probs, _) = adapt_input(py, probs, "probs")?;
    let mut xa = FloatArray::coerce(py, &probs, "probs")?;
    let k = int_axis(py, func, axis, xa.shape.len())?;
    let outer = without(&xa.shape, k);
    let labels = parse_labels(py, labels, &outer, "probs")?;
    let labels = labels.as_slice()?;
    let lanes = input_lanes(py, &mut xa, Some(k))?;
    let (src, dtype) = (SharedPtr(xa.data), xa.dtype);
    // Interruptible (contract R8).
    detach_interruptible(py, || {
        // SAFETY: src is a live array laid out as `lanes`, only read.
        dispatch!(dtype, T => unsafe {
            extras::calibration_bins_lanes_raw::<T>(src.typed(), &lanes, labels, n_bins)
        })
    })
}

/// Expected calibration error over equal-width confidence bins.
///
/// Parameters
/// ----------
/// probs : array_like
///     Predicted probabilities (e.g. ``softmax(logits)``); the confidence of a vector is its
///     largest entry and the prediction its position (lowest index on ties).
/// labels : array_like of int
///     Class indices, shape ``probs.shape`` without ``axis``.
/// n_bins : int, default 15
///     Bin ``b`` holds confidences in ``(b/n_bins, (b+1)/n_bins]``, each edge the float64
///     division (so 0.9 is in the bin ending at 0.9).
/// axis : int, default -1
///     The class axis.
///
/// Returns
/// -------
/// float
///     ``sum_b |B_b|/N * |accuracy(B_b) - confidence(B_b)|`` (0.0 for no rows).
///
/// Examples
/// --------
/// >>> from logitkit.calibration import expected_calibration_error
/// >>> probs = [[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]]
/// >>> round(expected_calibration_error(probs, [0, 1, 1], n_bins=2), 4)  # |2/3 - 2.3/3|
/// 0.1
#[pyfunction]
#[pyo3(signature = (probs, labels, n_bins=15, axis=Some(Axis::LAST)), text_signature = "(probs, labels, n_bins=15, axis=-1)")]
pub(crate) fn expected_calibration_error<'py>(
    py: Python<'py>,
    probs: &Bound<'py, PyAny>,
    labels: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = n_bins_arg)] n_bins: usize,
    axis: Option<Axis>,
) -> PyResult<f64> {
    let bins = bins_impl(
        py,
        probs,
        labels,
        n_bins,
        axis,
        "expected_calibration_error",
    )?;
    Ok(bins.expected_calibration_error())
}

/// Per-bin reliability statistics (the data of a reliability diagram).
///
/// Returns
/// -------
/// (count, confidence, accuracy) : tuple of ndarray
///     Rows per bin (int64), their mean confidence and their accuracy (float64, NaN for an
///     empty bin). Bins as in :func:`expected_calibration_error`, whose parameters these are.
///
/// Examples
/// --------
/// >>> from logitkit.calibration import calibration_bins
/// >>> count, confidence, accuracy = calibration_bins([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]], [0, 1, 1], n_bins=2)
/// >>> count.tolist(), confidence.round(2).tolist(), accuracy.tolist()
/// ([0, 3], [nan, 0.77], [nan, 0.6666666666666666])
#[pyfunction]
#[pyo3(signature = (probs, labels, n_bins=15, axis=Some(Axis::LAST)), text_signature = "(probs, labels, n_bins=15, axis=-1)")]
pub(crate) fn calibration_bins<'py>(
    py: Python<'py>,
    probs: &Bound<'py, PyAny>,
    labels: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = n_bins_arg)] n_bins: usize,
    axis: Option<Axis>,
) -> PyResult<Bound<'py, PyTuple>> {
    let b = bins_impl(py, probs, labels, n_bins, axis, "calibration_bins")?;
    let conf: Vec<f64> = b
        .confidence_sum
        .iter()
        .zip(&b.count)
        .map(|(&s, &c)| if c == 0 { f64::NAN } else { s / c as f64 })
        .collect();
    let acc: Vec<f64> = b
        .correct
        .iter()
        .zip(&b.count)
        .map(|(&k, &c)| {
            if c == 0 {
                f64::NAN
            } else {
                k as f64 / c as f64
            }
        })
        .collect();
    let count: Vec<i64> = b.count.iter().map(|&c| c as i64).collect();
    PyTuple::new(
        py,
        [
            PyArray::from_vec(py, count).into_any(),
            PyArray::from_vec(py, conf).into_any(),
            PyArray::from_vec(py, acc).into_any(),
        ],
    )
}

/// The ``k`` largest entries along an axis, sorted descending, and their positions.
///
/// Parameters
/// ----------
/// x : array_like
///     Values; dtypes as for :func:`logitkit.softmax` (integers give float64 values).
/// k : int
///     How many, in ``[0, x.shape[axis]]``.
/// axis : int or None, default -1
///     The axis to select along; ``None`` selects over the flattened array.
///
/// Returns
/// -------
/// (values, indices) : tuple of ndarray
///     ``x``'s shape with ``axis`` of length ``k`` (``(k,)`` for ``None``); values in the
///     result dtype, indices int64. Equal values: lower index first. NaN ranks above every
///     number (as in ``torch.topk``). No full sort: a single pass for ``k <= 64``, else a
///     linear-time selection, then the ``k`` winners are sorted. Both in ``x``'s array type
///     (torch tensors for a torch tensor, the indices int64; JAX arrays for a JAX array).
///
/// Examples
/// --------
/// >>> import logitkit._native as n
/// >>> n.topk([3.0, 1.0, 3.0, 7.0], 2)
/// (array([7., 3.]), array([3, 0]))
#[pyfunction]
#[pyo3(signature = (x, k, axis=Some(Axis::LAST)), text_signature = "(x, k, axis=-1)")]
pub(crate) fn topk<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    k: &Bound<'py, PyAny>,
    axis: Option<Axis>,
) -> PyResult<Bound<'py, PyTuple>> {
    let (x, back) = adapt_input(py, x, "x")?;
    let mut xa = FloatArray::coerce(py, &x, "x")?;
    let axis = normalize_axis(py, axis, xa.shape.len())?;
    let len = match axis {
        Some(a) => xa.shape[a],
        None => xa.size(),
    };
    let k = parse_count(k, "k", "an integer in [0, axis length]")?;
    if k > len {
        return Err(PyValueError::new_err(format!(
            "k must be an integer in [0, axis length], got {k} (axis length {len})"
        )));
    }
    let lanes = input_lanes(py, &mut xa, axis)?;
    let out_shape: Vec<usize> = match axis {
        Some(a) => {
            let mut s = xa.shape.clone();
            s[a] = k;
            s
        }
        None => vec![k],
    };
    let out_lanes = match axis {
        Some(a) => Lanes::from_strided(&out_shape, &c_strides(&out_shape), a),
        None => Lanes::rows(1, k),
    };
    let values = xa.dtype.empty(py, &out_shape)?;
    // Every element is written below before Python sees the array.
    let indices = new_empty::<i64>(py, &out_shape)?.cast_into::<PyArray<i64, numpy::IxDyn>>()?;
    let vptr = SharedPtr(FloatArray::view(&values).expect("fresh array").data);
    let iptr = SharedPtr(indices.data().cast());
    let (src, dtype) = (SharedPtr(xa.data), xa.dtype);
    detach_interruptible(py, || {
        // SAFETY: src is a live array laid out as `lanes`; values and indices are fresh
        // C-contiguous arrays laid out as `out_lanes` that nothing else sees yet.
        dispatch!(dtype, T => unsafe {
            extras::topk_lanes_raw::<T>(
                src.typed(),
                &lanes,
                k,
                vptr.typed(),
                &out_lanes,
                iptr.typed(),
                &out_lanes,
            )
        })
    })?;
    let (values, indices) = (values.into_any(), indices.into_any());
    match back {
        // Indices too: int64 tensors for torch input (S13).
        Some(back) => PyTuple::new(py, [back.call1((values,))?, back.call1((indices,))?]),
        None => PyTuple::new(py, [values, indices]),
    }
}

/// Runs an elementwise-or-lanewise map into a fresh array of `xa`'s shape.
fn map_fresh<'py>(
    py: Python<'py>,
    mut xa: FloatArray<'py>,
    axis: Option<usize>,
    f: impl Fn(Dtype, SharedPtr<u8>, &Lanes, SharedPtr<u8>, &Lanes) -> crate::Result<()> + Send + Sync,
) -> PyResult<Bound<'py, PyAny>> {
    let shape = xa.shape.clone();
    let out = xa.dtype.empty(py, &shape)?;
    let target = FloatArray::view(&out).expect("fresh array");
    let mut src_lanes = input_lanes(py, &mut xa, axis)?;
    let mut dst_lanes = target
        .lanes(axis)
        .expect("a C-contiguous array is one lane");
    if axis.is_some() {
        coalesce(&mut src_lanes, &mut dst_lanes);
    }
    let (src, dst, dtype) = (SharedPtr(xa.data), SharedPtr(target.data), xa.dtype);
    detach_interruptible(py, || f(dtype, src, &src_lanes, dst, &dst_lanes))?;
    Ok(out.into_any())
}

/// Sparsemax along an axis (Martins & Astudillo 2016): the Euclidean projection onto the
/// probability simplex, a sparse alternative to softmax.
///
/// Parameters
/// ----------
/// x : array_like
///     Scores; dtypes as for :func:`logitkit.softmax`.
/// axis : int or None, default -1
///     The axis along which the result sums to 1; ``None``: the whole array.
///
/// Returns
/// -------
/// ndarray
///     Probabilities, many exactly 0. Computed in float64 relative to each vector's maximum
///     (overflow-safe) and rounded once; ``-inf`` gives 0; a vector holding NaN or ``+inf``,
///     or only ``-inf``, becomes all NaN. In ``x``'s array type (torch, JAX or NumPy).
///
/// Examples
/// --------
/// >>> import logitkit._native as n
/// >>> n.sparsemax([1.0, 1.2, 0.1])
/// array([0.4, 0.6, 0. ])
#[pyfunction]
#[pyo3(signature = (x, axis=Some(Axis::LAST)), text_signature = "(x, axis=-1)")]
pub(crate) fn sparsemax<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    axis: Option<Axis>,
) -> PyResult<Bound<'py, PyAny>> {
    let (x, back) = adapt_input(py, x, "x")?;
    let xa = FloatArray::coerce(py, &x, "x")?;
    let axis = normalize_axis(py, axis, xa.shape.len())?;
    let r = map_fresh(py, xa, axis, |dtype, src, sl, dst, dl| {
        // SAFETY: src is a live array laid out as `sl`; dst a fresh array laid out as `dl`.
        dispatch!(dtype, T => unsafe {
            extras::sparsemax_lanes_raw::<T>(src.typed(), sl, dst.typed(), dl)
        })
    })?;
    apply_back(r, back)
}

/// The logistic sigmoid ``1 / (1 + exp(-x))``, elementwise and overflow-safe.
///
/// Parameters
/// ----------
/// x : array_like
///     Values; dtypes as for :func:`logitkit.softmax`.
///
/// Returns
/// -------
/// ndarray
///     A new array of ``x``'s shape, computed in float64 (within 2 ulp of the exact value) and
///     rounded once, so float32 and float16 results are correctly rounded but for rare ties.
///     ``exp`` only sees non-positive arguments: no overflow and no warning for any input. In
///     ``x``'s array type; Fortran-ordered when ``x`` is (as NumPy's ufuncs), else C-ordered.
///
/// Examples
/// --------
/// >>> import logitkit._native as n
/// >>> n.sigmoid([0.0, 1000.0, -1000.0])
/// array([0.5, 1. , 0. ])
#[pyfunction]
#[pyo3(text_signature = "(x)")]
pub(crate) fn sigmoid<'py>(py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let (x, back) = adapt_input(py, x, "x")?;
    let xa = FloatArray::coerce(py, &x, "x")?;
    let ndim = xa.shape.len();
    if xa.lanes(None).is_none() {
        if let Some((len, stride)) = fortran_run(&xa.shape, &xa.strides) {
            // Elementwise, so in memory order: a Fortran-ordered input gives a Fortran-ordered
            // result, as NumPy's ufuncs do, and both are one run.
            let out = xa.dtype.empty_in(py, &xa.shape, true)?;
            let target = FloatArray::view(&out).expect("fresh array");
            let (src, dst, dtype) = (SharedPtr(xa.data), SharedPtr(target.data), xa.dtype);
            let sl = Lanes {
                len,
                stride,
                outer: vec![(1, 0)],
            };
            detach_interruptible(py, || sigmoid_run(dtype, src, &sl, dst))?;
            return apply_back(out.into_any(), back);
        }
    }
    // Elementwise: the last axis as lanes, or the whole array when that is one even run.
    // (Not the densest axis: the output is C-order, so along another axis each lane would be
    // computed whole into a buffer and written strided, with no Ctrl-C check inside it.)
    let axis = if ndim == 0 || xa.lanes(None).is_some() {
        None
    } else {
        Some(ndim - 1)
    };
    let r = map_fresh(py, xa, axis, |dtype, src, sl, dst, dl| {
        if axis.is_none() && sl.count() == 1 {
            sigmoid_run(dtype, src, sl, dst)
        } else {
            // SAFETY: src is a live array laid out as `sl`; dst a fresh array laid out as `dl`.
            dispatch!(dtype, T => unsafe {
                extras::sigmoid_lanes_raw::<T>(src.typed(), sl, dst.typed(), dl)
            })
        }
    })?;
    apply_back(r, back)
}

/// Sigmoid of one evenly spaced run `sl` of `src` into the contiguous `dst` of its length,
/// cut into rows of 4096 that threads can share (and Ctrl-C can stop between).
fn sigmoid_run(
    dtype: Dtype,
    src: SharedPtr<u8>,
    sl: &Lanes,
    dst: SharedPtr<u8>,
) -> crate::Result<()> {
    const ROW: usize = 4096;
    let rows = sl.len / ROW;
    let full = rows * ROW;
    let rest = sl.len - full;
    let a = Lanes {
        len: ROW,
        stride: sl.stride,
        outer: vec![(rows, ROW as isize * sl.stride)],
    };
    // SAFETY: `src` is a live array holding the run `sl` and `dst` a fresh array of its
    // length: the first `full` elements as rows `a` and `Lanes::rows(rows, ROW)`, then the
    // last `rest`.
    dispatch!(dtype, T => unsafe {
        if rows > 0 {
            extras::sigmoid_lanes_raw::<T>(src.typed(), &a, dst.typed(), &Lanes::rows(rows, ROW))?;
        }
        if rest > 0 {
            let ta = Lanes { len: rest, stride: sl.stride, outer: vec![(1, 0)] };
            extras::sigmoid_lanes_raw::<T>(
                src.typed::<T>().offset(full as isize * sl.stride),
                &ta,
                dst.typed::<T>().add(full),
                &Lanes::rows(1, rest),
            )?;
        }
        Ok(())
    })
}

/// Input adapters (issue 6, contract S13): torch tensors, JAX arrays, DLPack producers and
/// bfloat16 go through `logitkit._coerce.adapt`; float16/32/64 ndarrays, lists and scalars never
/// do. Returns the input to compute on and, unless results stay NumPy, the `_coerce.Back` that
/// takes them to the input's array type (rounding to bfloat16 when the input was bfloat16).
/// `name`: the argument's name, for the errors.
pub(crate) fn adapt_input<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<(Bound<'py, PyAny>, Option<Bound<'py, PyAny>>)> {
    if let Ok(a) = x.cast::<PyUntypedArray>() {
        if FloatArray::view(a).is_some() {
            return Ok((x.clone(), None));
        }
        if let Some(adapted) = numpy_bf16(a)? {
            return Ok(adapted);
        }
    }
    static ADAPT: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    let f = ADAPT.import(py, "logitkit._coerce", "adapt")?;
    let r = f.call1((x, name))?.cast_into::<PyTuple>()?;
    let back = r.get_item(1)?;
    Ok((r.get_item(0)?, (!back.is_none()).then_some(back)))
}

/// What `adapt` makes of an ml_dtypes bfloat16 ndarray (its bits as `BFloat16Bits`, and
/// `Back("numpy", bfloat16=True, np_bf16=dtype)`), made here: the Python call, with its checks
/// for torch and JAX, was 2 of the 5.5 µs of a bfloat16 `sample` call of one short row. The
/// `Back` of the first bfloat16 dtype seen is kept (it holds no state of a call); another
/// dtype object of that name, or anything else, is left to `adapt`.
#[allow(clippy::type_complexity)]
fn numpy_bf16<'py>(
    a: &Bound<'py, PyUntypedArray>,
) -> PyResult<Option<(Bound<'py, PyAny>, Option<Bound<'py, PyAny>>)>> {
    let py = a.py();
    let dtype = a.dtype();
    if dtype.itemsize() != 2
        || !dtype
            .getattr("name")
            .is_ok_and(|n| n.eq("bfloat16").unwrap_or(false))
    {
        return Ok(None);
    }
    static BACK: pyo3::sync::PyOnceLock<(Py<PyAny>, Py<PyAny>)> = pyo3::sync::PyOnceLock::new();
    let (seen, back) = BACK.get_or_try_init(py, || -> PyResult<_> {
        let kwargs = [
            ("bfloat16", true.into_pyobject(py)?.to_owned().into_any()),
            ("np_bf16", dtype.clone().into_any()),
        ]
        .into_py_dict(py)?;
        let back = py
            .import("logitkit._coerce")?
            .getattr("Back")?
            .call(("numpy",), Some(&kwargs))?;
        Ok((dtype.clone().into_any().unbind(), back.unbind()))
    })?;
    if !dtype.is(seen.bind(py)) {
        return Ok(None);
    }
    let bits = a
        .call_method1("view", (numpy::dtype::<u16>(py),))?
        .call_method1("view", (bf16_bits_class(py)?,))?;
    Ok(Some((bits, Some(back.bind(py).clone()))))
}

/// `f(x, out)` on the adapted input, the result taken back to the input's array type. With
/// `out=` (an ndarray, or a CPU torch tensor for torch input) the native function writes into
/// it directly and `out` is returned; a bfloat16 result is computed in float32 first and
/// rounded once into `out`.
pub(crate) fn run_adapted<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    out: Option<&Bound<'py, PyAny>>,
    f: impl FnOnce(&Bound<'py, PyAny>, Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let (x, back) = adapt_input(py, x, "x")?;
    let Some(back) = back else {
        return f(&x, out);
    };
    let Some(o) = out else {
        return back.call1((f(&x, None)?,));
    };
    let coerce = py.import("logitkit._coerce")?;
    let target = coerce.getattr("out_target")?.call1((o, &back))?;
    if !target.is_none() {
        f(&x, Some(&target))?;
        return Ok(o.clone());
    }
    refuse_self_overlapping_out(o)?;
    let r = f(&x, None)?;
    coerce.getattr("copy_to_out")?.call1((o, r))
}

/// Contract R6 for an `out` that `copy_to_out` fills (bfloat16, as an ndarray or a torch
/// tensor): elements that overlap one another are refused here too. Anything else is left to
/// `copy_to_out`'s own checks.
fn refuse_self_overlapping_out(o: &Bound<'_, PyAny>) -> PyResult<()> {
    if let Ok(arr) = o.cast::<PyUntypedArray>() {
        return refuse_self_overlap(arr.shape(), arr.strides(), arr.dtype().itemsize());
    }
    let layout = || -> PyResult<(Vec<usize>, Vec<isize>, usize)> {
        let shape: Vec<usize> = o.getattr("shape")?.extract()?;
        let item: usize = o.call_method0("element_size")?.extract()?;
        let strides: Vec<isize> = o.call_method0("stride")?.extract()?;
        Ok((shape, strides, item))
    };
    if let Ok((shape, strides, item)) = layout() {
        let bytes: Vec<isize> = strides
            .iter()
            .map(|&s| s.saturating_mul(item as isize))
            .collect();
        refuse_self_overlap(&shape, &bytes, item)?;
    }
    Ok(())
}

fn apply_back<'py>(
    r: Bound<'py, PyAny>,
    back: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    match back {
        Some(back) => back.call1((r,)),
        None => Ok(r),
    }
}
