"""Speed of the decoding-time pipeline (issue 18's targets), as ratios measured side by side.

Each contender runs in a process of its own (so that one library's threads never slow
another's), one round after another with the order of the contenders alternated, and the
median over rounds of each contender's median call time is reported. Threads are pinned
(``--threads``, default 2) for logitkit and torch.

    python benches/pipeline.py [--rounds 5] [--threads 2] [--quick] [--out benches/results]

Contenders per shape (float32 logits, 32000 to 128256 tokens):
- ``plain``: ``sample(temperature=0.8, top_p=0.9)``;
- ``features``: the same with every P11-P13 feature on: a token bitmask, 20 logit_bias
  entries, 200 bad words of 1-3 tokens, min_tokens with a stop token, repetition, frequency and
  presence penalties over a 512-token prompt and a 256-token output history;
- ``defaults``: every new parameter passed explicitly at its default;
- ``logprobs`` / ``top20``: ``return_logprobs=True`` / ``top_logprobs=20``;
- ``token_logprobs`` against ``logsumexp`` of the same logits;
- ``sampler_10`` / ``sampler_100k``: a ``Sampler`` step with the three penalties after 10 or
  100,000 accepted tokens (Zipf-distributed ids, as text is);
- ``copy``: ``numpy.copyto`` of the logits, the floor of any processing (the caller's array
  is never changed, so processed logits need one copy); ``bitmask``: a token bitmask alone;
- ``hf``: Hugging Face's processor chain on torch (RepetitionPenalty, NoBadWords, SequenceBias,
  Temperature, TopP, then ``torch.multinomial``) against ``hf_work``, logitkit doing the same
  work in one ``sample`` call.
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

SHAPES = [(1, 128256), (8, 128256), (64, 32000)]


def inputs(rows: int, vocab: int):
    import numpy as np

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((rows, vocab)) * 3).astype(np.float32)
    words = (vocab + 31) // 32
    mask = np.full((rows, words), -1, dtype=np.int32)
    mask[:, 100:300] = 0x55555555
    bias = {int(i): float(rng.normal()) for i in rng.integers(0, vocab, 20)}
    bad = [[int(t) for t in rng.integers(0, vocab, 1 + i % 3)] for i in range(200)]
    prompt = rng.integers(0, vocab, (rows, 512))
    output = rng.integers(0, vocab, (rows, 256))
    return x, mask, bias, bad, prompt, output


def zipf_tokens(n: int, vocab: int, seed: int = 1):
    import numpy as np

    rng = np.random.default_rng(seed)
    return (rng.zipf(1.2, size=n) - 1) % vocab


def contender(name: str, rows: int, vocab: int, threads: int):
    """The function to time for `name` (imports only what it needs)."""
    import numpy as np

    x, mask, bias, bad, prompt, output = inputs(rows, vocab)
    if name == "hf":
        import torch
        from transformers import (
            LogitsProcessorList,
            NoBadWordsLogitsProcessor,
            RepetitionPenaltyLogitsProcessor,
            SequenceBiasLogitsProcessor,
            TemperatureLogitsWarper,
            TopPLogitsWarper,
        )

        torch.set_num_threads(threads)
        procs = LogitsProcessorList(
            [
                NoBadWordsLogitsProcessor(bad, eos_token_id=0),
                SequenceBiasLogitsProcessor({(t,): b for t, b in bias.items()}),
                RepetitionPenaltyLogitsProcessor(1.1),
                TemperatureLogitsWarper(0.8),
                TopPLogitsWarper(0.9),
            ]
        )
        ids = torch.from_numpy(np.concatenate([prompt, output], axis=1))
        scores = torch.from_numpy(x)
        gen = torch.Generator().manual_seed(0)

        def run():
            s = procs(ids, scores.clone())
            return torch.multinomial(torch.softmax(s, dim=-1), 1, generator=gen)

        return run
    import logitkit

    logitkit.set_num_threads(threads)
    base = dict(temperature=0.8, top_p=0.9, seed=1)
    if name == "plain":
        return lambda: logitkit.sample(x, **base)
    if name == "features":
        kw = dict(token_bitmask=mask, logit_bias=bias, bad_words=bad, min_tokens=300,
                  stop_token_ids=[2], repetition_penalty=1.1, frequency_penalty=0.2,
                  presence_penalty=0.1, prompt_tokens=prompt, output_tokens=output)
        return lambda: logitkit.sample(x, **base, **kw)
    if name == "copy":
        # The floor of any processing: one copy of the logits (processing cannot change the
        # caller's array).
        buf = np.empty_like(x)
        return lambda: np.copyto(buf, x)
    if name == "bitmask":
        return lambda: logitkit.sample(x, **base, token_bitmask=mask)
    if name == "hf_work":
        kw = dict(logit_bias=bias, bad_words=bad, repetition_penalty=1.1,
                  prompt_tokens=prompt, output_tokens=output)
        return lambda: logitkit.sample(x, **base, **kw)
    if name == "defaults":
        kw = dict(return_logprobs=False, top_logprobs=0, logprobs_mode="sampled",
                  allowed_token_ids=None, token_bitmask=None, bad_words=None, min_tokens=0,
                  stop_token_ids=None, logit_bias=None, repetition_penalty=1.0,
                  frequency_penalty=0.0, presence_penalty=0.0, prompt_tokens=None,
                  output_tokens=None)
        return lambda: logitkit.sample(x, **base, **kw)
    if name == "logprobs":
        return lambda: logitkit.sample(x, **base, return_logprobs=True)
    if name == "top20":
        return lambda: logitkit.sample(x, **base, top_logprobs=20)
    if name == "token_logprobs":
        ids = np.arange(rows) % vocab
        return lambda: logitkit.token_logprobs(x, ids)
    if name == "logsumexp":
        return lambda: logitkit.logsumexp(x)
    if name.startswith("sampler_"):
        n = 100_000 if name == "sampler_100k" else 10
        s = logitkit.Sampler(temperature=0.8, top_p=0.9, repetition_penalty=1.1,
                             frequency_penalty=0.2, presence_penalty=0.1, seed=1)
        toks = zipf_tokens(n, vocab)
        s.accept([toks.tolist()] * rows)
        history = [len(a) for a in s.output_tokens]

        def step():
            s(x)

        step.history = history  # type: ignore[attr-defined]
        return step
    raise ValueError(name)


def worker(name: str, rows: int, vocab: int, threads: int, calls: int) -> None:
    """Prints the median seconds per call of one contender (run in its own process)."""
    f = contender(name, rows, vocab, threads)
    for _ in range(3):
        f()
    times = []
    deadline = time.perf_counter() + 3.0
    while len(times) < calls and (time.perf_counter() < deadline or len(times) < 5):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"median": statistics.median(times)}))


def measure(names, rows, vocab, threads, rounds, calls):
    """Median over rounds of each contender's median, rounds alternating the order."""
    # NumPy's OpenBLAS pool spins on the cores after a BLAS call: one thread, as for torch.
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", LOGITKIT_NUM_THREADS=str(threads),
               OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS="1")
    got = {n: [] for n in names}
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for n in order:
            out = subprocess.run(
                [sys.executable, __file__, "--worker", n, str(rows), str(vocab), str(threads),
                 str(calls)],
                capture_output=True, text=True, env=env, check=True,
            )
            got[n].append(json.loads(out.stdout.strip().splitlines()[-1])["median"])
    return {n: statistics.median(v) for n, v in got.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--quick", action="store_true", help="3 rounds, first shape only")
    p.add_argument("--no-hf", action="store_true", help="skip Hugging Face (torch)")
    p.add_argument("--out", default=None, help="folder to write pipeline.md into")
    p.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        n, rows, vocab, threads, calls = a.worker
        worker(n, int(rows), int(vocab), int(threads), int(calls))
        return
    rounds = 3 if a.quick else a.rounds
    shapes = SHAPES[:1] if a.quick else SHAPES
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401

        have_hf = not a.no_hf
    except ImportError:
        have_hf = False
    import logitkit

    lines = [
        f"logitkit {logitkit.__version__}, SIMD {logitkit.simd_level()}, {a.threads} threads, "
        f"{os.cpu_count()} CPUs; float32; each contender in its own process, {rounds} rounds "
        "alternating the order, median of medians",
        "",
        "| shape | target | measured | ratio | bound |",
        "|---|---|---|---|---|",
    ]

    def row(shape, what, num, den, t, bound, higher_is_better=False):
        ratio = t[den] / t[num] if higher_is_better else t[num] / t[den]
        ok = ratio >= bound if higher_is_better else ratio <= bound
        mark = "met" if ok else "MISSED"
        lines.append(
            f"| {shape} | {what} | {t[num] * 1e6:.1f} vs {t[den] * 1e6:.1f} µs | {ratio:.3f}x "
            f"| {'>=' if higher_is_better else '<='} {bound}x ({mark}) |"
        )
        print(lines[-1], flush=True)

    for rows, vocab in shapes:
        shape = f"{rows}x{vocab}"
        names = ["plain", "features", "bitmask", "copy", "defaults", "logprobs", "top20",
                 "token_logprobs", "logsumexp", "sampler_10", "sampler_100k", "hf_work"]
        if have_hf:
            names.append("hf")
        t = measure(names, rows, vocab, a.threads, rounds, a.calls)
        row(shape, "every P11-P13 feature / plain", "features", "plain", t, 1.3)
        row(shape, "a token bitmask alone / plain", "bitmask", "plain", t, 1.3)
        t["plain+copy"] = t["plain"] + t["copy"]
        row(shape, "every feature / (plain + one copy of the logits)", "features", "plain+copy",
            t, 1.3)
        row(shape, "new parameters at their defaults / plain", "defaults", "plain", t, 1.03)
        row(shape, "top_logprobs=20 / plain", "top20", "plain", t, 1.10)
        row(shape, "top_logprobs=20 / return_logprobs", "top20", "logprobs", t, 1.10)
        row(shape, "token_logprobs / logsumexp", "token_logprobs", "logsumexp", t, 1.2)
        row(shape, "Sampler step after 100k / after 10 tokens", "sampler_100k", "sampler_10", t, 1.1)
        if have_hf:
            row(shape, "HF processor chain on torch / logitkit", "hf_work", "hf", t, 50, True)
    if a.out:
        Path(a.out).mkdir(parents=True, exist_ok=True)
        (Path(a.out) / "pipeline.md").write_text("\n".join(lines) + "\n")
        print(f"wrote {Path(a.out) / 'pipeline.md'}")


if __name__ == "__main__":
    main()
