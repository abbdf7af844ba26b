"""P13 against vLLM's penalty formulas, written out here in PyTorch as vLLM applies them (vLLM
itself needs a GPU build and is not installed): over the whole vocabulary in float32, the
repetition penalty as ``where(z > 0, z / r, z * r)`` with ``r = 1`` for unseen tokens, then
``z -= f * output_counts`` and ``z -= p * output_mask``. logitkit applies the same operations
in float32 to the tokens they change, so the results must agree bit for bit."""

import numpy as np
import pytest

import logitkit

torch = pytest.importorskip("torch")


def vllm_penalties(logits, prompt, output, rep, freq, pres):
    num_seqs, vocab = logits.shape
    prompt_mask = torch.zeros((num_seqs, vocab), dtype=torch.bool)
    counts = torch.zeros((num_seqs, vocab), dtype=torch.long)
    for i in range(num_seqs):
        prompt_mask[i, prompt[i]] = True
        counts[i].index_add_(0, torch.as_tensor(output[i], dtype=torch.long),
                             torch.ones(len(output[i]), dtype=torch.long))
    output_mask = counts > 0
    r = torch.as_tensor(rep, dtype=torch.float32)[:, None].repeat(1, vocab)
    r[~(prompt_mask | output_mask)] = 1.0
    z = torch.where(logits > 0, logits / r, logits * r)
    z = z - torch.as_tensor(freq, dtype=torch.float32)[:, None] * counts
    z = z - torch.as_tensor(pres, dtype=torch.float32)[:, None] * output_mask
    return z


@pytest.mark.parametrize("seed", range(12))
def test_p13_penalties_match_vllms_formulas_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    rows, vocab = 4, int(rng.integers(50, 3000))
    x = (rng.normal(size=(rows, vocab)) * 4).astype(np.float32)
    prompt = [rng.integers(0, vocab, int(rng.integers(0, 40))).tolist() for _ in range(rows)]
    # Long outputs on small vocabularies take the pass over marks, short ones the sparse path.
    output = [rng.integers(0, vocab, int(rng.integers(0, 600))).tolist() for _ in range(rows)]
    rep = rng.uniform(0.5, 2.0, rows)
    freq = rng.normal(size=rows)
    pres = rng.normal(size=rows)
    got = logitkit.filter_logits(x, repetition_penalty=rep, frequency_penalty=freq,
                                 presence_penalty=pres, prompt_tokens=prompt,
                                 output_tokens=output)
    want = vllm_penalties(torch.from_numpy(x), prompt, output, rep, freq, pres).numpy()
    np.testing.assert_array_equal(got, want)


def test_p13_stateful_sampler_applies_vllms_formulas_to_its_history():
    rng = np.random.default_rng(99)
    vocab = 500
    x = (rng.normal(size=(1, vocab)) * 3).astype(np.float32)
    s = logitkit.Sampler(temperature=0.0, repetition_penalty=1.3, frequency_penalty=0.4,
                         presence_penalty=0.2, prompt_tokens=[[1, 2, 3]], seed=0)
    history = rng.integers(0, vocab, 2000).tolist()
    s.accept([history])
    tok = int(s(x)[0])
    want = vllm_penalties(torch.from_numpy(x), [[1, 2, 3]], [history], [1.3], [0.4], [0.2])
    assert tok == int(torch.argmax(want[0]))
