"""S12: run-time SIMD dispatch, `LOGITKIT_SIMD`, and the softmax suite under every level."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import logitkit as lk
from conftest import run_python

HERE = Path(__file__).resolve().parent
NAMES = ("scalar", "avx2", "avx512", "neon")


def cpu_flags() -> set:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def level_with_env(value: str | None) -> str:
    env = {} if value is None else {"LOGITKIT_SIMD": value}
    r = run_python("import logitkit; print(logitkit.simd_level())", env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def available_levels() -> list:
    return sorted({level_with_env(n) for n in NAMES}, key=NAMES.index)


def test_s12_simd_level_is_a_known_name():
    assert lk.simd_level() in NAMES


@pytest.mark.skipif(os.environ.get("LOGITKIT_SIMD") is not None, reason="the environment pins a level")
def test_s12_default_is_the_best_level_the_cpu_has():
    """S12: without LOGITKIT_SIMD the best instruction set of the running CPU is used."""
    flags = cpu_flags()
    if {"avx512f", "avx2", "fma"} <= flags:
        want = "avx512"
    elif {"avx2", "fma", "f16c"} <= flags:
        want = "avx2"
    elif "asimd" in flags:
        want = "neon"
    else:
        want = "scalar"
    assert level_with_env(None) == want


def test_s12_env_lowers_the_level_and_missing_levels_fall_back():
    """S12: LOGITKIT_SIMD=scalar gives scalar; a level the CPU lacks (neon on x86-64, or
    avx512 on an AVX2 machine) falls back to the best the CPU has; a bad name is ignored."""
    best = level_with_env(None)
    assert level_with_env("scalar") == "scalar"
    assert level_with_env("SCALAR") == "scalar"
    assert level_with_env("no-such-level") == best
    flags = cpu_flags()
    if {"avx2", "fma", "f16c"} <= flags:
        assert level_with_env("avx2") == "avx2"
    if "asimd" not in flags:
        assert level_with_env("neon") == best


@pytest.mark.parametrize("level", ["scalar", "avx2", "avx512"])
def test_s12_edge_cases_at_every_level(level):
    """S5/S6/S8/S9 spot checks under each level (the full suite runs per level below)."""
    code = """
        import numpy as np, logitkit as lk
        big = np.finfo(np.float64).max
        x = np.random.default_rng(61).uniform(-1, 1, size=(3, 50)) * big
        x[:, 0], x[:, 1] = big, -big
        y = (x / big * np.float32(3.4e38)).astype(np.float32)
        for T in (1e-3, 1.0, 1.5, 1e300):
            for f in (lk.softmax, lk.log_softmax):
                for a in (x, np.tile(x, (1, 700)), y, np.tile(y, (1, 700))):
                    assert not np.isnan(f(a, temperature=T)).any(), (f, T, a.dtype)
        assert np.array_equal(lk.softmax(np.float32([3e38, -3e38])), [1, 0])
        assert np.array_equal(lk.softmax(np.array([1e30, 0.0]), temperature=1e-30), [1, 0])
        r = lk.softmax(np.float32([[1, np.nan, 2], [0, -np.inf, 0], [-np.inf] * 3, [1, np.inf, 0]]))
        assert np.isnan(r[0]).all() and np.isnan(r[2]).all() and np.isnan(r[3]).all()
        assert r[1].tolist() == [0.5, 0.0, 0.5]
        v = np.random.default_rng(0).standard_normal(262144).astype(np.float32) * 6
        p = lk.softmax(v).astype(np.float64)
        ref = np.exp(v.astype(np.float64) - v.max()); ref /= ref.sum()
        m = ref >= 1e-12
        assert (np.abs(p[m] - ref[m]) / ref[m]).max() <= 2e-6
        assert abs(p.sum() - 1) <= 1e-6
        lk.set_num_threads(1); a = lk.softmax(v); lk.set_num_threads(2); b = lk.softmax(v)
        assert a.tobytes() == b.tobytes()
        print(lk.simd_level())
    """
    r = run_python(code, env={"LOGITKIT_SIMD": level}, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() in NAMES


@pytest.mark.skipif(os.environ.get("LOGITKIT_SIMD") is not None, reason="already a per-level run")
@pytest.mark.parametrize("level", ["scalar", "avx2", "avx512"])
def test_s12_softmax_suite_passes_at_every_level(level):
    """S12: 'every level meets S5-S9': the S1-S9 suite, run again with LOGITKIT_SIMD=level for
    each level this CPU has other than the default (which the main run covers)."""
    got = level_with_env(level)
    if got != level:
        pytest.skip(f"this CPU has no {level}")
    if got == level_with_env(None):
        pytest.skip(f"{level} is the default level: the main run covers it")
    env = dict(os.environ, LOGITKIT_SIMD=level)
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         "test_softmax.py", "test_softmax_properties.py"],
        cwd=HERE, env=env, capture_output=True, text=True, timeout=900,
    )
    tail = "\n".join(r.stdout.splitlines()[-15:])
    assert r.returncode == 0, tail
    assert " passed" in tail
