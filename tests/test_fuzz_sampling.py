"""Fuzzing the Python sampling API (hypothesis): sample, filter_logits, token_logprobs and
Sampler with random dtypes, shapes, strided views, hostile values and odd parameters.

Every call returns a valid result (token ids in [0, V), arrays of the documented shape and
dtype, finite kept values for filter_logits) or raises ValueError, TypeError or MemoryError:
never PanicException (R2), another exception type, a crash or a hang (R3, P7, P8, R7).

The default budget is small; ``LOGITKIT_FUZZ_EXAMPLES`` sets the examples per test (``make
fuzz`` runs many more).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import logitkit as lk

EXAMPLES = int(os.environ.get("LOGITKIT_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ALLOWED = (ValueError, TypeError, MemoryError)

try:
    import ml_dtypes

    BF16 = [np.dtype(ml_dtypes.bfloat16)]
except ImportError:  # the bfloat16 cases need ml_dtypes
    BF16 = []

DTYPES = [np.float16, np.float32, np.float64, np.int32, np.bool_] + BF16
HOSTILE = [np.nan, np.inf, -np.inf, 1e300, -1e300, 3.4e38, 65504.0, 5e-324, -0.0, 1e30]


@st.composite
def logits(draw):
    """A logits array: dtype, shape (0-3 dims, empty ones too), values (normal, ties,
    hostile), and a layout (C order, transposed, a stepped or reversed slice)."""
    dtype = draw(st.sampled_from(DTYPES))
    ndim = draw(st.integers(1, 3))
    shape = draw(st.lists(st.integers(0, 6), min_size=ndim, max_size=ndim))
    if draw(st.booleans()):
        shape[-1] = draw(st.sampled_from([1, 2, 64, 65, 300, 5000]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = int(np.prod(shape))
    kind = draw(st.sampled_from(["normal", "ties", "hostile", "huge"]))
    if kind == "normal":
        x = rng.normal(scale=3, size=n)
    elif kind == "ties":
        x = rng.integers(-1, 2, size=n).astype(np.float64)
    elif kind == "hostile":
        x = rng.normal(scale=3, size=n)
        hit = rng.random(n) < draw(st.sampled_from([0.01, 0.3, 1.0]))
        x[hit] = rng.choice(HOSTILE, size=int(hit.sum()))
    else:
        x = rng.choice([1e300, -1e300, 3e38, 6e4, 0.0], size=n) * (1 - rng.random(n) * 1e-3)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = x.reshape(shape).astype(dtype)
    layout = draw(st.sampled_from(["c", "transposed", "stepped", "reversed"]))
    if layout == "transposed" and ndim > 1:
        a = np.ascontiguousarray(a.swapaxes(0, -1)).swapaxes(0, -1)
    elif layout == "stepped":
        big = np.repeat(a, 2, axis=-1)
        a = big[..., ::2]
    elif layout == "reversed":
        a = np.ascontiguousarray(a[..., ::-1])[..., ::-1]
    return a


def scalar_or_rows(values, draw, rows_shape):
    """A parameter: one of ``values``, or an array of them per row (maybe of the wrong shape)."""
    if draw(st.integers(0, 4)) == 0:
        shape = rows_shape if draw(st.integers(0, 5)) else (len(rows_shape) and 7,)
        n = int(np.prod(shape)) if shape else 1
        return np.array([draw(st.sampled_from(values)) for _ in range(n)]).reshape(shape)
    return draw(st.sampled_from(values))


TEMPS = [1.0, 0.0, 0.7, 1e-4, 5e-324, 1e300, -1.0, np.nan, np.inf, True, 2**70]
TOPK = [0, 1, 2, 5, 50, 2**62, -1, 2**70, 1.5]
PROBS = [0.0, 1e-12, 0.05, 0.5, 0.9, 1.0, -0.1, 1.5, np.nan]


@st.composite
def sampling_kwargs(draw, rows_shape, vocab):
    kw = {}
    if draw(st.booleans()):
        kw["temperature"] = scalar_or_rows(TEMPS, draw, rows_shape)
    if draw(st.booleans()):
        kw["top_k"] = scalar_or_rows(TOPK, draw, rows_shape)
    if draw(st.booleans()):
        kw["top_p"] = scalar_or_rows(PROBS, draw, rows_shape)
    if draw(st.booleans()):
        kw["min_p"] = scalar_or_rows(PROBS, draw, rows_shape)
    if draw(st.integers(0, 4)) == 0:
        kw["logit_bias"] = {draw(st.integers(-1, vocab + 1)): draw(st.sampled_from([1.0, -np.inf, 1e30, np.nan]))}
    if draw(st.integers(0, 4)) == 0:
        kw["repetition_penalty"] = draw(st.sampled_from([1.3, 0.5, 0.0, 1e300]))
        rows = int(np.prod(rows_shape)) if rows_shape else 1
        ids = [[draw(st.integers(-1, vocab)) for _ in range(draw(st.integers(0, 3)))] for _ in range(rows)]
        kw["output_tokens"] = ids if rows_shape else ids[0]
    if draw(st.integers(0, 5)) == 0:
        kw["allowed_token_ids"] = [draw(st.integers(0, max(vocab - 1, 0))) for _ in range(draw(st.integers(0, 3)))]
    return kw


def _check(call, check_result):
    try:
        res = call()
    except ALLOWED:
        return
    except BaseException as e:  # PanicException derives from BaseException
        pytest.fail(f"{type(e).__module__}.{type(e).__name__}: {e}")
    check_result(res)


def _rows_vocab(x):
    return x.shape[:-1], x.shape[-1]


@FUZZ
@given(st.data())
def test_r3_fuzz_sample_gives_tokens_in_range_or_a_clean_error(data):
    """sample (with logprobs, top_logprobs and per-row seeds now and then): token ids in [0, V)
    of the rows' shape, or ValueError/TypeError/MemoryError."""
    x = data.draw(logits())
    rows_shape, vocab = _rows_vocab(x)
    kw = data.draw(sampling_kwargs(rows_shape, vocab))
    kw["seed"] = data.draw(st.sampled_from([0, 1, None, -1, 2**64, np.arange(max(int(np.prod(rows_shape)), 1))]))
    kw["return_logprobs"] = data.draw(st.booleans())
    kw["top_logprobs"] = data.draw(st.sampled_from([0, 0, 1, 3, vocab, vocab + 1]))

    def check(res):
        tok = res[0] if isinstance(res, tuple) else res
        tok = np.asarray(tok)
        assert tok.dtype == np.int64 and tok.shape == rows_shape
        assert ((tok >= 0) & (tok < vocab)).all(), tok
        if isinstance(res, tuple):
            lp = np.asarray(res[1], np.float64)
            assert not np.isnan(lp).any() and (lp <= 1e-9).all(), lp

    _check(lambda: lk.sample(x, **kw), check)


