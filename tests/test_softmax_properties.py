"""Property tests (hypothesis) for softmax, log_softmax and logsumexp: S1-S8 over random shapes
(0-size and 1-element included), dtypes, axes, strides, magnitudes and temperatures, against a
longdouble NumPy reference.
"""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import logitkit as lk
from conftest import assert_logs_close, assert_probs_close, ref_logsumexp, ref_map

SETTINGS = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

DTYPES = [np.float16, np.float32, np.float64]
SCALES = {
    np.float16: [1.0, 8.0, 1000.0, 30000.0],
    np.float32: [1.0, 30.0, 1e4, 1e20, 1e38],
    np.float64: [1.0, 30.0, 1e4, 1e100, 1e300, 8e307, 1.7e308],
}


@st.composite
def arrays(draw, max_dims=4, max_side=6, nonfinite=True, dtypes=DTYPES):
    """A float array of a random dtype, shape and layout (steps, reversal, transposition)."""
    dtype = draw(st.sampled_from(dtypes))
    ndim = draw(st.integers(0, max_dims))
    shape = tuple(draw(st.integers(0, max_side)) for _ in range(ndim))
    steps = [draw(st.sampled_from([1, 1, 2, -1, -2, 3])) for _ in range(ndim)]
    base_shape = tuple(max(n * abs(s), 1) if n else 0 for n, s in zip(shape, steps))
    scale = draw(st.sampled_from(SCALES[dtype]))
    seed = draw(st.integers(0, 2**32 - 1))
    r = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["normal", "uniform", "ties", "spread"]))
    size = int(np.prod(base_shape)) if base_shape else 1
    if kind == "normal":
        vals = r.normal(size=size) / 4
    elif kind == "uniform":
        vals = r.uniform(-1, 1, size=size)
    elif kind == "ties":
        vals = r.integers(-2, 3, size=size) / 2.0
    else:
        vals = r.uniform(-1, 1, size=size) * 10.0 ** r.integers(-6, 1, size=size)
    # A scale near float64's maximum may overflow the product to +-inf; the clip brings it back
    # to the dtype's largest finite magnitude, as intended.
    with np.errstate(over="ignore"):
        scaled = vals * scale
    base = np.clip(scaled, -float(np.finfo(dtype).max), float(np.finfo(dtype).max))
    base = base.astype(dtype).reshape(base_shape)
    if nonfinite and size and draw(st.booleans()):
        k = draw(st.integers(1, max(1, size // 2)))
        idx = r.integers(0, size, size=k)
        fill = r.choice(np.array([-np.inf, -np.inf, -np.inf, np.inf, np.nan]), size=k)
        flat = base.reshape(-1)
        flat[idx] = fill.astype(dtype)
    view = base[tuple(slice(None, None, s) for s in steps)]
    view = view[tuple(slice(0, n) for n in shape)] if ndim else view
    if ndim > 1 and draw(st.booleans()):
        perm = draw(st.permutations(range(ndim)))
        view = view.transpose(perm)
    if ndim == 0:
        view = np.array(base.reshape(()))  # a writable 0-d ndarray, not a NumPy scalar
    return view


@st.composite
def axes_for(draw, ndim):
    if ndim == 0:
        return None
    return draw(st.one_of(st.none(), st.integers(-ndim, ndim - 1)))


@st.composite
def temperature_for(draw, shape, axis):
    kind = draw(st.sampled_from(["default", "scalar", "vector"] if axis is not None else
                                ["default", "scalar"]))
    if kind == "default":
        return 1.0
    if kind == "scalar":
        return draw(st.one_of(st.sampled_from([1e-3, 0.3, 1.0, 2.5, 1e3, 1e300, 1e308]),
                              st.floats(1e-3, 1e3)))
    outer = tuple(n for d, n in enumerate(shape) if d != axis % len(shape))
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).uniform(0.05, 20.0, size=outer)


@SETTINGS
@given(data=st.data())
def test_s1_to_s8_map_property(data):
    """S1-S8: softmax/log_softmax of random arrays (any layout) match the longdouble reference
    within the S8 bounds, keep dtype and shape, are C-contiguous, follow S6 for non-finite
    entries, and equal the result on a contiguous copy bitwise."""
    x = data.draw(arrays())
    axis = data.draw(axes_for(x.ndim))
    T = data.draw(temperature_for(x.shape, axis))
    for func in (lk.softmax, lk.log_softmax):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = func(x, axis=axis, temperature=T)
        assert got.shape == x.shape and got.dtype == x.dtype and got.flags.c_contiguous
        ref = ref_map(x, axis=axis, temperature=T, log=func is lk.log_softmax)
        if func is lk.softmax:
            assert_probs_close(got, ref, axis=axis)
        else:
            assert_logs_close(got, ref)
        twin = func(np.ascontiguousarray(x), axis=axis, temperature=T)
        np.testing.assert_array_equal(got, twin)


@SETTINGS
@given(data=st.data())
def test_s5_finite_input_never_nan_or_inf(data):
    """S5: for finite input of any magnitude and any valid temperature, softmax holds no NaN
    or inf, and log_softmax no NaN or +inf."""
    x = data.draw(arrays(nonfinite=False, max_dims=2, max_side=12))
    assume(x.size > 0)
    axis = data.draw(axes_for(x.ndim))
    T = data.draw(st.one_of(st.floats(1e-300, 1e300), st.sampled_from([1e-30, 1e-10, 1e10])))
    p = lk.softmax(x, axis=axis, temperature=T)
    assert np.all(np.isfinite(p))
    lp = lk.log_softmax(x, axis=axis, temperature=T)
    assert not np.isnan(lp).any() and not np.isposinf(lp).any()
    if axis is not None and x.ndim:
        s = p.astype(np.float64).sum(axis=axis)
        assert np.all(np.abs(s - 1) <= (1e-3 if x.dtype == np.float16 else 1e-6))
    assert np.all(np.isfinite(lk.logsumexp(x, axis=axis)))


@SETTINGS
@given(data=st.data())
def test_s2_s3_s6_s7_logsumexp_property(data):
    """S2/S3/S6/S7/S8: logsumexp of random arrays: shape with/without keepdims, dtype, the
    non-finite rules and accuracy."""
    x = data.draw(arrays())
    axis = data.draw(axes_for(x.ndim))
    keepdims = data.draw(st.booleans())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = lk.logsumexp(x, axis=axis, keepdims=keepdims)
    ref = ref_logsumexp(x, axis=axis, keepdims=keepdims)
    g = np.asarray(got)
    assert g.shape == ref.shape and g.dtype == x.dtype
    if g.shape == ():
        assert isinstance(got, np.generic)
    else:
        assert isinstance(got, np.ndarray)
    assert_logs_close(g, ref, "logsumexp")


@SETTINGS
@given(data=st.data())
def test_s3_out_and_in_place_property(data):
    """S3: out= (fresh, strided, or x itself) receives exactly the out-of-place result."""
    x = data.draw(arrays(max_dims=3))
    axis = data.draw(axes_for(x.ndim))
    T = data.draw(temperature_for(x.shape, axis))
    func = data.draw(st.sampled_from([lk.softmax, lk.log_softmax]))
    want = func(x, axis=axis, temperature=T)
    mode = data.draw(st.sampled_from(["fresh", "strided", "inplace"]))
    if mode == "fresh":
        out = np.empty(x.shape, dtype=x.dtype)
    elif mode == "strided":
        big = np.zeros(tuple(2 * n for n in x.shape), dtype=x.dtype)
        out = big[tuple(slice(None, None, -2) for _ in x.shape)] if x.ndim else big
    else:
        out = x
    r = func(x, axis=axis, temperature=T, out=out)
    assert r is out
    np.testing.assert_array_equal(out, want)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(16000, 70000),
    rows=st.integers(1, 3),
    dtype=st.sampled_from(DTYPES),
    std=st.sampled_from([0.5, 1.0, 6.0, 30.0]),
    T=st.sampled_from([1.0, 0.25, 4.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_s8_s9_long_vectors_property(n, rows, dtype, std, T, seed):
    """S8/S9: long vectors (several blocks, split across threads) meet the S8 bounds and give
    the same bits with 1 and 2 threads."""
    x = np.random.default_rng(seed).normal(scale=std, size=(rows, n)).astype(dtype)
    before = lk.get_num_threads()
    try:
        lk.set_num_threads(1)
        one = [lk.softmax(x, temperature=T), lk.log_softmax(x, temperature=T), lk.logsumexp(x)]
        lk.set_num_threads(2)
        two = [lk.softmax(x, temperature=T), lk.log_softmax(x, temperature=T), lk.logsumexp(x)]
    finally:
        lk.set_num_threads(before)
    for a, b in zip(one, two):
        assert a.tobytes() == b.tobytes()
    assert_probs_close(one[0], ref_map(x, temperature=T))
    assert_logs_close(one[1], ref_map(x, temperature=T, log=True))
    assert_logs_close(one[2], ref_logsumexp(x), "logsumexp")
