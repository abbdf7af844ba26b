"""P1-P9 speed before and after a change: the same sampling calls timed with two installs of
logitkit (two Python interpreters), each run in a process of its own, the two alternated
round by round; medians of per-process medians.

    python benches/ab_sampling.py OLD_PYTHON NEW_PYTHON [--rounds 5]

Environment: AB_SHAPES=1x128256,8x128256 (rows x vocab) picks the shapes; AB_DIST=bounded
draws the logits as (sum of four uniforms - 2) * 6 (light tails: min-p 0.05 keeps a few
thousand tokens of 128256) in place of N(0, 9).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

CASES = {
    "T0.8 p0.9": "dict(temperature=0.8, top_p=0.9)",
    "T0.8 k50 p0.9": "dict(temperature=0.8, top_k=50, top_p=0.9)",
    "min_p 0.05": "dict(min_p=0.05)",
    "greedy": "dict(temperature=0.0)",
    "T0.8 p0.9 logprobs": "dict(temperature=0.8, top_p=0.9, return_logprobs=True)",
}
SHAPES = [(1, 32000), (1, 128256), (8, 128256), (64, 32000)]
import os
# AB_DIST=bounded: logits (sum of four uniforms - 2) * 6 in place of N(0, 9).
BOUNDED = os.environ.get("AB_DIST") == "bounded"
if os.environ.get("AB_SHAPES"):
    SHAPES = [tuple(map(int, s.split("x"))) for s in os.environ["AB_SHAPES"].split(",")]

WORKER = r"""
import json, statistics, sys, time
import numpy as np, logitkit
logitkit.set_num_threads(2)
rows, vocab = {rows}, {vocab}
rng = np.random.default_rng(0)
if {bounded}:
    # Light tails: thousands of tokens near the maximum (min-p keeps 1-3% of the row).
    x = ((rng.random((4, rows, vocab)).sum(axis=0) - 2.0) * 6).astype(np.float32)
else:
    x = (rng.standard_normal((rows, vocab)) * 3).astype(np.float32)
out = {{}}
for name, kw in {cases}.items():
    kw = eval(kw)
    f = lambda: logitkit.sample(x, seed=1, **kw)
    for _ in range(5):
        f()
    ts = []
    t_end = time.perf_counter() + 1.0
    while time.perf_counter() < t_end or len(ts) < 20:
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    out[name] = statistics.median(ts)
print(json.dumps(out))
"""


def main() -> None:
    old, new = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 5
    print("| shape | call | before µs | after µs | after / before |")
    print("|---|---|---|---|---|")
    for rows, vocab in SHAPES:
        code = WORKER.format(rows=rows, vocab=vocab, cases=repr(CASES), bounded=BOUNDED)
        got = {"old": [], "new": []}
        for r in range(rounds):
            order = [("old", old), ("new", new)] if r % 2 == 0 else [("new", new), ("old", old)]
            for label, py in order:
                res = subprocess.run([py, "-c", code], capture_output=True, text=True, check=True)
                got[label].append(json.loads(res.stdout))
        for name in CASES:
            a = statistics.median(d[name] for d in got["old"])
            b = statistics.median(d[name] for d in got["new"])
            print(f"| {rows}x{vocab} | {name} | {a * 1e6:.1f} | {b * 1e6:.1f} | {b / a:.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
