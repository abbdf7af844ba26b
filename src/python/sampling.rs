//! `sample`, `Sampler` and `filter_logits` for NumPy arrays (contract P1-P8).

use numpy::{PyArray, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PyTuple};

use super::arrays::{repr, shape_str, to_py_err, Dtype, FloatArray};
use crate::sampling::{RowParam, Sampler as CoreSampler, SamplingParams, Seed};

/// A data pointer handed to the core while the GIL is released.
struct Raw(*mut u8);
// SAFETY: the array behind the pointer is kept alive by the caller, which waits for the core.
unsafe impl Send for Raw {}
unsafe impl Sync for Raw {}

impl Raw {
    // A method, so closures capture the whole (Send) wrapper, not its raw field.
    fn get<T>(&self) -> *mut T {
        self.0.cast()
    }
}

/// The logits as a C-contiguous float array of at least one dimension and `V >= 1` (P1, P8).
/// Returns the array, the rows' shape (`logits.shape[:-1]`) and `V`.
fn logits_array<'py>(
    py: Python<'py>,
    logits: &Bound<'py, PyAny>,
) -> PyResult<(FloatArray<'py>, Vec<usize>, usize)> {
    let mut xa = FloatArray::coerce(py, logits)?;
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
    if !contiguous {
        xa = xa.copy(py)?;
    }
    Ok((xa, rows_shape, vocab))
}

fn is_array_like(v: &Bound<'_, PyAny>) -> bool {
    v.cast::<PyUntypedArray>().is_ok() || v.cast::<PyList>().is_ok() || v.cast::<PyTuple>().is_ok()
}

