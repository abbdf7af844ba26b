"""Decoding-time logits pipeline: contract clauses P10-P17.

Every check compares ``logitkit`` against the slow references below, written from the contract's
text with NumPy in float64, one row and one token at a time:

- ``ref_pipeline`` does P10 (rows and histories), P11 (masks), P12 (bias), P13 (penalties) and
  P14 (order, processing dtype) and then P3 (temperature, top-k, top-p, min-p) by the book: a
  full stable sort and float64 cumulative sums. Processing follows P14: float32 for float16 and
  float32 logits, float64 for float64; each stage is computed in float64 from the stored value
  and rounded once to the processing dtype.
- ``ref_logprobs`` gives P15's three distributions; ``ref_rank`` and ``ref_top`` its ranks and
  top lists.

Statistical tests use ``scipy.stats.chisquare`` with fixed seeds and a 1e-4 threshold.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

import logitkit as lk
from conftest import float_dtype, traced_peak

NEG = -np.inf
MODES = ["sampled", "processed", "raw"]
HYP = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)

# ============================================================================================
# References
# ============================================================================================


def processing_dtype(dtype) -> np.dtype:
    """P14: float32 for float16/float32 logits, float64 for float64."""
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


def _is_seq(v) -> bool:
    return isinstance(v, (list, tuple, np.ndarray))


def ref_histories(h, rows_shape, v):
    """P10: a list of R lists of ints (None -> R empty lists)."""
    r = int(np.prod(rows_shape, dtype=np.int64))
    if h is None:
        return [[] for _ in range(r)]
    if len(rows_shape) == 0 and not (len(h) and _is_seq(h[0])):
        h = [h]
    out = []
    for row in h:
        ids = [int(t) for t in row]
        while ids and ids[-1] == -1:
            ids.pop()
        assert all(0 <= t < v for t in ids), "reference given a bad history"
        out.append(ids)
    assert len(out) == r
    return out


def _per_row_lists(v, r):
    """allowed_token_ids / logit_bias: one value for every row, or a sequence of R values."""
    if v is None:
        return [None] * r
    if isinstance(v, dict):
        return [v] * r
    if len(v) and (v[0] is None or _is_seq(v[0]) or isinstance(v[0], dict)):
        assert len(v) == r
        return list(v)
    return [v] * r


def _per_row_values(v, rows_shape):
    return np.broadcast_to(np.asarray(v, dtype=np.float64), rows_shape).reshape(-1)


def ref_process_row(
    z,
    pdt,
    *,
    allowed=None,
    words=None,
    bad_words=(),
    min_tokens=0,
    stop=(),
    bias=None,
    rep=1.0,
    freq=0.0,
    pres=0.0,
    prompt=(),
    output=(),
):
    """P11-P13 on one row (a float array already in the processing dtype ``pdt``)."""
    z = np.array(z, dtype=pdt)
    v = z.size
    banned = np.zeros(v, dtype=bool)
    # P11 masks.
    if allowed is not None:
        ok = np.zeros(v, dtype=bool)
        ok[list(allowed)] = True
        banned |= ~ok
    if words is not None:
        for j in range(v):
            w = j // 32
            if w >= len(words) or not (int(words[w]) >> (j % 32)) & 1:
                banned[j] = True
    for seq in bad_words:
        seq = list(seq)
        prefix = seq[:-1]
        tail = list(output[len(output) - len(prefix) :]) if len(output) >= len(prefix) else None
        ends_with = tail == prefix
        if ends_with:  # a one-token sequence: the empty prefix always matches
            banned[seq[-1]] = True
    if len(output) < min_tokens:
        for s in stop:
            banned[s] = True
    z[banned] = -np.inf
    # P12 bias: finite values or -inf, added in float64 and rounded once.
    if bias:
        for j, b in bias.items():
            z[j] = pdt.type(np.float64(z[j]) + np.float64(b))
    # P13 penalties: repetition on every distinct seen token once, then frequency/presence.
    if rep != 1.0:
        for j in sorted(set(prompt) | set(output)):
            x = np.float64(z[j])
            z[j] = pdt.type(x / rep if x > 0 else x * rep)
    if freq != 0.0 or pres != 0.0:
        for j, c in sorted(Counter(output).items()):
            z[j] = pdt.type(np.float64(z[j]) - freq * c - pres)
    return z


def ref_p3_row(z, t, k, p, m, eps):
    """P3 on one processed row (float64 values): (filtered float64 values, ambiguous).

    ``filtered`` holds each kept token's ``z / T`` (``T = 0``: the greedy token's ``z``), -inf
    elsewhere. ``ambiguous`` is True when a top-p or min-p comparison lies within ``eps`` of its
    threshold, where rounding may legitimately decide it either way.
    """
    z = np.asarray(z, dtype=np.float64)
    v = z.size
    out = np.full(v, -np.inf)
    mx = z.max()
    assert np.isfinite(mx)
    order = np.lexsort((np.arange(v), -z))  # logit descending, id ascending
    if t == 0:
        out[order[0]] = z[order[0]]
        return out, False
    kk = v if k <= 0 or k >= v else int(k)
    keep = [int(i) for i in order[:kk] if np.isfinite(z[i])]
    w = np.exp((z - mx) / t)
    ambiguous = False
    if p < 1.0:
        total = sum(w[i] for i in keep)
        cum = 0.0
        for n, i in enumerate(keep):
            cum += w[i]
            if abs(cum / total - p) <= eps:
                ambiguous = True
            if cum / total >= p:
                keep = keep[: n + 1]
                break
    if m > 0.0:
        top = max(w[i] for i in keep)
        ambiguous |= any(abs(w[i] - m * top) <= eps * top for i in keep)
        keep = [i for i in keep if w[i] >= m * top]
    for i in keep:
        out[i] = z[i] / t
    return out, ambiguous


PIPELINE_DEFAULTS = dict(
    temperature=1.0,
    top_k=0,
    top_p=1.0,
    min_p=0.0,
    allowed_token_ids=None,
    token_bitmask=None,
    bad_words=None,
    min_tokens=0,
    stop_token_ids=None,
    logit_bias=None,
    repetition_penalty=1.0,
    frequency_penalty=0.0,
    presence_penalty=0.0,
    prompt_tokens=None,
    output_tokens=None,
)


class Ref:
    """The reference pipeline's result for a batch (rows flattened to (R, V) in C order)."""

    def __init__(self, logits, eps=None, **params):
        unknown = set(params) - set(PIPELINE_DEFAULTS)
        assert not unknown, unknown
        p = {**PIPELINE_DEFAULTS, **params}
        x = np.asarray(logits)
        self.dtype = x.dtype
        self.pdt = processing_dtype(x.dtype)
        self.rows_shape = x.shape[:-1]
        v = x.shape[-1]
        self.v = v
        raw = x.reshape(-1, v)
        r = raw.shape[0]
        self.raw = raw.astype(np.float64)
        prompts = ref_histories(p["prompt_tokens"], self.rows_shape, v)
        outputs = ref_histories(p["output_tokens"], self.rows_shape, v)
        allowed = _per_row_lists(p["allowed_token_ids"], r)
        biases = _per_row_lists(p["logit_bias"], r)
        masks = p["token_bitmask"]
        if masks is not None:
            masks = np.asarray(masks)
            masks = masks.view(np.uint32) if masks.dtype == np.int32 else masks
            masks = np.broadcast_to(masks, (r, masks.shape[-1]))
        rs = self.rows_shape
        t = _per_row_values(p["temperature"], rs)
        k = _per_row_values(p["top_k"], rs)
        tp = _per_row_values(p["top_p"], rs)
        mp = _per_row_values(p["min_p"], rs)
        mt = _per_row_values(p["min_tokens"], rs)
        rep = _per_row_values(p["repetition_penalty"], rs)
        fr = _per_row_values(p["frequency_penalty"], rs)
        pr = _per_row_values(p["presence_penalty"], rs)
        if eps is None:
            eps = 1e-9 if self.pdt == np.float64 else 1e-5
        self.t = t
        self.processed = np.empty((r, v), dtype=self.pdt)
        self.filtered = np.full((r, v), -np.inf)
        self.ambiguous = np.zeros(r, dtype=bool)
        self.empty_rows = []
        for i in range(r):
            z = ref_process_row(
                raw[i].astype(self.pdt),
                self.pdt,
                allowed=allowed[i],
                words=None if masks is None else masks[i],
                bad_words=p["bad_words"] or (),
                min_tokens=int(mt[i]),
                stop=p["stop_token_ids"] or (),
                bias=biases[i],
                rep=float(rep[i]),
                freq=float(fr[i]),
                pres=float(pr[i]),
                prompt=prompts[i],
                output=outputs[i],
            )
            self.processed[i] = z
            if not np.isfinite(z).any():
                self.empty_rows.append(i)
                continue
            self.filtered[i], self.ambiguous[i] = ref_p3_row(
                z, float(t[i]), int(k[i]), float(tp[i]), float(mp[i]), eps
            )

    @property
    def kept(self):
        return np.isfinite(self.filtered)

    def greedy(self):
        """P14: the largest processed logit, lowest id among equal ones."""
        z = self.processed.astype(np.float64)
        return np.array([int(np.flatnonzero(row == row.max())[0]) for row in z])

    def probs(self):
        """P3's final distribution per row (float64)."""
        out = np.zeros_like(self.filtered)
        for i, f in enumerate(self.filtered):
            fin = np.isfinite(f)
            e = np.exp(f[fin] - f[fin].max())
            out[i, fin] = e / e.sum()
        return out

    def logprobs(self, mode):
        """P15: log-probabilities of every token under ``mode``'s distribution, (R, V)."""
        if mode == "sampled":
            src = self.filtered
        elif mode == "processed":
            z = self.processed.astype(np.float64)
            tt = np.where(self.t == 0, 1.0, self.t)[:, None]
            src = z / tt
        else:
            src = self.raw
        return np.stack([log_softmax64(row) for row in src])


def log_softmax64(row):
    row = np.asarray(row, dtype=np.float64)
    fin = np.isfinite(row)
    out = np.full(row.shape, -np.inf)
    m = row[fin].max()
    s = np.log(np.exp(row[fin] - m).sum())
    out[fin] = row[fin] - m - s
    return out


def ref_rank(lp_row, tok):
    """P15: the number of tokens whose logprob is >= the chosen token's."""
    return int(np.count_nonzero(lp_row >= lp_row[tok]))


def ref_top(lp_row, n):
    """P15: the n most probable ids, by logprob descending, then id ascending."""
    order = np.lexsort((np.arange(lp_row.size), -lp_row))
    return order[:n], lp_row[order[:n]]


# ============================================================================================
# Comparison helpers
# ============================================================================================


def assert_ulp_close(got, want, dtype, nulp=1, what="filter_logits"):
    """``got`` (array of ``dtype``) within ``nulp`` ulps of the float64 reference ``want``;
    -inf exactly where the reference has it."""
    got = np.asarray(got)
    want = np.asarray(want, dtype=np.float64)
    assert got.dtype == np.dtype(dtype), f"{what}: dtype {got.dtype} != {np.dtype(dtype)}"
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    g_inf, w_inf = np.isneginf(got), np.isneginf(want)
    assert np.array_equal(g_inf, w_inf), (
        f"{what}: -inf positions differ:\n got  {got}\n want {want}"
    )
    fin = ~w_inf
    assert np.all(np.isfinite(got[fin])), f"{what}: non-finite kept value {got[fin]}"
    wr = want[fin].astype(dtype)  # the correctly rounded reference
    ulp = np.spacing(np.abs(wr)).astype(np.float64)
    err = np.abs(got[fin].astype(np.float64) - want[fin])
    assert np.all(err <= nulp * ulp + np.abs(wr.astype(np.float64) - want[fin])), (
        f"{what}: more than {nulp} ulp off:\n got  {got[fin]}\n want {want[fin]}"
    )


def lp_tol(dtype, ref):
    """Logprob tolerance: S8's log_softmax bounds for the processing precision."""
    base = 1e-12 if np.dtype(dtype) == np.float64 else 2e-6
    return base * np.maximum(1.0, np.abs(ref))


def assert_lp_close(got, want, dtype, what="logprobs"):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.array_equal(np.isneginf(got), np.isneginf(want)), f"{what}: -inf differ {got} {want}"
    fin = np.isfinite(want)
    assert np.all(np.isfinite(got[fin]))
    err = np.abs(got[fin] - want[fin])
    assert np.all(err <= lp_tol(dtype, want[fin])), f"{what}: got {got[fin]} want {want[fin]}"


def check_error(fn, *needles, exc=ValueError):
    """Calls ``fn``; it must raise ``exc`` whose message contains every needle, each a whole word
    (the parameter's name, ``row 2``, an id...)."""
    with pytest.raises(exc) as ei:
        fn()
    msg = str(ei.value)
    for n in needles:
        pat = r"(?<![\w.])" + re.escape(str(n)) + r"(?![\w])"
        assert re.search(pat, msg), f"message {msg!r} does not name {n!r}"
    return msg


def chi2_check(tokens, probs, what=""):
    """P4-style goodness of fit: no token of probability 0 drawn, chi-square not rejected."""
    tokens = np.asarray(tokens).reshape(-1)
    n = tokens.size
    assert (probs[tokens] > 0).all(), f"{what}: a token of probability 0 was drawn"
    live = probs > 0
    counts = np.bincount(tokens, minlength=probs.size)[live]
    exp = probs[live] * n
    assert exp.min() >= 5, "test design: expected counts too small"
    if live.sum() > 1:
        pval = chisquare(counts, exp * (n / exp.sum())).pvalue
        assert pval > 1e-4, f"{what}: chi-square p-value {pval}"


