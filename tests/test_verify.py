"""Speculative decoding: contract clauses V1-V4 (``verify_draft``).

The slow, obvious twin of the Rust code is ``ref_verify`` below: the whole algorithm in float64
NumPy (P3's distribution by a full sort, ``ref_kept_probs`` of the sampling tests), run with the
very uniforms the call uses (``logitkit._native._verify_draft_uniforms``). The statistical tests
check V3 (each emitted token follows the target's distribution given the accepted prefix) with
chi-square tests. Cases adapted from vLLM's ``tests/v1/sample/test_rejection_sampler.py`` are
marked "vLLM".
"""

from __future__ import annotations

import numpy as np
import pytest

import logitkit as lk
from logitkit._native import _verify_draft_uniforms
from conftest import float_dtype, run_python, traced_peak
from test_sampling import chi2_sf, ref_kept_probs

# --------------------------------------------------------------------------------------------
# The float64 reference, given the uniforms
# --------------------------------------------------------------------------------------------

EDGE = 1e-6  # decisions closer than this to a boundary may go either way in float32


def _param(p, b):
    return p if np.ndim(p) == 0 else p[b]


def ref_verify(x, drafts, q, uniforms, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0):
    """V2/V3 by the book in float64. Returns (tokens, num_tokens, fragile): ``fragile[b]`` when
    some decision of sequence ``b`` lies within ``EDGE`` of its boundary."""
    x = np.asarray(x, dtype=np.float64)
    bsz, k1, v = x.shape
    k = k1 - 1
    tokens = np.full((bsz, k1), -1, dtype=np.int64)
    num = np.zeros(bsz, dtype=np.int64)
    fragile = np.zeros(bsz, dtype=bool)
    for b in range(bsz):
        prm = dict(temperature=_param(temperature, b), top_k=_param(top_k, b),
                   top_p=_param(top_p, b), min_p=_param(min_p, b))
        u = uniforms[b]
        for i in range(k1):
            _, p = ref_kept_probs(x[b, i], **prm)
            if i == k:
                dist = p
            else:
                d = int(drafts[b, i])
                if prm["temperature"] == 0:
                    if p[d] == 1.0:
                        tokens[b, i] = d
                        continue
                else:
                    qd = 1.0 if q is None else float(q[b, i, d])
                    fragile[b] |= abs(u[i] * qd - p[d]) < EDGE
                    if u[i] * qd < p[d]:
                        tokens[b, i] = d
                        continue
                if q is None:
                    dist = p.copy()
                    dist[d] = 0.0
                else:
                    dist = np.maximum(p - q[b, i].astype(np.float64), 0.0)
                if dist.sum() <= 0:
                    dist = p
            cdf = np.cumsum(dist) / dist.sum()
            j = int(np.flatnonzero((cdf > u[k]) & (dist > 0))[0]) if (cdf > u[k]).any() else int(
                np.flatnonzero(dist > 0)[-1])
            fragile[b] |= bool(np.min(np.abs(cdf - u[k])) < EDGE)
            tokens[b, i] = j
            break
        num[b] = int((tokens[b] >= 0).sum())
    return tokens, num, fragile


def random_case(rng, bsz, k, v, dtype=np.float32, q_kind="random"):
    x = (rng.standard_normal((bsz, k + 1, v)) * 2).astype(dtype)
    x[:, :, 3] = x[:, :, 4]  # ties
    if q_kind is None:
        return x, rng.integers(0, v, (bsz, k)), None
    if q_kind == "random":
        q = rng.dirichlet(np.full(v, 0.5), size=(bsz, k)).astype(np.float32)
    else:  # sparse: a few tokens only
        q = np.zeros((bsz, k, v), dtype=np.float32)
        q[:, :, :3] = rng.dirichlet(np.ones(3), size=(bsz, k))
    drafts = np.array([[rng.choice(v, p=q[b, i] / q[b, i].sum()) for i in range(k)]
                       for b in range(bsz)], dtype=np.int64).reshape(bsz, k)
    return x, drafts, q


PARAMS = [
    dict(),
    dict(temperature=0.7),
    dict(temperature=0.0),
    dict(temperature=1.3, top_k=4),
    dict(temperature=0.8, top_p=0.8),
    dict(top_k=6, top_p=0.9),
    dict(temperature=0.9, min_p=0.1),
    dict(temperature=1.0, top_k=5, top_p=0.95, min_p=0.05),
    dict(top_k=1),
    dict(top_p=0.0),
]


