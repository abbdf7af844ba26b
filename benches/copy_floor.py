"""Softmax and log-softmax of LLM-serving shapes against their floors (issue 22): a plain copy of
the same float32 array (one read, one write of its bytes) and ``logsumexp`` of it (one max pass
and one exp pass over every element, nothing written: the least compute any softmax does).

Each (shape, threads, contender) runs in a process of its own, rounds alternate the
contenders' order, and a contender's time is the median over rounds of each process's median
call time. ``np.copyto`` is single-threaded whatever ``--threads`` says; the "copy with the
threads" column splits it by rows over that many Python threads (a barrier wait to start and
one to end each call). Prints a Markdown table of ratios against the single-threaded copy.

    python benches/copy_floor.py [--rounds 5] [--shapes 8x128256,32x128256] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

CONTENDERS = ["copy", "copy_threads", "logsumexp", "softmax", "log_softmax"]


def threaded_copy(out, x, threads: int):
    """``np.copyto`` split by rows over ``threads`` Python threads kept waiting on a barrier
    (numpy releases the GIL while it copies): the copy floor with as many threads as logitkit
    has, paying two barrier waits per call."""
    import threading

    if threads == 1:
        return lambda: np.copyto(out, x)
    parts = np.array_split(np.arange(x.shape[0]), threads)
    start, done = threading.Barrier(threads + 1), threading.Barrier(threads + 1)

    def run(rows):
        while True:
            start.wait()
            np.copyto(out[rows[0]:rows[-1] + 1], x[rows[0]:rows[-1] + 1])
            done.wait()

    for rows in parts:
        threading.Thread(target=run, args=(rows,), daemon=True).start()

    def call():
        start.wait()
        done.wait()

    return call


def worker(name: str, rows: int, cols: int, threads: int) -> None:

    import logitkit

    logitkit.set_num_threads(threads)
    x = (np.random.default_rng(0).standard_normal((rows, cols)) * 3).astype(np.float32)
    out = np.empty_like(x)
    call = {
        "copy": lambda: np.copyto(out, x),
        "copy_threads": threaded_copy(out, x, threads) if name == "copy_threads" else None,
        "logsumexp": lambda: logitkit.logsumexp(x, axis=-1),
        "softmax": lambda: logitkit.softmax(x, out=out),
        "log_softmax": lambda: logitkit.log_softmax(x, out=out),
    }[name]
    for _ in range(5):
        call()
    t0 = time.perf_counter()
    call()
    n = max(20, min(5000, int(0.3 / max(time.perf_counter() - t0, 1e-7))))
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"median": statistics.median(times), "level": logitkit.simd_level()}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--shapes", default="8x128256,32x128256")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--worker", nargs=4)
    a = ap.parse_args()
    if a.worker:
        name, rows, cols, threads = a.worker
        worker(name, int(rows), int(cols), int(threads))
        return
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    print("| shape | threads | copy ms | copy with the threads / copy | logsumexp / copy "
          "| softmax / copy | log_softmax / copy |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    level = None
    for shape in a.shapes.split(","):
        rows, cols = map(int, shape.split("x"))
        for threads in map(int, a.threads.split(",")):
            got = {c: [] for c in CONTENDERS}
            for r in range(a.rounds):
                for c in CONTENDERS if r % 2 == 0 else CONTENDERS[::-1]:
                    res = subprocess.run(
                        [sys.executable, __file__, "--worker", c, str(rows), str(cols), str(threads)],
                        capture_output=True, text=True, env=env, check=True,
                    )
                    line = json.loads(res.stdout.strip().splitlines()[-1])
                    got[c].append(line["median"])
                    level = line["level"]
            med = {c: statistics.median(v) for c, v in got.items()}
            ratios = " | ".join(f"{med[c] / med['copy']:.2f}x" for c in CONTENDERS[1:])
            print(f"| {shape} | {threads} | {med['copy'] * 1e3:.3f} | {ratios} |", flush=True)
    print(f"\nSIMD level {level}; {a.rounds} rounds, alternated; medians.")


if __name__ == "__main__":
    main()
