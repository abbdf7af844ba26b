//! `verify_draft` (contract V1-V4): arguments read as `sample` reads them (the same helpers:
//! logits adapted from torch/JAX/bfloat16, parameters scalar or per sequence, seeds), then one
//! call into the core with the GIL released. A child of the `sampling` bindings, whose
//! private helpers it uses.

use numpy::{PyArray, PyArrayDescrMethods, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::{
    abbreviate, as_ndarray, count_param, deliver, float_param, int_scalar, int_values,
    not_an_integer, repr, seed_param, shape_str, shown,
};
use crate::python::arrays::{detach_interruptible, dispatch, to_py_err, Dtype, FloatArray};
use crate::python::extras::adapt_input;
use crate::sampling::verify::{verify_draft_of, Grid};
use crate::sampling::{SamplingParams, Seed};
use crate::shared::SharedPtr;
use crate::Verified;

/// A float array argument (`target_logits`, `draft_probs`) of shape `(B, P, V)`, read as the
/// sampling functions read logits (P18): where it is when each row's `V` elements are
/// contiguous and the rows lie at non-negative strides (the last positions of a longer
/// sequence, `logits[:, -(K + 1):, :]`), else copied; with the function that takes results
/// back to its array type.
fn grid_arg<'py>(
    py: Python<'py>,
    name: &'static str,
    v: &Bound<'py, PyAny>,
    what: &str,
) -> PyResult<(GridSpan, FloatArray<'py>, Option<Bound<'py, PyAny>>)> {
    let (x, back) = adapt_input(py, v, name)?;
    let mut arr = FloatArray::coerce(py, &x, name)?;
    let shape: [usize; 3] = arr.shape.as_slice().try_into().map_err(|_| {
        PyValueError::new_err(format!(
            "{name} must have shape {what}, got shape {}",
            shape_str(&arr.shape)
        ))
    })?;
    if shape[2] == 0 {
        return Err(PyValueError::new_err(format!(
            "{name} must have a non-empty last axis (V >= 1), got shape {}",
            shape_str(&shape)
        )));
    }
    // A stride matters only along an axis longer than 1; a row's elements must be adjacent
    // (a stride of 1, or a single element).
    let used = |d: usize| if shape[d] > 1 { arr.strides[d] } else { 0 };
    let dense_rows = shape[2] == 1 || arr.strides[2] == 1;
    let strides = match (used(0), used(1)) {
        (b, p) if dense_rows && b >= 0 && p >= 0 => [b as usize, p as usize],
        _ => {
            arr = arr.copy(py)?;
            [shape[1] * shape[2], shape[2]]
        }
    };
    let span = if arr.size() == 0 {
        0
    } else {
        (shape[0] - 1) * strides[0] + (shape[1] - 1) * strides[1] + shape[2]
    };
    let grid = GridSpan {
        name,
        data: SharedPtr(arr.data),
        dtype: arr.dtype,
        shape,
        strides,
        span,
    };
    Ok((grid, arr, back))
}

/// Where the core reads a [`grid_arg`]: its first element, the elements from there to the
/// last row's end, its shape and the strides (in elements) of its first two axes.
struct GridSpan {
    name: &'static str,
    data: SharedPtr<u8>,
    dtype: Dtype,
    shape: [usize; 3],
    strides: [usize; 2],
    span: usize,
}

impl GridSpan {
    /// The grid as the core takes it.
    ///
    /// # Safety
    /// The array `self` was made of is alive, of element type `T`, and not written during
    /// `'a`.
    unsafe fn grid<'a, T>(&self) -> crate::Result<Grid<'a, T>> {
        let data = if self.span == 0 {
            &[]
        } else {
            // SAFETY: the `span` elements from `data` are the array's, readable, as the
            // contract says.
            unsafe { std::slice::from_raw_parts(self.data.typed::<T>(), self.span) }
        };
        Grid::strided(self.name, data, self.shape, self.strides)
    }
}

