"""logitkit: logits to probabilities and tokens, fast and exact, on the CPU.

The numerical work happens in Rust (``logitkit._native``); this module only re-exports it.
The submodules (``ops``, ``loss``, ``calibration``, ``toy``, ``transformers``) are imported on
first use, so that ``logitkit.transformers.LogitsProcessor`` works after ``import logitkit``
alone and ``transformers`` itself is imported only when that module is.
"""

import importlib as _importlib

from ._native import (
    Sampler,
    __version__,
    filter_logits,
    get_num_threads,
    log_softmax,
    logsumexp,
    sample,
    set_num_threads,
    simd_level,
    softmax,
    token_logprobs,
    verify_draft,
)
from ._output import SampleOutput

__all__ = [
    "SampleOutput",
    "Sampler",
    "__version__",
    "filter_logits",
    "get_num_threads",
    "log_softmax",
    "logsumexp",
    "sample",
    "set_num_threads",
    "simd_level",
    "softmax",
    "token_logprobs",
    "verify_draft",
]

_SUBMODULES = frozenset({"calibration", "loss", "ops", "toy", "transformers"})


def __getattr__(name: str) -> object:
    if name in _SUBMODULES:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBMODULES)
