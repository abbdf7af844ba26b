"""Row-kernel speed before and after a change (issue 22): two builds of the `ab_kernels` bench
(benches/ab_kernels.rs), each run as a process of its own, alternated round by round (old,new
then new,old), at each SIMD level; per case the median over rounds of each process's median,
as a Markdown table with the machine load before and after.

    python benches/ab_kernels.py OLD_BIN NEW_BIN [--rounds 5] [--levels avx512,avx2]
                                 [--quick] [--filter NAME]

OLD_BIN / NEW_BIN: the executables `cargo bench --bench ab_kernels --no-run` builds
(target/release/deps/ab_kernels-<hash>). The processes run at 1 thread (the bench pins it) with
LOGITKIT_SIMD set to the level; a level the CPU lacks is an error, not a silent fallback.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def load() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        with open("/proc/loadavg") as f:
            return "loadavg " + f.read().strip()


def run(binary: str, level: str, quick: bool, name_filter: str | None) -> dict[str, float]:
    env = dict(os.environ, LOGITKIT_SIMD=level, LOGITKIT_NUM_THREADS="1")
    args = [binary] + (["--quick"] if quick else []) + ([name_filter] if name_filter else [])
    res = subprocess.run(args, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        sys.exit(f"{binary} (LOGITKIT_SIMD={level}) failed ({res.returncode}):\n{res.stderr}")
    meta = None
    for line in res.stderr.splitlines():
        if line.startswith("{"):
            meta = json.loads(line)
            break
    if meta is None:
        sys.exit(f"{binary}: no level line on stderr:\n{res.stderr}")
    if meta["level"] != level or meta["threads"] != 1:
        sys.exit(f"{binary}: asked for {level} at 1 thread, ran at {meta['level']} "
                 f"with {meta['threads']} threads")
    out = {}
    for line in res.stdout.splitlines():
        if line.startswith("{"):
            d = json.loads(line)
            out[d["case"]] = d["us"]
    if not out:
        sys.exit(f"{binary}: no cases (filter {name_filter!r}?)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--levels", default="avx512,avx2")
    ap.add_argument("--quick", action="store_true", help="about 0.1 s per case instead of 0.3 s")
    ap.add_argument("--filter", default=None, help="only cases whose name contains this")
    a = ap.parse_args()
    levels = [l.strip() for l in a.levels.split(",") if l.strip()]
    bins = {"old": os.path.abspath(a.old), "new": os.path.abspath(a.new)}

    before = load()
    t0 = time.monotonic()
    # got[level][label] = one {case: µs} per round
    got: dict[str, dict[str, list[dict[str, float]]]] = {}
    for level in levels:
        got[level] = {"old": [], "new": []}
        for r in range(a.rounds):
            order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
            for label in order:
                got[level][label].append(run(bins[label], level, a.quick, a.filter))
            print(f"[{level}] round {r + 1}/{a.rounds} done ({time.monotonic() - t0:.0f} s)",
                  file=sys.stderr, flush=True)
    after = load()

    print(f"old: `{bins['old']}`  ")
    print(f"new: `{bins['new']}`  ")
    print(f"{a.rounds} rounds per level, alternating old,new / new,old; 1 thread; "
          f"{'--quick, ~0.1 s' if a.quick else '~0.3 s'} per case per process; "
          f"µs = median over rounds of each process's median; ratio range = min-max of the "
          f"per-round new/old ratios")
    print()
    print(f"load before: `{before}`  ")
    print(f"load after: `{after}`  ")
    print(f"wall time: {time.monotonic() - t0:.0f} s")
    print()
    print("| case | level | old µs | new µs | new/old | per-round new/old range |")
    print("|---|---|---:|---:|---:|---|")
    cases = list(got[levels[0]]["old"][0])
    for case in cases:
        for level in levels:
            olds = [d[case] for d in got[level]["old"]]
            news = [d[case] for d in got[level]["new"]]
            o, n = statistics.median(olds), statistics.median(news)
            per_round = [y / x for x, y in zip(olds, news)]
            flag = " **>1.03**" if n / o > 1.03 else ""
            print(f"| {case} | {level} | {o:.1f} | {n:.1f} | {n / o:.3f}{flag} | "
                  f"{min(per_round):.3f}-{max(per_round):.3f} |", flush=True)


if __name__ == "__main__":
    main()
