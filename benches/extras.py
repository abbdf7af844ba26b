"""Speed of the issue-6 extras against the peer a user would pick.

    python benches/extras.py            # with the project venv after `make develop`

Peers: torch.nn.functional.cross_entropy and torch.topk (if torch is importable),
scipy.optimize.minimize_scalar over a NumPy/SciPy NLL for temperature scaling, scipy.special.expit
for sigmoid, NumPy formulas otherwise. Times are the median of several runs, in milliseconds.
Each result is also compared with the peer's so that a fast wrong answer cannot hide.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

import logitkit
from logitkit.calibration import expected_calibration_error, fit_temperature
from logitkit.loss import cross_entropy
from logitkit.ops import sigmoid, sparsemax, topk

extra = os.environ.get("LOGITKIT_BENCH_EXTRA_SITE")  # e.g. a venv's site-packages with torch
if extra:
    sys.path.append(extra)

try:
    import torch
except ImportError:
    torch = None
try:
    import scipy.optimize
    import scipy.special
except ImportError:
    scipy = None


def bench(f, repeat=7, min_time=0.2):
    f()
    times = []
    for _ in range(repeat):
        n, t0 = 0, time.perf_counter()
        while True:
            f()
            n += 1
            if time.perf_counter() - t0 > min_time / repeat:
                break
        times.append((time.perf_counter() - t0) / n)
    return 1e3 * float(np.median(times))


def row(name, ours, peer_name, peer, note=""):
    ratio = f"{peer / ours:5.2f}x" if peer else "  -  "
    peer_s = f"{peer:9.3f}" if peer else "        -"
    print(f"{name:42} {ours:9.3f} ms   {peer_name:28} {peer_s} ms   {ratio}  {note}")


def main():
    rng = np.random.default_rng(0)
    threads = logitkit.get_num_threads()
    print(f"logitkit {logitkit.__version__}, simd {logitkit.simd_level()}, threads {threads}, "
          f"torch {torch.__version__ if torch else 'absent'} (threads {torch.get_num_threads() if torch else '-'})")
    print(f"{'case':42} {'logitkit':>12}   {'peer':28} {'peer':>12}   speedup")

    for n, c in [(4096, 1000), (256, 32000), (65536, 10)]:
        x = rng.normal(size=(n, c)).astype(np.float32) * 3
        y = rng.integers(0, c, n)
        ours = bench(lambda: cross_entropy(x, y))
        peer = None
        note = ""
        if torch is not None:
            tx, ty = torch.from_numpy(x), torch.from_numpy(y)
            peer = bench(lambda: torch.nn.functional.cross_entropy(tx, ty))
            ref = torch.nn.functional.cross_entropy(tx.double(), ty).item()
            note = (f"err vs f64: ours {abs(float(cross_entropy(x, y)) - ref):.1e}, "
                    f"torch {abs(torch.nn.functional.cross_entropy(tx, ty).item() - ref):.1e}")
        row(f"cross_entropy f32 {n}x{c} mean", ours, "torch F.cross_entropy", peer, note)

    for n, c, k in [(64, 128256, 50), (4096, 1000, 5), (4096, 1000, 200)]:
        x = rng.normal(size=(n, c)).astype(np.float32)
        ours = bench(lambda: topk(x, k))
        peer = None
        note = ""
        if torch is not None:
            tx = torch.from_numpy(x)
            peer = bench(lambda: torch.topk(tx, k))
            ov, oi = topk(x, k)
            tv, ti = torch.topk(tx, k)
            diff = oi != ti.numpy()
            # Indices may differ only among equal values (logitkit: lower index first).
            note = (f"values equal: {np.array_equal(ov, tv.numpy())}, index differences only at ties: "
                    f"{bool(np.all(ov[diff] == np.take_along_axis(x, ti.numpy(), -1)[diff]))}")
        row(f"topk f32 {n}x{c} k={k}", ours, "torch.topk", peer, note)
        npk = bench(lambda: np.take_along_axis(x, np.argpartition(-x, k, axis=-1)[:, :k], -1), repeat=3)
        row(f"  (same, NumPy argpartition, unsorted)", ours, "np.argpartition", npk)

    n, c = 50000, 100
    y = rng.integers(0, c, n)
    x = rng.normal(size=(n, c))
    x[np.arange(n), y] += 2.0
    x = (x * 3).astype(np.float32)
    ours = bench(lambda: fit_temperature(x, y), repeat=3)
    t = fit_temperature(x, y)
    if scipy is not None:
        x64 = x.astype(np.float64)

        def nll(u):
            z = x64 * np.exp(-u)
            m = z.max(axis=1, keepdims=True)
            lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
            return float(np.mean(lse - z[np.arange(n), y]))

        def scipy_fit():
            return float(np.exp(scipy.optimize.minimize_scalar(nll, bounds=(-7, 7), method="bounded",
                                                              options={"xatol": 1e-8}).x))

        peer = bench(scipy_fit, repeat=3)
        note = f"T ours {t:.8f}, scipy {scipy_fit():.8f}"
        if torch is not None:
            tx, ty = torch.from_numpy(x), torch.from_numpy(y)

            def torch_lbfgs():
                lt = torch.zeros(1, requires_grad=True)
                opt = torch.optim.LBFGS([lt], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

                def closure():
                    opt.zero_grad()
                    loss = torch.nn.functional.cross_entropy(tx / lt.exp(), ty)
                    loss.backward()
                    return loss

                opt.step(closure)
                return float(lt.detach().exp())

            tp = bench(torch_lbfgs, repeat=3)
            row(f"fit_temperature f32 {n}x{c}", ours, "torch LBFGS on log T", tp, f"T torch {torch_lbfgs():.8f}")
    else:
        peer, note = None, ""
    row(f"fit_temperature f32 {n}x{c}", ours, "scipy minimize_scalar+NumPy", peer, note)

    p = logitkit.softmax(x, temperature=t)
    ours = bench(lambda: expected_calibration_error(p, y))

    def np_ece():
        conf = p.max(axis=1)
        acc = p.argmax(axis=1) == y
        b = np.clip(np.ceil(conf * 15).astype(int) - 1, 0, 14)
        cnt = np.bincount(b, minlength=15)
        return np.sum(np.abs(np.bincount(b, acc, 15) - np.bincount(b, conf, 15))) / len(y) + 0 * cnt.sum()

    row(f"expected_calibration_error {n}x{c}", ours, "NumPy bincount", bench(np_ece),
        f"diff {abs(ours and expected_calibration_error(p, y) - np_ece()):.1e}")

    x = rng.normal(size=(1 << 22,)).astype(np.float32) * 10
    ours = bench(lambda: sigmoid(x))
    if scipy is not None:
        row("sigmoid f32 4M", ours, "scipy.special.expit", bench(lambda: scipy.special.expit(x)))
    if torch is not None:
        tx = torch.from_numpy(x)
        row("sigmoid f32 4M", ours, "torch.sigmoid", bench(lambda: torch.sigmoid(tx)))

    x = rng.normal(size=(4096, 1000)).astype(np.float32)

    def np_sparsemax():
        s = -np.sort(-x, axis=-1)
        cum = np.cumsum(s, axis=-1)
        k = np.arange(1, x.shape[-1] + 1, dtype=np.float32)
        kz = (1 + k * s > cum).sum(axis=-1, keepdims=True)
        tau = (np.take_along_axis(cum, kz - 1, -1) - 1) / kz
        return np.maximum(x - tau, 0)

    ours = bench(lambda: sparsemax(x))
    row("sparsemax f32 4096x1000", ours, "NumPy sort-based", bench(np_sparsemax, repeat=3),
        f"max diff {np.abs(sparsemax(x) - np_sparsemax()).max():.1e}")


if __name__ == "__main__":
    main()
