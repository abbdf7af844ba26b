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
        [--extras]         # the extras (cross_entropy, topk, sparsemax, sigmoid, calibration)
                           # on many short lanes instead, each against NumPy's softmax
        [--dtype float64]  # the input dtype (default float32); results in layouts-float64.md
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

# --extras: R8 bounds every function by NumPy's softmax expression on the same layout, so
# each of these is compared with that one NumPy time. topk takes k = 1 and k = 2,
# cross_entropy per-lane losses, expected_calibration_error the softmax of the input.
EXTRAS = ["cross_entropy", "topk k=1", "topk k=2", "sparsemax", "sigmoid", "expected_calibration_error"]

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

# Many short lanes: where a fixed cost per lane shows.
EXTRAS_LAYOUTS = {
    "F 1048576x2 axis=-1": ((1 << 20, 2), "F", None, -1),
    "C 1048576x2 axis=-1": ((1 << 20, 2), "C", None, -1),
    "C 3x1048576 axis=0": ((3, 1 << 20), "C", None, 0),
    "F 100000x16 axis=-1": ((100000, 16), "F", None, -1),
    "C 100000x16 axis=-1": ((100000, 16), "C", None, -1),
}
LAYOUTS.update(EXTRAS_LAYOUTS)

QUICK = [
    "C 2048x4096 axis=0",
    "F 2048x4096 axis=-1",
    "C 2048x32768 axis=0",
    "C 1000x3000 axis=0",
    "C 3072x8192 [::3, ::2] axis=0",
]


def make_input(layout: str, dtype: str = "float32"):
    import numpy as np

    shape, order, view, axis = LAYOUTS[layout]
    rng = np.random.default_rng(0)
    x = np.asarray((rng.standard_normal(shape, dtype=np.float32) * 3).astype(dtype), order=order)
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


def extras_funcs(x, axis):
    """The extras as functions of ``x`` (labels and probabilities prepared here, untimed)."""
    import numpy as np

    import logitkit
    from logitkit.calibration import expected_calibration_error
    from logitkit.loss import cross_entropy
    from logitkit.ops import sigmoid, sparsemax, topk

    n = x.shape[axis]
    rest = tuple(s for d, s in enumerate(x.shape) if d != axis % x.ndim)
    labels = np.random.default_rng(1).integers(0, n, size=rest)
    probs = logitkit.softmax(x, axis=axis)
    return {
        "cross_entropy": lambda a: cross_entropy(a, labels, axis=axis, reduction="none"),
        "topk k=1": lambda a: topk(a, 1, axis=axis),
        "topk k=2": lambda a: topk(a, min(2, n), axis=axis),
        "sparsemax": lambda a: sparsemax(a, axis=axis),
        "sigmoid": sigmoid,
        "expected_calibration_error": lambda a: expected_calibration_error(probs, labels, axis=axis),
    }


def worker(contender: str, layout: str, threads: int, budget: float, names, dtype: str) -> None:
    """Prints {func: median seconds per call} for one contender on one layout."""
    x, axis = make_input(layout, dtype)
    if contender == "numpy":
        funcs = numpy_funcs(axis)
        if names is EXTRAS:
            # One NumPy time (its softmax) serves as every extra's reference.
            names, funcs = ["softmax"], {"softmax": funcs["softmax"]}
    else:
        import logitkit

        logitkit.set_num_threads(threads)
        if names is EXTRAS:
            funcs = extras_funcs(x, axis)
        else:
            funcs = {f: (lambda g: lambda a: g(a, axis))(getattr(logitkit, f)) for f in FUNCS}
    res = {}
    for name in names:
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


def measure(contenders, layout, rounds, budget, extras=False, dtype="float32"):
    """{contender: {func: median over rounds}}; `contenders` maps a name to (kind, threads,
    extra PYTHONPATH or None)."""
    base_env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="1",
                    OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    names = list(contenders)
    got = {n: {} for n in names}
    for r in range(rounds):
        for n in names if r % 2 == 0 else names[::-1]:
            kind, threads, path = contenders[n]
            env = dict(base_env, LOGITKIT_NUM_THREADS=str(threads))
            if path:
                env["PYTHONPATH"] = path + os.pathsep + env.get("PYTHONPATH", "")
            out = subprocess.run(
                [sys.executable, __file__, "--worker", kind, layout, str(threads), str(budget),
                 "extras" if extras else "family", dtype],
                capture_output=True, text=True, env=env, check=True,
            )
            for f, t in json.loads(out.stdout.strip().splitlines()[-1]).items():
                got[n].setdefault(f, []).append(t)
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
    p.add_argument("--extras", action="store_true", help="the extras on many short lanes")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        kind, layout, threads, budget, which, dtype = a.worker
        worker(kind, layout, int(threads), float(budget), EXTRAS if which == "extras" else FUNCS,
               dtype)
        return
    funcs = EXTRAS if a.extras else FUNCS
    family = [name for name in LAYOUTS if name not in EXTRAS_LAYOUTS]
    layouts = a.layouts or (QUICK if a.quick else list(EXTRAS_LAYOUTS) if a.extras else family)
    contenders = {"numpy": ("numpy", 1, None)}
    for t in a.threads:
        contenders[f"logitkit {t}t"] = ("logitkit", t, None)
        if a.baseline:
            contenders[f"baseline {t}t"] = ("logitkit", t, a.baseline)
    import logitkit

    head = (
        f"logitkit {logitkit.__version__}, SIMD {logitkit.simd_level()}, {os.cpu_count()} CPUs; "
        f"{a.dtype}; each contender in its own process, {a.rounds} rounds alternating the order, "
        "median of medians; ratio = logitkit time / NumPy time (R8 bound: <= 2)"
        + ("; NumPy time: its softmax expression on the same layout" if a.extras else "")
    )
    cols = [n for n in contenders if n != "numpy"]
    lines = [head, "", "| layout | function | NumPy ms | "
             + " | ".join(f"{c} ms (ratio)" for c in cols) + " |",
             "|---|---|---|" + "---|" * len(cols)]
    print(lines[0], flush=True)
    worst = {c: 0.0 for c in cols}
    for layout in layouts:
        t = measure(contenders, layout, a.rounds, a.budget, a.extras, a.dtype)
        for f in funcs:
            ref = t["numpy"]["softmax" if a.extras else f]
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
        name = "layouts-extras.md" if a.extras else "layouts.md"
        if a.dtype != "float32":
            name = name.replace(".md", f"-{a.dtype}.md")
        (Path(a.out) / name).write_text("\n".join(lines) + "\n")
        print(f"wrote {Path(a.out) / name}")


if __name__ == "__main__":
    main()
