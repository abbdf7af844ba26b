"""Threads and determinism of the softmax family: contract clauses S9, S10 and S11."""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import logitkit as lk
from conftest import assert_logs_close, assert_probs_close, ref_logsumexp, ref_map, run_python

FUNCS = [lk.softmax, lk.log_softmax, lk.logsumexp]
MAP_FUNCS = [lk.softmax, lk.log_softmax]
FLOATS = [np.float16, np.float32, np.float64]


def _bits_equal(a, b, msg=""):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, msg
    assert a.tobytes() == b.tobytes(), f"not bitwise equal {msg}"


def _call(func, x, **kw):
    if func is lk.logsumexp:
        kw.pop("temperature", None)
    return func(x, **kw)


def _under_thread_counts(func, x, counts=(1, 2, 3), **kw):
    results = []
    for n in counts:
        lk.set_num_threads(n)
        results.append(_call(func, x, **kw))
    return results


# ============================================================================================
# S9 Determinism
# ============================================================================================


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("axis", [-1, 0])
def test_s9_big_batch_thread_count_invariant(restore_threads, func, dtype, axis):
    """S9: a big batch gives bitwise the same result with 1, 2 and 3 threads."""
    x = np.random.default_rng(1).normal(scale=5, size=(512, 2048)).astype(dtype)
    r1, r2, r3 = _under_thread_counts(func, x, axis=axis)
    _bits_equal(r1, r2, "1 vs 2 threads")
    _bits_equal(r1, r3, "1 vs 3 threads")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("shape", [(1, 300000), (4, 100000), (2, 262145), (3, 16385)])
def test_s9_long_rows_thread_count_invariant(restore_threads, func, dtype, shape):
    """S9: one or a few long rows (split inside the row across threads) give bitwise the same
    result with 1, 2 and 3 threads."""
    x = np.random.default_rng(2).normal(scale=6, size=shape).astype(dtype)
    r1, r2, r3 = _under_thread_counts(func, x)
    _bits_equal(r1, r2, "1 vs 2 threads")
    _bits_equal(r1, r3, "1 vs 3 threads")


