"""Issue 6, beyond the kernels: ``logitkit.loss``, ``logitkit.calibration``, ``logitkit.ops``,
input adapters (torch, JAX, DLPack, bfloat16) and the Dask recipe.

References are float64/longdouble NumPy formulas written here from the definitions; PyTorch,
SciPy, ml_dtypes, JAX, Dask and matplotlib are used when installed (tests skip otherwise).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
from numpy.exceptions import AxisError

import logitkit
from conftest import DLPackOnly
from logitkit.calibration import (
    calibration_bins,
    expected_calibration_error,
    fit_temperature,
    reliability_diagram,
)
from logitkit.loss import cross_entropy
from logitkit.ops import sigmoid, sparsemax, topk

LD = np.longdouble
FLOATS = [np.float16, np.float32, np.float64]


def rng(seed=0):
    return np.random.default_rng(seed)


def logits_labels(n=200, c=7, seed=0, scale=3.0, dtype=np.float64):
    r = rng(seed)
    y = r.integers(0, c, n)
    x = r.normal(size=(n, c))
    x[np.arange(n), y] += 1.0
    return (x * scale).astype(dtype), y


# --------------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------------


def ref_ce(x, y, axis=-1, temperature=1.0, reduction="mean", label_smoothing=0.0, ignore_index=None):
    """PyTorch's cross_entropy formula in longdouble (finite input)."""
    x = np.moveaxis(np.asarray(x).astype(LD), axis, -1)
    t = np.asarray(temperature, dtype=np.float64).astype(LD)
    if t.ndim:
        t = t[..., None]
    z = x / t
    m = z.max(axis=-1, keepdims=True)
    lse = m[..., 0] + np.log(np.exp(z - m).sum(axis=-1))
    logp = z - lse[..., None]
    y = np.asarray(y)
    keep = np.ones(y.shape, bool) if ignore_index is None else y != ignore_index
    ys = np.where(keep, y, 0)
    nll = -np.take_along_axis(logp, ys[..., None], -1)[..., 0]
    smooth = -logp.mean(axis=-1)
    loss = (1 - label_smoothing) * nll + label_smoothing * smooth
    loss = np.where(keep, loss, 0)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / keep.sum()


def ref_nll(x, y, t):
    return float(ref_ce(x, y, temperature=t))


