"""Sampling over many short rows against NumPy (contract R8), old build against new.

R8 bounds every function over any layout by 2x NumPy's own ``exp(x - max) / sum`` on that
layout. Here: ``sample``, ``filter_logits`` over a (131072, 8) float32 array, C and F order, one
thread (NumPy's ufuncs use one). Each contender runs in a process of its own, one round after
another with the order alternated; reported is the median over rounds of each process's median
call time, and its ratio to NumPy's expression on the same layout.

    python benches/short_rows.py [--rounds 5] [--baseline DIR]

``--baseline DIR`` also times the logitkit package found in DIR (an older build's
``python/`` directory with its ``_native`` module, or a ``site-packages``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

SHAPE = (131072, 8)
CALLS = {
    "sample greedy": "lk.sample(x, temperature=0.0)",
    "sample T0.8": "lk.sample(x, temperature=0.8, seed=1)",
    "sample T0.8 p0.9": "lk.sample(x, temperature=0.8, top_p=0.9, seed=1)",
    "filter_logits p0.9": "lk.filter_logits(x, top_p=0.9)",
}
# e = exp(x - max); e / sum(e), along the rows.
NUMPY = "(lambda e: e / e.sum(axis=1, keepdims=True))(np.exp(x - x.max(axis=1, keepdims=True)))"

WORKER = r"""
import json, os, statistics, sys, time
sys.path.insert(0, {path!r}) if {path!r} else None
import numpy as np
rows, vocab = {shape}
x = np.random.default_rng(0).standard_normal((rows, vocab)).astype(np.float32)
if {fortran}:
    x = np.asfortranarray(x)
out = {{}}
if {numpy}:
    calls = {{"numpy": lambda: ({expr})}}
else:
    import logitkit as lk
    lk.set_num_threads(1)
    calls = {{k: eval("lambda: " + v, {{"lk": lk, "x": x}}) for k, v in {calls!r}.items()}}
for name, f in calls.items():
    f()
    ts = []
    for _ in range(7):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    out[name] = statistics.median(ts)
print(json.dumps(out))
"""


def run(path: str, fortran: bool, numpy: bool) -> dict:
    code = WORKER.format(path=path, shape=SHAPE, fortran=fortran, numpy=numpy, expr=NUMPY, calls=CALLS)
    env = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(r.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--baseline", default="")
    args = ap.parse_args()
    contenders = [("numpy", "", True), ("logitkit", "", False)]
    if args.baseline:
        contenders.append(("baseline", args.baseline, False))
    for fortran in (False, True):
        times: dict = {}
        for r in range(args.rounds):
            order = contenders if r % 2 == 0 else contenders[::-1]
            for who, path, numpy in order:
                for k, v in run(path, fortran, numpy).items():
                    times.setdefault((who, k), []).append(v)
        layout = "F order" if fortran else "C order"
        base = statistics.median(times[("numpy", "numpy")])
        print(f"\n{SHAPE[0]}x{SHAPE[1]} float32, {layout}, 1 thread, {args.rounds} rounds "
              f"(NumPy's expression: {base * 1e3:.2f} ms)\n")
        print("| call | " + " | ".join(w for w, _, n in contenders if not n) + " |")
        print("|---|" + "---:|" * (len(contenders) - 1))
        for k in CALLS:
            cells = []
            for who, _, numpy in contenders:
                if numpy:
                    continue
                m = statistics.median(times[(who, k)])
                cells.append(f"{m * 1e3:.2f} ms, {m / base:.2f}x")
            print(f"| {k} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