@pytest.mark.parametrize("params", PARAMS)
@pytest.mark.parametrize("q_kind", ["random", "sparse", None])
def test_v2_matches_the_float64_reference_given_the_same_uniforms(params, q_kind):
    """V2, V3: every sequence's tokens are the reference's, run with the same uniforms (a
    decision within 1e-6 of its boundary may differ: float32 against float64)."""
    rng = np.random.default_rng(hash((str(params), str(q_kind))) % 2**32)
    bsz, k, v = 300, 3, 12
    x, drafts, q = random_case(rng, bsz, k, v, q_kind=q_kind)
    tokens, num = lk.verify_draft(x, drafts, draft_probs=q, seed=11, **params)
    u = _verify_draft_uniforms(11, bsz, k)
    ref_t, ref_n, fragile = ref_verify(x, drafts, q, u, **params)
    same = (tokens == ref_t).all(axis=1) & (num == ref_n)
    assert (same | fragile).all(), np.flatnonzero(~same & ~fragile)
    assert fragile.mean() < 0.01


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_v2_reference_other_dtypes_and_per_sequence_parameters(dtype):
    """V2, V4: float64 and float16 logits, per-sequence parameters of shape (B,)."""
    rng = np.random.default_rng(5)
    bsz, k, v = 200, 2, 9
    x, drafts, q = random_case(rng, bsz, k, v, dtype=dtype)
    temperature = rng.choice([0.0, 0.5, 1.0, 2.0], bsz)
    top_k = rng.choice([0, 3, 5], bsz)
    top_p = rng.choice([1.0, 0.7], bsz)
    min_p = rng.choice([0.0, 0.2], bsz)
    kw = dict(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)
    seeds = rng.integers(0, 2**63, bsz)
    tokens, num = lk.verify_draft(x, drafts, draft_probs=q, seed=seeds, **kw)
    ref_t, ref_n, fragile = ref_verify(x.astype(np.float64), drafts, q,
                                       _verify_draft_uniforms(seeds, bsz, k), **kw)
    same = (tokens == ref_t).all(axis=1) & (num == ref_n)
    assert (same | fragile).all()


# --------------------------------------------------------------------------------------------
# V1 shapes and results
# --------------------------------------------------------------------------------------------


def test_v1_shapes_dtypes_and_padding():
    """V1: tokens int64 (B, K+1) padded with -1 after num_tokens (1..K+1) entries."""
    rng = np.random.default_rng(0)
    x, drafts, q = random_case(rng, 50, 4, 20)
    for probs in (q, None):
        tokens, num = lk.verify_draft(x, drafts, draft_probs=probs, seed=1)
        assert tokens.dtype == np.int64 and num.dtype == np.int64
        assert tokens.shape == (50, 5) and num.shape == (50,)
        assert ((num >= 1) & (num <= 5)).all()
        for b in range(50):
            n = num[b]
            assert (tokens[b, :n] >= 0).all() and (tokens[b, n:] == -1).all()
            # the accepted prefix is the draft's
            assert (tokens[b, : n - 1] == drafts[b, : n - 1]).all()


def test_v1_zero_sequences():
    """V1: B = 0 gives empty results of the right shapes."""
    tokens, num = lk.verify_draft(np.zeros((0, 3, 5), np.float32), np.zeros((0, 2), np.int64))
    assert tokens.shape == (0, 3) and num.shape == (0,)


