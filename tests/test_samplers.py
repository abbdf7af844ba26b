"""P20-P26: the samplers after min-p (typical-p, top-n-sigma, epsilon and eta cutoffs, XTC) and
the dynamic temperature, against a slow NumPy float64 reference, Hugging Face's warpers, the
literal cases of llama.cpp's tests/test-sampling.cpp, chi-square tests of `sample`, bad values,
per-row parameters and thread counts."""

import numpy as np
import pytest
from scipy import stats

import logitkit

NEG = -np.inf


# --- the slow reference (float64, sorts) --------------------------------------------------


def ref_probs(z, kept):
    """Probabilities over the kept tokens of scaled logits z."""
    p = np.zeros_like(z)
    zk = z[kept]
    e = np.exp(zk - zk.max())
    p[kept] = e / e.sum()
    return p


def ref_order(z, keys_desc):
    """Token ids by key descending, then id ascending."""
    return sorted(range(len(z)), key=lambda j: (-keys_desc[j], j))


def ref_kept(x, T=1.0, top_p=1.0, typical_p=1.0, top_n_sigma=0.0, epsilon=0.0, eta=0.0,
             xtc=None, dynatemp=None):
    """The kept set (bool array) and the scaled logits of one float64 row after P3's top-p and
    the stages of P20-P23; `xtc` = (threshold, applied?); `dynatemp` = (range, exponent)."""
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x)
    if dynatemp is not None and dynatemp[0] > 0:
        T = ref_dynatemp(x, T, *dynatemp)
    z = x / T
    kept = finite.copy()
    if top_p < 1.0:
        p = ref_probs(z, kept)
        order = ref_order(z, z)
        cum, new = 0.0, np.zeros_like(kept)
        for j in order:
            if not kept[j]:
                continue
            new[j] = True
            cum += p[j]
            if cum >= top_p:
                break
        kept = new
    if typical_p < 1.0 and kept.sum() > 1:
        p = ref_probs(z, kept)
        pk = p[kept]
        H = -(pk * np.log(pk)).sum()
        key = np.full(len(x), np.inf)
        key[kept] = np.abs(-np.log(p[kept]) - H)
        order = sorted(np.flatnonzero(kept), key=lambda j: (key[j], j))
        cum, new = 0.0, np.zeros_like(kept)
        for j in order:
            new[j] = True
            cum += p[j]
            if cum >= typical_p:
                break
        kept = new
    if top_n_sigma > 0 and kept.sum() > 1:
        zk = z[kept]
        sigma = zk.std()  # population
        kept = kept & (z >= zk.max() - top_n_sigma * sigma)
    for cut in ("eps", "eta"):
        v = epsilon if cut == "eps" else eta
        if v > 0 and kept.sum() > 1:
            p = ref_probs(z, kept)
            if cut == "eta":
                pk = p[kept]
                H = -(pk * np.log(pk)).sum()
                v = min(v, np.sqrt(v) * np.exp(-H))
            new = kept & (p >= v)
            if not new.any():
                new = kept & (p == p[kept].max())
            kept = new
    if xtc is not None and xtc[1] and kept.sum() > 1:
        p = ref_probs(z, kept)
        top = [j for j in ref_order(z, p) if kept[j] and p[j] >= xtc[0]]
        if len(top) >= 2:
            for j in top[:-1]:
                kept[j] = False
    return kept, z


def ref_dynatemp(x, T, rng_, exp_):
    x = np.asarray(x, dtype=np.float64)
    f = np.isfinite(x)
    n = f.sum()
    if T == 0 or n <= 1:
        return T
    p = np.exp(x[f] - x[f].max())
    p /= p.sum()
    nz = p[p > 0]
    H = -(nz * np.log(nz)).sum()
    norm = min(max(H / np.log(n), 0.0), 1.0)
    lo, hi = max(0.0, T - rng_), min(T + rng_, np.finfo(np.float64).max)  # documented cap
    return lo + (hi - lo) * norm**exp_


def rows(seed, r=6, v=300, scale=3.0):
    return np.random.default_rng(seed).standard_normal((r, v)) * scale


