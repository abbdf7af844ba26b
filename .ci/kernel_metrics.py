#!/usr/bin/env python3
"""The measures of issue 22 (kernels written once) over src/, as Markdown on stdout.

    python3 .ci/kernel_metrics.py [--root DIR] [--min-run N] [--runs]

Reports, for src/kernels and for the whole of src/:

- lines per file (every line, as `wc -l` counts them) and totals;
- `unsafe fn` (declarations: `unsafe fn`, `pub unsafe fn`, `pub(crate) unsafe fn`,
  `unsafe extern "C" fn` ...), `unsafe {` blocks (the keyword followed by a brace, after
  comments and string literals are removed), `unsafe impl`, and `// SAFETY:` comments (any
  comment line whose text starts with `SAFETY:`); per file;
- public `unsafe fn`: declared `pub unsafe fn` (unrestricted `pub`) in a module that the crate
  exports (a chain of `pub mod` from src/lib.rs), i.e. part of the crate's public API;
  `pub unsafe fn` in private modules are counted apart;
- duplicated runs between two ISA files (avx2.rs against avx512.rs, the issue's measure, and
  the other pairs of src/kernels for information). The rule: each file is reduced to its
  *significant lines*: comments removed, whitespace collapsed, lines left empty or made only of
  brackets and punctuation (`}`, `});`, `{`) dropped, and intrinsic names normalised, so that
  `_mm512_` / `_mm256_` / `_mm_` become `_mmW_`, `__m512` / `__m256` / `__m128` (and their
  `d`/`i`/`h` variants) become `__mW`, `avx512` / `avx2` (in names and target features) become
  `avxW`, and `_mask_`/`_maskz_` forms are kept as they are. A line of file A is *duplicated*
  when it lies in a window of at least N (default 6) consecutive significant lines whose
  normalised text also occurs, as consecutive significant lines, in file B. A *run* is a
  maximal stretch of consecutive duplicated significant lines of A. Reported: the number of
  runs of A and the significant lines they cover (and the same with A and B swapped);
  `--runs` lists them with their line ranges;
- module dependency cycles among the top-level modules of src/ (`kernels`, `row`, `element`,
  ...; a file's module is the first component of its path under src/, `lib.rs` excluded): an
  edge A -> B for every `crate::B` path in A's files outside comments and strings (`use
  crate::B::...`, `use crate::{B::x, ...}`, and paths in code such as bounds
  `crate::kernels::HasKernels`). Reported: the strongly connected components of more than one
  module, and every pair of modules that use each other, with the first place of each edge.

With `--compiler`, also the unsafe operations the compiler sees: `cargo clippy --lib` with
`-W unsafe_op_in_unsafe_fn -W clippy::undocumented_unsafe_blocks`, for the host and (when its
standard library is installed) for aarch64-unknown-linux-gnu, where neon.rs is compiled;
counted per file: each unsafe operation (call of an unsafe fn or intrinsic, raw-pointer
dereference, ...) inside an `unsafe fn` body but outside an `unsafe {}` block is one E0133
diagnostic, and every `unsafe {}` block without a `// SAFETY:` comment one
`undocumented_unsafe_blocks`.

Standard library only; reads the working tree, writes nothing (`--compiler` runs cargo, which
writes its target directory).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections import defaultdict

ISA_FILES = ["scalar.rs", "avx2.rs", "avx512.rs", "neon.rs"]


# --------------------------------------------------------------------------------------------
# Lexing: Rust source without comments and string contents, line by line.


def strip_code(text: str) -> tuple[list[str], list[str]]:
    """Returns (code lines, comment lines): per source line, the code with comments removed and
    string/char literal contents blanked, and the text of the comments on that line."""
    code, comments = [], []
    cur_code, cur_com = [], []
    i, n = 0, len(text)
    depth = 0  # block comment nesting
    in_str = None  # None, '"', or ('r', hashes)
    while i < n:
        c = text[i]
        if c == "\n":
            code.append("".join(cur_code))
            comments.append("".join(cur_com))
            cur_code, cur_com = [], []
            i += 1
            continue
        if depth:
            if text.startswith("*/", i):
                depth -= 1
                i += 2
            elif text.startswith("/*", i):
                depth += 1
                i += 2
            else:
                cur_com.append(c)
                i += 1
            continue
        if in_str is not None:
            if in_str == '"':
                if c == "\\":
                    i += 2
                    continue
                if c == '"':
                    in_str = None
                    cur_code.append('"')
                i += 1
                continue
            hashes = in_str[1]
            if c == '"' and text.startswith("#" * hashes, i + 1):
                in_str = None
                cur_code.append('"')
                i += 1 + hashes
                continue
            i += 1
            continue
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            cur_com.append(text[i + 2 : j])
            i = j
            continue
        if text.startswith("/*", i):
            depth = 1
            i += 2
            continue
        m = re.match(r'b?r(#*)"', text[i : i + 260])
        if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            in_str = ("r", len(m.group(1)))
            cur_code.append('"')
            i += m.end()
            continue
        if c == '"':
            in_str = '"'
            cur_code.append('"')
            i += 1
            continue
        if c == "'":
            # A char literal ('a', '\n', '\u{..}') or a lifetime ('a).
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i : i + 12])
            if m:
                cur_code.append("' '")
                i += m.end()
                continue
        cur_code.append(c)
        i += 1
    code.append("".join(cur_code))
    comments.append("".join(cur_com))
    return code, comments


# --------------------------------------------------------------------------------------------
# Files and modules.


def rust_files(src: str) -> list[str]:
    out = []
    for dirpath, _, files in os.walk(src):
        for f in files:
            if f.endswith(".rs"):
                out.append(os.path.relpath(os.path.join(dirpath, f), src))
    return sorted(out)


def module_of(rel: str) -> str | None:
    """Top-level module of a file under src/ (None for lib.rs)."""
    parts = rel.replace(os.sep, "/").split("/")
    if parts == ["lib.rs"]:
        return None
    first = parts[0]
    return first[:-3] if first.endswith(".rs") else first


def public_module_files(src: str) -> set[str]:
    """Files of modules reachable from lib.rs through `pub mod` only."""
    public: set[str] = set()

    def visit(rel_file: str, mod_dir: str) -> None:
        public.add(rel_file)
        path = os.path.join(src, rel_file)
        code, _ = strip_code(open(path, encoding="utf-8").read())
        for line in code:
            m = re.match(r"\s*pub\s+mod\s+(\w+)\s*;", line)
            if not m:
                continue
            name = m.group(1)
            for cand in (os.path.join(mod_dir, name + ".rs"), os.path.join(mod_dir, name, "mod.rs")):
                if os.path.exists(os.path.join(src, cand)):
                    visit(cand, os.path.join(mod_dir, name))
                    break

    visit("lib.rs", "")
    return public


# --------------------------------------------------------------------------------------------
# Counts.

UNSAFE_FN = re.compile(r"\bunsafe\s+(extern\s+\"[^\"]*\"\s+)?fn\b")
PUB_UNSAFE_FN = re.compile(r"(^|[^\w)])pub\s+(const\s+)?unsafe\s+(extern\s+\"[^\"]*\"\s+)?fn\b")
UNSAFE_BLOCK = re.compile(r"\bunsafe\s*\{")
UNSAFE_IMPL = re.compile(r"\bunsafe\s+impl\b")
TARGET_FEATURE = re.compile(r"#\[target_feature\(")


def counts(path: str) -> dict[str, int]:
    text = open(path, encoding="utf-8").read()
    code, comments = strip_code(text)
    joined = "\n".join(code)
    return {
        "lines": text.count("\n") + (0 if text.endswith("\n") or not text else 1),
        "unsafe fn": len(UNSAFE_FN.findall(joined)),
        "pub unsafe fn": len(PUB_UNSAFE_FN.findall(joined)),
        "unsafe {": len(UNSAFE_BLOCK.findall(joined)),
        "unsafe impl": len(UNSAFE_IMPL.findall(joined)),
        "SAFETY:": sum(1 for c in comments if re.match(r"\s*SAFETY:", c)),
        "target_feature": len(TARGET_FEATURE.findall(joined)),
    }


# --------------------------------------------------------------------------------------------
# Duplicated runs.

NORMALISE = [
    (re.compile(r"_mm(512|256)?_"), "_mmW_"),
    (re.compile(r"__m(512|256|128)([dhi]?)\b"), r"__mW\2"),
    (re.compile(r"avx512(f|bw|dq|vl)?|avx2"), "avxW"),
    (re.compile(r"\s+"), " "),
]
PUNCT_ONLY = re.compile(r"^[\s{}()\[\];,]*$")


def significant_lines(path: str) -> list[tuple[int, str]]:
    code, _ = strip_code(open(path, encoding="utf-8").read())
    out = []
    for no, line in enumerate(code, 1):
        s = line.strip()
        if PUNCT_ONLY.match(s):
            continue
        for pat, rep in NORMALISE:
            s = pat.sub(rep, s)
        out.append((no, s.strip()))
    return out


def duplicated_runs(a: list[tuple[int, str]], b: list[tuple[int, str]], min_run: int):
    """Runs of `a` (maximal stretches of significant lines covered by a window of `min_run`
    lines that also occurs in `b`): [(first line, last line, significant lines)]."""
    windows = {tuple(s for _, s in b[i : i + min_run]) for i in range(len(b) - min_run + 1)}
    covered = [False] * len(a)
    for i in range(len(a) - min_run + 1):
        if tuple(s for _, s in a[i : i + min_run]) in windows:
            for k in range(i, i + min_run):
                covered[k] = True
    runs, i = [], 0
    while i < len(a):
        if not covered[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(a) and covered[j + 1]:
            j += 1
        runs.append((a[i][0], a[j][0], j - i + 1))
        i = j + 1
    return runs


# --------------------------------------------------------------------------------------------
# Module cycles.

CRATE_PATH = re.compile(r"\bcrate::(\{)?")


def module_edges(src: str, files: list[str]):
    """{(from, to): (file, line)} for every top-level module A using module B."""
    modules = {module_of(f) for f in files} - {None}
    edges: dict[tuple[str, str], tuple[str, int]] = {}
    for rel in files:
        a = module_of(rel)
        if a is None:
            continue
        code, _ = strip_code(open(os.path.join(src, rel), encoding="utf-8").read())
        text = "\n".join(code)
        for m in CRATE_PATH.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            if m.group(1):
                # `crate::{a::x, b, c::{..}}`: the top-level names of the group.
                depth, k, start = 1, m.end(), m.end()
                while k < len(text) and depth:
                    depth += {"{": 1, "}": -1}.get(text[k], 0)
                    k += 1
                group = text[start : k - 1]
                names, depth, tok = [], 0, ""
                for ch in group + ",":
                    if ch == "{":
                        depth += 1
                    elif ch == "}":
                        depth -= 1
                    if ch == "," and depth == 0:
                        names.append(tok.strip())
                        tok = ""
                    else:
                        tok += ch
                targets = [re.match(r"\w*", n).group(0) for n in names if n]
            else:
                targets = [re.match(r"\w*", text[m.end() :]).group(0)]
            for b in targets:
                if b in modules and b != a and (a, b) not in edges:
                    edges[(a, b)] = (rel, line)
    return modules, edges


def sccs(nodes, edges):
    """Tarjan's strongly connected components."""
    graph = defaultdict(list)
    for a, b in edges:
        graph[a].append(b)
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


