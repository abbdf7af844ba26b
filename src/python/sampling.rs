//! `sample`, `Sampler`, `filter_logits` and `token_logprobs` (contract P1-P19): arguments
//! read into the core's parameter types, then one call into the core with the GIL released.

use std::sync::Mutex;

use numpy::{PyArray, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyComplex, PyDict, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple, PyType,
};

use super::arrays::{
    abbreviate, as_ndarray, bfloat16_values, detach_interruptible, dispatch, exports_array,
    is_bool, repr, result_of, shape_str, single_lane, to_py_err, FloatArray,
};
use super::extras::adapt_input;
// `verify_draft` reads its arguments with this module's helpers.
#[path = "verify.rs"]
pub(super) mod verify;

use crate::sampling::{
    Draws, Histories, LogprobsMode, PerRow, RowParam, Sampler as CoreSampler, SamplingParams, Seed,
    TokenBitmask,
};
use crate::shared::SharedPtr;
use crate::Lanes;

/// The logits as a float array of at least one dimension and `V >= 1` (P1, P8), read where
/// they are when the caller can (`strided_rows`), else C-contiguous. Returns the array, the
/// rows' shape (`logits.shape[:-1]`), `V` and where the rows are.
fn logits_array<'py>(
    py: Python<'py>,
    logits: &Bound<'py, PyAny>,
    strided_rows: bool,
) -> PyResult<(FloatArray<'py>, Vec<usize>, usize, RowLayout)> {
    let mut xa = FloatArray::coerce(py, logits, "logits")?;
    let Some((&vocab, rows_shape)) = xa.shape.split_last() else {
        return Err(PyValueError::new_err(
            "logits must have at least one dimension (the vocabulary), got a 0-d array",
        ));
    };
    let rows_shape = rows_shape.to_vec();
    if vocab == 0 {
        return Err(PyValueError::new_err(format!(
            "logits must have a non-empty last axis (V >= 1), got shape {}",
            shape_str(&xa.shape)
        )));
    }
    // Element strides of a C-contiguous array (a stride on a length-1 axis does not matter).
    let mut want = 1isize;
    let mut contiguous = true;
    for (&n, &s) in xa.shape.iter().zip(&xa.strides).rev() {
        if n > 1 && s != want {
            contiguous = false;
        }
        want *= n as isize;
    }
    if contiguous {
        return Ok((xa, rows_shape, vocab, RowLayout::Rows(vocab)));
    }
    // Contiguous rows evenly spaced at a non-negative stride (`logits[:, -1, :]` of a
    // (batch, positions, vocabulary) array): read where they are, when the caller can.
    let nd = xa.shape.len();
    let inner = vocab == 1 || xa.strides[nd - 1] == 1;
    if strided_rows && inner {
        if let Some((_, stride)) = single_lane(&xa.shape[..nd - 1], &xa.strides[..nd - 1]) {
            if stride >= 0 {
                return Ok((xa, rows_shape, vocab, RowLayout::Rows(stride as usize)));
            }
        }
    }
    // Any other layout (F order, negative strides, a transposed batch): each row is copied as
    // it is read, one row per thread at a time (R1), not the whole array.
    if strided_rows && xa.size() > 0 {
        let lanes = Lanes::from_strided(&xa.shape, &xa.strides, nd - 1);
        // From the lowest element the array reads to the highest, in elements.
        let (mut base, mut span) = (0usize, 1usize);
        for (&n, &s) in xa.shape.iter().zip(&xa.strides) {
            let reach = (n - 1) * s.unsigned_abs();
            if s < 0 {
                base += reach;
            }
            span += reach;
        }
        return Ok((
            xa,
            rows_shape,
            vocab,
            RowLayout::Scattered { base, span, lanes },
        ));
    }
    xa = xa.copy(py)?;
    Ok((xa, rows_shape, vocab, RowLayout::Rows(vocab)))
}

/// Where the rows of [`Logits`] are, in elements.
enum RowLayout {
    /// Contiguous rows, this far apart.
    Rows(usize),
    /// Rows whose elements are not adjacent ([`crate::sampling::Scattered`]): `span` elements
    /// from the lowest read to the highest; element 0 of row 0 is `base` of them from the
    /// lowest.
    Scattered {
        base: usize,
        span: usize,
        lanes: Lanes,
    },
}

/// Whether `v` is a NumPy scalar (`numpy.generic`: `np.float32(1)`, `np.complex128(1)`).
fn is_numpy_scalar(v: &Bound<'_, PyAny>) -> PyResult<bool> {
    static GENERIC: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    v.is_instance(GENERIC.import(v.py(), "numpy", "generic")?)
}

fn is_array_like(v: &Bound<'_, PyAny>) -> bool {
    v.cast::<PyUntypedArray>().is_ok()
        || v.cast::<PyList>().is_ok()
        || v.cast::<PyTuple>().is_ok()
        || is_foreign_sequence(v)
}

/// Another library's array of at least one dimension (a torch tensor, a JAX array).
fn is_foreign_sequence(v: &Bound<'_, PyAny>) -> bool {
    exports_array(v)
        && v.getattr("ndim")
            .and_then(|n| n.extract::<usize>())
            .is_ok_and(|n| n >= 1)
}

/// `v` as a NumPy array when it is another library's array, else `v`: the token id
/// parameters then read a torch tensor (a `Sampler`'s own output, say) as they read NumPy's.
fn numpy_if_foreign<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<Bound<'py, PyAny>> {
    if is_foreign_sequence(v) {
        return Ok(as_ndarray(py, v, name)?.into_any());
    }
    Ok(v.clone())
}

fn check_shape(name: &str, arr: &Bound<'_, PyUntypedArray>, rows_shape: &[usize]) -> PyResult<()> {
    if arr.shape() != rows_shape {
        return Err(PyValueError::new_err(format!(
            "{name} has shape {}, expected a scalar or shape {} (one value per row of logits)",
            shape_str(arr.shape()),
            shape_str(rows_shape)
        )));
    }
    Ok(())
}

/// A float parameter: a scalar, or an array of shape `rows_shape` (P2). `None` (not given):
/// the default.
fn float_param(
    py: Python<'_>,
    name: &'static str,
    v: Option<&Bound<'_, PyAny>>,
    default: f64,
    rows_shape: Option<&[usize]>,
) -> PyResult<RowParam<f64>> {
    let Some(v) = v else {
        return Ok(RowParam::All(default));
    };
    let type_err = || {
        PyTypeError::new_err(format!(
            "{name} must be a float or an array of floats, got {}",
            repr(v)
        ))
    };
    // The common case first: a Python float.
    if let Ok(f) = v.cast::<PyFloat>() {
        return Ok(RowParam::All(f.value()));
    }
    // Contract R7: a bool is of the wrong type, however Python lets it pass for a number.
    if is_bool(v) {
        return Err(type_err());
    }
    // NumPy scalars go the arrays' way, which knows their dtype: a complex one has a
    // `__float__` that drops the imaginary part with only a warning (R7).
    if !is_array_like(v) && !exports_array(v) && !is_numpy_scalar(v)? {
        if v.cast::<PyInt>().is_ok() {
            // An integer too large for a float is out of range, not of the wrong type (R7).
            return v.extract::<f64>().map(RowParam::All).map_err(|_| {
                PyValueError::new_err(format!(
                    "{name} must be a finite float, got {} (too large for a float)",
                    repr(v)
                ))
            });
        }
        if v.hasattr("__float__")? {
            return v
                .extract::<f64>()
                .map(RowParam::All)
                .map_err(|_| type_err());
        }
        return Err(type_err());
    }
    let arr = match as_ndarray(py, v, name) {
        Ok(arr) => arr,
        // Its own message for a value that is no array of floats; other errors as they are.
        Err(e) if e.is_instance_of::<PyTypeError>(py) => return Err(type_err()),
        Err(e) => return Err(e),
    };
    let arr = match bfloat16_values(py, &arr)? {
        Some(values) => values,
        None => arr,
    };
    let kind: char = arr.dtype().kind().into();
    if !"fiu".contains(kind) {
        return Err(type_err());
    }
    let arr = arr
        .call_method1("astype", ("float64",))?
        .cast_into::<PyUntypedArray>()?;
    if arr.ndim() == 0 {
        return Ok(RowParam::All(arr.call_method0("item")?.extract::<f64>()?));
    }
    if let Some(s) = rows_shape {
        check_shape(name, &arr, s)?;
    }
    contiguous_values::<f64, _>(&arr, "float64", "per-row values", |v| v).map(RowParam::PerRow)
}

/// The values of the array `arr` in C order as `T` (`numpy.ascontiguousarray(arr, dtype)`,
/// `dtype` naming `T`), each through `f`, in a vector reserved fallibly (R1).
fn contiguous_values<T: numpy::Element + Copy, U>(
    arr: &Bound<'_, PyAny>,
    dtype: &str,
    what: &'static str,
    f: impl Fn(T) -> U,
) -> PyResult<Vec<U>> {
    let a = arr
        .py()
        .import("numpy")?
        .call_method1("ascontiguousarray", (arr, dtype))?
        .cast_into::<numpy::PyArrayDyn<T>>()?;
    let ro = a.readonly();
    let s = ro.as_slice()?;
    let mut values = Vec::new();
    crate::scratch::reserve(&mut values, s.len(), what).map_err(to_py_err)?;
    for part in s.chunks(SIGNAL_CHECK_EVERY) {
        arr.py().check_signals()?;
        values.extend(part.iter().map(|&v| f(v)));
    }
    Ok(values)
}

/// Elements a set-up loop holding the GIL handles between two checks for Ctrl-C (R8: copying
/// and checking 60 million token ids takes most of a second, longer on a loaded machine).
const SIGNAL_CHECK_EVERY: usize = 1 << 20;

/// An integer scalar (Python int or NumPy integer, not bool), clamped to `i64`; `Err(())` when
/// `v` is not an integer.
fn int_scalar(v: &Bound<'_, PyAny>) -> Result<i128, ()> {
    if v.cast::<PyFloat>().is_ok() || is_bool(v) {
        return Err(());
    }
    // The common case, a Python int that fits: no `__index__` call.
    if let Ok(i) = v.cast::<PyInt>() {
        if let Ok(x) = i.extract::<i64>() {
            return Ok(x.into());
        }
    }
    let i = v.call_method0("__index__").map_err(|_| ())?;
    i.extract::<i128>().or_else(|_| {
        // Beyond i128: only the sign matters here.
        let negative = i.lt(0).map_err(|_| ())?;
        Ok(if negative { i128::MIN } else { i128::MAX })
    })
}

/// The values of an integer array parameter (kinds `i` and `u`), as i128.
fn int_array(
    name: &'static str,
    arr: &Bound<'_, PyUntypedArray>,
    what: &'static str,
    v: &Bound<'_, PyAny>,
) -> PyResult<Vec<i128>> {
    let py = arr.py();
    let kind: char = arr.dtype().kind().into();
    if kind != 'i' && kind != 'u' {
        return Err(not_an_integer(
            py,
            format!(
                "{name} must be {what}, got {} (dtype {})",
                repr(v),
                arr.dtype()
            ),
        ));
    }
    int_values(arr)
}

/// The error for a count, seed or id parameter that is not an integer (a float, a string
/// array): `_coerce.NotAnIntegerError`, a `TypeError` (contract R7) that is also a `ValueError`
/// (what P8 asks of a `top_k` that is not an integer).
fn not_an_integer(py: Python<'_>, msg: String) -> PyErr {
    static CLS: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    coerce_error(py, &CLS, "NotAnIntegerError", msg)
}

/// The error for a bias that is not a real number: `_coerce.NotARealNumberError`, a
/// `TypeError` (R7) that is also a `ValueError` (P12's bad bias).
fn not_a_real_number(py: Python<'_>, msg: String) -> PyErr {
    static CLS: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    coerce_error(py, &CLS, "NotARealNumberError", msg)
}

/// An error of the exception class `name` of `logitkit._coerce`.
fn coerce_error(
    py: Python<'_>,
    cls: &pyo3::sync::PyOnceLock<Py<PyAny>>,
    name: &str,
    msg: String,
) -> PyErr {
    let cls = cls
        .import(py, "logitkit._coerce", name)
        .and_then(|c| Ok(c.cast::<PyType>()?.clone()));
    match cls {
        Ok(cls) => PyErr::from_type(cls, msg),
        Err(e) => e,
    }
}

