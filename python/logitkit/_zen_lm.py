"""A tiny word-level language model built at run time from the Zen of Python (``import this``
ships it with every Python), so the sampling demo needs no download and no arguments.

Next-word logits are log bigram counts with add-0.02 smoothing; "\\n" is a token, so generated
text has lines. Only the demo uses this.
"""

from __future__ import annotations

import codecs
import re
from typing import Dict, List, Tuple

import numpy as np


def zen_text() -> str:
    """The Zen of Python, decoded from the standard library's ``this`` module without printing."""
    import importlib.util

    spec = importlib.util.find_spec("this")
    if spec is None or spec.origin is None:
        raise RuntimeError("the standard library module 'this' is missing")
    with open(spec.origin, encoding="utf-8") as f:
        src = f.read()
    encoded = re.search(r's = """(.*?)"""', src, re.S)
    if encoded is None:
        raise RuntimeError("cannot read the Zen of Python from 'this'")
    return codecs.decode(encoded.group(1), "rot13")


class BigramModel:
    """Word bigram model: ``logits(word)`` gives next-word logits over the vocabulary.

    Parameters
    ----------
    text : str
        The training text (its first line, a title, is skipped); words and ``.,!`` are tokens,
        and so is each line end (``"\\n"``).
    smoothing : float, default 0.02
        Added to every bigram count before the logarithm.

    Examples
    --------
    >>> from logitkit.toy import BigramModel
    >>> lm = BigramModel("title\\na rose is a rose\\n")
    >>> lm.vocab
    ['\\n', 'a', 'is', 'rose']
    >>> lm.vocab[int(lm.logits("a").argmax())]
    'rose'
    """

    def __init__(self, text: str, smoothing: float = 0.02) -> None:
        words: List[str] = []
        for line in text.strip().splitlines()[1:]:  # skip the title line
            words.extend(re.findall(r"[\w'*-]+|[.,!]", line.lower()))
            words.append("\n")
        self.vocab: List[str] = sorted(set(words))
        self.index: Dict[str, int] = {w: i for i, w in enumerate(self.vocab)}
        v = len(self.vocab)
        counts = np.full((v, v), smoothing)
        for a, b in zip(words, words[1:]):
            counts[self.index[a], self.index[b]] += 1.0
        self.table = np.log(counts).astype(np.float32)
        starts = [words[0]] + [b for a, b in zip(words, words[1:]) if a == "\n"]
        self.starts: List[str] = starts

    def logits(self, word: str) -> np.ndarray:
        return self.table[self.index[word]]

    def generate(self, first: str, lines: int, max_words: int, sampler) -> Tuple[str, float]:
        """Text from ``first`` until ``lines`` line ends or ``max_words``; returns the text and
        the mean log-probability of the sampled words."""
        out = [first]
        logps = []
        word = first
        done = 0
        for _ in range(max_words):
            token, logp = sampler(self.logits(word))
            word = self.vocab[int(token)]
            logps.append(float(logp))
            if word == "\n":
                done += 1
                if done >= lines:
                    break
            out.append(word)
        text = " ".join(out)
        text = re.sub(r" ([.,!])", r"\1", text).replace(" \n ", "\n").replace("\n ", "\n")
        return text.strip(), (sum(logps) / len(logps) if logps else 0.0)
