"""Side-by-side timing of logitkit against NumPy/SciPy, ONNX Runtime and PyTorch.

Every contender runs in this one process on the same inputs with preallocated outputs where it
allows them; contenders are interleaved call by call and medians are reported, so the ratios
compare like with like on a shared, noisy machine. Missing peers are skipped.

    python benches/compare.py [--threads 2] [--quick] [--out bench-results]

Prints a markdown table (median microseconds, and the speed ratio of the fastest peer over
logitkit) and writes a PNG plot when matplotlib is installed.
"""

from __future__ import annotations

import argparse
import os

# Peers' worker threads must not busy-spin on the cores between their calls: interleaved with
# other contenders, a spinning OpenMP team (torch) or ORT pool steals the second core from
# whoever runs next. They wait passively. logitkit's helpers poll with sched_yield for 2 ms
# after a call (LOGITKIT_SPIN_US), which gives the core to any runnable thread at once; set
# LOGITKIT_SPIN_US=0 to make them sleep at once too.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

import logitkit

SHAPES = [(1, 32000), (1, 128256), (32, 128256), (256, 152064), (4096, 1000), (65536, 10), (32768, 1024)]
QUICK_SHAPES = [(1, 32000), (1, 128256), (32, 128256), (4096, 1000), (65536, 10)]


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_interleaved(fns: Dict[str, Callable[[], object]], budget_s: float, max_reps: int = 2000) -> Dict[str, float]:
    """Median seconds per call of each function, calls interleaved round-robin."""
    for f in fns.values():  # warm up: caches, thread pools, lazy initialisation
        f()
        f()
    t0 = time.perf_counter()
    for f in fns.values():
        f()
    one_round = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, int(2e-4 / one_round * len(fns)))  # batch tiny calls so the timer resolves them
    samples: Dict[str, List[float]] = {k: [] for k in fns}
    start = time.perf_counter()
    reps = 0
    while reps < 7 or (time.perf_counter() - start < budget_s and reps < max_reps):
        for k, f in fns.items():
            t = time.perf_counter()
            for _ in range(inner):
                f()
            samples[k].append((time.perf_counter() - t) / inner)
        reps += 1
    return {k: statistics.median(v) for k, v in samples.items()}


def numpy_softmax(x: np.ndarray, out: np.ndarray) -> None:
    m = x.max(axis=-1, keepdims=True)
    np.subtract(x, m, out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=-1, keepdims=True)


def make_ort(shape: Tuple[int, int], op: str, threads: int):
    try:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    node = helper.make_node(op, ["x"], ["y"], axis=-1)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])

    def bind(x: np.ndarray, out: np.ndarray):
        b = sess.io_binding()
        b.bind_cpu_input("x", x)
        b.bind_output("y", "cpu", 0, np.float32, list(out.shape), out.ctypes.data)

        def run():
            # ORT writes through a raw pointer: this closure keeps x and out alive.
            sess.run_with_iobinding(b)
            return x, out

        return run

    return bind


def contenders(shape, op: str, x: np.ndarray, threads: int) -> Dict[str, Callable[[], object]]:
    outs = {}
    fns: Dict[str, Callable[[], object]] = {}

    def out(name):
        outs[name] = np.empty_like(x)
        return outs[name]

    o = out("memcpy")
    fns["memcpy"] = lambda: np.copyto(o, x)
    lk_fn = logitkit.softmax if op == "softmax" else logitkit.log_softmax
    o_lk = out("logitkit")
    fns["logitkit"] = lambda: lk_fn(x, out=o_lk)
    if op == "softmax":
        o_np = out("numpy")
        fns["numpy"] = lambda: numpy_softmax(x, o_np)
    try:
        import scipy.special as sp

        sp_fn = sp.softmax if op == "softmax" else sp.log_softmax
        fns["scipy"] = lambda: sp_fn(x, axis=-1)
    except ImportError:
        pass
    bind = make_ort(shape, "Softmax" if op == "softmax" else "LogSoftmax", threads)
    if bind is not None:
        fns["onnxruntime"] = bind(x, out("onnxruntime"))
    try:
        import torch

        torch.set_num_threads(threads)
        tx = torch.from_numpy(x)
        to = torch.from_numpy(out("torch"))
        aten = torch.ops.aten._softmax.out if op == "softmax" else torch.ops.aten._log_softmax.out
        fns["torch"] = lambda: aten(tx, -1, False, out=to)
    except ImportError:
        pass
    return fns