/// An integer count (`top_k`, `min_tokens`): an integer `>= 0`, or an integer array of shape
/// `rows_shape` (P2, P8).
fn count_param(
    py: Python<'_>,
    name: &'static str,
    v: Option<&Bound<'_, PyAny>>,
    rows_shape: Option<&[usize]>,
) -> PyResult<RowParam<i64>> {
    int_param(py, name, v, 0, rows_shape)
}

/// An integer parameter (`default` when not given): an integer, or an integer array of shape
/// `rows_shape` (P2, P8); its range is checked by the core.
fn int_param(
    py: Python<'_>,
    name: &'static str,
    v: Option<&Bound<'_, PyAny>>,
    default: i64,
    rows_shape: Option<&[usize]>,
) -> PyResult<RowParam<i64>> {
    let what = if default < 0 {
        "an integer"
    } else {
        "an integer >= 0"
    };
    let Some(v) = v else {
        return Ok(RowParam::All(default));
    };
    let bad = |shown: String| not_an_integer(py, format!("{name} must be {what}, got {shown}"));
    let clamp = |k: i128| -> i64 {
        // Any k >= V disables top-k; negative values are kept (and refused by validation).
        k.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    };
    // A value below i64 is refused here, shown as given (the core would see it clamped).
    let scalar = |item: &Bound<'_, PyAny>| match int_scalar(item) {
        Err(()) => Err(bad(repr(v))),
        Ok(k) if k < i64::MIN as i128 => Err(PyValueError::new_err(format!(
            "{name} must be {what}, got {}",
            abbreviate(&shown(item))
        ))),
        Ok(k) => Ok(RowParam::All(clamp(k))),
    };
    if !is_array_like(v) && !exports_array(v) {
        return scalar(v);
    }
    let arr = as_ndarray(py, v, name)?;
    if arr.ndim() == 0 {
        return scalar(&arr.call_method0("item")?);
    }
    let values = int_array(name, &arr, what, v)?;
    if let Some(s) = rows_shape {
        check_shape(name, &arr, s)?;
    }
    let n = values.len();
    crate::scratch::collected(n, values.into_iter().map(clamp), "per-row values")
        .map(RowParam::PerRow)
        .map_err(to_py_err)
}

/// `seed`: `None` (OS entropy), an integer in `[0, 2**64)`, or (when `per_row` is allowed) an
/// integer array of shape `rows_shape` (P5).
fn seed_param(
    py: Python<'_>,
    v: Option<&Bound<'_, PyAny>>,
    rows_shape: Option<&[usize]>,
) -> PyResult<Seed> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(Seed::Entropy);
    };
    let what = if rows_shape.is_some() {
        "None, an integer in [0, 2**64) or an array of them (one per row)"
    } else {
        "None or an integer in [0, 2**64)"
    };
    let msg = || format!("seed must be {what}, got {}", repr(v));
    // An integer outside [0, 2**64) is a ValueError, anything else a TypeError (R7).
    let bad = || PyValueError::new_err(msg());
    let one = |s: i128| u64::try_from(s).map_err(|_| bad());
    if !is_array_like(v) && !exports_array(v) {
        return int_scalar(v)
            .map_err(|_| not_an_integer(py, msg()))
            .and_then(one)
            .map(Seed::Fixed);
    }
    if let (true, Some([n])) = (is_array_like_list(v), rows_shape) {
        // A flat list of Python ints, read one by one: NumPy reads ints of 2**63 and more
        // mixed with smaller ones as float64.
        let items: Vec<Bound<'_, PyAny>> = v.try_iter()?.collect::<PyResult<_>>()?;
        if items
            .iter()
            .all(|i| i.cast::<PyInt>().is_ok() && !is_bool(i))
        {
            if items.len() != *n {
                return Err(PyValueError::new_err(format!(
                    "seed has shape ({},), expected a scalar or shape ({n},) (one value per row of logits)",
                    items.len()
                )));
            }
            let mut seeds = Vec::new();
            crate::scratch::reserve(&mut seeds, items.len(), "per-row seeds").map_err(to_py_err)?;
            for item in &items {
                seeds.push(int_scalar(item).map_err(|_| bad()).and_then(one)?);
            }
            return Ok(Seed::PerRow(seeds));
        }
    }
    let arr = as_ndarray(py, v, "seed")?;
    if arr.ndim() == 0 {
        let item = arr.call_method0("item")?;
        return int_scalar(&item)
            .map_err(|_| not_an_integer(py, msg()))
            .and_then(one)
            .map(Seed::Fixed);
    }
    let Some(s) = rows_shape else {
        return Err(not_an_integer(py, msg()));
    };
    let values = int_array("seed", &arr, what, v)?;
    check_shape("seed", &arr, s)?;
    let mut seeds = Vec::new();
    crate::scratch::reserve(&mut seeds, values.len(), "per-row seeds").map_err(to_py_err)?;
    for v in values {
        seeds.push(one(v)?);
    }
    Ok(Seed::PerRow(seeds))
}

/// An integer as `str` shows it (`-5`, where `repr` of a NumPy scalar gives `np.int64(-5)`).
fn shown(v: &Bound<'_, PyAny>) -> String {
    v.str().map_or_else(|_| repr(v), |s| s.to_string())
}

/// Whether `arr` holds uint64 values, in any byte order (a big-endian one is named `>u8`, not
/// `uint64`): the integers an int64 conversion would wrap.
fn is_uint64(arr: &Bound<'_, PyUntypedArray>) -> bool {
    let dtype = arr.dtype();
    let kind: char = dtype.kind().into();
    kind == 'u' && dtype.itemsize() == 8
}

/// The values of an integer ndarray, C order (one copy, no Python objects; uint64 values
/// beyond int64 kept exact).
fn int_values(arr: &Bound<'_, PyUntypedArray>) -> PyResult<Vec<i128>> {
    if is_uint64(arr) {
        return contiguous_values::<u64, _>(arr, "uint64", "integers", i128::from);
    }
    contiguous_values::<i64, _>(arr, "int64", "integers", i128::from)
}

/// A sequence of token ids (a list, tuple or 1-D integer array); negative ids are refused
/// naming `name` and `row` (when given), padding `-1` ends the sequence when `padded`.
fn id_list(
    py: Python<'_>,
    name: &'static str,
    v: &Bound<'_, PyAny>,
    row: Option<usize>,
    padded: bool,
) -> PyResult<Vec<u32>> {
    let v = &numpy_if_foreign(py, v, name)?;
    // The common case, a 1-D int64 array, read in place: the numpy calls of the general path
    // cost a few microseconds per sequence, which a decoding loop pays at every step.
    if let Ok(a) = v.cast::<numpy::PyArray1<i64>>() {
        if let Ok(ro) = a.try_readonly() {
            if let Ok(s) = ro.as_slice() {
                return ids_from(name, s.iter().map(|&v| i128::from(v)), row, padded);
            }
        }
    }
    let at = || row.map_or(String::new(), |r| format!(" in row {r}"));
    let values: Vec<i128> = if v.cast::<PyUntypedArray>().is_ok() || !is_array_like(v) {
        let arr = as_ndarray(py, v, name)?;
        let kind: char = arr.dtype().kind().into();
        if !"iu".contains(kind) || arr.ndim() != 1 {
            let msg = format!(
                "{name} must hold 1-D sequences of integer token ids{}, got {}",
                at(),
                repr(v)
            );
            return Err(if "iu".contains(kind) {
                PyValueError::new_err(msg)
            } else {
                not_an_integer(py, msg)
            });
        }
        int_values(&arr)?
    } else {
        let mut out = Vec::new();
        for item in v.try_iter()? {
            let item = item?;
            let id = int_scalar(&item).map_err(|_| {
                not_an_integer(
                    py,
                    format!(
                        "{name} must hold integer token ids{}, got {}",
                        at(),
                        repr(&item)
                    ),
                )
            })?;
            if id == i128::MAX || id == i128::MIN {
                // Beyond i128 (saturated): shown as given.
                return Err(PyValueError::new_err(format!(
                    "{name} must hold token ids in [0, V){}, got token id {}{}",
                    if padded {
                        " (padded on the right with -1)"
                    } else {
                        ""
                    },
                    abbreviate(&shown(&item)),
                    at()
                )));
            }
            crate::scratch::push(&mut out, id, "token ids").map_err(to_py_err)?;
        }
        out
    };
    ids_from(name, values, row, padded)
}

/// Token ids from integers: negative ids refused (but `-1` padding at the end when `padded`).
fn ids_from(
    name: &'static str,
    values: impl IntoIterator<Item = i128>,
    row: Option<usize>,
    padded: bool,
) -> PyResult<Vec<u32>> {
    let at = || row.map_or(String::new(), |r| format!(" in row {r}"));
    let mut ids = Vec::new();
    let mut ended = false;
    for id in values {
        if padded && id == -1 {
            ended = true;
            continue;
        }
        if id < 0 || id > u32::MAX as i128 || ended {
            let what = if ended {
                format!("token id {id} after -1 padding")
            } else {
                format!("token id {id}")
            };
            return Err(PyValueError::new_err(format!(
                "{name} must hold token ids in [0, V){}, got {what}{}",
                if padded {
                    " (padded on the right with -1)"
                } else {
                    ""
                },
                at()
            )));
        }
        crate::scratch::push(&mut ids, id as u32, "token ids").map_err(to_py_err)?;
    }
    Ok(ids)
}

/// Whether `v` is a sequence whose items are themselves sequences (or None): per-row data.
fn is_nested(v: &Bound<'_, PyAny>) -> PyResult<bool> {
    if let Ok(a) = v.cast::<PyUntypedArray>() {
        return Ok(a.ndim() >= 2);
    }
    if !is_array_like(v) || v.len()? == 0 {
        return Ok(false);
    }
    let first = v.get_item(0)?;
    Ok(first.is_none() || is_array_like(&first) || first.cast::<PyDict>().is_ok())
}

/// The items of a per-row sequence (rows of a 2-D array, or a list's items).
fn row_items<'py>(
    py: Python<'py>,
    v: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if v.cast::<PyUntypedArray>().is_ok() && !is_array_like_list(v) {
        let arr = as_ndarray(py, v, name)?;
        let kind: char = arr.dtype().kind().into();
        if !"iu".contains(kind) {
            return Ok(vec![v.clone()]);
        }
    }
    v.try_iter()?.collect()
}

fn is_array_like_list(v: &Bound<'_, PyAny>) -> bool {
    v.cast::<PyList>().is_ok() || v.cast::<PyTuple>().is_ok()
}