def check_against_ref(x, ref_kw, kw):
    out = logitkit.filter_logits(x, **kw)
    for i in range(x.shape[0]):
        kept, z = ref_kept(x[i], **ref_kw)
        np.testing.assert_array_equal(np.isfinite(out[i]), kept, err_msg=f"row {i}")
        np.testing.assert_allclose(out[i][kept], z[kept], rtol=1e-12)


STAGES = {
    "p20_typical": (dict(typical_p=0.6), dict(typical_p=0.6)),
    "p21_top_n_sigma": (dict(top_n_sigma=1.2), dict(top_n_sigma=1.2)),
    "p22_epsilon": (dict(epsilon=0.01), dict(epsilon_cutoff=0.01)),
    "p22_eta": (dict(eta=0.02), dict(eta_cutoff=0.02)),
    "p23_xtc": (dict(xtc=(0.05, True)), dict(xtc_threshold=0.05, xtc_probability=1.0)),
}


# --- against the float64 reference --------------------------------------------------------


@pytest.mark.parametrize("name", sorted(STAGES))
@pytest.mark.parametrize("seed", range(6))
def test_p20_p23_each_stage_matches_float64_reference(name, seed):
    ref_kw, kw = STAGES[name]
    x = rows(seed)
    check_against_ref(x, dict(ref_kw, T=0.8), dict(kw, temperature=0.8))
    # After top-p: over the tokens still kept, renormalised.
    check_against_ref(x, dict(ref_kw, T=0.8, top_p=0.9), dict(kw, temperature=0.8, top_p=0.9))


@pytest.mark.parametrize("seed", range(6))
def test_p20_p23_all_stages_in_order_match_reference(seed):
    x = rows(100 + seed, scale=2.0)
    ref_kw = dict(T=1.1, top_p=0.97, typical_p=0.9, top_n_sigma=2.5, epsilon=0.001, eta=0.003,
                  xtc=(0.08, True))
    kw = dict(temperature=1.1, top_p=0.97, typical_p=0.9, top_n_sigma=2.5, epsilon_cutoff=0.001,
              eta_cutoff=0.003, xtc_threshold=0.08, xtc_probability=1.0)
    check_against_ref(x, ref_kw, kw)


@pytest.mark.parametrize("seed", range(4))
def test_p20_p23_large_row_matches_reference(seed):
    # A kept set of thousands of tokens: typical-p's bucket search, not only its sort.
    x = rows(200 + seed, r=2, v=20000, scale=0.5)
    for ref_kw, kw in STAGES.values():
        check_against_ref(x, ref_kw, kw)


@pytest.mark.parametrize("seed", range(6))
def test_p26_dynatemp_matches_reference(seed):
    x = rows(300 + seed)
    x[0, :5] = NEG  # banned tokens are not counted in n
    for T, r, e in [(0.8, 0.5, 1.0), (1.0, 2.0, 0.5), (0.3, 0.3, 2.0), (1.5, 0.1, 0.0)]:
        out = logitkit.filter_logits(x, temperature=T, dynatemp_range=r, dynatemp_exponent=e)
        for i in range(x.shape[0]):
            Td = ref_dynatemp(x[i], T, r, e)
            f = np.isfinite(x[i])
            np.testing.assert_allclose(out[i][f], x[i][f] / Td, rtol=1e-12)
            assert np.all(out[i][~f] == NEG)


def test_p26_dynatemp_zero_temperature_is_greedy_and_range_zero_is_fixed():
    x = np.array([0.0, 3.0, 1.0, 3.0])
    assert int(logitkit.sample(x, temperature=0.0, dynatemp_range=1.0, seed=1)) == 1
    np.testing.assert_array_equal(
        logitkit.filter_logits(x, temperature=0.7, dynatemp_range=0.0),
        logitkit.filter_logits(x, temperature=0.7),
    )
    # A dynamic temperature of 0 (range >= T, entropy exactly 0: the others' weights underflow)
    # is greedy: the token keeps its logit unscaled (P7).
    peaked = np.array([0.0, 2000.0, 0.0])
    assert logitkit.filter_logits(peaked, temperature=0.5, dynatemp_range=0.5).tolist() == [
        NEG, 2000.0, NEG]


