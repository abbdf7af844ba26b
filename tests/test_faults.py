"""Faults, resources and bad input (contract R4, R5, R7, P8; issue 20).

Each test names the clause it guards. Thread counts and environment variables are tried in
fresh interpreters (``run_python``) so that the settings read at import are the ones under test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import logitkit as lk
from conftest import run_python

MAX_THREADS = 1024


# --------------------------------------------------------------------------------------------
# R5: thread counts and environment variables
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [MAX_THREADS + 1, 2**61, 2**63 - 1, 2**64, 2**70])
def test_r5_set_num_threads_above_the_maximum_is_a_value_error(n, restore_threads):
    """R5: above the documented maximum (1024) set_num_threads raises ValueError naming ``n``,
    leaves the setting alone, and the next call works (it used to panic dividing by zero)."""
    before = lk.get_num_threads()
    with pytest.raises(ValueError) as info:
        lk.set_num_threads(n)
    msg = str(info.value)
    assert "n must be" in msg and "1024" in msg, msg
    assert len(msg) < 150, msg
    assert lk.get_num_threads() == before
    x = np.zeros((1000, 1000))
    np.testing.assert_allclose(lk.softmax(x), 1e-3)


def test_r5_set_num_threads_at_the_maximum_works(restore_threads):
    """R5: the maximum itself is accepted, and calls of every size work with it."""
    lk.set_num_threads(MAX_THREADS)
    assert lk.get_num_threads() == MAX_THREADS
    for shape in [(3,), (1000, 1000), (3, 300_000), (70_000, 8)]:
        x = np.random.default_rng(0).normal(size=shape)
        np.testing.assert_allclose(lk.softmax(x).sum(axis=-1), 1.0, rtol=1e-12)
        np.testing.assert_allclose(lk.logsumexp(x), np.log(np.exp(x).sum(axis=-1)), rtol=1e-12)


def test_r5_set_num_threads_docstring_states_the_maximum():
    assert "1024" in lk.set_num_threads.__doc__


@pytest.mark.parametrize("value", ["1025", str(2**61), "9" * 600])
def test_r5_huge_env_thread_count_warns_and_uses_the_default(value):
    """R5: LOGITKIT_NUM_THREADS above the maximum gives a RuntimeWarning at import naming the
    variable (the value abbreviated), then the default; a big call then works."""
    res = run_python(
        """
        import os, warnings
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            import logitkit, numpy as np
        msgs = [str(x.message) for x in w if x.category is RuntimeWarning]
        try:
            n = len(os.sched_getaffinity(0))
        except AttributeError:
            n = os.cpu_count()
        assert logitkit.get_num_threads() == min(n, 1024), logitkit.get_num_threads()
        assert len(msgs) == 1 and "LOGITKIT_NUM_THREADS" in msgs[0], msgs
        assert len(msgs[0]) < 200, msgs[0]
        p = logitkit.softmax(np.zeros((1000, 1000)))
        assert abs(float(p.sum()) - 1000.0) < 1e-9
        print("ok")
        """,
        env={"LOGITKIT_NUM_THREADS": value},
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["ok"]


@pytest.mark.parametrize("value", ["garbage", "avx3", "sse4", "x" * 500])
def test_r5_unknown_simd_level_warns_naming_the_valid_levels(value):
    """R5: a LOGITKIT_SIMD that is not a level name gives a RuntimeWarning at import that names
    the valid levels; the best level is then used."""
    res = run_python(
        """
        import warnings
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            import logitkit
        msgs = [str(x.message) for x in w if x.category is RuntimeWarning]
        assert len(msgs) == 1, msgs
        for name in ("LOGITKIT_SIMD", "scalar", "avx2", "avx512", "neon"):
            assert name in msgs[0], (name, msgs[0])
        assert len(msgs[0]) < 250, msgs[0]
        print(logitkit.simd_level())
        """,
        env={"LOGITKIT_SIMD": value},
    )
    assert res.returncode == 0, res.stderr
    best = run_python("import logitkit; print(logitkit.simd_level())", env={"LOGITKIT_SIMD": ""})
    assert res.stdout.split() == best.stdout.split()


@pytest.mark.parametrize("value", ["scalar", "AVX2", " avx512 ", "neon", ""])
def test_r5_valid_simd_levels_do_not_warn(value):
    """R5/S12: a level name (any case; empty means unset) imports without a warning."""
    res = run_python(
        """
        import warnings
        warnings.simplefilter("error")
        import logitkit
        print(logitkit.simd_level())
        """,
        env={"LOGITKIT_SIMD": value},
    )
    assert res.returncode == 0, res.stderr


def test_r5_demo_closes_its_files():
    """R5 (resources): ``python -m logitkit demo`` leaks no file handle: no ResourceWarning
    under ``-X dev`` with ResourceWarning as an error."""
    r = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-X", "dev", "-m", "logitkit", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "ResourceWarning" not in r.stderr, r.stderr
    assert "Exception ignored" not in r.stderr, r.stderr


# --------------------------------------------------------------------------------------------
# CLI -o (issue 20 #11)
# --------------------------------------------------------------------------------------------


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "logitkit", *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )


@pytest.mark.parametrize("command", ["softmax", "sample"])
@pytest.mark.parametrize("name", ["out", "out.bin", "out.npy", "dir.npy/x"])
def test_cli_output_writes_exactly_the_path_given(tmp_path, command, name):
    """-o writes the .npy data to exactly the path given (np.save with a name would append
    .npy) and reports that path."""
    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    r = run_cli(command, "1", "2", "3", "-o", str(path), "-t", "0" if command == "sample" else "1")
    assert r.returncode == 0, r.stderr
    assert path.is_file()
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    assert f"to {path}\n" in r.stdout, r.stdout
    got = np.load(path)
    if command == "softmax":
        np.testing.assert_array_equal(got, lk.softmax(np.array([1.0, 2.0, 3.0])))
    else:
        assert got.tolist() == [2]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("command", ["softmax", "sample"])
def test_cli_output_write_failure_is_a_clean_error(command):
    """A write that fails (here at flush time: /dev/full) exits non-zero with a one-line error
    naming the path, and never claims to have written it."""
    r = run_cli(command, "1", "2", "3", "-o", "/dev/full")
    assert r.returncode != 0
    assert "cannot write /dev/full" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert "wrote" not in r.stdout, r.stdout


def test_cli_output_to_a_missing_directory_is_a_clean_error(tmp_path):
    r = run_cli("softmax", "1", "2", "-o", str(tmp_path / "missing" / "p.npy"))
    assert r.returncode != 0
    assert "cannot write" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "wrote" not in r.stdout


# --------------------------------------------------------------------------------------------
# R7: calibration functions refuse probabilities outside [0, 1]
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [1.5, np.inf, -np.inf, -0.25, 1 + 1e-9, np.nan])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_r7_calibration_refuses_probabilities_outside_0_1(bad, dtype):
    """R7: ECE and calibration_bins raise ValueError naming ``probs`` for a probability above
    1, below 0, infinite or NaN (they returned an ECE above 1, or inf; NaN was reported as a
    row of "logits", a parameter they do not have)."""
    from logitkit.calibration import calibration_bins, expected_calibration_error

    p = np.array([[0.3, 0.7], [bad, 0.1]], dtype=dtype)
    if 0.0 <= float(p[1, 0]) <= 1.0:
        pytest.skip("rounds into [0, 1] in this dtype")
    for f in (expected_calibration_error, calibration_bins):
        with pytest.raises(ValueError, match="probs") as info:
            f(p, [1, 0])
        assert "[0, 1]" in str(info.value)
        assert "logits" not in str(info.value) and "row 1, position 0" in str(info.value)
        with pytest.raises(ValueError, match="probs"):
            f(p.T, [1, 0], axis=0)


def test_r7_calibration_accepts_the_ends_of_0_1():
    from logitkit.calibration import expected_calibration_error

    assert expected_calibration_error(np.array([[0.0, 1.0], [1.0, 0.0]]), [1, 0]) == 0.0


# --------------------------------------------------------------------------------------------
# R7: parameters of the wrong type, out-of-range integers of any size (issue 20 #9, #10)
# --------------------------------------------------------------------------------------------

X2 = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 5.0]])


def _funcs_with_axis():
    from logitkit import ops
    from logitkit.calibration import calibration_bins, expected_calibration_error, fit_temperature
    from logitkit.loss import cross_entropy

    p = lk.softmax(X2)
    labels = [0, 2]
    return [
        ("softmax", lambda axis: lk.softmax(X2, axis=axis)),
        ("log_softmax", lambda axis: lk.log_softmax(X2, axis=axis)),
        ("logsumexp", lambda axis: lk.logsumexp(X2, axis=axis)),
        ("topk", lambda axis: ops.topk(X2, 1, axis=axis)),
        ("sparsemax", lambda axis: ops.sparsemax(X2, axis=axis)),
        ("cross_entropy", lambda axis: cross_entropy(X2, labels, axis=axis)),
        ("fit_temperature", lambda axis: fit_temperature(X2, labels, axis=axis)),
        ("expected_calibration_error", lambda axis: expected_calibration_error(p, labels, axis=axis)),
        ("calibration_bins", lambda axis: calibration_bins(p, labels, axis=axis)),
    ]


@pytest.mark.parametrize("axis", [2**70, -(2**70), 2**63, 10**600, 5, -3])
def test_r7_out_of_range_axis_of_any_size_is_an_axis_error_naming_axis(axis):
    """S2/R7: an out-of-range axis of any size is numpy's AxisError (a ValueError) whose message
    names ``axis`` and abbreviates a huge value (2**70 used to raise a bare OverflowError)."""
    from numpy.exceptions import AxisError

    for name, f in _funcs_with_axis():
        with pytest.raises(AxisError) as info:
            f(axis)
        msg = str(info.value)
        assert isinstance(info.value, ValueError)
        assert "axis" in msg, (name, msg)
        assert len(msg) < 120, (name, msg)
        if abs(axis) < 10**40:
            assert str(axis) in msg, (name, msg)


@pytest.mark.parametrize("axis", [True, False, np.bool_(True), 1.0, 1.5, "1", [1], np.float64(1.0), 1j])
def test_r7_axis_of_the_wrong_type_is_a_type_error_naming_axis(axis):
    """R7: ``axis=True`` (it was taken as 1), floats, strings and lists are a TypeError whose
    message itself names ``axis``."""
    for name, f in _funcs_with_axis():
        with pytest.raises(TypeError) as info:
            f(axis)
        assert "axis" in str(info.value), (name, str(info.value))


def test_r7_integer_like_axes_still_work():
    for axis in [np.int64(1), np.int8(-1), 1]:
        np.testing.assert_array_equal(lk.softmax(X2, axis=axis), lk.softmax(X2, axis=1))
    np.testing.assert_array_equal(lk.softmax(X2, axis=None), lk.softmax(X2.ravel()).reshape(2, 3))


@pytest.mark.parametrize(
    "temperature",
    [
        np.array([1 + 0j]),
        np.array([1 + 0j, 2 + 0j]),
        np.complex128(1.0),
        1 + 0j,
        np.array(["1.5"]),
        np.array(["1.5", "2"]),
        np.array([b"1.5"]),
        np.str_("2"),
        "2",
        ["1.5", "2"],
        np.array([True, True]),
        True,
        np.bool_(True),
        np.array([None, 1.0], dtype=object),
        np.array(["2", 1.0], dtype=object),
        {"t": 1},
    ],
    ids=repr,
)
@pytest.mark.parametrize("func", ["softmax", "log_softmax", "cross_entropy"])
def test_r7_complex_string_or_bool_temperature_is_a_type_error(temperature, func):
    """R7: complex, string, bool and other non-numeric temperatures (scalars or arrays) are a
    TypeError naming ``temperature`` (complex arrays were silently cast to their real part,
    strings parsed as numbers)."""
    import warnings

    from logitkit.loss import cross_entropy

    f = {
        "softmax": lambda t: lk.softmax(X2, temperature=t),
        "log_softmax": lambda t: lk.log_softmax(X2, temperature=t),
        "cross_entropy": lambda t: cross_entropy(X2, [0, 2], temperature=t),
    }[func]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning on the way either
        with pytest.raises(TypeError) as info:
            f(temperature)
    assert "temperature" in str(info.value), str(info.value)


@pytest.mark.parametrize("temperature", [10**600, -(10**600), [10**600, 1.0], np.array([10**400], dtype=object)])
def test_r7_huge_integer_temperature_is_a_short_value_error(temperature):
    """R7: an integer temperature too large for a float is a ValueError naming ``temperature``
    with the value abbreviated (a 600-digit value used to be echoed whole, as a TypeError)."""
    with pytest.raises(ValueError) as info:
        lk.softmax(X2, temperature=temperature)
    msg = str(info.value)
    assert "temperature" in msg and "..." in msg and "digits" in msg, msg
    assert len(msg) < 120, msg


@pytest.mark.parametrize(
    "labels",
    [[2**63, 0], [0, 2**64], (2**63 + 5, 1), [[0], [-(2**63) - 1]], [0, 10**600]],
    ids=repr,
)
def test_r7_labels_beyond_int64_are_a_short_value_error(labels):
    """R7: Python ints outside int64 among the labels are out of range (ValueError naming
    ``labels``), not a wrong type: NumPy makes float64 or object arrays of them, and the labels
    used to be refused as "got dtype float64". Found by a review."""
    from logitkit.loss import cross_entropy

    x = np.zeros((2, 3)) if np.ndim(labels) == 1 else np.zeros((2, 1, 3))
    with pytest.raises(ValueError, match="labels must be class indices") as info:
        cross_entropy(x, labels)
    assert len(str(info.value)) < 120, str(info.value)


@pytest.mark.parametrize(
    "temperature",
    [2, 2.0, np.float32(2), np.int64(2), np.float16(2), [2.0, 2.0], (2, 2), np.array([2, 2], np.uint8),
     np.array([2.0, 2.0], dtype=object), np.array([2, 2], dtype=object), np.longdouble(2)],
    ids=repr,
)
def test_r7_real_temperatures_of_every_numeric_type_still_work(temperature):
    want = lk.softmax(X2 / 2.0)
    np.testing.assert_allclose(lk.softmax(X2, temperature=temperature), want, rtol=1e-15)


def test_r7_fractions_and_decimals_still_work():
    from decimal import Decimal
    from fractions import Fraction

    for t in (Fraction(1, 2), Decimal("0.5")):
        np.testing.assert_allclose(lk.softmax(X2, temperature=t), lk.softmax(X2 / 0.5), rtol=1e-15)


# --------------------------------------------------------------------------------------------
# P8: the parameter's name is in the message itself, not only in an exception note (#14)
# --------------------------------------------------------------------------------------------


def _note_cases():
    from logitkit.loss import cross_entropy

    return [
        ("axis", TypeError, lambda: lk.softmax(X2, axis="last")),
        ("axis", TypeError, lambda: lk.logsumexp(X2, axis=1.0)),
        ("keepdims", TypeError, lambda: lk.logsumexp(X2, keepdims="yes")),
        ("keepdims", TypeError, lambda: lk.logsumexp(X2, keepdims=1)),
        ("reduction", TypeError, lambda: cross_entropy(X2, [0, 2], reduction=3)),
        ("label_smoothing", TypeError, lambda: cross_entropy(X2, [0, 2], label_smoothing="a")),
        ("label_smoothing", TypeError, lambda: cross_entropy(X2, [0, 2], label_smoothing=1j)),
        ("ignore_index", TypeError, lambda: cross_entropy(X2, [0, 2], ignore_index=1.5)),
        ("ignore_index", ValueError, lambda: cross_entropy(X2, [0, 2], ignore_index=2**70)),
        ("return_logprobs", TypeError, lambda: lk.sample(X2, seed=0, return_logprobs="yes")),
        ("return_logprobs", TypeError, lambda: lk.Sampler(seed=0)(X2, return_logprobs=2)),
    ]


@pytest.mark.parametrize("case", range(11))
def test_p8_errors_name_the_parameter_in_the_message_not_only_in_a_note(case):
    """P8/R7: PyO3 names a badly typed argument only in an exception note (``__notes__``,
    "while processing 'x'"), which many handlers and loggers drop; the message itself must name
    it."""
    name, exc, call = _note_cases()[case]
    with pytest.raises(exc) as info:
        call()
    assert name in str(info.value), (name, str(info.value), getattr(info.value, "__notes__", None))


def test_p8_keepdims_and_cross_entropy_options_still_accept_good_values():
    from logitkit.loss import cross_entropy

    assert lk.logsumexp(X2, keepdims=np.bool_(True)).shape == (2, 1)
    assert lk.logsumexp(X2, keepdims=False).shape == (2,)
    a = cross_entropy(X2, [0, 2], reduction="sum", label_smoothing=0, ignore_index=np.int64(0))
    b = cross_entropy(X2, [0, 2], reduction="sum", label_smoothing=0.0, ignore_index=0)
    assert float(a) == float(b)
    assert float(cross_entropy(X2, [0, 2], ignore_index=None)) > 0


# --------------------------------------------------------------------------------------------
# R4: os.fork() while another thread is inside logitkit (issue 20 #3)
# --------------------------------------------------------------------------------------------

FORK_STRESS = """
import os, signal, sys, threading, time, warnings
import numpy as np
import logitkit as lk

warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() with threads running
lk.set_num_threads(2)
small = np.random.default_rng(0).normal(size=(64, 512))   # shared with the crew when polling
big = np.random.default_rng(1).normal(size=(64, 4096))    # always shared (wakes the helpers)
want_small, want_big = lk.softmax(small), lk.softmax(big)
stop = threading.Event()

def busy():
    while not stop.is_set():
        lk.softmax(small)
        lk.log_softmax(big)
        lk.logsumexp(small)

threads = [threading.Thread(target=busy, daemon=True) for _ in range(2)]
for t in threads:
    t.start()
hangs = failures = 0
forks = int(sys.argv[1])
deadline = time.monotonic() + float(sys.argv[2])
done = 0
while done < forks and time.monotonic() < deadline:
    pid = os.fork()
    if pid == 0:
        ok = np.array_equal(lk.softmax(small), want_small) and np.array_equal(lk.softmax(big), want_big)
        os._exit(0 if ok else 3)
    t0 = time.monotonic()
    while True:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got:
            if os.waitstatus_to_exitcode(status) != 0:
                failures += 1
            break
        if time.monotonic() - t0 > 5.0:
            hangs += 1
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            break
        time.sleep(0.0005)
    done += 1
stop.set()
for t in threads:
    t.join()
print(done, hangs, failures)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_r4_fork_while_other_threads_are_inside_logitkit_never_hangs_the_child():
    """R4/S10: several hundred fork()s while two threads keep calling into logitkit (with the
    crew's helpers at work); every child computes correct results and exits, none hangs (a
    child is killed after 5 s and counted as a hang). Bounded at about 25 s."""
    res = run_python(FORK_STRESS.replace("sys.argv[1]", "400").replace("sys.argv[2]", "20"), timeout=120)
    assert res.returncode == 0, res.stderr
    done, hangs, failures = map(int, res.stdout.split())
    assert hangs == 0 and failures == 0, (done, hangs, failures)
    assert done >= 100, done