/// Token histories (P10): `rows` sequences (a sequence of sequences, or an integer array
/// `(R, L)` padded with -1), or for 1-D logits (`rows_shape` empty) one sequence.
fn histories_param(
    py: Python<'_>,
    name: &'static str,
    v: Option<&Bound<'_, PyAny>>,
    rows_shape: &[usize],
) -> PyResult<Option<Vec<Vec<u32>>>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    let v = &numpy_if_foreign(py, v, name)?;
    let rows: usize = rows_shape.iter().product();
    if let Ok(a) = v.cast::<PyUntypedArray>() {
        let kind: char = a.dtype().kind().into();
        if !"iu".contains(kind) {
            return Err(not_an_integer(
                py,
                format!(
                    "{name} must be integer token ids, got an array of dtype {}",
                    a.dtype()
                ),
            ));
        }
    }
    let zero_d = v.getattr("ndim").and_then(|n| n.extract::<usize>()).ok() == Some(0);
    if zero_d || (v.try_iter().is_err() && !exports_array(v)) {
        // A scalar (`prompt_tokens=5`, a 0-d array or tensor): not a sequence of ids (R7).
        return Err(PyTypeError::new_err(format!(
            "{name} must be a sequence of token ids (one per row of logits for a batch), got {}",
            abbreviate(&repr(v))
        )));
    }
    if rows_shape.is_empty() && !is_nested(v)? {
        return Ok(Some(vec![id_list(py, name, v, None, true)?]));
    }
    if let Ok(a) = v.cast::<PyUntypedArray>() {
        if a.ndim() == 2 {
            let (r, width) = (a.shape()[0], a.shape()[1]);
            if r != rows {
                return Err(PyValueError::new_err(format!(
                    "{name} must hold one sequence per row of logits ({rows}), got {r}"
                )));
            }
            let ids_of = |values: &[i64]| -> PyResult<Option<Vec<Vec<u32>>>> {
                (0..r)
                    .map(|i| {
                        let row = &values[i * width..(i + 1) * width];
                        if row.iter().all(|&v| (0..=u32::MAX as i64).contains(&v)) {
                            Ok(row.iter().map(|&v| v as u32).collect())
                        } else {
                            ids_from(name, row.iter().map(|&v| v as i128), Some(i), true)
                        }
                    })
                    .collect::<PyResult<_>>()
                    .map(Some)
            };
            // A C-contiguous int64 array, read in place (no numpy call; `as_slice` would also
            // give a Fortran-order array's memory, column by column).
            if let Some(a64) = v
                .cast::<numpy::PyArray2<i64>>()
                .ok()
                .filter(|a| a.is_c_contiguous())
            {
                if let Ok(ro) = a64.try_readonly() {
                    if let Ok(values) = ro.as_slice() {
                        return ids_of(values);
                    }
                }
            }
            if !is_uint64(a) {
                // The common case, read without converting each id twice.
                let a64 = py
                    .import("numpy")?
                    .call_method1("ascontiguousarray", (a, "int64"))?
                    .cast_into::<numpy::PyArrayDyn<i64>>()?;
                let ro = a64.readonly();
                return ids_of(ro.as_slice()?);
            }
            let values = int_values(a)?;
            return (0..r)
                .map(|i| {
                    let row = values[i * width..(i + 1) * width].iter().copied();
                    ids_from(name, row, Some(i), true)
                })
                .collect::<PyResult<_>>()
                .map(Some);
        }
    }
    let items = row_items(py, v, name)?;
    if items.len() != rows {
        return Err(PyValueError::new_err(format!(
            "{name} must hold one sequence per row of logits ({rows}), got {}",
            items.len()
        )));
    }
    items
        .iter()
        .enumerate()
        .map(|(r, item)| id_list(py, name, item, Some(r), true))
        .collect::<PyResult<_>>()
        .map(Some)
}

/// A call's `prompt_tokens` and `output_tokens`, read (P10).
struct CallHistories {
    prompt: Option<Vec<Vec<u32>>>,
    output: Option<Vec<Vec<u32>>>,
}

impl CallHistories {
    fn read(
        py: Python<'_>,
        prompt: Option<&Bound<'_, PyAny>>,
        output: Option<&Bound<'_, PyAny>>,
        rows_shape: &[usize],
    ) -> PyResult<Self> {
        Ok(CallHistories {
            prompt: histories_param(py, "prompt_tokens", prompt, rows_shape)?,
            output: histories_param(py, "output_tokens", output, rows_shape)?,
        })
    }

    fn view(&self) -> Histories<'_> {
        let mut h = Histories::new();
        if let Some(p) = &self.prompt {
            h = h.prompt_tokens(p);
        }
        if let Some(o) = &self.output {
            h = h.output_tokens(o);
        }
        h
    }
}

/// `allowed_token_ids` (P11): one sequence for every row, or one per row (`None` for a row
/// without restriction).
fn allowed_param(
    py: Python<'_>,
    v: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<PerRow<Vec<u32>>>> {
    const NAME: &str = "allowed_token_ids";
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    if !is_nested(v)? {
        return Ok(Some(PerRow::All(id_list(py, NAME, v, None, false)?)));
    }
    let rows = row_items(py, v, NAME)?
        .iter()
        .enumerate()
        .map(|(r, item)| {
            if item.is_none() {
                Ok(None)
            } else {
                id_list(py, NAME, item, Some(r), false).map(Some)
            }
        })
        .collect::<PyResult<_>>()?;
    Ok(Some(PerRow::Rows(rows)))
}

/// `token_bitmask` (P11): an int32 or uint32 array `(R, W)`, or `(W,)` for every row.
fn bitmask_param(
    py: Python<'_>,
    v: Option<&Bound<'_, PyAny>>,
    rows: Option<usize>,
) -> PyResult<Option<TokenBitmask>> {
    const NAME: &str = "token_bitmask";
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    let mut arr = as_ndarray(py, v, NAME)?;
    let descr = arr.dtype();
    if b"iu".contains(&descr.kind())
        && descr.itemsize() == 4
        && descr.is_native_byteorder() == Some(false)
    {
        // Byte-swapped 32-bit words: their values in native order (as logits are copied).
        let native = descr.call_method1("newbyteorder", ("=",))?;
        arr = arr
            .call_method1("astype", (native,))?
            .cast_into::<PyUntypedArray>()?;
    }
    let dtype = arr.dtype().to_string();
    if dtype != "int32" && dtype != "uint32" {
        return Err(PyTypeError::new_err(format!(
            "{NAME} must be an int32 or uint32 array, got dtype {dtype}"
        )));
    }
    // int32 words as the uint32 words of the same bits.
    let words = arr.call_method1("view", ("uint32",))?;
    let words = contiguous_values::<u32, _>(&words, "uint32", "the bitmask", |w| w)?;
    match arr.ndim() {
        1 => Ok(Some(TokenBitmask::all_rows(words))),
        2 => {
            let (r, w) = (arr.shape()[0], arr.shape()[1]);
            if let Some(rows) = rows.filter(|&rows| rows != r) {
                return Err(PyValueError::new_err(format!(
                    "{NAME} has {r} rows, expected one per row of logits ({rows})"
                )));
            }
            TokenBitmask::per_row(words, r, w)
                .map(Some)
                .map_err(to_py_err)
        }
        n => Err(PyValueError::new_err(format!(
            "{NAME} must have shape (W,) or (R, W), got {n} dimensions"
        ))),
    }
}

/// Whether a sequence of sequences holds a bool (which extracts as an integer).
fn has_bool_item(v: &Bound<'_, PyAny>) -> bool {
    let Ok(rows) = v.try_iter() else { return false };
    rows.flatten().any(|row| {
        row.try_iter()
            .is_ok_and(|mut items| items.any(|t| t.is_ok_and(|t| t.cast::<PyBool>().is_ok())))
    })
}

/// `bad_words` (P11): a sequence of non-empty token id sequences.
fn bad_words_param(py: Python<'_>, v: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<Vec<u32>>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    if !is_array_like(v) {
        return Err(PyTypeError::new_err(format!(
            "bad_words must be a sequence of token id sequences, got {}",
            repr(v)
        )));
    }
    let v = &numpy_if_foreign(py, v, "bad_words")?;
    // The common case, lists of Python ints, read in one go (a bool reads as an int there,
    // and is refused by the general path below: R7).
    if let Ok(lists) = v.extract::<Vec<Vec<i64>>>() {
        if lists
            .iter()
            .flatten()
            .all(|&t| (0..=u32::MAX as i64).contains(&t))
            && !has_bool_item(v)
        {
            return Ok(lists
                .into_iter()
                .map(|l| l.into_iter().map(|t| t as u32).collect())
                .collect());
        }
    }
    let mut out = Vec::new();
    for (i, item) in v.try_iter()?.enumerate() {
        let item = item?;
        if !is_array_like(&item) {
            return Err(PyTypeError::new_err(format!(
                "bad_words must be a sequence of token id sequences, got {} at index {i}",
                repr(&item)
            )));
        }
        out.push(id_list(py, "bad_words", &item, None, false)?);
    }
    Ok(out)
}

/// One row's `(token id, bias)` pairs.
type Bias = Vec<(u32, f64)>;

/// One `{token_id: bias}` mapping: a key that is not an integer is a [`not_an_integer`]
/// error, one out of range a `ValueError`, a bias that is not a real number (a complex one
/// included) a [`not_a_real_number`] error (R7, P12).
fn bias_map(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<Vec<(u32, f64)>> {
    let d = v.cast::<PyMapping>().map_err(|_| {
        PyTypeError::new_err(format!(
            "logit_bias must be a mapping {{token_id: bias}} or a sequence of them, got {}",
            repr(v)
        ))
    })?;
    let mut out = Vec::with_capacity(d.len()?);
    for item in d.items()?.iter() {
        let (k, b): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
        let msg = |shown: String| {
            format!("logit_bias must map token ids in [0, V) to biases, got key {shown}")
        };
        let id = int_scalar(&k).map_err(|_| not_an_integer(py, msg(repr(&k))))?;
        let id =
            u32::try_from(id).map_err(|_| PyValueError::new_err(msg(abbreviate(&shown(&k)))))?;
        let bad = || {
            not_a_real_number(
                py,
                format!(
                    "logit_bias must map token ids to finite floats or -inf, got {{{id}: {}}}",
                    repr(&b)
                ),
            )
        };
        // A complex NumPy scalar has a `__float__` that drops its imaginary part.
        let complex = b.is_instance_of::<PyComplex>()
            || (is_numpy_scalar(&b)?
                && b.getattr("dtype")?.getattr("kind")?.extract::<char>()? == 'c');
        if complex {
            return Err(bad());
        }
        let bias: f64 = b.extract().map_err(|_| bad())?;
        out.push((id, bias));
    }
    Ok(out)
}

/// `logit_bias` (P12): a mapping for every row, or a sequence of R mappings (or `None`).
fn bias_param(py: Python<'_>, v: Option<&Bound<'_, PyAny>>) -> PyResult<Option<PerRow<Bias>>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    if v.cast::<PyMapping>().is_ok() {
        return Ok(Some(PerRow::All(bias_map(py, v)?)));
    }
    if !is_array_like(v) {
        return Err(PyTypeError::new_err(format!(
            "logit_bias must be a mapping {{token_id: bias}} or a sequence of them, got {}",
            repr(v)
        )));
    }
    let rows = v
        .try_iter()?
        .map(|item| {
            let item = item?;
            if item.is_none() {
                Ok(None)
            } else {
                bias_map(py, &item).map(Some)
            }
        })
        .collect::<PyResult<_>>()?;
    Ok(Some(PerRow::Rows(rows)))
}

/// `return_ranks` of `token_logprobs`: a bool, named in the message (R7), as `return_logprobs`.
fn return_ranks_arg(v: &Bound<'_, PyAny>) -> PyResult<bool> {
    v.extract::<bool>()
        .map_err(|_| PyTypeError::new_err(format!("return_ranks must be a bool, got {}", repr(v))))
}

/// `top_logprobs` (P15): an integer `>= 0` (checked against `V` by the core).
fn top_logprobs_param(v: Option<&Bound<'_, PyAny>>) -> PyResult<usize> {
    let Some(v) = v else { return Ok(0) };
    let n = int_scalar(v).map_err(|_| {
        not_an_integer(
            v.py(),
            format!("top_logprobs must be an integer, got {}", repr(v)),
        )
    })?;
    usize::try_from(n).map_err(|_| {
        PyValueError::new_err(format!(
            "top_logprobs must be an integer in [0, V], got {}",
            abbreviate(&shown(v))
        ))
    })
}

fn mode_param(v: Option<&Bound<'_, PyAny>>) -> PyResult<LogprobsMode> {
    let Some(v) = v else {
        return Ok(LogprobsMode::Sampled);
    };
    let s = v.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!(
            "logprobs_mode must be \"sampled\", \"processed\" or \"raw\", got {}",
            repr(v)
        ))
    })?;
    s.extract::<String>()?.parse().map_err(to_py_err)
}

