"""bfloat16 against float32 (issue 22 item 5): softmax and log_softmax of the same values held
as bfloat16 (``ml_dtypes``) and as float32, at LLM vocabulary shapes.

Contenders, each on the same values:

- ``float32``: logitkit on the float32 array.
- ``bfloat16``: logitkit on the bfloat16 array (read in place, results bfloat16).
- ``bfloat16 via float32 copies``: what logitkit did before bfloat16 was read natively, and
  what a user without it does: ``f(x.astype(float32)).astype(bfloat16)``.
- ``torch bfloat16`` / ``torch float32``: ``torch.softmax``/``torch.log_softmax`` on the same
  values (when torch is installed), ``torch.set_num_threads(2)``.
- floors: ``copy float32`` and ``copy bfloat16`` (``np.copyto`` of the array: one read and
  one write of its bytes).

Each contender runs in a process of its own (2 threads, CPU affinity set), the contenders
alternate round by round, and a contender's time is the median of its per-process medians.
Prints a Markdown table per shape, ratios against ``float32``.

    python benches/bf16.py [--rounds 5] [--shapes 8x128256,32x128256,256x152064] [--op softmax]
                           [--dtype bfloat16|float16] [--threads 2]

``--dtype float16``: the same with float16 (NumPy's) in place of bfloat16.

``--op sample``: ``logitkit.sample(x, seed=1, **KW)`` with ``--kw "dict(temperature=0.8,
top_p=0.95)"`` (the default; it may name ``rows`` and ``vocab``, e.g. ``output_tokens=
[np.arange(64)] * rows``); the contenders are logitkit's float32, bfloat16 and bfloat16
via a float32 copy, and with ``--baseline PYTHON`` the float32 and bfloat16 calls of another
install of logitkit (an older build), run by that interpreter.

``--op token_logprobs``: ``logitkit.token_logprobs(x, ids, **KW)`` (prompt scoring, one random
id per row; ``--kw`` defaults to ``dict()``), with the same contenders and ``--baseline``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

CONTENDERS = {
    "float32": "lambda: f(x32, out=o32)",
    "bfloat16": "lambda: f(x16, out=o16)",
    "bfloat16 via float32 copies": "lambda: f(x16.astype(np.float32)).astype(x16.dtype)",
    "torch float32": "lambda: tf(t32, -1)",
    "torch bfloat16": "lambda: tf(t16, -1)",
    "floor: copy float32": "lambda: np.copyto(o32, x32)",
    "floor: copy bfloat16": "lambda: np.copyto(o16, x16)",
}

SAMPLE_CONTENDERS = {
    "float32": "lambda: logitkit.sample(x32, seed=1, **kw)",
    "bfloat16": "lambda: logitkit.sample(x16, seed=1, **kw)",
    "bfloat16 via float32 copies": "lambda: logitkit.sample(x16.astype(np.float32), seed=1, **kw)",
}

SCORE_CONTENDERS = {
    "float32": "lambda: logitkit.token_logprobs(x32, ids, **kw)",
    "bfloat16": "lambda: logitkit.token_logprobs(x16, ids, **kw)",
    "bfloat16 via float32 copies": "lambda: logitkit.token_logprobs(x16.astype(np.float32), ids, **kw)",
}

WORKER = r"""
import json, os, statistics, sys, time
os.sched_setaffinity(0, {cpus})
import numpy as np, ml_dtypes, logitkit
logitkit.set_num_threads({threads})
rows, vocab = {rows}, {vocab}
kw = {kw}  # may name `rows` and `vocab` (histories, one per row)
x32 = (np.random.default_rng(0).standard_normal((rows, vocab)) * 3).astype(np.float32)
x16 = x32.astype({np16})
x32 = x16.astype(np.float32)  # the same values in both
o32, o16 = np.empty_like(x32), np.empty_like(x16)
ids = np.random.default_rng(1).integers(0, vocab, rows)
f = getattr(logitkit, "{op}")
call = "{call}"
if "tf(" in call:
    try:
        import torch
    except ImportError:
        print("null"); sys.exit(0)
    torch.set_num_threads({threads})
    t32 = torch.from_numpy(x32)
    t16 = t32.to(torch.{dtype})
    tf = getattr(torch, "{op}")
g = eval(call)
for _ in range(3):
    g()
ts = []
t_end = time.perf_counter() + 1.5
while time.perf_counter() < t_end or len(ts) < 15:
    t0 = time.perf_counter(); g(); ts.append(time.perf_counter() - t0)
print(json.dumps(statistics.median(ts)))
"""


def arg(name: str, default: str) -> str:
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def main() -> None:
    rounds = int(arg("--rounds", "5"))
    shapes = [tuple(map(int, s.split("x"))) for s in arg("--shapes", "8x128256,32x128256,256x152064").split(",")]
    op = arg("--op", "softmax")
    dtype = arg("--dtype", "bfloat16")
    threads = int(arg("--threads", "2"))
    kw = {"sample": arg("--kw", "dict(temperature=0.8, top_p=0.95)"),
          "token_logprobs": arg("--kw", "dict()")}.get(op, "{}")
    np16 = {"bfloat16": "ml_dtypes.bfloat16", "float16": "np.float16"}[dtype]
    cpus = sorted(os.sched_getaffinity(0))[:threads]
    # name -> (interpreter, call)
    contenders = {k: (sys.executable, c) for k, c in CONTENDERS.items()}
    calls = {"sample": SAMPLE_CONTENDERS, "token_logprobs": SCORE_CONTENDERS}.get(op)
    if calls is not None:
        contenders = {k: (sys.executable, c) for k, c in calls.items()}
        if "--baseline" in sys.argv:
            for k in ("float32", "bfloat16"):
                contenders[f"{k} (baseline build)"] = (arg("--baseline", ""), calls[k])
    what = f"`{op}` {kw}" if calls is not None else f"`{op}`"
    print(f"{what} of {dtype}, {threads} threads, {rounds} rounds, each contender in its own process; "
          "median of per-process medians, ratios against logitkit float32")
    print(f"load before: `{subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}`\n")
    for rows, vocab in shapes:
        got: dict[str, list[float]] = {k: [] for k in contenders}
        names = list(contenders)
        for r in range(rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                python, call = contenders[name]
                code = WORKER.format(cpus=set(cpus), rows=rows, vocab=vocab, op=op, call=call,
                                     np16=np16, dtype=dtype, threads=threads, kw=kw)
                res = subprocess.run([python, "-c", code], capture_output=True,
                                     text=True, check=True)
                t = json.loads(res.stdout)
                if t is not None:
                    got[name].append(t)
        base = statistics.median(got["float32"])
        print(f"\n{rows}x{vocab}\n")
        print("| contender | ms | / float32 | per-round ms |")
        print("|---|---|---|---|")
        for name in names:
            label = name.replace("bfloat16", dtype)
            if not got[name]:
                print(f"| {label} | n/a | | |")
                continue
            m = statistics.median(got[name])
            rs = ", ".join(f"{t * 1e3:.4f}" for t in got[name])
            print(f"| {label} | {m * 1e3:.4f} | {m / base:.3f} | {rs} |")
    print(f"\nload after: `{subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}`")


if __name__ == "__main__":
    main()
