"""Contract S13 (results in the input's array type) and the array adapters that P18 reuses.

torch CPU tensors in -> torch tensors out, JAX arrays in -> JAX arrays out, NumPy for NumPy
arrays, lists, scalars and any other object read through ``__array__`` or DLPack; dtypes as
S1 (bfloat16 computed in float32 and rounded once); 0-d results stay 0-d. Each group skips when
its package (torch, jax, ml_dtypes) is not installed.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import logitkit
from conftest import DLPackOnly
from logitkit._coerce import Back, adapt
from logitkit.calibration import calibration_bins, expected_calibration_error, fit_temperature
from logitkit.loss import cross_entropy
from logitkit.ops import sigmoid, sparsemax, topk


def rng(seed=0):
    return np.random.default_rng(seed)


def logits_labels(n=4, c=5, dtype=np.float32, seed=0):
    r = rng(seed)
    return (r.normal(size=(n, c)) * 3).astype(dtype), r.integers(0, c, size=n)


def labels_for(x):
    return np.array([0, 1, 2, 3])  # every input of FUNCS has shape (4, 5)


# Each entry: name, f(x) -> result (one array, or a tuple of arrays for topk).
FUNCS = [
    ("softmax", lambda x: logitkit.softmax(x)),
    ("softmax_axis0_T", lambda x: logitkit.softmax(x, axis=0, temperature=0.7)),
    ("log_softmax", lambda x: logitkit.log_softmax(x)),
    ("logsumexp", lambda x: logitkit.logsumexp(x)),
    ("logsumexp_keepdims", lambda x: logitkit.logsumexp(x, axis=0, keepdims=True)),
    ("logsumexp_none", lambda x: logitkit.logsumexp(x, axis=None)),  # 0-d
    ("sigmoid", lambda x: sigmoid(x)),
    ("sparsemax", lambda x: sparsemax(x)),
    ("topk", lambda x: topk(x, 2)),
    ("cross_entropy_mean", lambda x: cross_entropy(x, labels_for(x))),  # 0-d
    ("cross_entropy_none", lambda x: cross_entropy(x, labels_for(x), reduction="none")),
]
FUNC_IDS = [name for name, _ in FUNCS]


def as_tuple(r):
    return r if isinstance(r, tuple) else (r,)


# --------------------------------------------------------------------------------------------
# NumPy, lists, scalars and other array producers: NumPy out (S13)
# --------------------------------------------------------------------------------------------


class ArrayOnly:
    """An object read through ``__array__`` only."""

    def __init__(self, a):
        self._a = a

    def __array__(self, dtype=None, copy=None):
        return self._a if dtype is None else self._a.astype(dtype)


@pytest.mark.parametrize("name,f", FUNCS, ids=FUNC_IDS)
@pytest.mark.parametrize("wrap", [list, ArrayOnly, DLPackOnly], ids=["list", "array", "dlpack"])
def test_s13_numpy_out_for_lists_and_other_producers(name, f, wrap):
    x, _ = logits_labels(dtype=np.float64)
    want = as_tuple(f(x))
    got = as_tuple(f(wrap(x.tolist() if wrap is list else x)))
    for g, w in zip(got, want):
        assert isinstance(g, (np.ndarray, np.generic)), type(g)
        assert g.dtype == w.dtype and np.shape(g) == np.shape(w)
        np.testing.assert_array_equal(g, w)


def test_s13_numpy_scalars_and_0d():
    assert isinstance(logitkit.logsumexp([1.0, 2.0]), np.float64)
    r = logitkit.softmax(np.float32(3.0), axis=None)
    assert isinstance(r, np.ndarray) and r.shape == () and r.dtype == np.float32
    assert logitkit.softmax(2, axis=None).dtype == np.float64


def test_s13_adapt_leaves_numpy_and_lists_alone():
    a = np.ones(3, np.float32)
    assert adapt(a) == (a, None)
    lst = [1.0, 2.0]
    assert adapt(lst) == (lst, None)
    arr, back = adapt(ArrayOnly(a))
    assert arr is a and back is None


# --------------------------------------------------------------------------------------------
# torch
# --------------------------------------------------------------------------------------------

TORCH_DTYPES = ["float32", "float64", "float16", "bfloat16", "int64", "int32", "bool"]


def torch_result_dtype(torch, dtype_name):
    return {
        "float32": torch.float32,
        "float64": torch.float64,
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
    }.get(dtype_name, torch.float64)


@pytest.mark.parametrize("dtype_name", TORCH_DTYPES)
@pytest.mark.parametrize("name,f", FUNCS, ids=FUNC_IDS)
def test_s13_torch_in_torch_out(name, f, dtype_name):
    torch = pytest.importorskip("torch")
    x, _ = logits_labels(n=4, c=5, dtype=np.float32, seed=1)
    if dtype_name == "bool":
        t = torch.from_numpy(x > 0)
    elif dtype_name.startswith("int"):
        t = torch.from_numpy(np.round(x)).to(getattr(torch, dtype_name))
    else:
        t = torch.from_numpy(x).to(getattr(torch, dtype_name))
    got = as_tuple(f(t))
    # The NumPy path on the same values (bfloat16: on the exact float32 values).
    ref_in = t.float().numpy() if dtype_name == "bfloat16" else t.numpy()
    want = as_tuple(f(ref_in))
    for i, (g, w) in enumerate(zip(got, want)):
        assert isinstance(g, torch.Tensor), (name, type(g))
        assert g.device.type == "cpu" and not g.requires_grad
        assert tuple(g.shape) == np.shape(w)  # 0-d stays 0-d
        if name == "topk" and i == 1:
            assert g.dtype == torch.int64  # indices
            np.testing.assert_array_equal(g.numpy(), w)
            continue
        assert g.dtype == torch_result_dtype(torch, dtype_name), (name, g.dtype)
        if dtype_name == "bfloat16":
            # Computed in float32, rounded once.
            want_bf16 = torch.from_numpy(np.asarray(w)).to(torch.bfloat16)
            assert torch.equal(g, want_bf16)
        else:
            np.testing.assert_array_equal(g.numpy(), w)


def test_s13_torch_0d_stays_0d():
    torch = pytest.importorskip("torch")
    v = torch.tensor([1.0, 2.0, 3.0])
    for t in (v, v.to(torch.bfloat16), v.double(), v.half()):
        r = logitkit.logsumexp(t, axis=None)
        assert isinstance(r, torch.Tensor) and r.shape == () and r.dtype == t.dtype
        r = logitkit.logsumexp(t)
        assert isinstance(r, torch.Tensor) and r.shape == ()
        r = logitkit.softmax(t[0], axis=None)  # 0-d input
        assert isinstance(r, torch.Tensor) and r.shape == () and float(r) == 1.0


def test_s13_torch_bfloat16_whatever_ml_dtypes(monkeypatch):
    torch = pytest.importorskip("torch")
    x = torch.randn(4, 6).to(torch.bfloat16)
    with_ml = logitkit.softmax(x)
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # import ml_dtypes -> ImportError
    without_ml = logitkit.softmax(x)
    for r in (with_ml, without_ml):
        assert isinstance(r, torch.Tensor) and r.dtype == torch.bfloat16
    assert torch.equal(with_ml, without_ml)
    lse = logitkit.logsumexp(x, axis=None)
    assert isinstance(lse, torch.Tensor) and lse.shape == () and lse.dtype == torch.bfloat16


def test_s13_torch_bfloat16_rounded_once_like_ml_dtypes():
    torch = pytest.importorskip("torch")
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = torch.from_numpy(rng(3).normal(size=(50, 33)).astype(np.float32) * 4).to(torch.bfloat16)
    x32 = x.float().numpy()
    for f in (logitkit.softmax, logitkit.log_softmax, sigmoid, sparsemax, logitkit.logsumexp):
        got = f(x).float().numpy()
        want = np.asarray(f(x32)).astype(ml_dtypes.bfloat16).astype(np.float32)
        np.testing.assert_array_equal(got, want)


def test_s13_torch_read_without_copy_grad_and_strides():
    torch = pytest.importorskip("torch")
    x, y = logits_labels(n=8, c=7, dtype=np.float32)
    t = torch.from_numpy(x.copy())
    a, back = adapt(t)
    assert isinstance(a, np.ndarray) and np.shares_memory(a, t.numpy())  # zero-copy read
    assert isinstance(back, Back) and back.kind == "torch" and not back.bfloat16
    tg = t.clone().requires_grad_(True)
    r = logitkit.softmax(tg)
    assert isinstance(r, torch.Tensor) and not r.requires_grad
    np.testing.assert_array_equal(r.numpy(), logitkit.softmax(x))
    for view, ref in [(t.T, x.T), (t[::2, 1:], x[::2, 1:]), (torch.nn.Parameter(t), x)]:
        np.testing.assert_array_equal(logitkit.log_softmax(view).detach().numpy(), logitkit.log_softmax(ref))
    assert torch.equal(
        logitkit.softmax(-t), torch.from_numpy(logitkit.softmax(-x))
    )


def test_s13_torch_calibration_returns_floats():
    torch = pytest.importorskip("torch")
    x, _ = logits_labels(n=30, c=4, dtype=np.float32)
    y = x.argmax(axis=1)
    y[::3] = (y[::3] + 1) % 4  # a finite best temperature
    p = logitkit.softmax(x)
    assert isinstance(fit_temperature(torch.from_numpy(x), torch.from_numpy(y)), float)
    assert fit_temperature(torch.from_numpy(x), y) == fit_temperature(x, y)
    assert expected_calibration_error(torch.from_numpy(p), y) == expected_calibration_error(p, y)
    for g, w in zip(calibration_bins(torch.from_numpy(p), y), calibration_bins(p, y)):
        assert isinstance(g, np.ndarray)
        np.testing.assert_array_equal(g, w)


def test_s13_torch_out():
    torch = pytest.importorskip("torch")
    x, _ = logits_labels(n=5, c=6, dtype=np.float32)
    t = torch.from_numpy(x.copy())
    want = logitkit.softmax(x)
    # An ndarray out (as before S13) is written and returned.
    o = np.empty_like(x)
    assert logitkit.softmax(t, out=o) is o
    np.testing.assert_array_equal(o, want)
    # A torch tensor out for torch input.
    ot = torch.empty(5, 6)
    assert logitkit.softmax(t, out=ot) is ot
    np.testing.assert_array_equal(ot.numpy(), want)
    # In place.
    ti = t.clone()
    assert logitkit.log_softmax(ti, out=ti) is ti
    np.testing.assert_array_equal(ti.numpy(), logitkit.log_softmax(x))
    # bfloat16: rounded once into a bfloat16 tensor.
    tb = t.to(torch.bfloat16)
    ob = torch.empty(5, 6, dtype=torch.bfloat16)
    assert logitkit.softmax(tb, out=ob) is ob
    assert torch.equal(ob, logitkit.softmax(tb))
    with pytest.raises(TypeError, match="dtype"):
        logitkit.softmax(tb, out=torch.empty(5, 6))
    with pytest.raises(TypeError, match="dtype"):
        logitkit.softmax(t, out=torch.empty(5, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        logitkit.softmax(t, out=torch.empty(6, 5))
    with pytest.raises(ValueError, match="grad"):
        logitkit.softmax(t, out=torch.empty(5, 6, requires_grad=True))


def test_s13_torch_on_another_device_is_refused():
    torch = pytest.importorskip("torch")
    t = torch.ones(3, device="meta")
    with pytest.raises(TypeError, match="CPU"):
        logitkit.softmax(t)


def test_p18_back_for_sampling_results():
    """The converters the sampling bindings reuse: int64 tokens stay int64, 0-d stays 0-d,
    float logprobs follow the input (bfloat16 rounded once), tuples element by element."""
    torch = pytest.importorskip("torch")
    _, back = adapt(torch.zeros(2, 5))
    tokens = np.array([3, 1], dtype=np.int64)
    logprobs = np.array([-0.5, -1.25], dtype=np.float32)
    tk, lp = back((tokens, logprobs))
    assert isinstance(tk, torch.Tensor) and tk.dtype == torch.int64 and tk.tolist() == [3, 1]
    assert isinstance(lp, torch.Tensor) and lp.dtype == torch.float32
    scalar = back(np.int64(4))
    assert isinstance(scalar, torch.Tensor) and scalar.shape == () and scalar.dtype == torch.int64
    _, back_bf16 = adapt(torch.zeros(2, 5, dtype=torch.bfloat16))
    assert back_bf16.bfloat16
    tk, lp = back_bf16((tokens, np.array([-0.1, 1 / 3], dtype=np.float32)))
    assert tk.dtype == torch.int64 and lp.dtype == torch.bfloat16
    assert torch.equal(lp, torch.tensor([-0.1, 1 / 3]).to(torch.bfloat16))
    # A read-only result is copied, not shared with a warning.
    ro = np.arange(3.0)
    ro.flags.writeable = False
    assert back(ro).tolist() == [0.0, 1.0, 2.0]


# --------------------------------------------------------------------------------------------
# JAX
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype_name", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("name,f", FUNCS, ids=FUNC_IDS)
def test_s13_jax_in_jax_out(name, f, dtype_name):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    x, _ = logits_labels(n=4, c=5, dtype=np.float32, seed=2)
    j = jnp.asarray(x).astype(getattr(jnp, dtype_name))
    got = as_tuple(f(j))
    ref_in = np.asarray(j.astype(jnp.float32)) if dtype_name == "bfloat16" else np.asarray(j)
    want = as_tuple(f(ref_in))
    for i, (g, w) in enumerate(zip(got, want)):
        assert isinstance(g, jax.Array), (name, type(g))
        assert g.shape == np.shape(w)  # 0-d stays 0-d
        if name == "topk" and i == 1:
            assert jnp.issubdtype(g.dtype, jnp.integer)  # int64, or int32 without x64
            np.testing.assert_array_equal(np.asarray(g), w)
            continue
        assert g.dtype == getattr(jnp, dtype_name), (name, g.dtype)
        w = np.asarray(w)
        if dtype_name == "bfloat16":
            w = w.astype(jnp.bfloat16)  # rounded once from the float32 result
        np.testing.assert_array_equal(np.asarray(g), w)


def test_s13_jax_0d_and_integers():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    r = logitkit.logsumexp(jnp.asarray([1.0, 2.0]), axis=None)
    assert isinstance(r, jax.Array) and r.shape == ()
    r = logitkit.softmax(jnp.asarray(3.0), axis=None)
    assert isinstance(r, jax.Array) and r.shape == () and float(r) == 1.0
    # Integers: computed in float64 (S1); JAX keeps float64 only with jax_enable_x64.
    r = logitkit.softmax(jnp.arange(4))
    assert isinstance(r, jax.Array) and jnp.issubdtype(r.dtype, jnp.floating)
    np.testing.assert_allclose(np.asarray(r), logitkit.softmax(np.arange(4)), rtol=1e-6)


def test_s13_jax_without_x64_gets_32_bit_integers_and_floats():
    """S13 as docs/behaviour.md states it: without jax_enable_x64 JAX holds no 64-bit types, so
    tokens and counts come back int32 and log-probabilities float32, with the values NumPy
    input gets."""
    jax = pytest.importorskip("jax")
    if jax.config.jax_enable_x64:
        pytest.skip("jax_enable_x64 is on")
    x = np.random.default_rng(2).normal(size=(3, 50)).astype(np.float32)
    tok, lp = logitkit.sample(jax.numpy.asarray(x), seed=4, return_logprobs=True)
    want_tok, want_lp = logitkit.sample(x, seed=4, return_logprobs=True)
    assert tok.dtype == jax.numpy.int32 and lp.dtype == jax.numpy.float32
    np.testing.assert_array_equal(np.asarray(tok), want_tok)
    np.testing.assert_array_equal(np.asarray(lp), want_lp.astype(np.float32))
    toks, n = logitkit.verify_draft(jax.numpy.asarray(x[:, None, :]), np.zeros((3, 0), np.int64), seed=1)
    assert toks.dtype == n.dtype == jax.numpy.int32 and np.asarray(n).tolist() == [1, 1, 1]


# --------------------------------------------------------------------------------------------
# ml_dtypes bfloat16 ndarrays: NumPy bfloat16 out
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,f", FUNCS, ids=FUNC_IDS)
def test_s13_ml_dtypes_bfloat16_numpy_out(name, f):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf16 = np.dtype(ml_dtypes.bfloat16)
    x, _ = logits_labels(n=4, c=5, dtype=np.float32, seed=4)
    xb = x.astype(bf16)
    got = as_tuple(f(xb))
    want = as_tuple(f(xb.astype(np.float32)))
    for i, (g, w) in enumerate(zip(got, want)):
        assert isinstance(g, (np.ndarray, np.generic)) and np.shape(g) == np.shape(w)
        assert isinstance(g, np.ndarray) == isinstance(w, np.ndarray)  # scalars stay scalars
        if name == "topk" and i == 1:
            assert g.dtype == np.int64
            np.testing.assert_array_equal(g, w)
            continue
        assert g.dtype == bf16
        np.testing.assert_array_equal(g, np.asarray(w).astype(bf16))


# P18: the sampling functions take every input the softmax family takes and give results back
# in the input's array type (tokens int64, logprobs float64, filtered logits in the input's
# dtype, bfloat16 included).


def test_p18_torch_sampling_results_are_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 40)).astype(np.float32)
    t = torch.from_numpy(x)
    kw = dict(temperature=0.7, top_k=10, repetition_penalty=1.2, prompt_tokens=[[1, 2]] * 3,
              seed=np.arange(3))
    tok = logitkit.sample(t, **kw)
    assert isinstance(tok, torch.Tensor) and tok.dtype == torch.int64
    assert tok.tolist() == logitkit.sample(x, **kw).tolist()
    out = logitkit.sample(t, top_logprobs=4, **kw)
    assert all(isinstance(a, torch.Tensor) for a in out)
    assert out.logprobs.dtype == torch.float64 and out.top_ids.shape == (3, 4)
    f = logitkit.filter_logits(t, top_k=5)
    assert isinstance(f, torch.Tensor) and f.dtype == torch.float32
    np.testing.assert_array_equal(f.numpy(), logitkit.filter_logits(x, top_k=5))
    lp, rank = logitkit.token_logprobs(t, torch.tensor([0, 1, 2]), return_ranks=True)
    assert isinstance(lp, torch.Tensor) and lp.dtype == torch.float32 and rank.dtype == torch.int64


def test_p18_torch_bfloat16_sampling_is_float32_processing_of_the_same_values():
    torch = pytest.importorskip("torch")
    t = torch.randn(2, 64, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    x32 = t.float().numpy()
    kw = dict(temperature=0.9, top_p=0.9, logit_bias={3: 1.5}, seed=[5, 6])
    assert logitkit.sample(t, **kw).tolist() == logitkit.sample(x32, **kw).tolist()
    f = logitkit.filter_logits(t, temperature=0.5, top_k=8)
    assert f.dtype == torch.bfloat16
    want = torch.from_numpy(logitkit.filter_logits(x32, temperature=0.5, top_k=8)).to(torch.bfloat16)
    assert torch.equal(f, want)
    # 1-D logits: a 0-d token tensor.
    tok = logitkit.sample(t[0], temperature=0.0)
    assert isinstance(tok, torch.Tensor) and tok.shape == () and int(tok) == int(x32[0].argmax())


def test_p18_sampler_with_torch_logits():
    torch = pytest.importorskip("torch")
    s = logitkit.Sampler(temperature=0.0, repetition_penalty=3.0, seed=0)
    x = torch.tensor([[2.0, 1.9, 0.0]])
    toks = [int(s(x)[0]) for _ in range(2)]
    assert toks == [0, 1]
    assert [o.tolist() for o in s.output_tokens] == [[0, 1]]


def test_p18_jax_sampling_results_are_jax():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    x = np.random.default_rng(1).normal(size=(2, 30)).astype(np.float32)
    tok = logitkit.sample(jnp.asarray(x), temperature=0.0)
    assert isinstance(tok, jax.Array)
    assert tok.tolist() == x.argmax(axis=-1).tolist()
    f = logitkit.filter_logits(jnp.asarray(x), top_k=3)
    assert isinstance(f, jax.Array)
    np.testing.assert_array_equal(np.asarray(f), logitkit.filter_logits(x, top_k=3))


def test_s4_p2_per_row_parameters_as_torch_tensors_equal_numpy_arrays():
    # Per-vector temperatures (S4) and per-row sampling parameters and seeds (P2, P5) given as
    # CPU tensors are read as the NumPy arrays they convert to; wrong dtypes stay errors.
    torch = pytest.importorskip("torch")
    x = torch.tensor([[0.0, 1.0, 2.0], [3.0, 5.0, 4.0]])
    t = [1.0, 2.0]
    assert torch.equal(logitkit.softmax(x, temperature=torch.tensor(t)),
                       logitkit.softmax(x, temperature=np.array(t)))
    assert torch.equal(logitkit.log_softmax(x.T, axis=0, temperature=torch.tensor(t)),
                       logitkit.log_softmax(x.T, axis=0, temperature=np.array(t)))
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    kw = dict(temperature=[0.5, 1.0, 2.0], top_k=[1, 5, 0], min_p=[0.0, 0.1, 0.2], seed=[1, 2, 3])
    as_np = {k: np.array(v) for k, v in kw.items()}
    as_torch = {k: torch.tensor(v) for k, v in kw.items()}
    assert torch.equal(logitkit.sample(logits, **as_torch), logitkit.sample(logits, **as_np))
    assert torch.equal(logitkit.filter_logits(logits, **{k: v for k, v in as_torch.items() if k != "seed"}),
                       logitkit.filter_logits(logits, **{k: v for k, v in as_np.items() if k != "seed"}))
    with pytest.raises(TypeError, match="temperature"):
        logitkit.softmax(x, temperature=torch.tensor([True, False]))
    with pytest.raises(ValueError, match="top_k"):
        logitkit.sample(logits, top_k=torch.tensor([1.5, 2.0, 3.0]))


# --------------------------------------------------------------------------------------------
# Found by a review (2026-12-07, night): token ids, seeds and flags of other array libraries
# --------------------------------------------------------------------------------------------


def test_p17_p18_sampler_takes_torch_and_jax_token_ids_as_numpy_ones():
    """A Sampler's own torch output fed back to ``accept`` (and JAX ids, and (R, 1) tensors)
    was refused as "not integers"; torch/JAX prompts of shape (R, L) or lists of 1-D tensors
    were refused though ``sample`` took them."""
    torch = pytest.importorskip("torch")
    x = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    kw = dict(temperature=0.9, repetition_penalty=1.3, seed=5)

    def histories(s):
        return [h.tolist() for h in s.output_tokens]

    for prompts in (torch.tensor([[1, 2], [3, 4]]), [torch.tensor([1, 2]), torch.tensor([3, 4])]):
        s = logitkit.Sampler(prompt_tokens=prompts, **kw)
        ref = logitkit.Sampler(prompt_tokens=np.array([[1, 2], [3, 4]]), **kw)
        assert s(x).tolist() == ref(x).tolist()
    s = logitkit.Sampler(seed=0)
    tok = s(x)
    assert isinstance(tok, torch.Tensor)
    s.accept(tok)
    s.accept(torch.tensor([[5], [6]]))
    assert histories(s) == [[tok[0].item(), tok[0].item(), 5], [tok[1].item(), tok[1].item(), 6]]
    jnp = pytest.importorskip("jax.numpy")
    s.accept(jnp.array([7, 6]))
    assert [h[-1] for h in histories(s)] == [7, 6]
    js = logitkit.Sampler(prompt_tokens=jnp.array([[1, 2], [3, 4]]), **kw)
    assert np.asarray(js(np.asarray(x))).tolist() == logitkit.Sampler(
        prompt_tokens=[[1, 2], [3, 4]], **kw)(np.asarray(x)).tolist()


def test_p11_per_row_token_lists_of_torch_tensors_equal_numpy_ones():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).normal(size=(2, 8)).astype(np.float32)
    for name, torch_value, numpy_value in (
        ("allowed_token_ids", [torch.tensor([1, 2]), torch.tensor([3])], [np.array([1, 2]), np.array([3])]),
        ("bad_words", [torch.tensor([1]), torch.tensor([2, 5])], [[1], [2, 5]]),
        ("prompt_tokens", [torch.tensor([1, 1]), torch.tensor([4])], [[1, 1], [4]]),
    ):
        extra = dict(repetition_penalty=2.0) if name == "prompt_tokens" else {}
        got = logitkit.filter_logits(x, **{name: torch_value}, **extra)
        want = logitkit.filter_logits(x, **{name: numpy_value}, **extra)
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_p5_per_row_seeds_past_2_63_in_a_list():
    """NumPy reads ``[2**64 - 1, 0]`` as float64: such seed lists were refused as not integers."""
    x = np.zeros((2, 3), np.float32)
    for seeds in ([2**64 - 1, 0], [2**63, 1]):
        got = logitkit.sample(x, seed=seeds, return_logprobs=True)
        want = logitkit.sample(x, seed=np.array(seeds, np.uint64), return_logprobs=True)
        assert [a.tolist() for a in got] == [a.tolist() for a in want]
    tl = np.zeros((2, 3, 4), np.float32)
    got = logitkit.verify_draft(tl, np.zeros((2, 2), np.int64), seed=[2**64 - 1, 0])
    want = logitkit.verify_draft(tl, np.zeros((2, 2), np.int64), seed=np.array([2**64 - 1, 0], np.uint64))
    assert [a.tolist() for a in got] == [a.tolist() for a in want]
    with pytest.raises(ValueError, match=r"seed must be"):
        logitkit.sample(x, seed=[2**64, 0])
    with pytest.raises(ValueError, match=r"seed has shape \(3,\)"):
        logitkit.sample(x, seed=[2**63, 1, 2])


@pytest.mark.parametrize("call", [
    lambda: logitkit.sample(np.zeros((2, 3)), temperature=2**1024),
    lambda: logitkit.sample(np.zeros((2, 3)), top_p=2**1024),
    lambda: logitkit.filter_logits(np.zeros((2, 3)), min_p=-(2**1100)),
    lambda: logitkit.token_logprobs(np.zeros((2, 3)), [0, 1], temperature=2**1024),
    lambda: logitkit.Sampler(temperature=2**1024),
])
def test_r7_integers_too_large_for_a_float_are_out_of_range(call):
    """R7: out-of-range integers of any size are a ValueError (they were a TypeError in the
    sampling functions, a ValueError in softmax)."""
    with pytest.raises(ValueError, match="too large for a float"):
        call()


def test_r7_bad_words_of_bools_are_refused():
    with pytest.raises(TypeError, match="bad_words must hold integer token ids"):
        logitkit.filter_logits(np.zeros((1, 4)), bad_words=[[True]])
    with pytest.raises(TypeError, match="bad_words"):
        logitkit.filter_logits(np.zeros((1, 4)), bad_words=[[1, False]])


def test_r7_a_torch_bool_is_no_integer():
    """torch's 0-d ``tensor(True)`` has an ``__index__`` (1): it passed as axis, k and counts."""
    torch = pytest.importorskip("torch")
    t = torch.tensor(True)
    x = np.random.default_rng(2).normal(size=(2, 3))
    for call in (
        lambda: logitkit.softmax(x, axis=t),
        lambda: logitkit.logsumexp(x, axis=t),
        lambda: topk(x, t),
        lambda: logitkit.sample(x, top_logprobs=t, seed=0),
        lambda: cross_entropy(x, [0, 1], ignore_index=t),
        lambda: calibration_bins(logitkit.softmax(x), [0, 1], n_bins=t),
    ):
        with pytest.raises(TypeError):
            call()
    before = logitkit.get_num_threads()
    with pytest.raises(ValueError, match="n must be an integer"):
        logitkit.set_num_threads(t)
    assert logitkit.get_num_threads() == before


def test_s3_torch_out_with_a_lazy_sign():
    """A torch ``out=`` with its negative bit set (``c.conj().imag``) was refused blaming its
    dtype (float32) or raised torch's RuntimeError (bfloat16)."""
    torch = pytest.importorskip("torch")
    im = torch.randn(2, 3, dtype=torch.complex64).conj().imag
    assert im.is_neg()
    with pytest.raises(ValueError, match="negative or conjugate bit"):
        logitkit.softmax(torch.randn(2, 3), out=im)
    x = torch.randn(2, 3).bfloat16()
    out = torch.empty(2, 3, dtype=torch.bfloat16)._neg_view()
    got = logitkit.softmax(x, out=out)
    assert got is out
    assert torch.equal(out.resolve_neg(), logitkit.softmax(x))