def padded(rows):
    """P10: a list of lists as an int64 array (R, L) padded on the right with -1."""
    width = max([len(r) for r in rows] + [0])
    out = np.full((len(rows), width), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def bitmask_of(allowed_rows, v, w=None):
    """Bit j%32 of word j//32 set for every allowed token (int32 words, LSB first)."""
    w = (v + 31) // 32 if w is None else w
    out = np.zeros((len(allowed_rows), w), dtype=np.uint32)
    for r, ids in enumerate(allowed_rows):
        for j in ids:
            out[r, j // 32] |= np.uint32(1) << np.uint32(j % 32)
    return out.view(np.int32)


# ============================================================================================
# Shared data
# ============================================================================================

RNG = np.random.default_rng(20240611)
BASE = np.array([1.5, -0.5, 2.0, 0.25, -1.75, 0.0, 1.0, 3.0, -3.0, 0.75, 2.5, -1.0])
V12 = BASE.size


# ============================================================================================
# The reference checks itself on hand-computed cases
# ============================================================================================


def test_reference_hand_computed_cases():
    """Sanity of the references (P11-P13 by hand)."""
    z = np.array([2.0, -1.0, 0.5, 3.0])
    # repetition: 2 seen (z>0 -> /2), 1 seen (z<0 -> *2); frequency 0.5 for token 2 seen twice
    r = Ref(z, repetition_penalty=2.0, frequency_penalty=0.5, presence_penalty=0.25,
            prompt_tokens=[1], output_tokens=[2, 2])
    np.testing.assert_array_equal(r.processed[0], [2.0, -2.0, 0.25 - 1.0 - 0.25, 3.0])
    r = Ref(z, allowed_token_ids=[0, 3], logit_bias={0: 1.5, 3: -np.inf})
    np.testing.assert_array_equal(r.processed[0], [3.5, NEG, NEG, NEG])
    r = Ref(np.zeros(40), token_bitmask=np.array([0x80000001, 0x1], dtype=np.uint32))
    assert np.flatnonzero(np.isfinite(r.processed[0])).tolist() == [0, 31, 32]
    r = Ref(z, bad_words=[[1], [0, 2]], output_tokens=[3, 0])
    assert np.isneginf(r.processed[0]).tolist() == [False, True, True, False]
    assert ref_rank(np.array([0.0, 0.0, -1.0]), 1) == 2
    assert ref_top(np.array([-1.0, 0.0, 0.0, NEG]), 4)[0].tolist() == [1, 2, 0, 3]


# ============================================================================================
# P10 Rows and histories
# ============================================================================================


def test_p10_history_forms_are_equivalent():
    """P10: list of sequences, padded int array (any int dtype), tuple of arrays: same result."""
    x = RNG.normal(size=(3, V12))
    hist = [[1, 1, 7], [], [4, 0, 4, 4, 2]]
    params = dict(repetition_penalty=1.7, frequency_penalty=0.3, presence_penalty=0.2)
    want = lk.filter_logits(x, output_tokens=hist, prompt_tokens=hist[::-1], **params)
    ref = Ref(x, output_tokens=hist, prompt_tokens=hist[::-1], **params)
    assert_ulp_close(want, ref.filtered, np.float64)
    forms = [
        padded,
        lambda h: padded(h).astype(np.int32),
        lambda h: padded(h).astype(np.int16),
        lambda h: tuple(np.array(r, dtype=np.int64) for r in h),
        # int64 arrays are read in place when contiguous: strided and Fortran-order ones too.
        lambda h: [np.repeat(np.array(r, dtype=np.int64), 2)[::2] for r in h],
        lambda h: np.asfortranarray(padded(h)),
        lambda h: [tuple(r) for r in h],
    ]
    for f in forms:
        got = lk.filter_logits(x, output_tokens=f(hist), prompt_tokens=f(hist[::-1]), **params)
        np.testing.assert_array_equal(got, want)
    # Unsigned arrays (no -1 padding possible) are integer arrays too.
    u = np.array([[1, 1, 7], [3, 3, 3], [0, 0, 0]], dtype=np.uint8)
    got = lk.filter_logits(x, output_tokens=u, **params)
    assert_ulp_close(got, Ref(x, output_tokens=u.astype(np.int64), **params).filtered, np.float64)


def test_p10_padded_array_and_empty_histories():
    """P10: -1 padding on the right ends a row's history; empty histories are allowed."""
    x = RNG.normal(size=(2, V12))
    params = dict(repetition_penalty=2.0, presence_penalty=0.5)
    a = np.array([[3, -1, -1, -1], [5, 5, 6, -1]])
    got = lk.filter_logits(x, output_tokens=a, **params)
    assert_ulp_close(got, Ref(x, output_tokens=[[3], [5, 5, 6]], **params).filtered, np.float64)
    for empty in ([[], []], np.zeros((2, 0), dtype=np.int64), np.full((2, 3), -1)):
        got = lk.filter_logits(x, output_tokens=empty, prompt_tokens=empty, **params)
        np.testing.assert_array_equal(got, x)


def test_p10_one_d_logits_take_one_sequence():
    """P10: for 1-D logits, one 1-D sequence (list or array) is the row's history."""
    x = RNG.normal(size=V12)
    params = dict(repetition_penalty=1.5, frequency_penalty=0.25, temperature=0.7)
    want = Ref(x[None], output_tokens=[[2, 2, 9]], prompt_tokens=[[0, 11]], **params).filtered[0]
    for out, pr in [([2, 2, 9], [0, 11]), (np.array([2, 2, 9]), np.array([0, 11, -1]))]:
        got = lk.filter_logits(x, output_tokens=out, prompt_tokens=pr, **params)
        assert got.shape == (V12,)
        assert_ulp_close(got, want, np.float64)
    tok = lk.sample(x, temperature=0.0, output_tokens=[7], repetition_penalty=10.0)
    ref = Ref(x, output_tokens=[7], repetition_penalty=10.0)
    assert int(tok) == int(ref.greedy()[0])


def test_p10_rows_are_flattened_in_c_order():
    """P10: logits (2, 3, V) are rows 0..5 in C order; histories, per-row lists and per-row
    parameters follow that order."""
    x = RNG.normal(size=(2, 3, V12))
    outs = [[i, i, (i + 3) % V12] for i in range(6)]
    allowed = [None, [0, 1, 2, 3], None, [5, 6, 7, 8, 9], None, list(range(1, 12))]
    bias = [{i: 1.0 + i} for i in range(6)]
    rep = np.array([[1.0, 1.5, 2.0], [0.5, 3.0, 1.25]])
    params = dict(
        output_tokens=outs, allowed_token_ids=allowed, logit_bias=bias, repetition_penalty=rep,
        frequency_penalty=np.array([[0.0, 0.1, 0.2], [0.3, 0.4, 0.5]]), temperature=0.9,
        token_bitmask=bitmask_of([range(V12)] * 5 + [range(1, V12)], V12),
    )
    got = lk.filter_logits(x, **params)
    assert got.shape == x.shape
    ref = Ref(x, **params)
    assert_ulp_close(got.reshape(6, V12), ref.filtered, np.float64)
    # Row by row, each row alone gives the same values.
    for i in range(6):
        one = lk.filter_logits(
            x.reshape(6, V12)[i], output_tokens=outs[i], allowed_token_ids=allowed[i],
            logit_bias=bias[i], repetition_penalty=rep.reshape(-1)[i],
            frequency_penalty=params["frequency_penalty"].reshape(-1)[i], temperature=0.9,
            token_bitmask=params["token_bitmask"][i],
        )
        np.testing.assert_array_equal(one, got.reshape(6, V12)[i])
    g = lk.sample(x, temperature=0.0, **{k: v for k, v in params.items() if k != "temperature"})
    assert g.shape == (2, 3)
    np.testing.assert_array_equal(g.reshape(-1), ref_greedy(x, params))


def ref_greedy(x, params):
    return Ref(x, **{**params, "temperature": 0.0}).greedy()


BAD_HISTORIES = [
    # (value for 2 rows of V=5, words the message must hold)
    pytest.param([[1]], [], id="too-few-rows"),
    pytest.param([[1], [2], [3]], [], id="too-many-rows"),
    pytest.param(np.array([[1, -1], [2, 3]])[:1], [], id="array-too-few-rows"),
    pytest.param([[1, 2], [3, 5]], ["row 1", "5"], id="id-equal-V"),
    pytest.param([[1, 2], [3, 77]], ["row 1", "77"], id="id-above-V"),
    pytest.param([[1, -2], [3]], ["row 0", "-2"], id="negative-id"),
    pytest.param(np.array([[1, 2], [3, -7]]), ["row 1", "-7"], id="array-negative-id"),
    pytest.param(np.array([[0, 9], [1, -1]]), ["row 0", "9"], id="array-id-above-V"),
    pytest.param(np.array([[1.0, 2.0], [3.0, 4.0]]), [], id="float-array"),
    pytest.param(np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32), [], id="float32-array"),
    pytest.param([[1.0, 2.0], [3.0]], [], id="float-list"),
    pytest.param([1, 2], [], id="flat-sequence-for-two-rows"),
    pytest.param([1, 2, 3], [], id="flat-sequence-of-three"),
    pytest.param(np.array([[1, -1, 2], [1, 2, 3]]), ["row 0"], id="id-after-padding"),
    pytest.param([np.array([1, 2]), np.array([3, -7])], ["row 1", "-7"], id="int64-rows-negative"),
    pytest.param([np.array([0, 9]), np.array([1])], ["row 0", "9"], id="int64-rows-above-V"),
    pytest.param([np.array([1, -1, 2]), np.array([1])], ["row 0"], id="int64-rows-after-padding"),
]


@pytest.mark.parametrize("name", ["prompt_tokens", "output_tokens"])
@pytest.mark.parametrize("value, words", BAD_HISTORIES)
@pytest.mark.parametrize("fn", ["sample", "filter_logits"])
def test_p10_bad_histories_raise_value_error_naming_parameter_row_and_id(fn, name, value, words):
    """P10: wrong row count, negative non-padding id, id >= V, float array -> ValueError naming
    the parameter (and the row and the id)."""
    f = getattr(lk, fn)
    x = np.zeros((2, 5))
    check_error(lambda: f(x, **{name: value}), name, *words)


BIG = 2**64 - 1


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(output_tokens=np.array([[BIG], [1]], dtype=np.uint64)), "output_tokens"),
        (dict(prompt_tokens=np.array([[1], [BIG]], dtype=np.uint64)), "prompt_tokens"),
        (dict(allowed_token_ids=np.array([BIG, 1], dtype=np.uint64)), "allowed_token_ids"),
        (dict(bad_words=[np.array([BIG], dtype=np.uint64)]), "bad_words"),
        (dict(stop_token_ids=np.array([BIG], dtype=np.uint64), min_tokens=1), "stop_token_ids"),
    ],
)
def test_p10_huge_unsigned_ids_are_refused_naming_the_id(kwargs, name):
    """P10/R7: an id outside [0, V) given in a uint64 array (here 2**64 - 1) -> ValueError naming
    the parameter and the id; it is neither padding nor a negative number."""
    check_error(lambda: lk.sample(np.zeros((2, 5)), seed=0, **kwargs), name, str(BIG))


@pytest.mark.parametrize("name", ["prompt_tokens", "output_tokens"])
def test_p10_bad_history_for_one_d_logits(name):
    """P10: 1-D logits take one sequence; a bad id there names the parameter and the id."""
    check_error(lambda: lk.sample(np.zeros(4), **{name: [0, 4]}), name, "4")
    check_error(lambda: lk.sample(np.zeros(4), **{name: [0, -3]}), name, "-3")


# ============================================================================================
# P11 Masks
# ============================================================================================


def test_p11_allowed_token_ids_all_rows_and_per_row():
    """P11: one sequence for every row, or R sequences with None for an unrestricted row."""
    x = RNG.normal(size=(3, V12))
    for allowed in (
        [3, 1, 3, 10],
        np.array([3, 1, 3, 10], dtype=np.int32),
        [[0], None, [11, 2, 5]],
        ([4, 5], (6,), np.array([7, 8])),
        np.array([[1, 2], [3, 4], [5, 6]]),
    ):
        got = lk.filter_logits(x, allowed_token_ids=allowed)
        assert_ulp_close(got, Ref(x, allowed_token_ids=allowed).filtered, np.float64)
    got = lk.filter_logits(x, allowed_token_ids=[[0], None, [11, 2, 5]])
    np.testing.assert_array_equal(got[1], x[1])
    assert np.flatnonzero(np.isfinite(got[0])).tolist() == [0]


def test_p11_allowed_token_ids_errors():
    """P11/P10: ids outside [0, V) and a per-row sequence of the wrong length -> ValueError."""
    x = np.zeros((2, 5))
    check_error(lambda: lk.sample(x, allowed_token_ids=[0, 5]), "allowed_token_ids", "5")
    check_error(lambda: lk.sample(x, allowed_token_ids=[0, -1]), "allowed_token_ids", "-1")
    check_error(lambda: lk.sample(x, allowed_token_ids=[[0], [8]]), "allowed_token_ids", "8")
    check_error(lambda: lk.sample(x, allowed_token_ids=[[0], [1], [2]]), "allowed_token_ids")