def test_v1_torch_in_torch_out_and_bfloat16():
    """V1, P18: torch tensors (bfloat16 included) give int64 torch tensors."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x, drafts, q = random_case(rng, 4, 2, 16)
    t, n = lk.verify_draft(torch.tensor(x), torch.tensor(drafts),
                           draft_probs=torch.tensor(q), seed=3)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.int64 and n.dtype == torch.int64
    ref = lk.verify_draft(x, drafts, draft_probs=q, seed=3)
    assert (t.numpy() == ref[0]).all()
    xb = torch.tensor(x).bfloat16()
    tb, nb = lk.verify_draft(xb, torch.tensor(drafts), draft_probs=torch.tensor(q).bfloat16(),
                             seed=3)
    ref_b = lk.verify_draft(xb.float().numpy(), drafts, draft_probs=torch.tensor(q).bfloat16()
                            .float().numpy(), seed=3)
    assert (tb.numpy() == ref_b[0]).all() and (nb.numpy() == ref_b[1]).all()


def test_v1_lists_and_non_contiguous_inputs():
    """V1, P18: nested lists and strided arrays read as their values."""
    rng = np.random.default_rng(4)
    x, drafts, q = random_case(rng, 6, 2, 10, dtype=np.float64)
    a = lk.verify_draft(x, drafts, draft_probs=q, seed=8)
    b = lk.verify_draft(x.tolist(), drafts.tolist(), draft_probs=q.tolist(), seed=8)
    wide = np.zeros((6, 3, 20))
    wide[:, :, ::2] = x
    c = lk.verify_draft(wide[:, :, ::2], drafts, draft_probs=q, seed=8)
    for r in (b, c):
        assert (r[0] == a[0]).all() and (r[1] == a[1]).all()


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_v1_p18_last_positions_of_longer_sequences_are_read_in_place(dtype):
    """V1, P18: ``logits[:, -(K + 1):, :]`` of a (B, L, V) array (sequences L V apart, positions
    V apart), a reversed batch, a broadcast sequence, transposed positions and a draft_probs
    slice give the tokens of their C-contiguous copies, at every thread count's plan; the
    evenly spaced grids are read without a copy."""
    dt = float_dtype(dtype)
    rng = np.random.default_rng(11)
    b, length, k, v = 5, 9, 3, 700
    full = (rng.standard_normal((b, length, v)) * 3).astype(dt)
    drafts = rng.integers(0, v, size=(b, k))
    q_full = rng.random((b, length, v)).astype(dt) + 0.01
    views = [
        (full[:, -(k + 1):, :], q_full[:, 2:2 + k, :]),
        (full[::-1, -(k + 1):, :], q_full[::-1, :k, :]),
        (np.broadcast_to(full[0, :k + 1], (b, k + 1, v)), None),
        (full[:, -(k + 1):, :].transpose(1, 0, 2)[:, :b].transpose(1, 0, 2), None),
        (full[:, 1:k + 2, :], np.swapaxes(np.swapaxes(q_full[:, :k], 0, 1).copy(), 0, 1)),
        # A broadcast vocabulary axis (stride 0): copied (a review found it read past the
        # array's end).
        (np.broadcast_to(full[:, :k + 1, :1], (b, k + 1, v)), np.broadcast_to(q_full[:, :k, :1], (b, k, v))),
        (full[:, -(k + 1):, ::-1], q_full[:, 1:k + 1, ::-1]),
    ]
    for params in (dict(temperature=0.8, top_p=0.9), dict(temperature=0.0), dict()):
        for x, q in views:
            want = lk.verify_draft(np.ascontiguousarray(x), drafts,
                                   draft_probs=None if q is None else np.ascontiguousarray(q),
                                   seed=[4, 5, 6, 7, 8], **params)
            got = lk.verify_draft(x, drafts, draft_probs=q, seed=[4, 5, 6, 7, 8], **params)
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g, w)
    # No copy of the last positions: far less allocated than the grid holds.
    big = rng.standard_normal((8, 16, 20000)).astype(np.float32)
    x, qs = big[:, -5:, :], np.abs(big[:, :4, :]) + 0.1
    ids = rng.integers(0, 20000, size=(8, 4))
    for call in (lambda: lk.verify_draft(x, ids, seed=1),
                 lambda: lk.verify_draft(x, ids, draft_probs=qs, seed=1, top_k=50)):
        peak = traced_peak(call)
        assert peak < x.nbytes // 8, (peak, x.nbytes)


# --------------------------------------------------------------------------------------------
# V3 exactness: chi-square tests of each emitted token given the accepted prefix
# --------------------------------------------------------------------------------------------

V = 8
TARGET = np.array([
    [2.0, 1.5, 1.5, 0.3, -0.7, 1.2, 0.0, -1.0],
    [-1.0, 0.5, 2.2, 2.2, 0.1, -0.3, 1.0, 0.0],
    [0.0, -0.5, 0.4, 1.1, 1.9, 0.2, -2.0, 1.0],
])
FAR = np.array([0.01, 0.01, 0.02, 0.06, 0.1, 0.2, 0.3, 0.3])  # mass where p has little


def assert_follows(tokens, p, what):
    """Chi-square goodness of fit of `tokens` against `p` (generous level: 1e-4)."""
    assert len(tokens) > 500, what
    assert (p[tokens] > 0).all(), f"{what}: a token of probability 0"
    live = p > 0
    counts = np.bincount(tokens, minlength=len(p))[live]
    expected = p[live] * len(tokens)
    if live.sum() > 1:
        stat = float(((counts - expected) ** 2 / expected).sum())
        assert chi2_sf(stat, int(live.sum()) - 1) > 1e-4, (what, counts, expected)


def check_positions(q_rows, params, n=40000, seed=0, k=2, point_mass=False):
    """Draws `n` sequences of `k` drafts from the rows of `q_rows` (passed as draft_probs, or
    with `point_mass` not passed: q is then the point mass on each draft) and checks every
    position's emitted token given acceptance of the prefix (V3)."""
    rng = np.random.default_rng(seed)
    x = np.tile(TARGET[: k + 1], (n, 1, 1)).astype(np.float32)
    q_rows = np.asarray(q_rows, np.float64)
    q = None if point_mass else np.tile(q_rows[:k].astype(np.float32), (n, 1, 1))
    drafts = np.stack([rng.choice(V, size=n, p=q_rows[i] / q_rows[i].sum())
                       for i in range(k)], axis=1)
    tokens, num = lk.verify_draft(x, drafts, draft_probs=q, seed=seed, **params)
    for i in range(k + 1):
        _, p = ref_kept_probs(TARGET[i].astype(np.float32).astype(np.float64), **params)
        reached = num >= i + 1  # positions 0..i-1 accepted, a token emitted at i
        assert_follows(tokens[reached, i], p, f"position {i} {params}")
    return tokens, num, drafts