# --------------------------------------------------------------------------------------------
# R8: a long call answers Ctrl-C within a second
# --------------------------------------------------------------------------------------------

# The child builds its input, says "ready" and makes one long call (seconds uninterrupted on a
# 2-core machine; the call is timed when it is not interrupted, so a too-short call shows up as
# "finished"). On KeyboardInterrupt it prints the CLOCK_MONOTONIC time it caught it (the same
# clock as the parent's time.monotonic()), then checks that logitkit still gives right answers.
R8_CHILD = r"""
import signal, sys, time
import numpy as np
import logitkit as lk

# Python installs its Ctrl-C handler only when SIGINT is not ignored at start-up, and a job
# started in the background by a shell without job control (as CI runners may start it)
# inherits SIGINT ignored. What is tested is logitkit under Python's handler, so install it.
signal.signal(signal.SIGINT, signal.default_int_handler)

kind, threads = sys.argv[1], int(sys.argv[2])
lk.set_num_threads(threads)
row = np.random.default_rng(0).standard_normal(4096).astype(np.float32)
if kind == "logsumexp":
    # 2**34 elements read through a broadcast view (no memory): several seconds at least.
    x = np.broadcast_to(row[:, None], (4096, 1 << 22))
    call = lambda: lk.logsumexp(x, axis=0)
elif kind == "cross_entropy":
    # The extras' lane executor: 2**34 elements of a broadcast view, each lane gathered.
    from logitkit.loss import cross_entropy
    x = np.broadcast_to(row[:, None], (4096, 1 << 22))
    call = lambda: cross_entropy(x, np.zeros(1 << 22, dtype=np.int64), axis=0)
elif kind == "calibration":
    # 2**32 probabilities of a broadcast view (no memory), each checked and compared.
    from logitkit.calibration import expected_calibration_error
    p = np.broadcast_to(np.float32(1 / 1024), (1 << 22, 1024))
    call = lambda: expected_calibration_error(p, np.broadcast_to(np.int64(3), (1 << 22,)))
elif kind == "verify_draft":
    # Two sequences of 120 positions of 2**20 tokens, every draft accepted (each position is
    # drawn under top-k): seconds, and each sequence alone takes them (found by a review:
    # Ctrl-C was seen only between sequences, 1.7-2 s late). 960 MB.
    B, K, V = 2, 119, 1 << 20
    tl = np.empty((B, K + 1, V), np.float32)
    np.random.default_rng(1).standard_normal(out=tl, dtype=np.float32)
    tl[:, :, 0] = 50.0
    call = lambda: lk.verify_draft(tl, np.zeros((B, K), np.int64), top_k=500_000, seed=0)
elif kind.startswith("token_logprobs"):
    # 60M rows of 2 logits, scored 256 rows per kernel call (found by a review: the path
    # polled for no interruption, and a poll elsewhere could swallow it): seconds. With
    # "token_logprobs_setup" the signal comes while the ids (uint64) are copied and checked:
    # 1.05 s with the GIL held and no check for signals (int64: 0.65 s, 2 s on a loaded
    # machine, which made the test above fail now and then).
    x = np.ones((60_000_000, 2), np.float32)
    ids = np.ones(60_000_000, np.uint64 if kind.endswith("_setup") else np.int64)
    call = lambda: lk.token_logprobs(x, ids)
elif kind == "copied":
    # 1 GiB of F-order logits, which sampling copies to C order first (a transposing copy of
    # seconds, found by a review: Ctrl-C was seen only when it ended, 9-17 s for 2 GiB).
    base = np.empty((32768, 8192), np.float32)
    base[...] = np.random.default_rng(2).standard_normal(8192, dtype=np.float32)
    x = base.T
    call = lambda: lk.sample(x, temperature=0.0)
else:
    # 1 GiB of float16 along axis 0 (strided lanes, converted to float32 and back): seconds.
    x = np.tile(row.astype(np.float16), (16384, 8))
    call = lambda: lk.softmax(x, axis=0)
print("ready", flush=True)
t0 = time.monotonic()
try:
    call()
    print("finished", time.monotonic() - t0, flush=True)
except KeyboardInterrupt:
    print("interrupted", time.monotonic(), flush=True)
small = np.float32([[1.0, 2.0], [3.0, 5.0]])
np.testing.assert_allclose(lk.softmax(small, axis=0), [[0.11920292, 0.04742587], [0.880797, 0.95257413]], rtol=1e-6)
assert lk.sample(np.float32([0.0, 9.0, 1.0]), temperature=0.0) == 1
assert lk.logsumexp(np.zeros((3, 2)), axis=0).tolist() == [np.log(3)] * 2
print("ok", flush=True)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    "kind",
    ["softmax", "logsumexp", "cross_entropy", "calibration", "verify_draft", "copied", "token_logprobs",
     "token_logprobs_setup"],
)
def test_r8_ctrl_c_interrupts_a_long_call_within_a_second(kind, threads):
    """R8: SIGINT sent to a process inside a long logitkit call (seconds uninterrupted) raises
    KeyboardInterrupt within 1 s of the signal, and the process keeps working afterwards. The
    child runs under a timeout, so a call that ignores the signal fails the test."""
    import select

    env = dict(os.environ)
    env.pop("LOGITKIT_NUM_THREADS", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", R8_CHILD, kind, str(threads)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        assert ready, "the child never got ready"
        assert proc.stdout.readline().strip() == "ready"
        # Well inside the call (it takes seconds), or inside its set-up, then the signal.
        time.sleep(0.02 if kind.endswith("_setup") else 0.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    lines = out.split("\n")
    assert lines[0].startswith("interrupted"), f"the call was not interrupted: {out!r}"
    latency = float(lines[0].split()[1]) - sent
    assert latency < 1.0, f"KeyboardInterrupt {latency:.3f} s after SIGINT"
    assert lines[1] == "ok", out


# --------------------------------------------------------------------------------------------
# R3: another thread writing to the input while a call runs
# --------------------------------------------------------------------------------------------

# One scenario per fresh interpreter: a thread keeps writing into the logits (a +inf or NaN
# there only briefly, extreme but valid values, random values, now and then a +inf or NaN
# left a while, and a reset to the clean values) while the main thread calls logitkit on them
# for SECONDS. Prints "ok errors [failures]"; exits 1 on anything but a result or ValueError,
# or a token id outside [0, V).
R3_WRITER = r"""
import sys, threading, time
import numpy as np
import logitkit as lk
from logitkit import loss, ops

