"""Calls on the same row at two addresses: 64-byte aligned and 16 bytes past (where NumPy's
allocator often puts large arrays), for two installs of logitkit (an older build and this one),
each run as a process of its own, the processes alternated round by round; medians of
per-process medians (µs), 1 thread.

    python benches/alignment.py OLD_PYTHON NEW_PYTHON [--rounds 3]

The row: 128256 float32 logits, (sum of four uniforms - 2) * 6, seed 0.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

WORKER = r"""
import json, statistics, time
import numpy as np, logitkit
logitkit.set_num_threads(1)
v = 128256
row = ((np.random.default_rng(0).random((4, v)).sum(axis=0) - 2.0) * 6).astype(np.float32)
buf, obuf = np.empty(v + 64, np.float32), np.empty(v + 64, np.float32)
first = lambda b: (-(b.ctypes.data % 64) // 4) % 16
ONLY = __import__("os").environ.get("ALIGN_CALLS")
calls = {
    "greedy": lambda x, o: logitkit.sample(x[None], seed=1, temperature=0.0),
    "T0.8 p0.95": lambda x, o: logitkit.sample(x[None], seed=1, temperature=0.8, top_p=0.95),
    "min_p 0.05": lambda x, o: logitkit.sample(x[None], seed=1, min_p=0.05),
    "T0.8 p0.95 logprobs": lambda x, o: logitkit.sample(x[None], seed=1, temperature=0.8,
                                                        top_p=0.95, return_logprobs=True),
    "T0.8 p0.95 sigma 1": lambda x, o: logitkit.sample(x[None], seed=1, temperature=0.8,
                                                       top_p=0.95, top_n_sigma=1.0),
    "logsumexp": lambda x, o: logitkit.logsumexp(x),
    "softmax": lambda x, o: logitkit.softmax(x, out=o),
}
if ONLY:
    calls = {k: f for k, f in calls.items() if k in ONLY.split(",")}
out = {}
for shift in (0, 4):
    b, ob = first(buf) + shift, first(obuf) + shift
    x, o = buf[b:b + v], obuf[ob:ob + v]
    x[:] = row
    assert x.ctypes.data % 64 == 4 * shift
    for name, f in calls.items():
        for _ in range(20):
            f(x, o)
        ts = []
        t_end = time.perf_counter() + 0.5
        while time.perf_counter() < t_end or len(ts) < 50:
            t0 = time.perf_counter(); f(x, o); ts.append(time.perf_counter() - t0)
        out[f"{name} @{4 * shift}"] = statistics.median(ts) * 1e6
print(json.dumps(out))
"""


def main() -> None:
    old, new = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 3
    res: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}
    for r in range(rounds):
        order = [("old", old), ("new", new)] if r % 2 == 0 else [("new", new), ("old", old)]
        for tag, py in order:
            got = json.loads(subprocess.run([py, "-c", WORKER], capture_output=True, text=True,
                                            check=True).stdout)
            for k, v in got.items():
                res[tag].setdefault(k, []).append(v)
    med = {tag: {k: statistics.median(v) for k, v in d.items()} for tag, d in res.items()}
    print("| call | input at | before µs | after µs | after / before |")
    print("|---|---|---|---|---|")
    for k in med["old"]:
        name, at = k.rsplit(" @", 1)
        o, n = med["old"][k], med["new"][k]
        print(f"| {name} | 64-byte + {at} | {o:.1f} | {n:.1f} | {n / o:.3f} |")


if __name__ == "__main__":
    main()