/// `draft_tokens`: an integer array of shape `(B, K)` (an empty one of any numeric dtype).
fn draft_tokens_arg(
    py: Python<'_>,
    v: &Bound<'_, PyAny>,
    vocab: usize,
) -> PyResult<(Vec<usize>, Vec<i64>)> {
    let arr = as_ndarray(py, v, "draft_tokens")?;
    let kind: char = arr.dtype().kind().into();
    let size: usize = arr.shape().iter().product();
    if kind == 'O' && arr.ndim() == 2 {
        // Python ints beyond int64 and uint64 (NumPy keeps them as objects): out of range,
        // named where they are (V4).
        let k = arr.shape()[1].max(1);
        for (i, item) in arr.call_method0("ravel")?.try_iter()?.enumerate() {
            let item = item?;
            if int_scalar(&item).is_ok() && (item.lt(0)? || item.ge(vocab)?) {
                return Err(to_py_err(crate::Error::InvalidSequence {
                    name: "draft_tokens",
                    row: i / k,
                    problem: format!(
                        "has token id {} at position {}, outside [0, {vocab})",
                        abbreviate(&shown(&item)),
                        i % k
                    ),
                }));
            }
        }
    }
    if !("iu".contains(kind) || (size == 0 && "fb".contains(kind))) {
        return Err(not_an_integer(
            py,
            format!(
                "draft_tokens must be integer token ids of shape (B, K), got {} (dtype {})",
                abbreviate(&repr(v)),
                arr.dtype()
            ),
        ));
    }
    if arr.ndim() != 2 {
        return Err(PyValueError::new_err(format!(
            "draft_tokens must have shape (B, K), got shape {}",
            shape_str(arr.shape())
        )));
    }
    let shape = arr.shape().to_vec();
    let ids = if size == 0 {
        Vec::new()
    } else {
        let wide = int_values(&arr)?;
        // An id beyond int64 (uint64 input) is named as it is, not as int64's bound (V4).
        let k = shape[1].max(1);
        if let Some((i, id)) = wide
            .iter()
            .enumerate()
            .find(|(_, &id)| i64::try_from(id).is_err())
        {
            return Err(to_py_err(crate::Error::InvalidSequence {
                name: "draft_tokens",
                row: i / k,
                problem: format!(
                    "has token id {id} at position {}, outside [0, {vocab})",
                    i % k
                ),
            }));
        }
        crate::scratch::collected(
            wide.len(),
            wide.into_iter().map(|i| i as i64),
            "draft tokens",
        )
        .map_err(to_py_err)?
    };
    Ok((shape, ids))
}