scenario, dtype, secs = SCENARIO, np.dtype(DTYPE), SECONDS
# One long row (its passes split across the threads) for the top-p paths, else a few rows.
shape = (1, 70_000) if scenario in ("nucleus", "cut") else (3, 30_000)
rows, vocab = shape
x = (np.random.default_rng(0).standard_normal(shape) * 3).astype(dtype)
clean = x.copy()
flat, clean_flat = x.reshape(-1), clean.reshape(-1)
sampler = lk.Sampler(temperature=0.8, top_k=40, top_p=0.9, seed=3)
calls = {
    "nucleus": [
        lambda: lk.sample(x, temperature=0.8, top_p=0.9, seed=1),
        lambda: lk.sample(x, top_p=0.5, min_p=0.01, seed=1, top_logprobs=3),
    ],
    "cut": [
        lambda: lk.sample(x, temperature=0.8, top_k=50, top_p=0.9, seed=1, return_logprobs=True),
        lambda: lk.sample(x, top_k=5000, top_p=0.9, seed=1, return_logprobs=True),
        lambda: lk.filter_logits(x, temperature=0.8, top_k=50, top_p=0.9, min_p=0.01),
    ],
    "min_p": [
        lambda: lk.sample(x, min_p=0.05, seed=1, return_logprobs=True),
        lambda: lk.sample(x, min_p=0.9, seed=1, return_logprobs=True),
        lambda: lk.filter_logits(x, min_p=0.3),
    ],
    "greedy": [
        lambda: lk.sample(x, temperature=0.0, top_logprobs=5),
        lambda: lk.filter_logits(x, temperature=0.0),
        lambda: lk.token_logprobs(x, np.zeros(rows, np.int64), return_ranks=True),
    ],
    "sampler": [lambda: sampler(x, return_logprobs=True)],
    "softmax": [lambda: lk.softmax(x), lambda: lk.log_softmax(x), lambda: lk.logsumexp(x)],
    "extras": [
        lambda: ops.topk(x, 5),
        lambda: ops.topk(x, 64),
        lambda: ops.topk(x, 300),
        lambda: ops.sparsemax(x),
        lambda: loss.cross_entropy(x, [0, 1, 2]),
    ],
}[scenario]
stop = threading.Event()

