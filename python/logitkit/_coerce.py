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


# --------------------------------------------------------------------------------------------
# Adapters for PyTorch tensors, JAX arrays, DLPack producers and bfloat16 (issue 6).
#
# Called from Rust only for inputs that are not already a float16/32/64 ndarray (so the NumPy
# fast path never comes here). Returns ``(x, back)``: ``x`` is what the native function reads,
# and ``back`` is None or a function converting a float32 result back to bfloat16.
# --------------------------------------------------------------------------------------------


def _is_torch_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach") and hasattr(x, "dtype")


def _bfloat16_back_numpy(dtype: np.dtype):
    def back(result):
        a = np.asarray(result).astype(dtype)
        return a if isinstance(result, np.ndarray) else a[()]

    return back


def _bfloat16_back_torch():
    try:
        import ml_dtypes  # noqa: F401  (NumPy's bfloat16)

        return _bfloat16_back_numpy(np.dtype(ml_dtypes.bfloat16))
    except ImportError:
        import torch

        def back(result):
            return torch.from_numpy(np.ascontiguousarray(result)).to(torch.bfloat16)

        return back


def adapt(x: Any):
    """``(array, back)`` for torch tensors, JAX arrays, DLPack producers and bfloat16 arrays.

    - torch CPU tensors: ``x.detach().numpy()``, which shares the tensor's memory (no copy), so
      tensors that require grad work too. Tensors on another device raise ``TypeError``.
    - objects with ``__array__`` (JAX arrays, ...): ``numpy.asarray(x)`` (no copy on CPU when
      the producer allows it); objects with only ``__dlpack__``: ``numpy.from_dlpack(x)``.
    - bfloat16 (``ml_dtypes.bfloat16`` arrays, torch bfloat16 tensors, JAX bfloat16 arrays):
      converted to float32 (exact), computed there, and the float result rounded once back to
      bfloat16 by ``back``: a ``ml_dtypes.bfloat16`` ndarray, or, for a torch tensor when
      ml_dtypes is not installed, a ``torch.bfloat16`` tensor.
    Anything else is returned unchanged with ``back = None``.
    """
    if isinstance(x, (list, tuple, float, int, bool)):
        return x, None
    if _is_torch_tensor(x):
        t = x.detach()
        if t.device.type != "cpu":
            raise TypeError(
                f"x is a torch tensor on {t.device}; logitkit computes on the CPU: pass x.cpu()"
            )
        import torch

        if t.dtype == torch.bfloat16:
            return t.float().numpy(), _bfloat16_back_torch()
        if t.is_conj():
            t = t.resolve_conj()
        if t.is_neg():
            t = t.resolve_neg()
        try:
            return t.numpy(), None
        except (TypeError, RuntimeError) as e:
            raise TypeError(f"x must be a real numeric tensor, got {t.dtype}: {e}") from None
    if isinstance(x, np.ndarray):
        a = x
    elif hasattr(x, "__array__") or hasattr(x, "__array_interface__"):
        try:
            a = np.asarray(x)
        except (TypeError, ValueError) as e:
            raise TypeError(f"x must be a real numeric array, got {type(x).__name__}: {e}") from None
    elif hasattr(x, "__dlpack__"):
        try:
            a = np.from_dlpack(x)
        except (TypeError, ValueError, RuntimeError, BufferError) as e:
            raise TypeError(f"cannot read {type(x).__name__} through DLPack: {e}") from None
    else:
        return x, None
    if a.dtype.name == "bfloat16":
        return a.astype(np.float32), _bfloat16_back_numpy(a.dtype)
    return a, None


def copy_to_out(out: Any, result: np.ndarray):
    """Writes an adapted (bfloat16) result into the user's ``out`` with the S3 checks."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != np.shape(result):
        raise ValueError(f"out has shape {out.shape}, expected {np.shape(result)}")
    if out.dtype != np.asarray(result).dtype:
        raise TypeError(f"out has dtype {out.dtype}, expected {np.asarray(result).dtype}")
    if not out.flags.writeable:
        raise ValueError("out is read-only; pass a writeable array")
    np.copyto(out, result)
    return out


def like_input(result: Any, back: Any):
    """``result`` (a NumPy token, rank or float64 logprob array) in the array type ``back``
    returns, keeping its dtype: torch for torch input, JAX for JAX input, NumPy otherwise."""
    kind = getattr(back, "array_type", None)
    if kind == "torch":
        import torch

        return torch.from_numpy(np.ascontiguousarray(result))
    if kind == "jax":
        import jax.numpy as jnp

        return jnp.asarray(result)
    return result