def test_p26_dynatemp_temperature_and_range_summing_past_the_largest_double():
    # T + r overflows: hi is the largest finite temperature, and the row comes out (nearly)
    # flat, not as an error (R2) nor as a report of another thread's write (R3).
    x = np.array([0.0, 1.0, 2.0])
    for T, r in [(1e308, 1e308), (1.7e308, 1e308)]:
        out = logitkit.filter_logits(x, temperature=T, dynatemp_range=r)
        Td = ref_dynatemp(x, T, r, 1.0)
        assert np.isfinite(Td) and Td > 1e307
        np.testing.assert_allclose(out, x / Td, rtol=1e-12)
        assert 0 <= int(logitkit.sample(x, temperature=T, dynatemp_range=r, seed=0)) < 3
        tok, lp = logitkit.sample(np.stack([x, x]), temperature=T, dynatemp_range=r, seed=1,
                                  return_logprobs=True)
        np.testing.assert_allclose(lp, np.log(1 / 3), rtol=1e-9)


def test_p26_dynatemp_with_filters_and_logprobs():
    x = rows(7, r=3)
    out = logitkit.filter_logits(x, temperature=0.9, dynatemp_range=0.4, top_p=0.8)
    for i in range(3):
        Td = ref_dynatemp(x[i], 0.9, 0.4, 1.0)
        kept, z = ref_kept(x[i], T=Td, top_p=0.8)
        np.testing.assert_array_equal(np.isfinite(out[i]), kept)
    tok, lp = logitkit.sample(x, temperature=0.9, dynatemp_range=0.4, top_p=0.8, seed=3,
                              return_logprobs=True)
    ls = out - np.log(np.exp(out - out.max(1, keepdims=True)).sum(1, keepdims=True)) - out.max(1, keepdims=True)
    np.testing.assert_allclose(lp, ls[np.arange(3), tok], rtol=1e-9, atol=1e-12)


# --- against Hugging Face's warpers -------------------------------------------------------

torch = pytest.importorskip("torch")
tf = pytest.importorskip("transformers")


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_p20_p22_match_hugging_face_warpers(seed, dtype):
    """P20, P22: the kept sets of Hugging Face's TypicalLogitsWarper, EpsilonLogitsWarper and
    EtaLogitsWarper."""
    from transformers import EpsilonLogitsWarper, EtaLogitsWarper, TypicalLogitsWarper

    x = rows(400 + seed, r=4, v=500).astype(dtype)
    scores = torch.tensor(x)
    ids = torch.zeros((4, 1), dtype=torch.long)
    cases = [
        (TypicalLogitsWarper(0.7), dict(typical_p=0.7)),
        (TypicalLogitsWarper(0.2), dict(typical_p=0.2)),
        (EpsilonLogitsWarper(0.003), dict(epsilon_cutoff=0.003)),
        (EpsilonLogitsWarper(0.5), dict(epsilon_cutoff=0.5)),  # nothing passes: the top one
        (EtaLogitsWarper(0.004), dict(eta_cutoff=0.004)),
        (EtaLogitsWarper(0.3), dict(eta_cutoff=0.3)),
    ]
    for warper, kw in cases:
        want = warper(ids, scores.clone()).numpy()
        got = logitkit.filter_logits(x, **kw)
        np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want), err_msg=str(kw))
        np.testing.assert_array_equal(got[np.isfinite(got)], want[np.isfinite(want)])


def test_p20_p22_hugging_face_after_top_p():
    from transformers import (EtaLogitsWarper, LogitsProcessorList, TemperatureLogitsWarper,
                              TopPLogitsWarper, TypicalLogitsWarper)

    x = rows(9, r=4, v=400)
    chain = LogitsProcessorList([TemperatureLogitsWarper(0.7), TopPLogitsWarper(0.95),
                                 TypicalLogitsWarper(0.8), EtaLogitsWarper(0.01)])
    want = chain(torch.zeros((4, 1), dtype=torch.long), torch.tensor(x)).numpy()
    got = logitkit.filter_logits(x, temperature=0.7, top_p=0.95, typical_p=0.8, eta_cutoff=0.01)
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
    np.testing.assert_allclose(got[np.isfinite(got)], want[np.isfinite(want)], rtol=1e-12)


