"""bfloat16 read natively (issue 22 item 5, contracts S1/S3/S13/P7/P18).

bfloat16 input (ml_dtypes ndarrays, torch tensors, JAX arrays) reaches the native code as a
view of its own memory, never as a float32 copy; results are bfloat16 in the input's array
type, and equal to the float32 computation on the same (exactly widened) values rounded once.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

import logitkit
import logitkit.ops
from logitkit import _coerce

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)


def _logits(shape, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=shape) * scale).astype(np.float32)
    x.flat[:: max(1, x.size // 7)] = -np.inf  # masked tokens
    return x.astype(BF16)


@contextlib.contextmanager
def _threads_restored():
    # The caller's thread count comes back when the block ends, however it ends.
    before = logitkit.get_num_threads()
    try:
        yield
    finally:
        logitkit.set_num_threads(before)


def _at_1_and_2_threads():
    # Within `_threads_restored`: sets each thread count a test runs at.
    for threads in (1, 2):
        logitkit.set_num_threads(threads)
        yield threads


def _bits(a):
    return np.asarray(a).view(np.uint16)


def _same_bits(got, want):
    assert got.dtype == BF16, got.dtype
    np.testing.assert_array_equal(_bits(got), _bits(want))


def test_s1_bfloat16_input_is_read_in_place_not_copied():
    x = _logits((3, 50))
    a, back = _coerce.adapt(x)
    assert isinstance(a, _coerce.BFloat16Bits) and back is not None and back.bfloat16
    assert np.shares_memory(a, x) and a.dtype == np.uint16
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16)[:, ::2]
    a, back = _coerce.adapt(t)
    assert isinstance(a, _coerce.BFloat16Bits)
    assert a.__array_interface__["data"][0] == t.data_ptr()
    assert a.strides == tuple(s * 2 for s in t.stride())


@pytest.mark.parametrize("shape", [(7,), (4, 1000), (2, 3, 129), (2, 40_000)])
@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_s1_bfloat16_results_are_float32_rounded_once(shape, temperature):
    x = _logits(shape, seed=len(shape))
    x32 = x.astype(np.float32)
    for f in (logitkit.softmax, logitkit.log_softmax):
        got = f(x, temperature=temperature)
        _same_bits(got, f(x32, temperature=temperature).astype(BF16))
    _same_bits(logitkit.logsumexp(x), logitkit.logsumexp(x32).astype(BF16))


@pytest.mark.parametrize("shape", [(70_001, 10), (3_001, 33), (40, 7)])
@pytest.mark.parametrize("dtype", [BF16, np.dtype(np.float16)])
def test_s1_many_short_16_bit_rows_equal_float32_rounded_once(shape, dtype):
    # Rows back to back are widened a tile at a time in one run and computed by the packed
    # kernel there; the bits must still be those of float32 rounded, at any thread count and
    # temperature.
    x = _logits(shape, seed=shape[1]).astype(np.float32).astype(dtype)
    x32 = x.astype(np.float32)
    with _threads_restored():
        for _ in _at_1_and_2_threads():
            for t in (1.0, 0.6):
                for f in (logitkit.softmax, logitkit.log_softmax):
                    got = f(x, temperature=t)
                    assert got.dtype == dtype
                    want = f(x32, temperature=t).astype(dtype)
                    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))


@pytest.mark.parametrize("axis", [0, 1, None])
def test_s2_bfloat16_strided_views_and_axes(axis):
    base = _logits((30, 64), seed=3)
    for x in (base[:, ::3], base.T, base[::-2]):
        x32 = x.astype(np.float32)
        got = logitkit.softmax(x, axis=axis)
        _same_bits(got, logitkit.softmax(x32, axis=axis).astype(BF16))
        got = logitkit.logsumexp(x, axis=axis)
        want = np.asarray(logitkit.logsumexp(x32, axis=axis)).astype(BF16)
        _same_bits(np.asarray(got), want)


def test_s3_bfloat16_out_is_written_in_place():
    x = _logits((5, 300), seed=4)
    want = logitkit.softmax(x.astype(np.float32)).astype(BF16)
    out = np.empty_like(x)
    assert logitkit.softmax(x, out=out) is out
    _same_bits(out, want)
    y = x.copy()
    assert logitkit.softmax(y, out=y) is y  # in place
    _same_bits(y, want)
    with pytest.raises(TypeError, match="out has dtype float32, expected bfloat16"):
        logitkit.softmax(x, out=np.empty(x.shape, np.float32))


def test_s13_torch_bfloat16_in_place_and_results():
    torch = pytest.importorskip("torch")
    x = _logits((4, 2000), seed=5)
    t = torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16)
    want = torch.log_softmax(t.float(), dim=-1).to(torch.bfloat16)
    got = logitkit.log_softmax(t)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.bfloat16
    assert torch.equal(got, want)
    u = t.clone()
    assert logitkit.log_softmax(u, out=u) is u
    assert torch.equal(u, want)
    lse = logitkit.logsumexp(t[0], axis=None)
    assert lse.dtype == torch.bfloat16 and lse.dim() == 0
    assert lse == torch.logsumexp(t[0].float(), 0).to(torch.bfloat16)


def test_p18_bfloat16_sampling_equals_float32_on_the_same_values():
    x = _logits((6, 5000), seed=6)
    x32 = x.astype(np.float32)
    kw = dict(temperature=0.8, top_k=40, top_p=0.9, seed=11, top_logprobs=3)
    a, b = logitkit.sample(x, **kw), logitkit.sample(x32, **kw)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.logprobs, b.logprobs)
    np.testing.assert_array_equal(a.top_logprobs, b.top_logprobs)
    f = logitkit.filter_logits(x, top_k=40, temperature=0.8)
    _same_bits(f, logitkit.filter_logits(x32, top_k=40, temperature=0.8).astype(BF16))


@pytest.mark.parametrize("shape", [(1, 40_000), (5, 3001), (3, 9)])
@pytest.mark.parametrize(
    "kw",
    [
        dict(temperature=1.0),
        dict(temperature=0.8, top_p=0.95),
        dict(temperature=1.3, top_p=0.3),
        dict(temperature=0.7, top_p=0.9, min_p=0.05),
        dict(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05),
        dict(min_p=0.05),
        dict(temperature=0.7, min_p=0.5),
        dict(top_k=2),
        dict(temperature=0.0),
    ],
)
@pytest.mark.parametrize("dtype", [BF16, np.dtype(np.float16)], ids=["bfloat16", "float16"])
def test_p18_bfloat16_plain_draws_equal_float32_seed_by_seed(shape, kw, dtype):
    # Greedy rows, and rows with only a temperature and top-p, min-p or a small top-k, are
    # drawn from the bfloat16 or float16 logits themselves (no float32 copy), with or without
    # log-probabilities and alternatives; the tokens and log-probabilities are those of the
    # float32 values,
    # for every seed and at 1 and 2 threads. Ties on a coarse grid make the order by id
    # matter.
    x = _logits(shape, seed=9).astype(np.float32).astype(dtype)
    x[:, 1::3] = (np.round(x[:, 1::3].astype(np.float32) * 2) / 2).astype(dtype)
    x32 = x.astype(np.float32)
    with _threads_restored():
        for threads in _at_1_and_2_threads():
            for seed in range(12):
                seeds = np.arange(shape[0]) * 7 + seed
                a = logitkit.sample(x, seed=seeds, **kw)
                b = logitkit.sample(x32, seed=seeds, **kw)
                np.testing.assert_array_equal(a, b, err_msg=f"threads {threads}, seed {seed}")
                # With the drawn tokens' log-probabilities (read in place too, top-p's kept set
                # listed from the 16-bit logits): the same tokens and the same bits.
                a, a_lp = logitkit.sample(x, seed=seeds, return_logprobs=True, **kw)
                b, b_lp = logitkit.sample(x32, seed=seeds, return_logprobs=True, **kw)
                np.testing.assert_array_equal(a, b)
                np.testing.assert_array_equal(a_lp, b_lp)
                # With alternatives (found in place when few enough for the chunk maxima: 1 and
                # 5 at 40000 tokens, 1 at 3001; else from a float32 copy): the same ranks,
                # alternatives and their log-probabilities, removed tokens padded by id.
                for n in sorted({min(n, shape[1]) for n in (1, 5, 40)}):
                    a = logitkit.sample(x, seed=seeds, top_logprobs=n, **kw)
                    b = logitkit.sample(x32, seed=seeds, top_logprobs=n, **kw)
                    for field in ("tokens", "logprobs", "ranks", "top_ids", "top_logprobs"):
                        np.testing.assert_array_equal(getattr(a, field), getattr(b, field),
                                                      err_msg=f"{field}, top {n}, seed {seed}")


@pytest.mark.parametrize("shape", [(1, 40_000), (3, 5001)])
@pytest.mark.parametrize(
    "kw",
    [
        # Few seen tokens: each penalised one by one after the copy.
        dict(repetition_penalty=1.3, frequency_penalty=0.4, presence_penalty=0.2, hist=50),
        # Many: the penalties applied during the copy, from each token's mark.
        dict(repetition_penalty=1.3, frequency_penalty=0.4, presence_penalty=0.2, hist=6000),
        dict(repetition_penalty=0.8, hist=6000, top_logprobs=4),
        dict(logit_bias={3: 2.5, 17: -1.0}, repetition_penalty=1.2, hist=6000),
        dict(allowed_token_ids=list(range(0, 3000, 3)), min_p=0.02),
        dict(bad_words=[[5], [7, 9]], min_tokens=2, stop_token_ids=[11], hist=40),
        dict(repetition_penalty=1.1, hist=6000, logprobs_mode="processed", top_logprobs=2),
        dict(repetition_penalty=1.1, hist=6000, logprobs_mode="raw", top_logprobs=2),
    ],
    ids=lambda kw: ",".join(kw),
)
@pytest.mark.parametrize("dtype", [BF16, np.dtype(np.float16)], ids=["bfloat16", "float16"])
def test_p18_processed_16_bit_rows_equal_float32_seed_by_seed(shape, kw, dtype):
    # A row with masks, a bias or penalties is converted to float32 as it is processed (a
    # piece at a time, no converted copy of the row): the tokens, log-probabilities and
    # alternatives equal those of the float32 values, at 1 and 2 threads, in every mode.
    kw = dict(kw)
    hist = kw.pop("hist", 0)
    x = _logits(shape, seed=21).astype(np.float32).astype(dtype)
    x32 = x.astype(np.float32)
    rng = np.random.default_rng(5)
    out = [rng.integers(0, shape[1], size=hist) for _ in range(shape[0])]
    extra = dict(output_tokens=out) if hist else {}
    lp = dict(return_logprobs=True) if "top_logprobs" in kw or "logprobs_mode" in kw else {}
    with _threads_restored():
        for threads in _at_1_and_2_threads():
            for seed in range(6):
                seeds = np.arange(shape[0]) * 5 + seed
                args = dict(temperature=0.9, seed=seeds, **kw, **extra, **lp)
                a, b = logitkit.sample(x, **args), logitkit.sample(x32, **args)
                if not lp:
                    np.testing.assert_array_equal(a, b, err_msg=f"threads {threads}")
                    continue
                np.testing.assert_array_equal(a.tokens, b.tokens)
                np.testing.assert_array_equal(a.logprobs, b.logprobs)
                if "top_logprobs" in kw:
                    np.testing.assert_array_equal(a.top_logprobs, b.top_logprobs)
                    np.testing.assert_array_equal(a.top_ids, b.top_ids)
                    np.testing.assert_array_equal(a.ranks, b.ranks)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("dtype", [BF16, np.dtype(np.float16)], ids=["bfloat16", "float16"])
def test_p8_processed_16_bit_rows_name_their_problem(bad, dtype):
    # A NaN or +inf anywhere in a processed 16-bit row (the last piece too) is the error the
    # float32 row gives.
    for at in (0, 2047, 2048, 39_999):
        x = np.zeros((2, 40_000), dtype=np.float32)
        x[1, at] = bad
        kw = dict(repetition_penalty=1.2, output_tokens=[[1, 2], [3]])
        with pytest.raises(ValueError) as want:
            logitkit.sample(x, **kw)
        with pytest.raises(ValueError) as got:
            logitkit.sample(x.astype(dtype), **kw)
        assert str(got.value) == str(want.value)
        assert "row 1" in str(got.value)


def test_p7_bfloat16_filtered_logits_stay_finite():
    # A bias carries a kept logit past bfloat16's largest finite value: the row is given as
    # gaps from its maximum, so every kept value stays finite in bfloat16.
    x = np.array([[3.3e38, 0.0, 1.0]], dtype=np.float32).astype(BF16)
    f = logitkit.filter_logits(x, logit_bias={0: 1e37})
    assert f.dtype == BF16
    assert np.isfinite(f.astype(np.float32)).all()
    assert float(f[0, 0]) == 0.0


@pytest.mark.parametrize("shape", [(40, 300), (5, 40_000)])
@pytest.mark.parametrize("temperature", [1.0, 0.7, 2.5, "per-row"])
@pytest.mark.parametrize("dtype", [BF16, np.dtype(np.float16)], ids=["bfloat16", "float16"])
def test_p16_16_bit_token_logprobs_equal_float32_rounded(shape, temperature, dtype):
    # Prompt scoring reads a 16-bit row as it is (no float32 copy): the log-probabilities are
    # those of the float32 values rounded once to the input's dtype, bit for bit, and the ranks
    # the same, at 1 and 2 threads; rows with NaN, +inf or no finite logit give NaN as float32
    # rows do.
    rows, vocab = shape
    x = _logits(shape, seed=16).astype(np.float32).astype(dtype)
    x[1, vocab - 1] = np.nan
    x[2, 0] = np.inf
    x[0, :] = -np.inf
    x32 = x.astype(np.float32)
    rng = np.random.default_rng(3)
    ids = rng.integers(0, vocab, size=rows)
    ids[3] = int(np.argmax(x32[3]))
    t = rng.uniform(0.3, 3.0, size=rows) if temperature == "per-row" else temperature
    with _threads_restored():
        for threads in _at_1_and_2_threads():
            lp, ranks = logitkit.token_logprobs(x, ids, temperature=t, return_ranks=True)
            lp32, ranks32 = logitkit.token_logprobs(x32, ids, temperature=t, return_ranks=True)
            assert lp.dtype == dtype
            want = lp32.astype(dtype)
            np.testing.assert_array_equal(lp.view(np.uint16), want.view(np.uint16),
                                          err_msg=f"threads {threads}")
            np.testing.assert_array_equal(ranks, ranks32)
            assert np.isnan(lp[:3].astype(np.float32)).all() and ranks[3] == 1


class _ArrayLike:
    """An object that is not an ndarray but gives one: it reaches ``_coerce.adapt`` itself."""

    def __init__(self, a):
        self._a = a

    def __array__(self, dtype=None, copy=None):
        return self._a


@pytest.mark.parametrize(
    "call",
    [
        lambda x: logitkit.softmax(x, temperature=0.7),
        lambda x: logitkit.log_softmax(x),
        lambda x: logitkit.logsumexp(x, axis=-1),
        lambda x: logitkit.sample(x, temperature=0.8, top_k=5, seed=3, return_logprobs=True),
        lambda x: logitkit.sample(x, seed=3, top_logprobs=2),
        lambda x: logitkit.token_logprobs(x, np.array([1, 2, 0])),
    ],
)
def test_s13_bfloat16_ndarray_shortcut_equals_adapt(call):
    # ml_dtypes ndarrays are adapted natively (without calling `_coerce.adapt`); the results
    # must be those of `adapt`'s own path, which an array-like object still takes.
    x = _logits((3, 40))
    fast, slow = call(x), call(_ArrayLike(x))
    fast = fast if isinstance(fast, tuple) else (fast,)
    slow = slow if isinstance(slow, tuple) else (slow,)
    assert len(fast) == len(slow)
    for f, s in zip(fast, slow):
        assert type(f) is type(s)
        assert np.asarray(f).dtype == np.asarray(s).dtype
        np.testing.assert_array_equal(np.asarray(f).view(np.uint8), np.asarray(s).view(np.uint8))


def _unaligned(values, dtype=BF16):
    # The values at an odd address: a view one byte into a buffer.
    buf = np.zeros(np.dtype(dtype).itemsize * len(values) + 1, np.uint8)
    x = buf[1:].view(dtype)
    x[...] = values
    assert not x.flags.aligned
    return x


@pytest.mark.parametrize(
    "call",
    [
        lambda x: logitkit.softmax(x),
        lambda x: logitkit.log_softmax(x, temperature=0.5),
        lambda x: logitkit.logsumexp(x, axis=None),
        lambda x: logitkit.ops.sigmoid(x),
        lambda x: logitkit.sample(x, seed=1, return_logprobs=True),
        lambda x: logitkit.filter_logits(x, top_k=2),
    ],
)
def test_s1_unaligned_bfloat16_is_read_as_an_aligned_copy(call):
    # Found by a review: contiguous bfloat16 at an odd address raised "internal: coercion
    # gave an unusable array" (the copy for alignment kept the address).
    values = [1.0, 2.0, -3.5, 4.0, 0.25, -np.inf, 7.0]
    x = _unaligned(values)
    got, want = call(x), call(np.array(values, BF16))
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    for g, w in zip(got, want):
        g, w = np.atleast_1d(np.asarray(g)), np.atleast_1d(np.asarray(w))
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g.view(np.uint8), w.view(np.uint8))


@pytest.mark.parametrize(
    "make",
    [
        lambda a: [ml_dtypes.bfloat16(v) for v in a[0]],
        lambda a: tuple(ml_dtypes.bfloat16(v) for v in a[0]),
        lambda a: [row for row in a],
        lambda a: [[ml_dtypes.bfloat16(v) for v in row] for row in a],
    ],
)
def test_s1_lists_of_bfloat16_give_what_their_array_gives(make):
    a = _logits((2, 9), seed=11)
    x = make(a)
    want_input = np.asarray(x)
    assert want_input.dtype == BF16
    got = logitkit.softmax(x)
    want = logitkit.softmax(want_input)
    assert got.dtype == BF16  # S13: bfloat16 in, bfloat16 out
    _same_bits(got, want)


@pytest.mark.parametrize("kind", ["ml_dtypes", "scalar", "torch", "jax", "list"])
def test_s4_a_bfloat16_temperature_is_taken_as_its_float_values(kind):
    x = np.random.default_rng(2).normal(size=(2, 6))
    t16 = np.array([0.75, 2.0], BF16)
    if kind == "ml_dtypes":
        t, want_t = t16, t16.astype(np.float64)
    elif kind == "scalar":
        t, want_t = t16[1], 2.0
    elif kind == "list":
        t, want_t = list(t16), t16.astype(np.float64)
    elif kind == "torch":
        torch = pytest.importorskip("torch")
        t, want_t = torch.tensor([0.75, 2.0], dtype=torch.bfloat16), t16.astype(np.float64)
    else:
        jnp = pytest.importorskip("jax.numpy")
        t, want_t = jnp.asarray(t16), t16.astype(np.float64)
    want_rows = np.broadcast_to(np.asarray(want_t, np.float64), (2,))
    np.testing.assert_array_equal(
        logitkit.softmax(x, temperature=t), logitkit.softmax(x, temperature=want_rows)
    )
    labels = np.array([1, 4])
    from logitkit.loss import cross_entropy

    assert cross_entropy(x, labels, temperature=t, reduction="none").tolist() == cross_entropy(
        x, labels, temperature=want_rows, reduction="none"
    ).tolist()
    assert np.array_equal(
        logitkit.sample(x, temperature=t, seed=4), logitkit.sample(x, temperature=want_rows, seed=4)
    )


def test_s1_big_endian_bfloat16_is_read_and_written_as_its_values():
    """S1, S3 (found by a review): bfloat16 in the other byte order was read as native bits
    (softmax of [0.5, 4, 1] gave -6.75e-13 three times) and written as native bits into an
    `out=` in that order. It is now swapped into a native copy, as '>f4' is."""
    x = _logits((3, 257), seed=5)
    big = x.byteswap().view(BF16.newbyteorder(">"))
    np.testing.assert_array_equal(big.astype(np.float32), x.astype(np.float32))
    for f in (logitkit.softmax, logitkit.log_softmax, logitkit.logsumexp, logitkit.ops.sigmoid):
        np.testing.assert_array_equal(np.asarray(f(big)).astype(np.float32),
                                      np.asarray(f(x)).astype(np.float32), err_msg=f.__name__)
    assert (logitkit.sample(big, temperature=0.0) == logitkit.sample(x, temperature=0.0)).all()
    ids = np.array([1, 2, 3])
    np.testing.assert_array_equal(logitkit.token_logprobs(big, ids), logitkit.token_logprobs(x, ids))
    for src in (x, big):
        out = np.empty(x.shape, BF16.newbyteorder(">"))
        assert logitkit.softmax(src, out=out) is out
        np.testing.assert_array_equal(out.astype(np.float32), logitkit.softmax(x).astype(np.float32))


def test_s13_zero_d_bfloat16_stays_0_d_and_reductions_give_scalars():
    """S13 (found by a review): softmax of a 0-d bfloat16 array gave a bfloat16 scalar where
    every other dtype gives a 0-d array; reductions to one value still give a NumPy scalar."""
    zero_d = np.array(0.5, BF16)
    calls = [lambda v: logitkit.softmax(v, axis=None), lambda v: logitkit.log_softmax(v, axis=None),
             logitkit.ops.sigmoid, lambda v: logitkit.ops.sparsemax(v, axis=None)]
    for f in calls:
        r = f(zero_d)
        assert type(r) is np.ndarray and r.shape == () and r.dtype == BF16, type(r)
        want = f(np.array(0.5, np.float32))
        assert type(want) is np.ndarray and float(r) == float(want.astype(BF16))
    row = np.array([0.5, 4.0, 1.0], BF16)
    for r in (logitkit.logsumexp(row), logitkit.token_logprobs(row, 1)):
        assert isinstance(r, np.generic) and r.dtype == BF16, type(r)
    assert isinstance(logitkit.logsumexp(np.float32(row)), np.generic)
