from typing import Any, List, Literal, Mapping, Optional, Sequence, Tuple, Union, final, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

__version__: str
__all__ = [
    "__version__",
    "softmax",
    "log_softmax",
    "logsumexp",
    "set_num_threads",
    "get_num_threads",
    "simd_level",
    "sample",
    "Sampler",
    "filter_logits",
    "token_logprobs",
    "verify_draft",
    "_verify_draft_uniforms",
    "cross_entropy",
    "fit_temperature",
    "expected_calibration_error",
    "calibration_bins",
    "topk",
    "sparsemax",
    "sigmoid",
    # PyO3 lists every function the module adds in __all__, this test hook included.
    "_internal_error_for_tests",
]

_Float = Union[np.float16, np.float32, np.float64]

def softmax(
    x: ArrayLike,
    axis: Optional[int] = -1,
    *,
    temperature: Union[float, ArrayLike] = 1.0,
    out: Optional[NDArray[_Float]] = None,
) -> NDArray[_Float]: ...
def log_softmax(
    x: ArrayLike,
    axis: Optional[int] = -1,
    *,
    temperature: Union[float, ArrayLike] = 1.0,
    out: Optional[NDArray[_Float]] = None,
) -> NDArray[_Float]: ...
def logsumexp(
    x: ArrayLike, axis: Optional[int] = -1, *, keepdims: bool = False
) -> Union[NDArray[_Float], _Float]: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def simd_level() -> str: ...

_FloatParam = Union[float, ArrayLike]
_IntParam = Union[int, ArrayLike]
_Tokens = Union[np.int64, NDArray[np.int64]]
_Logprobs = Union[np.float64, NDArray[np.float64]]

_Ids = Sequence[int]
_Histories = Union[Sequence[Sequence[int]], ArrayLike]
_Mode = Literal["sampled", "processed", "raw"]

