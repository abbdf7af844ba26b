"""A tiny word-level bigram language model of the Zen of Python, for examples and the demo.

It is built at run time from the standard library's ``this`` module, so it needs no download.
Next-word logits are log bigram counts with add-0.02 smoothing; ``"\\n"`` is a token.

Examples
--------
>>> from logitkit.toy import zen_bigram
>>> lm = zen_bigram()
>>> lm.logits("beautiful").shape == (len(lm.vocab),)
True
"""

from __future__ import annotations

from ._zen_lm import BigramModel, zen_text

__all__ = ["BigramModel", "zen_bigram"]


def zen_bigram() -> BigramModel:
    """The bigram model of the Zen of Python.

    Returns
    -------
    BigramModel
        ``vocab`` (list of words), ``index`` (word -> id) and ``logits(word)`` (float32 next-word
        logits over ``vocab``).

    Examples
    --------
    >>> from logitkit.toy import zen_bigram
    >>> "beautiful" in zen_bigram().index
    True
    """
    return BigramModel(zen_text())