def writer():
    r = np.random.default_rng(1)
    big = float(np.finfo(dtype).max)
    extreme = np.array([-np.inf, big, -big, 0.0, 60.0], dtype)
    k = 0
    while not stop.is_set():
        i = r.integers(0, flat.size, size=16)
        kind = k % 4
        if kind == 0:
            flat[i] = np.inf
            flat[i] = clean_flat[i]
        elif kind == 1:
            flat[i] = np.nan
            flat[i] = clean_flat[i]
        elif kind == 2:
            flat[i] = r.choice(extreme, size=16)
        else:
            flat[i] = r.standard_normal(16) * 10
        if k % 64 == 32:
            flat[i[0]] = np.inf if k % 128 == 32 else np.nan
        if k % 64 == 63:
            flat[:] = clean_flat
        if scenario == "extras" and k % 2:
            # Whole rows of one value and back: a row's ranking changes under the reader.
            x[k % rows, :] = k % 7
            x[k % rows, :] = clean[k % rows]
        k += 1

def tokens_in_range(res):
    tok = res[0] if isinstance(res, tuple) else res
    if isinstance(tok, (np.ndarray, np.integer)) and np.asarray(tok).dtype == np.int64:
        return bool(((np.asarray(tok) >= 0) & (np.asarray(tok) < vocab)).all())
    return True

with np.errstate(all="ignore"):
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    ok = errors = 0
    bad = []
    end = time.monotonic() + secs
    while time.monotonic() < end:
        for f in calls:
            try:
                res = f()
            except ValueError:
                errors += 1
                continue
            except BaseException as e:  # PanicException derives from BaseException
                bad.append(f"{type(e).__name__}: {e}")
                continue
            ok += 1
            if not tokens_in_range(res):
                bad.append(f"token out of range: {res}")
    stop.set()
    t.join()