@overload
def sample(
    logits: ArrayLike,
    *,
    temperature: _FloatParam = 1.0,
    top_k: _IntParam = 0,
    top_p: _FloatParam = 1.0,
    min_p: _FloatParam = 0.0,
    seed: Union[None, int, ArrayLike] = None,
    return_logprobs: Literal[False] = False,
    top_logprobs: Literal[0] = 0,
    logprobs_mode: _Mode = "sampled",
    allowed_token_ids: Optional[Union[_Ids, Sequence[Optional[_Ids]]]] = None,
    token_bitmask: Optional[ArrayLike] = None,
    bad_words: Optional[Sequence[_Ids]] = None,
    min_tokens: _IntParam = 0,
    stop_token_ids: Optional[_Ids] = None,
    logit_bias: Optional[Union[Mapping[int, float], Sequence[Optional[Mapping[int, float]]]]] = None,
    repetition_penalty: _FloatParam = 1.0,
    frequency_penalty: _FloatParam = 0.0,
    presence_penalty: _FloatParam = 0.0,
    typical_p: _FloatParam = 1.0,
    top_n_sigma: _FloatParam = 0.0,
    epsilon_cutoff: _FloatParam = 0.0,
    eta_cutoff: _FloatParam = 0.0,
    xtc_threshold: _FloatParam = 0.1,
    xtc_probability: _FloatParam = 0.0,
    dynatemp_range: _FloatParam = 0.0,
    dynatemp_exponent: _FloatParam = 1.0,
    dry_multiplier: _FloatParam = 0.0,
    dry_base: _FloatParam = 1.75,
    dry_allowed_length: _IntParam = 2,
    dry_penalty_last_n: _IntParam = -1,
    dry_sequence_breakers: Optional[_Ids] = None,
    prompt_tokens: Optional[_Histories] = None,
    output_tokens: Optional[_Histories] = None,
) -> _Tokens: ...
@overload
def sample(
    logits: ArrayLike,
    *,
    temperature: _FloatParam = 1.0,
    top_k: _IntParam = 0,
    top_p: _FloatParam = 1.0,
    min_p: _FloatParam = 0.0,
    seed: Union[None, int, ArrayLike] = None,
    return_logprobs: bool = False,
    top_logprobs: int = 0,
    logprobs_mode: _Mode = "sampled",
    allowed_token_ids: Optional[Union[_Ids, Sequence[Optional[_Ids]]]] = None,
    token_bitmask: Optional[ArrayLike] = None,
    bad_words: Optional[Sequence[_Ids]] = None,
    min_tokens: _IntParam = 0,
    stop_token_ids: Optional[_Ids] = None,
    logit_bias: Optional[Union[Mapping[int, float], Sequence[Optional[Mapping[int, float]]]]] = None,
    repetition_penalty: _FloatParam = 1.0,
    frequency_penalty: _FloatParam = 0.0,
    presence_penalty: _FloatParam = 0.0,
    typical_p: _FloatParam = 1.0,
    top_n_sigma: _FloatParam = 0.0,
    epsilon_cutoff: _FloatParam = 0.0,
    eta_cutoff: _FloatParam = 0.0,
    xtc_threshold: _FloatParam = 0.1,
    xtc_probability: _FloatParam = 0.0,
    dynatemp_range: _FloatParam = 0.0,
    dynatemp_exponent: _FloatParam = 1.0,
    dry_multiplier: _FloatParam = 0.0,
    dry_base: _FloatParam = 1.75,
    dry_allowed_length: _IntParam = 2,
    dry_penalty_last_n: _IntParam = -1,
    dry_sequence_breakers: Optional[_Ids] = None,
    prompt_tokens: Optional[_Histories] = None,
    output_tokens: Optional[_Histories] = None,
) -> Any: ...
def filter_logits(
    logits: ArrayLike,
    *,
    temperature: _FloatParam = 1.0,
    top_k: _IntParam = 0,
    top_p: _FloatParam = 1.0,
    min_p: _FloatParam = 0.0,
    allowed_token_ids: Optional[Union[_Ids, Sequence[Optional[_Ids]]]] = None,
    token_bitmask: Optional[ArrayLike] = None,
    bad_words: Optional[Sequence[_Ids]] = None,
    min_tokens: _IntParam = 0,
    stop_token_ids: Optional[_Ids] = None,
    logit_bias: Optional[Union[Mapping[int, float], Sequence[Optional[Mapping[int, float]]]]] = None,
    repetition_penalty: _FloatParam = 1.0,
    frequency_penalty: _FloatParam = 0.0,
    presence_penalty: _FloatParam = 0.0,
    typical_p: _FloatParam = 1.0,
    top_n_sigma: _FloatParam = 0.0,
    epsilon_cutoff: _FloatParam = 0.0,
    eta_cutoff: _FloatParam = 0.0,
    xtc_threshold: _FloatParam = 0.1,
    xtc_probability: _FloatParam = 0.0,
    dynatemp_range: _FloatParam = 0.0,
    dynatemp_exponent: _FloatParam = 1.0,
    dry_multiplier: _FloatParam = 0.0,
    dry_base: _FloatParam = 1.75,
    dry_allowed_length: _IntParam = 2,
    dry_penalty_last_n: _IntParam = -1,
    dry_sequence_breakers: Optional[_Ids] = None,
    prompt_tokens: Optional[_Histories] = None,
    output_tokens: Optional[_Histories] = None,
) -> Any: ...
@overload
def token_logprobs(
    logits: ArrayLike,
    token_ids: ArrayLike,
    *,
    temperature: _FloatParam = 1.0,
    return_ranks: Literal[False] = False,
) -> Any: ...
@overload
def token_logprobs(
    logits: ArrayLike,
    token_ids: ArrayLike,
    *,
    temperature: _FloatParam = 1.0,
    return_ranks: Literal[True],
) -> Tuple[Any, Any]: ...
def verify_draft(
    target_logits: ArrayLike,
    draft_tokens: ArrayLike,
    *,
    draft_probs: Optional[ArrayLike] = None,
    temperature: _FloatParam = 1.0,
    top_k: _IntParam = 0,
    top_p: _FloatParam = 1.0,
    min_p: _FloatParam = 0.0,
    seed: Union[None, int, ArrayLike] = None,
) -> Tuple[Any, Any]: ...
def _verify_draft_uniforms(seed: Union[int, ArrayLike], batch: int, k: int) -> NDArray[np.float64]: ...
@final
class Sampler:
    def __new__(
        cls,
        *,
        temperature: _FloatParam = 1.0,
        top_k: _IntParam = 0,
        top_p: _FloatParam = 1.0,
        min_p: _FloatParam = 0.0,
        seed: Optional[int] = None,
        top_logprobs: int = 0,
        logprobs_mode: _Mode = "sampled",
        allowed_token_ids: Optional[Union[_Ids, Sequence[Optional[_Ids]]]] = None,
        token_bitmask: Optional[ArrayLike] = None,
        bad_words: Optional[Sequence[_Ids]] = None,
        min_tokens: _IntParam = 0,
        stop_token_ids: Optional[_Ids] = None,
        logit_bias: Optional[
            Union[Mapping[int, float], Sequence[Optional[Mapping[int, float]]]]
        ] = None,
        repetition_penalty: _FloatParam = 1.0,
        frequency_penalty: _FloatParam = 0.0,
        presence_penalty: _FloatParam = 0.0,
        typical_p: _FloatParam = 1.0,
        top_n_sigma: _FloatParam = 0.0,
        epsilon_cutoff: _FloatParam = 0.0,
        eta_cutoff: _FloatParam = 0.0,
        xtc_threshold: _FloatParam = 0.1,
        xtc_probability: _FloatParam = 0.0,
        dynatemp_range: _FloatParam = 0.0,
        dynatemp_exponent: _FloatParam = 1.0,
        dry_multiplier: _FloatParam = 0.0,
        dry_base: _FloatParam = 1.75,
        dry_allowed_length: _IntParam = 2,
        dry_penalty_last_n: _IntParam = -1,
        dry_sequence_breakers: Optional[_Ids] = None,
        mirostat_tau: Optional[_FloatParam] = None,
        mirostat_eta: _FloatParam = 0.1,
        prompt_tokens: Optional[_Histories] = None,
    ) -> Sampler: ...
    def __call__(self, logits: ArrayLike, *, return_logprobs: bool = False) -> Any:
        """Draws one token per row as ``sample`` would with this sampler's parameters, histories
        and next seed stream, and appends the tokens to the histories (see ``help(Sampler)``)."""
    def accept(self, tokens: Union[int, Sequence[int], Sequence[Sequence[int]], ArrayLike]) -> None: ...
    def reset(self) -> None: ...
    @property
    def output_tokens(self) -> List[NDArray[np.int64]]: ...
    @property
    def seed(self) -> int: ...
    @property
    def calls(self) -> int: ...
    @property
    def mirostat_mu(self) -> NDArray[np.float64]: ...

def cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    axis: int = -1,
    *,
    temperature: Union[float, ArrayLike] = 1.0,
    reduction: Literal["mean", "sum", "none"] = "mean",
    label_smoothing: float = 0.0,
    ignore_index: Optional[int] = None,
) -> Union[NDArray[_Float], _Float]: ...
def fit_temperature(logits: ArrayLike, labels: ArrayLike, axis: int = -1) -> float: ...
def expected_calibration_error(
    probs: ArrayLike, labels: ArrayLike, n_bins: int = 15, axis: int = -1
) -> float: ...
def calibration_bins(
    probs: ArrayLike, labels: ArrayLike, n_bins: int = 15, axis: int = -1
) -> Tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]: ...
def topk(
    x: ArrayLike, k: int, axis: Optional[int] = -1
) -> Tuple[NDArray[_Float], NDArray[np.int64]]: ...
def sparsemax(x: ArrayLike, axis: Optional[int] = -1) -> NDArray[_Float]: ...
def sigmoid(x: ArrayLike) -> NDArray[_Float]: ...
def _internal_error_for_tests(where_: str) -> None: ...
