"""Input coercion for the rare inputs the native fast path does not read in place (contract S1).

Called from Rust only when ``x`` is not already an aligned, native-byte-order float16/32/64
ndarray. No numerical work happens here.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def as_float_array(x: Any) -> np.ndarray:
    """Return ``x`` as an aligned native-byte-order float16, float32 or float64 ndarray.

    Integers and bool become float64. Complex, object, string, datetime and structured data,
    and float types other than float16/32/64, raise ``TypeError``.
    """
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise TypeError(f"x must be a real numeric array, got {type(x).__name__}: {e}") from None
    kind = a.dtype.kind
    if kind == "f":
        if a.dtype.itemsize not in (2, 4, 8):
            raise TypeError(
                f"x has dtype {a.dtype}, which logitkit does not compute in; "
                "convert to float64 first"
            )
        odd_strides = any(s % a.itemsize for s, n in zip(a.strides, a.shape) if n > 1)
        if not a.dtype.isnative or not a.flags.aligned or odd_strides:
            a = a.astype(a.dtype.newbyteorder("="), order="C")
        return a
    if kind in "biu":
        return a.astype(np.float64)
    raise TypeError(f"x must be a real numeric array, got dtype {a.dtype}")
