"""P19: logitkit.transformers.LogitsProcessor against Hugging Face's own processors, and in
``generate`` with a tiny randomly initialised GPT-2 built from a config (no download)."""

import numpy as np
import pytest

import logitkit
from logitkit.transformers import LogitsProcessor

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from transformers import (  # noqa: E402
    GPT2Config,
    GPT2LMHeadModel,
    LogitsProcessorList,
    MinNewTokensLengthLogitsProcessor,
    NoBadWordsLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    SequenceBiasLogitsProcessor,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

V = 97


def hf_chain(prompt_len, rep, bad, bias, min_new, eos, temperature=None, top_p=None):
    procs = [
        NoBadWordsLogitsProcessor(bad, eos_token_id=eos),
        MinNewTokensLengthLogitsProcessor(prompt_len, min_new, eos),
        SequenceBiasLogitsProcessor({(t,): b for t, b in bias.items()}),
        RepetitionPenaltyLogitsProcessor(rep),
    ]
    if temperature is not None:
        procs.append(TemperatureLogitsWarper(temperature))
    if top_p is not None:
        procs.append(TopPLogitsWarper(top_p))
    return LogitsProcessorList(procs)


@pytest.mark.parametrize("seed", range(8))
def test_p13_repetition_penalty_matches_hf(seed):
    rng = np.random.default_rng(seed)
    scores = torch.tensor(rng.normal(size=(3, V)) * 3, dtype=torch.float32)
    ids = torch.tensor(rng.integers(0, V, size=(3, 12)))
    want = RepetitionPenaltyLogitsProcessor(1.3)(ids, scores.clone())
    got = LogitsProcessor(repetition_penalty=1.3)(ids, scores.clone())
    torch.testing.assert_close(torch.as_tensor(got), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("seed", range(8))
def test_p11_bad_words_match_hf(seed):
    rng = np.random.default_rng(seed)
    scores = torch.tensor(rng.normal(size=(2, V)), dtype=torch.float32)
    prompt = rng.integers(50, V, size=(2, 5))  # no bad word starts in the prompt
    gen = rng.integers(0, 10, size=(2, 6))
    ids = torch.tensor(np.concatenate([prompt, gen], axis=1))
    bad = [[int(gen[0, -1]), 3], [7], [int(gen[1, -2]), int(gen[1, -1]), 9], [11, 12]]
    proc = LogitsProcessor(bad_words=bad)
    proc(torch.tensor(prompt), scores.clone())  # the first call fixes the prompt
    # Continue as generate would, one token at a time.
    for step in range(1, gen.shape[1] + 1):
        cur = torch.tensor(np.concatenate([prompt, gen[:, :step]], axis=1))
        got = proc(cur, scores.clone())
    want = NoBadWordsLogitsProcessor(bad, eos_token_id=0)(ids, scores.clone())
    assert torch.equal(torch.isinf(torch.as_tensor(got)), torch.isinf(want))


def test_p11_min_tokens_matches_hf_min_new_tokens():
    rng = np.random.default_rng(1)
    scores = torch.tensor(rng.normal(size=(1, V)), dtype=torch.float32)
    prompt = torch.tensor(rng.integers(0, V, size=(1, 4)))
    proc = LogitsProcessor(min_tokens=2, stop_token_ids=[5])
    hf = MinNewTokensLengthLogitsProcessor(4, 2, 5)
    ids = prompt
    for _ in range(4):
        got = proc(ids, scores.clone())
        want = hf(ids, scores.clone())
        torch.testing.assert_close(torch.as_tensor(got), want)
        ids = torch.cat([ids, torch.tensor([[1]])], dim=1)


def test_p12_logit_bias_matches_hf_sequence_bias():
    rng = np.random.default_rng(2)
    scores = torch.tensor(rng.normal(size=(2, V)), dtype=torch.float32)
    ids = torch.tensor(rng.integers(0, V, size=(2, 3)))
    bias = {3: 2.5, 10: -1.25, 50: float("-inf")}
    want = SequenceBiasLogitsProcessor({(t,): b for t, b in bias.items()})(ids, scores.clone())
    got = LogitsProcessor(logit_bias=bias)(ids, scores.clone())
    torch.testing.assert_close(torch.as_tensor(got), want)


def tiny_gpt2():
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=V, n_positions=64,
                        bos_token_id=0, eos_token_id=1, pad_token_id=1)
    return GPT2LMHeadModel(config).eval()


def test_p19_generate_greedy_same_tokens_and_scores_as_hf_chain():
    model = tiny_gpt2()
    prompt = torch.tensor([[5, 17, 23, 42, 8], [9, 9, 30, 31, 60]])
    rep, bias, bad, min_new, eos = 1.5, {4: 1.0, 20: -2.0}, [[2], [13, 14]], 3, 1
    kw = dict(max_new_tokens=12, do_sample=False, output_scores=True,
              return_dict_in_generate=True, pad_token_id=1)
    ours = model.generate(
        prompt,
        logits_processor=[LogitsProcessor(repetition_penalty=rep, logit_bias=bias, bad_words=bad,
                                          min_tokens=min_new, stop_token_ids=[eos])],
        **kw,
    )
    theirs = model.generate(
        prompt, logits_processor=hf_chain(prompt.shape[1], rep, bad, bias, min_new, eos), **kw
    )
    assert torch.equal(ours.sequences, theirs.sequences)
    assert len(ours.scores) == len(theirs.scores) == 12
    for a, b in zip(ours.scores, theirs.scores):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_p19_scores_with_temperature_and_top_p_match_hf():
    model = tiny_gpt2()
    prompt = torch.tensor([[5, 17, 23, 42, 8]])
    kw = dict(max_new_tokens=6, do_sample=False, output_scores=True,
              return_dict_in_generate=True, pad_token_id=1)
    ours = model.generate(prompt, logits_processor=[LogitsProcessor(repetition_penalty=1.2,
                                                                    temperature=0.7, top_p=0.8)], **kw)
    theirs = model.generate(prompt, logits_processor=LogitsProcessorList(
        [RepetitionPenaltyLogitsProcessor(1.2), TemperatureLogitsWarper(0.7),
         TopPLogitsWarper(0.8)]), **kw)
    assert torch.equal(ours.sequences, theirs.sequences)
    for a, b in zip(ours.scores, theirs.scores):
        assert torch.equal(torch.isinf(a), torch.isinf(b))
        torch.testing.assert_close(a[~torch.isinf(a)], b[~torch.isinf(b)], rtol=1e-5, atol=1e-5)


def test_p19_sampling_with_the_processor_draws_from_logitkits_distribution():
    """softmax of the processed scores is what logitkit.sample draws from."""
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(1, V)).astype(np.float32)
    ids = torch.tensor(rng.integers(0, V, size=(1, 6)))
    proc = LogitsProcessor(temperature=0.8, top_k=20, repetition_penalty=1.1)
    got = torch.as_tensor(proc(ids, torch.tensor(scores))).numpy()
    want = logitkit.filter_logits(scores, temperature=0.8, top_k=20, repetition_penalty=1.1,
                                  prompt_tokens=ids.numpy())
    np.testing.assert_array_equal(got, want)