@pytest.mark.parametrize("v", [1, 5, 31, 32, 33, 64, 70, 100])
def test_p11_token_bitmask_layout(v):
    """P11: token j allowed iff bit j%32 of word j//32 is 1 (LSB first); int32 and uint32 words
    mean the same (bit 31 makes an int32 word negative); (W,) applies to every row."""
    rng = np.random.default_rng(v)
    x = rng.normal(size=(3, v))
    w = (v + 31) // 32
    words = rng.integers(0, 2**32, size=(3, w), dtype=np.uint64).astype(np.uint32)
    words[:, 0] |= np.uint32(1 << 31) if v > 31 else np.uint32(0)
    words[:, 0] |= np.uint32(1)  # token 0 allowed: every row keeps a token
    for m in (words, words.view(np.int32)):
        got = lk.filter_logits(x, token_bitmask=m)
        ref = Ref(x, token_bitmask=words)
        assert_ulp_close(got, ref.filtered, np.float64)
        for j in range(v):  # spelled out once more, independent of the reference's loop
            for r in range(3):
                allowed = (int(words[r, j // 32]) >> (j % 32)) & 1
                assert np.isfinite(got[r, j]) == bool(allowed)
    got = lk.filter_logits(x, token_bitmask=words[1].view(np.int32))
    assert_ulp_close(got, Ref(x, token_bitmask=np.tile(words[1], (3, 1))).filtered, np.float64)
    # Any layout of the words: a strided view, Fortran order.
    wide = np.zeros((3, 2 * w), dtype=np.uint32)
    wide[:, ::2] = words
    got = lk.filter_logits(x, token_bitmask=wide[:, ::2])
    assert_ulp_close(got, Ref(x, token_bitmask=words).filtered, np.float64)
    got = lk.filter_logits(x, token_bitmask=np.asfortranarray(words))
    assert_ulp_close(got, Ref(x, token_bitmask=words).filtered, np.float64)


def test_p11_token_bitmask_narrow_bans_tail_and_wide_bits_ignored():
    """P11: tokens j >= 32*W are banned (mask narrower than the vocabulary); bits at j >= V
    are ignored (mask wider than the vocabulary)."""
    v = 70
    x = np.linspace(-1, 1, 2 * v).reshape(2, v)
    ones = np.full((2, 1), -1, dtype=np.int32)  # 32 allowed tokens
    got = lk.filter_logits(x, token_bitmask=ones)
    assert np.isfinite(got[:, :32]).all() and np.isneginf(got[:, 32:]).all()
    greedy = lk.sample(x, temperature=0.0, token_bitmask=ones)
    np.testing.assert_array_equal(greedy, [31, 31])
    wide = np.full((2, 5), -1, dtype=np.int32)  # 160 bits for 70 tokens
    np.testing.assert_array_equal(lk.filter_logits(x, token_bitmask=wide), x)
    np.testing.assert_array_equal(lk.filter_logits(x, token_bitmask=wide[0]), x)
    # A mask that bans exactly the tokens >= V in its own bits changes nothing either.
    part = np.zeros((2, 3), dtype=np.uint32)
    part[:, :2] = 0xFFFFFFFF
    part[:, 2] = 0b111111  # 64..69
    np.testing.assert_array_equal(lk.filter_logits(x, token_bitmask=part), x)


def test_p11_token_bitmask_errors():
    """P11: a mask of the wrong row count -> ValueError; a mask of another dtype -> TypeError or
    ValueError, naming token_bitmask."""
    x = np.zeros((2, 40))
    check_error(lambda: lk.sample(x, token_bitmask=np.zeros((3, 2), np.int32)), "token_bitmask")
    check_error(lambda: lk.sample(x, token_bitmask=np.zeros((1, 2), np.int32)), "token_bitmask")
    for bad in (np.ones(2, np.int64), np.ones(2, np.float32), np.ones(2, np.uint16)):
        check_error(
            lambda: lk.sample(x, token_bitmask=bad), "token_bitmask", exc=(TypeError, ValueError)
        )


def test_p11_token_bitmask_of_zero_words_leaves_rows_empty():
    """P11: with W = 0 every token j >= 0 = 32*W is banned, so each row is left without a
    finite logit: ValueError giving the row."""
    empty = np.zeros((2, 0), np.int32)
    check_error(lambda: lk.sample(np.zeros((2, 5)), token_bitmask=empty), "row 0")


def test_p11_bad_words_single_and_multi_token():
    """P11: a one-token sequence bans its token; a longer one bans its last token only when the
    row's output_tokens end with the other tokens (the prompt does not count)."""
    x = RNG.normal(size=(5, V12))
    bad = [[3], [1, 2, 7], [9, 4]]
    outs = [[], [1, 2], [0, 1, 2], [9], [2, 1]]
    prompts = [[1, 2], [9], [], [], [9]]  # prompt endings never trigger a ban
    got = lk.filter_logits(x, bad_words=bad, output_tokens=outs, prompt_tokens=prompts)
    assert_ulp_close(
        got, Ref(x, bad_words=bad, output_tokens=outs, prompt_tokens=prompts).filtered, np.float64
    )
    banned = [sorted(np.flatnonzero(np.isneginf(g)).tolist()) for g in got]
    assert banned == [[3], [3, 7], [3, 7], [3, 4], [3]]
    # Without output_tokens only one-token bad words apply.
    got = lk.filter_logits(x, bad_words=bad)
    assert [np.flatnonzero(np.isneginf(g)).tolist() for g in got] == [[3]] * 5


def test_p11_bad_words_errors():
    """P11: bad_words ids must lie in [0, V); an empty sequence is not a bad word."""
    x = np.zeros((1, 5))
    check_error(lambda: lk.sample(x, bad_words=[[1, 5]]), "bad_words", "5")
    check_error(lambda: lk.sample(x, bad_words=[[-1]]), "bad_words")
    check_error(lambda: lk.sample(x, bad_words=[[]]), "bad_words")
    check_error(lambda: lk.sample(x, bad_words=[1, 2]), "bad_words", exc=(TypeError, ValueError))


def test_p11_min_tokens_bans_stop_tokens_while_output_is_short():
    """P11: while a row has fewer than n output tokens its stop tokens are banned (n scalar or
    per row); at n tokens they are allowed again."""
    x = np.tile(np.arange(6, dtype=np.float64), (4, 1))  # token 5 is the greedy one
    outs = [[], [0], [0, 1], [0, 1, 2]]
    got = lk.sample(x, temperature=0.0, min_tokens=2, stop_token_ids=[5, 4], output_tokens=outs)
    np.testing.assert_array_equal(got, [3, 3, 5, 5])
    got = lk.sample(
        x, temperature=0.0, min_tokens=[0, 3, 3, 1], stop_token_ids=[5], output_tokens=outs
    )
    np.testing.assert_array_equal(got, [5, 4, 4, 5])
    f = lk.filter_logits(x, min_tokens=[0, 3, 3, 1], stop_token_ids=[5], output_tokens=outs)
    assert_ulp_close(
        f,
        Ref(x, min_tokens=[0, 3, 3, 1], stop_token_ids=[5], output_tokens=outs).filtered,
        np.float64,
    )
    # stop_token_ids alone (min_tokens=0) ban nothing.
    np.testing.assert_array_equal(lk.filter_logits(x, stop_token_ids=[5]), x)


def test_p11_min_tokens_errors():
    """P11: n > 0 without stop tokens -> ValueError; n < 0, a non-integer n and stop ids outside
    [0, V) are refused too, naming the parameter."""
    x = np.zeros((2, 5))
    check_error(lambda: lk.sample(x, min_tokens=1), "min_tokens")
    check_error(lambda: lk.sample(x, min_tokens=[0, 2]), "min_tokens")
    check_error(lambda: lk.sample(x, min_tokens=1, stop_token_ids=[]), "min_tokens")
    check_error(lambda: lk.sample(x, min_tokens=-1, stop_token_ids=[1]), "min_tokens")
    check_error(lambda: lk.sample(x, min_tokens=1, stop_token_ids=[5]), "stop_token_ids", "5")
    check_error(lambda: lk.sample(x, min_tokens=[1, 1, 1], stop_token_ids=[1]), "min_tokens")
    check_error(
        lambda: lk.sample(x, min_tokens=1.5, stop_token_ids=[1]),
        "min_tokens",
        exc=(TypeError, ValueError),
    )
    check_error(lambda: lk.Sampler(min_tokens=3), "min_tokens")
    lk.sample(x, min_tokens=[0, 0], seed=0)  # n = 0 needs no stop tokens


MASK_CASES = {
    "allowed": dict(allowed_token_ids=[0, 1, 4, 8, 9]),
    "allowed-per-row": dict(allowed_token_ids=[[0, 1], None, [4, 5, 6]]),
    "bitmask": dict(token_bitmask=bitmask_of([[0, 1, 4, 8, 9]], V12)[0]),
    "bad-words": dict(bad_words=[[7], [10], [2], [3, 0]], output_tokens=[[3], [3], [1]]),
    "min-tokens": dict(min_tokens=5, stop_token_ids=[7, 10, 2], output_tokens=[[1], [], [1, 2]]),
    "bias-ban": dict(logit_bias={7: NEG, 10: NEG, 2: -np.inf}),
}


@pytest.mark.parametrize("case", list(MASK_CASES))
@pytest.mark.parametrize("temperature", [0.0, 1.0, 50.0])
def test_p11_banned_tokens_never_drawn(case, temperature):
    """P11: a banned token is never drawn, whatever the temperature (greedy included), even when
    it holds the largest logit."""
    params = MASK_CASES[case]
    x = np.tile(BASE, (3, 1))
    ref = Ref(x, temperature=temperature, **params)
    reps = 2000
    big = np.repeat(x, reps, axis=0)
    big_params = dict(params)
    for key in ("output_tokens", "allowed_token_ids"):  # per-row lists: each row repeated
        if key in params and not np.isscalar(params[key][0]):
            big_params[key] = [params[key][i] for i in range(3) for _ in range(reps)]
    toks = lk.sample(big, temperature=temperature, seed=np.arange(3 * reps), **big_params)
    toks = toks.reshape(3, reps)
    for r in range(3):
        drawn = set(toks[r].tolist()) - set(np.flatnonzero(ref.kept[r]).tolist())
        assert not drawn, f"row {r}: drew removed tokens {drawn}"
    if temperature == 0.0:
        np.testing.assert_array_equal(toks[:, 0], ref.greedy())


@pytest.mark.parametrize("fn", ["sample", "filter_logits", "greedy"])
def test_p11_row_left_without_finite_logit_names_the_row(fn):
    """P11: a row left without a finite logit by the masks (or a -inf bias) -> ValueError giving
    the row."""
    x = np.zeros((3, 6))
    x[2, :3] = NEG
    cases = [
        dict(allowed_token_ids=[None, None, [0, 1, 2]]),
        dict(allowed_token_ids=[[], [1], [4]]),
        dict(token_bitmask=np.array([[0x3F], [0x3F], [0x07]], dtype=np.int32)),
        dict(bad_words=[[3], [4], [5]]),
        dict(min_tokens=1, stop_token_ids=[3, 4, 5]),
        dict(logit_bias=[None, None, {3: NEG, 4: NEG, 5: NEG}]),
        dict(allowed_token_ids=[None, None, [3, 4]], logit_bias=[None, {0: 1.0}, {3: NEG, 4: NEG}]),
    ]
    expect = ["row 2", "row 0", "row 2", "row 2", "row 2", "row 2", "row 2"]
    for params, where in zip(cases, expect):
        if fn == "sample":
            call = lambda: lk.sample(x, seed=0, **params)  # noqa: E731
        elif fn == "greedy":
            call = lambda: lk.sample(x, temperature=0.0, **params)  # noqa: E731
        else:
            call = lambda: lk.filter_logits(x, **params)  # noqa: E731
        check_error(call, where)


# ============================================================================================
# P12 logit_bias
# ============================================================================================


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_p12_logit_bias_values(dtype):
    """P12: a mapping added to every row, or one mapping (or None) per row; -inf bans."""
    x = RNG.normal(size=(3, V12)).astype(dtype)
    for bias in (
        {0: 1.25, 5: -0.1, 11: 1e-3, np.int64(3): np.float32(2.5)},
        [{2: 3.0}, None, {1: NEG, 2: 0.5}],
        ({}, {4: -7.5}, {}),
    ):
        got = lk.filter_logits(x, logit_bias=bias, temperature=0.8)
        assert_ulp_close(got, Ref(x, logit_bias=bias, temperature=0.8).filtered, dtype)
    got = lk.filter_logits(x, logit_bias=[{2: 3.0}, None, {1: NEG}])
    np.testing.assert_array_equal(got[1], x[1])
    assert np.isneginf(got[2, 1]) and np.isneginf(got).sum() == 1


def test_p12_bias_applies_after_masks():
    """P12/P14: the bias is added after the masks: a banned token stays banned whatever its
    bias, and a bias cannot unban."""
    x = np.zeros((1, 4))
    got = lk.filter_logits(x, allowed_token_ids=[0, 1], logit_bias={2: 100.0, 3: 1e300})
    np.testing.assert_array_equal(got, [[0.0, 0.0, NEG, NEG]])
    assert int(lk.sample(x[0], temperature=0.0, bad_words=[[2]], logit_bias={2: 50.0})) == 0


@pytest.mark.parametrize(
    "bias, words",
    [
        ({5: 1.0}, ["5"]),
        ({77: 1.0}, ["77"]),
        ({-1: 1.0}, ["-1"]),
        ({1: np.nan}, []),
        ({1: np.inf}, []),
        ([{1: 1.0}], []),
        ([{1: 1.0}, None, None], []),
        ([{1: 1.0}, {9: 2.0}], ["9"]),
        ([None, {1: np.nan}], []),
    ],
)
def test_p12_bad_logit_bias_raises_value_error(bias, words):
    """P12: a bad id (>= V or negative), a NaN/+inf bias or a per-row sequence of the wrong length
    -> ValueError naming logit_bias."""
    x = np.zeros((2, 5))
    for f in (lk.sample, lk.filter_logits):
        check_error(lambda: f(x, logit_bias=bias), "logit_bias", *words)


def test_p12_logit_bias_wrong_type():
    """P12/R7: a logit_bias that is not a mapping (or sequence of them) is refused."""
    x = np.zeros((2, 5))
    check_error(lambda: lk.sample(x, logit_bias=3.0), "logit_bias", exc=(TypeError, ValueError))
    check_error(
        lambda: lk.sample(x, logit_bias={1: "a"}), "logit_bias", exc=(TypeError, ValueError)
    )


def test_p12_logit_bias_any_mapping():
    """P12: logit_bias is "a mapping {token_id: bias}": a read-only mapping works like a dict."""
    import types

    x = np.zeros((2, 3))
    want = lk.filter_logits(x, logit_bias={1: 5.0})
    got = lk.filter_logits(x, logit_bias=types.MappingProxyType({1: 5.0}))
    np.testing.assert_array_equal(got, want)


def test_p12_overflowing_bias_is_not_blamed_on_the_logits():
    """P12/P8 (interpretation): finite float32 logits plus a finite bias that overflows float32
    processing either draw (the biased token is the largest) or raise a ValueError naming
    logit_bias; never an error claiming the (finite) logits hold +inf."""
    x = np.float32([3e38, 0.0])
    try:
        tok = lk.sample(x, logit_bias={0: 3e38}, temperature=0.0)
    except ValueError as e:
        assert "logit_bias" in str(e), str(e)
    else:
        assert int(tok) == 0


# ============================================================================================
# P13 Penalties
# ============================================================================================


def test_p13_repetition_penalty_by_hand():
    """P13: a seen token's z becomes z/r if z > 0 else z*r; seen = in prompt or output; each
    distinct token once, however often it occurs."""
    x = np.array([2.0, -1.0, 0.0, 3.0, 1.0, -2.0])
    got = lk.filter_logits(
        x, repetition_penalty=2.0, prompt_tokens=[0, 0, 0, 1], output_tokens=[2, 3, 3, 3, 0]
    )
    np.testing.assert_array_equal(got, [1.0, -2.0, 0.0, 1.5, 1.0, -2.0])
    got = lk.filter_logits(x, repetition_penalty=0.5, prompt_tokens=[5], output_tokens=[4, 4])
    np.testing.assert_array_equal(got, [2.0, -1.0, 0.0, 3.0, 2.0, -1.0])


def test_p13_frequency_presence_count_the_output_only():
    """P13: z_j - f*c_j - p*[c_j > 0], c_j = count in output_tokens (the prompt is not counted);
    negative values encourage."""
    x = np.array([2.0, -1.0, 0.0, 3.0, 1.0])
    got = lk.filter_logits(
        x, frequency_penalty=0.5, presence_penalty=0.25, prompt_tokens=[4, 4, 4],
        output_tokens=[0, 0, 0, 1, 3],
    )
    np.testing.assert_array_equal(got, [2.0 - 1.5 - 0.25, -1.0 - 0.75, 0.0, 3.0 - 0.75, 1.0])
    got = lk.filter_logits(x, frequency_penalty=-1.0, presence_penalty=-0.5, output_tokens=[1, 1])
    np.testing.assert_array_equal(got, [2.0, -1.0 + 2.5, 0.0, 3.0, 1.0])


def test_p13_repetition_comes_before_frequency_and_presence():
    """P13: repetition first: (z/r) - f*c - p, not (z - f*c - p)/r."""
    x = np.array([4.0, 1.0])
    got = lk.filter_logits(x, repetition_penalty=2.0, frequency_penalty=1.0, presence_penalty=1.0,
                           output_tokens=[0])
    np.testing.assert_array_equal(got, [0.0, 1.0])  # (4/2) - 1 - 1; other order gives 1.0
    x = np.array([1.0, 0.5])
    # other order: 1 - 3 = -2 -> *2 = -4; contract's order: 1/2 - 3 = -2.5
    got = lk.filter_logits(x, repetition_penalty=2.0, frequency_penalty=3.0, output_tokens=[0])
    np.testing.assert_array_equal(got, [-2.5, 0.5])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_p13_per_row_penalties(dtype):
    """P13/P2: each penalty is a scalar or one value per row."""
    x = RNG.normal(size=(2, 3, V12)).astype(dtype) * 3
    outs = [list(RNG.integers(0, V12, size=n)) for n in (0, 1, 4, 9, 2, 7)]
    prompts = [list(RNG.integers(0, V12, size=n)) for n in (5, 0, 2, 3, 8, 1)]
    params = dict(
        repetition_penalty=np.array([[1.0, 1.3, 0.7], [2.0, 1.0, 5.0]]),
        frequency_penalty=np.array([[0.0, 0.5, -0.25], [1.0, 0.1, 0.0]]),
        presence_penalty=[[0.3, 0.0, 0.0], [-0.2, 2.0, 0.7]],
        output_tokens=outs,
        prompt_tokens=padded(prompts),
    )
    got = lk.filter_logits(x, **params)
    assert_ulp_close(got.reshape(6, V12), Ref(x, **params).filtered, dtype)


@pytest.mark.parametrize(
    "name, value",
    [
        ("repetition_penalty", 0.0),
        ("repetition_penalty", -1.0),
        ("repetition_penalty", np.nan),
        ("repetition_penalty", np.inf),
        ("repetition_penalty", [1.0, 0.0]),
        ("repetition_penalty", [1.0, 1.0, 1.0]),
        ("frequency_penalty", np.nan),
        ("frequency_penalty", np.inf),
        ("frequency_penalty", -np.inf),
        ("frequency_penalty", [0.0, np.nan]),
        ("frequency_penalty", [[0.0, 1.0]]),
        ("presence_penalty", np.nan),
        ("presence_penalty", -np.inf),
        ("presence_penalty", [0.0, np.inf]),
    ],
)
def test_p13_bad_penalties_raise_value_error_naming_them(name, value):
    """P13: r <= 0 or non-finite, f/p non-finite, per-row arrays of the wrong shape -> ValueError
    naming the parameter (sample, filter_logits, Sampler)."""
    x = np.zeros((2, 5))
    check_error(lambda: lk.sample(x, **{name: value}), name)
    check_error(lambda: lk.filter_logits(x, **{name: value}), name)
    if np.ndim(value) == 0:
        check_error(lambda: lk.Sampler(**{name: value}), name)
    else:
        check_error(lambda: lk.Sampler(**{name: value})(x), name)


@pytest.mark.parametrize("name", ["repetition_penalty", "frequency_penalty", "presence_penalty"])
def test_p13_penalty_of_wrong_type(name):
    """R7: a string penalty -> TypeError naming it."""
    check_error(lambda: lk.sample(np.zeros(3), **{name: "high"}), name, exc=TypeError)


# ============================================================================================
# P14 Order, greedy, processing precision
# ============================================================================================


def test_p14_order_masks_bias_penalties_then_temperature():
    """P14: masks, bias, penalties, then temperature and the filters."""
    x = np.array([1.0, 3.0, 0.5, -1.0])
    # bias before repetition: 1 - 2 = -1 -> *2 = -2 (the other order: 1/2 - 2 = -1.5)
    got = lk.filter_logits(x, logit_bias={0: -2.0}, repetition_penalty=2.0, output_tokens=[0])
    np.testing.assert_array_equal(got, [-2.0, 3.0, 0.5, -1.0])
    # penalties before temperature: (3 - 1)/0.5 = 4
    got = lk.filter_logits(x, frequency_penalty=1.0, output_tokens=[1], temperature=0.5)
    np.testing.assert_array_equal(got, [2.0, 4.0, 1.0, -2.0])
    # top-k on processed logits: the bias makes token 3 the largest.
    got = lk.filter_logits(x, logit_bias={3: 10.0}, top_k=1)
    np.testing.assert_array_equal(got, [NEG, NEG, NEG, 9.0])
    # top-p and min-p over the processed distribution.
    got = lk.filter_logits(x, repetition_penalty=100.0, output_tokens=[1], min_p=0.5)
    assert np.flatnonzero(np.isfinite(got)).tolist() == [0, 2]
    got = lk.filter_logits(x, presence_penalty=5.0, output_tokens=[1], top_p=0.0)
    np.testing.assert_array_equal(got, [1.0, NEG, NEG, NEG])


def test_p14_greedy_takes_the_largest_processed_logit():
    """P14: T = 0 takes the largest processed logit (lowest id among equal ones): masks, bias
    and penalties steer greedy decoding."""
    x = np.array([[1.0, 3.0, 2.0, 3.0]] * 5)
    got = lk.sample(
        x, temperature=0.0,
        allowed_token_ids=[None, [0, 2], None, None, None],
        logit_bias=[None, None, {0: 2.0}, None, None],
        repetition_penalty=[1.0, 1.0, 1.0, 2.0, 1.0],
        presence_penalty=[0.0, 0.0, 0.0, 0.0, 1.5],
        output_tokens=[[], [], [], [1, 3], [1]],
    )
    np.testing.assert_array_equal(got, [1, 2, 0, 2, 3])
    f = lk.filter_logits(x, temperature=0.0, presence_penalty=1.5, output_tokens=[[1]] * 5)
    np.testing.assert_array_equal(f[0], [NEG, NEG, NEG, 3.0])


def test_p14_float32_processing_for_float32_and_float16():
    """P14: float32 and float16 logits are processed in float32, float64 logits in float64: a
    bias of 1e-9 is lost in float32 (tie -> lowest id) but not in float64; a bias of 1e-4 on
    float16 logits survives (float32, not float16, processing)."""
    x = [1.0, 1.0]
    assert int(lk.sample(np.float32(x), temperature=0.0, logit_bias={1: 1e-9})) == 0
    assert int(lk.sample(np.float64(x), temperature=0.0, logit_bias={1: 1e-9})) == 1
    assert int(lk.sample(np.float16(x), temperature=0.0, logit_bias={1: 1e-4})) == 1
    assert int(lk.sample(np.float16(x), temperature=0.0, logit_bias={1: 1e-9})) == 0
    # Repetition: 1.0 / (1 + 1e-12) is 1.0 in float32.
    y = [1.0, 1.0 - 1e-13]
    got = lk.sample(np.float64(y), temperature=0.0, repetition_penalty=1 + 1e-12, output_tokens=[0])
    assert int(got) == 1
    got = lk.sample(np.float32(y), temperature=0.0, repetition_penalty=1 + 1e-12, output_tokens=[0])
    assert int(got) == 0
    f = lk.filter_logits(np.float32([1.0, 2.0]), logit_bias={0: 1e-9})
    assert f.dtype == np.float32 and f[0] == np.float32(1.0)
    f = lk.filter_logits(np.float16([1.0, 2.0]), logit_bias={0: 1e-4})
    assert f.dtype == np.float16


def test_p14_bfloat16_processed_in_float32():
    """P14/P18: bfloat16 logits are processed in float32 (a 1e-3 bias survives) and
    filter_logits returns bfloat16."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.array([1.0, 1.0]).astype(ml_dtypes.bfloat16)
    assert int(lk.sample(x, temperature=0.0, logit_bias={1: 1e-3})) == 1
    f = lk.filter_logits(x, logit_bias={1: 0.5}, temperature=0.5)
    assert f.dtype == x.dtype
    np.testing.assert_array_equal(f.astype(np.float64), [2.0, 3.0])


def test_p10_rows_are_independent_and_thread_count_does_not_matter(restore_threads):
    """P10/P5: with per-row seeds, a row's token (with its own histories, masks, bias and
    penalties) does not depend on the batch it is in, nor on the thread count."""
    rng = np.random.default_rng(55)
    r, v = 64, 300
    x = rng.normal(size=(r, v)) * 2
    outs = [list(rng.integers(0, v, size=int(n))) for n in rng.integers(0, 30, size=r)]
    params = dict(
        output_tokens=outs, prompt_tokens=padded(outs[::-1]), repetition_penalty=1.3,
        frequency_penalty=rng.uniform(-0.5, 1.0, size=r), presence_penalty=0.2,
        logit_bias=[{int(i): 2.0} for i in rng.integers(0, v, size=r)],
        bad_words=[[1, 2], [5]], top_p=0.9, min_p=0.01, temperature=0.8,
    )
    seeds = np.arange(r) * 7 + 1
    lk.set_num_threads(1)
    one = lk.sample(x, seed=seeds, top_logprobs=3, **params)
    lk.set_num_threads(2)
    two = lk.sample(x, seed=seeds, top_logprobs=3, **params)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    for i in (0, 17, 63):
        alone = lk.sample(
            x[i : i + 1], seed=seeds[i : i + 1], output_tokens=[outs[i]],
            prompt_tokens=[outs[::-1][i]], repetition_penalty=1.3,
            frequency_penalty=params["frequency_penalty"][i : i + 1], presence_penalty=0.2,
            logit_bias=[params["logit_bias"][i]], bad_words=[[1, 2], [5]], top_p=0.9, min_p=0.01,
            temperature=0.8,
        )
        assert int(alone[0]) == int(one.tokens[i])


def test_p10_non_contiguous_logits():
    """P10: the rows of a strided or transposed view are its rows in C order."""
    base = RNG.normal(size=(V12, 6))
    x = base.T  # (6, V12), not C-contiguous
    outs = [[i, i + 1] for i in range(6)]
    params = dict(output_tokens=outs, repetition_penalty=2.0, allowed_token_ids=[None, [0, 1]] * 3)
    got = lk.filter_logits(x, **params)
    np.testing.assert_array_equal(got, lk.filter_logits(np.ascontiguousarray(x), **params))
    assert_ulp_close(got, Ref(np.ascontiguousarray(x), **params).filtered, np.float64)
    y = np.zeros((6, 2 * V12))
    y[:, ::2] = x
    got2 = lk.filter_logits(y[:, ::2], **params)
    np.testing.assert_array_equal(got2, got)


def test_p14_integer_logits_processed_in_float64():
    """P14/S1: integer logits are float64 logits."""
    f = lk.filter_logits(np.array([[1, 2, 3]]), logit_bias={0: 1e-12}, repetition_penalty=3.0,
                         output_tokens=[[2]])
    assert f.dtype == np.float64
    np.testing.assert_array_equal(f, [[1 + 1e-12, 2.0, 1.0]])


# --------------------------------------------------------------------------------------------
# Property tests: the whole pipeline against the reference
# --------------------------------------------------------------------------------------------

GRID = np.arange(-16, 17) / 4.0  # exact in float16, well separated


@st.composite
def pipeline_cases(draw, with_sampling=True):
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    v = draw(st.integers(1, 40))
    rows_shape = draw(st.sampled_from([(), (1,), (3,), (2, 2)]))
    r = int(np.prod(rows_shape, dtype=np.int64))
    ids = st.integers(0, v - 1)
    vals = draw(st.lists(st.sampled_from(list(GRID) + [NEG]), min_size=r * v, max_size=r * v))
    x = np.array(vals, dtype=np.float64).reshape(rows_shape + (v,))
    x[..., draw(ids)] = draw(st.sampled_from(list(GRID)))  # every row keeps a finite logit
    x = x.astype(dtype)
    p = {}

    def per_row(values):
        if draw(st.booleans()) or not rows_shape:
            return draw(st.sampled_from(values))
        vals = draw(st.lists(st.sampled_from(values), min_size=r, max_size=r))
        return np.array(vals).reshape(rows_shape)

    def history():
        rows = [draw(st.lists(ids, max_size=6)) for _ in range(r)]
        if not rows_shape:
            return rows[0]
        return padded(rows) if draw(st.booleans()) else rows

    if draw(st.booleans()):
        p["prompt_tokens"] = history()
    if draw(st.booleans()):
        p["output_tokens"] = history()
    if draw(st.integers(0, 3)) == 0:
        if draw(st.booleans()) or not rows_shape:
            p["allowed_token_ids"] = draw(st.lists(ids, min_size=1, max_size=v))
        else:
            p["allowed_token_ids"] = [
                draw(st.one_of(st.none(), st.lists(ids, min_size=1, max_size=v))) for _ in range(r)
            ]
    if draw(st.integers(0, 3)) == 0:
        w = draw(st.integers(max(1, (v + 31) // 32 - 1), (v + 31) // 32 + 1))
        shape = (w,) if draw(st.booleans()) or not rows_shape else (r, w)
        n = int(np.prod(shape))
        words = np.array(
            draw(st.lists(st.integers(0, 2**32 - 1), min_size=n, max_size=n)), dtype=np.uint32
        ).reshape(shape)
        words[..., 0] |= np.uint32(0xFFFF)  # keep most of the first tokens
        p["token_bitmask"] = words.view(np.int32) if draw(st.booleans()) else words
    if draw(st.integers(0, 3)) == 0:
        p["bad_words"] = draw(
            st.lists(st.lists(ids, min_size=1, max_size=3), min_size=1, max_size=4)
        )
    if draw(st.integers(0, 3)) == 0:
        p["stop_token_ids"] = draw(st.lists(ids, min_size=1, max_size=3))
        p["min_tokens"] = per_row([0, 1, 3, 7])
    if draw(st.integers(0, 2)) == 0:
        def one_bias():
            biases = st.sampled_from([NEG, -2.0, -0.5, 0.25, 1.5, 3.0])
            return draw(st.dictionaries(ids, biases, max_size=4))
        if draw(st.booleans()) or not rows_shape:
            p["logit_bias"] = one_bias()
        else:
            p["logit_bias"] = [None if draw(st.booleans()) else one_bias() for _ in range(r)]
    if draw(st.booleans()):
        p["repetition_penalty"] = per_row([1.0, 0.5, 1.3, 2.0])
    if draw(st.booleans()):
        p["frequency_penalty"] = per_row([0.0, 0.4, -0.5, 1.25])
    if draw(st.booleans()):
        p["presence_penalty"] = per_row([0.0, 0.7, -0.3])
    p["temperature"] = per_row([0.0, 0.5, 1.0, 1.7])
    if draw(st.booleans()):
        p["top_k"] = per_row([0, 1, 2, 5, v])
    if draw(st.booleans()):
        p["top_p"] = per_row([1.0, 0.9, 0.5, 0.0])
    if draw(st.booleans()):
        p["min_p"] = per_row([0.0, 0.1, 0.5])
    return x, p


def _expect_empty_row_error(fn, x, p, ref):
    msg = check_error(lambda: fn(x, **p), "row")
    assert any(re.search(rf"row {i}(?!\d)", msg) for i in ref.empty_rows), msg


@HYP
@given(pipeline_cases())
def test_p14_filter_logits_matches_reference_property(case):
    """P7/P10-P14: filter_logits equals the reference pipeline (values within one ulp of the
    output dtype, -inf exactly where the reference removes a token); rows emptied by the masks
    raise ValueError giving the row."""
    x, p = case
    ref = Ref(x, **p)
    if ref.empty_rows:
        _expect_empty_row_error(lk.filter_logits, x, p, ref)
        return
    got = lk.filter_logits(x, **p)
    assert got.shape == x.shape and got.dtype == x.dtype
    got2 = got.reshape(ref.filtered.shape)
    for i in range(ref.filtered.shape[0]):
        if ref.ambiguous[i]:
            continue
        assert_ulp_close(got2[i], ref.filtered[i], x.dtype, what=f"row {i} {p}")


@HYP
@given(pipeline_cases(), st.sampled_from(MODES))
def test_p15_sample_outputs_match_reference_property(case, mode):
    """P14/P15: greedy equals the reference argmax; a drawn token is a kept one; its logprob,
    rank, the top ids and top logprobs (n = V) match the reference under logprobs_mode."""
    x, p = case
    ref = Ref(x, **p)
    if ref.empty_rows:
        _expect_empty_row_error(lambda y, **q: lk.sample(y, seed=1, **q), x, p, ref)
        return
    v = x.shape[-1]
    out = lk.sample(x, seed=7, top_logprobs=v, logprobs_mode=mode, **p)
    assert isinstance(out, lk.SampleOutput)
    rs = x.shape[:-1]
    assert np.shape(out.tokens) == rs and np.shape(out.logprobs) == rs and np.shape(out.ranks) == rs
    assert out.top_ids.shape == rs + (v,) and out.top_logprobs.shape == rs + (v,)
    assert np.asarray(out.tokens).dtype == np.int64 and np.asarray(out.ranks).dtype == np.int64
    assert out.top_ids.dtype == np.int64
    assert np.asarray(out.logprobs).dtype == np.float64 and out.top_logprobs.dtype == np.float64
    toks = np.asarray(out.tokens).reshape(-1)
    lps = np.asarray(out.logprobs).reshape(-1)
    ranks = np.asarray(out.ranks).reshape(-1)
    top_ids = out.top_ids.reshape(-1, v)
    top_lps = out.top_logprobs.reshape(-1, v)
    ref_lp = ref.logprobs(mode)
    greedy = ref.greedy()
    for i, tok in enumerate(toks):
        if ref.ambiguous[i]:
            continue
        assert ref.kept[i][tok], f"row {i}: drew removed token {tok}"
        if ref.t[i] == 0:
            assert tok == greedy[i]
        assert_lp_close(lps[i], ref_lp[i][tok], x.dtype, what=f"row {i} logprob")
        assert ranks[i] == ref_rank(ref_lp[i], tok), f"row {i}: rank {ranks[i]}"
        want_ids, want_lps = ref_top(ref_lp[i], v)
        np.testing.assert_array_equal(top_ids[i], want_ids, err_msg=f"row {i} top ids")
        assert_lp_close(top_lps[i], want_lps, x.dtype, what=f"row {i} top logprobs")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "p3",
    [dict(top_k=50, temperature=0.8), dict(top_p=0.9), dict(min_p=0.02, temperature=1.5),
     dict(top_k=3000, top_p=0.95, temperature=0.7), dict(temperature=0.0)],
)
def test_p14_large_vocabulary_with_processing(dtype, p3):
    """P14/P7: rows of 70,000 tokens (the paths for long rows) with every processing stage on:
    filter_logits equals the reference, sampled tokens are kept ones with the reference's
    logprob."""
    rng = np.random.default_rng(70)
    v = 70_000
    x = (rng.normal(size=(2, v)) * 4).astype(dtype)
    outs = [list(rng.integers(0, v, size=500)), list(np.argsort(x[1])[-40:])]
    allowed = np.ones((2, v), dtype=bool)
    allowed[:, rng.integers(0, v, size=5000)] = False
    params = dict(
        token_bitmask=bitmask_of([np.flatnonzero(a) for a in allowed], v),
        bad_words=[[int(np.argmax(x[0]))]],
        logit_bias={int(i): 3.0 for i in rng.integers(0, v, size=20)},
        repetition_penalty=1.5, frequency_penalty=0.5, presence_penalty=0.5,
        output_tokens=outs, prompt_tokens=[outs[1], outs[0]], **p3,
    )
    ref = Ref(x, eps=1e-6 if dtype == np.float32 else 1e-9, **params)
    assert not ref.ambiguous.any()
    got = lk.filter_logits(x, **params)
    assert_ulp_close(got, ref.filtered, dtype)
    out = lk.sample(x, seed=[3, 4], top_logprobs=5, **params)
    lp = ref.logprobs("sampled")
    for i in range(2):
        assert ref.kept[i][out.tokens[i]]
        assert_lp_close(out.logprobs[i], lp[i][out.tokens[i]], dtype)
        assert out.ranks[i] == ref_rank(lp[i], out.tokens[i])
        np.testing.assert_array_equal(out.top_ids[i], ref_top(lp[i], 5)[0])


@HYP
@given(
    st.integers(1, 3).flatmap(lambda r: st.tuples(
        st.just(r), st.integers(1, 12), st.sampled_from([np.float32, np.float64]),
        st.sampled_from([0.0, 0.8, 1.0]), st.sampled_from([1.0, 1.6, 0.6]),
        st.sampled_from([0.0, 0.5, -0.3]), st.sampled_from([0.0, 1.0]),
        st.lists(st.lists(st.integers(0, 11), min_size=1, max_size=3), max_size=3),
        st.integers(0, 2**31),
    ))
)
def test_p17_sampler_equals_stepwise_sample_property(args):
    """P17: over random parameters, each sampler call matches sample with the sampler's
    histories (greedy: the same token; T > 0: a token kept by filter_logits with its logprob)."""
    r, steps, dtype, t, rep, freq, pres, bad, seed = args
    rng = np.random.default_rng(seed)
    v = 12
    prompts = [list(rng.integers(0, v, size=int(rng.integers(0, 4)))) for _ in range(r)]
    params = dict(temperature=t, repetition_penalty=rep, frequency_penalty=freq,
                  presence_penalty=pres, bad_words=bad or None, min_tokens=2, stop_token_ids=[0])
    s = lk.Sampler(seed=seed, prompt_tokens=prompts, **params)
    for _ in range(steps):
        x = (rng.choice(GRID, size=(r, v))).astype(dtype)
        hist = [o.tolist() for o in s.output_tokens]
        kw = dict(prompt_tokens=prompts, output_tokens=hist, **params)
        if Ref(x, **kw).empty_rows:
            with pytest.raises(ValueError):
                s(x)
            assert [o.tolist() for o in s.output_tokens] == hist
            continue
        toks, lps = s(x, return_logprobs=True)
        f = lk.filter_logits(x, **kw)
        assert np.isfinite(f[np.arange(r), toks]).all()
        if t == 0:
            np.testing.assert_array_equal(toks, lk.sample(x, **kw))
        want = [log_softmax64(f[i].astype(np.float64))[toks[i]] for i in range(r)]
        assert_lp_close(lps, want, dtype)
        assert [o.tolist() for o in s.output_tokens] == [h + [int(k)] for h, k in zip(hist, toks)]


@HYP
@given(
    st.integers(1, 40).flatmap(lambda v: st.tuples(
        st.just(v), st.lists(st.sampled_from(list(GRID) + [NEG]), min_size=3 * v, max_size=3 * v),
        st.lists(st.integers(0, v - 1), min_size=3, max_size=3),
        st.sampled_from([1.0, 0.25, 3.0]), st.sampled_from([np.float32, np.float64]),
    ))
)
def test_p16_token_logprobs_property(args):
    """P16: token_logprobs equals the float64 log_softmax(x / T) at the ids (S8 accuracy) and
    the ranks count the tokens at least as probable."""
    v, vals, ids, t, dtype = args
    x = np.array(vals).reshape(3, v)
    x[:, 0] = 0.0
    x = x.astype(dtype)
    lp, ranks = lk.token_logprobs(x, ids, temperature=t, return_ranks=True)
    assert lp.dtype == np.dtype(dtype)
    for i in range(3):
        ref = log_softmax64(x[i].astype(np.float64) / t)
        assert_lp_close(lp[i], ref[ids[i]], dtype)
        assert ranks[i] == ref_rank(ref, ids[i])


# ============================================================================================
# P4 with the pipeline on: chi-square
# ============================================================================================

N_DRAWS = 20000


def _draw_rows(x, n, **params):
    """n independent draws of one row: the row tiled n times, one seed per row; per-row
    histories tiled too."""
    big = np.tile(np.asarray(x), (n, 1))
    for key in ("prompt_tokens", "output_tokens"):
        if key in params:
            params[key] = [params[key]] * n
    return lk.sample(big, seed=np.arange(n) + 1000, **params)


CHI2_CASES = {
    "bias-penalties-temperature": dict(
        logit_bias={0: 1.0, 7: -1.5, 2: -0.75}, repetition_penalty=1.6, frequency_penalty=0.4,
        presence_penalty=0.3, prompt_tokens=[10, 10, 3], output_tokens=[7, 7, 5, 1, 1, 1],
        temperature=1.3,
    ),
    "masks-top-p": dict(
        allowed_token_ids=[0, 1, 2, 3, 5, 6, 7, 9, 10], bad_words=[[6], [1, 7]],
        token_bitmask=bitmask_of([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]], V12)[0],
        output_tokens=[4, 1], top_p=0.9, temperature=0.8,
    ),
    "penalties-top-k-min-p": dict(
        repetition_penalty=0.8, presence_penalty=-0.4, output_tokens=[3, 9, 8, 8],
        top_k=7, min_p=0.05, temperature=1.1, min_tokens=5, stop_token_ids=[10],
    ),
}


@pytest.mark.parametrize("case", list(CHI2_CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_p14_chi_square_with_processing(case, dtype):
    """P4/P14: with masks, bias and penalties on, frequencies match the reference distribution
    and the logprobs returned are the reference's."""
    x = BASE.astype(dtype)
    params = CHI2_CASES[case]
    ref = Ref(x, **params)
    assert not ref.ambiguous.any()
    probs = ref.probs()[0]
    toks, lps = _draw_rows(x, N_DRAWS, return_logprobs=True, **params)
    chi2_check(toks, probs, case)
    np.testing.assert_allclose(lps, np.log(probs[toks]), rtol=0, atol=2e-6)
    # P7: softmax of filter_logits is the distribution drawn from.
    f = lk.filter_logits(x, **params).astype(np.float64)
    e = np.where(np.isfinite(f), np.exp(f - f.max()), 0.0)
    np.testing.assert_allclose(e / e.sum(), probs, atol=2e-6)


def test_p14_chi_square_float16_with_bias():
    """P4/P14: float16 logits (processed in float32) with bias and penalties."""
    x = BASE.astype(np.float16)
    params = dict(
        logit_bias={3: 2.0}, repetition_penalty=1.5, output_tokens=[7, 10], temperature=0.9
    )
    ref = Ref(x, **params)
    toks = _draw_rows(x, N_DRAWS, **params)
    chi2_check(toks, ref.probs()[0], "float16")


# ============================================================================================
# P15 Logprobs
# ============================================================================================


def test_p15_logprobs_modes_by_hand():
    """P15: sampled = the distribution drawn from; processed = log_softmax after masks, bias,
    penalties and temperature (before the filters); raw = log_softmax of the input."""
    x = np.array([0.0, 2.0, 1.0, -1.0])
    params = dict(temperature=0.5, top_k=2, logit_bias={3: 4.0}, logprobs_mode=None)
    z = np.array([0.0, 2.0, 1.0, 3.0])
    want = {
        "sampled": log_softmax64(np.where([False, True, False, True], z / 0.5, NEG)),
        "processed": log_softmax64(z / 0.5),
        "raw": log_softmax64(x),
    }
    for mode, lp in want.items():
        params["logprobs_mode"] = mode
        out = lk.sample(x, seed=3, top_logprobs=4, **params)
        tok = int(out.tokens)
        assert tok in (1, 3)
        np.testing.assert_allclose(out.logprobs, lp[tok], rtol=1e-13)
        np.testing.assert_allclose(out.top_logprobs, np.sort(lp)[::-1], rtol=1e-13)
        assert int(out.ranks) == int((lp >= lp[tok]).sum())
    # T = 0: sampled is a point mass, processed is log_softmax without temperature.
    t0 = [
        ("sampled", [NEG, NEG, NEG, 0.0]),
        ("processed", log_softmax64(z)),
        ("raw", log_softmax64(x)),
    ]
    for mode, lp in t0:
        out = lk.sample(x, temperature=0.0, logit_bias={3: 4.0}, top_logprobs=4, logprobs_mode=mode)
        lp = np.asarray(lp, dtype=np.float64)
        assert int(out.tokens) == 3
        np.testing.assert_allclose(out.logprobs, lp[3], rtol=1e-13, atol=0)
        assert int(out.ranks) == ref_rank(lp, 3) == (4 if mode == "raw" else 1)
        want_ids, want_lps = ref_top(np.asarray(lp, dtype=np.float64), 4)
        np.testing.assert_array_equal(out.top_ids, want_ids)
        np.testing.assert_allclose(out.top_logprobs, want_lps, rtol=1e-13)


def test_p15_rank_counts_ties_and_top_order_ties_by_id():
    """P15: rank = number of tokens whose logprob >= the chosen one's (ties count); the top list
    orders equal logprobs by id ascending; -inf tokens come last, by id."""
    x = np.array([1.0, 2.0, 2.0, NEG, 1.0, 2.0])
    out = lk.sample(x, temperature=0.0, top_logprobs=6, logprobs_mode="raw")
    assert int(out.tokens) == 1 and int(out.ranks) == 3
    np.testing.assert_array_equal(out.top_ids, [1, 2, 5, 0, 4, 3])
    out = lk.sample(x, allowed_token_ids=[0, 4], top_logprobs=6, seed=0, logprobs_mode="raw")
    assert int(out.ranks) == 5
    out = lk.sample(x, allowed_token_ids=[0, 4], top_logprobs=6, seed=0)  # sampled
    assert int(out.ranks) == 2
    np.testing.assert_array_equal(out.top_ids, [0, 4, 1, 2, 3, 5])
    np.testing.assert_allclose(out.top_logprobs[:2], [np.log(0.5)] * 2, rtol=1e-14)
    assert np.isneginf(out.top_logprobs[2:]).all()


def test_p15_shapes_types_and_return_forms():
    """P15: SampleOutput shapes (rows_shape and rows_shape + (n,)), dtypes; return_logprobs=True
    with top_logprobs=0 returns (tokens, logprobs); top_logprobs=V is allowed."""
    x = RNG.normal(size=(2, 3, 7))
    out = lk.sample(x, seed=1, top_logprobs=3)
    assert isinstance(out, lk.SampleOutput) and isinstance(out, tuple) and len(out) == 5
    assert out._fields == ("tokens", "logprobs", "ranks", "top_ids", "top_logprobs")
    assert out.tokens.shape == (2, 3) and out.tokens.dtype == np.int64
    assert out.logprobs.shape == (2, 3) and out.logprobs.dtype == np.float64
    assert out.ranks.shape == (2, 3) and out.ranks.dtype == np.int64
    assert out.top_ids.shape == (2, 3, 3) and out.top_ids.dtype == np.int64
    assert out.top_logprobs.shape == (2, 3, 3) and out.top_logprobs.dtype == np.float64
    same = lk.sample(x, seed=1, top_logprobs=3, return_logprobs=True)
    for a, b in zip(out, same):
        np.testing.assert_array_equal(a, b)
    # The token does not depend on top_logprobs or return_logprobs.
    np.testing.assert_array_equal(lk.sample(x, seed=1), out.tokens)
    toks, lps = lk.sample(x, seed=1, return_logprobs=True, top_logprobs=0)
    np.testing.assert_array_equal(toks, out.tokens)
    np.testing.assert_array_equal(lps, out.logprobs)
    r = lk.sample(x, seed=1, return_logprobs=True)
    assert type(r) is tuple and len(r) == 2
    # 1-D logits: scalars and (n,) arrays.
    one = lk.sample(x[0, 0], seed=1, top_logprobs=7)
    assert np.ndim(one.tokens) == 0 and np.ndim(one.logprobs) == 0 and np.ndim(one.ranks) == 0
    assert one.top_ids.shape == (7,) and sorted(one.top_ids.tolist()) == list(range(7))
    # Zero rows.
    z = lk.sample(np.zeros((0, 5)), top_logprobs=2, seed=0)
    assert z.tokens.shape == (0,) and z.top_ids.shape == (0, 2)


@pytest.mark.parametrize("n", [-1, 8, 100, 2**70])
def test_p15_top_logprobs_out_of_range(n):
    """P15: top_logprobs outside [0, V] -> ValueError naming it."""
    check_error(lambda: lk.sample(np.zeros((2, 7)), top_logprobs=n), "top_logprobs")


def test_p15_top_logprobs_and_mode_wrong_values():
    """P15/R7: a non-integer top_logprobs, an unknown logprobs_mode -> ValueError (TypeError for
    a wrong type), naming the parameter; in Sampler too."""
    x = np.zeros((2, 7))
    check_error(lambda: lk.sample(x, top_logprobs=1.5), "top_logprobs", exc=(TypeError, ValueError))
    check_error(lambda: lk.sample(x, top_logprobs="2"), "top_logprobs", exc=(TypeError, ValueError))
    check_error(lambda: lk.sample(x, logprobs_mode="logits"), "logprobs_mode")
    check_error(lambda: lk.sample(x, logprobs_mode="Sampled"), "logprobs_mode")
    check_error(lambda: lk.sample(x, logprobs_mode=1), "logprobs_mode", exc=(TypeError, ValueError))
    check_error(lambda: lk.Sampler(logprobs_mode="x"), "logprobs_mode")
    check_error(lambda: lk.Sampler(top_logprobs=-2), "top_logprobs")
    s = lk.Sampler(top_logprobs=8, seed=0)
    check_error(lambda: s(x), "top_logprobs")
    assert s.calls == 0


def test_p15_sampled_logprobs_equal_return_logprobs_and_filter_logits():
    """P15/P1/P7: sampled logprobs are log_softmax(filter_logits(...)) at the token."""
    x = RNG.normal(size=(500, 30)) * 2
    params = dict(top_p=0.8, min_p=0.02, temperature=0.7, repetition_penalty=1.4,
                  output_tokens=[[1, 2, 3]] * 500, logit_bias={5: 1.0})
    out = lk.sample(x, seed=4, top_logprobs=5, **params)
    f = lk.filter_logits(x, **params)
    ls = np.stack([log_softmax64(r) for r in f])
    np.testing.assert_allclose(out.logprobs, ls[np.arange(500), out.tokens], rtol=1e-12, atol=1e-12)
    assert np.isfinite(f[np.arange(500), out.tokens]).all()


# ============================================================================================
# P16 token_logprobs
# ============================================================================================


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("temperature", [1.0, 0.3, "per-row"])
def test_p16_token_logprobs_match_log_softmax(dtype, temperature):
    """P16: log_softmax(logits / T) at the ids, in the logits' float dtype, to S8's accuracy;
    ranks as P15."""
    rng = np.random.default_rng(16)
    x = (rng.normal(size=(4, 5, 300)) * 4).astype(dtype)
    x[0, 0, :10] = NEG
    ids = rng.integers(0, 300, size=(4, 5))
    ids[0, 0] = 3  # a -inf logit
    ids[1, 1] = int(np.argmax(x[1, 1]))
    t = rng.uniform(0.2, 3.0, size=(4, 5)) if temperature == "per-row" else temperature
    lp, ranks = lk.token_logprobs(x, ids, temperature=t, return_ranks=True)
    assert lp.shape == (4, 5) and lp.dtype == np.dtype(dtype)
    assert ranks.shape == (4, 5) and ranks.dtype == np.int64
    tt = np.broadcast_to(np.asarray(t, dtype=np.float64), (4, 5))
    for i in np.ndindex(4, 5):
        ref = log_softmax64(x[i].astype(np.float64) / tt[i])
        want = ref[ids[i]]
        if np.isneginf(want):
            assert np.isneginf(lp[i])
        else:
            tol = (2e-6 if dtype == np.float32 else 1e-13) * max(1.0, abs(want))
            assert abs(float(lp[i]) - want) <= tol, (i, lp[i], want)
        assert ranks[i] == ref_rank(ref, ids[i]), (i, ranks[i])
    assert ranks[1, 1] == 1
    assert ranks[0, 0] == 300  # every logprob is >= -inf
    np.testing.assert_array_equal(lk.token_logprobs(x, ids, temperature=t), lp)


def test_p16_token_logprobs_float16_and_one_d():
    """P16: float16 logits give float16 within one rounding of the float32 result; 1-D logits
    take a scalar id and give a scalar."""
    x = (RNG.normal(size=(3, 50)) * 2).astype(np.float16)
    ids = np.array([0, 17, 49])
    lp = lk.token_logprobs(x, ids, temperature=0.8)
    assert lp.dtype == np.float16
    for i in range(3):
        want = log_softmax64(x[i].astype(np.float64) / 0.8)[ids[i]]
        w16 = np.float16(want)
        assert abs(float(lp[i]) - want) <= float(np.spacing(np.abs(w16))) + abs(float(w16) - want)
    one = lk.token_logprobs(np.log([0.5, 0.25, 0.25]), 2, return_ranks=True)
    assert np.ndim(one[0]) == 0 and np.ndim(one[1]) == 0
    assert abs(float(one[0]) - np.log(0.25)) < 1e-15 and int(one[1]) == 3
    assert int(lk.token_logprobs([1.0, 1.0, 0.0], 0, return_ranks=True)[1]) == 2


def test_p16_token_logprobs_agree_with_sample_logprobs():
    """P16/P15: token_logprobs at the sampled tokens equals sample's raw-mode logprobs at T=1
    and its processed-mode logprobs without processing."""
    x = RNG.normal(size=(200, 40))
    out = lk.sample(x, seed=5, temperature=0.6, top_logprobs=1, logprobs_mode="processed")
    lp, ranks = lk.token_logprobs(x, out.tokens, temperature=0.6, return_ranks=True)
    np.testing.assert_allclose(lp, out.logprobs, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(ranks, out.ranks)


def test_p16_nan_rows_give_nan():
    """P16/S6: a row holding NaN or +inf gives NaN, other rows are unaffected."""
    x = np.zeros((3, 4))
    x[0, 1] = np.nan
    x[2, 3] = np.inf
    lp = lk.token_logprobs(x, [0, 0, 0])
    assert np.isnan(lp[0]) and np.isnan(lp[2]) and abs(lp[1] - np.log(0.25)) < 1e-15


@pytest.mark.parametrize(
    "ids, words",
    [
        ([0, 1], ["token_ids"]),
        ([[0, 1, 2]], ["token_ids"]),
        ([0, 1, 5], ["token_ids", "5"]),
        ([0, -1, 2], ["token_ids", "-1"]),
        ([0, 1, 99], ["token_ids", "row 2", "99"]),
    ],
)
def test_p16_bad_token_ids(ids, words):
    """P16: token_ids of the wrong shape or an id outside [0, V) -> ValueError."""
    check_error(lambda: lk.token_logprobs(np.zeros((3, 5)), ids), *words)


def test_p16_bad_token_ids_type_and_temperature():
    """P16: float token ids are refused naming token_ids; T <= 0, NaN or inf -> ValueError
    naming temperature (S4)."""
    x = np.zeros((3, 5))
    check_error(
        lambda: lk.token_logprobs(x, [0.0, 1.0, 2.0]), "token_ids", exc=(TypeError, ValueError)
    )
    for t in (0.0, -1.0, np.nan, np.inf, [1.0, 0.0, 1.0]):
        check_error(lambda: lk.token_logprobs(x, [0, 1, 2], temperature=t), "temperature")
    check_error(lambda: lk.token_logprobs(x, [0, 1, 2], temperature=[1.0, 2.0]), "temperature")


# ============================================================================================
# P17 Sampler
# ============================================================================================


def logits_stream(steps, rows, v, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(rows, v)) * 2 for _ in range(steps)]


SAMPLER_PARAMS = dict(
    repetition_penalty=1.8, frequency_penalty=0.3, presence_penalty=0.5,
    bad_words=[[2, 3], [7]], min_tokens=3, stop_token_ids=[0], logit_bias={1: 0.5},
)


def test_p17_greedy_sampler_equals_stepwise_sample():
    """P17: a sampler's call draws as sample with its histories as output_tokens (greedy:
    exactly the same tokens, step by step)."""
    prompts = [[4, 4, 5], [9], []]
    s = lk.Sampler(temperature=0.0, prompt_tokens=prompts, seed=1, **SAMPLER_PARAMS)
    hist = [[], [], []]
    for x in logits_stream(12, 3, 10):
        want = lk.sample(
            x, temperature=0.0, prompt_tokens=prompts, output_tokens=hist, **SAMPLER_PARAMS
        )
        ref = Ref(x, temperature=0.0, prompt_tokens=prompts, output_tokens=hist, **SAMPLER_PARAMS)
        np.testing.assert_array_equal(want, ref.greedy())
        got = s(x)
        np.testing.assert_array_equal(got, want)
        hist = [h + [int(t)] for h, t in zip(hist, got)]
        assert [o.tolist() for o in s.output_tokens] == hist
    assert s.calls == 12


def test_p17_sampler_draws_from_the_distribution_sample_would_use():
    """P17: at T > 0 each call's token is kept by, and its logprob and top list equal those of,
    sample / filter_logits with the sampler's histories as output_tokens."""
    prompts = [[1, 2, 3], [3, 3], [], [5, 6, 7, 8]]
    params = dict(top_p=0.9, temperature=0.9, **SAMPLER_PARAMS)
    for mode in MODES:
        s = lk.Sampler(seed=11, prompt_tokens=prompts, top_logprobs=4, logprobs_mode=mode, **params)
        for x in logits_stream(8, 4, 10, seed=3):
            hist = [o.tolist() for o in s.output_tokens]
            out = s(x)
            assert isinstance(out, lk.SampleOutput)
            f = lk.filter_logits(x, prompt_tokens=prompts, output_tokens=hist, **params)
            assert np.isfinite(f[np.arange(4), out.tokens]).all()
            ref = lk.sample(x, seed=0, prompt_tokens=prompts, output_tokens=hist, top_logprobs=4,
                            logprobs_mode=mode, **params)
            np.testing.assert_array_equal(out.top_ids, ref.top_ids)
            np.testing.assert_allclose(out.top_logprobs, ref.top_logprobs, rtol=1e-12)
            r = Ref(x, prompt_tokens=prompts, output_tokens=hist, **params)
            lp = r.logprobs(mode)
            rows = np.arange(4)
            np.testing.assert_allclose(out.logprobs, lp[rows, out.tokens], rtol=1e-9, atol=1e-12)
            want_ranks = [ref_rank(lp[i], t) for i, t in enumerate(out.tokens)]
            np.testing.assert_array_equal(out.ranks, want_ranks)


def test_p17_sampler_chi_square_with_prompts_and_accept():
    """P4/P17: a sampler's draws follow the distribution of its prompts and accepted tokens."""
    n = N_DRAWS
    x = np.tile(BASE, (n, 1))
    params = dict(repetition_penalty=2.0, frequency_penalty=0.5, temperature=1.2)
    s = lk.Sampler(seed=21, prompt_tokens=[[7, 10]] * n, **params)
    first = s(x)
    chi2_check(first, Ref(BASE, prompt_tokens=[7, 10], **params).probs()[0], "first call")
    s.reset()
    s.accept([[2, 2]] * n)
    second = s(x)
    chi2_check(second, Ref(BASE, prompt_tokens=[7, 10], output_tokens=[2, 2], **params).probs()[0],
               "after accept")


def test_p17_same_seed_same_sequence_and_calls_differ():
    """P17/P6: two samplers with the same seed give the same tokens; consecutive calls differ."""
    xs = logits_stream(5, 64, 20, seed=9)
    kw = dict(seed=123, temperature=1.0, repetition_penalty=1.3, prompt_tokens=[[1]] * 64)
    a, b = lk.Sampler(**kw), lk.Sampler(**kw)
    seq_a = [a(x) for x in xs]
    seq_b = [b(x) for x in xs]
    for u, w in zip(seq_a, seq_b):
        np.testing.assert_array_equal(u, w)
    c = lk.Sampler(**{**kw, "seed": 124})
    assert any((c(x) != u).any() for x, u in zip(xs, seq_a))
    # Consecutive calls on the same logits are not copies of one another.
    d = lk.Sampler(seed=5)
    y = np.zeros((64, 20))
    assert (d(y) != d(y)).any()


def test_p17_accept_appends_without_advancing_the_seed_stream():
    """P17: accept appends tokens (one per row, or R sequences) and does not advance the stream:
    without history-dependent parameters the draws are those of a sampler that never accepted."""
    y = np.zeros((32, 50))
    a, b = lk.Sampler(seed=8), lk.Sampler(seed=8)
    ta0, tb0 = a(y), b(y)
    np.testing.assert_array_equal(ta0, tb0)
    a.accept(np.arange(32))
    a.accept([[1, 2]] * 32)
    assert a.calls == 1
    ta1, tb1 = a(y), b(y)
    np.testing.assert_array_equal(ta1, tb1)
    outs = a.output_tokens
    assert len(outs) == 32 and all(o.dtype == np.int64 for o in outs)
    assert outs[5].tolist() == [int(ta0[5]), 5, 1, 2, int(ta1[5])]


def test_p17_accept_forms_and_histories_feed_the_pipeline():
    """P17: accept takes an int (one row), R ints, or R per-row sequences; accepted tokens count
    for the penalties and bad words like drawn ones."""
    s = lk.Sampler(temperature=0.0, seed=0)
    s.accept(3)
    assert [o.tolist() for o in s.output_tokens] == [[3]]
    s.accept([[4, 5]])
    s.accept(np.int64(6))
    assert [o.tolist() for o in s.output_tokens] == [[3, 4, 5, 6]]
    s2 = lk.Sampler(temperature=0.0, seed=0, bad_words=[[3, 1]], presence_penalty=10.0)
    s2.accept([[0, 3], [0, 2]])
    got = s2(np.array([[5.0, 4.0, 3.0, 0.0], [0.0, 4.0, 3.0, 0.0]]))
    # row 0: 0 and 3 penalised, 1 banned (output ends with 3) -> 2; row 1: 0 and 2 penalised,
    # 1 allowed (output ends with 2) -> 1
    np.testing.assert_array_equal(got, [2, 1])
    assert [o.tolist() for o in s2.output_tokens] == [[0, 3, 2], [0, 2, 1]]


def test_p17_output_tokens_before_any_call():
    """P17: output_tokens is an empty list before the row count is known, R empty int64 arrays
    once prompt_tokens fix it."""
    assert lk.Sampler(seed=0).output_tokens == []
    s = lk.Sampler(seed=0, prompt_tokens=[[1, 2], [3]])
    outs = s.output_tokens
    assert isinstance(outs, list) and len(outs) == 2
    assert all(isinstance(o, np.ndarray) and o.dtype == np.int64 and o.size == 0 for o in outs)
    s1 = lk.Sampler(seed=0, prompt_tokens=[1, 2, 3])  # a flat sequence is one row
    assert len(s1.output_tokens) == 1
    s3 = lk.Sampler(seed=0, prompt_tokens=padded([[1, 2], [3], []]))
    assert len(s3.output_tokens) == 3


def test_p17_padded_prompt_array_is_read_as_prompts():
    """P17/P10: a padded (R, L) prompt array sets each row's prompt (padding is not a token)."""
    prompts = [[1, 2], [3], []]
    x = np.tile(np.array([1.0, 3.0, 2.9, 2.8, 0.5]), (3, 1))
    kw = dict(temperature=0.0, repetition_penalty=3.0, presence_penalty=0.1)
    s = lk.Sampler(prompt_tokens=padded(prompts), **kw)
    hist = [[], [], []]
    for _ in range(4):
        want = lk.sample(x, prompt_tokens=prompts, output_tokens=hist, **kw)
        np.testing.assert_array_equal(s(x), want)
        hist = [h + [int(t)] for h, t in zip(hist, want)]
    assert hist[0][0] == 3 and hist[1][0] == 1 and hist[2][0] == 1


def test_p17_reset_restarts_stream_keeps_prompts_and_row_count():
    """P17: reset() empties the outputs, restarts the seed stream (the same tokens again) and
    keeps the prompts (still penalised) and the row count."""
    xs = logits_stream(6, 8, 12, seed=4)
    prompts = [[int(np.argmax(r))] for r in xs[0]]
    s = lk.Sampler(seed=77, repetition_penalty=50.0, prompt_tokens=prompts, temperature=0.5)
    first = [s(x) for x in xs]
    s.reset()
    assert s.calls == 0 and [o.size for o in s.output_tokens] == [0] * 8
    again = [s(x) for x in xs]
    for u, w in zip(first, again):
        np.testing.assert_array_equal(u, w)
    # The prompt is still penalised after reset: greedy avoids each row's prompt token.
    g = lk.Sampler(temperature=0.0, repetition_penalty=50.0, prompt_tokens=prompts)
    g(xs[0])
    g.reset()
    tok = g(xs[0])
    assert all(int(t) != p[0] for t, p in zip(tok, prompts))
    check_error(lambda: s(np.zeros((3, 12))), "row")


def test_p17_row_count_fixed_by_prompts_or_first_call():
    """P17: another row count than the prompts' or the first call's -> ValueError; the sampler
    keeps working with its own row count."""
    s = lk.Sampler(seed=0, prompt_tokens=[[1], [2]])
    with pytest.raises(ValueError):
        s(np.zeros((3, 5)))
    with pytest.raises(ValueError):
        s(np.zeros(5))
    assert s.calls == 0
    s(np.zeros((2, 5)))
    t = lk.Sampler(seed=0)
    t(np.zeros((4, 5)))
    with pytest.raises(ValueError):
        t(np.zeros((2, 5)))
    with pytest.raises(ValueError):
        t.accept([1, 2])
    assert t.calls == 1 and len(t.output_tokens) == 4
    # One row given as 1-D logits: 1-D logits return a scalar each call.
    u = lk.Sampler(seed=0, temperature=0.0)
    assert np.ndim(u(np.array([0.0, 1.0]))) == 0
    assert np.ndim(u(np.array([0.0, 1.0]))) == 0
    assert u.output_tokens[0].tolist() == [1, 1]


def test_p17_failed_first_call_does_not_fix_row_count():
    """P17: a call that raises changes nothing, so a failed first call leaves the row count
    unknown (output_tokens stays []) and a later call with another row count works."""
    s = lk.Sampler(seed=0)
    bad = np.zeros((2, 5))
    bad[1, 0] = np.nan
    with pytest.raises(ValueError):
        s(bad)
    assert s.output_tokens == []
    s(np.zeros((3, 5)))


def test_p17_failed_call_changes_nothing():
    """P17/P8: a call that raises leaves histories and calls unchanged; the next draw is the one
    a sampler without the failed call makes."""
    prompts = [[0], [1]]
    kw = dict(seed=31, prompt_tokens=prompts, logit_bias=[{4: 1.0}, None], repetition_penalty=1.5)
    a, b = lk.Sampler(**kw), lk.Sampler(**kw)
    x = RNG.normal(size=(2, 6))
    np.testing.assert_array_equal(a(x), b(x))
    before = [o.tolist() for o in a.output_tokens]
    nan = x.copy()
    nan[0, 2] = np.nan
    failures = [
        lambda: a(nan),
        lambda: a(np.zeros((2, 4))),  # bias id 4 >= V
        lambda: a(np.zeros((3, 6))),
        lambda: a(np.zeros((2, 0))),
        lambda: a.accept([[1], [2], [3]]),
        lambda: a.accept([[1], [-2]]),
    ]
    for f in failures:
        with pytest.raises(ValueError):
            f()
        assert a.calls == 1
        assert [o.tolist() for o in a.output_tokens] == before
    for _ in range(3):
        np.testing.assert_array_equal(a(x), b(x))


def test_p17_bad_prompt_id_names_prompt_tokens():
    """P10/P17: a prompt id outside the vocabulary -> ValueError naming prompt_tokens, the row
    and the id; a negative one at construction."""
    check_error(lambda: lk.Sampler(prompt_tokens=[[1], [-4]]), "prompt_tokens", "-4")
    s = lk.Sampler(seed=0, prompt_tokens=[[1], [9]])
    msg = check_error(lambda: s(np.zeros((2, 5))), "row 1", "9")
    assert "prompt_tokens" in msg, f"message names the wrong parameter: {msg!r}"


def test_p17_sampler_parameter_errors():
    """P17: bad values are refused at construction; per-row arrays and id lists are checked
    against each call's rows and vocabulary, naming the parameter; sample's logits-only
    parameters are not accepted."""
    for kw, name in [
        (dict(temperature=-1.0), "temperature"),
        (dict(repetition_penalty=0.0), "repetition_penalty"),
        (dict(logit_bias={1: np.nan}), "logit_bias"),
        (dict(bad_words=[[]]), "bad_words"),
        (dict(min_tokens=2), "min_tokens"),
        (dict(top_logprobs=-1), "top_logprobs"),
    ]:
        check_error(lambda: lk.Sampler(**kw), name)
    x = np.zeros((2, 5))
    for kw, name in [
        (dict(temperature=[0.5, 1.0, 1.0]), "temperature"),
        (dict(allowed_token_ids=[[0], [1], [2]]), "allowed_token_ids"),
        (dict(allowed_token_ids=[0, 7]), "allowed_token_ids"),
        (dict(token_bitmask=np.zeros((3, 1), np.int32)), "token_bitmask"),
        (dict(stop_token_ids=[9], min_tokens=1), "stop_token_ids"),
        (dict(logit_bias=[{0: 1.0}]), "logit_bias"),
    ]:
        s = lk.Sampler(seed=0, **kw)
        check_error(lambda: s(x), name)
        assert s.calls == 0
    for kw in (dict(output_tokens=[[1]]), dict(return_logprobs=True)):
        with pytest.raises(TypeError):
            lk.Sampler(**kw)


def test_p17_sampler_per_row_parameters_and_return_forms():
    """P17: per-row parameters apply to the sampler's rows; return_logprobs and top_logprobs
    give the forms sample gives."""
    s = lk.Sampler(temperature=[0.0, 0.0], allowed_token_ids=[[1], None],
                   logit_bias=[None, {0: 10.0}], seed=0)
    x = np.array([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]])
    np.testing.assert_array_equal(s(x), [1, 0])
    toks, lps = s(x, return_logprobs=True)
    np.testing.assert_array_equal(toks, [1, 0])
    np.testing.assert_array_equal(lps, [0.0, 0.0])
    s2 = lk.Sampler(temperature=0.0, top_logprobs=2, logprobs_mode="raw", seed=0)
    out = s2(x)
    assert isinstance(out, lk.SampleOutput) and out.top_ids.shape == (2, 2)
    np.testing.assert_array_equal(out.top_ids, [[2, 1], [2, 1]])


def test_p17_sampler_min_tokens_and_frequency_count_its_history():
    """P17/P11/P13: min_tokens counts the sampler's output (drawn and accepted tokens); the
    frequency penalty counts them too, and reset() forgets them."""
    x = np.array([[0.0, 1.0, 2.0, 3.0]])  # token 3 (the stop token) is the greedy one
    s = lk.Sampler(temperature=0.0, min_tokens=3, stop_token_ids=[3], seed=0)
    assert [int(s(x)[0]) for _ in range(2)] == [2, 2]
    s.accept([[0]])
    assert int(s(x)[0]) == 3  # 3 output tokens: the stop token is allowed
    s.reset()
    assert int(s(x)[0]) == 2
    f = lk.Sampler(temperature=0.0, frequency_penalty=0.6, seed=0)
    seq = [int(f(x[0])) for _ in range(6)]
    # by hand: 3 (3.0), 3 (2.4 > 2), 2 (2 > 1.8), 3 (1.8 > 1.4), 2 (1.4 > 1.2), 3 (1.2 > 1.0)
    hist = []
    for _ in range(6):
        tok = lk.sample(x[0], temperature=0.0, frequency_penalty=0.6, output_tokens=hist)
        hist.append(int(tok))
    assert seq == hist == [3, 3, 2, 3, 2, 3]


def test_p17_one_d_logits_and_flat_prompt():
    """P17/P10: a flat prompt is one row, and 1-D logits are one row."""
    s = lk.Sampler(temperature=0.0, prompt_tokens=[0, 2], repetition_penalty=4.0)
    tok = s(np.array([3.0, 2.0, 2.5]))
    assert np.ndim(tok) == 0 and int(tok) == 1
    assert [o.tolist() for o in s.output_tokens] == [[1]]
    with pytest.raises(ValueError):
        s(np.zeros((2, 3)))


# ============================================================================================
# Defaults and bad input across the board
# ============================================================================================

NEW_DEFAULTS = dict(
    top_logprobs=0, logprobs_mode="sampled", allowed_token_ids=None, token_bitmask=None,
    bad_words=None, min_tokens=0, stop_token_ids=None, logit_bias=None, repetition_penalty=1.0,
    frequency_penalty=0.0, presence_penalty=0.0, prompt_tokens=None, output_tokens=None,
)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize(
    "p3",
    [dict(), dict(temperature=0.7, top_p=0.9), dict(top_k=5, min_p=0.05), dict(temperature=0.0)],
)
def test_p14_parameters_at_their_defaults_change_nothing(dtype, p3):
    """P10-P15: passing every new parameter at its default (or an empty bias / bad_words, or
    histories without any penalty) gives the same tokens and filtered logits as not passing
    them."""
    x = (RNG.normal(size=(300, 40)) * 2).astype(dtype)
    base = lk.sample(x, seed=3, **p3)
    base_lp = lk.sample(x, seed=3, return_logprobs=True, **p3)[1]
    np.testing.assert_array_equal(lk.sample(x, seed=3, **p3, **NEW_DEFAULTS), base)
    hist = [[1, 2, 3]] * 300
    for extra in (
        dict(logit_bias={}),
        dict(bad_words=[]),
        dict(stop_token_ids=[0, 1]),
        dict(prompt_tokens=hist, output_tokens=hist),
        dict(logit_bias=[None] * 300, allowed_token_ids=[None] * 300),
        dict(frequency_penalty=np.zeros(300), repetition_penalty=np.ones(300)),
    ):
        np.testing.assert_array_equal(lk.sample(x, seed=3, **p3, **extra), base, err_msg=str(extra))
        lp = lk.sample(x, seed=3, return_logprobs=True, **p3, **extra)[1]
        np.testing.assert_array_equal(lp, base_lp)
    fdefaults = {
        k: v for k, v in NEW_DEFAULTS.items() if k not in ("top_logprobs", "logprobs_mode")
    }
    np.testing.assert_array_equal(
        lk.filter_logits(x, **p3, **fdefaults), lk.filter_logits(x, **p3)
    )
    sdefaults = {k: v for k, v in NEW_DEFAULTS.items() if k != "output_tokens"}
    a, b = lk.Sampler(seed=9, **p3), lk.Sampler(seed=9, **p3, **sdefaults)
    for _ in range(3):
        np.testing.assert_array_equal(a(x), b(x))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(allowed_token_ids="abc"), "allowed_token_ids"),
        (dict(allowed_token_ids=[0.5]), "allowed_token_ids"),
        (dict(bad_words=5), "bad_words"),
        (dict(bad_words=[[1.5]]), "bad_words"),
        (dict(stop_token_ids=[1.5], min_tokens=1), "stop_token_ids"),
        (dict(stop_token_ids=[-1], min_tokens=1), "stop_token_ids"),
        (dict(min_tokens="3", stop_token_ids=[1]), "min_tokens"),
        (dict(prompt_tokens="abc"), "prompt_tokens"),
        (dict(output_tokens=[[0.5], [1]]), "output_tokens"),
        (dict(token_bitmask="abc"), "token_bitmask"),
    ],
)
def test_bad_input_wrong_types_name_the_parameter(kwargs, name):
    """P10-P13/R7 (bad input): a parameter of the wrong type -> TypeError or ValueError naming
    it."""
    x = np.zeros((2, 5))
    for f in (lk.sample, lk.filter_logits):
        check_error(lambda: f(x, **kwargs), name, exc=(TypeError, ValueError))


