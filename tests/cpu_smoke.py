"""Smoke test run under `qemu-x86_64 -cpu MODEL` (see `make qemu-smoke`): the installed wheel
must import and compute correctly on a CPU model lacking AVX (a stray AVX instruction outside
the run-time dispatch would die with SIGILL), picking a SIMD level the model has.

Usage: python cpu_smoke.py LEVEL[,LEVEL...]   (the levels acceptable on this CPU model)
"""

import math
import sys

import numpy as np

import logitkit

allowed = sys.argv[1].split(",")
level = logitkit.simd_level()
assert level in allowed, f"simd_level() = {level!r} on this CPU model, expected one of {allowed}"

for dtype in (np.float16, np.float32, np.float64):
    x = np.linspace(-20, 20, 1001).astype(dtype)
    ref = [math.exp(float(v) - float(x.max())) for v in x]
    total = math.fsum(ref)
    got = logitkit.softmax(x)
    worst = max(abs(float(g) - r / total) / (r / total) for g, r in zip(got, ref) if r / total > 1e-4)
    tol = {np.float16: 1e-3, np.float32: 2e-6, np.float64: 1e-13}[dtype]
    assert worst <= tol, f"{dtype.__name__}: rel err {worst}"
    lse = float(logitkit.logsumexp(x))
    assert abs(lse - (float(x.max()) + math.log(total))) <= 10 * tol * max(1.0, abs(lse)), lse
big = np.random.default_rng(0).standard_normal((8, 40000)).astype(np.float32)
p = logitkit.softmax(big, temperature=0.7)
assert np.all(np.abs(p.astype(np.float64).sum(axis=1) - 1) < 1e-6)
logitkit.set_num_threads(1)
assert np.array_equal(logitkit.softmax(big, temperature=0.7), p), "S9: thread count changed bits"
print(f"cpu smoke ok: simd_level={level}")