def ref_ece(p, y, n_bins=15):
    p = np.asarray(p, dtype=np.float64)
    conf = p.max(axis=-1)
    pred = p.argmax(axis=-1)  # lowest index on ties
    acc = pred == y
    edges = np.linspace(0, 1, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            ece += sel.mean() * abs(acc[sel].mean() - conf[sel].mean())
    return ece


def ref_topk(x, k, axis=-1):
    """Stable sort on (-value, index) with NaN first."""
    a = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    key = np.where(np.isnan(a), -np.inf, -a)
    nan_first = ~np.isnan(a)
    order = np.lexsort((key, nan_first), axis=-1)[..., :k]
    vals = np.take_along_axis(a, order, -1)
    return np.moveaxis(vals, -1, axis), np.moveaxis(order, -1, axis)


def ref_sparsemax(x, axis=-1):
    z = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    s = -np.sort(-z, axis=-1)
    cum = np.cumsum(s, axis=-1)
    k = np.arange(1, z.shape[-1] + 1)
    cond = 1 + k * s > cum
    kz = cond.sum(axis=-1, keepdims=True)
    tau = (np.take_along_axis(cum, kz - 1, -1) - 1) / kz
    return np.moveaxis(np.maximum(z - tau, 0), -1, axis)


def ref_sigmoid(x):
    a = np.asarray(x).astype(LD)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(a >= 0, 1 / (1 + np.exp(-a)), np.exp(a) / (1 + np.exp(a)))


def assert_f16_within_one_rounding(got, want64):
    """float16 results: within one float16 ulp of the exact value."""
    assert got.dtype == np.float16
    want = np.asarray(want64, dtype=np.float64)
    ulp = np.spacing(np.abs(want.astype(np.float16))).astype(np.float64)
    assert np.all(np.abs(got.astype(np.float64) - want) <= ulp)


# --------------------------------------------------------------------------------------------
# Public names
# --------------------------------------------------------------------------------------------


def test_top_level_namespace_unchanged_and_submodules_export():
    for name in ["cross_entropy", "topk", "sparsemax", "sigmoid", "fit_temperature"]:
        assert not hasattr(logitkit, name), name
    import logitkit.calibration as c
    import logitkit.loss as l
    import logitkit.ops as o

    assert l.__all__ == ["cross_entropy"]
    assert set(o.__all__) == {"topk", "sparsemax", "sigmoid"}
    assert {"fit_temperature", "expected_calibration_error"} <= set(c.__all__)


# --------------------------------------------------------------------------------------------
# cross_entropy
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_matches_reference(reduction, label_smoothing, dtype):
    x, y = logits_labels(dtype=dtype)
    got = cross_entropy(x, y, reduction=reduction, label_smoothing=label_smoothing)
    want = ref_ce(x, y, reduction=reduction, label_smoothing=label_smoothing)
    assert np.asarray(got).dtype == dtype
    assert np.shape(got) == np.shape(want)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    assert np.all(np.abs(np.asarray(got, LD) - want) <= tol * np.maximum(1, np.abs(want)))


def test_cross_entropy_ignore_index_and_temperature():
    x, y = logits_labels(n=50)
    y[::3] = -100
    temps = np.linspace(0.5, 2.0, 50)
    for t in [0.5, temps]:
        for ls in [0.0, 0.3]:
            got = cross_entropy(x, y, temperature=t, label_smoothing=ls, ignore_index=-100)
            want = ref_ce(x, y, temperature=t, label_smoothing=ls, ignore_index=-100)
            assert abs(got - want) <= 1e-13 * max(1, abs(want))
            per = cross_entropy(x, y, temperature=t, ignore_index=-100, reduction="none")
            assert np.all(per[::3] == 0)
    allign = np.full(4, 7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(cross_entropy(np.zeros((4, 3)), allign, ignore_index=7))


def test_cross_entropy_axis_and_strides():
    r = rng(2)
    x = r.normal(size=(5, 6, 4)) * 2  # (N, C, d): PyTorch's layout, class axis 1
    y = r.integers(0, 6, size=(5, 4))
    got = cross_entropy(x, y, axis=1, reduction="none")
    want = ref_ce(x, y, axis=1, reduction="none")
    np.testing.assert_allclose(got, want.astype(np.float64), rtol=1e-13, atol=1e-13)
    xt = np.asfortranarray(x)[:, ::-1]
    yt = y
    np.testing.assert_allclose(
        cross_entropy(xt, yt, axis=1, reduction="none"),
        ref_ce(xt, yt, axis=1, reduction="none").astype(np.float64),
        rtol=1e-13,
        atol=1e-13,
    )
    with pytest.raises(AxisError):
        cross_entropy(x, y, axis=3)
    # R7: None is of the wrong type for the class axis.
    with pytest.raises(TypeError, match="axis"):
        cross_entropy(x, y, axis=None)
    for f in (fit_temperature, expected_calibration_error, calibration_bins):
        with pytest.raises(TypeError, match="axis"):
            f(np.full((2, 3), 1 / 3), [0, 1], axis=None)


def test_cross_entropy_dtypes():
    x, y = logits_labels(n=30, c=5)
    want = ref_ce(x.astype(np.float16), y, reduction="none")
    got = cross_entropy(x.astype(np.float16), y, reduction="none")
    assert_f16_within_one_rounding(got, want)
    xi = np.round(x).astype(np.int32)
    assert cross_entropy(xi, y).dtype == np.float64
    assert np.isclose(cross_entropy(xi, y), ref_ce(xi, y), rtol=1e-13)
    for ydt in [np.int8, np.uint16, np.int64, np.uint64]:
        assert cross_entropy(x, y.astype(ydt)) == cross_entropy(x, y)
    assert np.isclose(cross_entropy(x.tolist(), y.tolist()), ref_ce(x, y), rtol=1e-13)


def test_cross_entropy_overflow_safe_and_nonfinite():
    x = np.float32([[3e38, -3e38], [3e38, -3e38], [np.nan, 0], [0, -np.inf], [0, -np.inf]])
    y = np.array([0, 1, 0, 1, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        per = cross_entropy(x, y, reduction="none")
    assert per[0] == 0 and np.isinf(per[1])  # 6e38 does not fit float32: rounds to inf
    assert np.isnan(per[2]) and per[3] == np.inf and per[4] == 0
    assert cross_entropy(np.float64([[1e30, 0]]), [0], temperature=1e-30) == 0.0
    big = cross_entropy(np.float64([[1e300, -1e300]]), [1])
    assert big == 2e300


def test_cross_entropy_empty():
    assert np.isnan(cross_entropy(np.zeros((0, 3)), np.zeros(0, int)))
    assert cross_entropy(np.zeros((0, 3)), np.zeros(0, int), reduction="sum") == 0
    assert cross_entropy(np.zeros((0, 3)), np.zeros(0, int), reduction="none").shape == (0,)


def test_cross_entropy_errors_name_parameter_and_value():
    x, y = logits_labels(n=4, c=3)
    with pytest.raises(ValueError, match=r"labels.*3 at position 1"):
        cross_entropy(x, [0, 3, 0, 0])
    with pytest.raises(ValueError, match=r"labels.*-1 at position 0"):
        cross_entropy(x, [-1, 0, 0, 0], ignore_index=-100)
    with pytest.raises(TypeError, match="labels"):
        cross_entropy(x, y.astype(float))
    with pytest.raises(ValueError, match=r"labels has shape \(3,\), expected \(4,\)"):
        cross_entropy(x, y[:3])
    with pytest.raises(ValueError, match="reduction.*'avg'"):
        cross_entropy(x, y, reduction="avg")
    with pytest.raises(TypeError, match="reduction"):
        cross_entropy(x, y, reduction=None)
    with pytest.raises(ValueError, match="label_smoothing.*1.5"):
        cross_entropy(x, y, label_smoothing=1.5)
    with pytest.raises(ValueError, match="label_smoothing"):
        cross_entropy(x, y, label_smoothing=float("nan"))
    with pytest.raises(ValueError, match="temperature.*-1"):
        cross_entropy(x, y, temperature=-1.0)
    with pytest.raises(TypeError):
        cross_entropy(x.astype(complex), y)


def test_cross_entropy_threads_bitwise_and_gil_released(restore_threads):
    x, y = logits_labels(n=20000, c=33, dtype=np.float32)
    results = {}
    for t in [1, 2, 4]:
        logitkit.set_num_threads(t)
        results[t] = (
            cross_entropy(x, y, label_smoothing=0.1, reduction="none").tobytes(),
            float(cross_entropy(x, y)),
            topk(x, 3)[1].tobytes(),
            sparsemax(x).tobytes(),
            sigmoid(x).tobytes(),
            fit_temperature(x, y),
        )
    assert results[1] == results[2] == results[4]
    # Many Python threads at once give the single-threaded answers.
    want = cross_entropy(x, y, reduction="none")
    errs = []

    def work():
        for _ in range(5):
            if not np.array_equal(cross_entropy(x, y, reduction="none"), want):
                errs.append("mismatch")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errs


torch = None
try:  # noqa: SIM105
    import torch  # type: ignore[no-redef]
except ImportError:
    pass

needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed")


@needs_torch
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_matches_torch(reduction):
    x, y = logits_labels(n=300, c=11)
    y[::7] = -100
    for ls in [0.0, 0.25]:
        want = torch.nn.functional.cross_entropy(
            torch.tensor(x), torch.tensor(y), reduction=reduction, label_smoothing=ls
        ).numpy()
        got = cross_entropy(x, y, reduction=reduction, label_smoothing=ls, ignore_index=-100)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # PyTorch's (N, C, d) layout with axis=1.
    x3 = rng(4).normal(size=(6, 5, 3))
    y3 = rng(5).integers(0, 5, size=(6, 3))
    want = torch.nn.functional.cross_entropy(torch.tensor(x3), torch.tensor(y3), reduction=reduction)
    np.testing.assert_allclose(cross_entropy(x3, y3, axis=1, reduction=reduction), want.numpy(), rtol=1e-12)


# --------------------------------------------------------------------------------------------
# fit_temperature, expected_calibration_error
# --------------------------------------------------------------------------------------------


def golden_section_log_t(x, y, lo=1e-2, hi=1e2, iters=120):
    a, b = np.log(lo), np.log(hi)
    g = (np.sqrt(5) - 1) / 2
    for _ in range(iters):
        c, d = b - g * (b - a), a + g * (b - a)
        if ref_nll(x, y, np.exp(c)) < ref_nll(x, y, np.exp(d)):
            b = d
        else:
            a = c
    return float(np.exp((a + b) / 2))


@pytest.mark.parametrize("scale", [0.3, 3.0, 30.0])
def test_fit_temperature_matches_golden_section(scale):
    x, y = logits_labels(n=300, c=5, scale=scale, seed=1)
    t = fit_temperature(x, y)
    t_ref = golden_section_log_t(x, y, lo=1e-3, hi=1e3)
    assert abs(t / t_ref - 1) < 1e-6, (t, t_ref)
    assert ref_nll(x, y, t) <= ref_nll(x, y, 1.0)


def test_fit_temperature_matches_scipy():
    optimize = pytest.importorskip("scipy.optimize")
    x, y = logits_labels(n=500, c=10, scale=4.0, seed=3, dtype=np.float32)
    t = fit_temperature(x, y)
    res = optimize.minimize_scalar(
        lambda u: ref_nll(x, y, np.exp(u)), bounds=(-5, 5), method="bounded", options={"xatol": 1e-10}
    )
    assert abs(np.log(t) - res.x) < 1e-5
    assert ref_nll(x, y, t) <= res.fun + 1e-12


def test_fit_temperature_axis_dtypes_and_bounds():
    x, y = logits_labels(n=100, c=4, seed=7)
    t = fit_temperature(x, y)
    assert isinstance(t, float)
    assert fit_temperature(np.ascontiguousarray(x.T), y, axis=0) == t
    assert abs(fit_temperature(x.astype(np.float16), y) / t - 1) < 1e-2
    with pytest.warns(RuntimeWarning, match="bound"):
        assert fit_temperature([[1.0, 0.0], [0.0, 1.0]], [0, 1]) == 1e-6
    with pytest.warns(RuntimeWarning, match="bound"):
        assert fit_temperature([[1.0, 0.0], [0.0, 1.0]], [1, 0]) == 1e6
    with pytest.raises(ValueError, match="row 1"):
        fit_temperature([[1.0, 0.0], [np.nan, 1.0]], [0, 1])
    with pytest.raises(ValueError, match="labels"):
        fit_temperature([[1.0, 0.0]], [2])
    with pytest.raises(ValueError, match="logits"):
        fit_temperature(np.zeros((0, 3)), np.zeros(0, int))


@pytest.mark.parametrize("n_bins", [1, 10, 15])
def test_ece_matches_reference(n_bins):
    x, y = logits_labels(n=2000, c=6, seed=9)
    p = logitkit.softmax(x)
    assert abs(expected_calibration_error(p, y, n_bins) - ref_ece(p, y, n_bins)) < 1e-14
    p32 = p.astype(np.float32)
    assert abs(expected_calibration_error(p32, y, n_bins) - ref_ece(p32, y, n_bins)) < 1e-7
    count, conf, acc = calibration_bins(p, y, n_bins)
    assert count.dtype == np.int64 and count.sum() == len(y)
    filled = count > 0
    assert abs(np.sum(count[filled] / len(y) * np.abs(acc[filled] - conf[filled])) - ref_ece(p, y, n_bins)) < 1e-12
    assert np.all(np.isnan(conf[~filled]))


@pytest.mark.parametrize("n_bins", [3, 7, 10, 15, 1000])
def test_calibration_bins_edges_are_the_float64_divisions(n_bins):
    # Bin b holds the confidences in (b / n_bins, (b + 1) / n_bins], each edge the float64
    # division: a confidence one ulp past an edge is in the bin above even when conf * n_bins
    # rounds onto the edge, and 0.9 itself is in the bin ending at 0.9.
    edges = [b / n_bins for b in range(n_bins + 1)]
    confs = []
    for b in range(1, n_bins):
        confs += [np.nextafter(edges[b], 0.0), edges[b], np.nextafter(edges[b], 1.0)]
    confs = [c for c in confs if 0.5 < c <= 1.0] + [1.0]  # the maximum of two probabilities
    p = np.array([[c, 1.0 - c] for c in confs])
    count, _, _ = calibration_bins(p, np.zeros(len(confs), int), n_bins)
    want = np.zeros(n_bins, np.int64)
    for c in confs:
        want[next(b for b in range(n_bins) if edges[b] < c <= edges[b + 1])] += 1
    np.testing.assert_array_equal(count, want)
    assert calibration_bins([[0.9, 0.1]], [0], 10)[0].tolist() == [0] * 8 + [1, 0]


def test_ece_ties_and_errors():
    # argmax ties: the lowest index is the prediction.
    assert expected_calibration_error([[0.5, 0.5]], [0]) == 0.5
    assert expected_calibration_error([[0.5, 0.5]], [1]) == 0.5
    assert expected_calibration_error(np.zeros((0, 3)), np.zeros(0, int)) == 0.0
    for bad in [0, -1, 2**20 + 1, 10**12]:
        with pytest.raises(ValueError, match="n_bins"):
            expected_calibration_error([[0.5, 0.5]], [0], bad)
    # R7: a count that is not an integer is of the wrong type (None too: 15 is the default,
    # not what None stands for; found by a review, None was taken as 15).
    for bad in [2.5, 3.0, True, "3", None]:
        with pytest.raises(TypeError, match="n_bins"):
            expected_calibration_error([[0.5, 0.5]], [0], bad)
        with pytest.raises(TypeError, match="n_bins"):
            calibration_bins([[0.5, 0.5]], [0], bad)
    with pytest.raises(ValueError, match=r"^probs must be probabilities in \[0, 1\], got NaN \(row 0, position 0\)"):
        expected_calibration_error([[np.nan, 0.5]], [0])
    # A labels shape that does not fit names the input it is compared with.
    for f in (expected_calibration_error, calibration_bins):
        with pytest.raises(ValueError, match="the shape of probs without the class axis"):
            f([[0.9, 0.1]], [0, 1])


# --------------------------------------------------------------------------------------------
# topk
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 1, 3, 64, 65, 200])
@pytest.mark.parametrize("dtype", FLOATS)
def test_topk_matches_stable_sort(k, dtype):
    x = np.round(rng(k).normal(size=(9, 200)) * 3).astype(dtype)  # many ties
    x[2, 5] = np.nan
    x[3, :] = -np.inf
    v, i = topk(x, k)
    rv, ri = ref_topk(x, k)
    assert v.dtype == dtype and i.dtype == np.int64 and v.shape == (9, k)
    np.testing.assert_array_equal(i, ri)
    np.testing.assert_array_equal(v, rv.astype(dtype))


def test_topk_axes_strides_and_none():
    x = rng(1).normal(size=(4, 50, 3))
    for axis in [0, 1, 2, -2]:
        v, i = topk(x, 2, axis=axis)
        rv, ri = ref_topk(x, 2, axis=axis)
        np.testing.assert_array_equal(i, ri)
        np.testing.assert_array_equal(v, rv)
        assert v.flags.c_contiguous
    xs = x[:, ::-3, :]
    np.testing.assert_array_equal(topk(xs, 4, axis=1)[1], ref_topk(xs, 4, axis=1)[1])
    v, i = topk(x, 5, axis=None)
    np.testing.assert_array_equal(i, ref_topk(x.ravel(), 5)[1])
    assert topk(np.arange(5), 2)[0].dtype == np.float64
    assert topk(np.zeros((3, 0)), 0)[0].shape == (3, 0)


def test_topk_errors():
    for bad in [-1, 6, 2**70]:
        with pytest.raises(ValueError, match="k must be"):
            topk(np.zeros(5), bad)
    # R7: a count that is not an integer is of the wrong type.
    for bad in [2.0, np.float64(1.0), True, np.True_, "1", None]:
        with pytest.raises(TypeError, match="k must be"):
            topk(np.zeros(5), bad)
    assert topk(np.arange(5.0), np.int64(2))[1].tolist() == [4, 3]
    with pytest.raises(AxisError):
        topk(np.zeros(5), 1, axis=1)
    with pytest.raises(TypeError):
        topk(np.array(["a"]), 1)


@needs_torch
def test_topk_matches_torch():
    x = rng(3).normal(size=(50, 1000)).astype(np.float32)  # no ties
    for k in [1, 10, 100]:
        tv, ti = torch.topk(torch.from_numpy(x), k, dim=-1)
        v, i = topk(x, k)
        np.testing.assert_array_equal(v, tv.numpy())
        np.testing.assert_array_equal(i, ti.numpy())


# --------------------------------------------------------------------------------------------
# sparsemax, sigmoid
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.05, 1.0, 20.0])
def test_sparsemax_matches_reference(scale):
    x = rng(int(scale * 10)).normal(size=(40, 30)) * scale
    got = sparsemax(x)
    want = ref_sparsemax(x)
    np.testing.assert_allclose(got, want, atol=1e-14)
    assert np.all(got >= 0)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, atol=1e-13)
    got32 = sparsemax(x.astype(np.float32))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, ref_sparsemax(x.astype(np.float32)), atol=2e-7)
    assert_f16_within_one_rounding(sparsemax(x.astype(np.float16)), ref_sparsemax(x.astype(np.float16)))


