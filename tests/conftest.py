"""Shared helpers for the softmax-family tests (contract S1-S11).

The references here are computed in ``np.longdouble`` (80-bit extended on x86-64) from the exact
input values, following the contract's definitions, including the non-finite rules of S6.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import logitkit

LD = np.longdouble

# S8 bounds, per result dtype.
F32_PROB_TIGHT = (1e-12, 2e-6)  # probabilities >= 1e-12: relative error <= 2e-6
F32_PROB_LOOSE = (1e-30, 1e-5)  # probabilities >= 1e-30: relative error <= 1e-5
F32_SUM = 1e-6
F32_LOG = 2e-6
F64_PROB = (1e-250, 1e-13)
F64_LOG = 1e-13


# --------------------------------------------------------------------------------------------
# Sharding (slow emulated runs: .ci/aarch64-wheel.sh runs two shards at once, one per core)
# --------------------------------------------------------------------------------------------


def pytest_collection_modifyitems(config, items):
    """With ``LOGITKIT_TEST_SHARD=i/n``, keeps every n-th collected test from the i-th (0-based):
    neighbouring parametrizations of one slow test land in different shards."""
    shard = os.environ.get("LOGITKIT_TEST_SHARD")
    if not shard:
        return
    i, n = (int(v) for v in shard.split("/"))
    if not 0 <= i < n:
        raise pytest.UsageError(f"LOGITKIT_TEST_SHARD must be i/n with 0 <= i < n, got {shard!r}")
    config.hook.pytest_deselected(items=[t for k, t in enumerate(items) if k % n != i])
    items[:] = [t for k, t in enumerate(items) if k % n == i]


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture
def restore_threads():
    """S9/S11: put the thread count back after a test that changes it."""
    before = logitkit.get_num_threads()
    yield before
    logitkit.set_num_threads(before)


def run_python(code: str, env: dict | None = None, timeout: float = 60.0):
    """Runs ``code`` in a fresh interpreter (same venv); returns the CompletedProcess.

    A hang raises ``subprocess.TimeoutExpired`` and so fails the test instead of blocking it.
    """
    full_env = dict(os.environ)
    full_env.pop("LOGITKIT_NUM_THREADS", None)
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --------------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------------


def float_dtype(name: str) -> np.dtype:
    """The NumPy dtype named `name`; bfloat16 from ml_dtypes (the test is skipped without it)."""
    if name == "bfloat16":
        return np.dtype(pytest.importorskip("ml_dtypes").bfloat16)
    return np.dtype(name)


def result_dtype(x) -> np.dtype:
    """S1: the result dtype for input ``x``."""
    a = np.asarray(x)
    if a.dtype.kind == "f":
        return a.dtype.newbyteorder("=")
    return np.dtype(np.float64)


def _temps_along(t, x_shape, axis):
    """The temperature as an array broadcastable against x (one value per vector)."""
    t = np.asarray(t, dtype=np.float64)
    if t.ndim == 0 or axis is None:
        return t.astype(LD)
    outer = tuple(n for d, n in enumerate(x_shape) if d != axis)
    t = np.broadcast_to(t, outer)
    return np.expand_dims(t, axis).astype(LD)


def ref_map(x, axis=-1, temperature=1.0, log=False):
    """Longdouble reference of softmax / log_softmax with the S6 rules.

    Returns a longdouble array of x's shape.
    """
    a = np.asarray(x)
    if a.dtype.kind not in "f":
        a = a.astype(np.float64)
    a = a.astype(LD)
    shape = a.shape
    if axis is None:
        flat = a.reshape(1, -1)
        t = np.asarray(temperature, dtype=np.float64).astype(LD)
        res = ref_map(flat, axis=-1, temperature=t, log=log)
        return res.reshape(shape)
    axis = axis % a.ndim
    if a.size == 0:
        return np.empty(shape, dtype=LD)
    t = _temps_along(temperature, shape, axis)
    finite_or_neg = np.where(np.isneginf(a), -np.inf, a)
    bad = (
        np.isnan(a).any(axis=axis, keepdims=True)
        | np.isposinf(a).any(axis=axis, keepdims=True)
        | np.isneginf(a).all(axis=axis, keepdims=True)
    )
    safe = np.where(bad, LD(0), finite_or_neg)
    m = safe.max(axis=axis, keepdims=True)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        z = (safe - m) / t
        e = np.exp(z)
        s = e.sum(axis=axis, keepdims=True)
        res = z - np.log(s) if log else e / s
    return np.where(bad, LD(np.nan), res)


def ref_logsumexp(x, axis=-1, keepdims=False):
    """Longdouble reference of logsumexp with the S6/S7 rules."""
    a = np.asarray(x)
    if a.dtype.kind not in "f":
        a = a.astype(np.float64)
    a = a.astype(LD)
    if axis is None:
        r = ref_logsumexp(a.reshape(-1), axis=0)
        if keepdims:
            return np.asarray(r).reshape((1,) * a.ndim)
        return np.asarray(r)
    axis = axis % a.ndim
    kshape = tuple(1 if d == axis else n for d, n in enumerate(a.shape))
    if a.shape[axis] == 0:
        r = np.full(kshape, -np.inf, dtype=LD)
    else:
        anynan = np.isnan(a).any(axis=axis, keepdims=True)
        anyinf = np.isposinf(a).any(axis=axis, keepdims=True)
        allneg = np.isneginf(a).all(axis=axis, keepdims=True)
        safe = np.where(anynan | anyinf | allneg, LD(0), a)
        m = safe.max(axis=axis, keepdims=True)
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            r = m + np.log(np.exp(safe - m).sum(axis=axis, keepdims=True))
        r = np.where(allneg, LD(-np.inf), r)
        r = np.where(anyinf, LD(np.inf), r)
        r = np.where(anynan, LD(np.nan), r)
    if not keepdims:
        r = r.reshape(tuple(n for d, n in enumerate(a.shape) if d != axis))
    return r


# --------------------------------------------------------------------------------------------
# Comparisons with the S8 bounds
# --------------------------------------------------------------------------------------------


def _same_nonfinite(got, ref, what):
    g_nan, r_nan = np.isnan(got), np.isnan(ref)
    assert np.array_equal(g_nan, r_nan), f"{what}: NaN positions differ: got {got[g_nan != r_nan][:5]}"


def _f16_ulp_close(got, ref, what):
    """float16: within one float16 ulp of the correctly rounded reference (S8)."""
    got = np.asarray(got)
    assert got.dtype == np.float16
    with np.errstate(over="ignore"):
        want = np.asarray(ref, dtype=LD).astype(np.float64).astype(np.float16)
    _same_nonfinite(got, want, what)
    ok = ~np.isnan(want)
    g, w = got[ok].astype(np.float64), want[ok].astype(np.float64)
    inf = np.isinf(w) | np.isinf(g)
    assert np.array_equal(g[inf], w[inf]), f"{what}: infinities differ"
    fin = ~inf
    ulp = np.spacing(np.abs(want[ok][fin])).astype(np.float64)
    err = np.abs(g[fin] - w[fin])
    assert np.all(err <= ulp), (
        f"{what}: float16 error > 1 ulp: max err/ulp {np.max(err / ulp) if err.size else 0}"
    )


def prob_errors(got, ref):
    """Relative errors of probabilities (for reporting)."""
    g = np.asarray(got, dtype=LD)
    r = np.asarray(ref, dtype=LD)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(g - r) / r


def assert_probs_close(got, ref, what="softmax", axis=-1, check_sums=True):
    """S8 bounds for probabilities; NaN positions must match (S6)."""
    got = np.asarray(got)
    ref = np.asarray(ref, dtype=LD)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    if got.dtype == np.float16:
        _f16_ulp_close(got, ref, what)
        return
    _same_nonfinite(got, ref, what)
    ok = ~np.isnan(ref)
    g = got.astype(LD)
    assert np.all(np.isfinite(got[ok])), f"{what}: non-finite probability for a valid vector"
    err = np.abs(g - ref)
    if got.dtype == np.float32:
        bounds = [(F32_PROB_TIGHT, "tight"), (F32_PROB_LOOSE, "loose")]
        floor = 1e-30
    else:
        bounds = [(F64_PROB, "f64")]
        floor = 1e-250
    for (lo, rel), name in bounds:
        sel = ok & (ref >= lo)
        if sel.any():
            worst = np.max(err[sel] / ref[sel])
            assert worst <= rel, f"{what}: relative error {float(worst):.3g} > {rel} ({name})"
    sel = ok & (ref < floor)
    if sel.any():
        worst = np.max(err[sel])
        assert worst <= floor, f"{what}: absolute error {float(worst):.3g} below {floor}"
    if check_sums and got.size and axis is not None and got.ndim:
        sums = got.astype(np.float64).sum(axis=axis)
        valid = ~np.isnan(sums)
        tol = F32_SUM if got.dtype == np.float32 else 1e-13 * got.shape[axis] ** 0.5 + 1e-13
        dev = np.abs(sums[valid] - 1.0)
        assert np.all(dev <= tol), f"{what}: vector sums deviate from 1 by {dev.max():.3g}"


def _log_underflows(ref, dtype):
    """True where exp(ref) underflows to 0 in ``dtype`` (S5 allows -inf there)."""
    tiny = np.finfo(dtype).smallest_subnormal
    return ref < LD(np.log(float(tiny))) - 1


def assert_logs_close(got, ref, what="log_softmax"):
    """S8 bounds for log_softmax / logsumexp: abs err <= tol * max(1, |ref|).

    ``-inf`` is accepted where the probability underflows to 0 (S5), and required where the
    reference is ``-inf``.
    """
    got = np.asarray(got)
    ref = np.asarray(ref, dtype=LD)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    if got.dtype == np.float16:
        _f16_ulp_close(got, ref, what)
        return
    _same_nonfinite(got, ref, what)
    ok = ~np.isnan(ref)
    g = got[ok].astype(LD)
    r = ref[ok]
    assert np.array_equal(np.isposinf(g), np.isposinf(r)), f"{what}: +inf positions differ"
    rneg = np.isneginf(r)
    assert np.all(np.isneginf(g[rneg])), f"{what}: expected -inf"
    gneg = np.isneginf(g) & ~rneg
    if gneg.any():
        bad = r[gneg][~_log_underflows(r[gneg], got.dtype)]
        assert bad.size == 0, f"{what}: -inf where the reference is {bad[:5]} (no underflow)"
    fin = np.isfinite(g) & np.isfinite(r)
    tol = F32_LOG if got.dtype == np.float32 else F64_LOG
    err = np.abs(g[fin] - r[fin])
    lim = tol * np.maximum(LD(1), np.abs(r[fin]))
    # A reference beyond the dtype's range rounds to +-max or inf; allow one rounding there.
    big = np.abs(r[fin]) > LD(np.finfo(got.dtype).max)
    assert np.all((err <= lim) | big), (
        f"{what}: abs error {float(np.max(err / lim)):.3g} x the S8 bound"
    )


class DLPackOnly:
    """An array producer exposing only the DLPack protocol (read through ``numpy.from_dlpack``)."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, *args, **kwargs):
        return self._a.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


def traced_peak(call) -> int:
    """The peak of the memory Python's allocators (NumPy's included) hand out during a second
    `call()` (the first warms caches and lazy imports up), for checks that an input is read
    where it is, not copied."""
    import tracemalloc

    call()
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
