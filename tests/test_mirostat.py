"""P25: Mirostat 2.0 in the Sampler, against a slow NumPy float64 reference of the whole loop
(kept sets, the drawn token's log-probability under them and mu, step by step), a chi-square
test of a step's draw, reset(), per-row values and independence, thread counts, bad values,
and its absence from sample and filter_logits."""

import numpy as np
import pytest
from scipy import stats

import logitkit

LN2 = np.log(2.0)


def ref_kept(x, t, mu):
    """llama.cpp's mirostat_v2 truncation of logits x at temperature t: the kept mask and the
    renormalised probabilities (float64)."""
    z = x.astype(np.float64) / t
    p = np.exp(z - z.max())
    return ref_truncate(p / p.sum(), mu)


def ref_truncate(p, mu):
    """The truncation of probabilities p (0 for tokens already removed): the tokens of surprise
    <= mu, or the most probable when none is; the kept mask and the renormalised q."""
    surprise = np.full(p.shape, np.inf)
    surprise[p > 0] = -np.log2(p[p > 0])
    kept = surprise <= mu
    if not kept.any():
        kept = p == p.max()
    q = np.where(kept, p, 0.0)
    return kept, q / q.sum()


def check_draw(out, i, kept, q, v):
    """Row i of a Sampler's result: a kept token, the kept set and its logprobs (all v asked
    for), the drawn token's logprob."""
    tok = int(out.tokens[i])
    assert kept[tok]
    lp = np.full(v, -np.inf)
    lp[out.top_ids[i]] = out.top_logprobs[i]
    assert np.array_equal(np.isfinite(lp), kept)
    np.testing.assert_allclose(lp[kept], np.log(q[kept]), rtol=0, atol=1e-5)
    np.testing.assert_allclose(out.logprobs[i], np.log(q[tok]), rtol=0, atol=1e-5)


def ref_update(mu, q_tok, tau, eta):
    return mu - eta * (-np.log2(q_tok) - tau)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_p25_loop_matches_float64_reference(seed, dtype):
    rng = np.random.default_rng(seed)
    r, v, steps = 3, 200, 12
    tau, eta, t = np.array([2.0, 3.5, 5.0]), np.array([0.1, 0.3, 0.05]), 0.8
    s = logitkit.Sampler(temperature=t, mirostat_tau=tau, mirostat_eta=eta, seed=seed,
                         top_logprobs=v, top_k=5, top_p=0.5, min_p=0.2)
    mu = 2.0 * tau
    for _ in range(steps):
        x = (rng.standard_normal((r, v)) * 3.0).astype(dtype)
        out = s(x)
        for i in range(r):
            # Top-k, top-p and min-p are replaced: the kept set is Mirostat's.
            kept, q = ref_kept(x[i], t, mu[i])
            check_draw(out, i, kept, q, v)
            mu[i] = ref_update(mu[i], q[int(out.tokens[i])], tau[i], eta[i])
        np.testing.assert_allclose(s.mirostat_mu, mu, rtol=0, atol=1e-5)


def test_p25_after_a_p22_cutoff_matches_float64_reference():
    """P25 after a P20-P23 stage (epsilon_cutoff): Mirostat truncates the set the cutoff left,
    its surprise under that set renormalised; kept sets, logprobs and mu against float64."""
    rng = np.random.default_rng(11)
    r, v, steps, t, eps = 3, 300, 12, 0.8, 0.004
    tau, eta = np.array([1.0, 3.0, 6.0]), np.array([0.2, 0.1, 0.3])
    s = logitkit.Sampler(temperature=t, epsilon_cutoff=eps, mirostat_tau=tau, mirostat_eta=eta,
                         seed=3, top_logprobs=v)
    mu = 2.0 * tau
    for _ in range(steps):
        x = (rng.standard_normal((r, v)) * 3.0).astype(np.float32)
        out = s(x)
        for i in range(r):
            z = x[i].astype(np.float64) / t
            p = np.exp(z - z.max())
            p /= p.sum()
            first = p >= eps if (p >= eps).any() else p == p.max()
            kept, q = ref_truncate(np.where(first, p, 0.0) / p[first].sum(), mu[i])
            check_draw(out, i, kept, q, v)
            mu[i] = ref_update(mu[i], q[int(out.tokens[i])], tau[i], eta[i])
        np.testing.assert_allclose(s.mirostat_mu, mu, rtol=0, atol=1e-5)