def test_p19_unknown_parameter_is_a_type_error():
    with pytest.raises(TypeError, match="seed"):
        LogitsProcessor(seed=3)


def test_p19_a_reused_processor_starts_over_on_a_new_prompt():
    # A new prompt one token longer than the last input_ids is not a continuation of them:
    # its tokens are prompt tokens (no frequency penalty), as with a fresh processor.
    torch = pytest.importorskip("torch")
    from logitkit.transformers import LogitsProcessor

    scores = torch.zeros(1, 6)
    used = LogitsProcessor(frequency_penalty=1.0)
    used(torch.tensor([[0, 1]]), scores)
    continued = used(torch.tensor([[0, 1, 2]]), scores)
    assert continued.tolist() == [[0, 0, -1, 0, 0, 0]]  # token 2 was generated
    fresh = LogitsProcessor(frequency_penalty=1.0)(torch.tensor([[3, 3, 4, 5]]), scores)
    assert fresh.tolist() == [[0.0] * 6]
    assert used(torch.tensor([[3, 3, 4, 5]]), scores).tolist() == fresh.tolist()
    # A batch of two: a continuation needs every row to extend its own previous ids.
    two = LogitsProcessor(frequency_penalty=1.0)
    z2 = torch.zeros(2, 6)
    two(torch.tensor([[0, 1], [2, 3]]), z2)
    assert two(torch.tensor([[0, 1, 4], [2, 3, 5]]), z2).tolist() == [
        [0, 0, 0, 0, -1, 0], [0, 0, 0, 0, 0, -1]]
    assert two(torch.tensor([[0, 1, 4, 5], [2, 1, 5, 5]]), z2).tolist() == [[0.0] * 6] * 2