/// Every parameter of `sample` but the logits, the seed, the histories and
/// `return_logprobs`, as given (`None`: not given).
#[derive(Default)]
struct Args<'py> {
    temperature: Option<Bound<'py, PyAny>>,
    top_k: Option<Bound<'py, PyAny>>,
    top_p: Option<Bound<'py, PyAny>>,
    min_p: Option<Bound<'py, PyAny>>,
    top_logprobs: Option<Bound<'py, PyAny>>,
    logprobs_mode: Option<Bound<'py, PyAny>>,
    allowed_token_ids: Option<Bound<'py, PyAny>>,
    token_bitmask: Option<Bound<'py, PyAny>>,
    bad_words: Option<Bound<'py, PyAny>>,
    min_tokens: Option<Bound<'py, PyAny>>,
    stop_token_ids: Option<Bound<'py, PyAny>>,
    logit_bias: Option<Bound<'py, PyAny>>,
    repetition_penalty: Option<Bound<'py, PyAny>>,
    frequency_penalty: Option<Bound<'py, PyAny>>,
    presence_penalty: Option<Bound<'py, PyAny>>,
    typical_p: Option<Bound<'py, PyAny>>,
    top_n_sigma: Option<Bound<'py, PyAny>>,
    epsilon_cutoff: Option<Bound<'py, PyAny>>,
    eta_cutoff: Option<Bound<'py, PyAny>>,
    xtc_threshold: Option<Bound<'py, PyAny>>,
    xtc_probability: Option<Bound<'py, PyAny>>,
    dynatemp_range: Option<Bound<'py, PyAny>>,
    dynatemp_exponent: Option<Bound<'py, PyAny>>,
    dry_multiplier: Option<Bound<'py, PyAny>>,
    dry_base: Option<Bound<'py, PyAny>>,
    dry_allowed_length: Option<Bound<'py, PyAny>>,
    dry_penalty_last_n: Option<Bound<'py, PyAny>>,
    dry_sequence_breakers: Option<Bound<'py, PyAny>>,
}

impl<'py> Args<'py> {
    /// The per-row numeric parameters, for the shapes a `Sampler` checks at each call.
    fn per_row(&self) -> [(&'static str, Option<&Bound<'py, PyAny>>); 20] {
        [
            ("temperature", self.temperature.as_ref()),
            ("top_k", self.top_k.as_ref()),
            ("top_p", self.top_p.as_ref()),
            ("min_p", self.min_p.as_ref()),
            ("min_tokens", self.min_tokens.as_ref()),
            ("repetition_penalty", self.repetition_penalty.as_ref()),
            ("frequency_penalty", self.frequency_penalty.as_ref()),
            ("presence_penalty", self.presence_penalty.as_ref()),
            ("typical_p", self.typical_p.as_ref()),
            ("top_n_sigma", self.top_n_sigma.as_ref()),
            ("epsilon_cutoff", self.epsilon_cutoff.as_ref()),
            ("eta_cutoff", self.eta_cutoff.as_ref()),
            ("xtc_threshold", self.xtc_threshold.as_ref()),
            ("xtc_probability", self.xtc_probability.as_ref()),
            ("dynatemp_range", self.dynatemp_range.as_ref()),
            ("dynatemp_exponent", self.dynatemp_exponent.as_ref()),
            ("dry_multiplier", self.dry_multiplier.as_ref()),
            ("dry_base", self.dry_base.as_ref()),
            ("dry_allowed_length", self.dry_allowed_length.as_ref()),
            ("dry_penalty_last_n", self.dry_penalty_last_n.as_ref()),
        ]
    }

    /// The core's parameters; per-row arrays checked against `rows_shape` when given.
    fn params(&self, py: Python<'py>, rows_shape: Option<&[usize]>) -> PyResult<SamplingParams> {
        let f = |name, v: &Option<Bound<'py, PyAny>>, default| {
            float_param(py, name, v.as_ref(), default, rows_shape)
        };
        let rows = rows_shape.map(|s| s.iter().product::<usize>());
        let stop = match self.stop_token_ids.as_ref().filter(|v| !v.is_none()) {
            Some(v) => id_list(py, "stop_token_ids", v, None, false)?,
            None => Vec::new(),
        };
        let breakers = match self.dry_sequence_breakers.as_ref().filter(|v| !v.is_none()) {
            Some(v) => id_list(py, "dry_sequence_breakers", v, None, false)?,
            None => Vec::new(),
        };
        // Built in place: the struct is large, and a chain of setters would move it each time.
        let p = SamplingParams {
            temperature: f("temperature", &self.temperature, 1.0)?,
            top_k: count_param(py, "top_k", self.top_k.as_ref(), rows_shape)?,
            top_p: f("top_p", &self.top_p, 1.0)?,
            min_p: f("min_p", &self.min_p, 0.0)?,
            allowed_token_ids: allowed_param(py, self.allowed_token_ids.as_ref())?,
            token_bitmask: bitmask_param(py, self.token_bitmask.as_ref(), rows)?,
            bad_words: bad_words_param(py, self.bad_words.as_ref())?,
            min_tokens: count_param(py, "min_tokens", self.min_tokens.as_ref(), rows_shape)?,
            stop_token_ids: stop,
            logit_bias: bias_param(py, self.logit_bias.as_ref())?,
            repetition_penalty: f("repetition_penalty", &self.repetition_penalty, 1.0)?,
            frequency_penalty: f("frequency_penalty", &self.frequency_penalty, 0.0)?,
            presence_penalty: f("presence_penalty", &self.presence_penalty, 0.0)?,
            top_logprobs: top_logprobs_param(self.top_logprobs.as_ref())?,
            logprobs_mode: mode_param(self.logprobs_mode.as_ref())?,
            typical_p: f("typical_p", &self.typical_p, 1.0)?,
            top_n_sigma: f("top_n_sigma", &self.top_n_sigma, 0.0)?,
            epsilon_cutoff: f("epsilon_cutoff", &self.epsilon_cutoff, 0.0)?,
            eta_cutoff: f("eta_cutoff", &self.eta_cutoff, 0.0)?,
            xtc_threshold: f("xtc_threshold", &self.xtc_threshold, 0.1)?,
            xtc_probability: f("xtc_probability", &self.xtc_probability, 0.0)?,
            dynatemp_range: f("dynatemp_range", &self.dynatemp_range, 0.0)?,
            dynatemp_exponent: f("dynatemp_exponent", &self.dynatemp_exponent, 1.0)?,
            dry_multiplier: f("dry_multiplier", &self.dry_multiplier, 0.0)?,
            dry_base: f("dry_base", &self.dry_base, 1.75)?,
            dry_allowed_length: int_param(
                py,
                "dry_allowed_length",
                self.dry_allowed_length.as_ref(),
                2,
                rows_shape,
            )?,
            dry_penalty_last_n: int_param(
                py,
                "dry_penalty_last_n",
                self.dry_penalty_last_n.as_ref(),
                -1,
                rows_shape,
            )?,
            dry_sequence_breakers: breakers,
        };
        // Per-call values and lengths are checked by the core; a Sampler's values here.
        if rows.is_none() {
            p.check(None).map_err(to_py_err)?;
        }
        Ok(p)
    }
}

/// How a call draws: with a seed and the call's histories, or as a sampler's next draw.
enum Draw<'a> {
    Seed(&'a SamplingParams, &'a Seed, Histories<'a>),
    Sampler(&'a Mutex<CoreSampler>),
}

/// `values` as an array of shape `rows_shape` (which holds as many), or a NumPy scalar for an
/// empty shape (1-D logits). A 1-D shape needs no reshape.
fn shaped<'py, T: numpy::Element>(
    py: Python<'py>,
    values: Vec<T>,
    rows_shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    let flat = PyArray::from_vec(py, values);
    match rows_shape.len() {
        0 => flat.reshape(rows_shape.to_vec())?.get_item(()),
        1 => Ok(flat.into_any()),
        _ => Ok(flat.reshape(rows_shape.to_vec())?.into_any()),
    }
}

/// The logits read for sampling: the array, `logits.shape[:-1]`, `V`, and the function that
/// turns array results back into the input's array type (P18).
struct Logits<'py> {
    arr: FloatArray<'py>,
    rows_shape: Vec<usize>,
    vocab: usize,
    /// Where the rows are (contiguous rows `vocab` apart unless read with `strided_rows`).
    layout: RowLayout,
    back: Option<Bound<'py, PyAny>>,
}

/// The logits of a sampling call; with `strided_rows`, evenly spaced contiguous rows are read
/// where they are (`row_stride`), else every layout but C-contiguous is copied.
fn read_logits<'py>(
    py: Python<'py>,
    logits: &Bound<'py, PyAny>,
    strided_rows: bool,
) -> PyResult<Logits<'py>> {
    let (x, back) = adapt_input(py, logits, "logits")?;
    let (arr, rows_shape, vocab, layout) = logits_array(py, &x, strided_rows)?;
    Ok(Logits {
        arr,
        rows_shape,
        vocab,
        layout,
        back,
    })
}

/// Where the core reads the rows of [`Logits`]: the lowest element they read, the elements
/// from there to the highest, and the row count, length and layout.
#[derive(Clone, Copy)]
struct RowSpan<'l> {
    data: SharedPtr<u8>,
    span: usize,
    rows: usize,
    vocab: usize,
    stride: usize,
    scattered: Option<crate::sampling::Scattered<'l>>,
}

impl RowSpan<'_> {
    fn of<'l>(l: &'l Logits<'_>) -> RowSpan<'l> {
        let rows: usize = l.rows_shape.iter().product();
        let empty = rows == 0 || l.arr.size() == 0;
        match &l.layout {
            RowLayout::Rows(stride) => RowSpan {
                data: SharedPtr(l.arr.data),
                span: if empty {
                    0
                } else {
                    (rows - 1) * stride + l.vocab
                },
                rows,
                vocab: l.vocab,
                stride: *stride,
                scattered: None,
            },
            RowLayout::Scattered { base, span, lanes } => RowSpan {
                // `base` elements below element 0: the array's lowest (`logits_array`).
                data: SharedPtr(l.arr.data.wrapping_sub(base * l.arr.dtype.itemsize())),
                span: if empty { 0 } else { *span },
                rows,
                vocab: l.vocab,
                stride: l.vocab,
                scattered: Some(crate::sampling::Scattered { base: *base, lanes }),
            },
        }
    }

    /// The rows as the core takes them.
    ///
    /// # Safety
    /// The logits `self` was made `of` are alive, of element type `T`, and not written during
    /// `'a`: the `span` elements from `data` are readable (`read_logits`).
    unsafe fn rows<'a, T>(self) -> crate::Result<crate::sampling::Rows<'a, T>>
    where
        Self: 'a,
    {
        if self.span == 0 {
            return crate::sampling::Rows::contiguous(&[], self.vocab);
        }
        // SAFETY: the `span` elements from `data` are readable, as the contract says.
        let x = unsafe { std::slice::from_raw_parts(self.data.get().cast::<T>(), self.span) };
        match self.scattered {
            Some(at) => crate::sampling::Rows::scattered(x, at),
            None => crate::sampling::Rows::strided(x, self.rows, self.vocab, self.stride),
        }
    }
}

/// Runs the draw with the GIL released.
fn draw_core(
    py: Python<'_>,
    l: &Logits<'_>,
    draw: &Draw<'_>,
    with_logprobs: bool,
) -> PyResult<Draws> {
    let (span, dtype) = (RowSpan::of(l), l.arr.dtype);
    detach_interruptible(py, || {
        // SAFETY: `span` is of live logits of `dtype`, which the caller keeps alive and nothing
        // writes during the call.
        unsafe { dispatch!(dtype, T => run::<T>(span.rows::<T>()?, draw, with_logprobs)) }
    })
}

fn run<T: crate::Float>(
    x: crate::sampling::Rows<'_, T>,
    draw: &Draw<'_>,
    with_logprobs: bool,
) -> crate::Result<Draws> {
    match draw {
        Draw::Seed(params, seed, h) => {
            crate::sampling::sample_batch_of(x, params, h, seed, with_logprobs)
        }
        Draw::Sampler(s) => s
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sample_batch_of(x, with_logprobs),
    }
}

/// An array result in the input's array type (P18): `back` converts NumPy results for
/// torch, JAX and bfloat16 inputs; `keep_dtype` results (filtered logits) are rounded back to
/// bfloat16, the others (tokens, float64 logprobs) keep their dtype.
fn deliver<'py>(
    py: Python<'py>,
    r: Bound<'py, PyAny>,
    back: Option<&Bound<'py, PyAny>>,
    keep_dtype: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let Some(back) = back else { return Ok(r) };
    if keep_dtype {
        return back.call1((r,));
    }
    static AS_TYPE: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    let f = AS_TYPE.import(py, "logitkit._coerce", "like_input")?;
    f.call1((r, back))
}

