"""Losses: :func:`cross_entropy` (fused softmax + negative log-likelihood).

A thin re-export of the native implementation (``logitkit._native``); see its docstring.
PyTorch's ``torch.nn.functional.cross_entropy`` semantics for ``reduction``,
``label_smoothing`` and ``ignore_index``, with these differences:

- the class axis is ``axis`` (default -1, the NumPy convention); PyTorch's is 1;
- ``ignore_index`` defaults to ``None`` (nothing ignored) instead of -100; pass -100 to match;
- labels are class indices only (no probability targets) and there is no ``weight``;
- a label outside ``[0, C)`` that is not ``ignore_index`` raises ``ValueError``;
- the result is computed in float64 from each vector's maximum and its exp-sum and rounded
  once to the logits' dtype (PyTorch computes in the input dtype); the exp-sum is the softmax
  kernels' (float32 exps, summed in float64, for 16- and 32-bit logits), so float32 losses are
  within a few float32 ulps of the exact value; ``temperature`` divides the logits first.
"""

from ._native import cross_entropy

__all__ = ["cross_entropy"]
