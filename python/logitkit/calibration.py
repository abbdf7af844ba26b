"""Calibration: temperature scaling and the expected calibration error.

- :func:`fit_temperature` (native): the ``T`` minimising the mean NLL of ``softmax(logits / T)``.
- :func:`expected_calibration_error` (native): ECE over equal-width confidence bins.
- :func:`calibration_bins` (native): per-bin counts, mean confidence and accuracy.
- :func:`reliability_diagram`: draws those bins with matplotlib (the ``plot`` extra).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ._native import calibration_bins, expected_calibration_error, fit_temperature

__all__ = [
    "calibration_bins",
    "expected_calibration_error",
    "fit_temperature",
    "reliability_diagram",
]


def reliability_diagram(
    probs: Any,
    labels: Any,
    n_bins: int = 15,
    *,
    path: Optional[str] = None,
    ax: Any = None,
    label: Optional[str] = None,
) -> Any:
    """Draws a reliability diagram (accuracy per confidence bin against the diagonal).

    Needs matplotlib (``pip install 'logitkit[plot]'``); raises ``ImportError`` saying so
    otherwise.

    Parameters
    ----------
    probs, labels, n_bins
        As for :func:`calibration_bins`.
    path : str, optional
        Where to save the figure: this path, in the format its extension names (any that
        matplotlib writes; PNG when it has none).
    ax : matplotlib Axes, optional
        Where to draw; a new figure when ``None``.
    label : str, optional
        The legend entry of the bars.

    Returns
    -------
    matplotlib Axes
        The axes drawn on.

    Examples
    --------
    >>> import os, tempfile
    >>> from logitkit.calibration import reliability_diagram
    >>> path = os.path.join(tempfile.mkdtemp(), "reliability.png")
    >>> ax = reliability_diagram([[0.9, 0.1], [0.3, 0.7]], [0, 0], n_bins=5, path=path)
    >>> os.path.getsize(path) > 0
    True
    """
    try:
        import matplotlib

        if ax is None and path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "reliability diagrams need matplotlib: pip install 'logitkit[plot]' (or matplotlib)"
        ) from None
    count, conf, acc = calibration_bins(probs, labels, n_bins)
    ece = expected_calibration_error(probs, labels, n_bins)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    centers = 0.5 * (edges[:-1] + edges[1:])
    filled = count > 0
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=1)
    ax.bar(
        centers[filled],
        acc[filled],
        width=1.0 / n_bins,
        alpha=0.6,
        edgecolor="black",
        label=f"{label + ': ' if label else ''}ECE {ece:.4f}",
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left")
    if path is not None:
        ax.figure.savefig(path, format=_image_format(path), dpi=120, bbox_inches="tight")
    return ax


def _image_format(path: str) -> str:
    """The image format to write ``path`` in: its extension's, PNG when it has none. Given to
    ``savefig`` explicitly, so that the file is ``path`` itself (matplotlib appends ``.png`` to
    a path without an extension when left to choose)."""
    import os

    return os.path.splitext(os.fspath(path))[1][1:].lower() or "png"
