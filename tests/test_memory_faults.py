"""Memory limits and internal errors (contract R1, R2; issue 20).

Each scenario runs in a fresh interpreter under ``RLIMIT_AS``: a call either returns the same
result as without the limit or raises ``MemoryError``, and the process goes on working. Before
issue 20, an allocation refused inside Rust aborted the process ("memory allocation failed"),
and a refused output array surfaced as ``PanicException: PyObject pointer is null``.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import logitkit as lk
from conftest import run_python

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc/self/status: Linux"
)

# The driver: runs CALL under soft address-space limits from just above what the process
# holds to well above what the call needs, then lifts the limit and checks that the process
# still computes correctly. A limit that cannot be met raises MemoryError; anything else
# (an abort, PanicException, another exception, a wrong result) fails.
DRIVER = r"""
import resource, sys, threading
import numpy as np
import logitkit as lk
from logitkit import calibration, loss, ops

rng = np.random.default_rng(0)
X = rng.standard_normal((4, 1 << 20)).astype(np.float32) * 3
X16 = X.astype(np.float16)
LABELS = np.array([0, 5, 7, 9])
PROBS = lk.softmax(X)
MANY = rng.standard_normal((1 << 18, 2)).astype(np.float32)  # rows of per-row work, 2 MB
WIDE = rng.standard_normal((1 << 13, 256)).astype(np.float32)  # rows of 256 tokens, 8 MB
TARGET = rng.standard_normal((1 << 16, 2, 4)).astype(np.float32)  # one-token drafts, 2 MB
DRAFT_PROBS = np.full((1 << 16, 1, 4), 0.25, np.float32)

def vm_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize"):
                return int(line.split()[1]) * 1024

def same(a, b):
    if isinstance(a, tuple):
        return all(same(x, y) for x, y in zip(a, b))
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)

def on_fresh_thread(call):
    # Each call on a new thread, started before the limit is set: the scratch a thread
    # caches between calls is then allocated anew, under the limit.
    box, go = {{}}, threading.Event()
    def run():
        go.wait()
        try:
            box["result"] = call()
        except BaseException as e:
            box["error"] = e
    t = threading.Thread(target=run)
    t.start()
    return t, go, box

def finish(t, go, box):
    go.set()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["result"]

CALL = {call}
want = CALL()  # also starts the thread crew, outside the limit
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
outcomes = {{"ok": 0, "MemoryError": 0}}
for extra_mb in list(range(0, 48, 3)) + [64, 96, 128, 192, 256]:
    pending = on_fresh_thread(CALL)
    limit = vm_bytes() + extra_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        got = finish(*pending)
    except MemoryError:
        outcome = "MemoryError"
    else:
        outcome = "ok"
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    if outcome == "ok":
        assert same(got, want), f"a different result under a {{extra_mb}} MB margin"
    outcomes[outcome] += 1
