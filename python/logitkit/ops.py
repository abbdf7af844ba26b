"""Array operations beyond the softmax family: :func:`topk`, :func:`sparsemax`, :func:`sigmoid`.

Thin re-exports of the native implementations (``logitkit._native``); inputs as for
:func:`logitkit.softmax` plus torch tensors, JAX arrays and bfloat16 (computed in float32,
returned as bfloat16).
"""

from ._native import sigmoid, sparsemax, topk

__all__ = ["sigmoid", "sparsemax", "topk"]