SAMPLE_SHAPES = [(1, 32000), (1, 128256), (8, 128256), (32, 128256), (128, 151936)]
QUICK_SAMPLE_SHAPES = [(1, 32000), (1, 128256), (8, 128256)]
SAMPLE_CONFIGS = [
    ("T0.8 k50 p0.9", dict(temperature=0.8, top_k=50, top_p=0.9)),
    ("top_p 0.9", dict(top_p=0.9)),
    ("min_p 0.05", dict(min_p=0.05)),
]


def torch_hf_sampler(params):
    """The Hugging Face warper pipeline (temperature, top-k, top-p, min-p) and multinomial."""
    import torch

    t, k, p, mp = (params.get("temperature", 1.0), params.get("top_k", 0), params.get("top_p", 1.0), params.get("min_p", 0.0))

    def run(scores):
        if t != 1.0:
            scores = scores / t
        if k:
            kth = torch.topk(scores, k)[0][..., -1, None]
            scores = scores.masked_fill(scores < kth, -float("inf"))
        if p < 1.0:  # TopPLogitsWarper
            sorted_logits, sorted_idx = torch.sort(scores, descending=False)
            cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
            remove = cum <= (1 - p)
            remove[..., -1:] = 0
            scores = scores.masked_fill(remove.scatter(1, sorted_idx, remove), -float("inf"))
        if mp > 0.0:  # MinPLogitsWarper
            probs = torch.softmax(scores, dim=-1)
            top = probs.amax(dim=-1, keepdim=True)
            scores = scores.masked_fill(probs < mp * top, -float("inf"))
        return torch.multinomial(torch.softmax(scores, dim=-1), 1)

    return run


def numpy_sampler(params, rng):
    """A careful NumPy pipeline: argpartition for top-k, argsort of the kept tokens for top-p."""
    t, k, p, mp = (params.get("temperature", 1.0), params.get("top_k", 0), params.get("top_p", 1.0), params.get("min_p", 0.0))

    def one(row):
        z = row / t
        idx = np.argpartition(-z, k - 1)[:k] if k else np.arange(z.size)
        zz = z[idx]
        e = np.exp(zz - zz.max())
        pr = e / e.sum()
        if p < 1.0:
            order = np.argsort(-pr, kind="stable")
            cut = int(np.searchsorted(np.cumsum(pr[order]), p)) + 1
            keep = order[:cut]
            idx, pr = idx[keep], pr[keep] / pr[keep].sum()
        if mp > 0.0:
            keep = pr >= mp * pr.max()
            idx, pr = idx[keep], pr[keep] / pr[keep].sum()
        return idx[rng.choice(pr.size, p=pr)]

    return lambda x: [one(r) for r in x]


def bench_sampling(shapes, threads, budget, rng):
    rows = []
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        torch = None
    for shape in shapes:
        x = (rng.standard_normal(shape, dtype=np.float32) * 3).astype(np.float32)
        out = np.empty_like(x)
        for label, params in SAMPLE_CONFIGS:
            fns = {
                "softmax": lambda: logitkit.softmax(x, out=out),
                "logitkit": lambda params=params: logitkit.sample(x, seed=1, **params),
            }
            if torch is not None:
                tx = torch.from_numpy(x)
                hf = torch_hf_sampler(params)
                fns["torch (HF)"] = lambda hf=hf, tx=tx: hf(tx)
            if shape[0] <= 8:
                fns["numpy"] = lambda f=numpy_sampler(params, np.random.default_rng(0)): f(x)
            med = time_interleaved(fns, budget, max_reps=300)
            rows.append((shape, label, med))
            print(
                f"  sample {label:14s} {str(shape):14s} logitkit {med['logitkit'] * 1e6:9.1f} µs = "
                f"{med['logitkit'] / med['softmax']:.2f}x softmax",
                flush=True,
            )
    names = ["logitkit", "softmax", "torch (HF)", "numpy"]
    lines = ["| sampling | shape | " + " | ".join(names) + " | logitkit / softmax | HF / logitkit |"]
    lines.append("|" + "---|" * (len(names) + 4))
    for shape, label, med in rows:
        cells = [f"{med[n] * 1e6:.1f}" if n in med else "" for n in names]
        hf = f"{med['torch (HF)'] / med['logitkit']:.0f}x" if "torch (HF)" in med else "n/a"
        lines.append(
            f"| {label} | {shape[0]}x{shape[1]} | " + " | ".join(cells)
            + f" | {med['logitkit'] / med['softmax']:.2f} | {hf} |"
        )
    return "\n".join(lines)


