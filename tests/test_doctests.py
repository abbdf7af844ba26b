"""Every public Python function and class has a NumPy-style docstring with an example, and the
examples run (doctest), natives included (issue 21)."""

from __future__ import annotations

import doctest
import importlib
import inspect

import pytest

MODULES = [
    "logitkit",
    "logitkit._native",
    "logitkit._output",
    "logitkit._zen_lm",
    "logitkit.ops",
    "logitkit.loss",
    "logitkit.calibration",
    "logitkit.toy",
    "logitkit.transformers",
]


def public_callables():
    seen = {}
    for name in MODULES:
        if name.split(".")[-1].startswith("_"):
            continue  # private modules: their public objects are reached through public ones
        mod = importlib.import_module(name)
        names = getattr(mod, "__all__", None) or list(vars(mod))
        for attr in (n for n in names if not n.startswith("_")):
            obj = getattr(mod, attr)
            if (callable(obj) and not isinstance(obj, type(doctest))
                    and getattr(obj, "__module__", "").startswith("logitkit")):
                seen.setdefault(f"{obj.__module__}.{obj.__qualname__}", obj)
    return seen


@pytest.mark.parametrize("qualname", sorted(public_callables()))
def test_public_callable_has_a_numpy_style_docstring_with_an_example(qualname):
    doc = inspect.getdoc(public_callables()[qualname]) or ""
    assert "Examples\n--------" in doc and ">>>" in doc, f"{qualname} has no Examples section"


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    if name == "logitkit.transformers":
        pytest.importorskip("transformers")
    mod = importlib.import_module(name)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
