from typing import Optional, Union

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
