"""Input coercion for the rare inputs the native fast path does not read in place (contract S1).

Called from Rust only when ``x`` is not already an aligned, native-byte-order float16/32/64
ndarray. No numerical work happens here.
"""

from __future__ import annotations

import sys
from typing import Any, Optional, Tuple

import numpy as np


class NotAnIntegerError(TypeError, ValueError):
    """A count, seed or token-id parameter that is not an integer (``top_k=1.5``, a string
    array): a ``TypeError``, as contract R7 has wrong types, and a ``ValueError`` too, as
    contract P8 has a ``top_k`` that is not an integer (NumPy's ``AxisError`` is a ``ValueError``
    and an ``IndexError`` alike). Out-of-range integers stay plain ``ValueError``s."""


class NotARealNumberError(TypeError, ValueError):
    """A value of a mapping parameter that is not a real number (a ``logit_bias`` bias given as
    a string or a complex number): a ``TypeError``, as contract R7 has wrong types, and a
    ``ValueError`` too, as contract P12 has a bad bias."""


class BFloat16Bits(np.ndarray):
    """bfloat16 values held as their bits: a uint16 view (no copy) of a bfloat16 array.

    ``adapt`` makes one of ml_dtypes/torch/JAX bfloat16 input and the native functions read it
    as bfloat16 (widened to float32 in registers) and write results of the same kind, which
    ``Back`` views as bfloat16 in the input's array type again. It never reaches users.
    """


class BFloat16Scalar(BFloat16Bits):
    """The bits of a bfloat16 reduction to one value (``logsumexp`` of a vector, ``token_logprobs``
    of one row): ``Back`` gives NumPy input a NumPy scalar of it, as NumPy's own reductions do,
    where a 0-d ``BFloat16Bits`` (``softmax`` of a 0-d array) stays a 0-d array (S13)."""


# A copy moves this many bytes between checks for Ctrl-C (contract R8).
_COPY_SLAB_BYTES = 1 << 24