def test_p20_p26_transformers_logits_processor_passes_them_through():
    from logitkit.transformers import LogitsProcessor

    x = rows(11, r=2, v=64).astype(np.float32)
    kw = dict(temperature=0.9, typical_p=0.8, top_n_sigma=2.0, epsilon_cutoff=0.001,
              eta_cutoff=0.001, xtc_threshold=0.1, xtc_probability=0.5, dynatemp_range=0.2)
    got = LogitsProcessor(**kw)(torch.tensor([[1], [2]]), torch.tensor(x))
    np.testing.assert_array_equal(np.asarray(got), logitkit.filter_logits(x, **kw))


# --- llama.cpp's tests/test-sampling.cpp, literally ---------------------------------------


def kept_probs(probs, **kw):
    out = logitkit.filter_logits(np.log(np.array(probs, dtype=np.float32)), **kw)
    return logitkit.softmax(out.astype(np.float64))


def test_p20_llama_cpp_typical_cases():
    p = kept_probs([0.97, 0.01, 0.01, 0.01], typical_p=0.5)
    np.testing.assert_allclose(p, [1.0, 0, 0, 0], atol=1e-5)
    p = kept_probs([0.4, 0.2, 0.2, 0.2], typical_p=0.5)
    np.testing.assert_allclose(p, [0, 1 / 3, 1 / 3, 1 / 3], atol=1e-5)


def test_p21_llama_cpp_top_n_sigma_cases():
    """P21: llama.cpp's top_n_sigma cases (tests/test-sampling.cpp), literally."""
    probs = [0.1, 0.2, 0.3, 0.4]
    np.testing.assert_allclose(kept_probs(probs, top_n_sigma=1.0), [0, 0, 0.428571, 0.571429],
                               atol=1e-5)
    np.testing.assert_allclose(kept_probs(probs, top_n_sigma=0.0), probs, atol=1e-5)
    np.testing.assert_allclose(kept_probs(probs, top_n_sigma=3.0), probs, atol=1e-5)


@pytest.mark.parametrize(
    "t, kept",
    [(0.09, [3]), (0.19, [2, 3]), (0.29, [1, 2, 3]), (0.39, [0, 1, 2, 3])],
)
def test_p23_llama_cpp_xtc_cases(t, kept):
    # llama.cpp tosses its coin with probability 0.99 from its own generator and expects it to
    # come up; here probability 1 applies XTC for sure, and 0.99 gives the mixture law.
    probs = np.array([0.4, 0.3, 0.2, 0.1])
    p = kept_probs(probs, xtc_threshold=t, xtc_probability=1.0)
    want = np.zeros(4)
    want[kept] = probs[kept] / probs[kept].sum()
    np.testing.assert_allclose(p, want, atol=1e-6)
    mix = kept_probs(probs, xtc_threshold=t, xtc_probability=0.99)
    np.testing.assert_allclose(mix, 0.99 * want + 0.01 * probs, atol=1e-6)


def test_p26_llama_cpp_temp_ext_cases():
    probs = [0.1, 0.2, 0.3, 0.4]
    np.testing.assert_allclose(
        kept_probs(probs, temperature=1.0, dynatemp_range=0.0, dynatemp_exponent=1.0), probs,
        atol=1e-5)
    np.testing.assert_allclose(
        kept_probs(probs, temperature=0.0, dynatemp_range=0.0, dynatemp_exponent=1.0),
        [0, 0, 0, 1.0], atol=1e-5)


# --- chi-square of sample -----------------------------------------------------------------

