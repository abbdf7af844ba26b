//! `softmax`, `log_softmax` and `logsumexp` for NumPy arrays (contract S1-S10).

use pyo3::prelude::*;

use super::arrays::{
    detach_interruptible, dispatch, keepdims_arg, normalize_axis, parse_per_lane_f64, result_of,
    without, Axis, FloatArray, Output,
};
use crate::lanes::{coalesce, logsumexp_lanes_raw, map_lanes_raw};
use crate::op::Op;
use crate::shared::SharedPtr;

fn map_impl<'py>(
    py: Python<'py>,
    op: Op,
    x: &Bound<'py, PyAny>,
    axis: Option<Axis>,
    temperature: Option<&Bound<'py, PyAny>>,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut xa = FloatArray::coerce(py, x, "x")?;
    let axis = normalize_axis(py, axis, xa.shape.len())?;
    let outer_shape = axis.map(|k| without(&xa.shape, k)).unwrap_or_default();
    let temps = parse_per_lane_f64(py, "temperature", temperature, 1.0, &outer_shape)?;
    let shape = xa.shape.clone();
    let mut output = Output::prepare(py, out, &shape, xa.dtype)?;
    if !output.target.same_view(&xa) && output.target.may_overlap(&xa) {
        // Partial overlap: compute as if x had been copied first (contract S3).
        xa = xa.copy(py)?;
    }
    let mut src_lanes = match xa.lanes(axis) {
        Some(l) => l,
        None => {
            xa = xa.copy(py)?;
            xa.lanes(axis).expect("a C-contiguous array is one lane")
        }
    };
    let mut dst_lanes = match output.target.lanes(axis) {
        Some(l) => l,
        None => {
            let user = output
                .copy_to
                .take()
                .unwrap_or_else(|| output.target.arr.clone());
            let tmp = xa.dtype.empty(py, &shape)?;
            output = Output {
                target: FloatArray::view(&tmp).expect("fresh array"),
                copy_to: Some(user),
            };
            output
                .target
                .lanes(axis)
                .expect("a C-contiguous array is one lane")
        }
    };
    if axis.is_some() {
        coalesce(&mut src_lanes, &mut dst_lanes);
    }
    let (src, dst, dtype) = (SharedPtr(xa.data), SharedPtr(output.target.data), xa.dtype);
    let t = temps.as_core();
    detach_interruptible(py, || {
        // SAFETY: src and dst are live arrays whose lanes are described by src_lanes and
        // dst_lanes; dst is a fresh array, a non-self-overlapping `out` disjoint from x, or x
        // itself with the same layout (in place).
        unsafe {
            dispatch!(dtype, T => map_lanes_raw::<T>(
                op,
                src.typed(),
                &src_lanes,
                dst.typed(),
                &dst_lanes,
                t,
            ))
        }
    })?;
    output.finish(py)
}

/// Softmax along an axis: probabilities that sum to 1.
///
/// Parameters
/// ----------
/// x : array_like
///     Logits. float16, float32 and float64 keep their dtype (float16 is computed in float32);
///     integers and bool give float64; complex, object and string input raise TypeError.
/// axis : int or None, default -1
///     The axis along which the probabilities sum to 1; ``None`` treats the whole array as one
///     vector. Out of range raises ``numpy.exceptions.AxisError``.
/// temperature : float or array_like, default 1.0
///     ``softmax(x, temperature=T) == softmax(x / T)``. A positive finite float, or an array
///     broadcastable to ``x``'s shape without ``axis`` (one temperature per vector).
/// out : ndarray or torch.Tensor, optional
///     Where to write the result: exactly ``x``'s shape and the result dtype, writeable. May be
///     ``x`` itself (in place), or any view of other memory, strided or not. An ``out`` that
///     shares some memory with ``x`` without being ``x`` is written as if ``x`` had been
///     copied first. An ``out`` whose own elements overlap one another (a zero stride, or an
///     ``as_strided`` view whose rows share elements) raises ValueError: what it would hold
///     depends on the order of the writes. A CPU torch tensor (not requiring grad) is
///     accepted only when ``x`` is a torch tensor; otherwise ``out`` must be an ndarray (also
///     for torch input).
///
/// Returns
/// -------
/// ndarray
///     The probabilities, a new C-contiguous array (or ``out``), in ``x``'s array type: a CPU
///     torch tensor for a torch tensor, a JAX array for a JAX array, else NumPy. bfloat16 input
///     gives bfloat16, computed in float32 and rounded once.
///
/// Notes
/// -----
/// Overflow-safe for any finite input and temperature. ``-inf`` entries get probability 0; a
/// vector holding NaN or ``+inf``, or only ``-inf``, becomes all NaN. The result is bitwise the
/// same whatever the number of threads.
///
/// Examples
/// --------
/// >>> import logitkit
/// >>> logitkit.softmax([1.0, 2.0, 3.0]).round(4)
/// array([0.09  , 0.2447, 0.6652])
#[pyfunction]
#[pyo3(signature = (x, axis=Some(Axis::LAST), *, temperature=None, out=None), text_signature = "(x, axis=-1, *, temperature=1.0, out=None)")]
pub(crate) fn softmax<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    axis: Option<Axis>,
    temperature: Option<&Bound<'py, PyAny>>,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    super::extras::run_adapted(py, x, out, |x, out| {
        map_impl(py, Op::Softmax, x, axis, temperature, out)
    })
}