print(ok, errors, bad[:3])
sys.exit(1 if bad else 0)
"""


@pytest.mark.parametrize(
    "scenario, dtype",
    [
        ("nucleus", "float32"),
        ("cut", "float32"),
        ("cut", "float16"),
        ("min_p", "float32"),
        ("min_p", "float64"),
        ("greedy", "float32"),
        ("sampler", "float32"),
        ("sampler", "float64"),
        ("softmax", "float32"),
        ("extras", "float32"),
    ],
)
def test_r3_concurrent_writer_gives_a_result_or_value_error(scenario, dtype):
    """R3: while another thread writes +inf, NaN, extreme and random values into the logits,
    sample (top-p by rejection, top-k/top-p cuts, min-p, greedy, logprobs), filter_logits,
    token_logprobs, Sampler and the softmax family return a result (token ids in [0, V)) or
    raise ValueError, for a second of calls. Before the fix this hung in the top-k/top-p cut
    (a +inf in the band left every token in one bucket, forever) and raised PanicException
    ("a set with a positive total has a kept token", "no NaN in a validated row", an index out
    of bounds in the min-p gather, "the maximum is in the row"). A hang fails by the timeout. The extras: topk with k up to 64
    panicked ("insertion index should be <= len": its sorted buffer re-read the input)."""
    code = (
        R3_WRITER.replace("SCENARIO", repr(scenario))
        .replace("DTYPE", repr(dtype))
        .replace("SECONDS", "1.0")
    )
    try:
        res = run_python(code, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{scenario} ({dtype}) hung with another thread writing to the logits")
    assert res.returncode == 0, (res.stdout, res.stderr[-2000:])
    ok, errors = map(int, res.stdout.split()[:2])
    assert ok > 0, res.stdout  # some calls ran on clean rows, where the race matters


# --------------------------------------------------------------------------------------------
# R6: an out= whose own elements overlap
# --------------------------------------------------------------------------------------------

from numpy.lib.stride_tricks import as_strided  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

R6_FUNCS = [lk.softmax, lk.log_softmax]


def _r6_layouts(item):
    """(name, shape, byte strides) of out layouts whose elements overlap."""
    return [
        ("a zero stride (a broadcast row)", (4, 6), (0, item)),
        ("a zero inner stride", (4, 6), (6 * item, 0)),
        ("rows sharing all but two elements", (4, 6), (2 * item, item)),
        ("rows sharing elements, reversed", (4, 6), (-2 * item, item)),
        ("a transposed overlap", (6, 4), (item, 2 * item)),
        ("elements a byte apart", (4, 6), (6 * item, item - 1)),
    ]


def _view(buf, shape, strides):
    """``as_strided`` over ``buf`` (1-D, writeable) starting far enough in for negative strides."""
    lo = sum((n - 1) * s for n, s in zip(shape, strides) if s < 0 and n > 0)
    start = buf[-(lo // buf.itemsize) :] if lo else buf
    if 0 not in shape:  # every element inside buf
        hi = sum((n - 1) * s for n, s in zip(shape, strides) if s > 0)
        first = start.__array_interface__["data"][0] - buf.__array_interface__["data"][0]
        assert 0 <= first + lo and first + hi + buf.itemsize <= buf.nbytes
    return as_strided(start, shape=shape, strides=strides)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("func", R6_FUNCS)
def test_r6_out_whose_elements_overlap_is_a_value_error_naming_out(func, dtype):
    """R6: out= views with zero or overlapping strides raise ValueError naming ``out``, before
    anything is written (out's memory is left as it was). Before, a zero stride was computed
    aside and copied in (the last write winning) and overlapping rows were written directly by
    the threads at once: wrong, nondeterministic values."""
    item = np.dtype(dtype).itemsize
    x = np.random.default_rng(30).normal(size=(4, 6)).astype(dtype)
    for name, shape, strides in _r6_layouts(item):
        xs = x.reshape(shape) if shape == x.shape else x.T.copy()
        buf = np.full(128, 7.0, dtype)
        out = _view(buf, shape, strides)
        assert out.flags.writeable
        with pytest.raises(ValueError, match="out has elements that overlap") as info:
            func(xs, out=out)
        assert "out" in str(info.value)
        assert np.all(buf == 7.0), name


@pytest.mark.parametrize("func", R6_FUNCS)
def test_r6_distinct_strided_out_views_are_still_accepted(func):
    """R6: out= views whose elements are distinct stay accepted, with the out-of-place result:
    every other element, reversed rows, a transpose, and an interleaved as_strided layout the
    quick stride test cannot settle (lengths (3, 2), strides (2, 3) items: elements 0 2 4 and
    3 5 7)."""
    x = np.random.default_rng(31).normal(size=(3, 2))
    buf = np.zeros(64)
    item = buf.itemsize
    for shape, strides in [
        ((3, 2), (2 * item, 3 * item)),
        ((3, 2), (4 * item, 2 * item)),
        ((3, 2), (-2 * item, item)),
        ((3, 2), (item, 3 * item)),
        ((3, 1), (item, 0)),
    ]:
        xs = x[:, : shape[1]]
        out = _view(buf, shape, strides)
        for axis in (0, -1, None):
            r = func(xs, axis=axis, out=out)
            assert r is out
            np.testing.assert_array_equal(out, func(xs, axis=axis), err_msg=str((shape, strides)))


def test_r6_bfloat16_out_whose_elements_overlap_is_a_value_error():
    """R6: a bfloat16 out (ml_dtypes), filled from a float32 result, is checked too."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf16 = np.dtype(ml_dtypes.bfloat16)
    x = np.random.default_rng(32).normal(size=(4, 6)).astype(bf16)
    buf = np.zeros(64, bf16)
    with pytest.raises(ValueError, match="out has elements that overlap"):
        lk.softmax(x, out=as_strided(buf, shape=(4, 6), strides=(4, 2)))
    out = as_strided(buf, shape=(4, 6), strides=(14, 2))
    lk.softmax(x, out=out)
    np.testing.assert_array_equal(out, lk.softmax(x))


def test_r6_torch_out_whose_elements_overlap_is_a_value_error():
    """R6: a torch out with a zero stride (``expand``) is refused, as float32 and bfloat16."""
    torch = pytest.importorskip("torch")
    for dt in (torch.float32, torch.bfloat16):
        x = torch.randn(4, 6).to(dt)
        out = torch.zeros(1, 6, dtype=dt).expand(4, 6)
        with pytest.raises(ValueError, match="out"):
            lk.softmax(x, out=out)


def _r6_brute_overlap(shape, strides, item):
    """Whether two elements share a byte: the bytes of every element, counted."""
    seen = set()
    for idx in np.ndindex(*shape):
        a = sum(i * s for i, s in zip(idx, strides))
        for b in range(a, a + item):
            if b in seen:
                return True
            seen.add(b)
    return False


@st.composite
def _r6_layout(draw):
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    item = np.dtype(dtype).itemsize
    ndim = draw(st.integers(0, 3))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=ndim, max_size=ndim)))
    # Strides in whole items mostly, some in bytes; small, so that overlaps are common.
    stride = st.one_of(
        st.integers(-6, 6).map(lambda k: k * item), st.integers(-3 * item, 3 * item)
    )
    strides = tuple(draw(st.lists(stride, min_size=ndim, max_size=ndim)))
    return dtype, shape, strides


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_r6_layout(), st.sampled_from(R6_FUNCS))
def test_r6_overlap_check_agrees_with_a_brute_force_address_set(layout, func):
    """R6: for random shapes and strides (negative, zero, in items or in bytes), out= is refused
    with ValueError exactly when two of its elements share a byte (a brute force over the
    elements' bytes), and otherwise receives the out-of-place result."""
    dtype, shape, strides = layout
    item = np.dtype(dtype).itemsize
    x = np.random.default_rng(33).normal(size=shape).astype(dtype)
    span = sum((n - 1) * abs(s) for n, s in zip(shape, strides) if n > 0) + item
    buf = np.zeros(span // item + 2, dtype)
    out = _view(buf, shape, strides)
    axis = -1 if shape else None
    overlaps = 0 not in shape and _r6_brute_overlap(shape, strides, item)
    if overlaps:
        with pytest.raises(ValueError, match="out has elements that overlap"):
            func(x, axis=axis, out=out)
    else:
        r = func(x, axis=axis, out=out)
        assert r is out
        np.testing.assert_array_equal(out, func(x, axis=axis))


# --------------------------------------------------------------------------------------------
# P7: filter_logits where logit / temperature overflows the dtype (issue 20, item 8)
# --------------------------------------------------------------------------------------------


def _p7_dtypes():
    out = [np.float16, np.float32, np.float64]
    try:
        import ml_dtypes

        out.append(np.dtype(ml_dtypes.bfloat16))
    except ImportError:
        pass
    return out


def _p7_reference(x, t, top_k=0):
    """P3's distribution of the rows of ``x`` (float64) at temperature ``t`` and top_k."""
    x = np.asarray(x, np.float64)
    probs = np.zeros_like(x)
    for r, row in enumerate(x):
        order = sorted(range(len(row)), key=lambda j: (-row[j], j))
        kept = order[:top_k] if 0 < top_k < len(row) else order
        w = np.exp((row[kept] - row.max()) / t)
        probs[r, kept] = w / w.sum()
    return probs


P7_CASES = {
    # Three tied maxima (a third each) and one 1e4 below them, at T = 1e-4: 12 / T = 1.2e5.
    "tied maxima": ([[12.0, 12.0, 11.0, 12.0]], 1e-4, 0),
    # Kept logits that all overflow float16 to -inf (softmax of the row: all NaN before).
    "negative": ([[-1000.0, -1000.5, -3000.0, -60000.0]], 1e-3, 3),
    # Logits ~10 at T = 1e-4, and a row that does not overflow.
    "two rows": ([[10.5, 9.6, 11.9, 13.9], [1.0, 2.0, 3.0, 0.5]], 1e-4, 0),
    # Huge logits (3e38 / 0.5 is above float32's and bfloat16's range).
    "huge": ([[3e38, 3e38, 2.9e38, -3e38], [1.0, 2.0, 0.0, -1.0]], 0.5, 0),
    "huger": ([[1e300, 1e300, -1e300, 5e299]], 1e-10, 3),
    # Masked tokens (-inf) stay -inf in a shifted row.
    "masked": ([[-np.inf, 12.0, 11.0, -np.inf]], 1e-4, 0),
}


def _p7_params():
    """(case, dtype) for every dtype that holds the case's logits."""
    out = []
    for case, (rows, _, _) in sorted(P7_CASES.items()):
        for dt in _p7_dtypes():
            a = np.asarray(rows)
            with np.errstate(over="ignore"):
                fits = (np.isfinite(a.astype(dt).astype(np.float64)) | ~np.isfinite(a)).all()
            if fits:
                out.append(pytest.param(case, dt, id=f"{case}-{np.dtype(dt).name}"))
    return out


@pytest.mark.parametrize("case, dtype", _p7_params())
def test_p7_filter_logits_kept_values_stay_finite_when_logit_over_t_overflows(case, dtype):
    """P7: filter_logits keeps its dtype, kept values are finite even where logit / T is not
    (they are then shifted by the row's largest kept logit), removed ones -inf, and softmax of
    the result is P3's distribution. Rows that do not overflow keep logit / T. Before, float16
    at T=1e-4 with logits ~10 (and float32 with logits ~3e38 at T=0.5) gave inf for kept
    tokens, and softmax of the result NaN."""
    rows, t, top_k = P7_CASES[case]
    dt = np.dtype(dtype)
    x = np.asarray(rows, np.float64).astype(dt)
    f = lk.filter_logits(x, temperature=t, top_k=top_k)
    assert f.dtype == dt and f.shape == x.shape
    f64 = f.astype(np.float64)
    xs = x.astype(np.float64)
    with np.errstate(over="ignore"):
        want = _p7_reference(xs, t, top_k)
        q = xs / t
        fits = np.isfinite(q.astype(dt).astype(np.float64))
    kept = f64 != -np.inf
    assert np.isfinite(f64[kept]).all(), f
    assert (f64[xs == -np.inf] == -np.inf).all(), f
    assert (want[~kept] == 0).all(), (f, want)
    np.testing.assert_allclose(lk.softmax(f64), want, atol=1e-6)
    np.testing.assert_allclose(lk.softmax(f).astype(np.float64), want, atol=1e-2)
    for r in range(len(x)):
        if fits[r][kept[r]].all():  # no overflow: logit / T itself (rounded to the dtype)
            np.testing.assert_allclose(f64[r][kept[r]], q[r][kept[r]], rtol=1e-2)
        else:  # shifted: the largest kept logit becomes 0
            assert f64[r][kept[r]].max() == 0.0, f


def test_p7_filter_logits_float16_docstring_states_the_choice():
    """P7: the docstring says what happens when logit / temperature overflows the dtype."""
    doc = lk.filter_logits.__doc__
    assert "(logit - max) / temperature" in doc and "65504" in doc


@pytest.mark.parametrize(
    "kw",
    [dict(top_k=1.5), dict(min_tokens=1.5, stop_token_ids=[1]), dict(dry_allowed_length=1.5),
     dict(dry_penalty_last_n=2.5), dict(seed=np.array(["a", "b"])),
     dict(min_tokens=np.array(["a", "b"]), stop_token_ids=[1]), dict(top_k=np.array([1.5, 2.0])),
     dict(top_logprobs=1.5), dict(stop_token_ids=[1.5], min_tokens=1), dict(allowed_token_ids=[1.5]),
     dict(allowed_token_ids=np.array([1.5])), dict(prompt_tokens=np.array([["a"], ["b"]])),
     dict(output_tokens=np.array([[0.5], [1.5]])), dict(logit_bias={1.5: 1.0}),
     dict(logit_bias=[{"a": 1.0}, None])],
    ids=repr,
)
def test_r7_non_integer_counts_are_type_errors_and_value_errors(kw):
    """R7: a count that is not an integer is a TypeError naming it; P8 asks a ValueError of
    top_k: the error is both (``_coerce.NotAnIntegerError``). Found by a review: min_tokens,
    the DRY counts and seeds raised plain ValueErrors."""
    x = np.zeros((2, 5), np.float32)
    name = next(iter(kw))
    with pytest.raises(TypeError, match=name) as info:
        lk.sample(x, **kw)
    assert isinstance(info.value, ValueError)


def test_r7_wrong_types_of_sampler_seeds_draft_tokens_and_biases_are_type_errors():
    """R7 (found by a review: plain ValueErrors): a Sampler's seed given as a list, string draft
    tokens, a bias that is not a number."""
    with pytest.raises(TypeError, match=r"seed must be None or an integer.*\[1, 2\]") as info:
        lk.Sampler(seed=[1, 2])
    assert isinstance(info.value, ValueError)
    with pytest.raises(TypeError, match="draft_tokens must be integer token ids") as info:
        lk.verify_draft(np.zeros((1, 2, 3)), np.array([["a"]]))
    assert isinstance(info.value, ValueError)
    for bias, shown in (("x", "'x'"), (np.complex128(1 + 5j), "complex"), (None, "None")):
        with pytest.raises(TypeError, match=r"logit_bias must map token ids to finite floats.*" + shown) as info:
            lk.sample(np.zeros(3), logit_bias={1: bias})
        # P12: a bad bias is a ValueError too.
        assert isinstance(info.value, ValueError)


def test_r7_out_of_range_integers_stay_plain_value_errors():
    x = np.zeros((2, 5), np.float32)
    for kw in (dict(top_k=-1), dict(seed=-1), dict(seed=2**64)):
        with pytest.raises(ValueError) as info:
            lk.sample(x, **kw)
        assert not isinstance(info.value, TypeError), kw


def test_r7_token_logprobs_non_integer_ids_and_a_non_bool_return_ranks_name_themselves():
    x = np.zeros((2, 4))
    with pytest.raises(TypeError, match="token_ids") as info:
        lk.token_logprobs(x, [1.5, 1])
    assert isinstance(info.value, ValueError)
    for bad in (1, None, "yes"):
        with pytest.raises(TypeError, match="return_ranks must be a bool"):
            lk.token_logprobs(x, [1, 1], return_ranks=bad)


HUGE_IDS = {
    "allowed_token_ids": (lambda x: lk.filter_logits(x, allowed_token_ids=[10**400]), "10000000000000000000... (401 digits)"),
    "stop_token_ids": (lambda x: lk.filter_logits(x, min_tokens=1, stop_token_ids=[2**130]), str(2**130)),
    "bad_words": (lambda x: lk.filter_logits(x, bad_words=[[1, -(2**128)]]), str(-(2**128))),
    "top_k": (lambda x: lk.filter_logits(x, top_k=-(10**400)), "-10000000000000000000... (401 digits)"),
    "min_tokens": (lambda x: lk.filter_logits(x, min_tokens=np.array(-(2**70), dtype=object), stop_token_ids=[1]), str(-(2**70))),
    "top_logprobs": (lambda x: lk.sample(x, top_logprobs=2**130), str(2**130)),
    "token_ids": (lambda x: lk.token_logprobs(x, 2**64), str(2**64)),
    "token_ids ": (lambda x: lk.token_logprobs(np.stack([x, x]), [1, -(2**70)]), str(-(2**70))),
    "logit_bias": (lambda x: lk.sample(x, logit_bias={10**400: 1.0}), "10000000000000000000... (401 digits)"),
    "draft_tokens": (lambda x: lk.verify_draft(np.stack([x, x, x])[None], [[1, 10**400]]), "10000000000000000000... (401 digits) at position 1"),
}


@pytest.mark.parametrize("name", sorted(HUGE_IDS))
def test_r7_integers_beyond_int64_are_named_as_given(name):
    """R7: a token id or count beyond the native integers is a ValueError that names the
    parameter and shows the value given (found by a review: values beyond 2**127 were shown
    as 2**127 - 1, counts below -2**63 as -2**63, and token_ids beyond uint64 raised a
    NotAnIntegerError)."""
    call, shown = HUGE_IDS[name]
    with pytest.raises(ValueError) as info:
        call(np.zeros(5, np.float32))
    msg = str(info.value)
    assert not isinstance(info.value, TypeError), msg
    assert name.strip() in msg and shown in msg, msg


def test_r7_big_endian_uint64_values_are_read_as_they_are():
    """Seeds, per-row counts and token ids given as big-endian uint64 arrays are the same values
    as native ones (found by a review: '>u8' was cast to int64, so 2**63 and above wrapped to
    negative numbers and were refused or shown negative)."""
    x = np.random.default_rng(0).standard_normal((2, 10))
    seeds = np.array([2**63, 1], dtype=np.uint64)
    np.testing.assert_array_equal(lk.sample(x, seed=seeds.astype(">u8")), lk.sample(x, seed=seeds))
    k = np.array([2**63 + 5, 3], dtype=np.uint64)
    want = lk.filter_logits(x, top_k=k)
    np.testing.assert_array_equal(lk.filter_logits(x, top_k=k.astype(">u8")), want)
    with pytest.raises(ValueError, match=f"token id {2**63 + 1} in row 0"):
        lk.token_logprobs(x, np.array([2**63 + 1, 1], dtype=">u8"))
    hist = np.array([[1, 2], [3, 3]], dtype=np.uint64)
    want = lk.filter_logits(x, frequency_penalty=0.5, output_tokens=hist)
    got = lk.filter_logits(x, frequency_penalty=0.5, output_tokens=hist.astype(">u8"))
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match=f"token id {2**63 + 2}"):
        lk.filter_logits(x, frequency_penalty=0.5,
                         output_tokens=np.array([[1, 2**63 + 2], [3, 3]], dtype=">u8"))