def c_copy(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``a`` (same dtype and array subclass, same bits), made a slab of
    about ``_COPY_SLAB_BYTES`` at a time along its longest axis: NumPy checks no signal inside
    one copy, and a transposing copy of gigabytes takes seconds, so a Ctrl-C (contract R8) is
    seen between slabs. The slabs are taken along the first axis long enough to give them, so
    that each is one block of the output."""
    if a.ndim == 0 or a.nbytes <= _COPY_SLAB_BYTES:
        return a.copy(order="C")
    out = np.empty_like(a, order="C")
    slabs = -(-a.nbytes // _COPY_SLAB_BYTES)
    axis = next((d for d, n in enumerate(a.shape) if n >= slabs), int(np.argmax(a.shape)))
    step = max(1, a.shape[axis] * _COPY_SLAB_BYTES // a.nbytes)
    index = [slice(None)] * a.ndim
    for start in range(0, a.shape[axis], step):
        index[axis] = slice(start, start + step)
        out[tuple(index)] = a[tuple(index)]
    return out


def _bits_of_bf16(a: np.ndarray) -> BFloat16Bits:
    """A ``BFloat16Bits`` view of the bfloat16 ndarray ``a`` (same memory and strides)."""
    return a.view(np.uint16).view(BFloat16Bits)



def as_float_array(x: Any, name: str = "x") -> np.ndarray:
    """Return ``x`` as an aligned native-byte-order float16, float32 or float64 ndarray.

    Integers and bool become float64. Complex, object, string, datetime and structured data,
    and float types other than float16/32/64, raise ``TypeError`` naming the argument ``name``.
    """
    if isinstance(x, BFloat16Bits):
        # Unaligned or byte-swapped bits: an aligned native copy, still bits (a fresh array:
        # ``ascontiguousarray`` would return contiguous unaligned bits as they are).
        return np.array(x.view(np.ndarray), dtype=np.uint16, order="C").view(BFloat16Bits)
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be a real numeric array, got {type(x).__name__}: {e}") from None
    kind = a.dtype.kind
    if kind == "f":
        if a.dtype.itemsize not in (2, 4, 8):
            raise TypeError(
                f"{name} has dtype {a.dtype}, which logitkit does not compute in; "
                "convert to float64 first"
            )
        odd_strides = any(s % a.itemsize for s, n in zip(a.strides, a.shape) if n > 1)
        if not a.dtype.isnative or not a.flags.aligned or odd_strides:
            a = a.astype(a.dtype.newbyteorder("="), order="C")
        return a
    if kind in "biu":
        return a.astype(np.float64)
    raise TypeError(f"{name} must be a real numeric array, got dtype {a.dtype}")


# --------------------------------------------------------------------------------------------
# Adapters for PyTorch tensors, JAX arrays, DLPack producers and bfloat16 (issue 6, S13, P18).
#
# Called from Rust only for inputs that are not already a float16/32/64 ndarray (so the NumPy
# fast path never comes here). ``adapt(x)`` returns ``(array, back)``: ``array`` is what the
# native function reads, and ``back`` is None or a callable taking any NumPy result back to the
# input's array type (contract S13).
# --------------------------------------------------------------------------------------------


def _torch_tensor_type() -> Any:
    """``torch.Tensor`` when torch has been imported (a tensor cannot exist before), else None."""
    torch = sys.modules.get("torch")
    return getattr(torch, "Tensor", None) if torch is not None else None


def _jax_array_type() -> Any:
    """``jax.Array`` when jax has been imported, else None."""
    jax = sys.modules.get("jax")
    return getattr(jax, "Array", None) if jax is not None else None


def _is_torch_tensor(x: Any) -> bool:
    tensor = _torch_tensor_type()
    return tensor is not None and isinstance(x, tensor)


def _is_jax_array(x: Any) -> bool:
    array = _jax_array_type()
    return array is not None and isinstance(x, array)


def _is_bfloat16(dtype: Any) -> bool:
    return getattr(dtype, "name", None) == "bfloat16"


def _torch_from_numpy(a: np.ndarray) -> Any:
    """A CPU tensor holding ``a``: its memory when torch can share it, else a copy."""
    import torch

    if a.flags.writeable and a.flags.aligned and a.dtype.isnative:
        try:
            return torch.from_numpy(a)
        except (TypeError, ValueError, RuntimeError):  # negative strides, odd dtypes
            pass
    return torch.as_tensor(np.array(a, order="C"))


class Back:
    """Takes NumPy results back to the array type of an adapted input (contract S13).

    ``back(result)`` accepts any NumPy result: a float or integer ndarray, a NumPy scalar or
    0-d array (kept 0-d), a Python number, or a tuple of these (converted element by element).

    - ``kind == "torch"``: a CPU ``torch.Tensor`` of the result's dtype (``torch.from_numpy``,
      sharing the result's memory when it can), so int64 stays int64 and 0-d stays 0-d.
    - ``kind == "jax"``: a JAX array (``jax.numpy.asarray``); JAX's own dtype rules apply, so
      without ``jax_enable_x64`` float64/int64 results become float32/int32.
    - ``kind == "numpy"`` (only for bfloat16 ndarrays): the NumPy result, with a NumPy scalar
      kept a scalar.

    When ``bfloat16`` is true the input was bfloat16: results of the native bfloat16 kernels
    (``BFloat16Bits``, already rounded once) are viewed as bfloat16 (``torch.bfloat16``,
    ``jnp.bfloat16`` or ``ml_dtypes.bfloat16``), other float results (float64 losses and
    such) are rounded once to bfloat16, and integer and bool results are converted unchanged.
    """

    __slots__ = ("kind", "bfloat16", "_np_bf16")

    def __init__(self, kind: str, bfloat16: bool = False, np_bf16: Optional[np.dtype] = None):
        self.kind = kind
        self.bfloat16 = bfloat16
        self._np_bf16 = np_bf16

    def __repr__(self) -> str:
        return f"Back(kind={self.kind!r}, bfloat16={self.bfloat16})"

    def __call__(self, result: Any) -> Any:
        if isinstance(result, tuple):
            return tuple(self(r) for r in result)
        if isinstance(result, BFloat16Bits):
            return self._from_bits(result)
        a = np.asarray(result)
        rounds = self.bfloat16 and a.dtype.kind == "f"
        if self.kind == "torch":
            t = _torch_from_numpy(a)
            if rounds:
                import torch

                t = t.to(torch.bfloat16)
            return t
        if rounds:
            assert self._np_bf16 is not None
            a = a.astype(self._np_bf16)
        if self.kind == "jax":
            import jax.numpy as jnp

            return jnp.asarray(a)
        if not rounds:
            return result
        return a if isinstance(result, np.ndarray) else a[()]

    def _from_bits(self, bits: "BFloat16Bits") -> Any:
        """A native result of bfloat16 bits as bfloat16 in the input's array type (no rounding:
        the native code rounded once); a 0-d result stays 0-d for torch and JAX, and for NumPy
        but for a reduction to one value (``BFloat16Scalar``), which becomes a NumPy scalar, as
        the other dtypes' results."""
        raw = bits.view(np.ndarray)
        if self.kind == "torch":
            import torch

            # (not ascontiguousarray, which makes a 0-d result 1-d)
            raw = raw if raw.flags.c_contiguous else raw.copy()
            return torch.from_numpy(raw.view(np.int16)).view(torch.bfloat16)
        dtype = self._np_bf16 if self._np_bf16 is not None else _bf16_dtype()
        a = raw.view(dtype)
        if self.kind == "jax":
            import jax.numpy as jnp

            return jnp.asarray(a)
        return a[()] if isinstance(bits, BFloat16Scalar) else a