@FUZZ
@given(st.data())
def test_p7_fuzz_filter_logits_keeps_finite_values_or_gives_a_clean_error(data):
    """filter_logits: the logits' shape and float dtype, kept values finite (P7), every row
    keeping something; or ValueError/TypeError/MemoryError."""
    x = data.draw(logits())
    rows_shape, vocab = _rows_vocab(x)
    kw = data.draw(sampling_kwargs(rows_shape, vocab))

    def check(f):
        assert f.shape == x.shape
        if x.dtype.kind == "f" or x.dtype in BF16:
            assert f.dtype == x.dtype
        f64 = np.asarray(f, np.float64).reshape(-1, max(vocab, 1))
        assert not np.isnan(f64).any() and not (f64 == np.inf).any(), f64
        if f64.size:
            assert np.isfinite(f64).any(axis=-1).all(), f64

    _check(lambda: lk.filter_logits(x, **kw), check)


@FUZZ
@given(st.data())
def test_r3_fuzz_token_logprobs_gives_logprobs_or_a_clean_error(data):
    """token_logprobs (with ranks): results of the rows' shape, or a clean error."""
    x = data.draw(logits())
    rows_shape, vocab = _rows_vocab(x)
    ids = np.asarray(data.draw(st.sampled_from([0, vocab - 1, vocab, -1]))) + np.zeros(rows_shape, np.int64)
    if data.draw(st.integers(0, 5)) == 0:
        ids = ids.astype(np.float64)
    t = data.draw(st.sampled_from(TEMPS))

    def check(res):
        lp, ranks = res
        assert np.shape(lp) == rows_shape and np.shape(ranks) == rows_shape
        ranks = np.asarray(ranks)
        assert ((ranks >= 0) & (ranks <= vocab)).all(), ranks
        # A token's own logit counts towards its rank unless it is NaN (S6 makes that row NaN).
        chosen = np.take_along_axis(x.astype(np.float64), ids[..., None].astype(np.int64), -1)[..., 0]
        assert (ranks[~np.isnan(chosen)] >= 1).all(), ranks

    _check(lambda: lk.token_logprobs(x, ids, temperature=t, return_ranks=True), check)


@FUZZ
@given(st.data())
def test_r3_fuzz_sampler_draws_tokens_in_range_or_gives_a_clean_error(data):
    """Sampler: construction, two draws and an accept, each valid or a clean error."""
    x = data.draw(logits())
    rows_shape, vocab = _rows_vocab(x)
    kw = data.draw(sampling_kwargs(rows_shape, vocab))
    kw.pop("output_tokens", None)
    try:
        s = lk.Sampler(seed=data.draw(st.sampled_from([0, None, 7])), **kw)
    except ALLOWED:
        return

    def check(tok):
        tok = np.asarray(tok)
        assert tok.shape == rows_shape and ((tok >= 0) & (tok < vocab)).all(), tok

    _check(lambda: s(x), check)
    _check(lambda: s.accept(np.zeros(rows_shape, np.int64)), lambda _: None)
    _check(lambda: s(x, return_logprobs=True), lambda r: check(r[0]))
