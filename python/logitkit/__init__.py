"""logitkit: logits to probabilities and tokens, fast and exact, on the CPU.

The numerical work happens in Rust (``logitkit._native``); this module only re-exports it.
"""

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
