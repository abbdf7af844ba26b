"""Command line: ``python -m logitkit demo``, ``softmax``, ``sample`` and ``calibrate``.

Also installed as the ``logitkit`` script; without a command it prints the help.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

import numpy as np

from . import Sampler, __version__, get_num_threads, log_softmax, logsumexp, sample, simd_level, softmax

#: The embedded default: an image classifier's logits for one holiday photo.
DEMO_LABELS = ("beach", "mountains", "city", "forest", "indoors")
DEMO_LOGITS = (4.1, 1.0, 2.3, -0.5, 0.2)
DEMO_TEMPERATURES = (0.5, 1.0, 2.0)
BAR_WIDTH = 30


#: Block characters for a bar in eighths of a cell, and the ASCII stand-in for a full cell.
BAR_BLOCKS = ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉", "█")
BAR_ASCII = "#"


def _bar(p: float, width: int = BAR_WIDTH, ascii_only: bool = False) -> str:
    """A horizontal bar of ``p * width`` cells: in eighths of a cell with block characters, or
    in whole cells of ``#`` when ``ascii_only`` is true."""
    p = max(0.0, min(1.0, p))
    if ascii_only:
        return BAR_ASCII * int(round(p * width))
    full, part = divmod(int(round(p * width * 8)), 8)
    return BAR_BLOCKS[8] * full + BAR_BLOCKS[part]


def _can_encode(out, text: str) -> bool:
    """Whether ``text`` can be written to the text stream ``out`` (false for an ASCII or
    Latin-1 stream, as under ``PYTHONIOENCODING=ascii``); a stream that names no encoding is
    taken to accept anything."""
    encoding = getattr(out, "encoding", None)
    if not encoding:
        return True
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def probability_table(
    labels: Sequence[str], logits: Sequence[float], temperature: float, ascii_only: bool = False
) -> str:
    """The softmax of ``logits`` at ``temperature`` as a text table with bars.

    Parameters
    ----------
    labels : sequence of str
        One label per logit.
    logits : sequence of float
        The logits.
    temperature : float
        The softmax temperature.
    ascii_only : bool, default False
        Draw the bars with ``#`` instead of block characters (for streams that cannot encode
        them).

    Returns
    -------
    str
        A heading line, then one line per label, most probable first.
    """
    x = np.asarray(logits, dtype=np.float64)
    p = softmax(x, temperature=temperature)
    lp = log_softmax(x, temperature=temperature)
    width = max(len(s) for s in labels)
    lines = [f"temperature {temperature:g}"]
    for label, pi, lpi in sorted(zip(labels, p, lp), key=lambda r: -r[1]):
        bar = _bar(float(pi), ascii_only=ascii_only)
        lines.append(f"  {label:<{width}}  {pi:7.2%}  log p {lpi:8.4f}  {bar}")
    return "\n".join(lines)


def run_demo(out=None) -> int:
    """Shows what the package does on the embedded photo-album logits."""
    out = out or sys.stdout
    x = np.asarray(DEMO_LOGITS)
    print(f"logitkit {__version__}  (SIMD: {simd_level()}, threads: {get_num_threads()})", file=out)
    print("", file=out)
    print("A photo classifier's logits for one holiday picture:", file=out)
    width = max(len(s) for s in DEMO_LABELS)
    for label, v in zip(DEMO_LABELS, DEMO_LOGITS):
        print(f"  {label:<{width}}  {v:5.1f}", file=out)
    print("", file=out)
    print("softmax turns them into probabilities; the temperature sharpens (< 1) or flattens (> 1):", file=out)
    ascii_only = not _can_encode(out, "".join(BAR_BLOCKS))
    for t in DEMO_TEMPERATURES:
        print("", file=out)
        print(probability_table(DEMO_LABELS, DEMO_LOGITS, t, ascii_only=ascii_only), file=out)
    print("", file=out)
    print(f"logsumexp(logits) = {float(logsumexp(x)):.6f}  (the log of softmax's normaliser)", file=out)
    big = np.float32([3e38, -3e38])
    print(f"overflow-safe: softmax(float32 [3e38, -3e38]) = {softmax(big)}", file=out)
    print("", file=out)
    run_sampling_demo(out)
    return 0


