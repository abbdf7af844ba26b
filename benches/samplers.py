"""P20-P26 speed: each new stage on top of ``sample(temperature=0.8, top_p=0.95)`` against
that call alone, at 8x128256 float32 (logits N(0, 9), as the other sampling benches).

Each contender runs in a process of its own (threads pinned: 2 logitkit threads, CPU affinity
set), the contenders alternate round by round, and a contender's time is the median of its
per-process medians. Prints a Markdown table with the machine load (``uptime``).

    python benches/samplers.py [--rounds 5] [--shape 8x128256]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

BASE = "dict(temperature=0.8, top_p=0.95)"
CONTENDERS = {
    "baseline T0.8 p0.95": BASE,
    "defaults given": "dict(temperature=0.8, top_p=0.95, typical_p=1.0, top_n_sigma=0.0, "
    "epsilon_cutoff=0.0, eta_cutoff=0.0, xtc_threshold=0.1, xtc_probability=0.0, "
    "dynatemp_range=0.0, dynatemp_exponent=1.0)",
    "+ typical_p 0.9 (P20)": "dict(temperature=0.8, top_p=0.95, typical_p=0.9)",
    "+ top_n_sigma 1.0 (P21)": "dict(temperature=0.8, top_p=0.95, top_n_sigma=1.0)",
    "+ epsilon_cutoff 3e-4 (P22)": "dict(temperature=0.8, top_p=0.95, epsilon_cutoff=3e-4)",
    "+ eta_cutoff 3e-4 (P22)": "dict(temperature=0.8, top_p=0.95, eta_cutoff=3e-4)",
    "+ xtc 0.1, 0.5 (P23)": "dict(temperature=0.8, top_p=0.95, xtc_threshold=0.1, "
    "xtc_probability=0.5)",
    "+ dynatemp 0.5 (P26)": "dict(temperature=0.8, top_p=0.95, dynatemp_range=0.5)",
}
# DRY (P24) reads the rows' output tokens: the same histories (HISTORY below) with and without
# it, so that the ratio is the stage's own; the plain baseline is the first row of the table.
# Mirostat (P25) lives in `Sampler` only: a Sampler with it against a Sampler without it.
HISTORY_CONTENDERS = {
    "baseline with histories": BASE,
    "+ dry 0.8 (P24)": "dict(temperature=0.8, top_p=0.95, dry_multiplier=0.8)",
}
SAMPLER_CONTENDERS = {
    "Sampler T0.8 p0.95": BASE,
    "+ mirostat 5.0 (P25)": "dict(temperature=0.8, top_p=0.95, mirostat_tau=5.0)",
}
# The floors, timed the same way. P26 needs the entropy at temperature 1 before the draw at
# its own temperature, one more exponential per token: its floor is the baseline plus one exp
# pass over the row (logsumexp less its max pass, about). Typical-p needs top-p's exact kept
# set and its entropy, where the baseline draws by rejection with no cut: the call with
# log-probabilities, which finds that cut, is its floor.
FLOORS = {
    "floor: logsumexp (max + one exp pass)": "lambda: logitkit.logsumexp(x, axis=-1)",
    "floor: top-p's exact cut (baseline, return_logprobs=True)":
    "lambda: logitkit.sample(x, seed=1, temperature=0.8, top_p=0.95, return_logprobs=True)",
    "floor: copy of the logits": "lambda: np.copyto(out, x)",
}

WORKER = r"""
import json, os, statistics, sys, time
os.sched_setaffinity(0, {cpus})
import numpy as np, logitkit
logitkit.set_num_threads(2)
rows, vocab = {rows}, {vocab}
rng = np.random.default_rng(0)
x = (rng.standard_normal((rows, vocab)) * 3).astype(np.float32)
out = np.empty_like(x)
# A chat turn's history per row: 512 output tokens, phrases of 8 repeated from a pool of 16 so
# that DRY finds repeats to extend (HISTORY).
pool = rng.integers(0, vocab, size=(16, 8))
hist = [np.concatenate([pool[i] for i in rng.integers(0, 16, size=64)]) for _ in range(rows)]
kw = {kw}
sampler = logitkit.Sampler(seed=1, **kw) if {stateful} else None
f = {call}
for _ in range(5):
    f()
ts = []
t_end = time.perf_counter() + 1.5
while time.perf_counter() < t_end or len(ts) < 30:
    t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
print(json.dumps(statistics.median(ts)))
"""


def main() -> None:
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 5
    shape = sys.argv[sys.argv.index("--shape") + 1] if "--shape" in sys.argv else "8x128256"
    rows, vocab = map(int, shape.split("x"))
    cpus = sorted(os.sched_getaffinity(0))[:2]
    load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    # Each contender: the timed call and its keyword arguments.
    calls = {k: ("lambda: logitkit.sample(x, seed=1, **kw)", v) for k, v in CONTENDERS.items()}
    calls.update({k: ("lambda: logitkit.sample(x, seed=1, output_tokens=hist, **kw)", v)
                  for k, v in HISTORY_CONTENDERS.items()})
    # The sampler's own histories grow by a token per call; mirostat's mu settles in a few.
    calls.update({k: ("lambda: sampler(x)", v) for k, v in SAMPLER_CONTENDERS.items()})
    calls.update({k: (v, "{}") for k, v in FLOORS.items()})
    got: dict[str, list[float]] = {k: [] for k in calls}
    names = list(calls)
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            call, kw = calls[name]
            code = WORKER.format(cpus=set(cpus), rows=rows, vocab=vocab, kw=kw, call=call,
                                 stateful=name in SAMPLER_CONTENDERS)
            # numpy's BLAS threads would otherwise spin beside logitkit's two.
            env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
            res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True, env=env)
            got[name].append(json.loads(res.stdout))
    load_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    base = statistics.median(got[names[0]])
    print(f"shape {rows}x{vocab} float32, 2 threads, {rounds} rounds; median of per-process "
          "medians")
    print(f"load before: `{load_before}`  ")
    print(f"load after: `{load_after}`\n")
    print("| call | µs | / its group's baseline | per-round µs |")
    print("|---|---|---|---|")
    # A stage's ratio is to the baseline of its own group (its first row).
    for group in (CONTENDERS, HISTORY_CONTENDERS, SAMPLER_CONTENDERS, FLOORS):
        ref = base if group is FLOORS else statistics.median(got[next(iter(group))])
        for name in group:
            m = statistics.median(got[name])
            rs = ", ".join(f"{t * 1e6:.0f}" for t in got[name])
            print(f"| {name} | {m * 1e6:.0f} | {m / ref:.2f} | {rs} |")


if __name__ == "__main__":
    main()
