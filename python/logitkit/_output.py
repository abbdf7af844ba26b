"""The named tuple ``sample`` returns with ``top_logprobs > 0`` (contract P15)."""

from __future__ import annotations

from typing import Any, NamedTuple


class SampleOutput(NamedTuple):
    """What :func:`logitkit.sample` returns when ``top_logprobs > 0``.

    Attributes
    ----------
    tokens : int64 array (or scalar for 1-D logits), shape ``logits.shape[:-1]``
        The drawn token of each row.
    logprobs : float64 array, shape ``logits.shape[:-1]``
        Each token's natural-log probability under the distribution ``logprobs_mode`` names.
    ranks : int64 array, shape ``logits.shape[:-1]``
        The number of tokens whose logprob is at least the chosen token's (1 = most probable).
    top_ids : int64 array, shape ``logits.shape[:-1] + (n,)``
        The ``n`` most probable token ids, by logprob descending, then id ascending.
    top_logprobs : float64 array, shape ``logits.shape[:-1] + (n,)``
        Their logprobs.

    Examples
    --------
    >>> import logitkit
    >>> out = logitkit.sample([[0.0, 2.0, 1.0]], temperature=0.0, top_logprobs=3)
    >>> out.tokens.tolist(), out.top_ids.tolist()
    ([1], [[1, 0, 2]])
    """

    tokens: Any
    logprobs: Any
    ranks: Any
    top_ids: Any
    top_logprobs: Any