/// Verifies draft tokens against the target model's logits: chain rejection sampling for
/// speculative decoding (contract V1-V4).
///
/// Per sequence, with ``p_i`` the target's distribution at position ``i`` after temperature,
/// top-k, top-p and min-p (what :func:`sample` draws from) and ``q_i`` the draft's: the draft
/// token ``x`` at position ``i`` is accepted with probability ``min(1, p_i(x) / q_i(x))``; at
/// the first rejection a token drawn from ``max(p_i - q_i, 0)`` (renormalised) is emitted and
/// the sequence stops; when all ``K`` drafts are accepted a bonus token is drawn from ``p_K``.
/// Every emitted token is distributed exactly as the target would sample it (Leviathan et al.
/// 2023, Chen et al. 2023; the scheme of vLLM's and FlashInfer's rejection samplers). At
/// ``temperature=0`` the rule is greedy: drafts are accepted while they equal the target's
/// argmax, and the argmax is emitted at the first mismatch (and as the bonus).
///
/// Parameters
/// ----------
/// target_logits : array_like, shape (B, K + 1, V)
///     The target model's logits at the ``K`` draft positions and one past them. Any float
///     dtype (float16 and bfloat16 processed in float32), CPU torch tensors, JAX arrays.
/// draft_tokens : array_like of int, shape (B, K)
///     The draft tokens, ids in ``[0, V)``. ``K = 0`` is allowed (only the bonus token).
/// draft_probs : array_like, shape (B, K, V), optional
///     The distributions the drafts were drawn from, used as given (not renormalised): finite,
///     ``>= 0``, and not 0 at the drafted token. ``None`` (n-gram or greedy drafting): each
///     draft is a point mass, accepted with probability ``p_i(x)``; the residual is then
///     ``p_i`` without ``x``.
/// temperature : float or array_like, default 1.0
///     As for :func:`sample`; one value per sequence (shape ``(B,)``) or for all.
/// top_k : int or array_like of int, default 0
///     As for :func:`sample`, scalar or shape ``(B,)``.
/// top_p : float or array_like, default 1.0
///     As for :func:`sample`, scalar or shape ``(B,)``.
/// min_p : float or array_like, default 0.0
///     As for :func:`sample`, scalar or shape ``(B,)``.
/// seed : None, int or array_like of int, default None
///     ``None`` draws fresh entropy. An int ``s``: sequence ``b`` draws from a stream
///     determined by ``(s, b)``; one seed per sequence (shape ``(B,)``): a sequence's result
///     depends only on its own inputs and seed, not on its batch. Sequence ``b`` takes ``K + 1``
///     uniforms from its stream: ``u_i`` decides the draft at position ``i`` (accepted when
///     ``u_i * q_i(x) < p_i(x)``) and ``u_K`` draws the emitted token by the inverse CDF in
///     token order. The streams differ from :func:`sample`'s for the same seed. Results never
///     depend on the thread count.
///
/// Returns
/// -------
/// tokens : ndarray of int64, shape (B, K + 1)
///     Each sequence's emitted tokens (its accepted drafts, then the residual's or the bonus
///     token), followed by -1.
/// num_tokens : ndarray of int64, shape (B,)
///     How many tokens each sequence emitted, from 1 to ``K + 1``.
///
/// For torch or JAX ``target_logits`` both come back as torch tensors or JAX arrays.
///
/// Raises
/// ------
/// ValueError
///     For shapes that do not fit together, a draft token outside ``[0, V)``, a draft
///     probability that is negative or not finite or 0 at its drafted token, a target row with
///     NaN, ``+inf`` or no finite logit, and bad parameter values; the message names the
///     argument and the sequence (row). Every position is checked, whatever is accepted, and
///     nothing is drawn for a call that raises.
/// TypeError
///     For a parameter of the wrong type.
///
/// Examples
/// --------
/// >>> import numpy as np, logitkit
/// >>> target = np.log(np.array([[[0.1, 0.8, 0.1],    # position 0: token 1 likely
/// ...                            [0.1, 0.1, 0.8],    # position 1: token 2
/// ...                            [0.8, 0.1, 0.1]]])) # one past: token 0
/// >>> tokens, n = logitkit.verify_draft(target, [[1, 0]], temperature=0.0)
/// >>> tokens.tolist(), n.tolist()   # 1 accepted, 0 rejected: the target's 2 emitted
/// ([[1, 2, -1]], [2])
/// >>> tokens, n = logitkit.verify_draft(target, [[1, 2]], draft_probs=np.exp(target[:, :2]),
/// ...                                   seed=0)
/// >>> tokens.tolist()[0][:2], n.tolist()   # q equal to p: always accepted, plus a bonus
/// ([1, 2], [3])
#[pyfunction]
#[pyo3(
    signature = (target_logits, draft_tokens, *, draft_probs=None, temperature=None, top_k=None,
                 top_p=None, min_p=None, seed=None),
    text_signature = "(target_logits, draft_tokens, *, draft_probs=None, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=None)"
)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn verify_draft<'py>(
    py: Python<'py>,
    target_logits: &Bound<'py, PyAny>,
    draft_tokens: &Bound<'py, PyAny>,
    draft_probs: Option<&Bound<'py, PyAny>>,
    temperature: Option<Bound<'py, PyAny>>,
    top_k: Option<Bound<'py, PyAny>>,
    top_p: Option<Bound<'py, PyAny>>,
    min_p: Option<Bound<'py, PyAny>>,
    seed: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let (x, _x_alive, back) = grid_arg(py, "target_logits", target_logits, "(B, K + 1, V)")?;
    let [b, k1, vocab] = x.shape;
    if k1 == 0 {
        return Err(PyValueError::new_err(format!(
            "target_logits must have shape (B, K + 1, V) with K + 1 >= 1 positions, got shape {}",
            shape_str(&x.shape)
        )));
    }
    let k = k1 - 1;
    let (tshape, ids) = draft_tokens_arg(py, draft_tokens, vocab)?;
    if tshape != [b, k] {
        return Err(PyValueError::new_err(format!(
            "draft_tokens has shape {}, expected {} to go with target_logits of shape {}",
            shape_str(&tshape),
            shape_str(&[b, k]),
            shape_str(&x.shape)
        )));
    }
    let q = match draft_probs.filter(|v| !v.is_none()) {
        None => None,
        Some(v) => {
            let (q, q_alive, _) = grid_arg(py, "draft_probs", v, "(B, K, V)")?;
            if q.shape != [b, k, vocab] {
                return Err(PyValueError::new_err(format!(
                    "draft_probs has shape {}, expected {} to go with target_logits of shape {}",
                    shape_str(&q.shape),
                    shape_str(&[b, k, vocab]),
                    shape_str(&x.shape)
                )));
            }
            Some((q, q_alive))
        }
    };
    let rows = [b];
    let rs = Some(&rows[..]);
    let params = SamplingParams {
        temperature: float_param(py, "temperature", temperature.as_ref(), 1.0, rs)?,
        top_k: count_param(py, "top_k", top_k.as_ref(), rs)?,
        top_p: float_param(py, "top_p", top_p.as_ref(), 1.0, rs)?,
        min_p: float_param(py, "min_p", min_p.as_ref(), 0.0, rs)?,
        ..SamplingParams::default()
    };
    let seed = seed_param(py, seed, rs)?;
    let qs = q.as_ref().map(|(q, _)| q);
    let r = detach_interruptible(py, || {
        // SAFETY: both grids are of arrays of their dtype kept alive by this function during
        // the call (`_x_alive`, `q_alive`).
        unsafe { run(&x, qs, &ids, &params, &seed) }
    })?;
    let tokens = PyArray::from_vec(py, r.tokens).reshape(vec![b, k1])?;
    let num = PyArray::from_vec(py, r.num_tokens);
    let tokens = deliver(py, tokens.into_any(), back.as_ref(), false)?;
    let num = deliver(py, num.into_any(), back.as_ref(), false)?;
    PyTuple::new(py, [tokens, num])
}