def test_signatures_take_every_pipeline_parameter():
    """P10-P17: sample, filter_logits and Sampler take the parameters the contract lists."""
    import inspect

    def params_of(f):
        sig = getattr(f, "__text_signature__", None)
        return set(re.findall(r"(\w+)=", sig or str(inspect.signature(f))))

    pipeline = set(PIPELINE_DEFAULTS)
    extra = {"seed", "top_logprobs", "logprobs_mode"}
    assert pipeline | extra | {"return_logprobs"} <= params_of(lk.sample)
    assert pipeline <= params_of(lk.filter_logits)
    assert (pipeline - {"output_tokens"}) | extra <= params_of(lk.Sampler)
    assert {"temperature", "return_ranks"} <= params_of(lk.token_logprobs)


def test_p17_accept_refuses_ids_outside_the_last_vocabulary_and_appends_nothing():
    """P17 (our choice): once a draw has fixed V, accept() checks ids against it, so a bad id
    cannot leave the sampler failing on every later call; nothing is appended by a refused
    accept."""
    s = lk.Sampler(seed=0)
    s(np.zeros((2, 5)))
    before = [o.tolist() for o in s.output_tokens]
    check_error(lambda: s.accept([[1], [7]]), "tokens")
    assert [o.tolist() for o in s.output_tokens] == before
    s.accept([[1], [4]])
    s(np.zeros((2, 5)))
    assert [len(o) for o in s.output_tokens] == [3, 3]