def _bf16_dtype() -> Any:
    """NumPy's bfloat16 (``ml_dtypes``), or None when it is not installed."""
    try:
        import ml_dtypes
    except ImportError:
        return None
    return np.dtype(ml_dtypes.bfloat16)


def _read_torch(x: Any, name: str) -> tuple:
    t = x.detach()
    if t.device.type != "cpu":
        raise TypeError(
            f"{name} is a torch tensor on {t.device}; logitkit computes on the CPU: "
            f"pass {name}.cpu()"
        )
    import torch

    if t.dtype == torch.bfloat16:
        # Its bits, viewed in place (any strides): the native code reads bfloat16 itself.
        bits = t.view(torch.int16).numpy().view(np.uint16).view(BFloat16Bits)
        return bits, Back("torch", bfloat16=True)
    if t.is_conj():
        t = t.resolve_conj()
    if t.is_neg():
        t = t.resolve_neg()
    try:
        return t.numpy(), Back("torch")
    except (TypeError, RuntimeError) as e:
        raise TypeError(f"{name} must be a real numeric tensor, got {t.dtype}: {e}") from None


def _first_leaf(x: Any) -> Any:
    """The first item of a nested list or tuple that is neither (``x`` itself if it is none)."""
    while isinstance(x, (list, tuple)) and x:
        x = x[0]
    return x


def bfloat16_as_float32(v: Any) -> Optional[np.ndarray]:
    """The values of a bfloat16 array or scalar of any kind (``ml_dtypes``, torch, JAX, or a
    list of them) as a float32 ndarray (exact: bfloat16 is float32's upper half), or None when
    ``v`` is not bfloat16. For parameters given per row, such as a temperature (contract S4)."""
    try:
        a, _ = adapt(v)
    except TypeError:
        return None
    if not isinstance(a, BFloat16Bits):
        return None
    wide = a.view(np.ndarray).astype(np.uint32)
    wide <<= 16  # in place: a 0-d array stays an array
    return wide.view(np.float32)