/// `v` as an ndarray (via `numpy.asarray`).
fn as_ndarray<'py>(py: Python<'py>, v: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyUntypedArray>> {
    let a = py.import("numpy")?.call_method1("asarray", (v,))?;
    Ok(a.cast_into::<PyUntypedArray>()?)
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
    if !is_array_like(v) {
        if v.cast::<PyFloat>().is_ok() || v.cast::<PyInt>().is_ok() || v.hasattr("__float__")? {
            return v
                .extract::<f64>()
                .map(RowParam::All)
                .map_err(|_| type_err());
        }
        return Err(type_err());
    }
    let arr = as_ndarray(py, v)?;
    let kind: char = arr.dtype().kind().into();
    if !"fiub".contains(kind) {
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
    let flat = arr.call_method0("ravel")?.call_method0("tolist")?;
    Ok(RowParam::PerRow(flat.extract::<Vec<f64>>()?))
}

/// An integer scalar (Python int or NumPy integer, not bool), clamped to `i64`; `Err(())` when
/// `v` is not an integer.
fn int_scalar(v: &Bound<'_, PyAny>) -> Result<i128, ()> {
    if v.cast::<PyBool>().is_ok() || v.cast::<PyFloat>().is_ok() {
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
    let kind: char = arr.dtype().kind().into();
    if kind != 'i' && kind != 'u' {
        return Err(PyValueError::new_err(format!(
            "{name} must be {what}, got {} (dtype {})",
            repr(v),
            arr.dtype()
        )));
    }
    let flat = arr.call_method0("ravel")?.call_method0("tolist")?;
    flat.extract::<Vec<i128>>()
        .map_err(|_| PyValueError::new_err(format!("{name} must be {what}, got {}", repr(v))))
}

/// `top_k`: an integer `>= 0`, or an integer array of shape `rows_shape` (P2, P8).
fn top_k_param(
    py: Python<'_>,
    v: Option<&Bound<'_, PyAny>>,
    rows_shape: Option<&[usize]>,
) -> PyResult<RowParam<i64>> {
    const WHAT: &str = "an integer >= 0";
    let Some(v) = v else {
        return Ok(RowParam::All(0));
    };
    let bad = |shown: String| PyValueError::new_err(format!("top_k must be {WHAT}, got {shown}"));
    let clamp = |k: i128| -> i64 {
        // Any k >= V disables top-k; negative values are kept (and refused by validation).
        k.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    };
    if !is_array_like(v) {
        return int_scalar(v)
            .map(|k| RowParam::All(clamp(k)))
            .map_err(|_| bad(repr(v)));
    }
    let arr = as_ndarray(py, v)?;
    if arr.ndim() == 0 {
        let item = arr.call_method0("item")?;
        return int_scalar(&item)
            .map(|k| RowParam::All(clamp(k)))
            .map_err(|_| bad(repr(v)));
    }
    let values = int_array("top_k", &arr, WHAT, v)?;
    if let Some(s) = rows_shape {
        check_shape("top_k", &arr, s)?;
    }
    Ok(RowParam::PerRow(values.into_iter().map(clamp).collect()))
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
    let bad = || PyValueError::new_err(format!("seed must be {what}, got {}", repr(v)));
    let one = |s: i128| u64::try_from(s).map_err(|_| bad());
    if !is_array_like(v) {
        return int_scalar(v)
            .map_err(|_| bad())
            .and_then(one)
            .map(Seed::Fixed);
    }
    let arr = as_ndarray(py, v)?;
    if arr.ndim() == 0 {
        let item = arr.call_method0("item")?;
        return int_scalar(&item)
            .map_err(|_| bad())
            .and_then(one)
            .map(Seed::Fixed);
    }
    let Some(s) = rows_shape else {
        return Err(bad());
    };
    let values = int_array("seed", &arr, what, v)?;
    check_shape("seed", &arr, s)?;
    values
        .into_iter()
        .map(one)
        .collect::<PyResult<Vec<u64>>>()
        .map(Seed::PerRow)
}

/// The four filter parameters; per-row arrays checked against `rows_shape` when given.
fn params(
    py: Python<'_>,
    temperature: Option<&Bound<'_, PyAny>>,
    top_k: Option<&Bound<'_, PyAny>>,
    top_p: Option<&Bound<'_, PyAny>>,
    min_p: Option<&Bound<'_, PyAny>>,
    rows_shape: Option<&[usize]>,
) -> PyResult<SamplingParams> {
    Ok(SamplingParams {
        temperature: float_param(py, "temperature", temperature, 1.0, rows_shape)?,
        top_k: top_k_param(py, top_k, rows_shape)?,
        top_p: float_param(py, "top_p", top_p, 1.0, rows_shape)?,
        min_p: float_param(py, "min_p", min_p, 0.0, rows_shape)?,
    })
}

/// How a call draws: with a seed, or as the `n`-th call of a sampler.
enum Draw<'a> {
    Seed(&'a Seed),
    Sampler(&'a CoreSampler),
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

/// Tokens (int64) and log-probabilities (float64) of shape `rows_shape`; NumPy scalars for 1-D
/// logits.
fn sample_impl<'py>(
    py: Python<'py>,
    logits: (FloatArray<'py>, Vec<usize>, usize),
    params: &SamplingParams,
    draw: Draw<'_>,
    return_logprobs: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let (xa, rows_shape, vocab) = logits;
    let rows: usize = rows_shape.iter().product();
    let n = xa.size();
    let (data, dtype) = (Raw(xa.data), xa.dtype);
    let mut tokens = vec![0i64; rows];
    let mut logprobs = vec![0.0f64; if return_logprobs { rows } else { 0 }];
    py.detach(|| {
        let lp = return_logprobs.then_some(&mut logprobs[..]);
        // SAFETY: `data` is a live C-contiguous array of `n` elements of `dtype`, which nothing
        // writes while the call runs (the caller holds a reference to it).
        unsafe {
            match dtype {
                Dtype::F32 => run::<f32>(data.get(), n, vocab, params, &draw, &mut tokens, lp),
                Dtype::F64 => run::<f64>(data.get(), n, vocab, params, &draw, &mut tokens, lp),
                Dtype::F16 => {
                    run::<half::f16>(data.get(), n, vocab, params, &draw, &mut tokens, lp)
                }
            }
        }
    })
    .map_err(to_py_err)?;
    let tok = shaped(py, tokens, &rows_shape)?;
    if !return_logprobs {
        return Ok(tok);
    }
    let lp = shaped(py, logprobs, &rows_shape)?;
    Ok(PyTuple::new(py, [tok, lp])?.into_any())
}

/// # Safety
/// `data` points to `n` readable elements of `T` that nothing writes during the call.
unsafe fn run<T: crate::Float>(
    data: *const T,
    n: usize,
    vocab: usize,
    params: &SamplingParams,
    draw: &Draw<'_>,
    tokens: &mut [i64],
    logprobs: Option<&mut [f64]>,
) -> crate::Result<()> {
    let x = if n == 0 {
        &[][..]
    } else {
        std::slice::from_raw_parts(data, n)
    };
    match draw {
        Draw::Seed(seed) => crate::sample_rows(x, vocab, params, seed, tokens, logprobs),
        Draw::Sampler(s) => s.sample_rows(x, vocab, tokens, logprobs),
    }
}

/// Draws one token per row of logits: temperature, then top-k, top-p and min-p, then one draw.
///
/// Parameters
/// ----------
/// logits : array_like, shape (..., V)
///     Logits with the vocabulary on the last axis, ``V >= 1``. float16, float32 and float64
///     are read as they are (float16 computed in float32); integers and bool become float64.
/// temperature : float or array_like, default 1.0
///     ``T >= 0``, finite. ``0`` is greedy: the largest logit, the lowest id among equal ones.
/// top_k : int or array_like of int, default 0
///     Keep the ``k`` largest logits (lower ids first among equal ones); ``0`` or ``k >= V``
///     disables it.
/// top_p : float or array_like, default 1.0
///     In [0, 1]. Keep the shortest prefix of the remaining tokens, by probability
///     (renormalised; lower ids first among equal ones), whose cumulative probability is
///     ``>= top_p``; ``1`` disables it, ``0`` is greedy.
/// min_p : float or array_like, default 0.0
///     In [0, 1]. Keep the tokens whose probability is ``>= min_p`` times the largest; ``0``
///     disables it.
/// seed : None, int or array_like of int, default None
///     ``None`` draws fresh entropy from the OS. An int ``s >= 0``: row ``i`` draws from a
///     stream determined by ``(s, i)``. An array of one seed per row: a row's token depends
///     only on its logits, its parameters and its seed.
/// return_logprobs : bool, default False
///     Also return each chosen token's natural-log probability under the distribution it was
///     drawn from (after temperature and filters), as float64.
///
/// Each of ``temperature``, ``top_k``, ``top_p``, ``min_p`` is a scalar or an array of shape
/// ``logits.shape[:-1]`` (one value per row).
///
/// Returns
/// -------
/// tokens : numpy.int64 or ndarray of int64, shape ``logits.shape[:-1]``
///     A NumPy scalar for 1-D logits.
/// logprobs : numpy.float64 or ndarray of float64
///     Only with ``return_logprobs=True``: ``(tokens, logprobs)``.
///
/// Raises
/// ------
/// ValueError
///     For a bad parameter value (the message names it and the value), a per-row array of the
///     wrong shape, 0-d logits or ``V = 0``, and a row holding NaN or ``+inf`` or no finite
///     logit (the message gives the row index). Nothing is drawn for a call that raises.
///
/// Examples
/// --------
/// >>> import logitkit
/// >>> int(logitkit.sample([0.0, 3.0, 1.0], temperature=0.0))
/// 1
/// >>> tokens = logitkit.sample([[0.0, 9.0], [9.0, 0.0]], top_k=1, seed=0)
/// >>> tokens.tolist()
/// [1, 0]
#[pyfunction]
#[pyo3(
    signature = (logits, *, temperature=None, top_k=None, top_p=None, min_p=None, seed=None, return_logprobs=false),
    text_signature = "(logits, *, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=None, return_logprobs=False)"
)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn sample<'py>(
    py: Python<'py>,
    logits: &Bound<'py, PyAny>,
    temperature: Option<&Bound<'py, PyAny>>,
    top_k: Option<&Bound<'py, PyAny>>,
    top_p: Option<&Bound<'py, PyAny>>,
    min_p: Option<&Bound<'py, PyAny>>,
    seed: Option<&Bound<'py, PyAny>>,
    #[pyo3(from_py_with = super::arrays::return_logprobs_arg)] return_logprobs: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let prepared = logits_array(py, logits)?;
    let params = params(py, temperature, top_k, top_p, min_p, Some(&prepared.1))?;
    let seed = seed_param(py, seed, Some(&prepared.1))?;
    sample_impl(py, prepared, &params, Draw::Seed(&seed), return_logprobs)
}

/// The logits that :func:`sample` draws from.
///
/// Parameters
/// ----------
/// logits : array_like, shape (..., V)
///     As for :func:`sample`.
/// temperature, top_k, top_p, min_p
///     As for :func:`sample`.
///
/// Returns
/// -------
/// ndarray
///     Same shape and float dtype as the logits (integers and bool give float64): each kept
///     token's logit divided by the temperature, every removed token ``-inf``. For
///     ``temperature=0`` the greedy token keeps its logit unscaled. ``softmax`` of the result
///     is the distribution ``sample`` draws from.
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
#[pyfunction]
#[pyo3(
    signature = (logits, *, temperature=None, top_k=None, top_p=None, min_p=None),
    text_signature = "(logits, *, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0)"
)]
pub(crate) fn filter_logits<'py>(
    py: Python<'py>,
    logits: &Bound<'py, PyAny>,
    temperature: Option<&Bound<'py, PyAny>>,
    top_k: Option<&Bound<'py, PyAny>>,
    top_p: Option<&Bound<'py, PyAny>>,
    min_p: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let (xa, rows_shape, vocab) = logits_array(py, logits)?;
    let params = params(py, temperature, top_k, top_p, min_p, Some(&rows_shape))?;
    let n = xa.size();
    let out = xa.dtype.empty(py, &xa.shape);
    let dst = Raw(FloatArray::view(&out).expect("fresh array").data);
    let (src, dtype) = (Raw(xa.data), xa.dtype);
    py.detach(|| {
        // SAFETY: `src` is a live C-contiguous array of `n` elements of `dtype` that nothing
        // writes during the call; `dst` is a fresh C-contiguous array of the same shape and
        // dtype that nothing else sees yet.
        unsafe {
            match dtype {
                Dtype::F32 => filter::<f32>(src.get(), dst.get(), n, vocab, &params),
                Dtype::F64 => filter::<f64>(src.get(), dst.get(), n, vocab, &params),
                Dtype::F16 => filter::<half::f16>(src.get(), dst.get(), n, vocab, &params),
            }
        }
    })
    .map_err(to_py_err)?;
    Ok(out.into_any())
}