CHI_CASES = {
    "p20": dict(typical_p=0.7),
    "p21": dict(top_n_sigma=1.0),
    "p22_eps": dict(epsilon_cutoff=0.03),
    "p22_eta": dict(eta_cutoff=0.05),
    "p23": dict(xtc_threshold=0.1, xtc_probability=0.6),
    # With top-p and no other stage, a row whose coin says no is drawn by top-p's rejection
    # (no list): the law is still the mixture of both outcomes.
    "p23_top_p": dict(top_p=0.9, xtc_threshold=0.1, xtc_probability=0.6),
    # With top-p, a row where no token can reach XTC's threshold is drawn by rejection, no list
    # (whatever the coin says): here the largest probability is 0.48 of the row's weight,
    # under 0.6 of the least the kept set can weigh (0.9 of it).
    "p23_top_p_unreachable": dict(top_p=0.9, xtc_threshold=0.6, xtc_probability=0.6),
    # Only the largest (0.48) can reach 0.3 of what the kept set weighs at least, the next
    # (0.21) cannot: XTC, which needs two, removes nothing, found by counting them.
    "p23_top_p_one_reaches": dict(top_p=0.9, xtc_threshold=0.3, xtc_probability=0.6),
    # Epsilon alone after top-p (and min-p) is drawn by top-p's rejection, no list.
    "p22_eps_top_p": dict(top_p=0.9, epsilon_cutoff=0.03),
    "p22_eps_top_p_min_p": dict(top_p=0.95, min_p=0.05, epsilon_cutoff=0.02),
    # Eta too: its threshold bounded from the whole row's entropy.
    "p22_eta_top_p": dict(top_p=0.9, eta_cutoff=0.05),
    "p22_eta_top_p_min_p": dict(top_p=0.95, min_p=0.05, eta_cutoff=0.02),
    "p26": dict(dynatemp_range=0.5, dynatemp_exponent=1.5),
    "all": dict(top_p=0.98, typical_p=0.95, epsilon_cutoff=0.005, xtc_threshold=0.15,
                xtc_probability=0.5, dynatemp_range=0.3),
}