@pytest.mark.parametrize("func", FUNCS)
def test_s9_axis_none_and_strided_thread_count_invariant(restore_threads, func):
    """S9: axis=None over a big array, and a strided long axis, are thread-count invariant."""
    x = np.random.default_rng(3).normal(scale=3, size=(600, 1000)).astype(np.float32)
    for kw, v in [({"axis": None}, x), ({"axis": 0}, x[:, ::7]), ({"axis": -1}, x.T[::-1])]:
        r1, r2, r3 = _under_thread_counts(func, v, **kw)
        _bits_equal(r1, r2, str(kw))
        _bits_equal(r1, r3, str(kw))


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s9_per_vector_temperature_thread_count_invariant(restore_threads, func):
    """S9: per-vector temperatures: thread count does not change the bits."""
    x = np.random.default_rng(4).normal(scale=4, size=(64, 20000))
    T = np.linspace(0.1, 5.0, 64)
    r1, r2, r3 = _under_thread_counts(func, x, temperature=T)
    _bits_equal(r1, r2)
    _bits_equal(r1, r3)


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s9_in_place_thread_count_invariant(restore_threads, func):
    """S9: out=x with 1 vs 2 threads gives the same bits as out-of-place."""
    x = np.random.default_rng(5).normal(scale=4, size=(8, 70000)).astype(np.float32)
    want = func(x)
    for n in (1, 2, 3):
        lk.set_num_threads(n)
        y = x.copy()
        func(y, out=y)
        _bits_equal(y, want, f"{n} threads")


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("n", [7, 5000, 100000])
def test_s9_vector_alone_equals_in_batch(restore_threads, func, dtype, n):
    """S9: a vector's result is bitwise the same alone and inside a batch of other vectors
    (any position, any batch size, any thread count)."""
    r = np.random.default_rng(n)
    v = r.normal(scale=5, size=n).astype(dtype)
    for threads in (1, 2):
        lk.set_num_threads(threads)
        alone = _call(func, v)
        for rows, pos in [(2, 0), (5, 3), (max(2, 400000 // n), 1)]:
            batch = r.normal(scale=20, size=(rows, n)).astype(dtype)
            batch[pos] = v
            got = _call(func, batch)
            _bits_equal(got[pos], alone, f"rows={rows} pos={pos} threads={threads}")
            # as a column of a batch along axis 0, too
            got0 = _call(func, np.ascontiguousarray(batch.T), axis=0)
            _bits_equal(got0[:, pos] if got0.ndim == 2 else got0[pos], alone, "axis=0 column")


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s9_vector_alone_equals_in_batch_with_temperature(restore_threads, func):
    """S9: a vector's result depends only on it and its temperature, not on its neighbours'
    temperatures."""
    r = np.random.default_rng(6)
    v = r.normal(scale=3, size=30000)
    alone = func(v, temperature=0.7)
    batch = r.normal(scale=3, size=(6, 30000))
    batch[4] = v
    T = np.array([0.1, 2.0, 9.0, 1.0, 0.7, 3.0])
    for threads in (1, 2, 3):
        lk.set_num_threads(threads)
        _bits_equal(func(batch, temperature=T)[4], alone, f"{threads} threads")


@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s9_vector_with_non_finite_neighbours(restore_threads, func):
    """S9/S6: NaN/inf vectors in the same batch do not change a vector's bits."""
    r = np.random.default_rng(7)
    v = r.normal(size=50000).astype(np.float32)
    alone = func(v)
    batch = r.normal(size=(4, 50000)).astype(np.float32)
    batch[0, 10] = np.nan
    batch[1, :] = -np.inf
    batch[3, 5] = np.inf
    batch[2] = v
    lk.set_num_threads(2)
    _bits_equal(func(batch)[2], alone)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("func", MAP_FUNCS)
def test_s9_streamed_long_rows_alone_equal_in_batch(restore_threads, func, dtype):
    """S9 for batches of long rows whose output (33 MB: more than three quarters of this machine's
    L3) is written with non-temporal stores, each row's during the next row's first pass: every
    row has the bits it has alone, with 1 or 2 threads, in place or not, beside NaN, +inf, all
    -inf rows and rows with a block of -inf, at per-row temperatures (1e308's reciprocal is
    subnormal: the plain kernels)."""
    r = np.random.default_rng(11)
    n = 40000
    rows = (33 << 20) // (n * np.dtype(dtype).itemsize) + 1
    x = r.normal(scale=30, size=(rows, n)).astype(dtype)
    x[3, 17] = np.nan
    x[4, -1] = np.inf
    x[7] = -np.inf
    x[8, :16384] = -np.inf
    temps = r.choice([1.0, 0.5, 3.0], size=rows)
    temps[9] = 1e308
    # (+inf at a temperature above float64's max / 1024 would send the whole call down the
    # lane-by-lane exact path.)
    temps[4] = 0.5
    alone = np.stack([func(x[i], temperature=temps[i]) for i in range(rows)])
    for threads in (1, 2):
        lk.set_num_threads(threads)
        _bits_equal(func(x, temperature=temps), alone, f"{threads} threads")
        y = x.copy()
        func(y, temperature=temps, out=y)
        _bits_equal(y, alone, f"{threads} threads, in place")


# ============================================================================================
# S10 Concurrency
# ============================================================================================


def _job(i):
    r = np.random.default_rng(i)
    dtype = FLOATS[i % 3]
    shapes = [(3, 7), (200, 1000), (1, 120000), (17,), (40, 5, 30), (0, 4), (2, 70001)]
    shape = shapes[i % len(shapes)]
    x = r.normal(scale=4, size=shape).astype(dtype)
    func = FUNCS[i % 3]
    axis = [-1, 0, None][(i // 3) % 3] if x.ndim > 1 else -1
    return x, func, axis


def test_s10_many_python_threads(restore_threads):
    """S10: many Python threads calling at once with different shapes, dtypes and functions
    all get correct results (bitwise the serial results, which match the reference)."""
    lk.set_num_threads(2)
    jobs = [_job(i) for i in range(48)]
    serial = [f(x, axis=a) for x, f, a in jobs]
    for (x, f, a), s in list(zip(jobs, serial))[:12]:
        if f is lk.logsumexp:
            assert_logs_close(np.asarray(s), ref_logsumexp(x, axis=a), "logsumexp")
        elif f is lk.softmax:
            assert_probs_close(s, ref_map(x, axis=a), axis=a)
        else:
            assert_logs_close(s, ref_map(x, axis=a, log=True))

    def run(k):
        x, f, a = jobs[k]
        return k, f(x, axis=a)

    for _ in range(3):
        with ThreadPoolExecutor(max_workers=12) as ex:
            results = list(ex.map(run, list(range(48)) * 2))
        for k, got in results:
            _bits_equal(got, serial[k], f"job {k}")


def test_s10_threads_while_thread_count_changes(restore_threads):
    """S10/S11: calls running while another thread changes the thread count stay correct
    (S9 makes the result independent of the count)."""
    x = np.random.default_rng(8).normal(size=(64, 20000)).astype(np.float32)
    want = lk.softmax(x)
    stop = threading.Event()

    def flip():
        k = 0
        while not stop.is_set():
            lk.set_num_threads(1 + k % 3)
            k += 1

    t = threading.Thread(target=flip)
    t.start()
    try:
        with ThreadPoolExecutor(max_workers=4) as ex:
            outs = list(ex.map(lambda _: lk.softmax(x), range(16)))
    finally:
        stop.set()
        t.join()
    for o in outs:
        _bits_equal(o, want)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("func", FUNCS)
def test_s10_gil_released_during_work(restore_threads, func, threads):
    """S10: the GIL is released while the kernels run.

    Timing-free: with a huge switch interval the main thread never hands the GIL over on
    request, so a waiting background thread can only run while the main thread releases the
    GIL by itself. The background thread is woken right before a large softmax call and sets
    a flag; the flag must be set when the call returns. A control with a GIL-holding builtin
    shows the check can fail.
    """
    lk.set_num_threads(threads)
    x = np.random.default_rng(9).normal(size=(40, 250000))  # ~10M elements, 0.1-1 s
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
        # control: a builtin that holds the GIL for a long time does not let bg run
        state["ran"] = False
        go.set()
        sum(range(3_000_000))
        control_ran = state["ran"]
        ran.wait(60)
        ran.clear()
        # the real check
        state["ran"] = False
        go.set()
        for _ in range(5):  # ~0.25 s or more of native work; no bytecode drops the GIL here
            func(x)
        during = state["ran"]
        ran.wait(60)
    finally:
        sys.setswitchinterval(old)
        done.set()
        go.set()
        t.join(10)
    if control_ran:
        pytest.skip("control: background thread ran during a GIL-holding builtin")
    assert during, f"background thread made no progress during {func.__name__}: GIL held"


FORK_CODE = r"""
import os, sys, numpy as np, logitkit as lk
lk.set_num_threads(2)
x = np.random.default_rng(0).normal(size=(64, 40000)).astype(np.float32)
want = lk.softmax(x)          # the parent uses the pool (rows in parallel)
long_row = x[:1].repeat(8, axis=1)  # shape (1, 320000): split inside the row
lw = lk.softmax(long_row)
lse = lk.logsumexp(x)
pid = os.fork()
if pid == 0:
    try:
        ok = lk.softmax(x).tobytes() == want.tobytes()
        ok &= lk.softmax(long_row).tobytes() == lw.tobytes()
        ok &= lk.logsumexp(x).tobytes() == lse.tobytes()
    except BaseException as e:
        print("child error", e, flush=True)
        ok = False
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
assert lk.softmax(x).tobytes() == want.tobytes()
print("OK")
"""


def test_s10_os_fork_child_works():
    """S10: after the parent used the thread pool, a child from os.fork() can call softmax
    (rows in parallel and one long row split across threads) and gets the right bits; no hang
    (a subprocess with a timeout)."""
    res = run_python(FORK_CODE, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK" in res.stdout


MP_CODE = r"""
import multiprocessing as mp, numpy as np, logitkit as lk

def work(seed):
    x = np.random.default_rng(seed).normal(size=(32, 30000))
    return lk.softmax(x).sum(axis=1).tolist(), float(lk.logsumexp(x, axis=None))

if __name__ == "__main__":
    lk.set_num_threads(2)
    big = np.random.default_rng(1).normal(size=(32, 30000))
    lk.softmax(big)
    lk.softmax(big.reshape(1, -1))
    want = [work(s) for s in range(6)]
    ctx = mp.get_context("fork")
    with ctx.Pool(3) as pool:
        got = pool.map(work, range(6))
    assert got == want, "child results differ"
    print("OK")
"""


def test_s10_multiprocessing_fork_context():
    """S10: multiprocessing with the "fork" start method works after the parent used the pool
    (subprocess with a timeout, so a hang fails)."""
    res = run_python(MP_CODE, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK" in res.stdout


FORK_BUSY_CODE = r"""
import os, threading, numpy as np, logitkit as lk
lk.set_num_threads(2)
x = np.random.default_rng(0).normal(size=(16, 40000))
want = lk.softmax(x)
stop = threading.Event()
def busy():
    while not stop.is_set():
        lk.softmax(x)
t = threading.Thread(target=busy)
t.start()
bad = 0
for i in range(15):
    pid = os.fork()
    if pid == 0:
        ok = lk.softmax(x).tobytes() == want.tobytes()
        os._exit(0 if ok else 3)
    _, status = os.waitpid(pid, 0)
    bad += not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0)
stop.set()
t.join()
assert bad == 0, bad
print("OK")
"""


def test_s10_fork_while_another_thread_computes():
    """S10: forking while another Python thread is inside a parallel call still gives children
    that work (no hang on a lock held at fork time)."""
    res = run_python(FORK_BUSY_CODE, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK" in res.stdout


# ============================================================================================
# S11 Thread count
# ============================================================================================


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 64])
def test_s11_set_get_round_trip(restore_threads, n):
    """S11: get_num_threads() returns what set_num_threads(n) set."""
    lk.set_num_threads(n)
    assert lk.get_num_threads() == n
    assert isinstance(lk.get_num_threads(), int)


def test_s11_numpy_integer_accepted(restore_threads):
    """S11: a NumPy integer (an int by __index__) is accepted."""
    lk.set_num_threads(np.int64(2))
    assert lk.get_num_threads() == 2
    lk.set_num_threads(np.uint8(3))
    assert lk.get_num_threads() == 3


@pytest.mark.parametrize(
    "bad", [0, -1, -100, 1.5, 2.0, "2", True, False, None, np.float64(2.0), [2], 1 + 0j]
)
def test_s11_bad_values_value_error(restore_threads, bad):
    """S11: anything but an int >= 1 (0, negatives, floats, strings, bools, ...) raises
    ValueError and leaves the thread count unchanged."""
    lk.set_num_threads(2)
    with pytest.raises(ValueError):
        lk.set_num_threads(bad)
    assert lk.get_num_threads() == 2


@pytest.mark.parametrize("n", [1, 3, 5, 64])
def test_s11_more_threads_than_cpus_works(restore_threads, n):
    """S11: any n >= 1 works for real calls, including more threads than CPUs."""
    x = np.random.default_rng(10).normal(size=(64, 20000)).astype(np.float32)
    lk.set_num_threads(1)
    want = lk.softmax(x)
    lk.set_num_threads(n)
    _bits_equal(lk.softmax(x), want)


def _cpus_expected():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - no affinity API
        return os.cpu_count()


def test_s11_default_is_usable_cpus():
    """S11: in a fresh process without LOGITKIT_NUM_THREADS the default is the number of CPUs
    this process may use."""
    res = run_python(
        """
        import os, logitkit
        try:
            n = len(os.sched_getaffinity(0))
        except AttributeError:
            n = os.cpu_count()
        print(logitkit.get_num_threads(), n)
        """
    )
    assert res.returncode == 0, res.stderr
    got, want = map(int, res.stdout.split())
    assert got == want == _cpus_expected()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no affinity API")
def test_s11_default_follows_affinity():
    """S11: a process restricted to one CPU (affinity set before import) defaults to 1."""
    res = run_python(
        """
        import os
        cpu = sorted(os.sched_getaffinity(0))[0]
        os.sched_setaffinity(0, {cpu})
        import logitkit
        print(logitkit.get_num_threads())
        """
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["1"]


@pytest.mark.parametrize("value,expected", [("3", 3), ("1", 1), ("8", 8)])
def test_s11_env_overrides_default(value, expected):
    """S11: LOGITKIT_NUM_THREADS at import overrides the default; no warning."""
    res = run_python(
        """
        import warnings
        warnings.simplefilter("error")
        import logitkit
        print(logitkit.get_num_threads())
        """,
        env={"LOGITKIT_NUM_THREADS": value},
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [str(expected)]


def test_s11_env_read_at_import_only_and_set_overrides():
    """S11: the variable is read at import (later changes have no effect), and
    set_num_threads overrides it."""
    res = run_python(
        """
        import os, logitkit
        a = logitkit.get_num_threads()
        os.environ["LOGITKIT_NUM_THREADS"] = "5"
        b = logitkit.get_num_threads()
        logitkit.set_num_threads(2)
        c = logitkit.get_num_threads()
        print(a, b, c)
        """,
        env={"LOGITKIT_NUM_THREADS": "3"},
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["3", "3", "2"]


@pytest.mark.parametrize("value", ["0", "-2", "abc", "1.5", "two", "3x"])
def test_s11_invalid_env_warns_and_uses_default(value):
    """S11 (documented choice): an invalid LOGITKIT_NUM_THREADS emits a RuntimeWarning at
    import naming the variable, and the default (usable CPUs) is used."""
    res = run_python(
        """
        import os, warnings
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            import logitkit
        cats = [x.category.__name__ for x in w]
        msgs = [str(x.message) for x in w]
        try:
            n = len(os.sched_getaffinity(0))
        except AttributeError:
            n = os.cpu_count()
        print(logitkit.get_num_threads() == n, "RuntimeWarning" in cats,
              any("LOGITKIT_NUM_THREADS" in m for m in msgs))
        """,
        env={"LOGITKIT_NUM_THREADS": value},
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["True", "True", "True"], res.stdout + res.stderr


def test_s11_thread_count_used_by_calls(restore_threads):
    """S11: the count set is the one used: with n threads a parallel call runs on at most n
    worker threads (observed via the process's thread list on Linux)."""
    if not os.path.isdir("/proc/self/task"):
        pytest.skip("no /proc")
    x = np.random.default_rng(11).normal(size=(64, 40000))

    def names():
        out = []
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/comm") as f:
                    out.append(f.read().strip())
            except OSError:
                pass
        return out

    lk.set_num_threads(3)
    lk.softmax(x)
    workers = [n for n in names() if n.startswith("logitkit")]
    if not workers:
        pytest.skip("worker threads are not named logitkit-*")
    # Pools retired by earlier set_num_threads calls stop their threads asynchronously: give
    # them a moment, then at most this pool plus one older pool being retired may remain.
    import time

    deadline = time.monotonic() + 5.0
    while len(workers) > 3 + 3 and time.monotonic() < deadline:
        time.sleep(0.05)
        lk.softmax(x)
        workers = [n for n in names() if n.startswith("logitkit")]
    assert len(workers) <= 3 + 3, workers
    lk.set_num_threads(1)
    lk.softmax(x)


def test_s11_huge_thread_count_is_accepted_and_still_correct(restore_threads):
    """S11/R5: any int n from 1 to the documented maximum (1024) is accepted and reported back;
    the pool starts at most a bounded number of workers, so the maximum neither crashes nor
    changes results (S9). Above it (R5): ValueError, see test_faults.py."""
    x = np.random.default_rng(3).standard_normal((64, 70000)).astype(np.float32)
    lk.set_num_threads(1)
    want = lk.softmax(x)
    lk.set_num_threads(1024)
    assert lk.get_num_threads() == 1024
    np.testing.assert_array_equal(lk.softmax(x), want)
    with pytest.raises(ValueError, match="1024"):
        lk.set_num_threads(10**6)
    assert lk.get_num_threads() == 1024
