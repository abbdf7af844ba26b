#!/usr/bin/env python3
"""Every public Rust API item has a runnable example in its rustdoc (issue 21).

Lists the public items whose `///` doc block has no ``` code block (an example that
`cargo test --doc` compiles and runs) and exits 1 when there is any; exits 0 otherwise.
Whether an example asserts something is left to review.

A heuristic, line-based parser, not a Rust compiler. Its rule:

* Modules: from src/lib.rs, every `mod NAME;` (src/NAME.rs or src/NAME/mod.rs) and, in a
  directory module, its own `mod NAME;` declarations. `#[cfg(feature = "python")]` modules
  (src/python/) are skipped. A module is *public* when it and all its parents are declared
  `pub mod` (not `pub(crate)`) without `#[doc(hidden)]`.
* Public items: a top-level (brace depth 0) `pub fn|struct|enum|trait|const|static|type|union`
  (also `pub const fn`, `pub unsafe fn`) in a public module; in a private module, only the ones
  whose name a public module re-exports with `pub use` (`pub use a::b::{X, Y as Z}`). A
  `#[doc(hidden)]` item or re-export is skipped; so are `pub(crate)`/`pub(super)`/`pub(in ..)`
  items, struct fields, enum variants and trait members.
* Methods: `pub fn` and `pub const` at depth 1 of an inherent `impl` block (no `for`) of a
  public struct/enum/type, wherever that block is (outside src/python/).
* Macro-generated methods: a `macro_rules!` whose body contains `pub fn $` is a method
  generator; at each of its invocations inside such an `impl` block, every `name: Type;` entry
  is a method, documented by the `///` lines before the entry.
* Items under `#[cfg(test)]` or `#[cfg(doctest)]` are skipped. A re-export through a private
  module's `pub use` counts when a public module re-exports that name in turn.
* An item's doc block is the run of `///` lines and attribute lines directly above it (no blank
  line between). It has an example when one of its `///` lines is a code fence that
  `cargo test --doc` runs: ``` or ```rust (```ignore, ```no_run, ```text, ```compile_fail
  and the like do not count).

Brace depth ignores comments, strings (also raw strings) and char literals.

Usage: python3 .ci/check_rustdoc_examples.py [--list-all] [SRC_DIR]
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ITEM_RE = re.compile(
    r"^\s*pub\s+(?:(?:const|unsafe|async|extern\s+\"[^\"]*\")\s+)*fn\s+(\w+)"
    r"|^\s*pub\s+(?:struct|enum|trait|const|static|type|union)\s+(?:mut\s+)?(\w+)"
)
TYPE_ITEM_RE = re.compile(r"^\s*pub\s+(struct|enum|type|union)\s+(\w+)")
MOD_RE = re.compile(r"^\s*(pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;")
PUB_USE_RE = re.compile(r"^[ \t]*pub[ \t]+use\s+([^;]*);", re.M)


def code_lines(text: str) -> tuple[list[str], list[int]]:
    """Each line with comments, strings and chars blanked, and the brace depth at its start."""
    out: list[str] = []
    depths: list[int] = []
    depth = 0
    i, n = 0, len(text)
    line: list[str] = []
    depths.append(0)
    block = 0  # nesting of /* */ comments

    def newline() -> None:
        out.append("".join(line))
        line.clear()
        depths.append(depth)

    while i < n:
        c = text[i]
        if c == "\n":
            newline()
            i += 1
            continue
        if block:
            if text.startswith("*/", i):
                block -= 1
                i += 2
            elif text.startswith("/*", i):
                block += 1
                i += 2
            else:
                i += 1
            continue
        if text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        if text.startswith("/*", i):
            block += 1
            i += 2
            continue
        m = re.match(r'b?r(#*)"', text[i:i + 260])
        if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = text.find('"' + m.group(1), i + len(m.group(0)))
            end = n if end < 0 else end + 1 + len(m.group(1))
            for ch in text[i:end]:
                if ch == "\n":
                    newline()
            line.append('""')
            i = end
            continue
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\":
                    i += 1
                elif text[i] == "\n":
                    newline()
                i += 1
            i += 1
            line.append('""')
            continue
        if c == "'":
            m = re.match(r"'(\\.[^']*|[^\\'])'", text[i:i + 12])
            if m:  # a char literal; otherwise a lifetime
                line.append("' '")
                i += len(m.group(0))
                continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        line.append(c)
        i += 1
    out.append("".join(line))
    return out, depths


@dataclass
class Module:
    path: tuple[str, ...]
    file: Path
    public: bool
    lines: list[str] = field(default_factory=list)
    code: list[str] = field(default_factory=list)
    depth: list[int] = field(default_factory=list)


def load_modules(src: Path) -> list[Module]:
    mods: list[Module] = []

    def visit(path: tuple[str, ...], file: Path, public: bool, dir_: Path) -> None:
        text = file.read_text()
        mod = Module(path, file, public, text.split("\n"))
        mod.code, mod.depth = code_lines(text)
        mods.append(mod)
        for k, code in enumerate(mod.code):
            m = MOD_RE.match(code)
            if not m or mod.depth[k] != 0:
                continue
            attrs = attributes_above(mod.lines, k)
            if any('feature = "python"' in a for a in attrs):
                continue
            name = m.group(2)
            vis = (m.group(1) or "").strip()
            for cand in (dir_ / f"{name}.rs", dir_ / name / "mod.rs"):
                if cand.exists():
                    shown = vis == "pub" and not any(a.startswith("#[doc(hidden)]") for a in attrs)
                    visit(path + (name,), cand, public and shown, cand.parent
                          if cand.name == "mod.rs" else dir_ / name)
                    break

    visit((), src / "lib.rs", True, src)
    return mods


def attributes_above(lines: list[str], k: int) -> list[str]:
    """The attribute and doc lines directly above line k (stops at a blank or code line)."""
    out = []
    j = k - 1
    in_attr = False
    while j >= 0:
        s = lines[j].strip()
        if s.startswith("///") or s.startswith("#[") or s.startswith("//"):
            out.append(s)
        elif in_attr or s.endswith(")]") or s.endswith("]"):
            # the tail of a multi-line attribute
            out.append(s)
            in_attr = not s.startswith("#[")
        else:
            break
        j -= 1
    return out


RUNNABLE_FENCE = re.compile(r"^```\s*(rust)?\s*(,\s*edition\d+\s*)?$")


def has_example(lines: list[str], k: int) -> bool:
    """Whether the doc block above line k opens a runnable code block."""
    docs = [s[3:].strip() for s in reversed(attributes_above(lines, k)) if s.startswith("///")]
    inside = False
    for d in docs:
        if not d.startswith("```"):
            continue
        if not inside and RUNNABLE_FENCE.match(d):
            return True
        inside = not inside
    return False


def hidden(lines: list[str], k: int) -> bool:
    return any(s.startswith("#[doc(hidden)]") for s in attributes_above(lines, k))


def parse_use_tree(tree: str, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str, str]]:
    """`a::b::{X, c::Y as Z}` -> [(("a", "b"), "X", "X"), (("a", "b", "c"), "Y", "Z")]."""
    tree = " ".join(tree.split())
    out = []
    m = re.match(r"^([\w:]*?)(?:::)?\{(.*)\}$", tree)
    if m:
        base = prefix + tuple(p for p in m.group(1).split("::") if p)
        depth, cur, parts = 0, "", []
        for ch in m.group(2):
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
                continue
            depth += ch == "{"
            depth -= ch == "}"
            cur += ch
        parts.append(cur)
        for p in parts:
            if p.strip():
                out += parse_use_tree(p.strip(), base)
        return out
    path, _, alias = tree.partition(" as ")
    segs = [p for p in path.strip().split("::") if p]
    if segs:
        out.append((prefix + tuple(segs[:-1]), segs[-1], alias.strip() or segs[-1]))
    return out


def reexports(mods: list[Module]) -> dict[tuple[tuple[str, ...], str], str]:
    """(module path, name) of every item a public module re-exports (also through private
    modules' `pub use`), with the shortest public path it is reachable at."""
    uses = []  # (module, source path, source name, alias)
    for mod in mods:
        text = "\n".join(mod.code)
        starts = [0]
        for x in mod.code:
            starts.append(starts[-1] + len(x) + 1)
        for m in PUB_USE_RE.finditer(text):
            k = max(i for i, s in enumerate(starts) if s <= m.start())
            if mod.depth[k] != 0 or hidden(mod.lines, k):
                continue
            for path, name, alias in parse_use_tree(m.group(1)):
                if path and path[0] == "crate":
                    full = path[1:]
                elif path and path[0] == "self":
                    full = mod.path + path[1:]
                elif path and path[0] == "super":
                    full = mod.path[:-1] + path[1:]
                else:
                    full = mod.path + path
                uses.append((mod, full, name, alias))
    # Names visible from outside: every public module's own items, and what it re-exports.
    out: dict[tuple[tuple[str, ...], str], str] = {}

    def add(key: tuple[tuple[str, ...], str], shown: str) -> bool:
        if key in out and len(out[key]) <= len(shown):
            return False
        out[key] = shown
        return True

    public = {m.path for m in mods if m.public}
    changed = True
    while changed:
        changed = False
        for mod, full, name, alias in uses:
            here = (mod.path, alias)
            shown = [out[here]] if here in out else []
            if mod.path in public:
                shown.append("::".join(("logitkit",) + mod.path + (alias,)))
            if shown:
                changed |= add((full, name), min(shown, key=len))
    return out


def impl_target(header: str) -> str | None:
    """The type name of an inherent impl header, or None for a trait impl."""
    header = header.split("{")[0]
    header = re.sub(r"\bwhere\b.*", "", header, flags=re.S)
    if re.search(r"\bfor\b", header):
        return None
    rest = re.sub(r"^\s*(unsafe\s+)?impl\s*", "", header)
    if rest.startswith("<"):
        depth = 0
        for i, ch in enumerate(rest):
            depth += ch == "<"
            depth -= ch == ">"
            if depth == 0:
                rest = rest[i + 1:]
                break
    m = re.match(r"\s*([\w:]+)", rest)
    return m.group(1).split("::")[-1] if m else None


def main(argv: list[str]) -> int:
    list_all = "--list-all" in argv
    args = [a for a in argv if not a.startswith("--")]
    src = Path(args[0]) if args else Path(__file__).resolve().parent.parent / "src"
    mods = load_modules(src)
    exported = reexports(mods)
    generators = set()
    for mod in mods:
        text = "\n".join(mod.lines)
        for m in re.finditer(r"macro_rules!\s*(\w+)\s*\{", text):
            body = text[m.end():m.end() + 2000]
            if re.search(r"pub\s+fn\s+\$", body):
                generators.add(m.group(1))

    items = []  # (name, file, line, has example)
    public_types: dict[str, str] = {}  # name -> shown path
    for mod in mods:
        for k, code in enumerate(mod.code):
            if mod.depth[k] != 0:
                continue
            m = ITEM_RE.match(code)
            if not m:
                continue
            name = m.group(1) or m.group(2)
            if not (mod.public or (mod.path, name) in exported) or hidden(mod.lines, k):
                continue
            if any(re.match(r"#\[cfg\((doctest|test)\)\]", a) for a in attributes_above(mod.lines, k)):
                continue
            shown = exported.get((mod.path, name)) or "::".join(("logitkit",) + mod.path + (name,))
            items.append((shown, mod.file, k, has_example(mod.lines, k)))
            t = TYPE_ITEM_RE.match(code)
            if t:
                public_types[t.group(2)] = shown

    for mod in mods:
        k = 0
        while k < len(mod.code):
            code = mod.code[k]
            if mod.depth[k] != 0 or not re.match(r"^\s*(unsafe\s+)?impl\b", code):
                k += 1
                continue
            header, j = code, k
            while "{" not in header and j + 1 < len(mod.code):
                j += 1
                header += " " + mod.code[j]
            target = impl_target(header)
            j += 1
            end = j
            while end < len(mod.code) and mod.depth[end] > 0:
                end += 1
            if target in public_types:
                for i in range(j, end):
                    if mod.depth[i] != 1:
                        continue
                    c = mod.code[i]
                    m = re.match(r"^\s*pub\s+(?:(?:const|unsafe|async)\s+)*fn\s+(\w+)", c) or \
                        re.match(r"^\s*pub\s+const\s+(\w+)", c)
                    if m and not hidden(mod.lines, i):
                        items.append((f"{public_types[target]}::{m.group(1)}", mod.file, i,
                                      has_example(mod.lines, i)))
                        continue
                    g = re.match(r"^\s*(\w+)!\s*[\{\(\[]", c)
                    if g and g.group(1) in generators:
                        i2 = i + 1
                        while i2 < end and mod.depth[i2] > 1:
                            e = re.match(r"^\s*(\w+)\s*:", mod.code[i2])
                            if e and mod.depth[i2] == 2:
                                items.append((f"{public_types[target]}::{e.group(1)}", mod.file, i2,
                                              has_example(mod.lines, i2)))
                            i2 += 1
            k = end

    items.sort(key=lambda it: (str(it[1]), it[2]))
    missing = [it for it in items if not it[3]]
    root = src.parent
    for name, file, line, ok in items if list_all else missing:
        rel = file.relative_to(root) if file.is_relative_to(root) else file
        print(f"{rel}:{line + 1}: {name}{'' if ok else ': no example in its rustdoc'}")
    print(f"check_rustdoc_examples: {len(items)} public items, {len(missing)} without an example")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