@pytest.mark.parametrize("name", sorted(CHI_CASES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_p20_p26_chi_square_of_sample(name, dtype):
    kw = CHI_CASES[name]
    x = np.random.default_rng(5).standard_normal(12).astype(dtype) * 1.5
    p = logitkit.softmax(logitkit.filter_logits(x, temperature=0.9, **kw).astype(np.float64))
    n = 40000
    toks = logitkit.sample(np.tile(x, (n, 1)), temperature=0.9, seed=123, **kw)
    counts = np.bincount(toks, minlength=12)
    assert counts[p == 0].sum() == 0
    nz = p > 0
    assert stats.chisquare(counts[nz], n * p[nz]).pvalue > 1e-4


@pytest.mark.parametrize("stage, value, kept", [
    ("epsilon_cutoff", 0.052, True), ("epsilon_cutoff", 0.0545, False),
    ("eta_cutoff", 0.072, True), ("eta_cutoff", 0.0755, False),
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_p22_by_rejection_chi_square_at_its_bounds(stage, value, kept, dtype):
    """Top-p 0.9 keeps the first six (0.93); the 0.05 token is 0.0538 of them. Epsilon keeps
    it at 0.052 and removes it at 0.0545; the six's entropy puts eta's threshold at 0.0531
    for eta 0.072 (kept) and at 0.0544 for 0.0755 (removed). Either way the rejection draw's
    bounds (the kept weight 0.9 to 1 of the row, eta's entropy from the row's) cannot tell,
    and the kept set decides it. The law is the kept set's all the same."""
    probs = np.array([0.3, 0.25, 0.15, 0.1, 0.08, 0.05, 0.04, 0.03])
    x = np.log(probs).astype(dtype)
    kw = {"temperature": 1.0, "top_p": 0.9, stage: value}
    p = logitkit.softmax(logitkit.filter_logits(x, **kw).astype(np.float64))
    assert (p[5] > 0) == kept and p[6] == 0
    n = 40000
    toks = logitkit.sample(np.tile(x, (n, 1)), seed=11, **kw)
    counts = np.bincount(toks, minlength=8)
    assert counts[p == 0].sum() == 0
    nz = p > 0
    assert stats.chisquare(counts[nz], n * p[nz]).pvalue > 1e-4


# --- bad values, empty rows, per-row parameters, threads ----------------------------------

BAD = [
    ("typical_p", 0.0), ("typical_p", 1.5), ("typical_p", np.nan),
    ("top_n_sigma", -1.0), ("top_n_sigma", np.inf),
    ("epsilon_cutoff", 1.0), ("epsilon_cutoff", -0.1),
    ("eta_cutoff", 1.0), ("eta_cutoff", np.nan),
    ("xtc_threshold", 1.1), ("xtc_threshold", -0.5),
    ("xtc_probability", 2.0), ("xtc_probability", np.nan),
    ("dynatemp_range", -1.0), ("dynatemp_range", np.inf),
    ("dynatemp_exponent", -2.0), ("dynatemp_exponent", np.nan),
]


@pytest.mark.parametrize("name, value", BAD)
def test_p20_p26_bad_values_raise_value_error_naming_parameter(name, value):
    x = np.zeros((2, 5))
    for call in (lambda: logitkit.sample(x, **{name: value}),
                 lambda: logitkit.filter_logits(x, **{name: value}),
                 lambda: logitkit.Sampler(**{name: value})):
        with pytest.raises(ValueError, match=name) as e:
            call()
        assert f"{value:g}".lower() in str(e.value).lower()
    with pytest.raises(ValueError, match=name):
        logitkit.sample(x, **{name: [0.5, 0.5, 0.5]})  # wrong shape
    with pytest.raises(TypeError, match=name):
        logitkit.sample(x, **{name: "a"})


@pytest.mark.parametrize("seed", range(10))
def test_p20_p26_no_stage_leaves_a_row_empty(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((8, 50)) * rng.uniform(0.01, 30)
    x[:, : rng.integers(0, 49)] = NEG
    x[1] = 0.0  # flat
    x[2, 7] = 1e4  # peaked
    extreme = [dict(typical_p=1e-9), dict(top_n_sigma=1e-9), dict(epsilon_cutoff=0.999),
               dict(eta_cutoff=0.999), dict(xtc_threshold=0.0, xtc_probability=1.0),
               dict(typical_p=1e-3, top_n_sigma=1e-3, epsilon_cutoff=0.99, eta_cutoff=0.99,
                    xtc_threshold=0.0, xtc_probability=1.0, dynatemp_range=5.0)]
    for kw in extreme:
        out = logitkit.filter_logits(x, **kw)
        assert np.isfinite(out).any(axis=1).all(), kw
        toks = logitkit.sample(x, seed=seed, **kw)
        assert np.isfinite(out[np.arange(8), toks]).all(), kw


def test_p21_p22_always_keep_the_most_probable_token():
    """P21, P22: top_n_sigma and the epsilon/eta cutoffs keep the most probable token, however
    strict."""
    x = rows(12, r=8, v=100)
    for kw in [dict(top_n_sigma=1e-6), dict(epsilon_cutoff=0.9), dict(eta_cutoff=0.9)]:
        out = logitkit.filter_logits(x, **kw)
        assert np.isfinite(out[np.arange(8), x.argmax(1)]).all()


def test_p20_p23_typical_and_xtc_may_remove_the_most_probable_token():
    x = np.log(np.array([0.4, 0.2, 0.2, 0.2]))
    assert logitkit.filter_logits(x, typical_p=0.5)[0] == NEG
    x = np.log(np.array([0.5, 0.3, 0.2]))
    assert logitkit.filter_logits(x, xtc_threshold=0.25, xtc_probability=1.0)[0] == NEG


@pytest.mark.parametrize("name", sorted(STAGES) + ["p26"])
def test_p20_p26_per_row_parameters(name):
    x = rows(13, r=4)
    per = {
        "p20_typical": dict(typical_p=[0.3, 1.0, 0.9, 0.5]),
        "p21_top_n_sigma": dict(top_n_sigma=[0.5, 0.0, 2.0, 1.0]),
        "p22_epsilon": dict(epsilon_cutoff=[0.0, 0.01, 0.05, 0.2]),
        "p22_eta": dict(eta_cutoff=[0.0, 0.01, 0.05, 0.2]),
        "p23_xtc": dict(xtc_threshold=[0.05, 0.1, 0.2, 0.01], xtc_probability=[1, 0, 1, 1]),
        "p26": dict(dynatemp_range=[0.0, 0.5, 1.0, 2.0], dynatemp_exponent=[1, 2, 0.5, 1]),
    }[name]
    out = logitkit.filter_logits(x, temperature=0.8, **per)
    toks = logitkit.sample(x, temperature=0.8, seed=[5, 6, 7, 8], **per)
    for i in range(4):
        kw = {k: v[i] for k, v in per.items()}
        np.testing.assert_array_equal(out[i], logitkit.filter_logits(x[i], temperature=0.8, **kw))
        assert toks[i] == logitkit.sample(x[i], temperature=0.8, seed=[5, 6, 7, 8][i], **kw)
    # 2-D leading shape.
    out2 = logitkit.filter_logits(x.reshape(2, 2, -1), temperature=0.8,
                                  **{k: np.reshape(v, (2, 2)) for k, v in per.items()})
    np.testing.assert_array_equal(out2.reshape(4, -1), out)


@pytest.mark.parametrize("name", sorted(CHI_CASES))
def test_p20_p26_results_do_not_depend_on_threads(name):
    kw = CHI_CASES[name]
    x = rows(14, r=3, v=70000, scale=1.0).astype(np.float32)
    one = np.random.default_rng(0).standard_normal((1, 70000)).astype(np.float32)
    before = logitkit.get_num_threads()
    try:
        res = []
        for n in (1, 2):
            logitkit.set_num_threads(n)
            res.append((logitkit.sample(x, seed=3, **kw), logitkit.filter_logits(x, **kw),
                        logitkit.sample(one, seed=4, **kw), logitkit.filter_logits(one, **kw)))
    finally:
        logitkit.set_num_threads(before)
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


def test_p23_xtc_coin_uses_the_row_stream_and_is_reproducible():
    x = np.log(np.array([0.45, 0.35, 0.2]))
    xs = np.tile(x, (4000, 1))
    a = logitkit.sample(xs, xtc_threshold=0.3, xtc_probability=0.5, seed=9)
    b = logitkit.sample(xs, xtc_threshold=0.3, xtc_probability=0.5, seed=9)
    np.testing.assert_array_equal(a, b)
    # Per-row seeds: a row's token does not depend on its batch.
    seeds = np.arange(50)
    c = logitkit.sample(xs[:50], xtc_threshold=0.3, xtc_probability=0.5, seed=seeds)
    d = [int(logitkit.sample(x[None], xtc_threshold=0.3, xtc_probability=0.5, seed=[s])[0])
         for s in seeds]
    assert c.tolist() == d
    # About half the rows have token 0 removed.
    frac0 = (a == 0).mean()
    assert 0.45 * 0.5 - 0.04 < frac0 < 0.45 * 0.5 + 0.04


def test_p20_p23_logprobs_and_top_logprobs_over_the_kept_list():
    x = rows(15, r=5, v=80)
    kw = dict(temperature=0.9, typical_p=0.5, xtc_threshold=0.05, xtc_probability=1.0)
    f = logitkit.filter_logits(x, **kw)
    ls = np.array([logitkit.log_softmax(r) for r in f])
    out = logitkit.sample(x, seed=2, top_logprobs=4, **kw)
    np.testing.assert_allclose(out.logprobs, ls[np.arange(5), out.tokens], rtol=1e-9)
    for i in range(5):
        order = sorted(range(80), key=lambda j: (-ls[i, j], j))[:4]
        assert out.top_ids[i].tolist() == order
        np.testing.assert_allclose(out.top_logprobs[i], ls[i, order], rtol=1e-9)
        assert out.ranks[i] == (ls[i] >= ls[i, out.tokens[i]]).sum()


def test_p20_p26_sampler_takes_the_parameters():
    x = rows(16, r=2, v=40)
    kw = dict(temperature=0.9, typical_p=0.8, top_n_sigma=2.0, epsilon_cutoff=0.001,
              eta_cutoff=0.001, xtc_threshold=0.1, xtc_probability=0.5, dynatemp_range=0.3)
    s = logitkit.Sampler(seed=1, **kw)
    f = logitkit.filter_logits(x, **kw)
    for _ in range(20):
        t = s(x)
        assert np.isfinite(f[np.arange(2), t]).all()
    s2 = logitkit.Sampler(seed=1, **kw)
    s.reset()
    assert [s(x).tolist() for _ in range(5)] == [s2(x).tolist() for _ in range(5)]
    with pytest.raises(ValueError, match="typical_p"):
        logitkit.Sampler(typical_p=[0.5, 0.5, 0.5])(x)


def test_p20_p26_defaults_change_nothing():
    x = rows(17, r=4, v=1000).astype(np.float32)
    defaults = dict(typical_p=1.0, top_n_sigma=0.0, epsilon_cutoff=0.0, eta_cutoff=0.0,
                    xtc_threshold=0.1, xtc_probability=0.0, dynatemp_range=0.0,
                    dynatemp_exponent=1.0)
    for kw in [dict(), dict(temperature=0.8, top_p=0.9), dict(top_k=5, min_p=0.1)]:
        a = logitkit.sample(x, seed=4, return_logprobs=True, **kw)
        b = logitkit.sample(x, seed=4, return_logprobs=True, **kw, **defaults)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(logitkit.filter_logits(x, **kw),
                                      logitkit.filter_logits(x, **kw, **defaults))


@pytest.mark.parametrize(
    "cut",
    [dict(top_k=4), dict(top_k=40), dict(top_p=float(np.nextafter(1.0, 0.0)))],
    ids=["top_k_4", "top_k_40", "top_p_below_1"],
)
def test_p21_a_cut_past_the_finite_logits_keeps_top_n_sigma_on(cut):
    """P21: when top-k or top-p keeps every finite logit and reaches into the -inf ones (a mask
    leaving fewer than k tokens), top-n-sigma is taken over the finite logits, as without the
    cut. Found by a review: the -inf ties made the mean -inf and sigma NaN, and every token was
    kept (top-n-sigma silently off)."""
    x = np.array([0.0, -np.inf, -np.inf, 5.0, 1.0])
    want = logitkit.filter_logits(x, top_n_sigma=0.5)
    assert np.isfinite(want).sum() == 1
    np.testing.assert_array_equal(logitkit.filter_logits(x, top_n_sigma=0.5, **cut), want)
    tokens = logitkit.sample(np.broadcast_to(x, (2000, 5)), top_n_sigma=0.5, seed=1, **cut)
    assert (tokens == 3).all()
    z = np.random.default_rng(0).normal(size=1000) * 3
    allowed = list(range(0, 20, 2))
    if cut.get("top_k", len(z)) <= len(allowed):
        return  # this top-k cuts among the allowed tokens: a smaller set, another spread
    want = logitkit.filter_logits(z, top_n_sigma=1.0, allowed_token_ids=allowed)
    got = logitkit.filter_logits(z, top_n_sigma=1.0, allowed_token_ids=allowed, **cut)
    np.testing.assert_array_equal(got, want)
    sampler = logitkit.Sampler(top_n_sigma=1.0, allowed_token_ids=allowed, seed=2, **cut)
    assert np.isin(sampler(np.broadcast_to(z, (500, 1000))), np.flatnonzero(np.isfinite(want))).all()


def test_p21_top_p_just_below_1_keeps_top_n_sigma_on():
    """P21: top_p = nextafter(1, 0) never reaches p over a row with -inf tokens, so its cut
    runs into them; top-n-sigma still applies (found by a review: every finite token was kept,
    and sample drew tokens top-n-sigma removes)."""
    x = np.array([-np.inf, 4.00478516729051, 0.37703838502493114, -1.2663881803844534,
                  -np.inf, -2.182292235238391, -2.555360332773216, 1.2608229815364638])
    p1 = float(np.nextafter(1.0, 0.0))
    want = logitkit.filter_logits(x, top_n_sigma=0.7)
    assert np.flatnonzero(np.isfinite(want)).tolist() == [1]
    np.testing.assert_array_equal(logitkit.filter_logits(x, top_n_sigma=0.7, top_p=p1), want)
    drawn = logitkit.sample(np.broadcast_to(x, (5000, 8)), top_n_sigma=0.7, top_p=p1, seed=0)
    assert (drawn == 1).all()
