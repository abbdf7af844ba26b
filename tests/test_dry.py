"""P24: DRY ("Don't Repeat Yourself", llama.cpp's DRY penalty) against a slow pure-Python
float64 reference of llama.cpp's algorithm on random histories, llama.cpp's literal
`test_dry` cases, a chi-square test of `sample`, bad values, rows never left empty, per-row
parameters, the default disabling it bit for bit, `Sampler` against `sample` on the same
history, thread counts, the transformers processor, and `verify_draft` not taking it."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import logitkit

# llama.cpp's FLOAT_MAX_LOG, as a float32.
FLOAT_MAX_LOG = float(np.float32(88.7228391))


def ref_dry(x, history, multiplier=0.0, base=1.75, allowed=2, last_n=-1, breakers=()):
    """P24 by the book, float64: llama.cpp's `llama_sampler_dry_apply` with each breaker one
    token, the repeats found by direct (quadratic) suffix matching instead of the Z-algorithm."""
    out = np.array(x, dtype=np.float64)
    if multiplier == 0 or last_n == 0:
        return out
    h = list(history)
    if last_n > 0:
        h = h[-last_n:]
    n = len(h)
    if n <= allowed:
        return out
    # The restart limit: the distance from the end to the last breaker.
    limit = next((i for i in range(n) if h[n - 1 - i] in breakers), n)
    if limit < allowed:
        return out
    best = {}
    for end in range(n - 1):
        length = 0
        while length <= end and h[end - length] == h[n - 1 - length]:
            length += 1
        length = min(length, limit)
        tok = h[end + 1]
        if length >= allowed and tok not in breakers:
            best[tok] = max(best.get(tok, 0), length)
    max_exp = int(FLOAT_MAX_LOG / math.log(base)) if base > 1.000001 else 0
    for tok, length in best.items():
        e = length - allowed
        if max_exp > 0 and e > max_exp:
            e = max_exp
        v = out[tok] - multiplier * base ** e
        out[tok] = v if v != -np.inf else np.finfo(np.float64).min
    return out


def dry_kw(multiplier, base, allowed, last_n, breakers):
    return dict(dry_multiplier=multiplier, dry_base=base, dry_allowed_length=allowed,
                dry_penalty_last_n=last_n, dry_sequence_breakers=list(breakers))


# --- the reference -------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    v=st.integers(1, 6),
    hist=st.lists(st.integers(0, 5), max_size=70),
    multiplier=st.sampled_from([0.0, 0.5, 1.0, 2.5]),
    base=st.sampled_from([1.0, 1.0000005, 1.1, 1.75, 3.0]),
    allowed=st.integers(0, 4),
    last_n=st.integers(-1, 80),
    breakers=st.lists(st.integers(0, 5), max_size=3),
    seed=st.integers(0, 2**32 - 1),
)
def test_p24_matches_the_reference_on_random_histories(v, hist, multiplier, base, allowed,
                                                        last_n, breakers, seed):
    """P24: filter_logits (float64) equals the pure-Python reference exactly."""
    hist = [t % v for t in hist]
    breakers = [b for b in breakers if b < v]
    x = np.random.default_rng(seed).standard_normal(v)
    kw = dry_kw(multiplier, base, allowed, last_n, breakers)
    got = logitkit.filter_logits(x, output_tokens=hist, **kw)
    np.testing.assert_array_equal(got, ref_dry(x, hist, multiplier, base, allowed, last_n,
                                               breakers))


def test_p24_long_histories_with_breakers_and_last_n():
    """P24 over histories of a few thousand tokens with repeated phrases (breakers and last_n
    windows), several rows in one call as an (R, L) array padded with -1."""
    rng = np.random.default_rng(3)
    v = 50
    phrases = [rng.integers(0, v, size=rng.integers(2, 12)) for _ in range(6)]
    hists = []
    for r in range(4):
        h = np.concatenate([phrases[i] for i in rng.integers(0, 6, size=300 + 50 * r)])
        hists.append(h.tolist())
    width = max(map(len, hists))
    arr = np.full((4, width), -1, dtype=np.int64)
    for r, h in enumerate(hists):
        arr[r, :len(h)] = h
    x = rng.standard_normal((4, v))
    for last_n in (-1, 1, 7, 100, 10_000):
        for breakers in ([], [int(phrases[0][0])], [1, 2, 3]):
            kw = dry_kw(0.8, 1.75, 2, last_n, breakers)
            got = logitkit.filter_logits(x, output_tokens=arr, **kw)
            for r in range(4):
                want = ref_dry(x[r], hists[r], 0.8, 1.75, 2, last_n, breakers)
                np.testing.assert_array_equal(got[r], want)


def test_p24_exponent_clamp_and_no_empty_row():
    """P24: the exponent is clamped to 88.7228391 / ln(base); a penalty that overflows float32
    leaves the lowest finite logit, so a row is never left empty."""
    got = logitkit.filter_logits(np.zeros(2), output_tokens=[0] * 300, dry_multiplier=1.0)
    assert got[0] == -(1.75 ** 158) and got[1] == 0.0
    for dtype in (np.float32, np.float64):
        x = np.zeros(1, dtype=dtype)
        z = logitkit.filter_logits(x, output_tokens=[0] * 300, dry_multiplier=1e300
                                   if dtype == np.float64 else 2.0)
        assert np.isfinite(z).all()
        for t in (0.0, 1.0):
            tok, lp = logitkit.sample(x, output_tokens=[0] * 300, dry_multiplier=3.0,
                                      temperature=t, seed=1, return_logprobs=True)
            assert int(tok) == 0 and lp == 0.0


# --- llama.cpp's tests/test-sampling.cpp, literally ---------------------------------------

LLAMA_CASES = [
    # probs, last_tokens, expected, multiplier, base, allowed_length, penalty_last_n, breakers
    ([0.25] * 4, [0, 1], [0.25] * 4, 1.0, 1.1, 2, 4, []),
    ([0.25] * 4, [0, 1, 2, 0, 1], [0.296923, 0.296923, 0.109232, 0.296923], 1.0, 1.1, 2, 5, []),
    ([0.2] * 5, [0, 1, 3, 4, 0, 1], [0.2] * 5, 1.0, 1.1, 2, 6, [3]),
    ([0.2] * 5, [0, 1, 2, 0, 1], [0.241818, 0.241818, 0.032727, 0.241818, 0.241818],
     2.0, 1.1, 2, 5, []),
    ([0.2] * 5, [0, 1, 2, 3, 4, 0, 1], [0.2] * 5, 1.0, 1.1, 4, 7, []),
]


@pytest.mark.parametrize("case", LLAMA_CASES)
def test_p24_llama_cpp_dry_cases(case):
    """P24: llama.cpp's test_dry cases (log of the probabilities, DRY, softmax)."""
    probs, last, want, m, base, allowed, last_n, breakers = case
    x = np.log(np.array(probs, dtype=np.float32))
    z = logitkit.filter_logits(x, output_tokens=last, **dry_kw(m, base, allowed, last_n,
                                                                 breakers))
    np.testing.assert_allclose(logitkit.softmax(z), want, atol=1e-5)