@pytest.mark.parametrize("params", [
    dict(), dict(temperature=0.6), dict(temperature=1.5, top_k=5),
    dict(top_p=0.85), dict(temperature=0.8, min_p=0.2), dict(top_k=6, top_p=0.9, min_p=0.05),
])
def test_v3_chi_square_q_far_from_p(params):
    """V3: q far from p (most mass where p has little): each emitted token follows p."""
    q = np.array([FAR, FAR[::-1], FAR])
    tokens, num, _ = check_positions(q, params, seed=1)
    assert (num < 3).mean() > 0.3  # many rejections: the residual was exercised


def test_v3_chi_square_q_disjoint_from_p():
    """V3: q puts most of its mass on tokens p gives little or none (top_k=3 removes them)."""
    q = np.zeros((2, V))
    q[:, 6:] = 0.4
    q[:, 0] = 1e-3
    q[:, 2] = 0.2 - 1e-3
    check_positions(q, dict(top_k=3), seed=2)


def test_v3_q_equal_to_p_always_accepts():
    """V3: q = p accepts every draft (min(1, p/q) = 1) and the bonus token follows p_K."""
    n, k = 40000, 2
    p = np.stack([ref_kept_probs(TARGET[i].astype(np.float32).astype(np.float64))[1]
                  for i in range(k)])
    # q = p rounded up a hair: p(x) / q(x) is 1 up to rounding, so u * q < p always holds
    tokens, num, drafts = check_positions(p * (1 - 1e-12), dict(), n=n, seed=3)
    assert (num == k + 1).all()
    assert (tokens[:, :k] == drafts).all()


def test_v3_chi_square_point_mass_drafts():
    """V3: drafts without probabilities (q a point mass on the draft: n-gram drafting)."""
    crude = np.exp(TARGET[:2] / 3)  # a flatter model makes the drafts
    tokens, num, drafts = check_positions(crude, dict(), seed=4, point_mass=True)
    # acceptance at position 0 has probability p_0(x): check the acceptance rate too
    p0 = ref_kept_probs(TARGET[0].astype(np.float32).astype(np.float64))[1]
    accepted = tokens[:, 0] == drafts[:, 0]
    rate = p0[drafts[:, 0]].mean()
    assert abs(accepted.mean() - rate) < 5 * np.sqrt(rate * (1 - rate) / len(accepted)) + 0.01


def test_v3_chi_square_point_mass_with_filters():
    """V3: point-mass drafts under top-k/top-p (drafts often outside the kept set)."""
    crude = np.exp(TARGET[:2] / 3)
    check_positions(crude, dict(temperature=0.7, top_k=4, top_p=0.9), seed=5, point_mass=True)


def test_v3_chi_square_k_zero_bonus_only():
    """V3, V4: K = 0: the bonus token follows p_0."""
    n = 30000
    x = np.tile(TARGET[:1], (n, 1, 1))
    tokens, num = lk.verify_draft(x, np.zeros((n, 0), np.int64), seed=6, temperature=0.9)
    assert tokens.shape == (n, 1) and (num == 1).all()
    assert_follows(tokens[:, 0], ref_kept_probs(TARGET[0], temperature=0.9)[1], "bonus")


def test_v3_vllm_rejection_sampling_approximates_target():
    """V3 (vLLM test_rejection_sampling_approximates_target_distribution): random p and q over
    10 tokens, k = 2; the emitted (non-bonus) tokens' distribution approaches p (here checked
    exactly, by chi-square, per position)."""
    rng = np.random.default_rng(7)
    vocab, k, n = 10, 2, 50000
    q = rng.dirichlet(np.ones(vocab))
    logits = rng.random(vocab)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    x = np.tile(logits, (n, k + 1, 1))
    drafts = rng.choice(vocab, size=(n, k), p=q)
    tokens, num = lk.verify_draft(x, drafts, draft_probs=np.tile(q, (n, k, 1)), seed=7)
    for i in range(k + 1):
        assert_follows(tokens[num >= i + 1, i], p, f"position {i}")