/// The result of `sample` (P1, P15).
fn sample_result<'py>(
    py: Python<'py>,
    l: &Logits<'py>,
    d: Draws,
    return_logprobs: bool,
    n_top: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let back = l.back.as_ref();
    let rs = &l.rows_shape;
    let tok = deliver(py, shaped(py, d.tokens, rs)?, back, false)?;
    if n_top == 0 && !return_logprobs {
        return Ok(tok);
    }
    let lp = deliver(py, shaped(py, d.logprobs, rs)?, back, false)?;
    if n_top == 0 {
        return Ok(PyTuple::new(py, [tok, lp])?.into_any());
    }
    let ranks = deliver(py, shaped(py, d.ranks, rs)?, back, false)?;
    let mut top_shape = rs.clone();
    top_shape.push(n_top);
    let top_ids = PyArray::from_vec(py, d.top_ids).reshape(top_shape.clone())?;
    let top_lp = PyArray::from_vec(py, d.top_logprobs).reshape(top_shape)?;
    let top_ids = deliver(py, top_ids.into_any(), back, false)?;
    let top_lp = deliver(py, top_lp.into_any(), back, false)?;
    static OUTPUT: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    let cls = OUTPUT.import(py, "logitkit._output", "SampleOutput")?;
    cls.call1((tok, lp, ranks, top_ids, top_lp))
}

/// Draws one token per row of logits through the decoding pipeline: masks, logit bias,
/// penalties, then temperature, top-k, top-p and min-p, then one draw (contract P1-P18).
///
/// Parameters
/// ----------
/// logits : array_like, shape (..., V)
///     Logits with the vocabulary on the last axis, ``V >= 1``: NumPy arrays of any float
///     dtype, lists, CPU torch tensors (bfloat16 included), JAX arrays, DLPack producers.
///     float16 and bfloat16 are processed in float32; integers and bool become float64.
/// temperature : float or array_like, default 1.0
///     ``T >= 0``, finite. ``0`` is greedy: the largest processed logit, the lowest id among
///     equal ones.
/// top_k : int or array_like of int, default 0
///     Keep the ``k`` largest logits (lower ids first among equal ones); ``0`` or ``k >= V``
///     disables it.
/// top_p : float or array_like, default 1.0
///     In [0, 1]. Keep the shortest prefix of the remaining tokens, by probability, whose
///     cumulative probability is ``>= top_p``; ``1`` disables it, ``0`` is greedy.
/// min_p : float or array_like, default 0.0
///     In [0, 1]. Keep the tokens whose probability is ``>= min_p`` times the largest.
/// seed : None, int or array_like of int, default None
///     ``None`` draws fresh entropy from the OS. An int ``s >= 0``: row ``i`` draws from a
///     stream determined by ``(s, i)``. An array of one seed per row: a row's token depends
///     only on its logits, its parameters, its histories and its seed.
/// return_logprobs : bool, default False
///     Also return each chosen token's natural-log probability (float64).
/// top_logprobs : int, default 0
///     ``0 <= n <= V``. With ``n > 0`` the result is a :class:`SampleOutput` with the chosen
///     token's logprob and rank and the ``n`` most probable tokens and their logprobs.
/// logprobs_mode : {"sampled", "processed", "raw"}, default "sampled"
///     The distribution logprobs come from: the one drawn from (after every stage); the
///     log-softmax after masks, bias, penalties and temperature (before top-k/top-p/min-p);
///     or the log-softmax of the logits as passed in.
/// allowed_token_ids : sequence of int, or sequence of (sequence of int or None), optional
///     The only tokens a row may draw: one list for every row, or one per row.
/// token_bitmask : array of int32 or uint32, shape (R, W) or (W,), optional
///     Token ``j`` is allowed iff bit ``j % 32`` of word ``j // 32`` is set (the layout of
///     xgrammar, llguidance and outlines); tokens at ``j >= 32 * W`` are banned.
/// bad_words : sequence of sequences of int, optional
///     A one-token sequence bans its token; a longer one bans its last token when the row's
///     output tokens end with the others.
/// min_tokens : int or array_like of int, default 0
///     While a row has fewer output tokens, its ``stop_token_ids`` are banned.
/// stop_token_ids : sequence of int, optional
///     The stop tokens ``min_tokens`` holds back (required when ``min_tokens > 0``).
/// logit_bias : dict of {int: float}, or sequence of (dict or None), optional
///     Added to the logits after the masks; a bias is finite or ``-inf`` (a ban).
/// repetition_penalty : float or array_like, default 1.0
///     ``r > 0``: a token seen in the prompt or output has its logit divided by ``r`` if
///     positive, else multiplied by ``r``.
/// frequency_penalty, presence_penalty : float or array_like, default 0.0
///     A token with count ``c`` in the output gets ``z - f * c - p * (c > 0)``.
/// typical_p : float or array_like, default 1.0
///     In (0, 1]. Locally typical sampling: keep the fewest tokens, by ``|-ln p - H|``
///     ascending (``H`` the entropy of the kept distribution), whose probability reaches
///     ``typical_p``; ``1`` disables it. It may remove the most probable token.
/// top_n_sigma : float or array_like, default 0.0
///     ``n >= 0``: keep the tokens whose scaled logit is ``>= max - n * sigma`` over the kept
///     tokens (``sigma`` their population standard deviation); ``0`` disables it.
/// epsilon_cutoff : float or array_like, default 0.0
///     In [0, 1). Keep the tokens of probability ``>= epsilon_cutoff`` (the most probable
///     always); ``0`` disables it.
/// eta_cutoff : float or array_like, default 0.0
///     In [0, 1). Keep the tokens of probability ``>= min(eta, sqrt(eta) * exp(-H))`` (the
///     most probable always); ``0`` disables it.
/// xtc_threshold : float or array_like, default 0.1
///     In [0, 1]. XTC's threshold.
/// xtc_probability : float or array_like, default 0.0
///     In [0, 1]. With this probability (a uniform of the row's seed stream, drawn before the
///     draw's), XTC removes every token of probability ``>= xtc_threshold`` but the least
///     probable of them, when at least two reach it; ``0`` disables it.
/// dynatemp_range : float or array_like, default 0.0
///     ``r >= 0``. With ``r > 0`` and ``temperature > 0``, each row's temperature is
///     ``lo + (hi - lo) * (H / ln n) ** dynatemp_exponent`` with ``lo = max(0, T - r)``,
///     ``hi = T + r``, ``H`` the entropy of the row at temperature 1 and ``n`` its number of
///     finite logits (llama.cpp's dynamic temperature).
/// dynatemp_exponent : float or array_like, default 1.0
///     ``>= 0``. The exponent of the dynamic temperature.
/// dry_multiplier : float or array_like, default 0.0
///     ``>= 0``. DRY ("Don't Repeat Yourself", llama.cpp's DRY), applied after the
///     penalties: a token that would extend a repeat of ``n >= dry_allowed_length`` tokens of
///     the row's output (its last tokens also came earlier, followed by that token) loses
///     ``dry_multiplier * dry_base ** (n - dry_allowed_length)`` from its logit, ``n`` the
///     longest such repeat; ``0`` disables it.
/// dry_base : float or array_like, default 1.75
///     ``>= 1``, finite. The growth of the DRY penalty per repeated token (the exponent is
///     clamped to ``88.7228391 / ln(dry_base)``).
/// dry_allowed_length : int or array_like of int, default 2
///     ``>= 0``. Repeats shorter than this are not penalised.
/// dry_penalty_last_n : int or array_like of int, default -1
///     ``>= -1``. DRY reads the row's last ``n`` output tokens; ``-1`` all of them, ``0``
///     disables it.
/// dry_sequence_breakers : sequence of int, optional
///     Token ids, for every row: a repeat never reaches back across one, and they are never
///     penalised (each id a one-token breaker; llama.cpp's breakers are strings).
/// prompt_tokens, output_tokens : sequence of sequences of int, or int array (R, L), optional
///     Each row's prompt and generated tokens (padded on the right with -1 in an array);
///     for 1-D logits, one sequence.
///
/// Each of ``temperature``, ``top_k``, ``top_p``, ``min_p``, ``min_tokens``, the penalties,
/// the parameters of the samplers after min-p (``typical_p`` to ``dynatemp_exponent``) and
/// DRY's (but ``dry_sequence_breakers``) is a scalar or an array of shape
/// ``logits.shape[:-1]`` (one value per row). The samplers
/// after min-p apply in the order typical-p, top-n-sigma, epsilon, eta, XTC, each over the
/// tokens still kept with their probabilities renormalised; none leaves a row empty.
///
/// Returns
/// -------
/// tokens : numpy.int64 or ndarray of int64, shape ``logits.shape[:-1]``
///     A NumPy scalar for 1-D logits; a torch tensor for torch input, a JAX array for JAX.
/// (tokens, logprobs)
///     With ``return_logprobs=True`` and ``top_logprobs=0``.
/// SampleOutput
///     With ``top_logprobs > 0``: ``(tokens, logprobs, ranks, top_ids, top_logprobs)``.
///
/// Raises
/// ------
/// ValueError
///     For a bad parameter value (the message names it and the value), a per-row array of the
///     wrong shape, a token id outside ``[0, V)`` (naming the parameter, the row and the id),
///     0-d logits or ``V = 0``, and a row holding NaN or ``+inf`` or no finite logit, or left
///     without one by the masks (the message gives the row). Nothing is drawn for a call that
///     raises.
/// TypeError
///     For a parameter of the wrong type.
///
/// Examples
/// --------
/// >>> import logitkit
/// >>> int(logitkit.sample([0.0, 3.0, 1.0], temperature=0.0))
/// 1
/// >>> int(logitkit.sample([0.0, 3.0, 1.0], temperature=0.0, logit_bias={1: -5.0}))
/// 2
/// >>> out = logitkit.sample([0.0, 3.0, 1.0], temperature=0.0, top_logprobs=2)
/// >>> out.top_ids.tolist(), int(out.ranks)
/// ([1, 0], 1)
/// >>> x = [2.0, 1.0, -3.0]
/// >>> sorted({int(logitkit.sample(x, epsilon_cutoff=0.1, seed=s)) for s in range(50)})
/// [0, 1]
///
/// DRY: the output ends with ``1 2``, which came before followed by ``3``; with
/// ``dry_multiplier=5`` token 3 loses 5 and greedy decoding takes token 0 instead.
///
/// >>> int(logitkit.sample([1.0, 0.0, 0.0, 2.0], temperature=0.0,
/// ...                     output_tokens=[1, 2, 3, 0, 1, 2], dry_multiplier=5.0))
/// 0
#[pyfunction]
#[pyo3(
    signature = (logits, *, temperature=None, top_k=None, top_p=None, min_p=None, seed=None,
                 return_logprobs=false, top_logprobs=None, logprobs_mode=None,
                 allowed_token_ids=None, token_bitmask=None, bad_words=None, min_tokens=None,
                 stop_token_ids=None, logit_bias=None, repetition_penalty=None,
                 frequency_penalty=None, presence_penalty=None,
                 typical_p=None, top_n_sigma=None, epsilon_cutoff=None, eta_cutoff=None, xtc_threshold=None, xtc_probability=None, dynatemp_range=None, dynatemp_exponent=None,
                 dry_multiplier=None, dry_base=None, dry_allowed_length=None, dry_penalty_last_n=None, dry_sequence_breakers=None,
                 prompt_tokens=None,
                 output_tokens=None),
    text_signature = "(logits, *, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=None, return_logprobs=False, top_logprobs=0, logprobs_mode='sampled', allowed_token_ids=None, token_bitmask=None, bad_words=None, min_tokens=0, stop_token_ids=None, logit_bias=None, repetition_penalty=1.0, frequency_penalty=0.0, presence_penalty=0.0, typical_p=1.0, top_n_sigma=0.0, epsilon_cutoff=0.0, eta_cutoff=0.0, xtc_threshold=0.1, xtc_probability=0.0, dynatemp_range=0.0, dynatemp_exponent=1.0, dry_multiplier=0.0, dry_base=1.75, dry_allowed_length=2, dry_penalty_last_n=-1, dry_sequence_breakers=None, prompt_tokens=None, output_tokens=None)"
)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn sample<'py>(
    py: Python<'py>,
    logits: &Bound<'py, PyAny>,
    temperature: Option<Bound<'py, PyAny>>,
    top_k: Option<Bound<'py, PyAny>>,
    top_p: Option<Bound<'py, PyAny>>,
    min_p: Option<Bound<'py, PyAny>>,
    seed: Option<&Bound<'py, PyAny>>,
    #[pyo3(from_py_with = super::arrays::return_logprobs_arg)] return_logprobs: bool,
    top_logprobs: Option<Bound<'py, PyAny>>,
    logprobs_mode: Option<Bound<'py, PyAny>>,
    allowed_token_ids: Option<Bound<'py, PyAny>>,
    token_bitmask: Option<Bound<'py, PyAny>>,
    bad_words: Option<Bound<'py, PyAny>>,
    min_tokens: Option<Bound<'py, PyAny>>,
    stop_token_ids: Option<Bound<'py, PyAny>>,
    logit_bias: Option<Bound<'py, PyAny>>,
    repetition_penalty: Option<Bound<'py, PyAny>>,
    frequency_penalty: Option<Bound<'py, PyAny>>,
    presence_penalty: Option<Bound<'py, PyAny>>,
    typical_p: Option<Bound<'py, PyAny>>,
    top_n_sigma: Option<Bound<'py, PyAny>>,
    epsilon_cutoff: Option<Bound<'py, PyAny>>,
    eta_cutoff: Option<Bound<'py, PyAny>>,
    xtc_threshold: Option<Bound<'py, PyAny>>,
    xtc_probability: Option<Bound<'py, PyAny>>,
    dynatemp_range: Option<Bound<'py, PyAny>>,
    dynatemp_exponent: Option<Bound<'py, PyAny>>,
    dry_multiplier: Option<Bound<'py, PyAny>>,
    dry_base: Option<Bound<'py, PyAny>>,
    dry_allowed_length: Option<Bound<'py, PyAny>>,
    dry_penalty_last_n: Option<Bound<'py, PyAny>>,
    dry_sequence_breakers: Option<Bound<'py, PyAny>>,
    prompt_tokens: Option<&Bound<'py, PyAny>>,
    output_tokens: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let l = read_logits(py, logits, true)?;
    let args = Args {
        temperature,
        top_k,
        top_p,
        min_p,
        top_logprobs,
        logprobs_mode,
        allowed_token_ids,
        token_bitmask,
        bad_words,
        min_tokens,
        stop_token_ids,
        logit_bias,
        repetition_penalty,
        frequency_penalty,
        presence_penalty,
        typical_p,
        top_n_sigma,
        epsilon_cutoff,
        eta_cutoff,
        xtc_threshold,
        xtc_probability,
        dynatemp_range,
        dynatemp_exponent,
        dry_multiplier,
        dry_base,
        dry_allowed_length,
        dry_penalty_last_n,
        dry_sequence_breakers,
    };
    let params = args.params(py, Some(&l.rows_shape))?;
    let seed = seed_param(py, seed, Some(&l.rows_shape))?;
    let owned = CallHistories::read(py, prompt_tokens, output_tokens, &l.rows_shape)?;
    let h = owned.view();
    let n_top = params.top_logprobs;
    let d = draw_core(py, &l, &Draw::Seed(&params, &seed, h), return_logprobs)?;
    sample_result(py, &l, d, return_logprobs, n_top)
}