def test_p19_beam_search_keeps_the_prompt_length_of_the_first_call():
    """Beam search reorders and duplicates rows: the generated tokens stay output tokens
    (found by a review: the prompt length was taken again at every step, so frequency
    penalties, min_tokens and bad-word prefixes saw no output)."""
    proc = LogitsProcessor(frequency_penalty=1.0)
    z = torch.zeros((2, 6))
    proc(torch.tensor([[0, 1, 2], [3, 4, 5]]), z.clone())
    proc(torch.tensor([[0, 1, 2, 5], [3, 4, 5, 1]]), z.clone())
    swapped = proc(torch.tensor([[3, 4, 5, 1, 2], [0, 1, 2, 5, 5]]), z.clone())
    assert swapped.tolist() == [[0, -1, -1, 0, 0, 0], [0, 0, 0, 0, 0, -2]]


def test_p19_several_tokens_appended_at_once_are_output_tokens():
    # Assisted and prompt-lookup decoding append several tokens at once, and roll back.
    proc = LogitsProcessor(min_tokens=3, stop_token_ids=[5])
    s = torch.zeros((1, 6))
    assert proc(torch.tensor([[0, 1]]), s.clone())[0, 5] == float("-inf")
    assert proc(torch.tensor([[0, 1, 2, 3, 4]]), s.clone()).tolist() == [[0.0] * 6]
    assert proc(torch.tensor([[0, 1, 2, 3]]), s.clone())[0, 5] == float("-inf")


def test_p19_reset_starts_a_new_generation():
    proc = LogitsProcessor(frequency_penalty=1.0)
    z = torch.zeros((1, 4))
    proc(torch.tensor([[0, 1]]), z)
    assert proc(torch.tensor([[0, 1, 2]]), z).tolist() == [[0, 0, -1, 0]]
    proc.reset()
    assert proc(torch.tensor([[0, 1, 2]]), z).tolist() == [[0.0] * 4]
    assert proc(torch.tensor([[0, 1, 2, 2]]), z).tolist() == [[0, 0, -1, 0]]


class _Recording(LogitsProcessor):
    def __init__(self, **params):
        super().__init__(**params)
        self.calls = []

    def __call__(self, input_ids, scores):
        out = super().__call__(input_ids, scores)
        self.calls.append((input_ids.clone(), scores.clone(), out.clone()))
        return out


@pytest.mark.parametrize(
    "mode",
    [dict(num_beams=3, num_return_sequences=2), dict(prompt_lookup_num_tokens=3)],
    ids=["beam_search", "prompt_lookup"],
)
def test_p19_generate_modes_see_the_histories_of_the_first_prompt(mode):
    """Every call inside generate gives what filter_logits gives with the true prompt length."""
    model = tiny_gpt2()
    prompt = torch.tensor([[5, 17, 23, 5, 17, 23, 42, 8]])
    params = dict(frequency_penalty=0.7, presence_penalty=0.3, repetition_penalty=1.3,
                  min_tokens=4, stop_token_ids=[1], bad_words=[[17, 23]])
    proc = _Recording(**params)
    model.generate(prompt, logits_processor=[proc], max_new_tokens=8, do_sample=False,
                   pad_token_id=1, **mode)
    p = prompt.shape[1]
    assert len(proc.calls) >= 2
    assert max(ids.shape[1] for ids, _, _ in proc.calls) > p + 1
    for ids, scores, out in proc.calls:
        want = logitkit.filter_logits(scores.numpy(), prompt_tokens=ids[:, :p].numpy(),
                                      output_tokens=ids[:, p:].numpy(), **params)
        np.testing.assert_array_equal(out.numpy(), want)