def test_v3_residual_all_zero_draws_from_p():
    """V4: q >= p everywhere (q not normalised): the residual is 0, so the token comes from p."""
    n = 30000
    x = np.tile(TARGET[:2], (n, 1, 1))
    p0 = ref_kept_probs(TARGET[0])[1]
    q = np.full((n, 1, V), 2.0)  # q(x) = 2 >= p(x): accepted with probability p(x) / 2
    drafts = np.zeros((n, 1), np.int64)
    tokens, num = lk.verify_draft(x, drafts, draft_probs=q, seed=8)
    rejected = num == 1
    # at a rejection, the residual max(p - q, 0) is 0: the token is drawn from p
    assert_follows(tokens[rejected, 0], p0, "residual all zero")
    assert abs((~rejected).mean() - p0[0] / 2) < 0.02


# --------------------------------------------------------------------------------------------
# V3 greedy (vLLM's greedy cases)
# --------------------------------------------------------------------------------------------


def vllm_logits(output_tokens, vocab=100, override=None):
    """vLLM's create_logits_tensor: the argmax at position j is output_tokens[b][j] (100 against
    -100); `override` gets 99 everywhere."""
    k1 = len(output_tokens[0])
    x = np.full((len(output_tokens), k1, vocab), -100.0, np.float32)
    for b, toks in enumerate(output_tokens):
        for j, t in enumerate(toks):
            x[b, j, t] = 100.0
    if override is not None:
        x[:, :, override] = 99.0
    return x


@pytest.mark.parametrize("spec,out,expected", [
    ([[1, 2, 3]], [[1, 2, 3, 4]], [[1, 2, 3, 4]]),  # perfect match
    ([[1, 2, 3]], [[1, 5, 3, 4]], [[1, 5, -1, -1]]),  # early mismatch
    ([[1, 2], [3, 4]], [[1, 2, 5], [3, 4, 7]], [[1, 2, 5], [3, 4, 7]]),  # multiple sequences
    ([[1]], [[1, 2]], [[1, 2]]),  # single token
    ([[]], [[5]], [[5]]),  # empty draft: K = 0
    ([[1, 2, 3], [4, 5, 6]], [[1, 2, 7, 6], [4, 8, 6, 9]], [[1, 2, 7, -1], [4, 8, -1, -1]]),
    ([[1]], [[2, 3]], [[2, -1]]),  # first mismatch
    ([[1, 2], [3, 4]], [[1, 5, 6], [3, 4, 7]], [[1, 5, -1], [3, 4, 7]]),  # mixed
])
@pytest.mark.parametrize("with_probs", [False, True])
def test_v3_greedy_vllm_cases(spec, out, expected, with_probs):
    """V3 greedy (vLLM's test_perfect_match, test_early_mismatch, test_multiple_sequences,
    test_single_token_sequence, test_empty_sequence, test_multiple_mismatches,
    test_parametrized_cases): accept while the draft is the argmax, then the argmax."""
    x = vllm_logits(out)
    drafts = np.array(spec, dtype=np.int64).reshape(len(spec), len(spec[0]))
    q = None
    if with_probs:  # q is ignored at temperature 0
        q = np.full(drafts.shape + (100,), 0.01, np.float32)
    tokens, num = lk.verify_draft(x, drafts, draft_probs=q, temperature=0.0)
    assert tokens.tolist() == expected
    assert num.tolist() == [sum(t >= 0 for t in row) for row in expected]


def test_v3_greedy_ties_take_the_lowest_id():
    """V3, P3: at T = 0 the argmax is the lowest id among equal logits."""
    x = np.zeros((1, 2, 6), np.float32)
    x[0, 0, [2, 4]] = 3.0
    x[0, 1, [1, 5]] = 3.0
    assert lk.verify_draft(x, [[4]], temperature=0.0)[0].tolist() == [[2, -1]]
    assert lk.verify_draft(x, [[2]], temperature=0.0)[0].tolist() == [[2, 1]]


def test_v3_greedy_and_sampled_sequences_mixed():
    """V3, V4: per-sequence temperatures, greedy sequences follow the greedy rule."""
    rng = np.random.default_rng(9)
    x, drafts, q = random_case(rng, 64, 3, 10)
    t = np.where(np.arange(64) % 2 == 0, 0.0, 1.0)
    tokens, num = lk.verify_draft(x, drafts, draft_probs=q, temperature=t, seed=1)
    greedy_t, greedy_n = lk.verify_draft(x, drafts, temperature=0.0)
    assert (tokens[::2] == greedy_t[::2]).all() and (num[::2] == greedy_n[::2]).all()
    for b in range(0, 64, 2):  # by hand
        am = x[b].argmax(axis=1)
        m = 0
        while m < 3 and drafts[b, m] == am[m]:
            m += 1
        assert num[b] == m + 1 and tokens[b, m] == am[m]