def bench_latency_scaling(threads: int, budget: float, rng) -> str:
    """The smallest call's latency, and one long row on `threads` threads against one thread.
    Each is timed over blocks of 20 calls (blocks interleaved), so that each is measured in its
    own steady state: right after a switch, the other thread count's calls have left the row in
    the other cores' caches, and the long rows' calls have pushed the small call's code and data
    out of this core's caches. The first softmax (1, 10) call of each block, the one right after
    the long rows, is also reported on its own. The long row is also timed at temperature 0.7."""
    tiny = rng.standard_normal((1, 10), dtype=np.float32)
    tiny_out = np.empty_like(tiny)
    row = (rng.standard_normal((1, 128256), dtype=np.float32) * 3).astype(np.float32)
    row_out = np.empty_like(row)

    block = 20

    def on(n: int, f):
        def g():
            logitkit.set_num_threads(n)
            for _ in range(block):
                f()

        return g

    first: List[float] = []

    def tiny_block(f, record: bool):
        def g():
            t = time.perf_counter()
            f()
            if record:
                first.append(time.perf_counter() - t)
            for _ in range(block - 1):
                f()

        return g

    fns = {
        "softmax (1, 10)": tiny_block(lambda: logitkit.softmax(tiny, out=tiny_out), True),
        "log_softmax (1, 10)": tiny_block(lambda: logitkit.log_softmax(tiny, out=tiny_out), False),
        "softmax (1, 128256), 1 thread": on(1, lambda: logitkit.softmax(row, out=row_out)),
        f"softmax (1, 128256), {threads} threads": on(threads, lambda: logitkit.softmax(row, out=row_out)),
        "log_softmax (1, 128256), 1 thread": on(1, lambda: logitkit.log_softmax(row, out=row_out)),
        f"log_softmax (1, 128256), {threads} threads": on(
            threads, lambda: logitkit.log_softmax(row, out=row_out)
        ),
        # A temperature other than 1 takes other kernel paths (LLM decoding often runs at 0.6-0.8).
        f"softmax (1, 128256), {threads} threads, T = 0.7": on(
            threads, lambda: logitkit.softmax(row, temperature=0.7, out=row_out)
        ),
        f"log_softmax (1, 128256), {threads} threads, T = 0.7": on(
            threads, lambda: logitkit.log_softmax(row, temperature=0.7, out=row_out)
        ),
    }
    med = time_interleaved(fns, budget)
    med = {k: v / block for k, v in med.items()}
    # The warm-up calls come before the long rows have run: leave them out.
    med[f"softmax (1, 10), first call after {threads}-thread long rows"] = statistics.median(first[3:])
    logitkit.set_num_threads(threads)
    lines = ["| call | median µs |", "|---|---|"]
    lines += [f"| {k} | {v * 1e6:.2f} |" for k, v in med.items()]
    for op in ("softmax", "log_softmax"):
        one = med[f"{op} (1, 128256), 1 thread"]
        many = med[f"{op} (1, 128256), {threads} threads"]
        lines.append(f"| {op} (1, 128256): {threads} threads over 1 | {one / many:.2f}x |")
    for op in ("softmax", "log_softmax"):
        warm = med[f"{op} (1, 128256), {threads} threads, T = 0.7"]
        unit = med[f"{op} (1, 128256), {threads} threads"]
        lines.append(f"| {op} (1, 128256): T = 0.7 over T = 1 | {warm / unit:.2f}x |")
    return "\n".join(lines)