# --------------------------------------------------------------------------------------------
# Report.


def git(root: str, *args: str) -> str:
    try:
        return subprocess.run(
            ["git", "-C", root, *args], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def compiler_counts(root: str, target: str | None) -> dict[str, dict[str, int]] | None:
    """{file: {"ops": E0133 count, "undocumented": undocumented_unsafe_blocks count}} from
    clippy for `target` (None: the host), or None when clippy fails."""
    cmd = ["cargo", "clippy", "--lib", "--message-format=json", "--quiet"]
    if target:
        cmd += ["--target", target]
    cmd += ["--", "-W", "unsafe_op_in_unsafe_fn", "-W", "clippy::undocumented_unsafe_blocks"]
    try:
        run = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    except OSError:
        return None
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"ops": 0, "undocumented": 0})
    seen = False
    for line in run.stdout.splitlines():
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if m.get("reason") == "build-finished":
            seen = m.get("success", False)
        if m.get("reason") != "compiler-message":
            continue
        msg = m["message"]
        code = (msg.get("code") or {}).get("code")
        spans = [sp for sp in msg.get("spans", []) if sp.get("is_primary")] or msg.get("spans", [])
        if not spans:
            continue
        f = spans[0]["file_name"]
        if code == "E0133":
            out[f]["ops"] += 1
        elif code == "clippy::undocumented_unsafe_blocks":
            out[f]["undocumented"] += 1
    return dict(out) if seen else None