def test_sparsemax_axes_nonfinite_and_overflow():
    x = rng(5).normal(size=(3, 8, 5))
    for axis in [0, 1, 2]:
        np.testing.assert_allclose(sparsemax(x, axis=axis), ref_sparsemax(x, axis=axis), atol=1e-14)
    np.testing.assert_allclose(sparsemax(x, axis=None), ref_sparsemax(x.ravel()).reshape(x.shape), atol=1e-14)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(sparsemax(np.float32([3e38, 3e38, -3e38])), [0.5, 0.5, 0])
        got = sparsemax(np.array([[0, -np.inf, 1.5], [np.nan, 0, 0], [-np.inf, -np.inf, -np.inf]]))
    np.testing.assert_array_equal(got[0], [0, 0, 1])
    assert np.isnan(got[1:]).all()
    assert sparsemax(np.zeros((2, 0))).shape == (2, 0)
    assert sparsemax(np.arange(4)).dtype == np.float64


def test_sigmoid_accuracy_and_overflow():
    x = np.concatenate([np.linspace(-800, 800, 10001), [0.0, -0.0, np.inf, -np.inf]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = sigmoid(x)
    want = ref_sigmoid(x)
    rel = np.abs(got.astype(LD) - want) / np.maximum(want, LD(np.finfo(np.float64).tiny))
    assert rel.max() <= 4.5e-16  # float64: within 2 ulp
    for dtype in [np.float32, np.float16]:
        xd = x.astype(dtype)
        g = sigmoid(xd)
        assert g.dtype == dtype
        # Computed in float64 and rounded once: the correctly rounded value (or within 1 ulp).
        w = ref_sigmoid(xd).astype(np.float64)
        assert np.all(np.abs(g.astype(np.float64) - w) <= np.spacing(w.astype(dtype)).astype(np.float64) / 2 * 1.0001)
    assert np.isnan(sigmoid([np.nan]))[0]
    assert sigmoid(np.float64(2.0)).shape == ()
    xs = rng(1).normal(size=(7, 9, 4)).transpose(2, 0, 1)[:, ::2]
    np.testing.assert_allclose(sigmoid(xs), ref_sigmoid(xs).astype(np.float64), rtol=3e-16)
    assert sigmoid(np.arange(3)).dtype == np.float64
    big = rng(2).normal(size=100_003).astype(np.float32) * 50
    np.testing.assert_array_equal(sigmoid(big), ref_sigmoid(big).astype(np.float64).astype(np.float32))



@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_sigmoid_keeps_memory_order_of_fortran_input(dtype):
    # Elementwise: like NumPy's ufuncs, a Fortran-ordered input gives a Fortran-ordered result,
    # computed in one pass over memory (R8), with the values of the C-ordered computation.
    x = np.asfortranarray((rng(4).normal(size=(5003, 3, 2)) * 8).astype(dtype))
    got = sigmoid(x)
    assert got.flags.f_contiguous and not got.flags.c_contiguous and got.flags.owndata
    want = sigmoid(np.ascontiguousarray(x))
    assert want.flags.c_contiguous
    np.testing.assert_array_equal(got, want)
    assert np.negative(x).flags.f_contiguous  # NumPy's own order for this input
    # Strided Fortran runs (every other column of an F array) are not one run: C order.
    xs = np.asfortranarray(x[:, :, :1].repeat(4, axis=2))[:, :, ::2]
    np.testing.assert_array_equal(sigmoid(xs), sigmoid(np.ascontiguousarray(xs)))
    assert sigmoid(np.asfortranarray(np.zeros((0, 3), dtype))).shape == (0, 3)

# --------------------------------------------------------------------------------------------
# Inputs: torch, JAX, DLPack, bfloat16
# --------------------------------------------------------------------------------------------


def test_dlpack_producer_is_read_without_copy():
    from logitkit._coerce import adapt

    a = rng(0).normal(size=(3, 4)).astype(np.float32)
    x = DLPackOnly(a)
    assert np.shares_memory(adapt(x)[0], a)
    np.testing.assert_array_equal(logitkit.softmax(x), logitkit.softmax(a))
    np.testing.assert_array_equal(topk(x, 2)[1], topk(a, 2)[1])


try:
    import ml_dtypes  # type: ignore[no-redef]
except ImportError:
    ml_dtypes = None

needs_ml_dtypes = pytest.mark.skipif(ml_dtypes is None, reason="ml_dtypes not installed")


@needs_ml_dtypes
def test_bfloat16_numpy_in_bfloat16_out():
    bf16 = ml_dtypes.bfloat16
    x, y = logits_labels(n=20, c=6)
    xb = x.astype(bf16)
    x32 = xb.astype(np.float32)
    for f in [logitkit.softmax, logitkit.log_softmax, sparsemax, sigmoid]:
        got = f(xb)
        assert got.dtype == bf16
        np.testing.assert_array_equal(got, f(x32).astype(bf16))
    assert logitkit.logsumexp(xb).dtype == bf16
    assert logitkit.logsumexp(xb[0]).dtype == bf16  # a bfloat16 scalar
    v, i = topk(xb, 3)
    assert v.dtype == bf16
    np.testing.assert_array_equal(i, topk(x32, 3)[1])
    ce = cross_entropy(xb, y)
    assert ce.dtype == bf16 and ce == np.float32(cross_entropy(x32, y)).astype(bf16)
    assert fit_temperature(xb, y) == fit_temperature(x32, y)
    out = np.empty_like(xb)
    assert logitkit.softmax(xb, temperature=0.5, out=out) is out
    np.testing.assert_array_equal(out, logitkit.softmax(x32, temperature=0.5).astype(bf16))
    with pytest.raises(TypeError, match="dtype"):
        logitkit.softmax(xb, out=np.empty(xb.shape, np.float32))


@needs_torch
def test_torch_tensors_without_copy_and_with_grad():
    from logitkit._coerce import adapt

    x, y = logits_labels(n=10, c=5, dtype=np.float32)
    t = torch.from_numpy(x.copy())
    assert np.shares_memory(adapt(t)[0], t.numpy())
    tg = t.clone().requires_grad_(True)
    np.testing.assert_array_equal(logitkit.softmax(tg), logitkit.softmax(x))
    np.testing.assert_array_equal(logitkit.logsumexp(tg), logitkit.logsumexp(x))
    assert cross_entropy(tg, torch.from_numpy(y)) == cross_entropy(x, y)
    np.testing.assert_array_equal(topk(tg, 2)[1], topk(x, 2)[1])
    np.testing.assert_array_equal(sigmoid(t.T), sigmoid(x.T))


@needs_torch
def test_torch_bfloat16():
    x, y = logits_labels(n=10, c=5, dtype=np.float32)
    tb = torch.from_numpy(x).to(torch.bfloat16)
    x32 = tb.float().numpy()
    got = logitkit.softmax(tb)
    want = torch.from_numpy(logitkit.softmax(x32)).to(torch.bfloat16)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.bfloat16  # S13
    assert torch.equal(got, want)
    ce = cross_entropy(tb, torch.from_numpy(y))
    assert isinstance(ce, torch.Tensor) and ce.dtype == torch.bfloat16 and ce.dim() == 0


@needs_torch
def test_torch_bfloat16_without_ml_dtypes_gives_a_torch_tensor(monkeypatch):
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # import ml_dtypes -> ImportError
    x = torch.randn(4, 6).to(torch.bfloat16)
    got = logitkit.softmax(x)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.bfloat16
    want = torch.from_numpy(logitkit.softmax(x.float().numpy())).to(torch.bfloat16)
    assert torch.equal(got, want)


def test_jax_arrays():
    jnp = pytest.importorskip("jax.numpy")
    x, y = logits_labels(n=10, c=5, dtype=np.float32)
    j = jnp.asarray(x)
    np.testing.assert_array_equal(logitkit.softmax(j), logitkit.softmax(x))
    assert cross_entropy(j, jnp.asarray(y)) == cross_entropy(x, y)
    jb = j.astype(jnp.bfloat16)
    assert str(sparsemax(jb).dtype) == "bfloat16"


# --------------------------------------------------------------------------------------------
# Dask recipe (README "Dask arrays")
# --------------------------------------------------------------------------------------------


def test_dask_recipe():
    da = pytest.importorskip("dask.array")
    x, y = logits_labels(n=1000, c=16, dtype=np.float32)
    dx = da.from_array(x, chunks=(128, 4)).rechunk({1: -1})  # the softmax axis in one chunk
    dy = da.from_array(y, chunks=128)
    p = dx.map_blocks(logitkit.softmax, dtype=dx.dtype)
    np.testing.assert_array_equal(p.compute(), logitkit.softmax(x))
    lse = dx.map_blocks(logitkit.logsumexp, drop_axis=1, dtype=dx.dtype)
    np.testing.assert_array_equal(lse.compute(), logitkit.logsumexp(x))
    v = dx.map_blocks(lambda b: topk(b, 3)[0], chunks=(dx.chunks[0], (3,)), dtype=dx.dtype)
    np.testing.assert_array_equal(v.compute(), topk(x, 3)[0])
    per_row = da.blockwise(
        lambda b, t: cross_entropy(b, t, reduction="none"), "i", dx, "ij", dy, "i", concatenate=True,
        dtype=dx.dtype,
    )
    np.testing.assert_allclose(per_row.mean().compute(), cross_entropy(x, y), rtol=1e-6)
    np.testing.assert_array_equal(per_row.compute(), cross_entropy(x, y, reduction="none"))


# --------------------------------------------------------------------------------------------
# CLI: calibrate
# --------------------------------------------------------------------------------------------


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "logitkit", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_cli_calibrate(tmp_path):
    x, y = logits_labels(n=500, c=8, scale=4.0, dtype=np.float32)
    np.save(tmp_path / "l.npy", x)
    np.save(tmp_path / "y.npy", y)
    r = run_cli("calibrate", str(tmp_path / "l.npy"), str(tmp_path / "y.npy"))
    assert r.returncode == 0, r.stderr
    t = fit_temperature(x, y)
    assert f"temperature  {t:.6g}" in r.stdout
    p0, p1 = logitkit.softmax(x), logitkit.softmax(x, temperature=t)
    assert f"{expected_calibration_error(p0, y):10.6f}" in r.stdout
    assert f"{expected_calibration_error(p1, y):10.6f}" in r.stdout
    r = run_cli("calibrate", str(tmp_path / "l.npy"), str(tmp_path / "missing.npy"))
    assert r.returncode == 2 and "missing.npy" in r.stderr
    r = run_cli("demo")
    assert r.returncode == 0


def test_cli_calibrate_plot(tmp_path):
    x, y = logits_labels(n=300, c=4, dtype=np.float32)
    np.save(tmp_path / "l.npy", x)
    np.save(tmp_path / "y.npy", y)
    png = tmp_path / "rel.png"
    r = run_cli("calibrate", str(tmp_path / "l.npy"), str(tmp_path / "y.npy"), "--plot", str(png))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert r.returncode == 2 and "matplotlib" in r.stderr and "logitkit[plot]" in r.stderr
        assert not png.exists()
        with pytest.raises(ImportError, match="matplotlib"):
            reliability_diagram(logitkit.softmax(x), y)
    else:
        assert r.returncode == 0, r.stderr
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_calibrate_plot_without_matplotlib(tmp_path, monkeypatch, capsys):
    from logitkit.cli import main

    x, y = logits_labels(n=50, c=3, dtype=np.float32)
    np.save(tmp_path / "l.npy", x)
    np.save(tmp_path / "y.npy", y)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert main(["calibrate", str(tmp_path / "l.npy"), str(tmp_path / "y.npy"), "--plot", str(tmp_path / "o.png")]) == 2
    assert "pip install 'logitkit[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


# --------------------------------------------------------------------------------------------
# GIL released (S10 for the extras), properties over layouts
# --------------------------------------------------------------------------------------------

_BIG = np.random.default_rng(9).normal(size=(40, 250000))
_BIG_Y = np.random.default_rng(10).integers(0, 250000, 40)
EXTRA_CALLS = {
    "cross_entropy": lambda: cross_entropy(_BIG, _BIG_Y),
    "fit_temperature": lambda: fit_temperature(_BIG[:4], _BIG_Y[:4]),
    "topk": lambda: topk(_BIG, 100),
    "sparsemax": lambda: sparsemax(_BIG),
    "sigmoid": lambda: sigmoid(_BIG),
}


@pytest.mark.filterwarnings("ignore:fit_temperature")
@pytest.mark.parametrize("name", list(EXTRA_CALLS))
def test_gil_released_during_work(restore_threads, name):
    """As test_threads.test_s10_gil_released_during_work: with a huge switch interval a waiting
    thread can only run while the main thread releases the GIL itself."""
    call = EXTRA_CALLS[name]
    logitkit.set_num_threads(1)
    go, ran, done = threading.Event(), threading.Event(), threading.Event()
    state = {"ran": False}

    def bg():
        while True:
            go.wait()
            go.clear()
            if done.is_set():
                return
            state["ran"] = True
            ran.set()

    old = sys.getswitchinterval()
    t = threading.Thread(target=bg, daemon=True)
    t.start()
    try:
        sys.setswitchinterval(1000.0)
        state["ran"] = False
        go.set()
        sum(range(3_000_000))
        control_ran = state["ran"]
        ran.wait(60)
        ran.clear()
        state["ran"] = False
        go.set()
        for _ in range(3):
            call()
        during = state["ran"]
        ran.wait(60)
    finally:
        sys.setswitchinterval(old)
        done.set()
        go.set()
        t.join(10)
    if control_ran:
        pytest.skip("control: background thread ran during a GIL-holding builtin")
    assert during, f"background thread made no progress during {name}: GIL held"


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402


@st.composite
def strided_arrays(draw):
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=9))
    elems = st.floats(-1e4, 1e4, width=16 if dtype == np.float16 else 32)
    base = draw(hnp.arrays(dtype, shape, elements=elems))
    # Reverse, step or transpose to get odd strides.
    if draw(st.booleans()):
        base = base[::-1]
    if base.ndim > 1 and draw(st.booleans()):
        base = base.T
    axis = draw(st.integers(-base.ndim, base.ndim - 1))
    return base, axis


