"""Runs every Rust test binary (`cargo test --tests`) under valgrind memcheck, as many at a time
as there are CPUs: valgrind runs a process's threads one at a time, so one binary after another
left all but one core idle (the step took 10+ minutes of CI's 45).

    python3 .ci/valgrind_tests.py [--jobs N]

Builds the test binaries with `cargo test --tests --no-run`, then runs each one as `cargo test`
would (from the crate's root, no arguments) under `valgrind -q --error-exitcode=9`, with
PROPTEST_CASES=64 and LOGITKIT_UNDER_VALGRIND=1. Each binary's output is printed when it ends,
with its time; the exit status is 1 when any of them failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Started first: the longest under valgrind (so that the last to start are short ones).
SLOW_FIRST = ("logitkit", "kernels", "bfloat16", "sampling", "samplers", "fuzz_lanes")


def test_binaries() -> list[str]:
    out = subprocess.run(
        ["cargo", "test", "--tests", "--no-run", "--message-format=json"],
        cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True,
    ).stdout
    bins = []
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["profile"]["test"]:
            bins.append(msg["executable"])

    def rank(path: str) -> int:
        name = Path(path).name.rsplit("-", 1)[0]
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)

    return sorted(bins, key=rank)


def run(binary: str) -> tuple[str, int, str, float]:
    env = dict(os.environ, PROPTEST_CASES="64", LOGITKIT_UNDER_VALGRIND="1")
    t0 = time.monotonic()
    res = subprocess.run(
        ["valgrind", "-q", "--error-exitcode=9", binary],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    return binary, res.returncode, res.stdout, time.monotonic() - t0


def main() -> None:
    jobs = int(sys.argv[sys.argv.index("--jobs") + 1]) if "--jobs" in sys.argv else os.cpu_count() or 1
    bins = test_binaries()
    print(f"valgrind: {len(bins)} test binaries, {jobs} at a time", flush=True)
    failed = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for binary, code, output, secs in pool.map(run, bins):
            print(f"\n== {Path(binary).name}: exit {code}, {secs:.0f} s\n{output}", flush=True)
            if code != 0:
                failed.append(Path(binary).name)
    if failed:
        print(f"valgrind: FAILED: {', '.join(failed)}")
        sys.exit(1)
    print("valgrind: every test binary passed")


if __name__ == "__main__":
    main()