# --- chi-square of sample -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_p24_chi_square_of_sample(dtype, temperature):
    """P24: sample with DRY on draws from softmax(reference / T)."""
    v = 12
    x = (np.random.default_rng(5).standard_normal(v) * 1.0).astype(dtype)
    hist = [1, 2, 3, 4, 9, 1, 2, 3, 5, 7, 1, 2, 3, 4, 9, 1, 2]
    kw = dry_kw(0.6, 1.5, 1, -1, [9])
    p = logitkit.softmax(ref_dry(x.astype(np.float64), hist, 0.6, 1.5, 1, -1, [9]) / temperature)
    n = 40000
    out = np.tile(np.array(hist, dtype=np.int64), (n, 1))
    toks = logitkit.sample(np.tile(x, (n, 1)), temperature=temperature, seed=123,
                           output_tokens=out, **kw)
    counts = np.bincount(toks, minlength=v)
    assert stats.chisquare(counts, n * p).pvalue > 1e-4
    # DRY moved mass: token 3 (after "1 2" before) is drawn less often than without it.
    assert p[3] < 0.5 * logitkit.softmax(x.astype(np.float64) / temperature)[3]


# --- bad values, per-row parameters, defaults ---------------------------------------------

BAD = [
    ("dry_multiplier", -0.5), ("dry_multiplier", np.nan), ("dry_multiplier", np.inf),
    ("dry_base", 0.5), ("dry_base", np.inf), ("dry_base", np.nan),
    ("dry_allowed_length", -1), ("dry_penalty_last_n", -2),
]


