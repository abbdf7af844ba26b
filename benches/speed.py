"""The README's speed table and plot: softmax and log-softmax against ONNX Runtime, PyTorch and
a plain copy of the same bytes, each contender in a process of its own.

Each (op, shape, contender) runs in a fresh interpreter (so one library's threads never slow
another's), rounds alternate the contenders' order, and the reported time is the median over
rounds of each process's median call time. Threads are pinned (``--threads``, default 2) for
every contender; OpenBLAS and OpenMP pools are held to one thread and told not to spin.

    python benches/speed.py [--rounds 5] [--threads 2] [--quick] [--out benches/results]

Writes ``speed.md`` (the table) and ``speed.png`` (the plot) to ``--out``. Needs onnxruntime,
onnx, torch and matplotlib (``pip install '.[bench]' torch``); a missing peer is left out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

SHAPES = [(1, 32000), (1, 128256), (32, 128256), (256, 152064), (4096, 1000), (65536, 10)]
QUICK_SHAPES = [(1, 32000), (32, 128256), (4096, 1000)]
OPS = ["softmax", "log_softmax"]
CONTENDERS = ["logitkit", "onnxruntime", "torch", "copy"]


def make_call(name: str, op: str, rows: int, cols: int, threads: int):
    """The function to time, or None when its library is missing (imports only what it needs)."""
    import numpy as np

    x = (np.random.default_rng(0).standard_normal((rows, cols)) * 3).astype(np.float32)
    out = np.empty_like(x)
    if name == "copy":
        return lambda: np.copyto(out, x)
    if name == "logitkit":
        import logitkit

        logitkit.set_num_threads(threads)
        fn = logitkit.softmax if op == "softmax" else logitkit.log_softmax
        return lambda: fn(x, out=out)
    if name == "torch":
        try:
            import torch
        except ImportError:
            return None
        torch.set_num_threads(threads)
        tx, to = torch.from_numpy(x), torch.from_numpy(out)
        aten = torch.ops.aten._softmax.out if op == "softmax" else torch.ops.aten._log_softmax.out
        return lambda: aten(tx, -1, False, out=to)
    if name == "onnxruntime":
        try:
            import onnxruntime as ort
            from onnx import TensorProto, helper
        except ImportError:
            return None
        node = helper.make_node("Softmax" if op == "softmax" else "LogSoftmax", ["x"], ["y"], axis=-1)
        io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [rows, cols]) for n in "xy"]
        graph = helper.make_graph([node], "g", io[:1], io[1:])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        binding = sess.io_binding()
        binding.bind_cpu_input("x", x)
        binding.bind_output("y", "cpu", 0, np.float32, [rows, cols], out.ctypes.data)
        # ORT writes through a raw pointer: the closure keeps x and out alive.
        return lambda: (sess.run_with_iobinding(binding), x, out)
    raise ValueError(name)


def worker(name: str, op: str, rows: int, cols: int, threads: int) -> None:
    call = make_call(name, op, rows, cols, threads)
    if call is None:
        print(json.dumps({"median": None}))
        return
    # About 0.3 s of calls after a warm-up, at least 20.
    for _ in range(5):
        call()
    t0 = time.perf_counter()
    call()
    once = max(time.perf_counter() - t0, 1e-7)
    n = max(20, min(5000, int(0.3 / once)))
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"median": statistics.median(times)}))


def measure(op, rows, cols, threads, rounds):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS=str(threads),
               OMP_WAIT_POLICY="PASSIVE", MKL_NUM_THREADS="1")
    got = {n: [] for n in CONTENDERS}
    for r in range(rounds):
        order = CONTENDERS if r % 2 == 0 else CONTENDERS[::-1]
        for n in order:
            out = subprocess.run(
                [sys.executable, __file__, "--worker", n, op, str(rows), str(cols), str(threads)],
                capture_output=True, text=True, env=env, check=True,
            )
            got[n].append(json.loads(out.stdout.strip().splitlines()[-1])["median"])
    return {n: (statistics.median(v) if None not in v else None) for n, v in got.items()}


def versions() -> str:
    import numpy

    parts = [f"numpy {numpy.__version__}"]
    for mod in ["onnxruntime", "torch"]:
        try:
            parts.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            parts.append(f"{mod} missing")
    return ", ".join(parts)


def table(results, threads) -> str:
    import logitkit

    lines = [
        f"logitkit {logitkit.__version__}, SIMD {logitkit.simd_level()}, {threads} threads, "
        f"{platform.machine()}, {os.cpu_count()} CPUs; {versions()}; float32, preallocated "
        "outputs; each contender in its own process, rounds alternated, medians.",
        "",
        "| op | shape | ONNX Runtime / logitkit | PyTorch / logitkit | logitkit / copy |",
        "|---|---|---|---|---|",
    ]
    for (op, rows, cols), t in results.items():
        def ratio(a, b):
            return f"{t[a] / t[b]:.2f}x" if t.get(a) and t.get(b) else "n/a"

        lines.append(
            f"| {op} | {rows}x{cols} | {ratio('onnxruntime', 'logitkit')} | "
            f"{ratio('torch', 'logitkit')} | {ratio('logitkit', 'copy')} |"
        )
    lines += ["", "Median µs:", "", "| op | shape | " + " | ".join(CONTENDERS) + " |",
              "|---|---|" + "---|" * len(CONTENDERS)]
    for (op, rows, cols), t in results.items():
        cells = " | ".join(f"{t[n] * 1e6:.1f}" if t.get(n) else "" for n in CONTENDERS)
        lines.append(f"| {op} | {rows}x{cols} | {cells} |")
    return "\n".join(lines) + "\n"


def plot(results, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len(OPS), figsize=(11, 4), sharey=True)
    for ax, op in zip(axes, OPS):
        keys = [k for k in results if k[0] == op]
        labels = [f"{r}x{c}" for _, r, c in keys]
        for i, peer in enumerate(["onnxruntime", "torch"]):
            vals = [
                results[k][peer] / results[k]["logitkit"] if results[k].get(peer) else 0
                for k in keys
            ]
            ax.bar([j + 0.4 * i for j in range(len(keys))], vals, width=0.4,
                   label=f"{peer} time / logitkit time")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks([j + 0.2 for j in range(len(keys))], labels, rotation=30)
        ax.set_title(f"{op}, float32")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("ratio (above 1: logitkit faster)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="three shapes, three rounds")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    p.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        name, op, rows, cols, threads = a.worker
        worker(name, op, int(rows), int(cols), int(threads))
        return
    shapes = QUICK_SHAPES if a.quick else SHAPES
    rounds = 3 if a.quick else a.rounds
    results = {}
    for op in OPS:
        for rows, cols in shapes:
            results[(op, rows, cols)] = measure(op, rows, cols, a.threads, rounds)
            print(op, rows, cols, {k: v and round(v * 1e6, 1) for k, v in results[(op, rows, cols)].items()},
                  flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "speed.md").write_text(table(results, a.threads))
    if plot(results, a.out / "speed.png"):
        print("wrote", a.out / "speed.md", "and", a.out / "speed.png")
    else:
        print("wrote", a.out / "speed.md", "(no matplotlib: no plot)")


if __name__ == "__main__":
    main()