def test_p19_generate_from_inputs_embeds_and_bad_input_ids():
    """P19 (found by a review): `generate(inputs_embeds=...)` passes input_ids of shape
    (batch, 0), which the processor failed to reshape; every generated token is then output
    (no prompt), as with the embeddings' own ids given as prompt-less rows. input_ids that are
    not integers are a TypeError naming them (R7), not truncated."""
    model = tiny_gpt2()
    prompt = torch.tensor([[5, 17, 23, 42, 8], [9, 9, 30, 31, 60]])
    embeds = model.get_input_embeddings()(prompt)
    kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=1)
    proc = LogitsProcessor(repetition_penalty=1.3)
    out = model.generate(inputs_embeds=embeds, logits_processor=[proc], **kw)
    assert out.shape == (2, 6)
    # The same steps by hand: the processor saw each generated prefix as output.
    scores = torch.zeros((2, V))
    first = proc(torch.zeros((2, 0), dtype=torch.long), scores)
    torch.testing.assert_close(first, scores)
    second = proc(out[:, :1], scores + 1.0)
    want = logitkit.filter_logits((scores + 1.0).numpy(), output_tokens=out[:, :1].numpy(),
                                  repetition_penalty=1.3)
    torch.testing.assert_close(second, torch.as_tensor(want))
    # The next generate's prompt is a prompt again, not output of the empty one (found by a
    # review: an empty prompt started every row, so the next call continued it).
    counted = LogitsProcessor(frequency_penalty=1.0, min_tokens=2, stop_token_ids=[0])
    counted(torch.zeros((2, 0), dtype=torch.long), scores)
    counted(out[:, :2], scores)
    later = counted(prompt, scores)
    fresh = LogitsProcessor(frequency_penalty=1.0, min_tokens=2, stop_token_ids=[0])(prompt, scores)
    torch.testing.assert_close(later, fresh)
    assert later[0, 0] == -float("inf")
    for bad in (torch.zeros((2, 3)), np.array([["a", "b"]]), torch.tensor(3)):
        with pytest.raises(TypeError, match="input_ids must be integer token ids"):
            LogitsProcessor(repetition_penalty=1.3)(bad, scores)


def test_p3_ties_differ_from_hugging_faces_warpers_as_documented():
    """P3 (docs/behaviour.md): among tied tokens, logitkit's top-k keeps exactly k and top-p the
    lower ids; Hugging Face's TopKLogitsWarper keeps every token tied with the k-th and its
    TopPLogitsWarper the higher ids. Without ties, both give the same kept sets."""
    from transformers import TopKLogitsWarper

    def hf_kept(warper, x):
        return np.isfinite(warper(None, torch.from_numpy(np.asarray(x, np.float32))[None])[0].numpy())

    x = [1.0, 2.0, 2.0, 0.0]
    assert np.flatnonzero(np.isfinite(logitkit.filter_logits(x, top_k=1))).tolist() == [1]
    assert np.flatnonzero(hf_kept(TopKLogitsWarper(1), x)).tolist() == [1, 2]
    z = [0.0] * 4
    assert np.flatnonzero(np.isfinite(logitkit.filter_logits(z, top_p=0.5))).tolist() == [0, 1]
    assert np.flatnonzero(hf_kept(TopPLogitsWarper(0.5), z)).tolist() == [2, 3]
    rng = np.random.default_rng(3)
    for _ in range(20):
        r = rng.standard_normal(V).astype(np.float32)
        for ours, theirs in (
            (dict(top_k=5), TopKLogitsWarper(5)),
            (dict(top_p=0.7), TopPLogitsWarper(0.7)),
        ):
            np.testing.assert_array_equal(np.isfinite(logitkit.filter_logits(r, **ours)), hf_kept(theirs, r))