def check_outputs(shape, op, x):
    """Sanity: every contender computes the same thing (to float32 tolerance)."""
    ref = logitkit.softmax(x.astype(np.float64)) if op == "softmax" else logitkit.log_softmax(x.astype(np.float64))
    return ref


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="fewer shapes, shorter budget")
    ap.add_argument("--budget", type=float, default=None, help="seconds per shape and op")
    ap.add_argument("--ops", default="softmax,log_softmax,sample", help="any of softmax,log_softmax,sample")
    ap.add_argument("--out", default="bench-results", help="folder for the table and plot")
    args = ap.parse_args(argv)
    logitkit.set_num_threads(args.threads)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    budget = args.budget if args.budget is not None else (0.5 if args.quick else 2.0)
    rng = np.random.default_rng(0)
    rows = []
    header = (
        f"logitkit {logitkit.__version__}, SIMD {logitkit.simd_level()}, {args.threads} threads, "
        f"{cpu_name()}, {os.cpu_count()} CPUs; float32, preallocated outputs, median µs"
    )
    print(header)
    peers_seen: List[str] = []
    ops = args.ops.split(",")
    sampling_table = None
    if "sample" in ops:
        ops.remove("sample")
        sampling_table = bench_sampling(QUICK_SAMPLE_SHAPES if args.quick else SAMPLE_SHAPES, args.threads, budget, rng)
        print()
        print(sampling_table)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "sampling.md").write_text(header + "\n\n" + sampling_table + "\n")
    if not ops:
        return 0
    args.ops = ",".join(ops)
    for op in ops:
        for shape in shapes:
            x = (rng.standard_normal(shape, dtype=np.float32) * 3).astype(np.float32)
            fns = contenders(shape, op, x, args.threads)
            med = time_interleaved(fns, budget)
            peers = {k: v for k, v in med.items() if k in ("onnxruntime", "torch")}
            for k in med:
                if k not in peers_seen:
                    peers_seen.append(k)
            best_peer = min(peers.values()) if peers else None
            rows.append((op, shape, med, best_peer))
            speed = f"{best_peer / med['logitkit']:.2f}x" if best_peer else "n/a"
            print(f"  {op:11s} {str(shape):14s} logitkit {med['logitkit'] * 1e6:9.1f} µs  vs best peer {speed}", flush=True)
    names = [n for n in ["logitkit", "memcpy", "onnxruntime", "torch", "scipy", "numpy"] if n in peers_seen]
    lines = [header, "", "| op | shape | " + " | ".join(names) + " | best peer / logitkit | logitkit / memcpy |"]
    lines.append("|" + "---|" * (len(names) + 4))
    for op, shape, med, best_peer in rows:
        cells = [f"{med[n] * 1e6:.1f}" if n in med else "" for n in names]
        ratio = f"{best_peer / med['logitkit']:.2f}x" if best_peer else "n/a"
        mem = f"{med['logitkit'] / med['memcpy']:.2f}"
        lines.append(f"| {op} | {shape[0]}x{shape[1]} | " + " | ".join(cells) + f" | {ratio} | {mem} |")
    latency = bench_latency_scaling(args.threads, budget, rng)
    table = "\n".join(lines) + "\n\n" + latency
    print()
    print(table)
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "softmax.md").write_text(table + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return 0
    fig, axes = plt.subplots(1, len(args.ops.split(",")), figsize=(13, 4.8), squeeze=False)
    for ax, op in zip(axes[0], args.ops.split(",")):
        sub = [r for r in rows if r[0] == op]
        labels = [f"{s[0]}x{s[1]}" for _, s, _, _ in sub]
        xs = np.arange(len(sub))
        contenders_here = [n for n in names if n != "memcpy"]
        w = 0.8 / max(1, len(contenders_here))
        for i, n in enumerate(contenders_here):
            vals = [r[2]["memcpy"] / r[2][n] if n in r[2] else 0 for r in sub]
            ax.bar(xs + i * w, vals, w, label=n)
        ax.set_xticks(xs + 0.4 - w / 2)
        ax.set_xticklabels(labels, rotation=30, ha="right")
        ax.set_ylabel("speed relative to memcpy (higher is faster)")
        ax.set_title(f"{op}, float32, {args.threads} threads")
        ax.legend(fontsize=8)
    fig.suptitle(header, fontsize=8)
    fig.tight_layout()
    fig.savefig(outdir / "softmax.png", dpi=110)
    print(f"wrote {outdir / 'softmax.md'} and {outdir / 'softmax.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
