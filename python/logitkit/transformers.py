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
    appended since. Later calls keep that prompt length while they can belong to the same
    generation: the same number of rows, each starting with one of the first call's rows. So
    beam search (which reorders and duplicates rows) and assisted or prompt-lookup decoding
    (which append several tokens at once and roll back) count the generated tokens as output.
    A call that cannot belong to it starts a new generation (a new prompt), so one processor
    can serve several ``generate`` calls in turn; call :meth:`reset` before a ``generate``
    whose prompts start with the previous prompts (a chat's next turn), which would otherwise
    be read as a continuation.

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
    Call ``generate`` with ``do_sample=True`` and its own warpers off (``top_k=0``,
    ``temperature=1.0``, ``top_p=1.0``) so that they do not apply a second time: with
    ``do_sample=False`` it takes the argmax of the processed scores, which is greedy decoding
    whatever the temperature, top-p or XTC given here. Unlike Hugging
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
        self._prompts: set[bytes] = set()
        self._rows = 0
        self._last = np.zeros((0, 0), np.int64)

    def reset(self) -> None:
        """Forget the prompt: the next call starts a new generation.

        Examples
        --------
        >>> import torch
        >>> from logitkit.transformers import LogitsProcessor
        >>> proc = LogitsProcessor(frequency_penalty=1.0)
        >>> _ = proc(torch.tensor([[0, 1]]), torch.zeros(1, 4))
        >>> proc(torch.tensor([[0, 1, 2]]), torch.zeros(1, 4)).tolist()  # 2 was generated
        [[0.0, 0.0, -1.0, 0.0]]
        >>> proc.reset()
        >>> proc(torch.tensor([[0, 1, 2]]), torch.zeros(1, 4)).tolist()  # a new prompt
        [[0.0, 0.0, 0.0, 0.0]]
        """
        self._prompt_len = None
        self._prompts = set()
        self._rows = 0
        self._last = np.zeros((0, 0), np.int64)

    def _continues(self, ids: np.ndarray) -> bool:
        p = self._prompt_len
        if not (
            p is not None
            and ids.shape[0] == self._rows
            and ids.shape[-1] >= p
            and all(row[:p].tobytes() in self._prompts for row in ids)
        ):
            return False
        if p > 0:
            return True
        # An empty prompt (`generate(inputs_embeds=...)`) starts every row: the call continues
        # that generation only if each row agrees with one of the last call's rows as far as
        # both go (a next `generate`'s prompt does not).
        m = min(ids.shape[-1], self._last.shape[-1])
        seen = {row[:m].tobytes() for row in self._last}
        return all(row[:m].tobytes() in seen for row in ids)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        ids = np.asarray(input_ids.detach().cpu() if hasattr(input_ids, "detach") else input_ids)
        if ids.ndim == 0 or ids.dtype.kind not in "iu":
            raise TypeError(
                "input_ids must be integer token ids of shape (batch, length), got an array of "
                f"shape {ids.shape} and dtype {ids.dtype}"
            )
        # (batch, 0) when `generate` starts from `inputs_embeds`: every row's prompt is empty.
        rows = int(np.prod(ids.shape[:-1], dtype=np.int64))
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(rows, ids.shape[-1])
        if not self._continues(ids):
            self._prompt_len = ids.shape[-1]
            self._prompts = {row.tobytes() for row in ids}
            self._rows = ids.shape[0]
        if self._prompt_len == 0:
            self._last = ids.copy()
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