def test_p11_a_byte_swapped_int32_bitmask_is_read_by_value():
    # Found by a review: '>i4' was refused as "not int32" (big-endian logits were accepted).
    x = np.zeros((2, 64), np.float32)
    words = np.array([[6, 0], [9, 1 << 31]], np.int64)
    native = lk.filter_logits(x, token_bitmask=words.astype("<i4"))
    swapped = lk.filter_logits(x, token_bitmask=words.astype(">i4"))
    np.testing.assert_array_equal(native, swapped)
    assert np.isfinite(native[0]).sum() == 2 and np.isfinite(native[1]).sum() == 3


@pytest.mark.parametrize("name", ["temperature", "top_p", "min_p", "presence_penalty"])
@pytest.mark.parametrize("kind", ["requires_grad", "bfloat16"])
def test_p2_per_row_torch_tensors_numpy_cannot_read_are_taken_by_value(name, kind):
    # Found by a review: torch's own TypeError/RuntimeError leaked out.
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).standard_normal((2, 50)).astype(np.float32)
    values = {"temperature": [0.5, 2.0], "top_p": [0.5, 0.875], "min_p": [0.0, 0.25],
              "presence_penalty": [0.5, 1.5]}[name]
    if kind == "requires_grad":
        t = torch.tensor(values, dtype=torch.float32, requires_grad=True)
    else:
        t = torch.tensor(values, dtype=torch.bfloat16)
    want = np.asarray(values, np.float64)
    if kind == "bfloat16":
        want = t.float().numpy().astype(np.float64)
    extra = {"output_tokens": [[1, 2], [3]]} if name == "presence_penalty" else {}
    got = lk.filter_logits(x, **{name: t}, **extra)
    np.testing.assert_array_equal(got, lk.filter_logits(x, **{name: want}, **extra))