/// # Safety
/// `src` points to `n` readable and `dst` to `n` writable elements of `T`, not overlapping,
/// which nothing else accesses during the call.
unsafe fn filter<T: crate::Float>(
    src: *const T,
    dst: *mut T,
    n: usize,
    vocab: usize,
    params: &SamplingParams,
) -> crate::Result<()> {
    if n == 0 {
        return crate::filter_logits_rows::<T>(&[], vocab, params, &mut []);
    }
    let x = std::slice::from_raw_parts(src, n);
    let out = std::slice::from_raw_parts_mut(dst, n);
    crate::filter_logits_rows(x, vocab, params, out)
}

/// Sampling parameters and a seed: ``sampler(logits)`` draws as :func:`sample` would.
///
/// Parameters
/// ----------
/// temperature, top_k, top_p, min_p
///     As for :func:`sample`; per-row arrays must match ``logits.shape[:-1]`` at each call.
/// seed : None or int, default None
///     The ``n``-th call (counting from 0) draws from streams determined by ``(seed, n)``, so
///     two samplers with the same seed give the same sequence of tokens, and consecutive calls
///     are not copies of one another. ``None`` takes a seed from the OS. A call that raises
///     does not count.
///
/// Examples
/// --------
/// >>> import logitkit
/// >>> a = logitkit.Sampler(top_p=0.9, seed=7)
/// >>> b = logitkit.Sampler(top_p=0.9, seed=7)
/// >>> [int(a([0.0] * 100)) for _ in range(3)] == [int(b([0.0] * 100)) for _ in range(3)]
/// True
#[pyclass(module = "logitkit._native", frozen)]
pub(crate) struct Sampler {
    inner: CoreSampler,
    /// Per-row parameters' shapes, checked against `logits.shape[:-1]` at each call.
    shapes: Vec<(&'static str, Vec<usize>)>,
}

fn row_shape_of(py: Python<'_>, v: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<usize>>> {
    let Some(v) = v else { return Ok(None) };
    if !is_array_like(v) {
        return Ok(None);
    }
    let arr = as_ndarray(py, v)?;
    Ok((arr.ndim() > 0).then(|| arr.shape().to_vec()))
}

#[pymethods]
impl Sampler {
    #[new]
    #[pyo3(
        signature = (*, temperature=None, top_k=None, top_p=None, min_p=None, seed=None),
        text_signature = "(*, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=None)"
    )]
    fn new(
        py: Python<'_>,
        temperature: Option<&Bound<'_, PyAny>>,
        top_k: Option<&Bound<'_, PyAny>>,
        top_p: Option<&Bound<'_, PyAny>>,
        min_p: Option<&Bound<'_, PyAny>>,
        seed: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Sampler> {
        let params = params(py, temperature, top_k, top_p, min_p, None)?;
        let mut shapes = Vec::new();
        for (name, v) in [
            ("temperature", temperature),
            ("top_k", top_k),
            ("top_p", top_p),
            ("min_p", min_p),
        ] {
            if let Some(s) = row_shape_of(py, v)? {
                shapes.push((name, s));
            }
        }
        let seed = match seed_param(py, seed, None)? {
            Seed::Fixed(s) => Some(s),
            _ => None,
        };
        let inner = CoreSampler::new(params, seed).map_err(to_py_err)?;
        Ok(Sampler { inner, shapes })
    }

    /// Draws one token per row, as :func:`sample` with this sampler's parameters and the
    /// streams of its next call.
    #[pyo3(signature = (logits, *, return_logprobs=false))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        logits: &Bound<'py, PyAny>,
        #[pyo3(from_py_with = super::arrays::return_logprobs_arg)] return_logprobs: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let prepared = logits_array(py, logits)?;
        let rows_shape = &prepared.1;
        for (name, s) in &self.shapes {
            if s != rows_shape {
                return Err(PyValueError::new_err(format!(
                    "{name} has shape {}, expected a scalar or shape {} (one value per row of logits)",
                    shape_str(s),
                    shape_str(rows_shape)
                )));
            }
        }
        sample_impl(
            py,
            prepared,
            self.inner.params(),
            Draw::Sampler(&self.inner),
            return_logprobs,
        )
    }

    /// The seed (the one taken from the OS when constructed without one).
    #[getter]
    fn seed(&self) -> u64 {
        self.inner.seed()
    }

    /// The number of successful calls so far: the index of the next call.
    #[getter]
    fn calls(&self) -> u64 {
        self.inner.calls()
    }

    fn __repr__(&self) -> String {
        let p = self.inner.params();
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
            self.inner.seed()
        )
    }
}