@pytest.mark.parametrize(
    "call",
    [lambda: lk.sample(np.zeros(3), top_p=np.complex128(0.5)),
     lambda: lk.filter_logits(np.zeros(3), min_p=np.complex64(0.1)),
     lambda: lk.Sampler(temperature=np.complex128(0.7)),
     lambda: lk.token_logprobs(np.zeros(3), 1, temperature=np.complex64(2)),
     lambda: lk.verify_draft(np.zeros((1, 1, 3)), np.zeros((1, 0), np.int64), temperature=np.complex128(1))],
)
def test_r7_complex_numpy_scalars_are_type_errors_for_float_parameters(call):
    """R7 (found by a review): a NumPy complex scalar passed its `__float__` (the imaginary
    part dropped with only a ComplexWarning) where softmax refuses it."""
    with pytest.raises(TypeError, match=r"must be a float or an array of floats, got np\.complex"):
        call()


@pytest.mark.parametrize("name", ["prompt_tokens", "output_tokens"])
def test_r7_a_scalar_history_is_a_type_error_naming_it(name):
    """R7 (found by a review): `prompt_tokens=5` raised "'int' object is not iterable"; ranges
    and other iterables of ids still work."""
    for v in (5, np.array(5), np.int64(5)):
        with pytest.raises(TypeError, match=f"{name} must be a sequence of token ids.*got .*5"):
            lk.sample(np.zeros((2, 3)), **{name: v})
    x = np.zeros(5)
    kw = dict(repetition_penalty=2.0, temperature=0.0)
    assert lk.filter_logits(x, **{name: range(2)}, **kw).tolist() == lk.filter_logits(x, **{name: [0, 1]}, **kw).tolist()


@pytest.mark.parametrize(
    "call",
    [lambda: lk.sample(np.zeros(3), seed=10**5000), lambda: lk.sample(np.zeros(3), top_k=-(10**5000)),
     lambda: lk.set_num_threads(10**5000), lambda: lk.token_logprobs(np.zeros(3), 10**5000)],
)
def test_r7_integers_python_will_not_print_are_shown_by_their_size(call):
    """R7 (found by a review): integers of more than 4300 digits, which Python refuses to turn
    into text, were shown as "<unprintable>"."""
    with pytest.raises(ValueError) as info:
        call()
    assert "<an integer of 16610 bits>" in str(info.value) and "unprintable" not in str(info.value)