@pytest.mark.parametrize("name,value", BAD)
def test_p24_bad_values_raise_value_error_naming_parameter(name, value):
    """P24: a bad value -> ValueError naming the parameter and the value, in sample,
    filter_logits and Sampler."""
    x = np.zeros((2, 5))
    shown = {"nan": "nan", "inf": "inf"}.get(str(value), str(value))
    for call in (lambda: logitkit.sample(x, seed=0, **{name: value}),
                 lambda: logitkit.filter_logits(x, **{name: value}),
                 lambda: logitkit.Sampler(**{name: value})):
        with pytest.raises(ValueError, match=name) as e:
            call()
        assert shown.lower() in str(e.value).lower()


def test_p24_bad_breakers_and_shapes():
    """P24: breaker ids outside [0, V) or negative, and per-row arrays of the wrong shape."""
    x = np.zeros((2, 5))
    for bad in ([5], [-3], [1.5]):
        with pytest.raises(ValueError, match="dry_sequence_breakers"):
            logitkit.filter_logits(x, dry_multiplier=1.0, dry_sequence_breakers=bad)
    with pytest.raises(ValueError, match="dry_multiplier"):
        logitkit.sample(x, dry_multiplier=[1.0, 1.0, 1.0], seed=0)
    with pytest.raises(ValueError, match="dry_penalty_last_n"):
        logitkit.sample(x, dry_penalty_last_n=[1, 2, 3], seed=0)
    s = logitkit.Sampler(dry_multiplier=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="dry_multiplier"):
        s(x)


def test_p24_per_row_parameters():
    """P24: each scalar parameter may be one value per row."""
    rng = np.random.default_rng(7)
    v, r = 6, 4
    x = rng.standard_normal((2, 2, v))
    hists = [rng.integers(0, 3, size=30).tolist() for _ in range(r)]
    mult = np.array([[0.0, 0.5], [1.5, 2.0]])
    base = np.array([[1.2, 1.75], [1.0, 2.5]])
    allowed = np.array([[0, 1], [2, 3]])
    last_n = np.array([[-1, 10], [0, 25]])
    got = logitkit.filter_logits(x, output_tokens=hists, dry_multiplier=mult, dry_base=base,
                                 dry_allowed_length=allowed, dry_penalty_last_n=last_n,
                                 dry_sequence_breakers=[2]).reshape(r, v)
    flat = x.reshape(r, v)
    for i in range(r):
        a, b = divmod(i, 2)
        want = ref_dry(flat[i], hists[i], mult[a, b], base[a, b], int(allowed[a, b]),
                       int(last_n[a, b]), [2])
        np.testing.assert_array_equal(got[i], want)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_p24_default_disables_it_bit_for_bit(dtype):
    """P24: dry_multiplier=0 (the default), or dry_penalty_last_n=0, is no DRY at all, bit for
    bit, whatever the other DRY parameters."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 200)).astype(dtype)
    hist = rng.integers(0, 4, size=(3, 300))
    kw = dict(temperature=0.8, top_p=0.95, presence_penalty=0.2, output_tokens=hist)
    want = logitkit.filter_logits(x, **kw)
    want_s = logitkit.sample(x, seed=5, return_logprobs=True, **kw)
    for off in (dict(dry_multiplier=0.0, dry_base=3.0, dry_allowed_length=0,
                     dry_sequence_breakers=[1]),
                dict(dry_multiplier=2.0, dry_penalty_last_n=0),
                dict(dry_base=1.75, dry_allowed_length=2, dry_penalty_last_n=-1)):
        got = logitkit.filter_logits(x, **kw, **off)
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
        got_s = logitkit.sample(x, seed=5, return_logprobs=True, **kw, **off)
        np.testing.assert_array_equal(got_s[0], want_s[0])
        np.testing.assert_array_equal(got_s[1], want_s[1])


def test_p24_applied_after_the_penalties():
    """P24: DRY is subtracted after the repetition, frequency and presence penalties."""
    x = np.array([2.0, 1.0, 3.0, -1.0])
    hist = [0, 1, 2, 3, 0, 1]
    pen = dict(repetition_penalty=1.3, frequency_penalty=0.2, presence_penalty=0.1)
    after_pen = logitkit.filter_logits(x, output_tokens=hist, **pen)
    got = logitkit.filter_logits(x, output_tokens=hist, dry_multiplier=0.7, **pen)
    np.testing.assert_array_equal(got, ref_dry(after_pen, hist, 0.7))


# --- Sampler, threads, transformers, verify_draft -----------------------------------------


def test_p24_sampler_matches_sample_over_the_same_history():
    """P24, P17: each Sampler step (greedy, processed logprobs and top_logprobs) equals sample
    given the sampler's history as output_tokens, tokens accepted from elsewhere included;
    and DRY steers the sampler's decoding."""
    rng = np.random.default_rng(9)
    v = 30
    kw = dict(temperature=0.0, dry_multiplier=[0.9, 1.6], dry_allowed_length=[2, 1],
              dry_penalty_last_n=[-1, 40], dry_sequence_breakers=[7], frequency_penalty=0.05,
              top_logprobs=4, logprobs_mode="processed")
    s = logitkit.Sampler(seed=3, **kw)
    fav = np.where(np.arange(v) < 5, 3.0, 0.0)
    for step in range(200):
        x = fav + 0.5 * rng.standard_normal((2, v))
        if step % 13 == 4:
            s.accept([int(rng.integers(v)), 7])
            continue
        hist = [h.tolist() for h in s.output_tokens] or [[], []]
        want = logitkit.sample(x, output_tokens=hist, seed=0, **kw)
        got = s(x)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    x = fav + 0.01 * np.arange(2 * v).reshape(2, v) % 0.07
    a = logitkit.Sampler(seed=1, temperature=0.0, dry_multiplier=1.0)
    b = logitkit.Sampler(seed=1, temperature=0.0)
    for _ in range(40):
        a(x)
        b(x)
    assert a.output_tokens[0].tolist() != b.output_tokens[0].tolist()
    # reset() empties the history DRY reads.
    a.reset()
    assert int(a(x)[0]) == int(logitkit.Sampler(temperature=0.0)(x)[0])


