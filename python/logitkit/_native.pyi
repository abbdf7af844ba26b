from typing import Literal, Optional, Tuple, Union, final, overload

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
    "cross_entropy",
    "fit_temperature",
    "expected_calibration_error",
    "calibration_bins",
    "topk",
    "sparsemax",
    "sigmoid",
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
    return_logprobs: Literal[True],
) -> Tuple[_Tokens, _Logprobs]: ...
def filter_logits(
    logits: ArrayLike,
    *,
    temperature: _FloatParam = 1.0,
    top_k: _IntParam = 0,
    top_p: _FloatParam = 1.0,
    min_p: _FloatParam = 0.0,
) -> NDArray[_Float]: ...

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
    ) -> Sampler: ...
    @overload
    def __call__(
        self, logits: ArrayLike, *, return_logprobs: Literal[False] = False
    ) -> _Tokens: ...
    @overload
    def __call__(
        self, logits: ArrayLike, *, return_logprobs: Literal[True]
    ) -> Tuple[_Tokens, _Logprobs]: ...
    @property
    def seed(self) -> int: ...
    @property
    def calls(self) -> int: ...
def cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    axis: Optional[int] = -1,
    *,
    temperature: Union[float, ArrayLike] = 1.0,
    reduction: Literal["mean", "sum", "none"] = "mean",
    label_smoothing: float = 0.0,
    ignore_index: Optional[int] = None,
) -> Union[NDArray[_Float], _Float]: ...
def fit_temperature(logits: ArrayLike, labels: ArrayLike, axis: Optional[int] = -1) -> float: ...
def expected_calibration_error(
    probs: ArrayLike, labels: ArrayLike, n_bins: int = 15, axis: Optional[int] = -1
) -> float: ...
def calibration_bins(
    probs: ArrayLike, labels: ArrayLike, n_bins: int = 15, axis: Optional[int] = -1
) -> Tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]: ...
def topk(
    x: ArrayLike, k: int, axis: Optional[int] = -1
) -> Tuple[NDArray[_Float], NDArray[np.int64]]: ...
def sparsemax(x: ArrayLike, axis: Optional[int] = -1) -> NDArray[_Float]: ...
def sigmoid(x: ArrayLike) -> NDArray[_Float]: ...