/// The logits that :func:`sample` draws from (contract P7): the processed logits (masks, bias,
/// penalties), each kept token's divided by the temperature, every removed token ``-inf``.
///
/// Parameters
/// ----------
/// logits : array_like, shape (..., V)
///     As for :func:`sample`.
/// temperature, top_k, top_p, min_p, allowed_token_ids, token_bitmask, bad_words, min_tokens, stop_token_ids, logit_bias, repetition_penalty, frequency_penalty, presence_penalty, typical_p, top_n_sigma, epsilon_cutoff, eta_cutoff, xtc_threshold, xtc_probability, dynatemp_range, dynatemp_exponent, dry_multiplier, dry_base, dry_allowed_length, dry_penalty_last_n, dry_sequence_breakers, prompt_tokens, output_tokens
///     As for :func:`sample`.
///
/// Returns
/// -------
/// ndarray
///     Same shape and float dtype as the logits (integers and bool give float64; torch in,
///     torch out): each kept token's processed logit divided by the temperature, every
///     removed token ``-inf``. For ``temperature=0`` the greedy token keeps its processed
///     logit unscaled. ``softmax`` of the result is the distribution ``sample`` draws from.
///
///     Kept values are always finite, in the logits' own dtype. When some kept
///     ``logit / temperature`` would not be finite in that dtype (a small temperature with
///     large logits; float16 ends at 65504, bfloat16 and float32 near 3.4e38), every kept
///     token of that row gets ``(logit - max) / temperature`` instead, ``max`` being the row's
///     largest kept logit: the largest becomes 0, and a value below the dtype's lowest finite
///     number is clamped to it. ``softmax`` is blind to the shift and those clamped tokens
///     have probability 0 either way, so ``softmax`` of the result is still the distribution
///     ``sample`` draws from. Likewise, for ``temperature=0``, a greedy token whose processed
///     logit is beyond the dtype's range (after ``logit_bias``) gets 0. Other rows keep
///     ``logit / temperature``.
///
///     With ``dynatemp_range > 0`` the temperature is each row's dynamic one. XTC is random
///     in ``sample``; here the result is the law of the drawn token: with ``0 <
///     xtc_probability < 1`` the tokens XTC would remove keep their scaled logit shifted by
///     ``ln((1 - q) Z') - ln(q Z + (1 - q) Z')`` (``Z`` the kept probability mass before XTC,
///     ``Z'`` what XTC keeps of it), and are ``-inf`` for ``xtc_probability=1``.
///
/// Raises
/// ------
/// ValueError
///     As for :func:`sample`.
///
/// Examples
/// --------
/// >>> import logitkit
/// >>> logitkit.filter_logits([1.0, 3.0, 2.0], temperature=0.5, top_k=2).tolist()
/// [-inf, 6.0, 4.0]
/// >>> logitkit.filter_logits([1.0, 3.0, 2.0], allowed_token_ids=[0, 2]).tolist()
/// [1.0, -inf, 2.0]
/// >>> logitkit.filter_logits([2.0, 2.0, 0.0, 0.0], top_n_sigma=1.0).tolist()
/// [2.0, 2.0, -inf, -inf]
#[pyfunction]
#[pyo3(
    signature = (logits, *, temperature=None, top_k=None, top_p=None, min_p=None,
                 allowed_token_ids=None, token_bitmask=None, bad_words=None, min_tokens=None,
                 stop_token_ids=None, logit_bias=None, repetition_penalty=None,
                 frequency_penalty=None, presence_penalty=None,
                 typical_p=None, top_n_sigma=None, epsilon_cutoff=None, eta_cutoff=None, xtc_threshold=None, xtc_probability=None, dynatemp_range=None, dynatemp_exponent=None,
                 dry_multiplier=None, dry_base=None, dry_allowed_length=None, dry_penalty_last_n=None, dry_sequence_breakers=None,
                 prompt_tokens=None,
                 output_tokens=None),
    text_signature = "(logits, *, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, allowed_token_ids=None, token_bitmask=None, bad_words=None, min_tokens=0, stop_token_ids=None, logit_bias=None, repetition_penalty=1.0, frequency_penalty=0.0, presence_penalty=0.0, typical_p=1.0, top_n_sigma=0.0, epsilon_cutoff=0.0, eta_cutoff=0.0, xtc_threshold=0.1, xtc_probability=0.0, dynatemp_range=0.0, dynatemp_exponent=1.0, dry_multiplier=0.0, dry_base=1.75, dry_allowed_length=2, dry_penalty_last_n=-1, dry_sequence_breakers=None, prompt_tokens=None, output_tokens=None)"
)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn filter_logits<'py>(
    py: Python<'py>,
    logits: &Bound<'py, PyAny>,
    temperature: Option<Bound<'py, PyAny>>,
    top_k: Option<Bound<'py, PyAny>>,
    top_p: Option<Bound<'py, PyAny>>,
    min_p: Option<Bound<'py, PyAny>>,
    allowed_token_ids: Option<Bound<'py, PyAny>>,
    token_bitmask: Option<Bound<'py, PyAny>>,
    bad_words: Option<Bound<'py, PyAny>>,
    min_tokens: Option<Bound<'py, PyAny>>,
    stop_token_ids: Option<Bound<'py, PyAny>>,
    logit_bias: Option<Bound<'py, PyAny>>,
    repetition_penalty: Option<Bound<'py, PyAny>>,
    frequency_penalty: Option<Bound<'py, PyAny>>,
    presence_penalty: Option<Bound<'py, PyAny>>,
    typical_p: Option<Bound<'py, PyAny>>,
    top_n_sigma: Option<Bound<'py, PyAny>>,
    epsilon_cutoff: Option<Bound<'py, PyAny>>,
    eta_cutoff: Option<Bound<'py, PyAny>>,
    xtc_threshold: Option<Bound<'py, PyAny>>,
    xtc_probability: Option<Bound<'py, PyAny>>,
    dynatemp_range: Option<Bound<'py, PyAny>>,
    dynatemp_exponent: Option<Bound<'py, PyAny>>,
    dry_multiplier: Option<Bound<'py, PyAny>>,
    dry_base: Option<Bound<'py, PyAny>>,
    dry_allowed_length: Option<Bound<'py, PyAny>>,
    dry_penalty_last_n: Option<Bound<'py, PyAny>>,
    dry_sequence_breakers: Option<Bound<'py, PyAny>>,
    prompt_tokens: Option<&Bound<'py, PyAny>>,
    output_tokens: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let l = read_logits(py, logits, true)?;
    let args = Args {
        temperature,
        top_k,
        top_p,
        min_p,
        allowed_token_ids,
        token_bitmask,
        bad_words,
        min_tokens,
        stop_token_ids,
        logit_bias,
        repetition_penalty,
        frequency_penalty,
        presence_penalty,
        typical_p,
        top_n_sigma,
        epsilon_cutoff,
        eta_cutoff,
        xtc_threshold,
        xtc_probability,
        dynatemp_range,
        dynatemp_exponent,
        dry_multiplier,
        dry_base,
        dry_allowed_length,
        dry_penalty_last_n,
        dry_sequence_breakers,
        ..Default::default()
    };
    let params = args.params(py, Some(&l.rows_shape))?;
    let owned = CallHistories::read(py, prompt_tokens, output_tokens, &l.rows_shape)?;
    let h = owned.view();
    let n = l.arr.size();
    let out = l.arr.dtype.empty(py, &l.arr.shape)?;
    let dst = SharedPtr(FloatArray::view(&out).expect("fresh array").data);
    let (span, dtype) = (RowSpan::of(&l), l.arr.dtype);
    detach_interruptible(py, || {
        // SAFETY: `span` is of live logits of `dtype` that the caller keeps alive and nothing
        // writes; `dst` is a fresh C-contiguous array of their shape and dtype (`n` elements)
        // that nothing else sees yet.
        unsafe {
            dispatch!(dtype, T => filter::<T>(span.rows::<T>()?, dst.typed(), n, &params, &h))
        }
    })?;
    deliver(py, out.into_any(), l.back.as_ref(), true)
}

/// # Safety
/// `dst` points to `n` writable elements of `T` (`x`'s rows, row-major), apart from `x`,
/// which nothing else reads or writes during the call.
unsafe fn filter<T: crate::Float>(
    x: crate::sampling::Rows<'_, T>,
    dst: *mut T,
    n: usize,
    params: &SamplingParams,
    h: &Histories<'_>,
) -> crate::Result<()> {
    let out = if n == 0 {
        &mut [][..]
    } else {
        // SAFETY: as the function's contract says.
        unsafe { std::slice::from_raw_parts_mut(dst, n) }
    };
    // Kept values stay finite in the logits' own dtype, bfloat16 included (P7).
    crate::sampling::filter_logits_batch_of(x, params, h, out)
}

