"""A Hugging Face ``LogitsProcessor`` that runs logitkit's decoding pipeline (contract P19).

``transformers`` is never imported here, and ``torch`` only when a call needs it: importing
this module costs nothing, and the processor works wherever ``generate`` accepts a callable
``(input_ids, scores) -> scores``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._native import filter_logits

#: The parameters of :func:`logitkit.filter_logits` the processor takes (the histories come
#: from ``input_ids``).
PARAMETERS = (
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "allowed_token_ids",
    "token_bitmask",
    "bad_words",
    "min_tokens",
    "stop_token_ids",
    "logit_bias",
    "repetition_penalty",
    "frequency_penalty",
    "presence_penalty",
    "typical_p",
    "top_n_sigma",
    "epsilon_cutoff",
    "eta_cutoff",
    "xtc_threshold",
    "xtc_probability",
    "dynatemp_range",
    "dynatemp_exponent",
    "dry_multiplier",
    "dry_base",
    "dry_allowed_length",
    "dry_penalty_last_n",
    "dry_sequence_breakers",
)


class LogitsProcessor:
    """Masks, logit bias, penalties, temperature, top-k, top-p and min-p for ``generate``.

    ``model.generate(..., logits_processor=[LogitsProcessor(**params)])`` decodes with the
    scores :func:`logitkit.filter_logits` gives: each kept token's processed logit divided by
    the temperature, removed tokens ``-inf``. The histories come from ``input_ids``: the
    prompt is what the first call sees (its length is kept), the output tokens are what was
    appended since. A call whose ``input_ids`` are not the previous call's with one token
    appended starts a new generation (a new prompt), so one processor can serve several
    ``generate`` calls in turn.

    Parameters
    ----------
    **params
        Any of ``temperature``, ``top_k``, ``top_p``, ``min_p``, ``allowed_token_ids``,
        ``token_bitmask``, ``bad_words``, ``min_tokens``, ``stop_token_ids``, ``logit_bias``,
        ``repetition_penalty``, ``frequency_penalty``, ``presence_penalty``, and the samplers
        after min-p (``typical_p``, ``top_n_sigma``, ``epsilon_cutoff``, ``eta_cutoff``,
        ``xtc_threshold``, ``xtc_probability``, ``dynatemp_range``, ``dynatemp_exponent``),
        and DRY's (``dry_multiplier``, ``dry_base``, ``dry_allowed_length``,
        ``dry_penalty_last_n``, ``dry_sequence_breakers``), with the meaning they have in :func:`logitkit.sample`. XTC's coin is not tossed here:
        the scores are the law of XTC's outcome (see :func:`logitkit.filter_logits`), so
        ``generate``'s draw from them samples as XTC does.

    Notes
    -----
    Leave ``generate``'s own warpers off (``do_sample=False``, or ``top_k=0``,
    ``temperature=1.0``, ``top_p=1.0``) so that they do not apply a second time. Unlike Hugging
    Face's ``NoBadWordsLogitsProcessor``, a bad word's prefix is matched against the generated
    tokens only, not the prompt (contract P11).

    Raises
    ------
    TypeError
        For a parameter that is not one of the above.

    Examples
    --------
    >>> import torch
    >>> from logitkit.transformers import LogitsProcessor
    >>> proc = LogitsProcessor(repetition_penalty=2.0, logit_bias={3: -5.0})
    >>> scores = proc(torch.tensor([[1, 2]]), torch.tensor([[0.0, 2.0, 1.0, 1.5]]))
    >>> scores.tolist()
    [[0.0, 1.0, 0.5, -3.5]]
    """

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(PARAMETERS))
        if unknown:
            raise TypeError(
                f"LogitsProcessor got unexpected parameters {unknown}; it takes {list(PARAMETERS)}"
            )
        self.params = params
        self._prompt_len: int | None = None
        self._last_ids: np.ndarray | None = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        ids = np.asarray(input_ids.detach().cpu() if hasattr(input_ids, "detach") else input_ids)
        length = ids.shape[-1]
        last = self._last_ids
        continues = (
            last is not None
            and ids.shape[:-1] == last.shape[:-1]
            and length == last.shape[-1] + 1
            and np.array_equal(ids[..., :-1], last)
        )
        if not continues:
            self._prompt_len = length
        # A copy: the caller may reuse the buffer behind input_ids.
        self._last_ids = np.array(ids)
        out = filter_logits(
            scores,
            prompt_tokens=ids[:, : self._prompt_len],
            output_tokens=ids[:, self._prompt_len :],
            **self.params,
        )
        if hasattr(scores, "detach") and not hasattr(out, "detach"):
            import torch

            out = torch.from_numpy(np.ascontiguousarray(out)).to(scores.device)
        return out
