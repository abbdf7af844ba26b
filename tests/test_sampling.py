"""Sampling: contract clauses P1-P8 (``sample``, ``Sampler``, ``filter_logits``).

The reference below follows P3 by the book (a full stable sort, cumulative sums in float64 in
sorted order) on the exact float64 values of the logits.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import logitkit as lk

FLOATS = [np.float16, np.float32, np.float64]


# --------------------------------------------------------------------------------------------
# Reference and statistics helpers
# --------------------------------------------------------------------------------------------


def ref_kept_probs(x, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0):
    """P3 for one row of float64 logits: (kept mask, probabilities of the final distribution)."""
    x = np.asarray(x, dtype=np.float64)
    v = x.size
    m = x.max()
    kept = np.zeros(v, dtype=bool)
    if temperature == 0 or top_p == 0 or top_k == 1:
        i = int(np.flatnonzero(x == m)[0])
        kept[i] = True
        probs = np.zeros(v)
        probs[i] = 1.0
        return kept, probs
    order = np.lexsort((np.arange(v), -x))  # logit descending, id ascending
    k = v if top_k <= 0 or top_k >= v else top_k
    keep = list(order[:k])
    w = np.exp((x - m) / temperature)
    if top_p < 1:
        s = sum(w[i] for i in keep)
        cum = 0.0
        for n, i in enumerate(keep):
            cum += w[i]
            if cum / s >= top_p:
                keep = keep[: n + 1]
                break
    if min_p > 0:
        keep = [i for i in keep if w[i] >= min_p]
    kept[keep] = True
    probs = np.where(kept, w, 0.0)
    return kept, probs / probs.sum()


def chi2_sf(stat, df):
    """Survival function of the chi-square distribution (regularised upper gamma Q)."""
    a, x = df / 2.0, stat / 2.0
    if x <= 0:
        return 1.0
    gln = math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(10000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return 1.0 - total * math.exp(-x + a * math.log(x) - gln)
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return math.exp(-x + a * math.log(x) - gln) * h


def test_chi2_sf_known_values():
    assert abs(chi2_sf(3.841458820694124, 1) - 0.05) < 1e-9
    assert abs(chi2_sf(18.307038053275146, 10) - 0.05) < 1e-9


ROW = np.array([2.0, 1.5, 1.5, 0.3, -0.7, 2.4, 0.0, -3.0, 1.1, 0.9, -np.inf, 1.9])


def draw_many(x, n=30000, seed=0, **params):
    batch = np.tile(np.asarray(x), (n, 1))
    return lk.sample(batch, seed=seed, return_logprobs=True, **params)


def assert_frequencies_match(x, seed, **params):
    """P4: chi-square goodness of fit at a generous significance; no removed token drawn."""
    kept, probs = ref_kept_probs(x, **params)
    tokens, logprobs = draw_many(x, seed=seed, **params)
    assert (probs[tokens] > 0).all(), "a removed token was drawn"
    np.testing.assert_allclose(logprobs, np.log(probs[tokens]), atol=1e-6)
    live = probs > 0
    counts = np.bincount(tokens, minlength=len(x))[live]
    expected = probs[live] * len(tokens)
    if live.sum() > 1:
        stat = float(((counts - expected) ** 2 / expected).sum())
        p_value = chi2_sf(stat, int(live.sum()) - 1)
        assert p_value > 1e-4, (params, p_value)


# --------------------------------------------------------------------------------------------
# P1 Shapes and dtypes
# --------------------------------------------------------------------------------------------


def test_p1_one_row_gives_numpy_int64_scalar():
    tok = lk.sample([0.0, 3.0, 1.0], temperature=0.0)
    assert isinstance(tok, np.int64) and tok == 1
    tok, lp = lk.sample([0.0, 3.0, 1.0], temperature=0.0, return_logprobs=True)
    assert isinstance(tok, np.int64) and isinstance(lp, np.float64) and lp == 0.0


@pytest.mark.parametrize("shape", [(1, 5), (3, 7), (2, 3, 11), (4, 1)])
def test_p1_tokens_have_the_leading_shape(shape):
    x = np.random.default_rng(1).standard_normal(shape)
    tok = lk.sample(x, seed=3)
    assert tok.dtype == np.int64 and tok.shape == shape[:-1]
    assert ((tok >= 0) & (tok < shape[-1])).all()
    tok, lp = lk.sample(x, seed=3, return_logprobs=True)
    assert lp.dtype == np.float64 and lp.shape == shape[:-1] and (lp <= 0).all()


def test_p1_zero_rows():
    tok = lk.sample(np.zeros((0, 4)), seed=1)
    assert tok.shape == (0,) and tok.dtype == np.int64


@pytest.mark.parametrize("dtype", FLOATS + [np.int32, np.int64, bool])
def test_p1_input_dtypes(dtype):
    x = np.array([[0, 1, 0, 0], [1, 0, 0, 0]], dtype=dtype)
    assert lk.sample(x, temperature=0).tolist() == [1, 0]
    out = lk.filter_logits(x, top_k=1)
    assert out.dtype == (dtype if dtype in FLOATS else np.float64)


def test_p1_non_contiguous_and_list_input():
    x = np.random.default_rng(2).standard_normal((6, 50))
    assert lk.sample(x[::2, ::-1], seed=5).tolist() == lk.sample(
        np.ascontiguousarray(x[::2, ::-1]), seed=5
    ).tolist()
    assert lk.sample(x.tolist(), seed=5).tolist() == lk.sample(x, seed=5).tolist()


def test_p1_complex_is_a_type_error():
    with pytest.raises(TypeError):
        lk.sample(np.array([1j, 2j]))


def test_p1_logprobs_are_under_the_final_distribution():
    params = dict(temperature=0.7, top_k=5, top_p=0.9, min_p=0.05)
    _, probs = ref_kept_probs(ROW, **params)
    tok, lp = lk.sample(np.tile(ROW, (200, 1)), seed=4, return_logprobs=True, **params)
    np.testing.assert_allclose(lp, np.log(probs[tok]), rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# P2 Per-row parameters
# --------------------------------------------------------------------------------------------


def test_p2_each_parameter_per_row():
    x = np.tile(np.array([0.0, 1.0, 2.0, 3.0]), (3, 1))
    out = lk.filter_logits(
        x, temperature=[0.0, 1.0, 1.0], top_k=np.array([0, 2, 0]), min_p=[0.0, 0.0, 1.0]
    )
    ninf = -np.inf
    assert out.tolist() == [[ninf, ninf, ninf, 3.0], [ninf, ninf, 2.0, 3.0], [ninf, ninf, ninf, 3.0]]
    out = lk.filter_logits(x, top_p=np.array([0.0, 1.0, 1.0]))
    assert np.isfinite(out).sum(axis=1).tolist() == [1, 4, 4]


def test_p2_per_row_parameters_over_two_leading_dims():
    x = np.zeros((2, 3, 5))
    k = np.array([[1, 2, 3], [4, 5, 0]])
    out = lk.filter_logits(x, top_k=k)
    assert np.isfinite(out).sum(axis=-1).tolist() == [[1, 2, 3], [4, 5, 5]]


# --------------------------------------------------------------------------------------------
# P3 The pipeline, exactly
# --------------------------------------------------------------------------------------------


def check_filter(x, **params):
    x = np.asarray(x, dtype=np.float64)
    out = lk.filter_logits(x, **params)
    kept, _ = ref_kept_probs(x, **params)
    t = params.get("temperature", 1.0)
    want = np.where(kept, x if t == 0 else x / t, -np.inf)
    np.testing.assert_array_equal(out, want, err_msg=str(params))


def test_p3_top_k_ties_keep_lower_ids():
    x = [1.0, 3.0, 3.0, 3.0, 0.0, 3.0]
    assert np.isfinite(lk.filter_logits(x, top_k=2)).tolist() == [False, True, True, False, False, False]
    check_filter(x, top_k=2)
    check_filter(x, top_k=5)


@pytest.mark.parametrize("k", [0, 3, 4, 10**12])
def test_p3_top_k_disabled(k):
    x = [0.5, 0.1, 0.9]
    np.testing.assert_array_equal(lk.filter_logits(x, top_k=k), x)


def test_p3_top_p_boundary_reached_exactly_stops_there():
    ninf = -np.inf
    assert lk.filter_logits([0.0] * 4, top_p=0.5).tolist() == [0.0, 0.0, ninf, ninf]
    assert lk.filter_logits([0.0] * 4, top_p=0.5 + 1e-12).tolist() == [0.0, 0.0, 0.0, ninf]
    x = np.log([0.5, 0.25, 0.125, 0.125])
    assert np.isfinite(lk.filter_logits(x, top_p=0.75)).tolist() == [True, True, False, False]
    # Over the tokens top-k kept, renormalised.
    assert np.isfinite(lk.filter_logits([0.0] * 8, top_k=4, top_p=0.5)).sum() == 2


def test_p3_top_p_keeps_crossing_token_and_at_least_one():
    assert np.isfinite(lk.filter_logits([3.0, 0.0, -1.0], top_p=0.95)).tolist() == [True, True, False]
    assert np.isfinite(lk.filter_logits([3.0, 0.0, -1.0], top_p=1e-9)).sum() == 1


@pytest.mark.parametrize(
    "params",
    [
        dict(temperature=0.0),
        dict(temperature=0.0, top_k=3, top_p=0.5, min_p=0.9),
        dict(top_p=0.0),
        dict(temperature=2.0, top_k=1),
    ],
)
def test_p3_greedy_is_lowest_index_of_the_largest(params):
    x = np.array([0.5, 2.0, -1.0, 2.0], dtype=np.float32)
    toks, lps = lk.sample(np.tile(x, (50, 1)), seed=1, return_logprobs=True, **params)
    assert (toks == 1).all() and (lps == 0).all()
    check_filter(x, **params)


def test_p3_temperature_zero_keeps_unscaled_logit():
    assert lk.filter_logits([0.5, 2.0, -1.0], temperature=0.0).tolist() == [-np.inf, 2.0, -np.inf]
    assert lk.filter_logits([0.5, 2.0, -1.0], temperature=0.5, top_p=0.0).tolist() == [
        -np.inf,
        4.0,
        -np.inf,
    ]


def test_p3_temperature_overflow_safe():
    tok, lp = lk.sample([1e30, 0.0, -1e30], temperature=1e-30, seed=0, return_logprobs=True)
    assert tok == 0 and lp == 0.0
    toks, lps = lk.sample(
        np.tile(np.float32([3e38, -3e38, 3e38]), (50, 1)), seed=0, return_logprobs=True
    )
    assert set(toks.tolist()) <= {0, 2}
    np.testing.assert_allclose(lps, -math.log(2), atol=1e-12)


def test_p3_min_p_relative_to_largest_probability():
    check_filter(ROW, min_p=0.2)
    check_filter([1.0, 2.0, 2.0], min_p=1.0)
    assert np.isfinite(lk.filter_logits([1.0, 2.0, 2.0], min_p=1.0)).tolist() == [False, True, True]


@st.composite
def logits_and_params(draw):
    v = draw(st.integers(1, 60))
    kind = draw(st.sampled_from(["normal", "ties", "masked"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "normal":
        x = rng.standard_normal(v) * draw(st.sampled_from([0.1, 1.0, 5.0]))
    elif kind == "ties":
        x = rng.integers(-2, 3, v).astype(np.float64)
    else:
        x = rng.standard_normal(v)
        x[rng.random(v) < 0.3] = -np.inf
        x[rng.integers(v)] = 0.0
    params = dict(
        temperature=draw(st.sampled_from([0.0, 0.3, 1.0, 2.5])),
        top_k=draw(st.integers(0, v + 2)),
        top_p=draw(st.sampled_from([1.0, 0.9, 0.5, 0.0, 0.999])),
        min_p=draw(st.sampled_from([0.0, 0.05, 0.5, 1.0])),
    )
    return x, params


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logits_and_params())
def test_p3_filter_logits_matches_full_sort_reference(case):
    x, params = case
    check_filter(x, **params)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "params",
    [dict(top_p=0.9), dict(temperature=0.8, top_k=50, top_p=0.9), dict(min_p=0.05), dict(top_k=20000)],
)
def test_p3_large_vocabulary_matches_reference(dtype, params):
    x = (np.random.default_rng(7).standard_normal(128_256) * 2).astype(dtype)
    xr = x.astype(np.float64)
    out = lk.filter_logits(x, **params)
    kept, _ = ref_kept_probs(xr, **params)
    assert (np.isfinite(out) == kept).all()


# --------------------------------------------------------------------------------------------
# P4 Statistical correctness
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [1.0, 0.6, 2.5])
def test_p4_chi_square_temperature(temperature):
    assert_frequencies_match(ROW, seed=11, temperature=temperature)


def test_p4_chi_square_top_k():
    assert_frequencies_match(ROW, seed=21, top_k=4)


def test_p4_chi_square_top_p():
    assert_frequencies_match(ROW, seed=31, top_p=0.8)


def test_p4_chi_square_min_p():
    assert_frequencies_match(ROW, seed=41, min_p=0.1)


@pytest.mark.parametrize(
    "params",
    [dict(temperature=0.8, top_k=6, top_p=0.9, min_p=0.05), dict(temperature=1.7, top_k=8, top_p=0.95, min_p=0.2)],
)
def test_p4_chi_square_combined(params):
    assert_frequencies_match(ROW, seed=51, **params)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_p4_chi_square_low_precision_inputs(dtype):
    x = ROW.astype(dtype)
    assert_frequencies_match(x.astype(np.float64), seed=61, top_p=0.9)
    _, probs = ref_kept_probs(x.astype(np.float64), top_p=0.9)
    tokens = lk.sample(np.tile(x, (20000, 1)), seed=62, top_p=0.9)
    assert (probs[tokens] > 0).all()
    live = probs > 0
    counts = np.bincount(tokens, minlength=len(x))[live]
    expected = probs[live] * len(tokens)
    stat = float(((counts - expected) ** 2 / expected).sum())
    assert chi2_sf(stat, int(live.sum()) - 1) > 1e-4


def test_p4_masked_tokens_never_drawn():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((64, 3000))
    x[rng.random(x.shape) < 0.5] = -np.inf
    x[:, 0] = 0.0
    for params in [{}, dict(top_p=0.99), dict(top_k=2000), dict(min_p=1e-6)]:
        tok = lk.sample(x, seed=2, **params)
        assert np.isfinite(x[np.arange(64), tok]).all()


# --------------------------------------------------------------------------------------------
# P5 Seeds
# --------------------------------------------------------------------------------------------


def test_p5_int_seed_is_reproducible_and_rows_differ():
    x = np.zeros((16, 1000), dtype=np.float32)
    a = lk.sample(x, seed=9)
    assert (a == lk.sample(x, seed=9)).all()
    assert len(set(a.tolist())) > 10
    assert (a != lk.sample(x, seed=10)).any()


def test_p5_seed_none_draws_fresh_entropy():
    x = np.zeros(1 << 16)
    assert len({int(lk.sample(x)) for _ in range(8)}) > 1


def test_p5_per_row_seeds_independent_of_batch(restore_threads):
    x = np.random.default_rng(3).standard_normal((12, 40_000)).astype(np.float32)
    seeds = np.arange(100, 112)
    full = lk.sample(x, top_p=0.95, seed=seeds)
    for start in [0, 3, 7]:
        part = lk.sample(x[start:], top_p=0.95, seed=seeds[start:])
        assert (part == full[start:]).all()
        one = lk.sample(x[start], top_p=0.95, seed=np.array([seeds[start]]).reshape(()))
        assert one == full[start]


def test_p5_results_independent_of_thread_count(restore_threads):
    x = np.random.default_rng(4).standard_normal((12, 40_000)).astype(np.float32)
    results = []
    for n in [1, 2, 3]:
        lk.set_num_threads(n)
        results.append(lk.sample(x, top_p=0.9, temperature=0.8, seed=5, return_logprobs=True))
    for tok, lp in results[1:]:
        assert (tok == results[0][0]).all() and (lp == results[0][1]).all()
    # One long row: the row's passes are split across threads.
    lk.set_num_threads(1)
    one = lk.sample(x[0], top_p=0.9, seed=5)
    lk.set_num_threads(2)
    assert lk.sample(x[0], top_p=0.9, seed=5) == one


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, "1", [1, 2, 3]])
def test_p5_bad_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        lk.sample(np.zeros((2, 3)), seed=seed)


# --------------------------------------------------------------------------------------------
# P6 Sampler
# --------------------------------------------------------------------------------------------


def test_p6_same_seed_same_sequence_and_calls_differ():
    x = np.zeros((4, 5000), dtype=np.float32)
    a, b = lk.Sampler(top_p=0.9, seed=42), lk.Sampler(top_p=0.9, seed=42)
    seq = [a(x) for _ in range(5)]
    assert all((s == b(x)).all() for s in seq)
    assert all((seq[i] != seq[i - 1]).any() for i in range(1, 5))
    assert (lk.Sampler(top_p=0.9, seed=43)(x) != seq[0]).any()
    assert a.calls == 5


def test_p6_failed_call_does_not_count():
    s, t = lk.Sampler(seed=1), lk.Sampler(seed=1)
    bad = np.zeros(3000)
    bad[17] = np.nan
    with pytest.raises(ValueError, match="row 0"):
        s(bad)
    assert s.calls == 0
    assert s(np.zeros(3000)) == t(np.zeros(3000))


def test_p6_sampler_per_row_parameters_and_logprobs():
    s = lk.Sampler(temperature=[0.0, 1.0], top_k=1)
    tok, lp = s(np.array([[0.0, 1.0], [1.0, 0.0]]), return_logprobs=True)
    assert tok.tolist() == [1, 0] and lp.tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="temperature has shape"):
        s(np.zeros((3, 2)))


def test_p6_sampler_without_seed_uses_entropy():
    assert lk.Sampler().seed != lk.Sampler().seed


# --------------------------------------------------------------------------------------------
# P7 filter_logits
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [dict(temperature=0.7, top_k=5, top_p=0.9, min_p=0.05), dict(top_p=0.5), dict(temperature=2.0, top_k=3), dict(temperature=0.0)],
)
def test_p7_softmax_of_filtered_logits_is_the_distribution(params):
    out = lk.filter_logits(ROW, **params)
    _, probs = ref_kept_probs(ROW, **params)
    np.testing.assert_allclose(lk.softmax(out), probs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", FLOATS)
def test_p7_same_shape_and_dtype(dtype):
    x = np.random.default_rng(0).standard_normal((2, 3, 9)).astype(dtype)
    out = lk.filter_logits(x, top_k=3, temperature=0.5)
    assert out.shape == x.shape and out.dtype == dtype
    assert (np.isfinite(out).sum(axis=-1) == 3).all()
    kept = np.isfinite(out)
    np.testing.assert_array_equal(out[kept], (x.astype(np.float64) / 0.5).astype(dtype)[kept])


# --------------------------------------------------------------------------------------------
# P8 Errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(temperature=-1.0), ["temperature", "-1"]),
        (dict(temperature=float("nan")), ["temperature", "NaN"]),
        (dict(temperature=float("inf")), ["temperature", "inf"]),
        (dict(top_k=-3), ["top_k", "-3"]),
        (dict(top_k=2.5), ["top_k", "2.5"]),
        (dict(top_k=np.array([1.0, 2.0])), ["top_k"]),
        (dict(top_p=1.5), ["top_p", "1.5"]),
        (dict(top_p=-0.1), ["top_p", "-0.1"]),
        (dict(top_p=float("nan")), ["top_p", "NaN"]),
        (dict(min_p=2.0), ["min_p", "2"]),
        (dict(min_p=float("nan")), ["min_p", "NaN"]),
        (dict(top_p=[0.5, 0.5, 0.5]), ["top_p", "(3,)", "(2,)"]),
        (dict(temperature=np.ones((2, 1))), ["temperature", "(2, 1)"]),
        (dict(min_p=[0.1, -0.1]), ["min_p", "-0.1"]),
    ],
)
def test_p8_bad_parameters_raise_value_error_naming_them(kwargs, words):
    x = np.zeros((2, 4))
    for call in (lambda: lk.sample(x, seed=0, **kwargs), lambda: lk.filter_logits(x, **kwargs)):
        with pytest.raises(ValueError) as e:
            call()
        for w in words:
            assert w in str(e.value), (str(e.value), w)


def test_p8_bad_parameters_in_sampler_constructor():
    with pytest.raises(ValueError, match="top_p"):
        lk.Sampler(top_p=2.0)
    with pytest.raises(ValueError, match="seed"):
        lk.Sampler(seed=-5)


@pytest.mark.parametrize(
    "x, words",
    [
        (np.float64(1.0), ["logits", "0-d"]),
        (np.zeros((2, 0)), ["logits", "(2, 0)"]),
        (np.zeros(0), ["logits", "(0,)"]),
    ],
)
def test_p8_empty_vocabulary_or_0d_logits(x, words):
    with pytest.raises(ValueError) as e:
        lk.sample(x)
    assert all(w in str(e.value) for w in words)
    with pytest.raises(ValueError):
        lk.filter_logits(x)


@pytest.mark.parametrize(
    "kwargs",
    [dict(temperature=True), dict(top_p=False), dict(min_p=np.array([True, False])),
     dict(typical_p=np.True_), dict(temperature="0.5")],
    ids=["bool-temperature", "bool-top_p", "bool-array-min_p", "numpy-bool", "string"],
)
def test_r7_float_parameters_of_the_wrong_type_are_type_errors(kwargs):
    (name,) = kwargs
    for call in (lambda: lk.sample(np.zeros((2, 4)), seed=0, **kwargs),
                 lambda: lk.filter_logits(np.zeros((2, 4)), **kwargs)):
        with pytest.raises(TypeError, match=rf"^{name} must be a float"):
            call()


@pytest.mark.parametrize(
    "bad",
    [np.array([1 + 1j, 2]), np.array(["a", "b"]), [[1.0, 2.0], [3.0]]],
    ids=["complex", "strings", "ragged"],
)
def test_p18_unreadable_logits_are_a_type_error_naming_logits(bad):
    calls = [lambda: lk.sample(bad, seed=0), lambda: lk.filter_logits(bad),
             lambda: lk.token_logprobs(bad, 0), lambda: lk.Sampler(seed=0)(bad)]
    for call in calls:
        with pytest.raises(TypeError, match=r"^logits must be a real numeric array"):
            call()


def test_p18_torch_logits_off_the_cpu_are_named_logits():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"^logits is a torch tensor on meta.*logits\.cpu\(\)"):
        lk.sample(torch.empty(3, device="meta"), seed=0)


@pytest.mark.parametrize(
    "bad, problem",
    [(np.nan, "contains NaN"), (np.inf, "contains +inf")],
)
def test_p8_bad_row_names_its_index(bad, problem):
    x = np.zeros((2, 3, 50))
    x[1, 2, 7] = bad
    with pytest.raises(ValueError, match=rf"logits row 5 {problem.replace('+', '[+]')}"):
        lk.sample(x, seed=0)
    with pytest.raises(ValueError, match="row 5"):
        lk.filter_logits(x)


def test_p8_row_without_finite_logit_names_its_index():
    x = np.array([[0.0, 1.0], [-np.inf, -np.inf]])
    for params in [{}, dict(temperature=0.0)]:
        with pytest.raises(ValueError, match="logits row 1 has no finite logit"):
            lk.sample(x, **params)


def test_p8_nothing_drawn_when_a_call_raises():
    s = lk.Sampler(seed=3)
    x = np.zeros((3, 10))
    x[2, 0] = np.nan
    with pytest.raises(ValueError):
        s(x)
    assert s.calls == 0


def test_sampler_call_is_documented():
    """``help(Sampler)`` documents calling it: CPython keeps its own docstring on the
    ``__call__`` slot wrapper, so the call is described in the class docstring (issue 21 #6)."""
    doc = lk.Sampler.__doc__
    assert "__call__(logits, *, return_logprobs=False)" in doc
    call = doc[doc.index("``sampler(logits, *, return_logprobs=False)`` takes:"):]
    for part in ("logits : array_like, shape (..., V)", "return_logprobs : bool, default False",
                 "SampleOutput", "ValueError", "row count"):
        assert part in call, part
    for section in ("Parameters\n----------", "Methods\n-------", "Attributes\n----------",
                    "Notes\n-----", "Examples\n--------"):
        assert section in doc, section


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_p3_p9_top_k_over_rows_of_ties_keeps_the_lowest_ids(dtype):
    """P3, P9: top-k over long rows where at least k tokens share the maximum (all zeros, two
    values, a few maxima over -inf) keeps the k lowest ids at the maximum, as a full sort by
    (value descending, id) does; these rows take a path of their own (the first k ties,
    found without gathering every chunk that holds the maximum)."""
    if dtype == "bfloat16":
        dt = np.dtype(pytest.importorskip("ml_dtypes").bfloat16)
    else:
        dt = np.dtype(dtype)
    rng = np.random.default_rng(12)
    v = 20000
    few = np.full(v, -np.inf)
    few[rng.integers(0, v, 300)] = 2.0
    masked = np.zeros(v)
    masked[:10] = -np.inf
    rows = [np.zeros(v), np.where(rng.random(v) < 0.5, 1.0, 0.0), np.round(rng.standard_normal(v)), few, masked]
    for x in rows:
        x = x.astype(dt)
        order = np.lexsort((np.arange(v), -x.astype(np.float64)))
        for k in (1, 2, 50, 64, 200):
            want = np.zeros(v, bool)
            want[order[:k]] = True
            want &= np.isfinite(x.astype(np.float64))
            np.testing.assert_array_equal(np.isfinite(lk.filter_logits(x, top_k=k)), want, err_msg=f"k={k}")
            toks, lps = lk.sample(np.stack([x, x]), top_k=k, seed=[3, 4], return_logprobs=True)
            assert want[toks].all()
            kept = x.astype(np.float64)[want]
            lse = kept.max() + np.log(np.exp(kept - kept.max()).sum())
            np.testing.assert_allclose(lps, x.astype(np.float64)[toks] - lse, rtol=1e-6)