/// The log-probability of given tokens: ``log_softmax(logits / temperature)`` at
/// ``token_ids`` (contract P16), without materialising the log-softmax.
///
/// Parameters
/// ----------
/// logits : array_like, shape (..., V)
///     As for :func:`sample`.
/// token_ids : array_like of int, shape ``logits.shape[:-1]``
///     One token id in ``[0, V)`` per row.
/// temperature : float or array_like, default 1.0
///     ``T > 0``, finite; a scalar or one per row.
/// return_ranks : bool, default False
///     Also return each token's rank: the number of tokens whose logit is at least its own
///     (1 = most probable).
///
/// Returns
/// -------
/// logprobs : ndarray, shape ``logits.shape[:-1]``
///     In the dtype ``log_softmax`` gives (float32 for float32, ...). For 1-D logits a NumPy
///     scalar (a 0-d tensor or array for torch or JAX logits). Rows holding NaN or ``+inf``
///     give NaN, as ``log_softmax``.
/// (logprobs, ranks)
///     With ``return_ranks=True``; ranks are int64.
///
/// Raises
/// ------
/// ValueError
///     For a temperature that is not finite and positive, ``token_ids`` of the wrong shape or
///     an id outside ``[0, V)`` (naming the row), 0-d logits or ``V = 0``.
///
/// Examples
/// --------
/// >>> import logitkit, numpy as np
/// >>> lp, rank = logitkit.token_logprobs(np.log([[0.5, 0.25, 0.25]]), [0], return_ranks=True)
/// >>> round(float(lp[0]), 6), int(rank[0])
/// (-0.693147, 1)
#[pyfunction]
#[pyo3(
    signature = (logits, token_ids, *, temperature=None, return_ranks=false),
    text_signature = "(logits, token_ids, *, temperature=1.0, return_ranks=False)"
)]
pub(crate) fn token_logprobs<'py>(
    py: Python<'py>,
    logits: &Bound<'py, PyAny>,
    token_ids: &Bound<'py, PyAny>,
    temperature: Option<&Bound<'py, PyAny>>,
    #[pyo3(from_py_with = return_ranks_arg)] return_ranks: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let l = read_logits(py, logits, true)?;
    let rows: usize = l.rows_shape.iter().product();
    let temperature = float_param(py, "temperature", temperature, 1.0, Some(&l.rows_shape))?;
    let ids_arr = as_ndarray(py, token_ids, "token_ids")?;
    let kind: char = ids_arr.dtype().kind().into();
    if kind == 'O' {
        // Python ints beyond int64 and uint64 (NumPy keeps them as objects): out of range.
        for item in ids_arr.call_method0("ravel")?.try_iter()? {
            let item = item?;
            if int_scalar(&item).is_ok() && (item.lt(0)? || item.ge(l.vocab)?) {
                return Err(PyValueError::new_err(format!(
                    "token_ids must be token ids in [0, V) for the logits' vocabulary V = {}, got token id {}",
                    l.vocab,
                    abbreviate(&shown(&item))
                )));
            }
        }
    }
    if !"iu".contains(kind) {
        return Err(not_an_integer(
            py,
            format!(
                "token_ids must be integer token ids, got {}",
                repr(token_ids)
            ),
        ));
    }
    if ids_arr.shape() != l.rows_shape.as_slice() {
        return Err(PyValueError::new_err(format!(
            "token_ids has shape {}, expected shape {} (one id per row of logits)",
            shape_str(ids_arr.shape()),
            shape_str(&l.rows_shape)
        )));
    }
    let in_range = |ids: &mut dyn Iterator<Item = i128>| -> PyResult<()> {
        for (row, id) in ids.enumerate() {
            if row % SIGNAL_CHECK_EVERY == 0 {
                py.check_signals()?;
            }
            if id < 0 || id >= l.vocab as i128 {
                return Err(PyValueError::new_err(format!(
                    "token_ids must be token ids in [0, V) for the logits' vocabulary V = {}, got token id {id} in row {row}",
                    l.vocab,
                )));
            }
        }
        Ok(())
    };
    let ids: Vec<i64> = if is_uint64(&ids_arr) {
        // Values past int64 are out of range, and named as given.
        let wide = contiguous_values::<u64, _>(&ids_arr, "uint64", "token ids", |v| v)?;
        in_range(&mut wide.iter().map(|&v| i128::from(v)))?;
        // Each below V, so below 2^63; collected in place (same size and alignment).
        wide.into_iter().map(|v| v as i64).collect()
    } else {
        // Read as int64 once (tens of millions of ids are common in scoring).
        let ids = contiguous_values::<i64, _>(&ids_arr, "int64", "token ids", |v| v)?;
        in_range(&mut ids.iter().map(|&v| i128::from(v)))?;
        ids
    };
    let dtype = l.arr.dtype;
    let out = dtype.empty(py, &l.rows_shape)?;
    let dst = SharedPtr(FloatArray::view(&out).expect("fresh array").data);
    let mut ranks = crate::scratch::filled(if return_ranks { rows } else { 0 }, 0i64, "the ranks")
        .map_err(to_py_err)?;
    let span = RowSpan::of(&l);
    detach_interruptible(py, || {
        let r = return_ranks.then_some(&mut ranks[..]);
        // SAFETY: `span` is of live logits of `dtype` kept alive by the caller, which nothing
        // writes; `dst` a fresh array of `rows` elements of `dtype` nothing else sees.
        unsafe {
            dispatch!(dtype, T => score::<T>(
                span.rows::<T>()?,
                dst.typed(),
                rows,
                &ids,
                &temperature,
                r,
            ))
        }
    })?;
    let lp = result_of(out.into_any(), dtype)?;
    let lp = deliver(py, lp, l.back.as_ref(), true)?;
    if !return_ranks {
        return Ok(lp);
    }
    let ranks = deliver(
        py,
        shaped(py, ranks, &l.rows_shape)?,
        l.back.as_ref(),
        false,
    )?;
    Ok(PyTuple::new(py, [lp, ranks])?.into_any())
}

/// # Safety
/// `dst` points to `rows` writable elements of `T`, apart from `x`, which nothing else reads
/// or writes during the call.
unsafe fn score<T: crate::Float>(
    x: crate::sampling::Rows<'_, T>,
    dst: *mut T,
    rows: usize,
    ids: &[i64],
    temperature: &RowParam<f64>,
    ranks: Option<&mut [i64]>,
) -> crate::Result<()> {
    let out = if rows == 0 {
        &mut [][..]
    } else {
        // SAFETY: as the function's contract says.
        unsafe { std::slice::from_raw_parts_mut(dst, rows) }
    };
    crate::sampling::token_logprobs_of(x, ids, temperature.clone(), out, ranks)
}

/// Rows of token ids for `accept`: one token per row (an int, or a 1-D sequence of R ints),
/// or a sequence of R per-row sequences.
fn accepted_rows(
    py: Python<'_>,
    v: &Bound<'_, PyAny>,
    rows: Option<usize>,
) -> PyResult<Vec<Vec<u32>>> {
    let v = &numpy_if_foreign(py, v, "tokens")?;
    // The tokens of a batch of several dimensions (what the sampler returned for logits of
    // shape (B, S, V)): one token per row, in the rows' order, when they are `rows` ids whose
    // first axis is not the row count (which would make them per-row sequences).
    if let Some(r) = rows {
        if let Ok(arr) = as_ndarray(py, v, "tokens") {
            let shape = arr.shape();
            if shape.len() >= 2 && shape.iter().product::<usize>() == r && shape[0] != r {
                let flat = arr.call_method0("ravel")?;
                return Ok(id_list(py, "tokens", &flat, None, false)?
                    .into_iter()
                    .map(|t| vec![t])
                    .collect());
            }
        }
    }
    if !is_array_like(v) && v.cast::<PyUntypedArray>().is_err() {
        return Ok(vec![id_list(
            py,
            "tokens",
            &PyList::new(py, [v])?.into_any(),
            None,
            false,
        )?]);
    }
    if is_nested(v)? {
        return row_items(py, v, "tokens")?
            .iter()
            .enumerate()
            .map(|(r, item)| id_list(py, "tokens", item, Some(r), false))
            .collect();
    }
    let arr = as_ndarray(py, v, "tokens")?;
    if arr.ndim() == 0 {
        let item = arr.call_method0("item")?;
        return Ok(vec![id_list(
            py,
            "tokens",
            &PyList::new(py, [item])?.into_any(),
            None,
            false,
        )?]);
    }
    Ok(id_list(py, "tokens", v, None, false)?
        .into_iter()
        .map(|t| vec![t])
        .collect())
}