def test_p10_sampler_accept_with_the_wrong_row_count_names_tokens():
    # Found by a review: the message named "logits rows", which accept() does not take.
    s = lk.Sampler(seed=0)
    s(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match=r"^tokens \(one sequence per row of the sampler\) has length 2, expected 3"):
        s.accept([1, 2])


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_p18_evenly_spaced_rows_are_read_in_place_with_the_same_draws(dtype):
    """logits[:, -1, :] of a (batch, positions, V) array (rows 2V apart), a broadcast row
    (stride 0) and a reversed batch (negative stride, each row copied as it is read) give the
    draws, filtered logits and token log-probabilities of their C-contiguous copies; the evenly
    spaced ones are not copied (P18, R1)."""
    dt = float_dtype(dtype)
    rng = np.random.default_rng(7)
    full = (rng.standard_normal((16, 2, 5000)) * 3).astype(dt)
    views = [full[:, -1, :], full[:, 0, :], np.broadcast_to(full[0, 0], (5, 5000)), full[::-1, 1, :]]
    kw = dict(temperature=0.8, top_p=0.9, seed=3, return_logprobs=True)
    for v in views:
        c = np.ascontiguousarray(v)
        got, want = lk.sample(v, **kw), lk.sample(c, **kw)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
        s1, s2 = lk.Sampler(top_k=50, seed=9), lk.Sampler(top_k=50, seed=9)
        for _ in range(3):
            np.testing.assert_array_equal(s1(v), s2(c))
        np.testing.assert_array_equal(
            lk.filter_logits(v, top_k=7, temperature=0.5), lk.filter_logits(c, top_k=7, temperature=0.5)
        )
        ids = np.arange(len(v)) % 5000
        for g, w in zip(lk.token_logprobs(v, ids, return_ranks=True), lk.token_logprobs(c, ids, return_ranks=True)):
            np.testing.assert_array_equal(g, w)
    # No copy of the evenly spaced rows: far less allocated than the view holds.
    big = (rng.standard_normal((64, 2, 20000))).astype(np.float32)[:, -1, :]
    for call in (lambda: lk.sample(big, seed=1), lambda: lk.token_logprobs(big, np.zeros(64, np.int64))):
        peak = traced_peak(call)
        assert peak < big.nbytes // 8, (peak, big.nbytes)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_r1_rows_of_any_layout_are_read_a_row_at_a_time_with_the_same_draws(dtype):
    """R1, R8: logits whose rows' elements are not adjacent (Fortran order, a transposed
    batch, a reversed or every-other vocabulary, a (V, B) array's transpose) give the draws,
    Sampler draws, filtered logits and token log-probabilities of their C-contiguous copies,
    and the sampling functions copy each row as they read it, not the whole array."""
    dt = float_dtype(dtype)
    rng = np.random.default_rng(11)
    x3 = (rng.standard_normal((3, 4, 37)) * 3).astype(dt)
    x2 = (rng.standard_normal((9, 6)) * 3).astype(dt)
    views = [
        np.asfortranarray(x3),
        np.asfortranarray(x2),
        np.ascontiguousarray(x2.T).T,
        np.ascontiguousarray(np.swapaxes(x3, 0, 1)).swapaxes(0, 1),
        np.ascontiguousarray(x3[..., ::-1])[..., ::-1],
        np.ascontiguousarray(x2[::-1, ::-1])[::-1, ::-1],
        np.repeat(x3, 2, axis=-1)[..., ::2],
        np.asfortranarray(x2[:, :1]),  # V = 1
        np.broadcast_to(x2[:, :1], x2.shape),  # one value along the vocabulary (stride 0)
        np.broadcast_to(x3[0, 0, 0], x3.shape),  # one value everywhere
        x3[1, 2, ::-2],  # one row, every other token backwards
    ]
    for v in views:
        c = np.ascontiguousarray(v)
        assert not v.flags.c_contiguous or v.shape[-1] == 1
        rows = c.shape[:-1]
        for kw in (
            dict(temperature=0.0),
            dict(temperature=0.8, top_p=0.9, seed=3, return_logprobs=True, top_logprobs=min(2, c.shape[-1])),
            dict(temperature=1.2, min_p=0.05, seed=np.arange(int(np.prod(rows)), dtype=np.uint64).reshape(rows)),
        ):
            got, want = lk.sample(v, **kw), lk.sample(c, **kw)
            for g, w in zip(got if isinstance(got, tuple) else [got], want if isinstance(want, tuple) else [want]):
                np.testing.assert_array_equal(g, w)
        s1, s2 = lk.Sampler(top_k=3, seed=9), lk.Sampler(top_k=3, seed=9)
        for _ in range(2):
            np.testing.assert_array_equal(s1(v), s2(c))
        hist = [[0, 0]] * len(c) if c.ndim == 2 else None  # a penalty: a processed row
        fkw = dict(top_k=2, temperature=0.5, repetition_penalty=1.3, output_tokens=hist)
        np.testing.assert_array_equal(lk.filter_logits(v, **fkw), lk.filter_logits(c, **fkw))
        ids = (np.arange(int(np.prod(rows))) % c.shape[-1]).reshape(rows)
        for g, w in zip(lk.token_logprobs(v, ids, return_ranks=True), lk.token_logprobs(c, ids, return_ranks=True)):
            np.testing.assert_array_equal(g, w)
    # No copy of the array: far less allocated than it holds.
    big = np.asfortranarray(rng.standard_normal((2048, 512)).astype(np.float32))
    calls = (
        lambda: lk.sample(big, seed=1),
        lambda: lk.filter_logits(big, top_p=0.5),
        lambda: lk.token_logprobs(big, np.zeros(2048, np.int64)),
        lambda: lk.Sampler(seed=2)(big),
    )
    for call in calls:
        peak = traced_peak(call)
        # filter_logits returns a new array of the logits' size; the others a row's worth.
        allowed = big.nbytes + big.nbytes // 8 if call is calls[1] else big.nbytes // 8
        assert peak < allowed, (peak, big.nbytes)