#: Sampling settings the demo compares: (label, keyword arguments of logitkit.sample).
DEMO_SAMPLING = (
    ("greedy (temperature 0)", dict(temperature=0.0)),
    ("temperature 1.0", dict(temperature=1.0)),
    ("temperature 0.7, top_k 3", dict(temperature=0.7, top_k=3)),
    ("top_p 0.5", dict(top_p=0.5)),
    ("min_p 0.3", dict(min_p=0.3)),
)


def run_sampling_demo(out=None, seed: int = 7) -> None:
    """Generates a few lines with each sampling setting from a word-bigram model of the Zen of
    Python, built at run time."""
    from ._zen_lm import BigramModel, zen_text

    out = out or sys.stdout
    lm = BigramModel(zen_text())
    print(
        f"Sampling next words from a bigram model of the Zen of Python ({len(lm.vocab)} words, "
        f"seed {seed}); mean log p of the chosen words in brackets:",
        file=out,
    )
    for label, params in DEMO_SAMPLING:
        sampler = Sampler(seed=seed, **params)

        def draw(logits, sampler=sampler):
            return sampler(logits, return_logprobs=True)

        text, mean_logp = lm.generate("beautiful", lines=2, max_words=30, sampler=draw)
        print("", file=out)
        print(f"  {label}  [{mean_logp:.2f}]", file=out)
        for line in text.splitlines():
            print(f"    {line}", file=out)


def _read_logits(args: argparse.Namespace) -> np.ndarray:
    if args.input is not None:
        if args.values:
            raise ValueError("give logits either as values or with --input, not both")
        return _load_npy(args.input)
    if not args.values:
        command = getattr(args, "command", None) or "softmax"
        raise ValueError(f"no logits: give values (logitkit {command} 1 2 3) or --input FILE.npy")
    return np.asarray(args.values, dtype=np.float64)


#: The first bytes of every .npy file (NumPy's format specification).
NPY_MAGIC = b"\x93NUMPY"


