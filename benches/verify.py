"""Speed of ``verify_draft`` (contract V1-V4) against one ``softmax`` of the same target logits,
as ratios measured side by side.

Each contender runs in a process of its own (so that one's threads never slow another's), one
round after another with the order of the contenders alternated; the median over rounds of
each contender's median call time is reported. Threads are pinned (``--threads``, default 2).

    python benches/verify.py [--rounds 5] [--threads 2] [--out benches/results]

Shapes (float32): B=8, K=4, V=128256 and B=1, K=8, V=32000. Inputs: target logits standard
normal times 3; a draft model that is the target's logits plus noise (``draft_probs`` its
softmax, the drafts drawn from it), so that some drafts are accepted and some rejected
(the acceptance rate is printed). Contenders:

- ``softmax``: ``logitkit.softmax`` over all of ``target_logits`` (B, K+1, V), the yardstick;
- ``probs`` / ``none``: ``verify_draft`` with ``draft_probs`` / without (point-mass drafts);
- ``probs_all`` / ``none_all``: every draft accepted (q = p exactly; the drafted token's logit
  30 above the rest), so every position is processed: the worst case of the work;
- ``probs_usual`` / ``none_usual``: as ``probs`` / ``none`` at ``temperature=0.8, top_k=50,
  top_p=0.9``;
- ``copy``: reading ``draft_probs`` once (``numpy.copyto``), a floor for any call that checks
  them.
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

SHAPES = [(8, 4, 128256), (1, 8, 32000)]
USUAL = dict(temperature=0.8, top_k=50, top_p=0.9)


def inputs(b: int, k: int, v: int, all_accepted: bool = False):
    import numpy as np

    import logitkit

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((b, k + 1, v)) * 3).astype(np.float32)
    if all_accepted:
        q = logitkit.softmax(x[:, :k])
        drafts = (np.log(q) + rng.gumbel(size=q.shape)).argmax(axis=2)
        peaked = x.copy()
        for i in range(b):
            for j in range(k):
                peaked[i, j, drafts[i, j]] += 30.0
        return x, drafts, q, peaked
    drafty = x[:, :k] + rng.standard_normal((b, k, v)).astype(np.float32) * 1.5
    q = logitkit.softmax(drafty)
    drafts = (drafty + rng.gumbel(size=q.shape).astype(np.float32)).argmax(axis=2)
    return x, drafts, q, x


def contender(name: str, b: int, k: int, v: int, threads: int):
    import numpy as np

    import logitkit

    logitkit.set_num_threads(threads)
    x, drafts, q, peaked = inputs(b, k, v, all_accepted=name.endswith("_all"))
    if name == "softmax":
        return lambda: logitkit.softmax(x)
    if name == "copy":
        buf = np.empty_like(q)
        return lambda: np.copyto(buf, q)
    kw = USUAL if name.endswith("_usual") else {}
    if name.startswith("probs"):
        return lambda: logitkit.verify_draft(x, drafts, draft_probs=q, seed=1, **kw)
    if name.startswith("none"):
        return lambda: logitkit.verify_draft(peaked, drafts, seed=1, **kw)
    raise ValueError(name)


def acceptance(b: int, k: int, v: int) -> str:
    """The mean number of accepted drafts per sequence for each verify contender."""
    import numpy as np

    import logitkit

    out = []
    for name in ["probs", "none", "probs_all", "none_all", "probs_usual", "none_usual"]:
        f = contender(name, b, k, v, 1)
        n = np.concatenate([f.__call__()[1] for _ in range(20)]) if b < 8 else f()[1]
        out.append(f"{name} {np.mean(n - 1):.2f}/{k}")
    return ", ".join(out)


def worker(name: str, b: int, k: int, v: int, threads: int, calls: int) -> None:
    f = contender(name, b, k, v, threads)
    for _ in range(3):
        f()
    times = []
    deadline = time.perf_counter() + 2.0
    while len(times) < calls and (time.perf_counter() < deadline or len(times) < 5):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"median": statistics.median(times)}))


def measure(names, b, k, v, threads, rounds, calls):
    env = dict(os.environ, LOGITKIT_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS="1")
    got = {n: [] for n in names}
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for n in order:
            out = subprocess.run(
                [sys.executable, __file__, "--worker", n, str(b), str(k), str(v), str(threads),
                 str(calls)],
                capture_output=True, text=True, env=env, check=True,
            )
            got[n].append(json.loads(out.stdout.strip().splitlines()[-1])["median"])
    return {n: statistics.median(t) for n, t in got.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--out", default=None, help="folder to write verify.md into")
    p.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        n, b, k, v, threads, calls = a.worker
        worker(n, int(b), int(k), int(v), int(threads), int(calls))
        return
    import logitkit

    load = os.getloadavg()
    lines = [
        f"logitkit {logitkit.__version__}, SIMD {logitkit.simd_level()}, {a.threads} threads, "
        f"{os.cpu_count()} CPUs; float32; each contender in its own process, {a.rounds} rounds "
        "alternating the order, median of medians",
        f"load average at the start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        "(the machine is shared with other agents compiling)",
        "",
        "| shape | target | measured | ratio | bound |",
        "|---|---|---|---|---|",
    ]

    def row(shape, what, num, den, t, bound=None):
        ratio = t[num] / t[den]
        mark = "" if bound is None else f"<= {bound}x ({'met' if ratio <= bound else 'MISSED'})"
        lines.append(f"| {shape} | {what} | {t[num] * 1e6:.1f} vs {t[den] * 1e6:.1f} µs "
                     f"| {ratio:.3f}x | {mark} |")
        print(lines[-1], flush=True)

    notes = []
    for b, k, v in SHAPES:
        shape = f"B={b} K={k} V={v}"
        names = ["softmax", "probs", "none", "probs_all", "none_all", "probs_usual",
                 "none_usual", "copy"]
        t = measure(names, b, k, v, a.threads, a.rounds, a.calls)
        row(shape, "verify, draft_probs / softmax", "probs", "softmax", t, 1.5)
        row(shape, "verify, draft_probs=None / softmax", "none", "softmax", t, 1.2)
        row(shape, "all accepted, draft_probs / softmax", "probs_all", "softmax", t, 1.5)
        row(shape, "all accepted, draft_probs=None / softmax", "none_all", "softmax", t, 1.2)
        row(shape, "T=0.8 k=50 p=0.9, draft_probs / softmax", "probs_usual", "softmax", t)
        row(shape, "T=0.8 k=50 p=0.9, draft_probs=None / softmax", "none_usual", "softmax", t)
        row(shape, "reading draft_probs once (copyto) / softmax", "copy", "softmax", t)
        notes.append(f"- {shape}: mean accepted drafts per sequence: {acceptance(b, k, v)}")
    load = os.getloadavg()
    lines += ["", f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", ""]
    lines += notes
    if a.out:
        Path(a.out).mkdir(parents=True, exist_ok=True)
        Path(a.out, "verify.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