def draws_from(rng, q):
    """One draft token per (sequence, position), drawn from the rows of `q` (B, K, V)."""
    bsz, k, v = q.shape
    return np.array([[rng.choice(v, p=q[b, i] / q[b, i].sum()) for i in range(k)]
                     for b in range(bsz)])


@pytest.mark.parametrize("top_k", [1, 5, 99])
def test_v3_vllm_top_k_emits_only_kept_tokens(top_k):
    """V3 (vLLM test_top_k): with random draft distributions, every emitted token is in the
    target's top-k set."""
    rng = np.random.default_rng(top_k)
    bsz, k, v = 100, 3, 100
    x = np.zeros((bsz, k + 1, v), np.float32)
    kept = np.stack([np.stack([rng.permutation(v)[:top_k] for _ in range(k + 1)])
                     for _ in range(bsz)])
    for b in range(bsz):
        for i in range(k + 1):
            x[b, i, kept[b, i]] += 0.1
    q = rng.dirichlet(np.ones(v), size=(bsz, k)).astype(np.float32)
    drafts = draws_from(rng, q)
    tokens, num = lk.verify_draft(x, drafts, draft_probs=q, top_k=top_k, seed=0)
    for b in range(bsz):
        for i in range(num[b]):
            assert tokens[b, i] in kept[b, i]


@pytest.mark.parametrize("top_p", [0.5, 0.9, 0.99])
def test_v3_vllm_top_p_emits_only_kept_tokens(top_p):
    """V3 (vLLM test_top_p): every emitted token is in the target's nucleus."""
    rng = np.random.default_rng(int(top_p * 100))
    bsz, k, v = 100, 3, 100
    x = rng.standard_normal((bsz, k + 1, v)).astype(np.float32)
    q = rng.dirichlet(np.ones(v), size=(bsz, k)).astype(np.float32)
    drafts = draws_from(rng, q)
    tokens, num = lk.verify_draft(x, drafts, draft_probs=q, top_p=top_p, seed=0)
    for b in range(bsz):
        for i in range(num[b]):
            kept, _ = ref_kept_probs(x[b, i].astype(np.float64), top_p=top_p)
            assert kept[tokens[b, i]]


# --------------------------------------------------------------------------------------------
# V4 seeds, threads, parameters
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_probs", [False, True])
def test_v4_per_sequence_seeds_are_independent_of_the_batch(with_probs):
    """V4, P5: with per-sequence seeds a sequence's result does not depend on its batch."""
    rng = np.random.default_rng(10)
    x, drafts, q = random_case(rng, 12, 3, 30)
    q = q if with_probs else None
    seeds = rng.integers(0, 2**63, 12)
    full_t, full_n = lk.verify_draft(x, drafts, draft_probs=q, seed=seeds)
    for b in (0, 5, 11):
        qb = None if q is None else q[b : b + 1]
        t, n = lk.verify_draft(x[b : b + 1], drafts[b : b + 1], draft_probs=qb, seed=[seeds[b]])
        assert (t[0] == full_t[b]).all() and n[0] == full_n[b]
    # and inside another batch, at another index
    perm = rng.permutation(12)
    t, n = lk.verify_draft(x[perm], drafts[perm], draft_probs=None if q is None else q[perm],
                           seed=seeds[perm])
    assert (t == full_t[perm]).all() and (n == full_n[perm]).all()


def test_v4_seeded_calls_are_deterministic_and_unseeded_vary():
    """V4 (vLLM test_deterministic_when_seeded): repeated seeded calls agree; seed=None
    varies."""
    rng = np.random.default_rng(11)
    x, drafts, q = random_case(rng, 8, 3, 1000, q_kind="random")
    runs = [lk.verify_draft(x, drafts, draft_probs=q, seed=42) for _ in range(20)]
    assert all((r[0] == runs[0][0]).all() for r in runs)
    scalar_row0 = lk.verify_draft(x[:1], drafts[:1], draft_probs=q[:1], seed=42)
    assert (scalar_row0[0][0] == runs[0][0][0]).all()  # row 0 of (42, 0) is (42, 0)
    free = {lk.verify_draft(x, drafts, draft_probs=q)[0].tobytes() for _ in range(10)}
    assert len(free) > 1


def test_v4_streams_differ_from_samples():
    """V4: the verify streams are not sample's (a draft drawn by sample with the same seed is
    not verified with the uniform that drew it)."""
    u = _verify_draft_uniforms(0, 64, 0)[:, 0]
    x = np.zeros((64, 2**20), np.float32)
    # sample's uniform for row i under seed 0, read from a flat row: token = floor(u * V)
    s = lk.sample(x, seed=0) / 2**20
    assert np.abs(u - s).max() > 0.01