def test_p24_results_do_not_depend_on_threads():
    """P24: 1 and 2 threads give the same results."""
    rng = np.random.default_rng(14)
    x = rng.standard_normal((3, 70000)).astype(np.float32)
    hist = rng.integers(0, 20, size=(3, 2000))
    kw = dict(output_tokens=hist, dry_multiplier=0.8, dry_sequence_breakers=[3])
    before = logitkit.get_num_threads()
    try:
        res = []
        for n in (1, 2):
            logitkit.set_num_threads(n)
            res.append((logitkit.sample(x, seed=3, **kw), logitkit.filter_logits(x, **kw)))
    finally:
        logitkit.set_num_threads(before)
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


def test_p24_transformers_logits_processor_passes_dry_through():
    """P24, P19: the Hugging Face processor applies DRY to the tokens generated since the
    prompt."""
    torch = pytest.importorskip("torch")
    from logitkit.transformers import LogitsProcessor

    kw = dict(dry_multiplier=0.8, dry_allowed_length=1, dry_sequence_breakers=[5])
    proc = LogitsProcessor(**kw)
    rng = np.random.default_rng(2)
    ids = torch.tensor([[1, 2, 3], [4, 4, 4]])
    out = [[], []]
    for _ in range(12):
        x = rng.standard_normal((2, 8)).astype(np.float32)
        got = np.asarray(proc(ids, torch.tensor(x)))
        np.testing.assert_array_equal(got, logitkit.filter_logits(x, output_tokens=out, **kw))
        nxt = [int(t) for t in rng.integers(0, 4, size=2)]
        out = [o + [t] for o, t in zip(out, nxt)]
        ids = torch.cat([ids, torch.tensor(nxt)[:, None]], dim=1)


def test_p24_verify_draft_does_not_take_dry():
    """P24, V2: verify_draft applies P3's processing only; it takes no DRY parameter (a
    TypeError, as for the penalties; the Rust verify_draft refuses DRY with a ValueError-class
    error)."""
    x = np.zeros((1, 3, 4))
    for name in ("dry_multiplier", "dry_base", "dry_allowed_length", "dry_penalty_last_n",
                 "dry_sequence_breakers"):
        with pytest.raises(TypeError, match=name):
            logitkit.verify_draft(x, np.array([[0, 1]]), seed=0, **{name: 1})