@settings(max_examples=150, deadline=None)
@given(strided_arrays(), st.data())
def test_property_layouts_match_contiguous_references(xa, data):
    x, axis = xa
    n = x.shape[axis]
    k = data.draw(st.integers(0, n))
    v, i = topk(x, k, axis=axis)
    rv, ri = ref_topk(x, k, axis=axis)
    np.testing.assert_array_equal(i, ri)
    np.testing.assert_array_equal(v, rv.astype(x.dtype))
    sp = sparsemax(x, axis=axis)
    assert sp.dtype == x.dtype
    want = ref_sparsemax(x, axis=axis)
    tol = {np.float16: 2e-3, np.float32: 1e-6, np.float64: 1e-12}[x.dtype.type]
    np.testing.assert_allclose(sp.astype(np.float64), want, atol=tol)
    y = data.draw(hnp.arrays(np.int64, tuple(s for d, s in enumerate(x.shape) if d != axis % x.ndim),
                             elements=st.integers(0, n - 1)))
    got = cross_entropy(x, y, axis=axis, reduction="none", label_smoothing=0.1)
    want = ref_ce(x, y, axis=axis, reduction="none", label_smoothing=0.1)
    if x.dtype == np.float16:
        assert_f16_within_one_rounding(got, want.astype(np.float64))
    else:
        rel = 2e-6 if x.dtype == np.float32 else 1e-13
        assert np.all(np.abs(got.astype(LD) - want) <= rel * np.maximum(1, np.abs(want)))
    np.testing.assert_array_equal(sigmoid(x), sigmoid(np.ascontiguousarray(x)))