/// Log-softmax along an axis: ``log(softmax(x))`` computed without rounding through
/// probabilities.
///
/// Parameters
/// ----------
/// x : array_like
///     Logits; dtypes as for :func:`softmax`.
/// axis : int or None, default -1
///     The axis to normalise along; ``None`` treats the whole array as one vector.
/// temperature : float or array_like, default 1.0
///     ``log_softmax(x, temperature=T) == log_softmax(x / T)``; one value, or one per vector.
/// out : ndarray or torch.Tensor, optional
///     Where to write the result (may be ``x`` itself); as for :func:`softmax`.
///
/// Returns
/// -------
/// ndarray
///     Log-probabilities; ``-inf`` only where the probability underflows to 0. In ``x``'s array
///     type, as for :func:`softmax`.
///
/// Examples
/// --------
/// >>> import logitkit
/// >>> logitkit.log_softmax([0.0, 0.0]).round(4)
/// array([-0.6931, -0.6931])
#[pyfunction]
#[pyo3(signature = (x, axis=Some(Axis::LAST), *, temperature=None, out=None), text_signature = "(x, axis=-1, *, temperature=1.0, out=None)")]
pub(crate) fn log_softmax<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    axis: Option<Axis>,
    temperature: Option<&Bound<'py, PyAny>>,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    super::extras::run_adapted(py, x, out, |x, out| {
        map_impl(py, Op::LogSoftmax, x, axis, temperature, out)
    })
}

/// Log of the sum of exponentials along an axis, overflow-safe.
///
/// Parameters
/// ----------
/// x : array_like
///     Values; dtypes as for :func:`softmax`.
/// axis : int or None, default -1
///     The axis to reduce; ``None`` reduces the whole array.
/// keepdims : bool, default False
///     Keep the reduced axis (axes, for ``None``) with length 1.
///
/// Returns
/// -------
/// ndarray or scalar
///     ``x``'s shape without ``axis``; a NumPy scalar when that shape is ``()`` (a 0-d tensor
///     or array for torch or JAX input: results are in ``x``'s array type, as for
///     :func:`softmax`). A zero-length
///     axis gives ``-inf``; all ``-inf`` gives ``-inf``; any NaN gives NaN; otherwise any
///     ``+inf`` gives ``+inf``.
///
/// Examples
/// --------
/// >>> import logitkit
/// >>> float(logitkit.logsumexp([1000.0, 1000.0]))
/// 1000.6931471805599
#[pyfunction]
#[pyo3(signature = (x, axis=Some(Axis::LAST), *, keepdims=false), text_signature = "(x, axis=-1, *, keepdims=False)")]
pub(crate) fn logsumexp<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    axis: Option<Axis>,
    #[pyo3(from_py_with = keepdims_arg)] keepdims: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let (x, back) = super::extras::adapt_input(py, x, "x")?;
    if let Some(back) = back {
        // torch/JAX input or bfloat16: computed on the NumPy view (bfloat16 in float32), the
        // result (0-d included) taken back to the input's array type, rounded once for bfloat16.
        return back.call1((logsumexp(py, &x, axis, keepdims)?,));
    }
    let mut xa = FloatArray::coerce(py, &x, "x")?;
    let ndim = xa.shape.len();
    let axis = normalize_axis(py, axis, ndim)?;
    let lanes = match xa.lanes(axis) {
        Some(l) => l,
        None => {
            xa = xa.copy(py)?;
            xa.lanes(axis).expect("a C-contiguous array is one lane")
        }
    };
    let shape: Vec<usize> = match (axis, keepdims) {
        (Some(k), false) => without(&xa.shape, k),
        (Some(k), true) => xa
            .shape
            .iter()
            .enumerate()
            .map(|(d, &n)| if d == k { 1 } else { n })
            .collect(),
        (None, false) => vec![],
        (None, true) => vec![1; ndim],
    };
    let result = xa.dtype.empty(py, &shape)?;
    let count = lanes.count();
    let (src, dst, dtype) = (
        SharedPtr(xa.data),
        SharedPtr(FloatArray::view(&result).expect("fresh array").data),
        xa.dtype,
    );
    detach_interruptible(py, || {
        // SAFETY: src is a live array laid out as `lanes`; dst is a fresh C-contiguous array of
        // `count` elements that nothing else sees yet.
        unsafe {
            dispatch!(dtype, T => logsumexp_lanes_raw::<T>(
                src.typed(),
                &lanes,
                std::slice::from_raw_parts_mut(dst.typed(), count),
            ))
        }
    })?;
    result_of(result.into_any(), dtype)
}