/// Dispatches on the two dtypes.
///
/// # Safety
/// Each grid is of a live array of its dtype, not written during the call.
unsafe fn run(
    x: &GridSpan,
    q: Option<&GridSpan>,
    ids: &[i64],
    params: &SamplingParams,
    seed: &Seed,
) -> crate::Result<Verified> {
    dispatch!(x.dtype, X => {
        // SAFETY: as the function's contract says.
        let xs = unsafe { x.grid::<X>()? };
        match q {
            None => verify_draft_of::<X, f32>(xs, ids, None, params, seed),
            Some(q) => dispatch!(q.dtype, Q => {
                // SAFETY: as the function's contract says.
                let qs = unsafe { q.grid::<Q>()? };
                verify_draft_of(xs, ids, Some(qs), params, seed)
            }),
        }
    })
}

/// The uniforms ``verify_draft`` uses with ``seed`` for ``batch`` sequences of ``k`` drafts:
/// a float64 array ``(batch, k + 1)`` (for reproducing a call in a reference implementation).
///
/// Examples
/// --------
/// >>> import logitkit._native as n
/// >>> n._verify_draft_uniforms(0, 2, 3).shape
/// (2, 4)
#[pyfunction]
#[pyo3(signature = (seed, batch, k))]
pub(crate) fn _verify_draft_uniforms<'py>(
    py: Python<'py>,
    seed: &Bound<'py, PyAny>,
    batch: &Bound<'py, PyAny>,
    k: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    // Counts named in their errors (R7), not pyo3's OverflowError.
    let count = |name: &str, v: &Bound<'py, PyAny>| -> PyResult<usize> {
        let msg = |shown: String| format!("{name} must be an integer >= 0, got {shown}");
        let i = int_scalar(v).map_err(|_| not_an_integer(py, msg(repr(v))))?;
        usize::try_from(i)
            .ok()
            .filter(|&n| n < usize::MAX)
            .ok_or_else(|| PyValueError::new_err(msg(abbreviate(&shown(v)))))
    };
    let (batch, k) = (count("batch", batch)?, count("k", k)?);
    let rows = [batch];
    let seed = seed_param(py, Some(seed), Some(&rows[..]))?;
    let u = crate::verify_draft_uniforms(&seed, batch, k).map_err(to_py_err)?;
    Ok(PyArray::from_vec(py, u)
        .reshape(vec![batch, k + 1])?
        .into_any())
}