# The process goes on: the same call again, unconstrained.
assert same(CALL(), want)
assert outcomes["MemoryError"] > 0, "no limit was tight enough: the test proves nothing"
assert outcomes["ok"] > 0, "no limit was loose enough: the test proves nothing"
print(outcomes)
"""

CALLS = {
    "sample_top_p": "lambda: lk.sample(X, top_p=0.9, seed=1)",
    "sample_top_k_logprobs": (
        "lambda: tuple(lk.sample(X, top_k=300000, top_p=0.95, top_logprobs=5, seed=1))"
    ),
    "sample_min_p_penalty": (
        "lambda: lk.sample(X16, min_p=0.05, repetition_penalty=1.2,"
        " prompt_tokens=[[1, 2], [3], [4], [5]], seed=1)"
    ),
    "sampler": "lambda: lk.Sampler(top_p=0.8, seed=3)(X)",
    # Many short rows (found by a review: each row's small allocations, and the Sampler's row
    # states, aborted the process once the call's results held the memory there was).
    "sample_many_rows_top_logprobs": "lambda: tuple(lk.sample(MANY, top_logprobs=2, seed=1))",
    "sample_many_rows_dynatemp": (
        "lambda: tuple(lk.sample(MANY, dynatemp_range=0.5, return_logprobs=True, seed=1))"
    ),
    # The same for the per-row flags of the top-k maxima, the processing chain and V4's
    # draft-probability check.
    "sample_many_rows_small_top_k": "lambda: lk.sample(WIDE, top_k=2, seed=1)",
    "sample_many_rows_bias": "lambda: lk.sample(MANY, logit_bias={1: 0.5}, seed=1)",
    "verify_many_rows": (
        "lambda: tuple(lk.verify_draft(TARGET, np.zeros((1 << 16, 1), np.int64),"
        " draft_probs=DRAFT_PROBS, seed=1))"
    ),
    # Per-row parameters, seeds, ranks and losses: arrays of one value a row.
    "sample_many_rows_per_row_params": (
        "lambda: lk.sample(MANY, temperature=np.full(1 << 18, 0.7), top_k=np.full(1 << 18, 2),"
        " seed=np.arange(1 << 18))"
    ),
    "token_logprobs_ranks_many_rows": (
        "lambda: tuple(lk.token_logprobs(MANY, np.zeros(1 << 18, np.int64), return_ranks=True))"
    ),
    "cross_entropy_many_rows": (
        "lambda: loss.cross_entropy(MANY, np.zeros(1 << 18, np.int64), reduction='none')"
    ),
    "sampler_many_rows": "lambda: lk.Sampler(seed=3, mirostat_tau=3.0)(MANY)",
    "token_logprobs_many_rows": "lambda: lk.token_logprobs(MANY, np.zeros(1 << 18, np.int64))",
    "filter_logits": "lambda: lk.filter_logits(X, top_p=0.9, allowed_token_ids=list(range(0, 1 << 20, 3)))",
    "filter_logits_f16": "lambda: lk.filter_logits(X16, top_k=200000, temperature=0.7)",
    "token_logprobs": "lambda: lk.token_logprobs(X16, LABELS)",
    "topk_large_k": "lambda: ops.topk(X, 300000)",
    "sparsemax": "lambda: ops.sparsemax(X)",
    "sigmoid_strided": "lambda: ops.sigmoid(X[:, ::2])",
    "cross_entropy": "lambda: loss.cross_entropy(X16, LABELS, reduction='none')",
    "calibration_bins": "lambda: calibration.calibration_bins(PROBS, LABELS, n_bins=100000)",
    "softmax_axis0": "lambda: lk.softmax(X16, axis=0)",
    "log_softmax_strided": "lambda: lk.log_softmax(X[:, ::3], temperature=0.5)",
    "log_softmax_strided_per_row_t": "lambda: lk.log_softmax(X[:, ::3], temperature=np.array([0.5, 1, 2, 3]))",
    "logsumexp_axis0": "lambda: lk.logsumexp(X16, axis=0)",
    "logsumexp_strided": "lambda: lk.logsumexp(X[:, ::2], axis=-1)",
}

# Calls run at a lower SIMD level: where the vector levels allocate no row-sized scratch
# (float16 rows are scored as they are), the scalar level still converts each row to float32.
LEVELS = {"token_logprobs": "scalar"}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_r1_refused_memory_is_a_memory_error_and_the_process_goes_on(name):
    # A fixed mmap threshold: glibc otherwise raises it after the first large free, and the
    # next calls reuse heap it already holds, so no limit would ever bite.
    env = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_ARENA_MAX": "1", "RUST_BACKTRACE": "0"}
    if name in LEVELS:
        env["LOGITKIT_SIMD"] = LEVELS[name]
    proc = run_python(DRIVER.format(call=CALLS[name]), env=env, timeout=300)
    assert proc.returncode == 0, (
        f"{name}: exit {proc.returncode}\nstdout: {proc.stdout[-2000:]}\n"
        f"stderr: {proc.stderr[-4000:]}"
    )
    assert "PanicException" not in proc.stderr
    assert "memory allocation" not in proc.stderr


@pytest.mark.parametrize("limit_gb, rows", [(0.6, 1 << 22), (0.75, 1 << 22), (0.5, 1 << 21)])
def test_r1_millions_of_rows_with_top_logprobs_under_a_limit_never_abort(limit_gb, rows):
    """R1: millions of 2-token rows with top_logprobs under an address-space limit that the
    call's results nearly fill. Found by a review: each row's small allocations (the list of
    its blocks for its maximum and its rank) aborted the process at 0.6 GB and 4M rows
    ("memory allocation of 32 bytes failed"); the call must return or raise MemoryError."""
    code = f"""
    import resource
    resource.setrlimit(resource.RLIMIT_AS, ({int(limit_gb * 2**30)}, {int(limit_gb * 2**30)}))
    import numpy as np, logitkit as lk
    logits = np.broadcast_to(np.float32(0), ({rows}, 2))
    try:
        tok = lk.sample(logits, seed=1, top_logprobs=2).tokens
        assert tok.shape == ({rows},)
        print("returned")
    except MemoryError:
        print("MemoryError")
    """
    proc = run_python(code, env={"RUST_BACKTRACE": "0"}, timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.stdout.strip() in ("returned", "MemoryError"), proc.stdout
    assert "memory allocation" not in proc.stderr


def test_r2_a_broken_invariant_on_the_calling_thread_is_a_runtime_error():
    with pytest.raises(RuntimeError, match="internal error") as info:
        lk._native._internal_error_for_tests("caller")
    assert "deliberate panic" in str(info.value)
    assert type(info.value) is RuntimeError  # not pyo3's PanicException (a BaseException)


def test_r2_a_broken_invariant_on_the_crews_threads_is_a_runtime_error_and_the_crew_works():
    old = lk.get_num_threads()
    lk.set_num_threads(2)
    try:
        for _ in range(20):
            with pytest.raises(RuntimeError, match="internal error"):
                lk._native._internal_error_for_tests("helpers")
        x = np.random.default_rng(5).standard_normal((64, 32000)).astype(np.float32)
        ref = np.exp(x - x.max(-1, keepdims=True))
        ref /= ref.sum(-1, keepdims=True)
        np.testing.assert_allclose(lk.softmax(x), ref, rtol=1e-5, atol=1e-7)
    finally:
        lk.set_num_threads(old)


def test_r2_the_test_hook_refuses_other_places():
    with pytest.raises(ValueError, match="where_"):
        lk._native._internal_error_for_tests("elsewhere")