def test_p17_ids_accepted_before_the_first_call_are_checked_at_it():
    """P17: before its first call a Sampler knows no vocabulary, so accept() takes any id; the
    call that finds one outside [0, V) raises a ValueError naming the sampler's history and how
    to clear it, changes nothing, and reset() makes the sampler usable again."""
    s = lk.Sampler(seed=1)
    s.accept([100])
    logits = np.zeros((1, 8), np.float32)
    for _ in range(2):
        with pytest.raises(ValueError, match=r"output_tokens must be .*\(the sampler's history; reset\(\) clears it\), got token id 100 in row 0"):
            s(logits)
    assert s.output_tokens == [[100]]
    s.reset()
    assert 0 <= int(s(logits)[0]) < 8


def test_p17_accept_takes_the_tokens_of_a_batch_of_several_dimensions():
    """P17 (found by a review): for logits of shape (B, S, V) a Sampler returns tokens of shape
    (B, S); `accept` refused them as B per-row sequences. They are one token per row, in the
    rows' order; per-row sequences (first axis = the row count) keep their meaning."""
    x = np.random.default_rng(3).normal(size=(3, 4, 10)).astype(np.float32)
    s = lk.Sampler(seed=1, repetition_penalty=1.5)
    t = s(x)
    assert t.shape == (3, 4)
    s.accept(t)
    s.accept(t.tolist())
    hist = s.output_tokens
    assert len(hist) == 12
    flat = t.reshape(-1)
    for r in range(12):
        assert hist[r].tolist() == [flat[r]] * 3
    # A (12, 2) array is two tokens for each of the 12 rows.
    s.accept(np.stack([flat, flat], axis=1))
    assert all(len(h) == 5 for h in s.output_tokens)
    with pytest.raises(ValueError, match="tokens"):
        s.accept(np.zeros((2, 3), np.int64))