def param_array(v: Any) -> Optional[np.ndarray]:
    """The values of a parameter given as a CPU torch tensor that ``numpy.asarray`` cannot read
    (one that requires grad, or of bfloat16, widened exactly to float32) as a NumPy array, or
    None for anything else (per-row parameters, contract P2; the caller then names the
    parameter in a ``TypeError``)."""
    if not _is_torch_tensor(v):
        return None
    t = v.detach()
    if t.device.type != "cpu":
        return None
    import torch

    if t.dtype == torch.bfloat16:
        t = t.float()
    try:
        return t.numpy()
    except (TypeError, RuntimeError):
        return None


def adapt(x: Any, name: str = "x") -> Tuple[Any, Optional[Back]]:
    """``(array, back)``: what the native functions read, and how results go back (S13, P18).

    ``name`` is the argument's name in the caller's signature, for the errors it raises.

    - NumPy arrays other than bfloat16, lists, tuples and Python scalars: ``(x, None)``
      unchanged (the native code coerces them; results are NumPy), except lists and tuples
      of bfloat16 values, which are taken as the bfloat16 array NumPy makes of them.
    - torch CPU tensors: ``x.detach().numpy()``, which shares the tensor's memory (no copy), so
      tensors that require grad work too; ``back`` makes CPU tensors (``Back("torch")``).
      Tensors on another device raise ``TypeError``.
    - JAX arrays: ``numpy.asarray(x)`` (no copy on CPU); ``back`` makes JAX arrays.
    - other objects with ``__array__``/``__array_interface__``: ``numpy.asarray(x)``; objects
      with only ``__dlpack__``: ``numpy.from_dlpack(x)``; results stay NumPy (``back`` None).
    - bfloat16 (``ml_dtypes.bfloat16`` ndarrays, torch or JAX bfloat16): a ``BFloat16Bits``
      view of its memory (no copy), which the native code reads as bfloat16 (computing in
      float32, rounding results once); ``back`` gives bfloat16 results in the input's array
      type, whatever optional packages are installed.
    Anything else is returned unchanged with ``back = None``.
    """
    if isinstance(x, (list, tuple)) and _is_bfloat16(getattr(_first_leaf(x), "dtype", None)):
        # bfloat16 values in a list: as the array ``numpy.asarray`` makes of it (S1, S13).
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name} must be a real numeric array, got {type(x).__name__}: {e}") from None
    if isinstance(x, (list, tuple, float, int, bool)):
        return x, None
    if _is_torch_tensor(x):
        return _read_torch(x, name)
    jax = _is_jax_array(x)
    if isinstance(x, np.ndarray):
        a = x
    elif jax or hasattr(x, "__array__") or hasattr(x, "__array_interface__"):
        try:
            a = np.asarray(x)
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"{name} must be a real numeric array, got {type(x).__name__}: {e}"
            ) from None
    elif hasattr(x, "__dlpack__"):
        try:
            a = np.from_dlpack(x)
        except (TypeError, ValueError, RuntimeError, BufferError) as e:
            raise TypeError(f"cannot read {name} ({type(x).__name__}) through DLPack: {e}") from None
    else:
        return x, None
    bf16 = a.dtype if _is_bfloat16(a.dtype) else None
    if bf16 is not None:
        if not bf16.isnative:
            # Bits in the other byte order (rare): swapped into a native copy, as NumPy's own
            # functions read '>f4', not read as they lie.
            bf16 = bf16.newbyteorder("=")
            a = a.astype(bf16)
        a = _bits_of_bf16(a)
    if jax:
        return a, Back("jax", bfloat16=bf16 is not None, np_bf16=bf16)
    if bf16 is not None:
        return a, Back("numpy", bfloat16=True, np_bf16=bf16)
    return a, None


def out_target(out: Any, back: Back) -> Any:
    """For an adapted input with ``out=``: the ndarray the native function writes into directly
    (for bfloat16, the bits of ``out``), or None when ``out`` cannot be written so (then
    ``copy_to_out`` checks it and raises).

    ``out`` may be an ndarray or, for torch input, a CPU torch tensor (written through its
    NumPy view, so ``out=x`` computes in place); anything else is refused by the native checks.
    """
    if back.bfloat16:
        return _bf16_out_bits(out)
    if _is_torch_tensor(out):
        return _torch_out_view(out)
    return out