@pytest.mark.parametrize("shape", [(3, 3, 70000), (9, 2, 40000), (1, 8, 32000), (40, 4, 500)])
def test_v4_same_results_for_one_and_two_threads(shape):
    """V4, S9: identical results with 1 and 2 threads (rows, split rows, serial)."""
    bsz, k1, v = shape
    rng = np.random.default_rng(12)
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    q = rng.dirichlet(np.ones(v) * 0.3, size=(bsz, k1 - 1)).astype(np.float32)
    drafts = q.argmax(axis=2)
    before = lk.get_num_threads()
    try:
        out = []
        for n in (1, 2):
            lk.set_num_threads(n)
            out.append([lk.verify_draft(x, drafts, draft_probs=probs, seed=3, **prm)
                        for probs in (q, None)
                        for prm in (dict(), dict(top_p=0.9), dict(top_k=50, min_p=0.01))])
    finally:
        lk.set_num_threads(before)
    for a, b in zip(*out):
        assert (a[0] == b[0]).all() and (a[1] == b[1]).all()


def test_v4_thread_count_from_the_environment():
    """V4, S11: LOGITKIT_NUM_THREADS=1 and =2 give the same tokens."""
    code = """
import numpy as np, logitkit as lk
rng = np.random.default_rng(0)
x = rng.standard_normal((4, 3, 50000)).astype(np.float32)
q = rng.dirichlet(np.ones(50000), size=(4, 2)).astype(np.float32)
t, n = lk.verify_draft(x, q.argmax(axis=2), draft_probs=q, seed=1, top_p=0.95)
print(lk.get_num_threads(), t.tolist(), n.tolist())
"""
    outs = []
    for n in ("1", "2"):
        proc = run_python(code, env={"LOGITKIT_NUM_THREADS": n})
        assert proc.returncode == 0, proc.stderr
        threads, rest = proc.stdout.split(" ", 1)
        assert threads == n
        outs.append(rest)
    assert outs[0] == outs[1]


def test_v4_k_zero_is_the_bonus_token_alone():
    """V4: K = 0 is allowed; the bonus token is what greedy/sample would give."""
    x = np.array([[[0.0, 3.0, 1.0]]], np.float32)
    t, n = lk.verify_draft(x, np.zeros((1, 0), np.int64), temperature=0.0)
    assert t.tolist() == [[1]] and n.tolist() == [1]
    t, n = lk.verify_draft(x, [[]], draft_probs=np.zeros((1, 0, 3)), seed=0)
    assert t.shape == (1, 1) and n.tolist() == [1]


def test_v4_draft_probs_used_as_given():
    """V4: q is not renormalised: scaling q by 1/2 doubles the acceptance ratio."""
    n = 40000
    x = np.tile(np.log(np.array([[0.2, 0.8], [0.5, 0.5]])), (n, 1, 1))
    drafts = np.zeros((n, 1), np.int64)
    q = np.tile(np.array([[[0.8, 0.2]]]), (n, 1, 1))
    acc_full = (lk.verify_draft(x, drafts, draft_probs=q, seed=1)[1] == 2).mean()
    acc_half = (lk.verify_draft(x, drafts, draft_probs=q / 2, seed=1)[1] == 2).mean()
    assert abs(acc_full - 0.25) < 0.01 and abs(acc_half - 0.5) < 0.01


# --------------------------------------------------------------------------------------------
# V4 bad input
# --------------------------------------------------------------------------------------------


def _case():
    rng = np.random.default_rng(13)
    return random_case(rng, 3, 2, 6)


@pytest.mark.parametrize("change,match", [
    (lambda x, d, q: (x[0], d, q), r"target_logits must have shape \(B, K \+ 1, V\)"),
    (lambda x, d, q: (x[:, :, :0], d, None), "target_logits must have a non-empty last axis"),
    (lambda x, d, q: (x, d[:, :1], q), r"draft_tokens has shape \(3, 1\), expected \(3, 2\)"),
    (lambda x, d, q: (x, d[0], q), r"draft_tokens must have shape \(B, K\)"),
    (lambda x, d, q: (x, d.astype(float), q), "draft_tokens must be integer token ids"),
    (lambda x, d, q: (x, d, q[:, :, :5]), r"draft_probs has shape \(3, 2, 5\), expected \(3, 2, 6\)"),
    (lambda x, d, q: (x[:, :0], d[:, :0], None),
     "target_logits must have shape .* K \\+ 1 >= 1"),
])
def test_v4_bad_shapes(change, match):
    """V4: shapes that do not fit together -> ValueError naming the argument."""
    x, d, q = change(*_case())
    with pytest.raises(ValueError, match=match):
        lk.verify_draft(x, d, draft_probs=q, seed=0)