@pytest.mark.parametrize("n, k", [(200_000, 5), (200_000, 64), (65_537, 3), (131_072, 1), (70_000, 65_540)])
def test_topk_long_lanes_with_ties_across_poll_pieces(n, k):
    # One lane longer than topk's poll piece (2**16 entries), many ties: the same ranking
    # (value descending, then index ascending) as a stable sort.
    x = np.random.default_rng(n + k).integers(0, 50, n).astype(np.float64)
    v, i = topk(x, k)
    want = np.lexsort((np.arange(n), -x))[:k]
    np.testing.assert_array_equal(i, want)
    np.testing.assert_array_equal(v, x[want])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, "bfloat16"])
def test_r2_empty_class_axis_with_every_label_ignored(dtype):
    # No class to read, every row ignored: no lane is read, no panic (R2), whatever the dtype.
    if dtype == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        dtype = ml_dtypes.bfloat16
    x = np.zeros((4, 0), dtype=dtype)
    losses = cross_entropy(x, np.full(4, -100), reduction="none", ignore_index=-100)
    np.testing.assert_array_equal(losses, np.zeros(4))
    x3 = np.zeros((3, 0, 2), dtype=dtype)
    losses = cross_entropy(x3, np.full((3, 2), -100), axis=1, reduction="none", ignore_index=-100)
    np.testing.assert_array_equal(losses, np.zeros((3, 2)))


def test_cli_calibrate_plot_writes_exactly_the_path_given(tmp_path):
    """Found by a review (2026-12-07): a path without an extension was written with ``.png``
    appended (and a directory's name with it beside the directory), reported as written."""
    pytest.importorskip("matplotlib")
    x, y = logits_labels(n=100, c=3, dtype=np.float32)
    np.save(tmp_path / "l.npy", x)
    np.save(tmp_path / "y.npy", y)
    args = ["calibrate", str(tmp_path / "l.npy"), str(tmp_path / "y.npy"), "--plot"]
    r = run_cli(*args, str(tmp_path / "diag"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "diag").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "diag.png").exists()
    r = run_cli(*args, str(tmp_path / "diag.svg"))
    assert r.returncode == 0, r.stderr
    assert b"<svg" in (tmp_path / "diag.svg").read_bytes()[:1000]
    (tmp_path / "plots").mkdir()
    r = run_cli(*args, str(tmp_path / "plots"))
    assert r.returncode == 2 and "plots" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "plots.png").exists()
    path = tmp_path / "rd"
    reliability_diagram(logitkit.softmax(x), y, n_bins=5, path=str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