NUMERIC_PARAMS = dict(
    temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, min_tokens=0, repetition_penalty=1.0,
    frequency_penalty=0.0, presence_penalty=0.0, typical_p=1.0, top_n_sigma=0.0,
    epsilon_cutoff=0.0, eta_cutoff=0.0, xtc_threshold=0.1, xtc_probability=0.0,
    dynatemp_range=0.0, dynatemp_exponent=1.0, dry_multiplier=0.0, dry_base=1.75,
    dry_allowed_length=2, dry_penalty_last_n=-1,
)


@pytest.mark.parametrize("name", sorted(NUMERIC_PARAMS))
def test_p2_none_for_a_numeric_parameter_is_its_default(name):
    """P2 (documented choice): `None` for a numeric parameter means its default, as for
    `temperature`; a `None` inside a per-row list is a TypeError naming the parameter."""
    x = np.random.default_rng(5).standard_normal((2, 9)).astype(np.float32)
    hist = [[1, 2, 1, 2, 1], [3]]
    on = dict(output_tokens=hist, xtc_probability=0.5, dry_multiplier=0.8, dynatemp_range=0.3)
    for base in ({}, on):
        default = {**base, name: base.get(name, NUMERIC_PARAMS[name])}
        with_none = {**default, name: None}
        if name in base:
            continue  # the parameter is set by `on`: None would turn it off
        np.testing.assert_array_equal(lk.filter_logits(x, **with_none), lk.filter_logits(x, **default))
        np.testing.assert_array_equal(lk.sample(x, seed=4, **with_none), lk.sample(x, seed=4, **default))
    with pytest.raises(TypeError, match=name):
        lk.filter_logits(x, **{name: [NUMERIC_PARAMS[name], None]})