def _bf16_out_bits(out: Any) -> Any:
    """The bits of a bfloat16 ``out`` (ndarray or CPU torch tensor) for the native code to
    write in place, or None for anything else (``copy_to_out`` then says what is wrong)."""
    if isinstance(out, np.ndarray) and _is_bfloat16(out.dtype):
        # In the other byte order the native bits would land swapped: `copy_to_out` then.
        return _bits_of_bf16(out) if out.dtype.isnative else None
    if _is_torch_tensor(out):
        import torch

        if (
            out.dtype == torch.bfloat16
            and out.device.type == "cpu"
            and not out.requires_grad
            and not _lazy_sign(out)
        ):
            return out.view(torch.int16).numpy().view(np.uint16).view(BFloat16Bits)
    return None


def _torch_out_view(out: Any) -> np.ndarray:
    if out.device.type != "cpu":
        raise ValueError(f"out is a torch tensor on {out.device}; pass a CPU tensor")
    if out.requires_grad:
        raise ValueError("out is a torch tensor that requires grad; out= does not support autograd")
    if _lazy_sign(out):
        raise ValueError(
            "out is a torch tensor with its negative or conjugate bit set (a lazy view, such as "
            "x.conj().imag), which cannot be written in place; pass out.resolve_neg()"
        )
    try:
        return out.numpy()
    except (TypeError, RuntimeError):
        raise TypeError(f"out has dtype {out.dtype}, which logitkit cannot write into") from None


def _lazy_sign(t: Any) -> bool:
    """Whether torch tensor ``t`` has its negative or conjugate bit set: its memory holds the
    values with the other sign, so it has no NumPy view to write into."""
    return bool(getattr(t, "is_neg", lambda: False)() or getattr(t, "is_conj", lambda: False)())


def copy_to_out(out: Any, result: np.ndarray) -> Any:
    """Writes an adapted bfloat16 ``result`` into the user's ``out`` with the S3 checks;
    ``out`` is a bfloat16 ndarray or torch tensor. ``result`` is bfloat16 bits
    (``BFloat16Bits``, copied as they are) or float32 (rounded once)."""
    shape = np.shape(result)
    if _is_torch_tensor(out):
        import torch

        if tuple(out.shape) != shape:
            raise ValueError(f"out has shape {tuple(out.shape)}, expected {shape}")
        if out.dtype != torch.bfloat16:
            raise TypeError(f"out has dtype {out.dtype}, expected torch.bfloat16")
        if out.device.type != "cpu":
            raise ValueError(f"out is a torch tensor on {out.device}; pass a CPU tensor")
        if out.requires_grad:
            raise ValueError("out is a torch tensor that requires grad; out= does not support autograd")
        if isinstance(result, BFloat16Bits):
            out.copy_(Back("torch", bfloat16=True)._from_bits(result))
        else:
            out.copy_(torch.from_numpy(np.ascontiguousarray(result)).to(torch.bfloat16))
        return out
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, expected {shape}")
    if not _is_bfloat16(out.dtype):
        raise TypeError(f"out has dtype {out.dtype}, expected bfloat16")
    if not out.flags.writeable:
        raise ValueError("out is read-only; pass a writeable array")
    if isinstance(result, BFloat16Bits):
        np.copyto(out, result.view(np.ndarray).view(out.dtype.newbyteorder("=")))
    else:
        np.copyto(out, np.asarray(result).astype(out.dtype))
    return out


def like_input(result: Any, back: Back) -> Any:
    """``result`` (tokens, ranks or float64 logprobs) in the array type of the input ``back``
    was made for, keeping its dtype (never rounded to bfloat16): torch for torch input, JAX for
    JAX input, NumPy otherwise (contract P18)."""
    if back.kind == "numpy":
        return result
    return Back(back.kind)(result)