def installed_targets() -> set[str]:
    try:
        return set(
            subprocess.run(
                ["rustup", "target", "list", "--installed"], capture_output=True, text=True
            ).stdout.split()
        )
    except OSError:
        return set()


def table(rows, header):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--min-run", type=int, default=6)
    ap.add_argument("--runs", action="store_true", help="list every duplicated run")
    ap.add_argument(
        "--compiler", action="store_true", help="count unsafe operations with cargo clippy"
    )
    args = ap.parse_args()
    src = os.path.join(args.root, "src")
    files = rust_files(src)
    public = public_module_files(src)
    per = {f: counts(os.path.join(src, f)) for f in files}
    keys = ["lines", "unsafe fn", "pub unsafe fn", "unsafe {", "unsafe impl", "SAFETY:", "target_feature"]

    head = git(args.root, "rev-parse", "HEAD")
    src_commit = git(args.root, "log", "-1", "--format=%H %s", "--", "src")
    dirty = git(args.root, "status", "--porcelain", "--", "src")
    print("# Kernel-layer metrics (issue 22)\n")
    print(f"Measured by `.ci/kernel_metrics.py` at commit `{head}`; the last commit that touched")
    print(f"src/ is `{src_commit[:40]}`{' (src/ has uncommitted changes)' if dirty else ''}.\n")

    def section(title, sel):
        rows = [[f"`{f}`"] + [per[f][k] for k in keys] for f in sel]
        total = ["**total**"] + [sum(per[f][k] for f in sel) for k in keys]
        print(f"## {title}\n")
        print(table(rows + [total], ["file"] + keys))
        print()

    kern = [f for f in files if f.replace(os.sep, "/").startswith("kernels/")]
    section("src/kernels", kern)
    isa = [f for f in kern if os.path.basename(f) in ISA_FILES]
    print(
        f"Per-ISA files ({', '.join(os.path.basename(f) for f in isa)}): "
        f"{sum(per[f]['lines'] for f in isa)} lines; src/kernels: "
        f"{sum(per[f]['lines'] for f in kern)} lines.\n"
    )
    section("src (every file)", files)

    pub_api = [
        (f, n)
        for f in files
        if f in public
        for n in [per[f]["pub unsafe fn"]]
        if n
    ]
    private_pub = sum(per[f]["pub unsafe fn"] for f in files if f not in public)
    print("## Public `unsafe fn`\n")
    print(
        f"In the crate's public modules (`pub mod` chains from lib.rs): "
        f"{sum(n for _, n in pub_api)} "
        f"({', '.join(f'`{f}` {n}' for f, n in pub_api) or 'none'}). "
        f"`pub unsafe fn` in private modules (not public API): {private_pub}.\n"
    )
    for f, _ in pub_api:
        code, _c = strip_code(open(os.path.join(src, f), encoding="utf-8").read())
        for no, line in enumerate(code, 1):
            if PUB_UNSAFE_FN.search(line):
                name = re.search(r"fn\s+(\w+)", line)
                print(f"- `{f}:{no}` `{name.group(1) if name else '?'}`")
    print()

    if args.compiler:
        host = compiler_counts(args.root, None)
        a64 = (
            compiler_counts(args.root, "aarch64-unknown-linux-gnu")
            if "aarch64-unknown-linux-gnu" in installed_targets()
            else None
        )
        print("## Unsafe operations outside `unsafe {}` blocks (rustc, `unsafe_op_in_unsafe_fn`)\n")
        if host is None:
            print("cargo clippy failed; not measured.\n")
        else:
            names = sorted(set(host) | set(a64 or {}))
            rows = []
            for f in names:
                h = host.get(f, {"ops": 0, "undocumented": 0})
                a = (a64 or {}).get(f, {"ops": 0, "undocumented": 0})
                rows.append([f"`{f}`", h["ops"], a["ops"] if a64 else "-", h["undocumented"], a["undocumented"] if a64 else "-"])
            union = sum(host.get(f, {}).get("ops", 0) for f in names) + sum(
                (a64 or {}).get(f, {}).get("ops", 0) for f in names if f not in host
            )
            rows.append(["**total**", sum(r[1] for r in rows), sum(r[2] for r in rows) if a64 else "-", sum(r[3] for r in rows), sum(r[4] for r in rows) if a64 else "-"])
            print(table(rows, ["file", "ops (host)", "ops (aarch64)", "undocumented blocks (host)", "undocumented blocks (aarch64)"]))
            print()
            print(
                f"Every file, each counted once (the host's count; aarch64's for files only it "
                f"compiles): {union} unsafe operations with no `unsafe {{}}` block of their own, "
                "so no `// SAFETY:` comment at the operation.\n"
            )

    print(f"## Duplicated runs (at least {args.min_run} significant lines)\n")
    kdir = os.path.join(src, "kernels")
    # Every file named for an ISA, at the top of src/kernels (the level files) or below it
    # (isa/: the primitive layer), keyed by its path under src/kernels.
    sig = {}
    for dirpath, _, names in os.walk(kdir):
        for name in sorted(names):
            if name in ISA_FILES:
                path = os.path.join(dirpath, name)
                sig[os.path.relpath(path, kdir).replace(os.sep, "/")] = significant_lines(path)
    rows, listing = [], []
    pairs = [("avx2.rs", "avx512.rs")] + [
        (a, b)
        for i, a in enumerate(sorted(sig))
        for b in sorted(sig)[i + 1 :]
        if {a, b} != {"avx2.rs", "avx512.rs"}
    ]
    for a, b in pairs:
        if a not in sig or b not in sig:
            continue
        ra = duplicated_runs(sig[a], sig[b], args.min_run)
        rb = duplicated_runs(sig[b], sig[a], args.min_run)
        rows.append(
            [
                f"`{a}` vs `{b}`",
                len(ra),
                sum(r[2] for r in ra),
                len(sig[a]),
                len(rb),
                sum(r[2] for r in rb),
                len(sig[b]),
            ]
        )
        if args.runs and (a, b) == ("avx2.rs", "avx512.rs"):
            listing = [(a, r) for r in ra] + [(b, r) for r in rb]
    print(
        table(
            rows,
            [
                "A vs B",
                "runs in A",
                "A lines in runs",
                "A significant lines",
                "runs in B",
                "B lines in runs",
                "B significant lines",
            ],
        )
    )
    print()
    print(
        "Significant lines: code lines left after removing comments and lines of only brackets "
        "and punctuation, intrinsic names normalised (`_mm512_`/`_mm256_`/`_mm_` -> `_mmW_`, "
        "`__m512`/`__m256`/`__m128` -> `__mW`, `avx512`/`avx2` -> `avxW`, whitespace "
        "collapsed). A run: a maximal stretch of A's significant lines each inside a window of "
        f"{args.min_run} consecutive significant lines that also occurs in B.\n"
    )
    for name, (first, last, n) in listing:
        print(f"- `{name}` lines {first}-{last} ({n} significant)")
    if listing:
        print()

    modules, edges = module_edges(src, files)
    comps = sccs(modules, edges)
    print("## Module dependency cycles (top-level modules of src/)\n")
    if not comps:
        print("None.\n")
    for c in comps:
        print(f"- strongly connected: {', '.join(f'`{m}`' for m in c)}")
    mutual = sorted(
        {tuple(sorted((a, b))) for (a, b) in edges if (b, a) in edges}
    )
    print()
    print(f"Pairs that use each other ({len(mutual)}):\n")
    for a, b in mutual:
        fa, la = edges[(a, b)]
        fb, lb = edges[(b, a)]
        print(f"- `{a}` <-> `{b}` (`{a}` -> `{b}` at `src/{fa}:{la}`; `{b}` -> `{a}` at `src/{fb}:{lb}`)")
    print()
    print(f"Edges: {len(edges)} among {len(modules)} modules.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