def _load_npy(path: str, what: str = "") -> np.ndarray:
    """The array in the .npy file ``path``; a missing file, a file that is not in .npy format
    (text, an .npz archive, a pickle) or a damaged one is a one-line ``ValueError`` naming
    ``what`` and ``path``.

    The magic bytes are checked first: given a text file, ``np.load`` guesses it is a pickle and
    suggests ``allow_pickle=True``, which would be the wrong advice (and unsafe).
    """
    name = f"{what} {path}" if what else path
    try:
        with open(path, "rb") as f:
            is_npy = f.read(len(NPY_MAGIC)) == NPY_MAGIC
            f.seek(0)
            array = np.load(f, allow_pickle=False) if is_npy else None
    except FileNotFoundError:
        raise ValueError(f"cannot read {name}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"cannot read {name}: is a directory") from None
    except OSError as e:
        raise ValueError(f"cannot read {name}: {e.strerror or e}") from None
    except ValueError as e:  # a .npy header or data NumPy cannot read
        raise ValueError(f"cannot read {name} as a .npy array: {e}") from None
    if array is None:
        raise ValueError(f"cannot read {name}: not a .npy file (save arrays with numpy.save)")
    return array


def _save_npz(path: str, **arrays: np.ndarray) -> None:
    """Writes ``arrays`` as an .npz archive to exactly ``path`` (``np.savez`` given a name would
    append ``.npz``); a failed write is a ``ValueError`` naming the path, as in ``_save_npy``."""
    try:
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    except OSError as e:
        reason = e.strerror or str(e)
        raise ValueError(f"cannot write {path}: {reason}") from None


def _save_npy(path: str, array: np.ndarray) -> None:
    """Writes ``array`` in .npy format to exactly ``path`` (``np.save`` given a name would append
    ``.npy`` to it); a failed write, including one that fails only when the file is flushed and
    closed (a full disk, ``/dev/full``), is a ``ValueError`` naming the path."""
    try:
        with open(path, "wb") as f:
            np.save(f, array)
    except OSError as e:
        reason = e.strerror or str(e)
        raise ValueError(f"cannot write {path}: {reason}") from None


def run_softmax(args: argparse.Namespace, out=None) -> int:
    out = out or sys.stdout
    x = _read_logits(args)
    axis = None if args.axis == "none" else int(args.axis)
    fn = log_softmax if args.log else softmax
    result = fn(x, axis=axis, temperature=args.temperature)
    if args.output is not None:
        _save_npy(args.output, result)
        print(f"wrote {result.dtype} array of shape {result.shape} to {args.output}", file=out)
    else:
        with np.printoptions(precision=6, suppress=False, threshold=200):
            print(result, file=out)
    return 0


def run_sample(args: argparse.Namespace, out=None) -> int:
    out = out or sys.stdout
    x = _read_logits(args)
    if x.ndim == 0:
        raise ValueError("logits must have at least one dimension (the vocabulary)")
    result = sample(
        x,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        seed=args.seed,
        return_logprobs=args.logprobs,
        top_logprobs=args.top_logprobs,
        logprobs_mode=args.logprobs_mode,
        logit_bias=_parse_logit_bias(args.logit_bias),
        repetition_penalty=args.repetition_penalty,
        prompt_tokens=_parse_prompt(args.prompt_tokens, x.shape[:-1]),
    )
    if args.top_logprobs > 0:
        return _print_top(result, args, out)
    tokens, logprobs = result if args.logprobs else (result, None)
    tokens = np.atleast_1d(np.asarray(tokens))
    if args.output is not None:
        if logprobs is None:
            _save_npy(args.output, tokens)
            print(f"wrote {tokens.size} token ids to {args.output}", file=out)
        else:
            logprobs = np.atleast_1d(np.asarray(logprobs))
            _save_npz(args.output, tokens=tokens, logprobs=logprobs)
            print(f"wrote {tokens.size} token ids and their log-probabilities to {args.output} "
                  "(.npz: tokens, logprobs)", file=out)
        return 0
    if logprobs is None:
        print(" ".join(str(int(t)) for t in tokens.ravel()), file=out)
    else:
        for t, lp in zip(tokens.ravel(), np.atleast_1d(np.asarray(logprobs)).ravel()):
            print(f"{int(t)}\t{float(lp):.6f}", file=out)
    return 0


def _parse_logit_bias(items: Optional[Sequence[str]]) -> Optional[dict]:
    """``["ID:BIAS", ...]`` as ``{id: bias}`` (``-inf`` bans a token)."""
    if not items:
        return None
    bias = {}
    for item in items:
        tok, sep, value = item.partition(":")
        try:
            if not sep:
                raise ValueError
            bias[int(tok)] = float(value)
        except ValueError:
            raise ValueError(f"--logit-bias takes ID:BIAS, e.g. 50256:-100, got {item!r}") from None
    return bias


def _parse_prompt(text: Optional[str], rows_shape) -> Optional[list]:
    """``"1,2,3"`` as the prompt of every row."""
    if not text:
        return None
    try:
        ids = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"--prompt-tokens takes comma-separated token ids, got {text!r}") from None
    rows = int(np.prod(rows_shape))
    return ids if len(rows_shape) == 0 else [ids] * rows


def _print_top(result, args: argparse.Namespace, out) -> int:
    """One line per row: token, logprob, rank, then the alternatives as ``id:logprob``."""
    tokens = np.atleast_1d(np.asarray(result.tokens)).ravel()
    logprobs = np.atleast_1d(np.asarray(result.logprobs)).ravel()
    ranks = np.atleast_1d(np.asarray(result.ranks)).ravel()
    n = args.top_logprobs
    top_ids = np.asarray(result.top_ids).reshape(-1, n)
    top_lp = np.asarray(result.top_logprobs).reshape(-1, n)
    if args.output is not None:
        # The rows' shape (at least 1-D), as the .npy and --logprobs outputs keep it, and the
        # alternatives along a last axis.
        rows = np.atleast_1d(np.asarray(result.tokens)).shape
        _save_npz(args.output, tokens=np.asarray(result.tokens).reshape(rows),
                  logprobs=np.asarray(result.logprobs).reshape(rows),
                  ranks=np.asarray(result.ranks).reshape(rows),
                  top_ids=np.asarray(result.top_ids).reshape(rows + (n,)),
                  top_logprobs=np.asarray(result.top_logprobs).reshape(rows + (n,)))
        print(f"wrote {tokens.size} token ids with their top {n} alternatives to {args.output} "
              "(.npz: tokens, logprobs, ranks, top_ids, top_logprobs)", file=out)
        return 0
    for t, lp, r, ids, lps in zip(tokens, logprobs, ranks, top_ids, top_lp):
        alts = " ".join(f"{int(i)}:{float(v):.4f}" for i, v in zip(ids, lps))
        print(f"{int(t)}\t{float(lp):.6f}\trank {int(r)}\t{alts}", file=out)
    return 0


