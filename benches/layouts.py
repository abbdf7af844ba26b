"""Speed of the softmax family over every memory layout (contract R8), against NumPy.

R8: every function over any axis of C-, F- or arbitrarily strided input runs within 2x of
NumPy's own ``exp(x - max) / sum`` on that layout. For each layout below, logitkit's
``softmax``, ``log_softmax`` and ``logsumexp`` are timed against NumPy doing the same thing
on the same array (``e = exp(x - max); e / e.sum()``, ``z - log(sum(exp(z)))`` with
``z = x - max``, and ``max + log(sum(exp(x - max)))``), so the ratio for ``log_softmax`` and
``logsumexp`` is against NumPy's matching expression, which is no slower than the softmax one.

Each contender runs in a process of its own (NumPy's temporaries and logitkit's helper threads
never share a process), one round after another with the order of the contenders alternated;
reported is the median over rounds of each process's median call time. OpenBLAS and OpenMP are
pinned to one thread; logitkit runs at ``--threads`` (default: 1 and 2; NumPy's ufuncs use one
thread, so the 1-thread ratio is the fair one).

    python benches/layouts.py [--rounds 3] [--threads 1 2] [--quick] [--out benches/results]
        [--baseline DIR]   # also time the logitkit package found in DIR (e.g. an older build)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

FUNCS = ["softmax", "log_softmax", "logsumexp"]

# name -> (base shape, order, view slices or None, axis). float32.
LAYOUTS = {
    "C 2048x4096 axis=-1": ((2048, 4096), "C", None, -1),
    "C 2048x4096 axis=0": ((2048, 4096), "C", None, 0),
    "F 2048x4096 axis=-1": ((2048, 4096), "F", None, -1),
    "F 2048x4096 axis=0": ((2048, 4096), "F", None, 0),
    "C 2048x32768 axis=-1": ((2048, 32768), "C", None, -1),
    "C 2048x32768 axis=0": ((2048, 32768), "C", None, 0),
    "F 2048x32768 axis=-1": ((2048, 32768), "F", None, -1),
    "C 4096x2048 axis=0": ((4096, 2048), "C", None, 0),
    "F 4096x2048 axis=-1": ((4096, 2048), "F", None, -1),
    "C 1000x3000 axis=0": ((1000, 3000), "C", None, 0),
    "F 1000x3000 axis=-1": ((1000, 3000), "F", None, -1),
    "C 64x512x256 axis=1": ((64, 512, 256), "C", None, 1),
    "F 64x512x256 axis=1": ((64, 512, 256), "F", None, 1),
    "C 3072x8192 [::3, ::2] axis=-1": ((3072, 8192), "C", (slice(None, None, 3), slice(None, None, 2)), -1),
    "C 3072x8192 [::3, ::2] axis=0": ((3072, 8192), "C", (slice(None, None, 3), slice(None, None, 2)), 0),
    "C 2048x4096 [:, ::-1] axis=0": ((2048, 4096), "C", (slice(None), slice(None, None, -1)), 0),
}

QUICK = [
    "C 2048x4096 axis=0",
    "F 2048x4096 axis=-1",
    "C 2048x32768 axis=0",
    "C 1000x3000 axis=0",
    "C 3072x8192 [::3, ::2] axis=0",
]


def make_input(layout: str):
    import numpy as np

    shape, order, view, axis = LAYOUTS[layout]
    rng = np.random.default_rng(0)
    x = np.asarray((rng.standard_normal(shape, dtype=np.float32) * 3), order=order)
    if view is not None:
        x = x[view]
    return x, axis


def numpy_funcs(axis):
    import numpy as np

    def softmax(x):
        e = np.exp(x - x.max(axis, keepdims=True))
        return e / e.sum(axis, keepdims=True)

    def log_softmax(x):
        z = x - x.max(axis, keepdims=True)
        return z - np.log(np.exp(z).sum(axis, keepdims=True))

    def logsumexp(x):
        m = x.max(axis, keepdims=True)
        return (m + np.log(np.exp(x - m).sum(axis, keepdims=True))).squeeze(axis)

    return {"softmax": softmax, "log_softmax": log_softmax, "logsumexp": logsumexp}


def worker(contender: str, layout: str, threads: int, budget: float) -> None:
    """Prints {func: median seconds per call} for one contender on one layout."""
    x, axis = make_input(layout)
    if contender == "numpy":
        funcs = numpy_funcs(axis)
    else:
        import logitkit

        logitkit.set_num_threads(threads)
        funcs = {f: (lambda g: lambda a: g(a, axis))(getattr(logitkit, f)) for f in FUNCS}
    res = {}
    for name in FUNCS:
        f = funcs[name]
        f(x)
        times = []
        deadline = time.perf_counter() + budget
        while len(times) < 3 or (time.perf_counter() < deadline and len(times) < 50):
            t0 = time.perf_counter()
            f(x)
            times.append(time.perf_counter() - t0)
        res[name] = statistics.median(times)
    print(json.dumps(res))


def measure(contenders, layout, rounds, budget):
    """{contender: {func: median over rounds}}; `contenders` maps a name to (kind, threads,
    extra PYTHONPATH or None)."""
    base_env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1",
                    OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    names = list(contenders)
    got = {n: {f: [] for f in FUNCS} for n in names}
    for r in range(rounds):
        for n in names if r % 2 == 0 else names[::-1]:
            kind, threads, path = contenders[n]
            env = dict(base_env, LOGITKIT_NUM_THREADS=str(threads))
            if path:
                env["PYTHONPATH"] = path + os.pathsep + env.get("PYTHONPATH", "")
            out = subprocess.run(
                [sys.executable, __file__, "--worker", kind, layout, str(threads), str(budget)],
                capture_output=True, text=True, env=env, check=True,
            )
            for f, t in json.loads(out.stdout.strip().splitlines()[-1]).items():
                got[n][f].append(t)
    return {n: {f: statistics.median(v) for f, v in fs.items()} for n, fs in got.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--budget", type=float, default=1.0, help="seconds of timing per function")
    p.add_argument("--quick", action="store_true", help="a few pathological layouts only")
    p.add_argument("--layouts", nargs="+", default=None, help="names from LAYOUTS")
    p.add_argument("--baseline", default=None, help="a folder holding another logitkit build")
    p.add_argument("--out", default=None, help="folder to write layouts.md into")
    p.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        kind, layout, threads, budget = a.worker
        worker(kind, layout, int(threads), float(budget))
        return
    layouts = a.layouts or (QUICK if a.quick else list(LAYOUTS))
    contenders = {"numpy": ("numpy", 1, None)}
    for t in a.threads:
        contenders[f"logitkit {t}t"] = ("logitkit", t, None)
        if a.baseline:
            contenders[f"baseline {t}t"] = ("logitkit", t, a.baseline)
    import logitkit

    head = (
        f"logitkit {logitkit.__version__}, SIMD {logitkit.simd_level()}, {os.cpu_count()} CPUs; "
        f"float32; each contender in its own process, {a.rounds} rounds alternating the order, "
        "median of medians; ratio = logitkit time / NumPy time (R8 bound: <= 2)"
    )
    cols = [n for n in contenders if n != "numpy"]
    lines = [head, "", "| layout | function | NumPy ms | "
             + " | ".join(f"{c} ms (ratio)" for c in cols) + " |",
             "|---|---|---|" + "---|" * len(cols)]
    print(lines[0], flush=True)
    worst = {c: 0.0 for c in cols}
    for layout in layouts:
        t = measure(contenders, layout, a.rounds, a.budget)
        for f in FUNCS:
            ref = t["numpy"][f]
            cells = []
            for c in cols:
                ratio = t[c][f] / ref
                worst[c] = max(worst[c], ratio)
                cells.append(f"{t[c][f] * 1e3:.2f} ({ratio:.2f}x)")
            lines.append(f"| {layout} | {f} | {ref * 1e3:.2f} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    lines += ["", "Worst ratio: " + ", ".join(f"{c} {w:.2f}x" for c, w in worst.items())]
    print(lines[-1])
    if a.out:
        Path(a.out).mkdir(parents=True, exist_ok=True)
        (Path(a.out) / "layouts.md").write_text("\n".join(lines) + "\n")
        print(f"wrote {Path(a.out) / 'layouts.md'}")


if __name__ == "__main__":
    main()
