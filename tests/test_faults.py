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


@pytest.mark.parametrize("bad", [1.5, np.inf, -np.inf, -0.25, 1 + 1e-9])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_r7_calibration_refuses_probabilities_outside_0_1(bad, dtype):
    """R7: ECE and calibration_bins raise ValueError naming ``probs`` for a probability above
    1, below 0 or infinite (they returned an ECE above 1, or inf)."""
    from logitkit.calibration import calibration_bins, expected_calibration_error

    p = np.array([[0.3, 0.7], [bad, 0.1]], dtype=dtype)
    if 0.0 <= float(p[1, 0]) <= 1.0:
        pytest.skip("rounds into [0, 1] in this dtype")
    for f in (expected_calibration_error, calibration_bins):
        with pytest.raises(ValueError, match="probs") as info:
            f(p, [1, 0])
        assert "[0, 1]" in str(info.value)
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
import sys, time
import numpy as np
import logitkit as lk

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
@pytest.mark.parametrize("kind", ["softmax", "logsumexp", "cross_entropy"])
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
        # Well inside the call (it takes seconds), then the signal.
        time.sleep(0.5)
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