def test_p25_mu_update_exact_on_known_distribution():
    # Probabilities 1/2, 1/4, 1/8, 1/8: surprises 1, 2, 3, 3 bits.
    x = np.log([0.5, 0.25, 0.125, 0.125])
    s = logitkit.Sampler(mirostat_tau=1.0, mirostat_eta=0.5, seed=4)
    assert s.mirostat_mu.size == 0
    tok = int(s(x))
    assert tok in (0, 1)  # mu = 2 keeps tokens 0 and 1: {2/3, 1/3}
    surprise = np.log2(1.5) if tok == 0 else np.log2(3.0)
    np.testing.assert_allclose(s.mirostat_mu, [2.0 - 0.5 * (surprise - 1.0)], rtol=1e-12)


def test_p25_most_probable_always_kept_and_row_never_empty():
    # tau = 0: mu = 0 keeps nothing by surprise; the most probable token stays.
    x = np.array([[0.0, 1.0, 0.5, -2.0], [3.0, 3.0, 0.0, 0.0]])
    s = logitkit.Sampler(mirostat_tau=0.0, mirostat_eta=0.0, seed=1)
    for _ in range(20):
        toks = s(x)
        assert toks[0] == 1
        assert toks[1] in (0, 1)  # tied most probable tokens stay together
        np.testing.assert_array_equal(s.mirostat_mu, [0.0, 0.0])


def test_p25_chi_square_of_a_step():
    x = np.random.default_rng(7).standard_normal(12) * 1.5
    tau, t = 2.5, 0.9
    kept, q = ref_kept(x, t, 2.0 * tau)
    assert 2 < kept.sum() < 12
    n = 40000
    s = logitkit.Sampler(temperature=t, mirostat_tau=tau, seed=11)
    toks = s(np.tile(x, (n, 1)))
    counts = np.bincount(toks, minlength=12)
    assert counts[~kept].sum() == 0
    assert stats.chisquare(counts[kept], n * q[kept]).pvalue > 1e-4


def test_p25_reset_restarts_mu_and_replays():
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((2, 50)) * 2 for _ in range(6)]
    s = logitkit.Sampler(mirostat_tau=3.0, mirostat_eta=0.2, seed=9)
    first = [s(x).tolist() for x in xs]
    mus = s.mirostat_mu.copy()
    assert not np.allclose(mus, 6.0)
    s.reset()
    assert s.mirostat_mu.size == 0
    again = [s(x).tolist() for x in xs]
    assert first == again
    np.testing.assert_array_equal(s.mirostat_mu, mus)


def test_p25_rows_are_independent():
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((3, 40)) * 2 for _ in range(8)]
    both = logitkit.Sampler(mirostat_tau=[2.0, 4.0, 3.0], mirostat_eta=[0.1, 0.5, 0.2], seed=2)
    mus_both = []
    for x in xs:
        both(x)
        mus_both.append(both.mirostat_mu.copy())
    # Row 1's mu follows the reference given row 1's own tokens, whatever the other rows do.
    tau, eta, mu = 4.0, 0.5, 8.0
    s = logitkit.Sampler(mirostat_tau=[2.0, 4.0, 3.0], mirostat_eta=[0.1, 0.5, 0.2], seed=2)
    for x, m in zip(xs, mus_both):
        tok = int(s(x)[1])
        _, q = ref_kept(x[1], 1.0, mu)
        mu = ref_update(mu, q[tok], tau, eta)
        np.testing.assert_allclose(m[1], mu, atol=1e-9)
    # Changing another row's logits does not change row 1's tokens or mu.
    a = logitkit.Sampler(mirostat_tau=3.0, seed=6)
    b = logitkit.Sampler(mirostat_tau=3.0, seed=6)
    for x in xs:
        y = x.copy()
        y[0] = rng.standard_normal(40) * 5
        assert a(x)[1] == b(y)[1]
        assert a.mirostat_mu[1] == b.mirostat_mu[1]