def test_v4_unreadable_arrays_are_a_type_error_naming_the_argument():
    """V4 with P18's wording: an array that is not real numbers -> TypeError naming it."""
    x, d, q = _case()
    with pytest.raises(TypeError, match=r"^target_logits must be a real numeric array"):
        lk.verify_draft(x.astype(complex), d, draft_probs=q, seed=0)
    with pytest.raises(TypeError, match=r"^draft_probs must be a real numeric array"):
        lk.verify_draft(x, d, draft_probs=q.astype(str), seed=0)


@pytest.mark.parametrize("bad_id", [-1, 6, 2**40])
def test_v4_draft_ids_outside_the_vocabulary(bad_id):
    """V4: an id outside [0, V) -> ValueError naming draft_tokens, the row and the id."""
    x, d, q = _case()
    d[2, 1] = bad_id
    for probs in (q, None):
        with pytest.raises(ValueError, match=rf"draft_tokens row 2 has token id {bad_id} at position 1, outside \[0, 6\)"):
            lk.verify_draft(x, d, draft_probs=probs, seed=0)


@pytest.mark.parametrize("value", [-0.1, np.nan, np.inf, -np.inf])
def test_v4_bad_draft_probabilities(value):
    """V4: a negative or non-finite draft probability -> ValueError naming draft_probs, the row
    (and position and token), whatever is accepted."""
    x, d, q = _case()
    q[1, 1, (d[1, 1] + 1) % 6] = value
    with pytest.raises(ValueError, match=r"draft_probs row 1 holds .* at position 1"):
        lk.verify_draft(x, d, draft_probs=q, temperature=0.0)


def test_v4_zero_probability_for_a_drafted_token():
    """V4: q_i(x) = 0 for the drafted token -> ValueError naming draft_probs and the row."""
    x, d, q = _case()
    q[0, 1, d[0, 1]] = 0.0
    with pytest.raises(ValueError, match=rf"draft_probs row 0 gives probability 0 to its draft token {d[0, 1]} at position 1"):
        lk.verify_draft(x, d, draft_probs=q, seed=0)


@pytest.mark.parametrize("value,what", [(np.nan, "contains NaN"), (np.inf, r"contains \+inf")])
def test_v4_bad_target_rows_after_a_rejection(value, what):
    """V4, P8: a bad target row is refused even at a position no draw reaches."""
    x = np.zeros((2, 3, 4), np.float32)
    x[:, :, 0] = 5.0
    d = np.array([[3, 3], [0, 0]])
    x[0, 2, 1] = value  # sequence 0 stops at position 0 (greedy): position 2 is never used
    with pytest.raises(ValueError, match=f"target_logits row 0 at position 2 {what}"):
        lk.verify_draft(x, d, temperature=0.0)
    x[0, 2] = -np.inf
    with pytest.raises(ValueError, match="target_logits row 0 at position 2 has no finite logit"):
        lk.verify_draft(x, d, temperature=0.0)


@pytest.mark.parametrize("kw,match", [
    (dict(temperature=-1.0), "temperature must be a finite float >= 0, got -1"),
    (dict(top_p=1.5), "top_p must be a float in \\[0, 1\\], got 1.5"),
    (dict(min_p=np.nan), "min_p"),
    (dict(top_k=-2), "top_k must be an integer >= 0, got -2"),
    (dict(temperature=np.ones(4)), r"temperature has shape \(4,\), expected a scalar or shape \(3,\)"),
    (dict(seed=-1), "seed must be"),
    (dict(seed=[1, 2]), r"seed has shape \(2,\)"),
])
def test_v4_bad_parameters(kw, match):
    """V4, P8: bad parameter values and per-sequence shapes -> ValueError naming them."""
    x, d, q = _case()
    with pytest.raises(ValueError, match=match):
        lk.verify_draft(x, d, draft_probs=q, **kw)


@pytest.mark.parametrize("bad", [2**64 - 1, 2**63 + 5])
def test_v4_a_uint64_draft_id_beyond_int64_is_named_as_it_is(bad):
    # Found by a review: the message showed int64's bound (9223372036854775807) instead.
    tl = np.zeros((1, 2, 5), np.float32)
    with pytest.raises(ValueError, match=f"draft_tokens row 0 has token id {bad} at position 0"):
        lk.verify_draft(tl, np.array([[bad]], np.uint64), seed=0)


@pytest.mark.parametrize("batch, k, exc", [(-1, 1, ValueError), (10**30, 1, ValueError), (1, -2, ValueError),
                                           (1.5, 1, TypeError), (1, "a", TypeError)])
def test_r7_verify_draft_uniforms_counts_name_themselves(batch, k, exc):
    """R7 (found by a review): negative or huge counts raised pyo3's OverflowError, naming
    nothing."""
    name = "batch" if batch != 1 else "k"
    with pytest.raises(exc, match=f"{name} must be an integer >= 0"):
        _verify_draft_uniforms(0, batch, k)
