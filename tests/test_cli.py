"""The command line: ``python -m logitkit`` with ``demo``, ``softmax``, ``sample`` and ``calibrate``."""

import os
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
        (["softmax"], "no logits: give values (logitkit softmax 1 2 3)"),
        (["sample"], "no logits: give values (logitkit sample 1 2 3)"),
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


# --------------------------------------------------------------------------------------------
# Issue 21: no command, files that are not .npy, closed pipes, ASCII streams, logprobs with -o.
# Each runs the CLI in its own interpreter, as a user would.
# --------------------------------------------------------------------------------------------


def run_env(*args, env=None, cwd=None, stdout=subprocess.PIPE):
    """``python -m logitkit ARGS`` with ``env`` added to the environment; output as bytes, so
    that a test sees exactly what was written whatever the encoding."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "logitkit", *args], stdout=stdout, stderr=subprocess.PIPE,
        env=full_env, cwd=cwd, timeout=60,
    )


def test_no_command_prints_help_and_succeeds():
    r = run()
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: logitkit")
    for command in ("demo", "softmax", "sample", "calibrate"):
        assert command in r.stdout
    assert r.stderr == ""


@pytest.fixture
def not_npy(tmp_path):
    """Files named .npy that are not: CSV text, an .npz archive, a pickle, an empty file."""
    import pickle

    files = {
        "text.npy": b"4.1,1.0,2.3\n0.5,0.2,0.1\n",
        "empty.npy": b"",
        "pickle.npy": pickle.dumps([1.0, 2.0]),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with open(tmp_path / "archive.npy", "wb") as f:
        np.savez(f, x=np.zeros(3))
    np.save(tmp_path / "labels.npy", np.zeros(2, dtype=np.int64))
    return tmp_path, [*files, "archive.npy"]


@pytest.mark.parametrize("command", [["softmax", "-i"], ["sample", "-i"], ["calibrate"]])
def test_file_that_is_not_npy_is_one_clean_line(not_npy, command):
    """A text file (or an .npz, a pickle, nothing) given as .npy: one line naming the file,
    exit 2, no traceback and no advice to pass ``allow_pickle`` (issue 21 #6)."""
    tmp_path, names = not_npy
    for name in names:
        path = str(tmp_path / name)
        extra = [str(tmp_path / "labels.npy")] if command == ["calibrate"] else []
        r = run(*command, path, *extra)
        assert r.returncode == 2, (name, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr
        assert lines[0].startswith("logitkit: error: cannot read")
        assert path in lines[0] and "not a .npy file" in lines[0]
        assert "allow_pickle" not in r.stderr and "Traceback" not in r.stderr


def test_damaged_npy_still_says_cannot_read(tmp_path):
    """A .npy whose header is right but whose data is cut short: NumPy's reason, one line."""
    np.save(tmp_path / "x.npy", np.arange(100.0))
    data = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[: len(data) // 2])
    r = run("softmax", "-i", str(tmp_path / "cut.npy"))
    assert r.returncode == 2
    assert "cannot read" in r.stderr and "cut.npy" in r.stderr and "Traceback" not in r.stderr


@pytest.fixture(scope="module")
def big_logits(tmp_path_factory):
    """Logits whose printed results (50000 lines) are far larger than a pipe's buffer."""
    path = tmp_path_factory.mktemp("big") / "big.npy"
    np.save(path, np.random.default_rng(5).normal(size=(50000, 4)))
    return str(path)


# On Windows a write to a pipe whose reader is gone fails with EINVAL, not EPIPE, and there is
# no sh: these two are POSIX tests.
posix_pipes = pytest.mark.skipif(sys.platform == "win32", reason="EPIPE and sh are POSIX")


@posix_pipes
@pytest.mark.parametrize(
    "args", [["demo"], ["--help"], ["softmax", "1", "2"], ["sample", "-i", "BIG", "--logprobs"],
             ["softmax", "-i", "BIG", "--axis", "none"]],
)
def test_closed_pipe_is_no_traceback(big_logits, args):
    """stdout whose reader is gone before anything is written (the reading end of the pipe is
    closed first, so every write fails, whatever the size of the output): no traceback, no
    "Exception ignored" from the interpreter's last flush, exit 1 (0 for argparse's help,
    which exits on its own)."""
    args = [big_logits if a == "BIG" else a for a in args]
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        r = run_env(*args, stdout=write_end)
    finally:
        os.close(write_end)
    assert r.stderr == b"", r.stderr.decode()
    assert r.returncode in (0, 1)


@posix_pipes
def test_output_piped_into_head(big_logits):
    """``logitkit sample ... | head -c 10``, as a shell runs it."""
    cmd = f"'{sys.executable}' -m logitkit sample -i '{big_logits}' --logprobs | head -c 10"
    r = subprocess.run(["sh", "-c", cmd], capture_output=True, timeout=60)
    assert len(r.stdout) == 10
    assert r.stderr == b"", r.stderr.decode()


ASCII_ENVS = [
    pytest.param({"PYTHONIOENCODING": "ascii"}, id="PYTHONIOENCODING=ascii"),
    pytest.param({"LC_ALL": "C"}, id="LC_ALL=C"),
    # Python's UTF-8 mode off, as in an embedding or an older interpreter: stdout is ASCII.
    pytest.param({"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0"}, id="LC_ALL=C-no-UTF-8-mode"),
]


@pytest.mark.parametrize("env", ASCII_ENVS)
def test_every_command_works_under_an_ascii_locale(tmp_path, env):
    rng = np.random.default_rng(1)
    np.save(tmp_path / "logits.npy", rng.normal(size=(40, 3)))
    np.save(tmp_path / "labels.npy", rng.integers(0, 3, size=40))
    np.save(tmp_path / "x.npy", rng.normal(size=(2, 5)))
    commands = [
        [],
        ["--help"],
        ["demo"],
        ["softmax", "4.1", "1.0", "2.3", "-t", "0.5"],
        ["softmax", "-i", "x.npy", "--log"],
        ["sample", "4.1", "1.0", "2.3", "-s", "0", "--logprobs"],
        ["sample", "-i", "x.npy", "--top-logprobs", "2"],
        ["calibrate", "logits.npy", "labels.npy", "--bins", "5"],
        # A path the stream cannot encode is printed with a stand-in character.
        ["softmax", "1", "2", "-o", "r\u00e9sultat.npy"],
    ]
    for args in commands:
        r = run_env(*args, env=env, cwd=tmp_path)
        assert r.returncode == 0, (args, r.stderr.decode(errors="replace"))
        assert b"Traceback" not in r.stderr, (args, r.stderr.decode(errors="replace"))
        assert r.stdout.strip(), args
    assert (tmp_path / "r\u00e9sultat.npy").exists()


def test_demo_bars_fall_back_to_ascii():
    r = run_env("demo", env={"PYTHONIOENCODING": "ascii"})
    assert r.returncode == 0
    r.stdout.decode("ascii")  # nothing but ASCII
    top = [line for line in r.stdout.decode().splitlines() if line.strip().startswith("beach")]
    # The temperature-0.5 row: 97.10% of a 30-cell bar.
    assert top[1].endswith("#" * 29), top


def test_error_message_under_ascii_locale(tmp_path):
    """An error naming a path stdout/stderr cannot encode is still one clean line."""
    r = run_env("softmax", "-i", "donn\u00e9es.npy", env={"PYTHONIOENCODING": "ascii"}, cwd=tmp_path)
    assert r.returncode == 2
    err = r.stderr.decode("ascii")
    assert err.startswith("logitkit: error: cannot read") and "no such file" in err
    assert len(err.strip().splitlines()) == 1


def test_sample_logprobs_with_output_writes_both(tmp_path):
    """``sample --logprobs -o FILE``: an .npz at exactly FILE with ``tokens`` and ``logprobs``
    (they were dropped before), equal to the API's."""
    x = np.random.default_rng(6).normal(size=(4, 3, 20)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "drawn.npy"
    r = run("sample", "-i", str(tmp_path / "x.npy"), "-o", str(out), "-p", "0.9", "-s", "11",
            "--logprobs")
    assert r.returncode == 0, r.stderr
    assert "log-probabilities" in r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drawn.npy", "x.npy"]
    tokens, logprobs = logitkit.sample(x, top_p=0.9, seed=11, return_logprobs=True)
    with np.load(out) as saved:
        assert sorted(saved.files) == ["logprobs", "tokens"]
        np.testing.assert_array_equal(saved["tokens"], tokens)
        np.testing.assert_array_equal(saved["logprobs"], logprobs)
    # Without --logprobs the file stays a plain .npy of the ids.
    r = run("sample", "-i", str(tmp_path / "x.npy"), "-o", str(out), "-p", "0.9", "-s", "11")
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(out), tokens)


def test_sample_top_logprobs_output_goes_to_exactly_the_path(tmp_path):
    """``--top-logprobs N -o FILE`` writes FILE itself (``np.savez`` given a name would have
    written FILE.npz)."""
    out = tmp_path / "top.out"
    r = run("sample", "4.1", "1.0", "2.3", "-t", "0", "--top-logprobs", "2", "--logprobs-mode", "raw",
            "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["top.out"]
    with np.load(out) as saved:
        assert saved["tokens"].tolist() == [0]
        assert saved["top_ids"].tolist() == [[0, 2]]


def test_sample_top_logprobs_output_keeps_the_rows_shape(tmp_path):
    """``--top-logprobs N -o FILE`` keeps ``logits.shape[:-1]`` (and ``+ (N,)`` for the
    alternatives), as ``sample()`` and the ``--logprobs`` archive do for rows of more than one
    dimension (found by a review: the rows were flattened)."""
    x = np.random.default_rng(2).standard_normal((2, 3, 7)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "top.npz"
    r = run("sample", "-i", str(tmp_path / "x.npy"), "-s", "3", "--top-logprobs", "2", "-o", str(out))
    assert r.returncode == 0, r.stderr
    want = logitkit.sample(x, seed=3, top_logprobs=2)
    with np.load(out) as saved:
        assert saved["tokens"].shape == (2, 3) and saved["top_ids"].shape == (2, 3, 2)
        for name in ("tokens", "logprobs", "ranks", "top_ids", "top_logprobs"):
            np.testing.assert_array_equal(saved[name], np.asarray(getattr(want, name)))


def test_help_documents_the_logprobs_file_format():
    r = run("sample", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert ".npz" in text and "tokens" in text and "logprobs" in text


def test_closed_stdout_exits_with_1_and_no_traceback():
    """Found by a review (2026-12-07): started with stdout closed (``>&-``), the CLI died with an
    AttributeError traceback (``sys.stdout`` is None then)."""
    for args in (["demo"], ["softmax", "1", "2"]):
        # The shell closes stdout (`>&-`) and execs the interpreter (no preexec_fn: a fork of
        # this process, which may run JAX's threads, is unsafe).
        r = subprocess.run(
            ["sh", "-c", 'exec "$0" -m logitkit "$@" >&-', sys.executable, *args],
            stderr=subprocess.PIPE, timeout=60,
        )
        assert r.returncode == 1, r.stderr
        assert b"Traceback" not in r.stderr and b"stdout is closed" in r.stderr
