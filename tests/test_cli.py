"""The command line: ``python -m logitkit demo`` and ``softmax``."""

import subprocess
import sys

import numpy as np
import pytest

import logitkit
from logitkit.cli import DEMO_LABELS, DEMO_LOGITS, main


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "logitkit", *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )


def test_demo_runs_without_arguments_and_shows_probabilities():
    r = run("demo")
    assert r.returncode == 0, r.stderr
    for label in DEMO_LABELS:
        assert label in r.stdout
    expected = logitkit.softmax(np.asarray(DEMO_LOGITS), temperature=1.0)
    # The top class's probability, as printed at temperature 1.
    assert f"{expected.max():7.2%}".strip() in r.stdout
    assert "temperature 0.5" in r.stdout and "temperature 2" in r.stdout
    assert "█" in r.stdout


def test_softmax_from_values_matches_api(capsys):
    assert main(["softmax", "1", "2", "-0.5", "--temperature", "2"]) == 0
    printed = capsys.readouterr().out
    values = np.array([float(v) for v in printed.strip().strip("[]").split()])
    np.testing.assert_allclose(values, logitkit.softmax([1.0, 2.0, -0.5], temperature=2.0), rtol=1e-5)


def test_softmax_npy_round_trip(tmp_path):
    x = np.random.default_rng(0).normal(size=(3, 7)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = run("softmax", "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "p.npy"), "--log")
    assert r.returncode == 0, r.stderr
    got = np.load(tmp_path / "p.npy")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, logitkit.log_softmax(x))


def test_softmax_axis_none(capsys):
    assert main(["softmax", "0", "0", "0", "0", "--axis", "none"]) == 0
    assert "0.25" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["softmax", "--input", "missing.npy"], "no such file"),
        (["softmax"], "no logits"),
        (["softmax", "1", "2", "--temperature", "0"], "temperature"),
        (["softmax", "1", "2", "--axis", "x"], "--axis"),
        (["softmax", "1", "2", "--axis", "3"], "axis 3 is out of bounds"),
    ],
)
def test_errors_are_clear_and_exit_nonzero(tmp_path, args, message):
    r = run(*args, cwd=tmp_path)
    assert r.returncode != 0
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_npy_file(tmp_path):
    (tmp_path / "bad.npy").write_bytes(b"not an npy file")
    r = run("softmax", "--input", str(tmp_path / "bad.npy"))
    assert r.returncode == 2
    assert "cannot read" in r.stderr and "Traceback" not in r.stderr


def test_non_numeric_value_is_a_usage_error():
    r = run("softmax", "1", "abc")
    assert r.returncode == 2
    assert "invalid float value" in r.stderr


def test_demo_samples_text_with_each_setting():
    """The demo's sampling part runs on its embedded model (no download, no arguments) and is
    reproducible: the same seed gives the same text."""
    from logitkit.cli import DEMO_SAMPLING

    r1, r2 = run("demo"), run("demo")
    assert r1.returncode == 0, r1.stderr
    assert r1.stdout == r2.stdout
    assert "Zen of Python" in r1.stdout
    for label, _ in DEMO_SAMPLING:
        assert label in r1.stdout
    # Greedy decoding from "beautiful" follows the most frequent continuation.
    greedy = r1.stdout.split("greedy (temperature 0)")[1].splitlines()[1]
    assert greedy.strip().startswith("beautiful is better than")


def test_sample_values_with_logprobs(capsys):
    assert main(["sample", "0", "5", "0", "--temperature", "0", "--logprobs"]) == 0
    token, logp = capsys.readouterr().out.split()
    assert token == "1" and float(logp) == 0.0


def test_sample_npy_matches_api(tmp_path):
    x = np.random.default_rng(4).normal(size=(5, 50)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = run("sample", "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "t.npy"), "-k", "5", "-s", "3")
    assert r.returncode == 0, r.stderr
    got = np.load(tmp_path / "t.npy")
    np.testing.assert_array_equal(got, logitkit.sample(x, top_k=5, seed=3))


@pytest.mark.parametrize(
    "args, message",
    [
        (["sample", "1", "2", "--top-p", "1.5"], "top_p"),
        (["sample", "1", "2", "--temperature", "-1"], "temperature"),
        (["sample", "--input", "missing.npy"], "no such file"),
    ],
)
def test_sample_errors(tmp_path, args, message):
    r = run(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_p12_p15_sample_flags_logit_bias_and_top_logprobs(capsys):
    """`sample --logit-bias ID:BIAS --top-logprobs N`: the API's result, one line per row."""
    from logitkit.cli import main

    assert main(["sample", "4.1", "1.0", "2.3", "0.5", "-t", "0", "--logit-bias", "0:-5",
                 "--top-logprobs", "2", "--logprobs-mode", "processed"]) == 0
    line = capsys.readouterr().out.strip()
    want = logitkit.sample([4.1, 1.0, 2.3, 0.5], temperature=0.0, logit_bias={0: -5.0},
                           top_logprobs=2, logprobs_mode="processed")
    tok, lp, rank, alts = line.split("\t")
    assert int(tok) == int(want.tokens) == 2
    assert float(lp) == pytest.approx(float(want.logprobs), abs=1e-6)
    assert rank == "rank 1"
    assert [int(a.split(":")[0]) for a in alts.split()] == want.top_ids.tolist()


def test_p13_sample_flag_repetition_penalty_reads_prompt_tokens(capsys):
    from logitkit.cli import main

    assert main(["sample", "4.1", "4.0", "2.3", "-t", "0"]) == 0
    assert capsys.readouterr().out.strip() == "0"
    assert main(["sample", "4.1", "4.0", "2.3", "-t", "0", "--repetition-penalty", "2",
                 "--prompt-tokens", "0"]) == 0
    assert capsys.readouterr().out.strip() == "1"


@pytest.mark.parametrize("flag", [["--logit-bias", "x"], ["--logit-bias", "1:y"],
                                  ["--prompt-tokens", "a,b"]])
def test_sample_flag_errors_are_clear(flag, capsys):
    from logitkit.cli import main

    assert main(["sample", "1", "2", *flag]) == 2
    assert flag[0] in capsys.readouterr().err
