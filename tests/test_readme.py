"""The README's Python examples run as pasted, each alone in a fresh interpreter (the Rust ones
are doctests: `ReadmeDoctests` in src/lib.rs)."""

import re
from pathlib import Path

import pytest

from conftest import run_python

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs_alone(index):
    proc = run_python(BLOCKS[index], timeout=300)
    assert proc.returncode == 0, f"README block {index}:\n{BLOCKS[index]}\n{proc.stderr[-3000:]}"


def test_readme_inline_generate_snippet_needs_only_import_logitkit():
    """The README's `logitkit.transformers.LogitsProcessor(...)` works after `import logitkit`
    alone: the submodules load on first use, `transformers` itself only then (P19)."""
    code = """
import sys
import logitkit
assert "transformers" not in sys.modules and "logitkit.ops" not in sys.modules
assert {"ops", "loss", "calibration", "toy", "transformers"} <= set(dir(logitkit))
assert logitkit.ops.topk([3.0, 1.0, 2.0], 1)[1].tolist() == [0]
assert logitkit.loss.cross_entropy is not None and logitkit.calibration.fit_temperature
assert "transformers" not in sys.modules
proc = logitkit.transformers.LogitsProcessor(temperature=0.7)
assert type(proc).__name__ == "LogitsProcessor" and "logitkit.transformers" in sys.modules
try:
    logitkit.no_such_thing
except AttributeError as e:
    assert "no_such_thing" in str(e)
else:
    raise AssertionError("no AttributeError")
"""
    proc = run_python(code, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