def test_p25_results_do_not_depend_on_threads():
    rng = np.random.default_rng(8)
    xs = [rng.standard_normal((64, 3000)).astype(np.float32) * 2 for _ in range(4)]
    before = logitkit.get_num_threads()
    res = []
    try:
        for n in (1, 2):
            logitkit.set_num_threads(n)
            s = logitkit.Sampler(mirostat_tau=4.0, mirostat_eta=0.2, temperature=0.7, seed=5)
            toks = [s(x, return_logprobs=True) for x in xs]
            res.append(([t.tolist() for t, _ in toks], [lp.tolist() for _, lp in toks],
                        s.mirostat_mu.tolist()))
    finally:
        logitkit.set_num_threads(before)
    assert res[0] == res[1]


def test_p25_default_off_is_the_plain_sampler():
    x = np.random.default_rng(1).standard_normal((4, 30))
    a = logitkit.Sampler(top_k=5, seed=3)
    b = logitkit.Sampler(top_k=5, seed=3, mirostat_tau=None, mirostat_eta=0.3)
    for _ in range(5):
        assert a(x).tolist() == b(x).tolist()
    assert b.mirostat_mu.size == 0


def test_p25_temperature_zero_is_greedy_and_mu_rises():
    s = logitkit.Sampler(temperature=0.0, mirostat_tau=1.0, mirostat_eta=0.1, seed=0)
    for _ in range(3):
        assert int(s([0.0, 2.0, 1.0])) == 1
    # Surprise 0 each step: mu = 2 + 3 * 0.1 * 1.
    np.testing.assert_allclose(s.mirostat_mu, [2.3], rtol=1e-12)


@pytest.mark.parametrize("name, value", [
    ("mirostat_tau", -1.0), ("mirostat_tau", np.nan), ("mirostat_tau", np.inf),
    ("mirostat_eta", -0.1), ("mirostat_eta", np.nan), ("mirostat_eta", np.inf),
])
def test_p25_bad_values_raise_value_error_naming_parameter(name, value):
    kw = {"mirostat_tau": 3.0, name: value}
    with pytest.raises(ValueError, match=name):
        logitkit.Sampler(**kw)
    # Per-row too.
    kw = {"mirostat_tau": [3.0, 3.0], name: [1.0, value]}
    with pytest.raises(ValueError, match=name):
        logitkit.Sampler(**kw)


def test_p25_per_row_shape_checked_at_call():
    s = logitkit.Sampler(mirostat_tau=[3.0, 4.0], seed=0)
    with pytest.raises(ValueError, match="mirostat_tau"):
        s(np.zeros((3, 5)))
    assert s.calls == 0


def test_p25_sample_and_filter_logits_do_not_accept_it():
    with pytest.raises(TypeError, match="mirostat_tau"):
        logitkit.sample([0.0, 1.0], mirostat_tau=3.0)
    with pytest.raises(TypeError, match="mirostat_eta"):
        logitkit.filter_logits([0.0, 1.0], mirostat_eta=0.1)


def test_p25_mu_saturates_within_the_finite_doubles():
    # Found by a review: mirostat_eta=1e308 made mu -inf, then NaN (greedy for good).
    s = logitkit.Sampler(mirostat_tau=2.0, mirostat_eta=1e308, seed=0)
    x = np.log([0.5, 0.25, 0.125, 0.0625, 0.0625])
    drawn = set()
    for _ in range(40):
        drawn.add(int(s(x)))
        mu = np.asarray(s.mirostat_mu)
        assert np.all(np.isfinite(mu)), mu
    assert len(drawn) > 1  # not stuck on the most probable token