def run_calibrate(args: argparse.Namespace, out=None) -> int:
    """``logitkit calibrate logits.npy labels.npy [--bins N] [--plot out.png]``: fits the
    temperature and prints it with the NLL and ECE before and after."""
    import warnings

    from .calibration import (
        _image_format,
        expected_calibration_error,
        fit_temperature,
        reliability_diagram,
    )
    from .loss import cross_entropy

    out = out or sys.stdout
    logits = _load_npy(args.logits, "logits")
    labels = _load_npy(args.labels, "labels")
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError(
                "--plot needs matplotlib: pip install 'logitkit[plot]' (or matplotlib)"
            ) from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = fit_temperature(logits, labels, axis=args.axis)
    p0 = softmax(logits, axis=args.axis)
    p1 = softmax(logits, axis=args.axis, temperature=t)
    nll0 = float(cross_entropy(logits, labels, args.axis))
    nll1 = float(cross_entropy(logits, labels, args.axis, temperature=t))
    ece0 = expected_calibration_error(p0, labels, args.bins, axis=args.axis)
    ece1 = expected_calibration_error(p1, labels, args.bins, axis=args.axis)
    n = int(np.asarray(labels).size)
    print(f"{n} examples, {np.shape(logits)[args.axis]} classes", file=out)
    print(f"temperature  {t:.6g}", file=out)
    for w in caught:
        print(f"warning: {w.message}", file=out)
    print(f"{'':12} {'before':>10} {'after':>10}", file=out)
    print(f"{'NLL':12} {nll0:10.6f} {nll1:10.6f}", file=out)
    print(f"{'ECE (' + str(args.bins) + ' bins)':12} {ece0:10.6f} {ece1:10.6f}", file=out)
    if args.plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(9, 4.5), sharey=True)
        # The diagram's helper wants the class axis last.
        q0, q1 = np.moveaxis(p0, args.axis, -1), np.moveaxis(p1, args.axis, -1)
        reliability_diagram(q0, labels, args.bins, ax=axes[0], label="T = 1")
        reliability_diagram(q1, labels, args.bins, ax=axes[1], label=f"T = {t:.4g}")
        axes[0].set_title("before")
        axes[1].set_title("after temperature scaling")
        try:
            fig.savefig(args.plot, format=_image_format(args.plot), dpi=120, bbox_inches="tight")
        except OSError as e:
            raise ValueError(f"cannot write {args.plot}: {e}") from None
        plt.close(fig)
        print(f"wrote reliability diagram to {args.plot}", file=out)
    return 0