/// A stateful sampler for a decoding loop (contract P6, P17): parameters, a seed, and each
/// row's prompt and generated tokens.
///
/// ``sampler(logits)`` draws as :func:`sample` would, with the sampler's histories as
/// ``output_tokens`` and the seed stream of its ``n``-th draw, then appends each row's token
/// to its history. Penalty counts are kept incrementally: a step costs the same after 10 or
/// 100,000 generated tokens. DRY (``dry_multiplier``) reads the history at each step, in time
/// linear in its last ``dry_penalty_last_n`` tokens (llama.cpp's Z-algorithm; about 3 ns a
/// token). A call that raises changes nothing.
///
/// Parameters
/// ----------
/// temperature, top_k, top_p, min_p, top_logprobs, logprobs_mode, allowed_token_ids, token_bitmask, bad_words, min_tokens, stop_token_ids, logit_bias, repetition_penalty, frequency_penalty, presence_penalty, typical_p, top_n_sigma, epsilon_cutoff, eta_cutoff, xtc_threshold, xtc_probability, dynatemp_range, dynatemp_exponent, dry_multiplier, dry_base, dry_allowed_length, dry_penalty_last_n, dry_sequence_breakers
///     As for :func:`sample`; per-row arrays must match ``logits.shape[:-1]`` at each call.
/// mirostat_tau : None, float or array_like, default None
///     Mirostat 2.0's target surprise in bits (contract P25; llama.cpp's ``mirostat_v2``), a
///     finite float >= 0; ``None`` disables it. Each row keeps ``mu``, starting at
///     ``2 * tau``: after temperature (and the masks, bias, penalties and the samplers of
///     P20-P23), the tokens of surprise ``-log2 p > mu`` are removed (the most probable always
///     stays), a token is drawn from the rest renormalised, and
///     ``mu -= eta * (s - tau)``, ``s`` the drawn token's surprise under that truncated set.
///     It replaces ``top_k``, ``top_p`` and ``min_p``, which are ignored while it is on.
///     :meth:`reset` restarts ``mu``. Only a ``Sampler`` has it: :func:`sample` and
///     :func:`filter_logits` keep no state and do not accept it (``TypeError``).
/// mirostat_eta : float or array_like, default 0.1
///     Mirostat 2.0's learning rate, a finite float >= 0.
/// prompt_tokens : sequence of int, or sequence of sequences of int, optional
///     Each row's prompt; a flat sequence is one row. Fixes the row count.
/// seed : None or int, default None
///     The ``n``-th draw (counting from 0) uses streams determined by ``(seed, n)``, so two
///     samplers with the same seed give the same tokens. ``None`` takes a seed from the OS.
///
/// Methods
/// -------
/// __call__(logits, *, return_logprobs=False)
///     Draws one token per row and appends it to the row's history (see below).
/// accept(tokens)
///     Appends tokens chosen elsewhere to the histories without drawing.
/// reset()
///     Empties the output histories and restarts the seed stream.
///
/// Attributes
/// ----------
/// output_tokens : list of ndarray of int64
///     Each row's generated tokens.
/// seed : int
///     The seed (the one taken from the OS when constructed without one).
/// calls : int
///     The number of draws since construction or :meth:`reset`.
/// mirostat_mu : ndarray of float64
///     Each row's Mirostat 2.0 ``mu`` (empty when off, or before the first draw after
///     construction or :meth:`reset`).
///
/// Notes
/// -----
/// ``sampler(logits, *, return_logprobs=False)`` takes:
///
/// logits : array_like, shape (..., V)
///     As for :func:`sample`. The first call (or ``prompt_tokens``) fixes the row count
///     ``R = prod(logits.shape[:-1])``; later calls must have as many rows, and per-row
///     parameters must have shape ``logits.shape[:-1]``.
/// return_logprobs : bool, default False
///     Also return each chosen token's log-probability (float64, from the distribution of
///     ``logprobs_mode``).
///
/// and returns what :func:`sample` returns for these parameters: the tokens (a NumPy scalar
/// for 1-D logits, else int64 of shape ``logits.shape[:-1]``, in the input's array type), a
/// ``(tokens, logprobs)`` tuple with ``return_logprobs=True``, or a :class:`SampleOutput`
/// when the sampler has ``top_logprobs > 0``. It raises ``ValueError`` as :func:`sample`
/// does, and for a row count other than the sampler's, and ``TypeError`` for a bad type; a
/// call that raises draws nothing, leaves the histories as they were and does not advance the
/// seed stream.
///
/// Examples
/// --------
/// >>> import logitkit
/// >>> s = logitkit.Sampler(temperature=0.0, repetition_penalty=2.0, seed=0)
/// >>> [int(s([2.0, 1.9, 0.0])) for _ in range(2)]
/// [0, 1]
/// >>> s.output_tokens[0].tolist()
/// [0, 1]
/// >>> s.accept(2); s.output_tokens[0].tolist()
/// [0, 1, 2]
/// >>> s.reset(); s.output_tokens[0].tolist()
/// []
///
/// Mirostat 2.0: probabilities 0.5, 0.25, 0.125, 0.125 have surprises 1, 2, 3, 3 bits; with
/// ``tau = 1``, ``mu`` starts at 2 and keeps tokens 0 and 1 only.
///
/// >>> import numpy as np
/// >>> m = logitkit.Sampler(mirostat_tau=1.0, mirostat_eta=0.1, seed=0)
/// >>> x = np.log([0.5, 0.25, 0.125, 0.125])
/// >>> tok = int(m(x)); tok in (0, 1)
/// True
/// >>> s = np.log2(1.5) if tok == 0 else np.log2(3.0)  # under the kept set {2/3, 1/3}
/// >>> bool(abs(m.mirostat_mu[0] - (2.0 - 0.1 * (s - 1.0))) < 1e-12)
/// True
/// >>> m.reset(); m.mirostat_mu.size
/// 0
#[pyclass(module = "logitkit._native", frozen)]
pub(crate) struct Sampler {
    inner: Mutex<CoreSampler>,
    /// Per-row parameters' shapes, checked against `logits.shape[:-1]` at each call.
    shapes: Vec<(&'static str, Vec<usize>)>,
    /// The parameters as given, re-read for each call's row count (allowed ids, bitmask and
    /// bias rows are checked then).
    n_top: usize,
}

fn row_shape_of(
    py: Python<'_>,
    name: &str,
    v: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<Vec<usize>>> {
    let Some(v) = v else { return Ok(None) };
    if !is_array_like(v) {
        return Ok(None);
    }
    let arr = as_ndarray(py, v, name)?;
    Ok((arr.ndim() > 0).then(|| arr.shape().to_vec()))
}

impl Sampler {
    fn lock(&self) -> std::sync::MutexGuard<'_, CoreSampler> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl Sampler {
    #[new]
    #[pyo3(
        signature = (*, temperature=None, top_k=None, top_p=None, min_p=None, seed=None,
                     top_logprobs=None, logprobs_mode=None, allowed_token_ids=None,
                     token_bitmask=None, bad_words=None, min_tokens=None, stop_token_ids=None,
                     logit_bias=None, repetition_penalty=None, frequency_penalty=None,
                     presence_penalty=None, typical_p=None, top_n_sigma=None, epsilon_cutoff=None, eta_cutoff=None, xtc_threshold=None, xtc_probability=None, dynatemp_range=None, dynatemp_exponent=None,
                 dry_multiplier=None, dry_base=None, dry_allowed_length=None, dry_penalty_last_n=None, dry_sequence_breakers=None,
                     mirostat_tau=None, mirostat_eta=None, prompt_tokens=None),
        text_signature = "(*, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=None, top_logprobs=0, logprobs_mode='sampled', allowed_token_ids=None, token_bitmask=None, bad_words=None, min_tokens=0, stop_token_ids=None, logit_bias=None, repetition_penalty=1.0, frequency_penalty=0.0, presence_penalty=0.0, typical_p=1.0, top_n_sigma=0.0, epsilon_cutoff=0.0, eta_cutoff=0.0, xtc_threshold=0.1, xtc_probability=0.0, dynatemp_range=0.0, dynatemp_exponent=1.0, dry_multiplier=0.0, dry_base=1.75, dry_allowed_length=2, dry_penalty_last_n=-1, dry_sequence_breakers=None, mirostat_tau=None, mirostat_eta=0.1, prompt_tokens=None)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        temperature: Option<Bound<'_, PyAny>>,
        top_k: Option<Bound<'_, PyAny>>,
        top_p: Option<Bound<'_, PyAny>>,
        min_p: Option<Bound<'_, PyAny>>,
        seed: Option<&Bound<'_, PyAny>>,
        top_logprobs: Option<Bound<'_, PyAny>>,
        logprobs_mode: Option<Bound<'_, PyAny>>,
        allowed_token_ids: Option<Bound<'_, PyAny>>,
        token_bitmask: Option<Bound<'_, PyAny>>,
        bad_words: Option<Bound<'_, PyAny>>,
        min_tokens: Option<Bound<'_, PyAny>>,
        stop_token_ids: Option<Bound<'_, PyAny>>,
        logit_bias: Option<Bound<'_, PyAny>>,
        repetition_penalty: Option<Bound<'_, PyAny>>,
        frequency_penalty: Option<Bound<'_, PyAny>>,
        presence_penalty: Option<Bound<'_, PyAny>>,
        typical_p: Option<Bound<'_, PyAny>>,
        top_n_sigma: Option<Bound<'_, PyAny>>,
        epsilon_cutoff: Option<Bound<'_, PyAny>>,
        eta_cutoff: Option<Bound<'_, PyAny>>,
        xtc_threshold: Option<Bound<'_, PyAny>>,
        xtc_probability: Option<Bound<'_, PyAny>>,
        dynatemp_range: Option<Bound<'_, PyAny>>,
        dynatemp_exponent: Option<Bound<'_, PyAny>>,
        dry_multiplier: Option<Bound<'_, PyAny>>,
        dry_base: Option<Bound<'_, PyAny>>,
        dry_allowed_length: Option<Bound<'_, PyAny>>,
        dry_penalty_last_n: Option<Bound<'_, PyAny>>,
        dry_sequence_breakers: Option<Bound<'_, PyAny>>,
        mirostat_tau: Option<Bound<'_, PyAny>>,
        mirostat_eta: Option<Bound<'_, PyAny>>,
        prompt_tokens: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Sampler> {
        let args = Args {
            temperature,
            top_k,
            top_p,
            min_p,
            top_logprobs,
            logprobs_mode,
            allowed_token_ids,
            token_bitmask,
            bad_words,
            min_tokens,
            stop_token_ids,
            logit_bias,
            repetition_penalty,
            frequency_penalty,
            presence_penalty,
            typical_p,
            top_n_sigma,
            epsilon_cutoff,
            eta_cutoff,
            xtc_threshold,
            xtc_probability,
            dynatemp_range,
            dynatemp_exponent,
            dry_multiplier,
            dry_base,
            dry_allowed_length,
            dry_penalty_last_n,
            dry_sequence_breakers,
        };
        let params = args.params(py, None)?;
        let mut shapes = Vec::new();
        for (name, v) in args.per_row() {
            if let Some(s) = row_shape_of(py, name, v)? {
                shapes.push((name, s));
            }
        }
        let seed = match seed_param(py, seed, None)? {
            Seed::Fixed(s) => Some(s),
            _ => None,
        };
        let n_top = params.top_logprobs;
        let mut inner = CoreSampler::new(params, seed).map_err(to_py_err)?;
        let tau = mirostat_tau.filter(|v| !v.is_none());
        let eta = float_param(py, "mirostat_eta", mirostat_eta.as_ref(), 0.1, None)?;
        for (name, v) in [
            ("mirostat_tau", tau.as_ref()),
            ("mirostat_eta", mirostat_eta.as_ref()),
        ] {
            if let Some(s) = row_shape_of(py, name, v)? {
                shapes.push((name, s));
            }
        }
        match &tau {
            Some(t) => {
                let tau = float_param(py, "mirostat_tau", Some(t), 0.0, None)?;
                inner = inner.with_mirostat(tau, eta).map_err(to_py_err)?;
            }
            // Off: `mirostat_eta` is still checked, so that a bad value is not silently kept.
            None => {
                crate::sampling::check_mirostat(&RowParam::All(0.0), &eta, None)
                    .map_err(to_py_err)?;
            }
        }
        if let Some(p) = prompt_tokens.filter(|p| !p.is_none()) {
            let prompts = if is_nested(p)? {
                row_items(py, p, "prompt_tokens")?
                    .iter()
                    .enumerate()
                    .map(|(r, item)| id_list(py, "prompt_tokens", item, Some(r), true))
                    .collect::<PyResult<Vec<_>>>()?
            } else {
                vec![id_list(py, "prompt_tokens", p, None, true)?]
            };
            inner = inner.with_prompts(prompts).map_err(to_py_err)?;
        }
        Ok(Sampler {
            inner: Mutex::new(inner),
            shapes,
            n_top,
        })
    }

    // `sampler(logits)`. Documented in the class docstring: CPython gives a slot method such as
    // `__call__` its own fixed docstring ("Call self as a function."), so a doc comment here
    // would never reach `help()`.
    #[pyo3(signature = (logits, *, return_logprobs=false))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        logits: &Bound<'py, PyAny>,
        #[pyo3(from_py_with = super::arrays::return_logprobs_arg)] return_logprobs: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let l = read_logits(py, logits, true)?;
        for (name, s) in &self.shapes {
            if *s != l.rows_shape {
                return Err(PyValueError::new_err(format!(
                    "{name} has shape {}, expected a scalar or shape {} (one value per row of logits)",
                    shape_str(s),
                    shape_str(&l.rows_shape)
                )));
            }
        }
        let d = draw_core(py, &l, &Draw::Sampler(&self.inner), return_logprobs)?;
        sample_result(py, &l, d, return_logprobs, self.n_top)
    }

    /// Appends tokens chosen elsewhere (a forced token, accepted draft tokens) to the
    /// histories without drawing: one token per row (an int for one row, or R ints), or a
    /// sequence of R per-row sequences. The seed stream does not advance.
    ///
    /// Parameters
    /// ----------
    /// tokens : int, sequence of int, or sequence of sequences of int
    ///     The tokens.
    ///
    /// Raises
    /// ------
    /// ValueError
    ///     For a negative id or a row count other than the sampler's.
    fn accept(&self, py: Python<'_>, tokens: &Bound<'_, PyAny>) -> PyResult<()> {
        let known = self.lock().rows();
        let rows = accepted_rows(py, tokens, known)?;
        self.lock().accept(&rows).map_err(to_py_err)
    }

    /// Empties the output histories and restarts the seed stream, keeping the prompts and the
    /// row count.
    fn reset(&self) {
        self.lock().reset();
    }

    /// Each row's generated tokens: a list of R int64 arrays (empty before the row count is
    /// known).
    #[getter]
    fn output_tokens<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let s = self.lock();
        (0..s.rows().unwrap_or(0))
            .map(|r| {
                let v: Vec<i64> = s.output_tokens(r).iter().map(|&t| t as i64).collect();
                Ok(PyArray::from_vec(py, v).into_any())
            })
            .collect()
    }

    /// The seed (the one taken from the OS when constructed without one).
    #[getter]
    fn seed(&self) -> u64 {
        self.lock().seed()
    }

    /// The number of draws since construction or :meth:`reset`: the index of the next one.
    #[getter]
    fn calls(&self) -> u64 {
        self.lock().calls()
    }

    /// Each row's Mirostat 2.0 ``mu`` (float64, R values): empty when ``mirostat_tau`` is
    /// ``None`` or before the first draw after construction or :meth:`reset`.
    #[getter]
    fn mirostat_mu<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        PyArray::from_vec(py, self.lock().mirostat_mu().to_vec()).into_any()
    }

    fn __repr__(&self) -> String {
        let s = self.lock();
        let p = s.params();
        let show = |v: &[f64]| match v {
            [one] => format!("{one}"),
            _ => format!("<{} values>", v.len()),
        };
        let k = match p.top_k.values() {
            [one] => format!("{one}"),
            v => format!("<{} values>", v.len()),
        };
        format!(
            "Sampler(temperature={}, top_k={k}, top_p={}, min_p={}, seed={})",
            show(p.temperature.values()),
            show(p.top_p.values()),
            show(p.min_p.values()),
            s.seed()
        )
    }
}