def _add_calibrate_parser(sub) -> None:
    c = sub.add_parser("calibrate", help="fit a softmax temperature; print NLL and ECE before/after")
    c.add_argument("logits", help=".npy file of logits, shape (..., C)")
    c.add_argument("labels", help=".npy file of integer class labels, shape (...)")
    c.add_argument("--bins", type=int, default=15, help="confidence bins of the ECE (default 15)")
    c.add_argument("-a", "--axis", type=int, default=-1, help="class axis of the logits (default -1)")
    c.add_argument("--plot", metavar="OUT.png", help="write a reliability diagram (needs matplotlib)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="logitkit", description="Fast, exact softmax and friends for NumPy.")
    p.add_argument("--version", action="version", version=f"logitkit {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "demo",
        help="softmax at a few temperatures on an embedded example, then text from the bundled"
        " bigram model under five sampling settings",
    )
    s = sub.add_parser("softmax", help="softmax (or --log: log-softmax) of logits given as values or a .npy file")
    s.add_argument("values", nargs="*", type=float, help="logits, e.g. 4.1 1.0 2.3")
    s.add_argument("-i", "--input", help="read logits from this .npy file")
    s.add_argument("-o", "--output", help="save the result in .npy format to exactly this path instead of printing it")
    s.add_argument("-t", "--temperature", type=float, default=1.0, help="temperature (default 1.0)")
    s.add_argument("-a", "--axis", default="-1", help="axis to normalise along, or 'none' (default -1)")
    s.add_argument("--log", action="store_true", help="log-softmax instead of softmax")
    m = sub.add_parser("sample", help="sample token ids from logits (last axis = vocabulary)")
    m.add_argument("values", nargs="*", type=float, help="logits of one row, e.g. 4.1 1.0 2.3")
    m.add_argument("-i", "--input", help="read logits from this .npy file, shape (..., V)")
    m.add_argument("-o", "--output", metavar="FILE",
                   help="save the token ids in .npy format to exactly this path; with --logprobs "
                        "or --top-logprobs, an .npz archive (numpy.load) holding the arrays tokens "
                        "and logprobs (and ranks, top_ids, top_logprobs) instead")
    m.add_argument("-t", "--temperature", type=float, default=1.0, help="0 = greedy (default 1.0)")
    m.add_argument("-k", "--top-k", type=int, default=0, help="keep the k largest (0 = off)")
    m.add_argument("-p", "--top-p", type=float, default=1.0, help="nucleus mass (1 = off)")
    m.add_argument("--min-p", type=float, default=0.0, help="min-p ratio (0 = off)")
    m.add_argument("-s", "--seed", type=int, default=None, help="seed for reproducible draws")
    m.add_argument("--logprobs", action="store_true",
                   help="also print (or with -o save) each token's log-probability")
    m.add_argument("--repetition-penalty", type=float, default=1.0, metavar="R",
                   help="penalise the tokens of --prompt-tokens (1 = off)")
    m.add_argument("--prompt-tokens", metavar="ID,ID,...",
                   help="token ids already in each row's context, for --repetition-penalty")
    m.add_argument("--logit-bias", action="append", metavar="ID:BIAS",
                   help="add BIAS to token ID's logit (repeatable; -inf bans the token)")
    m.add_argument("--top-logprobs", type=int, default=0, metavar="N",
                   help="also print the N most probable tokens of each row with their log-probabilities")
    m.add_argument("--logprobs-mode", choices=("sampled", "processed", "raw"), default="sampled",
                   help="distribution of the printed log-probabilities: the one drawn from "
                        "(default), before top-k/top-p/min-p, or of the logits as given")
    _add_calibrate_parser(sub)
    return p


def _tolerate_unencodable_output() -> None:
    """Lets stdout print what its encoding cannot encode as ``?`` instead of raising
    ``UnicodeEncodeError`` (under ``PYTHONIOENCODING=ascii``, or an ASCII locale where Python's
    UTF-8 mode is off): a label, a path or a message with a non-ASCII character must not turn
    into a traceback. stderr already uses ``backslashreplace``."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None and not _can_encode(sys.stdout, "\u2588\u00b5"):
        try:
            reconfigure(errors="replace")
        except (ValueError, OSError):  # a stream already written to in another mode, or closed
            pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m logitkit`` and the ``logitkit`` script; returns the exit code.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name (default: ``sys.argv[1:]``). None at all prints
        the help.

    Returns
    -------
    int
        0 on success, 2 for a usage or input error (a message on stderr: one line for bad
        input, argparse's usage lines then one line for a bad command line), 1 when
        stdout was closed before everything was written (``| head``).
    """
    if sys.stdout is None:
        # Started with stdout closed (`>&-`): nowhere to write, as when a reader went away.
        if sys.stderr is not None:
            print("logitkit: stdout is closed", file=sys.stderr)
        return 1
    _tolerate_unencodable_output()
    try:
        code = _run(sys.argv[1:] if argv is None else list(argv))
        # Output that fit in the buffer is written only now: a reader that went away (`| head`)
        # shows up here.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # As Python's documentation recommends (signal module, "Note on SIGPIPE"): send the rest
        # of stdout to devnull, so that the interpreter's own flush at exit does not raise again
        # and print a traceback, and exit quietly with an error status.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _run(argv: Sequence[str]) -> int:
    parser = _parser()
    if not argv:
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return run_demo()
        if args.command == "softmax":
            if args.axis != "none":
                try:
                    int(args.axis)
                except ValueError:
                    raise ValueError(f"--axis must be an integer or 'none', got {args.axis!r}") from None
            return run_softmax(args)
        if args.command == "sample":
            return run_sample(args)
        if args.command == "calibrate":
            return run_calibrate(args)
    except BrokenPipeError:
        raise
    except (ValueError, TypeError) as e:
        print(f"logitkit: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # AxisError and anything numpy raises on odd files
        print(f"logitkit: error: {e}", file=sys.stderr)
        return 2
    return 2
